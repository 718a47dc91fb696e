-- examples/tree_nested.lua - parents three levels deep over two clusters,
-- each action reading the results of the ones before it.
--
--   spec/server/with-servers lua5.4 examples/tree_nested.lua
--   XDBTX_URI=... XDBTX_URI2=... lua5.4 examples/tree_nested.lua
--
--   account  (cluster 1)                 store[1]
--     profile  (cluster 2, reads store[1])  store[2]
--       settings (cluster 1, reads store[1] and store[2])
--
-- Actions run parents first, so a child sees its parents' results. The
-- account and the settings share cluster 1's session: one transaction there,
-- one on cluster 2. A failure at the deepest level rolls back both.
package.path = "./lua/?.lua;" .. package.path
package.cpath = "./build/5.4/?.so;" .. package.cpath
local xdbtx = require "xdbtx"

local uri1 = os.getenv("XDBTX_URI") or os.getenv("XDBTX_TEST_URI")
local uri2 = os.getenv("XDBTX_URI2") or os.getenv("XDBTX_TEST_URI2")
assert(uri1 and uri2, "set XDBTX_URI and XDBTX_URI2 (or run under spec/server/with-servers)")

local users = xdbtx.client(uri1, { app_name = "example-users" })
local people = xdbtx.client(uri2, { app_name = "example-people" })
local accounts = users:collection("xdbtx_example.accounts")
local settings = users:collection("xdbtx_example.settings")
local profiles = people:collection("xdbtx_example.profiles")
for _, c in ipairs { accounts, settings, profiles } do c:delete_many {} end

local THEMES = { light = true, dark = true }

local function sign_up(email, theme)
  return {
    client = users,
    action = function(store)
      return accounts:insert_one({ email = email }).inserted_id
    end,
    children = { {
      client = people,
      action = function(store)
        return profiles:insert_one({ account_id = store[1], display = email:match("^[^@]+") }).inserted_id
      end,
      children = { {
        client = users,
        action = function(store)
          if not THEMES[theme] then error("unknown theme " .. theme, 0) end
          return settings:insert_one({ account_id = store[1], profile_id = store[2], theme = theme }).inserted_id
        end,
      } },
    } },
  }
end

local function counts()
  return ("accounts %d, settings %d (cluster 1); profiles %d (cluster 2)"):format(
    accounts:count_documents {}, settings:count_documents {}, profiles:count_documents {})
end

print("== ada@example.org, theme dark")
local out = xdbtx.run(sign_up("ada@example.org", "dark"))
print(out)
local s = settings:find_one {}
assert(s.account_id == out.store[1] and s.profile_id == out.store[2])
print("settings point at " .. tostring(s.account_id) .. " and " .. tostring(s.profile_id))
print(counts())

print("\n== bob@example.org, theme neon: the deepest action fails")
local ok, err = pcall(xdbtx.run, sign_up("bob@example.org", "neon"))
assert(not ok and err.phase == "action" and err.node == "1.1.1")
print("error: " .. tostring(err))
print(err.outcome)
print(counts())
assert(accounts:count_documents {} == 1 and profiles:count_documents {} == 1)
print("\nok: bob's account and profile were rolled back on both clusters")
