/*
 * codec_values.c - the Lua functions that make and read typed values:
 * the constructors xdbtx.object_id, date, timestamp, decimal128, binary,
 * uuid, regex, code, int32, int64, double, ordered, the classifier
 * xdbtx.type, and the methods of each kind (oid:hex(), date:ms(), ...).
 * Constructors validate everything the encoder would otherwise have to
 * check, so encoding a typed value cannot fail. The layout and metatables
 * are codec_types.c's.
 */
#define _DEFAULT_SOURCE 1
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "codec.h"

/* ---- numbers shared by the constructors ----------------------------- */

/* An exact int64 from a Lua number, an integer string, or an Int64/Int32.
 * A value of another type is an argument error ("<fname>: expected
 * <what>, got ..."); a number or string that is not an exact int64 is a
 * codec error. */
static int64_t
check_int64 (lua_State *L, int idx, const char *fname, const char *what)
{
   codec_val_t *v;
   const char *s;
   char *end;
   long long ll;
   lua_Number x;

   switch (lua_type (L, idx)) {
   case LUA_TNUMBER:
#ifdef XDBTX_HAS_INTEGERS
      if (lua_isinteger (L, idx)) {
         return (int64_t) lua_tointeger (L, idx);
      }
#endif
      x = lua_tonumber (L, idx);
      if (x != floor (x) || x < -9223372036854775808.0 || x >= 9223372036854775808.0) {
         codec_raise (L, "encode", "%s: %s is not an integer", fname, lua_tostring (L, idx));
      }
      return (int64_t) x;
   case LUA_TSTRING:
      s = lua_tostring (L, idx);
      errno = 0;
      ll = strtoll (s, &end, 10);
      if (errno || end == s || *end) {
         codec_raise (L, "encode", "%s: \"%.40s\" is not a 64-bit integer", fname, s);
      }
      return (int64_t) ll;
   case LUA_TUSERDATA:
      v = codec_val_test (L, idx);
      if (v && v->kind == CODEC_INT64) {
         return v->u.i64;
      }
      if (v && v->kind == CODEC_INT32) {
         return v->u.i32;
      }
      break;
   default:
      break;
   }
   codec_arg_expected (L, idx, fname, what);
   return 0;
}

/* ---- constructors ---------------------------------------------------- */

/* xdbtx.object_id(hex?) -> ObjectId (a new one without argument) */
static int
f_object_id (lua_State *L)
{
   codec_val_t *v;
   size_t n;
   const char *hex = codec_opt_lstring (L, 1, NULL, &n, "xdbtx.object_id", "a string of 24 hex digits");

   if (hex && (n != 24 || !bson_oid_is_valid (hex, n))) {
      return codec_raise (L, "encode", "xdbtx.object_id: expected 24 hex digits, got \"%.40s\"", hex);
   }
   v = codec_val_push (L, CODEC_OID, 0);
   if (hex) {
      bson_oid_init_from_string (&v->u.oid, hex);
   } else {
      bson_oid_init (&v->u.oid, NULL);
   }
   return 1;
}

/* xdbtx.date(ms?) -> Date (milliseconds since the epoch; now without argument) */
static int
f_date (lua_State *L)
{
   int64_t ms;

   if (lua_isnoneornil (L, 1)) {
      struct timespec ts;
      clock_gettime (CLOCK_REALTIME, &ts);
      ms = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
   } else {
      ms = check_int64 (L, 1, "xdbtx.date", "an integer (milliseconds)");
   }
   codec_val_push (L, CODEC_DATE, 0)->u.i64 = ms;
   return 1;
}

static uint32_t
check_u32 (lua_State *L, int idx, const char *fname, const char *what)
{
   int64_t v = check_int64 (L, idx, fname, what);

   if (v < 0 || v > UINT32_MAX) {
      codec_raise (L, "encode", "%s: %" PRId64 " is out of range 0..4294967295", fname, v);
   }
   return (uint32_t) v;
}

