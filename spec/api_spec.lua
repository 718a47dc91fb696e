-- The API beyond CRUD: databases, listings, distinct, estimated counts,
-- bulk writes, indexes and drops (DESIGN.md "Clients and collections").
-- Every operation runs in the ambient transaction like the CRUD methods, and
-- where MongoDB 6.0 refuses one inside a transaction the server's error
-- surfaces unchanged. Against the test server (or XDBTX_TEST_URI).
local env = require "spec.support.env"

local catch = env.catch

describe("API", function()
  local why = env.server_reason()
  if why then pending(why) return end

  local x, client, db, coll, started, off
  local DB = "xdbtx_api"

  before_each(function()
    x = require "xdbtx"
    client = x.client(env.uri(), { app_name = "api" })
    db = client:database(DB)
    db:drop()
    coll = db:collection("items")
    started = {}
    off = client:on_command(function(ev)
      if ev.type == "started" then started[#started + 1] = ev end
    end)
  end)

  after_each(function()
    off()
  end)

  -- The started events of the commands named `name` since the last clear().
  local function sent(name)
    local out = {}
    for _, ev in ipairs(started) do
      if ev.command_name == name then out[#out + 1] = ev end
    end
    return out
  end
  local function clear() started = {} end

  local function sorted(t)
    local out = {}
    for i, v in ipairs(t) do out[i] = v end
    table.sort(out, function(a, b) return tostring(a) < tostring(b) end)
    return out
  end

  local ids = env.ids

  describe("databases", function()
    it("client:database(name) has a name, its client, and makes the cached collections", function()
      assert.are.equal(DB, db:name())
      assert.is_true(db:client() == client)
      assert.are.equal("xdbtx.Database (" .. DB .. ")", tostring(db))
      assert.are.equal(client:collection(DB, "items"), db:collection("items"))
      assert.is_true(getmetatable(db) == x.Database)
    end)

    it("db:command runs a command on the database", function()
      coll:insert_many { { _id = 1 }, { _id = 2 } }
      clear()
      local r = db:command(x.ordered { { "count", "items" }, { "query", { _id = 2 } } })
      assert.are.equal(1, r.n)
      assert.are.equal(DB, sent("count")[1].database_name)
    end)

    it("list_collection_names lists (with a filter), drop drops the database", function()
      db:collection("a"):insert_one {}
      db:collection("b"):insert_one {}
      assert.are.same({ "a", "b" }, sorted(db:list_collection_names()))
      assert.are.same({ "b" }, db:list_collection_names { name = "b" })
      assert.are.same({ true }, { db:drop() })
      assert.are.same({}, db:list_collection_names())
    end)

    it("client:list_database_names names the databases that exist", function()
      local function listed()
        for _, n in ipairs(client:list_database_names()) do
          if n == DB then return true end
        end
        return false
      end
      assert.is_false(listed())
      coll:insert_one {}
      assert.is_true(listed())
      assert.are.same({ DB }, client:list_database_names { filter = { name = DB } })
    end)

    local bad = {
      { "a name with a dot", function() client:database("a.b") end, "without '.'" },
      { "an empty name", function() client:database("") end, "non-empty" },
      { "a name that is not a string", function() client:database(1) end, "must be a string" },
      { "an unknown option", function() client:database("d", { wirte_concern = {} }) end,
        "unknown option 'wirte_concern'" },
      { "an unknown listing option", function() client:list_database_names { sort = 1 } end,
        "unknown option 'sort'" },
    }
    for _, case in ipairs(bad) do
      it("refuses " .. case[1], function()
        local err = catch(case[2])
        assert.is_true(x.is_error(err))
        assert.are.equal("argument", err.phase)
        assert.matches(case[3], err.message, 1, true)
      end)
    end
  end)

  describe("distinct and estimated_document_count", function()
    before_each(function()
      coll:insert_many { { _id = 1, k = "a" }, { _id = 2, k = "b" }, { _id = 3, k = "a" },
        { _id = 4, tags = { "x", "y" } } }
    end)

    it("distinct returns the distinct values (arrays expanded), with a filter", function()
      assert.are.same({ "a", "b" }, sorted(coll:distinct("k")))
      assert.are.same({ "a" }, coll:distinct("k", { _id = { ["$gt"] = 2 } }))
      assert.are.same({ "x", "y" }, sorted(coll:distinct("tags")))
      assert.are.same({}, coll:distinct("nothing"))
      assert.is_true(getmetatable(coll:distinct("nothing")) == x.array_mt)
    end)

    it("distinct sends its filter as query and its options", function()
      clear()
      coll:distinct("k", { k = "a" }, { max_time_ms = 500, comment = "why" })
      local cmd = sent("distinct")[1].command
      assert.are.same({ "items", "k", { k = "a" }, 500, "why" },
        { cmd.distinct, cmd.key, cmd.query, cmd.maxTimeMS, cmd.comment })
    end)

    it("distinct runs in the ambient transaction: it sees the transaction's writes", function()
      client:transaction(function()
        coll:insert_one { _id = 5, k = "c" }
        assert.are.same({ "a", "b", "c" }, sorted(coll:distinct("k")))
        assert.are.same({ "a", "b" }, sorted(coll:distinct("k", nil, { session = false })))
        x.rollback("look only")
      end)
      assert.are.same({ "a", "b" }, sorted(coll:distinct("k")))
      assert.is_truthy(sent("distinct")[1].command.txnNumber)
    end)

    it("estimated_document_count counts from metadata (the count command)", function()
      clear()
      assert.are.equal(4, coll:estimated_document_count())
      assert.are.equal(0, db:collection("none"):estimated_document_count())
      assert.are.equal(2, #sent("count"))
    end)

    it("estimated_document_count in a transaction: the server refuses count there", function()
      local err = catch(client.transaction, client, function()
        coll:estimated_document_count()
      end)
      assert.are.equal("OperationNotSupportedInTransaction", err.name)
    end)

    local bad = {
      { "a field that is not a string", function() coll:distinct(1) end, "field must be a string" },
      { "a filter that is not a table", function() coll:distinct("k", 5) end, "filter must be a table" },
      { "an option distinct does not take", function() coll:distinct("k", nil, { sort = { a = 1 } }) end,
        "distinct: unknown option 'sort'" },
      { "an option estimated_document_count does not take",
        function() coll:estimated_document_count { limit = 1 } end,
        "estimated_document_count: unknown option 'limit'" },
    }
    for _, case in ipairs(bad) do
      it("refuses " .. case[1], function()
        local err = catch(case[2])
        assert.are.equal("argument", err.phase)
        assert.matches(case[3], err.message, 1, true)
      end)
    end
  end)

  describe("bulk_write", function()
    before_each(function()
      coll:insert_many { { _id = 1, n = 0 }, { _id = 2, n = 0 } }
      clear()
    end)

    it("runs the six request kinds in order and reports what they did", function()
      local r = coll:bulk_write {
        { insert_one = { document = { _id = 3, n = 0 } } },
        { update_one = { filter = { _id = 1 }, update = { ["$inc"] = { n = 1 } } } },
        { update_many = { filter = {}, update = { ["$inc"] = { n = 10 } } } },
        { replace_one = { filter = { _id = 9 }, replacement = { n = 99 }, upsert = true } },
        { delete_one = { filter = { _id = 2 } } },
        { delete_many = { filter = { n = { ["$gte"] = 99 } } } },
        { update_one = { filter = { _id = 8 }, update = { ["$set"] = { n = 8 } }, upsert = true } },
        { insert_one = { document = { n = 7 } } },
      }
      assert.are.same({ 2, 4, 4, 2, 2 }, { r.inserted_count, r.matched_count, r.modified_count,
        r.deleted_count, r.upserted_count })
      assert.are.same({ [4] = 9, [7] = 8 }, r.upserted_ids)
      assert.are.equal(3, r.inserted_ids[1])
      assert.are.equal("objectid", x.type(r.inserted_ids[8]))
      local n = 0
      for _ in pairs(r.inserted_ids) do n = n + 1 end
      assert.are.equal(2, n)
      -- consecutive requests of one kind go in one command, as libmongoc groups them
      local names = {}
      for _, ev in ipairs(started) do names[#names + 1] = ev.command_name end
      assert.are.same({ "insert", "update", "delete", "update", "insert" }, names)
      local docs = coll:find({}, { sort = { _id = 1 } }):all()
      assert.are.same({ 1, 3, 8 }, { docs[1]._id, docs[2]._id, docs[3]._id })
      assert.are.same({ 11, 10, 8 }, { docs[1].n, docs[2].n, docs[3].n })
      assert.are.equal(r.inserted_ids[8], docs[4]._id)
    end)

    it("sends each request's options", function()
      coll:bulk_write({
        { update_one = { filter = { _id = 5 }, update = { ["$set"] = { ["a.$[e]"] = 1 } },
          array_filters = { { e = 1 } }, hint = "_id_", collation = { locale = "en" } } },
        { delete_many = { filter = { _id = 5 }, hint = { _id = 1 } } },
      }, { ordered = false, comment = "bulk", bypass_document_validation = true })
      local u = sent("update")[1].command
      assert.are.same({ { e = 1 } }, u.updates[1].arrayFilters)
      assert.are.same({ "_id_", "en" }, { u.updates[1].hint, u.updates[1].collation.locale })
      assert.are.same({ false, "bulk", true }, { u.ordered, u.comment, u.bypassDocumentValidation })
      assert.are.same({ _id = 1 }, sent("delete")[1].command.deletes[1].hint)
    end)

    it("ordered (the default): stops at the first error, which names its request", function()
      local err = catch(coll.bulk_write, coll, {
        { insert_one = { document = { _id = 3 } } },
        { insert_one = { document = { _id = 1 } } },
        { insert_one = { document = { _id = 4 } } },
      })
      assert.is_true(x.is_error(err))
      assert.are.equal("DuplicateKey", err.name)
      assert.matches("bulk_write: requests[2]", err.message, 1, true)
      assert.are.equal(1, #err.write_errors)
      assert.are.same({ 2, 11000, "DuplicateKey" },
        { err.write_errors[1].index, err.write_errors[1].code, err.write_errors[1].name })
      assert.matches("duplicate key", err.write_errors[1].message, 1, true)
      assert.are.same({ 1, { [1] = 3 } }, { err.result.inserted_count, err.result.inserted_ids })
      assert.are.same({ 1, 2, 3 }, ids(coll:find({}, { sort = { _id = 1 } }):all()))
    end)

    it("unordered: runs every request and reports each error with its index", function()
      local err = catch(coll.bulk_write, coll, {
        { insert_one = { document = { _id = 1 } } },
        { insert_one = { document = { _id = 3 } } },
        { update_one = { filter = { _id = 3 }, update = { ["$set"] = { _id = 2 } } } },
        { insert_one = { document = { _id = 2 } } },
        { insert_one = { document = { _id = 4 } } },
      }, { ordered = false })
      local idx = {}
      for i, we in ipairs(err.write_errors) do idx[i] = we.index end
      assert.are.same({ 1, 3, 4 }, idx)
      assert.are.same({ 2, { [2] = 3, [5] = 4 } }, { err.result.inserted_count, err.result.inserted_ids })
      assert.are.same({ 1, 2, 3, 4 }, ids(coll:find({}, { sort = { _id = 1 } }):all()))
    end)

    it("reports a write concern error with the partial result", function()
      local err = catch(coll.bulk_write, coll, { { insert_one = { document = { _id = 7 } } } },
        { write_concern = { w = 2 } })
      assert.are.equal(1, #err.write_concern_errors)
      assert.are.equal(100, err.write_concern_errors[1].code)
      assert.are.same({}, err.write_errors)
      assert.are.same({ 1, { 7 } }, { err.result.inserted_count, err.result.inserted_ids })
    end)

    it("with no requests returns an empty result and sends nothing", function()
      local r = coll:bulk_write {}
      assert.are.same({ 0, 0, 0, 0, 0, {}, {} }, { r.inserted_count, r.matched_count,
        r.modified_count, r.deleted_count, r.upserted_count, r.upserted_ids, r.inserted_ids })
      assert.are.same({}, started)
    end)

    it("runs in the ambient transaction and goes with its rollback", function()
      client:transaction(function()
        coll:bulk_write {
          { insert_one = { document = { _id = 3 } } },
          { delete_one = { filter = { _id = 1 } } },
        }
        assert.are.equal(2, coll:count_documents {})
        x.rollback("undo")
      end)
      assert.are.same({ 1, 2 }, ids(coll:find({}, { sort = { _id = 1 } }):all()))
      for _, name in ipairs { "insert", "delete" } do
        local cmd = sent(name)[1].command
        assert.is_truthy(cmd.txnNumber)
        assert.is_nil(cmd.writeConcern)
      end
    end)

    it("runs the collection's hooks per request", function()
      local seen = {}
      local unhook = {
        coll:before("insert", function(doc) doc.stamped = true seen[#seen + 1] = "before insert" end),
        coll:after("insert", function(doc, r) seen[#seen + 1] = "after insert " .. tostring(r.inserted_id) end),
        coll:before("update", function(f, u) seen[#seen + 1] = "before update " .. f._id end),
        coll:after("delete", function(f, r) seen[#seen + 1] = "after delete " .. r.deleted_count end),
      }
      coll:bulk_write {
        { insert_one = { document = { _id = 3 } } },
        { update_one = { filter = { _id = 1 }, update = { ["$set"] = { n = 1 } } } },
        { delete_one = { filter = { _id = 2 } } },
      }
      for _, u in ipairs(unhook) do u() end
      assert.are.same({ "before insert", "before update 1", "after insert 3", "after delete 1" }, seen)
      assert.is_true(coll:find_one({ _id = 3 }).stamped)
    end)

    local set = { ["$set"] = { n = 1 } }
    local refused = {
      { "requests that are not a list", function() return { a = 1 } end, "requests must be a list" },
      { "a request that is not a table", function() return { 5 } end, "requests[1] must be a table" },
      { "an unknown kind", function() return { { insert = { document = {} } } } end,
        "requests[1]: unknown request kind 'insert'" },
      { "two kinds in one request", function()
          return { { insert_one = { document = {} }, delete_one = { filter = {} } } }
        end, "requests[1] must have exactly one key" },
      { "an unknown request option", function()
          return { { update_one = { filter = {}, update = set, upsrt = true } } }
        end, "bulk_write: requests[1].update_one: unknown option 'upsrt'" },
      { "an option of another kind", function()
          return { { delete_one = { filter = {}, upsert = true } } }
        end, "requests[1].delete_one: unknown option 'upsert'" },
      { "a missing filter", function() return { { delete_many = {} } } end,
        "requests[1].delete_many: filter must be a table, got nil" },
      { "an update without operators (would replace)", function()
          return { { insert_one = { document = {} } }, { update_one = { filter = {}, update = { n = 1 } } } }
        end, "requests[2].update_one: update must be a document of $-operators, got key 'n'" },
      { "an empty update (would erase the document)", function()
          return { { update_many = { filter = {}, update = {} } } }
        end, "requests[1].update_many: update must not be empty" },
      { "a replacement with operators", function()
          return { { replace_one = { filter = {}, replacement = set } } }
        end, "requests[1].replace_one: replacement must not contain $-operators" },
      { "an insert without a document", function() return { { insert_one = {} } } end,
        "requests[1].insert_one: document must be a table" },
      { "an unknown bulk option", function() return { { delete_one = { filter = {} } } }, { orderd = true } end,
        "bulk_write: unknown option 'orderd'" },
    }
    for _, case in ipairs(refused) do
      it("refuses " .. case[1] .. ", sending nothing", function()
        local requests, opts = case[2]()
        local err = catch(coll.bulk_write, coll, requests, opts)
        assert.is_true(x.is_error(err))
        assert.are.equal("argument", err.phase)
        assert.matches(case[3], err.message, 1, true)
        assert.are.same({}, started)
        assert.are.same({ { _id = 1, n = 0 }, { _id = 2, n = 0 } }, coll:find({}, { sort = { _id = 1 } }):all())
      end)
    end
  end)

  describe("indexes", function()
    local function names()
      local out = {}
      for i, ix in ipairs(coll:list_indexes()) do out[i] = ix.name end
      table.sort(out)
      return out
    end

    it("create_index returns the index name MongoDB would give, and sends the options", function()
      assert.are.equal("email_1", coll:create_index({ email = 1 }, { unique = true }))
      assert.are.equal("by_n", coll:create_index({ { "n", -1 }, { "m", 1 } }, {
        name = "by_n", sparse = true, partial_filter_expression = { n = { ["$gt"] = 0 } },
        comment = "c", write_concern = { w = 1 } }))
      local cmd = sent("createIndexes")[2].command
      assert.are.same({ name = "by_n", key = { n = -1, m = 1 }, sparse = true,
        partialFilterExpression = { n = { ["$gt"] = 0 } } }, cmd.indexes[1])
      assert.are.same({ "c", 1 }, { cmd.comment, cmd.writeConcern.w })
      assert.are.same({ "_id_", "by_n", "email_1" }, names())
    end)

    it("a unique index is enforced", function()
      coll:create_index({ email = 1 }, { unique = true })
      coll:insert_one { email = "a@b" }
      local err = catch(coll.insert_one, coll, { email = "a@b" })
      assert.are.equal("DuplicateKey", err.name)
    end)

    it("create_indexes creates several and returns their names", function()
      assert.are.same({ "a_1", "b_-1_c_1", "t" }, coll:create_indexes {
        { keys = { a = 1 } },
        { keys = x.ordered { { "b", -1 }, { "c", 1 } } },
        { keys = { t = 1 }, name = "t", expire_after_seconds = 60 },
      })
      assert.are.equal(1, #sent("createIndexes"))
      assert.are.same({ "_id_", "a_1", "b_-1_c_1", "t" }, names())
      assert.are.same({}, coll:create_indexes {})
      assert.are.equal(1, #sent("createIndexes"))
    end)

    it("list_indexes of a collection that does not exist is empty", function()
      assert.are.same({}, db:collection("none"):list_indexes())
    end)

    it("drop_index drops one, drop_indexes all but _id's", function()
      coll:create_indexes { { keys = { a = 1 } }, { keys = { b = 1 } }, { keys = { c = 1 } } }
      assert.is_true(coll:drop_index("b_1"))
      assert.are.same({ "_id_", "a_1", "c_1" }, names())
      assert.is_true(coll:drop_indexes())
      assert.are.same({ "_id_" }, names())
      assert.are.equal("IndexNotFound", catch(coll.drop_index, coll, "b_1").name)
    end)

    it("create_index in a transaction on a new collection (MongoDB 4.4+): appears at commit", function()
      local fresh = db:collection("fresh")
      client:transaction(function()
        fresh:create_index({ k = 1 }, { name = "k" })
        assert.are.same({}, fresh:list_indexes { session = false })
      end)
      local n = {}
      for i, ix in ipairs(fresh:list_indexes()) do n[i] = ix.name end
      assert.are.same({ "_id_", "k" }, sorted(n))
      assert.is_truthy(sent("createIndexes")[1].command.txnNumber)
    end)

    it("list_indexes in a transaction: the server refuses listIndexes there", function()
      local err = catch(client.transaction, client, function() coll:list_indexes() end)
      assert.are.equal("OperationNotSupportedInTransaction", err.name)
    end)

    local bad = {
      { "keys that are not a table", function() coll:create_index("a") end, "keys must be a table" },
      { "empty keys", function() coll:create_index({}) end, "keys must name at least one field" },
      { "an unknown index option", function() coll:create_index({ a = 1 }, { uniqe = true }) end,
        "create_index: unknown option 'uniqe'" },
      { "an index without keys", function() coll:create_indexes { { name = "x" } } end,
        "create_indexes: indexes[1]: keys must be a table" },
      { "an index that is not a table", function() coll:create_indexes { "a" } end,
        "create_indexes: indexes[1] must be a table" },
      { "an unknown option in an index", function() coll:create_indexes { { keys = { a = 1 }, wc = 1 } } end,
        "create_indexes: indexes[1]: unknown option 'wc'" },
      { "drop_index(\"*\")", function() coll:drop_index("*") end, "use drop_indexes()" },
      { "a bad option value", function() coll:create_index({ a = 1 }, { unique = "yes" }) end,
        "option 'unique' must be a boolean" },
    }
    for _, case in ipairs(bad) do
      it("refuses " .. case[1] .. ", sending nothing", function()
        local err = catch(case[2])
        assert.are.equal("argument", err.phase)
        assert.matches(case[3], err.message, 1, true)
        assert.are.same({}, sent("createIndexes"))
        assert.are.same({}, sent("dropIndexes"))
      end)
    end
  end)

  describe("drop", function()
    it("drops the collection: true, and false when there was none", function()
      coll:insert_one {}
      assert.is_true(coll:drop())
      assert.are.same({}, db:list_collection_names())
      assert.is_false(coll:drop())
    end)

    it("in a transaction: the server refuses drop there", function()
      coll:insert_one {}
      local err = catch(client.transaction, client, function() coll:drop() end)
      assert.are.equal("OperationNotSupportedInTransaction", err.name)
      assert.are.same({ "items" }, db:list_collection_names())
    end)

    it("outside the transaction on purpose with session = false", function()
      coll:insert_one {}
      client:transaction(function() assert.is_true(coll:drop { session = false }) end)
      assert.are.same({}, db:list_collection_names())
    end)
  end)

  describe("the safe variant", function()
    it("covers Database objects and the new methods", function()
      local safe = require "xdbtx.safe"
      local sc = safe.client(env.uri(), { app_name = "api" })
      local sdb = sc:database(DB)
      assert.are.equal(DB, sdb:name())
      local scoll = sdb:collection("items")
      assert.is_true(scoll:insert_one({ _id = 1 }) ~= nil)
      local r, err = scoll:bulk_write { { insert_one = { document = { _id = 1 } } } }
      assert.is_nil(r)
      assert.are.same({ "DuplicateKey", 1 }, { err.name, err.write_errors[1].index })
      local ok, derr = scoll:drop_index("none")
      assert.is_nil(ok)
      assert.are.equal("IndexNotFound", derr.name)
      assert.are.same({ 1 }, scoll:distinct("_id"))
      assert.is_true(sdb:drop())
    end)
  end)
end)
