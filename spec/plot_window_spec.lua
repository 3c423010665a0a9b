-- plot.show() with a display: real gnuplot windows on a private Xvfb server.
--
-- The window cases need Xvfb (Debian: xvfb), xwininfo (x11-utils) and a gnuplot with a window
-- terminal (gnuplot-qt or gnuplot-x11); where one is missing they are pending and say which.
-- The pixel check also needs xwd (x11-apps). Each case runs the figure in a child luajit (so
-- DISPLAY and the plot module's state stay out of this process), bounded by `timeout`, and
-- everything the spec starts is ended by pid: the gnuplot processes (found by a marker variable
-- in their environment) and the Xvfb server. SPEC_DEBUG=1 prints each child's output.
-- Where the system gnuplot is gnuplot-nox, an unpacked gnuplot-qt runs them without replacing it:
--   apt-get download gnuplot-qt && dpkg-deb -x gnuplot-qt_*.deb /tmp/gq
--   GNUPLOT_DRIVER_DIR=/tmp/gq/usr/lib/gnuplot NNLUA_GNUPLOT=/tmp/gq/usr/bin/gnuplot-qt busted spec/plot_window_spec.lua
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path

local plot = require 'nnlua.plot'

local OUT = 'spec/tmp/plot_window'
os.execute("rm -rf '" .. OUT .. "' && mkdir -p '" .. OUT .. "'")

local function sh_ok(cmd)
  local a, b, c = os.execute(cmd)
  if type(a) == 'number' then return a == 0 end
  return a == true and (c == nil or c == 0)
end

local function read(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function have(cmd) return sh_ok('command -v ' .. cmd .. ' >/dev/null 2>&1') end

local function now()
  local f = io.popen('date +%s.%N')
  local s = f:read('*a')
  f:close()
  return tonumber(s) or os.time()
end

local ROOT = (function()
  local f = io.popen('pwd')
  local s = f:read('*l')
  f:close()
  return s
end)()

local TOKEN = 'nnlua_plot_window_' .. tostring(os.time()) .. '_' .. tostring(math.random(1e6))

-- Runs lua code in a child luajit with the given environment; returns exit status, output, seconds.
local function child(code, env)
  local file = OUT .. '/child.lua'
  write(file, "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n" .. code)
  local vars = { 'NNLUA_SPEC_MARK=' .. TOKEN, 'NNLUA_PLOT=', 'NNLUA_FIGURES=' .. q(OUT .. '/figures') }
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. '=' .. q(v) end
  local t0 = now()
  os.remove(OUT .. '/child.out')
  local ok = sh_ok('cd ' .. q(ROOT) .. ' && timeout 60 env ' .. table.concat(vars, ' ') .. ' luajit '
                   .. q(file) .. ' >' .. q(OUT .. '/child.out') .. ' 2>&1 </dev/null')
  if os.getenv('SPEC_DEBUG') then io.stderr:write(('[child %.2f s] %s\n'):format(now() - t0, read(OUT .. '/child.out') or '')) end
  return ok, read(OUT .. '/child.out') or '', now() - t0
end

-- The pids of the processes this spec started (they carry the marker in their environment).
local function marked_pids()
  local pids = {}
  local f = io.popen("grep -l -s -a " .. q('NNLUA_SPEC_MARK=' .. TOKEN) .. " /proc/[0-9]*/environ 2>/dev/null")
  for line in f:lines() do
    local pid = line:match('^/proc/(%d+)/environ$')
    if pid then pids[#pids + 1] = pid end
  end
  f:close()
  return pids
end

local function kill_marked()
  for _, sig in ipairs { 'TERM', 'KILL' } do
    local pids = marked_pids()
    if #pids == 0 then return end
    os.execute('kill -' .. sig .. ' ' .. table.concat(pids, ' ') .. ' 2>/dev/null')
    for _ = 1, 20 do
      if #marked_pids() == 0 then return end
      os.execute('sleep 0.1')
    end
  end
end

-- ---- what this machine offers ---------------------------------------------------------------

local gnuplot_path = (pcall(plot.gnuplot_path)) and plot.gnuplot_path() or nil
local window_terms = {}
if gnuplot_path then
  local terms = plot.terminals()
  for _, t in ipairs { 'qt', 'wxt', 'x11' } do
    if terms[t] then window_terms[#window_terms + 1] = t end
  end
end

local why_not, why_no_xvfb        -- why the window cases / the Xvfb cases cannot run here
if not gnuplot_path then why_not = 'no gnuplot'
elseif #window_terms == 0 then why_not = 'this gnuplot has no window terminal (install gnuplot-qt or gnuplot-x11)'
elseif not have('timeout') then why_not = 'no timeout (coreutils)'
elseif not io.open('/proc/self/environ', 'rb') then why_not = 'no /proc'
end
if why_not then why_no_xvfb = why_not
elseif not have('Xvfb') then why_no_xvfb = 'no Xvfb (install xvfb)'
elseif not have('xwininfo') then why_no_xvfb = 'no xwininfo (install x11-utils)'
end

-- ---- a private X server ---------------------------------------------------------------------

local xvfb = {}

local function free_display()
  for n = 90 + math.random(0, 50), 300 do
    if not sh_ok('test -e /tmp/.X' .. n .. '-lock -o -e /tmp/.X11-unix/X' .. n) then
      return n
    end
  end
end

local function start_xvfb()
  local n = assert(free_display(), 'no free X display number')
  local pidfile = OUT .. '/xvfb.pid'
  os.remove(pidfile)
  os.execute('Xvfb :' .. n .. ' -screen 0 1280x1024x24 -nolisten tcp >'
             .. q(OUT .. '/xvfb.log') .. ' 2>&1 </dev/null & echo $! >' .. q(pidfile))
  xvfb.display, xvfb.pid = ':' .. n, (read(pidfile) or ''):match('%d+')
  for _ = 1, 100 do                                   -- 10 s at most
    if sh_ok('timeout 5 xwininfo -root -display ' .. xvfb.display .. ' >/dev/null 2>&1') then return true end
    os.execute('sleep 0.1')
  end
  return false, 'Xvfb did not start: ' .. (read(OUT .. '/xvfb.log') or '')
end

local function stop_xvfb()
  kill_marked()                                       -- the gnuplot windows
  if xvfb.pid then
    os.execute('kill ' .. xvfb.pid .. ' 2>/dev/null')
    for _ = 1, 50 do                                  -- 5 s at most
      if not sh_ok('kill -0 ' .. xvfb.pid .. ' 2>/dev/null') then break end
      os.execute('sleep 0.1')
    end
    os.execute('kill -KILL ' .. xvfb.pid .. ' 2>/dev/null')
  end
  xvfb = {}
end

-- gnuplot's top-level windows on the private display ("Figure N"), as {id =, name =, w =, h =}.
local function figure_windows()
  local f = io.popen('timeout 5 xwininfo -root -tree -display ' .. xvfb.display .. ' 2>/dev/null')
  local s = f:read('*a')
  f:close()
  local wins = {}
  for id, name, w, h in s:gmatch('(0x%x+) "(Figure %d+)": %("gnuplot[^"]*" "[^"]*"%) +(%d+)x(%d+)') do
    wins[#wins + 1] = { id = id, name = name, w = tonumber(w), h = tonumber(h) }
  end
  return wins
end

local function wait_for_windows(count)
  local wins = {}
  for _ = 1, 150 do                                   -- 15 s at most
    wins = figure_windows()
    if #wins >= count then return wins end
    os.execute('sleep 0.1')
  end
  return wins
end

-- Counts the pixels of a window (xwd dump, 24/32 bits per pixel) close to the colour r, g, b.
local function count_pixels(win, r, g, b)
  local file = OUT .. '/window.xwd'
  if not sh_ok('timeout 10 xwd -silent -display ' .. xvfb.display .. ' -id ' .. win.id .. ' >' .. q(file)) then
    return nil, 'xwd failed'
  end
  local s = read(file) or ''
  local function u32(i) local a, b2, c, d = s:byte(i * 4 + 1, i * 4 + 4) return ((a * 256 + b2) * 256 + c) * 256 + d end
  if #s < 100 then return nil, 'short xwd dump' end
  local header_size, width, height = u32(0), u32(4), u32(5)
  local byte_order, bpp, bpl, ncolors = u32(7), u32(11), u32(12), u32(19)
  local rmask, gmask, bmask = u32(14), u32(15), u32(16)
  if bpp ~= 32 and bpp ~= 24 then return nil, 'unsupported xwd depth ' .. bpp end
  local function shift(mask) local k = 0 while mask > 0 and mask % 2 == 0 do mask = mask / 2; k = k + 1 end return 2 ^ k end
  local rs, gs, bs = shift(rmask), shift(gmask), shift(bmask)
  local base = header_size + ncolors * 12
  local bytes = bpp / 8
  local n = 0
  for y = 0, height - 1 do
    for x = 0, width - 1 do
      local i = base + y * bpl + x * bytes + 1
      local p = 0
      if byte_order == 0 then
        for k = bytes - 1, 0, -1 do p = p * 256 + (s:byte(i + k) or 0) end
      else
        for k = 0, bytes - 1 do p = p * 256 + (s:byte(i + k) or 0) end
      end
      local pr = math.floor(p / rs) % 256
      local pg = math.floor(p / gs) % 256
      local pb = math.floor(p / bs) % 256
      if math.abs(pr - r) < 40 and math.abs(pg - g) < 40 and math.abs(pb - b) < 40 then n = n + 1 end
    end
  end
  return n
end

-- ---- the cases ------------------------------------------------------------------------------

describe('plot.show() with a display', function()
  it('says once, in one line, that this gnuplot has no window terminal, and writes files', function()
    if not gnuplot_path then pending('no gnuplot') return end
    -- a gnuplot that reports file terminals only (like gnuplot-nox)
    local fake = OUT .. '/gnuplot-nox'
    write(fake, '#!/bin/sh\ncase "$*" in *GPVAL_TERMINALS*) echo "dumb png pngcairo svg unknown"; exit 0;; esac\n'
                .. 'exec ' .. q(gnuplot_path) .. ' "$@"\n')
    os.execute('chmod +x ' .. q(fake))
    local ok, out = child([[
      local plt = require 'nnlua.plot'
      for i = 1, 2 do plt.figure(); plt.plot({1, 2, 3}, {3, 1, 2}) end
      plt.show()
      plt.figure(); plt.plot({1, 2}, {1, 2}); plt.show()
    ]], { DISPLAY = ':12345', NNLUA_GNUPLOT = ROOT .. '/' .. fake })
    assert.is_true(ok, out)
    local lines = {}
    for l in out:gmatch('[^\n]+') do lines[#lines + 1] = l end
    assert.are.equal(3, #lines, out)
    assert.matches('^%[plot%] no window terminal in this gnuplot %(install gnuplot%-qt or gnuplot%-x11%); '
                   .. 'saved .*figure_001%.png$', lines[1])
    assert.matches('^%[plot%] saved .*figure_002%.png$', lines[2])
    assert.matches('^%[plot%] saved .*figure_003%.png$', lines[3])
  end)

  if why_not then
    pending(('no window test here: %s (an unreachable display is said in one line, and the figure is '
             .. 'saved instead, at once)'):format(why_not))
  else
    it('an unreachable display is said in one line, and the figure is saved instead, at once', function()
      local n = free_display()
      local ok, out, secs = child([[
        local plt = require 'nnlua.plot'
        plt.figure(); plt.plot({1, 2, 3}, {3, 1, 2}); plt.show()
        plt.figure(); plt.plot({1, 2, 3}, {3, 1, 2}); plt.show()
      ]], { DISPLAY = ':' .. n })
      kill_marked()
      assert.is_true(ok, out)
      assert.matches('^%[plot%] cannot open a window on display :' .. n .. ' %(gnuplot %w+ terminal: [^\n]+%); '
                     .. 'saved [^\n]*figure_001%.png\n%[plot%] saved [^\n]*figure_002%.png\n$', out)
      assert.is_true(secs < 20, ('took %.1f s'):format(secs))
    end)
  end

  if why_no_xvfb then
    local function skip(name) pending(('no window test here: %s (%s)'):format(why_no_xvfb, name)) end
    skip('show() opens windows that show the figure, without blocking, and they outlive the script')
    skip("gnuplot's errors reach the user in window mode, without leaving an empty window")
    return
  end

  describe('on a private Xvfb', function()
    local started, start_err
    setup(function() started, start_err = start_xvfb() end)
    teardown(stop_xvfb)

    for _, term in ipairs(window_terms) do
      it('show() opens ' .. term .. ' windows that show the figure, without blocking, and they outlive the script', function()
        assert.is_true(started, start_err)
        kill_marked()                                -- the windows of the case before
        local ok, out, secs = child([[
          local plt = require 'nnlua.plot'
          plt.figure{figsize = {2, 2}}
          plt.imshow({{0, 1}, {1, 0}}, {cmap = 'gray'})
          plt.figure{figsize = {4, 3}}                -- opens last, so it is on top
          local x, y = {}, {}
          for i = 1, 40 do x[i] = i; y[i] = math.sin(i / 6) end
          plt.plot(x, y, 'r-', {label = 'sin', linewidth = 2}); plt.legend(); plt.title('window spec')
          local files = plt.show()
          print('files ' .. #files)
        ]], { DISPLAY = xvfb.display, NNLUA_PLOT = term })
        assert.is_true(ok, out)
        -- no "[plot] saved" line, no file: windows instead
        assert.are.equal('files 0\n', out)
        assert.is_true(secs < 20, ('show() took %.1f s'):format(secs))
        -- the script has exited; its windows are still there
        local wins = wait_for_windows(2)
        assert.are.equal(2, #wins, 'windows: ' .. #wins)
        local byname = {}
        for _, w in ipairs(wins) do byname[w.name] = w end
        assert.is_truthy(byname['Figure 1'])
        assert.is_truthy(byname['Figure 2'])
        local fig2 = byname['Figure 2']
        assert.is_true(fig2.w >= 400 and fig2.h >= 300, fig2.w .. 'x' .. fig2.h)
        -- and the red curve is drawn: a titled plot under the legend's opaque key must not vanish
        -- (gnuplot 5.4's wxt and x11 hide it when the multiplot is closed); the legend's own
        -- sample line has well under 200 red pixels
        if have('xwd') then
          local red, err
          for _ = 1, 30 do                           -- the window may still be painting
            red, err = count_pixels(fig2, 255, 0, 0)
            if red and red > 300 then break end
            os.execute('sleep 0.1')
          end
          assert.is_truthy(red, err)
          assert.is_true(red > 300, 'red pixels in Figure 2: ' .. tostring(red))
        end
      end)
    end

    it("gnuplot's errors reach the user in window mode, without leaving an empty window", function()
      assert.is_true(started, start_err)
      kill_marked()
      local before = #figure_windows()
      local ok, out = child([[
        local plt = require 'nnlua.plot'
        plt.figure(); plt.plot({1, 2, 3}, {-1, -2, -3}); plt.yscale('log')
        local ok, err = pcall(plt.show)
        print(ok, err)
      ]], { DISPLAY = xvfb.display })
      assert.is_true(ok, out)
      assert.matches('^false\tplot%.show: gnuplot: line %d+: all points y value undefined', out)
      os.execute('sleep 0.5')
      assert.are.equal(before, #figure_windows())
    end)
  end)
end)
