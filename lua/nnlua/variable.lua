-- nnlua.variable: nn.Variable, a LuaJIT metatype on the engine's nl_var. Fields shape,
-- ndim, size, d, g (live NdArray views), need_grad, persistent, name, parent; methods
-- forward, backward, get_unlinked_variable, reshape, visit; the arithmetic operators
-- and Torch-style slicing map to F functions (see DESIGN.md).
local ffi = require 'ffi'
local lib = require 'nnlua.lib'
local NdArray = require 'nnlua.ndarray'
local C = lib.C

local Variable = {}
local methods = {}
local getters, setters = {}, {}
Variable.methods = methods
Variable.getters = getters   -- field names, for the REPL's completion

local F  -- nnlua.functions, loaded lazily (it needs this module)
local function Fn()
  F = F or require 'nnlua.functions'
  return F
end

local var_ct = ffi.typeof('nl_var *')
local func_ct = ffi.typeof('nl_func *')

local function is_var(x) return ffi.istype(var_ct, x) end
Variable.is = is_var

-- Takes ownership of a new reference returned by C.
local function own(ptr, where)
  if ptr == nil then lib.raise(where or 'Variable', 3) end
  return ffi.gc(ptr, C.nl_var_release)
end
Variable.own = own

local function shape_of(v) return lib.from_c_shape(C.nl_var_shape(v), C.nl_var_ndim(v)) end
Variable.shape_of = shape_of

-- nn.Variable(shape [, {need_grad = bool}])
local function new(shape, opts)
  if type(shape) ~= 'table' then
    error('nn.Variable: shape must be a list such as {64, 1, 8, 8}, got ' .. type(shape), 2)
  end
  local need_grad = false
  if type(opts) == 'table' then
    for k, v in pairs(opts) do
      if k == 'need_grad' then need_grad = v and true or false
      else error("nn.Variable: unknown option '" .. tostring(k) .. "' (options: need_grad)", 2) end
    end
  elseif type(opts) == 'boolean' then
    need_grad = opts
  elseif opts ~= nil then
    error('nn.Variable: options must be a table such as {need_grad = true}, got ' .. type(opts), 2)
  end
  for i = 1, #shape do
    local d = shape[i]
    if type(d) ~= 'number' or d < 0 or d ~= math.floor(d) or d == math.huge then
      error('nn.Variable: shape entry ' .. tostring(d) .. ' at position ' .. i .. ' of ' ..
            lib.shape_str(shape) .. ' is not a size (sizes are non-negative integers)', 2)
    end
  end
  local buf, n = lib.to_c_shape(shape)
  return own(C.nl_var_new(n, buf, need_grad and 1 or 0), 'nn.Variable')
end

-- nn.Variable.from(NdArray | nested table | number [, {need_grad =}])
function Variable.from(x, opts)
  local a = NdArray.as(x, 'nn.Variable.from')
  local v = new(a.shape, opts)
  C.nl_array_copy(C.nl_var_data(v), 0, a._a, a._off, a.size)
  return v
end
Variable.from_array = Variable.from

-- ---- fields ------------------------------------------------------------------------

function getters.shape(v) return shape_of(v) end
function getters.ndim(v) return C.nl_var_ndim(v) end
function getters.size(v) return tonumber(C.nl_var_size(v)) end
function getters.d(v) return NdArray.wrap(C.nl_var_data(v), 0, shape_of(v)) end
function getters.g(v) return NdArray.wrap(C.nl_var_grad(v), 0, shape_of(v)) end
getters.data = getters.d
getters.grad = getters.g
function getters.need_grad(v) return C.nl_var_need_grad(v) ~= 0 end
function getters.persistent(v) return C.nl_var_persistent(v) ~= 0 end
function getters.name(v) return ffi.string(C.nl_var_name(v)) end
function getters.parent(v)
  local f = C.nl_var_parent(v)
  if f == nil then return nil end
  return ffi.gc(f, C.nl_func_release)
end

