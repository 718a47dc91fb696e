--[[
xdbtx.transaction - one-cluster transactions and the sandbox:
client:transaction, session:with_transaction, xdbtx.sandbox,
xdbtx.rollback, xdbtx.session.

Each is a run of xdbtx.attempt's loop with its own body, commit step and
finish. Rules that fill DESIGN.md's gaps:
* client:transaction inside a transaction on the same client joins it
  (fn(session) runs inline, no commit of its own; a sandbox is joined the
  same way); on a client the running transaction does not hold it is an
  Error: several clients are the transaction tree's job.
* on_commit / on_rollback callbacks belong to one attempt (a rerun
  registers again), run at most once, after the final outcome, outside the
  context. A commit that failed for good may have been applied: its error
  has outcome = "unknown" and neither kind runs.
]]

local U = require "xdbtx.util"
local E = require "xdbtx.events"
local Mon = require "xdbtx.monitor"
local C = require "xdbtx.context"
local S = require "xdbtx.session"
local Cl = require "xdbtx.client"
local A = require "xdbtx.attempt"

local T = {}

local core, raise, argerror, has_label, now = U.core, U.raise, U.argerror, U.has_label, U.now
local emit, wants, report = E.emit, E.wants, E.report
local commit_listeners = E.listeners.commit
local Client, Session = Cl.Client, S.Session
local listeners = Mon.listeners
local TRANSIENT = A.TRANSIENT
local contexts, key = C.contexts, C.key
local getmetatable, setmetatable, type, pcall = getmetatable, setmetatable, type, pcall

-- The client's topology, asked once (by server selection) and kept on the
-- Client object once it is known.
function T.topology(client)
  local t = client._topology
  if t == nil then
    t = client._core:topology()
    if t ~= "unknown" then client._topology = t end
  end
  return t
end

-- A standalone server has no transactions: say so before any command.
local function check_topology(client, where)
  if T.topology(client) == "standalone" then
    raise("connect", "transaction", where .. ": " .. client._id .. " is a standalone server, which has no" ..
      " transactions (they need a replica set or a sharded cluster); on a standalone server run the" ..
      " work as a transaction tree in mode = \"saga\" (xdbtx.run(tree, { mode = \"saga\" })): each" ..
      " write is applied at once and the compensations undo them on failure")
  end
end
T.check_topology = check_topology

-- Run the callbacks of a final outcome, outside any context.
local function run_callbacks(list, what, ...)
  for i = 1, #list do
    local ok, err = pcall(list[i], ...)
    if not ok then report(what .. " callback", err) end
  end
end
T.run_callbacks = run_callbacks

-- Leave the run's context; close the sessions it owns (made by
-- client:transaction or sandbox; a user's session stays usable). The core's
-- close never raises for its own box (an open transaction's abort error is
-- ignored there), so it needs no pcall.
local function release(run, s)
  if run.owned then
    s._ended = true
    local c = s._core
    c:close()
  end
  if listeners[s._cid] then Mon.drain(s._client) end
end

local function leave(run)
  C.leave(run, run.co)
  if run.session then return release(run, run.session) end
  local list = run.list
  for i = 1, #list do release(run, list[i]) end
end

-- finish of client:transaction and session:with_transaction.
local function finish_txn(run, how, ...)
  local ctx = run
  if how == "commit" then
    local cbs = ctx.on_commit
    leave(run)
    if commit_listeners[1] and not run.quiet then
      emit("commit", A.event(run, { commits = run.commits or 0,
        duration = run.commit_started and now() - run.commit_started or 0 }))
    end
    if cbs then run_callbacks(cbs, "on_commit", ...) end
    return ...
  end
  if how == "rollback" or how == "self_aborted" then
    local cbs = ctx.on_rollback
    leave(run)
    local reason = how == "rollback" and (...) or nil
    if wants("abort") and not run.quiet then
      emit("abort", A.event(run, { reason = reason, outcome = "aborted",
        state = how == "self_aborted" and "aborted" or nil }))
    end
    if cbs then run_callbacks(cbs, "on_rollback", reason) end
    if how == "rollback" then return nil, reason end
    return ...
  end
  -- how == "error": a failed commit (not labelled transient) may have been
  -- applied; a body that committed its transaction itself and then raised
  -- did apply it.
  local err = ...
  local outcome = "aborted"
  if run.in_commit and not has_label(err, TRANSIENT) then outcome = "unknown" end
  if ctx.body_committed then outcome = "committed" end
  if core.is_error(err) and err.outcome == nil then err.outcome = outcome end
  local cbs = ctx.on_rollback
  leave(run)
  if wants("abort") and not run.quiet then
    emit("abort", A.event(run, { error = err, outcome = outcome }))
  end
  if cbs and outcome == "aborted" then run_callbacks(cbs, "on_rollback", err) end
  error(err, 0)
