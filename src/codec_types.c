/*
 * codec_types.c - the typed BSON values Lua cannot express natively:
 * ObjectId, Date, Timestamp, Decimal128, Binary (UUID is Binary subtype 4),
 * Regex, Code, MinKey, MaxKey, the null sentinel and the forced widths
 * Int32, Int64, Double (Int64 is also how LuaJIT receives int64 values it
 * cannot hold exactly).
 *
 * All share one userdata layout (codec_val_t) and differ by metatable. The
 * values are immutable; constructors validate everything the encoder would
 * otherwise have to check, so encoding them cannot fail. Misuse raises an
 * xdbtx.Error (domain "codec").
 */
#define _DEFAULT_SOURCE 1
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
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
} kinds[CODEC_KIND_COUNT] = {
   [CODEC_OID] = {"xdbtx.ObjectId", "objectid"},
   [CODEC_DATE] = {"xdbtx.Date", "date"},
   [CODEC_TIMESTAMP] = {"xdbtx.Timestamp", "timestamp"},
   [CODEC_DECIMAL128] = {"xdbtx.Decimal128", "decimal128"},
   [CODEC_BINARY] = {"xdbtx.Binary", "binary"},
   [CODEC_REGEX] = {"xdbtx.Regex", "regex"},
   [CODEC_CODE] = {"xdbtx.Code", "code"},
   [CODEC_MINKEY] = {"xdbtx.MinKey", "minkey"},
   [CODEC_MAXKEY] = {"xdbtx.MaxKey", "maxkey"},
   [CODEC_NULL] = {"xdbtx.Null", "null"},
   [CODEC_INT32] = {"xdbtx.Int32", "int32"},
   [CODEC_INT64] = {"xdbtx.Int64", "int64"},
   [CODEC_DOUBLE] = {"xdbtx.Double", "double"},
};

const char *
codec_kind_name (int kind)
{
   return (kind > 0 && kind < CODEC_KIND_COUNT) ? kinds[kind].type : "userdata";
}

void
codec_error (xdbtx_error_t *err, const char *phase, const char *fmt, ...)
{
   va_list ap;

   xdbtx_error_cleanup (err);
   err->domain = XDBTX_DOMAIN_CODEC;
   bson_strncpy (err->phase, phase, sizeof err->phase);
   va_start (ap, fmt);
   vsnprintf (err->message, sizeof err->message, fmt, ap);
   va_end (ap);
}

int
codec_raise (lua_State *L, const char *phase, const char *fmt, ...)
{
   xdbtx_error_t err;
   va_list ap;

   xdbtx_error_init (&err);
   err.domain = XDBTX_DOMAIN_CODEC;
   bson_strncpy (err.phase, phase, sizeof err.phase);
   va_start (ap, fmt);
   vsnprintf (err.message, sizeof err.message, fmt, ap);
   va_end (ap);
   return xdbtx_lua_raise (L, &err);
}

/* ASCII runs are checked a word at a time; anything else goes to libbson. */
bool
codec_utf8_valid (const char *s, size_t n, bool allow_nul)
{
   size_t i = 0;
   uint64_t w;

   if (allow_nul) {
      for (; i + 8 <= n; i += 8) {
         memcpy (&w, s + i, 8);
         if (w & UINT64_C (0x8080808080808080)) {
            return bson_utf8_validate (s + i, n - i, true);
         }
      }
   }
   for (; i < n; i++) {
      unsigned char c = (unsigned char) s[i];
      if (c == 0 || c >= 0x80) {
         return bson_utf8_validate (s + i, n - i, allow_nul);
      }
   }
   return true;
}

codec_val_t *
codec_val_push (lua_State *L, int kind, size_t extra)
{
   codec_val_t *v =
      (codec_val_t *) lua_newuserdatauv (L, sizeof (codec_val_t) + extra, 0);

   memset (v, 0, sizeof *v);
   v->kind = kind;
   codec_rawgetp (L, LUA_REGISTRYINDEX, &mt_keys[kind]);
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
   codec_rawgetp (L, -1, &codec_tag_key);
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
   codec_rawgetp (L, LUA_REGISTRYINDEX, key);
}

