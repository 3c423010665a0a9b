-- The FFI surface: every function declared to LuaJIT (lua/nnlua/cdef.lua, copied from
-- core/include/nnlua.h) resolves in libnnlua.so, and struct sizes agree between C and Lua.
local ffi = require 'ffi'
local nn = require 'nnlua'
local C = nn.lib.C

describe('ABI', function()
  it('every declared function resolves in the library', function()
    local cdef = require 'nnlua.cdef'
    local names, missing = {}, {}
    for name in cdef:gsub('/%*.-%*/', ''):gmatch('([%a_][%w_]*)%s*%([^*]') do
      if name:match('^nl_') then names[#names + 1] = name end
    end
    assert.is_true(#names > 60, 'only ' .. #names .. ' declarations found')
    for _, name in ipairs(names) do
      local ok = pcall(function() return C[name] end)
      if not ok then missing[#missing + 1] = name end
    end
    assert.same({}, missing)
  end)

  it('struct and enum sizes agree', function()
    for _, t in ipairs { 'nl_arg', 'nl_access', 'nl_argtype' } do
      assert.equal(tonumber(C.nl_abi_sizeof(t)), ffi.sizeof(t), t)
    end
  end)

  it('array entry points refuse sizes and ranges whose arithmetic would overflow', function()
    -- nl_array_new took 2^62 elements (the byte count wrapped: a 64-byte buffer that a
    -- lazy fill then overran); nl_array_copy's range check overflowed int64 and let a
    -- copy to offset 2^63-1 through.
    assert.is_true(C.nl_array_new(4611686018427387904LL) == nil)
    assert.matches('too large', ffi.string(C.nl_last_error()), 1, true)
    local a, b = C.nl_array_new(4), C.nl_array_new(4)
    assert.equal(-1, C.nl_array_copy(a, 9223372036854775807LL, b, 0, 2))
    assert.equal(-1, C.nl_array_copy(a, 0, b, 9223372036854775807LL, 2))
    assert.matches('out of range', ffi.string(C.nl_last_error()), 1, true)
    assert.equal(0, C.nl_array_copy(a, 2, b, 0, 2))
    C.nl_array_release(a)
    C.nl_array_release(b)
  end)

  it('every registered function has a Lua wrapper and a signature', function()
    local F = require 'nnlua.functions'
    for id = 0, C.nl_function_count() - 1 do
      local name = ffi.string(C.nl_function_name(id))
      assert.is_function(F[name], name)
      assert.is_string(F.signature(name), name)
    end
  end)
end)
