-- nnlua.progress: a progress bar for long loops.
--
--   local progress = require 'nnlua.progress'
--   local bar = progress.new(1000, {label = 'train'})
--   for i = 1, 1000 do
--     ...
--     bar:update(i, {loss = loss.d})
--   end
--   bar:finish()
--
--   for i in progress.range(1000, {label = 'eval'}) do ... end
--
-- On a terminal (stdout is a tty and TERM is not 'dumb') one line is redrawn in place with \r,
-- at most ~10 times a second. Otherwise (a pipe, a file, a notebook) a plain line is printed
-- at every 10% (or every `plain_interval` seconds when the total is unknown), so logs stay
-- short. NNLUA_PROGRESS=off silences bars, =plain or =tty forces a mode.

local M = {}

local floor, fmt = math.floor, string.format

local ok_ffi, ffi = pcall(require, 'ffi')
if not ok_ffi then ffi = nil end

-- clock and tty through the FFI (declarations may already exist: each is tried separately) ---

local ts, tv, clock_fn
if ffi then
  pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_nsec; } nnlua_progress_timespec;')
  pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_usec; } nnlua_progress_timeval;')
  pcall(ffi.cdef, 'int clock_gettime(int clk_id, nnlua_progress_timespec *tp);')
  pcall(ffi.cdef, 'int gettimeofday(nnlua_progress_timeval *tv, void *tz);')
  pcall(ffi.cdef, 'int isatty(int fd);')
  pcall(ffi.cdef, 'int ioctl(int fd, unsigned long request, ...);')
  local ok1 = pcall(function()
    ts = ffi.new('nnlua_progress_timespec')
    assert(ffi.C.clock_gettime(1, ts) == 0) -- CLOCK_MONOTONIC
  end)
  if ok1 then
    clock_fn = function()
      ffi.C.clock_gettime(1, ts)
      return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
    end
  else
    local ok2 = pcall(function()
      tv = ffi.new('nnlua_progress_timeval')
      assert(ffi.C.gettimeofday(tv, nil) == 0)
    end)
    if ok2 then
      clock_fn = function()
        ffi.C.gettimeofday(tv, nil)
        return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) * 1e-6
      end
    end
  end
end
clock_fn = clock_fn or os.time

--- Seconds from an arbitrary origin (monotonic, sub-millisecond where the FFI is available).
function M.now() return clock_fn() end

--- True when file descriptor fd (default 1, stdout) is a terminal.
function M.isatty(fd)
  if not ffi then return false end
  local ok, r = pcall(function() return ffi.C.isatty(fd or 1) end)
  return ok and r == 1
end

-- Terminal width (columns) of stdout, or nil.
local function term_width()
  local cols = tonumber(os.getenv('COLUMNS') or '')
  if cols and cols > 10 then return cols end
  if not ffi then return nil end
  local ok, w = pcall(function()
    local ws = ffi.new('unsigned short[4]')
    if ffi.C.ioctl(1, 0x5413, ws) == 0 and ws[1] > 10 then return ws[1] end -- TIOCGWINSZ
    return nil
  end)
  return ok and w or nil
end

local function hms(t)
  if not t or t ~= t or t == math.huge or t < 0 then return '--:--' end
  t = floor(t + 0.5)
  local h, m, s = floor(t / 3600), floor(t / 60) % 60, t % 60
  if h > 0 then return fmt('%d:%02d:%02d', h, m, s) end
  return fmt('%02d:%02d', m, s)
end

local function value_str(v)
  local tv = type(v)
  if tv == 'number' then
    if v == floor(v) and math.abs(v) < 1e9 then return fmt('%d', v) end
    return fmt('%.4g', v)
  end
  if tv == 'string' then return v end
  if tv == 'boolean' then return tostring(v) end
  if tv == 'table' or tv == 'cdata' then
    local ok, x = pcall(function()
      local a = v
      local okd, d = pcall(function() return v.d end)
      if okd and d ~= nil and d ~= v then a = d end
      local flat = a:flat()
      return flat[1]
    end)
    if ok and type(x) == 'number' then return value_str(x) end
  end
  return tostring(v)
