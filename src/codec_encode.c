/*
 * codec_encode.c - Lua values -> BSON, the mapping of DESIGN.md "Values".
 *
 * Encoding walks the Lua table with lua_next/lua_rawgeti and writes BSON
 * bytes itself (codec_write.h) into a growable buffer that is kept (per Lua
 * state) between calls, so a typical encode allocates nothing but its
 * result; libbson's generic append path was the top cost in callgrind. The
 * finished bytes go to the caller's bson_t with one bson_concat, or straight
 * into a Lua string. Per value it does no string lookups: typed values are
 * recognised by a private key in their metatable, array_mt and the ordered
 * metatable sit at fixed stack slots and are compared with lua_rawequal,
 * cycles are found in a small C stack of the tables being encoded. Every
 * failure leaves the output reset to an empty document and a path like
 * "doc.items[3].price: reason". __tobson runs under lua_pcall, so a raising
 * metamethod cannot leak the half-built buffer.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "codec_write.h"

static const char buf_key = 0;    /* registry: the cached box */
static const char buf_mt_key = 0; /* registry: its metatable */

enum { T_DOC, T_ARRAY, T_ORDERED };

static bool
enc_fail (enc_t *e, int depth, const char *fmt, ...)
{
   va_list ap;

   va_start (ap, fmt);
   codec_path_fail (e->err, "encode", e->pkey, e->plen, depth, fmt, ap);
   va_end (ap);
   return false;
}

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

static bool enc_value (enc_t *e, const char *k, int kl, int depth);

