-- reshape and slice (including the Lua x[{ ... }] form) through the function tester.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local NdArray = nn.NdArray

-- Reference slice with Lua conventions: per axis {start, stop, step}, inclusive, 1-based,
-- negatives from the end; missing entries cover the axis.
local function slice_ref(start, stop, step)
  return function(x)
    local s, nd = x.shape, x.ndim
    local a, cnt, st = {}, {}, {}
    for d = 1, nd do
      local n = s[d]
      st[d] = step and step[d] or 1
      local p = start and start[d] or (st[d] > 0 and 1 or n)
      local q = stop and stop[d] or (st[d] > 0 and n or 1)
      if p < 0 then p = n + p + 1 end
      if q < 0 then q = n + q + 1 end
      a[d], cnt[d] = p, math.floor((q - p) / st[d]) + 1
    end
    local xs = {}
    local acc = 1
    for d = nd, 1, -1 do xs[d] = acc; acc = acc * s[d] end
    local out, idx = {}, {}
    local total = 1
    for d = 1, nd do idx[d] = 0; total = total * cnt[d] end
    local px = x:ptr()
    for _ = 1, total do
      local off = 0
      for d = 1, nd do off = off + (a[d] - 1 + idx[d] * st[d]) * xs[d] end
      out[#out + 1] = px[off]
      for d = nd, 1, -1 do
        idx[d] = idx[d] + 1
        if idx[d] < cnt[d] then break end
        idx[d] = 0
      end
    end
    return NdArray.from_flat(out, cnt)
  end
end

describe('reshape', function()
  for _, c in ipairs { { { 2, 3, 4 }, { 4, -1 }, { 4, 6 } }, { { 2, 3, 4 }, { 24 }, { 24 } },
                       { { 2, 3, 4 }, { -1, 2, 3 }, { 4, 2, 3 } }, { { 6 }, { 1, 6, 1 }, { 1, 6, 1 } },
                       { { 1, 1 }, {}, {} } } do
    it(nn.lib.shape_str(c[1]) .. ' to ' .. nn.lib.shape_str(c[2]), function()
      T.check {
        fn = function(x) return F.reshape(x, c[2]) end,
        ref = function(x) return x:copy():reshape(c[3]) end,
        inputs = { c[1] },
        grad = { true },
      }
    end)
  end

  it('Variable:reshape and the inplace option', function()
    local x = nn.Variable.from { { 1, 2, 3 }, { 4, 5, 6 } }
    local y = F.reshape(x, { 3, 2 }, { inplace = false })
    y:forward()
    assert.same({ 3, 2 }, y.shape)
    T.assert_close(y.d[3], { 5, 6 }, 0, 0, 'row 3')
  end)

  it('rejects sizes that do not match, naming both shapes', function()
    local x = nn.Variable { 2, 3 }
    local ok, err = pcall(F.reshape, x, { 4, 2 })
    assert.is_false(ok)
    assert.matches('F.reshape: cannot reshape {2, 3} (6 elements) into {4, 2} (8 elements)', err, 1, true)
    assert.matches('(inputs: x {2, 3})', err, 1, true)
    ok, err = pcall(F.reshape, x, { 4, -1 })
    assert.is_false(ok)
    assert.matches('F.reshape: cannot reshape {2, 3} (6 elements) into {4, -1}', err, 1, true)
    ok, err = pcall(F.reshape, x, { -1, -1 })
    assert.is_false(ok)
    assert.matches('more than one -1', err, 1, true)
    ok, err = pcall(F.reshape, x, { 3, -2 })
    assert.is_false(ok)
    assert.matches('negative size at position 2', err, 1, true)
    ok, err = pcall(F.reshape, x)
    assert.is_false(ok)
    assert.matches("F.reshape: argument 'shape' is required", err, 1, true)
  end)
end)

describe('slice', function()
  local cases = {
    { { 3, 5 }, { 1, 2 }, { 2, 4 }, nil },              -- ranges
    { { 3, 5 }, { 2, 3 }, { 2, 3 }, nil },              -- single index per axis
    { { 3, 5 }, { -2, -4 }, { -1, -1 }, nil },          -- negative positions
    { { 4, 6 }, { 1, 2 }, { 4, 6 }, { 2, 2 } },         -- step 2
    { { 4, 6 }, { 4, 6 }, { 1, 1 }, { -1, -2 } },       -- negative steps
    { { 2, 3, 4 }, { 1, 2 }, nil, nil },                -- short list, stop defaults
    { { 2, 3, 4 }, nil, nil, { 1, 2, 3 } },             -- only steps
    { { 2, 3, 4 }, { 2, 1, 2 }, { 2, 3, 3 }, nil },     -- contiguous last axis
  }
  for _, c in ipairs(cases) do
    local function s(l) return l and nn.lib.shape_str(l) or 'nil' end
    it(('%s start=%s stop=%s step=%s'):format(s(c[1]), s(c[2]), s(c[3]), s(c[4])), function()
      T.check {
        fn = function(x) return F.slice(x, c[2], c[3], c[4]) end,
        ref = slice_ref(c[2], c[3], c[4]),
        inputs = { c[1] },
        grad = { true },
      }
    end)
  end

  it('x[{ ... }] maps to F.slice', function()
    -- { spec, shape, start, stop, step } with the equivalent F.slice arguments
    local lua_cases = {
      { { {}, { 1, 4 } }, { 3, 5 }, { 1, 1 }, { 3, 4 }, nil },
      { { {}, {}, { 2 } }, { 3, 3, 4 }, { 1, 1, 2 }, { 3, 3, 2 }, nil },
      { { { 2 } }, { 3, 5 }, { 2 }, { 2 }, nil },
      { { 1, { -2, -1 } }, { 3, 5 }, { 1, -2 }, { 1, -1 }, nil },
      { { { 1, -1, 2 }, {}, { 4, 1, -3 } }, { 3, 3, 4 }, { 1, 1, 4 }, { 3, 3, 1 }, { 2, 1, -3 } },
    }
    for _, c in ipairs(lua_cases) do
      local shape = c[2]
      T.check {
        fn = function(x) return x[c[1]] end,
        ref = slice_ref(c[3], c[4], c[5]),
        inputs = { shape },
        grad = { true },
      }
      local x = nn.Variable(shape)
      assert.equal('slice', x[c[1]].parent.name)
    end
  end)

  it('rejects out-of-range positions, backwards ranges and step 0', function()
    local x = nn.Variable { 3, 5 }
    local ok, err = pcall(F.slice, x, { 1, 6 }, { 3, 6 })
    assert.is_false(ok)
    assert.matches('F.slice: start 6 is out of range on axis 2 of size 5 (input shape {3, 5}', err, 1, true)
    ok, err = pcall(F.slice, x, { 1, 1 }, { 3, -6 })
    assert.is_false(ok)
    assert.matches('F.slice: stop -6 is out of range on axis 2 of size 5', err, 1, true)
    ok, err = pcall(F.slice, x, { 3 }, { 2 })
    assert.is_false(ok)
    assert.matches('F.slice: start 3 comes after stop 2 on axis 1 with step 1 (input shape {3, 5})', err, 1, true)
    ok, err = pcall(F.slice, x, { 1 }, { 2 }, { -1 })
    assert.is_false(ok)
    assert.matches('start 1 comes before stop 2 on axis 1 with negative step -1', err, 1, true)
    ok, err = pcall(F.slice, x, nil, nil, { 1, 0 })
    assert.is_false(ok)
    assert.matches('F.slice: step 0 on axis 2 (input shape {3, 5})', err, 1, true)
    ok, err = pcall(F.slice, x, { 0 })
    assert.is_false(ok)
    assert.matches('start 0 is out of range on axis 1', err, 1, true)
    ok, err = pcall(F.slice, x, { 1, 1, 1 })
    assert.is_false(ok)
    assert.matches("argument 'start' has 3 entries for a 2-d input of shape {3, 5}", err, 1, true)
    ok, err = pcall(function() return x[{ {}, { 2, 9 } }] end)
    assert.is_false(ok)
    assert.matches('F.slice: stop 9 is out of range on axis 2', err, 1, true)
  end)
end)

-- scripts/fuzz_functions.lua regressions: sizes whose product overflows int64
describe('reshape with huge sizes (fuzz)', function()
  it('refuses a shape whose element count overflows, instead of wrapping around', function()
    local I = 2 ^ 31 - 1
    local ok, err = pcall(F.reshape, nn.Variable({2, 3}), {I, I, I, I})
    assert.is_false(ok)
    assert.matches('F.reshape: cannot reshape {2, 3} (6 elements) into {2147483647, 2147483647, 2147483647, 2147483647} (too many elements)', err, 1, true)
    -- a zero after the overflow still makes an empty shape: the element counts differ
    ok, err = pcall(F.reshape, nn.Variable({2, 3}), {I, I, I, 0})
    assert.is_false(ok)
    assert.matches('F.reshape: cannot reshape {2, 3} (6 elements) into {2147483647, 2147483647, 2147483647, 0} (0 elements)', err, 1, true)
  end)
  it('refuses integer arguments beyond 32 bits (all functions)', function()
    local ok, err = pcall(F.reshape, nn.Variable({2, 3}), {2 ^ 31, 3})
    assert.is_false(ok)
    assert.matches("F.reshape: argument 'shape' entry 1 is 2147483648, out of range (integer arguments are within -2147483647..2147483647)", err, 1, true)
  end)
end)
