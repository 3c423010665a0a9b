-- bench/run.lua: nnlua's benchmark suite (`make bench`). Every case runs in its own
-- process (bench/worker.lua; PyTorch's in bench/pytorch/bench.py) at 1 and at 2 threads
-- (OMP_NUM_THREADS and OPENBLAS_NUM_THREADS for nnlua, torch.set_num_threads for PyTorch),
-- the two sides of a row back to back; each side's best is compared. Prints a table and one
-- JSON line (prefixed "JSON ").
--   ./scripts/nnlua bench/run.lua [--reps N] [--scale S] [--only case,case] [--no-torch]
--                                 [--threads 1,2] [--rounds R] [--python CMD]
-- Rates are medians over N repetitions (default 5) of timed blocks of steps (scale S
-- multiplies the steps per block). Every case runs in R rounds (--rounds, default 3); a
-- round runs both sides at every thread count back to back, PyTorch first in every other
-- round, and a row reports each side's median over the rounds, so that a slow spell of this
-- shared machine (the second core's speed swings by up to 2x from one minute to the next)
-- falls on both sides alike. PyTorch is optional: without `import torch` the nnlua numbers
-- are printed alone. --python (default python3, or $NNLUA_BENCH_PYTHON) picks the Python
-- whose torch is the peer, e.g. /usr/bin/python3 for Debian's python3-torch.
local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or 'bench'
local root = here:match('^(.*)/bench$') or '.'

local reps, scale, only, use_torch, threads, rounds = 5, 1, nil, true, { 1, 2 }, 3
local python = os.getenv('NNLUA_BENCH_PYTHON') or 'python3'
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == '--reps' then i = i + 1; reps = tonumber(arg[i])
    elseif a == '--scale' then i = i + 1; scale = tonumber(arg[i])
    elseif a == '--only' then
      i = i + 1
      only = {}
      for c in arg[i]:gmatch('[^,]+') do only[c] = true end
    elseif a == '--threads' then
      i = i + 1
      threads = {}
      for c in arg[i]:gmatch('[^,]+') do threads[#threads + 1] = tonumber(c) end
    elseif a == '--rounds' then i = i + 1; rounds = tonumber(arg[i])
    elseif a == '--no-torch' then use_torch = false
    elseif a == '--python' then i = i + 1; python = arg[i]
    else error('bench/run.lua: unknown argument ' .. a) end
    i = i + 1
  end
end

local function shquote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs a command; returns {case = {key = value}} from its RESULT lines, and its output.
local function collect(cmd)
  local p = io.popen(cmd .. ' 2>&1', 'r')
  local out = p:read('*a')
  p:close()
  local res = {}
  for c, k, v in out:gmatch('RESULT (%S+) (%S+) (%S+)') do
    res[k] = tonumber(v)
  end
  return res, out
end

local nnlua_cmd = shquote(root .. '/scripts/nnlua') .. ' ' .. shquote(here .. '/worker.lua')
local torch_cmd = shquote(python) .. ' ' .. shquote(here .. '/pytorch/bench.py')

local have_torch = false
if use_torch then
  local p = io.popen(shquote(python) .. " -c 'import torch; print(torch.__version__)' 2>/dev/null")
  local v = p:read('*l')
  p:close()
  if v and v ~= '' then have_torch = v end
end

-- rows: name, worker case, key, higher is better, pytorch case, target ratio, pytorch key
-- (default: the same key)
local rows = {
  { 'tutorial logreg (steps/s)', 'logreg', 'steps_per_s', true, 'logreg', 5 },
  { 'tutorial MLP (steps/s)', 'mlp', 'steps_per_s', true, 'mlp', 5 },
  { 'tutorial CNN (steps/s)', 'cnn', 'steps_per_s', true, 'cnn', 5 },
  { 'tutorial Elman RNN (steps/s)', 'rnn', 'steps_per_s', true, 'rnn', 5 },
  { 'tutorial Siamese (steps/s)', 'siamese', 'steps_per_s', true, 'siamese', 5 },
  { 'LeNet batch 64 (images/s)', 'lenet64', 'images_per_s', true, 'lenet64', 1.5 },
  { 'LeNet batch 256 (images/s)', 'lenet256', 'images_per_s', true, 'lenet256', 1.5 },
  { 'MLP 784-1024-1024-10 b128 (images/s)', 'mlp784', 'images_per_s', true, 'mlp784', 1.5 },
  { '  its 8 products alone, cblas_sgemm', 'mlp784_gemm', 'sgemm_images_per_s', true, 'mlp784', nil, 'images_per_s' },
  { '  its 8 products alone, nl_sgemm', 'mlp784_gemm', 'nl_sgemm_images_per_s', true, 'mlp784', nil, 'images_per_s' },
  { '  its flops at the cores\' FMA peak', 'peak', 'mlp784_images_per_s', true, 'mlp784', nil, 'images_per_s' },
  { 'FMA peak of the cores (GFLOP/s)', 'peak', 'fma_gflops', true },
  { 'affine GEMM (GFLOP/s)', 'gemm', 'affine_gflops', true },
  { 'OpenBLAS sgemm, same shapes (GFLOP/s)', 'gemm', 'sgemm_gflops', true },
  { 'static graph: us per function', 'overhead', 'static_us', false },
  { 'static backward: us per function', 'overhead', 'static_backward_us', false },
  { 'dynamic graph: us per function', 'overhead', 'dynamic_us', false, 'dyncall' },
  { 'tutorial loops: peak RSS (MiB)', 'memory', 'peak_rss_mib', false, 'memory', 1 },
}
local alloc_rows = {}
for _, c in ipairs { 'logreg', 'mlp', 'cnn', 'rnn', 'siamese' } do
  alloc_rows[#alloc_rows + 1] = { c, 'engine_allocs_after_first' }
end
for _, c in ipairs { 'logreg', 'mlp', 'cnn', 'rnn', 'siamese' } do
  alloc_rows[#alloc_rows + 1] = { c, 'iterator_allocs_steady' }
end

local load_start
do
  local f = io.open('/proc/loadavg', 'r')
  if f then load_start = tonumber((f:read('*l') or ''):match('^(%S+)')); f:close() end
end

-- ---- run every case once per thread count ------------------------------------------------
local cases, seen = {}, {}
for _, r in ipairs(rows) do
  if not seen[r[2]] and (not only or only[r[2]]) then seen[r[2]] = true; cases[#cases + 1] = r[2] end
end

io.stderr:write(('bench: %d nnlua cases%s, threads %s, %d rounds of %d repetitions\n'):format(
  #cases, have_torch and (', PyTorch ' .. have_torch) or '', table.concat(threads, ','), rounds, reps))
-- raw[case][threads] = list of {key = value}, one per round
local nn_raw, pt_raw = {}, {}
local function keep(raw, c, t, res)
  raw[c] = raw[c] or {}
  raw[c][t] = raw[c][t] or {}
  table.insert(raw[c][t], res)
end
local function run_nnlua(c, t, round)
  io.stderr:write(('  round %d  nnlua %-9s %d thread(s)\n'):format(round, c, t))
  local res, out = collect(('OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d %s %s %d %g'):format(
    t, t, nnlua_cmd, c, reps, scale))
  if next(res) == nil then io.stderr:write(out, '\n') end
  keep(nn_raw, c, t, res)
end
local function run_torch(c, t, round)
  io.stderr:write(('  round %d  torch %-9s %d thread(s)\n'):format(round, c, t))
  local res, out = collect(('OMP_NUM_THREADS=%d %s --threads %d --case %s --reps %d --scale %g'):format(
    t, torch_cmd, t, c, reps, scale))
  if next(res) == nil then io.stderr:write(out, '\n') end
  keep(pt_raw, c, t, res)
end
-- the PyTorch case of each nnlua case, run with the first nnlua case that names it (the
-- rows of the MLP's products alone compare with the MLP's PyTorch run)
local torch_of, torch_taken = {}, {}
for _, r in ipairs(rows) do
  if r[5] and not torch_taken[r[5]] then torch_of[r[2]], torch_taken[r[5]] = r[5], true end
end
for _, c in ipairs(cases) do
  local ptc = have_torch and torch_of[c]
  for round = 1, rounds do
    for _, t in ipairs(threads) do
      local torch_first = round % 2 == 0
      if ptc and torch_first then run_torch(ptc, t, round) end
      run_nnlua(c, t, round)
      if ptc and not torch_first then run_torch(ptc, t, round) end
    end
  end
end

-- per side, case and thread count: the median over the rounds of every key (allocation
-- counts: the largest, so that one round that allocated is not hidden)
local function median_of(list)
  table.sort(list)
  local n = #list
  if n == 0 then return nil end
  if n % 2 == 1 then return list[(n + 1) / 2] end
  return (list[n / 2] + list[n / 2 + 1]) / 2
end
local function reduce(raw)
  local out = {}
  for c, per_t in pairs(raw) do
    out[c] = {}
    for t, list in pairs(per_t) do
      local keys = {}
      for _, res in ipairs(list) do for k in pairs(res) do keys[k] = true end end
      local m = {}
      for k in pairs(keys) do
        local vals = {}
        for _, res in ipairs(list) do vals[#vals + 1] = res[k] end
        if k:match('allocs') then
          table.sort(vals)
          m[k] = vals[#vals]
        else
          m[k] = median_of(vals)
        end
      end
      out[c][t] = m
    end
  end
  return out
end
local nn_res, pt_res = reduce(nn_raw), reduce(pt_raw)

-- ---- the table -----------------------------------------------------------------------------
local function best(per_thread, key, higher)
  local b, bt
  for _, t in ipairs(threads) do
    local v = per_thread and per_thread[t] and per_thread[t][key]
    if v and (not b or (higher and v > b) or (not higher and v < b)) then b, bt = v, t end
  end
  return b, bt
end

local function fmt(v)
  if v == nil then return '-' end
  if v >= 1000 then return ('%.0f'):format(v) end
  if v >= 100 then return ('%.1f'):format(v) end
  if v >= 1 then return ('%.2f'):format(v) end
  return ('%.3f'):format(v)
end

local json_rows = {}
local lines = {}
local function line(...) lines[#lines + 1] = string.format(...) end
local head = ('%-40s %10s %10s %10s | %10s %10s %10s | %8s %7s'):format(
  'row', 'nnlua 1T', 'nnlua 2T', 'best', 'torch 1T', 'torch 2T', 'best', 'ratio', 'target')
line('%s', head)
line('%s', string.rep('-', #head))
for _, r in ipairs(rows) do
  local name, c, key, higher, ptc, target = r[1], r[2], r[3], r[4], r[5], r[6]
  if nn_res[c] then
    local v1 = nn_res[c][1] and nn_res[c][1][key]
    local v2 = nn_res[c][2] and nn_res[c][2][key]
    local b, bt = best(nn_res[c], key, higher)
    local p1, p2, pb, pbt
    local ptkey = r[7] or key
    if ptc and pt_res[ptc] then
      p1 = pt_res[ptc][1] and pt_res[ptc][1][ptkey]
      p2 = pt_res[ptc][2] and pt_res[ptc][2][ptkey]
      pb, pbt = best(pt_res[ptc], ptkey, higher)
    end
    local ratio
    if b and pb then ratio = higher and b / pb or pb / b end
    if key == 'affine_gflops' then
      local s = best(nn_res[c], 'sgemm_gflops', true)
      if b and s then ratio = b / s; target = 0.9 end
    end
    local tstr = target and ((key == 'affine_gflops') and '>=0.90' or ('>=' .. target)) or ''
    if key == 'static_us' then tstr = '<0.5us' end
    local met = ''
    if key == 'static_us' then met = b and (b < 0.5 and ' ok' or ' NO') or ''
    elseif ratio and target then met = ratio >= target and ' ok' or ' NO' end
    line('%-40s %10s %10s %10s | %10s %10s %10s | %8s %7s%s', name, fmt(v1), fmt(v2),
         b and (fmt(b) .. '@' .. bt) or '-', fmt(p1), fmt(p2), pb and (fmt(pb) .. '@' .. pbt) or '-',
         ratio and ('%.2fx'):format(ratio) or '-', tstr, met)
    json_rows[#json_rows + 1] = { name = name, case = c, key = key, nnlua = { v1, v2, b, bt },
                                  torch = { p1, p2, pb, pbt }, ratio = ratio, target = target }
  end
end
local alloc_parts = {}
for _, a in ipairs(alloc_rows) do
  local res = nn_res[a[1]]
  if res then
    local v = best(res, a[2], false)
    if v then
      alloc_parts[#alloc_parts + 1] = ('%s %s=%d'):format(a[1], a[2], v)
      json_rows[#json_rows + 1] = { name = a[1] .. ' ' .. a[2], case = a[1], key = a[2], nnlua = { v } }
    end
  end
end
if #alloc_parts > 0 then
  line('system allocations (nl_alloc_count) of the tutorial loops: engine = steps 2..201 on fixed batches;')
  line('iterator = steps 1501..2500 fed by the data iterator (fresh batch arrays every step):')
  for i = 1, #alloc_parts, 5 do line('  %s', table.concat(alloc_parts, ', ', i, math.min(#alloc_parts, i + 4))) end
end
if not use_torch then
  line('PyTorch not run (--no-torch): nnlua numbers only.')
elseif not have_torch then
  line('PyTorch is absent (%s -c "import torch" fails): nnlua numbers only.', python)
end
local function loadavg()
  local f = io.open('/proc/loadavg', 'r')
  if not f then return nil end
  local l = tonumber((f:read('*l') or ''):match('^(%S+)'))
  f:close()
  return l
end
local load_end = loadavg()
-- which of OpenBLAS's kernels ran (DYNAMIC_ARCH picks them by CPU or OPENBLAS_CORETYPE)
local blas_core
do
  local ok, ffi = pcall(require, 'ffi')
  if ok and nn and nn.lib then
    pcall(ffi.cdef, 'char *openblas_get_corename(void);')
    local ok2, name = pcall(function() return ffi.string(nn.lib.C.openblas_get_corename()) end)
    if ok2 then blas_core = name end
  end
end
if (load_start and load_start > 0.5) or (load_end and load_end > 1.5) then
  line(('note: the machine was busy (load average %.2f at the start, %.2f at the end): 2-thread '
        .. 'numbers of both sides suffer first; re-run when it is idle.'):format(load_start or 0, load_end or 0))
end
line('OpenBLAS kernels: %s%s', blas_core or '?',
     os.getenv('OPENBLAS_CORETYPE') and (' (OPENBLAS_CORETYPE=' .. os.getenv('OPENBLAS_CORETYPE') .. ')') or '')
print(table.concat(lines, '\n'))

-- ---- one JSON line --------------------------------------------------------------------------
local function jv(v)
  local t = type(v)
  if v == nil then return 'null' end
  if t == 'number' then
    if v ~= v or v == math.huge or v == -math.huge then return 'null' end
    return ('%.6g'):format(v)
  end
  if t == 'boolean' then return tostring(v) end
  if t == 'string' then return '"' .. v:gsub('[%c"\\]', function(ch) return ('\\u%04x'):format(ch:byte()) end) .. '"' end
  local parts = {}
  if #v > 0 or next(v) == nil then
    for i = 1, table.maxn(v) do parts[i] = jv(v[i]) end
    return '[' .. table.concat(parts, ',') .. ']'
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = jv(tostring(k)) .. ':' .. jv(v[k]) end
  return '{' .. table.concat(parts, ',') .. '}'
end
local commit = io.popen('git -C ' .. shquote(root) .. ' rev-parse --short HEAD 2>/dev/null'):read('*l') or ''
local dirty = io.popen('git -C ' .. shquote(root) .. ' status --porcelain -uno 2>/dev/null | head -1'):read('*l')
local out = { commit = commit .. ((dirty and dirty ~= '') and '+dirty' or ''), torch = have_torch or false, python = python,
              threads = threads, reps = reps, rounds = rounds, blas = blas_core, load = { load_start, load_end }, rows = {} }
for _, r in ipairs(json_rows) do
  out.rows[#out.rows + 1] = { name = r.name, key = r.key,
    nnlua = { t1 = r.nnlua[1], t2 = r.nnlua[2], best = r.nnlua[3], best_threads = r.nnlua[4] },
    torch = r.torch and r.torch[3] and { t1 = r.torch[1], t2 = r.torch[2], best = r.torch[3], best_threads = r.torch[4] } or nil,
    ratio = r.ratio, target = r.target }
end
print('JSON ' .. jv(out))
