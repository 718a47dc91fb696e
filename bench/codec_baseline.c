/*
 * codec_baseline.c - the C floor for bench/codec.lua: what libbson alone
 * costs for the same documents, with no Lua involved.
 *
 *   codec_baseline [-t SECONDS] [-n COUNT] [-m encode|decode] FILE.bson...
 *                                  prints per file: NAME encode N decode M
 *                                  (-m: only that figure)
 *
 * "encode" rebuilds the document element by element with bson_append_*
 * from values prepared once, "decode" walks and touches every value with
 * bson_iter (both in bench/lib/bson_doc.h, shared with bench/txn_raw.c). Figures are documents per second of
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

#include "lib/bson_doc.h"

static flat_doc_t flat; /* the document being measured, flattened */

/* One encode (the document rebuilt from the prepared values; doc unused)
 * and one decode (the walk of doc). */
static void
encode_once (const bson_t *doc)
{
   bson_t b = BSON_INITIALIZER;
   (void) doc;
   flat_doc_build (&flat, &b);
   doc_sink += b.len;
   bson_destroy (&b);
}

static void
decode_once (const bson_t *doc)
{
   walk_doc (doc);
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
      flat_doc_init (&flat, doc);

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
      flat_doc_free (&flat);
   }
   return 0;
}
