-- nnlua: a Lua-scripted deep-learning environment in the style of Sony's NNabla.
--   local nn = require 'nnlua'
-- gives Variable, NdArray, graph modes (auto_forward, no_grad), parameter scopes and
-- files, seeding and contexts. F, PF and S are nnlua.functions,
-- nnlua.parametric_functions and nnlua.solvers.
local lib = require 'nnlua.lib'
local NdArray = require 'nnlua.ndarray'
local Variable = require 'nnlua.variable'
local state = require 'nnlua.state'
local C = lib.C

local nn = {}
nn.NdArray = NdArray
nn.Variable = Variable
nn.lib = lib
nn.version = require('ffi').string(C.nl_version())

-- ---- graph modes ---------------------------------------------------------------------

function nn.set_auto_forward(b) state.auto_forward = b and true or false end
function nn.get_auto_forward() return state.auto_forward end

-- Runs fn with the given mode set, restores the previous one (also on error) and returns fn's results.
local function with_mode(set, get, value, fn, ...)
  local old = get()
  set(value)
  local res = { pcall(fn, ...) }
  set(old)
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end
nn._with_mode = with_mode

function nn.auto_forward(fn, ...)
  if type(fn) == 'boolean' then return nn.set_auto_forward(fn) end
  if type(fn) ~= 'function' then
    error('nn.auto_forward: expected a function to run with auto-forward on, or true/false, got ' .. type(fn), 2)
  end
  return with_mode(nn.set_auto_forward, nn.get_auto_forward, true, fn, ...)
end

function nn.no_grad(fn, ...)
  if type(fn) ~= 'function' then error('nn.no_grad: expected a function to run without gradients, got ' .. type(fn), 2) end
  return with_mode(state.set_grad_enabled, state.grad_enabled, false, fn, ...)
end

function nn.seed(n)
  if type(n) ~= 'number' or n < 0 or n ~= math.floor(n) then error('nn.seed: expected a non-negative integer', 2) end
  C.nl_seed(n)
end

-- ---- memory ----------------------------------------------------------------------------
function nn.memory()
  return { in_use = tonumber(C.nl_bytes_in_use()), peak = tonumber(C.nl_bytes_peak()),
           cached = tonumber(C.nl_bytes_cached()), system_allocations = tonumber(C.nl_alloc_count()) }
end

-- ---- parameters, files, contexts -------------------------------------------------------
local parameter = require 'nnlua.parameter'
for k, v in pairs(parameter.api) do nn[k] = v end
local context = require 'nnlua.context'
for k, v in pairs(context.api) do nn[k] = v end

return nn
