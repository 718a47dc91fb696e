"""Read commands and cursors: find, getMore, killCursors, aggregate, count, distinct.

Results are materialized when a cursor opens (a point-in-time result of ctx.view);
cursors are kept per cluster and die with the transaction that opened them.
"""

import functools

from bson.int64 import Int64
from bson.son import SON

from . import engine
from .commands import as_bool, coll_name, command, matching
from .errors import CommandError
from .storage import keyof

DEFAULT_BATCH = 101
MAX_BATCH_BYTES = 16 * 1024 * 1024 - 64 * 1024


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


def distinct_values(doc, path):
    """The values distinct takes from doc at a dotted path, as mongod's
    extractAllElementsAlongPath: a field named by the whole path first; arrays met along
    the path are searched element by element (a numeric component indexes them instead);
    an array at the end gives its elements (one level). Missing gives nothing."""
    if path in doc:
        v = doc[path]
        return list(v) if isinstance(v, list) else [v]
    head, dot, rest = path.partition(".")
    if not dot or head not in doc:
        return []
    v = doc[head]
    if isinstance(v, dict):
        return distinct_values(v, rest)
    if isinstance(v, list):
        first = rest.split(".", 1)[0]
        if first.isdigit():
            return distinct_values(SON((str(i), e) for i, e in enumerate(v)), rest)
        out = []
        for e in v:
            if isinstance(e, dict):
                out.extend(distinct_values(e, rest))
            elif isinstance(e, list):
                out.extend(distinct_values(SON((str(i), x) for i, x in enumerate(e)), rest))
        return out
    return []


@command("distinct")
def cmd_distinct(ctx, cmd):
    ns = ctx.ns(coll_name(cmd, "distinct"))
    key = cmd.get("key")
    if not isinstance(key, str):
        raise CommandError(14, "BSON field 'distinct.key' is the wrong type, expected string")
    seen = set()
    values = []
    for d in matching(ctx, ns, cmd.get("query")):
        for v in distinct_values(d, key):
            k = keyof(v)
            if k not in seen:
                seen.add(k)
                values.append(v)
    # mongod collects them in an ordered set (BSONElementSet): BSON order, first one kept
    values.sort(key=functools.cmp_to_key(engine.compare))
    return SON([("values", values), ("ok", 1.0)])
