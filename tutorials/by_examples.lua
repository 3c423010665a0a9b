-- NNabla by Examples, in Lua: logistic regression, a dynamic graph, an MLP, a CNN with
-- batch normalization (on CUDA where present), an Elman RNN, and a Siamese network reusing
-- the CNN's saved parameters, all on the 8x8 digits (1797 images, batch 64).
--
-- Run with:  scripts/nnlua tutorials/by_examples.lua      (or `make tutorial`)
-- nn, F, PF and S are preloaded by the nnlua command. Figures go to ./figures (or
-- $NNLUA_FIGURES) as PNG files, and to windows where there is a display.
-- Returns a table of results (mean losses of the last 100 steps of each loop) for the
-- spec that runs it.
local nn = nn or require 'nnlua'
local F = F or require 'nnlua.functions'
local PF = PF or require 'nnlua.parametric_functions'
local S = S or require 'nnlua.solvers'
local plt = require 'nnlua.plot'
local monitor = require 'nnlua.monitor'
local td = require 'tiny_digits'
local tile_images = monitor.tile_images

local quiet = os.getenv('NNLUA_TUTORIAL_QUIET') == '1'
local results = { losses = {} }
local t_start = os.clock()

local function section(title)
  print(('\n==== %s ===='):format(title))
end

-- Shows the current figure (a window with a display) and always saves it under a name.
local figure_dir = plt.get_output_dir()
local function show(name)
  os.execute("mkdir -p '" .. figure_dir .. "'")
  local path = figure_dir .. '/' .. name .. '.png'
  plt.savefig(path)
  print('[figure] ' .. path)
  if os.getenv('NNLUA_PLOT') ~= 'png' and plt.window_terminal() then plt.show() end
  plt.close()
end

