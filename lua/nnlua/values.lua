-- nnlua.values: reading numbers out of the values nnlua's Lua-side modules accept (shared by
-- nnlua.monitor, nnlua.plot, nnlua.data and nnlua.png; each wraps these with its own messages),
-- and plain-Lua shape helpers. Needs neither the C library nor nnlua.ndarray.
--
--   values.flatten(x [, scalars]) -> flat, shape    or    nil, err
--     x: anything with .shape and :flat() (an NdArray), anything with .d (a Variable; its .d is
--     read instead), a nested Lua table (shape from the first element at each depth; must not
--     be ragged; a table with named fields is refused as a 'type' error), a flat list, or a
--     top-level scalar whose type is in the set `scalars`
--     (default { number = true }; a boolean counts as 1 / 0). Never raises: on failure err is
--     { kind = 'type', type = <type name> }, { kind = 'element', type = <type name> } (a
--     non-numeric element in a table) or { kind = 'ragged', dim = <dimension> }.
--   values.message(err, texts) -> string.format(texts[err.kind], <err.type or err.dim>): each
--     module words its own messages (texts = { type = ..., element = ..., ragged = ... }).
--   values.reader(texts [, scalars]) -> function(x [, who [, level]]) returning flat, shape, or
--     raising "<who>: <message>" (just the message without who) at `level` as its caller would
--     pass it to error() (default 2: the caller's caller).
--   values.nest(flat, shape) -> nested Lua tables (flat[1] for shape {}).
--   values.same_shape(a, b) -> whether the shape lists a and b are equal.
--   values.ndarray() -> the nnlua.ndarray module, or nil where it cannot be loaded.
--   values.Plain / values.plain(flat, shape): a minimal array object (shape, ndim, size,
--     :flat(), :totable(), :get(...), :reshape(shape)) for when nnlua.ndarray is unavailable.

local M = {}

local NUMBERS = { number = true }

function M.flatten(x, scalars)
  scalars = scalars or NUMBERS
  local tx = type(x)
  if scalars[tx] then
    if tx == 'boolean' then return { x and 1 or 0 }, {} end
    if tx == 'number' then return { x }, {} end
  end
  if tx == 'table' or tx == 'cdata' then
    local ok, shape = pcall(function() return x.shape end)
    if ok and type(shape) == 'table' then
      local okf, flat = pcall(function() return x:flat() end)
      if okf and type(flat) == 'table' then
        local s = {}
        for i = 1, #shape do s[i] = shape[i] end
        return flat, s
      end
    end
    local okd, d = pcall(function() return x.d end)
    if okd and d ~= nil and d ~= x then return M.flatten(d, scalars) end
  end
  if tx ~= 'table' then return nil, { kind = 'type', type = tx } end
  -- named fields ({label = 'x'}) are no data: as a list it would read as empty
  for k in pairs(x) do
    if type(k) ~= 'number' or k < 1 or k > #x or k ~= math.floor(k) then
      return nil, { kind = 'type', type = ("table with named fields ('%s')"):format(tostring(k)) }
    end
  end
  local shape, flat = {}, {}
  local t = x
  while type(t) == 'table' do
    shape[#shape + 1] = #t
    t = t[1]
  end
  local nd = #shape
  local bad
  local function walk(v, d)
    if bad then return end
    if d > nd then
      if type(v) ~= 'number' then bad = { kind = 'element', type = type(v) }; return end
      flat[#flat + 1] = v
      return
    end
    if type(v) ~= 'table' or #v ~= shape[d] then bad = { kind = 'ragged', dim = d }; return end
    for i = 1, #v do walk(v[i], d + 1) end
  end
  walk(x, 1)
  if bad then return nil, bad end
  return flat, shape
end

function M.message(err, texts)
  return string.format(texts[err.kind], err.kind == 'ragged' and err.dim or err.type)
end

function M.reader(texts, scalars)
  return function(x, who, level)
    local flat, shape = M.flatten(x, scalars)
    if not flat then
      local msg = M.message(shape, texts)
      error(who and (who .. ': ' .. msg) or msg, (level or 2) + 1)
    end
    return flat, shape
  end
end

function M.nest(flat, shape)
  if #shape == 0 then return flat[1] end
  local function build(d, offset, stride)
    local n = shape[d]
    local t = {}
    if d == #shape then
      for i = 1, n do t[i] = flat[offset + i] end
      return t
    end
    local sub = n > 0 and stride / n or 0
    for i = 1, n do t[i] = build(d + 1, offset + (i - 1) * sub, sub) end
    return t
  end
  local total = 1
  for _, s in ipairs(shape) do total = total * s end
  return build(1, 0, total)
end

function M.same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local ndarray_mod, ndarray_tried = nil, false
function M.ndarray()
  if not ndarray_tried then
    ndarray_tried = true
    local ok, mod = pcall(require, 'nnlua.ndarray')
    if ok and type(mod) == 'table' and type(mod.from_flat) == 'function' then ndarray_mod = mod end
  end
  return ndarray_mod
end

local Plain = {}
Plain.__index = Plain
M.Plain = Plain
function Plain:flat() return self._flat end
function Plain:totable() return M.nest(self._flat, self.shape) end
function Plain:get(...)
  local idx = { ... }
  local off = 0
  for d = 1, #self.shape do off = off * self.shape[d] + ((idx[d] or 1) - 1) end
  return self._flat[off + 1]
end
function Plain:reshape(shape)
  return setmetatable({ _flat = self._flat, shape = shape, ndim = #shape, size = self.size }, Plain)
end

--- A Plain array over flat (not copied) with the given shape (not copied).
function M.plain(flat, shape)
  local size = 1
  for _, s in ipairs(shape) do size = size * s end
  return setmetatable({ _flat = flat, shape = shape, ndim = #shape, size = size }, Plain)
end

return M
