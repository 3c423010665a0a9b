-- nd_ref: small helpers for plain-Lua reference implementations in the function specs:
-- multi-indices are 1-based Lua lists, flat offsets 0-based (as NdArray:ptr() uses).
local nn = require 'nnlua'
local NdArray = nn.NdArray

local R = {}

function R.strides(shape)
  local st, acc = {}, 1
  for d = #shape, 1, -1 do st[d] = acc; acc = acc * shape[d] end
  return st
end

function R.size(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

-- 0-based flat offset -> 1-based multi-index
function R.unravel(i, shape)
  local idx = {}
  for d = #shape, 1, -1 do
    idx[d] = i % shape[d] + 1
    i = math.floor(i / shape[d])
  end
  return idx
end

-- 1-based multi-index -> 0-based flat offset
function R.ravel(idx, shape)
  local o, st = 0, R.strides(shape)
  for d = 1, #shape do o = o + (idx[d] - 1) * st[d] end
  return o
end

-- Value of NdArray a at a 1-based multi-index.
function R.at(a, idx) return a:ptr()[R.ravel(idx, a.shape)] end

-- NdArray of the given shape with value fn(idx) at each 1-based multi-index.
function R.build(shape, fn)
  local flat = {}
  for i = 0, R.size(shape) - 1 do flat[i + 1] = fn(R.unravel(i, shape)) end
  return NdArray.from_flat(flat, shape)
end

-- An NdArray of distinct values (spaced 0.25 apart, shuffled) so that max/min/sort have
-- no ties, even under finite-difference steps.
function R.distinct(shape, seed)
  local n = R.size(shape)
  local vals = {}
  for i = 1, n do vals[i] = (i - n / 2) * 0.25 end
  math.randomseed(seed or 7)
  for i = n, 2, -1 do
    local j = math.random(i)
    vals[i], vals[j] = vals[j], vals[i]
  end
  return NdArray.from_flat(vals, shape)
end

-- Normalized Lua axis (1-based, negatives from the end).
function R.axis(a, nd) return a < 0 and nd + a + 1 or a end

return R
