-- F.rnn, F.lstm and F.gru through the function tester (all outputs, backward through time
-- against finite differences), against a step-by-step Lua reference written from NNabla's
-- definitions and weight layouts:
--   weight_l0 (D, G, H, I+H), weight (L-1, D, G, H, D*H+H) -- rnn without the G axis --
--   bias (L, D, H) for rnn, (L, D, 4, H) for lstm (i, f, g, o) and gru (r, z, n_in, n_hidden).
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local T = require 'function_tester'
local R = require 'nd_ref'
local NdArray = nn.NdArray
local err_of = R.err_of

local function sigm(v) return 1 / (1 + math.exp(-v)) end
local function tanh(v) local e = math.exp(2 * v) return (e - 1) / (e + 1) end

-- kind: 'rnn' | 'lstm' | 'gru'; o: { L =, D =, relu = }
local function rec_ref(kind, o)
  local G = kind == 'rnn' and 1 or kind == 'lstm' and 4 or 3
  local nb = kind == 'rnn' and 1 or 4
  local L, D = o.L or 1, o.D or 1
  return function(...)
    local args = { ... }
    local x, h, c, w0, w, b
    if kind == 'lstm' then x, h, c, w0 = args[1], args[2], args[3], args[4]; w, b = args[5], args[6]
    else x, h, w0 = args[1], args[2], args[3]; w, b = args[4], args[5] end
    if L == 1 then b = b or w; w = nil end
    local Tn, B, I = x.shape[1], x.shape[2], x.shape[3]
    local H = h.shape[4]
    local px, ph, pw0 = x:ptr(), h:ptr(), w0:ptr()
    local pc, pw, pb = c and c:ptr(), w and w:ptr(), b and b:ptr()
    -- layer input as a Lua table seq[t][b][j]
    local seq = {}
    for t = 0, Tn - 1 do
      seq[t] = {}
      for bb = 0, B - 1 do
        seq[t][bb] = {}
        for j = 0, I - 1 do seq[t][bb][j] = px[(t * B + bb) * I + j] end
      end
    end
    local hn, cn = {}, {}
    for l = 0, L - 1 do
      local In = l == 0 and I or D * H
      local out = {}
      for t = 0, Tn - 1 do out[t] = {} for bb = 0, B - 1 do out[t][bb] = {} end end
      for d = 0, D - 1 do
        local q = l * D + d
        local wp, wbase
        if l == 0 then wp, wbase = pw0, d * G * H * (I + H)
        else wp, wbase = pw, ((l - 1) * D + d) * G * H * (D * H + H) end
        local function W(k, u, j) return wp[wbase + (k * H + u) * (In + H) + j] end
        local function Bv(k, u) return pb and pb[q * nb * H + k * H + u] or 0 end
        for bb = 0, B - 1 do
          local hp, cp = {}, {}
          for u = 0, H - 1 do
            hp[u] = ph[(q * B + bb) * H + u]
            cp[u] = pc and pc[(q * B + bb) * H + u] or 0
          end
          for s = 0, Tn - 1 do
            local t = d == 0 and s or Tn - 1 - s
            local xt = seq[t][bb]
            local function pre(k, u, from, to)   -- W_k[u, from..to) . [x, h][from..to)
              local acc = 0
              for j = from, to - 1 do
                local v = j < In and xt[j] or hp[j - In]
                acc = acc + W(k, u, j) * v
              end
              return acc
            end
            local hnew, cnew = {}, {}
            for u = 0, H - 1 do
              if kind == 'rnn' then
                local a = pre(0, u, 0, In + H) + Bv(0, u)
                hnew[u] = o.relu and math.max(a, 0) or tanh(a)
              elseif kind == 'lstm' then
                local i = sigm(pre(0, u, 0, In + H) + Bv(0, u))
                local f = sigm(pre(1, u, 0, In + H) + Bv(1, u))
                local g = tanh(pre(2, u, 0, In + H) + Bv(2, u))
                local oo = sigm(pre(3, u, 0, In + H) + Bv(3, u))
                cnew[u] = f * cp[u] + i * g
                hnew[u] = oo * tanh(cnew[u])
              else
                local r = sigm(pre(0, u, 0, In + H) + Bv(0, u))
                local z = sigm(pre(1, u, 0, In + H) + Bv(1, u))
                local n = tanh(pre(2, u, 0, In) + Bv(2, u) + r * (pre(2, u, In, In + H) + Bv(3, u)))
                hnew[u] = (1 - z) * n + z * hp[u]
              end
            end
            hp, cp = hnew, (kind == 'lstm' and cnew or cp)
            for u = 0, H - 1 do out[t][bb][d * H + u] = hp[u] end
          end
          for u = 0, H - 1 do
            hn[(q * B + bb) * H + u + 1] = hp[u]
            cn[(q * B + bb) * H + u + 1] = cp[u]
          end
        end
      end
      seq = out
    end
    local yflat = {}
    for t = 0, Tn - 1 do
      for bb = 0, B - 1 do
        for j = 0, D * H - 1 do yflat[#yflat + 1] = seq[t][bb][j] end
      end
    end
    local hshape = { L, D, B, H }
    local res = { NdArray.from_flat(yflat, { Tn, B, D * H }), NdArray.from_flat(hn, hshape) }
    if kind == 'lstm' then res[3] = NdArray.from_flat(cn, hshape) end
    return res
  end
end

-- shapes of the inputs for kind, o = { T, B, I, H, L, D, bias, }
local function shapes(kind, o)
  local G = kind == 'rnn' and 1 or kind == 'lstm' and 4 or 3
  local L, D, H, I = o.L or 1, o.D or 1, o.H, o.I
  local hs = { L, D, o.B, H }
  local list = { { o.T, o.B, I }, hs }
  if kind == 'lstm' then list[#list + 1] = hs end
  if kind == 'rnn' then list[#list + 1] = { D, H, I + H } else list[#list + 1] = { D, G, H, I + H } end
  if L > 1 then
    if kind == 'rnn' then list[#list + 1] = { L - 1, D, H, D * H + H }
    else list[#list + 1] = { L - 1, D, G, H, D * H + H } end
  end
  if o.bias then
    if kind == 'rnn' then list[#list + 1] = { L, D, H } else list[#list + 1] = { L, D, 4, H } end
  end
  return list
end

local function call(kind, o)
  local L, D = o.L or 1, o.D or 1
  local opts = { num_layers = L, bidirectional = D == 2 }
  if o.relu then opts.nonlinearity = 'relu' end
  local n_fixed = kind == 'lstm' and 4 or 3
  return function(...)
    local a = { ... }
    local wt = L > 1 and a[n_fixed + 1] or nil
    local bias = o.bias and a[n_fixed + (L > 1 and 2 or 1)] or nil
    if kind == 'lstm' then return F.lstm(a[1], a[2], a[3], a[4], wt, bias, opts) end
    return F[kind](a[1], a[2], a[3], wt, bias, opts)
  end
end

local function all_true(n)
  local t = {}
  for i = 1, n do t[i] = true end
  return t
end

local cases = {
  { kind = 'rnn', o = { T = 3, B = 2, I = 3, H = 2, bias = true } },
  { kind = 'rnn', o = { T = 3, B = 2, I = 2, H = 3, bias = true, relu = true } },
  { kind = 'rnn', o = { T = 2, B = 1, I = 2, H = 2 } },
  { kind = 'lstm', o = { T = 3, B = 2, I = 3, H = 2, bias = true } },
  { kind = 'lstm', o = { T = 4, B = 1, I = 2, H = 3 } },
  { kind = 'gru', o = { T = 3, B = 2, I = 3, H = 2, bias = true } },
  { kind = 'gru', o = { T = 2, B = 2, I = 2, H = 3 } },
  -- more layers and both directions
  { kind = 'rnn', o = { T = 3, B = 2, I = 2, H = 2, L = 2, D = 2, bias = true } },
  { kind = 'lstm', o = { T = 3, B = 1, I = 2, H = 2, L = 2, D = 2, bias = true } },
  { kind = 'lstm', o = { T = 2, B = 2, I = 3, H = 2, D = 2, bias = true } },
  { kind = 'gru', o = { T = 3, B = 1, I = 2, H = 2, L = 2, D = 2, bias = true } },
  { kind = 'gru', o = { T = 2, B = 2, I = 2, H = 2, L = 3 } },
}

for _, c in ipairs(cases) do
  local o = c.o
  local name = ('%s T=%d B=%d I=%d H=%d L=%d D=%d%s%s'):format(c.kind, o.T, o.B, o.I, o.H, o.L or 1, o.D or 1,
    o.bias and ' bias' or '', o.relu and ' relu' or '')
  describe(c.kind, function()
    it(name, function()
      local ins = shapes(c.kind, o)
      T.check {
        fn = call(c.kind, o),
        ref = rec_ref(c.kind, { L = o.L, D = o.D, relu = o.relu }),
        inputs = ins,
        init = function(_, s) return NdArray.randn(s, 0, 0.6) end,
        grad = all_true(#ins),
        atol = 1e-5,
      }
    end)
  end)
end

describe('recurrent layers', function()
  local V = nn.Variable
  it('take the bias as the 4th (lstm: 5th) input positionally when num_layers is 1', function()
    nn.seed(3)
    local x = V.from(NdArray.randn { 2, 1, 2 })
    local h, c = V.from(NdArray.randn { 1, 1, 1, 3 }), V.from(NdArray.randn { 1, 1, 1, 3 })
    local w0, b = V.from(NdArray.randn { 1, 4, 3, 5 }), V.from(NdArray.randn { 1, 1, 4, 3 })
    local y1 = F.lstm(x, h, c, w0, b)
    local y2 = F.lstm(x, h, c, w0, nil, b)
    local y3 = F.lstm(x, h, c, w0, { bias = b })
    y1:forward(); y2:forward(); y3:forward()
    T.assert_close(y1.d, y2.d, 0, 0, 'positional bias')
    T.assert_close(y1.d, y3.d, 0, 0, 'named bias')
    local want = rec_ref('lstm', {})(x.d, h.d, c.d, w0.d, nil, b.d)
    T.assert_close(y1.d, want[1], 1e-5, 1e-4, 'reference')
  end)

  it('return y, h_n (and c_n): y[T] holds h_n for one layer', function()
    local x = V.from(NdArray.randn { 3, 2, 2 })
    local h = V.from(NdArray.zeros { 1, 1, 2, 4 })
    local y, hn = F.gru(x, h, V.from(NdArray.randn { 1, 3, 4, 6 }))
    y:forward()
    assert.same({ 3, 2, 4 }, y.shape)
    assert.same({ 1, 1, 2, 4 }, hn.shape)
    T.assert_close(hn.d:reshape { 2, 4 }, y.d[3], 0, 0, 'last step')
    local y2, h2, c2 = F.lstm(x, h, h, V.from(NdArray.randn { 1, 4, 4, 6 }))
    assert.same({ 1, 1, 2, 4 }, c2.shape)
    assert.is_not_nil(y2); assert.is_not_nil(h2)
  end)

  it('reject bad shapes and unsupported options, naming the input and the layout', function()
    local x, h = V { 3, 2, 4 }, V { 1, 1, 2, 5 }
    local err = err_of(F.rnn, x, h, V { 1, 5, 8 })
    assert.matches("F.rnn: input 'weight_l0' has shape {1, 5, 8}, expected {1, 5, 9} (num_directions, hidden_size, input_size + hidden_size)", err, 1, true)
    err = err_of(F.lstm, x, h, h, V { 1, 4, 5, 9 }, V { 1, 1, 4, 4 })
    assert.matches("F.lstm: input 'bias' has shape {1, 1, 4, 4}, expected {1, 1, 4, 5}", err, 1, true)
    err = err_of(F.gru, x, h, V { 1, 3, 5, 9 }, { num_layers = 2 })
    assert.matches("F.gru: input 'h' has shape {1, 1, 2, 5}, expected {2, 1, 2, 5}", err, 1, true)
    err = err_of(F.gru, x, V { 2, 1, 2, 5 }, V { 1, 3, 5, 9 }, { num_layers = 2 })
    assert.matches("F.gru: input 'weight' (layers 2 and up) is required when num_layers is 2", err, 1, true)
    err = err_of(F.gru, x, h, V { 1, 3, 5, 9 }, V { 1, 1, 3, 5, 10 })
    assert.matches("F.gru: input 'weight' (layers 2 and up) cannot be given when num_layers is 1", err, 1, true)
    err = err_of(F.rnn, V { 3, 4 }, h, V { 1, 5, 9 })
    assert.matches('F.rnn: x {3, 4} must be 3-d (steps, batch, input_size)', err, 1, true)
    err = err_of(F.rnn, x, V { 1, 2, 2, 5 }, V { 2, 5, 9 }, { num_layers = 1, bidirectional = false })
    assert.matches("F.rnn: input 'h' has shape {1, 2, 2, 5}, expected {1, 1, 2, 5}", err, 1, true)
    err = err_of(F.lstm, x, V { 2, 1, 2, 5 }, V { 2, 1, 2, 5 }, V { 1, 4, 5, 9 }, V { 1, 1, 4, 5, 10 }, { num_layers = 2, dropout = 1 })
    assert.matches('F.lstm: dropout must be in [0, 1), got 1', err, 1, true)
    err = err_of(F.rnn, x, h, V { 1, 5, 9 }, { nonlinearity = 'sigmoid' })
    assert.matches("argument 'nonlinearity' must be one of 'tanh', 'relu'", err, 1, true)
  end)

  -- dropout between layers is F.dropout on layer 1's output before layer 2 reads it: the
  -- same generator draws the same masks in the same order, so a two-layer call and two
  -- one-layer calls with F.dropout between them agree exactly, forward and backward.
  for _, kind in ipairs { 'rnn', 'lstm', 'gru' } do
    it(kind .. ' with dropout between two layers equals two one-layer calls with F.dropout between', function()
      local G = kind == 'rnn' and 1 or kind == 'lstm' and 4 or 3
      local D, Tn, B, I, H, p = 2, 3, 2, 3, 4, 0.4
      local function gshape(...)   -- rnn has no gate axis
        local t = { ... }
        if kind == 'rnn' then table.remove(t, #t - 2) end
        return t
      end
      nn.seed(11)
      local x = V.from(NdArray.randn { Tn, B, I }, { need_grad = true })
      local h = V.from(NdArray.randn { 2, D, B, H }, { need_grad = true })
      local c = V.from(NdArray.randn { 2, D, B, H }, { need_grad = true })
      local w0 = V.from(NdArray.randn(gshape(D, G, H, I + H)), { need_grad = true })
      local w = V.from(NdArray.randn(gshape(1, D, G, H, D * H + H)), { need_grad = true })
      local bshape = kind == 'rnn' and { 2, D, H } or { 2, D, 4, H }
      local b = V.from(NdArray.randn(bshape), { need_grad = true })
      local opts = { num_layers = 2, dropout = p, bidirectional = true }
      local fn = F[kind]
      local function call(xx, hh, cc, ...)
        if kind == 'lstm' then return fn(xx, hh, cc, ...) end
        return fn(xx, hh, ...)
      end
      local y2 = call(x, h, c, w0, w, b, opts)
      -- the same through two one-layer calls
      local wl1 = F.reshape(w, gshape(D, G, H, D * H + H))
      local function pick(v, l)   -- v[l] (1-based) as a leading axis of size 1
        local start, stop = {}, {}
        for k = 1, #v.shape do start[k] = 1; stop[k] = v.shape[k] end
        start[1], stop[1] = l, l
        return F.slice(v, start, stop)
      end
      local y1 = call(x, pick(h, 1), pick(c, 1), w0, pick(b, 1), { bidirectional = true })
      local mid = F.dropout(y1, p)
      local yref = call(mid, pick(h, 2), pick(c, 2), wl1, pick(b, 2), { bidirectional = true })
      nn.seed(5)
      y2:forward()
      nn.seed(5)
      yref:forward()
      local a, r = y2.d:ptr(), yref.d:ptr()
      local dropped = 0
      for k = 0, y2.size - 1 do assert.is_true(math.abs(a[k] - r[k]) < 1e-5, 'forward ' .. k) end
      local pm = mid.d:ptr()
      for k = 0, mid.size - 1 do if pm[k] == 0 then dropped = dropped + 1 end end
      assert.is_true(dropped > 0 and dropped < mid.size, 'the mask drops some and keeps some')
      local dy = NdArray.randn(y2.shape)
      local leaves = kind == 'lstm' and { x, h, c, w0, w, b } or { x, h, w0, w, b }
      local function grads(y)
        for _, v in ipairs(leaves) do v.g = 0 end
        y:backward { grad = dy }
        local out = {}
        for i, v in ipairs(leaves) do out[i] = v.g:copy() end
        return out
      end
      local g2, gr = grads(y2), grads(yref)
      for i = 1, #leaves do
        local pa, pb = g2[i]:ptr(), gr[i]:ptr()
        for k = 0, g2[i].size - 1 do
          assert.is_true(math.abs(pa[k] - pb[k]) < 1e-4 * (1 + math.abs(pb[k])), ('gradient %d element %d'):format(i, k))
        end
      end
    end)
  end

  it('training = false: forward works, backward is an error', function()
    local x = V.from(NdArray.randn { 2, 1, 2 }, { need_grad = true })
    local h = V.from(NdArray.randn { 1, 1, 1, 2 })
    local y = F.rnn(x, h, V.from(NdArray.randn { 1, 2, 4 }), { training = false })
    y:forward()
    local ok, err = pcall(function() y:backward { grad = NdArray.ones(y.shape) } end)
    assert.is_false(ok)
    assert.matches('training = false', tostring(err), 1, true)
  end)
end)
