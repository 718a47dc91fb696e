-- Default read concern, write concern and read preference, per client
-- (xdbtx.client(uri, opts): they belong to its pool, like the URI's own w=,
-- readConcernLevel=, readPreference=), per database (client:database(name,
-- opts)) and per collection (client:collection(db, name, opts),
-- db:collection(name, opts)). Every operation that sets none of its own uses
-- them; inside a transaction the transaction's options rule, and no write
-- concern is ever sent on a statement there. Commands are sent as written.
-- Checked in the commands sent (command monitoring). Against the test
-- server (or XDBTX_TEST_URI).
local env = require "spec.support.env"

local catch = env.catch

describe("defaults", function()
  local why = env.server_reason()
  if why then pending(why) return end

  local x, plain, started, offs
  local DB = "xdbtx_defaults"
  local MAJ = { w = "majority", wtimeout = 1000 }

  -- A client whose started commands are recorded in `started`.
  local function client(opts)
    opts = opts or {}
    opts.app_name = "defaults"
    local c = x.client(env.uri(), opts)
    offs[#offs + 1] = c:on_command(function(ev)
      if ev.type == "started" then started[#started + 1] = ev end
    end)
    return c
  end

  before_each(function()
    x = require "xdbtx"
    started, offs = {}, {}
    plain = client()
    plain:database(DB):drop()
    plain:collection(DB, "docs"):insert_one { _id = 1, k = "a" }
    started = {}
  end)

  after_each(function()
    for _, off in ipairs(offs) do off() end
  end)

  local function sent(name)
    for i = #started, 1, -1 do
      if started[i].command_name == name then return started[i].command end
    end
    error("no " .. name .. " command was sent", 0)
  end

  -- Writes and reads of a collection, with the command each sends.
  local writes = {
    { "insert_one", "insert", function(c) c:insert_one {} end },
    { "update_one", "update", function(c) c:update_one({ _id = 1 }, { ["$set"] = { u = 1 } }) end },
    { "delete_many", "delete", function(c) c:delete_many { _id = 99 } end },
    { "find_one_and_update", "findAndModify",
      function(c) c:find_one_and_update({ _id = 1 }, { ["$set"] = { u = 2 } }) end },
    { "bulk_write", "insert", function(c) c:bulk_write { { insert_one = { document = {} } } } end },
    { "create_index", "createIndexes", function(c) c:create_index { k = 1 } end },
    { "drop_indexes", "dropIndexes", function(c) c:drop_indexes() end },
    { "drop", "drop", function(c) c:drop() end },
  }
  local reads = {
    { "find", "find", function(c) c:find({}):all() end },
    { "count_documents", "aggregate", function(c) c:count_documents {} end },
    { "aggregate", "aggregate", function(c) c:aggregate({ { ["$match"] = {} } }):all() end },
    { "distinct", "distinct", function(c) c:distinct("k") end },
    { "estimated_document_count", "count", function(c) c:estimated_document_count() end },
  }

  describe("per client", function()
    for _, w in ipairs(writes) do
      it("write_concern reaches " .. w[1], function()
        w[3](client({ write_concern = MAJ }):collection(DB, "docs"))
        assert.are.same(MAJ, sent(w[2]).writeConcern)
      end)
    end
    for _, r in ipairs(reads) do
      it("read_concern reaches " .. r[1], function()
        r[3](client({ read_concern = "majority" }):collection(DB, "docs"))
        assert.are.same({ level = "majority" }, sent(r[2]).readConcern)
      end)
    end

    it("without defaults nothing is added", function()
      local c = plain:collection(DB, "docs")
      c:insert_one {}
      c:find({}):all()
      assert.is_nil(sent("insert").writeConcern)
      assert.is_nil(sent("find").readConcern)
    end)

    it("read_preference routes reads (secondary: none here, so reads fail), not writes", function()
      local c = client({ read_preference = "secondary", server_selection_timeout_ms = 300 })
      local coll = c:collection(DB, "docs")
      coll:insert_one { _id = 2 }
      local err = catch(coll.find_one, coll, { _id = 2 })
      assert.are.equal("connect", err.phase)
      assert.are.equal(2, plain:collection(DB, "docs"):count_documents {})
    end)

    it("an operation's own option wins", function()
      client({ write_concern = MAJ }):collection(DB, "docs"):insert_one({}, { write_concern = { w = 1 } })
      assert.are.same({ w = 1 }, sent("insert").writeConcern)
    end)

    it("are part of the client's identity (its pool), as the URI's options are", function()
      local a = client({ write_concern = { w = "majority", j = true }, read_concern = "local",
        read_preference = "primaryPreferred" })
      assert.matches("read_concern=local&write_concern=w:majority,j:true&read_preference=primaryPreferred",
        a:id(), 1, true)
      assert.is_false(a == plain)
      assert.is_true(a == client({ write_concern = { w = "majority", j = true }, read_concern = "local",
        read_preference = "primaryPreferred" }))
    end)

    it("a transaction inherits the write concern for its commit; its statements carry none", function()
      local c = client({ write_concern = MAJ })
      local coll = c:collection(DB, "docs")
      c:transaction(function() coll:insert_one {} end)
      assert.is_nil(sent("insert").writeConcern)
      assert.are.same(MAJ, sent("commitTransaction").writeConcern)
    end)
  end)

  describe("per collection", function()
    it("client:collection(db, name, opts) and (\"db.name\", opts) apply them", function()
      for _, c in ipairs {
        plain:collection(DB, "docs", { write_concern = MAJ, read_concern = "majority" }),
        plain:collection(DB .. ".docs", { write_concern = MAJ, read_concern = "majority" }),
      } do
        started = {}
        for _, w in ipairs(writes) do
          w[3](c)
          assert.are.same(MAJ, sent(w[2]).writeConcern, w[1])
        end
        for _, r in ipairs(reads) do
          r[3](c)
          assert.are.same({ level = "majority" }, sent(r[2]).readConcern, r[1])
        end
      end
    end)

    it("leave the cached collection of the namespace alone, and share its hooks", function()
      local cached = plain:collection(DB, "docs")
      local strict = plain:collection(DB, "docs", { write_concern = MAJ })
      assert.is_false(rawequal(cached, strict))
      local n = 0
      local unhook = cached:before("insert", function() n = n + 1 end)
      cached:insert_one {}
      assert.is_nil(sent("insert").writeConcern)
      strict:insert_one {}
      assert.are.same(MAJ, sent("insert").writeConcern)
      unhook()
      assert.are.equal(2, n)
    end)

    it("override the client's", function()
      local c = client({ write_concern = MAJ }):collection(DB, "docs", { write_concern = { w = 1 } })
      c:insert_one {}
      assert.are.same({ w = 1 }, sent("insert").writeConcern)
    end)

    it("read_preference applies to the collection's reads", function()
      local c = client({ server_selection_timeout_ms = 300 })
      local coll = c:collection(DB, "docs", { read_preference = "secondary" })
      local err = catch(coll.find_one, coll, {})
      assert.are.equal("connect", err.phase)
      assert.is_table(c:collection(DB, "docs"):find_one {})
    end)

    it("inside a transaction give way to the transaction's options", function()
      local coll = plain:collection(DB, "docs", { write_concern = { w = 1 }, read_concern = "majority",
        read_preference = "secondary" })
      plain:transaction(function()
        coll:find_one {}
        coll:insert_one {}
        coll:bulk_write { { insert_one = { document = {} } } }
        coll:distinct("k")
      end, { read_concern = "local", write_concern = MAJ })
      local first, commands = true, {}
      for _, ev in ipairs(started) do
        local cmd = ev.command
        commands[#commands + 1] = ev.command_name
        if ev.command_name ~= "commitTransaction" then
          assert.is_nil(cmd.writeConcern, ev.command_name)
          assert.are.same(first and { level = "local" } or nil, cmd.readConcern, ev.command_name)
          first = false
        end
      end
      assert.are.same({ "find", "insert", "insert", "distinct", "commitTransaction" }, commands)
      assert.are.same(MAJ, sent("commitTransaction").writeConcern)
    end)
  end)

  describe("per database", function()
    it("db:collection takes the database's defaults, its own opts win", function()
      local db = plain:database(DB, { write_concern = MAJ, read_concern = "majority" })
      db:collection("docs"):find({}):all()
      assert.are.same({ level = "majority" }, sent("find").readConcern)
      local c = db:collection("docs", { read_concern = "local" })
      c:find({}):all()
      c:insert_one {}
      assert.are.same({ level = "local" }, sent("find").readConcern)
      assert.are.same(MAJ, sent("insert").writeConcern)
    end)

    it("without defaults db:collection is the cached collection", function()
      assert.is_true(rawequal(plain:database(DB):collection("docs"), plain:collection(DB, "docs")))
    end)

    it("db:drop takes the database's write concern", function()
      plain:database(DB, { write_concern = MAJ }):drop()
      assert.are.same(MAJ, sent("dropDatabase").writeConcern)
    end)

    it("commands are sent as written: no defaults", function()
      plain:database(DB, { write_concern = MAJ, read_concern = "majority" }):command { ping = 1 }
      local cmd = sent("ping")
      assert.is_nil(cmd.writeConcern)
      assert.is_nil(cmd.readConcern)
    end)
  end)

  local bad = {
    { "xdbtx.client", function(o) return x.client(env.uri(), o) end, "client" },
    { "client:collection", function(o) return x.client(env.uri()):collection(DB, "docs", o) end, "collection" },
    { "client:database", function(o) return x.client(env.uri()):database(DB, o) end, "database" },
    { "db:collection", function(o) return x.client(env.uri()):database(DB):collection("docs", o) end,
      "collection" },
  }
  local values = {
    { { read_concern = 1 }, "option 'read_concern' must be a level string or { level = ... }, got 1" },
    { { write_concern = { w = -1 } }, "option 'write_concern.w' must be an integer >= 0 or a string" },
    { { write_concern = { x = 1 } }, "unknown option 'write_concern.x'" },
    { { read_preference = "primari" }, "option 'read_preference' must be \"primary\"" },
    { { read_concen = "local" }, "unknown option 'read_concen'" },
  }
  for _, b in ipairs(bad) do
    for _, v in ipairs(values) do
      it(b[1] .. " refuses " .. v[2], function()
        local err = catch(b[2], v[1])
        assert.are.equal("argument", err.phase)
        assert.matches(b[3] .. ": " .. v[2], err.message, 1, true)
      end)
    end
  end
end)
