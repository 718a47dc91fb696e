-- Data safety: misuse that used to lose data, let writes escape a
-- transaction or slip past the error model. Each case names what it guards;
-- each was checked to fail with the fix taken out. Against the test server
-- (or XDBTX_TEST_URI).
local env = require "spec.support.env"

local catch = env.catch

describe("data safety", function()
  local why = env.server_reason()
  if why then pending(why) return end

  local x, client, coll
  local DB = "xdbtx_data_safety"

  before_each(function()
    x = require "xdbtx"
    client = x.client(env.uri(), { app_name = "data_safety" })
    coll = env.clean_collection(client, DB .. ".docs")
    coll:insert_one { _id = 1, a = 1, b = 2 }
  end)

  -- The commands client sent to the server while f ran (command monitoring).
  local function sent(f) return env.sent(client, DB, f) end

  -- An argument error naming `fragment`, with nothing sent and the
  -- document untouched.
  local function refused(fragment, f)
    local names, ok, err = sent(f)
    assert.is_false(ok, "expected an error mentioning " .. fragment)
    assert.is_true(x.is_error(err), tostring(err))
    assert.are.equal("argument", err.phase)
    assert.matches(fragment, err.message, 1, true)
    assert.are.same({}, names)
    assert.are.same({ _id = 1, a = 1, b = 2 }, coll:find_one { _id = 1 })
  end

  describe("updates must be updates and replacements must be replacements", function()
    local set = { ["$set"] = { a = 9 } }
    local cases = {
      { "update_one with {} (would erase the document)", "update must not be empty",
        function() coll:update_one({ _id = 1 }, {}) end },
      { "update_many with {}", "update must not be empty",
        function() coll:update_many({}, {}) end },
      { "find_one_and_update with {}", "update must not be empty",
        function() coll:find_one_and_update({ _id = 1 }, {}) end },
      { "update_one without operators (would replace)", "got key 'a'",
        function() coll:update_one({ _id = 1 }, { a = 9 }) end },
      { "find_one_and_update without operators", "got key 'a'",
        function() coll:find_one_and_update({ _id = 1 }, { a = 9 }) end },
      { "update with operators mixed with fields", "got key 'a'",
        function() coll:update_one({ _id = 1 }, x.ordered { { "$set", { b = 1 } }, { "a", 1 } }) end },
      { "an empty pipeline", "update must not be empty",
        function() coll:update_one({ _id = 1 }, setmetatable({}, x.array_mt)) end },
      { "a pipeline stage that is not a stage", "stage [1] must be a stage",
        function() coll:update_one({ _id = 1 }, { { a = 1 } }) end },
      { "replace_one with $-operators (would act as an update)", "must not contain $-operators",
        function() coll:replace_one({ _id = 1 }, set) end },
      { "find_one_and_replace with $-operators", "must not contain $-operators",
        function() coll:find_one_and_replace({ _id = 1 }, set) end },
    }
    for _, case in ipairs(cases) do
      it("refuses " .. case[1] .. ", sending nothing", function()
        refused(case[2], case[3])
      end)
    end

    it("takes an update given as xdbtx.ordered (it used to be sent wrapped in { u = ... })", function()
      local r = coll:update_one({ _id = 1 }, x.ordered { { "$set", { a = 5 } }, { "$inc", { b = 1 } } })
      assert.are.equal(1, r.modified_count)
      assert.are.same({ _id = 1, a = 5, b = 3 }, coll:find_one { _id = 1 })
      local d = coll:find_one_and_update({ _id = 1 }, x.ordered { { "$set", { a = 6 } } },
        { return_document = "after" })
      assert.are.equal(6, d.a)
    end)

    it("still replaces with a replacement and updates with operators", function()
      coll:replace_one({ _id = 1 }, { c = 3 })
      assert.are.same({ _id = 1, c = 3 }, coll:find_one { _id = 1 })
      coll:find_one_and_replace({ _id = 1 }, {})
      assert.are.same({ _id = 1 }, coll:find_one { _id = 1 })
    end)
  end)

  describe("insert_many takes a proper list or nothing", function()
    local cases = {
      { "a table with a hole", "without holes", { [1] = { _id = 2 }, [3] = { _id = 3 } } },
      { "a document instead of a list", "got key 'x'", { x = { _id = 2 } } },
      { "a list with an extra string key", "got key 'n'", { { _id = 2 }, n = 1 } },
      { "a list with a fractional key", "got key 1.5", { { _id = 2 }, [1.5] = { _id = 3 } } },
      { "a list with a boolean key", "got a boolean key", { { _id = 2 }, [true] = { _id = 3 } } },
    }
    for _, case in ipairs(cases) do
      it("refuses " .. case[1], function()
        refused(case[2], function() coll:insert_many(case[3]) end)
        assert.are.equal(1, coll:count_documents {})
      end)
    end

    it("an empty list inserts nothing and sends nothing", function()
      local names, ok, r = sent(function() return coll:insert_many {} end)
      assert.is_true(ok)
      assert.are.same({}, names)
    end)
  end)

  describe("a transaction body that ends its own transaction", function()
    it("abort, then an ambient write: the write raises instead of autocommitting", function()
      local err = catch(client.transaction, client, function(s)
        coll:insert_one { _id = 2 }
        s:abort()
        coll:insert_one { _id = 3 }
      end)
      assert.are.equal("state", err.phase)
      assert.matches("ended by session:commit%(%) or session:abort%(%)", err.message)
      assert.are.equal("aborted", err.outcome)
      assert.is_nil(coll:find_one { _id = 2 })
      assert.is_nil(coll:find_one { _id = 3 })
    end)

    it("abort, then a write naming the session: raises too (xdbtx owns that session)", function()
      local err = catch(client.transaction, client, function(s)
        s:abort()
        coll:insert_one({ _id = 3 }, { session = s })
      end)
      assert.are.equal("state", err.phase)
      assert.is_nil(coll:find_one { _id = 3 })
    end)

    it("with_transaction on a session of yours: after a self-commit an ambient write raises", function()
      -- (a write naming the session runs outside, as MongoDB's spec test
      -- "callback commits and runs extra op" requires: spec_tests_spec)
      local s = client:start_session()
      local err = catch(s.with_transaction, s, function()
        coll:insert_one { _id = 2 }
        s:commit()
        coll:insert_one { _id = 3 }
      end)
      s:close()
      assert.are.equal("state", err.phase)
      assert.matches("ended by session:commit() or session:abort()", err.message, 1, true)
      assert.is_table(coll:find_one { _id = 2 })
      assert.is_nil(coll:find_one { _id = 3 })
    end)

    it("commit, then a failing write: the error says outcome = committed, truthfully", function()
      local err = catch(client.transaction, client, function(s)
        coll:insert_one { _id = 2 }
        s:commit()
        coll:insert_one { _id = 3 }
      end)
      assert.are.equal("committed", err.outcome)
      assert.is_table(coll:find_one { _id = 2 })
      assert.is_nil(coll:find_one { _id = 3 })
    end)

    it("a transient error after the body committed does not rerun the body", function()
      local runs = 0
      local err = catch(client.transaction, client, function(s)
        runs = runs + 1
        coll:insert_one { _id = 10 + runs }
        s:commit()
        error(x.error { message = "late", labels = { TransientTransactionError = true } })
      end)
      assert.are.equal(1, runs)
      assert.are.equal("committed", err.outcome)
    end)
  end)

  describe("xdbtx.rollback cannot be turned into a commit", function()
    it("a pcall that catches it: the transaction still rolls back, quietly", function()
      local r1, r2 = client:transaction(function()
        coll:insert_one { _id = 2 }
        local ok = pcall(x.rollback, "changed my mind")
        assert(not ok)
        coll:insert_one { _id = 3 } -- runs in the doomed transaction
        return "returned normally"
      end)
      assert.is_nil(r1)
      assert.are.equal("changed my mind", r2)
      assert.is_nil(coll:find_one { _id = 2 })
      assert.is_nil(coll:find_one { _id = 3 })
    end)

    it("nor does a transient error after it rerun the body", function()
      local runs = 0
      local err = catch(client.transaction, client, function()
        runs = runs + 1
        coll:insert_one { _id = 10 + runs }
        pcall(x.rollback, "no")
        error(x.error { message = "late", labels = { TransientTransactionError = true } })
      end)
      assert.are.equal(1, runs)
      assert.are.equal("late", err.message)
      assert.is_nil(coll:find_one { _id = 11 })
    end)

    it("a safe method whose hook rolls back raises the rollback on, not nil, err", function()
      local safe = require "xdbtx.safe"
      local sc = safe.client(env.uri(), { app_name = "data_safety" })
      local scoll = sc:collection(DB, "docs")
      local off = scoll:before("insert", function(doc)
        if doc.bad then x.rollback("hook says no") end
      end)
      local after_bad
      local r1, r2 = sc:transaction(function()
        scoll:insert_one { _id = 2 }
        after_bad = { scoll:insert_one { _id = 3, bad = true } }
        return "body done"
      end)
      off()
      assert.is_nil(after_bad) -- the rollback unwound the body
      assert.is_nil(r1)
      assert.are.equal("hook says no", r2)
      assert.is_nil(coll:find_one { _id = 2 })
    end)

    it("in a tree action: caught, the tree still rolls back", function()
      local later = false
      local r1, r2, out = x.run({
        client = client, name = "first",
        action = function()
          coll:insert_one { _id = 30 }
          pcall(x.rollback, "tree no")
        end,
        children = { { client = client, action = function() later = true end } },
      })
      assert.is_nil(r1)
      assert.are.equal("tree no", r2)
      assert.are.equal("aborted", out.status)
      assert.is_false(later) -- the tree stopped at the node that rolled back
      assert.is_nil(coll:find_one { _id = 30 })
    end)

    it("in a saga action: caught, it still ends the run and compensates", function()
      local undone = {}
      local tree = {
        client = client, name = "first",
        action = function() coll:insert_one { _id = 20 } return 20 end,
        compensate = function(store) undone[#undone + 1] = store.first coll:delete_one { _id = 20 } end,
        children = { {
          client = client, name = "second",
          action = function()
            pcall(x.rollback, "saga no")
            return "returned normally"
          end,
        } },
      }
      local r1, r2, out = x.run(tree, { mode = "saga" })
      assert.is_nil(r1)
      assert.are.equal("saga no", r2)
      assert.are.equal("compensated", out.status)
      assert.are.same({ 20 }, undone)
      assert.is_nil(coll:find_one { _id = 20 })
    end)
  end)

  it("a with_transaction refused because the session has a transaction open leaves that one alone", function()
    local s = client:start_session()
    s:start_transaction()
    coll:insert_one({ _id = 2 }, { session = s })
    local ran = false
    local err = catch(s.with_transaction, s, function() ran = true end)
    assert.is_false(ran)
    assert.are.equal("state", err.phase)
    assert.matches("already has a transaction in progress", err.message, 1, true)
    assert.are.equal("in_progress", s:state())
    s:commit()
    s:close()
    assert.is_table(coll:find_one { _id = 2 })
  end)

  it("commitTransaction / abortTransaction sent as commands in a session are refused", function()
    for _, name in ipairs { "commitTransaction", "abortTransaction" } do
      -- in a sandbox (ambient session): nothing is sent, nothing is kept
      local err = catch(x.sandbox, client, function()
        coll:insert_one { _id = 2 }
        client:command("admin", { [name] = 1 })
      end)
      assert.are.equal("argument", err.phase)
      assert.matches(name .. " ends the transaction behind the session's back", err.message, 1, true)
      assert.is_nil(coll:find_one { _id = 2 })
      -- a session of yours, by db:command
      local s = client:start_session()
      s:start_transaction()
      err = catch(client:database("admin").command, client:database("admin"), { [name] = 1 }, { session = s })
      assert.are.equal("argument", err.phase)
      assert.is_true(s:in_transaction()) -- left as it was
      s:abort()
      s:close()
    end
    -- without a session the server answers for itself
    local err = catch(client.command, client, "admin", { commitTransaction = 1 }, { session = false })
    assert.are_not.equal("argument", err.phase)
  end)

  it("a safe cursor in a for loop raises on an error instead of ending the loop early", function()
    for i = 2, 20 do coll:insert_one { _id = i } end
    local safe = require "xdbtx.safe"
    local sc = safe.client(env.uri(), { app_name = "data_safety_safe_cursor" })
    local scoll = sc:collection(DB, "docs")
    local function fail_get_more()
      env.failpoint(client, { times = 1 }, { failCommands = setmetatable({ "getMore" }, x.array_mt),
        errorCode = 8, appName = "data_safety_safe_cursor" })
    end
    fail_get_more()
    local n = 0
    local ok, err = pcall(function()
      for _ in scoll:find({}, { batch_size = 3 }) do n = n + 1 end
    end)
    env.failpoints_off(client)
    assert.is_false(ok)
    assert.are.equal(8, err.code)
    assert.are.equal(3, n)
    -- cursor:next() still gives nil, err
    fail_get_more()
    local cur = scoll:find({}, { batch_size = 3 })
    for _ = 1, 3 do assert.is_table(cur:next()) end
    local doc, e2 = cur:next()
    env.failpoints_off(client)
    assert.is_nil(doc)
    assert.are.equal(8, e2.code)
  end)

  describe("coroutine.close on a suspended transaction ends it (Lua 5.4)", function()
    -- each kind of run: the transaction is aborted (the document is not
    -- locked, nothing was applied) and its pooled connection is back
    local one = env.uri() .. (env.uri():find("?", 1, true) and "&" or "?") ..
      "maxPoolSize=1&serverSelectionTimeoutMS=1500"
    local kinds = {
      { "client:transaction", function(c, cl) return c:transaction(cl) end },
      { "xdbtx.sandbox", function(c, cl) return x.sandbox(c, cl) end },
      { "xdbtx.run", function(c, cl) return x.run { client = c, action = function() return cl() end } end },
    }
    for _, kind in ipairs(kinds) do
      it(kind[1], function()
        if not coroutine.close then pending("this Lua has no coroutine.close") return end
        local c = x.client(one, { app_name = "data_safety_close" })
        local ccoll = c:collection(DB, "docs")
        local co = coroutine.create(function()
          return kind[2](c, function()
            ccoll:update_one({ _id = 1 }, { ["$set"] = { a = 99 } })
            coroutine.yield("paused")
          end)
        end)
        assert.are.same({ true, "paused" }, { coroutine.resume(co) })
        assert.is_true(coroutine.close(co))
        assert.is_false(x.in_transaction())
        -- not locked by the dead transaction, and the one pooled connection is free
        local d = ccoll:find_one_and_update({ _id = 1 }, { ["$set"] = { b = 3 } },
          { max_time_ms = 500, session = false })
        assert.are.equal(1, d.a)
        assert.are.equal(1, coll:find_one({ _id = 1 }).a)
      end)
    end
  end)

  it("an empty database or collection name is refused before anything is sent", function()
    for _, f in ipairs {
      function() return client:collection(DB, "") end,
      function() return client:collection("", "docs") end,
      function() return client:database(DB):collection("") end,
    } do
      local err = catch(f)
      assert.are.equal("argument", err.phase)
      assert.matches("name must not be empty", err.message, 1, true)
    end
  end)

  it("write_concern / read_concern on an operation inside a transaction: an argument error naming them", function()
    for _, case in ipairs {
      { "write_concern", function() coll:insert_one({ _id = 2 }, { write_concern = { w = 1 } }) end },
      { "read_concern", function() coll:find_one({ _id = 1 }, { read_concern = "local" }) end },
      { "write_concern", function()
          coll:bulk_write({ { insert_one = { document = { _id = 3 } } } }, { write_concern = { w = 1 } })
        end },
    } do
      local err = catch(client.transaction, client, case[2])
      assert.are.equal("argument", err.phase)
      assert.matches("option '" .. case[1] .. "' cannot be set on an operation inside a transaction",
        err.message, 1, true)
    end
    assert.is_nil(coll:find_one { _id = 2 })
    -- outside a transaction it applies as always
    coll:insert_one({ _id = 2 }, { write_concern = { w = 1 } })
  end)

  it("option errors name the key or the value at fault", function()
    for _, case in ipairs {
      { function() coll:find_one({}, { read_concern = { lvl = "local" } }) end,
        "find_one: option 'read_concern' takes only { level = ... }, got the key 'lvl'" },
      { function() coll:find_one({}, { read_concern = { level = 5 } }) end,
        "find_one: option 'read_concern' needs level = \"<a level>\" (\"local\", \"majority\", ...), got 5" },
      { function() coll:create_index { a = true } end,
        "create_index: keys: field 'a' must be 1, -1 or an index type such as \"text\", got true" },
      { function() coll:create_index(x.ordered { { "a", 1 }, { "b", 0 } }) end,
        "create_index: keys: field 'b' must be 1, -1 or an index type such as \"text\", got 0" },
    } do
      local err = catch(case[1])
      assert.are.equal("argument", err.phase)
      assert.are.equal(case[2], err.message)
    end
    assert.are.equal("a_text", coll:create_index { a = "text" })
  end)

  it("count_documents with limit = 0 counts without a limit, as find does", function()
    for i = 2, 4 do coll:insert_one { _id = i } end
    assert.are.equal(4, coll:count_documents({}, { limit = 0 }))
    assert.are.equal(4, #coll:find({}, { limit = 0 }):all())
    assert.are.equal(2, coll:count_documents({}, { limit = 2 }))
  end)

  describe("a sandbox never commits", function()
    it("s:commit() inside raises and nothing is kept", function()
      local err = catch(x.sandbox, client, function(s)
        coll:insert_one { _id = 2 }
        s:commit()
      end)
      assert.are.equal("state", err.phase)
      assert.matches("a sandbox never commits", err.message)
      assert.is_nil(coll:find_one { _id = 2 })
    end)

    it("nor can it start a transaction of its own after an abort", function()
      local err = catch(x.sandbox, client, function(s)
        s:abort()
        s:start_transaction()
      end)
      assert.matches("a sandbox never commits", err.message)
      assert.is_nil(coll:find_one { _id = 2 })
    end)

    it("nor can a session opened inside it start or commit a transaction of its own", function()
      local opened
      local err = catch(x.sandbox, client, function()
        opened = client:start_session()
        opened:start_transaction()
        coll:insert_one({ _id = 2 }, { session = opened })
        opened:commit()
      end)
      assert.are.equal("state", err.phase)
      assert.matches("session:start_transaction: a sandbox never commits", err.message, 1, true)
      assert.is_nil(coll:find_one { _id = 2 })
      -- the same, inside a bound function run from another coroutine, and
      -- a session opened before the sandbox
      local before = client:start_session()
      err = catch(x.sandbox, client, function()
        local f = x.bind(function() before:start_transaction() end)
        coroutine.wrap(f)()
      end)
      assert.matches("a sandbox never commits", err.message, 1, true)
      before:start_transaction()
      coll:insert_one({ _id = 3 }, { session = before })
      err = catch(x.sandbox, client, function() before:commit() end)
      assert.matches("session:commit: a sandbox never commits", err.message, 1, true)
      before:abort()
      assert.is_nil(coll:find_one { _id = 3 })
      -- outside a sandbox the same session works as always
      before:start_transaction()
      coll:insert_one({ _id = 4 }, { session = before })
      before:commit()
      assert.is_table(coll:find_one { _id = 4 })
      before:close()
      opened:close()
    end)

    it("a client:transaction inside that commits by itself is refused too", function()
      catch(x.sandbox, client, function()
        client:transaction(function(s)
          coll:insert_one { _id = 2 }
          s:commit()
        end)
      end)
      assert.is_nil(coll:find_one { _id = 2 })
    end)
  end)

  describe("numeric options are finite and in range", function()
    local nan, inf = 0 / 0, math.huge
    local txn_cases = { nan, inf, -inf, -1, "10" }
    for _, v in ipairs(txn_cases) do
      it("client:transaction refuses timeout = " .. tostring(v), function()
        local ran = false
        local err = catch(client.transaction, client, function() ran = true end, { timeout = v })
        assert.are.equal("argument", err.phase)
        assert.matches("option 'timeout' must be a finite number >= 0", err.message, 1, true)
        assert.is_false(ran)
      end)
    end
    local op_cases = {
      { "find", "max_time_ms", -1 }, { "find", "batch_size", -1 }, { "find", "skip", -1 },
      { "find", "limit", -5 }, { "find", "limit", nan }, { "find", "limit", 1.5 },
      { "count_documents", "skip", -1 },
    }
    for _, case in ipairs(op_cases) do
      it(case[1] .. " refuses " .. case[2] .. " = " .. tostring(case[3]), function()
        local err = catch(coll[case[1]], coll, {}, { [case[2]] = case[3] })
        assert.are.equal("argument", err.phase)
        assert.matches("option '" .. case[2] .. "' must be an integer >= 0, got", err.message, 1, true)
      end)
    end
    it("start_transaction refuses max_commit_time_ms = -1", function()
      local err = catch(client.transaction, client, function() end, { max_commit_time_ms = -1 })
      assert.matches("option 'max_commit_time_ms' must be an integer >= 0, got -1", err.message, 1, true)
    end)
  end)

  describe("strings with a NUL byte are refused, never cut", function()
    it("a URI", function()
      local err = catch(x.client, "mongodb://127.0.0.1:1\0@evil")
      assert.are.equal("argument", err.phase)
      assert.matches("uri contains a NUL byte at offset 21", err.message, 1, true)
    end)
    it("a database or collection name", function()
      assert.matches("NUL byte", catch(client.collection, client, "a\0b", "c").message)
      assert.matches("NUL byte", catch(client.collection, client, "a", "c\0d").message)
      assert.matches("NUL byte", catch(client.command, client, "adm\0in", { ping = 1 }).message)
    end)
  end)

  describe("cursors nobody closes do not exhaust the pool", function()
    local small
    before_each(function()
      local sep = env.uri():find("?", 1, true) and "&" or "?"
      small = x.client(env.uri() .. sep .. "waitQueueTimeoutMS=300",
        { app_name = "data_safety_small", max_pool_size = 2 })
      coll:insert_many { { _id = 2 }, { _id = 3 } }
    end)

    it("a single-batch cursor gives its client back at once, while still referenced", function()
      local c = small:collection(DB, "docs")
      local held = {}
      for i = 1, 20 do
        held[i] = c:find({})
        assert.is_table(held[i]:next())
      end
      assert.are.equal(20, #held)
    end)

    it("a cursor with more batches is reclaimed by a collection before the pool waits", function()
      local c = small:collection(DB, "docs")
      collectgarbage("stop")
      local ok, err = pcall(function()
        for _ = 1, 50 do assert.is_table(c:find({}, { batch_size = 1 }):next()) end
      end)
      collectgarbage("restart")
      assert(ok, tostring(err))
    end)

    it("the rest of a drained batch is still read in order", function()
      local c = small:collection(DB, "docs")
      local cur = c:find({}, { sort = { _id = 1 } })
      local ids = {}
      for d in cur do ids[#ids + 1] = d._id end
      assert.are.same({ 1, 2, 3 }, ids)
    end)
  end)

  describe("methods called with '.' raise an Error saying so", function()
    local cases = {
      { "collection:insert_one", function() coll.insert_one({ _id = 5 }) end, "a Collection" },
      { "collection:update_one", function() coll.update_one({}, {}) end, "a Collection" },
      { "collection:find", function() coll.find({}) end, "a Collection" },
      { "collection:insert_many", function() coll.insert_many({}) end, "a Collection" },
      { "collection:name", function() coll.name() end, "a Collection" },
      { "collection:before", function() coll.before("insert", print) end, "a Collection" },
      { "client:collection", function() client.collection("a", "b") end, "a Client" },
      { "client:command", function() client.command("admin", { ping = 1 }) end, "a Client" },
      { "client:transaction", function() client.transaction(function() end) end, "a Client" },
      { "client:start_session", function() client.start_session() end, "a Client" },
      { "session:commit", function() x.Session.commit({}) end, "a Session" },
      { "session:with_transaction", function() x.Session.with_transaction({}, print) end, "a Session" },
      { "cursor:next", function() coll:find({}).next() end, "a Cursor" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local ok, err = pcall(case[2])
        assert.is_false(ok)
        assert.is_true(x.is_error(err), tostring(err))
        assert.matches(case[1] .. ": expected " .. case[3] .. " as self", err.message, 1, true)
        assert.matches("did you call it with '.' instead of ':'?", err.message, 1, true)
      end)
    end
  end)

  it("errors of the binding's own checks have the domain of their phase", function()
    local e1 = catch(coll.insert_many, coll, { 5 })
    assert.are.equal("argument", e1.phase)
    assert.are.equal("argument", e1.domain)
    local e2 = catch(coll.insert_one, coll, { f = print })
    assert.are.equal("encode", e2.phase)
    assert.are.equal("codec", e2.domain)
  end)

  it("argument errors name the argument, not a position counting self and the session", function()
    local err = catch(coll.insert_one, coll, 5)
    assert.matches("insert_one: document must be a table, got number", err.message, 1, true)
    assert.is_nil(err.message:find("#3", 1, true))
  end)
end)

describe("data safety: server selection failures are phase connect", function()
  it("an operation that finds no server", function()
    local x = require "xdbtx"
    local c = x.client("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100&connectTimeoutMS=100",
      { app_name = "data_safety_offline" })
    local err = catch(function() return c:collection("a.b"):find_one {} end)
    assert.are.equal("connect", err.phase)
    assert.are.equal("server_selection", err.domain)
  end)
end)
