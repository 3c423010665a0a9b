-- Solvers against hand-computed trajectories: every solver runs four steps with changing
-- gradients (some parameters skipped on some steps, a weight_decay call on step 2, a
-- learning-rate change on step 3) and is compared, parameter by parameter and state by
-- state, with a plain-Lua double-precision implementation of NNabla's update rule written
-- here from its formula. Also: defaults and argument handling, fused weight decay, and
-- save_states / load_states (NNabla's HDF5 layout, round trips, h5py-written files, bad
-- files).
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local PF = require 'nnlua.parametric_functions'
local S = require 'nnlua.solvers'
local C = nn.lib.C

local dir = 'spec/tmp'
os.execute('mkdir -p ' .. dir)

-- NNabla's arguments, in NNabla's order, with NNabla's defaults (solvers.yaml and the
-- constructors in src/nbla/solver/*), the learning-rate field, the state names, and
-- whether weight decay is fused into the update.
local DEFAULTS = {
  Sgd = { { 'lr', 1e-3 } },
  SgdW = { { 'lr', 1e-3 }, { 'momentum', 0.9 }, { 'wd', 1e-4 } },
  Momentum = { { 'lr', 1e-3 }, { 'momentum', 0.9 } },
  Nesterov = { { 'lr', 1e-3 }, { 'momentum', 0.9 } },
  Adagrad = { { 'lr', 1e-2 }, { 'eps', 1e-8 } },
  Adadelta = { { 'lr', 1.0 }, { 'decay', 0.95 }, { 'eps', 1e-6 } },
  RMSprop = { { 'lr', 1e-3 }, { 'decay', 0.9 }, { 'eps', 1e-8 } },
  RMSpropGraves = { { 'lr', 1e-4 }, { 'decay', 0.95 }, { 'momentum', 0.9 }, { 'eps', 1e-4 } },
  Adam = { { 'alpha', 1e-3 }, { 'beta1', 0.9 }, { 'beta2', 0.999 }, { 'eps', 1e-8 } },
  AdamW = { { 'alpha', 1e-3 }, { 'beta1', 0.9 }, { 'beta2', 0.999 }, { 'eps', 1e-8 }, { 'wd', 1e-4 } },
  AMSGRAD = { { 'alpha', 1e-3 }, { 'beta1', 0.9 }, { 'beta2', 0.999 }, { 'eps', 1e-8 },
              { 'bias_correction', false } },
  AdaBound = { { 'alpha', 1e-3 }, { 'beta1', 0.9 }, { 'beta2', 0.999 }, { 'eps', 1e-8 },
               { 'final_lr', 0.1 }, { 'gamma', 0.001 } },
  Adamax = { { 'alpha', 2e-3 }, { 'beta1', 0.9 }, { 'beta2', 0.999 }, { 'eps', 1e-8 } },
  Lars = { { 'lr', 1e-3 }, { 'momentum', 0.9 }, { 'coefficient', 1e-3 }, { 'eps', 1e-6 } },
  Lamb = { { 'eta', 1e-3 }, { 'beta1', 0.9 }, { 'beta2', 0.999 }, { 'gamma_l', 0.0 }, { 'gamma_u', 10.0 },
           { 'eps', 1e-6 }, { 'bias_correction', false } },
}
local LR = { Adam = 'alpha', AdamW = 'alpha', AMSGRAD = 'alpha', AdaBound = 'alpha', Adamax = 'alpha',
             Lamb = 'eta' }
local STATES = {
  Sgd = {}, SgdW = { 'm' }, Momentum = { 'm' }, Nesterov = { 'm' }, Adagrad = { 'v' },
  Adadelta = { 'e_sqr_grad', 'e_sqr_delta' }, RMSprop = { 'v' }, RMSpropGraves = { 'n', 'g', 'd' },
  Adam = { 'mean', 'var' }, AdamW = { 'mean', 'var' }, AMSGRAD = { 'm', 'v', 'v_hat' },
  AdaBound = { 'mean', 'var' }, Adamax = { 'm', 'u' }, Lars = { 'v' }, Lamb = { 'mean', 'var' },
}
local FUSED = { SgdW = true, AdamW = true, Lars = true, Lamb = true }

-- ---- the reference update rules, in double precision ----------------------------------
-- h: hyperparameters (h[lr field] is the current learning rate, h.init its initial value);
-- w, g: lists (g already includes a non-fused weight decay); s: state lists; t: the
-- parameter's step count including this step; wd: the fused decay rate of this step.
-- Returns the gradient as the solver leaves it (Lars changes it).
local function sumsq(x) local s = 0 for i = 1, #x do s = s + x[i] * x[i] end return s end
local sqrt, max, min, abs = math.sqrt, math.max, math.min, math.abs

local R = {}
function R.Sgd(h, w, g) for i = 1, #w do w[i] = w[i] - h.lr * g[i] end end
function R.SgdW(h, w, g, s, _, wd)
  local m, decay = s.m, h.lr / h.init * wd
  for i = 1, #w do
    m[i] = h.momentum * m[i] + h.lr * g[i]
    w[i] = w[i] - m[i] - decay * w[i]
  end
end
function R.Momentum(h, w, g, s)
  for i = 1, #w do
    s.m[i] = h.momentum * s.m[i] + h.lr * g[i]
    w[i] = w[i] - s.m[i]
  end
end
function R.Nesterov(h, w, g, s)
  for i = 1, #w do
    local prev = s.m[i]
    s.m[i] = h.momentum * s.m[i] - h.lr * g[i]
    w[i] = w[i] - h.momentum * prev + (1 + h.momentum) * s.m[i]
  end
end
function R.Adagrad(h, w, g, s)
  for i = 1, #w do
    s.v[i] = s.v[i] + g[i] ^ 2
    w[i] = w[i] - h.lr * g[i] / (sqrt(s.v[i]) + h.eps)
  end
end
function R.Adadelta(h, w, g, s)
  local eg, ed, d = s.e_sqr_grad, s.e_sqr_delta, h.decay
  for i = 1, #w do
    eg[i] = d * eg[i] + (1 - d) * g[i] ^ 2
    local delta = sqrt((ed[i] + h.eps) / (eg[i] + h.eps)) * g[i]
    ed[i] = d * ed[i] + (1 - d) * delta ^ 2
    w[i] = w[i] - h.lr * delta
  end
end
function R.RMSprop(h, w, g, s)
  for i = 1, #w do
    s.v[i] = h.decay * s.v[i] + (1 - h.decay) * g[i] ^ 2
    w[i] = w[i] - h.lr * g[i] / (sqrt(s.v[i]) + h.eps)
  end
end
function R.RMSpropGraves(h, w, g, s)
  local r = h.decay
  for i = 1, #w do
    s.n[i] = r * s.n[i] + (1 - r) * g[i] ^ 2
    s.g[i] = r * s.g[i] + (1 - r) * g[i]
    s.d[i] = h.momentum * s.d[i] - h.lr * g[i] / sqrt(s.n[i] - s.g[i] ^ 2 + h.eps)
    w[i] = w[i] + s.d[i]
  end
end
local function adam_moments(h, g, m, v)
  for i = 1, #g do
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g[i]
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g[i] ^ 2
  end
end
local function alpha_t(h, t) return h.alpha * sqrt(1 - h.beta2 ^ t) / (1 - h.beta1 ^ t) end
function R.Adam(h, w, g, s, t)
  adam_moments(h, g, s.mean, s.var)
  local at = alpha_t(h, t)
  for i = 1, #w do w[i] = w[i] - at * s.mean[i] / (sqrt(s.var[i]) + h.eps) end
end
function R.AdamW(h, w, g, s, t, wd)
  adam_moments(h, g, s.mean, s.var)
  local at, decay = alpha_t(h, t), h.alpha / h.init * wd
  for i = 1, #w do w[i] = w[i] - at * s.mean[i] / (sqrt(s.var[i]) + h.eps) - decay * w[i] end
end
function R.AMSGRAD(h, w, g, s, t)
  adam_moments(h, g, s.m, s.v)
  local a = h.bias_correction and alpha_t(h, t) or h.alpha
  for i = 1, #w do
    s.v_hat[i] = max(s.v_hat[i], s.v[i])
    w[i] = w[i] - a * s.m[i] / (sqrt(s.v_hat[i]) + h.eps)
  end
end
function R.AdaBound(h, w, g, s, t)
  adam_moments(h, g, s.mean, s.var)
  local at, final = alpha_t(h, t), h.final_lr * h.alpha / h.init
  local lower, upper = final * (1 - 1 / (h.gamma * t + 1)), final * (1 + 1 / (h.gamma * t))
  for i = 1, #w do
    local eta = min(upper, max(at / (sqrt(s.var[i]) + h.eps), lower))
    w[i] = w[i] - eta * s.mean[i]
  end
end
function R.Adamax(h, w, g, s, t)
  local at = h.alpha / (1 - h.beta1 ^ t)
  for i = 1, #w do
    s.m[i] = h.beta1 * s.m[i] + (1 - h.beta1) * g[i]
    s.u[i] = max(h.beta2 * s.u[i], abs(g[i]))
    w[i] = w[i] - at * s.m[i] / (s.u[i] + h.eps)
  end
end
function R.Lars(h, w, g, s, _, wd)
  local gn, wn = sqrt(sumsq(g)), sqrt(sumsq(w))
  local x = gn + wd * wn
  if x < h.eps then x = x + h.eps end
  local lr = wn < h.eps and h.lr or h.lr * h.coefficient * wn / x
  local g2 = {}
  for i = 1, #w do
    g2[i] = g[i] + wd * w[i]
    s.v[i] = h.momentum * s.v[i] + lr * g2[i]
    w[i] = w[i] - s.v[i]
  end
  return g2
end
function R.Lamb(h, w, g, s, t, wd)
  adam_moments(h, g, s.mean, s.var)
  local c1 = h.bias_correction and 1 - h.beta1 ^ t or 1
  local c2 = h.bias_correction and 1 - h.beta2 ^ t or 1
  local r = {}
  for i = 1, #w do r[i] = (s.mean[i] / c1) / (sqrt(s.var[i] / c2) + h.eps) + wd * w[i] end
  local rn, wn = sqrt(sumsq(r)), sqrt(sumsq(w))
  wn = min(max(wn, h.gamma_l), h.gamma_u)
  local loc = rn > h.eps and wn / rn or 1
  for i = 1, #w do w[i] = w[i] - h.eta * loc * r[i] end
end

-- ---- helpers ----------------------------------------------------------------------------

-- Hyperparameters are float32 in the engine, as in NNabla (1 - 0.999f is not 0.001):
-- the reference uses the same rounded values and computes in double from there.
local f32buf = require('ffi').new('float[1]')
local function f32(x)
  if type(x) ~= 'number' then return x end
  f32buf[0] = x
  return f32buf[0]
end

local function resolve(name, args)
  local h, spec = {}, DEFAULTS[name]
  local n = #args
  local opts = type(args[n]) == 'table' and args[n] or nil
  if opts then n = n - 1 end
  for i, a in ipairs(spec) do
    local v = a[2]
    if i <= n and args[i] ~= nil then v = args[i] end
    if opts and opts[a[1]] ~= nil then v = opts[a[1]] end
    h[a[1]] = f32(v)
  end
  h.init = h[LR[name] or 'lr']
  return h
end

local function copy(t) local r = {} for i = 1, #t do r[i] = t[i] end return r end

local function assert_near(got, want, rtol, atol, what)
  assert.equal(#want, #got, what .. ': sizes')
  for i = 1, #want do
    local err = abs(got[i] - want[i])
    if not (err <= atol + rtol * abs(want[i])) then
      error(('%s: element %d is %.9g, expected %.9g (error %.3g)'):format(what, i, got[i], want[i], err), 2)
    end
  end
end

-- Three parameters of different shapes, filled with float-exact values.
local SHAPES = { { 'net/affine/W', { 2, 3 } }, { 'net/affine/b', { 3 } }, { 'other/u', { 2 } } }
local INIT = { { 0.5, -1.25, 2.0, 0.75, -0.5, 1.5 }, { 0.25, -0.125, 1.0 }, { -2.0, 0.375 } }

local function make_params()
  nn.clear_parameters()
  local ps = {}
  for k, e in ipairs(SHAPES) do
    ps[k] = nn.get_parameter_or_create(e[1], e[2])
    ps[k].d = nn.NdArray.from_flat(INIT[k], e[2])
  end
  return ps
end

-- Which parameters get a gradient on each step (b skipped on step 3, u on step 2).
local HAS_GRAD = { { true, true, true }, { true, true, false }, { true, false, true }, { true, true, true } }
local SCALE = { 1, 0.3, 2.5, 0.05 }
local function grad_values(step, k, n)
  local g = {}
  for i = 1, n do g[i] = math.sin(1.7 * step + 0.9 * i + k) * SCALE[step] * (1 + 0.5 * i) end
  return g
end

-- Runs steps from..to of the schedule on solver and (unless ref is nil) on the reference,
-- checking parameters after every step. step 2: weight_decay(0.03); step 3: the learning
-- rate halves before the update.
local function run_steps(name, solver, ps, ref, from, to, rtol)
  for step = from, to do
    solver:zero_grad()
    for k, p in ipairs(ps) do
      if HAS_GRAD[step][k] then p.g = nn.NdArray.from_flat(grad_values(step, k, p.size), p.shape) end
    end
    local rate = FUSED[name] and ref and ref.h.wd_default or 0
    if step == 2 then
      local before = {}
      for k, p in ipairs(ps) do before[k] = HAS_GRAD[step][k] and p.g:flat() end
      solver:weight_decay(0.03)
      rate = FUSED[name] and 0.03 or rate
      for k, p in ipairs(ps) do
        if before[k] then
          local want = before[k]
          if not FUSED[name] then
            local w = p.d:flat()
            for i = 1, #want do want[i] = want[i] + 0.03 * w[i] end
          end
          assert_near(p.g:flat(), want, 1e-6, 1e-7, name .. ' step 2 gradient after weight_decay')
        else
          assert.equal(1, C.nl_array_zeroing(C.nl_var_grad(p)))   -- still lazily zero
        end
      end
    end
    if step == 3 then
      solver:set_learning_rate(solver:learning_rate() * 0.5)
      if ref then ref.h[LR[name] or 'lr'] = ref.h[LR[name] or 'lr'] * 0.5 end
    end
    local grads = {}
    for k, p in ipairs(ps) do grads[k] = HAS_GRAD[step][k] and p.g:flat() end
    solver:update()
    if ref then
      for k, p in ipairs(ps) do
        local st = ref.state[k]
        if grads[k] then
          st.t = st.t + 1
          local g_after = R[name](ref.h, st.w, grads[k], st.s, st.t, rate) or grads[k]
          assert_near(p.g:flat(), g_after, 1e-6, 1e-7, ('%s step %d: gradient of %s after update'):format(
            name, step, SHAPES[k][1]))
        end
        assert_near(p.d:flat(), st.w, rtol, 1e-7, ('%s step %d: %s'):format(name, step, SHAPES[k][1]))
      end
    end
  end
end

local function new_reference(name, args)
  local h = resolve(name, args)
  h.wd_default = FUSED[name] and (h.wd or 0) or 0
  local state = {}
  for k = 1, #SHAPES do
    local s = {}
    for _, sname in ipairs(STATES[name]) do
      s[sname] = {}
      for i = 1, #INIT[k] do s[sname][i] = 0 end
    end
    state[k] = { t = 0, w = copy(INIT[k]), s = s }
  end
  return { h = h, state = state }
end

-- Hyperparameters for the trajectories: big enough steps that every term matters; some
-- positional, some by name, some mixed.
local CASES = {
  { 'Sgd', { 0.1 } },
  { 'SgdW', { 0.1, 0.8, { wd = 0.05 } } },
  { 'Momentum', { 0.1, 0.7 } },
  { 'Nesterov', { { lr = 0.1, momentum = 0.7 } } },
  { 'Adagrad', { 0.2 } },
  { 'Adadelta', { 0.5, 0.9, 1e-3 } },
  { 'RMSprop', { 0.05, 0.8 } },
  { 'RMSpropGraves', { 0.01, 0.9, 0.8, 1e-2 } },
  { 'Adam', { 0.1, 0.8, 0.9 } },
  { 'AdamW', { 0.1, 0.8, 0.9, 1e-8, 0.05 } },
  { 'AMSGRAD', { 0.1, 0.8, 0.9 } },
  { 'AMSGRAD', { 0.1, 0.8, 0.9, { bias_correction = true } } },
  { 'AdaBound', { 0.1, 0.8, 0.9, 1e-8, 0.1, 0.5 } },
  { 'Adamax', { 0.1, 0.8, 0.9 } },
  { 'Lars', { 0.5, 0.8, 0.02 } },
  { 'Lamb', { 0.1, 0.8, 0.9, 0.5, 3.0 } },
  { 'Lamb', { { eta = 0.1, bias_correction = true, gamma_u = 1.5 } } },
}

local function case_label(c)
  local parts = {}
  for _, a in ipairs(c[2]) do
    if type(a) == 'table' then
      local keys = {}
      for k in pairs(a) do keys[#keys + 1] = k end
      table.sort(keys)
      local kv = {}
      for _, k in ipairs(keys) do kv[#kv + 1] = k .. '=' .. tostring(a[k]) end
      parts[#parts + 1] = '{' .. table.concat(kv, ', ') .. '}'
    else
      parts[#parts + 1] = tostring(a)
    end
  end
  return c[1] .. '(' .. table.concat(parts, ', ') .. ')'
end

-- ---- specs -----------------------------------------------------------------------------

describe('solver trajectories against the formulas', function()
  for _, c in ipairs(CASES) do
    local name, args = c[1], c[2]
    it(case_label(c) .. ' follows its update rule for 4 steps (skips, weight decay, lr change)', function()
      local ps = make_params()
      local solver = S[name](unpack(args))
      solver:set_parameters(nn.get_parameters())
      local ref = new_reference(name, args)
      run_steps(name, solver, ps, ref, 1, 4, 1e-6)
      -- t per parameter: only steps with a gradient count
      local states = solver:get_states()
      assert.equal(4, states['net/affine/W'].t)
      assert.equal(3, states['net/affine/b'].t)
      assert.equal(3, states['other/u'].t)
      for k, e in ipairs(SHAPES) do
        for _, sname in ipairs(STATES[name]) do
          assert_near(states[e[1]].pstate[sname]:flat(), ref.state[k].s[sname], 2e-6, 1e-8,
                      ('%s state %s of %s'):format(name, sname, e[1]))
        end
      end
      -- fused weight decay is back to its default after the update
      if FUSED[name] then assert.equal(ref.h.wd_default, f32(solver.wd_rate)) end
    end)
  end
end)

describe('solver construction', function()
  it("has NNabla's defaults, signatures and learning-rate fields", function()
    for name, spec in pairs(DEFAULTS) do
      local s = S[name]()
      for _, a in ipairs(spec) do assert.equal(a[2], s[a[1]], name .. '.' .. a[1]) end
      local lr = LR[name] or 'lr'
      assert.equal(spec[1][2], s:learning_rate(), name)
      assert.equal(lr, spec[1][1])
      s:set_learning_rate(0.25)
      assert.equal(0.25, s[lr])
      assert.equal(0.25, s:learning_rate())
      assert.is_string(S._signatures[name])
      assert.matches('S.' .. name .. '(' .. spec[1][1] .. '=', S._signatures[name], 1, true)
    end
  end)

  it('takes arguments by position, by name, or both; rejects unknown names and wrong types', function()
    local a = S.Adam(0.01, 0.8, nil, 1e-6)
    local b = S.Adam { alpha = 0.01, beta1 = 0.8, eps = 1e-6 }
    local c = S.Adam(0.01, { beta1 = 0.8, eps = 1e-6 })
    for _, s in ipairs({ a, b, c }) do
      assert.equal(0.01, s.alpha); assert.equal(0.8, s.beta1)
      assert.equal(0.999, s.beta2); assert.equal(1e-6, s.eps)
    end
    assert.is_true(S.AMSGRAD { bias_correction = true }.bias_correction)
    local ok, err = pcall(S.Adam, { lr = 0.1 })
    assert.is_false(ok)
    assert.matches("unknown option 'lr'", err, 1, true)
    assert.matches('S.Adam(alpha=0.001', err, 1, true)
    ok, err = pcall(S.Momentum, 0.1, 0.9, 0.5)
    assert.is_false(ok)
    assert.matches('at most 2 arguments', err, 1, true)
    ok, err = pcall(S.Adam, 0.1, { alpha = 0.2 })
    assert.is_false(ok)
    assert.matches("'alpha' is given both", err, 1, true)
    ok, err = pcall(S.Adam, 'fast')
    assert.is_false(ok)
    assert.matches("'alpha' must be a number", err, 1, true)
    ok, err = pcall(S.AMSGRAD, { bias_correction = 1 })
    assert.is_false(ok)
    assert.matches("'bias_correction' must be a boolean", err, 1, true)
    ok = pcall(S.Lamb, { 0.1 })
    assert.is_false(ok)
  end)

  it('set_parameters takes a plain table of name = Variable (in name order) and rejects others', function()
    local w, b = nn.Variable({ 2, 3 }, { need_grad = true }), nn.Variable({ 3 }, { need_grad = true })
    w.d, b.d = 1, 2
    local s = S.Sgd(0.5)
    s:set_parameters({ w = w, b = b })
    assert.same({ 'b', 'w' }, s:get_parameters():keys())
    w.g, b.g = 2, 4
    s:update()
    assert.same({ 0, 0, 0, 0, 0, 0 }, w.d:flat())
    assert.same({ 0, 0, 0 }, b.d:flat())
    local function fails(arg, msg)
      local ok, err = pcall(s.set_parameters, s, arg)
      assert.is_false(ok)
      assert.matches(msg, err, 1, true)
    end
    fails({ w, b = b }, 'Sgd:set_parameters: expected the dictionary from nn.get_parameters()')
    fails({ w = w, b = 3 }, "Sgd:set_parameters: 'b' is not a Variable (got number)")
    fails(w, 'got a Variable')
    fails('w', 'got string')
    assert.same({ 'b', 'w' }, s:get_parameters():keys())   -- a refused call changes nothing
  end)

  it('set_parameters with reset = false replaces or retains states', function()
    local ps = make_params()
    local s = S.Momentum(0.1, 0.5)
    s:set_parameters(nn.get_parameters())
    s:zero_grad()
    for _, p in ipairs(ps) do p.g:fill(1) end
    s:update()
    local d = require('nnlua.parameter').OrderedDict()
    d['net/affine/b'] = ps[2]
    s:set_parameters(d, false, true)
    assert.equal(1, s:get_states()['net/affine/b'].t)
    s:set_parameters(d, false)
    assert.equal(0, s:get_states()['net/affine/b'].t)
    assert.same({ 0, 0, 0 }, s:get_states()['net/affine/b'].pstate.m:flat())
    assert.equal(3, #s:get_parameters())
    d['net/affine/b'] = nn.Variable({ 4 })
    assert.has_error(function() s:set_parameters(d, false, true) end)
    s:remove_parameters('net/affine/b')
    assert.same({ 'net/affine/W', 'other/u' }, s:get_parameters():keys())
  end)
end)

describe('fused weight decay', function()
  it('AdamW uses wd by default, a weight_decay rate for one update, then wd again', function()
    local ps = make_params()
    local s = S.AdamW(0.1, { wd = 0.2 })
    s:set_parameters(nn.get_parameters())
    assert.equal(0.2, s.wd_rate)
    s:zero_grad()
    ps[1].g:fill(0)
    local before = ps[1].g:flat()
    s:weight_decay(0.5)
    assert.same(before, ps[1].g:flat())       -- fused: the gradient is not touched
    assert.equal(0.5, s.wd_rate)
    s:update()                                -- g = 0: only the decay moves w
    local want = {}
    for i, v in ipairs(INIT[1]) do want[i] = v - 0.5 * v end
    assert_near(ps[1].d:flat(), want, 1e-6, 0, 'AdamW decay 0.5')
    assert.equal(0.2, s.wd_rate)
    s:zero_grad()
    ps[1].g:fill(0)
    s:set_learning_rate(0.05)                 -- eta_t = alpha / initial alpha = 0.5
    s:update()
    for i = 1, #want do want[i] = want[i] - 0.5 * 0.2 * want[i] end
    assert_near(ps[1].d:flat(), want, 1e-6, 0, 'AdamW default decay scaled by eta_t')
  end)

  it('SgdW, Lars and Lamb store the rate; Lars and Lamb default to 0; weight_decay(0) means none', function()
    for _, name in ipairs({ 'SgdW', 'Lars', 'Lamb' }) do
      local s = S[name]()
      s:set_parameters { w = nn.Variable { 2 } }   -- no gradient: update skips it
      assert.equal(name == 'SgdW' and 1e-4 or 0, s.wd_rate)
      s:weight_decay(0.3)
      assert.equal(0.3, s.wd_rate)
      s:update()
      assert.equal(name == 'SgdW' and 1e-4 or 0, s.wd_rate)
    end
    local ps = make_params()
    local s = S.SgdW(0.1, 0.9, 0.5)
    s:set_parameters(nn.get_parameters())
    s:zero_grad()
    ps[2].g:fill(0)
    s:weight_decay(0)
    s:update()
    assert.same(INIT[2], ps[2].d:flat())
  end)

  it('non-fused solvers add rate * w to the gradients that exist', function()
    local ps = make_params()
    local s = S.Adam()
    s:set_parameters(nn.get_parameters())
    s:zero_grad()
    ps[1].g:fill(1)
    s:weight_decay(0.5)
    local want = {}
    for i, v in ipairs(INIT[1]) do want[i] = 1 + 0.5 * v end
    assert_near(ps[1].g:flat(), want, 1e-7, 0, 'Adam weight_decay')
    assert.equal(1, C.nl_array_zeroing(C.nl_var_grad(ps[2])))
  end)
end)

describe('argument checks', function()
  it('hyperparameters must be finite and in range (NNabla takes them and trains to NaN)', function()
    local function fails(fn, msg)
      local ok, err = pcall(fn)
      assert.is_false(ok, msg)
      assert.matches(msg, err, 1, true)
    end
    fails(function() return S.Sgd(-0.1) end, "S.Sgd: 'lr' must be >= 0, got -0.1")
    fails(function() return S.Sgd(0 / 0) end, "S.Sgd: 'lr' must be a finite number, got nan")
    fails(function() return S.Adam(1e-3, 1.0) end, "S.Adam: 'beta1' must be in [0, 1), got 1")
    fails(function() return S.Adam { beta2 = -0.5 } end, "S.Adam: 'beta2' must be in [0, 1), got -0.5")
    fails(function() return S.Adam { eps = -1e-8 } end, "S.Adam: 'eps' must be >= 0")
    fails(function() return S.Momentum(0.1, -0.9) end, "S.Momentum: 'momentum' must be >= 0")
    fails(function() return S.RMSprop(0.1, 1.5) end, "S.RMSprop: 'decay' must be in [0, 1], got 1.5")
    fails(function() return S.Lamb { gamma_l = 2, gamma_u = 1 } end, "S.Lamb: 'gamma_u' (1) must be >= 'gamma_l' (2)")
    fails(function() return S.Adam(1 / 0) end, "S.Adam: 'alpha' must be a finite number, got inf")
    -- zero learning rates are fine, and step nothing
    local w = nn.Variable({ 2 }); w.d = 1
    local s = S.Adam(0)
    s:set_parameters { w = w }
    w.g = 1
    s:update()
    assert.same({ 1, 1 }, w.d:flat())
  end)

  it('AdamW, SgdW and AdaBound refuse an initial learning rate of 0 (their update divides by it: NaN weights)', function()
    for _, name in ipairs({ 'AdamW', 'SgdW', 'AdaBound' }) do
      local ok, err = pcall(S[name], 0)
      assert.is_false(ok, name)
      assert.matches("S." .. name .. ": '" .. (name == 'SgdW' and 'lr' or 'alpha') .. "' must be > 0 at construction, got 0", err, 1, true)
    end
    -- set to 0 later: the step and the decoupled decay (scaled by alpha / initial alpha) stop
    local w = nn.Variable({ 2 }); w.d = { 1, -2 }
    local s = S.AdamW(0.1, { wd = 0.5 })
    s:set_parameters { w = w }
    s:set_learning_rate(0)
    w.g = { 1, 1 }
    s:update()
    assert.same({ 1, -2 }, w.d:flat())
  end)

  it('set_learning_rate, weight_decay, clip_grad_by_norm and scale_grad refuse bad numbers and change nothing', function()
    local w = nn.Variable({ 2 }); w.d = { 1, 1 }
    local s = S.Sgd(0.1)
    s:set_parameters { w = w }
    w.g = { 3, 4 }
    local function fails(fn, msg)
      local ok, err = pcall(fn)
      assert.is_false(ok, msg)
      assert.matches(msg, err, 1, true)
      assert.equal(0.1, s:learning_rate())
      assert.same({ 3, 4 }, w.g:flat())
    end
    fails(function() s:set_learning_rate(-0.5) end, "Sgd:set_learning_rate: 'lr' must be >= 0, got -0.5")
    fails(function() s:set_learning_rate(0 / 0) end, "Sgd:set_learning_rate: 'lr' must be a finite number")
    fails(function() s:set_learning_rate('0.1') end, 'Sgd:set_learning_rate: expected a number, got string')
    -- a negative norm flipped the gradient (g * -1 / ||g||)
    fails(function() s:clip_grad_by_norm(-1) end, "Sgd:clip_grad_by_norm: 'clip_norm' must be >= 0, got -1")
    fails(function() s:clip_grad_by_norm(0 / 0) end, "Sgd:clip_grad_by_norm: 'clip_norm' must be a finite number")
    fails(function() s:weight_decay(-0.1) end, "Sgd:weight_decay: 'decay_rate' must be >= 0, got -0.1")
    fails(function() s:weight_decay(0 / 0) end, "Sgd:weight_decay: 'decay_rate' must be a finite number")
    fails(function() s:scale_grad(0 / 0) end, "Sgd:scale_grad: 'scale' must be a finite number")
    s:set_learning_rate(0)
    s:update()
    assert.same({ 1, 1 }, w.d:flat())
  end)

  it('update with no parameters is an error (set_parameters forgotten, or called before the graph existed)', function()
    local s = S.Sgd(0.1)
    local ok, err = pcall(s.update, s)
    assert.is_false(ok)
    assert.matches('Sgd:update: the solver has no parameters; call set_parameters', err, 1, true)
    nn.clear_parameters()
    s:set_parameters(nn.get_parameters())             -- before any PF call: empty
    ok, err = pcall(s.update, s)
    assert.is_false(ok)
    assert.matches('has no parameters', err, 1, true)
  end)

  it('one parameter under two names is refused (it was updated twice per step)', function()
    local w = nn.Variable({ 2 }); w.d = 1
    local s = S.Sgd(1)
    local ok, err = pcall(s.set_parameters, s, { w, w })
    assert.is_false(ok)
    assert.matches("Sgd:set_parameters: 'param1' and 'param2' are the same parameter", err, 1, true)
    ok, err = pcall(s.set_parameters, s, { a = w, b = w:get_unlinked_variable() })
    assert.is_false(ok)
    assert.matches("'a' and 'b' are the same parameter", err, 1, true)
    s:set_parameters { a = w }
    ok = pcall(s.set_parameters, s, { b = w }, false)
    assert.is_false(ok)
    s:set_parameters({ a = w }, false)                  -- replacing it under its own name is fine
    w.g = 1
    s:update()
    assert.same({ 0, 0 }, w.d:flat())                   -- one step of 1 * 1, not two
  end)

  it('remove_parameters takes a name or a list of names', function()
    local a, b = nn.Variable({ 1 }), nn.Variable({ 1 })
    local s = S.Sgd(1)
    s:set_parameters { a = a, b = b }
    for _, bad in ipairs({ 5, true }) do
      local ok, err = pcall(s.remove_parameters, s, bad)
      assert.is_false(ok)
      assert.matches('Sgd:remove_parameters: expected a name or a list of names, got ' .. type(bad), err, 1, true)
    end
    local ok, err = pcall(s.remove_parameters, s, { 'a', 3 })
    assert.is_false(ok)
    assert.matches('name 2 is a number', err, 1, true)
    assert.same({ 'a', 'b' }, s:get_parameters():keys())
    s:remove_parameters { 'a' }
    assert.same({ 'b' }, s:get_parameters():keys())
  end)
end)

describe('gradient utilities', function()
  it('clip_grad_by_norm works per tensor and 0 is a no-op', function()
    local ps = make_params()
    local s = S.Momentum()
    s:set_parameters(nn.get_parameters())
    ps[3].g = { 3, 4 }
    ps[2].g = { 0.1, 0, 0 }
    s:clip_grad_by_norm(0)
    assert.same({ 3, 4 }, ps[3].g:flat())
    s:clip_grad_by_norm(1)
    assert_near(ps[3].g:flat(), { 0.6, 0.8 }, 1e-7, 0, 'clipped')
    assert_near(ps[2].g:flat(), { 0.1, 0, 0 }, 1e-7, 0, 'below the norm: unchanged')
  end)
end)

describe('the training hot path', function()
  it('an Adam training step allocates nothing in the engine after the first step', function()
    nn.clear_parameters()
    nn.seed(1)
    local x = nn.Variable({ 8, 5 })
    local t = nn.Variable({ 8, 1 })
    local h = F.tanh(PF.affine(x, 7, { name = 'l1' }))
    local y = PF.affine(h, 3, { name = 'l2' })
    local loss = F.mean(F.softmax_cross_entropy(y, t))
    local s = S.Adam(0.01)
    s:set_parameters(nn.get_parameters())
    x.d = nn.NdArray.randn({ 8, 5 })
    t.d = nn.NdArray.from_flat({ 0, 1, 2, 0, 1, 2, 0, 1 }, { 8, 1 })
    local function step()
      loss:forward()
      s:zero_grad()
      loss:backward()
      s:weight_decay(1e-4)
      s:update()
    end
    step()
    local first = loss.d:item()
    collectgarbage()
    local count = C.nl_alloc_count()
    for _ = 1, 20 do step() end
    assert.equal(count, C.nl_alloc_count())
    assert.is_true(loss.d:item() < first)
    assert.equal(21, s:get_states()['l1/affine/W'].t)
  end)
end)

describe('solver state files', function()
  local function read_all(path)
    local f = assert(io.open(path, 'rb'))
    local s = f:read('*a')
    f:close()
    return s
  end

  for _, c in ipairs(CASES) do
    local name, args = c[1], c[2]
    it(case_label(c) .. ': save_states after 2 steps, load_states into a fresh solver, same steps 3-4', function()
      -- the original run
      local ps = make_params()
      local a = S[name](unpack(args))
      a:set_parameters(nn.get_parameters())
      run_steps(name, a, ps, nil, 1, 2)
      local path = dir .. '/states_' .. name .. '.h5'
      a:save_states(path)
      local mid = {}
      for k, p in ipairs(ps) do mid[k] = p.d:flat() end
      run_steps(name, a, ps, nil, 3, 4)
      local final = {}
      for k, p in ipairs(ps) do final[k] = p.d:flat() end
      -- a fresh solver on fresh parameters holding the step-2 values
      local qs = make_params()
      for k, q in ipairs(qs) do q.d = nn.NdArray.from_flat(mid[k], q.shape) end
      local b = S[name](unpack(args))
      b:set_parameters(nn.get_parameters())
      b:load_states(path)
      local sa, sb = a:get_states(), b:get_states()
      assert.equal(2, sb['net/affine/W'].t)
      assert.equal(1, sb['other/u'].t)
      run_steps(name, b, qs, nil, 3, 4)
      for k, q in ipairs(qs) do assert.same(final[k], q.d:flat(), name .. ' ' .. SHAPES[k][1]) end
      sb = b:get_states()
      for _, e in ipairs(SHAPES) do
        assert.equal(sa[e[1]].t, sb[e[1]].t)
        for _, sname in ipairs(STATES[name]) do
          assert.same(sa[e[1]].pstate[sname]:flat(), sb[e[1]].pstate[sname]:flat())
        end
      end
    end)
  end

  for _, c in ipairs(CASES) do
    local name, args = c[1], c[2]
    it(case_label(c) .. ': get_states after 2 steps, set_states into a fresh solver, same steps 3-4', function()
      local ps = make_params()
      local a = S[name](unpack(args))
      a:set_parameters(nn.get_parameters())
      run_steps(name, a, ps, nil, 1, 2)
      local snap = {}                                 -- get_states gives live views: copy them
      for pname, st in pairs(a:get_states()) do
        local pstate = {}
        for sname, arr in pairs(st.pstate) do pstate[sname] = arr:copy() end
        snap[pname] = { t = st.t, pstate = pstate }
      end
      local mid = {}
      for k, p in ipairs(ps) do mid[k] = p.d:flat() end
      run_steps(name, a, ps, nil, 3, 4)
      local qs = make_params()
      for k, q in ipairs(qs) do q.d = nn.NdArray.from_flat(mid[k], q.shape) end
      local b = S[name](unpack(args))
      b:set_parameters(nn.get_parameters())
      b:set_states(snap)
      assert.equal(2, b:get_states()['net/affine/W'].t)
      assert.equal(1, b:get_states()['other/u'].t)
      run_steps(name, b, qs, nil, 3, 4)
      for k, q in ipairs(qs) do assert.same(ps[k].d:flat(), q.d:flat(), name .. ' ' .. SHAPES[k][1]) end
    end)
  end

  it('set_states checks names, states, shapes and t before changing anything', function()
    local ps = make_params()
    local s = S.Adam(0.1)
    s:set_parameters(nn.get_parameters())
    for _, p in ipairs(ps) do p.g:fill(1) end
    s:update()
    local before = s:get_states()['other/u'].pstate.mean:flat()
    local function fails(states, msg)
      local ok, err = pcall(s.set_states, s, states)
      assert.is_false(ok)
      assert.matches(msg, err, 1, true)
      assert.same(before, s:get_states()['other/u'].pstate.mean:flat())
      assert.equal(1, s:get_states()['other/u'].t)
    end
    local good = { t = 5, pstate = { mean = { 1, 2 }, var = { 3, 4 } } }
    fails({ ['other/u'] = good, nope = good }, 'Adam:set_states: Set weight parameter for nope first')
    fails({ ['other/u'] = { t = 5, pstate = { mean = { 1, 2 } } } }, "parameter 'other/u' has no state 'var'")
    fails({ ['other/u'] = { t = 5, pstate = { mean = { 1, 2 }, var = { 3, 4 }, m = { 0, 0 } } } },
      "'m' of parameter 'other/u' is not a state of Adam (its states: mean, var)")
    fails({ ['other/u'] = { t = 5, pstate = { mean = { 1, 2, 3 }, var = { 3, 4 } } } },
      "state 'mean' of parameter 'other/u' has shape {3} but the parameter has shape {2}")
    fails({ ['other/u'] = { t = -1, pstate = good.pstate } }, "'t' of 'other/u' must be a non-negative integer")
    fails({ ['other/u'] = { t = 5, pstate = { mean = 'x', var = { 3, 4 } } } }, "state 'mean' of 'other/u' must be an NdArray")
    fails(7, 'Adam:set_states: expected a table')
    s:set_states({ ['other/u'] = good })
    assert.equal(5, s:get_states()['other/u'].t)
    assert.same({ 1, 2 }, s:get_states()['other/u'].pstate.mean:flat())
    assert.same({ 3, 4 }, s:get_states()['other/u'].pstate.var:flat())
    -- the values were copied: changing the source later changes nothing
    local src = nn.NdArray.from({ 7, 8 })
    s:set_states({ ['other/u'] = { t = 1, pstate = { mean = src, var = src } } })
    src:fill(0)
    assert.same({ 7, 8 }, s:get_states()['other/u'].pstate.mean:flat())
  end)

  it("writes NNabla's layout: a group per parameter with index, t and the states", function()
    local ps = make_params()
    local s = S.Adam(0.1)
    s:set_parameters(nn.get_parameters())
    run_steps('Adam', s, ps, nil, 1, 2)
    local path = dir .. '/adam_layout.h5'
    s:save_states(path)
    local h = io.popen('h5dump ' .. path)
    local dump = h:read('*a')
    h:close()
    assert.matches('GROUP "net"', dump, 1, true)
    assert.matches('GROUP "W"', dump, 1, true)
    assert.matches('DATASET "mean"', dump, 1, true)
    assert.matches('DATASET "var"', dump, 1, true)
    assert.matches('DATASET "t"', dump, 1, true)
    assert.matches('H5T_IEEE_F32LE', dump, 1, true)
    assert.matches('DATASPACE  SIMPLE { ( 2, 3 ) / ( 2, 3 ) }', dump, 1, true)
    h = io.popen('h5dump -a /other/u/index ' .. path)
    local idx = h:read('*a')
    h:close()
    assert.matches('H5T_STD_I64LE', idx, 1, true)
    assert.matches('%(0%): 2', idx)
    h = io.popen('h5dump -d /other/u/t ' .. path)
    local t = h:read('*a')
    h:close()
    assert.matches('DATASPACE  SCALAR', t, 1, true)
    assert.matches('%(0%): 1', t)
  end)

  it('reads a state file written by h5py the way NNabla writes it', function()
    -- spec/fixtures/momentum_states.h5: groups z/affine/W (index 0, t = 5, int64) and
    -- a/affine/b (index 1, t = 7 stored as uint32), each with an m dataset.
    nn.clear_parameters()
    local w = nn.get_parameter_or_create('z/affine/W', { 2, 2 })
    local b = nn.get_parameter_or_create('a/affine/b', { 2 })
    w.d = { { 1, 1 }, { 1, 1 } }
    b.d = { 0, 0 }
    local s = S.Momentum(0.5, 0.5)
    s:set_parameters(nn.get_parameters())
    s:load_states('spec/fixtures/momentum_states.h5')
    local st = s:get_states()
    assert.equal(5, st['z/affine/W'].t)
    assert.equal(7, st['a/affine/b'].t)
    assert.same({ 0.5, -1.0, 0.25, 2.0 }, st['z/affine/W'].pstate.m:flat())
    assert.same({ -0.125, 3.0 }, st['a/affine/b'].pstate.m:flat())
    s:zero_grad()
    w.g = { { 1, 1 }, { 1, 1 } }
    b.g = { 2, -2 }
    s:update()
    -- m = 0.5 m + 0.5 g; w -= m
    assert.same({ 1 - 0.75, 1 - 0, 1 - 0.625, 1 - 1.5 }, w.d:flat())
    assert.same({ -(0.5 * -0.125 + 1), -(1.5 - 1) }, b.d:flat())
    assert.equal(6, s:get_states()['z/affine/W'].t)
  end)

  it('load_states needs set_parameters first and changes nothing on a mismatch', function()
    local ps = make_params()
    local s = S.Adam(0.1)
    s:set_parameters(nn.get_parameters())
    run_steps('Adam', s, ps, nil, 1, 1)
    local path = dir .. '/adam_ok.h5'
    s:save_states(path)
    local ok, err = pcall(function() S.Adam():load_states(path) end)
    assert.is_false(ok)
    assert.matches('Adam:load_states: Set weight parameter for net/affine/W first', err, 1, true)
    -- a state whose shape differs from the parameter's
    nn.clear_parameters()
    local other = S.Adam()
    local d = require('nnlua.parameter').OrderedDict()
    d['net/affine/W'] = nn.Variable({ 3, 2 })
    d['other/u'] = nn.Variable({ 2 })
    other:set_parameters(d)
    other:zero_grad()
    d['other/u'].g = { 1, 1 }
    other:update()
    ok, err = pcall(function() other:load_states(path) end)
    assert.is_false(ok)
    assert.matches("state 'mean' of parameter 'net/affine/W' has shape {2, 3}", err, 1, true)
    assert.matches('{3, 2}; nothing was loaded', err, 1, true)
    assert.equal(1, other:get_states()['other/u'].t)       -- untouched
    assert.equal(0, other:get_states()['net/affine/W'].t)
    -- states of another solver
    local m = S.Momentum()
    m:set_parameters(s:get_parameters())
    ok, err = pcall(function() m:load_states(path) end)
    assert.is_false(ok)
    assert.matches("'mean' of parameter 'net/affine/W'", err, 1, true)
    assert.matches('is not a state of Momentum (its states: m)', err, 1, true)
    -- a parameter file is not a state file
    make_params()
    nn.save_parameters(dir .. '/params_not_states.h5')
    ok, err = pcall(function() s:load_states(dir .. '/params_not_states.h5') end)
    assert.is_false(ok)
    assert.matches('Adam:load_states:', err, 1, true)
    assert.matches('holds no solver states', err, 1, true)
  end)

  it('missing, truncated and foreign files are clear errors; a failed save keeps the old file', function()
    local ps = make_params()
    local s = S.Adam(0.1)
    s:set_parameters(nn.get_parameters())
    run_steps('Adam', s, ps, nil, 1, 1)
    local ok, err = pcall(function() s:load_states(dir .. '/no-such-states.h5') end)
    assert.is_false(ok)
    assert.matches("Adam:load_states: '" .. dir .. "/no-such-states.h5' does not exist", err, 1, true)
    local path = dir .. '/adam_full.h5'
    s:save_states(path)
    local data = read_all(path)
    local f = io.open(dir .. '/adam_trunc.h5', 'wb'); f:write(data:sub(1, 700)); f:close()
    ok, err = pcall(function() s:load_states(dir .. '/adam_trunc.h5') end)
    assert.is_false(ok)
    assert.matches('not an HDF5 file', err, 1, true)
    f = io.open(dir .. '/adam_text.h5', 'wb'); f:write('not hdf5 at all\n'); f:close()
    ok, err = pcall(function() s:load_states(dir .. '/adam_text.h5') end)
    assert.is_false(ok)
    assert.matches('not an HDF5 file', err, 1, true)
    ok, err = pcall(function() s:load_states(dir .. '/adam.txt') end)
    assert.is_false(ok)
    assert.matches('only .h5 files', err, 1, true)
    assert.equal(1, s:get_states()['net/affine/W'].t)
    -- a save that fails leaves the previous file as it was, and no temporary file
    local bad = require('nnlua.parameter').OrderedDict()
    bad['a/W'] = nn.Variable({ 1 })
    bad['a/W/x'] = nn.Variable({ 1 })
    local s2 = S.Momentum()
    s2:set_parameters(bad)
    ok, err = pcall(function() s2:save_states(path) end)
    assert.is_false(ok)
    assert.matches("Momentum:save_states: parameter 'a/W' would also have to be the group", err, 1, true)
    assert.equal(data, read_all(path))
    ok, err = pcall(function() s:save_states(dir .. '/no-such-dir/x.h5') end)
    assert.is_false(ok)
    assert.matches('cannot write', err, 1, true)
    local h = io.popen('ls ' .. dir .. ' | grep -c tmp- || true')
    assert.equal('0', h:read('*l'))
    h:close()
  end)
end)

describe('large parameters', function()
  it('updates split across threads match the formulas', function()
    local n = 50000
    for _, c in ipairs({ { 'Adam', { 0.1, 0.8, 0.9 } }, { 'Nesterov', { 0.1, 0.7 } }, { 'Adagrad', { 0.2 } },
                         { 'RMSpropGraves', { 0.01, 0.9, 0.8, 1e-2 } }, { 'AdaBound', { 0.1, 0.8, 0.9, 1e-8, 0.1, 0.5 } },
                         { 'AMSGRAD', { 0.1, 0.8, 0.9 } }, { 'Adadelta', { 0.5, 0.9, 1e-3 } } }) do
      local name, args = c[1], c[2]
      nn.clear_parameters()
      local p = nn.get_parameter_or_create('big', { n })
      local w = {}
      for i = 1, n do w[i] = f32(math.cos(i * 0.37)) end
      p.d = nn.NdArray.from_flat(w, { n })
      local s = S[name](unpack(args))
      s:set_parameters(nn.get_parameters())
      local h = resolve(name, args)
      local st = {}
      for _, sname in ipairs(STATES[name]) do
        st[sname] = {}
        for i = 1, n do st[sname][i] = 0 end
      end
      for step = 1, 2 do
        local g = {}
        for i = 1, n do g[i] = f32(math.sin(i * 0.11 + step) * (1 + (i % 7))) end
        s:zero_grad()
        p.g = nn.NdArray.from_flat(g, { n })
        s:update()
        R[name](h, w, g, st, step, 0)
      end
      assert_near(p.d:flat(), w, 1e-6, 1e-6, name .. ' on ' .. n .. ' elements')
    end
  end)
end)
