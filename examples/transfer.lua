-- examples/transfer.lua - move money between two accounts in one transaction.
--
--   spec/server/with-servers lua5.4 examples/transfer.lua
--   XDBTX_URI="mongodb://host/?replicaSet=rs0" lua5.4 examples/transfer.lua
--
-- Both updates commit together or not at all. A transfer that would overdraw
-- the source calls xdbtx.rollback(reason): the transaction aborts quietly and
-- returns nil, reason. Transient errors (write conflicts, elections) rerun
-- the function; that is why it only reads and writes the database.
package.path = "./lua/?.lua;" .. package.path
package.cpath = "./build/5.4/?.so;" .. package.cpath
local xdbtx = require "xdbtx"

local uri = assert(os.getenv("XDBTX_URI") or os.getenv("XDBTX_TEST_URI"),
  "set XDBTX_URI (or run under spec/server/with-servers)")

local bank = xdbtx.client(uri, { app_name = "transfer-example" })
local accounts = bank:collection("xdbtx_example.accounts")

local function transfer(from, to, amount)
  return bank:transaction(function(session)
    local src = accounts:find_one { _id = from }        -- routed to `session`
    if not src then xdbtx.rollback("no account " .. from) end
    if src.balance < amount then
      xdbtx.rollback(("%s has %d, cannot send %d"):format(from, src.balance, amount))
    end
    accounts:update_one({ _id = from }, { ["$inc"] = { balance = -amount } })
    local r = accounts:update_one({ _id = to }, { ["$inc"] = { balance = amount } })
    if r.matched_count ~= 1 then xdbtx.rollback("no account " .. to) end
    session:on_commit(function() print(("  committed: %s -> %s: %d"):format(from, to, amount)) end)
    return amount
  end, { write_concern = { w = "majority" }, timeout = 30 })
end

local function balances()
  local out = {}
  for doc in accounts:find({}, { sort = { _id = 1 } }) do
    out[#out + 1] = ("%s=%d"):format(doc._id, doc.balance)
  end
  return table.concat(out, " ")
end

accounts:delete_many {}
accounts:insert_many { { _id = "alice", balance = 100 }, { _id = "bob", balance = 20 } }
print("before:   " .. balances())

print("transfer alice -> bob 30:", transfer("alice", "bob", 30))
print("transfer bob -> alice 500:", transfer("bob", "alice", 500))
print("transfer alice -> carol 5:", transfer("alice", "carol", 5))
print("after:    " .. balances())

local total = 0
for doc in accounts:find {} do total = total + doc.balance end
assert(total == 120, "money was created or destroyed")
assert(accounts:find_one({ _id = "alice" }).balance == 70)
print("ok: the total is still 120")
