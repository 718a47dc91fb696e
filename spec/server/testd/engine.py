"""Pure data engine of the xdbtx test server: query matching, updates, projection, sort,
BSON ordering and a small aggregation pipeline, all on bson.son.SON documents.

What it does: given decoded BSON values (CodecOptions(document_class=SON)), it answers
"does this document match this filter", "what does this document look like after this
update", etc., the way mongod (wire version 17, i.e. 6.0) does for the subset we need.
Numeric types are preserved as mongod preserves them (int32 -> Int64 on overflow, Int64
stays Int64, any double -> float, Decimal128 stays Decimal128); key order is preserved
(updated fields keep their position, new fields are appended; update operators visit
paths in the order mongod >= 5.0 does: by field name, numeric names numerically).

What it must not do: no I/O, no networking, no sessions, transactions or locking (the
server owns those), no global mutable state (the one exception is the increment counter
of $currentDate timestamps), and NEVER mutate its inputs: every function returns fresh
containers (documents, lists) and leaves the argument documents, filters, updates and
pipelines untouched.

Public API: match, apply_update, validate_update, upsert_seed, project, sort_docs, compare,
aggregate, EngineError. Results never share containers with the inputs, except that
sort_docs returns the caller's own document objects in a new list.

Errors are raised as EngineError(code, message, code_name) with mongod's error codes, so
the server can send them unchanged as {ok: 0, code, codeName, errmsg} / writeErrors.
"""

import datetime
import decimal
import functools
import itertools
import math
import re
import time
import uuid

from bson.code import Code
from bson.dbref import DBRef
from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.son import SON
from bson.timestamp import Timestamp

__all__ = ["EngineError", "match", "apply_update", "validate_update", "upsert_seed",
           "project", "sort_docs", "compare", "aggregate"]

INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1

_CODE_NAMES = {
    2: "BadValue", 9: "FailedToParse", 14: "TypeMismatch", 15: "Overflow",
    28: "PathNotViable", 40: "ConflictingUpdateOperators", 52: "DollarPrefixedFieldName",
    54: "NotSingleValueField", 56: "EmptyFieldName", 66: "ImmutableField",
    168: "InvalidPipelineOperator", 31254: "Location31254", 31253: "Location31253",
}


class EngineError(Exception):
    """A mongod-style failure: .code (int), .message (str), .code_name (str)."""

    def __init__(self, code, message, code_name=None):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.code_name = code_name or _CODE_NAMES.get(code, "Location%d" % code)

    def __repr__(self):
        return "EngineError(%d, %r, %r)" % (self.code, self.message, self.code_name)


class _Missing(object):
    """A path that does not exist (distinct from null)."""
    __slots__ = ()

    def __repr__(self):
        return "MISSING"


MISSING = _Missing()


class _EmptyArray(object):
    """Sort key of an empty array: sorts before null."""
    __slots__ = ()


_EMPTY_ARRAY = _EmptyArray()

# ---------------------------------------------------------------------------------------
# Value helpers
# ---------------------------------------------------------------------------------------

_PATTERN_TYPE = type(re.compile(""))
_D128_CTX = create_decimal128_context()


def _is_num(v):
    return isinstance(v, (int, float, Decimal128)) and not isinstance(v, bool)


def _is_doc(v):
    return isinstance(v, dict)


def _is_regex(v):
    return isinstance(v, (Regex, _PATTERN_TYPE))


def _numval(v):
    """int / float / decimal.Decimal value of a BSON number."""
    if isinstance(v, Decimal128):
        return v.to_decimal()
    if isinstance(v, float):
        return v
    return int(v)


def _is_nan(n):
    if isinstance(n, float):
        return math.isnan(n)
    if isinstance(n, decimal.Decimal):
        return n.is_nan()
    return False


def _is_int64(v):
    """True if v is an integer that is stored as a BSON int64."""
    return isinstance(v, Int64) or (isinstance(v, int) and not isinstance(v, bool)
                                    and not INT32_MIN <= v <= INT32_MAX)


def _copy(v):
    """Deep copy of containers; leaf values are immutable and shared."""
    if isinstance(v, dict):
        out = SON()
        for k, x in v.items():
            out[k] = _copy(x)
        return out
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def _type_name(v):
    if v is MISSING:
        return "missing"
    return _TYPE_NAMES.get(_bson_type(v), "unknown")


def _fmt(v):
    """Short mongod-like rendering of a value for error messages."""
    if v is MISSING:
        return "MISSING"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str) and not isinstance(v, Code):
        return '"%s"' % v
    if isinstance(v, dict):
        return "{ " + ", ".join("%s: %s" % (k, _fmt(x)) for k, x in v.items()) + " }" \
            if v else "{}"
    if isinstance(v, list):
        return "[ " + ", ".join(_fmt(x) for x in v) + " ]" if v else "[]"
    if isinstance(v, Int64):
        return "%d" % v
    if isinstance(v, Decimal128):
        return 'NumberDecimal("%s")' % v
    if isinstance(v, ObjectId):
        return "ObjectId('%s')" % v
    return str(v)


# BSON type numbers and the $type aliases.
_TYPE_ALIASES = {
    "double": 1, "string": 2, "object": 3, "array": 4, "binData": 5, "undefined": 6,
    "objectId": 7, "bool": 8, "date": 9, "null": 10, "regex": 11, "dbPointer": 12,
    "javascript": 13, "symbol": 14, "javascriptWithScope": 15, "int": 16,
    "timestamp": 17, "long": 18, "decimal": 19, "minKey": -1, "maxKey": 127,
}
_TYPE_NAMES = dict((n, a) for a, n in _TYPE_ALIASES.items())


def _bson_type(v):
    if v is None:
        return 10
    if isinstance(v, bool):
        return 8
    if isinstance(v, Int64):
        return 18
    if isinstance(v, int):
        return 16 if INT32_MIN <= v <= INT32_MAX else 18
    if isinstance(v, float):
        return 1
    if isinstance(v, Decimal128):
        return 19
    if isinstance(v, Code):
        return 15 if v.scope is not None else 13
    if isinstance(v, str):
        return 2
    if isinstance(v, (dict, DBRef)):
        return 3
    if isinstance(v, (list, tuple)):
        return 4
    if isinstance(v, (bytes, uuid.UUID)):
        return 5
    if isinstance(v, ObjectId):
        return 7
    if isinstance(v, datetime.datetime):
        return 9
    if _is_regex(v):
        return 11
    if isinstance(v, Timestamp):
        return 17
    if isinstance(v, MinKey):
        return -1
    if isinstance(v, MaxKey):
        return 127
    return 0


# ---------------------------------------------------------------------------------------
# BSON total order
# ---------------------------------------------------------------------------------------

def _rank(v):
    """Canonical type rank used by BSON comparison (same as mongod's canonicalizeBSONType)."""
    if v is None or v is MISSING:
        return 5
    if isinstance(v, bool):
        return 40
    if isinstance(v, (int, float, Decimal128)):
        return 10
    if isinstance(v, Code):
        return 60 if v.scope is None else 65
    if isinstance(v, str):
        return 15
    if isinstance(v, (dict, DBRef)):
        return 20
    if isinstance(v, (list, tuple)):
        return 25
    if isinstance(v, (bytes, uuid.UUID)):
        return 30
    if isinstance(v, ObjectId):
        return 35
    if isinstance(v, datetime.datetime):
        return 45
    if isinstance(v, Timestamp):
        return 47
    if _is_regex(v):
        return 50
    if isinstance(v, MinKey):
        return -1
    if isinstance(v, MaxKey):
        return 127
    if isinstance(v, _EmptyArray):
        return 2
    raise EngineError(2, "unsupported value type %s" % type(v).__name__)


_EPOCH_NAIVE = datetime.datetime(1970, 1, 1)
_EPOCH_AWARE = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _dt_ms(d):
    delta = d - (_EPOCH_AWARE if d.tzinfo is not None else _EPOCH_NAIVE)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _bin_parts(v):
    if isinstance(v, uuid.UUID):
        return 4, v.bytes
    return getattr(v, "subtype", 0), bytes(v)


def _regex_parts(v):
    if isinstance(v, Regex):
        flags = v.flags
    else:
        flags = v.flags & ~re.UNICODE
    if isinstance(flags, int):
        s = "".join(c for c, f in (("i", re.I), ("l", re.L), ("m", re.M), ("s", re.S),
                                   ("u", re.U), ("x", re.X)) if flags & f)
    else:
        s = "".join(sorted(flags))
    return v.pattern, s


def _cmp(a, b):
    return (a > b) - (a < b)


def compare(a, b):
    """-1/0/1 comparing two BSON values in BSON total order (numbers by value)."""
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 10:
        x, y = _numval(a), _numval(b)
        xn, yn = _is_nan(x), _is_nan(y)
        if xn or yn:
            return 0 if (xn and yn) else (-1 if xn else 1)
        return _cmp(x, y)
    if ra in (5, -1, 127, 2):
        return 0
    if ra in (15, 60, 65):
        if ra == 65:
            c = _cmp(str(a), str(b))
            return c or compare(a.scope or {}, b.scope or {})
        # Code point order is UTF-8 byte order, which is what mongod compares.
        return _cmp(str(a), str(b))
    if ra == 20:
        if isinstance(a, DBRef):
            a = a.as_doc()
        if isinstance(b, DBRef):
            b = b.as_doc()
        ia, ib = list(a.items()), list(b.items())
        for (ka, va), (kb, vb) in zip(ia, ib):
            c = _cmp(_rank(va), _rank(vb))
            if c:
                return c
            c = _cmp(ka, kb)
            if c:
                return c
            c = compare(va, vb)
            if c:
                return c
        return _cmp(len(ia), len(ib))
    if ra == 25:
        for x, y in zip(a, b):
            c = compare(x, y)
            if c:
                return c
        return _cmp(len(a), len(b))
    if ra == 30:
        sa, da = _bin_parts(a)
        sb, db = _bin_parts(b)
        return _cmp(len(da), len(db)) or _cmp(sa, sb) or _cmp(da, db)
    if ra == 35:
        return _cmp(a.binary, b.binary)
    if ra == 40:
        return _cmp(bool(a), bool(b))
    if ra == 45:
        return _cmp(_dt_ms(a), _dt_ms(b))
    if ra == 47:
        return _cmp((a.time, a.inc), (b.time, b.inc))
    if ra == 50:
        return _cmp(_regex_parts(a), _regex_parts(b))
    return 0


def _equal(a, b):
    return compare(a, b) == 0


