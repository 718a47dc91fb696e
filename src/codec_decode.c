/*
 * codec_decode.c - BSON -> Lua values, the mapping of DESIGN.md "Values".
 *
 * The decoder parses the bytes itself with a bounds-checked element walker
 * and never trusts a length it did not check. Each level is walked once to
 * count its elements (so tables are sized exactly) and the elements found
 * are kept in an arena (per Lua state, not the C stack: nesting reaches
 * 200 levels), so building the table parses nothing again; only levels
 * beyond the arena's cap are walked twice. The key scan marks plain ASCII
 * keys, which then skip UTF-8 validation. Failures push nothing and fill
 * the error with a path ("doc.a[2]: reason").
 * Entry points: xdbtx_codec_push / xdbtx_codec_push_value for the C
 * binding, xdbtx.decode for Lua. Knows nothing of clients or sessions.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "codec_read.h"

/* The element arena holds the elements of the levels on the current path,
 * from each level's counting walk, for its building pass. The string cache
 * serves field names and short strings that repeat (in arrays of documents,
 * and from one reply to the next) for less than Lua's interning: sets of
 * two entries (a string hashes to set h, entries 2h and 2h + 1; a new one
 * replaces them in turn), entry i describing the string kept at index
 * i + 1 of the box's first user value (a table, so the string stays alive
 * and p stays valid); strings of up to 8 bytes compare as one word, never
 * touching the Lua string. Both live in one
 * userdata per Lua state (freed by __gc), busy while a decode uses it: a
 * decode nested in a finalizer runs without them (max 0: every level
 * walked twice, no cache). A memory error raised inside a decode leaves it
 * busy, which costs speed, never correctness. */
#define STR_CACHE_LEN 40 /* longest string cached (Lua's short strings) */

typedef struct {
   const char *p; /* the bytes of the cached Lua string, or NULL */
   uint64_t w;    /* their first word (first_word) */
   uint32_t len;
} dec_str_t;

typedef struct {
   elem_t *el;
   size_t cap; /* allocated elements */
   size_t max; /* growth limit */
   int busy;
   dec_str_t sc[2 * STR_CACHE];
   uint8_t victim[STR_CACHE];
} dec_arena_t;

#define ARENA_FIRST 256 /* elements allocated at first use */
#define ARENA_MAX 65536 /* 2 MiB: beyond, levels are walked twice */
#define ARENA_KEEP 4096 /* kept between decodes (128 KiB) */

static const char arena_key = 0; /* registry: the cached arena box */

typedef struct {
   lua_State *L;
   xdbtx_error_t *err;
   dec_arena_t *a;
   size_t top;     /* arena elements in use */
   int scache;     /* stack slot of the string cache table, or 0 */
   int array_mt;
   int null;
   int ordered_mt; /* 0, or the slot of the ordered metatable: documents
                      then decode as xdbtx.ordered values, keeping key order */
   bool exact;     /* also keep widths: int64 that fits int32 -> xdbtx.Int64;
                      under LuaJIT, doubles a number would not re-encode as
                      (integral, NaN bits) -> xdbtx.Double */
   const char *pkey[CODEC_DECODE_MAX_DEPTH + 2];
   size_t plen[CODEC_DECODE_MAX_DEPTH + 2];
} dec_t;

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

/* Push the Lua string s[0..n) once it is known to be valid UTF-8 (ascii:
 * known plain ASCII; nul_ok: U+0000 allowed), taken from the string cache
 * when it is there (what the cache holds was checked on the way in).
 * Returns false, pushing nothing, for invalid text. */
