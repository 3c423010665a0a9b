-- nnlua.data: NNabla-style data iterators.
--
--   local data = require 'nnlua.data'
--   local it = data.data_iterator_simple(function(i)   -- i = 1..n
--     return images[i], labels[i]                       -- one value per variable
--   end, n, 64, {shuffle = true, seed = 313})
--   local x, t = it:next()                               -- NdArrays {64, ...}, {64, ...}
--
-- Semantics follow NNabla's DataIterator (python/src/nnabla/utils/data_iterator.py):
--   * load_fn(i) returns one or more values per sample: numbers (a variable of shape {} -> a
--     batch of shape {batch_size}), flat Lua lists, nested tables, NdArrays or Variables. All
--     samples must have the same shapes; the variables are named x0, x1, ...
--   * next() returns one array per variable, shaped {batch_size, sample_shape...}.
--   * Epochs wrap inside a batch: when the position reaches size, the order is reset (a new
--     permutation when shuffling) and the batch goes on with the next epoch. epoch counts
--     completed passes; the epoch_end callbacks (old epoch) and epoch_begin callbacks (new
--     epoch) fire after such a batch has been built. Every epoch visits each sample once.
--   * stop_exhausted = true: next() returns nil instead of a batch that would run past the end
--     of the data (no partial batches); the following next() starts a new epoch.
--   * Shuffling uses this module's own deterministic PRNG (splitmix64 on 64-bit integers)
--     seeded by `seed` (default 313): the same seed gives the same order on every run.
--   * with_memory_cache = true (default) keeps every loaded sample (as float32, like NNabla),
--     so load_fn is called once per sample.
--   * it:slice(rng, num_of_slices, slice_pos) (slice_pos 1-based) takes NNabla's share of the
--     data for one rank; it:slice(rng, {slice_start =, slice_end =}) a 1-based inclusive range.
-- Batches are built in a reused flat buffer per variable and handed to NdArray.from_flat
-- (which copies). Without nnlua.ndarray, a minimal array object (shape, :flat(), :totable(),
-- :get(...)) is returned instead.

local M = {}

local floor, fmt = math.floor, string.format

local ok_ffi, ffi = pcall(require, 'ffi')
if not ok_ffi then ffi = nil end
local bit = require 'bit'
local values = require 'nnlua.values'

----------------------------------------------------------------------------------------------
-- PRNG: splitmix64 on uint64 cdata (exact 64-bit arithmetic)
----------------------------------------------------------------------------------------------

local Rng = {}
Rng.__index = Rng

local GOLDEN, MIX1, MIX2
if ffi then
  GOLDEN = 0x9E3779B97F4A7C15ULL
  MIX1 = 0xBF58476D1CE4E5B9ULL
  MIX2 = 0x94D049BB133111EBULL
end

--- data.Rng(seed): a deterministic generator. rng:next_u64() (uint64 cdata), rng:random()
-- (a double in [0, 1) with 53 random bits), rng:randint(n) (1..n), rng:permutation(n).
function M.Rng(seed)
  seed = seed or 313
  if type(seed) ~= 'number' or seed ~= floor(seed) or seed < 0 or seed >= 2 ^ 53 then
    error('data.Rng: seed must be a non-negative integer below 2^53', 2)
  end
  if not ffi then error('data.Rng: needs LuaJIT (ffi)', 2) end
  local state = ffi.new('uint64_t[1]')
  state[0] = seed
  return setmetatable({ state = state, seed = seed }, Rng)
end

function Rng:next_u64()
  local s = self.state
  s[0] = s[0] + GOLDEN
  local z = s[0]
  z = bit.bxor(z, bit.rshift(z, 30)) * MIX1
  z = bit.bxor(z, bit.rshift(z, 27)) * MIX2
  return bit.bxor(z, bit.rshift(z, 31))
end

function Rng:random()
  return tonumber(bit.rshift(self:next_u64(), 11)) * 2 ^ -53
end

function Rng:randint(n)
  return floor(self:random() * n) + 1
end

