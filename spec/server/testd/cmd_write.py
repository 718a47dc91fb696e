"""Write commands: insert, update, delete, findAndModify.

Writes are computed against ctx.view, checked for duplicate keys, then handed to
ctx.apply(), which locks (transactions) or commits (everything else); a
non-transactional statement that meets a transaction's lock waits in ctx.run_write() and
is recomputed. Per-statement failures go in writeErrors with ok:1 (ordered stops at the
first); everything else fails the command with CommandError.
"""

from bson.son import SON

from . import engine
from .cluster import WriteError
from .commands import (as_bool, check_id, coll_name, command, engine_error_args, engine_update,
                       id_dup_check, is_operator_update, matching, same_bson, with_id_first,
                       write_error_doc)
from .errors import CommandError
from .storage import keyof


# ---------------------------------------------------------------- insert/update/delete

def run_statements(ctx, cmd, items, each, check=None):
    """Run each(i, item) as one write per statement; collect the write errors,
    stopping at the first one when the command is ordered or runs in a transaction
    (mongod's rule: in a transaction the first write error fails the whole batch and
    aborts the transaction). check(item), when given, validates a statement before it
    runs."""
    ordered = cmd.get("ordered", True) or ctx.txn is not None
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
