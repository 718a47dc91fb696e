"""Command handlers.  Each takes an OpContext (cluster.py) and returns a reply SON.

Handlers run under the cluster lock and read through ctx.view (committed state, or a
transaction's snapshot plus its writes).  Writes are computed against the view, checked
for duplicate keys, then handed to ctx.apply(), which locks (transactions) or commits
(everything else); a non-transactional statement that meets a transaction's lock waits
in ctx.run_write() and is recomputed.  Query, update, projection, sort and aggregation
semantics come from engine.py.

Write commands report per-statement failures in writeErrors with ok:1 (ordered stops at
the first), everything else fails the command with CommandError.
"""

import os
import time

from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.son import SON

from . import engine
from . import sessions as sess_mod
from .cluster import VERSION, WriteError, duplicate_key, now_ms
from .errors import CommandError
from .storage import ID_INDEX, id_index_spec, index_entries, keyof, _path_values

DEFAULT_BATCH = 101
MAX_BATCH_BYTES = 16 * 1024 * 1024 - 64 * 1024

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


# ---------------------------------------------------------------- insert/update/delete

def run_statements(ctx, cmd, items, each, check=None):
    """Run each(i, item) as one write per statement; collect the write errors,
    stopping at the first one when the command is ordered (mongod's rule).
    check(item), when given, validates a statement before it runs."""
    ordered = cmd.get("ordered", True)
    errors = []
    for i, item in enumerate(items):
        if check:
            check(item)
        try:
            ctx.run_write(lambda: each(i, item))
        except WriteError as e:
            errors.append(write_error_doc(i, e))
            if ordered:
                break
    return errors


def write_reply(errors, fields):
    """The reply of a write command: fields (n, ...), writeErrors, ok."""
    reply = SON(fields)
    if errors:
        reply["writeErrors"] = errors
    reply["ok"] = 1.0
    return reply


def known_fields(command, array, allowed):
    def check(st):
        for k in st:
            if k not in allowed:
                raise CommandError(40415, "BSON field '%s.%s.%s' is an unknown field." % (command, array, k))
    return check


@command("insert")
def cmd_insert(ctx, cmd):
    ns = ctx.ns(coll_name(cmd, "insert"))
    n = 0

    def each(i, doc):
        nonlocal n
        insert_one(ctx, ns, doc)
        n += 1

    errors = run_statements(ctx, cmd, cmd.get("documents") or [], each)
    return write_reply(errors, [("n", n)])


def insert_one(ctx, ns, doc):
    doc = with_id_first(doc)
    check_id(doc)
    idkey = keyof(doc["_id"])
    id_dup_check(ctx, ns, idkey, doc)
    ctx.unique_check(ns, idkey, doc)
    ctx.apply(ns, [(idkey, None, doc)])


UPDATE_FIELDS = frozenset(["q", "u", "multi", "upsert", "arrayFilters", "collation", "hint",
                           "c", "upsertSupplied"])


@command("update")
def cmd_update(ctx, cmd):
    ns = ctx.ns(coll_name(cmd, "update"))
    n = 0
    modified = 0
    upserted = []

    def each(i, st):
        nonlocal n, modified
        matched, mod, up_id = update_statement(ctx, ns, st)
        if up_id is not None:
            upserted.append(SON([("index", i), ("_id", up_id)]))
            n += 1
        else:
            n += matched
        modified += mod

    errors = run_statements(ctx, cmd, cmd.get("updates") or [], each,
                            known_fields("update", "updates", UPDATE_FIELDS))
    fields = [("n", n), ("nModified", modified)]
    if upserted:
        fields.append(("upserted", upserted))
    return write_reply(errors, fields)


def updated_doc(old, u, array_filters, q):
    """Apply update `u` to `old`, keeping _id immutable; returns the new document."""
    if isinstance(u, list):
        raise WriteError(2, "pipeline-style updates are not supported by xdbtx-testd")
    new = engine_update(old, u, array_filters=array_filters, query=q)
    if "_id" not in new:
        new = with_id_first(new, old["_id"])
    elif keyof(new["_id"]) != keyof(old["_id"]):
        raise WriteError(66, "Performing an update on the path '_id' would modify the immutable "
                             "field '_id'")
    elif not is_operator_update(u):
        new = with_id_first(new)
    return new