--- A permutation of 1..n (Fisher-Yates).
function Rng:permutation(n)
  local p = {}
  for i = 1, n do p[i] = i end
  for i = n, 2, -1 do
    local j = floor(self:random() * i) + 1
    p[i], p[j] = p[j], p[i]
  end
  return p
end

----------------------------------------------------------------------------------------------
-- Array helpers
----------------------------------------------------------------------------------------------

local NdArray = values.ndarray

local function shape_str(s)
  return '{' .. table.concat(s, ',') .. '}'
end

local shape_eq = values.same_shape

-- Flat values and shape of one sample value (a number, a boolean, an NdArray, a Variable, a
-- nested table or a flat list; nnlua.values). Errors are returned (nil, message).
local SAMPLE_ERRORS = {
  type = 'a %s (expected a number, a table or an NdArray)',
  element = 'a table with a non-numeric element (%s)',
  ragged = 'a ragged nested table',
}
local SAMPLE_SCALARS = { number = true, boolean = true }
local function sample_of(x)
  local flat, shape = values.flatten(x, SAMPLE_SCALARS)
  if not flat then return nil, values.message(shape, SAMPLE_ERRORS) end
  return flat, shape
end
M._sample_of = sample_of

-- Minimal array object used when nnlua.ndarray is not available.
M._Plain = values.Plain

local function build_array(buffer, size, shape)
  local N = NdArray()
  if N then return N.from_flat(buffer, shape) end
  local copy = {}
  for i = 1, size do copy[i] = buffer[i] end
  local s = {}
  for i = 1, #shape do s[i] = shape[i] end
  return values.plain(copy, s)
end

----------------------------------------------------------------------------------------------
-- Memory cache (float32, outside the Lua heap when the FFI is available)
----------------------------------------------------------------------------------------------

local malloc_ok = false
if ffi then
  pcall(ffi.cdef, 'void *malloc(size_t size);')
  pcall(ffi.cdef, 'void free(void *ptr);')
  malloc_ok = pcall(function() return ffi.C.malloc ~= nil and ffi.C.free ~= nil end)
end

local function new_store(n)
  if ffi and malloc_ok and n > 0 then
    local p = ffi.C.malloc(n * 4)
    if p == nil then error(fmt('data iterator: out of memory for a %d-value cache', n), 0) end
    return ffi.gc(ffi.cast('float *', p), ffi.C.free), 0
  end
  return {}, 1          -- Lua table, 1-based
end

----------------------------------------------------------------------------------------------
-- The iterator
----------------------------------------------------------------------------------------------

local DataIterator = {}
DataIterator.__index = DataIterator
M.DataIterator = DataIterator

local ITER_OPTS = {
  shuffle = true, seed = true, rng = true, with_memory_cache = true, epoch_begin_callbacks = true,
  epoch_end_callbacks = true, stop_exhausted = true, use_thread = true, with_file_cache = true,
  cache_dir = true,
}

-- A value as error messages show it: numbers as themselves, strings quoted, else the type.
local function describe(v)
  if type(v) == 'number' or type(v) == 'boolean' then return tostring(v) end
  if type(v) == 'string' then return fmt("'%s' (a string)", v) end
  return 'a ' .. type(v)
end

local BOOL_OPTS = { 'shuffle', 'with_memory_cache', 'stop_exhausted', 'use_thread' }

