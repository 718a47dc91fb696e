"""Logical sessions and transactions.

Session: per-lsid state as mongod keeps it: the highest txnNumber seen, the transaction
for that number (if it was a transaction), and the reply cache of the retryable write for
that number.  checkout() applies mongod's rules for txnNumber/autocommit/startTransaction
and returns what the command runs in: a Transaction, a retryable-write number, or nothing.

Transaction: snapshot (storage.SnapColl per namespace) taken at its first statement, an
overlay of its own writes, the lock keys it holds and its state
(in_progress -> committed | aborted).  All of this runs under the cluster lock.
"""

import time

from .errors import CommandError

IN_PROGRESS = "in_progress"
COMMITTED = "committed"
ABORTED = "aborted"

# Commands allowed inside a multi-document transaction (mongod 6.0).
TXN_COMMANDS = frozenset([
    "find", "getMore", "killCursors", "insert", "update", "delete", "findAndModify",
    "findandmodify", "aggregate", "distinct", "create", "createIndexes",
    "commitTransaction", "abortTransaction",
])
RETRYABLE_WRITES = frozenset(["insert", "update", "delete", "findAndModify", "findandmodify",
                              "commitTransaction", "abortTransaction"])


def lsid_key(lsid):
    ident = lsid.get("id")
    uid = lsid.get("uid")
    return (bytes(ident) if ident is not None else b"", bytes(uid) if uid is not None else b"")


class Transaction(object):
    def __init__(self, session, number, catalog, read_concern, lifetime):
        self.session = session
        self.number = number
        self.state = IN_PROGRESS
        self.snap = catalog.snapshot()
        self.snap_seq = catalog.seq
        self.writes = {}        # ns -> {idkey: doc | None}
        self.created = {}       # ns -> options of collections created inside the txn
        self.new_indexes = {}   # ns -> index specs created inside the txn (new collections)
        self.locks = set()
        self.started = time.monotonic()
        # as in mongod, the limit in force when the transaction starts fixes its expiry
        self.expires = self.started + lifetime
        self.read_concern = read_concern
        self.abort_reason = None

    def overlay(self, ns):
        over = self.writes.get(ns)
        if over is None:
            over = self.writes[ns] = {}
        return over


class Session(object):
    def __init__(self, key, lsid):
        self.key = key
        self.lsid = lsid
        self.txn_number = -1
        self.txn = None
        self.retry_cache = {}     # txnNumber -> (command name, reply)
        self.last_use = time.monotonic()
        self.kills = 0            # killSessions count: commands in flight then are interrupted


class Checkout(object):
    """Result of checkout(): how the command runs."""

    def __init__(self, txn=None, retry_number=None, starts=False):
        self.txn = txn
        self.retry_number = retry_number
        self.starts = starts


def check_allowed_in_txn(name, db):
    """mongod's CommandHelpers::canUseTransactions: OperationNotSupportedInTransaction (263)
    for count, for commands outside the allow list and for the local and config databases."""
    if name == "count":
        raise CommandError(263, "Cannot run 'count' in a multi-document transaction. Please see "
                                "http://dochub.mongodb.org/core/transaction-count for a "
                                "recommended alternative.")
    if name not in TXN_COMMANDS:
        raise CommandError(263, "Cannot run '%s' in a multi-document transaction." % name)
    if db in ("local", "config"):
        raise CommandError(263, "Cannot run command against the '%s' database in a transaction."
                           % db)


def checkout(cluster, session, name, cmd):
    """Validate session fields of `cmd`; start/continue a transaction as mongod does.

    Must be called with the cluster lock held. Raises CommandError.
    """
    txn_number = cmd.get("txnNumber")
    autocommit = cmd.get("autocommit")
    start = cmd.get("startTransaction")
    if txn_number is None:
        if autocommit is not None or start is not None:
            raise CommandError(72, "'autocommit' and 'startTransaction' require a txnNumber")
        return Checkout()
    if cluster.standalone:
        raise CommandError(20, "Transaction numbers are only allowed on a replica set member "
                               "or mongos")
    if session is None:
        raise CommandError(72, "Transaction number requires a session ID to also be specified")
    txn_number = int(txn_number)
    session.last_use = time.monotonic()

    if autocommit is None:
        if start is not None:
            raise CommandError(72, "'startTransaction' requires 'autocommit: false'")
        if name not in RETRYABLE_WRITES or name in ("commitTransaction", "abortTransaction"):
            raise CommandError(50768, "txnNumber may only be provided for multi-document "
                                      "transactions and retryable write commands. autocommit:false "
                                      "was not provided, and %s is not a retryable write command."
                                      % name)
        if txn_number < session.txn_number:
            raise CommandError(225, "Retryable write with txnNumber %d is prohibited on session "
                                    "because a newer retryable write with txnNumber %d has "
                                    "already started on this session."
                                    % (txn_number, session.txn_number))
        if txn_number > session.txn_number:
            cluster.abort_session_txn(session, "superseded by a retryable write")
            session.txn_number = txn_number
            session.txn = None
            session.retry_cache = {}
        elif session.txn is not None:
            raise CommandError(50911, "Cannot start a retryable write at txnNumber %d: a "
                                      "transaction with that number exists" % txn_number)
        return Checkout(retry_number=txn_number)

    if autocommit is not False:
        raise CommandError(72, "Specifying autocommit=true is not allowed.")
    check_allowed_in_txn(name, cmd.get("$db", "admin"))
    if txn_number < session.txn_number:
        raise CommandError(225, "Cannot start transaction %d on session because a newer "
                                "transaction %d has already started."
                                % (txn_number, session.txn_number))
    if start:
        if name in ("commitTransaction", "abortTransaction", "killCursors"):
            raise CommandError(263, "Cannot run '%s' as the first statement of a "
                                    "multi-document transaction." % name)
        if txn_number == session.txn_number:
            raise CommandError(117, "Only servers in a sharded cluster can start a new "
                                    "transaction at the active transaction number")
        rc = cmd.get("readConcern")
        if rc is not None:
            level = rc.get("level", "local")
            if level not in ("local", "majority", "snapshot"):
                raise CommandError(72, "The readConcern level must be either 'local' (default), "
                                       "'majority' or 'snapshot' in order to run in a transaction")
        cluster.abort_session_txn(session, "superseded by a new transaction")
        session.txn_number = txn_number
        session.retry_cache = {}
        session.txn = Transaction(session, txn_number, cluster.catalog, rc,
                                  cluster.params["transactionLifetimeLimitSeconds"])
        cluster.active_txns.add(session.txn)
        cluster.stats["totalStarted"] += 1
        return Checkout(txn=session.txn, starts=True)

    txn = session.txn
    if txn_number > session.txn_number or txn is None:
        raise CommandError(251, "Given transaction number %d does not match any in-progress "
                                "transactions. The active transaction number is %d"
                                % (txn_number, session.txn_number))
    if txn.state == COMMITTED:
        if name == "commitTransaction":
            return Checkout(txn=txn)
        raise CommandError(256, "Transaction %d has been committed." % txn_number)
    if txn.state == ABORTED:
        raise CommandError(251, "Transaction with { txnNumber: %d } has been aborted."
                           % txn_number)
    return Checkout(txn=txn)
