#!/usr/bin/python3
"""TAP tests of xdbtx-testd's session and transaction rules, spoken over raw OP_MSG.

Starts its own server (one replica set + one standalone, ports picked by the OS), so it
needs nothing but Debian's python3-bson. Run: /usr/bin/python3 spec/server/test_server_txn.py
These pin the mongod 6.0 behaviour the server emulates (codes and labels, not messages).
"""

import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)

from bson.binary import Binary  # noqa: E402
from bson.int64 import Int64  # noqa: E402
from bson.son import SON  # noqa: E402

from testd import wire  # noqa: E402

_count = [0]
_failed = [0]


def ok(cond, name, detail=""):
    _count[0] += 1
    if cond:
        print("ok %d - %s" % (_count[0], name))
    else:
        _failed[0] += 1
        print("not ok %d - %s" % (_count[0], name))
        if detail:
            for line in str(detail).splitlines():
                print("#   " + line)
    sys.stdout.flush()


class Client(object):
    """One connection; run(db, doc) sends an OP_MSG and returns the reply document."""

    def __init__(self, port, app_name=None):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.rid = 0
        hello = SON([("isMaster", 1), ("helloOk", True)])
        if app_name:
            hello["client"] = SON([("application", SON([("name", app_name)]))])
        self.hello = self.query("admin", hello)

    def _send(self, opcode, body):
        self.rid += 1
        self.sock.sendall(struct.pack("<iiii", 16 + len(body), self.rid, 0, opcode) + body)

    def _recv(self):
        hdr = self._exact(16)
        if hdr is None:
            return None
        length = struct.unpack("<i", hdr[:4])[0]
        return self._exact(length - 16)

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def query(self, db, doc):
        body = (struct.pack("<i", 0) + (db + ".$cmd").encode() + b"\0" +
                struct.pack("<ii", 0, -1) + wire.encode(doc))
        self._send(2004, body)
        data = self._recv()
        return None if data is None else wire.decode(data[20:])

    def run(self, db, doc, **fields):
        doc = SON(doc)
        for k, v in fields.items():
            doc[k] = v
        doc["$db"] = db
        self._send(2013, struct.pack("<I", 0) + b"\0" + wire.encode(doc))
        data = self._recv()
        return None if data is None else wire.decode(data[5:])

    def close(self):
        self.sock.close()


def lsid():
    return SON([("id", Binary(uuid.uuid4().bytes, 4))])


def cmd(name, value, **rest):
    d = SON([(name, value)])
    for k, v in rest.items():
        d[k] = v
    return d


def labels(r):
    return r.get("errorLabels", [])


def start_server(*args):
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "xdbtx-testd")] + list(args),
                            stdout=subprocess.PIPE, universal_newlines=True)
    ports = []
    for _ in range(args.count("--port")):
        line = proc.stdout.readline()
        ports.append(int(line.split(":")[2].split("/")[0]))
    return proc, ports


def find_all(c, db, coll, flt=None, **kw):
    r = c.run(db, cmd("find", coll, filter=flt or {}), **kw)
    return r["cursor"]["firstBatch"] if r.get("ok") else r


def ids(c, db, coll, **kw):
    """The sorted _ids find returns, or its error reply."""
    docs = find_all(c, db, coll, **kw)
    return sorted(d["_id"] for d in docs) if isinstance(docs, list) else docs


def main():
    proc, (port,) = start_server("--port", "0")
    sproc, (sport,) = start_server("--standalone", "--port", "0")
    try:
        run_tests(port, sport)
    finally:
        for p in (proc, sproc):
            p.terminate()
            p.wait(5)
    print("1..%d" % _count[0])
    return 1 if _failed[0] else 0


