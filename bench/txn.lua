-- bench/txn.lua - what one transaction costs.
--
--   make bench            (scripts/bench: builds bench/txn_raw.c, starts the test server)
--
-- 1. Round trips: a transaction of 3 operations (insert, update, find_one) is
--    run once and the commands the server received are read back from its
--    command log ({xdbtxCommandLog: 1}, the bundled test server only).
--    Expected: exactly 4 (3 operations + commitTransaction).
-- 2. Client CPU: N such transactions through xdbtx (os.clock, this process)
--    and through bench/txn_raw.c on raw libmongoc (clock(), printed by it),
--    against the same server in the same run, alternating, best of
--    XDBTX_BENCH_ROUNDS (5) each. Target: ratio <= 1.3.
--    N = XDBTX_BENCH_N (default 3000).
local xdbtx = require "xdbtx"
local now = require("xdbtx.core").now or os.time

local uri = os.getenv("XDBTX_TEST_URI") or os.getenv("XDBTX_URI")
assert(uri, "set XDBTX_TEST_URI (make bench starts the test server)")
local N = tonumber(os.getenv("XDBTX_BENCH_N") or "3000")
local client = xdbtx.client(uri)
local DB = "xdbtx_bench"

local function txn(coll, i)
  client:transaction(function()
    coll:insert_one { _id = i, n = i }
    coll:update_one({ _id = i }, { ["$inc"] = { n = 1 } })
    coll:find_one { _id = i }
  end)
end

-- 1. round trips
do
  local coll = client:collection(DB, "txn_rt")
  coll:delete_many {}
  local ok = pcall(client.command, client, "admin",
    xdbtx.ordered { { "xdbtxCommandLog", 1 }, { "clear", true } })
  if not ok then
    print("round trips: the server has no command log (xdbtxCommandLog); skipped")
  else
    txn(coll, 1)
    local log = client:command("admin", { xdbtxCommandLog = 1 }).commands or {}
    local names = {}
    for _, c in ipairs(log) do
      if c.db == DB or c.name == "commitTransaction" or c.name == "abortTransaction" then
        names[#names + 1] = c.name
      end
    end
    print(("round trips for a 3-operation transaction: %d (%s); expected 4"):format(#names,
      table.concat(names, ", ")))
  end
end

-- 2. client CPU, xdbtx vs raw libmongoc: ROUNDS alternating rounds of each,
-- the best (lowest) CPU time of each side, which is the least disturbed by
-- other load on the machine (the server runs on it too).
local ROUNDS = tonumber(os.getenv("XDBTX_BENCH_ROUNDS") or "5")
local bin = (os.getenv("XDBTX_BENCH_BIN") or "build/bench") .. "/txn_raw"

local function lua_round(coll, base)
  local c0, w0 = os.clock(), now()
  for i = 1, N do txn(coll, base + i) end
  return os.clock() - c0, now() - w0
end

local function c_round()
  local p = io.popen(("%q %q %d txn_c 2>&1"):format(bin, uri, N))
  local out = p:read("*a")
  p:close()
  local cpu, wall = tonumber(out:match("cpu_seconds ([%d.]+)")), tonumber(out:match("wall_seconds ([%d.]+)"))
  if not cpu then error("raw libmongoc: " .. bin .. " failed: " .. out, 0) end
  return cpu, wall
end

do
  local coll = client:collection(DB, "txn_lua")
  coll:delete_many {}
  for i = 1, 20 do txn(coll, 10000000 + i) end
  local best = { lua = math.huge, c = math.huge, lua_wall = 0, c_wall = 0 }
  for r = 1, ROUNDS do
    local cpu, wall = lua_round(coll, r * N)
    if cpu < best.lua then best.lua, best.lua_wall = cpu, wall end
    coll:delete_many {}
    local ok, ccpu, cwall = pcall(c_round)
    if not ok then print(ccpu) return end
    if ccpu < best.c then best.c, best.c_wall = ccpu, cwall end
  end
  print(("xdbtx (Lua): %d transactions, cpu %.3f s (%.1f us/txn), wall %.3f s (best of %d)"):format(
    N, best.lua, best.lua / N * 1e6, best.lua_wall, ROUNDS))
  print(("raw libmongoc (C): %d transactions, cpu %.3f s (%.1f us/txn), wall %.3f s (best of %d)"):format(
    N, best.c, best.c / N * 1e6, best.c_wall, ROUNDS))
  print(("client CPU ratio xdbtx / raw libmongoc: %.2f (target <= 1.3)"):format(best.lua / best.c))
end
