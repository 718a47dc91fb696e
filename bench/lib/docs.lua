-- Sample documents for the codec benchmark (bench/codec.lua) and specs:
--   small   flat, ~200 bytes of BSON
--   medium  nested, ~1.5 KB (the shape used in research/lua_drivers.md s.7:
--           20 top-level fields, an address with a geo subdocument, and an
--           array of 10 items with 3 tags each)
--   large   ~100 KB with arrays of subdocuments and numbers
-- Values are plain Lua types that encode the same on Lua 5.4 and LuaJIT.
local M = {}

function M.small()
  return {
    name = "Ada Lovelace",
    email = "ada@example.org",
    age = 36,
    score = 98.5,
    active = true,
    country = "GB",
    visits = 12345,
    ratio = 0.25,
    tags = { "math", "engines", "poetry" },
    note = "first programmer",
  }
end

function M.medium()
  local items = {}
  for i = 1, 10 do
    items[i] = {
      sku = "SKU-" .. (1000 + i),
      qty = i,
      price = i * 1.25,
      tags = { "red", "large", "sale" },
    }
  end
  return {
    _id = "order-000123",
    customer = "Grace Hopper",
    email = "grace@example.org",
    status = "paid",
    currency = "EUR",
    total = 68.75,
    subtotal = 60.0 + 0.5,
    tax = 8.25,
    discount = 0.0 + 0.1,
    count = 10,
    priority = 2,
    gift = false,
    express = true,
    created = 1700000000,
    updated = 1700000100,
    channel = "web",
    coupon = "WELCOME10",
    notes = string.rep("Please leave the parcel at the back door. ", 5):sub(1, 200),
    version = 7,
    source = "bench",
    address = {
      street = "1 Computer Lane",
      city = "Arlington",
      zip = "22201",
      country = "US",
      geo = { type = "Point", lat = 38.8816, lng = -77.0910 },
    },
    items = items,
  }
end

function M.large()
  local rows = {}
  for i = 1, 520 do
    rows[i] = {
      id = i,
      name = "row-" .. i,
      value = i / 7,
      ok = i % 2 == 0,
      point = { i, i * 2, i * 3 },
      label = "label text " .. string.rep("x", i % 40),
    }
  end
  local series = {}
  for i = 1, 2000 do series[i] = (i * 37) % 1000 + 0.5 end
  return { kind = "report", rows = rows, series = series, title = "large sample" }
end

return M
