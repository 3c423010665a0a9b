-- A small ResNet-style CNN on the 8x8 digits, trained with Adam: a 3x3 convolution stem,
-- residual blocks (conv + batch normalization + relu, with the block's input added back),
-- a strided block with a 1x1 projection shortcut, global average pooling and an affine
-- classifier. It follows the layout of NNabla's classification examples: one network
-- function with a `test` switch, a training graph and test graphs on the same parameters,
-- Adam with weight decay, monitors, and the parameters saved to an HDF5 file at the end.
--
-- Run with:  scripts/nnlua tutorials/resnet_digits.lua       (a few seconds on a CPU)
-- Prints the training loss and the test error as it trains and the accuracies at the end;
-- returns a table of results for spec/examples_spec.lua. NNLUA_EXAMPLE_STEPS and
-- NNLUA_EXAMPLE_SEED override the number of steps and the seed.
local nn = nn or require 'nnlua'
local F = F or require 'nnlua.functions'
local PF = PF or require 'nnlua.parametric_functions'
local S = S or require 'nnlua.solvers'
local M = require 'nnlua.monitor'
local td = require 'tiny_digits'

local steps = tonumber(os.getenv('NNLUA_EXAMPLE_STEPS')) or 300
local seed = tonumber(os.getenv('NNLUA_EXAMPLE_SEED')) or 313
local batch_size, n_train = 32, 1500
local learning_rate, weight_decay = 0.002, 1e-4
local t_start = os.clock()

-- The seed fixes the initial weights (nn.seed) and the order of the mini-batches (the data
-- iterator's own generator): the same seed gives the same run, loss for loss.
nn.clear_parameters()
nn.seed(seed)

-- The digits: the first 1500 images train, the other 297 are held out for testing.
local digits = td.load_digits()
local train_set, test_set = td.split_digits(digits, n_train)
local data = td.data_iterator_tiny_digits(train_set, { batch_size = batch_size, shuffle = true, seed = seed })

-- conv -> bn, under the scope `name` (name/conv/W, name/bn/{beta,gamma,mean,var}). The
-- convolution has no bias: the batch normalization's beta takes its place. In training
-- (test = false) batch normalization normalizes with the statistics of the mini-batch and
-- updates its running mean and variance; at test time (batch_stat = false) it uses the
-- running statistics and changes nothing.
local function conv_bn(h, maps, kernel, stride, test, name)
  local pad = math.floor(kernel / 2)
  return nn.parameter_scope(name, function()
    h = PF.convolution(h, maps, { kernel, kernel }, { pad = { pad, pad }, stride = { stride, stride }, with_bias = false })
    return PF.batch_normalization(h, { batch_stat = not test })
  end)
end

-- relu(x + bn(conv(relu(bn(conv(x)))))); with stride 2 or new widths the shortcut is a
-- strided 1x1 convolution (the projection shortcut of the ResNet paper).
local function res_block(x, maps, stride, test, name)
  return nn.parameter_scope(name, function()
    local h = F.relu(conv_bn(x, maps, 3, stride, test, 'conv1'))
    h = conv_bn(h, maps, 3, 1, test, 'conv2')
    local shortcut = x
    if stride ~= 1 or x.shape[2] ~= maps then shortcut = conv_bn(x, maps, 1, stride, test, 'shortcut') end
    return F.relu(h + shortcut)
  end)
end

-- images {B, 1, 8, 8} (pixel values 0..16) -> logits {B, 10}. Called again with the same
-- scope names, it reuses the parameters: that is how the test graphs share the weights.
local function resnet(x, test)
  local h = F.relu(conv_bn(x * (1 / 16), 16, 3, 1, test, 'stem'))   -- {B, 16, 8, 8}
  h = res_block(h, 16, 1, test, 'res1')                             -- {B, 16, 8, 8}
  h = res_block(h, 32, 2, test, 'res2')                             -- {B, 32, 4, 4}
  h = res_block(h, 32, 1, test, 'res3')                             -- {B, 32, 4, 4}
  h = F.global_average_pooling(h)                                   -- {B, 32, 1, 1}
  return PF.affine(h, 10, { name = 'classifier' })
end

-- The training graph: a mini-batch in, the mean cross entropy out.
local x, t = nn.Variable({ batch_size, 1, 8, 8 }), nn.Variable({ batch_size, 1 })
local loss = F.mean(F.softmax_cross_entropy(resnet(x, false), t))

-- A test graph: the error rate (F.top_n_error: 1 where the label is not the top score) of
-- the test-mode network on a whole set, whose images and labels are set once. It never runs
-- backward, so it is built under nn.no_grad (its outputs have need_grad = false).
local function error_graph(set)
  return nn.no_grad(function()
    local xe, te = nn.Variable({ set.n, 1, 8, 8 }), nn.Variable({ set.n, 1 })
    xe.d = set.images:reshape({ set.n, 1, 8, 8 })
    te.d = set.target:reshape({ set.n, 1 })
    return F.mean(F.top_n_error(resnet(xe, true), te))
  end)
end
local train_error, test_error = error_graph(train_set), error_graph(test_set)
local function accuracy(err)
  err:forward { clear_buffer = true }   -- the intermediate buffers are freed as it goes
  return 1 - err.d:item()
end

-- get_parameters() lists the trainable parameters (need_grad): the running means and
-- variances of batch normalization are not among them, the solver leaves them alone.
local n_params = 0
for _, p in nn.get_parameters():items() do n_params = n_params + p.size end
print(('%d trainable parameters in %d arrays, e.g. res2/shortcut/conv/W %s'):format(
  n_params, #nn.get_parameters(), nn.lib.shape_str(nn.get_parameters()['res2/shortcut/conv/W'].shape)))

local solver = S.Adam(learning_rate)
solver:set_parameters(nn.get_parameters())

-- Monitors print the mean of the values added since their last report (pass a
-- M.Monitor('tmp.monitor') as the second argument to also write them to files).
-- Iterations count from 0, as in NNabla's scripts.
local monitor_loss = M.MonitorSeries('Training loss', nil, { interval = 25 })
local monitor_test = M.MonitorSeries('Test error', nil, { interval = 1 })

local losses = {}
for i = 0, steps - 1 do
  x.d, t.d = data:next()
  loss:forward { clear_no_need_grad = true }   -- keep only what backward needs
  solver:zero_grad()                           -- backward accumulates into the gradients
  loss:backward { clear_buffer = true }
  solver:weight_decay(weight_decay)            -- g += weight_decay * w, before the update
  solver:update()
  losses[i + 1] = loss.d:item()
  monitor_loss:add(i, losses[i + 1])
  if (i + 1) % 100 == 0 then monitor_test:add(i, 1 - accuracy(test_error)) end
end

local first, final = td.loss_trend(losses)   -- means of the first 20 and the last 50 losses
local results = {
  losses = losses,
  first = first,
  final = final,
  train_accuracy = accuracy(train_error),
  test_accuracy = accuracy(test_error),
}

-- Save every parameter, the running statistics included, in NNabla's HDF5 layout (the file
-- loads in Python NNabla too); load it back into an empty parameter registry and check a new
-- test graph on the loaded parameters.
local tmp = os.tmpname()          -- a fresh name (an empty file of that name now exists)
local path = tmp .. '.h5'         -- the extension selects the format
nn.save_parameters(path)
nn.clear_parameters()
nn.load_parameters(path)
os.remove(path)
os.remove(tmp)
results.reloaded_test_accuracy = accuracy(error_graph(test_set))
results.seconds = os.clock() - t_start

print(('resnet_digits: loss %.4f -> %.4f, train accuracy %.4f, test accuracy %.4f'):format(
  results.first, results.final, results.train_accuracy, results.test_accuracy))
print(('test accuracy with the parameters saved and loaded back: %.4f'):format(results.reloaded_test_accuracy))
print(('CPU time: %.1f s'):format(results.seconds))
return results
