--[[
spec/crash/bank.lua - the bank check's accounts and transfer tree, shared by
its workers (spec/crash/bank_worker.lua) and the spec that recovers and
checks them (spec/bank_spec.lua).

A transfer moves `amount` between an account on cluster A and one on
cluster B (either way): the debit and the credit are nodes of one tree,
each with a compensation, and each also writes a receipt { _id = "<id>/<node>" }
in its own transaction, which its compensation deletes: a transfer is fully
applied when both receipts exist and fully undone when neither does.
]]
local B = {
  DB = "xdbtx_bank",
  ACCOUNTS_A = { "a1", "a2", "a3", "a4", "a5" },
  ACCOUNTS_B = { "b1", "b2", "b3", "b4", "b5" },
  START = 1000,
}

function B.tree(a, b, t)
  local acc = { a = a:collection(B.DB, "accounts"), b = b:collection(B.DB, "accounts") }
  local rec = { a = a:collection(B.DB, "receipts"), b = b:collection(B.DB, "receipts") }
  local tries = 0
  local function move(name, side, account, delta, fail)
    return function(store)
      tries = tries + 1
      acc[side]:update_one({ _id = account }, { ["$inc"] = { balance = delta } })
      rec[side]:insert_one { _id = t.id .. "/" .. name, account = account, delta = delta }
      if fail == "action" then error("declined") end
      if fail == "transient" and tries == 1 then
        error(require("xdbtx").error { message = "injected transient error", code = 112,
          name = "WriteConflict", labels = { TransientTransactionError = true } })
      end
      return { side = side, account = account, delta = delta }
    end
  end
  local function undo(name)
    return function(store)
      local r = store[name]
      acc[r.side]:update_one({ _id = r.account }, { ["$inc"] = { balance = -r.delta } })
      rec[r.side]:delete_one { _id = t.id .. "/" .. name }
    end
  end
  local debit_side, credit_side = t.from_a and "a" or "b", t.from_a and "b" or "a"
  local debit_acc = t.from_a and t.a_account or t.b_account
  local credit_acc = t.from_a and t.b_account or t.a_account
  return {
    client = debit_side == "a" and a or b, name = "debit",
    action = move("debit", debit_side, debit_acc, -t.amount),
    compensate = undo("debit"),
    children = { {
      client = credit_side == "a" and a or b, name = "credit",
      action = move("credit", credit_side, credit_acc, t.amount, t.fault),
      compensate = undo("credit"),
    } },
  }
end

return B