/* xdbtx.timestamp(t, i) -> Timestamp */
static int
f_timestamp (lua_State *L)
{
   uint32_t t = check_u32 (L, 1, "xdbtx.timestamp", "an integer as argument 1 (t)");
   uint32_t i = check_u32 (L, 2, "xdbtx.timestamp", "an integer as argument 2 (i)");
   codec_val_t *v = codec_val_push (L, CODEC_TIMESTAMP, 0);

   v->u.ts.t = t;
   v->u.ts.i = i;
   return 1;
}

/* xdbtx.decimal128(str) -> Decimal128 */
static int
f_decimal128 (lua_State *L)
{
   bson_decimal128_t dec;
   const char *s = codec_check_lstring (L, 1, NULL, "xdbtx.decimal128", "a string");

   if (!bson_decimal128_from_string (s, &dec)) {
      return codec_raise (L, "encode", "xdbtx.decimal128: \"%.60s\" is not a decimal number", s);
   }
   codec_val_push (L, CODEC_DECIMAL128, 0)->u.dec = dec;
   return 1;
}

static codec_val_t *
push_binary (lua_State *L, const uint8_t *data, size_t n, int subtype)
{
   codec_val_t *v = codec_val_push (L, CODEC_BINARY, n);

   v->len = (uint32_t) n;
   v->subtype = (uint8_t) subtype;
   if (n) {
      memcpy (v->data, data, n);
   }
   return v;
}

/* xdbtx.binary(bytes, subtype?) -> Binary (subtype 0..255, default 0) */
static int
f_binary (lua_State *L)
{
   size_t n;
   const char *s = codec_check_lstring (L, 1, &n, "xdbtx.binary", "a string of bytes");
   int64_t sub = lua_isnoneornil (L, 2) ? 0
                 : check_int64 (L, 2, "xdbtx.binary", "an integer subtype as argument 2");

   if (sub < 0 || sub > 255) {
      return codec_raise (L, "encode", "xdbtx.binary: subtype %" PRId64 " is out of range 0..255", sub);
   }
   if (n > CODEC_MAX_BYTES) {
      return codec_raise (L, "encode", "xdbtx.binary: %zu bytes is over the 16 MiB limit", n);
   }
   push_binary (L, (const uint8_t *) s, n, (int) sub);
   return 1;
}

static int
hexval (int c)
{
   if (c >= '0' && c <= '9') {
      return c - '0';
   }
   c |= 0x20;
   return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* "8-4-4-4-12" hex (or 32 bare hex digits) -> 16 bytes */
static bool
parse_uuid (const char *s, size_t n, uint8_t out[16])
{
   size_t i, j = 0;
   bool dashed = n == 36;

   if (n != 36 && n != 32) {
      return false;
   }
   for (i = 0; i < n;) {
      int hi, lo;
      if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
         if (s[i] != '-') {
            return false;
         }
         i++;
         continue;
      }
      hi = hexval ((unsigned char) s[i]);
      lo = hexval ((unsigned char) s[i + 1]);
      if (hi < 0 || lo < 0 || j >= 16) {
         return false;
      }
      out[j++] = (uint8_t) (hi << 4 | lo);
      i += 2;
   }
   return j == 16;
}

static void
random_bytes (uint8_t *p, size_t n)
{
   size_t got = 0;

   while (got < n) {
      ssize_t r = getrandom (p + got, n - got, 0);
      if (r <= 0) {
         if (r < 0 && errno == EINTR) {
            continue;
         }
         break;
      }
      got += (size_t) r;
   }
   for (; got < n; got++) {
      p[got] = (uint8_t) rand ();
   }
}

/* xdbtx.uuid(str?) -> Binary subtype 4 (random version 4 without argument) */
static int
f_uuid (lua_State *L)
{
   uint8_t b[16];
   size_t n;
   const char *s = codec_opt_lstring (L, 1, NULL, &n, "xdbtx.uuid", "a string \"8-4-4-4-12\"");

   if (s) {
      if (!parse_uuid (s, n, b)) {
         return codec_raise (L, "encode", "xdbtx.uuid: expected 8-4-4-4-12 hex digits, got \"%.40s\"", s);
      }
   } else {
      random_bytes (b, 16);
      b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40);
      b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80);
   }
   push_binary (L, b, 16, BSON_SUBTYPE_UUID);
   return 1;
}

