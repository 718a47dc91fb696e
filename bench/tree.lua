-- bench/tree.lua - what the commit protocol of a transaction tree sends and
-- how long its commit phase takes, over K = 2 and 3 clusters.
--
--   make bench            (scripts/bench starts the test server: three replica sets)
--   sh scripts/bench tree
--
-- 1. Messages on the wire: a tree of K + 1 nodes (a root and K children,
--    node i on cluster ((i - 1) % K) + 1, so cluster 1 holds two nodes),
--    each node doing insert_one and find_one. Every command each client
--    sends during xdbtx.run is counted with client:on_command (command
--    monitoring, so it works against any server). Expected: the 2 (K + 1)
--    operations plus one commitTransaction per cluster, nothing else.
-- 2. Commit-phase time: every cluster delays commitTransaction by 50 ms
--    (failCommand, alwaysOn, blockConnection, blockTimeMS = 50, scoped to
--    this benchmark's appName). The commit phase is the "commit" event's
--    `duration`. Sequential commits should take about K delays, parallel
--    ones about one. XDBTX_BENCH_ROUNDS (5) alternating runs of each mode,
--    the median of each; the same without the delay for reference.
local xdbtx = require "xdbtx"

local URIS = {
  os.getenv("XDBTX_TEST_URI") or os.getenv("XDBTX_URI"),
  os.getenv("XDBTX_TEST_URI2") or os.getenv("XDBTX_URI2"),
  os.getenv("XDBTX_TEST_URI3") or os.getenv("XDBTX_URI3"),
}
for k = 1, 3 do
  assert(URIS[k], "set XDBTX_TEST_URI, XDBTX_TEST_URI2 and XDBTX_TEST_URI3 (make bench starts the test server)")
end
local ROUNDS = tonumber(os.getenv("XDBTX_BENCH_ROUNDS") or "5")
local DELAY_MS = 50
local DB = "xdbtx_bench"
local APP = "xdbtx_bench_tree"

local clients, colls = {}, {}
for k = 1, 3 do
  clients[k] = xdbtx.client(URIS[k], { app_name = APP .. k })
  colls[k] = clients[k]:collection(DB, "tree" .. k)
  colls[k]:delete_many {}
end

-- A root and K children over K clusters; each node inserts and reads back.
local seq = 0
local function tree(K)
  local function node(i)
    local k = (i - 1) % K + 1
    local coll = colls[k]
    return { client = clients[k], action = function()
      seq = seq + 1
      coll:insert_one { _id = seq }
      return coll:find_one { _id = seq }
    end }
  end
  local root = node(1)
  root.children = {}
  for i = 2, K + 1 do root.children[#root.children + 1] = node(i) end
  return root
end

-- 1. messages on the wire
for _, K in ipairs { 2, 3 } do
  for _, mode in ipairs { "sequential", "parallel" } do
    xdbtx.run(tree(K), { commit = mode }) -- warm: connections are open
    local sent, offs = {}, {}
    for k = 1, K do
      sent[k] = {}
      offs[k] = clients[k]:on_command(function(ev)
        if ev.type == "started" then table.insert(sent[k], ev.command_name) end
      end)
    end
    xdbtx.run(tree(K), { commit = mode })
    for k = 1, K do offs[k]() end
    local total, commits, per = 0, 0, {}
    for k = 1, K do
      total = total + #sent[k]
      for _, name in ipairs(sent[k]) do
        if name == "commitTransaction" then commits = commits + 1 end
      end
      per[k] = ("cluster %d: %s"):format(k, table.concat(sent[k], " "))
    end
    local ops = 2 * (K + 1)
    print(("messages, K = %d, %s: %d sent = %d operations + %d commits; expected %d + %d = %d %s"):format(
      K, mode, total, total - commits, commits, ops, K, ops + K, total == ops + K and commits == K and "(ok)" or "(DIFFERENT)"))
    print("  " .. table.concat(per, "; "))
  end
end

-- 2. commit-phase time with every commitTransaction delayed
local function failpoint(k, on)
  local data = { failCommands = setmetatable({ "commitTransaction" }, xdbtx.array_mt),
                 blockConnection = true, blockTimeMS = DELAY_MS, appName = APP .. k }
  clients[k]:command("admin", xdbtx.ordered {
    { "configureFailPoint", "failCommand" }, { "mode", on and "alwaysOn" or "off" }, { "data", data },
  }, { session = false })
end

local duration
local off_commit = xdbtx.on("commit", function(ev) duration = ev.duration end)

local function commit_phase(K, mode)
  duration = nil
  xdbtx.run(tree(K), { commit = mode })
  return assert(duration, "no commit event")
end

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

local function measure(K)
  local t = { sequential = {}, parallel = {} }
  for _ = 1, ROUNDS do
    for _, mode in ipairs { "sequential", "parallel" } do
      local d = commit_phase(K, mode)
      t[mode][#t[mode] + 1] = d
    end
  end
  return median(t.sequential), median(t.parallel)
end

local ok, err = pcall(function()
  for _, K in ipairs { 2, 3 } do
    local base_s, base_p = measure(K)
    for k = 1, K do failpoint(k, true) end
    local s, p = measure(K)
    for k = 1, K do failpoint(k, false) end
    print(("commit phase, K = %d, every commit delayed %d ms: sequential %.1f ms (expect ~%d), parallel %.1f ms (expect ~%d); sequential / parallel %.2f (expect ~%d)"):format(
      K, DELAY_MS, s * 1e3, K * DELAY_MS, p * 1e3, DELAY_MS, s / p, K))
    print(("  without the delay: sequential %.2f ms, parallel %.2f ms (median of %d)"):format(
      base_s * 1e3, base_p * 1e3, ROUNDS))
  end
end)
off_commit()
for k = 1, 3 do pcall(failpoint, k, false) end
if not ok then
  print("commit phase: skipped, the server refused the failpoint or a run failed: " .. tostring(err))
end
for k = 1, 3 do colls[k]:delete_many {} end
