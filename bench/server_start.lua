-- bench/server_start.lua - how long the bundled test server takes to start:
-- from launching spec/server/xdbtx-testd with two replica sets until both
-- `ready <uri>` lines are out. Target: under a second. Prints each of 5 runs
-- and the median.
local now = require("xdbtx.core").now

local runs = {}
for i = 1, 5 do
  local t0 = now()
  local p = assert(io.popen("exec spec/server/xdbtx-testd --port 0 --port 0 --watch-parent 2>/dev/null & "
    .. "echo pid $!", "r"))
  local pid, ready = nil, 0
  for line in p:lines() do
    pid = pid or line:match("^pid (%d+)")
    if line:match("^ready ") then ready = ready + 1 end
    if ready == 2 then break end
  end
  runs[i] = now() - t0
  if pid then os.execute("kill " .. pid) end
  p:close()
  assert(ready == 2, "the server did not print two ready lines")
end
table.sort(runs)
local parts = {}
for i, t in ipairs(runs) do parts[i] = ("%.3f"):format(t) end
print(("test server start (2 replica sets), 5 runs: %s s; median %.3f s (target < 1 s)"):format(
  table.concat(parts, " "), runs[3]))
