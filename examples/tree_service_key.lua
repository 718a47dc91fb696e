-- examples/tree_service_key.lua - a service on one cluster and its API key on
-- another, created together or not at all (DESIGN.md's example tree).
--
--   spec/server/with-servers lua5.4 examples/tree_service_key.lua
--   XDBTX_URI=... XDBTX_URI2=... lua5.4 examples/tree_service_key.lua
--
-- The key's action reads the service's id from store[1]. Three runs: one
-- that commits; one whose key is refused by the second cluster (a duplicate),
-- which rolls back the service on the first; and, where the server takes
-- failCommand failpoints (the test server, mongod with test commands), one
-- whose key commit fails after the service committed, so the service's
-- compensation removes it again.
package.path = "./lua/?.lua;" .. package.path
package.cpath = "./build/5.4/?.so;" .. package.cpath
local xdbtx = require "xdbtx"

local uri1 = os.getenv("XDBTX_URI") or os.getenv("XDBTX_TEST_URI")
local uri2 = os.getenv("XDBTX_URI2") or os.getenv("XDBTX_TEST_URI2")
assert(uri1 and uri2, "set XDBTX_URI and XDBTX_URI2 (or run under spec/server/with-servers)")

local services = xdbtx.client(uri1, { app_name = "example-services" })
local keys = xdbtx.client(uri2, { app_name = "example-keys" })
local svc = services:collection("xdbtx_example.services")
local keycoll = keys:collection("xdbtx_example.keys")
svc:delete_many {}
keycoll:delete_many {}

-- the tree that creates a service and issues its key
local function create_service(name, key)
  return {
    client = services, name = "service",
    action = function(store, session)
      return svc:insert_one { name = name }            -- runs in `session`, on cluster 1
    end,
    compensate = function(store, session)
      svc:delete_one { _id = store.service.inserted_id }
    end,
    children = {
      { client = keys, name = "key",
        action = function(store, session)              -- runs on cluster 2
          return keycoll:insert_one { _id = key, entity_id = store[1].inserted_id }
        end },
    },
  }
end

local function run(title, name, key)
  print("\n== " .. title)
  local ok, res = pcall(xdbtx.run, create_service(name, key), { name = "create_service" })
  if not ok then print("error: " .. tostring(res)) end
  print(tostring(ok and res or res.outcome))
  return ok and res or res.outcome
end

local function counts()
  return svc:count_documents {}, keycoll:count_documents {}
end

local out = run("billing, key k-1: commits on both clusters", "billing", "k-1")
assert(out.status == "committed")
print("services, keys:", counts())

out = run("search, key k-1 again: the key cluster refuses it, the service is rolled back", "search", "k-1")
assert(out.status == "aborted" and out.nodes[2].error.name == "DuplicateKey")
print("services, keys:", counts())
assert(svc:count_documents { name = "search" } == 0)

-- a commit failure on the key cluster, after the service's cluster committed
local fp = xdbtx.ordered { { "configureFailPoint", "failCommand" }, { "mode", { times = 1 } },
  { "data", { failCommands = setmetatable({ "commitTransaction" }, xdbtx.array_mt), errorCode = 8,
              appName = "example-keys" } } }
if pcall(keys.command, keys, "admin", fp) then
  out = run("maps, key k-2, the key's commit fails: the service is committed first, then compensated",
    "maps", "k-2")
  assert(out.status == "compensated" and out.nodes[1].state == "compensated")
  print("services, keys:", counts())
  assert(svc:count_documents { name = "maps" } == 0)
else
  print("\n(the server takes no failCommand failpoint: the compensation run is skipped)")
end
print("\nok: one service with one key; every failed run left nothing behind")
