--[[
xdbtx.tree - a tree of dependent actions over several clusters:
xdbtx.run(tree, opts) and the flat xdbtx.transaction({ a, b }, fn, opts).

The whole tree is checked before anything is sent. Then every distinct
client gets one session (nodes of one client share it, so they commit or
abort together) and the actions run depth-first, parents before children,
inside one run of xdbtx.attempt's loop: an action error aborts every open
transaction, a TransientTransactionError reruns the whole tree with an
empty store. Nothing commits before every action succeeded; the commit
phase (core.commit_all, in C) commits one client after another - first the
clients all of whose nodes can be compensated, so that at most one client
without compensations goes last - or all at once. A failed first commit
applies nothing; after any commit succeeded a failure never reruns the
tree: the committed nodes' compensations run, newest first, each in a
transaction of its own. Saga mode runs the actions with no session and
compensates on failure. The outcome (xdbtx.outcome) says what happened to
each node. A journal (xdbtx.journal), when given, records the run so that
xdbtx.recover can finish it after a crash.
]]

local U = require "xdbtx.util"
local E = require "xdbtx.events"
local Mon = require "xdbtx.monitor"
local C = require "xdbtx.context"
local S = require "xdbtx.session"
local Cl = require "xdbtx.client"
local A = require "xdbtx.attempt"
local T = require "xdbtx.transaction"
local O = require "xdbtx.outcome"
local J = require "xdbtx.journal"

local Tr = {}

local core, argerror, raise, xerror, has_label, pack, unpack, now =
  U.core, U.argerror, U.raise, U.xerror, U.has_label, U.pack, U.unpack, U.now
local emit, wants = E.emit, E.wants
local listeners = Mon.listeners
local TRANSIENT = A.TRANSIENT

--------------------------------------------------------------------------
-- Checking the tree and the options
--------------------------------------------------------------------------

local NODE_FIELDS = { client = true, action = true, name = true, compensate = true, children = true }

-- "where.field" for messages ("children[2].actoin"; "actoin" at the root).
local function at(where, field)
  if where == "" then return field end
  return where .. "." .. field
end

-- The table at v is a proper list (keys 1..n).
local function is_list(v)
  local n, count = #v, 0
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then return false end
    count = count + 1
  end
  return count == n
end

-- The place of the node at path in messages: "" for the root ("1"),
-- "children[2].children[1]" for "1.2.1". Built only for an error.
local function where_of(path)
  local w = ""
  for i in path:gmatch("%.(%d+)") do w = at(w, "children") .. "[" .. i .. "]" end
  return w
end

local function bad_node(where_fn, path, field, fmt, ...)
  argerror(("%s: %s" .. fmt):format(where_fn, field and at(where_of(path), field) or where_of(path), ...))
end

local function visit(st, node, path, depth)
  local where_fn = st.where_fn
  if type(node) ~= "table" then
    local w = where_of(path)
    argerror(where_fn .. ": " .. (w == "" and "the tree" or w) ..
      " must be a node table { client =, action =, ... }, got " .. type(node))
  end
  for k in pairs(node) do
    if not NODE_FIELDS[k] then
      bad_node(where_fn, path, tostring(k), ": unknown node field (a node has client, action, name," ..
        " compensate, children)")
    end
  end
  local client = Cl.check(node.client)
  if not client then bad_node(where_fn, path, "client", " must be an xdbtx Client, got %s", type(node.client)) end
  local action, compensate = node.action, node.compensate
  if type(action) ~= "function" then
    bad_node(where_fn, path, "action", " must be a function(store, session), got %s", type(action))
  end
  if compensate ~= nil and type(compensate) ~= "function" then
    bad_node(where_fn, path, "compensate", " must be a function(store, session), got %s", type(compensate))
  end
  local name = node.name
  if name ~= nil then
    if type(name) ~= "string" or name == "" then
      bad_node(where_fn, path, "name", " must be a non-empty string, got %s", U.show(name))
    end
    local names = st.names
    if names[name] then
      bad_node(where_fn, path, "name", ": duplicate name %q (also node %s)", name, names[name])
    end
    names[name] = path
  end
  local nodes = st.nodes
  -- eight fields, so the table is made at its final size (error is added
  -- only when the node fails)
  nodes[#nodes + 1] = {
    path = path, name = name, client = client, action = action, compensate = compensate,
    depth = depth, part = false, state = false,
  }
  local children = node.children
  if children ~= nil then
    if type(children) ~= "table" or not is_list(children) then
      bad_node(where_fn, path, "children", " must be a list of nodes, got %s",
        type(children) == "table" and "a table that is not a list" or type(children))
    end
    for i = 1, #children do visit(st, children[i], path .. "." .. i, depth + 1) end
  end
