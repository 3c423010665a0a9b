-- nnlua.cuda: the CUDA/cuDNN backend (build/libnnlua_cuda.so, `make cuda`). Required only
-- by nnlua.context when a 'cuda' or 'cudnn' context is asked for, so the CPU path never
-- loads the CUDA libraries. Loading this module never raises: where the library, the
-- driver or a device is missing, cuda.available() returns false and the reason, and
-- cuda.check_device raises "get_extension_context('cudnn'): no CUDA available: <reason>".
--
--   cuda.available()             true, or false and the reason
--   cuda.check_device(id, name)  raises unless device `id` (0-based) can run the backend
--   cuda.device_count(), cuda.device_name(id), cuda.version(), cuda.synchronize(id)
--   cuda.memory(id)              {in_use =, cached =, peak =, mallocs =} (bytes, cudaMalloc calls)
--   cuda.free_cached()           give the caching allocator's free blocks back to the driver
--   cuda.on_device(arr)          true when an nl_array's current copy is on a device
--   cuda.kernels.nl_sgd_update(w, g, lr), ...  the solver kernels on the device under the
--                                engine's host names and signatures; cuda.kernels_for(g)
--                                picks them or lib.C for a gradient array
local ffi = require 'ffi'
local bit = require 'bit'
local lib = require 'nnlua.lib'

local M = {}

-- The declarations are the marked region of cuda/nnlua_cuda.h, copied by make.
M.cdef = require 'nnlua.cuda_cdef'
ffi.cdef(M.cdef)
pcall(ffi.cdef, 'char *realpath(const char *path, char *resolved_path);')
pcall(ffi.cdef, 'void free(void *p);')

-- The canonical directory of a file path (realpath), or the path's own directory.
local function dir_of(path)
  local ok, r = pcall(function() return ffi.C.realpath(path, nil) end)
  if ok and r ~= nil then
    local s = ffi.string(r)
    ffi.C.free(r)
    path = s
  end
  return path:match('^(.*)/[^/]*$') or '.'
end

-- Finds the library: $NNLUA_CUDA_LIB, else next to the libnnlua.so that is loaded (the
-- CUDA library links to that one through its $ORIGIN rpath), else lib.find_library's
-- other places -- which must then be the same directory.
local function locate()
  local env = os.getenv('NNLUA_CUDA_LIB')
  if env and env ~= '' then return env end
  local here = dir_of(lib.path)
  local beside = here .. '/libnnlua_cuda.so'
  local f = io.open(beside, 'rb')
  if f then f:close() return beside end
  local found = lib.find_library('libnnlua_cuda', 'NNLUA_CUDA_LIB')
  if not found then
    return nil, 'the CUDA backend (libnnlua_cuda.so) is not built; run `make cuda` on a machine with the CUDA toolkit'
  end
  if dir_of(found) ~= here then
    return nil, ('%s was built beside another libnnlua.so than the one loaded (%s); run `make cuda` with the '
                 .. 'settings of that build (BUILD=..., SANITIZE=...)'):format(found, lib.path)
  end
  return found
end

local reason            -- why CUDA is unavailable (nil when it is)
local C                 -- the library namespace (kept for the life of the process)

local function load()
  local path, why = locate()
  if not path then reason = why return end
  local ok, clib = pcall(ffi.load, path)
  if not ok then
    reason = ('cannot load %s: %s'):format(path, tostring(clib))
    return
  end
  C = clib
  M.C = clib
  M.path = path
  if C.nl_cuda_init() ~= 0 then
    reason = lib.last_error()
    lib.C.nl_clear_error()
    return
  end
  -- The implementations must have reached the libnnlua.so this process uses.
  local id = lib.C.nl_function_lookup('add2')
  if id >= 0 and lib.C.nl_function_has_impl(id, 'cuda') == 0 then
    reason = ('%s is linked against another copy of libnnlua.so than %s; rebuild both with `make && make cuda`')
             :format(path, lib.path)
    return
  end
end

load()

function M.available()
  if reason then return false, reason end
  return true
end

function M.reason() return reason end

-- Raises a clear error unless device_id can run the backend. `name` is the extension asked
-- for ('cuda' or 'cudnn'); the message reads
-- "get_extension_context('cudnn'): no CUDA available: <reason>".
function M.check_device(device_id, name)
  name = name or 'cuda'
  local where = ("get_extension_context('%s')"):format(name)
  if reason then error(('%s: no CUDA available: %s'):format(where, reason), 4) end
  if type(device_id) ~= 'number' or device_id ~= math.floor(device_id) then
    error(('%s: device_id must be an integer, got %s'):format(where, tostring(device_id)), 4)
  end
  if C.nl_cuda_check_device(device_id) ~= 0 then
    local msg = lib.last_error()
    lib.C.nl_clear_error()
    error(('%s: %s'):format(where, msg), 4)
  end
  C.nl_cuda_set_solver_device(device_id)
  return true
end

local function need()
  if reason then error('nnlua.cuda: no CUDA available: ' .. reason, 3) end
end

function M.device_count()
  if reason then return 0 end
  return tonumber(C.nl_cuda_device_count())
end

function M.device_name(id)
  need()
  return ffi.string(C.nl_cuda_device_name(id or 0))
end

function M.version()
  if not C then return nil end
  return ffi.string(C.nl_cuda_version())
end

function M.synchronize(id)
  need()
  lib.check(C.nl_cuda_synchronize(id or 0), 'cuda.synchronize', 2)
end

function M.memory(id)
  need()
  id = id or 0
  return { in_use = tonumber(C.nl_cuda_bytes_in_use(id)), cached = tonumber(C.nl_cuda_bytes_cached(id)),
           peak = tonumber(C.nl_cuda_bytes_peak(id)), mallocs = tonumber(C.nl_cuda_malloc_count(id)) }
end

function M.free_cached()
  if C and not reason then C.nl_cuda_free_cached() end
end

-- true when the array's current copy is on a device (its data was last written there).
function M.on_device(arr)
  return C ~= nil and not reason and bit.band(lib.C.nl_array_where(arr), 2) ~= 0
end

-- The solver kernels and gradient helpers on the device, under the engine's host names:
-- cuda.kernels.nl_sgd_update(w, g, lr) is nl_cuda_sgd_update, with exactly the arguments,
-- the rule and the status of the host kernel C.nl_sgd_update (core/solvers/), and so for
-- every update kernel, nl_weight_decay, nl_axpy, nl_scale, nl_sum_squares (NaN with an
-- error on failure) and nl_has_inf_or_nan (-1 on failure). A solver calls
-- (cuda.on_device(g) and cuda.kernels or lib.C).nl_<kernel>(...), see M.kernels_for.
M.kernel_names = {
  'sgd_update', 'weight_decay', 'momentum_update', 'nesterov_update', 'sgdw_update', 'adagrad_update',
  'adadelta_update', 'rmsprop_update', 'rmsprop_graves_update', 'adam_update', 'amsgrad_update',
  'adabound_update', 'adamax_update', 'lars_update', 'lamb_update', 'axpy', 'scale', 'sum_squares',
  'has_inf_or_nan',
}
M.kernels = {}
if C and not reason then
  for _, name in ipairs(M.kernel_names) do M.kernels['nl_' .. name] = C['nl_cuda_' .. name] end
end

-- The kernel table for a gradient array: the device's when its current copy is there,
-- else the engine's (lib.C).
function M.kernels_for(g)
  if C ~= nil and not reason and bit.band(lib.C.nl_array_where(g), 2) ~= 0 then return M.kernels end
  return lib.C
end

return M
