--[[
spec/support/fake_core.lua - an in-memory stand-in for xdbtx.core, for specs
of the Lua layer's policy (retry rules, routing, callbacks, events) that must
be deterministic and run without a server.

It follows docs/internals.md for the parts the Lua layer uses: clients with
id/topology/monitor/drain_events, collections taking the session first,
sessions with the libmongoc state machine, commit retries, errors with
labels. Writes inside a transaction are undone on abort. Faults are injected
with fake.fail(command, { times = n, code =, name =, labels = {...} }) and
the clock is fake.now (advance it with fake.advance(seconds)).
]]

local real = require "xdbtx.core"

local F = {}
for k, v in pairs(real) do F[k] = v end

local clock = 0
F.now = function() return clock end
function F.advance(s) clock = clock + s end

local fails = {}
F.log = {}

function F.reset()
  fails = {}
  F.log = {}
  F.data = {}
  F.topology_kind = "replicaset"
end
F.reset()

-- fail(cmd, spec): the next spec.times (default 1; "always" = forever) runs
-- of command cmd raise an error with spec's code/name/labels.
function F.fail(cmd, spec)
  spec.times = spec.times or 1
  fails[cmd] = spec
end

local function mkerr(phase, spec)
  local labels = {}
  for _, l in ipairs(spec.labels or {}) do labels[l] = true end
  return real.error { code = spec.code or 0, name = spec.name, message = spec.message or
    ("fake failure of " .. phase), domain = "server", phase = phase, labels = labels,
    reply = spec.reply }
end

