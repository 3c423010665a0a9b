-- fused_batch_normalization, layer/instance/group normalization, weight_normalization and
-- the gradient clippers through the function tester, against plain Lua references.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local each_index, err_of = R.each_index, R.err_of

-- Flat offset of idx (0-based) in an array of shape `shape` broadcast to x (size-1 axes
-- read index 0).
local function bcast_offset(shape, idx)
  local o = 0
  for d = 1, #shape do o = o * shape[d] + (shape[d] == 1 and 0 or idx[d]) end
  return o
end

-- Generic reference: statistics grouped by key(idx) (biased variance), then
-- y = (x - mean) / sqrt(var + eps) * gamma + beta with beta/gamma broadcast.
local function tn_ref(x, key, beta, gamma, eps)
  local px = x:ptr()
  local sum, sq, cnt, keys = {}, {}, {}, {}
  local i = 0
  each_index(x.shape, function(idx)
    local k = key(idx)
    keys[i] = k
    sum[k] = (sum[k] or 0) + px[i]
    cnt[k] = (cnt[k] or 0) + 1
    i = i + 1
  end)
  for k, s in pairs(sum) do sum[k] = s / cnt[k] end
  for j = 0, x.size - 1 do
    local k = keys[j]
    sq[k] = (sq[k] or 0) + (px[j] - sum[k]) ^ 2
  end
  local y = x:copy()
  local py = y:ptr()
  i = 0
  each_index(x.shape, function(idx)
    local k = keys[i]
    local v = (px[i] - sum[k]) / math.sqrt(sq[k] / cnt[k] + eps)
    if gamma then v = v * gamma:ptr()[bcast_offset(gamma.shape, idx)] end
    if beta then v = v + beta:ptr()[bcast_offset(beta.shape, idx)] end
    py[i] = v
    i = i + 1
  end)
  return y, sum, sq, cnt
end

