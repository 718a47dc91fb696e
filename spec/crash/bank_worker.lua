--[[
spec/crash/bank_worker.lua WORKER N SEED - one of the bank check's workers:
N transfers between accounts on two clusters (XDBTX_TEST_URI and
XDBTX_TEST_URI2), each a journalled tree with its own id "w<WORKER>-<i>",
with faults injected at random from SEED: an action that fails, a
transient error in an action, a commit refused or a connection closed by
the server (failCommand failpoints scoped to this worker's application
name; workers share the servers, so one may replace another's, which only
makes the faults more random). Prints its pid first, then one line per
transfer: "<id> <status>" (or "<id> error <message>").
A worker killed and started again runs the same ids: finished ones return
their recorded outcome, unfinished ones are refused (recover settles them).
]]
package.path = "./lua/?.lua;./spec/?.lua;" .. package.path
package.cpath = (os.getenv("XDBTX_CPATH") or "./build/5.4/?.so") .. ";" .. package.cpath
local x = require "xdbtx"
local bank = dofile("spec/crash/bank.lua")

local worker, n, seed = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
math.randomseed(seed)
local app = "bank_w" .. worker
local a = x.client(os.getenv("XDBTX_TEST_URI"), { app_name = app })
local b = x.client(os.getenv("XDBTX_TEST_URI2"), { app_name = app })
local journal = a:collection(bank.DB, "journal")

local f = assert(io.open("/proc/self/stat"))
io.stdout:write(f:read("n"), "\n")
f:close()
io.stdout:flush()

local function failpoint(c, data)
  data.appName = app
  c:command("admin", x.ordered { { "configureFailPoint", "failCommand" }, { "mode", { times = 1 } },
    { "data", data } }, { session = false })
end

for i = 1, n do
  local id = ("w%d-%d"):format(worker, i)
  local r = math.random()
  local fault = r < 0.1 and "action" or r < 0.2 and "transient" or r < 0.3 and "commit"
    or r < 0.4 and "close" or "none"
  local from_a = math.random() < 0.5
  local t = {
    id = id, amount = math.random(1, 20),
    a_account = bank.ACCOUNTS_A[math.random(#bank.ACCOUNTS_A)],
    b_account = bank.ACCOUNTS_B[math.random(#bank.ACCOUNTS_B)],
    from_a = from_a, fault = fault,
  }
  if fault == "commit" then
    failpoint(math.random() < 0.5 and a or b, { failCommands = { "commitTransaction" }, errorCode = 8 })
  elseif fault == "close" then
    failpoint(math.random() < 0.5 and a or b, { failCommands = { "commitTransaction", "update" },
      closeConnection = true })
  end
  local ok, res = pcall(x.run, bank.tree(a, b, t), { journal = journal, name = "transfer", id = id,
    timeout = 20, commit = math.random() < 0.5 and "parallel" or "sequential" })
  if ok then
    io.stdout:write(id, " ", res.status, "\n")
  elseif type(res) == "table" and res.outcome then
    io.stdout:write(id, " ", res.outcome.status, "\n")
  else
    io.stdout:write(id, " error ", tostring(res):gsub("\n", " "), "\n")
  end
  io.stdout:flush()
end
os.exit(0)
