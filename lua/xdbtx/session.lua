--[[
xdbtx.session - the Session object: a Lua wrapper over a core session.

Low level: s:start_transaction(opts), s:commit(), s:abort(),
s:in_transaction(), s:state(), s:id(), s:client(), s:close() (also
__close; the core's __gc aborts an open transaction too).

A session that a running transaction holds (field _ctx: its context) also
takes on_commit / on_rollback callbacks, and guards its transaction: a body
of client:transaction or with_transaction may commit or abort it itself
(MongoDB's convenient API allows it), after which the session is marked
_txn_ended and operations routed to it raise instead of running outside
the transaction (see S.check_txn); a sandbox or a tree never lets its body
commit (or start another transaction), and inside a sandbox no session
starts or commits one. A session its owner closed (_ended) refuses
every use. The transaction loops use S.start/S.commit/S.abort, which skip
those guards. session:with_transaction is added by xdbtx.transaction.
]]

local U = require "xdbtx.util"
local Mon = require "xdbtx.monitor"

local raise, argerror, bad_self, monitored = U.raise, U.argerror, U.bad_self, Mon.monitored
local listeners = Mon.listeners
local getmetatable, setmetatable = getmetatable, setmetatable

local Session = {}
Session.__index = Session
Session.__name = "xdbtx.Session"

local S = { Session = Session }

function S.new(client, csession)
  return setmetatable({
    _core = csession, _client = client, _cid = client._id, _ended = false, _txn_ended = false,
  }, Session)
end

-- Raise when the session's owner closed it (a transaction's session after
-- the transaction).
function S.check(s)
  if s._ended then
    raise("state", "state", "session: its transaction has ended; the operation would run outside it")
  end
end

-- Raise for an operation routed to a session whose running transaction
-- its body ended (ambient: always; named with `session = s`: when xdbtx
-- owns the session, i.e. not for with_transaction on a session of yours).
function S.check_txn(s, ambient)
  if s._txn_ended and s._ctx and (ambient or s._owned) then
    raise("state", "state", "session: the running transaction was ended by session:commit() or" ..
      " session:abort() inside it; the operation would run outside it")
  end
end

local check = S.check

local function self_check(self, where)
  if getmetatable(self) ~= Session then bad_self(where, "a Session", self) end
end

-- The loops' own steps (no guards).
function S.start(s, opts)
  s._txn_ended = false
  local c = s._core
  if listeners[s._cid] == nil then return c:start_transaction(opts) end
  return monitored(s._client, c.start_transaction, c, opts)
end

function S.commit(s)
  local c = s._core
  if listeners[s._cid] == nil then return c:commit() end
  return monitored(s._client, c.commit, c)
end

function S.abort(s)
  local c = s._core
  if listeners[s._cid] == nil then return c:abort() end
  return monitored(s._client, c.abort, c)
end

-- The running coroutine's context, or nil: set by xdbtx.context (which
-- needs this module first).
function S.current() return nil end

-- The sandbox the running coroutine is in (its context or an outer one), or nil.
local function running_sandbox()
  local ctx = S.current()
  while ctx do
    if ctx.kind == "sandbox" then return ctx end
    ctx = ctx.parent
  end
  return nil
end

-- A sandbox or a tree ends its sessions' transactions itself, and nothing
-- inside a sandbox commits: no session there, held by it or not, starts or
-- commits a transaction of its own.
local function guard(self, what)
  local ctx = self._ctx
  if (ctx and ctx.kind == "sandbox") or running_sandbox() then
    raise("state", "state", "session:" .. what .. ": a sandbox never commits; it aborts when its" ..
      " function returns")
  end
  if ctx and ctx.kind ~= "transaction" then
    raise("state", "state", "session:" .. what .. ": the transaction tree commits its sessions itself," ..
      " after every action succeeded")
  end
end

function Session:start_transaction(opts)
  self_check(self, "session:start_transaction")
  check(self)
  guard(self, "start_transaction")
  S.start(self, opts)
  return self
end

function Session:commit()
  self_check(self, "session:commit")
  check(self)
  guard(self, "commit")
  local r = S.commit(self)
  local ctx = self._ctx
  if ctx then
    self._txn_ended = true
    ctx.body_committed = true
  end
  return r
end

function Session:abort()
  self_check(self, "session:abort")
  check(self)
  local r = S.abort(self)
  if self._ctx then self._txn_ended = true end
  return r
end

function Session:in_transaction()
  self_check(self, "session:in_transaction")
  if self._ended then return false end
  return self._core:in_transaction()
end

function Session:state()
  self_check(self, "session:state")
  return self._core:state()
end

function Session:id()
  self_check(self, "session:id")
  return self._core:id()
end

function Session:client()
  self_check(self, "session:client")
  return self._client
end

function Session:close()
  self_check(self, "session:close")
  local c = self._core
  return monitored(self._client, c.close, c)
end
Session.__close = Session.close

local function register_callback(self, list, fn, what)
  self_check(self, "session:" .. what)
  if type(fn) ~= "function" then argerror("session:" .. what .. ": callback must be a function") end
  local ctx = self._ctx
  if not ctx or self._ended then
    raise("state", "state", "session:" .. what .. ": only inside a transaction or a sandbox")
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

return S