def _ckey(v):
    """Hashable key: equal BSON values (by compare) give equal keys."""
    r = _rank(v)
    if r == 5:
        return (5,)
    if r == 10:
        n = _numval(v)
        if _is_nan(n):
            return (10, "nan")
        return (10, n)
    if r == 20:
        if isinstance(v, DBRef):
            v = v.as_doc()
        return (20, tuple((k, _ckey(x)) for k, x in v.items()))
    if r == 25:
        return (25, tuple(_ckey(x) for x in v))
    if r == 30:
        return (30,) + _bin_parts(v)
    if r == 35:
        return (35, v.binary)
    if r == 40:
        return (40, bool(v))
    if r == 45:
        return (45, _dt_ms(v))
    if r == 47:
        return (47, v.time, v.inc)
    if r == 50:
        return (50,) + _regex_parts(v)
    if r in (15, 60):
        return (r, str(v))
    if r == 65:
        return (65, str(v), _ckey(v.scope or {}))
    return (r,)


# ---------------------------------------------------------------------------------------
# Query matching
# ---------------------------------------------------------------------------------------

def _as_index(c):
    if c.isdigit() and c.isascii():
        return int(c)
    return None


def _walk(value, parts, i, pred, expand=True):
    """True if pred holds for some value reached by parts[i:] from value (array semantics)."""
    if i == len(parts):
        if pred(value):
            return True
        if expand and isinstance(value, list):
            for e in value:
                if pred(e):
                    return True
        return False
    key = parts[i]
    if isinstance(value, dict):
        if key in value:
            return _walk(value[key], parts, i + 1, pred, expand)
        return pred(MISSING)
    if isinstance(value, list):
        idx = _as_index(key)
        if idx is not None and idx < len(value):
            if _walk(value[idx], parts, i + 1, pred, expand):
                return True
        for e in value:
            # With a numeric component only subdocuments that have that field count.
            if isinstance(e, dict) and (idx is None or key in e):
                if _walk(e, parts, i, pred, expand):
                    return True
        # Like mongod, scalars (and nested arrays) inside an array yield nothing for a
        # field name: {a: [1]} does not match {"a.b": null}, but {a: [{}]} does.
        return False
    return pred(MISSING)


def _compile_regex(pattern, options=""):
    if isinstance(pattern, Regex):
        flags = pattern.flags if isinstance(pattern.flags, int) else 0
        pattern = pattern.pattern
    elif isinstance(pattern, _PATTERN_TYPE):
        flags = pattern.flags & ~re.UNICODE
        pattern = pattern.pattern
    elif isinstance(pattern, str):
        flags = 0
    else:
        raise EngineError(2, "$regex has to be a string")
    if not isinstance(options, str):
        raise EngineError(2, "$options has to be a string")
    for ch in options:
        f = {"i": re.I, "m": re.M, "s": re.S, "x": re.X, "u": 0}.get(ch)
        if f is None:
            raise EngineError(51108, "invalid flag in regex options: %s" % ch)
        flags |= f
    try:
        return re.compile(pattern, flags)
    except re.error as e:
        raise EngineError(51091, "Regular expression is invalid: %s" % e)


def _regex_pred(rx):
    src = _regex_parts(rx) if _is_regex(rx) else None

    def pred(v):
        if isinstance(v, str) and not isinstance(v, Code):
            return rx.search(v) is not None
        if _is_regex(v) and src is not None:
            return _regex_parts(v) == src
        return False
    return pred


def _eq_pred(q):
    def pred(v):
        if v is MISSING:
            v = None
        return _rank(v) == _rank(q) and compare(v, q) == 0
    return pred


def _cmp_pred(op, q):
    test = {"$gt": lambda c: c > 0, "$gte": lambda c: c >= 0,
            "$lt": lambda c: c < 0, "$lte": lambda c: c <= 0}[op]
    qr = _rank(q)

    def pred(v):
        if v is MISSING:
            v = None
        vr = _rank(v)
        if vr != qr:
            if qr in (-1, 127):       # MinKey / MaxKey bound everything
                return test(_cmp(vr, qr))
            return False
        return test(compare(v, q))
    return pred


def _type_pred(arg):
    codes = []
    for t in (arg if isinstance(arg, list) else [arg]):
        if isinstance(t, str):
            if t == "number":
                codes.extend([1, 16, 18, 19])
            elif t in _TYPE_ALIASES:
                codes.append(_TYPE_ALIASES[t])
            else:
                raise EngineError(2, "Unknown type name alias: %s" % t)
        elif _is_num(t):
            n = _numval(t)
            if _is_nan(n) or n != int(n) or int(n) not in _TYPE_NAMES:
                raise EngineError(2, "Invalid numerical type code: %s" % t)
            codes.append(int(n))
        else:
            raise EngineError(2, "type must be represented as a number or a string")
    codes = set(codes)

    def pred(v):
        return v is not MISSING and _bson_type(v) in codes
    return pred


def _mod_pred(arg):
    if not isinstance(arg, list):
        raise EngineError(2, "malformed mod, needs to be an array")
    if len(arg) < 2:
        raise EngineError(2, "malformed mod, not enough elements")
    if len(arg) > 2:
        raise EngineError(2, "malformed mod, too many elements")
    if not _is_num(arg[0]):
        raise EngineError(2, "malformed mod, divisor not a number")
    if not _is_num(arg[1]):
        raise EngineError(2, "malformed mod, remainder not a number")
    d, r = _numval(arg[0]), _numval(arg[1])
    if _is_nan(d) or _is_nan(r) or math.isinf(d) or math.isinf(r):
        raise EngineError(2, "malformed mod, divisor or remainder is not finite")
    d, r = int(d), int(r)
    if d == 0:
        raise EngineError(2, "divisor cannot be 0")

    def pred(v):
        if not _is_num(v):
            return False
        n = _numval(v)
        if _is_nan(n) or (isinstance(n, (float, decimal.Decimal)) and math.isinf(n)):
            return False
        n = int(n)
        m = abs(n) % abs(d)
        if n < 0:
            m = -m
        return m == r
    return pred


def _size_pred(arg):
    if not _is_num(arg):
        raise EngineError(2, "$size needs a number")
    n = _numval(arg)
    if _is_nan(n) or n != int(n):
        raise EngineError(2, "$size must be a whole number")
    if n < 0:
        raise EngineError(2, "$size may not be negative")
    n = int(n)
    return lambda v: isinstance(v, list) and len(v) == n


def _is_operator_doc(v):
    if not isinstance(v, dict) or not v:
        return False
    return next(iter(v)).startswith("$")


_VALUE_ELEMMATCH_EXCLUDED = ("$and", "$or", "$nor", "$where", "$expr", "$text", "$comment")


def _elem_match_pred(arg):
    if not isinstance(arg, dict):
        raise EngineError(2, "$elemMatch needs an Object")
    first = next(iter(arg), None)
    value_mode = first is not None and first.startswith("$") and \
        first not in _VALUE_ELEMMATCH_EXCLUDED
    if value_mode:
        _check_ops(arg)

        def elem_ok(e):
            return _match_ops_value(e, arg)
    else:
        _check_filter(arg)

        def elem_ok(e):
            return isinstance(e, dict) and _match(e, arg)

    def pred(v):
        return isinstance(v, list) and any(elem_ok(e) for e in v)
    return pred


def _in_preds(arg, op):
    if not isinstance(arg, list):
        raise EngineError(2, "%s needs an array" % op)
    preds = []
    for q in arg:
        if _is_regex(q):
            preds.append(_regex_pred(_compile_regex(q)))
        elif _is_operator_doc(q):
            raise EngineError(2, "cannot nest $ under %s" % op)
        else:
            preds.append(_eq_pred(q))
    return preds


_FIELD_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$type",
              "$regex", "$options", "$size", "$all", "$elemMatch", "$mod", "$not",
              "$comment")


def _check_ops(ops):
    for op in ops:
        if op not in _FIELD_OPS:
            raise EngineError(2, "unknown operator: %s" % op)


def _check_filter(flt):
    if not isinstance(flt, dict):
        raise EngineError(2, "filter must be an object")


def _op_results(ops, evaluate):
    """Evaluate every operator of an operator document; evaluate(pred, expand) -> bool."""
    _check_ops(ops)
    if "$options" in ops and "$regex" not in ops:
        raise EngineError(2, "$options needs a $regex")
    for op, arg in ops.items():
        if op in ("$options", "$comment"):
            continue
        if op == "$eq":
            if _is_regex(arg):
                ok = evaluate(_regex_eq_pred(arg), True)
            else:
                ok = evaluate(_eq_pred(arg), True)
        elif op == "$ne":
            ok = not evaluate(_eq_pred(arg), True)
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            ok = evaluate(_cmp_pred(op, arg), True)
        elif op == "$in":
            preds = _in_preds(arg, "$in")
            ok = any(evaluate(p, True) for p in preds)
        elif op == "$nin":
            preds = _in_preds(arg, "$nin")
            ok = not any(evaluate(p, True) for p in preds)
        elif op == "$exists":
            want = _truthy(arg)
            ok = evaluate(lambda v: v is not MISSING, False) == want
        elif op == "$type":
            ok = evaluate(_type_pred(arg), True)
        elif op == "$regex":
            ok = evaluate(_regex_pred(_compile_regex(arg, ops.get("$options", ""))), True)
        elif op == "$size":
            ok = evaluate(_size_pred(arg), False)
        elif op == "$all":
            if not isinstance(arg, list):
                raise EngineError(2, "$all needs an array")
            if not arg:
                ok = False
            else:
                ok = True
                for q in arg:
                    if isinstance(q, dict) and next(iter(q), None) == "$elemMatch":
                        if len(q) != 1:
                            raise EngineError(2, "$all/$elemMatch has to be consistent")
                        p, ex = _elem_match_pred(q["$elemMatch"]), False
                    elif _is_regex(q):
                        p, ex = _regex_pred(_compile_regex(q)), True
                    elif _is_operator_doc(q):
                        raise EngineError(2, "no $ expressions in $all")
                    else:
                        p, ex = _eq_pred(q), True
                    if not evaluate(p, ex):
                        ok = False
                        break
        elif op == "$elemMatch":
            ok = evaluate(_elem_match_pred(arg), False)
        elif op == "$mod":
            ok = evaluate(_mod_pred(arg), True)
        elif op == "$not":
            if _is_regex(arg):
                ok = not evaluate(_regex_pred(_compile_regex(arg)), True)
            elif isinstance(arg, dict) and arg and _is_operator_doc(arg):
                ok = not _op_results(arg, evaluate)
            elif isinstance(arg, dict) and not arg:
                raise EngineError(2, "$not cannot be empty")
            else:
                raise EngineError(2, "$not needs a regex or a document")
        else:
            raise EngineError(2, "unknown operator: %s" % op)
        if not ok:
            return False
    return True


