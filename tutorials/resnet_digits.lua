-- A small ResNet-style CNN on the 8x8 digits, trained with Adam: a 3x3 convolution stem,
-- residual blocks (conv + batch normalization + relu, with the block's input added back),
-- a strided block with a 1x1 projection shortcut, global average pooling and an affine
-- classifier.
--
-- Run with:  scripts/nnlua tutorials/resnet_digits.lua       (a few seconds on a CPU)
-- Prints the losses as it trains and the accuracies at the end; returns a table of
-- results for spec/examples_spec.lua. NNLUA_EXAMPLE_STEPS and NNLUA_EXAMPLE_SEED override the
-- number of steps and the seed.
local nn = nn or require 'nnlua'
local F = F or require 'nnlua.functions'
local PF = PF or require 'nnlua.parametric_functions'
local S = S or require 'nnlua.solvers'
local td = require 'tiny_digits'

local steps = tonumber(os.getenv('NNLUA_EXAMPLE_STEPS')) or 300
local batch_size, n_train = 32, 1500
local t_start = os.clock()

nn.clear_parameters()
nn.seed(tonumber(os.getenv('NNLUA_EXAMPLE_SEED')) or 313)

local digits = td.load_digits()
local train, test = td.split_digits(digits, n_train)
local data = td.data_iterator_tiny_digits(train, { batch_size = batch_size, shuffle = true, seed = 1 })

-- conv -> bn (-> relu)
local function conv_bn(h, maps, kernel, stride, test_mode, name)
  local pad = math.floor(kernel / 2)
  return nn.parameter_scope(name, function()
    h = PF.convolution(h, maps, { kernel, kernel }, { pad = { pad, pad }, stride = { stride, stride }, with_bias = false })
    return PF.batch_normalization(h, { batch_stat = not test_mode })
  end)
end

-- relu(x + bn(conv(relu(bn(conv(x)))))); with stride 2 or new widths the shortcut is a
-- strided 1x1 convolution (the projection shortcut of the ResNet paper).
local function res_block(x, maps, stride, test_mode, name)
  return nn.parameter_scope(name, function()
    local h = F.relu(conv_bn(x, maps, 3, stride, test_mode, 'conv1'))
    h = conv_bn(h, maps, 3, 1, test_mode, 'conv2')
    local shortcut = x
    if stride ~= 1 or x.shape[2] ~= maps then shortcut = conv_bn(x, maps, 1, stride, test_mode, 'shortcut') end
    return F.relu(h + shortcut)
  end)
end

-- images {B, 1, 8, 8} -> logits {B, 10}
local function resnet(x, test_mode)
  local h = F.relu(conv_bn(x * (1 / 16), 16, 3, 1, test_mode, 'stem'))   -- {B, 16, 8, 8}
  h = res_block(h, 16, 1, test_mode, 'res1')                             -- {B, 16, 8, 8}
  h = res_block(h, 32, 2, test_mode, 'res2')                             -- {B, 32, 4, 4}
  h = res_block(h, 32, 1, test_mode, 'res3')                             -- {B, 32, 4, 4}
  h = F.global_average_pooling(h)                                        -- {B, 32, 1, 1}
  return PF.affine(h, 10, { name = 'classifier' })
end

local x, t = nn.Variable({ batch_size, 1, 8, 8 }), nn.Variable({ batch_size, 1 })
local loss = F.mean(F.softmax_cross_entropy(resnet(x, false), t))

local n_params = 0
for _, p in nn.get_parameters():items() do n_params = n_params + p.size end
print(('%d trainable parameters in %d arrays, e.g. res2/shortcut/conv/W %s'):format(
  n_params, #nn.get_parameters(), nn.lib.shape_str(nn.get_parameters()['res2/shortcut/conv/W'].shape)))

local solver = S.Adam(0.002)
solver:set_parameters(nn.get_parameters())

local losses = {}
for i = 1, steps do
  x.d, t.d = data:next()
  loss:forward { clear_no_need_grad = true }
  solver:zero_grad()
  loss:backward { clear_buffer = true }
  solver:weight_decay(1e-4)
  solver:update()
  losses[i] = loss.d:item()
  if i == 1 or i % 25 == 0 then print(('step %4d  loss %.4f'):format(i, losses[i])) end
end

-- Accuracies in inference mode (batch normalization with the running statistics).
local function predict(xe) return resnet(xe, true) end
local first, final = td.loss_trend(losses)
local results = {
  losses = losses,
  first = first,
  final = final,
  train_accuracy = td.accuracy(train, predict),
  test_accuracy = td.accuracy(test, predict),
  seconds = os.clock() - t_start,
}
print(('resnet_digits: loss %.4f -> %.4f, train accuracy %.4f, test accuracy %.4f'):format(
  results.first, results.final, results.train_accuracy, results.test_accuracy))
print(('CPU time: %.1f s'):format(results.seconds))
return results