/* xdbtx.regex(pattern, flags?) -> Regex (flags are kept sorted, as BSON wants) */
static int
f_regex (lua_State *L)
{
   size_t pn, fn, i, k = 0;
   const char *p = codec_check_lstring (L, 1, &pn, "xdbtx.regex", "a pattern string");
   const char *f = codec_opt_lstring (L, 2, "", &fn, "xdbtx.regex", "a flags string as argument 2");
   static const char valid[] = "ilmsux";
   char sorted[8];
   codec_val_t *v;

   if (strlen (p) != pn || !codec_utf8_valid (p, pn, false)) {
      return codec_raise (L, "encode", "xdbtx.regex: pattern contains NUL or invalid UTF-8");
   }
   for (i = 0; i < fn; i++) {
      if (!f[i] || !strchr (valid, f[i])) {
         return codec_raise (L, "encode", "xdbtx.regex: invalid flag '%c' (expected ilmsux)", f[i] ? f[i] : '0');
      }
   }
   for (i = 0; valid[i]; i++) {
      if (memchr (f, valid[i], fn)) {
         sorted[k++] = valid[i];
      }
   }
   sorted[k] = 0;
   v = codec_val_push (L, CODEC_REGEX, pn + 1 + k + 1);
   v->len = (uint32_t) pn;
   v->len2 = (uint32_t) k;
   memcpy (v->data, p, pn + 1);
   memcpy (v->data + pn + 1, sorted, k + 1);
   return 1;
}

/* xdbtx.code(src) -> Code */
static int
f_code (lua_State *L)
{
   size_t n;
   const char *s = codec_check_lstring (L, 1, &n, "xdbtx.code", "a source string");
   codec_val_t *v;

   if (strlen (s) != n || !codec_utf8_valid (s, n, false)) {
      return codec_raise (L, "encode", "xdbtx.code: source contains NUL or invalid UTF-8");
   }
   v = codec_val_push (L, CODEC_CODE, n + 1);
   v->len = (uint32_t) n;
   memcpy (v->data, s, n + 1);
   return 1;
}

/* xdbtx.int32(n) -> Int32 (encodes as int32; n must fit) */
static int
f_int32 (lua_State *L)
{
   int64_t n = check_int64 (L, 1, "xdbtx.int32", "an integer");

   if (n < INT32_MIN || n > INT32_MAX) {
      return codec_raise (L, "encode", "xdbtx.int32: %" PRId64 " does not fit in 32 bits", n);
   }
   codec_val_push (L, CODEC_INT32, 0)->u.i32 = (int32_t) n;
   return 1;
}

/* xdbtx.int64(n) -> Int64 (n: integer, integral number, or decimal string) */
static int
f_int64 (lua_State *L)
{
   int64_t n = check_int64 (L, 1, "xdbtx.int64", "an integer or a string of digits");

   codec_val_push (L, CODEC_INT64, 0)->u.i64 = n;
   return 1;
}

/* xdbtx.double(x) -> Double (encodes as double, also integral values) */
static int
f_double (lua_State *L)
{
   lua_Number x;

   if (!lua_isnumber (L, 1)) {
      return codec_arg_expected (L, 1, "xdbtx.double", "a number");
   }
   x = lua_tonumber (L, 1);
   codec_val_push (L, CODEC_DOUBLE, 0)->u.d = (double) x;
   return 1;
}

/* ---- methods ---------------------------------------------------------- */

/* oid:hex() -> 24 hex digits */
static int
m_oid_hex (lua_State *L)
{
   char hex[25];

   bson_oid_to_string (&codec_check_val (L, 1, CODEC_OID, "hex")->u.oid, hex);
   lua_pushlstring (L, hex, 24);
   return 1;
}

/* oid:time() -> seconds since the epoch from the ObjectId */
static int
m_oid_time (lua_State *L)
{
   codec_push_int64 (L, (int64_t) bson_oid_get_time_t (&codec_check_val (L, 1, CODEC_OID, "time")->u.oid));
   return 1;
}

