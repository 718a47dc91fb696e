-- bench/lib/rate.lua - how many calls of fn(arg) a second of CPU time
-- (os.clock) runs: a warm-up of 20 calls, then batches that grow until a
-- batch is measurable, for `seconds` in all. Shared by bench/codec.lua and
-- bench/lib/codec_rate.lua so that both sides of a comparison measure alike.
return function(fn, arg, seconds)
  for _ = 1, 20 do fn(arg) end
  local n, t0 = 0, os.clock()
  local batch = 10
  while true do
    for _ = 1, batch do fn(arg) end
    n = n + batch
    local dt = os.clock() - t0
    if dt >= seconds then return n / dt end
    if dt < seconds / 20 then batch = batch * 2 end
  end
end
