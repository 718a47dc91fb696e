"""xdbtx-testd: a MongoDB-compatible test server with real transaction semantics.

Modules: wire (OP_QUERY/OP_MSG framing), server (sockets, threads, main), cluster (one
emulated replica set: dispatch, locks, transactions), sessions (lsid/txnNumber rules),
storage (multi-version documents), commands (command handlers), failpoints
(failCommand), errors (codes and labels), engine (query/update/aggregation semantics).
"""
