-- Arithmetic functions (and the Lua operators that map to them) through the function tester.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local bmap = R.bmap

-- Values on a 0.25 grid, the second input shifted by 0.125: no ties, no zero divisors.
local function grid(i, s)
  local r = NdArray.rand(s, 0, 6):floor() * 0.25 + 0.5
  return i == 1 and r or r + 0.125
end

local binary = {
  add2 = function(a, b) return a + b end,
  sub2 = function(a, b) return a - b end,
  mul2 = function(a, b) return a * b end,
  div2 = function(a, b) return a / b end,
  maximum2 = function(a, b) return math.max(a, b) end,
  minimum2 = function(a, b) return math.min(a, b) end,
}

describe('binary arithmetic', function()
  for name, op in pairs(binary) do
    for _, shapes in ipairs { { {2, 3}, {2, 3} }, { {2, 3, 4}, {1, 3, 1} }, { {4, 1}, {1, 5} }, { {3, 4}, {4} } } do
      it(name .. ' ' .. nn.lib.shape_str(shapes[1]) .. ' with ' .. nn.lib.shape_str(shapes[2]), function()
        T.check {
          fn = F[name],
          ref = function(a, b) return bmap(op, a, b) end,
          inputs = shapes,
          init = grid,
          grad = { true, true },
        }
      end)
    end
  end
  it('pow2 on positive bases', function()
    T.check { fn = F.pow2, ref = function(a, b) return bmap(function(x, y) return x ^ y end, a, b) end,
              inputs = { {2, 3}, {2, 3} }, init = function(_, s) return NdArray.rand(s, 0.5, 2) end,
              grad = { true, true } }
  end)
  it('x * x (the same variable twice) sums both gradients', function()
    T.check { fn = function(x) return F.mul2(x, x) end, ref = function(x) return x * x end,
              inputs = { {3, 2} }, grad = { true } }
  end)
end)

local scalar = {
  add_scalar = function(x, v) return x + v end,
  mul_scalar = function(x, v) return x * v end,
  r_sub_scalar = function(x, v) return v - x end,
  r_div_scalar = function(x, v) return v / x end,
  pow_scalar = function(x, v) return x ^ v end,
  r_pow_scalar = function(x, v) return v ^ x end,
  maximum_scalar = function(x, v) return math.max(x, v) end,
  minimum_scalar = function(x, v) return math.min(x, v) end,
}

describe('scalar arithmetic', function()
  for name, op in pairs(scalar) do
    for _, val in ipairs { 2, 1.3 } do
      it(name .. ' val=' .. val, function()
        T.check {
          fn = function(x) return F[name](x, val) end,
          ref = function(x) return T.map(function(a) return op(a, val) end, x) end,
          inputs = { {2, 5} },
          -- values away from the kink at val (maximum/minimum_scalar)
          init = function(_, s)
            return NdArray.rand(s, 0.6, 2.6):apply(function(a) return math.abs(a - val) < 0.05 and a + 0.1 or a end)
          end,
          grad = { true },
        }
      end)
    end
  end
end)

describe('operators on variables', function()
  it('map to the arithmetic functions with numbers on either side', function()
    local x = nn.Variable.from({ { 1, 2 }, { 3, 4 } }, { need_grad = true })
    local y = nn.Variable.from({ { 2, 2 }, { 2, 2 } })
    local cases = {
      { x + y, { 3, 4, 5, 6 } }, { x - y, { -1, 0, 1, 2 } }, { x * y, { 2, 4, 6, 8 } },
      { x / y, { 0.5, 1, 1.5, 2 } }, { x ^ y, { 1, 4, 9, 16 } }, { x + 1, { 2, 3, 4, 5 } },
      { 1 + x, { 2, 3, 4, 5 } }, { x - 1, { 0, 1, 2, 3 } }, { 10 - x, { 9, 8, 7, 6 } },
      { x * 3, { 3, 6, 9, 12 } }, { 3 * x, { 3, 6, 9, 12 } }, { x / 2, { 0.5, 1, 1.5, 2 } },
      { 12 / x, { 12, 6, 4, 3 } }, { x ^ 2, { 1, 4, 9, 16 } }, { 2 ^ x, { 2, 4, 8, 16 } },
      { -x, { -1, -2, -3, -4 } },
    }
    local parents = { 'add2', 'sub2', 'mul2', 'div2', 'pow2', 'add_scalar', 'add_scalar', 'add_scalar',
                      'r_sub_scalar', 'mul_scalar', 'mul_scalar', 'mul_scalar', 'r_div_scalar',
                      'pow_scalar', 'r_pow_scalar', 'mul_scalar' }
    for k, c in ipairs(cases) do
      c[1]:forward()
      T.assert_close(c[1].d:flat(), c[2], 1e-6, 1e-6, 'case ' .. k)
      assert.equal(parents[k], c[1].parent.name)
    end
  end)
  it('rejects shapes that do not broadcast, naming both', function()
    local a, b = nn.Variable({ 2, 3 }), nn.Variable({ 3, 2 })
    local ok, err = pcall(function() return a + b end)
    assert.is_false(ok)
    assert.matches('F.add2: shapes {2, 3} and {3, 2} cannot be broadcast', err, 1, true)
  end)
  it('rejects mistyped and unknown options', function()
    local x = nn.Variable({ 2 })
    local ok, err = pcall(F.add_scalar, x, { vall = 2 })
    assert.is_false(ok)
    assert.matches("unknown option 'vall'", err, 1, true)
    ok, err = pcall(F.add_scalar, x, 'two')
    assert.is_false(ok)
    assert.matches("argument 'val' must be a number", err, 1, true)
    ok, err = pcall(F.add_scalar, x, 1, 2)
    assert.is_false(ok)
    assert.matches('takes 1 argument', err, 1, true)
    ok, err = pcall(F.add2, x, 3)
    assert.is_false(ok)
    assert.matches("input 'x1' must be a Variable", err, 1, true)
  end)
  it('argument and input errors point at the calling line, not its caller', function()
    local x = nn.Variable({ 2 })
    local here = debug.getinfo(1, 'S').short_src
    local function line_of(fn)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      return err
    end
    local l1, e1 = debug.getinfo(1, 'l').currentline + 1, line_of(function()
      local y = F.add_scalar(x, 'two'); return y end)
    assert.matches(here .. ':' .. l1 .. ": F.add_scalar: argument 'val' must be a number", e1, 1, true)
    local l2, e2 = debug.getinfo(1, 'l').currentline + 1, line_of(function()
      local y = F.sum(x, 1.5); return y end)
    assert.matches(here .. ':' .. l2 .. ": F.sum: argument 'axis' entry 1 must be an integer", e2, 1, true)
    local l3, e3 = debug.getinfo(1, 'l').currentline + 1, line_of(function()
      local y = F.concatenate({ x, 3 }, 1); return y end)
    -- variadic inputs are named as in the shape list: x, x1, x2, ...
    assert.matches(here .. ':' .. l3 .. ": F.concatenate: input 'x1' must be a Variable", e3, 1, true)
  end)
end)
