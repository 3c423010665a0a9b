-- LuaRocks: `luarocks --lua-version=5.1 make --tree TREE rockspec/nnlua-scm-1.rockspec`
-- installs nnlua (offline) into a temporary tree; from a folder outside the repository, with
-- only that tree on the paths, the installed `nnlua` (and plain luajit) finds its engine,
-- trains a small network on the installed tutorial data and saves its parameters; then
-- `luarocks remove` takes everything away again.
local function shquote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local h = io.popen('(' .. cmd .. ') 2>&1; echo "exit=$?"')
  local out = h:read('*a')
  h:close()
  local code = tonumber(out:match('exit=(%d+)%s*$'))
  return code, out
end

local function exists(p)
  local f = io.open(p, 'rb')
  if f then f:close() return true end
  return false
end

local ROOT = io.popen('pwd'):read('*l')

-- The rock is built and run as a user would: no sanitizer settings (`make test SANITIZE=1`
-- passes them down, also through MAKEFLAGS), no repository paths.
local CLEAN_ENV = 'env -u LD_PRELOAD -u NNLUA_BUILD -u NNLUA_LIB -u LUA_PATH -u LUA_CPATH ' ..
                  '-u LUA_INIT -u ASAN_OPTIONS -u UBSAN_OPTIONS -u SANITIZE -u MAKEFLAGS -u MFLAGS ' ..
                  '-u MAKELEVEL -u MAKEOVERRIDES'

local TRAIN = [[
-- trains logistic regression on the installed digits, then saves the parameters
local td = require 'tiny_digits'
local digits = td.load_digits { n_class = 10 }
local data = td.data_iterator_tiny_digits(digits, { batch_size = 32, shuffle = true })
nn.seed(0)
local x = nn.Variable({ 32, 1, 8, 8 })
local t = nn.Variable({ 32, 1 })
local y = nn.parameter_scope('affine', function() return PF.affine(x, 10) end)
local loss = F.mean(F.softmax_cross_entropy(y, t))
local solver = S.Sgd(0.01)
solver:set_parameters(nn.get_parameters())
local first, last
for i = 1, 200 do
  x.d, t.d = data:next()
  loss:forward()
  solver:zero_grad()
  loss:backward()
  solver:update()
  if i == 1 then first = loss.d:item() end
  last = loss.d:item()
end
nn.save_parameters('params.h5')
print('engine ' .. nn.lib.path)
print(('loss %.4f -> %.4f'):format(first, last))
]]

describe('luarocks', function()
  local base, tree, work

  -- a private folder per run (outside the repository; runs may overlap)
  setup(function()
    base = io.popen('mktemp -d /tmp/nnlua_rocks_XXXXXX'):read('*l')
    tree, work = base .. '/tree', base .. '/work'
    os.execute('mkdir -p ' .. shquote(work))
  end)

  teardown(function()
    if base and base:match('^/tmp/nnlua_rocks_') then os.execute('rm -rf ' .. shquote(base)) end
  end)

  it('installs into a tree, trains from outside the repository, and removes cleanly', function()
    local code, out = run(CLEAN_ENV .. ' luarocks --lua-version=5.1 make --tree ' .. shquote(tree) ..
                          ' rockspec/nnlua-scm-1.rockspec')
    assert.equal(0, code, out)
    assert.is_true(exists(tree .. '/bin/nnlua'), out)
    assert.is_true(exists(tree .. '/share/lua/5.1/nnlua/init.lua'))
    assert.is_true(exists(tree .. '/share/lua/5.1/nnlua/libnnlua.so'))
    assert.is_true(exists(tree .. '/share/lua/5.1/nnlua/tutorials/data/digits.csv.gz'))
    -- the command LuaRocks wrote runs luajit (the FFI needs it)
    local f = assert(io.open(tree .. '/bin/nnlua'))
    local wrapper = f:read('*a')
    f:close()
    assert.matches('luajit', wrapper, 1, true)

    -- outside the repository, only the tree on the paths
    local script = assert(io.open(work .. '/train.lua', 'w'))
    script:write(TRAIN)
    script:close()
    local env = CLEAN_ENV .. ' HOME=' .. shquote(work) .. ' PATH=' .. shquote(tree .. '/bin:/usr/bin:/bin')
    code, out = run('cd ' .. shquote(work) .. ' && ' .. env .. ' nnlua train.lua')
    assert.equal(0, code, out)
    assert.matches('engine ' .. tree .. '/share/lua/5.1/nnlua/libnnlua.so', out, 1, true)
    local first, last = out:match('loss ([%d.]+) %-> ([%d.]+)')
    assert.is_not_nil(first, out)
    assert.is_true(tonumber(last) < tonumber(first), out)
    local h5 = assert(io.open(work .. '/params.h5', 'rb'))
    assert.equal('\137HDF\r\n\26\n', h5:read(8))
    h5:close()

    -- plain luajit with the tree's paths finds the library next to the modules
    code, out = run('cd ' .. shquote(work) .. ' && ' .. env ..
                    ' LUA_PATH=' .. shquote(tree .. '/share/lua/5.1/?.lua;' .. tree .. '/share/lua/5.1/?/init.lua') ..
                    ' LUA_CPATH=' .. shquote(tree .. '/lib/lua/5.1/?.so') ..
                    [[ luajit -e "local nn = require 'nnlua'; print(nn.lib.path, nn.load_parameters ~= nil)"]])
    assert.equal(0, code, out)
    assert.matches(tree .. '/share/lua/5.1/nnlua/libnnlua.so\ttrue', out, 1, true)

    -- the REPL of the installed command, scripted
    code, out = run('cd ' .. shquote(work) .. ' && echo "6 * 7" | ' .. env .. ' nnlua')
    assert.equal(0, code, out)
    assert.matches('^42\n', out)

    code, out = run(CLEAN_ENV .. ' luarocks --lua-version=5.1 remove --tree ' .. shquote(tree) .. ' nnlua')
    assert.equal(0, code, out)
    local left = io.popen('find ' .. shquote(tree) .. ' -type f ! -name manifest'):read('*a')
    assert.equal('', left)
  end)
end)
