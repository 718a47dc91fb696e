/*
 * codec.c - Lua values <-> BSON, the mapping of DESIGN.md "Values".
 *
 * Encoding walks the Lua table with lua_next/lua_rawgeti and writes BSON
 * bytes itself into a growable buffer that is kept (per Lua state) between
 * calls, so a typical encode allocates nothing but its result; libbson's
 * generic append path was the top cost in callgrind. The finished bytes go
 * to the caller's bson_t with one bson_concat, or straight into a Lua
 * string. Per value it does no string lookups: typed values are
 * recognised by a private key in their metatable, array_mt and the ordered
 * metatable sit at fixed stack slots and are compared with lua_rawequal,
 * cycles are found in a small C stack of the tables being encoded. Every
 * failure leaves the output reset to an empty document and a path like
 * "doc.items[3].price: reason". __tobson runs under lua_pcall, so a raising
 * metamethod cannot leak the half-built buffer.
 *
 * Decoding parses the bytes itself with a bounds-checked element walker
 * (two cheap passes: count, then build, so tables are sized exactly),
 * validates UTF-8 and never trusts a length it did not check.
 * This file knows nothing of clients or sessions.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* ---- encoding --------------------------------------------------------- */

#define CODEC_NOINLINE __attribute__ ((noinline))

/* The reusable output buffer: a userdata (freed by __gc), so an error
 * raised anywhere (only memory errors can be) leaks nothing. busy marks the
 * cached one in use; a nested encode (from __tobson) takes a fresh box. */
typedef struct {
   uint8_t *p;
   size_t len, cap;
   int busy;
} codec_buf_t;

static const char buf_key = 0;    /* registry: the cached box */
static const char buf_mt_key = 0; /* registry: its metatable */

typedef struct {
   lua_State *L;
   xdbtx_error_t *err;
   codec_buf_t *w;
   int array_mt;                               /* stack slot of array_mt */
   int ordered_mt;                             /* stack slot of the ordered metatable */
   const void *seen[CODEC_MAX_DEPTH + 2];      /* tables on the current path */
   const char *pkey[CODEC_MAX_DEPTH + 2];      /* path: key at each level, or NULL */
   size_t plen[CODEC_MAX_DEPTH + 2];           /* ... its length, or the 1-based index */
} enc_t;

enum { T_DOC, T_ARRAY, T_ORDERED };

/* "doc.a[2].b" for levels 1..depth */
static void
format_path (char *buf, size_t size, const char *const *keys, const size_t *lens, int depth)
{
   size_t n = 0;
   int d;

   n += (size_t) snprintf (buf, size, "doc");
   for (d = 1; d <= depth && n < size; d++) {
      if (keys[d]) {
         n += (size_t) snprintf (buf + n, size - n, ".%.*s", (int) (lens[d] > 80 ? 80 : lens[d]), keys[d]);
      } else {
         n += (size_t) snprintf (buf + n, size - n, "[%zu]", lens[d]);
      }
   }
}

static bool
enc_fail (enc_t *e, int depth, const char *fmt, ...) BSON_GNUC_PRINTF (3, 4);

/* Fill err with "<path>: <reason>" (the path up to `depth`); returns false. */
static bool
path_fail (xdbtx_error_t *err, const char *phase, const char *const *keys,
           const size_t *lens, int depth, const char *fmt, va_list ap)
{
   char path[384], reason[512];

   vsnprintf (reason, sizeof reason, fmt, ap);
   format_path (path, sizeof path, keys, lens, depth);
   codec_error (err, phase, "%s: %s", path, reason);
   return false;
}

static bool
enc_fail (enc_t *e, int depth, const char *fmt, ...)
{
   va_list ap;

   va_start (ap, fmt);
   path_fail (e->err, "encode", e->pkey, e->plen, depth, fmt, ap);
   va_end (ap);
   return false;
}

static bool enc_value (enc_t *e, const char *k, int kl, int depth);

/* ---- the writer: BSON bytes, little-endian ---- */

static bool
w_grow (enc_t *e, size_t need, int depth)
{
   codec_buf_t *w = e->w;
   size_t cap = w->cap ? w->cap : 1024;
   uint8_t *p;

   if (w->len + need > (size_t) CODEC_MAX_BYTES + 1) {
      return enc_fail (e, depth, "document is over the 16 MiB limit");
   }
   while (cap < w->len + need) {
      cap *= 2;
   }
   p = (uint8_t *) realloc (w->p, cap);
   if (!p) {
      return enc_fail (e, depth, "out of memory");
   }
   w->p = p;
   w->cap = cap;
   return true;
}

/* memcpy for the short keys and strings that dominate documents: an
 * inline loop beats a libc call below ~16 bytes. */
static inline void
copy_small (uint8_t *dst, const void *src, size_t n)
{
   const uint8_t *s = (const uint8_t *) src;

   if (n > 16) {
      memcpy (dst, s, n);
      return;
   }
   while (n--) {
      *dst++ = *s++;
   }
}

/* Reserve an element (type, key, vlen value bytes); return its value area. */
static inline uint8_t *
w_elem (enc_t *e, uint8_t type, const char *k, size_t kl, size_t vlen, int depth)
{
   codec_buf_t *w = e->w;
   size_t need = kl + 2 + vlen;
   uint8_t *p;

   if (w->len + need > w->cap && !w_grow (e, need, depth)) {
      return NULL;
   }
   p = w->p + w->len;
   w->len += need;
   p[0] = type;
   copy_small (p + 1, k, kl);
   p[kl + 1] = 0;
   return p + kl + 2;
}

static inline void
put32 (uint8_t *p, uint32_t v)
{
   v = BSON_UINT32_TO_LE (v);
   memcpy (p, &v, 4);
}

static inline void
put64 (uint8_t *p, uint64_t v)
{
   v = BSON_UINT64_TO_LE (v);
   memcpy (p, &v, 8);
}

static inline bool
w_int32 (enc_t *e, const char *k, size_t kl, int32_t v, int depth)
{
   uint8_t *p = w_elem (e, BSON_TYPE_INT32, k, kl, 4, depth);
   return p ? (put32 (p, (uint32_t) v), true) : false;
}

static inline bool
w_int64 (enc_t *e, uint8_t type, const char *k, size_t kl, int64_t v, int depth)
{
   uint8_t *p = w_elem (e, type, k, kl, 8, depth);
   return p ? (put64 (p, (uint64_t) v), true) : false;
}

static inline bool
w_double (enc_t *e, const char *k, size_t kl, double d, int depth)
{
   uint64_t u;
   uint8_t *p = w_elem (e, BSON_TYPE_DOUBLE, k, kl, 8, depth);

   if (!p) {
      return false;
   }
   memcpy (&u, &d, 8);
   put64 (p, u);
   return true;
}

