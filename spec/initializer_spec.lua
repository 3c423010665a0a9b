-- nnlua.initializer: NNabla's initializers (statistics on large samples, orthogonality,
-- reproducibility under nn.seed, argument handling) and the Glorot / He helpers against
-- numbers computed by hand from NNabla's formulas.
local nn = require 'nnlua'
local I = require 'nnlua.initializer'

local function stats(a)
  local p = a:ptr()
  local n, s, s2, lo, hi = a.size, 0, 0, math.huge, -math.huge
  for i = 0, n - 1 do
    local v = p[i]
    s = s + v; s2 = s2 + v * v
    if v < lo then lo = v end
    if v > hi then hi = v end
  end
  local mean = s / n
  return { mean = mean, std = math.sqrt(math.max(0, s2 / n - mean * mean)), min = lo, max = hi }
end

local function near(want, got, tol, what)
  assert(math.abs(want - got) <= tol, ('%s: expected %.6g, got %.6g (tolerance %g)'):format(what or '', want, got, tol))
end

describe('nnlua.initializer', function()
  local N = 200000   -- standard error of a mean ~ sigma / 450

  it('UniformInitializer: range, mean and std of U(a, b)', function()
    nn.seed(11)
    local a = I.UniformInitializer({ -0.5, 1.5 })({ N })
    local s = stats(a)
    assert.same({ N }, a.shape)
    assert.is_true(s.min >= -0.5 and s.max <= 1.5)
    assert.is_true(s.min < -0.49 and s.max > 1.49)
    near(0.5, s.mean, 0.01, 'mean')
    near(2 / math.sqrt(12), s.std, 0.01, 'std')
    -- default (-1, 1); a number d means (-d, d); two numbers are (a, b)
    local d = stats(I.UniformInitializer()({ N }))
    assert.is_true(d.min >= -1 and d.max <= 1 and d.min < -0.99 and d.max > 0.99)
    local e = stats(I.UniformInitializer(0.25)({ N }))
    assert.is_true(e.min >= -0.25 and e.max <= 0.25 and e.min < -0.24)
    local f = stats(I.UniformInitializer(2, 3)({ N }))
    assert.is_true(f.min >= 2 and f.max <= 3)
    near(2.5, f.mean, 0.01, 'mean of U(2, 3)')
  end)

  it('NormalInitializer: mean 0 and std sigma', function()
    nn.seed(12)
    local s = stats(I.NormalInitializer(0.3)({ 400, 500 }))
    near(0, s.mean, 0.005, 'mean')
    near(0.3, s.std, 0.005, 'std')
    local t = stats(I.NormalInitializer()({ N }))
    near(1, t.std, 0.01, 'default sigma')
  end)

  it('ConstantInitializer, RangeInitializer', function()
    assert.same({ 0, 0, 0 }, I.ConstantInitializer()({ 3 }):flat())
    assert.same({ { 2.5, 2.5 }, { 2.5, 2.5 } }, I.ConstantInitializer(2.5)({ 2, 2 }):totable())
    assert.same({ { 0, 1, 2 }, { 0, 1, 2 } }, I.RangeInitializer()({ 2, 3 }):totable())
    assert.same({ { 1, 3, 5, 7 } }, I.RangeInitializer(1, 2)({ 1, 4 }):totable())
    assert.same({ -1, -1.5, -2 }, I.RangeInitializer({ start = -1, step = -0.5 })({ 3 }):flat())
  end)

  it('UniformIntInitializer: integers in [a, b), every value drawn, roughly uniform', function()
    nn.seed(13)
    local a = I.UniformIntInitializer({ -2, 3 })({ 50000 })
    local counts = {}
    for _, v in ipairs(a:flat()) do
      assert.equal(math.floor(v), v)
      assert.is_true(v >= -2 and v < 3, 'value ' .. v)
      counts[v] = (counts[v] or 0) + 1
    end
    for v = -2, 2 do near(10000, counts[v] or 0, 500, 'count of ' .. v) end
    local d = I.UniformIntInitializer()({ 20000 })   -- default [0, 10)
    local s = stats(d)
    assert.equal(0, s.min); assert.equal(9, s.max)
  end)

  local function gram(a, rows, cols, by_rows)
    local p = a:ptr()
    local k = by_rows and rows or cols
    local g = {}
    for i = 1, k do
      g[i] = {}
      for j = 1, k do
        local s = 0
        if by_rows then
          for t = 0, cols - 1 do s = s + p[(i - 1) * cols + t] * p[(j - 1) * cols + t] end
        else
          for t = 0, rows - 1 do s = s + p[t * cols + i - 1] * p[t * cols + j - 1] end
        end
        g[i][j] = s
      end
    end
    return g
  end

  it('OrthogonalInitializer: W W^T = gain^2 I for wide shapes, W^T W for tall ones', function()
    nn.seed(14)
    -- wide: 6 x (4*5) with orthonormal rows (a conv weight shape)
    local w = I.OrthogonalInitializer()({ 6, 4, 5 })
    assert.same({ 6, 4, 5 }, w.shape)
    local g = gram(w, 6, 20, true)
    for i = 1, 6 do for j = 1, 6 do near(i == j and 1 or 0, g[i][j], 1e-5, ('WWt[%d][%d]'):format(i, j)) end end
    -- tall: 30 x 8 with orthonormal columns, scaled by gain
    local gain = math.sqrt(2)
    local t = I.OrthogonalInitializer(gain)({ 30, 8 })
    local h = gram(t, 30, 8, false)
    for i = 1, 8 do for j = 1, 8 do near(i == j and 2 or 0, h[i][j], 1e-5, ('WtW[%d][%d]'):format(i, j)) end end
    -- square: orthogonal both ways
    local q = I.OrthogonalInitializer({ gain = 1 })({ 10, 10 })
    local gr, gc = gram(q, 10, 10, true), gram(q, 10, 10, false)
    for i = 1, 10 do for j = 1, 10 do
      near(i == j and 1 or 0, gr[i][j], 1e-5); near(i == j and 1 or 0, gc[i][j], 1e-5)
    end end
    -- a random orthogonal matrix, not a permutation or the identity
    local s = stats(q)
    assert.is_true(s.max < 0.99 and s.min > -0.99)
  end)

  it('nn.seed makes every random initializer reproducible; rng is accepted and ignored', function()
    for _, make in ipairs {
      function() return I.UniformInitializer({ -1, 1 }, 'any rng') end,
      function() return I.NormalInitializer(1, { rng = nil }) end,
      function() return I.UniformIntInitializer({ 0, 100 }) end,
      function() return I.OrthogonalInitializer(1, 12345) end,
      function() return I.UniformInitializer { lim = { 0, 1 }, rng = 'numpy RandomState' } end,
    } do
      nn.seed(99)
      local a = make()({ 5, 7 }):flat()
      nn.seed(99)
      local b = make()({ 5, 7 }):flat()
      assert.same(a, b)
      local c = make()({ 5, 7 }):flat()
      assert.are_not.same(a, c)
    end
  end)

  it('initializers print like NNabla and reject bad arguments', function()
    assert.equal('UniformInitializer(lim={-1, 1})', tostring(I.UniformInitializer()))
    assert.equal('NormalInitializer(sigma=0.5)', tostring(I.NormalInitializer(0.5)))
    assert.equal('ConstantInitializer(value=0)', tostring(I.ConstantInitializer()))
    assert.equal('OrthogonalInitializer(gain=2)', tostring(I.OrthogonalInitializer(2)))
    assert.is_true(I.Uniform == I.UniformInitializer and I.Orthogonal == I.OrthogonalInitializer)
    local ok, err = pcall(I.UniformInitializer, { lmi = 1 })
    assert.is_false(ok)
    assert.matches("I.UniformInitializer: unknown option 'lmi'", err, 1, true)
    ok, err = pcall(I.UniformInitializer, { 1, 2, 3 })
    assert.is_false(ok)
    assert.matches('I.UniformInitializer: lim must be {low, high}', err, 1, true)
    ok, err = pcall(I.UniformIntInitializer({ 3, 3 }), { 2 })
    assert.is_false(ok)
    assert.matches('empty range', err, 1, true)
    ok, err = pcall(I.NormalInitializer(1), 5)
    assert.is_false(ok)
    assert.matches('I.NormalInitializer: expected a shape', err, 1, true)
    ok, err = pcall(I.OrthogonalInitializer(), {})
    assert.is_false(ok)
    assert.matches('at least a 1-d shape', err, 1, true)
  end)

  it('initializers work with nn.get_parameter_or_create', function()
    nn.clear_parameters()
    nn.seed(3)
    local p = nn.get_parameter_or_create('w', { 4, 6 }, I.OrthogonalInitializer())
    local g = gram(p.d, 4, 6, true)
    for i = 1, 4 do near(1, g[i][i], 1e-5) end
    nn.clear_parameters()
  end)
end)

