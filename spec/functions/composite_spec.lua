-- Composite functions (F.clip_by_value, F.clip_by_norm: NNabla's Python-level functions,
-- Lua code over registered ones here) through the function tester: forward against plain
-- Lua references, backward against finite differences, accumulation and overwrite; and
-- their argument errors.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray

-- values away from the clip bounds (finite differences must not straddle a kink)
local function away(lo, hi)
  return function(_, s)
    return NdArray.randn(s, 0, 2):apply(function(a)
      for _, b in ipairs { lo, hi } do
        if math.abs(a - b) < 0.1 then a = a < b and a - 0.2 or a + 0.2 end
      end
      return a
    end)
  end
end

describe('F.clip_by_value', function()
  it('clips to number bounds: forward, gradient 1 inside and 0 outside', function()
    T.check { fn = function(x) return F.clip_by_value(x, -1, 1.5) end,
              ref = function(x) return T.map(function(a) return math.min(math.max(a, -1), 1.5) end, x) end,
              inputs = { { 3, 4 } }, init = away(-1, 1.5), grad = { true } }
  end)

  it('clips to Variable bounds broadcast against x, with their gradients', function()
    local lo = NdArray.from({ { -1 }, { 0 }, { 0.5 } })
    local hi = NdArray.from({ { 1, 2, 3, 4 } })
    T.check { fn = function(x, a, b) return F.clip_by_value(x, a, b) end,
              ref = function(x, a, b)
                return R.build({ 3, 4 }, function(idx)
                  local i, j = idx[1], idx[2]
                  return math.min(math.max(R.at(x, { i, j }), R.at(a, { i, 1 })), R.at(b, { 1, j }))
                end)
              end,
              inputs = { { 3, 4 }, lo, hi }, init = away(0, 1), grad = { true, true, true } }
  end)

  it('takes an NdArray bound and names bad arguments', function()
    local x = nn.Variable.from({ -3, 0.25, 3 })
    local y = F.clip_by_value(x, NdArray.from({ -1, -1, -1 }), 2)
    y:forward()
    assert.same({ -1, 0.25, 2 }, y.d:flat())
    local function fails(f, msg)
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches(msg, err, 1, true)
    end
    fails(function() F.clip_by_value(x, 'a', 1) end, 'F.clip_by_value: min must be a number, a Variable or an NdArray, got string')
    fails(function() F.clip_by_value(x, 0, 0 / 0) end, 'F.clip_by_value: max is NaN')
    fails(function() F.clip_by_value({ 1 }, 0, 1) end, 'F.clip_by_value: x must be a Variable, got table')
    assert.equal('F.clip_by_value(x, min, max)', (F.signature('clip_by_value')))
  end)
end)

describe('F.clip_by_norm', function()
  -- x * c / max(||x|| over the axes, c)
  local function ref(c, axes)
    return function(x)
      local shape = x.shape
      local nd = #shape
      local on = {}
      if axes then
        for _, a in ipairs(axes) do on[R.axis(a, nd)] = true end
      else
        for k = 1, nd do on[k] = true end
      end
      local sums = {}
      local function key(idx)
        local t = {}
        for k = 1, nd do t[k] = on[k] and 1 or idx[k] end
        return table.concat(t, ',')
      end
      for i = 0, R.size(shape) - 1 do
        local idx = R.unravel(i, shape)
        local k = key(idx)
        sums[k] = (sums[k] or 0) + R.at(x, idx) ^ 2
      end
      return R.build(shape, function(idx)
        local n = math.sqrt(sums[key(idx)])
        return R.at(x, idx) * c / math.max(n, c)
      end)
    end
  end

  it('scales the whole tensor down to the norm when larger, and leaves it when smaller', function()
    T.check { fn = function(x) return F.clip_by_norm(x, 2) end, ref = ref(2),
              inputs = { { 3, 4 } }, grad = { true } }
    T.check { fn = function(x) return F.clip_by_norm(x, 100) end, ref = ref(100),
              inputs = { { 3, 4 } }, grad = { true } }
  end)

  it('takes the norm over the given axes (1-based, negative from the end)', function()
    T.check { fn = function(x) return F.clip_by_norm(x, 1.5, 2) end, ref = ref(1.5, { 2 }),
              inputs = { { 3, 4 } }, grad = { true } }
    T.check { fn = function(x) return F.clip_by_norm(x, 1, { axis = { 1, -1 } }) end, ref = ref(1, { 1, 3 }),
              inputs = { { 2, 3, 4 } }, grad = { true } }
  end)

  it('has the identity gradient, not NaN, at x = 0; clip_norm may be a Variable; bad arguments', function()
    local x = nn.Variable.from({ 0, 0, 0 }, { need_grad = true })
    local y = F.sum(F.clip_by_norm(x, 1))
    y:forward()
    y:backward()
    assert.same({ 1, 1, 1 }, x.g:flat())   -- norm 0 < 1: y = x (through a square root of the sum, NaN)
    local v = nn.Variable.from({ 3, 4 })
    local z = F.clip_by_norm(v, nn.Variable.from({ 2.5 }))
    z:forward()
    T.assert_close(z.d, NdArray.from({ 1.5, 2 }), 1e-6, 1e-6, 'clip_norm as a Variable')
    local function fails(f, msg)
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches(msg, err, 1, true)
    end
    fails(function() F.clip_by_norm(v, 0) end, 'F.clip_by_norm: clip_norm must be positive, got 0')
    fails(function() F.clip_by_norm(v, -1) end, 'F.clip_by_norm: clip_norm must be positive, got -1')
    fails(function() F.clip_by_norm(v, 1, 2) end, 'F.clip_by_norm: axis 2 is out of range for a 1-d input')
  end)
end)
