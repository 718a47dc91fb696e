/*
 * codec_types.c - the typed BSON values Lua cannot express natively:
 * ObjectId, Date, Timestamp, Decimal128, Binary (UUID is Binary subtype 4),
 * Regex, Code, MinKey, MaxKey, the null sentinel and the forced widths
 * Int32, Int64, Double (Int64 is also how LuaJIT receives int64 values it
 * cannot hold exactly). This file owns their layout (codec_val_t), their
 * metatables and metamethods (tostring, ==, <, <=, #), the singletons and
 * the ordered-document metatable; codec_values.c has the constructors and
 * methods. The typed values are immutable; an ordered document is a flat
 * table {k1, v1, k2, v2, ...} whose metamethods read and write its fields.
 */
#define _DEFAULT_SOURCE 1
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"

const char codec_tag_key = 0;
const char codec_array_mt_key = 0;
const char codec_ordered_mt_key = 0;
const char codec_null_key = 0;
static const char mt_keys[CODEC_KIND_COUNT];
static const char minkey_key = 0;
static const char maxkey_key = 0;

static const struct {
   const char *mt;   /* metatable name */
   const char *type; /* xdbtx.type() name */
   const char *a;    /* for messages: "an ObjectId" */
} kinds[CODEC_KIND_COUNT] = {
   [CODEC_OID] = {"xdbtx.ObjectId", "objectid", "an ObjectId"},
   [CODEC_DATE] = {"xdbtx.Date", "date", "a Date"},
   [CODEC_TIMESTAMP] = {"xdbtx.Timestamp", "timestamp", "a Timestamp"},
   [CODEC_DECIMAL128] = {"xdbtx.Decimal128", "decimal128", "a Decimal128"},
   [CODEC_BINARY] = {"xdbtx.Binary", "binary", "a Binary"},
   [CODEC_REGEX] = {"xdbtx.Regex", "regex", "a Regex"},
   [CODEC_CODE] = {"xdbtx.Code", "code", "a Code"},
   [CODEC_MINKEY] = {"xdbtx.MinKey", "minkey", "xdbtx.minkey"},
   [CODEC_MAXKEY] = {"xdbtx.MaxKey", "maxkey", "xdbtx.maxkey"},
   [CODEC_NULL] = {"xdbtx.Null", "null", "xdbtx.null"},
   [CODEC_INT32] = {"xdbtx.Int32", "int32", "an Int32"},
   [CODEC_INT64] = {"xdbtx.Int64", "int64", "an Int64"},
   [CODEC_DOUBLE] = {"xdbtx.Double", "double", "a Double"},
};

const char *
codec_kind_name (int kind)
{
   return (kind > 0 && kind < CODEC_KIND_COUNT) ? kinds[kind].type : "userdata";
}

const char *
codec_kind_mt (int kind)
{
   return (kind > 0 && kind < CODEC_KIND_COUNT) ? kinds[kind].mt : "userdata";
}

codec_val_t *
codec_val_push (lua_State *L, int kind, size_t extra)
{
   codec_val_t *v =
      (codec_val_t *) lua_newuserdatauv (L, sizeof (codec_val_t) + extra, 0);

   memset (v, 0, sizeof *v);
   v->kind = kind;
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &mt_keys[kind]);
   lua_setmetatable (L, -2);
   return v;
}

codec_val_t *
codec_val_test (lua_State *L, int idx)
{
   codec_val_t *v;
   int kind;

   if (lua_type (L, idx) != LUA_TUSERDATA || !lua_getmetatable (L, idx)) {
      return NULL;
   }
   xdbtx_rawgetp (L, -1, &codec_tag_key);
   kind = (int) lua_tointeger (L, -1);
   lua_pop (L, 2);
   if (kind <= 0) {
      return NULL;
   }
   v = (codec_val_t *) lua_touserdata (L, idx);
   return v->kind == kind ? v : NULL;
}

void
codec_push_singleton (lua_State *L, int kind)
{
   const void *key = kind == CODEC_NULL     ? (const void *) &codec_null_key
                     : kind == CODEC_MINKEY ? (const void *) &minkey_key
                                            : (const void *) &maxkey_key;
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, key);
}

