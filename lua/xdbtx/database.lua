--[[
xdbtx.database - the Database object: client:database(name, opts).

A Database wraps a core database handle (its name and defaults). Its
operations (command, drop, list_collection_names) resolve their session like
every other operation (xdbtx.context: the `session` option, or the ambient
transaction's), so inside a transaction they run in it, and the server says
what a transaction allows. db:collection(name) without defaults of its own is
the client's cached Collection of that namespace; with defaults it is a new
Collection object sharing that one's hooks.
]]

local U = require "xdbtx.util"
local Mon = require "xdbtx.monitor"
local C = require "xdbtx.context"
local Col = require "xdbtx.collection"

local argerror, bad_self = U.argerror, U.bad_self
local monitored, split, route = Mon.monitored, C.split, C.route

local Database = {}
Database.__index = Database
Database.__name = "xdbtx.Database"

local D = { Database = Database }

-- A Database over core database cdb of client; own_defaults: it was made
-- with defaults of its own.
function D.new(client, cdb, own_defaults)
  return setmetatable({ _core = cdb, _client = client, _name = cdb:name(), _own = own_defaults },
    Database)
end

local function self_check(self, where)
  if getmetatable(self) ~= Database then bad_self(where, "a Database", self) end
end

function Database:name()
  self_check(self, "database:name")
  return self._name
end

function Database:client()
  self_check(self, "database:client")
  return self._client
end

function Database:__tostring()
  return "xdbtx.Database (" .. self._name .. ")"
end

-- db:collection(name, opts) -> Collection (defaults: the database's, then opts').
function Database:collection(name, opts)
  self_check(self, "database:collection")
  if type(name) ~= "string" then argerror("database:collection: collection name must be a string") end
  if name == "" then argerror("database:collection: collection name must not be empty") end
  local client = self._client
  if opts == nil and not self._own then return client:collection(self._name, name) end
  local shared = client:collection(self._name, name)
  return Col.new(client, self._core:collection(name, opts), shared._hooks)
end

-- Operations: (args..., opts), routed like any operation.
local function op(method, nargs)
  local where = "database:" .. method
  return function(self, ...)
    self_check(self, where)
    local a, b = ...
    local opts = select(nargs + 1, ...)
    local o, sarg = split(opts, where)
    local client = self._client
    local cs = route(client, sarg, where)
    local c = self._core
    if nargs == 0 then return monitored(client, c[method], c, cs, o) end
    if nargs == 1 then return monitored(client, c[method], c, cs, a, o) end
    return monitored(client, c[method], c, cs, a, b, o)
  end
end

-- db:command(cmd, opts) -> reply (sent as written: no defaults apply)
Database.command = op("command", 1)
-- db:drop(opts) -> true
Database.drop = op("drop", 0)
-- db:list_collection_names(filter, opts) -> { name, ... }
Database.list_collection_names = op("list_collection_names", 1)

return D