def _regex_eq_pred(q):
    parts = _regex_parts(q)
    return lambda v: _is_regex(v) and _regex_parts(v) == parts


def _truthy(v):
    if v is None or v is MISSING:
        return False
    if isinstance(v, bool):
        return v
    if _is_num(v):
        n = _numval(v)
        return not _is_nan(n) and n != 0 or _is_nan(n)
    return True


def _match_ops_value(value, ops):
    """Operator document applied to a bare value (value-style $elemMatch)."""
    return _op_results(ops, lambda pred, expand: _walk(value, [], 0, pred, expand))


def _match_field(doc, path, spec):
    parts = path.split(".")

    def evaluate(pred, expand):
        return _walk(doc, parts, 0, pred, expand)

    if _is_operator_doc(spec):
        return _op_results(spec, evaluate)
    if _is_regex(spec):
        return evaluate(_regex_pred(_compile_regex(spec)), True)
    return evaluate(_eq_pred(spec), True)


def _logical_args(op, arg):
    if not isinstance(arg, list) or not arg:
        raise EngineError(2, "%s must be a nonempty array" % op)
    for f in arg:
        if not isinstance(f, dict):
            raise EngineError(2, "%s argument's entries must be objects" % op)
    return arg


def _validate_filter(flt):
    """Raise the parse errors mongod would raise for flt, whatever the data."""
    _check_filter(flt)
    for key, spec in flt.items():
        if key.startswith("$"):
            if key in ("$and", "$or", "$nor"):
                for f in _logical_args(key, spec):
                    _validate_filter(f)
            elif key != "$comment":
                raise EngineError(2, "unknown top level operator: %s" % key)
        elif _is_operator_doc(spec):
            _validate_ops(spec)
        elif _is_regex(spec):
            _compile_regex(spec)


def _validate_elem_match(arg):
    if not isinstance(arg, dict):
        raise EngineError(2, "$elemMatch needs an Object")
    first = next(iter(arg), None)
    if first is not None and first.startswith("$") and \
            first not in _VALUE_ELEMMATCH_EXCLUDED:
        _validate_ops(arg)
    else:
        _validate_filter(arg)


def _validate_ops(ops):
    _check_ops(ops)
    if "$options" in ops and "$regex" not in ops:
        raise EngineError(2, "$options needs a $regex")
    for op, arg in ops.items():
        if op in ("$in", "$nin"):
            _in_preds(arg, op)
        elif op == "$type":
            _type_pred(arg)
        elif op == "$regex":
            _compile_regex(arg, ops.get("$options", ""))
        elif op == "$size":
            _size_pred(arg)
        elif op == "$mod":
            _mod_pred(arg)
        elif op == "$elemMatch":
            _validate_elem_match(arg)
        elif op == "$all":
            if not isinstance(arg, list):
                raise EngineError(2, "$all needs an array")
            for q in arg:
                if isinstance(q, dict) and next(iter(q), None) == "$elemMatch":
                    if len(q) != 1:
                        raise EngineError(2, "$all/$elemMatch has to be consistent")
                    _validate_elem_match(q["$elemMatch"])
                elif _is_regex(q):
                    _compile_regex(q)
                elif _is_operator_doc(q):
                    raise EngineError(2, "no $ expressions in $all")
        elif op == "$not":
            if _is_regex(arg):
                _compile_regex(arg)
            elif isinstance(arg, dict) and not arg:
                raise EngineError(2, "$not cannot be empty")
            elif isinstance(arg, dict) and _is_operator_doc(arg):
                _validate_ops(arg)
            else:
                raise EngineError(2, "$not needs a regex or a document")


def match(doc, filter):
    """True if the document matches the query filter (mongod find semantics).

    A malformed filter raises EngineError even when the outcome would not depend on it."""
    if filter is None:
        return True
    _validate_filter(filter)
    return _match(doc, filter)


def _match(doc, filter):
    """match() without the up-front validation."""
    for key, spec in filter.items():
        if key.startswith("$"):
            if key == "$and":
                ok = all(_match(doc, f) for f in spec)
            elif key == "$or":
                ok = any(_match(doc, f) for f in spec)
            elif key == "$nor":
                ok = not any(_match(doc, f) for f in spec)
            elif key == "$comment":
                ok = True
            else:
                raise EngineError(2, "unknown top level operator: %s" % key)
        else:
            ok = _match_field(doc, key, spec)
        if not ok:
            return False
    return True


# ---------------------------------------------------------------------------------------
# Arithmetic with mongod's type rules
# ---------------------------------------------------------------------------------------

def _to_decimal(v):
    if isinstance(v, Decimal128):
        return v.to_decimal()
    if isinstance(v, float):
        if math.isnan(v):
            return decimal.Decimal("NaN")
        if math.isinf(v):
            return decimal.Decimal("Infinity" if v > 0 else "-Infinity")
        # mongod converts a double to decimal with 15 significant digits.
        return decimal.Decimal("%.15g" % v)
    return decimal.Decimal(int(v))


def _make_decimal(d):
    with decimal.localcontext(_D128_CTX) as ctx:
        return Decimal128(ctx.create_decimal(d))


def _arith(op, a, b, int64_overflow="error"):
    """a op b for BSON numbers, result typed like mongod: Decimal128 > double > long > int.

    int32 op int32 overflowing int32 gives Int64. An int64 overflow raises
    EngineError (update operators) or gives a double (int64_overflow="double", agg)."""
    if isinstance(a, Decimal128) or isinstance(b, Decimal128):
        with decimal.localcontext(_D128_CTX) as ctx:
            x, y = _to_decimal(a), _to_decimal(b)
            r = ctx.add(x, y) if op == "+" else ctx.multiply(x, y)
        return Decimal128(r)
    if isinstance(a, float) or isinstance(b, float):
        return float(a) + float(b) if op == "+" else float(a) * float(b)
    r = int(a) + int(b) if op == "+" else int(a) * int(b)
    return _int_result(r, _is_int64(a) or _is_int64(b), int64_overflow)


def _int_result(r, wide, int64_overflow="error"):
    if not wide and INT32_MIN <= r <= INT32_MAX:
        return int(r)
    if INT64_MIN <= r <= INT64_MAX:
        return Int64(r)
    if int64_overflow == "double":
        return float(r)
    raise EngineError(2, "integer overflow")


def _zero_like(v):
    if isinstance(v, Decimal128):
        return Decimal128("0")
    if isinstance(v, float):
        return 0.0
    if _is_int64(v):
        return Int64(0)
    return 0


# ---------------------------------------------------------------------------------------
# Updates
# ---------------------------------------------------------------------------------------

_UPDATE_OPS = ("$set", "$unset", "$inc", "$mul", "$min", "$max", "$push", "$pull",
               "$pullAll", "$addToSet", "$pop", "$rename", "$setOnInsert", "$currentDate",
               "$bit")

# Increments for $currentDate {$type: "timestamp"}: the only module-level state.
_ts_increments = itertools.count(1)


def _split_path(path, op):
    if not isinstance(path, str) or path == "":
        raise EngineError(56, "An empty update path is not valid.")
    comps = path.split(".")
    for c in comps:
        if c == "":
            raise EngineError(56, "The update path '%s' contains an empty field name, "
                                  "which is not allowed." % path)
    if comps[0].startswith("$"):
        raise EngineError(52, "The dollar ($) prefixed field '%s' in '%s' is not allowed "
                              "in the context of an update's replacement document. "
                              "Consider using an aggregation pipeline with $replaceWith."
                          % (comps[0], path))
    return comps


def _path_key(comps):
    return tuple((0, int(c), "") if _as_index(c) is not None else (1, 0, c) for c in comps)


def _check_conflicts(entries):
    seen = []
    for op, comps in entries:
        for prev_op, prev in seen:
            n = min(len(prev), len(comps))
            if prev[:n] == comps[:n]:
                raise EngineError(40, "Updating the path '%s' would create a conflict at "
                                      "'%s'" % (".".join(comps), ".".join(comps[:n])))
        seen.append((op, comps))


def _parse_array_filters(array_filters):
    filters = {}
    for f in array_filters or []:
        if not isinstance(f, dict):
            raise EngineError(9, "arrayFilters must be objects")
        ident = _filter_ident(f)
        if ident is None:
            raise EngineError(2, "Cannot use an expression without a top-level field name "
                                 "in arrayFilters")
        if ident in filters:
            raise EngineError(9, "Found multiple array filters with the same top-level "
                                 "field name %s" % ident)
        if not re.match(r"^[a-z][a-zA-Z0-9]*$", ident):
            raise EngineError(2, "Error parsing array filter :: caused by :: The top-level "
                                 "field name must be an alphanumeric string beginning with "
                                 "a lowercase letter, found '%s'" % ident)
        _validate_filter(f)
        filters[ident] = f
    return filters


def _filter_ident(f):
    for k, v in f.items():
        if k in ("$and", "$or", "$nor") and isinstance(v, list):
            for sub in v:
                if isinstance(sub, dict):
                    r = _filter_ident(sub)
                    if r is not None:
                        return r
        elif not k.startswith("$"):
            return k.split(".")[0]
    return None


class _UpdateCtx(object):
    def __init__(self, orig, query, filters, is_insert):
        self.orig = orig
        self.query = query
        self.filters = filters
        self.is_insert = is_insert


def _get_at(doc, comps):
    cur = doc
    for c in comps:
        if isinstance(cur, dict):
            if c not in cur:
                return MISSING
            cur = cur[c]
        elif isinstance(cur, list):
            idx = _as_index(c)
            if idx is None or idx >= len(cur):
                return MISSING
            cur = cur[idx]
        else:
            return MISSING
    return cur


def _replace_at(doc, comps, value):
    """Copy of doc with the value at comps (an existing path) replaced; used for '$'."""
    if not comps:
        return value
    c = comps[0]
    if isinstance(doc, dict):
        out = SON(doc)
        out[c] = _replace_at(doc[c], comps[1:], value)
        return out
    out = list(doc)
    out[int(c)] = _replace_at(doc[int(c)], comps[1:], value)
    return out


def _relevant_conditions(query, prefix):
    """The parts of query that look into the array at prefix (for the '$' operator)."""
    out = []
    for k, v in query.items():
        if k == "$and" and isinstance(v, list):
            for sub in v:
                if isinstance(sub, dict):
                    out.extend(_relevant_conditions(sub, prefix))
        elif k in ("$or", "$nor") and isinstance(v, list):
            if any(isinstance(sub, dict) and _relevant_conditions(sub, prefix) for sub in v):
                out.append(SON([(k, v)]))
        elif not k.startswith("$"):
            comps = k.split(".")
            if comps[:len(prefix)] == prefix:
                out.append(SON([(k, v)]))
    return out


