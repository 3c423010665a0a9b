-- Comparisons and logical functions (0/1 outputs, zero gradient), reset_nan/reset_inf and
-- where through the function tester.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local bmap = R.bmap

local function b2f(c) return c and 1 or 0 end
local function truthy(v) return v ~= 0 end

-- Small integers: plenty of ties and zeros (for the forward check).
local ints = function(_, s) return NdArray.rand(s, -1, 2):floor() end
-- Distinct values 0.25 apart, the second input shifted by 0.125: no ties within 0.1, so
-- finite differences of the 0/1 outputs are zero and the zero gradient is checked.
local spread = function(i, s)
  local r = NdArray.rand(s, 0, 8):floor() * 0.25 - 1
  return i == 1 and r or r + 0.125
end

local binary = {
  equal = function(a, b) return b2f(a == b) end,
  not_equal = function(a, b) return b2f(a ~= b) end,
  greater = function(a, b) return b2f(a > b) end,
  greater_equal = function(a, b) return b2f(a >= b) end,
  less = function(a, b) return b2f(a < b) end,
  less_equal = function(a, b) return b2f(a <= b) end,
  logical_and = function(a, b) return b2f(truthy(a) and truthy(b)) end,
  logical_or = function(a, b) return b2f(truthy(a) or truthy(b)) end,
  logical_xor = function(a, b) return b2f(truthy(a) ~= truthy(b)) end,
}

describe('binary comparisons and logic', function()
  for name, op in pairs(binary) do
    for _, shapes in ipairs { { {2, 3}, {2, 3} }, { {2, 3, 4}, {1, 3, 1} }, { {3, 4}, {4} } } do
      it(name .. ' ' .. nn.lib.shape_str(shapes[1]) .. ' with ' .. nn.lib.shape_str(shapes[2]), function()
        T.check { fn = F[name], ref = function(a, b) return bmap(op, a, b) end, inputs = shapes, init = ints }
        -- zero gradient (written, accumulated and overwritten) away from ties
        T.check { fn = F[name], ref = function(a, b) return bmap(op, a, b) end, inputs = shapes, init = spread,
                  grad = { true, true } }
      end)
    end
  end
  it('the same variable on both sides', function()
    T.check { fn = function(x) return F.greater_equal(x, x) end, ref = function(x) return x * 0 + 1 end,
              inputs = { { 2, 3 } }, grad = { true } }
  end)
  it('reject shapes that do not broadcast', function()
    local ok, err = pcall(F.less, nn.Variable { 2, 3 }, nn.Variable { 4 })
    assert.is_false(ok)
    assert.matches('F.less: shapes {2, 3} and {4} cannot be broadcast', err, 1, true)
    assert.matches('(inputs: x0 {2, 3}, x1 {4})', err, 1, true)
  end)
end)

local scalar = {
  equal_scalar = function(x, v) return b2f(x == v) end,
  not_equal_scalar = function(x, v) return b2f(x ~= v) end,
  greater_scalar = function(x, v) return b2f(x > v) end,
  greater_equal_scalar = function(x, v) return b2f(x >= v) end,
  less_scalar = function(x, v) return b2f(x < v) end,
  less_equal_scalar = function(x, v) return b2f(x <= v) end,
}

describe('scalar comparisons', function()
  for name, op in pairs(scalar) do
    it(name .. ' (val defaults to 1)', function()
      T.check { fn = F[name], ref = function(x) return T.map(function(a) return op(a, 1) end, x) end,
                inputs = { { 3, 4 } }, init = ints }
      T.check { fn = function(x) return F[name](x, 0) end,
                ref = function(x) return T.map(function(a) return op(a, 0) end, x) end,
                inputs = { { 3, 4 } }, init = ints }
      T.check { fn = function(x) return F[name](x, { val = 0.375 }) end,
                ref = function(x) return T.map(function(a) return op(a, 0.375) end, x) end,
                inputs = { { 3, 4 } }, init = spread, grad = { true } }
    end)
  end
end)

