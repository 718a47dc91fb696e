-- MongoDB's transaction specification tests, run through the Lua API.
--
-- Reads ../shared/specs/{transactions-convenient-api,transactions}/*.json
-- (legacy format, see ../shared/specs/README.md; not copied into the
-- project) and runs each test with spec/support/spec_runner.lua. Tests that
-- need what the Lua API or the topology lacks are pending, with the reason.
-- After each file a line "# spec <dir>/<file>: P passed, F failed, S skipped"
-- is printed, plus one line per skip reason.

local env = require "support.env"
local runner = require "support.spec_runner"

local ROOT = os.getenv("XDBTX_SPECS") or "../shared/specs"

local DIRS = { "transactions-convenient-api", "transactions" }

local function list(dir)
  local p = io.popen('ls "' .. dir .. '"/*.json 2>/dev/null')
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end

describe("MongoDB transaction spec tests", function()
  local probe = io.open(ROOT .. "/README.md", "r")
  if not probe then
    pending("spec tests not found at " .. ROOT .. " (set XDBTX_SPECS)")
    return
  end
  probe:close()
  local why = env.server_reason()
  if why then pending(why) return end
  local x = require "xdbtx"
  local summary = {}

  for _, d in ipairs(DIRS) do
    for _, path in ipairs(list(ROOT .. "/" .. d)) do
      local name = path:match("([^/]+)$")
      local label = d .. "/" .. name
      local file = runner.load(x, path)
      local stats = { pass = 0, fail = 0, skip = 0, reasons = {} }
      summary[#summary + 1] = { label, stats }
      local fskip = runner.file_skip(name, file)

      describe(label, function()
        if fskip then
          stats.skip = #file.tests
          stats.reasons[fskip] = #file.tests
          pending(label .. ": " .. fskip)
          return
        end
        for _, t in ipairs(file.tests) do
          it(t.description, function()
            local ok, res, reason = pcall(runner.run_test, x, env.uri(), file, t)
            if not ok then
              stats.fail = stats.fail + 1
              error(res, 0)
            elseif res == "skip" then
              stats.skip = stats.skip + 1
              stats.reasons[reason] = (stats.reasons[reason] or 0) + 1
              pending(reason)
            else
              stats.pass = stats.pass + 1
            end
          end)
        end
      end)
    end
  end

  teardown(function()
    local tp, tf, ts = 0, 0, 0
    for _, e in ipairs(summary) do tp = tp + e[2].pass + e[2].fail + e[2].skip end
    if tp == 0 then return end -- filtered out (busted --tags, --filter)
    tp = 0
    io.stdout:write("\n")
    for _, e in ipairs(summary) do
      local s = e[2]
      tp, tf, ts = tp + s.pass, tf + s.fail, ts + s.skip
      io.stdout:write(("# spec %s: %d passed, %d failed, %d skipped\n"):format(e[1], s.pass, s.fail, s.skip))
      for r, n in pairs(s.reasons) do
        io.stdout:write(("#   skipped %d: %s\n"):format(n, r))
      end
    end
    io.stdout:write(("# spec tests total: %d passed, %d failed, %d skipped\n"):format(tp, tf, ts))
  end)
end)