codec_val_t *
codec_check_val (lua_State *L, int idx, int kind, const char *mname)
{
   codec_val_t *v = codec_val_test (L, idx);

   if (!v || v->kind != kind) {
      codec_check_self_fail (L, idx, mname, kinds[kind].a);
   }
   return v;
}

/* Push an int64 as a Lua value: an integer (5.4), or under LuaJIT a number
 * when exact (|v| <= 2^53) and an xdbtx.Int64 beyond. */
void
codec_push_int64 (lua_State *L, int64_t v)
{
#ifdef XDBTX_HAS_INTEGERS
   lua_pushinteger (L, (lua_Integer) v);
#else
   if (v >= -(INT64_C (1) << 53) && v <= (INT64_C (1) << 53)) {
      lua_pushnumber (L, (lua_Number) v);
   } else {
      codec_val_push (L, CODEC_INT64, 0)->u.i64 = v;
   }
#endif
}


bool
codec_is_uuid (const codec_val_t *v)
{
   return v->len == 16 && (v->subtype == BSON_SUBTYPE_UUID ||
                           v->subtype == BSON_SUBTYPE_UUID_DEPRECATED);
}

void
codec_uuid_text (const codec_val_t *v, char out[37])
{
   static const char hx[] = "0123456789abcdef";
   const uint8_t *b = (const uint8_t *) v->data;
   int i, j = 0;

   for (i = 0; i < 16; i++) {
      if (i == 4 || i == 6 || i == 8 || i == 10) {
         out[j++] = '-';
      }
      out[j++] = hx[b[i] >> 4];
      out[j++] = hx[b[i] & 15];
   }
   out[j] = 0;
}

/* ---- metamethods ------------------------------------------------------ */

static void
add_base64 (luaL_Buffer *b, const uint8_t *p, size_t n)
{
   static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
   size_t i;

   for (i = 0; i + 2 < n; i += 3) {
      uint32_t x = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 | p[i + 2];
      char q[4] = {t[x >> 18], t[(x >> 12) & 63], t[(x >> 6) & 63], t[x & 63]};
      luaL_addlstring (b, q, 4);
   }
   if (i < n) {
      uint32_t x = (uint32_t) p[i] << 16 | (i + 1 < n ? (uint32_t) p[i + 1] << 8 : 0);
      char q[4] = {t[x >> 18], t[(x >> 12) & 63], i + 1 < n ? t[(x >> 6) & 63] : '=', '='};
      luaL_addlstring (b, q, 4);
   }
}

static void
add_iso_date (luaL_Buffer *b, int64_t ms)
{
   char buf[64];
   int64_t secs = ms / 1000, rem = ms % 1000;
   time_t tt;
   struct tm tm;

   if (rem < 0) {
      rem += 1000;
      secs -= 1;
   }
   tt = (time_t) secs;
   if (gmtime_r (&tt, &tm) && tm.tm_year + 1900 >= 0 && tm.tm_year + 1900 <= 9999) {
      snprintf (buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, (int) rem);
   } else {
      snprintf (buf, sizeof buf, "%" PRId64, ms);
   }
   luaL_addstring (b, buf);
}

/* tostring(v): ObjectId("hex"), Date("1970-01-01T00:00:00.000Z"),
 * Timestamp(t, i), Decimal128("1.5"), Binary(subtype, "base64"),
 * UUID("8-4-4-4-12"), /pattern/flags, Code("src"), MinKey, MaxKey, null,
 * the digits of an Int32/Int64, and a Double as "%.17g" (with ".0" when
 * integral). */
