-- NdArray: construction, views, indexing, arithmetic, reductions and numpy-like printing.
local nn = require 'nnlua'
local NdArray = nn.NdArray

describe('NdArray', function()
  it('builds from nested tables, flat lists and constructors', function()
    local a = NdArray.from({ { 1, 2, 3 }, { 4, 5, 6 } })
    assert.same({ 2, 3 }, a.shape)
    assert.equal(6, a.size)
    assert.same({ { 1, 2, 3 }, { 4, 5, 6 } }, a:totable())
    assert.same({ 0, 0 }, NdArray.zeros({ 2 }):flat())
    assert.same({ 1, 1, 1 }, NdArray.ones({ 3 }):flat())
    assert.same({ 1, 2, 3, 4 }, NdArray.arange(4):flat())
    assert.same({ 2, 4, 6 }, NdArray.arange(2, 6, 2):flat())
    assert.same({ { 7, 8 } }, NdArray.from_flat({ 7, 8 }, { 1, 2 }):totable())
  end)

  it('rejects ragged tables and bad shapes with clear messages', function()
    local ok, err = pcall(NdArray.from, { { 1, 2 }, { 3 } })
    assert.is_false(ok)
    assert.matches('ragged', err)
    ok, err = pcall(NdArray.zeros, { 2, -3 })
    assert.is_false(ok)
    assert.matches('shape entry 2', err)
    ok, err = pcall(NdArray.from, { { 1, 'x' } })
    assert.is_false(ok)
    assert.matches('not a number', err)
  end)

  it('indexes 1-based on the first axis; views share storage', function()
    local a = NdArray.from({ { 1, 2, 3 }, { 4, 5, 6 } })
    assert.same({ 4, 5, 6 }, a[2]:flat())
    assert.equal(6, a[2][3])
    assert.equal(3, a[-2][-1])
    local row = a[1]
    row[2] = 20
    assert.equal(20, a:get(1, 2))
    a[2] = { 7, 8, 9 }
    assert.same({ { 1, 20, 3 }, { 7, 8, 9 } }, a:totable())
    local r = a:reshape({ 3, -1 })
    assert.same({ 3, 2 }, r.shape)
    r[1][1] = 100
    assert.equal(100, a:get(1, 1))
    local c = a:copy()
    c[1][1] = 0
    assert.equal(100, a:get(1, 1))
    assert.has_error(function() return a[3] end)
    assert.has_error(function() return a[0] end)
  end)

  it('takes a list of indices, one per axis or the leading ones: a[{i, j}]', function()
    local a = NdArray.from({ { { 1, 2 }, { 3, 4 } }, { { 5, 6 }, { 7, 8 } } })
    assert.equal(6, a[{ 2, 1, 2 }])
    assert.equal(8, a[{ -1, -1, -1 }])
    assert.same({ 3, 4 }, a[{ 1, 2 }]:flat())
    assert.same({ 2, 2 }, a[{ 2 }].shape)
    local v = a:rows(2, 2)[1]             -- a view at an offset
    assert.equal(7, v[{ 2, 1 }])
    a[{ 1, 1, 1 }] = 10
    a[{ 2, 2 }] = { 0, -1 }
    v[{ 1, 2 }] = 60
    assert.same({ 10, 2, 3, 4, 5, 60, 0, -1 }, a:flat())
    local function fails(idx, msg)
      local ok, err = pcall(function() return a[idx] end)
      assert.is_false(ok)
      assert.matches(msg, err, 1, true)
    end
    fails({}, 'NdArray: a table index is a list of 1 to 3 numbers')
    fails({ 1, 1, 1, 1 }, 'NdArray: a table index is a list of 1 to 3 numbers')
    fails({ 1, 3, 1 }, 'NdArray: index 3 out of range 1..2 on axis 2')
    fails({ 1, 'x' }, 'NdArray: index 2 is a string')
    fails({ 1, 1, {} }, 'NdArray: index 3 is a table')
    assert.matches('ndarray_spec', select(2, pcall(function() return a[{ 9 }] end)), 1, true)
  end)

  it('a view keeps its storage alive', function()
    local v
    do
      local a = NdArray.from({ { 1, 2 }, { 3, 4 } })
      v = a[2]
    end
    collectgarbage(); collectgarbage()
    assert.same({ 3, 4 }, v:flat())
  end)

  it('does element-wise arithmetic with numbers, arrays and size-1 broadcasting', function()
    local a = NdArray.from({ { 1, 2 }, { 3, 4 } })
    local b = NdArray.from({ 10, 20 })
    assert.same({ { 11, 22 }, { 13, 24 } }, (a + b):totable())
    assert.same({ { 2, 4 }, { 6, 8 } }, (a * 2):totable())
    assert.same({ { 9, 8 }, { 7, 6 } }, (10 - a):totable())
    assert.same({ { -1, -2 }, { -3, -4 } }, (-a):totable())
    assert.same({ { 1, 4 }, { 9, 16 } }, (a ^ 2):totable())
    assert.same({ { 0, 1 }, { 0, 0 } }, a:eq(NdArray.from({ { 0, 2 }, { 0, 0 } })):totable())
    assert.same({ { 0, 0 }, { 1, 1 } }, a:gt(2):totable())
    assert.has_error(function() return a + NdArray.from({ 1, 2, 3 }) end)
  end)

  it('reduces over everything or one axis (1-based, negative from the end)', function()
    local a = NdArray.from({ { 1, 5, 3 }, { 4, 2, 6 } })
    assert.equal(21, a:sum())
    assert.equal(3.5, a:mean())
    assert.equal(6, a:max())
    assert.equal(1, a:min())
    assert.same({ 5, 7, 9 }, a:sum({ axis = 1 }):flat())
    assert.same({ 9, 12 }, a:sum({ axis = 2 }):flat())
    assert.same({ { 9 }, { 12 } }, a:sum({ axis = -1, keepdims = true }):totable())
    assert.same({ 2, 3 }, a:argmax({ axis = 2 }):flat())
    assert.same({ 2, 1, 2 }, a:argmax({ axis = 1 }):flat())
    assert.equal(6, a:argmax())
    assert.has_error(function() a:sum({ axis = 3 }) end)
  end)

  it('hands out shapes as plain lists that print as {2, 3}', function()
    local a = NdArray.zeros({ 2, 3 })
    assert.same({ 2, 3 }, a.shape)
    assert.equal('{2, 3}', tostring(a.shape))
    assert.equal('{3, 2}', tostring(a:reshape({ 3, -1 }).shape))
    assert.equal('{3}', tostring(a[2].shape))
    assert.equal('{}', tostring(NdArray.zeros({}).shape))
    local v = nn.Variable({ 4, 1, 5 })
    assert.equal('{4, 1, 5}', tostring(v.shape))
    assert.equal('{4, 1, 5}', tostring(v.d.shape))
    local mine = { 2, 2 }
    NdArray.zeros(mine)
    assert.is_nil(getmetatable(mine))   -- the caller's list is left alone
  end)

  it('prints like numpy, with the shape, summarizing large arrays', function()
    local a = NdArray.from({ { 1, 2 }, { 3, 4 } })
    assert.equal('array([[1., 2.],\n       [3., 4.]], shape={2, 2})', tostring(a))
    local b = NdArray.from({ 0.5, 0.25 })
    assert.equal('array([0.5 , 0.25], shape={2})', tostring(b))
    assert.equal('array([-1.5,  2. ], shape={2})', tostring(NdArray.from({ -1.5, 2 })))
    local big = NdArray.zeros({ 100, 100 })
    local s = tostring(big)
    assert.matches('...', s, 1, true)
    assert.matches('shape={100, 100}', s, 1, true)
    assert.is_true(#s < 2000)
  end)

  it('fill and zero are lazy but read back correctly', function()
    local a = NdArray.zeros({ 3 })
    a:fill(2.5)
    assert.same({ 2.5, 2.5, 2.5 }, a:flat())
    a:zero()
    assert.same({ 0, 0, 0 }, a:flat())
  end)
end)
