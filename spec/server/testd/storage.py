"""Multi-version document storage for one cluster.

Committed state (Catalog): namespace -> Collection; a Collection's documents live in a
dict keyed by the canonical key of `_id` (insertion order = natural order).  Documents
are never mutated in place: a write stores a new document object.

Snapshots are cheap: a transaction keeps references to the committed dicts as they were
at its first statement and marks them shared; the next committed write to a shared dict
copies it first (copy-on-write).  A transaction's own writes live in an overlay
(ns -> {idkey: doc | None for deleted}); TxnView merges snapshot and overlay.

Write-write conflicts use lock keys: (ns, index name, index entry).  `_id_` entries lock
documents, unique secondary index entries lock key values.  `locks` maps a key to the
open transaction that wrote it; `versions` maps a key to the commit sequence number that
last changed it, so a transaction whose snapshot predates that commit conflicts too.
"""

import datetime
import itertools
import uuid

from bson.binary import Binary
from bson.code import Code
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.son import SON
from bson.timestamp import Timestamp

import collections.abc


def keyof(value):
    """Hashable key with BSON equality semantics (1 == 1.0 == Int64(1) == Decimal 1)."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, Code):
        return ("code", str(value), keyof(value.scope) if value.scope is not None else None)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, (int, float)):
        if value != value:
            return ("num", "nan")
        return ("num", value)
    if isinstance(value, Decimal128):
        d = value.to_decimal()
        if d.is_nan():
            return ("num", "nan")
        if d.is_infinite():
            return ("num", float(d))
        return ("num", d)
    if isinstance(value, Binary):
        return ("bin", value.subtype, bytes(value))
    if isinstance(value, bytes):
        return ("bin", 0, value)
    if isinstance(value, ObjectId):
        return ("oid", value.binary)
    if isinstance(value, datetime.datetime):
        return ("date", value.replace(tzinfo=None) if value.tzinfo else value)
    if isinstance(value, Timestamp):
        return ("ts", value.time, value.inc)
    if isinstance(value, Regex):
        return ("re", value.pattern, value.flags)
    if isinstance(value, MinKey):
        return ("minkey",)
    if isinstance(value, MaxKey):
        return ("maxkey",)
    if isinstance(value, DBRef):
        return keyof(value.as_doc())
    if isinstance(value, collections.abc.Mapping):
        return ("doc", tuple((k, keyof(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("arr", tuple(keyof(v) for v in value))
    if hasattr(value, "pattern") and hasattr(value, "flags"):  # compiled re
        return ("re", value.pattern, value.flags)
    return ("other", repr(value))


ID_INDEX = "_id_"


def id_index_spec():
    return SON([("v", 2), ("key", SON([("_id", 1)])), ("name", ID_INDEX)])


def _path_values(doc, path):
    """Values at a dotted path for index entries (arrays expand one level per step)."""
    cur = [doc]
    for part in path.split("."):
        nxt = []
        for v in cur:
            if isinstance(v, collections.abc.Mapping):
                if part in v:
                    nxt.append(v[part])
            elif isinstance(v, list):
                if part.isdigit() and int(part) < len(v):
                    nxt.append(v[int(part)])
                for e in v:
                    if isinstance(e, collections.abc.Mapping) and part in e:
                        nxt.append(e[part])
        cur = nxt
    out = []
    for v in cur:
        if isinstance(v, list):
            out.extend(v if v else [None])
        else:
            out.append(v)
    return out


def index_entries(spec, doc, match=None):
    """Set of (entry key, display values) a document contributes to a unique index."""
    fields = list(spec["key"].keys())
    if spec.get("sparse") and not any(_path_values(doc, f) for f in fields):
        return {}
    pfe = spec.get("partialFilterExpression")
    if pfe is not None and match is not None and not match(doc, pfe):
        return {}
    per_field = []
    for f in fields:
        vals = _path_values(doc, f)
        per_field.append(vals if vals else [None])
    entries = {}
    for combo in itertools.product(*per_field):
        entries[tuple(keyof(v) for v in combo)] = combo
    return entries


class Collection(object):
    def __init__(self, db, name, options=None):
        self.db = db
        self.name = name
        self.uuid = Binary(uuid.uuid4().bytes, 4)
        self.docs = {}
        self.shared = False
        self.indexes = [id_index_spec()]
        self.options = options if options is not None else SON()

    @property
    def ns(self):
        return "%s.%s" % (self.db, self.name)

    def writable_docs(self):
        if self.shared:
            self.docs = dict(self.docs)
            self.shared = False
        return self.docs

    def unique_indexes(self):
        return [ix for ix in self.indexes if ix["name"] != ID_INDEX and ix.get("unique")]


class Catalog(object):
    """Committed state of one cluster."""

    def __init__(self):
        self.colls = {}
        self.seq = 0
        self.versions = {}
        self.locks = {}

    def snapshot(self):
        snap = {}
        for ns, coll in self.colls.items():
            coll.shared = True
            snap[ns] = SnapColl(coll)
        return snap


class SnapColl(object):
    """A collection as a transaction's snapshot sees it."""

    def __init__(self, coll):
        self.db = coll.db
        self.name = coll.name
        self.uuid = coll.uuid
        self.docs = coll.docs
        self.indexes = list(coll.indexes)
        self.options = coll.options

    def unique_indexes(self):
        return [ix for ix in self.indexes if ix["name"] != ID_INDEX and ix.get("unique")]


class CommittedView(object):
    """Read view of the committed state (reads outside transactions)."""

    def __init__(self, catalog):
        self.catalog = catalog

    def coll(self, ns):
        return self.catalog.colls.get(ns)

    def exists(self, ns):
        return ns in self.catalog.colls

    def namespaces(self):
        return list(self.catalog.colls.keys())

    def docs(self, ns):
        c = self.catalog.colls.get(ns)
        return list(c.docs.values()) if c else []

    def get(self, ns, idkey):
        c = self.catalog.colls.get(ns)
        return c.docs.get(idkey) if c else None

    def indexes(self, ns):
        c = self.catalog.colls.get(ns)
        return c.indexes if c else [id_index_spec()]


class TxnView(object):
    """A transaction's view: its snapshot plus its own writes."""

    def __init__(self, txn):
        self.txn = txn

    def coll(self, ns):
        return self.txn.snap.get(ns)

    def exists(self, ns):
        return ns in self.txn.snap or ns in self.txn.created

    def namespaces(self):
        names = list(self.txn.snap.keys())
        names.extend(ns for ns in self.txn.created if ns not in self.txn.snap)
        return names

    def docs(self, ns):
        sc = self.txn.snap.get(ns)
        over = self.txn.writes.get(ns)
        if not over:
            return list(sc.docs.values()) if sc else []
        out = []
        base = sc.docs if sc else {}
        for k, d in base.items():
            if k in over:
                if over[k] is not None:
                    out.append(over[k])
            else:
                out.append(d)
        for k, d in over.items():
            if k not in base and d is not None:
                out.append(d)
        return out

    def get(self, ns, idkey):
        over = self.txn.writes.get(ns)
        if over is not None and idkey in over:
            return over[idkey]
        sc = self.txn.snap.get(ns)
        return sc.docs.get(idkey) if sc else None

    def indexes(self, ns):
        sc = self.txn.snap.get(ns)
        return sc.indexes if sc else [id_index_spec()]
