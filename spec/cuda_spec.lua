-- The CUDA/cuDNN backend (cuda/, lua/nnlua/cuda.lua), tagged #cuda: run only these with
-- `busted -t cuda`. Where no device exists every case is pending with a message that says
-- why (no driver, no device, backend not built). Where one exists:
--   * every function with a "cuda" or "cudnn" implementation runs on the GPU and on the
--     CPU on the same inputs, forward and backward, and the outputs, the input gradients
--     (after two backward passes into pre-filled leaf gradients: accumulation, and
--     overwriting of intermediate gradients) and in-place updates (batch norm's running
--     statistics) agree within tolerance -- under the 'cudnn' context (cuDNN
--     implementations) and the 'cuda' context (the CUDA kernels they fall back to);
--   * .d on a device variable brings the data to the host; the solver kernels match the
--     CPU; a small CNN trains on the GPU; the tutorial's CNN section trains on the GPU
--     with the CPU's losses; the caching allocator stops calling cudaMalloc once a static
--     graph has run; bad device ids are clear errors.
-- NNLUA_CUDA_SPEC_SELFTEST=1 runs the comparisons with the CPU on both sides (checks this
-- file's harness on a machine without a GPU).
-- NNLUA_CUDA_EMU=1, where no device exists, runs the project's own CUDA code on the CPU
-- instead: build/libnnlua_cuda_emu.so (`make cuda-emu`, cuda/emu/: a test-only emulation of
-- the CUDA runtime, cuBLAS and cuDNN under every cuda/ .cu file, device.cu included -- the
-- kernels with real block sizes, barriers, warp shuffles and atomics, the cuBLAS calls of
-- layers.cu and the cuDNN calls of cudnn.cu and cudnn_deconv.cu as plain loops with cuDNN's
-- documented semantics, devices whose memory is host memory) is loaded through the real
-- path: NNLUA_CUDA_LIB names it and get_extension_context('cudnn', {device_id = 0}) loads it
-- with lua/nnlua/cuda.lua, whose nl_cuda_init checks the (emulated) driver and devices,
-- installs device.cu's device ops and caching allocator and registers backends "cuda" and
-- "cudnn". So every case runs: the cuDNN paths (descriptors, algorithm choice, workspaces,
-- alpha/beta) are compared with the CPU, a case checks that every function with a cuDNN
-- implementation made emulated cuDNN calls, cudaMalloc counting and device ids are checked,
-- and emulation-only cases shrink the emulated memory (out of memory is a clear error and
-- the process goes on), start a child process with no driver, no device, an old driver,
-- an old GPU or two devices (cuda/emu/cuda_runtime.h lists the NNLUA_CUDA_EMU_* variables),
-- or make the emulated cuDNN refuse calls with CUDNN_STATUS_NOT_SUPPORTED
-- (NNLUA_CUDA_EMU_CUDNN_REJECT, cuda/emu/cudnn.h) to run the fallbacks of cudnn.cu and
-- cudnn_deconv.cu ("when cuDNN refuses calls" below).
local ffi = require 'ffi'
local bit = require 'bit'
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local PF = require 'nnlua.parametric_functions'
local S = require 'nnlua.solvers'
local ext = require 'nnlua.ext_utils'
local NdArray = nn.NdArray
local C = nn.lib.C

local selftest = os.getenv('NNLUA_CUDA_SPEC_SELFTEST') == '1'
local cpu_ctx = ext.get_extension_context('cpu')

pcall(ffi.cdef, 'int setenv(const char *name, const char *value, int overwrite); int unsetenv(const char *name);')
local lib_dir = nn.lib.path:match('^(.*)/[^/]*$') or '.'
local emu_path = lib_dir .. '/libnnlua_cuda_emu.so'
local root = lib_dir:match('^(.*)/build[^/]*$') or '.'   -- the repository, as an absolute path
if root:sub(1, 1) ~= '/' then root = (os.getenv('PWD') or '.') .. '/' .. root end

-- true when the real backend (where nnlua.cuda looks first: beside libnnlua.so) finds a
-- device; asked without going through nnlua.context, which remembers its first answer
local function real_device()
  local path = lib_dir .. '/libnnlua_cuda.so'
  local f = io.open(path, 'rb')
  if f then f:close() else path = nn.lib.find_library('libnnlua_cuda', 'NNLUA_CUDA_LIB') end
  if not path then return false end
  pcall(ffi.cdef, require 'nnlua.cuda_cdef')
  local ok, lib = pcall(ffi.load, path)
  if not ok then return false end
  local n = lib.nl_cuda_device_count()
  C.nl_clear_error()
  return n > 0
end

-- The contexts, or why there are none; emu: the emulation library's namespace when the
-- cases run in the CPU emulation.
local ctx_cudnn, ctx_cuda, why, emu
do
  local want_emu = not selftest and os.getenv('NNLUA_CUDA_EMU') == '1'
  local emu_missing
  if want_emu and (os.getenv('NNLUA_CUDA_LIB') or '') == '' and not real_device() then
    local f = io.open(emu_path, 'rb')
    if f then f:close() else emu_missing = true end
    ffi.C.setenv('NNLUA_CUDA_LIB', emu_path, 1)
  end
  local ok, res = pcall(ext.get_extension_context, 'cudnn', { device_id = 0 })
  if ok then
    ctx_cudnn = res
    ctx_cuda = ext.get_extension_context('cuda', { device_id = 0 })
    local cuda = require 'nnlua.cuda'
    pcall(ffi.cdef, 'long long nl_cuda_emu_launches(void); long long nl_cuda_emu_cudnn_calls(void);'
                    .. 'long long nl_cuda_emu_cuda_mallocs(int dev); long long nl_cuda_emu_device_bytes(int dev);')
    if pcall(function() return cuda.C.nl_cuda_emu_launches end) then emu = cuda.C end
  else
    why = tostring(res):gsub('^.-no CUDA available: ', '')
    if emu_missing then why = ('NNLUA_CUDA_EMU=1 but %s is not built (run `make cuda-emu`)'):format(emu_path) end
  end
  if selftest then ctx_cudnn, ctx_cuda = cpu_ctx, cpu_ctx end
end
local have_gpu = ctx_cudnn ~= nil
local on_gpu = emu and 'in the CPU emulation' or 'on the GPU'

-- ---- comparison helpers ------------------------------------------------------------------

local function max_violation(got, want, atol, rtol)
  local pg, pw = got:ptr(), want:ptr()
  for i = 0, want.size - 1 do
    local a, b = pg[i], pw[i]
    local same = a == b or (a ~= a and b ~= b)     -- equal, equal infinities, or both NaN
    if not same then
      local d = math.abs(a - b)
      if d ~= d or d > atol + rtol * math.abs(b) then return i, a, b end
    end
  end
end

local function assert_close(got, want, atol, rtol, what)
  assert(got.size == want.size, ('%s: %d values %s, %d on the CPU'):format(what, got.size, on_gpu, want.size))
  local i, a, b = max_violation(got, want, atol, rtol)
  if i then
    error(('%s: element %d is %.7g %s, %.7g on the CPU (atol %g, rtol %g)'):format(what, i + 1, a, on_gpu, b, atol, rtol), 2)
  end
end

local function randn(shape, seed)
  nn.seed(seed)
  return NdArray.randn(shape)
end

local function uniform(shape, lo, hi, seed)
  nn.seed(seed)
  return NdArray.rand(shape, lo, hi)
end

-- Input makers: shape -> NdArray (seeded per input).
local function normal(shape) return function(seed) return randn(shape, seed) end end
local function positive(shape) return function(seed) return uniform(shape, 0.5, 2.0, seed) end end
local function range(shape, lo, hi) return function(seed) return uniform(shape, lo, hi, seed) end end
local function labels(shape, classes)
  return function(seed)
    local a = uniform(shape, 0, classes, seed)
    local p = a:ptr(C.NL_READWRITE)
    for i = 0, a.size - 1 do p[i] = math.min(classes - 1, math.floor(p[i])) end
    return a
  end
end
local function binary01(shape)
  return function(seed)
    local a = uniform(shape, 0, 1, seed)
    local p = a:ptr(C.NL_READWRITE)
    for i = 0, a.size - 1 do p[i] = p[i] > 0.5 and 1 or 0 end
    return a
  end
end
-- normal values with some exact zeros, ties, NaNs and infinities (logic functions)
local function specials(shape)
  return function(seed)
    local a = randn(shape, seed)
    local p = a:ptr(C.NL_READWRITE)
    local s = { 0, 1, -1, 0 / 0, math.huge, -math.huge, 0.5 }
    for i = 0, a.size - 1, 3 do p[i] = s[(i / 3) % #s + 1] end
    return a
  end
end

-- Runs one case in a context: forward, then two backward passes into leaf gradients that
-- start from fixed values (accumulation) with the differentiable inputs passed through an
-- identity first (so the function's own input gradients are intermediate: overwritten).
-- Returns y, the leaves' gradients and the leaves' data afterwards, y's node's backend and
-- where y's data was after the forward (nl_array_where: 1 host, 2 device, 3 both).
-- around(phase, call), when given, makes each forward ('forward') and backward ('backward')
-- call: call() does it.
local function run_case(case, ctx, around)
  around = around or function(_, call) call() end
  local vals = {}
  for i, mk in ipairs(case.inputs) do vals[i] = mk(100 + i) end
  local grads0, dy = {}, nil
  return nn.context_scope(ctx, function()
    local xs, ins = {}, {}
    for i, v in ipairs(vals) do
      local g = case.grad[i] or false
      xs[i] = nn.Variable.from(v, { need_grad = g })
      ins[i] = (g and case.wrap ~= false) and F.identity(xs[i]) or xs[i]
    end
    local y = case.fn(unpack(ins))
    around('forward', function() y:forward() end)
    local where = C.nl_array_where(C.nl_var_data(y))
    local res = { y = y.d:copy(), g = {}, d = {}, backend = y.parent and ffi.string(C.nl_func_backend_name(y.parent)),
                  where = where }
    local any = false
    for i = 1, #xs do any = any or (case.grad[i] or false) end
    if any and not case.no_backward then
      dy = randn(y.shape, 7)
      for i, x in ipairs(xs) do
        if case.grad[i] then
          grads0[i] = randn(x.shape, 50 + i)
          x.g = grads0[i]
        end
      end
      around('backward', function() y:backward { grad = dy } end)
      around('backward', function() y:backward { grad = dy } end)
      for i, x in ipairs(xs) do if case.grad[i] then res.g[i] = x.g:copy() end end
    end
    for i, x in ipairs(xs) do res.d[i] = x.d:copy() end
    return res
  end)
end

local function compare(case, ctx, label, around)
  local want = run_case(case, cpu_ctx)
  local got = run_case(case, ctx, around)
  local atol, rtol = case.atol or 2e-4, case.rtol or 2e-3
  local gatol, grtol = case.grad_atol or 2e-3, case.grad_rtol or 5e-3
  assert_close(got.y, want.y, atol, rtol, label .. ': forward')
  for i, g in pairs(want.g) do assert_close(got.g[i], g, gatol, grtol, label .. ': gradient of input ' .. i) end
  for i, d in ipairs(want.d) do assert_close(got.d[i], d, atol, rtol, label .. ': data of input ' .. i .. ' afterwards') end
  return got
end

-- ---- the cases ------------------------------------------------------------------------------

local S234 = { 2, 3, 4 }
local cases = {}      -- name -> list of cases
local function add(name, case)
  case.grad = case.grad or {}
  cases[name] = cases[name] or {}
  table.insert(cases[name], case)
end

-- element-wise unary: default normal inputs; some need a domain or an argument
local domain = {
  log = positive(S234), asin = range(S234, -0.9, 0.9), acos = range(S234, -0.9, 0.9),
  r_div_scalar = positive(S234), pow_scalar = positive(S234), sign = specials(S234),
  isnan = specials(S234), isinf = specials(S234), reset_nan = specials(S234), reset_inf = specials(S234),
  logical_not = specials(S234),
}
local args = {
  pow_scalar = { 2.5 }, r_pow_scalar = { 1.7 }, add_scalar = { 0.3 }, mul_scalar = { -1.5 },
  r_sub_scalar = { 2 }, r_div_scalar = { 3 }, maximum_scalar = { 0.2 }, minimum_scalar = { -0.2 },
  leaky_relu = { 0.2 }, elu = { 1.3 }, softplus = { 2 }, reset_nan = { 9 }, reset_inf = { -9 },
  logical_and_scalar = { true }, logical_or_scalar = { false }, logical_xor_scalar = { true },
  equal_scalar = { 0 }, not_equal_scalar = { 0 }, greater_scalar = { 0.1 }, less_scalar = { 0.1 },
  greater_equal_scalar = { 0 }, less_equal_scalar = { 0 }, sign = { 0.5 },
}
local logic = {
  equal = true, not_equal = true, greater = true, greater_equal = true, less = true, less_equal = true,
  logical_and = true, logical_or = true, logical_xor = true,
}
local binary = {
  add2 = true, sub2 = true, mul2 = true, div2 = true, pow2 = true, maximum2 = true, minimum2 = true, atan2 = true,
}
local function unary_case(name)
  local a = args[name] or {}
  add(name, { inputs = { domain[name] or normal(S234) }, grad = { true },
              fn = function(x) return F[name](x, unpack(a)) end })
end
local function binary_case(name, sa, sb)
  local mk_a = (name == 'pow2') and positive(sa) or (logic[name] and specials(sa) or normal(sa))
  local mk_b = (name == 'div2') and positive(sb) or (logic[name] and specials(sb) or normal(sb))
  add(name, { inputs = { mk_a, mk_b }, grad = { true, true }, fn = function(a, b) return F[name](a, b) end })
end
for name in pairs(binary) do
  binary_case(name, S234, S234)
  binary_case(name, S234, { 3, 1 })
  binary_case(name, { 1, 3, 1 }, S234)
end
for name in pairs(logic) do
  binary_case(name, S234, S234)
  binary_case(name, S234, { 4 })
end
add('mul2', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.mul2(x, x) end })
add('add2', { inputs = { normal({ 64, 300 }), normal({ 300 }) }, grad = { true, true },
              fn = function(a, b) return F.add2(a, b) end })

add('selu', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.selu(x) end })
add('celu', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.celu(x, 1.2) end })
add('prelu', { inputs = { normal({ 2, 3, 4, 4 }), normal({ 3 }) }, grad = { true, true },
               fn = function(x, w) return F.prelu(x, w) end })
add('prelu', { inputs = { normal(S234), normal({ 1 }) }, grad = { true, true },
               fn = function(x, w) return F.prelu(x, w) end })
add('add_n', { inputs = { normal(S234), normal(S234), normal(S234) }, grad = { true, true, true },
               fn = function(a, b, c) return F.add_n(a, b, c) end })
add('mul_n', { inputs = { normal(S234), normal(S234), normal(S234) }, grad = { true, true, true },
               fn = function(a, b, c) return F.mul_n(a, b, c) end })
add('where', { inputs = { binary01({ 2, 3 }), normal(S234), normal(S234) }, grad = { false, true, true },
               fn = function(c, t, e) return F.where(c, t, e) end })
add('squared_error', { inputs = { normal(S234), normal(S234) }, grad = { true, true },
                       fn = function(a, b) return F.squared_error(a, b) end })
add('identity', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.identity(x) end })
-- the element-wise losses (losses.cu)
add('sigmoid_cross_entropy', { inputs = { normal(S234), binary01(S234) }, grad = { true, false },
                               fn = function(x, t) return F.sigmoid_cross_entropy(x, t) end })
add('binary_cross_entropy', { inputs = { range(S234, 0.05, 0.95), range(S234, 0, 1) }, grad = { true, true },
                              fn = function(x, t) return F.binary_cross_entropy(x, t) end })
add('absolute_error', { inputs = { normal(S234), normal(S234) }, grad = { true, true },
                        fn = function(a, b) return F.absolute_error(a, b) end })
add('huber_loss', { inputs = { normal(S234), normal(S234) }, grad = { true, true },
                    fn = function(a, b) return F.huber_loss(a, b, 0.5) end })
add('epsilon_insensitive_loss', { inputs = { normal(S234), normal(S234) }, grad = { true, true },
                                  fn = function(a, b) return F.epsilon_insensitive_loss(a, b, 0.3) end })
-- the views (views.cu): permutations, broadcasts (atomic scatter-adds backwards), joins
add('transpose', { inputs = { normal({ 2, 3, 4, 5 }) }, grad = { true },
                   fn = function(x) return F.transpose(x, { 3, 1, 4, 2 }) end })
add('broadcast', { inputs = { normal({ 3, 1, 4 }) }, grad = { true },
                   fn = function(x) return F.broadcast(x, { 2, 3, 5, 4 }) end })
add('broadcast_to', { inputs = { normal({ 2, 3, 4 }), normal({ 3 }) }, grad = { true, true },
                      fn = function(x, y) return F.broadcast_to(x, y, 2) end })
add('tile', { inputs = { normal({ 2, 3 }) }, grad = { true }, fn = function(x) return F.tile(x, { 2, 1, 3 }) end })
add('flip', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.flip(x, { 1, -1 }) end })
add('matrix_diag', { inputs = { normal({ 3, 4 }) }, grad = { true }, fn = function(x) return F.matrix_diag(x) end })
add('matrix_diag_part', { inputs = { normal({ 2, 4, 4 }) }, grad = { true },
                          fn = function(x) return F.matrix_diag_part(x) end })
