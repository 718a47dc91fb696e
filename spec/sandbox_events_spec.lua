-- Fixtures and events: xdbtx.sandbox(client, fn) always aborts; xdbtx.on
-- reports start / retry / commit / abort with timings and returns an
-- unsubscribe function; client:on_command exposes command monitoring.

local env = require "support.env"

local catch = env.catch

describe("sandbox and events (fake core) #luajit", function()
  local x, fake, client, coll

  before_each(function() x, fake, client, coll = env.fake_client("db.t") end)

  it("sandbox returns fn's results and leaves nothing behind", function()
    local a, b = x.sandbox(client, function(s)
      coll:insert_one { _id = 1 }
      return coll:count_documents {}, "b"
    end)
    assert.are.same({ 1, "b" }, { a, b })
    assert.are.equal(0, coll:count_documents {})
    assert.is_false(x.in_transaction())
  end)

  it("sandbox re-raises errors after the abort; rollback gives nil, reason", function()
    local mine = {}
    assert.are.equal(mine, catch(x.sandbox, client, function() coll:insert_one { _id = 1 } error(mine) end))
    assert.are.equal(0, coll:count_documents {})
    local r, why = x.sandbox(client, function() x.rollback("because") end)
    assert.is_nil(r)
    assert.are.equal("because", why)
  end)

  it("code under test that opens a transaction joins the sandbox: nothing commits", function()
    x.sandbox(client, function()
      local v = client:transaction(function() coll:insert_one { _id = 1 } return "inner" end)
      assert.are.equal("inner", v)
      assert.are.equal(1, coll:count_documents {})
    end)
    assert.are.equal(0, coll:count_documents {})
    for _, l in ipairs(fake.log) do assert.are_not.equal("commitTransaction", l.name) end
  end)

  it("on_rollback callbacks run after a sandbox; on_commit ones never", function()
    local log = {}
    x.sandbox(client, function(s)
      s:on_commit(function() log[#log + 1] = "commit" end)
      s:on_rollback(function() log[#log + 1] = "rollback" end)
    end)
    assert.are.same({ "rollback" }, log)
  end)

  it("xdbtx.on: events carry client, attempt, elapsed; unsubscribe stops them", function()
    local seen = {}
    local off = x.on("commit", function(ev) seen[#seen + 1] = ev end)
    client:transaction(function() coll:insert_one { _id = 1 } end)
    assert.is_true(off())
    client:transaction(function() coll:insert_one { _id = 2 } end)
    assert.are.equal(1, #seen)
    assert.are.equal("commit", seen[1].event)
    assert.are.equal("mongodb://fake", seen[1].client)
    assert.are.equal(1, seen[1].attempt)
    assert.is_number(seen[1].elapsed)
    assert.is_number(seen[1].duration)
    assert.is_false(off())
  end)

  it("abort events carry the error; listener errors are reported, not raised", function()
    local seen
    local w = warn
    local warned
    _G.warn = function(m) warned = m end
    local off1 = x.on("abort", function() error("listener bug") end)
    local off2 = x.on("abort", function(ev) seen = ev end)
    local mine = {}
    assert.are.equal(mine, catch(client.transaction, client, function() error(mine) end))
    off1()
    off2()
    _G.warn = w
    assert.are.equal(mine, seen.error)
    assert.matches("listener bug", warned)
  end)
end)

describe("sandbox and events against the test server", function()
  local why = env.server_reason()
  if why then pending(why) return end

  local x = require "xdbtx"
  local DB = "xdbtx_sandbox_events_spec"
  local client, coll

  before_each(function()
    client = x.client(env.uri())
    coll = env.clean_collection(client, DB, "t")
  end)

  after_each(function() env.failpoints_off(client) end)

  it("sandbox: the function sees its writes, nothing is left behind", function()
    local seen = x.sandbox(client, function(s)
      coll:insert_one { _id = 1 }
      client:transaction(function() coll:insert_one { _id = 2 } end)
      return coll:count_documents {}
    end)
    assert.are.equal(2, seen)
    assert.are.equal(0, coll:count_documents {})
  end)

  it("sandbox re-raises the function's error after aborting", function()
    local err = catch(x.sandbox, client, function()
      coll:insert_one { _id = 1 }
      coll:insert_one { _id = 1 }
    end)
    assert.are.equal(11000, err.code)
    assert.are.equal(0, coll:count_documents {})
  end)

  it("events follow a retried transaction: start, retry, start, commit", function()
    env.failpoint(client, { times = 1 }, { failCommands = { "insert" }, errorCode = 112 })
    local seen, offs = {}, {}
    for _, e in ipairs { "start", "retry", "commit", "abort" } do
      offs[#offs + 1] = x.on(e, function(ev) seen[#seen + 1] = ev.event end)
    end
    client:transaction(function() coll:insert_one { _id = 1 } end)
    for _, off in ipairs(offs) do off() end
    assert.are.same({ "start", "retry", "start", "commit" }, seen)
  end)

  it("command listeners belong to the pool: another Client object of the URI feeds them", function()
    local names = {}
    local off = client:on_command(function(ev)
      if ev.type == "started" then names[#names + 1] = ev.command_name end
    end)
    x.client(env.uri()):collection(DB, "t"):insert_one { _id = 5 }
    off()
    assert.are.same({ "insert" }, names)
    coll:insert_one { _id = 6 }
    assert.are.same({ "insert" }, names)
  end)

  it("client:on_command sees insert, commitTransaction in order, with the session's lsid", function()
    local names, lsids = {}, {}
    local off = client:on_command(function(ev)
      if ev.type == "started" and (ev.command_name == "insert" or ev.command_name == "commitTransaction") then
        names[#names + 1] = ev.command_name
        lsids[#lsids + 1] = ev.command.lsid
      end
    end)
    local lsid
    client:transaction(function(s)
      lsid = s:id()
      coll:insert_one { _id = 1 }
    end)
    off()
    assert.are.same({ "insert", "commitTransaction" }, names)
    assert.is_table(lsid)
    assert.are.equal(lsid.id, lsids[1].id) -- the insert ran in the transaction's session
    assert.are.equal(lsid.id, lsids[2].id)
  end)
end)
