--[[
xdbtx.util - helpers shared by every part of the Lua layer: Error values,
argument and option checks, pack/unpack, the clock, the coroutine key.

Holds no state. Every error made here is an xdbtx.Error (core.error), never
a string, and its message names the function, the option and the value.
]]

local core = require "xdbtx.core"

local U = { core = core }

U.unpack = table.unpack or unpack

function U.pack(...)
  return { n = select("#", ...), ... }
end

local co_running = coroutine.running
local MAIN = {} -- key of the main coroutine where running() returns nil (Lua 5.1/LuaJIT)
U.MAIN = MAIN

-- The running coroutine, or a fixed key for the main one (hot paths write
-- `coroutine.running() or U.MAIN` in place).
function U.running()
  return co_running() or MAIN
end

U.now = core.now or os.clock

-- A new xdbtx.Error; `extra` fields are copied in.
function U.xerror(phase, domain, message, extra)
  local e = { code = 0, message = message, domain = domain, phase = phase, labels = {} }
  if extra then
    for k, v in pairs(extra) do e[k] = v end
  end
  return core.error(e)
end

function U.raise(phase, domain, message, extra)
  error(U.xerror(phase, domain, message, extra), 0)
end

function U.argerror(message)
  U.raise("argument", "argument", message)
end

function U.has_label(err, label)
  return type(err) == "table" and type(err.labels) == "table" and err.labels[label] == true
end

-- A short readable form of a value for messages.
function U.show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

-- Remove the last fn from list; true when it was there (the unsubscribe
-- functions of listeners and hooks).
function U.remove(list, fn)
  for i = #list, 1, -1 do
    if list[i] == fn then
      table.remove(list, i)
      return true
    end
  end
  return false
end

-- Raise for a method called with '.' instead of ':' (self is not a `kind`).
function U.bad_self(where, kind, self)
  U.argerror(("%s: expected %s as self, got %s (did you call it with '.' instead of ':'?)"):format(
    where, kind, type(self)))
end

function U.check_opts(opts, where)
  if opts ~= nil and type(opts) ~= "table" then
    U.argerror(where .. ": options must be a table, got " .. type(opts))
  end
end

-- Raise for any key of opts that `allowed` (a set) does not have.
function U.check_keys(opts, allowed, where)
  U.check_opts(opts, where)
  if opts then
    for k in pairs(opts) do
      if not allowed[k] then
        U.argerror(where .. ": unknown option '" .. tostring(k) .. "'")
      end
    end
  end
end

-- A finite number in [min, max] (either bound may be nil), or raise naming
-- the option and the value.
function U.check_number(v, where, name, min, max)
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge
    or (min and v < min) or (max and v > max) then
    local range = min and max and ("in [" .. min .. ", " .. max .. "]")
      or min and (">= " .. min) or max and ("<= " .. max) or ""
    U.argerror(("%s: option '%s' must be a finite number %s, got %s"):format(
      where, name, range, U.show(v)))
  end
  return v
end

return U
