-- nnlua.ndarray: NdArray, the host array behind Variable.d / .g and the type data
-- iterators return. An NdArray is a contiguous view (offset + shape) of an engine array
-- (nl_array); a view keeps its storage alive. Indexing is 1-based on the first axis:
-- a[i] is a view of row i (a number on 1-D arrays). Printing follows numpy.
local ffi = require 'ffi'
local lib = require 'nnlua.lib'
local C = lib.C

local NdArray = {}
NdArray.__name = 'NdArray'
local methods = {}
NdArray.methods = methods

local floatp = ffi.typeof('float *')
local READ, WRITE, RW = C.NL_READ, C.NL_WRITE, C.NL_READWRITE

local function is_nd(x) return getmetatable(x) == NdArray end
NdArray.is = is_nd

local function shape_size(shape)
  local n = 1
  for i = 1, #shape do n = n * shape[i] end
  return n
end

local function copy_list(t)
  local r = {}
  for i = 1, #t do r[i] = t[i] end
  return r
end

local function check_shape(shape, where)
  if type(shape) ~= 'table' then
    error(where .. ': shape must be a list of sizes such as {2, 3}, got ' .. type(shape), 3)
  end
  for i = 1, #shape do
    local d = shape[i]
    if type(d) ~= 'number' or d < 0 or d ~= math.floor(d) or d == math.huge then
      error(where .. ': shape entry ' .. i .. ' is ' .. tostring(d) .. '; sizes are non-negative integers', 3)
    end
  end
end

