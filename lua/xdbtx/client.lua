--[[
xdbtx.client - the Client object: xdbtx.client(uri, opts), collections,
databases, commands, low-level sessions, command monitoring.

A Client wraps a core client, whose pool is shared by every Client of the
same URI and options in the process; `_id` (the pool key) is what the
ambient context and routing compare. Collection objects are cached per
namespace, so hooks registered on one apply to every use of it.
client:transaction is added by xdbtx.transaction.
]]

local U = require "xdbtx.util"
local Mon = require "xdbtx.monitor"
local C = require "xdbtx.context"
local S = require "xdbtx.session"
local Col = require "xdbtx.collection"
local Db = require "xdbtx.database"

local core, argerror, check_opts, bad_self = U.core, U.argerror, U.check_opts, U.bad_self
local monitored, split, route = Mon.monitored, C.split, C.route

local Client = {}
Client.__index = Client
Client.__name = "xdbtx.Client"

local Cl = { Client = Client }

-- xdbtx.client(uri, opts) -> Client. Options go to the core (app_name,
-- max_pool_size, server_selection_timeout_ms, and the defaults read_concern,
-- write_concern, read_preference, which belong to the pool like the URI's
-- own; unknown keys raise), except two that belong to this Client object:
-- `sleep`, the function of seconds that its transactions pause with before
-- a rerun (when they do not give their own), and `json_null = true`: every
-- BSON null its operations return is xdbtx.json_null (cjson.null, ngx.null)
-- instead of xdbtx.null (xdbtx.monitor applies it).
local own_opts = { sleep = true, json_null = true }

function Cl.client(uri, opts)
  if type(uri) ~= "string" then argerror("xdbtx.client: uri must be a string, got " .. type(uri)) end
  check_opts(opts, "xdbtx.client")
  local sleep, json_null
  if opts and (opts.sleep ~= nil or opts.json_null ~= nil) then
    sleep, json_null = opts.sleep, opts.json_null
    if sleep ~= nil and type(sleep) ~= "function" then
      argerror("xdbtx.client: option 'sleep' must be a function of seconds, got " .. type(sleep))
    end
    if json_null ~= nil and type(json_null) ~= "boolean" then
      argerror("xdbtx.client: option 'json_null' must be a boolean, got " .. U.show(json_null))
    end
    local o = {}
    for k, v in pairs(opts) do
      if not own_opts[k] then o[k] = v end
    end
    opts = o
  end
  local c = core.client(uri, opts)
  return setmetatable({ _core = c, _id = c:id(), _colls = {}, _sleep = sleep,
                        _json_null = json_null or nil }, Client)
end

local function self_check(self, where)
  if getmetatable(self) ~= Client then bad_self(where, "a Client", self) end
end

-- The Client at v (a safe proxy is unwrapped), or nil.
function Cl.check(v)
  v = C.real(v)
  if getmetatable(v) == Client then return v end
  return nil
end

-- The Clients of the list v (safe proxies unwrapped), or raise naming the
-- first entry that is not one.
function Cl.check_list(v, where)
  local out = {}
  for i = 1, #v do
    out[i] = Cl.check(v[i])
    if not out[i] then
      argerror(("%s: clients[%d] must be an xdbtx Client, got %s"):format(where, i, type(v[i])))
    end
  end
  return out
end

-- Two Client objects of the same pool (same URI and options) are equal.
function Client.__eq(a, b) return a._id == b._id end

function Client:id()
  self_check(self, "client:id")
  return self._id
end
function Client:uri()
  self_check(self, "client:uri")
  return self._core:uri()
end
function Client:topology()
  self_check(self, "client:topology")
  return self._core:topology()
end

-- client:open() -> client: make this process's libmongoc pool of the client
-- now (no I/O; it is made on first use otherwise), e.g. in OpenResty's
-- init_worker_by_lua*, after the fork. Raises (phase "connect") when the
-- URI cannot make a pool.
function Client:open()
  self_check(self, "client:open")
  self._core:pool_origin(true)
  return self
end

-- client:pool_info() -> { pid = , pool = } | nil: the process that made the
-- client's libmongoc pool and the pool's address ("0x..."), the same in
-- every Lua state of the process (OpenResty's thread VMs too); nil before
-- this process made one.
function Client:pool_info()
  self_check(self, "client:pool_info")
  local pid, addr = self._core:pool_origin(false)
  if pid == nil then return nil end
  return { pid = pid, pool = addr }
end

function Client:__tostring()
  return "xdbtx.Client (" .. self._id .. ")"
end

-- client:collection(db, name, opts) or client:collection("db.name", opts).
-- Without opts: the one cached Collection of the namespace; with opts (the
-- collection's read_concern, write_concern, read_preference) a new
-- Collection object sharing that one's hooks.
function Client:collection(db, name, opts)
  self_check(self, "client:collection")
  if type(db) ~= "string" then argerror("client:collection: database name must be a string") end
  if name == nil or type(name) == "table" then
    if opts ~= nil then argerror("client:collection: expected (db, name, opts) or (\"db.name\", opts)") end
    opts = name
    local d, n = db:match("^([^.]+)%.(.+)$")
    if not d then argerror("client:collection: expected \"db.collection\", got \"" .. db .. "\"") end
    db, name = d, n
  elseif type(name) ~= "string" then
    argerror("client:collection: collection name must be a string")
  end
  if db == "" or name == "" then
    argerror("client:collection: " .. (db == "" and "database" or "collection") .. " name must not be empty")
  end
  local ns = db .. "." .. name
  local coll = self._colls[ns]
  if coll == nil then
    coll = Col.new(self, self._core:collection(db, name))
    self._colls[ns] = coll
  end
  if opts == nil then return coll end
  return Col.new(self, self._core:collection(db, name, opts), coll._hooks)
end

-- client:database(name, opts) -> Database (opts: its defaults).
function Client:database(name, opts)
  self_check(self, "client:database")
  if type(name) ~= "string" then argerror("client:database: database name must be a string") end
  return Db.new(self, self._core:database(name, opts), opts ~= nil)
end

-- client:list_database_names(opts) -> { name, ... } (routed like any operation).
function Client:list_database_names(opts)
  self_check(self, "client:list_database_names")
  local o, sarg = split(opts, "client:list_database_names")
  local cs = route(self, sarg, "client:list_database_names")
  local c = self._core
  return monitored(self, c.list_database_names, c, cs, o)
end

-- client:command(db, cmd, opts) -> reply (routed like any operation).
function Client:command(db, cmd, opts)
  self_check(self, "client:command")
  local o, sarg = split(opts, "client:command")
  local cs = route(self, sarg, "client:command")
  local c = self._core
  return monitored(self, c.command, c, cs, db, cmd, o)
end

-- client:start_session(opts) -> Session (low level: you start, commit, abort).
function Client:start_session(opts)
  self_check(self, "client:start_session")
  check_opts(opts, "client:start_session")
  local c = self._core
  return S.new(self, monitored(self, c.start_session, c, opts))
end

-- client:on_command(fn) -> unsubscribe. fn(event) gets the core's recorded
-- command events (started/succeeded/failed), after each operation returns.
-- Listeners belong to the pool: every Client object of the same URI (and
-- options) feeds them.
function Client:on_command(fn)
  self_check(self, "client:on_command")
  return Mon.on_command(self, fn)
end

return Cl
