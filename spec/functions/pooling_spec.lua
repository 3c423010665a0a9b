-- F.max_pooling and F.average_pooling through the function tester, against plain-loop
-- references written from NNabla's semantics:
--   output size: ignore_border true  -> (I + 2*pad - K) / stride + 1
--                ignore_border false -> (I + pad - 1) / stride + 1
--   window of o: [o*stride - pad, min(o*stride - pad + K, I + pad)), read clipped to [0, I);
--   average divides by the unclipped window size (including_pad) or the clipped one.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray

local function pool_ref(kind, o)
  return function(x)
    return R.pool(x, o, function(vals, full)
      local best, sum = nil, 0
      for _, v in ipairs(vals) do
        if best == nil or best < v then best = v end
        sum = sum + v
      end
      if kind == 'max' then return best or 0 end
      local n = (o.including_pad == false) and #vals or full
      return n > 0 and sum / n or 0
    end)
  end
end

-- Distinct values 0.1 apart (no ties for max pooling, even under finite differences).
local function distinct(_, shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  local flat = {}
  for j = 0, n - 1 do flat[j + 1] = ((j * 7919) % n - n / 2) * 0.1 end
  return NdArray.from_flat(flat, shape)
end

local function call(fname, x, o)
  if fname == 'max_pooling' then
    return F.max_pooling(x, o.kernel, o.stride, o.ignore_border, o.pad)
  end
  return F.average_pooling(x, o.kernel, o.stride, o.ignore_border, o.pad, false, o.including_pad)
end

local common = {
  { name = 'kernel {2, 2} (stride = kernel)', x = { 2, 3, 4, 4 }, o = { kernel = { 2, 2 } } },
  { name = 'kernel {3, 3}, stride {2, 2}, pad {1, 1}', x = { 1, 2, 5, 5 },
    o = { kernel = { 3, 3 }, stride = { 2, 2 }, pad = { 1, 1 } } },
  { name = 'kernel {2, 3}, stride {2, 2}, ignore_border false', x = { 1, 2, 5, 7 },
    o = { kernel = { 2, 3 }, stride = { 2, 2 }, ignore_border = false } },
  { name = 'kernel {3, 2}, stride {1, 2}, pad {1, 1}, ignore_border false', x = { 1, 2, 5, 6 },
    o = { kernel = { 3, 2 }, stride = { 1, 2 }, pad = { 1, 1 }, ignore_border = false } },
  { name = 'kernel {3, 3}, stride {1, 1}, overlapping windows', x = { 1, 1, 5, 4 },
    o = { kernel = { 3, 3 }, stride = { 1, 1 } } },
  { name = '1-d kernel {3}, stride {2}, pad {1}, ignore_border false', x = { 2, 6 },
    o = { kernel = { 3 }, stride = { 2 }, pad = { 1 }, ignore_border = false } },
  { name = '3-d kernel {2, 2, 2}, stride {1, 2, 2}', x = { 1, 2, 3, 4, 4 },
    o = { kernel = { 2, 2, 2 }, stride = { 1, 2, 2 } } },
  { name = 'pooling over every axis: x {5, 4}, kernel {2, 2}', x = { 5, 4 }, o = { kernel = { 2, 2 } } },
}

describe('max_pooling', function()
  for _, c in ipairs(common) do
    it(c.name, function()
      T.check {
        fn = function(x) return call('max_pooling', x, c.o) end,
        ref = pool_ref('max', c.o),
        inputs = { c.x },
        init = distinct,
        grad = { true },
      }
    end)
  end

  it('golden: 1..16 in 4x4 with kernel {2, 2} gives {6, 8, 14, 16}', function()
    local x = nn.Variable.from(NdArray.arange(16):reshape({ 1, 1, 4, 4 }), { need_grad = true })
    local y = F.max_pooling(x, { 2, 2 })
    y:forward()
    assert.same({ 6, 8, 14, 16 }, y.d:flat())
    y:backward { grad = { { { { 1, 2 }, { 3, 4 } } } } }
    assert.same({ 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4 }, x.g:flat())
  end)

  it('padding never wins: all-negative inputs with pad', function()
    local x = nn.Variable.from(NdArray.arange(-9, -1):reshape({ 1, 1, 3, 3 }))
    local y = F.max_pooling(x, { 2, 2 }, { 2, 2 }, true, { 1, 1 })
    y:forward()
    assert.same({ -9, -7, -3, -1 }, y.d:flat())
  end)

  it('uses NNabla output sizes for ignore_border', function()
    local x = nn.Variable({ 1, 1, 5 })
    assert.same({ 1, 1, 3 }, F.max_pooling(x, { 3 }, { 2 }, false).shape)
    assert.same({ 1, 1, 2 }, F.max_pooling(x, { 3 }, { 2 }, true).shape)
    assert.same({ 1, 1, 3 }, F.max_pooling(nn.Variable({ 1, 1, 6 }), { 3 }, { 2 }, false).shape)
    assert.same({ 1, 1, 4 }, F.max_pooling(nn.Variable({ 1, 1, 6 }), { 3 }, { 2 }, false, { 1 }).shape)
    assert.same({ 2, 3, 2, 2 }, F.max_pooling(nn.Variable({ 2, 3, 5, 5 }), { 2, 2 }).shape)
    assert.same({ 2, 3, 3, 3 }, F.max_pooling(nn.Variable({ 2, 3, 5, 5 }), { 2, 2 }, { ignore_border = false }).shape)
  end)
end)

describe('average_pooling', function()
  for _, c in ipairs(common) do
    for _, inc in ipairs { true, false } do
      it(c.name .. ', including_pad ' .. tostring(inc), function()
        local o = {}
        for k, v in pairs(c.o) do o[k] = v end
        o.including_pad = inc
        T.check {
          fn = function(x) return call('average_pooling', x, o) end,
          ref = pool_ref('average', o),
          inputs = { c.x },
          grad = { true },
        }
      end)
    end
  end

  it('golden: 1..16 in 4x4 with kernel {2, 2} gives {3.5, 5.5, 11.5, 13.5}', function()
    local x = nn.Variable.from(NdArray.arange(16):reshape({ 1, 1, 4, 4 }))
    local y = F.average_pooling(x, { 2, 2 })
    y:forward()
    assert.same({ 3.5, 5.5, 11.5, 13.5 }, y.d:flat())
  end)

  it('golden: including_pad true divides by the padded window, false by the real cells', function()
    local x = nn.Variable.from(NdArray.arange(9):reshape({ 1, 1, 3, 3 }))
    local y = F.average_pooling(x, { 2, 2 }, { 2, 2 }, true, { 1, 1 })
    y:forward()
    assert.same({ 0.25, 1.25, 2.75, 7 }, y.d:flat())
    local y2 = F.average_pooling(x, { 2, 2 }, { 2, 2 }, true, { 1, 1 }, { including_pad = false })
    y2:forward()
    assert.same({ 1, 2.5, 5.5, 7 }, y2.d:flat())
  end)

  it('golden: a window past the border (ignore_border false) is cut at the padded edge', function()
    local x = nn.Variable.from(NdArray.arange(5):reshape({ 1, 1, 5 }))
    local y = F.average_pooling(x, { 3 }, { 2 }, false)
    y:forward()
    assert.same({ 2, 4, 5 }, y.d:flat())
  end)
end)

-- The threaded path starts OpenMP worker threads (libnnlua.so is linked with
-- -Wl,-z,nodelete so that unloading it at exit does not pull code from under them).
local threaded = it

describe('pooling on an input large enough for the threaded path', function()
  for _, name in ipairs { 'max_pooling', 'average_pooling' } do
    threaded(name .. ' x {16, 16, 16, 16}, kernel {2, 2}: forward matches, gradients sum to sum(dy)', function()
      local o = { kernel = { 2, 2 } }
      T.check {
        fn = function(x) return call(name, x, o) end,
        ref = pool_ref(name == 'max_pooling' and 'max' or 'average', o),
        inputs = { { 16, 16, 16, 16 } },
        init = distinct,
      }
      local x = nn.Variable.from(distinct(1, { 16, 16, 16, 16 }), { need_grad = true })
      local y = call(name, x, o)
      y:forward()
      local dy = NdArray.randn(y.shape)
      y:backward { grad = dy }
      local sx, sy = 0, 0
      for _, v in ipairs(x.g:flat()) do sx = sx + v end
      for _, v in ipairs(dy:flat()) do sy = sy + v end
      assert.is_true(math.abs(sx - sy) < 1e-2, ('sum dx %g vs sum dy %g'):format(sx, sy))
    end)
  end
end)

describe('pooling rejects bad inputs with the shapes involved', function()
  local V = nn.Variable
  local err_of = R.err_of
  for _, name in ipairs { 'max_pooling', 'average_pooling' } do
    local pre = 'F.' .. name .. ': '
    it(name .. ': a missing kernel', function()
      local err = err_of(function() return F[name](V({ 1, 1, 4, 4 })) end)
      assert.matches(pre .. "argument 'kernel' is required", err, 1, true)
      assert.matches('(inputs: x {1, 1, 4, 4})', err, 1, true)
    end)
    it(name .. ': a kernel with more entries than x has axes, or more than 3', function()
      local err = err_of(function() return F[name](V({ 2, 3 }), { 2, 2, 2 }) end)
      assert.matches(pre .. 'kernel has 3 entries but x {2, 3} has only 2 axes', err, 1, true)
      err = err_of(function() return F[name](V({ 1, 2, 2, 2, 2 }), { 1, 1, 1, 1 }) end)
      assert.matches(pre .. 'kernel has 4 entries; pooling over 1 to 3 axes is supported', err, 1, true)
    end)
    it(name .. ': a kernel larger than the padded input', function()
      local err = err_of(function() return F[name](V({ 1, 1, 2, 5 }), { 3, 3 }) end)
      assert.matches(pre .. 'kernel 3 is larger than the padded input 2 (x size 2 + 2*pad 0) '
        .. 'at axis 3 of x {1, 1, 2, 5}', err, 1, true)
    end)
    it(name .. ': stride or pad of the wrong length, bad values', function()
      local err = err_of(function() return F[name](V({ 1, 1, 4, 4 }), { 2, 2 }, { 2 }) end)
      assert.matches(pre .. 'stride has 1 entries but kernel has 2', err, 1, true)
      err = err_of(function() return F[name](V({ 1, 1, 4, 4 }), { 2, 2 }, { pad = { 1, 1, 1 } }) end)
      assert.matches(pre .. 'pad has 3 entries but kernel has 2', err, 1, true)
      err = err_of(function() return F[name](V({ 1, 1, 4, 4 }), { 2, 0 }) end)
      assert.matches(pre .. 'kernel entry 2 is 0 (must be 1 or more)', err, 1, true)
      err = err_of(function() return F[name](V({ 1, 1, 4, 4 }), { 2, 2 }, { 2, -1 }) end)
      assert.matches(pre .. 'stride entry 2 is -1 (must be 1 or more)', err, 1, true)
    end)
    it(name .. ': channel_last = true pools (N, H, W, C) (values: channel_last_spec)', function()
      assert.are.same({ 1, 2, 2, 3 }, F[name](V({ 1, 4, 4, 3 }), { 2, 2 }, { channel_last = true }).shape)
      local err = err_of(function() return F[name](V({ 4, 3 }), { 2, 2 }, { channel_last = true }) end)
      assert.matches(pre .. 'channel_last = true: x {4, 3} has no spatial axes', err, 1, true)
    end)
  end
end)

-- scripts/fuzz_functions.lua regressions: huge pads / kernels (were signed overflows)
describe('pooling with huge pads (fuzz)', function()
  local I = 2 ^ 31 - 1
  it('refuses an output of more than 2^48 elements', function()
    for _, name in ipairs { 'max_pooling', 'average_pooling' } do
      local ok, err = pcall(F[name], nn.Variable({2, 3, 6, 6}), {2, 2}, {1, 1}, true, {I, I})
      assert.is_false(ok)
      assert.matches('F.' .. name .. ': y {2, 3, 4294967299, 4294967299} (x {2, 3, 6, 6} pooled with these kernel / stride / pad) has too many elements (at most 2^48)', err, 1, true)
    end
  end)
  it('runs kernels of 2^31 - 1 over a huge pad (small output)', function()
    for _, name in ipairs { 'max_pooling', 'average_pooling' } do
      local x = nn.Variable.from({ { { {1, 2}, {3, 4} } } }, { need_grad = true })
      local y = F[name](x, {I, I}, {I, I}, true, {I, I})
      y:forward()
      y:backward { grad = 1 }
      assert.same({1, 1, 2, 2}, y.shape)
    end
  end)
end)