def upsert_doc(q, u, array_filters):
    if isinstance(u, list):
        raise WriteError(2, "pipeline-style updates are not supported by xdbtx-testd")
    try:
        seed = engine.upsert_seed(q or {})
    except engine.EngineError as e:
        raise WriteError(*engine_error_args(e))
    if is_operator_update(u):
        new = engine_update(seed, u, is_insert=True, array_filters=array_filters, query=q)
    else:
        new = engine_update(SON(), u, is_insert=True)
        if "_id" not in new and "_id" in seed:
            new = with_id_first(new, seed["_id"])
    new = with_id_first(new)
    check_id(new)
    return new


def update_statement(ctx, ns, st):
    q = st.get("q") or {}
    u = st.get("u")
    if u is None:
        raise WriteError(9, "BSON field 'update.updates.u' is missing but a required field")
    multi = as_bool(st.get("multi"))
    if multi and not is_operator_update(u) and not isinstance(u, list):
        raise WriteError(9, "multi update is not supported for replacement-style update")
    af = st.get("arrayFilters")
    found = matching(ctx, ns, q)
    if not multi:
        found = found[:1]
    if not found:
        if not as_bool(st.get("upsert")):
            return 0, 0, None
        new = upsert_doc(q, u, af)
        idkey = keyof(new["_id"])
        id_dup_check(ctx, ns, idkey, new)
        ctx.unique_check(ns, idkey, new)
        ctx.apply(ns, [(idkey, None, new)])
        return 0, 0, new["_id"]
    changes = []
    for old in found:
        new = updated_doc(old, u, af, q)
        if not same_bson(old, new):
            idkey = keyof(old["_id"])
            ctx.unique_check(ns, idkey, new)
            changes.append((idkey, old, new))
    if changes:
        ctx.apply(ns, changes)
    return len(found), len(changes), None


@command("delete")
def cmd_delete(ctx, cmd):
    ns = ctx.ns(coll_name(cmd, "delete"))
    n = 0

    def each(i, st):
        nonlocal n
        n += delete_statement(ctx, ns, st)

    errors = run_statements(ctx, cmd, cmd.get("deletes") or [], each,
                            known_fields("delete", "deletes", ("q", "limit", "collation", "hint")))
    return write_reply(errors, [("n", n)])


def delete_statement(ctx, ns, st):
    limit = st.get("limit", 0)
    if limit not in (0, 1):
        raise WriteError(9, "The limit field in delete objects must be 0 or 1. Got %r" % (limit,))
    found = matching(ctx, ns, st.get("q"))
    if limit == 1:
        found = found[:1]
    if found:
        ctx.apply(ns, [(keyof(d["_id"]), d, None) for d in found])
    return len(found)


@command("findAndModify", "findandmodify")
def cmd_find_and_modify(ctx, cmd):
    name = next(iter(cmd))
    ns = ctx.ns(coll_name(cmd, name))
    remove = as_bool(cmd.get("remove"))
    u = cmd.get("update")
    if remove and u is not None:
        raise CommandError(9, "Cannot specify both an update and remove=true")
    if not remove and u is None:
        raise CommandError(9, "Either an update or remove=true must be specified")
    if remove and (as_bool(cmd.get("upsert")) or as_bool(cmd.get("new"))):
        raise CommandError(9, "Cannot specify both upsert=true/new=true and remove=true")
    try:
        return ctx.run_write(lambda: fam_statement(ctx, ns, cmd, remove, u))
    except WriteError as e:
        raise CommandError(e.code, e.msg, extra=e.extra)


def fam_statement(ctx, ns, cmd, remove, u):
    q = cmd.get("query") or {}
    fields = cmd.get("fields")
    found = matching(ctx, ns, q)
    if cmd.get("sort"):
        found = engine.sort_docs(found, cmd["sort"])
    old = found[0] if found else None
    leo = SON()
    value = None
    if remove:
        if old is not None:
            ctx.apply(ns, [(keyof(old["_id"]), old, None)])
            value = old
        leo["n"] = 1 if old is not None else 0
    elif old is not None:
        new = updated_doc(old, u, cmd.get("arrayFilters"), q)
        if not same_bson(old, new):
            idkey = keyof(old["_id"])
            ctx.unique_check(ns, idkey, new)
            ctx.apply(ns, [(idkey, old, new)])
        leo["n"] = 1
        leo["updatedExisting"] = True
        value = new if as_bool(cmd.get("new")) else old
    elif as_bool(cmd.get("upsert")):
        new = upsert_doc(q, u, cmd.get("arrayFilters"))
        idkey = keyof(new["_id"])
        id_dup_check(ctx, ns, idkey, new)
        ctx.unique_check(ns, idkey, new)
        ctx.apply(ns, [(idkey, None, new)])
        leo["n"] = 1
        leo["updatedExisting"] = False
        leo["upserted"] = new["_id"]
        value = new if as_bool(cmd.get("new")) else None
    else:
        leo["n"] = 0
        leo["updatedExisting"] = False
    if value is not None and fields:
        value = engine.project(value, fields)
    return SON([("lastErrorObject", leo), ("value", value), ("ok", 1.0)])


