-- sum and mean over axis sets (nil, one axis, lists, negatives, keepdims) through the
-- function tester, against a plain Lua reduction.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local NdArray = nn.NdArray

-- Reference: reduce x over the Lua axes in `axis` (nil = all).
local function reduce_ref(axis, keepdims, mean)
  return function(x)
    local s, nd = x.shape, x.ndim
    local red = {}
    if axis == nil then for d = 1, nd do red[d] = true end
    else
      for _, a in ipairs(type(axis) == 'table' and axis or { axis }) do red[a < 0 and nd + a + 1 or a] = true end
    end
    local oshape, count = {}, 1
    for d = 1, nd do
      if red[d] then count = count * s[d]; if keepdims then oshape[#oshape + 1] = 1 end
      else oshape[#oshape + 1] = s[d] end
    end
    -- output strides over the input axes (0 on reduced ones)
    local ostr, acc = {}, 1
    for d = nd, 1, -1 do
      if red[d] then ostr[d] = 0 else ostr[d] = acc; acc = acc * s[d] end
    end
    local out = {}
    for j = 1, acc do out[j] = 0 end
    local px = x:ptr()
    local idx = {}
    for d = 1, nd do idx[d] = 0 end
    for i = 0, x.size - 1 do
      local o = 0
      for d = 1, nd do o = o + idx[d] * ostr[d] end
      out[o + 1] = out[o + 1] + px[i]
      for d = nd, 1, -1 do
        idx[d] = idx[d] + 1
        if idx[d] < s[d] then break end
        idx[d] = 0
      end
    end
    if mean then for j = 1, acc do out[j] = out[j] / count end end
    return NdArray.from_flat(out, oshape)
  end
end

describe('sum and mean', function()
  local cases = {
    { shape = { 2, 3, 4 }, axis = nil },
    { shape = { 2, 3, 4 }, axis = 2 },
    { shape = { 2, 3, 4 }, axis = { 1, 3 } },
    { shape = { 2, 3, 4 }, axis = -1 },
    { shape = { 2, 3, 4 }, axis = 1 },
    { shape = { 2, 3, 4 }, axis = { 2, 3 } },
    { shape = { 2, 3, 4 }, axis = { -3, 2 } },
    { shape = { 2, 3, 4, 5 }, axis = { 1, 3 } },
    { shape = { 2, 1, 4, 5 }, axis = { 2, 4 } },
    { shape = { 6 }, axis = 1 },
    { shape = { 2, 3 }, axis = {} },
  }
  for _, name in ipairs { 'sum', 'mean' } do
    for _, c in ipairs(cases) do
      for _, keepdims in ipairs { false, true } do
        local ax = c.axis == nil and 'nil' or type(c.axis) == 'table' and nn.lib.shape_str(c.axis) or tostring(c.axis)
        it(('%s %s axis=%s keepdims=%s'):format(name, nn.lib.shape_str(c.shape), ax, tostring(keepdims)), function()
          T.check {
            fn = function(x) return F[name](x, c.axis, keepdims) end,
            ref = reduce_ref(c.axis, keepdims, name == 'mean'),
            inputs = { c.shape },
            grad = { true },
          }
        end)
      end
    end
  end

  it('sum over all axes without keepdims is 0-d; options by name equal positions', function()
    local x = nn.Variable.from { { 1, 2, 3 }, { 4, 5, 6 } }
    local y = F.sum(x)
    y:forward()
    assert.same({}, y.shape)
    assert.equal(21, y.d:item())
    local a, b = F.sum(x, { axis = 2, keepdims = true }), F.sum(x, 2, true)
    a:forward(); b:forward()
    assert.same({ 2, 1 }, a.shape)
    T.assert_close(a.d, b.d, 0, 0, 'named = positional')
    T.assert_close(a.d:flat(), { 6, 15 }, 0, 0, 'row sums')
    local m = F.mean(x, { axis = 1 })
    m:forward()
    assert.same({ 3 }, m.shape)
    T.assert_close(m.d, { 2.5, 3.5, 4.5 }, 1e-6, 0, 'column means')
  end)

  it('a trailing {} is an empty options table where no list can stand, an axis list where one can', function()
    local x = nn.Variable.from { { 3, 1, 2 }, { 0, 5, 4 } }
    local s = F.sort(x, {})
    s:forward()
    T.assert_close(s.d:flat(), { 1, 2, 3, 0, 4, 5 }, 0, 0, 'sort with {} = defaults (last axis)')
    local r = F.relu(x, {})
    r:forward()
    T.assert_close(r.d, x.d, 0, 0, 'relu with {}')
    local m = F.max(x, 1, {})   -- keepdims is a bool: {} after it is options
    m:forward()
    T.assert_close(m.d:flat(), { 3, 5, 4 }, 0, 0, 'max over axis 1')
    local y = F.sum(x, {})      -- axes: {} is the empty list, no reduction (as before)
    y:forward()
    assert.same({ 2, 3 }, y.shape)
    local ok, err = pcall(F.relu, x, {}, {})
    assert.is_false(ok)
    assert.matches('takes 0 argument', err, 1, true)
  end)

  it('mean backward spreads dy / count', function()
    local x = nn.Variable({ 2, 4 }, { need_grad = true })
    local y = F.mean(x)
    y:forward()
    x.grad:zero()
    y:backward()
    T.assert_close(x.g, NdArray.full({ 2, 4 }, 1 / 8), 1e-7, 0, 'grad')
  end)

  it('rejects duplicate and out-of-range axes', function()
    local x = nn.Variable { 2, 3 }
    local ok, err = pcall(F.sum, x, { 2, -1 })
    assert.is_false(ok)
    assert.matches("F.sum: argument 'axis' names axis 2 twice", err, 1, true)
    assert.matches('(inputs: x {2, 3})', err, 1, true)
    ok, err = pcall(F.mean, x, 3)
    assert.is_false(ok)
    assert.matches('F.mean: axis 3 is out of range for a 2-d input', err, 1, true)
    ok, err = pcall(F.sum, x, 0)
    assert.is_false(ok)
    assert.matches('F.sum: axis 0 is out of range', err, 1, true)
    ok, err = pcall(F.sum, x, { axis = 1, keepdim = true })
    assert.is_false(ok)
    assert.matches("unknown option 'keepdim'", err, 1, true)
  end)
end)
