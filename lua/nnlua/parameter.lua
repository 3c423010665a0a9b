-- nnlua.parameter: parameter scopes and the parameter registry (NNabla semantics), the
-- ordered parameter dictionary, and HDF5 parameter files in NNabla's layout.
local ffi = require 'ffi'
local lib = require 'nnlua.lib'
local NdArray = require 'nnlua.ndarray'
local Variable = require 'nnlua.variable'
local shape_equal = require('nnlua.values').same_shape
local state = require 'nnlua.state'
local C = lib.C

local M = { api = {} }
local api = M.api

-- ---- ordered dictionary ------------------------------------------------------------------
-- Values live in the array part (so # works under Lua 5.1 semantics); names map to
-- positions. d[name], #d, d:items(), d:keys(), d:values(), d:get(name).
local OrderedDict = {}
local dict_methods = {}
OrderedDict.__index = function(d, k)
  if type(k) == 'string' then
    local m = dict_methods[k]
    if m then return m end
    local i = rawget(d, '_pos')[k]
    return i and rawget(d, i) or nil
  end
  return nil
end
OrderedDict.__newindex = function(d, k, v)
  if type(k) ~= 'string' then error('OrderedDict: keys are names (strings)', 2) end
  local pos = rawget(d, '_pos')
  local i = pos[k]
  if i then rawset(d, i, v) return end
  local keys = rawget(d, '_keys')
  keys[#keys + 1] = k
  pos[k] = #keys
  rawset(d, #keys, v)
end
OrderedDict.__tostring = function(d)
  local lines = { 'OrderedDict(' .. #rawget(d, '_keys') .. ' entries)' }
  for i, k in ipairs(rawget(d, '_keys')) do
    local v = rawget(d, i)
    lines[#lines + 1] = '  ' .. k .. ': ' .. tostring(v)
  end
  return table.concat(lines, '\n')
end

function M.OrderedDict()
  return setmetatable({ _keys = {}, _pos = {} }, OrderedDict)
end
function M.is_dict(x) return getmetatable(x) == OrderedDict end

function dict_methods.items(d)
  local keys, i = rawget(d, '_keys'), 0
  return function()
    i = i + 1
    if keys[i] then return keys[i], rawget(d, i) end
  end
end
function dict_methods.keys(d)
  local t = {}
  for i, k in ipairs(rawget(d, '_keys')) do t[i] = k end
  return t
end
function dict_methods.values(d)
  local t = {}
  for i = 1, #rawget(d, '_keys') do t[i] = rawget(d, i) end
  return t
end
function dict_methods.get(d, k, default)
  local i = rawget(d, '_pos')[k]
  if i then return rawget(d, i) end
  return default
end
function dict_methods.len(d) return #rawget(d, '_keys') end
function dict_methods.has(d, k) return rawget(d, '_pos')[k] ~= nil end

-- ---- the registry and scopes ----------------------------------------------------------------
local registry = M.OrderedDict()   -- full scoped name -> Variable, creation order
local scope = ''                    -- current scope prefix ('' or 'a/b')

local function join(a, b)
  if a == '' then return b end
  if b == '' then return a end
  return a .. '/' .. b
end

local function check_name(name, where)
  if type(name) ~= 'string' or name == '' or name:sub(1, 1) == '/' or name:sub(-1) == '/' or name:find('//', 1, true) then
    error(where .. ": bad name '" .. tostring(name) .. "' (use 'a', or 'a/b')", 3)
  end
end

function M.current_scope() return scope end
api.get_current_parameter_scope = M.current_scope

-- nn.parameter_scope(name, fn, ...): runs fn inside the scope and returns its results.
function api.parameter_scope(name, fn, ...)
  check_name(name, 'nn.parameter_scope')
  if type(fn) ~= 'function' then error('nn.parameter_scope: expected a function to run inside the scope', 2) end
  local old = scope
  scope = join(scope, name)
  local res = { pcall(fn, ...) }
  scope = old
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

-- The initial values of a new parameter: a number, an NdArray or nested table of its exact
-- shape (as NNabla asserts for a numpy array), or an initializer / function of the shape
-- that returns one of those.
local function initialize(v, shape, init, where)
  if init == nil then return end
  local arr, called = init, false
  if type(init) == 'function' or (type(init) == 'table' and getmetatable(init) and getmetatable(init).__call) then
    arr, called = init(shape), true
  end
  if type(arr) == 'number' then v.d = arr return end
  local what = not called and 'the initializer is'
    or ('the initializer ' .. (type(init) == 'function' and 'function' or tostring(init)) .. ' returned')
  if not (NdArray.is(arr) or (type(arr) == 'table' and getmetatable(arr) == nil)) then
    error(('%s: %s %s; expected an initializer (such as I.UniformInitializer(-0.1, 0.1)), a function of the shape, an NdArray, a nested table or a number'):format(
      where, what, arr == nil and 'nil' or (type(arr) == 'table' and 'a ' .. tostring(arr) or 'a ' .. type(arr))), 4)
  end
  arr = NdArray.as(arr, where)
  if not shape_equal(arr.shape, shape) then
    error(('%s: the initializer gave shape %s for a parameter of shape %s'):format(
      where, lib.shape_str(arr.shape), lib.shape_str(shape)), 4)
  end
  v.d = arr
end

-- Why a new parameter cannot be named full, or nil: a name is a parameter or a scope,
-- never both (NNabla's scopes are dicts holding either; a file cannot hold both either).
local function name_clash(full)
  local at = full:find('/[^/]*$')
  while at do
    local up = full:sub(1, at - 1)
    if registry:has(up) then return ("cannot create '%s': '%s' is a parameter, not a scope"):format(full, up) end
    at = up:find('/[^/]*$')
  end
  for other in registry:items() do
    if other:sub(1, #full + 1) == full .. '/' then
      return ("cannot create '%s': it is the scope of parameter '%s'"):format(full, other)
    end
  end
end

-- nn.get_parameter_or_create(name, shape, initializer, need_grad)
-- need_grad (default true) is the flag of a new parameter; given for an existing one, it
-- overwrites the registered flag (as NNabla does). as_need_grad: the flag of the returned
-- Variable, an unlinked view when it differs from the registered one; inside nn.no_grad
-- it is false, as in NNabla.
function api.get_parameter_or_create(name, shape, initializer, need_grad, as_need_grad)
  check_name(name, 'nn.get_parameter_or_create')
  for _, f in ipairs({ { 'need_grad', need_grad }, { 'as_need_grad', as_need_grad } }) do
    if f[2] ~= nil and type(f[2]) ~= 'boolean' then
      error(("nn.get_parameter_or_create: '%s' must be a boolean, got %s"):format(f[1], type(f[2])), 2)
    end
  end
  if not state.grad_enabled() then as_need_grad = false end
  local full = join(scope, name)
  local p = registry:get(full)
  if p then
    if shape and not shape_equal(p.shape, shape) then
      error(("nn.get_parameter_or_create: parameter '%s' exists with shape %s, asked for %s"):format(
        full, lib.shape_str(p.shape), type(shape) == 'table' and lib.shape_str(shape) or tostring(shape)), 2)
    end
    if need_grad ~= nil and need_grad ~= p.need_grad then p.need_grad = need_grad end
    if as_need_grad ~= nil and as_need_grad ~= p.need_grad then
      return p:get_unlinked_variable { need_grad = as_need_grad }
    end
    return p
  end
  if not shape then error("nn.get_parameter_or_create: parameter '" .. full .. "' does not exist and no shape was given", 2) end
  local clash = name_clash(full)
  if clash then error('nn.get_parameter_or_create: ' .. clash, 2) end
  if need_grad == nil then need_grad = true end
  local ok, v = pcall(Variable, shape, { need_grad = need_grad })
  if not ok then
    error(("nn.get_parameter_or_create: cannot create '%s': %s"):format(full, tostring(v):gsub('^[^\n:]+:%d+: ', '')), 2)
  end
  v.persistent = true
  v.name = full
  initialize(v, shape, initializer, 'nn.get_parameter_or_create')
  registry[full] = v
  if as_need_grad ~= nil and as_need_grad ~= need_grad then
    return v:get_unlinked_variable { need_grad = as_need_grad }
  end
  return v
end

-- nn.get_parameters{grad_only = true}: parameters under the current scope, named
-- relative to it, in creation order.
function api.get_parameters(opts)
  local grad_only = true
  if opts ~= nil and type(opts) ~= 'table' then
    error('nn.get_parameters: expected an options table such as {grad_only = false}, got ' .. type(opts), 2)
  end
  for k, v in pairs(opts or {}) do
    if k ~= 'grad_only' then error("nn.get_parameters: unknown option '" .. tostring(k) .. "' (options: grad_only)", 2) end
    if type(v) ~= 'boolean' then error("nn.get_parameters: 'grad_only' must be a boolean, got " .. type(v), 2) end
    grad_only = v
  end
  local out = M.OrderedDict()
  local prefix = scope == '' and '' or scope .. '/'
  for name, v in registry:items() do
    if name:sub(1, #prefix) == prefix and (not grad_only or v.need_grad) then
      out[name:sub(#prefix + 1)] = v
    end
  end
  return out
end

-- Removes the parameters under the current scope (all of them at the top level).
function api.clear_parameters()
  local keep = M.OrderedDict()
  local prefix = scope == '' and '' or scope .. '/'
  for name, v in registry:items() do
    if prefix ~= '' and name:sub(1, #prefix) ~= prefix then keep[name] = v end
  end
  registry = keep
end

-- The (name, Variable) pairs of a dictionary argument, as a list of {name, v}: the
-- OrderedDict of nn.get_parameters() (its order) or a plain table of name = Variable (by
-- name); with allow_list, also a list of Variables, named param1, param2, ... Anything else
-- is an error for the caller (where) naming what was wrong.
function M.entries(params, where, allow_list)
  local list = {}
  local expected = 'the dictionary from nn.get_parameters() or a table of name = Variable'
    .. (allow_list and ' or a list of Variables' or '')
  if M.is_dict(params) then
    for name, v in params:items() do list[#list + 1] = { name, v } end
  elseif type(params) == 'table' and getmetatable(params) == nil then
    local n, names = #params, {}
    for k in pairs(params) do
      if type(k) == 'string' then names[#names + 1] = k
      elseif type(k) ~= 'number' or k < 1 or k > n or k ~= math.floor(k) then
        error(('%s: expected %s; key %s is neither a name nor a list position'):format(where, expected, tostring(k)), 3)
      end
    end
    if n > 0 and #names > 0 then
      error(('%s: expected %s, got a table with both (%d list entries, names %s...)'):format(
        where, expected, n, names[1]), 3)
    end
    if n > 0 then
      if not allow_list then error(('%s: expected %s, got a list of %d values'):format(where, expected, n), 3) end
      for i = 1, n do list[i] = { 'param' .. i, params[i] } end
    else
      table.sort(names)
      for i, name in ipairs(names) do list[i] = { name, params[name] } end
    end
  else
    error(('%s: expected %s, got %s'):format(where, expected, Variable.is(params) and 'a Variable' or type(params)), 3)
  end
  for _, e in ipairs(list) do
    if not Variable.is(e[2]) then
      error(("%s: '%s' is not a Variable (got %s)"):format(where, e[1], type(e[2])), 3)
    end
  end
  return list
end

-- For the parametric functions: a mark of the registry as it is, and the removal of the
-- parameters created after a mark, so that a PF call that fails (a bad argument found once
-- its parameters exist) leaves none half-made to clash with the corrected call.
function M.mark() return registry, #rawget(registry, '_keys') end
function M.remove_since(reg, n)
  if reg ~= registry then return end   -- cleared meanwhile: nothing of the mark's is left
  local keys, pos = rawget(reg, '_keys'), rawget(reg, '_pos')
  for i = #keys, n + 1, -1 do
    pos[keys[i]] = nil
    keys[i] = nil
    rawset(reg, i, nil)
  end
end

function api.set_parameter(name, v)
  check_name(name, 'nn.set_parameter')
  if not Variable.is(v) then error('nn.set_parameter: expected a Variable, got ' .. type(v), 2) end
  registry[join(scope, name)] = v
end

-- ---- HDF5 files --------------------------------------------------------------------------------

-- The engine's last error as nn.<function>'s: its messages start 'save_parameters: ...'.
local function raise_file_error(level)
  local msg = lib.last_error()
  C.nl_clear_error()
  if msg:match('^[%w_]+_parameters: ') then msg = 'nn.' .. msg end
  error(msg, level + 1)
end

-- nn.save_parameters(path [, params]): every parameter under the current scope (need_grad
-- or not), or the given dictionary, in NNabla's HDF5 layout. Written to a temporary file
-- and renamed, so a failed save leaves an existing file untouched.
function api.save_parameters(path, params)
  if type(path) ~= 'string' or path == '' then error('nn.save_parameters: expected a file path', 2) end
  if not path:match('%.h5$') then
    error("nn.save_parameters: only .h5 files are supported, got '" .. path .. "'", 2)
  end
  local list = M.entries(params or api.get_parameters { grad_only = false }, 'nn.save_parameters')
  local n = #list
  local names = ffi.new('const char *[?]', n + 1)
  local ndims = ffi.new('int[?]', n + 1)
  local shapes = ffi.new('const int64_t *[?]', n + 1)
  local datas = ffi.new('const float *[?]', n + 1)
  local ng = ffi.new('int[?]', n + 1)
  local keep = {}
  local i = 0
  for _, e in ipairs(list) do
    local name, v = e[1], e[2]
    keep[#keep + 1] = name
    names[i] = name
    ndims[i] = v.ndim
    shapes[i] = C.nl_var_shape(v)
    local p = C.nl_array_host(C.nl_var_data(v), C.NL_READ)
    if p == nil then lib.raise('nn.save_parameters', 2) end
    datas[i] = p
    ng[i] = v.need_grad and 1 or 0
    keep[#keep + 1] = v
    i = i + 1
  end
  if C.nl_h5_save(path, n, names, ndims, shapes, datas, ng) ~= 0 then raise_file_error(2) end
end

-- nn.load_parameters(path): creates or overwrites parameters under the current scope.
-- Every entry is checked before anything is changed: a shape mismatch changes nothing.
function api.load_parameters(path)
  if type(path) ~= 'string' or path == '' then error('nn.load_parameters: expected a file path', 2) end
  local h = C.nl_h5_open(path)
  if h == nil then raise_file_error(2) end
  h = ffi.gc(h, C.nl_h5_close)
  local n = C.nl_h5_count(h)
  -- A solver state file (save_states): every dataset sits beside a scalar '<parameter>/t',
  -- the parameter's step count. NNabla's loader fails on it (no need_grad); loading it
  -- would make parameters named 'W/mean', 'W/t', ...
  local names, steps = {}, {}
  for i = 0, n - 1 do
    names[i] = ffi.string(C.nl_h5_name(h, i))
    if C.nl_h5_ndim(h, i) == 0 and names[i]:match('/t$') then steps[names[i]] = true end
  end
  local step = n > 0 and next(steps)
  for i = 0, n - 1 do
    local parent = names[i]:match('^(.*)/[^/]*$')
    if not (parent and steps[parent .. '/t']) then step = nil break end
  end
  if step then
    C.nl_h5_close(ffi.gc(h, nil))
    error(("nn.load_parameters: '%s' holds solver states ('%s' is a step count), not parameters; "
      .. "load it with solver:load_states after solver:set_parameters"):format(path, step), 2)
  end
  local entries = {}
  for i = 0, n - 1 do
    local name = ffi.string(C.nl_h5_name(h, i))
    local shape = lib.from_c_shape(C.nl_h5_shape(h, i), C.nl_h5_ndim(h, i))
    local full = join(scope, name)
    local existing = registry:get(full)
    if existing and not shape_equal(existing.shape, shape) then
      C.nl_h5_close(ffi.gc(h, nil))
      error(("nn.load_parameters: parameter '%s' has shape %s in '%s' but %s here; nothing was loaded"):format(
        full, lib.shape_str(shape), path, lib.shape_str(existing.shape)), 2)
    end
    local clash = not existing and name_clash(full)
    if clash then
      C.nl_h5_close(ffi.gc(h, nil))
      error(("nn.load_parameters: %s (loading '%s'); nothing was loaded"):format(clash, path), 2)
    end
    entries[#entries + 1] = { i = i, name = name, shape = shape, need_grad = C.nl_h5_need_grad(h, i) ~= 0 }
  end
  -- Read everything into fresh arrays first, then install.
  local loaded = {}
  for k, e in ipairs(entries) do
    local okp, arr = pcall(NdArray.new, e.shape)
    local ptr = okp and select(2, pcall(arr.ptr, arr, C.NL_WRITE))
    if not okp or type(ptr) ~= 'cdata' then
      C.nl_h5_close(ffi.gc(h, nil))
      error(("nn.load_parameters: parameter '%s' in '%s' has shape %s, which cannot be allocated (is the file corrupt?); nothing was loaded"):format(
        e.name, path, lib.shape_str(e.shape)), 2)
    end
    if C.nl_h5_read(h, e.i, ptr, arr.size) ~= 0 then
      local msg = lib.last_error()
      C.nl_h5_close(ffi.gc(h, nil))
      C.nl_clear_error()
      error('nn.load_parameters: ' .. msg:gsub('^load_parameters: ', ''), 2)
    end
    loaded[k] = arr
  end
  C.nl_h5_close(ffi.gc(h, nil))
  for k, e in ipairs(entries) do
    api.get_parameter_or_create(e.name, e.shape, nil, e.need_grad)
    local v = registry:get(join(scope, e.name))   -- the registered one (not a no_grad view)
    v.need_grad = e.need_grad
    v.d = loaded[k]
  end
end

return M
