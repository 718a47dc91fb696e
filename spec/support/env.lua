--[[
spec/support/env.lua - shared helpers of the Lua-layer specs.

  env.fake()          -> xdbtx loaded over spec/support/fake_core.lua, fake
  env.uri()           -> XDBTX_TEST_URI or nil (specs call pending() then)
  env.client(name)    -> a real client for the test server, db name unique per file
  env.failpoint(c, t) -> configureFailPoint failCommand; env.failpoints_off(c)
  env.command_log(c)  -> the server's command log (xdbtxCommandLog), clear = true empties it
]]

local env = {}

function env.fake()
  local saved_core, saved = package.loaded["xdbtx.core"], package.loaded.xdbtx
  require "xdbtx.core"
  package.loaded["spec.support.fake_core"] = nil
  local fake = dofile("spec/support/fake_core.lua")
  package.loaded["xdbtx.core"] = fake
  local x = dofile("lua/xdbtx.lua")
  package.loaded["xdbtx.core"], package.loaded.xdbtx = saved_core, saved
  return x, fake
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

function env.command_log(client, clear)
  local r = client:command("admin", { xdbtxCommandLog = 1 }, { session = false })
  if clear then
    client:command("admin", require("xdbtx").ordered { { "xdbtxCommandLog", 1 }, { "clear", true } },
      { session = false })
  end
  return r.commands or {}
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

return env
