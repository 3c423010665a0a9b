-- nnlua.plot: a small matplotlib-like front end to gnuplot.
--
--   local plt = require 'nnlua.plot'
--   plt.figure{figsize = {10, 4}}
--   for i = 1, 10 do
--     plt.subplot(2, 5, i); plt.imshow(images[i], {cmap = 'gray'}); plt.title('label ' .. i)
--   end
--   plt.savefig('digits.png')      -- or plt.show()
--
-- A figure collects everything it is told (series, images, decorations) and is turned into
-- one gnuplot script, with the data inline as datablocks ($d1 << EOD ... EOD), only when it is
-- rendered (savefig / show). Rendering runs gnuplot on a temporary script file with stdin from
-- /dev/null and stderr captured, so it never waits for input, and gnuplot's own error messages
-- come back as Lua errors ("plot.savefig: gnuplot: line 12: ...").
--
-- show(): with a display (DISPLAY or WAYLAND_DISPLAY set, gnuplot offering qt/wxt/x11, and
-- NNLUA_PLOT ~= 'png') it opens a persistent window and returns at once; otherwise it writes a
-- PNG into the output folder (plot.set_output_dir, default $NNLUA_FIGURES or ./figures) and
-- prints "[plot] saved figures/figure_001.png". It never fails for want of a window: where a
-- display is set but no window can be had (gnuplot-nox, display unreachable), the first such
-- line says why.
--
-- Conventions: plot(y) uses x = 1..n; imshow puts pixel (1, 1) at the top left with the
-- y axis pointing down (pixel centres at integer coordinates), like matplotlib but 1-based.

local values = require 'nnlua.values'

local M = {}

----------------------------------------------------------------------------------------------
-- Small helpers
----------------------------------------------------------------------------------------------

local floor, sqrt, huge = math.floor, math.sqrt, math.huge
local fmt = string.format
local concat = table.concat

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- A gnuplot double-quoted string literal.
local function gpstr(s)
  s = tostring(s)
  s = s:gsub('\\', '\\\\'):gsub('"', '\\"'):gsub('\r?\n', '\\n')
  return '"' .. s .. '"'
end

local function num(v)
  if v ~= v or v == huge or v == -huge then return 'NaN' end
  if v == floor(v) and v > -1e15 and v < 1e15 then return fmt('%d', v) end
  return fmt('%.9g', v)
end