/* string-like values: int32 length (with the NUL), bytes, NUL */
static inline bool
w_string (enc_t *e, uint8_t type, const char *k, size_t kl, const char *s, size_t n, int depth)
{
   uint8_t *p = w_elem (e, type, k, kl, n + 5, depth);

   if (!p) {
      return false;
   }
   put32 (p, (uint32_t) (n + 1));
   copy_small (p + 4, s, n);
   p[n + 4] = 0;
   return true;
}

static inline bool
w_bytes (enc_t *e, uint8_t type, const char *k, size_t kl, const void *v, size_t n, int depth)
{
   uint8_t *p = w_elem (e, type, k, kl, n, depth);

   if (!p) {
      return false;
   }
   memcpy (p, v, n);
   return true;
}

/* Close the document whose length word is at offset start. */
static inline bool
w_close (enc_t *e, size_t start, int depth)
{
   codec_buf_t *w = e->w;

   if (w->len + 1 > w->cap && !w_grow (e, 1, depth)) {
      return false;
   }
   w->p[w->len++] = 0;
   put32 (w->p + start, (uint32_t) (w->len - start));
   return true;
}

/* Validate a document key; NUL and invalid UTF-8 are refused. */
static inline bool
key_ok (const char *k, size_t n)
{
   return codec_text_ok (k, n, false);
}

static bool
bad_key (enc_t *e, int depth, const char *k, size_t n)
{
   if (memchr (k, 0, n)) {
      return enc_fail (e, depth, "key contains a NUL byte");
   }
   return enc_fail (e, depth, "key is not valid UTF-8");
}

/* Classify the table at idx (no __tobson): document, array of n, or an
 * error. Plain tables are arrays when their keys are exactly 1..n, n >= 1. */
static int
classify (enc_t *e, int idx, int depth, size_t *np)
{
   lua_State *L = e->L;
   bool marked = false;
   size_t n, count = 0;
   bool other = false, outside = false;

   if (lua_getmetatable (L, idx)) {
      if (lua_rawequal (L, -1, e->array_mt)) {
         marked = true;
      } else if (lua_rawequal (L, -1, e->ordered_mt)) {
         lua_pop (L, 1);
         *np = lua_rawlen (L, idx) / 2;
         return T_ORDERED;
      }
      lua_pop (L, 1);
   }
   n = lua_rawlen (L, idx);
   if (n == 0 && !marked) {
      return T_DOC;
   }
   lua_pushnil (L);
   while (lua_next (L, idx)) {
      lua_pop (L, 1);
      if (lua_type (L, -1) == LUA_TNUMBER) {
         lua_Number x = lua_tonumber (L, -1);
         if (x == floor (x)) {
            if (x >= 1 && x <= (lua_Number) n) {
               count++;
            } else {
               outside = true;
            }
            continue;
         }
      }
      other = true;
   }
   if (other) {
      return marked ? (enc_fail (e, depth, "array (array_mt) has keys other than 1..n"), -1)
                    : (enc_fail (e, depth, "table mixes array indexes and other keys"), -1);
   }
   if (outside || count != n) {
      enc_fail (e, depth, "array has holes (keys are not exactly 1..n)");
      return -1;
   }
   *np = n;
   return T_ARRAY;
}

/* Encode the fields of the table at idx into the open child c. */
static bool
enc_fields (enc_t *e, int idx, int mode, size_t n, int depth)
{
   lua_State *L = e->L;
   size_t i;

   if (mode == T_ARRAY) {
      char buf[16];
      const char *k;
      for (i = 1; i <= n; i++) {
         size_t kl = bson_uint32_to_string ((uint32_t) (i - 1), &k, buf, sizeof buf);
         lua_rawgeti (L, idx, (lua_Integer) i);
         e->pkey[depth] = NULL;
         e->plen[depth] = i;
         if (!enc_value (e, k, (int) kl, depth)) {
            return false;
         }
         lua_pop (L, 1);
      }
   } else if (mode == T_ORDERED) {
      for (i = 1; i <= n; i++) {
         size_t kl;
         const char *k;
         lua_rawgeti (L, idx, (lua_Integer) (2 * i - 1));
         if (lua_type (L, -1) != LUA_TSTRING) {
            return enc_fail (e, depth - 1, "ordered entry %zu has no string key", i);
         }
         k = lua_tolstring (L, -1, &kl);
         if (!key_ok (k, kl)) {
            return bad_key (e, depth - 1, k, kl);
         }
         lua_rawgeti (L, idx, (lua_Integer) (2 * i));
         e->pkey[depth] = k;
         e->plen[depth] = kl;
         if (!enc_value (e, k, (int) kl, depth)) {
            return false;
         }
         lua_pop (L, 2);
      }
   } else {
      lua_pushnil (L);
      while (lua_next (L, idx)) {
         size_t kl;
         const char *k;
         if (lua_type (L, -2) != LUA_TSTRING) {
            if (lua_type (L, -2) == LUA_TNUMBER) {
               /* converting the key in place is harmless: iteration stops here */
               return enc_fail (e, depth - 1, "non-string key %s in a document (arrays need keys 1..n)",
                                lua_tostring (L, -2));
            }
            return enc_fail (e, depth - 1, "non-string key (%s) in a document", luaL_typename (L, -2));
         }
         k = lua_tolstring (L, -2, &kl);
         if (!key_ok (k, kl)) {
            return bad_key (e, depth - 1, k, kl);
         }
         e->pkey[depth] = k;
         e->plen[depth] = kl;
         if (!enc_value (e, k, (int) kl, depth)) {
            return false;
         }
         lua_pop (L, 1);
      }
   }
   return true;
}

/* Replace the value at the top of the stack with what its __tobson returns.
 * 1: replaced, 0: there is no __tobson, -1: failed (err set). */
static CODEC_NOINLINE int
call_tobson (enc_t *e, int depth)
{
   lua_State *L = e->L;

   if (!luaL_getmetafield (L, -1, "__tobson")) {
      return 0;
   }
   lua_pushvalue (L, -2);
   if (lua_pcall (L, 1, 1, 0) != LUA_OK) {
      const char *msg = NULL;
      if (lua_type (L, -1) == LUA_TTABLE) {
         lua_getfield (L, -1, "message");
         msg = lua_tostring (L, -1);
      } else {
         msg = lua_tostring (L, -1);
      }
      enc_fail (e, depth, "__tobson failed: %s", msg ? msg : "(error object)");
      return -1;
   }
   lua_replace (L, -2);
   return 1;
}

