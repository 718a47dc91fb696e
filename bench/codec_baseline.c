/*
 * codec_baseline.c - the C floor for bench/codec.lua: what libbson alone
 * costs for the same documents, with no Lua involved.
 *
 *   codec_baseline [-t SECONDS] [-n COUNT] [-m encode|decode] FILE.bson...
 *                                  prints per file: NAME encode N decode M
 *                                  (-m: only that figure)
 *
 * "encode" rebuilds the document element by element with bson_append_*
 * (values read from a prepared array of bson_value_t, so no parsing is
 * timed); "decode" walks every element with bson_iter, recursing into
 * subdocuments and touching each value. Figures are documents per second of
 * CPU time (clock()), each measured for SECONDS (default 0.5). With -n, each
 * runs exactly COUNT times instead and the figure printed is COUNT: for
 * instruction counts under callgrind (bench/codec.lua subtracts a -n 0 run).
 * bench/codec.lua runs it once per document and round, between its own
 * measurements of the same bytes, so both see the same machine load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bson/bson.h>

/* One element of a flattened document: begin/end markers for children. */
typedef struct {
   enum { LEAF, BEGIN_DOC, BEGIN_ARR, END } op;
   char *key;
   int keylen;
   bson_value_t v;
} op_t;

static op_t *ops;
static size_t nops, capops;

static op_t *
add_op (void)
{
   if (nops == capops) {
      capops = capops ? capops * 2 : 256;
      ops = realloc (ops, capops * sizeof *ops);
   }
   memset (&ops[nops], 0, sizeof *ops);
   return &ops[nops++];
}

static void
flatten (bson_iter_t *it)
{
   while (bson_iter_next (it)) {
      op_t *o = add_op ();
      o->key = bson_strdup (bson_iter_key (it));
      o->keylen = (int) strlen (o->key);
      if (BSON_ITER_HOLDS_DOCUMENT (it) || BSON_ITER_HOLDS_ARRAY (it)) {
         bson_iter_t child;
         o->op = BSON_ITER_HOLDS_ARRAY (it) ? BEGIN_ARR : BEGIN_DOC;
         bson_iter_recurse (it, &child);
         flatten (&child);
         add_op ()->op = END;
      } else {
         o->op = LEAF;
         bson_value_copy (bson_iter_value (it), &o->v);
      }
   }
}

static void
free_ops (void)
{
   size_t i;

   for (i = 0; i < nops; i++) {
      bson_free (ops[i].key);
      if (ops[i].op == LEAF) {
         bson_value_destroy (&ops[i].v);
      }
   }
   nops = 0;
}

static size_t
build (bson_t *b, size_t i)
{
   while (i < nops && ops[i].op != END) {
      op_t *o = &ops[i];
      if (o->op == LEAF) {
         bson_append_value (b, o->key, o->keylen, &o->v);
         i++;
      } else {
         bson_t child;
         if (o->op == BEGIN_ARR) {
            bson_append_array_begin (b, o->key, o->keylen, &child);
            i = build (&child, i + 1);
            bson_append_array_end (b, &child);
         } else {
            bson_append_document_begin (b, o->key, o->keylen, &child);
            i = build (&child, i + 1);
            bson_append_document_end (b, &child);
         }
         i++; /* END */
      }
   }
   return i;
}

static volatile uint64_t sink;

static void
walk (bson_iter_t *it)
{
   uint32_t len;
   while (bson_iter_next (it)) {
      sink += (uint64_t) bson_iter_key_len (it);
      switch (bson_iter_type (it)) {
      case BSON_TYPE_DOCUMENT:
      case BSON_TYPE_ARRAY: {
         bson_iter_t child;
         bson_iter_recurse (it, &child);
         walk (&child);
         break;
      }
      case BSON_TYPE_UTF8:
         sink += (uint64_t) bson_iter_utf8 (it, &len)[0] + len;
         break;
      case BSON_TYPE_INT32:
         sink += (uint64_t) bson_iter_int32 (it);
         break;
      case BSON_TYPE_INT64:
         sink += (uint64_t) bson_iter_int64 (it);
         break;
      case BSON_TYPE_DOUBLE:
         sink += (uint64_t) bson_iter_double (it);
         break;
      case BSON_TYPE_BOOL:
         sink += bson_iter_bool (it);
         break;
      default:
         sink += bson_iter_type (it);
         break;
      }
   }
}

/* One encode (the document rebuilt from the prepared values; doc unused)
 * and one decode (the walk of doc). */
static void
encode_once (const bson_t *doc)
{
   bson_t b = BSON_INITIALIZER;
   (void) doc;
   build (&b, 0);
   sink += b.len;
   bson_destroy (&b);
}

static void
decode_once (const bson_t *doc)
{
   bson_iter_t it;
   bson_iter_init (&it, doc);
   walk (&it);
}

static double
now (void)
{
   return (double) clock () / CLOCKS_PER_SEC;
}

/* The figure of one operation on doc: with count >= 0, run it exactly count
 * times and return count; else runs per second of CPU time over secs. */
static double
figure (void (*once) (const bson_t *), const bson_t *doc, long count, double secs)
{
   long n;
   double t0;

   if (count >= 0) {
      for (n = 0; n < count; n++) {
         once (doc);
      }
      return (double) count;
   }
   for (n = 0, t0 = now (); now () - t0 < secs;) {
      int k;
      for (k = 0; k < 64; k++, n++) {
         once (doc);
      }
   }
   return n / (now () - t0);
}

int
main (int argc, char **argv)
{
   int a = 1;
   double secs = 0.5;
   long count = -1; /* -n: a fixed number of runs, untimed */
   bool do_enc = true, do_dec = true;

   while (a + 1 < argc && argv[a][0] == '-') {
      if (strcmp (argv[a], "-t") == 0) {
         secs = atof (argv[a + 1]);
         secs = secs > 0 ? secs : 0.5;
      } else if (strcmp (argv[a], "-n") == 0) {
         count = atol (argv[a + 1]);
         count = count >= 0 ? count : 0;
      } else if (strcmp (argv[a], "-m") == 0) {
         do_enc = strcmp (argv[a + 1], "decode") != 0;
         do_dec = strcmp (argv[a + 1], "encode") != 0;
      } else {
         fprintf (stderr, "codec_baseline: unknown option %s\n", argv[a]);
         return 2;
      }
      a += 2;
   }
   for (; a < argc; a++) {
      bson_t *doc;
      bson_reader_t *r;
      bson_iter_t it;
      const bson_t *d;
      double enc, dec;
      bool eof;
      const char *name;

      r = bson_reader_new_from_file (argv[a], NULL);
      if (!r || !(d = bson_reader_read (r, &eof))) {
         fprintf (stderr, "codec_baseline: cannot read %s\n", argv[a]);
         return 1;
      }
      doc = bson_copy (d);
      bson_reader_destroy (r);
      nops = 0;
      bson_iter_init (&it, doc);
      flatten (&it);

      enc = do_enc ? figure (encode_once, doc, count, secs) : 0;
      dec = do_dec ? figure (decode_once, doc, count, secs) : 0;
      name = strrchr (argv[a], '/') ? strrchr (argv[a], '/') + 1 : argv[a];
      printf ("%s", name);
      if (do_enc) {
         printf (" encode %.0f", enc);
      }
      if (do_dec) {
         printf (" decode %.0f", dec);
      }
      printf ("\n");
      bson_destroy (doc);
      free_ops ();
   }
   free (ops);
   return 0;
}
