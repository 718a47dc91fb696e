--[[
xdbtx.attempt - the one attempt/retry loop of every transaction kind
(client:transaction, session:with_transaction, xdbtx.sandbox, the
transaction tree), after MongoDB's convenient-transactions specification.

An attempt starts a transaction on each of the run's sessions, calls the
run's body, aborts everything open when the body raises, and otherwise hands
the results to the run's commit step. A TransientTransactionError (from the
body, or from a commit step that says so) reruns the whole body in fresh
transactions, after a jittered pause, until `timeout` seconds have passed.
The kinds differ only in their body, commit step and finish, which the run
supplies; this loop knows nothing of trees or clients.
]]

local U = require "xdbtx.util"
local E = require "xdbtx.events"
local S = require "xdbtx.session"

local pcall, getmetatable, setmetatable, type = pcall, getmetatable, setmetatable, type
local A = {}

local now, has_label, xerror = U.now, U.has_label, U.xerror
local emit, wants = E.emit, E.wants
local start_listeners = E.listeners.start
local commit_listeners = E.listeners.commit

local TRANSIENT = "TransientTransactionError"
local UNKNOWN_COMMIT = "UnknownTransactionCommitResult"
A.TRANSIENT, A.UNKNOWN_COMMIT = TRANSIENT, UNKNOWN_COMMIT

--------------------------------------------------------------------------
-- Quiet rollback
--------------------------------------------------------------------------

local Rollback = { __name = "xdbtx.rollback" }
Rollback.__index = Rollback
function Rollback:__tostring()
  return "xdbtx.rollback: " .. tostring(self.reason)
end

function A.is_rollback(err)
  return getmetatable(err) == Rollback
end

-- Raise the private sentinel that ends ctx's transaction quietly, marking
-- ctx rollback-only first: a body that returns normally all the same
-- (something caught the sentinel) is rolled back too.
function A.rollback(ctx, reason)
  local r = setmetatable({ reason = reason }, Rollback)
  ctx.rolled_back = r
  error(r, 0)
end

--------------------------------------------------------------------------
-- Options
--------------------------------------------------------------------------

A.DEFAULT_TIMEOUT = 120

-- The options every transaction kind takes in Lua; the others are the
-- core's transaction options (read_concern, write_concern,
-- read_preference, max_commit_time_ms: one list, in src/lopts.c).
local lua_keys = { timeout = true, sleep = true }

-- -> transaction options for the core (or nil), timeout seconds, sleep
-- function (or nil). `extra` is a set of further keys the caller takes
-- itself (left out of both). Everything is checked before anything runs.
function A.options(opts, where, extra)
  U.check_opts(opts, where)
  local timeout, sleep, topts = A.DEFAULT_TIMEOUT, nil, nil
  if opts then
    for k, v in pairs(opts) do
      if not lua_keys[k] and not (extra and extra[k]) then
        topts = topts or {}
        topts[k] = v
      end
    end
    if opts.timeout ~= nil then
      timeout = U.check_number(opts.timeout, where, "timeout", 0)
    end
    sleep = opts.sleep
    if sleep ~= nil and type(sleep) ~= "function" then
      U.argerror(where .. ": option 'sleep' must be a function of seconds, got " .. type(sleep))
    end
    if topts then U.core.check_options("transaction", topts, where) end
  end
  return topts, timeout, sleep
end

--------------------------------------------------------------------------
-- Pieces of the loop
--------------------------------------------------------------------------

function A.max_time_expired(err)
  if type(err) ~= "table" then return false end
  if err.name == "MaxTimeMSExpired" or err.code == 50 then return true end
  local wce = type(err.reply) == "table" and err.reply.writeConcernError
  return type(wce) == "table" and (wce.codeName == "MaxTimeMSExpired" or wce.code == 50)
end

