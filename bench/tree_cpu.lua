-- bench/tree_cpu.lua - the client CPU of a transaction tree over two clusters
-- against the same work on raw libmongoc.
--
--   make bench            (scripts/bench builds bench/tree_raw.c, starts the test server)
--   sh scripts/bench tree_cpu
--
-- The work of one round: a tree of two nodes, the root on cluster 1 and its
-- child on cluster 2, each doing insert_one, update_one and find_one, then
-- the commit phase (sequential, the default: two commits). The baseline,
-- bench/tree_raw.c, does the same on raw libmongoc: a session and a
-- transaction per cluster, the same six operations, the two commits. For
-- reference the same rounds also run the work as two one-cluster
-- client:transaction calls (not atomic across the clusters, so no
-- replacement: it shows how much of the ratio the one-cluster path has).
-- 1. CPU time (os.clock in this process, clock() in the C program: the
--    whole process, libmongoc's threads included), not wall time, of N
--    rounds; XDBTX_BENCH_ROUNDS (5) interleaved rounds of each side, the
--    best of each (the least disturbed by the server and other load on the
--    machine). N = XDBTX_BENCH_TREE_N (1500). Target: ratio <= 1.3.
-- 2. Instructions (valgrind --tool=callgrind, when valgrind is installed and
--    XDBTX_BENCH_NO_CALLGRIND is unset): each side run for 0 and for 300
--    rounds in processes of their own, the difference per round; machine
--    load does not change these counts, so they are the steadier ratio.
local xdbtx = require "xdbtx"
local now = require("xdbtx.core").now

local uri1 = os.getenv("XDBTX_TEST_URI") or os.getenv("XDBTX_URI")
local uri2 = os.getenv("XDBTX_TEST_URI2") or os.getenv("XDBTX_URI2")
assert(uri1 and uri2, "set XDBTX_TEST_URI and XDBTX_TEST_URI2 (make bench starts the test server)")
local N = tonumber(os.getenv("XDBTX_BENCH_TREE_N") or "1500")
local ROUNDS = tonumber(os.getenv("XDBTX_BENCH_ROUNDS") or "5")
local bin = (os.getenv("XDBTX_BENCH_BIN") or "build/bench") .. "/tree_raw"
local DB = "xdbtx_bench"

local a, b = xdbtx.client(uri1), xdbtx.client(uri2)
local ca, cb = a:collection(DB, "tree_lua"), b:collection(DB, "tree_lua")

local function node_ops(coll, i)
  coll:insert_one { _id = i, n = i }
  coll:update_one({ _id = i }, { ["$inc"] = { n = 1 } })
  return coll:find_one { _id = i }
end

local SIDES = {}
function SIDES.tree(i)
  return xdbtx.run {
    client = a, action = function() return node_ops(ca, i) end,
    children = { { client = b, action = function() return node_ops(cb, i) end } },
  }
end
function SIDES.two(i)
  a:transaction(function() node_ops(ca, i) end)
  b:transaction(function() node_ops(cb, i) end)
end

local function clean()
  ca:delete_many {}
  cb:delete_many {}
end

local function warm(f, base)
  for i = 1, 20 do f(base + i) end
end

-- `lua bench/tree_cpu.lua inner SIDE N`: only SIDE's rounds (for callgrind)
if arg and arg[1] == "inner" then
  local f = SIDES[arg[2]]
  clean()
  warm(f, 30000000)
  for i = 1, tonumber(arg[3]) do f(i) end
  clean()
  return
end

local function lua_round(f, base)
  local c0, w0 = os.clock(), now()
  for i = 1, N do f(base + i) end
  return os.clock() - c0, now() - w0
end

local function c_round()
  local p = io.popen(("%q %q %q %d tree_c 2>&1"):format(bin, uri1, uri2, N))
  local out = p:read("*a")
  p:close()
  local cpu, wall = tonumber(out:match("cpu_seconds ([%d.]+)")), tonumber(out:match("wall_seconds ([%d.]+)"))
  if not cpu then error("raw libmongoc: " .. bin .. " failed: " .. out, 0) end
  return cpu, wall
end

-- 1. CPU time, interleaved rounds
clean()
warm(SIDES.tree, 30000000)
warm(SIDES.two, 40000000)
clean()
local inf = math.huge
local best = { tree = { inf, 0 }, two = { inf, 0 }, c = { inf, 0 } }
local function keep(side, cpu, wall)
  if cpu < best[side][1] then best[side] = { cpu, wall } end
end
for r = 1, ROUNDS do
  keep("tree", lua_round(SIDES.tree, r * N))
  clean()
  local ok, ccpu, cwall = pcall(c_round)
  if not ok then print(ccpu) return end
  keep("c", ccpu, cwall)
  keep("two", lua_round(SIDES.two, r * N))
  clean()
end
local function line(what, side)
  print(("%s, %d rounds: cpu %.3f s (%.1f us/round), wall %.3f s (best of %d)"):format(what, N,
    best[side][1], best[side][1] / N * 1e6, best[side][2], ROUNDS))
end
line("tree over 2 clusters (xdbtx.run: 2 nodes x 3 operations, 2 commits)", "tree")
line("the same work on raw libmongoc (C, bench/tree_raw.c)", "c")
line("the same work as two client:transaction calls (reference)", "two")
print(("client CPU ratio tree / raw libmongoc: %.2f (target <= 1.3); two client:transaction / raw libmongoc: %.2f")
  :format(best.tree[1] / best.c[1], best.two[1] / best.c[1]))

-- 2. instructions under callgrind
local cg = require "callgrind"
if os.getenv("XDBTX_BENCH_NO_CALLGRIND") or not cg.available() then
  print("instructions: skipped (no valgrind, or XDBTX_BENCH_NO_CALLGRIND is set)")
  return
end
local CG_N = 300
local lua = os.getenv("LUA") or "lua5.4"
local paths = ("package.path=%q; package.cpath=%q"):format(package.path, package.cpath)
local function per_round(make_cmd) return cg.per_run(make_cmd, CG_N) end
local script = arg and arg[0] or "bench/tree_cpu.lua"
local function lua_cmd(side)
  return function(n) return ("%s -e %q %q inner %s %d"):format(lua, paths, script, side, n) end
end
local ok, err = pcall(function()
  local t = per_round(lua_cmd("tree"))
  local c = per_round(function(n) return ("%q %q %q %d tree_cg"):format(bin, uri1, uri2, n) end)
  local two = per_round(lua_cmd("two"))
  print(("instructions per round (callgrind, %d rounds less 0): tree %.0f, raw libmongoc %.0f, two client:transaction %.0f")
    :format(CG_N, t, c, two))
  print(("instruction ratio tree / raw libmongoc: %.2f (target <= 1.3); two client:transaction / raw libmongoc: %.2f")
    :format(t / c, two / c))
end)
if not ok then print("instructions: " .. tostring(err)) end
