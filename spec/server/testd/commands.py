"""The command registry and the helpers every handler module shares.

Each handler takes an OpContext (cluster.py) and returns a reply SON; @command(name)
registers it. Handlers run under the cluster lock and read through ctx.view (committed
state, or a transaction's snapshot plus its writes). The handlers live by kind in
cmd_write (insert/update/delete/findAndModify), cmd_read (cursors, find, aggregate, count,
distinct), cmd_ddl (collections, databases, indexes) and cmd_admin (transactions,
sessions, failpoints, parameters, diagnostics, the xdbtx* test commands); importing this
module registers them all. Query, update, projection, sort and aggregation semantics come
from engine.py.
"""

from bson.objectid import ObjectId
from bson.regex import Regex
from bson.son import SON

from . import engine
from .cluster import WriteError, duplicate_key
from .errors import CommandError
from .storage import id_index_spec, keyof

# Commands that do not take part in session checkout (no txnNumber handling).
NO_SESSION_COMMANDS = frozenset([
    "ping", "buildInfo", "buildinfo", "configureFailPoint", "setParameter", "getParameter",
    "serverStatus", "endSessions", "killSessions", "killAllSessions",
    "killAllSessionsByPattern", "refreshSessions", "startSession", "whatsmyuri",
    "connectionStatus",
])

HANDLERS = {}


def command(*names):
    def register(fn):
        for n in names:
            HANDLERS[n] = fn
        return fn
    return register


def run(ctx, name):
    handler = HANDLERS.get(name)
    if handler is None:
        raise CommandError(59, "no such command: '%s'" % name)
    try:
        return handler(ctx, ctx.cmd)
    except engine.EngineError as e:
        raise CommandError(*engine_error_args(e))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        # malformed command fields (or a server bug): fail this command like mongod's
        # parser would, and leave a trace in the server log
        import sys
        import traceback
        sys.stderr.write("xdbtx-testd: %s failed: %s" % (name, traceback.format_exc()))
        raise CommandError(2, "bad '%s' command: %s: %s" % (name, type(e).__name__, e))


def engine_error_args(e):
    code = getattr(e, "code", 2) or 2
    msg = getattr(e, "message", None) or str(e)
    return code, msg


def ok(**fields):
    r = SON()
    for k, v in fields.items():
        r[k] = v
    r["ok"] = 1.0
    return r


def require_admin(ctx, name):
    if ctx.db != "admin":
        raise CommandError(13, "%s may only be run against the admin database." % name)


def coll_name(cmd, name):
    value = cmd[name]
    if not isinstance(value, str) or not value:
        raise CommandError(73, "collection name has invalid type %s" % type(value).__name__)
    return value


def as_bool(v):
    return bool(v) if v is not None else False


# ---------------------------------------------------------------- documents

def with_id_first(doc, idval=None):
    """Return doc with _id as its first field (adding idval or a new ObjectId if missing)."""
    if "_id" in doc:
        if next(iter(doc)) == "_id":
            return doc
        idval = doc["_id"]
    elif idval is None:
        idval = ObjectId()
    out = SON([("_id", idval)])
    for k, v in doc.items():
        if k != "_id":
            out[k] = v
    return out


def check_id(doc):
    v = doc.get("_id")
    if isinstance(v, list):
        raise WriteError(2, "can't use an array for _id")
    if hasattr(v, "pattern") and hasattr(v, "flags") and not isinstance(v, str):
        raise WriteError(2, "can't use a regex for _id")


def same_bson(a, b):
    from .wire import encode
    return encode(a) == encode(b)


def _simple_id(flt):
    """The _id value of a filter that pins _id by plain equality, else None."""
    v = flt.get("_id", None) if isinstance(flt, dict) else None
    if v is None or isinstance(v, (list, Regex)) or hasattr(v, "flags"):
        return None
    if isinstance(v, dict):
        if any(isinstance(k, str) and k.startswith("$") for k in v):
            if list(v.keys()) == ["$eq"] and not isinstance(v["$eq"], (list, dict, Regex)):
                return v["$eq"]
            return None
    return v


def matching(ctx, ns, flt):
    flt = flt if flt is not None else {}
    idv = _simple_id(flt)
    if idv is not None:
        d = ctx.view.get(ns, keyof(idv))
        return [d] if d is not None and engine.match(d, flt) else []
    return [d for d in ctx.view.docs(ns) if engine.match(d, flt)]


def id_dup_check(ctx, ns, idkey, doc):
    if ctx.view.get(ns, idkey) is not None:
        raise duplicate_key(ns, id_index_spec(), [doc["_id"]])


def write_error_doc(index, err):
    d = SON([("index", index), ("code", err.code), ("errmsg", err.msg)])
    for k, v in err.extra.items():
        d[k] = v
    return d


def engine_update(doc, u, **kw):
    try:
        return engine.apply_update(doc, u, **kw)
    except engine.EngineError as e:
        raise WriteError(*engine_error_args(e))


def is_operator_update(u):
    return isinstance(u, dict) and len(u) > 0 and next(iter(u)).startswith("$")


# the handler modules register themselves (they import the helpers above)
from . import cmd_write, cmd_read, cmd_ddl, cmd_admin  # noqa: E402,F401  (registers handlers)
