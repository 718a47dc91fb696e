--[[
xdbtx.recover - finish the journalled runs that a dead coordinator left.

xdbtx.recover(journal, trees, opts) -> { outcome, ... }, skipped: every run of the
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
The second result lists the ids of the runs skipped because another
recovery holds their lease. A run that fails to settle (its tree builder
raises, a cluster is unreachable, ...) does not stop the others: its lease
is released (a later recovery retries it at once) and, once every run was
looked at, recover raises one Error (phase and domain "journal") whose
`failed` is { { id, name, error, lease_released }, ... }, `settled` the
outcomes it did settle, `skipped` the leased ids, `cause` the first error.
Saga runs compensate their completed nodes the same way; a compensation
that had begun and not ended is not run again (at most once) and is
reported as compensation_failed. Times compare the journal's `created`
(the coordinator's clock) with this process's clock.
]]

local U = require "xdbtx.util"
local C = require "xdbtx.context"
local Cl = require "xdbtx.client"
local Col = require "xdbtx.collection"
local A = require "xdbtx.attempt"
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

-- The run's nodes when no tree was given: from the journal's participants
-- (paths and client ids only), in tree order.
local function journalled_nodes(doc)
  local nodes = {}
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

-- The states the journal and the markers give the nodes of a transaction
-- run; true when something committed and something did not (then the
-- committed nodes are to be compensated).
local function transaction_states(journal, doc, nodes, cache)
  local parts = doc.participants or {}
  -- end every transaction the dead coordinator held, then read the markers
  for _, p in ipairs(parts) do kill(client_for(cache, p.uri), p.lsid) end
  for _, c in ipairs(doc.compensations or {}) do kill(client_for(cache, c.uri), c.lsid) end
  local committed = {}
  local any, all = false, #parts > 0
  if doc.stage == "committing" then
    for k, p in ipairs(parts) do
      local m = J.markers(journal, client_for(cache, p.uri)):find_one(J.marker_filter(doc._id, k),
        { session = false })
      committed[k] = m ~= nil
      any = any or committed[k]
      all = all and committed[k]
    end
  else
    all = false
  end
  local by_path = {}
  for k, p in ipairs(parts) do
    for _, path in ipairs(p.paths or {}) do by_path[path] = k end
  end
  for _, n in ipairs(nodes) do
    local k = by_path[n.path]
    n.state = (k and committed[k]) and "committed" or "aborted"
  end
  return any and not all
end

-- The states of a saga run's nodes; compensations it had begun and ended
-- are done, begun and not ended are not run again (at most once). Always
-- true: whatever completed is to be compensated.
local function saga_states(doc, nodes)
  local completed, begun, done = {}, {}, {}
  for _, p in ipairs(doc.saga_done or {}) do completed[p] = true end
  for _, p in ipairs(doc.saga_compensating or {}) do begun[p] = true end
  for _, p in ipairs(doc.saga_compensated or {}) do done[p] = true end
  for _, n in ipairs(nodes) do
    local path = n.path
    if done[path] then
      n.state = "compensated"
    elseif begun[path] then
      n.state = "compensation_failed"
      n.error = xerror("compensate", "journal", "xdbtx.recover: the compensation of node " .. path ..
        " began before the crash and did not end; it is not run again (at most once) and may or" ..
        " may not have been applied")
    elseif completed[path] then
      n.state = "committed"
    else
      -- the node that was running when the coordinator died may have written
      n.state = path == doc.saga_running and "failed" or "aborted"
    end
  end
  return true
end

-- Give the run's lease back (after a failure: a later recovery retries it
-- at once, not after LEASE_SECONDS); true when that worked.
local function release(journal, doc, token)
  return (pcall(journal.update_one, journal, { _id = doc._id, ["lease.by"] = token },
    { ["$unset"] = { lease = "" } }, MAJORITY))
end

-- Why this recovery could not lease the run: "done" when it was settled
-- meanwhile (another recovery, or its coordinator finished it), else
-- "leased" (another recovery holds it, or its stage moved on: a live
-- coordinator).
local function not_leased(journal, doc)
  local now = journal:find_one({ _id = doc._id }, { session = false })
  if now == nil or now.stage == "done" then return "done" end
  return "leased"
