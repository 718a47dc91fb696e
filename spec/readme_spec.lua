--[[
spec/readme_spec.lua - every ```lua block of README.md, in order, runs as one
program against the test servers, and what each statement prints is what its
`-->` comment says; so the README's examples cannot drift from the code.

The program: the ```lua blocks concatenated in README order (one chunk, so a
later block uses the locals of an earlier one), each line at its README line
number, run in a process of its own (spec/support/readme_run.lua) with
XDBTX_TEST_URI, _URI2 and XDBTX_TEST_STANDALONE_URI set. Blocks that cannot run
as shown are fenced ```sh, ```ini, ```text, never ```lua. Before it runs, the
databases the README uses (shop, bank, audit) are dropped on the test servers.

The `-->` conventions (spec/support/readme.lua implements them):
* `code  --> text` : `text` is what the statement ending on that line prints
  (with `print`); a `-->` comment on a line of its own continues the comment
  before it, or, when there is none on the line above, is the output of the
  statement ending on the nearest code line above it. The statement must end
  on that line (the checker appends a call after it).
* Output lines: `then` (or `, then`) between words separates them, and every
  `-->` line of its own is one more line: `--> a then b` means two lines.
* Values in a line: any run of spaces and tabs matches any other, so
  `--> 2  2` matches print(2, 2), which prints "2<TAB>2".
* `...` matches any characters (none included) within one line: ports,
  ObjectIds, ids (`mongodb://127.0.0.1:.../?replicaSet=rs0`,
  `ObjectId("...")`). Nothing else is a pseudo-value: comments hold literal
  output ("before + 2" is not allowed; print the number).
* ` -- ` inside a `-->` comment starts a remark that is not compared
  (`--> false  -- key order and width differ`).
* Everything the program prints must belong to a comment: output of a
  statement without `-->` is counted into the next checked statement's, and
  fails it; output after the last one fails the run. A comment in a loop or a
  function is checked against everything printed there each time it runs.
* `-- text` (two dashes, no `>`) is a plain comment: not checked.
]]
if _VERSION ~= "Lua 5.4" then return end -- Lua 5.4 only (the LuaJIT run loads every spec)
local env = require "spec.support.env"
local R = dofile("spec/support/readme.lua")

local LUA = os.getenv("LUA") or "lua5.4"

describe("README conventions (spec/support/readme.lua)", function()
  it("splits `then` into lines and drops remarks", function()
    assert.same({ "committed 30", "30" }, R.expected_lines(" committed 30, then 30"))
    assert.same({ "a", "b", "c" }, R.expected_lines(" a then b then c"))
    assert.same({ "false" }, R.expected_lines(" false  -- key order"))
    assert.same({ "mongodb://x/?a=then" }, R.expected_lines(" mongodb://x/?a=then"))
  end)

  it("matches whitespace runs and `...`", function()
    assert.is_true(R.match({ "2  2" }, "2\t2\n"))
    assert.is_true(R.match({ "ObjectId(\"...\")" }, "ObjectId(\"5f1d7a3b9c8e4a0012345678\")\n"))
    assert.is_true(R.match({ "mongodb://127.0.0.1:.../x" }, "mongodb://127.0.0.1:4242/x\n"))
    assert.is_false(R.match({ "2  2" }, "2\t3\n"))
    assert.is_false(R.match({ "a" }, "a\nb\n"))
    assert.is_false(R.match({ "a", "b" }, "a\n"))
    assert.is_false(R.match({ "1.0" }, "1\n")) -- '.' is literal
    assert.is_false(R.match({ "nil" }, ""))
  end)

  it("attributes a comment on its own line to the statement above", function()
    local p = R.parse("```lua\nprint(1)\n--> 1\nprint(2, 3)  --> 2  3\n--> more\n```\n")
    assert.same(2, #p.checks)
    assert.same({ line = 2, expected = { "1" }, comment_lines = { 3 } }, p.checks[1])
    assert.same({ "2  3", "more" }, p.checks[2].expected)
    local src = R.program("```lua\nprint(1)\n--> 1\n```\n", p)
    assert.same("\nprint(1) ;__readme_mark(1)\n\n\n", src)
  end)

  it("ignores blocks that are not lua", function()
    local p = R.parse("```sh\nmake --> x\n```\n```text\n--> y\n```\n")
    assert.same(0, #p.checks)
    assert.same(0, p.blocks)
  end)
end)

describe("README.md examples", function()
  local f = assert(io.open("README.md", "rb"))
  local text = f:read("a")
  f:close()
  local parsed = R.parse(text)

  local why = env.server_reason()
  for _, v in ipairs { "XDBTX_TEST_URI2", "XDBTX_TEST_STANDALONE_URI" } do
    if not why and not os.getenv(v) then why = v .. " is not set" end
  end
  if why then pending(why) return end

  local result
  local function run()
    if result then return result end
    local x = require "xdbtx"
    for _, v in ipairs { "XDBTX_TEST_URI", "XDBTX_TEST_URI2", "XDBTX_TEST_STANDALONE_URI" } do
      local c = x.client(os.getenv(v))
      for _, db in ipairs { "shop", "bank", "audit" } do
        c:command(db, { dropDatabase = 1 }, { session = false })
      end
    end
    local out = os.tmpname()
    local cpath = package.cpath:match("^[^;]*")
    local cmd = ("LUA_PATH='./lua/?.lua;;' LUA_CPATH='%s;;' %s spec/support/readme_run.lua README.md %s 2>&1")
      :format(cpath, LUA, out)
    local p = assert(io.popen(cmd))
    local log = p:read("a")
    p:close()
    local chunk = loadfile(out)
    os.remove(out)
    assert(chunk, "the README runner wrote no result; its output:\n" .. log)
    result = chunk()
    result.log = log
    return result
  end

  it("has ```lua blocks with --> comments", function()
    assert.is_true(parsed.blocks > 10, "few ```lua blocks: " .. parsed.blocks)
    assert.is_true(#parsed.checks > 50, "few --> comments: " .. #parsed.checks)
  end)

  it("runs to the end without an error", function()
    local r = run()
    assert(r.error == nil, "the README program raised: " .. tostring(r.error) .. "\n" .. r.log)
  end)

  it("prints nothing after its last --> comment", function()
    local r = run()
    assert(r.trailing == "", "printed without a --> comment:\n" .. r.trailing)
  end)

  for k, c in ipairs(parsed.checks) do
    local shown = table.concat(c.expected, " then "):gsub("%s+", " ")
    it(("README.md:%d --> %s"):format(c.line, shown), function()
      local r = run()
      assert(r.hits[k], ("README.md:%d was never reached%s"):format(c.line,
        r.error and (" (the program raised: " .. r.error .. ")") or ""))
      local ok, why2 = R.match(c.expected, r.out[k] or "")
      assert(ok, ("README.md:%d: %s; it printed:\n%s"):format(c.line, tostring(why2), r.out[k] or ""))
    end)
  end
end)
