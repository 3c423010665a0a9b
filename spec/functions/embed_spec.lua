-- F.embed through the function tester. Ids are 0-based (class-like data, as in one_hot
-- and softmax_cross_entropy), stored as floats.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local NdArray = nn.NdArray

-- y[i, ...] = w[x0[i], ...]
local function embed_ref(x0, w)
  local row = w.size / w.shape[1]
  local px, pw, flat = x0:ptr(), w:ptr(), {}
  for i = 0, x0.size - 1 do
    for j = 0, row - 1 do flat[#flat + 1] = pw[px[i] * row + j] end
  end
  local shape = {}
  for d = 1, x0.ndim do shape[#shape + 1] = x0.shape[d] end
  for d = 2, w.ndim do shape[#shape + 1] = w.shape[d] end
  return NdArray.from_flat(flat, shape)
end

local function ids(shape, n)
  local size = 1
  for _, s in ipairs(shape) do size = size * s end
  local flat = {}
  for i = 1, size do flat[i] = (i * 7 + 3) % n end   -- repeats ids: scatter-add is exercised
  return NdArray.from_flat(flat, shape)
end

describe('embed', function()
  local cases = {
    { x = { 2, 3 }, w = { 5, 4 } },
    { x = { 6 }, w = { 3, 2, 2 } },
    { x = { 2, 2, 2 }, w = { 4 } },
  }
  for _, c in ipairs(cases) do
    it(('x0 %s, w %s'):format(nn.lib.shape_str(c.x), nn.lib.shape_str(c.w)), function()
      T.check {
        fn = F.embed,
        ref = embed_ref,
        inputs = { ids(c.x, c.w[1]), c.w },
        grad = { false, true },
      }
    end)
  end

  it('uses 0-based ids: id 0 is the first row', function()
    local w = nn.Variable.from { { 1, 2 }, { 3, 4 }, { 5, 6 } }
    local x = nn.Variable.from { 2, 0, 2 }
    local y = F.embed(x, w)
    y:forward()
    assert.same({ 3, 2 }, y.shape)
    assert.same({ 5, 6, 1, 2, 5, 6 }, y.d:flat())
  end)

  it('gives the ids a zero gradient and w the scatter-added one', function()
    local w = nn.Variable.from(NdArray.zeros { 3, 2 }, { need_grad = true })
    local x = nn.Variable.from({ 1, 1, 2 }, { need_grad = true })
    local y = F.embed(x, w)
    y:forward()
    x.g = NdArray.full({ 3 }, 0 / 0)
    y:backward { grad = NdArray.from { { 1, 2 }, { 3, 4 }, { 5, 6 } } }
    assert.same({ 0, 0, 4, 6, 5, 6 }, w.g:flat())
  end)

  it('rejects ids out of range or not integers, naming the position', function()
    local w = nn.Variable { 3, 2 }
    local y = F.embed(nn.Variable.from { 0, 3 }, w)
    local ok, err = pcall(function() y:forward() end)
    assert.is_false(ok)
    assert.matches('embed: x0 value 3 at position 2 is not a row id of w (0-based ids 0..2)', err, 1, true)
    y = F.embed(nn.Variable.from { 0.5 }, w)
    ok, err = pcall(function() y:forward() end)
    assert.is_false(ok)
    assert.matches('x0 value 0.5 at position 1', err, 1, true)
    y = F.embed(nn.Variable.from { -1 }, w)
    ok, err = pcall(function() y:forward() end)
    assert.is_false(ok)
    ok, err = pcall(F.embed, nn.Variable { 2, 2, 2, 2, 2 }, nn.Variable { 3, 2, 2, 2, 2 })
    assert.is_false(ok)
    assert.matches('F.embed: x0 {2, 2, 2, 2, 2} and w {3, 2, 2, 2, 2} would give a 9-d output (at most 8)', err, 1, true)
  end)
end)