def run_tests(port, sport):
    c = Client(port, app_name="tester")
    h = c.hello
    ok(h.get("setName") == "rs0" and h.get("maxWireVersion") == 17 and
       "topologyVersion" not in h and h.get("hosts") == ["127.0.0.1:%d" % port],
       "hello describes a replica-set primary without topologyVersion", h)
    c.run("admin", cmd("xdbtxReset", 1))

    # --- types round-trip
    doc = SON([("_id", 1), ("i32", 7), ("i64", Int64(7)), ("d", 7.0),
               ("u", Binary(uuid.uuid4().bytes, 4)), ("b3", Binary(b"0123456789abcdef", 3))])
    c.run("t", cmd("insert", "types", documents=[doc]))
    c.run("t", cmd("update", "types", updates=[SON([("q", {"_id": 1}),
                                                     ("u", {"$inc": {"i64": 1, "i32": 1}})])]))
    got = find_all(c, "t", "types")[0]
    ok(type(got["i64"]) is Int64 and got["i64"] == 8 and type(got["i32"]) is int
       and type(got["d"]) is float and got["u"].subtype == 4 and got["b3"].subtype == 3,
       "BSON types survive storage and $inc", got)

    # --- transactions: commit, isolation, snapshot
    s1, s2 = lsid(), lsid()
    r = c.run("t", cmd("insert", "c", documents=[{"_id": "a", "v": 1}]), lsid=s1,
              txnNumber=Int64(1), startTransaction=True, autocommit=False)
    ok(r.get("ok") == 1 and r.get("n") == 1, "insert starts a transaction", r)
    ok(find_all(c, "t", "c") == [], "uncommitted insert invisible outside")
    ok(len(find_all(c, "t", "c", lsid=s1, txnNumber=Int64(1), autocommit=False)) == 1,
       "transaction reads its own write")
    r = c.run("t", cmd("find", "c"), lsid=s1, txnNumber=Int64(1), autocommit=False,
              readConcern={"level": "snapshot"})
    ok(r.get("code") == 72, "readConcern after the first statement: InvalidOptions", r)
    r = c.run("admin", cmd("commitTransaction", 1), lsid=s1, txnNumber=Int64(1), autocommit=False)
    ok(r.get("code") == 251 and "TransientTransactionError" in labels(r),
       "that error aborted the transaction: commit gets NoSuchTransaction", r)

    c.run("t", cmd("insert", "c", documents=[{"_id": "a", "v": 1}]), lsid=s1,
          txnNumber=Int64(2), startTransaction=True, autocommit=False)
    r = c.run("admin", cmd("commitTransaction", 1), lsid=s1, txnNumber=Int64(2), autocommit=False)
    ok(r.get("ok") == 1, "commit", r)
    r = c.run("admin", cmd("commitTransaction", 1), lsid=s1, txnNumber=Int64(2), autocommit=False)
    ok(r.get("ok") == 1, "commit is idempotent", r)
    r = c.run("admin", cmd("abortTransaction", 1), lsid=s1, txnNumber=Int64(2), autocommit=False)
    ok(r.get("code") == 256, "abort after commit: TransactionCommitted", r)
    r = c.run("t", cmd("find", "c"), lsid=s1, txnNumber=Int64(1), autocommit=False)
    ok(r.get("code") == 225, "older txnNumber: TransactionTooOld", r)
    r = c.run("t", cmd("find", "c"), lsid=s1, txnNumber=Int64(9), autocommit=False)
    ok(r.get("code") == 251 and "TransientTransactionError" in labels(r),
       "continuing an unknown transaction: NoSuchTransaction + label", r)
    r = c.run("t", cmd("insert", "c", documents=[{"_id": "w"}]), lsid=s1, txnNumber=Int64(10),
              startTransaction=True, autocommit=False, writeConcern={"w": 1})
    ok(r.get("code") == 72, "writeConcern on a transaction statement: InvalidOptions", r)

    # snapshot: s2 starts, then someone commits, s2 must not see it and must conflict on it
    c.run("t", cmd("find", "c"), lsid=s2, txnNumber=Int64(1), startTransaction=True,
          autocommit=False)
    c.run("t", cmd("update", "c", updates=[{"q": {"_id": "a"}, "u": {"$set": {"v": 2}}}]))
    snap = find_all(c, "t", "c", lsid=s2, txnNumber=Int64(1), autocommit=False)
    ok(snap and snap[0]["v"] == 1, "transaction reads its snapshot", snap)
    r = c.run("t", cmd("update", "c", updates=[{"q": {"_id": "a"}, "u": {"$set": {"v": 3}}}]),
              lsid=s2, txnNumber=Int64(1), autocommit=False)
    ok(r.get("code") == 112 and "TransientTransactionError" in labels(r),
       "write to a document committed after the snapshot: WriteConflict", r)

    # first writer wins between two open transactions
    s3, s4 = lsid(), lsid()
    r1 = c.run("t", cmd("update", "c", updates=[{"q": {"_id": "a"}, "u": {"$set": {"v": 4}}}]),
               lsid=s3, txnNumber=Int64(1), startTransaction=True, autocommit=False)
    r2 = c.run("t", cmd("update", "c", updates=[{"q": {"_id": "a"}, "u": {"$set": {"v": 5}}}]),
               lsid=s4, txnNumber=Int64(1), startTransaction=True, autocommit=False)
    ok(r1.get("nModified") == 1 and r2.get("code") == 112, "second writer gets WriteConflict",
       (r1, r2))

    # a non-transactional write waits for the lock, bounded by maxTimeMS
    t0 = time.time()
    r = c.run("t", cmd("update", "c", updates=[{"q": {"_id": "a"}, "u": {"$set": {"v": 6}}}],
                       maxTimeMS=300))
    dt = time.time() - t0
    ok(r.get("code") == 50 and 0.25 < dt < 2, "blocked plain write: MaxTimeMSExpired", (r, dt))
    c2 = Client(port)
    result = {}

    def waiter():
        result["r"] = c2.run("t", cmd("update", "c",
                                      updates=[{"q": {"_id": "a"}, "u": {"$set": {"w": 1}}}]))
    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.3)
    ok(th.is_alive(), "plain write waits while the transaction holds the document")
    r = c.run("admin", cmd("commitTransaction", 1), lsid=s3, txnNumber=Int64(1), autocommit=False)
    th.join(5)
    ok(r.get("ok") == 1 and result.get("r", {}).get("nModified") == 1,
       "commit releases the waiting write", (r, result))
    got = find_all(c, "t", "c", {"_id": "a"})[0]
    ok(got["v"] == 4 and got["w"] == 1, "both writes applied in order", got)

    # duplicate key inside a transaction: no transient label, transaction aborted
    s5 = lsid()
    r = c.run("t", cmd("insert", "c", documents=[{"_id": "a"}]), lsid=s5, txnNumber=Int64(1),
              startTransaction=True, autocommit=False)
    we = (r.get("writeErrors") or [{}])[0]
    ok(we.get("code") == 11000 and "TransientTransactionError" not in labels(r),
       "DuplicateKey in a transaction has no TransientTransactionError", r)
    r = c.run("admin", cmd("commitTransaction", 1), lsid=s5, txnNumber=Int64(1), autocommit=False)
    ok(r.get("code") == 251, "DuplicateKey aborted the transaction", r)

    # unique secondary index
    r = c.run("t", cmd("createIndexes", "u", indexes=[{"key": {"email": 1}, "name": "email_1",
                                                       "unique": True}]))
    ok(r.get("ok") == 1 and r.get("createdCollectionAutomatically") is True, "createIndexes", r)
    c.run("t", cmd("insert", "u", documents=[{"_id": 1, "email": "x"}]))
    r = c.run("t", cmd("insert", "u", documents=[{"_id": 2, "email": "x"}]))
    we = (r.get("writeErrors") or [{}])[0]
    ok(we.get("code") == 11000 and we.get("keyValue") == {"email": "x"},
       "unique index enforced with keyValue", r)

    # DDL
    r = c.run("t", cmd("create", "u"))
    ok(r.get("code") == 48, "create existing: NamespaceExists", r)
    r = c.run("t", cmd("drop", "nope"))
    ok(r.get("code") == 26, "drop missing: NamespaceNotFound", r)
    s6 = lsid()
    r = c.run("t", cmd("insert", "newcoll", documents=[{"_id": 1}]), lsid=s6,
              txnNumber=Int64(1), startTransaction=True, autocommit=False)
    ok(r.get("ok") == 1, "insert into a missing collection inside a transaction", r)
    names = [x["name"] for x in c.run("t", cmd("listCollections", 1))["cursor"]["firstBatch"]]
    ok("newcoll" not in names, "collection created in a transaction is invisible until commit")
    c.run("admin", cmd("commitTransaction", 1), lsid=s6, txnNumber=Int64(1), autocommit=False)
    names = [x["name"] for x in c.run("t", cmd("listCollections", 1))["cursor"]["firstBatch"]]
    ok("newcoll" in names, "and exists after commit", names)

    # lifetime limit
    r = c.run("admin", cmd("setParameter", 1, transactionLifetimeLimitSeconds=1))
    ok(r.get("ok") == 1 and r.get("was") == 60, "setParameter transactionLifetimeLimitSeconds", r)
    s7 = lsid()
    c.run("t", cmd("insert", "c", documents=[{"_id": "exp"}]), lsid=s7, txnNumber=Int64(1),
          startTransaction=True, autocommit=False)
    time.sleep(1.6)
    r = c.run("admin", cmd("commitTransaction", 1), lsid=s7, txnNumber=Int64(1), autocommit=False)
    ok(r.get("code") == 251, "expired transaction was aborted", r)
    c.run("admin", cmd("setParameter", 1, transactionLifetimeLimitSeconds=60))

    # retryable write replay
    s9 = lsid()
    r1 = c.run("t", cmd("insert", "rw", documents=[{"_id": 1}]), lsid=s9, txnNumber=Int64(5))
    r2 = c.run("t", cmd("insert", "rw", documents=[{"_id": 1}]), lsid=s9, txnNumber=Int64(5))
    ok(r1.get("n") == 1 and r2.get("n") == 1 and "writeErrors" not in r2,
       "a retried write (same txnNumber) is answered from the cache", (r1, r2))

    # failpoints: hello with closeConnection, appName filter
    c.run("admin", cmd("configureFailPoint", "failCommand", mode={"times": 1},
                       data={"failCommands": ["find"], "errorCode": 91, "appName": "other"}))
    r = c.run("t", cmd("find", "c"))
    ok(r.get("ok") == 1, "failpoint with another appName does not fire", r)
    c.run("admin", cmd("configureFailPoint", "failCommand", mode="alwaysOn",
                       data={"failCommands": ["insert"], "errorCode": 10107,
                             "appName": "tester"}))
    r = c.run("t", cmd("insert", "fp", documents=[{}]), lsid=lsid(), txnNumber=Int64(1))
    ok(r.get("code") == 10107 and labels(r) == ["RetryableWriteError"],
       "retryable write failure gets RetryableWriteError", r)
    c.run("admin", cmd("configureFailPoint", "failCommand", mode="off"))
    c.run("admin", cmd("configureFailPoint", "failCommand", mode={"times": 1},
                       data={"failCommands": ["hello", "isMaster"], "closeConnection": True}))
    c3 = Client.__new__(Client)
    c3.sock = socket.create_connection(("127.0.0.1", port))
    c3.rid = 0
    ok(c3.query("admin", SON([("isMaster", 1)])) is None, "failCommand closes a hello connection")

    # command log
    c.run("admin", cmd("xdbtxCommandLog", 1, clear=True))
    c.run("t", cmd("find", "c"), lsid=s9)
    log = c.run("admin", cmd("xdbtxCommandLog", 1))["commands"]
    ok(len(log) == 1 and log[0]["name"] == "find" and log[0]["db"] == "t"
       and log[0].get("appName") == "tester" and "lsid" in log[0],
       "xdbtxCommandLog records commands", log)

    # unknown command
    r = c.run("t", cmd("frobnicate", 1))
    ok(r.get("code") == 59, "unknown command: CommandNotFound", r)

    # standalone refuses transactions
    sc = Client(sport)
    ok("setName" not in sc.hello, "standalone hello has no setName", sc.hello)
    r = sc.run("t", cmd("insert", "c", documents=[{}]), lsid=lsid(), txnNumber=Int64(1),
               startTransaction=True, autocommit=False)
    ok(r.get("code") == 20, "standalone: IllegalOperation for transactions", r)
    r = sc.run("t", cmd("insert", "c", documents=[{"_id": 1}]))
    ok(r.get("n") == 1, "standalone: plain writes work", r)

    session_tests(port)
    crud_tests(c)
    wire_tests(c)
    bank_test(port)

    # reset
    c.run("admin", cmd("xdbtxReset", 1))
    r = c.run("admin", cmd("listDatabases", 1, nameOnly=True))
    ok([d["name"] for d in r["databases"]] == ["admin", "config", "local"],
       "xdbtxReset drops all data", r)



