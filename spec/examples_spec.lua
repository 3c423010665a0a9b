-- The short examples in tutorials/, run as a user runs them (`nnlua tutorials/<name>.lua`):
-- an LSTM on the digits read row by row, and a small ResNet-style CNN, both trained with
-- Adam. Both must learn. Thresholds leave wide margins on what the seeds gave (the seed sets
-- the initial weights and the mini-batch order; worst of seeds 1-8 and 313): LSTM final loss
-- 0.030, train accuracy 0.993, held-out 0.879; ResNet final loss 0.026, train accuracy 0.999,
-- held-out 0.933.
local function run(script)
  local h = io.popen('./scripts/nnlua ' .. script .. ' 2>&1; echo "exit=$?"')
  local out = h:read('*a')
  h:close()
  return out
end

local function summary(out, name)
  local first, final, train, test = out:match(
    name .. ': loss ([%d.]+) %-> ([%d.]+), train accuracy ([%d.]+), test accuracy ([%d.]+)')
  assert.is_not_nil(first, 'no summary line in:\n' .. out:sub(-2000))
  return tonumber(first), tonumber(final), tonumber(train), tonumber(test)
end

describe('tutorials/sequence_lstm.lua', function()
  local out
  setup(function() out = run('tutorials/sequence_lstm.lua') end)

  it('runs to the end and prints its losses and parameters', function()
    assert.matches('exit=0', out, 1, true)
    assert.matches('iter=49 {Training loss}=', out, 1, true)
    assert.matches('iter=599 {Training loss}=', out, 1, true)
    assert.matches('rnn/lstm/weight_l0\t{1, 4, 32, 40}', out, 1, true)
    assert.matches('rnn/lstm/bias\t{1, 1, 4, 32}', out, 1, true)
  end)

  it('learns: the loss falls well below its start, high accuracy', function()
    local first, final, train, test = summary(out, 'sequence_lstm')
    assert.is_true(first > 1.5, 'first ' .. first)
    assert.is_true(final < 0.15, 'final mean loss ' .. final)
    assert.is_true(final < first / 10, ('loss %g -> %g'):format(first, final))
    assert.is_true(train > 0.95, 'train accuracy ' .. train)
    assert.is_true(test > 0.8, 'held-out accuracy ' .. test)
  end)
end)

describe('tutorials/resnet_digits.lua', function()
  local out
  setup(function() out = run('tutorials/resnet_digits.lua') end)

  it('runs to the end and prints its losses and test errors', function()
    assert.matches('exit=0', out, 1, true)
    assert.matches('iter=24 {Training loss}=', out, 1, true)
    assert.matches('iter=299 {Training loss}=', out, 1, true)
    assert.matches('iter=99 {Test error}=', out, 1, true)
    assert.matches('iter=299 {Test error}=', out, 1, true)
    assert.matches('res2/shortcut/conv/W {32, 16, 1, 1}', out, 1, true)
  end)

  it('gives the same test accuracy with its parameters saved and loaded back', function()
    local _, _, _, test = summary(out, 'resnet_digits')
    local reloaded = tonumber(out:match('saved and loaded back: ([%d.]+)'))
    assert.is_not_nil(reloaded, out:sub(-2000))
    assert.equal(test, reloaded)
  end)

  it('learns: the loss falls well below its start, high accuracy', function()
    local first, final, train, test = summary(out, 'resnet_digits')
    assert.is_true(first > 1.0, 'first ' .. first)
    assert.is_true(final < 0.1, 'final mean loss ' .. final)
    assert.is_true(final < first / 10, ('loss %g -> %g'):format(first, final))
    assert.is_true(train > 0.97, 'train accuracy ' .. train)
    assert.is_true(test > 0.88, 'held-out accuracy ' .. test)
  end)
end)

describe('the examples as modules', function()
  -- a short run of the LSTM example as a chunk (prints silenced, 20 steps)
  local function run_chunk()
    local env = setmetatable({ print = function() end }, { __index = _G })
    local chunk = assert(loadfile('tutorials/sequence_lstm.lua'))
    setfenv(chunk, env)
    local old = os.getenv
    os.getenv = function(k) if k == 'NNLUA_EXAMPLE_STEPS' then return '20' end return old(k) end
    local ok, r = pcall(chunk)
    os.getenv = old
    assert.is_true(ok, tostring(r))
    return r
  end

  it('return their results when run from Lua, the same on every run', function()
    local r = run_chunk()
    assert.equal(20, #r.losses)
    for _, k in ipairs { 'first', 'final', 'train_accuracy', 'test_accuracy', 'seconds' } do
      assert.is_number(r[k], k)
    end
    -- the seed fixes the initial weights and the mini-batch order: the same losses again
    local r2 = run_chunk()
    assert.same(r.losses, r2.losses)
    assert.equal(r.test_accuracy, r2.test_accuracy)
  end)
end)