describe('logical scalar and unary functions', function()
  local lops = {
    logical_and_scalar = function(a, v) return truthy(a) and v end,
    logical_or_scalar = function(a, v) return truthy(a) or v end,
    logical_xor_scalar = function(a, v) return truthy(a) ~= v end,
  }
  for name, op in pairs(lops) do
    it(name .. ' with true and false', function()
      for _, v in ipairs { true, false } do
        T.check { fn = function(x) return F[name](x, v) end,
                  ref = function(x) return T.map(function(a) return b2f(op(a, v)) end, x) end,
                  inputs = { { 3, 4 } }, init = ints }
        T.check { fn = function(x) return F[name](x, { val = v }) end,
                  ref = function(x) return T.map(function(a) return b2f(op(a, v)) end, x) end,
                  inputs = { { 2, 2 } }, init = spread, grad = { true } }
      end
    end)
  end
  it('logical_and_scalar needs val, and a boolean', function()
    local ok, err = pcall(F.logical_and_scalar, nn.Variable { 2 })
    assert.is_false(ok)
    assert.matches("F.logical_and_scalar: argument 'val' (true or false) is required", err, 1, true)
    ok, err = pcall(F.logical_or_scalar, nn.Variable { 2 }, 1)
    assert.is_false(ok)
    assert.matches("F.logical_or_scalar: argument 'val' must be true or false", err, 1, true)
  end)
  it('logical_not', function()
    T.check { fn = F.logical_not, ref = function(x) return T.map(function(a) return b2f(a == 0) end, x) end,
              inputs = { { 3, 4 } }, init = ints }
    T.check { fn = F.logical_not, ref = function(x) return T.map(function(a) return b2f(a == 0) end, x) end,
              inputs = { { 3, 4 } }, init = spread, grad = { true } }
  end)
  local special = NdArray.from { { 0 / 0, math.huge, -math.huge }, { 1.5, 0, -2 } }
  it('isnan and isinf', function()
    T.check { fn = F.isnan, ref = function() return { { 1, 0, 0 }, { 0, 0, 0 } } end, inputs = { special }, grad = { true } }
    T.check { fn = F.isinf, ref = function() return { { 0, 1, 1 }, { 0, 0, 0 } } end, inputs = { special }, grad = { true } }
  end)
  it('reset_nan and reset_inf (no gradient to the replaced elements)', function()
    -- (the tester compares finite numbers: each case keeps its outputs finite)
    local nans = NdArray.from { { 0 / 0, 1, 0 / 0 }, { 1.5, 0, -2 } }
    local infs = NdArray.from { { math.huge, 1, -math.huge }, { 1.5, 0, -2 } }
    T.check { fn = F.reset_nan, ref = function() return { { 0, 1, 0 }, { 1.5, 0, -2 } } end, inputs = { nans },
              grad = { true } }
    T.check { fn = function(x) return F.reset_nan(x, -7) end, ref = function() return { { -7, 1, -7 }, { 1.5, 0, -2 } } end,
              inputs = { nans }, grad = { true } }
    T.check { fn = F.reset_inf, ref = function() return { { 0, 1, 0 }, { 1.5, 0, -2 } } end, inputs = { infs },
              grad = { true } }
    T.check { fn = function(x) return F.reset_inf(F.reset_nan(x), { val = 9 }) end,
              ref = function() return { { 0, 9, 9 }, { 1.5, 0, -2 } } end, inputs = { special }, grad = { true } }
    local x = nn.Variable.from(special, { need_grad = true })
    local y = F.reset_nan(x)
    y:forward()
    x.grad:zero()
    y:backward { grad = NdArray.ones { 2, 3 } }
    T.assert_close(x.g:flat(), { 0, 1, 1, 1, 1, 1 }, 0, 0, 'reset_nan gradient')
  end)
end)

-- where reference: condition's values spread over x's trailing dimensions.
local function where_ref(c, t, e)
  local y = t:copy()
  local inner = t.size / c.size
  local pc, pt, pe, py = c:ptr(), t:ptr(), e:ptr(), y:ptr()
  for j = 0, t.size - 1 do
    py[j] = pc[math.floor(j / inner)] ~= 0 and pt[j] or pe[j]
  end
  return y
