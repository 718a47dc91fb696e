-- JSON null from lua-cjson and OpenResty: `cjson.null` and `ngx.null` are
-- the NULL light userdata, published as `xdbtx.json_null`. It encodes as
-- BSON null (any other light userdata is still refused, naming the path);
-- decode(b, { json_null = true }) and from_json(s, { json_null = true })
-- give it back for null instead of xdbtx.null, so JSON request bodies pass
-- through unchanged. Runs under Lua 5.4 and LuaJIT; uses cjson when present.
local x = require "xdbtx.core"

local JN = x.json_null

-- a light userdata that is not NULL: an upvalue's identity
local function other_light()
  local up = {}
  return debug.upvalueid(function() return up end, 1)
end

-- BSON of { a = null }, written by hand: length 8, type 0x0A, "a", end
local NULL_DOC = string.char(8, 0, 0, 0, 10, 97, 0, 0)

describe("codec: JSON null (cjson.null / ngx.null) #luajit", function()
  it("xdbtx.json_null is the NULL light userdata", function()
    assert.equal("userdata", type(JN))
    assert.truthy(tostring(JN):match("^userdata: %(?[nN][iU][lL]L?%)?$") or tostring(JN):match("^userdata: 0x0+$"),
      tostring(JN))
    assert.are_not.equal(x.null, JN)
    assert.equal("null", x.type(JN))
    assert.equal(JN, require("xdbtx").json_null)
  end)

  it("is cjson.null when lua-cjson is installed", function()
    local ok, cjson = pcall(require, "cjson")
    if not ok then
      pending("lua-cjson not installed")
      return
    end
    assert.equal(cjson.null, JN)
    local body = cjson.decode('{"a":null,"b":[1,null,{"c":null}]}')
    local back = x.decode(x.encode(body), { json_null = true })
    assert.equal(cjson.null, back.a)
    assert.equal('[1,null,{"c":null}]', cjson.encode(back.b))
  end)

  local encodes = {
    { "a field", { a = JN }, { a = x.null } },
    { "array items", { l = { 1, JN, 3 } }, { l = { 1, x.null, 3 } } },
    { "inside an ordered document", x.ordered({ { "a", JN }, { "b", 1 } }), x.ordered({ { "a", x.null }, { "b", 1 } }) },
    { "deep inside", { a = { b = { c = JN } } }, { a = { b = { c = x.null } } } },
  }
  for _, c in ipairs(encodes) do
    it("encodes as BSON null: " .. c[1], function()
      assert.equal(x.encode(c[3]), x.encode(c[2]))
    end)
  end

  it("encodes as BSON null byte for byte", function()
    assert.equal(NULL_DOC, x.encode({ a = JN }))
  end)

  it("to_json writes null", function()
    assert.equal('{ "a" : null }', x.to_json({ a = JN }))
    assert.equal("null", x.to_json(JN))
  end)

  it("any other light userdata is still refused, with its path", function()
    local ok, err = pcall(x.encode, { a = { b = other_light() } })
    assert.is_false(ok)
    assert.is_true(x.is_error(err))
    assert.equal("codec", err.domain)
    assert.equal("doc.a.b: cannot encode a light userdata", err.message)
  end)

  it("decodes as xdbtx.null by default", function()
    assert.equal(x.null, x.decode(NULL_DOC).a)
    assert.equal(x.null, x.from_json('{"a": null}').a)
  end)

  local decodes = {
    { "plain", {} },
    { "ordered", { ordered = true } },
    { "exact", { exact = true } },
  }
  for _, c in ipairs(decodes) do
    it("decode json_null = true gives it back (" .. c[1] .. ")", function()
      local opts = { json_null = true }
      for k, v in pairs(c[2]) do opts[k] = v end
      local d = x.decode(x.encode({ a = JN, l = { JN, 2 }, s = { t = x.null } }), opts)
      assert.equal(JN, d.a)
      assert.equal(JN, d.l[1])
      assert.equal(2, d.l[2])
      assert.equal(JN, d.s.t)
      if c[2].ordered or c[2].exact then
        assert.equal(getmetatable(x.ordered({})), getmetatable(d))
      end
    end)
  end

  it("decodes BSON undefined (0x06) as json_null too", function()
    local undef = string.char(8, 0, 0, 0, 6, 97, 0, 0)
    assert.equal(JN, x.decode(undef, { json_null = true }).a)
  end)

  it("from_json json_null = true: documents, arrays and a bare null", function()
    local d = x.from_json('{"a": null, "b": [null, {"c": null}]}', { json_null = true })
    assert.equal(JN, d.a)
    assert.equal(JN, d.b[1])
    assert.equal(JN, d.b[2].c)
    assert.equal(JN, x.from_json("null", { json_null = true }))
    assert.equal(JN, x.from_json("[null]", { json_null = true })[1])
    assert.equal(x.null, x.from_json("null"))
  end)

  it("a JSON body passes through unchanged (ordered keeps its key order)", function()
    local json = '{ "id" : 7, "note" : null, "lines" : [ { "sku" : "A", "gift" : null } ] }'
    local opts = { json_null = true, ordered = true }
    local body = x.from_json(json, opts)
    local stored = x.decode(x.encode(body), opts)
    assert.equal(json, x.to_json(stored))
    assert.equal(JN, stored.note)
    assert.equal(JN, stored.lines[1].gift)
  end)

  it("decode options are checked", function()
    for _, c in ipairs({
      { function() x.decode(NULL_DOC, { jsonnull = true }) end, "xdbtx.decode: unknown option 'jsonnull'" },
      { function() x.decode(NULL_DOC, { [1] = true }) end, "xdbtx.decode: option keys must be strings, got number 1" },
      { function() x.from_json("{}", { nul = true }) end, "xdbtx.from_json: unknown option 'nul'" },
      { function() x.from_json("{}", 5) end, "xdbtx.from_json: expected an options table as argument 2, got number 5" },
    }) do
      local ok, err = pcall(c[1])
      assert.is_false(ok)
      assert.is_true(x.is_error(err))
      assert.equal("argument", err.domain)
      assert.truthy(err.message:find(c[2], 1, true), err.message)
    end
  end)

  it("argument errors name json_null when it is given", function()
    local ok, err = pcall(x.decimal128, JN)
    assert.is_false(ok)
    assert.equal("xdbtx.decimal128: expected a string, got xdbtx.json_null", err.message)
  end)
end)
