-- nnlua.monitor: NNabla's training monitors and tile_images.
--
--   local M = require 'nnlua.monitor'
--   local monitor = M.Monitor('tmp.monitor')
--   local mloss = M.MonitorSeries('Training loss', monitor, {interval = 10})
--   local mtime = M.MonitorTimeElapsed('Training time', monitor, {interval = 100})
--   local mimg  = M.MonitorImageTile('Generated', monitor, {interval = 1000, num_images = 64})
--   for i = 0, 9999 do
--     ...
--     mloss:add(i, loss.d)   -- number, NdArray or Variable (its mean is taken)
--     mtime:add(i)
--     mimg:add(i, x)         -- (N, ..., C, H, W)
--   end
--
-- Semantics and file formats are NNabla's (python/src/nnabla/monitor.py):
--   MonitorSeries: values are buffered; when index - flush_at >= interval (flush_at starts at
--     -1) the mean of the buffer is logged as "iter=<index> {<name>}=<mean>" and appended to
--     <save_path>/<name, spaces -> '-'>.series.txt as "<index> <mean %g>" (file truncated at
--     creation).
--   MonitorTimeElapsed: same cadence, <name>.timer.txt lines
--     "<index> <elapsed since last flush> <iterations since last flush> <total elapsed>".
--   MonitorImage: on index == 0 or (index + 1) % interval == 0, writes num_images images
--     <save_path>/<name>/<index %06d>-<j %03d>.png (j from 0), min-max normalized by default.
--   MonitorImageTile: the same images tiled into one <save_path>/<name>/<index %06d>.png.
-- Log lines go through monitor.log (print by default; replace it to redirect).

local png = require 'nnlua.png'
local values = require 'nnlua.values'

local M = {}

local floor, ceil, sqrt, fmt = math.floor, math.ceil, math.sqrt, string.format

--- The logging function used by the monitors (print by default).
M.log = function(msg) print(msg) end

local function log(msg) M.log(msg) end

----------------------------------------------------------------------------------------------
-- helpers
----------------------------------------------------------------------------------------------

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function exit_code(a, b, c)
  if type(a) == 'number' then
    if a > 255 then return floor(a / 256) end
    return a
  end
  if a == true then return 0 end
  return c or 1
end

local function mkdir_p(dir, who)
  if exit_code(os.execute('mkdir -p ' .. shquote(dir) .. ' 2>/dev/null')) ~= 0 then
    error(fmt("%s: cannot create directory '%s'", who, dir), 3)
  end
end

local function join(a, b)
  return (tostring(a):gsub('/+$', '')) .. '/' .. b
end

-- Flat values and shape of a number, NdArray (shape + :flat()), Variable (.d), nested table or
-- flat list (nnlua.values); raises "<who>: ..." at the caller's caller.
local array_of = values.reader {
  type = 'expected a number, an NdArray, a Variable or a Lua table, got %s',
  element = 'non-numeric element in table',
  ragged = 'ragged nested table (dimension %d)',
}
M._array_of = array_of

-- Nested Lua tables from a flat list and a shape.
local nest = values.nest
M._nest = nest

-- An NdArray when nnlua.ndarray is available; else nested tables (as_nested) or a minimal
-- array object (shape, :flat(), :totable()).
local function make_array(flat, shape, as_nested)
  local N = values.ndarray()
  if N then return N.from_flat(flat, shape) end
  if as_nested then return nest(flat, shape) end
  return values.plain(flat, shape)
end

