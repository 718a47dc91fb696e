-- bench/codec.lua - encode/decode throughput of xdbtx's BSON codec.
--
-- For each sample document of bench/lib/docs.lua (small, medium, large) prints
-- encodes/s and decodes/s (CPU time, os.clock), runs the libbson-only C
-- baseline (bench/codec_baseline.c, built by scripts/bench into
-- $XDBTX_BENCH_BIN) on the same bytes, and prints the ratio xdbtx/C.
-- Reference (research/lua_drivers.md s.7, ~1.4 KB doc, Lua 5.4): the
-- fastest Lua BSON codec known, cloudwu/lua-bson, does ~137k encodes/s and
-- ~86k decodes/s.
--   lua5.4 bench/codec.lua        (package.cpath must reach xdbtx/core.so)
package.path = "./bench/lib/?.lua;" .. package.path
local x = require "xdbtx.core"
local docs = require "docs"

local SECONDS = tonumber(os.getenv("XDBTX_BENCH_SECONDS") or "") or 1.0

local function rate(fn, arg)
  for _ = 1, 50 do fn(arg) end
  local n, t0 = 0, os.clock()
  local batch = 10
  while true do
    for _ = 1, batch do fn(arg) end
    n = n + batch
    local dt = os.clock() - t0
    if dt >= SECONDS then return n / dt end
    if dt < SECONDS / 20 then batch = batch * 2 end
  end
end

local dir = "build/bench"
os.execute("mkdir -p " .. dir)
local names = { "small", "medium", "large" }
local files, results = {}, {}
for _, name in ipairs(names) do
  local t = docs[name]()
  local bytes = x.encode(t)
  local path = dir .. "/codec_" .. name .. ".bson"
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  files[#files + 1] = path
  collectgarbage()
  local enc = rate(x.encode, t)
  collectgarbage()
  local dec = rate(x.decode, bytes)
  results[name] = { bytes = #bytes, enc = enc, dec = dec }
end

local base = {}
local bin = os.getenv("XDBTX_BENCH_BIN")
bin = (bin and bin ~= "" and bin or dir) .. "/codec_baseline"
local p = io.open(bin, "rb")
if p then
  p:close()
  local out = io.popen(bin .. " " .. table.concat(files, " "))
  for line in out:lines() do
    local name, e, d = line:match("^codec_(%w+)%.bson encode (%d+) decode (%d+)")
    if name then base[name] = { enc = tonumber(e), dec = tonumber(d) } end
  end
  out:close()
else
  print("# C baseline not built (" .. bin .. "); run sh scripts/bench codec")
end

print(string.format("# %s, %s", _VERSION, jit and jit.version or "PUC Lua"))
print(string.format("%-7s %7s  %12s %12s %7s  %12s %12s %7s", "doc", "bytes",
  "encode/s", "C encode/s", "ratio", "decode/s", "C decode/s", "ratio"))
for _, name in ipairs(names) do
  local r, b = results[name], base[name]
  print(string.format("%-7s %7d  %12.0f %12s %7s  %12.0f %12s %7s", name, r.bytes,
    r.enc, b and string.format("%.0f", b.enc) or "-", b and string.format("%.2f", r.enc / b.enc) or "-",
    r.dec, b and string.format("%.0f", b.dec) or "-", b and string.format("%.2f", r.dec / b.dec) or "-"))
end
local m = results.medium
print(string.format("# medium vs cloudwu/lua-bson (137k enc/s, 86k dec/s on ~1.4 KB): encode x%.2f, decode x%.2f",
  m.enc / 137000, m.dec / 86000))
