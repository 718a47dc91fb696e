"""Transaction, session and administrative commands: commit/abortTransaction,
endSessions/killSessions/killAllSessions, failpoints, parameters, diagnostics, and the
xdbtx* test commands.
"""

import os
import time

from bson.int64 import Int64
from bson.son import SON

from . import sessions as sess_mod
from .cluster import VERSION, now_ms
from .commands import as_bool, command, ok, require_admin
from .errors import CommandError


# ---------------------------------------------------------------- transactions and sessions

@command("commitTransaction")
def cmd_commit(ctx, cmd):
    require_admin(ctx, "commitTransaction")
    txn = ctx.txn
    if txn is None:
        raise CommandError(50768, "commitTransaction must be run within a transaction")
    if txn.state == sess_mod.ABORTED:
        # aborted after checkout (killSessions or the reaper while a failpoint blocked us)
        raise CommandError(251, "Transaction with { txnNumber: %d } has been aborted."
                           % txn.number)
    if txn.state == sess_mod.IN_PROGRESS:
        new_indexes = txn.new_indexes
        ctx.cluster.commit_txn(txn)
        for ns, specs in new_indexes.items():
            coll = ctx.catalog.colls.get(ns)
            if coll is not None:
                have = [i["name"] for i in coll.indexes]
                coll.indexes = coll.indexes + [s for s in specs if s["name"] not in have]
    return ok()


@command("abortTransaction")
def cmd_abort(ctx, cmd):
    require_admin(ctx, "abortTransaction")
    txn = ctx.txn
    if txn is None:
        raise CommandError(50768, "abortTransaction must be run within a transaction")
    if txn.state == sess_mod.COMMITTED:
        raise CommandError(256, "Transaction %d has been committed." % txn.number)
    if txn.state == sess_mod.IN_PROGRESS:
        ctx.cluster.abort_txn(txn, "abortTransaction")
    return ok()


def sessions_named(ctx, name):
    """The existing sessions an endSessions/killSessions command names (validated like
    mongod's parser: an array of {id: UUID} documents)."""
    lsids = ctx.cmd.get(name)
    if not isinstance(lsids, list):
        raise CommandError(14, "BSON field '%s.%s' is the wrong type, expected type 'array'"
                           % (name, name))
    found = []
    for lsid in lsids:
        if not isinstance(lsid, dict):
            raise CommandError(14, "BSON field '%s.%s' must contain documents" % (name, name))
        if "id" not in lsid:
            raise CommandError(40414, "BSON field '%s.id' is missing but a required field"
                               % name)
        if getattr(lsid["id"], "subtype", None) != 4:
            raise CommandError(14, "BSON field '%s.id' is the wrong type, expected a UUID"
                               % name)
        s = ctx.cluster.sessions.get(sess_mod.lsid_key(lsid))
        if s is not None:
            found.append(s)
    return found


def kill_session_cursors(ctx, key):
    for cid in [cid for cid, c in ctx.cluster.cursors.items() if c.session_key == key]:
        del ctx.cluster.cursors[cid]


def kill_sessions(ctx, found):
    """mongod's killSessions: interrupt the session's commands in flight (they fail with
    Interrupted, 11601: cluster.OpContext.check_interrupted), abort its open transaction
    (releasing its documents) and kill its cursors. The session itself lives on: its
    txnNumber and retryable-write history stay, and later commands may use it again."""
    for s in found:
        s.kills += 1
        ctx.cluster.abort_session_txn(s, "session killed")
        kill_session_cursors(ctx, s.key)


@command("endSessions")
def cmd_end_sessions(ctx, cmd):
    # mongod only marks the sessions as ending; its next session refresh (every
    # logicalSessionRefreshMillis, 5 minutes) drops their records and kills their
    # cursors, and nothing aborts an open transaction: that is left to killSessions or
    # the transactionLifetimeLimitSeconds reaper. Here the cursors go at once.
    for s in sessions_named(ctx, "endSessions"):
        kill_session_cursors(ctx, s.key)
    return ok()


@command("killSessions")
def cmd_kill_sessions(ctx, cmd):
    found = sessions_named(ctx, "killSessions")
    if not cmd.get("killSessions"):
        found = list(ctx.cluster.sessions.values())    # [] kills every session (no auth)
    kill_sessions(ctx, found)
    return ok()