local function assign(arr, shape, value, where, level)
  level = level or 4
  if type(value) == 'number' then
    if value == 0 then C.nl_array_zero(arr) else C.nl_array_fill(arr, value) end
    return
  end
  local view = NdArray.wrap(arr, 0, shape)
  if NdArray.is(value) then
    if value.size ~= view.size then
      error(('%s: cannot assign an array of shape %s to a variable of shape %s'):format(
        where, lib.shape_str(value.shape), lib.shape_str(shape)), level)
    end
    view:set(value)
  elseif type(value) == 'table' then
    local ok, err = pcall(view.set, view, value)
    if not ok then error(where .. ': ' .. tostring(err):gsub('^.-NdArray:set: ', ''), level) end
  else
    error(where .. ': cannot assign a ' .. type(value) .. ' (use a number, a table or an NdArray)', level)
  end
end

-- x.d = batch in a training loop: an NdArray of the right size is copied straight in
-- (no view, no shape table); everything else goes through assign.
local is_nd = NdArray.is
function setters.d(v, value)
  local arr = C.nl_var_data(v)
  if is_nd(value) and value._size == tonumber(C.nl_var_size(v)) then
    lib.check(C.nl_array_copy(arr, 0, value._a, value._off, value._size), 'Variable.d', 3)
    return
  end
  assign(arr, shape_of(v), value, 'Variable.d')
end
function setters.g(v, value)
  local arr = C.nl_var_grad(v)
  if is_nd(value) and value._size == tonumber(C.nl_var_size(v)) then
    lib.check(C.nl_array_copy(arr, 0, value._a, value._off, value._size), 'Variable.g', 3)
    return
  end
  assign(arr, shape_of(v), value, 'Variable.g')
end
setters.data = setters.d
setters.grad = setters.g
function setters.need_grad(v, b) C.nl_var_set_need_grad(v, b and 1 or 0) end
function setters.persistent(v, b) C.nl_var_set_persistent(v, b and 1 or 0) end
function setters.name(v, s)
  if s ~= nil and type(s) ~= 'string' and type(s) ~= 'number' then
    error('Variable.name: a name is a string, got ' .. type(s), 3)
  end
  lib.check(C.nl_var_set_name(v, tostring(s or '')), 'Variable.name', 3)
end

-- ---- methods ------------------------------------------------------------------------

local function check_opts(opts, allowed, where)
  if opts == nil then return {} end
  if type(opts) ~= 'table' then error(where .. ': options must be a table', 3) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      error(("%s: unknown option '%s' (options: %s)"):format(where, tostring(k), table.concat(names, ', ')), 3)
    end
  end
  return opts
end

local forward_opts = { clear_buffer = true, clear_no_need_grad = true }
function methods.forward(v, opts)
  opts = check_opts(opts, forward_opts, 'Variable:forward')
  lib.check(C.nl_var_forward(v, opts.clear_buffer and 1 or 0, opts.clear_no_need_grad and 1 or 0), '', 2)
end

local backward_opts = { grad = true, clear_buffer = true }
function methods.backward(v, opts)
  opts = check_opts(opts, backward_opts, 'Variable:backward')
  local grad = opts.grad
  if C.nl_array_has_storage(C.nl_var_data(v)) == 0 and C.nl_var_size(v) > 0 then
    -- its data was never computed: back-propagating would use zeros for it and for every
    -- intermediate under it (NNabla computes silently wrong gradients there)
    local f = C.nl_var_parent(v)
    if f ~= nil then
      C.nl_func_release(f)
      error('Variable:backward: the variable of shape ' .. lib.shape_str(shape_of(v)) .. ' has no data; ' ..
            'run forward first (forward was never run on this graph, or a forward with clear_buffer freed it)', 2)
    end
  end
  local gradarr = C.nl_var_grad(v)
  if grad == nil then
    if C.nl_var_size(v) ~= 1 then
      error('Variable:backward: the variable has shape ' .. lib.shape_str(shape_of(v)) ..
            '; give {grad = ...} (a number, a table or an NdArray) to back-propagate from a non-scalar', 2)
    end
    C.nl_array_fill(gradarr, 1)
  elseif grad == false then
    -- use the values already in .g
  else
    assign(gradarr, shape_of(v), grad, 'Variable:backward', 3)
  end
  lib.check(C.nl_var_backward(v, opts.clear_buffer and 1 or 0), '', 2)
