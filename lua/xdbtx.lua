--[[
xdbtx - MongoDB transactions for Lua (the public module).

This layer holds the policy; xdbtx.core (C) holds the pointers. It wraps the
core's Client/Collection/Session/Cursor userdata in Lua objects, routes every
operation to the session of the running transaction (the "ambient context",
one per coroutine), runs the convenient-API retry loop, hooks, on_commit /
on_rollback callbacks, event listeners and command listeners. Every user
function is called from here, never from C, so all of them may yield.
It must not hold C pointers or call libmongoc: only the core's methods.

Decisions (DESIGN.md section 2 has the public rules; these fill its gaps):
* Context per coroutine. A coroutine started inside a transaction does not
  inherit it (Lua cannot tell who created a coroutine without patching
  coroutine.*): an operation there runs outside, with no session, unless it
  passes `session = s` or its function was wrapped with `xdbtx.bind(fn)`,
  which carries the creator's context into whatever coroutine runs it.
* client:transaction inside a transaction on the same client joins it
  (fn(session) runs inline, no commit of its own; a sandbox is joined the
  same way). On a different client it is an Error (phase "state"): several
  clients are the transaction tree's job. session:with_transaction(fn, opts)
  runs the same loop on a session of the caller's (the spec's withTransaction).
* on_commit / on_rollback callbacks belong to one attempt: a retried attempt
  discards what it registered (the rerun registers again), so each runs at
  most once, after the final outcome, outside the context. A commit that
  failed for good may have been applied: its error has outcome = "unknown"
  and neither kind runs; otherwise errors say outcome = "aborted".
* Events: xdbtx.on("start"|"retry"|"commit"|"abort"|"compensate", fn).
  "start" comes once per attempt, "retry" when an attempt (what =
  "transaction") or a commit (what = "commit") is retried, "commit"/"abort"
  once at the end. Fields: client, attempt, elapsed, duration, error, ...
* State: the listener registries (xdbtx.on; client:on_command, per pool,
  since the core's command-event queue is per pool) and a weak table
  coroutine -> context are the only module-level state. Hooks live on
  Collection objects (cached per namespace by their Client object).
]]

local core = require "xdbtx.core"

local unpack = table.unpack or unpack
local co_running = coroutine.running
local MAIN = {} -- key of the main coroutine where running() returns nil (Lua 5.1/LuaJIT)
local function running() return co_running() or MAIN end
local now = core.now or os.clock

local M = { _VERSION = "xdbtx scm" }

for _, k in ipairs {
  "encode", "decode", "to_json", "from_json", "null", "array_mt", "ordered", "object_id",
  "date", "timestamp", "decimal128", "binary", "uuid", "regex", "code", "minkey", "maxkey",
  "int32", "int64", "double", "type", "Error", "error", "is_error", "json_null",
} do
  M[k] = core[k]
end

local function pack(...)
  return { n = select("#", ...), ... }
end

-- Errors made by this layer: always xdbtx.Error tables.
local function xerror(phase, domain, message, extra)
  local e = { code = 0, message = message, domain = domain, phase = phase, labels = {} }
  if extra then
    for k, v in pairs(extra) do e[k] = v end
  end
  return core.error(e)
end

local function raise(phase, domain, message, extra)
  error(xerror(phase, domain, message, extra), 0)
end

local function argerror(message)
  raise("argument", "argument", message)
end

local function has_label(err, label)
  return type(err) == "table" and type(err.labels) == "table" and err.labels[label] == true
end

local function check_opts(opts, where)
  if opts ~= nil and type(opts) ~= "table" then
    argerror(where .. ": options must be a table, got " .. type(opts))
  end
end

local function check_keys(opts, allowed, where)
  check_opts(opts, where)
  if opts then
    for k in pairs(opts) do
      if not allowed[k] then
        argerror(where .. ": unknown option '" .. tostring(k) .. "'")
      end
    end
  end
end

--------------------------------------------------------------------------
-- Events: xdbtx.on(event, fn) -> unsubscribe
--------------------------------------------------------------------------

local listeners = { start = {}, retry = {}, commit = {}, abort = {}, compensate = {} }

