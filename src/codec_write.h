/*
 * codec_write.h - included by codec_encode.c only: the encoder's state (enc_t)
 * and the inline writer that appends BSON bytes, little-endian, to its
 * growable buffer (codec_buf_t, kept per Lua state between encodes).
 *
 * The writer functions reserve space first (w_grow fails with a path
 * error past the 16 MiB limit or when out of memory), so a failure leaves
 * the buffer's bytes up to len intact; the encoder then drops them all.
 * Nothing here touches Lua except through enc_fail's error path.
 */
#ifndef XDBTX_CODEC_WRITE_H
#define XDBTX_CODEC_WRITE_H

#include "codec.h"

#define CODEC_NOINLINE __attribute__ ((noinline))

/* The reusable output buffer: a userdata (freed by __gc), so an error
 * raised anywhere (only memory errors can be) leaks nothing. busy marks the
 * cached one in use; a nested encode (from __tobson) takes a fresh box. */
typedef struct {
   uint8_t *p;
   size_t len, cap;
   int busy;
} codec_buf_t;

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

/* Defined in codec_encode.c. Fill e->err with "<path up to depth>:
 * <reason>"; returns false. */
static bool enc_fail (enc_t *e, int depth, const char *fmt, ...) BSON_GNUC_PRINTF (3, 4);

/* Make room for need more bytes (or fail with a path error). */
static bool w_grow (enc_t *e, size_t need, int depth);

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


#endif /* XDBTX_CODEC_WRITE_H */
