-- nnlua.profiler: NNabla's GraphProfiler (nnabla.utils.profiler): how long each function of a
-- graph takes, forward and backward, each run alone, and the whole forward, backward and
-- (with a solver) update.
--
--   local profiler = require 'nnlua.profiler'
--   local p = profiler.GraphProfiler(loss, {solver = solver, n_run = 100})
--   p:run()
--   p:print_result()        -- the functions in graph order with their share of the time
--   p.result                -- {functions = {{name =, backend =, inputs = {shapes}, outputs =
--                           --   {shapes}, forward =, backward =, runs =}, ...},
--                           --  forward_all =, backward_all =, update =}  (seconds, means)
--   p:write_csv('profile.csv')
--
-- Options: solver (also times solver:update()), n_run (repetitions per measurement, default
-- 100), max_measure_execution_time (seconds per measurement at most, default 1: fewer
-- repetitions then), time_scale ('m' milliseconds (default), 'u', 's': how print_result and
-- write_csv show times). The first call of each measurement is a warm-up and is not counted.
-- On a GPU backend the device is synchronized before a measurement starts and ends.
-- Running the graph's pieces alone leaves its data and gradients as the last run made them,
-- as NNabla's profiler does; the solver's parameters and states are restored after timing
-- its update.
local ffi = require 'ffi'
local lib = require 'nnlua.lib'
local Variable = require 'nnlua.variable'
local C = lib.C

-- the monotonic clock nnlua.progress declares (one FFI declaration of clock_gettime for all)
local now = require('nnlua.progress').now

local M = {}

local SCALES = { s = { 1, 's' }, m = { 1e3, 'ms' }, u = { 1e6, 'us' } }
local OPTS = { solver = true, n_run = true, max_measure_execution_time = true, time_scale = true, device_id = true }

local GraphProfiler = {}
GraphProfiler.__index = GraphProfiler
M.GraphProfiler_class = GraphProfiler

--- profiler.GraphProfiler(root [, opts]): a profiler of the graph under the Variable root.
function M.GraphProfiler(root, opts)
  local who = 'profiler.GraphProfiler'
  if not Variable.is(root) then error(who .. ': expected the Variable at the root of a graph, got ' .. type(root), 2) end
  if root.parent == nil then error(who .. ': the variable has no parent function (a leaf): nothing to profile', 2) end
  opts = opts or {}
  if type(opts) ~= 'table' then error(who .. ': options must be a table, got ' .. type(opts), 2) end
  for k in pairs(opts) do
    if not OPTS[k] then
      error(("%s: unknown option '%s' (options: solver, n_run, max_measure_execution_time, time_scale)"):format(
        who, tostring(k)), 2)
    end
  end
  local n_run = opts.n_run or 100
  if type(n_run) ~= 'number' or n_run < 1 or n_run ~= math.floor(n_run) or n_run == math.huge then
    error(who .. ': n_run must be a positive integer, got ' .. tostring(n_run), 2)
  end
  local max_time = opts.max_measure_execution_time or 1
  if type(max_time) ~= 'number' or not (max_time > 0) then
    error(who .. ': max_measure_execution_time must be a positive number of seconds, got ' .. tostring(max_time), 2)
  end
  local scale = opts.time_scale or 'm'
  if not SCALES[scale] then error(who .. ": time_scale must be 's', 'm' or 'u', got " .. tostring(scale), 2) end
  local solver = opts.solver
  if solver ~= nil and (type(solver) ~= 'table' or type(solver.update) ~= 'function') then
    error(who .. ': solver must be a solver (S.Sgd(...), ...), got ' .. type(solver), 2)
  end
  return setmetatable({ root = root, solver = solver, n_run = n_run, max_time = max_time, scale = scale,
                        device_id = opts.device_id or 0 }, GraphProfiler)
end

-- Mean seconds per call of fn (after a warm-up call) over up to n_run calls and at most
-- max_time seconds; and the number of calls timed.
local function measure(self, fn, sync)
  fn()
  sync()
  local runs, t0 = 0, now()
  repeat
    fn()
    runs = runs + 1
  until runs >= self.n_run or now() - t0 > self.max_time
  sync()
  return (now() - t0) / runs, runs
end

local function shapes_of(vars)
  local t = {}
  for i, v in ipairs(vars) do t[i] = v and v.shape or false end
  return t
end

-- The solver's parameter values and states, to put back after timing update().
local function snapshot(solver)
  local params, saved = solver:get_parameters(), {}
  for name, p in params:items() do saved[name] = p.d:copy() end
  local states = {}
  for name, st in pairs(solver:get_states()) do
    local pstate = {}
    for sname, arr in pairs(st.pstate) do pstate[sname] = arr:copy() end
    states[name] = { t = st.t, pstate = pstate }
  end
  return function()
    for name, p in params:items() do p.d = saved[name] end
    solver:set_states(states)
  end
end

