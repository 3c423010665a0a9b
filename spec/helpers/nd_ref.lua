-- nd_ref: small helpers for plain-Lua reference implementations in the function specs:
-- multi-indices are 1-based Lua lists, flat offsets 0-based (as NdArray:ptr() uses), except
-- each_index/offset, which walk 0-based index tuples (for loops written in C style).
local nn = require 'nnlua'
local assert = require 'luassert'   -- busted's assert (not a global in required modules)
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

-- shape viewed as (outer, C, inner) around the Lua axis k (negative from the end).
function R.around(shape, k)
  k = R.axis(k, #shape)
  local outer, inner = 1, 1
  for d = 1, k - 1 do outer = outer * shape[d] end
  for d = k + 1, #shape do inner = inner * shape[d] end
  return outer, shape[k], inner
end

-- Calls fn(vals, label, C, pos) at every position around the class axis k of x (Lua,
-- negative from the end): vals[0 .. C-1] the values along k, label = t's value at pos
-- (t shaped like x with k of size 1), pos the 0-based flat offset of that position in t.
function R.each_position(x, t, k, fn)
  local outer, C, inner = R.around(x.shape, k)
  local px, pt = x:ptr(), t:ptr()
  for o = 0, outer - 1 do
    for i = 0, inner - 1 do
      local vals = {}
      for c = 0, C - 1 do vals[c] = px[(o * C + c) * inner + i] end
      fn(vals, pt[o * inner + i], C, o * inner + i)
    end
  end
end

-- Calls fn(idx) for every index tuple (0-based) of dims, last index fastest (idx is reused).
function R.each_index(dims, fn)
  local n = #dims
  for d = 1, n do if dims[d] == 0 then return end end
  local idx = {}
  for d = 1, n do idx[d] = 0 end
  while true do
    fn(idx)
    local d = n
    while d >= 1 do
      idx[d] = idx[d] + 1
      if idx[d] < dims[d] then break end
      idx[d] = 0
      d = d - 1
    end
    if d < 1 then return end
  end
end

-- Row-major flat offset of idx (0-based) in dims.
function R.offset(dims, idx)
  local o = 0
  for d = 1, #dims do o = o * dims[d] + idx[d] end
  return o
end

-- Plain pooling of x over its last #o.kernel axes (NNabla's semantics): o.kernel, o.stride
-- (default kernel), o.pad (default 0), o.ignore_border (default true; false: output size
-- (I + pad - 1) / stride + 1, else (I + 2*pad - K) / stride + 1). The window of output o is
-- [o*stride - pad, min(o*stride - pad + K, I + pad)), read clipped to [0, I); each output is
-- reduce(vals, full): vals the window's values in row-major order, full the size of the
-- unclipped window. Returns the pooled NdArray.
function R.pool(x, o, reduce)
  local sd = #o.kernel
  local first = x.ndim - sd
  local maps = 1
  for d = 1, first do maps = maps * x.shape[d] end
  local ins, outs, k, s, p = {}, {}, {}, {}, {}
  for i = 1, sd do
    ins[i] = x.shape[first + i]
    k[i] = o.kernel[i]
    s[i] = o.stride and o.stride[i] or k[i]
    p[i] = o.pad and o.pad[i] or 0
    if o.ignore_border == false then outs[i] = math.floor((ins[i] + p[i] - 1) / s[i]) + 1
    else outs[i] = math.floor((ins[i] + 2 * p[i] - k[i]) / s[i]) + 1 end
  end
  local shape = {}
  for d = 1, first do shape[d] = x.shape[d] end
  for i = 1, sd do shape[first + i] = outs[i] end
  local px = x:ptr()
  local map_size = 1
  for i = 1, sd do map_size = map_size * ins[i] end
  local flat = {}
  for m = 0, maps - 1 do
    R.each_index(outs, function(op)
      local lo, dims, full = {}, {}, 1
      for i = 1, sd do
        local a = op[i] * s[i] - p[i]
        local b = math.min(a + k[i], ins[i] + p[i])
        full = full * (b - a)
        a, b = math.max(a, 0), math.min(b, ins[i])
        lo[i], dims[i] = a, math.max(b - a, 0)
      end
      local vals = {}
      R.each_index(dims, function(w)
        local xi = {}
        for i = 1, sd do xi[i] = lo[i] + w[i] end
        vals[#vals + 1] = px[m * map_size + R.offset(ins, xi)]
      end)
      flat[#flat + 1] = reduce(vals, full)
    end)
  end
  return NdArray.from_flat(flat, shape)
end

-- Element-wise fn(a, b) with NdArray's numpy-style broadcasting of both operands.
function R.bmap(fn, a, b)
  local out = a * 0 + b * 0
  local ea, eb = a + out, b + out
  local p, q, r = ea:ptr(), eb:ptr(), out:ptr()
  for i = 0, out.size - 1 do r[i] = fn(p[i], q[i]) end
  return out
end

-- Random 0-based class labels in [0, C - 1], shaped `shape`.
function R.labels(shape, C)
  return NdArray.rand(shape, 0, C):floor():apply(function(v) return math.min(v, C - 1) end)
end

-- A shallow copy of the list t.
function R.copy(t) local r = {} for k, v in ipairs(t) do r[k] = v end return r end

-- fn(...) must raise: returns the error as a string.
function R.err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  return tostring(err)
end

-- fn(...) must raise an error containing `pattern` (plain text): returns the error.
function R.fails(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.matches(pattern, err, 1, true)
  return err
end

-- R.fails with the function first: expect_error(fn, msg, ...).
function R.expect_error(fn, msg, ...) return R.fails(msg, fn, ...) end

return R
