-- Clients, collections, cursors, low-level sessions and command monitoring.
--
-- The first part checks the Lua layer's own behaviour over the fake core
-- (caching, cursor closing, option splitting, routing); the second runs every
-- collection method against the test server (XDBTX_TEST_URI).

local env = require "support.env"

local catch = env.catch

describe("the xdbtx module", function()
  it("re-exports the codec and the error functions of xdbtx.core unchanged", function()
    local x, core = require "xdbtx", require "xdbtx.core"
    for _, k in ipairs {
      "encode", "decode", "to_json", "from_json", "null", "array_mt", "ordered", "object_id",
      "date", "timestamp", "decimal128", "binary", "uuid", "regex", "code", "minkey", "maxkey",
      "int32", "int64", "double", "type", "Error", "error", "is_error",
    } do
      assert.is_not_nil(x[k], k)
      assert.are.equal(core[k], x[k], k)
    end
  end)

  it("a client's id, tostring and errors never show a password (made without connecting)", function()
    local x = require "xdbtx"
    local one = x.client("mongodb://ada:s3cr%40t@127.0.0.1:9/?replicaSet=rs9", { app_name = "pw" })
    local tls = x.client("mongodb://127.0.0.1:9/?tls=true&tlsCertificateKeyFilePassword=k3y", { app_name = "pw" })
    assert.are.equal("mongodb://ada:***@127.0.0.1:9/?replicaSet=rs9#app_name=pw", one:id())
    assert.are.equal("mongodb://127.0.0.1:9/?tls=true&tlsCertificateKeyFilePassword=***#app_name=pw", tls:id())
    for _, c in ipairs { one, tls } do
      assert.is_nil(tostring(c):find("s3cr", 1, true) or tostring(c):find("k3y", 1, true))
    end
    assert.matches("s3cr%40t", one:uri(), 1, true) -- the URI itself stays as given
    -- the same user with another password is another client, never taken for this one
    local other = x.client("mongodb://ada:other@127.0.0.1:9/?replicaSet=rs9", { app_name = "pw" })
    assert.are.equal(one:id() .. "&credentials=2", other:id())
    assert.are_not.equal(one, other)
    assert.are.equal(one, x.client("mongodb://ada:s3cr%40t@127.0.0.1:9/?replicaSet=rs9", { app_name = "pw" }))
  end)
end)

