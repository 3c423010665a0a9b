-- A sequence classifier with an LSTM, trained with Adam: each 8x8 digit is read row by row,
-- as a sequence of 8 time steps of 8 features; PF.lstm runs over the rows and the last
-- hidden state goes through an affine layer to the 10 classes.
--
-- Run with:  scripts/nnlua tutorials/sequence_lstm.lua       (a few seconds on a CPU)
-- Prints the losses as it trains and the accuracies at the end; returns a table of
-- results for spec/examples_spec.lua. NNLUA_EXAMPLE_STEPS and NNLUA_EXAMPLE_SEED override the
-- number of steps and the seed.
local nn = nn or require 'nnlua'
local F = F or require 'nnlua.functions'
local PF = PF or require 'nnlua.parametric_functions'
local S = S or require 'nnlua.solvers'
local td = require 'tiny_digits'

local steps = tonumber(os.getenv('NNLUA_EXAMPLE_STEPS')) or 600
local batch_size, hidden, n_train = 32, 32, 1500
local t_start = os.clock()

nn.clear_parameters()
nn.seed(tonumber(os.getenv('NNLUA_EXAMPLE_SEED')) or 313)

-- The digits: the first 1500 images train, the other 297 are held out.
local digits = td.load_digits()
local train, test = td.split_digits(digits, n_train)
local data = td.data_iterator_tiny_digits(train, { batch_size = batch_size, shuffle = true, seed = 1 })

-- images {B, 1, 8, 8} -> sequence {T = 8, B, 8} (row t of every image at step t) -> logits {B, 10}
-- F.lstm has three outputs (y, h_n, c_n); a graph needs all of them alive while it is used,
-- so they are kept in `keep`.
local keep = {}
local function lstm_classifier(x)
  local B = x.shape[1]
  local seq = F.transpose(F.reshape(x * (1 / 16), { B, 8, 8 }), { 2, 1, 3 })
  local h0, c0 = nn.Variable({ 1, 1, B, hidden }), nn.Variable({ 1, 1, B, hidden })
  h0.d = 0; c0.d = 0
  local ys, hn, cn = PF.lstm(seq, h0, c0, { name = 'rnn' })      -- rnn/lstm/{weight_l0, bias}
  keep[#keep + 1] = { ys, hn, cn }
  return PF.affine(F.reshape(hn, { B, hidden }), 10, { name = 'classifier' })
end

local x, t = nn.Variable({ batch_size, 1, 8, 8 }), nn.Variable({ batch_size, 1 })
local y = lstm_classifier(x)
local loss = F.mean(F.softmax_cross_entropy(y, t))

print('Parameters:')
for name, p in nn.get_parameters():items() do print('  ' .. name, nn.lib.shape_str(p.shape)) end

local solver = S.Adam(0.01)
solver:set_parameters(nn.get_parameters())

local losses = {}
for i = 1, steps do
  x.d, t.d = data:next()
  loss:forward()
  solver:zero_grad()
  loss:backward { clear_buffer = true }
  solver:update()
  losses[i] = loss.d:item()
  if i == 1 or i % 50 == 0 then print(('step %4d  loss %.4f'):format(i, losses[i])) end
end

local first, final = td.loss_trend(losses)
local results = {
  losses = losses,
  first = first,
  final = final,
  train_accuracy = td.accuracy(train, lstm_classifier),
  test_accuracy = td.accuracy(test, lstm_classifier),
  seconds = os.clock() - t_start,
}
print(('sequence_lstm: loss %.4f -> %.4f, train accuracy %.4f, test accuracy %.4f'):format(
  results.first, results.final, results.train_accuracy, results.test_accuracy))
print(('CPU time: %.1f s'):format(results.seconds))
return results
