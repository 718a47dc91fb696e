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