static int
mm_tostring (lua_State *L)
{
   codec_val_t *v = codec_val_test (L, 1);
   luaL_Buffer b;
   char buf[64];

   if (!v) {
      return codec_check_self_fail (L, 1, "__tostring", "an xdbtx typed value");
   }
   luaL_buffinit (L, &b);
   switch (v->kind) {
   case CODEC_OID:
      bson_oid_to_string (&v->u.oid, buf);
      luaL_addstring (&b, "ObjectId(\"");
      luaL_addstring (&b, buf);
      luaL_addstring (&b, "\")");
      break;
   case CODEC_DATE:
      luaL_addstring (&b, "Date(\"");
      add_iso_date (&b, v->u.i64);
      luaL_addstring (&b, "\")");
      break;
   case CODEC_TIMESTAMP:
      snprintf (buf, sizeof buf, "Timestamp(%" PRIu32 ", %" PRIu32 ")", v->u.ts.t, v->u.ts.i);
      luaL_addstring (&b, buf);
      break;
   case CODEC_DECIMAL128:
      bson_decimal128_to_string (&v->u.dec, buf);
      luaL_addstring (&b, "Decimal128(\"");
      luaL_addstring (&b, buf);
      luaL_addstring (&b, "\")");
      break;
   case CODEC_BINARY:
      if (codec_is_uuid (v) && v->subtype == BSON_SUBTYPE_UUID) {
         char t[37];
         codec_uuid_text (v, t);
         luaL_addstring (&b, "UUID(\"");
         luaL_addstring (&b, t);
         luaL_addstring (&b, "\")");
      } else {
         snprintf (buf, sizeof buf, "Binary(%d, \"", v->subtype);
         luaL_addstring (&b, buf);
         add_base64 (&b, (const uint8_t *) v->data, v->len);
         luaL_addstring (&b, "\")");
      }
      break;
   case CODEC_REGEX:
      luaL_addchar (&b, '/');
      luaL_addlstring (&b, v->data, v->len);
      luaL_addchar (&b, '/');
      luaL_addlstring (&b, v->data + v->len + 1, v->len2);
      break;
   case CODEC_CODE:
      luaL_addstring (&b, "Code(\"");
      luaL_addlstring (&b, v->data, v->len);
      luaL_addstring (&b, "\")");
      break;
   case CODEC_MINKEY:
      luaL_addstring (&b, "MinKey");
      break;
   case CODEC_MAXKEY:
      luaL_addstring (&b, "MaxKey");
      break;
   case CODEC_NULL:
      luaL_addstring (&b, "null");
      break;
   case CODEC_INT32:
      snprintf (buf, sizeof buf, "%" PRId32, v->u.i32);
      luaL_addstring (&b, buf);
      break;
   case CODEC_INT64:
      snprintf (buf, sizeof buf, "%" PRId64, v->u.i64);
      luaL_addstring (&b, buf);
      break;
   case CODEC_DOUBLE:
      snprintf (buf, sizeof buf, "%.17g", v->u.d);
      if (buf[strspn (buf, "-0123456789")] == '\0') {
         strcat (buf, ".0"); /* 3 -> "3.0": it is a double */
      }
      luaL_addstring (&b, buf);
      break;
   default:
      break;
   }
   luaL_pushresult (&b);
   return 1;
}

/* a == b: same kind and same BSON value (byte-wise for Decimal128). */
static int
mm_eq (lua_State *L)
{
   codec_val_t *a = codec_val_test (L, 1), *b = codec_val_test (L, 2);
   int eq = 0;

   if (a && b && a->kind == b->kind) {
      switch (a->kind) {
      case CODEC_OID:
         eq = bson_oid_equal (&a->u.oid, &b->u.oid);
         break;
      case CODEC_DATE:
      case CODEC_INT64:
         eq = a->u.i64 == b->u.i64;
         break;
      case CODEC_INT32:
         eq = a->u.i32 == b->u.i32;
         break;
      case CODEC_DOUBLE:
         eq = a->u.d == b->u.d;
         break;
      case CODEC_TIMESTAMP:
         eq = a->u.ts.t == b->u.ts.t && a->u.ts.i == b->u.ts.i;
         break;
      case CODEC_DECIMAL128:
         eq = a->u.dec.high == b->u.dec.high && a->u.dec.low == b->u.dec.low;
         break;
      case CODEC_BINARY:
      case CODEC_CODE:
         eq = a->subtype == b->subtype && a->len == b->len &&
              memcmp (a->data, b->data, a->len) == 0;
         break;
      case CODEC_REGEX:
         eq = a->len == b->len && a->len2 == b->len2 &&
              memcmp (a->data, b->data, a->len + a->len2 + 2) == 0;
         break;
      default:
         eq = 1; /* singletons */
         break;
      }
   }
   lua_pushboolean (L, eq);
   return 1;
}

