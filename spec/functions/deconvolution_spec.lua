-- F.deconvolution and F.depthwise_convolution through the function tester, against direct
-- scatter/gather references written from NNabla's definitions.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local each_index, offset, err_of = R.each_index, R.offset, R.err_of

-- Transposed convolution as a scatter: every x[n, c, i...] adds x * w[c, oc_g, k...] to
-- y[n, g*OCg + oc_g, i*s - p + k*d...]; weight (C, OC/group, K...).
local function deconv_ref(o)
  return function(x, w, b)
    local ba = o.base_axis or 2
    local sd = x.ndim - ba
    local group = o.group or 1
    local outer = 1
    for d = 1, ba - 1 do outer = outer * x.shape[d] end
    local C, OCg = x.shape[ba], w.shape[2]
    local Cg, OC = C / group, OCg * group
    local ins, ks, outs, pad, stride, dil = {}, {}, {}, {}, {}, {}
    for i = 1, sd do
      ins[i] = x.shape[ba + i]
      ks[i] = w.shape[2 + i]
      pad[i] = o.pad and o.pad[i] or 0
      stride[i] = o.stride and o.stride[i] or 1
      dil[i] = o.dilation and o.dilation[i] or 1
      local op = o.output_padding and o.output_padding[i] or 0
      outs[i] = stride[i] * (ins[i] - 1) - 2 * pad[i] + dil[i] * (ks[i] - 1) + 1 + op
    end
    local shape = {}
    for d = 1, ba - 1 do shape[d] = x.shape[d] end
    shape[ba] = OC
    for i = 1, sd do shape[ba + i] = outs[i] end
    local ydims = { outer, OC }
    local xdims = { outer, C }
    local wdims = { C, OCg }
    for i = 1, sd do ydims[2 + i] = outs[i]; xdims[2 + i] = ins[i]; wdims[2 + i] = ks[i] end
    local ysize = outer * OC
    for i = 1, sd do ysize = ysize * outs[i] end
    local flat = {}
    for i = 1, ysize do flat[i] = 0 end
    local px, pw = x:ptr(), w:ptr()
    for n = 0, outer - 1 do
      for c = 0, C - 1 do
        local g = math.floor(c / Cg)
        each_index(ins, function(ip)
          local xv = px[offset(xdims, { n, c, unpack(ip) })]
          for ocg = 0, OCg - 1 do
            each_index(ks, function(kp)
              local yi = { n, g * OCg + ocg }
              for i = 1, sd do
                local q = ip[i] * stride[i] - pad[i] + kp[i] * dil[i]
                if q < 0 or q >= outs[i] then return end
                yi[2 + i] = q
              end
              local wi = { c, ocg, unpack(kp) }
              local at = offset(ydims, yi) + 1
              flat[at] = flat[at] + xv * pw[offset(wdims, wi)]
            end)
          end
        end)
      end
    end
    if b then
      local pb = b:ptr()
      local per = ysize / (outer * OC)
      for n = 0, outer - 1 do
        for oc = 0, OC - 1 do
          for i = 1, per do
            local at = (n * OC + oc) * per + i
            flat[at] = flat[at] + pb[oc]
          end
        end
      end
    end
    return NdArray.from_flat(flat, shape)
  end
end