-- Errors of listeners and callbacks never change an outcome: warn() them
-- (Lua 5.4; enable with warn("@on")), or stderr where warn is missing.
local function report(what, err)
  local msg = "xdbtx: " .. what .. " raised: " .. tostring(err)
  local w = rawget(_G, "warn")
  if w then w(msg) else io.stderr:write(msg, "\n") end
end

local function emit(name, ev)
  local ls = listeners[name]
  if ls[1] == nil then return end
  ev.event = name
  ev.time = now()
  for _, fn in ipairs({ unpack(ls) }) do
    local ok, err = pcall(fn, ev)
    if not ok then report("listener for '" .. name .. "'", err) end
  end
end

-- xdbtx.on(event, fn) -> unsubscribe(): fn(ev) for each event; ev has
-- event, time, client, attempt, elapsed and, per event, duration, error,
-- reason, what, outcome. A listener's error is reported, never raised.
function M.on(event, fn)
  local ls = listeners[event]
  if not ls then
    argerror("xdbtx.on: unknown event '" .. tostring(event) .. "' (start, retry, commit, abort, compensate)")
  end
  if type(fn) ~= "function" then argerror("xdbtx.on: listener must be a function") end
  ls[#ls + 1] = fn
  return function()
    for i = #ls, 1, -1 do
      if ls[i] == fn then table.remove(ls, i) return true end
    end
    return false
  end
end

--------------------------------------------------------------------------
-- Ambient context
--------------------------------------------------------------------------

-- contexts[coroutine] = ctx; ctx = { sessions = { [client id] = Session },
-- parent = ctx|nil, kind = "transaction" | "sandbox", on_commit = {fn}|nil,
-- on_rollback = {fn}|nil }. Built so that a context may later hold the
-- sessions of several clients (the transaction tree).
local contexts = setmetatable({}, { __mode = "k" })

local function current()
  return contexts[running()]
end

-- xdbtx.in_transaction() -> boolean: is a transaction (or sandbox) running
-- in this coroutine?
function M.in_transaction()
  return current() ~= nil
end

--------------------------------------------------------------------------
-- Session
--------------------------------------------------------------------------

local Session = {}
Session.__index = Session
Session.__name = "xdbtx.Session"

local function real(v)
  if type(v) == "table" then return rawget(v, "__real") or v end
  return v
end

local function new_session(client, csession)
  return setmetatable({
    _core = csession, _client = client, _cid = client._id, _ended = false,
  }, Session)
end

local function check_session(s)
  if s._ended then
    raise("state", "state", "session: its transaction has ended; the operation would run outside it")
  end
end

-- Command listeners, per pool (client id): the core records the events of a
-- pool in one queue, shared by every Client object of that pool.
local command_listeners = {}

local function drain(client)
  local ls = command_listeners[client._id]
  if ls == nil then return end
  local evs = client._core:drain_events()
  if not evs then return end
  for i = 1, #evs do
    local ev = evs[i]
    for _, fn in ipairs({ unpack(ls) }) do
      local ok, err = pcall(fn, ev)
      if not ok then report("on_command listener", err) end
    end
  end
end

-- Call f(...) and, when command listeners exist, deliver the recorded events
-- afterwards, also when f raised.
local function monitored(client, f, ...)
  if command_listeners[client._id] == nil then return f(...) end
  local r = pack(pcall(f, ...))
  drain(client)
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

-- Low level: s:start_transaction(opts), s:commit(), s:abort(),
-- s:in_transaction(), s:state(), s:id(), s:client(), s:close() (also
-- __close; the core's __gc aborts an open transaction too).
function Session:start_transaction(opts)
  check_session(self)
  check_keys(opts, { read_concern = true, write_concern = true, read_preference = true,
                     max_commit_time_ms = true }, "session:start_transaction")
  local c = self._core
  return monitored(self._client, c.start_transaction, c, opts)
end

function Session:commit()
  check_session(self)
  local c = self._core
  return monitored(self._client, c.commit, c)
end

function Session:abort()
  check_session(self)
  local c = self._core
  return monitored(self._client, c.abort, c)
end

function Session:in_transaction()
  if self._ended then return false end
  return self._core:in_transaction()
end

function Session:state()
  return self._core:state()
end

function Session:id()
  return self._core:id()
end

function Session:client()
  return self._client
end

function Session:close()
  local c = self._core
  return monitored(self._client, c.close, c)
end
Session.__close = Session.close

local function register_callback(self, list, fn, what)
  if type(fn) ~= "function" then argerror("session:" .. what .. ": callback must be a function") end
  local ctx = self._ctx
  if not ctx or self._ended then
    raise("state", "state", "session:" .. what .. ": only inside client:transaction or xdbtx.sandbox")
  end
  local l = ctx[list]
  if l == nil then
    l = {}
    ctx[list] = l
  end
  l[#l + 1] = fn
end

-- session:on_commit(fn): fn(...) with the transaction's results, once,
-- after the final commit. session:on_rollback(fn): fn(err_or_reason) once,
-- after the final abort. Errors in them are reported with warn().
function Session:on_commit(fn) register_callback(self, "on_commit", fn, "on_commit") end
function Session:on_rollback(fn) register_callback(self, "on_rollback", fn, "on_rollback") end

function Session:__tostring()
  return "xdbtx.Session (" .. self._cid .. ")"
end

--------------------------------------------------------------------------
-- Routing: which core session an operation runs in
--------------------------------------------------------------------------

-- Split opts into (opts without `session`, session argument).
local function split(opts, where)
  if opts == nil then return nil, nil end
  if type(opts) ~= "table" then argerror(where .. ": options must be a table, got " .. type(opts)) end
  local s = opts.session
  if s == nil then return opts, nil end
  local o = {}
  for k, v in pairs(opts) do
    if k ~= "session" then o[k] = v end
  end
  return o, s
end

-- -> core session (or nil for none), Lua Session (or nil)
local function route(client, s, where)
  if s == false then return false, nil end
  if s ~= nil then
    s = real(s)
    if getmetatable(s) ~= Session then
      argerror(where .. ": option 'session' must be an xdbtx Session or false")
    end
    if s._cid ~= client._id then
      raise("routing", "state", where .. ": the session belongs to another client (" .. s._cid .. ")")
    end
    check_session(s)
    return s._core, s
  end
  local ctx = contexts[running()]
  if ctx == nil then return nil, nil end
  local ws = ctx.sessions[client._id]
  if ws == nil then
    raise("routing", "state", where .. ": client " .. client._id ..
      " is not part of the running transaction; the operation would escape the rollback" ..
      " (pass session = false to run it outside on purpose)")
  end
  return ws._core, ws
end

--------------------------------------------------------------------------
-- Cursor
--------------------------------------------------------------------------

local Cursor = {}
Cursor.__index = Cursor
Cursor.__name = "xdbtx.Cursor"

local function new_cursor(client, ccursor)
  return setmetatable({ _core = ccursor, _client = client }, Cursor)
end

-- cursor() / cursor:next() -> doc | nil; closes the cursor when exhausted.
function Cursor:next()
  local c = self._core
  if not c then return nil end
  local doc = monitored(self._client, c.next, c)
  if doc == nil then self:close() end
  return doc
end

function Cursor:__call()
  return self:next()
end

function Cursor:all()
  local out = setmetatable({}, M.array_mt)
  local ok, err = pcall(function()
    local c = self._core
    while c do
      local doc = monitored(self._client, c.next, c)
      if doc == nil then break end
      out[#out + 1] = doc
    end
  end)
  self:close()
  if not ok then error(err, 0) end
  return out
end

function Cursor:close()
  local c = self._core
  if c then
    self._core = nil
    c:close()
  end
end
Cursor.__close = Cursor.close
Cursor.__gc = Cursor.close

--------------------------------------------------------------------------
-- Collection
--------------------------------------------------------------------------

local Collection = {}
Collection.__index = Collection
Collection.__name = "xdbtx.Collection"

local hook_ops = {
  insert = true, update = true, replace = true, delete = true,
  find_one_and_update = true, find_one_and_replace = true, find_one_and_delete = true,
}

local function add_hook(self, when, op, fn)
  if not hook_ops[op] then
    argerror("collection:" .. when .. ": unknown operation '" .. tostring(op) ..
      "' (insert, update, replace, delete, find_one_and_update, find_one_and_replace, find_one_and_delete)")
  end
  if type(fn) ~= "function" then argerror("collection:" .. when .. ": hook must be a function") end
  local t = self._hooks[when]
  local l = t[op]
  if not l then l = {} t[op] = l end
  l[#l + 1] = fn
  return function()
    for i = #l, 1, -1 do
      if l[i] == fn then table.remove(l, i) return true end
    end
    return false
  end
end

-- coll:before(op, fn) / coll:after(op, fn) -> unregister function. Arguments
-- (s = the Session the operation runs in, or nil):
--   insert                before(doc, s)            after(doc, {inserted_id=}, s)   (each doc)
--   update                before(filter, update, s) after(filter, update, result, s)
--   replace               before(filter, doc, s)    after(filter, doc, result, s)
--   delete                before(filter, s)         after(filter, result, s)
--   find_one_and_update   before(filter, update, s) after(filter, update, doc|nil, s)
--   find_one_and_replace  before(filter, doc, s)    after(filter, doc, doc|nil, s)
--   find_one_and_delete   before(filter, s)         after(filter, doc|nil, s)
function Collection:before(op, fn) return add_hook(self, "before", op, fn) end
function Collection:after(op, fn) return add_hook(self, "after", op, fn) end

local function run_hooks(self, when, op, ...)
  local l = self._hooks[when][op]
  if l == nil or l[1] == nil then return end
  for _, fn in ipairs({ unpack(l) }) do fn(...) end
end

local function has_hooks(self, op)
  local b, a = self._hooks.before[op], self._hooks.after[op]
  return (b ~= nil and b[1] ~= nil) or (a ~= nil and a[1] ~= nil)
end

function Collection:name() return self._core:name() end
function Collection:database() return self._core:database() end
function Collection:client() return self._client end

function Collection:__tostring()
  return "xdbtx.Collection (" .. self._core:database() .. "." .. self._core:name() .. ")"
end

-- Operations with one argument before opts: (filter|doc|pipeline, opts).
local function op1(method, hook)
  local where = "collection:" .. method
  return function(self, a, opts)
    local o, sarg = split(opts, where)
    local client = self._client
    local cs, ws = route(client, sarg, where)
    local c = self._core
    if hook and has_hooks(self, hook) then
      run_hooks(self, "before", hook, a, ws)
      local r = monitored(client, c[method], c, cs, a, o)
      run_hooks(self, "after", hook, a, r, ws)
      return r
    end
    return monitored(client, c[method], c, cs, a, o)
  end
end

-- Operations with two arguments before opts: (filter, update|doc, opts).
local function op2(method, hook)
  local where = "collection:" .. method
  return function(self, a, b, opts)
    local o, sarg = split(opts, where)
    local client = self._client
    local cs, ws = route(client, sarg, where)
    local c = self._core
    if hook and has_hooks(self, hook) then
      run_hooks(self, "before", hook, a, b, ws)
      local r = monitored(client, c[method], c, cs, a, b, o)
      run_hooks(self, "after", hook, a, b, r, ws)
      return r
    end
    return monitored(client, c[method], c, cs, a, b, o)
  end
end

local function cursor_op(method)
  local where = "collection:" .. method
  return function(self, a, opts)
    local o, sarg = split(opts, where)
    local client = self._client
    local cs = route(client, sarg, where)
    local c = self._core
    local cur = new_cursor(client, monitored(client, c[method], c, cs, a, o))
    -- the 4th value is the generic for's to-be-closed value (Lua 5.4)
    return cur, nil, nil, cur
  end
end

Collection.insert_one = op1("insert_one", "insert")
Collection.find_one = op1("find_one")
Collection.count_documents = op1("count_documents")
Collection.delete_one = op1("delete_one", "delete")
Collection.delete_many = op1("delete_many", "delete")
Collection.find_one_and_delete = op1("find_one_and_delete", "find_one_and_delete")
Collection.update_one = op2("update_one", "update")
Collection.update_many = op2("update_many", "update")
Collection.replace_one = op2("replace_one", "replace")
Collection.find_one_and_update = op2("find_one_and_update", "find_one_and_update")
Collection.find_one_and_replace = op2("find_one_and_replace", "find_one_and_replace")
Collection.find = cursor_op("find")
Collection.aggregate = cursor_op("aggregate")

function Collection:insert_many(docs, opts)
  local where = "collection:insert_many"
  local o, sarg = split(opts, where)
  local client = self._client
  local cs, ws = route(client, sarg, where)
  local c = self._core
  if not has_hooks(self, "insert") then
    return monitored(client, c.insert_many, c, cs, docs, o)
  end
  if type(docs) ~= "table" then argerror(where .. ": docs must be a table") end
  for i = 1, #docs do run_hooks(self, "before", "insert", docs[i], ws) end
  local r = monitored(client, c.insert_many, c, cs, docs, o)
  local ids = r.inserted_ids or {}
  for i = 1, #docs do run_hooks(self, "after", "insert", docs[i], { inserted_id = ids[i] }, ws) end
  return r
end

--------------------------------------------------------------------------
-- Client
--------------------------------------------------------------------------

local Client = {}
Client.__index = Client
Client.__name = "xdbtx.Client"

-- xdbtx.client(uri, opts) -> Client. Options go to the core (app_name,
-- max_pool_size, server_selection_timeout_ms, ...; unknown keys raise).
function M.client(uri, opts)
  if type(uri) ~= "string" then argerror("xdbtx.client: uri must be a string") end
  check_opts(opts, "xdbtx.client")
  local c = core.client(uri, opts)
  return setmetatable({
    _core = c, _id = c:id(), _colls = {},
  }, Client)
end

-- Two Client objects of the same pool (same URI and options) are equal.
function Client.__eq(a, b) return a._id == b._id end

function Client:id() return self._id end
function Client:uri() return self._core:uri() end
function Client:topology() return self._core:topology() end

function Client:__tostring()
  return "xdbtx.Client (" .. self._id .. ")"
end

-- client:collection(db, name) or client:collection("db.name"). The object is
-- cached per namespace, so hooks registered on it apply to every use of it.
function Client:collection(db, name)
  if type(db) ~= "string" then argerror("client:collection: database name must be a string") end
  if name == nil then
    local d, n = db:match("^([^.]+)%.(.+)$")
    if not d then argerror("client:collection: expected \"db.collection\", got \"" .. db .. "\"") end
    db, name = d, n
  elseif type(name) ~= "string" then
    argerror("client:collection: collection name must be a string")
  end
  local ns = db .. "." .. name
  local coll = self._colls[ns]
  if coll == nil then
    coll = setmetatable({
      _core = self._core:collection(db, name), _client = self,
      _hooks = { before = {}, after = {} },
    }, Collection)
    self._colls[ns] = coll
  end
  return coll
end

-- client:command(db, cmd, opts) -> reply (routed like any operation).
function Client:command(db, cmd, opts)
  local o, sarg = split(opts, "client:command")
  local cs = route(self, sarg, "client:command")
  local c = self._core
  return monitored(self, c.command, c, cs, db, cmd, o)
end

-- client:start_session(opts) -> Session (low level: you start, commit, abort).
function Client:start_session(opts)
  check_opts(opts, "client:start_session")
  local c = self._core
  return new_session(self, monitored(self, c.start_session, c, opts))
end

-- client:on_command(fn) -> unsubscribe. fn(event) gets the core's recorded
-- command events (started/succeeded/failed), after each operation returns.
-- Listeners belong to the pool: every Client object of the same URI (and
-- options) feeds them; monitoring is on while any listener is registered.
function Client:on_command(fn)
  if type(fn) ~= "function" then argerror("client:on_command: listener must be a function") end
  local id = self._id
  local ls = command_listeners[id]
  if ls == nil then
    self._core:monitor(true)
    self._core:drain_events()
    ls = {}
    command_listeners[id] = ls
  end
  ls[#ls + 1] = fn
  local core_client = self._core
  return function()
    for i = #ls, 1, -1 do
      if ls[i] == fn then
        table.remove(ls, i)
        if #ls == 0 and command_listeners[id] == ls then
          command_listeners[id] = nil
          core_client:monitor(false)
        end
        return true
      end
    end
    return false
  end
end

--------------------------------------------------------------------------
-- Transactions (MongoDB convenient-API rules, over core primitives)
--------------------------------------------------------------------------

local TRANSIENT = "TransientTransactionError"
local UNKNOWN_COMMIT = "UnknownTransactionCommitResult"

local Rollback = { __name = "xdbtx.rollback" }
Rollback.__index = Rollback
function Rollback:__tostring()
  return "xdbtx.rollback: " .. tostring(self.reason)
end

-- xdbtx.rollback(reason): abort the running transaction quietly; it returns
-- nil, reason. Raises a private sentinel that the transaction catches.
function M.rollback(reason)
  if current() == nil then
    raise("state", "state", "xdbtx.rollback: no transaction is running in this coroutine")
  end
  error(setmetatable({ reason = reason }, Rollback), 0)
end

local txn_keys = {
  read_concern = true, write_concern = true, read_preference = true,
  max_commit_time_ms = true, timeout = true,
}

local function txn_options(opts, where)
  check_keys(opts, txn_keys, where)
  local timeout = 120
  local topts = nil
  if opts then
    if opts.timeout ~= nil then
      if type(opts.timeout) ~= "number" or opts.timeout < 0 then
        argerror(where .. ": option 'timeout' must be a number of seconds >= 0")
      end
      timeout = opts.timeout
    end
    for k, v in pairs(opts) do
      if k ~= "timeout" then
        topts = topts or {}
        topts[k] = v
      end
    end
  end
  return topts, timeout
end

local function max_time_expired(err)
  if err.name == "MaxTimeMSExpired" or err.code == 50 then return true end
  local wce = type(err.reply) == "table" and err.reply.writeConcernError
  return type(wce) == "table" and (wce.codeName == "MaxTimeMSExpired" or wce.code == 50)
end

local function check_topology(client, where)
  local t = client._topology
  if t == nil then
    t = client._core:topology()
    if t ~= "unknown" then client._topology = t end
  end
  if t == "standalone" then
    raise("connect", "transaction", where .. ": " .. client._id .. " is a standalone server, which has no" ..
      " transactions (they need a replica set or a sharded cluster); for a standalone server the" ..
      " transaction tree's compensation-based mode = \"saga\" is the way (xdbtx.run: not in this version yet)")
  end
end

-- Run the callbacks of a final outcome, outside any context.
local function run_callbacks(list, what, ...)
  for i = 1, #list do
    local ok, err = pcall(list[i], ...)
    if not ok then report(what .. " callback", err) end
  end
end

local function timeout_error(err, timeout, attempts)
  local labels = {}
  if type(err) == "table" and type(err.labels) == "table" then
    for k, v in pairs(err.labels) do labels[k] = v end
  end
  return xerror(type(err) == "table" and err.phase or "commit", "transaction",
    ("transaction retries stopped: the timeout of %gs elapsed after %d attempt(s); last error: %s")
      :format(timeout, attempts, tostring(type(err) == "table" and err.message or err)),
    { code = type(err) == "table" and err.code or 0, name = type(err) == "table" and err.name or nil,
      labels = labels, reply = type(err) == "table" and err.reply or nil, cause = err, timed_out = true })
end

-- Push a context for the running coroutine; returns it and the coroutine.
local function enter(kind, client, session)
  local co = running()
  local ctx = { kind = kind, parent = contexts[co], sessions = { [client._id] = session } }
  session._ctx = ctx
  contexts[co] = ctx
  return ctx, co
end

-- Pop the context. An owned session (made by client:transaction or sandbox)
-- is closed and marked ended; a user's session (session:with_transaction)
-- stays usable.
local function leave(ctx, co, session, owned)
  contexts[co] = ctx.parent
  session._ctx = nil
  if owned then
    session._ended = true
    pcall(session._core.close, session._core)
  end
  drain(session._client)
end

local function join(ctx, client, fn)
  local s = ctx.sessions[client._id]
  if s == nil then
    raise("state", "state", "client:transaction: a transaction on another client is running in this" ..
      " coroutine; several clients need the transaction tree (xdbtx.run / xdbtx.transaction)")
  end
  return fn(s)
end

-- The end of a transaction (st: the loop's state). Each leaves the context
-- first, then reports, then runs the callbacks of the outcome. A failed
-- commit (not labelled transient) may have been applied: its outcome is
-- "unknown" and neither on_commit nor on_rollback callbacks run.
local function finish_error(st, err, in_commit)
  local outcome = "aborted"
  if in_commit and not has_label(err, TRANSIENT) then outcome = "unknown" end
  if core.is_error(err) and err.outcome == nil then err.outcome = outcome end
  local cbs = st.ctx.on_rollback
  leave(st.ctx, st.co, st.session, st.owned)
  if listeners.abort[1] then
    emit("abort", { client = st.cid, attempt = st.attempt, elapsed = now() - st.started, error = err,
                    outcome = outcome })
  end
  if cbs and outcome == "aborted" then run_callbacks(cbs, "on_rollback", err) end
  error(err, 0)
end

local function finish_rollback(st, reason, state)
  local cbs = st.ctx.on_rollback
  leave(st.ctx, st.co, st.session, st.owned)
  if listeners.abort[1] then
    emit("abort", { client = st.cid, attempt = st.attempt, elapsed = now() - st.started, reason = reason,
                    state = state, outcome = "aborted" })
  end
  if cbs then run_callbacks(cbs, "on_rollback", reason) end
end

local function finish_commit(st, res, t0)
  local cbs = st.ctx.on_commit
  leave(st.ctx, st.co, st.session, st.owned)
  if listeners.commit[1] then
    emit("commit", { client = st.cid, attempt = st.attempt, commits = st.commits,
                     elapsed = now() - st.started, duration = t0 and now() - t0 or 0 })
  end
  if cbs then run_callbacks(cbs, "on_commit", unpack(res, 2, res.n)) end
  return unpack(res, 2, res.n)
end

local function retrying(st, err, what, elapsed)
  if listeners.retry[1] then
    emit("retry", { client = st.cid, attempt = st.attempt, elapsed = elapsed, error = err, what = what })
  end
end

-- Before rerunning a whole transaction: a jittered exponential pause
-- (5 ms growing 1.5x per attempt, at most 500 ms, never past the timeout),
-- so a conflict that persists does not turn into a busy loop against the
-- server. ngx.sleep under OpenResty (it yields), core.sleep elsewhere.
local BACKOFF_INITIAL, BACKOFF_MAX, BACKOFF_GROWTH = 0.005, 0.5, 1.5
local function backoff(st, timeout)
  local pause = math.random() * math.min(BACKOFF_INITIAL * BACKOFF_GROWTH ^ (st.attempt - 1), BACKOFF_MAX)
  pause = math.min(pause, timeout - (now() - st.started))
  if pause <= 0 then return end
  local ngx_sleep = rawget(_G, "ngx") and ngx.sleep
  if ngx_sleep and pcall(ngx_sleep, pause) then return end
  if core.sleep then core.sleep(pause) end
end

-- The convenient-API loop over one session (reused by every attempt).
local function run_transaction(client, session, fn, topts, timeout, owned)
  local cs = session._core
  local ctx, co = enter("transaction", client, session)
  local st = { ctx = ctx, co = co, session = session, owned = owned, cid = client._id,
               started = now(), attempt = 0, commits = 0 }

  while true do
    st.attempt = st.attempt + 1
    ctx.on_commit, ctx.on_rollback = nil, nil
    local ok, err = pcall(session.start_transaction, session, topts)
    if not ok then return finish_error(st, err) end
    if listeners.start[1] then
      emit("start", { client = st.cid, attempt = st.attempt, elapsed = now() - st.started })
    end

    local res = pack(pcall(fn, session))
    local retry = false
    if not res[1] then
      err = res[2]
      if cs:in_transaction() then pcall(session.abort, session) end
      if getmetatable(err) == Rollback then
        finish_rollback(st, err.reason)
        return nil, err.reason
      end
      if not has_label(err, TRANSIENT) then return finish_error(st, err) end
      local elapsed = now() - st.started
      if elapsed >= timeout then return finish_error(st, timeout_error(err, timeout, st.attempt)) end
      retrying(st, err, "transaction", elapsed)
      retry = true
    else
      local state = cs:state()
      if state == "committed" then return finish_commit(st, res) end
      if state ~= "starting" and state ~= "in_progress" then
        -- the function ended the transaction itself (spec: return success)
        finish_rollback(st, nil, state)
        return unpack(res, 2, res.n)
      end
      local t0 = now()
      while true do
        st.commits = st.commits + 1
        local cok, cerr = pcall(session.commit, session)
        if cok then return finish_commit(st, res, t0) end
        local elapsed = now() - st.started
        if has_label(cerr, UNKNOWN_COMMIT) and not max_time_expired(cerr) then
          if elapsed >= timeout then
            return finish_error(st, timeout_error(cerr, timeout, st.attempt), true)
          end
          retrying(st, cerr, "commit", elapsed)
        elseif has_label(cerr, TRANSIENT) then
          if elapsed >= timeout then
            return finish_error(st, timeout_error(cerr, timeout, st.attempt), true)
          end
          retrying(st, cerr, "transaction", elapsed)
          retry = true
          break
        else
          return finish_error(st, cerr, true)
        end
      end
    end
    if not retry then return end
    backoff(st, timeout)
  end
end

-- client:transaction(fn, opts) -> fn's results | nil, reason (xdbtx.rollback)
function Client:transaction(fn, opts)
  if type(fn) ~= "function" then argerror("client:transaction: expected a function") end
  local topts, timeout = txn_options(opts, "client:transaction")
  local ctx0 = current()
  if ctx0 then return join(ctx0, self, fn) end
  check_topology(self, "client:transaction")
  local c = self._core
  local session = new_session(self, monitored(self, c.start_session, c))
  return run_transaction(self, session, fn, topts, timeout, true)
end

-- session:with_transaction(fn, opts): the same loop on a session of your
-- own (MongoDB's session.withTransaction); the session stays open after.
function Session:with_transaction(fn, opts)
  if type(fn) ~= "function" then argerror("session:with_transaction: expected a function") end
  local topts, timeout = txn_options(opts, "session:with_transaction")
  check_session(self)
  local ctx0 = current()
  if ctx0 then
    if ctx0.sessions[self._cid] == self then return fn(self) end
    raise("state", "state", "session:with_transaction: another transaction is running in this coroutine")
  end
  check_topology(self._client, "session:with_transaction")
  return run_transaction(self._client, self, fn, topts, timeout, false)
end

-- xdbtx.session(client) -> the Session the running transaction holds for
-- client, or nil.
function M.session(client)
  client = real(client)
  if getmetatable(client) ~= Client then argerror("xdbtx.session: expected a Client") end
  local ctx = current()
  if ctx == nil then return nil end
  return ctx.sessions[client._id]
end

-- xdbtx.bind(fn) -> function running fn in the caller's context, from any
-- coroutine (for coroutines started inside a transaction).
function M.bind(fn)
  if type(fn) ~= "function" then argerror("xdbtx.bind: expected a function") end
  local ctx = current()
  if ctx == nil then return fn end
  return function(...)
    local co = running()
    local saved = contexts[co]
    contexts[co] = ctx
    local r = pack(pcall(fn, ...))
    contexts[co] = saved
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2, r.n)
  end
end

-- xdbtx.sandbox(client, fn, opts) -> fn's results: fn(session) runs in a
-- transaction that is always aborted; errors are re-raised after the abort;
-- xdbtx.rollback(reason) returns nil, reason. A client:transaction inside
-- joins the sandbox, so nothing it does commits.
function M.sandbox(client, fn, opts)
  client = real(client)
  if getmetatable(client) ~= Client then argerror("xdbtx.sandbox: expected a Client") end
  if type(fn) ~= "function" then argerror("xdbtx.sandbox: expected a function") end
  local topts = txn_options(opts, "xdbtx.sandbox")
  if current() then
    raise("state", "state", "xdbtx.sandbox: a transaction is already running in this coroutine")
  end
  check_topology(client, "xdbtx.sandbox")
  local cs = client._core:start_session()
  local session = new_session(client, cs)
  local ctx, co = enter("sandbox", client, session)
  local started = now()
  local ok, err = pcall(session.start_transaction, session, topts)
  if not ok then
    leave(ctx, co, session, true)
    error(err, 0)
  end
  if listeners.start[1] then
    emit("start", { client = client._id, attempt = 1, elapsed = 0, sandbox = true })
  end
  local res = pack(pcall(fn, session))
  if cs:in_transaction() then pcall(session.abort, session) end
  local cbs = ctx.on_rollback
  leave(ctx, co, session, true)
  local rolled = not res[1] and getmetatable(res[2]) == Rollback
  local reason = rolled and res[2].reason or nil
  local err = (not res[1] and not rolled) and res[2] or nil
  if listeners.abort[1] then
    emit("abort", { client = client._id, attempt = 1, elapsed = now() - started, sandbox = true,
                    error = err, reason = reason, outcome = "aborted" })
  end
  if cbs then run_callbacks(cbs, "on_rollback", rolled and reason or err) end
  if rolled then return nil, reason end
  if err ~= nil or not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

-- Types, for the safe variant and for tests.
M.Client, M.Collection, M.Session, M.Cursor = Client, Collection, Session, Cursor

return M
