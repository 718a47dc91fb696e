--[[
xdbtx.recover - finish the journalled runs that a dead coordinator left.

xdbtx.recover(journal, trees, opts) -> { outcome, ... }: every run of the
journal that has not reached stage "done" and is older than
opts.older_than seconds (default: its own timeout) is settled:
  1. it is leased (a journal field with an expiry), so two recoveries at
     once do not both work on it;
  2. the server transactions of its sessions are ended (killSessions on each
     participant's cluster, and on the clusters of compensations it had
     begun), so nothing stays locked until the lifetime limit and no commit
     can still land;
  3. the markers say which participants committed: no decision recorded, or
     none committed -> "aborted"; all -> "committed"; some -> the
     committed nodes' compensations run, newest first, taken from
     trees[name] (the tree table, or a function(name, record) returning it;
     record is the journal document, with the store) by node path,
     given the journalled store, each at most once (its marker);
  4. the outcome is written to the journal (stage "done").
Saga runs compensate their completed nodes the same way; a compensation
that had begun and not ended is not run again (at most once) and is
reported as compensation_failed. Times compare the journal's `created`
(the coordinator's clock) with this process's clock.
]]

local U = require "xdbtx.util"
local C = require "xdbtx.context"
local Cl = require "xdbtx.client"
local Col = require "xdbtx.collection"
local T = require "xdbtx.transaction"
local O = require "xdbtx.outcome"
local J = require "xdbtx.journal"
local Tr = require "xdbtx.tree"

local R = {}

local core, argerror, xerror = U.core, U.argerror, U.xerror
local MAJORITY = J.MAJORITY
local LEASE_SECONDS = 60

local function now_ms() return math.floor(os.time() * 1000) end

local function ms_of(date)
  if date == nil then return 0 end
  if type(date) == "number" then return date end
  return date:ms()
end

-- The tree table of a journalled run, or nil: trees[name], or what
-- trees[name](name, record) returns (record: the journal document, whose
-- store holds the action results, for trees built from a run's input).
local function tree_of(trees, name, doc)
  local t = trees and trees[name]
  if type(t) == "function" then t = t(name, doc) end
  return t
end

-- Clients by URI, made once per recovery.
local function client_for(cache, uri)
  local c = cache[uri]
  if not c then
    c = Cl.client(uri)
    cache[uri] = c
  end
  return c
end

-- End a dead coordinator's transaction: killSessions on its cluster.
local function kill(client, lsid)
  if lsid == nil then return end
  client:command("admin", { killSessions = setmetatable({ lsid }, core.array_mt) }, { session = false })
end

-- Lease the run for this recovery; false when another one holds it.
local function lease(journal, doc, token)
  local t = now_ms()
  local got = journal:find_one_and_update(
    { _id = doc._id, stage = doc.stage,
      ["$or"] = { { lease = { ["$exists"] = false } }, { ["lease.until"] = { ["$lt"] = core.date(t) } } } },
    { ["$set"] = { lease = { by = token, ["until"] = core.date(t + LEASE_SECONDS * 1000) } } },
    { session = false, write_concern = { w = "majority" } })
  return got ~= nil
end

-- Recovered node list: from the tree when given (names, clients), else from
-- the journal's participants.
local function recovered_nodes(doc, tree_nodes)
  local nodes = {}
  if tree_nodes then
    for i, nd in ipairs(tree_nodes) do
      nodes[i] = { path = nd.path, name = nd.name, client = nd.client._id, depth = nd.depth,
                   tree_node = nd }
    end
    return nodes
  end
  for _, p in ipairs(doc.participants or {}) do
    for _, path in ipairs(p.paths or {}) do
      local depth = select(2, path:gsub("%.", ""))
      nodes[#nodes + 1] = { path = path, client = p.client, depth = depth }
    end
  end
  table.sort(nodes, function(a, b)
    local ia, ib = {}, {}
    for n in a.path:gmatch("%d+") do ia[#ia + 1] = tonumber(n) end
    for n in b.path:gmatch("%d+") do ib[#ib + 1] = tonumber(n) end
    for i = 1, math.max(#ia, #ib) do
      if ia[i] ~= ib[i] then return (ia[i] or 0) < (ib[i] or 0) end
    end
    return false
  end)
  return nodes
end

-- Run the compensations of the "committed" nodes, newest first, each at
-- most once (the marker), in a transaction of its own (or, in saga mode,
-- with no session).
local function compensate(journal, doc, nodes, store, saga, timeout)
  local begun, done = {}, {}
  for _, p in ipairs(doc.saga_compensating or {}) do begun[p] = true end
  for _, p in ipairs(doc.saga_compensated or {}) do done[p] = true end
  for i = #nodes, 1, -1 do
    local n = nodes[i]
    local nd = n.tree_node
    if n.state == "committed" then
      if nd == nil then
        n.error = xerror("compensate", "journal", "xdbtx.recover: no tree named " ..
          U.show(doc.name) .. " was given, so node " .. n.path .. " cannot be compensated")
      elseif nd.compensate then
        local ok, err
        if saga then
          if done[n.path] then
            ok = true
          elseif begun[n.path] then
            ok, err = false, xerror("compensate", "journal", "xdbtx.recover: the compensation of node " ..
              n.path .. " began before the crash and did not end; it is not run again (at most once)" ..
              " and may or may not have been applied")
          else
            journal:update_one({ _id = doc._id }, { ["$push"] = { saga_compensating = n.path } }, MAJORITY)
            local held = {}
            for _, p in ipairs(doc.participants or {}) do held[p.client] = false end
            held[nd.client._id] = false
            local ctx = { kind = "saga", sessions = held }
            local co = C.enter(ctx)
            ok, err = pcall(nd.compensate, store, nil)
            C.leave(ctx, co)
            if ok then
              journal:update_one({ _id = doc._id }, { ["$push"] = { saga_compensated = n.path } }, MAJORITY)
            end
          end
        else
          ok, err = pcall(T.quiet_transaction, nd.client,
            J.compensation_body(journal, doc._id, nd, store, nd.compensate), timeout)
        end
        if ok then
          n.state = "compensated"
        else
          n.state = "compensation_failed"
          n.error = err
        end
      end
    end
  end
end

local function settle_transaction(journal, doc, tree_nodes, cache, opts)
  local parts = doc.participants or {}
  -- end every transaction the dead coordinator held, then read the markers
  for _, p in ipairs(parts) do kill(client_for(cache, p.uri), p.lsid) end
  for _, c in ipairs(doc.compensations or {}) do kill(client_for(cache, c.uri), c.lsid) end
  local committed = {}
  local any, all = false, #parts > 0
  if doc.stage == "committing" then
    for k, p in ipairs(parts) do
      local m = J.markers(journal, client_for(cache, p.uri)):find_one({ _id = J.marker_id(doc._id, k) },
        { session = false })
      committed[k] = m ~= nil
      any = any or committed[k]
      all = all and committed[k]
    end
  else
    all = false
  end
  local nodes = recovered_nodes(doc, tree_nodes)
  local by_path = {}
  for k, p in ipairs(parts) do
    for _, path in ipairs(p.paths or {}) do by_path[path] = k end
  end
  for _, n in ipairs(nodes) do
    local k = by_path[n.path]
    n.state = (k and committed[k]) and "committed" or "aborted"
  end
  if any and not all then
    local store = J.store_from_doc(doc.store, tree_nodes or {})
    compensate(journal, doc, nodes, store, false, opts.timeout or doc.timeout or 120)
  end
  return nodes
end

local function settle_saga(journal, doc, tree_nodes, opts)
  local nodes = recovered_nodes(doc, tree_nodes)
  local completed = {}
  for _, p in ipairs(doc.saga_done or {}) do completed[p] = true end
  for _, n in ipairs(nodes) do
    -- the node that was running when the coordinator died may have written
    n.state = completed[n.path] and "committed" or n.path == doc.saga_running and "failed" or "aborted"
  end
  local store = J.store_from_doc(doc.store, tree_nodes or {})
  compensate(journal, doc, nodes, store, true, opts.timeout)
  return nodes
end

-- Settle one journal document; returns its outcome (or nil when another
-- recovery holds it).
local function settle(journal, doc, trees, cache, opts, token)
  if not lease(journal, doc, token) then return nil end
  local tree = tree_of(trees, doc.name, doc)
  local tree_nodes
  if tree then tree_nodes = Tr.flatten(tree, "xdbtx.recover: trees[" .. U.show(doc.name) .. "]") end
  local nodes
  if doc.mode == "saga" then
    nodes = settle_saga(journal, doc, tree_nodes, opts)
  else
    nodes = settle_transaction(journal, doc, tree_nodes, cache, opts)
  end
  for _, n in ipairs(nodes) do n.tree_node = nil end
  local outcome = O.new { id = doc._id, name = doc.name, nodes = nodes, attempts = doc.attempt or 1,
                          store = J.store_from_doc(doc.store, tree_nodes), recovered = true }
  journal:update_one({ _id = doc._id }, {
    ["$set"] = { stage = "done", outcome = J.outcome_doc(outcome), finished = J.now_date(),
                 recovered = { at = J.now_date() } },
    ["$unset"] = { lease = "" },
  }, MAJORITY)
  return outcome
end

local RECOVER_KEYS = { older_than = true, timeout = true, limit = true }

-- xdbtx.recover(journal, trees, opts) -> { outcome, ... } (see the header).
-- opts: older_than (seconds; default each run's timeout), timeout (of each
-- compensation's retries; default the run's), limit (runs at most).
function R.recover(journal, trees, opts)
  local where = "xdbtx.recover"
  journal = C.real(journal)
  if getmetatable(journal) ~= Col.Collection then
    argerror(where .. ": journal must be an xdbtx Collection, got " .. type(journal))
  end
  if trees ~= nil and type(trees) ~= "table" then
    argerror(where .. ": trees must be a table { [name] = tree or function }, got " .. type(trees))
  end
  U.check_keys(opts, RECOVER_KEYS, where)
  opts = opts or {}
  if opts.older_than ~= nil then U.check_number(opts.older_than, where, "older_than", 0) end
  if opts.timeout ~= nil then U.check_number(opts.timeout, where, "timeout", 0) end
  if opts.limit ~= nil then U.check_number(opts.limit, where, "limit", 1) end
  if C.current() then
    U.raise("state", "state", where .. ": a transaction is running in this coroutine")
  end
  local pending = journal:find({ stage = { ["$ne"] = "done" } }, { session = false }):all()
  local t = now_ms()
  local token = core.object_id():hex()
  local cache, out = {}, setmetatable({}, core.array_mt)
  for _, doc in ipairs(pending) do
    local age = (t - ms_of(doc.created)) / 1000
    local older = opts.older_than or doc.timeout or 120
    if age >= older then
      local outcome = settle(journal, doc, trees, cache, opts, token)
      if outcome then out[#out + 1] = outcome end
      if opts.limit and #out >= opts.limit then break end
    end
  end
  return out
end

return R
