-- Parametric functions: for every PF, the parameters it creates (NNabla's scope and
-- parameter names, shapes, need_grad flags, initial values), output shapes,
-- fix_parameters, name scoping, reuse, and clear errors naming PF.<name>.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local PF = require 'nnlua.parametric_functions'
local I = require 'nnlua.initializer'
local NdArray = nn.NdArray

local function randv(shape, opts) return nn.Variable.from(NdArray.randn(shape), opts) end

-- { name = {shape, need_grad} } of every parameter, in creation order as a list of names.
local function listing()
  local names, info = {}, {}
  for k, v in nn.get_parameters({ grad_only = false }):items() do
    names[#names + 1] = k
    info[k] = { shape = v.shape, need_grad = v.need_grad, v = v }
  end
  return names, info
end

local function range(v)
  local a = v.d
  return a:min(), a:max()
end

local function glorot(n, m, k) return select(2, I.calc_uniform_lim_glorot(n, m, k)) end

-- checks that values lie in [-lim, lim] and spread over most of it
local function assert_uniform(v, lim, what)
  local lo, hi = range(v)
  assert.is_true(lo >= -lim - 1e-6 and hi <= lim + 1e-6, ('%s: [%g, %g] outside +-%g'):format(what, lo, hi, lim))
  assert.is_true(hi > 0.5 * lim and lo < -0.5 * lim, ('%s: [%g, %g] too narrow for +-%g'):format(what, lo, hi, lim))
end

local function all_equal(v, value)
  for _, x in ipairs(v.d:flat()) do if x ~= value then return false end end
  return true
end

describe('parametric functions: parameters, shapes, initial values', function()
  before_each(function() nn.clear_parameters(); nn.seed(5) end)

  it('PF.affine: affine/W (in, out...), affine/b; n_outmaps may be a list; apply_w, apply_b', function()
    local x = randv({ 4, 3, 5 })
    local y = PF.affine(x, { 2, 6 })
    assert.same({ 4, 2, 6 }, y.shape)
    local names, p = listing()
    assert.same({ 'affine/W', 'affine/b' }, names)
    assert.same({ 15, 2, 6 }, p['affine/W'].shape)
    assert.same({ 2, 6 }, p['affine/b'].shape)
    assert_uniform(p['affine/W'].v, glorot(15, 12), 'W')
    assert.is_true(all_equal(p['affine/b'].v, 0))
    -- base_axis 3 flattens only the last axis
    local z = PF.affine(x, 7, 3, { name = 'b3' })
    assert.same({ 4, 3, 7 }, z.shape)
    assert.same({ 5, 7 }, nn.get_parameters()['b3/affine/W'].shape)
    -- apply_w / apply_b see the parameters and their results are used
    local seen = {}
    local y2 = PF.affine(x, 2, { name = 'ap', w_init = I.ConstantInitializer(1), b_init = I.ConstantInitializer(1),
      apply_w = function(w) seen.w = w.shape; return w * 0 end,
      apply_b = function(b) seen.b = b.shape; return b * 3 end })
    y2:forward()
    assert.same({ 15, 2 }, seen.w); assert.same({ 2 }, seen.b)
    assert.same({ 3, 3, 3, 3, 3, 3, 3, 3 }, y2.d:flat())
  end)

  it('PF.convolution: conv/W (out, in/group, k...), conv/b', function()
    local x = randv({ 2, 4, 7, 7 })
    local y = PF.convolution(x, 6, { 3, 3 }, { group = 2, pad = { 1, 1 } })
    assert.same({ 2, 6, 7, 7 }, y.shape)
    local names, p = listing()
    assert.same({ 'conv/W', 'conv/b' }, names)
    assert.same({ 6, 2, 3, 3 }, p['conv/W'].shape)
    assert_uniform(p['conv/W'].v, glorot(4, 6, { 3, 3 }), 'conv/W')
    assert.is_true(all_equal(p['conv/b'].v, 0))
  end)

  it('a PF call that fails leaves none of the parameters it created; the corrected call works', function()
    local x = randv({ 2, 1, 8, 8 })
    PF.affine(randv({ 2, 3 }), 4, { name = 'kept' })
    -- a 1-d kernel for a 2-d input: conv/W {4, 1, 3} is made, then F.convolution refuses it
    local ok, err = pcall(PF.convolution, x, 4, 3, { name = 'c1' })
    assert.is_false(ok)
    assert.matches('PF.convolution: F.convolution: weight {4, 1, 3} must have 4 dimensions', err, 1, true)
    assert.same({ 'kept/affine/W', 'kept/affine/b' }, (listing()))
    local y = PF.convolution(x, 4, { 3, 3 }, { name = 'c1' })
    assert.same({ 2, 4, 6, 6 }, y.shape)
    assert.same({ 'kept/affine/W', 'kept/affine/b', 'c1/conv/W', 'c1/conv/b' }, (listing()))
    -- an existing parameter of another shape is still an error, and is kept
    ok, err = pcall(PF.affine, randv({ 2, 5 }), 4, { name = 'kept' })
    assert.is_false(ok)
    assert.matches("parameter 'kept/affine/W' exists with shape {3, 4}, asked for {5, 4}", err, 1, true)
    assert.same({ 'kept/affine/W', 'kept/affine/b', 'c1/conv/W', 'c1/conv/b' }, (listing()))
  end)

  it('PF.deconvolution: deconv/W (in, out/group, k...), deconv/b (out); Glorot(out, in, k)', function()
    local x = randv({ 2, 4, 5, 5 })
    local y = PF.deconvolution(x, 6, { 3, 3 }, { stride = { 2, 2 }, group = 2 })
    assert.same({ 2, 6, 11, 11 }, y.shape)
    local names, p = listing()
    assert.same({ 'deconv/W', 'deconv/b' }, names)
    assert.same({ 4, 3, 3, 3 }, p['deconv/W'].shape)
    assert.same({ 6 }, p['deconv/b'].shape)
    assert.is_true(p['deconv/W'].need_grad and p['deconv/b'].need_grad)
    assert_uniform(p['deconv/W'].v, glorot(6, 4, { 3, 3 }), 'deconv/W')
    assert.is_true(all_equal(p['deconv/b'].v, 0))
    -- output_padding goes through
    local y2 = PF.deconvolution(x, 2, { 3, 3 }, { stride = { 2, 2 }, output_padding = { 1, 1 }, name = 'op' })
    assert.same({ 2, 2, 12, 12 }, y2.shape)
  end)

  it('PF.depthwise_convolution: depthwise_conv/W (in*multiplier, k...), b', function()
    local x = randv({ 2, 3, 6, 6 })
    local y = PF.depthwise_convolution(x, { 3, 3 }, { multiplier = 2, pad = { 1, 1 } })
    assert.same({ 2, 6, 6, 6 }, y.shape)
    local names, p = listing()
    assert.same({ 'depthwise_conv/W', 'depthwise_conv/b' }, names)
    assert.same({ 6, 3, 3 }, p['depthwise_conv/W'].shape)
    assert.same({ 6 }, p['depthwise_conv/b'].shape)
    assert_uniform(p['depthwise_conv/W'].v, glorot(6, 3, { 3, 3 }), 'depthwise_conv/W')
    PF.depthwise_convolution(x, { 5 }, { with_bias = false, name = 'nb', base_axis = 3 })
    assert.is_nil(nn.get_parameters()['nb/depthwise_conv/b'])
    assert.same({ 6, 5 }, nn.get_parameters()['nb/depthwise_conv/W'].shape)
  end)

  it('PF.batch_normalization: bn/beta, gamma (need_grad), mean, var (not); no_bias / no_scale omit them', function()
    local x = randv({ 4, 3, 2, 2 })
    local y = PF.batch_normalization(x)
    assert.same({ 4, 3, 2, 2 }, y.shape)
    local names, p = listing()
    assert.same({ 'bn/beta', 'bn/gamma', 'bn/mean', 'bn/var' }, names)
    for _, k in ipairs(names) do assert.same({ 1, 3, 1, 1 }, p[k].shape) end
    assert.is_true(p['bn/beta'].need_grad and p['bn/gamma'].need_grad)
    assert.is_false(p['bn/mean'].need_grad or p['bn/var'].need_grad)
    PF.batch_normalization(x, { no_bias = true, no_scale = true, name = 'plain', axes = { 2, 3 } })
    local n2, p2 = listing()
    assert.same({ 'bn/beta', 'bn/gamma', 'bn/mean', 'bn/var', 'plain/bn/mean', 'plain/bn/var' }, n2)
    assert.same({ 1, 3, 2, 1 }, p2['plain/bn/mean'].shape)
    -- param_init overrides
    PF.batch_normalization(x, { name = 'pi', param_init = { gamma = I.ConstantInitializer(2), var = I.ConstantInitializer(3) } })
    local _, p3 = listing()
    assert.is_true(all_equal(p3['pi/bn/gamma'].v, 2) and all_equal(p3['pi/bn/var'].v, 3))
  end)

  it('PF.fused_batch_normalization: the bn parameters, with a residual input z', function()
    local x, z = randv({ 8, 3, 2, 2 }), randv({ 8, 3, 2, 2 })
    local y = PF.fused_batch_normalization(x, z)
    assert.same({ 8, 3, 2, 2 }, y.shape)
    local names, p = listing()
    assert.same({ 'bn/beta', 'bn/gamma', 'bn/mean', 'bn/var' }, names)
    assert.is_true(p['bn/beta'].need_grad)
    assert.is_false(p['bn/mean'].need_grad)
    y:forward()
    assert.is_true(y.d:min() >= 0)   -- relu
    -- equals relu(bn(x) + z) built from PF.batch_normalization on the same parameters
    local ref = F.relu(PF.batch_normalization(x, { batch_stat = true }) + z)
    p['bn/mean'].v.d = 0; p['bn/var'].v.d = 1
    y:forward()
    local got = y.d:flat()
    p['bn/mean'].v.d = 0; p['bn/var'].v.d = 1
    ref:forward()
    local want = ref.d:flat()
    for i = 1, #want do assert.is_true(math.abs(want[i] - got[i]) < 1e-5) end
    -- without z, and with no_bias: gamma, mean, var only
    local y2 = PF.fused_batch_normalization(x, { no_bias = true, name = 'nz' })
    assert.same({ 8, 3, 2, 2 }, y2.shape)
    assert.is_nil(nn.get_parameters({ grad_only = false })['nz/bn/beta'])
    assert.is_not_nil(nn.get_parameters()['nz/bn/gamma'])
  end)

  it('PF.layer_normalization: beta, gamma with the input shape and 1 on the batch axes', function()
    local x = randv({ 4, 3, 5 })
    local y = PF.layer_normalization(x)
    assert.same({ 4, 3, 5 }, y.shape)
    local names, p = listing()
    assert.same({ 'layer_normalization/beta', 'layer_normalization/gamma' }, names)
    assert.same({ 1, 3, 5 }, p['layer_normalization/beta'].shape)
    assert.is_true(all_equal(p['layer_normalization/beta'].v, 0) and all_equal(p['layer_normalization/gamma'].v, 1))
    PF.layer_normalization(x, { batch_axis = { 1, 2 }, name = 'two' })
    assert.same({ 1, 1, 5 }, nn.get_parameters()['two/layer_normalization/gamma'].shape)
    y:forward()
    -- each sample normalized: mean 0 over its other axes
    local s = F.mean(y, { axis = { 2, 3 } })
    s:forward()
    for _, v in ipairs(s.d:flat()) do assert.is_true(math.abs(v) < 1e-5) end
  end)

  it('PF.instance_normalization and PF.group_normalization: beta, gamma (1, C, 1, ...)', function()
    local x = randv({ 2, 4, 3, 3 })
    local y = PF.instance_normalization(x)
    assert.same({ 2, 4, 3, 3 }, y.shape)
    local y2 = PF.group_normalization(x, 2)
    assert.same({ 2, 4, 3, 3 }, y2.shape)
    local names, p = listing()
    assert.same({ 'instance_normalization/beta', 'instance_normalization/gamma',
                  'group_normalization/beta', 'group_normalization/gamma' }, names)
    for _, k in ipairs(names) do
      assert.same({ 1, 4, 1, 1 }, p[k].shape)
      assert.is_true(p[k].need_grad)
    end
    PF.instance_normalization(randv({ 2, 3, 3, 5 }), { channel_axis = -1, name = 'last' })
    assert.same({ 1, 1, 1, 5 }, nn.get_parameters()['last/instance_normalization/beta'].shape)
    PF.group_normalization(x, 4, { no_scale = true, name = 'ns' })
    assert.is_nil(nn.get_parameters()['ns/group_normalization/gamma'])
    assert.is_not_nil(nn.get_parameters()['ns/group_normalization/beta'])
  end)

  it('PF.embed: embed/W (n_inputs, n_features) ~ U(-sqrt(3), sqrt(3))', function()
    local idx = nn.Variable.from({ { 0, 3 }, { 9, 1 } })
    local y = PF.embed(idx, 10, 400)
    assert.same({ 2, 2, 400 }, y.shape)
    local names, p = listing()
    assert.same({ 'embed/W' }, names)
    assert.same({ 10, 400 }, p['embed/W'].shape)
    assert.is_true(p['embed/W'].need_grad)
    assert_uniform(p['embed/W'].v, math.sqrt(3), 'embed/W')
    y:forward()
    -- row 9 (0-based) of W
    local W = p['embed/W'].v.d
    assert.equal(W:get(10, 7), y.d:get(2, 1, 7))
  end)

  it('PF.prelu: prelu/slope, shared {} or per channel {C}, 0.25', function()
    local x = randv({ 2, 3, 4 })
    local y = PF.prelu(x)
    local y2 = PF.prelu(x, { shared = false, name = 'pc' })
    local y3 = PF.prelu(x, 3, false, { name = 'b3' })
    assert.same({ 2, 3, 4 }, y.shape)
    local names, p = listing()
    assert.same({ 'prelu/slope', 'pc/prelu/slope', 'b3/prelu/slope' }, names)
    assert.same({}, p['prelu/slope'].shape)
    assert.same({ 3 }, p['pc/prelu/slope'].shape)
    assert.same({ 4 }, p['b3/prelu/slope'].shape)
    for _, k in ipairs(names) do assert.is_true(all_equal(p[k].v, 0.25) and p[k].need_grad) end
    x.d = -2
    y2:forward()
    assert.is_true(all_equal(y2, -0.5))
  end)

  it('PF.rnn: rnn/weight_l0 (D, H, I+H), weight (L-1, D, H, D*H+H), bias (L, D, H)', function()
    local x = randv({ 5, 3, 50 })
    local h = nn.Variable({ 2, 1, 3, 4 })
    local y, hn = PF.rnn(x, h)
    assert.same({ 5, 3, 4 }, y.shape)
    assert.same({ 2, 1, 3, 4 }, hn.shape)
    local names, p = listing()
    assert.same({ 'rnn/weight_l0', 'rnn/weight', 'rnn/bias' }, names)
    assert.same({ 1, 4, 54 }, p['rnn/weight_l0'].shape)
    assert.same({ 1, 1, 4, 8 }, p['rnn/weight'].shape)
    assert.same({ 2, 1, 4 }, p['rnn/bias'].shape)
    assert.is_true(all_equal(p['rnn/bias'].v, 0))
    -- input columns ~ U(glorot(I, H)), recurrent columns ~ U(glorot(H, H))
    local w0 = p['rnn/weight_l0'].v.d:reshape({ 4, 54 })
    local lim_ih, lim_hh = glorot(50, 4), glorot(4, 4)
    local max_ih, max_hh = 0, 0
    for r = 1, 4 do
      for c = 1, 54 do
        local v = math.abs(w0:get(r, c))
        if c <= 50 then max_ih = math.max(max_ih, v) else max_hh = math.max(max_hh, v) end
      end
    end
    assert.is_true(max_ih <= lim_ih + 1e-6 and max_ih > 0.8 * lim_ih, 'input columns ' .. max_ih)
    assert.is_true(max_hh <= lim_hh + 1e-6 and max_hh > lim_ih, 'recurrent columns ' .. max_hh)
    -- one layer, bidirectional, relu: no 'weight'
    local yb = PF.rnn(x, nn.Variable({ 1, 2, 3, 4 }), { bidirectional = true, nonlinearity = 'relu', name = 'bi' })
    assert.same({ 5, 3, 8 }, yb.shape)
    assert.is_nil(nn.get_parameters()['bi/rnn/weight'])
    assert.same({ 2, 4, 54 }, nn.get_parameters()['bi/rnn/weight_l0'].shape)
    yb:forward()
    assert.is_true(yb.d:min() >= 0)
  end)

  it('PF.lstm: lstm/weight_l0 (D, 4, H, I+H), weight (L-1, D, 4, H, D*H+H), bias (L, D, 4, H)', function()
    local x = randv({ 6, 2, 3 })
    local h, c = nn.Variable({ 3, 2, 2, 5 }), nn.Variable({ 3, 2, 2, 5 })
    local y, hn, cn = PF.lstm(x, h, c, { bidirectional = true })
    assert.same({ 6, 2, 10 }, y.shape)
    assert.same({ 3, 2, 2, 5 }, hn.shape)
    assert.same({ 3, 2, 2, 5 }, cn.shape)
    local names, p = listing()
    assert.same({ 'lstm/weight_l0', 'lstm/weight', 'lstm/bias' }, names)
    assert.same({ 2, 4, 5, 8 }, p['lstm/weight_l0'].shape)
    assert.same({ 2, 2, 4, 5, 15 }, p['lstm/weight'].shape)
    assert.same({ 3, 2, 4, 5 }, p['lstm/bias'].shape)
    assert_uniform(p['lstm/weight'].v, glorot(5, 5), 'lstm/weight')   -- glorot(D*H, H) < glorot(H, H)
    assert.is_true(all_equal(p['lstm/bias'].v, 0))
    for _, k in ipairs(names) do assert.is_true(p[k].need_grad) end
    y:forward()
    assert.is_true(y.d:max() < 1 and y.d:min() > -1)
    -- initializers given by the user; with_bias = false
    PF.lstm(x, nn.Variable({ 1, 1, 2, 5 }), nn.Variable({ 1, 1, 2, 5 }),
            { w0_init = I.ConstantInitializer(0.5), with_bias = false, name = 'u' })
    local q = nn.get_parameters()
    assert.is_true(all_equal(q['u/lstm/weight_l0'], 0.5))
    assert.is_nil(q['u/lstm/bias'])
  end)

  it('PF.gru: gru/weight_l0 (D, 3, H, I+H), weight (L-1, D, 3, H, D*H+H), bias (L, D, 4, H)', function()
    local x = randv({ 4, 2, 3 })
    local h = nn.Variable({ 2, 1, 2, 6 })
    local y, hn = PF.gru(x, h)
    assert.same({ 4, 2, 6 }, y.shape)
    assert.same({ 2, 1, 2, 6 }, hn.shape)
    local names, p = listing()
    assert.same({ 'gru/weight_l0', 'gru/weight', 'gru/bias' }, names)
    assert.same({ 1, 3, 6, 9 }, p['gru/weight_l0'].shape)
    assert.same({ 1, 1, 3, 6, 12 }, p['gru/weight'].shape)
    assert.same({ 2, 1, 4, 6 }, p['gru/bias'].shape)
    y:forward()
  end)

  it('PF.lstm_cell: lstm/affine/W (I+S, 4, S), lstm/affine/b (4, S); gates i, o, f, g', function()
    local x, h, c = randv({ 3, 2 }), randv({ 3, 4 }), randv({ 3, 4 })
    local h1, c1 = PF.lstm_cell(x, h, c, 4)
    assert.same({ 3, 4 }, h1.shape)
    assert.same({ 3, 4 }, c1.shape)
    local names, p = listing()
    assert.same({ 'lstm/affine/W', 'lstm/affine/b' }, names)
    assert.same({ 6, 4, 4 }, p['lstm/affine/W'].shape)
    assert.same({ 4, 4 }, p['lstm/affine/b'].shape)
    assert_uniform(p['lstm/affine/W'].v, glorot(6, 16), 'lstm/affine/W')
    -- numbers by hand: one input, state size 1
    local W = NdArray.from({ { { 0.5 }, { -0.3 }, { 0.8 }, { 0.2 } }, { { 0.1 }, { 0.4 }, { -0.6 }, { 0.7 } } })
    local b = NdArray.from({ { 0.05 }, { -0.1 }, { 0.2 }, { 0.3 } })
    local xv, hv, cv = 1.5, -0.5, 0.25
    local hh, cc = PF.lstm_cell(nn.Variable.from({ { xv } }), nn.Variable.from({ { hv } }), nn.Variable.from({ { cv } }), 1,
                                { w_init = W, b_init = b, name = 'hand' })
    F.sink(hh, cc):forward()
    local function sig(v) return 1 / (1 + math.exp(-v)) end
    local pre = {}
    for g = 1, 4 do pre[g] = W:get(1, g, 1) * xv + W:get(2, g, 1) * hv + b:get(g, 1) end
    local c_want = sig(pre[3]) * cv + sig(pre[1]) * math.tanh(pre[4])
    local h_want = sig(pre[2]) * math.tanh(c_want)
    assert.is_true(math.abs(cc.d:item() - c_want) < 1e-5, cc.d:item() .. ' vs ' .. c_want)
    assert.is_true(math.abs(hh.d:item() - h_want) < 1e-5, hh.d:item() .. ' vs ' .. h_want)
  end)

  it('PF.LSTMCell keeps the state and shares the cell parameters across steps', function()
    local cell = PF.LSTMCell(2, 3, nil, nil, 'cell')
    local x = randv({ 2, 5 })
    local h1 = cell(x)
    local h2 = cell(x)
    assert.same({ 2, 3 }, h2.shape)
    assert.is_true(cell.h == h2)
    assert.same({ 'cell/lstm/affine/W', 'cell/lstm/affine/b' }, nn.get_parameters():keys())
    h2:forward()
    assert.is_true(h2.d:max() ~= 0)
    assert.is_not_nil(h1)
  end)
end)

describe('parametric functions: output_stat', function()
  -- mean and biased variance of x (flat, row-major, shape sh) over the axes not in keep,
  -- at the kept position given by the function pick(index tuple) -> key
  local function stats_ref(x, sh, keep)
    local p = x.d:ptr()
    local sums, sq, cnt = {}, {}, {}
    local n = x.size
    local idx = {}
    for flat = 0, n - 1 do
      local r = flat
      for k = #sh, 1, -1 do idx[k] = r % sh[k]; r = (r - idx[k]) / sh[k] end
      local key = 0
      for k = 1, #sh do key = key * sh[k] + (keep[k] and idx[k] or 0) end
      sums[key] = (sums[key] or 0) + p[flat]
      cnt[key] = (cnt[key] or 0) + 1
    end
    for flat = 0, n - 1 do
      local r = flat
      for k = #sh, 1, -1 do idx[k] = r % sh[k]; r = (r - idx[k]) / sh[k] end
      local key = 0
      for k = 1, #sh do key = key * sh[k] + (keep[k] and idx[k] or 0) end
      local m = sums[key] / cnt[key]
      sq[key] = (sq[key] or 0) + (p[flat] - m) ^ 2
    end
    local mean, var = {}, {}
    for key, s in pairs(sums) do mean[key] = s / cnt[key]; var[key] = sq[key] / cnt[key] end
    return mean, var
  end

  local function check(got, want, sh, keep)
    local p = got.d:ptr()
    local j = 0
    -- got has sh with 1 on the reduced axes; walk it in row-major order
    local gs = {}
    for k = 1, #sh do gs[k] = keep[k] and sh[k] or 1 end
    for flat = 0, got.size - 1 do
      local r, key, idx = flat, 0, {}
      for k = #gs, 1, -1 do idx[k] = r % gs[k]; r = (r - idx[k]) / gs[k] end
      for k = 1, #sh do key = key * sh[k] + (keep[k] and idx[k] or 0) end
      assert.is_true(math.abs(p[flat] - want[key]) < 1e-4 * (1 + math.abs(want[key])),
                     ('element %d: %g, want %g'):format(flat + 1, p[flat], want[key]))
      j = j + 1
    end
    assert.are.same(gs, got.shape)
    return j
  end

  it('PF.batch_normalization returns y and the batch mean and variance it normalized with', function()
    nn.clear_parameters()
    nn.seed(1)
    local x = nn.Variable.from(nn.NdArray.randn({ 3, 4, 2, 2 }))
    local y, m, v = PF.batch_normalization(x, { output_stat = true })
    F.sink(y, m, v):forward()
    local sh, keep = { 3, 4, 2, 2 }, { [2] = true }
    local mean, var = stats_ref(x, sh, keep)
    assert.are.equal(4, check(m, mean, sh, keep))
    check(v, var, sh, keep)
    -- y is normalized with exactly these: (x - m) / sqrt(v + eps) (gamma 1, beta 0)
    local px, py, pm, pv = x.d:ptr(), y.d:ptr(), m.d:ptr(), v.d:ptr()
    for i = 0, x.size - 1 do
      local c = math.floor(i / 4) % 4
      local want = (px[i] - pm[c]) / math.sqrt(pv[c] + 1e-5)
      assert.is_true(math.abs(py[i] - want) < 1e-4)
    end
  end)

  it('the statistics are differentiable: d(sum of var)/dx by finite differences', function()
    nn.clear_parameters()
    nn.seed(2)
    local x = nn.Variable.from(nn.NdArray.randn({ 4, 3 }), { need_grad = true })
    local _, _, v = PF.batch_normalization(x, { output_stat = true })
    local l = F.sum(v)
    l:forward()
    x.g = 0
    l:backward()
    local p, g = x.d:ptr(nn.lib.C.NL_READWRITE), x.g:ptr()
    for i = 0, x.size - 1 do
      local keep = p[i]
      p[i] = keep + 1e-2; l:forward(); local up = l.d:item()
      p[i] = keep - 1e-2; l:forward(); local dn = l.d:item()
      p[i] = keep
      assert.is_true(math.abs((up - dn) / 2e-2 - g[i]) < 2e-2, ('element %d'):format(i + 1))
    end
  end)

  it('PF.layer_normalization (per sample), PF.instance_normalization (per sample and channel)', function()
    nn.clear_parameters()
    nn.seed(3)
    local sh = { 2, 3, 4 }
    local x = nn.Variable.from(nn.NdArray.randn(sh))
    local y1, m1, v1 = PF.layer_normalization(x, { output_stat = true })
    local y2, m2, v2 = PF.instance_normalization(x, { output_stat = true })
    F.sink(y1, m1, v1, y2, m2, v2):forward()
    local mean, var = stats_ref(x, sh, { true })
    check(m1, mean, sh, { true })
    check(v1, var, sh, { true })
    mean, var = stats_ref(x, sh, { true, true })
    check(m2, mean, sh, { true, true })
    check(v2, var, sh, { true, true })
  end)
end)

describe('parametric functions: fix_parameters, scopes, reuse', function()
  before_each(function() nn.clear_parameters(); nn.seed(6) end)

  local img, seq = { 2, 4, 6, 6 }, { 3, 2, 4 }
  local cases = {
    affine = function(o) return PF.affine(randv(img), 3, o) end,
    convolution = function(o) return PF.convolution(randv(img), 3, { 3, 3 }, o) end,
    deconvolution = function(o) return PF.deconvolution(randv(img), 3, { 3, 3 }, o) end,
    depthwise_convolution = function(o) return PF.depthwise_convolution(randv(img), { 3, 3 }, o) end,
    batch_normalization = function(o) return PF.batch_normalization(randv(img), o) end,
    fused_batch_normalization = function(o) return PF.fused_batch_normalization(randv(img), o) end,
    layer_normalization = function(o) return PF.layer_normalization(randv(img), o) end,
    instance_normalization = function(o) return PF.instance_normalization(randv(img), o) end,
    group_normalization = function(o) return PF.group_normalization(randv(img), 2, o) end,
    embed = function(o) return PF.embed(nn.Variable.from({ 1, 2 }), 4, 3, o) end,
    prelu = function(o) return PF.prelu(randv(img), o) end,
    rnn = function(o) return PF.rnn(randv(seq), nn.Variable({ 2, 1, 2, 5 }), o) end,
    lstm = function(o) return PF.lstm(randv(seq), nn.Variable({ 2, 1, 2, 5 }), nn.Variable({ 2, 1, 2, 5 }), o) end,
    gru = function(o) return PF.gru(randv(seq), nn.Variable({ 2, 1, 2, 5 }), o) end,
    lstm_cell = function(o) return PF.lstm_cell(randv({ 2, 4 }), randv({ 2, 5 }), randv({ 2, 5 }), 5, o) end,
  }
  local names = {}
  for k in pairs(cases) do names[#names + 1] = k end
  table.sort(names)

  it('every PF has a signature for the reference page and the REPL', function()
    for _, k in ipairs(names) do
      assert.is_string(PF._signatures[k], k)
      assert.matches('^PF%.' .. k .. '%(', PF._signatures[k])
    end
    assert.matches('PF.lstm_cell(x, h, c, state_size, w_init=nil', PF._signatures.lstm_cell, 1, true)
    assert.matches('PF.deconvolution(inp, outmaps, kernel, pad=nil', PF._signatures.deconvolution, 1, true)
  end)

  it('fix_parameters: the output does not need grad, the registered parameters keep need_grad', function()
    for _, k in ipairs(names) do
      nn.clear_parameters()
      local y = cases[k]({ fix_parameters = true })
      assert.is_false(y.need_grad, k .. ' output needs grad')
      local n = 0
      for pname, v in nn.get_parameters():items() do
        n = n + 1
        assert.is_true(v.need_grad, k .. ': ' .. pname)
      end
      assert.is_true(n > 0, k .. ' created no trainable parameter')
      -- and without it, the output needs grad through the parameters
      local y2 = cases[k]({ name = 'free' })
      assert.is_true(y2.need_grad, k .. ' output without fix_parameters')
    end
  end)

  it('fix_parameters: backward leaves the parameter gradients alone', function()
    local x = randv({ 4, 3 }, { need_grad = true })
    local y = F.sum(PF.affine(x, 2, { fix_parameters = true }))
    local W = nn.get_parameters()['affine/W']
    W.g = 0
    y:forward(); y:backward()
    assert.equal(0, W.g:sum())
    assert.is_true(math.abs(x.g:sum()) > 0)
  end)

  it('{name = ...} adds an outer scope, inside nn.parameter_scope too', function()
    for _, k in ipairs(names) do
      nn.clear_parameters()
      nn.parameter_scope('net', function() cases[k]({ name = 'layer1' }) end)
      for pname in nn.get_parameters({ grad_only = false }):items() do
        assert.matches('^net/layer1/[%w_]+/', pname, nil, k)
      end
    end
  end)

  it('calling twice in the same scope reuses the parameters', function()
    for _, k in ipairs(names) do
      nn.clear_parameters()
      nn.parameter_scope('s', function() cases[k]() end)
      local first = nn.get_parameters({ grad_only = false })
      local snapshot = {}
      for pname, v in first:items() do snapshot[pname] = v.d:flat() end
      nn.parameter_scope('s', function() cases[k]() end)
      local second = nn.get_parameters({ grad_only = false })
      assert.same(first:keys(), second:keys(), k)
      for pname, v in second:items() do
        assert.is_true(v == first[pname], k .. ': ' .. pname .. ' is a new variable')
        assert.same(snapshot[pname], v.d:flat(), k .. ': ' .. pname .. ' was re-initialized')
      end
    end
  end)

  it('parameters are trained through the PF outputs (gradients reach them)', function()
    local x = randv({ 4, 3, 5, 5 })
    local h = PF.convolution(x, 4, { 3, 3 }, { pad = { 1, 1 }, name = 'c' })
    h = PF.batch_normalization(h, { name = 'b' })
    h = PF.prelu(h, { shared = false })
    h = PF.group_normalization(h, 2)
    h = PF.deconvolution(h, 2, { 2, 2 }, { stride = { 2, 2 } })
    local loss = F.mean(h * h)
    loss:forward()
    loss:backward()
    for pname, v in nn.get_parameters():items() do
      assert.is_true(v.g:abs():max() > 0, pname .. ' got no gradient')
    end
  end)

  it('nn.seed makes PF initial values reproducible', function()
    local function make()
      nn.clear_parameters()
      nn.seed(42)
      PF.lstm(randv(seq), nn.Variable({ 1, 1, 2, 5 }), nn.Variable({ 1, 1, 2, 5 }))
      PF.convolution(randv(img), 3, { 3, 3 })
      local t = {}
      for k, v in nn.get_parameters():items() do t[k] = v.d:flat() end
      return t
    end
    assert.same(make(), make())
  end)
end)

describe('parametric functions: bad arguments', function()
  before_each(function() nn.clear_parameters() end)

  local x4 = nn.Variable({ 2, 4, 6, 6 })
  local xs, hs = nn.Variable({ 3, 2, 4 }), nn.Variable({ 1, 1, 2, 5 })
  local bad = {
    { 'PF.affine', function() return PF.affine(x4) end, "missing argument 'n_outmaps'" },
    { 'PF.affine', function() return PF.affine(x4, 0) end, 'n_outmaps must be a positive integer' },
    { 'PF.affine', function() return PF.affine(x4, 3, 5) end, 'base_axis 5 is out of range for a 4-d input' },
    { 'PF.affine', function() return PF.affine({ 1, 2 }, 3) end, 'the input must be a Variable' },
    { 'PF.affine', function() return PF.affine(x4, 3, { nmae = 'x' }) end, "unknown option 'nmae'" },
    { 'PF.affine', function() return PF.affine(x4, 3, { name = 5 }) end, "option 'name' must be a string" },
    { 'PF.convolution', function() return PF.convolution(x4, 3, 'x') end, 'kernel must be a list of sizes' },
    { 'PF.convolution', function() return PF.convolution(x4, 3, { 3, 3 }, { group = 3 }) end,
      '4 input channels are not divisible by group 3' },
    { 'PF.convolution', function() return PF.convolution(x4, 3, { 3, 3 }, { pad = 'x' }) end,
      "F.convolution: argument 'pad' must be a list" },
    { 'PF.deconvolution', function() return PF.deconvolution(x4, 3, { 3, 3 }, { group = 2 }) end,
      'outmaps 3 is not divisible by group 2' },
    { 'PF.deconvolution', function() return PF.deconvolution(x4, 3, { 3, 0 }) end, 'kernel entry 2 must be a positive integer' },
    { 'PF.depthwise_convolution', function() return PF.depthwise_convolution(x4, { 3, 3 }, { multiplier = 0 }) end,
      'multiplier must be a positive integer' },
    { 'PF.batch_normalization', function() return PF.batch_normalization(x4, { axes = { 7 } }) end,
      'axis 7 is out of range' },
    { 'PF.batch_normalization', function() return PF.batch_normalization(x4, { param_init = { gama = 1 } }) end,
      "unknown param_init key 'gama'" },
    { 'PF.batch_normalization', function() return PF.batch_normalization(x4, { output_stat = true, batch_stat = false }) end,
      'output_stat = true needs batch_stat = true' },
    { 'PF.group_normalization', function() return PF.group_normalization(x4, 2, { output_stat = true }) end,
      'output_stat = true is not supported' },
    { 'PF.fused_batch_normalization', function() return PF.fused_batch_normalization(x4, 3) end,
      'z (the residual input) must be a Variable' },
    { 'PF.layer_normalization', function() return PF.layer_normalization(x4, { batch_axis = 0 }) end,
      'batch_axis 0 is out of range' },
    { 'PF.instance_normalization', function() return PF.instance_normalization(x4, { channel_axis = 1 }) end,
      'channel_axis 1 is also a batch axis' },
    { 'PF.group_normalization', function() return PF.group_normalization(x4, 3) end,
      '4 channels are not divisible by num_groups 3' },
    { 'PF.group_normalization', function() return PF.group_normalization(x4) end, "missing argument 'num_groups'" },
    { 'PF.embed', function() return PF.embed(x4, 10) end, "missing argument 'n_features'" },
    { 'PF.prelu', function() return PF.prelu(x4, 9) end, 'base_axis 9 is out of range' },
    { 'PF.rnn', function() return PF.rnn(nn.Variable({ 3, 4 }), hs) end, 'x must be 3-d (T, B, I)' },
    { 'PF.rnn', function() return PF.rnn(xs, nn.Variable({ 1, 2, 5 })) end, 'h must be 4-d (L, D, B, H)' },
    { 'PF.rnn', function() return PF.rnn(xs, hs, { bidirectional = true }) end, 'bidirectional = true needs 2' },
    { 'PF.rnn', function() return PF.rnn(xs, hs, { num_layers = 3 }) end, 'num_layers = 3 but h has 1 layer' },
    { 'PF.rnn', function() return PF.rnn(xs, hs, { nonlinearity = 'sigmoid' }) end, "F.rnn: argument 'nonlinearity' must be one of" },
    { 'PF.lstm', function() return PF.lstm(xs, hs, nn.Variable({ 1, 1, 2, 4 })) end, 'h and c must have the same shape' },
    { 'PF.lstm', function() return PF.lstm(xs, hs) end, 'c must be a Variable' },
    { 'PF.lstm', function() return PF.lstm(xs, hs, hs, 5) end, 'is PF.lstm_cell' },
    { 'PF.gru', function() return PF.gru(xs, nn.Variable({ 1, 1, 3, 5 })) end, 'h has batch size 3 but x has 2' },
    { 'PF.lstm_cell', function() return PF.lstm_cell(nn.Variable({ 2, 3 }), nn.Variable({ 2, 4 }), nn.Variable({ 2, 4 }), 5) end,
      'expects x (B, I), h and c (B, state_size = 5)' },
    -- flags are booleans (a string or a number was taken as true: with_bias = 'no' made a bias)
    { 'PF.affine', function() return PF.affine(x4, 3, { with_bias = 'no' }) end, "'with_bias' must be a boolean (true or false), got 'no'" },
    { 'PF.convolution', function() return PF.convolution(x4, 3, { 3, 3 }, { fix_parameters = 1 }) end,
      "'fix_parameters' must be a boolean (true or false), got number" },
    { 'PF.batch_normalization', function() return PF.batch_normalization(x4, { batch_stat = 'false' }) end,
      "'batch_stat' must be a boolean" },
    { 'PF.affine', function() return PF.affine(x4, 3, { apply_w = 5 }) end, "'apply_w' must be a function of the parameter Variable, got number" },
    { 'PF.affine', function() return PF.affine(x4, 3, { apply_b = function() end }) end, 'apply_b returned nil, not a Variable' },
    -- an initial value must have the parameter's shape, not only its size
    { 'PF.affine', function() return PF.affine(x4, 3, { w_init = NdArray.ones({ 3, 144 }) }) end,
      'the initializer gave shape {3, 144} for a parameter of shape {144, 3}' },
    { 'PF.affine', function() return PF.affine(x4, 3, { w_init = 'glorot' }) end, 'the initializer is a string' },
  }

  it('are errors that name PF.<name> and say what is wrong', function()
    for _, case in ipairs(bad) do
      local ok, err = pcall(case[2])
      assert.is_false(ok, case[1] .. ' accepted ' .. case[3])
      assert.matches(case[1] .. ': ', err, 1, true)
      assert.matches(case[3], err, 1, true)
    end
  end)

  it('a w_init of the right size but the wrong shape creates nothing; the right shape is used as given', function()
    local x = nn.Variable({ 2, 3 })
    local wt = NdArray.from({ { 1, 2, 3 }, { 4, 5, 6 } })      -- {2, 3}: W is {3, 2}
    local ok = pcall(PF.affine, x, 2, { w_init = wt })
    assert.is_false(ok)
    assert.equal(0, #nn.get_parameters())
    PF.affine(x, 2, { w_init = NdArray.from({ { 1, 4 }, { 2, 5 }, { 3, 6 } }), b_init = 0.5 })
    assert.same({ 1, 4, 2, 5, 3, 6 }, nn.get_parameters()['affine/W'].d:flat())
    assert.same({ 0.5, 0.5 }, nn.get_parameters()['affine/b'].d:flat())
    -- with_bias = false (a real boolean) still omits the bias
    PF.affine(x, 2, { name = 'nb', with_bias = false })
    assert.is_nil(nn.get_parameters()['nb/affine/b'])
  end)

  it('point at the line that called the PF', function()
    local ok, err = pcall(function() PF.convolution(x4, 3, { 3, 3 }, { group = 3 }) end)
    assert.is_false(ok)
    assert.matches('parametric_spec%.lua:%d+: PF%.convolution: ', err)
    ok, err = pcall(function() PF.affine(x4, 3, { pad = 1 }) end)
    assert.matches('parametric_spec%.lua:%d+: PF%.affine: unknown option', err)
  end)
end)