def _positional_index(ctx, doc, prefix, path):
    arr = _get_at(doc, prefix)
    conds = []
    if isinstance(ctx.query, dict):
        _validate_filter(ctx.query)
        conds = _relevant_conditions(ctx.query, prefix)
    if conds and isinstance(arr, list):
        for i, e in enumerate(arr):
            probe = _replace_at(doc, prefix, [e])
            if all(_match(probe, c) for c in conds):
                return i
    raise EngineError(2, "The positional operator did not find the match needed from the "
                         "query.")


def _expand(ctx, doc, comps, path):
    """Concrete component lists for a path with $, $[] and $[ident] placeholders."""
    results = [[]]
    for c in comps:
        if c == "$" or (c.startswith("$[") and c.endswith("]")):
            nxt = []
            for prefix in results:
                if c == "$":
                    if ctx.is_insert:
                        raise EngineError(2, "The positional operator did not find the "
                                             "match needed from the query.")
                    # Like mongod, '$' is resolved against the document before the update.
                    nxt.append(prefix + [str(_positional_index(ctx, ctx.orig, prefix,
                                                               path))])
                    continue
                arr = _get_at(doc, prefix)
                if not isinstance(arr, list):
                    if arr is MISSING:
                        raise EngineError(2, "The path '%s' must exist in the document in "
                                             "order to apply array updates."
                                          % ".".join(prefix))
                    raise EngineError(2, "Cannot apply array updates to non-array element "
                                         "%s: %s" % (prefix[-1] if prefix else "",
                                                     _fmt(arr)))
                ident = c[2:-1]
                if ident == "":
                    nxt.extend(prefix + [str(i)] for i in range(len(arr)))
                    continue
                flt = ctx.filters.get(ident)
                if flt is None:
                    raise EngineError(2, "No array filter found for identifier '%s' in path "
                                         "'%s'" % (ident, path))
                for i, e in enumerate(arr):
                    probe = SON()
                    probe[ident] = e
                    if _match(probe, flt):
                        nxt.append(prefix + [str(i)])
            results = nxt
        else:
            for prefix in results:
                prefix.append(c)
    return results


def _container_for_write(doc, comps):
    """(container, key) for setting comps, creating intermediate documents as mongod does."""
    cur = doc
    for i, c in enumerate(comps[:-1]):
        if isinstance(cur, dict):
            if c not in cur:
                cur[c] = SON()
            nxt = cur[c]
        elif isinstance(cur, list):
            idx = _as_index(c)
            if idx is None:
                raise EngineError(28, "Cannot create field '%s' in element {%s: %s}"
                                  % (c, comps[i - 1] if i else "", _fmt(cur)))
            if idx >= len(cur):
                while len(cur) < idx:
                    cur.append(None)
                cur.append(SON())
            nxt = cur[idx]
        else:
            raise EngineError(28, "Cannot create field '%s' in element {%s: %s}"
                              % (c, comps[i - 1] if i else "", _fmt(cur)))
        if not isinstance(nxt, (dict, list)):
            raise EngineError(28, "Cannot create field '%s' in element {%s: %s}"
                              % (comps[i + 1], c, _fmt(nxt)))
        cur = nxt
    last = comps[-1]
    if isinstance(cur, list):
        idx = _as_index(last)
        if idx is None:
            raise EngineError(28, "Cannot create field '%s' in element {%s: %s}"
                              % (last, comps[-2] if len(comps) > 1 else "", _fmt(cur)))
        return cur, idx
    return cur, last


def _get_slot(container, key):
    if isinstance(container, list):
        return container[key] if key < len(container) else MISSING
    return container.get(key, MISSING)


def _put_slot(container, key, value):
    if isinstance(container, list):
        while len(container) < key:
            container.append(None)
        if key == len(container):
            container.append(value)
        else:
            container[key] = value
    else:
        container[key] = value


def _container_existing(doc, comps):
    """(container, key) if the parent of comps exists, else None (no creation)."""
    cur = _get_at(doc, comps[:-1])
    if isinstance(cur, dict):
        return cur, comps[-1]
    if isinstance(cur, list):
        idx = _as_index(comps[-1])
        if idx is None:
            return None
        return cur, idx
    return None


def _op_set(ctx, doc, comps, val):
    c, k = _container_for_write(doc, comps)
    _put_slot(c, k, _copy(val))


def _op_unset(ctx, doc, comps, val):
    slot = _container_existing(doc, comps)
    if slot is None:
        return
    c, k = slot
    if isinstance(c, list):
        if k < len(c):
            c[k] = None
    elif k in c:
        del c[k]


def _numeric_op(opname, symbol):
    def op(ctx, doc, comps, val):
        path = ".".join(comps)
        if not _is_num(val):
            verb = "increment" if opname == "$inc" else "multiply"
            raise EngineError(14, "Cannot %s with non-numeric argument: {%s: %s}"
                              % (verb, path, _fmt(val)))
        c, k = _container_for_write(doc, comps)
        cur = _get_slot(c, k)
        if cur is MISSING:
            _put_slot(c, k, val if opname == "$inc" else _zero_like(val))
            return
        if not _is_num(cur):
            raise EngineError(14, "Cannot apply %s to a value of non-numeric type. "
                                  "{_id: %s} has the field '%s' of non-numeric type %s"
                              % (opname, _fmt(ctx.orig.get("_id", MISSING)), comps[-1],
                                 _type_name(cur)))
        try:
            _put_slot(c, k, _arith(symbol, cur, val))
        except EngineError:
            raise EngineError(2, "Failed to apply %s operations to current value (%s) for "
                                 "document {_id: %s}" % (opname, _fmt(cur),
                                                         _fmt(ctx.orig.get("_id", MISSING))))
    return op


def _minmax_op(sign):
    def op(ctx, doc, comps, val):
        c, k = _container_for_write(doc, comps)
        cur = _get_slot(c, k)
        if cur is MISSING or compare(val, cur) * sign > 0:
            _put_slot(c, k, _copy(val))
    return op


def _current_date_kind(val):
    kind = "date"
    if isinstance(val, bool):
        pass
    elif isinstance(val, dict) and list(val.keys()) == ["$type"] and \
            val["$type"] in ("date", "timestamp"):
        kind = val["$type"]
    elif isinstance(val, dict) and list(val.keys()) == ["$type"]:
        raise EngineError(2, "The '$type' string field is required to be 'date' or "
                             "'timestamp': {$currentDate: {field : {$type: 'date'}}}")
    else:
        raise EngineError(2, "%s is not valid type for $currentDate. Please use a boolean "
                             "('true') or a $type expression ({$type: 'timestamp/date'})."
                          % _type_name(val))
    return kind


