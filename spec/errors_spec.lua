-- Errors: every failure xdbtx produces is an xdbtx.Error; user errors pass
-- through transactions unchanged; xdbtx.safe returns nil, err instead.

local env = require "support.env"

local catch = env.catch

describe("xdbtx.Error from the Lua layer (fake core)", function()
  local x, fake, client, coll

  before_each(function() x, fake, client, coll = env.fake_client("db.t") end)

  -- each case: a function that must fail, and the phase of its Error
  local cases = {
    { "bad uri type", function() x.client(42) end, "argument" },
    { "bad collection name", function() client:collection("x") end, "argument" },
    { "options not a table", function() coll:find_one({}, 5) end, "argument" },
    { "session option of the wrong type", function() coll:find_one({}, { session = 1 }) end, "argument" },
    { "unknown transaction option",
      function() client:transaction(function() end, { nope = 1 }) end, "argument" },
    { "transaction without a function", function() client:transaction() end, "argument" },
    { "unknown event", function() x.on("nope", print) end, "argument" },
    { "unknown hook op", function() coll:before("upsert", print) end, "argument" },
    { "rollback outside a transaction", function() x.rollback("r") end, "state" },
    { "on_commit outside client:transaction",
      function() client:start_session():on_commit(print) end, "state" },
  }
  for _, case in ipairs(cases) do
    it(case[1] .. " -> xdbtx.Error, phase " .. case[3], function()
      local err = catch(case[2])
      assert.is_true(x.is_error(err))
      assert.are.equal(case[3], err.phase)
      assert.is_string(err.message)
      assert.is_table(err.labels)
      assert.is_false(err:has_label("TransientTransactionError"))
      local line = tostring(err)
      assert.matches("^xdbtx.Error", line)
      assert.is_nil(line:find("\n"))
    end)
  end

  it("server errors keep code, name, labels, phase", function()
    fake.fail("insert", { code = 112, name = "WriteConflict", labels = { "TransientTransactionError" } })
    local err = catch(coll.insert_one, coll, { _id = 1 })
    assert.are.equal(112, err.code)
    assert.are.equal("WriteConflict", err.name)
    assert.is_true(err:has_label("TransientTransactionError"))
  end)

  it("user errors raised in a transaction are re-raised unchanged (strings too)", function()
    local t = {}
    assert.are.equal(t, catch(client.transaction, client, function() error(t) end))
    assert.are.equal("plain", catch(client.transaction, client, function() error("plain", 0) end))
  end)
end)

describe("xdbtx.safe (fake core) #luajit", function()
  local x, fake, safe, client, coll

  before_each(function()
    x, fake = env.fake()
    package.loaded.xdbtx = x
    package.loaded["xdbtx.safe"] = nil
    safe = require "xdbtx.safe"
    package.loaded.xdbtx, package.loaded["xdbtx.safe"] = nil, nil
    client = safe.client("mongodb://fake")
    coll = client:collection("db.t")
  end)

  it("re-exports values and returns nil, err from functions", function()
    assert.are.equal(x.null, safe.null)
    local r, err = safe.client(42)
    assert.is_nil(r)
    assert.is_true(x.is_error(err))
    local off, e2 = safe.on("nope", print)
    assert.is_nil(off)
    assert.are.equal("argument", e2.phase)
  end)

  it("wraps methods of clients, collections, sessions and cursors", function()
    assert.are.same({ inserted_id = 1 }, coll:insert_one { _id = 1 })
    local r, err = coll:insert_one { _id = 1 }
    assert.is_nil(r)
    assert.are.equal(11000, err.code)
    local r2, err2 = coll:find_one({}, { nope = true, session = 3 })
    assert.is_nil(r2)
    assert.are.equal("argument", err2.phase)
    local ids = {}
    for doc in coll:find {} do ids[#ids + 1] = doc._id end
    assert.are.same({ 1 }, ids)
    assert.are.equal(1, #coll:find({}):all())
    local s = client:start_session()
    local ok, e3 = s:commit()
    assert.is_nil(ok)
    assert.is_true(x.is_error(e3))
    assert.are.equal(s, s:start_transaction()) -- returns the session, for chaining
    assert.is_true(coll:insert_one({ _id = 2 }, { session = s }) ~= nil)
    assert.is_true(s:abort())
    assert.are.equal(1, coll:count_documents {})
  end)

  it("transaction: results, nil + err, and a quiet rollback's nil, reason", function()
    assert.are.equal("v", client:transaction(function(s) return "v" end))
    local r, err = client:transaction(function() error("mine", 0) end)
    assert.is_nil(r)
    assert.are.equal("mine", err)
    local r2, why = client:transaction(function(s)
      assert(coll:insert_one { _id = 5 })
      safe.rollback("why not")
    end)
    assert.is_nil(r2)
    assert.are.equal("why not", why)
    assert.are.equal(0, coll:count_documents {})
  end)

  it("the session given to the function is safe, and usable as an option", function()
    client:transaction(function(s)
      local ok, err = s:on_commit(42)
      assert.is_nil(ok)
      assert.are.equal("argument", err.phase)
      assert(coll:insert_one({ _id = 3 }, { session = s }))
    end)
    assert.are.equal(1, coll:count_documents {})
  end)

  it("sandbox works through the safe module", function()
    local v = safe.sandbox(client, function(s)
      assert(coll:insert_one { _id = 1 })
      return coll:count_documents {}
    end)
    assert.are.equal(1, v)
    assert.are.equal(0, coll:count_documents {})
  end)
end)

describe("errors against the test server", function()
  local why = env.server_reason()
  if why then pending(why) return end

  local x = require "xdbtx"
  local DB = "xdbtx_errors_spec"

  it("a duplicate key is an xdbtx.Error with code, name, phase, reply", function()
    local client = x.client(env.uri())
    local coll = env.clean_collection(client, DB, "t")
    coll:insert_one { _id = 1 }
    local err = catch(coll.insert_one, coll, { _id = 1 })
    assert.is_true(x.is_error(err))
    assert.are.equal(11000, err.code)
    assert.are.equal("operation", err.phase)
    assert.matches("E11000", err.message)
    assert.is_false(err:has_label("TransientTransactionError"))
  end)

  it("xdbtx.safe returns nil, err for a server error", function()
    local safe = require "xdbtx.safe"
    local client = safe.client(env.uri())
    local coll = env.clean_collection(client, DB, "t")
    assert(coll:insert_one { _id = 1 })
    local r, err = coll:insert_one { _id = 1 }
    assert.is_nil(r)
    assert.are.equal(11000, err.code)
  end)
end)
