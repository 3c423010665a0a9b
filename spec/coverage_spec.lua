-- Every registered engine function goes through the function tester: each one is
-- exercised by name in a spec under spec/functions/ that uses T.check.
local F = require 'nnlua.functions'

describe('function tester coverage', function()
  it('every registered function appears in a function spec that calls T.check', function()
    local texts = {}
    local h = io.popen('ls spec/functions/*_spec.lua')
    for path in h:lines() do
      local f = io.open(path, 'r')
      local t = f:read('*a')
      f:close()
      if t:find('T.check', 1, true) then texts[#texts + 1] = t end
    end
    h:close()
    local all = table.concat(texts, '\n')
    local missing = {}
    for name in pairs(F._descriptors) do
      local used = all:find('F.' .. name .. '(', 1, true) or all:find('F.' .. name .. ',', 1, true)
        or all:find('F.' .. name .. ' ', 1, true) or all:find('F.' .. name .. '\n', 1, true)
        or all:find("'" .. name .. "'", 1, true) or all:find('"' .. name .. '"', 1, true)
        or all:find('F[' .. "'" .. name .. "']", 1, true) or all:find(name .. ' =', 1, true)
      if not used then missing[#missing + 1] = name end
    end
    -- Random functions cannot match a fixed reference; stochastic_spec.lua checks their
    -- statistics, reproducibility and gradients instead.
    local f = io.open('spec/functions/stochastic_spec.lua', 'r')
    local stochastic = f:read('*a')
    f:close()
    local still = {}
    for _, name in ipairs(missing) do
      if not (name:match('^rand') and stochastic:find('F.' .. name, 1, true)) then still[#still + 1] = name end
    end
    table.sort(still)
    assert.same({}, still)
  end)
end)