end

local unlinked_opts = { need_grad = true }
function methods.get_unlinked_variable(v, opts)
  local ng = -1
  if type(opts) == 'boolean' then ng = opts and 1 or 0
  else
    opts = check_opts(opts, unlinked_opts, 'Variable:get_unlinked_variable')
    if opts.need_grad ~= nil then ng = opts.need_grad and 1 or 0 end
  end
  return own(C.nl_var_unlinked(v, ng), 'Variable:get_unlinked_variable')
end

-- reshape(shape [, unlink]): F.reshape, or with unlink a parentless view of the arrays.
function methods.reshape(v, shape, unlink)
  if unlink then
    local s = NdArray.resolve_shape(shape, tonumber(C.nl_var_size(v)), 'Variable:reshape')
    local buf, n = lib.to_c_shape(s)
    return own(C.nl_var_view(v, n, buf), 'Variable:reshape')
  end
  return Fn().reshape(v, shape)
end

-- Calls fn(f) for every function under v in forward (topological) order.
local funcbuf_n = 0
local funcbuf
function methods.visit(v, fn)
  if type(fn) ~= 'function' and not (type(fn) == 'table' and getmetatable(fn) and getmetatable(fn).__call) then
    error('Variable:visit: expected a function to call with each function node, got ' .. type(fn), 2)
  end
  local n = C.nl_var_functions(v, nil, 0)
  if n < 0 then lib.raise('Variable:visit', 2) end
  if n > funcbuf_n then funcbuf = ffi.new('nl_func *[?]', n); funcbuf_n = n end
  C.nl_var_functions(v, funcbuf, n)
  local list = {}
  for i = 0, n - 1 do list[i + 1] = ffi.gc(funcbuf[i], C.nl_func_release) end
  for i = 1, n do fn(list[i]) end
end

function methods.zero_grad(v) C.nl_array_zero(C.nl_var_grad(v)) end

function methods.unlinked(v) return methods.get_unlinked_variable(v) end

-- ---- printing ------------------------------------------------------------------------

