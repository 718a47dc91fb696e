/*
 * codec_write.h - included by codec_encode.c only: the encoder's state (enc_t)
 * and the inline writer that appends BSON bytes, little-endian, to its
 * growable buffer (codec_buf_t, kept per Lua state between encodes).
 *
 * The writer functions reserve space first (w_grow fails with a path
 * error past the 16 MiB limit or when out of memory), so a failure leaves
 * the buffer's bytes up to len intact; the encoder then drops them all.
 * Keys and strings are checked as they are copied (one pass: plain ASCII
 * needs no more), array index keys are counted up as decimal text. Nothing
 * here touches Lua except through enc_fail's error path.
 */
#ifndef XDBTX_CODEC_WRITE_H
#define XDBTX_CODEC_WRITE_H

#include "codec.h"


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
   bool id_done;                               /* the top level's _id was written first */
} enc_t;

/* Defined in codec_encode.c. Fill e->err with "<path up to depth>:
 * <reason>"; returns false. */
static bool enc_fail (enc_t *e, int depth, const char *fmt, ...) BSON_GNUC_PRINTF (3, 4);

/* Make room for need more bytes (or fail with a path error). */
static bool w_grow (enc_t *e, size_t need, int depth);

/* Array index keys "0", "1", ... kept as decimal text and counted up in
 * place (libbson's helper falls back to snprintf from 1000 on). */
typedef struct {
   char k[12];
   size_t len;
} idx_key_t;

static inline void
idx_key_init (idx_key_t *ik)
{
   ik->k[0] = '0';
   ik->len = 1;
}

static inline void
idx_key_next (idx_key_t *ik)
{
   size_t i = ik->len;

   while (i > 0 && ik->k[i - 1] == '9') {
      ik->k[--i] = '0';
   }
   if (i > 0) {
      ik->k[i - 1]++;
   } else {
      ik->k[0] = '1'; /* 99 -> 100: all digits are 0 now */
      ik->k[ik->len++] = '0';
   }
}

/* Defined in codec_encode.c: the slow path of a key that is not plain
 * ASCII: true when it is valid UTF-8 without NUL, else fails naming the
 * parent's path (depth - 1). */
static bool key_slow_ok (enc_t *e, const char *k, size_t n, int depth);

#define W_ONES UINT64_C (0x0101010101010101)
#define W_HIGH UINT64_C (0x8080808080808080)

static inline uint64_t
ld64 (const void *p)
{
   uint64_t v;

   memcpy (&v, p, 8);
   return v;
}

static inline void
st64 (void *p, uint64_t v)
{
   memcpy (p, &v, 8);
}

static inline uint32_t
ld32 (const void *p)
{
   uint32_t v;

   memcpy (&v, p, 4);
   return v;
}

static inline void
st32 (void *p, uint32_t v)
{
   memcpy (p, &v, 4);
}

/* Copy the n bytes of text s to dst and tell whether they are plain ASCII
 * (and free of NUL unless nul_ok): then they are valid UTF-8 and need no
 * other check. One pass for the short keys and strings that dominate
 * documents, with overlapping word loads that never touch a byte outside
 * s[0..n) or dst[0..n); long texts take memcpy and a word-wise scan. */
static CODEC_NOINLINE bool
copy_long (uint8_t *dst, const char *s, size_t n, bool nul_ok)
{
   memcpy (dst, s, n);
   return codec_text_ok (s, n, nul_ok);
}

static CODEC_INLINE bool
copy_ascii (uint8_t *dst, const char *s, size_t n, bool nul_ok)
{
   uint64_t bad = 0, w;
   size_t i;

   if (n >= 8) {
      if (n > 256) {
         return copy_long (dst, s, n, nul_ok);
      }
      for (i = 0; i + 8 < n; i += 8) {
         w = ld64 (s + i);
         st64 (dst + i, w);
         bad |= w | (nul_ok ? 0 : (w - W_ONES) & ~w);
      }
      w = ld64 (s + n - 8);
      st64 (dst + n - 8, w);
      bad |= w | (nul_ok ? 0 : (w - W_ONES) & ~w);
      return (bad & W_HIGH) == 0;
   }
   if (n >= 4) {
      uint32_t a = ld32 (s), b = ld32 (s + n - 4), ones = 0x01010101u;
      st32 (dst, a);
      st32 (dst + n - 4, b);
      a = a | b | (nul_ok ? 0 : ((a - ones) & ~a) | ((b - ones) & ~b));
      return (a & 0x80808080u) == 0;
   }
   if (n > 0) { /* 1..3 bytes: first, middle and last cover them all */
      unsigned a = (unsigned char) s[0], b = (unsigned char) s[n >> 1], c = (unsigned char) s[n - 1];
      dst[0] = (uint8_t) a;
      dst[n >> 1] = (uint8_t) b;
      dst[n - 1] = (uint8_t) c;
      return ((a | b | c) & 0x80) == 0 && (nul_ok || (a && b && c));
   }
   return true;
}

/* Reserve an element (type, key, vlen value bytes); return its value area.
 * The key is checked on the way (NUL and invalid UTF-8 are refused). */
static CODEC_INLINE uint8_t *
w_elem (enc_t *e, uint8_t type, const char *k, size_t kl, size_t vlen, int depth)
{
   codec_buf_t *w = e->w;
   size_t need = kl + 2 + vlen;
   uint8_t *p;

   if (w->len + need > w->cap && !w_grow (e, need, depth)) {
      return NULL;
   }
   p = w->p + w->len;
   p[0] = type;
   if (!copy_ascii (p + 1, k, kl, false) && !key_slow_ok (e, k, kl, depth)) {
      return NULL;
   }
   w->len += need;
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

static CODEC_INLINE bool
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

static CODEC_INLINE bool
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

/* string-like values: int32 length (with the NUL), bytes, NUL; the bytes
 * must be valid UTF-8 (U+0000 allowed) */
static CODEC_INLINE bool
w_string (enc_t *e, uint8_t type, const char *k, size_t kl, const char *s, size_t n, int depth)
{
   uint8_t *p = w_elem (e, type, k, kl, n + 5, depth);

   if (!p) {
      return false;
   }
   put32 (p, (uint32_t) (n + 1));
   if (!copy_ascii (p + 4, s, n, true) && !codec_utf8_valid (s, n, true)) {
      return enc_fail (e, depth, "string is not valid UTF-8");
   }
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