-- key from the listed (1-based) axes of idx
local function key_of(axes)
  return function(idx)
    local parts = {}
    for _, a in ipairs(axes) do parts[#parts + 1] = idx[a] end
    return table.concat(parts, ',')
  end
end

describe('layer_normalization', function()
  it('x {3, 2, 2, 2}, batch_axis {1}, beta/gamma {1, 2, 2, 2}', function()
    T.check {
      fn = function(x, b, g) return F.layer_normalization(x, b, g) end,
      ref = function(x, b, g) return (tn_ref(x, key_of { 1 }, b, g, 1e-5)) end,
      inputs = { { 3, 2, 2, 2 }, { 1, 2, 2, 2 }, { 1, 2, 2, 2 } },
      grad = { true, true, true }, atol = 1e-4,
    }
  end)
  it('x {2, 3, 4}, batch_axis {1, 2}, eps 0.1, gamma only', function()
    T.check {
      fn = function(x, g) return F.layer_normalization(x, nil, g, { batch_axis = { 1, 2 }, eps = 0.1 }) end,
      ref = function(x, g) return (tn_ref(x, key_of { 1, 2 }, nil, g, 0.1)) end,
      inputs = { { 2, 3, 4 }, { 1, 1, 4 } },
      grad = { true, true }, atol = 1e-4,
    }
  end)
  it('x {4, 5} without beta and gamma, batch_axis -2', function()
    T.check {
      fn = function(x) return F.layer_normalization(x, nil, nil, -2) end,
      ref = function(x) return (tn_ref(x, key_of { 1 }, nil, nil, 1e-5)) end,
      inputs = { { 4, 5 } }, grad = { true }, atol = 1e-4,
    }
  end)
  it('rejects bad shapes and flags', function()
    local V = nn.Variable
    local err = err_of(F.layer_normalization, V { 2, 3, 4 }, V { 1, 3, 1 }, V { 1, 3, 4 })
    assert.matches("F.layer_normalization: input 'beta' has shape {1, 3, 1}, expected {1, 3, 4} (x's shape with 1 on the batch axes; x {2, 3, 4})", err, 1, true)
    err = err_of(F.layer_normalization, V { 2, 3 }, V { 1, 3 }, nil, { no_bias = true })
    assert.matches("F.layer_normalization: input 'beta' is given but no_bias = true", err, 1, true)
    err = err_of(F.layer_normalization, V { 2, 3 }, nil, nil, { batch_axis = { 3 } })
    assert.matches('F.layer_normalization: batch_axis 3 is out of range for a 2-d input', err, 1, true)
    err = err_of(F.layer_normalization, V { 2, 3 }, nil, nil, { batch_axis = { 1, 1 } })
    assert.matches("argument 'batch_axis' names axis 1 twice", err, 1, true)
  end)
end)

describe('instance_normalization', function()
  it('x {2, 3, 2, 2}, beta/gamma {1, 3, 1, 1}', function()
    T.check {
      fn = function(x, b, g) return F.instance_normalization(x, b, g) end,
      ref = function(x, b, g) return (tn_ref(x, key_of { 1, 2 }, b, g, 1e-5)) end,
      inputs = { { 2, 3, 2, 2 }, { 1, 3, 1, 1 }, { 1, 3, 1, 1 } },
      grad = { true, true, true }, atol = 1e-4,
    }
  end)
  it('per-sample beta {2, 3, 1}, gamma {1, 3, 1}, channel_axis 2 of x {2, 3, 4}', function()
    T.check {
      fn = function(x, b, g) return F.instance_normalization(x, b, g, 2, { 1 }) end,
      ref = function(x, b, g) return (tn_ref(x, key_of { 1, 2 }, b, g, 1e-5)) end,
      inputs = { { 2, 3, 4 }, { 2, 3, 1 }, { 1, 3, 1 } },
      grad = { true, true, true }, atol = 1e-4,
    }
  end)
  it('channel last: x {2, 4, 3}, channel_axis -1', function()
    T.check {
      fn = function(x, b, g) return F.instance_normalization(x, b, g, { channel_axis = -1 }) end,
      ref = function(x, b, g) return (tn_ref(x, key_of { 1, 3 }, b, g, 1e-5)) end,
      inputs = { { 2, 4, 3 }, { 1, 1, 3 }, { 1, 1, 3 } },
      grad = { true, true, true }, atol = 1e-4,
    }
  end)
  it('rejects bad shapes', function()
    local V = nn.Variable
    local err = err_of(F.instance_normalization, V { 2, 3, 4 }, V { 1, 2, 1 })
    assert.matches("F.instance_normalization: input 'beta' has shape {1, 2, 1}, expected {2, 3, 1}", err, 1, true)
    err = err_of(F.instance_normalization, V { 2, 3, 4 }, nil, nil, { channel_axis = 1 })
    assert.matches('F.instance_normalization: channel_axis 1 is also a batch axis', err, 1, true)
  end)
end)

describe('group_normalization', function()
  it('x {2, 4, 3}, 2 groups, beta/gamma {1, 4, 1}', function()
    T.check {
      fn = function(x, b, g) return F.group_normalization(x, b, g, 2) end,
      ref = function(x, b, g)
        return (tn_ref(x, function(idx) return idx[1] .. ',' .. math.floor(idx[2] / 2) end, b, g, 1e-5))
      end,
      inputs = { { 2, 4, 3 }, { 1, 4, 1 }, { 1, 4, 1 } },
      grad = { true, true, true }, atol = 1e-4,
    }
  end)
  it('x {2, 6, 2, 2}, 3 groups', function()
    T.check {
      fn = function(x, b, g) return F.group_normalization(x, b, g, { num_groups = 3 }) end,
      ref = function(x, b, g)
        return (tn_ref(x, function(idx) return idx[1] .. ',' .. math.floor(idx[2] / 2) end, b, g, 1e-5))
      end,
      inputs = { { 2, 6, 2, 2 }, { 1, 6, 1, 1 }, { 1, 6, 1, 1 } },
      grad = { true, true, true }, atol = 1e-4,
    }
  end)
  it('one group equals layer normalization without affine', function()
    local x = nn.Variable.from(NdArray.randn { 3, 4, 2 })
    local a = F.group_normalization(x, nil, nil, 1)
    local b = F.layer_normalization(x)
    a:forward(); b:forward()
    T.assert_close(a.d, b.d, 1e-5, 1e-5, 'gn(1) = ln')
  end)
  it('rejects bad groups and shapes', function()
    local V = nn.Variable
    local err = err_of(F.group_normalization, V { 2, 6, 3 }, nil, nil, 4)
    assert.matches('F.group_normalization: x {2, 6, 3} has 6 channels (channel_axis 2), not a multiple of num_groups 4', err, 1, true)
    err = err_of(F.group_normalization, V { 2, 6, 3 }, V { 1, 6, 3 }, nil, 2)
    assert.matches("F.group_normalization: input 'beta' has shape {1, 6, 3}, expected {1, 6, 1}", err, 1, true)
    err = err_of(F.group_normalization, V { 2, 6, 3 }, nil, nil, 0)
    assert.matches('F.group_normalization: num_groups must be 1 or more, got 0', err, 1, true)
  end)
end)

describe('fused_batch_normalization', function()
  -- relu(bn(x) + z)
  local function fbn_ref(axes, batch_stat, eps)
    return function(x, b, g, m, v, z)
      local y
      if batch_stat then
        y = tn_ref(x, key_of(axes), b, g, eps)
      else
        y = x:copy()
        local px, py = x:ptr(), y:ptr()
        local i = 0
        each_index(x.shape, function(idx)
          local o = bcast_offset(m.shape, idx)
          py[i] = (px[i] - m:ptr()[o]) / math.sqrt(v:ptr()[o] + eps) * g:ptr()[o] + b:ptr()[o]
          i = i + 1
        end)
      end
      local py = y:ptr()
      for i = 0, y.size - 1 do
        local s = py[i] + (z and z:ptr()[i] or 0)
        py[i] = s > 0 and s or 0
      end
      return y
    end
  end
  local function init(i, s)
    if i == 5 then return NdArray.rand(s, 0.5, 2) end
    return NdArray.randn(s)
  end
  for _, batch_stat in ipairs { true, false } do
    it('x {4, 3, 2}, z, batch_stat=' .. tostring(batch_stat), function()
      T.check {
        fn = function(x, b, g, m, v, z) return F.fused_batch_normalization(x, b, g, m, v, z, { batch_stat = batch_stat }) end,
        ref = fbn_ref({ 2 }, batch_stat, 1e-5),
        inputs = { { 4, 3, 2 }, { 1, 3, 1 }, { 1, 3, 1 }, { 1, 3, 1 }, { 1, 3, 1 }, { 4, 3, 2 } },
        init = init,
        grad = { true, true, true, not batch_stat, not batch_stat, true }, atol = 1e-4,
      }
    end)
    it('x {5, 4} without z, axes {-1}, batch_stat=' .. tostring(batch_stat), function()
      T.check {
        fn = function(x, b, g, m, v) return F.fused_batch_normalization(x, b, g, m, v, nil, { -1 }, 0.9, 1e-5, batch_stat) end,
        ref = fbn_ref({ 2 }, batch_stat, 1e-5),
        inputs = { { 5, 4 }, { 1, 4 }, { 1, 4 }, { 1, 4 }, { 1, 4 } },
        init = init,
        grad = { true, true, true, not batch_stat, not batch_stat }, atol = 1e-4,
      }
    end)
  end
  it('non-adjacent kept axes {1, 3} of x {2, 3, 2}', function()
    T.check {
      fn = function(x, b, g, m, v) return F.fused_batch_normalization(x, b, g, m, v, nil, { axes = { 1, 3 } }) end,
      ref = fbn_ref({ 1, 3 }, true, 1e-5),
      inputs = { { 2, 3, 2 }, { 2, 1, 2 }, { 2, 1, 2 }, { 2, 1, 2 }, { 2, 1, 2 } },
      init = init, grad = { true, true, true, false, false }, atol = 1e-4,
    }
  end)

  it('equals relu(batch_normalization + z) and updates the running statistics the same way', function()
    local x = nn.Variable.from(NdArray.randn { 6, 3, 2 })
    local z = nn.Variable.from(NdArray.randn { 6, 3, 2 })
    local b, g = nn.Variable.from(NdArray.randn { 1, 3, 1 }), nn.Variable.from(NdArray.randn { 1, 3, 1 })
    local m1, v1 = nn.Variable.from(NdArray.randn { 1, 3, 1 }), nn.Variable.from(NdArray.rand({ 1, 3, 1 }, 0.5, 1))
    local m2, v2 = nn.Variable.from(m1.d:copy()), nn.Variable.from(v1.d:copy())
    local y1 = F.fused_batch_normalization(x, b, g, m1, v1, z, { decay_rate = 0.7 })
    local y2 = F.relu(F.batch_normalization(x, b, g, m2, v2, { decay_rate = 0.7 }) + z)
    y1:forward(); y2:forward()
    T.assert_close(y1.d, y2.d, 1e-5, 1e-5, 'output')
    T.assert_close(m1.d, m2.d, 1e-6, 1e-6, 'running mean')
    T.assert_close(v1.d, v2.d, 1e-6, 1e-6, 'running variance')
  end)

  it('rejects bad inputs', function()
    local V = nn.Variable
    local s = V { 1, 3, 1 }
    local err = err_of(F.fused_batch_normalization, V { 4, 3, 2 }, s, s, s, V { 3 })
    assert.matches("F.fused_batch_normalization: input 'variance' has shape {3}, expected {1, 3, 1}", err, 1, true)
    err = err_of(F.fused_batch_normalization, V { 4, 3, 2 }, s, s, s, s, V { 4, 3 })
    assert.matches("F.fused_batch_normalization: input 'z' has shape {4, 3} but x has shape {4, 3, 2}", err, 1, true)
    err = err_of(F.fused_batch_normalization, V { 4, 3, 2 }, s, s, s, s, nil, { nonlinearity = 'tanh' })
    assert.matches("argument 'nonlinearity' must be one of 'relu'", err, 1, true)
    err = err_of(F.fused_batch_normalization, V { 4, 3, 2 }, s, s, s)
    assert.matches("F.fused_batch_normalization: missing input 'variance'", err, 1, true)
  end)
end)

describe('weight_normalization', function()
  -- w_wn = g[j] * w / sqrt(sum over the other axes of w^2 + eps)
  local function wn_ref(dim, eps)
    return function(w, g)
      local y = w:copy()
      local pw, py, pg = w:ptr(), y:ptr(), g:ptr()
      local sq = {}
      local i = 0
      each_index(w.shape, function(idx)
        sq[idx[dim]] = (sq[idx[dim]] or 0) + pw[i] ^ 2
        i = i + 1
      end)
      i = 0
      each_index(w.shape, function(idx)
        py[i] = pg[idx[dim]] * pw[i] / math.sqrt(sq[idx[dim]] + eps)
        i = i + 1
      end)
      return y
    end
  end
  for _, c in ipairs { { w = { 4, 3 }, dim = 1 }, { w = { 2, 3, 2 }, dim = 2 }, { w = { 2, 2, 3 }, dim = -1 } } do
    it(('w %s dim %d'):format(nn.lib.shape_str(c.w), c.dim), function()
      local d = c.dim < 0 and #c.w + 1 + c.dim or c.dim
      T.check {
        fn = function(w, g) return F.weight_normalization(w, g, c.dim) end,
        ref = wn_ref(d, 1e-12),
        inputs = { c.w, { c.w[d] } },
        grad = { true, true }, atol = 1e-5,
      }
    end)
  end
  it('default dim 1 and a large eps', function()
    T.check {
      fn = function(w, g) return F.weight_normalization(w, g, { eps = 0.5 }) end,
      ref = wn_ref(1, 0.5),
      inputs = { { 3, 4 }, { 3 } }, grad = { true, true },
    }
  end)
  it('rejects bad shapes', function()
    local err = err_of(F.weight_normalization, nn.Variable { 4, 3 }, nn.Variable { 3 })
    assert.matches('F.weight_normalization: g has shape {3} but must be {4} (w {4, 3} at dim 1)', err, 1, true)
    err = err_of(F.weight_normalization, nn.Variable { 4, 3 }, nn.Variable { 4 }, { eps = 0 })
    assert.matches('F.weight_normalization: eps must be positive', err, 1, true)
  end)
end)

-- Backward of the identity-forward clippers, checked by hand: analytic value, accumulation
-- into a leaf and a clean overwrite of a NaN-filled intermediate gradient.
local function check_clip(build, x0, dy, want)
  local y = T.check_given_gradient(build, x0, dy, want, { atol = 1e-6, rtol = 1e-5, what = 'clipped gradient' })
  T.assert_close(y.d, x0, 0, 0, 'identity forward')
end

describe('clip_grad_by_value', function()
  it('forward is the identity (tester, no gradient check)', function()
    T.check { fn = function(x, lo, hi) return F.clip_grad_by_value(x, lo, hi) end,
      ref = function(x) return x end, inputs = { { 2, 3 }, { 2, 3 }, { 2, 3 } } }
  end)
  it('clips the gradient element-wise to [min, max]', function()
    local lo = nn.Variable.from(NdArray.full({ 2, 3 }, -1))
    local hi = nn.Variable.from { { 1, 1, 1 }, { 0.5, 0.5, 0.5 } }
    local dy = NdArray.from { { -3, 0.2, 2 }, { 0.7, -0.4, -5 } }
    check_clip(function(x) return F.clip_grad_by_value(x, lo, hi) end, NdArray.randn { 2, 3 }, dy,
      NdArray.from { { -1, 0.2, 1 }, { 0.5, -0.4, -1 } })
  end)
  it('gives min and max zero gradients', function()
    local x = nn.Variable.from(NdArray.randn { 3 }, { need_grad = true })
    local lo = nn.Variable.from({ -1, -1, -1 }, { need_grad = true })
    local hi = nn.Variable.from({ 1, 1, 1 }, { need_grad = true })
    local y = F.clip_grad_by_value(x, F.identity(lo), F.identity(hi))
    y:forward()
    lo.grad:zero(); hi.grad:zero()
    y:backward { grad = NdArray.from { 5, -5, 0 } }
    assert.same({ 1, -1, 0 }, x.g:flat())
    assert.same({ 0, 0, 0 }, lo.g:flat())
  end)
  it('rejects min/max of another shape', function()
    local err = err_of(F.clip_grad_by_value, nn.Variable { 2, 3 }, nn.Variable { 1, 3 }, nn.Variable { 2, 3 })
    assert.matches("F.clip_grad_by_value: input 'min' has shape {1, 3} but must have x's shape {2, 3}", err, 1, true)
  end)
end)

describe('clip_grad_by_norm', function()
  it('forward is the identity (tester, no gradient check)', function()
    T.check { fn = function(x) return F.clip_grad_by_norm(x, 2, { 2 }) end,
      ref = function(x) return x end, inputs = { { 2, 3 } } }
  end)
  it('rescales the whole gradient to clip_norm (axes nil)', function()
    local dy = NdArray.from { { 3, 0 }, { 0, 4 } }    -- norm 5
    check_clip(function(x) return F.clip_grad_by_norm(x) end, NdArray.randn { 2, 2 }, dy,
      NdArray.from { { 0.6, 0 }, { 0, 0.8 } })
    check_clip(function(x) return F.clip_grad_by_norm(x, 10, {}) end, NdArray.randn { 2, 2 }, dy,
      NdArray.from { { 6, 0 }, { 0, 8 } })
  end)
  it('rescales per row over axes {2}, small norms scaled up too (NNabla)', function()
    local dy = NdArray.from { { 3, 4 }, { 0.1, 0 }, { 0, 0 } }
    check_clip(function(x) return F.clip_grad_by_norm(x, 2, { axes = { 2 } }) end, NdArray.randn { 3, 2 }, dy,
      NdArray.from { { 1.2, 1.6 }, { 2, 0 }, { 0, 0 } })
  end)
  it('rejects bad axes', function()
    local err = err_of(F.clip_grad_by_norm, nn.Variable { 2, 3 }, 1, { 3 })
    assert.matches('F.clip_grad_by_norm: axes 3 is out of range for a 2-d input', err, 1, true)
  end)
end)