/* Int64 ordering, also against plain numbers: -1, 0, 1 */
static int
cmp_operand (lua_State *L, int idx, int64_t *i, double *d)
{
   codec_val_t *v = codec_val_test (L, idx);

   if (v && (v->kind == CODEC_INT64 || v->kind == CODEC_DATE)) {
      *i = v->u.i64;
      return 1;
   }
   if (v && v->kind == CODEC_INT32) {
      *i = v->u.i32;
      return 1;
   }
#ifdef XDBTX_HAS_INTEGERS
   if (lua_isinteger (L, idx)) {
      *i = (int64_t) lua_tointeger (L, idx);
      return 1;
   }
#endif
   if (lua_type (L, idx) == LUA_TNUMBER) {
      *d = (double) lua_tonumber (L, idx);
      return 2;
   }
   codec_arg_expected (L, idx, "comparison", "a number, an Int32, an Int64 or a Date");
   return 0;
}

static int
compare (lua_State *L)
{
   int64_t ia = 0, ib = 0;
   double da = 0, db = 0;
   int ta = cmp_operand (L, 1, &ia, &da), tb = cmp_operand (L, 2, &ib, &db);

   if (ta == 1 && tb == 1) {
      return ia < ib ? -1 : ia > ib;
   }
   if (ta == 1) {
      /* exact: compare the double against the int64 without rounding it */
      if (db != db) {
         return 2;
      }
      if (db >= 9223372036854775808.0) {
         return -1;
      }
      if (db < -9223372036854775808.0) {
         return 1;
      }
      {
         double fl = floor (db);
         int64_t ib2 = (int64_t) fl;
         if (ia != ib2) {
            return ia < ib2 ? -1 : 1;
         }
         return fl == db ? 0 : -1;
      }
   }
   if (tb == 1) {
      lua_settop (L, 2);
      lua_insert (L, 1);
      return -compare (L);
   }
   if (da != da || db != db) {
      return 2;
   }
   return da < db ? -1 : da > db;
}

static int
mm_lt (lua_State *L)
{
   lua_pushboolean (L, compare (L) == -1);
   return 1;
}

static int
mm_le (lua_State *L)
{
   int c = compare (L);

   lua_pushboolean (L, c == -1 || c == 0);
   return 1;
}

/* #bin -> number of bytes */
static int
mm_len (lua_State *L)
{
   lua_pushinteger (L, (lua_Integer) codec_check_val (L, 1, CODEC_BINARY, "#")->len);
   return 1;
}

/* #ordered -> number of fields */
static int
ordered_len (lua_State *L)
{
   lua_pushinteger (L, (lua_Integer) (lua_rawlen (L, 1) / 2));
   return 1;
}

/* ordered.key -> the value of the first field named key (a linear scan;
 * ordered values are meant for commands and faithful round trips) */
static int
ordered_index (lua_State *L)
{
   size_t i, n = lua_rawlen (L, 1);

   if (lua_type (L, 2) == LUA_TSTRING) {
      for (i = 1; i + 1 <= n; i += 2) {
         lua_rawgeti (L, 1, (lua_Integer) i);
         if (lua_rawequal (L, -1, 2)) {
            lua_rawgeti (L, 1, (lua_Integer) i + 1);
            return 1;
         }
         lua_pop (L, 1);
      }
   }
   lua_pushnil (L);
   return 1;
}

/* ordered.key = v -> v replaces the value of the first field named key, in
 * place, and later fields of that name go (a decoded document may repeat a
 * key), so what is encoded is what ordered.key reads; a new key is appended
 * at the end. ordered.key = nil removes every field named key. Lua calls this
 * for every string key, since the table itself holds only the flat pairs
 * {k1, v1, k2, v2, ...}, which stay a list with no hole so that #ordered and
 * the encoder (lua_rawlen) see every pair. Other keys raise. */