/* The common case of an array, in one pass: a table whose lua_next order
 * is exactly 1..n (the array part) is written as it is walked. Returns 1
 * done, -1 failed (err set), 0 not such a table: nothing was written and
 * the caller takes the general path (classify, then encode). */
static CODEC_NOINLINE int
enc_array_fast (enc_t *e, int idx, size_t n, const char *k, int kl, int depth)
{
   lua_State *L = e->L;
   codec_buf_t *w = e->w;
   size_t mark = w->len, start, i = 0, ikl;
   char buf[16];
   const char *ik;

   if (!w_elem (e, BSON_TYPE_ARRAY, k, (size_t) kl, 4, depth)) {
      return -1;
   }
   start = w->len - 4;
   lua_pushnil (L);
   while (lua_next (L, idx)) {
#ifdef XDBTX_HAS_INTEGERS
      if (i >= n || !lua_isinteger (L, -2) || lua_tointeger (L, -2) != (lua_Integer) (i + 1)) {
#else
      if (i >= n || lua_type (L, -2) != LUA_TNUMBER || lua_tonumber (L, -2) != (lua_Number) (i + 1)) {
#endif
         lua_pop (L, 2);
         w->len = mark;
         return 0;
      }
      ikl = bson_uint32_to_string ((uint32_t) i, &ik, buf, sizeof buf);
      i++;
      e->pkey[depth + 1] = NULL;
      e->plen[depth + 1] = i;
      if (!enc_value (e, ik, (int) ikl, depth + 1)) {
         return -1;
      }
      lua_pop (L, 1);
   }
   if (i != n) {
      w->len = mark;
      return 0;
   }
   return w_close (e, start, depth) ? 1 : -1;
}

/* Append the table at the top of the stack under k as a document/array.
 * tmt: what enc_value saw of its metatable (TM_*). */
enum { TM_NONE, TM_ARRAY, TM_ORDERED, TM_OTHER };

/* not inlined: keeps enc_value, the per-value hot path, small */
static CODEC_NOINLINE bool
enc_table (enc_t *e, const char *k, int kl, int depth, int tmt)
{
   lua_State *L = e->L;
   int idx = lua_gettop (L), d, mode;
   const void *p = lua_topointer (L, idx);
   size_t n = 0, start;

   if (depth + 1 > CODEC_MAX_DEPTH) {
      return enc_fail (e, depth, "nesting deeper than %d levels", CODEC_MAX_DEPTH);
   }
   for (d = 1; d <= depth; d++) {
      if (e->seen[d] == p) {
         return enc_fail (e, depth, "cycle: the table contains itself");
      }
   }
   if (!lua_checkstack (L, 8)) {
      return enc_fail (e, depth, "Lua stack exhausted");
   }
   e->seen[depth + 1] = p;
   if (tmt != TM_ORDERED) {
      n = lua_rawlen (L, idx);
      if (n > 0 || tmt == TM_ARRAY) {
         int r = enc_array_fast (e, idx, n, k, kl, depth);
         if (r != 0) {
            return r > 0;
         }
      }
   }
   mode = classify (e, idx, depth, &n);
   if (mode < 0) {
      return false;
   }
   if (!w_elem (e, mode == T_ARRAY ? BSON_TYPE_ARRAY : BSON_TYPE_DOCUMENT, k, (size_t) kl, 4, depth)) {
      return false;
   }
   start = e->w->len - 4;
   return enc_fields (e, idx, mode, n, depth + 1) && w_close (e, start, depth);
}

static CODEC_NOINLINE bool
enc_typed (enc_t *e, const char *k, int kl, int depth, const codec_val_t *v)
{
   size_t n = (size_t) kl;
   uint8_t *p;

   switch (v->kind) {
   case CODEC_OID:
      return w_bytes (e, BSON_TYPE_OID, k, n, &v->u.oid, 12, depth);
   case CODEC_DATE:
      return w_int64 (e, BSON_TYPE_DATE_TIME, k, n, v->u.i64, depth);
   case CODEC_TIMESTAMP:
      return w_int64 (e, BSON_TYPE_TIMESTAMP, k, n,
                      (int64_t) ((uint64_t) v->u.ts.t << 32 | v->u.ts.i), depth);
   case CODEC_DECIMAL128:
      if (!(p = w_elem (e, BSON_TYPE_DECIMAL128, k, n, 16, depth))) {
         return false;
      }
      put64 (p, v->u.dec.low);
      put64 (p + 8, v->u.dec.high);
      return true;
   case CODEC_BINARY:
      if (v->subtype == BSON_SUBTYPE_BINARY_DEPRECATED) {
         /* subtype 2 carries its length twice */
         if (!(p = w_elem (e, BSON_TYPE_BINARY, k, n, v->len + 9, depth))) {
            return false;
         }
         put32 (p, v->len + 4);
         p[4] = v->subtype;
         put32 (p + 5, v->len);
         memcpy (p + 9, v->data, v->len);
         return true;
      }
      if (!(p = w_elem (e, BSON_TYPE_BINARY, k, n, v->len + 5, depth))) {
         return false;
      }
      put32 (p, v->len);
      p[4] = v->subtype;
      memcpy (p + 5, v->data, v->len);
      return true;
   case CODEC_REGEX:
      /* pattern NUL flags NUL, both stored that way */
      return w_bytes (e, BSON_TYPE_REGEX, k, n, v->data, v->len + v->len2 + 2, depth);
   case CODEC_CODE:
      return w_string (e, BSON_TYPE_CODE, k, n, v->data, v->len, depth);
   case CODEC_MINKEY:
      return w_elem (e, BSON_TYPE_MINKEY, k, n, 0, depth) != NULL;
   case CODEC_MAXKEY:
      return w_elem (e, BSON_TYPE_MAXKEY, k, n, 0, depth) != NULL;
   case CODEC_NULL:
      return w_elem (e, BSON_TYPE_NULL, k, n, 0, depth) != NULL;
   case CODEC_INT32:
      return w_int32 (e, k, n, v->u.i32, depth);
   case CODEC_INT64:
      return w_int64 (e, BSON_TYPE_INT64, k, n, v->u.i64, depth);
   case CODEC_DOUBLE:
      return w_double (e, k, n, v->u.d, depth);
   default:
      return enc_fail (e, depth, "unknown typed value");
   }
}

/* Append the value at the top of the stack (left there) under k. */
static bool
enc_value (enc_t *e, const char *k, int kl, int depth)
{
   lua_State *L = e->L;
   int hops = 0;

again:
   switch (lua_type (L, -1)) {
   case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring (L, -1, &n);
      if (!codec_text_ok (s, n, true)) {
         return enc_fail (e, depth, "string is not valid UTF-8");
      }
      if (n > CODEC_MAX_BYTES) {
         return enc_fail (e, depth, "string of %zu bytes is over the 16 MiB document limit", n);
      }
      return w_string (e, BSON_TYPE_UTF8, k, (size_t) kl, s, n, depth);
   }
   case LUA_TNUMBER: {
#ifdef XDBTX_HAS_INTEGERS
      if (lua_isinteger (L, -1)) {
         lua_Integer i = lua_tointeger (L, -1);
         return (i >= INT32_MIN && i <= INT32_MAX)
                   ? w_int32 (e, k, (size_t) kl, (int32_t) i, depth)
                   : w_int64 (e, BSON_TYPE_INT64, k, (size_t) kl, (int64_t) i, depth);
      }
      return w_double (e, k, (size_t) kl, (double) lua_tonumber (L, -1), depth);
#else
      /* LuaJIT: integral values up to 2^53 are integers (int32 when they
       * fit); -0.0, NaN, inf and fractions are doubles. */
      double x = (double) lua_tonumber (L, -1);
      if (x >= -9007199254740992.0 && x <= 9007199254740992.0 && x == floor (x) &&
          !(x == 0 && signbit (x))) {
         return (x >= -2147483648.0 && x <= 2147483647.0)
                   ? w_int32 (e, k, (size_t) kl, (int32_t) x, depth)
                   : w_int64 (e, BSON_TYPE_INT64, k, (size_t) kl, (int64_t) x, depth);
      }
      return w_double (e, k, (size_t) kl, x, depth);
#endif
   }
   case LUA_TBOOLEAN: {
      uint8_t *p = w_elem (e, BSON_TYPE_BOOL, k, (size_t) kl, 1, depth);
      return p ? (*p = (uint8_t) lua_toboolean (L, -1), true) : false;
   }
   case LUA_TTABLE: {
      int tmt = TM_NONE;
      if (lua_getmetatable (L, -1)) {
         tmt = lua_rawequal (L, -1, e->array_mt)     ? TM_ARRAY
               : lua_rawequal (L, -1, e->ordered_mt) ? TM_ORDERED
                                                     : TM_OTHER;
         lua_pop (L, 1);
         if (tmt == TM_OTHER) {
            int r = call_tobson (e, depth);
            if (r < 0) {
               return false;
            }
            if (r > 0) {
               if (++hops > 8) {
                  return enc_fail (e, depth, "__tobson keeps returning values with __tobson");
               }
               goto again;
            }
         }
      }
      return enc_table (e, k, kl, depth, tmt);
   }
   case LUA_TUSERDATA: {
      codec_val_t *v;
      int kind = 0;
      if (lua_getmetatable (L, -1)) {
         codec_rawgetp (L, -1, &codec_tag_key);
         kind = (int) lua_tointeger (L, -1);
         lua_pop (L, 2);
      }
      if (kind > 0) {
         v = (codec_val_t *) lua_touserdata (L, -1);
         return enc_typed (e, k, kl, depth, v);
      } else {
         int r = call_tobson (e, depth);
         if (r < 0) {
            return false;
         }
         if (r > 0) {
            if (++hops > 8) {
               return enc_fail (e, depth, "__tobson keeps returning values with __tobson");
            }
            goto again;
         }
         if (luaL_getmetafield (L, -1, "__name") && lua_type (L, -1) == LUA_TSTRING) {
            const char *name = lua_tostring (L, -1);
            return enc_fail (e, depth, "cannot encode a userdata of type %s", name);
         }
         return enc_fail (e, depth, "cannot encode a userdata");
      }
   }
   case LUA_TLIGHTUSERDATA:
      return enc_fail (e, depth, "cannot encode a light userdata");
   case LUA_TFUNCTION:
      return enc_fail (e, depth, "cannot encode a function");
   case LUA_TTHREAD:
      return enc_fail (e, depth, "cannot encode a thread");
   case LUA_TNIL:
      return enc_fail (e, depth, "cannot encode nil (use xdbtx.null)");
   default:
      return enc_fail (e, depth, "cannot encode a %s", luaL_typename (L, -1));
   }
}

