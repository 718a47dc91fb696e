-- bench/lib/codec_rate.lua - the rate of one codec figure in a process of
-- its own, for bench/codec.lua's comparison with another build of xdbtx
-- (XDBTX_BENCH_BASE): whichever xdbtx/core.so package.cpath finds first.
--   lua5.4 bench/lib/codec_rate.lua encode|decode small|medium|large SECONDS
-- prints "encode N" or "decode N" (calls per second of CPU time).
package.path = "./bench/lib/?.lua;" .. package.path
local x = require "xdbtx.core"
local docs = require "docs"
local rate = require "rate"

local what, name, seconds = arg[1], arg[2], tonumber(arg[3])
local gen = docs[name]
assert(gen and seconds and (what == "encode" or what == "decode"),
  "usage: codec_rate.lua encode|decode small|medium|large SECONDS")
local t = gen()
collectgarbage()
if what == "encode" then
  print(("encode %.0f"):format(rate(x.encode, t, seconds)))
else
  print(("decode %.0f"):format(rate(x.decode, x.encode(t), seconds)))
end
