-- Argument shapes: values whose shape the binding checks before anything is
-- sent (lists of pairs for order-sensitive documents, aggregate pipelines,
-- array_filters), errors that name the element at fault (insert_many), and
-- a cursor that failed, which never reads as an empty result afterwards.
-- Each case was seen to fail with its fix taken out. Against the test
-- server (or XDBTX_TEST_URI).
local env = require "spec.support.env"

local catch = env.catch

describe("argument shapes", function()
  local why = env.server_reason()
  if why then pending(why) return end

  local x, client, coll
  local DB = "xdbtx_argument_shapes"

  before_each(function()
    x = require "xdbtx"
    client = x.client(env.uri(), { app_name = "argument_shapes" })
    coll = env.clean_collection(client, DB .. ".docs")
    for i = 1, 5 do coll:insert_one { _id = i, a = i % 2, b = i } end
  end)

  -- The commands client sent while f ran.
  local function sent(f) return env.sent(client, DB, f) end

  -- f raises an argument error whose message is exactly `message`, with
  -- nothing sent.
  local function refused(message, f)
    local names, ok, err = sent(f)
    assert.is_false(ok, "expected: " .. message)
    assert.is_true(x.is_error(err), tostring(err))
    assert.are.equal("argument", err.phase)
    assert.are.equal("argument", err.domain)
    assert.are.equal(message, err.message)
    assert.are.same({}, names)
  end

  local ids = env.ids

  describe("a list of pairs is taken whole or refused", function()
    local cases = {
      { "a sort with a key beside the pairs",
        "find: option 'sort': a list of pairs has a key other than 1..n ('b')",
        function() coll:find({}, { sort = { { "a", 1 }, b = -1 } }):all() end },
      { "a sort pair with a third element",
        "find: option 'sort': entry 1 must be a pair { key, value }, got 3 elements",
        function() coll:find({}, { sort = { { "a", 1, "junk" } } }):all() end },
      { "a sort pair with one element",
        "find: option 'sort': entry 1 must be a pair { key, value }, got 1 element",
        function() coll:find({}, { sort = { { "a" } } }):all() end },
      { "a sort pair with a named field",
        "find: option 'sort': entry 1 must be a pair { key, value }, got a table with key 'x'",
        function() coll:find({}, { sort = { { "a", 1, x = 1 } } }):all() end },
      { "a holed list of pairs",
        "find: option 'sort': a list of pairs has a key other than 1..n (3)",
        function() coll:find({}, { sort = { { "a", 1 }, [3] = { "b", 1 } } }):all() end },
      { "a list of pairs with a non-pair entry",
        "find: option 'sort': entry 2 must be a pair { key, value }, got number",
        function() coll:find({}, { sort = { { "a", 1 }, 5 } }):all() end },
      { "a pair whose key is not a string",
        "find: option 'sort': entry 1 must be a pair { key, value } with a string key, got a number key",
        function() coll:find({}, { sort = { { 1, 1 } } }):all() end },
      { "find_one_and_update's sort",
        "find_one_and_update: option 'sort': a list of pairs has a key other than 1..n ('b')",
        function() coll:find_one_and_update({}, { ["$set"] = { c = 1 } }, { sort = { { "a", 1 }, b = -1 } }) end },
      { "a hint given as pairs",
        "find: option 'hint': a list of pairs has a key other than 1..n ('b')",
        function() coll:find({}, { hint = { { "a", 1 }, b = 1 } }):all() end },
      { "a command with a field beside the pairs",
        "command: command: a list of pairs has a key other than 1..n ('query')",
        function() client:command(DB, { { "count", "docs" }, query = { a = 1 } }) end },
      { "index keys with a key beside the pairs",
        "create_index: keys: a list of pairs has a key other than 1..n ('b')",
        function() coll:create_index({ { "a", 1 }, b = -1 }) end },
      { "index keys with a pair of three",
        "create_index: keys: entry 2 must be a pair { key, value }, got 3 elements",
        function() coll:create_index({ { "a", 1 }, { "b", -1, "c" } }) end },
    }
    for _, case in ipairs(cases) do
      it("refuses " .. case[1], function() refused(case[2], case[3]) end)
    end

    it("refuses a pair whose key has a NUL byte (C would cut it there)", function()
      local names, ok, err = sent(function() coll:find({}, { sort = { { "a\0b", 1 } } }):all() end)
      assert.is_false(ok)
      assert.are.equal("encode", err.phase)
      assert.are.equal("find: option 'sort': entry 1: key contains a NUL byte", err.message)
      assert.are.same({}, names)
    end)

    it("sends every pair of a well-formed list, in order", function()
      assert.are.same({ 4, 2, 5, 3, 1 },
        ids(coll:find({}, { sort = { { "a", 1 }, { "b", -1 } } }):all()))
      assert.are.equal(3, client:command(DB, { { "count", "docs" }, { "query", { a = 1 } } }).n)
      assert.are.equal("a_1_b_-1", coll:create_index({ { "a", 1 }, { "b", -1 } }))
    end)
  end)

  describe("aggregate takes a list of stage documents", function()
    local cases = {
      { "a single stage not in a list",
        "aggregate: pipeline must be a list of stages, got a table with key '$match'",
        function() return { ["$match"] = { a = 1 } } end },
      { "a number", "aggregate: pipeline must be a list of stages, got number",
        function() return 5 end },
      { "nil", "aggregate: pipeline must be a list of stages, got nil",
        function() return nil end },
      { "an ordered document",
        "aggregate: pipeline must be a list of stages, got a document",
        function() return x.ordered { { "$match", {} } } end },
      { "a list with a named key",
        "aggregate: pipeline must be a list of stages, got a table with key 'x'",
        function() return { { ["$match"] = {} }, x = 1 } end },
      { "a holed list",
        "aggregate: pipeline must be a list of stages, got a table with key 3",
        function() return { { ["$match"] = {} }, [3] = { ["$match"] = {} } } end },
      { "a stage that is a number", "aggregate: pipeline[1] must be a document, got number",
        function() return { 5 } end },
      { "a second stage that is a number", "aggregate: pipeline[2] must be a document, got number",
        function() return { { ["$match"] = {} }, 5 } end },
      { "a stage that is a list", "aggregate: pipeline[2] must be a document, got a list",
        function() return { { ["$match"] = {} }, { { ["$match"] = {} } } } end },
      { "an array_mt list of numbers", "aggregate: pipeline[1] must be a document, got number",
        function() return setmetatable({ 1 }, x.array_mt) end },
    }
    for _, case in ipairs(cases) do
      it("refuses " .. case[1], function()
        local p = case[3]()
        refused(case[2], function() return coll:aggregate(p):all() end)
      end)
    end

    it("takes an empty table, plain or array_mt, as the empty pipeline", function()
      assert.are.equal(5, #coll:aggregate({}):all())
      assert.are.equal(5, #coll:aggregate(setmetatable({}, x.array_mt)):all())
    end)

    it("runs a list of stages", function()
      assert.are.same({ 1, 3, 5 },
        ids(coll:aggregate({ { ["$match"] = { a = 1 } }, { ["$sort"] = { _id = 1 } } }):all()))
    end)
  end)

  describe("array_filters is a list of documents", function()
    local set = { ["$set"] = { ["arr.$[e].x"] = 9 } }
    local cases = {
      { "a document", "update_one: option 'array_filters' must be a list of documents, got a table with key 'a'",
        function() coll:update_one({}, set, { array_filters = { a = 1 } }) end },
      { "a number", "update_many: option 'array_filters' must be a list of documents, got 5",
        function() coll:update_many({}, set, { array_filters = 5 }) end },
      { "a list holding a number", "update_one: option 'array_filters'[2] must be a document, got number",
        function() coll:update_one({}, set, { array_filters = { { e = 1 }, 5 } }) end },
      { "a holed list", "update_one: option 'array_filters' must be a list of documents, got a table with key 3",
        function() coll:update_one({}, set, { array_filters = { { e = 1 }, [3] = { e = 2 } } }) end },
      { "what __tobson makes a list of numbers",
        "update_one: option 'array_filters'[1] must be a document, got number",
        function()
          local v = setmetatable({}, { __tobson = function() return { 1 } end })
          coll:update_one({}, set, { array_filters = v })
        end },
      { "a document, in find_one_and_update",
        "find_one_and_update: option 'array_filters' must be a list of documents, got a table with key 'b'",
        function() coll:find_one_and_update({}, set, { array_filters = { b = 2 } }) end },
      { "a list of numbers, in bulk_write",
        "bulk_write: requests[1].update_one: option 'array_filters'[1] must be a document, got number",
        function()
          coll:bulk_write { { update_one = { filter = {}, update = set, array_filters = { 1 } } } }
        end },
    }
    for _, case in ipairs(cases) do
      it("refuses " .. case[1], function() refused(case[2], case[3]) end)
    end

    it("applies a list of filters, and takes {} as the empty list", function()
      coll:insert_one { _id = 10, arr = { { x = 1 }, { x = 2 } } }
      local r = coll:update_one({ _id = 10 }, set, { array_filters = { { ["e.x"] = 2 } } })
      assert.are.equal(1, r.modified_count)
      assert.are.same({ { x = 1 }, { x = 9 } }, coll:find_one({ _id = 10 }).arr)
      r = coll:update_one({ _id = 10 }, { ["$set"] = { y = 1 } }, { array_filters = {} })
      assert.are.equal(1, r.modified_count)
    end)
  end)

  describe("insert_many names the document it cannot encode", function()
    it("documents[i] of a long list", function()
      local docs = {}
      for i = 1, 1000 do docs[i] = { n = i } end
      docs[737].price = print
      local names, ok, err = sent(function() coll:insert_many(docs) end)
      assert.is_false(ok)
      assert.are.equal("encode", err.phase)
      assert.are.equal("insert_many: documents[737]: doc.price: cannot encode a function", err.message)
      assert.are.same({}, names)
      assert.are.equal(5, coll:count_documents {})
    end)

    it("documents[i] that is not a table", function()
      refused("insert_many: documents[2] must be a table, got number",
        function() coll:insert_many { { n = 1 }, 5 } end)
    end)

    it("documents[i] with hooks too", function()
      local unhook = coll:before("insert", function() end)
      local err = catch(coll.insert_many, coll, { { n = 1 }, { n = 2 }, { f = print } })
      unhook()
      assert.are.equal("insert_many: documents[3]: doc.f: cannot encode a function", err.message)
    end)
  end)

  describe("a cursor that failed keeps failing", function()
    -- A cursor whose transaction ended after it read one of ten documents.
    local function stale_cursor()
      for i = 6, 10 do coll:insert_one { _id = i } end
      local cur
      client:transaction(function()
        cur = coll:find({}, { batch_size = 2 })
        cur:next()
      end)
      return cur
    end

    local function is_closed_error(err)
      assert.is_true(x.is_error(err), tostring(err))
      assert.are.equal("state", err.phase)
      assert.are.equal("cursor is closed", err.message)
    end

    it("every read after the first error raises it again", function()
      local cur = stale_cursor()
      is_closed_error(catch(cur.next, cur))
      is_closed_error(catch(cur.all, cur))
      is_closed_error(catch(cur.all, cur))
      is_closed_error(catch(cur.next, cur))
      is_closed_error(catch(cur))
    end)

    it("also when all() failed first, and after an explicit close", function()
      local cur = stale_cursor()
      is_closed_error(catch(cur.all, cur))
      is_closed_error(catch(cur.next, cur))
      cur:close()
      is_closed_error(catch(cur.next, cur))
      is_closed_error(catch(cur.all, cur))
      is_closed_error(catch(function() for _ in cur do end end))
    end)

    it("each raise hands out its own Error", function()
      local cur = stale_cursor()
      local e1 = catch(cur.next, cur)
      e1.phase = "changed"
      local e2 = catch(cur.next, cur)
      assert.are_not.equal(e1, e2)
      is_closed_error(e2)
    end)

    it("a cursor that ended or was closed without error still reads as empty", function()
      local cur = coll:find {}
      assert.are.equal(5, #cur:all())
      assert.is_nil(cur:next())
      assert.are.same({}, cur:all())
      cur = coll:find {}
      cur:next()
      cur:close()
      assert.is_nil(cur:next())
      assert.are.same({}, cur:all())
    end)
  end)
end)
