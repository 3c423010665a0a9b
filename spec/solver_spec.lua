-- Solvers: NNabla's Sgd rule, lazy zero_grad, skipping parameters without gradients,
-- weight decay, gradient clipping and scaling, learning-rate access.
local nn = require 'nnlua'
local S = require 'nnlua.solvers'
local T = require 'function_tester'

local function close(a, b) T.assert_close(a, b, 1e-6, 1e-6, 'values') end

describe('S.Sgd', function()
  before_each(function() nn.clear_parameters() end)

  it('updates w <- w - lr * g and skips parameters that got no gradient', function()
    local w = nn.get_parameter_or_create('w', { 3 })
    local u = nn.get_parameter_or_create('u', { 2 })
    w.d = { 1, 2, 3 }; u.d = { 5, 5 }
    local s = S.Sgd(0.1)
    s:set_parameters(nn.get_parameters())
    s:zero_grad()
    w.g = { 1, -1, 2 }
    s:update()
    close(w.d:flat(), { 0.9, 2.1, 2.8 })
    close(u.d:flat(), { 5, 5 })         -- lazily zero: skipped
  end)

  it('weight_decay adds decay * w to gradients that exist', function()
    local w = nn.get_parameter_or_create('w', { 2 })
    local u = nn.get_parameter_or_create('u', { 1 })
    w.d = { 2, -4 }; u.d = { 3 }
    local s = S.Sgd(1)
    s:set_parameters(nn.get_parameters())
    s:zero_grad()
    w.g = { 0, 0 }
    s:weight_decay(0.5)
    close(w.g:flat(), { 1, -2 })
    assert.equal(1, nn.lib.C.nl_array_zeroing(nn.lib.C.nl_var_grad(u)))
    s:update()
    close(w.d:flat(), { 1, -2 })
  end)

  it('learning_rate and set_learning_rate; default lr 1e-3', function()
    local s = S.Sgd()
    assert.equal(1e-3, s:learning_rate())
    s:set_learning_rate(0.5)
    assert.equal(0.5, s:learning_rate())
    assert.has_error(function() S.Sgd('fast') end)
  end)

  it('clip_grad_by_norm, scale_grad and check_inf_or_nan_grad', function()
    local w = nn.get_parameter_or_create('w', { 2 })
    local s = S.Sgd(1)
    s:set_parameters(nn.get_parameters())
    w.g = { 3, 4 }
    s:clip_grad_by_norm(1)
    close(w.g:flat(), { 0.6, 0.8 })
    s:scale_grad(10)
    close(w.g:flat(), { 6, 8 })
    assert.is_false(s:check_inf_or_nan_grad())
    w.g = { 1, 0 / 0 }
    assert.is_true(s:check_inf_or_nan_grad())
  end)

  it('zero_grad is lazy and backward after it overwrites', function()
    local w = nn.get_parameter_or_create('w', { 2 })
    w.d = { 1, 2 }
    local s = S.Sgd(1)
    s:set_parameters(nn.get_parameters())
    local y = w * 3
    y:forward()
    w.g = { 100, 100 }
    s:zero_grad()
    y:backward { grad = 1 }
    close(w.g:flat(), { 3, 3 })
  end)
end)
