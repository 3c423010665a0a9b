-- nnlua.profiler.GraphProfiler (NNabla's nnabla.utils.profiler): one timed entry per function
-- in graph order, backward only where an input needs a gradient, the whole forward,
-- backward and update, parameters and solver states put back after timing the update, the
-- printed table and the CSV file, and clear errors.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local PF = require 'nnlua.parametric_functions'
local S = require 'nnlua.solvers'
local profiler = require 'nnlua.profiler'

local function net()
  nn.clear_parameters()
  nn.seed(4)
  local x = nn.Variable.from(nn.NdArray.randn({ 16, 1, 6, 6 }))
  local t = nn.Variable.from(nn.NdArray.rand({ 16, 1 }, 0, 3):floor())
  local h = F.relu(PF.convolution(x, 2, { 3, 3 }, { name = 'c' }))
  local y = PF.affine(h, 3, { name = 'fc' })
  return F.mean(F.softmax_cross_entropy(y, t))
end

describe('profiler.GraphProfiler', function()
  it('times every function alone, the whole graph and the update, and restores the solver', function()
    local loss = net()
    local solver = S.Momentum(0.1, 0.9)
    solver:set_parameters(nn.get_parameters())
    loss:forward()
    loss:backward()
    solver:update()   -- a state to keep
    local before = {}
    for name, p in nn.get_parameters():items() do before[name] = p.d:flat() end
    local m_before = solver:get_states()['c/conv/W'].pstate.m:flat()
    local p = profiler.GraphProfiler(loss, { solver = solver, n_run = 5 })
    local r = p:run()
    assert.equal(r, p.result)
    local names = {}
    for i, e in ipairs(r.functions) do names[i] = e.name end
    assert.same({ 'convolution', 'relu', 'affine', 'softmax_cross_entropy', 'mean' }, names)
    for _, e in ipairs(r.functions) do
      assert.is_true(e.forward > 0 and e.forward < 1, e.name .. ' forward time')
      assert.is_true(e.backward > 0 and e.backward < 1, e.name .. ' backward time')
      assert.equal('cpu', e.backend)
      assert.is_true(e.runs >= 1 and e.runs <= 5)
    end
    assert.same({ { 16, 1, 6, 6 }, { 2, 1, 3, 3 }, { 2 } }, r.functions[1].inputs)
    assert.same({ { 16, 2, 4, 4 } }, r.functions[1].outputs)
    assert.is_true(r.forward_all > 0 and r.backward_all > 0 and r.update > 0)
    for name, prm in nn.get_parameters():items() do assert.same(before[name], prm.d:flat(), name .. ' restored') end
    assert.same(m_before, solver:get_states()['c/conv/W'].pstate.m:flat())
    -- the table and the CSV
    local out = {}
    p:print_result({ write = function(_, ...) for _, s in ipairs { ... } do out[#out + 1] = s end end })
    local text = table.concat(out)
    assert.matches('GraphProfiler: 5 functions, up to 5 runs each, times in ms', text, 1, true)
    assert.matches('softmax_cross_entropy', text, 1, true)
    assert.matches('{16, 1, 6, 6} {2, 1, 3, 3} {2} -> {16, 2, 4, 4}', text, 1, true)
    assert.matches('whole graph: forward [%d.]+, backward [%d.]+, solver update [%d.]+ ms', text)
    os.execute('mkdir -p spec/tmp')
    p:write_csv('spec/tmp/profile.csv')
    local f = assert(io.open('spec/tmp/profile.csv'))
    local lines = {}
    for l in f:lines() do lines[#lines + 1] = l end
    f:close()
    assert.equal('index,function,backend,forward_ms,backward_ms,inputs,outputs', lines[1])
    assert.matches('^1,convolution,cpu,[%d.e-]+,[%d.e-]+,"{16, 1, 6, 6} {2, 1, 3, 3} {2}","{16, 2, 4, 4}"$', lines[2])
    assert.matches('^,update,,', lines[#lines])
  end)

  it('has no backward for a graph without gradients, and refuses bad arguments', function()
    local x = nn.Variable.from({ 1, 2, 3 })
    local y = F.sum(F.tanh(x))
    local r = profiler.GraphProfiler(y, { n_run = 3, time_scale = 'u' }):run()
    assert.is_nil(r.functions[1].backward)
    assert.is_nil(r.backward_all)
    assert.is_nil(r.update)
    local function fails(f, msg)
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches(msg, err, 1, true)
    end
    fails(function() profiler.GraphProfiler(3) end, 'profiler.GraphProfiler: expected the Variable at the root of a graph, got number')
    fails(function() profiler.GraphProfiler(x) end, 'has no parent function (a leaf)')
    fails(function() profiler.GraphProfiler(y, { n_run = 0 }) end, 'n_run must be a positive integer, got 0')
    fails(function() profiler.GraphProfiler(y, { nrun = 3 }) end, "unknown option 'nrun'")
    fails(function() profiler.GraphProfiler(y, { time_scale = 'h' }) end, "time_scale must be 's', 'm' or 'u'")
    fails(function() profiler.GraphProfiler(y, { solver = 5 }) end, 'solver must be a solver')
    fails(function() profiler.GraphProfiler(y):print_result() end, 'GraphProfiler:print_result: nothing measured yet; call run() first')
  end)
end)
