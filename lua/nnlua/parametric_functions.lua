-- nnlua.parametric_functions (PF): functions that own parameters, created on first use
-- under NNabla's scope and parameter names, with NNabla's shapes, need_grad flags and
-- default initializers:
--
--   PF.affine                     affine/W (in, out...), affine/b (out...)
--   PF.convolution                conv/W (out, in/group, k...), conv/b (out)
--   PF.deconvolution              deconv/W (in, out/group, k...), deconv/b (out)
--   PF.depthwise_convolution      depthwise_conv/W (in*multiplier, k...), depthwise_conv/b
--   PF.batch_normalization        bn/beta, bn/gamma (need_grad), bn/mean, bn/var (not)
--   PF.fused_batch_normalization  the same under bn/
--   PF.layer_normalization        layer_normalization/beta, gamma (input shape, 1 on batch axes)
--   PF.instance_normalization     instance_normalization/beta, gamma (1 except the channel axis)
--   PF.group_normalization        group_normalization/beta, gamma (1 except the channel axis)
--   PF.embed                      embed/W (n_inputs, n_features), U(-sqrt(3), sqrt(3))
--   PF.prelu                      prelu/slope: {} when shared, else {C}; 0.25
--   PF.rnn / PF.lstm / PF.gru     rnn|lstm|gru/weight_l0, weight (num_layers > 1), bias
--   PF.lstm_cell                  lstm/affine/W (in + state, 4, state), lstm/affine/b (4, state)
--
-- Arguments after the inputs go positionally in NNabla's order or by name in a trailing
-- options table; {name = 'fc1'} adds an outer scope. Axes are 1-based (base_axis and
-- channel axes default to 2, batch axes to 1). fix_parameters = true returns unlinked
-- copies with need_grad = false (the registered parameters keep theirs). NNabla's `rng`
-- is accepted and ignored: nn.seed(n) makes the initial values reproducible.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local I = require 'nnlua.initializer'
local NdArray = require 'nnlua.ndarray'
local lib = require 'nnlua.lib'
local parameter = require 'nnlua.parameter'

local PF = {}
PF._signatures = {}

local function is_options(x)
  if type(x) ~= 'table' or getmetatable(x) ~= nil then return false end
  for k in pairs(x) do if type(k) == 'string' then return true end end
  return false
end

