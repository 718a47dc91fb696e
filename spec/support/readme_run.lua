--[[
spec/support/readme_run.lua README RESULT - run README's ```lua blocks as one
program (spec/support/readme.lua builds it) in this process, with `print`
captured, and write what each checked statement printed to RESULT as a Lua
chunk: return { out = { [k] = text }, hits = { [k] = n }, trailing = text,
error = message | nil }. spec/readme_spec.lua compares it with the comments.
]]
local R = dofile("spec/support/readme.lua")

local readme, result = arg[1], arg[2]
local f = assert(io.open(readme, "rb"))
local text = f:read("a")
f:close()
local parsed = R.parse(text)
local src = R.program(text, parsed)

local buf, out, hits = {}, {}, {}
function print(...)
  local n = select("#", ...)
  local t = {}
  for i = 1, n do t[i] = tostring((select(i, ...))) end
  buf[#buf + 1] = table.concat(t, "\t") .. "\n"
end
function __readme_mark(k)
  out[k] = (out[k] or "") .. table.concat(buf)
  hits[k] = (hits[k] or 0) + 1
  buf = {}
end

local err
local chunk, lerr = load(src, "@README.md", "t")
if not chunk then
  err = "does not load: " .. tostring(lerr)
else
  local ok, e = xpcall(chunk, function(e) return debug.traceback(tostring(e), 2) end)
  if not ok then err = e end
end

local w = assert(io.open(result, "wb"))
w:write("return { out = {")
for k, v in pairs(out) do w:write(("[%d] = %q,"):format(k, v)) end
w:write("}, hits = {")
for k, v in pairs(hits) do w:write(("[%d] = %d,"):format(k, v)) end
w:write(("}, trailing = %q, error = %s }\n"):format(table.concat(buf), err and ("%q"):format(err) or "nil"))
w:close()
os.exit(0)
