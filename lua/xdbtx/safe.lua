--[[
xdbtx.safe - the xdbtx API returning `nil, err` instead of raising, as
cjson.safe does for cjson.

Every function of the module and every method of the objects it returns
(Client, Database, Collection, Session, Cursor) is wrapped: on success it returns what
xdbtx returns (objects wrapped again, so their methods are safe too), on
failure nil and the error. Safe objects are thin proxies over the real ones
(field `__real`, which xdbtx itself unwraps when one is passed back, e.g. as
`session = s`). Inside client:transaction / xdbtx.sandbox the function gets a
safe Session; operations there return nil, err as well, so raise the error
(`assert`/`error`) to make the transaction abort or retry: a swallowed error
leaves a transaction the server may already have aborted.
A safe Cursor used as a for-loop iterator still raises: the loop cannot see an
error returned beside nil. xdbtx.rollback still raises (its sentinel is what ends the transaction; a safe
method whose hook raises it raises it on), and a quiet rollback still returns
nil, reason.
]]

local x = require "xdbtx"

local unpack = table.unpack or unpack

local S = {}

local kinds = {
  [x.Client] = true, [x.Collection] = true, [x.Session] = true, [x.Cursor] = true,
  [x.Database] = true,
}
local proxies = setmetatable({}, { __mode = "kv" })
local wrap

local function pack(...)
  return { n = select("#", ...), ... }
end

local function real(v)
  if type(v) == "table" then return rawget(v, "__real") or v end
  return v
end

local is_rollback = require("xdbtx.attempt").is_rollback

local function wrap_results(ok, ...)
  if not ok then
    -- xdbtx.rollback's sentinel (raised in a hook, say) ends the transaction:
    -- it goes on unwinding, never becomes a result
    if is_rollback((...)) then error((...), 0) end
    return nil, (...)
  end
  local n = select("#", ...)
  if n == 1 then return wrap((...)) end
  local r = pack(...)
  for i = 1, r.n do r[i] = wrap(r[i]) end
  return unpack(r, 1, r.n)
end

-- Arguments: unwrap proxies, and give user functions (transaction bodies)
-- safe objects.
local function unwrap_args(...)
  local n = select("#", ...)
  if n == 0 then return end
  local a = pack(...)
  for i = 1, a.n do
    local v = a[i]
    if type(v) == "table" then
      a[i] = real(v)
    elseif type(v) == "function" then
      a[i] = function(...)
        local r = pack(...)
        for j = 1, r.n do r[j] = wrap(r[j]) end
        return v(unpack(r, 1, r.n))
      end
    end
  end
  return unpack(a, 1, a.n)
end

local method_cache = setmetatable({}, { __mode = "k" })

local function safe_method(f)
  local m = method_cache[f]
  if not m then
    m = function(self, ...)
      return wrap_results(pcall(f, real(self), unwrap_args(...)))
    end
    method_cache[f] = m
  end
  return m
end

local proxy_mt = {
  __index = function(t, k)
    local r = rawget(t, "__real")
    local v = r[k]
    if type(v) == "function" then return safe_method(v) end
    return v
  end,
  -- a Cursor as a for-loop iterator raises: the loop would take nil, err
  -- for the end of the results and drop the error (cursor:next() and
  -- cursor:all() return nil, err)
  __call = function(t)
    local r = rawget(t, "__real")
    return r:next()
  end,
  __close = function(t)
    local r = rawget(t, "__real")
    if r.close then pcall(r.close, r) end
  end,
  __tostring = function(t) return tostring(rawget(t, "__real")) end,
}

function wrap(v)
  if type(v) ~= "table" or not kinds[getmetatable(v)] then return v end
  local p = proxies[v]
  if not p then
    p = setmetatable({ __real = v }, proxy_mt)
    proxies[v] = p
  end
  return p
end

for k, v in pairs(x) do
  if type(v) == "function" and k ~= "rollback" and k ~= "bind" then
    S[k] = function(...)
      return wrap_results(pcall(v, unwrap_args(...)))
    end
  else
    S[k] = v
  end
end

return S
