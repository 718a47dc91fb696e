-- Decoding untrusted bytes: truncated, corrupted or hostile input raises an
-- xdbtx.Error (domain "codec", phase "decode") and never crashes; whatever
-- does decode re-encodes. (spec/fuzz/ pushes far more inputs through the
-- same path under AddressSanitizer.)
local x = require "xdbtx.core"
local U = dofile("spec/fixtures/codec_util.lua")

package.path = "./bench/lib/?.lua;" .. package.path
local docs = require "docs"

local function le32(n)
  return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 16777216) % 256)
end

local function doc(body)
  return le32(4 + #body + 1) .. body .. "\0"
end

local function decode_error(bytes)
  local err = U.refused(x.decode, bytes)
  assert.equal("codec", err.domain)
  assert.equal("decode", err.phase)
  return err
end

describe("codec: corrupt input #luajit", function()
  local good = x.encode(docs.medium())

  it("every truncation of a valid document is refused", function()
    for n = 0, #good - 1 do
      decode_error(good:sub(1, n))
    end
  end)

  it("trailing bytes are refused", function()
    decode_error(good .. "\0")
  end)

  it("every single-byte corruption decodes or is refused, never crashes", function()
    local decoded, refused = 0, 0
    for i = 1, #good do
      for _, b in ipairs({ 0, 1, 0x7f, 0x80, 0xff, (good:byte(i) + 1) % 256 }) do
        local bad = good:sub(1, i - 1) .. string.char(b) .. good:sub(i + 1)
        local ok, res = pcall(x.decode, bad)
        if ok then
          decoded = decoded + 1
          x.encode(res)
        else
          assert.is_true(x.is_error(res), tostring(res))
          assert.equal("decode", res.phase)
          refused = refused + 1
        end
      end
    end
    assert.is_true(decoded > 0 and refused > 0)
  end)

  local cases = {
    { "too short", "\5\0\0" },
    { "length larger than the data", le32(100) .. "\0" },
    { "length smaller than the data", le32(5) .. "\16a\0\1\0\0\0\0" },
    { "missing terminator", le32(5) .. "\1" },
    { "unknown element type", doc("\32a\0") },
    { "element running past the end", doc("\16a\0\1\0") },
    { "string length past the end", doc("\2a\0" .. le32(1000) .. "x\0") },
    { "string length zero", doc("\2a\0" .. le32(0)) },
    { "string without NUL terminator", doc("\2a\0" .. le32(2) .. "xy") },
    { "negative string length", doc("\2a\0\255\255\255\255x\0") },
    { "invalid UTF-8 in a string", doc("\2a\0" .. le32(2) .. "\255\0") },
    { "invalid UTF-8 in a key", doc("\16\255\0\1\0\0\0") },
    { "subdocument length past the parent", doc("\3a\0" .. le32(200) .. "\0") },
    { "subdocument without terminator", doc("\3a\0" .. le32(6) .. "\16\0") },
    { "binary length past the end", doc("\5a\0" .. le32(100) .. "\0abc") },
    { "old binary with a wrong inner length", doc("\5a\0" .. le32(7) .. "\2" .. le32(9) .. "abc") },
    { "regex without terminators", doc("\11a\0abc") },
    { "DBPointer (unsupported)", doc("\12a\0" .. le32(2) .. "c\0" .. string.rep("\0", 12)) },
    { "code with scope (unsupported)", doc("\15a\0" .. le32(19) .. le32(2) .. "c\0" .. le32(5) .. "\0") },
    { "key without terminator", le32(7) .. "\16abc" },
    -- keys long enough, and far enough from the end, for the 8-byte scan
    { "invalid UTF-8 in the first 8 bytes of a long key",
      doc("\16abc\255defgh\0\1\0\0\0\16padding-key\0\2\0\0\0") },
    { "invalid UTF-8 after 8 bytes of a long key",
      doc("\16abcdefghi\255j\0\1\0\0\0\16padding-key\0\2\0\0\0") },
    { "a truncated UTF-8 sequence ending a 7-byte key",
      doc("\16abcde\226\130\0\1\0\0\0\16padding-key\0\2\0\0\0") },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      decode_error(c[2])
    end)
  end

  it("the error names where it happened", function()
    local bad = x.encode({ a = { b = setmetatable({ "ok", "ok" }, x.array_mt) } })
    bad = bad:gsub("ok", "\255k", 2):gsub("\255k", "ok", 1)
    assert.equal("doc.a.b[2]: string is not valid UTF-8", decode_error(bad).message)
  end)

  it("nesting beyond 200 levels is refused when decoding", function()
    local body = "\16x\0\1\0\0\0"
    for _ = 1, 201 do body = "\3a\0" .. doc(body) end
    assert.truthy(decode_error(doc(body)).message:find("nesting deeper than 200 levels", 1, true))
  end)

  it("long and non-ASCII keys decode, whichever scan finds their end", function()
    local keys = { "k", "abcdefg", "abcdefgh", "abcdefghijklmnop", "naïve", "ключ-ключ-ключ", "鍵" }
    local t = {}
    for i, k in ipairs(keys) do t[k] = i end
    local d = x.decode(x.encode(t))
    for i, k in ipairs(keys) do assert.equal(i, d[k], k) end
  end)

  it("repeated strings and keys decode right (string cache)", function()
    local rows = {}
    for i = 1, 50 do rows[i] = { name = "n" .. (i % 5), tag = "same", ["k" .. (i % 7)] = i } end
    local d = x.decode(x.encode({ rows = rows }))
    for i = 1, 50 do
      assert.equal("n" .. (i % 5), d.rows[i].name)
      assert.equal("same", d.rows[i].tag)
      assert.equal(i, d.rows[i]["k" .. (i % 7)])
    end
    -- strings of one length that differ only inside, and many distinct
    -- short ones (more than the cache has slots, so slots are shared)
    local l = { "abcd", "abc", "abcde", "abcd", "", "abcdXefgh", "abcdYefgh",
      "abcdefghXabcdefgh", "abcdefghYabcdefgh" }
    for i = 1, 1500 do l[#l + 1] = string.format("%x", i * 7919 % 65536) end
    for i = 1, 300 do l[#l + 1] = string.char(65 + i % 26, 97 + math.floor(i / 26) % 26) end
    -- the cache compares strings of up to 8 bytes as one word: every
    -- length, and strings that differ only in their last byte, in one byte
    -- read by both halves of the word, or in trailing NULs
    for n = 1, 17 do
      local s = string.rep("q", n)
      l[#l + 1] = s
      l[#l + 1] = s:sub(1, -2) .. "r"
      if n >= 6 then l[#l + 1] = s:sub(1, n - 5) .. "r" .. s:sub(n - 3) end
    end
    for _, s in ipairs({ "a\0", "a", "\0", "\0\0\0", "abc\0", "abc", "" }) do
      l[#l + 1] = s
    end
    for n = 0, 38 do l[#l + 1] = "ab" .. string.rep("\0", n) end
    -- many words alike in their first half (cache sets are shared by many)
    for i = 1, 3000 do l[#l + 1] = string.format("abcd%04x", i) end
    for i = 1, 300 do l[#l + 1] = string.format("abcd%03x", i) end
    local bytes = x.encode({ l = l })
    for _ = 1, 2 do -- the second time from the cache
      d = x.decode(bytes)
      for i = 1, #l do assert.equal(l[i], d.l[i]) end
    end
    local t = {}
    for i = 1, #l do
      if not l[i]:find("\0") then t[l[i]], t[l[i] .. "-key"] = i, -i end
    end
    bytes = x.encode(t)
    for _ = 1, 2 do
      d = x.decode(bytes)
      for k, v in pairs(t) do assert.equal(v, d[k], k) end
      for k in pairs(d) do assert.truthy(t[k], k) end
    end
  end)

  it("a level beyond the element arena (65536) decodes too", function()
    local big = {}
    for i = 1, 70000 do big[i] = i % 1000 end
    local d = x.decode(x.encode({ big = big, after = "end" }))
    assert.equal(70000, #d.big)
    assert.equal(999, d.big[999])
    assert.equal(0, d.big[70000])
    assert.equal("end", d.after)
  end)

  it("a decode run by a finalizer inside another decode gets its own state", function()
    -- the inner decode must not touch the outer one's kept elements: the
    -- outer document's fields wait in the arena while the first is built.
    -- Run in a fresh Lua state (a process of its own, with a small heap and
    -- an eager collector), so that finalizers surely run during the decodes.
    local script = [[
      local x = require "xdbtx"
      local small = x.encode({ inner = { 1, 2, 3 }, s = "inner" })
      local ran, nested, bad, outer = 0, 0, 0, false
      local function finalizer()
        local t = x.decode(small)
        ran = ran + 1
        if outer then nested = nested + 1 end
        if t.s ~= "inner" or t.inner[3] ~= 3 then bad = bad + 1 end
      end
      local doc = {}
      for f = 1, 10 do
        local rows = {}
        for i = 1, 40 do rows[i] = { name = "row" .. i, tags = { "a", "b" }, n = f } end
        doc["field" .. f] = rows
      end
      local bytes = x.encode(doc)
      collectgarbage("setpause", 10)
      collectgarbage("setstepmul", 400)
      local wrong = 0
      for _ = 1, 30 do
        for _ = 1, 300 do
          if rawget(_G, "newproxy") then
            getmetatable(newproxy(true)).__gc = finalizer
          else
            setmetatable({}, { __gc = finalizer })
          end
        end
        outer = true
        local d = x.decode(bytes)
        outer = false
        for f = 1, 10 do
          local rows = d["field" .. f]
          if #rows ~= 40 or rows[40].n ~= f or rows[40].name ~= "row40" or rows[7].tags[2] ~= "b" then
            wrong = wrong + 1
          end
        end
      end
      collectgarbage()
      io.write(("nested %d bad %d wrong %d\n"):format(nested, bad, wrong))
    ]]
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local lua = rawget(_G, "jit") and (os.getenv("LUAJIT") or "luajit") or (os.getenv("LUA") or "lua5.4")
    local cmd = ("%s -e %q %q 2>&1"):format(lua, ("package.path=%q..package.path; package.cpath=%q"):format(
      "./lua/?.lua;", package.cpath), path)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    os.remove(path)
    local nested, bad, wrong = out:match("nested (%d+) bad (%d+) wrong (%d+)")
    assert.is_not_nil(nested, out)
    assert.is_true(tonumber(nested) > 0, "no finalizer ran inside a decode: " .. out)
    assert.equal("0", bad)
    assert.equal("0", wrong)
  end)

  it("deprecated symbol and undefined decode as string and null", function()
    assert.equal("sym", x.decode(doc("\14s\0" .. le32(4) .. "sym\0")).s)
    assert.equal(x.null, x.decode(doc("\6u\0")).u)
  end)
end)