end

local function call_fn(run)
  return run.fn(run.arg or run.session)
end

-- The parts every one-cluster run shares: its own session (client:transaction)
-- or the caller's (session:with_transaction).
local OwnRun = { kind = "transaction", owned = true, finish = finish_txn, commit = A.commit_one,
                 body = call_fn, cleanup = leave, __close = A.on_close }
OwnRun.__index = OwnRun
local UserRun = setmetatable({ owned = false, __close = A.on_close }, OwnRun)
UserRun.__index = UserRun

-- A one-cluster run, which is also the context it enters for coroutine key
-- co (default: the running coroutine's). One table, small: the fixed parts
-- are in its metatable (without options it has 8 fields once the loop runs,
-- the size Lua gives it).
local function new_run(client, session, owned, fn, topts, timeout, sleep, co)
  session._owned = owned
  local run = setmetatable({
    cid = client._id, session = session, fn = fn, timeout = timeout,
    topts = topts, sleep = sleep or client._sleep,
  }, owned and OwnRun or UserRun)
  run.co = C.enter(run, co)
  return run
end

local function join(ctx, client, fn)
  local s = C.held(ctx, client._id)
  if not s then
    raise("state", "state", "client:transaction: a transaction on another client is running in this" ..
      " coroutine; several clients need the transaction tree (xdbtx.run / xdbtx.transaction)")
  end
  return fn(s)
end

-- client:transaction(fn, opts) -> fn's results | nil, reason (xdbtx.rollback)
function Client:transaction(fn, opts)
  if getmetatable(self) ~= Client then U.bad_self("client:transaction", "a Client", self) end
  if type(fn) ~= "function" then argerror("client:transaction: expected a function, got " .. type(fn)) end
  local topts, timeout, sleep
  if opts == nil then
    timeout = A.DEFAULT_TIMEOUT
  else
    topts, timeout, sleep = A.options(opts, "client:transaction")
  end
  local co = key()
  local ctx0 = contexts[co]
  if ctx0 then return join(ctx0, self, fn) end
  if self._topology ~= "replicaset" then check_topology(self, "client:transaction") end
  local c = self._core
  local cs
  if listeners[self._id] == nil then cs = c:start_session() else cs = Mon.monitored(self, c.start_session, c) end
  return A.loop(new_run(self, S.new(self, cs), true, fn, topts, timeout, sleep, co))
end

-- session:with_transaction(fn, opts): the same loop on a session of your
-- own (MongoDB's session.withTransaction); the session stays open after.
function Session:with_transaction(fn, opts)
  if getmetatable(self) ~= Session then U.bad_self("session:with_transaction", "a Session", self) end
  if type(fn) ~= "function" then
    argerror("session:with_transaction: expected a function, got " .. type(fn))
  end
  local topts, timeout, sleep = A.options(opts, "session:with_transaction")
  S.check(self)
  local co = key()
  local ctx0 = contexts[co]
  if ctx0 then
    if C.held(ctx0, self._cid) == self then return fn(self) end
    raise("state", "state", "session:with_transaction: another transaction is running in this coroutine")
  end
  -- a transaction of yours is open on it: refuse before touching it (the
  -- loop's start would fail and its cleanup abort yours)
  local st = self._core:state()
  if st == "starting" or st == "in_progress" then
    raise("state", "state", "session:with_transaction: the session already has a transaction in" ..
      " progress (from session:start_transaction); commit or abort it first")
  end
  check_topology(self._client, "session:with_transaction")
  return A.loop(new_run(self._client, self, false, fn, topts, timeout, sleep, co))
end

-- fn(session) in a transaction of its own on client, with the retry rules of
-- client:transaction but no events of its own (the transaction tree's
-- compensations: the tree reports them as "compensate" events).
function T.quiet_transaction(client, fn, timeout, sleep)
  local c = client._core
  local session = S.new(client, Mon.monitored(client, c.start_session, c))
  local run = new_run(client, session, true, fn, nil, timeout, sleep)
  run.quiet = true
  return A.loop(run)
end

-- xdbtx.rollback(reason): abort the running transaction quietly; it returns
-- nil, reason. The context is marked first, so the run ends rolled back even
-- when a pcall on the way catches the sentinel and the body returns.
function T.rollback(reason)
  local ctx = C.current()
  if ctx == nil then
    raise("state", "state", "xdbtx.rollback: no transaction is running in this coroutine")
  end
  A.rollback(ctx, reason)
end

-- xdbtx.session(client) -> the Session the running transaction holds for
-- client, or nil.
function T.session(client)
  client = Cl.check(client)
  if not client then argerror("xdbtx.session: expected a Client") end
  local ctx = C.current()
  if ctx == nil then return nil end
  return C.held(ctx, client._id) or nil
end

--------------------------------------------------------------------------
-- Sandbox
--------------------------------------------------------------------------

-- The sandbox's commit step: abort, always.
local function sandbox_commit(run)
  A.abort_all(run)
  return "rolled_back"
end

local function finish_sandbox(run, how, ...)
  local v = ...
  local cbs = run.on_rollback
  leave(run)
  local err = how == "error" and v or nil
  local reason = how == "rollback" and v or nil
  if wants("abort") then
    emit("abort", A.event(run, { sandbox = true, error = err, reason = reason, outcome = "aborted" }))
  end
  if cbs then run_callbacks(cbs, "on_rollback", how == "rollback" and reason or err) end
  if how == "rollback" then return nil, reason end
  if how == "error" then error(err, 0) end
  return ...
end

-- xdbtx.sandbox(client, fn, opts) -> fn's results: fn(session) runs in a
-- transaction that is always aborted; errors are re-raised after the abort;
-- xdbtx.rollback(reason) returns nil, reason. A client:transaction inside
-- joins the sandbox, so nothing it does commits. xdbtx.sandbox({ a, b }, fn)
-- does the same over several clients: fn(sessions), sessions[i] for the
-- i-th client, every one of them routed ambiently and aborted at the end.
function T.sandbox(client, fn, opts)
  local where = "xdbtx.sandbox"
  local clients, multi
  if Cl.check(client) then
    clients = { Cl.check(client) }
  elseif type(client) == "table" and #client > 0 then
    clients, multi = Cl.check_list(client, where), true
  else
    argerror(where .. ": expected a Client or a list of Clients, got " .. type(client))
  end
  if type(fn) ~= "function" then argerror(where .. ": expected a function, got " .. type(fn)) end
  local topts = A.options(opts, where)
  if C.current() then
    raise("state", "state", where .. ": a transaction is already running in this coroutine")
  end
  local sessions, by_id, list = {}, {}, {}
  for _, c in ipairs(clients) do check_topology(c, where) end
  for i, c in ipairs(clients) do
    local s = by_id[c._id]
    if not s then
      s = S.new(c, c._core:start_session())
      s._owned = true
      by_id[c._id] = s
      list[#list + 1] = s
    end
    sessions[i] = s
  end
  local run = {
    kind = "sandbox", sessions = by_id, list = list, owned = true, topts = topts,
    timeout = math.huge, retry = false, ev_client = clients[1]._id, ev_sandbox = true,
    commit = sandbox_commit, finish = finish_sandbox, body = call_fn, cleanup = leave, fn = fn,
    arg = multi and sessions or sessions[1],
  }
  run.co = C.enter(run)
  return A.loop(run)
end

return T
