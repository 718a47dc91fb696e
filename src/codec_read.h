/*
 * codec_read.h - included by codec_decode.c only: the bounds-checked BSON
 * element parser (next_elem never reads outside [p, end) and checks every
 * length it reads), and the two helpers of the decoder's string cache
 * (str_hash, same_short), which rely on a NUL after the bytes they read.
 * Nothing here touches Lua.
 */
#ifndef XDBTX_CODEC_READ_H
#define XDBTX_CODEC_READ_H

#include "codec.h"

/* One parsed element (libbson's bson_iter, which re-validates elements,
 * was the top cost of decoding before the codec parsed BSON itself). */
typedef struct {
   uint8_t type;
   uint8_t subtype;    /* binary */
   uint8_t ascii;      /* the key is plain ASCII (so valid UTF-8) */
   uint32_t klen;
   const char *key;
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
static CODEC_INLINE const uint8_t *
next_elem (const uint8_t *p, const uint8_t *end, elem_t *e)
{
   const uint8_t *z;
   size_t rem, fixed;
   uint32_t l;
   unsigned hi = 0;

   e->type = *p++;
   /* the key, scanned in place (memchr's call costs more than the short
    * keys it finds) noting whether any byte is non-ASCII: eight bytes at a
    * time while they are inside the document, the first NUL found exactly
    * (the lowest flag of the zero-byte test is never a false one) */
   z = p;
#if BSON_BYTE_ORDER == BSON_LITTLE_ENDIAN
   while (end - z >= 8) {
      uint64_t w, zero;
      memcpy (&w, z, 8);
      zero = (w - UINT64_C (0x0101010101010101)) & ~w & UINT64_C (0x8080808080808080);
      if (zero) {
         /* zero - 1: every bit below the NUL's flag, so the bytes before it */
         hi |= (unsigned) ((w & UINT64_C (0x8080808080808080) & (zero - 1)) != 0) << 7;
         z += (unsigned) __builtin_ctzll (zero) >> 3;
         goto key_end;
      }
      hi |= (unsigned) ((w & UINT64_C (0x8080808080808080)) != 0) << 7;
      z += 8;
   }
#endif
   for (; z < end && *z; z++) {
      hi |= *z;
   }
   if (z >= end) {
      return NULL;
   }
key_end:
   e->key = (const char *) p;
   e->klen = (uint32_t) (z - p);
   e->ascii = hi < 0x80;
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

/* next_elem out of line, for the rarely taken paths. */
static CODEC_NOINLINE const uint8_t *
next_elem_cold (const uint8_t *p, const uint8_t *end, elem_t *e)
{
   return next_elem (p, end, e);
}

#define STR_CACHE 256 /* sets of the decoder's string cache (two entries each), a power of two */

/* The first min(n, 8) bytes of s[0..n) as a little-endian word, the
 * other bytes zero (s[n] is readable: a NUL), without a call: keys of up
 * to eight bytes are then compared as one word. */
static CODEC_INLINE uint64_t
first_word (const char *s, uint32_t n)
{
   uint64_t w;
   uint32_t u, v;
   uint16_t h;

   switch (n) {
   case 0:
      return 0;
   case 1:
      return (unsigned char) s[0];
   case 2:
      memcpy (&h, s, 2);
      return BSON_UINT16_FROM_LE (h);
   case 3: /* s[3] is the NUL */
      memcpy (&u, s, 4);
      return BSON_UINT32_FROM_LE (u);
   case 4:
   case 5:
   case 6:
   case 7: /* two overlapping 4-byte words */
      memcpy (&u, s, 4);
      memcpy (&v, s + n - 4, 4);
      return BSON_UINT32_FROM_LE (u) | (uint64_t) BSON_UINT32_FROM_LE (v) << (8 * (n - 4));
   default:
      memcpy (&w, s, 8);
      return BSON_UINT64_FROM_LE (w);
   }
}

/* Slot in the string cache of s[0..n), whose first word is w. */
static CODEC_INLINE unsigned
str_hash (const char *s, uint32_t n, uint64_t w)
{
   uint64_t h = (w ^ n) * UINT64_C (0x9E3779B97F4A7C15);

   if (n > 8) {
      uint64_t t;
      memcpy (&t, s + n - 8, 8);
      h += t * UINT64_C (0xC2B2AE3D27D4EB4F);
   }
   return (unsigned) (h >> 56) & (STR_CACHE - 1);
}

/* a[0..n) == b[0..n), for short n, without a call. Both may be read up to
 * a[n] (a NUL follows each: BSON keys and strings, and Lua strings). */
static CODEC_INLINE bool
same_short (const char *a, const char *b, uint32_t n)
{
   uint64_t x, y;
   uint32_t i, u, v;

   if (n >= 8) {
      for (i = 0; i + 8 < n; i += 8) {
         memcpy (&x, a + i, 8);
         memcpy (&y, b + i, 8);
         if (x != y) {
            return false;
         }
      }
      memcpy (&x, a + n - 8, 8);
      memcpy (&y, b + n - 8, 8);
      return x == y;
   }
   if (n >= 3) { /* 3..7: two overlapping 4-byte words (a[n] is readable) */
      uint32_t n4 = n > 4 ? n - 4 : 0;
      memcpy (&u, a, 4);
      memcpy (&v, b, 4);
      if (u != v) {
         return false;
      }
      memcpy (&u, a + n4, 4);
      memcpy (&v, b + n4, 4);
      return n4 ? u == v : true;
   }
   return n == 0 || (a[0] == b[0] && a[n - 1] == b[n - 1]);
}

#endif /* XDBTX_CODEC_READ_H */
