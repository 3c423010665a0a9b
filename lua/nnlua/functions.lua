-- nnlua.functions (F): one Lua wrapper per engine function, generated at load time from
-- the C registry's descriptors (inputs, argument names, types and defaults), so there is
-- one source of truth. Arguments after the inputs go positionally in NNabla's order or by
-- name in a trailing options table: F.sum(x, {axis = 2, keepdims = true}) == F.sum(x, 2, true).
local ffi = require 'ffi'
local lib = require 'nnlua.lib'
local NdArray = require 'nnlua.ndarray'
local Variable = require 'nnlua.variable'
local state = require 'nnlua.state'
local C = lib.C

local F = {}
local descriptors = {}
F._descriptors = descriptors

local var_ct = ffi.typeof('nl_var *')
local is_var = function(x) return ffi.istype(var_ct, x) end

local ARG = {
  [tonumber(C.NL_ARG_INT)] = 'int', [tonumber(C.NL_ARG_FLOAT)] = 'float',
  [tonumber(C.NL_ARG_BOOL)] = 'bool', [tonumber(C.NL_ARG_INTS)] = 'ints',
  [tonumber(C.NL_ARG_AXIS)] = 'axis', [tonumber(C.NL_ARG_AXES)] = 'axes',
  [tonumber(C.NL_ARG_CHOICE)] = 'choice', [tonumber(C.NL_ARG_FLOATS)] = 'floats',
  [tonumber(C.NL_ARG_INDEX)] = 'index',
}

