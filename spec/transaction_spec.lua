-- client:transaction: MongoDB's convenient-transactions rules, in Lua.
--
-- Part 1 runs the retry loop over an in-memory fake of xdbtx.core
-- (spec/support/fake_core.lua) with a fake clock: every rule, deterministic.
-- Part 2 runs against the test server (XDBTX_TEST_URI), with failCommand
-- fail points driving each retry path.

local env = require "support.env"

local catch = env.catch

describe("client:transaction retry rules (fake core) #luajit", function()
  local x, fake, client, coll

  before_each(function() x, fake, client, coll = env.fake_client("db", "t") end)

  local function names()
    local out = {}
    for _, l in ipairs(fake.log) do out[#out + 1] = l.name end
    return table.concat(out, " ")
  end

  it("commits once and returns every value of the function", function()
    local a, b, c = client:transaction(function(s)
      coll:insert_one { _id = 1 }
      return 1, nil, "three"
    end)
    assert.are.same({ 1, nil, "three" }, { a, b, c })
    assert.are.equal("insert commitTransaction", names())
  end)

  it("reruns the whole function on TransientTransactionError from an operation", function()
    fake.fail("insert", { code = 112, name = "WriteConflict", labels = { "TransientTransactionError" } })
    local runs = 0
    client:transaction(function() runs = runs + 1 coll:insert_one { _id = 1 } end)
    assert.are.equal(2, runs)
    assert.are.equal("insert abortTransaction insert commitTransaction", names())
    assert.are.equal(1, #fake.data["db.t"])
  end)

  it("retries only the commit on UnknownTransactionCommitResult", function()
    fake.fail("commitTransaction", { times = 2, code = 91, name = "ShutdownInProgress",
      labels = { "UnknownTransactionCommitResult" } })
    local runs = 0
    client:transaction(function() runs = runs + 1 coll:insert_one { _id = 1 } end)
    assert.are.equal(1, runs)
    assert.are.equal("insert commitTransaction commitTransaction commitTransaction", names())
  end)

  it("reruns the function on TransientTransactionError from the commit", function()
    fake.fail("commitTransaction", { code = 251, name = "NoSuchTransaction",
      labels = { "TransientTransactionError" } })
    local runs = 0
    client:transaction(function() runs = runs + 1 coll:insert_one { _id = runs } end)
    assert.are.equal(2, runs)
  end)

  it("does not retry a commit that failed with MaxTimeMSExpired", function()
    fake.fail("commitTransaction", { code = 50, name = "MaxTimeMSExpired",
      labels = { "UnknownTransactionCommitResult" } })
    local err = catch(client.transaction, client, function() coll:insert_one { _id = 1 } end)
    assert.are.equal("MaxTimeMSExpired", err.name)
    assert.is_true(err:has_label("UnknownTransactionCommitResult"))
    assert.are.equal("insert commitTransaction", names())
  end)

  it("does not retry MaxTimeMSExpired inside writeConcernError either", function()
    fake.fail("commitTransaction", { code = 64, name = "WriteConcernFailed",
      labels = { "UnknownTransactionCommitResult" },
      reply = { writeConcernError = { code = 50, codeName = "MaxTimeMSExpired" } } })
    local err = catch(client.transaction, client, function() coll:insert_one { _id = 1 } end)
    assert.are.equal("WriteConcernFailed", err.name)
  end)

  it("stops at the timeout with an error that keeps the last error's labels", function()
    fake.fail("insert", { times = "always", code = 112, name = "WriteConflict",
      labels = { "TransientTransactionError" } })
    local runs = 0
    local err = catch(client.transaction, client, function()
      runs = runs + 1
      fake.advance(0.4)
      coll:insert_one { _id = 1 }
    end, { timeout = 1 })
    assert.are.equal(3, runs)
    assert.is_true(x.is_error(err))
    assert.is_true(err:has_label("TransientTransactionError"))
    assert.are.equal(112, err.code)
    assert.are.equal("WriteConflict", err.name)
    assert.is_true(err.timed_out)
    assert.matches("timeout of 1s elapsed", err.message)
  end)

  it("stops commit retries at the timeout too", function()
    fake.fail("commitTransaction", { times = "always", code = 91, name = "ShutdownInProgress",
      labels = { "UnknownTransactionCommitResult" } })
    local off = x.on("retry", function() fake.advance(1) end)
    local err = catch(client.transaction, client, function() coll:insert_one { _id = 1 } end,
      { timeout = 3 })
    off()
    assert.is_true(err:has_label("UnknownTransactionCommitResult"))
    assert.matches("timeout", err.message)
  end)

  it("stops reruns caused by a transient commit error at the timeout too", function()
    fake.fail("commitTransaction", { times = "always", code = 251, name = "NoSuchTransaction",
      labels = { "TransientTransactionError" } })
    local runs = 0
    local err = catch(client.transaction, client, function()
      runs = runs + 1
      fake.advance(0.6)
      coll:insert_one { _id = runs }
    end, { timeout = 1 })
    assert.are.equal(2, runs)
    assert.is_true(err:has_label("TransientTransactionError"))
    assert.are.equal("NoSuchTransaction", err.name)
    assert.matches("timeout", err.message)
  end)

  it("pauses before a rerun with the sleep option (a scheduler's), not the process-blocking one", function()
    fake.fail("insert", { times = 2, code = 112, name = "WriteConflict",
      labels = { "TransientTransactionError" } })
    local pauses = {}
    local r = client:transaction(function()
      coll:insert_one { _id = 1 }
      return "ok"
    end, { sleep = function(secs) pauses[#pauses + 1] = secs end })
    assert.are.equal("ok", r)
    assert.are.equal(2, #pauses)
    for _, p in ipairs(pauses) do assert.is_true(p > 0 and p <= 0.5, tostring(p)) end
    -- a client-wide default, used when the transaction gives none
    local n = 0
    local c2 = x.client("mongodb://fake", { sleep = function() n = n + 1 end })
    fake.fail("insert", { times = 1, code = 112, labels = { "TransientTransactionError" } })
    c2:transaction(function() c2:collection("db", "t"):insert_one { _id = 2 } end)
    assert.are.equal(1, n)
    assert.matches("option 'sleep' must be a function",
      catch(client.transaction, client, function() end, { sleep = 5 }).message, 1, true)
  end)

  it("re-raises any other error unchanged, after one run and an abort", function()
    local mine = { "my error" }
    local runs = 0
    local err = catch(client.transaction, client, function()
      runs = runs + 1
      coll:insert_one { _id = 1 }
      error(mine)
    end)
    assert.are.equal(mine, err)
    assert.are.equal(1, runs)
    assert.are.equal("insert abortTransaction", names())
    assert.are.equal(0, #fake.data["db.t"])
    local serr = catch(client.transaction, client, function() error("plain string", 0) end)
    assert.are.equal("plain string", serr)
  end)

  it("accepts a function that committed or aborted by itself", function()
    assert.are.equal("c", client:transaction(function(s)
      coll:insert_one { _id = 1 }
      s:commit()
      return "c"
    end))
    assert.are.equal("a", client:transaction(function(s)
      coll:insert_one { _id = 2 }
      s:abort()
      return "a"
    end))
    assert.are.equal(1, #fake.data["db.t"])
  end)

  it("xdbtx.rollback aborts quietly and returns nil, reason", function()
    local committed, rolled
    local r, why = client:transaction(function(s)
      s:on_commit(function() committed = true end)
      s:on_rollback(function(reason) rolled = reason end)
      coll:insert_one { _id = 1 }
      x.rollback("not enough stock")
    end)
    assert.is_nil(r)
    assert.are.equal("not enough stock", why)
    assert.are.equal("not enough stock", rolled)
    assert.is_nil(committed)
    assert.are.equal(0, #fake.data["db.t"])
  end)

  it("xdbtx.rollback outside a transaction is an Error", function()
    assert.are.equal("state", catch(x.rollback, "x").phase)
  end)

  it("runs on_commit once after the final commit; a retried attempt's callbacks are dropped", function()
    fake.fail("insert", { code = 112, labels = { "TransientTransactionError" } })
    local calls, attempt = {}, 0
    client:transaction(function(s)
      attempt = attempt + 1
      local a = attempt
      s:on_commit(function(v) calls[#calls + 1] = "commit " .. a .. " " .. v end)
      s:on_rollback(function() calls[#calls + 1] = "rollback " .. a end)
      coll:insert_one { _id = 1 }
      return "v"
    end)
    assert.are.same({ "commit 2 v" }, calls)
  end)

  it("errors carry the outcome: aborted before the commit, unknown after a failed commit", function()
    fake.fail("insert", { code = 11000, name = "DuplicateKey" })
    local e1 = catch(client.transaction, client, function() coll:insert_one { _id = 1 } end)
    assert.are.equal("aborted", e1.outcome)
    fake.fail("commitTransaction", { code = 79, name = "UnknownReplWriteConcern" })
    local rolled = false
    local err = catch(client.transaction, client, function(s)
      s:on_rollback(function() rolled = true end)
      coll:insert_one { _id = 2 }
    end)
    assert.are.equal("unknown", err.outcome)
    assert.is_false(rolled) -- the commit may have been applied: no rollback callback
  end)

  it("errors in on_commit callbacks do not change the outcome", function()
    local w = warn
    local warned
    _G.warn = function(m) warned = m end
    local r = client:transaction(function(s)
      s:on_commit(function() error("boom") end)
      coll:insert_one { _id = 1 }
      return "done"
    end)
    _G.warn = w
    assert.are.equal("done", r)
    assert.is_string(warned)
    assert.matches("on_commit callback raised", warned, 1, true)
    assert.matches("boom", warned, 1, true)
  end)

  it("refuses unknown options, naming the key", function()
    local err = catch(client.transaction, client, function() end, { retries = 3 })
    assert.is_true(x.is_error(err))
    assert.matches("retries", err.message)
    assert.matches("timeout", catch(client.transaction, client, function() end, { timeout = "x" }).message)
  end)

  it("a standalone server is a clear Error naming mode = \"saga\", before any command", function()
    fake.topology_kind = "standalone"
    local err = catch(client.transaction, client, function() coll:insert_one {} end)
    assert.matches('mode = "saga"', err.message, 1, true)
    assert.are.equal(0, #fake.log)
  end)

  it("nested transaction on the same client joins: one commit", function()
    local inner_session
    client:transaction(function(s)
      coll:insert_one { _id = 1 }
      client:transaction(function(s2) inner_session = s2 coll:insert_one { _id = 2 } end)
      assert.are.equal(s, inner_session)
    end)
    assert.are.equal("insert insert commitTransaction", names())
  end)

  it("a transaction on another client inside a running one is an Error", function()
    local other = x.client("mongodb://other")
    local err = catch(client.transaction, client, function()
      other:transaction(function() end)
    end)
    assert.are.equal("state", err.phase)
    assert.matches("another client", err.message)
  end)

  it("routes ambient operations; other clients need session = false", function()
    local other = x.client("mongodb://other")
    local oc = other:collection("db.o")
    client:transaction(function(s)
      assert.is_true(x.in_transaction())
      assert.are.equal(s, x.session(client))
      assert.is_nil(x.session(other))
      coll:insert_one { _id = 1 }
      assert.are.equal(s._core, fake.log[#fake.log].session)
      local err = catch(oc.insert_one, oc, { _id = 1 })
      assert.are.equal("routing", err.phase)
      oc:insert_one({ _id = 2 }, { session = false })
      assert.is_falsy(fake.log[#fake.log].session)
    end)
    assert.is_false(x.in_transaction())
  end)

  it("a session whose transaction ended raises instead of running outside", function()
    local saved
    client:transaction(function(s) saved = s end)
    local err = catch(coll.insert_one, coll, { _id = 1 }, { session = saved })
    assert.are.equal("state", err.phase)
    assert.are.equal(0, #fake.log)
  end)

  it("the context is per coroutine; xdbtx.bind carries it into another one", function()
    client:transaction(function(s)
      local co = coroutine.wrap(function() return x.in_transaction() end)
      assert.is_false(co())
      local bound = coroutine.wrap(x.bind(function()
        coll:insert_one { _id = 7 }
        return x.session(client)
      end))
      assert.are.equal(s, bound())
    end)
  end)

  it("a function that yields completes when resumed by a driver loop", function()
    local co = coroutine.create(function()
      return client:transaction(function(s)
        coll:insert_one { _id = 1 }
        coroutine.yield("paused")
        coll:insert_one { _id = 2 }
        return "finished"
      end)
    end)
    local ok, v = coroutine.resume(co)
    assert.is_true(ok)
    assert.are.equal("paused", v)
    assert.is_false(x.in_transaction()) -- the main coroutine has no context
    ok, v = coroutine.resume(co)
    assert.is_true(ok)
    assert.are.equal("finished", v)
    assert.are.equal(2, #fake.data["db.t"])
  end)

  it("session:with_transaction runs the same loop on the caller's session, which stays open", function()
    fake.fail("insert", { code = 112, labels = { "TransientTransactionError" } })
    local s = client:start_session()
    local runs = 0
    local r = s:with_transaction(function(inner)
      runs = runs + 1
      assert.are.equal(s, inner)
      assert.are.equal(s, x.session(client))
      coll:insert_one { _id = runs }
      return "r"
    end)
    assert.are.equal("r", r)
    assert.are.equal(2, runs)
    assert.are.equal("committed", s:state())
    coll:insert_one({ _id = 9 }, { session = s }) -- still usable, outside a transaction
    s:close()
  end)

  it("events: start, retry, commit with timings", function()
    fake.fail("insert", { code = 112, labels = { "TransientTransactionError" } })
    local seen = {}
    local offs = {}
    for _, e in ipairs { "start", "retry", "commit", "abort" } do
      offs[#offs + 1] = x.on(e, function(ev) seen[#seen + 1] = ev end)
    end
    client:transaction(function() coll:insert_one { _id = 1 } end)
    for _, off in ipairs(offs) do off() end
    local kinds = {}
    for _, ev in ipairs(seen) do kinds[#kinds + 1] = ev.event .. ev.attempt end
    assert.are.same({ "start1", "retry1", "start2", "commit2" }, kinds)
    assert.are.equal("mongodb://fake", seen[4].client)
    assert.is_number(seen[4].elapsed)
    assert.is_number(seen[4].duration)
    assert.are.equal(112, seen[2].error.code)
  end)
end)

describe("client:transaction against the test server", function()
  local x, client, coll, log_client
  local DB = "xdbtx_transaction_spec"

  local function count() return coll:count_documents({}, { session = false }) end

  local function commits()
    local n = 0
    for _, c in ipairs(env.command_log(client)) do
      if c.name == "commitTransaction" then n = n + 1 end
    end
    return n
  end

  local why = env.server_reason()
  if why then pending(why) return end

  before_each(function()
    x = require "xdbtx"
    client = x.client(env.uri())
    coll = client:collection(DB, "t")
    coll:delete_many({}, { session = false })
    env.command_log(client, true)
  end)

  after_each(function()
    if client then env.failpoints_off(client) end
  end)

  it("commits: the writes are visible afterwards, the values returned", function()
    local id, n = client:transaction(function(s)
      coll:insert_one { _id = 1, v = "a" }
      coll:insert_one { _id = 2, v = "b" }
      return 1, coll:count_documents {}
    end)
    assert.are.equal(1, id)
    assert.are.equal(2, n)
    assert.are.equal(2, count())
    assert.are.equal(1, commits())
  end)

  it("an error in the function aborts: nothing is written, the error is re-raised unchanged", function()
    local mine = setmetatable({}, { __tostring = function() return "mine" end })
    local err = catch(client.transaction, client, function()
      coll:insert_one { _id = 1 }
      error(mine)
    end)
    assert.are.equal(mine, err)
    assert.are.equal(0, count())
  end)

  it("transient error in an operation (112 once): the function runs twice, commits once", function()
    env.failpoint(client, { times = 1 }, { failCommands = { "insert" }, errorCode = 112 })
    local runs = 0
    client:transaction(function()
      runs = runs + 1
      coll:insert_one { _id = 1 }
    end)
    assert.are.equal(2, runs)
    assert.are.equal(1, count())
    assert.are.equal(1, commits())
  end)

  it("retryable commit error once (189): committed, the function ran once", function()
    env.failpoint(client, { times = 1 }, { failCommands = { "commitTransaction" }, errorCode = 189 })
    local runs = 0
    client:transaction(function() runs = runs + 1 coll:insert_one { _id = 1 } end)
    assert.are.equal(1, runs)
    assert.are.equal(1, count())
    assert.is_true(commits() >= 2)
  end)

  it("commit failing twice (unknown result, then success within the timeout)", function()
    env.failpoint(client, { times = 2 }, { failCommands = { "commitTransaction" }, errorCode = 189 })
    local runs, retries = 0, {}
    local off = x.on("retry", function(ev) retries[#retries + 1] = ev end)
    client:transaction(function() runs = runs + 1 coll:insert_one { _id = 1 } end)
    off()
    assert.are.equal(1, runs)
    assert.are.equal(1, count())
    assert.are.equal(3, commits())
    assert.are.equal(1, #retries)
    assert.are.equal("commit", retries[1].what)
    assert.is_true(retries[1].error:has_label("UnknownTransactionCommitResult"))
  end)

  it("closeConnection on commit: the commit is retried, committed once", function()
    env.failpoint(client, { times = 2 }, { failCommands = { "commitTransaction" }, closeConnection = true })
    local runs = 0
    client:transaction(function() runs = runs + 1 coll:insert_one { _id = 1 } end)
    assert.are.equal(1, runs)
    assert.are.equal(1, count())
  end)

  it("WriteConflict from a concurrent transaction in another coroutine: retried after the commit", function()
    coll:insert_one({ _id = "acct", n = 0 }, { session = false })
    local runs_a, runs_b, errs = 0, 0, {}
    local off = x.on("retry", function(ev) errs[#errs + 1] = ev.error end)
    local a = coroutine.create(function()
      return client:transaction(function()
        runs_a = runs_a + 1
        coll:update_one({ _id = "acct" }, { ["$inc"] = { n = 1 } })
        coroutine.yield("a wrote")
        return "a"
      end)
    end)
    local b = coroutine.create(function()
      return client:transaction(function()
        runs_b = runs_b + 1
        coroutine.yield("b started " .. runs_b)
        coll:update_one({ _id = "acct" }, { ["$inc"] = { n = 10 } })
        return "b"
      end)
    end)
    local function step(co, want)
      local ok, v = coroutine.resume(co)
      assert(ok, v)
      assert.are.equal(want, v)
    end
    step(a, "a wrote")       -- A holds the write
    step(b, "b started 1")   -- B opened its transaction
    step(b, "b started 2")   -- B's write conflicted (112), it aborted and started again
    step(a, "a")             -- A commits
    step(b, "b")             -- B's second attempt writes and commits
    off()
    assert.are.equal(1, runs_a)
    assert.are.equal(2, runs_b)
    assert.are.equal(112, errs[1].code)
    assert.is_true(errs[1]:has_label("TransientTransactionError"))
    assert.are.equal(11, coll:find_one({ _id = "acct" }, { session = false }).n)
  end)

  it("timeout exceeded (alwaysOn transient): an Error with the label, elapsed bounded", function()
    env.failpoint(client, "alwaysOn", { failCommands = { "insert" }, errorCode = 112 })
    local runs = 0
    local t0 = os.time()
    local err = catch(client.transaction, client, function()
      runs = runs + 1
      coll:insert_one { _id = 1 }
    end, { timeout = 1 })
    assert.is_true(os.time() - t0 <= 4)
    assert.is_true(runs >= 2)
    assert.is_true(x.is_error(err))
    assert.is_true(err:has_label("TransientTransactionError"))
    assert.are.equal(112, err.code)
    assert.matches("timeout", err.message)
    env.failpoints_off(client)
    assert.are.equal(0, count())
  end)

  it("reruns back off (jittered, growing): a persistent conflict is not a busy loop", function()
    env.failpoint(client, "alwaysOn", { failCommands = { "insert" }, errorCode = 112 })
    local runs = 0
    catch(client.transaction, client, function()
      runs = runs + 1
      coll:insert_one { _id = 1 }
    end, { timeout = 0.5 })
    env.failpoints_off(client)
    -- without pauses this loop made over a thousand attempts in 0.3 s; the
    -- pauses (5 ms growing 1.5x, jittered) allow a few dozen at most
    assert.is_true(runs >= 2, "retried at least once")
    assert.is_true(runs <= 40, "attempts: " .. runs)
  end)

  it("DuplicateKey: no retry, the function ran once, nothing written", function()
    local runs = 0
    local err = catch(client.transaction, client, function()
      runs = runs + 1
      coll:insert_one { _id = 1 }
      coll:insert_one { _id = 1 }
    end)
    assert.are.equal(1, runs)
    assert.are.equal(11000, err.code)
    assert.is_false(err:has_label("TransientTransactionError"))
    assert.are.equal(0, count())
  end)

  it("xdbtx.rollback: nil, reason; on_rollback runs, on_commit does not", function()
    local log = {}
    local r, why = client:transaction(function(s)
      s:on_commit(function() log[#log + 1] = "commit" end)
      s:on_rollback(function(reason) log[#log + 1] = "rollback: " .. reason end)
      coll:insert_one { _id = 1 }
      x.rollback("changed my mind")
    end)
    assert.is_nil(r)
    assert.are.equal("changed my mind", why)
    assert.are.same({ "rollback: changed my mind" }, log)
    assert.are.equal(0, count())
  end)

  it("a nested transaction on the same client joins the running one (one commit)", function()
    client:transaction(function(s)
      coll:insert_one { _id = 1 }
      client:transaction(function(inner)
        assert.are.equal(s, inner)
        coll:insert_one { _id = 2 }
      end)
    end)
    assert.are.equal(2, count())
    assert.are.equal(1, commits())
  end)

  it("an operation on a client the transaction does not hold is an Error unless session = false", function()
    local uri2 = os.getenv("XDBTX_TEST_URI2")
    if not uri2 or uri2 == "" then return pending("XDBTX_TEST_URI2 not set") end
    local other = x.client(uri2)
    local oc = other:collection(DB, "other")
    oc:delete_many({}, { session = false })
    local err
    client:transaction(function()
      coll:insert_one { _id = 1 }
      err = catch(oc.insert_one, oc, { _id = 1 })
      oc:insert_one({ _id = 2 }, { session = false })
      x.rollback("undo")
    end)
    assert.are.equal("routing", err.phase)
    assert.are.equal(0, count())
    assert.are.equal(1, oc:count_documents({}, { session = false }))
    local e2 = catch(client.transaction, client, function() other:transaction(function() end) end)
    assert.matches("another client", e2.message)
  end)

  it("another Client object of the same URI is the same client for routing", function()
    local same = x.client(env.uri())
    assert.are.equal(client:id(), same:id())
    local r, why = client:transaction(function(s)
      same:collection(DB, "t"):insert_one { _id = 1 }
      assert.are.equal(s, x.session(same))
      assert.are.equal(1, coll:count_documents {})
      x.rollback("undo")
    end)
    assert.are.equal("undo", why)
    assert.are.equal(0, count())
  end)

  it("a session kept after its transaction ended raises", function()
    local kept
    client:transaction(function(s) kept = s coll:insert_one { _id = 1 } end)
    local err = catch(coll.insert_one, coll, { _id = 2 }, { session = kept })
    assert.are.equal("state", err.phase)
    assert.are.equal(1, count())
  end)

  it("a transaction whose function yields inside a coroutine completes", function()
    local co = coroutine.wrap(function()
      return client:transaction(function()
        coll:insert_one { _id = 1 }
        coroutine.yield("yielded")
        coll:insert_one { _id = 2 }
        return "done"
      end)
    end)
    assert.are.equal("yielded", co())
    assert.are.equal(0, count()) -- not visible outside before the commit
    assert.are.equal("done", co())
    assert.are.equal(2, count())
  end)

  it("passes read_concern, write_concern, read_preference, max_commit_time_ms", function()
    local sent = {}
    local off = client:on_command(function(ev)
      if ev.type == "started" then sent[ev.command_name] = ev.command end
    end)
    local r = client:transaction(function()
      coll:insert_one { _id = 1 }
      return "ok"
    end, { read_concern = "snapshot", write_concern = { w = "majority" }, read_preference = "primary",
           max_commit_time_ms = 5000, timeout = 30 })
    off()
    assert.are.equal("ok", r)
    assert.are.equal(1, count())
    assert.are.equal("snapshot", sent.insert.readConcern.level)      -- on the first statement
    assert.are.equal("majority", sent.commitTransaction.writeConcern.w)
    assert.are.equal(5000, sent.commitTransaction.maxTimeMS)
    -- a read preference reaches the transaction: reads in it must be primary
    local err = catch(client.transaction, client, function() coll:find_one {} end,
      { read_preference = "secondary" })
    assert.matches("read preference in a transaction must be primary", err.message, 1, true)
    assert.is_table(client:transaction(function() return coll:find_one {} end,
      { read_preference = "primary" }))
  end)

  it("a standalone server is an Error naming mode = \"saga\"", function()
    local su = os.getenv("XDBTX_TEST_STANDALONE_URI")
    if not su or su == "" then return pending("XDBTX_TEST_STANDALONE_URI not set") end
    local sa = x.client(su)
    local ran = false
    local err = catch(sa.transaction, sa, function() ran = true end)
    assert.is_false(ran)
    assert.is_true(x.is_error(err))
    assert.matches('mode = "saga"', err.message, 1, true)
  end)
end)