-- Binds positional and named arguments to the spec { {name, default}, ... }.
local function bind(where, spec, ...)
  local n = select('#', ...)
  local params = { ... }
  local opts = {}
  if n > 0 and is_options(params[n]) then opts = params[n]; params[n] = nil; n = n - 1 end
  if n > #spec then
    error(('%s: takes at most %d arguments after the input, got %d'):format(where, #spec, n), 0)
  end
  local out, index = {}, {}
  for i, s in ipairs(spec) do
    index[s[1]] = i
    local v = params[i]
    if v == nil then v = s[2] end
    out[s[1]] = v
  end
  for k, v in pairs(opts) do
    local i = index[k]
    if not i then
      local names = {}
      for _, s in ipairs(spec) do names[#names + 1] = s[1] end
      error(("%s: unknown option '%s' (options: %s)"):format(where, tostring(k), table.concat(names, ', ')), 0)
    end
    if params[i] ~= nil then error(("%s: argument '%s' given both by position and by name"):format(where, k), 0) end
    out[k] = v
  end
  for _, s in ipairs(spec) do
    local v = out[s[1]]
    if s.required and v == nil then error(("%s: missing argument '%s'"):format(where, s[1]), 0) end
    -- flags are booleans: with_bias = 'no' or fix_parameters = 1 would be taken as true
    if type(s[2]) == 'boolean' and type(v) ~= 'boolean' then
      error(("%s: '%s' must be a boolean (true or false), got %s"):format(where, s[1], type(v) == 'string' and "'" .. v .. "'" or type(v)), 0)
    end
    if (s[1] == 'apply_w' or s[1] == 'apply_b') and v ~= nil and type(v) ~= 'function'
       and not (type(v) == 'table' and getmetatable(v) and getmetatable(v).__call) then
      error(("%s: '%s' must be a function of the parameter Variable, got %s"):format(where, s[1], type(v)), 0)
    end
  end
  return out
end

local function show(v)
  if type(v) == 'table' then
    local t = {}
    for i = 1, #v do t[i] = tostring(v[i]) end
    return '{' .. table.concat(t, ', ') .. '}'
  elseif type(v) == 'string' then
    return "'" .. v .. "'"
  end
  return tostring(v)
end

local function signature(name, spec, inputs)
  local parts = {}
  for _, s in ipairs(inputs or { 'inp' }) do parts[#parts + 1] = s end
  for _, s in ipairs(spec) do
    parts[#parts + 1] = s.required and s[1] or (s[1] .. '=' .. show(s[2]))
  end
  PF._signatures[name] = 'PF.' .. name .. '(' .. table.concat(parts, ', ') .. ')'
end

local function scoped(name, inner, fn)
  if name ~= nil then
    if type(name) ~= 'string' then error("option 'name' must be a string, got " .. type(name), 0) end
    return nn.parameter_scope(name, function() return nn.parameter_scope(inner, fn) end)
  end
  return nn.parameter_scope(inner, fn)
end

local function pack(...) return { n = select('#', ...), ... } end

-- def(where, fn): the PF itself. Errors raised anywhere inside (argument checks, F.*,
-- get_parameter_or_create, a user's apply_w) come back as one message that names the PF
-- and points at the line that called it.
local function def(where, fn)
  return function(...)
    local reg, n = parameter.mark()
    local res = pack(pcall(fn, ...))
    if not res[1] then
      parameter.remove_since(reg, n)   -- the parameters this failed call created
      local msg = res[2]
      if type(msg) ~= 'string' then error(msg, 0) end
      msg = msg:gsub('^[^\n:]+:%d+: ', '')
      if msg:sub(1, #where + 1) ~= where .. ':' then msg = where .. ': ' .. msg end
      error(msg, 2)
    end
    return unpack(res, 2, res.n)
  end
end

local function check_input(where, x, what)
  if not nn.Variable.is(x) then
    error(('%s: %s must be a Variable, got %s'):format(where, what or 'the input', type(x)), 0)
  end
end

-- define(name, spec, inputs, body [, pre]): PF[name] and its signature. The PF takes the
-- input Variables named by `inputs` (nil: one, 'inp'), checked, then spec's arguments
-- (positionally and/or by name) bound into a; returns body(where, a, inputs...) with
-- where = 'PF.<name>'. pre(where, ...), if given, sees the raw arguments after the inputs
-- before they are bound.
local function define(name, spec, inputs, body, pre)
  local where = 'PF.' .. name
  local n = inputs and #inputs or 1
  signature(name, spec, inputs)
  PF[name] = def(where, function(...)
    local ins = { ... }
    for i = 1, n do check_input(where, ins[i], inputs and inputs[i]) end
    if pre then pre(where, select(n + 1, ...)) end
    local a = bind(where, spec, select(n + 1, ...))
    return body(where, a, unpack(ins, 1, n))
  end)
  return PF[name]
end

local function prod(t, a, b)
  local p = 1
  for i = a or 1, b or #t do p = p * t[i] end
  return p
end

local function norm_axis(where, axis, ndim, what)
  if type(axis) ~= 'number' or axis ~= math.floor(axis) then
    error(('%s: %s must be an integer, got %s'):format(where, what, tostring(axis)), 0)
  end
  local a = axis < 0 and ndim + axis + 1 or axis
  if axis == 0 or a < 1 or a > ndim then
    error(('%s: %s %d is out of range for a %d-d input'):format(where, what, axis, ndim), 0)
  end
  return a
end

local function norm_axes(where, axes, ndim, what)
  if type(axes) == 'number' then axes = { axes } end
  if type(axes) ~= 'table' then error(('%s: %s must be an axis or a list of axes, got %s'):format(where, what, type(axes)), 0) end
  local out = {}
  for i, a in ipairs(axes) do out[i] = norm_axis(where, a, ndim, what) end
  return out
end

local function check_count(where, what, v)
  if type(v) ~= 'number' or v ~= math.floor(v) or v < 1 then
    error(('%s: %s must be a positive integer, got %s'):format(where, what, tostring(v)), 0)
  end
end

local function check_kernel(where, kernel)
  if type(kernel) == 'number' then kernel = { kernel } end
  if type(kernel) ~= 'table' or #kernel == 0 then
    error(('%s: kernel must be a list of sizes such as {3, 3}, got %s'):format(where, show(kernel)), 0)
  end
  for i, k in ipairs(kernel) do
    if type(k) ~= 'number' or k ~= math.floor(k) or k < 1 then
      error(('%s: kernel entry %d must be a positive integer, got %s'):format(where, i, tostring(k)), 0)
    end
  end
  return kernel
end

local function param(name, shape, init, fix)
  return nn.get_parameter_or_create(name, shape, init, true, not fix)
end

local function check_param_init(where, init, allowed)
  if init == nil then return {} end
  if type(init) ~= 'table' then error(where .. ": param_init must be a table such as {gamma = I.ConstantInitializer(2)}", 0) end
  for k in pairs(init) do
    if not allowed[k] then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      error(("%s: unknown param_init key '%s' (keys: %s)"):format(where, tostring(k), table.concat(names, ', ')), 0)
    end
  end
  return init
end

local function no_output_stat(where, a)
  if a.output_stat then
    error(where .. ': output_stat = true is not supported (the function returns only the normalized output)', 0)
  end
end

-- output_stat = true: y and the statistics the normalization used, as NNabla returns them:
-- the mean and the biased variance of inp over every axis not in `keep` (kept as size 1),
-- differentiable like y.
local function with_stats(y, inp, keep)
  local red = {}
  for i = 1, #inp.shape do if not keep[i] then red[#red + 1] = i end end
  if #red == 0 then
    local var = F.mul_scalar(inp, 0)
    return y, F.identity(inp), var
  end
  local mean = F.mean(inp, red, true)
  local var = F.mean(F.pow_scalar(F.sub2(inp, mean), 2), red, true)
  return y, mean, var
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function bn_output_stat(where, a)
  if a.output_stat and not a.batch_stat then
    error(where .. ': output_stat = true needs batch_stat = true (with batch_stat = false the '
          .. 'statistics used are the running ones, bn/mean and bn/var)', 0)
  end
  return a.output_stat
end

-- W (init: the resolved initializer) and, with a.with_bias, b (bshape, a.b_init or 0) under
-- the current scope, passed through a.apply_w / a.apply_b when given.
local function applied(fn, v, what)
  local r = fn(v)
  if not nn.Variable.is(r) then
    error(("%s returned %s, not a Variable (it gets the parameter %s and returns what is used instead)"):format(
      what, type(r), v.name or ''), 0)
  end
  return r
end

local function weight_bias(a, wshape, init, bshape)
  local W = param('W', wshape, init, a.fix_parameters)
  if a.apply_w then W = applied(a.apply_w, W, 'apply_w') end
  local b
  if a.with_bias then
    b = param('b', bshape, a.b_init or I.ConstantInitializer(0), a.fix_parameters)
    if a.apply_b then b = applied(a.apply_b, b, 'apply_b') end
  end
  return W, b
end

-- beta and gamma as NNabla's _init_beta_gamma: not created under no_bias / no_scale.
local function beta_gamma(shape, a, init)
  local beta, gamma
  if not a.no_bias then beta = param('beta', shape, init.beta or I.ConstantInitializer(0), a.fix_parameters) end
  if not a.no_scale then gamma = param('gamma', shape, init.gamma or I.ConstantInitializer(1), a.fix_parameters) end
  return beta, gamma
end

-- ---- affine ---------------------------------------------------------------------------
local affine_spec = {
  { 'n_outmaps', required = true }, { 'base_axis', 2 }, { 'w_init' }, { 'b_init' },
  { 'fix_parameters', false }, { 'rng' }, { 'with_bias', true }, { 'apply_w' }, { 'apply_b' },
  { 'name' },
}
define('affine', affine_spec, nil, function(where, a, inp)
  local shape = inp.shape
  local base = norm_axis(where, a.base_axis, #shape, 'base_axis')
  local outs = type(a.n_outmaps) == 'table' and a.n_outmaps or { a.n_outmaps }
  for _, o in ipairs(outs) do check_count(where, 'n_outmaps', o) end
  local inmaps = prod(shape, base)
  local wshape = { inmaps }
  for _, o in ipairs(outs) do wshape[#wshape + 1] = o end
  return scoped(a.name, 'affine', function()
    local w_init = a.w_init or I.UniformInitializer(I.calc_uniform_lim_glorot(inmaps, prod(outs)))
    local W, b = weight_bias(a, wshape, w_init, outs)
    return F.affine(inp, W, b, base)
  end)
end)
PF.linear = PF.affine

-- ---- convolution ----------------------------------------------------------------------
-- A convolution weight shape: (first, second, kernel...), or (first, kernel..., second)
-- with channel_last.
local function kernel_shape(first, second, kernel, channel_last)
  local s = { first }
  if not channel_last then s[2] = second end
  for _, k in ipairs(kernel) do s[#s + 1] = k end
  if channel_last then s[#s + 1] = second end
  return s
end

local conv_spec = {
  { 'outmaps', required = true }, { 'kernel', required = true }, { 'pad' }, { 'stride' },
  { 'dilation' }, { 'group', 1 }, { 'channel_last', false }, { 'w_init' }, { 'b_init' },
  { 'base_axis', 2 }, { 'fix_parameters', false }, { 'rng' }, { 'with_bias', true },
  { 'apply_w' }, { 'apply_b' }, { 'name' },
}
define('convolution', conv_spec, nil, function(where, a, inp)
  local shape = inp.shape
  local base = norm_axis(where, a.base_axis, #shape, 'base_axis')
  local kernel = check_kernel(where, a.kernel)
  check_count(where, 'outmaps', a.outmaps)
  check_count(where, 'group', a.group)
  local inmaps = a.channel_last and shape[#shape] or shape[base]
  if inmaps % a.group ~= 0 then
    error(('%s: %d input channels are not divisible by group %d'):format(where, inmaps, a.group), 0)
  end
  local wshape = kernel_shape(a.outmaps, inmaps / a.group, kernel, a.channel_last)
  return scoped(a.name, 'conv', function()
    local w_init = a.w_init or I.UniformInitializer(I.calc_uniform_lim_glorot(inmaps, a.outmaps, kernel))
    local W, b = weight_bias(a, wshape, w_init, { a.outmaps })
    return F.convolution(inp, W, b, { base_axis = base, pad = a.pad, stride = a.stride,
                                       dilation = a.dilation, group = a.group, channel_last = a.channel_last })
  end)
end)
PF.conv = PF.convolution

-- ---- deconvolution --------------------------------------------------------------------
local deconv_spec = {
  { 'outmaps', required = true }, { 'kernel', required = true }, { 'pad' }, { 'stride' },
  { 'dilation' }, { 'group', 1 }, { 'channel_last', false }, { 'output_padding' },
  { 'w_init' }, { 'b_init' }, { 'base_axis', 2 }, { 'fix_parameters', false }, { 'rng' },
  { 'with_bias', true }, { 'apply_w' }, { 'apply_b' }, { 'name' },
}
define('deconvolution', deconv_spec, nil, function(where, a, inp)
  local shape = inp.shape
  local base = norm_axis(where, a.base_axis, #shape, 'base_axis')
  local kernel = check_kernel(where, a.kernel)
  check_count(where, 'outmaps', a.outmaps)
  check_count(where, 'group', a.group)
  if a.outmaps % a.group ~= 0 then
    error(('%s: outmaps %d is not divisible by group %d'):format(where, a.outmaps, a.group), 0)
  end
  local channels = a.channel_last and shape[#shape] or shape[base]
  local wshape = kernel_shape(channels, a.outmaps / a.group, kernel, a.channel_last)
  return scoped(a.name, 'deconv', function()
    local w_init = a.w_init or I.UniformInitializer(I.calc_uniform_lim_glorot(a.outmaps, channels, kernel))
    local W, b = weight_bias(a, wshape, w_init, { a.outmaps })
    return F.deconvolution(inp, W, b, { base_axis = base, pad = a.pad, stride = a.stride,
                                         dilation = a.dilation, group = a.group,
                                         channel_last = a.channel_last, output_padding = a.output_padding })
  end)
end)
PF.deconv = PF.deconvolution

-- ---- depthwise convolution ------------------------------------------------------------
local dwconv_spec = {
  { 'kernel', required = true }, { 'pad' }, { 'stride' }, { 'dilation' }, { 'multiplier', 1 },
  { 'w_init' }, { 'b_init' }, { 'base_axis', 2 }, { 'fix_parameters', false }, { 'rng' },
  { 'with_bias', true }, { 'name' },
}
define('depthwise_convolution', dwconv_spec, nil, function(where, a, inp)
  local shape = inp.shape
  local base = norm_axis(where, a.base_axis, #shape, 'base_axis')
  local kernel = check_kernel(where, a.kernel)
  check_count(where, 'multiplier', a.multiplier)
  local channels = shape[base]
  local outs = channels * a.multiplier
  local wshape = { outs }
  for _, k in ipairs(kernel) do wshape[#wshape + 1] = k end
  return scoped(a.name, 'depthwise_conv', function()
    local w_init = a.w_init or I.UniformInitializer(I.calc_uniform_lim_glorot(outs, channels, kernel))
    local W, b = weight_bias(a, wshape, w_init, { outs })
    return F.depthwise_convolution(inp, W, b, { base_axis = base, pad = a.pad, stride = a.stride,
                                                 dilation = a.dilation, multiplier = a.multiplier })
  end)
end)
PF.depthwise_conv = PF.depthwise_convolution

-- ---- batch normalization --------------------------------------------------------------
local bn_keys = { beta = true, gamma = true, mean = true, var = true }

-- shape_stat: 1 everywhere except the axes; the four parameters under the current scope.
local function bn_params(where, inp, a)
  local shape = inp.shape
  local axes = norm_axes(where, a.axes, #shape, 'axis')
  local stat = {}
  for i = 1, #shape do stat[i] = 1 end
  for _, n in ipairs(axes) do stat[n] = shape[n] end
  local init = check_param_init(where, a.param_init, bn_keys)
  return axes, stat, init
end

-- beta, gamma (see beta_gamma), and the running mean and var (never trained).
local function bn_variables(stat, a, init)
  local beta, gamma = beta_gamma(stat, a, init)
  local mean = nn.get_parameter_or_create('mean', stat, init.mean or I.ConstantInitializer(0), false)
  local var = nn.get_parameter_or_create('var', stat, init.var or I.ConstantInitializer(1), false)
  return beta, gamma, mean, var
end

local bn_spec = {
  { 'axes', { 2 } }, { 'decay_rate', 0.9 }, { 'eps', 1e-5 }, { 'batch_stat', true },
  { 'output_stat', false }, { 'fix_parameters', false }, { 'param_init' }, { 'no_scale', false },
  { 'no_bias', false }, { 'name' },
}
define('batch_normalization', bn_spec, nil, function(where, a, inp)
  local stats = bn_output_stat(where, a)
  local axes, stat, init = bn_params(where, inp, a)
  local y = scoped(a.name, 'bn', function()
    local beta, gamma, mean, var = bn_variables(stat, a, init)
    return F.batch_normalization(inp, beta, gamma, mean, var, axes, a.decay_rate, a.eps, a.batch_stat)
  end)
  if stats then return with_stats(y, inp, set_of(axes)) end
  return y
end)
PF.bn = PF.batch_normalization

local fbn_spec = {
  { 'z' }, { 'axes', { 2 } }, { 'decay_rate', 0.9 }, { 'eps', 1e-5 }, { 'batch_stat', true },
  { 'nonlinearity', 'relu' }, { 'output_stat', false }, { 'fix_parameters', false },
  { 'param_init' }, { 'no_scale', false }, { 'no_bias', false }, { 'name' },
}
define('fused_batch_normalization', fbn_spec, nil, function(where, a, inp)
  if a.z ~= nil then check_input(where, a.z, 'z (the residual input)') end
  local stats = bn_output_stat(where, a)
  local axes, stat, init = bn_params(where, inp, a)
  local y = scoped(a.name, 'bn', function()
    local beta, gamma, mean, var = bn_variables(stat, a, init)
    -- F.fused_batch_normalization takes beta and gamma always: constants stand in for the
    -- omitted ones (as NNabla's batch normalization does inside).
    if not beta then beta = nn.Variable(stat); beta.d = 0 end
    if not gamma then gamma = nn.Variable(stat); gamma.d = 1 end
    return F.fused_batch_normalization(inp, beta, gamma, mean, var, a.z, { axes = axes,
      decay_rate = a.decay_rate, eps = a.eps, batch_stat = a.batch_stat, nonlinearity = a.nonlinearity })
  end)
  if stats then return with_stats(y, inp, set_of(axes)) end
  return y
end)
PF.fused_bn = PF.fused_batch_normalization

-- ---- layer / instance / group normalization -------------------------------------------
local bg_keys = { beta = true, gamma = true }

-- F[scope](inp, beta, gamma, fopts) with beta and gamma of shape stat (a.param_init,
-- no_bias, no_scale) under <a.name>/<scope>.
local function normalize_with(where, scope, inp, a, stat, fopts)
  local init = check_param_init(where, a.param_init, bg_keys)
  return scoped(a.name, scope, function()
    local beta, gamma = beta_gamma(stat, a, init)
    return F[scope](inp, beta, gamma, fopts)
  end)
end

local ln_spec = {
  { 'batch_axis', 1 }, { 'eps', 1e-5 }, { 'output_stat', false }, { 'fix_parameters', false },
  { 'param_init' }, { 'no_scale', false }, { 'no_bias', false }, { 'name' },
}
define('layer_normalization', ln_spec, nil, function(where, a, inp)
  local shape = inp.shape
  local baxes = norm_axes(where, a.batch_axis, #shape, 'batch_axis')
  local stat = {}
  for i = 1, #shape do stat[i] = shape[i] end
  for _, b in ipairs(baxes) do stat[b] = 1 end
  local y = normalize_with(where, 'layer_normalization', inp, a, stat, { batch_axis = baxes, eps = a.eps })
  if a.output_stat then return with_stats(y, inp, set_of(baxes)) end   -- per sample
  return y
end)

-- shape_stat of instance and group normalization: 1 except the channel axis.
local function channel_stat(where, inp, a)
  local shape = inp.shape
  local caxis = norm_axis(where, a.channel_axis, #shape, 'channel_axis')
  local baxes = norm_axes(where, a.batch_axis, #shape, 'batch_axis')
  for _, b in ipairs(baxes) do
    if b == caxis then error(('%s: channel_axis %d is also a batch axis'):format(where, a.channel_axis), 0) end
  end
  local stat = {}
  for i = 1, #shape do stat[i] = 1 end
  stat[caxis] = shape[caxis]
  return caxis, baxes, stat
end

local in_spec = {
  { 'channel_axis', 2 }, { 'batch_axis', 1 }, { 'eps', 1e-5 }, { 'output_stat', false },
  { 'fix_parameters', false }, { 'param_init' }, { 'no_scale', false }, { 'no_bias', false },
  { 'name' },
}
define('instance_normalization', in_spec, nil, function(where, a, inp)
  local caxis, baxes, stat = channel_stat(where, inp, a)
  local y = normalize_with(where, 'instance_normalization', inp, a, stat,
                           { channel_axis = caxis, batch_axis = baxes, eps = a.eps })
  if a.output_stat then                                  -- per sample and channel
    local keep = set_of(baxes)
    keep[caxis] = true
    return with_stats(y, inp, keep)
  end
  return y
end)

local gn_spec = {
  { 'num_groups', required = true }, { 'channel_axis', 2 }, { 'batch_axis', 1 }, { 'eps', 1e-5 },
  { 'output_stat', false }, { 'fix_parameters', false }, { 'param_init' }, { 'no_scale', false },
  { 'no_bias', false }, { 'name' },
}
define('group_normalization', gn_spec, nil, function(where, a, inp)
  no_output_stat(where, a)
  check_count(where, 'num_groups', a.num_groups)
  local caxis, baxes, stat = channel_stat(where, inp, a)
  if stat[caxis] % a.num_groups ~= 0 then
    error(('%s: %d channels are not divisible by num_groups %d'):format(where, stat[caxis], a.num_groups), 0)
  end
  return normalize_with(where, 'group_normalization', inp, a, stat,
                        { num_groups = a.num_groups, channel_axis = caxis, batch_axis = baxes, eps = a.eps })
end)

-- ---- embed ----------------------------------------------------------------------------
local embed_spec = {
  { 'n_inputs', required = true }, { 'n_features', required = true }, { 'initializer' },
  { 'fix_parameters', false }, { 'apply_w' }, { 'name' },
}
define('embed', embed_spec, nil, function(where, a, inp)
  check_count(where, 'n_inputs', a.n_inputs)
  check_count(where, 'n_features', a.n_features)
  return scoped(a.name, 'embed', function()
    local init = a.initializer or I.UniformInitializer(-math.sqrt(3), math.sqrt(3))
    local W = param('W', { a.n_inputs, a.n_features }, init, a.fix_parameters)
    if a.apply_w then W = applied(a.apply_w, W, 'apply_w') end
    return F.embed(inp, W)
  end)
end)

-- ---- prelu ----------------------------------------------------------------------------
local prelu_spec = {
  { 'base_axis', 2 }, { 'shared', true }, { 'fix_parameters', false }, { 'slope_init' }, { 'name' },
}
define('prelu', prelu_spec, nil, function(where, a, inp)
  local shape = inp.shape
  local base = norm_axis(where, a.base_axis, #shape, 'base_axis')
  local sshape = a.shared and {} or { shape[base] }
  return scoped(a.name, 'prelu', function()
    local slope = param('slope', sshape, a.slope_init or I.ConstantInitializer(0.25), a.fix_parameters)
    return F.prelu(inp, slope, base)
  end)
end)

-- ---- recurrent layers (rnn, lstm, gru) ------------------------------------------------
-- NNabla's default weights: per gate block, U(glorot(in, H)) on the input columns and
-- U(glorot(H, H)) on the recurrent columns, concatenated along the last axis.
-- lead: the leading shape (e.g. {D, 4, H}); n_in: input columns; H: recurrent columns.
local function stacked_glorot(lead, n_in, H)
  return function(shape)
    local sa, sb = {}, {}
    for i, v in ipairs(lead) do sa[i] = v; sb[i] = v end
    sa[#sa + 1] = n_in
    sb[#sb + 1] = H
    local wa = I.UniformInitializer(I.calc_uniform_lim_glorot(n_in, H))(sa)
    local wb = I.UniformInitializer(I.calc_uniform_lim_glorot(H, H))(sb)
    local out = NdArray.new(shape)
    local pa, pb, po = wa:ptr(lib.C.NL_READ), wb:ptr(lib.C.NL_READ), out:ptr(lib.C.NL_WRITE)
    local rows, cols = prod(lead), n_in + H
    for r = 0, rows - 1 do
      for j = 0, n_in - 1 do po[r * cols + j] = pa[r * n_in + j] end
      for j = 0, H - 1 do po[r * cols + n_in + j] = pb[r * H + j] end
    end
    return out
  end
end

-- gates: 1 (rnn), 4 (lstm), 3 (gru); bias_gates: 1, 4, 4 (NNabla's GRU keeps b_r, b_z,
-- b_in, b_hn). The parameters of a layer stack:
--   weight_l0 (D, [gates,] H, I + H), weight (L-1, D, [gates,] H, D*H + H), bias (L, D, [bias_gates,] H)
-- Returns F[scope](x, h, [c,] w0, w, b, opts) with opts from a (num_layers = L, dropout,
-- bidirectional, training, and rnn's nonlinearity).
local function recurrent(where, scope, gates, bias_gates, a, x, h, c)
  local xs, hs = x.shape, h.shape
  if #xs ~= 3 then error(('%s: x must be 3-d (T, B, I), got shape %s'):format(where, lib.shape_str(xs)), 0) end
  if #hs ~= 4 then error(('%s: h must be 4-d (L, D, B, H), got shape %s'):format(where, lib.shape_str(hs)), 0) end
  local L, D, H, In = hs[1], a.bidirectional and 2 or 1, hs[4], xs[3]
  if a.num_layers ~= nil and a.num_layers ~= 1 and a.num_layers ~= L then
    error(('%s: num_layers = %s but h has %d layer(s) (h is (L, D, B, H) = %s)'):format(
      where, tostring(a.num_layers), L, lib.shape_str(hs)), 3)
  end
  if hs[2] ~= D then
    error(('%s: h has %d direction(s) on axis 2 but bidirectional = %s needs %d (h is %s)'):format(
      where, hs[2], tostring(a.bidirectional), D, lib.shape_str(hs)), 3)
  end
  if hs[3] ~= xs[2] then
    error(('%s: h has batch size %d but x has %d (x %s, h %s)'):format(
      where, hs[3], xs[2], lib.shape_str(xs), lib.shape_str(hs)), 3)
  end
  local function with_gates(t, tail)
    local s = {}
    for _, v in ipairs(t) do s[#s + 1] = v end
    if gates > 1 then s[#s + 1] = gates end
    for _, v in ipairs(tail) do s[#s + 1] = v end
    return s
  end
  return scoped(a.name, scope, function()
    local lead0 = with_gates({ D }, { H })
    local w0shape = with_gates({ D }, { H, In + H })
    local w0 = param('weight_l0', w0shape, a.w0_init or stacked_glorot(lead0, In, H), a.fix_parameters)
    local w
    if L > 1 then
      local lead = with_gates({ L - 1, D }, { H })
      local wshape = with_gates({ L - 1, D }, { H, D * H + H })
      w = param('weight', wshape, a.w_init or stacked_glorot(lead, D * H, H), a.fix_parameters)
    end
    local b
    if a.with_bias then
      local bshape = { L, D }
      if bias_gates > 1 then bshape[3] = bias_gates end
      bshape[#bshape + 1] = H
      b = param('bias', bshape, a.b_init or I.ConstantInitializer(0), a.fix_parameters)
    end
    local opts = { num_layers = L, nonlinearity = a.nonlinearity, dropout = a.dropout,
                   bidirectional = a.bidirectional, training = a.training }
    if c then return F[scope](x, h, c, w0, w, b, opts) end
    return F[scope](x, h, w0, w, b, opts)
  end)
end

local rnn_spec = {
  { 'w0_init' }, { 'w_init' }, { 'b_init' }, { 'num_layers', 1 }, { 'nonlinearity', 'tanh' },
  { 'dropout', 0 }, { 'bidirectional', false }, { 'training', true }, { 'rng' },
  { 'with_bias', true }, { 'fix_parameters', false }, { 'name' },
}
define('rnn', rnn_spec, { 'x', 'h' }, function(where, a, x, h)
  return recurrent(where, 'rnn', 1, 1, a, x, h)
end)

local lstm_spec = {
  { 'w0_init' }, { 'w_init' }, { 'b_init' }, { 'num_layers', 1 }, { 'dropout', 0 },
  { 'bidirectional', false }, { 'training', true }, { 'rng' }, { 'with_bias', true },
  { 'fix_parameters', false }, { 'name' },
}
define('lstm', lstm_spec, { 'x', 'h', 'c' }, function(where, a, x, h, c)
  local hs, cs = h.shape, c.shape
  if lib.shape_str(hs) ~= lib.shape_str(cs) then
    error(('%s: h and c must have the same shape, got %s and %s'):format(where, lib.shape_str(hs), lib.shape_str(cs)), 0)
  end
  return recurrent(where, 'lstm', 4, 4, a, x, h, c)
end, function(where, ...)
  if select('#', ...) > 0 and type((...)) == 'number' then
    error(where .. ': the 4th argument is w0_init; the old PF.lstm(x, h, c, state_size) is PF.lstm_cell', 0)
  end
end)

local gru_spec = lstm_spec
define('gru', gru_spec, { 'x', 'h' }, function(where, a, x, h)
  return recurrent(where, 'gru', 3, 4, a, x, h)
end)

-- ---- lstm_cell ------------------------------------------------------------------------
-- NNabla's one-step LSTM built from affine: scope 'lstm', parameters lstm/affine/W
-- (I + state_size, 4, state_size) and lstm/affine/b (4, state_size); the affine output is
-- split into the gates i, o, f and the cell input g. Returns h_t, c_t.
local lstm_cell_spec = {
  { 'state_size', required = true }, { 'w_init' }, { 'b_init' }, { 'fix_parameters', false }, { 'name' },
}
define('lstm_cell', lstm_cell_spec, { 'x', 'h', 'c' }, function(where, a, x, h, c)
  check_count(where, 'state_size', a.state_size)
  local xs, hs, cs = x.shape, h.shape, c.shape
  local S = a.state_size
  if #xs ~= 2 or #hs ~= 2 or #cs ~= 2 or hs[1] ~= xs[1] or cs[1] ~= xs[1] or hs[2] ~= S or cs[2] ~= S then
    error(('%s: expects x (B, I), h and c (B, state_size = %d); got x %s, h %s, c %s'):format(
      where, S, lib.shape_str(xs), lib.shape_str(hs), lib.shape_str(cs)), 2)
  end
  return scoped(a.name, 'lstm', function()
    local xh = F.concatenate(x, h, { axis = 2 })
    local iofc = PF.affine(xh, { 4, S }, { w_init = a.w_init, b_init = a.b_init, fix_parameters = a.fix_parameters })
    local i_t, o_t, f_t, g_t = F.split(iofc, 2)
    local c_t = F.sigmoid(f_t) * c + F.sigmoid(i_t) * F.tanh(g_t)
    local h_t = F.sigmoid(o_t) * F.tanh(c_t)
    return h_t, c_t
  end)
end)

-- PF.LSTMCell(batch_size, state_size [, h, c, name]): NNabla's stateful wrapper. cell(x
-- [, w_init, b_init, fix_parameters]) runs one step of lstm_cell and returns h; cell.h and
-- cell.c hold the state (zeros at first); cell:reset_state() zeroes them.
local LSTMCell = {}
LSTMCell.__index = LSTMCell
function LSTMCell.__call(self, x, w_init, b_init, fix_parameters)
  self.h, self.c = PF.lstm_cell(x, self.h, self.c, self.state_size,
    { w_init = w_init, b_init = b_init, fix_parameters = fix_parameters or false, name = self.name })
  return self.h
end
function LSTMCell:reset_state()
  self.h.d = 0
  self.c.d = 0
end
PF.LSTMCell = def('PF.LSTMCell', function(batch_size, state_size, h, c, name)
  check_count('PF.LSTMCell', 'batch_size', batch_size)
  check_count('PF.LSTMCell', 'state_size', state_size)
  local self = setmetatable({ batch_size = batch_size, state_size = state_size, name = name }, LSTMCell)
  if h then self.h = h else self.h = nn.Variable({ batch_size, state_size }); self.h.d = 0 end
  if c then self.c = c else self.c = nn.Variable({ batch_size, state_size }); self.c.d = 0 end
  return self
end)
PF._signatures.LSTMCell = 'PF.LSTMCell(batch_size, state_size, h=nil, c=nil, name=nil)'

return PF
