-- Hooks: coll:before(op, fn) / coll:after(op, fn) run around writes, inside
-- the operation's session; an error in a hook fails the operation, and so
-- the transaction. Arguments (s = the Session or nil):
--   insert                before(doc, s)            after(doc, {inserted_id}, s)  (each doc)
--   update                before(filter, update, s) after(filter, update, result, s)
--   replace               before(filter, doc, s)    after(filter, doc, result, s)
--   delete                before(filter, s)         after(filter, result, s)
--   find_one_and_update   before(filter, update, s) after(filter, update, doc, s)
--   find_one_and_replace  before(filter, doc, s)    after(filter, doc, doc, s)
--   find_one_and_delete   before(filter, s)         after(filter, doc, s)

local env = require "support.env"

local catch = env.catch

local function hook_cases(coll)
  -- op name, the call, the number of arguments before `s` in the before hook
  return {
    { "insert", function() coll:insert_one { _id = 1, n = 1 } end, 1 },
    { "update", function() coll:update_one({ _id = 1 }, { ["$set"] = { n = 2 } }) end, 2 },
    { "replace", function() coll:replace_one({ _id = 1 }, { n = 3 }) end, 2 },
    { "find_one_and_update",
      function() coll:find_one_and_update({ _id = 1 }, { ["$set"] = { n = 4 } }) end, 2 },
    { "find_one_and_replace", function() coll:find_one_and_replace({ _id = 1 }, { n = 5 }) end, 2 },
    { "find_one_and_delete", function() coll:find_one_and_delete({ _id = 1 }) end, 1 },
    { "delete", function() coll:delete_one({ _id = 1 }) end, 1 },
  }
end

describe("hooks (fake core) #luajit", function()
  local x, fake, client, coll

  before_each(function() x, fake, client, coll = env.fake_client("db.t") end)

  it("before/after insert get the doc, the result and the session", function()
    local seen = {}
    coll:before("insert", function(doc, s) doc.stamped = true seen[#seen + 1] = { "before", doc._id, s } end)
    coll:after("insert", function(doc, r, s) seen[#seen + 1] = { "after", r.inserted_id, s } end)
    local session
    client:transaction(function(s)
      session = s
      coll:insert_one { _id = 1 }
      coll:insert_many { { _id = 2 }, { _id = 3 } }
    end)
    assert.are.same({ "before", 1, session }, seen[1])
    assert.are.same({ "after", 1, session }, seen[2])
    assert.are.same({ "before", 2, session }, seen[3])
    assert.are.same({ "before", 3, session }, seen[4])
    assert.are.same({ "after", 3, session }, seen[6])
    assert.is_true(coll:find_one({ _id = 1 }).stamped)
  end)

  it("a hook's own writes join the transaction; a hook error rolls everything back", function()
    local audit = client:collection("db.audit")
    coll:after("insert", function(doc) audit:insert_one { of = doc._id } end)
    client:transaction(function() coll:insert_one { _id = 1 } end)
    assert.are.equal(1, audit:count_documents {})
    coll:before("insert", function(doc) if doc.bad then error("refused by hook", 0) end end)
    local err = catch(client.transaction, client, function()
      coll:insert_one { _id = 2 }
      coll:insert_one { _id = 3, bad = true }
    end)
    assert.are.equal("refused by hook", err)
    assert.are.equal(1, coll:count_documents {})
    assert.are.equal(1, audit:count_documents {})
  end)

  it("the unregister function removes a hook", function()
    local n = 0
    local off = coll:before("delete", function() n = n + 1 end)
    coll:delete_many {}
    assert.is_true(off())
    coll:delete_many {}
    assert.are.equal(1, n)
  end)
end)

describe("hooks against the test server", function()
  local why = env.server_reason()
  if why then pending(why) return end

  local x = require "xdbtx"
  local DB = "xdbtx_hooks_spec"
  local client, coll, audit

  before_each(function()
    -- a new Client object each test: hooks belong to its Collection objects
    client = x.client(env.uri())
    coll = env.clean_collection(client, DB, "items")
    audit = env.clean_collection(client, DB, "audit")
  end)

  it("every op kind calls its before and after hooks with the documented arguments", function()
    local calls = {}
    for _, case in ipairs(hook_cases(coll)) do
      local op = case[1]
      coll:before(op, function(...) calls[#calls + 1] = { op, "before", select("#", ...) } end)
      coll:after(op, function(...) calls[#calls + 1] = { op, "after", select("#", ...) } end)
    end
    client:transaction(function()
      for _, case in ipairs(hook_cases(coll)) do case[2]() end
    end)
    for i, case in ipairs(hook_cases(coll)) do
      local b, a = calls[2 * i - 1], calls[2 * i]
      assert.are.same({ case[1], "before", case[3] + 1 }, b)
      assert.are.same({ case[1], "after", case[3] + 2 }, a)
    end
  end)

  it("hook writes are part of the transaction and roll back with it", function()
    coll:after("insert", function(doc, r, s) audit:insert_one { of = r.inserted_id } end)
    local r, why2 = client:transaction(function()
      coll:insert_one { _id = 1 }
      x.rollback("no")
    end)
    assert.is_nil(r)
    assert.are.equal(0, audit:count_documents({}))
    client:transaction(function() coll:insert_one { _id = 1 } end)
    assert.are.equal(1, audit:count_documents({}))
  end)

  it("an error in a hook fails the operation and the transaction", function()
    coll:before("update", function(filter, update) error({ refused = true }) end)
    local err = catch(client.transaction, client, function()
      coll:insert_one { _id = 1 }
      coll:update_one({ _id = 1 }, { ["$set"] = { n = 1 } })
    end)
    assert.is_true(err.refused)
    assert.are.equal(0, coll:count_documents({}))
  end)
end)