local function check_opts(who, opts)
  if opts == nil then return {} end
  if type(opts) ~= 'table' then error(who .. ': options must be a table, got ' .. describe(opts), 3) end
  for k in pairs(opts) do
    if not ITER_OPTS[k] then
      local names = {}
      for a in pairs(ITER_OPTS) do names[#names + 1] = a end
      table.sort(names)
      error(fmt("%s: unknown option '%s' (known: %s)", who, tostring(k), table.concat(names, ', ')), 3)
    end
  end
  for _, k in ipairs(BOOL_OPTS) do
    local v = opts[k]
    if v ~= nil and type(v) ~= 'boolean' then
      error(fmt('%s: %s must be true or false, got %s', who, k, describe(v)), 3)
    end
  end
  if opts.with_file_cache then error(who .. ': with_file_cache is not supported', 3) end
  return opts
end

-- A positive integer count (finite: a loop runs up to it).
local function check_count(who, what, v)
  if type(v) ~= 'number' or v < 1 or v ~= floor(v) or v >= 2 ^ 53 then
    error(fmt('%s: %s must be a positive integer, got %s', who, what, describe(v)), 3)
  end
end

local function callbacks(who, list, name)
  local out = {}
  if list == nil then return out end
  if type(list) == 'function' then return { list } end
  if type(list) ~= 'table' then error(fmt('%s: %s must be a list of functions', who, name), 3) end
  for i, f in ipairs(list) do
    if type(f) ~= 'function' then error(fmt('%s: %s[%d] is not a function', who, name, i), 3) end
    out[i] = f
  end
  return out
end

-- get(i) -> values...; returns the iterator. Always tail-called: its level-2 errors reach the
-- user's line.
local function make_iterator(who, get, size, batch_size, variables, opts)
  check_count(who, 'the number of examples', size)
  check_count(who, 'batch_size', batch_size)
  local shuffle = opts.shuffle and true or false
  local rng, seed = opts.rng, opts.seed
  if rng ~= nil then
    if type(rng) ~= 'table' or type(rng.permutation) ~= 'function' then
      error(who .. ': rng must be a data.Rng, got ' .. describe(rng), 2)
    end
  else
    if seed ~= nil and (type(seed) ~= 'number' or seed < 0 or seed ~= floor(seed) or seed >= 2 ^ 53) then
      error(who .. ': seed must be a non-negative integer below 2^53, got ' .. describe(seed), 2)
    end
    rng = M.Rng(seed or 313)
  end
  local self = setmetatable({
    who = who, _get = get, size = size, batch_size = batch_size, epoch = 0, position = 0,
    shuffle = shuffle, stop_exhausted = opts.stop_exhausted and true or false,
    rng = rng, _cache = opts.with_memory_cache ~= false,
    _begin = callbacks(who, opts.epoch_begin_callbacks, 'epoch_begin_callbacks'),
    _end = callbacks(who, opts.epoch_end_callbacks, 'epoch_end_callbacks'),
  }, DataIterator)
  -- the first sample fixes the variables and their shapes
  local first = self:_load(1, true)
  local nvar = #first
  if nvar == 0 then error(who .. ': load_fn(1) returned no values', 2) end
  if variables then
    if type(variables) ~= 'table' then
      error(who .. ': source.variables must be a list of names, got ' .. describe(variables), 2)
    end
    if #variables ~= nvar then
      error(fmt('%s: source.variables names %d variables but get(1) returned %d values', who,
                #variables, nvar), 2)
    end
    for v = 1, nvar do
      if type(variables[v]) ~= 'string' then
        error(fmt('%s: source.variables[%d] must be a string, got %s', who, v, describe(variables[v])), 2)
      end
    end
  else
    variables = {}
    for v = 1, nvar do variables[v] = 'x' .. (v - 1) end
  end
  self.variables = variables
  self._nvar = nvar
  self._shapes, self._sizes, self._buffers = {}, {}, {}
  for v = 1, nvar do
    self._shapes[v] = first[v].shape
    self._sizes[v] = #first[v].flat
    self._buffers[v] = {}
  end
  if self._cache then
    self._store, self._base, self._loaded = {}, {}, {}
    for v = 1, nvar do
      self._store[v], self._base[v] = new_store(size * self._sizes[v])
    end
    self._store_ffi = type(self._store[1]) == 'cdata'
    for v = 1, nvar do
      if type(self._store[v]) ~= 'cdata' then self._store_ffi = false end
    end
    self:_put(1, first)
  else
    self._first = first
  end
  self._order = shuffle and rng:permutation(size) or nil
  return self
end

local function pack(...)
  return { n = select('#', ...), ... }
end

-- Loads sample i (1-based) through get, checking the shapes: a list of {flat =, shape =}.
function DataIterator:_load(i, is_first)
  local vals = pack(self._get(i))
  local n = vals.n
  local out = {}
  if not is_first and n ~= self._nvar then
    error(fmt('%s: load_fn(%d) returned %d value(s) but sample 1 returned %d', self.who, i, n,
              self._nvar), 0)
  end
  for v = 1, n do
    local flat, shape = sample_of(vals[v])
    if not flat then
      error(fmt('%s: load_fn(%d) returned %s as value %d', self.who, i, shape, v), 0)
    end
    if not is_first then
      local want = self._shapes[v]
      if not shape_eq(shape, want) then
        local which = self._nvar > 1 and (' for ' .. self.variables[v]) or ''
        error(fmt('%s: load_fn(%d) returned shape %s%s but sample 1 had %s', self.who, i,
                  shape_str(shape), which, shape_str(want)), 0)
      end
    end
    out[v] = { flat = flat, shape = shape }
  end
  return out
end

function DataIterator:_put(i, sample)
  for v = 1, self._nvar do
    local store, sz = self._store[v], self._sizes[v]
    local off = (i - 1) * sz + self._base[v]
    local flat = sample[v].flat
    for k = 1, sz do store[off + k - 1] = flat[k] end
  end
  self._loaded[i] = true
end

-- Copies sample i into the batch buffers at row b (0-based).
function DataIterator:_fill(b, i)
  if self._cache then
    if not self._loaded[i] then self:_put(i, self:_load(i)) end
    for v = 1, self._nvar do
      local store, sz, buf = self._store[v], self._sizes[v], self._buffers[v]
      local src = (i - 1) * sz + self._base[v]
      local dst = b * sz
      for k = 1, sz do buf[dst + k] = store[src + k - 1] end
    end
  else
    local sample
    if i == 1 and self._first then sample = self._first; self._first = nil
    else sample = self:_load(i) end
    for v = 1, self._nvar do
      local flat, sz, buf = sample[v].flat, self._sizes[v], self._buffers[v]
      local dst = b * sz
      for k = 1, sz do buf[dst + k] = flat[k] end
    end
  end
end

function DataIterator:_new_epoch_order()
  if self.shuffle then self._order = self.rng:permutation(self.size) end
  self.position = 0
end

function DataIterator:_fire(n_reset)
  for _ = 1, n_reset do
    for _, f in ipairs(self._end) do f(self.epoch) end
    self.epoch = self.epoch + 1
    for _, f in ipairs(self._begin) do f(self.epoch) end
  end
end

-- Methods called with a dot (it.next() as in Python) get a clear error.
local function check_self(self, method)
  if type(self) ~= 'table' or self._get == nil then
    error(fmt('DataIterator:%s: call it with a colon, it:%s(...) (self was %s)', method, method,
              describe(self)), 3)
  end
end

--- it:next() -> one array per variable, shaped {batch_size, sample_shape...}
-- (nil at the end of the data when stop_exhausted is set). When load_fn fails, the error is
-- raised and the iterator is left where it was (no sample is skipped on a retry).
function DataIterator:next()
  check_self(self, 'next')
  local bs = self.batch_size
  if self.stop_exhausted and self.position + bs > self.size then
    -- end of data: start the next epoch for the following call
    self:_new_epoch_order()
    self:_fire(1)
    return nil
  end
  local position, order, state = self.position, self._order, self.rng.state
  local seed_state = type(state) == 'cdata' and state[0] or nil
  local ok, out, n_reset = pcall(self._batch, self)
  if not ok then
    self.position, self._order = position, order
    if seed_state then state[0] = seed_state end
    error(out, 0)
  end
  self:_fire(n_reset)
  return unpack(out, 1, self._nvar)
end

-- Builds one batch, moving the position (and the order at epoch ends): out, n_reset.
function DataIterator:_batch()
  local bs = self.batch_size
  local n_reset = 0
  local order = self._order
  local direct = self:_direct_arrays()
  for b = 0, bs - 1 do
    local p = self.position + 1
    local i = order and order[p] or p
    if direct then self:_copy_direct(direct, b, i) else self:_fill(b, i) end
    self.position = p
    if p >= self.size and not self.stop_exhausted then
      n_reset = n_reset + 1
      self:_new_epoch_order()
      order = self._order
    end
  end
  local out = {}
  for v = 1, self._nvar do
    if direct then
      out[v] = direct[v]
      direct[v] = nil
    else
      local shape = { bs }
      for _, d in ipairs(self._shapes[v]) do shape[#shape + 1] = d end
      out[v] = build_array(self._buffers[v], bs * self._sizes[v], shape)
    end
  end
  return out, n_reset
end

-- With the memory cache outside the Lua heap and NdArray available, batches are copied
-- straight from the cache into fresh engine arrays (one ffi.copy per sample and variable):
-- returns those arrays (a reused list), else nil.
function DataIterator:_direct_arrays()
  if not (self._cache and self._store_ffi) then return nil end
  local N = NdArray()
  if not N then return nil end
  local bs = self.batch_size
  if not self._batch_shapes then
    self._batch_shapes, self._direct, self._ptrs = {}, {}, {}
    for v = 1, self._nvar do
      local shape = { bs }
      for _, d in ipairs(self._shapes[v]) do shape[#shape + 1] = d end
      self._batch_shapes[v] = shape
    end
    self._write_mode = require('nnlua.lib').C.NL_WRITE
  end
  local arrays, ptrs = self._direct, self._ptrs
  for v = 1, self._nvar do
    local a = N.new(self._batch_shapes[v])
    arrays[v] = a
    ptrs[v] = a:ptr(self._write_mode)
  end
  return arrays
end

function DataIterator:_copy_direct(arrays, b, i)
  if not self._loaded[i] then self:_put(i, self:_load(i)) end
  local ptrs = self._ptrs
  for v = 1, self._nvar do
    local sz = self._sizes[v]
    ffi.copy(ptrs[v] + b * sz, self._store[v] + (i - 1) * sz, sz * 4)
  end
end

--- for x, y in it:iter() do ... end (endless unless stop_exhausted; then one epoch).
function DataIterator:iter()
  check_self(self, 'iter')
  return function() return self:next() end
end

--- The shape of one sample of variable v (1-based index or name).
function DataIterator:sample_shape(v)
  if type(v) == 'string' then
    for k, name in ipairs(self.variables) do if name == v then v = k end end
  end
  local s = self._shapes[v or 1]
  if not s then error('DataIterator:sample_shape: no variable ' .. tostring(v), 2) end
  local c = {}
  for i = 1, #s do c[i] = s[i] end
  return c
end

--- Restarts at the beginning of a new epoch (reshuffled), firing the callbacks.
function DataIterator:reset()
  self:_new_epoch_order()
  self:_fire(1)
end

function DataIterator:register_epoch_begin_callback(f)
  if type(f) ~= 'function' then error('register_epoch_begin_callback: expected a function', 2) end
  self._begin[#self._begin + 1] = f
end

function DataIterator:register_epoch_end_callback(f)
  if type(f) ~= 'function' then error('register_epoch_end_callback: expected a function', 2) end
  self._end[#self._end + 1] = f
end

function DataIterator:close() end

-- NNabla's slice bounds (0-based, half-open) of slice pos of n, returned 1-based inclusive.
local function slice_bounds(size, n, pos, drop_last)
  local start, stop
  if drop_last then
    local per = floor(size / n)
    start = per * pos
    stop = start + per
  else
    local per = floor((size + n - 1) / n)
    start = (per * pos) % size
    stop = start + per
    if stop > size then start, stop = start - (stop - size), size end
  end
  return start + 1, stop
end

--- it:slice(rng, num_of_slices, slice_pos [, {drop_last = false}]) or
-- it:slice(rng, {slice_start =, slice_end =}) (1-based, inclusive): a new iterator over part
-- of the data (for one rank of distributed training), with the same batch size, variables,
-- shuffling and cache setting; rng a data.Rng or nil (seed 313).
function DataIterator:slice(rng, a, b, c)
  check_self(self, 'slice')
  local who = 'DataIterator:slice'
  local first, last
  if type(a) == 'table' then
    if a.slice_start == nil or a.slice_end == nil then
      error(who .. ': give num_of_slices and slice_pos, or {slice_start =, slice_end =}', 2)
    end
    first, last = a.slice_start, a.slice_end
  else
    check_count(who, 'num_of_slices', a)
    if type(b) ~= 'number' or b < 1 or b > a or b ~= floor(b) then
      error(fmt('%s: slice_pos must be an integer in 1..%d, got %s', who, a, describe(b)), 2)
    end
    if a > self.size then
      error(fmt('%s: %d slices of %d examples', who, a, self.size), 2)
    end
    first, last = slice_bounds(self.size, a, b - 1, type(c) == 'table' and c.drop_last)
  end
  if type(first) ~= 'number' or type(last) ~= 'number' or first < 1 or last > self.size
     or first > last or first ~= floor(first) or last ~= floor(last) then
    error(fmt('%s: slice %s..%s is not a range within 1..%d', who, describe(first),
              describe(last), self.size), 2)
  end
  local get = self._get
  local opts = { shuffle = self.shuffle, rng = rng, with_memory_cache = self._cache,
                 stop_exhausted = self.stop_exhausted }
  return make_iterator(who, function(i) return get(first + i - 1) end, last - first + 1,
                       self.batch_size, self.variables, opts)
end

--- data.data_iterator_simple(load_fn, num_examples, batch_size [, {shuffle = false, seed = 313,
--    rng = data.Rng(..), with_memory_cache = true, epoch_begin_callbacks = {}, 
--    epoch_end_callbacks = {}, stop_exhausted = false}])
-- NNabla's positional order is accepted too: (load_fn, n, batch_size, shuffle [, rng]
-- [, opts]); later NNabla arguments go in the options table.
local function simple_opts(a, b, c, d)
  local who = 'data_iterator_simple'
  if type(a) == 'table' or a == nil then
    if b ~= nil then error(who .. ': unexpected argument after the options table', 3) end
    return a
  end
  local opts, extra = { shuffle = a }, c
  if type(b) == 'table' and getmetatable(b) == nil and type(b.permutation) ~= 'function' then
    extra, d = b, c              -- (.., shuffle, opts)
  elseif b ~= nil then
    opts.rng = b
  end
  if type(extra) == 'table' then
    for k, v in pairs(extra) do
      if opts[k] ~= nil then error(fmt("%s: option '%s' given twice", who, tostring(k)), 3) end
      opts[k] = v
    end
  elseif extra ~= nil then
    error(fmt('%s: after shuffle and rng, give the other options in a table ' ..
              '({with_memory_cache = ..., ...}), got %s', who, describe(extra)), 3)
  end
  if d ~= nil then error(who .. ': unexpected argument after the options table', 3) end
  return opts
end

function M.data_iterator_simple(load_fn, num_examples, batch_size, a, b, c, d)
  if type(load_fn) ~= 'function' then
    error('data_iterator_simple: load_fn must be a function, got ' .. describe(load_fn), 2)
  end
  local opts = check_opts('data_iterator_simple', simple_opts(a, b, c, d))
  return make_iterator('data_iterator_simple', load_fn, num_examples, batch_size, nil, opts)
end

--- data.data_iterator(source, batch_size [, opts]) with source = {size =, get = function(i)
-- return values... end, variables = {'x', 'y'} (optional), shuffle = bool (optional)}.
function M.data_iterator(source, batch_size, opts)
  if type(source) ~= 'table' or type(source.get) ~= 'function' or type(source.size) ~= 'number' then
    error('data_iterator: source must be a table {size = n, get = function(i) ... end}', 2)
  end
  opts = check_opts('data_iterator', opts)
  if opts.shuffle == nil and source.shuffle ~= nil then
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.shuffle = source.shuffle
    opts = o
  end
  local get = source.get
  return make_iterator('data_iterator', function(i) return get(i) end, source.size, batch_size,
                       source.variables, opts)
end

return M