static int
buf_gc (lua_State *L)
{
   codec_buf_t *w = (codec_buf_t *) lua_touserdata (L, 1);

   free (w->p);
   w->p = NULL;
   w->len = w->cap = 0;
   return 0;
}

static codec_buf_t *
buf_new (lua_State *L)
{
   codec_buf_t *w = (codec_buf_t *) lua_newuserdatauv (L, sizeof *w, 0);

   memset (w, 0, sizeof *w);
   codec_rawgetp (L, LUA_REGISTRYINDEX, &buf_mt_key);
   lua_setmetatable (L, -2);
   return w;
}

/* Set up e with the cached buffer box at box_idx (or a fresh box when that
 * one is in use by an outer encode). Pushes 2 or 3 values. */
static void
enc_init (enc_t *e, lua_State *L, int box_idx, xdbtx_error_t *err)
{
   codec_buf_t *w = (codec_buf_t *) lua_touserdata (L, box_idx);

   e->L = L;
   e->err = err;
   codec_rawgetp (L, LUA_REGISTRYINDEX, &codec_array_mt_key);
   e->array_mt = lua_gettop (L);
   codec_rawgetp (L, LUA_REGISTRYINDEX, &codec_ordered_mt_key);
   e->ordered_mt = lua_gettop (L);
   if (!w || w->busy) {
      w = buf_new (L);
   }
   w->busy = 1;
   w->len = 0;
   e->w = w;
}

/* Release the buffer: keep up to 1 MiB of it for the next encode. */
static void
enc_done (enc_t *e)
{
   codec_buf_t *w = e->w;

   w->busy = 0;
   w->len = 0;
   if (w->cap > 1024 * 1024) {
      free (w->p);
      w->p = NULL;
      w->cap = 0;
   }
}

static bool
enc_check_size (enc_t *e)
{
   if (e->w->len > CODEC_MAX_BYTES) {
      return enc_fail (e, 0, "document of %zu bytes is over the 16 MiB limit", e->w->len);
   }
   return true;
}

