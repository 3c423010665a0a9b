-- A sequence classifier with an LSTM, trained with Adam: each 8x8 digit is read row by row,
-- as a sequence of 8 time steps of 8 features; PF.lstm runs over the rows and the last
-- hidden state goes through an affine layer to the 10 classes.
--
-- Run with:  scripts/nnlua tutorials/sequence_lstm.lua       (a few seconds on a CPU)
-- Adam's updates go through gradient clipping, as usual for recurrent networks.
--
-- Prints the training loss as it trains and the accuracies at the end; returns a table of
-- results for spec/examples_spec.lua. NNLUA_EXAMPLE_STEPS and NNLUA_EXAMPLE_SEED override the
-- number of steps and the seed.
local nn = nn or require 'nnlua'
local F = F or require 'nnlua.functions'
local PF = PF or require 'nnlua.parametric_functions'
local S = S or require 'nnlua.solvers'
local M = require 'nnlua.monitor'
local td = require 'tiny_digits'

local steps = tonumber(os.getenv('NNLUA_EXAMPLE_STEPS')) or 600
local seed = tonumber(os.getenv('NNLUA_EXAMPLE_SEED')) or 313
local batch_size, hidden, n_train = 32, 32, 1500
local t_start = os.clock()

-- The seed fixes the initial weights (nn.seed) and the order of the mini-batches (the data
-- iterator's own generator): the same seed gives the same run, loss for loss.
nn.clear_parameters()
nn.seed(seed)

-- The digits: the first 1500 images train, the other 297 are held out for testing.
local digits = td.load_digits()
local train_set, test_set = td.split_digits(digits, n_train)
local data = td.data_iterator_tiny_digits(train_set, { batch_size = batch_size, shuffle = true, seed = seed })

-- images {B, 1, 8, 8} -> sequence {T = 8, B, 8} (row t of every image at step t) -> logits
-- {B, 10}. PF.lstm takes the whole sequence {T, B, input} and the initial states h0 and c0
-- {num_layers, directions, B, hidden} (zeros here), and returns the outputs y {T, B, hidden}
-- and the last states h_n and c_n; its parameters are rnn/lstm/weight_l0 and rnn/lstm/bias.
-- (PF.lstm_cell, or PF.LSTMCell, is the one-step form for a loop written by hand.)
-- training = false marks a graph that will not run backward (NNabla's inference mode).
local function lstm_classifier(x, test)
  local B = x.shape[1]
  local seq = F.transpose(F.reshape(x * (1 / 16), { B, 8, 8 }), { 2, 1, 3 })
  local h0, c0 = nn.Variable({ 1, 1, B, hidden }), nn.Variable({ 1, 1, B, hidden })
  h0.d = 0; c0.d = 0
  local _, hn = PF.lstm(seq, h0, c0, { training = not test, name = 'rnn' })
  return PF.affine(F.reshape(hn, { B, hidden }), 10, { name = 'classifier' })
end

-- The training graph: a mini-batch in, the mean cross entropy out.
local x, t = nn.Variable({ batch_size, 1, 8, 8 }), nn.Variable({ batch_size, 1 })
local loss = F.mean(F.softmax_cross_entropy(lstm_classifier(x, false), t))

-- A test graph on the same parameters: the error rate (F.top_n_error: 1 where the label is
-- not the top score) on a whole set, whose images and labels are set once. It never runs
-- backward, so it is built under nn.no_grad (its outputs have need_grad = false).
local function error_graph(set)
  return nn.no_grad(function()
    local xe, te = nn.Variable({ set.n, 1, 8, 8 }), nn.Variable({ set.n, 1 })
    xe.d = set.images:reshape({ set.n, 1, 8, 8 })
    te.d = set.target:reshape({ set.n, 1 })
    return F.mean(F.top_n_error(lstm_classifier(xe, true), te))
  end)
end
local function accuracy(err)
  err:forward { clear_buffer = true }
  return 1 - err.d:item()
end

print('Parameters:')
for name, p in nn.get_parameters():items() do print('  ' .. name, nn.lib.shape_str(p.shape)) end

local solver = S.Adam(0.01)
solver:set_parameters(nn.get_parameters())

-- The monitor prints the mean loss of every 50 iterations (counted from 0, as in NNabla).
local monitor_loss = M.MonitorSeries('Training loss', nil, { interval = 50 })

local losses = {}
for i = 0, steps - 1 do
  x.d, t.d = data:next()
  loss:forward { clear_no_need_grad = true }   -- keep only what backward needs
  solver:zero_grad()                           -- backward accumulates into the gradients
  loss:backward { clear_buffer = true }
  solver:clip_grad_by_norm(1)                  -- each gradient's norm at most 1: LSTMs can
  solver:update()                              -- have rare huge gradients that undo training
  losses[i + 1] = loss.d:item()
  monitor_loss:add(i, losses[i + 1])
end

local first, final = td.loss_trend(losses)   -- means of the first 20 and the last 50 losses
local results = {
  losses = losses,
  first = first,
  final = final,
  train_accuracy = accuracy(error_graph(train_set)),
  test_accuracy = accuracy(error_graph(test_set)),
  seconds = os.clock() - t_start,
}
print(('sequence_lstm: loss %.4f -> %.4f, train accuracy %.4f, test accuracy %.4f'):format(
  results.first, results.final, results.train_accuracy, results.test_accuracy))
print(('CPU time: %.1f s'):format(results.seconds))
return results