/* date:ms() -> milliseconds since the epoch */
static int
m_date_ms (lua_State *L)
{
   codec_push_int64 (L, codec_check_val (L, 1, CODEC_DATE, "ms")->u.i64);
   return 1;
}

/* ts:t() -> seconds; ts:i() -> increment */
static int
m_ts_t (lua_State *L)
{
   lua_pushinteger (L, (lua_Integer) codec_check_val (L, 1, CODEC_TIMESTAMP, "t")->u.ts.t);
   return 1;
}

static int
m_ts_i (lua_State *L)
{
   lua_pushinteger (L, (lua_Integer) codec_check_val (L, 1, CODEC_TIMESTAMP, "i")->u.ts.i);
   return 1;
}

/* dec:tostring() -> "1.5", "NaN", "-Infinity", ... */
static int
m_dec_tostring (lua_State *L)
{
   char buf[BSON_DECIMAL128_STRING];

   bson_decimal128_to_string (&codec_check_val (L, 1, CODEC_DECIMAL128, "tostring")->u.dec, buf);
   lua_pushstring (L, buf);
   return 1;
}

/* bin:data() -> bytes; bin:subtype() -> integer */
static int
m_bin_data (lua_State *L)
{
   codec_val_t *v = codec_check_val (L, 1, CODEC_BINARY, "data");

   lua_pushlstring (L, v->data, v->len);
   return 1;
}

static int
m_bin_subtype (lua_State *L)
{
   lua_pushinteger (L, codec_check_val (L, 1, CODEC_BINARY, "subtype")->subtype);
   return 1;
}
/* bin:uuid() -> "8-4-4-4-12" text for 16-byte subtype 3/4, else nil */
static int
m_bin_uuid (lua_State *L)
{
   codec_val_t *v = codec_check_val (L, 1, CODEC_BINARY, "uuid");
   char t[37];

   if (!codec_is_uuid (v)) {
      lua_pushnil (L);
      return 1;
   }
   codec_uuid_text (v, t);
   lua_pushstring (L, t);
   return 1;
}

/* re:pattern() -> string; re:flags() -> string */
static int
m_re_pattern (lua_State *L)
{
   codec_val_t *v = codec_check_val (L, 1, CODEC_REGEX, "pattern");

   lua_pushlstring (L, v->data, v->len);
   return 1;
}

static int
m_re_flags (lua_State *L)
{
   codec_val_t *v = codec_check_val (L, 1, CODEC_REGEX, "flags");

   lua_pushlstring (L, v->data + v->len + 1, v->len2);
   return 1;
}

/* code:code() -> source */
static int
m_code_code (lua_State *L)
{
   codec_val_t *v = codec_check_val (L, 1, CODEC_CODE, "code");

   lua_pushlstring (L, v->data, v->len);
   return 1;
}

/* n:value() -> Lua number (Int32/Int64/Double); under LuaJIT an Int64
 * beyond 2^53 returns the nearest double. */
static int
m_num_value (lua_State *L)
{
   codec_val_t *v = codec_val_test (L, 1);

   if (!v || (v->kind != CODEC_INT32 && v->kind != CODEC_INT64 && v->kind != CODEC_DOUBLE)) {
      return codec_check_self_fail (L, 1, "value", "an Int32, Int64 or Double");
   }
   if (v->kind == CODEC_DOUBLE) {
      lua_pushnumber (L, (lua_Number) v->u.d);
   } else if (v->kind == CODEC_INT32) {
      lua_pushinteger (L, v->u.i32);
   } else {
#ifdef XDBTX_HAS_INTEGERS
      lua_pushinteger (L, (lua_Integer) v->u.i64);
#else
      lua_pushnumber (L, (lua_Number) v->u.i64);
#endif
   }
   return 1;
}

/* ---- ordered documents and xdbtx.type --------------------------------- */

