-- Math functions through the function tester: forward against plain Lua references,
-- backward against finite differences (or the straight-through rule NNabla uses for sign,
-- round, ceil and floor), accumulation and overwrite.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local bmap = R.bmap

local function range(lo, hi, avoid)
  return function(_, s)
    return NdArray.rand(s, lo, hi):apply(function(a)
      if avoid and math.abs(a - avoid) < 0.05 then a = a < avoid and a - 0.1 or a + 0.1 end
      return a
    end)
  end
end

-- erf by its Maclaurin series (plenty for |x| <= 2 in double precision)
local function erf(x)
  local sum, term, n = 0, x, 0
  repeat
    local add = term / (2 * n + 1)
    sum = sum + add
    n = n + 1
    term = -term * x * x / n
  until math.abs(add) < 1e-17 and n > 5
  return 2 / math.sqrt(math.pi) * sum
end

local function round_half_away(x) return x >= 0 and math.floor(x + 0.5) or -math.floor(-x + 0.5) end

local unary = {
  abs = { math.abs, range(-2, 2, 0) },
  exp = { math.exp, range(-2, 2) },
  log = { math.log, range(0.5, 3) },
  sin = { math.sin, range(-3, 3) },
  cos = { math.cos, range(-3, 3) },
  tan = { math.tan, range(-1.2, 1.2) },
  asin = { math.asin, range(-0.9, 0.9) },
  acos = { math.acos, range(-0.9, 0.9) },
  atan = { math.atan, range(-3, 3) },
  sinh = { math.sinh, range(-2, 2) },
  cosh = { math.cosh, range(-2, 2) },
  erf = { erf, range(-2, 2) },
}

describe('element-wise math', function()
  for name, c in pairs(unary) do
    it(name, function()
      T.check { fn = F[name], ref = function(x) return T.map(c[1], x) end,
                inputs = { { 2, 3, 4 } }, init = c[2], grad = { true } }
    end)
  end
end)

-- Straight-through functions: forward against the reference, and dx = dy (accumulating;
-- overwritten, not read, through an intermediate whose gradient buffer holds NaN).
local function check_straight_through(fn, ref, values)
  T.check { fn = fn, ref = function(x) return T.map(ref, x) end, inputs = { values } }
  local dy = NdArray.randn(values.shape)
  T.check_given_gradient(fn, values, dy, dy,
    { atol = 0, rtol = 0, acc_atol = 1e-6, acc_rtol = 1e-6, what = 'straight-through gradient' })
end

describe('straight-through math (NNabla: dx = dy)', function()
  local halves = NdArray.from { { -2.5, -1.5, -0.5, 0, 0.5, 1.5 }, { 2.5, -0.7, 0.3, 1.2, -1.2, 3 } }
  it('sign with alpha for zero (default 1)', function()
    check_straight_through(F.sign, function(v) return v > 0 and 1 or v < 0 and -1 or 1 end, halves)
    check_straight_through(function(x) return F.sign(x, 0) end,
                           function(v) return v > 0 and 1 or v < 0 and -1 or 0 end, halves)
    check_straight_through(function(x) return F.sign(x, { alpha = -0.5 }) end,
                           function(v) return v > 0 and 1 or v < 0 and -1 or -0.5 end, halves)
  end)
  it('round (halves away from zero), ceil, floor', function()
    check_straight_through(F.round, round_half_away, halves)
    check_straight_through(F.ceil, math.ceil, halves)
    check_straight_through(F.floor, math.floor, halves)
  end)
end)

local function atan2(y, x)
  if x > 0 then return math.atan(y / x) end
  if x < 0 then return math.atan(y / x) + (y >= 0 and math.pi or -math.pi) end
  return y > 0 and math.pi / 2 or -math.pi / 2
end

