/*
 * codec.c - what the codec files share: error helpers (codec domain, and
 * the "<path>: <reason>" messages of encode and decode), the UTF-8 check,
 * and xdbtx_codec_open, which registers every part of the codec.
 *
 * The codec maps Lua values <-> BSON as DESIGN.md "Values" says. Its
 * parts, one file each: codec_encode.c (Lua -> BSON), codec_decode.c
 * (BSON -> Lua), codec_json.c (Extended JSON), codec_types.c (the typed
 * values' layout, metatables and metamethods), codec_values.c (their
 * constructors and methods, xdbtx.ordered, xdbtx.type). Rules in codec.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"

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

/* An argument error: domain argument (set here, not derived from the
 * phase), phase "argument". */
static int
arg_raise (lua_State *L, const char *msg)
{
   xdbtx_error_t err;

   xdbtx_error_init (&err);
   err.domain = XDBTX_DOMAIN_ARG;
   bson_strncpy (err.phase, "argument", sizeof err.phase);
   bson_strncpy (err.message, msg, sizeof err.message);
   return xdbtx_lua_raise (L, &err);
}

int
codec_argerror (lua_State *L, const char *fname, const char *fmt, ...)
{
   char msg[512];
   size_t n;
   va_list ap;

   n = (size_t) snprintf (msg, sizeof msg, "%s: ", fname);
   if (n < sizeof msg) {
      va_start (ap, fmt);
      vsnprintf (msg + n, sizeof msg - n, fmt, ap);
      va_end (ap);
   }
   return arg_raise (L, msg);
}

const char *
codec_describe (lua_State *L, int idx, char *buf, size_t size)
{
   const char *s;
   size_t n, i;
   codec_val_t *v;

   idx = lua_absindex (L, idx);
   switch (lua_type (L, idx)) {
   case LUA_TNONE: /* a missing argument reads as nil in Lua */
   case LUA_TNIL:
      snprintf (buf, size, "nil");
      break;
   case LUA_TNUMBER:
      lua_pushvalue (L, idx); /* a copy: lua_tostring converts in place */
      snprintf (buf, size, "number %s", lua_tostring (L, -1));
      lua_pop (L, 1);
      break;
   case LUA_TBOOLEAN:
      snprintf (buf, size, "boolean %s", lua_toboolean (L, idx) ? "true" : "false");
      break;
   case LUA_TSTRING: {
      char shown[44];
      s = lua_tolstring (L, idx, &n);
      if (n > 40) {
         n = 40;
         while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80) {
            n--; /* do not cut a UTF-8 sequence */
         }
      }
      for (i = 0; i < n; i++) {
         unsigned char c = (unsigned char) s[i];
         shown[i] = (char) ((c < 0x20 || c == 0x7f) ? '?' : c);
      }
      shown[n] = 0;
      snprintf (buf, size, "string \"%s\"%s", shown, n < lua_rawlen (L, idx) ? "..." : "");
      break;
   }
   case LUA_TUSERDATA:
      v = codec_val_test (L, idx);
      if (v) {
         snprintf (buf, size, "%s", codec_kind_mt (v->kind));
      } else if (luaL_getmetafield (L, idx, "__name")) {
         snprintf (buf, size, "%s", lua_type (L, -1) == LUA_TSTRING ? lua_tostring (L, -1) : "userdata");
         lua_pop (L, 1);
      } else {
         snprintf (buf, size, "userdata");
      }
      break;
   case LUA_TLIGHTUSERDATA:
      snprintf (buf, size, "%s", lua_touserdata (L, idx) ? "light userdata" : "xdbtx.json_null");
      break;
   default:
      snprintf (buf, size, "%s", luaL_typename (L, idx));
      break;
   }
   return buf;
}

int
codec_arg_expected (lua_State *L, int idx, const char *fname, const char *what)
{
   char got[96];

   return codec_argerror (L, fname, "expected %s, got %s", what, codec_describe (L, idx, got, sizeof got));
}

