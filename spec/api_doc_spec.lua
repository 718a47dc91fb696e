--[[
spec/api_doc_spec.lua - docs/api.md cannot drift from the code:
* its option table is exactly what spec/support/lopts.lua makes of
  src/lopts.c's rows (regenerate with `sh scripts/gen-option-table --update`);
* each method accepts exactly the options that table gives it: every option
  key is tried on every method with a value no option takes (a coroutine), and
  the error must be "unknown option" exactly where the table says the method
  does not take the key (so the table's bit -> method map is right too);
* every public function of the module, every method of Client, Database,
  Collection, Session, Cursor and Error, and every method of the typed values
  (src/codec_values.c's tables) is named in it.
These run without a server: options are checked before anything is sent.
]]
if _VERSION ~= "Lua 5.4" then return end -- Lua 5.4 only (the LuaJIT run loads every spec)
local L = dofile("spec/support/lopts.lua")

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("docs/api.md", function()
  local doc = read("docs/api.md")

  it("holds the option table generated from src/lopts.c", function()
    local section = L.section(doc)
    assert(section, "docs/api.md: the option table's markers are missing")
    assert(section == L.markdown("."), "docs/api.md's option table differs from src/lopts.c's rows:" ..
      " run sh scripts/gen-option-table --update")
  end)

  describe("option table against the parser", function()
    local x = require "xdbtx"
    local core = require "xdbtx.core"
    local client = x.client("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200", { app_name = "api_doc_spec" })
    local coll = client:collection("api_doc_spec", "c")
    local db = client:database("api_doc_spec")
    local function one(k, v) return { [k] = v } end
    local function with(base, k, v)
      local t = {}
      for a, b in pairs(base) do t[a] = b end
      t[k] = v
      return t
    end
    local SET = function() return { ["$set"] = { a = 1 } } end
    local bulk_base = {
      insert_one = function() return { document = {} } end,
      update_one = function() return { filter = {}, update = SET() } end,
      update_many = function() return { filter = {}, update = SET() } end,
      replace_one = function() return { filter = {}, replacement = { a = 1 } } end,
      delete_one = function() return { filter = {} } end,
      delete_many = function() return { filter = {} } end,
    }
    -- label (as the table names methods) -> function(key, value) calling it
    local invokers = {
      insert_one = function(k, v) return coll:insert_one({}, one(k, v)) end,
      insert_many = function(k, v) return coll:insert_many({ {} }, one(k, v)) end,
      update_one = function(k, v) return coll:update_one({}, SET(), one(k, v)) end,
      update_many = function(k, v) return coll:update_many({}, SET(), one(k, v)) end,
      replace_one = function(k, v) return coll:replace_one({}, { a = 1 }, one(k, v)) end,
      delete_one = function(k, v) return coll:delete_one({}, one(k, v)) end,
      delete_many = function(k, v) return coll:delete_many({}, one(k, v)) end,
      find = function(k, v) return coll:find({}, one(k, v)) end,
      find_one = function(k, v) return coll:find_one({}, one(k, v)) end,
      find_one_and_update = function(k, v) return coll:find_one_and_update({}, SET(), one(k, v)) end,
      find_one_and_replace = function(k, v) return coll:find_one_and_replace({}, { a = 1 }, one(k, v)) end,
      find_one_and_delete = function(k, v) return coll:find_one_and_delete({}, one(k, v)) end,
      count_documents = function(k, v) return coll:count_documents({}, one(k, v)) end,
      aggregate = function(k, v) return coll:aggregate({}, one(k, v)) end,
      ["client:command"] = function(k, v) return client:command("admin", { ping = 1 }, one(k, v)) end,
      ["db:command"] = function(k, v) return db:command({ ping = 1 }, one(k, v)) end,
      distinct = function(k, v) return coll:distinct("a", {}, one(k, v)) end,
      estimated_document_count = function(k, v) return coll:estimated_document_count(one(k, v)) end,
      bulk_write = function(k, v) return coll:bulk_write({ { insert_one = { document = {} } } }, one(k, v)) end,
      create_index = function(k, v) return coll:create_index({ a = 1 }, one(k, v)) end,
      create_indexes = function(k, v) return coll:create_indexes({ { keys = { a = 1 } } }, one(k, v)) end,
      ["create_indexes entry"] = function(k, v) return coll:create_indexes({ with({ keys = { a = 1 } }, k, v) }) end,
      drop = function(k, v) return coll:drop(one(k, v)) end,
      drop_index = function(k, v) return coll:drop_index("a_1", one(k, v)) end,
      drop_indexes = function(k, v) return coll:drop_indexes(one(k, v)) end,
      ["db:drop"] = function(k, v) return db:drop(one(k, v)) end,
      list_indexes = function(k, v) return coll:list_indexes(one(k, v)) end,
      ["db:list_collection_names"] = function(k, v) return db:list_collection_names({}, one(k, v)) end,
      ["client:list_database_names"] = function(k, v) return client:list_database_names(one(k, v)) end,
      transactions = function(k, v) return client:transaction(function() end, one(k, v)) end,
      ["client:start_session"] = function(k, v) return core.check_options("session", one(k, v), "start_session") end,
      ["xdbtx.client"] = function(k, v) return x.client("mongodb://127.0.0.1:1/", one(k, v)) end,
      defaults = function(k, v) return client:collection("api_doc_spec", "d", one(k, v)) end,
    }
    for kind, base in pairs(bulk_base) do
      invokers["bulk " .. kind] = function(k, v)
        return coll:bulk_write({ { [kind] = with(base(), k, v) } })
      end
    end
    -- An invoker answers for its own label; xdbtx.client also takes the defaults.
    local answers = { ["xdbtx.client"] = { "xdbtx.client", "defaults" } }

    local accepted = {} -- key -> set of labels
    local keys = {}
    for _, r in ipairs(L.rows(".")) do
      if not accepted[r.lua] then
        accepted[r.lua] = {}
        keys[#keys + 1] = r.lua
      end
      for _, m in ipairs(r.methods) do accepted[r.lua][m] = true end
    end
    for _, r in ipairs(L.rows(".")) do
      for _, m in ipairs(r.methods) do
        it("has an invoker for '" .. m .. "'", function() assert(invokers[m], "no invoker for " .. m) end)
      end
    end

    local labels = {}
    for label in pairs(invokers) do labels[#labels + 1] = label end
    table.sort(labels)
    for _, label in ipairs(labels) do
      it(label .. " takes exactly the options the table gives it", function()
        local wrong = {}
        for _, k in ipairs(keys) do
          local takes = false
          for _, a in ipairs(answers[label] or { label }) do takes = takes or accepted[k][a] == true end
          local ok, err = pcall(invokers[label], k, coroutine.create(print))
          local msg = type(err) == "table" and tostring(err.message) or tostring(err)
          local unknown = not ok and msg:find("unknown option '" .. k .. "'", 1, true) ~= nil
          if ok then
            wrong[#wrong + 1] = k .. ": accepted a coroutine"
          elseif takes == unknown then
            wrong[#wrong + 1] = ("%s: the table says %s, the parser said: %s"):format(k,
              takes and "taken" or "not taken", msg)
          end
        end
        assert(#wrong == 0, label .. ":\n  " .. table.concat(wrong, "\n  "))
      end)
    end
  end)

  it("names every public function and method", function()
    local x = require "xdbtx"
    local missing = {}
    local function need(text)
      if not doc:find(text, 1, true) then missing[#missing + 1] = text end
    end
    for k in pairs(x) do need("xdbtx." .. k) end
    local objects = { client = x.Client, db = x.Database, coll = x.Collection, s = x.Session, cursor = x.Cursor }
    for prefix, mt in pairs(objects) do
      for k, v in pairs(mt) do
        if type(v) == "function" and not k:match("^_") then need("`" .. prefix .. ":" .. k .. "(") end
      end
    end
    for k, v in pairs(x.Error.__index) do
      if type(v) == "function" then need("`err:" .. k .. "(") end
    end
    local prefixes = { oid = "oid", date = "date", ts = "ts", dec = "dec", bin = "bin", re = "re",
                       code = "code", num = "n" }
    local src = read("src/codec_values.c")
    local kinds = 0
    for kind, body in src:gmatch("luaL_Reg%s+(%w+)_methods%[%]%s*=%s*(%b{})") do
      kinds = kinds + 1
      for name in body:gmatch('{"(%w+)"') do
        need("`" .. assert(prefixes[kind], "a new kind of value: " .. kind) .. ":" .. name .. "()")
      end
    end
    assert(kinds >= 8, "src/codec_values.c: no method tables found")
    assert(#missing == 0, "docs/api.md does not name: " .. table.concat(missing, ", "))
  end)
end)

-- Links of the shipped Markdown files: every relative link names a file of the
-- tree, every #anchor a heading of its file (GitHub's slugs).
describe("links in README.md and docs/*.md", function()
  local function slug(heading)
    return (heading:lower():gsub("[^%w%s%-_]", ""):gsub(" ", "-"))
  end
  local function anchors_of(text)
    local anchors, in_code = {}, false
    for line in text:gmatch("[^\n]*") do
      if line:match("^%s*```") then in_code = not in_code end
      local h = not in_code and line:match("^#+%s+(.-)%s*$")
      if h then anchors[slug(h)] = true end
    end
    return anchors
  end
  for _, path in ipairs { "README.md", "docs/api.md", "docs/internals.md" } do
    it(path .. " links only to what exists", function()
      local text = read(path)
      local dir = path:match("^(.*/)") or ""
      local bad = {}
      for target in text:gmatch("%]%(([^)%s]+)%)") do
        if not target:match("^%a+:") then
          local file, anchor = target:match("^([^#]*)#?(.*)$")
          local f = io.open(file == "" and path or dir .. file, "rb")
          if not f then
            bad[#bad + 1] = target .. " (no such file)"
          else
            local body = f:read("a")
            f:close()
            if anchor ~= "" and not anchors_of(body)[anchor] then
              bad[#bad + 1] = target .. " (no such heading)"
            end
          end
        end
      end
      assert(#bad == 0, path .. ": " .. table.concat(bad, ", "))
    end)
  end
end)