end

local function metrics_str(metrics)
  if not metrics then return '' end
  local keys = {}
  for k in pairs(metrics) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = tostring(k) .. '=' .. value_str(metrics[k]) end
  return table.concat(parts, ' ')
end

local Bar = {}
Bar.__index = Bar

local OPTS = { label = true, width = true, stream = true, interval = true, mode = true,
               plain_interval = true, plain_step = true }

-- A value as error messages show it (strings quoted: '5' is not 5).
local function show(v)
  if type(v) == 'string' then return fmt("'%s' (a string)", v) end
  return tostring(v)
end

-- Checks a count (total, n, i): a finite number >= 0 (nil allowed when nil_ok).
local function check_count(who, name, v, nil_ok, level)
  if v == nil and nil_ok then return end
  if type(v) ~= 'number' or not (v >= 0) or v == math.huge then
    error(fmt('%s: %s must be a non-negative number%s, got %s', who, name,
              nil_ok and ' or nil' or '', show(v)), level + 1)
  end
end

-- Numeric options: width (an integer >= 0), interval and plain_interval (>= 0), plain_step (> 0).
local function check_numeric_opts(opts)
  for _, k in ipairs({ 'width', 'interval', 'plain_interval', 'plain_step' }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= 'number' or not (v >= 0) or (k == 'plain_step' and v == 0)
                     or (k == 'width' and v % 1 ~= 0)) then
      error(fmt('progress.new: %s must be a %s number, got %s', k,
                k == 'plain_step' and 'positive' or 'non-negative', show(v)), 3)
    end
  end
end

--- progress.new(total [, {label =, width = 30, stream = io.stdout, interval = 0.1,
--                         mode = 'auto'|'tty'|'plain'|'off', plain_step = 10 (%),
--                         plain_interval = 10 (s, when total is unknown)}])
-- total may be nil (unknown).
function M.new(total, opts)
  opts = opts or {}
  if type(opts) ~= 'table' then error('progress.new: options must be a table', 2) end
  for k in pairs(opts) do
    if not OPTS[k] then error("progress.new: unknown option '" .. tostring(k) .. "'", 2) end
  end
  check_count('progress.new', 'total', total, true, 2)
  check_numeric_opts(opts)
  local mode = opts.mode or os.getenv('NNLUA_PROGRESS') or 'auto'
  if mode == '0' or mode == 'false' or mode == 'none' then mode = 'off' end
  local stream = opts.stream or io.stdout
  if mode == 'auto' or mode == '' then
    local term = os.getenv('TERM')
    if stream == io.stdout and M.isatty(1) and term and term ~= '' and term ~= 'dumb' then
      mode = 'tty'
    else
      mode = 'plain'
    end
  end
  if mode ~= 'tty' and mode ~= 'plain' and mode ~= 'off' then
    error("progress.new: mode must be 'auto', 'tty', 'plain' or 'off'", 2)
  end
  local now = clock_fn()
  return setmetatable({
    total = total, label = opts.label, width = opts.width or 30, stream = stream,
    interval = opts.interval or 0.1, mode = mode, plain_step = opts.plain_step or 10,
    plain_interval = opts.plain_interval or 10, start = now, last_draw = -math.huge,
    last_plain = now, last_bucket = 0, n = 0, finished = false, drawn = false,
  }, Bar)
end