add('concatenate', { inputs = { normal({ 2, 3, 4 }), normal({ 2, 5, 4 }), normal({ 2, 1, 4 }) },
                     grad = { true, false, true }, fn = function(a, b, c) return F.concatenate({ a, b, c }, 2) end })
add('stack', { inputs = { normal(S234), normal(S234) }, grad = { true, true },
               fn = function(a, b) return F.stack({ a, b }, -1) end })
-- split's outputs are joined again by stack (on the device too) to make one y
add('split', { inputs = { normal({ 3, 2, 4 }) }, grad = { true },
               fn = function(x) return F.stack({ F.split(x, 3) }, 1) end })
add('reshape', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.reshape(x, { 6, -1 }) end })
add('slice', { inputs = { normal({ 4, 5, 6 }) }, grad = { true },
               fn = function(x) return F.slice(x, { 1, 2, 6 }, { 4, 4, 1 }, { 2, 1, -2 }) end })
add('slice', { inputs = { normal({ 4, 5, 6 }) }, grad = { true },
               fn = function(x) return F.slice(x, { 2 }, { 3 }) end })

for _, r in ipairs {
  { shape = S234 }, { shape = S234, axis = 2 }, { shape = S234, axis = { 1, 3 } },
  { shape = S234, axis = { 1, 3 }, keep = true }, { shape = { 4, 5, 6, 7 }, axis = { 1, 3 } },
  { shape = { 70000 } }, { shape = { 64, 20000 }, axis = 1 }, { shape = { 3, 40000 }, axis = 2 },
  { shape = { 2, 3000, 5 }, axis = 2 },
} do
  for _, name in ipairs { 'sum', 'mean' } do
    local big = r.shape[1] * (r.shape[2] or 1) > 10000
    add(name, { inputs = { normal(r.shape) }, grad = { true }, atol = big and 5e-2 or 2e-4, rtol = 1e-3,
                fn = function(x) return F[name](x, r.axis, r.keep or false) end })
  end
end
for _, name in ipairs { 'softmax', 'log_softmax' } do
  add(name, { inputs = { normal({ 5, 10 }) }, grad = { true }, fn = function(x) return F[name](x) end })
  add(name, { inputs = { normal({ 2, 3, 4 }) }, grad = { true }, fn = function(x) return F[name](x, 2) end })
end
add('softmax_cross_entropy', { inputs = { normal({ 5, 10 }), labels({ 5, 1 }, 10) }, grad = { true, false },
                               fn = function(x, t) return F.softmax_cross_entropy(x, t) end })
add('softmax_cross_entropy', { inputs = { normal({ 2, 4, 3 }), labels({ 2, 1, 3 }, 4) }, grad = { true, false },
                               fn = function(x, t) return F.softmax_cross_entropy(x, t, 2) end })

add('affine', { inputs = { normal({ 4, 6 }), normal({ 6, 5 }), normal({ 5 }) }, grad = { true, true, true },
                fn = function(x, w, b) return F.affine(x, w, b) end })
add('affine', { inputs = { normal({ 2, 3, 4 }), normal({ 12, 2, 3 }) }, grad = { true, true },
                fn = function(x, w) return F.affine(x, w) end })
add('affine', { inputs = { normal({ 64, 257 }), normal({ 257, 33 }), normal({ 33 }) }, grad = { true, true, true },
                atol = 1e-3, grad_atol = 1e-2, fn = function(x, w, b) return F.affine(x, w, b) end })

for _, m in ipairs {
  { a = { 2, 3, 4 }, b = { 2, 4, 5 } }, { a = { 3, 4 }, b = { 2, 4, 5 } }, { a = { 2, 4, 3 }, b = { 2, 5, 4 }, ta = true, tb = true },
  { a = { 2, 1, 3, 4 }, b = { 1, 3, 4, 5 } }, { a = { 2, 3, 3, 4 }, b = { 4, 5 }, tb = false },
  { a = { 3, 4, 2 }, b = { 3, 4, 5 }, ta = true },
} do
  add('batch_matmul', { inputs = { normal(m.a), normal(m.b) }, grad = { true, true }, atol = 1e-3, grad_atol = 5e-3,
                        fn = function(a, b) return F.batch_matmul(a, b, m.ta or false, m.tb or false) end })
end

local conv_atol = { atol = 1e-3, grad_atol = 1e-2 }
local function conv_case(xs, ws, opts, bias, extra)
  local inputs = { normal(xs), normal(ws) }
  if bias then inputs[3] = normal({ ws[1] }) end
  local case = { inputs = inputs, grad = { true, true, bias and true or nil }, atol = conv_atol.atol,
                 grad_atol = conv_atol.grad_atol,
                 fn = function(x, w, b) return F.convolution(x, w, b, opts) end }
  for k, v in pairs(extra or {}) do case[k] = v end
  add('convolution', case)
end
conv_case({ 2, 3, 8, 8 }, { 4, 3, 3, 3 }, { pad = { 1, 1 }, stride = { 2, 2 } }, true)
conv_case({ 2, 4, 7, 6 }, { 6, 2, 3, 3 }, { group = 2, dilation = { 2, 1 }, pad = { 1, 0 } }, true)
conv_case({ 2, 3, 10 }, { 4, 3, 3 }, { pad = { 1 } }, true)
conv_case({ 1, 2, 5, 5, 5 }, { 3, 2, 2, 2, 2 }, { stride = { 1, 2, 1 } }, false)
conv_case({ 3, 5, 4, 4 }, { 2, 5, 1, 1 }, nil, true)
-- wrap = false: the gradients add straight into the leaves' (accum)
conv_case({ 2, 3, 6, 6 }, { 4, 3, 3, 3 }, { pad = { 1, 1 } }, true, { wrap = false })

for _, name in ipairs { 'max_pooling', 'average_pooling' } do
  add(name, { inputs = { normal({ 2, 3, 6, 6 }) }, grad = { true }, fn = function(x) return F[name](x, { 2, 2 }) end })
  add(name, { inputs = { normal({ 2, 3, 6, 5 }) }, grad = { true },
              fn = function(x) return F[name](x, { 3, 3 }, { stride = { 1, 2 }, pad = { 1, 1 } }) end })
  add(name, { inputs = { normal({ 2, 3, 7, 7 }) }, grad = { true },
              fn = function(x) return F[name](x, { 4, 4 }, { ignore_border = false }) end })
  add(name, { inputs = { normal({ 2, 2, 5, 4, 6 }) }, grad = { true }, fn = function(x) return F[name](x, { 2, 2, 3 }) end })
end
add('average_pooling', { inputs = { normal({ 2, 3, 6, 5 }) }, grad = { true },
                         fn = function(x) return F.average_pooling(x, { 3, 3 }, { stride = { 2, 2 }, pad = { 1, 1 }, including_pad = false }) end })

local stat = { 1, 3, 1, 1 }
add('batch_normalization', {
  inputs = { normal({ 4, 3, 5, 5 }), normal(stat), normal(stat), normal(stat), positive(stat) },
  grad = { true, true, true, false, false }, grad_atol = 5e-3,
  fn = function(x, b, g, m, v) return F.batch_normalization(x, b, g, m, v) end })
add('batch_normalization', {
  inputs = { normal({ 4, 3, 5, 5 }), normal(stat), normal(stat), normal(stat), positive(stat) },
  grad = { true, true, true, true, true },
  fn = function(x, b, g, m, v) return F.batch_normalization(x, b, g, m, v, { batch_stat = false }) end })
add('batch_normalization', {
  inputs = { normal({ 6, 5 }), normal({ 1, 5 }), normal({ 1, 5 }), normal({ 1, 5 }), positive({ 1, 5 }) },
  grad = { true, true, true, false, false }, grad_atol = 5e-3,
  fn = function(x, b, g, m, v) return F.batch_normalization(x, b, g, m, v, { decay_rate = 0.7 }) end })
add('batch_normalization', {
  inputs = { normal({ 1, 4, 1, 1 }), normal({ 1, 4, 1, 1 }), normal({ 1, 4, 1, 1 }), normal({ 1, 4, 1, 1 }),
             positive({ 1, 4, 1, 1 }) },
  grad = { false, true, true, false, false },
  fn = function(x, b, g, m, v) return F.batch_normalization(x, b, g, m, v) end })

-- layers.cu edge cases: empty products, base_axis, batch_matmul transposes and broadcasts,
-- 1x1 / grouped / dilated convolutions, batch norm over two axes, pooling without ignore_border
add('affine', { inputs = { normal({ 3, 0 }), normal({ 0, 4 }), normal({ 4 }) }, grad = { true, true, true }, fn = function(x, w, b) return F.affine(x, w, b) end })
add('affine', { inputs = { normal({ 3, 0 }), normal({ 0, 4 }) }, grad = { true, true }, fn = function(x, w) return F.affine(x, w) end })
add('affine', { inputs = { normal({ 0, 5 }), normal({ 5, 3 }), normal({ 3 }) }, grad = { true, true, true }, fn = function(x, w, b) return F.affine(x, w, b) end })
add('affine', { inputs = { normal({ 2, 3, 4 }), normal({ 4, 1 }), normal({ 1 }) }, grad = { true, true, true }, fn = function(x, w, b) return F.affine(x, w, b, { base_axis = 3 }) end })
for _, m in ipairs {
  { a = { 2, 1, 4, 3 }, b = { 1, 3, 4, 5 }, ta = true }, { a = { 2, 1, 3, 4 }, b = { 1, 3, 5, 4 }, tb = true },
  { a = { 2, 1, 4, 3 }, b = { 1, 3, 5, 4 }, ta = true, tb = true },
  { a = { 4, 3 }, b = { 2, 3, 4, 5 }, ta = true }, { a = { 2, 3, 3, 4 }, b = { 5, 4 }, tb = true },
  { a = { 2, 3, 4 }, b = { 2, 4, 5 }, ta = false, tb = false }, { a = { 2, 1, 4 }, b = { 2, 4, 1 } },
  { a = { 2, 4, 1 }, b = { 2, 4, 1 }, ta = true }, { a = { 1, 3, 2 }, b = { 4, 2, 3 }, ta = true, tb = true },
} do
  add('batch_matmul', { inputs = { normal(m.a), normal(m.b) }, grad = { true, true }, atol = 1e-3, grad_atol = 5e-3,
                        fn = function(a, b) return F.batch_matmul(a, b, m.ta or false, m.tb or false) end })
end
conv_case({ 2, 4, 5, 5 }, { 6, 2, 1, 1 }, { group = 2 }, true)
conv_case({ 2, 4, 5, 5 }, { 4, 4, 1, 1 }, { stride = { 2, 2 } }, false)
conv_case({ 2, 6, 9 }, { 6, 2, 4 }, { group = 3, stride = { 2 }, pad = { 2 }, dilation = { 2 } }, true)
conv_case({ 1, 2, 3, 4, 4 }, { 5, 3, 3, 3 }, { base_axis = 3, pad = { 1, 1 } }, true)
-- a small spread around a large mean (1e4 +- 0.01), inference with the running statistics:
-- the mean is subtracted before scaling on both backends (x * scale + (beta - mean * scale)
-- was 9% off here). No gradients: finite differences mean nothing on data this ill-conditioned.
add('batch_normalization', {
  inputs = { range({ 4, 2, 3, 3 }, 9999.99, 10000.01), normal({ 1, 2, 1, 1 }), positive({ 1, 2, 1, 1 }),
             function() return NdArray.full({ 1, 2, 1, 1 }, 10000) end,
             function() return NdArray.full({ 1, 2, 1, 1 }, 1e-4) end },
  grad = {}, atol = 2e-3, rtol = 2e-3,
  fn = function(x, b, g, m, v) return F.batch_normalization(x, b, g, m, v, { batch_stat = false }) end })
add('batch_normalization', {
  inputs = { normal({ 2, 3, 4 }), normal({ 1, 3, 4 }), normal({ 1, 3, 4 }), normal({ 1, 3, 4 }), positive({ 1, 3, 4 }) },
  grad = { true, true, true, false, false }, grad_atol = 5e-3,
  fn = function(x, b, g, m, v) return F.batch_normalization(x, b, g, m, v, { axes = { 2, 3 } }) end })
add('max_pooling', { inputs = { normal({ 2, 3, 6, 5 }) }, grad = { true },
  fn = function(x) return F.max_pooling(x, { 3, 2 }, { stride = { 2, 1 }, pad = { 1, 1 }, ignore_border = false }) end })
-- review stress shapes: sizes just above a block multiple (257 = NLC_THREADS + 1), batch 1,
-- zero-size axes (no kernel may be launched with 0 blocks), NaN/inf in max pooling, and a
-- sort long enough to take the bitonic-chunk + merge path (N > SORT_CHUNK) with NaNs
add('sum', { inputs = { normal({ 257, 65 }) }, grad = { true }, atol = 1e-3, fn = function(x) return F.sum(x, 1) end })
add('mean', { inputs = { normal({ 3, 0, 4 }) }, grad = { true }, fn = function(x) return F.mean(x, 2) end })
add('softmax', { inputs = { normal({ 1, 257 }) }, grad = { true }, fn = function(x) return F.softmax(x) end })
add('batch_matmul', { inputs = { normal({ 1, 1, 257 }), normal({ 1, 257, 3 }) }, grad = { true, true }, atol = 1e-3,
                      grad_atol = 5e-3, fn = function(a, b) return F.batch_matmul(a, b) end })
conv_case({ 0, 3, 5, 5 }, { 2, 3, 3, 3 }, nil, true)
add('max_pooling', { inputs = { specials({ 2, 2, 6, 6 }) }, grad = { true }, fn = function(x) return F.max_pooling(x, { 2, 2 }) end })
add('sort', { inputs = { specials({ 3, 1500 }) }, grad = { true }, fn = function(x) return F.sort(x, 2) end })

-- max, min, prod, norm, cumsum, cumprod (reduce_ext.cu): axes, keepdims, indices, p, scan options
for _, name in ipairs { 'max', 'min' } do
  add(name, { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F[name](x) end })
  add(name, { inputs = { normal(S234) }, grad = { true },
              fn = function(x) return F[name](x, { axis = 2, keepdims = true }) end })
  add(name, { inputs = { specials({ 4, 5, 6 }) }, grad = { true },
              fn = function(x) return F[name](x, { axis = { 1, 3 } }) end })
  add(name, { inputs = { binary01({ 3, 8 }) }, grad = { true },
              fn = function(x) return F.stack({ F[name](x, { axis = -1, with_index = true }) }, 1) end })
  add(name, { inputs = { normal({ 4, 5, 6 }) }, grad = { true },
              fn = function(x) return F[name](x, { axis = { 3, 1 }, keepdims = true, only_index = true }) end })
  add(name, { inputs = { normal({ 300, 64 }) }, grad = { true }, fn = function(x) return F[name](x, 1) end })
end
add('prod', { inputs = { range(S234, 0.5, 1.5) }, grad = { true }, fn = function(x) return F.prod(x, { axis = 2 }) end })
add('prod', { inputs = { specials(S234) }, grad = { true },
              fn = function(x) return F.prod(x, { axis = -1, keepdims = true }) end })
add('prod', { inputs = { normal({ 2, 3, 4, 5 }) }, grad = { true }, fn = function(x) return F.prod(x, { axis = { 2, 4 } }) end })
add('prod', { inputs = { positive({ 3, 4 }) }, grad = { true }, fn = function(x) return F.prod(x) end })
add('norm', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.norm(x) end })
add('norm', { inputs = { normal(S234) }, grad = { true },
              fn = function(x) return F.norm(x, { p = 1, axis = 2, keepdims = true }) end })
add('norm', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.norm(x, { p = 3, axis = { 1, 3 } }) end })
add('norm', { inputs = { binary01({ 6, 3 }) }, grad = { true }, fn = function(x) return F.norm(x, { p = 2.5, axis = 2 }) end })
for _, name in ipairs { 'cumsum', 'cumprod' } do
  add(name, { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F[name](x) end })
  add(name, { inputs = { normal(S234) }, grad = { true },
              fn = function(x) return F[name](x, { axis = 2, exclusive = true }) end })
  add(name, { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F[name](x, { axis = -1, reverse = true }) end })
  add(name, { inputs = { normal({ 3, 5, 2 }) }, grad = { true },
              fn = function(x) return F[name](x, { axis = 2, exclusive = true, reverse = true }) end })
end
add('cumsum', { inputs = { normal({ 64, 300 }) }, grad = { true }, fn = function(x) return F.cumsum(x, 2) end })
add('cumprod', { inputs = { binary01({ 4, 6 }) }, grad = { true }, fn = function(x) return F.cumprod(x, { axis = 2 }) end })
add('cumprod', { inputs = { specials({ 5, 7 }) }, grad = { true },
                 fn = function(x) return F.cumprod(x, { axis = 2, exclusive = true }) end })

-- the indexing functions (indexing.cu): offset tables (pad, shift; atomic scatter-adds
-- backwards where reflect/repeat/nearest repeat an offset), triangles, ids and labels
add('pad', { inputs = { normal(S234) }, grad = { true },
             fn = function(x) return F.pad(x, { 1, 2, 2, 1 }, 'constant', 0.5) end })
add('pad', { inputs = { normal(S234) }, grad = { true },
             fn = function(x) return F.pad(x, { 0, 1, 2, 1, 3, 3 }, 'reflect') end })
add('pad', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.pad(x, { 2, 0, 1, 4 }, 'repeat') end })
add('pad', { inputs = { normal({ 3, 3 }) }, grad = { true }, fn = function(x) return F.pad(x, { 5, 6 }, 'reflect') end })
add('pad', { inputs = { normal({ 2, 3, 40, 50 }) }, grad = { true },
             fn = function(x) return F.pad(x, { 3, 2, 1, 4 }, 'reflect') end })
