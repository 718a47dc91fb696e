"""One emulated cluster (a one-member replica set, or a standalone server).

Everything a cluster owns (catalog, sessions, cursors, failpoints, command log) is
guarded by one Condition `cond`.  A command runs entirely under it, except failpoint
blocking (slept outside the lock) and waits for documents locked by open transactions
(cond.wait, which releases it).  Every commit/abort notifies waiters.

dispatch() is the per-command pipeline: log, session checkout (sessions.py), retryable
write replay, failCommand, the handler from commands.py (cmd_*.py), then error labels, write
concern and $clusterTime.  OpContext carries what a handler needs: its read view and
the write path (`apply`) that enforces locks and conflicts.
"""

import datetime
import json
import threading
import time

from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.son import SON
from bson.timestamp import Timestamp
from bson.binary import Binary

from . import sessions as sess_mod
from .errors import CommandError, CloseConnection, code_name, computed_labels, RETRYABLE_CODES
from .failpoints import FailPoints
from .storage import Catalog, Collection, CommittedView, TxnView, ID_INDEX, index_entries, keyof

HELLO_NAMES = ("hello", "isMaster", "ismaster")
NOT_LOGGED = frozenset(HELLO_NAMES + ("ping",))
TXN_CONTROL = ("commitTransaction", "abortTransaction")
WRITE_COMMANDS = frozenset(["insert", "update", "delete", "findAndModify", "findandmodify",
                            "create", "drop", "dropDatabase", "createIndexes", "dropIndexes",
                            "commitTransaction", "abortTransaction"])
VERSION = "6.0.0-xdbtx-testd"


class Blocked(Exception):
    """A non-transactional write met a key locked by an open transaction."""


class Connection(object):
    """Per-client-connection state."""

    def __init__(self, conn_id, peer):
        self.id = conn_id
        self.peer = peer
        self.app_name = None


class OpContext(object):
    """What a command handler works with."""

    def __init__(self, cluster, conn, db, cmd, session, txn, kills=None):
        self.cluster = cluster
        self.conn = conn
        self.db = db
        self.cmd = cmd
        self.session = session
        self.txn = txn
        self.kills = kills      # session.kills when the command checked its session out
        self.catalog = cluster.catalog
        self.view = TxnView(txn) if txn is not None else CommittedView(cluster.catalog)
        mt = cmd.get("maxTimeMS")
        self.deadline = (time.monotonic() + float(mt) / 1000.0) if mt else None

    def ns(self, name):
        if not isinstance(name, str) or not name:
            raise CommandError(73, "Invalid namespace specified '%s.%r'" % (self.db, name))
        return "%s.%s" % (self.db, name)

    def unique_check(self, ns, idkey, doc):
        """Raise a DuplicateKey WriteError if `doc` collides in a unique secondary index."""
        coll = self.view.coll(ns)
        if coll is None:
            return
        uniq = coll.unique_indexes()
        if not uniq:
            return
        from .engine import match
        for ix in uniq:
            mine = index_entries(ix, doc, match)
            if not mine:
                continue
            for other in self.view.docs(ns):
                if keyof(other.get("_id")) == idkey:
                    continue
                theirs = index_entries(ix, other, match)
                for ek in mine:
                    if ek in theirs:
                        raise duplicate_key(ns, ix, mine[ek])

    def lock_keys(self, ns, idkey, old, new):
        keys = [(ns, ID_INDEX, idkey)]
        coll = self.view.coll(ns)
        if coll is not None:
            from .engine import match
            for ix in coll.unique_indexes():
                for d in (old, new):
                    if d is not None:
                        for ek in index_entries(ix, d, match):
                            keys.append((ns, ix["name"], ek))
        return keys

    def apply(self, ns, changes):
        """Write [(idkey, old_doc|None, new_doc|None)] to `ns` in this context.

        In a transaction: lock the keys (WriteConflict if another open transaction holds one
        or one was committed after our snapshot) and write the overlay.  Outside: raise
        Blocked if a transaction holds a key, else commit immediately.
        """
        cat = self.catalog
        keys = []
        for idkey, old, new in changes:
            keys.extend(self.lock_keys(ns, idkey, old, new))
        txn = self.txn
        if txn is not None:
            snapc = txn.snap.get(ns)
            cur = cat.colls.get(ns)
            if snapc is not None and (cur is None or cur.uuid != snapc.uuid):
                raise write_conflict()
            if snapc is None and ns not in txn.created and cur is not None:
                raise write_conflict()
            for k in keys:
                holder = cat.locks.get(k)
                if holder is not None and holder is not txn:
                    raise write_conflict()
                if cat.versions.get(k, 0) > txn.snap_seq:
                    raise write_conflict()
            for k in keys:
                cat.locks[k] = txn
                txn.locks.add(k)
            if snapc is None and ns not in txn.created:
                txn.created[ns] = SON()
            over = txn.overlay(ns)
            for idkey, _old, new in changes:
                over[idkey] = new
            return
        for k in keys:
            if k in cat.locks:
                raise Blocked()
        coll = cat.colls.get(ns)
        if coll is None:
            coll = self.cluster.create_collection(ns)
        docs = coll.writable_docs()
        for idkey, _old, new in changes:
            if new is None:
                docs.pop(idkey, None)
            else:
                docs[idkey] = new
        self.cluster.bump_versions(keys)

    def run_write(self, fn):
        """Run fn() (which computes and applies one statement) until it is not Blocked."""
        while True:
            try:
                return fn()
            except Blocked:
                self.wait_unblocked()

    def wait_unblocked(self):
        """Wait (lock released) for a commit/abort; MaxTimeMSExpired past maxTimeMS.

        Without maxTimeMS it waits as long as mongod would: until the holder ends, at the
        latest when the reaper aborts it at its expiry.
        """
        deadline = self.deadline
        if deadline is None:
            self.cluster.cond.wait(0.5)
            self.check_interrupted()
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise CommandError(50, "operation exceeded time limit")
        self.cluster.cond.wait(min(left, 0.5))
        self.check_interrupted()
        if time.monotonic() >= deadline:
            raise CommandError(50, "operation exceeded time limit")

    def check_interrupted(self):
        """Interrupted (11601) once killSessions has killed this command's session, as
        mongod interrupts the operations running on a killed session."""
        if self.session is not None and self.kills is not None \
                and self.session.kills != self.kills:
            raise CommandError(11601, "operation was interrupted")


