-- bench/journal.lua - what the journal adds to a transaction tree.
--
--   make bench            (scripts/bench starts the test server)
--   sh scripts/bench journal
--
-- 1. Messages on the wire for a journalled tree over K = 2 and 3 clusters
--    (a root and K children, node i on cluster ((i - 1) % K) + 1, each node
--    one insert_one; the journal on cluster 1), counted with
--    client:on_command. Expected: the K + 1 operations, K markers, K commits
--    and 3 journal writes, nothing else.
-- 2. Client CPU of the same two-cluster tree with and without the journal,
--    N (XDBTX_BENCH_N, 500) runs each, in XDBTX_BENCH_ROUNDS (5)
--    interleaved rounds, best of each, and their ratio. The journal's cost
--    is mostly its round trips (3 writes with w:majority and K markers),
--    which CPU time does not count: wall time is printed beside it.
local xdbtx = require "xdbtx"
local core = require "xdbtx.core"

local URIS = {
  os.getenv("XDBTX_TEST_URI") or os.getenv("XDBTX_URI"),
  os.getenv("XDBTX_TEST_URI2") or os.getenv("XDBTX_URI2"),
  os.getenv("XDBTX_TEST_URI3") or os.getenv("XDBTX_URI3"),
}
for k = 1, 3 do assert(URIS[k], "set XDBTX_TEST_URI, _URI2 and _URI3 (make bench starts the test server)") end
local N = tonumber(os.getenv("XDBTX_BENCH_N") or "500")
local ROUNDS = tonumber(os.getenv("XDBTX_BENCH_ROUNDS") or "5")
local DB = "xdbtx_bench"

local clients, colls = {}, {}
for k = 1, 3 do
  clients[k] = xdbtx.client(URIS[k], { app_name = "xdbtx_bench_journal" .. k })
  colls[k] = clients[k]:collection(DB, "journal_tree" .. k)
  colls[k]:delete_many {}
end
local journal = clients[1]:collection(DB, "journal")
journal:delete_many {}
for k = 1, 3 do clients[k]:collection(DB, "journal_markers"):delete_many {} end

local seq = 0
local function tree(K)
  local function node(i)
    local k = (i - 1) % K + 1
    return { client = clients[k], action = function()
      seq = seq + 1
      return colls[k]:insert_one({ _id = seq }).inserted_id
    end }
  end
  local root = node(1)
  root.children = {}
  for i = 2, K + 1 do root.children[#root.children + 1] = node(i) end
  return root
end

-- 1. messages
for _, K in ipairs { 2, 3 } do
  local counts, total = {}, 0
  local offs = {}
  for k = 1, K do
    offs[k] = clients[k]:on_command(function(ev)
      if ev.type ~= "started" or ev.database_name ~= DB and ev.command_name ~= "commitTransaction" then return end
      local what = ev.command_name
      local coll = ev.command[ev.command_name]
      if coll == "journal" then what = "journal write"
      elseif coll == "journal_markers" then what = "marker"
      elseif what ~= "commitTransaction" then what = "operation" end
      counts[what] = (counts[what] or 0) + 1
      total = total + 1
    end)
  end
  xdbtx.run(tree(K), { journal = journal, name = "bench" })
  for _, off in ipairs(offs) do off() end
  local want = (K + 1) + K + K + 3
  print(("messages, K = %d, journalled: %d sent = %d operations + %d markers + %d commits + %d journal writes;" ..
    " expected %d + %d + %d + 3 = %d (%s)"):format(K, total, counts.operation or 0, counts.marker or 0,
    counts.commitTransaction or 0, counts["journal write"] or 0, K + 1, K, K, want,
    total == want and counts["journal write"] == 3 and "ok" or "DIFFERENT"))
end

-- 2. client CPU with and without the journal (two clusters)
local function measure(with_journal)
  local opts = with_journal and { journal = journal, name = "bench" } or nil
  local c0, w0 = os.clock(), core.now()
  for _ = 1, N do xdbtx.run(tree(2), opts) end
  return os.clock() - c0, core.now() - w0
end
measure(true) measure(false) -- warm up
local best = { [true] = { math.huge, math.huge }, [false] = { math.huge, math.huge } }
for _ = 1, ROUNDS do
  for _, j in ipairs { false, true } do
    local cpu, wall = measure(j)
    if cpu < best[j][1] then best[j][1] = cpu end
    if wall < best[j][2] then best[j][2] = wall end
  end
end
for _, j in ipairs { false, true } do
  print(("tree over 2 clusters %s the journal, %d runs: cpu %.3f s (%.1f us/run), wall %.3f s (%.1f us/run) (best of %d)")
    :format(j and "with" or "without", N, best[j][1], best[j][1] / N * 1e6, best[j][2], best[j][2] / N * 1e6, ROUNDS))
end
print(("client CPU ratio journalled / plain: %.2f; wall ratio %.2f"):format(
  best[true][1] / best[false][1], best[true][2] / best[false][2]))
journal:delete_many {}
