-- examples/low_level.lua - explicit sessions: you start, commit and abort.
--
--   spec/server/with-servers lua5.4 examples/low_level.lua
--
-- client:transaction is the usual way (it retries); this is the layer under
-- it. Pass the session to each operation. A `<close>` session whose
-- transaction is still open is aborted when the variable goes out of scope.
package.path = "./lua/?.lua;" .. package.path
package.cpath = "./build/5.4/?.so;" .. package.cpath
local xdbtx = require "xdbtx"

local uri = assert(os.getenv("XDBTX_URI") or os.getenv("XDBTX_TEST_URI"),
  "set XDBTX_URI (or run under spec/server/with-servers)")
local client = xdbtx.client(uri)
local notes = client:collection("xdbtx_example", "notes")
notes:delete_many {}

-- 1. commit
local s <close> = client:start_session()
s:start_transaction { read_concern = "snapshot", write_concern = { w = "majority" } }
notes:insert_one({ _id = 1, text = "kept" }, { session = s })
print("inside, the transaction sees", notes:count_documents({}, { session = s }), "note(s)")
print("outside sees", notes:count_documents {}, "before the commit")
s:commit()
print("after commit:", notes:count_documents {})

-- 2. abort
s:start_transaction()
notes:insert_one({ _id = 2, text = "dropped" }, { session = s })
s:abort()
print("after abort:", notes:count_documents {})

-- 3. an error: the server's labels tell what to do
s:start_transaction()
local ok, err = pcall(notes.insert_one, notes, { _id = 1 }, { session = s })
print("duplicate:", ok, err.name, err.code, "transient?", err:has_label("TransientTransactionError"))
s:abort()

-- 4. the same session through the convenient API (retries included)
s:with_transaction(function() notes:insert_one { _id = 3, text = "via with_transaction" } end)

-- 5. leaving a scope with an open transaction aborts it
do
  local t <close> = client:start_session()
  t:start_transaction()
  notes:insert_one({ _id = 4, text = "never committed" }, { session = t })
end
local ids = {}
for doc in notes:find({}, { sort = { _id = 1 } }) do ids[#ids + 1] = doc._id end
print("final ids:", table.concat(ids, ","))
assert(table.concat(ids, ",") == "1,3")
print("ok")