static CODEC_INLINE bool
push_text (dec_t *d, const char *s, uint32_t n, bool ascii, bool nul_ok)
{
   lua_State *L = d->L;
   dec_str_t *c;
   const char *p;
   uint64_t w;
   unsigned h;

   if (!d->scache || n > STR_CACHE_LEN) {
      if (!ascii && !codec_text_ok (s, n, nul_ok)) {
         return false;
      }
      lua_pushlstring (L, s, n);
      return true;
   }
   w = first_word (s, n);
   h = 2 * str_hash (s, n, w);
   c = &d->a->sc[h];
   if (c->w == w && c->len == n && (n <= 8 || same_short (c->p, s, n))) {
      lua_rawgeti (L, d->scache, (lua_Integer) h + 1);
      return true;
   }
   if (c[1].w == w && c[1].len == n && (n <= 8 || same_short (c[1].p, s, n))) {
      lua_rawgeti (L, d->scache, (lua_Integer) h + 2);
      return true;
   }
   if (!ascii && !codec_text_ok (s, n, nul_ok)) {
      return false;
   }
#if LUA_VERSION_NUM >= 502
   p = lua_pushlstring (L, s, n);
#else
   lua_pushlstring (L, s, n);
   p = lua_tostring (L, -1);
#endif
   h += d->a->victim[h / 2];
   d->a->victim[h / 2] ^= 1;
   lua_pushvalue (L, -1);
   lua_rawseti (L, d->scache, (lua_Integer) h + 1); /* a slot that exists: cannot raise */
   c = &d->a->sc[h];
   c->p = p;
   c->w = w;
   c->len = n;
   return true;
}

/* Push the value of e (an element of a level-`depth` container). */
static CODEC_INLINE bool
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
      if (!push_text (d, (const char *) p, e->vlen, false, true)) {
         return dec_fail (d, depth, "string is not valid UTF-8");
      }
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

/* Push the key and the value of field e of a level-`level` document (its
 * path entry set for the value's errors); false when either fails. */
static CODEC_INLINE bool
dec_field (dec_t *d, const elem_t *e, int level)
{
   if (!push_text (d, e->key, e->klen, e->ascii, false)) {
      return dec_fail (d, level - 1, "key is not valid UTF-8");
   }
   d->pkey[level] = e->key;
   d->plen[level] = e->klen;
   return dec_value (d, e, level);
}

/* Room for one more element in the arena once grown (up to its max)? */
static CODEC_NOINLINE bool
arena_grow (dec_t *d)
{
   dec_arena_t *a = d->a;
   size_t cap;
   elem_t *el;

   if (a->cap >= a->max) {
      return false;
   }
   cap = a->cap ? a->cap * 2 : ARENA_FIRST;
   cap = cap > a->max ? a->max : cap;
   el = (elem_t *) realloc (a->el, cap * sizeof *el);
   if (!el) {
      a->max = a->cap; /* no memory: walk twice from here on */
      return false;
   }
   a->el = el;
   a->cap = cap;
   return true;
}

/* Push the table for the document/array at data[0..len) (len and the
 * closing NUL already checked by the caller); depth: its parent level. */
static bool
dec_table (dec_t *d, const uint8_t *data, uint32_t len, bool array, int depth)
{
   lua_State *L = d->L;
   const uint8_t *p, *rest, *end = data + len - 1;
   elem_t e;
   const elem_t *ep;
   size_t base = d->top, kept;
   int n = 0, i, level = depth + 1;

   if (level > CODEC_DECODE_MAX_DEPTH) {
      return dec_fail (d, depth, "nesting deeper than %d levels", CODEC_DECODE_MAX_DEPTH);
   }
   /* walk 1: count and check every element, keeping what fits, then
    * counting the rest */
   {
      elem_t *el = d->a->el;
      size_t top = base, cap = d->a->cap;

      for (p = data + 4; p < end; n++) {
         if (top == cap) {
            d->top = top;
            if (!arena_grow (d)) {
               break;
            }
            el = d->a->el;
            cap = d->a->cap;
         }
         p = next_elem (p, end, &el[top]);
         if (!p) {
            d->top = base;
            return dec_fail (d, depth, "corrupt BSON in the element after #%d", n);
         }
         top++;
      }
      d->top = top;
   }
   for (rest = p; p < end; n++) {
      p = next_elem_cold (p, end, &e);
      if (!p) {
         d->top = base;
         return dec_fail (d, depth, "corrupt BSON in the element after #%d", n);
      }
   }
   kept = d->top - base;
   /* a level holds 2 slots (table, key), a few more at the innermost: the
    * entry points reserve for the first levels, then every fourth checks */
   if ((level & 3) == 0 && !lua_checkstack (L, 16)) {
      d->top = base;
      return dec_fail (d, depth, "Lua stack exhausted");
   }
   /* walk 2: the kept elements, then the rest parsed again (already known
    * to be sound). dec_value reads what it needs of an element before a
    * child can move the arena. */
   if (array) {
      lua_createtable (L, n, 0);
      d->pkey[level] = NULL;
      for (i = 0; i < n; i++) {
         if ((size_t) i < kept) {
            ep = &d->a->el[base + (size_t) i];
         } else {
            rest = next_elem_cold (rest, end, &e);
            ep = &e;
         }
         d->plen[level] = (size_t) i + 1;
         if (!dec_value (d, ep, level)) {
            d->top = base;
            return false;
         }
         lua_rawseti (L, -2, i + 1);
      }
      d->top = base;
      lua_pushvalue (L, d->array_mt);
      lua_setmetatable (L, -2);
      return true;
   }
   if (!d->ordered_mt) { /* the usual case: its own loop over the kept elements */
      lua_createtable (L, 0, n);
      for (i = 0; (size_t) i < kept; i++) {
         if (!dec_field (d, &d->a->el[base + (size_t) i], level)) {
            d->top = base;
            return false;
         }
         lua_rawset (L, -3);
      }
      if ((size_t) n == kept) {
         d->top = base;
         return true;
      }
   } else {
      lua_createtable (L, 2 * n, 0);
      i = 0;
   }
   for (; i < n; i++) {
      if ((size_t) i < kept) {
         ep = &d->a->el[base + (size_t) i];
      } else {
         rest = next_elem_cold (rest, end, &e);
         ep = &e;
      }
      if (!dec_field (d, ep, level)) {
         d->top = base;
         return false;
      }
      if (d->ordered_mt) {
         lua_rawseti (L, -3, 2 * i + 2);
         lua_rawseti (L, -2, 2 * i + 1);
      } else {
         lua_rawset (L, -3);
      }
   }
   d->top = base;
   if (d->ordered_mt) {
      lua_pushvalue (L, d->ordered_mt);
      lua_setmetatable (L, -2);
   }
   return true;
}