--- p:run(): times every function alone (forward, and backward where an input needs a
-- gradient), then the whole forward, backward and update; fills p.result and returns it.
function GraphProfiler:run()
  local who = 'GraphProfiler:run'
  local root = self.root
  local funcs = {}
  root:visit(function(f) funcs[#funcs + 1] = f end)
  local on_device = false
  for _, f in ipairs(funcs) do
    if ffi.string(C.nl_func_backend_name(f)) ~= 'cpu' then on_device = true end
  end
  local sync = function() end
  if on_device then
    local cuda = require 'nnlua.cuda'
    local dev = self.device_id
    sync = function() cuda.synchronize(dev) end
  end
  -- every buffer in place (and the saved data backward reads) before pieces run alone
  root:forward()
  local result = { functions = {} }
  for i, f in ipairs(funcs) do
    local ins, outs = f.inputs, f.outputs
    local needs = false
    for _, v in ipairs(ins) do if v and v.need_grad then needs = true end end
    local entry = { name = f.name, backend = ffi.string(C.nl_func_backend_name(f)),
                    inputs = shapes_of(ins), outputs = shapes_of(outs) }
    entry.forward, entry.runs = measure(self, function()
      lib.check(C.nl_func_run_forward(f), who, 4)
    end, sync)
    if needs then
      entry.backward = measure(self, function()
        lib.check(C.nl_func_run_backward(f), who, 4)
      end, sync)
    end
    result.functions[i] = entry
  end
  result.forward_all = measure(self, function() root:forward() end, sync)
  local backprop = false
  for _, e in ipairs(result.functions) do if e.backward then backprop = true end end
  if backprop then
    result.backward_all = measure(self, function() root:backward { grad = 1 } end, sync)
  end
  if self.solver then
    local restore = snapshot(self.solver)
    local ok, err = pcall(function()
      result.update = measure(self, function() self.solver:update() end, sync)
    end)
    restore()
    if not ok then error(err, 2) end
  end
  self.result = result
  return result
end

local function need_result(self, who)
  if not self.result then error(who .. ': nothing measured yet; call run() first', 3) end
  return self.result
end

local function shapes_str(list)
  local t = {}
  for i, s in ipairs(list) do t[i] = s and lib.shape_str(s) or '-' end
  return table.concat(t, ' ')
end

--- p:print_result([out]): the table (to io.stdout or out:write).
function GraphProfiler:print_result(out)
  local r = need_result(self, 'GraphProfiler:print_result')
  out = out or io.stdout
  local k, unit = SCALES[self.scale][1], SCALES[self.scale][2]
  local fsum, bsum = 0, 0
  for _, e in ipairs(r.functions) do fsum, bsum = fsum + e.forward, bsum + (e.backward or 0) end
  local total = fsum + bsum
  local function t(v) return v and ('%.4f'):format(v * k) or '-' end
  local lines = {}
  lines[#lines + 1] = ('GraphProfiler: %d functions, up to %d runs each, times in %s (mean per run)'):format(
    #r.functions, self.n_run, unit)
  local head = ('%3s  %-24s %-7s %10s %10s %6s  %s'):format('#', 'function', 'backend', 'forward', 'backward', 'share',
                                                             'inputs -> outputs')
  lines[#lines + 1] = head
  lines[#lines + 1] = string.rep('-', #head + 12)
  for i, e in ipairs(r.functions) do
    local share = total > 0 and (e.forward + (e.backward or 0)) / total * 100 or 0
    lines[#lines + 1] = ('%3d  %-24s %-7s %10s %10s %5.1f%%  %s -> %s'):format(i, e.name, e.backend, t(e.forward),
      t(e.backward), share, shapes_str(e.inputs), shapes_str(e.outputs))
  end
  lines[#lines + 1] = ('sum of the functions alone: forward %s, backward %s %s'):format(t(fsum), t(bsum), unit)
  lines[#lines + 1] = ('whole graph: forward %s, backward %s%s %s'):format(t(r.forward_all), t(r.backward_all),
    r.update and (', solver update ' .. t(r.update)) or '', unit)
  out:write(table.concat(lines, '\n'), '\n')
end

--- p:write_csv(path): one row per function (index, name, backend, forward, backward, inputs,
-- outputs) and rows for the whole forward, backward and update; times in time_scale units.
function GraphProfiler:write_csv(path)
  local r = need_result(self, 'GraphProfiler:write_csv')
  if type(path) ~= 'string' or path == '' then error('GraphProfiler:write_csv: expected a file path', 2) end
  local f, err = io.open(path, 'w')
  if not f then error('GraphProfiler:write_csv: cannot open ' .. tostring(err), 2) end
  local k, unit = SCALES[self.scale][1], SCALES[self.scale][2]
  local function t(v) return v and ('%.6g'):format(v * k) or '' end
  local rows = { ('index,function,backend,forward_%s,backward_%s,inputs,outputs'):format(unit, unit) }
  for i, e in ipairs(r.functions) do
    rows[#rows + 1] = ('%d,%s,%s,%s,%s,"%s","%s"'):format(i, e.name, e.backend, t(e.forward), t(e.backward),
      shapes_str(e.inputs), shapes_str(e.outputs))
  end
  rows[#rows + 1] = (',forward_all,,%s,,,'):format(t(r.forward_all))
  rows[#rows + 1] = (',backward_all,,,%s,,'):format(t(r.backward_all))
  if r.update then rows[#rows + 1] = (',update,,%s,,,'):format(t(r.update)) end
  local ok, werr = f:write(table.concat(rows, '\n'), '\n')
  f:close()
  if not ok then error('GraphProfiler:write_csv: cannot write ' .. path .. ': ' .. tostring(werr), 2) end
end

return M
