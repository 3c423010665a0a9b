-- HDF5 parameter files: round trip, NNabla's layout (checked with h5dump), order restored
-- by index, atomic saves, and clear errors for missing, truncated and foreign files.
local nn = require 'nnlua'
local I = require 'nnlua.initializer'

local dir = 'spec/tmp'
os.execute('mkdir -p ' .. dir)

local function read_all(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

local function make_params()
  nn.clear_parameters()
  nn.seed(3)
  nn.parameter_scope('conv1', function()
    nn.get_parameter_or_create('conv/W', { 2, 3, 2, 2 }, I.NormalInitializer(1))
    nn.get_parameter_or_create('conv/b', { 2 }, I.ConstantInitializer(0.5))
  end)
  nn.parameter_scope('zlast', function()   -- alphabetically last, created second
    nn.get_parameter_or_create('affine/W', { 3, 4 }, I.UniformInitializer(1))
  end)
  nn.parameter_scope('bn1', function()
    nn.get_parameter_or_create('bn/mean', { 1, 2, 1, 1 }, I.ConstantInitializer(0.25), false)
  end)
end

describe('HDF5 parameter files', function()
  it('round-trip names, shapes, values, need_grad and creation order', function()
    make_params()
    local before = {}
    for k, v in nn.get_parameters({ grad_only = false }):items() do before[k] = v.d:flat() end
    local path = dir .. '/roundtrip.h5'
    nn.save_parameters(path)
    nn.clear_parameters()
    nn.load_parameters(path)
    local p = nn.get_parameters { grad_only = false }
    assert.same({ 'conv1/conv/W', 'conv1/conv/b', 'zlast/affine/W', 'bn1/bn/mean' }, p:keys())
    for k, v in p:items() do assert.same(before[k], v.d:flat()) end
    assert.same({ 2, 3, 2, 2 }, p['conv1/conv/W'].shape)
    assert.is_false(p['bn1/bn/mean'].need_grad)
    assert.is_true(p['conv1/conv/W'].need_grad)
  end)

  it("writes NNabla's layout: one float dataset per parameter, int8-enum need_grad, int64 index", function()
    make_params()
    local path = dir .. '/layout.h5'
    nn.save_parameters(path)
    local h = io.popen('h5dump -A ' .. path)
    local dump = h:read('*a')
    h:close()
    assert.matches('GROUP "conv1"', dump, 1, true)
    assert.matches('DATASET "W"', dump, 1, true)
    assert.matches('H5T_IEEE_F32LE', dump, 1, true)
    assert.matches('DATASPACE  SIMPLE { ( 2, 3, 2, 2 ) / ( 2, 3, 2, 2 ) }', dump, 1, true)
    assert.matches('ATTRIBUTE "index"', dump, 1, true)
    assert.matches('H5T_STD_I64LE', dump, 1, true)
    assert.matches('"TRUE"             1;', dump, 1, true)
    assert.matches('H5T_STD_I8LE', dump, 1, true)
    -- index of zlast/affine/W is 2 (0-based creation order)
    local h2 = io.popen('h5dump -a /zlast/affine/W/index ' .. path)
    local idx = h2:read('*a')
    h2:close()
    assert.matches('%(0%): 2', idx)
  end)

  it('saves a given table of name = Variable, and refuses what is not one', function()
    nn.clear_parameters()
    local a, b = nn.Variable({ 2 }, { need_grad = true }), nn.Variable({ 1, 3 })
    a.d, b.d = 1.5, -2
    local path = dir .. '/table.h5'
    nn.save_parameters(path, { zb = b, a = a })
    nn.load_parameters(path)
    local p = nn.get_parameters { grad_only = false }
    assert.same({ 'a', 'zb' }, p:keys())
    assert.same({ 1.5, 1.5 }, p.a.d:flat())
    assert.same({ 1, 3 }, p.zb.shape)
    assert.is_true(p.a.need_grad)
    assert.is_false(p.zb.need_grad)
    for _, bad in ipairs { { { a }, 'got a list of 1 values' }, { { a = 1 }, "'a' is not a Variable" },
                           { a, 'got a Variable' } } do
      local ok, err = pcall(nn.save_parameters, path, bad[1])
      assert.is_false(ok)
      assert.matches('nn.save_parameters: ' .. bad[2], err:gsub('expected [^,]*, ', ''), 1, true)
    end
    nn.clear_parameters()
  end)

  it('loads under the current scope, creating or overwriting', function()
    make_params()
    local path = dir .. '/scoped.h5'
    nn.save_parameters(path)
    nn.clear_parameters()
    nn.parameter_scope('net', function() nn.load_parameters(path) end)
    assert.same({ 'net/conv1/conv/W', 'net/conv1/conv/b', 'net/zlast/affine/W', 'net/bn1/bn/mean' },
                nn.get_parameters({ grad_only = false }):keys())
  end)

  it('a parameter whose saved shape differs is an error and changes nothing', function()
    make_params()
    local path = dir .. '/shape.h5'
    nn.save_parameters(path)
    nn.clear_parameters()
    local b = nn.get_parameter_or_create('conv1/conv/b', { 3 }, I.ConstantInitializer(9))
    local ok, err = pcall(nn.load_parameters, path)
    assert.is_false(ok)
    assert.matches("parameter 'conv1/conv/b' has shape {2}", err, 1, true)
    assert.matches('{3} here', err, 1, true)
    assert.same({ 9, 9, 9 }, b.d:flat())
    assert.equal(1, #nn.get_parameters { grad_only = false })
  end)

  it('missing, truncated and foreign files are clear errors', function()
    local ok, err = pcall(nn.load_parameters, dir .. '/does-not-exist.h5')
    assert.is_false(ok)
    assert.matches('does not exist', err, 1, true)
    make_params()
    nn.save_parameters(dir .. '/full.h5')
    local data = read_all(dir .. '/full.h5')
    local f = io.open(dir .. '/trunc.h5', 'wb'); f:write(data:sub(1, 600)); f:close()
    ok, err = pcall(nn.load_parameters, dir .. '/trunc.h5')
    assert.is_false(ok)
    assert.matches('not an HDF5 file', err, 1, true)
    f = io.open(dir .. '/text.h5', 'wb'); f:write('hello, not hdf5\n'); f:close()
    ok, err = pcall(nn.load_parameters, dir .. '/text.h5')
    assert.is_false(ok)
    assert.matches('not an HDF5 file', err, 1, true)
  end)

  it('errors name nn.save_parameters / nn.load_parameters', function()
    make_params()
    local ok, err = pcall(nn.save_parameters, dir .. '/no-such-dir/p.h5')
    assert.is_false(ok)
    assert.matches("^nn%.save_parameters: cannot write '" .. dir .. "/no%-such%-dir/p%.h5'", err)
    ok, err = pcall(nn.load_parameters, dir .. '/does-not-exist.h5')
    assert.is_false(ok)
    assert.matches('^nn%.load_parameters: .*does not exist', err)
  end)

  it('a solver state file is not loaded as parameters (W/mean, W/t, ...)', function()
    local S = require 'nnlua.solvers'
    nn.clear_parameters()
    local w = nn.get_parameter_or_create('fc/W', { 3 }, I.ConstantInitializer(1))
    local s = S.Adam(0.1)
    s:set_parameters(nn.get_parameters())
    w.g = 1
    s:update()
    local path = dir .. '/states-not-params.h5'
    s:save_states(path)
    nn.clear_parameters()
    local ok, err = pcall(nn.load_parameters, path)
    assert.is_false(ok)
    assert.matches("holds solver states ('fc/W/t' is a step count), not parameters", err, 1, true)
    assert.matches('load_states', err, 1, true)
    assert.equal(0, #nn.get_parameters { grad_only = false })
  end)

  it('a file whose names clash with the registry (a parameter used as a scope) loads nothing', function()
    make_params()
    local path = dir .. '/clash.h5'
    nn.save_parameters(path)
    nn.clear_parameters()
    local z = nn.get_parameter_or_create('zlast', { 2 }, I.ConstantInitializer(7))
    local ok, err = pcall(nn.load_parameters, path)
    assert.is_false(ok)
    assert.matches("cannot create 'zlast/affine/W': 'zlast' is a parameter, not a scope", err, 1, true)
    assert.matches('nothing was loaded', err, 1, true)
    assert.same({ 'zlast' }, nn.get_parameters({ grad_only = false }):keys())
    assert.same({ 7, 7 }, z.d:flat())
  end)

  it('a failed save leaves the previous file intact', function()
    make_params()
    local path = dir .. '/keep.h5'
    nn.save_parameters(path)
    local original = read_all(path)
    -- an impossible parameter name makes the save fail after the file was opened for writing
    local bad = nn.get_parameters { grad_only = false }
    bad['a/W'] = nn.Variable({ 1 })
    bad['a/W/x'] = nn.Variable({ 1 })
    local ok, err = pcall(nn.save_parameters, path, bad)
    assert.is_false(ok)
    assert.matches("'a/W'", err, 1, true)
    assert.equal(original, read_all(path))
    local h = io.popen('ls ' .. dir .. ' | grep -c tmp- || true')
    assert.equal('0', h:read('*l'))
    h:close()
  end)

  it("reads files with int32 index/need_grad and float64 data (NNabla's C++ writer)", function()
    -- spec/fixtures/cpp_layout.h5 was written with h5py: int32 attributes, creation order
    -- fc2, fc1, bn (not alphabetical), one float64 dataset.
    nn.clear_parameters()
    nn.load_parameters('spec/fixtures/cpp_layout.h5')
    local p = nn.get_parameters { grad_only = false }
    assert.same({ 'fc2/affine/W', 'fc1/affine/b', 'bn/mean' }, p:keys())
    assert.same({ { 0, 1, 2 }, { 3, 4, 5 } }, p['fc2/affine/W'].d:totable())
    assert.same({ 0.5, -0.5 }, p['fc1/affine/b'].d:flat())
    assert.same({ { 1, 2 } }, p['bn/mean'].d:totable())
    assert.is_false(p['bn/mean'].need_grad)
    assert.is_true(p['fc1/affine/b'].need_grad)
  end)

  it('save_states checks its lists even with no parameters (state names missing)', function()
    -- nl_h5_save_states read state_names[k] when n was 0 and state_names NULL: a crash.
    local ffi = require 'ffi'
    local C = nn.lib.C
    assert.equal(-1, C.nl_h5_save_states(dir .. '/nostates.h5', 0, nil, nil, nil, nil, 2, nil, nil))
    assert.matches('missing names', ffi.string(C.nl_last_error()), 1, true)
    assert.is_nil(io.open(dir .. '/nostates.h5', 'rb'))
  end)

  it('files with flipped bytes give errors or load, and never crash the process', function()
    make_params()
    local path = dir .. '/fuzz-src.h5'
    nn.save_parameters(path)
    local data = read_all(path)
    math.randomseed(12345)
    local outcomes = { ok = 0, err = 0 }
    for _ = 1, 150 do
      local bytes = data
      for _ = 1, 3 do
        local k = math.random(1, #bytes)
        bytes = bytes:sub(1, k - 1) .. string.char(math.random(0, 255)) .. bytes:sub(k + 1)
      end
      local f = io.open(dir .. '/fuzz.h5', 'wb'); f:write(bytes); f:close()
      nn.clear_parameters()
      local ok, err = pcall(nn.load_parameters, dir .. '/fuzz.h5')
      if ok then outcomes.ok = outcomes.ok + 1
      else
        outcomes.err = outcomes.err + 1
        assert.matches('load_parameters', err, 1, true)
      end
    end
    assert.equal(150, outcomes.ok + outcomes.err)
    assert.is_true(outcomes.err > 0)
  end)
end)