# ---------------------------------------------------------------- reads and cursors

class Cursor(object):
    """An open cursor: its (materialized) results and how far the client has read."""

    def __init__(self, cid, ns, docs, session_key, txn):
        self.id = cid
        self.ns = ns
        self.docs = docs
        self.pos = 0
        self.session_key = session_key
        self.txn = txn          # cursors of a transaction die with it, as in mongod


def take_batch(docs, start, size):
    """Up to `size` docs (None = no count limit) from start, bounded by reply size."""
    from .wire import encode
    out = []
    total = 0
    i = start
    while i < len(docs) and (size is None or len(out) < size):
        d = docs[i]
        total += len(encode(d))
        if out and total > MAX_BATCH_BYTES:
            break
        out.append(d)
        i += 1
    return out, i


def cursor_reply(ctx, ns, docs, batch_size, single_batch=False):
    """First batch of `docs` (batch_size 0: empty first batch) and a cursor for the rest."""
    if batch_size == 0 and not single_batch:
        batch, pos = [], 0
    else:
        batch, pos = take_batch(docs, 0, batch_size or None)
    cid = 0
    if pos < len(docs) and not single_batch:
        ctx.cluster.cursor_counter += 1
        cid = ctx.cluster.cursor_counter + (ctx.cluster.index + 1) * 1000000000
        c = Cursor(cid, ns, docs, ctx.session.key if ctx.session else None, ctx.txn)
        c.pos = pos
        ctx.cluster.cursors[cid] = c
    return SON([("cursor", SON([("firstBatch", batch), ("id", Int64(cid)), ("ns", ns)])),
                ("ok", 1.0)])


def batch_size_of(value, default):
    if value is None:
        return default
    value = int(value)
    if value < 0:
        raise CommandError(51024, "BSON field 'batchSize' value must be >= 0, actual value '%d'"
                           % value)
    return value


@command("find")
def cmd_find(ctx, cmd):
    ns = ctx.ns(coll_name(cmd, "find"))
    docs = matching(ctx, ns, cmd.get("filter"))
    if cmd.get("sort"):
        docs = engine.sort_docs(docs, cmd["sort"])
    skip = int(cmd.get("skip") or 0)
    if skip < 0:
        raise CommandError(51024, "BSON field 'skip' value must be >= 0")
    limit = int(cmd.get("limit") or 0)
    if limit < 0:
        raise CommandError(51024, "BSON field 'limit' value must be >= 0, actual value '%d'"
                           % limit)
    single = as_bool(cmd.get("singleBatch"))
    docs = docs[skip:]
    if limit:
        docs = docs[:limit]
    if cmd.get("projection"):
        docs = [engine.project(d, cmd["projection"]) for d in docs]
    size = batch_size_of(cmd.get("batchSize"), DEFAULT_BATCH)
    if limit and size > limit:
        size = limit
    return cursor_reply(ctx, ns, docs, size, single)


@command("getMore")
def cmd_get_more(ctx, cmd):
    cid = int(cmd["getMore"])
    c = ctx.cluster.cursors.get(cid)
    if c is None:
        raise CommandError(43, "cursor id %d not found" % cid)
    coll = cmd.get("collection")
    if coll is not None and "%s.%s" % (ctx.db, coll) != c.ns:
        raise CommandError(13, "Requested getMore on namespace '%s.%s', but cursor belongs to a "
                               "different namespace %s" % (ctx.db, coll, c.ns))
    size = batch_size_of(cmd.get("batchSize"), 0)
    batch, c.pos = take_batch(c.docs, c.pos, size or None)
    if c.pos >= len(c.docs):
        del ctx.cluster.cursors[cid]
        cid = 0
    return SON([("cursor", SON([("nextBatch", batch), ("id", Int64(cid)), ("ns", c.ns)])),
                ("ok", 1.0)])


