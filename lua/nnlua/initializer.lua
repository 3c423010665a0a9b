-- nnlua.initializer: NNabla's parameter initializers. An initializer is a callable
-- object: init(shape) returns an NdArray of that shape. The random ones draw from the
-- engine's generator (nn.seed makes them reproducible).
local NdArray = require 'nnlua.ndarray'

local I = {}

local function class(name, fn, fields)
  local mt = { __call = function(self, shape) return fn(self, shape) end,
               __tostring = function(self)
                 local parts = {}
                 for _, f in ipairs(fields) do parts[#parts + 1] = f .. '=' .. tostring(self[f]) end
                 return name .. '(' .. table.concat(parts, ', ') .. ')'
               end }
  return function(...)
    local args, obj = { ... }, {}
    for i, f in ipairs(fields) do obj[f] = args[i] end
    return setmetatable(obj, mt)
  end
end

-- U(-lim, lim), or U(lim[1], lim[2]) when lim is a pair.
I.UniformInitializer = class('UniformInitializer', function(self, shape)
  local lim = self.lim or 1
  local lo, hi
  if type(lim) == 'table' then lo, hi = lim[1], lim[2] else lo, hi = -lim, lim end
  return NdArray.rand(shape, lo, hi)
end, { 'lim' })

I.NormalInitializer = class('NormalInitializer', function(self, shape)
  return NdArray.randn(shape, 0, self.sigma or 1)
end, { 'sigma' })

I.ConstantInitializer = class('ConstantInitializer', function(self, shape)
  return NdArray.full(shape, self.value or 0)
end, { 'value' })

-- Uniform integers in [low, high) stored as floats.
I.UniformIntInitializer = class('UniformIntInitializer', function(self, shape)
  local lim = self.lim or { 0, 10 }
  return NdArray.rand(shape, lim[1], lim[2]):floor()
end, { 'lim' })

-- start, start+step, ... along the last axis, repeated.
I.RangeInitializer = class('RangeInitializer', function(self, shape)
  local a = NdArray.new(shape)
  local n = shape[#shape] or 1
  local p = a:ptr(1)
  for i = 0, a.size - 1 do p[i] = (self.start or 0) + (i % n) * (self.step or 1) end
  return a
end, { 'start', 'step' })

local function prod(t) local p = 1 for _, v in ipairs(t or {}) do p = p * v end return p end

-- NNabla's helpers: limits and standard deviations from fan-in / fan-out.
function I.calc_uniform_lim_glorot(inmaps, outmaps, kernel)
  local k = prod(kernel)
  return math.sqrt(6 / (k * inmaps + k * outmaps))
end
function I.calc_normal_std_glorot(inmaps, outmaps, kernel)
  local k = prod(kernel)
  return math.sqrt(2 / (k * inmaps + k * outmaps))
end
function I.calc_normal_std_he_forward(inmaps, outmaps, kernel)
  return math.sqrt(2 / (prod(kernel) * inmaps))
end
function I.calc_normal_std_he_backward(inmaps, outmaps, kernel)
  return math.sqrt(2 / (prod(kernel) * outmaps))
end
function I.calc_uniform_lim_he_forward(inmaps, outmaps, kernel)
  return math.sqrt(6 / (prod(kernel) * inmaps))
end
function I.calc_uniform_lim_he_backward(inmaps, outmaps, kernel)
  return math.sqrt(6 / (prod(kernel) * outmaps))
end

-- Short names as in NNabla's nnabla.initializer module.
I.Uniform = I.UniformInitializer
I.Normal = I.NormalInitializer
I.Constant = I.ConstantInitializer
I.UniformInt = I.UniformIntInitializer
I.Range = I.RangeInitializer

return I
