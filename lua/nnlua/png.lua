-- nnlua.png: a small, dependency-free PNG writer (and header reader).
--
--   local png = require 'nnlua.png'
--   png.write(path, pixels, width, height, channels)    -- pixels: flat list of 0..255, row-major
--   png.write_image(path, a, {scale = 4, vmin = 0, vmax = 1, normalize = false})
--   png.write_values(path, flat, h, w, c, {offset = 0, planar = false, scale = 1, vmin = 0, vmax = 1})
--   png.encode(pixels, width, height, channels) -> string
--   png.read_info(path) -> {width =, height =, bit_depth =, color_type =, channels =}
--
-- Images are 8-bit grayscale (1 channel), gray+alpha (2), RGB (3) or RGBA (4).
-- The pixel data is zlib-compressed through the system libz when LuaJIT can load it,
-- otherwise it is stored in uncompressed deflate blocks (always valid PNG, just larger).

local bit = require 'bit'
local values = require 'nnlua.values'
local band, bor, bxor, rshift, lshift, bnot = bit.band, bit.bor, bit.bxor, bit.rshift, bit.lshift, bit.bnot
local floor, char, byte = math.floor, string.char, string.byte

local ok_ffi, ffi = pcall(require, 'ffi')
if not ok_ffi then ffi = nil end

local M = {}

local COLOR_TYPE = { [1] = 0, [2] = 4, [3] = 2, [4] = 6 }
local CHANNELS_OF = { [0] = 1, [4] = 2, [2] = 3, [6] = 4 }

-- CRC-32 (ISO 3309 / PNG), table driven -------------------------------------------------
local crc_table = {}
for n = 0, 255 do
  local c = n
  for _ = 1, 8 do
    if band(c, 1) ~= 0 then c = bxor(0xEDB88320, rshift(c, 1)) else c = rshift(c, 1) end
  end
  crc_table[n] = c
end

local function crc32(s, crc)
  crc = bnot(crc or 0)
  for i = 1, #s do
    crc = bxor(crc_table[band(bxor(crc, byte(s, i)), 0xFF)], rshift(crc, 8))
  end
  return bnot(crc)
end
M.crc32 = crc32

local function be32(v)
  return char(band(rshift(v, 24), 0xFF), band(rshift(v, 16), 0xFF), band(rshift(v, 8), 0xFF), band(v, 0xFF))
end

