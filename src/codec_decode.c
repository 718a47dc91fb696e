/*
 * codec_decode.c - BSON -> Lua values, the mapping of DESIGN.md "Values".
 *
 * The decoder parses the bytes itself with a bounds-checked element walker
 * (two cheap passes: count, then build, so tables are sized exactly),
 * validates UTF-8 and never trusts a length it did not check. Failures
 * push nothing and fill the error with a path ("doc.a[2]: reason").
 * Entry points: xdbtx_codec_push / xdbtx_codec_push_value for the C
 * binding, xdbtx.decode for Lua. Knows nothing of clients or sessions.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "codec.h"

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
   codec_path_fail (d->err, "decode", d->pkey, d->plen, depth, fmt, ap);
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
      if (!codec_text_ok (e.key, e.klen, false)) {
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

/* Set up d for XDBTX_DECODE_* flags; pushes 2 or 3 values. */
static void
dec_init (dec_t *d, lua_State *L, unsigned flags, xdbtx_error_t *err)
{
   d->L = L;
   d->err = err;
   codec_rawgetp (L, LUA_REGISTRYINDEX, &codec_array_mt_key);
   d->array_mt = lua_gettop (L);
   if (flags & XDBTX_DECODE_JSON_NULL) {
      lua_pushlightuserdata (L, NULL);
   } else {
      codec_push_singleton (L, CODEC_NULL);
   }
   d->null = lua_gettop (L);
   d->ordered_mt = 0;
   d->exact = (flags & XDBTX_DECODE_EXACT) != 0;
   if (flags & (XDBTX_DECODE_ORDERED | XDBTX_DECODE_EXACT)) {
      codec_rawgetp (L, LUA_REGISTRYINDEX, &codec_ordered_mt_key);
      d->ordered_mt = lua_gettop (L);
   }
}

/* Push the table decoded from data[0..len); on failure push nothing. */
static bool
decode_data (lua_State *L, const uint8_t *data, size_t len, unsigned flags, xdbtx_error_t *err)
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
   dec_init (&d, L, flags, err);
   if (!dec_table (&d, data, (uint32_t) len, false, 0)) {
      lua_settop (L, top);
      return false;
   }
   lua_replace (L, top + 1);
   lua_settop (L, top + 1);
   return true;
}

bool
xdbtx_codec_push_opts (lua_State *L, const bson_t *doc, unsigned flags, xdbtx_error_t *err)
{
   if (!doc) {
      codec_error (err, "decode", "doc: no document");
      return false;
   }
   return decode_data (L, bson_get_data (doc), doc->len, flags, err);
}

bool
xdbtx_codec_push (lua_State *L, const bson_t *doc, xdbtx_error_t *err)
{
   return xdbtx_codec_push_opts (L, doc, 0, err);
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
         dec_init (&d, L, 0, err);
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


unsigned
codec_decode_flags (lua_State *L, int idx, const char *fname)
{
   static const struct {
      const char *key;
      unsigned flag;
   } opts[] = {
      {"ordered", XDBTX_DECODE_ORDERED},
      {"exact", XDBTX_DECODE_EXACT},
      {"json_null", XDBTX_DECODE_JSON_NULL},
   };
   unsigned flags = 0;
   size_t i;

   if (lua_isnoneornil (L, idx)) {
      return 0;
   }
   idx = lua_absindex (L, idx);
   if (!lua_istable (L, idx)) {
      return (unsigned) codec_arg_expected (L, idx, fname, "an options table as argument 2");
   }
   lua_pushnil (L);
   while (lua_next (L, idx)) {
      const char *k = lua_type (L, -2) == LUA_TSTRING ? lua_tostring (L, -2) : NULL;
      for (i = 0; k && i < sizeof opts / sizeof opts[0]; i++) {
         if (strcmp (k, opts[i].key) == 0) {
            break;
         }
      }
      if (!k || i == sizeof opts / sizeof opts[0]) {
         char got[96];
         return (unsigned) codec_argerror (L, fname, "unknown option %s (expected ordered, exact, json_null)",
                                           codec_describe (L, -2, got, sizeof got));
      }
      if (lua_toboolean (L, -1)) {
         flags |= opts[i].flag;
      }
      lua_pop (L, 1);
   }
   return flags;
}

/* xdbtx.decode(bytes, opts?) -> table. opts.ordered: every document
 * decodes as an xdbtx.ordered value that keeps the key order. opts.exact:
 * ordered, and widths kept too (see dec_t.exact), so that
 * encode(decode(b, {exact = true})) == b byte for byte. opts.json_null:
 * null decodes as xdbtx.json_null (cjson.null, ngx.null). */
static int
f_decode (lua_State *L)
{
   size_t n;
   const char *s = codec_check_lstring (L, 1, &n, "xdbtx.decode", "a string of BSON bytes");
   unsigned flags = codec_decode_flags (L, 2, "xdbtx.decode");
   xdbtx_error_t err;

   xdbtx_error_init (&err);
   if (!decode_data (L, (const uint8_t *) s, n, flags, &err)) {
      return xdbtx_lua_raise (L, &err);
   }
   return 1;
}

/* Register xdbtx.decode. */
void
codec_open_decode (lua_State *L, int module_idx)
{
   module_idx = lua_absindex (L, module_idx);
   lua_pushcfunction (L, f_decode);
   lua_setfield (L, module_idx, "decode");
}
