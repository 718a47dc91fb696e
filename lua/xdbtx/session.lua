--[[
xdbtx.session - the Session object: a Lua wrapper over a core session.

Low level: s:start_transaction(opts), s:commit(), s:abort(),
s:in_transaction(), s:state(), s:id(), s:client(), s:close() (also
__close; the core's __gc aborts an open transaction too). A session that a
running transaction holds (field _ctx: its context) also takes on_commit /
on_rollback callbacks. A session its owner ended (_ended) refuses every use.
session:with_transaction is added by xdbtx.transaction.
]]

local U = require "xdbtx.util"
local Mon = require "xdbtx.monitor"

local raise, argerror, monitored = U.raise, U.argerror, Mon.monitored

local Session = {}
Session.__index = Session
Session.__name = "xdbtx.Session"

local S = { Session = Session }

function S.new(client, csession)
  return setmetatable({
    _core = csession, _client = client, _cid = client._id, _ended = false,
  }, Session)
end

-- Raise when the session's transaction has ended under its owner.
function S.check(s)
  if s._ended then
    raise("state", "state", "session: its transaction has ended; the operation would run outside it")
  end
end

local check = S.check

local txn_keys = { read_concern = true, write_concern = true, read_preference = true,
                   max_commit_time_ms = true }
S.txn_keys = txn_keys

function Session:start_transaction(opts)
  check(self)
  U.check_keys(opts, txn_keys, "session:start_transaction")
  local c = self._core
  return monitored(self._client, c.start_transaction, c, opts)
end

function Session:commit()
  check(self)
  local c = self._core
  return monitored(self._client, c.commit, c)
end

function Session:abort()
  check(self)
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

return S