local function command(client, name, session, db)
  F.log[#F.log + 1] = { name = name, session = session, db = db }
  if client._monitor then
    client._events[#client._events + 1] = { type = "started", command_name = name, database_name = db }
  end
  local f = fails[name]
  if f and (f.times == "always" or f.times > 0) then
    if f.times ~= "always" then f.times = f.times - 1 end
    if f.times == 0 then fails[name] = nil end
    error(mkerr(name == "commitTransaction" and "commit" or "operation", f), 0)
  end
end

local Session = {}
Session.__index = Session

local function txn_of(s)
  if s == nil or s == false then return nil end
  if s.state_ == "closed" then
    error(real.error { code = 0, message = "session is closed", domain = "state", phase = "state" }, 0)
  end
  if s.state_ == "starting" then s.state_ = "in_progress" end
  if s.state_ == "in_progress" then return s end
  return nil
end

function Session:start_transaction(opts)
  if self.state_ == "starting" or self.state_ == "in_progress" then
    error(real.error { message = "Transaction already in progress", domain = "transaction",
                       phase = "state" }, 0)
  end
  self.state_ = "starting"
  self.undo = {}
  self.opts = opts
  return true
end

function Session:commit()
  if self.state_ == "starting" then self.state_ = "committed" return true end
  if self.state_ ~= "in_progress" and self.state_ ~= "committed" then
    error(real.error { message = "No transaction started", domain = "transaction", phase = "commit" }, 0)
  end
  self.state_ = "committed"
  command(self.client_, "commitTransaction", self, "admin")
  self.undo = {}
  return true
end

function Session:abort()
  if self.state_ == "starting" then self.state_ = "aborted" return true end
  if self.state_ ~= "in_progress" then
    error(real.error { message = "No transaction started", domain = "transaction", phase = "abort" }, 0)
  end
  self.state_ = "aborted"
  pcall(command, self.client_, "abortTransaction", self, "admin")
  for i = #self.undo, 1, -1 do self.undo[i]() end
  self.undo = {}
  return true
end

function Session:in_transaction()
  return self.state_ == "starting" or self.state_ == "in_progress"
end
function Session:state() return self.state_ end
function Session:client() return self.client_ end
function Session:id() return { id = self.n } end
function Session:close()
  if self.state_ == "starting" or self.state_ == "in_progress" then self:abort() end
  self.state_ = "closed"
end
Session.__close = Session.close

local Coll = {}
Coll.__index = Coll

local function store(c)
  local ns = c.db .. "." .. c.name_
  F.data[ns] = F.data[ns] or {}
  return F.data[ns]
end

local function matches(doc, filter)
  for k, v in pairs(filter or {}) do
    if doc[k] ~= v then return false end
  end
  return true
end

function Coll:insert_one(s, doc, opts)
  local t = txn_of(s)
  command(self.client_, "insert", s, self.db)
  local st = store(self)
  for _, d in ipairs(st) do
    if d._id ~= nil and d._id == doc._id then
      error(mkerr("operation", { code = 11000, name = "DuplicateKey", message = "E11000 duplicate key" }), 0)
    end
  end
  local copy = {}
  for k, v in pairs(doc) do copy[k] = v end
  st[#st + 1] = copy
  if t then
    t.undo[#t.undo + 1] = function()
      for i, d in ipairs(st) do if d == copy then table.remove(st, i) return end end
    end
  end
  return { inserted_id = doc._id }
end

function Coll:insert_many(s, docs, opts)
  local ids = {}
  for i, d in ipairs(docs) do ids[i] = self:insert_one(s, d, opts).inserted_id end
  return { inserted_ids = ids, inserted_count = #docs }
end

function Coll:update_one(s, filter, update, opts)
  local t = txn_of(s)
  command(self.client_, "update", s, self.db)
  for _, d in ipairs(store(self)) do
    if matches(d, filter) then
      local old = {}
      for k, v in pairs(d) do old[k] = v end
      for k, v in pairs(update["$set"] or {}) do d[k] = v end
      for k, v in pairs(update["$inc"] or {}) do d[k] = (d[k] or 0) + v end
      if t then
        t.undo[#t.undo + 1] = function()
          for k in pairs(d) do d[k] = nil end
          for k, v in pairs(old) do d[k] = v end
        end
      end
      return { matched_count = 1, modified_count = 1 }
    end
  end
  return { matched_count = 0, modified_count = 0 }
end

local function delete(self, s, filter, many)
  local t = txn_of(s)
  command(self.client_, "delete", s, self.db)
  local st, n = store(self), 0
  for i = #st, 1, -1 do
    if matches(st[i], filter) and (many or n == 0) then
      local d = table.remove(st, i)
      n = n + 1
      if t then t.undo[#t.undo + 1] = function() table.insert(st, i, d) end end
    end
  end
  return { deleted_count = n }
end
function Coll:delete_one(s, filter, opts) return delete(self, s, filter, false) end
function Coll:delete_many(s, filter, opts) return delete(self, s, filter, true) end

function Coll:find_one(s, filter, opts)
  txn_of(s)
  command(self.client_, "find", s, self.db)
  for _, d in ipairs(store(self)) do
    if matches(d, filter) then
      local copy = {}
      for k, v in pairs(d) do copy[k] = v end
      return copy
    end
  end
  return nil
end

function Coll:count_documents(s, filter, opts)
  txn_of(s)
  command(self.client_, "aggregate", s, self.db)
  local n = 0
  for _, d in ipairs(store(self)) do if matches(d, filter) then n = n + 1 end end
  return n
end

local Cursor = {}
Cursor.__index = Cursor
function Cursor:next()
  if self.closed then return nil end -- as the core's: a closed cursor reads nil
  self.i = self.i + 1
  return self.docs[self.i]
end
function Cursor:close() self.closed = true end

function Coll:find(s, filter, opts)
  txn_of(s)
  command(self.client_, "find", s, self.db)
  local docs = {}
  for _, d in ipairs(store(self)) do if matches(d, filter) then docs[#docs + 1] = d end end
  local c = setmetatable({ docs = docs, i = 0 }, Cursor)
  F.last_cursor = c
  return c
end

function Coll:name() return self.name_ end
function Coll:database() return self.db end
function Coll:client() return self.client_ end

local Client = {}
Client.__index = Client
local nsessions = 0

function F.client(uri, opts)
  return setmetatable({ uri_ = uri, _events = {}, _monitor = false }, Client)
end
function Client:id() return self.uri_ end
function Client:uri() return self.uri_ end
function Client:topology() return F.topology_kind end
function Client:collection(db, name) return setmetatable({ db = db, name_ = name, client_ = self }, Coll) end
function Client:command(s, db, cmd, opts)
  txn_of(s)
  local name = next(cmd)
  command(self, name, s, db)
  return { ok = 1 }
end
function Client:start_session(opts)
  nsessions = nsessions + 1
  return setmetatable({ client_ = self, state_ = "none", n = nsessions, undo = {} }, Session)
end
function Client:monitor(on) self._monitor = on end
function Client:drain_events()
  local e = self._events
  self._events = {}
  return e
end

return F
