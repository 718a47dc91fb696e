#!/usr/bin/python3
"""Data-driven tests of spec/server/testd/engine.py (the test server's data engine).

Run with Debian's interpreter (python3-bson must be importable):

    /usr/bin/python3 spec/server/test_engine.py

Prints TAP ("ok N - ..." / "not ok N - ..." and "1..N"); exits 1 if any case failed.
Results are compared strictly: same Python types (int vs Int64 vs float vs Decimal128),
same key order, and the inputs must not have been mutated.
"""

import copy
import datetime
import os
import re
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bson.binary import Binary  # noqa: E402
from bson.code import Code  # noqa: E402
from bson.decimal128 import Decimal128  # noqa: E402
from bson.int64 import Int64  # noqa: E402
from bson.max_key import MaxKey  # noqa: E402
from bson.min_key import MinKey  # noqa: E402
from bson.objectid import ObjectId  # noqa: E402
from bson.regex import Regex  # noqa: E402
from bson.son import SON  # noqa: E402
from bson.timestamp import Timestamp  # noqa: E402

from testd import engine  # noqa: E402
from testd.engine import EngineError  # noqa: E402


def S(*pairs, **kw):
    """SON from (key, value) pairs or keyword arguments (both keep order)."""
    d = SON()
    for k, v in pairs:
        d[k] = v
    for k, v in kw.items():
        d[k] = v
    return d


def D(d):
    """SON from a dict literal (keeps the literal's order), recursively."""
    if isinstance(d, dict):
        return SON((k, D(v)) for k, v in d.items())
    if isinstance(d, list):
        return [D(x) for x in d]
    return d


class Err(object):
    """Expected EngineError with this code."""

    def __init__(self, code):
        self.code = code

    def __repr__(self):
        return "Err(%d)" % self.code


class Check(object):
    """Expected result checked by a predicate (for values like $currentDate)."""

    def __init__(self, fn, what):
        self.fn = fn
        self.what = what

    def __repr__(self):
        return "Check(%s)" % self.what