add('shift', { inputs = { normal({ 2, 5 }) }, grad = { true }, fn = function(x) return F.shift(x, { -1, 3 }, 'nearest') end })
add('shift', { inputs = { normal({ 3, 5 }) }, grad = { true }, fn = function(x) return F.shift(x, { 1, -2 }, 'reflect') end })
add('shift', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.shift(x, { 3, 6 }, 'reflect') end })
add('shift', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.shift(x, { 2 }) end })
add('trilu', { inputs = { normal({ 4, 4 }) }, grad = { true }, fn = function(x) return F.trilu(x) end })
add('trilu', { inputs = { normal({ 2, 3, 5 }) }, grad = { true }, fn = function(x) return F.trilu(x, -1, false) end })
add('trilu', { inputs = { normal({ 2, 4, 3 }) }, grad = { true }, fn = function(x) return F.trilu(x, 1, true) end })
add('trilu', { inputs = { normal({ 3, 5 }) }, grad = { true }, fn = function(x) return F.trilu(x, 2, false) end })
add('one_hot', { inputs = { labels({ 5, 1 }, 10) }, fn = function(x) return F.one_hot(x, { 10 }) end })
add('one_hot', { inputs = { labels({ 2, 3, 2 }, 4) }, grad = { true }, fn = function(x) return F.one_hot(x, { 4, 5 }) end })
-- ids -3..4 for 4 classes: -3..-1 wrap around, 4 gives an all-zero row
add('one_hot', { inputs = { labels({ 12, 1 }, 8) }, fn = function(x) return F.one_hot(F.add_scalar(x, -3), { 4 }) end })
add('embed', { inputs = { labels({ 2, 3 }, 5), normal({ 5, 4 }) }, grad = { false, true },
               fn = function(x, w) return F.embed(x, w) end })
add('embed', { inputs = { labels({ 40 }, 3), normal({ 3, 2, 2 }) }, grad = { false, true },
               fn = function(x, w) return F.embed(x, w) end })
add('embed', { inputs = { labels({ 2, 2, 2 }, 4), normal({ 4 }) }, grad = { true, true },
               fn = function(x, w) return F.embed(x, w) end })
add('categorical_cross_entropy', { inputs = { range({ 5, 4 }, 0.1, 1), labels({ 5, 1 }, 4) }, grad = { true, false },
                                   fn = function(x, t) return F.categorical_cross_entropy(x, t) end })
add('categorical_cross_entropy', { inputs = { range({ 2, 3, 4 }, 0.1, 1), labels({ 2, 1, 4 }, 3) }, grad = { true, true },
                                   fn = function(x, t) return F.categorical_cross_entropy(x, t, 2) end })
add('kl_multinomial', { inputs = { range({ 3, 4 }, 0.2, 1), range({ 3, 4 }, 0.2, 1) }, grad = { true, true },
                        fn = function(p, q) return F.kl_multinomial(p, q) end })
add('kl_multinomial', { inputs = { range(S234, 0.2, 1), range(S234, 0.2, 1) }, grad = { false, true },
                        fn = function(p, q) return F.kl_multinomial(p, q, 3) end })
add('kl_multinomial', { inputs = { range({ 4, 3000 }, 0.2, 1), range({ 4, 3000 }, 0.2, 1) }, grad = { true, true },
                        fn = function(p, q) return F.kl_multinomial(p, q) end })
add('kl_multinomial', { inputs = { range({ 3, 4 }, 0.2, 1) }, grad = { true },
                        fn = function(p) return F.kl_multinomial(p, p) end })

-- deconvolution and depthwise_convolution (cudnn_deconv.cu): stride, pad, dilation, group,
-- output_padding, base_axis, 1-d/2-d/3-d, with and without bias; wrap = false makes the
-- function's own input gradients accumulate into the pre-filled leaf gradients
local function deconv_case(xs, ws, opts, bias, extra)
  local inputs = { normal(xs), normal(ws) }
  if bias then inputs[3] = normal({ ws[2] * (opts and opts.group or 1) }) end
  local case = { inputs = inputs, grad = { true, true, bias and true or nil }, atol = conv_atol.atol,
                 grad_atol = conv_atol.grad_atol,
                 fn = function(x, w, b) return F.deconvolution(x, w, b, opts) end }
  for k, v in pairs(extra or {}) do case[k] = v end
  add('deconvolution', case)
end
deconv_case({ 2, 3, 5, 5 }, { 3, 4, 3, 3 }, { pad = { 1, 1 }, stride = { 2, 2 } }, true)
deconv_case({ 2, 4, 4, 5 }, { 4, 3, 3, 3 }, { group = 2, dilation = { 2, 1 }, pad = { 1, 0 } }, true)
deconv_case({ 2, 3, 4, 4 }, { 3, 2, 3, 3 }, { stride = { 2, 3 }, pad = { 1, 1 }, output_padding = { 1, 2 } }, true)
deconv_case({ 2, 3, 6 }, { 3, 4, 3 }, { stride = { 2 }, output_padding = { 1 } }, true)
deconv_case({ 1, 2, 3, 3, 3 }, { 2, 3, 2, 2, 2 }, { stride = { 1, 2, 1 }, pad = { 0, 1, 0 } }, false)
deconv_case({ 2, 2, 3, 4, 4 }, { 3, 2, 2, 2 }, { base_axis = 3, stride = { 2, 2 } }, true)
deconv_case({ 2, 4, 5, 5 }, { 4, 1, 3, 3 }, { group = 4, pad = { 1, 1 } }, false)
deconv_case({ 3, 5, 4, 4 }, { 5, 2, 1, 1 }, nil, true)
deconv_case({ 2, 4, 4, 4 }, { 4, 3, 3, 3 }, { group = 2, stride = { 2, 2 }, pad = { 1, 1 }, output_padding = { 1, 0 } },
            true, { wrap = false })
deconv_case({ 2, 3, 5, 5 }, { 3, 4, 3, 3 }, { stride = { 2, 2 } }, true, { grad = { false, true, true } })
deconv_case({ 2, 3, 5, 5 }, { 3, 4, 3, 3 }, { pad = { 2, 2 } }, false, { grad = { true, false } })

local function dwconv_case(xs, ws, opts, bias, extra)
  local inputs = { normal(xs), normal(ws) }
  if bias then inputs[3] = normal({ ws[1] }) end
  local case = { inputs = inputs, grad = { true, true, bias and true or nil }, atol = conv_atol.atol,
                 grad_atol = conv_atol.grad_atol,
                 fn = function(x, w, b) return F.depthwise_convolution(x, w, b, opts) end }
  for k, v in pairs(extra or {}) do case[k] = v end
  add('depthwise_convolution', case)
end
dwconv_case({ 2, 3, 6, 6 }, { 3, 3, 3 }, { pad = { 1, 1 } }, true)
dwconv_case({ 2, 3, 7, 6 }, { 6, 3, 3 }, { multiplier = 2, stride = { 2, 1 }, dilation = { 1, 2 }, pad = { 1, 2 } }, true)
dwconv_case({ 2, 4, 10 }, { 8, 3 }, { multiplier = 2, pad = { 1 } }, false)
dwconv_case({ 1, 2, 4, 4, 4 }, { 2, 2, 2, 2 }, { stride = { 1, 2, 1 } }, true)
dwconv_case({ 2, 2, 3, 5, 5 }, { 9, 3, 3 }, { base_axis = 3, multiplier = 3, stride = { 2, 2 } }, true)
dwconv_case({ 2, 4, 6, 6 }, { 4, 3, 3 }, { pad = { 1, 1 } }, true, { wrap = false })
dwconv_case({ 2, 3, 6, 6 }, { 6, 3, 3 }, { multiplier = 2 }, true, { grad = { false, true, false } })

-- layer/instance/group/weight normalization, global average / sum pooling, unpooling
-- (norm_ext.cu): optional beta/gamma, batch/channel axes, groups, strides and pads; the
-- add2 cases use each input twice (the second backward adds into its gradient)
add('layer_normalization', { inputs = { normal({ 3, 4, 5 }), normal({ 1, 4, 5 }), normal({ 1, 4, 5 }) },
                             grad = { true, true, true }, fn = function(x, b, g) return F.layer_normalization(x, b, g) end })
add('layer_normalization', { inputs = { normal({ 2, 3, 4 }), normal({ 1, 1, 4 }) }, grad = { true, true },
                             fn = function(x, g) return F.layer_normalization(x, nil, g, { batch_axis = { 1, 2 }, eps = 0.1 }) end })
add('layer_normalization', { inputs = { normal({ 4, 5, 3 }), normal({ 4, 1, 3 }) }, grad = { true, true },
                             fn = function(x, b) return F.layer_normalization(x, b, nil, { batch_axis = { 2 } }) end })
add('layer_normalization', { inputs = { normal({ 64, 700 }) }, grad = { true }, fn = function(x) return F.layer_normalization(x) end })
add('layer_normalization', { inputs = { normal({ 3, 8 }), normal({ 1, 8 }), normal({ 1, 8 }) }, grad = { true, true, true },
                             fn = function(x, b, g) return F.add2(F.layer_normalization(x, b, g), F.layer_normalization(x, g, b)) end })
add('instance_normalization', { inputs = { normal({ 2, 3, 4, 5 }), normal({ 1, 3, 1, 1 }), normal({ 1, 3, 1, 1 }) },
                                grad = { true, true, true }, fn = function(x, b, g) return F.instance_normalization(x, b, g) end })
add('instance_normalization', { inputs = { normal({ 2, 3, 4 }), normal({ 2, 3, 1 }), normal({ 1, 3, 1 }) }, grad = { true, false, true },
                                fn = function(x, b, g) return F.instance_normalization(x, b, g, 2, { 1 }) end })
add('instance_normalization', { inputs = { normal({ 2, 4, 3 }) }, grad = { true },
                                fn = function(x) return F.instance_normalization(x, nil, nil, { channel_axis = -1 }) end })
add('group_normalization', { inputs = { normal({ 2, 4, 3 }), normal({ 1, 4, 1 }), normal({ 1, 4, 1 }) }, grad = { true, true, true },
                             fn = function(x, b, g) return F.group_normalization(x, b, g, 2) end })
add('group_normalization', { inputs = { normal({ 2, 6, 3, 2 }), normal({ 1, 6, 1, 1 }) }, grad = { true, true },
                             fn = function(x, b) return F.group_normalization(x, b, nil, 3) end })
add('group_normalization', { inputs = { normal({ 3, 5, 4, 6 }), normal({ 1, 1, 1, 6 }) }, grad = { true, true },
                             fn = function(x, g)
                               return F.group_normalization(x, nil, g, { num_groups = 3, channel_axis = -1, batch_axis = { 1, 2 } })
                             end })
add('group_normalization', { inputs = { normal({ 2, 4, 3 }), normal({ 1, 4, 1 }) }, grad = { true, true },
                             fn = function(x, b) return F.add2(F.group_normalization(x, b, b, 4), F.group_normalization(x, b, nil, 1)) end })
add('weight_normalization', { inputs = { normal({ 4, 3, 2 }), positive({ 4 }) }, grad = { true, true },
                              fn = function(w, g) return F.weight_normalization(w, g) end })
add('weight_normalization', { inputs = { normal({ 4, 3, 2 }), normal({ 3 }) }, grad = { true, true },
                              fn = function(w, g) return F.weight_normalization(w, g, 2) end })
add('weight_normalization', { inputs = { normal({ 5, 6 }), normal({ 6 }) }, grad = { false, true },
                              fn = function(w, g) return F.weight_normalization(w, g, -1, 1e-3) end })
add('weight_normalization', { inputs = { normal({ 3, 4 }), normal({ 3 }) }, grad = { true, true },
                              fn = function(w, g) return F.add2(F.weight_normalization(w, g), F.weight_normalization(w, g)) end })
add('global_average_pooling', { inputs = { normal({ 2, 3, 4, 5 }) }, grad = { true }, fn = function(x) return F.global_average_pooling(x) end })
add('global_average_pooling', { inputs = { normal({ 3, 4 }) }, grad = { true }, fn = function(x) return F.global_average_pooling(x) end })
add('global_average_pooling', { inputs = { normal({ 2, 2, 3000 }) }, grad = { true },
                                fn = function(x) return F.add2(F.global_average_pooling(x), F.global_average_pooling(x)) end })
add('sum_pooling', { inputs = { normal({ 2, 2, 4, 4 }) }, grad = { true }, fn = function(x) return F.sum_pooling(x, { 2, 2 }) end })
add('sum_pooling', { inputs = { normal({ 2, 2, 5, 5 }) }, grad = { true },
                     fn = function(x) return F.sum_pooling(x, { 3, 2 }, { 2, 1 }, true, { 1, 0 }) end })
add('sum_pooling', { inputs = { normal({ 1, 2, 5, 4 }) }, grad = { true }, fn = function(x) return F.sum_pooling(x, { 2, 3 }, nil, false) end })
add('sum_pooling', { inputs = { normal({ 1, 1, 5, 5 }) }, grad = { true },
                     fn = function(x) return F.sum_pooling(x, { 2, 2 }, { 2, 2 }, false, { 1, 1 }) end })
add('sum_pooling', { inputs = { normal({ 2, 3, 7 }) }, grad = { true }, fn = function(x) return F.sum_pooling(x, { 3 }, { 2 }, false, { 2 }) end })
add('sum_pooling', { inputs = { normal({ 1, 2, 3, 4, 4 }) }, grad = { true },
                     fn = function(x) return F.sum_pooling(x, { 2, 2, 2 }, { 1, 1, 1 }) end })
add('sum_pooling', { inputs = { normal({ 2, 2, 4, 4 }) }, grad = { true },
                     fn = function(x) return F.add2(F.sum_pooling(x, { 2, 2 }), F.sum_pooling(x, { 3, 3 }, { 1, 1 })) end })
add('unpooling', { inputs = { normal({ 2, 2, 2, 3 }) }, grad = { true }, fn = function(x) return F.unpooling(x, { 2, 2 }) end })
add('unpooling', { inputs = { normal({ 1, 1, 2, 2, 2 }) }, grad = { true }, fn = function(x) return F.unpooling(x, { 2, 1, 3 }) end })
add('unpooling', { inputs = { normal({ 2, 3, 4 }) }, grad = { true }, fn = function(x) return F.unpooling(x, { 3 }) end })
add('unpooling', { inputs = { normal({ 1, 2, 3, 2 }) }, grad = { true },
                   fn = function(x) return F.add2(F.unpooling(x, { 1, 1, 2, 3 }), F.unpooling(x, { 2, 3 })) end })

-- gather, gather_nd, scatter_nd, scatter_add (gather.cu): 1-based positions, negatives from
-- the end, repeated positions (atomic scatter-adds; scatter_nd without add: the last wins)
local function positions(shape, n)   -- -n..-1 and 1..n
  return function(seed)
    local a = uniform(shape, 0, 2 * n, seed)
    local p = a:ptr(C.NL_READWRITE)
    for i = 0, a.size - 1 do
      local v = math.min(2 * n - 1, math.floor(p[i]))
      p[i] = v < n and v + 1 or v - 2 * n
    end
    return a
  end
end
local function fixed(t) return function() return NdArray.from(t) end end
add('gather', { inputs = { normal({ 4, 3 }), positions({ 5 }, 4) }, grad = { true, true },
                fn = function(x, ix) return F.gather(x, ix) end })
add('gather', { inputs = { normal({ 3, 5 }), positions({ 2, 6 }, 5) }, grad = { true, false },
                fn = function(x, ix) return F.gather(x, ix, 2) end })
add('gather', { inputs = { normal(S234), positions({ 7 }, 3) }, grad = { true, false },
                fn = function(x, ix) return F.gather(x, ix, -2) end })
add('gather', { inputs = { normal({ 2, 4, 3 }), positions({ 2, 5 }, 4) }, grad = { true, true },
                fn = function(x, ix) return F.gather(x, ix, 2, 1) end })
add('gather', { inputs = { normal({ 3, 50, 20 }), positions({ 3, 200 }, 50) }, grad = { true, false },
                fn = function(x, ix) return F.gather(x, ix, 2, 1) end })
add('gather_nd', { inputs = { normal({ 3, 4 }), fixed { { 1, 3, -1, 1 }, { 2, 4, 1, 2 } } }, grad = { true, true },
                   fn = function(x, ix) return F.gather_nd(x, ix) end })
add('gather_nd', { inputs = { normal({ 3, 4, 2 }), fixed { { { 3, 1 }, { -1, 2 } } } }, grad = { true, false },
                   fn = function(x, ix) return F.gather_nd(x, ix) end })
add('gather_nd', { inputs = { normal({ 3, 4 }), fixed { 2, -3 } }, grad = { true, false },
                   fn = function(x, ix) return F.gather_nd(x, ix) end })
add('gather_nd', { inputs = { normal({ 5, 6, 30 }), positions({ 1, 40 }, 5) }, grad = { true, false },
                   fn = function(x, ix) return F.gather_nd(x, ix) end })
add('scatter_nd', { inputs = { normal({ 5 }), fixed { { 4, 1, -2, 4, 1 } } }, grad = { true, true },
                    fn = function(d, ix) return F.scatter_nd(d, ix, { shape = { 6 } }) end })
add('scatter_nd', { inputs = { normal({ 5 }), fixed { { 4, 1, -2, 4, 1 } }, normal({ 6 }) }, grad = { true, false, true },
                    fn = function(d, ix, out) return F.scatter_nd(d, ix, out) end })
