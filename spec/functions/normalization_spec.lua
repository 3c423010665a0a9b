-- batch_normalization through the function tester, the running-statistics update checked
-- by hand, and bad inputs.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray

-- x viewed as (outer, C, inner) around one kept axis k (Lua 1-based).
local dims = R.around

-- Plain reference: y = gamma * (x - m) / sqrt(v + eps) + beta with batch or given stats.
local function bn_ref(k, batch_stat, eps)
  eps = eps or 1e-5
  return function(x, beta, gamma, mean, var)
    local outer, C, inner = dims(x.shape, k)
    local px, y = x:ptr(), x:copy()
    local py = y:ptr()
    for c = 0, C - 1 do
      local m, v
      if batch_stat then
        local s, n = 0, outer * inner
        for o = 0, outer - 1 do for i = 0, inner - 1 do s = s + px[(o * C + c) * inner + i] end end
        m = s / n
        local q = 0
        for o = 0, outer - 1 do for i = 0, inner - 1 do q = q + (px[(o * C + c) * inner + i] - m) ^ 2 end end
        v = q / n
      else
        m, v = mean:ptr()[c], var:ptr()[c]
      end
      local g, b = gamma:ptr()[c], beta:ptr()[c]
      for o = 0, outer - 1 do
        for i = 0, inner - 1 do
          local j = (o * C + c) * inner + i
          py[j] = g * (px[j] - m) / math.sqrt(v + eps) + b
        end
      end
    end
    return y
  end
end

-- Variances (input 5) positive; everything else normal.
local function init(i, s)
  if i == 5 then return NdArray.rand(s, 0.5, 2) end
  return NdArray.randn(s)
end