static int
arena_gc (lua_State *L)
{
   dec_arena_t *a = (dec_arena_t *) lua_touserdata (L, 1);

   free (a->el);
   a->el = NULL;
   a->cap = 0;
   return 0;
}

/* Take the state's arena and push its string cache table (d->scache);
 * when an outer decode holds them, use none (no arena, no cache). Returns
 * the stack slot of the arena box, 0 without one. */
static int
arena_take (dec_t *d, lua_State *L, dec_arena_t *none)
{
   dec_arena_t *a;
   int box = 0;

   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &arena_key);
   a = (dec_arena_t *) lua_touserdata (L, -1);
   d->scache = 0;
   if (!a || a->busy) {
      lua_pop (L, 1);
      none->el = NULL;
      none->cap = none->max = 0;
      none->busy = 1;
      a = none;
   } else {
      a->busy = 1;
      a->max = ARENA_MAX;
      box = lua_gettop (L);
      lua_getuservalue (L, box);
      d->scache = lua_gettop (L);
   }
   d->a = a;
   d->top = 0;
   return box;
}

/* Give the arena back, keeping at most ARENA_KEEP elements. */
static void
arena_give (dec_t *d)
{
   dec_arena_t *a = d->a;

   if (a->cap > ARENA_KEEP) {
      free (a->el);
      a->el = NULL;
      a->cap = 0;
   }
   a->busy = 0;
}

/* Set up d for XDBTX_DECODE_* flags, taking the arena; pushes up to 6
 * values. Under Lua 5.4 the arena box also holds (as user values 2 to 4)
 * the values every decode pushes: xdbtx.array_mt, xdbtx.null and the
 * ordered metatable, for less than a registry lookup each. */
static void
dec_init (dec_t *d, lua_State *L, unsigned flags, xdbtx_error_t *err, dec_arena_t *none)
{
   int box = arena_take (d, L, none);
   bool ordered = (flags & (XDBTX_DECODE_ORDERED | XDBTX_DECODE_EXACT)) != 0;

   d->L = L;
   d->err = err;
   d->ordered_mt = 0;
   d->exact = (flags & XDBTX_DECODE_EXACT) != 0;
#if LUA_VERSION_NUM >= 504
   if (box) {
      lua_getiuservalue (L, box, 2);
      d->array_mt = lua_gettop (L);
      if (flags & XDBTX_DECODE_JSON_NULL) {
         lua_pushlightuserdata (L, NULL);
      } else {
         lua_getiuservalue (L, box, 3);
      }
      d->null = lua_gettop (L);
      if (ordered) {
         lua_getiuservalue (L, box, 4);
         d->ordered_mt = lua_gettop (L);
      }
      return;
   }
#else
   (void) box;
#endif
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_array_mt_key);
   d->array_mt = lua_gettop (L);
   if (flags & XDBTX_DECODE_JSON_NULL) {
      lua_pushlightuserdata (L, NULL);
   } else {
      codec_push_singleton (L, CODEC_NULL);
   }
   d->null = lua_gettop (L);
   if (ordered) {
      xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_ordered_mt_key);
      d->ordered_mt = lua_gettop (L);
   }
}

