-- Documents written by another BSON implementation (python3-bson, via
-- scripts/gen-fixtures): xdbtx must decode each to the values the generator
-- meant (spec/fixtures/manifest.lua) and, decoding with {exact = true},
-- re-encode every one byte for byte.
local x = require "xdbtx.core"
local U = dofile("spec/fixtures/codec_util.lua")
local fixtures = dofile("spec/fixtures/manifest.lua")(U.E)

describe("codec: fixtures from python3-bson #luajit", function()
  for _, f in ipairs(fixtures) do
    describe(f.name .. " (" .. f.what .. ")", function()
      local bytes = U.read("spec/fixtures/" .. f.file)

      it("has the generator's size", function()
        assert.equal(f.bytes, #bytes)
      end)

      it("decodes to the expected values", function()
        U.assert_same(x.decode(bytes), f.doc)
      end)

      it("re-encodes byte for byte", function()
        assert.equal(U.hex(bytes), U.hex(x.encode(x.decode(bytes, { exact = true }))))
      end)

      it("re-encodes to the same values from plain tables", function()
        U.assert_same(x.decode(x.encode(x.decode(bytes))), f.doc)
      end)
    end)
  end
end)
