-- The BSON <-> Lua codec (DESIGN.md "Values"): every row of the mapping in
-- both directions, the typed values, ordered documents, __tobson, JSON.
-- Refusals, fixtures from another implementation, corrupt input and the
-- property test live in spec/codec_*_spec.lua. Specs tagged #luajit also
-- run under LuaJIT (scripts/run-tests); the rest are Lua 5.4 only.
local x = require "xdbtx.core"
local U = dofile("spec/fixtures/codec_util.lua")

local function roundtrip(v)
  return x.decode(x.encode({ v = v })).v
end

-- BSON bytes of { v = <element> } given the element type byte and payload
local function doc_v(typ, payload)
  local body = string.char(typ) .. "v\0" .. payload
  local n = 4 + #body + 1
  return string.char(n % 256, math.floor(n / 256) % 256, 0, 0) .. body .. "\0"
end

local function le32(n)
  if n < 0 then n = n + 2 ^ 32 end
  return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 16777216) % 256)
end

describe("codec: values both ways #luajit", function()
  local cases = {
    { "string", "hello" },
    { "empty string", "" },
    { "string with NUL inside", "a\0b" },
    { "unicode string", "naïve ключ 鍵 😀" },
    { "true", true },
    { "false", false },
    { "null sentinel", x.null },
    { "small integer", 42 },
    { "negative integer", -7 },
    { "fractional float", 2.5 },
    { "empty document", {} },
    { "empty array", setmetatable({}, x.array_mt) },
    { "array", setmetatable({ 1, "two", true }, x.array_mt) },
    { "nested", { a = { b = { c = setmetatable({ { d = 1 } }, x.array_mt) } } } },
    { "object id", x.object_id("5f0c3f1e2b3c4d5e6f708192") },
    { "date", x.date(1700000000123) },
    { "date before 1970", x.date(-14182940000) },
    { "timestamp", x.timestamp(1700000000, 7) },
    { "decimal128", x.decimal128("1234.5678") },
    { "decimal128 NaN", x.decimal128("NaN") },
    { "decimal128 Infinity", x.decimal128("Infinity") },
    { "decimal128 -Infinity", x.decimal128("-Infinity") },
    { "decimal128 -0", x.decimal128("-0") },
    { "binary", x.binary("\0\1\2\255", 0) },
    { "binary user subtype 0x80", x.binary("abc", 0x80) },
    { "binary old subtype 2", x.binary("old", 2) },
    { "uuid", x.uuid("123e4567-e89b-12d3-a456-426614174000") },
    { "regex", x.regex("^ab+c$", "imx") },
    { "code", x.code("function () { return 1 }") },
    { "minkey", x.minkey },
    { "maxkey", x.maxkey },
    { "forced int64 decodes as a number", x.int64(5), 5 },
    { "forced int32 decodes as a number", x.int32(-3), -3 },
    { "forced double", x.double(0.5), 0.5 },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local expected = c[3]
      if expected == nil then expected = c[2] end
      U.assert_same(roundtrip(c[2]), expected)
    end)
  end

  it("plain tables with keys 1..n encode as arrays", function()
    local d = roundtrip({ "a", "b", "c" })
    assert.equal(x.array_mt, getmetatable(d))
    assert.same({ "a", "b", "c" }, { d[1], d[2], d[3] })
  end)

  it("decoded documents are plain tables and arrays carry array_mt", function()
    local d = x.decode(x.encode({ doc = { a = 1 }, arr = { 1 } }))
    assert.is_nil(getmetatable(d))
    assert.is_nil(getmetatable(d.doc))
    assert.equal(x.array_mt, getmetatable(d.arr))
  end)

  it("an empty array and an empty document stay distinct", function()
    local b = x.encode({ a = setmetatable({}, x.array_mt), d = {} })
    local d = x.decode(b)
    assert.equal(x.array_mt, getmetatable(d.a))
    assert.is_nil(getmetatable(d.d))
    assert.equal("array", x.type(d.a))
    assert.equal("document", x.type(d.d))
  end)

  it("writes the BSON element types of the mapping", function()
    assert.equal(doc_v(0x02, le32(3) .. "hi\0"), x.encode({ v = "hi" }))
    assert.equal(doc_v(0x10, le32(7)), x.encode({ v = 7 }))
    assert.equal(doc_v(0x08, "\1"), x.encode({ v = true }))
    assert.equal(doc_v(0x0A, ""), x.encode({ v = x.null }))
    assert.equal(doc_v(0xFF, ""), x.encode({ v = x.minkey }))
    assert.equal(doc_v(0x7F, ""), x.encode({ v = x.maxkey }))
    assert.equal(doc_v(0x03, le32(5) .. "\0"), x.encode({ v = {} }))
    assert.equal(doc_v(0x04, le32(5) .. "\0"), x.encode({ v = setmetatable({}, x.array_mt) }))
    assert.equal(doc_v(0x01, "\0\0\0\0\0\0\224\63"), x.encode({ v = 0.5 }))
    assert.equal(doc_v(0x12, "\5\0\0\0\0\0\0\0"), x.encode({ v = x.int64(5) }))
    assert.equal(doc_v(0x10, "\5\0\0\0"), x.encode({ v = x.int32(5) }))
    assert.equal(doc_v(0x01, "\0\0\0\0\0\0\8\64"), x.encode({ v = x.double(3) }))
    assert.equal(doc_v(0x05, le32(3) .. "\128abc"), x.encode({ v = x.binary("abc", 0x80) }))
    assert.equal(doc_v(0x05, le32(7) .. "\2" .. le32(3) .. "old"), x.encode({ v = x.binary("old", 2) }))
    assert.equal(doc_v(0x0B, "a.b\0im\0"), x.encode({ v = x.regex("a.b", "mi") }))
    assert.equal(doc_v(0x0D, le32(4) .. "f()\0"), x.encode({ v = x.code("f()") }))
    assert.equal(doc_v(0x11, "\7\0\0\0\1\0\0\0"), x.encode({ v = x.timestamp(1, 7) }))
    assert.equal(doc_v(0x09, "\232\3\0\0\0\0\0\0"), x.encode({ v = x.date(1000) }))
    assert.equal(doc_v(0x07, U.unhex("5f0c3f1e2b3c4d5e6f708192")),
      x.encode({ v = x.object_id("5f0c3f1e2b3c4d5e6f708192") }))
  end)

  it("float specials keep their values: -0.0, NaN, inf, -inf", function()
    local d = x.decode(x.encode({ nz = -0.0, nan = 0 / 0, inf = 1 / 0, ninf = -1 / 0 }))
    assert.equal(0, d.nz)
    assert.equal(-1 / 0, 1 / d.nz)
    assert.is_true(d.nan ~= d.nan)
    assert.equal(1 / 0, d.inf)
    assert.equal(-1 / 0, d.ninf)
    assert.equal(doc_v(0x01, "\0\0\0\0\0\0\0\128"), x.encode({ v = -0.0 }))
    assert.equal(doc_v(0x01, "\0\0\0\0\0\0\240\127"), x.encode({ v = 1 / 0 }))
  end)

  it("unicode keys round trip", function()
    local t = { ["ключ"] = 1, ["鍵"] = { ["😀"] = "ok" }, ["naïve"] = true }
    U.assert_same(x.decode(x.encode(t)), t)
  end)

  it("1 MiB strings round trip", function()
    local s = string.rep("0123456789abcdef", 65536)
    local u = string.rep("é", 524288)
    local d = x.decode(x.encode({ s = s, u = u }))
    assert.equal(s, d.s)
    assert.equal(u, d.u)
  end)

  it("nesting up to the 100-level limit is accepted", function()
    local top = {}
    local cur = top
    for _ = 2, 100 do cur.a = {}; cur = cur.a end
    cur.leaf = "bottom"
    local d = x.decode(x.encode(top))
    for _ = 2, 100 do d = d.a end
    assert.equal("bottom", d.leaf)
  end)

  it("the same table twice (not a cycle) is fine", function()
    local shared = { n = 1 }
    local d = x.decode(x.encode({ a = shared, b = shared, c = { shared, shared } }))
    assert.equal(1, d.a.n)
    assert.equal(1, d.c[2].n)
  end)

  it("a document's _id is written first; an ordered document keeps its order", function()
    local t = { _id = 7 }
    for i = 1, 40 do t["k" .. i] = i end
    local b = x.encode(t)
    assert.equal("\16_id\0", b:sub(5, 9))
    assert.equal(7, x.decode(b)._id)
    local n = 0
    for _ in pairs(x.decode(b)) do n = n + 1 end
    assert.equal(41, n)
    local o = x.encode(x.ordered { { "a", 1 }, { "_id", 2 } })
    assert.equal("\16a\0", o:sub(5, 7))
    assert.equal('{ "a" : 1, "_id" : 2 }', x.to_json(x.decode(o, { ordered = true })))
  end)

  -- the decoder ignores array keys, so only the bytes can show them
  it("array index keys are \"0\" .. \"n-1\" past 9, 99, 999 and 9999", function()
    local n = 10002
    local list, body = {}, {}
    for i = 1, n do
      list[i] = i % 7
      body[i] = "\16" .. tostring(i - 1) .. "\0" .. le32(i % 7)
    end
    local arr = table.concat(body)
    local expected = "\4v\0" .. le32(4 + #arr + 1) .. arr .. "\0"
    expected = le32(4 + #expected + 1) .. expected .. "\0"
    assert.equal(expected, x.encode({ v = list }))
    assert.equal(expected, x.encode({ v = setmetatable(list, x.array_mt) }))
    assert.equal(expected, x.encode(x.ordered({ { "v", list } })))
    -- keys 1..n that next() does not visit in order (part of them in the
    -- hash part): encoded by index all the same
    local mixed = { 0 }
    for k = 1, 12 do mixed["s" .. k] = k end
    for k = 1, 12 do mixed["s" .. k] = nil end
    for k = 2, 15 do mixed[k] = k % 7 end
    mixed[1] = 1
    local visited, in_order = 0, true
    for k in next, mixed do
      visited = visited + 1
      in_order = in_order and k == visited
    end
    assert.is_false(in_order, "the table meant to be walked out of order is not")
    body = {}
    for k = 1, 15 do body[k] = "\16" .. tostring(k - 1) .. "\0" .. le32(k % 7) end
    arr = table.concat(body)
    expected = "\4v\0" .. le32(4 + #arr + 1) .. arr .. "\0"
    expected = le32(4 + #expected + 1) .. expected .. "\0"
    assert.equal(expected, x.encode({ v = mixed }))
  end)
end)

describe("codec: Lua 5.4 numbers", function()
  if U.jit then return end
  local int = math.tointeger
  local cases = {
    { "0", int(0), 0x10 },
    { "int32 max", int(2147483647), 0x10 },
    { "int32 min", int(-2147483648), 0x10 },
    { "int32 max + 1", int(2147483648), 0x12 },
    { "int32 min - 1", int(-2147483649), 0x12 },
    { "int64 max", math.maxinteger, 0x12 },
    { "int64 min", math.mininteger, 0x12 },
    { "2^53 + 1", int(9007199254740993), 0x12 },
    { "3.0 stays a float", 3.0, 0x01 },
    { "-0.0", -0.0, 0x01 },
    { "2^63 as a float", 2.0 ^ 63, 0x01 },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " -> type 0x" .. string.format("%02x", c[3]) .. " and back", function()
      local b = x.encode({ v = c[2] })
      assert.equal(c[3], b:byte(5))
      local v = x.decode(b).v
      assert.equal(math.type(c[2]), math.type(v))
      assert.equal(c[2], v)
    end)
  end

  it("int32 and int64 both decode as Lua integers", function()
    local d = x.decode(x.encode({ a = x.int64(1), b = x.int32(2) }))
    assert.equal("integer", math.type(d.a))
    assert.equal("integer", math.type(d.b))
  end)

  it("forced widths check their range", function()
    U.refused(x.int32, 2147483648)
    U.refused(x.int32, 1.5)
    U.refused(x.int64, "12x")
    assert.equal(math.maxinteger, x.decode(x.encode({ v = x.int64("9223372036854775807") })).v)
  end)
end)

describe("codec: LuaJIT numbers #luajit", function()
  it("under LuaJIT: integral numbers in int32 range encode as int32, beyond up to 2^53 as int64", function()
    if not U.jit then return end
    assert.equal(0x10, x.encode({ v = 2147483647 }):byte(5))
    assert.equal(0x12, x.encode({ v = 2147483648 }):byte(5))
    assert.equal(0x12, x.encode({ v = 2 ^ 53 }):byte(5))
    assert.equal(0x01, x.encode({ v = 2 ^ 53 * 4 }):byte(5))
    assert.equal(0x01, x.encode({ v = 0.5 }):byte(5))
    assert.equal(0x01, x.encode({ v = -0.0 }):byte(5))
    assert.equal(0x01, x.encode({ v = x.double(3) }):byte(5))
  end)

  it("int64 beyond 2^53 decodes exactly (an xdbtx.Int64 under LuaJIT)", function()
    local b = x.encode({ v = x.int64("9007199254740993") })
    local v = x.decode(b).v
    assert.equal("9007199254740993", tostring(v))
    assert.equal(b, x.encode({ v = v }))
    if U.jit then
      assert.equal("int64", x.type(v))
      assert.is_true(v == x.int64("9007199254740993"))
      assert.is_true(x.int64("9007199254740992") < v)
    end
  end)

  it("Int32, Int64 and Date compare with each other (also under LuaJIT)", function()
    assert.is_true(x.int32(5) < x.int64(6))
    assert.is_true(x.date(5) < x.int64(6))
    assert.is_true(x.int64(5) <= x.int32(5))
    assert.is_false(x.int64(7) < x.int32(7))
    if not rawget(_G, "jit") then assert.is_true(x.int64(5) < 6) end
  end)

  it("int64 extremes survive", function()
    for _, s in ipairs({ "9223372036854775807", "-9223372036854775808", "-9007199254740993" }) do
      local b = x.encode({ v = x.int64(s) })
      assert.equal(b, x.encode(x.decode(b)))
      assert.equal(s, tostring(x.decode(b).v))
    end
  end)
end)

describe("codec: typed values #luajit", function()
  it("ObjectId: hex, time, tostring, equality, fresh ids differ", function()
    local o = x.object_id("5f0c3f1e2b3c4d5e6f708192")
    assert.equal("5f0c3f1e2b3c4d5e6f708192", o:hex())
    assert.equal(0x5f0c3f1e, o:time())
    assert.equal('ObjectId("5f0c3f1e2b3c4d5e6f708192")', tostring(o))
    assert.is_true(o == x.object_id("5F0C3F1E2B3C4D5E6F708192"))
    assert.is_false(x.object_id() == x.object_id())
    assert.equal(24, #x.object_id():hex())
    U.refused(x.object_id, "xyz")
  end)

  it("Date: ms, ISO tostring, before 1970", function()
    assert.equal(-1, x.date(-1):ms())
    assert.equal('Date("1969-12-31T23:59:59.999Z")', tostring(x.date(-1)))
    assert.equal('Date("2023-11-14T22:13:20.000Z")', tostring(x.date(1700000000000)))
    assert.is_true(x.date(5) == x.date(5))
    assert.is_true(x.date(4) < x.date(5))
    assert.is_true(math.abs(x.date():ms() - os.time() * 1000) < 5000)
  end)

  it("Timestamp: t and i", function()
    local ts = x.timestamp(4294967295, 1)
    assert.equal(4294967295, ts:t())
    assert.equal(1, ts:i())
    assert.equal("Timestamp(4294967295, 1)", tostring(ts))
    U.refused(x.timestamp, -1, 0)
  end)

  it("Decimal128: text form and specials", function()
    for _, s in ipairs({ "1.5", "NaN", "Infinity", "-Infinity", "-0", "1.5E+10" }) do
      local d = roundtrip(x.decimal128(s))
      assert.equal(s, d:tostring())
      assert.equal('Decimal128("' .. s .. '")', tostring(d))
    end
    U.refused(x.decimal128, "one")
  end)

  it("Binary: data, subtype, length, every subtype", function()
    for sub = 0, 255 do
      local b = roundtrip(x.binary("\0\1xyz", sub))
      assert.equal(sub, b:subtype())
      assert.equal("\0\1xyz", b:data())
    end
    assert.equal(5, #x.binary("12345"))
    assert.equal('Binary(128, "AQI=")', tostring(x.binary("\1\2", 0x80)))
    U.refused(x.binary, "a", 256)
  end)

  it("UUID: subtype 4, canonical text, random v4", function()
    local u = x.uuid("123E4567-E89B-12D3-A456-426614174000")
    assert.equal("binary", x.type(u))
    assert.equal(4, u:subtype())
    assert.equal(16, #u:data())
    assert.equal("123e4567-e89b-12d3-a456-426614174000", u:uuid())
    assert.equal('UUID("123e4567-e89b-12d3-a456-426614174000")', tostring(roundtrip(u)))
    local r = x.uuid():uuid()
    assert.truthy(r:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"), r)
    assert.is_false(x.uuid() == x.uuid())
    assert.is_nil(x.binary("abc"):uuid())
    U.refused(x.uuid, "not-a-uuid")
  end)

  it("Regex: pattern and flags (sorted, validated)", function()
    local r = roundtrip(x.regex("^a.*$", "xi"))
    assert.equal("^a.*$", r:pattern())
    assert.equal("ix", r:flags())
    assert.equal("/^a.*$/ix", tostring(r))
    U.refused(x.regex, "a", "q")
    U.refused(x.regex, "a\0b")
  end)

  it("Code: source", function()
    local c = roundtrip(x.code("return 1"))
    assert.equal("return 1", c:code())
    assert.equal('Code("return 1")', tostring(c))
  end)

  it("null, minkey, maxkey are unique sentinels", function()
    assert.is_true(x.null == x.null)
    assert.equal(x.null, roundtrip(x.null))
    assert.equal(x.minkey, roundtrip(x.minkey))
    assert.equal(x.maxkey, roundtrip(x.maxkey))
    assert.equal("null", tostring(x.null))
    local t = { a = x.null }
    assert.equal(x.null, t.a)
  end)

  it("forced widths: value and tostring", function()
    assert.equal(7, x.int32(7):value())
    assert.equal("7", tostring(x.int32(7)))
    assert.equal(0.5, x.double(0.5):value())
    assert.equal("-9223372036854775808", tostring(x.int64("-9223372036854775808")))
  end)

  it("xdbtx.type names every value", function()
    local cases = {
      { x.object_id(), "objectid" }, { x.date(0), "date" }, { x.timestamp(0, 0), "timestamp" },
      { x.decimal128("1"), "decimal128" }, { x.binary(""), "binary" }, { x.uuid(), "binary" },
      { x.regex("a"), "regex" }, { x.code("c"), "code" }, { x.minkey, "minkey" },
      { x.maxkey, "maxkey" }, { x.null, "null" }, { x.int32(1), "int32" }, { x.int64(1), "int64" },
      { x.double(1), "double" }, { setmetatable({}, x.array_mt), "array" }, { { 1, 2 }, "array" },
      { {}, "document" }, { { a = 1 }, "document" }, { x.ordered({ { "a", 1 } }), "document" },
      { "s", "string" }, { true, "boolean" }, { 1, "integer" }, { 0.5, "float" },
      { print, "function" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], x.type(c[1]))
    end
    if not U.jit then assert.equal("float", x.type(3.0)) end
  end)

  it("values of different kinds are never equal", function()
    assert.is_false(x.int32(1) == x.int64(1))
    assert.is_false(x.binary("a", 0) == x.binary("a", 1))
    assert.is_false(x.date(0) == x.timestamp(0, 0))
  end)
end)

describe("codec: ordered documents and __tobson #luajit", function()
  it("ordered{} keeps the key order", function()
    local b = x.encode(x.ordered({ { "z", 1 }, { "a", 2 }, { "m", x.ordered({ { "y", 1 }, { "b", 2 } }) } }))
    local zpos, apos, mpos = b:find("z\0", 1, true), b:find("a\0", 1, true), b:find("m\0", 1, true)
    assert.is_true(zpos < apos and apos < mpos)
    assert.truthy(b:find("y\0", 1, true) < b:find("b\0", 1, true))
    local o = x.ordered({ { "find", "coll" }, { "filter", { a = 1 } } })
    assert.equal("coll", o.find)
    if not U.jit then assert.equal(2, #o) end -- LuaJIT ignores __len on tables
  end)

  it("ordered{} refuses bad entries", function()
    U.refused(x.ordered, { { 1, 2 } })
    U.refused(x.ordered, { { "a" } })
    U.refused(x.ordered, { "a" })
    -- every pair is kept or it raises: nothing beside the pairs, no hole, no third element
    for _, bad in ipairs { { { "a", 1 }, b = -1 }, { { "a", 1 }, [3] = { "b", 1 } },
                           { { "a", 1, "junk" } }, { { "a", 1, x = 2 } } } do
      local ok, err = pcall(x.ordered, bad)
      assert.is_false(ok)
      assert.matches("^xdbtx.ordered: ", err.message)
    end
  end)

  it("ordered{} refuses a key given twice, naming it and both entries", function()
    local err = U.refused(x.ordered, { { "_id", 8 }, { "_id", 9 }, { "v", 1 } })
    assert.equal("encode", err.phase)
    assert.equal("xdbtx.ordered: key '_id' appears twice (entries 1 and 2)", err.message)
    -- past 16 pairs the check goes through a table of the keys seen
    for _, n in ipairs { 16, 17, 40 } do
      local list = {}
      for i = 1, n do list[i] = { "k" .. i, i } end
      assert.equal("k" .. n, rawget(x.ordered(list), 2 * n - 1))
      list[n] = { "k3", 0 }
      err = U.refused(x.ordered, list)
      assert.equal("xdbtx.ordered: key 'k3' appears twice (entries 3 and " .. n .. ")", err.message)
    end
  end)

  -- o.key = v: the value of an existing field changes in place, a new field
  -- goes last, nil removes the field; what Lua reads is what is encoded.
  local writes = {
    { "replace in place", function(o) o.qty = 5 end, '{ "_id" : 1, "name" : "widget", "qty" : 5 }' },
    { "append", function(o) o.note = "restock" end,
      '{ "_id" : 1, "name" : "widget", "qty" : 1, "note" : "restock" }' },
    { "remove the middle", function(o) o.name = nil end, '{ "_id" : 1, "qty" : 1 }' },
    { "remove the last", function(o) o.qty = nil end, '{ "_id" : 1, "name" : "widget" }' },
    { "remove all, then add", function(o) o._id, o.name, o.qty = nil, nil, nil; o.z = true end,
      '{ "z" : true }' },
    { "remove a missing key", function(o) o.nope = nil end, '{ "_id" : 1, "name" : "widget", "qty" : 1 }' },
    { "a table value", function(o) o.name = { a = 1 } end, '{ "_id" : 1, "name" : { "a" : 1 }, "qty" : 1 }' },
  }
  for _, w in ipairs(writes) do
    local name, write, json = w[1], w[2], w[3]
    it("ordered: o.key = v, " .. name, function()
      for _, o in ipairs {
        x.ordered { { "_id", 1 }, { "name", "widget" }, { "qty", 1 } },
        x.from_json('{"_id": 1, "name": "widget", "qty": 1}', { ordered = true }),
        x.decode(x.encode(x.ordered { { "_id", 1 }, { "name", "widget" }, { "qty", 1 } }), { exact = true }),
      } do
        write(o)
        assert.equal(json, x.to_json(o))
        local back = x.from_json(json, { ordered = true })
        -- LuaJIT ignores __len on tables: there # counts the flat slots
        local n = U.jit and #back / 2 or #back
        assert.equal(#back, #o)
        local slots = 0 -- the flat layout {k1, v1, ...}, nothing else
        for _ in next, o do slots = slots + 1 end
        assert.equal(2 * n, slots)
        for i = 1, n do
          local k = rawget(back, 2 * i - 1)
          assert.equal(x.to_json(back[k]), x.to_json(o[k])) -- o.key reads what is encoded
        end
        assert.equal(x.encode(back), x.encode(o))
      end
    end)
  end

  it("ordered: a decoded key given twice keeps one field on assignment, none on nil", function()
    local b = x.encode(x.ordered { { "a", 1 }, { "b", 2 }, { "c", 3 } })
    local at = b:find("c\0", 1, true)
    local twice = b:sub(1, at - 1) .. "a" .. b:sub(at + 1)
    local o = x.decode(twice, { ordered = true })
    assert.equal('{ "a" : 1, "b" : 2, "a" : 3 }', x.to_json(o))
    o.a = 9
    assert.equal('{ "a" : 9, "b" : 2 }', x.to_json(o))
    o = x.decode(twice, { ordered = true })
    o.a = nil
    assert.equal('{ "b" : 2 }', x.to_json(o))
    assert.is_nil(o.a)
  end)

  it("ordered: a field name other than a string raises", function()
    local o = x.ordered { { "a", 1 } }
    for _, k in ipairs { 7, 2.5, true } do
      local err = U.refused(function() o[k] = 1 end)
      assert.equal("encode", err.phase)
      assert.matches("^xdbtx.ordered: a field name must be a string, got ", err.message)
    end
    assert.equal('{ "a" : 1 }', x.to_json(o))
  end)

  -- #lua54: LuaJIT 2.1 honours __pairs only when built with
  -- LUAJIT_ENABLE_LUA52COMPAT (OpenResty's luajit2 here is not): there
  -- pairs(o) shows the flat layout {k1, v1, k2, v2, ...}
  it("ordered: pairs(o) gives key, value in order, also while removing #lua54", function()
    local o = x.ordered { { "z", 1 }, { "a", 2 }, { "m", 3 } }
    local seen = {}
    for k, v in pairs(o) do seen[#seen + 1] = k .. "=" .. tostring(v) end
    assert.same({ "z=1", "a=2", "m=3" }, seen)
    seen = {}
    for k, v in pairs(o) do
      seen[#seen + 1] = k
      if k == "z" or k == "a" then o[k] = nil end
    end
    assert.same({ "z", "a", "m" }, seen)
    assert.equal('{ "m" : 3 }', x.to_json(o))
    for k in pairs(o) do o[k] = nil end
    assert.equal("{ }", x.to_json(o))
    assert.equal(0, #o)
  end)

  it("decode {ordered = true} keeps order; {exact = true} re-encodes byte for byte", function()
    local b = x.encode(x.ordered({ { "z", 1 }, { "a", x.int64(2) }, { "f", 3.5 } }))
    local o = x.decode(b, { ordered = true })
    assert.equal("z", o[1])
    assert.equal(3.5, o.f)
    assert.equal(b, x.encode(x.decode(b, { exact = true })))
  end)

  it("__tobson gives the BSON form of a table or userdata", function()
    local Point = { __tobson = function(p) return { type = "Point", coordinates = { p.x, p.y } } end }
    local d = x.decode(x.encode({ loc = setmetatable({ x = 1, y = 2 }, Point) }))
    assert.equal("Point", d.loc.type)
    assert.equal(2, d.loc.coordinates[2])
    -- at the top level too, and chained once
    local Wrapper = { __tobson = function(w) return w.inner end }
    local top = setmetatable({ inner = setmetatable({ x = 5, y = 6 }, Point) }, Wrapper)
    assert.equal(6, x.decode(x.encode(top)).coordinates[2])
  end)

  it("__tobson may return a scalar", function()
    local Money = { __tobson = function(m) return x.decimal128(m.s) end }
    local d = x.decode(x.encode({ price = setmetatable({ s = "9.99" }, Money) }))
    assert.equal("9.99", d.price:tostring())
  end)

  it("tables with unrelated metatables encode by their content", function()
    local obj = setmetatable({ a = 1 }, { __index = function() return 0 end })
    assert.equal(1, x.decode(x.encode({ o = obj })).o.a)
  end)
end)

describe("codec: Extended JSON #luajit", function()
  it("to_json relaxed (default) and canonical", function()
    local t = x.ordered({ { "a", 1 }, { "d", x.date(0) }, { "f", 1.5 } })
    assert.equal('{ "a" : 1, "d" : { "$date" : "1970-01-01T00:00:00Z" }, "f" : 1.5 }', x.to_json(t))
    assert.equal('{ "a" : { "$numberInt" : "1" }, "d" : { "$date" : { "$numberLong" : "0" } }, '
      .. '"f" : { "$numberDouble" : "1.5" } }', x.to_json(t, { mode = "canonical" }))
  end)

  it("to_json of arrays and scalars", function()
    assert.equal("[ 1, 2 ]", x.to_json({ 1, 2 }))
    assert.equal('"s"', x.to_json("s"))
    assert.equal('{ "$oid" : "5f0c3f1e2b3c4d5e6f708192" }', x.to_json(x.object_id("5f0c3f1e2b3c4d5e6f708192")))
    U.refused(x.to_json, {}, { mode = "loose" })
  end)

  -- a scalar's JSON is taken out of { "v" : ... }, which is exactly 11
  -- bytes long around a one-digit value
  local ints = {
    { "0", 0 }, { "1", 1 }, { "2", 2 }, { "3", 3 }, { "4", 4 }, { "5", 5 }, { "6", 6 }, { "7", 7 },
    { "8", 8 }, { "9", 9 }, { "10", 10 }, { "-1", -1 }, { "-10", -10 },
    { "2147483647", 2147483647 }, { "2147483648", 2147483648 },
    { "7", x.int32(7), "xdbtx.int32(7)" }, { "7", x.int64(7), "xdbtx.int64(7)" },
    { "9223372036854775807", x.int64("9223372036854775807") },
    { "-9223372036854775808", x.int64("-9223372036854775808") },
  }
  for _, c in ipairs(ints) do
    it("to_json(" .. (c[3] or c[1]) .. ") is the digits alone", function()
      assert.equal(c[1], x.to_json(c[2]))
    end)
  end

  it("from_json reads Extended JSON", function()
    local d = x.from_json('{"a": {"$numberLong": "5"}, "b": [1, {"$oid": "5f0c3f1e2b3c4d5e6f708192"}], '
      .. '"c": {"$numberDecimal": "1.5"}, "n": null}')
    assert.equal(5, d.a)
    assert.equal("5f0c3f1e2b3c4d5e6f708192", d.b[2]:hex())
    assert.equal("1.5", d.c:tostring())
    assert.equal(x.null, d.n)
    assert.equal(x.array_mt, getmetatable(d.b))
    assert.equal(2, x.from_json("[1, 2]")[2])
    assert.equal("s", x.from_json('"s"'))
    local err = U.refused(x.from_json, "{nope")
    assert.equal("decode", err.phase)
  end)

  it("JSON round trip", function()
    local t = { a = "x", b = { 1, 2.5, true }, c = x.null, d = x.binary("\0\1", 4) }
    U.assert_same(x.from_json(x.to_json(t, { mode = "canonical" })), x.decode(x.encode(t)))
  end)
end)
