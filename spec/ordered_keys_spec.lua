-- Order-sensitive tables: a sort, a hint, index keys and a command are
-- documents whose key order matters, and a plain Lua table with several keys
-- has none. In every such place a plain table with more than one key is an
-- error naming the option; xdbtx.ordered{...} and a list of pairs
-- { { "b", 1 }, { "a", -1 } } give the order, which the command sent keeps
-- (read back from command monitoring, decoded in order). Against the test
-- server (or XDBTX_TEST_URI).
local env = require "spec.support.env"

local catch = env.catch

describe("order-sensitive tables", function()
  local why = env.server_reason()
  if why then pending(why) return end

  local x, client, coll, started, off
  local DB = "xdbtx_ordered_keys"

  before_each(function()
    x = require "xdbtx"
    client = x.client(env.uri(), { app_name = "ordered_keys" })
    coll = client:collection(DB, "docs")
    coll:drop()
    coll:insert_many { { _id = 1, a = 1, b = 2 }, { _id = 2, a = 2, b = 1 } }
    started = {}
    off = client:on_command(function(ev)
      if ev.type == "started" then started[#started + 1] = ev end
    end)
  end)

  after_each(function()
    off()
  end)

  -- The keys, in order, of an xdbtx.ordered value (decoded with ordered = true).
  local function keys(o)
    local out = {}
    for i = 1, #o do out[i] = rawget(o, 2 * i - 1) end
    return out
  end

  -- The last command named `name` that was sent, decoded with its key order.
  local function last(name)
    for i = #started, 1, -1 do
      if started[i].command_name == name then
        return x.decode(started[i].bson, { ordered = true })
      end
    end
    error("no " .. name .. " command was sent", 0)
  end

  -- Each place: run(v) sends v as the order-sensitive document; sent(cmd)
  -- finds it in the command `command`; `option` is how errors name it.
  local places = {
    { "find sort", "find", "option 'sort'",
      function(v) coll:find({}, { sort = v }):all() end, function(c) return c.sort end },
    { "find_one_and_update sort", "findAndModify", "option 'sort'",
      function(v) coll:find_one_and_update({}, { ["$set"] = { c = 1 } }, { sort = v }) end,
      function(c) return c.sort end },
    { "find hint", "find", "option 'hint'",
      function(v) coll:find({}, { hint = v }):all() end, function(c) return c.hint end },
    { "count_documents hint", "aggregate", "option 'hint'",
      function(v) coll:count_documents({}, { hint = v }) end, function(c) return c.hint end },
    { "bulk_write request hint", "delete", "option 'hint'",
      function(v) coll:bulk_write { { delete_one = { filter = { _id = 9 }, hint = v } } } end,
      function(c) return c.deletes[1].hint end },
    { "create_index keys", "createIndexes", "keys",
      function(v) coll:create_index(v) end, function(c) return c.indexes[1].key end },
    { "create_indexes keys", "createIndexes", "indexes[1]: keys",
      function(v) coll:create_indexes { { keys = v } } end, function(c) return c.indexes[1].key end },
  }

  for _, p in ipairs(places) do
    local name, command, option, run, sent = p[1], p[2], p[3], p[4], p[5]

    it(name .. ": a plain table with two keys is an error naming " .. option .. ", nothing sent", function()
      local err = catch(run, { b = 1, a = -1 })
      assert.is_true(x.is_error(err))
      assert.are.equal("argument", err.phase)
      assert.matches(option .. " is a plain table with 2 keys", err.message, 1, true)
      assert.matches("xdbtx.ordered", err.message, 1, true)
      assert.are.same({}, started)
    end)

    for _, order in ipairs { { "b", "a" }, { "a", "b" } } do
      local function pairs_of()
        return { { order[1], 1 }, { order[2], -1 } }
      end
      it(name .. ": xdbtx.ordered keeps the order " .. table.concat(order, ", "), function()
        run(x.ordered(pairs_of()))
        assert.are.same(order, keys(sent(last(command))))
      end)
      it(name .. ": a list of pairs keeps the order " .. table.concat(order, ", "), function()
        run(pairs_of())
        assert.are.same(order, keys(sent(last(command))))
      end)
    end

    it(name .. ": a plain table with one key needs no order", function()
      run({ a = 1 })
      assert.are.same({ "a" }, keys(sent(last(command))))
    end)
  end

  it("a sort given in order sorts in that order", function()
    local function firsts(sort)
      local out = {}
      for i, d in ipairs(coll:find({}, { sort = sort }):all()) do out[i] = d._id end
      return out
    end
    assert.are.same({ 1, 2 }, firsts { { "a", 1 }, { "b", 1 } })
    assert.are.same({ 2, 1 }, firsts { { "b", 1 }, { "a", 1 } })
  end)

  -- Commands: the command name must come first.
  local commands = {
    { "client:command", function(cmd) return client:command(DB, cmd) end },
    { "db:command", function(cmd) return client:database(DB):command(cmd) end },
  }
  for _, c in ipairs(commands) do
    local name, run = c[1], c[2]

    it(name .. ": a plain table with two keys is an error naming the command", function()
      local err = catch(run, { count = "docs", query = { a = 1 } })
      assert.are.equal("argument", err.phase)
      assert.matches("command: command is a plain table with 2 keys", err.message, 1, true)
      assert.are.same({}, started)
    end)

    it(name .. ": xdbtx.ordered and a list of pairs keep the order (name first)", function()
      for _, cmd in ipairs {
        x.ordered { { "count", "docs" }, { "query", { a = 1 } }, { "limit", 5 } },
        { { "count", "docs" }, { "query", { a = 1 } }, { "limit", 5 } },
      } do
        assert.are.equal(1, run(cmd).n)
        local sent = keys(last("count"))
        assert.are.same({ "count", "query", "limit" }, { sent[1], sent[2], sent[3] })
      end
    end)

    it(name .. ": a plain table with one key needs no order", function()
      assert.are.equal(2, run({ count = "docs" }).n)
    end)
  end

  -- An ordered document is also what decode and from_json give with
  -- { ordered = true }: fields assigned to it are sent, in their place.
  it("fields assigned to an ordered document are stored, in order", function()
    local doc = x.from_json('{"_id": 3, "name": "widget", "qty": 1}', { ordered = true })
    doc.qty = 5
    doc.note = "restock"
    assert.are.equal(3, coll:insert_one(doc).inserted_id)
    assert.are.same({ _id = 3, name = "widget", qty = 5, note = "restock" }, coll:find_one({ _id = 3 }))
    assert.are.same({ "_id", "name", "qty", "note" }, keys(last("insert").documents[1]))
  end)

  -- Two _id fields would make insert_one report one and the server keep the other.
  it("xdbtx.ordered refuses a key given twice, before anything is sent", function()
    local err = catch(function()
      coll:insert_one(x.ordered { { "_id", 8 }, { "_id", 9 }, { "v", 1 } })
    end)
    assert.are.equal("encode", err.phase)
    assert.are.equal("xdbtx.ordered: key '_id' appears twice (entries 1 and 2)", err.message)
    assert.are.same({}, started)
  end)
end)
