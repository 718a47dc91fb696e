-- examples/fixture.lua - xdbtx.sandbox as a test fixture.
--
--   spec/server/with-servers lua5.4 examples/fixture.lua
--
-- sandbox runs the function in a transaction that is always aborted. Code
-- under test that opens its own client:transaction joins the sandbox, so
-- even its "commits" leave nothing behind. Run it twice: same output.
package.path = "./lua/?.lua;" .. package.path
package.cpath = "./build/5.4/?.so;" .. package.cpath
local xdbtx = require "xdbtx"

local uri = assert(os.getenv("XDBTX_URI") or os.getenv("XDBTX_TEST_URI"),
  "set XDBTX_URI (or run under spec/server/with-servers)")
local client = xdbtx.client(uri)
local users = client:collection("xdbtx_example.users")

-- the code under test
local function register(name)
  return client:transaction(function()
    if users:find_one { name = name } then xdbtx.rollback("taken") end
    return users:insert_one({ name = name, created = xdbtx.date(os.time() * 1000) }).inserted_id
  end)
end

-- a test written with the fixture
local function test(title, body)
  local ok, err = pcall(xdbtx.sandbox, client, body)
  print((ok and "ok   " or "FAIL ") .. title .. (ok and "" or (": " .. tostring(err))))
end

local before = users:count_documents {}

test("register adds a user", function()
  assert(register("ada"))
  assert(users:count_documents { name = "ada" } == 1)
end)

test("a taken name is refused", function()
  assert(register("bob"))
  local id, why = register("bob")
  assert(id == nil and why == "taken")
end)

test("each test starts clean", function()
  assert(users:count_documents { name = "ada" } == 0)
end)

assert(users:count_documents {} == before, "the fixture left data behind")
print("ok: " .. before .. " user(s) before and after")
