-- The reference page (lua/nnlua/REFERENCE.md) is generated from the registry and the PF/S
-- signature tables; it must be current: regenerate with
--   scripts/nnlua scripts/gen_reference.lua lua/nnlua/REFERENCE.md
describe('lua/nnlua/REFERENCE.md', function()
  it('matches what scripts/gen_reference.lua generates now', function()
    local h = io.popen('./scripts/nnlua scripts/gen_reference.lua -')
    local fresh = h:read('*a')
    h:close()
    local f = assert(io.open('lua/nnlua/REFERENCE.md', 'r'))
    local committed = f:read('*a')
    f:close()
    assert.is_true(#fresh > 1000)
    assert.equal(fresh, committed)
  end)

  it('lists every function, parametric function and solver', function()
    local F = require 'nnlua.functions'
    local PF = require 'nnlua.parametric_functions'
    local S = require 'nnlua.solvers'
    local f = assert(io.open('lua/nnlua/REFERENCE.md', 'r'))
    local text = f:read('*a')
    f:close()
    for name in pairs(F._descriptors) do
      assert.matches('| `' .. name .. '` |', text, 1, true)
      local sig = F.signature(name)
      assert.is_nil(sig:find('(, ', 1, true), sig)           -- no stray separator (functions without inputs)
    end
    for name in pairs(PF._signatures) do assert.matches('| `' .. name .. '` |', text, 1, true) end
    for _, name in ipairs { 'Sgd', 'Momentum', 'Adam', 'AdamW', 'Lamb' } do
      assert.is_not_nil(S._signatures[name], name)
      assert.matches('| `' .. name .. '` |', text, 1, true)
    end
  end)
end)
