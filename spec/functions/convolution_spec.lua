-- F.convolution through the function tester, against a direct (non-GEMM) reference.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local each_index, offset = R.each_index, R.offset

-- y[n, oc, o...] = b[oc] + sum_{c, k...} x[n, g*Cg + c, o*s - p + k*d] * w[oc, c, k...]
local function conv_ref(o)
  return function(x, w, b)
    local ba = o.base_axis or 2
    local sd = x.ndim - ba
    local group = o.group or 1
    local outer = 1
    for d = 1, ba - 1 do outer = outer * x.shape[d] end
    local C, OC = x.shape[ba], w.shape[1]
    local Cg, OCg = C / group, OC / group
    local ins, ks, outs, pad, stride, dil = {}, {}, {}, {}, {}, {}
    for i = 1, sd do
      ins[i] = x.shape[ba + i]
      ks[i] = w.shape[2 + i]
      pad[i] = o.pad and o.pad[i] or 0
      stride[i] = o.stride and o.stride[i] or 1
      dil[i] = o.dilation and o.dilation[i] or 1
      outs[i] = math.floor((ins[i] + 2 * pad[i] - dil[i] * (ks[i] - 1) - 1) / stride[i]) + 1
    end
    local shape = {}
    for d = 1, ba - 1 do shape[d] = x.shape[d] end
    shape[ba] = OC
    for i = 1, sd do shape[ba + i] = outs[i] end
    local px, pw, pb = x:ptr(), w:ptr(), b and b:ptr()
    local xdims = { outer, C }
    local wdims = { OC, Cg }
    for i = 1, sd do xdims[2 + i] = ins[i]; wdims[2 + i] = ks[i] end
    local flat = {}
    for n = 0, outer - 1 do
      for oc = 0, OC - 1 do
        local g = math.floor(oc / OCg)
        each_index(outs, function(op)
          local s = pb and pb[oc] or 0
          for c = 0, Cg - 1 do
            each_index(ks, function(kp)
              local xi = { n, g * Cg + c }
              for i = 1, sd do
                local p = op[i] * stride[i] - pad[i] + kp[i] * dil[i]
                if p < 0 or p >= ins[i] then return end
                xi[2 + i] = p
              end
              local wi = { oc, c }
              for i = 1, sd do wi[2 + i] = kp[i] end
              s = s + px[offset(xdims, xi)] * pw[offset(wdims, wi)]
            end)
          end
          flat[#flat + 1] = s
        end)
      end
    end
    return NdArray.from_flat(flat, shape)
  end
end

describe('convolution', function()
  local cases = {
    { name = '2-d, bias, defaults', x = { 2, 3, 5, 5 }, w = { 4, 3, 3, 3 }, b = { 4 }, o = {} },
    { name = '2-d, pad {1, 1}, stride {2, 2}', x = { 1, 2, 5, 6 }, w = { 3, 2, 3, 3 }, b = { 3 },
      o = { pad = { 1, 1 }, stride = { 2, 2 } } },
    { name = '2-d, dilation {2, 1}, pad {1, 0}, no bias', x = { 1, 2, 6, 5 }, w = { 2, 2, 2, 3 },
      o = { pad = { 1, 0 }, dilation = { 2, 1 } } },
    { name = '2-d, stride {1, 2}, dilation {1, 2}, pad {2, 1}', x = { 2, 1, 4, 7 }, w = { 2, 1, 3, 2 }, b = { 2 },
      o = { pad = { 2, 1 }, stride = { 1, 2 }, dilation = { 1, 2 } } },
    { name = '2-d, group 2, pad {1, 1}', x = { 2, 4, 4, 4 }, w = { 6, 2, 3, 3 }, b = { 6 },
      o = { pad = { 1, 1 }, group = 2 } },
    { name = '1-d, pad {1}, stride {2}', x = { 2, 3, 7 }, w = { 4, 3, 3 }, b = { 4 },
      o = { pad = { 1 }, stride = { 2 } } },
    { name = '1-d, dilation {2}, no bias', x = { 1, 2, 9 }, w = { 2, 2, 3 }, o = { dilation = { 2 } } },
    { name = '1-d, group 3', x = { 2, 3, 5 }, w = { 3, 1, 2 }, b = { 3 }, o = { group = 3 } },
    { name = 'base_axis 3: x {2, 2, 3, 4, 4}', x = { 2, 2, 3, 4, 4 }, w = { 2, 3, 2, 2 }, b = { 2 },
      o = { base_axis = 3, pad = { 1, 0 } } },
    { name = 'base_axis 1: one sample x {2, 5, 5}', x = { 2, 5, 5 }, w = { 3, 2, 3, 3 }, b = { 3 },
      o = { base_axis = 1 } },
    { name = '1x1 kernel (the direct GEMM path)', x = { 2, 3, 4, 4 }, w = { 5, 3, 1, 1 }, b = { 5 }, o = {} },
    { name = '1x1 kernel, group 3, no bias', x = { 2, 3, 3, 3 }, w = { 3, 1, 1, 1 }, o = { group = 3 } },
    { name = '1x1 kernel with stride {2, 2}', x = { 1, 2, 5, 5 }, w = { 2, 2, 1, 1 }, o = { stride = { 2, 2 } } },
    { name = '3-d, pad {1, 0, 1}, stride {1, 2, 1}', x = { 1, 2, 3, 4, 4 }, w = { 2, 2, 2, 2, 2 }, b = { 2 },
      o = { pad = { 1, 0, 1 }, stride = { 1, 2, 1 } } },
    -- batches of 8 or more with small maps and few channels: conv_batchvec.c (the batch as
    -- the vector axis; 32-sample blocks, 8-sample tails, padded lanes past the batch)
    { name = 'batch 10, 2-d, pad {1, 1} (batch-vector path)', x = { 10, 3, 5, 5 }, w = { 4, 3, 3, 3 }, b = { 4 },
      o = { pad = { 1, 1 } } },
    { name = 'batch 9, 1 -> 4 channels, pad {1, 1}, stride {2, 2} (the tutorial conv1)', x = { 9, 1, 8, 8 },
      w = { 4, 1, 3, 3 }, b = { 4 }, o = { pad = { 1, 1 }, stride = { 2, 2 } } },
    { name = 'batch 40, 4 -> 8 channels, pad {1, 1} (the tutorial conv2; a 32-block and a tail)', x = { 40, 4, 4, 4 },
      w = { 8, 4, 3, 3 }, b = { 8 }, o = { pad = { 1, 1 } } },
    { name = 'batch 33, stride {1, 2}, dilation {2, 1}, pad {2, 1}, no bias', x = { 33, 2, 6, 7 },
      w = { 3, 2, 3, 2 }, o = { pad = { 2, 1 }, stride = { 1, 2 }, dilation = { 2, 1 } } },
    { name = 'batch 8, 1-d, pad {1}, stride {2}', x = { 8, 3, 7 }, w = { 4, 3, 3 }, b = { 4 },
      o = { pad = { 1 }, stride = { 2 } } },
    { name = 'base_axis 3, 12 samples: x {4, 3, 2, 5, 5}', x = { 4, 3, 2, 5, 5 }, w = { 3, 2, 2, 2 }, b = { 3 },
      o = { base_axis = 3, pad = { 1, 0 } } },
  }
  for _, c in ipairs(cases) do
    it(c.name, function()
      local inputs, grad = { c.x, c.w }, { true, true }
      if c.b then inputs[3] = c.b; grad[3] = true end
      local o = c.o
      T.check {
        fn = function(x, w, b)
          return F.convolution(x, w, b, o.base_axis, o.pad, o.stride, o.dilation, o.group)
        end,
        ref = conv_ref(o),
        inputs = inputs,
        grad = grad,
      }
    end)
  end

  it('takes NNabla-named options', function()
    local x = nn.Variable.from(NdArray.randn({ 1, 2, 5, 5 }))
    local w = nn.Variable.from(NdArray.randn({ 2, 1, 3, 3 }))
    local y = F.convolution(x, w, { pad = { 1, 1 }, stride = { 2, 2 }, group = 2 })
    assert.same({ 1, 2, 3, 3 }, y.shape)
    y:forward()
    T.assert_close(y.d, conv_ref { pad = { 1, 1 }, stride = { 2, 2 }, group = 2 }(x.d, w.d), 1e-5, 1e-4, 'named options')
  end)

  it('golden: 1..9 in 3x3 with a 2x2 kernel of ones gives {12, 16, 24, 28}', function()
    local x = nn.Variable.from(NdArray.arange(9):reshape({ 1, 1, 3, 3 }))
    local w = nn.Variable.from(NdArray.ones({ 1, 1, 2, 2 }))
    local y = F.convolution(x, w)
    y:forward()
    assert.same({ 1, 1, 2, 2 }, y.shape)
    assert.same({ 12, 16, 24, 28 }, y.d:flat())
    -- with pad 1 and a bias of 0.5 the corners see one value each
    local b = nn.Variable.from({ 0.5 })
    local y2 = F.convolution(x, w, b, { pad = { 1, 1 } })
    y2:forward()
    assert.same({ 1, 1, 4, 4 }, y2.shape)
    assert.same({ 1.5, 3.5, 5.5, 3.5, 5.5, 12.5, 16.5, 9.5, 11.5, 24.5, 28.5, 15.5, 7.5, 15.5, 17.5, 9.5 },
      y2.d:flat())
  end)

  describe('rejects bad inputs with the shapes involved', function()
    local err_of = R.err_of
    local V = nn.Variable
    it('weight channels that do not match x', function()
      local err = err_of(function() return F.convolution(V({ 1, 3, 5, 5 }), V({ 4, 2, 3, 3 })) end)
      assert.matches('F.convolution: weight {4, 2, 3, 3} has 2 input channels per group but x {1, 3, 5, 5} has 3', err, 1, true)
      assert.matches('(inputs: x {1, 3, 5, 5}, weight {4, 2, 3, 3})', err, 1, true)
    end)
    it('channels not divisible by group', function()
      local err = err_of(function() return F.convolution(V({ 1, 3, 5, 5 }), V({ 4, 1, 3, 3 }), nil, { group = 2 }) end)
      assert.matches('F.convolution: x {1, 3, 5, 5} has 3 channels (axis 2), not divisible by group 2', err, 1, true)
      err = err_of(function() return F.convolution(V({ 1, 4, 5, 5 }), V({ 3, 2, 3, 3 }), nil, { group = 2 }) end)
      assert.matches('F.convolution: weight {3, 2, 3, 3} has 3 output channels, not divisible by group 2', err, 1, true)
    end)
    it('a kernel larger than the padded input', function()
      local err = err_of(function() return F.convolution(V({ 1, 1, 2, 4 }), V({ 1, 1, 3, 3 })) end)
      assert.matches('F.convolution: kernel 3 (dilation 1: extent 3) is larger than the padded input 2 '
        .. '(x size 2 + 2*pad 0) in spatial axis 1 (x axis 3)', err, 1, true)
      assert.matches('x {1, 1, 2, 4}', err, 1, true)
      err = err_of(function() return F.convolution(V({ 1, 1, 5, 5 }), V({ 1, 1, 3, 3 }), { dilation = { 1, 3 } }) end)
      assert.matches('kernel 3 (dilation 3: extent 7) is larger than the padded input 5', err, 1, true)
    end)
    it('pad, stride or dilation of the wrong length', function()
      local err = err_of(function() return F.convolution(V({ 1, 1, 5, 5 }), V({ 1, 1, 3, 3 }), { pad = { 1 } }) end)
      assert.matches('F.convolution: pad has 1 entries but x {1, 1, 5, 5} has 2 spatial axes', err, 1, true)
      err = err_of(function() return F.convolution(V({ 1, 1, 5, 5 }), V({ 1, 1, 3, 3 }), { stride = { 0, 1 } }) end)
      assert.matches("F.convolution: stride entry 1 is 0 (must be 1 or more)", err, 1, true)
    end)
    it('a weight of the wrong rank, a bad bias, a bad base_axis', function()
      local err = err_of(function() return F.convolution(V({ 1, 1, 5, 5 }), V({ 1, 1, 3 })) end)
      assert.matches('F.convolution: weight {1, 1, 3} must have 4 dimensions', err, 1, true)
      err = err_of(function() return F.convolution(V({ 1, 1, 5, 5 }), V({ 2, 1, 3, 3 }), V({ 3 })) end)
      assert.matches('F.convolution: bias has shape {3} but weight {2, 1, 3, 3} has 2 output channels', err, 1, true)
      err = err_of(function() return F.convolution(V({ 1, 1, 5, 5 }), V({ 2, 1, 3, 3 }), nil, 4) end)
      assert.matches('F.convolution: x {1, 1, 5, 5} has no spatial axes after the channel axis (base_axis 4)', err, 1, true)
      err = err_of(function() return F.convolution(V({ 1, 1, 5, 5 }), V({ 2, 1, 3, 3 }), nil, 9) end)
      assert.matches('F.convolution: base_axis 9 is out of range', err, 1, true)
    end)
    it('channel_last = true: x (N, H, W, C), weight (OC, KH, KW, C/g) (values: channel_last_spec)', function()
      assert.are.same({ 1, 3, 3, 2 }, F.convolution(V({ 1, 5, 5, 1 }), V({ 2, 3, 3, 1 }), { channel_last = true }).shape)
    end)
  end)
end)

-- scripts/fuzz_functions.lua regressions: huge pads (were a signed overflow in the setup)
describe('convolution with huge pads (fuzz)', function()
  local I = 2 ^ 31 - 1
  it('F.convolution refuses an output of more than 2^48 elements', function()
    local ok, err = pcall(F.convolution, nn.Variable({2, 3, 6, 6}), nn.Variable({4, 3, 3, 3}), nil, {pad = {I, I}})
    assert.is_false(ok)
    assert.matches('F.convolution: y {2, 4, 4294967298, 4294967298} has too many elements (at most 2^48)', err, 1, true)
  end)
  it('F.depthwise_convolution refuses an output of more than 2^48 elements', function()
    local ok, err = pcall(F.depthwise_convolution, nn.Variable({2, 3, 6, 6}), nn.Variable({3, 3, 3}), nil, {pad = {I, I}})
    assert.is_false(ok)
    assert.matches('F.depthwise_convolution: y {2, 3, 4294967298, 4294967298} has too many elements (at most 2^48)', err, 1, true)
  end)
end)
