-- softmax_cross_entropy and squared_error through the function tester, and the label
-- checks (a bad label raises a Lua error, never a crash).
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local labels = R.labels

-- Reference: y = log(sum_c exp(x)) - x[label] along Lua axis k; labels 0-based.
local function sce_ref(k)
  return function(x, t)
    local outer, C, inner = R.around(x.shape, k)
    local y = t:copy()
    local px, pt, py = x:ptr(), t:ptr(), y:ptr()
    for o = 0, outer - 1 do
      for i = 0, inner - 1 do
        local z = 0
        for c = 0, C - 1 do z = z + math.exp(px[(o * C + c) * inner + i]) end
        local label = pt[o * inner + i]
        py[o * inner + i] = math.log(z) - px[(o * C + label) * inner + i]
      end
    end
    return y
  end
end

describe('softmax_cross_entropy', function()
  it('on {5, 4} with labels {5, 1}', function()
    T.check {
      fn = F.softmax_cross_entropy,
      ref = sce_ref(-1),
      inputs = { { 5, 4 }, NdArray.from { { 0 }, { 3 }, { 1 }, { 2 }, { 3 } } },
      grad = { true, false },
    }
  end)
  it('on {2, 3, 4} along axis 2 with labels {2, 1, 4}', function()
    nn.seed(7)
    T.check {
      fn = function(x, t) return F.softmax_cross_entropy(x, t, 2) end,
      ref = sce_ref(2),
      inputs = { { 2, 3, 4 }, labels({ 2, 1, 4 }, 3) },
      grad = { true, false },
    }
  end)
  it('on {3, 10} with random labels, by name', function()
    nn.seed(8)
    T.check {
      fn = function(x, t) return F.softmax_cross_entropy(x, t, { axis = -1 }) end,
      ref = sce_ref(-1),
      inputs = { { 3, 10 }, labels({ 3, 1 }, 10) },
      grad = { true, false },
    }
  end)
  it('gives target zero gradient when it needs one', function()
    local x = nn.Variable.from(NdArray.randn { 2, 3 }, { need_grad = true })
    local t = nn.Variable.from({ { 1 }, { 2 } }, { need_grad = true })
    local y = F.softmax_cross_entropy(x, t)
    y:forward()
    t.g = NdArray.full({ 2, 1 }, 5)
    y:backward { grad = 1 }
    T.assert_close(t.g, NdArray.full({ 2, 1 }, 5), 0, 0, 'accumulating: unchanged')
    t.grad:zero()
    y:backward { grad = 1 }
    T.assert_close(t.g, NdArray.zeros { 2, 1 }, 0, 0, 'zeros')
  end)

  for _, bad in ipairs { 10, -1, 2.5 } do
    it('raises a Lua error for label ' .. bad .. ' with C = 10', function()
      local x = nn.Variable.from(NdArray.randn { 3, 10 })
      local t = nn.Variable.from { { 1 }, { bad }, { 0 } }
      local y = F.softmax_cross_entropy(x, t)
      local ok, err = pcall(function() y:forward() end)
      assert.is_false(ok)
      assert.matches('forward: softmax_cross_entropy: label ' .. bad .. ' at position 2 is out of range 0..9', err, 1, true)
      -- auto-forward raises at the call
      ok, err = pcall(nn.auto_forward, function() return F.softmax_cross_entropy(x, t) end)
      assert.is_false(ok)
      assert.matches('F.softmax_cross_entropy: label ' .. bad .. ' at position 2 is out of range 0..9', err, 1, true)
      -- and the engine is still usable
      t.d = { { 1 }, { 9 }, { 0 } }
      y:forward()
      assert.is_true(y.d:sum() > 0)
    end)
  end

  it('rejects a target of the wrong shape and a bad axis', function()
    local ok, err = pcall(F.softmax_cross_entropy, nn.Variable { 5, 4 }, nn.Variable { 5 })
    assert.is_false(ok)
    assert.matches("F.softmax_cross_entropy: input 'target' has shape {5}, expected {5, 1}", err, 1, true)
    assert.matches('(inputs: x {5, 4}, target {5})', err, 1, true)
    ok, err = pcall(F.softmax_cross_entropy, nn.Variable { 5, 4 }, nn.Variable { 5, 1 }, 3)
    assert.is_false(ok)
    assert.matches('F.softmax_cross_entropy: axis 3 is out of range', err, 1, true)
    ok, err = pcall(F.softmax_cross_entropy, nn.Variable { 5, 4 })
    assert.is_false(ok)
    assert.matches("missing input 'target'", err, 1, true)
  end)
end)

describe('squared_error', function()
  for _, shape in ipairs { { 3, 4 }, { 2, 3, 2 }, { 5 } } do
    it('on ' .. nn.lib.shape_str(shape), function()
      T.check {
        fn = F.squared_error,
        ref = function(a, b) return T.map(function(p, q) return (p - q) ^ 2 end, a, b) end,
        inputs = { shape, shape },
        grad = { true, true },
      }
    end)
  end
  it('of a variable with itself is zero with zero gradient', function()
    T.check { fn = function(x) return F.squared_error(x, x) end, ref = function(x) return x * 0 end,
              inputs = { { 2, 3 } }, grad = { true } }
  end)
  it('rejects different shapes, naming both', function()
    local ok, err = pcall(F.squared_error, nn.Variable { 2, 3 }, nn.Variable { 3, 2 })
    assert.is_false(ok)
    assert.matches("F.squared_error: inputs 'x0' {2, 3} and 'x1' {3, 2} must have the same shape", err, 1, true)
  end)
end)
