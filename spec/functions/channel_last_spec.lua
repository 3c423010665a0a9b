-- channel_last = true (channels on the last axis, NNabla's option) for convolution,
-- deconvolution and the pooling functions: against the channel-first function on inputs
-- permuted by hand (a plain Lua permutation, not F.transpose), forward and backward; and
-- PF.convolution / PF.deconvolution creating their channel-last weights.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local PF = require 'nnlua.parametric_functions'
local NdArray = nn.NdArray
local V = nn.Variable
local C = nn.lib.C

-- y = x with its axes permuted: y.shape[k] = x.shape[perm[k]]
local function permute(x, perm)
  local xs, nd = x.shape, #x.shape
  local ys = {}
  for k = 1, nd do ys[k] = xs[perm[k]] end
  local y = NdArray.zeros(ys)
  local xst = {}
  local s = 1
  for k = nd, 1, -1 do xst[k] = s; s = s * xs[k] end
  local px, py = x:ptr(), y:ptr(C.NL_READWRITE)
  local idx = {}
  for j = 0, y.size - 1 do
    local r, off = j, 0
    for k = nd, 1, -1 do idx[k] = r % ys[k]; r = (r - idx[k]) / ys[k] end
    for k = 1, nd do off = off + idx[k] * xst[perm[k]] end
    py[j] = px[off]
  end
  return y
end
local function inverse(perm)
  local inv = {}
  for k, p in ipairs(perm) do inv[p] = k end
  return inv
end

local function assert_close(a, b, what)
  assert.are.same(b.shape, a.shape, what .. ': shape')
  local pa, pb = a:ptr(), b:ptr()
  for i = 0, a.size - 1 do
    assert.is_true(math.abs(pa[i] - pb[i]) <= 1e-4 * (1 + math.abs(pb[i])),
                   ('%s: element %d is %g, want %g'):format(what, i + 1, pa[i], pb[i]))
  end
end

-- fn(x, w, last) builds y; xperm: channel-last -> channel-first for x (and its inverse for
-- y); wperm for the weight (nil: none)
local function check(what, xshape, wshape, xperm, wperm, fn)
  nn.seed(7)
  local xl = V.from(NdArray.randn(xshape), { need_grad = true })
  local wl = wshape and V.from(NdArray.randn(wshape), { need_grad = true })
  local yl = fn(xl, wl, true)
  yl:forward()
  local xf = V.from(permute(xl.d, xperm), { need_grad = true })
  local wf = wshape and V.from(permute(wl.d, wperm), { need_grad = true })
  local yf = fn(xf, wf, false)
  yf:forward()
  local back = inverse(xperm)   -- channel-first -> channel-last for y
  assert_close(yl.d, permute(yf.d, back), what .. ' forward')
  local dy = NdArray.randn(yl.shape)
  xl.g = 0; xf.g = 0
  if wl then wl.g = 0; wf.g = 0 end
  yl:backward { grad = dy }
  yf:backward { grad = permute(dy, xperm) }
  assert_close(xl.g, permute(xf.g, back), what .. ' dx')
  if wl then assert_close(wl.g, permute(wf.g, inverse(wperm)), what .. ' dW') end
end

describe('channel_last = true', function()
  it('convolution: x (N, H, W, C), W (OC, KH, KW, C/g), with pad, stride, group and bias', function()
    local b = V.from(NdArray.randn({ 6 }))
    check('convolution', { 2, 5, 6, 4 }, { 6, 3, 2, 2 }, { 1, 4, 2, 3 }, { 1, 4, 2, 3 }, function(x, w, last)
      return F.convolution(x, w, b, { pad = { 1, 0 }, stride = { 2, 1 }, group = 2, channel_last = last })
    end)
  end)

  it('convolution: 1-d, base_axis 3, positional channel_last', function()
    check('convolution 1-d', { 2, 3, 7, 2 }, { 4, 3, 2 }, { 1, 2, 4, 3 }, { 1, 3, 2 }, function(x, w, last)
      return F.convolution(x, w, nil, 3, { 1 }, { 1 }, { 2 }, 1, last)
    end)
  end)

  it('deconvolution: W (C, KH, KW, OC/g)', function()
    check('deconvolution', { 2, 4, 3, 4 }, { 4, 3, 3, 1 }, { 1, 4, 2, 3 }, { 1, 4, 2, 3 }, function(x, w, last)
      return F.deconvolution(x, w, nil, { stride = { 2, 2 }, group = 2, channel_last = last })
    end)
  end)

  it('max, average and sum pooling and unpooling', function()
    local perm = { 1, 4, 2, 3 }
    check('max_pooling', { 2, 6, 5, 3 }, nil, perm, nil, function(x, _, last)
      return F.max_pooling(x, { 2, 2 }, { ignore_border = false, channel_last = last })
    end)
    check('average_pooling', { 2, 6, 5, 3 }, nil, perm, nil, function(x, _, last)
      return F.average_pooling(x, { 3, 2 }, { 1, 2 }, true, { 1, 1 }, last)
    end)
    check('sum_pooling', { 1, 4, 4, 2 }, nil, perm, nil, function(x, _, last)
      return F.sum_pooling(x, { 2, 2 }, { channel_last = last })
    end)
    check('unpooling', { 2, 3, 2, 3 }, nil, perm, nil, function(x, _, last)
      return F.unpooling(x, { 2, 3 }, { channel_last = last })
    end)
  end)

  it('PF.convolution and PF.deconvolution make channel-last weights and run', function()
    nn.clear_parameters()
    local x = V.from(NdArray.randn({ 2, 6, 6, 3 }))
    local y = PF.convolution(x, 8, { 3, 3 }, { pad = { 1, 1 }, channel_last = true, name = 'c' })
    local z = PF.deconvolution(y, 5, { 2, 2 }, { stride = { 2, 2 }, channel_last = true, name = 'd' })
    z:forward()
    assert.are.same({ 2, 6, 6, 8 }, y.shape)
    assert.are.same({ 2, 12, 12, 5 }, z.shape)
    assert.are.same({ 8, 3, 3, 3 }, nn.get_parameters()['c/conv/W'].shape)
    assert.are.same({ 8, 2, 2, 5 }, nn.get_parameters()['d/deconv/W'].shape)
  end)
end)

describe('channel_last = true, bad input', function()
  it('says when x has no spatial axes before the channel axis', function()
    local x, w = V.from(NdArray.randn({ 2, 3 })), V.from(NdArray.randn({ 4, 3 }))
    local ok, err = pcall(F.convolution, x, w, nil, { channel_last = true })
    assert.is_false(ok)
    assert.matches('F.convolution: channel_last = true: x {2, 3} has no spatial axes', tostring(err), 1, true)
  end)
end)