@command("killCursors")
def cmd_kill_cursors(ctx, cmd):
    killed, missing = [], []
    for cid in cmd.get("cursors") or []:
        if ctx.cluster.cursors.pop(int(cid), None) is not None:
            killed.append(Int64(cid))
        else:
            missing.append(Int64(cid))
    return SON([("cursorsKilled", killed), ("cursorsNotFound", missing), ("cursorsAlive", []),
                ("cursorsUnknown", []), ("ok", 1.0)])


@command("aggregate")
def cmd_aggregate(ctx, cmd):
    target = cmd["aggregate"]
    pipeline = cmd.get("pipeline")
    if not isinstance(pipeline, list):
        raise CommandError(14, "'pipeline' option must be specified as an array")
    if "cursor" not in cmd and not cmd.get("explain"):
        raise CommandError(9, "The 'cursor' option is required, except for aggregate with the "
                              "explain argument")
    for stage in pipeline:
        if isinstance(stage, dict) and stage and next(iter(stage)) in ("$out", "$merge"):
            if ctx.txn is not None:
                raise CommandError(263, "%s cannot be used in a transaction" % next(iter(stage)))
            raise CommandError(2, "%s is not supported by xdbtx-testd" % next(iter(stage)))
    if target == 1:
        ns = "%s.$cmd.aggregate" % ctx.db
        docs = []
    else:
        ns = ctx.ns(coll_name(cmd, "aggregate"))
        docs = ctx.view.docs(ns)
    out = engine.aggregate(docs, pipeline)
    size = batch_size_of((cmd.get("cursor") or {}).get("batchSize"), DEFAULT_BATCH)
    return cursor_reply(ctx, ns, out, size)


@command("count")
def cmd_count(ctx, cmd):
    ns = ctx.ns(coll_name(cmd, "count"))
    docs = matching(ctx, ns, cmd.get("query"))
    skip = int(cmd.get("skip") or 0)
    limit = abs(int(cmd.get("limit") or 0))
    docs = docs[skip:]
    if limit:
        docs = docs[:limit]
    return SON([("n", len(docs)), ("ok", 1.0)])


@command("distinct")
def cmd_distinct(ctx, cmd):
    ns = ctx.ns(coll_name(cmd, "distinct"))
    key = cmd.get("key")
    if not isinstance(key, str):
        raise CommandError(14, "BSON field 'distinct.key' is the wrong type, expected string")
    seen = set()
    values = []
    for d in matching(ctx, ns, cmd.get("query")):
        for v in _path_values(d, key):
            k = keyof(v)
            if k not in seen:
                seen.add(k)
                values.append(v)
    return SON([("values", values), ("ok", 1.0)])


# ---------------------------------------------------------------- DDL

@command("create")
def cmd_create(ctx, cmd):
    ns = ctx.ns(coll_name(cmd, "create"))
    if "viewOn" in cmd:
        raise CommandError(2, "views are not supported by xdbtx-testd")
    if ctx.view.exists(ns):
        raise CommandError(48, "Collection %s already exists." % ns)
    opts = SON((k, v) for k, v in cmd.items()
               if k not in ("create", "$db", "lsid", "txnNumber", "autocommit", "startTransaction",
                            "writeConcern", "readConcern", "$clusterTime", "$readPreference",
                            "comment", "maxTimeMS"))
    if ctx.txn is not None:
        if ns in ctx.catalog.colls:
            raise CommandError(112, "Collection %s was created after the transaction's snapshot"
                               % ns)
        ctx.txn.created[ns] = opts
    else:
        ctx.cluster.create_collection(ns, opts)
        ctx.cluster.bump_versions([])
    return ok()


def wait_ns_unlocked(ctx, prefix):
    while ctx.cluster.ns_locked(prefix):
        ctx.wait_unblocked()


@command("drop")
def cmd_drop(ctx, cmd):
    ns = ctx.ns(coll_name(cmd, "drop"))
    wait_ns_unlocked(ctx, ns)
    coll = ctx.catalog.colls.pop(ns, None)
    if coll is None:
        raise CommandError(26, "ns not found")
    ctx.cluster.bump_versions([])
    return SON([("nIndexesWas", len(coll.indexes)), ("ns", ns), ("ok", 1.0)])


