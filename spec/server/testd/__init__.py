"""xdbtx-testd: a MongoDB-compatible test server with real transaction semantics.

Modules: wire (OP_QUERY/OP_MSG framing), server (sockets, threads, main), cluster (one
emulated replica set: dispatch, locks, transactions), sessions (lsid/txnNumber rules),
storage (multi-version documents), commands (the command registry and shared helpers;
handlers in cmd_write, cmd_read, cmd_ddl, cmd_admin), failpoints
(failCommand), errors (codes and labels), engine (query/update/aggregation semantics).
"""
