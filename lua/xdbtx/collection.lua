--[[
xdbtx.collection - Collection and Cursor objects, and collection hooks.

Each operation resolves its session (xdbtx.context: the `session` option,
or the ambient transaction's), runs the before/after hooks registered on the
Collection object around the core call (bulk_write: per request), and
delivers command events. Collection objects of one namespace made with other
defaults share their hooks. The
per-operation path allocates nothing beyond what the core returns when no
hook and no command listener is registered.
]]

local U = require "xdbtx.util"
local Mon = require "xdbtx.monitor"
local C = require "xdbtx.context"

local argerror, unpack, bad_self = U.argerror, U.unpack, U.bad_self
local monitored, split, route, ambient = Mon.monitored, C.split, C.route, C.ambient
local listeners = Mon.listeners

local pcall, getmetatable, setmetatable, type = pcall, getmetatable, setmetatable, type
local Col = {}

--------------------------------------------------------------------------
-- Cursor
--------------------------------------------------------------------------

local Cursor = {}
Cursor.__index = Cursor
Cursor.__name = "xdbtx.Cursor"
Col.Cursor = Cursor

local function new_cursor(client, ccursor)
  return setmetatable({ _core = ccursor, _client = client }, Cursor)
end

-- cursor() / cursor:next() -> doc | nil; closes the cursor when exhausted.
-- A closed core cursor reads nil, or raises again the error it failed with.
function Cursor:next()
  if getmetatable(self) ~= Cursor then bad_self("cursor:next", "a Cursor", self) end
  local c = self._core
  if self._closed then return c:next() end
  local doc = monitored(self._client, c.next, c)
  if doc == nil then self:close() end
  return doc
end

function Cursor:__call()
  return self:next()
end

function Cursor:all()
  if getmetatable(self) ~= Cursor then bad_self("cursor:all", "a Cursor", self) end
  local out = setmetatable({}, U.core.array_mt)
  local ok, err = pcall(function()
    local c = self._core
    if self._closed then return c:next() end -- nil, or its error again
    while true do
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
  if getmetatable(self) ~= Cursor then bad_self("cursor:close", "a Cursor", self) end
  if not self._closed then
    self._closed = true
    self._core:close()
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
Col.Collection = Collection

-- A Collection over core collection ccoll. `hooks` is the hook table it
-- shares with the other Collection objects of its namespace on this client
-- (made with other defaults), or nil for a new one.
function Col.new(client, ccoll, hooks)
  return setmetatable({ _core = ccoll, _client = client,
    _hooks = hooks or { before = {}, after = {}, n = 0 } }, Collection)
end

local hook_ops = {
  insert = true, update = true, replace = true, delete = true,
  find_one_and_update = true, find_one_and_replace = true, find_one_and_delete = true,
}

local function add_hook(self, when, op, fn)
  if getmetatable(self) ~= Collection then bad_self("collection:" .. when, "a Collection", self) end
  if not hook_ops[op] then
    argerror("collection:" .. when .. ": unknown operation '" .. tostring(op) ..
      "' (insert, update, replace, delete, find_one_and_update, find_one_and_replace, find_one_and_delete)")
  end
  if type(fn) ~= "function" then argerror("collection:" .. when .. ": hook must be a function") end
  local hooks = self._hooks
  local t = hooks[when]
  local l = t[op]
  if not l then l = {} t[op] = l end
  l[#l + 1] = fn
  hooks.n = hooks.n + 1
  return function()
    if not U.remove(l, fn) then return false end
    hooks.n = hooks.n - 1
    return true
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

local function accessor(name, f)
  local where = "collection:" .. name
  return function(self)
    if getmetatable(self) ~= Collection then bad_self(where, "a Collection", self) end
    return f(self)
  end
end
Collection.name = accessor("name", function(self) return self._core:name() end)
Collection.database = accessor("database", function(self) return self._core:database() end)
Collection.client = accessor("client", function(self) return self._client end)

function Collection:__tostring()
  return "xdbtx.Collection (" .. self._core:database() .. "." .. self._core:name() .. ")"
end

-- What every operation starts with: check self, take `session` out of the
-- options and resolve the session it runs in. -> client, core collection,
-- core session (nil/false: none), Lua Session (or nil), options. The
-- per-operation path allocates nothing of its own: no options table (opts
-- nil) goes straight to the ambient session (op1 and op2, the hot paths,
-- do that part in place: a call less per operation).
local function prepare(self, opts, where)
  if getmetatable(self) ~= Collection then bad_self(where, "a Collection", self) end
  local client = self._client
  if opts == nil then
    local cs, ws = ambient(client, where)
    return client, self._core, cs, ws, nil
  end
  local o, sarg = split(opts, where)
  local cs, ws = route(client, sarg, where)
  if cs and o and (o.write_concern ~= nil or o.read_concern ~= nil) and cs:in_transaction() then
    -- libmongoc would refuse it with a message naming neither
    local k = o.write_concern ~= nil and "write_concern" or "read_concern"
    argerror(where .. ": option '" .. k .. "' cannot be set on an operation inside a transaction" ..
      " (the transaction's own applies: give it to client:transaction(fn, { " .. k .. " = ... }))")
  end
  return client, self._core, cs, ws, o
end

local fast_method, contexts = U.core.fast_method, C.contexts

-- The method fn itself, or (Lua 5.4) the core's C closure that does what fn
-- does for the usual call (no options, no hooks, no listeners, the ambient
-- session or none) and calls fn for anything else (src/lfast.c).
local function fast(method, arity, hook, fn)
  if not fast_method or C.by_request then return fn end
  return fast_method(method, arity, fn, Collection, contexts, listeners, hook)
end

-- Operations with one argument before opts: (filter|doc|pipeline, opts).
-- Hooks and command listeners are looked at only when some exist
-- (xdbtx.monitor also applies a json_null client's option).
local function op1(method, hook)
  local where = "collection:" .. method
  local f -- the core method, looked up once
  return fast(method, 1, hook, function(self, a, opts)
    local client, c, cs, ws, o
    if opts == nil then -- prepare(), in place on the usual path
      if getmetatable(self) ~= Collection then bad_self(where, "a Collection", self) end
      client, c = self._client, self._core
      cs, ws = ambient(client, where)
    else
      client, c, cs, ws, o = prepare(self, opts, where)
    end
    f = f or c[method]
    if hook and self._hooks.n > 0 and has_hooks(self, hook) then
      run_hooks(self, "before", hook, a, ws)
      local r = monitored(client, f, c, cs, a, o)
      run_hooks(self, "after", hook, a, r, ws)
      return r
    end
    if listeners[client._id] == nil and not client._json_null then return f(c, cs, a, o) end
    return monitored(client, f, c, cs, a, o)
  end)
end

-- Operations with two arguments before opts: (filter, update|doc, opts).
local function op2(method, hook)
  local where = "collection:" .. method
  local f
  return fast(method, 2, hook, function(self, a, b, opts)
    local client, c, cs, ws, o
    if opts == nil then
      if getmetatable(self) ~= Collection then bad_self(where, "a Collection", self) end
      client, c = self._client, self._core
      cs, ws = ambient(client, where)
    else
      client, c, cs, ws, o = prepare(self, opts, where)
    end
    f = f or c[method]
    if hook and self._hooks.n > 0 and has_hooks(self, hook) then
      run_hooks(self, "before", hook, a, b, ws)
      local r = monitored(client, f, c, cs, a, b, o)
      run_hooks(self, "after", hook, a, b, r, ws)
      return r
    end
    if listeners[client._id] == nil and not client._json_null then return f(c, cs, a, b, o) end
    return monitored(client, f, c, cs, a, b, o)
  end)
end

-- Operations with options only: (opts).
local function op0(method)
  local where = "collection:" .. method
  return function(self, opts)
    local client, c, cs, _, o = prepare(self, opts, where)
    return monitored(client, c[method], c, cs, o)
  end
end

local function cursor_op(method)
  local where = "collection:" .. method
  return function(self, a, opts)
    local client, c, cs, _, o = prepare(self, opts, where)
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
Collection.distinct = op2("distinct")
Collection.estimated_document_count = op0("estimated_document_count")
Collection.create_index = op1("create_index")
Collection.create_indexes = op1("create_indexes")
Collection.list_indexes = op0("list_indexes")
Collection.drop_index = op1("drop_index")
Collection.drop_indexes = op0("drop_indexes")
Collection.drop = op0("drop")

-- bulk_write request kind -> (hook, the fields its hooks get before the session)
local bulk_hooks = {
  insert_one = { "insert", "document" },
  update_one = { "update", "filter", "update" },
  update_many = { "update", "filter", "update" },
  replace_one = { "replace", "filter", "replacement" },
  delete_one = { "delete", "filter" },
  delete_many = { "delete", "filter" },
}

-- The (kind, spec) of a well-formed request, or nil (the core names what
-- is wrong with it).
local function request_kind(req)
  if type(req) ~= "table" then return nil end
  local kind, spec = next(req)
  if kind == nil or next(req, kind) ~= nil or not bulk_hooks[kind] or type(spec) ~= "table" then
    return nil
  end
  return kind, spec
end

-- coll:bulk_write(requests, opts): the hooks of each request's kind run as
-- for the single-document methods, in request order: every before hook
-- before anything is sent, every after hook once the bulk succeeded. An
-- insert's after hook gets { inserted_id = id }; the others get the bulk's
-- result (the server counts per bulk, not per request).
function Collection:bulk_write(requests, opts)
  local client, c, cs, ws, o = prepare(self, opts, "collection:bulk_write")
  if not (has_hooks(self, "insert") or has_hooks(self, "update") or has_hooks(self, "replace")
    or has_hooks(self, "delete")) or type(requests) ~= "table" then
    return monitored(client, c.bulk_write, c, cs, requests, o)
  end
  local function each(when, r)
    for i = 1, #requests do
      local kind, spec = request_kind(requests[i])
      if kind then
        local h = bulk_hooks[kind]
        local res = r
        if r and kind == "insert_one" then res = { inserted_id = r.inserted_ids and r.inserted_ids[i] } end
        if #h == 2 and r then
          run_hooks(self, when, h[1], spec[h[2]], res, ws)
        elseif #h == 2 then
          run_hooks(self, when, h[1], spec[h[2]], ws)
        elseif r then
          run_hooks(self, when, h[1], spec[h[2]], spec[h[3]], res, ws)
        else
          run_hooks(self, when, h[1], spec[h[2]], spec[h[3]], ws)
        end
      end
    end
  end
  each("before", nil)
  local r = monitored(client, c.bulk_write, c, cs, requests, o)
  each("after", r)
  return r
end

function Collection:insert_many(docs, opts)
  local where = "collection:insert_many"
  local client, c, cs, ws, o = prepare(self, opts, where)
  if not has_hooks(self, "insert") then
    return monitored(client, c.insert_many, c, cs, docs, o)
  end
  if type(docs) ~= "table" then argerror(where .. ": documents must be a list of tables, got " .. type(docs)) end
  for i = 1, #docs do run_hooks(self, "before", "insert", docs[i], ws) end
  local r = monitored(client, c.insert_many, c, cs, docs, o)
  local ids = r.inserted_ids or {}
  for i = 1, #docs do run_hooks(self, "after", "insert", docs[i], { inserted_id = ids[i] }, ws) end
  return r
end

return Col
