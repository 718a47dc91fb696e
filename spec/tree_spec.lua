-- The transaction tree across clusters (xdbtx.run, the flat
-- xdbtx.transaction, the multi-client sandbox, saga mode), against the test
-- server's three independent replica sets or real ones (XDBTX_TEST_URI,
-- XDBTX_TEST_URI2, XDBTX_TEST_URI3). Faults are failCommand failpoints
-- scoped to this spec's application names.
local env = require "spec.support.env"

local catch = env.catch
local unpack = table.unpack or unpack
local DB = "xdbtx_tree_spec"

describe("the transaction tree", function()
  local why = env.server_reason()
  if why then pending(why) return end
  if not os.getenv("XDBTX_TEST_URI2") or not os.getenv("XDBTX_TEST_URI3") then
    pending("XDBTX_TEST_URI2 and XDBTX_TEST_URI3 (three independent replica sets) are not set")
    return
  end

  local x = require "xdbtx"
  local URIS = { env.uri(), os.getenv("XDBTX_TEST_URI2"), os.getenv("XDBTX_TEST_URI3") }
  local APPS = { "tree_spec_1", "tree_spec_2", "tree_spec_3" }
  local cs = {}
  for k = 1, 3 do cs[k] = x.client(URIS[k], { app_name = APPS[k] }) end

  -- the documents of cluster k live in their own collection
  local function docs(k) return cs[k]:collection(DB, "docs" .. k) end
  local function total()
    local n = 0
    for k = 1, 3 do n = n + docs(k):count_documents {} end
    return n
  end

  local function arr(t) return setmetatable(t or {}, x.array_mt) end

  -- failCommand on cluster k's commitTransaction (or `cmd`) for this spec's client only
  local function fail(k, mode, data)
    data.appName = APPS[k]
    data.failCommands = data.failCommands or { "commitTransaction" }
    if data.errorLabels then data.errorLabels = arr(data.errorLabels) end
    env.failpoint(cs[k], mode, data)
  end

  before_each(function()
    for k = 1, 3 do
      env.failpoints_off(cs[k])
      docs(k):delete_many {}
    end
  end)
  after_each(function()
    for k = 1, 3 do env.failpoints_off(cs[k]) end
  end)

  --[[ build(shape, K, opts) -> tree, count: a shape is a list of child
  shapes ({} a leaf); node i (depth-first, parents first) runs on cluster
  ((i - 1) % K) + 1 and inserts { _id = path }; it checks that its parent's
  result is in the store. opts: fail_at = i (node i raises after its
  write), no_compensate = { [i] = true }, log = {} (actions and
  compensations appended in order). ]]
  local function build(shape, K, opts)
    opts = opts or {}
    local count = 0
    local function node(sh, path, parent)
      count = count + 1
      local i = count
      local k = (i - 1) % K + 1
      local coll = docs(k)
      local n = {
        client = cs[k], name = "n" .. i,
        action = function(store, s)
          assert(s == nil or s:client() == cs[k], "the action's session is its node's client's")
          if parent then assert(store[parent].i == parent and store["n" .. parent].i == parent) end
          if opts.log then opts.log[#opts.log + 1] = "run " .. i end
          coll:insert_one { _id = path }
          if opts.fail_at == i then error("failure at node " .. i) end
          return { i = i, path = path }
        end,
      }
      if not (opts.no_compensate and opts.no_compensate[i]) then
        n.compensate = function(store, s)
          assert(store[i].path == path, "the compensation gets the store")
          if opts.log then opts.log[#opts.log + 1] = "undo " .. i end
          if opts.compensate_fails and opts.compensate_fails[i] then error("undo failed at " .. i) end
          coll:delete_one { _id = path }
        end
      end
      if #sh > 0 then
        n.children = {}
        for j, ch in ipairs(sh) do n.children[j] = node(ch, path .. "." .. j, i) end
      end
      return n
    end
    return node(shape, "1", nil)
  end

  local function count_nodes(shape)
    local n = 1
    for _, ch in ipairs(shape) do n = n + count_nodes(ch) end
    return n
  end

  local function states(outcome)
    local t = {}
    for i, n in ipairs(outcome.nodes) do t[i] = n.state end
    return t
  end

  local SHAPES = {
    { "1", {} },
    { "1->1", { {} } },
    { "1->[1,1]", { {}, {} } },
    { "1->[1->[1,1], 1->[1,1]]", { { {}, {} }, { {}, {} } } },
  }

  describe("an action error at every position of every shape rolls everything back", function()
    for _, shape in ipairs(SHAPES) do
      for _, K in ipairs { 2, 3 } do
        local count = count_nodes(shape[2])
        for at = 1, count do
          it(("%s over %d clusters, failing at node %d"):format(shape[1], K, at), function()
            local tree = build(shape[2], K, { fail_at = at })
            local err = catch(x.run, tree)
            assert.is_true(x.is_error(err), tostring(err))
            assert.are.equal("action", err.phase)
            assert.are.equal("n" .. at, err.node)
            assert.matches("failure at node " .. at, err.message, 1, true)
            local out = err.outcome
            assert.are.equal("aborted", out.status)
            local want = {}
            for i = 1, count do want[i] = i <= at and "aborted" or "not_run" end
            assert.are.same(want, states(out))
            assert.is_not_nil(out.nodes[at].error)
            assert.are.equal(0, total())
          end)
        end
        it(("%s over %d clusters commits every node when nothing fails"):format(shape[1], K), function()
          local tree, n = build(shape[2], K), count_nodes(shape[2])
          local out = x.run(tree)
          assert.are.equal("committed", out.status)
          assert.are.equal(n, total())
          assert.are.equal(n, #out.nodes)
          for i = 1, n do assert.are.equal(i, out.store[i].i) end
        end)
      end
    end
  end)

  describe("the commit phase", function()
    -- 1 -> [1, 1] over 3 clusters: one node per cluster, commits in order 1, 2, 3
    local shape = { {}, {} }

    for _, mode in ipairs { "sequential", "parallel" } do
      it(mode .. ": a failed commit on every cluster: nothing applied, nothing compensated", function()
        for k = 1, 3 do fail(k, "alwaysOn", { errorCode = 8 }) end
        local log = {}
        local err = catch(x.run, build(shape, 3, { log = log }), { commit = mode })
        assert.are.equal("commit", err.phase)
        assert.are.equal("aborted", err.outcome.status)
        assert.are.same({ "aborted", "aborted", "aborted" }, states(err.outcome))
        assert.are.same({ "run 1", "run 2", "run 3" }, log)
        assert.are.equal(0, total())
      end)
    end

    it("sequential: a failed first commit aborts the rest, applies nothing and compensates nothing", function()
      fail(1, { times = 1 }, { errorCode = 8 })
      local log = {}
      local err = catch(x.run, build(shape, 3, { log = log }))
      assert.are.equal("commit", err.phase)
      assert.are.equal("n1", err.node)
      assert.are.equal("aborted", err.outcome.status)
      assert.are.same({ "aborted", "aborted", "aborted" }, states(err.outcome))
      assert.are.same({ "run 1", "run 2", "run 3" }, log)
      assert.are.equal(0, total())
    end)

    for _, k in ipairs { 2, 3 } do
      it(("sequential: commit %d fails after earlier ones succeeded: compensated, newest first"):format(k), function()
        fail(k, { times = 1 }, { errorCode = 8 })
        local log = {}
        local err = catch(x.run, build(shape, 3, { log = log }))
        assert.are.equal("commit", err.phase)
        assert.are.equal("n" .. k, err.node)
        local out = err.outcome
        assert.are.equal("compensated", out.status)
        local want, undo = {}, {}
        for i = 1, 3 do want[i] = i < k and "compensated" or "aborted" end
        for i = k - 1, 1, -1 do undo[#undo + 1] = "undo " .. i end
        assert.are.same(want, states(out))
        assert.are.same({ "run 1", "run 2", "run 3", unpack(undo) }, log)
        assert.are.equal(0, total())
      end)
    end

    it("parallel: one failed commit, the others committed: they are compensated", function()
      fail(2, { times = 1 }, { errorCode = 8 })
      local err = catch(x.run, build(shape, 3), { commit = "parallel" })
      assert.are.equal("compensated", err.outcome.status)
      assert.are.same({ "compensated", "aborted", "compensated" }, states(err.outcome))
      assert.are.equal(0, total())
    end)

    it("a committed node without compensate makes the outcome partial, and says which", function()
      fail(3, { times = 1 }, { errorCode = 8 })
      local err = catch(x.run, build(shape, 3, { no_compensate = { [2] = true } }))
      -- cluster 2 has no compensation, so it commits last: 1, 3, then 2
      assert.are.equal("n3", err.node)
      assert.are.equal("compensated", err.outcome.status)
      fail(2, { times = 1 }, { errorCode = 8 })
      err = catch(x.run, build(shape, 3, { no_compensate = { [2] = true, [3] = true } }))
      -- two clients without compensations: 1, then 2 and 3 in tree order; 2 fails,
      -- so only 1 had committed, and it was undone
      assert.are.equal("compensated", err.outcome.status)
      assert.are.same({ "compensated", "aborted", "aborted" }, states(err.outcome))
      fail(3, { times = 1 }, { errorCode = 8 })
      err = catch(x.run, build(shape, 3, { no_compensate = { [2] = true, [3] = true } }))
      assert.are.equal("partial", err.outcome.status)
      assert.are.same({ "compensated", "committed", "aborted" }, states(err.outcome))
      assert.are.equal(1, docs(2):count_documents {}) -- what was left, and the outcome says so
    end)

    it("ordering: the client without compensations commits last, so its failure leaves nothing", function()
      -- the root (cluster 1) cannot be undone; its child (cluster 2) can
      fail(1, { times = 1 }, { errorCode = 8 })
      local log = {}
      local err = catch(x.run, build({ {} }, 2, { no_compensate = { [1] = true }, log = log }))
      assert.are.equal("n1", err.node)
      -- cluster 2 committed first and was undone; in tree order cluster 1 would have failed first
      assert.are.same({ "aborted", "compensated" }, states(err.outcome))
      assert.are.equal("compensated", err.outcome.status)
      assert.are.same({ "run 1", "run 2", "undo 2" }, log)
      assert.are.equal(0, total())
    end)

    it("a compensation that fails is recorded and never replaces the commit's error", function()
      fail(3, { times = 1 }, { errorCode = 8 })
      local err = catch(x.run, build(shape, 3, { compensate_fails = { [1] = true } }))
      assert.are.equal("commit", err.phase)
      assert.are.equal("n3", err.node)
      assert.are.equal("partial", err.outcome.status)
      assert.are.same({ "compensation_failed", "compensated", "aborted" }, states(err.outcome))
      assert.matches("undo failed at 1", err.outcome.nodes[1].error.message, 1, true)
      assert.are.equal("compensate", err.outcome.nodes[1].error.phase)
      assert.are.equal(1, docs(1):count_documents {})
    end)

    it("an unknown commit result is retried until known", function()
      fail(2, { times = 2 }, { errorCode = 10107 }) -- NotWritablePrimary: UnknownTransactionCommitResult
      local retries, commits = {}, nil
      local off = x.on("retry", function(ev) retries[#retries + 1] = ev end)
      local off2 = x.on("commit", function(ev) commits = ev.commits end)
      local out = x.run(build(shape, 3))
      off()
      off2()
      assert.are.equal("committed", out.status)
      assert.are.equal(3, total())
      -- one retry event per commit sent again (the sends beyond one per
      -- cluster), naming the node and its error
      assert.is_true(#retries >= 1)
      assert.are.equal(commits - 3, #retries)
      for _, ev in ipairs(retries) do
        assert.are.equal("commit", ev.what)
        assert.are.equal("n2", ev.node)
        assert.are.equal(out.id, ev.tree)
        assert.are.equal(10107, ev.error.code)
        assert.is_true(ev.error:has_label("UnknownTransactionCommitResult"))
      end
    end)

    it("a commit result that never becomes known: status unknown, nothing compensated", function()
      fail(2, "alwaysOn", { errorCode = 10107 })
      local log = {}
      local now = require("xdbtx.core").now
      local t0 = now()
      local err = catch(x.run, build(shape, 3, { log = log }), { timeout = 1 })
      local elapsed = now() - t0
      assert.are.equal("unknown", err.outcome.status)
      assert.are.same({ "committed", "unknown", "aborted" }, states(err.outcome))
      assert.are.same({ "run 1", "run 2", "run 3" }, log)
      assert.is_true(err:has_label("UnknownTransactionCommitResult"))
      assert.is_true(elapsed >= 0.9 and elapsed < 10, "retried until the timeout: " .. elapsed)
    end)

    it("a transient error on the first commit reruns the whole tree", function()
      fail(1, { times = 1 }, { errorCode = 251, errorLabels = { "TransientTransactionError" } })
      local log = {}
      local out = x.run(build(shape, 3, { log = log }))
      assert.are.equal("committed", out.status)
      assert.are.equal(2, out.attempts)
      assert.are.same({ "run 1", "run 2", "run 3", "run 1", "run 2", "run 3" }, log)
      assert.are.equal(3, total())
    end)

    it("one commit per client is all the commit phase sends", function()
      local sent = {}
      local offs = {}
      for k = 1, 2 do
        sent[k] = {}
        offs[k] = cs[k]:on_command(function(ev)
          if ev.type == "started" and (ev.database_name == DB or ev.command_name == "commitTransaction") then
            table.insert(sent[k], ev.command_name)
          end
        end)
      end
      x.run(build({ { {} } }, 2)) -- 3 nodes over 2 clusters: 2 inserts on cluster 1, 1 on cluster 2
      for k = 1, 2 do offs[k]() end
      assert.are.same({ "insert", "insert", "commitTransaction" }, sent[1])
      assert.are.same({ "insert", "commitTransaction" }, sent[2])
    end)
  end)

  describe("running", function()
    it("a transient error mid-tree reruns the whole tree with an empty store", function()
      fail(2, { times = 1 }, { failCommands = { "insert" }, errorCode = 112,
        errorLabels = { "TransientTransactionError" } })
      local seen = {}
      local tree = build({ {} }, 2)
      local act = tree.action
      tree.action = function(store, s)
        seen[#seen + 1] = next(store) == nil
        return act(store, s)
      end
      local retries = {}
      local off = x.on("retry", function(ev) retries[#retries + 1] = ev end)
      local out = x.run(tree)
      off()
      assert.are.equal(2, out.attempts)
      assert.are.same({ true, true }, seen)
      assert.are.equal(1, #retries)
      assert.are.equal(out.id, retries[1].tree)
      assert.are.equal("n2", retries[1].node)
      assert.are.equal(2, total())
    end)

    it("actions may yield: the tree completes when resumed", function()
      local tree = build({ {} }, 2)
      local act = tree.children[1].action
      tree.children[1].action = function(store, s)
        coroutine.yield("paused")
        return act(store, s)
      end
      local co = coroutine.wrap(function() return x.run(tree) end)
      assert.are.equal("paused", co())
      assert.are.equal(0, total()) -- nothing committed while it waits
      local out = co()
      assert.are.equal("committed", out.status)
      assert.are.equal(2, total())
    end)

    it("operations on clients the tree holds are routed; others are a routing error", function()
      local outside = x.client(env.uri(), { app_name = "tree_spec_outside" })
      local err = catch(x.run, {
        client = cs[1], action = function()
          outside:collection(DB, "docs1"):insert_one { _id = "escape" }
        end,
      })
      assert.are.equal("action", err.phase)
      assert.are.equal("routing", err.operation_phase)
      assert.are.equal(0, total())
      x.run { client = cs[1], action = function()
        outside:collection(DB, "docs1"):insert_one({ _id = "outside" }, { session = false })
      end }
      assert.are.equal(1, docs(1):count_documents {})
    end)

    it("xdbtx.rollback in an action aborts the tree quietly", function()
      local out, reason, outcome = x.run {
        client = cs[1], action = function() docs(1):insert_one { _id = 1 } end,
        children = { { client = cs[2], action = function() x.rollback("not today") end } },
      }
      assert.is_nil(out)
      assert.are.equal("not today", reason)
      assert.are.equal("aborted", outcome.status)
      assert.are.equal(0, total())
    end)

    it("events: start, commit with the tree id; abort names the node; compensate per node", function()
      local evs = {}
      local offs = {}
      for _, name in ipairs { "start", "commit", "abort", "compensate" } do
        offs[#offs + 1] = x.on(name, function(ev) evs[#evs + 1] = ev end)
      end
      local out = x.run(build({ {} }, 2), { name = "evented" })
      for k = 1, 2 do docs(k):delete_many {} end
      fail(2, { times = 1 }, { errorCode = 8 })
      local err = catch(x.run, build({ {} }, 2))
      for _, off in ipairs(offs) do off() end
      local seq = {}
      for i, ev in ipairs(evs) do seq[i] = ev.event end
      assert.are.same({ "start", "commit", "start", "compensate", "abort" }, seq)
      assert.are.equal(out.id, evs[1].tree)
      assert.are.equal(out.id, evs[2].tree)
      assert.are.equal(err.outcome.id, evs[4].tree)
      assert.are.equal("n1", evs[4].node)
      assert.are.equal("compensated", evs[4].state)
      assert.are.equal("n2", evs[5].node)
      assert.are.equal("compensated", evs[5].outcome)
    end)

    it("tostring(outcome) draws the tree: a line per node, indented, with client and state", function()
      fail(2, { times = 1 }, { errorCode = 8 })
      local err = catch(x.run, build({ { {} } }, 2), { name = "drawn" })
      local lines = {}
      for l in tostring(err.outcome):gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.are.equal(4, #lines)
      assert.matches('^xdbtx "drawn" %S+: compensated %(1 attempt%)$', lines[1])
      assert.matches("^  1 n1%s+compensated%s+" .. cs[1]:id():gsub("%p", "%%%0"), lines[2])
      assert.matches("^    1%.1 n2%s+aborted%s+" .. cs[2]:id():gsub("%p", "%%%0") .. ".*UnknownError", lines[3])
      assert.matches("^      1%.1%.1 n3%s+compensated", lines[4])
    end)
  end)

  describe("checks before anything is sent", function()
    local ok_node = function() return { client = cs[1], action = function() end } end
    local cases = {
      { "an unknown node field", function()
          local t = ok_node()
          t.children = { ok_node(), { client = cs[2], actoin = print } }
          return t
        end, "children[2].actoin: unknown node field" },
      { "a missing client", function() return { action = print } end, "client must be an xdbtx Client, got nil" },
      { "a missing action", function()
          local t = ok_node()
          t.children = { { client = cs[2] } }
          return t
        end, "children[1].action must be a function" },
      { "a compensate that is not a function", function()
          local t = ok_node()
          t.compensate = "undo"
          return t
        end, "compensate must be a function" },
      { "duplicate names", function()
          local t = ok_node()
          t.name = "a"
          t.children = { ok_node(), { client = cs[2], action = print, name = "a" } }
          return t
        end, "children[2].name: duplicate name \"a\" (also node 1)" },
      { "children that are not a list", function()
          local t = ok_node()
          t.children = { x = ok_node() }
          return t
        end, "children must be a list of nodes" },
      { "a child that is not a node", function()
          local t = ok_node()
          t.children = { 5 }
          return t
        end, "children[1] must be a node table" },
    }
    for _, case in ipairs(cases) do
      it("refuses " .. case[1] .. ", naming the path", function()
        env.command_log(cs[1], true)
        local err = catch(x.run, case[2]())
        assert.are.equal("argument", err.phase)
        assert.matches(case[3], err.message, 1, true)
        assert.are.same({}, env.command_names(env.command_log(cs[1], true), DB))
      end)
    end
    local bad_opts = {
      { { commit = "eventually" }, "option 'commit' must be \"sequential\" or \"parallel\"" },
      { { mode = "yolo" }, "option 'mode' must be \"transaction\" or \"saga\"" },
      { { timeout = 0 / 0 }, "option 'timeout' must be a finite number" },
      { { retries = 3 }, "unknown option 'retries'" },
      { { read_concern = 5 }, "option 'read_concern' must be a level string" },
    }
    for _, case in ipairs(bad_opts) do
      it("refuses options: " .. case[2], function()
        local err = catch(x.run, ok_node(), case[1])
        assert.are.equal("argument", err.phase)
        assert.matches(case[2], err.message, 1, true)
      end)
    end
  end)

  describe("the flat form and the multi-client sandbox", function()
    it("xdbtx.transaction({ a, b }, fn) returns fn's results and commits both", function()
      local r1, r2 = x.transaction({ cs[1], cs[2] }, function(ss)
        assert.are.equal(cs[1], ss[1]:client())
        assert.are.equal(cs[2], ss[2]:client())
        docs(1):insert_one { _id = 1 }
        docs(2):insert_one { _id = 2 }
        return "a", "b"
      end)
      assert.are.same({ "a", "b" }, { r1, r2 })
      assert.are.equal(2, total())
    end)

    it("an error in fn: nothing applied, err.outcome per client", function()
      local err = catch(x.transaction, { cs[1], cs[2] }, function()
        docs(1):insert_one { _id = 1 }
        docs(2):insert_one { _id = 2 }
        error("no")
      end)
      assert.are.equal("action", err.phase)
      assert.are.equal("aborted", err.outcome.status)
      assert.are.same({ "aborted", "aborted" }, states(err.outcome))
      assert.are.equal(0, total())
    end)

    it("a failed second commit without compensations is partial, and says so", function()
      fail(2, { times = 1 }, { errorCode = 8 })
      local err = catch(x.transaction, { cs[1], cs[2] }, function()
        docs(1):insert_one { _id = 1 }
        docs(2):insert_one { _id = 2 }
      end)
      assert.are.equal("partial", err.outcome.status)
      assert.are.same({ "committed", "aborted" }, states(err.outcome))
    end)

    it("xdbtx.sandbox({ a, b }, fn) keeps nothing on either cluster and never commits", function()
      local n = x.sandbox({ cs[1], cs[2] }, function(ss)
        docs(1):insert_one { _id = 1 }
        docs(2):insert_one { _id = 2 }
        return docs(1):count_documents {} + docs(2):count_documents {}
      end)
      assert.are.equal(2, n)
      assert.are.equal(0, total())
      local err = catch(x.sandbox, { cs[1], cs[2] }, function(ss) ss[2]:commit() end)
      assert.matches("a sandbox never commits", err.message, 1, true)
    end)
  end)

  describe("the body of a tree cannot commit by itself", function()
    it("session:commit() in an action raises", function()
      local err = catch(x.run, { client = cs[1], action = function(store, s)
        docs(1):insert_one { _id = 1 }
        s:commit()
      end })
      assert.matches("the transaction tree commits its sessions itself", err.message, 1, true)
      assert.are.equal(0, total())
    end)
  end)
end)

describe("the transaction tree in saga mode", function()
  local why = env.server_reason()
  if why then pending(why) return end
  local su = os.getenv("XDBTX_TEST_STANDALONE_URI")
  if not su or su == "" then pending("XDBTX_TEST_STANDALONE_URI is not set") return end

  local x = require "xdbtx"
  local sa = x.client(su, { app_name = "tree_spec_saga" })
  local rs = x.client(env.uri(), { app_name = "tree_spec_saga" })
  local a, b = sa:collection(DB, "saga_a"), rs:collection(DB, "saga_b")

  before_each(function()
    a:delete_many {}
    b:delete_many {}
  end)

  -- fail_at: the node whose action raises (after its write; before it when
  -- `early`)
  local function saga(fail_at, log, early)
    local function node(i, client, coll, children)
      return {
        client = client, name = "s" .. i, children = children,
        action = function(store, s)
          assert(s == nil, "saga actions run without a session")
          log[#log + 1] = "run " .. i
          if early and fail_at == i then error("saga failure " .. i) end
          coll:insert_one { _id = i }
          if fail_at == i then error("saga failure " .. i) end
          return i
        end,
        compensate = function(store, s)
          log[#log + 1] = "undo " .. i
          coll:delete_one { _id = store[i] }
        end,
      }
    end
    -- 1 -> [2, 3]: the root and node 3 on the standalone server, node 2 on a replica set
    return node(1, sa, a, { node(2, rs, b), node(3, sa, a) })
  end

  it("a standalone server in transaction mode is an Error naming mode = \"saga\", before any command", function()
    local log = {}
    local err = catch(x.run, saga(nil, log))
    assert.matches('mode = "saga"', err.message, 1, true)
    assert.are.same({}, log)
  end)

  it("with no failure every write is applied", function()
    local log = {}
    local out = x.run(saga(nil, log), { mode = "saga" })
    assert.are.equal("committed", out.status)
    assert.are.equal(2, a:count_documents {})
    assert.are.equal(1, b:count_documents {})
  end)

  for at = 1, 3 do
    it("a failure at node " .. at .. " runs the completed nodes' compensations, newest first", function()
      local log = {}
      local err = catch(x.run, saga(at, log), { mode = "saga" })
      assert.are.equal("action", err.phase)
      assert.are.equal("s" .. at, err.node)
      local want = {}
      for i = 1, at do want[#want + 1] = "run " .. i end
      for i = at - 1, 1, -1 do want[#want + 1] = "undo " .. i end
      assert.are.same(want, log)
      -- the failing node had written, at once: it stays, and the outcome says so
      assert.are.equal("failed", err.outcome.nodes[at].state)
      assert.are.equal("partial", err.outcome.status)
      assert.are.equal(at == 2 and 0 or 1, a:count_documents {})
      assert.are.equal(at == 2 and 1 or 0, b:count_documents {})
    end)

    it("a failure at node " .. at .. " after its write, no other node undone: partial, and it raises", function()
      -- nodes before `at` have no compensate (they stay committed); the
      -- failing node's write stays too: the run must not say "committed"
      local tree = saga(at, {})
      local function strip(nd, i)
        if i < at then nd.compensate = nil end
        for k, c in ipairs(nd.children or {}) do strip(c, i + k) end
      end
      strip(tree, 1)
      if at == 1 then tree.children = nil end -- the failing node alone
      local events = {}
      local off = x.on("commit", function() events[#events + 1] = "commit" end)
      local ok, err = pcall(x.run, tree, { mode = "saga" })
      off()
      assert.is_false(ok)
      assert.are.equal("action", err.phase)
      assert.are.equal("partial", err.outcome.status)
      assert.are.equal("failed", err.outcome.nodes[at].state)
      assert.are.same({}, events)
      -- node i wrote one document; none was undone
      assert.are.equal(at, a:count_documents {} + b:count_documents {})
    end)

    it("a failure at node " .. at .. " before it sent anything: nothing of it stays", function()
      local log = {}
      local err = catch(x.run, saga(at, log, true), { mode = "saga" })
      assert.are.equal("aborted", err.outcome.nodes[at].state)
      assert.are.equal(at == 1 and "aborted" or "compensated", err.outcome.status)
      assert.are.equal(0, a:count_documents {} + b:count_documents {})
    end)
  end
end)
