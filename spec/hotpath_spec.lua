-- The hot path of training (DESIGN.md, "Speed"; issue 5): a step on an existing static graph
-- (x.d, t.d = batch; forward; zero_grad; backward; weight_decay; update; loss.d:item())
-- reaches the system allocator only during its first step, and the engine's optimized
-- kernel paths (batched convolution lowering, pooling and softmax fast paths) agree with the
-- plain ones.
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local PF = require 'nnlua.parametric_functions'
local S = require 'nnlua.solvers'
local td = require 'tiny_digits'
local C = nn.lib.C

local function allocs() return tonumber(C.nl_alloc_count()) end

-- The tutorial's MLP and CNN (tutorials/by_examples.lua), batch 64.
local function mlp(x)
  return nn.parameter_scope('mlp', function()
    local h = x
    for hid, hsize in ipairs { 16, 32, 16 } do
      nn.parameter_scope('affine' .. hid, function() h = F.tanh(PF.affine(h, hsize)) end)
    end
    return nn.parameter_scope('classifier', function() return PF.affine(h, 10) end)
  end)
end

local function cnn(x)
  return nn.parameter_scope('cnn', function()
    local c1, c2, fc3
    nn.parameter_scope('conv1', function()
      c1 = F.tanh(PF.batch_normalization(PF.convolution(x, 4, { 3, 3 }, { pad = { 1, 1 }, stride = { 2, 2 } })))
    end)
    nn.parameter_scope('conv2', function()
      c2 = F.tanh(PF.batch_normalization(PF.convolution(c1, 8, { 3, 3 }, { pad = { 1, 1 } })))
      c2 = F.average_pooling(c2, { 2, 2 })
    end)
    nn.parameter_scope('fc3', function() fc3 = F.tanh(PF.affine(c2, 32)) end)
    return nn.parameter_scope('classifier', function() return PF.affine(fc3, 10) end)
  end)
end

