-- The tutorial end to end, as a user runs it (`nnlua tutorials/by_examples.lua`,
-- headless): every section runs, the losses track NNabla's original, the figures exist.
-- A private folder per run, so that two suites running at once do not collide.
local dir = os.tmpname()
os.remove(dir)

local function run_tutorial()
  os.execute("rm -rf '" .. dir .. "' && mkdir -p '" .. dir .. "'")
  local cmd = 'NNLUA_PLOT=png NNLUA_FIGURES=' .. dir .. '/figures NNLUA_TUTORIAL_TMP=' .. dir .. ' ' ..
              './scripts/nnlua tutorials/by_examples.lua 2>&1; echo "exit=$?"'
  local h = io.popen(cmd)
  local out = h:read('*a')
  h:close()
  return out
end

local function is_png(path)
  local f = io.open(path, 'rb')
  if not f then return false end
  local sig = f:read(8)
  local size = f:seek('end')
  f:close()
  return sig == '\137PNG\r\n\26\n' and size > 1000
end

describe('tutorials/by_examples.lua', function()
  local out
  setup(function() out = run_tutorial() end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it('runs to the end', function()
    assert.matches('exit=0', out, 1, true)
    for _, s in ipairs { 'Logistic regression', 'Dynamic graph construction', 'Multi-layer perceptron',
                         'Convolutional neural network', 'Recurrent neural network', 'Siamese network' } do
      assert.matches('==== ' .. s, out, 1, true)
    end
    assert.matches('{64, 1, 8, 8}\n{64, 10}\n{64, 1}\n{}', out, 1, true)
    assert.matches('Num images:\t1797', out, 1, true)
    assert.matches('Label shape:\t{64, 1}', out, 1, true)
    assert.matches('x:\t{64, 1, 8, 8}\nh1:\t{64, 16}\nh2:\t{64, 32}\nh3:\t{64, 16}\ny:\t{64, 10}', out, 1, true)
  end)

  it("the dynamic graph reuses the logistic regression's trained parameters, as in the original", function()
    local dyn = out:match('==== Dynamic graph construction ====\n(.-)\n==== ')
    assert.is_not_nil(dyn, 'no dynamic graph section in:\n' .. out:sub(1, 3000))
    local l = tonumber(dyn:match('^Loss:\t([%d.e-]+)'))
    assert.is_not_nil(l, dyn)
    assert.is_true(l < 2, 'the auto-forward loss is ' .. l .. ': are the parameters untrained?')
    assert.matches('prediction:\narray(', dyn, 1, true)
  end)

  it("tracks the original's losses (mean of the last 100 steps)", function()
    local lr, mlp, cnn, rnn, s0, s1 = out:match(
      'logreg ([%d.]+), mlp ([%d.]+), cnn ([%d.]+), rnn ([%d.]+); siamese ([%d.]+) %-> ([%d.]+)')
    assert.is_not_nil(lr, 'no summary line in:\n' .. out:sub(-2000))
    assert.is_true(tonumber(lr) < 0.6, 'logreg ' .. lr)
    assert.is_true(tonumber(mlp) < 0.9, 'mlp ' .. mlp)
    assert.is_true(tonumber(cnn) < 0.35, 'cnn ' .. cnn)
    assert.is_true(tonumber(rnn) < 0.4, 'rnn ' .. rnn)
    assert.is_true(tonumber(s1) < tonumber(s0), 'siamese ' .. s0 .. ' -> ' .. s1)
  end)

  it('writes every figure as a PNG', function()
    for _, name in ipairs { '00_digits', '01_minibatch', '02_logreg_inputs', '02b_dynamic_inputs', '03_mlp_responses',
                            '04_cnn_responses', '05_rnn_responses', '06_siamese_embedding' } do
      assert.is_true(is_png(dir .. '/figures/' .. name .. '.png'), name)
    end
  end)

  it('saves the CNN parameters in NNabla layout and the Siamese section reloads them', function()
    local h = io.popen('h5dump -n ' .. dir .. '/tmp.params.cnn.h5')
    local listing = h:read('*a')
    h:close()
    for _, p in ipairs { '/cnn/conv1/conv/W', '/cnn/conv1/bn/mean', '/cnn/conv2/bn/var',
                         '/cnn/fc3/affine/W', '/cnn/classifier/affine/b' } do
      assert.matches('dataset    ' .. p, listing, 1, true)
    end
  end)
end)
