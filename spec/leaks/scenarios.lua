--[[
spec/leaks/scenarios.lua - misuse that used to leak C memory, run under
valgrind by scripts/check-leaks (which fails on any definite leak).

Each scenario raises inside the binding after it has allocated something
(an option object, a server reply) and is run many times, so a leak shows
as thousands of lost blocks. Needs XDBTX_TEST_URI (a server) for the
scenarios whose error comes after a server call.
]]
package.path = "./lua/?.lua;" .. package.path
local x = require "xdbtx"
local core = require "xdbtx.core"

local N = tonumber(os.getenv("XDBTX_LEAK_ROUNDS") or "50")
local uri = assert(os.getenv("XDBTX_TEST_URI"), "XDBTX_TEST_URI is not set")

local function raises(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  assert(x.is_error(err), tostring(err))
  return err
end

-- A value nested `n` levels deep.
local function deep(n)
  local v = 1
  for _ = 1, n do v = { d = v } end
  return v
end

local client = x.client(uri, { app_name = "leaks" })
local coll = client:collection("xdbtx_leaks", "deep")
coll:delete_many {}
coll:insert_one { _id = 1 }
-- deeper than the decoder takes (200 levels): built on the server, where
-- a dotted $set path adds levels the encoder (100 at most) never sees
coll:update_one({ _id = 1 }, { ["$set"] = { [("d."):rep(120) .. "d"] = deep(90) } })

local session = client:start_session()

local scenarios = {
  { "a bad read_concern in transaction options", function()
      raises(session.start_transaction, session, { read_concern = 5 })
      if core.check_options then raises(core.check_options, "transaction", { read_concern = {} }) end
    end },
  { "a bad write_concern and read_preference in operation options", function()
      raises(coll.find_one, coll, {}, { read_preference = "nowhere" })
      raises(coll.insert_one, coll, { a = 1 }, { write_concern = { w = -1 } })
    end },
  { "a reply of find_one_and_update that cannot be decoded", function()
      local err = raises(coll.find_one_and_update, coll, { _id = 1 }, { ["$inc"] = { n = 1 } },
        { return_document = "after" })
      assert(err.phase == "decode", err.message)
    end },
  { "an upserted _id that cannot be decoded", function()
      local err = raises(coll.update_one, coll, { nothing = 1 },
        { ["$set"] = { [("_id." .. ("d."):rep(120)) .. "d"] = deep(90) } }, { upsert = true })
      assert(err.phase == "decode", err.message)
      coll:delete_many { nothing = 1 }
    end },
  { "a command reply that cannot be decoded", function()
      local err = raises(client.command, client, "xdbtx_leaks",
        x.ordered { { "find", "deep" }, { "filter", { _id = 1 } } })
      assert(err.phase == "decode", err.message)
    end },
}

for i, sc in ipairs(scenarios) do
  for _ = 1, N do sc[2]() end
  print(("ok %d - %s (%d rounds)"):format(i, sc[1], N))
end
print("1.." .. #scenarios)
session:close()
coll:delete_many {}
