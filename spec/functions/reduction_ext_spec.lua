-- max, min (with_index, only_index), prod, norm, cumsum and cumprod through the function
-- tester, against plain Lua references.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray

-- Groups of x's values per output element (row-major over the reduced axes) and the
-- output shape, for the Lua axes in `axis` (nil = all).
local function groups(x, axis, keepdims)
  local s, nd = x.shape, x.ndim
  local red = {}
  if axis == nil then for d = 1, nd do red[d] = true end
  else
    for _, a in ipairs(type(axis) == 'table' and axis or { axis }) do red[R.axis(a, nd)] = true end
  end
  local oshape, ostr, acc = {}, {}, 1
  for d = 1, nd do
    if not red[d] then oshape[#oshape + 1] = s[d] elseif keepdims then oshape[#oshape + 1] = 1 end
  end
  for d = nd, 1, -1 do
    if red[d] then ostr[d] = 0 else ostr[d] = acc; acc = acc * s[d] end
  end
  local gs = {}
  for j = 1, acc do gs[j] = {} end
  local px = x:ptr()
  for i = 0, x.size - 1 do
    local idx = R.unravel(i, s)
    local o = 0
    for d = 1, nd do o = o + (idx[d] - 1) * ostr[d] end
    local g = gs[o + 1]
    g[#g + 1] = px[i]
  end
  return gs, oshape
end

local function reduce_ref(axis, keepdims, fn)
  return function(x)
    local gs, oshape = groups(x, axis, keepdims)
    local out = {}
    for j, g in ipairs(gs) do out[j] = fn(g) end
    return NdArray.from_flat(out, oshape)
  end
end

local function arg_ext(g, is_min)
  local best, at = g[1], 1
  for r = 2, #g do
    if (is_min and g[r] < best) or (not is_min and g[r] > best) then best, at = g[r], r end
  end
  return best, at
end

local function axis_str(a)
  if a == nil then return 'nil' end
  return type(a) == 'table' and nn.lib.shape_str(a) or tostring(a)
end

local cases = {
  { shape = { 2, 3, 4 }, axis = nil },
  { shape = { 2, 3, 4 }, axis = 2 },
  { shape = { 2, 3, 4 }, axis = -1 },
  { shape = { 2, 3, 4 }, axis = { 1, 3 } },
  { shape = { 3, 4 }, axis = { -2 } },
  { shape = { 5 }, axis = 1 },
}

describe('max and min', function()
  for _, name in ipairs { 'max', 'min' } do
    local is_min = name == 'min'
    for _, c in ipairs(cases) do
      for _, keepdims in ipairs { false, true } do
        it(('%s %s axis=%s keepdims=%s'):format(name, nn.lib.shape_str(c.shape), axis_str(c.axis), tostring(keepdims)), function()
          T.check {
            fn = function(x) return F[name](x, c.axis, keepdims) end,
            ref = reduce_ref(c.axis, keepdims, function(g) return (arg_ext(g, is_min)) end),
            inputs = { c.shape }, init = function(_, shape) return R.distinct(shape, 3) end,
            grad = { true },
          }
        end)
      end
      it(('%s %s axis=%s with_index gives values and 1-based indices'):format(name, nn.lib.shape_str(c.shape), axis_str(c.axis)), function()
        T.check {
          fn = function(x) return F[name](x, { axis = c.axis, with_index = true }) end,
          ref = function(x)
            return { reduce_ref(c.axis, false, function(g) return (arg_ext(g, is_min)) end)(x),
                     reduce_ref(c.axis, false, function(g) local _, at = arg_ext(g, is_min) return at end)(x) }
          end,
          inputs = { c.shape }, init = function(_, shape) return R.distinct(shape, 5) end,
          grad = { true },
        }
        T.check {
          fn = function(x) return F[name](x, c.axis, true, false, true) end,
          ref = reduce_ref(c.axis, true, function(g) local _, at = arg_ext(g, is_min) return at end),
          inputs = { c.shape }, init = function(_, shape) return R.distinct(shape, 9) end,
          grad = { true },
        }
      end)
    end
  end

  it('index outputs follow the Lua convention and ties go to the first', function()
    local x = nn.Variable.from { { 3, 7, 7, 1 }, { 5, 2, 9, 9 } }
    local v, i = F.max(x, { axis = 2, with_index = true })
    v:forward()
    T.assert_close(v.d, { 7, 9 }, 0, 0, 'values')
    T.assert_close(i.d, { 2, 3 }, 0, 0, 'indices')
    local j = F.min(x, { only_index = true })
    j:forward()
    assert.same({}, j.shape)
    assert.equal(4, j.d:item())
  end)

  it('rejects empty reductions and bad axes, naming F.max', function()
    local ok, err = pcall(F.max, nn.Variable { 2, 0 }, 2)
    assert.is_false(ok)
    assert.matches('F.max: cannot take the max over axes of size 0 (input shape {2, 0})', err, 1, true)
    ok, err = pcall(F.min, nn.Variable { 2, 3 }, 3)
    assert.is_false(ok)
    assert.matches('F.min: axis 3 is out of range for a 2-d input', err, 1, true)
    assert.matches('(inputs: x {2, 3})', err, 1, true)
    ok, err = pcall(F.max, nn.Variable { 2, 3 }, { 1, -2 })
    assert.is_false(ok)
    assert.matches("argument 'axis' names axis 1 twice", err, 1, true)
  end)
end)

describe('prod', function()
  for _, c in ipairs(cases) do
    for _, keepdims in ipairs { false, true } do
      it(('%s axis=%s keepdims=%s'):format(nn.lib.shape_str(c.shape), axis_str(c.axis), tostring(keepdims)), function()
        T.check {
          fn = function(x) return F.prod(x, c.axis, keepdims) end,
          ref = reduce_ref(c.axis, keepdims, function(g) local p = 1 for _, v in ipairs(g) do p = p * v end return p end),
          inputs = { c.shape },
          init = function(_, shape) return NdArray.rand(shape, 0.5, 1.5) end,
          grad = { true }, grad_rtol = 3e-2,
        }
      end)
    end
  end

  it('gradients are exact where x has zeros', function()
    T.check {
      fn = function(x) return F.prod(x, 2) end,
      ref = function() return { 0, 0, 24 } end,
      inputs = { NdArray.from { { 1, 0, 3 }, { 0, 0, 2 }, { 1, 4, 6 } } },
      grad = { true },
    }
    local x = nn.Variable.from({ { 1, 0, 3 } }, { need_grad = true })
    local y = F.prod(x, 2)
    y:forward()
    x.grad:zero()
    y:backward()
    T.assert_close(x.g, { { 0, 3, 0 } }, 0, 0, 'd prod / dx')
  end)
end)

describe('norm', function()
  local ncases = {
    { shape = { 2, 3, 4 }, axis = nil, p = 2 },
    { shape = { 2, 3, 4 }, axis = 2, p = 2 },
    { shape = { 2, 3, 4 }, axis = { 1, 3 }, p = 1 },
    { shape = { 3, 4 }, axis = -1, p = 3 },
    { shape = { 3, 4 }, axis = 1, p = 1.5 },
  }
  for _, c in ipairs(ncases) do
    for _, keepdims in ipairs { false, true } do
      it(('%s p=%g axis=%s keepdims=%s'):format(nn.lib.shape_str(c.shape), c.p, axis_str(c.axis), tostring(keepdims)), function()
        T.check {
          fn = function(x) return F.norm(x, c.p, c.axis, keepdims) end,
          ref = reduce_ref(c.axis, keepdims, function(g)
            local s = 0
            for _, v in ipairs(g) do s = s + math.abs(v) ^ c.p end
            return s ^ (1 / c.p)
          end),
          inputs = { c.shape },
          -- keep |x| away from 0, where |x| is not differentiable
          init = function(_, shape) return T.map(function(v) return v < 0 and v - 0.2 or v + 0.2 end, NdArray.randn(shape)) end,
          grad = { true },
        }
      end)
    end
  end

  it('defaults to the 2-norm of everything and rejects p < 1', function()
    local x = nn.Variable.from { 3, -4 }
    local y = F.norm(x)
    y:forward()
    assert.equal(5, y.d:item())
    local ok, err = pcall(F.norm, x, 0.5)
    assert.is_false(ok)
    assert.matches("F.norm: argument 'p' is 0.5; the order of the norm must be a finite number >= 1", err, 1, true)
  end)
end)

describe('cumsum and cumprod', function()
  local function cum_ref(axis, exclusive, reverse, prod)
    return function(x)
      local s, nd = x.shape, x.ndim
      local a = R.axis(axis, nd)
      return R.build(s, function(idx)
        local acc = prod and 1 or 0
        local n = s[a]
        local j = {}
        for d = 1, nd do j[d] = idx[d] end
        for k = 1, n do
          local incl
          if reverse then incl = exclusive and k > idx[a] or (not exclusive and k >= idx[a])
          else incl = exclusive and k < idx[a] or (not exclusive and k <= idx[a]) end
          if incl then
            j[a] = k
            local v = R.at(x, j)
            if prod then acc = acc * v else acc = acc + v end
          end
        end
        return acc
      end)
    end
  end

  for _, name in ipairs { 'cumsum', 'cumprod' } do
    for _, c in ipairs { { { 2, 3, 4 }, 1 }, { { 2, 3, 4 }, 2 }, { { 2, 3, 4 }, -1 }, { { 5 }, 1 } } do
      for _, exclusive in ipairs { false, true } do
        for _, reverse in ipairs { false, true } do
          it(('%s %s axis=%d exclusive=%s reverse=%s'):format(name, nn.lib.shape_str(c[1]), c[2], tostring(exclusive), tostring(reverse)), function()
            T.check {
              fn = function(x) return F[name](x, c[2], exclusive, reverse) end,
              ref = cum_ref(c[2], exclusive, reverse, name == 'cumprod'),
              inputs = { c[1] },
              init = name == 'cumprod' and function(_, shape) return NdArray.rand(shape, 0.5, 1.5) end or nil,
              grad = { true },
            }
          end)
        end
      end
    end
  end

  it('defaults to axis 1, and cumprod gradients are exact at zeros', function()
    local x = nn.Variable.from { { 1, 2 }, { 3, 4 } }
    local y = F.cumsum(x)
    y:forward()
    T.assert_close(y.d, { { 1, 2 }, { 4, 6 } }, 0, 0, 'cumsum along axis 1')
    for _, exclusive in ipairs { false, true } do
      for _, reverse in ipairs { false, true } do
        T.check {
          fn = function(v) return F.cumprod(v, { axis = 2, exclusive = exclusive, reverse = reverse }) end,
          inputs = { NdArray.from { { 2, 0, 3, 0.5 }, { 0, 1.5, 2, 0 } } },
          grad = { true },
        }
      end
    end
  end)

  it('names the axis when it is out of range', function()
    local ok, err = pcall(F.cumsum, nn.Variable { 2, 3 }, 0)
    assert.is_false(ok)
    assert.matches('F.cumsum: axis 0 is out of range for a 2-d input', err, 1, true)
  end)
end)