def session_tests(port):
    """Sessions outlive their connections (what crash recovery relies on): a transaction
    whose client vanished stays open and holds its documents; any connection may continue
    it; killSessions from another connection aborts it and frees its documents; endSessions
    does not (mongod only schedules the session's cleanup, which never aborts); the
    lifetime limit in force when a transaction starts is the one that expires it."""
    admin = Client(port)
    admin.run("admin", cmd("xdbtxReset", 1))
    admin.run("s", cmd("insert", "c", documents=[{"_id": "held", "n": 0}]))
    s = lsid()
    t1 = dict(lsid=s, txnNumber=Int64(1), autocommit=False)

    gone = Client(port)
    r = gone.run("s", cmd("update", "c", updates=[{"q": {"_id": "held"},
                                                    "u": {"$inc": {"n": 1}}}]),
                 startTransaction=True, **t1)
    gone.run("s", cmd("insert", "c", documents=[{"_id": "d1"}]), **t1)
    gone.close()
    ok(r.get("nModified") == 1, "a transaction updates a document, then its connection closes", r)
    time.sleep(0.1)
    other = Client(port)
    ok(ids(other, "s", "c") == ["held"] and find_all(other, "s", "c", {"_id": "held"})[0]["n"] == 0,
       "its writes stay invisible after the connection is gone", find_all(other, "s", "c"))
    t0 = time.time()
    r = other.run("s", cmd("update", "c", updates=[{"q": {"_id": "held"}, "u": {"$set": {"x": 1}}}],
                           maxTimeMS=200))
    ok(r.get("code") == 50 and time.time() - t0 >= 0.2,
       "and it still holds its document: a plain write times out (MaxTimeMSExpired)", r)

    cont = Client(port)
    r = cont.run("s", cmd("insert", "c", documents=[{"_id": "d2"}]), **t1)
    seen = ids(cont, "s", "c", **t1)
    ok(r.get("n") == 1 and seen == ["d1", "d2", "held"],
       "another connection continues the transaction with the same lsid and txnNumber",
       (r, seen))
    r = cont.run("s", cmd("insert", "c", documents=[{"_id": "d3"}]), startTransaction=True, **t1)
    ok(r.get("code") == 117,
       "startTransaction at the active txnNumber: ConflictingOperationInProgress", r)

    r = other.run("admin", cmd("endSessions", [s]))
    r2 = other.run("s", cmd("update", "c", updates=[{"q": {"_id": "held"},
                                                     "u": {"$set": {"x": 1}}}], maxTimeMS=200))
    ok(r.get("ok") == 1 and r2.get("code") == 50,
       "endSessions does not abort the open transaction (mongod leaves that to killSessions "
       "or the lifetime limit)", (r, r2))

    result = {}
    waiter_conn = Client(port)

    def waiter():
        result["r"] = waiter_conn.run("s", cmd("update", "c", updates=[
            {"q": {"_id": "held"}, "u": {"$set": {"w": 1}}}]))
    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.2)
    blocked = th.is_alive()
    killer = Client(port)
    r = killer.run("admin", cmd("killSessions", [SON([("id", s["id"])])]))
    th.join(5)
    ok(blocked and r.get("ok") == 1 and result.get("r", {}).get("nModified") == 1,
       "killSessions [{id}] from a third connection aborts it and the waiting write proceeds",
       (blocked, r, result))
    r = cont.run("admin", cmd("commitTransaction", 1), **t1)
    ok(r.get("code") == 251 and labels(r) == ["TransientTransactionError"],
       "a later commit gets NoSuchTransaction with TransientTransactionError", r)
    docs = find_all(admin, "s", "c")
    ok(ids(admin, "s", "c") == ["held"] and docs[0]["n"] == 0 and docs[0].get("w") == 1,
       "the killed transaction's writes are gone", docs)
    r = cont.run("s", cmd("find", "c"), lsid=s, txnNumber=Int64(0), startTransaction=True,
                 autocommit=False)
    ok(r.get("code") == 225, "the killed session keeps its txnNumber (TransactionTooOld)", r)
    r = cont.run("s", cmd("insert", "c", documents=[{"_id": "d4"}]), lsid=s,
                 txnNumber=Int64(2), startTransaction=True, autocommit=False)
    r2 = cont.run("admin", cmd("commitTransaction", 1), lsid=s, txnNumber=Int64(2),
                  autocommit=False)
    ok(r.get("n") == 1 and r2.get("ok") == 1, "and can run a new transaction", (r, r2))

    s2, s3 = lsid(), lsid()
    for sx in (s2, s3):
        admin.run("s", cmd("insert", "k", documents=[{"_id": sx["id"]}]), lsid=sx,
                  txnNumber=Int64(1), startTransaction=True, autocommit=False)
    admin.run("admin", cmd("killSessions", []))
    r = admin.run("admin", cmd("commitTransaction", 1), lsid=s2, txnNumber=Int64(1),
                  autocommit=False)
    r2 = admin.run("admin", cmd("commitTransaction", 1), lsid=s3, txnNumber=Int64(1),
                   autocommit=False)
    ok(r.get("code") == 251 and r2.get("code") == 251, "killSessions [] kills every session",
       (r, r2))
    r = admin.run("admin", cmd("killSessions", [{"id": 1}]))
    ok(r.get("code") == 14, "killSessions wants {id: UUID} documents", r)

    # a commit in flight (blocked by a failpoint) when killSessions hits its session is
    # interrupted, as mongod interrupts operations running on a killed session
    s6 = lsid()
    slow = Client(port, app_name="slow-committer")
    slow.run("s", cmd("insert", "k", documents=[{"_id": "inflight"}]), lsid=s6,
             txnNumber=Int64(1), startTransaction=True, autocommit=False)
    admin.run("admin", cmd("configureFailPoint", "failCommand", mode={"times": 1},
                           data={"failCommands": ["commitTransaction"], "blockConnection": True,
                                 "blockTimeMS": 400, "appName": "slow-committer"}))
    result = {}

    def committer():
        t0 = time.time()
        result["r"] = slow.run("admin", cmd("commitTransaction", 1), lsid=s6,
                               txnNumber=Int64(1), autocommit=False)
        result["dt"] = time.time() - t0
    th = threading.Thread(target=committer)
    th.start()
    time.sleep(0.1)
    admin.run("admin", cmd("killSessions", [s6]))
    th.join(5)
    r2 = admin.run("admin", cmd("commitTransaction", 1), lsid=s6, txnNumber=Int64(1),
                   autocommit=False)
    ok(result.get("r", {}).get("code") == 11601 and r2.get("code") == 251
       and ids(admin, "s", "k") == [],
       "a commit in flight when killSessions hits is Interrupted (11601); the transaction "
       "is aborted", (result, r2))
    slow.close()

    # the lifetime limit is fixed when the transaction starts (mongod's transactionExpireDate)
    s4, s5 = lsid(), lsid()
    admin.run("s", cmd("insert", "c", documents=[{"_id": "old"}]), lsid=s4, txnNumber=Int64(1),
              startTransaction=True, autocommit=False)
    admin.run("admin", cmd("setParameter", 1, transactionLifetimeLimitSeconds=1))
    gone = Client(port)
    gone.run("s", cmd("insert", "c", documents=[{"_id": "new"}]), lsid=s5, txnNumber=Int64(1),
             startTransaction=True, autocommit=False)
    gone.close()
    t0 = time.time()
    r = admin.run("s", cmd("insert", "c", documents=[{"_id": "new"}]), maxTimeMS=5000)
    waited = time.time() - t0
    r2 = admin.run("admin", cmd("commitTransaction", 1), lsid=s4, txnNumber=Int64(1),
                   autocommit=False)
    admin.run("admin", cmd("setParameter", 1, transactionLifetimeLimitSeconds=60))
    ok(r.get("n") == 1 and 0.5 < waited < 2.5,
       "an abandoned transaction started under a 1 s limit is reaped: the blocked insert "
       "goes through", (r, waited))
    ok(r2.get("ok") == 1, "one started under the 60 s limit is not, though the limit is now 1 s",
       r2)
    for cl in (admin, other, cont, waiter_conn, killer):
        cl.close()


