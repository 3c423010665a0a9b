-- nnlua.repl: the interactive `nnlua` prompt.
--
--   require('nnlua.repl').start()        -- what `nnlua` and `nnlua -i script.lua` run
--
-- - Line editing, history and tab completion through build/libnnlua_readline.so (a small Lua
--   C module over GNU readline, scripts/readline_shim.c) when stdin is a terminal; plain
--   lines otherwise (so the REPL can be scripted: `echo '1+1' | nnlua`), or when the shim
--   is missing. History: $NNLUA_HISTORY (empty: none), default ~/.nnlua_history, the last
--   $NNLUA_HISTORY_SIZE (1000) lines.
-- - An expression prints its value (`1+1` -> 2); a trailing `;` keeps it quiet; `=x` works
--   as in Lua 5.1. Incomplete input continues on a '..>' line. `_` holds the last result.
-- - Values print through M.pretty: Variables with a preview of their data, NdArrays like
--   numpy, parameter dictionaries as a table of names and shapes, other tables
--   depth-limited; colours only when stdout is a terminal (and $NO_COLOR is unset).
-- - `?name` prints help (M.help): F.* and PF.* signatures and defaults from the same
--   descriptors the functions are built from, a doc table for nn.*, S.* and Variable
--   methods, and for any other Lua function its parameters and the comment above it.
-- - Errors print a traceback and the session goes on. Ctrl-C at the prompt drops the
--   input; while code runs it raises "interrupted" (see Interrupts below). Ctrl-D or `exit`
--   leaves.
-- - Without a display, plot.show() draws in the terminal (nnlua.plot's 'terminal' backend).
local ffi = require 'ffi'
local lib = require 'nnlua.lib'
local NdArray = require 'nnlua.ndarray'
local Variable = require 'nnlua.variable'
local parameter = require 'nnlua.parameter'

local M = {}

M.config = {
  depth = 3,           -- nesting shown for plain tables
  max_items = 40,      -- entries shown per table
  preview = 100,       -- Variables with more elements than this show a summarised preview
  jit = false,         -- true: compile code typed at the prompt (Ctrl-C may then not stop
                       -- pure-Lua loops; see Interrupts)
}

pcall(ffi.cdef, 'int isatty(int fd);')
local function isatty(fd)
  local ok, r = pcall(function() return ffi.C.isatty(fd) end)
  return ok and r == 1
end

local fmt, concat = string.format, table.concat
local unpack = unpack or table.unpack
local function pack(...) return { n = select('#', ...), ... } end

----------------------------------------------------------------------------------------------
-- Colours
----------------------------------------------------------------------------------------------

local PALETTE = {
  number = '\27[36m', string = '\27[32m', boolean = '\27[35m', ['nil'] = '\27[35m',
  ['function'] = '\27[34m', head = '\27[1m', dim = '\27[2m', err = '\27[31m', key = '',
}
M.color = false

local function paint(kind, s)
  if not M.color then return s end
  local c = PALETTE[kind]
  if not c or c == '' then return s end
  return c .. s .. '\27[0m'
end

local function vislen(s) return #(s:gsub('\27%[[%d;]*m', '')) end

----------------------------------------------------------------------------------------------
-- Pretty printing
----------------------------------------------------------------------------------------------

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
            repeat return then true until while]]):gmatch('%a+') do KEYWORDS[w] = true end

local function is_ident(s) return type(s) == 'string' and s:match('^[%a_][%w_]*$') ~= nil and not KEYWORDS[s] end

local function quote(s)
  return '"' .. s:gsub('[\\"\n\r\t%z]', { ['\\'] = '\\\\', ['"'] = '\\"', ['\n'] = '\\n',
                                           ['\r'] = '\\r', ['\t'] = '\\t', ['\0'] = '\\0' }) .. '"'
end

