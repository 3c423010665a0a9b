-- batch_matmul through the function tester: transposes, broadcast batch axes, bad shapes.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'

local S = nn.lib.shape_str

-- numpy.matmul on the last two axes with right-aligned broadcasting of the batch axes
local function bmm_ref(ta, tb)
  return function(a, b)
    local na, nb = a.ndim, b.ndim
    local P = ta and a.shape[na] or a.shape[na - 1]
    local Q = ta and a.shape[na - 1] or a.shape[na]
    local Rr = tb and b.shape[nb - 1] or b.shape[nb]
    local nbat = math.max(na, nb) - 2
    local oshape = {}
    for k = 1, nbat do
      local la = a.shape[k - (nbat - (na - 2))] or 1
      local lb = b.shape[k - (nbat - (nb - 2))] or 1
      oshape[k] = math.max(la, lb)
    end
    oshape[nbat + 1], oshape[nbat + 2] = P, Rr
    return R.build(oshape, function(idx)
      local ia, ib = {}, {}
      for k = 1, na - 2 do
        local ko = k + (nbat - (na - 2))
        ia[k] = a.shape[k] == 1 and 1 or idx[ko]
      end
      for k = 1, nb - 2 do
        local ko = k + (nbat - (nb - 2))
        ib[k] = b.shape[k] == 1 and 1 or idx[ko]
      end
      local p, r = idx[nbat + 1], idx[nbat + 2]
      local s = 0
      for q = 1, Q do
        if ta then ia[na - 1], ia[na] = q, p else ia[na - 1], ia[na] = p, q end
        if tb then ib[nb - 1], ib[nb] = r, q else ib[nb - 1], ib[nb] = q, r end
        s = s + R.at(a, ia) * R.at(b, ib)
      end
      return s
    end)
  end
end

describe('batch_matmul', function()
  local cases = {
    { { 3, 4 }, { 4, 2 } },
    { { 2, 3, 4 }, { 2, 4, 5 } },
    { { 2, 1, 3, 4 }, { 1, 3, 4, 2 } },   -- NNabla's broadcast example
    { { 2, 2, 3 }, { 3, 2 } },            -- fewer batch axes on b
    { { 1, 2, 3 }, { 3, 2, 3, 1 } },
  }
  for _, c in ipairs(cases) do
    for _, ta in ipairs { false, true } do
      for _, tb in ipairs { false, true } do
        local sa, sb = { unpack(c[1]) }, { unpack(c[2]) }
        if ta then sa[#sa - 1], sa[#sa] = sa[#sa], sa[#sa - 1] end
        if tb then sb[#sb - 1], sb[#sb] = sb[#sb], sb[#sb - 1] end
        it(('a %s b %s transpose_a=%s transpose_b=%s'):format(S(sa), S(sb), tostring(ta), tostring(tb)), function()
          T.check {
            fn = function(a, b) return F.batch_matmul(a, b, ta, tb) end,
            ref = bmm_ref(ta, tb),
            inputs = { sa, sb }, grad = { true, true },
            atol = 1e-4,
          }
        end)
      end
    end
  end

  it('options by name equal positions', function()
    local a, b = nn.Variable.from { { 1, 2 }, { 3, 4 } }, nn.Variable.from { { 5, 6 }, { 7, 8 } }
    local y1, y2 = F.batch_matmul(a, b, false, true), F.batch_matmul(a, b, { transpose_b = true })
    y1:forward(); y2:forward()
    T.assert_close(y1.d, { { 17, 23 }, { 39, 53 } }, 0, 0, 'a b^T')
    T.assert_close(y2.d, y1.d, 0, 0, 'named')
  end)

  it('names both shapes when they do not fit', function()
    local ok, err = pcall(F.batch_matmul, nn.Variable { 2, 3, 4 }, nn.Variable { 2, 3, 4 })
    assert.is_false(ok)
    assert.matches('F.batch_matmul: inner sizes differ: op(a) is 3 x 4 and op(b) is 3 x 4 (a {2, 3, 4}, b {2, 3, 4}, transpose_a=false, transpose_b=false)', err, 1, true)
    ok, err = pcall(F.batch_matmul, nn.Variable { 2, 3, 4 }, nn.Variable { 3, 4, 2 })
    assert.is_false(ok)
    assert.matches('F.batch_matmul: batch axes of a {2, 3, 4} and b {3, 4, 2} cannot be broadcast (2 vs 3)', err, 1, true)
    ok, err = pcall(F.batch_matmul, nn.Variable { 4 }, nn.Variable { 4, 2 })
    assert.is_false(ok)
    assert.matches('F.batch_matmul: a {4} and b {4, 2} must both have at least 2 axes', err, 1, true)
  end)
end)
