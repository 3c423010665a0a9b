package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path

local M = require 'nnlua.monitor'
local png = require 'nnlua.png'

local OUT = 'spec/tmp/monitor'
os.execute("rm -rf '" .. OUT .. "'")

local function fake(flat, shape)
  return {
    shape = shape,
    flat = function() return flat end,
    totable = function() return M._nest(flat, shape) end,
  }
end

-- result of tile_images as nested tables, whether it is an NdArray or tables
local function nested(x)
  if type(x) == 'table' and x.totable == nil and x.shape == nil then return x end
  return x:totable()
end

local function read(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end

local function lines_of(path)
  local t = {}
  for l in io.lines(path) do t[#t + 1] = l end
  return t
end

local function u32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- bitwise CRC-32, independent from the table-driven one in nnlua.png
local function crc32_slow(s)
  local bit = require 'bit'
  local crc = 0xFFFFFFFF
  for i = 1, #s do
    crc = bit.bxor(crc, s:byte(i))
    for _ = 1, 8 do
      local lsb = bit.band(crc, 1)
      crc = bit.rshift(crc, 1)
      if lsb == 1 then crc = bit.bxor(crc, 0xEDB88320) end
    end
  end
  return bit.bxor(crc, 0xFFFFFFFF) % 2 ^ 32
end

-- Decodes a PNG written with stored deflate blocks: width, height, channels, rows of bytes.
local function decode_stored(path)
  local s = read(path)
  assert(s:sub(1, 8) == '\137PNG\r\n\26\n', 'PNG signature')
  local pos, idat, w, h, ct = 9, {}, nil, nil, nil
  while pos <= #s do
    local len = u32(s, pos)
    local typ = s:sub(pos + 4, pos + 7)
    local body = s:sub(pos + 8, pos + 7 + len)
    assert(u32(s, pos + 8 + len) == crc32_slow(typ .. body), 'chunk CRC of ' .. typ)
    if typ == 'IHDR' then w, h, ct = u32(body, 1), u32(body, 5), body:byte(10) end
    if typ == 'IDAT' then idat[#idat + 1] = body end
    pos = pos + 12 + len
  end
  local z = table.concat(idat)
  local raw, p = {}, 3
  repeat
    local final = z:byte(p) % 2
    local len = z:byte(p + 1) + 256 * z:byte(p + 2)
    raw[#raw + 1] = z:sub(p + 5, p + 4 + len)
    p = p + 5 + len
  until final == 1
  raw = table.concat(raw)
  local ch = ({[0] = 1, [2] = 3, [4] = 2, [6] = 4})[ct]
  local rows = {}
  for y = 0, h - 1 do
    local off = y * (w * ch + 1)
    assert(raw:byte(off + 1) == 0, 'filter byte')
    rows[y + 1] = { raw:byte(off + 2, off + 1 + w * ch) }
  end
  return w, h, ch, rows
end

describe('monitor.tile_images', function()
  -- B = 10 images of 1x2x2; image b (0-based), pixel (y, x) = 100 * (b + 1) + 10 * y + x
  local flat = {}
  for b = 0, 9 do
    for y = 0, 1 do
      for x = 0, 1 do flat[#flat + 1] = 100 * (b + 1) + 10 * y + x end
    end
  end

  it('arranges B=10, C=1, 2x2 images on a 4x4 grid with padsize 1', function()
    local t = nested(M.tile_images(fake(flat, {10, 1, 2, 2}), 1))
    assert.are.equal(12, #t)
    for r = 1, 12 do assert.are.equal(12, #t[r]) end
    assert.are.same({100, 101, 0, 200, 201, 0, 300, 301, 0, 400, 401, 0}, t[1])
    assert.are.same({110, 111, 0, 210, 211, 0, 310, 311, 0, 410, 411, 0}, t[2])
    assert.are.same({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, t[3])
    assert.are.same({500, 501, 0, 600, 601, 0, 700, 701, 0, 800, 801, 0}, t[4])
    assert.are.same({900, 901, 0, 1000, 1001, 0, 0, 0, 0, 0, 0, 0}, t[7])
    assert.are.same({910, 911, 0, 1010, 1011, 0, 0, 0, 0, 0, 0, 0}, t[8])
    assert.are.same({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, t[10])
  end)

  it('accepts (B, H, W), nested tables, padval and padsize 0', function()
    local imgs = {}
    for b = 1, 10 do
      imgs[b] = {}
      for y = 1, 2 do
        imgs[b][y] = {}
        for x = 1, 2 do imgs[b][y][x] = flat[(b - 1) * 4 + (y - 1) * 2 + x] end
      end
    end
    local t = nested(M.tile_images(imgs, 1, -1))
    assert.are.same({100, 101, -1, 200, 201, -1, 300, 301, -1, 400, 401, -1}, t[1])
    assert.are.same({900, 901, -1, 1000, 1001, -1, -1, -1, -1, -1, -1, -1}, t[7])
    local t0 = nested(M.tile_images(fake(flat, {10, 2, 2}), 0))
    assert.are.equal(8, #t0)
    assert.are.same({100, 101, 200, 201, 300, 301, 400, 401}, t0[1])
    assert.are.same({900, 901, 1000, 1001, 0, 0, 0, 0}, t0[5])
  end)

  it('keeps channels last for C=3', function()
    -- 2 images of 3x1x2: value = 1000 * b + 100 * c + x
    local f = {}
    for b = 0, 1 do
      for c = 0, 2 do
        for x = 0, 1 do f[#f + 1] = 1000 * b + 100 * c + x end
      end
    end
    local t = nested(M.tile_images(fake(f, {2, 3, 1, 2}), 1))
    -- n = 2: output (2 * 2, 2 * 3, 3)
    assert.are.equal(4, #t)
    assert.are.equal(6, #t[1])
    assert.are.same({0, 100, 200}, t[1][1])
    assert.are.same({1, 101, 201}, t[1][2])
    assert.are.same({0, 0, 0}, t[1][3])
    assert.are.same({1001, 1101, 1201}, t[1][5])
    assert.are.same({0, 0, 0}, t[3][1])
  end)

  it('rejects other ranks', function()
    local ok, err = pcall(M.tile_images, fake({1, 2}, {2}))
    assert.is_false(ok)
    assert.is_truthy(err:find('got shape {2}', 1, true))
  end)
end)

describe('monitor series', function()
  local logged
  local old_log
  before_each(function()
    logged = {}
    old_log = M.log
    M.log = function(s) logged[#logged + 1] = s end
  end)
  after_each(function() M.log = old_log end)

  it('Monitor creates its directory', function()
    local m = M.Monitor(OUT .. '/a/b')
    assert.are.equal(OUT .. '/a/b', m.save_path)
    local f = io.open(OUT .. '/a/b/probe', 'w')
    assert.is_not_nil(f)
    f:close()
  end)

  it('MonitorSeries with interval 1 writes every value', function()
    local m = M.Monitor(OUT)
    local s = M.MonitorSeries('Training loss', m)
    for i = 0, 4 do s:add(i, (i + 1) / 3) end
    s:close()
    assert.are.same({'0 0.333333', '1 0.666667', '2 1', '3 1.33333', '4 1.66667'},
                    lines_of(OUT .. '/Training-loss.series.txt'))
    assert.are.equal(5, #logged)
    assert.are.equal('iter=0 {Training loss}=0.3333333333333333', logged[1])
    assert.are.equal('iter=2 {Training loss}=1.0', logged[3])
  end)

  it('MonitorSeries with interval 10 writes the mean of each interval', function()
    local m = M.Monitor(OUT)
    local s = M.MonitorSeries('err', m, {interval = 10, verbose = false})
    for i = 0, 34 do s:add(i, i) end
    s:close()
    -- flushes at 9 (mean of 0..9), 19, 29; 30..34 stay buffered
    assert.are.same({'9 4.5', '19 14.5', '29 24.5'}, lines_of(OUT .. '/err.series.txt'))
    assert.are.equal(0, #logged)
  end)

  it('MonitorSeries averages arrays and truncates its file when created again', function()
    local m = M.Monitor(OUT)
    local s = M.MonitorSeries('arr', m, 2)       -- positional interval, as in NNabla
    s:add(0, fake({1, 2, 3, 6}, {2, 2}))
    s:add(1, {{10, 20}})
    s:add(3, {d = fake({7}, {})})                 -- a Variable-like value
    s:close()
    assert.are.same({'1 7', '3 7'}, lines_of(OUT .. '/arr.series.txt'))
    local s2 = M.MonitorSeries('arr', m)
    assert.are.same({}, lines_of(OUT .. '/arr.series.txt'))
    s2:close()
  end)

  it('MonitorTimeElapsed writes NNabla lines', function()
    local m = M.Monitor(OUT)
    local times = {0, 1.5, 4}
    local k = 0
    local t = M.MonitorTimeElapsed('Training time', m, {
      interval = 2, clock = function() k = k + 1; return times[k] end })
    for i = 0, 3 do t:add(i) end
    t:close()
    assert.are.same({'1 1.5 2 1.5', '3 2.5 2 4.0'}, lines_of(OUT .. '/Training-time.timer.txt'))
    assert.are.equal('iter=1 {Training time}=1.5[sec/2iter] 1.5[sec]', logged[1])
  end)

  it('rejects bad arguments with messages that name the monitor and the value', function()
    local m = M.Monitor(OUT)
    local function err_of(...)
      local ok, e = pcall(...)
      assert.is_false(ok)
      return e
    end
    -- errors about options used to point inside monitor.lua and not list the known names
    assert.are.equal("MonitorSeries: unknown option 'intervl' (known: interval, verbose)",
                     err_of(M.MonitorSeries, 'x', m, {intervl = 3}))
    -- a NaN interval used to flush on every add
    assert.are.equal('MonitorSeries: interval must be a number >= 1, got nan',
                     err_of(M.MonitorSeries, 'x', m, 0 / 0))
    assert.are.equal("MonitorTimeElapsed: interval must be a number >= 1, got '10' (a string)",
                     err_of(M.MonitorTimeElapsed, 'x', m, '10'))
    local s = M.MonitorSeries('idx', m)
    assert.are.equal('MonitorSeries.add: index must be a number, got nan', err_of(s.add, s, 0 / 0, 1))
    -- mloss.add(i, v) with a dot, as in Python
    assert.are.equal('MonitorSeries.add: call it with a colon, monitor:add(index, ...) (self was 3)',
                     err_of(s.add, 3, 1.5))
    s:close()
    -- an options table after positional arguments used to be taken as verbose (truthy)
    local q = M.MonitorSeries('quiet', m, 10, {verbose = false})
    assert.are.same({10, false}, {q.interval, q.verbose})
    q:close()
    assert.are.equal("MonitorSeries: verbose must be true or false, got 'no' (a string)",
                     err_of(M.MonitorSeries, 'x', m, 1, 'no'))
  end)

  it('raises when a series line cannot be written and appends after close', function()
    local m = M.Monitor(OUT .. '/full')
    -- the series file is a link to /dev/full: every write fails as on a full disk. Made
    -- through the FFI, not `ln` in a shell: under the sanitizer build the child inherits
    -- the ASan preload, which now and then fails to map its shadow memory and exits.
    local ffi = require 'ffi'
    pcall(ffi.cdef, 'int symlink(const char *target, const char *linkpath); int unlink(const char *path);')
    local link = OUT .. '/full/lost.series.txt'
    ffi.C.unlink(link)
    assert.are.equal(0, ffi.C.symlink('/dev/full', link))
    local s = M.MonitorSeries('lost', m, {verbose = false})
    local ok, err = pcall(s.add, s, 0, 1)
    assert.is_false(ok)
    assert.are.equal('MonitorSeries.add: cannot write ' .. OUT ..
                     '/full/lost.series.txt: No space left on device', err)
    s:close()
    -- lines added after close used to be dropped without a word
    local t = M.MonitorSeries('reopen', m, {verbose = false})
    t:add(0, 1)
    t:close()
    t:add(1, 2)
    t:close()
    assert.are.same({'0 1', '1 2'}, lines_of(OUT .. '/full/reopen.series.txt'))
  end)

  it('formats floats like Python', function()
    local f = M._py_float
    assert.are.equal('0.1', f(0.1))
    assert.are.equal('100.0', f(100))
    assert.are.equal('0.0001', f(1e-4))
    assert.are.equal('1e-05', f(1e-5))
    assert.are.equal('1.5e+16', f(1.5e16))
    assert.are.equal('-2.25', f(-2.25))
    assert.are.equal('nan', f(0 / 0))
  end)
end)

describe('monitor images', function()
  local old_log
  before_each(function()
    old_log = M.log
    M.log = function() end
    png.set_use_zlib(false)
  end)
  after_each(function()
    M.log = old_log
    png.set_use_zlib(true)
  end)

  -- 3 images of 1x4x5, pixel value = image * 100 + y * 5 + x
  local flat = {}
  for n = 0, 2 do
    for y = 0, 3 do
      for x = 0, 4 do flat[#flat + 1] = n * 100 + y * 5 + x end
    end
  end

  it('MonitorImage writes valid normalized PNGs at NNabla intervals', function()
    local m = M.Monitor(OUT)
    local mi = M.MonitorImage('gen images', m, {interval = 10, num_images = 2})
    assert.is_nil(mi:add(1, fake(flat, {3, 1, 4, 5})))
    local files = mi:add(0, fake(flat, {3, 1, 4, 5}))
    assert.are.same({OUT .. '/gen-images/000000-000.png', OUT .. '/gen-images/000000-001.png'}, files)
    assert.is_nil(read(OUT .. '/gen-images/000000-002.png'))
    local files9 = mi:add(9, fake(flat, {3, 1, 4, 5}))
    assert.are.equal(OUT .. '/gen-images/000009-000.png', files9[1])
    local info = png.read_info(files[1])
    assert.are.equal(5, info.width)
    assert.are.equal(4, info.height)
    assert.are.equal(0, info.color_type)
    assert.are.equal(8, info.bit_depth)
    -- min-max over the 2 kept images: 0 -> 0, 119 -> 255
    local w, h, ch, rows = decode_stored(files[1])
    assert.are.same({5, 4, 1}, {w, h, ch})
    assert.are.same({0, 2, 4, 6, 9}, rows[1])       -- round(255 * x / 119)
    local _, _, _, rows2 = decode_stored(files[2])
    assert.are.equal(255, rows2[4][5])
  end)

  it('MonitorImage writes RGB for C=3 and pads C=2 with ones', function()
    local m = M.Monitor(OUT)
    local f3 = {}
    for i = 1, 2 * 3 * 2 * 2 do f3[i] = i end
    local mi = M.MonitorImage('rgb', m, {interval = 1})
    local files = mi:add(0, fake(f3, {2, 3, 2, 2}))
    assert.are.equal(2, #files)
    local info = png.read_info(files[1])
    assert.are.same({2, 2, 2, 3}, {info.width, info.height, info.color_type, info.channels})
    local f2 = {}
    for i = 1, 1 * 2 * 1 * 2 do f2[i] = i end      -- one 2x1x2 image: values 1..4
    local files2 = M.MonitorImage('two', m, {interval = 1}):add(0, fake(f2, {1, 2, 1, 2}))
    local _, _, ch, rows = decode_stored(files2[1])
    assert.are.equal(3, ch)
    assert.are.same({0, 170, 255, 85, 255, 255}, rows[1])
  end)

  it('MonitorImage uses normalize_method and the scale extension', function()
    local m = M.Monitor(OUT)
    local seen
    local mi = M.MonitorImage('norm', m, {interval = 1, scale = 3, normalize_method = function(x)
      seen = x.shape
      local out = {}
      for i, v in ipairs(x:flat()) do out[i] = v >= 100 and 1 or 0 end
      return out
    end})
    local files = mi:add(0, fake(flat, {3, 1, 4, 5}))
    assert.are.same({3, 1, 4, 5}, seen)
    local w, h, _, rows = decode_stored(files[2])
    assert.are.same({15, 12}, {w, h})
    assert.are.equal(255, rows[1][1])
    local _, _, _, rows0 = decode_stored(files[1])
    assert.are.equal(0, rows0[12][15])
  end)

  it('MonitorImageTile writes one tiled PNG', function()
    local m = M.Monitor(OUT)
    local f = {}
    for i = 1, 5 * 4 do f[i] = i end
    local mt = M.MonitorImageTile('tiles', m, {interval = 5})
    local path = mt:add(4, fake(f, {5, 1, 2, 2}))
    assert.are.equal(OUT .. '/tiles/000004.png', path)
    local w, h, ch, rows = decode_stored(path)
    assert.are.same({9, 9, 1}, {w, h, ch})      -- n = 3, (2 + 1) * 3
    assert.are.same({0, 13, 0, 54, 67, 0, 107, 121, 0}, rows[1])
    assert.are.same({0, 0, 0, 0, 0, 0, 0, 0, 0}, rows[3])
  end)

  it('takes normalize_method positionally, checks num_images and names write errors', function()
    local m = M.Monitor(OUT)
    local called = 0
    local function norm(x)
      called = called + 1
      local out = {}
      for i = 1, #x:flat() do out[i] = 0.5 end
      return out
    end
    -- NNabla order: (name, monitor, interval, verbose, num_images, normalize_method); the
    -- method used to be dropped
    local mi = M.MonitorImage('pos', m, 1, false, 2, norm)
    local files = mi:add(0, fake(flat, {3, 1, 4, 5}))
    assert.are.equal(1, called)
    assert.are.equal(2, #files)
    local _, _, _, rows = decode_stored(files[1])
    assert.are.same({128, 128, 128, 128, 128}, rows[1])
    local ok, err = pcall(M.MonitorImage, 'x', m, {num_images = 2.5})
    assert.are.equal('MonitorImage: num_images must be a positive integer, got 2.5', err)
    -- a bad array is reported without a location inside monitor.lua
    ok, err = pcall(mi.add, mi, 0, 'x')
    assert.are.equal('MonitorImage.add: expected a number, an NdArray, a Variable or a Lua table, got string', err)
    -- a file that cannot be written is reported by the monitor, not from inside png.lua
    local mt = M.MonitorImageTile('gone', m, {interval = 1})
    os.execute("rm -rf '" .. OUT .. "/gone' && touch '" .. OUT .. "/gone'")
    ok, err = pcall(mt.add, mt, 0, fake(flat, {3, 1, 4, 5}))
    assert.is_false(ok)
    assert.is_truthy(err:find('^MonitorImageTile%.add: cannot open ' .. OUT .. '/gone/000000%.png'))
    -- tile_images: padval must be a number (a string used to fail inside ndarray.lua)
    ok, err = pcall(M.tile_images, fake({1, 2, 3, 4}, {1, 1, 2, 2}), 1, 'x')
    assert.are.equal("tile_images: padval must be a number, got 'x' (a string)", err)
    ok, err = pcall(M.tile_images, fake({}, {0, 1, 2, 2}))
    assert.are.equal('tile_images: empty batch (shape {0,1,2,2})', err)
  end)

  it('rejects arrays without (C, H, W)', function()
    local m = M.Monitor(OUT)
    local mi = M.MonitorImage('bad', m, {interval = 1})
    local ok, err = pcall(mi.add, mi, 0, fake({1, 2, 3, 4}, {2, 2}))
    assert.is_false(ok)
    assert.is_truthy(err:find('(N, ..., C, H, W), got shape {2,2}', 1, true))
  end)
end)

describe('monitor.progress (progress bar)', function()
  local function sink()
    local s = {text = {}}
    function s:write(...) for _, v in ipairs({...}) do self.text[#self.text + 1] = v end end
    function s:flush() end
    function s:lines()
      local out = {}
      for l in table.concat(self.text):gmatch('[^\n]+') do out[#out + 1] = l end
      return out
    end
    return s
  end

  it('prints a plain line every 10% when not on a terminal', function()
    local out = sink()
    local bar = M.progress.new(200, {label = 'train', stream = out, mode = 'plain'})
    for i = 1, 200 do bar:update(i, {loss = 1 / i}) end
    bar:finish()
    local lines = out:lines()
    assert.are.equal(10, #lines)
    assert.is_truthy(lines[1]:find('^train  10%% 20/200 %['))
    assert.is_truthy(lines[1]:find('loss=0.05', 1, true))
    assert.is_truthy(lines[10]:find('^train 100%% 200/200'))
  end)

  it('redraws one line with \\r on a terminal, throttled', function()
    local out = sink()
    local bar = M.progress.new(1000, {label = 'x', stream = out, mode = 'tty', interval = 1e9})
    for i = 1, 1000 do bar:update(i) end
    bar:finish()
    local s = table.concat(out.text)
    local redraws = select(2, s:gsub('\r', ''))
    assert.are.equal(3, redraws)          -- first update, the last one, finish
    assert.are.equal(1, select(2, s:gsub('\n', '')))
    assert.is_truthy(s:find('|' .. string.rep('#', 30) .. '| 1000/1000', 1, true))
  end)

  it('rejects bad totals, counts and options by name', function()
    local out = sink()
    local function err_of(f, ...)
      local ok, e = pcall(f, ...)
      assert.is_false(ok)
      return e
    end
    -- an infinite total used to print "5/-9223372036854775808", a NaN one nothing at all
    assert.are.equal('progress.new: total must be a non-negative number or nil, got inf',
                     err_of(M.progress.new, math.huge, {stream = out, mode = 'plain'}))
    assert.are.equal('progress.new: total must be a non-negative number or nil, got nan',
                     err_of(M.progress.new, 0 / 0, {stream = out, mode = 'plain'}))
    -- these used to fail inside progress.lua (arithmetic on a string, compare with nil)
    assert.are.equal("progress.new: width must be a non-negative number, got 'x' (a string)",
                     err_of(M.progress.new, 10, {stream = out, mode = 'tty', width = 'x'}))
    assert.are.equal('progress.new: plain_step must be a positive number, got 0',
                     err_of(M.progress.new, 10, {stream = out, plain_step = 0}))
    assert.are.equal('progress.range: n must be a non-negative number, got nil',
                     err_of(M.progress.range, nil, {stream = out}))
    local bar = M.progress.new(10, {stream = out, mode = 'plain'})
    assert.are.equal("bar:update: i must be a non-negative number or nil, got 'x' (a string)",
                     err_of(bar.update, bar, 'x'))
    assert.are.equal('bar:update: call it with a colon, bar:update(i) (self was 5)',
                     err_of(bar.update, 5))
    assert.are.same({}, out:lines())
  end)

  it('progress.range iterates 1..n', function()
    local out = sink()
    local seen = {}
    for i in M.progress.range(5, {stream = out, mode = 'plain'}) do seen[#seen + 1] = i end
    assert.are.same({1, 2, 3, 4, 5}, seen)
    assert.is_truthy(table.concat(out.text):find('100%% 5/5'))
  end)
end)