-- Wraps an engine array as an NdArray view, holding a reference of its own (owned: the
-- caller's new reference; else a new one). The reference is released by the finalizer of a
-- box made for it (_ref), never by one set on `arr` itself: `arr` may be another view's _a
-- or a solver's state array, and ffi.gc on it would replace that object's finalizer (and
-- JIT-compiled code may hand back the very same pointer object even from ffi.cast), so
-- one of the references would never be released.
local ref_box = ffi.typeof('nl_array *[1]')
local function release_box(box) C.nl_array_release(box[0]) end
local function wrap(arr, off, shape, owned)
  if not owned then C.nl_array_retain(arr) end
  local ref = ffi.gc(ref_box(arr), release_box)
  -- shape, ndim and size live in private fields (read through __index; a.shape hands out
  -- a copy): writing them, or the shape list a caller got, cannot make a view reach past
  -- its storage.
  return setmetatable({ _a = arr, _ref = ref, _off = off or 0, _shape = shape, _ndim = #shape,
                        _size = shape_size(shape) }, NdArray)
end
NdArray.wrap = wrap

local function alloc(shape, where)
  check_shape(shape, where or 'NdArray')
  local n = shape_size(shape)
  local arr = C.nl_array_new(n)
  if arr == nil then lib.raise(where or 'NdArray', 2) end
  lib.memory_pressure()
  return wrap(arr, 0, copy_list(shape), true)
end

-- Pointer to the first element of this view for the given access mode.
function methods:ptr(mode)
  local p = C.nl_array_host(self._a, mode or READ)
  if p == nil then lib.raise('NdArray', 2) end
  return p + self._off
end

local function whole(self)
  return self._off == 0 and self._size == tonumber(C.nl_array_size(self._a))
end

-- ---- constructors ---------------------------------------------------------------------

function NdArray.new(shape) return alloc(shape, 'NdArray.new') end

function NdArray.zeros(shape)
  local a = alloc(shape, 'NdArray.zeros')
  C.nl_array_zero(a._a)
  return a
end

local function check_value(v, where)
  if type(v) ~= 'number' then error(where .. ': the value must be a number, got ' .. type(v), 3) end
end

function NdArray.full(shape, v)
  check_value(v, 'NdArray.full')
  local a = alloc(shape, 'NdArray.full')
  C.nl_array_fill(a._a, v)
  return a
end

function NdArray.ones(shape) return NdArray.full(shape, 1) end

function NdArray.randn(shape, mean, std)
  local a = alloc(shape, 'NdArray.randn')
  lib.check(C.nl_rand_normal(a._a, mean or 0, std or 1), 'NdArray.randn')
  return a
end

function NdArray.rand(shape, low, high)
  local a = alloc(shape, 'NdArray.rand')
  lib.check(C.nl_rand_uniform(a._a, low or 0, high or 1), 'NdArray.rand')
  return a
end

-- arange(n) = 1..n; arange(a, b[, step]) runs from a to b inclusive (Lua ranges).
function NdArray.arange(a, b, step)
  if b == nil then a, b = 1, a end
  step = step or 1
  if type(a) ~= 'number' or type(b) ~= 'number' or type(step) ~= 'number' then
    error(('NdArray.arange: start, stop and step must be numbers, got %s, %s, %s'):format(type(a), type(b), type(step)), 2)
  end
  if step == 0 then error('NdArray.arange: step must not be 0', 2) end
  local n = math.max(0, math.floor((b - a) / step + 1e-9) + 1)
  local r = alloc({ n }, 'NdArray.arange')
  local p = r:ptr(WRITE)
  for i = 0, n - 1 do p[i] = a + i * step end
  return r
end

function NdArray.from_flat(flat, shape)
  local r = alloc(shape, 'NdArray.from_flat')
  if #flat ~= r._size then
    error(('NdArray.from_flat: %d values for shape %s (%d elements)'):format(#flat, lib.shape_str(shape), r._size), 2)
  end
  local p = r:ptr(WRITE)
  for i = 1, r._size do p[i - 1] = flat[i] end
  return r
end

-- Shape of a nested Lua table, checking that it is rectangular.
local function nested_shape(t, where)
  local shape = {}
  local x = t
  while type(x) == 'table' and not is_nd(x) do
    shape[#shape + 1] = #x
    x = x[1]
  end
  local flat = {}
  local function walk(v, depth, path)
    if depth > #shape then
      local n = tonumber(v)
      if type(v) == 'boolean' then n = v and 1 or 0 end
      if n == nil then error(where .. ': element ' .. path .. ' is ' .. type(v) .. ', not a number', 4) end
      flat[#flat + 1] = n
      return
    end
    if type(v) ~= 'table' or #v ~= shape[depth] then
      error(where .. ': ragged nested table at ' .. (path == '' and 'top level' or path) ..
            ' (expected ' .. shape[depth] .. ' entries)', 4)
    end
    for i = 1, #v do walk(v[i], depth + 1, path .. '[' .. i .. ']') end
  end
  walk(t, 1, '')
  return shape, flat
end

-- NdArray.from(nested_table | NdArray | number [, shape])
function NdArray.from(t, shape)
  if is_nd(t) then return t:copy() end
  if type(t) == 'number' then return NdArray.from_flat({ t }, shape or {}) end
  if type(t) == 'cdata' and t.d then return t.d:copy() end
  if type(t) ~= 'table' then error('NdArray.from: expected a table, NdArray or number, got ' .. type(t), 2) end
  if shape then return NdArray.from_flat(t, shape) end
  local s, flat = nested_shape(t, 'NdArray.from')
  return NdArray.from_flat(flat, s)
end

-- ---- shape ------------------------------------------------------------------------------

local function resolve_shape(shape, size, where)
  if type(shape) ~= 'table' then
    error(where .. ': shape must be a list of sizes such as {2, -1}, got ' .. type(shape), 3)
  end
  local s, unknown, known = {}, nil, 1
  for i = 1, #shape do
    local d = shape[i]
    if d == -1 and not unknown then unknown = i; s[i] = -1
    else
      if type(d) ~= 'number' or d < 0 or d ~= math.floor(d) then
        error(where .. ': bad size ' .. tostring(d) .. ' at position ' .. i, 3)
      end
      s[i] = d
      known = known * d
    end
  end
  if unknown then
    if known == 0 or size % known ~= 0 then
      error(where .. ': cannot reshape ' .. size .. ' elements into ' .. lib.shape_str(shape), 3)
    end
    s[unknown] = size / known
  elseif known ~= size then
    error(where .. ': cannot reshape ' .. size .. ' elements into ' .. lib.shape_str(shape), 3)
  end
  return s
end
NdArray.resolve_shape = resolve_shape

function methods:reshape(shape, ...)
  if type(shape) == 'number' then shape = { shape, ... } end
  local s = resolve_shape(shape, self._size, 'NdArray:reshape')
  return wrap(self._a, self._off, s)
end
methods.view = methods.reshape

function methods:copy()
  local r = alloc(copy_list(self._shape), 'NdArray:copy')
  lib.check(C.nl_array_copy(r._a, 0, self._a, self._off, self._size), 'NdArray:copy')
  return r
end
methods.clone = methods.copy

function methods:fill(v)
  check_value(v, 'NdArray:fill')
  if whole(self) then C.nl_array_fill(self._a, v)
  else
    local p = self:ptr(RW)
    for i = 0, self._size - 1 do p[i] = v end
  end
  return self
end

function methods:zero()
  if whole(self) then C.nl_array_zero(self._a) else self:fill(0) end
  return self
end

-- Copies values in: an NdArray of the same size, a nested table, a flat list or a number.
function methods:set(src)
  if type(src) == 'number' then return self:fill(src) end
  if is_nd(src) then
    if src._size ~= self._size then
      error(('NdArray:set: shape %s does not match %s'):format(lib.shape_str(src._shape), lib.shape_str(self._shape)), 2)
    end
    lib.check(C.nl_array_copy(self._a, self._off, src._a, src._off, self._size), 'NdArray:set')
    return self
  end
  if type(src) == 'table' then
    local flat
    if type(src[1]) == 'table' then
      local s
      s, flat = nested_shape(src, 'NdArray:set')
      if shape_size(s) ~= self._size then
        error(('NdArray:set: a table of shape %s does not fit %s'):format(lib.shape_str(s), lib.shape_str(self._shape)), 2)
      end
    else
      flat = src
      if #flat ~= self._size then
        error(('NdArray:set: %d values for shape %s'):format(#flat, lib.shape_str(self._shape)), 2)
      end
    end
    local p = self:ptr(whole(self) and WRITE or RW)
    for i = 1, #flat do p[i - 1] = flat[i] end
    return self
  end
  error('NdArray:set: cannot set from a ' .. type(src), 2)
end

function methods:flat()
  local p, t = self:ptr(READ), {}
  for i = 0, self._size - 1 do t[i + 1] = p[i] end
  return t
end

function methods:totable()
  local p = self:ptr(READ)
  local shape = self._shape
  if #shape == 0 then return p[0] end
  local function build(depth, off)
    local t, n = {}, shape[depth]
    if depth == #shape then
      for i = 1, n do t[i] = p[off + i - 1] end
      return t
    end
    local stride = 1
    for k = depth + 1, #shape do stride = stride * shape[k] end
    for i = 1, n do t[i] = build(depth + 1, off + (i - 1) * stride) end
    return t
  end
  return build(1, 0)
end

local function offset_of(self, idx, where, level)
  level = level or 3
  if #idx ~= self._ndim then
    error(('%s: %d indices for a %d-d array'):format(where, #idx, self._ndim), level)
  end
  local off, stride = 0, 1
  for k = self._ndim, 1, -1 do
    local i, n = idx[k], self._shape[k]
    if type(i) ~= 'number' then
      error(('%s: index %d is a %s; indices are numbers'):format(where, k, type(i)), level)
    end
    if i < 0 then i = n + i + 1 end
    if i < 1 or i > n or i ~= math.floor(i) then
      error(('%s: index %s out of range 1..%d on axis %d'):format(where, tostring(idx[k]), n, k), level)
    end
    off = off + (i - 1) * stride
    stride = stride * n
  end
  return off
end

function methods:get(...) return self:ptr(READ)[offset_of(self, { ... }, 'NdArray:get')] end
function methods:setat(v, ...)
  check_value(v, 'NdArray:setat')
  self:ptr(RW)[offset_of(self, { ... }, 'NdArray:setat')] = v
  return self
end
function methods:item()
  if self._size ~= 1 then error('NdArray:item: array of shape ' .. lib.shape_str(self._shape) .. ' has ' .. self._size .. ' elements', 2) end
  return self:ptr(READ)[0]
end

-- Row i of the first axis (a view), or a number on 1-D arrays.
local function row(self, i, level)
  level = level or 3
  local n = self._shape[1]
  if n == nil then error('NdArray: cannot index a 0-d array', level) end
  if i < 0 then i = n + i + 1 end
  if i < 1 or i > n or i ~= math.floor(i) then
    error(('NdArray: index %s out of range 1..%d'):format(tostring(i), n), level)
  end
  if self._ndim == 1 then return nil, self._off + i - 1 end
  local sub = {}
  for k = 2, self._ndim do sub[k - 1] = self._shape[k] end
  local stride = shape_size(sub)
  return wrap(self._a, self._off + (i - 1) * stride, sub)
end

-- Rows i..j (inclusive, 1-based, negatives from the end) of the first axis, as a view.
function methods:rows(i, j)
  local n = self._shape[1]
  if n == nil then error('NdArray:rows: cannot take rows of a 0-d array', 2) end
  j = j or n
  if i < 0 then i = n + i + 1 end
  if j < 0 then j = n + j + 1 end
  if i < 1 or j > n or i > j + 1 then
    error(('NdArray:rows: rows %d..%d out of range 1..%d'):format(i, j, n), 2)
  end
  local s = copy_list(self._shape)
  s[1] = j - i + 1
  local stride = self._size / n
  return wrap(self._a, self._off + (i - 1) * stride, s)
end

-- a[{i, j, ...}]: one index per axis -> (nil, the element's offset); fewer -> the view of
-- those leading rows. Called from the metamethods (errors point at the indexing code).
local function multi(self, idx)
  if getmetatable(idx) ~= nil or #idx == 0 or #idx > self._ndim then
    error(('NdArray: a table index is a list of 1 to %d numbers for this %d-d array, as in a[{1, 2}]; '
           .. 'ranges: a:rows(i, j), or slice a Variable'):format(self._ndim, self._ndim), 3)
  end
  if #idx == self._ndim then return nil, self._off + offset_of(self, idx, 'NdArray', 4) end
  local v = self
  for k = 1, #idx do
    if type(idx[k]) ~= 'number' then
      error(('NdArray: index %d is a %s; indices are numbers'):format(k, type(idx[k])), 3)
    end
    v = row(v, idx[k], 4)
  end
  return v
end

NdArray.__index = function(self, k)
  local tk = type(k)
  if tk == 'number' or tk == 'table' then
    local v, off
    if tk == 'number' then v, off = row(self, k) else v, off = multi(self, k) end
    if v then return v end
    return C.nl_array_host(self._a, READ)[off]
  end
  if k == 'size' then return self._size end
  if k == 'ndim' then return self._ndim end
  if k == 'shape' then return setmetatable(copy_list(self._shape), lib.Shape) end   -- prints as {2, 3}
  return methods[k]
end

NdArray.__newindex = function(self, k, v)
  local tk = type(k)
  if tk == 'number' or tk == 'table' then
    local sub, off
    if tk == 'number' then sub, off = row(self, k) else sub, off = multi(self, k) end
    if sub then sub:set(v)
    else
      if type(v) ~= 'number' then
        error(('NdArray: cannot store a %s in an element (numbers only)'):format(type(v)), 2)
      end
      C.nl_array_host(self._a, RW)[off] = v
    end
    return
  end
  if k == 'shape' then   -- numpy's a.shape = (...): reshape in place, same number of elements
    local s = resolve_shape(v, self._size, 'NdArray.shape')
    rawset(self, '_shape', s)
    rawset(self, '_ndim', #s)
    return
  end
  if k == 'size' or k == 'ndim' then
    error("NdArray: field '" .. k .. "' is read-only (reshape to change it)", 2)
  end
  rawset(self, k, v)
end

-- ---- element-wise arithmetic and comparisons --------------------------------------------

-- Broadcast two shapes numpy-style; returns the result shape or raises.
local function broadcast_shape(a, b, where)
  local n = math.max(#a, #b)
  local s = {}
  for i = 1, n do
    local da = a[#a - n + i] or 1
    local db = b[#b - n + i] or 1
    if da ~= db and da ~= 1 and db ~= 1 then
      error(('%s: shapes %s and %s cannot be broadcast together'):format(where, lib.shape_str(a), lib.shape_str(b)), 4)
    end
    s[i] = (da == 1) and db or da
  end
  return s
end

-- Strides of `shape` seen from a broadcast result of ndim n (0 on broadcast dims).
local function bstrides(shape, n)
  local st, acc = {}, 1
  for i = n, 1, -1 do
    local d = shape[#shape - n + i] or 1
    st[i] = (d == 1) and 0 or acc
    acc = acc * d
  end
  return st
end

local function binary(op, name)
  return function(a, b)
    local where = 'NdArray ' .. name
    if type(a) == 'number' then
      local r = b:copy()
      local p = r:ptr(RW)
      for i = 0, r._size - 1 do p[i] = op(a, p[i]) end
      return r
    elseif type(b) == 'number' then
      local r = a:copy()
      local p = r:ptr(RW)
      for i = 0, r._size - 1 do p[i] = op(p[i], b) end
      return r
    end
    for k = 1, 2 do
      local x = k == 1 and a or b
      if not is_nd(x) and type(x) ~= 'table' then
        error(('%s: cannot combine an NdArray with a %s%s'):format(where, type(x),
              type(x) == 'cdata' and ' (a Variable? use nn.Variable.from(array) to build a graph)' or ''), 2)
      end
    end
    if not is_nd(b) then b = NdArray.from(b) end
    if not is_nd(a) then a = NdArray.from(a) end
    local pa, pb = a:ptr(READ), b:ptr(READ)
    if a._size == b._size and a._ndim == b._ndim then
      local r = alloc(copy_list(a._shape), where)
      local pr = r:ptr(WRITE)
      for i = 0, r._size - 1 do pr[i] = op(pa[i], pb[i]) end
      return r
    end
    local s = broadcast_shape(a._shape, b._shape, where)
    local r = alloc(s, where)
    local pr = r:ptr(WRITE)
    local n = #s
    local sa, sb = bstrides(a._shape, n), bstrides(b._shape, n)
    local idx = {}
    for k = 1, n do idx[k] = 0 end
    local ia, ib = 0, 0
    for i = 0, r._size - 1 do
      pr[i] = op(pa[ia], pb[ib])
      for k = n, 1, -1 do
        ia, ib = ia + sa[k], ib + sb[k]
        idx[k] = idx[k] + 1
        if idx[k] < s[k] then break end
        ia, ib = ia - sa[k] * s[k], ib - sb[k] * s[k]
        idx[k] = 0
      end
    end
    return r
  end
end

NdArray.__add = binary(function(x, y) return x + y end, '+')
NdArray.__sub = binary(function(x, y) return x - y end, '-')
NdArray.__mul = binary(function(x, y) return x * y end, '*')
NdArray.__div = binary(function(x, y) return x / y end, '/')
NdArray.__pow = binary(function(x, y) return x ^ y end, '^')
NdArray.__mod = binary(function(x, y) return x % y end, '%')
NdArray.__unm = function(a) return a * -1 end
NdArray.__concat = function(a, b) return tostring(a) .. tostring(b) end

local function b2f(c) return c and 1 or 0 end
methods.eq = binary(function(x, y) return b2f(x == y) end, 'eq')
methods.ne = binary(function(x, y) return b2f(x ~= y) end, 'ne')
methods.lt = binary(function(x, y) return b2f(x < y) end, 'lt')
methods.le = binary(function(x, y) return b2f(x <= y) end, 'le')
methods.gt = binary(function(x, y) return b2f(x > y) end, 'gt')
methods.ge = binary(function(x, y) return b2f(x >= y) end, 'ge')
methods.add = NdArray.__add
methods.sub = NdArray.__sub
methods.mul = NdArray.__mul
methods.div = NdArray.__div
methods.pow = NdArray.__pow
methods.maximum = binary(function(x, y) return x > y and x or y end, 'maximum')
methods.minimum = binary(function(x, y) return x < y and x or y end, 'minimum')

local function unary(fn)
  return function(self)
    local r = self:copy()
    local p = r:ptr(RW)
    for i = 0, r._size - 1 do p[i] = fn(p[i]) end
    return r
  end
end
methods.abs = unary(math.abs)
methods.exp = unary(math.exp)
methods.log = unary(math.log)
methods.sqrt = unary(math.sqrt)
methods.tanh = unary(function(x) local e = math.exp(2 * x) return (e - 1) / (e + 1) end)
methods.floor = unary(math.floor)
methods.round = unary(function(x) return x >= 0 and math.floor(x + 0.5) or -math.floor(-x + 0.5) end)
function methods:apply(fn) return unary(fn)(self) end

-- ---- reductions ------------------------------------------------------------------------

local function norm_axis(self, axis, where)
  local n = self._ndim
  local a = axis < 0 and n + axis + 1 or axis
  if n == 0 then error(('%s: axis %s given for a 0-d array (it has no axes)'):format(where, tostring(axis)), 3) end
  if axis == 0 or a < 1 or a > n or a ~= math.floor(a) then
    error(('%s: axis %s is out of range for a %d-d array (axes are 1..%d or -%d..-1)'):format(where, tostring(axis), n, n, n), 3)
  end
  return a
end

-- reduce(self, opts, init, step, finish): over all elements (returns a number) or one axis.
local function reducer(name, init, step, finish, index_result)
  return function(self, opts)
    local axis, keepdims
    if type(opts) == 'number' then axis = opts
    elseif type(opts) == 'table' then
      for k in pairs(opts) do
        if k ~= 'axis' and k ~= 'keepdims' then
          error(("NdArray:%s: unknown option '%s' (options: axis, keepdims)"):format(name, tostring(k)), 2)
        end
      end
      axis, keepdims = opts.axis, opts.keepdims
      if axis ~= nil and type(axis) ~= 'number' then
        error(('NdArray:%s: axis must be a number, got %s'):format(name, type(axis)), 2)
      end
    elseif opts ~= nil then
      error(('NdArray:%s: expected an axis or {axis =, keepdims =}, got %s'):format(name, type(opts)), 2)
    end
    local p = self:ptr(READ)
    local needs_one = name == 'max' or name == 'min' or name == 'argmax' or name == 'argmin'
    if axis == nil then
      if self._size == 0 and needs_one then
        error('NdArray:' .. name .. ': empty array', 2)
      end
      local acc, ai = init, 0
      for i = 0, self._size - 1 do acc, ai = step(acc, p[i], i, ai) end
      return finish(acc, self._size, ai)
    end
    local a = norm_axis(self, axis, 'NdArray:' .. name)
    local outer, inner, n = 1, 1, self._shape[a]
    if n == 0 and needs_one then
      error(('NdArray:%s: axis %d of shape %s is empty'):format(name, axis, lib.shape_str(self._shape)), 2)
    end
    for k = 1, a - 1 do outer = outer * self._shape[k] end
    for k = a + 1, self._ndim do inner = inner * self._shape[k] end
    local s = {}
    for k = 1, self._ndim do
      if k ~= a then s[#s + 1] = self._shape[k] elseif keepdims then s[#s + 1] = 1 end
    end
    local r = alloc(s, 'NdArray:' .. name)
    local pr = r:ptr(WRITE)
    for o = 0, outer - 1 do
      for i = 0, inner - 1 do
        local acc, ai = init, 0
        local base = o * n * inner + i
        for j = 0, n - 1 do acc, ai = step(acc, p[base + j * inner], j, ai) end
        pr[o * inner + i] = finish(acc, n, ai)
      end
    end
    return r
  end
end

methods.sum = reducer('sum', 0, function(acc, v) return acc + v, 0 end, function(acc) return acc end)
methods.mean = reducer('mean', 0, function(acc, v) return acc + v, 0 end, function(acc, n) return acc / n end)
-- As numpy: a NaN wins (max and min are NaN, argmax/argmin point at the first NaN).
local function more(acc, v, j, ai)
  if v > acc or (v ~= v and acc == acc) then return v, j end
  return acc, ai
end
local function less(acc, v, j, ai)
  if v < acc or (v ~= v and acc == acc) then return v, j end
  return acc, ai
end
methods.max = reducer('max', -math.huge, more, function(acc) return acc end)
methods.min = reducer('min', math.huge, less, function(acc) return acc end)
-- argmax/argmin give 1-based positions, like every index in nnlua.
methods.argmax = reducer('argmax', -math.huge, more, function(_, _, ai) return ai + 1 end)
methods.argmin = reducer('argmin', math.huge, less, function(_, _, ai) return ai + 1 end)

-- ---- printing like numpy --------------------------------------------------------------

local function fmt_numbers(vals)
  local all_int, maxabs, minabs = true, 0, math.huge
  for _, v in ipairs(vals) do
    if v ~= v or v == math.huge or v == -math.huge then
    else
      if v ~= math.floor(v) then all_int = false end
      local a = math.abs(v)
      if a > maxabs then maxabs = a end
      if a > 0 and a < minabs then minabs = a end
    end
  end
  local f
  if all_int and maxabs < 1e8 then
    f = function(v) return ('%d.'):format(v) end
  elseif maxabs >= 1e8 or (minabs < 1e-4 and minabs > 0) then
    f = function(v) return ('%.4e'):format(v) end
  else
    f = function(v)
      local s = ('%.4f'):format(v):gsub('0+$', '')
      return s
    end
  end
  local out = {}
  for i, v in ipairs(vals) do
    if v ~= v then out[i] = 'nan'
    elseif v == math.huge then out[i] = 'inf'
    elseif v == -math.huge then out[i] = '-inf'
    else out[i] = f(v) end
  end
  return out
end

local EDGE = 3
function NdArray.format(self, prefix, suffix, threshold)
  prefix = prefix or 'array('
  local summarize = self._size > (threshold or 1000)   -- threshold: the REPL's shorter previews
  local p = self:ptr(READ)
  local shape = self._shape
  -- Collect the printed values (with '...' gaps) to find a common width.
  local function keep(n)
    if summarize and n > 2 * EDGE then
      local t = {}
      for i = 1, EDGE do t[#t + 1] = i end
      t[#t + 1] = false
      for i = n - EDGE + 1, n do t[#t + 1] = i end
      return t
    end
    local t = {}
    for i = 1, n do t[i] = i end
    return t
  end
  local vals = {}
  local function collect(depth, off)
    if depth > #shape then vals[#vals + 1] = p[off] return end
    local stride = 1
    for k = depth + 1, #shape do stride = stride * shape[k] end
    for _, i in ipairs(keep(shape[depth])) do
      if i then collect(depth + 1, off + (i - 1) * stride) end
    end
  end
  collect(1, 0)
  local strs = fmt_numbers(vals)
  -- Align like numpy: integer parts to the right, fractional parts padded on the right.
  local wi, wf = 0, 0
  for _, s in ipairs(strs) do
    local ip, fp = s:match('^([^.]*)%.(.*)$')
    if ip and not s:find('e', 1, true) then
      wi, wf = math.max(wi, #ip), math.max(wf, #fp)
    end
  end
  for k, s in ipairs(strs) do
    local ip, fp = s:match('^([^.]*)%.(.*)$')
    if ip and not s:find('e', 1, true) then
      strs[k] = (' '):rep(wi - #ip) .. ip .. '.' .. fp .. (' '):rep(wf - #fp)
    end
  end
  local width = 0
  for _, s in ipairs(strs) do if #s > width then width = #s end end
  local pos = 0
  local indent = (' '):rep(#prefix)
  local function render(depth, off)
    if depth > #shape then
      pos = pos + 1
      return (' '):rep(width - #strs[pos]) .. strs[pos]
    end
    local stride = 1
    for k = depth + 1, #shape do stride = stride * shape[k] end
    local parts = {}
    for _, i in ipairs(keep(shape[depth])) do
      if i then parts[#parts + 1] = render(depth + 1, off + (i - 1) * stride)
      else parts[#parts + 1] = '...' end
    end
    if depth == #shape then return '[' .. table.concat(parts, ', ') .. ']' end
    local sep = ',' .. ('\n'):rep(#shape - depth) .. indent .. (' '):rep(depth)
    return '[' .. table.concat(parts, sep) .. ']'
  end
  local body
  if #shape == 0 then body = strs[1] else body = render(1, 0) end
  return prefix .. body .. ', shape=' .. lib.shape_str(shape) .. (suffix or ')')
end

NdArray.__tostring = function(self) return NdArray.format(self) end
function methods:tostring() return NdArray.format(self) end

-- Plain Lua data or an NdArray -> NdArray (no copy for NdArrays).
function NdArray.as(x, where)
  if is_nd(x) then return x end
  if type(x) == 'table' or type(x) == 'number' then return NdArray.from(x) end
  error((where or 'NdArray.as') .. ': expected an NdArray or a table, got ' .. type(x), 3)
end

setmetatable(NdArray, { __call = function(_, shape) return NdArray.new(shape) end })

return NdArray
