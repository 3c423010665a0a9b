-- nnlua.context: computation contexts — an ordered backend list ('cudnn', 'cuda', 'cpu')
-- and a device id. The CPU backend is built in; the CUDA backend (libnnlua_cuda.so) is
-- loaded only when a cuda or cudnn context is asked for, and asking for one where no
-- backend library, driver or device exists is a clear error.
local lib = require 'nnlua.lib'

local M = { api = {} }
local api = M.api

local Context = {}
Context.__index = Context
Context.__tostring = function(c)
  return ('Context(backend={%s}, device_id=%d)'):format(table.concat(c.backend, ', '), c.device_id)
end

local function new_context(backend, device_id)
  return setmetatable({ backend = backend, device_id = device_id or 0 }, Context)
end
M.new = new_context

local current = new_context({ 'cpu' }, 0)

-- Loads the CUDA backend and checks for a device; returns true or raises.
local cuda_status
local function require_cuda(name, device_id)
  if cuda_status == nil then
    local path = lib.find_library('libnnlua_cuda', 'NNLUA_CUDA_LIB')
    if not path then
      cuda_status = 'the CUDA backend (libnnlua_cuda.so) is not built; run `make cuda` on a machine with the CUDA toolkit'
    else
      local ok, err = pcall(require, 'nnlua.cuda')
      cuda_status = ok and true or tostring(err)
    end
  end
  if cuda_status ~= true then
    error(("get_extension_context('%s'): no CUDA available: %s"):format(name, cuda_status), 3)
  end
  local cuda = require 'nnlua.cuda'
  cuda.check_device(device_id, name)
end

function M.get_extension_context(name, opts)
  name = name or 'cpu'
  local device_id = 0
  if type(opts) == 'table' then
    for k, v in pairs(opts) do
      if k == 'device_id' then device_id = tonumber(v) or error('get_extension_context: device_id must be a number', 2)
      elseif k ~= 'type_config' then error("get_extension_context: unknown option '" .. tostring(k) .. "' (options: device_id, type_config)", 2) end
    end
  end
  if name == 'cpu' then return new_context({ 'cpu' }, device_id) end
  if name == 'cuda' or name == 'cudnn' then
    require_cuda(name, device_id)
    if name == 'cudnn' then return new_context({ 'cudnn', 'cuda', 'cpu' }, device_id) end
    return new_context({ 'cuda', 'cpu' }, device_id)
  end
  error("get_extension_context: unknown extension '" .. tostring(name) .. "' (cpu, cuda or cudnn)", 2)
end

-- Tells the engine which backends new nodes choose from (captured at node creation).
local function install(ctx, where)
  lib.check(lib.C.nl_set_context(table.concat(ctx.backend, ','), ctx.device_id), where, 3)
end

function api.set_default_context(ctx)
  if getmetatable(ctx) ~= Context then error('nn.set_default_context: expected a context from get_extension_context', 2) end
  install(ctx, 'nn.set_default_context')
  current = ctx
end
function api.get_current_context() return current end

function api.context_scope(ctx, fn, ...)
  if getmetatable(ctx) ~= Context then error('nn.context_scope: expected a context from get_extension_context', 2) end
  local old = current
  install(ctx, 'nn.context_scope')
  current = ctx
  local res = { pcall(fn, ...) }
  current = old
  install(old, 'nn.context_scope')
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

return M
