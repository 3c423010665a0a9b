-- The stochastic functions: statistics on larger samples, reproducibility (nn.seed for the
-- engine's generator, per-node generators for seed >= 0), the structure of every random
-- transform, and their gradients (dropout through its mask; crop, flip and shift route
-- dy back, checked by the adjoint identity <dy, y> = <dx, x> of a linear map).
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local expect_error = R.expect_error

local function stats(a)
  local p, n = a:ptr(), a.size
  local s, s2, lo, hi = 0, 0, math.huge, -math.huge
  for i = 0, n - 1 do
    s = s + p[i]
    s2 = s2 + p[i] * p[i]
    lo = math.min(lo, p[i])
    hi = math.max(hi, p[i])
  end
  local mean = s / n
  return mean, s2 / n - mean * mean, lo, hi
end

local function forward_copy(y) y:forward() return y.d:copy() end

local function same(a, b) return a.size == b.size and (a - b):abs():sum() == 0 end

local function dot(a, b)
  local pa, pb, s = a:ptr(), b:ptr(), 0
  for i = 0, a.size - 1 do s = s + pa[i] * pb[i] end
  return s
end

-- y = P x for the forward that just ran: backward of a random dy must give dx = P^T dy.
local function check_adjoint(x, y)
  local dy = NdArray.randn(y.shape)
  x.grad:zero()
  y:backward { grad = dy }
  local lhs, rhs = dot(dy, y.d), dot(x.g, x.d)
  assert.is_true(math.abs(lhs - rhs) <= 1e-4 * (1 + math.abs(lhs)), ('<dy, y> = %g but <dx, x> = %g'):format(lhs, rhs))
  -- accumulation into the leaf: a second backward doubles
  local g1 = x.g:copy()
  y:backward { grad = dy }
  T.assert_close(x.g, g1 * 2, 1e-5, 1e-5, 'accumulated')
end

describe('rand, randint, randn', function()
  it('rand: uniform on [low, high) with the right moments', function()
    nn.seed(1)
    local y = F.rand(-1, 3, { 100, 200 })
    assert.are.same({ 100, 200 }, y.shape)
    local mean, var, lo, hi = stats(forward_copy(y))
    assert.is_true(lo >= -1 and hi < 3)
    assert.is_near(1, mean, 0.05)
    assert.is_near(16 / 12, var, 0.05)
  end)
  it('rand: defaults low = 0, high = 1, shape {} (0-d), by name', function()
    local y = F.rand()
    assert.are.same({}, y.shape)
    local v = forward_copy(y):ptr()[0]
    assert.is_true(v >= 0 and v < 1)
    local z = F.rand { shape = { 3, 4 }, high = 2 }
    assert.are.same({ 3, 4 }, z.shape)
  end)
  it('randn: mean mu and standard deviation sigma', function()
    nn.seed(2)
    local mean, var = stats(forward_copy(F.randn(2, 3, { 20000 })))
    assert.is_near(2, mean, 0.1)
    assert.is_near(9, var, 0.4)
    local m0, v0 = stats(forward_copy(F.randn { shape = { 20000 } }))
    assert.is_near(0, m0, 0.04)
    assert.is_near(1, v0, 0.05)
  end)
  it('randint: every integer of [low, high) about equally often', function()
    nn.seed(3)
    local a = forward_copy(F.randint(-2, 3, { 10000 }))
    local p, count = a:ptr(), {}
    for i = 0, a.size - 1 do
      local v = p[i]
      assert.are.equal(math.floor(v), v)
      assert.is_true(v >= -2 and v <= 2)
      count[v] = (count[v] or 0) + 1
    end
    for v = -2, 2 do assert.is_near(2000, count[v] or 0, 200) end
  end)
  it('nn.seed reproduces the numbers; another forward draws new ones', function()
    nn.seed(42)
    local y = F.randn { shape = { 8 } }
    local a1, a2 = forward_copy(y), forward_copy(y)
    assert.is_false(same(a1, a2))
    nn.seed(42)
    local z = F.randn { shape = { 8 } }
    assert.is_true(same(a1, forward_copy(z)))
    assert.is_true(same(a2, forward_copy(z)))
    nn.seed(43)
    assert.is_false(same(a1, forward_copy(F.randn { shape = { 8 } })))
  end)
  it('seed >= 0 gives each node its own generator, independent of nn.seed', function()
    nn.seed(1)
    local a = F.rand { shape = { 6 }, seed = 7 }
    local b = F.rand { shape = { 6 }, seed = 7 }
    local a1 = forward_copy(a)
    nn.seed(99)
    forward_copy(F.rand { shape = { 50 } })    -- the engine's generator moves; b's does not
    assert.is_true(same(a1, forward_copy(b)))
    local a2 = forward_copy(a)
    assert.is_false(same(a1, a2))
    assert.is_true(same(a2, forward_copy(b)))
    assert.is_false(same(a1, forward_copy(F.rand { shape = { 6 }, seed = 8 })))
  end)
  it('work in auto-forward mode and have no inputs', function()
    nn.seed(5)
    local y = nn.auto_forward(function() return F.randint(0, 10, { 4 }) end)
    assert.are.same({ 4 }, y.shape)
    nn.seed(5)
    local z = nn.auto_forward(function() return F.randint(0, 10, { 4 }) end)
    assert.is_true(same(y.d, z.d))
    expect_error(F.rand, "F.rand: takes 4 argument(s) after the inputs", 0, 1, { 2 }, -1, 5)
  end)
  it('check their arguments', function()
    expect_error(F.rand, "F.rand: argument 'low' (2) must not be greater than 'high' (1)", 2, 1)
    expect_error(F.randint, "F.randint: argument 'low' (1) must be less than 'high' (1)", 1, 1)
    expect_error(F.randint, "F.randint: argument 'low' must be an integer, got 0.5", 0.5, 2)
    expect_error(F.randn, "F.randn: argument 'sigma' must be >= 0, got -1", 0, -1)
    expect_error(F.rand, "F.rand: argument 'shape' entry 2 is -3 (sizes are >= 0)", 0, 1, { 2, -3 })
    expect_error(F.rand, "F.rand: argument 'seed' must be -1 (the engine's generator) or >= 0, got -5",
      { seed = -5 })
    expect_error(F.rand, "F.rand: unknown option 'size'", { size = { 2 } })
  end)
end)

describe('dropout', function()
  it('keeps about 1 - p of the values, scaled by 1 / (1 - p)', function()
    nn.seed(10)
    local x = nn.Variable.from(NdArray.ones { 100, 100 })
    local y = F.dropout(x, 0.3)
    local d = forward_copy(y)
    local p, kept = d:ptr(), 0
    for i = 0, d.size - 1 do
      if p[i] ~= 0 then
        kept = kept + 1
        assert.is_near(1 / 0.7, p[i], 1e-6)
      end
    end
    assert.is_near(0.7, kept / d.size, 0.02)
    local m = stats(forward_copy(F.dropout(x)))   -- default p = 0.5: the mean stays about 1
    assert.is_near(1, m, 0.04)
  end)
  it('back-propagates through the mask of the last forward', function()
    nn.seed(11)
    local x = nn.Variable.from(NdArray.rand({ 8, 9 }, 0.5, 1.5), { need_grad = true })
    local y = F.dropout(x, 0.4)
    y:forward()
    local dy = NdArray.randn { 8, 9 }
    x.grad:zero()
    y:backward { grad = dy }
    -- mask / (1 - p) = y / x
    local want = T.map(function(g, yv, xv) return g * yv / xv end, dy, y.d, x.d)
    T.assert_close(x.g, want, 1e-5, 1e-5, 'dx = dy * mask / (1 - p)')
    check_adjoint(x, y)
    -- a non-accumulating write into an intermediate whose buffer holds NaN
    local xi = F.identity(x)
    local y2 = F.dropout(xi, 0.4)
    y2:forward()
    xi.g = NdArray.full({ 8, 9 }, 0 / 0)
    x.grad:zero()
    y2:backward { grad = dy }
    T.assert_close(x.g, T.map(function(g, yv, xv) return g * yv / xv end, dy, y2.d, x.d), 1e-5, 1e-5, 'overwrite')
  end)
  it('is reproducible under nn.seed and per node with a seed', function()
    local x = nn.Variable.from(NdArray.randn { 5, 6 })
    nn.seed(12)
    local a = forward_copy(F.dropout(x))
    nn.seed(12)
    assert.is_true(same(a, forward_copy(F.dropout(x))))
    local s1, s2 = F.dropout(x, 0.5, 3), F.dropout(x, { p = 0.5, seed = 3 })
    assert.is_true(same(forward_copy(s1), forward_copy(s2)))
  end)
  it('drops in no_grad mode too (NNabla: apply it only when training), p = 0 is the identity', function()
    nn.seed(13)
    local x = nn.Variable.from(NdArray.ones { 50, 50 })
    local y = nn.no_grad(function() return F.dropout(x, 0.5) end)
    local m = forward_copy(y)
    assert.is_true(m:eq(0):sum() > 0)
    T.assert_close(forward_copy(F.dropout(x, 0)), x.d, 0, 0, 'p = 0')
  end)
  it('rejects p outside [0, 1)', function()
    expect_error(F.dropout, "F.dropout: argument 'p' must be in [0, 1), got 1", nn.Variable { 2 }, 1)
    expect_error(F.dropout, "F.dropout: argument 'p' must be in [0, 1), got -0.1", nn.Variable { 2 }, -0.1)
  end)
end)

describe('random_choice', function()
  it('draws with the weights (with replacement), y: x.shape[1..-2] .. shape', function()
    nn.seed(20)
    local x = nn.Variable.from { { 0, 1, 2 }, { 10, 11, 12 } }
    local w = nn.Variable.from { { 1, 2, 7 }, { 0, 5, 5 } }
    local y = F.random_choice(x, w, { 50, 100 })
    assert.are.same({ 2, 50, 100 }, y.shape)
    local d = forward_copy(y)
    local p, count = d:ptr(), {}
    for i = 0, d.size - 1 do count[p[i]] = (count[p[i]] or 0) + 1 end
    assert.is_near(500, count[0] or 0, 90)
    assert.is_near(1000, count[1] or 0, 120)
    assert.is_near(3500, count[2] or 0, 150)
    assert.is_nil(count[10])
    assert.is_near(2500, count[11] or 0, 150)
    assert.are.same({ 2, 1 }, F.random_choice(x, w).shape)
  end)
  it('without replacement draws distinct members', function()
    nn.seed(21)
    local x = nn.Variable.from { { 1, 2, 3, 4 }, { 5, 6, 7, 8 }, { 9, 10, 11, 12 } }
    local w = nn.Variable.from { { 1, 1, 1, 1 }, { 5, 1, 0.1, 3 }, { 0, 2, 1, 1 } }
    local y = F.random_choice(x, w, { 3 }, false)
    for _ = 1, 20 do
      local d = forward_copy(y):totable()
      for r = 1, 3 do
        local seen = {}
        for k = 1, 3 do
          assert.is_nil(seen[d[r][k]])
          seen[d[r][k]] = true
        end
      end
      assert.is_true(d[3][1] ~= 9 and d[3][2] ~= 9 and d[3][3] ~= 9)   -- weight 0
    end
  end)
  it('routes dy to the chosen positions of x (and of w, as NNabla does)', function()
    nn.seed(22)
    local x = nn.Variable.from({ { 0, 1, 2 } }, { need_grad = true })
    local w = nn.Variable.from({ { 1, 1, 1 } }, { need_grad = true })
    local y = F.random_choice(x, w, { 30 })
    local d = forward_copy(y)
    local count = { 0, 0, 0 }
    for _, v in ipairs(d:totable()[1]) do count[v + 1] = count[v + 1] + 1 end
    y:backward { grad = NdArray.full({ 1, 30 }, 2) }
    T.assert_close(x.g, NdArray.from { { 2 * count[1], 2 * count[2], 2 * count[3] } }, 0, 0, 'dx')
    T.assert_close(w.g, NdArray.from { { 2 * count[1], 2 * count[2], 2 * count[3] } }, 0, 0, 'dw')
  end)
  it('checks shapes and weights', function()
    expect_error(F.random_choice, "F.random_choice: inputs 'x' {2, 3} and 'w' {2, 2} must have the same shape",
      nn.Variable { 2, 3 }, nn.Variable { 2, 2 })
    expect_error(F.random_choice, 'F.random_choice: cannot draw 4 samples without replacement from populations of 3',
      nn.Variable { 2, 3 }, nn.Variable { 2, 3 }, { 2, 2 }, false)
    local x = nn.Variable.from { { 1, 2 }, { 3, 4 } }
    local y = F.random_choice(x, nn.Variable.from { { 1, 2 }, { -1, 4 } })
    expect_error(function() y:forward() end, "random_choice: input 'w' has weight -1 at position 3")
    y = F.random_choice(x, nn.Variable.from { { 1, 2 }, { 0, 0 } })
    expect_error(function() y:forward() end, "random_choice: input 'w' has no positive weight in population 2")
    y = F.random_choice(x, nn.Variable.from { { 1, 2 }, { 0, 1 } }, { 2 }, false)
    expect_error(function() y:forward() end, 'has 1 positive weights in population 2, fewer than the 2 samples')
  end)
end)

-- x (S, 1, n) holding 1..S*n: for each sample the output row, and the input row
local function rows(x, y)
  local S = x.shape[1]
  local xr, yr = {}, {}
  local xt, yt = x.d:totable(), y.d:totable()
  for s = 1, S do xr[s], yr[s] = xt[s][1], yt[s][1] end
  return xr, yr
end

describe('random_crop', function()
  it('cuts one window per sample out of the trailing axes', function()
    nn.seed(30)
    local x = nn.Variable.from(NdArray.arange(1, 2 * 3 * 5 * 6):reshape { 2 * 3, 5, 6 })
    local y = F.random_crop(x, { 3, 4 }, 2)
    assert.are.same({ 6, 3, 4 }, y.shape)
    y:forward()
    local yt, offsets = y.d:totable(), {}
    for s = 1, 6 do
      local first = yt[s][1][1]                     -- x[s][r][c] = (s-1)*30 + (r-1)*6 + c
      local r0 = math.floor((first - 1 - (s - 1) * 30) / 6)
      local c0 = (first - 1 - (s - 1) * 30) % 6
      assert.is_true(r0 >= 0 and r0 <= 2 and c0 >= 0 and c0 <= 2)
      offsets[r0 * 3 + c0] = true
      for r = 1, 3 do
        for c = 1, 4 do assert.are.equal((s - 1) * 30 + (r0 + r - 1) * 6 + c0 + c, yt[s][r][c]) end
      end
    end
    local distinct = 0
    for _ in pairs(offsets) do distinct = distinct + 1 end
    assert.is_true(distinct > 1)
  end)
  it('routes the gradient back into the window', function()
    nn.seed(31)
    local x = nn.Variable.from(NdArray.randn { 4, 2, 5, 5 }, { need_grad = true })
    local y = F.random_crop(x, { 2, 3, 3 })
    y:forward()
    check_adjoint(x, y)
    -- the gradient outside the window is zero: as many nonzeros as y has elements
    x.grad:zero()
    y:backward { grad = NdArray.ones(y.shape) }
    assert.are.equal(y.size, x.g:ne(0):sum())
  end)
  it('defaults to the whole input, is reproducible under nn.seed, checks shape', function()
    local x = nn.Variable.from(NdArray.randn { 3, 4 })
    T.assert_close(forward_copy(F.random_crop(x)), x.d, 0, 0, 'no shape: identity')
    nn.seed(32)
    local a = forward_copy(F.random_crop(x, { 2 }))
    nn.seed(32)
    assert.is_true(same(a, forward_copy(F.random_crop(x, { 2 }))))
    expect_error(F.random_crop, "F.random_crop: argument 'shape' entry 1 is 5; x {3, 4} has 4 on axis 2",
      x, { 5 })
    expect_error(F.random_crop, "F.random_crop: argument 'shape' has 2 entries but x {3, 4} has 1 axes from base_axis 2",
      x, { 2, 2 })
  end)
end)

describe('random_flip', function()
  it('reverses the last axis of about half of the samples', function()
    nn.seed(40)
    local S, n = 60, 5
    local x = nn.Variable.from(NdArray.arange(1, S * n):reshape { S, 1, n })
    local y = F.random_flip(x)
    y:forward()
    local xr, yr = rows(x, y)
    local flipped = 0
    for s = 1, S do
      local rev = yr[s][1] == xr[s][n]
      if rev then flipped = flipped + 1 end
      for i = 1, n do assert.are.equal(rev and xr[s][n + 1 - i] or xr[s][i], yr[s][i]) end
    end
    assert.is_true(flipped > 15 and flipped < 45, 'flipped ' .. flipped .. ' of 60')
  end)
  it('flips the given axes independently; the gradient flows back through the flips', function()
    nn.seed(41)
    local x = nn.Variable.from(NdArray.randn { 6, 3, 4 }, { need_grad = true })
    local y = F.random_flip(x, { 2, 3 })
    y:forward()
    check_adjoint(x, y)
    T.assert_close(y.d:sum(), x.d:sum(), 1e-4, 0, 'a permutation')
    expect_error(F.random_flip, 'F.random_flip: axes entry 1 is a sample axis (before base_axis 2)', x, { 1 })
    expect_error(F.random_flip, 'F.random_flip: axes entry 4 is out of range', x, { 4 })
  end)
end)

describe('random_shift', function()
  -- the row shifted by s with the given border: y[i] = x[i - s]
  local function shifted(row, s, mode, cv)
    local n, out = #row, {}
    for i = 1, n do
      local k = i - s
      if k < 1 or k > n then
        if mode == 'nearest' then k = k < 1 and 1 or n
        elseif mode == 'constant' then k = nil
        else -- reflect, period 2n: ... c b a | a b c | c b a ...
          local a = (k - 1) % (2 * n)
          k = (a >= n and 2 * n - 1 - a or a) + 1
        end
      end
      out[i] = k and row[k] or cv
    end
    return out
  end
  for _, mode in ipairs { 'nearest', 'reflect', 'constant' } do
    it('shifts each sample by -2..2 with ' .. mode .. ' borders', function()
      nn.seed(50)
      local S, n = 40, 6
      local x = nn.Variable.from(NdArray.arange(1, S * n):reshape { S, 1, n })
      local y = F.random_shift(x, { 2 }, { border_mode = mode, constant_value = -7 })
      y:forward()
      local xr, yr = rows(x, y)
      local seen = {}
      for s = 1, S do
        local match
        for sh = -2, 2 do
          local want = shifted(xr[s], sh, mode, -7)
          local ok = true
          for i = 1, n do ok = ok and want[i] == yr[s][i] end
          if ok then match = sh break end
        end
        assert.is_not_nil(match, 'sample ' .. s .. ' is no shift of its input')
        seen[match] = true
      end
      for sh = -2, 2 do assert.is_true(seen[sh], 'shift ' .. sh .. ' never drawn') end
    end)
  end
  it('routes the gradient to the source positions', function()
    nn.seed(51)
    for _, mode in ipairs { 'nearest', 'reflect', 'constant' } do
      local x = nn.Variable.from(NdArray.randn { 5, 4, 6 }, { need_grad = true })
      local y = F.random_shift(x, { 1, 3 }, mode)
      y:forward()
      check_adjoint(x, y)
    end
  end)
  it('defaults to no shift and checks shifts', function()
    local x = nn.Variable.from(NdArray.randn { 3, 4 })
    T.assert_close(forward_copy(F.random_shift(x)), x.d, 0, 0, 'no shifts: identity')
    expect_error(F.random_shift, "F.random_shift: argument 'shifts' entry 1 shifts axis 1, a sample axis", x, { 1, 1 })
    expect_error(F.random_shift, "F.random_shift: argument 'shifts' entry 1 is -1", x, { -1 })
    expect_error(F.random_shift, "F.random_shift: argument 'border_mode' must be one of 'nearest', 'reflect', 'constant'",
      x, { 1 }, 'wrap')
  end)
end)

describe('random_erase', function()
  -- the erased pixels of sample b, channel c of y (x = 0, replacements {1, 1})
  local function patch(yt, b, c, channel_last)
    local cells = {}
    local H = channel_last and #yt[b] or #yt[b][c]
    for h = 1, H do
      local W = channel_last and #yt[b][h] or #yt[b][c][h]
      for w = 1, W do
        local v = channel_last and yt[b][h][w][c] or yt[b][c][h][w]
        if v ~= 0 then
          assert.are.equal(1, v)
          cells[#cells + 1] = { h, w }
        end
      end
    end
    return cells
  end
  local function is_rectangle(cells)
    if #cells == 0 then return true end
    local h0, h1, w0, w1 = math.huge, -math.huge, math.huge, -math.huge
    for _, c in ipairs(cells) do
      h0, h1 = math.min(h0, c[1]), math.max(h1, c[1])
      w0, w1 = math.min(w0, c[2]), math.max(w1, c[2])
    end
    return (h1 - h0 + 1) * (w1 - w0 + 1) == #cells
  end
  local function key(cells)
    local parts = {}
    for _, c in ipairs(cells) do parts[#parts + 1] = c[1] .. ',' .. c[2] end
    return table.concat(parts, ';')
  end
  it('erases one rectangle per sample, shared over the channels', function()
    nn.seed(60)
    local x = nn.Variable.from(NdArray.zeros { 6, 3, 10, 10 })
    local y = F.random_erase(x, { prob = 1, replacements = { 1, 1 }, area_ratios = { 0.1, 0.3 } })
    local yt = forward_copy(y):totable()
    local erased = 0
    for b = 1, 6 do
      local p1 = patch(yt, b, 1)
      assert.is_true(is_rectangle(p1))
      assert.is_true(#p1 <= 30)
      if #p1 > 0 then erased = erased + 1 end
      for c = 2, 3 do assert.are.equal(key(p1), key(patch(yt, b, c))) end
    end
    assert.is_true(erased >= 4)
  end)
  it('with share = false erases per channel; with channel_last the channels are last', function()
    nn.seed(61)
    local y = F.random_erase(nn.Variable.from(NdArray.zeros { 4, 3, 12, 12 }),
      { prob = 1, replacements = { 1, 1 }, share = false, area_ratios = { 0.2, 0.3 } })
    local yt = forward_copy(y):totable()
    local differ = false
    for b = 1, 4 do
      for c = 1, 3 do assert.is_true(is_rectangle(patch(yt, b, c))) end
      differ = differ or key(patch(yt, b, 1)) ~= key(patch(yt, b, 2))
    end
    assert.is_true(differ)
    local z = F.random_erase(nn.Variable.from(NdArray.zeros { 3, 8, 8, 2 }),
      { prob = 1, replacements = { 1, 1 }, channel_last = true, area_ratios = { 0.2, 0.4 } })
    local zt = forward_copy(z):totable()
    for b = 1, 3 do
      assert.is_true(is_rectangle(patch(zt, b, 1, true)))
      assert.are.equal(key(patch(zt, b, 1, true)), key(patch(zt, b, 2, true)))
    end
  end)
  it('erases with probability prob; replacement values come from the range', function()
    nn.seed(62)
    local x = nn.Variable.from(NdArray.full({ 200, 1, 6, 6 }, -1))
    local y = F.random_erase(x, { prob = 0.3, area_ratios = { 0.3, 0.4 }, aspect_ratios = { 1, 1 }, replacements = { 2, 3 } })
    local d = forward_copy(y)
    local p = d:ptr()
    local erased = 0
    for b = 0, 199 do
      local any = false
      for i = 0, 35 do
        local v = p[b * 36 + i]
        if v ~= -1 then
          any = true
          assert.is_true(v >= 2 and v < 3)
        end
      end
      if any then erased = erased + 1 end
    end
    assert.is_near(60, erased, 25)
    T.assert_close(forward_copy(F.random_erase(x, { prob = 0 })), x.d, 0, 0, 'prob = 0')
  end)
  it('back-propagates outside the erased pixels (or everywhere without ste_fine_grained)', function()
    nn.seed(63)
    local x = nn.Variable.from(NdArray.zeros { 3, 2, 6, 6 }, { need_grad = true })
    local y = F.random_erase(x, { prob = 1, replacements = { 1, 1 }, area_ratios = { 0.2, 0.4 } })
    y:forward()
    local dy = NdArray.randn { 3, 2, 6, 6 }
    x.grad:zero()
    y:backward { grad = dy }
    T.assert_close(x.g, dy * y.d:eq(0), 0, 0, 'dx = dy outside the patches')
    y:backward { grad = dy }
    T.assert_close(x.g, dy * y.d:eq(0) * 2, 1e-6, 0, 'accumulated')
    local z = F.random_erase(x, { prob = 1, ste_fine_grained = false })
    z:forward()
    x.grad:zero()
    z:backward { grad = dy }
    T.assert_close(x.g, dy, 0, 0, 'straight through')
  end)
  it('is reproducible under nn.seed and checks its arguments', function()
    local x = nn.Variable.from(NdArray.zeros { 2, 1, 8, 8 })
    nn.seed(64)
    local a = forward_copy(F.random_erase(x, { prob = 1 }))
    nn.seed(64)
    assert.is_true(same(a, forward_copy(F.random_erase(x, { prob = 1 }))))
    expect_error(F.random_erase, 'F.random_erase: x {2, 8, 8} has 2 axes from base_axis 2; it must have 3',
      nn.Variable { 2, 8, 8 })
    expect_error(F.random_erase, "F.random_erase: argument 'prob' must be in [0, 1], got 2", x, 2)
    expect_error(F.random_erase, "F.random_erase: argument 'area_ratios' must be a list of 2 numbers", x,
      { area_ratios = { 0.1 } })
    expect_error(F.random_erase, "F.random_erase: argument 'aspect_ratios' {2, 1} must hold finite low <= high", x,
      { aspect_ratios = { 2, 1 } })
    expect_error(F.random_erase, "F.random_erase: argument 'n' must be >= 1, got 0", x, { n = 0 })
  end)
end)

-- scripts/fuzz_functions.lua regressions: a shape of 2^62 elements was a segfault, and
-- random_erase with n = 2^31 ran for hours
describe('huge integer arguments (fuzz)', function()
  it('F.rand / F.randint / F.randn refuse shape entries beyond 32 bits', function()
    for _, name in ipairs { 'rand', 'randint', 'randn' } do
      local ok, err = pcall(F[name], { shape = {2 ^ 31, 2 ^ 31} })
      assert.is_false(ok)
      assert.matches('F.' .. name .. ": argument 'shape' entry 1 is 2147483648, out of range (integer arguments are within -2147483647..2147483647)", err, 1, true)
    end
  end)
  it('F.random_erase refuses n beyond 32 bits', function()
    local ok, err = pcall(F.random_erase, nn.Variable({2, 3, 6, 6}), { n = 2 ^ 31 })
    assert.is_false(ok)
    assert.matches("F.random_erase: argument 'n' is 2147483648, out of range (integer arguments are within -2147483647..2147483647)", err, 1, true)
  end)
end)

describe('random_choice with a huge shape (fuzz)', function()
  it('refuses an output of more than 2^48 elements (was a signed overflow)', function()
    local I = 2 ^ 31 - 1
    local ok, err = pcall(F.random_choice, nn.Variable({2, 4}), nn.Variable({2, 4}), { shape = {I, I, I, I} })
    assert.is_false(ok)
    assert.matches('F.random_choice: y {2, 2147483647, 2147483647, 2147483647, 2147483647} has too many elements (at most 2^48)', err, 1, true)
  end)
end)
