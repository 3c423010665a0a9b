-- Array functions through the function tester against plain Lua references:
-- concatenate, split, stack, pad, transpose, broadcast, broadcast_to, tile, flip, shift,
-- matrix_diag, matrix_diag_part, trilu, interpolate, and arange, linspace, constant
-- (no inputs).
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local copy, fails = R.copy, R.fails

local S = nn.lib.shape_str

describe('concatenate, split and stack', function()
  local function concat_ref(axis)
    return function(...)
      local xs = { ... }
      local nd = xs[1].ndim
      local a = R.axis(axis, nd)
      local shape = copy(xs[1].shape)
      shape[a] = 0
      for _, x in ipairs(xs) do shape[a] = shape[a] + x.shape[a] end
      return R.build(shape, function(idx)
        local j = copy(idx)
        for _, x in ipairs(xs) do
          if j[a] <= x.shape[a] then return R.at(x, j) end
          j[a] = j[a] - x.shape[a]
        end
      end)
    end
  end

  for _, c in ipairs {
    { { { 2, 3 }, { 2, 4 } }, -1 }, { { { 2, 3 }, { 1, 3 }, { 3, 3 } }, 1 },
    { { { 2, 1, 4 }, { 2, 3, 4 } }, 2 }, { { { 3 }, { 2 } }, nil }, { { { 2, 3, 2 } }, 3 },
  } do
    local shapes, axis = c[1], c[2]
    local names = {}
    for i, s in ipairs(shapes) do names[i] = S(s) end
    it(('concatenate %s axis=%s'):format(table.concat(names, ' '), tostring(axis)), function()
      local grad = {}
      for i = 1, #shapes do grad[i] = true end
      T.check {
        fn = function(...) return F.concatenate({ ... }, axis) end,
        ref = concat_ref(axis or -1),
        inputs = shapes, grad = grad,
      }
    end)
  end

  it('concatenate takes inputs as arguments or a list; NNabla default axis is the last', function()
    local a, b = nn.Variable.from { { 1, 2 } }, nn.Variable.from { { 3 } }
    local y1, y2 = F.concatenate(a, b), F.concatenate({ a, b }, { axis = -1 })
    y1:forward(); y2:forward()
    T.assert_close(y1.d, { { 1, 2, 3 } }, 0, 0, 'positional inputs')
    T.assert_close(y2.d, { { 1, 2, 3 } }, 0, 0, 'list of inputs')
    fails('F.concatenate: input 2 has shape {2, 2} but input 1 has shape {1, 2}: all sizes but axis 2 must agree',
          F.concatenate, a, nn.Variable { 2, 2 })
    fails('F.concatenate: axis 3 is out of range for a 2-d input', F.concatenate, a, b, 3)
  end)

  for _, c in ipairs { { { 3, 2 }, 1 }, { { 2, 3, 4 }, 2 }, { { 2, 3, 4 }, -1 }, { { 4 }, 1 } } do
    it(('split %s axis=%d'):format(S(c[1]), c[2]), function()
      T.check {
        fn = function(x) return F.split(x, c[2]) end,
        ref = function(x)
          local nd = x.ndim
          local a = R.axis(c[2], nd)
          local oshape = {}
          for d = 1, nd do if d ~= a then oshape[#oshape + 1] = x.shape[d] end end
          local outs = {}
          for o = 1, x.shape[a] do
            outs[o] = R.build(oshape, function(idx)
              local j = {}
              local k = 1
              for d = 1, nd do
                if d == a then j[d] = o else j[d] = idx[k]; k = k + 1 end
              end
              return R.at(x, j)
            end)
          end
          return outs
        end,
        inputs = { c[1] }, grad = { true },
      }
    end)
  end

  it('split returns one output per entry and checks the count', function()
    local a, b, c = F.split(nn.Variable.from { { 1, 2 }, { 3, 4 }, { 5, 6 } })
    a:forward()
    T.assert_close(c.d, { 5, 6 }, 0, 0, 'third row')
    fails('F.split: axis 2 of input shape {2, 0} has size 0; split makes one output per entry (1 to 64)',
          F.split, nn.Variable { 2, 0 }, 2)
    fails('has size 65', F.split, nn.Variable { 65 })
  end)

  for _, c in ipairs { { { 2, 3 }, 1, 2 }, { { 2, 3 }, 2, 3 }, { { 2, 3 }, -1, 2 }, { { 4 }, 1, 3 }, { { 2, 3 }, 3, 2 } } do
    it(('stack %d x %s axis=%d'):format(c[3], S(c[1]), c[2]), function()
      local shapes, grad = {}, {}
      for i = 1, c[3] do shapes[i] = c[1]; grad[i] = true end
      T.check {
        fn = function(...) return F.stack({ ... }, c[2]) end,
        ref = function(...)
          local xs = { ... }
          local nd = #c[1]
          local a = R.axis(c[2], nd + 1)
          local oshape = copy(c[1])
          table.insert(oshape, a, #xs)
          return R.build(oshape, function(idx)
            local j = copy(idx)
            local k = table.remove(j, a)
            return R.at(xs[k], j)
          end)
        end,
        inputs = shapes, grad = grad,
      }
    end)
  end

  it('stack rejects inputs of different shapes', function()
    fails('F.stack: input 2 has shape {3} but input 1 has shape {2}: stacked inputs must have one shape',
          F.stack, nn.Variable { 2 }, nn.Variable { 3 })
    fails('F.stack: axis 4 is out of range for a 3-d input', F.stack, nn.Variable { 2, 2 }, nn.Variable { 2, 2 }, 4)
  end)
end)

describe('pad', function()
  local function pad_ref(width, mode, value)
    return function(x)
      local nd = x.ndim
      local before, after = {}, {}
      for d = 1, nd do before[d], after[d] = 0, 0 end
      local first = nd - #width / 2
      for j = 1, #width / 2 do before[first + j], after[first + j] = width[2 * j - 1], width[2 * j] end
      local oshape = {}
      for d = 1, nd do oshape[d] = x.shape[d] + before[d] + after[d] end
      return R.build(oshape, function(idx)
        local j = {}
        for d = 1, nd do
          local n, s = x.shape[d], idx[d] - before[d]   -- 1-based source position
          if mode == 'constant' then
            if s < 1 or s > n then return value end
          elseif mode == 'repeat' then
            s = math.max(1, math.min(n, s))
          else -- reflect about the edges, as numpy does
            local t = s - 1
            while t < 0 or t > n - 1 do
              if t < 0 then t = -t end
              if t > n - 1 then t = 2 * (n - 1) - t end
              if n == 1 then t = 0 end
            end
            s = t + 1
          end
          j[d] = s
        end
        return R.at(x, j)
      end)
    end
  end

  local cases = {
    { { 4 }, { 3, 3 }, 'constant', -1 }, { { 4 }, { 3, 3 }, 'reflect' }, { { 4 }, { 3, 3 }, 'repeat' },
    { { 2, 3, 4 }, { 1, 1, 2, 2 }, 'constant', 0.5 }, { { 2, 3, 4 }, { 0, 1, 2, 1, 3, 3 }, 'reflect' },
    { { 2, 3, 4 }, { 2, 0, 1, 4 }, 'repeat' }, { { 3, 3 }, { 5, 6 }, 'reflect' }, { { 2, 1 }, { 2, 1 }, 'reflect' },
  }
  for _, c in ipairs(cases) do
    it(('%s pad_width=%s %s'):format(S(c[1]), S(c[2]), c[3]), function()
      T.check {
        fn = function(x) return F.pad(x, c[2], c[3], c[4]) end,
        ref = pad_ref(c[2], c[3], c[4] or 0),
        inputs = { c[1] }, grad = { true },
      }
    end)
  end

  it("matches NNabla's documented examples", function()
    local x = nn.Variable.from { 1, 2, 3, 4 }
    local y1 = F.pad(x, { 3, 3 }, 'constant', { constant_value = -1 })
    local y2, y3 = F.pad(x, { 3, 3 }, 'reflect'), F.pad(x, { 3, 3 }, 'repeat')
    y1:forward(); y2:forward(); y3:forward()
    T.assert_close(y1.d, { -1, -1, -1, 1, 2, 3, 4, -1, -1, -1 }, 0, 0, 'constant')
    T.assert_close(y2.d, { 4, 3, 2, 1, 2, 3, 4, 3, 2, 1 }, 0, 0, 'reflect')
    T.assert_close(y3.d, { 1, 1, 1, 1, 2, 3, 4, 4, 4, 4 }, 0, 0, 'repeat')
    assert.same({ 3, 4, 7, 8 }, F.pad(nn.Variable { 3, 3, 4, 2 }, { 0, 1, 2, 1, 3, 3 }).shape)
    assert.same({ 3, 3, 8, 4 }, F.pad(nn.Variable { 3, 3, 4, 2 }, { 2, 2, 1, 1 }).shape)
  end)

  it('rejects odd, too long or negative pad widths and unknown modes', function()
    local x = nn.Variable { 2, 3 }
    fails("F.pad: argument 'pad_width' has 3 entries; it needs before/after pairs for at most the 2 axes of x {2, 3}", F.pad, x, { 1, 2, 3 })
    fails("argument 'pad_width' has 6 entries", F.pad, x, { 1, 1, 1, 1, 1, 1 })
    fails("F.pad: argument 'pad_width' has a negative entry (-1, 0) for axis 2", F.pad, x, { -1, 0 })
    fails("F.pad: argument 'mode' must be one of 'constant', 'reflect', 'repeat', got wrap", F.pad, x, { 1, 1 }, 'wrap')
    fails("F.pad: argument 'pad_width' is required", F.pad, x)
    fails("F.pad: mode 'reflect' cannot pad axis 2 of size 0", F.pad, nn.Variable { 2, 0 }, { 1, 1 }, 'reflect')
  end)
end)

describe('transpose, broadcast, broadcast_to, tile and flip', function()
  for _, axes in ipairs { { 2, 1 }, { 1, 2 }, { 3, 1, 2 }, { -1, -3, -2 }, { 2, 4, 1, 3 } } do
    local shape = ({ [2] = { 3, 4 }, [3] = { 2, 3, 4 }, [4] = { 2, 3, 1, 4 } })[#axes]
    it(('transpose %s axes=%s'):format(S(shape), S(axes)), function()
      T.check {
        fn = function(x) return F.transpose(x, axes) end,
        ref = function(x)
          local nd = x.ndim
          local oshape = {}
          for k = 1, nd do oshape[k] = x.shape[R.axis(axes[k], nd)] end
          return R.build(oshape, function(idx)
            local j = {}
            for k = 1, nd do j[R.axis(axes[k], nd)] = idx[k] end
            return R.at(x, j)
          end)
        end,
        inputs = { shape }, grad = { true },
      }
    end)
  end

  it('transpose wants a permutation', function()
    local x = nn.Variable { 2, 3 }
    fails("F.transpose: argument 'axes' has 1 entries for a 2-d input of shape {2, 3} (a permutation of 1..2)", F.transpose, x, { 1 })
    fails("F.transpose: argument 'axes' names axis 1 twice", F.transpose, x, { 1, -2 })
    fails('F.transpose: axes entry 3 is out of range', F.transpose, x, { 3, 1 })
    fails("F.transpose: argument 'axes' is required", F.transpose, x)
  end)

  local function bcast_ref(shape)
    return function(x)
      local lead = #shape - x.ndim
      return R.build(shape, function(idx)
        local j = {}
        for d = 1, x.ndim do j[d] = x.shape[d] == 1 and 1 or idx[d + lead] end
        return R.at(x, j)
      end)
    end
  end
  for _, c in ipairs { { { 1, 3 }, { 4, 3 } }, { { 2, 1, 3 }, { 2, 4, 3 } }, { { 3 }, { 2, 4, 3 } }, { { 1, 1 }, { 2, 3 } }, { { 2, 3 }, { 2, 3 } } } do
    it(('broadcast %s to %s'):format(S(c[1]), S(c[2])), function()
      T.check { fn = function(x) return F.broadcast(x, c[2]) end, ref = bcast_ref(c[2]), inputs = { c[1] }, grad = { true } }
    end)
  end

  it('broadcast names both shapes when they do not fit', function()
    fails('F.broadcast: cannot broadcast shape {2, 3} to {4, 3}: axis 1 has size 2 (must be 4 or 1)', F.broadcast, nn.Variable { 2, 3 }, { 4, 3 })
    fails('F.broadcast: cannot broadcast shape {2, 3} to {3} (fewer axes)', F.broadcast, nn.Variable { 2, 3 }, { 3 })
    fails('F.broadcast: cannot broadcast shape {0, 1} to {1, 3}: axis 1 has size 0 (must be 1)', F.broadcast, nn.Variable { 0, 1 }, { 1, 3 })
  end)

  for _, c in ipairs { { { 2, 3, 4 }, { 3, 4 }, nil }, { { 2, 3, 4 }, { 3 }, 2 }, { { 2, 3, 4 }, { 2, 3 }, 1 }, { { 2, 3, 4, 5 }, { 3, 4 }, -3 }, { { 2, 3 }, { 2, 3 }, nil } } do
    it(('broadcast_to y %s into x %s axis=%s'):format(S(c[2]), S(c[1]), tostring(c[3])), function()
      T.check {
        fn = function(x, y) return F.broadcast_to(x, y, c[3]) end,
        ref = function(x, y)
          local a = c[3] and R.axis(c[3], x.ndim) or x.ndim - y.ndim + 1
          return R.build(x.shape, function(idx)
            local j = {}
            for k = 1, y.ndim do j[k] = idx[a + k - 1] end
            return R.at(y, j)
          end)
        end,
        inputs = { c[1], c[2] }, grad = { true, true },
      }
    end)
  end

  it('broadcast_to checks that y fits x', function()
    fails('F.broadcast_to: y {4} does not match x {2, 3} from axis 2', F.broadcast_to, nn.Variable { 2, 3 }, nn.Variable { 4 })
    fails("F.broadcast_to: y {2, 3, 1} has more axes than x {2, 3}", F.broadcast_to, nn.Variable { 2, 3 }, nn.Variable { 2, 3, 1 })
    fails('F.broadcast_to: y {2, 3} does not fit into x {2, 3} from axis 2', F.broadcast_to, nn.Variable { 2, 3 }, nn.Variable { 2, 3 }, 2)
  end)

  for _, c in ipairs { { { 3 }, 3 }, { { 3 }, { 2, 3 } }, { { 2, 2 }, 3 }, { { 2, 2 }, { 2, 3 } }, { { 2, 1, 3 }, { 2, 1, 1, 2 } } } do
    it(('tile %s reps=%s'):format(S(c[1]), type(c[2]) == 'table' and S(c[2]) or c[2]), function()
      T.check {
        fn = function(x) return F.tile(x, c[2]) end,
        ref = function(x)
          local reps = type(c[2]) == 'table' and c[2] or { c[2] }
          local nd = math.max(#reps, x.ndim)
          local xs, rp, oshape = {}, {}, {}
          for k = 1, nd do
            xs[k] = x.shape[k - (nd - x.ndim)] or 1
            rp[k] = reps[k - (nd - #reps)] or 1
            oshape[k] = xs[k] * rp[k]
          end
          return R.build(oshape, function(idx)
            local j = {}
            for k = nd - x.ndim + 1, nd do j[k - (nd - x.ndim)] = (idx[k] - 1) % xs[k] + 1 end
            return R.at(x, j)
          end)
        end,
        inputs = { c[1] }, grad = { true },
      }
    end)
  end

  it("tile follows NNabla's examples", function()
    assert.same({ 2, 9 }, F.tile(nn.Variable { 2, 3 }, 3).shape)
    assert.same({ 2, 9 }, F.tile(nn.Variable { 3 }, { 2, 3 }).shape)
    local y = F.tile(nn.Variable.from { { 1, 3 }, { 2, 4 } }, { 2, 3 })
    y:forward()
    T.assert_close(y.d, { { 1, 3, 1, 3, 1, 3 }, { 2, 4, 2, 4, 2, 4 }, { 1, 3, 1, 3, 1, 3 }, { 2, 4, 2, 4, 2, 4 } }, 0, 0, 'tile')
    fails("F.tile: argument 'reps' entry 1 is -1; repetitions must be >= 0", F.tile, nn.Variable { 2 }, -1)
  end)

  for _, c in ipairs { { { 2, 3 }, nil }, { { 2, 3 }, { 1 } }, { { 2, 3, 4 }, { 1, 3 } }, { { 2, 3, 4 }, { -2, 2 } }, { { 5 }, 1 } } do
    it(('flip %s axes=%s'):format(S(c[1]), c[2] == nil and 'nil' or type(c[2]) == 'table' and S(c[2]) or c[2]), function()
      T.check {
        fn = function(x) return F.flip(x, c[2]) end,
        ref = function(x)
          local axes = c[2] == nil and { -1 } or type(c[2]) == 'table' and c[2] or { c[2] }
          local fl = {}
          for _, a in ipairs(axes) do local d = R.axis(a, x.ndim); fl[d] = not fl[d] end
          return R.build(x.shape, function(idx)
            local j = {}
            for d = 1, x.ndim do j[d] = fl[d] and x.shape[d] + 1 - idx[d] or idx[d] end
            return R.at(x, j)
          end)
        end,
        inputs = { c[1] }, grad = { true },
      }
    end)
  end
end)

describe('shift', function()
  local function shift_ref(shifts, mode)
    return function(x)
      local nd = x.ndim
      shifts = shifts or {}
      return R.build(x.shape, function(idx)
        local j = {}
        for d = 1, nd do
          local n = x.shape[d]
          local s = shifts[d - (nd - #shifts)] or 0
          local t = idx[d] - 1 - s
          if mode == 'reflect' then
            while t < 0 or t > n - 1 do
              if t < 0 then t = -t - 1 end
              if t > n - 1 then t = 2 * n - 1 - t end
            end
          else t = math.max(0, math.min(n - 1, t)) end
          j[d] = t + 1
        end
        return R.at(x, j)
      end)
    end
  end
  for _, c in ipairs { { { 2, 5 }, { 2 }, 'nearest' }, { { 2, 5 }, { -1, 3 }, 'nearest' }, { { 3, 5 }, { 1, -2 }, 'reflect' },
                       { { 2, 3, 4 }, { 3, 6 }, 'reflect' }, { { 2, 3 }, nil, 'nearest' } } do
    it(('%s shifts=%s %s'):format(S(c[1]), c[2] and S(c[2]) or 'nil', c[3]), function()
      T.check {
        fn = function(x) return F.shift(x, c[2], c[3]) end,
        ref = shift_ref(c[2], c[3]),
        inputs = { c[1] }, grad = { true },
      }
    end)
  end

  it('rejects more shifts than axes', function()
    fails("F.shift: argument 'shifts' has 3 entries for a 2-d input of shape {2, 3}", F.shift, nn.Variable { 2, 3 }, { 1, 1, 1 })
  end)
end)

describe('matrix_diag, matrix_diag_part and trilu', function()
  for _, shape in ipairs { { 3 }, { 2, 3 }, { 2, 1, 2 } } do
    it('matrix_diag ' .. S(shape), function()
      T.check {
        fn = function(x) return F.matrix_diag(x) end,
        ref = function(x)
          local oshape = copy(shape)
          oshape[#oshape + 1] = shape[#shape]
          return R.build(oshape, function(idx)
            local n = #idx
            if idx[n] ~= idx[n - 1] then return 0 end
            local j = copy(idx)
            j[n] = nil
            return R.at(x, j)
          end)
        end,
        inputs = { shape }, grad = { true },
      }
    end)
  end

  for _, shape in ipairs { { 3, 3 }, { 2, 3, 3 }, { 2, 1, 2, 2 } } do
    it('matrix_diag_part ' .. S(shape), function()
      T.check {
        fn = function(x) return F.matrix_diag_part(x) end,
        ref = function(x)
          local oshape = copy(shape)
          oshape[#oshape] = nil
          return R.build(oshape, function(idx)
            local j = copy(idx)
            j[#j + 1] = idx[#idx]
            return R.at(x, j)
          end)
        end,
        inputs = { shape }, grad = { true },
      }
    end)
  end

  it('matrix_diag_part wants square matrices', function()
    fails('F.matrix_diag_part: x must end in a square matrix (..., n, n), got shape {2, 3}', F.matrix_diag_part, nn.Variable { 2, 3 })
  end)

  for _, c in ipairs { { { 4, 4 }, 0, true }, { { 4, 4 }, 0, false }, { { 3, 5 }, 1, true }, { { 3, 5 }, -1, false },
                       { { 2, 3, 4 }, 2, true }, { { 2, 4, 3 }, -2, true } } do
    it(('trilu %s k=%d upper=%s'):format(S(c[1]), c[2], tostring(c[3])), function()
      T.check {
        fn = function(x) return F.trilu(x, c[2], c[3]) end,
        ref = function(x)
          return R.build(x.shape, function(idx)
            local i, j = idx[#idx - 1], idx[#idx]
            local keep = c[3] and j - i >= c[2] or (not c[3] and j - i <= c[2])
            return keep and R.at(x, idx) or 0
          end)
        end,
        inputs = { c[1] }, grad = { true },
      }
    end)
  end

  it('trilu wants matrices', function()
    fails('F.trilu: x must have at least 2 axes (..., rows, cols), got shape {3}', F.trilu, nn.Variable { 3 })
  end)
end)

describe('arange, linspace and constant (no inputs)', function()
  it('arange is an inclusive Lua range', function()
    T.check { fn = function() return F.arange(1, 5) end, ref = function() return { 1, 2, 3, 4, 5 } end, inputs = {} }
    T.check { fn = function() return F.arange(0, 1, 0.25) end, ref = function() return { 0, 0.25, 0.5, 0.75, 1 } end, inputs = {} }
    T.check { fn = function() return F.arange(5, 1, -2) end, ref = function() return { 5, 3, 1 } end, inputs = {} }
    T.check { fn = function() return F.arange { start = 0, stop = 2.5 } end, ref = function() return { 0, 1, 2 } end, inputs = {} }
    local y = F.arange(3, 1)
    assert.same({ 0 }, y.shape)
    local z = F.arange(2, 7, 2)
    z:forward()
    T.assert_close(z.d, NdArray.arange(2, 7, 2), 0, 0, 'same as NdArray.arange')
    fails("F.arange: arguments 'start' and 'stop' are required", F.arange)
    fails('F.arange: start 0, stop 1, step 0: the step must be nonzero', F.arange, 0, 1, 0)
  end)

  it('linspace includes both ends', function()
    T.check { fn = function() return F.linspace(0, 1, 5) end, ref = function() return { 0, 0.25, 0.5, 0.75, 1 } end, inputs = {} }
    T.check { fn = function() return F.linspace(-1, 2, 4) end, ref = function() return { -1, 0, 1, 2 } end, inputs = {} }
    T.check { fn = function() return F.linspace(3, 7, 1) end, ref = function() return { 3 } end, inputs = {} }
    fails("F.linspace: argument 'num' is -1; it must be >= 0", F.linspace, 0, 1, -1)
    fails("F.linspace: arguments 'start', 'stop' and 'num' are required", F.linspace, 0, 1)
  end)

  it('constant fills a shape (a scalar by default)', function()
    T.check { fn = function() return F.constant(2.5, { 2, 3 }) end, ref = function() return NdArray.full({ 2, 3 }, 2.5) end, inputs = {} }
    local y = F.constant()
    y:forward()
    assert.same({}, y.shape)
    assert.equal(0, y.d:item())
    fails("F.constant: argument 'shape' {2, -1} has a negative size", F.constant, 1, { 2, -1 })
  end)

  it('no-input functions work in a graph with others and need no gradient', function()
    local x = nn.Variable.from({ 1, 2, 3 }, { need_grad = true })
    local y = F.sum(x * F.arange(1, 3))
    y:forward()
    assert.equal(14, y.d:item())
    x.grad:zero()
    y:backward()
    T.assert_close(x.g, { 1, 2, 3 }, 0, 0, 'grad')
    assert.is_false(F.constant(1, { 2 }).need_grad)
  end)
end)

describe('interpolate', function()
  -- NNabla's coordinate rules (src/nbla/function/generic/interpolate.cpp), in double.
  local function interp_ref(o)
    return function(x)
      local nd = x.ndim
      local sizes = o.output_size
      local nsp = sizes and #sizes or #o.scale
      local first = nd - nsp - (o.channel_last and 1 or 0)
      local oshape = copy(x.shape)
      for s = 1, nsp do
        local is = x.shape[first + s]
        oshape[first + s] = sizes and sizes[s] or math.floor(o.scale[s] * is)
      end
      local mode = o.mode or 'linear'
      -- per spatial axis and output position: {i1, i2, w} (1-based)
      local tab = {}
      for s = 1, nsp do
        local is, os = x.shape[first + s], oshape[first + s]
        local scale = os <= 1 and 0 or (o.align_corners and (is - 1) / (os - 1) or is / os)
        tab[s] = {}
        for q = 0, os - 1 do
          local fx
          if mode == 'nearest' and o.half_pixel_for_nn then fx = (is / os) * (q + 0.5)
          elseif o.half_pixel then fx = math.max(0, scale * (q + 0.5) - 0.5)
          else fx = scale * q end
          local x1 = math.min(math.floor(fx), is - 1)
          tab[s][q + 1] = { x1 + 1, math.min(x1 + 1, is - 1) + 1, mode == 'nearest' and 0 or fx - x1 }
        end
      end
      return R.build(oshape, function(idx)
        local acc = 0
        for c = 0, 2 ^ nsp - 1 do
          local w, j = 1, copy(idx)
          for s = 1, nsp do
            local t = tab[s][idx[first + s]]
            local bit = math.floor(c / 2 ^ (s - 1)) % 2
            if bit == 1 then w = w * t[3]; j[first + s] = t[2] else w = w * (1 - t[3]); j[first + s] = t[1] end
          end
          if w ~= 0 then acc = acc + w * R.at(x, j) end
        end
        return acc
      end)
    end
  end

  local cases = {
    { { 2, 3 }, { scale = { 2 } } },
    { { 2, 4 }, { output_size = { 3 } } },
    { { 1, 2, 3, 3 }, { output_size = { 5, 4 } } },
    { { 1, 2, 3, 3 }, { output_size = { 5, 4 }, align_corners = true } },
    { { 1, 1, 3, 4 }, { scale = { 2, 1.5 }, half_pixel = true } },
    { { 2, 2, 3 }, { output_size = { 2, 3, 5 } } },
    { { 1, 2, 3 }, { output_size = { 7 }, mode = 'nearest' } },
    { { 1, 4, 3 }, { output_size = { 2, 5 }, mode = 'nearest' } },
    { { 1, 3, 3 }, { output_size = { 5, 2 }, mode = 'nearest', half_pixel_for_nn = true } },
    { { 1, 3, 4, 2 }, { output_size = { 5, 3 }, channel_last = true } },
  }
  for _, c in ipairs(cases) do
    local desc = {}
    for k, v in pairs(c[2]) do desc[#desc + 1] = k .. '=' .. (type(v) == 'table' and S(v) or tostring(v)) end
    table.sort(desc)
    it(('%s %s'):format(S(c[1]), table.concat(desc, ' ')), function()
      T.check {
        fn = function(x) return F.interpolate(x, c[2]) end,
        ref = interp_ref(c[2]),
        inputs = { c[1] }, grad = { true },
      }
    end)
  end

  it('needs scale or output_size and supports 1 to 3 spatial axes', function()
    local x = nn.Variable { 1, 2, 3, 3 }
    fails("F.interpolate: either 'scale' or 'output_size' must be given", F.interpolate, x)
    fails('F.interpolate: 4 spatial axes requested; 1-, 2- and 3-d interpolation are implemented', F.interpolate, x, nil, { 2, 2, 2, 2 })
    fails('F.interpolate: align_corners and half_pixel cannot both be true', F.interpolate, x, { output_size = { 4, 4 }, align_corners = true, half_pixel = true })
    fails("F.interpolate: argument 'mode' must be one of 'linear', 'nearest', got cubic", F.interpolate, x, { 2, 2 }, nil, 'cubic')
    fails('F.interpolate: output size 0 on axis 4', F.interpolate, x, { 1, 0.2 })
    assert.same({ 1, 2, 6, 6 }, F.interpolate(x, { 2, 2 }).shape)
  end)
end)

-- scripts/fuzz_functions.lua regressions: huge shapes and repetitions (were a segfault /
-- signed overflow in the size arithmetic)
describe('huge sizes (fuzz)', function()
  it('F.constant refuses a shape beyond 32-bit entries or 2^48 elements', function()
    local ok, err = pcall(F.constant, 1, {2 ^ 31, 2 ^ 31})
    assert.is_false(ok)
    assert.matches("F.constant: argument 'shape' entry 1 is 2147483648, out of range", err, 1, true)
    ok, err = pcall(F.constant, 1, {2 ^ 20, 2 ^ 20, 2 ^ 20})
    assert.is_false(ok)
    assert.matches('F.constant: shape {1048576, 1048576, 1048576} has too many elements (at most 2^48)', err, 1, true)
  end)
  it('F.tile refuses repetitions that make y too large', function()
    local I = 2 ^ 31 - 1
    local ok, err = pcall(F.tile, nn.Variable({2, 3}), {I, I, I, I})
    assert.is_false(ok)
    assert.matches('F.tile: y {2147483647, 2147483647, 4294967294, 6442450941} has too many elements (at most 2^48) (inputs: x {2, 3})', err, 1, true)
  end)
end)
