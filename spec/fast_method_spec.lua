-- Collection methods under Lua 5.4 are C closures (src/lfast.c) that run
-- the usual call themselves (no options, no hooks, no listeners, the
-- ambient session or none) and hand every other call to the Lua method.
-- Each case here is a condition the fast path must see exactly as the Lua
-- method does; under LuaJIT the methods are the Lua functions and the same
-- cases hold. Against the test server (or XDBTX_TEST_URI / _URI2).
local env = require "spec.support.env"

local catch = env.catch

describe("Collection methods: the fast path and its fallbacks", function()
  local why = env.server_reason()
  if why then pending(why) return end

  local x = require "xdbtx"
  local DB = "xdbtx_fast_method"
  local client, other, coll, seen_by_other

  before_each(function()
    client = x.client(env.uri(), { app_name = "fast_method" })
    other = x.client(os.getenv("XDBTX_TEST_URI2") or env.uri(), { app_name = "fast_method_2" })
    coll = env.clean_collection(client, DB, "docs")
    seen_by_other = client:collection(DB, "docs") -- the same namespace, read outside any transaction
  end)

  local function ids()
    local out = {}
    for d in seen_by_other:find({}, { session = false, sort = { _id = 1 } }) do out[#out + 1] = d._id end
    return out
  end

  it("under Lua 5.4 the methods are C closures", function()
    if _VERSION ~= "Lua 5.4" or not require("xdbtx.core").fast_method then return end
    for _, m in ipairs { "insert_one", "find_one", "update_one", "delete_one", "replace_one",
                         "find_one_and_update", "count_documents", "distinct" } do
      assert.are.equal("C", debug.getinfo(coll[m], "S").what, m)
    end
  end)

  it("without a transaction a write applies at once", function()
    coll:insert_one { _id = 1 }
    assert.are.same({ 1 }, ids())
  end)

  it("inside a transaction every operation runs in its session (and rolls back with it)", function()
    local found, n
    local ok, reason = client:transaction(function()
      coll:insert_one { _id = 1, n = 1 }
      coll:update_one({ _id = 1 }, { ["$inc"] = { n = 1 } })
      found = coll:find_one { _id = 1 }
      n = coll:count_documents {}
      assert.are.same({}, ids()) -- nothing visible outside yet
      x.rollback("checked")
    end)
    assert.is_nil(ok)
    assert.are.equal("checked", reason)
    assert.are.same({ _id = 1, n = 2 }, found)
    assert.are.equal(1, n)
    assert.are.same({}, ids())
  end)

  it("a coroutine of its own has no context; xdbtx.bind gives it the caller's", function()
    client:transaction(function()
      coroutine.wrap(function() coll:insert_one { _id = "outside" } end)()
      local bound = x.bind(function() coll:insert_one { _id = "inside" } end)
      coroutine.wrap(bound)()
      x.rollback()
    end)
    assert.are.same({ "outside" }, ids())
  end)

  it("options go to the Lua method: session = false runs outside the transaction", function()
    client:transaction(function()
      coll:insert_one({ _id = 1 }, { session = false })
      coll:insert_one({ _id = 2 }, {})
      x.rollback()
    end)
    assert.are.same({ 1 }, ids())
  end)

  it("arguments after the options are ignored, as by a Lua function", function()
    coll:insert_one({ _id = 1 }, nil, "extra", 3)
    assert.are.same({ _id = 1 }, coll:find_one({ _id = 1 }, nil, "extra"))
  end)

  it("a client the running transaction does not hold is refused (routing)", function()
    local oc = other:collection(DB, "docs")
    local err
    client:transaction(function()
      err = catch(oc.insert_one, oc, { _id = 1 })
      x.rollback()
    end)
    assert.are.equal("routing", err.phase)
    assert.matches("is not part of the running transaction", err.message, 1, true)
    assert.are.same({}, ids())
  end)

  it("after the body aborts its own transaction an ambient write raises", function()
    local err
    client:transaction(function(s)
      s:abort()
      err = catch(coll.insert_one, coll, { _id = 1 })
    end)
    assert.matches("ended by session:commit() or session:abort()", err.message, 1, true)
    assert.are.same({}, ids())
  end)

  it("a wrong self is an argument error naming the method", function()
    local err = catch(coll.insert_one, {}, { _id = 1 })
    assert.are.equal("argument", err.phase)
    assert.matches("collection:insert_one: expected a Collection as self", err.message, 1, true)
    err = catch(coll.update_one, nil, {}, {})
    assert.matches("collection:update_one: expected a Collection as self", err.message, 1, true)
    -- a look-alike with every field a Collection has, and another metatable
    local fake = setmetatable({ _client = coll._client, _core = coll._core, _hooks = coll._hooks }, {})
    err = catch(coll.find_one, fake, { _id = 1 })
    assert.matches("collection:find_one: expected a Collection as self", err.message, 1, true)
  end)

  it("hooks of another kind leave the call alone; hooks of its kind run", function()
    local log = {}
    local off = coll:before("update", function() log[#log + 1] = "update hook" end)
    coll:insert_one { _id = 1 }
    coll:update_one({ _id = 1 }, { ["$set"] = { a = 1 } })
    off()
    coll:update_one({ _id = 1 }, { ["$set"] = { a = 2 } })
    assert.are.same({ "update hook" }, log)
    assert.are.same({ _id = 1, a = 2 }, coll:find_one { _id = 1 })
  end)

  it("a hook may yield the coroutine the operation runs in", function()
    coll:before("insert", function(doc) doc.resumed = coroutine.yield("paused") end)
    local co = coroutine.create(function() return coll:insert_one { _id = 1 } end)
    local ok, v = coroutine.resume(co)
    assert.is_true(ok, tostring(v))
    assert.are.equal("paused", v)
    local ok2, r = coroutine.resume(co, true)
    assert.is_true(ok2, tostring(r))
    assert.are.same({ inserted_id = 1 }, r)
    assert.are.same({ _id = 1, resumed = true }, coll:find_one { _id = 1 })
  end)

  it("a command listener sees every operation, with its transaction", function()
    local started = {}
    local off = client:on_command(function(ev)
      if ev.type == "started" and ev.database_name == DB then
        started[#started + 1] = ev.command_name .. (ev.command.txnNumber and " in txn" or "")
      end
    end)
    client:transaction(function()
      coll:insert_one { _id = 1 }
      coll:find_one { _id = 1 }
    end)
    off()
    assert.are.same({ "insert in txn", "find in txn" }, started)
    assert.are.same({ 1 }, ids())
  end)

  it("a json_null client's results carry json_null", function()
    local jc = x.client(env.uri(), { json_null = true }):collection(DB, "docs")
    jc:insert_one { _id = 1, v = x.null }
    assert.are.equal(x.json_null, jc:find_one({ _id = 1 }).v)
  end)

  it("in a transaction tree each node's operations run in that node's session", function()
    local oc = other:collection(DB, "docs")
    oc:delete_many {}
    local tree = {
      client = client,
      action = function() coll:insert_one { _id = "root" } end,
      children = { {
        client = other,
        action = function()
          oc:insert_one { _id = "child" }
          error("the child fails")
        end,
      } },
    }
    local err = catch(x.run, tree)
    assert.matches("the child fails", tostring(err.message or err), 1, true)
    assert.are.same({}, ids())
    assert.are.equal(0, oc:count_documents({}, { session = false }))
  end)

  it("in saga mode a node's write applies at once", function()
    local during
    local out = x.run({
      client = client,
      action = function()
        coll:insert_one { _id = "saga" }
        during = ids()
      end,
      compensate = function() end,
    }, { mode = "saga" })
    assert.are.equal("committed", out.status)
    assert.are.same({ "saga" }, during)
  end)
end)
