-- Functions with positions in their inputs or outputs, all 1-based as everywhere in Lua:
-- sort, gather, gather_nd, scatter_nd, scatter_add; and one_hot, whose input holds
-- 0-based class ids (as softmax_cross_entropy's labels do).
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local copy, fails = R.copy, R.fails

local S = nn.lib.shape_str

-- Runs forward on y and expects an error mentioning pattern.
local function forward_fails(pattern, y)
  local ok, err = pcall(function() y:forward() end)
  assert.is_false(ok)
  assert.matches(pattern, err, 1, true)
end

describe('sort', function()
  -- sorted values and 1-based source positions along the axis (stable)
  local function sort_ref(axis, reverse)
    return function(x)
      local nd = x.ndim
      local a = R.axis(axis, nd)
      local n = x.shape[a]
      local vals, pos = {}, {}
      local function line(idx)
        local items = {}
        local j = copy(idx)
        for k = 1, n do j[a] = k; items[k] = { R.at(x, j), k } end
        table.sort(items, function(p, q)
          if p[1] ~= q[1] then if reverse then return p[1] > q[1] end return p[1] < q[1] end
          return p[2] < q[2]
        end)
        return items
      end
      local v = R.build(x.shape, function(idx) return line(idx)[idx[a]][1] end)
      local i = R.build(x.shape, function(idx) return line(idx)[idx[a]][2] end)
      vals, pos = v, i
      return vals, pos
    end
  end

  for _, c in ipairs { { { 5 }, -1 }, { { 3, 4 }, -1 }, { { 3, 4 }, 1 }, { { 2, 3, 4 }, 2 } } do
    for _, reverse in ipairs { false, true } do
      it(('%s axis=%d reverse=%s'):format(S(c[1]), c[2], tostring(reverse)), function()
        local init = function(_, shape) return R.distinct(shape, 11) end
        T.check {
          fn = function(x) return F.sort(x, c[2], reverse) end,
          ref = function(x) return (sort_ref(c[2], reverse)(x)) end,
          inputs = { c[1] }, init = init, grad = { true },
        }
        T.check {
          fn = function(x) return F.sort(x, { axis = c[2], reverse = reverse, with_index = true }) end,
          ref = function(x) local v, i = sort_ref(c[2], reverse)(x) return { v, i } end,
          inputs = { c[1] }, init = init, grad = { true },
        }
        T.check {
          fn = function(x) return F.sort(x, { axis = c[2], reverse = reverse, only_index = true }) end,
          ref = function(x) local _, i = sort_ref(c[2], reverse)(x) return i end,
          inputs = { c[1] }, init = init, grad = { true },
        }
      end)
    end
  end

  it('is stable, puts NaN last and returns 1-based positions', function()
    local x = nn.Variable.from { 3, 0 / 0, 1, 3, 2 }
    local v, i = F.sort(x, { with_index = true })
    v:forward()
    T.assert_close(i.d, { 3, 5, 1, 4, 2 }, 0, 0, 'indices')
    local p = v.d:ptr()
    assert.same({ 1, 2, 3, 3 }, { p[0], p[1], p[2], p[3] })
    assert.is_true(p[4] ~= p[4])
    fails('F.sort: axis 2 is out of range for a 1-d input', F.sort, x, 2)
  end)
end)

describe('one_hot', function()
  it("matches NNabla's examples (0-based class ids)", function()
    T.check {
      fn = function(x) return F.one_hot(x, { 10 }) end,
      ref = function(x)
        return R.build({ 5, 10 }, function(idx) return R.at(x, { idx[1], 1 }) == idx[2] - 1 and 1 or 0 end)
      end,
      inputs = { NdArray.from { { 9 }, { 4 }, { 5 }, { 1 }, { 0 } } },
    }
    T.check {
      fn = function(x) return F.one_hot(x, { 10, 8 }) end,
      ref = function(x)
        return R.build({ 5, 10, 8 }, function(idx)
          return (R.at(x, { idx[1], 1 }) == idx[2] - 1 and R.at(x, { idx[1], 2 }) == idx[3] - 1) and 1 or 0
        end)
      end,
      inputs = { NdArray.from { { 1, 7 }, { 4, 7 }, { 8, 6 }, { 5, 0 }, { 2, 6 } } },
    }
  end)

  it('wraps -n..-1, gives zero rows out of range, and a zero gradient', function()
    local x = nn.Variable.from({ { -1 }, { 3 }, { 4 }, { -5 } }, { need_grad = true })
    local y = F.one_hot(x, 4)
    y:forward()
    T.assert_close(y.d, { { 0, 0, 0, 1 }, { 0, 0, 0, 1 }, { 0, 0, 0, 0 }, { 0, 0, 0, 0 } }, 0, 0, 'one hot')
    x.grad:fill(5)
    y:backward { grad = 1 }
    T.assert_close(x.g, { { 5 }, { 5 }, { 5 }, { 5 } }, 0, 0, 'accumulates nothing')
    forward_fails('one_hot: x entry 2 is 1.5, not an integer class id', F.one_hot(nn.Variable.from { { 0 }, { 1.5 } }, 3))
    fails('F.one_hot: x {4, 1} must end in an axis of size 2, one class id per entry of shape {3, 3}', F.one_hot, x, { 3, 3 })
  end)
end)

describe('gather', function()
  local function gather_ref(axis, bd)
    return function(x, ix)
      local a = R.axis(axis, x.ndim)
      local oshape = {}
      for k = 1, a - 1 do oshape[#oshape + 1] = x.shape[k] end
      for k = bd + 1, ix.ndim do oshape[#oshape + 1] = ix.shape[k] end
      for k = a + 1, x.ndim do oshape[#oshape + 1] = x.shape[k] end
      local ni = ix.ndim - bd
      return R.build(oshape, function(idx)
        local j, ii = {}, {}
        for k = 1, a - 1 do j[k] = idx[k] end
        for k = 1, bd do ii[k] = idx[k] end
        for k = 1, ni do ii[bd + k] = idx[a - 1 + k] end
        local p = R.at(ix, ii)
        if p < 0 then p = x.shape[a] + p + 1 end
        j[a] = p
        for k = a + 1, x.ndim do j[k] = idx[a - 1 + ni + k - a] end
        return R.at(x, j)
      end)
    end
  end

  local cases = {
    { { 4, 3 }, NdArray.from { 2, 4, 1 }, 1, 0 },
    { { 3, 5 }, NdArray.from { { 5, 1 }, { 2, 2 } }, 2, 0 },
    { { 2, 4, 3 }, NdArray.from { -1, 2 }, -2, 0 },
    { { 2, 4, 3 }, NdArray.from { { 4, 1, 1 }, { 2, 3, 4 } }, 2, 1 },
    { { 2, 3, 4 }, NdArray.from { { { 1, 2 } }, { { 3, 3 } } }, 3, 1 },
  }
  for _, c in ipairs(cases) do
    it(('x %s indices %s axis=%d batch_dims=%d'):format(S(c[1]), S(c[2].shape), c[3], c[4]), function()
      T.check {
        fn = function(x, ix) return F.gather(x, ix, c[3], c[4]) end,
        ref = gather_ref(c[3], c[4]),
        inputs = { c[1], c[2] }, grad = { true, false },
      }
    end)
  end

  it('checks positions when it runs and shapes when it is built', function()
    local x = nn.Variable { 3, 2 }
    forward_fails("gather: 'indices' entry 2 is 4, out of range for axis 1 of size 3 (positions are 1..3 or -3..-1)",
                  F.gather(x, nn.Variable.from { 1, 4 }))
    forward_fails("gather: 'indices' entry 1 is 0, out of range", F.gather(x, nn.Variable.from { 0 }))
    forward_fails("'indices' entry 1 is 1.5, not an integer position", F.gather(x, nn.Variable.from { 1.5 }))
    forward_fails("gather: 'indices' entry 1 is 1, but axis 1 has size 0 (no position is valid)",
                  F.gather(nn.Variable { 0, 2 }, nn.Variable.from { 1 }))
    fails('F.gather: the first 1 axes of x {3, 2} and indices {2, 2} must agree (batch_dims)',
          F.gather, x, nn.Variable { 2, 2 }, 2, 1)
    fails('F.gather: batch_dims 1 must be in 0..0', F.gather, x, nn.Variable { 3 }, 1, 1)
    -- indices that need a gradient get zeros
    local ix = nn.Variable.from({ 2, 1 }, { need_grad = true })
    local y = F.gather(nn.Variable.from { 10, 20, 30 }, ix)
    y:forward()
    T.assert_close(y.d, { 20, 10 }, 0, 0, 'gathered')
    y:backward { grad = 1 }
    T.assert_close(ix.g, { 0, 0 }, 0, 0, 'no gradient for positions')
  end)
end)

describe('gather_nd and scatter_nd', function()
  it("gather_nd follows NNabla's example, 1-based", function()
    local data = F.reshape(F.arange(1, 10), { 2, 5 })
    local a = F.gather_nd(data, nn.Variable.from { { 2, 2, 1 } })
    local b = F.gather_nd(data, nn.Variable.from { { 2, 2, 1 }, { 1, 2, 1 } })
    a:forward(); b:forward()
    assert.same({ 3, 5 }, a.shape)
    T.assert_close(a.d, { { 6, 7, 8, 9, 10 }, { 6, 7, 8, 9, 10 }, { 1, 2, 3, 4, 5 } }, 0, 0, 'rows')
    T.assert_close(b.d, { 6, 7, 1 }, 0, 0, 'elements')
  end)

  local function gnd_ref(x, ix)
    local M = ix.shape[1]
    local yshape = {}
    for k = 2, ix.ndim do yshape[#yshape + 1] = ix.shape[k] end
    local ny = #yshape
    for k = M + 1, x.ndim do yshape[#yshape + 1] = x.shape[k] end
    return R.build(yshape, function(idx)
      local j = {}
      for m = 1, M do
        local ii = { m }
        for k = 1, ny do ii[k + 1] = idx[k] end
        local p = R.at(ix, ii)
        j[m] = p < 0 and x.shape[m] + p + 1 or p
      end
      for k = M + 1, x.ndim do j[k] = idx[ny + k - M] end
      return R.at(x, j)
    end)
  end

  local gcases = {
    { { 3, 4 }, NdArray.from { { 1, 3, -1 }, { 2, 4, 1 } } },
    { { 3, 4, 2 }, NdArray.from { { { 3, 1 }, { 2, 2 } } } },
    { { 3, 4 }, NdArray.from { 2, 3 } },
  }
  for _, c in ipairs(gcases) do
    it(('gather_nd x %s indices %s'):format(S(c[1]), S(c[2].shape)), function()
      T.check { fn = function(x, ix) return F.gather_nd(x, ix) end, ref = gnd_ref, inputs = { c[1], c[2] }, grad = { true, false } }
    end)
  end

  it("scatter_nd follows NNabla's example, 1-based, and inverts gather_nd", function()
    local data = nn.Variable.from { 9, 10, 11, 12 }
    local ix = nn.Variable.from { { 5, 4, 2, 8 } }
    local y = F.scatter_nd(data, ix, { 8 })
    local back = F.gather_nd(y, ix)
    back:forward()
    T.assert_close(y.d, { 0, 11, 0, 10, 9, 0, 0, 12 }, 0, 0, 'scattered')
    T.assert_close(back.d, { 9, 10, 11, 12 }, 0, 0, 'gathered back')
  end)

  -- reference: zeros (or out), then data slices written / added at the positions
  local function snd_ref(shape, add)
    return function(data, ix, out)
      local y = out and out:copy() or NdArray.zeros(shape)
      local M = ix.shape[1]
      local cols = ix.size / M
      local slice = data.size / cols
      local pd, pi, py = data:ptr(), ix:ptr(), y:ptr()
      local st = R.strides(shape)
      for i = 0, cols - 1 do
        local off = 0
        for m = 0, M - 1 do
          local p = pi[m * cols + i]
          if p < 0 then p = shape[m + 1] + p + 1 end
          off = off + (p - 1) * st[m + 1]
        end
        for k = 0, slice - 1 do
          py[off + k] = add and py[off + k] + pd[i * slice + k] or pd[i * slice + k]
        end
      end
      return y
    end
  end

  local scases = {
    { { 3 }, NdArray.from { { 4, 1, -2 } }, { 6 } },
    { { 2, 3 }, NdArray.from { { 1, 3 } }, { 3, 3 } },
    { { 2 }, NdArray.from { { 1, 3 }, { 2, 1 } }, { 3, 2 } },
    { { 2, 2, 4 }, NdArray.from { { { 1, 2 }, { 3, 1 } }, { { 1, 1 }, { 2, 2 } } }, { 3, 2, 4 } },
  }
  for _, c in ipairs(scases) do
    it(('scatter_nd data %s indices %s shape %s'):format(S(c[1]), S(c[2].shape), S(c[3])), function()
      T.check {
        fn = function(d, ix) return F.scatter_nd(d, ix, { shape = c[3] }) end,
        ref = snd_ref(c[3], false), inputs = { c[1], c[2] }, grad = { true, false },
      }
      T.check {
        fn = function(d, ix, out) return F.scatter_nd(d, ix, out) end,
        ref = snd_ref(c[3], false), inputs = { c[1], c[2], c[3] }, grad = { true, false, true },
      }
      T.check {
        fn = function(d, ix, out) return F.scatter_nd(d, ix, out, nil, true) end,
        ref = snd_ref(c[3], true), inputs = { c[1], c[2], c[3] }, grad = { true, false, true },
      }
    end)
  end

  it('checks shapes and positions', function()
    local d = nn.Variable { 3 }
    fails("F.scatter_nd: argument 'shape' is required when no 'out' input is given", F.scatter_nd, d, nn.Variable { 1, 3 })
    fails('F.scatter_nd: data {3} must have shape indices.shape[2..] .. shape[M+1..] (indices {1, 2}, shape {5}, M = 1)',
          F.scatter_nd, d, nn.Variable { 1, 2 }, { 5 })
    fails("F.scatter_nd: argument 'shape' {4} differs from out's shape {5}", F.scatter_nd, d, nn.Variable { 1, 3 }, nn.Variable { 5 }, { 4 })
    fails('F.gather_nd: indices {3, 2} must be (M, ...) with 1 <= M <= 2', F.gather_nd, nn.Variable { 2, 2 }, nn.Variable { 3, 2 })
    forward_fails("scatter_nd: 'indices' entry 3 is 6, out of range for axis 1 of size 5",
                  F.scatter_nd(nn.Variable.from { 1, 2, 3 }, nn.Variable.from { { 1, 2, 6 } }, { 5 }))
  end)
end)

describe('scatter_add', function()
  local function sa_ref(axis)
    return function(x0, ix, x1)
      local y = x0:copy()
      local a = R.axis(axis, x0.ndim)
      for i = 0, ix.size - 1 do
        local p = R.unravel(i, ix.shape)
        local q = copy(p)
        local v = ix:ptr()[i]
        q[a] = v < 0 and x0.shape[a] + v + 1 or v
        local o = R.ravel(q, x0.shape)
        y:ptr()[o] = y:ptr()[o] + R.at(x1, p)
      end
      return y
    end
  end

  local cases = {
    { { 3, 4 }, NdArray.from { { 2, 3, 1, 3 }, { 1, 1, 3, 2 } }, { 2, 4 }, 1 },
    { { 3, 4 }, NdArray.from { { 4, 4 }, { 1, -1 }, { 2, 3 } }, { 3, 2 }, 2 },
    { { 3, 5 }, NdArray.from { { 1, 2 } }, { 2, 3 }, -1 },
    { { 2, 3, 2 }, NdArray.from { { { 1, 2 } }, { { 2, 1 } } }, { 2, 1, 2 }, 1 },
  }
  for _, c in ipairs(cases) do
    it(('x0 %s indices %s x1 %s axis=%d'):format(S(c[1]), S(c[2].shape), S(c[3]), c[4]), function()
      T.check {
        fn = function(x0, ix, x1) return F.scatter_add(x0, ix, x1, c[4]) end,
        ref = sa_ref(c[4]),
        inputs = { c[1], c[2], c[3] }, grad = { true, false, true },
      }
    end)
  end

  it('checks shapes and positions', function()
    fails('F.scatter_add: x0 {3, 4}, indices {2, 5} and x1 {2, 5} must have one number of axes, with indices no larger than x1 and, off axis 1, than x0',
          F.scatter_add, nn.Variable { 3, 4 }, nn.Variable { 2, 5 }, nn.Variable { 2, 5 })
    forward_fails("scatter_add: 'indices' entry 1 is 4, out of range for axis 1 of size 3",
                  F.scatter_add(nn.Variable { 3, 1 }, nn.Variable.from { { 4 } }, nn.Variable { 1, 1 }))
  end)
end)
