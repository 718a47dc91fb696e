-- The trees module the xdbtx-recover spec gives the command: the crash
-- specs' transfer, on the clients of XDBTX_TEST_URI and XDBTX_TEST_URI2.
-- XDBTX_CLI_BROKEN_UNDO=1 makes its compensations fail (a partial run).
local x = require "xdbtx"
local transfer = dofile("spec/crash/transfer.lua")
local a = x.client(os.getenv("XDBTX_TEST_URI"), { app_name = "cli_trees" })
local b = x.client(os.getenv("XDBTX_TEST_URI2"), { app_name = "cli_trees" })
local broken = os.getenv("XDBTX_CLI_BROKEN_UNDO") == "1"
return {
  transfer = function()
    local t = transfer(a, b, { from = "alice", to = "bob", amount = 10 })
    if broken then t.compensate = function() error("the compensation is broken") end end
    return t
  end,
}
