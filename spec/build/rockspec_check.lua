-- rockspec_check.lua TREE - run by spec/build/rockspec_test.sh in a clean interpreter (lua5.4
-- or luajit) whose package paths hold only TREE, a luarocks tree xdbtx was installed into.
-- Checks that xdbtx, xdbtx.core, xdbtx.safe and the test's probe module load from TREE and
-- that a document goes through encode/decode. Prints one line per check; exits 1 on the first
-- failure. Plain Lua 5.1 syntax, so LuaJIT runs it too.
local tree = assert(arg[1], "usage: rockspec_check.lua TREE")

local function check(ok, what)
   if not ok then
      io.stderr:write("FAILED: ", what, "\n")
      os.exit(1)
   end
   print("ok: " .. what)
end

for _, p in ipairs { package.path, package.cpath } do
   for entry in p:gmatch("[^;]+") do
      check(entry:sub(1, #tree) == tree, "search path entry inside the tree: " .. entry)
   end
end

local x = require "xdbtx"
local core = require "xdbtx.core"
local safe = require "xdbtx.safe"
local probe = require "xdbtx.zz_rockspec_probe"
check(type(x.encode) == "function" and type(core) == "table", "require xdbtx and xdbtx.core")
check(type(safe) == "table" and probe.probe == true, "require xdbtx.safe and the probe module")
for _, m in ipairs { "xdbtx", "xdbtx.safe" } do
   local f = package.searchpath(m, package.path)
   check(f and f:sub(1, #tree) == tree, m .. " comes from " .. tostring(f))
end
local so = package.searchpath("xdbtx.core", package.cpath)
check(so and so:sub(1, #tree) == tree, "xdbtx.core comes from " .. tostring(so))

local doc = x.ordered {
   { "name", "widget" },
   { "n", x.int64(1099511627776) },
   { "price", 2.5 },
   { "tags", setmetatable({ "a", "b" }, x.array_mt) },
   { "sub", { ok = true } },
}
local bytes = x.encode(doc)
check(type(bytes) == "string" and #bytes > 40, "encode a document (" .. #bytes .. " bytes)")
local d = x.decode(bytes)
check(d.name == "widget" and d.n == 1099511627776 and d.price == 2.5, "decode its scalars")
check(d.tags[1] == "a" and d.tags[2] == "b" and #d.tags == 2 and d.sub.ok == true, "decode its array and subdocument")
check(x.encode(x.decode(bytes, { exact = true })) == bytes, "exact decode re-encodes to the same bytes")
