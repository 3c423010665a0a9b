-- nnlua.solvers (S): NNabla's solvers. A solver keeps an ordered list of parameters
-- (set_parameters) and per-parameter state (engine arrays, zero at first, and the step
-- count t) and updates each parameter with a C kernel (core/solvers/). As in NNabla,
-- parameters whose gradient is still lazily zero (no gradient since zero_grad) are skipped
-- by update, weight_decay, clip_grad_by_norm, scale_grad and check_inf_or_nan_grad, and
-- their t is not advanced.
--
-- Constructors take NNabla's arguments positionally in NNabla's order, or by name in a
-- trailing options table: S.Adam(1e-3, 0.9), S.Adam{alpha = 1e-3, beta2 = 0.99},
-- S.Adam(1e-3, {eps = 1e-6}). learning_rate()/set_learning_rate() act on the field NNabla
-- calls the learning rate: lr, alpha for the Adam family, eta for Lamb.
--
-- Weight decay: solver:weight_decay(rate) adds rate * w to every gradient at once, except
-- for the solvers that fuse decay into the update (SgdW, AdamW, Lars, Lamb): those store
-- the rate, the next update() uses it and then returns to the default (wd for SgdW and
-- AdamW, 0 for Lars and Lamb).
--
-- save_states(path)/load_states(path) use NNabla's HDF5 layout: per parameter a group at
-- its name with an int64 attribute `index`, a scalar dataset `t` and one float32 dataset
-- per state (m; v; mean, var; ...). load_states and set_states (the inverse of get_states)
-- need set_parameters first.
--
-- Checked beyond NNabla (which takes these and trains to NaN): hyperparameters are finite
-- and in range (learning rates, eps, momentum, wd >= 0; betas in [0, 1); decay in [0, 1]),
-- AdamW, SgdW and AdaBound start from a learning rate > 0 (their update divides by it),
-- one parameter may not be registered under two names, and update() needs parameters.
local ffi = require 'ffi'
local lib = require 'nnlua.lib'
local parameter = require 'nnlua.parameter'
local Variable = require 'nnlua.variable'
local NdArray = require 'nnlua.ndarray'
local shape_equal = require('nnlua.values').same_shape
local C = lib.C

-- The update kernels for a gradient array: the CUDA backend's (cuda.kernels, the same names,
-- arguments and rules) when the gradient's current copy is on a device, else the engine's.
-- nnlua.cuda is loaded only by a cuda/cudnn context, so the CPU path never touches it.
local function K(g)
  local cuda = package.loaded['nnlua.cuda']
  return cuda and cuda.kernels_for(g) or C
end

local S = {}
S._signatures = {}

local T_MAX = 4294967294          -- NNabla's t is a uint32 that saturates here

local Solver = {}
Solver.__index = Solver
S.Solver = Solver

-- ---- construction ------------------------------------------------------------------------

local function fmt_default(v)
  if type(v) == 'boolean' then return tostring(v) end
  return ('%g'):format(v)
end

-- The ranges of the hyperparameters, by name (NNabla does not check them; values outside
-- give NaN weights or a diverging update without a word): 'unit' is [0, 1), 'closed' [0, 1],
-- 'nonneg' >= 0. Every number must be finite.
local RANGES = {
  lr = 'nonneg', alpha = 'nonneg', eta = 'nonneg', eps = 'nonneg', wd = 'nonneg',
  momentum = 'nonneg', coefficient = 'nonneg', final_lr = 'nonneg', gamma = 'nonneg',
  gamma_l = 'nonneg', gamma_u = 'nonneg',
  beta1 = 'unit', beta2 = 'unit', decay = 'closed',
}
local RANGE_TEXT = { nonneg = 'must be >= 0', unit = 'must be in [0, 1)', closed = 'must be in [0, 1]' }

-- who: 'S.Adam' or 'Adam:set_learning_rate'; level: for error().
local function check_range(who, name, v, level)
  if v ~= v or v == math.huge or v == -math.huge then
    error(("%s: '%s' must be a finite number, got %s"):format(who, name, tostring(v)), level)
  end
  local r = RANGES[name]
  local bad = (r == 'nonneg' and v < 0) or (r == 'unit' and (v < 0 or v >= 1))
    or (r == 'closed' and (v < 0 or v > 1))
  if bad then error(("%s: '%s' %s, got %s"):format(who, name, RANGE_TEXT[r], tostring(v)), level) end