def same(a, b):
    """Strict equality: types, key order and values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    return a == b


OID1 = ObjectId("5f0000000000000000000001")
OID2 = ObjectId("5f0000000000000000000002")
DT1 = datetime.datetime(2020, 1, 1)
DT2 = datetime.datetime(2021, 1, 1)
I32MAX = 2 ** 31 - 1

# ---------------------------------------------------------------------------------------
# match(doc, filter) -> bool
# ---------------------------------------------------------------------------------------

MATCH = [
    ("eq scalar", {"a": 1}, {"a": 1}, True),
    ("eq scalar mismatch", {"a": 1}, {"a": 2}, False),
    ("eq int vs float by value", {"a": 1}, {"a": 1.0}, True),
    ("eq Int64 vs int", {"a": Int64(5)}, {"a": 5}, True),
    ("eq Decimal128 vs int", {"a": Decimal128("2.0")}, {"a": 2}, True),
    ("eq string vs number is false", {"a": "1"}, {"a": 1}, False),
    ("empty filter matches", {"a": 1}, {}, True),
    ("dotted path subdocument", {"a": {"b": {"c": 3}}}, {"a.b.c": 3}, True),
    ("array any element", {"a": [1, 2, 3]}, {"a": 2}, True),
    ("array whole equality", {"a": [1, 2]}, {"a": [1, 2]}, True),
    ("array whole equality order matters", {"a": [1, 2]}, {"a": [2, 1]}, False),
    ("nested array element equality", {"a": [[1, 2], 3]}, {"a": [1, 2]}, True),
    ("array of docs dotted", {"a": [{"b": 1}, {"b": 2}]}, {"a.b": 2}, True),
    ("numeric path index", {"a": [10, 20]}, {"a.1": 20}, True),
    ("numeric path index miss", {"a": [10, 20]}, {"a.0": 20}, False),
    ("numeric index then field", {"a": [{"b": 1}, {"b": 2}]}, {"a.1.b": 2}, True),
    ("doc equality key order", {"a": {"x": 1, "y": 2}}, {"a": D({"y": 2, "x": 1})}, False),
    ("doc equality exact", {"a": {"x": 1, "y": 2}}, {"a": D({"x": 1, "y": 2})}, True),
    ("null matches missing", {"b": 1}, {"a": None}, True),
    ("null matches null", {"a": None}, {"a": None}, True),
    ("null does not match value", {"a": 0}, {"a": None}, False),
    ("null through scalar path", {"a": 5}, {"a.b": None}, True),
    ("$eq", {"a": 5}, {"a": {"$eq": 5}}, True),
    ("$ne on value", {"a": 5}, {"a": {"$ne": 5}}, False),
    ("$ne on missing", {}, {"a": {"$ne": 5}}, True),
    ("$ne on array containing", {"a": [1, 5]}, {"a": {"$ne": 5}}, False),
    ("$ne null on present", {"a": 1}, {"a": {"$ne": None}}, True),
    ("$gt", {"a": 5}, {"a": {"$gt": 4}}, True),
    ("$gt equal false", {"a": 5}, {"a": {"$gt": 5}}, False),
    ("$gte", {"a": 5}, {"a": {"$gte": 5}}, True),
    ("$lt Int64 vs float", {"a": Int64(3)}, {"a": {"$lt": 3.5}}, True),
    ("$lte Decimal128", {"a": Decimal128("1.5")}, {"a": {"$lte": 1.5}}, True),
    ("$gt type bracketing string vs number", {"a": "z"}, {"a": {"$gt": 1}}, False),
    ("$gt strings", {"a": "b"}, {"a": {"$gt": "a"}}, True),
    ("$gt and $lt range on array elements", {"a": [1, 10]}, {"a": {"$gt": 2, "$lt": 9}},
     True),
    ("$lt on missing false", {}, {"a": {"$lt": 5}}, False),
    ("$gte null matches missing", {}, {"a": {"$gte": None}}, True),
    ("$gt dates", {"a": DT2}, {"a": {"$gt": DT1}}, True),
    ("$in", {"a": 2}, {"a": {"$in": [1, 2]}}, True),
    ("$in miss", {"a": 3}, {"a": {"$in": [1, 2]}}, False),
    ("$in array field", {"a": [5, 6]}, {"a": {"$in": [6, 7]}}, True),
    ("$in null matches missing", {}, {"a": {"$in": [None, 1]}}, True),
    ("$in regex", {"a": "hello"}, {"a": {"$in": [re.compile("^he")]}}, True),
    ("$nin", {"a": 3}, {"a": {"$nin": [1, 2]}}, True),
    ("$nin array containing", {"a": [1, 3]}, {"a": {"$nin": [1, 2]}}, False),
    ("$in not array is error", {"a": 1}, {"a": {"$in": 1}}, Err(2)),
    ("$exists true", {"a": None}, {"a": {"$exists": True}}, True),
    ("$exists false", {"b": 1}, {"a": {"$exists": False}}, True),
    ("$exists false present", {"a": 1}, {"a": {"$exists": False}}, False),
    ("$exists through array", {"a": [{"b": 1}, {"c": 1}]}, {"a.b": {"$exists": True}}, True),
    ("$type by name", {"a": "x"}, {"a": {"$type": "string"}}, True),
    ("$type int vs long", {"a": 1}, {"a": {"$type": "long"}}, False),
    ("$type long", {"a": Int64(1)}, {"a": {"$type": "long"}}, True),
    ("$type number 18", {"a": Int64(1)}, {"a": {"$type": 18}}, True),
    ("$type number alias", {"a": Decimal128("1")}, {"a": {"$type": "number"}}, True),
    ("$type array", {"a": [1]}, {"a": {"$type": "array"}}, True),
    ("$type element of array", {"a": [1, "x"]}, {"a": {"$type": 2}}, True),
    ("$type null", {"a": None}, {"a": {"$type": "null"}}, True),
    ("$type list of types", {"a": 1.5}, {"a": {"$type": ["string", "double"]}}, True),
    ("$type bad alias", {"a": 1}, {"a": {"$type": "nope"}}, Err(2)),
    ("$regex string", {"a": "Hello"}, {"a": {"$regex": "^hel", "$options": "i"}}, True),
    ("$regex case sensitive", {"a": "Hello"}, {"a": {"$regex": "^hel"}}, False),
    ("bson Regex literal", {"a": "abc"}, {"a": Regex("B", "i")}, True),
    ("re pattern literal", {"a": ["x", "yz"]}, {"a": re.compile("z$")}, True),
    ("$regex non-string field", {"a": 5}, {"a": {"$regex": "5"}}, False),
    ("$options without $regex", {"a": "x"}, {"a": {"$options": "i"}}, Err(2)),
    ("$size", {"a": [1, 2]}, {"a": {"$size": 2}}, True),
    ("$size mismatch", {"a": [1, 2]}, {"a": {"$size": 1}}, False),
    ("$size not array", {"a": 2}, {"a": {"$size": 1}}, False),
    ("$size bad arg", {"a": [1]}, {"a": {"$size": "1"}}, Err(2)),
    ("$all", {"a": [1, 2, 3]}, {"a": {"$all": [3, 1]}}, True),
    ("$all missing element", {"a": [1, 2, 3]}, {"a": {"$all": [3, 4]}}, False),
    ("$all empty matches nothing", {"a": [1]}, {"a": {"$all": []}}, False),
    ("$all with $elemMatch", {"a": [{"x": 1}, {"x": 5}]},
     {"a": {"$all": [{"$elemMatch": {"x": {"$gt": 4}}}]}}, True),
    ("$elemMatch docs", {"a": [{"x": 1, "y": 2}, {"x": 2, "y": 1}]},
     {"a": {"$elemMatch": {"x": 1, "y": 1}}}, False),
    ("$elemMatch docs hit", {"a": [{"x": 1, "y": 2}, {"x": 2, "y": 1}]},
     {"a": {"$elemMatch": {"x": 2, "y": 1}}}, True),
    ("$elemMatch values", {"a": [1, 5, 9]}, {"a": {"$elemMatch": {"$gt": 4, "$lt": 6}}},
     True),
    ("$elemMatch values none", {"a": [1, 9]}, {"a": {"$elemMatch": {"$gt": 4, "$lt": 6}}},
     False),
    ("$elemMatch on non-array", {"a": 5}, {"a": {"$elemMatch": {"$gt": 4}}}, False),
    ("$mod", {"a": 10}, {"a": {"$mod": [4, 2]}}, True),
    ("$mod float truncated", {"a": 10.7}, {"a": {"$mod": [4, 2]}}, True),
    ("$mod negative", {"a": -6}, {"a": {"$mod": [4, -2]}}, True),
    ("$mod malformed", {"a": 1}, {"a": {"$mod": [4]}}, Err(2)),
    ("$not operator", {"a": 5}, {"a": {"$not": {"$gt": 6}}}, True),
    ("$not regex", {"a": "abc"}, {"a": {"$not": re.compile("^a")}}, False),
    ("$not matches missing", {}, {"a": {"$not": {"$gt": 6}}}, True),
    ("$not bad arg", {"a": 1}, {"a": {"$not": 5}}, Err(2)),
    ("$and", {"a": 1, "b": 2}, {"$and": [{"a": 1}, {"b": 2}]}, True),
    ("$and one false", {"a": 1, "b": 2}, {"$and": [{"a": 1}, {"b": 3}]}, False),
    ("$or", {"a": 1}, {"$or": [{"a": 2}, {"a": 1}]}, True),
    ("$nor", {"a": 1}, {"$nor": [{"a": 2}, {"a": 3}]}, True),
    ("$or empty is error", {"a": 1}, {"$or": []}, Err(2)),
    ("unknown top-level operator", {"a": 1}, {"$foo": 1}, Err(2)),
    ("unknown field operator", {"a": 1}, {"a": {"$foo": 1}}, Err(2)),
    ("implicit and of fields", {"a": 1, "b": 2}, {"a": 1, "b": 3}, False),
    ("ObjectId equality", {"_id": OID1}, {"_id": OID1}, True),
    ("bool is not number", {"a": True}, {"a": 1}, False),
    ("null matches array element lacking field", {"a": [{"b": 1}, {"c": 1}]}, {"a.b": None},
     True),
    ("null does not match array of scalars", {"a": [1, 2]}, {"a.b": None}, False),
    ("null does not match empty array", {"a": []}, {"a.b": None}, False),
    ("$ne null on array of scalars", {"a": [1, 2]}, {"a.b": {"$ne": None}}, True),
    ("$exists false on array of scalars", {"a": [1, 2]}, {"a.b": {"$exists": False}}, True),
    ("$exists false when one element has it", {"a": [{"b": 1}, {"c": 1}]},
     {"a.b": {"$exists": False}}, False),
    ("null at array index with subdoc element", {"a": [{"b": 1}]}, {"a.0": None}, False),
    ("field named like an index in subdoc", {"a": [{"0": 7}]}, {"a.0": 7}, True),
    ("$exists false through array index", {"a": [{"c": 1}]}, {"a.0.b": {"$exists": False}},
     True),
    ("$in Int64 by value", {"a": 3}, {"a": {"$in": [Int64(3)]}}, True),
    ("$all with regex", {"a": ["apple", "pear"]},
     {"a": {"$all": [re.compile("^a"), re.compile("^p")]}}, True),
    ("$elemMatch with nested $or", {"a": [{"x": 1}, {"y": 2}]},
     {"a": {"$elemMatch": {"$or": [{"x": 5}, {"y": 2}]}}}, True),
    ("nested $and/$or", {"a": 1, "b": 2},
     {"$or": [{"$and": [{"a": 1}, {"b": 3}]}, {"$nor": [{"a": 2}]}]}, True),
    ("$comment ignored", {"a": 1}, {"a": 1, "$comment": "hi"}, True),
    ("Decimal128 NaN only equals NaN", {"a": Decimal128("NaN")}, {"a": {"$gt": -1e308}},
     False),
    ("timestamp compare", {"a": Timestamp(5, 1)}, {"a": {"$gte": Timestamp(5, 1)}}, True),
    ("binData equality", {"a": Binary(b"xy", 4)}, {"a": Binary(b"xy", 4)}, True),
    ("binData subtype differs", {"a": Binary(b"xy", 4)}, {"a": Binary(b"xy", 0)}, False),
    ("bad filter raises even if $or already true", {"a": 1},
     {"$or": [{"a": 1}, {"$bogus": 1}]}, Err(2)),
    ("bad operand raises even if earlier op false", {"a": 1},
     D({"a": {"$gt": 100, "$in": 5}}), Err(2)),
    ("bad regex option", {"a": "x"}, {"a": {"$regex": "x", "$options": "q"}}, Err(51108)),
    ("MinKey $gt everything", {"a": "x"}, {"a": {"$gt": MinKey()}}, True),
]

# ---------------------------------------------------------------------------------------
# apply_update(doc, update, **kw) -> doc
# ---------------------------------------------------------------------------------------

T = datetime.datetime  # for Check lambdas

UPDATE = [
    ("$set new field appended", {"_id": 1, "a": 1}, {"$set": {"b": 2}}, {},
     S(_id=1, a=1, b=2)),
    ("$set existing keeps position", {"_id": 1, "a": 1, "b": 2}, {"$set": {"a": 9}}, {},
     S(_id=1, a=9, b=2)),
    ("$set dotted creates subdocs", {"_id": 1}, {"$set": {"a.b.c": 1}}, {},
     D({"_id": 1, "a": {"b": {"c": 1}}})),
    ("$set new fields in field-name order", {"_id": 1}, {"$set": D({"z": 1, "m": 2})}, {},
     S(_id=1, m=2, z=1)),
    ("$set array index", {"_id": 1, "a": [1, 2]}, {"$set": {"a.1": 5}}, {},
     S(_id=1, a=[1, 5])),
    ("$set array index pads with null", {"_id": 1, "a": [1]}, {"$set": {"a.3": 4}}, {},
     S(_id=1, a=[1, None, None, 4])),
    ("$set through scalar PathNotViable", {"_id": 1, "a": 5}, {"$set": {"a.b": 1}}, {},
     Err(28)),
    ("$set keeps value type Int64", {"_id": 1}, {"$set": {"a": Int64(1)}}, {},
     S(_id=1, a=Int64(1))),
    ("$set same _id allowed", {"_id": 1, "a": 1}, {"$set": {"_id": 1}}, {}, S(_id=1, a=1)),
    ("$set _id change ImmutableField", {"_id": 1}, {"$set": {"_id": 2}}, {}, Err(66)),
    ("$unset", {"_id": 1, "a": 1, "b": 2}, {"$unset": {"a": ""}}, {}, S(_id=1, b=2)),
    ("$unset missing no-op", {"_id": 1}, {"$unset": {"x.y": 1}}, {}, S(_id=1)),
    ("$unset array element sets null", {"_id": 1, "a": [1, 2]}, {"$unset": {"a.0": 1}}, {},
     S(_id=1, a=[None, 2])),
    ("$inc int32", {"_id": 1, "a": 1}, {"$inc": {"a": 2}}, {}, S(_id=1, a=3)),
    ("$inc int32 overflow -> Int64", {"_id": 1, "a": I32MAX}, {"$inc": {"a": 1}}, {},
     S(_id=1, a=Int64(2 ** 31))),
    ("$inc int32 negative overflow -> Int64", {"_id": 1, "a": -2 ** 31},
     {"$inc": {"a": -1}}, {}, S(_id=1, a=Int64(-2 ** 31 - 1))),
    ("$inc Int64 stays Int64", {"_id": 1, "a": Int64(1)}, {"$inc": {"a": 1}}, {},
     S(_id=1, a=Int64(2))),
    ("$inc int by Int64 -> Int64", {"_id": 1, "a": 1}, {"$inc": {"a": Int64(1)}}, {},
     S(_id=1, a=Int64(2))),
    ("$inc int by float -> float", {"_id": 1, "a": 1}, {"$inc": {"a": 0.5}}, {},
     S(_id=1, a=1.5)),
    ("$inc float by int stays float", {"_id": 1, "a": 1.0}, {"$inc": {"a": 1}}, {},
     S(_id=1, a=2.0)),
    ("$inc Decimal128 stays Decimal128", {"_id": 1, "a": Decimal128("1.1")},
     {"$inc": {"a": 1}}, {}, S(_id=1, a=Decimal128("2.1"))),
    ("$inc int by Decimal128 -> Decimal128", {"_id": 1, "a": 1},
     {"$inc": {"a": Decimal128("0.5")}}, {}, S(_id=1, a=Decimal128("1.5"))),
    ("$inc missing creates with arg type", {"_id": 1}, {"$inc": {"n": Int64(5)}}, {},
     S(_id=1, n=Int64(5))),
    ("$inc on string TypeMismatch", {"_id": 1, "a": "x"}, {"$inc": {"a": 1}}, {}, Err(14)),
    ("$inc non-numeric arg TypeMismatch", {"_id": 1, "a": 1}, {"$inc": {"a": "1"}}, {},
     Err(14)),
    ("$inc Int64 overflow is error", {"_id": 1, "a": Int64(2 ** 63 - 1)},
     {"$inc": {"a": 1}}, {}, Err(2)),
    ("$inc dotted in array element", {"_id": 1, "a": [{"n": 1}]}, {"$inc": {"a.0.n": 1}},
     {}, D({"_id": 1, "a": [{"n": 2}]})),
    ("$mul int32", {"_id": 1, "a": 3}, {"$mul": {"a": 4}}, {}, S(_id=1, a=12)),
    ("$mul int32 overflow -> Int64", {"_id": 1, "a": 2 ** 30}, {"$mul": {"a": 4}}, {},
     S(_id=1, a=Int64(2 ** 32))),
    ("$mul Int64 by int stays Int64", {"_id": 1, "a": Int64(3)}, {"$mul": {"a": 2}}, {},
     S(_id=1, a=Int64(6))),
    ("$mul by float -> float", {"_id": 1, "a": 3}, {"$mul": {"a": 1.5}}, {},
     S(_id=1, a=4.5)),
    ("$mul missing -> zero of arg type", {"_id": 1}, {"$mul": {"a": Int64(7)}}, {},
     S(_id=1, a=Int64(0))),
    ("$mul missing float -> 0.0", {"_id": 1}, {"$mul": {"a": 2.5}}, {}, S(_id=1, a=0.0)),
    ("$min lowers", {"_id": 1, "a": 5}, {"$min": {"a": 3}}, {}, S(_id=1, a=3)),
    ("$min keeps", {"_id": 1, "a": 5}, {"$min": {"a": 7}}, {}, S(_id=1, a=5)),
    ("$max raises with type of arg", {"_id": 1, "a": 5}, {"$max": {"a": 7.5}}, {},
     S(_id=1, a=7.5)),
    ("$max equal value keeps original type", {"_id": 1, "a": 5}, {"$max": {"a": 5.0}}, {},
     S(_id=1, a=5)),
    ("$max missing sets", {"_id": 1}, {"$max": {"a": DT1}}, {}, S(_id=1, a=DT1)),
    ("$max BSON order across types", {"_id": 1, "a": 5}, {"$max": {"a": "x"}}, {},
     S(_id=1, a="x")),
    ("$push", {"_id": 1, "a": [1]}, {"$push": {"a": 2}}, {}, S(_id=1, a=[1, 2])),
    ("$push creates array", {"_id": 1}, {"$push": {"a": 1}}, {}, S(_id=1, a=[1])),
    ("$push array value as one element", {"_id": 1, "a": []}, {"$push": {"a": [1, 2]}}, {},
     S(_id=1, a=[[1, 2]])),
    ("$push $each", {"_id": 1, "a": [1]}, {"$push": {"a": {"$each": [2, 3]}}}, {},
     S(_id=1, a=[1, 2, 3])),
    ("$push $each $position", {"_id": 1, "a": [1, 4]},
     {"$push": {"a": D({"$each": [2, 3], "$position": 1})}}, {}, S(_id=1, a=[1, 2, 3, 4])),
    ("$push $position negative", {"_id": 1, "a": [1, 4]},
     {"$push": {"a": D({"$each": [9], "$position": -1})}}, {}, S(_id=1, a=[1, 9, 4])),
    ("$push $slice positive", {"_id": 1, "a": [1, 2]},
     {"$push": {"a": D({"$each": [3], "$slice": 2})}}, {}, S(_id=1, a=[1, 2])),
    ("$push $slice negative", {"_id": 1, "a": [1, 2]},
     {"$push": {"a": D({"$each": [3], "$slice": -2})}}, {}, S(_id=1, a=[2, 3])),
    ("$push $sort scalar desc", {"_id": 1, "a": [2, 5]},
     {"$push": {"a": D({"$each": [3], "$sort": -1})}}, {}, S(_id=1, a=[5, 3, 2])),
    ("$push $sort by field then $slice", {"_id": 1, "a": [D({"s": 3}), D({"s": 1})]},
     {"$push": {"a": D({"$each": [D({"s": 2})], "$sort": {"s": 1}, "$slice": 2})}}, {},
     D({"_id": 1, "a": [{"s": 1}, {"s": 2}]})),
    ("$push on non-array BadValue", {"_id": 1, "a": 1}, {"$push": {"a": 2}}, {}, Err(2)),
    ("$push unknown modifier", {"_id": 1, "a": []},
     {"$push": {"a": D({"$each": [1], "$bogus": 1})}}, {}, Err(2)),
    ("$addToSet adds", {"_id": 1, "a": [1]}, {"$addToSet": {"a": 2}}, {},
     S(_id=1, a=[1, 2])),
    ("$addToSet existing by value", {"_id": 1, "a": [1]}, {"$addToSet": {"a": 1.0}}, {},
     S(_id=1, a=[1])),
    ("$addToSet $each dedups", {"_id": 1, "a": [1]},
     {"$addToSet": {"a": {"$each": [1, 2, 2, 3]}}}, {}, S(_id=1, a=[1, 2, 3])),
    ("$addToSet creates array", {"_id": 1}, {"$addToSet": {"a": D({"x": 1})}}, {},
     D({"_id": 1, "a": [{"x": 1}]})),
    ("$pop last", {"_id": 1, "a": [1, 2, 3]}, {"$pop": {"a": 1}}, {}, S(_id=1, a=[1, 2])),
    ("$pop first", {"_id": 1, "a": [1, 2, 3]}, {"$pop": {"a": -1}}, {}, S(_id=1, a=[2, 3])),
    ("$pop bad arg FailedToParse", {"_id": 1, "a": [1]}, {"$pop": {"a": 2}}, {}, Err(9)),
    ("$pop non-array TypeMismatch", {"_id": 1, "a": 1}, {"$pop": {"a": 1}}, {}, Err(14)),
    ("$pull value", {"_id": 1, "a": [1, 2, 1, 3]}, {"$pull": {"a": 1}}, {},
     S(_id=1, a=[2, 3])),
    ("$pull condition", {"_id": 1, "a": [1, 5, 8]}, {"$pull": {"a": {"$gte": 5}}}, {},
     S(_id=1, a=[1])),
    ("$pull doc condition", {"_id": 1, "a": [D({"x": 1, "y": 1}), D({"x": 2})]},
     {"$pull": {"a": {"x": 1}}}, {}, D({"_id": 1, "a": [{"x": 2}]})),
    ("$pull missing no-op", {"_id": 1}, {"$pull": {"a": 1}}, {}, S(_id=1)),
    ("$pullAll", {"_id": 1, "a": [1, 2, 3, 2]}, {"$pullAll": {"a": [2, 3]}}, {},
     S(_id=1, a=[1])),
    ("$rename", {"_id": 1, "a": 1, "b": 2}, {"$rename": {"a": "c"}}, {},
     S(_id=1, b=2, c=1)),
    ("$rename into subdoc", {"_id": 1, "a": 1}, {"$rename": {"a": "x.y"}}, {},
     D({"_id": 1, "x": {"y": 1}})),
    ("$rename missing source no-op", {"_id": 1}, {"$rename": {"a": "b"}}, {}, S(_id=1)),
    ("$rename same name BadValue", {"_id": 1, "a": 1}, {"$rename": {"a": "a"}}, {}, Err(2)),
    ("$setOnInsert ignored on update", {"_id": 1}, {"$setOnInsert": {"a": 1}}, {}, S(_id=1)),
    ("$setOnInsert applied on insert", S(_id=1), {"$setOnInsert": {"a": 1}},
     {"is_insert": True}, S(_id=1, a=1)),
    ("$currentDate true -> datetime", {"_id": 1}, {"$currentDate": {"d": True}}, {},
     Check(lambda d: isinstance(d["d"], T), "d is datetime")),
    ("$currentDate timestamp", {"_id": 1},
     {"$currentDate": {"t": {"$type": "timestamp"}}}, {},
     Check(lambda d: isinstance(d["t"], Timestamp), "t is Timestamp")),
    ("$currentDate bad $type", {"_id": 1}, {"$currentDate": {"t": {"$type": "x"}}}, {},
     Err(2)),
    ("$bit and/or", {"_id": 1, "a": 12}, {"$bit": {"a": {"or": 1}}}, {}, S(_id=1, a=13)),
    ("positional $", {"_id": 1, "a": [1, 2, 3]}, {"$set": {"a.$": 20}},
     {"query": {"a": 2}}, S(_id=1, a=[1, 20, 3])),
    ("positional $ with subfield", {"_id": 1, "a": [D({"k": 1, "v": 0}), D({"k": 2, "v": 0})]},
     {"$inc": {"a.$.v": 1}}, {"query": {"a.k": 2}},
     D({"_id": 1, "a": [{"k": 1, "v": 0}, {"k": 2, "v": 1}]})),
    ("positional $ with $elemMatch query", {"_id": 1, "a": [D({"k": 1}), D({"k": 5})]},
     {"$set": {"a.$.k": 0}}, {"query": {"a": {"$elemMatch": {"k": {"$gt": 3}}}}},
     D({"_id": 1, "a": [{"k": 1}, {"k": 0}]})),
    ("positional $ without match BadValue", {"_id": 1, "a": [1]}, {"$set": {"a.$": 2}},
     {"query": {"_id": 1}}, Err(2)),
    ("$[] all elements", {"_id": 1, "a": [1, 2, 3]}, {"$inc": {"a.$[]": 10}}, {},
     S(_id=1, a=[11, 12, 13])),
    ("$[] nested field", {"_id": 1, "a": [D({"x": 1}), D({"x": 2})]},
     {"$set": {"a.$[].x": 0}}, {}, D({"_id": 1, "a": [{"x": 0}, {"x": 0}]})),
    ("$[] on missing BadValue", {"_id": 1}, {"$set": {"a.$[]": 1}}, {}, Err(2)),
    ("$[ident] with arrayFilters", {"_id": 1, "a": [1, 5, 9]}, {"$set": {"a.$[e]": 0}},
     {"array_filters": [{"e": {"$gte": 5}}]}, S(_id=1, a=[1, 0, 0])),
    ("$[ident] subfield filter", {"_id": 1, "a": [D({"q": 1, "n": 1}), D({"q": 2, "n": 1})]},
     {"$inc": {"a.$[x].n": Int64(1)}}, {"array_filters": [{"x.q": 2}]},
     D({"_id": 1, "a": [{"q": 1, "n": 1}, {"q": 2, "n": Int64(2)}]})),
    ("$[ident] missing filter BadValue", {"_id": 1, "a": [1]}, {"$set": {"a.$[e]": 0}}, {},
     Err(2)),
    ("unused array filter FailedToParse", {"_id": 1, "a": [1]}, {"$set": {"a.0": 0}},
     {"array_filters": [{"e": 1}]}, Err(9)),
    ("unknown operator FailedToParse", {"_id": 1}, {"$foo": {"a": 1}}, {}, Err(9)),
    ("mixed operator and field FailedToParse", {"_id": 1}, D({"$set": {"a": 1}, "b": 2}), {},
     Err(9)),
    ("operator arg not a doc FailedToParse", {"_id": 1}, {"$set": 5}, {}, Err(9)),
    ("conflicting paths", {"_id": 1}, D({"$set": {"a": 1}, "$inc": {"a": 1}}), {}, Err(40)),
    ("conflicting prefix paths", {"_id": 1}, {"$set": D({"a": 1, "a.b": 1})}, {}, Err(40)),
    ("empty path EmptyFieldName", {"_id": 1}, {"$set": {"": 1}}, {}, Err(56)),
    ("replacement keeps _id first", {"_id": 1, "a": 1}, {"b": 2}, {}, S(_id=1, b=2)),
    ("replacement with same _id", {"_id": 1, "a": 1}, D({"b": 2, "_id": 1}), {},
     S(_id=1, b=2)),
    ("replacement changing _id ImmutableField", {"_id": 1}, {"_id": 2, "b": 2}, {}, Err(66)),
    ("replacement keeps value types", {"_id": 1}, {"n": Int64(3), "d": Decimal128("1")}, {},
     S(_id=1, n=Int64(3), d=Decimal128("1"))),
    ("empty $set is a no-op", {"_id": 1, "a": 1}, {"$set": {}}, {}, S(_id=1, a=1)),
    ("$min Decimal128 replaces int", {"_id": 1, "a": 1}, {"$min": {"a": Decimal128("0.5")}},
     {}, S(_id=1, a=Decimal128("0.5"))),
    ("$set through array with field name PathNotViable", {"_id": 1, "a": [D({"b": 1})]},
     {"$set": {"a.b": 2}}, {}, Err(28)),
    ("$unset _id ImmutableField", {"_id": 1}, {"$unset": {"_id": 1}}, {}, Err(66)),
    ("$inc _id ImmutableField", {"_id": 1}, {"$inc": {"_id": 1}}, {}, Err(66)),
    ("$push $each not array", {"_id": 1, "a": []}, {"$push": {"a": {"$each": 1}}}, {},
     Err(2)),
    ("$addToSet $each not array", {"_id": 1, "a": []}, {"$addToSet": {"a": {"$each": 1}}}, {},
     Err(2)),
    ("$rename through array BadValue", {"_id": 1, "a": [D({"b": 1})]},
     {"$rename": {"a.0.b": "c"}}, {}, Err(2)),
    ("$pull nested operator condition", {"_id": 1, "a": [D({"x": 1}), D({"x": 5})]},
     {"$pull": {"a": {"x": {"$gt": 2}}}}, {}, D({"_id": 1, "a": [{"x": 1}]})),
    ("$pull non-array BadValue", {"_id": 1, "a": 1}, {"$pull": {"a": 1}}, {}, Err(2)),
    ("positional $ ignores unrelated query fields",
     {"_id": 1, "a": [D({"b": 1}), D({"b": 2})]}, {"$set": {"a.$.b": 9}},
     {"query": {"_id": 1, "a.b": 2}}, D({"_id": 1, "a": [{"b": 1}, {"b": 9}]})),
    ("$[] combined with $[ident]", {"_id": 1, "a": [D({"x": [1, 2]}), D({"x": [3]})]},
     {"$set": {"a.$[].x.$[v]": 0}}, {"array_filters": [{"v": {"$gt": 1}}]},
     D({"_id": 1, "a": [{"x": [1, 0]}, {"x": [0]}]})),
    ("$[ident] Int64 inc preserves others", {"_id": 1, "a": [Int64(1), 2]},
     {"$inc": {"a.$[e]": 1}}, {"array_filters": [{"e": {"$type": "long"}}]},
     S(_id=1, a=[Int64(2), 2])),
    ("replacement with $ field DollarPrefixedFieldName", {"_id": 1}, D({"a": 1, "$set": 1}),
     {}, Err(52)),
    ("pipeline update unsupported", {"_id": 1}, [{"$set": {"a": 1}}], {}, Err(9)),
    ("$setOnInsert + $set on insert, fields ordered", S(_id=1, q=1),
     D({"$setOnInsert": {"c": 1}, "$set": {"b": 2}}), {"is_insert": True},
     S(_id=1, q=1, b=2, c=1)),
    ("$pull bad condition raises on missing field", {"_id": 1},
     {"$pull": {"a": {"$bogus": 1}}}, {}, Err(2)),
    ("bad arrayFilter raises", {"_id": 1, "a": [1]}, {"$set": {"a.$[e]": 0}},
     {"array_filters": [{"e": {"$in": 3}}]}, Err(2)),
    ("multiple operators", {"_id": 1, "a": 1, "l": []},
     D({"$inc": {"a": 1}, "$push": {"l": "x"}, "$set": {"s": True}}), {},
     S(_id=1, a=2, l=["x"], s=True)),
]

# ---------------------------------------------------------------------------------------
# validate_update(update, array_filters) -> None (parse errors without a document)
# ---------------------------------------------------------------------------------------

VALIDATE = [
    ("valid update", {"$set": {"a": 1}, "$inc": {"n": 1}}, None, None),
    ("valid replacement", {"a": 1}, None, None),
    ("unknown modifier", {"$foo": {"a": 1}}, None, Err(9)),
    ("$inc non-numeric", {"$inc": {"a": "x"}}, None, Err(14)),
    ("$pop bad arg", {"$pop": {"a": 0}}, None, Err(9)),
    ("$push bad $sort", {"$push": {"a": D({"$each": [], "$sort": 3})}}, None, Err(2)),
    ("$currentDate bad", {"$currentDate": {"a": 1}}, None, Err(2)),
    ("missing array filter", {"$set": {"a.$[x]": 1}}, None, Err(2)),
    ("unused array filter", {"$set": {"a": 1}}, [{"x": 1}], Err(9)),
    ("array filters with replacement", {"a": 1}, [{"x": 1}], Err(9)),
    ("conflict", {"$set": {"a.b": 1}, "$unset": {"a": 1}}, None, Err(40)),
]

# ---------------------------------------------------------------------------------------
# upsert_seed(query) -> doc
# ---------------------------------------------------------------------------------------

SEED = [
    ("seed equality fields", D({"a": 1, "b": {"$gt": 1}}), S(a=1)),
    ("seed $eq", {"a": {"$eq": Int64(2)}}, S(a=Int64(2))),
    ("seed dotted path", D({"a.b": 1, "a.c": 2}), D({"a": {"b": 1, "c": 2}})),
    ("seed $and", {"$and": [{"a": 1}, {"b": 2}]}, S(a=1, b=2)),
    ("seed ignores $or and regex", D({"$or": [{"a": 1}], "r": re.compile("x")}), S()),
    ("seed _id first", D({"a": 1, "_id": 7}), S(_id=7, a=1)),
    ("seed conflict NotSingleValueField", {"$and": [{"a": 1}, {"a": 2}]}, Err(54)),
]

# ---------------------------------------------------------------------------------------
# project(doc, projection) -> doc
# ---------------------------------------------------------------------------------------

PDOC = D({"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [D({"f": 1, "g": 2}), 5],
          "arr": [1, 2, 3, 4]})
PROJECT = [
    ("empty projection", PDOC, {}, PDOC),
    ("inclusion keeps _id", PDOC, {"a": 1}, S(_id=1, a=1)),
    ("inclusion without _id", PDOC, D({"a": 1, "_id": 0}), S(a=1)),
    ("inclusion dotted", PDOC, {"b.c": 1}, D({"_id": 1, "b": {"c": 2}})),
    ("inclusion dotted through array", PDOC, {"e.f": 1}, D({"_id": 1, "e": [{"f": 1}]})),
    ("inclusion keeps document order", PDOC, D({"b": 1, "a": True}),
     D({"_id": 1, "a": 1, "b": {"c": 2, "d": 3}})),
    ("exclusion", PDOC, D({"b": 0, "e": 0, "arr": 0}), S(_id=1, a=1)),
    ("exclusion dotted", PDOC, D({"b.d": 0, "e": 0, "arr": 0, "_id": 0}),
     D({"a": 1, "b": {"c": 2}})),
    ("only _id:0", S(_id=1, a=1), {"_id": 0}, S(a=1)),
    ("mixed inclusion/exclusion error", PDOC, D({"a": 1, "b": 0}), Err(31254)),
    ("$slice projection keeps other fields", PDOC, {"arr": {"$slice": 2}},
     D({"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [{"f": 1, "g": 2}, 5], "arr": [1, 2]})),
    ("$slice negative", S(_id=1, arr=[1, 2, 3]), {"arr": {"$slice": -1}}, S(_id=1, arr=[3])),
    ("$slice [skip, limit]", S(_id=1, arr=[1, 2, 3]), {"arr": {"$slice": [1, 1]}},
     S(_id=1, arr=[2])),
    ("$elemMatch projection", S(_id=1, a=1, e=[D({"f": 1}), D({"f": 2})]),
     {"e": {"$elemMatch": {"f": 2}}}, D({"_id": 1, "e": [{"f": 2}]})),
    ("computed _id stays first", S(_id=1, k="a"), D({"k": 1, "_id": "$k"}), S(_id="a", k="a")),
    ("only _id:1", PDOC, {"_id": 1}, S(_id=1)),
    ("positional projection unsupported", PDOC, {"e.$": 1}, Err(2)),
    ("computed field path", PDOC, D({"x": "$b.c", "_id": 0}), S(x=2)),
]

# ---------------------------------------------------------------------------------------
# sort_docs(docs, spec) -> [ids]
# ---------------------------------------------------------------------------------------

SORT = [
    ("sort asc numbers mixed types", [S(_id=1, a=2.5), S(_id=2, a=Int64(1)), S(_id=3, a=2)],
     {"a": 1}, [2, 3, 1]),
    ("sort desc", [S(_id=1, a=1), S(_id=2, a=3), S(_id=3, a=2)], {"a": -1}, [2, 3, 1]),
    ("sort stable on ties", [S(_id=1, a=1), S(_id=2, a=0), S(_id=3, a=1)], {"a": 1},
     [2, 1, 3]),
    ("sort multi-key", [S(_id=1, a=1, b=2), S(_id=2, a=1, b=1), S(_id=3, a=0, b=9)],
     D({"a": 1, "b": -1}), [3, 1, 2]),
    ("sort missing and null before numbers", [S(_id=1, a=1), S(_id=2), S(_id=3, a=None)],
     {"a": 1}, [2, 3, 1]),
    ("sort across types BSON order", [S(_id=1, a="s"), S(_id=2, a=5), S(_id=3, a=OID1),
                                      S(_id=4, a=D({"x": 1}))], {"a": 1}, [2, 1, 4, 3]),
    ("sort array asc uses min element", [S(_id=1, a=[5, 0]), S(_id=2, a=[3])], {"a": 1},
     [1, 2]),
    ("sort array desc uses max element", [S(_id=1, a=[5, 0]), S(_id=2, a=[3])], {"a": -1},
     [1, 2]),
    ("sort dotted", [S(_id=1, a=S(b=2)), S(_id=2, a=S(b=1))], {"a.b": 1}, [2, 1]),
    ("sort $natural -1 reverses", [S(_id=1), S(_id=3), S(_id=2)], {"$natural": -1},
     [2, 3, 1]),
    ("sort empty array before null", [S(_id=1, a=None), S(_id=2, a=[])], {"a": 1}, [2, 1]),
    ("sort bad direction", [S(_id=1)], {"a": 2}, Err(15975)),
]

# ---------------------------------------------------------------------------------------
# compare(a, b)
# ---------------------------------------------------------------------------------------

COMPARE = [
    ("MinKey < null", MinKey(), None, -1),
    ("null < number", None, -5, -1),
    ("number < string", 10 ** 6, "", -1),
    ("string < object", "z", S(), -1),
    ("object < array", S(a=1), [], -1),
    ("array < binData", [1], Binary(b"\x00"), -1),
    ("binData < ObjectId", Binary(b"\xff" * 20), OID1, -1),
    ("ObjectId < bool", OID2, False, -1),
    ("bool < date", True, DT1, -1),
    ("date < timestamp", DT2, Timestamp(0, 1), -1),
    ("timestamp < regex", Timestamp(2 ** 31, 1), Regex("a"), -1),
    ("regex < MaxKey", Regex("z"), MaxKey(), -1),
    ("int == float", 1, 1.0, 0),
    ("Int64 == Decimal128", Int64(7), Decimal128("7.00"), 0),
    ("float < Decimal128", 1.5, Decimal128("1.6"), -1),
    ("NaN < all numbers", float("nan"), -float("inf"), -1),
    ("false < true", False, True, -1),
    ("string byte order", "B", "a", -1),
    ("array elementwise", [1, 2], [1, 3], -1),
    ("shorter array first", [1], [1, 0], -1),
    ("object by field name", S(a=1), S(b=0), -1),
    ("object by value type first", S(a="x"), S(a=1), 1),
    ("timestamps", Timestamp(1, 2), Timestamp(1, 1), 1),
    ("ObjectIds", OID1, OID2, -1),
    ("naive and aware datetimes", DT1, DT1.replace(tzinfo=datetime.timezone.utc), 0),
    ("Decimal128 NaN == float NaN", Decimal128("NaN"), float("nan"), 0),
    ("regex flags", Regex("a", "i"), Regex("a", "m"), -1),
    ("Code after regex", Code("x"), Regex("x"), 1),
]

# ---------------------------------------------------------------------------------------
# aggregate(docs, pipeline) -> docs
# ---------------------------------------------------------------------------------------

ADOCS = [D({"_id": 1, "k": "a", "n": 1, "t": ["x", "y"]}),
         D({"_id": 2, "k": "b", "n": 2.5, "t": []}),
         D({"_id": 3, "k": "a", "n": Int64(3)}),
         D({"_id": 4, "k": "b", "n": 4, "sub": {"v": 1}})]

AGG = [
    ("count_documents shape", ADOCS,
     [{"$match": {"k": "a"}}, {"$group": D({"_id": 1, "n": {"$sum": 1}})}],
     [S(_id=1, n=2)]),
    ("count_documents with skip/limit", ADOCS,
     [{"$match": {}}, {"$skip": Int64(1)}, {"$limit": Int64(2)},
      {"$group": D({"_id": 1, "n": {"$sum": 1}})}], [S(_id=1, n=2)]),
    ("count_documents on empty gives no doc", ADOCS,
     [{"$match": {"k": "zzz"}}, {"$group": D({"_id": 1, "n": {"$sum": 1}})}], []),
    ("$group _id first and $sum types", ADOCS,
     [{"$group": D({"s": {"$sum": "$n"}, "_id": "$k"})}, {"$sort": {"_id": 1}}],
     [S(_id="a", s=Int64(4)), S(_id="b", s=6.5)]),
    ("$sum int32 stays int32", [S(_id=1, n=1), S(_id=2, n=2)],
     [{"$group": D({"_id": None, "s": {"$sum": "$n"}})}], [S(_id=None, s=3)]),
    ("$sum int32 overflow -> Int64", [S(_id=1, n=I32MAX), S(_id=2, n=1)],
     [{"$group": D({"_id": None, "s": {"$sum": "$n"}})}], [S(_id=None, s=Int64(2 ** 31))]),
    ("$sum Decimal128", [S(_id=1, n=Decimal128("1.5")), S(_id=2, n=1)],
     [{"$group": D({"_id": None, "s": {"$sum": "$n"}})}],
     [S(_id=None, s=Decimal128("2.5"))]),
    ("$avg $min $max", ADOCS,
     [{"$group": D({"_id": None, "avg": {"$avg": "$n"}, "mn": {"$min": "$n"},
                    "mx": {"$max": "$n"}})}],
     [S(_id=None, avg=2.625, mn=1, mx=4)]),
    ("$push $addToSet $first $last", ADOCS,
     [{"$group": D({"_id": "$k", "p": {"$push": "$_id"}, "s": {"$addToSet": "$k"},
                    "f": {"$first": "$_id"}, "l": {"$last": "$_id"}})}],
     [S(_id="a", p=[1, 3], s=["a"], f=1, l=3), S(_id="b", p=[2, 4], s=["b"], f=2, l=4)]),
    ("$group $count accumulator", ADOCS, [{"$group": D({"_id": None, "c": {"$count": {}}})}],
     [S(_id=None, c=4)]),
    ("$group _id document", ADOCS,
     [{"$match": {"_id": 1}}, {"$group": D({"_id": {"kk": "$k", "c": 1}})}],
     [S(_id=S(kk="a", c=1))]),
    ("$group numeric keys by value", [S(_id=1, k=1), S(_id=2, k=1.0), S(_id=3, k=Int64(1))],
     [{"$group": D({"_id": "$k", "c": {"$sum": 1}})}], [S(_id=1, c=3)]),
    ("$group missing _id error", ADOCS, [{"$group": {"c": {"$sum": 1}}}], Err(15955)),
    ("$sort $skip $limit", ADOCS,
     [{"$sort": {"_id": -1}}, {"$skip": 1}, {"$limit": 2}, {"$project": {"_id": 1}}],
     [S(_id=3), S(_id=2)]),
    ("$project expressions", ADOCS,
     [{"$match": {"_id": 4}},
      {"$project": D({"_id": 0, "k": 1, "v": "$sub.v", "lit": {"$literal": "$x"},
                      "sum": {"$add": ["$n", 1]}})}],
     [S(k="b", v=1, lit="$x", sum=5)]),
    ("$project exclusion", ADOCS, [{"$match": {"_id": 1}}, {"$project": D({"t": 0, "n": 0})}],
     [S(_id=1, k="a")]),
    ("$count", ADOCS, [{"$match": {"k": "b"}}, {"$count": "total"}], [S(total=2)]),
    ("$unwind string", ADOCS, [{"$match": {"_id": 1}}, {"$unwind": "$t"},
                               {"$project": {"t": 1}}], [S(_id=1, t="x"), S(_id=1, t="y")]),
    ("$unwind drops empty and missing", ADOCS, [{"$unwind": "$t"}, {"$count": "c"}],
     [S(c=2)]),
    ("$unwind preserveNullAndEmptyArrays", ADOCS,
     [{"$unwind": {"path": "$t", "preserveNullAndEmptyArrays": True}},
      {"$project": {"t": 1}}],
     [S(_id=1, t="x"), S(_id=1, t="y"), S(_id=2), S(_id=3), S(_id=4)]),
    ("$addFields appends and keeps position", ADOCS,
     [{"$match": {"_id": 3}}, {"$addFields": D({"k": "z", "new": {"$multiply": ["$n", 2]}})},
      {"$project": D({"t": 0})}],
     [S(_id=3, k="z", n=Int64(3), new=Int64(6))]),
    ("$set stage alias", [S(_id=1)], [{"$set": {"a.b": 1}}], [D({"_id": 1, "a": {"b": 1}})]),
    ("$unset stage", ADOCS, [{"$match": {"_id": 4}}, {"$unset": ["n", "sub", "t"]}],
     [S(_id=4, k="b")]),
    ("$replaceRoot", ADOCS, [{"$match": {"_id": 4}}, {"$replaceRoot": {"newRoot": "$sub"}}],
     [S(v=1)]),
    ("$replaceRoot non-doc error", ADOCS, [{"$replaceRoot": {"newRoot": "$k"}}], Err(40228)),
    ("$match bad filter raises on no docs", [], [{"$match": {"$bogus": 1}}], Err(2)),
    ("empty $project error", ADOCS, [{"$project": {}}], Err(51272)),
    ("unknown stage error", ADOCS, [{"$bogus": {}}], Err(40324)),
    ("$limit 0 error", ADOCS, [{"$limit": 0}], Err(15958)),
    ("$unwind includeArrayIndex is Int64", [S(_id=1, t=[5, 6])],
     [{"$unwind": {"path": "$t", "includeArrayIndex": "i"}}],
     [S(_id=1, t=5, i=Int64(0)), S(_id=1, t=6, i=Int64(1))]),
    ("$avg of nothing is null", ADOCS, [{"$group": D({"_id": None, "a": {"$avg": "$zz"}})}],
     [S(_id=None, a=None)]),
    ("$group missing key groups as null", ADOCS,
     [{"$group": D({"_id": "$sub.v", "c": {"$sum": 1}})}, {"$sort": {"_id": 1}}],
     [S(_id=None, c=3), S(_id=1, c=1)]),
    ("$project $concat $toUpper", ADOCS,
     [{"$match": {"_id": 1}}, {"$project": {"s": {"$concat": [{"$toUpper": "$k"}, "-",
                                                             "$k"]}}}],
     [S(_id=1, s="A-a")]),
    ("$match with $in then $sort multi", ADOCS,
     [{"$match": {"_id": {"$in": [1, 2, 3]}}}, {"$sort": D({"k": -1, "_id": -1})},
      {"$project": {"_id": 1}}], [S(_id=2), S(_id=3), S(_id=1)]),
    ("$slice and $concatArrays expressions", [S(_id=1, a=[1, 2, 3])],
     [{"$project": D({"_id": 0, "s": {"$slice": ["$a", -2]},
                      "c": {"$concatArrays": ["$a", [4]]}})}],
     [S(s=[2, 3], c=[1, 2, 3, 4])]),
    ("unknown expression error", ADOCS, [{"$project": {"x": {"$bogus": 1}}}], Err(168)),
    ("$cond and $eq expression", ADOCS,
     [{"$project": D({"_id": 1, "big": {"$cond": [{"$gt": ["$n", 2]}, "y", "n"]}})},
      {"$match": {"big": "y"}}], [S(_id=2, big="y"), S(_id=3, big="y"), S(_id=4, big="y")]),
]

# ---------------------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------------------

_results = []


def trepr(v):
    """repr that shows numeric types (Int64's repr looks like an int's)."""
    if isinstance(v, dict):
        return "{" + ", ".join("%r: %s" % (k, trepr(x)) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(trepr(x) for x in v) + "]"
    if isinstance(v, (Int64, Decimal128)):
        return "%s(%s)" % (type(v).__name__, v)
    if isinstance(v, float):
        return "float(%r)" % v
    return repr(v)


def report(ok, desc, detail=None):
    _results.append(ok)
    n = len(_results)
    print("%s %d - %s" % ("ok" if ok else "not ok", n, desc))
    if not ok and detail:
        for line in str(detail).splitlines():
            print("#   " + line)


def run_case(desc, fn, args, expected):
    """Call fn(*args); check the result (or EngineError code) and that args are intact."""
    before = copy.deepcopy(args)
    try:
        got = fn(*args)
    except EngineError as e:
        if isinstance(expected, Err) and e.code == expected.code:
            if not (isinstance(e.message, str) and e.code_name):
                return report(False, desc, "error lacks message/code_name: %r" % e)
            return report(True, desc)
        return report(False, desc, "expected %r, got %r" % (expected, e))
    except Exception:
        return report(False, desc, traceback.format_exc())
    if not same(args, before) or not all(type(a) is type(b) for a, b in zip(args, before)):
        return report(False, desc, "input was mutated: %r -> %r" % (before, args))
    if isinstance(expected, Err):
        return report(False, desc, "expected %r, got %r" % (expected, got))
    if isinstance(expected, Check):
        return report(bool(expected.fn(got)), desc, "check %s failed on %r"
                      % (expected.what, got))
    return report(same(got, expected), desc, "expected %s\ngot      %s"
                  % (trepr(expected), trepr(got)))


def main():
    for desc, doc, flt, exp in MATCH:
        run_case("match: " + desc, engine.match, (D(doc), D(flt)), exp)
    for desc, doc, upd, kw, exp in UPDATE:
        run_case("update: " + desc,
                 lambda d, u, kw=kw: engine.apply_update(d, u, **kw), (D(doc), D(upd)), exp)
    for desc, upd, af, exp in VALIDATE:
        run_case("validate_update: " + desc, engine.validate_update, (D(upd), D(af)), exp)
    for desc, q, exp in SEED:
        run_case("upsert_seed: " + desc, engine.upsert_seed, (D(q),), exp)
    for desc, doc, proj, exp in PROJECT:
        run_case("project: " + desc, engine.project, (doc, D(proj)), exp)
    for desc, docs, spec, exp in SORT:
        run_case("sort: " + desc,
                 lambda ds, s: [d["_id"] for d in engine.sort_docs(ds, s)], (docs, D(spec)),
                 exp)
    for desc, a, b, exp in COMPARE:
        run_case("compare: " + desc, engine.compare, (a, b), exp)
        run_case("compare (reversed): " + desc, engine.compare, (b, a), -exp)
    for desc, docs, pipeline, exp in AGG:
        run_case("aggregate: " + desc, engine.aggregate, (docs, D(pipeline)), exp)
    extra_checks()
    print("1..%d" % len(_results))
    return 0 if all(_results) else 1


def extra_checks():
    """Cases that do not fit the tables."""
    # count_documents: n is int32, and Int64 once it no longer fits.
    docs = [S(_id=i) for i in range(3)]
    out = engine.aggregate(docs, [D({"$match": {}}), D({"$group": {"_id": 1,
                                                                   "n": {"$sum": 1}}})])
    report(type(out[0]["n"]) is int and out[0]["n"] == 3 and list(out[0]) == ["_id", "n"],
           "aggregate: count_documents n is int32", out)
    acc = engine._Accumulator("$sum")
    for _ in range(2):
        acc.add(2 ** 30)
    acc.add(2 ** 30)
    r = acc.result()
    report(type(r) is Int64 and r == 3 * 2 ** 30, "aggregate: $sum count beyond int32 is Int64",
           repr(r))
    # Error object shape.
    try:
        engine.apply_update(S(_id=1, a="s"), D({"$inc": {"a": 1}}))
        report(False, "EngineError fields for $inc on a string")
    except EngineError as e:
        report(e.code == 14 and e.code_name == "TypeMismatch" and "a" in e.message,
               "EngineError fields for $inc on a string", repr(e))
    try:
        engine.apply_update(S(_id=1), D({"$set": {"a": 1}, "$unset": {"a": 1}}))
        report(False, "EngineError code_name ConflictingUpdateOperators")
    except EngineError as e:
        report(e.code_name == "ConflictingUpdateOperators",
               "EngineError code_name ConflictingUpdateOperators", repr(e))
    # The update value must be copied, not aliased into the result.
    val = [1, 2]
    upd = D({"$set": {"a": val}})
    res = engine.apply_update(S(_id=1), upd)
    res["a"].append(3)
    report(val == [1, 2], "update: result does not alias the update's values", val)
    # Result is a SON.
    report(isinstance(engine.apply_update({"_id": 1}, {"$set": {"x": 1}}), SON),
           "update: result is a SON")
    # sort_docs returns a new list and does not reorder the input.
    inp = [S(_id=2), S(_id=1)]
    out = engine.sort_docs(inp, {"_id": 1})
    report(out is not inp and [d["_id"] for d in inp] == [2, 1], "sort: input list untouched")
    # Positional + upsert: '$' on insert is an error.
    try:
        engine.apply_update(S(a=1), D({"$set": {"a.$": 1}}), is_insert=True,
                            query={"a": 1})
        report(False, "update: positional $ on insert is BadValue")
    except EngineError as e:
        report(e.code == 2, "update: positional $ on insert is BadValue", repr(e))
    # Results encode to BSON and decode back with the same types (as the server uses them).
    import bson
    from bson.codec_options import CodecOptions
    opts = CodecOptions(document_class=SON)
    raw = bson.BSON.encode(S(_id=1, i=I32MAX, l=Int64(5), d=Decimal128("1.5"), f=1.0,
                             a=[1, S(x=2)], p=[]))
    doc = raw.decode(opts)
    res = engine.apply_update(doc, D({"$inc": {"i": 1, "l": 1, "d": 1, "f": 1, "a.1.x": 1},
                                      "$push": {"p": 3}}))
    back = bson.BSON.encode(res).decode(opts)
    report(same(back, S(_id=1, i=Int64(2 ** 31), l=Int64(6), d=Decimal128("2.5"), f=2.0,
                        a=[1, S(x=3)], p=[3])),
           "update: result round-trips through BSON with types kept", trepr(back))
    agg = engine.aggregate([doc], [D({"$group": {"_id": None, "n": {"$sum": 1}}})])
    back = bson.BSON.encode(agg[0]).decode(opts)
    report(same(back, S(_id=None, n=1)), "aggregate: result round-trips through BSON",
           trepr(back))
    # Upsert flow: seed then update, _id stays first.
    seed = engine.upsert_seed(D({"x": 1, "_id": 5}))
    res = engine.apply_update(seed, D({"$set": {"y": 2}, "$setOnInsert": {"z": 3}}),
                              is_insert=True)
    report(same(res, S(_id=5, x=1, y=2, z=3)), "upsert: seed + update", res)


if __name__ == "__main__":
    sys.exit(main())