-- y[n, c*M+m, o] = b + sum_k w[c*M+m, k] x[n, c, o*s - p + k*d]
local function depthwise_ref(o)
  return function(x, w, b)
    local ba = o.base_axis or 2
    local sd = x.ndim - ba
    local M = o.multiplier or 1
    local outer = 1
    for d = 1, ba - 1 do outer = outer * x.shape[d] end
    local C = x.shape[ba]
    local ins, ks, outs, pad, stride, dil = {}, {}, {}, {}, {}, {}
    for i = 1, sd do
      ins[i] = x.shape[ba + i]
      ks[i] = w.shape[1 + i]
      pad[i] = o.pad and o.pad[i] or 0
      stride[i] = o.stride and o.stride[i] or 1
      dil[i] = o.dilation and o.dilation[i] or 1
      outs[i] = math.floor((ins[i] + 2 * pad[i] - dil[i] * (ks[i] - 1) - 1) / stride[i]) + 1
    end
    local shape = {}
    for d = 1, ba - 1 do shape[d] = x.shape[d] end
    shape[ba] = C * M
    for i = 1, sd do shape[ba + i] = outs[i] end
    local xdims, wdims = { outer, C }, { C * M }
    for i = 1, sd do xdims[2 + i] = ins[i]; wdims[1 + i] = ks[i] end
    local px, pw, pb = x:ptr(), w:ptr(), b and b:ptr()
    local flat = {}
    for n = 0, outer - 1 do
      for oc = 0, C * M - 1 do
        local c = math.floor(oc / M)
        each_index(outs, function(op)
          local s = pb and pb[oc] or 0
          each_index(ks, function(kp)
            local xi = { n, c }
            for i = 1, sd do
              local q = op[i] * stride[i] - pad[i] + kp[i] * dil[i]
              if q < 0 or q >= ins[i] then return end
              xi[2 + i] = q
            end
            s = s + px[offset(xdims, xi)] * pw[offset(wdims, { oc, unpack(kp) })]
          end)
          flat[#flat + 1] = s
        end)
      end
    end
    return NdArray.from_flat(flat, shape)
  end
end

describe('deconvolution', function()
  local cases = {
    { name = '2-d, bias, defaults', x = { 2, 3, 3, 3 }, w = { 3, 2, 2, 2 }, b = { 2 }, o = {} },
    { name = '2-d, stride {2, 2}, pad {1, 1}', x = { 1, 2, 3, 3 }, w = { 2, 3, 3, 3 }, b = { 3 },
      o = { stride = { 2, 2 }, pad = { 1, 1 } } },
    { name = '2-d, stride {2, 1}, output_padding {1, 0}, dilation {1, 2}', x = { 1, 2, 2, 3 },
      w = { 2, 2, 2, 2 }, o = { stride = { 2, 1 }, output_padding = { 1, 0 }, dilation = { 1, 2 } } },
    { name = '2-d, group 2', x = { 2, 4, 2, 2 }, w = { 4, 1, 2, 2 }, b = { 2 }, o = { group = 2 } },
    { name = '1-d, stride {3}, pad {1}', x = { 2, 2, 3 }, w = { 2, 2, 3 }, b = { 2 },
      o = { stride = { 3 }, pad = { 1 } } },
    { name = '1-d, group 2, output_padding {1}, stride {2}', x = { 1, 4, 3 }, w = { 4, 2, 2 }, b = { 4 },
      o = { group = 2, stride = { 2 }, output_padding = { 1 } } },
    { name = '3-d, stride {1, 2, 1}', x = { 1, 2, 2, 2, 2 }, w = { 2, 1, 2, 2, 1 }, b = { 1 },
      o = { stride = { 1, 2, 1 } } },
    { name = 'base_axis 1 (one sample)', x = { 2, 3, 2 }, w = { 2, 2, 2, 2 }, b = { 2 }, o = { base_axis = 1 } },
    { name = 'base_axis 3', x = { 2, 1, 2, 3 }, w = { 2, 1, 2 }, b = { 1 }, o = { base_axis = 3, stride = { 2 } } },
  }
  for _, c in ipairs(cases) do
    it(c.name, function()
      local inputs, grad = { c.x, c.w }, { true, true }
      if c.b then inputs[3] = c.b; grad[3] = true end
      local o = c.o
      T.check {
        fn = function(x, w, b)
          return F.deconvolution(x, w, b, o.base_axis, o.pad, o.stride, o.dilation, o.group, nil, o.output_padding)
        end,
        ref = deconv_ref(o),
        inputs = inputs,
        grad = grad,
      }
    end)
  end

  it('is the gradient of convolution with the same weight (NNabla)', function()
    -- <deconv(x, W), y> = <x, conv(y, W)> for W (C, OC, K...) used as convolution weight
    local x = nn.Variable.from(NdArray.randn { 2, 3, 3, 4 })
    local w = nn.Variable.from(NdArray.randn { 3, 2, 3, 2 })
    local d = F.deconvolution(x, w, { stride = { 2, 2 }, pad = { 1, 0 } })
    d:forward()
    assert.same({ 2, 2, 5, 8 }, d.shape)
    local y = nn.Variable.from(NdArray.randn(d.shape))
    local c = F.convolution(y, w, { stride = { 2, 2 }, pad = { 1, 0 } })
    c:forward()
    assert.same(x.shape, c.shape)
    local lhs = (d.d * y.d):sum()
    local rhs = (x.d * c.d):sum()
    assert.is_true(math.abs(lhs - rhs) < 1e-3 * (1 + math.abs(lhs)))
  end)

  it('golden: 1x1 input spreads the kernel; stride 2 interleaves', function()
    local x = nn.Variable.from(NdArray.from({ 1, 2 }, { 1, 1, 1, 2 }))
    local w = nn.Variable.from(NdArray.from({ 1, 10 }, { 1, 1, 1, 2 }))
    local y = F.deconvolution(x, w, { stride = { 1, 2 } })
    y:forward()
    assert.same({ 1, 1, 1, 4 }, y.shape)
    assert.same({ 1, 10, 2, 20 }, y.d:flat())
    local y2 = F.deconvolution(x, w, { stride = { 1, 1 } })
    y2:forward()
    assert.same({ 1, 12, 20 }, y2.d:flat())
  end)

  describe('rejects bad inputs with the shapes involved', function()
    local V = nn.Variable
    it('weight input channels that do not match x', function()
      local err = err_of(F.deconvolution, V { 1, 3, 4, 4 }, V { 2, 2, 3, 3 })
      assert.matches('F.deconvolution: weight {2, 2, 3, 3} has 2 input channels (its first axis) but x {1, 3, 4, 4} has 3', err, 1, true)
      assert.matches('(inputs: x {1, 3, 4, 4}, weight {2, 2, 3, 3})', err, 1, true)
    end)
    it('group, bias, rank, output_padding', function()
      local err = err_of(F.deconvolution, V { 1, 3, 4, 4 }, V { 3, 2, 3, 3 }, nil, { group = 2 })
      assert.matches('F.deconvolution: x {1, 3, 4, 4} has 3 channels (axis 2), not divisible by group 2', err, 1, true)
      err = err_of(F.deconvolution, V { 1, 4, 4, 4 }, V { 4, 2, 3, 3 }, V { 2 }, { group = 2 })
      assert.matches('F.deconvolution: bias has shape {2} but weight {4, 2, 3, 3} and group 2 give 4 output channels', err, 1, true)
      err = err_of(F.deconvolution, V { 1, 4, 4, 4 }, V { 4, 2, 3 })
      assert.matches('F.deconvolution: weight {4, 2, 3} must have 4 dimensions', err, 1, true)
      err = err_of(F.deconvolution, V { 1, 4, 4, 4 }, V { 4, 2, 3, 3 }, { output_padding = { 1, 1 } })
      assert.matches('F.deconvolution: output_padding entry 1 is 1 but must be smaller than stride 1', err, 1, true)
      err = err_of(F.deconvolution, V { 1, 4, 1, 1 }, V { 4, 2, 1, 1 }, { pad = { 1, 1 } })
      assert.matches('F.deconvolution: the output would have size -1 in spatial axis 1', err, 1, true)
      err = err_of(F.deconvolution, V { 1, 4, 4, 4 }, V { 4, 2, 3, 3 }, { pad = { 1 } })
      assert.matches('F.deconvolution: pad has 1 entries but x {1, 4, 4, 4} has 2 spatial axes', err, 1, true)
      -- channel_last: x (N, H, W, C), weight (C, KH, KW, OC/g) (values: channel_last_spec)
      assert.are.same({ 1, 5, 6, 3 }, F.deconvolution(V { 1, 4, 4, 4 }, V { 4, 2, 3, 3 }, { channel_last = true }).shape)
    end)
  end)
end)

describe('depthwise_convolution', function()
  local cases = {
    { name = '2-d, bias, defaults', x = { 2, 3, 4, 4 }, w = { 3, 3, 3 }, b = { 3 }, o = {} },
    { name = '2-d, multiplier 2, pad {1, 1}, stride {2, 1}', x = { 1, 2, 5, 4 }, w = { 4, 3, 2 }, b = { 4 },
      o = { multiplier = 2, pad = { 1, 1 }, stride = { 2, 1 } } },
    { name = '2-d, dilation {2, 2}, no bias', x = { 1, 2, 5, 5 }, w = { 2, 2, 2 }, o = { dilation = { 2, 2 } } },
    { name = '1-d, multiplier 3, pad {2}', x = { 2, 2, 5 }, w = { 6, 3 }, b = { 6 }, o = { multiplier = 3, pad = { 2 } } },
    { name = '3-d', x = { 1, 2, 3, 3, 3 }, w = { 2, 2, 2, 2 }, b = { 2 }, o = { pad = { 0, 1, 0 } } },
    { name = 'base_axis 1', x = { 2, 5, 4 }, w = { 2, 3, 2 }, o = { base_axis = 1 } },
  }
  for _, c in ipairs(cases) do
    it(c.name, function()
      local inputs, grad = { c.x, c.w }, { true, true }
      if c.b then inputs[3] = c.b; grad[3] = true end
      local o = c.o
      T.check {
        fn = function(x, w, b)
          return F.depthwise_convolution(x, w, b, o.base_axis, o.pad, o.stride, o.dilation, o.multiplier)
        end,
        ref = depthwise_ref(o),
        inputs = inputs,
        grad = grad,
      }
    end)
  end

  it('equals a grouped convolution with group = C', function()
    local x = nn.Variable.from(NdArray.randn { 2, 3, 5, 5 })
    local w = nn.Variable.from(NdArray.randn { 6, 3, 3 })
    local y = F.depthwise_convolution(x, w, { multiplier = 2, pad = { 1, 1 } })
    local z = F.convolution(x, w:reshape { 6, 1, 3, 3 }, { pad = { 1, 1 }, group = 3 })
    y:forward(); z:forward()
    T.assert_close(y.d, z.d, 1e-5, 1e-4, 'depthwise vs grouped')
  end)

  it('rejects bad inputs', function()
    local V = nn.Variable
    local err = err_of(F.depthwise_convolution, V { 1, 3, 5, 5 }, V { 3, 3, 3 }, nil, { multiplier = 2 })
    assert.matches('F.depthwise_convolution: weight {3, 3, 3} has 3 output channels but x {1, 3, 5, 5} has 3 channels (axis 2) and multiplier 2, so 6 are needed', err, 1, true)
    err = err_of(F.depthwise_convolution, V { 1, 3, 5, 5 }, V { 3, 1, 3, 3 })
    assert.matches('F.depthwise_convolution: weight {3, 1, 3, 3} must have 3 dimensions', err, 1, true)
    err = err_of(F.depthwise_convolution, V { 1, 3, 2, 5 }, V { 3, 3, 3 })
    assert.matches('F.depthwise_convolution: kernel 3 (dilation 1: extent 3) is larger than the padded input 2', err, 1, true)
    err = err_of(F.depthwise_convolution, V { 1, 3, 5, 5 }, V { 3, 3, 3 }, V { 4 })
    assert.matches('F.depthwise_convolution: bias has shape {4} but there are 3 output channels', err, 1, true)
  end)
end)

-- scripts/fuzz_functions.lua regressions: huge strides / dilations (were a signed overflow)
describe('deconvolution with huge strides (fuzz)', function()
  local I = 2 ^ 31 - 1
  it('refuses an output of more than 2^48 elements', function()
    local x, w = nn.Variable({2, 4, 5, 5}), nn.Variable({4, 3, 3, 3})
    local ok, err = pcall(F.deconvolution, x, w, nil, {stride = {I, I}})
    assert.is_false(ok)
    assert.matches('F.deconvolution: y {2, 3, 8589934591, 8589934591} has too many elements (at most 2^48)', err, 1, true)
    ok, err = pcall(F.deconvolution, x, w, nil, {dilation = {I, I}})
    assert.is_false(ok)
    assert.matches('F.deconvolution: y {2, 3, 4294967299, 4294967299} has too many elements (at most 2^48)', err, 1, true)
  end)
end)