def _op_current_date(ctx, doc, comps, val):
    kind = _current_date_kind(val)
    if kind == "date":
        now = datetime.datetime.utcnow()
        value = now.replace(microsecond=now.microsecond // 1000 * 1000)
    else:
        value = Timestamp(int(time.time()), next(_ts_increments) & 0xFFFFFFFF or 1)
    c, k = _container_for_write(doc, comps)
    _put_slot(c, k, value)


def _array_target(ctx, doc, comps, opname, create):
    """The array at comps (created empty if missing and create), or None if missing."""
    if create:
        c, k = _container_for_write(doc, comps)
        cur = _get_slot(c, k)
        if cur is MISSING:
            cur = []
            _put_slot(c, k, cur)
    else:
        cur = _get_at(doc, comps)
        if cur is MISSING:
            return None
    if not isinstance(cur, list):
        if opname == "$pop":
            raise EngineError(14, "Path '%s' contains an element of non-array type '%s'"
                              % (".".join(comps), _type_name(cur)))
        if opname in ("$pull", "$pullAll"):
            raise EngineError(2, "Cannot apply %s to a non-array value" % opname)
        raise EngineError(2, "The field '%s' must be an array but is of type %s in document "
                             "{_id: %s}" % (".".join(comps), _type_name(cur),
                                            _fmt(ctx.orig.get("_id", MISSING))))
    return cur


def _sort_values(values, spec):
    if isinstance(spec, dict):
        if not spec:
            raise EngineError(2, "The $sort pattern is empty when it should be a set of "
                                 "fields.")
        keys = _parse_sort(spec, code=2)

        def cmpf(a, b):
            return _cmp_sort_keys(a, b, keys)
        return sorted(values, key=functools.cmp_to_key(cmpf))
    if _is_num(spec) and _numval(spec) in (1, -1):
        d = int(_numval(spec))
        return sorted(values, key=functools.cmp_to_key(lambda a, b: d * compare(a, b)))
    raise EngineError(2, "The $sort is invalid: use 1/-1 to sort the whole element, or "
                         "{field:1/-1} to sort embedded fields")


def _int_arg(v, what, code=2):
    if not _is_num(v):
        raise EngineError(code, "The value for %s must be an integer value but was given "
                                "type: %s" % (what, _type_name(v)))
    n = _numval(v)
    if _is_nan(n) or n != int(n):
        raise EngineError(code, "The value for %s must be an integer value but was given "
                                "%s" % (what, _fmt(v)))
    return int(n)


def _op_push(ctx, doc, comps, val, parse_only=False):
    if isinstance(val, dict) and "$each" in val:
        for k in val:
            if k not in ("$each", "$slice", "$sort", "$position"):
                raise EngineError(2, "Unrecognized clause in $push: %s" % k)
        each = val["$each"]
        if not isinstance(each, list):
            raise EngineError(2, "The argument to $each in $push must be an array but it was "
                                 "of type: %s" % _type_name(each))
        slice_ = _int_arg(val["$slice"], "$slice") if "$slice" in val else None
        position = _int_arg(val["$position"], "$position") if "$position" in val else None
        sort = val.get("$sort", MISSING)
        if sort is not MISSING and not isinstance(sort, dict) and not (
                _is_num(sort) and _numval(sort) in (1, -1)):
            raise EngineError(2, "The $sort is invalid: use 1/-1 to sort the whole element, "
                                 "or {field:1/-1} to sort embedded fields")
        if isinstance(sort, dict):
            if not sort:
                raise EngineError(2, "The $sort pattern is empty when it should be a set of "
                                     "fields.")
            _parse_sort(sort, code=2)
    else:
        each, slice_, position, sort = [val], None, None, MISSING
    if parse_only:
        return
    arr = _array_target(ctx, doc, comps, "$push", True)
    items = [_copy(x) for x in each]
    if position is None:
        arr.extend(items)
    else:
        if position < 0:
            position = max(0, len(arr) + position)
        position = min(position, len(arr))
        arr[position:position] = items
    if sort is not MISSING:
        arr[:] = _sort_values(arr, sort)
    if slice_ is not None:
        if slice_ >= 0:
            del arr[slice_:]
        else:
            del arr[:max(0, len(arr) + slice_)]


def _op_add_to_set(ctx, doc, comps, val, parse_only=False):
    if isinstance(val, dict) and "$each" in val:
        if len(val) != 1:
            raise EngineError(2, "Found unexpected fields after $each in $addToSet: %s"
                              % _fmt(val))
        each = val["$each"]
        if not isinstance(each, list):
            raise EngineError(2, "The argument to $each in $addToSet must be an array but "
                                 "it was of type %s" % _type_name(each))
    else:
        each = [val]
    if parse_only:
        return
    arr = _array_target(ctx, doc, comps, "$addToSet", True)
    for x in each:
        if not any(_equal(x, e) for e in arr):
            arr.append(_copy(x))


def _op_pop(ctx, doc, comps, val):
    if not _is_num(val) or _numval(val) not in (1, -1):
        raise EngineError(9, "$pop expects 1 or -1, found: %s" % _fmt(val))
    arr = _array_target(ctx, doc, comps, "$pop", False)
    if arr:
        if _numval(val) == 1:
            arr.pop()
        else:
            arr.pop(0)


def _pull_pred(val):
    if isinstance(val, dict):
        first = next(iter(val), None)
        if first is not None and first.startswith("$") and \
                first not in _VALUE_ELEMMATCH_EXCLUDED:
            _validate_ops(val)
            return lambda e: _match_ops_value(e, val)
        _validate_filter(val)
        return lambda e: isinstance(e, dict) and _match(e, val)
    if _is_regex(val):
        p = _regex_pred(_compile_regex(val))
        return p
    return lambda e: _equal(e, val)


def _op_pull(ctx, doc, comps, val):
    pred = _pull_pred(val)
    arr = _array_target(ctx, doc, comps, "$pull", False)
    if arr is not None:
        arr[:] = [e for e in arr if not pred(e)]


def _op_pull_all(ctx, doc, comps, val):
    if not isinstance(val, list):
        raise EngineError(2, "$pullAll requires an array argument but was given a %s"
                          % _type_name(val))
    arr = _array_target(ctx, doc, comps, "$pullAll", False)
    if arr is not None:
        arr[:] = [e for e in arr if not any(_equal(e, v) for v in val)]


def _bit_ops(val):
    if not isinstance(val, dict) or not val:
        raise EngineError(9, "The $bit modifier is not compatible with a %s. You must pass "
                             "in an embedded document: {$bit: {field: {and/or/xor: #}}"
                          % _type_name(val))
    for op, x in val.items():
        if op not in ("and", "or", "xor"):
            raise EngineError(2, "The $bit modifier only supports 'and', 'or', and 'xor', "
                                 "not '%s'" % op)
        if not isinstance(x, int) or isinstance(x, bool):
            raise EngineError(2, "The $bit modifier field must be an Integer(32/64 bit)")


def _op_bit(ctx, doc, comps, val):
    _bit_ops(val)
    c, k = _container_for_write(doc, comps)
    cur = _get_slot(c, k)
    if cur is MISSING:
        cur = 0
    if not isinstance(cur, int) or isinstance(cur, bool):
        raise EngineError(2, "Cannot apply $bit to a value of non-integral type.")
    wide = _is_int64(cur)
    r = int(cur)
    for op, x in val.items():
        wide = wide or _is_int64(x)
        r = r & int(x) if op == "and" else (r | int(x) if op == "or" else r ^ int(x))
    _put_slot(c, k, Int64(r) if wide else int(r))


_UPDATE_HANDLERS = {
    "$set": _op_set, "$setOnInsert": _op_set, "$unset": _op_unset,
    "$inc": _numeric_op("$inc", "+"), "$mul": _numeric_op("$mul", "*"),
    "$min": _minmax_op(-1), "$max": _minmax_op(1), "$currentDate": _op_current_date,
    "$push": _op_push, "$addToSet": _op_add_to_set, "$pop": _op_pop, "$pull": _op_pull,
    "$pullAll": _op_pull_all, "$bit": _op_bit,
}


def _do_rename(ctx, doc, src, dst):
    # Neither side may go through an array.
    for comps, what in ((src, "source"), (dst, "destination")):
        cur = doc
        for i, c in enumerate(comps[:-1]):
            if not isinstance(cur, dict) or c not in cur:
                break
            cur = cur[c]
            if isinstance(cur, list):
                raise EngineError(2, "The %s field cannot be an array element, '%s' in doc "
                                     "with %s has an array field called '%s'"
                                  % (what, ".".join(comps), _fmt(doc.get(comps[0])),
                                     comps[i]))
    value = _get_at(doc, src)
    if value is MISSING:
        return
    _op_unset(ctx, doc, src, None)
    c, k = _container_for_write(doc, dst)
    _put_slot(c, k, value)


def _replacement(doc, update):
    out = SON()
    for k in update:
        if isinstance(k, str) and k.startswith("$"):
            raise EngineError(52, "The dollar ($) prefixed field '%s' in '%s' is not valid "
                                  "for storage." % (k, k))
    if "_id" in doc:
        if "_id" in update and not _equal(update["_id"], doc["_id"]):
            raise EngineError(66, "After applying the update, the (immutable) field '_id' "
                                  "was found to have been altered to _id: %s"
                              % _fmt(update["_id"]))
        out["_id"] = _copy(doc["_id"])
    elif "_id" in update:
        out["_id"] = _copy(update["_id"])
    for k, v in update.items():
        if k != "_id":
            out[k] = _copy(v)
    return out


def _validate_arg(op, path, val):
    """Argument checks mongod makes while parsing an update (independent of the data)."""
    if op in ("$inc", "$mul") and not _is_num(val):
        raise EngineError(14, "Cannot %s with non-numeric argument: {%s: %s}"
                          % ("increment" if op == "$inc" else "multiply", path, _fmt(val)))
    if op == "$pop" and (not _is_num(val) or _numval(val) not in (1, -1)):
        raise EngineError(9, "$pop expects 1 or -1, found: %s" % _fmt(val))
    if op == "$push" and isinstance(val, dict):
        if "$each" not in val:
            for k in val:
                if k in ("$slice", "$sort", "$position"):
                    raise EngineError(2, "$each term needs to occur before %s" % k)
        else:
            _op_push(None, None, None, val, parse_only=True)
    if op == "$addToSet" and isinstance(val, dict) and "$each" in val:
        _op_add_to_set(None, None, None, val, parse_only=True)
    if op == "$currentDate":
        _current_date_kind(val)
    if op == "$pull":
        _pull_pred(val)
    if op == "$pullAll" and not isinstance(val, list):
        raise EngineError(2, "$pullAll requires an array argument but was given a %s"
                          % _type_name(val))
    if op == "$bit":
        _bit_ops(val)


def _parse_update(update, array_filters):
    """Parse an operator update: (entries sorted in application order, array filters)."""
    entries = []         # (sort key, seq, op, path, comps, value)
    conflicts = []
    idents = set()
    for op, arg in update.items():
        if not op.startswith("$") or op not in _UPDATE_OPS:
            raise EngineError(9, "Unknown modifier: %s. Expected a valid update modifier or "
                                 "pipeline-style update specified as an array" % op)
        if not isinstance(arg, dict):
            raise EngineError(9, "Modifiers operate on fields but we found type %s instead. "
                                 "For example: {$mod: {<field>: ...}} not {%s: %s}"
                              % (_type_name(arg), op, _fmt(arg)))
        for path, val in arg.items():
            comps = _split_path(path, op)
            if op == "$rename":
                if not isinstance(val, str):
                    raise EngineError(2, "The 'to' field for $rename must be a string: %s: %s"
                                      % (path, _fmt(val)))
                dst = _split_path(val, op)
                if path == val:
                    raise EngineError(2, "The source and target field for $rename must "
                                         "differ: %s: %s" % (path, _fmt(val)))
                for cs in (comps, dst):
                    if any(c == "$" or c.startswith("$[") for c in cs):
                        raise EngineError(2, "The source field for $rename may not be "
                                             "dynamic: %s" % ".".join(cs))
                conflicts.append((op, comps))
                conflicts.append((op, dst))
                entries.append((_path_key(dst), len(entries), op, path, comps, dst))
                continue
            for c in comps:
                if c.startswith("$[") and c.endswith("]") and c != "$[]":
                    idents.add((c[2:-1], path))
            _validate_arg(op, path, val)
            conflicts.append((op, comps))
            entries.append((_path_key(comps), len(entries), op, path, comps, val))
    _check_conflicts(conflicts)
    filters = _parse_array_filters(array_filters)
    for ident, path in sorted(idents):
        if ident not in filters:
            raise EngineError(2, "No array filter found for identifier '%s' in path '%s'"
                              % (ident, path))
    unused = set(filters) - set(i for i, _ in idents)
    if unused:
        raise EngineError(9, "The array filter for identifier '%s' was not used in the "
                             "update %s" % (sorted(unused)[0], _fmt(update)))
    entries.sort(key=lambda e: (e[0], e[1]))
    return entries, filters


def validate_update(update, array_filters=None):
    """Raise the EngineError mongod gives when parsing update, without any document
    (for an update that matched nothing). Returns None."""
    if isinstance(update, list):
        raise EngineError(9, "pipeline-style updates are not supported by the test server")
    if not isinstance(update, dict):
        raise EngineError(9, "Update argument must be either an object or an array")
    if not update or not next(iter(update)).startswith("$"):
        if array_filters:
            raise EngineError(9, "arrayFilters may not be specified for replacement-style "
                                 "updates")
        for k in update:
            if isinstance(k, str) and k.startswith("$"):
                raise EngineError(52, "The dollar ($) prefixed field '%s' in '%s' is not "
                                      "valid for storage." % (k, k))
        return None
    _parse_update(update, array_filters)
    return None


def apply_update(doc, update, *, is_insert=False, array_filters=None, query=None):
    """New document = doc after the update (operator update or replacement).

    doc and update are left untouched. query is the filter of the update, used for the
    positional '$' operator; array_filters the arrayFilters of the update command."""
    if not isinstance(update, dict) or not update or not next(iter(update)).startswith("$"):
        validate_update(update, array_filters)
        return _replacement(doc, update)
    entries, filters = _parse_update(update, array_filters)
    ctx = _UpdateCtx(doc, query, filters, is_insert)
    new = _copy(doc)
    for _, _, op, path, comps, val in entries:
        if op == "$setOnInsert" and not is_insert:
            continue
        if op == "$rename":
            _do_rename(ctx, new, comps, val)
            continue
        for concrete in _expand(ctx, new, comps, path):
            _UPDATE_HANDLERS[op](ctx, new, concrete, val)
    if "_id" in doc and not is_insert:
        if "_id" not in new or not _equal(new["_id"], doc["_id"]):
            raise EngineError(66, "Performing an update on the path '_id' would modify the "
                                  "immutable field '_id'")
    elif "_id" in doc and is_insert:
        if "_id" not in new or not _equal(new["_id"], doc["_id"]):
            raise EngineError(66, "Performing an update on the path '_id' would modify the "
                                  "immutable field '_id'")
    if is_insert and "_id" in new and next(iter(new)) != "_id":
        out = SON([("_id", new["_id"])])
        for k, v in new.items():
            if k != "_id":
                out[k] = v
        new = out
    return new


def upsert_seed(query):
    """The document mongod starts an upsert from: the query's equality fields."""
    seed = SON()
    paths = []

    def add(path, value):
        comps = path.split(".")
        for p in paths:
            n = min(len(p), len(comps))
            if p[:n] == comps[:n]:
                raise EngineError(54, "cannot infer query fields to set, path '%s' is "
                                      "matched twice" % path if p == comps else
                                      "cannot infer query fields to set, both paths '%s' "
                                      "and '%s' are matched" % (".".join(p), path))
        paths.append(comps)
        cur = seed
        for c in comps[:-1]:
            if c not in cur or not isinstance(cur[c], dict):
                cur[c] = SON()
            cur = cur[c]
        cur[comps[-1]] = _copy(value)

    def walk(q):
        if not isinstance(q, dict):
            return
        for k, v in q.items():
            if k == "$and" and isinstance(v, list):
                for sub in v:
                    walk(sub)
            elif k.startswith("$"):
                continue
            elif _is_regex(v):
                continue
            elif _is_operator_doc(v):
                if "$eq" in v:
                    add(k, v["$eq"])
                elif "$in" in v and isinstance(v["$in"], list) and len(v["$in"]) == 1 \
                        and not _is_regex(v["$in"][0]):
                    add(k, v["$in"][0])
                elif "$all" in v and isinstance(v["$all"], list) and len(v["$all"]) == 1 \
                        and not _is_operator_doc(v["$all"][0]):
                    add(k, v["$all"][0])
            else:
                add(k, v)

    walk(query)
    if "_id" in seed and next(iter(seed)) != "_id":
        out = SON([("_id", seed["_id"])])
        for k, v in seed.items():
            if k != "_id":
                out[k] = v
        seed = out
    return seed


# ---------------------------------------------------------------------------------------
# Projection
# ---------------------------------------------------------------------------------------

def _flatten_projection(spec, prefix, out, agg):
    for k, v in spec.items():
        if not isinstance(k, str) or k == "":
            raise EngineError(2, "projection field names must be non-empty strings")
        if k.startswith("$"):
            raise EngineError(31252 if not agg else 16410,
                              "FieldPath field names may not start with '$'. "
                              "Consider using $getField or $setField.")
        path = prefix + k
        if path.endswith(".$") or ".$." in path:
            raise EngineError(2, "the positional projection operator '%s' is not supported "
                                 "by the test server" % path)
        if isinstance(v, dict) and v and not next(iter(v)).startswith("$"):
            _flatten_projection(v, path + ".", out, agg)
        elif isinstance(v, dict) and not v:
            raise EngineError(51270, "An empty sub-projection is not a valid value. Found "
                                     "empty object at path")
        else:
            out.append((path, v))


def _tree_add(tree, comps, leaf):
    cur = tree
    for c in comps[:-1]:
        nxt = cur.get(c)
        if nxt is None or nxt is True:
            nxt = {}
            cur[c] = nxt
        cur = nxt
    cur[comps[-1]] = leaf


def _incl(doc, tree):
    out = SON()
    for k, v in doc.items():
        if k not in tree:
            continue
        t = tree[k]
        if t is True:
            out[k] = _copy(v)
        elif isinstance(v, dict):
            out[k] = _incl(v, t)
        elif isinstance(v, list):
            out[k] = _incl_arr(v, t)
    return out


def _incl_arr(arr, tree):
    out = []
    for e in arr:
        if isinstance(e, dict):
            out.append(_incl(e, tree))
        elif isinstance(e, list):
            out.append(_incl_arr(e, tree))
    return out


def _excl(doc, tree):
    out = SON()
    for k, v in doc.items():
        if k in tree:
            t = tree[k]
            if t is True:
                continue
            if isinstance(v, dict):
                out[k] = _excl(v, t)
            elif isinstance(v, list):
                out[k] = _excl_arr(v, t)
            else:
                out[k] = _copy(v)
        else:
            out[k] = _copy(v)
    return out


def _excl_arr(arr, tree):
    out = []
    for e in arr:
        if isinstance(e, dict):
            out.append(_excl(e, tree))
        elif isinstance(e, list):
            out.append(_excl_arr(e, tree))
        else:
            out.append(_copy(e))
    return out


def _set_path_doc(doc, comps, value):
    """Set a dotted path in a document, creating/overwriting subdocuments (projection)."""
    cur = doc
    for c in comps[:-1]:
        if not isinstance(cur.get(c), dict):
            cur[c] = SON()
        cur = cur[c]
    cur[comps[-1]] = value


def _apply_slice(value, arg):
    if not isinstance(value, list):
        return value
    if isinstance(arg, list):
        if len(arg) != 2 or not all(_is_num(x) for x in arg):
            raise EngineError(28724, "First argument to $slice must be an array")
        skip, limit = int(_numval(arg[0])), int(_numval(arg[1]))
        if limit <= 0:
            raise EngineError(28724, "$slice limit must be positive")
        if skip < 0:
            skip = max(0, len(value) + skip)
        return value[skip:skip + limit]
    n = int(_numval(arg)) if _is_num(arg) else None
    if n is None:
        raise EngineError(2, "$slice only supports numbers and [skip, limit] arrays")
    return value[:n] if n >= 0 else value[len(value) + n if len(value) + n > 0 else 0:]


def project(doc, projection, _agg=False):
    """Apply a find projection (inclusion/exclusion, _id rules, dotted paths, computed
    fields, $slice, $elemMatch) and return a new document."""
    if not projection:
        return _copy(doc)
    if not isinstance(projection, dict):
        raise EngineError(2, "projection must be an object")
    flat = []
    _flatten_projection(projection, "", flat, _agg)
    id_flag = None
    includes, excludes, computed, slices, elem_matches = [], [], [], [], []
    for path, v in flat:
        if isinstance(v, bool) or _is_num(v):
            flag = _truthy(v)
            if path == "_id":
                id_flag = flag
            elif flag:
                includes.append(path)
            else:
                excludes.append(path)
        elif not _agg and isinstance(v, dict) and len(v) == 1 and "$slice" in v:
            slices.append((path, v["$slice"]))
        elif not _agg and isinstance(v, dict) and len(v) == 1 and "$elemMatch" in v:
            if "." in path:
                raise EngineError(2, "Cannot use $elemMatch projection on a nested field.")
            elem_matches.append((path, v["$elemMatch"]))
        elif _agg and isinstance(v, dict) and len(v) == 1 and "$meta" in v:
            continue
        else:
            if path == "_id":
                id_flag = "computed"
            computed.append((path, v))
    if excludes and (includes or computed or elem_matches):
        raise EngineError(31254, "Cannot do exclusion on field %s in inclusion projection"
                          % excludes[0])
    inclusion = bool(includes or computed or elem_matches or
                     (id_flag is True and not excludes and not slices))
    if _agg and not inclusion and not excludes and id_flag is None:
        raise EngineError(51272,
                          "Invalid $project :: caused by :: projection specification must "
                          "have at least one field")
    if inclusion:
        tree = {}
        if id_flag is None or id_flag is True:
            tree["_id"] = True
        for p in includes:
            _tree_add(tree, p.split("."), True)
        for p, _ in slices:
            _tree_add(tree, p.split("."), True)
        for p, _ in elem_matches:
            _tree_add(tree, [p], True)
        out = _incl(doc, tree)
        for path, expr in computed:
            val = _eval(expr, doc, {})
            if val is not MISSING:
                _set_path_doc(out, path.split("."), _copy(val))
        if id_flag == "computed" and "_id" in out and next(iter(out)) != "_id":
            moved = SON([("_id", out["_id"])])
            for k, v in out.items():
                if k != "_id":
                    moved[k] = v
            out = moved
    else:
        tree = {}
        if id_flag is False:
            tree["_id"] = True
        for p in excludes:
            _tree_add(tree, p.split("."), True)
        out = _excl(doc, tree)
    for path, arg in slices:
        comps = path.split(".")
        parent = _get_at(out, comps[:-1]) if len(comps) > 1 else out
        if isinstance(parent, dict) and comps[-1] in parent:
            parent[comps[-1]] = _apply_slice(parent[comps[-1]], arg)
    for path, arg in elem_matches:
        _validate_elem_match(arg)
        pred = _elem_match_pred(arg)
        arr = doc.get(path)
        hit = MISSING
        if isinstance(arr, list):
            for e in arr:
                if pred([e]):
                    hit = e
                    break
        if hit is MISSING:
            out.pop(path, None)
        else:
            out[path] = [_copy(hit)]
    return out


# ---------------------------------------------------------------------------------------
# Sorting
# ---------------------------------------------------------------------------------------

def _parse_sort(spec, code=15975):
    if isinstance(spec, dict):
        items = list(spec.items())
    elif isinstance(spec, (list, tuple)):
        items = [tuple(x) for x in spec]
    else:
        raise EngineError(2, "sort specification must be an object")
    keys = []
    for path, d in items:
        if isinstance(d, dict) and "$meta" in d:
            raise EngineError(2, "$meta sort is not supported by the test server")
        if not _is_num(d) or _numval(d) not in (1, -1):
            raise EngineError(code, "$sort key ordering must be 1 (for ascending) or -1 (for "
                                    "descending)")
        keys.append((path.split("."), int(_numval(d))))
    return keys


def _collect_sort(v, comps, out):
    if not comps:
        if isinstance(v, list):
            if not v:
                out.append(_EMPTY_ARRAY)
            else:
                out.extend(v)
        else:
            out.append(v)
        return
    c = comps[0]
    if isinstance(v, dict):
        if c in v:
            _collect_sort(v[c], comps[1:], out)
        else:
            out.append(None)
    elif isinstance(v, list):
        idx = _as_index(c)
        if idx is not None and idx < len(v):
            _collect_sort(v[idx], comps[1:], out)
        any_doc = False
        for e in v:
            if isinstance(e, dict):
                any_doc = True
                _collect_sort(e, comps, out)
        if not any_doc and (idx is None or idx >= len(v)):
            out.append(None)
    else:
        out.append(None)


def _sort_key(doc, comps, direction):
    values = []
    _collect_sort(doc, comps, values)
    if not values:
        return None
    best = values[0]
    for v in values[1:]:
        if compare(v, best) * direction < 0:
            best = v
    return best


def _cmp_sort_keys(a, b, keys):
    for comps, d in keys:
        c = compare(_sort_key(a, comps, d), _sort_key(b, comps, d))
        if c:
            return c * d
    return 0


def sort_docs(docs, sort_spec):
    """Stable multi-key sort with mongod's array and missing-field rules; new list."""
    keys = _parse_sort(sort_spec)
    if not keys:
        return list(docs)
    if len(keys) == 1 and keys[0][0] == ["$natural"]:
        return list(docs) if keys[0][1] == 1 else list(reversed(list(docs)))
    decorated = [([_sort_key(d, comps, direction) for comps, direction in keys], i, d)
                 for i, d in enumerate(docs)]

    def cmpf(x, y):
        for (_, direction), kx, ky in zip(keys, x[0], y[0]):
            c = compare(kx, ky)
            if c:
                return c * direction
        return _cmp(x[1], y[1])
    decorated.sort(key=functools.cmp_to_key(cmpf))
    return [d for _, _, d in decorated]


# ---------------------------------------------------------------------------------------
# Aggregation expressions
# ---------------------------------------------------------------------------------------

def _agg_path(v, comps):
    if not comps:
        return v
    if isinstance(v, dict):
        if comps[0] in v:
            return _agg_path(v[comps[0]], comps[1:])
        return MISSING
    if isinstance(v, list):
        out = []
        for e in v:
            if isinstance(e, (dict, list)):
                r = _agg_path(e, comps)
                if r is not MISSING:
                    out.append(r)
        return out
    return MISSING


def _eval_path(s, root, variables):
    if s.startswith("$$"):
        name, _, rest = s[2:].partition(".")
        if name in ("ROOT", "CURRENT"):
            base = root
        elif name == "REMOVE":
            return MISSING
        elif name in variables:
            base = variables[name]
        else:
            raise EngineError(17276, "Use of undefined variable: %s" % name)
        return _agg_path(base, rest.split(".")) if rest else base
    if len(s) == 1:
        raise EngineError(16872, "'$' by itself is not a valid FieldPath")
    return _agg_path(root, s[1:].split("."))


def _num_or_null(vals, name):
    for v in vals:
        if v is not None and v is not MISSING and not _is_num(v) and \
                not isinstance(v, datetime.datetime):
            raise EngineError(16554 if name != "$multiply" else 16555,
                              "%s only supports numeric types, not %s"
                              % (name, _type_name(v)))


def _eval_op(op, arg, root, variables):
    def ev(x):
        return _eval(x, root, variables)

    def args_list(n=None):
        a = arg if isinstance(arg, list) else [arg]
        if n is not None and len(a) != n:
            raise EngineError(16020, "Expression %s takes exactly %d arguments. %d were "
                                     "passed in." % (op, n, len(a)))
        return [ev(x) for x in a]

    if op == "$literal":
        return arg
    if op in ("$add", "$multiply"):
        vals = args_list()
        if any(v is None or v is MISSING for v in vals):
            return None
        _num_or_null(vals, op)
        acc = 0 if op == "$add" else 1
        date = None
        for v in vals:
            if isinstance(v, datetime.datetime):
                date = v
                continue
            acc = _arith("+" if op == "$add" else "*", acc, v, "double")
        if date is not None:
            return date + datetime.timedelta(milliseconds=float(_numval(acc)))
        return acc
    if op in ("$subtract", "$divide", "$mod"):
        a, b = args_list(2)
        if a is None or a is MISSING or b is None or b is MISSING:
            return None
        _num_or_null([a, b], op)
        if op == "$subtract":
            if isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime):
                return Int64(_dt_ms(a) - _dt_ms(b))
            neg = _arith("*", b, -1, "double")
            return _arith("+", a, neg, "double")
        if _numval(b) == 0:
            raise EngineError(2, "can't %s by zero" % ("divide" if op == "$divide"
                                                       else "$mod"))
        if op == "$divide":
            if isinstance(a, Decimal128) or isinstance(b, Decimal128):
                with decimal.localcontext(_D128_CTX) as ctx:
                    return Decimal128(ctx.divide(_to_decimal(a), _to_decimal(b)))
            return float(_numval(a)) / float(_numval(b))
        if isinstance(a, float) or isinstance(b, float):
            return math.fmod(float(a), float(b))
        x, y = int(_numval(a)), int(_numval(b))
        r = abs(x) % abs(y) * (1 if x >= 0 else -1)
        return _int_result(r, _is_int64(a) or _is_int64(b), "double")
    if op == "$concat":
        vals = args_list()
        if any(v is None or v is MISSING for v in vals):
            return None
        for v in vals:
            if not isinstance(v, str):
                raise EngineError(16702, "$concat only supports strings, not %s"
                                  % _type_name(v))
        return "".join(vals)
    if op in ("$toUpper", "$toLower"):
        v = args_list(1)[0]
        if v is None or v is MISSING:
            return ""
        s = v if isinstance(v, str) else _fmt(v)
        return s.upper() if op == "$toUpper" else s.lower()
    if op in ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$cmp"):
        a, b = args_list(2)
        c = compare(None if a is MISSING else a, None if b is MISSING else b)
        return {"$eq": c == 0, "$ne": c != 0, "$gt": c > 0, "$gte": c >= 0, "$lt": c < 0,
                "$lte": c <= 0, "$cmp": c}[op]
    if op == "$and":
        return all(_truthy(v) for v in args_list())
    if op == "$or":
        return any(_truthy(v) for v in args_list())
    if op == "$not":
        return not _truthy(args_list(1)[0])
    if op == "$cond":
        if isinstance(arg, dict):
            try:
                c, t, f = arg["if"], arg["then"], arg["else"]
            except KeyError as e:
                raise EngineError(17080, "Missing '%s' parameter to $cond" % e.args[0])
        else:
            if not isinstance(arg, list) or len(arg) != 3:
                raise EngineError(16020, "Expression $cond takes exactly 3 arguments.")
            c, t, f = arg
        return ev(t) if _truthy(ev(c)) else ev(f)
    if op == "$ifNull":
        a = arg if isinstance(arg, list) else [arg]
        for x in a[:-1]:
            v = ev(x)
            if v is not None and v is not MISSING:
                return v
        return ev(a[-1])
    if op == "$size":
        v = args_list(1)[0]
        if not isinstance(v, list):
            raise EngineError(17124, "The argument to $size must be an array. Type of "
                                     "the argument was: %s" % _type_name(v))
        return len(v)
    if op == "$arrayElemAt":
        a, i = args_list(2)
        if a is None or a is MISSING or i is None or i is MISSING:
            return None
        if not isinstance(a, list):
            raise EngineError(28689, "$arrayElemAt's first argument must be an array")
        i = int(_numval(i))
        if -len(a) <= i < len(a):
            return a[i]
        return MISSING
    if op in ("$sum", "$avg", "$min", "$max", "$first", "$last"):
        vals = args_list() if isinstance(arg, list) else [ev(arg)]
        if not isinstance(arg, list) and len(vals) == 1 and isinstance(vals[0], list):
            vals = vals[0]
        if op in ("$first", "$last"):
            if not vals:
                return MISSING
            return vals[0] if op == "$first" else vals[-1]
        acc = _Accumulator(op)
        for v in vals:
            acc.add(v)
        return acc.result()
    if op == "$slice":
        a = arg if isinstance(arg, list) else [arg]
        if len(a) not in (2, 3):
            raise EngineError(28667, "Expression $slice takes at least 2 arguments, and at "
                                     "most 3, but %d were passed in." % len(a))
        vals = [ev(x) for x in a]
        if any(v is None or v is MISSING for v in vals):
            return None
        if not isinstance(vals[0], list):
            raise EngineError(28724, "First argument to $slice must be an array, but is of "
                                     "type: %s" % _type_name(vals[0]))
        if len(vals) == 2:
            return _apply_slice(vals[0], vals[1])
        return _apply_slice(vals[0], vals[1:])
    if op == "$isArray":
        return isinstance(args_list(1)[0], list)
    if op == "$concatArrays":
        vals = args_list()
        if any(v is None or v is MISSING for v in vals):
            return None
        out = []
        for v in vals:
            if not isinstance(v, list):
                raise EngineError(28664, "$concatArrays only supports arrays, not %s"
                                  % _type_name(v))
            out.extend(v)
        return out
    if op == "$type":
        v = args_list(1)[0]
        return "missing" if v is MISSING else _type_name(v)
    if op == "$in":
        x, a = args_list(2)
        if not isinstance(a, list):
            raise EngineError(40081, "$in requires an array as a second argument")
        return any(_equal(x if x is not MISSING else None, e) for e in a)
    if op == "$toString":
        v = args_list(1)[0]
        if v is None or v is MISSING:
            return None
        if isinstance(v, str):
            return v
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, ObjectId):
            return str(v)
        if _is_num(v):
            return str(v)
        raise EngineError(241, "Unsupported conversion to string")
    raise EngineError(168, "Unrecognized expression '%s'" % op,
                      "InvalidPipelineOperator")


