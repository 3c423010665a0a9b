package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path

local plot = require 'nnlua.plot'
local png = require 'nnlua.png'

local OUT = 'spec/tmp/plot'
os.execute("mkdir -p '" .. OUT .. "'")

-- an array object like nnlua.ndarray's (shape, :flat(), :totable())
local function fake(flat, shape)
  return {
    shape = shape,
    flat = function() return flat end,
    totable = function() error('not needed') end,
  }
end

local function read(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end

local function digit(k)
  -- 8x8 images, different per k
  local img = {}
  for r = 1, 8 do
    img[r] = {}
    for c = 1, 8 do
      local cx, cy = c - 4.5, r - 4.5
      local on
      if k % 3 == 0 then on = math.abs(math.sqrt(cx * cx + cy * cy) - 2.5) < 1
      elseif k % 3 == 1 then on = math.abs(cx) < 1
      else on = (r == 2 or r == 7 or r == 4 + k % 2) and c > 2 and c < 7 end
      img[r][c] = on and 16 or 0
    end
  end
  return img
end

describe('nnlua.plot', function()
  before_each(function()
    plot.close('all')
    plot.set_gnuplot_path(nil)
  end)

  it('saves a figure with a 2x5 grid of titled images as a PNG', function()
    plot.figure{figsize = {10, 4}}
    for i = 1, 10 do
      plot.subplot(2, 5, i)
      plot.imshow(digit(i - 1), {cmap = 'gray', interpolation = 'nearest'})
      plot.title('label: ' .. (i - 1))
      plot.axis('off')
    end
    local path = OUT .. '/digits_grid.png'
    os.remove(path)
    plot.savefig(path)
    local data = read(path)
    assert.is_not_nil(data)
    assert.are.equal('\137PNG\r\n\26\n', data:sub(1, 8))
    assert.is_true(#data > 1024)
    local info = png.read_info(path)
    assert.are.equal(1000, info.width)
    assert.are.equal(400, info.height)
  end)

  it('saves subplots with imshow, a scatter of 512 points in 10 classes and a legend', function()
    plot.figure{figsize = {12, 5}}
    plot.subplot(1, 2, 1)
    -- a tiled-looking image given as an array object
    local flat = {}
    for i = 1, 24 * 24 do flat[i] = (i * 37) % 17 end
    plot.imshow(fake(flat, {24, 24}), {cmap = 'viridis'})
    plot.title('image')
    plot.subplot(1, 2, 2)
    local seed = 7
    local function rnd()
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed / 2147483648
    end
    local labels = {}
    for cls = 0, 9 do
      local xs, ys = {}, {}
      for j = 1, 51 + (cls < 2 and 1 or 0) do
        local a = cls / 10 * 2 * math.pi
        xs[j] = math.cos(a) * 3 + rnd() - 0.5
        ys[j] = math.sin(a) * 3 + rnd() - 0.5
      end
      plot.plot(xs, ys, '.', {c = plot.cm.Set1(cls / 10)})
      labels[#labels + 1] = tostring(cls)
    end
    plot.legend(labels)
    plot.grid()
    plot.title('embedding')
    local script = plot._build_script(plot.gcf(), 'set terminal pngcairo', nil)
    -- 10 series, each titled by its label, 512 points in all
    local titled = 0
    for _ in script:gmatch('title "%d"') do titled = titled + 1 end
    assert.are.equal(10, titled)
    local points = 0
    for line in script:gmatch('[^\n]+') do
      if line:match('^%-?[%d.]+e?[-+]?%d* %-?[%d.]+') and not line:find('[a-z]') then
        points = points + 1
      end
    end
    assert.is_true(points >= 512)
    local path = OUT .. '/scatter_legend.png'
    os.remove(path)
    plot.savefig(path)
    local data = read(path)
    assert.are.equal('\137PNG\r\n\26\n', data:sub(1, 8))
    assert.is_true(#data > 1024)
  end)

  it('counts histograms as numpy does and draws bars that stand on 0', function()
    plot.figure()
    local n, edges = plot.hist({ 1, 2, 2, 3, 3, 3 }, 3)
    assert.same({ 1, 2, 3 }, n)
    assert.same({ 1, 1 + 2 / 3, 1 + 4 / 3, 3 }, edges)
    -- outside range: not counted; the right edge is in the last bin; density integrates to 1
    n, edges = plot.hist({ -5, 0, 0.5, 1, 1, 7 }, { bins = 2, range = { 0, 1 }, density = true })
    assert.same({ 0, 0.5, 1 }, edges)
    assert.same({ 1 / (4 * 0.5), 3 / (4 * 0.5) }, n)
    n = plot.hist(fake({ 2, 2, 2, 2 }, { 4 }), 2)   -- one value: the range is 1.5..2.5
    assert.same({ 0, 4 }, n)
    plot.bar({ 1, 2, 3 }, { 3, -1, 2 }, { color = 'red', label = 'bars' })
    local script = plot._build_script(plot.gcf(), 'set terminal pngcairo', nil)
    assert.is_truthy(script:find("with boxes lc rgb '#ff0000'", 1, true))
    assert.is_truthy(script:find('\n2 %-1 0%.8\n'))          -- x, height, width
    -- the three histograms' bars and bar's: 0 inside, 5% beyond the extremes (4 and -1)
    assert.is_truthy(script:find('set yrange [-1.25:4.25]', 1, true))
    local path = OUT .. '/hist_bar.png'
    plot.savefig(path)
    assert.are.equal('\137PNG', read(path):sub(1, 4))
    local function fails(f, msg)
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches(msg, err, 1, true)
    end
    fails(function() plot.hist({ 1, 0 / 0 }) end, 'plot.hist: value 2 is nan; histograms take finite values')
    fails(function() plot.hist({ 1 }, 0) end, 'plot.hist: bins must be a positive integer, got 0')
    fails(function() plot.hist({ 1 }, { range = { 2, 1 } }) end, 'plot.hist: range must be {lo, hi} with lo <= hi')
    fails(function() plot.bar({ 1, 2 }, { 1 }) end, 'plot.bar: x and y must have the same length, got 2 and 1')
    fails(function() plot.bar({ 1 }, { 1 }, { width = -1 }) end, 'plot.bar: width must be positive, got -1')
  end)

  it('refuses a table of named fields as data, at the calling line', function()
    plot.figure()
    local ok, err = pcall(function() plot.scatter({ label = 'x' }, { 1 }) end)
    assert.is_false(ok)
    assert.matches("plot.scatter: expected an array, a Variable or a Lua table, got table with named fields ('label')",
                   err, 1, true)
    assert.matches('plot_spec', err, 1, true)
  end)

  it('draws scatter plots with per-point colours, sizes and labels', function()
    plot.figure()
    plot.scatter({1, 2, 3}, {3, 1, 2}, {c = {'red', 'green', 'blue'}, s = {20, 80, 200}, label = 'a'})
    plot.scatter({1, 2, 3}, {1, 2, 3}, {c = {0.1, 0.5, 0.9}, cmap = 'viridis', label = 'b'})
    plot.scatter({1, 2}, {2, 2}, {label = 'c'})
    plot.plot({1, 2, 3}, {2, 3, 1}, 'r--o', {label = 'line'})
    plot.legend{loc = 'upper left'}
    plot.xlabel('x')
    plot.ylabel('y')
    local script = plot._build_script(plot.gcf(), 'set terminal pngcairo', nil)
    assert.is_truthy(script:find('lc rgb variable', 1, true))
    assert.is_truthy(script:find('ps variable', 1, true))
    assert.is_truthy(script:find('lc palette', 1, true))
    -- red = 0xff0000 = 16711680 as the colour column of the first point
    assert.is_truthy(script:find('\n1 3 [%d.]+ 16711680\n'))
    -- 'r--o': red dashed line with circles
    assert.is_truthy(script:find("with linespoints lc rgb '#ff0000' lw 1.5 dt 2 pt 7", 1, true))
    -- the third scatter takes the first colour of the tab10 cycle
    assert.is_truthy(script:find("title \"c\" with points pt 7 ps 1 lc rgb '#1f77b4'", 1, true))
    assert.is_truthy(script:find('set key inside top left', 1, true))
    local path = OUT .. '/scatter_styles.png'
    plot.savefig(path)
    assert.are.equal('\137PNG', read(path):sub(1, 4))
  end)

  it('cycles series colours through tab10 and plots y against 1..n', function()
    plot.figure()
    for k = 1, 11 do plot.plot({k, k + 1, k + 2}) end
    local script = plot._build_script(plot.gcf(), 'set terminal pngcairo', nil)
    local colours = {}
    for c in script:gmatch("with lines lc rgb '(#%x+)'") do colours[#colours + 1] = c end
    assert.are.same({'#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
                     '#7f7f7f', '#bcbd22', '#17becf', '#1f77b4'}, colours)
    assert.is_truthy(script:find('$d1 << EOD\n1 1\n2 2\n3 3\nEOD', 1, true))
  end)

  it('puts image row 1 at the top (y axis downward) and hides ticks', function()
    plot.figure()
    plot.imshow({{1, 2, 3}, {4, 5, 6}}, {cmap = 'gray'})
    local script = plot._build_script(plot.gcf(), 'set terminal pngcairo', nil)
    assert.is_truthy(script:find('set yrange [2.5:0.5]', 1, true))
    assert.is_truthy(script:find('set xrange [0.5:3.5]', 1, true))
    assert.is_truthy(script:find('unset xtics', 1, true))
    assert.is_truthy(script:find('$d1 << EOD\n1 2 3\n4 5 6\nEOD', 1, true))
    assert.is_truthy(script:find("set palette defined (0 '#000000', 1 '#ffffff')", 1, true))
  end)

  it('parses matplotlib format strings', function()
    assert.are.same({color = 'r', linestyle = '--', marker = 'o'}, plot._parse_fmt('r--o'))
    assert.are.same({marker = '.'}, plot._parse_fmt('.'))
    assert.are.same({linestyle = '-', marker = '.'}, plot._parse_fmt('.-'))
    assert.are.same({color = 'C3', marker = 'x'}, plot._parse_fmt('C3x'))
    assert.is_nil(plot._parse_fmt('zz'))
    assert.is_nil(plot._parse_fmt('oo'))
  end)

  it('implements matplotlib colour maps', function()
    local c = plot.cm.Set1(0.25)       -- floor(0.25 * 9) = 2 -> '#4daf4a'
    assert.are.equal(0x4d, math.floor(c[1] * 255 + 0.5))
    assert.are.equal(0xaf, math.floor(c[2] * 255 + 0.5))
    assert.are.equal(0x4a, math.floor(c[3] * 255 + 0.5))
    local a, b = plot.cm.Set1(0), plot.cm.Set1(0.1)   -- both the first colour, as in matplotlib
    assert.are.same(a, b)
    local g = plot.cm.gray(0.5)
    assert.is_true(math.abs(g[1] - 0.5) < 1e-9)
    assert.is_nil(plot.cm.no_such_map)
  end)

  it("raises gnuplot's own error message", function()
    plot.figure()
    plot.plot({1, 2, 3}, {1, 4, 9}, 'with bogus')
    local ok, err = pcall(plot.savefig, OUT .. '/error.png')
    assert.is_false(ok)
    assert.is_truthy(err:find('plot.savefig: gnuplot: ', 1, true))
    assert.is_truthy(err:find('unrecognized plot type', 1, true))
    assert.is_truthy(err:find('line %d+:'))
  end)

  it('reports a missing gnuplot clearly', function()
    plot.set_gnuplot_path('/nonexistent/gnuplot')
    plot.figure()
    plot.plot({1, 2, 3})
    local ok, err = pcall(plot.savefig, OUT .. '/missing.png')
    plot.set_gnuplot_path(nil)
    assert.is_false(ok)
    assert.is_truthy(err:find('plot: gnuplot not found', 1, true))
    assert.is_truthy(err:find('apt-get install gnuplot-nox', 1, true))
  end)

  it('rejects bad arguments with clear messages', function()
    local ok, err = pcall(plot.imshow, {1, 2, 3})
    assert.is_false(ok)
    assert.is_truthy(err:find('got shape {3}', 1, true))
    ok, err = pcall(plot.plot, {1, 2}, {1, 2, 3})
    assert.is_truthy(err:find('same length, got 2 and 3', 1, true))
    ok, err = pcall(plot.plot, {1, 2}, {bogus_option = 1})
    assert.is_truthy(err:find("unknown option 'bogus_option'", 1, true))
    ok, err = pcall(plot.savefig, OUT .. '/no/such/dir/x.png')
    assert.is_false(ok)
    assert.is_truthy(err:find('plot.savefig: cannot write', 1, true))
  end)

  it('Ctrl-C while gnuplot draws stops it and says so, instead of waiting for it', function()
    -- a gnuplot that shrugs off SIGINT and takes 4 s (as gnuplot 5.4 hangs when SIGINT catches
    -- it drawing); the user's Ctrl-C goes to the whole foreground process group
    local fake_gp = OUT .. '/gnuplot_slow'
    local f = assert(io.open(fake_gp, 'w'))
    f:write("#!/bin/sh\n[ \"$1\" = -e ] && exit 0\ntrap '' INT\nsleep 4\n")
    f:close()
    os.execute("chmod +x '" .. fake_gp .. "'")
    local child = OUT .. '/interrupt_child.lua'
    f = assert(io.open(child, 'w'))
    f:write([[
      package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
      local ffi = require 'ffi'
      ffi.cdef 'typedef void (*sighandler_t)(int); sighandler_t signal(int, sighandler_t);'
      ffi.C.signal(2, ffi.cast('sighandler_t', 0))   -- SIG_DFL (started in the background)
      local plot = require 'nnlua.plot'
      plot.set_gnuplot_path(arg[1])
      plot.plot({1, 2, 3})
      local t0 = os.time()
      local ok, err = pcall(plot.savefig, arg[2])
      print(ok, err, os.time() - t0)
    ]])
    f:close()
    local out = OUT .. '/interrupt_child.out'
    os.execute('setsid luajit ' .. child .. ' ' .. fake_gp .. ' ' .. OUT .. '/interrupted.png >' .. out ..
               ' 2>&1 & pid=$!; sleep 1; kill -INT -$pid; wait $pid')
    local text = read(out) or ''
    local ok, err, secs = text:match('^(%a+)\t(.-)\t(%d+)')
    assert.are.equal('false', ok, text)
    assert.are.equal('plot.savefig: interrupted (Ctrl-C stopped gnuplot)', err)
    assert.is_true(tonumber(secs) < 3, text)
  end)

  it('checks limits, scales, text positions and dpi where they are given', function()
    plot.figure()
    plot.plot({1, 2, 3})
    local ok, err = pcall(plot.xlim, 'a', 'b')
    assert.is_false(ok)
    assert.is_truthy(err:find('plot.xlim: the lower limit must be a finite number, got a', 1, true))
    ok, err = pcall(plot.ylim, 0, 0 / 0)
    assert.is_truthy(err:find('plot.ylim: the upper limit must be a finite number', 1, true))
    ok, err = pcall(plot.xlim, 1, 1)
    assert.is_truthy(err:find('plot.xlim: the limits are equal', 1, true))
    ok, err = pcall(plot.axis, {0, 1, 'a', 2})
    assert.is_truthy(err:find('plot.axis: the lower limit must be a finite number', 1, true))
    ok, err = pcall(plot.yscale, 'logg')
    assert.is_false(ok)
    assert.is_truthy(err:find("plot.yscale: expected 'linear' or 'log', got 'logg'", 1, true))
    ok, err = pcall(plot.text, 'a', 1, 'hi')
    assert.is_truthy(err:find('plot.text: x must be a finite number', 1, true))
    ok, err = pcall(plot.savefig, OUT .. '/dpi.png', {dpi = 'x'})
    assert.is_truthy(err:find('plot.savefig: dpi must be a positive number', 1, true))
    ok, err = pcall(plot.savefig, OUT .. '/dpi.png', {dpi = 0})
    assert.is_truthy(err:find('plot.savefig: dpi must be a positive number', 1, true))
    plot.xlim(2, nil)          -- one end given, the other automatic
    plot.yscale('linear')
    assert.are.equal(OUT .. '/lim.png', plot.savefig(OUT .. '/lim.png'))
  end)

  it('draws empty axes for empty data, as matplotlib does', function()
    plot.figure()
    plot.plot({})
    plot.subplot(1, 2, 2)
    plot.plot({}, {})
    plot.plot({1, 2, 3}, {label = 'c'})
    plot.legend()
    local path = OUT .. '/empty_data.png'
    os.remove(path)
    assert.are.equal(path, plot.savefig(path))
    assert.are.equal('\137PNG', read(path):sub(1, 4))
    local ok, err = pcall(plot.plot, {label = 'x'})
    assert.is_false(ok)
    assert.is_truthy(err:find('plot.plot: expected (y), (x, y)', 1, true))
  end)

  it('show() without a display writes numbered PNG files and says so', function()
    local dir = OUT .. '/shown'
    os.execute("rm -rf '" .. dir .. "'")
    plot.set_output_dir(dir)
    plot.set_backend('png')
    local printed = {}
    local old_print = print
    _G.print = function(...) printed[#printed + 1] = table.concat({...}, ' ') end
    plot.figure()
    plot.plot({1, 3, 2})
    plot.figure{title = 'Loss curve'}
    plot.plot({3, 1, 2})
    local ok, files = pcall(plot.show)
    _G.print = old_print
    plot.set_backend(nil)
    plot.set_output_dir(nil)
    assert.is_true(ok, files)
    assert.are.equal(2, #files)
    assert.is_truthy(files[1]:match('/figure_%d%d%d%.png$'))
    assert.are.equal(dir .. '/Loss_curve.png', files[2])
    assert.are.equal('[plot] saved ' .. files[1], printed[1])
    assert.are.equal('[plot] saved ' .. files[2], printed[2])
    for _, f in ipairs(files) do assert.are.equal('\137PNG', read(f):sub(1, 4)) end
    -- show() closed the figures
    assert.are.equal(0, #plot.show())
  end)

  it('write_png_image writes a scaled grayscale PNG without gnuplot', function()
    local path = OUT .. '/small.png'
    plot.write_png_image(path, {{0, 1}, {2, 3}}, {scale = 10})
    local info = png.read_info(path)
    assert.are.equal(20, info.width)
    assert.are.equal(20, info.height)
    assert.are.equal(0, info.color_type)
  end)
end)
