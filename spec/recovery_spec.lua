-- Journal, crash recovery and idempotent runs. The crash matrix starts a
-- coordinator process (spec/crash/coordinator.lua) that runs a journalled
-- transfer between two clusters and dies by SIGKILL at one point; this
-- process then recovers it, as a restarted service or a cron job would.
local env = require "spec.support.env"

local catch = env.catch
local LUA = os.getenv("LUA") or "lua5.4"

describe("journal and recovery", function()
  local why = env.server_reason()
  if why then pending(why) return end
  if not os.getenv("XDBTX_TEST_URI2") then pending("XDBTX_TEST_URI2 is not set") return end

  local x = require "xdbtx"
  local transfer = dofile("spec/crash/transfer.lua")
  local a = x.client(env.uri(), { app_name = "recovery_spec" })
  local b = x.client(os.getenv("XDBTX_TEST_URI2"), { app_name = "recovery_spec" })
  local journal = a:collection("xdbtx_crash", "journal")
  local acc_a, acc_b = a:collection("xdbtx_crash", "accounts"), b:collection("xdbtx_crash", "accounts")
  local trees = {
    transfer = function() return transfer(a, b, { from = "alice", to = "bob", amount = 10 }) end,
  }
  local arr = function(t) return setmetatable(t, x.array_mt) end

  local function balances()
    return acc_a:find_one({ _id = "alice" }).balance, acc_b:find_one({ _id = "bob" }).balance
  end

  -- failCommand on the coordinator's commits on client c
  local function hold_commit(c, data)
    data.failCommands = { "commitTransaction" }
    data.appName = "crash_coordinator"
    env.failpoint(c, { times = 1 }, data)
  end

  before_each(function()
    env.failpoints_off(a)
    env.failpoints_off(b)
    journal:delete_many {}
    for _, c in ipairs { a, b } do
      c:collection("xdbtx_crash", "journal_markers"):delete_many {}
    end
    acc_a:delete_many {}
    acc_b:delete_many {}
    acc_a:insert_one { _id = "alice", balance = 100 }
    acc_b:insert_one { _id = "bob", balance = 0 }
  end)
  after_each(function()
    env.failpoints_off(a)
    env.failpoints_off(b)
  end)

  -- Run the coordinator until it kills itself at `point`; it must die by
  -- SIGKILL having reached the point. The shell reports how it ended (128 +
  -- the signal): Lua 5.1's (LuaJIT's) p:close() does not.
  local function crash(point, id, mode)
    local cmd = ("%s spec/crash/coordinator.lua %s %s %s 2>&1; echo \"exit status $?\""):format(LUA,
      point, id, mode or "sequential")
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    assert.matches("reached " .. point, out, 1, true)
    assert.are.equal("137", out:match("exit status (%d+)%s*$"), out)
  end

  -- A plain write to both accounts within 500 ms: the dead coordinator's
  -- transactions hold no document any more.
  local function unlocked()
    for _, c in ipairs { acc_a, acc_b } do
      local id = c == acc_a and "alice" or "bob"
      local d = c:find_one_and_update({ _id = id }, { ["$set"] = { touched = true } },
        { max_time_ms = 500, session = false })
      assert.is_table(d)
    end
  end

  local matrix = {
    -- point, mode, failpoints, status after recovery, balances after recovery[,
    -- seconds to wait before recovering]
    { "after_first_write", nil, nil, "aborted", { 100, 0 } },
    { "during_action", nil, nil, "aborted", { 100, 0 } },
    { "after_decision", nil, nil, "aborted", { 100, 0 } },
    { "between_commits", nil, function()
        hold_commit(b, { blockConnection = true, blockTimeMS = 3000, errorCode = 8 })
      end, "compensated", { 100, 0 } },
    -- recovered while both commits are still held: killSessions ends the
    -- transactions first, so the commits that land after it fail
    { "during_commit", "parallel", function()
        hold_commit(a, { blockConnection = true, blockTimeMS = 3000 })
        hold_commit(b, { blockConnection = true, blockTimeMS = 3000 })
      end, "aborted", { 100, 0 } },
    -- recovered after the held commits ran
    { "during_commit", "parallel", function()
        hold_commit(a, { blockConnection = true, blockTimeMS = 2000 })
        hold_commit(b, { blockConnection = true, blockTimeMS = 2000 })
      end, "committed", { 90, 10 }, 2 },
    { "during_commit", "parallel", function()
        hold_commit(a, { blockConnection = true, blockTimeMS = 2000 })
        hold_commit(b, { blockConnection = true, blockTimeMS = 2000, errorCode = 8 })
      end, "compensated", { 100, 0 }, 2 },
    { "after_last_commit", nil, nil, "committed", { 90, 10 } },
    { "during_compensation", nil, function() hold_commit(b, { errorCode = 8 }) end,
      "compensated", { 100, 0 } },
  }

  for i, case in ipairs(matrix) do
    local point, mode, faults, status, want, wait = case[1], case[2], case[3], case[4], case[5], case[6]
    it(("a coordinator killed %s (%s commit): recovery%s settles it %s"):format(
      point:gsub("_", " "), mode or "sequential", wait and (" " .. wait .. " s later") or "", status), function()
      local id = "crash-" .. i
      if faults then faults() end
      crash(point, id, mode)
      if wait then require("xdbtx.core").sleep(wait) end
      if point == "during_action" or point == "after_decision" then
        -- the dead process's transaction still holds the account
        local err = catch(acc_a.find_one_and_update, acc_a, { _id = "alice" },
          { ["$set"] = { touched = true } }, { max_time_ms = 300, session = false })
        assert.are.equal(50, err.code) -- MaxTimeMSExpired
      end
      -- a compensate listener sees each compensation recovery runs (and
      -- must not break it)
      local seen = {}
      local off = x.on("compensate", function(ev) seen[#seen + 1] = ev end)
      local ok_r, done = pcall(x.recover, journal, trees, { older_than = 0 })
      off()
      assert(ok_r, tostring(done))
      assert.are.equal(1, #done)
      local out = done[1]
      assert.are.equal(id, out.id)
      assert.are.equal(status, out.status, tostring(out))
      if status == "compensated" then
        assert.are.equal(1, #seen)
        assert.are.equal("compensated", seen[1].state)
        assert.are.equal(id, seen[1].tree)
        assert.is_number(seen[1].elapsed)
        assert.is_number(seen[1].attempt)
      else
        assert.are.equal(0, #seen)
      end
      assert.is_true(out.recovered)
      assert.are.same(want, { balances() })
      unlocked()
      -- a second recovery changes nothing
      assert.are.equal(0, #x.recover(journal, trees, { older_than = 0 }))
      assert.are.same(want, { balances() })
      -- the journal now has the outcome: the same id does not run again
      local ran = false
      local again = trees.transfer()
      again.action = function() ran = true end
      local ok, res = pcall(x.run, again, { journal = journal, name = "transfer", id = id })
      assert.is_false(ran)
      if status == "committed" then
        assert.is_true(ok, tostring(res))
        assert.are.equal("committed", res.status)
      else
        assert.is_false(ok)
        assert.are.equal(status, res.outcome.status)
        -- recovery recorded no error (the coordinator died): a journal state
        assert.is_true(res.replayed)
        assert.are.equal("state", res.phase)
        assert.are.equal("journal", res.domain)
      end
      assert.are.same(want, { balances() })
    end)
  end

  it("older_than protects runs still in progress: a young run is left alone", function()
    crash("after_decision", "young")
    assert.are.equal(0, #x.recover(journal, trees, { older_than = 3600 }))
    assert.are.equal(1, #x.recover(journal, trees, { older_than = 0 }))
  end)

  it("two recoveries at once never undo twice", function()
    hold_commit(b, { errorCode = 8 })
    crash("during_compensation", "twice")
    -- a second recoverer holds the lease: the first skips the run
    local doc = journal:find_one { _id = "twice" }
    journal:update_one({ _id = "twice" }, { ["$set"] = { lease = {
      by = "other", ["until"] = x.date(os.time() * 1000 + 60000) } } })
    local none, skipped = x.recover(journal, trees, { older_than = 0 })
    assert.are.equal(0, #none)
    -- and says so: the run is still unsettled
    assert.are.same({ "twice" }, { table.unpack(skipped) })
    journal:update_one({ _id = "twice" }, { ["$unset"] = { lease = "" } })
    local one
    one, skipped = x.recover(journal, trees, { older_than = 0 })
    assert.are.equal(1, #one)
    assert.are.equal(0, #skipped)
    -- and the compensation marker keeps a rerun from undoing again: it sees
    -- the compensation done
    journal:update_one({ _id = "twice" }, { ["$set"] = { stage = doc.stage } })
    local again = x.recover(journal, trees, { older_than = 0 })
    assert.are.equal(1, #again)
    assert.are.equal("compensated", again[1].status, tostring(again[1]))
    assert.are.same({ 100, 0 }, { balances() })
  end)

  it("a run that cannot be settled does not stop the others: its lease is released, it is reported", function()
    hold_commit(b, { errorCode = 8 })
    crash("during_compensation", "bad")
    -- a run whose participant's cluster cannot be reached (killSessions fails)
    journal:insert_one { _id = "unreachable", name = "transfer", stage = "committing",
      created = x.date(0), timeout = 1,
      participants = arr { { client = "gone", paths = arr { "1" }, lsid = { id = x.uuid() },
        uri = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300&connectTimeoutMS=300" } } }
    -- and, after both, one that settles (no decision recorded: aborted)
    journal:insert_one { _id = "good", name = "transfer", stage = "actions", created = x.date(0),
      timeout = 1, participants = arr {} }
    local broken = {
      transfer = function(name, record)
        if record._id == "bad" then error("cannot build tree for " .. record._id, 0) end
        return trees.transfer(name, record)
      end,
    }
    local err = catch(x.recover, journal, broken, { older_than = 0 })
    assert.is_true(x.is_error(err), tostring(err))
    assert.are.equal("journal", err.phase)
    assert.are.equal("journal", err.domain)
    assert.matches("2 run(s) could not be settled", err.message, 1, true)
    assert.matches('"bad" ("transfer"): cannot build tree for bad', err.message, 1, true)
    local failed = {}
    for _, f in ipairs(err.failed) do failed[f.id] = f end
    assert.are.equal(2, #err.failed)
    assert.are.equal("cannot build tree for bad", failed.bad.error)
    assert.are.equal("transfer", failed.bad.name)
    assert.is_true(failed.bad.lease_released)
    assert.is_true(x.is_error(failed.unreachable.error))
    assert.is_true(failed.unreachable.lease_released)
    assert.are.equal(err.failed[1].error, err.cause)
    -- the run after them was settled all the same
    assert.are.equal(1, #err.settled)
    assert.are.equal("good", err.settled[1].id)
    assert.are.equal("aborted", err.settled[1].status)
    assert.are.equal(0, #err.skipped)
    assert.are.equal("done", journal:find_one({ _id = "good" }).stage)
    -- the failed ones are still pending, with no lease left
    for _, id in ipairs { "bad", "unreachable" } do
      local doc = journal:find_one { _id = id }
      assert.are.equal("committing", doc.stage)
      assert.is_nil(doc.lease)
    end
    assert.are.same({ 90, 0 }, { balances() })
    -- so the next recovery retries at once (not after the lease's 60 s)
    journal:delete_one { _id = "unreachable" }
    local done, skipped = x.recover(journal, trees, { older_than = 0 })
    assert.are.equal(1, #done)
    assert.are.equal("bad", done[1].id)
    assert.are.equal("compensated", done[1].status, tostring(done[1]))
    assert.are.equal(0, #skipped)
    assert.are.same({ 100, 0 }, { balances() })
  end)

  describe("a journalled run", function()
    it("writes the journal three times, a marker per participant, one commit per client", function()
      local sent = {}
      local offs = {}
      for k, c in ipairs { a, b } do
        sent[k] = {}
        offs[k] = c:on_command(function(ev)
          if ev.type == "started" and (ev.database_name == "xdbtx_crash" or
            ev.command_name == "commitTransaction") then
            local coll = ev.command[ev.command_name]
            sent[k][#sent[k] + 1] = ev.command_name .. (type(coll) == "string" and (" " .. coll) or "")
          end
        end)
      end
      local out = x.run(trees.transfer(), { journal = journal, name = "transfer" })
      for _, off in ipairs(offs) do off() end
      assert.are.equal("committed", out.status)
      assert.are.same({ "insert journal", "update accounts", "insert journal_markers", "update journal",
                        "commitTransaction", "update journal" }, sent[1])
      assert.are.same({ "update accounts", "insert journal_markers", "commitTransaction" }, sent[2])
      local doc = journal:find_one { _id = out.id }
      assert.are.equal("done", doc.stage)
      assert.are.equal("committed", doc.outcome.status)
      assert.are.equal(2, #doc.participants)
      assert.is_table(doc.participants[1].lsid)
      assert.are.equal("alice", doc.store["1"].account)
    end)

    it("needs a name, and a Collection", function()
      assert.matches("option 'journal' needs option 'name'",
        catch(x.run, trees.transfer(), { journal = journal }).message, 1, true)
      assert.matches("option 'journal' must be an xdbtx Collection",
        catch(x.run, trees.transfer(), { journal = "j", name = "t" }).message, 1, true)
    end)

    it("results that cannot be encoded are an error before any commit", function()
      local t = trees.transfer()
      t.action = function() return { f = print } end
      local err = catch(x.run, t, { journal = journal, name = "transfer" })
      assert.are.equal("journal", err.phase)
      assert.matches("must be encodable", err.message, 1, true)
      assert.are.equal("aborted", err.outcome.status)
      assert.are.same({ 100, 0 }, { balances() })
    end)

    it("the same id runs once: a second run returns the recorded outcome", function()
      local out = x.run(trees.transfer(), { journal = journal, name = "transfer", id = "once" })
      local out2 = x.run(trees.transfer(), { journal = journal, name = "transfer", id = "once" })
      assert.are.equal("committed", out2.status)
      assert.are.equal(out.id, out2.id)
      assert.are.same({ 90, 10 }, { balances() })
      -- a failed one is raised again, with its outcome
      local t = trees.transfer()
      t.children[1].action = function() error("declined") end
      catch(x.run, t, { journal = journal, name = "transfer", id = "fails" })
      local err = catch(x.run, trees.transfer(), { journal = journal, name = "transfer", id = "fails" })
      assert.is_true(err.replayed)
      assert.are.equal("aborted", err.outcome.status)
      assert.are.same({ 90, 10 }, { balances() })
    end)

    it("ids 7 and \"7\" are two runs, each with markers of its own", function()
      local o7 = x.run(trees.transfer(), { journal = journal, name = "transfer", id = 7 })
      local o7s = x.run(trees.transfer(), { journal = journal, name = "transfer", id = "7" })
      assert.are.equal("committed", o7.status)
      assert.are.equal("committed", o7s.status)
      assert.are.same({ 80, 20 }, { balances() })
      local markers = a:collection("xdbtx_crash", "journal_markers")
      assert.is_table(markers:find_one { _id = "n:7/1" })
      assert.is_table(markers:find_one { _id = "s:7/1" })
      -- recovery finds markers in either form (older journals wrote "<id>/<k>")
      local J = require "xdbtx.journal"
      assert.are.same({ "n:7/2", "7/2" }, { table.unpack(J.marker_filter(7, 2)._id["$in"]) })
      assert.are.same({ "s:7/2", "7/2" }, { table.unpack(J.marker_filter("7", 2)._id["$in"]) })
    end)

    it("a run whose id is unfinished is refused, pointing to recover", function()
      crash("after_decision", "unfinished")
      local err = catch(x.run, trees.transfer(), { journal = journal, name = "transfer", id = "unfinished" })
      assert.matches("xdbtx.recover will settle it", err.message, 1, true)
      x.recover(journal, trees, { older_than = 0 })
    end)
  end)

  describe("saga mode with a journal", function()
    it("records each completed node; recover finishes the compensations", function()
      local t = trees.transfer()
      t.children[1].action = function() error("declined") end
      -- a failing saga compensates its completed nodes itself
      local err = catch(x.run, t, { journal = journal, name = "transfer", mode = "saga", id = "saga-1" })
      assert.are.equal("compensated", err.outcome.status)
      local doc = journal:find_one { _id = "saga-1" }
      assert.are.same({ "1" }, { table.unpack(doc.saga_done) })
      assert.are.same({ "1" }, { table.unpack(doc.saga_compensated) })
      -- a saga left half done (its coordinator died after the debit) is compensated by recover
      journal:insert_one { _id = "saga-2", name = "transfer", mode = "saga", stage = "actions",
        created = x.date(0), timeout = 1, saga_done = arr { "1" },
        store = { ["1"] = { account = "alice", delta = -10 } },
        participants = arr { { client = a:id(), uri = a:uri(), paths = arr { "1" } },
                             { client = b:id(), uri = b:uri(), paths = arr { "1.1" } } } }
      acc_a:update_one({ _id = "alice" }, { ["$inc"] = { balance = -10 } })
      local seen = {}
      local off = x.on("compensate", function(ev) seen[#seen + 1] = ev.node .. " " .. ev.state end)
      local ok, done = pcall(x.recover, journal, trees, { older_than = 0 })
      off()
      assert(ok, tostring(done))
      assert.are.same({ "debit compensated" }, seen)
      assert.are.equal(1, #done)
      assert.are.equal("compensated", done[1].status)
      assert.are.same({ 100, 0 }, { balances() })
    end)
  end)
end)