int
codec_check_self_fail (lua_State *L, int idx, const char *mname, const char *what)
{
   char got[96];

   if (lua_isnoneornil (L, idx)) {
      return codec_argerror (L, mname, "expected %s as self (did you call it with '.'?)", what);
   }
   return codec_argerror (L, mname, "expected %s as self, got %s (did you call it with '.'?)", what,
                          codec_describe (L, idx, got, sizeof got));
}

const char *
codec_check_lstring (lua_State *L, int idx, size_t *len, const char *fname, const char *what)
{
   int t = lua_type (L, idx);

   if (t != LUA_TSTRING && t != LUA_TNUMBER) {
      codec_arg_expected (L, idx, fname, what);
   }
   return lua_tolstring (L, idx, len);
}

const char *
codec_opt_lstring (lua_State *L, int idx, const char *def, size_t *len, const char *fname,
                   const char *what)
{
   if (lua_isnoneornil (L, idx)) {
      if (len) {
         *len = def ? strlen (def) : 0;
      }
      return def;
   }
   return codec_check_lstring (L, idx, len, fname, what);
}

/* The well-formed sequences of Unicode's table 3-7, from s[0] on. The
 * second byte's range is what refuses the overlong forms (C0, C1 never
 * lead; E0 needs A0.., F0 needs 90..), the surrogates (ED ..9F) and code
 * points past U+10FFFF (F4 ..8F, no F5..FF). libbson's bson_utf8_validate
 * is not used: it takes C0 80 for U+0000, which MongoDB refuses. */
static bool
utf8_valid_from (const unsigned char *s, size_t n, bool allow_nul)
{
   size_t i = 0, len, j;

   while (i < n) {
      unsigned c = s[i], lo = 0x80, hi = 0xBF;

      if (c < 0x80) {
         if (c == 0 && !allow_nul) {
            return false;
         }
         i++;
         continue;
      }
      if (c < 0xC2 || c > 0xF4) {
         return false;
      }
      if (c < 0xE0) {
         len = 2;
      } else if (c < 0xF0) {
         len = 3;
         lo = c == 0xE0 ? 0xA0 : 0x80;
         hi = c == 0xED ? 0x9F : 0xBF;
      } else {
         len = 4;
         lo = c == 0xF0 ? 0x90 : 0x80;
         hi = c == 0xF4 ? 0x8F : 0xBF;
      }
      if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) {
         return false;
      }
      for (j = 2; j < len; j++) {
         if ((s[i + j] & 0xC0) != 0x80) {
            return false;
         }
      }
      i += len;
   }
   return true;
}

/* ASCII runs are checked a word at a time; anything else goes to
 * utf8_valid_from. */
bool
codec_utf8_valid (const char *s, size_t n, bool allow_nul)
{
   size_t i = 0;
   uint64_t w;

   if (allow_nul) {
      for (; i + 8 <= n; i += 8) {
         memcpy (&w, s + i, 8);
         if (w & UINT64_C (0x8080808080808080)) {
            return utf8_valid_from ((const unsigned char *) s + i, n - i, true);
         }
      }
   }
   for (; i < n; i++) {
      unsigned char c = (unsigned char) s[i];
      if (c == 0 || c >= 0x80) {
         return utf8_valid_from ((const unsigned char *) s + i, n - i, allow_nul);
      }
   }
   return true;
}

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

/* Fill err with "<path>: <reason>" (the path up to `depth`); returns false. */
bool
codec_path_fail (xdbtx_error_t *err, const char *phase, const char *const *keys,
                 const size_t *lens, int depth, const char *fmt, va_list ap)
{
   char path[384], reason[512];

   vsnprintf (reason, sizeof reason, fmt, ap);
   format_path (path, sizeof path, keys, lens, depth);
   codec_error (err, phase, "%s: %s", path, reason);
   return false;
}

void
xdbtx_codec_open (lua_State *L, int module_idx)
{
   module_idx = lua_absindex (L, module_idx);
   codec_open_types (L, module_idx);
   codec_open_encode (L, module_idx);
   codec_open_decode (L, module_idx);
   codec_open_json (L, module_idx);
}