local function describe(v)
  if v == nil then return 'Variable(NULL)' end   -- a NULL nl_var * from raw FFI use
  local parts = { 'Variable(shape=' .. lib.shape_str(shape_of(v)) }
  parts[#parts + 1] = 'need_grad=' .. tostring(C.nl_var_need_grad(v) ~= 0)
  local f = C.nl_var_parent(v)
  if f ~= nil then
    parts[#parts + 1] = 'parent=' .. ffi.string(C.nl_func_name(f))
    C.nl_func_release(f)
  end
  local name = ffi.string(C.nl_var_name(v))
  if name ~= '' then parts[#parts + 1] = 'name=' .. name end
  return table.concat(parts, ', ') .. ')'
end
Variable.describe = describe

-- ---- metatype ---------------------------------------------------------------------

local mt = {}
mt.__index = function(v, k)
  local m = methods[k]
  if m then return m end
  local g = getters[k]
  if g then return g(v) end
  if type(k) == 'table' then return Fn().slice_lua(v, k) end
  error("Variable has no field '" .. tostring(k) .. "'", 2)
end
mt.__newindex = function(v, k, value)
  local s = setters[k]
  if s then return s(v, value) end
  if type(k) == 'table' then
    error('Variable: assigning to a slice (x[{...}] = value) is not supported; build the new value with ' ..
          'functions (F.concatenate, F.where, ...) or write into x.d[...] for data', 2)
  end
  error("Variable field '" .. tostring(k) .. "' cannot be set", 2)
end
mt.__tostring = describe

-- Operators: variable with variable, or with a number on either side (NNabla's mapping).
mt.__add = function(a, b)
  local F = Fn()
  if type(a) == 'number' then return F.add_scalar(b, a) end
  if type(b) == 'number' then return F.add_scalar(a, b) end
  return F.add2(a, b)
end
mt.__sub = function(a, b)
  local F = Fn()
  if type(a) == 'number' then return F.r_sub_scalar(b, a) end
  if type(b) == 'number' then return F.add_scalar(a, -b) end
  return F.sub2(a, b)
end
mt.__mul = function(a, b)
  local F = Fn()
  if type(a) == 'number' then return F.mul_scalar(b, a) end
  if type(b) == 'number' then return F.mul_scalar(a, b) end
  return F.mul2(a, b)
end
mt.__div = function(a, b)
  local F = Fn()
  if type(a) == 'number' then return F.r_div_scalar(b, a) end
  if type(b) == 'number' then return F.mul_scalar(a, 1 / b) end
  return F.div2(a, b)
end
mt.__pow = function(a, b)
  local F = Fn()
  if type(a) == 'number' then return F.r_pow_scalar(b, a) end
  if type(b) == 'number' then return F.pow_scalar(a, b) end
  return F.pow2(a, b)
end
mt.__unm = function(a) return Fn().mul_scalar(a, -1) end

ffi.metatype('struct nl_var', mt)

-- ---- function nodes (what visit() and .parent give) ----------------------------------
local fmethods, fgetters = {}, {}
Variable.func_methods, Variable.func_getters = fmethods, fgetters
function fgetters.name(f) return ffi.string(C.nl_func_name(f)) end
function fgetters.inputs(f)
  local t = {}
  for i = 0, C.nl_func_n_inputs(f) - 1 do
    local v = C.nl_func_input(f, i)
    t[#t + 1] = v ~= nil and ffi.gc(v, C.nl_var_release) or false
  end
  return t
end
function fgetters.outputs(f)
  local t = {}
  for i = 0, C.nl_func_n_outputs(f) - 1 do
    local v = C.nl_func_output(f, i)
    t[#t + 1] = v ~= nil and ffi.gc(v, C.nl_var_release) or false
  end
  return t
end
function fgetters.info(f)
  local id = C.nl_func_id(f)
  local info = { type_name = ffi.string(C.nl_func_name(f)), args = {} }
  for k = 0, C.nl_function_n_args(id) - 1 do
    local a = C.nl_func_arg(f, k)
    local val
    if a.n < 0 then val = nil
    elseif a.type == C.NL_ARG_INTS or a.type == C.NL_ARG_AXES or a.type == C.NL_ARG_FLOATS or a.type == C.NL_ARG_INDEX then
      val = {}
      for j = 0, a.n - 1 do val[j + 1] = a.v[j] end
    elseif a.type == C.NL_ARG_BOOL then val = a.v[0] ~= 0
    elseif a.type == C.NL_ARG_CHOICE then
      local choices = ffi.string(C.nl_function_arg_choices(id, k))
      local idx = 0
      for w in choices:gmatch('[^|]+') do
        if idx == a.v[0] then val = w end
        idx = idx + 1
      end
    else val = a.v[0] end
    info.args[ffi.string(C.nl_function_arg_name(id, k))] = val
  end
  return info
end
local fmt = {
  __index = function(f, k)
    local m = fmethods[k]
    if m then return m end
    local g = fgetters[k]
    if g then return g(f) end
    error("Function has no field '" .. tostring(k) .. "'", 2)
  end,
  __tostring = function(f) return f == nil and 'Function(NULL)' or 'Function(' .. ffi.string(C.nl_func_name(f)) .. ')' end,
}
ffi.metatype('struct nl_func', fmt)
Variable.func_ct = func_ct

setmetatable(Variable, { __call = function(_, shape, opts) return new(shape, opts) end })
Variable.new = new

return Variable
