--[[
spec/crash/transfer.lua - the tree the crash specs run and recover: a
transfer of `amount` from account `from` on cluster A to account `to` on
cluster B, both nodes with compensations. Shared by the coordinator process
(spec/crash/coordinator.lua) and the recovering spec, which must build the
same tree (xdbtx.recover looks the compensations up by node path).

  transfer(a, b, t) -> tree, with t = { from, to, amount, hooks }:
  hooks.action(name, store) runs at the start of each action, after its
  write when hooks.after_write is set; hooks.compensate(name) inside each
  compensation, after its write.
]]
return function(a, b, t)
  local hooks = t.hooks or {}
  local acc_a, acc_b = a:collection("xdbtx_crash", "accounts"), b:collection("xdbtx_crash", "accounts")
  local function step(name, coll, id, delta)
    return function(store)
      if hooks.action and not hooks.after_write then hooks.action(name, store) end
      local r = coll:update_one({ _id = id }, { ["$inc"] = { balance = delta } })
      assert(r.matched_count == 1, "no account " .. id)
      if hooks.action and hooks.after_write then hooks.action(name, store) end
      return { account = id, delta = delta }
    end
  end
  local function undo(name, coll)
    return function(store)
      local r = store[name]
      coll:update_one({ _id = r.account }, { ["$inc"] = { balance = -r.delta } })
      if hooks.compensate then hooks.compensate(name) end
    end
  end
  return {
    client = a, name = "debit",
    action = step("debit", acc_a, t.from, -t.amount),
    compensate = undo("debit", acc_a),
    children = { {
      client = b, name = "credit",
      action = step("credit", acc_b, t.to, t.amount),
      compensate = undo("credit", acc_b),
    } },
  }
end
