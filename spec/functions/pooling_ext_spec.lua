-- F.global_average_pooling, F.sum_pooling and F.unpooling through the function tester,
-- against plain-loop references written from NNabla's semantics.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local each_index, offset, err_of = R.each_index, R.offset, R.err_of

-- Sum over windows [o*s - p, min(o*s - p + k, I + p)) clipped to [0, I).
local function sum_pool_ref(o)
  return function(x)
    return R.pool(x, o, function(vals)
      local acc = 0
      for _, v in ipairs(vals) do acc = acc + v end
      return acc
    end)
  end
end

local function unpool_ref(kernel)
  return function(x)
    local sd = #kernel
    local first = x.ndim - sd
    local maps = 1
    for d = 1, first do maps = maps * x.shape[d] end
    local ins, outs, shape = {}, {}, {}
    for d = 1, first do shape[d] = x.shape[d] end
    for i = 1, sd do
      ins[i] = x.shape[first + i]
      outs[i] = ins[i] * kernel[i]
      shape[first + i] = outs[i]
    end
    local map_size = 1
    for i = 1, sd do map_size = map_size * ins[i] end
    local px, flat = x:ptr(), {}
    for m = 0, maps - 1 do
      each_index(outs, function(op)
        local idx = {}
        for i = 1, sd do idx[i] = math.floor(op[i] / kernel[i]) end
        flat[#flat + 1] = px[m * map_size + offset(ins, idx)]
      end)
    end
    return NdArray.from_flat(flat, shape)
  end
end

local function gap_ref(x)
  local N, C = x.shape[1], x.shape[2]
  local inner = x.size / (N * C)
  local px, flat = x:ptr(), {}
  for m = 0, N * C - 1 do
    local s = 0
    for i = 0, inner - 1 do s = s + px[m * inner + i] end
    flat[#flat + 1] = s / inner
  end
  return NdArray.from_flat(flat, { N, C, 1, 1 })
end

describe('global_average_pooling', function()
  for _, shape in ipairs { { 2, 3, 4, 5 }, { 2, 3, 5 }, { 3, 2 }, { 1, 2, 2, 3, 2 } } do
    it('x ' .. nn.lib.shape_str(shape) .. ' -> (N, C, 1, 1)', function()
      T.check { fn = F.global_average_pooling, ref = gap_ref, inputs = { shape }, grad = { true } }
    end)
  end
  it('golden and bad input', function()
    local x = nn.Variable.from(NdArray.arange(8):reshape { 1, 2, 2, 2 })
    local y = F.global_average_pooling(x)
    y:forward()
    assert.same({ 2.5, 6.5 }, y.d:flat())
    local err = err_of(F.global_average_pooling, nn.Variable { 4 })
    assert.matches('F.global_average_pooling: x {4} must have 2 or more axes', err, 1, true)
  end)
end)

describe('sum_pooling', function()
  local cases = {
    { x = { 2, 2, 4, 4 }, o = { kernel = { 2, 2 } } },
    { x = { 1, 2, 5, 5 }, o = { kernel = { 3, 2 }, stride = { 2, 1 }, pad = { 1, 0 } } },
    { x = { 1, 2, 5, 4 }, o = { kernel = { 2, 3 }, ignore_border = false } },
    { x = { 1, 1, 5, 5 }, o = { kernel = { 2, 2 }, stride = { 2, 2 }, pad = { 1, 1 }, ignore_border = false } },
    { x = { 2, 3, 7 }, o = { kernel = { 3 }, stride = { 2 } } },
    { x = { 1, 2, 3, 4, 4 }, o = { kernel = { 2, 2, 2 } } },
    { x = { 4, 6 }, o = { kernel = { 2, 3 } } },
  }
  for _, c in ipairs(cases) do
    local o = c.o
    it(('x %s kernel %s'):format(nn.lib.shape_str(c.x), nn.lib.shape_str(o.kernel)), function()
      T.check {
        fn = function(x) return F.sum_pooling(x, o.kernel, o.stride, o.ignore_border, o.pad) end,
        ref = sum_pool_ref(o),
        inputs = { c.x },
        grad = { true },
      }
    end)
  end
  it('equals average_pooling times the kernel size (no padding)', function()
    local x = nn.Variable.from(NdArray.randn { 2, 3, 6, 6 })
    local s = F.sum_pooling(x, { 3, 2 })
    local a = F.average_pooling(x, { 3, 2 })
    s:forward(); a:forward()
    T.assert_close(s.d, a.d * 6, 1e-5, 1e-5, 'sum = 6 * average')
  end)
  it('rejects bad arguments', function()
    local V = nn.Variable
    local err = err_of(F.sum_pooling, V { 1, 1, 4, 4 })
    assert.matches("F.sum_pooling: argument 'kernel' is required", err, 1, true)
    err = err_of(F.sum_pooling, V { 1, 1, 2, 4 }, { 3, 3 })
    assert.matches('F.sum_pooling: kernel 3 is larger than the padded input 2', err, 1, true)
    err = err_of(F.sum_pooling, V { 1, 1, 4, 4 }, { 2, 2 }, { 2 })
    assert.matches('F.sum_pooling: stride has 1 entries but kernel has 2', err, 1, true)
    err = err_of(F.sum_pooling, V { 4 }, { 2, 2 })
    assert.matches('F.sum_pooling: kernel has 2 entries but x {4} has only 1 axes', err, 1, true)
  end)
end)

describe('unpooling', function()
  local cases = {
    { x = { 2, 2, 2, 3 }, k = { 2, 2 } },
    { x = { 1, 2, 3, 2 }, k = { 1, 3 } },
    { x = { 2, 3, 4 }, k = { 2 } },
    { x = { 1, 1, 2, 2, 2 }, k = { 2, 1, 2 } },
  }
  for _, c in ipairs(cases) do
    it(('x %s kernel %s'):format(nn.lib.shape_str(c.x), nn.lib.shape_str(c.k)), function()
      T.check {
        fn = function(x) return F.unpooling(x, c.k) end,
        ref = unpool_ref(c.k),
        inputs = { c.x },
        grad = { true },
      }
    end)
  end
  it('golden: {{1, 2}} with kernel {2, 2}', function()
    local x = nn.Variable.from(NdArray.from({ 1, 2 }, { 1, 1, 1, 2 }))
    local y = F.unpooling(x, { 2, 2 })
    y:forward()
    assert.same({ 1, 1, 2, 4 }, y.shape)
    assert.same({ 1, 1, 2, 2, 1, 1, 2, 2 }, y.d:flat())
  end)
  it('accepts a kernel as long as x with leading 1s (NNabla)', function()
    local x = nn.Variable.from(NdArray.randn { 1, 2, 2, 3 })
    local a, b = F.unpooling(x, { 1, 1, 2, 3 }), F.unpooling(x, { 2, 3 })
    a:forward(); b:forward()
    assert.same({ 1, 2, 4, 9 }, a.shape)
    T.assert_close(a.d, b.d, 0, 0, 'same as {2, 3}')
    local err = err_of(F.unpooling, nn.Variable { 1, 2, 2, 3 }, { 2, 1, 2, 3 })
    assert.matches('F.unpooling: kernel has 4 entries; unpooling over 1 to 3 axes (after leading 1s) is supported', err, 1, true)
  end)
  it('rejects bad arguments', function()
    local err = err_of(F.unpooling, nn.Variable { 1, 1, 2, 2 }, { 0, 2 })
    assert.matches('F.unpooling: kernel entry 1 is 0 (must be 1 or more)', err, 1, true)
    -- channel_last (positional): (N, H, W, C) in, (N, 2H, 2W, C) out (values: channel_last_spec)
    local y = F.unpooling(nn.Variable { 1, 1, 2, 3 }, { 2, 2 }, true)
    assert.are.same({ 1, 2, 4, 3 }, y.shape)
    err = err_of(F.unpooling, nn.Variable { 4 }, { 2 }, true)
    assert.matches('F.unpooling: channel_last = true: x {4} has no spatial axes', err, 1, true)
  end)
end)

-- scripts/fuzz_functions.lua regressions: huge kernels / pads (were signed overflows)
describe('sum_pooling and unpooling with huge sizes (fuzz)', function()
  local I = 2 ^ 31 - 1
  it('F.sum_pooling runs kernels of 2^31 - 1 over a huge pad, refuses a huge output', function()
    local x = nn.Variable({2, 3, 6, 6}, { need_grad = true })
    local y = F.sum_pooling(x, {I, I}, {I, I}, true, {I, I})
    y:forward()
    y:backward { grad = 1 }
    assert.same({2, 3, 2, 2}, y.shape)
    local ok, err = pcall(F.sum_pooling, x, {2, 2}, {1, 1}, true, {I, I})
    assert.is_false(ok)
    assert.matches('F.sum_pooling: y {2, 3, 4294967299, 4294967299} (x {2, 3, 6, 6} pooled with these kernel / stride / pad) has too many elements (at most 2^48)', err, 1, true)
  end)
  it('F.unpooling refuses a kernel that makes y too large', function()
    local ok, err = pcall(F.unpooling, nn.Variable({2, 3, 3, 3}), {I, I})
    assert.is_false(ok)
    assert.matches('F.unpooling: y {2, 3, 6442450941, 6442450941} has too many elements (at most 2^48) (inputs: x {2, 3, 3, 3})', err, 1, true)
  end)
end)
