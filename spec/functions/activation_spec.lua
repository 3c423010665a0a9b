-- Activations through the function tester: forward against plain Lua references (NNabla's
-- definitions), backward against finite differences, accumulation and overwrite.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local NdArray = nn.NdArray

-- Uniform values in [lo, hi] kept at least 0.05 away from each kink (finite differences
-- use eps = 0.01).
local function away(lo, hi, kinks)
  return function(_, s)
    return NdArray.rand(s, lo, hi):apply(function(a)
      for _, k in ipairs(kinks or {}) do
        if math.abs(a - k) < 0.05 then a = a < k and k - 0.05 - (k - a) or k + 0.05 + (a - k) end
      end
      return a
    end)
  end
end

local function sigmoid(x) return 1 / (1 + math.exp(-x)) end
local function softplus(x) return math.log(1 + math.exp(x)) end
local function elu(x, a) return x >= 0 and x or a * (math.exp(x) - 1) end

-- name = { reference(x), init, extra positional arguments }
local unary = {
  identity = { function(x) return x end, away(-3, 3) },
  tanh = { function(x) return math.tanh(x) end, away(-3, 3) },
  sigmoid = { sigmoid, away(-4, 4) },
  relu = { function(x) return math.max(0, x) end, away(-2, 2, { 0 }) },
  leaky_relu = { function(x) return x > 0 and x or 0.1 * x end, away(-2, 2, { 0 }) },
  elu = { function(x) return elu(x, 1) end, away(-2, 2, { 0 }) },
  selu = { function(x) return 1.05070098735548 * (x > 0 and x or 1.673263242354377 * (math.exp(x) - 1)) end,
           away(-2, 2, { 0 }) },
  gelu = { function(x) return x / 2 * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ^ 3))) end,
           away(-3, 3) },
  swish = { function(x) return x * sigmoid(x) end, away(-4, 4) },
  mish = { function(x) return x * math.tanh(softplus(x)) end, away(-3, 3) },
  softplus = { softplus, away(-4, 4) },
  softsign = { function(x) return x / (1 + math.abs(x)) end, away(-3, 3, { 0 }) },
  relu6 = { function(x) return math.min(math.max(x, 0), 6) end, away(-2, 8, { 0, 6 }) },
  hard_sigmoid = { function(x) return x > 2.5 and 1 or x < -2.5 and 0 or 0.2 * x + 0.5 end,
                   away(-4, 4, { -2.5, 2.5 }) },
  hard_tanh = { function(x) return x > 1 and 1 or x < -1 and -1 or x end, away(-2, 2, { -1, 1 }) },
  log_sigmoid = { function(x) return math.log(sigmoid(x)) end, away(-5, 5) },
}

describe('element-wise activations', function()
  for name, c in pairs(unary) do
    it(name .. ' with its defaults', function()
      T.check { fn = F[name], ref = function(x) return T.map(c[1], x) end,
                inputs = { { 2, 3, 4 } }, init = c[2], grad = { true } }
    end)
  end

  it('arguments: leaky_relu alpha, elu alpha, softplus beta, selu scale and alpha (by position and name)', function()
    local cases = {
      { function(x) return F.leaky_relu(x, 0.3) end, function(x) return x > 0 and x or 0.3 * x end },
      { function(x) return F.leaky_relu(x, { alpha = -0.2 }) end, function(x) return x > 0 and x or -0.2 * x end },
      { function(x) return F.elu(x, 2.5) end, function(x) return elu(x, 2.5) end },
      { function(x) return F.softplus(x, 2) end, function(x) return math.log(1 + math.exp(2 * x)) / 2 end },
      { function(x) return F.softplus(x, { beta = 0.5 }) end, function(x) return math.log(1 + math.exp(0.5 * x)) / 0.5 end },
      { function(x) return F.selu(x, 2, 0.5) end, function(x) return 2 * (x > 0 and x or 0.5 * (math.exp(x) - 1)) end },
      { function(x) return F.selu(x, { alpha = 3 }) end,
        function(x) return 1.05070098735548 * (x > 0 and x or 3 * (math.exp(x) - 1)) end },
    }
    for _, c in ipairs(cases) do
      T.check { fn = c[1], ref = function(x) return T.map(c[2], x) end,
                inputs = { { 3, 4 } }, init = away(-2, 2, { 0 }), grad = { true } }
    end
  end)

  it('are stable far out: softplus, log_sigmoid, mish, sigmoid, gelu at +-100', function()
    local x = nn.Variable.from { -100, 100 }
    local function run(y) y:forward(); return y.d:flat() end
    T.assert_close(run(F.softplus(x)), { 0, 100 }, 1e-6, 1e-6, 'softplus')
    T.assert_close(run(F.log_sigmoid(x)), { -100, 0 }, 1e-5, 1e-6, 'log_sigmoid')
    T.assert_close(run(F.mish(x)), { 0, 100 }, 1e-5, 1e-6, 'mish')
    T.assert_close(run(F.sigmoid(x)), { 0, 1 }, 1e-6, 1e-6, 'sigmoid')
    T.assert_close(run(F.gelu(x)), { 0, 100 }, 1e-5, 1e-6, 'gelu')
    T.assert_close(run(F.swish(x)), { 0, 100 }, 1e-5, 1e-6, 'swish')
  end)

  it('use NNabla\'s boundary conventions: elu and prelu at 0, hard_sigmoid at +-2.5', function()
    local x = nn.Variable.from({ 0, -2.5, 2.5 }, { need_grad = true })
    local y = F.hard_sigmoid(x)
    y:forward()
    T.assert_close(y.d:flat(), { 0.5, 0, 1 }, 1e-6, 1e-6, 'hard_sigmoid')
    x.grad:zero()
    y:backward { grad = NdArray.ones { 3 } }
    T.assert_close(x.g:flat(), { 0.2, 0.2, 0.2 }, 1e-6, 1e-6, 'hard_sigmoid gradient (inclusive range)')
    local z = nn.Variable.from({ 0 }, { need_grad = true })
    local e = F.elu(z, 3)
    e:forward()
    z.grad:zero()
    e:backward { grad = NdArray.ones { 1 } }
    T.assert_close(z.g:flat(), { 1 }, 1e-6, 1e-6, 'elu gradient at 0 (x >= 0 branch)')
  end)
end)

