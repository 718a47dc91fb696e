-- What the codec refuses, and how: an xdbtx.Error (domain "codec", phase
-- "encode"/"decode") whose message names the path of the offending value,
-- `doc.items[3].price: <reason>` (top level `doc`, array indexes 1-based).
-- Nothing partial is ever produced: encode either returns a whole document
-- or raises.
local x = require "xdbtx.core"
local U = dofile("spec/fixtures/codec_util.lua")

local function holed()
  local t = {}
  t[1], t[3] = "a", "c"
  return t
end

local function cyclic()
  local a = { b = {} }
  a.b.back = a
  return a
end

local function deep(levels)
  local top = {}
  local cur = top
  for _ = 2, levels do cur.a = {}; cur = cur.a end
  return top
end

local function deep_path(levels)
  return "doc" .. string.rep(".a", levels - 1)
end

local M16 = 16 * 1024 * 1024

describe("codec: refusals name the path #luajit", function()
  local cases = {
    { "a function", { f = print }, "doc.f: cannot encode a function" },
    { "a function deep inside arrays", { items = { 1, 2, { price = print } } },
      "doc.items[3].price: cannot encode a function" },
    { "a thread", { t = coroutine.create(print) }, "doc.t: cannot encode a thread" },
    { "a foreign userdata", { u = io.stdout }, "^doc%.u: cannot encode a userdata" },
    { "mixed array and document keys", { m = { 1, 2, a = 3 } }, "doc.m: table mixes array indexes and other keys" },
    { "an array with holes", { h = holed() }, "doc.h: array has holes (keys are not exactly 1..n)" },
    { "array_mt with a string key", { a = setmetatable({ 1, k = 2 }, x.array_mt) },
      "doc.a: array (array_mt) has keys other than 1..n" },
    { "a number key in a document", { d = { [2] = "x" } }, "^doc%.d: non%-string key 2 in a document" },
    { "a float key", { d = { [1.5] = "x" } }, "^doc%.d: non%-string key 1%.5 in a document" },
    { "a boolean key", { d = { [true] = 1 } }, "doc.d: non-string key (boolean) in a document" },
    { "a key with NUL", { d = { ["a\0b"] = 1 } }, "doc.d: key contains a NUL byte" },
    { "a key with invalid UTF-8", { ["\255"] = 1 }, "doc: key is not valid UTF-8" },
    { "a string with invalid UTF-8", { s = { "ok", "\128abc" } }, "doc.s[2]: string is not valid UTF-8" },
    { "a truncated UTF-8 sequence", { s = "abc\226\130" }, "doc.s: string is not valid UTF-8" },
    -- each length class of the one-pass copy and check (1-3, 4-7, 8-256, longer)
    { "a NUL inside a 7-byte key", { d = { ["abc\0efg"] = 1 } }, "doc.d: key contains a NUL byte" },
    { "a NUL after 8 bytes of a key", { d = { ["abcdefghi\0k"] = 1 } }, "doc.d: key contains a NUL byte" },
    { "a NUL early in a 17-byte key", { d = { ["ab\0defghijklmnopq"] = 1 } }, "doc.d: key contains a NUL byte" },
    { "invalid UTF-8 early in a 17-byte string", { s = "ab\255defghijklmnopq" }, "doc.s: string is not valid UTF-8" },
    { "a NUL at the end of a long key", { d = { [string.rep("k", 300) .. "\0"] = 1 } },
      "doc.d: key contains a NUL byte" },
    { "invalid UTF-8 ending a 2-byte key", { d = { ["a\255"] = 1 } }, "doc.d: key is not valid UTF-8" },
    { "invalid UTF-8 after 8 bytes of a key", { ["abcdefghi\255"] = 1 }, "doc: key is not valid UTF-8" },
    { "invalid UTF-8 in a 2-byte string", { s = "a\255" }, "doc.s: string is not valid UTF-8" },
    { "invalid UTF-8 after 8 bytes of a string", { s = "abcdefghij\192" }, "doc.s: string is not valid UTF-8" },
    { "invalid UTF-8 deep in a long string", { s = string.rep("x", 300) .. "\237\160\128" },
      "doc.s: string is not valid UTF-8" },
    { "a cycle", cyclic(), "doc.b.back: cycle: the table contains itself" },
    { "a table containing itself", (function() local t = {}; t.t = t; return t end)(),
      "doc.t: cycle: the table contains itself" },
    { "nesting one level beyond 100", deep(101), deep_path(101) .. ": nesting deeper than 100 levels" },
    { "__tobson that raises", { p = setmetatable({}, { __tobson = function() error("boom", 0) end }) },
      "doc.p: __tobson failed: boom" },
    { "__tobson returning a function", { p = setmetatable({}, { __tobson = function() return print end }) },
      "doc.p: cannot encode a function" },
    { "__tobson that never settles", { p = setmetatable({}, { __tobson = function(s) return s end }) },
      "doc.p: __tobson keeps returning values with __tobson" },
    { "an ordered entry with a bad key", { o = setmetatable({ 5, 1 }, getmetatable(x.ordered({}))) },
      "doc.o: ordered entry 1 has no string key" },
    { "a top-level array", { 1, 2 }, "doc: expected a document, got an array" },
    { "a top-level string", "str", "doc: expected a table, got string" },
    { "a top-level typed value", x.null, "doc: expected a table, got userdata" },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local err = U.refused(x.encode, c[2])
      assert.equal("codec", err.domain)
      assert.equal("encode", err.phase)
      if c[3]:sub(1, 1) == "^" then
        assert.truthy(err.message:match(c[3]), err.message)
      else
        assert.equal(c[3], err.message)
      end
      assert.truthy(tostring(err):find(err.message, 1, true))
    end)
  end

  it("documents over 16 MiB", function()
    local err = U.refused(x.encode, { a = string.rep("x", 9 * 1024 * 1024), b = string.rep("y", 9 * 1024 * 1024) })
    assert.truthy(err.message:match("^doc%.[ab]: document is over the 16 MiB limit$"), err.message)
    err = U.refused(x.encode, { big = string.rep("z", M16 + 1) })
    assert.truthy(err.message:match("^doc%.big: string of 16777217 bytes"), err.message)
    -- exactly at the limit is accepted: 16 MiB total
    local s = string.rep("q", M16 - 13) -- 4 + (1 + 2 + 4 + n + 1) + 1
    assert.equal(M16, #x.encode({ s = s }))
    err = U.refused(x.encode, { s = s .. "q" })
    assert.truthy(err.message:match("16 MiB"), err.message)
  end)

  it("the codec still works after every refusal (no stuck state)", function()
    for _ = 1, 3 do
      U.refused(x.encode, { f = print })
      assert.equal(x.encode({ a = 1 }), x.encode({ a = 1 }))
    end
  end)

  it("an encode nested inside __tobson gets its own buffer", function()
    local inner = setmetatable({}, { __tobson = function() return { bytes = x.binary(x.encode({ n = 1 })) } end })
    local d = x.decode(x.encode({ a = "before", i = inner, z = "after" }))
    assert.equal(1, x.decode(d.i.bytes:data()).n)
    assert.equal("after", d.z)
  end)

  it("typed constructors refuse bad input with codec errors", function()
    for _, c in ipairs({
      { x.object_id, "123" }, { x.decimal128, "1.2.3" }, { x.uuid, "123e4567" },
      { x.binary, "a", -1 }, { x.regex, "a", "z" }, { x.code, "a\0" }, { x.int32, 2 ^ 31 },
      { x.timestamp, 2 ^ 32, 0 }, { x.int64, 0.5 },
    }) do
      local err = U.refused(c[1], c[2], c[3])
      assert.equal("codec", err.domain)
    end
  end)
end)

-- Strings and keys must be well-formed UTF-8 (Unicode's table 3-7), both
-- ways: BSON from elsewhere is held to the same rule. Each form is tried
-- alone and between ASCII runs long enough for the word-at-a-time scans.
describe("codec: only well-formed UTF-8, with the path #luajit", function()
  local invalid = {
    { "overlong U+0000 (C0 80), which libbson accepts", "c0 80" },
    { "overlong '/' (C0 AF)", "c0 af" },
    { "overlong U+007F (C1 BF)", "c1 bf" },
    { "overlong three-byte U+0000 (E0 80 80)", "e0 80 80" },
    { "overlong three-byte U+07FF (E0 9F BF)", "e0 9f bf" },
    { "overlong four-byte U+0000 (F0 80 80 80)", "f0 80 80 80" },
    { "overlong four-byte U+FFFF (F0 8F BF BF)", "f0 8f bf bf" },
    { "the surrogate U+D800 (ED A0 80)", "ed a0 80" },
    { "the surrogate U+DFFF (ED BF BF)", "ed bf bf" },
    { "U+110000, past U+10FFFF (F4 90 80 80)", "f4 90 80 80" },
    { "the lead byte F5", "f5 80 80 80" },
    { "a five-byte form (F8 88 80 80 80)", "f8 88 80 80 80" },
    { "the byte FF", "ff" },
    { "a lone continuation byte", "80" },
    { "a truncated two-byte form", "c2" },
    { "a truncated three-byte form", "e2 82" },
    { "a truncated four-byte form", "f0 90 80" },
    { "a bad third byte", "e2 28 a1" },
    { "a bad fourth byte", "f0 90 80 7f" },
  }
  local valid = {
    { "U+007F", "7f" }, { "U+0080", "c2 80" }, { "U+07FF", "df bf" }, { "U+0800", "e0 a0 80" },
    { "U+D7FF", "ed 9f bf" }, { "U+E000", "ee 80 80" }, { "U+FFFF", "ef bf bf" },
    { "U+10000", "f0 90 80 80" }, { "U+10FFFF", "f4 8f bf bf" },
  }
  local function texts(hex)
    local s = U.unhex(hex)
    return { s, "abcdefghij" .. s .. "klmnopqrst" }
  end

  -- BSON of { a = { s = s } } and of { a = { [s] = 1 } }, built around a
  -- placeholder because encode refuses s
  local function bson_with(s, as_key)
    local mark = string.rep("~", #s)
    local b = x.encode({ a = as_key and { [mark] = 1 } or { s = mark } })
    local i = assert(b:find(mark, 1, true))
    return b:sub(1, i - 1) .. s .. b:sub(i + #s)
  end

  local function refused(phase, fn, arg, message)
    local err = U.refused(fn, arg)
    assert.equal("codec", err.domain)
    assert.equal(phase, err.phase)
    assert.equal(message, err.message)
  end

  for _, c in ipairs(invalid) do
    it("encode refuses " .. c[1], function()
      for _, s in ipairs(texts(c[2])) do
        refused("encode", x.encode, { a = { s = s } }, "doc.a.s: string is not valid UTF-8")
        refused("encode", x.encode, { a = { [s] = 1 } }, "doc.a: key is not valid UTF-8")
      end
    end)
    it("decode refuses " .. c[1], function()
      for _, s in ipairs(texts(c[2])) do
        refused("decode", x.decode, bson_with(s, false), "doc.a.s: string is not valid UTF-8")
        refused("decode", x.decode, bson_with(s, true), "doc.a: key is not valid UTF-8")
      end
    end)
  end

  it("to_json refuses overlong U+0000 with the path", function()
    refused("encode", x.to_json, { a = { b = U.unhex("c0 80") } }, "doc.a.b: string is not valid UTF-8")
  end)

  for _, c in ipairs(valid) do
    it("encode and decode accept " .. c[1] .. " (" .. c[2]:upper() .. ")", function()
      for _, s in ipairs(texts(c[2])) do
        assert.equal(s, x.decode(x.encode({ a = { s = s } })).a.s)
        assert.equal(1, x.decode(x.encode({ a = { [s] = 1 } })).a[s])
        assert.equal(x.encode({ a = { s = s } }), bson_with(s, false))
      end
    end)
  end
end)
