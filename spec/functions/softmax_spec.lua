-- softmax and log_softmax through the function tester, on several axes.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray

-- Reference along Lua axis k (negative from the end), plain and unguarded by max-shifts.
local function ref(k, log)
  return function(x)
    local outer, C, inner = R.around(x.shape, k)
    local y = x:copy()
    local px, py = x:ptr(), y:ptr()
    for o = 0, outer - 1 do
      for i = 0, inner - 1 do
        local z = 0
        for c = 0, C - 1 do z = z + math.exp(px[(o * C + c) * inner + i]) end
        for c = 0, C - 1 do
          local j = (o * C + c) * inner + i
          py[j] = log and px[j] - math.log(z) or math.exp(px[j]) / z
        end
      end
    end
    return y
  end
end

describe('softmax', function()
  for _, name in ipairs { 'softmax', 'log_softmax' } do
    for _, axis in ipairs { 2, -1, 1 } do
      it(name .. ' on {2, 3, 4} axis ' .. axis, function()
        T.check {
          fn = function(x) return F[name](x, axis) end,
          ref = ref(axis, name == 'log_softmax'),
          inputs = { { 2, 3, 4 } },
          grad = { true },
        }
      end)
    end
    it(name .. ' default axis is the last, by name too', function()
      T.check { fn = function(x) return F[name](x) end, ref = ref(-1, name == 'log_softmax'),
                inputs = { { 3, 5 } }, grad = { true } }
      T.check { fn = function(x) return F[name](x, { axis = 1 }) end, ref = ref(1, name == 'log_softmax'),
                inputs = { { 3, 5 } }, grad = { true } }
    end)
  end

  it('is stable for large inputs', function()
    local x = nn.Variable.from { { 1000, 1001, 1002 }, { -1000, -1000, -1000 } }
    local y, l = F.softmax(x), F.log_softmax(x)
    y:forward(); l:forward()
    local e = math.exp(1) + math.exp(2) + 1
    T.assert_close(y.d:flat(), { 1 / e, math.exp(1) / e, math.exp(2) / e, 1 / 3, 1 / 3, 1 / 3 }, 1e-6, 1e-5, 'softmax')
    T.assert_close(l.d[1], { -math.log(e), 1 - math.log(e), 2 - math.log(e) }, 1e-4, 1e-5, 'log_softmax')
  end)

  it('rejects a bad axis', function()
    local ok, err = pcall(F.softmax, nn.Variable { 2, 3 }, 3)
    assert.is_false(ok)
    assert.matches('F.softmax: axis 3 is out of range for a 2-d input', err, 1, true)
    assert.matches('(inputs: x {2, 3})', err, 1, true)
    ok, err = pcall(F.log_softmax, nn.Variable { 2, 3 }, 1.5)
    assert.is_false(ok)
    assert.matches("F.log_softmax: argument 'axis' must be an integer", err, 1, true)
    ok, err = pcall(F.softmax, nn.Variable {})
    assert.is_false(ok)
    assert.matches("F.softmax: input 'x' is 0-d", err, 1, true)
  end)
end)
