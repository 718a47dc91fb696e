-- bench/lib/codec_loop.lua - a fixed amount of codec work, for profilers
-- and instruction counts (valgrind --tool=callgrind), not a benchmark:
--   lua5.4 bench/lib/codec_loop.lua encode|decode small|medium|large N
-- runs N encodes (or decodes) of the sample document of bench/lib/docs.lua.
-- Per-operation instruction counts: callgrind --toggle-collect=f_encode
-- (or f_decode) and divide the total by N.
package.path = "./bench/lib/?.lua;" .. package.path
local x = require "xdbtx.core"
local docs = require "docs"

local op, name, n = arg[1], arg[2], tonumber(arg[3] or "100")
local t = assert(docs[name], "doc: small, medium or large")()
local bytes = x.encode(t)
if op == "encode" then
  local encode = x.encode
  for _ = 1, n do encode(t) end
elseif op == "decode" then
  local decode = x.decode
  for _ = 1, n do decode(bytes) end
else
  error("op: encode or decode")
end
