-- xdbtx development rockspec. Builds with the project's Makefile (make type),
-- so the module is always linked -Wl,-z,nodelete and lands in the right ABI
-- directory. Works offline: `luarocks make` needs nothing from the network.
rockspec_format = "3.0"
package = "xdbtx"
version = "scm-1"
source = {
   url = "git+file:///dev/null",
}
description = {
   summary = "MongoDB transactions for Lua: one cluster or several, rolled back on any failure",
   detailed = [[
xdbtx is a C library on libmongoc/libbson with a Lua binding. Actions are plain
Lua functions over Lua tables; transactions retry as MongoDB's drivers do and
roll back on any failure; a strict BSON <-> Lua codec never loses a type.
]],
   license = "MIT",
   homepage = "https://example.invalid/xdbtx",
}
dependencies = {
   "lua >= 5.1",
}
external_dependencies = {
   LIBMONGOC = { header = "libmongoc-1.0/mongoc/mongoc.h", library = "mongoc-1.0" },
   LIBBSON = { header = "libbson-1.0/bson/bson.h", library = "bson-1.0" },
}
build = {
   type = "make",
   build_target = "all",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LUA_INCDIR = "$(LUA_INCDIR)",
      LUA_PC = "lua$(LUA_VERSION)",
   },
   install_variables = {
      LUA_PC = "lua$(LUA_VERSION)",
      LUA_CMOD = "$(LIBDIR)",
      LUA_LMOD = "$(LUADIR)",
   },
}
test = {
   type = "command",
   command = "make test",
}
