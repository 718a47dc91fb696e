-- bench/txn.lua - what a one-cluster transaction costs the client, against
-- the same transactions on raw libmongoc in C (bench/txn_raw.c).
--
--   make bench            (scripts/bench builds bench/txn_raw.c, starts the test server)
--   sh scripts/bench txn
--
-- Workload: transactions of K = 1, 3, 10, 30 operations on the sample
-- documents of bench/lib/docs.lua (small ~200 B, medium ~1.5 KB, large
-- ~95 KB); operation j (0-based) is, by j % 3, insert_one of the document
-- with a new _id, update_one ($inc) of it, find_one of it; then the commit.
-- The C program does the same with the same BSON (written to a file here),
-- twice: inserting that BSON as it is and not reading the found document
-- (libmongoc alone: the baseline of the target), and doing the document work
-- a C application does, building each inserted document with bson_append_*
-- and walking the found one (txn_raw's "docs" mode: the C floor of
-- bench/codec.lua), which xdbtx's conversions of Lua tables stand for.
-- 1. Messages: a 3-operation transaction sends 3 operations + 1 commit
--    (counted with client:on_command).
-- 2. Client CPU (os.clock here, clock() there: whole processes), per
--    transaction, XDBTX_BENCH_ROUNDS (5) interleaved rounds of each side,
--    best of each, and the ratio xdbtx / raw libmongoc (target <= 1.15),
--    then the ratio to C+docs (the C side with its document work).
--    Each round runs about XDBTX_BENCH_OPS (3000) operations (300 for the
--    large document).
--    Then the small document's 3-operation transaction also through the
--    core's methods directly, without the Lua layer: how the gap to C splits.
-- 3. Lua garbage per transaction (collectgarbage("count") with the
--    collector stopped) after 100 and after 1000 transactions, and per
--    operation (a third of it: the filters, the update and the found
--    document included): the same figure twice means nothing grows with the
--    number of transactions.
-- 4. With XDBTX_BENCH_CALLGRIND=1 (valgrind installed): instructions per
--    transaction of the three sides for K = 1, 3 and 30 on the small document
--    and K = 3 on the medium one (and the core's methods alone for K = 3, small),
--    each side in processes of its own for N and for 0 transactions, the
--    difference per transaction (independent of the machine's load).
local xdbtx = require "xdbtx"
local docs = require "docs"

local uri = os.getenv("XDBTX_TEST_URI") or os.getenv("XDBTX_URI")
assert(uri, "set XDBTX_TEST_URI (make bench starts the test server)")
local ROUNDS = tonumber(os.getenv("XDBTX_BENCH_ROUNDS") or "5")
local OPS = tonumber(os.getenv("XDBTX_BENCH_OPS") or "3000")
local bin = (os.getenv("XDBTX_BENCH_BIN") or "build/bench") .. "/txn_raw"
local DB = "xdbtx_bench"
local client = xdbtx.client(uri)

local SAMPLES = {}
for _, name in ipairs { "small", "medium", "large" } do
  local d = docs[name]()
  d._id = nil
  SAMPLES[name] = d
end

local next_id = 0
local function txn(coll, doc, k)
  client:transaction(function()
    local id
    for j = 0, k - 1 do
      local m = j % 3
      if m == 0 then
        next_id = next_id + 1
        id = next_id
        doc._id = id
        coll:insert_one(doc)
      elseif m == 1 then
        coll:update_one({ _id = id }, { ["$inc"] = { n = 1 } })
      else
        coll:find_one { _id = id }
      end
    end
  end)
end

-- The small document's 3-operation transaction through the core's session
-- and collection methods directly: what client:transaction and the
-- Collection methods call, without the Lua layer (no retry loop, context,
-- events or fast-method dispatch). Against C, what the binding and the codec
-- cost alone.
local function core_txn(coll, doc)
  local cs = client._core:start_session()
  local ccoll = coll._core
  cs:start_transaction()
  next_id = next_id + 1
  local id = next_id
  doc._id = id
  ccoll:insert_one(cs, doc)
  ccoll:update_one(cs, { _id = id }, { ["$inc"] = { n = 1 } })
  ccoll:find_one(cs, { _id = id })
  cs:commit()
  cs:close()
end

-- `lua bench/txn.lua inner K DOC N`: only the Lua side's N transactions (for
-- callgrind); K = "core": core_txn on the small document.
if arg and arg[1] == "inner" then
  local k, name, n = tonumber(arg[2]), arg[3], tonumber(arg[4])
  local coll = client:collection(DB, "txn_cg")
  local function one()
    if k then return txn(coll, SAMPLES[name], k) end
    return core_txn(coll, SAMPLES.small)
  end
  for _ = 1, 20 do one() end
  for _ = 1, n do one() end
  coll:delete_many {}
  os.exit(0)
end

local function docfile(name)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(xdbtx.encode(SAMPLES[name]))
  f:close()
  return path
end
local FILES = {}
for name in pairs(SAMPLES) do FILES[name] = docfile(name) end

-- 1. messages
do
  local coll = client:collection(DB, "txn_msgs")
  local names = {}
  local off = client:on_command(function(ev)
    if ev.type == "started" and (ev.database_name == DB or ev.command_name == "commitTransaction") then
      names[#names + 1] = ev.command_name
    end
  end)
  txn(coll, SAMPLES.small, 3)
  off()
  coll:delete_many {}
  print(("messages for a 3-operation transaction: %d (%s); expected 4 (3 operations + commitTransaction)")
    :format(#names, table.concat(names, ", ")))
end

-- 2. client CPU
local function lua_round(coll, doc, k, n)
  local c0 = os.clock()
  for _ = 1, n do txn(coll, doc, k) end
  return os.clock() - c0
end

-- The C program's command for n transactions of k operations on document
-- `name`; mode: "" (libmongoc alone) or "docs" (with the document work).
local function c_cmd(k, name, n, mode)
  return ("%q %q %d txn_c %d %q %s"):format(bin, uri, n, k, FILES[name], mode or "")
end

local function c_round(k, name, n, mode)
  local p = io.popen(c_cmd(k, name, n, mode) .. " 2>&1")
  local out = p:read("a")
  p:close()
  local cpu = tonumber(out:match("cpu_seconds ([%d.]+)"))
  if not cpu then error("raw libmongoc: " .. bin .. " failed: " .. out, 0) end
  return cpu
end

print(("%-4s %-7s %7s %6s %12s %12s %7s %12s %7s"):format("ops", "doc", "bytes", "txns", "xdbtx us", "C us",
  "ratio", "C+docs us", "ratio"))
local worst, worst_large, worst_docs = 0, 0, 0
for _, name in ipairs { "small", "medium", "large" } do
  local bytes = #xdbtx.encode(SAMPLES[name])
  for _, k in ipairs { 1, 3, 10, 30 } do
    local total = name == "large" and OPS // 10 or OPS
    local n = math.max(5, total // k)
    local coll = client:collection(DB, "txn_lua")
    coll:delete_many {}
    for _ = 1, 5 do txn(coll, SAMPLES[name], k) end
    local best_l, best_c, best_d = math.huge, math.huge, math.huge
    for _ = 1, ROUNDS do
      best_l = math.min(best_l, lua_round(coll, SAMPLES[name], k, n))
      coll:delete_many {}
      best_c = math.min(best_c, c_round(k, name, n))
      best_d = math.min(best_d, c_round(k, name, n, "docs"))
    end
    local ratio = best_l / best_c
    if name == "large" then
      worst_large = math.max(worst_large, ratio)
    else
      worst = math.max(worst, ratio)
    end
    worst_docs = math.max(worst_docs, best_l / best_d)
    print(("%-4d %-7s %7d %6d %12.1f %12.1f %7.2f %12.1f %7.2f"):format(k, name, bytes, n, best_l / n * 1e6,
      best_c / n * 1e6, ratio, best_d / n * 1e6, best_l / best_d))
    coll:delete_many {}
  end
end
print(("client CPU ratio xdbtx / raw libmongoc: at most %.2f for the small and medium documents (target <= 1.15:" ..
  " %s); at most %.2f for the large one (the C side inserts prebuilt BSON, xdbtx converts a 95 KB table);" ..
  " best of %d interleaved rounds"):format(worst, worst <= 1.15 and "met" or "missed", worst_large, ROUNDS))
print(("against C that also builds its documents and reads the found one (C+docs): at most %.2f for all three")
  :format(worst_docs))

-- 2b. where the gap is: the small document's 3-operation transaction also
-- through core_txn, interleaved with the other two.
do
  local coll = client:collection(DB, "txn_core")
  local doc = SAMPLES.small
  local n = OPS // 3
  for _ = 1, 5 do core_txn(coll, doc) end
  local best_l, best_k, best_c = math.huge, math.huge, math.huge
  for _ = 1, ROUNDS do
    best_l = math.min(best_l, lua_round(coll, doc, 3, n))
    local c0 = os.clock()
    for _ = 1, n do core_txn(coll, doc) end
    best_k = math.min(best_k, os.clock() - c0)
    coll:delete_many {}
    best_c = math.min(best_c, c_round(3, "small", n))
  end
  print(("3-operation transaction, small document, %d each, best of %d interleaved rounds: xdbtx %.1f us," ..
    " the core's methods alone %.1f us, raw libmongoc %.1f us; ratios to C %.2f and %.2f (the Lua layer" ..
    " %.2f of it, the binding and the codec %.2f)"):format(n, ROUNDS, best_l / n * 1e6, best_k / n * 1e6,
    best_c / n * 1e6, best_l / best_c, best_k / best_c, (best_l - best_k) / best_c, best_k / best_c - 1))
  coll:delete_many {}
end

-- 3. garbage per transaction
do
  local coll = client:collection(DB, "txn_gc")
  for _ = 1, 50 do txn(coll, SAMPLES.small, 3) end
  collectgarbage("collect")
  local figures = {}
  for _, n in ipairs { 100, 1000 } do
    collectgarbage("collect")
    collectgarbage("stop")
    local before = collectgarbage("count")
    for _ = 1, n do txn(coll, SAMPLES.small, 3) end
    local kb = (collectgarbage("count") - before) / n
    collectgarbage("restart")
    figures[#figures + 1] = ("%.2f KB after %d (%.2f KB an operation)"):format(kb, n, kb / 3)
  end
  coll:delete_many {}
  print(("Lua garbage per 3-operation transaction (small document): %s (target <= 2.5 KB, not growing)")
    :format(table.concat(figures, ", ")))
end

-- 4. instructions
local cg = require "callgrind"
if os.getenv("XDBTX_BENCH_CALLGRIND") == "1" and cg.available() then
  -- enough transactions that the Lua collector's cycles are in the figure
  -- (with 20 transactions of 30 operations it came out 3% low)
  local N = 1500
  local lua = os.getenv("LUA") or "lua5.4"
  local lpath = "-e 'package.path=\"./lua/?.lua;./bench/lib/?.lua;\"..package.path;" ..
    " package.cpath=\"./build/5.4/?.so;\"..package.cpath'"
  for _, case in ipairs { { 1, "small" }, { 3, "small" }, { 30, "small" }, { 3, "medium" } } do
    local k, name = case[1], case[2]
    local n = math.max(100, N // k)
    local l = cg.per_run(function(m)
      return ("%s %s bench/txn.lua inner %d %s %d"):format(lua, lpath, k, name, m)
    end, n)
    local function c_side(mode)
      return cg.per_run(function(m) return c_cmd(k, name, m, mode) end, n)
    end
    local c, d = c_side(""), c_side("docs")
    print(("instructions per %d-operation transaction (callgrind, %s document): xdbtx %.0f, raw libmongoc %.0f," ..
      " ratio %.2f; C+docs %.0f, ratio %.2f"):format(k, name, l, c, l / c, d, l / d))
    if k == 3 and name == "small" then
      local core = cg.per_run(function(m)
        return ("%s %s bench/txn.lua inner core small %d"):format(lua, lpath, m)
      end, n)
      print(("  of which the Lua layer %.0f: the core's methods alone take %.0f (ratio to C %.2f)")
        :format(l - core, core, core / c))
    end
  end
end
for _, path in pairs(FILES) do os.remove(path) end