local function mean_last(list, n)
  local s, c = 0, 0
  for i = math.max(1, #list - n + 1), #list do s = s + list[i]; c = c + 1 end
  return s / c
end

nn.seed(0)

-- ---- Preparation -----------------------------------------------------------------------
section('Preparation')
local digits = td.load_digits { n_class = 10 }
td.plot_stats(digits)
local data = td.data_iterator_tiny_digits(digits, { batch_size = 64, shuffle = true })
local img, label = data:next()
plt.figure()
plt.imshow(tile_images(img), { cmap = 'gray' })
plt.title('a mini-batch of 64 digits')
plt.axis('off')
show('01_minibatch')
print('labels:')
print(label:reshape({ 8, 8 }))
print('Label shape:', label.shape)

-- ---- Logistic regression ----------------------------------------------------------------
section('Logistic regression')
-- Forward pass
local x = nn.Variable(img.shape)            -- an image variable
local y = nn.parameter_scope('affine1', function()
  return PF.affine(x, 10)                   -- 10 classes
end)
-- The loss graph
local t = nn.Variable(label.shape)          -- the target variable
local loss = F.mean(F.softmax_cross_entropy(y, t))
-- The static graph computes nothing yet, but the shapes are already inferred.
print('Printing shapes of variables')
print(x.shape)
print(y.shape)
print(t.shape)
print(loss.shape)                           -- an empty shape means a scalar

-- Set data (the mini-batch shown above) and execute a forward pass
x.d = img
t.d = label
loss:forward()
print('Prediction score of the first image:', y.d[1])
print('Loss:', loss.d:item())               -- the network is random: the output makes no sense yet

-- Backward propagation. The parameters registered under parameter scopes, by name:
print(nn.get_parameters())
-- Initialize the gradient buffers of all parameters to zero before backprop,
for _, param in ipairs(nn.get_parameters():values()) do param.grad:zero() end
-- then backprop from the sink variable; the gradients land in .g.
loss:backward()
for name, param in nn.get_parameters():items() do
  local g = param.g:reshape({ -1 })
  print(name, param.shape, g:rows(1, math.min(20, g.size)))    -- showing the first 20
end

-- Create a solver (gradient-based optimizer) and set the parameters it updates.
local learning_rate = 1e-3
local solver = S.Sgd(learning_rate)
solver:set_parameters(nn.get_parameters())

-- One step of training: zero_grad() does what the loop over .grad:zero() above did; after
-- backward, apply weight decay as a regularization, then the SGD update
-- theta <- theta - lr * grad.
x.d, t.d = data:next()
loss:forward()
solver:zero_grad()
loss:backward()
solver:weight_decay(1e-5)
solver:update()
print(loss.d:item())

-- Iterate the optimization steps: the loss decreases.
results.losses.logreg = {}
for i = 0, 999 do
  x.d, t.d = data:next()
  loss:forward()
  solver:zero_grad()                        -- initialize the gradients of all parameters to zero
  loss:backward()
  solver:weight_decay(1e-5)                 -- weight decay as a regularization
  solver:update()
  local l = loss.d:item()
  results.losses.logreg[#results.losses.logreg + 1] = l
  if i % 100 == 0 then print(i, l) end
end
results.logreg = mean_last(results.losses.logreg, 100)

-- Show predictions (of training images here, which says little, but shows the idea).
x.d, t.d = data:next()
y:forward()                                 -- a sub-graph can be run on its own
plt.figure()
plt.imshow(tile_images(x.d), { cmap = 'gray' })
plt.title('logistic regression: inputs')
plt.axis('off')
show('02_logreg_inputs')
print('prediction:')
print((y.d:argmax({ axis = 2 }) - 1):reshape({ 8, 8 }))   -- argmax is 1-based: class = index - 1

-- ---- Dynamic graph construction ---------------------------------------------------------
-- The other way of running a graph: it is computed while it is built. First, the graph
-- building as functions, for later use. The parameters are not cleared: logreg_forward
-- finds the trained affine1 parameters in its scope.
section('Dynamic graph construction')

local function logreg_forward(x)
  return nn.parameter_scope('affine1', function() return PF.affine(x, 10) end)
end
local function logreg_loss(y, t)
  return F.mean(F.softmax_cross_entropy(y, t))   -- softmax cross entropy fits multi-class problems
end

-- Inside nn.auto_forward (or after nn.set_auto_forward(true)) functions compute at once.
x = nn.Variable(img.shape)
t = nn.Variable(label.shape)
x.d, t.d = data:next()
y, loss = nn.auto_forward(function()
  local y = logreg_forward(x)
  return y, logreg_loss(y, t)
end)
print('Loss:', loss.d:item())
plt.figure()
plt.imshow(tile_images(x.d), { cmap = 'gray' })
plt.title('dynamic graph: inputs')
plt.axis('off')
show('02b_dynamic_inputs')
print('prediction:')
print((y.d:argmax({ axis = 2 }) - 1):reshape({ 8, 8 }))

-- Backward works on a dynamically built graph too.
solver:zero_grad()
loss:backward()

-- ---- Multi-layer perceptron -------------------------------------------------------------
section('Multi-layer perceptron (MLP)')
nn.clear_parameters()

local function mlp(x, hidden)
  hidden = hidden or { 16, 32, 16 }
  local hs = {}
  local y = nn.parameter_scope('mlp', function()      -- scopes nest
    local h = x
    for hid, hsize in ipairs(hidden) do
      nn.parameter_scope('affine' .. hid, function()
        h = F.tanh(PF.affine(h, hsize))
        hs[#hs + 1] = h
      end)
    end
    return nn.parameter_scope('classifier', function() return PF.affine(h, 10) end)
  end)
  return y, hs
end

local hs
y, hs = mlp(x)                              -- construct an MLP graph
print('Printing shapes')
print('x:', x.shape)
for i, h in ipairs(hs) do print(('h%d:'):format(i), h.shape) end
print('y:', y.shape)

loss = logreg_loss(y, t)                    -- reuse the logreg loss function

-- The training loop of the logistic regression, as a function (record names the entry of
-- the results table that keeps the losses).
local function training(steps, lr, record)
  local s = S.Sgd(lr)
  s:set_parameters(nn.get_parameters())     -- the parameters to be updated
  local losses = {}
  for i = 0, steps - 1 do
    x.d, t.d = data:next()
    loss:forward()
    s:zero_grad()
    loss:backward()
    s:weight_decay(1e-5)
    s:update()
    local l = loss.d:item()
    losses[#losses + 1] = l
    if i % 100 == 0 then print(i, l) end
  end
  results.losses[record] = losses
  results[record] = mean_last(losses, 100)
  return s
end

training(1000, 1e-2, 'mlp')

-- Showing the responses of each layer for the first image of the last mini-batch.
local function scale01(h)
  local lo, hi = h:min(), h:max()
  if hi == lo then return h * 0 end
  return (h - lo) / (hi - lo)
end
local num_plot, gid
local function imshow(image, title)
  plt.subplot(num_plot, 1, gid)
  gid = gid + 1
  plt.title(title)
  plt.imshow(image, { cmap = 'gray' })
  plt.axis('off')
end

num_plot, gid = #hs + 2, 1
plt.figure { figsize = { 2, 5 } }
imshow(x.d[1][1], 'x')
for hid, h in ipairs(hs) do imshow(scale01(h.d[1]):reshape({ -1, 8 }), 'h' .. hid) end
imshow(scale01(y.d[1]):reshape({ 2, 5 }), 'y')
show('03_mlp_responses')

-- ---- Convolutional neural network (with CUDA acceleration where present) -----------------
section('Convolutional neural network with CUDA acceleration')
nn.clear_parameters()

local function cnn(x)
  local c1, c2, fc3
  local y = nn.parameter_scope('cnn', function()
    nn.parameter_scope('conv1', function()
      c1 = F.tanh(PF.batch_normalization(PF.convolution(x, 4, { 3, 3 }, { pad = { 1, 1 }, stride = { 2, 2 } })))
    end)
    nn.parameter_scope('conv2', function()
      c2 = F.tanh(PF.batch_normalization(PF.convolution(c1, 8, { 3, 3 }, { pad = { 1, 1 } })))
      c2 = F.average_pooling(c2, { 2, 2 })
    end)
    nn.parameter_scope('fc3', function() fc3 = F.tanh(PF.affine(c2, 32)) end)
    return nn.parameter_scope('classifier', function() return PF.affine(fc3, 10) end)
  end)
  return y, { c1, c2, fc3 }
end

-- Run on CUDA where there is one: a cudnn context (cuDNN where it has the function, else
-- CUDA kernels) set as the default before building the graph; the functions and the
-- solver created from then on run on the GPU. nn.context_scope(ctx, fn) is the scoped way.
local cuda_device_id = 0
local ok, ctx = pcall(require('nnlua.ext_utils').get_extension_context, 'cudnn', { device_id = cuda_device_id })
if ok then
  print('Context: ' .. tostring(ctx))
  nn.set_default_context(ctx)
else
  print('No CUDA here (' .. tostring(ctx):gsub('^.-: no CUDA available: ', '') .. '); going on on the CPU.')
end
results.cuda = ok

y, hs = cnn(x)
loss = logreg_loss(y, t)
training(1000, 1e-1, 'cnn')

-- Showing the responses of each layer (the conv layers' channels as tiles).
num_plot, gid = #hs + 2, 1
plt.figure { figsize = { 2, 8 } }
imshow(x.d[1][1], 'x')
imshow(tile_images(hs[1].d[1]:reshape({ 4, 1, 4, 4 })), 'conv1')
imshow(tile_images(hs[2].d[1]:reshape({ 8, 1, 2, 2 })), 'conv2')
imshow(hs[3].d[1]:reshape({ -1, 8 }), 'fc3')
imshow(scale01(y.d[1]):reshape({ 2, 5 }), 'y')
show('04_cnn_responses')

-- nn.save_parameters writes the parameters registered under parameter scopes as HDF5 (in
-- NNabla's layout); the Siamese network below starts from them.
local path_cnn_params = os.getenv('NNLUA_TUTORIAL_TMP') and (os.getenv('NNLUA_TUTORIAL_TMP') .. '/tmp.params.cnn.h5')
                        or 'tmp.params.cnn.h5'
nn.save_parameters(path_cnn_params)
print('saved the CNN parameters to ' .. path_cnn_params)
-- Back to the CPU. (The original notebook keeps the cuDNN context, so that its RNN and
-- Siamese sections run on the GPU too; here the GPU part is the CNN only.)
if ok then nn.set_default_context(require('nnlua.ext_utils').get_extension_context('cpu')) end

-- ---- Recurrent neural network (Elman RNN) -----------------------------------------------
section('Recurrent neural network (Elman RNN)')
nn.clear_parameters()

local function rnn(xs, h0, hidden)
  hidden = hidden or 32
  local hs = {}
  local y = nn.parameter_scope('rnn', function()
    local h = h0
    for _, xt in ipairs(xs) do            -- the time-step loop
      -- The parameter scopes are reused over time: the parameters are shared over time.
      local x2h = nn.parameter_scope('x2h', function() return PF.affine(xt, hidden, { with_bias = false }) end)
      local h2h = nn.parameter_scope('h2h', function() return PF.affine(h, hidden) end)
      h = F.tanh(x2h + h2h)
      hs[#hs + 1] = h
    end
    return nn.parameter_scope('classifier', function() return PF.affine(h, 10) end)
  end)
  return y, hs
end

-- Not meaningful, just a demonstration: split each image into a 2x2 grid of 4x4 sub-images
-- and feed them to the RNN one after another. (The original slices the numpy mini-batch and
-- feeds four input variables; here the slices are taken of the image variable x, in the
-- graph, so setting x.d feeds all four time steps.)
local function split_grid4(v)
  return { v[{ {}, {}, { 1, 4 }, { 1, 4 } }], v[{ {}, {}, { 1, 4 }, { 5, 8 } }],
           v[{ {}, {}, { 5, 8 }, { 1, 4 } }], v[{ {}, {}, { 5, 8 }, { 5, 8 } }] }
end

local hidden = 32
local seq_x = split_grid4(x)
local h0 = nn.Variable({ img.shape[1], hidden })   -- the initial hidden state
y, hs = rnn(seq_x, h0, hidden)
loss = logreg_loss(y, t)

-- Copied from the logreg example, with the initial hidden state reset at every step.
local function training_rnn(steps, lr)
  local s = S.Sgd(lr)
  s:set_parameters(nn.get_parameters())
  local losses = {}
  for i = 0, steps - 1 do
    x.d, t.d = data:next()
    h0.d = 0                                     -- start from zero
    loss:forward()
    s:zero_grad()
    loss:backward()
    s:weight_decay(1e-5)
    s:update()
    local l = loss.d:item()
    losses[#losses + 1] = l
    if i % 100 == 0 then print(i, l) end
  end
  results.losses.rnn = losses
  results.rnn = mean_last(losses, 100)
end

training_rnn(1000, 1e-1)

-- Showing the responses of each layer (the hidden state after each time step).
num_plot, gid = #hs + 2, 1
plt.figure { figsize = { 2, 8 } }
imshow(x.d[1][1], 'x')
for hid, h in ipairs(hs) do imshow(scale01(h.d[1]):reshape({ -1, 8 }), 'h' .. hid) end
imshow(scale01(y.d[1]):reshape({ 2, 5 }), 'y')
show('05_rnn_responses')

-- ---- Siamese network ------------------------------------------------------------------------
-- Embeds the digits into 2-D space, and shows how to reuse a pretrained network: first, load
-- the parameters learned in the CNN example.
section('Siamese network')
nn.clear_parameters()
nn.load_parameters(path_cnn_params)          -- the CNN's pretrained parameters

-- The embedding function. The network structure and the parameter hierarchy are identical to
-- the CNN example's, so the saved parameters are found (and could be fine-tuned).
-- test = true: batch normalization uses the stored running mean and variance.
local function cnn_embed(x, test)
  local c1, c2, fc3
  nn.parameter_scope('cnn', function()       -- the same configuration as the CNN above
    nn.parameter_scope('conv1', function()
      c1 = F.tanh(PF.batch_normalization(PF.convolution(x, 4, { 3, 3 }, { pad = { 1, 1 }, stride = { 2, 2 } }),
                                         { batch_stat = not test }))
    end)
    nn.parameter_scope('conv2', function()
      c2 = F.tanh(PF.batch_normalization(PF.convolution(c1, 8, { 3, 3 }, { pad = { 1, 1 } }),
                                         { batch_stat = not test }))
      c2 = F.average_pooling(c2, { 2, 2 })
    end)
    nn.parameter_scope('fc3', function() fc3 = PF.affine(c2, 32) end)
  end)
  -- An extra affine maps into 2-D.
  local embed = nn.parameter_scope('embed2d', function() return PF.affine(c2, 2) end)
  return embed, { c1, c2, fc3 }
end

local function siamese_loss(e0, e1, t, margin, eps)
  margin, eps = margin or 1.0, eps or 1e-4
  local dist = F.sum(F.squared_error(e0, e1), { axis = 2 })   -- squared distance
  -- contrastive loss
  local sim_cost = t * dist
  local dissim_cost = (1 - t) * (F.maximum_scalar(margin - (dist + eps) ^ 0.5, 0) ^ 2)
  return F.mean(sim_cost + dissim_cost)
end

-- Two CNN streams compared with the contrastive loss above. Both have the same parameter
-- hierarchy, so their parameters are shared.
local x0 = nn.Variable(img.shape)
local x1 = nn.Variable(img.shape)
t = nn.Variable({ img.shape[1] })            -- same class or not
local e0 = cnn_embed(x0)
local e1 = cnn_embed(x1)                     -- the parameters are shared
loss = siamese_loss(e0, e1, t)

results.losses.siamese = {}
local function training_siamese(steps, s)
  for i = 0, steps - 1 do
    local img0, label0 = data:next()
    local img1, label1 = data:next()
    x0.d = img0
    x1.d = img1
    t.d = label0:eq(label1):reshape({ -1 })
    loss:forward()
    s:zero_grad()
    loss:backward()
    s:weight_decay(1e-5)
    s:update()
    local l = loss.d:item()
    results.losses.siamese[#results.losses.siamese + 1] = l
    if i % 100 == 0 then print(i, l) end
  end
end

learning_rate = 1e-2
solver = S.Sgd(learning_rate)
nn.parameter_scope('embed2d', function()
  solver:set_parameters(nn.get_parameters())   -- only the 2-D embedding is trained
end)
training_siamese(2000, solver)
solver:set_learning_rate(solver:learning_rate() * 0.1)   -- decay the learning rate
training_siamese(2000, solver)
local sl = results.losses.siamese
results.siamese_first = mean_last({ unpack(sl, 1, 100) }, 100)
results.siamese = mean_last(sl, 100)

-- The embedded training images (the first 512 digits), coloured by class: the images of a
-- class are embedded near each other.
local n_vis = 512
local all_image = digits.images:rows(1, n_vis):reshape({ n_vis, 1, 8, 8 })
local all_label = digits.target:rows(1, n_vis)
local x_all = nn.Variable(all_image.shape)
x_all.d = all_image
local embed = nn.auto_forward(function() return (cnn_embed(x_all, true)) end)
local ed = embed.d
-- (The original colours class i with plt.cm.Set1(i / 10), which gives 0 and 1 the same
-- red; matplotlib's tab10 cycle, here, gives every class its own colour.)
plt.figure { figsize = { 16, 9 } }
for c = 0, 9 do
  local xs, ys = {}, {}
  for i = 1, n_vis do
    if all_label[i] == c then xs[#xs + 1] = ed:get(i, 1); ys[#ys + 1] = ed:get(i, 2) end
  end
  plt.plot(xs, ys, '.', { label = tostring(c), color = plt.tab10[c + 1], markersize = 10 })
end
plt.legend()
plt.grid(true)
show('06_siamese_embedding')

results.seconds = os.clock() - t_start
section('Summary')
print(('mean loss of the last 100 steps: logreg %.3f, mlp %.3f, cnn %.3f, rnn %.3f; siamese %.3f -> %.3f'):format(
  results.logreg, results.mlp, results.cnn, results.rnn, results.siamese_first, results.siamese))
print(('CPU time: %.1f s'):format(results.seconds))
if quiet then return results end
return results