def crud_tests(c):
    """Plain CRUD commands and cursors (semantics of filters/updates are engine.py's)."""
    c.run("admin", cmd("xdbtxReset", 1))
    docs = [SON([("_id", i), ("g", i % 3), ("v", i)]) for i in range(250)]
    r = c.run("d", cmd("insert", "k", documents=docs))
    ok(r.get("n") == 250, "insert 250 documents", r)
    r = c.run("d", cmd("find", "k", filter={"g": 1}, sort={"v": -1}, skip=1, limit=5,
                       projection={"v": 1, "_id": 0}))
    ok([d["v"] for d in r["cursor"]["firstBatch"]] == [244, 241, 238, 235, 232]
       and r["cursor"]["id"] == 0 and list(r["cursor"]["firstBatch"][0].keys()) == ["v"],
       "find with filter, sort, skip, limit, projection", r)
    r = c.run("d", cmd("find", "k", batchSize=100))
    cid = r["cursor"]["id"]
    got = len(r["cursor"]["firstBatch"])
    r = c.run("d", cmd("getMore", cid, collection="k", batchSize=100))
    got += len(r["cursor"]["nextBatch"])
    ok(r["cursor"]["id"] == cid and got == 200, "getMore continues the cursor", r["cursor"]["id"])
    r = c.run("d", cmd("killCursors", "k", cursors=[cid]))
    ok(r.get("cursorsKilled") == [cid], "killCursors", r)
    r = c.run("d", cmd("getMore", cid, collection="k"))
    ok(r.get("code") == 43, "getMore on a killed cursor: CursorNotFound", r)
    r = c.run("d", cmd("find", "k", limit=3, batchSize=2, singleBatch=True))
    ok(len(r["cursor"]["firstBatch"]) == 2 and r["cursor"]["id"] == 0,
       "singleBatch closes the cursor", r)
    r = c.run("d", cmd("find", "k", limit=-3))
    ok(r.get("code") == 51024, "negative limit refused like mongod 6.0", r)
    r = c.run("d", cmd("update", "k", updates=[{"q": {"g": 2}, "u": {"$set": {"x": 1}},
                                                 "multi": True}]))
    ok(r.get("n") == 83 and r.get("nModified") == 83, "multi update", r)
    r = c.run("d", cmd("update", "k", updates=[{"q": {"_id": 1000}, "u": {"$set": {"y": 1}},
                                                 "upsert": True}]))
    ok(r.get("n") == 1 and r.get("upserted") == [{"index": 0, "_id": 1000}], "upsert", r)
    r = c.run("d", cmd("update", "k", updates=[{"q": {"_id": 1000}, "u": {"_id": 5}}]))
    ok(r.get("writeErrors", [{}])[0].get("code") == 66, "replacement cannot change _id", r)
    r = c.run("d", cmd("update", "k", updates=[{"q": {"_id": 1}, "u": {"$set": {"a": 1}},
                                                 "maxTimeMS": 10}]))
    ok(r.get("code") == 40415, "unknown field in an update statement is rejected", r)
    r = c.run("d", cmd("findAndModify", "k", query={"g": 0}, sort={"v": -1},
                       update={"$inc": {"v": 1000}}, new=True, fields={"v": 1}))
    ok(r.get("value") == {"_id": 249, "v": 1249}
       and r.get("lastErrorObject") == {"n": 1, "updatedExisting": True},
       "findAndModify update, sort, new, fields", r)
    r = c.run("d", cmd("findAndModify", "k", query={"_id": 2000}, update={"$set": {"z": 1}},
                       upsert=True))
    ok(r.get("value") is None and r["lastErrorObject"].get("upserted") == 2000,
       "findAndModify upsert returns the old (null) document", r)
    r = c.run("d", cmd("findAndModify", "k", query={"_id": 2000}, remove=True))
    ok(r.get("value") == {"_id": 2000, "z": 1} and r["lastErrorObject"] == {"n": 1},
       "findAndModify remove", r)
    r = c.run("d", cmd("delete", "k", deletes=[{"q": {"g": 0}, "limit": 1}]))
    ok(r.get("n") == 1, "delete limit 1", r)
    r = c.run("d", cmd("delete", "k", deletes=[{"q": {"g": 0}, "limit": 0}]))
    ok(r.get("n") == 83, "delete limit 0", r)
    r = c.run("d", cmd("count", "k", query={"g": 1}))
    ok(r.get("n") == 83, "count", r)
    r = c.run("d", cmd("distinct", "k", key="g"))
    ok(sorted(r.get("values", [])) == [1, 2] or sorted(r.get("values", []),
                                                       key=lambda v: (v is None, v)) == [1, 2],
       "distinct", r)
    r = c.run("d", cmd("aggregate", "k", pipeline=[{"$match": {}},
                                                   {"$group": {"_id": 1, "n": {"$sum": 1}}}],
                       cursor={}))
    ok(r["cursor"]["firstBatch"] == [{"_id": 1, "n": 167}], "aggregate count", r)
    r = c.run("d", cmd("createIndexes", "k", indexes=[{"key": {"g": 1}, "name": "g_1"}]))
    ok(r.get("numIndexesBefore") == 1 and r.get("numIndexesAfter") == 2, "createIndexes", r)
    r = c.run("d", cmd("createIndexes", "k", indexes=[{"key": {"g": 1}, "name": "g_1",
                                                       "unique": True}]))
    ok(r.get("code") in (85, 86), "conflicting index definition refused", r)
    r = c.run("d", cmd("createIndexes", "k", indexes=[{"key": {"g": -1}, "name": "gu",
                                                       "unique": True}]))
    ok(r.get("code") == 11000, "unique index over duplicates refused", r)
    r = c.run("d", cmd("listIndexes", "k"))
    ok([i["name"] for i in r["cursor"]["firstBatch"]] == ["_id_", "g_1"], "listIndexes", r)
    r = c.run("d", cmd("dropIndexes", "k", index="g_1"))
    ok(r.get("ok") == 1 and r.get("nIndexesWas") == 2, "dropIndexes", r)
    r = c.run("d", cmd("dropIndexes", "k", index="nope"))
    ok(r.get("code") == 27, "dropIndexes missing: IndexNotFound", r)
    r = c.run("d", cmd("dropDatabase", 1))
    r2 = c.run("admin", cmd("listDatabases", 1, nameOnly=True))
    ok(r.get("ok") == 1 and "d" not in [x["name"] for x in r2["databases"]], "dropDatabase", r2)