static codec_val_t *
check_val (lua_State *L, int idx, int kind)
{
   codec_val_t *v = codec_val_test (L, idx);

   if (!v || v->kind != kind) {
      luaL_argerror (L, idx, lua_pushfstring (L, "%s expected", kinds[kind].mt));
   }
   return v;
}

/* ---- numbers shared by the constructors ----------------------------- */

/* An exact int64 from a Lua number, an integer string, or an Int64/Int32. */
static int64_t
check_int64 (lua_State *L, int idx, const char *what)
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
         codec_raise (L, "encode", "%s: %s is not an integer", what, lua_tostring (L, idx));
      }
      return (int64_t) x;
   case LUA_TSTRING:
      s = lua_tostring (L, idx);
      errno = 0;
      ll = strtoll (s, &end, 10);
      if (errno || end == s || *end) {
         codec_raise (L, "encode", "%s: \"%s\" is not a 64-bit integer", what, s);
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
   codec_raise (L, "encode", "%s: integer expected, got %s", what, luaL_typename (L, idx));
   return 0;
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

/* ---- constructors ---------------------------------------------------- */

/* xdbtx.object_id(hex?) -> ObjectId (a new one without argument) */
static int
f_object_id (lua_State *L)
{
   codec_val_t *v;
   size_t n;
   const char *hex = luaL_optlstring (L, 1, NULL, &n);

   if (hex && (n != 24 || !bson_oid_is_valid (hex, n))) {
      return codec_raise (L, "encode", "object_id: expected 24 hex digits, got \"%.40s\"", hex);
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
      ms = check_int64 (L, 1, "date");
   }
   codec_val_push (L, CODEC_DATE, 0)->u.i64 = ms;
   return 1;
}

static uint32_t
check_u32 (lua_State *L, int idx, const char *what)
{
   int64_t v = check_int64 (L, idx, what);

   if (v < 0 || v > UINT32_MAX) {
      codec_raise (L, "encode", "%s: %" PRId64 " is out of range 0..4294967295", what, v);
   }
   return (uint32_t) v;
}

/* xdbtx.timestamp(t, i) -> Timestamp */
static int
f_timestamp (lua_State *L)
{
   uint32_t t = check_u32 (L, 1, "timestamp"), i = check_u32 (L, 2, "timestamp");
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
   const char *s = luaL_checkstring (L, 1);

   if (!bson_decimal128_from_string (s, &dec)) {
      return codec_raise (L, "encode", "decimal128: \"%.60s\" is not a decimal number", s);
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
   const char *s = luaL_checklstring (L, 1, &n);
   int64_t sub = lua_isnoneornil (L, 2) ? 0 : check_int64 (L, 2, "binary");

   if (sub < 0 || sub > 255) {
      return codec_raise (L, "encode", "binary: subtype %" PRId64 " is out of range 0..255", sub);
   }
   if (n > CODEC_MAX_BYTES) {
      return codec_raise (L, "encode", "binary: %zu bytes is over the 16 MiB limit", n);
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
   const char *s = luaL_optlstring (L, 1, NULL, &n);

   if (s) {
      if (!parse_uuid (s, n, b)) {
         return codec_raise (L, "encode", "uuid: expected 8-4-4-4-12 hex digits, got \"%.40s\"", s);
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
   const char *p = luaL_checklstring (L, 1, &pn);
   const char *f = luaL_optlstring (L, 2, "", &fn);
   static const char valid[] = "ilmsux";
   char sorted[8];
   codec_val_t *v;

   if (strlen (p) != pn || !codec_utf8_valid (p, pn, false)) {
      return codec_raise (L, "encode", "regex: pattern contains NUL or invalid UTF-8");
   }
   for (i = 0; i < fn; i++) {
      if (!f[i] || !strchr (valid, f[i])) {
         return codec_raise (L, "encode", "regex: invalid flag '%c' (expected ilmsux)", f[i] ? f[i] : '0');
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
   const char *s = luaL_checklstring (L, 1, &n);
   codec_val_t *v;

   if (strlen (s) != n || !codec_utf8_valid (s, n, false)) {
      return codec_raise (L, "encode", "code: source contains NUL or invalid UTF-8");
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
   int64_t n = check_int64 (L, 1, "int32");

   if (n < INT32_MIN || n > INT32_MAX) {
      return codec_raise (L, "encode", "int32: %" PRId64 " does not fit in 32 bits", n);
   }
   codec_val_push (L, CODEC_INT32, 0)->u.i32 = (int32_t) n;
   return 1;
}

/* xdbtx.int64(n) -> Int64 (n: integer, integral number, or decimal string) */
static int
f_int64 (lua_State *L)
{
   int64_t n = check_int64 (L, 1, "int64");

   codec_val_push (L, CODEC_INT64, 0)->u.i64 = n;
   return 1;
}

/* xdbtx.double(x) -> Double (encodes as double, also integral values) */
static int
f_double (lua_State *L)
{
   lua_Number x = luaL_checknumber (L, 1);

   codec_val_push (L, CODEC_DOUBLE, 0)->u.d = (double) x;
   return 1;
}

/* ---- methods ---------------------------------------------------------- */

/* oid:hex() -> 24 hex digits */
static int
m_oid_hex (lua_State *L)
{
   char hex[25];

   bson_oid_to_string (&check_val (L, 1, CODEC_OID)->u.oid, hex);
   lua_pushlstring (L, hex, 24);
   return 1;
}

/* oid:time() -> seconds since the epoch from the ObjectId */
static int
m_oid_time (lua_State *L)
{
   lua_pushnumber (L, (lua_Number) bson_oid_get_time_t (&check_val (L, 1, CODEC_OID)->u.oid));
   return 1;
}

/* date:ms() -> milliseconds since the epoch */
static int
m_date_ms (lua_State *L)
{
   codec_push_int64 (L, check_val (L, 1, CODEC_DATE)->u.i64);
   return 1;
}

/* ts:t() -> seconds; ts:i() -> increment */
static int
m_ts_t (lua_State *L)
{
   lua_pushinteger (L, (lua_Integer) check_val (L, 1, CODEC_TIMESTAMP)->u.ts.t);
   return 1;
}

static int
m_ts_i (lua_State *L)
{
   lua_pushinteger (L, (lua_Integer) check_val (L, 1, CODEC_TIMESTAMP)->u.ts.i);
   return 1;
}

/* dec:tostring() -> "1.5", "NaN", "-Infinity", ... */
static int
m_dec_tostring (lua_State *L)
{
   char buf[BSON_DECIMAL128_STRING];

   bson_decimal128_to_string (&check_val (L, 1, CODEC_DECIMAL128)->u.dec, buf);
   lua_pushstring (L, buf);
   return 1;
}

/* bin:data() -> bytes; bin:subtype() -> integer */
static int
m_bin_data (lua_State *L)
{
   codec_val_t *v = check_val (L, 1, CODEC_BINARY);

   lua_pushlstring (L, v->data, v->len);
   return 1;
}

static int
m_bin_subtype (lua_State *L)
{
   lua_pushinteger (L, check_val (L, 1, CODEC_BINARY)->subtype);
   return 1;
}

static bool
is_uuid (const codec_val_t *v)
{
   return v->len == 16 && (v->subtype == BSON_SUBTYPE_UUID ||
                           v->subtype == BSON_SUBTYPE_UUID_DEPRECATED);
}

static void
uuid_text (const codec_val_t *v, char out[37])
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

/* bin:uuid() -> "8-4-4-4-12" text for 16-byte subtype 3/4, else nil */
static int
m_bin_uuid (lua_State *L)
{
   codec_val_t *v = check_val (L, 1, CODEC_BINARY);
   char t[37];

   if (!is_uuid (v)) {
      lua_pushnil (L);
      return 1;
   }
   uuid_text (v, t);
   lua_pushstring (L, t);
   return 1;
}

/* re:pattern() -> string; re:flags() -> string */
static int
m_re_pattern (lua_State *L)
{
   codec_val_t *v = check_val (L, 1, CODEC_REGEX);

   lua_pushlstring (L, v->data, v->len);
   return 1;
}

static int
m_re_flags (lua_State *L)
{
   codec_val_t *v = check_val (L, 1, CODEC_REGEX);

   lua_pushlstring (L, v->data + v->len + 1, v->len2);
   return 1;
}

/* code:code() -> source */
static int
m_code_code (lua_State *L)
{
   codec_val_t *v = check_val (L, 1, CODEC_CODE);

   lua_pushlstring (L, v->data, v->len);
   return 1;
}

/* n:value() -> Lua number (Int32/Int64/Double); under LuaJIT an Int64
 * beyond 2^53 returns the nearest double. */
static int
m_num_value (lua_State *L)
{
   codec_val_t *v = codec_val_test (L, 1);

   luaL_argcheck (L, v && (v->kind == CODEC_INT32 || v->kind == CODEC_INT64 || v->kind == CODEC_DOUBLE),
                  1, "xdbtx.Int32, xdbtx.Int64 or xdbtx.Double expected");
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

   luaL_argcheck (L, v != NULL, 1, "xdbtx value expected");
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
      if (is_uuid (v) && v->subtype == BSON_SUBTYPE_UUID) {
         char t[37];
         uuid_text (v, t);
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
   luaL_argerror (L, idx, "number or xdbtx.Int64 expected");
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
   lua_pushinteger (L, (lua_Integer) check_val (L, 1, CODEC_BINARY)->len);
   return 1;
}

/* ---- ordered documents and xdbtx.type --------------------------------- */

/* xdbtx.ordered{ {"k1", v1}, {"k2", v2}, ... } -> document encoded in that
 * order. Kept as a flat table {k1, v1, k2, v2, ...} with its own metatable. */
static int
f_ordered (lua_State *L)
{
   lua_Integer i, n;

   luaL_checktype (L, 1, LUA_TTABLE);
   n = (lua_Integer) lua_rawlen (L, 1);
   lua_createtable (L, (int) (2 * n), 0);
   for (i = 1; i <= n; i++) {
      lua_rawgeti (L, 1, i);
      if (!lua_istable (L, -1)) {
         return codec_raise (L, "encode", "ordered: entry %d is not a {key, value} pair", (int) i);
      }
      lua_rawgeti (L, -1, 1);
      lua_rawgeti (L, -2, 2);
      if (lua_type (L, -2) != LUA_TSTRING) {
         return codec_raise (L, "encode", "ordered: entry %d has no string key", (int) i);
      }
      if (lua_isnil (L, -1)) {
         return codec_raise (L, "encode", "ordered: entry %d has a nil value (use xdbtx.null)", (int) i);
      }
      lua_rawseti (L, -4, (int) (2 * i));
      lua_rawseti (L, -3, (int) (2 * i - 1));
      lua_pop (L, 1);
   }
   codec_rawgetp (L, LUA_REGISTRYINDEX, &codec_ordered_mt_key);
   lua_setmetatable (L, -2);
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

/* xdbtx.type(v) -> "objectid" | "date" | "timestamp" | "decimal128" |
 * "binary" | "regex" | "code" | "minkey" | "maxkey" | "null" | "int32" |
 * "int64" | "double" | "array" | "document" | "string" | "boolean" |
 * "integer" | "float"; other Lua values give their Lua type name. */
static int
f_type (lua_State *L)
{
   codec_val_t *v;

   luaL_checkany (L, 1);
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
         lua_pushstring (L, kinds[v->kind].type);
         return 1;
      }
      break;
   default:
      break;
   }
   lua_pushstring (L, luaL_typename (L, 1));
   return 1;
}

/* ---- registration ----------------------------------------------------- */

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

static const luaL_Reg *const methods[CODEC_KIND_COUNT] = {
   [CODEC_OID] = oid_methods,       [CODEC_DATE] = date_methods,
   [CODEC_TIMESTAMP] = ts_methods,  [CODEC_DECIMAL128] = dec_methods,
   [CODEC_BINARY] = bin_methods,    [CODEC_REGEX] = re_methods,
   [CODEC_CODE] = code_methods,     [CODEC_MINKEY] = no_methods,
   [CODEC_MAXKEY] = no_methods,     [CODEC_NULL] = no_methods,
   [CODEC_INT32] = num_methods,     [CODEC_INT64] = num_methods,
   [CODEC_DOUBLE] = num_methods,
};

/* The metatable for kind, created once per Lua state (a second require of
 * the module reuses it, so values stay comparable). Leaves it on the stack. */
static void
open_kind (lua_State *L, int kind)
{
   codec_rawgetp (L, LUA_REGISTRYINDEX, &mt_keys[kind]);
   if (!lua_isnil (L, -1)) {
      return;
   }
   lua_pop (L, 1);
   luaL_newmetatable (L, kinds[kind].mt);
   lua_pushinteger (L, kind);
   codec_rawsetp (L, -2, &codec_tag_key);
   lua_pushstring (L, kinds[kind].mt);
   lua_setfield (L, -2, "__name");
   lua_newtable (L);
   luaL_setfuncs (L, methods[kind], 0);
   lua_setfield (L, -2, "__index");
   lua_pushcfunction (L, mm_tostring);
   lua_setfield (L, -2, "__tostring");
   lua_pushcfunction (L, mm_eq);
   lua_setfield (L, -2, "__eq");
   if (kind == CODEC_INT64 || kind == CODEC_INT32 || kind == CODEC_DATE) {
      lua_pushcfunction (L, mm_lt);
      lua_setfield (L, -2, "__lt");
      lua_pushcfunction (L, mm_le);
      lua_setfield (L, -2, "__le");
   }
   if (kind == CODEC_BINARY) {
      lua_pushcfunction (L, mm_len);
      lua_setfield (L, -2, "__len");
   }
   lua_pushboolean (L, 0);
   lua_setfield (L, -2, "__metatable");
   lua_pushvalue (L, -1);
   codec_rawsetp (L, LUA_REGISTRYINDEX, &mt_keys[kind]);
}

static void
open_singleton (lua_State *L, int module_idx, int kind, const void *key, const char *name)
{
   codec_rawgetp (L, LUA_REGISTRYINDEX, key);
   if (lua_isnil (L, -1)) {
      lua_pop (L, 1);
      codec_val_push (L, kind, 0);
      lua_pushvalue (L, -1);
      codec_rawsetp (L, LUA_REGISTRYINDEX, key);
   }
   lua_setfield (L, module_idx, name);
}

static void
open_table_mt (lua_State *L, int module_idx, const void *key, const char *field)
{
   codec_rawgetp (L, LUA_REGISTRYINDEX, key);
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
      }
      lua_pushvalue (L, -1);
      codec_rawsetp (L, LUA_REGISTRYINDEX, key);
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
   static const luaL_Reg funcs[] = {
      {"object_id", f_object_id}, {"date", f_date},       {"timestamp", f_timestamp},
      {"decimal128", f_decimal128}, {"binary", f_binary}, {"uuid", f_uuid},
      {"regex", f_regex},         {"code", f_code},       {"int32", f_int32},
      {"int64", f_int64},         {"double", f_double},   {"ordered", f_ordered},
      {"type", f_type},           {NULL, NULL},
   };
   int kind;

   module_idx = lua_absindex (L, module_idx);
   for (kind = 1; kind < CODEC_KIND_COUNT; kind++) {
      open_kind (L, kind);
      lua_pop (L, 1);
   }
   open_singleton (L, module_idx, CODEC_NULL, &codec_null_key, "null");
   open_singleton (L, module_idx, CODEC_MINKEY, &minkey_key, "minkey");
   open_singleton (L, module_idx, CODEC_MAXKEY, &maxkey_key, "maxkey");
   open_table_mt (L, module_idx, &codec_array_mt_key, "array_mt");
   open_table_mt (L, module_idx, &codec_ordered_mt_key, NULL);
   lua_pushvalue (L, module_idx);
   luaL_setfuncs (L, funcs, 0);
   lua_pop (L, 1);
}