def _eval(expr, root, variables=None):
    """Evaluate an aggregation expression against root; MISSING if it yields nothing."""
    variables = variables or {}
    if isinstance(expr, str):
        if expr.startswith("$"):
            return _eval_path(expr, root, variables)
        return expr
    if isinstance(expr, dict):
        if not expr:
            return SON()
        first = next(iter(expr))
        if first.startswith("$"):
            if len(expr) != 1:
                raise EngineError(15983, "An object representing an expression must have "
                                         "exactly one field: %s" % _fmt(expr))
            return _eval_op(first, expr[first], root, variables)
        out = SON()
        for k, v in expr.items():
            val = _eval(v, root, variables)
            if val is not MISSING:
                out[k] = val
        return out
    if isinstance(expr, list):
        return [None if v is MISSING else v for v in (_eval(x, root, variables)
                                                       for x in expr)]
    return expr


class _Accumulator(object):
    def __init__(self, op):
        self.op = op
        self.total = 0
        self.kind = 0          # 0 int32, 1 int64, 2 double, 3 decimal
        self.count = 0
        self.best = MISSING
        self.items = []
        self.keys = set()
        self.first = MISSING
        self.seen = False

    def add(self, v):
        op = self.op
        if op in ("$sum", "$avg"):
            if not _is_num(v):
                return
            self.count += 1
            if isinstance(v, Decimal128):
                self.kind = 3
                self.total = _to_decimal(self.total) + v.to_decimal() \
                    if not isinstance(self.total, decimal.Decimal) \
                    else self.total + v.to_decimal()
            elif isinstance(v, float) or isinstance(self.total, float):
                if self.kind == 3:
                    self.total = self.total + _to_decimal(v)
                else:
                    self.kind = max(self.kind, 2)
                    self.total = float(self.total) + float(v)
            else:
                if _is_int64(v):
                    self.kind = max(self.kind, 1)
                if self.kind == 3:
                    self.total = self.total + decimal.Decimal(int(v))
                else:
                    self.total = self.total + int(v)
        elif op in ("$min", "$max"):
            if v is None or v is MISSING:
                return
            if self.best is MISSING or compare(v, self.best) * (1 if op == "$max" else -1) > 0:
                self.best = v
        elif op == "$push":
            if v is not MISSING:
                self.items.append(v)
        elif op == "$addToSet":
            if v is not MISSING:
                k = _ckey(v)
                if k not in self.keys:
                    self.keys.add(k)
                    self.items.append(v)
        elif op == "$first":
            if not self.seen:
                self.seen = True
                self.first = v
        elif op == "$last":
            self.seen = True
            self.first = v

    def result(self):
        op = self.op
        if op == "$sum":
            if self.kind == 3:
                return _make_decimal(self.total)
            if self.kind == 2 or isinstance(self.total, float):
                return float(self.total)
            return _int_result(self.total, self.kind == 1, "double")
        if op == "$avg":
            if not self.count:
                return None
            if self.kind == 3:
                with decimal.localcontext(_D128_CTX) as ctx:
                    return Decimal128(ctx.divide(_to_decimal(self.total),
                                                 decimal.Decimal(self.count)))
            return float(self.total) / self.count
        if op in ("$min", "$max"):
            return None if self.best is MISSING else self.best
        if op in ("$push", "$addToSet"):
            return [_copy(x) for x in self.items]
        if op in ("$first", "$last"):
            return None if self.first is MISSING else self.first
        return None