describe("clients and collections (fake core)", function()
  local x, fake, client, coll

  before_each(function()
    x, fake, client, coll = env.fake_client("db", "t")
    for i = 1, 3 do coll:insert_one { _id = i } end
    fake.log = {}
  end)

  it("client:collection(db, name) and (\"db.name\") give the same cached object", function()
    assert.are.equal(coll, client:collection("db.t"))
    assert.are.equal("t", coll:name())
    assert.are.equal("db", coll:database())
    assert.are.equal(client, coll:client())
    assert.are.equal("argument", catch(client.collection, client, "nodot").phase)
    assert.are.equal("argument", catch(client.collection, client, 42).phase)
  end)

  it("find is a for-loop iterator that closes its cursor when exhausted", function()
    local ids = {}
    for doc in coll:find({}) do ids[#ids + 1] = doc._id end
    assert.are.same({ 1, 2, 3 }, ids)
    assert.is_true(fake.last_cursor.closed)
  end)

  -- #lua54: the generic for's to-be-closed value is Lua 5.4's (no LuaJIT counterpart)
  it("find closes its cursor on an early break (to-be-closed value) #lua54", function()
    for doc in coll:find({}) do
      if doc._id == 1 then break end
    end
    assert.is_true(fake.last_cursor.closed)
  end)

  -- #lua54: the fake core's cursor is a table, and LuaJIT runs no __gc on tables
  it("a cursor dropped before the end is closed by the garbage collector #lua54", function()
    local cur = coll:find({})
    cur()
    local core_cursor = fake.last_cursor
    cur = nil
    collectgarbage()
    collectgarbage()
    assert.is_true(core_cursor.closed)
  end)

  it("cursor:all() returns an array and closes; cursor:close() is idempotent", function()
    local all = coll:find({}):all()
    assert.are.equal(3, #all)
    assert.are.equal(x.array_mt, getmetatable(all))
    assert.is_true(fake.last_cursor.closed)
    local cur = coll:find({})
    cur:close()
    cur:close()
    assert.is_nil(cur())
  end)

  it("strips `session` from the options; false means explicitly none", function()
    coll:find_one({}, { session = false })
    assert.is_falsy(fake.log[1].session)
    local err = catch(coll.find_one, coll, {}, { session = "nope" })
    assert.are.equal("argument", err.phase)
    assert.matches("session", err.message)
    assert.are.equal("argument", catch(coll.find_one, coll, {}, "opts").phase)
  end)

  it("a session of another client is refused (phase routing)", function()
    local other = x.client("mongodb://other")
    local s = other:start_session()
    assert.are.equal("routing", catch(coll.insert_one, coll, { _id = 9 }, { session = s }).phase)
  end)

  it("low-level sessions: start_transaction, in_transaction, commit, abort, close", function()
    local s = client:start_session()
    assert.is_false(s:in_transaction())
    s:start_transaction()
    assert.is_true(s:in_transaction())
    coll:insert_one({ _id = 10 }, { session = s })
    s:abort()
    assert.are.equal(3, coll:count_documents {})
    s:start_transaction()
    coll:insert_one({ _id = 10 }, { session = s })
    s:commit()
    assert.are.equal(4, coll:count_documents {})
    s:close()
    assert.are.equal("closed", s:state())
    assert.are.equal(client, s:client())
  end)

  -- #lua54: <close> variables are Lua 5.4 syntax
  it("closing a session (a <close> variable) with an open transaction aborts it #lua54", function()
    env.scoped(client:start_session(), function(s)
      s:start_transaction()
      coll:insert_one({ _id = 11 }, { session = s })
    end)
    assert.are.equal(3, coll:count_documents {})
  end)

  it("client:on_command delivers the recorded events after each operation", function()
    local seen = {}
    local off = client:on_command(function(ev) seen[#seen + 1] = ev.command_name end)
    coll:insert_one { _id = 20 }
    assert.are.same({ "insert" }, seen)
    pcall(coll.insert_one, coll, { _id = 20 }) -- a failed operation still reports
    assert.are.same({ "insert", "insert" }, seen)
    off()
    coll:insert_one { _id = 21 }
    assert.are.equal(2, #seen)
  end)
end)

describe("clients and collections against the test server", function()
  local why = env.server_reason()
  if why then pending(why) return end

  local x, client, coll
  local DB = "xdbtx_client_spec"

  before_each(function()
    x = require "xdbtx"
    client = x.client(env.uri(), { app_name = "client_spec" })
    coll = env.clean_collection(client, DB .. ".items")
  end)

  it("client:id() is the same for two clients of the same URI", function()
    assert.are.equal(client:id(), x.client(env.uri(), { app_name = "client_spec" }):id())
    assert.is_string(client:uri())
    assert.are.equal("replicaset", client:topology())
  end)

  it("insert_one / insert_many / find_one / count_documents", function()
    local r = coll:insert_one { _id = 1, name = "a" }
    assert.are.equal(1, r.inserted_id)
    local m = coll:insert_many { { _id = 2, name = "b" }, { _id = 3, name = "c" } }
    assert.are.same({ 2, 3 }, { m.inserted_ids[1], m.inserted_ids[2] })
    assert.are.equal("b", coll:find_one({ _id = 2 }).name)
    assert.is_nil(coll:find_one { _id = 99 })
    assert.are.equal(3, coll:count_documents {})
    assert.are.equal(1, coll:count_documents { name = "c" })
  end)

  it("find with sort, skip, limit, projection; aggregate", function()
    coll:insert_many { { _id = 1, n = 3 }, { _id = 2, n = 1 }, { _id = 3, n = 2 } }
    local ns = {}
    for doc in coll:find({}, { sort = { n = 1 }, skip = 1, limit = 2, projection = { n = 1 } }) do
      ns[#ns + 1] = doc.n
    end
    assert.are.same({ 2, 3 }, ns)
    local agg = coll:aggregate({ { ["$group"] = { _id = x.null, total = { ["$sum"] = "$n" } } } }):all()
    assert.are.equal(6, agg[1].total)
  end)

  it("update_one / update_many / replace_one / delete_one / delete_many", function()
    coll:insert_many { { _id = 1, n = 1 }, { _id = 2, n = 1 }, { _id = 3, n = 2 } }
    local u = coll:update_one({ _id = 1 }, { ["$set"] = { n = 5 } })
    assert.are.equal(1, u.matched_count)
    assert.are.equal(1, u.modified_count)
    assert.are.equal(2, coll:update_many({ n = { ["$lt"] = 3 } }, { ["$inc"] = { n = 10 } }).modified_count)
    local up = coll:update_one({ _id = 7 }, { ["$set"] = { n = 0 } }, { upsert = true })
    assert.are.equal(7, up.upserted_id)
    assert.are.equal(1, coll:replace_one({ _id = 1 }, { n = 100 }).modified_count)
    assert.are.equal(100, coll:find_one({ _id = 1 }).n)
    assert.are.equal(1, coll:delete_one({ _id = 1 }).deleted_count)
    assert.are.equal(3, coll:delete_many({}).deleted_count)
  end)

  it("find_one_and_update / _replace / _delete", function()
    coll:insert_one { _id = 1, n = 1 }
    assert.are.equal(1, coll:find_one_and_update({ _id = 1 }, { ["$inc"] = { n = 1 } }).n)
    assert.are.equal(3, coll:find_one_and_update({ _id = 1 }, { ["$inc"] = { n = 1 } },
      { return_document = "after" }).n)
    assert.are.equal(3, coll:find_one_and_replace({ _id = 1 }, { n = 9 }).n)
    assert.are.equal(9, coll:find_one_and_delete({ _id = 1 }).n)
    assert.is_nil(coll:find_one_and_delete { _id = 1 })
  end)

  it("unknown option keys are an Error naming the key", function()
    local err = catch(coll.find_one, coll, {}, { limitt = 1 })
    assert.is_true(x.is_error(err))
    assert.matches("limitt", err.message)
  end)

  it("client:command runs a command", function()
    local r = client:command(DB, { count = "items" })
    assert.are.equal(0, r.n)
  end)

  it("low-level session: commit makes the writes visible, abort drops them", function()
    local s = client:start_session()
    s:start_transaction { read_concern = "snapshot", write_concern = { w = "majority" } }
    coll:insert_one({ _id = 1 }, { session = s })
    assert.are.equal(0, coll:count_documents {})
    s:commit()
    assert.are.equal(1, coll:count_documents {})
    s:start_transaction()
    coll:insert_one({ _id = 2 }, { session = s })
    s:abort()
    assert.are.equal(1, coll:count_documents {})
    s:close()
  end)

  -- #lua54: <close> variables are Lua 5.4 syntax
  it("a <close> session with an open transaction aborts it #lua54", function()
    env.scoped(client:start_session(), function(s)
      s:start_transaction()
      coll:insert_one({ _id = 1 }, { session = s })
    end)
    assert.are.equal(0, coll:count_documents {})
  end)

  it("client:on_command reports command-started events with names and databases", function()
    local started = {}
    local off = client:on_command(function(ev)
      if ev.type == "started" then started[#started + 1] = ev end
    end)
    coll:insert_one { _id = 1 }
    off()
    assert.are.equal("insert", started[1].command_name)
    assert.are.equal(DB, started[1].database_name)
  end)

  -- Command callbacks are set on a client only while its pool has a
  -- listener (libmongoc 1.23), else on the whole pool (XDBTX_POOL_APM=1):
  -- either way a late listener sees the next commands of a session and a
  -- cursor that already hold their clients (spec/monitor/late_listener.lua).
  for _, mode in ipairs { "per client", "whole pool" } do
    it("a listener sees the next commands of clients already held (" .. mode .. ")", function()
      local lua = rawget(_G, "jit") and (os.getenv("LUAJIT") or "luajit") or (os.getenv("LUA") or "lua5.4")
      local errfile = os.tmpname()
      local cmd = ("%s%s -e %q spec/monitor/late_listener.lua %q %q 2>%q"):format(
        mode == "whole pool" and "XDBTX_POOL_APM=1 " or "", lua,
        ("package.path=%q..package.path; package.cpath=%q"):format("./lua/?.lua;", package.cpath),
        env.uri(), DB, errfile)
      local p = assert(io.popen(cmd))
      local out = p:read("a")
      p:close()
      local f = io.open(errfile)
      local stderr = f and f:read("a") or ""
      if f then f:close() end
      os.remove(errfile)
      assert.are.equal("insert commitTransaction getMore killCursors aggregate\n", out, stderr)
    end)
  end
end)