/* The top-level document at idx into e->w. */
static bool
enc_top (enc_t *e, int idx)
{
   lua_State *L = e->L;
   int mode, hops = 0;
   size_t n = 0;

   lua_pushvalue (L, idx);
   for (;;) {
      int r;
      if (lua_type (L, -1) != LUA_TTABLE && lua_type (L, -1) != LUA_TUSERDATA) {
         return enc_fail (e, 0, "expected a table, got %s", luaL_typename (L, -1));
      }
      if (lua_type (L, -1) == LUA_TTABLE) {
         if (!lua_getmetatable (L, -1)) {
            break;
         }
         if (lua_rawequal (L, -1, e->array_mt) || lua_rawequal (L, -1, e->ordered_mt)) {
            lua_pop (L, 1);
            break;
         }
         lua_pop (L, 1);
      } else if (codec_val_test (L, -1)) {
         return enc_fail (e, 0, "expected a table, got %s", luaL_typename (L, -1));
      }
      r = call_tobson (e, 0);
      if (r < 0) {
         return false;
      }
      if (r == 0) {
         if (lua_type (L, -1) != LUA_TTABLE) {
            return enc_fail (e, 0, "cannot encode a userdata as a document");
         }
         break;
      }
      if (++hops > 8) {
         return enc_fail (e, 0, "__tobson keeps returning values with __tobson");
      }
   }
   idx = lua_gettop (L);
   mode = classify (e, idx, 0, &n);
   if (mode < 0) {
      return false;
   }
   if (mode == T_ARRAY) {
      return enc_fail (e, 0, "expected a document, got an array");
   }
   e->seen[1] = lua_topointer (L, idx);
   if (e->w->cap < 5 && !w_grow (e, 5, 0)) {
      return false;
   }
   e->w->len = 4;
   return enc_fields (e, idx, mode, n, 1) && w_close (e, 0, 0) && enc_check_size (e);
}

/* Concatenate the finished document in e->w into out. */
static bool
enc_output (enc_t *e, bson_t *out)
{
   bson_t tmp;

   if (!bson_init_static (&tmp, e->w->p, e->w->len) || !bson_concat (out, &tmp)) {
      return enc_fail (e, 0, "document too large");
   }
   return true;
}

bool
xdbtx_codec_encode (lua_State *L, int idx, bson_t *out, xdbtx_error_t *err)
{
   enc_t e;
   int top = lua_gettop (L);
   bool ok;

   idx = lua_absindex (L, idx);
   if (!lua_checkstack (L, 16)) {
      codec_error (err, "encode", "doc: Lua stack exhausted");
      bson_reinit (out);
      return false;
   }
   codec_rawgetp (L, LUA_REGISTRYINDEX, &buf_key);
   enc_init (&e, L, top + 1, err);
   ok = enc_top (&e, idx) && enc_output (&e, out);
   enc_done (&e);
   lua_settop (L, top);
   if (!ok) {
      bson_reinit (out);
   }
   return ok;
}

bool
xdbtx_codec_append (lua_State *L, int idx, bson_t *out, const char *key, int keylen,
                    xdbtx_error_t *err)
{
   enc_t e;
   int top = lua_gettop (L);
   bool ok;

   idx = lua_absindex (L, idx);
   if (keylen < 0) {
      keylen = (int) strlen (key);
   }
   if (!key_ok (key, (size_t) keylen)) {
      codec_error (err, "encode", "doc: key contains NUL or is not valid UTF-8");
      bson_reinit (out);
      return false;
   }
   if (!lua_checkstack (L, 16)) {
      codec_error (err, "encode", "doc: Lua stack exhausted");
      bson_reinit (out);
      return false;
   }
   codec_rawgetp (L, LUA_REGISTRYINDEX, &buf_key);
   enc_init (&e, L, top + 1, err);
   e.pkey[1] = key;
   e.plen[1] = (size_t) keylen;
   e.seen[1] = NULL;
   lua_pushvalue (L, idx);
   ok = (e.w->cap >= 5 || w_grow (&e, 5, 0));
   if (ok) {
      e.w->len = 4;
      ok = enc_value (&e, key, keylen, 1) && w_close (&e, 0, 0) && enc_check_size (&e) &&
           enc_output (&e, out);
   }
   enc_done (&e);
   lua_settop (L, top);
   if (!ok) {
      bson_reinit (out);
   }
   return ok;
}

/* ---- decoding --------------------------------------------------------- */

/* The decoder parses BSON itself, one bounds-checked element at a time
 * (libbson's bson_iter re-validated every element on both of our passes
 * and was the top cost). next_elem never reads outside [p, end). */

typedef struct {
   lua_State *L;
   xdbtx_error_t *err;
   int array_mt;
   int null;
   int ordered_mt; /* 0, or the slot of the ordered metatable: documents
                      then decode as xdbtx.ordered values, keeping key order */
   bool exact;     /* also keep widths: int64 that fits int32 -> xdbtx.Int64;
                      under LuaJIT, doubles a number would not re-encode as
                      (integral, NaN bits) -> xdbtx.Double */
   const uint8_t *base; /* start of the top-level document, for offsets */
   const char *pkey[CODEC_DECODE_MAX_DEPTH + 2];
   size_t plen[CODEC_DECODE_MAX_DEPTH + 2];
} dec_t;

typedef struct {
   uint8_t type;
   uint8_t subtype;   /* binary */
   const char *key;
   size_t klen;
   const uint8_t *val; /* value bytes (string: the characters) */
   uint32_t vlen;      /* string/code/binary length; document: total size */
} elem_t;

static inline uint32_t
get32 (const uint8_t *p)
{
   uint32_t v;

   memcpy (&v, p, 4);
   return BSON_UINT32_FROM_LE (v);
}

static inline uint64_t
get64 (const uint8_t *p)
{
   uint64_t v;

   memcpy (&v, p, 8);
   return BSON_UINT64_FROM_LE (v);
}

/* Parse the element at p (its type byte), which must end at or before end
 * (the document's closing NUL). Returns the byte after it, or NULL. */
