-- nnlua as a LuaRocks package. From a clone of the repository (offline):
--   luarocks --lua-version=5.1 make rockspec/nnlua-scm-1.rockspec              (system tree)
--   luarocks --lua-version=5.1 make --tree DIR rockspec/nnlua-scm-1.rockspec   (any tree)
--   luarocks --lua-version=5.1 make --local rockspec/nnlua-scm-1.rockspec      (~/.luarocks)
--   luarocks --lua-version=5.1 remove nnlua   (with the same --tree/--local)
-- `make rock` builds build/libnnlua.so (and the REPL's build/libnnlua_readline.so where the
-- readline headers exist); `make rock-install` copies the Lua modules, both libraries (next
-- to the modules, where lua/nnlua/lib.lua finds them), the tutorials (as
-- nnlua/tutorials/, data included) and the `nnlua` command. nnlua needs LuaJIT (the FFI):
-- the installed command re-executes itself with luajit if LuaRocks' wrapper starts it
-- with another interpreter.
rockspec_format = "3.0"
package = "nnlua"
version = "scm-1"

source = {
   url = "git+https://github.com/nnlua/nnlua.git",
}

description = {
   summary = "A Lua-scripted deep-learning environment in the style of Sony's NNabla",
   detailed = [[
A C11 engine (arrays, variables, functions, computation graphs, solvers, HDF5 parameter
files) driven from LuaJIT through its FFI, with NNabla's API in Lua: parameter scopes,
static and dynamic graphs, training loops, data iterators, monitors, gnuplot figures,
an interactive REPL (`nnlua`) and the "NNabla by Examples" tutorial (`nnlua --tutorial`).
]],
   homepage = "https://github.com/nnlua/nnlua",
   license = "Apache-2.0",
   labels = { "deep-learning", "neural-networks", "luajit", "ffi" },
}

dependencies = {
   "lua >= 5.1, < 5.2",   -- LuaJIT 2.1 (Lua 5.1 semantics)
}

-- Debian: libopenblas-openmp-dev (or libopenblas-dev), libhdf5-dev (headers under
-- /usr/include/hdf5/serial).
external_dependencies = {
   OPENBLAS = { library = "openblas" },
   HDF5 = { header = "hdf5/serial/hdf5.h", library = "hdf5_serial" },
}

build = {
   type = "make",
   build_target = "rock",
   build_variables = {
      CC = "$(CC)",
      ROCK_CFLAGS = "$(CFLAGS)",
   },
   install_target = "rock-install",
   install_variables = {
      INST_LUADIR = "$(LUADIR)",
      INST_BINDIR = "$(BINDIR)",
      INST_LIBDIR = "$(LIBDIR)",
   },
}
