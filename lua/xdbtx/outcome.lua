--[[
xdbtx.outcome - what happened to a transaction tree, node by node.

An outcome is a plain table { id, name, status, store, nodes, attempts }
with a metatable whose __tostring draws the tree: one line per node,
indented by depth, with its name or path, its client, its state and its
error. `status` is decided here from the node states, so xdbtx.run, the
flat xdbtx.transaction and xdbtx.recover report alike:
  committed    every node committed
  aborted      nothing applied
  compensated  something committed and all of it was undone
  partial      something committed and could not be undone (a node without
               compensate, a compensation that failed, or in saga mode an
               action that failed after sending operations: state "failed")
  unknown      a commit result never became known
]]

local O = {}

local Outcome = { __name = "xdbtx.Outcome" }
Outcome.__index = Outcome
O.Outcome = Outcome

-- The status of a list of node states (see the header).
function O.status(nodes)
  local applied, kept, committed, unknown = 0, 0, 0, 0
  for _, n in ipairs(nodes) do
    local st = n.state
    if st == "unknown" then
      unknown = unknown + 1
    elseif st == "committed" then
      applied, kept, committed = applied + 1, kept + 1, committed + 1
    elseif st == "compensation_failed" or st == "failed" then
      applied, kept = applied + 1, kept + 1
    elseif st == "compensated" then
      applied = applied + 1
    end
  end
  if unknown > 0 then return "unknown" end
  if applied == 0 then return "aborted" end
  if kept == 0 then return "compensated" end
  -- only a run whose every node committed is "committed": a saga node that
  -- failed after sending writes (or a failed compensation) kept something
  -- the run did not mean to, even when every other node committed
  if committed == #nodes then return "committed" end
  return "partial"
end

-- A one-line form of an error for the drawing.
local function one_line(err)
  local s = tostring(err):gsub("^xdbtx%.Error ", ""):gsub("%s*\n%s*", " ")
  if #s > 160 then s = s:sub(1, 157) .. "..." end
  return s
end

function Outcome:__tostring()
  local head = ("xdbtx %s%s: %s (%d attempt%s)"):format(
    self.name and ("\"" .. self.name .. "\" ") or "", tostring(self.id), self.status,
    self.attempts or 0, self.attempts == 1 and "" or "s")
  local lines = { head }
  local w = 0
  for _, n in ipairs(self.nodes) do
    local label = n.name and (n.path .. " " .. n.name) or n.path
    n._label = ("  "):rep((n.depth or 0) + 1) .. label
    if #n._label > w then w = #n._label end
  end
  for _, n in ipairs(self.nodes) do
    local line = ("%-" .. w .. "s  %-12s  %s"):format(n._label, n.state, n.client)
    if n.error ~= nil then line = line .. "  " .. one_line(n.error) end
    lines[#lines + 1] = line
    n._label = nil
  end
  return table.concat(lines, "\n")
end

-- The outcome of a run: fields as in the header (nodes: { path, name,
-- client, state, error, depth }).
function O.new(t)
  t.status = t.status or O.status(t.nodes)
  return setmetatable(t, Outcome)
end

return O
