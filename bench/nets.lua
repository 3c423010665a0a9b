-- bench/nets.lua: the networks the benchmark trains, each as a `step()` closure that runs
-- one training step exactly as the tutorial writes it.
--   tutorial(name) : the five loops of tutorials/by_examples.lua (logreg, mlp, cnn, rnn,
--                    siamese), the same graphs, fed from the digits iterator at batch 64
--   lenet(batch)   : conv 5x5 20, max-pool 2, relu, conv 5x5 50, max-pool 2, relu,
--                    affine 500 relu, affine 10, softmax cross entropy, SGD; 28x28 random
--   mlp_big(batch) : 784-1024-1024-10 (relu), softmax cross entropy, SGD; random inputs
-- Each constructor returns step, info ({images = per-step images, loss = the loss variable}).
-- tutorial(name, {prefetch = n}) feeds n batches taken from the iterator beforehand, in turn.
local nn = nn or require 'nnlua'
local F = F or require 'nnlua.functions'
local PF = PF or require 'nnlua.parametric_functions'
local S = S or require 'nnlua.solvers'

local M = {}

local digits_cache
local function digits()
  if not digits_cache then
    local td = require 'tiny_digits'
    digits_cache = td.load_digits { n_class = 10 }
  end
  return digits_cache
end

-- The tutorial's iterator; with prefetch = n, a stand-in that cycles through n batches
-- taken from it beforehand (so that a loop's own allocations can be counted apart from the
-- iterator's fresh arrays).
local function iterator(prefetch)
  local td = require 'tiny_digits'
  local it = td.data_iterator_tiny_digits(digits(), { batch_size = 64, shuffle = true })
  if not prefetch then return it end
  local batches, k = {}, 0
  for i = 1, prefetch do batches[i] = { it:next() } end
  return { next = function()
    k = k % prefetch + 1
    return batches[k][1], batches[k][2]
  end }
end

local function logreg_loss(y, t) return F.mean(F.softmax_cross_entropy(y, t)) end

-- ---- the tutorial's graphs (tutorials/by_examples.lua) ----------------------------------

local function mlp(x, hidden)
  hidden = hidden or { 16, 32, 16 }
  return nn.parameter_scope('mlp', function()
    local h = x
    for hid, hsize in ipairs(hidden) do
      nn.parameter_scope('affine' .. hid, function() h = F.tanh(PF.affine(h, hsize)) end)
    end
    return nn.parameter_scope('classifier', function() return PF.affine(h, 10) end)
  end)
end

local function cnn(x)
  return nn.parameter_scope('cnn', function()
    local c1, c2, fc3
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
end

local function rnn(xs, h0, hidden)
  return nn.parameter_scope('rnn', function()
    local h = h0
    for _, xt in ipairs(xs) do
      local x2h = nn.parameter_scope('x2h', function() return PF.affine(xt, hidden, { with_bias = false }) end)
      local h2h = nn.parameter_scope('h2h', function() return PF.affine(h, hidden) end)
      h = F.tanh(x2h + h2h)
    end
    return nn.parameter_scope('classifier', function() return PF.affine(h, 10) end)
  end)
end

local function split_grid4(v)
  return { v[{ {}, {}, { 1, 4 }, { 1, 4 } }], v[{ {}, {}, { 1, 4 }, { 5, 8 } }],
           v[{ {}, {}, { 5, 8 }, { 1, 4 } }], v[{ {}, {}, { 5, 8 }, { 5, 8 } }] }
end

local function cnn_embed(x, test)
  local c1, c2
  nn.parameter_scope('cnn', function()       -- the same configuration as the CNN
    nn.parameter_scope('conv1', function()
      c1 = F.tanh(PF.batch_normalization(PF.convolution(x, 4, { 3, 3 }, { pad = { 1, 1 }, stride = { 2, 2 } }),
                                         { batch_stat = not test }))
    end)
    nn.parameter_scope('conv2', function()
      c2 = F.tanh(PF.batch_normalization(PF.convolution(c1, 8, { 3, 3 }, { pad = { 1, 1 } }),
                                         { batch_stat = not test }))
      c2 = F.average_pooling(c2, { 2, 2 })
    end)
    nn.parameter_scope('fc3', function() PF.affine(c2, 32) end)   -- built, not in the loss
  end)
  return nn.parameter_scope('embed2d', function() return PF.affine(c2, 2) end)
end

local function siamese_loss(e0, e1, t, margin, eps)
  margin, eps = margin or 1.0, eps or 1e-4
  local dist = F.sum(F.squared_error(e0, e1), { axis = 2 })
  local sim_cost = t * dist
  local dissim_cost = (1 - t) * (F.maximum_scalar(margin - (dist + eps) ^ 0.5, 0) ^ 2)
  return F.mean(sim_cost + dissim_cost)
end

-- The standard tutorial loop body (logreg, mlp, cnn).
local function plain_step(data, x, t, loss, solver)
  return function()
    x.d, t.d = data:next()
    loss:forward()
    solver:zero_grad()
    loss:backward()
    solver:weight_decay(1e-5)
    solver:update()
    return loss.d:item()
  end
end

function M.tutorial(name, opts)
  nn.clear_parameters()
  nn.seed(0)
  local data = iterator(opts and opts.prefetch)
  local img, label = data:next()
  local x = nn.Variable(img.shape)
  local t = nn.Variable(label.shape)
  if name == 'logreg' then
    local y = nn.parameter_scope('affine1', function() return PF.affine(x, 10) end)
    local loss = logreg_loss(y, t)
    local solver = S.Sgd(1e-3)
    solver:set_parameters(nn.get_parameters())
    return plain_step(data, x, t, loss, solver), { loss = loss }
  elseif name == 'mlp' then
    local loss = logreg_loss(mlp(x), t)
    local solver = S.Sgd(1e-2)
    solver:set_parameters(nn.get_parameters())
    return plain_step(data, x, t, loss, solver), { loss = loss }
  elseif name == 'cnn' then
    local loss = logreg_loss(cnn(x), t)
    local solver = S.Sgd(1e-1)
    solver:set_parameters(nn.get_parameters())
    return plain_step(data, x, t, loss, solver), { loss = loss }
  elseif name == 'rnn' then
    local hidden = 32
    local h0 = nn.Variable({ img.shape[1], hidden })
    local loss = logreg_loss(rnn(split_grid4(x), h0, hidden), t)
    local solver = S.Sgd(1e-1)
    solver:set_parameters(nn.get_parameters())
    return function()
      x.d, t.d = data:next()
      h0.d = 0
      loss:forward()
      solver:zero_grad()
      loss:backward()
      solver:weight_decay(1e-5)
      solver:update()
      return loss.d:item()
    end, { loss = loss }
  elseif name == 'siamese' then
    -- The tutorial loads the CNN's trained parameters; freshly created ones of the same
    -- shapes cost the same.
    local x0 = nn.Variable(img.shape)
    local x1 = nn.Variable(img.shape)
    local ts = nn.Variable({ img.shape[1] })
    local e0 = cnn_embed(x0)
    local e1 = cnn_embed(x1)
    local loss = siamese_loss(e0, e1, ts)
    local solver = S.Sgd(1e-2)
    nn.parameter_scope('embed2d', function() solver:set_parameters(nn.get_parameters()) end)
    return function()
      local img0, label0 = data:next()
      local img1, label1 = data:next()
      x0.d = img0
      x1.d = img1
      ts.d = label0:eq(label1):reshape({ -1 })
      loss:forward()
      solver:zero_grad()
      loss:backward()
      solver:weight_decay(1e-5)
      solver:update()
      return loss.d:item()
    end, { loss = loss }
  end
  error('bench: unknown tutorial loop ' .. tostring(name))
end

-- ---- larger networks on random data ------------------------------------------------------

local function random_batch(shape, classes)
  local xd = nn.NdArray.randn(shape)
  local td = nn.NdArray.new({ shape[1], 1 })
  local p = td:ptr(nn.lib.C.NL_WRITE)
  for i = 0, shape[1] - 1 do p[i] = i % classes end
  return xd, td
end

local function random_step(x, t, xd, td, loss, solver)
  return function()
    x.d = xd
    t.d = td
    loss:forward()
    solver:zero_grad()
    loss:backward()
    solver:update()
    return loss.d:item()
  end
end

function M.lenet(batch)
  nn.clear_parameters()
  nn.seed(0)
  local xd, td = random_batch({ batch, 1, 28, 28 }, 10)
  local x = nn.Variable(xd.shape)
  local t = nn.Variable(td.shape)
  local h = nn.parameter_scope('conv1', function() return PF.convolution(x, 20, { 5, 5 }) end)
  h = F.relu(F.max_pooling(h, { 2, 2 }))
  h = nn.parameter_scope('conv2', function() return PF.convolution(h, 50, { 5, 5 }) end)
  h = F.relu(F.max_pooling(h, { 2, 2 }))
  h = F.relu(nn.parameter_scope('fc1', function() return PF.affine(h, 500) end))
  local y = nn.parameter_scope('fc2', function() return PF.affine(h, 10) end)
  local loss = F.mean(F.softmax_cross_entropy(y, t))
  local solver = S.Sgd(1e-2)
  solver:set_parameters(nn.get_parameters())
  return random_step(x, t, xd, td, loss, solver), { loss = loss, images = batch }
end

function M.mlp_big(batch)
  nn.clear_parameters()
  nn.seed(0)
  local xd, td = random_batch({ batch, 784 }, 10)
  local x = nn.Variable(xd.shape)
  local t = nn.Variable(td.shape)
  local h = F.relu(nn.parameter_scope('fc1', function() return PF.affine(x, 1024) end))
  h = F.relu(nn.parameter_scope('fc2', function() return PF.affine(h, 1024) end))
  local y = nn.parameter_scope('fc3', function() return PF.affine(h, 10) end)
  local loss = F.mean(F.softmax_cross_entropy(y, t))
  local solver = S.Sgd(1e-2)
  solver:set_parameters(nn.get_parameters())
  return random_step(x, t, xd, td, loss, solver), { loss = loss, images = batch }
end

return M
