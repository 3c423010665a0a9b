#!/usr/bin/env luajit
-- scripts/fuzz_functions.lua - developer tool: fuzzes every registered engine function
-- (F.<name>) with bad and edge-case calls and reports crashes, sanitizer findings, hangs,
-- unclear error messages and suspicious successes.
--
-- Run from the repository root (build first: `make`, and `make SANITIZE=1` for --san):
--   luajit scripts/fuzz_functions.lua                 every function, normal build (build/)
--   luajit scripts/fuzz_functions.lua --san           every function, sanitizer build (build-san/)
--   luajit scripts/fuzz_functions.lua --only conv     only functions whose name contains "conv"
--   luajit scripts/fuzz_functions.lua --timeout 60    per-function child time limit (default 120 s)
--   luajit scripts/fuzz_functions.lua --shard 2/4     every 4th function from the 2nd (0-based): run 4 at once
--   luajit scripts/fuzz_functions.lua --verbose       also list the calls that succeeded on mutated input
--   luajit scripts/fuzz_functions.lua --child NAME [--from K]   (internal) run NAME's batch
--                                                    in this process, from call K on
-- The parent runs each function's batch in a child process (`timeout` + scripts/nnlua), so a
-- crash is seen as a signal / exit status (the parent then restarts the batch after the
-- crashing call, at most 30 times per function); each child prints one line per call
-- (CALL, then OK / ERR, or SKIP when the inputs could not be built), the parent classifies them:
--   CRASH    the child died (signal, sanitizer report, exit status) - the last CALL is the culprit
--   TIMEOUT  the child ran past --timeout
--   UNCLEAR  an error that does not start with "F.<name>:" (or "Variable:backward"/"forward"
--            with the function's name), or one that is a raw Lua error (attempt to ..., nil ...)
--   ACCEPT   (--verbose) a mutated call that ran forward and backward without an error
-- Exit status: 0 when no CRASH / TIMEOUT / UNCLEAR, 1 otherwise.
-- A run makes about 18,000 calls (156 functions; each call builds the graph, then runs
-- forward and backward), ~1 minute on the normal build, a few minutes under --san (use
-- --shard to spread it over cores). Known: random_erase with n = 2^31 - 1 is a TIMEOUT
-- (it really makes 2^31 - 1 erase tries per sample; valid, only slow).
-- The normal build runs each child under a 6 GiB address-space limit, the sanitizer build
-- with max_allocation_size_mb=6144, so valid but huge requests fail fast ("out of memory").
-- A finding names the call's number: rerun it alone with
--   ./scripts/nnlua scripts/fuzz_functions.lua --child NAME --from K   (prints every call from K on)
local function dirname(p) return p:match('^(.*)/[^/]*$') or '.' end
local script = arg and arg[0] or 'scripts/fuzz_functions.lua'
local root = dirname(dirname(script))
if root == '' then root = '.' end

local opts = { timeout = 120 }
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == '--san' then opts.san = true
    elseif a == '--only' then i = i + 1; opts.only = arg[i]
    elseif a == '--timeout' then i = i + 1; opts.timeout = tonumber(arg[i])
    elseif a == '--verbose' then opts.verbose = true
    elseif a == '--child' then i = i + 1; opts.child = arg[i]
    elseif a == '--shard' then i = i + 1; opts.shard, opts.nshards = arg[i]:match('^(%d+)/(%d+)$')
      opts.shard, opts.nshards = tonumber(opts.shard), tonumber(opts.nshards)
    elseif a == '--from' then i = i + 1; opts.from = tonumber(arg[i])
    else io.stderr:write('fuzz_functions: unknown option ' .. a .. '\n'); os.exit(2) end
    i = i + 1
  end
end

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- ============================================================================ child ==
local function child(name)
  local nn = nn or require 'nnlua'
  local F = F or require 'nnlua.functions'
  local d = F._descriptors[name]
  if not d then print('NOFUNC ' .. name) os.exit(3) end
  local NAN, INF = 0 / 0, 1 / 0

  -- deterministic pseudo-random values
  local seed = 12345
  local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 end

  local function numel(shape) local n = 1 for _, s in ipairs(shape) do n = n * s end return n end
  -- fill kinds: 'r' [-1, 1], 'p' (0.05, 1), 'i<N>' integers 0..N-1, or a number (constant)
  local function make_var(shape, fill, need_grad)
    local v = nn.Variable(shape, { need_grad = need_grad })
    local n = numel(shape)
    if n == 0 then return v end
    if type(fill) == 'number' then v.d = fill; if fill == 0 then v.d = 0 end return v end
    local flat = {}
    for k = 1, n do
      local x
      if fill == 'r' then x = rnd() * 2 - 1
      elseif fill == 'p' then x = 0.05 + rnd() * 0.95
      else
        local m = tonumber(fill:match('^i(%d+)$')) or 2
        x = math.floor(rnd() * m)
      end
      flat[k] = x
    end
    local nd = nn.NdArray.from(flat)
    v.d = nd:reshape(shape)
    return v
  end

  local function sh(s) local t = {} for i, x in ipairs(s) do t[i] = tostring(x) end return '{' .. table.concat(t, ',') .. '}' end
  local function show(v)
    if type(v) == 'table' then
      local t = {}
      for i = 1, #v do t[i] = show(v[i]) end
      for k, x in pairs(v) do if type(k) ~= 'number' then t[#t + 1] = tostring(k) .. '=' .. show(x) end end
      return '{' .. table.concat(t, ',') .. '}'
    elseif type(v) == 'string' then return "'" .. v .. "'" end
    return tostring(v)
  end

  -- baseline: inputs {shape, fill, need_grad} and named args
  local B = {
    affine = { { {2, 3}, 'r' }, { {3, 4}, 'r' }, { {4}, 'r' } },
    convolution = { { {2, 3, 6, 6}, 'r' }, { {4, 3, 3, 3}, 'r' }, { {4}, 'r' } },
    deconvolution = { { {2, 4, 5, 5}, 'r' }, { {4, 3, 3, 3}, 'r' }, { {3}, 'r' } },
    depthwise_convolution = { { {2, 3, 6, 6}, 'r' }, { {3, 3, 3}, 'r' }, { {3}, 'r' } },
    max_pooling = { { {2, 3, 6, 6}, 'r' }, args = { kernel = {2, 2} } },
    average_pooling = { { {2, 3, 6, 6}, 'r' }, args = { kernel = {2, 2} } },
    sum_pooling = { { {2, 3, 6, 6}, 'r' }, args = { kernel = {2, 2} } },
    unpooling = { { {2, 3, 3, 3}, 'r' }, args = { kernel = {2, 2} } },
    global_average_pooling = { { {2, 3, 4, 4}, 'r' } },
    batch_normalization = { { {4, 3, 2, 2}, 'r' }, { {1, 3, 1, 1}, 'r' }, { {1, 3, 1, 1}, 'p' },
                            { {1, 3, 1, 1}, 'r', false }, { {1, 3, 1, 1}, 'p', false } },
    fused_batch_normalization = { { {4, 3, 2, 2}, 'r' }, { {1, 3, 1, 1}, 'r' }, { {1, 3, 1, 1}, 'p' },
                                  { {1, 3, 1, 1}, 'r', false }, { {1, 3, 1, 1}, 'p', false }, { {4, 3, 2, 2}, 'r' } },
    layer_normalization = { { {2, 3, 4}, 'r' }, { {1, 3, 4}, 'r' }, { {1, 3, 4}, 'p' } },
    instance_normalization = { { {2, 3, 4, 4}, 'r' }, { {1, 3, 1, 1}, 'r' }, { {1, 3, 1, 1}, 'p' } },
    group_normalization = { { {2, 4, 3, 3}, 'r' }, { {1, 4, 1, 1}, 'r' }, { {1, 4, 1, 1}, 'p' }, args = { num_groups = 2 } },
    weight_normalization = { { {4, 3, 3}, 'r' }, { {4}, 'p' } },
    embed = { { {2, 3}, 'i5', false }, { {5, 4}, 'r' } },
    rnn = { { {3, 2, 4}, 'r' }, { {1, 1, 2, 5}, 'r' }, { {1, 5, 9}, 'r' }, nil, { {1, 1, 5}, 'r' } },
    lstm = { { {3, 2, 4}, 'r' }, { {1, 1, 2, 5}, 'r' }, { {1, 1, 2, 5}, 'r' }, { {1, 4, 5, 9}, 'r' }, nil, { {1, 1, 4, 5}, 'r' } },
    gru = { { {3, 2, 4}, 'r' }, { {1, 1, 2, 5}, 'r' }, { {1, 3, 5, 9}, 'r' }, nil, { {1, 1, 4, 5}, 'r' } },
    softmax_cross_entropy = { { {2, 5}, 'r' }, { {2, 1}, 'i5', false } },
    categorical_cross_entropy = { { {2, 5}, 'p' }, { {2, 1}, 'i5', false } },
    top_n_error = { { {2, 5}, 'r' }, { {2, 1}, 'i5', false } },
    confusion_matrix = { { {2, 5}, 'r' }, { {2, 1}, 'i5', false } },
    sigmoid_cross_entropy = { { {2, 3}, 'r' }, { {2, 3}, 'i2', false } },
    binary_cross_entropy = { { {2, 3}, 'p' }, { {2, 3}, 'p', false } },
    binary_error = { { {2, 3}, 'p' }, { {2, 3}, 'i2', false } },
    kl_multinomial = { { {2, 5}, 'p' }, { {2, 5}, 'p' } },
    prelu = { { {2, 3, 4}, 'r' }, { {3}, 'r' } },
    one_hot = { { {2, 1}, 'i5', false }, args = { shape = {5} } },
    gather = { { {4, 3}, 'r' }, { {2}, 'i4', false } },
    gather_nd = { { {4, 3}, 'r' }, { {2, 2}, 'i3', false } },
    scatter_nd = { { {2}, 'r' }, { {1, 2}, 'i3', false }, args = { shape = {4} } },
    scatter_add = { { {4, 3}, 'r' }, { {2, 3}, 'i2', false }, { {2, 3}, 'r' } },
    random_choice = { { {2, 4}, 'r' }, { {2, 4}, 'p' }, args = { shape = {3} } },
    random_crop = { { {2, 3, 6, 6}, 'r' }, args = { shape = {3, 4, 4} } },
    random_erase = { { {2, 3, 6, 6}, 'r' } },
    random_flip = { { {2, 3, 6, 6}, 'r' } },
    random_shift = { { {2, 3, 6, 6}, 'r' }, args = { shifts = {1, 1} } },
    interpolate = { { {1, 2, 4, 4}, 'r' }, args = { output_size = {8, 8} } },
    matrix_diag = { { {2, 3}, 'r' } },
    matrix_diag_part = { { {2, 3, 3}, 'r' } },
    trilu = { { {3, 3}, 'r' } },
    batch_matmul = { { {2, 3, 4}, 'r' }, { {2, 4, 5}, 'r' } },
    where = { { {2, 3}, 'i2', false }, { {2, 3}, 'r' }, { {2, 3}, 'r' } },
    broadcast = { { {1, 3}, 'r' }, args = { shape = {2, 3} } },
    broadcast_to = { { {2, 3, 4}, 'r' }, { {3, 4}, 'r' } },
    tile = { { {2, 3}, 'r' }, args = { reps = {2, 2} } },
    reshape = { { {2, 3}, 'r' }, args = { shape = {3, 2} } },
    transpose = { { {2, 3, 4}, 'r' }, args = { axes = {3, 1, 2} } },
    slice = { { {4, 5}, 'r' }, args = { start = {1, 1}, stop = {3, 4}, step = {1, 2} } },
    pad = { { {2, 3}, 'r' }, args = { pad_width = {1, 1, 1, 1} } },
    shift = { { {2, 3}, 'r' }, args = { shifts = {1, 1} } },
    concatenate = { { {2, 3}, 'r' }, { {2, 3}, 'r' } },
    stack = { { {2, 3}, 'r' }, { {2, 3}, 'r' } },
    add_n = { { {2, 3}, 'r' }, { {2, 3}, 'r' } },
    mul_n = { { {2, 3}, 'r' }, { {2, 3}, 'r' } },
    sink = { { {2, 3}, 'r' }, { {2, 3}, 'r' } },
    arange = { args = { start = 0, stop = 5, step = 1 } },
    linspace = { args = { start = 0, stop = 1, num = 5 } },
    constant = { args = { val = 1, shape = {2, 3} } },
    rand = { args = { shape = {2, 3} } },
    randint = { args = { low = 0, high = 4, shape = {2, 3} } },
    randn = { args = { shape = {2, 3} } },
    clip_grad_by_value = { { {2, 3}, 'r' }, { {2, 3}, -0.5 }, { {2, 3}, 0.5 } },
    epsilon_insensitive_loss = { { {2, 3}, 'r' }, { {2, 3}, 'r' }, args = { epsilon = 0.1 } },
    log = { { {2, 3}, 'p' } },
  }

  local base = B[name] or {}
  local n_total = d.n_in + d.n_opt
  local base_inputs = {}
  local n_base = d.variadic and math.max(d.n_in, 2) or n_total
  for i = 1, n_base do
    if B[name] then
      base_inputs[i] = base[i] or false       -- false: optional input omitted
    else
      base_inputs[i] = { {2, 3, 4}, 'r' }
    end
  end
  local base_args = base.args or {}

  -- one call: inputs is a list of specs ({shape, fill, need_grad} | false | raw Lua value
  -- wrapped as {raw = v}); args a table of named args (or positional list with .pos)
  local count = 0
  local function run(label, inputs, args, positional, mode)
    count = count + 1
    if opts.from and count < opts.from then return end
    io.write(('CALL %d %s\n'):format(count, label)); io.flush()
    local params, last = {}, 0
    local ok, err = pcall(function()
      for i, s in ipairs(inputs) do
        if s == false then params[i] = nil
        elseif s.alias then params[i] = params[s.alias]
        elseif s.raw ~= nil or s.rawnil then params[i] = s.raw
        else
          local ng = s[3]; if ng == nil then ng = true end
          params[i] = make_var(s[1], s[2], ng)
        end
        last = i
      end
    end)
    if not ok then print('SKIP ' .. count .. ' ' .. tostring(err)) return end
    local n = last
    if positional then
      for k = 1, positional.n or #positional do n = n + 1; params[n] = positional[k] end
    else
      local o = {}
      for k, v in pairs(args or {}) do o[k] = v end
      -- optional inputs given as false at the end: pass nil positionally (wrapper rule)
      if next(o) then n = n + 1; params[n] = o end
    end
    local stage = 'call'
    if mode == 'auto' then nn.set_auto_forward(true) end
    local res = { pcall(function()
      local outs = { F[name](unpack(params, 1, n)) }
      nn.set_auto_forward(false)
      for _ = 1, mode == 'twice' and 2 or 1 do
        stage = 'forward'
        for _, y in ipairs(outs) do
          if type(y) == 'cdata' then y:forward() end
        end
        stage = 'backward'
        for _, y in ipairs(outs) do
          if type(y) == 'cdata' then y:backward { grad = 1 } end
        end
      end
      local shapes = {}
      for _, y in ipairs(outs) do
        if type(y) == 'cdata' then
          local s = y.shape
          local bad = ''
          local dd = y.d
          local sz = y.size
          if sz > 0 and sz < 100000 then
            local t = dd:totable()
            local function scan(x)
              if type(x) == 'table' then for _, e in ipairs(x) do scan(e) end
              elseif x ~= x then bad = ' nan' end
            end
            scan(t)
          end
          shapes[#shapes + 1] = sh(s) .. bad
        end
      end
      return table.concat(shapes, ' ')
    end) }
    nn.set_auto_forward(false)
    if res[1] then
      print(('OK %d %s'):format(count, tostring(res[2])))
    else
      local msg = tostring(res[2]):gsub('\n', ' | ')
      print(('ERR %d %s %s'):format(count, stage, msg))
    end
    io.flush()
    collectgarbage()
  end

  local function copy(t) local r = {} for k, v in pairs(t) do r[k] = v end return r end
  local function with_arg(k, v) local a = copy(base_args); a[k] = v; return a end

  -- 0. the baseline itself
  local function inputs_desc(inp)
    local t = {}
    for i, s in ipairs(inp) do
      if s == false then t[i] = 'nil' elseif s.alias then t[i] = 'same as ' .. s.alias elseif s.raw ~= nil or s.rawnil then t[i] = 'raw:' .. show(s.raw)
      else t[i] = sh(s[1]) .. ':' .. tostring(s[2]) .. (s[3] == false and '' or ':g') end
    end
    return table.concat(t, ' ')
  end
  local function call(inputs, args, tag)
    run(tag .. ' | ' .. inputs_desc(inputs) .. ' | ' .. show(args), inputs, args)
  end
  call(base_inputs, base_args, 'base')

  -- 0b. the baseline run twice (forward, backward, forward, backward), in auto_forward
  -- mode, and with inputs of equal shape passed as one Variable (aliasing)
  run('twice | ' .. inputs_desc(base_inputs), base_inputs, base_args, nil, 'twice')
  run('auto | ' .. inputs_desc(base_inputs), base_inputs, base_args, nil, 'auto')
  for i = 1, #base_inputs do
    for j = i + 1, #base_inputs do
      local a, b = base_inputs[i], base_inputs[j]
      if a and b and sh(a[1]) == sh(b[1]) then
        local inp = copy(base_inputs); inp[j] = { alias = i }
        run(('alias%d=%d | '):format(j, i) .. inputs_desc(base_inputs), inp, base_args, nil, 'twice')
      end
    end
  end
  -- a variable fed to itself through an earlier function (x and f(x) as inputs)
  if #base_inputs >= 2 and base_inputs[1] and base_inputs[2] and sh(base_inputs[1][1]) == sh(base_inputs[2][1]) then
    local inp = copy(base_inputs); inp[2] = { alias = 1 }
    run('alias-auto | ' .. inputs_desc(base_inputs), inp, base_args, nil, 'auto')
  end

  -- 1. input shape sweep (each input in turn, and all together)
  local pool = { {}, {0}, {1}, {3}, {5, 1}, {2, 3}, {2, 0, 4}, {0, 3}, {2, 3, 4, 5, 6}, {1, 1, 1, 1, 1, 1, 1},
                 {3, 3, 3}, {1, 2, 3, 4}, {2, 3, 0, 4} }
  for i = 1, #base_inputs do
    for _, s in ipairs(pool) do
      local inp = copy(base_inputs)
      local b = base_inputs[i] or { {}, 'r' }
      inp[i] = { s, b[2], b[3] }
      call(inp, base_args, 'shape' .. i)
    end
  end
  for _, s in ipairs(pool) do
    local inp = {}
    for i = 1, #base_inputs do
      local b = base_inputs[i]
      inp[i] = b and { s, b[2], b[3] } or false
    end
    call(inp, base_args, 'shapeall')
  end
  -- zero-size variants of each input's own shape (each axis in turn set to 0)
  for i = 1, #base_inputs do
    local b = base_inputs[i]
    if b then
      for ax = 1, #b[1] do
        local s = copy(b[1]); s[ax] = 0
        local inp = copy(base_inputs); inp[i] = { s, b[2], b[3] }
        call(inp, base_args, 'zero' .. i)
      end
      -- the same shape with an extra leading / trailing axis, and one axis fewer
      local s1 = { 2 }; for _, x in ipairs(b[1]) do s1[#s1 + 1] = x end
      local s2 = copy(b[1]); s2[#s2 + 1] = 2
      local s3 = copy(b[1]); s3[#s3] = nil
      local s4 = copy(b[1]); if #s4 > 0 then s4[#s4] = s4[#s4] + 1 end
      for _, s in ipairs { s1, s2, s3, s4 } do
        local inp = copy(base_inputs); inp[i] = { s, b[2], b[3] }
        call(inp, base_args, 'rank' .. i)
      end
    end
  end

  -- 2. values: NaN / inf / negative / out-of-range integers / fractions
  for i = 1, #base_inputs do
    local b = base_inputs[i]
    if b then
      for _, v in ipairs { NAN, INF, -INF, -1, 1e10, -1e10, 2.5, 100, 0 } do
        local inp = copy(base_inputs); inp[i] = { b[1], v, b[3] }
        call(inp, base_args, 'value' .. i)
      end
      local inp = copy(base_inputs); inp[i] = { b[1], b[2], true }
      call(inp, base_args, 'needgrad' .. i)
      inp = copy(base_inputs); inp[i] = { b[1], b[2], false }
      call(inp, base_args, 'noneedgrad' .. i)
    end
  end

  -- 3. input counts and Lua types
  do
    local inp = copy(base_inputs)
    for i = #inp, 1, -1 do
      inp[i] = nil
      call(copy(inp), base_args, 'fewer')
    end
    inp = copy(base_inputs)
    for _ = 1, 3 do inp[#inp + 1] = { {2, 3}, 'r' } end
    call(inp, base_args, 'more')
    for i = 1, #base_inputs do
      for _, raw in ipairs { 1.5, 'x', {}, { {1, 2} }, true } do
        local inp2 = copy(base_inputs); inp2[i] = { raw = raw }
        call(inp2, base_args, 'rawin' .. i)
      end
      local inp2 = copy(base_inputs); inp2[i] = { rawnil = true }
      call(inp2, base_args, 'nilin' .. i)
    end
    if d.variadic then
      local many = {}
      for k = 1, 70 do many[k] = { {2}, 'r' } end
      call(many, base_args, 'manyin')
      call({ base_inputs[1] }, base_args, 'onein')
    end
  end

  -- 4. arguments
  local BIG = 2 ^ 31
  local I32 = 2 ^ 31 - 1     -- the largest integer argument the engine takes
  local bad = {
    int = { 0, -1, -2, 1, 2, 3, 7, -100, 100, BIG, 2 ^ 40, -BIG, I32, -I32, 2 ^ 20, 1.5, NAN, INF, 'x', {}, true },
    axis = { 0, 1, 2, -1, -2, 3, 7, -7, 100, -100, BIG, -BIG, I32, -I32, 1.5, 'x', {} },
    axes = { {}, {0}, {1}, {-1}, {1, 1}, {1, -1}, {7}, {-7}, {1, 2, 3, 4, 5, 6, 7}, {BIG}, {I32}, {-I32}, {1.5}, 'x', 3, { 'a' } },
    ints = { {}, {0}, {-1}, {1}, {2}, {0, 0}, {-1, -1}, {1, 1}, {2, 2}, {3, 3}, {7, 7}, {100, 100}, {-100, -100},
             {1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1}, {BIG, BIG}, {2 ^ 40, 1}, {-BIG, -BIG}, {0, 3}, {3, 0},
             {2 ^ 20, 2 ^ 20}, {I32, I32}, {-I32, -I32}, {I32, 1}, {1, I32}, {I32, I32, I32, I32},
             {2 ^ 16, 2 ^ 16, 2 ^ 16}, 'x', 3, { 1.5 }, { 'a' } },
    floats = { {}, {NAN}, {INF}, {-1}, {0}, {0, 0}, {1, 1}, {NAN, NAN}, {-INF, INF}, {2, 1}, {1, 2, 3}, {1e30, 1e30},
               {0.5, 0.5}, {0.5, 0.5, 0.5}, {-0.5, 2}, 'x', { 'a' } },
    float = { 0, -1, 1, 2, -0.5, 0.5, NAN, INF, -INF, 1e30, -1e30, 1e-30, 'x', {}, true },
    bool = { true, false, 'true', 1, {} },
    choice = { 'bogus', '', 1, {} },
    index = { {}, {0}, {1}, {-1}, {100}, {-100}, {1, 1, 1, 1, 1, 1, 1}, {BIG, BIG}, {-BIG, -BIG}, {0, 0}, {3, 1}, {1, 3},
              {-1, -1}, {I32, I32}, {-I32, -I32}, {1, I32}, 'x', { 1.5 } },
  }
  for _, a in ipairs(d.args) do
    for _, v in ipairs(bad[a.type] or {}) do
      call(base_inputs, with_arg(a.name, v), 'arg:' .. a.name)
    end
  end
  -- pairs of list arguments (kernel x stride x pad ...) for the geometry functions
  local lists = {}
  for _, a in ipairs(d.args) do if a.type == 'ints' or a.type == 'index' then lists[#lists + 1] = a end end
  if #lists >= 2 then
    local vals = { {0, 0}, {-1, -1}, {1, 1}, {3, 3}, {7, 7}, {1}, {1, 1, 1} }
    for x = 1, #lists do
      for y = x + 1, #lists do
        for _, v1 in ipairs(vals) do
          for _, v2 in ipairs(vals) do
            local args = with_arg(lists[x].name, v1); args[lists[y].name] = v2
            call(base_inputs, args, 'argpair')
          end
        end
      end
    end
  end
  -- arguments with the rank-varied inputs (axes relative to the rank)
  for _, a in ipairs(d.args) do
    if a.type == 'axis' or a.type == 'axes' or a.type == 'int' then
      for _, s in ipairs { {}, {4}, {2, 3, 4, 5, 6} } do
        for _, v in ipairs(a.type == 'axes' and { {-1}, {1}, {5}, {6} } or { -1, 1, 5, 6 }) do
          local inp = {}
          for i = 1, #base_inputs do
            local b = base_inputs[i]
            inp[i] = b and { s, b[2], b[3] } or false
          end
          call(inp, with_arg(a.name, v), 'argrank:' .. a.name)
        end
      end
    end
  end
  -- positional: too many arguments, wrong order
  do
    local pos = {}
    for _ = 1, #d.args + 2 do pos[#pos + 1] = 1 end
    pos.n = #pos
    run('toomany', base_inputs, nil, pos)
    run('posstring', base_inputs, nil, { 'x', n = 1 })
    run('unknownopt', base_inputs, { bogus_option = 1 })
  end
  -- every argument set to its "most extreme" value at once
  do
    local a2 = copy(base_args)
    for _, a in ipairs(d.args) do
      if a.type == 'ints' then a2[a.name] = {BIG, BIG}
      elseif a.type == 'int' then a2[a.name] = BIG
      elseif a.type == 'float' then a2[a.name] = INF end
    end
    call(base_inputs, a2, 'extreme')
    for _, big in ipairs { I32, 2 ^ 16 } do
      a2 = copy(base_args)
      for _, a in ipairs(d.args) do
        if a.type == 'ints' then a2[a.name] = {big, big}
        elseif a.type == 'int' then a2[a.name] = big end
      end
      call(base_inputs, a2, 'extreme')
    end
  end
  print('DONE ' .. count)
end

if opts.child then
  -- child mode: runs inside scripts/nnlua (nn, F preloaded) or plain luajit
  if not nn then package.path = root .. '/lua/?.lua;' .. root .. '/lua/?/init.lua;' .. package.path end
  child(opts.child)
  os.exit(0)
end

-- =========================================================================== parent ==
package.path = root .. '/lua/?.lua;' .. root .. '/lua/?/init.lua;' .. package.path
local env = ''
if opts.san then
  local function gcc_file(n)
    local p = io.popen('gcc -print-file-name=' .. n); local r = p:read('*l'); p:close(); return r
  end
  env = 'NNLUA_BUILD=build-san LD_PRELOAD=' .. shq(gcc_file('libasan.so') .. ':' .. gcc_file('libubsan.so')) ..
        ' ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1' ..
        ':max_allocation_size_mb=6144 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 '
  if opts.san then os.execute('test -f ' .. shq(root .. '/build-san/libnnlua.so') .. ' || echo "build-san/libnnlua.so missing: run make SANITIZE=1" >&2') end
end

-- the function names, from the registry (same library the children use)
local names, skipped = {}, 0
do
  local p = io.popen(env .. 'luajit -e ' .. shq("package.path='" .. root .. "/lua/?.lua;" .. root ..
    "/lua/?/init.lua;'..package.path local C = require('nnlua.lib').C local ffi = require 'ffi' " ..
    "for i = 0, C.nl_function_count() - 1 do print(ffi.string(C.nl_function_name(i))) end"))
  for l in p:lines() do
    local k = #names + (skipped or 0)
    if (not opts.only or l:find(opts.only, 1, true)) and (not opts.nshards or k % opts.nshards == opts.shard) then
      names[#names + 1] = l
    else skipped = (skipped or 0) + 1 end
  end
  p:close()
end

local tmp = os.tmpname()
local totals = { calls = 0, crash = 0, timeout = 0, unclear = 0, accept = 0, funcs = 0 }
local findings = {}
local function report(kind, name, text)
  findings[#findings + 1] = ('%-8s %-28s %s'):format(kind, name, text)
  print(findings[#findings])
  io.flush()
end

local function is_clear(name, msg)
  -- strip the "file:line: " position prefix of Lua errors
  local m = msg:gsub('^[^%s]-:%d+: ', '')
  if m:find('attempt to ', 1, true) or m:find('bad argument', 1, true) then return false end
  if m:sub(1, #name + 3) == 'F.' .. name .. ':' then return true end
  -- forward/backward errors: must name the function
  if (m:find('^Variable:backward') or m:find('^Variable:forward') or m:find('^forward') or m:find('^backward'))
     and m:find(name, 1, true) then return true end
  return false
end

for _, name in ipairs(names) do
  totals.funcs = totals.funcs + 1
  -- normal build: a 6 GiB address-space limit makes valid-but-huge requests (a shape of
  -- 2^31 elements) fail fast with "out of memory" instead of paging for minutes; the
  -- sanitizer build cannot run under one (its shadow memory is reserved up front)
  local cmd = ('cd %s && ' .. (opts.san and '' or 'ulimit -v 6291456; ') .. '%s timeout -s KILL %d ./scripts/nnlua scripts/fuzz_functions.lua --child %s > %s 2>&1; echo "EXIT $?" >> %s')
    :format(shq(root), env, opts.timeout, name, tmp, tmp)
  local from, restarts = 1, 0
  local n_calls = 0
  while true do
  local t0 = os.time()
  os.execute(cmd:gsub('%-%-child (%S+)', '--child %1 --from ' .. from, 1))
  local f = io.open(tmp, 'r')
  local out = f:read('*a'); f:close()
  local last_call, done, exit = nil, false, nil
  local labels = {}
  local san = {}
  for line in out:gmatch('[^\n]+') do
    local id, label = line:match('^CALL (%d+) (.*)$')
    if id then last_call = line; labels[id] = label; n_calls = math.max(n_calls, tonumber(id))
    elseif line:match('^DONE') then done = true
    elseif line:match('^EXIT') then exit = tonumber(line:match('^EXIT (%d+)'))
    else
      local eid, stage, msg = line:match('^ERR (%d+) (%S+) (.*)$')
      if eid then
        if not is_clear(name, msg) then
          totals.unclear = totals.unclear + 1
          report('UNCLEAR', name, ('[%s] %s => %s: %s'):format(eid, labels[eid], stage, msg))
        end
      else
        local oid, shapes = line:match('^OK (%d+) (.*)$')
        if oid then
          if opts.verbose and not labels[oid]:match('^base') then
            totals.accept = totals.accept + 1
            report('ACCEPT', name, ('[%s] %s => %s'):format(oid, labels[oid], shapes))
          end
        elseif line:match('ERROR: AddressSanitizer') or line:match('runtime error:') or line:match('SUMMARY:')
            or line:match('Segmentation') or line:match('Assertion') then
          san[#san + 1] = line
        end
      end
    end
  end
  if not done or exit ~= 0 then
    if exit == 137 then
      totals.timeout = totals.timeout + 1
      report('TIMEOUT', name, ('after %ds, last %s'):format(os.time() - t0, tostring(last_call)))
    else
      totals.crash = totals.crash + 1
      report('CRASH', name, ('exit %s, last %s'):format(tostring(exit), tostring(last_call)))
      for k = 1, math.min(#san, 4) do print('         ' .. san[k]) end
      if #san == 0 then print('         ' .. out:sub(-600):gsub('\n', '\n         ')) end
    end
    local last_id = last_call and tonumber(last_call:match('^CALL (%d+)'))
    restarts = restarts + 1
    if not last_id or restarts > 30 then break end
    from = last_id + 1
  else
    break
  end
  end
  totals.calls = totals.calls + n_calls
end
os.remove(tmp)
print(('fuzz_functions: %d functions, %d calls, %d crashes, %d timeouts, %d unclear errors%s (%s build)')
  :format(totals.funcs, totals.calls, totals.crash, totals.timeout, totals.unclear,
          opts.verbose and (', ' .. totals.accept .. ' accepted') or '', opts.san and 'sanitizer' or 'normal'))
os.exit((totals.crash + totals.timeout + totals.unclear) == 0 and 0 or 1)