function Bar:line(metrics)
  local now = clock_fn()
  local elapsed = now - self.start
  local n, total = self.n, self.total
  local rate = elapsed > 0 and n / elapsed or nil
  local parts = {}
  if self.label then parts[#parts + 1] = self.label end
  if total and total > 0 then
    local frac = math.min(1, math.max(0, n / total))
    parts[#parts + 1] = fmt('%3d%%', floor(frac * 100))
    if self.mode == 'tty' and self.width > 0 then
      local filled = floor(frac * self.width + 1e-9)
      parts[#parts + 1] = '|' .. string.rep('#', filled) .. string.rep(' ', self.width - filled) .. '|'
    end
    parts[#parts + 1] = fmt('%d/%d', n, total)
    local eta = (rate and rate > 0) and (total - n) / rate or nil
    parts[#parts + 1] = fmt('[%s<%s, %s]', hms(elapsed), hms(eta),
                            rate and (rate >= 1 and fmt('%.1f it/s', rate) or fmt('%.2f s/it', 1 / rate)) or '? it/s')
  else
    parts[#parts + 1] = fmt('%d', n)
    parts[#parts + 1] = fmt('[%s, %s]', hms(elapsed), rate and fmt('%.1f it/s', rate) or '? it/s')
  end
  local m = metrics_str(metrics or self.metrics)
  if m ~= '' then parts[#parts + 1] = m end
  return table.concat(parts, ' ')
end

function Bar:draw(metrics)
  local s = self:line(metrics)
  if self.mode == 'tty' then
    local cols = term_width() or 80
    if #s > cols - 1 then s = s:sub(1, cols - 1) end
    self.stream:write('\r', s, '\027[K')
  else
    self.stream:write(s, '\n')
  end
  self.stream:flush()
  self.drawn = true
end

--- bar:update(i [, metrics]): i items done (default: one more); metrics a table of values
-- shown after the bar ({loss = 0.5}; numbers, strings, or one-element arrays/Variables).
function Bar:update(i, metrics)
  if getmetatable(self) ~= Bar then
    error('bar:update: call it with a colon, bar:update(i) (self was ' .. show(self) .. ')', 2)
  end
  if self.finished then return self end
  if type(i) == 'table' and metrics == nil then i, metrics = nil, i end
  check_count('bar:update', 'i', i, true, 2)
  self.n = i or (self.n + 1)
  if metrics then self.metrics = metrics end
  if self.mode == 'off' then return self end
  local now = clock_fn()
  if self.mode == 'tty' then
    if now - self.last_draw >= self.interval or (self.total and self.n >= self.total) then
      self.last_draw = now
      self:draw()
    end
  else
    if self.total and self.total > 0 then
      local bucket = floor(self.n / self.total * 100 / self.plain_step + 1e-9)
      if bucket > self.last_bucket then
        self.last_bucket = bucket
        self:draw()
      end
    elseif now - self.last_plain >= self.plain_interval then
      self.last_plain = now
      self:draw()
    end
  end
  return self
end

--- bar:print(...): prints a message line without breaking the bar.
function Bar:print(...)
  local parts = {}
  for i = 1, select('#', ...) do parts[i] = tostring((select(i, ...))) end
  if self.mode == 'tty' and self.drawn and not self.finished then
    self.stream:write('\r\027[K', table.concat(parts, '\t'), '\n')
    self:draw()
  else
    self.stream:write(table.concat(parts, '\t'), '\n')
    self.stream:flush()
  end
end

--- bar:finish([metrics]): draws the final state and ends the line. Safe to call twice.
function Bar:finish(metrics)
  if self.finished then return self end
  if metrics then self.metrics = metrics end
  if self.mode == 'tty' then
    self:draw()
    self.stream:write('\n')
    self.stream:flush()
  elseif self.mode == 'plain' then
    -- print the last state unless the last line already showed it
    local complete = self.total and self.total > 0 and self.n >= self.total
    if not (complete and self.last_bucket >= floor(100 / self.plain_step + 1e-9)) or metrics then
      self:draw()
    end
  end
  self.finished = true
  return self
end

--- for i in progress.range(n [, opts]) do ... end: 1..n with a bar (finished at the end).
function M.range(n, opts)
  check_count('progress.range', 'n', n, false, 2)
  local bar = M.new(n, opts)
  local i = 0
  return function()
    if i > 0 then bar:update(i) end
    i = i + 1
    if i > n then
      bar:finish()
      return nil
    end
    return i, bar
  end
end

M.Bar = Bar
return M
