-- The `nnlua` REPL: its pieces (compile, pretty printing, completion, help) directly, then the
-- real thing driven through a pseudo-terminal (tmux, a private server on its own socket):
-- auto-print, multi-line input, completion, help, an error the session survives, Ctrl-C
-- stopping a loop, plots drawn in the terminal, the history file, Ctrl-D; and plain-line
-- mode when stdin is not a terminal.
local ffi = require 'ffi'
local repl = require 'nnlua.repl'
local nn = require 'nnlua'
local F = require 'nnlua.functions'
local PF = require 'nnlua.parametric_functions'

pcall(ffi.cdef, 'int usleep(unsigned int usec);')
local function sleep(s) ffi.C.usleep(math.floor(s * 1e6)) end

local function shquote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local h = io.popen(cmd .. ' 2>&1')
  local out = h:read('*a')
  h:close()
  return out
end

local ROOT = sh('pwd'):gsub('%s+$', '')

-- Sanitizer runs (spec/run.sh with SANITIZE=1) preload the ASan runtime; the REPL under test
-- needs it (the engine is instrumented), tmux must not have it.
local function engine_env()
  local parts = {}
  for _, k in ipairs { 'NNLUA_BUILD', 'LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS' } do
    local v = os.getenv(k)
    if v and v ~= '' then parts[#parts + 1] = k .. '=' .. shquote(v) end
  end
  return table.concat(parts, ' ')
end

describe('nnlua.repl pieces', function()
  it('compiles expressions, statements and incomplete input', function()
    local fn, quiet = repl.compile('1 + 1')
    assert.is_function(fn)
    assert.is_false(quiet)
    local res = fn(function(...) return { n = select('#', ...), ... } end)
    assert.equal(2, res[1])
    local _, q2 = repl.compile('1 + 1;')
    assert.is_true(q2)
    local f2c, q2c = repl.compile('1 + 1; -- quiet, with a comment')
    assert.is_function(f2c)
    assert.is_true(q2c)
    local f2s = repl.compile('"a;--b"')          -- inside a string: no comment there
    assert.equal('a;--b', f2s(function(...) return ... end))
    local f3, q3 = repl.compile('x_repl_spec = 3')
    assert.is_function(f3)
    assert.is_true(q3)
    assert.same({ nil, 'incomplete' }, { repl.compile('for i = 1, 3 do') })
    assert.same({ nil, 'incomplete' }, { repl.compile('f(1,') })
    local f4, err = repl.compile('1 +* 2')
    assert.is_nil(f4)
    assert.matches("stdin:1: unexpected symbol near '*'", err, 1, true)
    -- `return a, b` prints its values, as lua's own prompt does
    local f6, q6 = repl.compile('return 5, 6')
    assert.is_false(q6)
    assert.same({ 5, 6 }, f6(function(...) return { ... } end))
    -- an expression cut short continues on the next line
    assert.same({ nil, 'incomplete' }, { repl.compile('1 +') })
    assert.same({ nil, 'incomplete' }, { repl.compile('x_repl_spec *') })
    local f5 = repl.compile('1 +\n2')
    assert.equal(3, f5(function(...) return ... end))
    local _, err2 = repl.compile('x_repl_spec y')
    assert.matches("'=' expected near 'y'", err2, 1, true)
  end)

  it('help(x) names what ?x names: a name, or a function of F, PF, S or nn', function()
    assert.equal(repl.help('F.affine'), repl.help_of(F.affine))
    assert.equal(repl.help('PF.convolution'), repl.help_of(PF.convolution))
    assert.equal(repl.help('PF.affine'), repl.help_of(PF.affine))   -- not its alias PF.linear
    assert.equal(repl.help('S.Adam'), repl.help_of('S.Adam'))
    assert.equal(repl.help('nn.parameter_scope'), repl.help_of(nn.parameter_scope))
    assert.matches('F.affine(x, weight, [bias], base_axis=2)', repl.help_of(F.affine), 1, true)
    assert.matches("help: no help found for this function; give a name", repl.help_of(print), 1, true)
    assert.matches('nnlua REPL', repl.help_of(), 1, true)
  end)

  it('pretty-prints variables, arrays, parameter dictionaries and tables', function()
    local v = nn.Variable.from({ { 1, 2 }, { 3, 4 } })
    local s = repl.pretty(v)
    assert.matches('Variable(shape={2, 2}, need_grad=false)', s, 1, true)
    assert.matches('d = [[1., 2.],', s, 1, true)
    local big = repl.pretty(nn.Variable({ 64, 10 }))
    assert.matches('...', big, 1, true)
    assert.is_true(select(2, big:gsub('\n', '')) < 10, big)
    local y = F.relu(v)
    assert.matches('parent=relu', repl.pretty(y), 1, true)
    assert.matches('shape={2, 2}', repl.pretty(nn.NdArray.zeros({ 2, 2 })), 1, true)
    nn.clear_parameters()
    nn.parameter_scope('fc', function() PF.affine(nn.Variable({ 4, 3 }), 5) end)
    local d = repl.pretty(nn.get_parameters())
    assert.matches('OrderedDict(2 entries)', d, 1, true)
    assert.matches('fc/affine/W  {3, 5}', d, 1, true)
    nn.clear_parameters()
    assert.equal('{1, 2, a = {b = "c"}}', repl.pretty({ 1, 2, a = { b = 'c' } }))
    local deep = repl.pretty({ a = { b = { c = { d = { e = 1 } } } } })
    assert.matches('{...1}', deep, 1, true)
    local cyc = {}
    cyc.self = cyc
    assert.matches('<cycle>', repl.pretty(cyc), 1, true)
    assert.equal('hello', repl.pretty('hello'))
  end)

  it('completes globals, fields and methods', function()
    local env = setmetatable({ nn = nn, xv = nn.Variable({ 2 }), arr = nn.NdArray.zeros({ 2 }) }, { __index = _G })
    local c = repl.complete('nn.par', 'nn.par', 0, env)
    assert.same({ 'nn.parameter_scope(' }, c)
    assert.same({ 'xv:forward(' }, repl.complete('xv:for', 'xv:for', 0, env))
    local fields = repl.complete('xv.', 'xv.', 0, env)
    assert.is_truthy(#fields > 5)
    local has = {}
    for _, f in ipairs(fields) do has[f] = true end
    assert.is_true(has['xv.shape'] and has['xv.need_grad'] and has['xv.backward'])
    assert.same({ 'arr:reshape(' }, repl.complete('arr:resh', 'arr:resh', 0, env))
    assert.same({ 'string.' }, repl.complete('strin', 'strin', 0, env))
    assert.same({ 'nn.' }, repl.complete('nn', 'nn', 0, env))
    assert.is_false(repl.complete('fi', 'dofile("fi', 8, env))
    assert.same({}, repl.complete('nosuch.x', 'nosuch.x', 0, env))
  end)

  it('gives help from the function descriptors', function()
    local env = { F = F, PF = PF, nn = nn }
    assert.matches('F.affine(x, weight, [bias], base_axis=2)', repl.help('F.affine', env), 1, true)
    assert.matches('F.affine(', repl.help('affine', env), 1, true)
    assert.matches('PF.affine(inp, n_outmaps', repl.help('affine', env), 1, true)
    assert.matches('PF.convolution(inp, outmaps, kernel', repl.help('PF.convolution', env), 1, true)
    assert.matches('nn.parameter_scope(name, fn, ...)', repl.help('nn.parameter_scope', env), 1, true)
    assert.matches('clear_buffer', repl.help('Variable:forward', env), 1, true)
    assert.matches('no help', repl.help('nothing_here', env), 1, true)
    assert.matches('?F.affine', repl.help('', env), 1, true)
  end)
end)

describe('the nnlua REPL in a terminal', function()
  local sock = os.tmpname()
  local hist = os.tmpname()
  local session = 'nnspec'

  local function tmux(args) return sh('env -u LD_PRELOAD tmux -S ' .. sock .. ' ' .. args) end
  -- the pane's text so far (scrollback included), trailing blank lines and spaces dropped
  local function screen()
    return (tmux('capture-pane -p -J -S -1000 -t ' .. session):gsub('%s+$', ''))
  end
  local function send(text)
    if text:sub(-1) == ';' then text = text:sub(1, -2) .. '\\;' end   -- tmux's command separator
    tmux('send-keys -t ' .. session .. ' -l ' .. shquote(text))
  end
  local function key(k) tmux('send-keys -t ' .. session .. ' ' .. k) end
  local function line(text) key('C-u') send(text) key('Enter') end
  -- Waits until the screen (after position `from` in the captured text) contains s.
  local function wait_for(s, from, timeout)
    local deadline = os.time() + (timeout or 10)
    local out
    repeat
      out = screen()
      if out:find(s, from or 1, true) then return out end
      sleep(0.05)
    until os.time() > deadline
    error('timed out waiting for ' .. ('%q'):format(s) .. ' in:\n' .. out, 2)
  end
  -- Runs one input line and waits for the next prompt ('\nnn>', or expect); returns the
  -- text from the prompt it was typed at on.
  local function eval(text, expect)
    local start = #screen()
    line(text)
    local out = wait_for(expect or '\nnn>', start + 1)
    return out:sub(start - 2)
  end

  setup(function()
    assert(sh('command -v tmux') ~= '', 'these specs drive the REPL through tmux: apt-get install tmux (make deps does)')
    os.remove(hist)
    os.remove(sock)
    local cmd = ('exec env -u DISPLAY -u WAYLAND_DISPLAY NNLUA_HISTORY=%s COLUMNS= LINES= %s %s/scripts/nnlua')
                :format(shquote(hist), engine_env(), ROOT)
    tmux('-f /dev/null new-session -d -s ' .. session .. ' -x 100 -y 50 ' .. shquote(cmd) ..
         ' \\; set-option -t ' .. session .. ' remain-on-exit on')
    wait_for('nn>')
  end)

  teardown(function()
    tmux('kill-server')
    os.remove(sock)
    os.remove(hist)
  end)

  it('prints the values of expressions, and not with a trailing ;', function()
    local out = eval('1+1')
    assert.matches('nn> 1+1\n2\n', out, 1, true)
    out = eval('40+2;')
    assert.not_matches('42', out, 1, true)
    out = eval('_')
    assert.matches('\n42\n', out, 1, true)
    out = eval('v = nn.Variable.from({{1, 2}, {3, 4}})')
    out = eval('v')
    assert.matches('Variable(shape={2, 2}, need_grad=false)\nd = [[1., 2.],\n     [3., 4.]]', out, 1, true)
  end)

  it('continues incomplete input on a continuation line', function()
    local out = eval('acc = 0 for i = 1, 3 do', '\n..>')
    assert.matches('\n..>', out, 1, true)
    eval('acc = acc + i', '\n..>')
    eval('end')
    out = eval('acc')
    assert.matches('\n6\n', out, 1, true)
  end)

  it('completes globals, fields and methods with TAB', function()
    local start = #screen()
    send('nn.par')
    key('Tab')
    wait_for('nn.parameter_scope(', start)
    key('C-u')
    eval('xv = nn.Variable({2, 3})')
    start = #screen()
    send('xv:for')
    key('Tab')
    wait_for('xv:forward(', start)
    key('C-u')
    start = #screen()
    send('nn.get_')
    key('Tab')
    key('Tab')
    local out = wait_for('nn.get_parameter_or_create', start)
    assert.matches('nn.get_auto_forward', out:sub(start), 1, true)
    key('C-u')
    eval('')
  end)

  it('shows help with ?name', function()
    local out = eval('?F.affine')
    assert.matches('F.affine(x, weight, [bias], base_axis=2)', out, 1, true)
    out = eval('?PF.convolution')
    assert.matches('PF.convolution(inp, outmaps, kernel', out, 1, true)
    out = eval('?nn.parameter_scope')
    assert.matches('nn.parameter_scope(name, fn, ...)', out, 1, true)
    out = eval('?')
    assert.matches('Ctrl-C', out, 1, true)
  end)

  it('prints a traceback on errors and goes on', function()
    local out = eval('error("boom")')
    assert.matches('stdin:1: boom', out, 1, true)
    assert.matches('stack traceback:', out, 1, true)
    out = eval('F.affine(nn.Variable({2, 3}), nn.Variable({4, 5}))')
    assert.matches('F.affine', out, 1, true)
    out = eval('2+3')
    assert.matches('\n5\n', out, 1, true)
  end)

  it('stops a running loop with Ctrl-C and keeps the session', function()
    local start = #screen()
    line('n = 0; while true do n = n + 1 end')
    sleep(0.3)
    key('C-c')
    wait_for('interrupted', start)
    wait_for('\nnn>', start + 1)
    local out = eval('n > 0')
    assert.matches('\ntrue\n', out, 1, true)
    -- a training loop
    eval('x = nn.Variable({8, 4}); t = nn.Variable({8, 1}); loss = F.mean(F.squared_error(' ..
         'PF.affine(x, 1, {name = "fc"}), t)); s = S.Sgd(0.1); s:set_parameters(nn.get_parameters())')
    start = #screen()
    line('steps = 0; while true do loss:forward(); s:zero_grad(); loss:backward(); s:update(); steps = steps + 1 end')
    sleep(0.3)
    key('C-c')
    wait_for('interrupted', start)
    out = eval('steps > 0')
    assert.matches('\ntrue\n', out, 1, true)
    -- inside one long forward pass (C code): the engine's interrupt flag stops it
    eval('deep = nn.Variable({256, 256}); w = nn.Variable.from(nn.NdArray.randn({256, 256}, 0, 0.01)); ' ..
         'for i = 1, 20000 do deep = F.affine(deep, w) end')
    start = #screen()
    line('deep:forward{clear_buffer = true}; print("fin" .. "ished")')
    sleep(0.5)
    key('C-c')
    out = wait_for('interrupted', start, 5)
    assert.not_matches('finished', out:sub(start), 1, true)
    wait_for('\nnn>', start + 1)
    -- at the prompt, Ctrl-C drops unfinished input
    eval('for i = 1, 2 do', '\n..>')
    start = #screen()
    key('C-c')
    wait_for('\nnn>', start)
    out = eval('6*7')
    assert.matches('\n42\n', out, 1, true)
  end)

  it('draws plots in the terminal when there is no display', function()
    local out = eval('plt = require "nnlua.plot"; plt.figure(); plt.plot({1, 4, 9, 16}); plt.show()')
    assert.matches('+-----', out, 1, true)
    out = eval('plt.figure(); plt.imshow({{0, 1}, {1, 0}}, {cmap = "gray"}); plt.title("img"); plt.show()')
    assert.matches('img', out, 1, true)
  end)

  it('keeps a history file and leaves on Ctrl-D', function()
    key('C-d')
    local deadline = os.time() + 10
    while not tmux('display-message -p -t ' .. session .. " '#{pane_dead}'"):match('^1')
          and os.time() < deadline do
      sleep(0.05)
    end
    -- (tmux does not always know the exit status yet when the pane is marked dead)
    local st = tmux('display-message -p -t ' .. session .. " '#{pane_dead} #{pane_dead_status}'")
    assert.matches('^1 ?0?%s*$', st, nil, false, st .. screen())
    local f = assert(io.open(hist))
    local h = f:read('*a')
    f:close()
    assert.matches('1+1\n', h, 1, true)
    assert.matches('?F.affine\n', h, 1, true)
  end)
end)

describe('the nnlua REPL with plain lines (stdin not a terminal)', function()
  it('reads lines, prints results and errors, and stops at exit', function()
    local script = 'x = 20\\nx + 1\\nx + 2;\\nfor i = 1, 2 do\\nx = x + i\\nend\\nx\\nerror("bad")\\n"after"\\nexit\\n"not reached"\\n'
    local out = sh('printf ' .. shquote(script) .. ' | ' .. engine_env() .. ' NNLUA_HISTORY= ./scripts/nnlua')
    assert.matches('^21\n23\n', out)
    assert.matches('stdin:1: bad', out, 1, true)
    assert.matches('after', out, 1, true)
    assert.not_matches('not reached', out, 1, true)
    assert.not_matches('nn> ', out, 1, true)
  end)

  it('runs a script first with -i', function()
    local path = os.tmpname()
    local f = assert(io.open(path, 'w'))
    f:write('answer = 6 * 7\n')
    f:close()
    local out = sh('echo answer | ' .. engine_env() .. ' ./scripts/nnlua -i ' .. path)
    os.remove(path)
    assert.equal('42\n', out)
  end)
end)
