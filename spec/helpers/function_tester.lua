-- function_tester: the one checker every engine function goes through (NNabla's
-- function_tester merged with ggml's test-backend-ops):
--   1. forward on a static graph against a plain Lua reference;
--   2. the same graph built in auto-forward (dynamic) mode gives the same numbers;
--   3. backward against central finite differences of sum(dy * y) for a random dy;
--   4. accumulation: leaf gradients that already hold values receive analytic + old;
--   5. overwrite: an intermediate input whose grad buffer is pre-filled with NaN gets
--      clean gradients (non-accumulating backward must not read the old buffer).
-- Usage:
--   tester.check{ fn = function(x, w) return F.affine(x, w) end,
--                 ref = function(x, w) ... return nested_table_or_NdArray end,
--                 inputs = { {2, 3}, {3, 4} },          -- shapes, NdArrays or tables
--                 grad = { true, true },                 -- which inputs to differentiate
--                 atol = 1e-5, grad_atol = 2e-2, eps = 1e-2 }
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local NdArray = nn.NdArray

local T = {}

local function to_nd(x)
  if NdArray.is(x) then return x end
  return NdArray.from(x)
end

local function as_list(x)
  if type(x) == 'table' and not NdArray.is(x) and (type(x[1]) == 'cdata' or NdArray.is(x[1])) then return x end
  return { x }
end

-- Inputs: shapes -> random normal values (or opts.init(i, shape)); tables/NdArrays as given.
local function make_inputs(opts)
  local vals = {}
  for i, spec in ipairs(opts.inputs) do
    if NdArray.is(spec) then vals[i] = spec:copy()
    elseif type(spec) == 'table' and type(spec[1]) == 'number' and spec.values == nil and not opts.raw_tables then
      vals[i] = opts.init and opts.init(i, spec) or NdArray.randn(spec)
    else vals[i] = to_nd(spec.values or spec) end
  end
  return vals
end

local function max_err(a, b, atol, rtol)
  local pa, pb = a:ptr(), b:ptr()
  local worst, at = 0, -1
  for i = 0, a.size - 1 do
    local diff = math.abs(pa[i] - pb[i])
    local tol = atol + rtol * math.abs(pb[i])
    if diff ~= diff or diff > tol then
      local excess = diff ~= diff and math.huge or diff - tol
      if excess > worst or at < 0 then worst, at = excess, i end
    end
  end
  return at
end

local function assert_close(got, want, atol, rtol, what)
  got, want = to_nd(got), to_nd(want)
  if got.size ~= want.size then
    error(('%s: got %d values (shape %s), expected %d (shape %s)'):format(what, got.size,
      nn.lib.shape_str(got.shape), want.size, nn.lib.shape_str(want.shape)), 3)
  end
  local at = max_err(got, want, atol, rtol)
  if at >= 0 then
    error(('%s: element %d is %.7g, expected %.7g (atol %g, rtol %g)'):format(
      what, at + 1, got:ptr()[at], want:ptr()[at], atol, rtol), 3)
  end
end
T.assert_close = assert_close

local function build(opts, vals, auto)
  local xs = {}
  for i, v in ipairs(vals) do
    xs[i] = nn.Variable.from(v, { need_grad = opts.grad and opts.grad[i] or false })
  end
  local outs
  if auto then outs = { nn.auto_forward(function() return opts.fn(unpack(xs)) end) }
  else outs = { opts.fn(unpack(xs)) } end
  return xs, outs
end

-- Sum over outputs of <dy, y> (the scalar whose gradient backward computes).
local function objective(outs, dys)
  local s = 0
  for k, y in ipairs(outs) do
    local py, pd = y.d:ptr(), dys[k]:ptr()
    for i = 0, y.size - 1 do s = s + py[i] * pd[i] end
  end
  return s
end

local function run_backward(outs, dys)
  -- one call per output, seeding only that output (siblings get zero via the engine)
  if #outs == 1 then outs[1]:backward { grad = dys[1] } return end
  for k, y in ipairs(outs) do y:backward { grad = dys[k] } end
end

function T.check(opts)
  local atol, rtol = opts.atol or 1e-5, opts.rtol or 1e-4
  local gatol, grtol = opts.grad_atol or 2e-2, opts.grad_rtol or 2e-2
  local eps = opts.eps or 1e-2
  nn.seed(opts.seed or 1234)
  local vals = make_inputs(opts)

  -- 1. static forward against the reference
  local xs, outs = build(opts, vals, false)
  for _, y in ipairs(outs) do y:forward() end
  if opts.ref then
    local refs = as_list(opts.ref(unpack(vals)))
    if type(refs[1]) == 'table' and not NdArray.is(refs[1]) and type(refs[1][1]) ~= 'table' and #outs == 1 and type(refs[1][1]) == 'number' then
      refs = { refs[1] }
    end
    for k, y in ipairs(outs) do
      local want = to_nd(refs[k])
      if opts.check_shape ~= false and want.ndim == y.ndim then
        for d = 1, y.ndim do
          if y.shape[d] ~= want.shape[d] then
            error(('forward: output %d has shape %s, reference %s'):format(k, nn.lib.shape_str(y.shape), nn.lib.shape_str(want.shape)), 2)
          end
        end
      end
      assert_close(y.d, want, atol, rtol, 'forward output ' .. k)
    end
  end

  -- 2. dynamic graph gives the same numbers
  if opts.dynamic ~= false then
    local _, douts = build(opts, vals, true)
    for k, y in ipairs(douts) do assert_close(y.d, outs[k].d, 1e-6, 1e-6, 'auto_forward output ' .. k) end
  end

  if not opts.grad or opts.skip_backward then return end
  local any = false
  for i = 1, #vals do any = any or (opts.grad[i] or false) end
  if not any then return end

  -- 3. backward against central finite differences
  local dys = {}
  for k, y in ipairs(outs) do dys[k] = opts.dy and to_nd(opts.dy[k]) or NdArray.randn(y.shape) end
  for i, x in ipairs(xs) do if opts.grad[i] then x.grad:zero() end end
  run_backward(outs, dys)
  local analytic = {}
  for i, x in ipairs(xs) do if opts.grad[i] then analytic[i] = x.g:copy() end end
  for i, x in ipairs(xs) do
    if opts.grad[i] then
      local numeric = NdArray.zeros(x.shape)
      local pn = numeric:ptr(nn.lib.C.NL_WRITE)
      for j = 0, x.size - 1 do
        local p = x.data:ptr(nn.lib.C.NL_READWRITE)
        local orig = p[j]
        p[j] = orig + eps
        for _, y in ipairs(outs) do y:forward() end
        local fp = objective(outs, dys)
        p = x.data:ptr(nn.lib.C.NL_READWRITE)
        p[j] = orig - eps
        for _, y in ipairs(outs) do y:forward() end
        local fm = objective(outs, dys)
        p = x.data:ptr(nn.lib.C.NL_READWRITE)
        p[j] = orig
        pn[j] = (fp - fm) / (2 * eps)
      end
      for _, y in ipairs(outs) do y:forward() end
      assert_close(analytic[i], numeric, gatol, grtol, 'backward: gradient of input ' .. i)
    end
  end

  -- 4. accumulation into leaves that already hold gradients
  if opts.accum ~= false then
    local olds = {}
    for i, x in ipairs(xs) do
      if opts.grad[i] then
        olds[i] = NdArray.randn(x.shape)
        x.g = olds[i]
      end
    end
    run_backward(outs, dys)
    for i, x in ipairs(xs) do
      if opts.grad[i] then assert_close(x.g, olds[i] + analytic[i], 1e-4, 1e-4, 'accumulated gradient of input ' .. i) end
    end
  end

  -- 5. overwrite: intermediates with NaN-filled grads
  if opts.overwrite ~= false then
    local leaves, mids = {}, {}
    for i, v in ipairs(vals) do
      leaves[i] = nn.Variable.from(v, { need_grad = opts.grad[i] or false })
      mids[i] = opts.grad[i] and F.identity(leaves[i]) or leaves[i]
    end
    local o2 = { opts.fn(unpack(mids)) }
    for _, y in ipairs(o2) do y:forward() end
    for i, m in ipairs(mids) do
      if opts.grad[i] then m.g = NdArray.full(m.shape, 0 / 0):copy(); leaves[i].grad:zero() end
    end
    run_backward(o2, dys)
    for i, l in ipairs(leaves) do
      if opts.grad[i] then assert_close(l.g, analytic[i], 1e-4, 1e-4, 'overwritten gradient of input ' .. i) end
    end
  end
end

-- Backward of a one-input function against a given gradient, for functions whose gradient is
-- not their derivative (straight-through estimators, gradient clippers): on y = fn(x) with
-- x = x0, backward{grad = dy} from a zeroed leaf gives want, a second one 2 * want
-- (accumulation), and through an intermediate whose grad buffer holds NaN the leaf gets want
-- again (overwrite, not read). dy defaults to random normal values of y's shape.
-- opts: atol, rtol (default 0, 0), acc_atol, acc_rtol (accumulation; default atol, rtol),
-- what (message stem, default 'gradient'). Returns y (forwarded) and dy.
function T.check_given_gradient(fn, x0, dy, want, opts)
  opts = opts or {}
  local atol, rtol = opts.atol or 0, opts.rtol or 0
  local what = opts.what or 'gradient'
  local x = nn.Variable.from(x0, { need_grad = true })
  local y = fn(x)
  y:forward()
  dy = dy or NdArray.randn(y.shape)
  x.grad:zero()
  y:backward { grad = dy }
  assert_close(x.g, want, atol, rtol, what)
  y:backward { grad = dy }
  assert_close(x.g, want * 2, opts.acc_atol or atol, opts.acc_rtol or rtol, 'accumulated ' .. what)
  local leaf = nn.Variable.from(x0, { need_grad = true })
  local mid = F.identity(leaf)
  local z = fn(mid)
  z:forward()
  mid.g = NdArray.full(mid.shape, 0 / 0)
  leaf.grad:zero()
  z:backward { grad = dy }
  assert_close(leaf.g, want, atol, rtol, 'overwritten ' .. what)
  return y, dy
end

-- Element-wise reference helper: map fn over the flat values of NdArrays of one shape.
function T.map(fn, ...)
  local arrs = { ... }
  local r = arrs[1]:copy()
  local pr = r:ptr()
  local ps = {}
  for k, a in ipairs(arrs) do ps[k] = a:ptr() end
  for i = 0, r.size - 1 do
    local args = {}
    for k = 1, #ps do args[k] = ps[k][i] end
    pr[i] = fn(unpack(args))
  end
  return r
end

return T
