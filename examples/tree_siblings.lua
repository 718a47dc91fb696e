-- examples/tree_siblings.lua - a parent with two independent children on
-- two clusters: when the second child fails, the first one is rolled back
-- too (the Mongoose helper this replaces left it committed).
--
--   spec/server/with-servers lua5.4 examples/tree_siblings.lua
--   XDBTX_URI=... XDBTX_URI2=... lua5.4 examples/tree_siblings.lua
--
--   order      (cluster 1)
--     invoice  (cluster 2, reads store.order)
--     shipment (cluster 1, reads store.order; independent of the invoice)
--
-- Siblings run in order, and nothing commits before every action of the
-- tree has succeeded.
package.path = "./lua/?.lua;" .. package.path
package.cpath = "./build/5.4/?.so;" .. package.cpath
local xdbtx = require "xdbtx"

local uri1 = os.getenv("XDBTX_URI") or os.getenv("XDBTX_TEST_URI")
local uri2 = os.getenv("XDBTX_URI2") or os.getenv("XDBTX_TEST_URI2")
assert(uri1 and uri2, "set XDBTX_URI and XDBTX_URI2 (or run under spec/server/with-servers)")

local shop = xdbtx.client(uri1, { app_name = "example-shop" })
local billing = xdbtx.client(uri2, { app_name = "example-billing" })
local orders = shop:collection("xdbtx_example.orders")
local shipments = shop:collection("xdbtx_example.shipments")
local invoices = billing:collection("xdbtx_example.invoices")
for _, c in ipairs { orders, shipments, invoices } do c:delete_many {} end

local SHIPS_TO = { FR = true, DE = true }

local function place(id, total, country)
  return {
    client = shop, name = "order",
    action = function() return orders:insert_one({ _id = id, total = total }).inserted_id end,
    children = {
      { client = billing, name = "invoice",
        action = function(store)
          return invoices:insert_one({ order_id = store.order, total = total }).inserted_id
        end },
      { client = shop, name = "shipment",
        action = function(store)
          if not SHIPS_TO[country] then error("no shipping to " .. country, 0) end
          return shipments:insert_one({ order_id = store.order, country = country }).inserted_id
        end },
    },
  }
end

local function counts()
  return ("orders %d, shipments %d (cluster 1); invoices %d (cluster 2)"):format(
    orders:count_documents {}, shipments:count_documents {}, invoices:count_documents {})
end

print("== order A-1 to FR")
print(xdbtx.run(place("A-1", 30, "FR"), { name = "place_order" }))
print(counts())

print("\n== order A-2 to ZZ: the invoice was written, then the shipment fails")
local ok, err = pcall(xdbtx.run, place("A-2", 50, "ZZ"), { name = "place_order" })
assert(not ok and err.node == "shipment")
print("error: " .. tostring(err))
print(err.outcome)
print(counts())
assert(invoices:count_documents {} == 1 and orders:count_documents {} == 1)
print("\nok: A-2's invoice on cluster 2 was rolled back with the rest")
