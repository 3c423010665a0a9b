-- nnlua.state: process-wide modes shared by the Lua modules: auto-forward (dynamic
-- graphs) and the default context.
local lib = require 'nnlua.lib'

local M = { auto_forward = false }

function M.grad_enabled() return lib.C.nl_grad_enabled() ~= 0 end
function M.set_grad_enabled(b) lib.C.nl_set_grad_enabled(b and 1 or 0) end

return M
