-- xdbtx.client(uri, { json_null = true }): every BSON null that the client's
-- operations return is xdbtx.json_null (the NULL light userdata that is
-- cjson.null and ngx.null) instead of xdbtx.null, so a JSON request body
-- stored and read back encodes to the same JSON. The option belongs to the
-- Client object, not to its pool. Runs under Lua 5.4 and LuaJIT; the cjson
-- cases need lua-cjson (Debian's is built for both).
local env = require "spec.support.env"

local catch = env.catch

describe("clients with json_null = true", function()
  local x = require "xdbtx"
  local JN = x.json_null

  it("the option is checked and stays out of the pool key", function()
    local err = catch(x.client, "mongodb://127.0.0.1:1/", { json_null = "yes" })
    assert.is_true(x.is_error(err))
    assert.matches("option 'json_null' must be a boolean, got \"yes\"", err.message, 1, true)
    local a = x.client("mongodb://127.0.0.1:1/?appname=jn", { json_null = true })
    local b = x.client("mongodb://127.0.0.1:1/?appname=jn")
    assert.are.equal(a:id(), b:id())
  end)

  describe("against the test server", function()
    local why = env.server_reason()
    if why then pending(why) return end

    local plain = x.client(env.uri(), { app_name = "json_null_spec" })
    local jn = x.client(env.uri(), { app_name = "json_null_spec", json_null = true })
    local pcoll = plain:collection("xdbtx_json_null", "docs")
    local coll = jn:collection("xdbtx_json_null", "docs")
    before_each(function() pcoll:delete_many {} end)

    local doc = { _id = 1, a = JN, l = { 1, JN, { c = JN } }, s = { t = x.null } }

    it("find_one, find, find_one_and_update and aggregate give json_null back", function()
      coll:insert_one(doc)
      for _, d in ipairs {
        coll:find_one { _id = 1 },
        coll:find({}):all()[1],
        coll:find_one_and_update({ _id = 1 }, { ["$set"] = { n = 1 } }),
        coll:aggregate({ { ["$match"] = { _id = 1 } } }):all()[1],
      } do
        assert.are.equal(JN, d.a)
        assert.are.equal(JN, d.l[2])
        assert.are.equal(JN, d.l[3].c)
        assert.are.equal(JN, d.s.t)
        assert.are.equal(1, d.l[1])
      end
      local vals = coll:distinct("a", {})
      assert.are.equal(JN, vals[1])
    end)

    it("the same data through a client without the option gives xdbtx.null", function()
      coll:insert_one(doc)
      local d = pcoll:find_one { _id = 1 }
      assert.are.equal(x.null, d.a)
      assert.are.equal(x.null, d.l[2])
      assert.are.equal(x.null, d.s.t)
    end)

    it("inside a transaction and in command replies", function()
      jn:transaction(function()
        coll:insert_one(doc)
        assert.are.equal(JN, coll:find_one({ _id = 1 }).a)
      end)
      local r = jn:command("xdbtx_json_null", x.ordered { { "find", "docs" }, { "filter", { _id = 1 } } })
      assert.are.equal(JN, r.cursor.firstBatch[1].a)
    end)

    it("a JSON body stored and read back encodes to the same JSON (cjson)", function()
      local ok, cjson = pcall(require, "cjson")
      if not ok then pending("lua-cjson not installed") return end
      local json = '{"_id":"o1","note":null,"lines":[{"sku":"A","gift":null},null]}'
      local body = cjson.decode(json)
      coll:insert_one(body)
      local back = coll:find_one { _id = "o1" }
      assert.are.same(cjson.decode(json), cjson.decode(cjson.encode(back)))
      assert.are.equal(cjson.null, back.note)
      local err = catch(cjson.encode, pcoll:find_one { _id = "o1" })
      assert.matches("Cannot serialise", tostring(err))
    end)
  end)
end)
