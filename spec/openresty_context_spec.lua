-- Under OpenResty a request's coroutine is reused for later requests, and a
-- request that ended inside a transaction (ngx.exit, a client abort) never
-- leaves its context. Here the Lua layer runs with a stand-in `ngx` (its
-- ngx.ctx is the request) over the fake core: a request stays suspended
-- inside a transaction body, and the next "request" runs on the same
-- coroutine. The real thing runs in nginx; this checks the rule without one.
local env = require "spec.support.env"

describe("OpenResty: a request that ended inside a transaction (stand-in ngx, fake core) #luajit", function()
  local request = {}
  local x, fake, client, coll

  before_each(function()
    request = {}
    local ngx = setmetatable({ get_phase = function() return "content" end },
      { __index = function(_, k) if k == "ctx" then return request end end })
    rawset(_G, "ngx", ngx)
    local ok, err = pcall(function() x, fake, client, coll = env.fake_client("db.t") end)
    rawset(_G, "ngx", nil) -- the layer keeps the table it found at load time
    assert(ok, err)
  end)

  it("does not run the next request on that coroutine inside its transaction", function()
    local dead_session
    local co = coroutine.create(function()
      client:transaction(function(s)
        dead_session = s
        coll:insert_one { _id = "dead" }
        local next_request = coroutine.yield("inside") -- the request ends here, for good
        next_request()
        -- nginx never comes back to the dead request's stack; here it unwinds
        error("the dead request's stack", 0)
      end)
    end)
    assert.are.same({ true, "inside" }, { coroutine.resume(co) })
    -- the next request, on the same coroutine (still inside the dead body's stack)
    request = {}
    local seen = {}
    local ok, err = coroutine.resume(co, function()
      seen.in_transaction = x.in_transaction()
      client:transaction(function() coll:insert_one { _id = "next" } end)
      seen.done = true
    end)
    assert.is_false(ok)
    assert.are.equal("the dead request's stack", err)
    assert.is_true(seen.done)
    assert.is_false(seen.in_transaction)
    -- its own transaction committed; the dead request's was aborted and its session closed
    assert.is_table(coll:find_one { _id = "next" })
    assert.is_nil(coll:find_one { _id = "dead" })
    assert.are.equal("closed", dead_session._core:state())
  end)

  it("the same request keeps its context (a light thread of it through xdbtx.bind, say)", function()
    local inner
    client:transaction(function()
      inner = x.in_transaction()
      coll:insert_one { _id = "same" }
    end)
    assert.is_true(inner)
    assert.is_table(coll:find_one { _id = "same" })
  end)
end)
