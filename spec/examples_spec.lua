-- The short examples in tutorials/, run as a user runs them (`nnlua tutorials/<name>.lua`):
-- an LSTM on the digits read row by row, and a small ResNet-style CNN, both trained with
-- Adam. Both must learn. Thresholds leave wide margins on what six seeds gave (worst of
-- seeds 1-6 and 313): LSTM final loss 0.031, train accuracy 0.996, held-out 0.89; ResNet
-- final loss 0.020, train accuracy 1.0, held-out 0.946.
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
    assert.matches('step    1  loss ', out, 1, true)
    assert.matches('step  600  loss ', out, 1, true)
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

  it('runs to the end and prints its losses', function()
    assert.matches('exit=0', out, 1, true)
    assert.matches('step    1  loss ', out, 1, true)
    assert.matches('step  300  loss ', out, 1, true)
    assert.matches('res2/shortcut/conv/W {32, 16, 1, 1}', out, 1, true)
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
  it('return their results when run from Lua', function()
    local env = setmetatable({ print = function() end }, { __index = _G })
    local chunk = assert(loadfile('tutorials/sequence_lstm.lua'))
    setfenv(chunk, env)
    local old = os.getenv
    -- a short run: the results table has the documented fields
    os.getenv = function(k) if k == 'NNLUA_EXAMPLE_STEPS' then return '20' end return old(k) end
    local ok, r = pcall(chunk)
    os.getenv = old
    assert.is_true(ok, tostring(r))
    assert.equal(20, #r.losses)
    for _, k in ipairs { 'first', 'final', 'train_accuracy', 'test_accuracy', 'seconds' } do
      assert.is_number(r[k], k)
    end
  end)
end)
