-- bench/lib/callgrind.lua - instruction counts of whole commands under
-- valgrind's callgrind, for the benchmarks' ratios that machine load does
-- not change.
--   cg.available()            -> true when valgrind is installed
--   cg.instructions(cmd)      -> instructions the command ran (raises if callgrind failed)
--   cg.per_run(make_cmd, n)   -> (instructions of make_cmd(n) - of make_cmd(0)) / n
local M = {}

function M.available()
  local p = io.popen("command -v valgrind 2>/dev/null")
  local out = p:read("a")
  p:close()
  return out ~= ""
end

function M.instructions(cmd)
  local tmp = os.tmpname()
  local ok = os.execute(("valgrind --tool=callgrind --callgrind-out-file=%q %s >/dev/null 2>&1"):format(tmp, cmd))
  local f = ok and io.open(tmp)
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(tmp)
  local n = tonumber(text:match("\nsummary: (%d+)") or text:match("\ntotals: (%d+)"))
  if not n then error("callgrind failed: " .. cmd, 0) end
  return n
end

function M.per_run(make_cmd, n)
  return (M.instructions(make_cmd(n)) - M.instructions(make_cmd(0))) / n
end

return M
