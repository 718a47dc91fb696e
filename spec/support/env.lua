--[[
spec/support/env.lua - shared helpers of the Lua-layer specs.

  env.fake()          -> xdbtx loaded over spec/support/fake_core.lua, fake
  env.fake_client(...) -> x, fake, client, client:collection(...) over a fresh fake core
  env.catch(f, ...)   -> the error f(...) raises (fails the test when it returns)
  env.clean_collection(client, ...) -> client:collection(...), emptied
  env.uri()           -> XDBTX_TEST_URI or nil (specs call pending() then)
  env.client(name)    -> a real client for the test server, db name unique per file
  env.failpoint(c, t) -> configureFailPoint failCommand; env.failpoints_off(c)
  env.command_log(c)  -> commands sent by c's pool (command monitoring), clear = true empties it
]]

local env = {}

-- The Lua layer's modules: every "xdbtx" and "xdbtx.*" entry of package.loaded
-- except the C core.
local function layer_modules()
  local out = {}
  for name, v in pairs(package.loaded) do
    if (name == "xdbtx" or name:match("^xdbtx%.")) and name ~= "xdbtx.core" then out[name] = v end
  end
  return out
end

-- A fresh copy of the Lua layer over a fresh fake core (its own registries
-- and contexts); package.loaded is left as it was.
function env.fake()
  require "xdbtx.core"
  local saved_core, saved = package.loaded["xdbtx.core"], layer_modules()
  for name in pairs(saved) do package.loaded[name] = nil end
  local fake = dofile("spec/support/fake_core.lua")
  package.loaded["xdbtx.core"] = fake
  local ok, x = pcall(require, "xdbtx")
  for name in pairs(layer_modules()) do package.loaded[name] = nil end
  for name, v in pairs(saved) do package.loaded[name] = v end
  package.loaded["xdbtx.core"] = saved_core
  if not ok then error(x, 0) end
  return x, fake
end

-- x, fake, client, coll for a fake-core before_each: a fresh fake core, a client of it
-- ("mongodb://fake") and client:collection(...).
function env.fake_client(...)
  local x, fake = env.fake()
  local client = x.client("mongodb://fake")
  return x, fake, client, client:collection(...)
end

-- The error f(...) raises; an assertion failure when it returns normally.
function env.catch(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return err
end

-- client:collection(...) with every document deleted (server specs' before_each).
function env.clean_collection(client, ...)
  local coll = client:collection(...)
  coll:delete_many {}
  return coll
end

-- env.scoped(v, body) -> body(v) with v held in a Lua 5.4 to-be-closed
-- variable (compiled at run time, so spec files still parse under LuaJIT).
function env.scoped(v, body)
  local chunk = assert(load("local v <close>, body = ... return body(v)"))
  return chunk(v, body)
end

function env.uri()
  local u = os.getenv("XDBTX_TEST_URI")
  if u == nil or u == "" then return nil end
  return u
end

-- true when the real binding exposes clients (it may still be a placeholder)
function env.binding_ready()
  local ok, core = pcall(require, "xdbtx.core")
  return ok and type(core.client) == "function" and type(core.encode) == "function"
end

-- nil when the integration specs can run, else why not. Use at the top of
-- a describe: `local why = env.server_reason() if why then pending(why) return end`
function env.server_reason()
  if not env.uri() then
    return "XDBTX_TEST_URI is not set (run under spec/server/with-servers)"
  end
  if not env.binding_ready() then
    return "xdbtx.core has no client yet (binding not built)"
  end
  return nil
end

function env.failpoint(client, mode, data)
  return client:command("admin", require("xdbtx").ordered {
    { "configureFailPoint", "failCommand" }, { "mode", mode }, { "data", data },
  }, { session = false })
end

function env.failpoints_off(client)
  pcall(client.command, client, "admin", require("xdbtx").ordered {
    { "configureFailPoint", "failCommand" }, { "mode", "off" },
  }, { session = false })
end

-- Commands the client sent, seen through command monitoring
-- (client:on_command), so the same specs run against a real replica set.
-- One recorder per pool; `clear` empties it after reading.
local recorders = {}
function env.command_log(client, clear)
  local rec = recorders[client:id()]
  if not rec then
    rec = { list = {} }
    client:on_command(function(ev)
      if ev.type == "started" then
        rec.list[#rec.list + 1] = { name = ev.command_name, db = ev.database_name }
      end
    end)
    recorders[client:id()] = rec
  end
  local out = rec.list
  if clear then rec.list = {} end
  return out
end

-- Names of logged commands, without the monitoring/handshake noise.
function env.command_names(log, db)
  local out = {}
  for _, c in ipairs(log) do
    if (db == nil or c.db == db or c.db == "admin") and c.name ~= "hello" and c.name ~= "isMaster"
      and c.name ~= "ismaster" and c.name ~= "endSessions" and c.name ~= "xdbtxCommandLog"
      and c.name ~= "configureFailPoint" and c.name ~= "buildInfo" and c.name ~= "ping" then
      out[#out + 1] = c.name
    end
  end
  return out
end

-- f() run with client's commands recorded: -> the names of those sent to
-- db (env.command_names), pcall's ok and its error or first result.
function env.sent(client, db, f)
  env.command_log(client, true)
  local ok, err = pcall(f)
  return env.command_names(env.command_log(client, true), db), ok, err
end

-- The _id of each document of list, in order.
function env.ids(list)
  local out = {}
  for i, d in ipairs(list) do out[i] = d._id end
  return out
end

return env