static int
ordered_newindex (lua_State *L)
{
   lua_Integer i, w = 1, n = (lua_Integer) lua_rawlen (L, 1);
   bool keep = !lua_isnil (L, 3);
   char buf[64];

   if (lua_type (L, 2) != LUA_TSTRING) {
      return codec_raise (L, "encode", "xdbtx.ordered: a field name must be a string, got %s",
                          codec_describe (L, 2, buf, sizeof buf));
   }
   for (i = 1; i + 1 <= n; i += 2) {
      lua_rawgeti (L, 1, i);
      if (lua_rawequal (L, -1, 2)) {
         lua_pop (L, 1);
         if (keep) { /* the first one: set in place */
            lua_pushvalue (L, 3);
            lua_rawseti (L, 1, w + 1);
            if (w != i) {
               lua_pushvalue (L, 2);
               lua_rawseti (L, 1, w);
            }
            keep = false;
            w += 2;
         }
         continue;
      }
      if (w != i) { /* close the gap a removed pair left */
         lua_rawseti (L, 1, w);
         lua_rawgeti (L, 1, i + 1);
         lua_rawseti (L, 1, w + 1);
      } else {
         lua_pop (L, 1);
      }
      w += 2;
   }
   if (keep) {
      lua_pushvalue (L, 2);
      lua_rawseti (L, 1, w);
      lua_pushvalue (L, 3);
      lua_rawseti (L, 1, w + 1);
      return 0;
   }
   for (i = n; i >= w; i--) { /* from the end: the list never has a hole */
      lua_pushnil (L);
      lua_rawseti (L, 1, i);
   }
   return 0;
}

/* The iterator pairs(ordered) returns: (ordered, key) -> next key, value.
 * Upvalue 1 is the pair it returned last; when that pair no longer holds
 * key, a removal (ordered.key = nil in the loop) moved the next pair there. */
static int
ordered_next (lua_State *L)
{
   lua_Integer i = lua_tointeger (L, lua_upvalueindex (1));

   if (i > 0) {
      lua_rawgeti (L, 1, 2 * i - 1);
      if (lua_rawequal (L, -1, 2)) {
         i++;
      }
      lua_pop (L, 1);
   } else {
      i = 1;
   }
   lua_rawgeti (L, 1, 2 * i - 1);
   if (lua_isnil (L, -1)) {
      return 1;
   }
   lua_rawgeti (L, 1, 2 * i);
   lua_pushinteger (L, i);
   lua_replace (L, lua_upvalueindex (1));
   return 2;
}

/* pairs(ordered) -> key, value in order (Lua 5.4; LuaJIT 2.1 calls __pairs
 * only when built with LUAJIT_ENABLE_LUA52COMPAT, else pairs shows the flat
 * layout) */
static int
ordered_pairs (lua_State *L)
{
   lua_pushinteger (L, 0);
   lua_pushcclosure (L, ordered_next, 1);
   lua_pushvalue (L, 1);
   lua_pushnil (L);
   return 3;
}

/* ---- registration ----------------------------------------------------- */

/* Push the one function value of fn in this Lua state (kept in the
 * registry under key): LuaJIT, like Lua 5.1, calls __lt, __le and __eq only
 * when both operands have the very same metamethod, so Int32, Int64 and Date
 * compare with each other there only if their metatables share it. */
static void
push_shared (lua_State *L, const void *key, lua_CFunction fn)
{
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, key);
   if (lua_isnil (L, -1)) {
      lua_pop (L, 1);
      lua_pushcfunction (L, fn);
      lua_pushvalue (L, -1);
      xdbtx_rawsetp (L, LUA_REGISTRYINDEX, key);
   }
}

static const char lt_key = 0, le_key = 0, eq_key = 0; /* registry: the shared metamethods */

/* The metatable for kind, created once per Lua state (a second require of
 * the module reuses it, so values stay comparable). Leaves it on the stack. */