add('scatter_nd', { inputs = { normal({ 5 }), fixed { { 4, 1, -2, 4, 1 } }, normal({ 6 }) }, grad = { true, false, true },
                    fn = function(d, ix, out) return F.scatter_nd(d, ix, out, nil, true) end })
add('scatter_nd', { inputs = { normal({ 2, 2, 4 }), fixed { { { 1, 2 }, { -3, 1 } }, { { 1, 1 }, { 2, 1 } } }, normal({ 3, 2, 4 }) },
                    grad = { true, true, true }, fn = function(d, ix, out) return F.scatter_nd(d, ix, out) end })
add('scatter_nd', { inputs = { normal({ 2, 2, 4 }), fixed { { { 1, 2 }, { -3, 1 } }, { { 1, 1 }, { 2, 1 } } } },
                    grad = { true, false }, fn = function(d, ix) return F.scatter_nd(d, ix, { shape = { 3, 2, 4 }, add = true }) end })
add('scatter_nd', { inputs = { normal({ 60, 7 }), positions({ 1, 60 }, 9), normal({ 9, 7 }) }, grad = { true, false, true },
                    fn = function(d, ix, out) return F.scatter_nd(d, ix, out) end })
add('scatter_nd', { inputs = { normal({ 60, 7 }), positions({ 1, 60 }, 9), normal({ 9, 7 }) }, grad = { true, false, true },
                    fn = function(d, ix, out) return F.scatter_nd(d, ix, out, nil, true) end })
add('scatter_add', { inputs = { normal({ 3, 4 }), positions({ 2, 4 }, 3), normal({ 2, 4 }) }, grad = { true, true, true },
                     fn = function(x0, ix, x1) return F.scatter_add(x0, ix, x1) end })
add('scatter_add', { inputs = { normal({ 3, 4 }), positions({ 3, 2 }, 4), normal({ 3, 2 }) }, grad = { true, false, true },
                     fn = function(x0, ix, x1) return F.scatter_add(x0, ix, x1, 2) end })
add('scatter_add', { inputs = { normal({ 3, 5 }), positions({ 1, 2 }, 5), normal({ 2, 3 }) }, grad = { true, false, true },
                     fn = function(x0, ix, x1) return F.scatter_add(x0, ix, x1, -1) end })
add('scatter_add', { inputs = { normal({ 4, 6, 5 }), positions({ 4, 30, 5 }, 6), normal({ 4, 32, 6 }) },
                     grad = { true, false, true }, fn = function(x0, ix, x1) return F.scatter_add(x0, ix, x1, 2) end })

-- sort (sort.cu): short lines (ranks), long lines (shared-memory chunks, then merges), ties,
-- NaN, infinities and signed zeros (stable, NaN last), reverse, values and/or indices
local function sort_case(mk, opts, extra)
  local case = { inputs = { mk }, grad = { true }, fn = function(x)
    if opts.with_index then return F.stack({ F.sort(x, opts) }, 1) end
    if next(opts) == nil then return F.sort(x) end   -- {} would be read as the axis
    return F.sort(x, opts)
  end }
  for k, v in pairs(extra or {}) do case[k] = v end
  add('sort', case)
end
sort_case(normal(S234), {})
sort_case(normal({ 3, 5, 4 }), { axis = 2, reverse = true })
sort_case(specials({ 4, 9 }), { with_index = true })
sort_case(specials({ 3, 7, 2 }), { axis = 2, only_index = true })
sort_case(fixed { { 0, -0.0, 1, 0 / 0, -1, 0, -0.0, math.huge, -math.huge, 1, 0 / 0, 0 } }, { with_index = true })
sort_case(fixed { { 0, -0.0, 1, 0 / 0, -1, 0, -0.0, math.huge, -math.huge, 1, 0 / 0, 0 } }, { reverse = true, with_index = true })
sort_case(normal({ 2, 300 }), {})
sort_case(normal({ 2, 2500, 3 }), { axis = 2, with_index = true })
sort_case(specials({ 3000 }), { reverse = true, with_index = true })
sort_case(binary01({ 2, 1500 }), { only_index = true })
sort_case(normal({ 500, 10 }), { reverse = true })
sort_case(normal({ 0, 5 }), {})
sort_case(normal({ 3, 200 }), { with_index = true }, { wrap = false })

-- interpolate (interpolate.cu): linear and nearest, every coordinate rule, 1-3 spatial
-- axes, channel_last, up- and downsampling, output size 1; backward gathers per input
local function interp_case(shape, a, b, extra)
  local case = { inputs = { normal(shape) }, grad = { true },
                 fn = function(x) if b then return F.interpolate(x, a, b) end return F.interpolate(x, a) end }
  for k, v in pairs(extra or {}) do case[k] = v end
  add('interpolate', case)
end
interp_case({ 2, 3, 4, 5 }, { output_size = { 7, 3 } })
interp_case({ 2, 3, 4, 5 }, { output_size = { 8, 10 }, align_corners = true })
interp_case({ 2, 3, 4, 5 }, { output_size = { 5, 7 }, half_pixel = true })
interp_case({ 2, 3, 4, 5 }, { 2, 1.5 }, { mode = 'nearest' })
interp_case({ 2, 3, 4, 5 }, { output_size = { 3, 9 }, mode = 'nearest', half_pixel_for_nn = true })
interp_case({ 2, 3, 4, 5 }, { output_size = { 7, 4 }, mode = 'nearest', half_pixel = true })
interp_case({ 2, 3, 4, 5 }, { output_size = { 6, 6 }, mode = 'nearest', align_corners = true })
interp_case({ 2, 3, 7 }, { output_size = { 12 } })
interp_case({ 1, 2, 3, 4, 5 }, { output_size = { 5, 3, 7 } })
interp_case({ 1, 2, 3, 4, 5 }, { output_size = { 2, 6, 4 }, mode = 'nearest' })
interp_case({ 2, 4, 5, 3 }, { output_size = { 6, 8 }, channel_last = true })
interp_case({ 2, 4, 5, 3 }, { output_size = { 3, 9 }, mode = 'nearest', channel_last = true })
interp_case({ 1, 1, 9, 9 }, { output_size = { 2, 3 } })
interp_case({ 2, 2, 3, 4 }, { output_size = { 1, 5 } })
interp_case({ 0, 2, 3, 3 }, { output_size = { 4, 4 } })
interp_case({ 2, 3, 40, 30 }, { output_size = { 61, 17 }, half_pixel = true })
interp_case({ 2, 2, 4, 5 }, { output_size = { 9, 8 } }, nil, { wrap = false })

-- top_n_error, binary_error, confusion_matrix (validation.cu): axes, n, ties; the inputs
-- get zero gradients
add('top_n_error', { inputs = { normal({ 5, 10 }), labels({ 5, 1 }, 10) }, grad = { true, true },
                     fn = function(x, t) return F.top_n_error(x, t) end })
add('top_n_error', { inputs = { normal({ 2, 4, 3 }), labels({ 2, 1, 3 }, 4) }, grad = { true, false },
                     fn = function(x, t) return F.top_n_error(x, t, { axis = 2, n = 3 }) end })
add('top_n_error', { inputs = { binary01({ 6, 5 }), labels({ 6, 1 }, 5) }, grad = { false, false },
                     fn = function(x, t) return F.top_n_error(x, t, -1, 2) end })
add('top_n_error', { inputs = { normal({ 3000, 7 }), labels({ 3000, 1 }, 7) }, fn = function(x, t) return F.top_n_error(x, t, 2, 4) end })
add('binary_error', { inputs = { range(S234, 0, 1), binary01(S234) }, grad = { true, true },
                      fn = function(x, t) return F.binary_error(x, t) end })
add('binary_error', { inputs = { specials({ 5, 7 }), range({ 5, 7 }, 0, 1) }, fn = function(x, t) return F.binary_error(x, t) end })
add('confusion_matrix', { inputs = { normal({ 20, 4 }), labels({ 20, 1 }, 4) }, grad = { true, true },
                          fn = function(x, t) return F.confusion_matrix(x, t) end })
add('confusion_matrix', { inputs = { normal({ 3, 5, 4 }), labels({ 3, 1, 4 }, 5) }, grad = { true, false },
                          fn = function(x, t) return F.confusion_matrix(x, t, 2) end })
add('confusion_matrix', { inputs = { binary01({ 30, 3 }), labels({ 30, 1 }, 3) }, fn = function(x, t) return F.confusion_matrix(x, t) end })
add('confusion_matrix', { inputs = { normal({ 5000, 3 }), labels({ 5000, 1 }, 3) }, fn = function(x, t) return F.confusion_matrix(x, t) end })

-- clip_grad_by_value, clip_grad_by_norm (clip_grad.cu): identity forward, clipped gradient;
-- per-axes norms, all axes, a zero gradient (norm 0)
add('clip_grad_by_value', { inputs = { normal(S234), range(S234, -1, 0), range(S234, 0, 1) }, grad = { true, true, true },
                            fn = function(x, lo, hi) return F.clip_grad_by_value(x, lo, hi) end })
add('clip_grad_by_value', { inputs = { normal(S234), range(S234, -0.5, 0), range(S234, 0, 0.5) }, grad = { true, true, false },
                            wrap = false, fn = function(x, lo, hi) return F.clip_grad_by_value(x, lo, hi) end })
add('clip_grad_by_value', { inputs = { normal({ 64, 300 }), range({ 64, 300 }, -1, 0), range({ 64, 300 }, 0, 1) }, grad = { true },
                            fn = function(x, lo, hi) return F.clip_grad_by_value(x, lo, hi) end })
add('clip_grad_by_norm', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.clip_grad_by_norm(x) end })
add('clip_grad_by_norm', { inputs = { normal(S234) }, grad = { true }, fn = function(x) return F.clip_grad_by_norm(x, 2, { 2 }) end })
add('clip_grad_by_norm', { inputs = { normal({ 3, 4, 5 }) }, grad = { true },
                           fn = function(x) return F.clip_grad_by_norm(x, 0.5, { axes = { 1, 3 } }) end })
add('clip_grad_by_norm', { inputs = { normal({ 64, 700 }) }, grad = { true }, fn = function(x) return F.clip_grad_by_norm(x, 10, {}) end })
add('clip_grad_by_norm', { inputs = { normal({ 3, 4 }) }, grad = { true }, wrap = false,
                           fn = function(x) return F.clip_grad_by_norm(x, 3, { -1 }) end })
add('clip_grad_by_norm', { inputs = { normal({ 3, 4 }) }, grad = { true },
                           fn = function(x) return F.mul_scalar(F.clip_grad_by_norm(x, 1, { 2 }), 0) end })

