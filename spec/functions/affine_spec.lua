-- F.affine through the function tester, against a plain-loop reference.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray

-- y = x W + b with x flattened at base_axis (1-based, Lua-style).
local function affine_ref(base_axis)
  return function(x, w, b)
    if base_axis < 0 then base_axis = x.ndim + base_axis + 1 end
    local m, k = 1, 1
    for d = 1, base_axis - 1 do m = m * x.shape[d] end
    for d = base_axis, x.ndim do k = k * x.shape[d] end
    local n = w.size / k
    local shape = {}
    for d = 1, base_axis - 1 do shape[#shape + 1] = x.shape[d] end
    for d = 2, w.ndim do shape[#shape + 1] = w.shape[d] end
    local px, pw, pb = x:ptr(), w:ptr(), b and b:ptr()
    local flat = {}
    for i = 0, m - 1 do
      for j = 0, n - 1 do
        local s = pb and pb[j] or 0
        for l = 0, k - 1 do s = s + px[i * k + l] * pw[l * n + j] end
        flat[i * n + j + 1] = s
      end
    end
    return NdArray.from_flat(flat, shape)
  end
end

describe('affine', function()
  local cases = {
    { name = 'x {3, 4}, W {4, 5}, bias, base_axis 2', x = { 3, 4 }, w = { 4, 5 }, b = { 5 }, ba = 2 },
    { name = 'x {2, 3, 4} flattened to {2, 12}, no bias', x = { 2, 3, 4 }, w = { 12, 3 }, ba = 2 },
    { name = 'base_axis 3 with multi-dim out W {4, 2, 3}, bias {2, 3}', x = { 2, 3, 4 }, w = { 4, 2, 3 }, b = { 2, 3 }, ba = 3 },
    { name = 'base_axis 3, no bias', x = { 2, 2, 3 }, w = { 3, 4 }, ba = 3 },
    { name = 'base_axis -1 (the last axis)', x = { 2, 2, 3 }, w = { 3, 2 }, b = { 2 }, ba = -1 },
    { name = 'base_axis 1: the whole x is one row', x = { 2, 3 }, w = { 6, 4 }, b = { 4 }, ba = 1 },
    { name = 'x {4, 1, 2, 2} (image-like), W {4, 3}', x = { 4, 1, 2, 2 }, w = { 4, 3 }, b = { 3 }, ba = 2 },
  }
  for _, c in ipairs(cases) do
    it(c.name, function()
      local inputs, grad = { c.x, c.w }, { true, true }
      if c.b then inputs[3] = c.b; grad[3] = true end
      T.check {
        fn = function(x, w, b)
          if b then return F.affine(x, w, b, c.ba) end
          return F.affine(x, w, { base_axis = c.ba })
        end,
        ref = affine_ref(c.ba),
        inputs = inputs,
        grad = grad,
      }
    end)
  end

  it('gives the output shape x.shape[1..base_axis-1] .. W.shape[2..]', function()
    local x = nn.Variable({ 5, 2, 3 })
    local w = nn.Variable({ 6, 7, 2 })
    local y = F.affine(x, w)
    assert.same({ 5, 7, 2 }, y.shape)
    local y2 = F.affine(nn.Variable({ 5, 2, 3 }), nn.Variable({ 3, 4 }), nil, 3)
    assert.same({ 5, 2, 4 }, y2.shape)
  end)

  it('computes known numbers', function()
    local x = nn.Variable.from({ { 1, 2 }, { 3, 4 } })
    local w = nn.Variable.from({ { 1, 0, 2 }, { 0, 1, 3 } })
    local b = nn.Variable.from({ 10, 20, 30 })
    local y = F.affine(x, w, b)
    y:forward()
    T.assert_close(y.d:flat(), { 11, 22, 38, 13, 24, 48 }, 1e-6, 1e-6, 'affine')
  end)

  it('only propagates to inputs that need gradients', function()
    local x = nn.Variable.from(NdArray.randn({ 3, 4 }))
    local w = nn.Variable.from(NdArray.randn({ 4, 2 }), { need_grad = true })
    local y = F.affine(x, w)
    y:forward()
    y:backward { grad = 1 }
    -- dW = x^T * ones
    local want = {}
    local px = x.d:ptr()
    for l = 0, 3 do
      for j = 0, 1 do
        local s = 0
        for i = 0, 2 do s = s + px[i * 4 + l] end
        want[l * 2 + j + 1] = s
      end
    end
    T.assert_close(w.g:flat(), want, 1e-5, 1e-5, 'dW')
  end)

  describe('rejects bad inputs with the shapes involved', function()
    local err_of = R.err_of
    it('weight rows that do not match the flattened x', function()
      local err = err_of(function() return F.affine(nn.Variable({ 64, 1, 8, 8 }), nn.Variable({ 3, 10 })) end)
      assert.matches('F.affine: weight has 3 rows but x has 64 features at base_axis 2 '
        .. '(x {64, 1, 8, 8} flattens to {64, 64})', err, 1, true)
      assert.matches('(inputs: x {64, 1, 8, 8}, weight {3, 10})', err, 1, true)
    end)
    it('a bias whose shape is not the output shape', function()
      local err = err_of(function()
        return F.affine(nn.Variable({ 2, 3 }), nn.Variable({ 3, 4 }), nn.Variable({ 5 }))
      end)
      assert.matches('F.affine: bias has shape {5} but weight {3, 4} gives outputs of shape {4}', err, 1, true)
      assert.matches('bias {5}', err, 1, true)
    end)
    it('base_axis out of range', function()
      local err = err_of(function() return F.affine(nn.Variable({ 2, 3 }), nn.Variable({ 3, 4 }), nil, 5) end)
      assert.matches('F.affine: base_axis 5 is out of range for a 2-d input', err, 1, true)
      assert.matches('x {2, 3}', err, 1, true)
    end)
    it('a 1-d weight', function()
      local err = err_of(function() return F.affine(nn.Variable({ 2, 3 }), nn.Variable({ 3 })) end)
      assert.matches('F.affine: weight must have at least 2 dimensions', err, 1, true)
    end)
  end)
end)

-- scripts/fuzz_functions.lua regression: a table where a scalar argument goes was shown as
-- "got table: 0x..." (an address)
describe('argument type errors (fuzz)', function()
  it('name the type of a table given for an integer or boolean argument', function()
    local x, w = nn.Variable({2, 3}), nn.Variable({3, 4})
    local ok, err = pcall(F.affine, x, w, nil, { base_axis = { {} } })
    assert.is_false(ok)
    assert.matches("F.affine: argument 'base_axis' must be an integer, got a table", err, 1, true)
    ok, err = pcall(F.batch_matmul, x, w, { transpose_a = { 1 } })
    assert.is_false(ok)
    assert.matches("F.batch_matmul: argument 'transpose_a' must be true or false, got a table", err, 1, true)
  end)
end)