/* The keys of the table at idx are exactly 1..n (none other, no hole). */
static bool
keys_are_1_to_n (lua_State *L, int idx, lua_Integer n)
{
   lua_Integer count = 0;
   lua_Number k;

   lua_pushnil (L);
   while (lua_next (L, idx)) {
      lua_pop (L, 1);
      k = lua_type (L, -1) == LUA_TNUMBER ? lua_tonumber (L, -1) : 0;
      if (k != floor (k) || k < 1 || k > (lua_Number) n) {
         lua_pop (L, 1);
         return false;
      }
      count++;
   }
   return count == n;
}

/* Up to this many pairs, a duplicate key is found by comparing with every
 * earlier key; past it, through a table of the keys seen. */
#define ORDERED_SCAN_MAX 16

/* xdbtx.ordered{ {"k1", v1}, {"k2", v2}, ... } -> document encoded in that
 * order. Kept as a flat table {k1, v1, k2, v2, ...} with its own metatable.
 * Every pair is kept or it raises: no key beside the pairs, no hole, no
 * third element, no key twice (the server would keep only one of them). */
static int
f_ordered (lua_State *L)
{
   lua_Integer i, j, n;
   int out, seen = 0, entry;
   size_t kl, lens[ORDERED_SCAN_MAX + 1];
   const char *k, *keys[ORDERED_SCAN_MAX + 1];

   if (!lua_istable (L, 1)) {
      return codec_arg_expected (L, 1, "xdbtx.ordered", "a table of {key, value} pairs");
   }
   n = (lua_Integer) lua_rawlen (L, 1);
   if (!keys_are_1_to_n (L, 1, n)) {
      return codec_raise (L, "encode", "xdbtx.ordered: the pairs must be a list (keys 1..%d, no"
                          " other keys, no holes)", (int) n);
   }
   lua_createtable (L, (int) (2 * n), 0);
   out = lua_gettop (L);
   if (n > ORDERED_SCAN_MAX) {
      lua_createtable (L, 0, (int) n);
      seen = lua_gettop (L);
   }
   entry = lua_gettop (L) + 1;
   for (i = 1; i <= n; i++) {
      lua_rawgeti (L, 1, i);
      if (!lua_istable (L, entry)) {
         return codec_raise (L, "encode", "xdbtx.ordered: entry %d is not a {key, value} pair", (int) i);
      }
      if (!keys_are_1_to_n (L, entry, 2)) {
         return codec_raise (L, "encode", "xdbtx.ordered: entry %d must be exactly {key, value}"
                             " (keys 1 and 2, nothing else)", (int) i);
      }
      lua_rawgeti (L, entry, 1);
      lua_rawgeti (L, entry, 2);
      if (lua_type (L, entry + 1) != LUA_TSTRING) {
         return codec_raise (L, "encode", "xdbtx.ordered: entry %d has no string key", (int) i);
      }
      if (lua_isnil (L, entry + 2)) {
         return codec_raise (L, "encode", "xdbtx.ordered: entry %d has a nil value (use xdbtx.null)", (int) i);
      }
      k = lua_tolstring (L, entry + 1, &kl);
      j = 0;
      if (seen) {
         lua_pushvalue (L, entry + 1);
         lua_rawget (L, seen);
         j = lua_tointeger (L, -1);
         lua_pop (L, 1);
         if (!j) {
            lua_pushvalue (L, entry + 1);
            lua_pushinteger (L, i);
            lua_rawset (L, seen);
         }
      } else {
         /* the keys stay alive in out, and so do these pointers */
         for (j = i - 1; j >= 1; j--) {
            if (lens[j] == kl && (keys[j] == k || memcmp (keys[j], k, kl) == 0)) {
               break;
            }
         }
         keys[i] = k;
         lens[i] = kl;
      }
      if (j) {
         return codec_raise (L, "encode", "xdbtx.ordered: key '%.*s%s' appears twice (entries %d and %d)",
                             kl > 100 ? 100 : (int) kl, k, kl > 100 ? "..." : "", (int) j, (int) i);
      }
      lua_rawseti (L, out, (int) (2 * i));
      lua_rawseti (L, out, (int) (2 * i - 1));
      lua_pop (L, 1);
   }
   if (seen) {
      lua_pop (L, 1);
   }
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_ordered_mt_key);
   lua_setmetatable (L, -2);
   return 1;
}

