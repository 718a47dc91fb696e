--[[
xdbtx - MongoDB transactions for Lua (the public module).

This file is the public face: it gathers the parts of the Lua layer, each a
module of its own under lua/xdbtx/, and the codec and error functions of
the C core (xdbtx.core), which it re-exports unchanged.

  xdbtx.util         Error values, argument checks
  xdbtx.events       xdbtx.on and listener reporting
  xdbtx.monitor      client:on_command
  xdbtx.context      the ambient context (per coroutine) and routing
  xdbtx.session      Session objects
  xdbtx.collection   Collection and Cursor objects, hooks
  xdbtx.database     Database objects
  xdbtx.client       Client objects
  xdbtx.attempt      the attempt/retry loop shared by every transaction kind
  xdbtx.transaction  client:transaction, with_transaction, sandbox, rollback
  xdbtx.outcome      what happened to each node of a tree
  xdbtx.tree         xdbtx.run (the transaction tree), the flat xdbtx.transaction
  xdbtx.journal      what a journalled run records
  xdbtx.recover      xdbtx.recover: finishing runs whose coordinator died

The layer holds the policy; the core holds the pointers. Every user function
is called from Lua, never from C, so all of them may yield. The listener
registries and the coroutine -> context table are the only module state.
]]

local core = require "xdbtx.core"
local E = require "xdbtx.events"
local C = require "xdbtx.context"
local S = require "xdbtx.session"
local Col = require "xdbtx.collection"
local Db = require "xdbtx.database"
local Cl = require "xdbtx.client"
local T = require "xdbtx.transaction"
local Tr = require "xdbtx.tree"
local R = require "xdbtx.recover"

local M = { _VERSION = "xdbtx scm" }

for _, k in ipairs {
  "encode", "decode", "to_json", "from_json", "null", "array_mt", "ordered", "object_id",
  "date", "timestamp", "decimal128", "binary", "uuid", "regex", "code", "minkey", "maxkey",
  "int32", "int64", "double", "type", "Error", "error", "is_error", "json_null",
} do
  M[k] = core[k]
end

M.client = Cl.client
M.on = E.on
M.in_transaction = C.in_transaction
M.bind = C.bind
M.session = T.session
M.rollback = T.rollback
M.sandbox = T.sandbox
M.run = Tr.run
M.transaction = Tr.transaction
M.recover = R.recover

-- Types, for the safe variant and for tests.
M.Client, M.Collection, M.Session, M.Cursor = Cl.Client, Col.Collection, S.Session, Col.Cursor
M.Database = Db.Database

return M