end

describe('where', function()
  local init = function(i, s) return i == 1 and NdArray.rand(s, 0, 2):floor() or NdArray.randn(s) end
  it('condition of the same shape as x_true and x_false', function()
    T.check { fn = F.where, ref = where_ref, inputs = { { 3, 4 }, { 3, 4 }, { 3, 4 } }, init = init,
              grad = { false, true, true } }
  end)
  it('condition over the leading dimensions', function()
    T.check { fn = F.where, ref = where_ref, inputs = { { 2, 3 }, { 2, 3, 4 }, { 2, 3, 4 } }, init = init,
              grad = { false, true, true } }
    T.check { fn = F.where, ref = where_ref, inputs = { { 2 }, { 2, 3 }, { 2, 3 } }, init = init,
              grad = { false, true, false } }
  end)
  it('from a comparison: where(greater_scalar(x, 0), x, 0.1 * x) is leaky_relu', function()
    T.check { fn = function(x) return F.where(F.greater_scalar(x, 0), x, F.mul_scalar(x, 0.1)) end,
              ref = function(x) return T.map(function(a) return a > 0 and a or 0.1 * a end, x) end,
              inputs = { { 3, 4 } },
              init = function(_, s) return NdArray.rand(s, 0.1, 2) * (NdArray.rand(s, 0, 2):floor() * 2 - 1) end,
              grad = { true } }
  end)
  it('the same variable as x_true and x_false, and as condition', function()
    T.check { fn = function(c, x) return F.where(c, x, x) end, ref = function(_, x) return x:copy() end,
              inputs = { { 2, 3 }, { 2, 3 } }, init = init, grad = { false, true } }
    T.check { fn = function(x, e) return F.where(x, x, e) end, ref = function(x, e) return where_ref(x, x, e) end,
              inputs = { { 2, 3 }, { 2, 3 } }, init = function(i, s) return NdArray.rand(s, 0.5, 2) * (i == 1 and 1 or -1) end,
              grad = { true, true } }
  end)
  it('gives condition a zero gradient', function()
    local c = nn.Variable.from({ 1, 0, 2 }, { need_grad = true })
    local t = nn.Variable.from({ 1, 2, 3 }, { need_grad = true })
    local e = nn.Variable.from { 4, 5, 6 }
    local y = F.where(c, t, e)
    y:forward()
    T.assert_close(y.d:flat(), { 1, 5, 3 }, 0, 0, 'where')
    c.g = NdArray.full({ 3 }, 0 / 0)
    local mid = F.identity(c)
    local y2 = F.where(mid, t, e)
    y2:forward()
    c.grad:zero(); t.grad:zero()
    y2:backward { grad = NdArray.ones { 3 } }
    T.assert_close(c.g:flat(), { 0, 0, 0 }, 0, 0, 'condition gradient')
    T.assert_close(t.g:flat(), { 1, 0, 1 }, 0, 0, 'x_true gradient')
  end)
  it('rejects mismatched shapes, naming them', function()
    local ok, err = pcall(F.where, nn.Variable { 2, 3 }, nn.Variable { 2, 3 }, nn.Variable { 3, 2 })
    assert.is_false(ok)
    assert.matches('F.where: x_true {2, 3} and x_false {3, 2} must have the same shape', err, 1, true)
    ok, err = pcall(F.where, nn.Variable { 3 }, nn.Variable { 2, 3 }, nn.Variable { 2, 3 })
    assert.is_false(ok)
    assert.matches('F.where: condition {3} must match the leading dimensions of x_true {2, 3} and x_false {2, 3}',
                   err, 1, true)
    assert.matches('(inputs: condition {3}, x_true {2, 3}, x_false {2, 3})', err, 1, true)
    ok, err = pcall(F.where, nn.Variable { 2, 3, 4 }, nn.Variable { 2, 3 }, nn.Variable { 2, 3 })
    assert.is_false(ok)
    assert.matches('F.where: condition {2, 3, 4} must match', err, 1, true)
  end)
end)