# ---------------------------------------------------------------------------------------
# Aggregation stages
# ---------------------------------------------------------------------------------------

_ACCUMULATORS = ("$sum", "$avg", "$min", "$max", "$push", "$addToSet", "$first", "$last",
                 "$count")


def _stage_group(docs, spec):
    if not isinstance(spec, dict):
        raise EngineError(15947, "a group's fields must be specified in an object")
    if "_id" not in spec:
        raise EngineError(15955, "a group specification must include an _id")
    accs = []
    for name, a in spec.items():
        if name == "_id":
            continue
        if "." in name:
            raise EngineError(40235, "The field name '%s' cannot contain '.'" % name)
        if not isinstance(a, dict) or len(a) != 1:
            raise EngineError(40238, "The field '%s' must specify one accumulator" % name)
        op, expr = next(iter(a.items()))
        if op not in _ACCUMULATORS:
            raise EngineError(15952, "unknown group operator '%s'" % op)
        if op == "$count":
            if expr != {} and not (isinstance(expr, dict) and not expr):
                raise EngineError(2, "$count takes no arguments, i.e. $count:{}")
            op, expr = "$sum", 1
        accs.append((name, op, expr))
    groups = {}
    order = []
    for d in docs:
        key_val = _eval(spec["_id"], d)
        if key_val is MISSING:
            key_val = None
        k = _ckey(key_val)
        g = groups.get(k)
        if g is None:
            g = (key_val, [_Accumulator(op) for _, op, _ in accs])
            groups[k] = g
            order.append(k)
        for (name, op, expr), acc in zip(accs, g[1]):
            acc.add(_eval(expr, d))
    out = []
    for k in order:
        key_val, acc_objs = groups[k]
        res = SON()
        res["_id"] = _copy(key_val)
        for (name, _, _), acc in zip(accs, acc_objs):
            res[name] = acc.result()
        out.append(res)
    return out