-- The error raised when retries stop at the timeout: the last error's
-- code, name and labels, with timed_out = true and cause = the last error.
function A.timeout_error(err, timeout, attempts)
  local labels = {}
  local t = type(err) == "table"
  if t and type(err.labels) == "table" then
    for k, v in pairs(err.labels) do labels[k] = v end
  end
  return xerror(t and err.phase or "commit", "transaction",
    ("transaction retries stopped: the timeout of %gs elapsed after %d attempt(s); last error: %s")
      :format(timeout, attempts, tostring(t and err.message or err)),
    { code = t and err.code or 0, name = t and err.name or nil, node = t and err.node or nil,
      labels = labels, reply = t and err.reply or nil, cause = err, timed_out = true })
end

-- The pause before rerunning a body: random, below 5 ms x 1.5^(attempt-1),
-- at most 500 ms, never past the timeout. It sleeps with the run's `sleep`
-- option (a function of seconds, e.g. a scheduler's), else ngx.sleep under
-- OpenResty (it yields), else the core's sleep, which blocks the thread.
local BACKOFF_INITIAL, BACKOFF_MAX, BACKOFF_GROWTH = 0.005, 0.5, 1.5
function A.backoff(run)
  local pause = math.random() * math.min(BACKOFF_INITIAL * BACKOFF_GROWTH ^ (run.attempt - 1), BACKOFF_MAX)
  pause = math.min(pause, run.timeout - (now() - run.started))
  if pause <= 0 then return end
  if run.sleep then return run.sleep(pause) end
  local ngx_sleep = rawget(_G, "ngx") and ngx.sleep
  if ngx_sleep and pcall(ngx_sleep, pause) then return end
  if U.core.sleep then U.core.sleep(pause) end
end

-- An event of the run: its fields (client or tree, sandbox) plus `fields`.
function A.event(run, fields)
  if fields.client == nil then fields.client = run.ev_client or run.cid end
  if fields.tree == nil then fields.tree = run.ev_tree end
  if fields.sandbox == nil then fields.sandbox = run.ev_sandbox end
  fields.attempt = fields.attempt or run.attempt
  fields.elapsed = fields.elapsed or now() - run.started
  return fields
end

function A.retrying(run, err, what)
  if wants("retry") and not run.quiet then
    emit("retry", A.event(run, { error = err, what = what,
      node = type(err) == "table" and err.node or nil }))
  end
end

local function abort_all(run)
  local one = run.session
  if one then
    if one._core:in_transaction() then pcall(S.abort, one) end
    return
  end
  local ss = run.list
  for i = 1, #ss do
    local s = ss[i]
    if s._core:in_transaction() then pcall(S.abort, s) end
  end
end
A.abort_all = abort_all

local function start_all(run)
  local one = run.session
  if one then return S.start(one, run.topts) end
  local ss = run.list
  for i = 1, #ss do S.start(ss[i], run.topts) end
end

--------------------------------------------------------------------------
-- Cancellation (Lua 5.4)
--------------------------------------------------------------------------

-- Under Lua 5.4 the body runs with the run as a to-be-closed value, so that
-- coroutine.close on a coroutine suspended inside a body (a cancelled task)
-- ends the run: its open transactions are aborted and run:cleanup() leaves
-- its context and closes its sessions, instead of the transaction holding
-- its locks and its pooled connection until the server's lifetime limit. A
-- body that returns or raises goes on through the loop as before. (LuaJIT
-- has no coroutine.close: a dropped coroutine's sessions abort when it is
-- collected.) Every run kind's metatable has __close = A.on_close.
-- `returned` is the run whose body has just returned: set right before its
-- guard closes, with no Lua code in between, so no field is added to the
-- run (its table keeps its size: no garbage).
local returned

local function body_returned(run, ...)
  returned = run
  return ...
end

function A.on_close(run, err)
  if returned == run then
    returned = nil
    return
  end
  if err ~= nil then return end -- raised: the loop goes on with the error
  pcall(abort_all, run)
  if run.cleanup then pcall(run.cleanup, run) end
end
local PlainRun = { __close = A.on_close } -- for runs made without a metatable

local guarded_body -- nil: run.body as it is
if _VERSION == "Lua 5.4" then
  guarded_body = assert(load([[
    local body_returned = ...
    return function(run)
      local guard <close> = run
      return body_returned(run, run.body(run))
    end]], "=xdbtx.attempt (guarded body)"))(body_returned)
end

--------------------------------------------------------------------------
-- The loop
--------------------------------------------------------------------------

--[[ A.loop(run) -> what run:finish returns (reruns are tail calls). run fields:
  ctx       the context the run entered (its callbacks are reset per attempt;
            a one-cluster run is its own context)
  session   its Session (one-cluster), or
  list      its Sessions; each attempt starts a transaction on each
  topts, timeout, sleep (optional), retry (false: never rerun), quiet (no events)
  ev_client, ev_tree, ev_sandbox   fields of every event
  body(run)         -> results (raises to abort)
  commit(run)       -> true | false, err, rerun  (rerun: a transient error
                       before anything was applied); may set run.in_commit
  finish(run, how, ...) with how "commit" (the body's results), "rollback"
                        (reason), "error" (err) or any word the commit step
                        returned (and the body's results) ]]
local attempt

-- After the body of an attempt: its pcall results arrive as arguments, so
-- no table holds them on the way to the caller.
local function after_body(run, ok, ...)
  local ctx = run.ctx or run
  local again
  if not ok then
    local err = ...
    abort_all(run)
    if getmetatable(err) == Rollback then return run:finish("rollback", err.reason) end
    if run.retry == false or ctx.body_committed or ctx.rolled_back or not has_label(err, TRANSIENT) then
      return run:finish("error", err)
    end
    again = err
  elseif ctx.rolled_back then
    -- xdbtx.rollback was called and its sentinel caught on the way out
    abort_all(run)
    return run:finish("rollback", ctx.rolled_back.reason)
  else
    local done, cerr, rerun = run:commit()
    if done then return run:finish(done == true and "commit" or done, ...) end
    if not rerun or run.retry == false then return run:finish("error", cerr) end
    again = cerr
  end
  if now() - run.started >= run.timeout then
    return run:finish("error", A.timeout_error(again, run.timeout, run.attempt))
  end
  A.retrying(run, again, "transaction")
  A.backoff(run)
  return attempt(run)
end

function attempt(run)
  local ctx = run.ctx or run
  run.attempt = run.attempt + 1
  run.in_commit = nil
  if ctx.on_commit or ctx.on_rollback or ctx.body_committed or ctx.rolled_back then
    ctx.on_commit, ctx.on_rollback, ctx.body_committed, ctx.rolled_back = nil, nil, nil, nil
  end
  local one = run.session
  local ok, err
  if one then ok, err = pcall(S.start, one, run.topts) else ok, err = pcall(start_all, run) end
  if not ok then
    abort_all(run)
    return run:finish("error", err)
  end
  if start_listeners[1] and not run.quiet then emit("start", A.event(run, {})) end
  if guarded_body then return after_body(run, pcall(guarded_body, run)) end
  return after_body(run, pcall(run.body, run))
end

function A.loop(run)
  run.started = run.started or now()
  run.attempt = 0
  if guarded_body and getmetatable(run) == nil then setmetatable(run, PlainRun) end
  return attempt(run)
end

-- The one-session commit step: commit, retrying an unknown result (the core
-- re-sends it with w:majority) until known or the timeout, except after
-- MaxTimeMSExpired. A body that committed or aborted its transaction itself
-- is taken as it is (the spec's rule): "commit" or "self_aborted".
function A.commit_one(run)
  local s = run.session
  if s._txn_ended then
    -- the body committed or aborted it (only Session:commit/abort set this)
    local state = s._core:state()
    if state == "committed" then return true end
    if state ~= "starting" and state ~= "in_progress" then return "self_aborted" end
  end
  if commit_listeners[1] then run.commit_started = now() end
  local commits = 0
  while true do
    commits = commits + 1
    run.commits = commits
    local ok, cerr = pcall(S.commit, s)
    if ok then return true end
    run.in_commit = true
    local elapsed = now() - run.started
    if has_label(cerr, UNKNOWN_COMMIT) and not A.max_time_expired(cerr) then
      if elapsed >= run.timeout then
        return false, A.timeout_error(cerr, run.timeout, run.attempt), false
      end
      A.retrying(run, cerr, "commit")
    elseif has_label(cerr, TRANSIENT) then
      return false, cerr, true
    else
      return false, cerr, false
    end
  end
end

return A