static const uint8_t *
next_elem (const uint8_t *p, const uint8_t *end, elem_t *e)
{
   const uint8_t *z;
   size_t rem, fixed;
   uint32_t l;

   e->type = *p++;
   z = (const uint8_t *) memchr (p, 0, (size_t) (end - p));
   if (!z) {
      return NULL;
   }
   e->key = (const char *) p;
   e->klen = (size_t) (z - p);
   p = z + 1;
   rem = (size_t) (end - p);
   e->val = p;
   switch (e->type) {
   case BSON_TYPE_UNDEFINED:
   case BSON_TYPE_NULL:
   case BSON_TYPE_MINKEY:
   case BSON_TYPE_MAXKEY:
      return p;
   case BSON_TYPE_BOOL:
      return (rem >= 1 && p[0] <= 1) ? p + 1 : NULL;
   case BSON_TYPE_INT32:
      fixed = 4;
      break;
   case BSON_TYPE_DOUBLE:
   case BSON_TYPE_DATE_TIME:
   case BSON_TYPE_TIMESTAMP:
   case BSON_TYPE_INT64:
      fixed = 8;
      break;
   case BSON_TYPE_OID:
      fixed = 12;
      break;
   case BSON_TYPE_DECIMAL128:
      fixed = 16;
      break;
   case BSON_TYPE_UTF8:
   case BSON_TYPE_CODE:
   case BSON_TYPE_SYMBOL:
      if (rem < 5) {
         return NULL;
      }
      l = get32 (p);
      if (l < 1 || l > rem - 4 || p[4 + l - 1] != 0) {
         return NULL;
      }
      e->val = p + 4;
      e->vlen = l - 1;
      return p + 4 + l;
   case BSON_TYPE_DOCUMENT:
   case BSON_TYPE_ARRAY:
      if (rem < 5) {
         return NULL;
      }
      l = get32 (p);
      if (l < 5 || l > rem || p[l - 1] != 0) {
         return NULL;
      }
      e->vlen = l;
      return p + l;
   case BSON_TYPE_BINARY:
      if (rem < 5) {
         return NULL;
      }
      l = get32 (p);
      if (l > INT32_MAX || l > rem - 5) {
         return NULL;
      }
      e->subtype = p[4];
      if (e->subtype == BSON_SUBTYPE_BINARY_DEPRECATED) {
         if (l < 4 || get32 (p + 5) != l - 4) {
            return NULL;
         }
         e->val = p + 9;
         e->vlen = l - 4;
      } else {
         e->val = p + 5;
         e->vlen = l;
      }
      return p + 5 + l;
   case BSON_TYPE_REGEX:
      z = (const uint8_t *) memchr (p, 0, rem);
      if (!z || z + 1 >= end) {
         return NULL;
      }
      z = (const uint8_t *) memchr (z + 1, 0, (size_t) (end - (z + 1)));
      return z ? z + 1 : NULL;
   case BSON_TYPE_DBPOINTER:
      if (rem < 4) {
         return NULL;
      }
      l = get32 (p);
      return (l >= 1 && l <= rem && rem - 4 >= (size_t) l + 12) ? p + 4 + l + 12 : NULL;
   case BSON_TYPE_CODEWSCOPE:
      if (rem < 4) {
         return NULL;
      }
      l = get32 (p);
      return (l >= 14 && l <= rem) ? p + l : NULL;
   default:
      return NULL;
   }
   return rem >= fixed ? p + fixed : NULL;
}

static bool
dec_fail (dec_t *d, int depth, const char *fmt, ...) BSON_GNUC_PRINTF (3, 4);

static bool
dec_fail (dec_t *d, int depth, const char *fmt, ...)
{
   va_list ap;

   va_start (ap, fmt);
   path_fail (d->err, "decode", d->pkey, d->plen, depth, fmt, ap);
   va_end (ap);
   return false;
}

static bool dec_table (dec_t *d, const uint8_t *data, uint32_t len, bool array, int depth);

/* Push the value of e (an element of a level-`depth` container). */
static bool
dec_value (dec_t *d, const elem_t *e, int depth)
{
   lua_State *L = d->L;
   codec_val_t *v;
   const uint8_t *p = e->val;

   switch (e->type) {
   case BSON_TYPE_DOUBLE: {
      uint64_t u = get64 (p);
      double x;
      memcpy (&x, &u, 8);
#ifndef XDBTX_HAS_INTEGERS
      if (d->exact && (x != x || (x == floor (x) && fabs (x) <= 9007199254740992.0 &&
                                  !(x == 0 && signbit (x))))) {
         codec_val_push (L, CODEC_DOUBLE, 0)->u.d = x;
         return true;
      }
#endif
      lua_pushnumber (L, (lua_Number) x);
      return true;
   }
   case BSON_TYPE_UTF8:
   case BSON_TYPE_SYMBOL:
      if (!codec_text_ok ((const char *) p, e->vlen, true)) {
         return dec_fail (d, depth, "string is not valid UTF-8");
      }
      lua_pushlstring (L, (const char *) p, e->vlen);
      return true;
   case BSON_TYPE_DOCUMENT:
      return dec_table (d, p, e->vlen, false, depth);
   case BSON_TYPE_ARRAY:
      return dec_table (d, p, e->vlen, true, depth);
   case BSON_TYPE_BINARY:
      v = codec_val_push (L, CODEC_BINARY, e->vlen);
      v->len = e->vlen;
      v->subtype = e->subtype;
      if (e->vlen) {
         memcpy (v->data, p, e->vlen);
      }
      return true;
   case BSON_TYPE_UNDEFINED:
   case BSON_TYPE_NULL:
      lua_pushvalue (L, d->null);
      return true;
   case BSON_TYPE_OID:
      v = codec_val_push (L, CODEC_OID, 0);
      memcpy (&v->u.oid, p, 12);
      return true;
   case BSON_TYPE_BOOL:
      lua_pushboolean (L, p[0]);
      return true;
   case BSON_TYPE_DATE_TIME:
      codec_val_push (L, CODEC_DATE, 0)->u.i64 = (int64_t) get64 (p);
      return true;
   case BSON_TYPE_REGEX: {
      const char *s = (const char *) p, *opts;
      size_t pn = strlen (s), on;
      opts = s + pn + 1;
      on = strlen (opts);
      if (!codec_utf8_valid (s, pn, false) || !codec_utf8_valid (opts, on, false)) {
         return dec_fail (d, depth, "regex is not valid UTF-8");
      }
      v = codec_val_push (L, CODEC_REGEX, pn + on + 2);
      v->len = (uint32_t) pn;
      v->len2 = (uint32_t) on;
      memcpy (v->data, s, pn + on + 2);
      return true;
   }
   case BSON_TYPE_CODE:
      if (!codec_utf8_valid ((const char *) p, e->vlen, false)) {
         return dec_fail (d, depth, "code is not valid UTF-8 or contains NUL");
      }
      v = codec_val_push (L, CODEC_CODE, e->vlen + 1);
      v->len = e->vlen;
      memcpy (v->data, p, e->vlen);
      v->data[e->vlen] = 0;
      return true;
   case BSON_TYPE_INT32:
      lua_pushinteger (L, (int32_t) get32 (p));
      return true;
   case BSON_TYPE_TIMESTAMP: {
      uint64_t u = get64 (p);
      v = codec_val_push (L, CODEC_TIMESTAMP, 0);
      v->u.ts.t = (uint32_t) (u >> 32);
      v->u.ts.i = (uint32_t) u;
      return true;
   }
   case BSON_TYPE_INT64: {
      int64_t i = (int64_t) get64 (p);
      if (d->exact && i >= INT32_MIN && i <= INT32_MAX) {
         codec_val_push (L, CODEC_INT64, 0)->u.i64 = i;
      } else {
         codec_push_int64 (L, i);
      }
      return true;
   }
   case BSON_TYPE_DECIMAL128:
      v = codec_val_push (L, CODEC_DECIMAL128, 0);
      v->u.dec.low = get64 (p);
      v->u.dec.high = get64 (p + 8);
      return true;
   case BSON_TYPE_MINKEY:
      codec_push_singleton (L, CODEC_MINKEY);
      return true;
   case BSON_TYPE_MAXKEY:
      codec_push_singleton (L, CODEC_MAXKEY);
      return true;
   case BSON_TYPE_DBPOINTER:
      return dec_fail (d, depth, "unsupported BSON type DBPointer (0x0C)");
   case BSON_TYPE_CODEWSCOPE:
      return dec_fail (d, depth, "unsupported BSON type code with scope (0x0F)");
   default:
      return dec_fail (d, depth, "unknown BSON type 0x%02x", (unsigned) e->type);
   }
}

