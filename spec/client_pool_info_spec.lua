-- client:open() and client:pool_info(): which process made a client's
-- libmongoc pool (OpenResty makes it in init_worker_by_lua, after the fork;
-- spec/openresty checks that in nginx). Runs under Lua 5.4 and LuaJIT; no
-- server is needed (making a pool sends nothing).
describe("client:open() and client:pool_info()", function()
  local x = require "xdbtx"

  local function my_pid()
    local f = assert(io.open("/proc/self/stat"))
    local pid = tonumber(f:read("*l"):match("^(%d+)"))
    f:close()
    return pid
  end

  it("no pool before first use; open makes this process's pool, shared by equal clients", function()
    local uri = "mongodb://127.0.0.1:1/?appname=pool_info_spec&serverSelectionTimeoutMS=100"
    local c = x.client(uri)
    assert.is_nil(c:pool_info())
    assert.are.equal(c, c:open())
    local info = c:pool_info()
    assert.are.equal(my_pid(), info.pid)
    assert.matches("^0x%x+$", info.pool)
    assert.are.same(info, x.client(uri):pool_info())
    local other = x.client(uri, { app_name = "other" }):open()
    assert.are_not.equal(info.pool, other:pool_info().pool)
  end)
end)