local function check_opts(who, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= 'table' then error(who .. ': options must be a table', 3) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for a in pairs(allowed) do names[#names + 1] = a end
      table.sort(names)
      error(fmt("%s: unknown option '%s' (known: %s)", who, tostring(k), concat(names, ', ')), 3)
    end
  end
  return opts
end

local function set(list)
  local t = {}
  for _, k in ipairs(list) do t[k] = true end
  return t
end

-- An options table is a table with string keys and no array part (and not an array object).
local function is_opts(x)
  if type(x) ~= 'table' then return false end
  if x[1] ~= nil or x.shape ~= nil then return false end
  if getmetatable(x) ~= nil then return false end
  return true
end

-- Flat values and shape of: an NdArray (or anything with .shape and :flat()), a Variable
-- (anything with .d), a nested Lua table, a flat Lua list, or a number (nnlua.values).
local array_of = values.reader {
  type = 'expected an array, a Variable or a Lua table, got %s',
  element = 'non-numeric element (%s) in table',
  ragged = 'ragged nested table (dimension %d)',
}
M._array_of = array_of

local function is_array(x)
  local tx = type(x)
  if tx == 'cdata' then return true end
  if tx ~= 'table' then return false end
  if x[1] ~= nil then return true end
  local ok, s = pcall(function() return x.shape end)
  if ok and type(s) == 'table' then return true end
  local okd, d = pcall(function() return x.d end)
  return okd and d ~= nil
end

----------------------------------------------------------------------------------------------
-- Colours and colour maps
----------------------------------------------------------------------------------------------

local TAB10 = { '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
                '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf' }
M.tab10 = TAB10

local NAMED = {
  b = '#0000ff', g = '#008000', r = '#ff0000', c = '#00bfbf', m = '#bf00bf', y = '#bfbf00',
  k = '#000000', w = '#ffffff',
  blue = '#0000ff', green = '#008000', red = '#ff0000', cyan = '#00ffff', magenta = '#ff00ff',
  yellow = '#ffff00', black = '#000000', white = '#ffffff', gray = '#808080', grey = '#808080',
  orange = '#ffa500', purple = '#800080', brown = '#a52a2a', pink = '#ffc0cb', olive = '#808000',
  navy = '#000080', teal = '#008080', lime = '#00ff00', maroon = '#800000', gold = '#ffd700',
  darkgreen = '#006400', darkblue = '#00008b', darkred = '#8b0000', lightgray = '#d3d3d3',
  lightgrey = '#d3d3d3', darkgray = '#a9a9a9', darkgrey = '#a9a9a9', silver = '#c0c0c0',
  violet = '#ee82ee', indigo = '#4b0082', turquoise = '#40e0d0', salmon = '#fa8072',
  skyblue = '#87ceeb', steelblue = '#4682b4', crimson = '#dc143c', coral = '#ff7f50',
  ['tab:blue'] = TAB10[1], ['tab:orange'] = TAB10[2], ['tab:green'] = TAB10[3],
  ['tab:red'] = TAB10[4], ['tab:purple'] = TAB10[5], ['tab:brown'] = TAB10[6],
  ['tab:pink'] = TAB10[7], ['tab:gray'] = TAB10[8], ['tab:grey'] = TAB10[8],
  ['tab:olive'] = TAB10[9], ['tab:cyan'] = TAB10[10],
}

local function clamp01(v)
  if v ~= v or v < 0 then return 0 elseif v > 1 then return 1 end
  return v
end

-- Colour (string name, '#rrggbb[aa]', 'C0'..'C9', '0.5' gray, or {r, g, b[, a]} in 0..1 or
-- 0..255) -> r, g, b, a in 0..1.
local function rgba_of(c, who)
  if type(c) == 'table' then
    local r, g, b, a = c[1], c[2], c[3], c[4]
    if type(r) ~= 'number' or type(g) ~= 'number' or type(b) ~= 'number' then
      error(fmt('%s: a colour table must be {r, g, b[, a]}', who), 4)
    end
    if r > 1 or g > 1 or b > 1 then r, g, b = r / 255, g / 255, b / 255 end
    return clamp01(r), clamp01(g), clamp01(b), a and clamp01(a) or 1
  end
  if type(c) ~= 'string' then
    error(fmt('%s: bad colour %s', who, tostring(c)), 4)
  end
  local s = c:lower()
  local cn = s:match('^c(%d)$')
  if cn then s = TAB10[tonumber(cn) + 1] end
  s = NAMED[s] or s
  local gray = tonumber(s)
  if gray and s:match('^[%d.]+$') then
    gray = clamp01(gray)
    return gray, gray, gray, 1
  end
  local hex = s:match('^#(%x+)$')
  if hex and (#hex == 6 or #hex == 8) then
    local r = tonumber(hex:sub(1, 2), 16) / 255
    local g = tonumber(hex:sub(3, 4), 16) / 255
    local b = tonumber(hex:sub(5, 6), 16) / 255
    local a = #hex == 8 and tonumber(hex:sub(7, 8), 16) / 255 or 1
    return r, g, b, a
  end
  if hex and #hex == 3 then
    local r = tonumber(hex:sub(1, 1), 16) / 15
    local g = tonumber(hex:sub(2, 2), 16) / 15
    local b = tonumber(hex:sub(3, 3), 16) / 15
    return r, g, b, 1
  end
  error(fmt("%s: unknown colour '%s'", who, c), 4)
end

local function hex2(v) return fmt('%02x', floor(clamp01(v) * 255 + 0.5)) end

-- gnuplot colour spec: '#rrggbb', or '#AArrggbb' with AA = transparency.
local function gpcolor(c, who, alpha)
  local r, g, b, a = rgba_of(c, who)
  if alpha then a = alpha end
  if a < 1 then
    return '#' .. hex2(1 - a) .. hex2(r) .. hex2(g) .. hex2(b)
  end
  return '#' .. hex2(r) .. hex2(g) .. hex2(b)
end

local function rgb_int(c, who)
  local r, g, b = rgba_of(c, who)
  return floor(r * 255 + 0.5) * 65536 + floor(g * 255 + 0.5) * 256 + floor(b * 255 + 0.5)
end

-- Colour maps: continuous ones by control points, listed ones by their colours.
local CMAPS = {
  gray = { '#000000', '#ffffff' },
  gray_r = { '#ffffff', '#000000' },
  binary = { '#ffffff', '#000000' },
  Greys = { '#ffffff', '#000000' },
  viridis = { '#440154', '#482878', '#3e4a89', '#31688e', '#26828e', '#1f9e89', '#35b779',
              '#6ece58', '#b5de2b', '#fde725' },
  plasma = { '#0d0887', '#47039f', '#7301a8', '#9c179e', '#bd3786', '#d8576b', '#ed7953',
             '#fb9f3a', '#fdca26', '#f0f921' },
  inferno = { '#000004', '#1b0c41', '#4a0c6b', '#781c6d', '#a52c60', '#cf4446', '#ed6925',
              '#fb9b06', '#f7d13d', '#fcffa4' },
  magma = { '#000004', '#180f3d', '#440f76', '#721f81', '#9e2f7f', '#cd4071', '#f1605d',
            '#fd9668', '#feca8d', '#fcfdbf' },
  hot = { { 0, '#0a0000' }, { 0.365, '#ff0000' }, { 0.746, '#ffff00' }, { 1, '#ffffff' } },
  jet = { { 0, '#00007f' }, { 0.11, '#0000ff' }, { 0.125, '#0000ff' }, { 0.34, '#00d4ff' },
          { 0.35, '#0ce4f0' }, { 0.375, '#29ffce' }, { 0.64, '#ceff29' }, { 0.65, '#e6ff10' },
          { 0.66, '#ffea00' }, { 0.89, '#ff0e00' }, { 0.91, '#e40000' }, { 1, '#7f0000' } },
  Blues = { '#f7fbff', '#deebf7', '#c6dbef', '#9ecae1', '#6baed6', '#4292c6', '#2171b5',
            '#08519c', '#08306b' },
  Reds = { '#fff5f0', '#fee0d2', '#fcbba1', '#fc9272', '#fb6a4a', '#ef3b2c', '#cb181d',
           '#a50f15', '#67000d' },
  Greens = { '#f7fcf5', '#e5f5e0', '#c7e9c0', '#a1d99b', '#74c476', '#41ab5d', '#238b45',
             '#006d2c', '#00441b' },
  coolwarm = { '#3b4cc0', '#6788ee', '#9abbff', '#c9d7f0', '#edd1c2', '#f7a889', '#e26952',
               '#b40426' },
  RdBu = { '#67001f', '#b2182b', '#d6604d', '#f4a582', '#fddbc7', '#f7f7f7', '#d1e5f0',
           '#92c5de', '#4393c3', '#2166ac', '#053061' },
}
local LISTED = {
  tab10 = TAB10,
  Set1 = { '#e41a1c', '#377eb8', '#4daf4a', '#984ea3', '#ff7f00', '#ffff33', '#a65628',
           '#f781bf', '#999999' },
  Set2 = { '#66c2a5', '#fc8d62', '#8da0cb', '#e78ac3', '#a6d854', '#ffd92f', '#e5c494',
           '#b3b3b3' },
  Set3 = { '#8dd3c7', '#ffffb3', '#bebada', '#fb8072', '#80b1d3', '#fdb462', '#b3de69',
           '#fccde5', '#d9d9d9', '#bc80bd', '#ccebc5', '#ffed6f' },
  Paired = { '#a6cee3', '#1f78b4', '#b2df8a', '#33a02c', '#fb9a99', '#e31a1c', '#fdbf6f',
             '#ff7f00', '#cab2d6', '#6a3d9a', '#ffff99', '#b15928' },
  Dark2 = { '#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02', '#a6761d',
            '#666666' },
}

-- Control points {{pos, '#rrggbb'}, ...} of a continuous map.
local function cmap_points(name)
  local m = CMAPS[name]
  if not m then return nil end
  if type(m[1]) == 'table' then return m end
  local pts = {}
  for i, c in ipairs(m) do pts[i] = { (i - 1) / (#m - 1), c } end
  return pts
end

local function known_cmaps()
  local names = {}
  for k in pairs(CMAPS) do names[#names + 1] = k end
  for k in pairs(LISTED) do names[#names + 1] = k end
  table.sort(names)
  return concat(names, ', ')
end

-- gnuplot 'set palette ...' for a colour map.
local function palette_cmd(name, who)
  name = name or 'viridis'
  local pts = cmap_points(name)
  if pts then
    local parts = {}
    for i, p in ipairs(pts) do parts[i] = fmt("%g '%s'", p[1], p[2]) end
    return 'set palette maxcolors 0\nset palette defined (' .. concat(parts, ', ') .. ')'
  end
  local listed = LISTED[name]
  if listed then
    local parts = {}
    for i, c in ipairs(listed) do parts[i] = fmt("%d '%s'", i - 1, c) end
    return fmt('set palette maxcolors %d\nset palette defined (%s)', #listed, concat(parts, ', '))
  end
  error(fmt("%s: unknown colour map '%s' (known: %s)", who, tostring(name), known_cmaps()), 4)
end

-- plot.cm.NAME(v) -> {r, g, b, a}, like matplotlib's colour map objects: v in [0, 1]
-- (a listed map of N colours picks floor(v * N)); an integer v > 1 indexes the colour table.
M.cm = setmetatable({}, {
  __index = function(t, name)
    local listed = LISTED[name]
    local pts = cmap_points(name)
    if not listed and not pts then return nil end
    local f = function(v)
      if type(v) ~= 'number' then error('plot.cm.' .. name .. ': expected a number', 2) end
      if listed then
        local n = #listed
        local i
        if v > 1 and v == floor(v) then i = v else i = floor(clamp01(v) * n) end
        if i >= n then i = n - 1 end
        local r, g, b = rgba_of(listed[i + 1], 'plot.cm')
        return { r, g, b, 1 }
      end
      if v > 1 and v == floor(v) then v = v / 255 end
      v = clamp01(v)
      for i = 2, #pts do
        if v <= pts[i][1] or i == #pts then
          local p0, p1 = pts[i - 1], pts[i]
          local span = p1[1] - p0[1]
          local w = span > 0 and (v - p0[1]) / span or 0
          local r0, g0, b0 = rgba_of(p0[2], 'plot.cm')
          local r1, g1, b1 = rgba_of(p1[2], 'plot.cm')
          return { r0 + (r1 - r0) * w, g0 + (g1 - g0) * w, b0 + (b1 - b0) * w, 1 }
        end
      end
    end
    rawset(t, name, f)
    return f
  end,
})

----------------------------------------------------------------------------------------------
-- matplotlib format strings
----------------------------------------------------------------------------------------------

-- marker -> gnuplot point type and relative size (cairo terminals)
local MARKERS = {
  ['.'] = { 7, 0.45 }, [','] = { 7, 0.2 }, o = { 7, 1 }, v = { 11, 1 }, ['^'] = { 9, 1 },
  ['<'] = { 13, 1 }, ['>'] = { 13, 1 }, ['1'] = { 3, 1 }, ['2'] = { 3, 1 }, ['3'] = { 3, 1 },
  ['4'] = { 3, 1 }, ['8'] = { 15, 1 }, s = { 5, 0.9 }, p = { 15, 1 }, P = { 1, 1.2 },
  ['*'] = { 3, 1.2 }, h = { 15, 1 }, H = { 15, 1 }, ['+'] = { 1, 1.1 }, x = { 2, 1 },
  X = { 2, 1.2 }, D = { 13, 0.9 }, d = { 13, 0.8 }, ['|'] = { 1, 1 }, ['_'] = { 1, 1 },
}
local LINESTYLES = { ['-'] = 1, ['--'] = 2, [':'] = 3, ['-.'] = 4 }
local COLOR_LETTERS = set { 'b', 'g', 'r', 'c', 'm', 'y', 'k', 'w' }

-- matplotlib fmt -> {color=, marker=, linestyle=}, or nil when it is not one.
local function parse_fmt(s)
  local out = {}
  local i, n = 1, #s
  while i <= n do
    local two = s:sub(i, i + 1)
    local one = s:sub(i, i)
    if two == '--' or two == '-.' then
      if out.linestyle then return nil end
      out.linestyle = two
      i = i + 2
    elseif one == '-' or one == ':' then
      if out.linestyle then return nil end
      out.linestyle = one
      i = i + 1
    elseif one == 'C' and s:sub(i + 1, i + 1):match('%d') then
      if out.color then return nil end
      out.color = 'C' .. s:sub(i + 1, i + 1)
      i = i + 2
    elseif COLOR_LETTERS[one] then
      if out.color then return nil end
      out.color = one
      i = i + 1
    elseif MARKERS[one] then
      if out.marker then return nil end
      out.marker = one
      i = i + 1
    else
      return nil
    end
  end
  return out
end
M._parse_fmt = parse_fmt

----------------------------------------------------------------------------------------------
-- Figures and axes
----------------------------------------------------------------------------------------------

local Figure = {}
Figure.__index = Figure
local Axes = {}
Axes.__index = Axes

local figures = {}          -- open figures, in creation order
local current = nil         -- current figure
local next_id = 1

local DPI = 100

local function new_axes(fig, rows, cols, first, last)
  local ax = setmetatable({
    figure = fig, rows = rows, cols = cols, first = first, last = last or first,
    series = {}, images = {}, labels = {}, color_index = 0,
  }, Axes)
  fig.axes[#fig.axes + 1] = ax
  fig.current_axes = ax
  return ax
end

local function new_figure(id, opts)
  opts = check_opts('plot.figure', opts, set { 'figsize', 'dpi', 'num', 'title', 'name',
                                               'fontsize', 'facecolor' })
  local figsize = opts.figsize or { 6.4, 4.8 }
  if type(figsize) ~= 'table' or type(figsize[1]) ~= 'number' or type(figsize[2]) ~= 'number'
     or figsize[1] <= 0 or figsize[2] <= 0 then
    error('plot.figure: figsize must be {width, height} in inches', 3)
  end
  local dpi = opts.dpi or DPI
  local fig = setmetatable({
    id = id, axes = {}, width = math.max(16, floor(figsize[1] * dpi + 0.5)),
    height = math.max(16, floor(figsize[2] * dpi + 0.5)), dpi = dpi,
    suptitle = opts.title, name = opts.name, fontsize = opts.fontsize or 10,
    facecolor = opts.facecolor,
  }, Figure)
  figures[#figures + 1] = fig
  current = fig
  if id >= next_id then next_id = id + 1 end
  return fig
end

--- plot.figure([num] [, {figsize = {w, h} (inches), dpi = 100, title =, name =, fontsize = 10}])
-- Creates a figure and makes it current (with a number of an open figure: makes that current).
function M.figure(a, b)
  local id, opts = nil, nil
  if type(a) == 'number' then id, opts = a, b else opts = a end
  if opts and opts.num then id = opts.num end
  if id then
    for _, f in ipairs(figures) do
      if f.id == id then current = f; return f end
    end
  end
  return new_figure(id or next_id, opts)
end

--- The current figure (created if none).
function M.gcf()
  return current or new_figure(next_id)
end

--- The current axes of the current figure (a full-size one is created if none).
function M.gca()
  local fig = M.gcf()
  return fig.current_axes or new_axes(fig, 1, 1, 1)
end

--- plot.subplot(rows, cols, index) or plot.subplot(235); index may be {first, last} to span
-- cells (1-based, row-major, like matplotlib). Returns the axes and makes it current.
function M.subplot(rows, cols, index)
  if cols == nil and type(rows) == 'number' and rows >= 111 and rows <= 999 then
    rows, cols, index = floor(rows / 100), floor(rows / 10) % 10, rows % 10
  end
  if type(rows) ~= 'number' or type(cols) ~= 'number' or rows < 1 or cols < 1
     or rows % 1 ~= 0 or cols % 1 ~= 0 then
    error('plot.subplot: rows and cols must be positive integers', 2)
  end
  local first, last = index, index
  if type(index) == 'table' then first, last = index[1], index[2] or index[1] end
  if type(first) ~= 'number' or type(last) ~= 'number' or first < 1 or last > rows * cols
     or first > last or first % 1 ~= 0 or last % 1 ~= 0 then
    error(fmt('plot.subplot: index %s out of range 1..%d', tostring(type(index) == 'table'
          and (tostring(first) .. '..' .. tostring(last)) or index), rows * cols), 2)
  end
  local fig = M.gcf()
  for _, ax in ipairs(fig.axes) do
    if ax.rows == rows and ax.cols == cols and ax.first == first and ax.last == last then
      fig.current_axes = ax
      return ax
    end
  end
  return new_axes(fig, rows, cols, first, last)
end

--- plot.close() closes the current figure; plot.close('all'); plot.close(fig or number).
function M.close(which)
  if which == 'all' then
    figures, current = {}, nil
    return
  end
  local target = which or current
  if type(which) == 'number' then
    target = nil
    for _, f in ipairs(figures) do if f.id == which then target = f end end
  end
  if not target then return end
  for i, f in ipairs(figures) do
    if f == target then table.remove(figures, i); break end
  end
  if current == target then current = figures[#figures] end
end

--- Clears the current figure (keeps it open).
function M.clf()
  local fig = M.gcf()
  fig.axes, fig.current_axes, fig.suptitle = {}, nil, nil
end

--- Clears the current axes.
function M.cla()
  local ax = M.gca()
  ax.series, ax.images, ax.labels, ax.color_index = {}, {}, {}, 0
  ax.title, ax.xlabel, ax.ylabel, ax.legend, ax.grid = nil, nil, nil, nil, nil
  ax.xlim, ax.ylim, ax.axis_mode, ax.xticks, ax.yticks, ax.colorbar = nil, nil, nil, nil, nil, nil
  ax.bars = nil
end

----------------------------------------------------------------------------------------------
-- Drawing commands
----------------------------------------------------------------------------------------------

local function next_color(ax)
  ax.color_index = ax.color_index + 1
  return TAB10[(ax.color_index - 1) % #TAB10 + 1]
end

local function check_text(who, s)
  if s == nil then return nil end
  if type(s) ~= 'string' and type(s) ~= 'number' then
    error(who .. ': expected a string', 3)
  end
  return tostring(s)
end

local PLOT_OPTS = set { 'label', 'color', 'c', 'linewidth', 'lw', 'linestyle', 'ls', 'marker',
                        'markersize', 'ms', 'alpha', 'with' }

local function style_of(ax, fmtstr, opts, who)
  local spec = {}
  if fmtstr and fmtstr ~= '' then
    if fmtstr:find('[\n\r;]') then error(who .. ': format string contains a newline or ;', 4) end
    local p = parse_fmt(fmtstr)
    if p then spec = p else spec.raw = fmtstr:gsub('^%s*with%s+', '') end
  end
  if opts.with then spec.raw = tostring(opts.with):gsub('^%s*with%s+', '') end
  if opts.linestyle or opts.ls then
    local ls = opts.linestyle or opts.ls
    if ls == 'solid' then ls = '-' elseif ls == 'dashed' then ls = '--'
    elseif ls == 'dotted' then ls = ':' elseif ls == 'dashdot' then ls = '-.' end
    if ls == 'None' or ls == 'none' or ls == '' then spec.nolines = true
    elseif not LINESTYLES[ls] then error(who .. ": unknown linestyle '" .. tostring(ls) .. "'", 4)
    else spec.linestyle = ls end
  end
  if opts.marker then
    if not MARKERS[opts.marker] then error(who .. ": unknown marker '" .. tostring(opts.marker) .. "'", 4) end
    spec.marker = opts.marker
  end
  local color = opts.color or opts.c or spec.color
  local col = color and gpcolor(color, who, opts.alpha) or gpcolor(next_color(ax), who, opts.alpha)
  local lw = opts.linewidth or opts.lw or 1.5
  local ms = opts.markersize or opts.ms or 6
  if spec.raw then
    return 'with ' .. spec.raw .. fmt(" lc rgb '%s'", col), col
  end
  local with
  local has_line = spec.linestyle ~= nil or (spec.marker == nil and not spec.nolines)
  if spec.nolines and not spec.marker then spec.marker = 'o' end
  if spec.marker and has_line then with = 'linespoints'
  elseif spec.marker then with = 'points'
  else with = 'lines' end
  local s = fmt("with %s lc rgb '%s'", with, col)
  if has_line then
    s = s .. fmt(' lw %g dt %d', lw, LINESTYLES[spec.linestyle or '-'])
  end
  if spec.marker then
    local m = MARKERS[spec.marker]
    s = s .. fmt(' pt %d ps %g', m[1], m[2] * ms / 6)
  end
  return s, col
end

local function series_xy(who, x, y)
  local yf, ys = array_of(y, who, 3)
  local xf
  if x ~= nil then
    local xs
    xf, xs = array_of(x, who, 3)
    if #xs > 1 then
      local n = 1
      for _, d in ipairs(xs) do n = n * d end
      if n ~= xs[1] then error(fmt('%s: x must be 1-D, got shape {%s}', who, concat(xs, ',')), 3) end
    end
  end
  local cols = {}
  if #ys <= 1 then
    cols[1] = yf
  elseif #ys == 2 then
    local n, k = ys[1], ys[2]
    for j = 1, k do
      local c = {}
      for i = 1, n do c[i] = yf[(i - 1) * k + j] end
      cols[j] = c
    end
  else
    local n = ys[1]
    local total = #yf
    if total == n then cols[1] = yf
    else error(fmt('%s: y must be 1-D or 2-D, got shape {%s}', who, concat(ys, ',')), 3) end
  end
  local n = #cols[1]
  if xf == nil then
    xf = {}
    for i = 1, n do xf[i] = i end
  elseif #xf ~= n then
    error(fmt('%s: x and y must have the same length, got %d and %d', who, #xf, n), 3)
  end
  return xf, cols
end

--- plot.plot(y), plot.plot(x, y), plot.plot(x, y, fmt), plot.plot(y, fmt), each with an optional
-- trailing {label =, color =, linewidth =, linestyle =, marker =, markersize =, alpha =}.
-- fmt is matplotlib's ('-', '--', ':', '-.', 'o', '.', 'x', 'r-', 'C2o', 'k.-', ...); anything
-- else is passed to gnuplot as a plot style ('with boxes', 'impulses', ...). A 2-D y of shape
-- (n, k) draws k series. Series colours follow matplotlib's tab10 cycle.
function M.plot(...)
  local args = { ... }
  local nargs = select('#', ...)
  local opts = {}
  -- plot({}) is an empty series (nothing to draw), not options
  if nargs > 0 and is_opts(args[nargs]) and (nargs > 1 or next(args[nargs]) ~= nil) then
    opts = args[nargs]
    nargs = nargs - 1
  end
  check_opts('plot.plot', opts, PLOT_OPTS)
  local x, y, f
  if nargs == 1 then y = args[1]
  elseif nargs == 2 then
    if type(args[2]) == 'string' then y, f = args[1], args[2] else x, y = args[1], args[2] end
  elseif nargs == 3 then x, y, f = args[1], args[2], args[3]
  else error('plot.plot: expected (y), (x, y), (y, fmt) or (x, y, fmt)', 2) end
  if f ~= nil and type(f) ~= 'string' then error('plot.plot: fmt must be a string', 2) end
  local ax = M.gca()
  local xf, cols = series_xy('plot.plot', x, y)
  local label = check_text('plot.plot', opts.label)
  for j, yc in ipairs(cols) do
    local style = style_of(ax, f, opts, 'plot.plot')
    ax.series[#ax.series + 1] = {
      x = xf, y = yc, style = style, label = (j == 1 or not label) and label or nil,
    }
  end
  return ax
end

local SCATTER_OPTS = set { 'c', 'color', 's', 'label', 'marker', 'alpha', 'cmap', 'vmin', 'vmax' }

--- plot.scatter(x, y [, {c =, s =, label =, marker = 'o', alpha =, cmap =, vmin =, vmax =}])
-- c: one colour, or a list of colours (one per point), or a list of numbers mapped through
-- cmap (default viridis). s: marker area in points^2 (default 36), one number or one per point.
function M.scatter(x, y, opts)
  opts = check_opts('plot.scatter', opts, SCATTER_OPTS)
  local ax = M.gca()
  local xf, cols = series_xy('plot.scatter', x, y)
  local yf = cols[1]
  local n = #xf
  if #cols ~= 1 then error('plot.scatter: y must be 1-D', 2) end
  local marker = opts.marker or 'o'
  local m = MARKERS[marker]
  if not m then error("plot.scatter: unknown marker '" .. tostring(marker) .. "'", 2) end
  local c = opts.c or opts.color
  local s = opts.s or 36
  local extra = {}          -- extra data columns: {values}
  local using = '1:2'
  local style = fmt('with points pt %d', m[1])
  local base_ps = m[2] / 6
  if type(s) == 'number' then
    style = style .. fmt(' ps %g', sqrt(s) * base_ps)
  else
    local sf = array_of(s, 'plot.scatter')
    if #sf ~= n then error(fmt('plot.scatter: s has %d values for %d points', #sf, n), 2) end
    local sizes = {}
    for i = 1, n do sizes[i] = sqrt(math.max(sf[i], 0)) * base_ps end
    extra[#extra + 1] = sizes
    using = using .. ':' .. (2 + #extra)
    style = style .. ' ps variable'
  end
  -- c: nil (next colour of the cycle), one colour (a string or {r, g, b[, a]}), a list of
  -- colours, or numbers (a list or an array) mapped through the colour map.
  local kind = 'single'
  if type(c) == 'table' or type(c) == 'cdata' then
    local first = type(c) == 'table' and c[1] or nil
    if type(first) == 'string' or type(first) == 'table' then kind = 'colors'
    elseif type(first) == 'number' and (#c == 3 or #c == 4) and #c ~= n then kind = 'single'
    else kind = 'values' end
  end
  if kind == 'single' then
    local col = c and gpcolor(c, 'plot.scatter', opts.alpha)
                or gpcolor(next_color(ax), 'plot.scatter', opts.alpha)
    style = style .. fmt(" lc rgb '%s'", col)
  elseif kind == 'colors' then
    if #c ~= n then error(fmt('plot.scatter: c has %d colours for %d points', #c, n), 2) end
    local ints = {}
    for i = 1, n do ints[i] = rgb_int(c[i], 'plot.scatter') end
    extra[#extra + 1] = ints
    using = using .. ':' .. (2 + #extra)
    style = style .. ' lc rgb variable'
  else
    local cf = array_of(c, 'plot.scatter')
    if #cf ~= n then error(fmt('plot.scatter: c has %d values for %d points', #cf, n), 2) end
    extra[#extra + 1] = cf
    using = using .. ':' .. (2 + #extra)
    style = style .. ' lc palette'
    ax.palette = opts.cmap or ax.palette or 'viridis'
    palette_cmd(ax.palette, 'plot.scatter')
    if opts.vmin or opts.vmax then ax.cbrange = { opts.vmin, opts.vmax } end
  end
  ax.series[#ax.series + 1] = {
    x = xf, y = yf, extra = extra, using = using, style = style,
    label = check_text('plot.scatter', opts.label),
  }
  return ax
end

local BAR_OPTS = set { 'width', 'color', 'label', 'alpha' }

-- Bars centred at xf with heights yf and widths ws, filled with one colour.
local function add_bars(who, ax, xf, yf, ws, opts)
  local col = gpcolor(opts.color or next_color(ax), who, opts.alpha)
  ax.bars = true
  ax.series[#ax.series + 1] = {
    x = xf, y = yf, extra = { ws }, using = '1:2:3', style = fmt("with boxes lc rgb '%s'", col),
    label = check_text(who, opts.label),
  }
  return ax
end

--- plot.bar(x, height [, {width = 0.8, color =, label =, alpha =}]): a bar of each height
-- centred at each x (x: numbers; width: one number, or one per bar).
function M.bar(x, height, opts)
  opts = check_opts('plot.bar', opts, BAR_OPTS)
  local ax = M.gca()
  local xf, cols = series_xy('plot.bar', x, height)
  if #cols ~= 1 then error('plot.bar: height must be 1-D', 2) end
  local w, ws = opts.width or 0.8, {}
  if type(w) == 'number' then
    if not (w > 0) then error('plot.bar: width must be positive, got ' .. tostring(w), 2) end
    for i = 1, #xf do ws[i] = w end
  else
    ws = array_of(w, 'plot.bar')
    if #ws ~= #xf then error(fmt('plot.bar: width has %d values for %d bars', #ws, #xf), 2) end
  end
  return add_bars('plot.bar', ax, xf, cols[1], ws, opts)
end

local HIST_OPTS = set { 'bins', 'range', 'density', 'color', 'label', 'alpha' }

--- plot.hist(values [, bins = 10] [, {bins =, range = {lo, hi}, density = false, color =,
-- label =, alpha =}]) -> counts, edges: bins equal bins over range (default the values'
-- min..max), each including its left edge and the last its right one too, as numpy's
-- histogram; values outside range are not counted; density divides by count * bin width.
-- NaN and infinite values are an error (numpy's too, for the default range).
function M.hist(values_, bins, opts)
  if opts == nil and is_opts(bins) then bins, opts = nil, bins end
  opts = check_opts('plot.hist', opts, HIST_OPTS)
  bins = bins or opts.bins or 10
  if type(bins) ~= 'number' or bins < 1 or bins ~= floor(bins) then
    error('plot.hist: bins must be a positive integer, got ' .. tostring(bins), 2)
  end
  local vf = array_of(values_, 'plot.hist')
  local lo, hi = huge, -huge
  for i = 1, #vf do
    local v = vf[i]
    if v ~= v or v == huge or v == -huge then
      error(fmt('plot.hist: value %d is %s; histograms take finite values', i, tostring(v)), 2)
    end
    if v < lo then lo = v end
    if v > hi then hi = v end
  end
  if opts.range ~= nil then
    local r = opts.range
    if type(r) ~= 'table' or type(r[1]) ~= 'number' or type(r[2]) ~= 'number' or not (r[1] <= r[2]) then
      error('plot.hist: range must be {lo, hi} with lo <= hi', 2)
    end
    lo, hi = r[1], r[2]
  elseif #vf == 0 then
    lo, hi = 0, 1
  end
  if lo == hi then lo, hi = lo - 0.5, hi + 0.5 end
  local width = (hi - lo) / bins
  local counts, edges, centres, ws = {}, {}, {}, {}
  for b = 1, bins do
    counts[b] = 0
    edges[b] = lo + (b - 1) * width
    centres[b] = lo + (b - 0.5) * width
    ws[b] = width
  end
  edges[bins + 1] = hi
  local inside = 0
  for i = 1, #vf do
    local v = vf[i]
    if v >= lo and v <= hi then
      local b = v == hi and bins or floor((v - lo) / width) + 1
      if b > bins then b = bins end
      counts[b] = counts[b] + 1
      inside = inside + 1
    end
  end
  local heights = counts
  if opts.density then
    heights = {}
    for b = 1, bins do heights[b] = inside > 0 and counts[b] / (inside * width) or 0 end
  end
  add_bars('plot.hist', M.gca(), centres, heights, ws, opts)
  return heights, edges
end

local IMSHOW_OPTS = set { 'cmap', 'vmin', 'vmax', 'interpolation', 'aspect', 'origin',
                          'colorbar', 'alpha' }

--- plot.imshow(a [, {cmap = 'viridis', vmin =, vmax =, aspect = 'equal'|'auto',
--                    origin = 'upper'|'lower', colorbar = false, interpolation = (ignored)}])
-- a: 2-D (H, W), or (H, W, 3|4) RGB(A) with values in [0, 1] (or 0..255), or (H, W, 1).
-- No axis ticks unless asked (plot.axis('on') or xticks/yticks).
function M.imshow(a, opts)
  opts = check_opts('plot.imshow', opts, IMSHOW_OPTS)
  local flat, shape = array_of(a, 'plot.imshow')
  while #shape > 2 and shape[1] == 1 do table.remove(shape, 1) end
  if #shape == 3 and shape[3] == 1 then shape[3] = nil end
  local h, w, ch = shape[1], shape[2], shape[3] or 1
  if (#shape ~= 2 and #shape ~= 3) or not (ch == 1 or ch == 3 or ch == 4) or h < 1 or w < 1 then
    error('plot.imshow: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {'
          .. concat(shape, ',') .. '}', 2)
  end
  if ch == 1 then palette_cmd(opts.cmap or 'viridis', 'plot.imshow') end
  if opts.aspect ~= nil and opts.aspect ~= 'equal' and opts.aspect ~= 'auto'
     and type(opts.aspect) ~= 'number' then
    error("plot.imshow: aspect must be 'equal', 'auto' or a number", 2)
  end
  if opts.origin ~= nil and opts.origin ~= 'upper' and opts.origin ~= 'lower' then
    error("plot.imshow: origin must be 'upper' or 'lower'", 2)
  end
  local ax = M.gca()
  ax.images[#ax.images + 1] = {
    data = flat, h = h, w = w, ch = ch, cmap = opts.cmap or 'viridis', vmin = opts.vmin,
    vmax = opts.vmax, aspect = opts.aspect or 'equal', origin = opts.origin or 'upper',
  }
  if opts.colorbar then ax.colorbar = true end
  return ax
end

function M.title(s) M.gca().title = check_text('plot.title', s) end
function M.xlabel(s) M.gca().xlabel = check_text('plot.xlabel', s) end
function M.ylabel(s) M.gca().ylabel = check_text('plot.ylabel', s) end

--- Figure title (above all subplots).
function M.suptitle(s) M.gcf().suptitle = check_text('plot.suptitle', s) end

--- plot.grid() toggles, plot.grid(true|false) sets the grid of the current axes.
function M.grid(on)
  local ax = M.gca()
  if on == nil then ax.grid = not ax.grid else ax.grid = not not on end
end

--- plot.colorbar(): shows the colour box of the current axes.
function M.colorbar() M.gca().colorbar = true end

local LOC = {
  best = 'inside top right', ['upper right'] = 'inside top right',
  ['upper left'] = 'inside top left', ['lower left'] = 'inside bottom left',
  ['lower right'] = 'inside bottom right', right = 'inside right center',
  ['center left'] = 'inside left center', ['center right'] = 'inside right center',
  ['lower center'] = 'inside bottom center', ['upper center'] = 'inside top center',
  center = 'inside center center', outside = 'outside right top',
}

--- plot.legend([labels] [, {loc = 'best'|'upper left'|..., fontsize =, ncol =, frameon = true}])
-- labels (a list) names the series of the current axes in drawing order.
function M.legend(labels, opts)
  if is_opts(labels) and opts == nil then labels, opts = nil, labels end
  opts = check_opts('plot.legend', opts, set { 'loc', 'fontsize', 'ncol', 'frameon', 'title' })
  local ax = M.gca()
  if labels ~= nil then
    if type(labels) ~= 'table' then error('plot.legend: labels must be a list of strings', 2) end
    for i, s in ipairs(labels) do
      if ax.series[i] then ax.series[i].label = tostring(s) end
    end
  end
  local loc = opts.loc or 'best'
  if not LOC[loc] then
    local names = {}
    for k in pairs(LOC) do names[#names + 1] = "'" .. k .. "'" end
    table.sort(names)
    error("plot.legend: unknown loc '" .. tostring(loc) .. "' (known: " .. concat(names, ', ') .. ')', 2)
  end
  ax.legend = { loc = LOC[loc], fontsize = opts.fontsize, ncol = opts.ncol,
                frameon = opts.frameon ~= false, title = opts.title }
end

-- {lo, hi} checked: finite numbers (or nil: that end autoscales), and not equal.
local function limits(who, a, b)
  for _, v in ipairs { { a, 'lower' }, { b, 'upper' } } do
    if v[1] ~= nil and (type(v[1]) ~= 'number' or v[1] ~= v[1] or v[1] == huge or v[1] == -huge) then
      error(fmt('%s: the %s limit must be a finite number, got %s', who, v[2], tostring(v[1])), 3)
    end
  end
  if a ~= nil and a == b then error(fmt('%s: the limits are equal (%s)', who, num(a)), 3) end
  return { a, b }
end

--- plot.axis('off'|'on'|'equal'|'scaled'|'image'|'tight'|'auto'|{xmin, xmax, ymin, ymax})
function M.axis(arg)
  local ax = M.gca()
  if type(arg) == 'table' then
    if #arg ~= 4 then error('plot.axis: expected {xmin, xmax, ymin, ymax}', 2) end
    ax.xlim, ax.ylim = limits('plot.axis', arg[1], arg[2]), limits('plot.axis', arg[3], arg[4])
  elseif arg == 'off' then ax.axis_off = true
  elseif arg == 'on' then ax.axis_off = false; ax.ticks_on = true
  elseif arg == 'equal' or arg == 'scaled' or arg == 'square' then ax.equal = true
  elseif arg == 'image' then ax.equal = true; ax.tight = true
  elseif arg == 'tight' then ax.tight = true
  elseif arg == 'auto' or arg == 'normal' then ax.equal, ax.tight = false, false
  elseif arg == nil then return
  else error("plot.axis: unknown argument '" .. tostring(arg) .. "'", 2) end
end

function M.xlim(a, b)
  if type(a) == 'table' then a, b = a[1], a[2] end
  M.gca().xlim = limits('plot.xlim', a, b)
end
function M.ylim(a, b)
  if type(a) == 'table' then a, b = a[1], a[2] end
  M.gca().ylim = limits('plot.ylim', a, b)
end

--- plot.xscale('log'|'linear'), plot.yscale(...)
local function scale_is_log(who, s)
  if s ~= 'log' and s ~= 'linear' then
    error(who .. ": expected 'linear' or 'log', got " .. (type(s) == 'string' and ("'" .. s .. "'") or tostring(s)), 3)
  end
  return s == 'log'
end
function M.xscale(s) M.gca().xlog = scale_is_log('plot.xscale', s) end
function M.yscale(s) M.gca().ylog = scale_is_log('plot.yscale', s) end

local function ticks(who, key, positions, labels)
  local ax = M.gca()
  if positions == nil then return end
  local pf = array_of(positions, who)
  local t = {}
  for i, p in ipairs(pf) do t[i] = { p, labels and labels[i] and tostring(labels[i]) or nil } end
  ax[key] = t
end
--- plot.xticks(positions [, labels]); plot.xticks({}) hides the ticks.
function M.xticks(p, l) ticks('plot.xticks', 'xticks', p, l) end
function M.yticks(p, l) ticks('plot.yticks', 'yticks', p, l) end

--- plot.text(x, y, s): text at data coordinates of the current axes.
function M.text(x, y, s)
  for _, v in ipairs { { x, 'x' }, { y, 'y' } } do
    if type(v[1]) ~= 'number' or v[1] ~= v[1] or v[1] == huge or v[1] == -huge then
      error(fmt('plot.text: %s must be a finite number, got %s', v[2], tostring(v[1])), 2)
    end
  end
  local ax = M.gca()
  ax.texts = ax.texts or {}
  ax.texts[#ax.texts + 1] = { x, y, check_text('plot.text', s) }
end

--- Accepted for matplotlib compatibility; gnuplot lays out subplots itself.
function M.tight_layout() end

----------------------------------------------------------------------------------------------
-- Script generation
----------------------------------------------------------------------------------------------

local function datablock(out, name, rows)
  out[#out + 1] = name .. ' << EOD'
  for i = 1, #rows do out[#out + 1] = rows[i] end
  out[#out + 1] = 'EOD'
end

local function image_block(img)
  local rows = {}
  local d, w, h, ch = img.data, img.w, img.h, img.ch
  if ch == 1 then
    local line = {}
    for r = 1, h do
      local base = (r - 1) * w
      for c = 1, w do line[c] = num(d[base + c]) end
      rows[r] = concat(line, ' ', 1, w)
    end
    return rows
  end
  -- RGB(A): one row per pixel "x y r g b [a]" in 0..255
  local maxv = 0
  for i = 1, #d do
    local v = d[i]
    if v == v and v > maxv then maxv = v end
  end
  local scale = maxv > 1 and 1 or 255
  local k = 0
  for r = 1, h do
    for c = 1, w do
      local base = ((r - 1) * w + (c - 1)) * ch
      local vals = { c, r }
      for j = 1, ch do
        local v = d[base + j]
        if v ~= v then v = 0 end
        v = v * scale
        if v < 0 then v = 0 elseif v > 255 then v = 255 end
        vals[#vals + 1] = num(floor(v + 0.5))
      end
      k = k + 1
      rows[k] = concat(vals, ' ')
    end
    k = k + 1
    rows[k] = ''
  end
  return rows
end

-- Axes with bars (bar, hist) and no ylim: the y range of all its series with 0 in it, as
-- matplotlib's (bars stand on 0: no margin there, 5% at the other end); nil otherwise.
local function bars_ylim(ax)
  if not ax.bars or ax.ylog then return nil end
  local lo, hi = 0, 0
  for _, s in ipairs(ax.series) do
    for i = 1, #s.y do
      local v = s.y[i]
      if v == v and v ~= huge and v ~= -huge then
        if v < lo then lo = v end
        if v > hi then hi = v end
      end
    end
  end
  local span = hi - lo
  if span == 0 then span = 1 end
  return { lo < 0 and lo - 0.05 * span or 0, (hi > 0 or lo == 0) and hi + 0.05 * span or 0 }
end

local function range_str(lim)
  local a = lim[1] ~= nil and num(lim[1]) or ''
  local b = lim[2] ~= nil and num(lim[2]) or ''
  return '[' .. a .. ':' .. b .. ']'
end

local function tics_cmd(axis, list)
  if #list == 0 then return 'unset ' .. axis .. 'tics' end
  local parts = {}
  for i, t in ipairs(list) do
    if t[2] then parts[i] = gpstr(t[2]) .. ' ' .. num(t[1]) else parts[i] = num(t[1]) end
  end
  return 'set ' .. axis .. 'tics out nomirror (' .. concat(parts, ', ') .. ')'
end

-- Screen box {x0, y0, x1, y1} of an axes.
local function axes_box(ax, top)
  local r0, c0 = floor((ax.first - 1) / ax.cols), (ax.first - 1) % ax.cols
  local r1, c1 = floor((ax.last - 1) / ax.cols), (ax.last - 1) % ax.cols
  if c1 < c0 then c0, c1 = c1, c0 end
  local cw, rh = 1 / ax.cols, top / ax.rows
  return c0 * cw, top - (r1 + 1) * rh, (c1 + 1) * cw, top - r0 * rh
end

local function build_script(fig, term, output)
  local out = {}
  out[#out + 1] = term
  if output then out[#out + 1] = 'set output ' .. gpstr(output) end
  out[#out + 1] = 'set encoding utf8'
  -- data first: datablocks cannot be defined inside multiplot on every gnuplot version
  local nblock = 0
  local plans = {}
  for ai, ax in ipairs(fig.axes) do
    local plan = { images = {}, series = {} }
    plans[ai] = plan
    for _, img in ipairs(ax.images) do
      nblock = nblock + 1
      local name = '$d' .. nblock
      datablock(out, name, image_block(img))
      plan.images[#plan.images + 1] = { name = name, img = img }
    end
    for _, s in ipairs(ax.series) do
      nblock = nblock + 1
      local name = '$d' .. nblock
      local rows = {}
      local x, y, extra = s.x, s.y, s.extra
      for i = 1, #x do
        local row = num(x[i]) .. ' ' .. num(y[i])
        if extra then
          for _, col in ipairs(extra) do row = row .. ' ' .. num(col[i]) end
        end
        rows[i] = row
      end
      datablock(out, name, rows)
      plan.series[#plan.series + 1] = { name = name, s = s }
    end
  end
  local fs = fig.fontsize
  local top = 1
  if fig.suptitle then
    top = 1 - math.min(0.3, (fs * 2.6) / fig.height)
  end
  out[#out + 1] = 'set multiplot'
  if fig.suptitle then
    out[#out + 1] = 'set label 9999 ' .. gpstr(fig.suptitle) .. fmt(
      " at screen 0.5, screen %g center front font ',%g'", 1 - (fs * 1.3) / fig.height, fs + 2)
  end
  for ai, ax in ipairs(fig.axes) do
    local plan = plans[ai]
    if ai > 1 or not fig.suptitle then out[#out + 1] = 'reset' end
    if ai > 1 and fig.suptitle then out[#out + 1] = 'unset label 9999' end
    local x0, y0, x1, y1 = axes_box(ax, top)
    out[#out + 1] = fmt('set origin %g,%g', x0, y0)
    local has_image = #plan.images > 0
    local equal = ax.equal or (has_image and plan.images[1].img.aspect ~= 'auto')
    local ratio = ''
    if equal then
      local asp = has_image and type(plan.images[1].img.aspect) == 'number'
                  and plan.images[1].img.aspect or 1
      ratio = fmt('ratio %g ', -asp)
    end
    out[#out + 1] = fmt('set size %s%g,%g', ratio, x1 - x0, y1 - y0)
    out[#out + 1] = 'set border 15 lw 1 lc rgb "#000000"'
    out[#out + 1] = 'set tics out nomirror scale 0.6'
    out[#out + 1] = 'set style fill solid 1.0 noborder'
    if ax.title then out[#out + 1] = 'set title ' .. gpstr(ax.title) .. fmt(" font ',%g'", fs + 1) end
    if ax.xlabel then out[#out + 1] = 'set xlabel ' .. gpstr(ax.xlabel) end
    if ax.ylabel then out[#out + 1] = 'set ylabel ' .. gpstr(ax.ylabel) end
    if ax.grid then
      out[#out + 1] = 'set grid xtics ytics back lt 1 lw 0.8 lc rgb "#b0b0b0" dt 1'
    end
    if ax.xlog then out[#out + 1] = 'set logscale x' end
    if ax.ylog then out[#out + 1] = 'set logscale y' end
    -- ranges
    if has_image then
      local img = plan.images[1].img
      local xr = ax.xlim and range_str(ax.xlim) or fmt('[0.5:%g]', img.w + 0.5)
      local yr
      if ax.ylim then yr = range_str(ax.ylim)
      elseif img.origin == 'upper' then yr = fmt('[%g:0.5]', img.h + 0.5)
      else yr = fmt('[0.5:%g]', img.h + 0.5) end
      out[#out + 1] = 'set xrange ' .. xr
      out[#out + 1] = 'set yrange ' .. yr
    else
      local ylim = ax.ylim or bars_ylim(ax)
      if ax.xlim then out[#out + 1] = 'set xrange ' .. range_str(ax.xlim) end
      if ylim then out[#out + 1] = 'set yrange ' .. range_str(ylim) end
      -- matplotlib-like autoscaling: the data range plus 5% margins, not rounded to tics
      if not ax.tight and (not ax.xlim or not ylim) and #plan.series > 0 then
        out[#out + 1] = 'set autoscale fix'
        local mx = ax.xlim and '0' or 'graph 0.05'
        local my = ylim and '0' or 'graph 0.05'
        if ax.xlog then mx = '0' end
        if ax.ylog then my = '0' end
        out[#out + 1] = fmt('set offsets %s, %s, %s, %s', mx, mx, my, my)
      elseif ax.tight then
        out[#out + 1] = 'set autoscale fix'
      end
    end
    -- ticks
    local hide_ticks = ax.axis_off or (has_image and not ax.ticks_on)
    if ax.xticks then out[#out + 1] = tics_cmd('x', ax.xticks)
    elseif hide_ticks then out[#out + 1] = 'unset xtics'
    elseif has_image and plan.images[1].img.w <= 16 then out[#out + 1] = 'set xtics 1' end
    if ax.yticks then out[#out + 1] = tics_cmd('y', ax.yticks)
    elseif hide_ticks then out[#out + 1] = 'unset ytics'
    elseif has_image and plan.images[1].img.h <= 16 then out[#out + 1] = 'set ytics 1' end
    if ax.axis_off then
      out[#out + 1] = 'unset border'
      out[#out + 1] = 'unset xlabel'
      out[#out + 1] = 'unset ylabel'
      out[#out + 1] = 'unset grid'
    end
    -- colours
    local palette = ax.palette
    for _, p in ipairs(plan.images) do
      if p.img.ch == 1 then palette = p.img.cmap end
    end
    if palette then out[#out + 1] = palette_cmd(palette, 'plot') end
    local vmin, vmax
    for _, p in ipairs(plan.images) do
      if p.img.ch == 1 then vmin, vmax = p.img.vmin, p.img.vmax end
    end
    if ax.cbrange then vmin, vmax = ax.cbrange[1], ax.cbrange[2] end
    if vmin or vmax then out[#out + 1] = 'set cbrange ' .. range_str({ vmin, vmax }) end
    if ax.colorbar then
      out[#out + 1] = 'set colorbox'
      out[#out + 1] = 'set cbtics out nomirror scale 0.6'
    else
      out[#out + 1] = 'unset colorbox'
    end
    -- legend
    local any_label = false
    for _, s in ipairs(ax.series) do if s.label then any_label = true end end
    if ax.legend and any_label then
      local lg = ax.legend
      local k = 'set key ' .. lg.loc .. ' vertical Left reverse samplen 2 spacing 1.1'
      if lg.frameon then k = k .. ' box lw 1 lc rgb "#cccccc" opaque' else k = k .. ' nobox' end
      if lg.fontsize then k = k .. fmt(" font ',%g'", lg.fontsize) end
      if lg.ncol and lg.ncol > 1 then
        local nlab = 0
        for _, s in ipairs(ax.series) do if s.label then nlab = nlab + 1 end end
        k = k .. fmt(' maxrows %d', math.max(1, math.ceil(nlab / lg.ncol)))
      end
      if lg.title then k = k .. ' title ' .. gpstr(lg.title) end
      out[#out + 1] = k
    else
      out[#out + 1] = 'unset key'
    end
    for i, t in ipairs(ax.texts or {}) do
      out[#out + 1] = fmt('set label %d %s at %s,%s front', i, gpstr(t[3]), num(t[1]), num(t[2]))
    end
    -- plot command
    local items = {}
    for _, p in ipairs(plan.images) do
      if p.img.ch == 1 then
        items[#items + 1] = p.name .. ' matrix using ($1+1):($2+1):3 with image notitle'
      elseif p.img.ch == 3 then
        items[#items + 1] = p.name .. ' using 1:2:3:4:5 with rgbimage notitle'
      else
        items[#items + 1] = p.name .. ' using 1:2:3:4:5:6 with rgbalpha notitle'
      end
    end
    for _, p in ipairs(plan.series) do
      local s = p.s
      if #s.x > 0 then   -- plot({}): nothing to draw (gnuplot refuses an empty datablock)
        local title = (ax.legend and s.label) and ('title ' .. gpstr(s.label)) or 'notitle'
        items[#items + 1] = fmt('%s using %s %s %s', p.name, s.using or '1:2', title, s.style)
      end
    end
    if #items == 0 then
      -- empty axes: draw the frame only
      if not ax.xlim then out[#out + 1] = 'set xrange [0:1]' end
      if not ax.ylim then out[#out + 1] = 'set yrange [0:1]' end
      items[1] = '-1e300 notitle'
    end
    out[#out + 1] = 'plot ' .. concat(items, ', \\\n     ')
  end
  if #fig.axes == 0 and fig.suptitle then
    out[#out + 1] = 'set xrange [0:1]'
    out[#out + 1] = 'set yrange [0:1]'
    out[#out + 1] = 'unset border'
    out[#out + 1] = 'unset tics'
    out[#out + 1] = 'unset key'
    out[#out + 1] = 'plot -1e300 notitle'
  end
  out[#out + 1] = 'unset multiplot'
  if output then out[#out + 1] = 'unset output' end
  out[#out + 1] = ''
  return concat(out, '\n')
end
M._build_script = build_script

----------------------------------------------------------------------------------------------
-- Running gnuplot
----------------------------------------------------------------------------------------------

local gnuplot_override = nil
local exec_cache = {}
local terminals_cache = nil
local output_dir = nil
local backend = nil          -- nil (auto), 'png' or 'window'
local last_script = nil
local display_failure = nil  -- why show() could not open a window, once it failed (kept)

local NOT_FOUND = 'plot: gnuplot not found (install it with: apt-get install gnuplot-nox)'

-- os.execute's result as an exit status; death by signal n reads 128 + n, as in the shell
-- (LuaJIT's os.execute returns system()'s raw wait status: n itself for a signal).
local function exit_code(a, b, c)
  if type(a) == 'number' then
    if a > 255 then return floor(a / 256) end
    if a > 0 and a < 128 then return 128 + a end
    return a
  end
  if a == true then return 0 end
  if b == 'exit' then return c or 1 end
  if b == 'signal' then return 128 + (c or 0) end
  return 1
end

local function is_executable(p)
  if exec_cache[p] ~= nil then return exec_cache[p] end
  local ok = exit_code(os.execute('test -f ' .. shquote(p) .. ' && test -x ' .. shquote(p))) == 0
  exec_cache[p] = ok
  return ok
end

--- Sets the gnuplot executable (nil: search PATH; $NNLUA_GNUPLOT also works).
function M.set_gnuplot_path(p)
  gnuplot_override = p
  terminals_cache = nil
  display_failure = nil
end

local function find_gnuplot()
  local p = gnuplot_override or os.getenv('NNLUA_GNUPLOT')
  if p and p ~= '' then
    if p:find('/') then
      if is_executable(p) then return p end
      error("plot: gnuplot not found at '" .. p .. "' (install it with: apt-get install gnuplot-nox)", 0)
    end
  else
    p = 'gnuplot'
  end
  for dir in (os.getenv('PATH') or '/usr/bin:/bin'):gmatch('[^:]+') do
    local full = dir .. '/' .. p
    if is_executable(full) then return full end
  end
  error(NOT_FOUND, 0)
end

--- The gnuplot executable that would be used (errors if none).
function M.gnuplot_path() return find_gnuplot() end

--- The terminals this gnuplot offers, as a set {pngcairo = true, ...}.
function M.terminals()
  if terminals_cache then return terminals_cache end
  local gp = find_gnuplot()
  local t = {}
  local f = io.popen(shquote(gp) .. [[ -e "set print '-'; print GPVAL_TERMINALS" </dev/null 2>/dev/null]])
  if f then
    local s = f:read('*a') or ''
    f:close()
    for name in s:gmatch('%S+') do t[name] = true end
  end
  if next(t) == nil then t.png = true end
  terminals_cache = t
  return t
end

local function read_file(path)
  local f = io.open(path, 'rb')
  if not f then return '' end
  local s = f:read('*a') or ''
  f:close()
  return s
end

-- Extracts gnuplot's error (if any) from its stderr; prints warnings.
local function check_stderr(who, err, code)
  local lines = {}
  for l in err:gmatch('[^\n]+') do lines[#lines + 1] = l end
  local message
  for i, l in ipairs(lines) do
    local msg = l:match('line %d+: .*$')
    if msg then
      if msg:match('^line %d+: warning:') then
        io.stderr:write('[plot] gnuplot ' .. msg .. '\n')
      elseif not message then
        -- the offending command is printed two lines above ("cmd" / "   ^" / "line N: msg")
        local cmd
        if lines[i - 1] and lines[i - 1]:match('^%s*%^%s*$') and lines[i - 2] then
          cmd = lines[i - 2]:gsub('^%s+', ''):gsub('%s+$', '')
        end
        message = msg .. (cmd and cmd ~= '' and (' (in: ' .. cmd .. ')') or '')
      end
    end
  end
  if message then error(who .. ': gnuplot: ' .. message, 0) end
  if code == 130 then error(who .. ': interrupted (Ctrl-C stopped gnuplot)', 0) end
  if code ~= 0 then
    local text = err:gsub('^%s+', ''):gsub('%s+$', '')
    if code == 127 then error(NOT_FOUND, 0) end
    error(fmt('%s: gnuplot: exited with status %d%s', who, code,
              text ~= '' and (': ' .. text) or ''), 0)
  end
end

local setsid_path = false     -- false: not looked up yet; nil: none

-- The setsid command (util-linux), or nil.
local function find_setsid()
  if setsid_path == false then
    setsid_path = nil
    for dir in (os.getenv('PATH') or '/usr/bin:/bin'):gmatch('[^:]+') do
      if is_executable(dir .. '/setsid') then setsid_path = dir .. '/setsid'; break end
    end
  end
  return setsid_path
end

-- Runs gnuplot on a script (synchronously), raising on gnuplot errors.
-- Ctrl-C must not reach gnuplot itself: caught while it draws, gnuplot (5.4) jumps out of its
-- SIGINT handler with SIGINT still blocked and hangs, and the REPL with it. So gnuplot runs in
-- a session of its own, and the shell that waits for it ends it (SIGTERM) on Ctrl-C and exits
-- with 130, which reads as "interrupted".
local function run_gnuplot(who, script)
  local gp = find_gnuplot()
  last_script = script
  local sfile = os.tmpname()
  local efile = os.tmpname()
  local f = assert(io.open(sfile, 'wb'))
  f:write(script)
  f:close()
  local cmd = shquote(gp) .. ' ' .. shquote(sfile) .. ' </dev/null >/dev/null 2>' .. shquote(efile)
  local setsid = find_setsid()
  if setsid then
    cmd = "trap 'kill $p 2>/dev/null; exit 130' INT; " .. shquote(setsid) .. ' ' .. cmd ..
          ' & p=$!; wait $p'
  end
  local code = exit_code(os.execute(cmd))
  local err = read_file(efile)
  os.remove(sfile)
  os.remove(efile)
  check_stderr(who, err, code)
end

--- The last script sent to gnuplot (for debugging).
function M.last_script() return last_script end

local function term_for(fig, ext, who)
  local terms = M.terminals()
  local w, h = fig.width, fig.height
  local font = fmt("font 'sans,%g'", fig.fontsize)
  local bg = fig.facecolor and (" background '" .. gpcolor(fig.facecolor, who) .. "'") or ''
  if ext == 'png' then
    if terms.pngcairo then
      return fmt('set terminal pngcairo size %d,%d noenhanced %s%s', w, h, font, bg)
    end
    return fmt('set terminal png size %d,%d noenhanced %s%s', w, h, font, bg)
  elseif ext == 'svg' then
    return fmt('set terminal svg size %d,%d noenhanced %s%s', w, h, font, bg)
  elseif ext == 'pdf' then
    if not terms.pdfcairo then error(who .. ': this gnuplot has no pdfcairo terminal', 3) end
    return fmt('set terminal pdfcairo size %gin,%gin noenhanced %s', w / fig.dpi, h / fig.dpi, font)
  elseif ext == 'eps' then
    if terms.epscairo then
      return fmt('set terminal epscairo size %gin,%gin noenhanced %s', w / fig.dpi, h / fig.dpi, font)
    end
    return fmt('set terminal postscript eps color noenhanced size %gin,%gin', w / fig.dpi, h / fig.dpi)
  end
  error(fmt("%s: unsupported file type '.%s' (use .png, .svg, .pdf or .eps)", who, tostring(ext)), 3)
end

local function render_file(fig, path, who, opts)
  if type(path) ~= 'string' or path == '' then error(who .. ': expected a file name', 3) end
  local ext = (path:match('%.(%w+)$') or 'png'):lower()
  local dpi = opts and opts.dpi
  if dpi ~= nil and (type(dpi) ~= 'number' or not (dpi > 0) or dpi == huge) then
    error(who .. ': dpi must be a positive number, got ' .. tostring(dpi), 3)
  end
  local saved_w, saved_h = fig.width, fig.height
  if opts and opts.dpi then
    fig.width = floor(fig.width * opts.dpi / fig.dpi + 0.5)
    fig.height = floor(fig.height * opts.dpi / fig.dpi + 0.5)
  end
  local ok, err = pcall(function()
    local term = term_for(fig, ext, who)
    -- make sure the file can be written, with the system's reason if not
    local f, ferr = io.open(path, 'wb')
    if not f then error(who .. ': cannot write ' .. ferr, 0) end
    f:close()
    run_gnuplot(who, build_script(fig, term, path))
  end)
  fig.width, fig.height = saved_w, saved_h
  if not ok then error(err, 0) end
  return path
end

--- plot.savefig(path [, {dpi =}]) renders the current figure to path (.png via pngcairo if
-- available, else png; also .svg, .pdf, .eps). Raises gnuplot's message if it fails.
function M.savefig(path, opts)
  check_opts('plot.savefig', opts, set { 'dpi', 'bbox_inches', 'transparent' })
  return render_file(M.gcf(), path, 'plot.savefig', opts)
end

function Figure:savefig(path, opts)
  check_opts('Figure:savefig', opts, set { 'dpi', 'bbox_inches', 'transparent' })
  return render_file(self, path, 'plot.savefig', opts)
end

--- Sets the folder show() writes PNG files into when there is no display.
function M.set_output_dir(dir) output_dir = dir end
function M.get_output_dir() return output_dir or os.getenv('NNLUA_FIGURES') or 'figures' end

--- plot.set_backend('png' | 'window' | 'terminal' | 'sixel' | nil (automatic)).
-- 'terminal' (alias 'dumb') makes show() draw in the terminal as text, 'sixel' as sixel
-- graphics (for terminals that support them); see show_in_terminal below.
function M.set_backend(b)
  if b == 'dumb' then b = 'terminal' end
  if b ~= nil and b ~= 'png' and b ~= 'window' and b ~= 'terminal' and b ~= 'sixel' then
    error("plot.set_backend: expected 'png', 'window', 'terminal', 'sixel' or nil", 2)
  end
  backend = b
end
function M.get_backend() return backend end

-- The window terminal show() should use, or nil and (when a window was wanted: a display is
-- set, or the backend asks for one) the reason there is none, said once to the user.
local function window_terminal()
  local mode = backend or os.getenv('NNLUA_PLOT')
  if mode == 'png' or mode == 'file' then return nil end
  local display = os.getenv('DISPLAY') or os.getenv('WAYLAND_DISPLAY')
  local asked = mode == 'window' or mode == 'qt' or mode == 'wxt' or mode == 'x11' or mode == 'aqua'
  if (not display or display == '') and not asked then return nil end
  local terms = M.terminals()
  local wanted = { 'qt', 'wxt', 'x11', 'aqua' }
  if mode == 'qt' or mode == 'wxt' or mode == 'x11' or mode == 'aqua' then wanted = { mode } end
  for _, t in ipairs(wanted) do
    if terms[t] then return t end
  end
  if #wanted == 1 then
    return nil, fmt('this gnuplot has no %s terminal (NNLUA_PLOT=%s)', wanted[1], wanted[1])
  end
  return nil, 'no window terminal in this gnuplot (install gnuplot-qt or gnuplot-x11)'
end

local shown_count = 0
local used_names = {}

local function figure_file_name(fig)
  local title = fig.name or fig.suptitle
  if title then
    local base = tostring(title):gsub('[^%w_%-]+', '_'):gsub('^_+', ''):gsub('_+$', ''):sub(1, 60)
    if base ~= '' then
      local name = base
      local k = 1
      while used_names[name] do k = k + 1; name = base .. '_' .. k end
      used_names[name] = true
      return name .. '.png'
    end
  end
  shown_count = shown_count + 1
  return fmt('figure_%03d.png', shown_count)
end

local function mkdir_p(dir, who)
  if exit_code(os.execute('mkdir -p ' .. shquote(dir) .. ' 2>/dev/null')) ~= 0 then
    error(fmt("%s: cannot create directory '%s'", who, dir), 0)
  end
end

-- gnuplot's messages when it cannot reach the display (wxt, x11, qt).
local DISPLAY_FAILURES = { 'unable to open display', 'cannot open display', 'could not connect to display',
                           'unable to initialize gtk', 'failed to initialize wxwidgets', 'x11 aborted',
                           'no qt platform plugin', 'could not load the qt platform plugin' }

local WINDOW_TIMEOUT = 30     -- seconds gnuplot may take to open a window

-- The first line of err naming a display failure, or nil.
local function display_failure_in(err)
  local lower = err:lower()
  for _, pat in ipairs(DISPLAY_FAILURES) do
    if lower:find(pat, 1, true) then
      for l in err:gmatch('[^\n]+') do
        if l:lower():find(pat, 1, true) then
          return (l:gsub('^%d+:%d+:%d+: ', ''):gsub('^%s+', ''):gsub('^gnuplot: ', ''):gsub('%s+$', ''))
        end
      end
    end
  end
  return nil
end

-- Opens a window for fig with gnuplot -persist. gnuplot runs to the end of the script and exits,
-- while the window stays up in a process of its own (gnuplot_qt, gnuplot_x11 or wxt's forked
-- child) until the user closes it; gnuplot is started in a session of its own (setsid) so that
-- Ctrl-C in the REPL does not close the windows. show() waits for gnuplot to exit (a fraction of
-- a second), so gnuplot's errors reach the user, but never longer than WINDOW_TIMEOUT, and it
-- stops waiting as soon as gnuplot says that it cannot reach the display (gnuplot's qt terminal
-- would otherwise wait a minute for a gnuplot_qt that has already given up).
-- Returns true, or false and the reason when no window could be opened; raises gnuplot's error
-- for a faulty script.
local function show_window(fig, term)
  local script = build_script(fig, fmt("set terminal %s %d size %d,%d persist noenhanced font 'sans,%g' title %s",
    term, fig.id, fig.width, fig.height, fig.fontsize, gpstr('Figure ' .. fig.id)), nil)
  -- gnuplot 5.4's window terminals hide every titled plot of a multiplot with an opaque key when
  -- the multiplot is closed, so the window's script leaves it open: gnuplot exits right after.
  script = script:gsub('\nunset multiplot\n', '\n')
  -- a dry run on gnuplot's 'unknown' terminal (no output, cheap) first, so that a faulty
  -- script raises its error without leaving an empty window behind
  run_gnuplot('plot.show', build_script(fig, 'set terminal unknown', nil))
  local setsid_path = find_setsid()
  local gp = find_gnuplot()
  last_script = script
  local sfile, efile, pfile, rfile = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(sfile, 'wb'))
  f:write(script)
  f:close()
  local run = shquote(gp) .. ' -persist ' .. shquote(sfile) .. ' </dev/null >/dev/null 2>' .. shquote(efile)
  if setsid_path then run = shquote(setsid_path) .. ' ' .. run end
  -- in the background (which also makes it ignore SIGINT where there is no setsid); the pid and
  -- then the exit status come back in files
  os.execute('(' .. run .. ' & echo $! >' .. shquote(pfile) .. '; wait $!; echo $? >' .. shquote(rfile)
             .. '.tmp; mv ' .. shquote(rfile .. '.tmp') .. ' ' .. shquote(rfile) .. ') </dev/null >/dev/null 2>&1 &')
  local t0, delay = os.time(), 0.005
  local code, failure
  while true do
    local r = read_file(rfile):match('%d+')
    if r then code = tonumber(r) break end
    failure = display_failure_in(read_file(efile))
    if not failure and os.difftime(os.time(), t0) > WINDOW_TIMEOUT then
      failure = fmt('gnuplot did not open the window within %d s', WINDOW_TIMEOUT)
    end
    if failure then
      local pid = read_file(pfile):match('%d+')
      if pid then
        -- setsid made gnuplot the leader of a process group of its own: end that whole group
        os.execute('kill ' .. (setsid_path and ('-- -' .. pid) or pid) .. ' 2>/dev/null')
      end
      for _ = 1, 50 do                       -- let the background shell finish (1 s at most)
        if read_file(rfile) ~= '' then break end
        os.execute('sleep 0.02')
      end
      break
    end
    os.execute('sleep ' .. delay)
    delay = math.min(delay * 2, 0.05)
  end
  local err = read_file(efile)
  for _, p in ipairs { sfile, efile, pfile, rfile } do os.remove(p) end
  failure = failure or display_failure_in(err)
  if failure then
    local display = os.getenv('DISPLAY') or os.getenv('WAYLAND_DISPLAY') or ''
    return false, fmt('cannot open a window on display %s (gnuplot %s terminal: %s)',
                      display ~= '' and display or '(none)', term, failure)
  end
  check_stderr('plot.show', err, code)
  return true
end

----------------------------------------------------------------------------------------------
-- Drawing in the terminal (the REPL without a display): gnuplot's dumb terminal (text, ANSI
-- colours when stdout is a terminal) or sixelgd. Selected by set_backend('terminal'|'sixel')
-- or NNLUA_PLOT=terminal|dumb|sixel.
----------------------------------------------------------------------------------------------

local function terminal_mode()
  local mode = backend or os.getenv('NNLUA_PLOT')
  if mode == 'terminal' or mode == 'dumb' then return 'terminal' end
  if mode == 'sixel' then return 'sixel' end
  return nil
end

-- Columns and rows of the controlling terminal ($COLUMNS/$LINES, else stty), default 80x24.
local function terminal_size()
  local cols, rows = tonumber(os.getenv('COLUMNS')), tonumber(os.getenv('LINES'))
  if not cols or not rows then
    local f = io.popen('stty size </dev/tty 2>/dev/null')
    local s = f and f:read('*a') or ''
    if f then f:close() end
    local r, c = s:match('(%d+)%s+(%d+)')
    rows, cols = rows or tonumber(r), cols or tonumber(c)
  end
  cols = (cols and cols >= 20) and cols or 80
  rows = (rows and rows >= 8) and rows or 24
  return cols, rows
end
M._terminal_size = terminal_size

-- gnuplot's dumb terminal cannot draw images, so images are drawn here: two characters per
-- pixel, ANSI 256-colour backgrounds through the colour map when `colour`, else an ASCII ramp.
local RAMP = ' .:-=+*#%@'
local function image_lines(img, max_w, colour)
  local d, w, h, ch = img.data, img.w, img.h, img.ch
  local step = math.max(1, math.ceil(w * 2 / math.max(2, max_w)))   -- subsample wide images
  local vals = {}
  local lo, hi = huge, -huge
  for r = 1, h, step do
    for c = 1, w, step do
      local v
      if ch == 1 then v = d[(r - 1) * w + c]
      else
        local b = ((r - 1) * w + (c - 1)) * ch
        v = 0.299 * d[b + 1] + 0.587 * d[b + 2] + 0.114 * d[b + 3]
      end
      if v ~= v then v = 0 end
      vals[#vals + 1] = v
      if v < lo then lo = v end
      if v > hi then hi = v end
    end
  end
  if ch == 1 then lo, hi = img.vmin or lo, img.vmax or hi end
  local span = hi > lo and hi - lo or 1
  local cmap = ch == 1 and img.cmap or 'gray'
  local lines, k = {}, 0
  for _ = 1, h, step do
    local row = {}
    for _ = 1, w, step do
      k = k + 1
      local t = clamp01((vals[k] - lo) / span)
      if colour then
        local c = M.cm[cmap] and M.cm[cmap](t) or { t, t, t }
        local q = function(x) return floor(clamp01(x) * 5 + 0.5) end
        row[#row + 1] = fmt('\27[48;5;%dm  ', 16 + 36 * q(c[1]) + 6 * q(c[2]) + q(c[3]))
      else
        if cmap == 'gray_r' or cmap == 'binary' or cmap == 'Greys' then t = 1 - t end
        local ch1 = RAMP:sub(floor(t * (#RAMP - 1) + 0.5) + 1):sub(1, 1)
        row[#row + 1] = ch1 .. ch1
      end
    end
    lines[#lines + 1] = concat(row) .. (colour and '\27[0m' or '')
  end
  return lines, math.ceil(w / step) * 2
end

-- The images of a figure as text blocks (one per axes with an image, titled), laid out
-- left to right and wrapped at the terminal width.
local function images_text(fig, cols, colour)
  local blocks = {}
  for _, ax in ipairs(fig.axes) do
    local img = ax.images[#ax.images]
    if img then
      local lines, width = image_lines(img, cols - 2, colour)
      local title = ax.title and tostring(ax.title):sub(1, width) or ''
      table.insert(lines, 1, title .. (' '):rep(width - #title))
      blocks[#blocks + 1] = { lines = lines, width = width }
    end
  end
  if #blocks == 0 then return '' end
  local out = {}
  if fig.suptitle then out[#out + 1] = tostring(fig.suptitle) end
  local i = 1
  while i <= #blocks do
    local row, used = {}, 0
    repeat
      row[#row + 1] = blocks[i]
      used = used + blocks[i].width + 2
      i = i + 1
    until i > #blocks or used + blocks[i].width > cols
    local height = 0
    for _, b in ipairs(row) do height = math.max(height, #b.lines) end
    for l = 1, height do
      local parts = {}
      for _, b in ipairs(row) do parts[#parts + 1] = b.lines[l] or (' '):rep(b.width) end
      out[#out + 1] = concat(parts, '  ')
    end
    out[#out + 1] = ''
  end
  return concat(out, '\n') .. '\n'
end
M._images_text = images_text

local function show_in_terminal(fig, mode)
  local term
  if mode == 'terminal' then
    local cols = terminal_size()
    local colour = os.getenv('NO_COLOR') == nil and os.getenv('TERM') ~= 'dumb'
                   and exit_code(os.execute('test -t 1')) == 0
    local has_series = false
    for _, ax in ipairs(fig.axes) do if #ax.series > 0 then has_series = true end end
    io.write(images_text(fig, cols, colour))
    if not has_series then io.flush() return end
  end
  if mode == 'sixel' then
    if not M.terminals().sixelgd then error('plot.show: this gnuplot has no sixelgd terminal', 0) end
    term = fmt("set terminal sixelgd size %d,%d truecolor noenhanced font 'sans,%g'",
               fig.width, fig.height, fig.fontsize)
  else
    local cols, rows = terminal_size()
    local colour = os.getenv('NO_COLOR') == nil and os.getenv('TERM') ~= 'dumb'
                   and exit_code(os.execute('test -t 1')) == 0
    term = fmt('set terminal dumb size %d,%d noenhanced%s', cols - 1, math.min(rows - 2, floor(cols / 2.5)),
               colour and ' ansi256' or ' mono')
  end
  local out = os.tmpname()
  local ok, err = pcall(run_gnuplot, 'plot.show', build_script(fig, term, out))
  local text = read_file(out)
  os.remove(out)
  if not ok then error(err, 0) end
  io.write((text:gsub('^\f', '')))
  io.flush()
end

--- plot.show(): displays every open figure (a window when a display is available; in the
-- terminal with the 'terminal'/'sixel' backend; otherwise a PNG in the output folder, printing
-- "[plot] saved <path>"), then closes them. Windows do not block: the script goes on and the
-- windows stay until closed (gnuplot -persist). When a window was wanted but cannot be had (no
-- window terminal in this gnuplot, display unreachable) it says why once, on the line of the
-- first file it writes instead, and writes files from then on.
-- Returns the list of files written (empty when windows were opened).
local noted = {}

local function window_for_show()
  local term, why = window_terminal()
  if term and display_failure then return nil, display_failure end
  return term, why
end

function M.show()
  local written = {}
  local figs = figures
  figures, current = {}, nil
  local tmode = #figs > 0 and terminal_mode() or nil
  local term, why
  if #figs > 0 and not tmode then term, why = window_for_show() end
  local first_err
  for _, fig in ipairs(figs) do
    local ok, err = pcall(function()
      if tmode then
        show_in_terminal(fig, tmode)
        return
      elseif term then
        local opened, reason = show_window(fig, term)
        if opened then return end
        term, why, display_failure = nil, reason, reason
      end
      local dir = M.get_output_dir()
      mkdir_p(dir, 'plot.show')
      local path = dir:gsub('/+$', '') .. '/' .. figure_file_name(fig)
      render_file(fig, path, 'plot.show')
      if why and not noted[why] then
        noted[why] = true
        print('[plot] ' .. why .. '; saved ' .. path)
      else
        print('[plot] saved ' .. path)
      end
      written[#written + 1] = path
    end)
    if not ok and not first_err then first_err = err end
  end
  if first_err then error(first_err, 0) end
  return written
end

--- plot.window_terminal(): the gnuplot terminal show() opens windows with ('qt', 'wxt', 'x11'),
-- or nil (and, when a window was wanted, the reason) when show() writes files instead.
function M.window_terminal()
  if terminal_mode() then return nil end
  return window_for_show()
end

--- plot.write_png_image(path, a, {scale = k, vmin =, vmax =}): writes a 2-D array as a grayscale
-- PNG (or (H, W, 3|4) as RGB(A)) without gnuplot; values are min-max normalized unless vmin/vmax
-- are given. See nnlua.png.
function M.write_png_image(path, a, opts)
  opts = check_opts('plot.write_png_image', opts, set { 'scale', 'vmin', 'vmax' })
  local png = require 'nnlua.png'
  local o = { scale = opts.scale, vmin = opts.vmin, vmax = opts.vmax }
  if o.vmin == nil or o.vmax == nil then o.normalize = true end
  return png.write_image(path, a, o)
end

M.Figure, M.Axes = Figure, Axes
return M
