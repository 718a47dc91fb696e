--[[
xdbtx.events - xdbtx.on(event, fn) and the reporting of errors that must
not change an outcome.

Listeners are the one registry of this module (per loaded xdbtx). A
listener's error, like a callback's, is reported with warn() (Lua 5.4;
enable with warn("@on")) or on stderr, never raised: an event describes an
outcome, it cannot change it.
]]

local U = require "xdbtx.util"

local E = {}

local unpack, now = U.unpack, U.now
local listeners = { start = {}, retry = {}, commit = {}, abort = {}, compensate = {} }
-- listeners[event][1] ~= nil when the event has listeners (hot paths read it)
E.listeners = listeners

-- Report an error raised by a listener or callback (`what` names it).
function E.report(what, err)
  local msg = "xdbtx: " .. what .. " raised: " .. tostring(err)
  local w = rawget(_G, "warn")
  if w then w(msg) else io.stderr:write(msg, "\n") end
end

-- true when `name` has listeners: callers build an event only then.
function E.wants(name)
  return listeners[name][1] ~= nil
end

-- Deliver ev (a table: fields set by the caller) to the listeners of name.
function E.emit(name, ev)
  local ls = listeners[name]
  if ls[1] == nil then return end
  ev.event = name
  ev.time = now()
  for _, fn in ipairs({ unpack(ls) }) do
    local ok, err = pcall(fn, ev)
    if not ok then E.report("listener for '" .. name .. "'", err) end
  end
end

-- xdbtx.on(event, fn) -> unsubscribe(): fn(ev) for each event; ev has
-- event, time, attempt, elapsed, client (one-cluster) or tree and node
-- (transaction tree) and, per event, duration, error, reason, what, outcome.
function E.on(event, fn)
  local ls = listeners[event]
  if not ls then
    U.argerror("xdbtx.on: unknown event '" .. tostring(event) .. "' (start, retry, commit, abort, compensate)")
  end
  if type(fn) ~= "function" then U.argerror("xdbtx.on: listener must be a function") end
  ls[#ls + 1] = fn
  return function() return U.remove(ls, fn) end
end

return E