describe('batch_normalization', function()
  local cases = {
    { x = { 4, 3, 2, 2 }, stat = { 1, 3, 1, 1 }, axes = { 2 }, k = 2 },
    { x = { 6, 5 }, stat = { 1, 5 }, axes = { 2 }, k = 2 },
    { x = { 6, 5 }, stat = { 1, 5 }, axes = { -1 }, k = 2 },
    { x = { 2, 3, 4 }, stat = { 1, 1, 4 }, axes = { 3 }, k = 3 },
  }
  for _, c in ipairs(cases) do
    for _, batch_stat in ipairs { true, false } do
      local name = ('x %s axes %s batch_stat=%s'):format(nn.lib.shape_str(c.x), nn.lib.shape_str(c.axes), tostring(batch_stat))
      it(name, function()
        T.check {
          fn = function(x, b, g, m, v) return F.batch_normalization(x, b, g, m, v, c.axes, 0.9, 1e-5, batch_stat) end,
          ref = bn_ref(c.k, batch_stat),
          inputs = { c.x, c.stat, c.stat, c.stat, c.stat },
          init = init,
          -- batch_stat: the running stats change at every forward and get no gradient;
          -- with given stats, mean and variance have exact gradients (checked too).
          grad = batch_stat and { true, true, true, false, false } or { true, true, true, true, true },
          atol = 1e-4,
        }
      end)
    end
  end

  it('two adjacent kept axes {2, 3} on {3, 2, 2, 2}', function()
    local ref1 = bn_ref(2, true)
    T.check {
      fn = function(x, b, g, m, v) return F.batch_normalization(x, b, g, m, v, { axes = { 2, 3 } }) end,
      -- the same as one merged channel axis of size 4
      ref = function(x, b, g, m, v)
        return ref1(x:reshape { 3, 4, 2 }, b:reshape { 1, 4, 1 }, g:reshape { 1, 4, 1 }, m, v):reshape { 3, 2, 2, 2 }
      end,
      inputs = { { 3, 2, 2, 2 }, { 1, 2, 2, 1 }, { 1, 2, 2, 1 }, { 1, 2, 2, 1 }, { 1, 2, 2, 1 } },
      init = init, grad = { true, true, true, false, false }, atol = 1e-4,
    }
  end)

  it('updates the running mean and variance in place (decay 0.9, unbiased variance)', function()
    -- x: (4, 2); channel 1 = 1, 2, 3, 4; channel 2 = 0, 0, 2, 6
    local x = nn.Variable.from { { 1, 0 }, { 2, 0 }, { 3, 2 }, { 4, 6 } }
    local beta, gamma = nn.Variable.from { { 0, 0 } }, nn.Variable.from { { 1, 1 } }
    local mean, var = nn.Variable.from { { 0.5, -1 } }, nn.Variable.from { { 1, 2 } }
    local y = F.batch_normalization(x, beta, gamma, mean, var)
    y:forward()
    -- batch means 2.5 and 2; biased variances 1.25 and 6; unbiased 5/3 and 8
    local want_m = { 0.9 * 0.5 + 0.1 * 2.5, 0.9 * -1 + 0.1 * 2 }
    local want_v = { 0.9 * 1 + 0.1 * 1.25 * 4 / 3, 0.9 * 2 + 0.1 * 6 * 4 / 3 }
    T.assert_close(mean.d:flat(), want_m, 1e-6, 1e-6, 'running mean')
    T.assert_close(var.d:flat(), want_v, 1e-6, 1e-6, 'running variance')
    -- normalized with the batch statistics
    local s = 1 / math.sqrt(1.25 + 1e-5)
    T.assert_close(y.d[1], { (1 - 2.5) * s, (0 - 2) / math.sqrt(6 + 1e-5) }, 1e-5, 1e-5, 'y row 1')
    -- a second forward applies the update again
    y:forward()
    T.assert_close(mean.d:flat(), { 0.9 * want_m[1] + 0.1 * 2.5, 0.9 * want_m[2] + 0.1 * 2 }, 1e-6, 1e-6, 'second update')
    -- batch_stat = false leaves them alone and uses them
    local before_m, before_v = mean.d:copy(), var.d:copy()
    local z = F.batch_normalization(x, beta, gamma, mean, var, { batch_stat = false })
    z:forward()
    T.assert_close(mean.d, before_m, 0, 0, 'mean unchanged')
    T.assert_close(var.d, before_v, 0, 0, 'variance unchanged')
    T.assert_close(z.d[4], { (4 - before_m:flat()[1]) / math.sqrt(before_v:flat()[1] + 1e-5),
                             (6 - before_m:flat()[2]) / math.sqrt(before_v:flat()[2] + 1e-5) }, 1e-5, 1e-5, 'z row 4')
  end)

  it('gives running stats that need grad zeros (batch_stat = true)', function()
    local x = nn.Variable.from(NdArray.randn { 4, 3 }, { need_grad = true })
    local b, g = nn.Variable({ 1, 3 }, { need_grad = true }), nn.Variable.from(NdArray.ones { 1, 3 }, { need_grad = true })
    local m, v = nn.Variable({ 1, 3 }, { need_grad = true }), nn.Variable.from(NdArray.ones { 1, 3 }, { need_grad = true })
    local y = F.batch_normalization(x, b, g, m, v)
    y:forward()
    m.g = NdArray.full({ 1, 3 }, 7)
    y:backward { grad = NdArray.randn { 4, 3 } }
    T.assert_close(m.g, NdArray.full({ 1, 3 }, 7), 0, 0, 'accumulated mean grad unchanged')
    v.grad:zero()
    y:backward { grad = NdArray.randn { 4, 3 } }
    T.assert_close(v.g, NdArray.zeros { 1, 3 }, 0, 0, 'variance grad')
    -- the batch-norm gradient of x sums to zero per channel
    local sx = x.g:sum { axis = 1 }
    T.assert_close(sx, NdArray.zeros { 3 }, 1e-4, 0, 'sum of dx per channel')
  end)

  it('works without beta/gamma/mean/variance (batch_stat = true)', function()
    local x = nn.Variable.from(NdArray.randn { 5, 2 })
    local y = F.batch_normalization(x, nil, nil, nil, nil, { 2 })
    y:forward()
    T.assert_close(y.d:mean { axis = 1 }, NdArray.zeros { 2 }, 1e-5, 0, 'zero mean')
  end)

  it('keeps its precision when the mean is large against the spread (centers x first, as NNabla)', function()
    -- channel values 1e4 -/+ 0.01 (float32: 9999.990234375 and 10000.009765625); the fused
    -- form x * scale + (beta - mean * scale) lost ~1.5% here (0.9375 instead of 0.9514)
    local lo, hi = 9999.990234375, 10000.009765625
    local x = nn.Variable.from { { lo, 1 }, { hi, 2 }, { lo, 3 }, { hi, 4 } }
    local beta, gamma = nn.Variable.from { { 0.5, 0 } }, nn.Variable.from { { 2, 1 } }
    local mean, var = nn.Variable.from { { 0, 0 } }, nn.Variable.from { { 1, 1 } }
    local y = F.batch_normalization(x, beta, gamma, mean, var)
    y:forward()
    local d = (hi - lo) / 2
    local r = 2 * d / math.sqrt(d * d + 1e-5)
    local want = { 0.5 - r, 0.5 + r, 0.5 - r, 0.5 + r }
    local got = {}
    for i = 1, 4 do got[i] = y.d[i][1] end
    T.assert_close(got, want, 1e-4, 1e-4, 'batch_stat = true')
    -- batch_stat = false with the same large running mean
    mean.d = { { 10000, 2.5 } }
    var.d = { { d * d, 1.25 } }
    local z = F.batch_normalization(x, beta, gamma, mean, var, { batch_stat = false })
    z:forward()
    for i = 1, 4 do got[i] = z.d[i][1] end
    T.assert_close(got, want, 1e-4, 1e-4, 'batch_stat = false')
  end)

  it('rejects bad inputs, naming the function, the argument and the shapes', function()
    local x = nn.Variable { 4, 3, 2, 2 }
    local s = nn.Variable { 1, 3, 1, 1 }
    local ok, err = pcall(F.batch_normalization, x, nn.Variable { 3 }, s, s, s)
    assert.is_false(ok)
    assert.matches("F.batch_normalization: input 'beta' has shape {3}, expected {1, 3, 1, 1}", err, 1, true)
    assert.matches('(inputs: x {4, 3, 2, 2}, beta {3}', err, 1, true)
    ok, err = pcall(F.batch_normalization, x, s, s, s, nn.Variable { 1, 2, 1, 1 })
    assert.is_false(ok)
    assert.matches("input 'variance' has shape {1, 2, 1, 1}", err, 1, true)
    ok, err = pcall(F.batch_normalization, x, s, s, s, s, { axes = { 5 } })
    assert.is_false(ok)
    assert.matches('F.batch_normalization: axes 5 is out of range for a 4-d input', err, 1, true)
    ok, err = pcall(F.batch_normalization, x, s, s, s, s, { axes = { 2, 4 } })
    assert.is_false(ok)
    assert.matches("argument 'axes' (the kept channel axes) must be adjacent", err, 1, true)
    ok, err = pcall(F.batch_normalization, x, s, s, s, s, { axes = { 2, 2 } })
    assert.is_false(ok)
    assert.matches("names axis 2 twice", err, 1, true)
    ok, err = pcall(F.batch_normalization, x, s, s, nil, nil, { batch_stat = false })
    assert.is_false(ok)
    assert.matches("inputs 'mean' and 'variance' are required", err, 1, true)
    ok, err = pcall(F.batch_normalization, x, s, s, s, s, { decay = 0.5 })
    assert.is_false(ok)
    assert.matches("unknown option 'decay'", err, 1, true)
  end)
end)