static void
open_kind (lua_State *L, int kind)
{
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &mt_keys[kind]);
   if (!lua_isnil (L, -1)) {
      return;
   }
   lua_pop (L, 1);
   luaL_newmetatable (L, kinds[kind].mt);
   lua_pushinteger (L, kind);
   xdbtx_rawsetp (L, -2, &codec_tag_key);
   lua_pushstring (L, kinds[kind].mt);
   lua_setfield (L, -2, "__name");
   lua_newtable (L);
   luaL_setfuncs (L, codec_kind_methods[kind], 0);
   lua_setfield (L, -2, "__index");
   lua_pushcfunction (L, mm_tostring);
   lua_setfield (L, -2, "__tostring");
   push_shared (L, &eq_key, mm_eq);
   lua_setfield (L, -2, "__eq");
   if (kind == CODEC_INT64 || kind == CODEC_INT32 || kind == CODEC_DATE) {
      push_shared (L, &lt_key, mm_lt);
      lua_setfield (L, -2, "__lt");
      push_shared (L, &le_key, mm_le);
      lua_setfield (L, -2, "__le");
   }
   if (kind == CODEC_BINARY) {
      lua_pushcfunction (L, mm_len);
      lua_setfield (L, -2, "__len");
   }
   lua_pushboolean (L, 0);
   lua_setfield (L, -2, "__metatable");
   lua_pushvalue (L, -1);
   xdbtx_rawsetp (L, LUA_REGISTRYINDEX, &mt_keys[kind]);
}

static void
open_singleton (lua_State *L, int module_idx, int kind, const void *key, const char *name)
{
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, key);
   if (lua_isnil (L, -1)) {
      lua_pop (L, 1);
      codec_val_push (L, kind, 0);
      lua_pushvalue (L, -1);
      xdbtx_rawsetp (L, LUA_REGISTRYINDEX, key);
   }
   lua_setfield (L, module_idx, name);
}

static void
open_table_mt (lua_State *L, int module_idx, const void *key, const char *field)
{
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, key);
   if (lua_isnil (L, -1)) {
      lua_pop (L, 1);
      lua_newtable (L);
      if (key == &codec_ordered_mt_key) {
         lua_pushliteral (L, "xdbtx.Ordered");
         lua_setfield (L, -2, "__name");
         lua_pushcfunction (L, ordered_len);
         lua_setfield (L, -2, "__len");
         lua_pushcfunction (L, ordered_index);
         lua_setfield (L, -2, "__index");
         lua_pushcfunction (L, ordered_newindex);
         lua_setfield (L, -2, "__newindex");
         lua_pushcfunction (L, ordered_pairs);
         lua_setfield (L, -2, "__pairs");
      }
      lua_pushvalue (L, -1);
      xdbtx_rawsetp (L, LUA_REGISTRYINDEX, key);
   }
   if (field) {
      lua_setfield (L, module_idx, field);
   } else {
      lua_pop (L, 1);
   }
}

void
codec_open_types (lua_State *L, int module_idx)
{
   int kind;

   module_idx = lua_absindex (L, module_idx);
   for (kind = 1; kind < CODEC_KIND_COUNT; kind++) {
      open_kind (L, kind);
      lua_pop (L, 1);
   }
   open_singleton (L, module_idx, CODEC_NULL, &codec_null_key, "null");
   open_singleton (L, module_idx, CODEC_MINKEY, &minkey_key, "minkey");
   open_singleton (L, module_idx, CODEC_MAXKEY, &maxkey_key, "maxkey");
   lua_pushlightuserdata (L, NULL); /* cjson.null, ngx.null */
   lua_setfield (L, module_idx, "json_null");
   open_table_mt (L, module_idx, &codec_array_mt_key, "array_mt");
   open_table_mt (L, module_idx, &codec_ordered_mt_key, NULL);
   lua_pushvalue (L, module_idx);
   luaL_setfuncs (L, codec_value_funcs, 0);
   lua_pop (L, 1);
}

void
xdbtx_codec_set_array_mt (lua_State *L, int idx)
{
   idx = lua_absindex (L, idx);
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_array_mt_key);
   lua_setmetatable (L, idx);
}
