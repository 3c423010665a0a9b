-- nnlua.parametric_functions (PF): functions that own parameters, created on first use
-- under NNabla's scope and parameter names: PF.affine -> affine/{W,b},
-- PF.convolution -> conv/{W,b}, PF.batch_normalization -> bn/{beta,gamma,mean,var}.
-- Arguments after the input go positionally in NNabla's order or by name in a trailing
-- options table; {name = 'fc1'} adds an outer scope.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local I = require 'nnlua.initializer'

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
    error(('%s: takes at most %d arguments after the input, got %d'):format(where, #spec, n), 3)
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
      error(("%s: unknown option '%s' (options: %s)"):format(where, tostring(k), table.concat(names, ', ')), 3)
    end
    if params[i] ~= nil then error(("%s: argument '%s' given both by position and by name"):format(where, k), 3) end
    out[k] = v
  end
  for _, s in ipairs(spec) do
    if s.required and out[s[1]] == nil then error(("%s: missing argument '%s'"):format(where, s[1]), 3) end
  end
  return out
end

local function signature(name, spec)
  local parts = { 'inp' }
  for _, s in ipairs(spec) do
    parts[#parts + 1] = s.required and s[1] or (s[1] .. '=' .. (type(s[2]) == 'table' and ('{' .. table.concat(s[2], ', ') .. '}') or tostring(s[2])))
  end
  PF._signatures[name] = 'PF.' .. name .. '(' .. table.concat(parts, ', ') .. ')'
end

local function scoped(name, inner, fn)
  if name then
    return nn.parameter_scope(name, function() return nn.parameter_scope(inner, fn) end)
  end
  return nn.parameter_scope(inner, fn)
end

local function prod(t, a, b)
  local p = 1
  for i = a or 1, b or #t do p = p * t[i] end
  return p
end

local function check_input(where, x)
  if not nn.Variable.is(x) then error(where .. ': the input must be a Variable, got ' .. type(x), 3) end
end

local function norm_axis(where, axis, ndim, what)
  local a = axis < 0 and ndim + axis + 1 or axis
  if axis == 0 or a < 1 or a > ndim then
    error(('%s: %s %d is out of range for a %d-d input'):format(where, what, axis, ndim), 4)
  end
  return a
end

-- ---- affine ---------------------------------------------------------------------------
local affine_spec = {
  { 'n_outmaps', required = true }, { 'base_axis', 2 }, { 'w_init' }, { 'b_init' },
  { 'fix_parameters', false }, { 'rng' }, { 'with_bias', true }, { 'apply_w' }, { 'name' },
}
signature('affine', affine_spec)
function PF.affine(inp, ...)
  check_input('PF.affine', inp)
  local a = bind('PF.affine', affine_spec, ...)
  local shape = inp.shape
  local base = norm_axis('PF.affine', a.base_axis, #shape, 'base_axis')
  local outs = type(a.n_outmaps) == 'table' and a.n_outmaps or { a.n_outmaps }
  local inmaps = prod(shape, base)
  local wshape = { inmaps }
  for _, o in ipairs(outs) do wshape[#wshape + 1] = o end
  return scoped(a.name, 'affine', function()
    local w_init = a.w_init or I.UniformInitializer(I.calc_uniform_lim_glorot(inmaps, prod(outs)))
    local W = nn.get_parameter_or_create('W', wshape, w_init, true, not a.fix_parameters)
    if a.apply_w then W = a.apply_w(W) end
    local b
    if a.with_bias then
      b = nn.get_parameter_or_create('b', outs, a.b_init or I.ConstantInitializer(0), true, not a.fix_parameters)
    end
    return F.affine(inp, W, b, base)
  end)
end
PF.linear = PF.affine

-- ---- convolution ----------------------------------------------------------------------
local conv_spec = {
  { 'outmaps', required = true }, { 'kernel', required = true }, { 'pad' }, { 'stride' },
  { 'dilation' }, { 'group', 1 }, { 'channel_last', false }, { 'w_init' }, { 'b_init' },
  { 'base_axis', 2 }, { 'fix_parameters', false }, { 'rng' }, { 'with_bias', true },
  { 'apply_w' }, { 'name' },
}
signature('convolution', conv_spec)
function PF.convolution(inp, ...)
  check_input('PF.convolution', inp)
  local a = bind('PF.convolution', conv_spec, ...)
  local shape = inp.shape
  local base = norm_axis('PF.convolution', a.base_axis, #shape, 'base_axis')
  local kernel = type(a.kernel) == 'table' and a.kernel or { a.kernel }
  local inmaps = shape[base]
  if inmaps % a.group ~= 0 then
    error(('PF.convolution: %d input channels are not divisible by group %d'):format(inmaps, a.group), 2)
  end
  local wshape = { a.outmaps, inmaps / a.group }
  for _, k in ipairs(kernel) do wshape[#wshape + 1] = k end
  return scoped(a.name, 'conv', function()
    local w_init = a.w_init or I.UniformInitializer(I.calc_uniform_lim_glorot(inmaps, a.outmaps, kernel))
    local W = nn.get_parameter_or_create('W', wshape, w_init, true, not a.fix_parameters)
    if a.apply_w then W = a.apply_w(W) end
    local b
    if a.with_bias then
      b = nn.get_parameter_or_create('b', { a.outmaps }, a.b_init or I.ConstantInitializer(0), true, not a.fix_parameters)
    end
    return F.convolution(inp, W, b, { base_axis = base, pad = a.pad, stride = a.stride,
                                       dilation = a.dilation, group = a.group, channel_last = a.channel_last })
  end)
end
PF.conv = PF.convolution

-- ---- batch normalization --------------------------------------------------------------
local bn_spec = {
  { 'axes', { 2 } }, { 'decay_rate', 0.9 }, { 'eps', 1e-5 }, { 'batch_stat', true },
  { 'output_stat', false }, { 'fix_parameters', false }, { 'param_init' }, { 'no_scale', false },
  { 'no_bias', false }, { 'name' },
}
signature('batch_normalization', bn_spec)
function PF.batch_normalization(inp, ...)
  check_input('PF.batch_normalization', inp)
  local a = bind('PF.batch_normalization', bn_spec, ...)
  local shape = inp.shape
  local axes = type(a.axes) == 'table' and a.axes or { a.axes }
  local stat = {}
  for i = 1, #shape do stat[i] = 1 end
  local norm_axes = {}
  for k, ax in ipairs(axes) do
    local n = norm_axis('PF.batch_normalization', ax, #shape, 'axis')
    stat[n] = shape[n]
    norm_axes[k] = n
  end
  local init = a.param_init or {}
  return scoped(a.name, 'bn', function()
    local beta = nn.get_parameter_or_create('beta', stat, init.beta or I.ConstantInitializer(0), true, not a.fix_parameters and not a.no_bias)
    local gamma = nn.get_parameter_or_create('gamma', stat, init.gamma or I.ConstantInitializer(1), true, not a.fix_parameters and not a.no_scale)
    local mean = nn.get_parameter_or_create('mean', stat, init.mean or I.ConstantInitializer(0), false)
    local var = nn.get_parameter_or_create('var', stat, init.var or I.ConstantInitializer(1), false)
    return F.batch_normalization(inp, beta, gamma, mean, var, norm_axes, a.decay_rate, a.eps, a.batch_stat)
  end)
end
PF.bn = PF.batch_normalization

return PF
