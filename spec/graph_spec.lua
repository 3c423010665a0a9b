-- Graph semantics (NNabla's): shapes at build time, forward order, clear_buffer,
-- accumulation, fan-out, need_grad, unlinking, visit, auto_forward and no_grad.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'

local function close(a, b, tol) T.assert_close(a, b, tol or 1e-6, tol or 1e-6, 'values') end

describe('static graphs', function()
  it('infer shapes when they are built, before anything is computed', function()
    local x = nn.Variable({ 4, 3 })
    local y = F.tanh(x * 2 + 1)
    assert.same({ 4, 3 }, y.shape)
    assert.equal(12, y.size)
    assert.equal(2, y.ndim)
    assert.equal('tanh', y.parent.name)
  end)

  it('forward computes in topological order and backward gives d/dx', function()
    local x = nn.Variable.from({ 0.5, -1, 2 }, { need_grad = true })
    local y = F.sigmoid(x) * x          -- y = x * s(x)
    local loss = F.sum and nil
    y:forward()
    local s = function(v) return 1 / (1 + math.exp(-v)) end
    close(y.d:flat(), { 0.5 * s(0.5), -1 * s(-1), 2 * s(2) }, 1e-6)
    x.grad:zero()
    y:backward { grad = 1 }
    local d = function(v) return s(v) + v * s(v) * (1 - s(v)) end
    close(x.g:flat(), { d(0.5), d(-1), d(2) }, 1e-5)
  end)

  it('accumulates leaf gradients across backward calls; zero_grad resets them', function()
    local x = nn.Variable.from({ 1, 2, 3 }, { need_grad = true })
    local y = x * 3
    y:forward()
    x.grad:zero()
    y:backward { grad = 1 }
    close(x.g:flat(), { 3, 3, 3 })
    y:backward { grad = 1 }
    close(x.g:flat(), { 6, 6, 6 })
    x.grad:zero()
    y:backward { grad = 1 }
    close(x.g:flat(), { 3, 3, 3 })
  end)

  it('sums the gradients of a variable that fans out (no split node)', function()
    local x = nn.Variable.from({ 1, 2 }, { need_grad = true })
    local h = x * 2                      -- intermediate used three times
    local y = h * h + F.tanh(h) + h      -- dy/dh = 2h + (1 - tanh^2 h) + 1
    y:forward()
    x.grad:zero()
    y:backward { grad = 1 }
    local function g(v)
      local hv = 2 * v
      local t = math.tanh(hv)
      return 2 * (2 * hv + (1 - t * t) + 1)
    end
    close(x.g:flat(), { g(1), g(2) }, 1e-5)
  end)

  it('propagates need_grad as the OR of the inputs and stops at need_grad = false', function()
    local a = nn.Variable({ 2 }, { need_grad = true })
    local b = nn.Variable({ 2 })
    assert.is_true((a + b).need_grad)
    assert.is_false((b * 2).need_grad)
    a.d = { 1, 2 }; b.d = { 3, 4 }
    local y = a * b
    y:forward()
    a.grad:zero()
    b.g = { 7, 7 }
    y:backward { grad = 1 }
    close(a.g:flat(), { 3, 4 })
    close(b.g:flat(), { 7, 7 })           -- untouched
  end)

  it('clear_buffer frees intermediate data but keeps leaves, persistent variables and the output', function()
    local x = nn.Variable.from({ 1, 2, 3 })
    local h1 = x * 2
    local h2 = h1 + 1
    h2.persistent = true
    local y = F.tanh(h2 * 3)
    local mem_before = nn.memory().in_use
    y:forward { clear_buffer = true }
    close(y.d:flat(), { math.tanh(9), math.tanh(15), math.tanh(21) }, 1e-6)
    -- cleared intermediates read back as zeros (their storage is gone)
    close(h1.d:flat(), { 0, 0, 0 })
    close(h2.d:flat(), { 3, 5, 7 })
    close(x.d:flat(), { 1, 2, 3 })
    assert.is_true(nn.memory().in_use >= 0 and mem_before >= 0)
  end)

  it('clear_no_need_grad keeps what backward needs and gives the same gradients', function()
    local x = nn.Variable.from({ 0.1, 0.2, 0.3 }, { need_grad = true })
    local y = F.tanh(F.sigmoid(x * 2) + 1)
    y:forward { clear_no_need_grad = true }
    x.grad:zero()
    y:backward { grad = 1 }
    local x2 = nn.Variable.from({ 0.1, 0.2, 0.3 }, { need_grad = true })
    local y2 = F.tanh(F.sigmoid(x2 * 2) + 1)
    y2:forward()
    x2.grad:zero()
    y2:backward { grad = 1 }
    close(x.g:flat(), x2.g:flat(), 1e-6)
  end)

  it('backward with clear_buffer still gives correct leaf gradients', function()
    local x = nn.Variable.from({ 0.5, 1.5 }, { need_grad = true })
    local y = F.tanh(x * x)
    y:forward()
    x.grad:zero()
    y:backward { grad = 1, clear_buffer = true }
    local g = function(v) local t = math.tanh(v * v) return (1 - t * t) * 2 * v end
    close(x.g:flat(), { g(0.5), g(1.5) }, 1e-5)
  end)

  it('backward grad= accepts a number, a table and an NdArray; grad=false uses .g', function()
    local x = nn.Variable.from({ 1, 2 }, { need_grad = true })
    local y = x * 5
    y:forward()
    x.grad:zero()
    y:backward { grad = { 1, 2 } }
    close(x.g:flat(), { 5, 10 })
    x.grad:zero()
    y:backward { grad = nn.NdArray.from({ 2, 0 }) }
    close(x.g:flat(), { 10, 0 })
    x.grad:zero()
    y.g = { 1, 1 }
    y:backward { grad = false }
    close(x.g:flat(), { 5, 5 })
  end)

  it('get_unlinked_variable shares arrays and cuts the graph', function()
    local x = nn.Variable.from({ 1, 2 }, { need_grad = true })
    local h = x * 2
    local u = h:get_unlinked_variable { need_grad = true }
    assert.is_nil(u.parent)
    local y = u * 3
    h:forward()
    y:forward()
    close(y.d:flat(), { 6, 12 })
    x.grad:zero()
    u.grad:zero()
    y:backward { grad = 1 }
    close(u.g:flat(), { 3, 3 })
    close(h.g:flat(), { 3, 3 })          -- the same grad array
    close(x.g:flat(), { 0, 0 })          -- did not flow past the cut
    h:backward { grad = false }          -- continue backprop from the unlinked point
    close(x.g:flat(), { 6, 6 })
  end)

  it('visit calls a function for every node in forward order', function()
    local x = nn.Variable({ 2 })
    local y = F.tanh(F.sigmoid(x) + 1)
    local names = {}
    y:visit(function(f) names[#names + 1] = f.name end)
    assert.same({ 'sigmoid', 'add_scalar', 'tanh' }, names)
  end)

  it('keeps working when a sibling output of a multi-output function is dropped', function()
    local x = nn.Variable.from({ { 1, 2 }, { 3, 4 } }, { need_grad = true })
    local _, b = F.split(x, 1)
    local y = b * 2
    collectgarbage(); collectgarbage()
    y:forward()
    close(y.d:flat(), { 6, 8 })
    x.grad:zero()
    y:backward { grad = 1 }
    close(x.g:flat(), { 0, 0, 2, 2 })
  end)

  it('frees a graph when its output is dropped', function()
    collectgarbage(); collectgarbage()
    local before = nn.memory().in_use
    do
      local x = nn.Variable({ 1000 })
      local y = F.tanh(x * 2)
      y:forward()
    end
    collectgarbage(); collectgarbage()
    assert.equal(before, nn.memory().in_use)
  end)

  it('frees a chain of 400000 nodes without overflowing the C stack', function()
    -- Releasing the output used to free the graph by recursion (var -> parent node ->
    -- its input -> ...): a chain this long (a loss summed over many steps) crashed.
    local ffi = require 'ffi'
    local C = nn.lib.C
    local id = C.nl_function_lookup('add_scalar')
    local nargs = C.nl_function_n_args(id)
    local args = ffi.new('nl_arg[?]', nargs)
    for k = 0, nargs - 1 do args[k].n = -2 end
    local x = C.nl_var_new(1, ffi.new('int64_t[1]', { 1 }), 1)
    local inp, out = ffi.new('nl_var *[1]'), ffi.new('nl_var *[1]')
    local cur = x
    for _ = 1, 400000 do
      inp[0] = cur
      assert.equal(1, C.nl_apply(id, 1, inp, args, nargs, 0, out, 1))
      if cur ~= x then C.nl_var_release(cur) end
      cur = out[0]
    end
    C.nl_var_release(cur)
    C.nl_var_release(x)
  end)
end)

describe('dynamic graphs', function()
  it('auto_forward computes as the graph is built and gives the same numbers and gradients', function()
    local xs = { 0.3, -0.7, 1.1 }
    local x1 = nn.Variable.from(xs, { need_grad = true })
    local y1 = F.tanh(x1 * x1 + F.sigmoid(x1))
    y1:forward()
    x1.grad:zero()
    y1:backward { grad = 1 }
    local x2 = nn.Variable.from(xs, { need_grad = true })
    local y2 = nn.auto_forward(function() return F.tanh(x2 * x2 + F.sigmoid(x2)) end)
    close(y2.d:flat(), y1.d:flat(), 1e-7)
    x2.grad:zero()
    y2:backward { grad = 1 }
    close(x2.g:flat(), x1.g:flat(), 1e-7)
  end)

  it('set_auto_forward switches the mode and auto_forward restores it', function()
    assert.is_false(nn.get_auto_forward())
    nn.set_auto_forward(true)
    local y = nn.Variable.from({ 2 }) * 3
    nn.set_auto_forward(false)
    close(y.d:flat(), { 6 })
    pcall(nn.auto_forward, function() error('inside') end)
    assert.is_false(nn.get_auto_forward())
    local ok, err = pcall(nn.auto_forward, 'yes')
    assert.is_false(ok)
    assert.matches('nn.auto_forward: expected a function to run with auto-forward on, or true/false, got string', err, 1, true)
    ok, err = pcall(nn.no_grad, 3)
    assert.is_false(ok)
    assert.matches('nn.no_grad: expected a function to run without gradients, got number', err, 1, true)
    assert.is_false(nn.get_auto_forward())
  end)

  it('no_grad builds outputs without need_grad and returns fn results', function()
    local x = nn.Variable.from({ 1 }, { need_grad = true })
    local y, z = nn.no_grad(function() return x * 2, 5 end)
    assert.is_false(y.need_grad)
    assert.equal(5, z)
    local w = nn.no_grad(function() return nn.auto_forward(function() return x * 4 end) end)
    assert.is_nil(w.parent)
    close(w.d:flat(), { 4 })
    assert.is_true((x * 2).need_grad)
  end)
end)

describe('graph misuse', function()
  it('forward on a leaf is an error', function()
    local ok, err = pcall(function() nn.Variable({ 2 }):forward() end)
    assert.is_false(ok)
    assert.matches('no parent function', err, 1, true)
  end)
  it('backward from a non-scalar without grad is an error naming the shape', function()
    local x = nn.Variable({ 2, 3 }, { need_grad = true })
    local y = x * 2
    y:forward()
    local ok, err = pcall(function() y:backward() end)
    assert.is_false(ok)
    assert.matches('shape {2, 3}', err, 1, true)
  end)
  it('unknown options to forward/backward are errors', function()
    local y = nn.Variable({ 1 }) * 2
    local ok, err = pcall(function() y:forward { clear_bufer = true } end)
    assert.is_false(ok)
    assert.matches("unknown option 'clear_bufer'", err, 1, true)
  end)
  it('assigning data of the wrong size is an error naming both shapes', function()
    local x = nn.Variable({ 2, 2 })
    local ok, err = pcall(function() x.d = nn.NdArray.zeros({ 3 }) end)
    assert.is_false(ok)
    assert.matches('shape {3}', err, 1, true)
    assert.matches('{2, 2}', err, 1, true)
    ok, err = pcall(function() x.d = { 1, 2, 3 } end)
    assert.is_false(ok)
  end)
  it('a shape too long to print is cut short with "..." in the message', function()
    -- nl_shape_str wrote past its 160-byte buffer for 8 long dimensions (the message
    -- then lost its closing brace; AddressSanitizer: stack-buffer-overflow).
    local ffi = require 'ffi'
    local C = nn.lib.C
    local s = ffi.new('int64_t[8]')
    for i = 0, 6 do s[i] = 100000000000000000LL end
    s[7] = -9223372036854775807LL - 1
    assert.is_true(C.nl_var_new(8, s, 0) == nil)
    local msg = ffi.string(C.nl_last_error())
    assert.matches('shape {100000000000000000, ', msg, 1, true)
    assert.matches(', ...} has a negative dimension', msg, 1, true)
  end)

  it('bad shapes for nn.Variable are errors', function()
    assert.has_error(function() nn.Variable({ 2, -1 }) end)
    assert.has_error(function() nn.Variable(3) end)
    assert.has_error(function() nn.Variable({ 1, 1, 1, 1, 1, 1, 1, 1, 1 }) end)
  end)
  it('backward on a graph whose forward never ran is an error, not gradients from zeros', function()
    local x = nn.Variable.from({ 1, 2 }, { need_grad = true })
    local y = F.sum(F.tanh(x))
    x.g = 0
    local ok, err = pcall(function() y:backward() end)
    assert.is_false(ok)
    assert.matches('Variable:backward: the variable of shape {} has no data; run forward first', err, 1, true)
    close(x.g:flat(), { 0, 0 })           -- nothing was written
    y:forward()
    y:backward()
    local d = function(v) local t = math.tanh(v) return 1 - t * t end
    close(x.g:flat(), { d(1), d(2) }, 1e-6)
    -- a leaf still says it is a leaf
    ok, err = pcall(function() nn.Variable({ 2 }):backward { grad = 1 } end)
    assert.is_false(ok)
    assert.matches('leaf', err, 1, true)
  end)
  it('need_grad of intermediates follows the inputs at each run, unless set on them', function()
    local dtanh = function(v) local t = math.tanh(v) return 1 - t * t end
    local x = nn.Variable.from({ 1, 2 })             -- built without need_grad
    local h = F.tanh(x)
    local y = F.sum(h * 3)
    assert.is_false(h.need_grad)
    x.need_grad = true
    y:forward()
    assert.is_true(h.need_grad)
    y:backward()
    close(x.g:flat(), { 3 * dtanh(1), 3 * dtanh(2) }, 1e-6)
    -- set on an intermediate: kept (no gradient through h)
    local w = nn.Variable.from({ 0.5, -1 }, { need_grad = true })
    local q = F.sum(h * w)
    h.need_grad = false
    x.g, w.g = 0, 0
    q:forward()
    q:backward()
    close(x.g:flat(), { 0, 0 })
    close(w.g:flat(), { math.tanh(1), math.tanh(2) }, 1e-6)
    -- made under nn.no_grad: stays without gradients
    local u = nn.no_grad(function() return F.sum(F.tanh(x)) end)
    x.g = 0
    u:forward()
    u:backward()
    close(x.g:flat(), { 0, 0 })
    -- and switched off again on the leaf: nothing flows
    local x2 = nn.Variable.from({ 1 }, { need_grad = true })
    local y2 = F.sum(F.tanh(x2) * 2)
    x2.need_grad = false
    x2.g = 0
    y2:forward()
    y2:backward()
    close(x2.g:flat(), { 0 })
  end)
  it('backward refuses data that forward{clear_buffer} freed instead of reading zeros', function()
    local x = nn.Variable.from({ 1, 2 }, { need_grad = true })
    local h = F.tanh(x)
    local y = F.sum(h * h)
    y:forward { clear_buffer = true }
    local ok, err = pcall(function() y:backward() end)
    assert.is_false(ok)
    assert.matches('backward: mul2: the data of input 1 (made by tanh) is gone', err, 1, true)
    y:forward()
    x.g = 0
    y:backward { clear_buffer = true }
    local g = function(v) local t = math.tanh(v) return 2 * t * (1 - t * t) end
    close(x.g:flat(), { g(1), g(2) }, 1e-6)
    -- backward{clear_buffer} freed them too: a second backward needs a forward first
    ok, err = pcall(function() y:backward() end)
    assert.is_false(ok)
    assert.matches('is gone', err, 1, true)
    -- clear_no_need_grad keeps what backward reads
    y:forward { clear_no_need_grad = true }
    x.g = 0
    y:backward()
    close(x.g:flat(), { g(1), g(2) }, 1e-6)
  end)
  it('bad options and field values are errors naming the method', function()
    local x = nn.Variable.from({ 1, 2 }, { need_grad = true })
    local function fails(fn, msg)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      assert.matches(msg, err, 1, true)
    end
    fails(function() x:get_unlinked_variable { neeed_grad = false } end,
          "Variable:get_unlinked_variable: unknown option 'neeed_grad'")
    assert.is_false(x:get_unlinked_variable { need_grad = false }.need_grad)
    assert.is_true(x.need_grad)
    fails(function() nn.Variable({ 2 }, 'need_grad') end, 'nn.Variable: options must be a table')
    fails(function() nn.Variable({ math.huge }) end, 'nn.Variable: shape entry inf at position 1 of {inf}')
    fails(function() x.name = {} end, 'Variable.name: a name is a string, got table')
    fails(function() (x * 2):visit(3) end, 'Variable:visit: expected a function')
    fails(function() x[{ { 1 } }] = 5 end, 'Variable: assigning to a slice')
    fails(function() x:backward { grad = { 1, 2, 3 } } end, 'graph_spec')   -- points at the caller
  end)
  it('a NULL variable or function pointer prints as NULL instead of crashing', function()
    local ffi = require 'ffi'
    assert.equal('Variable(NULL)', tostring(ffi.cast('nl_var *', nil)))
    assert.equal('Function(NULL)', tostring(ffi.cast('nl_func *', nil)))
  end)
  it('unknown fields are errors', function()
    local ok, err = pcall(function() return nn.Variable({ 1 }).shpe end)
    assert.is_false(ok)
    assert.matches("no field 'shpe'", err, 1, true)
  end)
end)