def bank_test(port, accounts=10, workers=6, transfers=40):
    """Concurrent transfers in transactions (retrying transient errors) while readers check,
    inside snapshot transactions, that the total never changes; plain deposits race too."""
    import random
    c = Client(port)
    c.run("admin", cmd("xdbtxReset", 1))
    c.run("bank", cmd("insert", "acct", documents=[SON([("_id", i), ("bal", 100)])
                                                   for i in range(accounts)]))
    problems = []
    stats = {"commits": 0, "retries": 0, "deposits": 0}
    lock = threading.Lock()

    def transfer_worker(seed):
        rnd = random.Random(seed)
        cl = Client(port)
        s = lsid()
        txn = 0
        done = 0
        while done < transfers:
            a, b = rnd.sample(range(accounts), 2)
            txn += 1
            t = dict(lsid=s, txnNumber=Int64(txn), autocommit=False)
            r1 = cl.run("bank", cmd("update", "acct", updates=[
                {"q": {"_id": a}, "u": {"$inc": {"bal": -5}}}]), startTransaction=True, **t)
            r2 = cl.run("bank", cmd("update", "acct", updates=[
                {"q": {"_id": b}, "u": {"$inc": {"bal": 5}}}]), **t) if r1.get("ok") else r1
            if not r2.get("ok"):
                if "TransientTransactionError" not in labels(r2):
                    problems.append(("update", r2))
                    return
                cl.run("admin", cmd("abortTransaction", 1), **t)
                with lock:
                    stats["retries"] += 1
                continue
            r3 = cl.run("admin", cmd("commitTransaction", 1), **t)
            if not r3.get("ok"):
                problems.append(("commit", r3))
                return
            done += 1
            with lock:
                stats["commits"] += 1

    def reader():
        cl = Client(port)
        s = lsid()
        for txn in range(1, 30):
            docs = find_all(cl, "bank", "acct", lsid=s, txnNumber=Int64(txn),
                            startTransaction=True, autocommit=False)
            total = sum(d["bal"] for d in docs if d["_id"] != "dep")
            if total != 100 * accounts:
                problems.append(("snapshot total", total))
            cl.run("admin", cmd("commitTransaction", 1), lsid=s, txnNumber=Int64(txn),
                   autocommit=False)

    def depositor():
        cl = Client(port)
        for _ in range(30):
            r = cl.run("bank", cmd("update", "acct", updates=[
                {"q": {"_id": "dep"}, "u": {"$inc": {"n": 1}}, "upsert": True}]))
            if r.get("ok") != 1:
                problems.append(("deposit", r))
            with lock:
                stats["deposits"] += 1

    threads = [threading.Thread(target=transfer_worker, args=(i,)) for i in range(workers)]
    threads += [threading.Thread(target=reader), threading.Thread(target=depositor)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    docs = find_all(c, "bank", "acct")
    total = sum(d["bal"] for d in docs if d["_id"] != "dep")
    ok(not problems and total == 100 * accounts and stats["commits"] == workers * transfers,
       "concurrent transfers keep the total (%d commits, %d retries, %.1f s)"
       % (stats["commits"], stats["retries"], time.time() - t0), (problems[:3], total, stats))


def wire_tests(c):
    """OP_MSG details: kind-1 sections, moreToCome (no reply), checksum flag."""
    c.run("admin", cmd("xdbtxReset", 1))
    body = SON([("insert", "w"), ("$db", "wire")])
    seq = b"".join(wire.encode({"_id": i}) for i in range(3))
    section = b"documents\0" + seq
    payload = (b"\0" + wire.encode(body) + b"\1" + struct.pack("<i", 4 + len(section)) + section)
    c._send(2013, struct.pack("<I", 0) + payload)
    r = wire.decode(c._recv()[5:])
    ok(r.get("n") == 3, "kind-1 document sequence", r)
    body["documents"] = [{"_id": 10}]
    body["writeConcern"] = {"w": 0}
    c._send(2013, struct.pack("<I", 2) + b"\0" + wire.encode(body))   # moreToCome: no reply
    c._send(2013, struct.pack("<I", 1) + b"\0" + wire.encode(SON([("find", "w"), ("$db", "wire")]))
            + b"\0\0\0\0")                                            # checksum flag + crc
    r = wire.decode(c._recv()[5:])
    ok([d["_id"] for d in r["cursor"]["firstBatch"]] == [0, 1, 2, 10],
       "moreToCome gets no reply; checksummed message accepted", r)


if __name__ == "__main__":
    sys.exit(main())
