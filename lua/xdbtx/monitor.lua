--[[
xdbtx.monitor - client:on_command: delivering the core's recorded command
events to Lua listeners.

The core records the events of a pool in one queue (C never calls Lua), so
listeners are kept per pool (client id) and the queue is drained after each
operation that ran while a listener existed, also when the operation raised.
Every operation's results pass here, so this is also where a client made
with `json_null = true` has its nulls turned into xdbtx.json_null.
]]

local U = require "xdbtx.util"
local E = require "xdbtx.events"

local Mon = {}

local unpack, pack = U.unpack, U.pack
local command_listeners = {}
-- [client id] = listeners, nil without any (read directly on hot paths)
Mon.listeners = command_listeners

-- Deliver the pool's recorded events to its listeners.
function Mon.drain(client)
  local ls = command_listeners[client._id]
  if ls == nil then return end
  local evs = client._core:drain_events()
  if not evs then return end
  for i = 1, #evs do
    local ev = evs[i]
    for _, fn in ipairs({ unpack(ls) }) do
      local ok, err = pcall(fn, ev)
      if not ok then E.report("on_command listener", err) end
    end
  end
end

local drain = Mon.drain

local null, json_null = U.core.null, U.core.json_null

-- v with every xdbtx.null inside it (tables, in place) made xdbtx.json_null.
local function to_json_null(v)
  for k, e in pairs(v) do
    if e == null then
      v[k] = json_null
    elseif type(e) == "table" then
      to_json_null(e)
    end
  end
end

-- The results of an operation of a json_null client (see xdbtx.client).
local function json_nulls(v, ...)
  if v == null then return json_null, ... end
  if type(v) == "table" then to_json_null(v) end
  return v, ...
end

-- f(...) and, when command listeners exist for client, the events it caused.
function Mon.monitored(client, f, ...)
  if command_listeners[client._id] == nil then
    if client._json_null then return json_nulls(f(...)) end
    return f(...)
  end
  local r = pack(pcall(f, ...))
  drain(client)
  if not r[1] then error(r[2], 0) end
  if client._json_null then return json_nulls(unpack(r, 2, r.n)) end
  return unpack(r, 2, r.n)
end

-- client:on_command(fn) -> unsubscribe. Monitoring is on for the pool while
-- it has a listener.
function Mon.on_command(client, fn)
  if type(fn) ~= "function" then U.argerror("client:on_command: listener must be a function") end
  local id = client._id
  local ls = command_listeners[id]
  if ls == nil then
    client._core:monitor(true)
    client._core:drain_events()
    ls = {}
    command_listeners[id] = ls
  end
  ls[#ls + 1] = fn
  local core_client = client._core
  return function()
    if not U.remove(ls, fn) then return false end
    if #ls == 0 and command_listeners[id] == ls then
      command_listeners[id] = nil
      core_client:monitor(false)
    end
    return true
  end
end

return Mon