def write_conflict():
    return CommandError(112, "Caused by :: Write conflict during plan execution and yielding "
                             "is disabled. :: Please retry your operation or multi-document "
                             "transaction.")


class WriteError(Exception):
    """One failed write statement (goes into writeErrors)."""

    def __init__(self, code, msg, extra=None):
        Exception.__init__(self, msg)
        self.code = code
        self.msg = msg
        self.extra = extra or {}


def show(value):
    """A value roughly as mongod prints it in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, ObjectId):
        return "ObjectId('%s')" % value
    if isinstance(value, dict):
        return "{ %s }" % ", ".join("%s: %s" % (k, show(v)) for k, v in value.items())
    if isinstance(value, list):
        return "[ %s ]" % ", ".join(show(v) for v in value)
    return repr(value)


def duplicate_key(ns, ix, values):
    fields = list(ix["key"].keys())
    key_value = SON()
    for f, v in zip(fields, values):
        key_value[f] = v
    shown = ", ".join("%s: %s" % (f, show(v)) for f, v in key_value.items())
    return WriteError(11000, "E11000 duplicate key error collection: %s index: %s dup key: { %s }"
                      % (ns, ix["name"], shown),
                      SON([("keyPattern", ix["key"]), ("keyValue", key_value)]))


class Cluster(object):
    def __init__(self, index, host, standalone=False):
        self.index = index
        self.host = host
        self.port = None
        self.standalone = standalone
        self.set_name = None if standalone else "rs%d" % index
        self.cond = threading.Condition(threading.Lock())
        self.election_id = ObjectId("7fffffff%016x" % (index + 1))
        self.started = time.time()
        self.params = {"transactionLifetimeLimitSeconds": 60}
        self.conn_counter = 0
        self.open_connections = 0
        self.reset_state()

    # ----- state -----
    def reset_state(self):
        self.catalog = Catalog()
        self.sessions = {}
        self.active_txns = set()    # transactions in progress (kept by sessions.checkout)
        self.cursors = {}
        self.failpoints = FailPoints()
        self.log = []
        self.clock = Timestamp(int(time.time()), 1)
        self.cursor_counter = 0
        self.stats = {"totalStarted": 0, "totalCommitted": 0, "totalAborted": 0}

    def reset(self):
        """xdbtxReset: drop data, sessions, failpoints, log, parameters (lock held)."""
        for s in self.sessions.values():
            self.abort_session_txn(s, "reset")
        self.reset_state()
        self.params = {"transactionLifetimeLimitSeconds": 60}
        self.cond.notify_all()

    @property
    def me(self):
        return "%s:%d" % (self.host, self.port)

    def uri(self):
        if self.standalone:
            return "mongodb://%s/?directConnection=true" % self.me
        return "mongodb://%s/?replicaSet=%s" % (self.me, self.set_name)

    def new_connection(self, peer):
        with self.cond:
            self.conn_counter += 1
            self.open_connections += 1
            return Connection(self.conn_counter, peer)

    def close_connection(self, conn):
        with self.cond:
            self.open_connections -= 1

    def tick(self):
        now = int(time.time())
        if now > self.clock.time:
            self.clock = Timestamp(now, 1)
        else:
            self.clock = Timestamp(self.clock.time, self.clock.inc + 1)
        return self.clock

    def open_txns(self):
        return list(self.active_txns)

    def bump_versions(self, keys):
        cat = self.catalog
        cat.seq += 1
        self.tick()
        if self.active_txns:
            for k in keys:
                cat.versions[k] = cat.seq
        elif cat.versions:
            cat.versions.clear()

    def create_collection(self, ns, options=None):
        db, name = ns.split(".", 1)
        coll = Collection(db, name, options)
        self.catalog.colls[ns] = coll
        return coll

    def ns_locked(self, prefix):
        return any(k[0] == prefix or k[0].startswith(prefix + ".") for k in self.catalog.locks)

    # ----- transactions -----
    def commit_txn(self, txn):
        cat = self.catalog
        for ns, opts in txn.created.items():
            if ns not in cat.colls:
                self.create_collection(ns, opts)
        for ns, over in txn.writes.items():
            coll = cat.colls.get(ns)
            if coll is None:
                coll = self.create_collection(ns)
            docs = coll.writable_docs()
            for idkey, doc in over.items():
                if doc is None:
                    docs.pop(idkey, None)
                else:
                    docs[idkey] = doc
        txn.state = sess_mod.COMMITTED
        self.active_txns.discard(txn)
        self._release(txn)
        self.bump_versions(txn.locks)
        txn.writes = {}
        txn.snap = {}
        self.stats["totalCommitted"] += 1
        self.cond.notify_all()

    def abort_txn(self, txn, reason=None):
        if txn.state != sess_mod.IN_PROGRESS:
            return
        txn.state = sess_mod.ABORTED
        txn.abort_reason = reason
        self.active_txns.discard(txn)
        self._release(txn)
        txn.writes = {}
        txn.snap = {}
        self.stats["totalAborted"] += 1
        self.cond.notify_all()

    def _release(self, txn):
        """Drop the transaction's locks and cursors."""
        locks = self.catalog.locks
        for k in txn.locks:
            if locks.get(k) is txn:
                del locks[k]
        for cid in [cid for cid, cur in self.cursors.items() if cur.txn is txn]:
            del self.cursors[cid]

    def abort_session_txn(self, session, reason=None):
        if session.txn is not None:
            self.abort_txn(session.txn, reason)

    def reap(self):
        """Abort transactions past their expiry (start + the lifetime limit then in force)."""
        now = time.monotonic()
        with self.cond:
            for txn in self.open_txns():
                if now > txn.expires:
                    self.abort_txn(txn, "transaction expired: transactionLifetimeLimitSeconds")

    # ----- command log -----
    def record(self, conn, name, db, cmd):
        entry = SON([("name", name), ("db", db)])
        lsid = cmd.get("lsid")
        if lsid is not None and "id" in lsid:
            entry["lsid"] = lsid["id"]
        if "txnNumber" in cmd:
            entry["txnNumber"] = cmd["txnNumber"]
        if cmd.get("startTransaction"):
            entry["startTransaction"] = True
        if "autocommit" in cmd:
            entry["autocommit"] = cmd["autocommit"]
        if conn.app_name is not None:
            entry["appName"] = conn.app_name
        entry["connectionId"] = conn.id
        entry["t"] = time.time()
        with self.cond:
            self.log.append(entry)
            if len(self.log) > 200000:
                del self.log[:100000]

    # ----- hello -----
    def hello_reply(self, conn, cmd):
        now = now_ms()
        r = SON()
        name = next(iter(cmd))
        if name == "hello":
            r["isWritablePrimary"] = True
        else:
            r["ismaster"] = True
            r["isWritablePrimary"] = True
        r["helloOk"] = True
        if not self.standalone:
            r["secondary"] = False
            r["setName"] = self.set_name
            r["setVersion"] = 1
            r["hosts"] = [self.me]
            r["primary"] = self.me
            r["me"] = self.me
            r["electionId"] = self.election_id
            ts = self.clock
            optime = SON([("ts", ts), ("t", Int64(1))])
            r["lastWrite"] = SON([("opTime", optime), ("lastWriteDate", now),
                                  ("majorityOpTime", optime), ("majorityWriteDate", now)])
        r["maxBsonObjectSize"] = 16777216
        r["maxMessageSizeBytes"] = 48000000
        r["maxWriteBatchSize"] = 100000
        r["localTime"] = now
        r["logicalSessionTimeoutMinutes"] = 30
        r["connectionId"] = conn.id
        r["minWireVersion"] = 0
        r["maxWireVersion"] = 17
        r["readOnly"] = False
        r["ok"] = 1.0
        return r

    # ----- dispatch -----
    def dispatch(self, conn, db, cmd):
        """Run one command; return the reply document. May raise CloseConnection."""
        if not cmd:
            return self.finish(error_reply(CommandError(59, "no command"), []))
        name = next(iter(cmd))
        if name in HELLO_NAMES:
            client = cmd.get("client")
            if isinstance(client, dict):
                app = client.get("application")
                if isinstance(app, dict) and isinstance(app.get("name"), str):
                    conn.app_name = app["name"]
            with self.cond:
                fp = self.failpoints.check(name, conn.app_name)
            if fp is not None:
                try:
                    self.apply_failpoint_pre(fp)
                except CommandError as e:
                    return self.finish(error_reply(e, e.labels or []))
            return self.finish(self.hello_reply(conn, cmd))
        if name not in NOT_LOGGED and not name.startswith("xdbtx"):
            self.record(conn, name, db, cmd)
        from . import commands
        if name.startswith("xdbtx") or name in commands.NO_SESSION_COMMANDS:
            try:
                if name != "configureFailPoint" and not name.startswith("xdbtx"):
                    with self.cond:
                        fp = self.failpoints.check(name, conn.app_name)
                    if fp is not None:
                        self.apply_failpoint_pre(fp)
                with self.cond:
                    reply = commands.run(OpContext(self, conn, db, cmd, None, None), name)
            except CommandError as e:
                reply = error_reply(e, e.labels or [])
            return self.finish(reply)
        return self._dispatch_session(conn, db, cmd, name, commands)

    def _dispatch_session(self, conn, db, cmd, name, commands):
        in_txn_cmd = cmd.get("autocommit") is False
        txn_control = name in TXN_CONTROL
        retryable = ("txnNumber" in cmd and "autocommit" not in cmd
                     and name in sess_mod.RETRYABLE_WRITES)
        statement = None    # the transaction this command is a statement of
        co = None
        session = None
        wce = None
        try:
            with self.cond:
                lsid = cmd.get("lsid")
                if lsid is not None:
                    key = sess_mod.lsid_key(lsid)
                    session = self.sessions.get(key)
                    if session is None:
                        session = self.sessions[key] = sess_mod.Session(key, lsid)
                co = sess_mod.checkout(self, session, name, cmd)
                kills = session.kills if session is not None else None
                if co.txn is not None and not txn_control:
                    statement = co.txn
                    if "writeConcern" in cmd:
                        raise CommandError(72, "Cannot set write concern after starting a "
                                               "transaction.")
                    if not co.starts and "readConcern" in cmd:
                        raise CommandError(72, "Only the first command in a transaction may "
                                               "specify a readConcern")
                if co.retry_number is not None:
                    cached = session.retry_cache.get(co.retry_number)
                    if cached is not None and cached[0] == name:
                        return self.finish(SON(cached[1]))
                fp = self.failpoints.check(name, conn.app_name)
            if fp is not None:
                try:
                    wce = self.apply_failpoint_pre(fp)
                except CloseConnection:
                    if statement is not None:
                        with self.cond:
                            self.abort_txn(statement, "failpoint closeConnection")
                    raise
            with self.cond:
                ctx = OpContext(self, conn, db, cmd, session, co.txn, kills)
                ctx.check_interrupted()
                if statement is not None and statement.state != sess_mod.IN_PROGRESS:
                    raise CommandError(251, "Transaction %d has been aborted." % statement.number)
                reply = commands.run(ctx, name)
                if statement is not None and reply.get("writeErrors"):
                    self.abort_txn(statement, "write error")
                if co.retry_number is not None and session.txn_number == co.retry_number:
                    session.retry_cache[co.retry_number] = (name, SON(reply))
        except CommandError as e:
            if statement is not None:
                with self.cond:
                    self.abort_txn(statement, "%s: %s" % (code_name(e.code), e.msg))
            labels = e.labels
            if labels is None:
                labels = computed_labels(e.code, in_txn_cmd, txn_control, retryable)
            return self.finish(error_reply(e, labels))
        wc = cmd.get("writeConcern")
        if wce is None and wc is not None and name in WRITE_COMMANDS:
            wce = write_concern_error(wc)
        if wce is not None:
            reply["writeConcernError"] = wce
            labels = list(reply.get("errorLabels", []))
            for lab in wce.get("errorLabels", []) if isinstance(wce, dict) else []:
                if lab not in labels:
                    labels.append(lab)
            if (txn_control or retryable) and wce.get("code") in RETRYABLE_CODES \
                    and "errorLabels" not in wce and "RetryableWriteError" not in labels:
                labels.append("RetryableWriteError")
            if labels:
                reply["errorLabels"] = labels
        return self.finish(reply)

    def apply_failpoint_pre(self, data):
        """Block/close/fail as failCommand data says; return a writeConcernError or None."""
        if data.get("blockConnection"):
            time.sleep(float(data.get("blockTimeMS", 0)) / 1000.0)
        if data.get("closeConnection"):
            raise CloseConnection()
        if "errorCode" in data:
            labels = data.get("errorLabels")
            raise CommandError(int(data["errorCode"]),
                               "Failing command via 'failCommand' failpoint",
                               labels=list(labels) if labels is not None else None)
        wce = data.get("writeConcernError")
        if wce is not None:
            return SON(wce)
        return None

    def finish(self, reply):
        ts = self.clock   # a plain attribute read: no lock needed (and callers may hold it)
        if not self.standalone:
            reply["$clusterTime"] = SON([
                ("clusterTime", ts),
                ("signature", SON([("hash", Binary(b"\x00" * 20, 0)), ("keyId", Int64(0))]))])
            reply["operationTime"] = ts
        return reply


def now_ms():
    """UTC now, truncated to BSON date precision."""
    now = datetime.datetime.utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def error_reply(err, labels):
    r = SON([("ok", 0.0), ("errmsg", err.msg), ("code", err.code),
             ("codeName", code_name(err.code))])
    for k, v in err.extra.items():
        r[k] = v
    if labels:
        r["errorLabels"] = list(labels)
    return r


def write_concern_error(wc):
    w = wc.get("w", 1) if isinstance(wc, dict) else 1
    if isinstance(w, bool):
        return None
    if isinstance(w, (int, float)):
        if w > 1:
            return SON([("code", 100), ("codeName", "UnsatisfiableWriteConcern"),
                        ("errmsg", "Not enough data-bearing nodes"),
                        ("errInfo", SON([("writeConcern", wc)]))])
        return None
    if isinstance(w, str) and w != "majority":
        return SON([("code", 79), ("codeName", "UnknownReplWriteConcern"),
                    ("errmsg", "No write concern mode named '%s' found in replica set "
                               "configuration" % w)])
    return None
