-- examples/checkout.lua - a checkout over two clusters that succeeds once and
-- then fails at the payment, leaving nothing behind on either cluster.
--
--   make demo                                   (runs this against the test server)
--   spec/server/with-servers lua5.4 examples/checkout.lua
--   XDBTX_URI="mongodb://a/?replicaSet=rs0" XDBTX_URI2="mongodb://b/?replicaSet=rs1" \
--     lua5.4 examples/checkout.lua
--
-- Stock and orders live on the shop's cluster, cards and payments on the
-- payment provider's (examples/checkout/app.lua builds the tree of an
-- order). The script prints each step, the outcome tree of each order and
-- the data of both clusters, and checks that the declined order changed
-- nothing.
package.path = "./lua/?.lua;./examples/?.lua;" .. package.path
package.cpath = "./build/5.4/?.so;" .. package.cpath
local xdbtx = require "xdbtx"
local App = require "checkout.app"

local uri1 = os.getenv("XDBTX_URI") or os.getenv("XDBTX_TEST_URI")
local uri2 = os.getenv("XDBTX_URI2") or os.getenv("XDBTX_TEST_URI2")
assert(uri1 and uri2, "set XDBTX_URI and XDBTX_URI2 (or run under spec/server/with-servers)")

local app = App.new(xdbtx.client(uri1, { app_name = "shop" }),
                    xdbtx.client(uri2, { app_name = "payments" }), {
  step = function(node, cluster, text) print(("  %-8s on %-9s %s"):format(node, cluster, text)) end,
})

local function show_data(title)
  print(title)
  for _, line in ipairs(app:data()) do print("  " .. line) end
end

local function checkout(order)
  print(("\n== order %s: %d x %s, paid with card %s"):format(order.id, order.qty, order.sku, order.card))
  local ok, res = pcall(app.checkout, app, order)
  local outcome = ok and res or res.outcome
  if not ok then print("  failed:  " .. tostring(res)) end
  print("outcome:")
  print(tostring(outcome))
  return outcome
end

app:reset({ mug = { price = 12, available = 10 } }, { alice = 100, bob = 20 })
show_data("data before:")

local first = checkout { id = "order-1", sku = "mug", qty = 2, card = "alice" }
local second = checkout { id = "order-2", sku = "mug", qty = 3, card = "bob" }

print()
show_data("data after:")

-- what the two orders left: the first everywhere, the second nowhere
assert(first.status == "committed", "order-1 should have committed")
assert(second.status == "aborted", "order-2 should have been rolled back")
assert(app.stock:find_one({ _id = "mug" }).available == 8, "stock: only order-1's 2 mugs are gone")
assert(app.orders:count_documents {} == 1 and app.orders:find_one { _id = "order-1" })
assert(app.payments:count_documents {} == 1 and app.payments:find_one { _id = "order-1" })
assert(app.cards:find_one({ _id = "alice" }).balance == 76 and app.cards:find_one({ _id = "bob" }).balance == 20)
print("\nok: order-1 committed on both clusters; order-2 failed at the payment and left nothing on either")
