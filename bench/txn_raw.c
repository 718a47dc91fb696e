/*
 * txn_raw.c - the bench/txn.lua workload in C on raw libmongoc, the baseline
 * of its client CPU ratio: N transactions of K operations each on a client
 * popped from a pool (as xdbtx does), each a new session. Operation j of a
 * transaction (0-based) is, by j % 3: insert_one of the sample document
 * (read from DOCFILE, raw BSON, with a new _id first), update_one ($inc n)
 * of the last inserted document, find_one (limit 1) of it; then the commit.
 *
 *   txn_raw URI N COLLECTION K DOCFILE [docs]
 *                              prints "cpu_seconds X" and "wall_seconds Y"
 *
 * Without "docs" the inserted document is the file's BSON copied behind the
 * new _id, and the found one is not read: libmongoc's cost alone. With
 * "docs" the program also does the document work an application in C
 * does: it builds each inserted document with bson_append_* (from values
 * prepared once) and walks every value of the found one with bson_iter
 * (bench/lib/bson_doc.h, the C floor of bench/codec.lua).
 *
 * CPU time is clock(): the whole process, libmongoc's monitor thread
 * included, the same measure as Lua's os.clock(). With N = 0 it only
 * connects and warms up (the callgrind baseline of bench/txn.lua).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mongoc/mongoc.h>

#include "lib/bson_doc.h"

static double
wall_now (void)
{
   struct timespec ts;
   clock_gettime (CLOCK_MONOTONIC, &ts);
   return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die (const char *what, const bson_error_t *error)
{
   fprintf (stderr, "txn_raw: %s: %s\n", what, error->message);
   exit (1);
}

static bson_t *
read_doc (const char *path)
{
   FILE *f = fopen (path, "rb");
   uint8_t *buf;
   long len;
   bson_t *doc;

   if (!f) {
      perror (path);
      exit (1);
   }
   fseek (f, 0, SEEK_END);
   len = ftell (f);
   fseek (f, 0, SEEK_SET);
   buf = malloc ((size_t) len);
   if (fread (buf, 1, (size_t) len, f) != (size_t) len) {
      perror (path);
      exit (1);
   }
   fclose (f);
   doc = bson_new_from_data (buf, (size_t) len);
   free (buf);
   if (!doc) {
      fprintf (stderr, "txn_raw: %s is not BSON\n", path);
      exit (1);
   }
   return doc;
}

static void
one_txn (mongoc_client_t *client, mongoc_collection_t *coll, const bson_t *tmpl,
         const flat_doc_t *flat, int k, int64_t *next_id)
{
   bson_error_t error;
   bson_t opts = BSON_INITIALIZER, reply, doc, filter, update, child, fopts;
   mongoc_client_session_t *s;
   mongoc_cursor_t *cursor;
   const bson_t *found;
   int64_t last = 0;
   int j;

   s = mongoc_client_start_session (client, NULL, &error);
   if (!s) die ("start_session", &error);
   if (!mongoc_client_session_start_transaction (s, NULL, &error)) die ("start_transaction", &error);
   if (!mongoc_client_session_append (s, &opts, &error)) die ("append", &error);
   for (j = 0; j < k; j++) {
      switch (j % 3) {
      case 0:
         last = (*next_id)++;
         bson_init (&doc);
         BSON_APPEND_INT64 (&doc, "_id", last);
         if (flat) {
            flat_doc_build (flat, &doc);
         } else {
            bson_concat (&doc, tmpl);
         }
         if (!mongoc_collection_insert_one (coll, &doc, &opts, &reply, &error)) die ("insert", &error);
         bson_destroy (&reply);
         bson_destroy (&doc);
         break;
      case 1:
         bson_init (&filter);
         BSON_APPEND_INT64 (&filter, "_id", last);
         bson_init (&update);
         BSON_APPEND_DOCUMENT_BEGIN (&update, "$inc", &child);
         BSON_APPEND_INT32 (&child, "n", 1);
         bson_append_document_end (&update, &child);
         if (!mongoc_collection_update_one (coll, &filter, &update, &opts, &reply, &error))
            die ("update", &error);
         bson_destroy (&reply);
         bson_destroy (&filter);
         bson_destroy (&update);
         break;
      default:
         bson_init (&filter);
         BSON_APPEND_INT64 (&filter, "_id", last);
         bson_copy_to (&opts, &fopts);
         BSON_APPEND_INT64 (&fopts, "limit", 1);
         BSON_APPEND_BOOL (&fopts, "singleBatch", true);
         cursor = mongoc_collection_find_with_opts (coll, &filter, &fopts, NULL);
         if (!mongoc_cursor_next (cursor, &found) && mongoc_cursor_error (cursor, &error))
            die ("find", &error);
         if (flat && found) walk_doc (found);
         mongoc_cursor_destroy (cursor);
         bson_destroy (&fopts);
         bson_destroy (&filter);
         break;
      }
   }
   if (!mongoc_client_session_commit_transaction (s, &reply, &error)) die ("commit", &error);
   bson_destroy (&reply);
   mongoc_client_session_destroy (s);
   bson_destroy (&opts);
}

int
main (int argc, char **argv)
{
   mongoc_uri_t *uri;
   mongoc_client_pool_t *pool;
   mongoc_client_t *client;
   mongoc_collection_t *coll;
   bson_error_t error;
   bson_t empty = BSON_INITIALIZER, *tmpl;
   int n, k, i, warm = 20;
   int64_t next_id = 1;
   clock_t c0, c1;
   double w0, w1;
   flat_doc_t flat = {0};
   bool docs;

   if (argc < 6 || (argc > 6 && strcmp (argv[6], "docs") != 0)) {
      fprintf (stderr, "usage: txn_raw URI N COLLECTION K DOCFILE [docs]\n");
      return 2;
   }
   docs = argc > 6;
   n = atoi (argv[2]);
   k = atoi (argv[4]);
   tmpl = read_doc (argv[5]);
   if (docs) flat_doc_init (&flat, tmpl);
   mongoc_init ();
   uri = mongoc_uri_new_with_error (argv[1], &error);
   if (!uri) die ("uri", &error);
   pool = mongoc_client_pool_new (uri);
   mongoc_client_pool_set_error_api (pool, MONGOC_ERROR_API_VERSION_2);
   client = mongoc_client_pool_pop (pool);
   coll = mongoc_client_get_collection (client, "xdbtx_bench", argv[3]);
   mongoc_collection_delete_many (coll, &empty, NULL, NULL, NULL);

   for (i = 0; i < warm; i++) one_txn (client, coll, tmpl, docs ? &flat : NULL, k, &next_id);
   c0 = clock ();
   w0 = wall_now ();
   for (i = 0; i < n; i++) one_txn (client, coll, tmpl, docs ? &flat : NULL, k, &next_id);
   c1 = clock ();
   w1 = wall_now ();
   printf ("cpu_seconds %.6f\nwall_seconds %.6f\n", (double) (c1 - c0) / CLOCKS_PER_SEC, w1 - w0);

   mongoc_collection_delete_many (coll, &empty, NULL, NULL, NULL);
   mongoc_collection_destroy (coll);
   mongoc_client_pool_push (pool, client);
   mongoc_client_pool_destroy (pool);
   mongoc_uri_destroy (uri);
   bson_destroy (tmpl);
   flat_doc_free (&flat);
   mongoc_cleanup ();
   return 0;
}
