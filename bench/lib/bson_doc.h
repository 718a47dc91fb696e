/*
 * bench/lib/bson_doc.h - the document work a C program does with libbson
 * alone, for the C baselines of the benchmarks (bench/codec_baseline.c,
 * bench/txn_raw.c): build a document element by element with
 * bson_append_* from values prepared beforehand (flat_doc_t: a document
 * flattened once, so no parsing is counted), and walk every element of a
 * document with bson_iter, recursing into subdocuments and touching each
 * value. Header only (static functions): each benchmark is one C file.
 */
#ifndef XDBTX_BENCH_BSON_DOC_H
#define XDBTX_BENCH_BSON_DOC_H

#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

/* One element of a flattened document: begin/end markers for children. */
typedef struct {
   enum { LEAF, BEGIN_DOC, BEGIN_ARR, END } op;
   char *key;
   int keylen;
   bson_value_t v;
} flat_op_t;

typedef struct {
   flat_op_t *ops;
   size_t n, cap;
} flat_doc_t;

static flat_op_t *
flat_add (flat_doc_t *f)
{
   if (f->n == f->cap) {
      f->cap = f->cap ? f->cap * 2 : 256;
      f->ops = realloc (f->ops, f->cap * sizeof *f->ops);
      if (!f->ops) {
         abort ();
      }
   }
   memset (&f->ops[f->n], 0, sizeof *f->ops);
   return &f->ops[f->n++];
}

static void
flat_elements (flat_doc_t *f, bson_iter_t *it)
{
   while (bson_iter_next (it)) {
      flat_op_t *o = flat_add (f);
      o->key = bson_strdup (bson_iter_key (it));
      o->keylen = (int) strlen (o->key);
      if (BSON_ITER_HOLDS_DOCUMENT (it) || BSON_ITER_HOLDS_ARRAY (it)) {
         bson_iter_t child;
         o->op = BSON_ITER_HOLDS_ARRAY (it) ? BEGIN_ARR : BEGIN_DOC;
         bson_iter_recurse (it, &child);
         flat_elements (f, &child);
         flat_add (f)->op = END;
      } else {
         o->op = LEAF;
         bson_value_copy (bson_iter_value (it), &o->v);
      }
   }
}

/* f <- doc's elements, flattened (f zeroed, or freed by flat_doc_free). */
static void
flat_doc_init (flat_doc_t *f, const bson_t *doc)
{
   bson_iter_t it;

   f->n = 0;
   bson_iter_init (&it, doc);
   flat_elements (f, &it);
}

static void
flat_doc_free (flat_doc_t *f)
{
   size_t i;

   for (i = 0; i < f->n; i++) {
      bson_free (f->ops[i].key);
      if (f->ops[i].op == LEAF) {
         bson_value_destroy (&f->ops[i].v);
      }
   }
   free (f->ops);
   f->ops = NULL;
   f->n = f->cap = 0;
}

static size_t
flat_build_from (const flat_doc_t *f, bson_t *b, size_t i)
{
   while (i < f->n && f->ops[i].op != END) {
      const flat_op_t *o = &f->ops[i];
      if (o->op == LEAF) {
         bson_append_value (b, o->key, o->keylen, &o->v);
         i++;
      } else {
         bson_t child;
         if (o->op == BEGIN_ARR) {
            bson_append_array_begin (b, o->key, o->keylen, &child);
            i = flat_build_from (f, &child, i + 1);
            bson_append_array_end (b, &child);
         } else {
            bson_append_document_begin (b, o->key, o->keylen, &child);
            i = flat_build_from (f, &child, i + 1);
            bson_append_document_end (b, &child);
         }
         i++; /* END */
      }
   }
   return i;
}

/* Append f's elements to b, one bson_append_* call each. */
static void
flat_doc_build (const flat_doc_t *f, bson_t *b)
{
   (void) flat_build_from (f, b, 0);
}

/* What the baselines read or built, summed where the compiler cannot drop
 * the work. */
static volatile uint64_t doc_sink;

static void
walk_elements (bson_iter_t *it)
{
   uint32_t len;

   while (bson_iter_next (it)) {
      doc_sink += (uint64_t) bson_iter_key_len (it);
      switch (bson_iter_type (it)) {
      case BSON_TYPE_DOCUMENT:
      case BSON_TYPE_ARRAY: {
         bson_iter_t child;
         bson_iter_recurse (it, &child);
         walk_elements (&child);
         break;
      }
      case BSON_TYPE_UTF8:
         doc_sink += (uint64_t) bson_iter_utf8 (it, &len)[0] + len;
         break;
      case BSON_TYPE_INT32:
         doc_sink += (uint64_t) bson_iter_int32 (it);
         break;
      case BSON_TYPE_INT64:
         doc_sink += (uint64_t) bson_iter_int64 (it);
         break;
      case BSON_TYPE_DOUBLE:
         doc_sink += (uint64_t) bson_iter_double (it);
         break;
      case BSON_TYPE_BOOL:
         doc_sink += bson_iter_bool (it);
         break;
      default:
         doc_sink += bson_iter_type (it);
         break;
      }
   }
}

/* Touch every value of doc (into doc_sink). */
static void
walk_doc (const bson_t *doc)
{
   bson_iter_t it;

   bson_iter_init (&it, doc);
   walk_elements (&it);
}

#endif
