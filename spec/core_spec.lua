-- xdbtx.core, the C binding, used directly: clients (process-wide pools),
-- collections, sessions and transactions, cursors, command events, errors.
-- Every method takes the session first (a Session, or nil for none).
-- Server cases run against XDBTX_TEST_URI (spec/server/with-servers sets it)
-- and are pending when it is unset. Tagged #luajit: the LuaJIT suite runs
-- them too (the few 5.4-only cases are pending there).
local core = require "xdbtx.core"
local unpack = table.unpack or unpack

local URI = os.getenv("XDBTX_TEST_URI")
local STANDALONE = os.getenv("XDBTX_TEST_STANDALONE_URI")
local OFFLINE = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  assert.is_true(core.is_error(err), "expected an xdbtx.Error, got " .. tostring(err))
  return err
end

-- `it` that is pending without a server
local function sit(name, fn)
  if URI then it(name, fn) else pending(name .. " (XDBTX_TEST_URI not set)") end
end

local function started(client, name)
  local out = {}
  for _, ev in ipairs(client:drain_events()) do
    if ev.type == "started" and (not name or ev.command_name == name) then
      out[#out + 1] = ev
    end
  end
  return out
end

local function names(events)
  local t = {}
  for i, ev in ipairs(events) do t[i] = ev.command_name end
  return table.concat(t, ",")
end

describe("xdbtx.core #luajit", function()
  describe("misc", function()
    it("now() is a monotonic float in seconds", function()
      local a = core.now()
      local b = core.now()
      assert.is_number(a)
      if math.type then assert.equal("float", math.type(a)) end
      assert.is_true(b >= a)
    end)

    it("mongoc_version() names libmongoc", function()
      assert.matches("^1%.23%.", core.mongoc_version())
    end)
  end)

  describe("clients", function()
    it("share one pool per URI: same id, equal objects", function()
      local a, b = core.client(OFFLINE), core.client(OFFLINE)
      assert.equal(a:id(), b:id())
      assert.equal(OFFLINE, a:uri())
      assert.is_true(a == b)
    end)

    it("make another pool for another app_name", function()
      local a = core.client(OFFLINE)
      local b = core.client(OFFLINE, { app_name = "other", max_pool_size = 4,
                                       server_selection_timeout_ms = 300 })
      assert.not_equal(a:id(), b:id())
      assert.matches("app_name=other", b:id(), 1, true)
      assert.equal(b:id(), core.client(OFFLINE, { app_name = "other", max_pool_size = 4,
                                                   server_selection_timeout_ms = 300 }):id())
    end)

    local bad_options = {
      { { app_nam = "x" }, "client: unknown option 'app_nam'" },
      { { max_pool_size = "ten" }, "client: option 'max_pool_size' must be an integer in 1..2147483647, got \"ten\"" },
      { { server_selection_timeout_ms = -1 }, "option 'server_selection_timeout_ms' must be an integer in 1..2147483647, got -1" },
      { { app_name = 5 }, "client: option 'app_name' must be a string, got 5" },
    }
    for _, case in ipairs(bad_options) do
      it("refuse options: " .. case[2], function()
        local err = raises(core.client, OFFLINE, case[1])
        assert.matches(case[2], err.message, 1, true)
      end)
    end

    it("refuse an invalid URI in phase connect", function()
      local err = raises(core.client, "http://localhost")
      assert.equal("connect", err.phase)
      assert.matches("http://localhost", err.message, 1, true)
    end)

    it("make collections, also from \"db.name\"", function()
      local c = core.client(OFFLINE)
      local coll = c:collection("shop.orders")
      assert.equal("shop", coll:database())
      assert.equal("orders", coll:name())
      assert.is_true(coll:client() == c)
      assert.equal("orders", c:collection("shop", "orders"):name())
      raises(c.collection, c, "noname")
    end)
  end)

  describe("options", function()
    local coll = core.client(OFFLINE):collection("t", "c")
    local cases = {
      { "insert_one", { {}, { limit = 1 } }, "insert_one: unknown option 'limit'" },
      { "insert_many", { { {} }, { upsert = true } }, "insert_many: unknown option 'upsert'" },
      { "find", { {}, { limt = 1 } }, "find: unknown option 'limt'" },
      { "find_one", { {}, { ordered = true } }, "find_one: unknown option 'ordered'" },
      { "update_one", { {}, { ["$set"] = { a = 1 } }, { sort = {} } },
        "update_one: unknown option 'sort'" },
      { "replace_one", { {}, {}, { array_filters = {} } },
        "replace_one: unknown option 'array_filters'" },
      { "delete_many", { {}, { upsert = true } }, "delete_many: unknown option 'upsert'" },
      { "find_one_and_update", { {}, { ["$set"] = { a = 1 } }, { return_document = "later" } },
        "option 'return_document' must be" },
      { "find_one_and_delete", { {}, { upsert = true } },
        "find_one_and_delete: unknown option 'upsert'" },
      { "count_documents", { {}, { sort = {} } }, "count_documents: unknown option 'sort'" },
      { "aggregate", { {}, { projection = {} } }, "aggregate: unknown option 'projection'" },
      { "find", { {}, { limit = 1.5 } }, "option 'limit' must be an integer" },
      { "update_many", { {}, { ["$set"] = { a = 1 } }, { write_concern = { x = 1 } } },
        "unknown option 'write_concern.x'" },
      { "find", { {}, { read_preference = "fastest" } }, "option 'read_preference' must be" },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. " refuses: " .. case[3], function()
        local err = raises(coll[case[1]], coll, nil, unpack(case[2]))
        assert.equal("argument", err.phase)
        assert.matches(case[3], err.message, 1, true)
      end)
    end

    it("start_session and start_transaction refuse unknown options", function()
      local c = core.client(OFFLINE)
      assert.matches("start_session: unknown option 'causal'",
        raises(c.start_session, c, { causal = true }).message, 1, true)
    end)

    it("a bad session argument is an argument error", function()
      assert.equal("argument", raises(coll.find_one, coll, {}, {}).phase)
    end)
  end)

  -- The methods know their boxes by size and tag (src/binding.c
  -- xdbtx_testudata): another kind of box, a userdata as large as a box
  -- (io.stdout, a luaL_Stream of two pointers) and non-boxes are refused.
  describe("type checks", function()
    local function refuse(method, want, others)
      for name, v in pairs(others) do
        local err = raises(method, v)
        assert.equal("argument", err.phase, name)
        assert.matches("expected an xdbtx." .. want .. " as self", err.message, 1, true)
      end
    end
    local function strangers(t)
      t.stdout, t.codec_value, t.json_null = io.stdout, require("xdbtx").int64(1), require("xdbtx").json_null
      t.table, t.number = {}, 1
      return t
    end

    it("clients and collections take only their own box", function()
      local c = core.client(OFFLINE)
      local coll = c:collection("shop.orders")
      assert.equal("orders", coll:name())
      refuse(c.collection, "Client", strangers { collection = coll })
      refuse(coll.name, "Collection", strangers { client = c })
      refuse(coll.find_one, "Collection", strangers { client = c })
    end)

    sit("sessions and cursors take only their own box", function()
      local c = core.client(URI)
      local coll = c:collection("xdbtx_core", "checks")
      local s = c:start_session()
      local cur = coll:find(nil, {})
      assert.equal("none", s:state())
      refuse(s.state, "Session", strangers { client = c, collection = coll, cursor = cur })
      refuse(cur.next, "Cursor", strangers { client = c, collection = coll, session = s })
      refuse(coll.insert_one, "Collection", strangers { session = s, cursor = cur })
      cur:close()
      s:close()
    end)
  end)

  describe("against the server", function()
    local client, coll

    before_each(function()
      if not URI then return end
      client = core.client(URI, { app_name = "core_spec" })
      coll = client:collection("core_spec", "items")
      coll:delete_many(nil, {})
      client:drain_events()
    end)

    after_each(function()
      if client then client:monitor(false) end
      collectgarbage()
    end)

    sit("an exhausted pool raises phase connect instead of waiting forever", function()
      local small = core.client(URI, { app_name = "core_spec_small", max_pool_size = 1,
                                       server_selection_timeout_ms = 300 })
      local s = small:start_session()
      local err = raises(small.command, small, nil, "admin", { ping = 1 })
      assert.equal("connect", err.phase)
      assert.matches("no free client in the pool", err.message, 1, true)
      s:close()
      assert.equal(1, small:command(nil, "admin", { ping = 1 }).ok)
    end)

    sit("topology() tells a replica set from a standalone", function()
      assert.equal("replicaset", client:topology())
      if STANDALONE then
        assert.equal("standalone", core.client(STANDALONE):topology())
      end
      local err = raises(function()
        return core.client("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100"):topology()
      end)
      assert.equal("connect", err.phase)
    end)

    sit("insert_one returns the _id, generated when missing", function()
      local r = coll:insert_one(nil, { a = 1 })
      assert.equal("objectid", core.type(r.inserted_id))
      assert.same({ inserted_id = 7 }, coll:insert_one(nil, { _id = 7, a = 2 }))
      assert.equal(1, coll:find_one(nil, { _id = r.inserted_id }).a)
    end)

    sit("insert_many inserts any number of documents, ids in order", function()
      local docs = {}
      for i = 1, 1500 do docs[i] = (i % 2 == 0) and { _id = i } or { n = i } end
      local r = coll:insert_many(nil, docs, { ordered = true })
      assert.equal(1500, r.inserted_count)
      assert.equal(1500, #r.inserted_ids)
      assert.equal(2, r.inserted_ids[2])
      assert.equal("objectid", core.type(r.inserted_ids[1]))
      assert.equal(1500, coll:count_documents(nil, {}))
    end)

    sit("insert_many of none sends nothing; beyond maxWriteBatchSize libmongoc splits", function()
      client:monitor(true)
      assert.same({ inserted_count = 0, inserted_ids = {} }, coll:insert_many(nil, {}))
      assert.equal(0, #started(client))
      local docs = {}
      for i = 1, 100001 do docs[i] = { _id = i } end
      local r = coll:insert_many(nil, docs)
      assert.equal(100001, r.inserted_count)
      assert.equal(100001, r.inserted_ids[100001])
      local inserts = #started(client, "insert")
      assert.is_true(inserts >= 2, "batches: " .. inserts)
      assert.equal(100001, coll:count_documents(nil, {}))
    end)

    sit("find takes sort, skip, limit, projection; cursors iterate and close", function()
      for i = 1, 10 do coll:insert_one(nil, { _id = i, sq = i * i }) end
      local cur = coll:find(nil, { _id = { ["$gt"] = 2 } },
        { sort = { _id = -1 }, skip = 1, limit = 3, projection = { sq = 0 }, batch_size = 2 })
      local got = {}
      for doc in cur.next, cur do got[#got + 1] = doc._id; assert.is_nil(doc.sq) end
      assert.same({ 9, 8, 7 }, got)
      assert.is_nil(cur:next())
      assert.equal(10, #coll:find(nil, {}):all())
      assert.is_nil(coll:find_one(nil, { _id = 99 }))
      assert.same({ _id = 4, sq = 16 }, coll:find_one(nil, { _id = 4 }))
    end)

    sit("update_one / update_many / replace_one return counts and upserted_id", function()
      coll:insert_many(nil, { { _id = 1, k = "a" }, { _id = 2, k = "a" } })
      assert.same({ matched_count = 1, modified_count = 1 },
        coll:update_one(nil, { _id = 1 }, { ["$set"] = { v = 1 } }))
      assert.same({ matched_count = 2, modified_count = 2 },
        coll:update_many(nil, { k = "a" }, { ["$set"] = { v = 2 } }))
      assert.same({ matched_count = 1, modified_count = 1 },
        coll:replace_one(nil, { _id = 2 }, { k = "b" }))
      local r = coll:update_one(nil, { _id = 3 }, { ["$set"] = { v = 3 } }, { upsert = true })
      assert.same({ matched_count = 0, modified_count = 0, upserted_id = 3 }, r)
      assert.same({ _id = 2, k = "b" }, coll:find_one(nil, { _id = 2 }))
    end)

    sit("an update may be a pipeline (a list of stages), sent as an array", function()
      coll:insert_one(nil, { _id = 1, a = 1 })
      client:monitor(true)
      pcall(coll.update_one, coll, nil, { _id = 1 }, { { ["$set"] = { b = "$a" } } })
      pcall(coll.find_one_and_update, coll, nil, { _id = 1 }, { { ["$set"] = { b = 2 } } })
      local evs = started(client)
      assert.equal("update,findAndModify", names(evs))
      local u = evs[1].command.updates[1].u
      assert.equal(core.array_mt, getmetatable(u))
      assert.same({ b = "$a" }, u[1]["$set"])
      assert.equal(core.array_mt, getmetatable(evs[2].command.update))
    end)

    sit("delete_one / delete_many return deleted_count", function()
      coll:insert_many(nil, { { k = 1 }, { k = 1 }, { k = 1 } })
      assert.same({ deleted_count = 1 }, coll:delete_one(nil, { k = 1 }))
      assert.same({ deleted_count = 2 }, coll:delete_many(nil, { k = 1 }))
      assert.same({ deleted_count = 0 }, coll:delete_many(nil, { k = 1 }))
    end)

    sit("find_one_and_update / replace / delete return the document or nil", function()
      coll:insert_one(nil, { _id = 1, n = 1 })
      assert.same({ _id = 1, n = 1 },
        coll:find_one_and_update(nil, { _id = 1 }, { ["$inc"] = { n = 1 } }))
      assert.same({ _id = 1, n = 3 },
        coll:find_one_and_update(nil, { _id = 1 }, { ["$inc"] = { n = 1 } },
          { return_document = "after", projection = { n = 1 } }))
      assert.same({ _id = 1, m = 0 },
        coll:find_one_and_replace(nil, { _id = 1 }, { m = 0 }, { return_document = "after" }))
      assert.is_nil(coll:find_one_and_update(nil, { _id = 2 }, { ["$set"] = { n = 1 } }))
      assert.same({ _id = 2, n = 1 },
        coll:find_one_and_update(nil, { _id = 2 }, { ["$set"] = { n = 1 } },
          { upsert = true, return_document = "after" }))
      assert.same({ _id = 1, m = 0 }, coll:find_one_and_delete(nil, { _id = 1 }))
      assert.is_nil(coll:find_one_and_delete(nil, { _id = 1 }))
    end)

    sit("count_documents returns an integer; aggregate returns a cursor", function()
      for i = 1, 5 do coll:insert_one(nil, { g = i % 2, v = i }) end
      local n = coll:count_documents(nil, { g = 1 })
      assert.equal(3, n)
      if math.type then assert.equal("integer", math.type(n)) end
      assert.equal(2, coll:count_documents(nil, { g = 1 }, { skip = 1 }))
      local rows = coll:aggregate(nil, {
        { ["$group"] = { _id = "$g", total = { ["$sum"] = "$v" } } },
        { ["$sort"] = { _id = 1 } },
      }):all()
      assert.equal(2, #rows)
      assert.equal(6, rows[1].total)
      assert.equal(9, rows[2].total)
    end)

    -- every documented option, per method, is accepted and reaches the server:
    -- each case names the command it sends and what that command must carry
    local wc = { w = 1, j = false, wtimeout = 1000 }
    local en = { locale = "en" }
    local function has_wc(c) return c.writeConcern.w == 1 and c.writeConcern.wtimeout == 1000 end
    local accepted = {
      { "insert_one", { { a = 2 }, { comment = "x", bypass_document_validation = true,
                                     write_concern = wc } },
        "insert", function(c) return c.comment == "x" and c.bypassDocumentValidation == true and has_wc(c) end },
      { "insert_many", { { { a = 3 } }, { ordered = false, comment = "x",
                                          bypass_document_validation = false,
                                          write_concern = wc } },
        "insert", function(c)
          -- false is libmongoc's default and goes unsent
          return c.ordered == false and c.comment == "x" and c.bypassDocumentValidation ~= true and has_wc(c)
        end },
      { "update_one", { { _id = 1 }, { ["$set"] = { ["arr.$[x]"] = 9 } },
                        { upsert = false, hint = { _id = 1 }, collation = en, comment = "c",
                          bypass_document_validation = true, write_concern = wc,
                          array_filters = { { x = 2 } } } },
        "update", function(c)
          local u = c.updates[1]
          return u.hint._id == 1 and u.collation.locale == "en" and u.arrayFilters[1].x == 2
            and c.comment == "c" and c.bypassDocumentValidation == true and has_wc(c)
        end },
      { "update_many", { {}, { ["$set"] = { b = 1 } }, { hint = "_id_" } },
        "update", function(c) return c.updates[1].hint == "_id_" and c.updates[1].multi == true end },
      { "replace_one", { { _id = 1 }, { a = 1 }, { upsert = true, hint = { _id = 1 },
                                                   collation = en, comment = "c",
                                                   write_concern = wc } },
        "update", function(c)
          local u = c.updates[1]
          return u.upsert == true and u.hint._id == 1 and u.collation.locale == "en" and c.comment == "c"
            and has_wc(c)
        end },
      { "delete_one", { { _id = 99 }, { hint = { _id = 1 }, collation = en, comment = "c",
                                        write_concern = wc } },
        "delete", function(c)
          local d = c.deletes[1]
          return d.hint._id == 1 and d.collation.locale == "en" and d.limit == 1 and c.comment == "c" and has_wc(c)
        end },
      { "find", { {}, { sort = { _id = 1 }, projection = { a = 1 }, limit = 5, skip = 0,
                        batch_size = 2, hint = { _id = 1 }, collation = en, comment = "c",
                        max_time_ms = 1000, read_concern = "local",
                        read_preference = "primary", allow_disk_use = true } },
        "find", function(c)
          return c.sort._id == 1 and c.projection.a == 1 and c.limit == 5 and c.skip == 0 and c.batchSize == 2
            and c.hint._id == 1 and c.collation.locale == "en" and c.comment == "c" and c.maxTimeMS == 1000
            and c.readConcern.level == "local" and c.allowDiskUse == true
        end },
      { "find_one", { {}, { sort = { _id = 1 }, skip = 0, max_time_ms = 1000,
                            read_concern = { level = "local" },
                            read_preference = "primaryPreferred" } },
        "find", function(c)
          return c.sort._id == 1 and c.skip == 0 and c.maxTimeMS == 1000 and c.limit == 1
            and c.readConcern.level == "local" and c["$readPreference"].mode == "primaryPreferred"
        end },
      { "find_one_and_update", { { _id = 1 }, { ["$set"] = { c = 1 } },
                                 { sort = { _id = 1 }, projection = { c = 1 }, upsert = false,
                                   return_document = "after", hint = { _id = 1 },
                                   collation = en, comment = "c", max_time_ms = 1000,
                                   bypass_document_validation = true, write_concern = wc } },
        "findAndModify", function(c)
          return c.sort._id == 1 and c.fields.c == 1 and c.new == true and c.hint._id == 1
            and c.collation.locale == "en" and c.comment == "c" and c.maxTimeMS == 1000
            and c.bypassDocumentValidation == true and has_wc(c)
        end },
      { "find_one_and_replace", { { _id = 1 }, { c = 2 }, { return_document = "before" } },
        "findAndModify", function(c) return c.new == false and c.update.c == 2 end },
      { "find_one_and_delete", { { _id = 77 }, { sort = { _id = 1 }, projection = { c = 1 },
                                                 hint = { _id = 1 }, collation = en,
                                                 comment = "c", max_time_ms = 1000,
                                                 write_concern = wc } },
        "findAndModify", function(c)
          return c.remove == true and c.sort._id == 1 and c.fields.c == 1 and c.hint._id == 1
            and c.collation.locale == "en" and c.comment == "c" and c.maxTimeMS == 1000 and has_wc(c)
        end },
      { "count_documents", { {}, { limit = 10, skip = 0, hint = { _id = 1 }, collation = en,
                                   comment = "c", max_time_ms = 1000, read_concern = "local",
                                   read_preference = "primary" } },
        "aggregate", function(c)
          local limit = false
          for _, st in ipairs(c.pipeline) do if st["$limit"] == 10 then limit = true end end
          return limit and c.hint._id == 1 and c.collation.locale == "en" and c.comment == "c"
            and c.maxTimeMS == 1000 and c.readConcern.level == "local"
        end },
      { "aggregate", { { { ["$match"] = {} } },
                       { batch_size = 2, hint = { _id = 1 }, collation = en, comment = "c",
                         max_time_ms = 1000, read_concern = "local",
                         read_preference = "primary", allow_disk_use = true,
                         bypass_document_validation = true } },
        "aggregate", function(c)
          return c.cursor.batchSize == 2 and c.hint._id == 1 and c.collation.locale == "en"
            and c.comment == "c" and c.maxTimeMS == 1000 and c.readConcern.level == "local"
            and c.allowDiskUse == true and c.bypassDocumentValidation == true
        end },
    }
    for _, case in ipairs(accepted) do
      sit(case[1] .. " accepts its documented options and sends them", function()
        coll:insert_one(nil, { _id = 1, a = 1, arr = { 1, 2 } })
        client:monitor(true)
        client:drain_events()
        local r = coll[case[1]](coll, nil, unpack(case[2]))
        if type(r) == "userdata" then r = r:all() end
        local evs = started(client, case[3])
        assert.is_true(#evs >= 1, "no " .. case[3] .. " command was sent")
        local ok, res = pcall(case[4], evs[1].command)
        assert.is_true(ok and res == true, "the " .. case[3] .. " command lacks an option: " ..
          core.to_json(evs[1].command))
      end)
    end

    sit("findAndModify options reach the command under libmongoc's names", function()
      coll:insert_one(nil, { _id = 1, n = 1 })
      client:monitor(true)
      coll:find_one_and_update(nil, { _id = 1 }, { ["$inc"] = { n = 1 } },
        { sort = { _id = 1 }, projection = { n = 1 }, return_document = "after",
          max_time_ms = 500, hint = { _id = 1 }, write_concern = { w = 1 } })
      local cmd = started(client, "findAndModify")[1].command
      assert.is_true(cmd.new)
      assert.same({ _id = 1 }, cmd.sort)
      assert.same({ n = 1 }, cmd.fields)
      assert.same({ _id = 1 }, cmd.hint)
      assert.equal(500, cmd.maxTimeMS)
      assert.equal(1, cmd.writeConcern.w)
    end)

    sit("a duplicate key raises code 11000 DuplicateKey with the reply", function()
      coll:insert_one(nil, { _id = 1 })
      local err = raises(coll.insert_one, coll, nil, { _id = 1 })
      assert.equal(11000, err.code)
      assert.equal("DuplicateKey", err.name)
      assert.equal("operation", err.phase)
      assert.is_table(err.reply)
      assert.is_table(err.labels)
      assert.matches("DuplicateKey", tostring(err), 1, true)
      local many = raises(coll.insert_many, coll, nil, { { _id = 2 }, { _id = 1 }, { _id = 3 } })
      assert.equal(11000, many.code)
      assert.equal(1, many.reply.insertedCount)
    end)

    sit("a writeConcernError raises with its code and name", function()
      client:command(nil, "admin", core.ordered {
        { "configureFailPoint", "failCommand" }, { "mode", { times = 1 } },
        { "data", { failCommands = { "insert" }, appName = "core_spec",
                    writeConcernError = { code = 64, errmsg = "waiting for replication timed out" } } },
      })
      local err = raises(coll.insert_one, coll, nil, { _id = "wc" })
      assert.equal(64, err.code)
      assert.equal("WriteConcernFailed", err.name)
      assert.equal("operation", err.phase)
      assert.is_table(err.reply)
    end)

    sit("command returns the reply and raises server errors with the reply", function()
      assert.equal(1, client:command(nil, "admin", { ping = 1 }).ok)
      local err = raises(client.command, client, nil, "admin", { noSuchCommand = 1 })
      assert.equal("operation", err.phase)
      assert.is_table(err.reply)
      assert.not_equal(0, err.code)
    end)

    sit("errors carry the server's labels", function()
      client:command(nil, "admin", core.ordered {
        { "configureFailPoint", "failCommand" }, { "mode", { times = 1 } },
        { "data", { failCommands = { "insert" }, errorCode = 112,
                    errorLabels = { "TransientTransactionError" }, appName = "core_spec" } },
      })
      local err = raises(coll.insert_one, coll, nil, { x = 1 })
      assert.equal(112, err.code)
      assert.equal("WriteConflict", err.name)
      assert.is_true(err:has_label("TransientTransactionError"))
      assert.is_true(err.labels.TransientTransactionError)
    end)

    describe("sessions", function()
      sit("commit makes writes visible; state moves through the names", function()
        local s = client:start_session()
        assert.equal("none", s:state())
        assert.is_true(s:client() == client)
        assert.is_table(s:id())
        assert.is_not_nil(s:id().id)
        s:start_transaction({ read_concern = "snapshot", write_concern = { w = "majority" },
                              read_preference = "primary", max_commit_time_ms = 5000 })
        assert.equal("starting", s:state())
        assert.is_true(s:in_transaction())
        coll:insert_one(s, { _id = "t1" })
        assert.equal("in_progress", s:state())
        assert.is_nil(coll:find_one(nil, { _id = "t1" }))
        assert.is_true(s:commit())
        assert.equal("committed", s:state())
        assert.is_false(s:in_transaction())
        assert.is_not_nil(coll:find_one(nil, { _id = "t1" }))
        s:close()
        assert.equal("closed", s:state())
      end)

      sit("a 3-operation transaction sends exactly 4 commands", function()
        local s = client:start_session()
        client:monitor(true)
        s:start_transaction()
        coll:insert_one(s, { _id = 1 })
        coll:update_one(s, { _id = 1 }, { ["$set"] = { a = 1 } })
        coll:find_one(s, { _id = 1 })
        s:commit()
        assert.equal("insert,update,find,commitTransaction", names(started(client)))
        s:close()
      end)

      sit("abort discards writes; abort without a transaction raises phase abort", function()
        local s = client:start_session()
        s:start_transaction()
        coll:insert_one(s, { _id = "gone" })
        assert.is_true(s:abort())
        assert.equal("aborted", s:state())
        assert.is_nil(coll:find_one(nil, { _id = "gone" }))
        assert.equal("abort", raises(s.abort, s).phase)
        s:close()
      end)

      sit("close aborts an open transaction and is idempotent", function()
        local s = client:start_session()
        s:start_transaction()
        coll:insert_one(s, { _id = "c" })
        client:monitor(true)
        s:close()
        s:close()
        assert.equal("abortTransaction", names(started(client)))
        assert.is_nil(coll:find_one(nil, { _id = "c" }))
      end)

      sit("a to-be-closed session aborts at scope exit", function()
        if _VERSION ~= "Lua 5.4" then return pending("to-be-closed variables are Lua 5.4") end
        -- compiled at run time so that LuaJIT can still parse this file
        local body = assert(load([[
          local client, coll = ...
          local s <close> = client:start_session()
          s:start_transaction()
          coll:insert_one(s, { _id = "tbc" })
          error("boom")
        ]]))
        local ok = pcall(body, client, coll)
        assert.is_false(ok)
        assert.is_nil(coll:find_one(nil, { _id = "tbc" }))
      end)

      sit("garbage collection aborts an open transaction", function()
        do
          local s = client:start_session()
          s:start_transaction()
          coll:insert_one(s, { _id = "gc" })
          local cur = coll:find(s, {}, { batch_size = 1 })
          cur:next()
        end
        client:monitor(true)
        collectgarbage()
        collectgarbage()
        assert.matches("abortTransaction", names(started(client)), 1, true)
        assert.is_nil(coll:find_one(nil, { _id = "gc" }))
      end)

      sit("a closed session is refused, never ignored", function()
        local s = client:start_session()
        s:close()
        client:monitor(true)
        for _, call in ipairs {
          function() return coll:insert_one(s, { _id = 1 }) end,
          function() return coll:find(s, {}) end,
          function() return coll:count_documents(s, {}) end,
          function() return client:command(s, "admin", { ping = 1 }) end,
          function() return s:start_transaction() end,
          function() return s:commit() end,
        } do
          local err = raises(call)
          assert.equal("state", err.phase)
          assert.matches("session is closed", err.message, 1, true)
        end
        assert.equal("", names(started(client)))
        assert.equal(0, coll:count_documents(nil, {}))
      end)

      sit("a session of another client is refused", function()
        local other = core.client(URI, { app_name = "core_spec_other" })
        local s = other:start_session()
        assert.equal("state", raises(coll.insert_one, coll, s, { a = 1 }).phase)
        s:close()
      end)

      sit("a failed commit raises with labels; commit again re-sends it with w:majority",
        function()
          local s = client:start_session()
          s:start_transaction()
          coll:insert_one(s, { _id = "retry" })
          client:command(nil, "admin", core.ordered {
            { "configureFailPoint", "failCommand" }, { "mode", { times = 2 } },
            { "data", { failCommands = { "commitTransaction" }, errorCode = 91,
                        appName = "core_spec" } },
          })
          local err = raises(s.commit, s)
          assert.equal("commit", err.phase)
          assert.equal(91, err.code)
          assert.is_true(err:has_label("UnknownTransactionCommitResult"))
          client:monitor(true)
          assert.is_true(s:commit())
          local commits = started(client, "commitTransaction")
          assert.equal(1, #commits)
          assert.equal("majority", commits[1].command.writeConcern.w)
          assert.is_not_nil(coll:find_one(nil, { _id = "retry" }))
          s:close()
        end)

      sit("reads in a transaction with a non-primary read preference are refused", function()
        local s = client:start_session()
        s:start_transaction({ read_preference = "secondary" })
        client:monitor(true)
        for _, call in ipairs {
          function() return coll:find_one(s, {}) end,
          function() return coll:count_documents(s, {}) end,
          function() return coll:aggregate(s, {}) end,
          function() return client:command(s, "admin", { ping = 1 }) end,
        } do
          assert.matches("read preference in a transaction must be primary",
            raises(call).message, 1, true)
        end
        assert.equal("", names(started(client)))
        s:close()
      end)

      sit("a transient error in a transaction carries TransientTransactionError", function()
        local s = client:start_session()
        s:start_transaction()
        client:command(nil, "admin", core.ordered {
          { "configureFailPoint", "failCommand" }, { "mode", { times = 1 } },
          { "data", { failCommands = { "insert" }, errorCode = 112,
                      errorLabels = { "TransientTransactionError" }, appName = "core_spec" } },
        })
        local err = raises(coll.insert_one, coll, s, { _id = 1 })
        assert.is_true(err:has_label("TransientTransactionError"))
        s:close()
      end)
    end)

    describe("cursors and events", function()
      sit("closing a cursor early sends killCursors", function()
        for i = 1, 6 do coll:insert_one(nil, { _id = i }) end
        local cur = coll:find(nil, {}, { batch_size = 2 })
        for doc in cur.next, cur do
          if doc._id == 1 then break end
        end
        client:monitor(true)
        cur:close()
        cur:close()
        assert.equal("killCursors", names(started(client)))
        assert.is_nil(cur:next())
      end)

      sit("a collected cursor frees its server cursor", function()
        for i = 1, 6 do coll:insert_one(nil, { _id = i }) end
        do
          local cur = coll:find(nil, {}, { batch_size = 2 })
          cur:next()
        end
        client:monitor(true)
        collectgarbage()
        collectgarbage()
        assert.equal("killCursors", names(started(client)))
      end)

      sit("drain_events returns plain tables and empties the queue", function()
        client:monitor(true)
        coll:insert_one(nil, { _id = 1 })
        pcall(coll.insert_one, coll, nil, { _id = 1 })
        client:command(nil, "admin", { ping = 1 })
        pcall(client.command, client, nil, "admin", { noSuchCommand = 1 })
        local evs = client:drain_events()
        assert.same({}, client:drain_events())
        local seen = {}
        for _, ev in ipairs(evs) do
          seen[#seen + 1] = ev.type .. ":" .. ev.command_name
          assert.is_number(ev.request_id)
          if ev.type == "started" then
            assert.is_table(ev.command)
            assert.equal(ev.command_name == "ping" and "admin" or
              (ev.command_name == "noSuchCommand" and "admin" or "core_spec"), ev.database_name)
          else
            assert.is_number(ev.duration_us)
            assert.is_table(ev.reply)
          end
          if ev.type == "failed" then assert.is_string(ev.error) end
        end
        assert.same({ "started:insert", "succeeded:insert", "started:insert", "succeeded:insert",
                      "started:ping", "succeeded:ping", "started:noSuchCommand",
                      "failed:noSuchCommand" }, seen)
        client:monitor(false)
        coll:insert_one(nil, { _id = 2 })
        assert.same({}, client:drain_events())
      end)
    end)

    sit("a child process uses the same URI with its own pool", function()
      -- the child runs under this interpreter (LuaJIT's os.execute returns 0)
      local lua = rawget(_G, "jit") and (os.getenv("LUAJIT") or "luajit") or "lua5.4"
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(string.format([[
        package.cpath = %q
        local core = require "xdbtx.core"
        local c = core.client(%q, { app_name = "core_spec" })
        c:collection("core_spec", "items"):insert_one(nil, { _id = "child" })
        os.exit(0)
      ]], package.cpath, URI))
      f:close()
      local ok = os.execute(lua .. " " .. script)
      os.remove(script)
      assert.is_true(ok == true or ok == 0)
      assert.is_not_nil(coll:find_one(nil, { _id = "child" }))
      assert.is_not_nil(coll:insert_one(nil, { _id = "parent" }))
    end)
  end)
end)