-- celu reference: elu(x) and elu(-x) concatenated along Lua axis k.
local function celu_ref(k, alpha)
  return function(x)
    local s = x.shape
    if k < 0 then k = #s + k + 1 end
    local outer, inner = 1, 1
    for d = 1, k - 1 do outer = outer * s[d] end
    for d = k, #s do inner = inner * s[d] end
    local os = {}
    for d = 1, #s do os[d] = s[d] end
    os[k] = 2 * s[k]
    local y = NdArray.zeros(os)
    local px, py = x:ptr(), y:ptr()
    for o = 0, outer - 1 do
      for i = 0, inner - 1 do
        local v = px[o * inner + i]
        py[(2 * o) * inner + i] = elu(v, alpha)
        py[(2 * o + 1) * inner + i] = elu(-v, alpha)
      end
    end
    return y
  end
end

describe('celu', function()
  for _, axis in ipairs { 2, 1, 3, -1 } do
    it('on {2, 3, 4} along axis ' .. axis, function()
      T.check { fn = function(x) return F.celu(x, 1.0, axis) end, ref = celu_ref(axis, 1.0),
                inputs = { { 2, 3, 4 } }, init = away(-2, 2, { 0 }), grad = { true } }
    end)
  end
  it('defaults to alpha 1 and axis 2; alpha by name', function()
    T.check { fn = F.celu, ref = celu_ref(2, 1), inputs = { { 3, 2 } }, init = away(-2, 2, { 0 }), grad = { true } }
    T.check { fn = function(x) return F.celu(x, { alpha = 0.5 }) end, ref = celu_ref(2, 0.5),
              inputs = { { 2, 2, 3 } }, init = away(-2, 2, { 0 }), grad = { true } }
  end)
  it('rejects a bad axis', function()
    local ok, err = pcall(F.celu, nn.Variable { 4 })
    assert.is_false(ok)
    assert.matches('F.celu: axis 2 is out of range for a 1-d input', err, 1, true)
    assert.matches('(inputs: x {4})', err, 1, true)
  end)
end)

-- prelu reference: slope per channel of Lua axis k (or one slope).
local function prelu_ref(k)
  return function(x, w)
    local s = x.shape
    local inner = 1
    for d = k + 1, #s do inner = inner * s[d] end
    local C = w.size == 1 and 1 or s[k]
    local y = x:copy()
    local px, pw, py = x:ptr(), w:ptr(), y:ptr()
    for j = 0, x.size - 1 do
      local c = C == 1 and 0 or math.floor(j / inner) % C
      local v = px[j]
      py[j] = v >= 0 and v or pw[c] * v
    end
    return y
  end
end

describe('prelu', function()
  local init = function(i, s) return i == 1 and away(-2, 2, { 0 })(i, s) or NdArray.rand(s, 0.05, 0.5) end
  it('one slope per channel of base_axis 2 (the default)', function()
    T.check { fn = F.prelu, ref = prelu_ref(2), inputs = { { 2, 3, 4 }, { 3 } }, init = init, grad = { true, true } }
  end)
  it('on base_axis 3 and -1', function()
    T.check { fn = function(x, w) return F.prelu(x, w, 3) end, ref = prelu_ref(3),
              inputs = { { 2, 3, 4 }, { 4 } }, init = init, grad = { true, true } }
    T.check { fn = function(x, w) return F.prelu(x, w, { base_axis = -1 }) end, ref = prelu_ref(3),
              inputs = { { 2, 3, 4 }, { 4 } }, init = init, grad = { true, true } }
  end)
  it('one shared slope of shape {} or {1}', function()
    T.check { fn = F.prelu, ref = prelu_ref(2), inputs = { away(-2, 2, { 0 })(1, { 2, 3, 4 }), NdArray.full({}, 0.25) },
              grad = { true, true } }
    T.check { fn = F.prelu, ref = prelu_ref(2), inputs = { { 3, 5 }, { 1 } }, init = init, grad = { true, true } }
  end)
  it('the same variable as input and slope (prelu(x, x) on 1-d x)', function()
    T.check { fn = function(x) return F.prelu(x, x, 1) end,
              ref = function(x) return T.map(function(v) return v >= 0 and v or v * v end, x) end,
              inputs = { { 6 } }, init = away(-2, 2, { 0 }), grad = { true } }
  end)
  it('rejects a slope of the wrong shape and a bad base_axis', function()
    local x = nn.Variable { 2, 3, 4 }
    local ok, err = pcall(F.prelu, x, nn.Variable { 4 })
    assert.is_false(ok)
    assert.matches("F.prelu: slope 'x1' has shape {4}; it must hold one value or be {3}", err, 1, true)
    assert.matches('(inputs: x0 {2, 3, 4}, x1 {4})', err, 1, true)
    ok, err = pcall(F.prelu, x, nn.Variable { 3 }, 4)
    assert.is_false(ok)
    assert.matches('F.prelu: base_axis 4 is out of range for a 3-d input', err, 1, true)
    ok, err = pcall(F.prelu, x)
    assert.is_false(ok)
    assert.matches("F.prelu: missing input 'x1'", err, 1, true)
  end)
end)