/* Push the table for the document/array at data[0..len) (len and the
 * closing NUL already checked by the caller); depth: its parent level. */
static bool
dec_table (dec_t *d, const uint8_t *data, uint32_t len, bool array, int depth)
{
   lua_State *L = d->L;
   const uint8_t *p, *end = data + len - 1;
   elem_t e;
   int n = 0, i = 0, level = depth + 1;

   if (level > CODEC_DECODE_MAX_DEPTH) {
      return dec_fail (d, depth, "nesting deeper than %d levels", CODEC_DECODE_MAX_DEPTH);
   }
   for (p = data + 4; p < end; n++) {
      p = next_elem (p, end, &e);
      if (!p) {
         return dec_fail (d, depth, "corrupt BSON in the element after #%d", n);
      }
   }
   if (!lua_checkstack (L, 6)) {
      return dec_fail (d, depth, "Lua stack exhausted");
   }
   if (array) {
      lua_createtable (L, n, 0);
      for (p = data + 4; p < end;) {
         p = next_elem (p, end, &e);
         d->pkey[level] = NULL;
         d->plen[level] = (size_t) ++i;
         if (!dec_value (d, &e, level)) {
            return false;
         }
         lua_rawseti (L, -2, i);
      }
      lua_pushvalue (L, d->array_mt);
      lua_setmetatable (L, -2);
      return true;
   }
   if (d->ordered_mt) {
      lua_createtable (L, 2 * n, 0);
   } else {
      lua_createtable (L, 0, n);
   }
   for (p = data + 4; p < end;) {
      p = next_elem (p, end, &e);
      if (!key_ok (e.key, e.klen)) {
         return dec_fail (d, level - 1, "key is not valid UTF-8");
      }
      d->pkey[level] = e.key;
      d->plen[level] = e.klen;
      lua_pushlstring (L, e.key, e.klen);
      if (!dec_value (d, &e, level)) {
         return false;
      }
      if (d->ordered_mt) {
         lua_rawseti (L, -3, 2 * i + 2);
         lua_rawseti (L, -2, 2 * i + 1);
         i++;
      } else {
         lua_rawset (L, -3);
      }
   }
   if (d->ordered_mt) {
      lua_pushvalue (L, d->ordered_mt);
      lua_setmetatable (L, -2);
   }
   return true;
}

static void
dec_init (dec_t *d, lua_State *L, xdbtx_error_t *err)
{
   d->L = L;
   d->err = err;
   codec_rawgetp (L, LUA_REGISTRYINDEX, &codec_array_mt_key);
   d->array_mt = lua_gettop (L);
   codec_push_singleton (L, CODEC_NULL);
   d->null = lua_gettop (L);
   d->ordered_mt = 0;
   d->exact = false;
}

/* Push the table decoded from data[0..len); on failure push nothing. */
static bool
decode_data (lua_State *L, const uint8_t *data, size_t len, int mode, xdbtx_error_t *err)
{
   dec_t d;
   int top = lua_gettop (L);

   if (!lua_checkstack (L, 16)) {
      codec_error (err, "decode", "doc: Lua stack exhausted");
      return false;
   }
   if (len < 5 || len > INT32_MAX || get32 (data) != len || data[len - 1] != 0) {
      codec_error (err, "decode", "doc: corrupt BSON (%zu bytes, bad length or terminator)", len);
      return false;
   }
   dec_init (&d, L, err);
   if (mode) {
      codec_rawgetp (L, LUA_REGISTRYINDEX, &codec_ordered_mt_key);
      d.ordered_mt = lua_gettop (L);
      d.exact = mode > 1;
   }
   if (!dec_table (&d, data, (uint32_t) len, false, 0)) {
      lua_settop (L, top);
      return false;
   }
   lua_replace (L, top + 1);
   lua_settop (L, top + 1);
   return true;
}

bool
xdbtx_codec_push (lua_State *L, const bson_t *doc, xdbtx_error_t *err)
{
   if (!doc) {
      codec_error (err, "decode", "doc: no document");
      return false;
   }
   return decode_data (L, bson_get_data (doc), doc->len, 0, err);
}

bool
xdbtx_codec_push_value (lua_State *L, const bson_value_t *v, xdbtx_error_t *err)
{
   bson_t tmp;
   dec_t d;
   elem_t e;
   const uint8_t *data;
   int top = lua_gettop (L);
   bool ok = false;

   bson_init (&tmp);
   if (!lua_checkstack (L, 16)) {
      codec_error (err, "decode", "doc: Lua stack exhausted");
   } else if (!bson_append_value (&tmp, "v", 1, v)) {
      codec_error (err, "decode", "doc: cannot decode this value");
   } else {
      data = bson_get_data (&tmp);
      if (!next_elem (data + 4, data + tmp.len - 1, &e)) {
         codec_error (err, "decode", "doc: corrupt value");
      } else {
         dec_init (&d, L, err);
         ok = dec_value (&d, &e, 0);
      }
   }
   bson_destroy (&tmp);
   if (ok) {
      lua_replace (L, top + 1);
      lua_settop (L, top + 1);
   } else {
      lua_settop (L, top);
   }
   return ok;
}

/* ---- Lua functions ---------------------------------------------------- */

/* xdbtx.encode(t) -> BSON bytes */
static int
f_encode (lua_State *L)
{
   enc_t e;
   xdbtx_error_t err;
   bool ok;

   luaL_checkany (L, 1);
   lua_settop (L, 1);
   xdbtx_error_init (&err);
   enc_init (&e, L, lua_upvalueindex (1), &err);
   ok = enc_top (&e, 1);
   if (ok) {
      lua_pushlstring (L, (const char *) e.w->p, e.w->len);
   }
   enc_done (&e);
   if (!ok) {
      return xdbtx_lua_raise (L, &err);
   }
   return 1;
}

