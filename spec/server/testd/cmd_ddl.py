"""Catalog commands: create, drop, dropDatabase, listCollections, listDatabases,
listIndexes, createIndexes, dropIndexes.

Inside a transaction only create and createIndexes on a collection new to the
transaction run (the sessions module refuses the rest); they take effect at commit.
"""

from bson.int64 import Int64
from bson.son import SON

from . import engine
from .cluster import duplicate_key
from .cmd_read import DEFAULT_BATCH, batch_size_of, cursor_reply
from .commands import as_bool, coll_name, command, ok, require_admin, same_bson
from .errors import CommandError
from .storage import ID_INDEX, id_index_spec, index_entries


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
    if key is None:
        raise CommandError(9, "Error in specification %r :: caused by :: The 'key' field is a "
                              "required property of an index specification" % (dict(spec),))
    if not isinstance(key, dict) or not key:
        raise CommandError(67, "Error in specification %r :: caused by :: Index keys cannot be "
                               "empty." % (dict(spec),))
    name = spec.get("name")
    if name is None:
        raise CommandError(9, "Error in specification %r :: caused by :: The 'name' field is a "
                              "required property of an index specification" % (dict(spec),))
    if not isinstance(name, str):
        raise CommandError(14, "Error in specification %r :: caused by :: The field 'name' must "
                               "be a string" % (dict(spec),))
    if name == "":
        raise CommandError(67, "Error in specification %r :: caused by :: index name cannot be "
                               "empty" % (dict(spec),))
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
