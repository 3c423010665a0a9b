-- End-to-end training: the 1000-step logistic regression on the digits (affine 64->10,
-- SGD lr 1e-3, weight decay 1e-5, batch 64) takes the loss from about 10-18 to under 0.6.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local PF = require 'nnlua.parametric_functions'
local S = require 'nnlua.solvers'
local td = require 'tiny_digits'

describe('logistic regression on the digits', function()
  it('learns: the mean loss of the last 100 of 1000 steps is under 0.6', function()
    nn.clear_parameters()
    nn.seed(0)
    local digits = td.load_digits { n_class = 10 }
    assert.equal(1797, digits.n)
    local data = td.data_iterator_tiny_digits(digits, { batch_size = 64, shuffle = true })
    local x = nn.Variable({ 64, 1, 8, 8 })
    local t = nn.Variable({ 64, 1 })
    local y = nn.parameter_scope('affine1', function() return PF.affine(x, 10) end)
    local loss = F.mean(F.softmax_cross_entropy(y, t))
    local solver = S.Sgd(1e-3)
    solver:set_parameters(nn.get_parameters())
    local losses = {}
    for i = 1, 1000 do
      x.d, t.d = data:next()
      loss:forward()
      solver:zero_grad()
      loss:backward()
      solver:weight_decay(1e-5)
      solver:update()
      losses[i] = loss.d:item()
    end
    local first = (losses[1] + losses[2] + losses[3]) / 3
    local last = 0
    for i = 901, 1000 do last = last + losses[i] end
    last = last / 100
    assert.is_true(first > 5 and first < 30, 'initial loss ' .. first)
    assert.is_true(last < 0.6, 'final loss ' .. last)
    -- accuracy on the training set is well above chance
    local correct = 0
    for _ = 1, 5 do
      x.d, t.d = data:next()
      y:forward()
      local pred = y.d:argmax({ axis = 2 }) - 1
      correct = correct + pred:eq(t.d:reshape({ 64 })):sum()
    end
    assert.is_true(correct / 320 > 0.8, 'accuracy ' .. correct / 320)
  end)
end)