end

-- Reads NNabla-ordered positional arguments and a trailing options table into a table of
-- hyperparameters, with defaults; unknown names and wrong types are errors.
local function parse_args(class, ...)
  local spec, who = class._args, 'S.' .. class._name
  local n = select('#', ...)
  local opts
  if n > 0 and type((select(n, ...))) == 'table' then
    opts = select(n, ...)
    n = n - 1
  end
  if n > #spec then
    error(('%s: takes at most %d arguments, got %d; signature %s'):format(
      who, #spec, n, S._signatures[class._name]), 3)
  end
  local vals = {}
  for i = 1, n do
    local v = select(i, ...)
    if v ~= nil then vals[spec[i][1]] = v end
  end
  if opts then
    for k, v in pairs(opts) do
      if type(k) ~= 'string' or not class._arg_index[k] then
        error(('%s: unknown option %s; signature %s'):format(
          who, type(k) == 'string' and "'" .. k .. "'" or tostring(k), S._signatures[class._name]), 3)
      end
      if vals[k] ~= nil then error(("%s: '%s' is given both by position and by name"):format(who, k), 3) end
      vals[k] = v
    end
  end
  local out = {}
  for _, a in ipairs(spec) do
    local name, default = a[1], a[2]
    local v = vals[name]
    if v == nil then v = default end
    if type(v) ~= type(default) then
      error(("%s: '%s' must be a %s, got %s"):format(who, name, type(default), type(v)), 3)
    end
    if type(v) == 'number' then check_range(who, name, v, 4) end
    out[name] = v
  end
  if class._positive_lr and out[class._lr] <= 0 then
    error(("%s: '%s' must be > 0 at construction, got %s (the update divides by the initial %s; "
      .. "start a warm-up at a small %s)"):format(who, class._lr, tostring(out[class._lr]), class._lr, class._lr), 3)
  end
  if out.gamma_l and out.gamma_u and out.gamma_u < out.gamma_l then
    error(("%s: 'gamma_u' (%s) must be >= 'gamma_l' (%s)"):format(who, tostring(out.gamma_u), tostring(out.gamma_l)), 3)
  end
  return out
end

local function new_state_array(size, where)
  local a = C.nl_array_new(size)
  if a == nil then lib.raise(where, 3) end
  a = ffi.gc(a, C.nl_array_release)
  C.nl_array_zero(a)                -- lazy: the memory comes with the first update
  return a
end

-- spec: args = {{name, default}, ...} in NNabla's order; lr = the learning-rate field;
-- states = NNabla's state names; fused = weight decay fused into the update (its default
-- rate: the 'wd' argument when there is one, else 0); positive_lr = the update divides by
-- the initial learning rate, which must then be > 0; update(self, w, g, s, t) calls the
-- kernel (s: the state arrays in `states` order) and returns its status.
local function define(name, spec)
  local class = setmetatable({}, { __index = Solver })
  class.__index = class
  class.__tostring = Solver.info
  class._name = name
  class._args = spec.args
  class._arg_index = {}
  local parts = {}
  for i, a in ipairs(spec.args) do
    class._arg_index[a[1]] = i
    parts[i] = a[1] .. '=' .. fmt_default(a[2])
  end
  class._lr = spec.lr or 'lr'
  class._state_names = spec.states or {}
  class._state_index = {}
  for k, sname in ipairs(class._state_names) do class._state_index[sname] = k end
  class._fused = spec.fused or false
  class._positive_lr = spec.positive_lr or false
  class.update_one = spec.update
  S._signatures[name] = 'S.' .. name .. '(' .. table.concat(parts, ', ') .. ')'
  S[name] = function(...)
    local self = parse_args(class, ...)
    self.name = name
    self.params, self.names, self.slots, self.states = {}, {}, {}, {}
    self['init_' .. class._lr] = self[class._lr]
    if class._fused then
      self.default_wd = self.wd or 0
      self.wd_rate = self.default_wd
    end
    return setmetatable(self, class)
  end
  return class
end

-- ---- parameters ---------------------------------------------------------------------------

local function data_key(v) return tostring(ffi.cast('uintptr_t', C.nl_var_data(v))) end

local function new_slot(self, v)
  local size = tonumber(C.nl_var_size(v))
  local s = {}
  for k = 1, #self._state_names do s[k] = new_state_array(size, self.name .. ':set_parameters') end
  return { t = 0, s = s }
end

-- params: the dictionary from nn.get_parameters(), a table of name = Variable (taken in
-- name order), or a list of Variables (named param1, param2, ...). reset (default true) forgets the previous parameters; with reset = false
-- a parameter already registered under the same name is replaced and its state reset,
-- unless retain_state is true (then the shapes must agree and the state is kept).
function Solver:set_parameters(params, reset, retain_state)
  if reset == nil then reset = true end
  local list = parameter.entries(params, self.name .. ':set_parameters', true)
  -- One parameter (one data array) under two names would be updated twice per step.
  local owner, given = {}, {}
  for _, e in ipairs(list) do given[e[1]] = true end
  if not reset then
    for i, name in ipairs(self.names) do
      if not given[name] then owner[data_key(self.params[i])] = name end
    end
  end
  for _, e in ipairs(list) do
    local k = data_key(e[2])
    if owner[k] then
      error(("%s:set_parameters: '%s' and '%s' are the same parameter (one data array); it would be updated twice per step"):format(
        self.name, owner[k], e[1]), 2)
    end
    owner[k] = e[1]
  end
  if reset then self:clear_parameters() end
  for _, e in ipairs(list) do
    local name, v = e[1], e[2]
    local i = self.states[name] and self:_position(name)
    if i then
      if retain_state then
        local old = self.params[i]
        if not shape_equal(old.shape, v.shape) then
          error(("%s:set_parameters: cannot retain the state of '%s': shape %s given, %s before"):format(
            self.name, name, lib.shape_str(v.shape), lib.shape_str(old.shape)), 2)
        end
      else
        self.slots[i] = new_slot(self, v)
        self.states[name] = self.slots[i]
      end
      self.params[i] = v
    else
      local n = #self.params + 1
      self.names[n], self.params[n] = name, v
      self.slots[n] = new_slot(self, v)
      self.states[name] = self.slots[n]
    end
  end
end

function Solver:_position(name)
  for i, n in ipairs(self.names) do if n == name then return i end end
  return nil
end

-- The registered parameters as an ordered dictionary (name -> Variable).
function Solver:get_parameters()
  local d = parameter.OrderedDict()
  for i, name in ipairs(self.names) do d[name] = self.params[i] end
  return d
end

function Solver:clear_parameters()
  self.params, self.names, self.slots, self.states = {}, {}, {}, {}
end

-- Removes the named parameters (a name or a list of names) and their states.
function Solver:remove_parameters(keys)
  if type(keys) == 'string' then keys = { keys } end
  if type(keys) ~= 'table' then
    error(('%s:remove_parameters: expected a name or a list of names, got %s'):format(self.name, type(keys)), 2)
  end
  for i, k in ipairs(keys) do
    if type(k) ~= 'string' then
      error(('%s:remove_parameters: name %d is a %s, not a string'):format(self.name, i, type(k)), 2)
    end
  end
  local drop = {}
  for _, k in ipairs(keys) do drop[k] = true end
  local params, names, slots = {}, {}, {}
  for i, name in ipairs(self.names) do
    if drop[name] then
      self.states[name] = nil
    else
      local n = #names + 1
      params[n], names[n], slots[n] = self.params[i], name, self.slots[i]
    end
  end
  self.params, self.names, self.slots = params, names, slots
end

-- {name = {t = n, pstate = {state_name = NdArray view}}}: views of the live state arrays.
function Solver:get_states()
  local out = {}
  for i, name in ipairs(self.names) do
    local slot, shape = self.slots[i], self.params[i].shape
    local pstate = {}
    for k, sname in ipairs(self._state_names) do pstate[sname] = NdArray.wrap(slot.s[k], 0, shape) end
    out[name] = { t = slot.t, pstate = pstate }
  end
  return out
end

-- set_states(states): the inverse of get_states, as NNabla's set_states: for each name a
-- registered parameter (set_parameters first), {t = n, pstate = {state_name = values}} with
-- every state of this solver, each an NdArray, a Variable or a nested table of the
-- parameter's shape. The values are copied. Everything is checked before anything changes.
function Solver:set_states(states)
  local who = self.name .. ':set_states'
  if type(states) ~= 'table' then
    error(('%s: expected a table of name = {t = n, pstate = {...}} (as get_states returns), got %s'):format(who, type(states)), 2)
  end
  local position = {}
  for i, name in ipairs(self.names) do position[name] = i end
  local names = {}
  for name in pairs(states) do
    if type(name) ~= 'string' then error(('%s: keys are parameter names, got %s'):format(who, tostring(name)), 2) end
    names[#names + 1] = name
  end
  table.sort(names)
  local expected = #self._state_names == 0 and 'only t' or table.concat(self._state_names, ', ')
  local todo = {}
  for _, name in ipairs(names) do
    local st, i = states[name], position[name]
    if not i then
      error(("%s: Set weight parameter for %s first (the solver has no parameter '%s'; call set_parameters before set_states)"):format(
        who, name, name), 2)
    end
    if type(st) ~= 'table' then error(("%s: the state of '%s' must be a table {t = n, pstate = {...}}, got %s"):format(who, name, type(st)), 2) end
    local t, pstate = st.t, st.pstate or {}
    if type(t) ~= 'number' or t < 0 or t ~= math.floor(t) then
      error(("%s: 't' of '%s' must be a non-negative integer, got %s"):format(who, name, tostring(t)), 2)
    end
    if type(pstate) ~= 'table' then error(("%s: 'pstate' of '%s' must be a table, got %s"):format(who, name, type(pstate)), 2) end
    for sname in pairs(pstate) do
      if not self._state_index[sname] then
        error(("%s: '%s' of parameter '%s' is not a state of %s (its states: %s)"):format(who, tostring(sname), name, self.name, expected), 2)
      end
    end
    local shape, arrays = self.params[i].shape, {}
    for k, sname in ipairs(self._state_names) do
      local v = pstate[sname]
      if v == nil then error(("%s: parameter '%s' has no state '%s' (its states: %s)"):format(who, name, sname, expected), 2) end
      if Variable.is(v) then v = v.d end
      if not (NdArray.is(v) or (type(v) == 'table' and getmetatable(v) == nil)) then
        error(("%s: state '%s' of '%s' must be an NdArray, a Variable or a nested table, got %s"):format(
          who, sname, name, type(v)), 2)
      end
      local arr = NdArray.as(v, who)
      if not shape_equal(arr.shape, shape) then
        error(("%s: state '%s' of parameter '%s' has shape %s but the parameter has shape %s; nothing was set"):format(
          who, sname, name, lib.shape_str(arr.shape), lib.shape_str(shape)), 2)
      end
      arrays[k] = arr
    end
    todo[#todo + 1] = { slot = self.slots[i], t = math.min(t, T_MAX), arrays = arrays }
  end
  for _, d in ipairs(todo) do
    local s = {}
    for k, arr in ipairs(d.arrays) do
      local a = new_state_array(arr.size, who)
      if arr.size > 0 then
        local dst = C.nl_array_host(a, C.NL_WRITE)
        if dst == nil then lib.raise(who, 2) end
        ffi.copy(dst, arr:ptr(C.NL_READ), arr.size * ffi.sizeof('float'))
      end
      s[k] = a
    end
    for k = 1, #s do d.slot.s[k] = s[k] end
    d.slot.t = d.t
  end
end

-- ---- gradient utilities -------------------------------------------------------------------

function Solver:zero_grad()
  for _, p in ipairs(self.params) do C.nl_array_zero(C.nl_var_grad(p)) end
end

local function has_grad(p) return C.nl_array_zeroing(C.nl_var_grad(p)) == 0 end

-- g <- g + decay * w for parameters that received a gradient; fused solvers store the
-- rate for the next update instead.
function Solver:weight_decay(decay)
  if type(decay) ~= 'number' then error(self.name .. ':weight_decay: expected a number, got ' .. type(decay), 2) end
  check_range(self.name .. ':weight_decay', 'decay_rate', decay, 3)
  if decay < 0 then error(("%s:weight_decay: 'decay_rate' must be >= 0, got %s"):format(self.name, tostring(decay)), 2) end
  if self._fused then
    self.wd_rate = decay
    return
  end
  if decay == 0 then return end
  for _, p in ipairs(self.params) do
    if has_grad(p) then
      local g = C.nl_var_grad(p)
      lib.check(K(g).nl_weight_decay(C.nl_var_data(p), g, decay), self.name .. ':weight_decay')
    end
  end
end

-- Per parameter tensor: g <- clip_norm * g / ||g|| where ||g|| > clip_norm (0: no-op).
function Solver:clip_grad_by_norm(clip_norm)
  if type(clip_norm) ~= 'number' then error(self.name .. ':clip_grad_by_norm: expected a number, got ' .. type(clip_norm), 2) end
  check_range(self.name .. ':clip_grad_by_norm', 'clip_norm', clip_norm, 3)
  if clip_norm < 0 then
    error(("%s:clip_grad_by_norm: 'clip_norm' must be >= 0, got %s"):format(self.name, tostring(clip_norm)), 2)
  end
  if clip_norm == 0 then return end
  for _, p in ipairs(self.params) do
    if has_grad(p) then
      local g = C.nl_var_grad(p)
      local sq = K(g).nl_sum_squares(g)
      if sq > clip_norm * clip_norm then
        lib.check(K(g).nl_scale(g, clip_norm / math.sqrt(sq)), self.name .. ':clip_grad_by_norm')
      end
    end
  end
end

function Solver:scale_grad(scale)
  if type(scale) ~= 'number' then error(self.name .. ':scale_grad: expected a number, got ' .. type(scale), 2) end
  check_range(self.name .. ':scale_grad', 'scale', scale, 3)
  for _, p in ipairs(self.params) do
    if has_grad(p) then
      local g = C.nl_var_grad(p)
      lib.check(K(g).nl_scale(g, scale), self.name .. ':scale_grad')
    end
  end
end

function Solver:check_inf_or_nan_grad()
  for _, p in ipairs(self.params) do
    if has_grad(p) and K(C.nl_var_grad(p)).nl_has_inf_or_nan(C.nl_var_grad(p)) ~= 0 then return true end
  end
  return false
end

function Solver:learning_rate() return self[self._lr] end
function Solver:set_learning_rate(lr)
  if type(lr) ~= 'number' then error(self.name .. ':set_learning_rate: expected a number, got ' .. type(lr), 2) end
  check_range(self.name .. ':set_learning_rate', self._lr, lr, 3)
  self[self._lr] = lr
end

-- ---- update ------------------------------------------------------------------------------

-- Updates every parameter that has a gradient and advances its t; nothing is allocated
-- here (the state arrays get their memory on their first update).
function Solver:update()
  local params, slots = self.params, self.slots
  if #params == 0 then
    error(self.name .. ':update: the solver has no parameters; call set_parameters(nn.get_parameters()) '
      .. 'after the graph (and its parameters) is built', 2)
  end
  for i = 1, #params do
    local p = params[i]
    local g = C.nl_var_grad(p)
    if C.nl_array_zeroing(g) == 0 then
      local slot = slots[i]
      local t = slot.t + 1
      if t > T_MAX then t = T_MAX end
      if self:update_one(C.nl_var_data(p), g, slot.s, t) ~= 0 then
        if self._fused then self.wd_rate = self.default_wd end
        lib.raise(self.name .. ':update', 2)
      end
      slot.t = t
    end
  end
  if self._fused then self.wd_rate = self.default_wd end
end

function Solver:info()
  return ('%s(%s=%g, %d parameters)'):format(self.name, self._lr, self[self._lr], #self.params)
end
Solver.__tostring = Solver.info

-- ---- state files --------------------------------------------------------------------------

-- The engine's last error without its "save_states: "/"load_states: " prefix.
local function file_error()
  local msg = lib.last_error()
  C.nl_clear_error()
  return (msg:gsub('^save_states: ', ''):gsub('^load_states: ', ''))
end

local function check_path(self, path, what)
  if type(path) ~= 'string' or path == '' then error(('%s:%s: expected a file path'):format(self.name, what), 3) end
  if not path:match('%.h5$') then
    error(("%s:%s: only .h5 files are supported, got '%s'"):format(self.name, what, path), 3)
  end
end

function Solver:save_states(path)
  check_path(self, path, 'save_states')
  local n, names_list, ns = #self.params, self.names, #self._state_names
  local names = ffi.new('const char *[?]', n + 1)
  local ndims = ffi.new('int[?]', n + 1)
  local shapes = ffi.new('const int64_t *[?]', n + 1)
  local ts = ffi.new('int64_t[?]', n + 1)
  local snames = ffi.new('const char *[?]', ns + 1)
  local data = ffi.new('const float *[?]', n * ns + 1)
  for k = 1, ns do snames[k - 1] = self._state_names[k] end
  for i = 1, n do
    local p, slot = self.params[i], self.slots[i]
    names[i - 1] = names_list[i]
    ndims[i - 1] = C.nl_var_ndim(p)
    shapes[i - 1] = C.nl_var_shape(p)
    ts[i - 1] = slot.t
    for k = 1, ns do
      local ptr = C.nl_array_host(slot.s[k], C.NL_READ)
      if ptr == nil then lib.raise(self.name .. ':save_states', 2) end
      data[(i - 1) * ns + k - 1] = ptr
    end
  end
  if C.nl_h5_save_states(path, n, names, ndims, shapes, ts, ns, snames, data) ~= 0 then
    error(self.name .. ':save_states: ' .. file_error(), 2)
  end
end

-- Loads states saved by save_states (here or by NNabla) for parameters registered with
-- set_parameters; parameters the file does not mention keep their state. Everything is
-- checked and read before anything changes: an error leaves the solver as it was.
function Solver:load_states(path)
  check_path(self, path, 'load_states')
  local who = self.name .. ':load_states'
  local h = C.nl_h5_open_states(path)
  if h == nil then error(who .. ': ' .. file_error(), 2) end
  h = ffi.gc(h, C.nl_h5_close)
  local function fail(msg)
    C.nl_h5_close(ffi.gc(h, nil))
    error(who .. ': ' .. msg, 3)
  end
  local count = C.nl_h5_count(h)
  local groups, order = {}, {}
  for i = 0, count - 1 do
    local name = ffi.string(C.nl_h5_name(h, i))
    local pname, sname = name:match('^(.*)/([^/]*)$')
    if not pname then
      fail(("dataset '%s' in '%s' is not a solver state (expected <parameter>/<state>)"):format(name, path))
    end
    local g = groups[pname]
    if not g then
      g = { name = pname, entries = {} }
      groups[pname] = g
      order[#order + 1] = g
    end
    g.entries[sname] = i
  end
  local any_t = false
  for _, g in ipairs(order) do any_t = any_t or g.entries.t ~= nil end
  if #order > 0 and not any_t then
    fail(("'%s' holds no solver states (no '<parameter>/t' datasets; is it a parameter file?)"):format(path))
  end
  local expected = table.concat(self._state_names, ', ')
  local position = {}
  for i, name in ipairs(self.names) do position[name] = i end
  for _, g in ipairs(order) do
    local slot = self.states[g.name]
    if not slot then
      fail(("Set weight parameter for %s first (the solver has no parameter '%s'; call set_parameters before load_states)"):format(
        g.name, g.name))
    end
    g.slot = slot
    g.param = self.params[position[g.name]]
    g.shape = g.param.shape
    local ti = g.entries.t
    if not ti then fail(("parameter '%s' has no step count 't' in '%s'"):format(g.name, path)) end
    if C.nl_h5_ndim(h, ti) ~= 0 then
      fail(("'t' of parameter '%s' in '%s' is not a scalar"):format(g.name, path))
    end
    local present = {}
    for sname in pairs(g.entries) do present[#present + 1] = sname end
    table.sort(present)
    for _, sname in ipairs(present) do
      if sname ~= 't' and not self._state_index[sname] then
        fail(("'%s' of parameter '%s' in '%s' is not a state of %s (its states: %s)"):format(
          sname, g.name, path, self.name, expected == '' and 'only t' or expected))
      end
    end
    for _, sname in ipairs(self._state_names) do
      local i = g.entries[sname]
      if not i then fail(("parameter '%s' has no state '%s' in '%s'"):format(g.name, sname, path)) end
      local shape = lib.from_c_shape(C.nl_h5_shape(h, i), C.nl_h5_ndim(h, i))
      if not shape_equal(shape, g.shape) then
        fail(("state '%s' of parameter '%s' has shape %s in '%s' but the parameter has shape %s; nothing was loaded"):format(
          sname, g.name, lib.shape_str(shape), path, lib.shape_str(g.shape)))
      end
    end
  end
  -- Read everything into fresh arrays, then install.
  local tbuf = ffi.new('int64_t[1]')
  for _, g in ipairs(order) do
    if C.nl_h5_read_int(h, g.entries.t, tbuf, 1) ~= 0 then fail(file_error()) end
    local t = tonumber(tbuf[0])
    if t < 0 then fail(("'t' of parameter '%s' in '%s' is negative (%d)"):format(g.name, path, t)) end
    g.t = math.min(t, T_MAX)
    g.s = {}
    for k, sname in ipairs(self._state_names) do
      local size = tonumber(C.nl_var_size(g.param))
      local a = C.nl_array_new(size)
      if a == nil then fail(file_error()) end
      a = ffi.gc(a, C.nl_array_release)
      local ptr = C.nl_array_host(a, C.NL_WRITE)
      if ptr == nil or C.nl_h5_read(h, g.entries[sname], ptr, size) ~= 0 then fail(file_error()) end
      g.s[k] = a
    end
  end
  C.nl_h5_close(ffi.gc(h, nil))
  for _, g in ipairs(order) do
    g.slot.t = g.t
    for k = 1, #g.s do g.slot.s[k] = g.s[k] end
  end
end

-- ---- the solvers ----------------------------------------------------------------------------
-- Update rules: see the kernels in core/solvers/ (sgd.c, momentum.c, adagrad.c, adam.c,
-- lars_lamb.c), which follow NNabla's src/nbla/solver/generic/*.cpp.

local ADAM_ARGS = { { 'alpha', 1e-3 }, { 'beta1', 0.9 }, { 'beta2', 0.999 }, { 'eps', 1e-8 } }
local function with(base, ...)
  local t = {}
  for i, a in ipairs(base) do t[i] = a end
  for _, a in ipairs({ ... }) do t[#t + 1] = a end
  return t
end

define('Sgd', {
  args = { { 'lr', 1e-3 } },
  update = function(self, w, g) return K(g).nl_sgd_update(w, g, self.lr) end,
})

define('SgdW', {
  args = { { 'lr', 1e-3 }, { 'momentum', 0.9 }, { 'wd', 1e-4 } },
  states = { 'm' }, fused = true, positive_lr = true,
  update = function(self, w, g, s)
    return K(g).nl_sgdw_update(w, g, s[1], self.lr, self.momentum, (self.lr / self.init_lr) * self.wd_rate)
  end,
})

define('Momentum', {
  args = { { 'lr', 1e-3 }, { 'momentum', 0.9 } },
  states = { 'm' },
  update = function(self, w, g, s) return K(g).nl_momentum_update(w, g, s[1], self.lr, self.momentum) end,
})

define('Nesterov', {
  args = { { 'lr', 1e-3 }, { 'momentum', 0.9 } },
  states = { 'm' },
  update = function(self, w, g, s) return K(g).nl_nesterov_update(w, g, s[1], self.lr, self.momentum) end,
})

define('Adagrad', {
  args = { { 'lr', 1e-2 }, { 'eps', 1e-8 } },
  states = { 'v' },
  update = function(self, w, g, s) return K(g).nl_adagrad_update(w, g, s[1], self.lr, self.eps) end,
})

define('Adadelta', {
  args = { { 'lr', 1.0 }, { 'decay', 0.95 }, { 'eps', 1e-6 } },
  states = { 'e_sqr_grad', 'e_sqr_delta' },
  update = function(self, w, g, s)
    return K(g).nl_adadelta_update(w, g, s[1], s[2], self.lr, self.decay, self.eps)
  end,
})

define('RMSprop', {
  args = { { 'lr', 1e-3 }, { 'decay', 0.9 }, { 'eps', 1e-8 } },
  states = { 'v' },
  update = function(self, w, g, s) return K(g).nl_rmsprop_update(w, g, s[1], self.lr, self.decay, self.eps) end,
})

define('RMSpropGraves', {
  args = { { 'lr', 1e-4 }, { 'decay', 0.95 }, { 'momentum', 0.9 }, { 'eps', 1e-4 } },
  states = { 'n', 'g', 'd' },
  update = function(self, w, g, s)
    return K(g).nl_rmsprop_graves_update(w, g, s[1], s[2], s[3], self.lr, self.decay, self.momentum, self.eps)
  end,
})

define('Adam', {
  args = ADAM_ARGS, lr = 'alpha',
  states = { 'mean', 'var' },
  update = function(self, w, g, s, t)
    return K(g).nl_adam_update(w, g, s[1], s[2], self.alpha, self.beta1, self.beta2, self.eps, t, 0)
  end,
})

define('AdamW', {
  args = with(ADAM_ARGS, { 'wd', 1e-4 }), lr = 'alpha',
  states = { 'mean', 'var' }, fused = true, positive_lr = true,
  update = function(self, w, g, s, t)
    return K(g).nl_adam_update(w, g, s[1], s[2], self.alpha, self.beta1, self.beta2, self.eps, t,
                            (self.alpha / self.init_alpha) * self.wd_rate)
  end,
})

define('AMSGRAD', {
  args = with(ADAM_ARGS, { 'bias_correction', false }), lr = 'alpha',
  states = { 'm', 'v', 'v_hat' },
  update = function(self, w, g, s, t)
    return K(g).nl_amsgrad_update(w, g, s[1], s[2], s[3], self.alpha, self.beta1, self.beta2, self.eps,
                               self.bias_correction and 1 or 0, t)
  end,
})

define('AdaBound', {
  args = with(ADAM_ARGS, { 'final_lr', 0.1 }, { 'gamma', 0.001 }), lr = 'alpha',
  states = { 'mean', 'var' }, positive_lr = true,
  update = function(self, w, g, s, t)
    return K(g).nl_adabound_update(w, g, s[1], s[2], self.alpha, self.init_alpha, self.beta1, self.beta2,
                                self.eps, self.final_lr, self.gamma, t)
  end,
})

define('Adamax', {
  args = { { 'alpha', 2e-3 }, { 'beta1', 0.9 }, { 'beta2', 0.999 }, { 'eps', 1e-8 } }, lr = 'alpha',
  states = { 'm', 'u' },
  update = function(self, w, g, s, t)
    return K(g).nl_adamax_update(w, g, s[1], s[2], self.alpha, self.beta1, self.beta2, self.eps, t)
  end,
})

define('Lars', {
  args = { { 'lr', 1e-3 }, { 'momentum', 0.9 }, { 'coefficient', 1e-3 }, { 'eps', 1e-6 } },
  states = { 'v' }, fused = true,
  update = function(self, w, g, s)
    return K(g).nl_lars_update(w, g, s[1], self.lr, self.momentum, self.coefficient, self.eps, self.wd_rate)
  end,
})

define('Lamb', {
  args = { { 'eta', 1e-3 }, { 'beta1', 0.9 }, { 'beta2', 0.999 }, { 'gamma_l', 0.0 }, { 'gamma_u', 10.0 },
           { 'eps', 1e-6 }, { 'bias_correction', false } },
  lr = 'eta', states = { 'mean', 'var' }, fused = true,
  update = function(self, w, g, s, t)
    return K(g).nl_lamb_update(w, g, s[1], s[2], self.eta, self.beta1, self.beta2, self.gamma_l, self.gamma_u,
                            self.eps, self.bias_correction and 1 or 0, self.wd_rate, t)
  end,
})

return S
