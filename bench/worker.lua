-- bench/worker.lua: measures one benchmark case in this process and prints
--   RESULT <case> <key> <value>
-- lines for bench/run.lua, which starts one worker per case and thread count (with
-- OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set). Usage:
--   ./scripts/nnlua bench/worker.lua CASE [reps] [scale]
-- Cases: logreg mlp cnn rnn siamese (tutorial loops, steps/s), lenet64 lenet256 mlp784
-- (images/s), mlp784_gemm (that MLP step's products alone, images/s), peak (the cores' FMA
-- peak, GFLOP/s, and that MLP step's images/s at it), gemm (affine vs
-- cblas_sgemm, GFLOP/s), overhead (us per function, static and dynamic), memory (peak RSS
-- of the five tutorial loops, MiB).
local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or 'bench'
package.path = here .. '/?.lua;' .. package.path

local ffi = require 'ffi'
local nets = require 'nets'
local C = nn.lib.C

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } nl_bench_timespec;
int clock_gettime(int clk, nl_bench_timespec *ts);
]]
local ts = ffi.new('nl_bench_timespec')
local CLOCK_MONOTONIC = 1
local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local case = arg[1] or error('usage: worker.lua CASE [reps] [scale]')
local reps = tonumber(arg[2]) or 5
local scale = tonumber(arg[3]) or 1

local function median(t)
  local s = {}
  for i = 1, #t do s[i] = t[i] end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

local function result(key, value)
  print(('RESULT %s %s %.6g'):format(case, key, value))
  io.stdout:flush()
end

-- Median seconds per call of fn over reps repetitions of n calls (after warmup calls).
local function time_per_call(fn, n, warmup)
  for _ = 1, warmup do fn() end
  local times = {}
  for r = 1, reps do
    local t0 = now()
    for _ = 1, n do fn() end
    times[r] = (now() - t0) / n
  end
  return median(times)
end

local function vm_hwm_mib()
  local f = io.open('/proc/self/status', 'r')
  if not f then return 0 / 0 end
  local kb
  for line in f:lines() do
    kb = kb or line:match('^VmHWM:%s*(%d+)')
  end
  f:close()
  return tonumber(kb) / 1024
end

local steps_of = { logreg = 2000, mlp = 1000, cnn = 300, rnn = 600, siamese = 200,
                   lenet64 = 12, lenet256 = 4, mlp784 = 30 }

local tutorial = { logreg = true, mlp = true, cnn = true, rnn = true, siamese = true }

if tutorial[case] then
  local step = nets.tutorial(case)
  local n = math.max(1, math.floor(steps_of[case] * scale))
  local dt = time_per_call(step, n, math.max(20, math.floor(n / 4)))
  result('steps_per_s', 1 / dt)
  -- System allocations (nl_alloc_count): the training step on fixed batches during steps
  -- 2..N must allocate nothing; fed by the iterator (fresh arrays every step, freed by the
  -- collector), the count must stop growing once the allocator's cache has warmed up.
  step = nets.tutorial(case, { prefetch = 8 })
  step()
  local a = tonumber(C.nl_alloc_count())
  for _ = 1, 200 do step() end
  result('engine_allocs_after_first', tonumber(C.nl_alloc_count()) - a)
  step = nets.tutorial(case)
  for _ = 1, 1500 do step() end
  a = tonumber(C.nl_alloc_count())
  for _ = 1, 1000 do step() end
  result('iterator_allocs_steady', tonumber(C.nl_alloc_count()) - a)
elseif case == 'lenet64' or case == 'lenet256' or case == 'mlp784' then
  local step, info
  if case == 'mlp784' then step, info = nets.mlp_big(128)
  else step, info = nets.lenet(case == 'lenet64' and 64 or 256) end
  local n = math.max(1, math.floor(steps_of[case] * scale))
  local dt = time_per_call(step, n, 3)
  result('images_per_s', info.images / dt)
elseif case == 'gemm' then
  -- affine's forward (y = x W + b: bias copy + one sgemm) against OpenBLAS's sgemm alone
  ffi.cdef [[
  void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
  ]]
  local ok, blas = pcall(ffi.load, 'openblas')
  if not ok then blas = ffi.load('libopenblas.so.0') end
  local RowMajor, NoTrans = 101, 111
  local shapes = { { 128, 784, 1024 }, { 128, 1024, 1024 }, { 1024, 1024, 1024 } }
  local tot_flop, t_affine, t_sgemm = 0, 0, 0
  for _, s in ipairs(shapes) do
    local m, k, n = s[1], s[2], s[3]
    local x = nn.Variable.from(nn.NdArray.randn({ m, k }))
    local w = nn.Variable.from(nn.NdArray.randn({ k, n }))
    local b = nn.Variable.from(nn.NdArray.randn({ n }))
    local y = F.affine(x, w, b)
    local flop = 2 * m * n * k
    local calls = math.max(2, math.floor(2e9 * scale / flop))
    local ta = time_per_call(function() y:forward() end, calls, 2)
    local px, pw = x.d:ptr(), w.d:ptr()
    local py = y.d:ptr(C.NL_WRITE)
    local tg = time_per_call(function()
      blas.cblas_sgemm(RowMajor, NoTrans, NoTrans, m, n, k, 1, px, k, pw, n, 0, py, n)
    end, calls, 2)
    local tag = ('%dx%dx%d'):format(m, k, n)
    result('affine_gflops_' .. tag, flop / ta * 1e-9)
    result('sgemm_gflops_' .. tag, flop / tg * 1e-9)
    tot_flop, t_affine, t_sgemm = tot_flop + flop, t_affine + ta, t_sgemm + tg
  end
  result('affine_gflops', tot_flop / t_affine * 1e-9)
  result('sgemm_gflops', tot_flop / t_sgemm * 1e-9)
