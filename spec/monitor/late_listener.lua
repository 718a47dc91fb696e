-- spec/monitor/late_listener.lua URI DB - run by spec/client_spec.lua, once
-- with command callbacks per client (the default with libmongoc 1.23) and
-- once with XDBTX_POOL_APM=1 (callbacks on the whole pool). A listener that
-- subscribes while a session and a cursor already hold their clients must
-- see their next commands; nothing is seen before it or after it leaves.
-- Prints the command names seen, one line, space-separated.
local xdbtx = require "xdbtx"
local uri, db = arg[1], arg[2]
local client = xdbtx.client(uri)
local coll = client:collection(db, "late_listener")
coll:delete_many {}
coll:insert_many { { _id = 1 }, { _id = 2 }, { _id = 3 } }

local s = client:start_session()
s:start_transaction()
coll:insert_one({ _id = 10 }, { session = s }) -- before any listener: not seen
local cur = coll:find({}, { batch_size = 1 })  -- holds its client from here
cur:next()

local seen = {}
local off = client:on_command(function(ev)
  if ev.type == "started" then seen[#seen + 1] = ev.command_name end
end)
coll:insert_one({ _id = 11 }, { session = s }) -- the session's client, popped before
s:commit()
cur:next()                                     -- a getMore on the cursor's client
cur:close()                                    -- killCursors
coll:count_documents {}                        -- a newly popped client
off()
coll:insert_one { _id = 12 }                   -- after: not seen
s:close()
io.write(table.concat(seen, " "), "\n")
