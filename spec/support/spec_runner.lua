--[[
spec/support/spec_runner.lua - runs MongoDB's legacy-format transaction spec
tests (../shared/specs/{transactions-convenient-api,transactions}/*.json)
through the public Lua API.

For one test: drop and reload the collection, set the failPoint, start
session0/session1 (client:start_session), run the operations (names mapped
to the Lua API: withTransaction -> session:with_transaction, insertOne ->
collection:insert_one, ...), end the sessions, then compare the
command-started events seen by client:on_command and the collection's final
data. An operation's collectionOptions become the Collection's defaults
(client:collection(db, name, opts)). Only what needs a sharded cluster makes
a test "skipped", with the reason, never silently passed.

  runner.load(path)                 -> decoded file (xdbtx.from_json)
  runner.file_skip(name, file)      -> reason | nil
  runner.run_test(x, uri, file, t)  -> "pass" | "skip", reason; raises on failure
]]

local R = {}

local SKIP_FILES = {
  ["mongos-pin-auto.json"] = "needs a sharded cluster (mongos pinning)",
  ["mongos-recovery-token.json"] = "needs a sharded cluster (recovery token)",
  ["pin-mongos.json"] = "needs a sharded cluster (mongos pinning)",
}

-- operations the Lua API has no counterpart for
local UNSUPPORTED = {
  targetedFailPoint = "needs a sharded cluster (a failpoint on the mongos a session is pinned to)",
  assertSessionPinned = "needs a sharded cluster (mongos pinning)",
  assertSessionUnpinned = "needs a sharded cluster (mongos pinning)",
}

local CLIENT_OPTIONS = {
  readConcernLevel = true, w = true, retryWrites = true, readPreference = true,
  heartbeatFrequencyMS = true, appname = true, socketTimeoutMS = true,
}

function R.load(x, path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return x.from_json(s)
end

function R.file_skip(name, file)
  if SKIP_FILES[name] then return SKIP_FILES[name] end
  local ok = false
  for _, r in ipairs(file.runOn or { { topology = { "replicaset" } } }) do
    for _, t in ipairs(r.topology or { "replicaset" }) do
      if t == "replicaset" then ok = true end
    end
  end
  if not ok then return "runOn has no replicaset topology" end
  return nil
end

local function walk_ops(ops, f)
  for _, op in ipairs(ops or {}) do
    f(op)
    local cb = op.arguments and op.arguments.callback
    if cb then walk_ops(cb.operations, f) end
  end
end

local function test_skip(file, t)
  if t.skipReason then return t.skipReason end
  if t.collectionOptions or t.databaseOptions then
    return "test-level collection/database options are not mapped"
  end
  for k in pairs(t.clientOptions or {}) do
    if not CLIENT_OPTIONS[k] then return "client option " .. k .. " is not mapped" end
  end
  local why
  walk_ops(t.operations, function(op)
    if why then return end
    if UNSUPPORTED[op.name] then why = UNSUPPORTED[op.name] return end
  end)
  return why
end

-- ---------------------------------------------------------------- matching

local function is_array(x, v)
  return type(v) == "table" and getmetatable(v) == x.array_mt
end

local function numeq(a, b)
  return type(a) == "number" and type(b) == "number" and a == b
end

-- match(expected, actual, path, ctx): expected documents are subsets of
-- actual ones (extra keys allowed unless ctx.exact), null means "absent",
-- 42 means "any value", "session0"/"session1" as lsid means that session.
local function match(x, exp, act, path, ctx)
  if exp == x.null then
    if act ~= nil and act ~= x.null then
      if ctx.null_is_absent then error(path .. ": expected absent, got " .. x.to_json(act), 0) end
    end
    return
  end
  if ctx.placeholder42 and exp == 42 and act ~= nil then return end
  if type(exp) == "table" and getmetatable(exp) == nil or is_array(x, exp) then
    if type(act) ~= "table" then
      error(path .. ": expected " .. x.to_json(exp) .. ", got " .. tostring(act and x.to_json(act)), 0)
    end
    if is_array(x, exp) then
      if #exp ~= #act then
        error(("%s: expected %d elements, got %d (%s)"):format(path, #exp, #act, x.to_json(act)), 0)
      end
      for i = 1, #exp do match(x, exp[i], act[i], path .. "[" .. i .. "]", ctx) end
      return
    end
    for k, v in pairs(exp) do
      match(x, v, act[k], path .. "." .. k, ctx)
    end
    if ctx.exact then
      for k in pairs(act) do
        if exp[k] == nil then error(path .. ": unexpected field " .. k, 0) end
      end
    end
    return
  end
  if numeq(exp, act) then return end
  if exp ~= act then
    error(("%s: expected %s, got %s"):format(path, tostring(exp), tostring(act)), 0)
  end
end

local function same_lsid(x, a, b)
  return type(a) == "table" and type(b) == "table" and a.id ~= nil and x.to_json(a.id) == x.to_json(b.id)
end

-- ---------------------------------------------------------------- operations

-- "Secondary" -> "secondary", "PrimaryPreferred" -> "primaryPreferred"
local function rp_mode(rp)
  return rp and rp.mode and (rp.mode:sub(1, 1):lower() .. rp.mode:sub(2))
end

local function map_opts(args, session)
  local o = {}
  if session ~= nil then o.session = session end
  if args.sort then o.sort = args.sort end
  if args.projection then o.projection = args.projection end
  if args.limit then o.limit = args.limit end
  if args.skip then o.skip = args.skip end
  if args.batchSize then o.batch_size = args.batchSize end
  if args.upsert ~= nil then o.upsert = args.upsert end
  if args.returnDocument then o.return_document = args.returnDocument:lower() end
  if args.maxTimeMS then o.max_time_ms = args.maxTimeMS end
  return o
end

local function txn_opts(o)
  if not o then return nil end
  local t = {}
  if o.readConcern then t.read_concern = o.readConcern.level end
  if o.writeConcern then
    local wc = {}
    for k, v in pairs(o.writeConcern) do wc[k] = v end
    t.write_concern = wc
  end
  if o.readPreference then t.read_preference = rp_mode(o.readPreference) end
  if o.maxCommitTimeMS then t.max_commit_time_ms = o.maxCommitTimeMS end
  return t
end

local function update_result(r)
  return {
    matchedCount = r.matched_count, modifiedCount = r.modified_count,
    upsertedCount = r.upserted_id ~= nil and 1 or 0, upsertedId = r.upserted_id,
  }
end

-- An operation's collectionOptions as the Collection's own defaults (a
-- transaction's options win over them inside it, as the spec requires).
-- databaseOptions only reach runCommand, which ignores them, as drivers do.
local function collection_defaults(co)
  local d = {}
  if co.writeConcern then d.write_concern = co.writeConcern end
  if co.readConcern then d.read_concern = co.readConcern.level end
  if co.readPreference then d.read_preference = rp_mode(co.readPreference) end
  return d
end

-- bulkWrite requests: { name = "updateOne", arguments = {...} } -> { update_one = {...} }
local BULK_KINDS = {
  insertOne = "insert_one", updateOne = "update_one", updateMany = "update_many",
  replaceOne = "replace_one", deleteOne = "delete_one", deleteMany = "delete_many",
}

local function bulk_requests(list)
  local out = {}
  for i, r in ipairs(list) do
    local kind = BULK_KINDS[r.name]
    if not kind then error("SKIP:bulkWrite request " .. tostring(r.name) .. " is not mapped", 0) end
    local spec = {}
    for k, v in pairs(r.arguments) do
      spec[({ arrayFilters = "array_filters" })[k] or k] = v
    end
    out[i] = { [kind] = spec }
  end
  return out
end

-- The Lua result in the spec's shape: ids keyed by 0-based position.
local function bulk_result(r)
  local ins, ups = {}, {}
  for i, id in pairs(r.inserted_ids or {}) do ins[tostring(i - 1)] = id end
  for i, id in pairs(r.upserted_ids) do ups[tostring(i - 1)] = id end
  return {
    deletedCount = r.deleted_count, insertedCount = r.inserted_count, insertedIds = ins,
    matchedCount = r.matched_count, modifiedCount = r.modified_count,
    upsertedCount = r.upserted_count, upsertedIds = ups,
  }
end

local function has(list, v)
  for _, e in ipairs(list) do
    if e == v then return true end
  end
  return false
end

local function index_names(coll)
  local out = {}
  for _, ix in ipairs(coll:list_indexes({ session = false })) do out[#out + 1] = ix.name end
  return out
end

local run_ops

local function run_op(S, op)
  local x = S.x
  local a = op.arguments or {}
  local session = a.session and S.sessions[a.session]
  if a.session and not session then error("unknown session " .. tostring(a.session), 0) end
  local c = S.coll
  local n = op.name
  if op.collectionOptions then
    c = S.client:collection(S.db, S.cname, collection_defaults(op.collectionOptions))
  end
  if op.object == "collection" then
    local o = map_opts(a, session)
    if n == "insertOne" then
      return { insertedId = c:insert_one(a.document, o).inserted_id }
    elseif n == "insertMany" then
      local r = c:insert_many(a.documents, o)
      local ids = {}
      for i, id in ipairs(r.inserted_ids or {}) do ids[tostring(i - 1)] = id end
      return { insertedIds = ids }
    elseif n == "updateOne" then return update_result(c:update_one(a.filter, a.update, o))
    elseif n == "updateMany" then return update_result(c:update_many(a.filter, a.update, o))
    elseif n == "replaceOne" then return update_result(c:replace_one(a.filter, a.replacement, o))
    elseif n == "deleteOne" then return { deletedCount = c:delete_one(a.filter, o).deleted_count }
    elseif n == "deleteMany" then return { deletedCount = c:delete_many(a.filter, o).deleted_count }
    elseif n == "find" then return c:find(a.filter or {}, o):all()
    elseif n == "aggregate" then return c:aggregate(a.pipeline, o):all()
    elseif n == "countDocuments" then return c:count_documents(a.filter or {}, o)
    elseif n == "findOneAndUpdate" then return c:find_one_and_update(a.filter, a.update, o)
    elseif n == "findOneAndReplace" then return c:find_one_and_replace(a.filter, a.replacement, o)
    elseif n == "findOneAndDelete" then return c:find_one_and_delete(a.filter, o)
    elseif n == "distinct" then return c:distinct(a.fieldName, a.filter, o)
    elseif n == "bulkWrite" then
      if a.options and a.options.ordered ~= nil then o.ordered = a.options.ordered end
      return bulk_result(c:bulk_write(bulk_requests(a.requests), o))
    elseif n == "createIndex" then
      o.name = a.name
      return c:create_index(a.keys, o)
    elseif n == "count" then
      -- The deprecated count command, which xdbtx does not wrap (it offers
      -- count_documents and estimated_document_count): sent as written
      -- through db:command, which is what these tests check (a transaction
      -- refuses it).
      local cmd = { { "count", S.cname } }
      if a.filter then cmd[2] = { "query", a.filter } end
      return S.client:database(S.db):command(x.ordered(cmd), { session = session })
    end
  elseif op.object == "database" and n == "dropCollection" then
    return S.client:database(S.db):collection(a.collection):drop({ session = session })
  elseif op.object == "database" and n == "createCollection" then
    -- xdbtx has no create_collection helper: the create command as written
    return S.client:database(S.db):command({ create = a.collection }, { session = session })
  elseif op.object == "database" and n == "runCommand" then
    local cmd = a.command
    local name = a.command_name or op.command_name
    local list = { { name, cmd[name] } }
    for k, v in pairs(cmd) do
      if k ~= name then list[#list + 1] = { k, v } end
    end
    local o = { session = session, read_preference = rp_mode(a.readPreference) }
    return S.client:command(S.db, x.ordered(list), o)
  elseif op.object == "session0" or op.object == "session1" then
    local s = S.sessions[op.object]
    if n == "startTransaction" then return s:start_transaction(txn_opts(a.options))
    elseif n == "commitTransaction" then return s:commit()
    elseif n == "abortTransaction" then return s:abort()
    elseif n == "withTransaction" then
      return s:with_transaction(function() run_ops(S, a.callback.operations, true) end,
        txn_opts(a.options))
    end
  elseif op.object == "testRunner" then
    if n == "failPoint" then
      local fp = a.failPoint
      S.client:command("admin", x.ordered {
        { "configureFailPoint", fp.configureFailPoint }, { "mode", fp.mode }, { "data", fp.data },
      }, { session = false })
      S.failpoint = true
      return nil
    elseif n == "assertCollectionExists" or n == "assertCollectionNotExists" then
      -- the runner's own commands are not the test's: not recorded
      S.muted = true
      local names = S.client:database(a.database):list_collection_names(nil, { session = false })
      S.muted = false
      if has(names, a.collection) ~= (n == "assertCollectionExists") then
        error(("%s: %s.%s (collections: %s)"):format(n, a.database, a.collection,
          table.concat(names, ", ")), 0)
      end
      return nil
    elseif n == "assertIndexExists" or n == "assertIndexNotExists" then
      S.muted = true
      local names = index_names(S.client:collection(a.database, a.collection))
      S.muted = false
      if has(names, a.index) ~= (n == "assertIndexExists") then
        error(("%s: %s on %s.%s (indexes: %s)"):format(n, a.index, a.database, a.collection,
          table.concat(names, ", ")), 0)
      end
      return nil
    elseif n == "assertSessionTransactionState" then
      local want = ({ none = "none", starting = "starting", in_progress = "in_progress",
                      committed = "committed", aborted = "aborted" })[a.state]
      match(x, want, S.sessions[a.session]:state(), "session state", {})
      return nil
    end
  end
  error("SKIP:operation " .. op.object .. "." .. n .. " is not mapped", 0)
end

local function expects_error(r)
  return type(r) == "table" and getmetatable(r) == nil and (r.errorContains ~= nil or r.errorCodeName ~= nil
    or r.errorLabelsContain ~= nil or r.errorLabelsOmit ~= nil or r.errorCode ~= nil)
end

local function check_error(x, op, err)
  local r = op.result
  local msg = type(err) == "table" and tostring(err.message) or tostring(err)
  if type(r) ~= "table" then return end
  if r.errorContains then
    if not msg:lower():find(r.errorContains:lower(), 1, true) then
      error(op.name .. ": error '" .. msg .. "' does not contain '" .. r.errorContains .. "'", 0)
    end
  end
  if r.errorCodeName then
    local name = type(err) == "table" and err.name
    if name ~= r.errorCodeName then
      error(op.name .. ": error code name " .. tostring(name) .. ", expected " .. r.errorCodeName ..
        " (" .. msg .. ")", 0)
    end
  end
  if r.errorCode and not (type(err) == "table" and err.code == r.errorCode) then
    error(op.name .. ": error code " .. tostring(type(err) == "table" and err.code) .. ", expected " ..
      r.errorCode, 0)
  end
  for _, l in ipairs(r.errorLabelsContain or {}) do
    if not (type(err) == "table" and err.labels and err.labels[l]) then
      error(op.name .. ": error lacks label " .. l .. " (" .. msg .. ")", 0)
    end
  end
  for _, l in ipairs(r.errorLabelsOmit or {}) do
    if type(err) == "table" and err.labels and err.labels[l] then
      error(op.name .. ": error has label " .. l .. " (" .. msg .. ")", 0)
    end
  end
end

-- Run a list of operations. Inside a withTransaction callback, an error
-- (expected or not) is re-raised so the callback fails as the test means.
function run_ops(S, ops, in_callback)
  local x = S.x
  for _, op in ipairs(ops) do
    local ok, res = pcall(run_op, S, op)
    if not ok and type(res) == "string" and res:sub(1, 5) == "SKIP:" then error(res, 0) end
    local want_error = op.error or expects_error(op.result)
    if want_error then
      if ok then error(op.name .. ": expected an error, got success", 0) end
      check_error(x, op, res)
      if in_callback then error(res, 0) end
    elseif not ok then
      if in_callback then error(res, 0) end
      error(op.name .. ": unexpected error: " .. tostring(res), 0)
    elseif op.result ~= nil and op.name ~= "withTransaction" then
      match(x, op.result, res, op.name .. " result", {})
    end
  end
end

-- ---------------------------------------------------------------- a test

-- The test's clientOptions as URI parameters. Server selection is capped at
-- 3 s so that tests expecting a read-preference error do not wait 30 s.
local function with_params(uri, opts)
  opts = opts or {}
  local parts = { "serverSelectionTimeoutMS=3000" }
  for k, v in pairs(opts) do parts[#parts + 1] = k .. "=" .. tostring(v) end
  table.sort(parts)
  return uri .. (uri:find("?", 1, true) and "&" or "/?") .. table.concat(parts, "&")
end

local function session_opts(o)
  if not o then return nil end
  local out = {}
  if o.defaultTransactionOptions then
    out.default_transaction_options = txn_opts(o.defaultTransactionOptions)
  end
  if o.causalConsistency ~= nil then out.causal_consistency = o.causalConsistency end
  return out
end

function R.run_test(x, uri, file, t)
  local why = test_skip(file, t)
  if why then return "skip", why end
  local db, cname = file.database_name, file.collection_name
  local client = x.client(with_params(uri, t.clientOptions))
  local S = { x = x, client = client, db = db, cname = cname, sessions = {} }
  pcall(client.command, client, "admin", { killAllSessions = setmetatable({}, x.array_mt) },
    { session = false })
  S.coll = client:collection(db, cname)
  -- Setup: drop and reload. A write of the previous test that the server
  -- acknowledged before applying (w:0) can land after the drop; then the
  -- reload meets a duplicate, and the setup is simply done again.
  for attempt = 1, 5 do
    pcall(client.command, client, db, { drop = cname }, { session = false })
    if not (file.data and #file.data > 0) then break end
    local ok, err = pcall(S.coll.insert_many, S.coll, file.data, { session = false })
    if ok then break end
    if attempt == 5 or not (x.is_error(err) and err.code == 11000) then error(err, 0) end
    os.execute("sleep " .. 0.05 * attempt)
  end
  if t.failPoint then
    local fp = t.failPoint
    client:command("admin", x.ordered {
      { "configureFailPoint", fp.configureFailPoint }, { "mode", fp.mode }, { "data", fp.data },
    }, { session = false })
    S.failpoint = true
  end

  local events = {}
  local off = client:on_command(function(ev)
    if ev.type == "started" and not S.muted then events[#events + 1] = ev end
  end)
  local lsids = {}
  local ok, err = pcall(function()
    for _, name in ipairs { "session0", "session1" } do
      local so = t.sessionOptions and t.sessionOptions[name]
      local s = client:start_session(session_opts(so))
      S.sessions[name] = s
      lsids[name] = s:id()
    end
    run_ops(S, t.operations, false)
  end)
  for _, name in ipairs { "session0", "session1" } do
    if S.sessions[name] then pcall(S.sessions[name].close, S.sessions[name]) end
  end
  off()
  if S.failpoint then
    pcall(client.command, client, "admin",
      x.ordered { { "configureFailPoint", "failCommand" }, { "mode", "off" } }, { session = false })
  end
  if not ok then
    if type(err) == "string" and err:sub(1, 5) == "SKIP:" then return "skip", err:sub(6) end
    error(err, 0)
  end

  -- expectations: command-started events, in order
  if t.expectations then
    local seen = {}
    for _, ev in ipairs(events) do
      local n = ev.command_name
      if n ~= "killAllSessions" and n ~= "configureFailPoint" and n ~= "endSessions" then
        seen[#seen + 1] = ev
      end
    end
    local offsets = {}
    for i, e in ipairs(t.expectations) do
      local want = e.command_started_event
      local got = seen[i]
      if not got then
        error(("expectation %d: expected %s, no more events"):format(i, want.command_name), 0)
      end
      if got.command_name ~= want.command_name then
        error(("expectation %d: expected %s, got %s"):format(i, want.command_name, got.command_name), 0)
      end
      if want.database_name and got.database_name ~= want.database_name then
        error(("expectation %d: database %s, got %s"):format(i, want.database_name, got.database_name), 0)
      end
      local cmd = got.command or {}
      for k, v in pairs(want.command) do
        local path = ("expectation %d (%s).%s"):format(i, want.command_name, k)
        if k == "lsid" then
          if not same_lsid(x, lsids[v], cmd.lsid) then error(path .. ": not " .. v .. "'s lsid", 0) end
        elseif k == "txnNumber" and type(v) == "number" and type(cmd.txnNumber) == "number" then
          -- libmongoc reuses pooled server sessions, so txnNumbers continue
          -- from earlier tests: compare them relative to the first one seen
          local who = tostring(want.command.lsid)
          offsets[who] = offsets[who] or (cmd.txnNumber - v)
          if cmd.txnNumber - v ~= offsets[who] then
            error(("%s: expected %d (+%d), got %d"):format(path, v, offsets[who], cmd.txnNumber), 0)
          end
        else
          match(x, v, cmd[k], path, { null_is_absent = true, placeholder42 = true })
        end
      end
    end
    if #seen > #t.expectations then
      error(("expected %d command events, got %d (extra: %s)"):format(#t.expectations, #seen,
        seen[#t.expectations + 1].command_name), 0)
    end
  end

  -- outcome: the collection's final contents
  local outcome = t.outcome and t.outcome.collection
  if outcome then
    local oc = outcome.name and client:collection(db, outcome.name) or S.coll
    local docs = oc:find({}, { sort = { _id = 1 }, session = false, read_preference = "primary" }):all()
    match(x, setmetatable(outcome.data, x.array_mt), docs, "outcome.collection.data", { exact = true })
  end
  return "pass"
end

return R