-- 'function(a, b, ...)  file.lua:12' for Lua functions, 'builtin' for C ones.
local function function_summary(f)
  local info = debug.getinfo(f, 'Su')
  if not info or info.what == 'C' then return 'builtin function' end
  local params = {}
  for i = 1, info.nparams or 0 do params[i] = debug.getlocal(f, i) or ('arg' .. i) end
  if info.isvararg then params[#params + 1] = '...' end
  local where = info.short_src and info.linedefined and info.linedefined > 0
                and ('  ' .. info.short_src .. ':' .. info.linedefined) or ''
  return 'function(' .. concat(params, ', ') .. ')' .. where
end

local var_ct = ffi.typeof('nl_var *')
local func_ct = Variable.func_ct

local function shape_str(s) return lib.shape_str(s) end

-- A Variable: its description line, then its data (summarised past config.preview values).
local function pretty_variable(v)
  local head = paint('head', Variable.describe(v))
  local ok, body = pcall(function()
    local d = v.d
    local s = NdArray.format(d, 'd = ', '', M.config.preview)
    return (s:gsub(', shape=%b{}$', ''))
  end)
  if ok then return head .. '\n' .. body end
  return head
end

local function pretty_dict(d)
  local keys = d:keys()
  local lines = { paint('head', fmt('OrderedDict(%d entries)', #keys)) }
  local w = 0
  for i = 1, math.min(#keys, M.config.max_items) do w = math.max(w, #keys[i]) end
  for i, k in ipairs(keys) do
    if i > M.config.max_items then
      lines[#lines + 1] = fmt('  ... (%d more)', #keys - M.config.max_items)
      break
    end
    local v = d[k]
    local desc
    if ffi.istype(var_ct, v) then
      desc = fmt('%-14s need_grad=%s', shape_str(v.shape), tostring(v.need_grad))
    else
      desc = tostring(v)
    end
    lines[#lines + 1] = '  ' .. k .. (' '):rep(w - #k) .. '  ' .. desc
  end
  return concat(lines, '\n')
end

local function sort_keys(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == 'number' or ta == 'string' then return a < b end
  return tostring(a) < tostring(b)
end

local render

local function render_table(t, depth, indent, seen)
  if seen[t] then return paint('dim', '<cycle>') end
  if depth >= M.config.depth then
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n == 0 and '{}' or paint('dim', fmt('{...%d}', n))
  end
  seen[t] = true
  local parts, count = {}, 0
  local n = #t
  local limit = M.config.max_items
  for i = 1, n do
    count = count + 1
    if count <= limit then parts[#parts + 1] = render(t[i], depth + 1, indent .. '  ', seen) end
  end
  local keys = {}
  for k in pairs(t) do
    if not (type(k) == 'number' and k >= 1 and k <= n and k == math.floor(k)) then keys[#keys + 1] = k end
  end
  table.sort(keys, sort_keys)
  for _, k in ipairs(keys) do
    count = count + 1
    if count <= limit then
      local ks = is_ident(k) and paint('key', k) or ('[' .. render(k, depth + 1, indent, seen) .. ']')
      parts[#parts + 1] = ks .. ' = ' .. render(t[k], depth + 1, indent .. '  ', seen)
    end
  end
  seen[t] = nil
  if count > limit then parts[#parts + 1] = paint('dim', fmt('... (%d more)', count - limit)) end
  if #parts == 0 then return '{}' end
  local inline = '{' .. concat(parts, ', ') .. '}'
  if not inline:find('\n', 1, true) and vislen(inline) + #indent <= 78 then return inline end
  return '{\n' .. indent .. '  ' .. concat(parts, ',\n' .. indent .. '  ') .. '\n' .. indent .. '}'
end

-- render(value, depth, indent, seen): the text of a value; depth 0 is the top level.
function render(v, depth, indent, seen)
  local tv = type(v)
  if tv == 'number' then return paint('number', tostring(v))
  elseif tv == 'string' then
    if depth == 0 then return v end
    return paint('string', quote(#v > 200 and (v:sub(1, 200) .. '...') or v))
  elseif tv == 'boolean' or tv == 'nil' then return paint(tv, tostring(v))
  elseif tv == 'function' then
    return paint('function', depth == 0 and function_summary(v) or tostring(v))
  elseif tv == 'cdata' then
    if ffi.istype(var_ct, v) then
      return depth == 0 and pretty_variable(v) or Variable.describe(v)
    end
    return tostring(v)
  elseif tv == 'table' then
    if NdArray.is(v) then
      return depth == 0 and tostring(v) or ('NdArray(shape=' .. shape_str(v.shape) .. ')')
    end
    if parameter.is_dict(v) then
      return depth == 0 and pretty_dict(v) or fmt('OrderedDict(%d entries)', #v:keys())
    end
    local mt = getmetatable(v)
    if type(mt) == 'table' and rawget(mt, '__tostring') then
      local ok, s = pcall(tostring, v)
      if ok then return s end
    end
    return render_table(v, depth, indent, seen)
  end
  return tostring(v)
end

--- M.pretty(value) -> the text the REPL prints for value.
function M.pretty(v)
  local ok, s = pcall(render, v, 0, '', {})
  if ok then return s end
  return tostring(v) .. paint('dim', '  (printing failed: ' .. tostring(s) .. ')')
end

-- Several results: tab-separated on one line when they all fit, else one per line.
function M.pretty_results(res, first, last)
  local parts, multi = {}, false
  for i = first, last do
    parts[#parts + 1] = M.pretty(res[i])
    if parts[#parts]:find('\n', 1, true) then multi = true end
  end
  return concat(parts, multi and '\n' or '\t')
end

----------------------------------------------------------------------------------------------
-- Completion
----------------------------------------------------------------------------------------------

local ND_FIELDS = { 'shape', 'size', 'ndim' }
local DICT_METHODS = { 'items', 'keys', 'values', 'get', 'len', 'has' }

-- name -> value (or true when unknown without evaluating a getter) of obj's members;
-- methods_only keeps the callable ones (for `obj:`).
local function members(obj, methods_only)
  local out = {}
  local function add(k, v)
    if type(k) == 'string' and is_ident(k) and out[k] == nil then
      if not methods_only or type(v) == 'function' or (type(v) == 'table' and getmetatable(v) and getmetatable(v).__call) then
        out[k] = v == nil and true or v
      end
    end
  end
  local function add_all(t) for k, v in pairs(t) do add(k, v) end end
  local tv = type(obj)
  if tv == 'table' then
    if NdArray.is(obj) then
      add_all(NdArray.methods)
      if not methods_only then for _, k in ipairs(ND_FIELDS) do add(k, true) end end
      return out
    end
    if parameter.is_dict(obj) then
      for _, k in ipairs(DICT_METHODS) do
        local ok, f = pcall(function() return obj[k] end)
        if ok and type(f) == 'function' then add(k, f) end
      end
      return out
    end
    add_all(obj)
    local mt, guard = getmetatable(obj), 0
    while type(mt) == 'table' and guard < 10 do
      local idx = rawget(mt, '__index')
      if type(idx) ~= 'table' then break end
      add_all(idx)
      mt, guard = getmetatable(idx), guard + 1
    end
  elseif tv == 'cdata' then
    if ffi.istype(var_ct, obj) then
      add_all(Variable.methods)
      if not methods_only then for k in pairs(Variable.getters or {}) do add(k, true) end end
    elseif func_ct and ffi.istype(func_ct, obj) then
      add_all(Variable.func_methods or {})
      if not methods_only then for k in pairs(Variable.func_getters or {}) do add(k, true) end end
    end
  elseif tv == 'string' then
    add_all(string)
  end
  return out
end
M._members = members

local function index(obj, k)
  local ok, v = pcall(function() return obj[k] end)
  if ok then return v end
  return nil
end

-- Inside an unfinished string literal? (then readline completes file names)
local function in_string(before)
  local q = nil
  local i = 1
  while i <= #before do
    local c = before:sub(i, i)
    if q then
      if c == '\\' then i = i + 1 elseif c == q then q = nil end
    elseif c == '"' or c == "'" then q = c
    elseif c == '-' and before:sub(i, i + 1) == '--' then return false end
    i = i + 1
  end
  return q ~= nil
end

--- M.complete(text [, line, start, env]) -> sorted list of completions of text (the word
-- under the cursor: 'nn.par', 'x:for', 'pri'), or false inside a string literal.
-- A single completion gets '(' after a function or method and '.' after a table.
function M.complete(text, line, start, env)
  env = env or _G
  line = line or text
  start = start or 0
  if in_string(line:sub(1, start)) then return false end
  local lead = ''
  if text:sub(1, 1) == '?' then lead, text = '?', text:sub(2) end
  local path, sep, partial = text:match('^(.*)([%.:])([%w_]*)$')
  local pool, prefix, methods_call
  if path then
    if not path:match('^[%a_][%w_]*$') and not path:match('^[%a_][%w_]*[%.%w_]*[%w_]$') then return {} end
    local obj = env
    for name in path:gmatch('[^%.]+') do
      if obj == nil then return {} end
      obj = index(obj, name)
    end
    if obj == nil then return {} end
    methods_call = sep == ':'
    pool = members(obj, methods_call)
    prefix = path .. sep
  else
    partial = text
    prefix = ''
    pool = members(env, false)
    for k in pairs(KEYWORDS) do if pool[k] == nil then pool[k] = true end end
  end
  local out = {}
  for k, v in pairs(pool) do
    if k:sub(1, #partial) == partial and (partial:sub(1, 1) == '_' or k:sub(1, 1) ~= '_') then
      out[#out + 1] = k
    end
  end
  table.sort(out)
  if #out == 1 then
    local v = pool[out[1]]
    local suffix = ''
    if methods_call or type(v) == 'function' then suffix = '('
    elseif type(v) == 'table' and not NdArray.is(v) and not parameter.is_dict(v)
           and not (getmetatable(v) and getmetatable(v).__call) then suffix = '.' end
    out[1] = out[1] .. suffix
  end
  for i = 1, #out do out[i] = lead .. prefix .. out[i] end
  return out
end

----------------------------------------------------------------------------------------------
-- Help
----------------------------------------------------------------------------------------------

-- The nn.* and method entries `?name` shows (F.*, PF.* and S.* come from their descriptors:
-- F.signature, PF._signatures, S._signatures).
M.doc = {
  ['nn.Variable'] = 'nn.Variable(shape [, {need_grad = false}])\n  A graph variable. Fields shape, ndim, size, d, g (live NdArray views, assignable from an NdArray, a table or a number), need_grad, persistent, name, parent. Methods forward, backward, get_unlinked_variable, reshape, visit.',
  ['nn.Variable.from'] = 'nn.Variable.from(array_or_table [, {need_grad = false}])\n  A variable holding a copy of the data.',
  ['nn.NdArray'] = 'nn.NdArray(shape)\n  Host array (what .d and .g are). Constructors nn.NdArray.zeros(shape), ones(shape), full(shape, v), randn(shape [, mean, std]), rand(shape [, low, high]), arange(a [, b, step]), from(table). Methods reshape, copy, fill, zero, sum/mean/max/min/argmax{axis =}, eq/ne/lt/le/gt/ge, totable, item.',
  ['nn.parameter_scope'] = 'nn.parameter_scope(name, fn, ...)\n  Runs fn(...) inside the parameter scope name (scopes nest; \'a/b\' equals nesting) and returns its results.',
  ['nn.get_parameters'] = 'nn.get_parameters([{grad_only = true}])\n  The parameters as an ordered dictionary (creation order): d[name], #d, d:items(), d:keys(), d:values().',
  ['nn.get_parameter_or_create'] = 'nn.get_parameter_or_create(name, shape [, initializer, need_grad = true])\n  The parameter name in the current scope, created (and initialized) on first use.',
  ['nn.clear_parameters'] = 'nn.clear_parameters()\n  Forgets every parameter.',
  ['nn.set_parameter'] = 'nn.set_parameter(name, variable)\n  Registers a variable as parameter name in the current scope.',
  ['nn.get_current_parameter_scope'] = 'nn.get_current_parameter_scope()\n  The current scope path (\'\' at the top).',
  ['nn.save_parameters'] = 'nn.save_parameters(path [, params])\n  Writes the parameters to an HDF5 file in NNabla\'s layout.',
  ['nn.load_parameters'] = 'nn.load_parameters(path)\n  Reads parameters from an HDF5 file (nnlua or NNabla).',
  ['nn.auto_forward'] = 'nn.auto_forward(fn, ...)\n  Runs fn with dynamic graphs (each function computes as it is called) and returns its results. nn.auto_forward(bool) is nn.set_auto_forward(bool).',
  ['nn.set_auto_forward'] = 'nn.set_auto_forward(bool)\n  Turns dynamic (auto-forward) graphs on or off.',
  ['nn.get_auto_forward'] = 'nn.get_auto_forward() -> bool',
  ['nn.no_grad'] = 'nn.no_grad(fn, ...)\n  Runs fn without building gradients (outputs have need_grad = false) and returns its results.',
  ['nn.seed'] = 'nn.seed(n)\n  Seeds the random generators (initializers, randn, dropout) for reproducible runs.',
  ['nn.memory'] = 'nn.memory() -> {in_use =, peak =, cached =, system_allocations =}\n  The engine\'s memory statistics in bytes.',
  ['nn.set_default_context'] = 'nn.set_default_context(ctx)\n  Makes ctx (from require(\'nnlua.ext_utils\').get_extension_context(\'cpu\'|\'cuda\'|\'cudnn\', {device_id = 0})) the default.',
  ['nn.get_current_context'] = 'nn.get_current_context() -> ctx',
  ['nn.context_scope'] = 'nn.context_scope(ctx, fn, ...)\n  Runs fn under context ctx and returns its results.',
  ['Variable:forward'] = 'x:forward{clear_buffer = false, clear_no_need_grad = false}\n  Computes the graph under x in topological order.',
  ['Variable:backward'] = 'x:backward{grad = nil, clear_buffer = false}\n  Back-propagates from x (grad is required unless x has one element; grad = false uses x.g as it is). Leaf gradients accumulate until solver:zero_grad().',
  ['Variable:get_unlinked_variable'] = 'x:get_unlinked_variable([{need_grad =}])\n  A variable sharing x\'s arrays without its parent.',
  ['Variable:reshape'] = 'x:reshape(shape [, unlink])\n  F.reshape(x, shape), or with unlink a parentless view.',
  ['Variable:visit'] = 'x:visit(fn)\n  Calls fn(f) for every function under x, in forward order.',
  ['Variable:zero_grad'] = 'x:zero_grad()\n  Sets x.g to zero.',
  ['Solver'] = 'methods: set_parameters(params), zero_grad(), weight_decay(decay), update(), learning_rate(), set_learning_rate(lr), clip_grad_by_norm(norm), scale_grad(scale), check_inf_or_nan_grad(), get_states(), set_states(states), save_states(path), load_states(path), remove_parameters(names)',
}

local HELP = [[
nnlua REPL  (nn, F, PF and S are loaded)
  1 + 1            an expression prints its value; end the line with ; to keep it quiet
  x = nn.Variable({2, 3})   statements run; `_` is the last result
  for i = 1, 3 do  incomplete input continues on a '..>' line (Ctrl-C drops it)
  ?name            help: ?F.affine  ?PF.convolution  ?nn.parameter_scope  ?x:forward  ?S.Sgd
  help(F.affine)   the same for a function of F, PF, S or nn (or help 'x:forward')
  TAB              complete globals, fields and methods: nn.par<TAB>  x:for<TAB>
  Ctrl-C           stop a running computation and return to the prompt
  Ctrl-D, exit     leave
History: %s.  Plots: plot.show() opens a window, or draws in the terminal without a display.
Note: `local x = 1` only lives for one input; write `x = 1` to keep x.]]

local source_cache = {}
local function source_lines(path)
  if source_cache[path] == nil then
    local lines = false
    local f = io.open(path, 'r')
    if f then
      lines = {}
      for l in f:lines() do lines[#lines + 1] = l end
      f:close()
    end
    source_cache[path] = lines
  end
  return source_cache[path] or nil
end

-- The comment block just above a Lua function's definition.
local function comment_above(f)
  local info = debug.getinfo(f, 'S')
  if not info or info.what ~= 'Lua' or info.source:sub(1, 1) ~= '@' then return nil end
  local lines = source_lines(info.source:sub(2))
  if not lines then return nil end
  local out = {}
  local i = info.linedefined - 1
  while i >= 1 and lines[i]:match('^%s*%-%-') do
    table.insert(out, 1, (lines[i]:gsub('^%s*%-%-+%s?', '')))
    i = i - 1
  end
  if #out == 0 then return nil end
  return '  ' .. concat(out, '\n  ')
end

local function names_in_columns(names, width)
  table.sort(names)
  local w = 0
  for _, n in ipairs(names) do w = math.max(w, #n) end
  local per = math.max(1, math.floor((width or 80) / (w + 2)))
  local lines = {}
  for i = 1, #names, per do
    local row = {}
    for j = i, math.min(#names, i + per - 1) do row[#row + 1] = names[j] .. (' '):rep(w - #names[j]) end
    lines[#lines + 1] = '  ' .. concat(row, '  '):gsub('%s+$', '')
  end
  return concat(lines, '\n')
end

local function resolve(env, path)
  local obj = env
  for name in path:gmatch('[^%.]+') do
    if obj == nil then return nil end
    obj = index(obj, name)
  end
  return obj
end

local function F_help(F, name)
  if not F or type(F.signature) ~= 'function' then return nil end
  local sig, doc = F.signature(name)
  if not sig then return nil end
  return paint('head', sig) .. ((doc and doc ~= '') and ('\n  ' .. doc) or '')
end

local function PF_help(PF, name)
  local sigs = PF and rawget(PF, '_signatures')
  local sig = type(sigs) == 'table' and sigs[name]
  if not sig then return nil end
  return paint('head', sig) .. '\n  parameters are created on first use under the current scope; ' ..
         "{name = 'scope'} adds an outer scope"
end

local function S_help(S, name)
  local sigs = S and rawget(S, '_signatures')
  local sig = type(sigs) == 'table' and sigs[name]
  if not sig then return nil end
  return paint('head', sig) .. '\n  ' .. M.doc.Solver
end

local function doc_help(key)
  local d = M.doc[key]
  if not d then return nil end
  local first, rest = d:match('^([^\n]*)(.*)$')
  return paint('head', first) .. rest
end

--- M.help(name [, env]) -> help text for name: '' (the REPL's own help), 'F.affine',
-- 'affine', 'PF.affine', 'nn.parameter_scope', 'S.Sgd', 'x:forward', 'Variable:backward',
-- or any global path.
function M.help(name, env)
  env = env or _G
  name = (name or ''):gsub('^%s+', ''):gsub('%s+$', ''):gsub('%(%)$', '')
  if name == '' then
    local h = M.history_path
    return fmt(HELP, h and ('kept in ' .. h .. ' (NNLUA_HISTORY)') or 'off')
  end
  name = name:gsub('^nnlua%.functions%.', 'F.'):gsub('^nnlua%.parametric_functions%.', 'PF.')
             :gsub('^nnlua%.solvers%.', 'S.'):gsub('^nnlua%.', 'nn.')
  local F, PF, S = rawget(env, 'F'), rawget(env, 'PF'), rawget(env, 'S')
  F = F or package.loaded['nnlua.functions']
  PF = PF or package.loaded['nnlua.parametric_functions']
  S = S or package.loaded['nnlua.solvers']
  local out = {}
  local ns, rest = name:match('^(%a+)%.([%w_]+)$')
  if ns == 'F' then out[#out + 1] = F_help(F, rest)
  elseif ns == 'PF' then out[#out + 1] = PF_help(PF, rest)
  elseif ns == 'S' then out[#out + 1] = S_help(S, rest)
  elseif ns == 'nn' then out[#out + 1] = doc_help(name)
  elseif name:match('^[%a_][%w_]*$') then
    -- a bare name: a function of F, PF, nn or S
    out[#out + 1] = F_help(F, name)
    out[#out + 1] = PF_help(PF, name)
    out[#out + 1] = doc_help('nn.' .. name)
    out[#out + 1] = S_help(S, name)
  end
  -- methods: x:forward, Variable:forward, Variable.forward
  local obj, meth = name:match('^([%w_%.]+)[:%.]([%w_]+)$')
  if #out == 0 and obj then
    local target = resolve(env, obj)
    if obj == 'Variable' or obj == 'nn.Variable' or (type(target) == 'cdata' and ffi.istype(var_ct, target)) then
      out[#out + 1] = doc_help('Variable:' .. meth)
    elseif type(target) == 'table' and getmetatable(target) and rawget(target, 'update_one') == nil
           and type(index(target, 'update')) == 'function' and type(index(target, 'zero_grad')) == 'function' then
      out[#out + 1] = paint('dim', M.doc.Solver)
    end
  end
  if #out > 0 then return concat(out, '\n') end
  -- anything else: describe the value
  local path = name:gsub(':', '.')
  if not path:match('^[%a_][%w_%.]*$') then return "no help for '" .. name .. "'" end
  local v = resolve(env, path)
  if v == nil then return "no help for '" .. name .. "' (not defined)" end
  if type(v) == 'function' then
    local s = paint('head', name .. ': ' .. function_summary(v))
    local c = comment_above(v)
    return c and (s .. '\n' .. c) or s
  end
  if type(v) == 'table' and not NdArray.is(v) and not parameter.is_dict(v) then
    local names = {}
    for k in pairs(members(v, false)) do if k:sub(1, 1) ~= '_' then names[#names + 1] = k end end
    if #names > 0 then
      return paint('head', fmt('%s: a table with %d fields', name, #names)) .. '\n' ..
             names_in_columns(names, M.columns and M.columns() or 80)
    end
  end
  if type(v) == 'cdata' and ffi.istype(var_ct, v) then
    local names = {}
    for k in pairs(members(v, false)) do names[#names + 1] = k end
    return M.pretty(v) .. '\n' .. paint('head', 'fields and methods:') .. '\n' ..
           names_in_columns(names, M.columns and M.columns() or 80)
  end
  return name .. ' (' .. type(v) .. '): ' .. M.pretty(v)
end

----------------------------------------------------------------------------------------------
-- Reading and running input
----------------------------------------------------------------------------------------------

--- M.compile(chunk) -> fn, quiet | nil, 'incomplete' | nil, message
-- Tries the chunk as an expression list first (its values print unless it ends with ';'),
-- then as statements (which print nothing). fn(pack) returns pack(values) for expressions;
-- the values go through pack so that a call in the expression is not a tail call (its
-- errors then point at stdin:N).
function M.compile(chunk, chunkname)
  chunkname = chunkname or '=stdin'
  local src, quiet = chunk, false
  if src:match('^%s*=') then src = src:gsub('^%s*=', '', 1) end
  if src:match(';%s*$') then quiet = true; src = src:gsub(';%s*$', '')
  elseif src:match(';%s*%-%-[^\n]*$') then   -- `x; -- a comment` is quiet too
    local bare = src:gsub(';%s*%-%-[^\n]*$', '')
    if loadstring('return ' .. bare) then quiet = true; src = bare end
  end
  local fn = loadstring('local __nnlua_pack = ... return __nnlua_pack(' .. src .. '\n)', chunkname)
  if fn then return fn, quiet end
  -- `return a, b` prints a and b, as lua's own prompt does
  local returned = src:match('^%s*return%s+(.-)%s*$')
  if returned and returned ~= '' then
    fn = loadstring('local __nnlua_pack = ... return __nnlua_pack(' .. returned .. '\n)', chunkname)
    if fn then return fn, quiet end
  end
  local err
  fn, err = loadstring(chunk, chunkname)
  if fn then return fn, true end
  if err:match("'<eof>'$") or err:match('<eof>$') then return nil, 'incomplete' end
  -- an expression cut short (`1 +`, `x *`) is no statement, but goes on on the next line
  local _, experr = loadstring('return ' .. src, chunkname)
  if experr and experr:match("near '<eof>'$") then return nil, 'incomplete' end
  -- refused as a statement at its first word (`1 +* 2`): the expression's error says where
  local first = chunk:match('^%s*([%w_]+)')
  if experr and first and err:match("unexpected symbol near '" .. first .. "'$") then return nil, experr end
  return nil, err
end

--- M.help_of(x [, env]) -> what `help(x)` prints at the prompt: x a name ('F.affine'), or a
-- function of F, PF, S or nn (help(F.affine)); nothing: the REPL's own help.
function M.help_of(x, env)
  env = env or _G
  if x == nil then return M.help('', env) end
  if type(x) == 'string' then return M.help(x, env) end
  local spaces = { F = 'nnlua.functions', PF = 'nnlua.parametric_functions', S = 'nnlua.solvers', nn = 'nnlua' }
  for _, ns in ipairs { 'F', 'PF', 'S', 'nn' } do
    local t = rawget(env, ns) or package.loaded[spaces[ns]]
    if type(t) == 'table' then
      -- of the names it has (PF.linear is PF.affine), the documented one, else the first
      local names, sigs = {}, rawget(t, '_signatures')
      for k, v in pairs(t) do
        if v == x and type(k) == 'string' then names[#names + 1] = k end
      end
      table.sort(names)
      local pick = names[1]
      for _, k in ipairs(names) do
        if (sigs and sigs[k]) or (ns == 'F' and type(t.signature) == 'function' and t.signature(k)) then pick = k; break end
      end
      if pick then return M.help(ns .. '.' .. pick, env) end
    end
  end
  return fmt("help: no help found for this %s; give a name: help 'F.affine', or ?F.affine", type(x))
end

-- Error handler: the message and the traceback, without the REPL's own frames.
local function traceback(err)
  if type(err) ~= 'string' then
    local mt = getmetatable(err)
    err = (mt and mt.__tostring) and tostring(err) or ('(error object is a ' .. type(err) .. ' value: ' .. tostring(err) .. ')')
  end
  local tb = debug.traceback(err, 2)
  local lines = {}
  for l in tb:gmatch('[^\n]+') do lines[#lines + 1] = l end
  local cut = #lines
  for i = #lines, 1, -1 do
    if lines[i]:match("%[C%]: in function 'xpcall'") then cut = i - 1 break end
  end
  local kept = {}
  for i = 1, cut do
    if not lines[i]:match('^%s*%[builtin#%d+%]: at 0x') then kept[#kept + 1] = lines[i] end
  end
  if kept[#kept] == 'stack traceback:' then kept[#kept] = nil end
  return concat(kept, '\n')
end
M._traceback = traceback

----------------------------------------------------------------------------------------------
-- Interrupts
--
-- With the shim, SIGINT while user code runs sets a one-shot debug hook that raises
-- "interrupted" at the next interpreted instruction. Debug hooks do not run inside
-- JIT-compiled traces, so code typed at the prompt is run with the JIT off for its own
-- functions (config.jit = false; library functions it calls stay compiled), and the handler
-- also calls the engine's nl_interrupt() when libnnlua has it, for long C calls.
-- A second Ctrl-C that finds the code still running says so; a third quits.
-- Without the shim, LuaJIT's own SIGINT handler (active while `nnlua` runs) does the first
-- part, and is put back after each interrupt.
----------------------------------------------------------------------------------------------

local function engine_interrupt_fns()
  local ok1, set = pcall(function() return lib.C.nl_interrupt end)
  local ok2, take = pcall(function() return lib.C.nl_interrupted_take end)
  return ok1 and set or nil, ok2 and take or nil
end

local sig = {}
do
  pcall(ffi.cdef, 'typedef void (*nnlua_sighandler_t)(int); nnlua_sighandler_t signal(int, nnlua_sighandler_t);')
  local SIGINT = 2
  local SIG_IGN = ffi.cast('nnlua_sighandler_t', 1)
  -- the handler in place now (LuaJIT's own while `luajit script` runs), to put back later
  function sig.capture()
    local ok, h = pcall(function()
      local cur = ffi.C.signal(SIGINT, SIG_IGN)
      ffi.C.signal(SIGINT, cur)
      return cur
    end)
    if ok and h ~= nil and tonumber(ffi.cast('intptr_t', h)) > 1 then sig.saved = h end
  end
  function sig.restore()
    if sig.saved then pcall(function() ffi.C.signal(SIGINT, sig.saved) end) end
  end
end

----------------------------------------------------------------------------------------------
-- The shim
----------------------------------------------------------------------------------------------

--- M.load_shim() -> the line editing module, or nil and why. $NNLUA_READLINE=0 disables it;
-- $NNLUA_READLINE_LIB names the library (else found like libnnlua.so).
function M.load_shim()
  if os.getenv('NNLUA_READLINE') == '0' then return nil, 'disabled by NNLUA_READLINE=0' end
  local path, tried = lib.find_library('libnnlua_readline', 'NNLUA_READLINE_LIB')
  if not path then return nil, 'libnnlua_readline.so not found (looked in ' .. tostring(tried) .. ')' end
  local open, err = package.loadlib(path, 'luaopen_nnlua_readline')
  if not open then return nil, err end
  local ok, rl = pcall(open)
  if not ok then return nil, rl end
  rl.path = path
  return rl
end

local function default_history_path()
  local p = os.getenv('NNLUA_HISTORY')
  if p then return p ~= '' and p or nil end
  local home = os.getenv('HOME')
  if not home or home == '' then return nil end
  return home .. '/.nnlua_history'
end

local function setup_plot_backend(interactive)
  if not interactive or os.getenv('NNLUA_PLOT') then return end
  local display = os.getenv('DISPLAY') or os.getenv('WAYLAND_DISPLAY')
  if display and display ~= '' then return end
  if not isatty(1) then return end
  local ok, plot = pcall(require, 'nnlua.plot')
  if ok and type(plot.set_backend) == 'function' and (not plot.get_backend or plot.get_backend() == nil) then
    pcall(plot.set_backend, 'terminal')
  end
end

--- M.start([{env = _G, banner = true}]): runs the REPL until Ctrl-D or `exit`.
function M.start(opts)
  opts = opts or {}
  local env = opts.env or _G
  if rawget(env, 'help') == nil then
    rawset(env, 'help', function(x) io.stdout:write(M.help_of(x, env), '\n') end)
  end
  local interactive = isatty(0)
  M.color = isatty(1) and os.getenv('NO_COLOR') == nil and os.getenv('TERM') ~= 'dumb'
  local rl, why = M.load_shim()
  M.shim, M.shim_error = rl, why
  local use_readline = rl and interactive
  local out, errout = io.stdout, interactive and io.stdout or io.stderr

  -- interrupts
  local set_engine, take_engine = engine_interrupt_fns()
  if rl then
    rl.install_signals()
    if set_engine then rl.set_interrupt_function(tonumber(ffi.cast('intptr_t', set_engine))) end
  else
    sig.capture()
  end
  local function clear_engine_flag() if take_engine then pcall(take_engine) end end
  M.columns = function()
    if rl then local c = rl.columns() if c then return c end end
    return tonumber(os.getenv('COLUMNS')) or 80
  end

  -- history
  local hist = use_readline and default_history_path() or nil
  local hist_size = tonumber(os.getenv('NNLUA_HISTORY_SIZE')) or 1000
  M.history_path = hist
  if hist then
    local f = io.open(hist, 'r')
    if f then
      f:close()
      rl.truncate_history(hist, hist_size)
      rl.read_history(hist)
    elseif not rl.write_history(hist) then   -- creates it (mode 0600)
      hist = nil
    end
  end
  local last_hist

  if use_readline then
    rl.set_completer(function(text, line, start)
      local ok, res = pcall(M.complete, text, line, start, env)
      if ok then return res end
      return {}
    end)
  end

  setup_plot_backend(interactive)

  if interactive and opts.banner ~= false then
    local nn = rawget(env, 'nn') or package.loaded['nnlua']
    out:write(fmt('nnlua %s  (%s)  nn, F, PF, S loaded.  ? for help, Ctrl-D or exit to leave.\n',
      nn and nn.version or '', jit and jit.version or _VERSION))
    if not rl then
      out:write(paint('dim', '(no line editing: ' .. tostring(why) .. ')') .. '\n')
    end
  end

  local function read(prompt)
    if use_readline then return rl.readline(prompt) end
    if interactive then out:write(prompt) out:flush() end
    return io.read('*l')
  end

  local function remember(line)
    if not hist or not line:match('%S') or line == last_hist then return end
    last_hist = line
    rl.add_history(line)
    rl.append_history(1, hist)
  end

  local function run(fn, quiet)
    setfenv(fn, env)
    if not M.config.jit and jit then jit.off(fn, true) end
    clear_engine_flag()
    local res
    -- arm/disarm happen inside this pcall, so a late interrupt cannot escape the REPL
    local ok, err = pcall(function()
      if rl then rl.arm(true) end
      res = pack(xpcall(fn, traceback, pack))
      if res[1] and type(res[2]) == 'table' and res.n == 2 and res[2].n then
        res = { n = res[2].n + 1, true, unpack(res[2], 1, res[2].n) }
      end
      if rl then rl.arm(false) end
    end)
    if rl then rl.arm(false) end
    clear_engine_flag()
    if not ok then res = { n = 2, false, traceback(err) } end
    if not res[1] then
      local msg = tostring(res[2])
      errout:write(paint('err', msg), '\n')
      errout:flush()
      if not rl then sig.restore() end
      return
    end
    if res.n > 1 then
      rawset(env, '_', res[2])
      if not quiet then
        out:write(M.pretty_results(res, 2, res.n), '\n')
        out:flush()
      end
    end
  end

  local buffer = nil
  local function step()
    local line = read(buffer and '..> ' or 'nn> ')
    if line == false then buffer = nil return true end       -- Ctrl-C at the prompt
    if line == nil then                                        -- Ctrl-D / end of input
      if interactive then out:write('\n') end
      return false
    end
    remember(line)
    if not buffer then
      local word = line:match('^%s*(%a+)%s*$') or line:match('^%s*(%a+)%s*%(%s*%)%s*$')
      if word == 'exit' or word == 'quit' then return false end
      local topic = line:match('^%s*%?(.*)$')
      if topic then
        out:write(M.help(topic, env), '\n')
        return true
      end
      if not line:match('%S') then return true end
    end
    local chunk = buffer and (buffer .. '\n' .. line) or line
    local fn, info = M.compile(chunk)
    if fn then
      buffer = nil
      run(fn, info)
    elseif info == 'incomplete' then
      buffer = chunk
    else
      buffer = nil
      errout:write(paint('err', tostring(info)), '\n')
    end
    return true
  end

  while true do
    local ok, continue = pcall(step)
    if rl then rl.arm(false) end
    if not ok then
      -- an interrupt between two inputs, or a bug in the REPL itself: report and go on
      if tostring(continue):match('interrupted!?$') then
        errout:write(paint('dim', '(interrupted)'), '\n')
      else
        errout:write(paint('err', tostring(continue)), '\n')
      end
      buffer = nil
      if not rl then sig.restore() end
    elseif not continue then
      break
    end
  end
  if rl then
    rl.set_completer(nil)
    rl.restore_signals()
  end
  out:flush()
end

return M