@command("killAllSessions", "killAllSessionsByPattern")
def cmd_kill_all_sessions(ctx, cmd):
    kill_sessions(ctx, list(ctx.cluster.sessions.values()))
    ctx.cluster.cursors.clear()
    return ok()


@command("refreshSessions")
def cmd_refresh_sessions(ctx, cmd):
    return ok()


@command("startSession")
def cmd_start_session(ctx, cmd):
    import uuid
    from bson.binary import Binary
    return SON([("id", SON([("id", Binary(uuid.uuid4().bytes, 4))])), ("timeoutMinutes", 30),
                ("ok", 1.0)])


# ---------------------------------------------------------------- admin and diagnostics

@command("ping")
def cmd_ping(ctx, cmd):
    return ok()


@command("buildInfo", "buildinfo")
def cmd_build_info(ctx, cmd):
    return SON([("version", VERSION), ("gitVersion", "0000000000000000000000000000000000000000"),
                ("versionArray", [6, 0, 0, 0]), ("bits", 64), ("debug", False),
                ("maxBsonObjectSize", 16777216), ("storageEngines", ["xdbtx-memory"]),
                ("javascriptEngine", "none"), ("modules", []), ("ok", 1.0)])


@command("whatsmyuri")
def cmd_whatsmyuri(ctx, cmd):
    return SON([("you", "%s:%d" % ctx.conn.peer[:2]), ("ok", 1.0)])


@command("connectionStatus")
def cmd_connection_status(ctx, cmd):
    return SON([("authInfo", SON([("authenticatedUsers", []), ("authenticatedUserRoles", [])])),
                ("ok", 1.0)])


@command("serverStatus")
def cmd_server_status(ctx, cmd):
    cl = ctx.cluster
    open_txns = len(cl.open_txns())
    return SON([
        ("host", cl.me), ("version", VERSION), ("process", "xdbtx-testd"),
        ("pid", Int64(os.getpid())),
        ("uptime", float(int(time.time() - cl.started))),
        ("uptimeMillis", Int64(int((time.time() - cl.started) * 1000))), ("localTime", now_ms()),
        ("connections", SON([("current", cl.open_connections), ("available", 100000),
                             ("totalCreated", cl.conn_counter)])),
        ("transactions", SON([("currentActive", open_txns), ("currentOpen", open_txns),
                              ("totalStarted", Int64(cl.stats["totalStarted"])),
                              ("totalCommitted", Int64(cl.stats["totalCommitted"])),
                              ("totalAborted", Int64(cl.stats["totalAborted"]))])),
        ("ok", 1.0)])


@command("configureFailPoint")
def cmd_configure_fail_point(ctx, cmd):
    require_admin(ctx, "configureFailPoint")
    count = ctx.cluster.failpoints.configure(cmd)
    return SON([("count", count), ("ok", 1.0)])


PARAMS = ("transactionLifetimeLimitSeconds",)


@command("setParameter")
def cmd_set_parameter(ctx, cmd):
    require_admin(ctx, "setParameter")
    reply = SON()
    for k, v in cmd.items():
        if k in ("setParameter", "$db", "lsid", "$clusterTime", "$readPreference", "comment"):
            continue
        if k not in PARAMS:
            raise CommandError(2, "attempted to set unrecognized parameter [%s], use help:true "
                                  "to see options" % k)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 1:
            raise CommandError(2, "transactionLifetimeLimitSeconds must be greater than or "
                                  "equal to 1s")
        reply["was"] = ctx.cluster.params[k]
        ctx.cluster.params[k] = int(v)
    reply["ok"] = 1.0
    return reply


@command("getParameter")
def cmd_get_parameter(ctx, cmd):
    require_admin(ctx, "getParameter")
    reply = SON()
    want_all = cmd.get("getParameter") == "*"
    for k in PARAMS:
        if want_all or k in cmd:
            reply[k] = ctx.cluster.params[k]
    if not want_all and len(reply) == 0:
        raise CommandError(72, "no option found to get")
    reply["ok"] = 1.0
    return reply


@command("xdbtxCommandLog")
def cmd_xdbtx_command_log(ctx, cmd):
    entries = list(ctx.cluster.log)
    if as_bool(cmd.get("clear")):
        ctx.cluster.log = []
    return SON([("commands", entries), ("ok", 1.0)])


@command("xdbtxReset")
def cmd_xdbtx_reset(ctx, cmd):
    ctx.cluster.reset()
    return ok()
