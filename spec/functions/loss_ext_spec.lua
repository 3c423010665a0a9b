-- The losses of loss_ext.c through the function tester (forward against plain Lua
-- references, backward against finite differences, accumulation, overwrite), and their
-- argument and label checks.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local labels, expect_error = R.labels, R.expect_error

-- Reference over the class axis k (Lua, negative from the end): y = fn(x_values, label).
local function class_ref(k, fn)
  return function(x, t)
    local y = t:copy()
    local py = y:ptr()
    R.each_position(x, t, k, function(vals, label, C, pos) py[pos] = fn(vals, label, C) end)
    return y
  end
end

-- x1 = x0 - d with |d| drawn from `mags` (away from the kinks of the loss), random signs.
local function pairs_with_gaps(shape, mags)
  local a = NdArray.randn(shape)
  local b = a:copy()
  local pb = b:ptr()
  for i = 0, b.size - 1 do
    local m = mags[i % #mags + 1]
    pb[i] = pb[i] - (i % 3 == 0 and -m or m)
  end
  return a, b
end

local function sigmoid(v) return 1 / (1 + math.exp(-v)) end

describe('sigmoid_cross_entropy', function()
  for _, shape in ipairs { { 3, 4 }, { 2, 3, 2 } } do
    it('on ' .. nn.lib.shape_str(shape) .. ' with soft targets', function()
      T.check {
        fn = F.sigmoid_cross_entropy,
        ref = function(x, t)
          return T.map(function(v, q) return -(q * math.log(sigmoid(v)) + (1 - q) * math.log(1 - sigmoid(v))) end, x, t)
        end,
        inputs = { NdArray.randn(shape, 0, 2), NdArray.rand(shape, 0, 1) },
        grad = { true, false },
      }
    end)
  end
  it('is stable for large logits', function()
    local x = nn.Variable.from { -80, -30, 0, 30, 80 }
    local t = nn.Variable.from { 1, 0, 1, 1, 0 }
    local y = F.sigmoid_cross_entropy(x, t)
    y:forward()
    T.assert_close(y.d, NdArray.from { 80, 0, math.log(2), 0, 80 }, 1e-5, 1e-6, 'stable values')
  end)
  it('gives the target zero gradient', function()
    local x = nn.Variable.from(NdArray.randn { 2, 3 }, { need_grad = true })
    local t = nn.Variable.from(NdArray.rand({ 2, 3 }, 0, 1), { need_grad = true })
    local y = F.sigmoid_cross_entropy(x, t)
    y:forward()
    y:backward { grad = NdArray.ones { 2, 3 } }
    T.assert_close(t.g, NdArray.zeros { 2, 3 }, 0, 0, 'target gradient')
    T.assert_close(x.g, T.map(function(v, q) return sigmoid(v) - q end, x.d, t.d), 1e-6, 1e-5, 'x gradient')
  end)
  it('rejects different shapes, naming both', function()
    expect_error(F.sigmoid_cross_entropy,
      "F.sigmoid_cross_entropy: inputs 'x' {2, 3} and 'target' {3, 2} must have the same shape",
      nn.Variable { 2, 3 }, nn.Variable { 3, 2 })
  end)
end)

describe('binary_cross_entropy', function()
  it('on {3, 4}, gradients for both inputs', function()
    T.check {
      fn = F.binary_cross_entropy,
      ref = function(x, t)
        return T.map(function(p, q) return -(q * math.log(p) + (1 - q) * math.log(1 - p)) end, x, t)
      end,
      inputs = { NdArray.rand({ 3, 4 }, 0.2, 0.8), NdArray.rand({ 3, 4 }, 0, 1) },
      grad = { true, true },
    }
  end)
  it('clamps the logs at 0 and 1 instead of giving inf', function()
    local y = F.binary_cross_entropy(nn.Variable.from { 0, 1, 0, 1 }, nn.Variable.from { 1, 0, 0, 1 })
    y:forward()
    local p = y.d:ptr()
    assert.is_true(p[0] > 80 and p[0] < 90 and p[1] > 80 and p[1] < 90)
    assert.are.equal(0, p[2])
    assert.are.equal(0, p[3])
  end)
  it('rejects different shapes', function()
    expect_error(F.binary_cross_entropy, "inputs 'x' {4} and 'target' {5} must have the same shape",
      nn.Variable { 4 }, nn.Variable { 5 })
  end)
end)

describe('categorical_cross_entropy', function()
  local cce = function(vals, l) return -math.log(vals[l]) end
  it('on {5, 4} with labels {5, 1}', function()
    nn.seed(11)
    T.check {
      fn = F.categorical_cross_entropy,
      ref = class_ref(-1, cce),
      inputs = { NdArray.rand({ 5, 4 }, 0.1, 1), labels({ 5, 1 }, 4) },
      grad = { true, false },
    }
  end)
  it('on {2, 3, 4} along axis 2, by name', function()
    nn.seed(12)
    T.check {
      fn = function(x, t) return F.categorical_cross_entropy(x, t, { axis = 2 }) end,
      ref = class_ref(2, cce),
      inputs = { NdArray.rand({ 2, 3, 4 }, 0.1, 1), labels({ 2, 1, 4 }, 3) },
      grad = { true, false },
    }
  end)
  for _, bad in ipairs { 4, -1, 1.5 } do
    it('fails forward for label ' .. bad .. ' with C = 4, and stays usable', function()
      local x = nn.Variable.from(NdArray.rand({ 3, 4 }, 0.1, 1))
      local t = nn.Variable.from { { 0 }, { 1 }, { bad } }
      local y = F.categorical_cross_entropy(x, t)
      expect_error(function() y:forward() end,
        'forward: categorical_cross_entropy: label ' .. bad .. ' at position 3 is out of range 0..3')
      expect_error(nn.auto_forward, 'F.categorical_cross_entropy: label ' .. bad .. ' at position 3',
        function() return F.categorical_cross_entropy(x, t) end)
      t.d = { { 0 }, { 1 }, { 3 } }
      y:forward()
      assert.is_true(y.d:sum() > 0)
    end)
  end
  it('rejects a target of the wrong shape and a bad axis', function()
    local err = expect_error(F.categorical_cross_entropy,
      "F.categorical_cross_entropy: input 'target' has shape {5}, expected {5, 1}", nn.Variable { 5, 4 }, nn.Variable { 5 })
    assert.matches('(inputs: x {5, 4}, target {5})', err, 1, true)
    expect_error(F.categorical_cross_entropy, 'F.categorical_cross_entropy: axis 3 is out of range',
      nn.Variable { 5, 4 }, nn.Variable { 5, 1 }, 3)
  end)
end)

describe('absolute_error', function()
  it('on {3, 4}', function()
    local a, b = pairs_with_gaps({ 3, 4 }, { 0.3, 0.7, 1.5 })
    T.check {
      fn = F.absolute_error,
      ref = function(p, q) return T.map(function(u, v) return math.abs(u - v) end, p, q) end,
      inputs = { a, b },
      grad = { true, true },
    }
  end)
  it('of a variable with itself is zero with zero gradient', function()
    T.check { fn = function(x) return F.absolute_error(x, x) end, ref = function(x) return x * 0 end,
              inputs = { { 2, 3 } }, grad = { true } }
  end)
  it('rejects different shapes', function()
    expect_error(F.absolute_error, "F.absolute_error: inputs 'x0' {2, 3} and 'x1' {2} must have the same shape",
      nn.Variable { 2, 3 }, nn.Variable { 2 })
  end)
end)

describe('huber_loss', function()
  local function huber(delta)
    return function(p, q)
      return T.map(function(u, v)
        local d = math.abs(u - v)
        return d < delta and d * d or delta * (2 * d - delta)
      end, p, q)
    end
  end
  it('on {4, 5} with the default delta 1', function()
    local a, b = pairs_with_gaps({ 4, 5 }, { 0.2, 0.6, 1.4, 2.5 })
    T.check { fn = F.huber_loss, ref = huber(1), inputs = { a, b }, grad = { true, true } }
  end)
  it('on {2, 3, 2} with delta 0.5, positionally and by name', function()
    local a, b = pairs_with_gaps({ 2, 3, 2 }, { 0.1, 0.3, 0.9, 2 })
    T.check { fn = function(p, q) return F.huber_loss(p, q, 0.5) end, ref = huber(0.5),
              inputs = { a, b }, grad = { true, true } }
    T.check { fn = function(p, q) return F.huber_loss(p, q, { delta = 0.5 }) end, ref = huber(0.5),
              inputs = { a, b }, grad = { true, true } }
  end)
  it('rejects a delta that is not positive', function()
    expect_error(F.huber_loss, "F.huber_loss: argument 'delta' must be a positive number, got 0",
      nn.Variable { 2 }, nn.Variable { 2 }, 0)
  end)
end)

describe('epsilon_insensitive_loss', function()
  local function eil(e)
    return function(p, q)
      return T.map(function(u, v) local d = math.abs(u - v) - e return d > 0 and d or 0 end, p, q)
    end
  end
  it('on {4, 3} with epsilon 0.5', function()
    local a, b = pairs_with_gaps({ 4, 3 }, { 0.1, 0.3, 0.8, 1.6 })
    T.check { fn = function(p, q) return F.epsilon_insensitive_loss(p, q, 0.5) end, ref = eil(0.5),
              inputs = { a, b }, grad = { true, true } }
    T.check { fn = function(p, q) return F.epsilon_insensitive_loss(p, q, { epsilon = 0.5 }) end, ref = eil(0.5),
              inputs = { a, b }, grad = { true, true } }
  end)
  it('requires epsilon and rejects a negative one', function()
    expect_error(F.epsilon_insensitive_loss, "F.epsilon_insensitive_loss: argument 'epsilon' is required",
      nn.Variable { 2 }, nn.Variable { 2 })
    expect_error(F.epsilon_insensitive_loss, "argument 'epsilon' must be a number >= 0, got -1",
      nn.Variable { 2 }, nn.Variable { 2 }, -1)
  end)
end)

describe('kl_multinomial', function()
  -- D over the axes from base_axis on (Lua, 1-based)
  local function kl(ba)
    return function(p, q)
      local s = p.shape
      local n, k = 1, 1
      for d = 1, ba - 1 do n = n * s[d] end
      for d = ba, #s do k = k * s[d] end
      local oshape = {}
      for d = 1, ba - 1 do oshape[d] = s[d] end
      oshape[ba] = 1
      local pp, pq, out = p:ptr(), q:ptr(), {}
      for i = 0, n - 1 do
        local acc = 0
        for j = i * k, (i + 1) * k - 1 do acc = acc + pp[j] * (math.log(pp[j] + 1e-8) - math.log(pq[j] + 1e-8)) end
        out[i + 1] = acc
      end
      return NdArray.from_flat(out, oshape)
    end
  end
  for _, c in ipairs { { { 3, 4 }, nil, 2 }, { { 2, 3, 4 }, 2, 2 }, { { 2, 3, 4 }, 3, 3 }, { { 2, 3 }, 1, 1 } } do
    local shape, arg, ba = c[1], c[2], c[3]
    it('on ' .. nn.lib.shape_str(shape) .. ' with base_axis ' .. ba, function()
      T.check {
        fn = function(p, q) if arg then return F.kl_multinomial(p, q, arg) end return F.kl_multinomial(p, q) end,
        ref = kl(ba),
        inputs = { NdArray.rand(shape, 0.2, 1), NdArray.rand(shape, 0.2, 1) },
        grad = { true, true },
      }
    end)
  end
  it('is zero for equal distributions', function()
    local p = nn.Variable.from { { 0.2, 0.3, 0.5 }, { 0.1, 0.1, 0.8 } }
    local y = F.kl_multinomial(p, p)
    y:forward()
    T.assert_close(y.d, NdArray.zeros { 2, 1 }, 1e-6, 0, 'KL(p || p)')
  end)
  it('rejects different shapes and a bad base_axis', function()
    expect_error(F.kl_multinomial, "F.kl_multinomial: inputs 'p' {2, 3} and 'q' {3, 2} must have the same shape",
      nn.Variable { 2, 3 }, nn.Variable { 3, 2 })
    expect_error(F.kl_multinomial, 'F.kl_multinomial: base_axis 3 is out of range for a 2-d input',
      nn.Variable { 2, 3 }, nn.Variable { 2, 3 }, 3)
  end)
end)
