"""Errors and error labels of the xdbtx test server.

A command handler raises CommandError; the dispatcher (cluster.py) turns it into a
`{ok: 0, errmsg, code, codeName, errorLabels?}` reply. The label rules mirror what a
mongod of wire version 17 adds by itself (drivers at wire >= 9 no longer compute
RetryableWriteError, so the server must).
"""

CODE_NAMES = {
    1: "InternalError", 2: "BadValue", 4: "NoSuchKey", 5: "GraphContainsCycle",
    6: "HostUnreachable", 7: "HostNotFound", 8: "UnknownError", 9: "FailedToParse",
    10: "CannotMutateObject", 11: "UserNotFound", 13: "Unauthorized", 14: "TypeMismatch",
    15: "Overflow", 16: "InvalidLength", 18: "AuthenticationFailed", 20: "IllegalOperation",
    22: "InvalidBSON", 24: "LockTimeout", 26: "NamespaceNotFound", 27: "IndexNotFound",
    28: "PathNotViable", 40: "ConflictingUpdateOperators", 43: "CursorNotFound",
    46: "LockBusy", 48: "NamespaceExists", 50: "MaxTimeMSExpired", 52: "DollarPrefixedFieldName",
    54: "NotSingleValueField", 59: "CommandNotFound", 63: "StaleShardVersion",
    64: "WriteConcernFailed", 66: "ImmutableField", 67: "CannotCreateIndex",
    68: "IndexAlreadyExists", 72: "InvalidOptions", 73: "InvalidNamespace",
    79: "UnknownReplWriteConcern", 85: "IndexOptionsConflict", 86: "IndexKeySpecsConflict",
    89: "NetworkTimeout", 91: "ShutdownInProgress", 96: "OperationFailed",
    100: "UnsatisfiableWriteConcern", 112: "WriteConflict", 117: "ConflictingOperationInProgress",
    121: "DocumentValidationFailure", 125: "CommandFailed", 133: "FailedToSatisfyReadPreference",
    150: "StaleEpoch", 166: "CommandNotSupportedOnView", 189: "PrimarySteppedDown",
    202: "NetworkInterfaceExceededTimeLimit", 211: "KeyNotFound",
    217: "IncompleteTransactionHistory",
    225: "TransactionTooOld", 239: "SnapshotTooOld", 244: "TransactionAborted",
    246: "SnapshotUnavailable", 251: "NoSuchTransaction", 256: "TransactionCommitted",
    257: "TransactionTooLarge", 262: "ExceededTimeLimit", 263: "OperationNotSupportedInTransaction",
    267: "PreparedTransactionInProgress", 276: "CommandOnShardedViewNotSupportedOnMongod",
    341: "StaleChunkHistory", 9001: "SocketException", 10107: "NotWritablePrimary",
    10334: "BSONObjectTooLarge", 11000: "DuplicateKey", 11600: "InterruptedAtShutdown",
    11601: "Interrupted", 11602: "InterruptedDueToReplStateChange", 13388: "StaleConfig",
    13435: "NotPrimaryNoSecondaryOk", 13436: "NotPrimaryOrSecondary", 40415: "Location40415",
    51024: "Location51024",
}

# Codes that get TransientTransactionError when they fail a statement inside a transaction.
TRANSIENT_CODES = frozenset([112, 251, 24, 10107, 11600, 11602, 189, 91, 13435, 13436,
                             6, 7, 89, 9001, 262, 246, 267, 239, 341])
# ... and when they fail commitTransaction/abortTransaction (mongod's
# isTransientTransactionError with isCommitOrAbort: NoSuchTransaction only without a
# writeConcernError, plus write conflicts, lock timeouts and snapshot errors).
COMMIT_TRANSIENT_CODES = frozenset([251, 112, 24, 246, 267, 239, 341])
# Codes that get RetryableWriteError on commit/abort and on retryable writes.
RETRYABLE_CODES = frozenset([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436])


def code_name(code):
    return CODE_NAMES.get(code, "Location%d" % code)


class CommandError(Exception):
    """A command failure: code, message, optional explicit labels (None = compute)."""

    def __init__(self, code, msg, labels=None, extra=None):
        Exception.__init__(self, msg)
        self.code = code
        self.msg = msg
        self.labels = labels
        self.extra = extra or {}


class CloseConnection(Exception):
    """Raised to drop the client connection without a reply (failpoint closeConnection)."""


def computed_labels(code, in_txn, txn_control, retryable_write):
    """Labels mongod adds to a top-level error.

    in_txn: the command ran (or tried to run) as a transaction statement;
    txn_control: it is commitTransaction/abortTransaction;
    retryable_write: a write sent with txnNumber but no autocommit.
    """
    labels = []
    if txn_control:
        if code in COMMIT_TRANSIENT_CODES:
            labels.append("TransientTransactionError")
        if code in RETRYABLE_CODES:
            labels.append("RetryableWriteError")
    elif in_txn:
        if code in TRANSIENT_CODES:
            labels.append("TransientTransactionError")
    elif retryable_write and code in RETRYABLE_CODES:
        labels.append("RetryableWriteError")
    return labels