end

-- The tree as a list of nodes in the order their actions run (depth-first,
-- parents first): { path = "1.2", name, client, action, compensate, depth,
-- part, state }. Raises an argument error naming the path of the first
-- problem; nothing has been sent.
local function flatten(root, where_fn)
  local st = { nodes = {}, names = {}, where_fn = where_fn }
  visit(st, root, "1", 0)
  return st.nodes
end

-- The distinct clients of the nodes, in the order of their first node:
-- { client, index, nodes = {...}, compensable = every node has compensate }.
local function participants(nodes)
  local parts, by_id = {}, {}
  for _, nd in ipairs(nodes) do
    local p = by_id[nd.client._id]
    if not p then
      p = { client = nd.client, index = #parts + 1, nodes = {}, compensable = true }
      parts[#parts + 1] = p
      by_id[nd.client._id] = p
    end
    p.nodes[#p.nodes + 1] = nd
    p.compensable = p.compensable and nd.compensate ~= nil
    nd.part = p
  end
  return parts
end

local RUN_KEYS = { commit = true, mode = true, journal = true, name = true, id = true }

local function run_options(opts, where)
  local topts, timeout, sleep = A.options(opts, where, RUN_KEYS)
  local o = opts or {}
  local commit = o.commit or "sequential"
  if commit ~= "sequential" and commit ~= "parallel" then
    argerror(where .. ": option 'commit' must be \"sequential\" or \"parallel\", got " .. U.show(commit))
  end
  local mode = o.mode or "transaction"
  if mode ~= "transaction" and mode ~= "saga" then
    argerror(where .. ": option 'mode' must be \"transaction\" or \"saga\", got " .. U.show(mode))
  end
  if o.name ~= nil and (type(o.name) ~= "string" or o.name == "") then
    argerror(where .. ": option 'name' must be a non-empty string, got " .. U.show(o.name))
  end
  if o.id ~= nil and type(o.id) ~= "string" and type(o.id) ~= "number" then
    argerror(where .. ": option 'id' must be a string or a number, got " .. type(o.id))
  end
  return {
    topts = topts, timeout = timeout, sleep = sleep, parallel = commit == "parallel",
    saga = mode == "saga", name = o.name, id = o.id, journal = o.journal,
  }
end

--------------------------------------------------------------------------
-- Pieces of a run
--------------------------------------------------------------------------

local function label(nd)
  return nd.name or nd.path
end

-- An action's error as the tree raises it: an xdbtx.Error with phase
-- "action" and `node` (its own phase is kept as `operation_phase`); any
-- other value is wrapped. The quiet-rollback sentinel passes unchanged.
local function action_error(err, nd)
  if A.is_rollback(err) then return err end
  if core.is_error(err) then
    if err.phase ~= "action" then
      err.operation_phase = err.phase
      err.phase = "action"
    end
    if err.node == nil then err.node = nd and label(nd) or nil end
    return err
  end
  return xerror("action", "action", tostring(err), { node = nd and label(nd) or nil, cause = err })
end

-- The order of the commit phase: clients all of whose nodes have a
-- compensation first, then the others, each group in tree order.
local function commit_order(parts)
  local order = {}
  for _, p in ipairs(parts) do
    if p.compensable then order[#order + 1] = p end
  end
  for _, p in ipairs(parts) do
    if not p.compensable then order[#order + 1] = p end
  end
  return order
end

-- Leave the context, close the owned sessions.
local function close_run(run)
  if run.co then C.leave(run.ctx, run.co) end
  run.co = nil
  for _, p in ipairs(run.parts) do
    local s = p.session
    if s then
      s._ended = true
      pcall(s._core.close, s._core)
      if listeners[s._cid] then Mon.drain(s._client) end
    end
  end
end

-- The outcome's nodes: { path, name, client (its id), state, error, depth }.
local function node_list(nodes)
  local out = {}
  for i, nd in ipairs(nodes) do
    local c = nd.client
    out[i] = { path = nd.path, name = nd.name, client = type(c) == "table" and c._id or c,
               state = nd.state, error = nd.error, depth = nd.depth }
  end
  return out
end
Tr.node_list = node_list

-- Run the compensations of the nodes whose state is "committed" (and that
-- have one), newest first, each in a transaction of its own (transaction
-- mode) or with no session (saga mode), given the store. Used by
-- xdbtx.recover too, with a run made from the journal: run.nodes, store,
-- saga, saga_sessions (saga mode), journal, id, timeout, sleep, ev_tree.
local function compensate(run)
  local journal = run.journal
  for i = #run.nodes, 1, -1 do
    local nd = run.nodes[i]
    if nd.state == "committed" and nd.compensate then
      local t0 = now()
      local ok, err
      if run.saga then
        if journal then journal:saga_compensating(run, nd) end
        local ctx = { kind = "saga", sessions = run.saga_sessions }
        local co = C.enter(ctx)
        ok, err = pcall(nd.compensate, run.store, nil)
        C.leave(ctx, co)
        if ok and journal then journal:saga_compensated(run, nd) end
      else
        local body = function(s) return nd.compensate(run.store, s) end
        if journal then
          local marked = J.compensation_body(journal.coll, run.id, nd, run.store, nd.compensate)
          body = function(s)
            journal:compensating(run, nd, s)
            return marked(s)
          end
        end
        ok, err = pcall(T.quiet_transaction, nd.client, body, run.timeout, run.sleep)
      end
      if ok then
        nd.state = "compensated"
      else
        nd.state = "compensation_failed"
        if core.is_error(err) and err.phase ~= "compensate" then
          err.operation_phase = err.phase
          err.phase = "compensate"
        end
        if core.is_error(err) then err.node = err.node or label(nd) end
        nd.error = core.is_error(err) and err or xerror("compensate", "action", tostring(err),
          { node = label(nd), cause = err })
      end
      if wants("compensate") then
        emit("compensate", A.event(run, { node = label(nd), client = nd.client._id,
          duration = now() - t0, error = nd.error, state = nd.state }))
      end
    end
  end
end
Tr.compensate_nodes = compensate

-- The end of every run: outcome, journal, events, callbacks; then return
-- or raise. `err` (nil when committed) is the error to raise.
local function conclude(run, err, reason)
  local outcome = O.new {
    id = run.id, name = run.name, nodes = node_list(run.nodes), store = run.store,
    attempts = run.attempt or 1, error = err,
  }
  if run.journal then run.journal:finish(run, outcome) end
  local ctx = run.ctx
  local status = outcome.status
  if status == "committed" then
    if wants("commit") then
      emit("commit", A.event(run, { commits = run.commit_sends, outcome = status,
        duration = run.commit_started and now() - run.commit_started or 0 }))
    end
    if ctx and ctx.on_commit then T.run_callbacks(ctx.on_commit, "on_commit", outcome) end
    return outcome
  end
  if wants("abort") then
    emit("abort", A.event(run, { error = err, reason = reason, outcome = status,
      node = type(err) == "table" and err.node or nil }))
  end
  if ctx and ctx.on_rollback and (status == "aborted" or status == "compensated") then
    T.run_callbacks(ctx.on_rollback, "on_rollback", err or reason)
  end
  if reason ~= nil or err == nil then return nil, reason, outcome end
  if core.is_error(err) then
    err.outcome = outcome
    return error(err, 0)
  end
  error(xerror("action", "action", tostring(err), { cause = err, outcome = outcome }), 0)
end

--------------------------------------------------------------------------
-- Transaction mode
--------------------------------------------------------------------------

-- The commit step of the attempt loop.
local function tree_commit(run)
  local order = commit_order(run.parts)
  run.commit_order_list = order
  if run.journal then
    local ok, jerr = pcall(run.journal.decide, run.journal, run)
    if not ok then
      A.abort_all(run)
      return false, jerr, has_label(jerr, TRANSIENT)
    end
  end
  local sessions = {}
  for i, p in ipairs(order) do sessions[i] = p.session._core end
  run.commit_started = now()
  run.in_commit = true
  local res = core.commit_all(sessions, run.parallel, run.started + run.timeout)
  if next(listeners) then
    for _, p in ipairs(run.parts) do Mon.drain(p.client) end
  end
  local committed, unknown, first = 0, 0, nil
  run.commit_sends = 0
  for i, p in ipairs(order) do
    local r = res[i]
    p.commit = r
    run.commit_sends = run.commit_sends + r.attempts
    -- commits sent again (an unknown result) are reported now: they ran in C
    local retried = r.retried
    if retried then
      for k = 1, #retried do
        retried[k].node = label(p.nodes[1])
        A.retrying(run, retried[k], "commit")
      end
    end
    if r.state == "committed" then
      committed = committed + 1
    elseif r.state == "unknown" or r.state == "failed" then
      if r.state == "unknown" then unknown = unknown + 1 end
      local e = r.error
      e.node = label(p.nodes[1])
      first = first or e
    end
  end
  run.commit_error = first
  if committed == #order then return true end
  if committed == 0 and unknown == 0 then
    -- nothing applied: as an action error (a transient one reruns the tree)
    return false, first, has_label(first, TRANSIENT)
  end
  return "partial_commit"
end

local function tree_finish(run, how, v)
  close_run(run)
  local nodes = run.nodes
  if how == "commit" then
    for _, nd in ipairs(nodes) do nd.state = "committed" end
    return conclude(run)
  end
  if how == "partial_commit" then
    for _, nd in ipairs(nodes) do
      local st = nd.part.commit.state
      nd.state = st == "committed" and "committed" or st == "unknown" and "unknown" or "aborted"
      if st == "failed" or st == "unknown" then nd.error = nd.part.commit.error end
    end
    local unknown = false
    for _, nd in ipairs(nodes) do unknown = unknown or nd.state == "unknown" end
    if not unknown then compensate(run) end
    return conclude(run, run.commit_error)
  end
  -- aborted: an action error, a failed first commit, a quiet rollback
  local failed = run.failed
  local before = failed ~= nil -- nodes before the failed one ran
  for _, nd in ipairs(nodes) do
    if failed == nil then
      nd.state = run.body_ran and "aborted" or "not_run"
    elseif nd == failed then
      nd.state = "aborted"
      if how == "error" then nd.error = v end
      before = false
    else
      nd.state = before and "aborted" or "not_run"
    end
  end
  if how == "rollback" then return conclude(run, nil, v) end
  local err = v
  if failed == nil and run.in_commit then
    -- a failed first commit: the nodes of the failing client carry it
    for _, nd in ipairs(nodes) do
      if nd.part.commit and nd.part.commit.error then nd.error = nd.part.commit.error end
    end
  elseif failed or run.flat_failed then
    err = action_error(err, failed)
  end
  return conclude(run, err)
end

-- The body of a tree: every action, depth-first, filling the store.
local function tree_body(run)
  local store = {}
  run.store, run.failed, run.body_ran = store, nil, true
  for i, nd in ipairs(run.nodes) do
    local ok, res = pcall(nd.action, store, nd.part.session)
    if ok and run.ctx.rolled_back then
      -- xdbtx.rollback was called and its sentinel caught inside the action
      ok, res = false, run.ctx.rolled_back
    end
    if not ok then
      run.failed = nd
      error(action_error(res, nd), 0)
    end
    store[i] = res
    if nd.name then store[nd.name] = res end
  end
  return store
end

local function check_standalone(parts, where)
  for _, p in ipairs(parts) do
    local c = p.client
    if T.topology(c) == "standalone" then
      raise("connect", "transaction", where .. ": " .. c._id .. " is a standalone server, which has" ..
        " no transactions; pass mode = \"saga\" to run the tree without them (each write applied at" ..
        " once, compensations on failure)")
    end
  end
end

local function new_id()
  return core.object_id():hex()
end

local function start_run(parts, nodes, o, where)
  if C.current() then
    raise("state", "state", where .. ": a transaction is already running in this coroutine")
  end
  local id = o.id ~= nil and o.id or new_id()
  local run = {
    id = id, name = o.name, parts = parts, nodes = nodes, topts = o.topts,
    timeout = o.timeout, sleep = o.sleep, parallel = o.parallel, saga = o.saga,
    ev_tree = id, started = now(), attempt = 0, id_given = o.id ~= nil,
  }
  if o.journal ~= nil then run.journal = J.open(o.journal, run, where) end
  return run
end

local function run_transaction(run, body, finish)
  check_standalone(run.parts, run.where)
  local ctx = { kind = "tree", sessions = {}, tree = run.id }
  local sessions = {}
  local ok, err = pcall(function()
    for i, p in ipairs(run.parts) do
      local c = p.client
      local cs
      if listeners[c._id] == nil then cs = c._core:start_session() else
        cs = Mon.monitored(c, c._core.start_session, c._core)
      end
      p.session = S.new(c, cs)
      p.session._owned = true
      ctx.sessions[c._id] = p.session
      sessions[i] = p.session
    end
  end)
  if not ok then
    close_run(run)
    error(err, 0)
  end
  ctx.list = sessions
  run.ctx, run.list = ctx, sessions
  run.body, run.commit, run.finish, run.cleanup = body, tree_commit, finish, close_run
  if run.journal then
    local ok2, recorded = pcall(run.journal.begin, run.journal, run)
    if not ok2 or recorded then
      close_run(run)
      if not ok2 then error(recorded, 0) end
      return (run.replay or Tr.replay)(recorded)
    end
  end
  run.co = C.enter(ctx)
  return A.loop(run)
end

--------------------------------------------------------------------------
-- Saga mode
--------------------------------------------------------------------------

local function run_saga(run)
  local held = {}
  for _, p in ipairs(run.parts) do held[p.client._id] = false end
  run.saga_sessions = held
  run.ctx = { kind = "saga", sessions = held }
  run.attempt = 1
  if run.journal then
    local recorded = run.journal:begin(run)
    if recorded then return Tr.replay(recorded) end
  end
  if wants("start") then emit("start", A.event(run, { saga = true })) end
  local store = {}
  run.store = store
  local failed, err
  local co = C.enter(run.ctx)
  for i, nd in ipairs(run.nodes) do
    run.ctx.ops = 0
    if run.journal then run.journal:saga_running(run, nd) end
    local ok, res = pcall(nd.action, store, nil)
    if ok and run.ctx.rolled_back then
      -- xdbtx.rollback was called and its sentinel caught inside the action
      ok, res = false, run.ctx.rolled_back
    end
    if not ok then
      failed, err = nd, res
      -- what it sent before it raised was applied at once and stays
      nd.state = run.ctx.ops > 0 and "failed" or "aborted"
      break
    end
    store[i] = res
    if nd.name then store[nd.name] = res end
    nd.state = "committed"
    if run.journal then run.journal:saga_step(run, nd) end
  end
  C.leave(run.ctx, co)
  for _, nd in ipairs(run.nodes) do
    if not nd.state then nd.state = "not_run" end
  end
  if not failed then return conclude(run) end
  if A.is_rollback(err) then
    compensate(run)
    return conclude(run, nil, err.reason)
  end
  err = action_error(err, failed)
  failed.error = err
  compensate(run)
  return conclude(run, err)
end

--------------------------------------------------------------------------
-- The public functions
--------------------------------------------------------------------------

-- xdbtx.run(tree, opts) -> outcome (or nil, reason, outcome after
-- xdbtx.rollback); raises the action's or the commit's error with
-- err.outcome.
function Tr.run(tree, opts)
  local where = "xdbtx.run"
  local o = run_options(opts, where)
  local nodes = flatten(tree, where)
  local parts = participants(nodes)
  local run = start_run(parts, nodes, o, where)
  run.where = where
  if run.saga then return run_saga(run) end
  return run_transaction(run, tree_body, tree_finish)
end

-- A recorded outcome given back for a repeated id: returned when it
-- committed, raised (with err.outcome) otherwise.
function Tr.replay(outcome)
  if outcome.status == "committed" then return outcome end
  local e = outcome.error
  -- no recorded error: xdbtx.recover settled the run after its coordinator died
  local err = xerror(e and e.phase or "state", e and e.domain or "journal",
    "xdbtx.run: run " .. tostring(outcome.id) .. " already ran: " .. outcome.status ..
    (e and e.message and (": " .. e.message) or ""),
    { code = e and e.code or 0, name = e and e.name, node = e and e.node, outcome = outcome,
      replayed = true })
  error(err, 0)
end

-- The flat form: one function over several clients.
local function flat_finish(run, how, v)
  local r = pack(pcall(tree_finish, run, how, v))
  if not r[1] then error(r[2], 0) end
  if how == "commit" then return unpack(run.results, 2, run.results.n) end
  if how == "rollback" then return nil, v end
  return unpack(r, 2, r.n)
end

-- xdbtx.transaction({ a, b, ... }, fn, opts) -> fn's results: fn(sessions)
-- (sessions[i] for the i-th client) in one transaction per client, with the
-- commit protocol of xdbtx.run; raises with err.outcome.
function Tr.transaction(clients, fn, opts)
  local where = "xdbtx.transaction"
  if type(clients) ~= "table" then
    argerror(where .. ": clients must be a list of xdbtx Clients, got " .. type(clients))
  end
  if Cl.check(clients) then
    argerror(where .. ": clients must be a list { a, b }, got one Client (use client:transaction)")
  end
  if type(fn) ~= "function" then argerror(where .. ": expected a function(sessions), got " .. type(fn)) end
  if #clients == 0 or not is_list(clients) then argerror(where .. ": clients must be a non-empty list") end
  local o = run_options(opts, where)
  if o.saga then argerror(where .. ": option 'mode' = \"saga\" is for xdbtx.run (trees with compensations)") end
  local nodes = {}
  for i, c in ipairs(Cl.check_list(clients, where)) do
    nodes[i] = { path = tostring(i), client = c, depth = 0, part = false, state = false }
  end
  local parts = participants(nodes)
  local run = start_run(parts, nodes, o, where)
  run.where = where
  run.replay = function(outcome)
    if outcome.status ~= "committed" then return Tr.replay(outcome) end
    local st, n = outcome.store or {}, 0
    for k in pairs(st) do
      if type(k) == "number" and k > n then n = k end
    end
    return unpack(st, 1, n)
  end
  local function body(r)
    r.store, r.failed, r.body_ran, r.flat_failed = {}, nil, true, nil
    local sessions = {}
    for i, nd in ipairs(r.nodes) do sessions[i] = nd.part.session end
    local res = pack(pcall(fn, sessions))
    if not res[1] then
      r.flat_failed = true
      error(action_error(res[2], nil), 0)
    end
    r.results = res
    r.store = { unpack(res, 2, res.n) }
    return res
  end
  return run_transaction(run, body, flat_finish)
end

Tr.flatten, Tr.participants, Tr.commit_order = flatten, participants, commit_order
return Tr