-- fused_batch_normalization (fused_bn.cu over norm_ext.cu's tensor-norm kernels): batch
-- and given statistics (running statistics updated / differentiated), z or none, kept
-- axes adjacent or not, an empty batch
local function fbn_case(xs, ss, z, grad, opts, extra)
  local inputs = { normal(xs), normal(ss), normal(ss), normal(ss), positive(ss) }
  if z then inputs[6] = normal(xs) end
  local case = { inputs = inputs, grad = grad, grad_atol = 5e-3,
                 fn = function(x, b, g, m, v, zz) return F.fused_batch_normalization(x, b, g, m, v, zz, opts) end }
  for k, v in pairs(extra or {}) do case[k] = v end
  add('fused_batch_normalization', case)
end
fbn_case({ 4, 3, 5, 5 }, { 1, 3, 1, 1 }, true, { true, true, true, false, false, true })
fbn_case({ 4, 3, 5, 5 }, { 1, 3, 1, 1 }, true, { true, true, true, true, true, true }, { batch_stat = false })
fbn_case({ 6, 5 }, { 1, 5 }, false, { true, true, true, true, true }, { decay_rate = 0.7 })
fbn_case({ 3, 4, 5 }, { 3, 1, 5 }, true, { true, true, true, false, false, true }, { axes = { 1, 3 } })
fbn_case({ 4, 2, 3 }, { 1, 1, 3 }, false, { true, false, true, false, false }, { axes = { -1 }, eps = 1e-3 })
fbn_case({ 4, 3, 2 }, { 1, 3, 1 }, true, { true, true, true, true, true, true }, { batch_stat = false }, { wrap = false })
fbn_case({ 0, 3 }, { 1, 3 }, false, { true, true, true, true, true })
fbn_case({ 0, 3 }, { 1, 3 }, false, { true, true, true, true, true }, { batch_stat = false })
fbn_case({ 16, 8, 40 }, { 1, 8, 1 }, true, { true, true, true, false, false, false })

-- rnn, lstm, gru (recurrent.cu): tanh/relu, 1 to 3 layers, one or both directions, with and
-- without bias (num_layers 1: also positionally in the weight slot), some inputs without
-- gradient, training and inference (training = false: no backward, dropout ignored),
-- dropout between layers with a fixed seed (both backends draw the masks from the engine's
-- generator in the same order, so they drop the same outputs). y, h_n (and c_n) are joined
-- into one y. o: T, B, I, H, L, D, bias, relu, dropout, seed, training, grad, posbias, wrap
local function rec_case(kind, o)
  local G = kind == 'rnn' and 1 or kind == 'lstm' and 4 or 3
  local L, D, H, I = o.L or 1, o.D or 1, o.H, o.I
  local hs = { L, D, o.B, H }
  local inputs = { normal({ o.T, o.B, I }), normal(hs) }
  if kind == 'lstm' then inputs[#inputs + 1] = normal(hs) end
  inputs[#inputs + 1] = normal(kind == 'rnn' and { D, H, I + H } or { D, G, H, I + H })
  if L > 1 then
    inputs[#inputs + 1] = normal(kind == 'rnn' and { L - 1, D, H, D * H + H } or { L - 1, D, G, H, D * H + H })
  end
  if o.bias then inputs[#inputs + 1] = normal(kind == 'rnn' and { L, D, H } or { L, D, 4, H }) end
  local training = o.training ~= false
  local opts = { num_layers = L, bidirectional = D == 2, dropout = o.dropout or 0, training = training }
  if kind == 'rnn' then opts.nonlinearity = o.relu and 'relu' or 'tanh' end
  local grad = {}
  for i = 1, #inputs do grad[i] = training and (o.grad == nil or o.grad[i] or false) end
  local nfix = kind == 'lstm' and 4 or 3
  add(kind, { inputs = inputs, grad = grad, wrap = o.wrap, grad_atol = 5e-3,
    fn = function(...)
      local a = { ... }
      local w = L > 1 and a[nfix + 1] or nil
      local b = o.bias and a[nfix + (L > 1 and 2 or 1)] or nil
      if o.posbias then w, b = b, nil end   -- num_layers 1: the bias in the weight slot
      if o.seed then nn.seed(o.seed) end    -- forward (right after this) draws the masks
      local outs
      if kind == 'lstm' then outs = { F.lstm(a[1], a[2], a[3], a[4], w, b, opts) }
      else outs = { F[kind](a[1], a[2], a[3], w, b, opts) } end
      for i, v in ipairs(outs) do outs[i] = F.reshape(v, { -1 }) end
      return F.concatenate(outs, 1)
    end })
end
rec_case('rnn', { T = 3, B = 2, I = 3, H = 4, bias = true })
rec_case('rnn', { T = 4, B = 3, I = 2, H = 3, L = 2, bias = true, relu = true })
rec_case('rnn', { T = 3, B = 2, I = 3, H = 2, L = 2, D = 2 })
rec_case('rnn', { T = 2, B = 2, I = 4, H = 3, D = 2, relu = true, wrap = false })
rec_case('rnn', { T = 3, B = 1, I = 2, H = 3, bias = true, posbias = true })
rec_case('lstm', { T = 3, B = 2, I = 3, H = 4, bias = true })
rec_case('lstm', { T = 4, B = 2, I = 3, H = 3, L = 2, D = 2, bias = true })
rec_case('lstm', { T = 2, B = 3, I = 2, H = 2, D = 2 })
rec_case('lstm', { T = 3, B = 2, I = 2, H = 3, L = 3, bias = true, wrap = false,
                   grad = { true, false, true, true, false, true } })
rec_case('lstm', { T = 2, B = 2, I = 3, H = 2, bias = true, posbias = true, grad = { false, true, true, true, true } })
rec_case('gru', { T = 3, B = 2, I = 3, H = 4, bias = true })
rec_case('gru', { T = 3, B = 2, I = 2, H = 3, L = 2, D = 2, bias = true })
rec_case('gru', { T = 5, B = 1, I = 4, H = 3, L = 2 })
rec_case('gru', { T = 3, B = 8, I = 5, H = 40, D = 2, bias = true, grad = { true, true, true, false, true } })
rec_case('gru', { T = 2, B = 3, I = 2, H = 2, D = 2, bias = true, wrap = false, grad = { false, true, true, true } })
-- dropout between layers (training), a fixed seed
rec_case('rnn', { T = 3, B = 2, I = 3, H = 4, L = 2, D = 2, bias = true, dropout = 0.5, seed = 7 })
rec_case('rnn', { T = 3, B = 2, I = 2, H = 3, L = 3, relu = true, dropout = 0.3, seed = 3 })
rec_case('lstm', { T = 3, B = 2, I = 3, H = 3, L = 3, bias = true, dropout = 0.3, seed = 9 })
rec_case('gru', { T = 4, B = 2, I = 3, H = 3, L = 2, D = 2, dropout = 0.4, seed = 5, wrap = false })
-- inference
rec_case('rnn', { T = 3, B = 2, I = 3, H = 3, L = 2, D = 2, relu = true, bias = true, training = false, dropout = 0.5 })
rec_case('lstm', { T = 3, B = 2, I = 2, H = 4, L = 2, D = 2, bias = true, training = false })
rec_case('gru', { T = 4, B = 3, I = 3, H = 2, D = 2, training = false })

-- dropout, rand, randint, randn, random_choice/crop/flip/shift/erase (stochastic.cu): the
-- draws are made on the host with the CPU's generator in the CPU's order and applied on the
-- device, so outputs and gradients agree bit for bit (atol = rtol = 0): the engine's
-- generator (seed -1, reseeded by the input makers; rand's family gets a dummy input for
-- that) and per-node seeds; partial mask words, NaN/inf, empty arrays, every border mode,
-- shifts longer than the axis, repeated picks (gradients summed in the CPU's order), erase
-- patches per channel / shared / channel_last, more values than the first staging buffer.
local function sto_case(name, inputs, grad, fn, extra)
  local case = { inputs = inputs, grad = grad, fn = fn, atol = 0, rtol = 0, grad_atol = 0, grad_rtol = 0 }
  for k, v in pairs(extra or {}) do case[k] = v end
  add(name, case)
end
-- weights in 0..2 with a zero at every third position (each population of 8 keeps >= 5)
local function some_zero(shape)
  return function(seed)
    local a = uniform(shape, 0, 2, seed)
    local p = a:ptr(C.NL_READWRITE)
    for i = 0, a.size - 1, 3 do p[i] = 0 end
    return a
  end
end
local dummy = { normal({ 1 }) }
sto_case('dropout', { normal(S234) }, { true }, function(x) return F.dropout(x) end)
sto_case('dropout', { normal({ 4, 3, 33 }) }, { true }, function(x) return F.dropout(x, 0.3, 7) end, { wrap = false })
sto_case('dropout', { normal({ 70001 }) }, { true }, function(x) return F.dropout(x, 0.9, 3) end)
sto_case('dropout', { specials({ 5, 7 }) }, { true }, function(x) return F.dropout(x, { p = 0.2 }) end)
sto_case('dropout', { normal({ 3, 5 }) }, { true }, function(x) return F.dropout(x, 0, 1) end, { wrap = false })
sto_case('dropout', { normal({ 0, 5 }) }, { true }, function(x) return F.dropout(x, 0.5, 2) end)
sto_case('rand', dummy, {}, function() return F.rand(-2, 3, { 3, 4 }) end)
sto_case('rand', dummy, {}, function() return F.rand { shape = { 37 }, seed = 5 } end)
sto_case('rand', dummy, {}, function() return F.rand(1, 1, { 4 }) end)
sto_case('rand', dummy, {}, function() return F.rand() end)
sto_case('randint', dummy, {}, function() return F.randint(-3, 7, { 5, 6 }) end)
sto_case('randint', dummy, {}, function() return F.randint { low = 0, high = 1000003, shape = { 50 }, seed = 2 } end)
sto_case('randn', dummy, {}, function() return F.randn(0, 1, { 7, 9 }) end)
sto_case('randn', dummy, {}, function() return F.randn { mu = 2, sigma = 0.5, shape = { 3 }, seed = 4 } end)
sto_case('randn', dummy, {}, function() return F.randn(0, 1, { 0 }) end)
sto_case('random_choice', { normal({ 3, 5 }), positive({ 3, 5 }) }, { true, true },
         function(x, w) return F.random_choice(x, w, { 4 }) end)
sto_case('random_choice', { normal({ 2, 3, 6 }), positive({ 2, 3, 6 }) }, { true, true },
         function(x, w) return F.random_choice(x, w, { 2, 3 }, false, 9) end)
sto_case('random_choice', { normal({ 3, 8 }), some_zero({ 3, 8 }) }, { true, false },
         function(x, w) return F.random_choice(x, w, { 3 }, false) end, { wrap = false })
sto_case('random_choice', { normal({ 4, 8 }), some_zero({ 4, 8 }) }, { true, true },
         function(x, w) return F.random_choice(x, w, { 5, 2 }, true, 11) end)
sto_case('random_choice', { normal({ 2, 50 }), positive({ 2, 50 }) }, { true, true },
         function(x, w) return F.random_choice(x, w, { 300 }) end, { wrap = false })
sto_case('random_choice', { normal({ 6 }), positive({ 6 }) }, { false, true },
         function(x, w) return F.random_choice(x, w) end)
sto_case('random_crop', { normal({ 2, 3, 6, 7 }) }, { true }, function(x) return F.random_crop(x, { 4, 5 }) end)
sto_case('random_crop', { normal({ 2, 3, 6, 7 }) }, { true }, function(x) return F.random_crop(x, { 3 }, 2, 5) end,
         { wrap = false })
sto_case('random_crop', { normal({ 3, 6, 7 }) }, { true }, function(x) return F.random_crop(x, { 2, 4, 4 }, 1) end)
sto_case('random_crop', { normal({ 2, 3, 6, 7 }) }, { true },
         function(x) return F.random_crop(x, { shape = { 5 }, base_axis = 3, seed = 11 }) end)
sto_case('random_crop', { normal({ 2, 3, 5 }) }, { true }, function(x) return F.random_crop(x, { 0 }) end)
sto_case('random_flip', { normal(S234) }, { true }, function(x) return F.random_flip(x) end)
sto_case('random_flip', { normal({ 4, 3, 5, 6 }) }, { true }, function(x) return F.random_flip(x, { 3, 4 }, 2, 3) end)
sto_case('random_flip', { normal({ 4, 3, 5 }) }, { true }, function(x) return F.random_flip(x, { 2, -1 }) end,
         { wrap = false })
sto_case('random_flip', { normal({ 5, 6 }) }, { true }, function(x) return F.random_flip(x, { 1, 2 }, 1, 8) end)
for _, mode in ipairs { 'nearest', 'reflect', 'constant' } do
  sto_case('random_shift', { normal({ 2, 3, 6, 7 }) }, { true },
           function(x) return F.random_shift(x, { 2, 3 }, mode, 1.5) end)
  sto_case('random_shift', { normal({ 3, 2, 4, 5 }) }, { true },
           function(x) return F.random_shift(x, { 9, 6 }, mode, -2, 2, 13) end, { wrap = false })
end
sto_case('random_shift', { normal({ 4, 10 }) }, { true },
         function(x) return F.random_shift(x, { shifts = { 3 }, border_mode = 'reflect', seed = 1 }) end)
sto_case('random_shift', { normal({ 2, 3, 6, 7 }) }, { true }, function(x) return F.random_shift(x, { 0, 2 }) end)
sto_case('random_shift', { normal({ 2, 3, 6 }) }, { true }, function(x) return F.random_shift(x) end)
sto_case('random_erase', { normal({ 2, 3, 8, 9 }) }, { true }, function(x) return F.random_erase(x) end)
sto_case('random_erase', { normal({ 2, 3, 8, 9 }) }, { true }, function(x)
  return F.random_erase(x, { prob = 1, n = 3, share = false, area_ratios = { 0.1, 0.5 }, seed = 4 }) end)
sto_case('random_erase', { normal({ 2, 7, 6, 3 }) }, { true }, function(x)
  return F.random_erase(x, { prob = 0.9, n = 2, channel_last = true, replacements = { -1, 1 }, seed = 6 }) end)
sto_case('random_erase', { normal({ 2, 3, 8, 9 }) }, { true }, function(x)
  return F.random_erase(x, { prob = 0.8, n = 2, ste_fine_grained = false }) end, { wrap = false })
sto_case('random_erase', { normal({ 3, 5, 6 }) }, { true }, function(x)
  return F.random_erase(x, { prob = 1, n = 2, share = false, base_axis = 1, aspect_ratios = { 0.5, 2 } }) end,
  { wrap = false })
sto_case('random_erase', { normal({ 4, 3, 32, 32 }) }, { true }, function(x)
  return F.random_erase(x, { prob = 1, n = 2, area_ratios = { 0.3, 0.6 }, seed = 21 }) end)

-- arange, linspace, constant, unlink, sink (generators.cu): the element formulas are
-- generator_args.h's on both sides, so they agree bit for bit; sink's backward both fills
-- (its inputs' gradients are intermediate) and adds (leaves, wrap = false); unlink gives zero.
local function exact(extra)
  local c = { atol = 0, rtol = 0, grad_atol = 0, grad_rtol = 0 }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end
local function gen_case(name, inputs, grad, fn, extra)
  local case = exact(extra)
  case.inputs, case.grad, case.fn = inputs, grad, fn
  add(name, case)
end
gen_case('arange', dummy, {}, function() return F.arange(-1.5, 7, 0.25) end)
gen_case('arange', dummy, {}, function() return F.arange(10, 1, -3) end)
gen_case('arange', dummy, {}, function() return F.arange(3, 1) end)
gen_case('linspace', dummy, {}, function() return F.linspace(-2, 5, 301) end)
gen_case('linspace', dummy, {}, function() return F.linspace(4, 4, 1) end)
gen_case('linspace', dummy, {}, function() return F.linspace(0, 1, 0) end)
gen_case('constant', dummy, {}, function() return F.constant(2.5, { 3, 70, 5 }) end)
gen_case('constant', dummy, {}, function() return F.constant(-1) end)
gen_case('unlink', { normal(S234) }, { true }, function(x) return F.unlink(x) end)
gen_case('unlink', { normal({ 5, 7 }) }, { true }, function(x) return F.unlink(x) end, { wrap = false })
gen_case('sink', { normal(S234), normal({ 300 }) }, { true, true }, function(a, b) return F.sink(a, b) end)
gen_case('sink', { normal(S234), normal({ 5 }) }, { true, true }, function(a, b) return F.sink(a, b) end,
         { wrap = false })
gen_case('sink', { normal(S234) }, { true }, function(a) return F.sink(a, { one_input_grad = false }) end,
         { wrap = false })

-- second review's stress shapes (cudnn.cu, cudnn_deconv.cu, recurrent.cu, interpolate.cu,
-- stochastic.cu, generators.cu, losses.cu, validation.cu): 3-d grouped/dilated and 1-d
-- convolutions, one gradient at a time, 1-d and inference-only pooling, batch norm over
-- the last axis / two values per channel / without beta, gamma or running statistics,
-- recurrent layers with one step, interpolation from and to size 1, zero-size shapes, and
-- one input given twice (the second slot accumulates)
conv_case({ 1, 4, 5, 6, 5 }, { 6, 2, 3, 2, 3 }, { group = 2, dilation = { 2, 1, 1 }, pad = { 1, 0, 1 }, stride = { 1, 2, 2 } }, true)
conv_case({ 1, 2, 1 }, { 3, 2, 1 }, nil, true)
conv_case({ 2, 6, 11 }, { 4, 3, 3 }, { group = 2, dilation = { 3 }, stride = { 2 } }, true, { wrap = false })
conv_case({ 2, 3, 4, 4 }, { 5, 3, 3, 3 }, { pad = { 1, 1 } }, true, { grad = { false, true, false } })
conv_case({ 2, 3, 4, 4 }, { 5, 3, 3, 3 }, { pad = { 1, 1 } }, true, { grad = { true, false, true } })
conv_case({ 2, 3, 2, 4, 4 }, { 4, 3, 1, 3, 3 }, { pad = { 0, 1, 1 }, dilation = { 1, 2, 1 } }, false, { wrap = false })
for _, name in ipairs { 'max_pooling', 'average_pooling' } do
  add(name, { inputs = { normal({ 2, 3, 9 }) }, grad = { true },
              fn = function(x) return F[name](x, { 3 }, { stride = { 2 }, pad = { 1 } }) end })
  add(name, { inputs = { normal({ 2, 3, 6, 7 }) }, grad = { false },
              fn = function(x) return F[name](x, { 3, 2 }, { stride = { 1, 2 }, pad = { 1, 1 } }) end })
  add(name, { inputs = { normal({ 2, 2, 5, 5 }) }, grad = { true }, wrap = false,
              fn = function(x) return F[name](x, { 2, 3 }, { stride = { 1, 1 } }) end })
end
add('batch_normalization', {
  inputs = { normal({ 2, 5, 3 }), normal({ 1, 1, 3 }), normal({ 1, 1, 3 }), normal({ 1, 1, 3 }), positive({ 1, 1, 3 }) },
  grad = { true, true, true, false, false }, grad_atol = 5e-3,
  fn = function(x, b, g, m, v) return F.batch_normalization(x, b, g, m, v, { axes = { 3 }, decay_rate = 0.5, eps = 1e-3 }) end })
add('batch_normalization', {
  inputs = { normal({ 1, 3, 1, 2 }), normal({ 1, 3, 1, 1 }), normal({ 1, 3, 1, 1 }), normal({ 1, 3, 1, 1 }), positive({ 1, 3, 1, 1 }) },
  grad = { true, true, true, false, false }, grad_atol = 5e-3, wrap = false,
  fn = function(x, b, g, m, v) return F.batch_normalization(x, b, g, m, v) end })
add('batch_normalization', {
  inputs = { normal({ 4, 3, 2, 2 }), normal({ 1, 3, 1, 1 }), positive({ 1, 3, 1, 1 }) },
  grad = { true, false, false }, grad_atol = 5e-3,
  fn = function(x, m, v) return F.batch_normalization(x, nil, nil, m, v) end })
add('batch_normalization', {
  inputs = { normal({ 4, 3, 2, 2 }), normal({ 1, 3, 1, 1 }) },
  grad = { true, true }, grad_atol = 5e-3,
  fn = function(x, g) return F.batch_normalization(x, nil, g) end })
add('batch_normalization', {
  inputs = { normal({ 3, 4, 5 }), normal({ 1, 4, 1 }), normal({ 1, 4, 1 }), normal({ 1, 4, 1 }), positive({ 1, 4, 1 }) },
  grad = { true, true, true, true, true }, wrap = false,
  fn = function(x, b, g, m, v) return F.batch_normalization(x, b, g, m, v, { batch_stat = false }) end })
deconv_case({ 1, 4, 3, 2, 3 }, { 4, 3, 2, 3, 2 }, { group = 2, dilation = { 1, 2, 1 }, stride = { 2, 1, 2 }, pad = { 1, 1, 0 } }, true)
deconv_case({ 2, 3, 1 }, { 3, 2, 1 }, nil, true, { wrap = false })
dwconv_case({ 2, 3, 9 }, { 6, 3 }, { multiplier = 2, dilation = { 2 }, stride = { 2 }, pad = { 2 } }, true, { wrap = false })
rec_case('lstm', { T = 1, B = 1, I = 2, H = 3, L = 2, D = 2, bias = true })
rec_case('gru', { T = 1, B = 2, I = 3, H = 2, L = 2, D = 2, bias = true, dropout = 0.5, seed = 3 })
rec_case('rnn', { T = 1, B = 1, I = 1, H = 1, L = 3, D = 2, bias = true, wrap = false })
rec_case('gru', { T = 2, B = 1, I = 2, H = 3, L = 3, D = 2, bias = true, wrap = false })
rec_case('lstm', { T = 5, B = 3, I = 4, H = 2, L = 2, D = 2, dropout = 0.5, seed = 11, wrap = false })
interp_case({ 2, 3, 1, 4 }, { output_size = { 3, 1 }, align_corners = true })
interp_case({ 1, 2, 5, 1 }, { output_size = { 1, 4 }, align_corners = true, mode = 'nearest' })
interp_case({ 1, 2, 3, 4, 2 }, { output_size = { 1, 5, 3 }, half_pixel = true }, nil, { wrap = false })
interp_case({ 2, 3, 4, 5 }, { output_size = { 4, 5 }, align_corners = true })
interp_case({ 2, 1, 1 }, { output_size = { 6 }, half_pixel = true })
gen_case('constant', dummy, {}, function() return F.constant(1.5, { 3, 0 }) end)
gen_case('arange', dummy, {}, function() return F.arange(0, 1, 0.3) end)
sto_case('rand', dummy, {}, function() return F.rand(0, 1, { 2, 0 }) end)
sto_case('random_flip', { normal({ 0, 3, 4 }) }, { true }, function(x) return F.random_flip(x) end)
sto_case('random_choice', { normal({ 0, 5 }), positive({ 0, 5 }) }, { true, true },
         function(x, w) return F.random_choice(x, w, { 3 }) end)
sto_case('dropout', { normal({ 33 }) }, { true }, function(x) return F.add2(F.dropout(x, 0.5, 4), F.dropout(x, 0.5, 5)) end)
add('binary_cross_entropy', { inputs = { range(S234, 0.05, 0.95) }, grad = { true },
                              fn = function(x) return F.binary_cross_entropy(x, x) end })
add('huber_loss', { inputs = { normal(S234) }, grad = { true }, wrap = false,
                    fn = function(a) return F.huber_loss(a, a, 0.5) end })
add('top_n_error', { inputs = { normal({ 0, 5 }), labels({ 0, 1 }, 5) }, fn = function(x, t) return F.top_n_error(x, t) end })
add('confusion_matrix', { inputs = { normal({ 0, 3 }), labels({ 0, 1 }, 3) }, fn = function(x, t) return F.confusion_matrix(x, t) end })
add('fused_batch_normalization', { inputs = { normal({ 1, 3, 1, 2 }), normal({ 1, 3, 1, 1 }), normal({ 1, 3, 1, 1 }),
                                              normal({ 1, 3, 1, 1 }), positive({ 1, 3, 1, 1 }) },
                                   grad = { true, true, true, false, false }, grad_atol = 5e-3, wrap = false,
                                   fn = function(x, b, g, m, v) return F.fused_batch_normalization(x, b, g, m, v) end })
for _, name in ipairs { 'relu', 'tanh', 'sigmoid' } do
  unary_case(name)
  add(name, { inputs = { normal({ 3, 0 }) }, grad = { true }, fn = function(x) return F[name](x) end })
  add(name, { inputs = { normal({ 5, 7 }) }, grad = { true }, wrap = false, fn = function(x) return F[name](x) end })
end
-- inference max pooling runs cuDNN, whose NaN rule (skip or propagate) is not the CPU's
-- (NaN only when it is the window's first value): infinities and ties only here
local function infinities(shape)
  return function(seed)
    local a = specials(shape)(seed)
    local p = a:ptr(C.NL_READWRITE)
    for i = 0, a.size - 1 do if p[i] ~= p[i] then p[i] = -math.huge end end
    return a
  end
end
add('max_pooling', { inputs = { infinities({ 2, 2, 6, 6 }) }, grad = { false }, fn = function(x) return F.max_pooling(x, { 2, 2 }) end })
add('max_pooling', { inputs = { infinities({ 2, 2, 6, 5 }) }, grad = { false },
                     fn = function(x) return F.max_pooling(x, { 3, 3 }, { stride = { 2, 2 }, pad = { 1, 1 } }) end })
add('average_pooling', { inputs = { specials({ 2, 2, 6, 6 }) }, grad = { true }, fn = function(x) return F.average_pooling(x, { 3, 3 }, { pad = { 1, 1 } }) end })
for _, name in ipairs { 'relu', 'tanh', 'sigmoid' } do
  add(name, { inputs = { specials(S234) }, grad = { true }, fn = function(x) return F[name](x) end })
end
add('softmax', { inputs = { normal({ 1, 3, 1 }) }, grad = { true }, wrap = false, fn = function(x) return F.softmax(x, 2) end })
add('log_softmax', { inputs = { normal({ 4, 1 }) }, grad = { true }, fn = function(x) return F.log_softmax(x) end })

-- A default case for a function registered later with no entry here (one input of S234,
-- or two of the same shape).
local function default_case(name)
  local id = C.nl_function_lookup(name)
  local n = C.nl_function_n_inputs(id)
  if n == 1 then unary_case(name)
  elseif n == 2 then binary_case(name, S234, S234)
  end
end

local function impl_names()
  local names = {}
  for id = 0, C.nl_function_count() - 1 do
    local name = ffi.string(C.nl_function_name(id))
    local cuda, cudnn = C.nl_function_has_impl(id, 'cuda') ~= 0, C.nl_function_has_impl(id, 'cudnn') ~= 0
    if selftest then cuda = cases[name] ~= nil end
    if cuda or cudnn then names[#names + 1] = { name, cuda, cudnn } end
  end
  return names
end

-- ---- the suite ------------------------------------------------------------------------------

describe('#cuda CUDA/cuDNN backend', function()
  local cuda = package.loaded['nnlua.cuda']
  if cuda and cuda.C then
    it('every entry point declared in nnlua.cuda resolves in the built library', function()
      local names = {}
      for name in cuda.cdef:gmatch('(nl_cuda_[%w_]+)%s*%(') do names[#names + 1] = name end
      assert.is_true(#names > 25, 'only ' .. #names .. ' declarations found')
      for _, name in ipairs(names) do assert.is_true(pcall(function() return cuda.C[name] end), name) end
    end)
  end

  if not have_gpu then
    local function skip(name) pending(('no CUDA device: %s (%s)'):format(why, name)) end

    it('asking for a CUDA context without a device is a clear error', function()
      local ok, err = pcall(ext.get_extension_context, 'cudnn', { device_id = 0 })
      assert.is_false(ok)
      assert.matches("get_extension_context%('cudnn'%): no CUDA available: ", tostring(err))
      local cuda = package.loaded['nnlua.cuda']
      if cuda then assert.is_false((cuda.available())) end
    end)

    skip('every CUDA/cuDNN function agrees with the CPU, forward and backward')
    skip('.d on a device variable brings the data to the host')
    skip('every solver kernel on the device agrees with its host twin')
    skip('a small CNN trains on the GPU')
    skip("the tutorial's CNN section trains on the GPU as on the CPU, step for step")
    skip('a static graph stops calling cudaMalloc after its first step')
    skip('a bad device id is a clear error')
    skip('the device queries answer: name, versions, synchronize, registered implementations')
    return
  end

  after_each(function() nn.set_default_context(cpu_ctx) end)
  local cudnn_calls = {}   -- emulation: function name -> cuDNN calls its cudnn cases made

  if not selftest then
    it('every registered function has a GPU implementation (none falls back to the CPU)', function()
      local missing = {}
      for id = 0, C.nl_function_count() - 1 do
        if C.nl_function_has_impl(id, 'cuda') == 0 and C.nl_function_has_impl(id, 'cudnn') == 0 then
          missing[#missing + 1] = ffi.string(C.nl_function_name(id))
        end
      end
      assert.same({}, missing)
    end)
  end

  for _, entry in ipairs(impl_names()) do
    local name, on_cuda, on_cudnn = entry[1], entry[2], entry[3]
    if not cases[name] then default_case(name) end
    local list = cases[name]
    if not list then
      it(name .. ' has a case in spec/cuda_spec.lua', function()
        error('no case for ' .. name .. ' (add one to spec/cuda_spec.lua)')
      end)
    else
      for k, case in ipairs(list) do
        if on_cuda then
          it(('%s #%d on cuda matches the CPU'):format(name, k), function()
            local got = compare(case, ctx_cuda, name .. ' #' .. k .. ' (cuda)')
            if not selftest and got.backend then assert.equal('cuda', got.backend) end
          end)
        end
        if on_cudnn then
          it(('%s #%d on cudnn matches the CPU'):format(name, k), function()
            local calls0 = emu and emu.nl_cuda_emu_cudnn_calls()
            local got = compare(case, ctx_cudnn, name .. ' #' .. k .. ' (cudnn)')
            if emu then
              assert.equal('cudnn', got.backend)
              cudnn_calls[name] = (cudnn_calls[name] or 0) + tonumber(emu.nl_cuda_emu_cudnn_calls() - calls0)
            end
          end)
        end
      end
    end
  end

  it('a bad label fails with the CPU message (top_n_error, confusion_matrix)', function()
    local x = randn({ 4, 3 }, 3)
    for _, bad in ipairs { { 0, 3, 1, -1 }, { 0, 1, 1.5, 2 } } do
      local t = NdArray.from { { bad[1] }, { bad[2] }, { bad[3] }, { bad[4] } }
      for _, name in ipairs { 'top_n_error', 'confusion_matrix' } do
        local function run(ctx)
          return nn.context_scope(ctx, function()
            local y = F[name](nn.Variable.from(x), nn.Variable.from(t))
            local ok, err = pcall(function() y:forward() end)
            assert.is_false(ok, name .. ' accepted a bad label')
            return tostring(err)
          end)
        end
        local want = run(cpu_ctx)
        assert.matches('label .* at position %d is out of range 0..2', want)
        assert.equal(want, run(ctx_cuda))
      end
    end
  end)

  it("the stochastic functions draw the CPU's numbers forward after forward", function()
    -- one node, three steps of two forwards (back to back: the second draws while the first
    -- one's upload may be in flight) and a backward, without reseeding, then the engine's
    -- generator: all bit for bit as on the CPU
    local x0, w0 = randn({ 4, 3, 8, 9 }, 31), uniform({ 4, 3, 8, 9 }, 0, 1, 32)
    local makers = {
      { 'dropout', function(x) return F.dropout(x, 0.4) end },
      { 'dropout (seed)', function(x) return F.dropout(x, 0.4, 3) end },
      { 'randn (odd count: the spare normal carries over)', function() return F.randn(0, 1, { 33 }) end, true },
      { 'rand (seed)', function() return F.rand(0, 1, { 40 }, 9) end, true },
      { 'random_choice', function(x, w) return F.random_choice(x, w, { 5 }) end },
      { 'random_choice (no replacement, seed)', function(x, w) return F.random_choice(x, w, { 4 }, false, 2) end },
      { 'random_crop', function(x) return F.random_crop(x, { 5, 6 }) end },
      { 'random_flip (seed)', function(x) return F.random_flip(x, { 3, 4 }, 2, 4) end },
      { 'random_shift', function(x) return F.random_shift(x, { 3, 4 }, 'reflect') end },
      { 'random_erase', function(x) return F.random_erase(x, { prob = 0.7, n = 2, share = false }) end },
    }
    for _, m in ipairs(makers) do
      local function run(ctx)
        return nn.context_scope(ctx, function()
          local x = nn.Variable.from(x0, { need_grad = true })
          local w = nn.Variable.from(w0, { need_grad = true })
          local y = m[2](x, w)
          local dys = { randn(y.shape, 41), randn(y.shape, 42), randn(y.shape, 43) }
          nn.seed(123)
          local out = {}
          for step = 1, 3 do
            y:forward()
            y:forward()
            out[#out + 1] = y.d:copy()
            if not m[3] then
              y:backward { grad = dys[step] }
              out[#out + 1] = x.g:copy()
              out[#out + 1] = w.g:copy()
            end
          end
          out[#out + 1] = NdArray.rand({ 4 })
          return out
        end)
      end
      local want, got = run(cpu_ctx), run(ctx_cuda)
      for i = 1, #want do assert_close(got[i], want[i], 0, 0, m[1] .. ': result ' .. i) end
    end
  end)

  it('random_choice with bad weights fails as on the CPU, having drawn what the CPU drew', function()
    local x0 = randn({ 3, 4 }, 33)
    local good = NdArray.from { { 1, 2, 3, 4 }, { 4, 3, 2, 1 }, { 1, 1, 1, 1 } }
    for _, wbad in ipairs {
      NdArray.from { { 1, 2, 3, 4 }, { 1, 0 / 0, 1, 1 }, { 1, 1, 1, 1 } },
      NdArray.from { { 1, 2, 3, 4 }, { 1, 1, -1, 1 }, { 1, 1, 1, 1 } },
      NdArray.from { { 1, 2, 3, 4 }, { 0, 0, 0, 0 }, { 1, 1, 1, 1 } },
      NdArray.from { { 1, 2, 3, 4 }, { 1, 1, 1, 1 }, { 0, 0, 1, 0 } },     -- 1 positive, 2 drawn
    } do
      for _, seed in ipairs { -1, 6 } do
        local function run(ctx)
          return nn.context_scope(ctx, function()
            nn.seed(77)
            local w = nn.Variable.from(wbad)
            local y = F.random_choice(nn.Variable.from(x0), w, { 2 }, false, seed)
            local ok, err = pcall(function() y:forward() end)
            assert.is_false(ok, 'bad weights accepted')
            w.d = good
            y:forward()
            return tostring(err), y.d:copy(), NdArray.rand({ 3 })
          end)
        end
        local e1, y1, r1 = run(cpu_ctx)
        local e2, y2, r2 = run(ctx_cuda)
        assert.matches("random_choice: input 'w' ", e1, 1, true)
        assert.equal(e1, e2)
        assert_close(y2, y1, 0, 0, 'the next forward')
        assert_close(r2, r1, 0, 0, "the engine's generator afterwards")
      end
    end
  end)

  it('max_pooling at inference (cuDNN forward) matches the CPU', function()
    local x = randn({ 2, 3, 6, 6 }, 3)
    local function run(ctx)
      return nn.context_scope(ctx, function()
        return nn.no_grad(function()
          local y = F.max_pooling(nn.Variable.from(x), { 3, 3 }, { stride = { 2, 2 }, pad = { 1, 1 } })
          y:forward()
          return y.d:copy()
        end)
      end)
    end
    local calls0 = emu and emu.nl_cuda_emu_cudnn_calls()
    assert_close(run(ctx_cudnn), run(cpu_ctx), 1e-6, 0, 'max_pooling (inference)')
    if emu then   -- training max pooling keeps an argmax (CUDA kernel); inference is cuDNN's
      cudnn_calls.max_pooling = (cudnn_calls.max_pooling or 0) + tonumber(emu.nl_cuda_emu_cudnn_calls() - calls0)
    end
  end)

  if emu then
    it('every function with a cuDNN implementation made emulated cuDNN calls', function()
      for name, n in pairs(cudnn_calls) do
        assert.is_true(n > 0, name .. ': its cases never reached cuDNN (every one fell back)')
      end
    end)
  end

  -- cuDNN refusing calls (emulation only): NNLUA_CUDA_EMU_CUDNN_REJECT (cuda/emu/cudnn.h)
  -- makes the emulated cuDNN entry points it names (comma list of names or name prefixes,
  -- or 'all') return CUDNN_STATUS_NOT_SUPPORTED. Refused while a node is set up (descriptor
  -- setters, algorithm and workspace queries) or by a compute call, a cudnn.cu node runs the
  -- CUDA kernels (its output stays on the device) and a cudnn_deconv.cu node the CPU, the
  -- whole node or just the refused operation (in a backward, the gradients cuDNN already
  -- wrote are kept and not added twice). Each case first checks that, without the knob, it
  -- makes the cuDNN calls whose absence it then checks; the knob is put back after every
  -- case, failed or not.
  if emu then
    describe('when cuDNN refuses calls', function()
      pcall(ffi.cdef, 'long long nl_cuda_emu_cudnn_calls_of(const char *prefix); long long nl_cuda_emu_cudnn_rejects(void);')
      local VAR = 'NNLUA_CUDA_EMU_CUDNN_REJECT'
      local saved = os.getenv(VAR)
      local function set_reject(list)
        if list then ffi.C.setenv(VAR, list, 1) else ffi.C.unsetenv(VAR) end
      end
      -- fn() with the knob set to list (nil: unset), then the knob as it was, even if fn fails
      local function with_reject(list, fn)
        local before = os.getenv(VAR)
        set_reject(list)
        local ok, err = pcall(fn)
        set_reject(before)
        if not ok then error(err, 0) end
      end
      after_each(function() set_reject(saved) end)

      local function rejects() return tonumber(emu.nl_cuda_emu_cudnn_rejects()) end
      local function counts(prefixes)
        local t = {}
        for _, p in ipairs(prefixes) do t[p] = tonumber(emu.nl_cuda_emu_cudnn_calls_of(p)) end
        return t
      end
      local function the_case(s)
        if s.case then return s.case end
        if not cases[s.name] then default_case(s.name) end
        return assert(cases[s.name] and cases[s.name][s.k], 'no case ' .. s.name .. ' #' .. tostring(s.k))
      end

      -- s: name, k (cases[name][k]) or case, reject (the knob), at ('setup' or 'call'), none
      -- (call prefixes that must make no calls), some (prefixes that must still make some),
      -- where ('device': the CUDA kernels, output on the device; 'host': the CPU forward)
      local function falls_back(s)
        local case, label = the_case(s), ('%s #%s refusing %s'):format(s.name, s.k or '-', s.reject)
        local watch = {}
        for _, p in ipairs(s.none) do watch[#watch + 1] = p end
        for _, p in ipairs(s.some or {}) do watch[#watch + 1] = p end
        local c0 = counts(watch)
        with_reject(nil, function() run_case(case, ctx_cudnn) end)
        local c1 = counts(watch)
        for _, p in ipairs(watch) do
          assert.is_true(c1[p] > c0[p], label .. ': without the knob the case makes no ' .. p .. ' calls')
        end
        local r0 = rejects()
        local got
        with_reject(s.reject, function()
          c0 = counts(watch)
          got = compare(case, ctx_cudnn, label)
          c1 = counts(watch)
        end)
        assert.is_true(rejects() > r0, label .. ': the knob refused no call')
        assert.equal('cudnn', got.backend)
        for _, p in ipairs(s.none) do
          assert.equal(0, c1[p] - c0[p], label .. ': ' .. p .. ' calls were made (no fallback)')
        end
        for _, p in ipairs(s.some or {}) do
          assert.is_true(c1[p] > c0[p], label .. ': no ' .. p .. ' calls (fell back further than needed)')
        end
        if s.where == 'device' then
          assert.equal(2, bit.band(got.where, 3), label .. ': the output is not (only) on the device')
        elseif s.where == 'host' then
          assert.equal(1, bit.band(got.where, 1), label .. ': the output was not computed on the host')
        end
      end

      -- max pooling without gradients: cuDNN's forward (with them, the CUDA kernel's argmax)
      local mp_inference = { inputs = { normal({ 2, 3, 6, 6 }) }, grad = {},
                             fn = function(x) return F.max_pooling(x, { 3, 3 }, { stride = { 2, 2 }, pad = { 1, 1 } }) end }
      local CF, CBD, CBF, CBB, ADD = 'cudnnConvolutionForward', 'cudnnConvolutionBackwardData',
        'cudnnConvolutionBackwardFilter', 'cudnnConvolutionBackwardBias', 'cudnnAddTensor'
      local ALL_CONV = { CF, CBD, CBF, CBB, ADD }
      local fallbacks = {
        -- convolution (cudnn.cu): any refusal at setup -> the CUDA kernels for the node, or
        -- for its backward when a backward query is refused
        { name = 'convolution', k = 1, reject = 'cudnnSetTensorNdDescriptor', none = ALL_CONV },
        { name = 'convolution', k = 1, reject = 'cudnnSetFilterNdDescriptor', none = ALL_CONV },
        { name = 'convolution', k = 1, reject = 'cudnnSetConvolutionNdDescriptor', none = ALL_CONV },
        { name = 'convolution', k = 2, reject = 'cudnnSetConvolutionGroupCount', none = ALL_CONV },
        { name = 'convolution', k = 1, reject = 'cudnnSetConvolutionMathType', none = ALL_CONV },
        { name = 'convolution', k = 1, reject = 'cudnnGetConvolutionForwardAlgorithm_v7', none = ALL_CONV },
        { name = 'convolution', k = 1, reject = 'cudnnGetConvolutionForwardWorkspaceSize', none = ALL_CONV },
        { name = 'convolution', k = 1, reject = 'cudnnGetConvolutionBackwardDataAlgorithm_v7', none = { CBD, CBF, CBB },
          some = { CF, ADD } },
        { name = 'convolution', k = 1, reject = 'cudnnGetConvolutionBackwardDataWorkspaceSize', none = { CBD, CBF, CBB },
          some = { CF, ADD } },
        { name = 'convolution', k = 2, reject = 'cudnnGetConvolutionBackwardFilter', none = { CBD, CBF, CBB },
          some = { CF, ADD } },
        { name = 'convolution', k = 3, reject = 'all', none = ALL_CONV },
        { name = 'convolution', k = 4, reject = 'all', none = { CF, CBD, CBF } },
        -- refused compute calls: that work and the rest of the node on the CUDA kernels (a
        -- refused AddTensor: the whole forward again); the gradients already written stay
        { name = 'convolution', k = 1, at = 'call', reject = CF, none = ALL_CONV, where = 'device' },
        { name = 'convolution', k = 1, at = 'call', reject = ADD, none = { ADD, CBD, CBF, CBB }, some = { CF },
          where = 'device' },
        { name = 'convolution', k = 1, at = 'call', reject = CBB, none = { CBB, CBF, CBD }, some = { CF, ADD } },
        { name = 'convolution', k = 2, at = 'call', reject = CBF, none = { CBF, CBD }, some = { CF, ADD, CBB } },
        { name = 'convolution', k = 1, at = 'call', reject = CBD, none = { CBD }, some = { CF, ADD, CBB, CBF } },
        -- wrap = false: dW, dx (and db) of the CUDA kernels add into leaves cuDNN's db added to
        { name = 'convolution', k = 6, at = 'call', reject = CBF, none = { CBF, CBD }, some = { CF, ADD, CBB } },
        { name = 'convolution', k = 6, at = 'call', reject = CBD, none = { CBD }, some = { CF, ADD, CBB, CBF } },
        { name = 'convolution', k = 6, at = 'call', reject = CBB, none = { CBB, CBF, CBD }, some = { CF, ADD } },
        -- deconvolution (cudnn_deconv.cu): forward = BackwardData (+ AddTensor), dx =
        -- Forward, dW = BackwardFilter, db = BackwardBias; the CPU for what cuDNN refuses
        { name = 'deconvolution', k = 1, reject = 'cudnnSetConvolutionGroupCount', none = ALL_CONV, where = 'host' },
        { name = 'deconvolution', k = 5, reject = 'all', none = { CF, CBD, CBF }, where = 'host' },
        { name = 'deconvolution', k = 1, reject = 'cudnnGetConvolutionBackwardDataAlgorithm_v7', none = { CBD, ADD },
          some = { CF, CBF, CBB }, where = 'host' },
        { name = 'deconvolution', k = 1, reject = 'cudnnGetConvolutionForward', none = { CF }, some = { CBD, ADD, CBF, CBB },
          where = 'device' },
        { name = 'deconvolution', k = 2, reject = 'cudnnGetConvolutionBackwardFilterWorkspaceSize', none = { CBF },
          some = { CBD, ADD, CF, CBB }, where = 'device' },
        { name = 'deconvolution', k = 1, at = 'call', reject = CBD, none = { CBD, ADD }, some = { CF, CBF, CBB }, where = 'host' },
        { name = 'deconvolution', k = 3, at = 'call', reject = CF, none = { CF }, some = { CBD, ADD, CBF, CBB }, where = 'device' },
        { name = 'deconvolution', k = 1, at = 'call', reject = CBF, none = { CBF }, some = { CBD, ADD, CF, CBB } },
        { name = 'deconvolution', k = 4, at = 'call', reject = CBB, none = { CBB }, some = { CBD, ADD, CF, CBF } },
        { name = 'deconvolution', k = 1, at = 'call', reject = ADD, none = { ADD, CF, CBF, CBB }, some = { CBD }, where = 'host' },
        -- wrap = false: the CPU's gradients add into the leaves' (accum); dx and db of cuDNN
        { name = 'deconvolution', k = 9, at = 'call', reject = CBF, none = { CBF }, some = { CF, CBB } },
        { name = 'deconvolution', k = 9, at = 'call', reject = CF .. ',' .. CBB, none = { CF, CBB }, some = { CBD, CBF } },
        { name = 'deconvolution', k = 10, at = 'call', reject = CBB, none = { CBB }, some = { CBD, CBF } },
        -- depthwise_convolution: forward = Forward (+ AddTensor), dx = BackwardData
        { name = 'depthwise_convolution', k = 1, reject = 'cudnnSetConvolutionGroupCount', none = ALL_CONV, where = 'host' },
        { name = 'depthwise_convolution', k = 4, reject = 'all', none = ALL_CONV, where = 'host' },
        { name = 'depthwise_convolution', k = 1, reject = 'cudnnGetConvolutionForward', none = { CF, ADD },
          some = { CBD, CBF, CBB }, where = 'host' },
        { name = 'depthwise_convolution', k = 2, reject = 'cudnnGetConvolutionBackwardDataAlgorithm_v7', none = { CBD },
          some = { CF, ADD, CBF, CBB }, where = 'device' },
        { name = 'depthwise_convolution', k = 1, at = 'call', reject = CF, none = { CF, ADD }, some = { CBD, CBF, CBB },
          where = 'host' },
        { name = 'depthwise_convolution', k = 1, at = 'call', reject = CBD, none = { CBD }, some = { CF, ADD, CBF, CBB },
          where = 'device' },
        { name = 'depthwise_convolution', k = 1, at = 'call', reject = CBF .. ',' .. CBB, none = { CBF, CBB },
          some = { CF, ADD, CBD } },
        { name = 'depthwise_convolution', k = 1, at = 'call', reject = ADD, none = { ADD, CBD, CBF, CBB }, some = { CF },
          where = 'host' },
        { name = 'depthwise_convolution', k = 6, at = 'call', reject = CBD, none = { CBD }, some = { CF, CBF, CBB } },
        -- pooling (average; max only at inference: training keeps the CUDA kernel's argmax)
        { name = 'average_pooling', k = 1, reject = 'cudnnSetPoolingNdDescriptor', none = { 'cudnnPooling' }, where = 'device' },
        { name = 'average_pooling', k = 5, reject = 'cudnnSetTensorNdDescriptor', none = { 'cudnnPooling' }, where = 'device' },
        { name = 'average_pooling', k = 4, reject = 'all', none = { 'cudnnPooling' }, where = 'device' },
        { name = 'max_pooling', k = 'inference', case = mp_inference, reject = 'cudnnSetPoolingNdDescriptor',
          none = { 'cudnnPooling' }, where = 'device' },
        -- batch normalization (training and inference)
        { name = 'batch_normalization', k = 1, reject = 'cudnnDeriveBNTensorDescriptor', none = { 'cudnnBatchNormalization' },
          where = 'device' },
        { name = 'batch_normalization', k = 1, reject = 'cudnnSetTensorNdDescriptor', none = { 'cudnnBatchNormalization' },
          where = 'device' },
        { name = 'batch_normalization', k = 2, reject = 'cudnnDeriveBNTensorDescriptor', none = { 'cudnnBatchNormalization' },
          where = 'device' },
        { name = 'batch_normalization', k = 3, reject = 'all', none = { 'cudnnBatchNormalization' }, where = 'device' },
        -- refused compute calls
        { name = 'average_pooling', k = 1, at = 'call', reject = 'cudnnPoolingForward', none = { 'cudnnPooling' },
          where = 'device' },
        { name = 'average_pooling', k = 2, at = 'call', reject = 'cudnnPoolingBackward', none = { 'cudnnPoolingBackward' },
          some = { 'cudnnPoolingForward' } },
        { name = 'max_pooling', k = 'inference', case = mp_inference, at = 'call', reject = 'cudnnPoolingForward',
          none = { 'cudnnPooling' }, where = 'device' },
        { name = 'batch_normalization', k = 1, at = 'call', reject = 'cudnnBatchNormalizationForwardTraining',
          none = { 'cudnnBatchNormalization' }, where = 'device' },
        { name = 'batch_normalization', k = 1, at = 'call', reject = 'cudnnBatchNormalizationBackward',
          none = { 'cudnnBatchNormalizationBackward' }, some = { 'cudnnBatchNormalizationForwardTraining' } },
        { name = 'batch_normalization', k = 2, at = 'call', reject = 'cudnnBatchNormalizationForwardInference',
          none = { 'cudnnBatchNormalization' }, where = 'device' },
      }
      for _, name in ipairs { 'softmax', 'log_softmax' } do
        fallbacks[#fallbacks + 1] = { name = name, k = 1, reject = 'cudnnSetTensorNdDescriptor', none = { 'cudnnSoftmax' },
                                      where = 'device' }
        fallbacks[#fallbacks + 1] = { name = name, k = 2, reject = 'all', none = { 'cudnnSoftmax' }, where = 'device' }
        fallbacks[#fallbacks + 1] = { name = name, k = 1, at = 'call', reject = 'cudnnSoftmaxForward',
                                      none = { 'cudnnSoftmax' }, where = 'device' }
        fallbacks[#fallbacks + 1] = { name = name, k = 2, at = 'call', reject = 'cudnnSoftmaxBackward',
                                      none = { 'cudnnSoftmaxBackward' }, some = { 'cudnnSoftmaxForward' } }
      end
      for _, name in ipairs { 'tanh', 'sigmoid', 'relu' } do
        fallbacks[#fallbacks + 1] = { name = name, k = 1, reject = 'cudnnSetActivationDescriptor',
                                      none = { 'cudnnActivation' }, where = 'device' }
        fallbacks[#fallbacks + 1] = { name = name, k = 1, reject = 'cudnnSetTensorNdDescriptor',
                                      none = { 'cudnnActivation' }, where = 'device' }
        fallbacks[#fallbacks + 1] = { name = name, k = 1, at = 'call', reject = 'cudnnActivationForward',
                                      none = { 'cudnnActivation' }, where = 'device' }
        fallbacks[#fallbacks + 1] = { name = name, k = 1, at = 'call', reject = 'cudnnActivationBackward',
                                      none = { 'cudnnActivationBackward' }, some = { 'cudnnActivationForward' } }
      end

      for _, s in ipairs(fallbacks) do
        local how = 'the CUDA kernels'
        if s.name == 'deconvolution' or s.name == 'depthwise_convolution' then
          how = not s.some and 'the CPU' or (s.where == 'host' and 'the CPU forward' or 'the CPU for the refused gradients')
        end
        it(('%s #%s: cuDNN refusing %s (%s) -> %s, matching the CPU'):format(s.name, s.k, s.reject, s.at or 'setup', how),
           function() falls_back(s) end)
      end

      -- a network of every kind of cuDNN node, forward with clear_no_need_grad and backward
      -- with clear_buffer (what the fallbacks read must have been kept), cuDNN refusing
      -- everything, or the backward queries and a compute call of the convolutions
      for _, r in ipairs {
        { 'all', none = { 'cudnn' } },
        { 'cudnnGetConvolutionBackwardData,cudnnConvolutionBackwardFilter', none = { CBD, CBF }, some = { CF, ADD, CBB } },
      } do
        local list = r[1]
        it(('a network with cleared buffers matches the CPU, cuDNN refusing %s'):format(list), function()
          local function run(ctx)
            nn.seed(12)
            local x = NdArray.randn({ 4, 3, 8, 8 })
            return nn.context_scope(ctx, function()
              nn.clear_parameters()
              local h = F.relu(PF.convolution(nn.Variable.from(x), 4, { 3, 3 }, { pad = { 1, 1 }, name = 'c' }))
              h = F.tanh(PF.depthwise_convolution(F.max_pooling(h, { 2, 2 }), { 3, 3 }, { pad = { 1, 1 }, name = 'dw' }))
              h = PF.deconvolution(h, 3, { 2, 2 }, { stride = { 2, 2 }, name = 'dc' })
              h = F.sigmoid(PF.batch_normalization(F.average_pooling(h, { 2, 2 }), { name = 'bn' }))
              local y = F.mean(F.log_softmax(PF.affine(h, 5, { name = 'fc' })))
              y:forward { clear_no_need_grad = true }
              y:backward { clear_buffer = true }
              local out = { y.d:copy() }
              for _, p in nn.get_parameters():items() do out[#out + 1] = p.g:copy() end
              return out
            end)
          end
          local want = run(cpu_ctx)
          local watch = {}
          for _, p in ipairs(r.none) do watch[#watch + 1] = p end
          for _, p in ipairs(r.some or {}) do watch[#watch + 1] = p end
          local c0, r0 = counts(watch), rejects()
          local got, c1
          with_reject(list, function()
            got = run(ctx_cudnn)
            c1 = counts(watch)
          end)
          nn.clear_parameters()
          assert.is_true(rejects() > r0, 'the knob refused no call')
          for _, p in ipairs(r.none) do assert.equal(0, c1[p] - c0[p], p .. ' calls were made') end
          for _, p in ipairs(r.some or {}) do assert.is_true(c1[p] > c0[p], 'no ' .. p .. ' calls') end
          assert.equal(#want, #got)
          for i = 1, #want do assert_close(got[i], want[i], 1e-3, 1e-2, 'output/gradient ' .. i) end
        end)
      end

      it('the knob refuses only the entry points it names', function()
        local case = cases.convolution[1]
        local r0, c0 = rejects(), tonumber(emu.nl_cuda_emu_cudnn_calls())
        with_reject('cudnnNoSuchCall, cudnnConvolutionForwardX,', function() compare(case, ctx_cudnn, 'no match') end)
        assert.equal(r0, rejects())
        assert.is_true(tonumber(emu.nl_cuda_emu_cudnn_calls()) > c0)
        c0 = counts({ CF })[CF]
        with_reject('cudnnNoSuchCall , cudnnGetConvolutionForwardAlgorithm ', function()
          compare(case, ctx_cudnn, 'prefix in a list')
        end)
        assert.is_true(rejects() > r0)
        assert.equal(c0, counts({ CF })[CF])
        assert.equal(saved, os.getenv(VAR))
      end)
    end)
  end

  it('forward with clear_no_need_grad and backward with clear_buffer match the CPU', function()
    local function run(ctx)
      nn.seed(11)
      local x = NdArray.randn({ 8, 3, 8, 8 })
      return nn.context_scope(ctx, function()
        nn.clear_parameters()
        local v = nn.Variable.from(x)
        local h = F.relu(PF.convolution(v, 4, { 3, 3 }, { pad = { 1, 1 } }))
        h = F.tanh(F.max_pooling(h, { 2, 2 }))
        h = F.sigmoid(PF.batch_normalization(h))
        local y = F.mean(F.softmax(PF.affine(h, 5)))
        y:forward { clear_no_need_grad = true }
        y:backward { clear_buffer = true }
        local out = { y.d:copy() }
        for _, p in nn.get_parameters():items() do out[#out + 1] = p.g:copy() end
        return out
      end)
    end
    local want, got = run(cpu_ctx), run(ctx_cudnn)
    for i = 1, #want do assert_close(got[i], want[i], 1e-3, 1e-2, 'output/gradient ' .. i) end
    nn.clear_parameters()
  end)

  it('.d on a device variable brings the data to the host', function()
    local x = randn({ 3, 4 }, 5)
    nn.context_scope(ctx_cuda, function()
      local y = F.mul_scalar(nn.Variable.from(x), 2)
      y:forward()
      local d = y.d
      if not selftest then
        assert.equal(2, bit.band(C.nl_array_where(C.nl_var_data(y)), 3))   -- only on the device
      end
      local px, py = x:ptr(), d:ptr()
      for i = 0, 11 do assert.near(2 * px[i], py[i], 1e-6) end
      if not selftest then
        assert.equal(3, bit.band(C.nl_array_where(C.nl_var_data(y)), 3))   -- now on both
      end
    end)
  end)

  it('a small CNN trains on the GPU', function()
    nn.clear_parameters()
    nn.seed(5)
    local n = 32
    local x = nn.Variable({ n, 1, 8, 8 })
    local t = nn.Variable({ n, 1 })
    local px, pt = x.data:ptr(C.NL_WRITE), t.data:ptr(C.NL_WRITE)
    for i = 0, n - 1 do             -- two classes: bright top half or bright bottom half
      local cls = i % 2
      pt[i] = cls
      for j = 0, 63 do
        local top = j < 32
        px[i * 64 + j] = ((top and cls == 0) or (not top and cls == 1)) and 1 or 0
        px[i * 64 + j] = px[i * 64 + j] + 0.1 * math.sin(i * 7 + j)
      end
    end
    local loss
    nn.context_scope(ctx_cudnn, function()
      local h = F.relu(PF.batch_normalization(PF.convolution(x, 4, { 3, 3 }, { pad = { 1, 1 }, name = 'c1' }), { name = 'b1' }))
      h = F.max_pooling(h, { 2, 2 })
      h = F.tanh(PF.affine(h, 16, { name = 'f1' }))
      loss = F.mean(F.softmax_cross_entropy(PF.affine(h, 2, { name = 'f2' }), t))
    end)
    local solver = S.Sgd(0.5)
    solver:set_parameters(nn.get_parameters())
    loss:forward()
    local first = loss.d:ptr()[0]
    for _ = 1, 40 do
      loss:forward()
      solver:zero_grad()
      loss:backward()
      solver:update()
    end
    loss:forward()
    local last = loss.d:ptr()[0]
    assert.is_true(last < 0.5 * first, ('loss %g -> %g'):format(first, last))
    nn.clear_parameters()
  end)

  -- The tutorial as a user runs it, twice: on the CPU (no backend: NNLUA_CUDA_LIB names
  -- none) and with its CNN section on the GPU (the backend this suite uses). Every printed
  -- loss of the CNN's 1000 training steps agrees: to 1e-4 in the emulation (the kernels'
  -- sums differ from the CPU's only in order), to 0.05 on a device (cuDNN's algorithms
  -- round differently and SGD carries that along).
  if not selftest then
    it("the tutorial's CNN section trains on the GPU as on the CPU, step for step", function()
      local dir = os.tmpname()
      os.remove(dir)
      local function run(lib)
        os.execute("rm -rf '" .. dir .. "' && mkdir -p '" .. dir .. "'")
        local h = io.popen(('cd %q && env NNLUA_CUDA_LIB=%q NNLUA_PLOT=png NNLUA_FIGURES=%q NNLUA_TUTORIAL_TMP=%q '
                            .. '%q/scripts/nnlua %q/tutorials/by_examples.lua 2>&1; echo "exit=$?"'):format(
                            dir, lib, dir .. '/figures', dir, root, root))
        local out = h:read('*a')
        h:close()
        local cnn = out:match('==== Convolutional neural network.-\n(.-)%[figure%] [^\n]*04_cnn')
        local losses = {}
        for step, l in (cnn or ''):gmatch('\n(%d+)\t([%d.e-]+)') do losses[#losses + 1] = { tonumber(step), tonumber(l) } end
        return out, cnn or '', losses
      end
      local out_cpu, cnn_cpu, cpu = run(dir .. '/none.so')
      local lib = os.getenv('NNLUA_CUDA_LIB') or ''
      if lib ~= '' and lib:sub(1, 1) ~= '/' then lib = (os.getenv('PWD') or '.') .. '/' .. lib end
      local out_gpu, cnn_gpu, gpu = run(lib)
      os.execute("rm -rf '" .. dir .. "'")
      assert.matches('exit=0', out_cpu, 1, true)
      assert.matches('exit=0', out_gpu, 1, true)
      assert.matches('going on on the CPU', cnn_cpu, 1, true)
      assert.matches('Context: Context(backend={cudnn, cuda, cpu}', cnn_gpu, 1, true)
      assert.equal(10, #cpu, 'CNN losses printed on the CPU:\n' .. cnn_cpu)
      assert.equal(#cpu, #gpu, 'CNN losses printed with the GPU:\n' .. cnn_gpu)
      local tol = emu and 1e-4 or 0.05
      for i, c in ipairs(cpu) do
        assert.equal(c[1], gpu[i][1])
        assert.is_true(math.abs(c[2] - gpu[i][2]) <= tol,
                       ('step %d: loss %.7g %s, %.7g on the CPU'):format(c[1], gpu[i][2], on_gpu, c[2]))
      end
    end)
  end

  it('every solver kernel on the device agrees with its host twin', function()
    local cuda = not selftest and require 'nnlua.cuda'
    local K_host, K_dev = C, selftest and C or cuda.kernels
    local n = 300
    local kernels = {
      { 'sgd_update', 0, function(K, w, g) return K.nl_sgd_update(w, g, 0.1) end },
      { 'weight_decay', 0, function(K, w, g) return K.nl_weight_decay(w, g, 0.01) end },
      { 'momentum_update', 1, function(K, w, g, s) return K.nl_momentum_update(w, g, s[1], 0.1, 0.9) end },
      { 'nesterov_update', 1, function(K, w, g, s) return K.nl_nesterov_update(w, g, s[1], 0.1, 0.9) end },
      { 'sgdw_update', 1, function(K, w, g, s) return K.nl_sgdw_update(w, g, s[1], 0.1, 0.9, 1e-3) end },
      { 'adagrad_update', 1, function(K, w, g, s) return K.nl_adagrad_update(w, g, s[1], 0.01, 1e-8) end },
      { 'adadelta_update', 2, function(K, w, g, s) return K.nl_adadelta_update(w, g, s[1], s[2], 1, 0.95, 1e-6) end },
      { 'rmsprop_update', 1, function(K, w, g, s) return K.nl_rmsprop_update(w, g, s[1], 1e-3, 0.9, 1e-8) end },
      { 'rmsprop_graves_update', 3, function(K, w, g, s)
          return K.nl_rmsprop_graves_update(w, g, s[1], s[2], s[3], 1e-4, 0.95, 0.9, 1e-4) end },
      { 'adam_update', 2, function(K, w, g, s, t) return K.nl_adam_update(w, g, s[1], s[2], 1e-3, 0.9, 0.999, 1e-8, t, 0) end },
      { 'adam_update (AdamW)', 2, function(K, w, g, s, t)
          return K.nl_adam_update(w, g, s[1], s[2], 1e-3, 0.9, 0.999, 1e-8, t, 1e-4) end },
      { 'amsgrad_update', 3, function(K, w, g, s, t)
          return K.nl_amsgrad_update(w, g, s[1], s[2], s[3], 1e-3, 0.9, 0.999, 1e-8, 1, t) end },
      { 'adabound_update', 2, function(K, w, g, s, t)
          return K.nl_adabound_update(w, g, s[1], s[2], 1e-3, 1e-3, 0.9, 0.999, 1e-8, 0.1, 1e-3, t) end },
      { 'adamax_update', 2, function(K, w, g, s, t) return K.nl_adamax_update(w, g, s[1], s[2], 2e-3, 0.9, 0.999, 1e-8, t) end },
      { 'lars_update', 1, function(K, w, g, s) return K.nl_lars_update(w, g, s[1], 1e-3, 0.9, 1e-3, 1e-6, 1e-4) end },
      { 'lamb_update', 2, function(K, w, g, s, t)
          return K.nl_lamb_update(w, g, s[1], s[2], 1e-3, 0.9, 0.999, 0, 10, 1e-6, 1, 1e-4, t) end },
      { 'axpy', 0, function(K, w, g) return K.nl_axpy(w, 0.5, g) end },
      { 'scale', 0, function(K, w) return K.nl_scale(w, 0.5) end },
    }
    for _, k in ipairs(kernels) do
      local name, ns, call = k[1], k[2], k[3]
      local function run(K)
        local w, g, st, sa = randn({ n }, 1), randn({ n }, 2), {}, {}
        for j = 1, ns do st[j] = NdArray.zeros({ n }); sa[j] = st[j]._a end
        for t = 1, 3 do
          if call(K, w._a, g._a, sa, t) ~= 0 then error(name .. ': ' .. nn.lib.last_error()) end
        end
        return w, g, st
      end
      local wh, gh, sh = run(K_host)
      local wd, gd, sd = run(K_dev)
      if cuda then assert.is_true(cuda.on_device(wd._a), name) end
      assert_close(wd, wh, 1e-5, 1e-4, name .. ': parameter')
      assert_close(gd, gh, 1e-5, 1e-4, name .. ': gradient')
      for j = 1, ns do assert_close(sd[j], sh[j], 1e-5, 1e-4, name .. ': state ' .. j) end
    end
    if not cuda then return end
    local g = randn({ 5000 }, 3)
    cuda.kernels.nl_scale(g._a, 1)                                        -- now on the device
    assert.is_true(cuda.on_device(g._a))
    assert.near(C.nl_sum_squares(g._a), cuda.kernels.nl_sum_squares(g._a), 1e-2)
    assert.equal(0, cuda.kernels.nl_has_inf_or_nan(g._a))
    g:ptr(C.NL_READWRITE)[77] = 1 / 0
    cuda.kernels.nl_scale(g._a, 2)
    assert.equal(1, cuda.kernels.nl_has_inf_or_nan(g._a))
    assert.equal(cuda.kernels, cuda.kernels_for(g._a))
    local h = NdArray.zeros({ 3 })
    h:ptr(C.NL_WRITE)
    assert.equal(C, cuda.kernels_for(h._a))
  end)

  if not selftest then
    local cuda = require 'nnlua.cuda'

    it('a static graph stops calling cudaMalloc after its first step', function()
      nn.clear_parameters()
      local x = nn.Variable.from(randn({ 16, 3, 8, 8 }, 9))
      local loss
      nn.context_scope(ctx_cudnn, function()
        loss = F.mean(PF.affine(F.relu(PF.convolution(x, 4, { 3, 3 })), 3))
      end)
      local function step()
        loss:forward { clear_no_need_grad = true }
        loss:backward { clear_buffer = true }
      end
      step()
      step()
      local before = cuda.memory(0).mallocs
      local runtime_before = emu and emu.nl_cuda_emu_cuda_mallocs(0)   -- the emulated runtime's own count
      assert.is_true(before > 0)
      for _ = 1, 5 do step() end
      assert.equal(before, cuda.memory(0).mallocs)
      if emu then assert.equal(runtime_before, emu.nl_cuda_emu_cuda_mallocs(0)) end
      nn.clear_parameters()
      cuda.free_cached()
      assert.equal(0, cuda.memory(0).cached)
      if emu then assert.equal(cuda.memory(0).in_use, tonumber(emu.nl_cuda_emu_device_bytes(0))) end
    end)

    it('the device queries answer: name, versions, synchronize, registered implementations', function()
      assert.is_true((cuda.available()))
      assert.is_true(cuda.device_count() >= 1)
      assert.matches('%(compute capability %d+%.%d+, [%d.]+ GiB%)$', cuda.device_name(0))
      assert.matches('^CUDA runtime %d+%.%d+, driver %d+%.%d+, cuBLAS %d+, cuDNN %d+%.%d+%.%d+ %(built against '
                     .. '%d+%.%d+%.%d+%)$', cuda.version())
      cuda.synchronize(0)
      assert.is_true(tonumber(cuda.C.nl_cuda_registered_count()) > 100)
      local ok, err = pcall(cuda.synchronize, 99)
      assert.is_false(ok)
      assert.matches('cuda%.synchronize: device_id 99 is out of range', tostring(err))
    end)

    it('a bad device id is a clear error', function()
      for _, id in ipairs { 99, -1 } do
        local ok, err = pcall(ext.get_extension_context, 'cudnn', { device_id = id })
        assert.is_false(ok)
        assert.matches("get_extension_context%('cudnn'%): device_id " .. tostring(id):gsub('%-', '%%-')
                       .. ' is out of range', tostring(err))
      end
    end)
  end

  if emu then
    local MiB = 2 ^ 20
    local function set_memory(mb)   -- the emulated device's size (cuda/emu/cuda_runtime.h)
      if mb then ffi.C.setenv('NNLUA_CUDA_EMU_MEM_MB', tostring(mb), 1) else ffi.C.unsetenv('NNLUA_CUDA_EMU_MEM_MB') end
    end
    local function gc()
      collectgarbage()
      collectgarbage()
    end
    -- y = 2 x on device 0 from a fresh host array of n values; returns y's data on the host
    local function twice(n, seed)
      return nn.context_scope(ctx_cuda, function()
        local y = F.mul_scalar(nn.Variable.from(randn({ n }, seed)), 2)
        y:forward()
        return y.d:copy()
      end)
    end
    local function check_twice(got, n, seed)
      local x = randn({ n }, seed)
      local px, pg = x:ptr(), got:ptr()
      for i = 0, n - 1, 997 do assert.equal(2 * px[i], pg[i]) end
    end

    it('out of device memory is a clear error naming the function and the sizes, and the process goes on', function()
      local cuda = require 'nnlua.cuda'
      gc()
      cuda.free_cached()
      local held = tonumber(emu.nl_cuda_emu_device_bytes(0))   -- what nnlua's live arrays hold
      local limit = math.ceil(held / MiB) + 12
      set_memory(limit)
      local ok, err = pcall(function()
        -- 16 MiB does not fit
        local ok1, err1 = pcall(twice, 4 * MiB, 1)
        assert.is_false(ok1)
        assert.matches('mul_scalar: CUDA out of memory allocating 16777216 bytes on device 0 %(nnlua holds [%d.]+ MiB '
                       .. 'there; [%d.]+ MiB free of ' .. limit .. '%.0 MiB%)', tostring(err1))
        -- smaller work still runs on the device
        check_twice(twice(MiB / 4, 2), MiB / 4, 2)
        -- a block the cache holds goes back when cudaMalloc runs out: 8 MiB cached, 6 MiB asked
        nn.context_scope(ctx_cuda, function()
          local s = F.sum(nn.Variable.from(randn({ 2 * MiB }, 3)))
          s:forward()
        end)
        gc()
        assert.is_true(cuda.memory(0).cached >= 8 * MiB, 'cached: ' .. cuda.memory(0).cached)
        local mallocs = cuda.memory(0).mallocs
        local x6 = randn({ 3 * MiB / 2 }, 4)
        local got = nn.context_scope(ctx_cuda, function()
          local s = F.sum(nn.Variable.from(x6))
          s:forward()
          return s.d:ptr()[0]
        end)
        local want = nn.context_scope(cpu_ctx, function()
          local s = F.sum(nn.Variable.from(x6))
          s:forward()
          return s.d:ptr()[0]
        end)
        assert.near(want, got, 1e-2 * math.max(1, math.abs(want)))
        assert.is_true(cuda.memory(0).mallocs > mallocs)
        assert.is_true(cuda.memory(0).cached < 8 * MiB, 'the cache was not given back')
      end)
      set_memory(nil)
      if not ok then error(err, 0) end
      -- free the cache, run again with room: the work that failed now succeeds
      cuda.free_cached()
      check_twice(twice(4 * MiB, 1), 4 * MiB, 1)
    end)

    -- Runs a Lua script in a child process over the emulation with extra environment
    -- variables (cuda/emu/cuda_runtime.h); returns its output.
    local function child(env, body)
      local function q(v) return "'" .. tostring(v):gsub("'", "'\\''") .. "'" end
      local script = os.tmpname()
      local f = assert(io.open(script, 'w'))
      f:write(('package.path = %q\npackage.cpath = %q\n'):format(package.path, package.cpath), body)
      f:close()
      local vars = { 'NNLUA_LIB=' .. q(nn.lib.path), 'NNLUA_CUDA_LIB=' .. q(emu_path) }
      for k, v in pairs(env) do vars[#vars + 1] = k .. '=' .. q(v) end
      local p = assert(io.popen(('env %s %s %s 2>&1'):format(table.concat(vars, ' '), q(os.getenv('LUAJIT') or 'luajit'),
                                                               q(script))))
      local out = p:read('*a')
      p:close()
      os.remove(script)
      return out
    end
    local ask = [[
local ok, err = pcall(require('nnlua.ext_utils').get_extension_context, 'cudnn', { device_id = 0 })
local cuda = require 'nnlua.cuda'
print(ok, err)
print('available', (cuda.available()), 'devices', cuda.device_count())
]]

    it('no emulated device, no driver, an old driver or an old GPU gives the clear message', function()
      for _, c in ipairs {
        { { NNLUA_CUDA_EMU_DEVICES = 0 }, "no CUDA available: no CUDA device: the driver %(CUDA 12%.8%) found none", false },
        { { NNLUA_CUDA_EMU_DRIVER = 0 }, 'no CUDA available: no CUDA driver: the NVIDIA driver %(libcuda%.so%) is not installed', false },
        { { NNLUA_CUDA_EMU_DRIVER = 11080 }, 'no CUDA available: no CUDA driver for this build: the driver supports CUDA 11%.8, '
                                             .. 'the runtime needs 12%.8', false },
        { { NNLUA_CUDA_EMU_CC = '7.5' }, "CUDA device 0 %(compute capability 7%.5%) cannot run this build's kernels %(built for "
                                         .. "sm_80%): no kernel image is available", true },
      } do
        local out = child(c[1], ask)
        assert.matches("^false\tget_extension_context%('cudnn'%): " .. c[2], out)
        assert.matches('\navailable\t' .. tostring(c[3]) .. '\tdevices\t' .. (c[3] and 1 or 0) .. '\n', out)
      end
    end)

    it('two emulated devices: work on device 1, its result used on device 0, per-device allocators', function()
      local out = child({ NNLUA_CUDA_EMU_DEVICES = 2 }, [[
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local ext = require 'nnlua.ext_utils'
local c1 = ext.get_extension_context('cuda', { device_id = 1 })
local c0 = ext.get_extension_context('cuda', { device_id = 0 })
local cuda = require 'nnlua.cuda'
nn.seed(3)
local x = nn.NdArray.randn({ 5000 })
local y = nn.context_scope(c1, function() local y = F.mul_scalar(nn.Variable.from(x), 2) y:forward() return y end)
local z = nn.context_scope(c0, function() local z = F.add_scalar(y, 1) z:forward() return z end)
local w = F.add_scalar(F.mul_scalar(nn.Variable.from(x), 2), 1)
w:forward()
local pw, pz = w.d:ptr(), z.d:ptr()
for i = 0, 4999 do assert(pz[i] == pw[i], 'element ' .. i) end
assert(cuda.device_count() == 2)
assert(cuda.memory(0).mallocs > 0 and cuda.memory(1).mallocs > 0)
local ok, err = pcall(ext.get_extension_context, 'cudnn', { device_id = 2 })
print(ok, err)
print('done')
]])
      assert.matches("^false\tget_extension_context%('cudnn'%): device_id 2 is out of range: 2 CUDA devices "
                     .. '%(device_id 0%.%.1%)\ndone\n$', out)
    end)
  end
end)
