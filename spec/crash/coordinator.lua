--[[
spec/crash/coordinator.lua POINT ID [MODE] - a coordinator that runs one
journalled transfer (spec/crash/transfer.lua) between XDBTX_TEST_URI and
XDBTX_TEST_URI2 and dies by SIGKILL at POINT, printing "reached POINT"
first. MODE: "sequential" (default) or "parallel". Points:
  after_first_write   the journal has the run; the first action starts
  during_action       the second action has written
  after_decision      the decision is recorded; no commit sent
  between_commits     cluster A committed; B's commit is held by the server
                      (failpoint, set by the spec) when the process dies
  during_commit       both commits held by the server when it dies
  after_last_commit   every commit done; the final journal write not sent
  during_compensation B's commit failed; A's compensation has written
]]
package.path = "./lua/?.lua;./spec/?.lua;" .. package.path
package.cpath = (os.getenv("XDBTX_CPATH") or "./build/5.4/?.so") .. ";" .. package.cpath
local x = require "xdbtx"
local transfer = dofile("spec/crash/transfer.lua")

local point, id, mode = arg[1], arg[2], arg[3] or "sequential"
local a = x.client(os.getenv("XDBTX_TEST_URI"), { app_name = "crash_coordinator" })
local b = x.client(os.getenv("XDBTX_TEST_URI2"), { app_name = "crash_coordinator" })
local journal = a:collection("xdbtx_crash", "journal")

local function pid()
  local f = assert(io.open("/proc/self/stat"))
  local n = f:read("n")
  f:close()
  return n
end

local function die()
  io.stdout:write("reached ", point, "\n")
  io.stdout:flush()
  os.execute("kill -KILL " .. pid())
  os.exit(3) -- not reached
end

-- die `secs` from now, whatever this process is doing then
local function die_later(secs)
  io.stdout:write("reached ", point, "\n")
  io.stdout:flush()
  os.execute(("(sleep %g; kill -KILL %d) >/dev/null 2>&1 &"):format(secs, pid()))
end

local hooks = {}
if point == "after_first_write" then
  hooks.action = function(name) if name == "debit" then die() end end
elseif point == "during_action" then
  hooks.after_write = true
  hooks.action = function(name) if name == "credit" then die() end end
elseif point == "during_compensation" then
  hooks.compensate = function(name) if name == "debit" then die() end end
end

journal:after("update", function(filter, update)
  local set = update["$set"] or {}
  if set.stage == "committing" then
    if point == "after_decision" then die() end
    if point == "between_commits" or point == "during_commit" then die_later(1) end
  end
end)
journal:before("update", function(filter, update)
  local set = update["$set"] or {}
  if set.stage == "done" and point == "after_last_commit" then die() end
end)

x.run(transfer(a, b, { from = "alice", to = "bob", amount = 10, hooks = hooks }),
  { journal = journal, name = "transfer", id = id, commit = mode, timeout = 30 })
io.stdout:write("finished without dying at ", point, "\n")
os.exit(4)