describe('Glorot and He helpers (NNabla formulas)', function()
  it('calc_uniform_lim_glorot returns -d, d with d = sqrt(6 / (K (N + M)))', function()
    local lo, hi = I.calc_uniform_lim_glorot(64, 10)
    near(math.sqrt(6 / 74), hi, 1e-12)
    assert.equal(-hi, lo)
    -- conv 4 -> 6 channels, 3x3 kernel: sqrt(6 / (9 * 10)) = 0.2581988897...
    local _, d = I.calc_uniform_lim_glorot(4, 6, { 3, 3 })
    near(0.25819888974716, d, 1e-12)
    -- default kernel (1, 1); a number kernel is one axis
    near(1, select(2, I.calc_uniform_lim_glorot(3, 3)), 1e-12)
    near(math.sqrt(6 / (5 * 8)), select(2, I.calc_uniform_lim_glorot(3, 5, 5)), 1e-12)
    -- as NNabla's lb, ub = calc_uniform_lim_glorot(...); UniformInitializer((lb, ub))
    assert.same({ lo, hi }, I.UniformInitializer(I.calc_uniform_lim_glorot(64, 10)).lim)
  end)

  it('calc_normal_std_glorot = sqrt(2 / (K (N + M)))', function()
    near(math.sqrt(2 / 74), I.calc_normal_std_glorot(64, 10), 1e-12)
    near(0.14907119849999, I.calc_normal_std_glorot(4, 6, { 3, 3 }), 1e-12)   -- sqrt(2/90)
  end)

  it('He: std sqrt(2 / (K N)) forward, sqrt(2 / (K M)) backward; limits sqrt(6 / ...)', function()
    near(0.16666666666667, I.calc_normal_std_he_forward(8, 100, { 3, 3 }), 1e-12)    -- sqrt(2/72)
    near(0.04714045207910, I.calc_normal_std_he_backward(8, 100, { 3, 3 }), 1e-12)   -- sqrt(2/900)
    near(0.28867513459481, I.calc_uniform_lim_he_forward(8, 100, { 3, 3 }), 1e-12)   -- sqrt(6/72)
    near(0.08164965809277, I.calc_uniform_lim_he_backward(8, 100, { 3, 3 }), 1e-12)  -- sqrt(6/900)
    near(0.5, I.calc_normal_std_he_forward(8, 2), 1e-12)                              -- sqrt(2/8)
    near(1, I.calc_normal_std_he_backward(8, 2), 1e-12)
    -- a gain factor as the 4th argument (nnabla-rl's helpers)
    near(math.sqrt(1 / 8), I.calc_normal_std_he_forward(8, 2, nil, 1), 1e-12)
    near(math.sqrt(3 / 8), I.calc_uniform_lim_he_forward(8, 2, nil, 1), 1e-12)
  end)

  it('helpers reject non-numbers', function()
    local ok, err = pcall(I.calc_uniform_lim_glorot, '64', 10)
    assert.is_false(ok)
    assert.matches('I.calc_uniform_lim_glorot: expected (inmaps, outmaps', err, 1, true)
  end)

  it('helpers reject zero or negative maps and bad kernels (they gave inf or nan)', function()
    local cases = {
      { I.calc_uniform_lim_glorot, 'I.calc_uniform_lim_glorot', { 0, 0 }, 'inmaps must be a positive number, got 0' },
      { I.calc_normal_std_glorot, 'I.calc_normal_std_glorot', { -5, 2 }, 'inmaps must be a positive number, got -5' },
      { I.calc_normal_std_he_forward, 'I.calc_normal_std_he_forward', { 0, 2 }, 'inmaps must be a positive number, got 0' },
      { I.calc_normal_std_he_backward, 'I.calc_normal_std_he_backward', { 2, 0 }, 'outmaps must be a positive number, got 0' },
      { I.calc_uniform_lim_he_backward, 'I.calc_uniform_lim_he_backward', { 2, 0 / 0 }, 'outmaps must be a positive number, got nan' },
      { I.calc_uniform_lim_glorot, 'I.calc_uniform_lim_glorot', { 2, 2, { 3, 'a' } }, 'kernel entry 2 must be a positive number, got a' },
      { I.calc_normal_std_glorot, 'I.calc_normal_std_glorot', { 2, 2, { 3, 0 } }, 'kernel entry 2 must be a positive number, got 0' },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1], unpack(c[3]))
      assert.is_false(ok, c[2] .. ' accepted ' .. c[4])
      assert.matches(c[2] .. ': ' .. c[4], err, 1, true)
    end
    near(math.sqrt(6 / (9 * 30)), select(2, I.calc_uniform_lim_glorot(10, 20, { 3, 3 })), 1e-12)
  end)

  it('a NaN limit is refused; a bad shape names the initializer', function()
    local ok, err = pcall(I.UniformInitializer, 0 / 0)
    assert.is_false(ok)
    assert.matches('I.UniformInitializer: lim must be a number, got nan', err, 1, true)
    ok, err = pcall(I.UniformInitializer, 0 / 0, 1)
    assert.is_false(ok)
    assert.matches('lim[1] must be a number, got nan', err, 1, true)
    ok, err = pcall(I.UniformInitializer(), { -1 })
    assert.is_false(ok)
    assert.matches('^I%.UniformInitializer: ', err)
    assert.matches('-1', err, 1, true)
  end)
end)
