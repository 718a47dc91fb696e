--[[
spec/support/readme.lua - the README's ```lua blocks as one checked program
(used by spec/readme_spec.lua, which states the `-->` conventions, and by
spec/support/readme_run.lua, which runs the program in a process of its own).

  R.parse(text)        -> { checks = { { line, expected = { line, ... } } }, blocks = n }
  R.program(text, p)   -> Lua source with README's line numbers: every line outside
                          a ```lua block is empty, and each checked statement's
                          last code line ends with `;__readme_mark(k)`
  R.match(expected, actual_text) -> true | false, why
]]

local R = {}

local function lines_of(text)
  local out = {}
  for l in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\r?\n") do out[#out + 1] = l end
  return out
end
R.lines_of = lines_of

-- The `-->` comment of a line: code before it, the comment's text (nil: none).
local function split_comment(line)
  local s = line:find("%-%->")
  while s do
    if s == 1 or line:sub(s - 1, s - 1):match("%s") then
      return line:sub(1, s - 1), line:sub(s + 3)
    end
    s = line:find("%-%->", s + 1)
  end
  return line, nil
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- The expected output lines of one comment's text: " -- " starts a remark
-- (not compared); "then" (or ", then") between words separates lines.
local function expected_lines(text)
  local remark = text:find("%s%-%-%s") or text:find("%s%-%-$")
  if remark then text = text:sub(1, remark - 1) end
  local out, pos = {}, 1
  while true do
    local s, e = text:find(",?%s+then%s+", pos)
    if not s then
      out[#out + 1] = trim(text:sub(pos))
      return out
    end
    out[#out + 1] = trim(text:sub(pos, s - 1))
    pos = e + 1
  end
end
R.expected_lines = expected_lines

function R.parse(text)
  local lines = lines_of(text)
  local checks, blocks = {}, 0
  local in_lua, fence, last_code
  for i, l in ipairs(lines) do
    local f = l:match("^%s*(```+)")
    if f and not in_lua and l:match("^%s*```+lua%s*$") then
      in_lua, fence, last_code = true, f, nil
      blocks = blocks + 1
    elseif in_lua and f == fence and l:match("^%s*```+%s*$") then
      in_lua = false
    elseif in_lua then
      local code, comment = split_comment(l)
      if comment then
        local own = not code:match("%S")
        local at = own and last_code or i
        if not at then
          error(("README.md:%d: a --> comment with no statement before it in its block"):format(i), 0)
        end
        local prev = checks[#checks]
        local exp = expected_lines(comment)
        if own and prev and prev.line == at then
          for _, e in ipairs(exp) do prev.expected[#prev.expected + 1] = e end
          prev.comment_lines[#prev.comment_lines + 1] = i
        else
          checks[#checks + 1] = { line = at, expected = exp, comment_lines = { i } }
        end
      end
      if code:match("%S") and not code:match("^%s*%-%-") then last_code = i end
    end
  end
  if in_lua then error("README.md: a ```lua block is not closed", 0) end
  return { checks = checks, blocks = blocks }
end

-- The program: README's line numbers, checked statements marked.
function R.program(text, parsed)
  local lines = lines_of(text)
  local mark_at = {}
  for k, c in ipairs(parsed.checks) do mark_at[c.line] = k end
  local out, in_lua, fence = {}, false, nil
  for i, l in ipairs(lines) do
    local f = l:match("^%s*(```+)")
    local line = ""
    if f and not in_lua and l:match("^%s*```+lua%s*$") then
      in_lua, fence = true, f
    elseif in_lua and f == fence and l:match("^%s*```+%s*$") then
      in_lua = false
    elseif in_lua then
      local code = split_comment(l)
      line = code
      if mark_at[i] then line = code .. " ;__readme_mark(" .. mark_at[i] .. ")" end
    end
    out[i] = line
  end
  return table.concat(out, "\n") .. "\n"
end

-- Whitespace runs as one space, no leading or trailing space.
local function norm(s)
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- The Lua pattern of one expected line: `...` matches anything.
local function pattern(exp)
  local parts = {}
  local e = norm(exp)
  local pos = 1
  while true do
    local s, f = e:find("...", pos, true)
    local piece = e:sub(pos, (s or 0) - 1)
    if not s then piece = e:sub(pos) end
    parts[#parts + 1] = (piece:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
    if not s then break end
    pos = f + 1
  end
  return "^" .. table.concat(parts, ".-") .. "$"
end

-- Does the printed text match the expected lines?
function R.match(expected, actual)
  local got = {}
  if actual ~= "" then
    for l in (actual:sub(-1) == "\n" and actual or actual .. "\n"):gmatch("(.-)\n") do
      got[#got + 1] = l
    end
  end
  if #got ~= #expected then
    return false, ("expected %d line(s), printed %d"):format(#expected, #got)
  end
  for i = 1, #expected do
    if not norm(got[i]):match(pattern(expected[i])) then
      return false, ("line %d: expected %q, printed %q"):format(i, norm(expected[i]), norm(got[i]))
    end
  end
  return true
end

return R
