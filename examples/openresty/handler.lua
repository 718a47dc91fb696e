--[[
examples/openresty/handler.lua (module "openresty.handler") - the nginx side
of the checkout service: the content handlers that nginx.conf names, run in
a worker's main Lua VM.

  POST /checkout         the checkout, in a thread of the thread_pool "xdbtx"
                         (ngx.run_worker_thread): the worker keeps serving
  POST /checkout/direct  the same work called directly: it blocks the worker
                         (every request it holds) until the clusters answer
  GET  /orders/:id       an order, its payment and its request body
  GET  /health           both clusters ping; the worker's pools, as the main
                         VM and a thread VM see them

The work is examples/openresty/work.lua, whose functions take and return
only strings and numbers, so they may cross the thread boundary; this module
reads bodies and writes JSON responses. Nothing here runs in the master.
]]

local W = require "openresty.work"
local cjson = require "cjson.safe"

local H = {}

-- the nginx thread_pool that ngx.run_worker_thread uses (nginx.conf)
H.THREAD_POOL = "xdbtx"

local function respond(status, json)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(json)
  return ngx.exit(status)
end

-- A gracefully exiting worker (reload, quit) stops once no timer is
-- pending, and a request waiting on run_worker_thread holds none: nginx
-- would close it unanswered while its thread still works. A light thread
-- sleeping meanwhile keeps a timer pending, so the request finishes.
local function keep_worker()
  while true do ngx.sleep(1) end
end

-- W[name](...) in a thread VM: its (status, json), or 500 when the thread
-- could not run it (ok = false: no free thread or VM, or it raised).
local function in_thread(name, ...)
  local keeper = ngx.thread.spawn(keep_worker)
  local ok, status, json = ngx.run_worker_thread(H.THREAD_POOL, "openresty.work", name, ...)
  ngx.thread.kill(keeper)
  if not ok then
    ngx.log(ngx.ERR, "run_worker_thread openresty.work.", name, ": ", status)
    return 500, cjson.encode { error = "worker thread: " .. tostring(status) }
  end
  return status, json
end

local function body()
  ngx.req.read_body()
  local b = ngx.req.get_body_data()
  if b == nil and ngx.req.get_body_file() then
    return nil -- larger than client_body_buffer_size: not an order
  end
  return b
end

-- init_worker_by_lua: make this worker's pools, after the fork.
function H.init_worker()
  local ok, err = pcall(W.open)
  if not ok then ngx.log(ngx.ERR, "xdbtx pools: ", tostring(err)) end
end

function H.checkout()
  return respond(in_thread("checkout", body()))
end

-- Blocking: acceptable only where nothing else waits on this worker (a
-- worker of its own, a low-traffic admin endpoint) and with short timeouts
-- in the URIs (serverSelectionTimeoutMS, socketTimeoutMS).
function H.checkout_direct()
  return respond(W.checkout(body()))
end

function H.order(id)
  return respond(in_thread("order", id))
end

function H.health()
  local status, json = in_thread("health")
  local out = cjson.decode(json) or { error = json }
  out.worker_pid = ngx.worker.pid()
  out.main_pools = W.pools()
  out.thread_pools = out.pools
  out.pools = nil
  return respond(status, cjson.encode(out))
end

return H