describe('atan2', function()
  -- |x0| >= 0.3 keeps away from the branch cut (x0 = 0, x1 < 0) and the origin
  local init = function(_, s)
    return NdArray.rand(s, 0.3, 2) * (NdArray.rand(s, 0, 2):floor() * 2 - 1)
  end
  for _, shapes in ipairs { { {2, 3}, {2, 3} }, { {2, 3, 4}, {1, 3, 1} }, { {3, 4}, {4} } } do
    it(nn.lib.shape_str(shapes[1]) .. ' with ' .. nn.lib.shape_str(shapes[2]), function()
      T.check { fn = F.atan2, ref = function(a, b) return bmap(atan2, a, b) end,
                inputs = shapes, init = init, grad = { true, true } }
    end)
  end
  it('all four quadrants', function()
    local y = F.atan2(nn.Variable.from { 1, 1, -1, -1 }, nn.Variable.from { 1, -1, -1, 1 })
    y:forward()
    T.assert_close(y.d:flat(), { math.pi / 4, 3 * math.pi / 4, -3 * math.pi / 4, -math.pi / 4 }, 1e-6, 1e-6, 'atan2')
  end)
  it('rejects shapes that do not broadcast', function()
    local ok, err = pcall(F.atan2, nn.Variable { 2, 3 }, nn.Variable { 3, 2 })
    assert.is_false(ok)
    assert.matches('F.atan2: shapes {2, 3} and {3, 2} cannot be broadcast', err, 1, true)
  end)
end)

describe('add_n and mul_n', function()
  local grid = function(_, s) return NdArray.rand(s, 0, 8):floor() * 0.25 - 1 end
  local function sum3(a, b, c) return a + b + c end
  it('add_n of three inputs, as arguments and as a list', function()
    T.check { fn = F.add_n, ref = sum3, inputs = { { 2, 3 }, { 2, 3 }, { 2, 3 } }, grad = { true, true, true } }
    T.check { fn = function(a, b, c) return F.add_n { a, b, c } end, ref = sum3,
              inputs = { { 2, 3 }, { 2, 3 }, { 2, 3 } }, grad = { true, false, true } }
  end)
  it('add_n with one input and with the same variable twice', function()
    T.check { fn = F.add_n, ref = function(a) return a:copy() end, inputs = { { 4 } }, grad = { true } }
    T.check { fn = function(a, b) return F.add_n(a, b, a) end, ref = function(a, b) return a * 2 + b end,
              inputs = { { 2, 3 }, { 2, 3 } }, grad = { true, true } }
  end)
  it('mul_n of three inputs (zeros included) and with the same variable twice', function()
    T.check { fn = F.mul_n, ref = function(a, b, c) return a * b * c end,
              inputs = { { 2, 3 }, { 2, 3 }, { 2, 3 } }, init = grid, grad = { true, true, true } }
    T.check { fn = function(a, b) return F.mul_n(a, b, a) end, ref = function(a, b) return a * b * a end,
              inputs = { { 3, 2 }, { 3, 2 } }, grad = { true, true } }
    T.check { fn = function(a, b) return F.mul_n { a, b } end, ref = function(a, b) return a * b end,
              inputs = { { 5 }, { 5 } }, grad = { false, true } }
  end)
  it('reject inputs of different shapes and no inputs', function()
    local ok, err = pcall(F.add_n, nn.Variable { 2, 3 }, nn.Variable { 2, 3 }, nn.Variable { 3, 2 })
    assert.is_false(ok)
    assert.matches('F.add_n: input 3 has shape {3, 2} but input 1 has {2, 3}', err, 1, true)
    ok, err = pcall(F.mul_n, nn.Variable { 2 }, nn.Variable { 1 })
    assert.is_false(ok)
    assert.matches('F.mul_n: input 2 has shape {1} but input 1 has {2}', err, 1, true)
    ok, err = pcall(F.add_n)
    assert.is_false(ok)
    assert.matches('F.add_n: expects at least 1 input variables, got 0', err, 1, true)
  end)
end)