local function chunk(typ, data)
  return be32(#data) .. typ .. data .. be32(crc32(typ .. data))
end

-- Optional zlib through the FFI ---------------------------------------------------------
local zlib, zlib_tried = nil, false
local use_zlib = true

local function get_zlib()
  if not use_zlib or not ffi then return nil end
  if zlib_tried then return zlib end
  zlib_tried = true
  pcall(ffi.cdef, [[
    unsigned long compressBound(unsigned long sourceLen);
    int compress2(uint8_t *dest, unsigned long *destLen, const uint8_t *source,
                  unsigned long sourceLen, int level);
  ]])
  for _, name in ipairs({ 'z', 'libz.so.1' }) do
    local ok, lib = pcall(ffi.load, name)
    if ok then
      local ok2 = pcall(function() return lib.compress2 and lib.compressBound end)
      if ok2 then zlib = lib; break end
    end
  end
  return zlib
end

--- Turns the libz path on or off (off: stored deflate blocks only). Returns the old setting.
function M.set_use_zlib(on)
  local old = use_zlib
  use_zlib = not not on
  return old
end

-- zlib stream of `raw` (a string) with stored (uncompressed) deflate blocks.
local function zlib_stored(raw)
  local n = #raw
  local parts = { char(0x78, 0x01) }
  local pos = 1
  repeat
    local len = math.min(65535, n - pos + 1)
    local final = (pos + len > n) and 1 or 0
    parts[#parts + 1] = char(final, band(len, 0xFF), rshift(len, 8),
                             band(bnot(len), 0xFF), band(rshift(bnot(len), 8), 0xFF))
    parts[#parts + 1] = raw:sub(pos, pos + len - 1)
    pos = pos + len
  until pos > n
  -- Adler-32
  local a, b = 1, 0
  for i = 1, n do
    a = (a + byte(raw, i)) % 65521
    b = (b + a) % 65521
  end
  parts[#parts + 1] = be32(bor(lshift(b, 16), a))
  return table.concat(parts)
end

local function zlib_compress(raw)
  local z = get_zlib()
  if z then
    local bound = tonumber(z.compressBound(#raw))
    local dest = ffi.new('uint8_t[?]', bound)
    local dlen = ffi.new('unsigned long[1]', bound)
    if z.compress2(dest, dlen, raw, #raw, 6) == 0 then
      return ffi.string(dest, tonumber(dlen[0]))
    end
  end
  return zlib_stored(raw)
end

-- Raw scanlines (filter byte 0 + bytes) as a string.
local function scanlines(pixels, w, h, c)
  local rowlen = w * c
  if ffi then
    local buf = ffi.new('uint8_t[?]', (rowlen + 1) * h)
    local o, k = 0, 1
    for _ = 1, h do
      buf[o] = 0
      o = o + 1
      for _ = 1, rowlen do
        local v = pixels[k]
        buf[o] = v
        o = o + 1
        k = k + 1
      end
    end
    return ffi.string(buf, (rowlen + 1) * h)
  end
  local rows, k = {}, 1
  for y = 1, h do
    local t = { '\0' }
    for x = 1, rowlen do t[x + 1] = char(pixels[k]); k = k + 1 end
    rows[y] = table.concat(t)
  end
  return table.concat(rows)
end

--- Encodes 8-bit pixels into a PNG file image (a string).
-- pixels: flat list of integers 0..255, row-major, `channels` interleaved per pixel.
function M.encode(pixels, width, height, channels)
  channels = channels or 1
  local ct = COLOR_TYPE[channels]
  if not ct then error('png.encode: channels must be 1, 2, 3 or 4, got ' .. tostring(channels), 2) end
  if type(width) ~= 'number' or type(height) ~= 'number' or width < 1 or height < 1
     or width % 1 ~= 0 or height % 1 ~= 0 then
    error(('png.encode: bad image size %sx%s'):format(tostring(width), tostring(height)), 2)
  end
  local need = width * height * channels
  if #pixels < need then
    error(('png.encode: %d pixel values given, %dx%dx%d = %d needed'):format(#pixels, width, height, channels, need), 2)
  end
  for i = 1, need do
    local v = pixels[i]
    if type(v) ~= 'number' or v < 0 or v > 255 or v % 1 ~= 0 then
      error(('png.encode: pixel value %d is %s, expected an integer in 0..255'):format(i, tostring(v)), 2)
    end
  end
  local ihdr = be32(width) .. be32(height) .. char(8, ct, 0, 0, 0)
  local idat = zlib_compress(scanlines(pixels, width, height, channels))
  return '\137PNG\r\n\26\n' .. chunk('IHDR', ihdr) .. chunk('IDAT', idat) .. chunk('IEND', '')
end

--- Writes 8-bit pixels (flat list of 0..255) to a PNG file.
function M.write(path, pixels, width, height, channels)
  local data = M.encode(pixels, width, height, channels)
  local f, err = io.open(path, 'wb')
  if not f then error('png.write: cannot open ' .. tostring(path) .. ': ' .. tostring(err), 2) end
  f:write(data)
  f:close()
  return path
end

-- Flat values + shape of an NdArray, a Variable (.d), a nested table or a fake array
-- (nnlua.values; numbers are not arrays here).
local array_of = values.reader({
  type = 'expected an array or a nested table, got %s',
  element = 'non-numeric element in nested table',
  ragged = 'ragged nested table',
}, {})
M._array_of = array_of

--- Writes a 2-D (H, W) array, or a 3-D (H, W, C) one with C in 1..4, as an 8-bit PNG.
-- opts: scale (integer upscaling factor, nearest neighbour, default 1),
--       vmin, vmax (values mapped to 0 and 255; default 0 and 1),
--       normalize (true: vmin/vmax are the data's min and max).
-- Values are clipped to [vmin, vmax]; NaN becomes 0.
function M.write_image(path, a, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= 'scale' and k ~= 'vmin' and k ~= 'vmax' and k ~= 'normalize' then
      error('png.write_image: unknown option ' .. tostring(k), 2)
    end
  end
  local flat, shape = array_of(a, 'png.write_image')
  local h, w, c = shape[1], shape[2], shape[3] or 1
  if (#shape ~= 2 and #shape ~= 3) or c < 1 or c > 4 then
    error('png.write_image: expected an (H, W) or (H, W, C<=4) array, got shape {'
          .. table.concat(shape, ',') .. '}', 2)
  end
  local scale = opts.scale or 1
  if scale < 1 or scale % 1 ~= 0 then error('png.write_image: scale must be a positive integer', 2) end
  local lo, hi = opts.vmin, opts.vmax
  if opts.normalize then
    local mn, mx = math.huge, -math.huge
    for i = 1, #flat do
      local v = flat[i]
      if v == v then
        if v < mn then mn = v end
        if v > mx then mx = v end
      end
    end
    lo = lo or mn
    hi = hi or mx
  end
  return M.write_values(path, flat, h, w, c, { scale = scale, vmin = lo, vmax = hi })
end

--- Writes h x w pixels of c channels (1..4) from a flat list of numbers as an 8-bit PNG.
-- opts: offset (the values start at flat[offset + 1]; default 0), planar (true: the values are
--       laid out (C, H, W); default (H, W, C)), scale (integer upscaling, default 1),
--       vmin, vmax (values mapped to 0 and 255; default 0 and 1).
-- Values are clipped to [vmin, vmax]; NaN becomes 0.
function M.write_values(path, flat, h, w, c, opts)
  opts = opts or {}
  local scale, off, planar = opts.scale or 1, opts.offset or 0, opts.planar
  local lo, hi = opts.vmin or 0, opts.vmax or 1
  local range = hi - lo
  local inv = (range > 0 and range < math.huge) and 255 / range or 0
  local pixels, k = {}, 1
  local W, hw = w * scale, h * w
  for y = 0, h * scale - 1 do
    local sy = floor(y / scale)
    for x = 0, W - 1 do
      local sx = floor(x / scale)
      for ch = 0, c - 1 do
        local v
        if planar then v = flat[off + ch * hw + sy * w + sx + 1]
        else v = flat[off + (sy * w + sx) * c + ch + 1] end
        local p
        if v ~= v then p = 0
        else
          p = floor((v - lo) * inv + 0.5)
          if p < 0 then p = 0 elseif p > 255 then p = 255 end
        end
        pixels[k] = p
        k = k + 1
      end
    end
  end
  return M.write(path, pixels, W, h * scale, c)
end

--- Reads the IHDR of a PNG file: {width, height, bit_depth, color_type, channels}.
-- Returns nil and a message when the file is missing or not a PNG.
function M.read_info(path)
  local f, err = io.open(path, 'rb')
  if not f then return nil, err end
  local head = f:read(33)
  f:close()
  if not head or #head < 33 or head:sub(1, 8) ~= '\137PNG\r\n\26\n' or head:sub(13, 16) ~= 'IHDR' then
    return nil, 'not a PNG file: ' .. tostring(path)
  end
  local function u32(i)
    local b1, b2, b3, b4 = byte(head, i, i + 3)
    return ((b1 * 256 + b2) * 256 + b3) * 256 + b4
  end
  local ct = byte(head, 26)
  return { width = u32(17), height = u32(21), bit_depth = byte(head, 25), color_type = ct,
           channels = CHANNELS_OF[ct] }
end

return M
