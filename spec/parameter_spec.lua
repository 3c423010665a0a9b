-- Parameter scopes, the registry, PF naming/initializers, and the ordered dictionary.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local PF = require 'nnlua.parametric_functions'
local I = require 'nnlua.initializer'

describe('parameter scopes', function()
  before_each(function() nn.clear_parameters() end)

  it('parameter_scope runs fn inside the scope, nests, and returns its results', function()
    local a, b = nn.parameter_scope('outer', function()
      return nn.parameter_scope('inner', function()
        nn.get_parameter_or_create('W', { 2, 3 })
        return 1, 2
      end)
    end)
    assert.equal(1, a); assert.equal(2, b)
    nn.parameter_scope('x/y', function() nn.get_parameter_or_create('b', { 3 }) end)
    assert.same({ 'outer/inner/W', 'x/y/b' }, nn.get_parameters():keys())
    -- 'a/b' equals nesting
    local p1 = nn.parameter_scope('x/y', function() return nn.get_parameter_or_create('b') end)
    local p2 = nn.parameter_scope('x', function() return nn.parameter_scope('y', function() return nn.get_parameter_or_create('b') end) end)
    assert.is_true(p1 == p2)
  end)

  it('get_parameters is ordered by creation, relative to the current scope, with grad_only', function()
    nn.parameter_scope('net', function()
      nn.get_parameter_or_create('z', { 1 })
      nn.get_parameter_or_create('a', { 1 }, nil, false)
      nn.get_parameter_or_create('m', { 1 })
    end)
    local all = nn.get_parameters { grad_only = false }
    assert.equal(3, #all)
    assert.same({ 'net/z', 'net/a', 'net/m' }, all:keys())
    assert.same({ 'net/z', 'net/m' }, nn.get_parameters():keys())
    local inner = nn.parameter_scope('net', function() return nn.get_parameters { grad_only = false } end)
    assert.same({ 'z', 'a', 'm' }, inner:keys())
    local seen = {}
    for k, v in all:items() do seen[#seen + 1] = k .. ':' .. tostring(v.need_grad) end
    assert.same({ 'net/z:true', 'net/a:false', 'net/m:true' }, seen)
    assert.is_true(all['net/a'] == all:values()[2])
  end)

  it('get_parameter_or_create initializes once and checks the shape of existing ones', function()
    local p = nn.get_parameter_or_create('c', { 2, 2 }, I.ConstantInitializer(3))
    assert.same({ 3, 3, 3, 3 }, p.d:flat())
    assert.is_true(p.need_grad)
    local q = nn.get_parameter_or_create('c', { 2, 2 }, I.ConstantInitializer(5))
    assert.same({ 3, 3, 3, 3 }, q.d:flat())
    local ok, err = pcall(nn.get_parameter_or_create, 'c', { 4 })
    assert.is_false(ok)
    assert.matches("parameter 'c' exists with shape {2, 2}, asked for {4}", err, 1, true)
  end)

  it('clear_parameters empties the registry', function()
    nn.get_parameter_or_create('a', { 1 })
    nn.clear_parameters()
    assert.equal(0, #nn.get_parameters())
  end)

  it('seed makes initializers reproducible', function()
    nn.seed(7)
    local a = I.UniformInitializer(1)({ 5 }):flat()
    nn.seed(7)
    local b = I.UniformInitializer(1)({ 5 }):flat()
    assert.same(a, b)
    for _, v in ipairs(a) do assert.is_true(v >= -1 and v <= 1) end
  end)

  it('bad scope names are errors', function()
    assert.has_error(function() nn.parameter_scope('', function() end) end)
    assert.has_error(function() nn.parameter_scope('/abs', function() end) end)
    assert.has_error(function() nn.parameter_scope('a//b', function() end) end)
  end)
end)

describe('parametric functions', function()
  before_each(function() nn.clear_parameters() end)

  it('PF.affine creates affine/W (in, out) with Glorot-uniform values and zero affine/b', function()
    nn.seed(1)
    local x = nn.Variable({ 64, 1, 8, 8 })
    local y = nn.parameter_scope('affine1', function() return PF.affine(x, 10) end)
    assert.same({ 64, 10 }, y.shape)
    local params = nn.get_parameters()
    assert.same({ 'affine1/affine/W', 'affine1/affine/b' }, params:keys())
    assert.same({ 64, 10 }, params['affine1/affine/W'].shape)
    assert.same({ 10 }, params['affine1/affine/b'].shape)
    local lim = math.sqrt(6 / (64 + 10))
    local w = params['affine1/affine/W'].d
    assert.is_true(w:max() <= lim and w:min() >= -lim)
    assert.is_true(w:max() > 0.8 * lim and w:min() < -0.8 * lim)
    assert.equal(0, params['affine1/affine/b'].d:sum())
  end)

  it('PF options: name scope, with_bias, fix_parameters', function()
    local x = nn.Variable({ 4, 3 })
    PF.affine(x, 5, { name = 'fc', with_bias = false })
    assert.same({ 'fc/affine/W' }, nn.get_parameters():keys())
    local y = PF.affine(x, 5, { name = 'fixed', fix_parameters = true })
    assert.is_false(y.need_grad)
    local ok, err = pcall(PF.affine, x, 5, { nmae = 'oops' })
    assert.is_false(ok)
    assert.matches("unknown option 'nmae'", err, 1, true)
  end)

  it('PF.convolution creates conv/W (out, in/group, k...) and conv/b', function()
    local x = nn.Variable({ 2, 4, 8, 8 })
    local y = PF.convolution(x, 6, { 3, 3 }, { pad = { 1, 1 }, stride = { 2, 2 }, name = 'c1' })
    assert.same({ 2, 6, 4, 4 }, y.shape)
    local p = nn.get_parameters()
    assert.same({ 'c1/conv/W', 'c1/conv/b' }, p:keys())
    assert.same({ 6, 4, 3, 3 }, p['c1/conv/W'].shape)
    local lim = math.sqrt(6 / (9 * 4 + 9 * 6))
    assert.is_true(p['c1/conv/W'].d:max() <= lim)
  end)

  it('PF.batch_normalization creates bn/beta, gamma (need_grad) and mean, var (not)', function()
    local x = nn.Variable({ 2, 3, 4, 4 })
    local y = PF.batch_normalization(x, { name = 'bn1' })
    assert.same({ 2, 3, 4, 4 }, y.shape)
    local p = nn.get_parameters { grad_only = false }
    assert.same({ 'bn1/bn/beta', 'bn1/bn/gamma', 'bn1/bn/mean', 'bn1/bn/var' }, p:keys())
    for _, k in ipairs(p:keys()) do assert.same({ 1, 3, 1, 1 }, p[k].shape) end
    assert.same({ 0, 0, 0 }, p['bn1/bn/beta'].d:flat())
    assert.same({ 1, 1, 1 }, p['bn1/bn/gamma'].d:flat())
    assert.same({ 0, 0, 0 }, p['bn1/bn/mean'].d:flat())
    assert.same({ 1, 1, 1 }, p['bn1/bn/var'].d:flat())
    assert.is_true(p['bn1/bn/beta'].need_grad)
    assert.is_false(p['bn1/bn/mean'].need_grad)
    assert.same({ 'bn1/bn/beta', 'bn1/bn/gamma' }, nn.get_parameters():keys())
  end)
end)
