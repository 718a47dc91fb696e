--[[
examples/openresty/work.lua (module "openresty.work") - the checkout service's
work, run by nginx workers: inside ngx.run_worker_thread VMs (the
recommended path) or directly in a worker's main VM (the blocking path).

Every function takes and returns plain values (strings, numbers, plain
tables): only those cross the run_worker_thread boundary. Each Lua VM (the
worker's main VM, each thread VM) builds its own Client and App objects on
first use; they all reach the worker's one libmongoc pool per cluster,
which the C core keeps per process and which init_worker_by_lua makes
after the fork (W.open). The order's logic is examples/checkout/app.lua's
transaction tree; this module adds the journal, a node that records the
request body as given, and the JSON mapping of outcomes and errors.
]]

local xdbtx = require "xdbtx"
local cjson = require "cjson.safe"
local App = require "checkout.app"

local W = {}

-- Clients per cluster and worker: at most one run_worker_thread task per
-- thread (thread_pool threads=N) and one tree per task holds a client of
-- each cluster, plus what the main VM holds (direct calls, /health).
W.MAX_POOL_SIZE = tonumber(os.getenv("XDBTX_POOL_SIZE") or "") or 32

local app, journal, requests

-- The App of this Lua VM, made on first use over the process's pools.
local function get_app()
  if app then return app end
  local uri, uri2 = os.getenv("XDBTX_URI"), os.getenv("XDBTX_URI2")
  if not uri or not uri2 then
    error("set XDBTX_URI and XDBTX_URI2 (nginx.conf: env XDBTX_URI; env XDBTX_URI2;)", 0)
  end
  local db = os.getenv("XDBTX_DB") or "xdbtx_shop"
  -- json_null: documents read back give cjson.null for null, so they
  -- encode to the JSON that was stored
  local shop = xdbtx.client(uri, { app_name = "xdbtx-shop", max_pool_size = W.MAX_POOL_SIZE,
                                   json_null = true })
  local payments = xdbtx.client(uri2, { app_name = "xdbtx-payments",
                                        max_pool_size = W.MAX_POOL_SIZE, json_null = true })
  app = App.new(shop, payments, { db = db })
  journal = shop:collection(db, "journal")
  requests = shop:collection(db, "requests")
  return app
end

local function pools()
  local a = get_app()
  return { shop = a.shop:pool_info() or false, payments = a.payments_client:pool_info() or false }
end

-- W.open() -> { shop = { pid, pool }, payments = ... }: make this worker's
-- pools now (init_worker_by_lua, after the fork; no I/O).
function W.open()
  local a = get_app()
  a.shop:open()
  a.payments_client:open()
  return pools()
end

-- W.pools() -> the same, as this VM sees them (nil entries: not made yet).
W.pools = pools

local function encode(t)
  return (assert(cjson.encode(t)))
end

-- A plain view of an outcome's nodes.
local function nodes(outcome)
  local out = {}
  for i, n in ipairs(outcome and outcome.nodes or {}) do
    out[i] = { path = n.path, name = n.name, state = n.state,
               error = n.error ~= nil and tostring(n.error.message or n.error) or nil }
  end
  return out
end

local function is_name(v) return type(v) == "string" and #v > 0 and #v <= 64 end

-- The order of a request body, or nil and why not.
local function parse(body)
  if type(body) ~= "string" then return nil, "body: expected a JSON object, got no body" end
  local order, err = cjson.decode(body)
  if type(order) ~= "table" then return nil, "body: expected a JSON object" .. (err and (": " .. err) or "") end
  for _, k in ipairs { "id", "sku", "card" } do
    if not is_name(order[k]) then
      return nil, ("body.%s: expected a string of 1 to 64 bytes, got %s"):format(k, cjson.encode(order[k]))
    end
  end
  local q = order.qty
  if type(q) ~= "number" or q ~= math.floor(q) or q < 1 or q > 1000 then
    return nil, "body.qty: expected an integer in [1, 1000], got " .. tostring(cjson.encode(q))
  end
  return order
end

-- W.checkout(body) -> HTTP status, JSON text. body: the request's JSON
-- { id, sku, qty, card, ... }. The order's tree (app.lua) gets one more
-- node on the shop's cluster, the order's first child, that stores the body
-- as given, so it commits or rolls back with the order. 200: committed; 409: an action refused it
-- (nothing applied; `node` names the node); 400: a bad body; 502: the
-- clusters failed it (`status` says what was left, `nodes` node by node).
function W.checkout(body)
  local order, why = parse(body)
  if not order then return 400, encode { error = why } end
  local a = get_app()
  local tree = a:tree(order)
  table.insert(tree.children, 1, {
    client = a.shop, name = "request",
    action = function() requests:insert_one { _id = order.id, body = order } end,
    compensate = function() requests:delete_one { _id = order.id } end,
  })
  local opts = a:options(order)
  opts.journal = journal
  local ok, res = pcall(xdbtx.run, tree, opts)
  if ok then
    return 200, encode { id = order.id, status = res.status, amount = res.store.order.amount,
                         attempts = res.attempts, nodes = nodes(res) }
  end
  if not xdbtx.is_error(res) then
    return 500, encode { id = order.id, error = tostring(res) }
  end
  local outcome = res.outcome
  return res.phase == "action" and 409 or 502, encode {
    id = order.id, error = res.message, node = res.node, phase = res.phase,
    code = res.code, status = outcome and outcome.status or "unknown", nodes = nodes(outcome),
  }
end

-- W.order(id) -> HTTP status, JSON text: the order, its payment and the
-- request body as stored (nulls included), or 404.
function W.order(id)
  if not is_name(id) then return 400, encode { error = "id: expected a string of 1 to 64 bytes" } end
  local a = get_app()
  local order = a.orders:find_one { _id = id }
  if not order then return 404, encode { error = "no order " .. id } end
  local req = requests:find_one { _id = id }
  return 200, encode { order = order, payment = a.payments:find_one { _id = id } or cjson.null,
                       request = req and req.body or cjson.null }
end

-- W.health() -> HTTP status, JSON text: both clusters answer a ping, and
-- which pools this VM uses.
function W.health()
  local a = get_app()
  local out = { pools = pools() }
  local ok, err = pcall(function()
    a.shop:command("admin", { ping = 1 }, { session = false })
    a.payments_client:command("admin", { ping = 1 }, { session = false })
  end)
  out.ok = ok
  if not ok then out.error = tostring(err) end
  return ok and 200 or 503, encode(out)
end

return W