end

-- Settle one leased journal document; returns its outcome. Raises what a
-- step raised (the caller releases the lease).
local function settle(journal, doc, trees, cache, opts)
  local tree = tree_of(trees, doc.name, doc)
  local tree_nodes
  if tree then tree_nodes = Tr.flatten(tree, "xdbtx.recover: trees[" .. U.show(doc.name) .. "]") end
  local nodes = tree_nodes or journalled_nodes(doc)
  local saga = doc.mode == "saga"
  local undo
  if saga then undo = saga_states(doc, nodes) else undo = transaction_states(journal, doc, nodes, cache) end
  local store = J.store_from_doc(doc.store, tree_nodes)
  if undo and tree_nodes then
    local held = {}
    if saga then
      for _, p in ipairs(doc.participants or {}) do held[p.client] = false end
      for _, nd in ipairs(tree_nodes) do held[nd.client._id] = false end
    end
    Tr.compensate_nodes {
      id = doc._id, ev_tree = doc._id, nodes = tree_nodes, store = store, saga = saga,
      saga_sessions = held, journal = J.attach(journal, "xdbtx.recover"),
      timeout = opts.timeout or doc.timeout or A.DEFAULT_TIMEOUT,
      -- the events' attempt and elapsed (from the start of this recovery)
      attempt = doc.attempt or 1, started = U.now(),
    }
  elseif undo then
    for _, n in ipairs(nodes) do
      if n.state == "committed" then
        n.error = xerror("compensate", "journal", "xdbtx.recover: no tree named " ..
          U.show(doc.name) .. " was given, so node " .. n.path .. " cannot be compensated")
      end
    end
  end
  local outcome = O.new { id = doc._id, name = doc.name, nodes = Tr.node_list(nodes),
                          attempts = doc.attempt or 1, store = store, recovered = true }
  journal:update_one({ _id = doc._id }, {
    ["$set"] = { stage = "done", outcome = J.outcome_doc(outcome), finished = J.now_date(),
                 recovered = { at = J.now_date() } },
    ["$unset"] = { lease = "" },
  }, MAJORITY)
  return outcome
end

local RECOVER_KEYS = { older_than = true, timeout = true, limit = true }

-- xdbtx.recover(journal, trees, opts) -> { outcome, ... }, { skipped id, ... }
-- (see the header).
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
  local skipped, failed = setmetatable({}, core.array_mt), setmetatable({}, core.array_mt)
  for _, doc in ipairs(pending) do
    local age = (t - ms_of(doc.created)) / 1000
    local older = opts.older_than or doc.timeout or 120
    if age >= older then
      -- one run that cannot be settled (its tree builder raises, a cluster is
      -- down, ...) does not stop the others: its lease is given back and the
      -- failure is raised once every run was looked at
      local leased = false
      local ok, res = pcall(function()
        if not lease(journal, doc, token) then return not_leased(journal, doc) end
        leased = true
        return settle(journal, doc, trees, cache, opts)
      end)
      if not ok then
        local released
        if leased then released = release(journal, doc, token) end
        failed[#failed + 1] = { id = doc._id, name = doc.name, error = res, lease_released = released }
      elseif res == "leased" then
        skipped[#skipped + 1] = doc._id
      elseif res ~= "done" then
        out[#out + 1] = res
        if opts.limit and #out >= opts.limit then break end
      end
    end
  end
  if #failed > 0 then
    local parts = {}
    for _, f in ipairs(failed) do
      local e = f.error
      local msg = type(e) == "table" and e.message or tostring(e)
      parts[#parts + 1] = U.show(f.id) .. " (" .. U.show(f.name) .. "): " .. tostring(msg) ..
        (f.lease_released == false and (" [its lease could not be released: it is retried after "
          .. LEASE_SECONDS .. " s]") or "")
    end
    U.raise("journal", "journal", ("%s: %d run(s) could not be settled (a later recovery retries" ..
      " them); %d settled, %d skipped (leased by another recovery): %s")
      :format(where, #failed, #out, #skipped, table.concat(parts, "; ")),
      { failed = failed, settled = out, skipped = skipped, cause = failed[1].error })
  end
  return out, skipped
end

return R
