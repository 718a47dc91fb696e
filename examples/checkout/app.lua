--[[
examples/checkout/app.lua - the checkout of a shop whose data lives on two
clusters: stock and orders on the shop's cluster, cards and payments on the
payment provider's. One order is one transaction tree:

  order (shop: insert the order)
    stock   (shop: take the items from stock, if there are enough)
    payment (payments: record the payment, then debit the card, if it can pay)

Every node has a compensation, so the commit phase may commit the two
clusters in either order and undo a committed one. A failing business rule
raises in its action: nothing commits anywhere. The handler of a web server
(examples/openresty/, later) and examples/checkout.lua both use this module;
it prints nothing itself, it reports each step to `opts.step`.
]]

local xdbtx = require "xdbtx"

local App = {}
App.__index = App

-- App.new(shop, payments, opts) -> app. `shop` and `payments` are xdbtx
-- Clients (two clusters); opts: db (database name on both, default
-- "xdbtx_checkout"), step (function(node, cluster, text) told each step
-- as it runs, cluster "shop" or "payments"; default silent).
function App.new(shop, payments, opts)
  opts = opts or {}
  local db = opts.db or "xdbtx_checkout"
  return setmetatable({
    shop = shop, payments_client = payments,
    stock = shop:collection(db, "stock"), orders = shop:collection(db, "orders"),
    cards = payments:collection(db, "cards"), payments = payments:collection(db, "payments"),
    step = opts.step or function() end,
  }, App)
end

-- app:reset(stock, cards): replace the data with `stock` ({ sku = { price,
-- available } }) and `cards` ({ card = balance }), outside any transaction.
function App:reset(stock, cards)
  for _, c in ipairs { self.stock, self.orders, self.cards, self.payments } do c:delete_many {} end
  for sku, s in pairs(stock) do
    self.stock:insert_one { _id = sku, price = s.price, available = s.available }
  end
  for card, balance in pairs(cards) do self.cards:insert_one { _id = card, balance = balance } end
end

-- app:tree(order) -> the transaction tree of one order { id, sku, qty, card }.
function App:tree(order)
  local step = self.step
  local stock, orders, cards, payments = self.stock, self.orders, self.cards, self.payments
  return {
    client = self.shop, name = "order",
    action = function()
      local item = stock:find_one { _id = order.sku }
      if not item then error("no such item: " .. order.sku, 0) end
      local amount = item.price * order.qty
      orders:insert_one { _id = order.id, sku = order.sku, qty = order.qty, amount = amount,
                          card = order.card }
      step("order", "shop", ("insert order %s: %d x %s = %d"):format(order.id, order.qty, order.sku, amount))
      return { id = order.id, amount = amount }
    end,
    compensate = function(store)
      orders:delete_one { _id = store.order.id }
    end,
    children = {
      { client = self.shop, name = "stock",
        action = function()
          local r = stock:update_one({ _id = order.sku, available = { ["$gte"] = order.qty } },
                                     { ["$inc"] = { available = -order.qty } })
          if r.matched_count ~= 1 then
            error(("only %d x %s in stock"):format(stock:find_one({ _id = order.sku }).available,
              order.sku), 0)
          end
          step("stock", "shop", ("take %d x %s from stock"):format(order.qty, order.sku))
          return order.qty
        end,
        compensate = function(store)
          stock:update_one({ _id = order.sku }, { ["$inc"] = { available = store.stock } })
        end },
      { client = self.payments_client, name = "payment",
        action = function(store)
          local amount = store.order.amount
          payments:insert_one { _id = order.id, card = order.card, amount = amount }
          step("payment", "payments", ("insert payment %s: %d by card %s"):format(order.id, amount, order.card))
          local r = cards:update_one({ _id = order.card, balance = { ["$gte"] = amount } },
                                     { ["$inc"] = { balance = -amount } })
          if r.matched_count ~= 1 then
            local card = cards:find_one { _id = order.card }
            error(("card %s declined: balance %s, amount %d"):format(order.card,
              card and card.balance or "none", amount), 0)
          end
          step("payment", "payments", ("debit card %s: %d"):format(order.card, amount))
          return amount
        end,
        compensate = function(store)
          payments:delete_one { _id = order.id }
          cards:update_one({ _id = order.card }, { ["$inc"] = { balance = store.payment } })
        end },
    },
  }
end

-- app:options(order) -> the options of xdbtx.run for one order: the run is
-- named after the shop's flow and identified by the order. A journal is one
-- more field here (journal = a collection, e.g. on the shop's cluster);
-- then a second checkout of the same order id returns or raises the
-- recorded outcome, so app:reset must empty the journal too, or the demo's
-- fixed order ids replay the first run's outcomes.
function App:options(order)
  return { name = "checkout", id = order.id, timeout = 30 }
end

-- app:checkout(order) -> the outcome; raises the action's or the commit's
-- xdbtx.Error, with err.outcome, when the order did not go through.
function App:checkout(order)
  return xdbtx.run(self:tree(order), self:options(order))
end

-- app:data() -> what both clusters hold now, as lines of text.
function App:data()
  local lines = {}
  local function show(title, coll, fmt)
    local docs = {}
    for d in coll:find({}, { sort = { _id = 1 } }) do docs[#docs + 1] = fmt(d) end
    lines[#lines + 1] = ("  %-9s %s"):format(title, #docs > 0 and table.concat(docs, ", ") or "(none)")
  end
  lines[#lines + 1] = "shop cluster (" .. self.shop:uri() .. ")"
  show("stock", self.stock, function(d) return ("%s: %d left at %d"):format(d._id, d.available, d.price) end)
  show("orders", self.orders, function(d) return ("%s: %d x %s = %d"):format(d._id, d.qty, d.sku, d.amount) end)
  lines[#lines + 1] = "payments cluster (" .. self.payments_client:uri() .. ")"
  show("cards", self.cards, function(d) return ("%s: balance %d"):format(d._id, d.balance) end)
  show("payments", self.payments, function(d) return ("%s: %d by %s"):format(d._id, d.amount, d.card) end)
  return lines
end

return App