/* xdbtx.type(v) -> "objectid" | "date" | "timestamp" | "decimal128" |
 * "binary" | "regex" | "code" | "minkey" | "maxkey" | "null" (xdbtx.null
 * and xdbtx.json_null) | "int32" |
 * "int64" | "double" | "array" | "document" | "string" | "boolean" |
 * "integer" | "float"; other Lua values give their Lua type name. */
static int
f_type (lua_State *L)
{
   codec_val_t *v;

   if (lua_isnone (L, 1)) {
      return codec_argerror (L, "xdbtx.type", "expected a value, got no value");
   }
   switch (lua_type (L, 1)) {
   case LUA_TNUMBER:
#ifdef XDBTX_HAS_INTEGERS
      lua_pushstring (L, lua_isinteger (L, 1) ? "integer" : "float");
#else
      {
         double x = lua_tonumber (L, 1);
         bool integral = x == floor (x) && fabs (x) <= 9007199254740992.0 &&
                         !(x == 0 && signbit (x));
         lua_pushstring (L, integral ? "integer" : "float");
      }
#endif
      return 1;
   case LUA_TTABLE:
      lua_pushstring (L, codec_table_kind (L, 1));
      return 1;
   case LUA_TUSERDATA:
      v = codec_val_test (L, 1);
      if (v) {
         lua_pushstring (L, codec_kind_name (v->kind));
         return 1;
      }
      break;
   case LUA_TLIGHTUSERDATA:
      if (lua_touserdata (L, 1) == NULL) {
         lua_pushliteral (L, "null"); /* xdbtx.json_null encodes as null */
         return 1;
      }
      break;
   default:
      break;
   }
   lua_pushstring (L, luaL_typename (L, 1));
   return 1;
}

/* ---- tables codec_types.c registers ---------------------------------- */

static const luaL_Reg oid_methods[] = {{"hex", m_oid_hex}, {"time", m_oid_time}, {NULL, NULL}};
static const luaL_Reg date_methods[] = {{"ms", m_date_ms}, {NULL, NULL}};
static const luaL_Reg ts_methods[] = {{"t", m_ts_t}, {"i", m_ts_i}, {NULL, NULL}};
static const luaL_Reg dec_methods[] = {{"tostring", m_dec_tostring}, {NULL, NULL}};
static const luaL_Reg bin_methods[] = {
   {"data", m_bin_data}, {"subtype", m_bin_subtype}, {"uuid", m_bin_uuid}, {NULL, NULL}};
static const luaL_Reg re_methods[] = {{"pattern", m_re_pattern}, {"flags", m_re_flags}, {NULL, NULL}};
static const luaL_Reg code_methods[] = {{"code", m_code_code}, {NULL, NULL}};
static const luaL_Reg num_methods[] = {{"value", m_num_value}, {NULL, NULL}};
static const luaL_Reg no_methods[] = {{NULL, NULL}};

const luaL_Reg *const codec_kind_methods[CODEC_KIND_COUNT] = {
   [CODEC_OID] = oid_methods,       [CODEC_DATE] = date_methods,
   [CODEC_TIMESTAMP] = ts_methods,  [CODEC_DECIMAL128] = dec_methods,
   [CODEC_BINARY] = bin_methods,    [CODEC_REGEX] = re_methods,
   [CODEC_CODE] = code_methods,     [CODEC_MINKEY] = no_methods,
   [CODEC_MAXKEY] = no_methods,     [CODEC_NULL] = no_methods,
   [CODEC_INT32] = num_methods,     [CODEC_INT64] = num_methods,
   [CODEC_DOUBLE] = num_methods,
};


const luaL_Reg codec_value_funcs[] = {
   {"object_id", f_object_id}, {"date", f_date},       {"timestamp", f_timestamp},
   {"decimal128", f_decimal128}, {"binary", f_binary}, {"uuid", f_uuid},
   {"regex", f_regex},         {"code", f_code},       {"int32", f_int32},
   {"int64", f_int64},         {"double", f_double},   {"ordered", f_ordered},
   {"type", f_type},           {NULL, NULL},
};