elseif case == 'mlp784_gemm' then
  -- The ceiling of the MLP row: the eight products of one training step of 784-1024-1024-10
  -- at batch 128 (forward x W for three layers; backward dW for three, dx for the upper two),
  -- alone, on the same data every time: through OpenBLAS's cblas_sgemm with its own threading
  -- and through the engine's nl_sgemm. images/s if the step were nothing but its products.
  ffi.cdef [[
  void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
  void nl_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc);
  ]]
  local ok, blas = pcall(ffi.load, 'openblas')
  if not ok then blas = ffi.load('libopenblas.so.0') end
  local B = 128
  -- {trans_a, trans_b, m, n, k}: C (m x n) = op(A) (m x k) op(B) (k x n), row-major
  local products = {
    { false, false, B, 1024, 784 }, { false, false, B, 1024, 1024 }, { false, false, B, 10, 1024 },
    { true, false, 1024, 10, B }, { false, true, B, 1024, 10 },
    { true, false, 1024, 1024, B }, { false, true, B, 1024, 1024 },
    { true, false, 784, 1024, B },
  }
  local bufs = {}
  for i, p in ipairs(products) do
    local m, n, k = p[3], p[4], p[5]
    bufs[i] = { nn.NdArray.randn({ m, k }), nn.NdArray.randn({ k, n }), nn.NdArray.zeros({ m, n }) }
  end
  local function step(use_nl)
    for i, p in ipairs(products) do
      local ta, tb, m, n, k = p[1], p[2], p[3], p[4], p[5]
      local a, b, c = bufs[i][1]:ptr(), bufs[i][2]:ptr(), bufs[i][3]:ptr(C.NL_WRITE)
      local lda, ldb = ta and m or k, tb and k or n
      if use_nl then
        C.nl_sgemm(ta, tb, m, n, k, 1e-3, a, lda, b, ldb, 1, c, n)
      else
        blas.cblas_sgemm(101, ta and 112 or 111, tb and 112 or 111, m, n, k, 1e-3, a, lda, b, ldb, 1, c, n)
      end
    end
  end
  local n = math.max(1, math.floor(30 * scale))
  result('sgemm_images_per_s', B / time_per_call(function() step(false) end, n, 3))
  result('nl_sgemm_images_per_s', B / time_per_call(function() step(true) end, n, 3))
elseif case == 'peak' then
  -- The cores' single-precision FMA peak (bench/fma_peak.c, built by `make bench`, run with
  -- this worker's OMP_NUM_THREADS), and the images/s of the MLP 784-1024-1024-10 step at
  -- batch 128 if its eight products (the flops of mlp784_gemm) ran at that peak: no engine
  -- and no BLAS can train that MLP faster on these cores.
  local exe = here .. '/../build/fma_peak'
  local p = io.popen("'" .. exe:gsub("'", "'\\''") .. "' 2>&1")
  local out = p:read('*a')
  p:close()
  local best
  for g in out:gmatch('PEAK %S+ %d+ (%S+)') do
    local v = tonumber(g)
    if v and (not best or v > best) then best = v end
  end
  if not best then error('bench/worker.lua: no FMA peak from ' .. exe .. ' (run `make bench`): ' .. out) end
  local flops_per_image = 2 * (2 * (784 * 1024 + 1024 * 1024 + 1024 * 10) + (1024 * 1024 + 1024 * 10))
  result('fma_gflops', best)
  result('mlp784_images_per_s', best * 1e9 / flops_per_image)
elseif case == 'overhead' then
  -- a chain of 100 add_scalar on a 1-element variable
  local x = nn.Variable({ 1 }, { need_grad = true })
  x.d = 1
  local h = x
  for _ = 1, 100 do h = F.add_scalar(h, 1) end
  local n = math.max(1, math.floor(2000 * scale))
  local ts_ = time_per_call(function() h:forward() end, n, 100)
  result('static_us', ts_ / 100 * 1e6)
  local tb = time_per_call(function() h:backward() end, n, 100)
  result('static_backward_us', tb / 100 * 1e6)
  local function build()
    local v = x
    for _ = 1, 100 do v = F.add_scalar(v, 1) end
    return v
  end
  local td = time_per_call(function() nn.auto_forward(build) end, math.max(1, math.floor(200 * scale)), 20)
  result('dynamic_us', td / 100 * 1e6)
elseif case == 'memory' then
  for _, name in ipairs { 'logreg', 'mlp', 'cnn', 'rnn', 'siamese' } do
    local step = nets.tutorial(name)
    for _ = 1, 200 do step() end
    collectgarbage()
  end
  result('peak_rss_mib', vm_hwm_mib())
else
  error('bench/worker.lua: unknown case ' .. tostring(case))
end