-- Runs the tutorial's training loop on batches taken from the digits iterator beforehand
-- (the iterator itself makes fresh arrays every step) and returns the system allocations
-- of steps 2..steps and the losses.
local function train(net, lr, steps)
  nn.clear_parameters()
  nn.seed(0)
  local data = td.data_iterator_tiny_digits(td.load_digits { n_class = 10 },
                                            { batch_size = 64, shuffle = true })
  local batches = {}
  for i = 1, 16 do batches[i] = { data:next() } end
  local x = nn.Variable({ 64, 1, 8, 8 })
  local t = nn.Variable({ 64, 1 })
  local loss = F.mean(F.softmax_cross_entropy(net(x), t))
  local solver = S.Sgd(lr)
  solver:set_parameters(nn.get_parameters())
  local losses, before = {}, nil
  for i = 1, steps do
    if i == 2 then before = allocs() end
    local b = batches[(i - 1) % #batches + 1]
    x.d, t.d = b[1], b[2]
    loss:forward()
    solver:zero_grad()
    loss:backward()
    solver:weight_decay(1e-5)
    solver:update()
    losses[i] = loss.d:item()
  end
  return allocs() - before, losses
end

describe('the training hot path', function()
  it('the tutorial MLP loop allocates nothing after its first step', function()
    local n, losses = train(mlp, 1e-2, 300)
    assert.equal(0, n)
    assert.is_true(losses[300] == losses[300] and losses[300] < losses[1])
  end)

  it('the tutorial CNN loop allocates nothing after its first step', function()
    local n, losses = train(cnn, 1e-1, 200)
    assert.equal(0, n)
    assert.is_true(losses[200] == losses[200] and losses[200] < losses[1])
  end)

  it('a loop fed by the data iterator stops allocating once the cache has warmed up', function()
    nn.clear_parameters()
    nn.seed(0)
    local data = td.data_iterator_tiny_digits(td.load_digits { n_class = 10 },
                                              { batch_size = 64, shuffle = true })
    local x = nn.Variable({ 64, 1, 8, 8 })
    local t = nn.Variable({ 64, 1 })
    local loss = F.mean(F.softmax_cross_entropy(mlp(x), t))
    local solver = S.Sgd(1e-2)
    solver:set_parameters(nn.get_parameters())
    local function step()
      x.d, t.d = data:next()
      loss:forward()
      solver:zero_grad()
      loss:backward()
      solver:update()
    end
    -- Batches die between collections; freed, they go to the allocator's cache, which the
    -- next batches come from: once it holds as many as a collection frees, allocations
    -- stop. When the collector runs depends on the whole Lua heap, so here it runs every
    -- 100 steps.
    local function steps(n)
      for i = 1, n do
        step()
        if i % 100 == 0 then collectgarbage() end
      end
    end
    local a0 = allocs()
    steps(1000)
    local early = allocs() - a0
    steps(1000)
    local a1 = allocs()
    steps(1000)
    local late = allocs() - a1
    assert.is_true(early > 0 and late == 0, ('allocations: %d early, %d late'):format(early, late))
  end)
end)

describe('NdArray views in a loop', function()
  it('release their array: reshape/row views of fresh arrays leave no memory behind', function()
    local function work()
      local a = nn.NdArray.zeros({ 16, 64 })
      a:fill(1)
      local v = a:reshape({ -1 })
      local r = a[2]
      local e = a:eq(a):reshape({ 64, 16 })
      return v.size + r.size + e.size
    end
    for _ = 1, 20 do work() end
    collectgarbage(); collectgarbage()
    local base = tonumber(C.nl_bytes_in_use())
    for _ = 1, 400 do work() end
    collectgarbage(); collectgarbage()
    -- a leaked reference keeps 4 KiB (or more) per call: 1.6 MiB here
    local grown = tonumber(C.nl_bytes_in_use()) - base
    assert.is_true(grown < 400 * 1024, 'bytes still in use: ' .. grown)
  end)
end)

-- ---- kernel paths ---------------------------------------------------------------------------

local function max_rel_diff(a, b)
  local pa, pb = a:ptr(), b:ptr()
  local m, scale = 0, 1e-6
  for i = 0, a.size - 1 do scale = math.max(scale, math.abs(pb[i])) end
  for i = 0, a.size - 1 do m = math.max(m, math.abs(pa[i] - pb[i])) end
  return m / scale
end

-- Convolution of a batch (processed in chunks) against each sample alone (one chunk of
-- one sample: no gather/scatter), forward and backward (dx, dW, db).
local function check_conv_chunks(xshape, oc, k, opts)
  nn.seed(1)
  local n = xshape[1]
  local cg = xshape[2] / (opts.group or 1)
  local xd = nn.NdArray.randn(xshape)
  local wd = nn.NdArray.randn({ oc, cg, k[1], k[2] })
  local bd = nn.NdArray.randn({ oc })
  local x = nn.Variable.from(xd, { need_grad = true })
  local w = nn.Variable.from(wd, { need_grad = true })
  local b = nn.Variable.from(bd, { need_grad = true })
  local y = F.convolution(x, w, b, opts)
  y:forward()
  local dy = nn.NdArray.randn(y.shape)
  x.g, w.g, b.g = 0, 0, 0
  y:backward { grad = dy }
  local y_all, dx_all, dw_all, db_all = y.d:copy(), x.g:copy(), w.g:copy(), b.g:copy()
  local dw_sum, db_sum = nn.NdArray.zeros(w.shape), nn.NdArray.zeros(b.shape)
  local sshape = { 1 }
  for i = 2, #xshape do sshape[i] = xshape[i] end
  local w1 = nn.Variable.from(wd, { need_grad = true })
  local b1 = nn.Variable.from(bd, { need_grad = true })
  for s = 1, n do
    local xs = nn.Variable.from(xd[s]:reshape(sshape), { need_grad = true })
    local ys = F.convolution(xs, w1, b1, opts)
    ys:forward()
    assert.is_true(max_rel_diff(ys.d:reshape({ -1 }), y_all[s]:reshape({ -1 })) < 1e-5, 'forward, sample ' .. s)
    xs.g, w1.g, b1.g = 0, 0, 0
    ys:backward { grad = dy[s]:reshape(ys.shape) }
    assert.is_true(max_rel_diff(xs.g:reshape({ -1 }), dx_all[s]:reshape({ -1 })) < 1e-5, 'dx, sample ' .. s)
    dw_sum = dw_sum + w1.g
    db_sum = db_sum + b1.g
  end
  assert.is_true(max_rel_diff(dw_sum, dw_all) < 1e-4, 'dW')
  assert.is_true(max_rel_diff(db_sum, db_all) < 1e-4, 'db')
end

describe('convolution lowered over chunks of samples', function()
  it('agrees with one sample at a time: gathered through a table, last chunk shorter', function()
    -- 4x16x16, 5x5, stride 2, pad 2: 40 samples a chunk, so 45 = 40 + 5
    check_conv_chunks({ 45, 4, 16, 16 }, 6, { 5, 5 }, { pad = { 2, 2 }, stride = { 2, 2 } })
  end)

  it('agrees with one sample at a time: wide rows copied as runs, groups', function()
    -- 4x40x40, 3x3, pad 1, group 2: 4 samples a chunk, so 14 = 4 + 4 + 4 + 2
    check_conv_chunks({ 14, 4, 40, 40 }, 6, { 3, 3 }, { pad = { 1, 1 }, group = 2 })
  end)

  it('agrees with one sample at a time: the tutorial shapes, dilation', function()
    check_conv_chunks({ 64, 1, 8, 8 }, 4, { 3, 3 }, { pad = { 1, 1 }, stride = { 2, 2 } })
    check_conv_chunks({ 9, 3, 9, 9 }, 4, { 3, 3 }, { pad = { 2, 2 }, dilation = { 2, 2 } })
  end)
end)

describe('convolution columns kept from forward for backward', function()
  it('are used only while x is unchanged: backward after x.d changed reads the new x', function()
    nn.seed(4)
    local xa, xb = nn.NdArray.randn({ 8, 3, 9, 9 }), nn.NdArray.randn({ 8, 3, 9, 9 })
    local w = nn.Variable.from(nn.NdArray.randn({ 5, 3, 3, 3 }), { need_grad = true })
    local x = nn.Variable.from(xa)
    local y = F.convolution(x, w, nil, { pad = { 1, 1 } })
    local dy = nn.NdArray.randn(y.shape)
    y:forward()
    x.d = xb                                         -- changed after forward
    w.g = 0
    y:backward { grad = dy }
    local stale = w.g:copy()
    -- reference: a fresh graph on xb
    local x2 = nn.Variable.from(xb)
    local w2 = nn.Variable.from(w.d, { need_grad = true })
    local y2 = F.convolution(x2, w2, nil, { pad = { 1, 1 } })
    y2:forward()
    w2.g = 0
    y2:backward { grad = dy }
    assert.is_true(max_rel_diff(stale, w2.g) < 1e-5)
    -- and a second backward on the unchanged graph accumulates the same again
    y2:backward { grad = dy }
    assert.is_true(max_rel_diff(w2.g, stale * 2) < 1e-5)
  end)
end)

describe('pooling and softmax fast paths', function()
  it('2x2 stride-2 pooling matches a plain reference, odd sizes included', function()
    nn.seed(2)
    local N, Cc, H, W = 2, 3, 7, 5
    local xd = nn.NdArray.randn({ N, Cc, H, W })
    local p = xd:ptr()
    local function at(n, c, i, j) return p[((n * Cc + c) * H + i) * W + j] end
    local OH, OW = math.floor(H / 2), math.floor(W / 2)
    for _, fn in ipairs { 'max_pooling', 'average_pooling' } do
      local x = nn.Variable.from(xd, { need_grad = true })
      local y = F[fn](x, { 2, 2 })
      y:forward()
      local dy = nn.NdArray.randn(y.shape)
      x.g = 0
      y:backward { grad = dy }
      local py, pdx, pdy = y.d:ptr(), x.g:ptr(), dy:ptr()
      local ref_dx = {}
      for k = 0, xd.size - 1 do ref_dx[k] = 0 end
      for n = 0, N - 1 do
        for c = 0, Cc - 1 do
          for i = 0, OH - 1 do
            for j = 0, OW - 1 do
              local o = ((n * Cc + c) * OH + i) * OW + j
              local cells = { { 2 * i, 2 * j }, { 2 * i, 2 * j + 1 }, { 2 * i + 1, 2 * j }, { 2 * i + 1, 2 * j + 1 } }
              local want, best = 0, nil
              if fn == 'max_pooling' then
                want = -math.huge
                for _, cc in ipairs(cells) do
                  local v = at(n, c, cc[1], cc[2])
                  if v > want then want, best = v, cc end
                end
                local k = ((n * Cc + c) * H + best[1]) * W + best[2]
                ref_dx[k] = ref_dx[k] + pdy[o]
              else
                for _, cc in ipairs(cells) do
                  want = want + at(n, c, cc[1], cc[2])
                  local k = ((n * Cc + c) * H + cc[1]) * W + cc[2]
                  ref_dx[k] = ref_dx[k] + pdy[o] / 4
                end
                want = want / 4
              end
              assert.is_true(math.abs(py[o] - want) < 1e-5, fn)
            end
          end
        end
      end
      for k = 0, xd.size - 1 do assert.is_true(math.abs(pdx[k] - ref_dx[k]) < 1e-5, fn .. ' backward') end
    end
  end)

  it('2x2 max pooling resolves ties and NaNs as the general path does', function()
    -- 1 map of 9x11 (general path: ignore_border = false clips the last windows) against
    -- its 8x8 top-left corner (fast path); values from {0, 1, NaN} make ties everywhere
    local H, W = 9, 11
    local big = nn.NdArray.new({ 1, 1, H, W })
    local pb = big:ptr(C.NL_WRITE)
    local vals = { 0, 1, 0 / 0, 1, 0, 0, 1 }
    for i = 0, H * W - 1 do pb[i] = vals[(i * 5 + math.floor(i / 3)) % #vals + 1] end
    local small = nn.NdArray.new({ 1, 1, 8, 8 })
    local ps = small:ptr(C.NL_WRITE)
    for i = 0, 7 do for j = 0, 7 do ps[i * 8 + j] = pb[i * W + j] end end
    local xb = nn.Variable.from(big, { need_grad = true })
    local xs = nn.Variable.from(small, { need_grad = true })
    local yb = F.max_pooling(xb, { 2, 2 }, { ignore_border = false })
    local ys = F.max_pooling(xs, { 2, 2 })
    yb:forward(); ys:forward()
    local gb = nn.NdArray.zeros(yb.shape)
    local pg = gb:ptr(C.NL_READWRITE)
    local OWb = yb.shape[4]
    for i = 0, 3 do for j = 0, 3 do pg[i * OWb + j] = 1 + i * 4 + j end end
    local gs = nn.NdArray.new(ys.shape)
    local pgs = gs:ptr(C.NL_WRITE)
    for k = 0, 15 do pgs[k] = 1 + k end
    xb.g, xs.g = 0, 0
    yb:backward { grad = gb }
    ys:backward { grad = gs }
    local pyb, pys, pdb, pds = yb.d:ptr(), ys.d:ptr(), xb.g:ptr(), xs.g:ptr()
    for i = 0, 3 do
      for j = 0, 3 do
        local a, b = pyb[i * OWb + j], pys[i * 4 + j]
        assert.is_true(a == b or (a ~= a and b ~= b), 'forward window ' .. i .. ',' .. j)
      end
    end
    for i = 0, 7 do for j = 0, 7 do assert.equal(pdb[i * W + j], pds[i * 8 + j]) end end
  end)

  it('softmax, log_softmax and softmax_cross_entropy: the last axis agrees with a first axis', function()
    nn.seed(3)
    local R, K = 7, 12
    local xd = nn.NdArray.randn({ R, K }) * 10
    local xtd = nn.NdArray.new({ K, R })             -- the transpose: classes on axis 1
    local p, pt = xd:ptr(), xtd:ptr(C.NL_WRITE)
    for r = 0, R - 1 do for k = 0, K - 1 do pt[k * R + r] = p[r * K + k] end end
    local function transposed(a)                     -- (K, R) -> (R, K)
      local out = nn.NdArray.new({ R, K })
      local pa, po = a:ptr(), out:ptr(C.NL_WRITE)
      for r = 0, R - 1 do for k = 0, K - 1 do po[r * K + k] = pa[k * R + r] end end
      return out
    end
    local x = nn.Variable.from(xd, { need_grad = true })
    local xt = nn.Variable.from(xtd, { need_grad = true })
    for _, fn in ipairs { 'softmax', 'log_softmax' } do
      local y, yt = F[fn](x), F[fn](xt, { axis = 1 })
      y:forward(); yt:forward()
      assert.is_true(max_rel_diff(y.d, transposed(yt.d)) < 1e-6, fn)
      local dy = nn.NdArray.randn({ R, K })
      local dyt = nn.NdArray.new({ K, R })
      local pd, pdt = dy:ptr(), dyt:ptr(C.NL_WRITE)
      for r = 0, R - 1 do for k = 0, K - 1 do pdt[k * R + r] = pd[r * K + k] end end
      x.g, xt.g = 0, 0
      y:backward { grad = dy }
      yt:backward { grad = dyt }
      assert.is_true(max_rel_diff(x.g, transposed(xt.g)) < 1e-5, fn .. ' backward')
    end
    local labels = { 0, 3, 11, 5, 5, 1, 7 }
    local t = nn.Variable({ R, 1 })
    local tt = nn.Variable({ 1, R })
    for r = 1, R do t.d:ptr(C.NL_READWRITE)[r - 1] = labels[r]; tt.d:ptr(C.NL_READWRITE)[r - 1] = labels[r] end
    local l, lt = F.softmax_cross_entropy(x, t), F.softmax_cross_entropy(xt, tt, { axis = 1 })
    l:forward(); lt:forward()
    assert.is_true(max_rel_diff(l.d:reshape({ R }), lt.d:reshape({ R })) < 1e-6)
    x.g, xt.g = 0, 0
    l:backward { grad = 1 }
    lt:backward { grad = 1 }
    assert.is_true(max_rel_diff(x.g, transposed(xt.g)) < 1e-5)
  end)
end)

describe('dense products (nl_sgemm)', function()
  local ffi = require 'ffi'
  pcall(ffi.cdef, 'int openblas_get_num_threads(void); int omp_get_max_threads(void);')

  -- y = x W through affine against a plain triple loop, forward and both gradients.
  local function check_affine(m, k, n)
    nn.seed(3)
    x = nn.Variable({ m, k }, true)
    local w = nn.Variable({ k, n }, true)
    x.d = nn.NdArray.randn({ m, k }); w.d = nn.NdArray.randn({ k, n })
    local y = F.affine(x, w)
    y:forward()
    local px, pw, py = x.d:ptr(), w.d:ptr(), y.d:ptr()
    local worst = 0
    for i = 0, m - 1 do
      for j = 0, n - 1 do
        local s = 0
        for l = 0, k - 1 do s = s + px[i * k + l] * pw[l * n + j] end
        worst = math.max(worst, math.abs(py[i * n + j] - s) / (1 + math.abs(s)))
      end
    end
    assert.is_true(worst < 1e-4, ('affine %dx%dx%d forward: %g'):format(m, k, n, worst))
    x.g, w.g = 0, 0
    y:backward { grad = 1 }   -- dy = ones: dx[i][l] = sum_j W[l][j], dW[l][j] = sum_i x[i][l]
    local gx, gw = x.g:ptr(), w.g:ptr()
    for l = 0, k - 1 do
      local sw, sx = 0, 0
      for j = 0, n - 1 do sw = sw + pw[l * n + j] end
      for i = 0, m - 1 do sx = sx + px[i * k + l] end
      assert.is_true(math.abs(gx[l] - sw) < 1e-3 * (1 + math.abs(sw)), 'dx')
      assert.is_true(math.abs(gw[l * n] - sx) < 1e-3 * (1 + math.abs(sx)), 'dW')
    end
  end

  it('narrow or small products (run on one thread) and wide ones (threaded) agree with a plain loop', function()
    check_affine(128, 300, 10)    -- few output columns: one thread
    check_affine(16, 64, 40)      -- little work: one thread
    check_affine(64, 300, 256)    -- y, dx threaded by OpenBLAS; dW (300 rows) split by rows
    check_affine(333, 70, 200)    -- y and dx split into row blocks, the last one shorter
  end)

  it('put OpenBLAS back to the engine thread count after a product on one thread', function()
    pcall(ffi.cdef, 'void openblas_set_num_threads(int);')
    local before = C.omp_get_max_threads()
    C.openblas_set_num_threads(2)   -- the OpenMP build sets OpenMP's count along with its own
    check_affine(128, 300, 10)
    local blas, omp = C.openblas_get_num_threads(), C.omp_get_max_threads()
    C.openblas_set_num_threads(before)
    assert.are.equal(2, blas)
    assert.are.equal(2, omp)
  end)
end)