local function split(s, sep)
  local t = {}
  for w in s:gmatch('[^' .. sep .. ']+') do t[#t + 1] = w end
  return t
end

local function describe_fn(id)
  local d = {
    id = id,
    name = ffi.string(C.nl_function_name(id)),
    n_in = C.nl_function_n_inputs(id),
    n_opt = C.nl_function_n_optional_inputs(id),
    variadic = C.nl_function_variadic(id) ~= 0,
    inputs = split(ffi.string(C.nl_function_input_names(id)), ','),
    n_out = C.nl_function_n_outputs(id),
    doc = ffi.string(C.nl_function_doc(id)),
    args = {},
    by_name = {},
  }
  for k = 0, C.nl_function_n_args(id) - 1 do
    local a = {
      index = k,
      name = ffi.string(C.nl_function_arg_name(id, k)),
      type = ARG[C.nl_function_arg_type(id, k)],
      default = ffi.string(C.nl_function_arg_default(id, k)),
      choices = split(ffi.string(C.nl_function_arg_choices(id, k)), '|'),
    }
    d.args[#d.args + 1] = a
    d.by_name[a.name] = a
  end
  return d
end

-- Scratch buffers shared by all wrappers (nl_apply copies what it needs).
local argbuf = ffi.new('nl_arg[32]')
local inbuf = ffi.new('nl_var *[?]', C.NL_MAX_INPUTS)
local MAX_IN = tonumber(C.NL_MAX_INPUTS)
local outbuf = ffi.new('nl_var *[?]', C.NL_MAX_OUTPUTS)

-- Memory pressure (lib.memory_pressure): collect when the engine's arrays have grown by a
-- quarter (at least 64 MiB) since the last collection.
local memory_pressure = lib.memory_pressure
F._memory_pressure = memory_pressure

local function fail(d, msg, level)
  error('F.' .. d.name .. ': ' .. msg, level + 1)
end

-- argument types that take one value (a table there can only be options)
local SCALAR_KIND = { int = true, axis = true, float = true, bool = true, choice = true }

local function is_int(x) return type(x) == 'number' and x == math.floor(x) and x > -math.huge and x < math.huge end

-- A value as error messages show it: numbers, booleans and strings as written, other types
-- by name (not "table: 0x55d0c0a8").
local function show(v)
  local t = type(v)
  if t == 'number' or t == 'boolean' or t == 'nil' or t == 'string' then return tostring(v) end
  if is_var(v) then return 'a Variable' end
  return 'a ' .. t
end

-- Writes the Lua value `v` for descriptor `a` into argbuf[k].
local function put_arg(d, a, v)
  local slot = argbuf[a.index]
  if v == nil then slot.n = -2 return end
  local t = a.type
  if t == 'int' or t == 'axis' then
    if not is_int(v) then fail(d, ("argument '%s' must be an integer, got %s"):format(a.name, show(v)), 3) end
    slot.n = 1; slot.v[0] = v
  elseif t == 'float' then
    if type(v) ~= 'number' then fail(d, ("argument '%s' must be a number, got %s"):format(a.name, type(v)), 3) end
    slot.n = 1; slot.v[0] = v
  elseif t == 'bool' then
    if type(v) ~= 'boolean' then fail(d, ("argument '%s' must be true or false, got %s"):format(a.name, show(v)), 3) end
    slot.n = 1; slot.v[0] = v and 1 or 0
  elseif t == 'choice' then
    for i, c in ipairs(a.choices) do
      if c == v then slot.n = 1; slot.v[0] = i - 1 return end
    end
    fail(d, ("argument '%s' must be one of '%s', got %s"):format(a.name, table.concat(a.choices, "', '"), show(v)), 3)
  else -- lists: ints, axes, floats, index
    if type(v) == 'number' then v = { v } end
    if type(v) ~= 'table' then fail(d, ("argument '%s' must be a list, got %s"):format(a.name, type(v)), 3) end
    if #v > C.NL_MAX_ARG_LEN then fail(d, ("argument '%s' has %d entries (at most %d)"):format(a.name, #v, C.NL_MAX_ARG_LEN), 3) end
    for i = 1, #v do
      local x = v[i]
      if t == 'floats' then
        if type(x) ~= 'number' then fail(d, ("argument '%s' entry %d must be a number"):format(a.name, i), 3) end
      elseif not is_int(x) then
        fail(d, ("argument '%s' entry %d must be an integer, got %s"):format(a.name, i, show(x)), 3)
      end
      slot.v[i - 1] = x
    end
    for k in pairs(v) do
      if type(k) ~= 'number' then fail(d, ("argument '%s' must be a plain list"):format(a.name), 3) end
    end
    slot.n = #v
  end
end

-- A trailing options table: a plain table with at least one string key.
local function is_options(x)
  if type(x) ~= 'table' or getmetatable(x) ~= nil then return false end
  for k in pairs(x) do
    if type(k) == 'string' then return true end
  end
  return false
end

local function input_shapes(d, n)
  local parts = {}
  for i = 0, n - 1 do
    local v = inbuf[i]
    local nm = d.inputs[i + 1] or ('x' .. i)
    if v ~= nil then
      parts[#parts + 1] = nm .. ' ' .. lib.shape_str(Variable.shape_of(v))
    end
  end
  return table.concat(parts, ', ')
end

local function as_input(d, v, i)
  if is_var(v) then return v end
  local nm = d.inputs[i] or ('x' .. (i - 1))   -- variadic inputs: x, x1, x2, ... (as input_shapes)
  if NdArray.is(v) or type(v) == 'table' or type(v) == 'number' then
    fail(d, ("input '%s' must be a Variable, got %s (wrap data with nn.Variable.from)"):format(nm, NdArray.is(v) and 'an NdArray' or type(v)), 3)
  end
  fail(d, ("input '%s' must be a Variable, got %s"):format(nm, type(v)), 3)
end

local function make_wrapper(d)
  local nargs = #d.args
  local usage
  return function(...)
    local n = select('#', ...)
    local params = { ... }
    local opts
    if n > 0 and is_options(params[n]) then opts = params[n]; params[n] = nil; n = n - 1 end
    -- inputs
    local pos, n_in = 1, 0
    if d.variadic then
      -- inbuf holds NL_MAX_INPUTS entries: count before writing (never past its end)
      if n >= 1 and type(params[1]) == 'table' and not is_var(params[1]) and is_var(params[1][1]) then
        n_in = #params[1]
        if n_in > MAX_IN then fail(d, ('takes at most %d input variables, got %d'):format(MAX_IN, n_in), 2) end
        for i = 1, n_in do inbuf[i - 1] = as_input(d, params[1][i], i) end
        pos = 2
      else
        while pos <= n and is_var(params[pos]) do
          if n_in >= MAX_IN then fail(d, ('takes at most %d input variables'):format(MAX_IN), 2) end
          inbuf[n_in] = params[pos]; n_in = n_in + 1; pos = pos + 1
        end
      end
      if n_in < d.n_in then fail(d, ('expects at least %d input variables, got %d'):format(d.n_in, n_in), 2) end
    else
      for i = 1, d.n_in do
        if pos > n then fail(d, ("missing input '%s' (inputs: %s)"):format(d.inputs[i], table.concat(d.inputs, ', ')), 2) end
        inbuf[i - 1] = as_input(d, params[pos], i)
        pos = pos + 1
      end
      n_in = d.n_in
      for i = d.n_in + 1, d.n_in + d.n_opt do
        local v = params[pos]
        local named = opts and opts[d.inputs[i]]
        if is_var(v) then inbuf[i - 1] = v; pos = pos + 1
        elseif v == nil and pos <= n then inbuf[i - 1] = nil; pos = pos + 1
        elseif named ~= nil then inbuf[i - 1] = as_input(d, named, i)
        else inbuf[i - 1] = nil end
        n_in = i
      end
    end
    -- arguments: positional, then named. A trailing empty plain table where no list can
    -- stand (past the last argument, or at a scalar one) is an empty options table.
    if not opts and n >= pos and type(params[n]) == 'table' and getmetatable(params[n]) == nil
       and next(params[n]) == nil then
      local a = d.args[n - pos + 1]
      if not a or SCALAR_KIND[a.type] then params[n] = nil; n = n - 1 end
    end
    local npos = n - pos + 1
    if npos > nargs then
      fail(d, ('takes %d argument(s) after the inputs (%s), got %d'):format(nargs, usage, npos), 2)
    end
    for k = 1, nargs do put_arg(d, d.args[k], params[pos + k - 1]) end
    if opts then
      for key, v in pairs(opts) do
        local a = d.by_name[key]
        if a then
          if params[pos + a.index] ~= nil then
            fail(d, ("argument '%s' given both by position and by name"):format(key), 2)
          end
          put_arg(d, a, v)
        else
          local is_input = false
          for i = d.n_in + 1, d.n_in + d.n_opt do if d.inputs[i] == key then is_input = true end end
          if not is_input then
            fail(d, ("unknown option '%s' (options: %s)"):format(tostring(key), usage), 2)
          end
        end
      end
    end
    local run = state.auto_forward and 1 or 0
    local n_out = C.nl_apply(d.id, n_in, inbuf, argbuf, nargs, run, outbuf, C.NL_MAX_OUTPUTS)
    if n_out < 0 then
      local msg = lib.last_error():gsub('^' .. d.name .. ': ', '')
      C.nl_clear_error()
      fail(d, n_in > 0 and msg .. ' (inputs: ' .. input_shapes(d, n_in) .. ')' or msg, 2)  -- rand etc. have none
    end
    memory_pressure()
    if n_out == 1 then return ffi.gc(outbuf[0], C.nl_var_release) end
    local outs = {}
    for i = 0, n_out - 1 do outs[i + 1] = ffi.gc(outbuf[i], C.nl_var_release) end
    return unpack(outs, 1, n_out)
  end, function(u) usage = u end
end

local function usage_of(d)
  local parts = {}
  for _, a in ipairs(d.args) do parts[#parts + 1] = a.name .. '=' .. a.default end
  return #parts > 0 and table.concat(parts, ', ') or 'none'
end

local composites = {}   -- name -> {sig =, doc =}: functions built from registered ones (below)
F._composites = composites

-- Signature text for help: F.convolution(x, weight[, bias], base_axis=2, pad=nil, ...)
function F.signature(name)
  local d = descriptors[name]
  if not d then
    local c = composites[name]
    if c then return c.sig, c.doc end
    return nil
  end
  local ins = {}
  for i = 1, d.n_in do ins[#ins + 1] = d.inputs[i] end
  for i = d.n_in + 1, d.n_in + d.n_opt do ins[#ins + 1] = '[' .. d.inputs[i] .. ']' end
  if d.variadic then ins[#ins + 1] = '...' end
  local args = {}
  for _, a in ipairs(d.args) do
    local s = a.name .. '=' .. a.default
    if a.type == 'choice' then s = s .. " ('" .. table.concat(a.choices, "'|'") .. "')" end
    args[#args + 1] = s
  end
  local all = table.concat(ins, ', ')
  if #args > 0 then all = all .. (#ins > 0 and ', ' or '') .. table.concat(args, ', ') end
  return 'F.' .. name .. '(' .. all .. ')', d.doc
end

for id = 0, C.nl_function_count() - 1 do
  local d = describe_fn(id)
  descriptors[d.name] = d
  local fn, set_usage = make_wrapper(d)
  set_usage(usage_of(d))
  F[d.name] = fn
end

-- channel_last = true (NNabla's layout with channels on the last axis) for the functions
-- whose kernels are channel-first: x's last axis is moved in front of the spatial axes, the
-- function runs with channel_last = false, and y's channel axis goes back to the end; the
-- weight of (de)convolution, (OC, K..., IC/g) or (C, K..., OC/g), becomes (OC, IC/g, K...)
-- or (C, OC/g, K...). The moves are F.transpose nodes, so gradients flow through them.
do
  local function iota(a, b, t)
    t = t or {}
    for i = a, b do t[#t + 1] = i end
    return t
  end
  local function perm_to_first(nd, c)          -- (.., spatial.., C) -> (.., C, spatial..)
    local t = iota(1, c - 1)
    t[#t + 1] = nd
    return iota(c, nd - 1, t)
  end
  local function perm_to_last(nd, c)           -- (.., C, spatial..) -> (.., spatial.., C)
    local t = iota(1, c - 1)
    iota(c + 1, nd, t)
    t[#t + 1] = c
    return t
  end
  -- where the arguments start in a call's parameters (the wrappers' rule for inputs)
  local function args_start(d, params, n)
    local pos = d.n_in + 1
    for _ = d.n_in + 1, d.n_in + d.n_opt do
      local v = params[pos]
      if is_var(v) or (v == nil and pos <= n) then pos = pos + 1 end
    end
    return pos
  end
  local function arg_of(d, params, n, opts, name)
    local a = d.by_name[name]
    local v = params[args_start(d, params, n) + a.index]
    if v == nil and opts then v = opts[name] end
    return v
  end
  -- channel axis (1-based, channel-first) of x for function d's call
  local conv_like = { convolution = true, deconvolution = true }
  local function channel_axis(d, params, n, opts, nd)
    if conv_like[d.name] then
      local b = arg_of(d, params, n, opts, 'base_axis') or 2
      if type(b) == 'number' and b < 0 then b = nd + b + 1 end
      return b
    end
    local k = arg_of(d, params, n, opts, 'kernel')
    return nd - (type(k) == 'table' and #k or 1)
  end
  for name in pairs { convolution = 1, deconvolution = 1, max_pooling = 1, average_pooling = 1,
                      sum_pooling = 1, unpooling = 1 } do
    local d, inner = descriptors[name], F[name]
    if d and d.by_name.channel_last then
      -- fewest parameters that can hold channel_last positionally (after the inputs)
      local min_positional = d.n_in + 1 + d.by_name.channel_last.index
      F[name] = function(...)
        local n = select('#', ...)
        if n < min_positional then   -- the common call: no table built unless asked for
          local last = n > 0 and select(n, ...) or nil
          if type(last) ~= 'table' or last.channel_last ~= true then return inner(...) end
        end
        local params = { ... }
        local opts
        if n > 0 and is_options(params[n]) then opts = params[n]; params[n] = nil; n = n - 1 end
        if arg_of(d, params, n, opts, 'channel_last') ~= true or not is_var(params[1]) then
          return inner(...)
        end
        local x = params[1]
        local nd = #Variable.shape_of(x)
        local c = channel_axis(d, params, n, opts, nd)
        if type(c) ~= 'number' or c < 1 or c >= nd then
          if type(c) ~= 'number' then return inner(...) end   -- a bad argument: the C checks say which
          fail(d, ('channel_last = true: x %s has no spatial axes before its last (channel) axis')
                  :format(lib.shape_str(Variable.shape_of(x))), 2)
        end
        -- the same call, channel-first
        local pos = args_start(d, params, n) + d.by_name.channel_last.index
        if pos <= n then params[pos] = false end
        if opts then
          local o = {}
          for k, v in pairs(opts) do o[k] = v end
          if o.channel_last ~= nil then o.channel_last = false end
          n = n + 1
          params[n] = o
        end
        params[1] = F.transpose(x, perm_to_first(nd, c))
        if conv_like[name] and is_var(params[2]) then
          local nw = #Variable.shape_of(params[2])
          params[2] = F.transpose(params[2], perm_to_first(nw, 2))
        end
        local y = inner(unpack(params, 1, n))
        return F.transpose(y, perm_to_last(#Variable.shape_of(y), c))
      end
    end
  end
end

-- Torch-style slicing x[{ {}, {2}, {1, 4}, {1, -1, 2} }]: per axis {} is everything,
-- {i} one index (kept as a size-1 axis), {a, b} the inclusive range a..b, {a, b, step}.
-- Negative positions count from the end (-1 is the last). Maps to F.slice.
function F.slice_lua(x, spec)
  local shape = Variable.shape_of(x)
  if #spec > #shape then
    error(('Variable slice: %d axes given for a %d-d variable of shape %s'):format(#spec, #shape, lib.shape_str(shape)), 3)
  end
  local start, stop, step = {}, {}, {}
  for i = 1, #shape do
    local s = spec[i]
    local n = shape[i]
    local a, b, st = 1, n, 1
    if type(s) == 'number' then a, b = s, s
    elseif type(s) == 'table' then
      if #s >= 1 then a = s[1]; b = s[2] or s[1] end
      st = s[3] or 1
    elseif s ~= nil then
      error('Variable slice: axis ' .. i .. ' spec must be a table or an index', 3)
    end
    start[i], stop[i], step[i] = a, b, st
  end
  return F.slice(x, start, stop, step)
end

-- ---- composites -----------------------------------------------------------------------
-- NNabla's functions that are Python code over registered ones (clip_by_value,
-- clip_by_norm) are Lua code over the same ones here: their gradients are those of the
-- parts, on every backend.

local function clip_bound(where, what, v)
  if type(v) == 'number' then
    if v ~= v then error(('%s: %s is NaN'):format(where, what), 3) end
    return v
  end
  if is_var(v) then return v end
  if NdArray.is(v) then return Variable.from(v) end
  error(('%s: %s must be a number, a Variable or an NdArray, got %s'):format(where, what, type(v)), 3)
end

composites.clip_by_value = {
  sig = 'F.clip_by_value(x, min, max)',
  doc = 'y = minimum(maximum(x, min), max); min and max numbers, or Variables/NdArrays broadcast against x',
}
function F.clip_by_value(x, min, max)
  local where = 'F.clip_by_value'
  if not is_var(x) then error(where .. ': x must be a Variable, got ' .. type(x), 2) end
  local lo, hi = clip_bound(where, 'min', min), clip_bound(where, 'max', max)
  local y = type(lo) == 'number' and F.maximum_scalar(x, lo) or F.maximum2(x, lo)
  return type(hi) == 'number' and F.minimum_scalar(y, hi) or F.minimum2(y, hi)
end

composites.clip_by_norm = {
  sig = 'F.clip_by_norm(x, clip_norm, axis=nil)',
  doc = 'y = x * clip_norm / max(||x||_2 over axis (nil = all; 1-based), clip_norm): x scaled down to norm clip_norm where larger; clip_norm > 0, a number or a Variable',
}
function F.clip_by_norm(x, clip_norm, axis)
  local where = 'F.clip_by_norm'
  if not is_var(x) then error(where .. ': x must be a Variable, got ' .. type(x), 2) end
  local c = clip_bound(where, 'clip_norm', clip_norm)
  if type(c) == 'number' and not (c > 0) then
    error(('%s: clip_norm must be positive, got %s'):format(where, tostring(c)), 2)
  end
  if type(axis) == 'table' and getmetatable(axis) == nil and axis.axis ~= nil then axis = axis.axis end
  local ok, norm = pcall(F.norm, x, 2, axis, true)
  if not ok then error((tostring(norm):gsub('^[^\n:]+:%d+: ', ''):gsub('^F%.norm', where)), 2) end
  if type(c) == 'number' then return x * c / F.maximum_scalar(norm, c) end
  return x * c / F.maximum2(norm, c)
end

return F
