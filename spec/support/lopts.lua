--[[
spec/support/lopts.lua - the option table of docs/api.md, made from the rows
of src/lopts.c (specs[]) and the operation bits of src/lbind.h, so that the
table and the parser cannot drift (spec/api_doc_spec.lua compares them;
scripts/gen-option-table prints the table to paste into docs/api.md).

  L.rows(root)     -> { { lua, mongo, kind, mask, methods = { name, ... } }, ... } in lopts.c order
  L.markdown(root) -> the table, as docs/api.md holds it between its markers
  L.section(text)  -> the table docs/api.md's text holds between the markers, or nil
  L.update(root)   -> rewrite that part of docs/api.md with L.markdown
  L.METHODS        -> bit name -> the public methods that parse with that bit

Written to parse under LuaJIT too (busted loads every spec file there): the
C expressions are evaluated by Lua 5.4 through load(). The bit -> method map below is this file's knowledge of which binding
function parses its options with which XDBTX_M_* bit; spec/api_doc_spec.lua
checks it against the real parser (every option accepted where the table
says, refused as unknown elsewhere).
]]

local L = {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Public methods (as docs/api.md names them) per operation bit.
L.METHODS = {
  INSERT_ONE = { "insert_one" },
  INSERT_MANY = { "insert_many" },
  UPDATE = { "update_one", "update_many" },
  REPLACE = { "replace_one" },
  DELETE = { "delete_one", "delete_many" },
  FIND = { "find" },
  FIND_ONE = { "find_one" },
  FAM_UPDATE = { "find_one_and_update" },
  FAM_REPLACE = { "find_one_and_replace" },
  FAM_DELETE = { "find_one_and_delete" },
  COUNT = { "count_documents" },
  AGGREGATE = { "aggregate" },
  COMMAND = { "client:command", "db:command" },
  DISTINCT = { "distinct" },
  EST_COUNT = { "estimated_document_count" },
  BULK = { "bulk_write" },
  BULK_INSERT = { "bulk insert_one" },
  BULK_UPDATE = { "bulk update_one", "bulk update_many" },
  BULK_REPLACE = { "bulk replace_one" },
  BULK_DELETE = { "bulk delete_one", "bulk delete_many" },
  CREATE_INDEX = { "create_index" },
  CREATE_INDEXES = { "create_indexes" },
  INDEX_MODEL = { "create_indexes entry" },
  DDL = { "drop", "drop_index", "drop_indexes", "db:drop" },
  LIST = { "list_indexes", "db:list_collection_names" },
  LIST_DATABASES = { "client:list_database_names" },
  TXN = { "transactions" },
  SESSION = { "client:start_session" },
  CLIENT = { "xdbtx.client" },
  DEFAULTS = { "defaults" },
}

-- What each kind of row takes, in the table's words.
L.KINDS = {
  K_DOC = "document",
  K_ODOC = "order-sensitive document",
  K_HINT = "index name, or order-sensitive key document",
  K_ARRAY = "list",
  K_ANY = "any value",
  K_UINT = "integer >= 0",
  K_POS32 = "integer 1..2147483647",
  K_BOOL = "boolean",
  K_STR = "string",
  K_WC = "`{ w = n \\| \"majority\" \\| tag, j = bool, wtimeout = ms }`",
  K_RC = "level string (`\"local\"`, `\"majority\"`, `\"snapshot\"`, ...) or `{ level = }`",
  K_RP = "`\"primary\"`, `\"primaryPreferred\"`, `\"secondary\"`, `\"secondaryPreferred\"`, `\"nearest\"`",
  K_RETDOC = "`\"before\"` or `\"after\"`",
  K_TXN = "table of transaction options",
  K_PAYLOAD = "document (checked and encoded by the method)",
}

-- bit name -> value, in bit order.
local function bits(root)
  local h = read(root .. "/src/lbind.h")
  local out, order = {}, {}
  for name, shift in h:gmatch("XDBTX_M_([%u_]+)%s*=%s*1%s*<<%s*(%d+)") do
    out[name] = math.floor(2 ^ tonumber(shift))
    order[#order + 1] = name
  end
  assert(#order > 20, "src/lbind.h: no XDBTX_M_* bits found")
  return out, order
end

-- Evaluate a C mask expression of lopts.c (|, &, ~, <<, -, parentheses).
local function eval(expr, env)
  local lua = expr:gsub("(%d+)u", "%1"):gsub("XDBTX_M_([%u_]+)", "B_%1")
  local f = assert(load("return " .. lua, "=mask", "t", env))
  return f()
end

function L.rows(root)
  root = root or "."
  local b, order = bits(root)
  local env = {}
  for k, v in pairs(b) do env["B_" .. k] = v end
  local src = read(root .. "/src/lopts.c"):gsub("/%*.-%*/", ""):gsub("\\\n", " ")
  for name, body in src:gmatch("#define%s+(M_[%u_]+)%s+(.-)\n") do
    env[name] = eval(body, env)
  end
  local array = assert(src:match("optspec_t%s+specs%[%]%s*=%s*(%b{})"), "src/lopts.c: no specs[] table")
  local rows = {}
  for row in array:sub(2, -2):gmatch("%b{}") do
    local lua, mongo, kind, mask = row:match('^{%s*"([%w_]+)"%s*,%s*(%S-)%s*,%s*(K_[%w_]+)%s*,%s*(.-)%s*}$')
    assert(lua, "src/lopts.c: a specs[] row I cannot read: " .. row)
    local m = eval(mask:gsub("%s+", " "), env)
    local methods = {}
    for _, bit in ipairs(order) do
      if math.floor(m / b[bit]) % 2 == 1 then
        for _, name in ipairs(assert(L.METHODS[bit], "no methods for bit XDBTX_M_" .. bit)) do
          methods[#methods + 1] = name
        end
      end
    end
    rows[#rows + 1] = { lua = lua, mongo = mongo ~= "NULL" and mongo:match('^"(.*)"$') or nil,
                        kind = kind, mask = m, methods = methods }
  end
  return rows
end

L.BEGIN = "<!-- option table: generated from src/lopts.c by scripts/gen-option-table; spec/api_doc_spec.lua checks it -->"
L.END = "<!-- end of option table -->"

function L.markdown(root)
  local out = { "| option | value | sent as | taken by |", "|---|---|---|---|" }
  for _, r in ipairs(L.rows(root)) do
    out[#out + 1] = ("| `%s` | %s | %s | %s |"):format(r.lua, assert(L.KINDS[r.kind], r.kind),
      r.mongo and ("`" .. r.mongo .. "`") or "—", table.concat(r.methods, ", "))
  end
  return table.concat(out, "\n")
end

local function plain(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

function L.section(text)
  return text:match(plain(L.BEGIN) .. "\n(.-)\n" .. plain(L.END))
end

function L.update(root)
  root = root or "."
  local path = root .. "/docs/api.md"
  local text = read(path)
  local s, e = text:find(plain(L.BEGIN) .. "\n.-\n" .. plain(L.END))
  assert(s, path .. ": the option table's markers are missing")
  local f = assert(io.open(path, "wb"))
  f:write(text:sub(1, s - 1), L.BEGIN, "\n", L.markdown(root), "\n", L.END, text:sub(e + 1))
  f:close()
end

return L
