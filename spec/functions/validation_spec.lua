-- top_n_error, binary_error, confusion_matrix, unlink and sink: forward against plain Lua
-- references through the function tester, their (zero or special) gradients, and the
-- argument and label checks.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local labels, expect_error = R.labels, R.expect_error

local each_position = R.each_position

local function top_n_ref(k, n)
  return function(x, t)
    local y = t:copy()
    local py = y:ptr()
    each_position(x, t, k, function(vals, l, C, pos)
      local count = 0
      for c = 0, C - 1 do if vals[c] >= vals[l] then count = count + 1 end end
      py[pos] = count > n and 1 or 0
    end)
    return y
  end
end

local function confusion_ref(k)
  return function(x, t)
    local s = x.shape
    local C = s[k < 0 and #s + k + 1 or k]
    local y = NdArray.zeros { C, C }
    local py = y:ptr()
    each_position(x, t, k, function(vals, l, CC)
      local best = 0
      for c = 1, CC - 1 do if vals[c] > vals[best] then best = c end end
      py[l * C + best] = py[l * C + best] + 1
    end)
    return y
  end
end

-- The metrics give x (and target) zero gradients, accumulating nothing.
local function check_zero_grads(fn, x0, t0)
  local x = nn.Variable.from(x0, { need_grad = true })
  local t = nn.Variable.from(t0, { need_grad = true })
  local y = fn(x, t)
  y:forward()
  y:backward { grad = NdArray.ones(y.shape) }
  T.assert_close(x.g, NdArray.zeros(x.shape), 0, 0, 'x gradient')
  T.assert_close(t.g, NdArray.zeros(t.shape), 0, 0, 'target gradient')
  x.g = NdArray.full(x.shape, 3)
  y:backward { grad = NdArray.ones(y.shape) }
  T.assert_close(x.g, NdArray.full(x.shape, 3), 0, 0, 'accumulating adds nothing')
  -- an intermediate input gets a clean zero (no NaN from an old buffer)
  local xi = F.identity(x)
  local y2 = fn(xi, t)
  y2:forward()
  xi.g = NdArray.full(x.shape, 0 / 0)
  x.grad:zero()
  y2:backward { grad = NdArray.ones(y2.shape) }
  T.assert_close(x.g, NdArray.zeros(x.shape), 0, 0, 'through an intermediate')
end

describe('top_n_error', function()
  for _, c in ipairs { { { 6, 5 }, -1, 1 }, { { 6, 5 }, -1, 2 }, { { 2, 4, 3 }, 2, 1 }, { { 2, 4, 3 }, 2, 3 } } do
    local shape, axis, n = c[1], c[2], c[3]
    it(('on %s along axis %d with n = %d'):format(nn.lib.shape_str(shape), axis, n), function()
      nn.seed(21 + n)
      local tshape = {}
      for d = 1, #shape do tshape[d] = shape[d] end
      local a = axis < 0 and #shape + axis + 1 or axis
      tshape[a] = 1
      T.check {
        fn = function(x, t) return F.top_n_error(x, t, { axis = axis, n = n }) end,
        ref = top_n_ref(axis, n),
        inputs = { NdArray.randn(shape), labels(tshape, shape[a]) },
      }
    end)
  end
  it('counts ties against the label, as NNabla does', function()
    local y = F.top_n_error(nn.Variable.from { { 1, 1, 0 }, { 2, 1, 0 } }, nn.Variable.from { { 0 }, { 0 } })
    y:forward()
    T.assert_close(y.d, NdArray.from { { 1 }, { 0 } }, 0, 0, 'ties')
  end)
  it('gives zero gradients', function()
    check_zero_grads(F.top_n_error, NdArray.randn { 3, 4 }, NdArray.from { { 0 }, { 3 }, { 1 } })
  end)
  it('checks labels, target shape and n', function()
    local y = F.top_n_error(nn.Variable.from(NdArray.randn { 2, 3 }), nn.Variable.from { { 0 }, { 3 } })
    expect_error(function() y:forward() end, 'forward: top_n_error: label 3 at position 2 is out of range 0..2')
    expect_error(F.top_n_error, "F.top_n_error: input 'target' has shape {2, 3}, expected {2, 1}",
      nn.Variable { 2, 3 }, nn.Variable { 2, 3 })
    expect_error(F.top_n_error, "F.top_n_error: argument 'n' must be >= 1, got 0",
      nn.Variable { 2, 3 }, nn.Variable { 2, 1 }, -1, 0)
  end)
end)

describe('binary_error', function()
  it('on {4, 5}', function()
    T.check {
      fn = F.binary_error,
      ref = function(x, t)
        return T.map(function(p, q) return ((p >= 0.5) ~= (q >= 0.5)) and 1 or 0 end, x, t)
      end,
      inputs = { NdArray.rand({ 4, 5 }, 0, 1), NdArray.rand({ 4, 5 }, 0, 1):round() },
    }
  end)
  it('thresholds at 0.5 inclusive', function()
    local y = F.binary_error(nn.Variable.from { 0.5, 0.49, 0.5, 0.9 }, nn.Variable.from { 1, 1, 0, 0 })
    y:forward()
    T.assert_close(y.d, NdArray.from { 0, 1, 1, 1 }, 0, 0, 'binary error')
  end)
  it('gives zero gradients and rejects different shapes', function()
    check_zero_grads(F.binary_error, NdArray.rand({ 2, 3 }, 0, 1), NdArray.from { { 0, 1, 1 }, { 1, 0, 0 } })
    expect_error(F.binary_error, "F.binary_error: inputs 'x' {2, 3} and 'target' {2} must have the same shape",
      nn.Variable { 2, 3 }, nn.Variable { 2 })
  end)
end)

describe('confusion_matrix', function()
  it('on {12, 4}', function()
    nn.seed(31)
    T.check { fn = F.confusion_matrix, ref = confusion_ref(-1), inputs = { NdArray.randn { 12, 4 }, labels({ 12, 1 }, 4) } }
  end)
  it('on {3, 5, 2} along axis 1', function()
    nn.seed(32)
    T.check { fn = function(x, t) return F.confusion_matrix(x, t, 1) end, ref = confusion_ref(1),
              inputs = { NdArray.randn { 3, 5, 2 }, labels({ 1, 5, 2 }, 3) } }
  end)
  it('rows are the true class, columns the prediction (first maximum)', function()
    local x = nn.Variable.from { { 0.9, 0.1, 0 }, { 0.2, 0.7, 0.1 }, { 0.5, 0.5, 0 }, { 0, 0, 1 } }
    local t = nn.Variable.from { { 0 }, { 0 }, { 2 }, { 2 } }
    local y = F.confusion_matrix(x, t)
    y:forward()
    T.assert_close(y.d, NdArray.from { { 1, 1, 0 }, { 0, 0, 0 }, { 1, 0, 1 } }, 0, 0, 'confusion matrix')
  end)
  it('gives zero gradients and checks labels', function()
    check_zero_grads(F.confusion_matrix, NdArray.randn { 3, 4 }, NdArray.from { { 0 }, { 3 }, { 1 } })
    local y = F.confusion_matrix(nn.Variable.from(NdArray.randn { 2, 3 }), nn.Variable.from { { -1 }, { 0 } })
    expect_error(function() y:forward() end, 'forward: confusion_matrix: label -1 at position 1 is out of range 0..2')
  end)
end)

describe('unlink', function()
  it('is the identity in forward', function()
    T.check { fn = F.unlink, ref = function(x) return x:copy() end, inputs = { { 2, 3, 4 } } }
  end)
  it('stops the gradient', function()
    local x = nn.Variable.from(NdArray.randn { 3, 4 }, { need_grad = true })
    local y = F.mul2(F.unlink(x), x)        -- d/dx = unlink(x) only
    y:forward()
    y:backward { grad = NdArray.ones { 3, 4 } }
    T.assert_close(x.g, x.d, 1e-6, 0, 'gradient through the linked side only')
    local z = F.unlink(F.tanh(x))
    z:forward()
    x.grad:zero()
    z:backward { grad = NdArray.ones { 3, 4 } }
    T.assert_close(x.g, NdArray.zeros { 3, 4 }, 0, 0, 'nothing flows back')
  end)
end)

describe('sink', function()
  it('joins several outputs: forward runs every branch, backward gives each input 1', function()
    local x = nn.Variable.from(NdArray.randn { 2, 3 }, { need_grad = true })
    local a, b = F.mul_scalar(x, 2), F.mul_scalar(x, 3)
    local s = F.sink(a, b)
    assert.are.same({}, s.shape)
    s:forward()
    T.assert_close(a.d, x.d * 2, 1e-6, 0, 'branch a')
    T.assert_close(b.d, x.d * 3, 1e-6, 0, 'branch b')
    x.grad:zero()
    s:backward()
    T.assert_close(x.g, NdArray.full({ 2, 3 }, 5), 1e-6, 0, 'd(2x + 3x)')
    s:backward()
    T.assert_close(x.g, NdArray.full({ 2, 3 }, 10), 1e-6, 0, 'accumulated in the leaf')
  end)
  it('gives leaves 1, adding to a gradient they hold', function()
    local p = nn.Variable.from(NdArray.randn { 3 }, { need_grad = true })
    local q = nn.Variable.from(NdArray.randn { 2, 2 }, { need_grad = true })
    local s = F.sink { p, q }
    s:forward()
    q.g = NdArray.full({ 2, 2 }, 4)
    s:backward()
    T.assert_close(p.g, NdArray.ones { 3 }, 0, 0, 'p')
    T.assert_close(q.g, NdArray.full({ 2, 2 }, 5), 0, 0, 'q accumulates')
  end)
  it('with one_input_grad = false keeps the gradients set on its inputs', function()
    local x = nn.Variable.from(NdArray.randn { 2, 3 }, { need_grad = true })
    local a, b = F.mul_scalar(x, 2), F.mul_scalar(x, 3)
    local s = F.sink(a, b, { one_input_grad = false })
    s:forward()
    local ga, gb = NdArray.randn { 2, 3 }, NdArray.randn { 2, 3 }
    a.g = ga
    b.g = gb
    x.grad:zero()
    s:backward()
    T.assert_close(x.g, ga * 2 + gb * 3, 1e-5, 1e-5, 'external gradients')
  end)
  it('needs at least one input', function()
    expect_error(F.sink, 'F.sink: expects at least 1 input variables, got 0')
  end)
end)