@command("dropDatabase")
def cmd_drop_database(ctx, cmd):
    prefix = ctx.db + "."
    wait_ns_unlocked(ctx, ctx.db)
    for ns in [n for n in ctx.catalog.colls if n.startswith(prefix)]:
        del ctx.catalog.colls[ns]
    ctx.cluster.bump_versions([])
    return SON([("dropped", ctx.db), ("ok", 1.0)])


def coll_info(ns, coll, name_only):
    name = ns.split(".", 1)[1]
    if name_only:
        return SON([("name", name), ("type", "collection")])
    return SON([("name", name), ("type", "collection"), ("options", coll.options),
                ("info", SON([("readOnly", False), ("uuid", coll.uuid)])),
                ("idIndex", id_index_spec())])


@command("listCollections")
def cmd_list_collections(ctx, cmd):
    prefix = ctx.db + "."
    name_only = as_bool(cmd.get("nameOnly"))
    flt = cmd.get("filter")
    out = []
    for ns in sorted(ctx.view.namespaces()):
        if not ns.startswith(prefix):
            continue
        coll = ctx.view.coll(ns)
        if coll is None:
            continue
        info = coll_info(ns, coll, name_only)
        if flt and not engine.match(info, flt):
            continue
        out.append(info)
    size = batch_size_of((cmd.get("cursor") or {}).get("batchSize"), DEFAULT_BATCH)
    return cursor_reply(ctx, "%s.$cmd.listCollections" % ctx.db, out, size)


@command("listDatabases")
def cmd_list_databases(ctx, cmd):
    require_admin(ctx, "listDatabases")
    names = {"admin", "config", "local"}
    names.update(ns.split(".", 1)[0] for ns in ctx.catalog.colls)
    flt = cmd.get("filter")
    out = []
    for name in sorted(names):
        if as_bool(cmd.get("nameOnly")):
            info = SON([("name", name)])
        else:
            info = SON([("name", name), ("sizeOnDisk", Int64(8192)), ("empty", False)])
        if flt and not engine.match(info, flt):
            continue
        out.append(info)
    reply = SON([("databases", out)])
    if not as_bool(cmd.get("nameOnly")):
        reply["totalSize"] = Int64(8192 * len(out))
        reply["totalSizeMb"] = Int64(0)
    reply["ok"] = 1.0
    return reply


@command("listIndexes")
def cmd_list_indexes(ctx, cmd):
    ns = ctx.ns(coll_name(cmd, "listIndexes"))
    if not ctx.view.exists(ns):
        raise CommandError(26, "ns does not exist: %s" % ns)
    specs = list(ctx.view.indexes(ns))
    if ctx.txn is not None:
        specs.extend(ctx.txn.new_indexes.get(ns, []))
    size = batch_size_of((cmd.get("cursor") or {}).get("batchSize"), DEFAULT_BATCH)
    return cursor_reply(ctx, ns, specs, size)


def normalize_index(spec):
    key = spec.get("key")
    if not isinstance(key, dict) or not key:
        raise CommandError(67, "Error in specification %r :: caused by :: The 'key' field must be "
                               "a non-empty object" % (dict(spec),))
    name = spec.get("name")
    if name is None:
        name = "_".join("%s_%s" % (k, v) for k, v in key.items())
    out = SON([("v", 2), ("key", key), ("name", name)])
    for k, v in spec.items():
        if k not in ("key", "name", "v", "ns"):
            out[k] = v
    return out


def index_options(spec):
    return SON((k, v) for k, v in spec.items() if k not in ("v", "name"))


