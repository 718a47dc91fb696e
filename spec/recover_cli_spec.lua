-- bin/xdbtx-recover, the operators' command: run as a cron job would, after
-- a coordinator process died (spec/crash/coordinator.lua).
local env = require "spec.support.env"

local LUA = os.getenv("LUA") or "lua5.4"

describe("xdbtx-recover", function()
  local why = env.server_reason()
  if why then pending(why) return end
  if not os.getenv("XDBTX_TEST_URI2") then pending("XDBTX_TEST_URI2 is not set") return end

  local x = require "xdbtx"
  local a = x.client(env.uri(), { app_name = "recover_cli_spec" })
  local b = x.client(os.getenv("XDBTX_TEST_URI2"), { app_name = "recover_cli_spec" })
  local journal = a:collection("xdbtx_crash", "journal")
  local acc_a, acc_b = a:collection("xdbtx_crash", "accounts"), b:collection("xdbtx_crash", "accounts")
  -- the command runs under $LUA (5.4): under LuaJIT it takes the 5.4 build
  local cpath = rawget(_G, "jit") and "./build/5.4/?.so" or package.cpath:match("^[^;]*")

  before_each(function()
    env.failpoints_off(a)
    env.failpoints_off(b)
    journal:delete_many {}
    for _, c in ipairs { a, b } do c:collection("xdbtx_crash", "journal_markers"):delete_many {} end
    acc_a:delete_many {}
    acc_b:delete_many {}
    acc_a:insert_one { _id = "alice", balance = 100 }
    acc_b:insert_one { _id = "bob", balance = 0 }
  end)
  after_each(function()
    env.failpoints_off(a)
    env.failpoints_off(b)
  end)

  -- run the command; -> its output, exit status (as the shell reports it:
  -- LuaJIT's p:close() does not)
  local function cli(args, envs)
    local cmd = ("%s LUA_PATH='./lua/?.lua;./spec/?.lua;;' LUA_CPATH='%s;;' %s bin/xdbtx-recover %s 2>&1;"
      .. " echo \"exit status $?\""):format(envs or "", cpath, LUA, args)
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("exit status (%d+)%s*$"))
    return out:gsub("exit status %d+%s*$", ""), code
  end

  local function crash(point)
    local p = assert(io.popen(("exec %s spec/crash/coordinator.lua %s cli-run 2>&1"):format(LUA, point)))
    local out = p:read("a")
    p:close()
    assert.matches("reached " .. point, out, 1, true)
  end

  local function args(extra)
    return ("--uri '%s' --journal xdbtx_crash.journal --trees spec.crash.cli_trees --older-than 0 %s")
      :format(env.uri(), extra or "")
  end

  it("settles a crashed run, prints its outcome tree, exits 0; a second run finds nothing", function()
    env.failpoint(b, { times = 1 }, { failCommands = { "commitTransaction" }, errorCode = 8,
      appName = "crash_coordinator" })
    crash("during_compensation")
    local out, code = cli(args())
    assert.are.equal(0, code, out)
    assert.matches('xdbtx "transfer" cli%-run: compensated', out)
    assert.matches("1 debit%s+compensated", out)
    assert.matches("1 run%(s%) settled, 0 left partial or unknown", out)
    assert.are.equal(100, acc_a:find_one({ _id = "alice" }).balance)
    out, code = cli(args())
    assert.are.equal(0, code, out)
    assert.matches("0 run%(s%) settled", out)
  end)

  it("exits 2 when a run is left partial, and the tree shows where", function()
    env.failpoint(b, { times = 1 }, { failCommands = { "commitTransaction" }, errorCode = 8,
      appName = "crash_coordinator" })
    crash("during_compensation")
    local out, code = cli(args(), "XDBTX_CLI_BROKEN_UNDO=1")
    assert.are.equal(2, code, out)
    assert.matches("partial", out)
    assert.matches("compensation_failed.*the compensation is broken", out)
    assert.matches("1 left partial or unknown", out)
  end)

  it("exits 1 and names a run it could not settle; the next run retries it at once", function()
    env.failpoint(b, { times = 1 }, { failCommands = { "commitTransaction" }, errorCode = 8,
      appName = "crash_coordinator" })
    crash("during_compensation")
    local bad = os.tmpname() .. ".lua"
    local f = assert(io.open(bad, "w"))
    f:write('return { transfer = function(name, record) error("cannot build tree for " .. record._id, 0) end }\n')
    f:close()
    local out, code = cli((args():gsub("spec.crash.cli_trees", bad)))
    os.remove(bad)
    assert.are.equal(1, code, out)
    assert.matches("could not settle run cli-run (transfer): cannot build tree for cli-run", out, 1, true)
    assert.matches("0 run(s) settled, 0 left partial or unknown, 1 could not be settled", out, 1, true)
    assert.is_nil(journal:find_one({ _id = "cli-run" }).lease)
    out, code = cli(args())
    assert.are.equal(0, code, out)
    assert.matches("1 run(s) settled, 0 left partial or unknown\n", out, 1, true)
    assert.are.equal(100, acc_a:find_one({ _id = "alice" }).balance)
  end)

  it("exits 3 and names a run skipped because another recovery holds its lease", function()
    crash("after_decision")
    journal:update_one({ _id = "cli-run" }, { ["$set"] = { lease = {
      by = "other", ["until"] = x.date(os.time() * 1000 + 60000) } } })
    local out, code = cli(args())
    assert.are.equal(3, code, out)
    assert.matches("skipped run cli-run: another recovery holds its lease", out, 1, true)
    assert.matches("0 run(s) settled, 0 left partial or unknown, 1 skipped", out, 1, true)
    journal:update_one({ _id = "cli-run" }, { ["$unset"] = { lease = "" } })
    out, code = cli(args())
    assert.are.equal(0, code, out)
    assert.matches("1 run(s) settled", out, 1, true)
  end)

  it("leaves young runs alone (--older-than) and says what is wrong with bad arguments", function()
    crash("after_decision")
    local out, code = cli(("--uri '%s' --journal xdbtx_crash.journal --trees spec.crash.cli_trees" ..
      " --older-than 3600"):format(env.uri()))
    assert.are.equal(0, code, out)
    assert.matches("0 run%(s%) settled", out)
    out, code = cli("--help") -- asked for: the usage, exit 0
    assert.are.equal(0, code, out)
    assert.matches("usage: xdbtx-recover --uri URI", out, 1, true)
    out, code = cli("--journal x.y --trees m")
    assert.are.equal(1, code)
    assert.matches("--uri is required", out, 1, true)
    out, code = cli(args("--older-than soon"))
    assert.are.equal(1, code)
    assert.matches("--older-than must be a number", out, 1, true)
    out, code = cli((args():gsub("spec.crash.cli_trees", "no.such.module")))
    assert.are.equal(1, code)
    assert.matches("no.such.module", out, 1, true)
    x.recover(journal, {}, { older_than = 0 })
  end)
end)
