-- nnlua.initializer: NNabla's parameter initializers (nnabla.initializer). An initializer
-- is a callable object: init(shape) returns an NdArray of that shape (float32), and
-- tostring(init) names it. The random ones draw from the engine's generator, so nn.seed(n)
-- makes them reproducible; NNabla's `rng` argument is accepted (positionally or as
-- {rng = ...}) and ignored.
--
--   I.UniformInitializer(lim = {-1, 1} [, rng])    U(a, b); lim = {a, b}, or a number d for
--                                                 U(-d, d), or two numbers a, b, so that
--                                                 I.UniformInitializer(I.calc_uniform_lim_glorot(n, m))
--                                                 works as in NNabla
--   I.NormalInitializer(sigma = 1 [, rng])        N(0, sigma^2)
--   I.ConstantInitializer(value = 0)
--   I.UniformIntInitializer(lim = {0, 10} [, rng]) integers in [a, b), stored as floats
--   I.RangeInitializer(start = 0, step = 1)       start + step * (i - 1) along the last axis
--   I.OrthogonalInitializer(gain = 1 [, rng])     (shape[1], prod(rest)) with orthonormal rows
--                                                 (or columns, when taller than wide), * gain
--
-- Helpers (kernel defaults to {1, 1}; K = prod(kernel), N = inmaps, M = outmaps):
--   calc_uniform_lim_glorot(N, M, kernel) -> -d, d with d = sqrt(6 / (K (N + M)))
--   calc_normal_std_glorot(N, M, kernel)  -> sqrt(2 / (K (N + M)))
--   calc_normal_std_he_forward / _backward -> sqrt(2 / (K N)) / sqrt(2 / (K M))
--   calc_uniform_lim_he_forward / _backward -> sqrt(6 / (K N)) / sqrt(6 / (K M))
-- The He helpers take an optional 4th argument, the gain factor (default 2), as nnabla-rl's do.
local NdArray = require 'nnlua.ndarray'
local C = require('nnlua.lib').C
local READ, WRITE, RW = C.NL_READ, C.NL_WRITE, C.NL_READWRITE

local I = {}

local function is_options(x)
  if type(x) ~= 'table' or getmetatable(x) ~= nil then return false end
  for k in pairs(x) do if type(k) == 'string' then return true end end
  return false
end

local function fmt(v)
  if type(v) == 'table' then
    local t = {}
    for i = 1, #v do t[i] = tostring(v[i]) end
    return '{' .. table.concat(t, ', ') .. '}'
  end
  return tostring(v)
end

