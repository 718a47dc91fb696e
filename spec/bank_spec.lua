-- The bank check: 4 worker processes x 50 journalled transfers between
-- accounts on two clusters, with random faults and one worker killed
-- mid-run and started again; then one recovery. Money is neither made nor
-- lost, and every transfer is fully applied or fully undone.
local env = require "spec.support.env"

local LUA = os.getenv("LUA") or "lua5.4"
local WORKERS, TRANSFERS = 4, 50

describe("the bank check", function()
  local why = env.server_reason()
  if why then pending(why) return end
  if not os.getenv("XDBTX_TEST_URI2") then pending("XDBTX_TEST_URI2 is not set") return end

  local x = require "xdbtx"
  local bank = dofile("spec/crash/bank.lua")
  local a = x.client(env.uri(), { app_name = "bank_spec" })
  local b = x.client(os.getenv("XDBTX_TEST_URI2"), { app_name = "bank_spec" })
  local journal = a:collection(bank.DB, "journal")
  local trees = {
    transfer = function(_, record)
      local debit = record.store and record.store["1"]
      return bank.tree(a, b, { id = record._id, amount = 0, a_account = "a1", b_account = "b1",
                               from_a = not debit or debit.side == "a" })
    end,
  }

  local function sum()
    local total = 0
    for _, c in ipairs { a, b } do
      for d in c:collection(bank.DB, "accounts"):find({}) do total = total + d.balance end
    end
    return total
  end

  local function start(w, seed)
    -- the shell reports how the worker ended (LuaJIT's p:close() does not)
    local cmd = ("%s spec/crash/bank_worker.lua %d %d %d 2>&1; echo \"exit status $?\""):format(LUA, w,
      TRANSFERS, seed)
    local p = assert(io.popen(cmd))
    -- its first line of stdout is its pid; libmongoc may warn on stderr first
    local before, pid = {}, nil
    repeat
      local line = p:read("l")
      pid = tonumber(line)
      if not pid then before[#before + 1] = line end
    until pid or line == nil or line:match("^exit status")
    if not pid then
      error(("worker %d printed no pid: %s"):format(w, table.concat(before, "\n")))
    end
    return { p = p, pid = pid }
  end

  it("conserves money and applies or undoes every transfer in full", function()
    for _, c in ipairs { a, b } do
      c:database(bank.DB):drop()
    end
    local accounts = { a = a:collection(bank.DB, "accounts"), b = b:collection(bank.DB, "accounts") }
    for _, id in ipairs(bank.ACCOUNTS_A) do accounts.a:insert_one { _id = id, balance = bank.START } end
    for _, id in ipairs(bank.ACCOUNTS_B) do accounts.b:insert_one { _id = id, balance = bank.START } end
    local start_sum = sum()

    local seed = tonumber(os.getenv("XDBTX_BANK_SEED") or "") or os.time()
    print(("# bank check: %d workers x %d transfers, seed %d (XDBTX_BANK_SEED)"):format(WORKERS, TRANSFERS, seed))
    local ws = {}
    for w = 1, WORKERS do ws[w] = start(w, seed + w) end
    -- kill worker 2 mid-run (SIGKILL) once it has reported 10 transfers,
    -- then start it again on the same ids
    local done_before_kill = 0
    while done_before_kill < 10 do
      assert(ws[2].p:read("l"), "worker 2 ended early")
      done_before_kill = done_before_kill + 1
    end
    os.execute("kill -KILL " .. ws[2].pid)
    local killed = ws[2].p:read("*a")
    ws[2].p:close()
    assert.are.equal("137", killed:match("exit status (%d+)%s*$"), killed) -- 128 + SIGKILL
    ws[2] = start(2, seed + 2)
    local lines = {}
    for w = 1, WORKERS do
      local out = ws[w].p:read("*a")
      ws[w].p:close()
      local status = out:match("exit status (%d+)%s*$")
      assert.are.equal("0", status, ("worker %d ended with status %s: %s"):format(w, tostring(status), out))
      out = out:gsub("exit status %d+%s*$", "")
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    end

    local settled = x.recover(journal, trees, { older_than = 0 })
    local counts = { committed = 0, aborted = 0, compensated = 0, recovered = #settled }
    local rec = { a = a:collection(bank.DB, "receipts"), b = b:collection(bank.DB, "receipts") }
    local receipts = {}
    for _, side in ipairs { "a", "b" } do
      for d in rec[side]:find({}) do receipts[d._id] = true end
    end
    local ids = 0
    for d in journal:find({}) do
      ids = ids + 1
      assert.are.equal("done", d.stage, d._id)
      local st = d.outcome.status
      local debit, credit = receipts[d._id .. "/debit"], receipts[d._id .. "/credit"]
      if st == "committed" then
        assert.is_true(debit and credit, d._id .. " committed but not applied in full")
      else
        assert.is_true(st == "aborted" or st == "compensated", d._id .. ": " .. st)
        assert.is_true(not debit and not credit, d._id .. " " .. st .. " but not undone in full")
      end
      counts[st] = counts[st] + 1
    end
    assert.are.equal(sum(), start_sum)
    for _, side in ipairs { "a", "b" } do
      for d in accounts[side]:find({}) do
        assert.is_true(d.balance >= bank.START - 20 * WORKERS * TRANSFERS, "sanity")
      end
    end
    print(("# bank check: %d transfers journalled (worker 2 killed after %d and restarted):" ..
      " %d applied, %d aborted, %d compensated, %d settled by recover; sum %d = %d"):format(
      ids, done_before_kill, counts.committed, counts.aborted, counts.compensated, counts.recovered,
      sum(), start_sum))
    assert.is_true(ids >= (WORKERS - 1) * TRANSFERS)
    assert.is_true(counts.committed > 0 and counts.aborted + counts.compensated > 0)
  end)
end)
