-- tiny_digits: the 8x8 handwritten digits (UCI / scikit-learn's load_digits) for the
-- "NNabla by Examples" tutorial: load_digits, plot_stats and data_iterator_tiny_digits,
-- as NNabla's tutorial helper of the same name provides them; and, for the example scripts
-- (resnet_digits.lua, sequence_lstm.lua), split_digits, loss_trend, and accuracy (a quick check).
local NdArray = require 'nnlua.ndarray'

local M = {}

local function script_dir()
  local src = debug.getinfo(1, 'S').source
  return (src:sub(1, 1) == '@' and src:sub(2):match('^(.*)/[^/]*$')) or '.'
end

local function read_csv(path)
  local f
  if path:match('%.gz$') then
    local probe = io.open(path, 'rb')
    if not probe then error("load_digits: cannot open '" .. path .. "'", 3) end
    probe:close()
    f = io.popen("gzip -dc '" .. path:gsub("'", "'\\''") .. "'", 'r')
  else
    f = io.open(path, 'r')
  end
  if not f then error("load_digits: cannot open '" .. path .. "'", 3) end
  local rows = {}
  for line in f:lines() do
    if line ~= '' then
      local row = {}
      for v in line:gmatch('[^,]+') do row[#row + 1] = tonumber(v) end
      if #row ~= 65 then
        f:close()
        error(("load_digits: '%s' line %d has %d columns, expected 65"):format(path, #rows + 1, #row), 3)
      end
      rows[#rows + 1] = row
    end
  end
  f:close()
  if #rows == 0 then error("load_digits: '" .. path .. "' is empty (is gzip installed?)", 3) end
  return rows
end

-- load_digits{n_class = 10 [, path =]}: images {N, 8, 8}, data {N, 64}, target {N}
-- (class ids 0..n_class-1), as scikit-learn's Bunch.
function M.load_digits(opts)
  opts = opts or {}
  local n_class = opts.n_class or 10
  local path = opts.path or (script_dir() .. '/data/digits.csv.gz')
  local rows = read_csv(path)
  local keep = {}
  for _, r in ipairs(rows) do if r[65] < n_class then keep[#keep + 1] = r end end
  local n = #keep
  local images = NdArray.new({ n, 8, 8 })
  local target = NdArray.new({ n })
  local pi, pt = images:ptr(1), target:ptr(1)
  for i, r in ipairs(keep) do
    for j = 1, 64 do pi[(i - 1) * 64 + j - 1] = r[j] end
    pt[i - 1] = r[65]
  end
  return { images = images, data = images:reshape({ n, 64 }), target = target, n = n,
           target_names = (function() local t = {} for c = 0, n_class - 1 do t[#t + 1] = c end return t end)() }
end

-- Prints the data set's statistics and draws the first 64 images as tiles.
function M.plot_stats(digits)
  print('Num images:', digits.n)
  print('Image shape:', '{' .. digits.images.shape[2] .. ', ' .. digits.images.shape[3] .. '}')
  local labels = {}
  for i = 1, math.min(10, digits.n) do labels[i] = string.format('%d', digits.target[i]) end
  print('Labels:', '{' .. table.concat(labels, ', ') .. '}')
  local monitor = require 'nnlua.monitor'
  local plot = require 'nnlua.plot'
  local m = math.min(64, digits.n)
  local first = digits.images:rows(1, m):reshape({ m, 1, 8, 8 })
  plot.figure()
  plot.imshow(monitor.tile_images(first), { cmap = 'gray' })
  plot.title('digits: the first ' .. m .. ' images')
  plot.axis('off')
  local dir = plot.get_output_dir()
  os.execute("mkdir -p '" .. dir .. "'")
  plot.savefig(dir .. '/00_digits.png')
  print('[figure] ' .. dir .. '/00_digits.png')
  if os.getenv('NNLUA_PLOT') ~= 'png' and plot.window_terminal() then plot.show() end
  plot.close()
end

-- data_iterator_tiny_digits(digits, {batch_size = 64, shuffle = false, seed =}): batches of
-- images {B, 1, 8, 8} and labels {B, 1}.
function M.data_iterator_tiny_digits(digits, opts)
  opts = opts or {}
  local data = require 'nnlua.data'
  local images, target = digits.images, digits.target
  local function load(i)
    local img = images[i]:reshape({ 1, 8, 8 })
    return img, { target[i] }
  end
  return data.data_iterator_simple(load, digits.n, opts.batch_size or 64,
    { shuffle = opts.shuffle or false, seed = opts.seed or opts.rng, with_memory_cache = true })
end

-- split_digits(digits, n_train) -> train, test: the first n_train samples and the rest,
-- each {images =, target =, n =} (what data_iterator_tiny_digits and accuracy take).
function M.split_digits(digits, n_train)
  local train = { images = digits.images:rows(1, n_train), target = digits.target:rows(1, n_train), n = n_train }
  local test = { images = digits.images:rows(n_train + 1), target = digits.target:rows(n_train + 1),
                 n = digits.n - n_train }
  return train, test
end

-- accuracy(set, predict): the top-1 accuracy of predict(x) (x images {n, 1, 8, 8} -> logits
-- {n, classes}) on the whole set, with one graph of batch size set.n built under nn.no_grad
-- on the current parameters (a quick check; a training loop builds its test graph once, as
-- the examples do).
function M.accuracy(set, predict)
  local nn = require 'nnlua'
  local F = require 'nnlua.functions'
  return nn.no_grad(function()
    local xe, te = nn.Variable({ set.n, 1, 8, 8 }), nn.Variable({ set.n, 1 })
    xe.d = set.images:reshape({ set.n, 1, 8, 8 })
    te.d = set.target:reshape({ set.n, 1 })
    local err = F.mean(F.top_n_error(predict(xe), te))
    err:forward { clear_buffer = true }
    return 1 - err.d:item()
  end)
end

-- loss_trend(losses) -> first, final: the mean of the first 20 and of the last 50 losses.
function M.loss_trend(losses)
  local function mean(a, b)
    local s = 0
    for i = a, b do s = s + losses[i] end
    return s / (b - a + 1)
  end
  local n = #losses
  return mean(1, math.min(20, n)), mean(math.max(1, n - 49), n)
end

return M