-- class(name, fields, defaults, fn [, fixup]): a constructor taking the fields positionally
-- or by name in a trailing options table; fixup(obj, args, n) may adjust the fields.
local function class(name, fields, defaults, fn, fixup)
  local where = 'I.' .. name
  local mt = {
    __call = function(self, shape)
      if type(shape) ~= 'table' then
        error(('%s: expected a shape such as {2, 3}, got %s'):format(where, type(shape)), 2)
      end
      local ok, res = pcall(fn, self, shape)
      if not ok then   -- e.g. NdArray's shape check: say which initializer failed
        local msg = tostring(res):gsub('^[^\n:]+:%d+: ', '')
        if msg:sub(1, #where + 1) ~= where .. ':' then msg = where .. ': ' .. msg end
        error(msg, 2)
      end
      return res
    end,
    __tostring = function(self)
      local parts = {}
      for _, f in ipairs(fields) do
        if f ~= 'rng' then parts[#parts + 1] = f .. '=' .. fmt(self[f]) end
      end
      return name .. '(' .. table.concat(parts, ', ') .. ')'
    end,
  }
  mt.__index = { name = name }
  local index = {}
  for i, f in ipairs(fields) do index[f] = i end
  return function(...)
    local n = select('#', ...)
    local args = { ... }
    if n > 0 and is_options(args[n]) then
      local opts = args[n]
      args[n] = nil
      n = n - 1
      for k, v in pairs(opts) do
        local i = index[k]
        if not i then error(("%s: unknown option '%s' (options: %s)"):format(where, tostring(k), table.concat(fields, ', ')), 2) end
        if args[i] ~= nil then error(("%s: argument '%s' given both by position and by name"):format(where, k), 2) end
        args[i] = v
      end
    end
    if n > #fields then error(('%s: takes at most %d arguments, got %d'):format(where, #fields, n), 2) end
    if fixup then fixup(args, where) end
    local obj = {}
    for i, f in ipairs(fields) do
      local v = args[i]
      if v == nil then v = defaults[f] end
      obj[f] = v
    end
    return setmetatable(obj, mt)
  end
end

local function check_number(where, what, v, level)
  if type(v) ~= 'number' or v ~= v then
    error(('%s: %s must be a number, got %s'):format(where, what, tostring(v)), level or 3)
  end
end

-- lim as {a, b}, a number d (U(-d, d)), or a, b given as two numbers (lim, rng).
local function range_fixup(args, where)
  local lim, second = args[1], args[2]
  if type(lim) == 'number' and type(second) == 'number' then
    check_number(where, 'lim[1]', lim, 4)
    check_number(where, 'lim[2]', second, 4)
    args[1], args[2] = { lim, second }, nil
  elseif type(lim) == 'number' then
    check_number(where, 'lim', lim, 4)
    args[1] = { -lim, lim }
  elseif lim ~= nil then
    if type(lim) ~= 'table' or #lim ~= 2 then
      error(('%s: lim must be {low, high} or a number, got %s'):format(where, fmt(lim)), 3)
    end
    check_number(where, 'lim[1]', lim[1], 4)
    check_number(where, 'lim[2]', lim[2], 4)
  end
end

I.UniformInitializer = class('UniformInitializer', { 'lim', 'rng' }, { lim = { -1, 1 } },
  function(self, shape)
    local lo, hi = self.lim[1], self.lim[2]
    return NdArray.rand(shape, lo, hi)
  end, range_fixup)

I.NormalInitializer = class('NormalInitializer', { 'sigma', 'rng' }, { sigma = 1 },
  function(self, shape)
    check_number('I.NormalInitializer', 'sigma', self.sigma)
    return NdArray.randn(shape, 0, self.sigma)
  end)

I.ConstantInitializer = class('ConstantInitializer', { 'value' }, { value = 0 },
  function(self, shape)
    check_number('I.ConstantInitializer', 'value', self.value)
    return NdArray.full(shape, self.value)
  end)

-- Uniform integers in [low, high) stored as floats.
I.UniformIntInitializer = class('UniformIntInitializer', { 'lim', 'rng' }, { lim = { 0, 10 } },
  function(self, shape)
    local lo, hi = math.ceil(self.lim[1]), math.ceil(self.lim[2])
    if hi <= lo then
      error(('I.UniformIntInitializer: empty range [%s, %s)'):format(tostring(self.lim[1]), tostring(self.lim[2])), 2)
    end
    local a = NdArray.rand(shape, lo, hi)
    local p = a:ptr(RW)
    for i = 0, a.size - 1 do
      local v = math.floor(p[i])
      if v >= hi then v = hi - 1 elseif v < lo then v = lo end   -- float rounding at the ends
      p[i] = v
    end
    return a
  end, function(args, where)
    local lim = args[1]
    if type(lim) == 'number' and type(args[2]) == 'number' then args[1], args[2] = { lim, args[2] }, nil
    elseif lim ~= nil and (type(lim) ~= 'table' or #lim ~= 2) then
      error(('%s: lim must be {low, high}, got %s'):format(where, fmt(lim)), 3)
    end
  end)

-- start, start+step, ... along the last axis, repeated over the leading axes.
I.RangeInitializer = class('RangeInitializer', { 'start', 'step' }, { start = 0, step = 1 },
  function(self, shape)
    local a = NdArray.new(shape)
    local n = shape[#shape] or 1
    local p = a:ptr(WRITE)
    for i = 0, a.size - 1 do p[i] = self.start + (i % n) * self.step end
    return a
  end)

-- Orthonormalizes the k vectors vecs[1..k] (Lua arrays of length len, doubles) in place by
-- modified Gram-Schmidt with one re-orthogonalization pass ("twice is enough").
local function orthonormalize(vecs, len)
  for j = 1, #vecs do
    local v = vecs[j]
    for _ = 1, 2 do
      for i = 1, j - 1 do
        local u = vecs[i]
        local d = 0
        for t = 1, len do d = d + u[t] * v[t] end
        for t = 1, len do v[t] = v[t] - d * u[t] end
      end
    end
    local s = 0
    for t = 1, len do s = s + v[t] * v[t] end
    s = math.sqrt(s)
    if s == 0 then error('I.OrthogonalInitializer: degenerate random matrix (try again)', 3) end
    for t = 1, len do v[t] = v[t] / s end
  end
end

-- NNabla's OrthogonalInitializer: flat shape (rows, cols) = (shape[1], prod(shape[2..])),
-- the orthogonal factor of a Gaussian matrix (rows orthonormal when rows <= cols, columns
-- orthonormal otherwise), times gain. Computed by Gram-Schmidt (QR) instead of an SVD;
-- the distribution is the same (Haar).
I.OrthogonalInitializer = class('OrthogonalInitializer', { 'gain', 'rng' }, { gain = 1 },
  function(self, shape)
    check_number('I.OrthogonalInitializer', 'gain', self.gain)
    if #shape < 1 then error('I.OrthogonalInitializer: needs at least a 1-d shape, got {}', 2) end
    local rows = shape[1]
    local cols = 1
    for i = 2, #shape do cols = cols * shape[i] end
    local g = NdArray.randn({ rows, cols }, 0, 1)
    local gp = g:ptr(READ)
    local out = NdArray.new(shape)
    local op = out:ptr(WRITE)
    if rows == 0 or cols == 0 then return out end
    -- the vectors made orthonormal: the rows when rows <= cols, else the columns;
    -- element j of vector i sits at offset(i, j) of the (rows, cols) matrix
    local by_rows = rows <= cols
    local n, len = cols, rows
    if by_rows then n, len = rows, cols end
    local function offset(i, j)
      if by_rows then return (i - 1) * cols + j - 1 end
      return (j - 1) * cols + i - 1
    end
    local vecs = {}
    for i = 1, n do
      local v = {}
      for j = 1, len do v[j] = gp[offset(i, j)] end
      vecs[i] = v
    end
    orthonormalize(vecs, len)
    for i = 1, n do
      local v = vecs[i]
      for j = 1, len do op[offset(i, j)] = v[j] * self.gain end
    end
    return out
  end)

-- ---- helpers ------------------------------------------------------------------------------

local function kprod(kernel, where)
  if kernel == nil then return 1 end
  if type(kernel) == 'number' then kernel = { kernel } end
  if type(kernel) ~= 'table' then error(where .. ': kernel must be a list such as {3, 3}', 3) end
  local p = 1
  for i, v in ipairs(kernel) do
    if type(v) ~= 'number' or not (v > 0) or v == math.huge then
      error(('%s: kernel entry %d must be a positive number, got %s (kernel %s)'):format(where, i, tostring(v), fmt(kernel)), 3)
    end
    p = p * v
  end
  return p
end

-- inmaps and outmaps must be positive (NNabla divides by them: 0 is a ZeroDivisionError
-- there, and would be an infinite limit or a NaN here).
local function maps(where, inmaps, outmaps)
  if type(inmaps) ~= 'number' or type(outmaps) ~= 'number' then
    error(('%s: expected (inmaps, outmaps [, kernel]) as numbers, got (%s, %s)'):format(
      where, type(inmaps), type(outmaps)), 3)
  end
  for _, m in ipairs({ { 'inmaps', inmaps }, { 'outmaps', outmaps } }) do
    if not (m[2] > 0) or m[2] == math.huge then
      error(('%s: %s must be a positive number, got %s (inmaps %s, outmaps %s)'):format(
        where, m[1], tostring(m[2]), tostring(inmaps), tostring(outmaps)), 3)
    end
  end
end

-- Glorot: returns -d, d (NNabla returns the tuple (-d, d)).
function I.calc_uniform_lim_glorot(inmaps, outmaps, kernel)
  maps('I.calc_uniform_lim_glorot', inmaps, outmaps)
  local d = math.sqrt(6 / (kprod(kernel, 'I.calc_uniform_lim_glorot') * (inmaps + outmaps)))
  return -d, d
end
function I.calc_normal_std_glorot(inmaps, outmaps, kernel)
  maps('I.calc_normal_std_glorot', inmaps, outmaps)
  return math.sqrt(2 / (kprod(kernel, 'I.calc_normal_std_glorot') * (inmaps + outmaps)))
end
function I.calc_normal_std_he_forward(inmaps, outmaps, kernel, factor)
  maps('I.calc_normal_std_he_forward', inmaps, outmaps)
  return math.sqrt((factor or 2) / (kprod(kernel, 'I.calc_normal_std_he_forward') * inmaps))
end
function I.calc_normal_std_he_backward(inmaps, outmaps, kernel, factor)
  maps('I.calc_normal_std_he_backward', inmaps, outmaps)
  return math.sqrt((factor or 2) / (kprod(kernel, 'I.calc_normal_std_he_backward') * outmaps))
end
function I.calc_uniform_lim_he_forward(inmaps, outmaps, kernel, factor)
  maps('I.calc_uniform_lim_he_forward', inmaps, outmaps)
  return math.sqrt(3 * (factor or 2) / (kprod(kernel, 'I.calc_uniform_lim_he_forward') * inmaps))
end
function I.calc_uniform_lim_he_backward(inmaps, outmaps, kernel, factor)
  maps('I.calc_uniform_lim_he_backward', inmaps, outmaps)
  return math.sqrt(3 * (factor or 2) / (kprod(kernel, 'I.calc_uniform_lim_he_backward') * outmaps))
end

-- Short names.
I.Uniform = I.UniformInitializer
I.Normal = I.NormalInitializer
I.Constant = I.ConstantInitializer
I.UniformInt = I.UniformIntInitializer
I.Range = I.RangeInitializer
I.Orthogonal = I.OrthogonalInitializer

return I
