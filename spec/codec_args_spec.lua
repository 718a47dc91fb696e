-- Misuse of the codec's functions and of the typed values' methods: a
-- missing or wrong argument, or a method called with '.' instead of ':',
-- raises an xdbtx.Error (domain "argument", phase "argument") whose message
-- names the function, what it expected and what it got, e.g.
-- `xdbtx.decimal128: expected a string, got nil`. A value of the right type
-- but wrong content (bad hex, out of range) stays a codec error
-- (spec/codec_refusal_spec.lua). Each case: a name, a call, a fragment
-- the message must contain (plain text).
local x = require "xdbtx.core"

local jit = rawget(_G, "jit") ~= nil

local oid = x.object_id("5f0c3f1e2b3c4d5e6f708192")
local date = x.date(1000)
local ts = x.timestamp(1, 2)
local dec = x.decimal128("1.5")
local bin = x.binary("abc")
local re = x.regex("a+", "i")
local code = x.code("f()")
local i64 = x.int64(7)
local bytes = x.encode({ a = 1 })

local cases = {
  -- codec functions
  { "encode()", function() x.encode() end, "xdbtx.encode: expected a table, got no value" },
  { "decode()", function() x.decode() end, "xdbtx.decode: expected a string of BSON bytes, got nil" },
  { "decode({})", function() x.decode({}) end, "xdbtx.decode: expected a string of BSON bytes, got table" },
  { "decode(b, 5)", function() x.decode(bytes, 5) end,
    "xdbtx.decode: expected an options table as argument 2, got number 5" },
  { "to_json()", function() x.to_json() end, "xdbtx.to_json: expected a value, got no value" },
  { "to_json(t, 'x')", function() x.to_json({}, "canonical") end,
    'xdbtx.to_json: expected an options table as argument 2, got string "canonical"' },
  { "to_json mode of the wrong type", function() x.to_json({}, { mode = 5 }) end,
    'xdbtx.to_json: expected mode "relaxed" or "canonical", got number 5' },
  { "to_json unknown mode", function() x.to_json({}, { mode = "loose" }) end,
    'xdbtx.to_json: expected mode "relaxed" or "canonical", got string "loose"' },
  { "from_json()", function() x.from_json() end, "xdbtx.from_json: expected a JSON string, got nil" },
  { "from_json({})", function() x.from_json({}) end, "xdbtx.from_json: expected a JSON string, got table" },
  { "ordered(5)", function() x.ordered(5) end,
    "xdbtx.ordered: expected a table of {key, value} pairs, got number 5" },
  { "ordered()", function() x.ordered() end, "xdbtx.ordered: expected a table of {key, value} pairs, got nil" },
  { "type()", function() x.type() end, "xdbtx.type: expected a value, got no value" },
  -- constructors
  { "object_id({})", function() x.object_id({}) end,
    "xdbtx.object_id: expected a string of 24 hex digits, got table" },
  { "object_id(true)", function() x.object_id(true) end,
    "xdbtx.object_id: expected a string of 24 hex digits, got boolean true" },
  { "date({})", function() x.date({}) end, "xdbtx.date: expected an integer (milliseconds), got table" },
  { "date(oid)", function() x.date(oid) end,
    "xdbtx.date: expected an integer (milliseconds), got xdbtx.ObjectId" },
  { "timestamp()", function() x.timestamp() end,
    "xdbtx.timestamp: expected an integer as argument 1 (t), got nil" },
  { "timestamp(1)", function() x.timestamp(1) end,
    "xdbtx.timestamp: expected an integer as argument 2 (i), got nil" },
  { "decimal128()", function() x.decimal128() end, "xdbtx.decimal128: expected a string, got nil" },
  { "decimal128({})", function() x.decimal128({}) end, "xdbtx.decimal128: expected a string, got table" },
  { "binary()", function() x.binary() end, "xdbtx.binary: expected a string of bytes, got nil" },
  { "binary(s, {})", function() x.binary("a", {}) end,
    "xdbtx.binary: expected an integer subtype as argument 2, got table" },
  { "uuid({})", function() x.uuid({}) end, 'xdbtx.uuid: expected a string "8-4-4-4-12", got table' },
  { "regex()", function() x.regex() end, "xdbtx.regex: expected a pattern string, got nil" },
  { "regex(p, {})", function() x.regex("a", {}) end,
    "xdbtx.regex: expected a flags string as argument 2, got table" },
  { "code()", function() x.code() end, "xdbtx.code: expected a source string, got nil" },
  { "int32()", function() x.int32() end, "xdbtx.int32: expected an integer, got nil" },
  { "int32({})", function() x.int32({}) end, "xdbtx.int32: expected an integer, got table" },
  { "int64()", function() x.int64() end, "xdbtx.int64: expected an integer or a string of digits, got nil" },
  { "int64(true)", function() x.int64(true) end,
    "xdbtx.int64: expected an integer or a string of digits, got boolean true" },
  { 'double("x")', function() x.double("x") end, 'xdbtx.double: expected a number, got string "x"' },
  { "double()", function() x.double() end, "xdbtx.double: expected a number, got nil" },
  -- methods called with '.'
  { "oid.hex()", function() oid.hex() end, "hex: expected an ObjectId as self (did you call it with '.'?)" },
  { "oid.time()", function() oid.time() end, "time: expected an ObjectId as self (did you call it with '.'?)" },
  { "date.ms()", function() date.ms() end, "ms: expected a Date as self (did you call it with '.'?)" },
  { "ts.t()", function() ts.t() end, "t: expected a Timestamp as self (did you call it with '.'?)" },
  { "ts.i()", function() ts.i() end, "i: expected a Timestamp as self (did you call it with '.'?)" },
  { "dec.tostring()", function() dec.tostring() end,
    "tostring: expected a Decimal128 as self (did you call it with '.'?)" },
  { "bin.data()", function() bin.data() end, "data: expected a Binary as self (did you call it with '.'?)" },
  { "bin.subtype()", function() bin.subtype() end,
    "subtype: expected a Binary as self (did you call it with '.'?)" },
  { "bin.uuid()", function() bin.uuid() end, "uuid: expected a Binary as self (did you call it with '.'?)" },
  { "re.pattern()", function() re.pattern() end,
    "pattern: expected a Regex as self (did you call it with '.'?)" },
  { "re.flags()", function() re.flags() end, "flags: expected a Regex as self (did you call it with '.'?)" },
  { "code.code()", function() code.code() end, "code: expected a Code as self (did you call it with '.'?)" },
  { "i64.value()", function() i64.value() end,
    "value: expected an Int32, Int64 or Double as self (did you call it with '.'?)" },
  -- methods given another value as self
  { "oid.hex(date)", function() oid.hex(date) end,
    "hex: expected an ObjectId as self, got xdbtx.Date (did you call it with '.'?)" },
  { "date.ms(5)", function() date.ms(5) end,
    "ms: expected a Date as self, got number 5 (did you call it with '.'?)" },
  -- metamethods reached through debug.getmetatable
  { "__tostring on a table", function() debug.getmetatable(x.null).__tostring({}) end,
    "__tostring: expected an xdbtx typed value as self, got table" },
  { "__len on a number", function() debug.getmetatable(bin).__len(5) end,
    "#: expected a Binary as self, got number 5" },
}
if not jit then
  -- Lua 5.4 calls __lt for userdata < table; LuaJIT raises its own error
  cases[#cases + 1] = { "Int64 < table", function() return i64 < {} end,
    "comparison: expected a number, an Int32, an Int64 or a Date, got table" }
end

describe("codec: argument errors are xdbtx.Error values #luajit", function()
  for _, c in ipairs(cases) do
    it(c[1], function()
      local ok, err = pcall(c[2])
      assert.is_false(ok)
      assert.is_true(x.is_error(err), "not an xdbtx.Error: " .. tostring(err))
      assert.equal("argument", err.domain)
      assert.equal("argument", err.phase)
      assert.truthy(err.message:find(c[3], 1, true), "message: " .. err.message)
    end)
  end

  it("a string of the right content still converts a number, as before", function()
    assert.equal("1.5", tostring(x.decimal128(1.5)):match('"(.*)"'))
    assert.equal(3.0, x.double("3"):value())
  end)
end)