@command("createIndexes")
def cmd_create_indexes(ctx, cmd):
    ns = ctx.ns(coll_name(cmd, "createIndexes"))
    specs = cmd.get("indexes")
    if not isinstance(specs, list) or not specs:
        raise CommandError(2, "Must specify at least one index to create")
    specs = [normalize_index(s) for s in specs]
    if ctx.txn is not None:
        if ns in ctx.txn.snap:
            raise CommandError(263, "Cannot create new indexes on existing collection %s in a "
                                    "multi-document transaction." % ns)
        created = ns not in ctx.txn.created
        ctx.txn.created.setdefault(ns, SON())
        pending = ctx.txn.new_indexes.setdefault(ns, [])
        before = 1 + len(pending)
        pending.extend(specs)
        return SON([("numIndexesBefore", before), ("numIndexesAfter", before + len(specs)),
                    ("createdCollectionAutomatically", created), ("ok", 1.0)])
    created = False
    coll = ctx.catalog.colls.get(ns)
    if coll is None:
        coll = ctx.cluster.create_collection(ns)
        created = True
    before = len(coll.indexes)
    new = []
    for spec in specs:
        dup = None
        for ix in coll.indexes + new:
            if ix["name"] == spec["name"]:
                if not same_bson(index_options(ix), index_options(spec)):
                    code = 86 if not same_bson(ix["key"], spec["key"]) else 85
                    raise CommandError(code, "An existing index has the same name as the requested "
                                             "index but different options. Requested index: %r, "
                                             "existing index: %r" % (dict(spec), dict(ix)))
                dup = ix
                break
            if same_bson(ix["key"], spec["key"]) and ix["name"] != ID_INDEX:
                raise CommandError(85, "Index already exists with a different name: %s"
                                   % ix["name"])
        if dup is None:
            new.append(spec)
    for spec in new:
        if spec.get("unique"):
            seen = {}
            for d in coll.docs.values():
                for ek, vals in index_entries(spec, d, engine.match).items():
                    if ek in seen:
                        err = duplicate_key(ns, spec, vals)
                        raise CommandError(11000, err.msg, extra=err.extra)
                    seen[ek] = True
    coll.indexes = coll.indexes + new
    ctx.cluster.bump_versions([])
    reply = SON([("numIndexesBefore", before), ("numIndexesAfter", len(coll.indexes)),
                 ("createdCollectionAutomatically", created)])
    if not new:
        reply["note"] = "all indexes already exist"
    reply["ok"] = 1.0
    return reply


@command("dropIndexes", "deleteIndexes")
def cmd_drop_indexes(ctx, cmd):
    name = next(iter(cmd))
    ns = ctx.ns(coll_name(cmd, name))
    coll = ctx.catalog.colls.get(ns)
    if coll is None:
        raise CommandError(26, "ns not found %s" % ns)
    was = len(coll.indexes)
    which = cmd.get("index")
    if which == "*":
        keep = [ix for ix in coll.indexes if ix["name"] == ID_INDEX]
    else:
        wanted = which if isinstance(which, list) else [which]
        keep = list(coll.indexes)
        for w in wanted:
            if isinstance(w, str):
                hit = [ix for ix in keep if ix["name"] == w]
                label = "name [%s]" % w
            else:
                hit = [ix for ix in keep if same_bson(ix["key"], w)]
                label = "key %r" % (dict(w),)
            if not hit:
                raise CommandError(27, "index not found with %s" % label)
            if hit[0]["name"] == ID_INDEX:
                raise CommandError(72, "cannot drop _id index")
            keep.remove(hit[0])
    coll.indexes = keep
    ctx.cluster.bump_versions([])
    return SON([("nIndexesWas", was), ("ok", 1.0)])


# ---------------------------------------------------------------- transactions and sessions

@command("commitTransaction")
def cmd_commit(ctx, cmd):
    require_admin(ctx, "commitTransaction")
    txn = ctx.txn
    if txn is None:
        raise CommandError(50768, "commitTransaction must be run within a transaction")
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
    if txn.state == sess_mod.IN_PROGRESS:
        ctx.cluster.abort_txn(txn, "abortTransaction")
    return ok()


def end_sessions(ctx, lsids, reason):
    for lsid in lsids or []:
        if not isinstance(lsid, dict):
            continue
        s = ctx.cluster.sessions.pop(sess_mod.lsid_key(lsid), None)
        if s is not None:
            ctx.cluster.abort_session_txn(s, reason)
            kill_session_cursors(ctx, s.key)


def kill_session_cursors(ctx, key):
    for cid in [cid for cid, c in ctx.cluster.cursors.items() if c.session_key == key]:
        del ctx.cluster.cursors[cid]


@command("endSessions")
def cmd_end_sessions(ctx, cmd):
    end_sessions(ctx, cmd.get("endSessions"), "session ended")
    return ok()


@command("killSessions")
def cmd_kill_sessions(ctx, cmd):
    end_sessions(ctx, cmd.get("killSessions"), "session killed")
    return ok()


@command("killAllSessions", "killAllSessionsByPattern")
def cmd_kill_all_sessions(ctx, cmd):
    for s in list(ctx.cluster.sessions.values()):
        ctx.cluster.abort_session_txn(s, "session killed")
    ctx.cluster.cursors.clear()
    ctx.cluster.sessions.clear()
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