def _int_stage_arg(v, stage, neg_code, msg):
    if not _is_num(v) or _is_nan(_numval(v)) or _numval(v) != int(_numval(v)):
        raise EngineError(15957 if stage == "$limit" else 15956,
                          "the %s must be specified as a number" % stage[1:])
    n = int(_numval(v))
    if n < 0 or (stage == "$limit" and n == 0):
        raise EngineError(neg_code, msg)
    return n


def _stage_unwind(docs, spec):
    include_idx = None
    preserve = False
    if isinstance(spec, str):
        path = spec
    elif isinstance(spec, dict):
        for k in spec:
            if k not in ("path", "preserveNullAndEmptyArrays", "includeArrayIndex"):
                raise EngineError(28811, "unrecognized option to $unwind: %s" % k)
        path = spec.get("path")
        preserve = bool(spec.get("preserveNullAndEmptyArrays", False))
        include_idx = spec.get("includeArrayIndex")
    else:
        raise EngineError(15981, "expected either a string or an object as specification "
                                 "for $unwind stage")
    if not isinstance(path, str) or not path.startswith("$") or len(path) < 2:
        raise EngineError(28818, "path option to $unwind stage should be prefixed with a "
                                 "'$': %s" % _fmt(path))
    comps = path[1:].split(".")
    out = []
    for d in docs:
        v = _get_at(d, comps) if all(isinstance(_get_at(d, comps[:i]), dict)
                                     for i in range(len(comps))) else MISSING
        if isinstance(v, list) and v:
            for i, e in enumerate(v):
                nd = _copy(d)
                _set_path_doc(nd, comps, _copy(e))
                if include_idx:
                    nd[include_idx] = Int64(i)
                out.append(nd)
        elif isinstance(v, list) or v is None or v is MISSING:
            if preserve:
                nd = _copy(d)
                if isinstance(v, list):
                    parent = _get_at(nd, comps[:-1]) if len(comps) > 1 else nd
                    parent.pop(comps[-1], None)
                if include_idx:
                    nd[include_idx] = None
                out.append(nd)
        else:
            nd = _copy(d)
            if include_idx:
                nd[include_idx] = None
            out.append(nd)
    return out


def _add_fields(doc, spec, root):
    out = doc
    for k, v in spec.items():
        comps = k.split(".")
        if isinstance(v, dict) and v and not next(iter(v)).startswith("$") and \
                len(comps) == 1:
            cur = out.get(k)
            if isinstance(cur, dict):
                out[k] = _add_fields(SON(cur), v, root)
            else:
                out[k] = _add_fields(SON(), v, root)
            continue
        val = _eval(v, root)
        if val is MISSING:
            parent = _get_at(out, comps[:-1]) if len(comps) > 1 else out
            if isinstance(parent, dict):
                parent.pop(comps[-1], None)
            continue
        _set_path_doc(out, comps, _copy(val))
    return out


def aggregate(docs, pipeline):
    """Run a pipeline over docs (an iterable of documents); returns a new list."""
    if not isinstance(pipeline, list):
        raise EngineError(14, "'pipeline' option must be specified as an array")
    cur = list(docs)
    for stage in pipeline:
        if not isinstance(stage, dict) or len(stage) != 1:
            raise EngineError(40323, "A pipeline stage specification object must contain "
                                     "exactly one field.")
        name, spec = next(iter(stage.items()))
        if name == "$match":
            if not isinstance(spec, dict):
                raise EngineError(15959, "the match filter must be an expression in an "
                                         "object")
            _validate_filter(spec)
            cur = [d for d in cur if _match(d, spec)]
        elif name == "$group":
            cur = _stage_group(cur, spec)
        elif name == "$sort":
            if not isinstance(spec, dict) or not spec:
                raise EngineError(15976, "$sort stage must have at least one sort key")
            cur = sort_docs(cur, spec)
        elif name == "$skip":
            n = _int_stage_arg(spec, name, 15956, "invalid argument to $skip stage: Expected "
                                                  "a non-negative number in: $skip: %s"
                               % _fmt(spec))
            cur = cur[n:]
        elif name == "$limit":
            n = _int_stage_arg(spec, name, 15958, "the limit must be positive")
            cur = cur[:n]
        elif name == "$project":
            if not isinstance(spec, dict):
                raise EngineError(15969, "$project specification must be an object")
            if not spec:
                raise EngineError(51272, "Invalid $project :: caused by :: projection "
                                         "specification must have at least one field")
            cur = [project(d, spec, _agg=True) for d in cur]
        elif name == "$count":
            if not isinstance(spec, str) or not spec:
                raise EngineError(40156, "the count field must be a non-empty string")
            if spec.startswith("$"):
                raise EngineError(40158, "the count field cannot be a $-prefixed path")
            if "." in spec:
                raise EngineError(40160, "the count field cannot contain '.'")
            cur = [SON([(spec, _int_result(len(cur), False))])] if cur else []
        elif name == "$unwind":
            cur = _stage_unwind(cur, spec)
        elif name in ("$addFields", "$set"):
            if not isinstance(spec, dict):
                raise EngineError(40272, "%s specification stage must be an object" % name)
            cur = [_add_fields(_copy(d), spec, d) for d in cur]
        elif name == "$unset":
            fields = [spec] if isinstance(spec, str) else spec
            if not isinstance(fields, list) or not fields or \
                    not all(isinstance(f, str) and f for f in fields):
                raise EngineError(31002, "$unset specification must be a string or an array "
                                         "containing only string values")
            excl = SON((f, 0) for f in fields)
            cur = [project(d, excl, _agg=True) for d in cur]
        elif name in ("$replaceRoot", "$replaceWith"):
            if name == "$replaceRoot":
                if not isinstance(spec, dict) or "newRoot" not in spec:
                    raise EngineError(40231, "no newRoot specified for the $replaceRoot "
                                             "stage")
                expr = spec["newRoot"]
            else:
                expr = spec
            nxt = []
            for d in cur:
                v = _eval(expr, d)
                if not isinstance(v, dict):
                    raise EngineError(40228, "'newRoot' expression must evaluate to an "
                                             "object, but resulting value was: %s. Type of "
                                             "resulting value: '%s'."
                                      % (_fmt(v), _type_name(v)))
                nxt.append(_copy(v))
            cur = nxt
        else:
            raise EngineError(40324, "Unrecognized pipeline stage name: '%s'" % name)
    return [_copy(d) for d in cur]
