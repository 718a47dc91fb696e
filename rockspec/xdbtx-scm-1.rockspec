-- xdbtx development rockspec, built from a checkout: `luarocks --lua-version 5.4 make
-- rockspec/xdbtx-scm-1.rockspec` (Debian's luarocks defaults to 5.1). The make build type
-- runs the project's Makefile with the variables luarocks defines (LUA_INCDIR, CFLAGS,
-- LIBFLAG; LIBDIR, LUADIR, BINDIR to install), so the module is linked -Wl,-z,nodelete and
-- every lua/**/*.lua and bin/* is installed. The Lua version comes from the headers in
-- LUA_INCDIR: 5.4, or 5.1 when they are LuaJIT's (luajit.h); the Makefile refuses any other.
-- `luarocks make` builds from the tree it is run in and needs nothing from the network.
rockspec_format = "3.0"
package = "xdbtx"
version = "scm-1"
source = {
   -- placeholder: the project has no public repository yet; luarocks make ignores it
   url = "git+file:///work/main",
}
description = {
   summary = "MongoDB transactions for Lua 5.4 and LuaJIT, in one cluster and across several, on libmongoc",
   detailed = [[
xdbtx is a C library on libmongoc/libbson (1.23) with a Lua binding. Actions are plain
Lua functions over Lua tables. A transaction on one replica set retries as MongoDB's
drivers do; a tree of dependent actions across several independent clusters commits
only after every action succeeded, compensates and reports partial commits node by
node, and with a journal is finished by xdbtx.recover (or the xdbtx-recover command)
after a coordinator crash. A strict BSON <-> Lua codec never loses a type. Works on
Lua 5.4 and on LuaJIT 2.1 (OpenResty's luajit2 is what it is tested on); other Lua
versions are refused at build time.
]],
   license = "MIT",
   homepage = "https://example.invalid/xdbtx",
   labels = { "mongodb", "transactions", "bson" },
}
dependencies = {
   -- Lua 5.4, or 5.1 as LuaJIT 2.1: luarocks cannot say "5.1 only if LuaJIT", so a PUC
   -- Lua 5.1 passes this line and the Makefile refuses its headers with a message
   "lua >= 5.1, < 5.5, ~= 5.2, ~= 5.3",
}
external_dependencies = {
   LIBMONGOC = { header = "libmongoc-1.0/mongoc/mongoc.h", library = "mongoc-1.0" },
   LIBBSON = { header = "libbson-1.0/bson/bson.h", library = "bson-1.0" },
}
build = {
   type = "make",
   build_target = "all",
   variables = {
      LUA_INCDIR = "$(LUA_INCDIR)",
      CFLAGS = "$(CFLAGS)",
      LIBFLAG = "$(LIBFLAG)",
   },
   install_variables = {
      LUA_CMOD = "$(LIBDIR)",
      LUA_LMOD = "$(LUADIR)",
      BINDIR = "$(BINDIR)",
   },
}
test = {
   type = "command",
   command = "make test",
}
