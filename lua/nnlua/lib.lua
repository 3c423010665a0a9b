-- nnlua.lib: loads libnnlua.so through LuaJIT's FFI and turns C status codes into Lua
-- errors. The declarations come from lua/nnlua/cdef.lua, which the build copies from
-- the marked region of core/include/nnlua.h (one source of truth).
local ffi = require 'ffi'

local M = {}

ffi.cdef(require 'nnlua.cdef')

local function module_dir()
  local src = debug.getinfo(1, 'S').source
  return (src:sub(1, 1) == '@' and src:sub(2):match('^(.*)/[^/]*$')) or '.'
end

local function file_exists(p)
  local f = io.open(p, 'rb')
  if f then f:close() return true end
  return false
end

-- Where the shared library is: $NNLUA_LIB, the repository's build folder (or
-- $NNLUA_BUILD), next to this module (LuaRocks install), then package.cpath.
local function find_library(name, envvar)
  local env = os.getenv(envvar)
  if env and env ~= '' then return env end
  local dir = module_dir()
  local build = os.getenv('NNLUA_BUILD')
  local candidates = {}
  if build and build ~= '' then
    candidates[#candidates + 1] = dir .. '/../../' .. build .. '/' .. name .. '.so'
  end
  candidates[#candidates + 1] = dir .. '/../../build/' .. name .. '.so'
  candidates[#candidates + 1] = dir .. '/' .. name .. '.so'
  for _, c in ipairs(candidates) do
    if file_exists(c) then return c end
  end
  local found = package.searchpath(name, package.cpath)
  if found then return found end
  return nil, table.concat(candidates, ', ')
end
M.find_library = find_library

local path, tried = find_library('libnnlua', 'NNLUA_LIB')
if not path then
  error('nnlua: cannot find libnnlua.so (looked in ' .. tried ..
        ' and package.cpath); run `make` in the repository or set NNLUA_LIB', 0)
end
-- Kept referenced for the life of the process: finalizers call into it.
M.C = ffi.load(path)
M.path = path
local C = M.C

-- Raises the engine's last error, prefixed by who asked.
function M.raise(where, level)
  local msg = ffi.string(C.nl_last_error())
  C.nl_clear_error()
  if where and where ~= '' then msg = where .. ': ' .. msg end
  error(msg, (level or 1) + 1)
end

function M.check(status, where, level)
  if status ~= 0 then M.raise(where, (level or 1) + 1) end
  return status
end

function M.last_error()
  return ffi.string(C.nl_last_error())
end

-- Memory pressure: the engine counts the bytes its arrays hold; Lua's collector does not
-- see them, so collect when they have grown by a quarter (at least 64 MiB) since the last
-- collection (Torch7 learned this the hard way). Called where arrays are made (F wrappers,
-- new NdArrays such as the data iterators' batches): one FFI call when nothing is due.
local gc_mark = 0
function M.memory_pressure()
  local inuse = tonumber(C.nl_bytes_in_use())
  if inuse > gc_mark * 1.25 + 64 * 1048576 then
    collectgarbage()
    gc_mark = tonumber(C.nl_bytes_in_use())
  end
end

-- Formats a shape list Lua-style: {64, 1, 8, 8}.
function M.shape_str(shape)
  local parts = {}
  for i = 1, #shape do parts[i] = tostring(shape[i]) end
  return '{' .. table.concat(parts, ', ') .. '}'
end

-- The metatable of the shape lists the engine hands out (Variable.shape, NdArray.shape):
-- plain lists of sizes that print as {64, 1, 8, 8}.
M.Shape = { __tostring = M.shape_str }

M.shape_buf = ffi.typeof('int64_t[?]')

function M.to_c_shape(shape)
  local n = #shape
  local buf = M.shape_buf(n > 0 and n or 1)
  for i = 1, n do buf[i - 1] = shape[i] end
  return buf, n
end

function M.from_c_shape(ptr, n)
  local t = {}
  for i = 1, n do t[i] = tonumber(ptr[i - 1]) end
  return setmetatable(t, M.Shape)
end

return M
