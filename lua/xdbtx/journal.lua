--[[
xdbtx.journal - what a journalled run writes, so that xdbtx.recover can
finish it after its coordinator died.

One document per run in the journal collection (any client; w:majority,
outside every transaction), written three times when nothing fails:
  1. before the first action: { _id = run id, name, mode, stage = "actions",
     created, timeout, participants = { { client, uri, lsid, paths } } }
  2. before the first commit: stage = "committing", attempt, store (every
     action result, keyed by node index: they must be encodable), order
  3. at the end: stage = "done", outcome = { status, attempts, nodes }
Each participant's transaction also inserts a marker document on its own
cluster, in <journal db>.<journal collection>_markers, _id "<t>:<run id>/<k>"
(t: "s" or "n", the run id's type, so that runs "7" and 7 never share one;
k: the participant's place): it commits if and only if that participant
committed, so a recovery reads back what happened (it also finds the
"<run id>/<k>" markers of journals written before the type was added). A
compensation inserts a marker of its own ("<t>:<run id>/compensate/<path>") in its transaction and
skips its work when one exists: compensations apply at most once. Before a
compensation runs, the session it runs in is added to the journal
(compensations = { { path, uri, lsid } }), so a recovery can end it too.
Saga mode records the node whose action runs (saga_running), each
completed node (saga_done) and each compensation begun and done
(saga_compensating, saga_compensated).
]]

local U = require "xdbtx.util"
local C = require "xdbtx.context"
local Col = require "xdbtx.collection"
local O = require "xdbtx.outcome"

local J = {}

local core, argerror, raise = U.core, U.argerror, U.raise

local MAJORITY = { session = false, write_concern = { w = "majority" } }
J.MAJORITY = MAJORITY

local Journal = {}
Journal.__index = Journal

local function now_date()
  return core.date(math.floor(os.time() * 1000))
end

-- The markers collection of the journal on client.
function J.markers(journal_coll, client)
  return client:collection(journal_coll:database(), journal_coll:name() .. "_markers")
end

local function tagged(id) return (type(id) == "number" and "n:" or "s:") .. tostring(id) end

-- The filter that finds a marker "<id><rest>" in either form.
local function either(id, rest)
  return { _id = { ["$in"] = setmetatable({ tagged(id) .. rest, tostring(id) .. rest }, core.array_mt) } }
end

function J.marker_id(id, k) return tagged(id) .. "/" .. k end
function J.marker_filter(id, k) return either(id, "/" .. k) end
function J.compensation_marker_id(id, path) return tagged(id) .. "/compensate/" .. path end
local function compensation_marker_filter(id, path) return either(id, "/compensate/" .. path) end

-- The store as a document: results by index as strings ("1", "2"); the
-- names are given back from the tree's nodes.
function J.store_doc(store)
  local doc = {}
  for k, v in pairs(store) do
    if type(k) == "number" then doc[tostring(k)] = v end
  end
  return doc
end

function J.store_from_doc(doc, nodes)
  local store = {}
  for k, v in pairs(doc or {}) do
    local i = tonumber(k)
    if i then store[i] = v end
  end
  for i, nd in ipairs(nodes or {}) do
    if nd.name and store[i] ~= nil then store[nd.name] = store[i] end
  end
  return store
end

-- An error as the journal keeps it.
local function err_doc(e)
  if e == nil then return nil end
  if type(e) ~= "table" then return { message = tostring(e) } end
  return { message = tostring(e.message), code = e.code, name = e.name, phase = e.phase,
           node = e.node }
end

function J.outcome_doc(outcome)
  local nodes = setmetatable({}, core.array_mt)
  for i, n in ipairs(outcome.nodes) do
    nodes[i] = { path = n.path, name = n.name, client = n.client, state = n.state,
                 error = err_doc(n.error), depth = n.depth }
  end
  return { status = outcome.status, attempts = outcome.attempts, nodes = nodes,
           error = err_doc(outcome.error) }
end

-- The Outcome recorded in a journal document (stage "done"); nodes (of the
-- tree, optional) give the store its names back.
function J.outcome_from_doc(doc, tree_nodes)
  local o = doc.outcome or {}
  local nodes = {}
  for i, n in ipairs(o.nodes or {}) do
    nodes[i] = { path = n.path, name = n.name, client = n.client, state = n.state,
                 error = n.error and core.error {
                   message = n.error.message, code = n.error.code or 0, name = n.error.name,
                   phase = n.error.phase, node = n.error.node, domain = "journal" } or nil,
                 depth = n.depth }
  end
  local store = J.store_from_doc(doc.store, tree_nodes)
  return O.new { id = doc._id, name = doc.name, status = o.status, nodes = nodes,
                 attempts = o.attempts or 0, store = store, error = o.error,
                 recovered = doc.recovered ~= nil or nil }
end

--------------------------------------------------------------------------
-- The journal of one run
--------------------------------------------------------------------------

-- The journal of a run that xdbtx.recover finishes (coll checked already).
function J.attach(coll, where)
  return setmetatable({ coll = coll, where = where }, Journal)
end

-- Check the journal options of a run (before anything is sent).
function J.open(coll, run, where)
  coll = C.real(coll)
  if getmetatable(coll) ~= Col.Collection then
    argerror(where .. ": option 'journal' must be an xdbtx Collection, got " .. type(coll))
  end
  if run.name == nil then
    argerror(where .. ": option 'journal' needs option 'name' (the tree's name, which xdbtx.recover" ..
      " looks up in its trees table)")
  end
  return setmetatable({ coll = coll, where = where, id_given = run.id_given }, Journal)
end

-- A run whose id is already in the journal: the recorded Outcome when it
-- ran to the end; raises when it is unfinished.
function Journal:recorded(run)
  local doc = self.coll:find_one({ _id = run.id }, { session = false })
  if doc == nil then
    raise("state", "journal", ("%s: run %s: the journal refused its document but has none"):format(
      self.where, tostring(run.id)))
  end
  if doc.stage == "done" then return J.outcome_from_doc(doc, run.nodes) end
  raise("state", "journal", ("%s: run %s already started (stage %q) and has not finished: its" ..
    " coordinator is still running it, or died and xdbtx.recover will settle it"):format(
    self.where, tostring(run.id), tostring(doc.stage)))
end

local function participants_doc(run)
  local list = setmetatable({}, core.array_mt)
  for k, p in ipairs(run.parts) do
    local paths = setmetatable({}, core.array_mt)
    for i, nd in ipairs(p.nodes) do paths[i] = nd.path end
    list[k] = { client = p.client._id, uri = p.client:uri(), paths = paths,
                lsid = p.session and p.session:id() or nil }
  end
  return list
end

-- 1. Before the first action. Returns the recorded Outcome instead when the
-- run's id is already journalled and finished (raises when unfinished).
function Journal:begin(run)
  local doc = {
    _id = run.id, name = run.name, mode = run.saga and "saga" or "transaction",
    stage = "actions", created = now_date(), timeout = run.timeout,
    participants = participants_doc(run),
  }
  local ok, err = pcall(self.coll.insert_one, self.coll, doc, MAJORITY)
  if not ok then
    if type(err) == "table" and err.code == 11000 and self.id_given then return self:recorded(run) end
    error(err, 0)
  end
end

-- 2. Before the first commit: check that the store can be journalled, put
-- the markers in the participants' transactions, record the decision.
function Journal:decide(run)
  local store = J.store_doc(run.store or {})
  local ok, err = pcall(core.encode, store)
  if not ok then
    raise("journal", "codec", self.where .. ": the action results must be encodable for the journal" ..
      " (nothing was committed): " .. tostring(type(err) == "table" and err.message or err))
  end
  for k, p in ipairs(run.parts) do
    J.markers(self.coll, p.client):insert_one(
      { _id = J.marker_id(run.id, k), run = run.id, participant = k, at = now_date() },
      { session = p.session })
  end
  local order = setmetatable({}, core.array_mt)
  for i, p in ipairs(run.commit_order_list or {}) do order[i] = p.index end
  self.coll:update_one({ _id = run.id }, { ["$set"] = {
    stage = "committing", attempt = run.attempt, store = store, order = order, decided = now_date(),
  } }, MAJORITY)
end

-- Before a compensation's body runs, in its transaction's session s.
function Journal:compensating(run, nd, s)
  self.coll:update_one({ _id = run.id }, { ["$addToSet"] = { compensations = {
    path = nd.path, uri = nd.client:uri(), lsid = s and s:id() or nil,
  } } }, MAJORITY)
end

-- Saga mode: a node's action starts / completed; a compensation began /
-- ended.
function Journal:saga_running(run, nd)
  self.coll:update_one({ _id = run.id }, { ["$set"] = { saga_running = nd.path } }, MAJORITY)
end

function Journal:saga_step(run, nd)
  self.coll:update_one({ _id = run.id }, { ["$push"] = { saga_done = nd.path },
    ["$set"] = { store = J.store_doc(run.store) } }, MAJORITY)
end

function Journal:saga_compensating(run, nd)
  self.coll:update_one({ _id = run.id }, { ["$push"] = { saga_compensating = nd.path } }, MAJORITY)
end

function Journal:saga_compensated(run, nd)
  self.coll:update_one({ _id = run.id }, { ["$push"] = { saga_compensated = nd.path } }, MAJORITY)
end

-- 3. At the end. A failure to write it is kept on the outcome
-- (outcome.journal_error), never raised: the run's result stands, and the
-- run looks unfinished, so xdbtx.recover will record it.
function Journal:finish(run, outcome, extra)
  local set = { stage = "done", outcome = J.outcome_doc(outcome), finished = now_date() }
  for k, v in pairs(extra or {}) do set[k] = v end
  local ok, err = pcall(self.coll.update_one, self.coll, { _id = run.id }, { ["$set"] = set,
    ["$unset"] = { lease = "" } }, MAJORITY)
  if not ok then outcome.journal_error = err end
end

-- The body of a compensation transaction with the journal: at most once,
-- through the marker that commits with the compensation's own writes.
function J.compensation_body(journal_coll, id, nd, store, fn)
  local markers = J.markers(journal_coll, nd.client)
  local mid, seen = J.compensation_marker_id(id, nd.path), compensation_marker_filter(id, nd.path)
  return function(s)
    if markers:find_one(seen) then return "already compensated" end
    markers:insert_one { _id = mid, run = id, path = nd.path, at = now_date() }
    return fn(store, s)
  end
end

J.now_date = now_date
return J
