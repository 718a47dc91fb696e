--[[
xdbtx.context - the ambient context: which session an operation runs in.

One context per coroutine (a weak table coroutine -> ctx, the only state
here). ctx = { kind = "transaction" | "sandbox" | "tree", parent = ctx|nil,
sessions = { [client id] = Session | false }, list = { Session, ... } (when
every held client has a session), on_commit, on_rollback }; a one-cluster
context has cid and session instead of sessions and list.
A context holds the sessions of every client of the running transaction (one
for client:transaction, several for a tree); `false` marks a client that the
context holds but runs without a session (saga mode; ctx.ops counts the
operations routed so, each applied at once). An operation on a
client the context does not hold is a routing error: it would escape the
rollback. A coroutine started inside a transaction does not inherit it
(Lua cannot tell who created a coroutine); xdbtx.bind(fn) carries it over.
Under OpenResty a request's coroutine is reused for later requests, and a
request that ended inside a transaction (ngx.exit, a client abort) never
left its context: each context records the request it was entered in
(its ngx.ctx), and a lookup from another request drops it, aborting its
transactions and giving its sessions back, instead of running the new
request inside them.
]]

local U = require "xdbtx.util"
local S = require "xdbtx.session"

local pcall, getmetatable, setmetatable, type = pcall, getmetatable, setmetatable, type
local C = {}

local raise, argerror, pack, unpack = U.raise, U.argerror, U.pack, U.unpack
local Session, check_session, check_txn = S.Session, S.check, S.check_txn
local co_running, MAIN = coroutine.running, U.MAIN
local contexts = setmetatable({}, { __mode = "k" })

-- OpenResty: contexts becomes a view over the weak table that checks the
-- owner request, and every lookup goes through it (C.by_request: the core's
-- fast Collection methods, which read the table raw, are not used).
local ngx = rawget(_G, "ngx")
if type(ngx) == "table" and type(ngx.get_phase) == "function" then
  C.by_request = true
  local store = contexts
  local owners = setmetatable({}, { __mode = "k" }) -- ctx -> its request's ngx.ctx (or false)
  local function request_ctx() return ngx.ctx end
  local function request()
    local ok, r = pcall(request_ctx)
    return ok and r or false
  end
  -- fn(s) for every Session a context holds: its one session, its list, or
  -- its map by client id (saga entries `false` left out).
  local function each_session(ctx, fn)
    local one, list = ctx.session, ctx.list
    if one then return fn(one) end
    if list then
      for i = 1, #list do fn(list[i]) end
      return
    end
    for _, s in pairs(ctx.sessions) do
      if s then fn(s) end
    end
  end

  -- A session of a context whose request is gone: its transaction ends
  -- (aborted as it closes; a session of the user's is aborted, not closed).
  local function drop_session(s)
    s._ctx = nil
    if s._owned then
      s._ended = true
      pcall(s._core.close, s._core)
    else
      pcall(s._core.abort, s._core)
    end
  end
  contexts = setmetatable({}, {
    __index = function(_, co)
      local ctx = store[co]
      if ctx == nil then return nil end
      if owners[ctx] ~= request() then
        store[co] = nil
        repeat -- the whole stack the dead request left
          each_session(ctx, drop_session)
          ctx = ctx.parent
        until ctx == nil
        return nil
      end
      return ctx
    end,
    __newindex = function(_, co, ctx)
      if ctx ~= nil and owners[ctx] == nil then owners[ctx] = request() end
      store[co] = ctx
    end,
  })
end
C.contexts = contexts -- read by the core's fast Collection methods (src/lfast.c)

function C.current()
  return contexts[co_running() or MAIN]
end
S.current = C.current

-- Mark the sessions of a context with several (a list, or a map by client
-- id) as held by v (the context, or nil); C.enter and C.leave mark a
-- context's one session themselves.
local function mark(ctx, v)
  local list = ctx.list
  if list then
    for i = 1, #list do list[i]._ctx = v end
  else
    for _, s in pairs(ctx.sessions) do
      if s then s._ctx = v end
    end
  end
end

-- Make ctx the context of coroutine co (default: the running one's key);
-- its parent is the previous one; its sessions are marked as held by it.
-- Returns the coroutine key.
function C.enter(ctx, co)
  co = co or co_running() or MAIN
  ctx.parent = contexts[co]
  local one = ctx.session
  if one then one._ctx = ctx else mark(ctx, ctx) end
  contexts[co] = ctx
  return co
end

-- Restore the parent context of co.
function C.leave(ctx, co)
  contexts[co] = ctx.parent
  local one = ctx.session
  if one then one._ctx = nil else mark(ctx, nil) end
end

-- The key of the running coroutine in the context table.
function C.key()
  return co_running() or MAIN
end

-- xdbtx.in_transaction() -> boolean
function C.in_transaction()
  return contexts[co_running() or MAIN] ~= nil
end

-- xdbtx.bind(fn) -> function running fn in the caller's context, from any
-- coroutine (for coroutines started inside a transaction).
function C.bind(fn)
  if type(fn) ~= "function" then argerror("xdbtx.bind: expected a function") end
  local ctx = contexts[co_running() or MAIN]
  if ctx == nil then return fn end
  return function(...)
    local co = co_running() or MAIN
    local saved = contexts[co]
    contexts[co] = ctx
    local r = pack(pcall(fn, ...))
    contexts[co] = saved
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2, r.n)
  end
end

local function real(v)
  if type(v) == "table" then return rawget(v, "__real") or v end
  return v
end
C.real = real

-- Split opts into (opts without `session`, the session argument).
function C.split(opts, where)
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

-- The Session (or false: held without one) that ctx holds for client id
-- cid, or nil. A one-cluster context holds one: ctx.cid, ctx.session.
local function held(ctx, cid)
  if ctx.cid == cid then return ctx.session end
  local m = ctx.sessions
  return m and m[cid]
end
C.held = held

-- The ambient session of an operation on client that names none: ->
-- core session (nil or false for none), Lua Session (or nil).
local function ambient(client, where)
  local ctx = contexts[co_running() or MAIN]
  if ctx == nil then return nil, nil end
  local cid = client._id
  local ws
  if ctx.cid == cid then ws = ctx.session else
    local m = ctx.sessions
    ws = m and m[cid]
  end
  if ws then
    if ws._txn_ended then check_txn(ws, true) end
    return ws._core, ws
  end
  if ws == false then
    ctx.ops = (ctx.ops or 0) + 1 -- saga mode: operations applied at once
    return false, nil
  end
  raise("routing", "state", where .. ": client " .. client._id ..
    " is not part of the running transaction; the operation would escape the rollback" ..
    " (pass session = false to run it outside on purpose)")
end
C.ambient = ambient

-- The session an operation on client runs in: -> core session (nil or
-- false for none), Lua Session (or nil). `s` is the operation's `session`
-- option (nil: ambient; false: none on purpose).
function C.route(client, s, where)
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
    check_txn(s, false)
    return s._core, s
  end
  return ambient(client, where)
end

return C