/* Push the table decoded from data[0..len); on failure push nothing. */
static bool
decode_data (lua_State *L, const uint8_t *data, size_t len, unsigned flags, xdbtx_error_t *err)
{
   dec_t d;
   dec_arena_t none;
   int top = lua_gettop (L);
   bool ok;

   if (!lua_checkstack (L, 24)) {
      codec_error (err, "decode", "doc: Lua stack exhausted");
      return false;
   }
   if (len < 5 || len > INT32_MAX || get32 (data) != len || data[len - 1] != 0) {
      codec_error (err, "decode", "doc: corrupt BSON (%zu bytes, bad length or terminator)", len);
      return false;
   }
   dec_init (&d, L, flags, err, &none);
   ok = dec_table (&d, data, (uint32_t) len, false, 0);
   arena_give (&d);
   if (!ok) {
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
   dec_arena_t none;
   elem_t e;
   const uint8_t *data;
   int top = lua_gettop (L);
   bool ok = false;

   /* integers (an inserted _id, a count) as dec_value pushes them */
   if (v->value_type == BSON_TYPE_INT32 && lua_checkstack (L, 1)) {
      lua_pushinteger (L, v->value.v_int32);
      return true;
   }
   if (v->value_type == BSON_TYPE_INT64 && lua_checkstack (L, 4)) {
      codec_push_int64 (L, v->value.v_int64);
      return true;
   }
   bson_init (&tmp);
   if (!lua_checkstack (L, 24)) {
      codec_error (err, "decode", "doc: Lua stack exhausted");
   } else if (!bson_append_value (&tmp, "v", 1, v)) {
      codec_error (err, "decode", "doc: cannot decode this value");
   } else {
      data = bson_get_data (&tmp);
      if (!next_elem_cold (data + 4, data + tmp.len - 1, &e)) {
         codec_error (err, "decode", "doc: corrupt value");
      } else {
         dec_init (&d, L, 0, err, &none);
         ok = dec_value (&d, &e, 0);
         arena_give (&d);
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
         if (k) {
            return (unsigned) codec_argerror (
               L, fname, "unknown option '%s' (expected ordered, exact, json_null)", k);
         }
         return (unsigned) codec_argerror (L, fname, "option keys must be strings, got %s",
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
   xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &arena_key);
   if (lua_isnil (L, -1)) {
      int i;
      dec_arena_t *a = (dec_arena_t *) lua_newuserdatauv (L, sizeof *a, 4);
      memset (a, 0, sizeof *a);
      for (i = 0; i < 2 * STR_CACHE; i++) {
         a->sc[i].len = UINT32_MAX; /* empty: matches no string */
      }
      lua_newtable (L);
      lua_pushcfunction (L, arena_gc);
      lua_setfield (L, -2, "__gc");
      lua_setmetatable (L, -2);
      lua_createtable (L, 2 * STR_CACHE, 0); /* every slot exists, so setting one never allocates */
      for (i = 1; i <= 2 * STR_CACHE; i++) {
         lua_pushboolean (L, 0);
         lua_rawseti (L, -2, i);
      }
      lua_setuservalue (L, -2);
#if LUA_VERSION_NUM >= 504
      xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_array_mt_key);
      lua_setiuservalue (L, -2, 2);
      codec_push_singleton (L, CODEC_NULL);
      lua_setiuservalue (L, -2, 3);
      xdbtx_rawgetp (L, LUA_REGISTRYINDEX, &codec_ordered_mt_key);
      lua_setiuservalue (L, -2, 4);
#endif
      xdbtx_rawsetp (L, LUA_REGISTRYINDEX, &arena_key);
   }
   lua_pop (L, 1);
   lua_pushcfunction (L, f_decode);
   lua_setfield (L, module_idx, "decode");
}