/* xdbtx.decode(bytes, opts?) -> table. opts.ordered: every document
 * decodes as an xdbtx.ordered value that keeps the key order. opts.exact:
 * ordered, and widths kept too (see dec_t.exact), so that
 * encode(decode(b, {exact = true})) == b byte for byte. */
static int
f_decode (lua_State *L)
{
   size_t n;
   const char *s = luaL_checklstring (L, 1, &n);
   xdbtx_error_t err;
   int mode = 0;

   if (!lua_isnoneornil (L, 2)) {
      luaL_checktype (L, 2, LUA_TTABLE);
      lua_getfield (L, 2, "ordered");
      mode = lua_toboolean (L, -1) ? 1 : 0;
      lua_getfield (L, 2, "exact");
      mode = lua_toboolean (L, -1) ? 2 : mode;
      lua_pop (L, 2);
   }
   xdbtx_error_init (&err);
   if (!decode_data (L, (const uint8_t *) s, n, mode, &err)) {
      return xdbtx_lua_raise (L, &err);
   }
   return 1;
}

/* xdbtx.to_json(v, {mode = "relaxed" | "canonical"}) -> MongoDB Extended
 * JSON. A document gives an object; any other value is written as it would
 * appear inside one (an array gives [...], a string "...", and so on). */
static int
f_to_json (lua_State *L)
{
   bson_t b;
   xdbtx_error_t err;
   bool canonical = false, doc, ok;
   char *json;
   size_t len;

   luaL_checkany (L, 1);
   if (!lua_isnoneornil (L, 2)) {
      const char *mode;
      luaL_checktype (L, 2, LUA_TTABLE);
      lua_getfield (L, 2, "mode");
      mode = luaL_optstring (L, -1, "relaxed");
      if (strcmp (mode, "canonical") == 0) {
         canonical = true;
      } else if (strcmp (mode, "relaxed") != 0) {
         return codec_raise (L, "encode", "to_json: mode must be \"relaxed\" or \"canonical\", got \"%s\"", mode);
      }
      lua_pop (L, 1);
   }
   doc = lua_type (L, 1) == LUA_TTABLE && strcmp (codec_table_kind (L, 1), "document") == 0;
   xdbtx_error_init (&err);
   bson_init (&b);
   ok = doc ? xdbtx_codec_encode (L, 1, &b, &err) : xdbtx_codec_append (L, 1, &b, "v", 1, &err);
   if (!ok) {
      bson_destroy (&b);
      return xdbtx_lua_raise (L, &err);
   }
   json = canonical ? bson_as_canonical_extended_json (&b, &len)
                    : bson_as_relaxed_extended_json (&b, &len);
   bson_destroy (&b);
   if (!json) {
      return codec_raise (L, "encode", "to_json: libbson could not convert the value");
   }
   if (doc) {
      lua_pushlstring (L, json, len);
   } else if (len > 11 && strncmp (json, "{ \"v\" : ", 8) == 0) {
      lua_pushlstring (L, json + 8, len - 10); /* strip { "v" : ... } */
   } else {
      lua_pushlstring (L, json, len);
   }
   bson_free (json);
   return 1;
}

/* xdbtx.from_json(s) -> value (a document gives a table; "[...]" an array,
 * any other JSON value that value) */
static int
f_from_json (lua_State *L)
{
   size_t n, i = 0;
   const char *s = luaL_checklstring (L, 1, &n);
   bson_error_t error;
   bson_t b;
   xdbtx_error_t err;
   bool wrapped;

   while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
      i++;
   }
   wrapped = i == n || s[i] != '{';
   if (wrapped) {
      lua_pushliteral (L, "{\"v\":");
      lua_pushvalue (L, 1);
      lua_pushliteral (L, "}");
      lua_concat (L, 3);
      s = lua_tolstring (L, -1, &n);
   }
   if (!bson_init_from_json (&b, s, (ssize_t) n, &error)) {
      return codec_raise (L, "decode", "from_json: %s", error.message);
   }
   xdbtx_error_init (&err);
   if (!xdbtx_codec_push (L, &b, &err)) {
      bson_destroy (&b);
      return xdbtx_lua_raise (L, &err);
   }
   bson_destroy (&b);
   if (wrapped) {
      lua_getfield (L, -1, "v");
   }
   return 1;
}

const char *
codec_table_kind (lua_State *L, int idx)
{
   enc_t e;
   xdbtx_error_t err;
   size_t n;
   int top = lua_gettop (L), mode;

   idx = lua_absindex (L, idx);
   xdbtx_error_init (&err);
   e.L = L;
   e.err = &err;
   codec_rawgetp (L, LUA_REGISTRYINDEX, &codec_array_mt_key);
   e.array_mt = lua_gettop (L);
   codec_rawgetp (L, LUA_REGISTRYINDEX, &codec_ordered_mt_key);
   e.ordered_mt = lua_gettop (L);
   mode = classify (&e, idx, 0, &n);
   lua_settop (L, top);
   return mode == T_ARRAY ? "array" : "document";
}

void
xdbtx_codec_open (lua_State *L, int module_idx)
{
   static const luaL_Reg funcs[] = {
      {"decode", f_decode},
      {"to_json", f_to_json},
      {"from_json", f_from_json},
      {NULL, NULL},
   };

   module_idx = lua_absindex (L, module_idx);
   codec_open_types (L, module_idx);
   lua_pushvalue (L, module_idx);
   luaL_setfuncs (L, funcs, 0);
   lua_pop (L, 1);
   codec_rawgetp (L, LUA_REGISTRYINDEX, &buf_mt_key);
   if (lua_isnil (L, -1)) {
      lua_pop (L, 1);
      lua_newtable (L);
      lua_pushcfunction (L, buf_gc);
      lua_setfield (L, -2, "__gc");
      lua_pushvalue (L, -1);
      codec_rawsetp (L, LUA_REGISTRYINDEX, &buf_mt_key);
   }
   lua_pop (L, 1);
   codec_rawgetp (L, LUA_REGISTRYINDEX, &buf_key);
   if (lua_isnil (L, -1)) {
      lua_pop (L, 1);
      buf_new (L);
      lua_pushvalue (L, -1);
      codec_rawsetp (L, LUA_REGISTRYINDEX, &buf_key);
   }
   lua_pushcclosure (L, f_encode, 1);
   lua_setfield (L, module_idx, "encode");
}