static CODEC_NOINLINE bool
key_slow_ok (enc_t *e, const char *k, size_t n, int depth)
{
   if (memchr (k, 0, n)) {
      return enc_fail (e, depth - 1, "key contains a NUL byte");
   }
   if (!codec_utf8_valid (k, n, false)) {
      return enc_fail (e, depth - 1, "key is not valid UTF-8");
   }
   return true;
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
      idx_key_t ik;
      idx_key_init (&ik);
      for (i = 1; i <= n; i++, idx_key_next (&ik)) {
         lua_rawgeti (L, idx, (lua_Integer) i);
         e->pkey[depth] = NULL;
         e->plen[depth] = i;
         if (!enc_value (e, ik.k, (int) ik.len, depth)) {
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
         k = lua_tolstring (L, -2, &kl); /* checked as it is written (w_elem) */
         if (depth == 1 && e->id_done && kl == 3 && memcmp (k, "_id", 3) == 0) {
            lua_pop (L, 1);
            continue;
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
   size_t mark = w->len, start, i = 0;
   idx_key_t ik;

   if (!w_elem (e, BSON_TYPE_ARRAY, k, (size_t) kl, 4, depth)) {
      return -1;
   }
   start = w->len - 4;
   idx_key_init (&ik);
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
      i++;
      e->pkey[depth + 1] = NULL;
      e->plen[depth + 1] = i;
      if (!enc_value (e, ik.k, (int) ik.len, depth + 1)) {
         return -1;
      }
      idx_key_next (&ik);
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
   /* a level holds 2 slots (key, value), a few more while it works: the
    * entry points reserve for the first levels, then every fourth checks */
   if ((depth & 3) == 0 && !lua_checkstack (L, 16)) {
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
   /* no metatable and no array part: a document (what classify would say) */
   mode = (tmt == TM_NONE && n == 0) ? T_DOC : classify (e, idx, depth, &n);
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
         xdbtx_rawgetp (L, -1, &codec_tag_key);
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
      /* NULL is the JSON null of lua-cjson and OpenResty (xdbtx.json_null) */
      if (lua_touserdata (L, -1) == NULL) {
         return w_elem (e, BSON_TYPE_NULL, k, (size_t) kl, 0, depth) != NULL;
      }
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

/* A buffer box; under Lua 5.4 its user values are the two metatables every
 * encode looks at (xdbtx.array_mt, the ordered one), so the cached box
 * brings them along for less than two registry lookups. */
static codec_buf_t *
buf_new (lua_State *L)
{
   codec_buf_t *w = (codec_buf_t *) lua_newuserdatauv (L, sizeof *w, 2);

   memset (w, 0, sizeof *w);
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &buf_mt_key);
   lua_setmetatable (L, -2);
#if LUA_VERSION_NUM >= 504
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_array_mt_key);
   lua_setiuservalue (L, -2, 1);
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_ordered_mt_key);
   lua_setiuservalue (L, -2, 2);
#endif
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
   e->id_done = false;
   if (!w || w->busy) {
      w = buf_new (L);
      box_idx = lua_gettop (L);
   }
#if LUA_VERSION_NUM >= 504
   lua_getiuservalue (L, box_idx, 1);
   e->array_mt = lua_gettop (L);
   lua_getiuservalue (L, box_idx, 2);
   e->ordered_mt = lua_gettop (L);
#else /* one user value (an environment table) under LuaJIT: the registry */
   (void) box_idx;
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_array_mt_key);
   e->array_mt = lua_gettop (L);
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_ordered_mt_key);
   e->ordered_mt = lua_gettop (L);
#endif
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
   /* a table's _id goes first, where the server keeps it: finding it (for
    * inserted_id, and libmongoc's own look for it) is then one step */
   if (mode == T_DOC) {
      lua_pushliteral (L, "_id");
      lua_rawget (L, idx);
      if (!lua_isnil (L, -1)) {
         e->pkey[1] = "_id";
         e->plen[1] = 3;
         if (!enc_value (e, "_id", 3, 1)) {
            return false;
         }
         e->id_done = true;
      }
      lua_pop (L, 1);
   }
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
   if (!lua_checkstack (L, 24)) {
      codec_error (err, "encode", "doc: Lua stack exhausted");
      bson_reinit (out);
      return false;
   }
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &buf_key);
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
   if (!codec_text_ok (key, (size_t) keylen, false)) {
      codec_error (err, "encode", "doc: key contains NUL or is not valid UTF-8");
      bson_reinit (out);
      return false;
   }
   if (!lua_checkstack (L, 24)) {
      codec_error (err, "encode", "doc: Lua stack exhausted");
      bson_reinit (out);
      return false;
   }
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &buf_key);
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
/* xdbtx.encode(t) -> BSON bytes */
static int
f_encode (lua_State *L)
{
   enc_t e;
   xdbtx_error_t err;
   bool ok;

   if (lua_isnone (L, 1)) {
      return codec_argerror (L, "xdbtx.encode", "expected a table, got no value");
   }
   lua_settop (L, 1);
   xdbtx_error_init (&err);
   if (!lua_checkstack (L, 24)) {
      return codec_raise (L, "encode", "doc: Lua stack exhausted");
   }
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
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_array_mt_key);
   e.array_mt = lua_gettop (L);
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_ordered_mt_key);
   e.ordered_mt = lua_gettop (L);
   mode = classify (&e, idx, 0, &n);
   lua_settop (L, top);
   return mode == T_ARRAY ? "array" : "document";
}

/* Register xdbtx.encode (a closure over the cached buffer box). */
void
codec_open_encode (lua_State *L, int module_idx)
{
   module_idx = lua_absindex (L, module_idx);
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &buf_mt_key);
   if (lua_isnil (L, -1)) {
      lua_pop (L, 1);
      lua_newtable (L);
      lua_pushcfunction (L, buf_gc);
      lua_setfield (L, -2, "__gc");
      lua_pushvalue (L, -1);
      xdbtx_rawsetp (L, LUA_REGISTRYINDEX, &buf_mt_key);
   }
   lua_pop (L, 1);
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &buf_key);
   if (lua_isnil (L, -1)) {
      lua_pop (L, 1);
      buf_new (L);
      lua_pushvalue (L, -1);
      xdbtx_rawsetp (L, LUA_REGISTRYINDEX, &buf_key);
   }
   lua_pushcclosure (L, f_encode, 1);
   lua_setfield (L, module_idx, "encode");
}