-- Python's repr of a float (shortest round-trip digits), as in NNabla's log lines.
local function py_float(v)
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
  if v == 0 then return (1 / v < 0) and '-0.0' or '0.0' end
  local s
  for p = 1, 17 do
    s = fmt('%.' .. (p - 1) .. 'e', v)
    if tonumber(s) == v then break end
  end
  local sign, d1, rest, e = s:match('^(-?)(%d)%.?(%d*)e([-+]%d+)$')
  local exp = tonumber(e)
  rest = rest:gsub('0+$', '')
  if exp >= -4 and exp < 16 then
    local decimals = math.max(#rest - exp, 0)
    local out = fmt('%.' .. decimals .. 'f', v)
    if decimals == 0 then out = out .. '.0' end
    return out
  end
  local mant = d1 .. (rest ~= '' and ('.' .. rest) or '')
  return fmt('%s%se%s%02d', sign, mant, exp < 0 and '-' or '+', math.abs(exp))
end
M._py_float = py_float

-- Python's "{:g}" of a float.
local function py_g(v)
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
  return fmt('%g', v)
end

-- Python's "{}" of an index (int) or a float.
local function py_num(v)
  if type(v) == 'number' and v == floor(v) and math.abs(v) < 2 ^ 53 then return fmt('%d', v) end
  if type(v) == 'number' then return py_float(v) end
  return tostring(v)
end

-- A value as error messages show it (strings quoted: '5' is not 5).
local function show(v)
  if type(v) == 'string' then return fmt("'%s' (a string)", v) end
  return tostring(v)
end

-- level: as the caller would pass it to error() (default 2).
local function check_opts(who, opts, allowed, level)
  level = (level or 2) + 1
  if opts == nil then return {} end
  if type(opts) ~= 'table' then error(who .. ': options must be a table', level) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for a in pairs(allowed) do names[#names + 1] = a end
      table.sort(names)
      error(fmt("%s: unknown option '%s' (known: %s)", who, tostring(k), table.concat(names, ', ')),
            level)
    end
  end
  return opts
end

-- Monitors take NNabla's positional arguments (names), an options table, or positional
-- arguments followed by an options table; raises at the caller's caller.
local function monitor_args(who, args, names, allowed)
  local opts, n = {}, #names
  for i = 1, n + 1 do
    local v = args[i]
    if type(v) == 'table' and getmetatable(v) == nil then
      local o = check_opts(who, v, allowed, 3)
      for k, x in pairs(o) do
        if opts[k] ~= nil then error(fmt("%s: option '%s' given twice", who, k), 3) end
        opts[k] = x
      end
      if args[i + 1] ~= nil then error(who .. ': unexpected argument after the options table', 3) end
      break
    end
    if i > n and v ~= nil then error(fmt('%s: too many arguments (got %s)', who, show(v)), 3) end
    if v ~= nil then opts[names[i]] = v end
  end
  if opts.verbose ~= nil and type(opts.verbose) ~= 'boolean' then
    error(fmt('%s: verbose must be true or false, got %s', who, show(opts.verbose)), 3)
  end
  return opts
end

local function class(name)
  local C = {}
  C.__index = C
  C.__name = name
  setmetatable(C, { __call = function(cls, ...) return cls.new(...) end })
  return C
end

local function check_monitor(who, monitor, required)
  if monitor == nil then
    if required then error(who .. ': a Monitor is required', 3) end
    return nil
  end
  if type(monitor) ~= 'table' or type(monitor.save_path) ~= 'string' then
    error(who .. ': expected a Monitor (from monitor.Monitor(path))', 3)
  end
  return monitor
end

local function check_name(who, name)
  if type(name) ~= 'string' or name == '' then error(who .. ': name must be a non-empty string', 3) end
  return name
end

local function check_interval(who, v)
  if type(v) ~= 'number' or not (v >= 1) then
    error(fmt('%s: interval must be a number >= 1, got %s', who, show(v)), 3)
  end
  return v
end

-- self and index of an add() call (it.add(...) with a dot gets a clear error).
local function check_add(who, cls, self, index)
  if getmetatable(self) ~= cls then
    error(fmt('%s: call it with a colon, monitor:add(index, ...) (self was %s)', who,
              tostring(self)), 3)
  end
  if type(index) ~= 'number' or index ~= index then
    error(fmt('%s: index must be a number, got %s', who, show(index)), 3)
  end
end

-- Opens the log file of a series or timer monitor (mode 'w' at creation, 'a' after close).
local function open_log(self, who, mode, level)
  local f, err = io.open(self.path, mode)
  if not f then error(fmt('%s: cannot open %s', who, tostring(err)), level + 1) end
  self.fd = f
end

-- Appends a line to the log file; a failed write (a full disk) is an error, not a lost line.
local function write_log(self, who, line)
  if self.closed then open_log(self, who, 'a', 3); self.closed = false end
  local fd = self.fd
  local ok, err = fd:write(line)
  if ok then ok, err = fd:flush() end
  if not ok then error(fmt('%s: cannot write %s: %s', who, self.path, tostring(err)), 3) end
end

-- Closes the log file; a later add() appends to it again.
local function close_log(self)
  if self.fd then
    self.fd:close()
    self.fd, self.closed = nil, true
  end
end

----------------------------------------------------------------------------------------------
-- tile_images
----------------------------------------------------------------------------------------------

-- Core of tile_images on flat data: returns flat, shape.
local function tile_flat(flat, shape, padsize, padval, who)
  local B, C, H, W
  if #shape == 4 then B, C, H, W = shape[1], shape[2], shape[3], shape[4]
  elseif #shape == 3 then B, C, H, W = shape[1], 1, shape[2], shape[3]
  else
    error(fmt('%s: expected a (B, C, H, W) or (B, H, W) array, got shape {%s}', who,
              table.concat(shape, ',')), 3)
  end
  if B < 1 then error(fmt('%s: empty batch (shape {%s})', who, table.concat(shape, ',')), 3) end
  local n = ceil(sqrt(B))
  while n * n < B do n = n + 1 end
  while n > 1 and (n - 1) * (n - 1) >= B do n = n - 1 end
  local p = padsize
  local TH, TW = H + p, W + p
  local OH, OW = n * TH, n * TW
  local out = {}
  for i = 1, OH * OW * C do out[i] = padval end
  for b = 0, B - 1 do
    local gr, gc = floor(b / n), b % n
    for c = 0, C - 1 do
      local src = (b * C + c) * H * W
      for y = 0, H - 1 do
        local row = (gr * TH + y) * OW + gc * TW
        local srow = src + y * W
        for x = 0, W - 1 do
          out[(row + x) * C + c + 1] = flat[srow + x + 1]
        end
      end
    end
  end
  if C == 1 then return out, { OH, OW } end
  return out, { OH, OW, C }
end

--- monitor.tile_images(data [, padsize = 1 [, padval = 0]]) or (data, {padsize =, padval =})
-- data: (B, C, H, W) or (B, H, W). Tiles the B images on an n x n grid (n = ceil(sqrt(B))),
-- row-major, each padded by padsize at the bottom and right; empty tiles are padval.
-- Returns an (n*(H+p), n*(W+p)) array for C = 1, (n*(H+p), n*(W+p), C) otherwise: an NdArray
-- when nnlua.ndarray is available, nested Lua tables otherwise.
function M.tile_images(data, padsize, padval)
  if type(padsize) == 'table' then
    local o = check_opts('tile_images', padsize, { padsize = true, padval = true })
    padsize, padval = o.padsize, o.padval
  end
  padsize = padsize or 1
  padval = padval or 0
  if type(padsize) ~= 'number' or not (padsize >= 0) or padsize % 1 ~= 0 then
    error('tile_images: padsize must be a non-negative integer, got ' .. show(padsize), 2)
  end
  if type(padval) ~= 'number' then
    error('tile_images: padval must be a number, got ' .. show(padval), 2)
  end
  local flat, shape = array_of(data, 'tile_images')
  local out, oshape = tile_flat(flat, shape, padsize, padval, 'tile_images')
  return make_array(out, oshape, true)
end

----------------------------------------------------------------------------------------------
-- Monitor
----------------------------------------------------------------------------------------------

local Monitor = class('Monitor')
M.Monitor = Monitor

--- monitor.Monitor(save_path): creates the directory (and parents).
function Monitor.new(save_path)
  if type(save_path) ~= 'string' or save_path == '' then
    error('Monitor: save_path must be a non-empty string', 2)
  end
  mkdir_p(save_path, 'Monitor')
  return setmetatable({ save_path = save_path }, Monitor)
end

----------------------------------------------------------------------------------------------
-- MonitorSeries
----------------------------------------------------------------------------------------------

local MonitorSeries = class('MonitorSeries')
M.MonitorSeries = MonitorSeries

--- MonitorSeries(name [, monitor [, {interval = 1, verbose = true}]])
-- (also MonitorSeries(name, monitor, interval, verbose)).
function MonitorSeries.new(name, monitor, a, b)
  check_name('MonitorSeries', name)
  check_monitor('MonitorSeries', monitor, false)
  local opts = monitor_args('MonitorSeries', { a, b }, { 'interval', 'verbose' },
                            { interval = true, verbose = true })
  local self = setmetatable({
    name = name, interval = check_interval('MonitorSeries', opts.interval or 1),
    verbose = opts.verbose ~= false, flush_at = -1, buf_sum = 0, buf_n = 0,
  }, MonitorSeries)
  if monitor then
    self.path = join(monitor.save_path, name:gsub(' ', '-') .. '.series.txt')
    open_log(self, 'MonitorSeries', 'w', 2)
  end
  return self
end

--- series:add(index, value): value a number, an NdArray or a Variable (all elements averaged).
function MonitorSeries:add(index, value)
  check_add('MonitorSeries.add', MonitorSeries, self, index)
  if type(value) == 'number' then
    self.buf_sum = self.buf_sum + value
    self.buf_n = self.buf_n + 1
  else
    local flat = array_of(value, 'MonitorSeries.add')
    for i = 1, #flat do self.buf_sum = self.buf_sum + flat[i] end
    self.buf_n = self.buf_n + #flat
  end
  if index - self.flush_at < self.interval then return end
  local mean = self.buf_n > 0 and self.buf_sum / self.buf_n or 0 / 0
  if self.verbose then
    log(fmt('iter=%s {%s}=%s', py_num(index), self.name, py_float(mean)))
  end
  if self.path then write_log(self, 'MonitorSeries.add', py_num(index) .. ' ' .. py_g(mean) .. '\n') end
  self.flush_at = index
  self.buf_sum, self.buf_n = 0, 0
end

function MonitorSeries:close() close_log(self) end

----------------------------------------------------------------------------------------------
-- MonitorTimeElapsed
----------------------------------------------------------------------------------------------

local MonitorTimeElapsed = class('MonitorTimeElapsed')
M.MonitorTimeElapsed = MonitorTimeElapsed

local function now()
  return require('nnlua.progress').now()
end

--- MonitorTimeElapsed(name [, monitor [, {interval = 100, verbose = true}]])
function MonitorTimeElapsed.new(name, monitor, a, b)
  check_name('MonitorTimeElapsed', name)
  check_monitor('MonitorTimeElapsed', monitor, false)
  local opts = monitor_args('MonitorTimeElapsed', { a, b }, { 'interval', 'verbose' },
                            { interval = true, verbose = true, clock = true })
  local clock = opts.clock or now
  local t = clock()
  local self = setmetatable({
    name = name, interval = check_interval('MonitorTimeElapsed', opts.interval or 100),
    verbose = opts.verbose ~= false, flush_at = -1, start = t, lap = t, clock = clock,
  }, MonitorTimeElapsed)
  if monitor then
    self.path = join(monitor.save_path, name:gsub(' ', '-') .. '.timer.txt')
    open_log(self, 'MonitorTimeElapsed', 'w', 2)
  end
  return self
end

--- timer:add(index)
function MonitorTimeElapsed:add(index)
  check_add('MonitorTimeElapsed.add', MonitorTimeElapsed, self, index)
  if index - self.flush_at < self.interval then return end
  local t = self.clock()
  local elapsed = t - self.lap
  local total = t - self.start
  local it = index - self.flush_at
  self.lap = t
  if self.verbose then
    log(fmt('iter=%s {%s}=%s[sec/%siter] %s[sec]', py_num(index), self.name, py_float(elapsed),
            py_num(it), py_float(total)))
  end
  if self.path then
    write_log(self, 'MonitorTimeElapsed.add',
              fmt('%s %s %s %s\n', py_num(index), py_float(elapsed), py_num(it), py_float(total)))
  end
  self.flush_at = index
end

function MonitorTimeElapsed:close() close_log(self) end

----------------------------------------------------------------------------------------------
-- MonitorImage / MonitorImageTile
----------------------------------------------------------------------------------------------

local IMAGE_OPTS = { interval = true, verbose = true, num_images = true, normalize_method = true,
                     scale = true }

local function default_normalize(flat)
  local mn, mx = math.huge, -math.huge
  for i = 1, #flat do
    local v = flat[i]
    if v < mn then mn = v end
    if v > mx then mx = v end
  end
  local out = {}
  local range = mx - mn
  if range > 0 and range < math.huge then
    for i = 1, #flat do out[i] = (flat[i] - mn) / range end
  else
    for i = 1, #flat do out[i] = 0 end
  end
  return out
end

local IMAGE_ARGS = { 'interval', 'verbose', 'num_images', 'normalize_method' }

-- Called as a tail call: its level-2 errors reach the user's line.
local function image_new(cls, who, name, monitor, a, b, c, d, e)
  check_name(who, name)
  check_monitor(who, monitor, true)
  local opts = monitor_args(who, { a, b, c, d, e }, IMAGE_ARGS, IMAGE_OPTS)
  local self = setmetatable({
    name = name, interval = check_interval(who, opts.interval or 1000),
    verbose = opts.verbose ~= false, num_images = opts.num_images or 16,
    normalize_method = opts.normalize_method, scale = opts.scale or 1,
    save_dir = join(monitor.save_path, (name:gsub(' ', '-'))),
  }, cls)
  local k = self.num_images
  if type(k) ~= 'number' or not (k >= 1) or k % 1 ~= 0 then
    error(fmt('%s: num_images must be a positive integer, got %s', who, show(k)), 2)
  end
  if self.normalize_method ~= nil and type(self.normalize_method) ~= 'function' then
    error(who .. ': normalize_method must be a function', 2)
  end
  if type(self.scale) ~= 'number' or self.scale < 1 or self.scale % 1 ~= 0 then
    error(who .. ': scale must be a positive integer', 2)
  end
  mkdir_p(self.save_dir, who)
  return self
end

-- Selected, normalized, channel-fixed images: flat (n, C, H, W), n, C, H, W; nil if skipped.
local function image_batch(self, who, index, var)
  if index ~= 0 and (index + 1) % self.interval ~= 0 then return nil end
  local flat, shape = array_of(var, who, 3)
  if #shape < 3 then
    error(fmt('%s: expected an array shaped (N, ..., C, H, W), got shape {%s}', who,
              table.concat(shape, ',')), 3)
  end
  local C, H, W = shape[#shape - 2], shape[#shape - 1], shape[#shape]
  local per = C * H * W
  local N = per > 0 and floor(#flat / per) or 0
  local n = math.min(N, self.num_images)
  if n < 1 then error(who .. ': no images in the array', 3) end
  local sel = {}
  for i = 1, n * per do sel[i] = flat[i] end
  if self.normalize_method then
    local r = self.normalize_method(make_array(sel, { n, C, H, W }))
    local rf = array_of(r, who .. ' (normalize_method result)', 3)
    if #rf ~= n * per then
      error(fmt('%s: normalize_method returned %d values, expected %d', who, #rf, n * per), 3)
    end
    sel = rf
  else
    sel = default_normalize(sel)
  end
  if C > 3 then
    local out = {}
    for j = 0, n - 1 do
      for i = 1, 3 * H * W do out[j * 3 * H * W + i] = sel[j * per + i] end
    end
    sel, C = out, 3
  elseif C == 2 then
    local out = {}
    local hw = H * W
    for j = 0, n - 1 do
      for i = 1, 2 * hw do out[j * 3 * hw + i] = sel[j * per + i] end
      for i = 1, hw do out[j * 3 * hw + 2 * hw + i] = 1 end
    end
    sel, C = out, 3
  end
  return sel, n, C, H, W
end

-- Writes one (C, H, W) image (or an already HWC one when hwc) with values in [0, 1].
-- Errors (a file that cannot be written) are raised as "<who>: ..." at the caller's caller.
local function write_png(who, path, flat, offset, C, H, W, scale, hwc)
  local ok, err = pcall(png.write_values, path, flat, H, W, C,
                        { offset = offset, planar = not hwc, scale = scale })
  if not ok then
    err = tostring(err):gsub('^[^:]*:%d+: ', ''):gsub('^png%.write: ', '')
    error(fmt('%s: %s', who, err), 3)
  end
end

local MonitorImage = class('MonitorImage')
M.MonitorImage = MonitorImage

--- MonitorImage(name, monitor [, {interval = 1000, verbose = true, num_images = 16,
--                                 normalize_method = fn, scale = 1}])
-- normalize_method(x) receives the (n, C, H, W) images (an NdArray, or an array object with
-- shape and :flat()) and returns values in [0, 1] (an array, Variable, nested table or flat
-- list). scale is an nnlua extension: integer upscaling of the written PNGs.
function MonitorImage.new(name, monitor, a, b, c, d, e)
  return image_new(MonitorImage, 'MonitorImage', name, monitor, a, b, c, d, e)   -- tail call (error levels)
end

--- img:add(index, x): x shaped (N, ..., C, H, W). Returns the list of files written.
function MonitorImage:add(index, var)
  check_add('MonitorImage.add', MonitorImage, self, index)
  local sel, n, C, H, W = image_batch(self, 'MonitorImage.add', index, var)
  if not sel then return nil end
  local files = {}
  for j = 0, n - 1 do
    local path = join(self.save_dir, fmt('%06d-%03d.png', index, j))
    write_png('MonitorImage.add', path, sel, j * C * H * W, C, H, W, self.scale, false)
    files[#files + 1] = path
  end
  if self.verbose then
    log(fmt('iter=%s {%s} are written to %s.', py_num(index), self.name,
            join(self.save_dir, fmt('%06d-*.png', index))))
  end
  return files
end

local MonitorImageTile = class('MonitorImageTile')
M.MonitorImageTile = MonitorImageTile

--- MonitorImageTile(name, monitor [, opts as MonitorImage]): one tiled PNG per flush.
function MonitorImageTile.new(name, monitor, a, b, c, d, e)
  return image_new(MonitorImageTile, 'MonitorImageTile', name, monitor, a, b, c, d, e)   -- tail call (error levels)
end

--- tile:add(index, x): writes <save_dir>/<index %06d>.png; returns its path.
function MonitorImageTile:add(index, var)
  check_add('MonitorImageTile.add', MonitorImageTile, self, index)
  local sel, n, C, H, W = image_batch(self, 'MonitorImageTile.add', index, var)
  if not sel then return nil end
  local tile, tshape = tile_flat(sel, { n, C, H, W }, 1, 0, 'MonitorImageTile.add')
  local path = join(self.save_dir, fmt('%06d.png', index))
  write_png('MonitorImageTile.add', path, tile, 0, C, tshape[1], tshape[2], self.scale, true)
  if self.verbose then
    log(fmt('iter=%s {%s} is written to %s.', py_num(index), self.name, path))
  end
  return path
end

----------------------------------------------------------------------------------------------
-- Reading and plotting monitor files
----------------------------------------------------------------------------------------------

--- monitor.read_series(path) -> indices, values (columns 1 and 2 of a .series.txt or
-- .timer.txt file; for timer files, values is column 4, the total elapsed time).
function M.read_series(path)
  local f, err = io.open(path, 'r')
  if not f then error('read_series: cannot open ' .. tostring(err), 2) end
  local xs, ys = {}, {}
  local timer = path:match('%.timer%.txt$') ~= nil
  for line in f:lines() do
    local cols = {}
    for w in line:gmatch('%S+') do cols[#cols + 1] = tonumber(w) end
    if #cols >= 2 then
      xs[#xs + 1] = cols[1]
      ys[#ys + 1] = timer and cols[4] or cols[2]
    end
  end
  f:close()
  return xs, ys
end

--- monitor.plot_series(path [, {label =, plot_kwargs...}]): plots a .series.txt file with
-- nnlua.plot on the current axes (like NNabla's plot_series).
function M.plot_series(path, opts)
  local plt = require 'nnlua.plot'
  local xs, ys = M.read_series(path)
  return plt.plot(xs, ys, opts or {})
end

--- monitor.plot_time_elapsed(path [, opts]): total elapsed time against index of a .timer.txt.
function M.plot_time_elapsed(path, opts)
  local plt = require 'nnlua.plot'
  local xs, ys = M.read_series(path)
  return plt.plot(xs, ys, opts or {})
end

--- The progress bar for long loops (nnlua.progress): monitor.progress.new(total, {label =}).
M.progress = require 'nnlua.progress'
M.ProgressBar = M.progress.new

return M
