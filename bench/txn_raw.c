/*
 * txn_raw.c - the bench/txn.lua workload in C on raw libmongoc, as the
 * baseline of the client CPU ratio: N transactions, each a new session with
 * insert_one, update_one, find_one (limit 1) and commit, through a client
 * popped from a pool (as xdbtx does).
 *
 *   txn_raw URI N COLLECTION   prints "cpu_seconds X" and "wall_seconds Y"
 *
 * CPU time is clock(): the whole process, libmongoc's monitor thread
 * included, the same measure as Lua's os.clock().
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <mongoc/mongoc.h>

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

static void
one_txn (mongoc_client_t *client, mongoc_collection_t *coll, int64_t i)
{
   bson_error_t error;
   bson_t opts = BSON_INITIALIZER, reply;
   mongoc_client_session_t *s;
   bson_t *doc, *filter, *update, *fopts;
   mongoc_cursor_t *cursor;
   const bson_t *found;

   s = mongoc_client_start_session (client, NULL, &error);
   if (!s) die ("start_session", &error);
   if (!mongoc_client_session_start_transaction (s, NULL, &error)) die ("start_transaction", &error);
   if (!mongoc_client_session_append (s, &opts, &error)) die ("append", &error);

   doc = BCON_NEW ("_id", BCON_INT64 (i), "n", BCON_INT64 (i));
   if (!mongoc_collection_insert_one (coll, doc, &opts, &reply, &error)) die ("insert", &error);
   bson_destroy (&reply);

   filter = BCON_NEW ("_id", BCON_INT64 (i));
   update = BCON_NEW ("$inc", "{", "n", BCON_INT32 (1), "}");
   if (!mongoc_collection_update_one (coll, filter, update, &opts, &reply, &error)) die ("update", &error);
   bson_destroy (&reply);

   fopts = bson_copy (&opts);
   BSON_APPEND_INT64 (fopts, "limit", 1);
   cursor = mongoc_collection_find_with_opts (coll, filter, fopts, NULL);
   if (!mongoc_cursor_next (cursor, &found) && mongoc_cursor_error (cursor, &error)) die ("find", &error);
   mongoc_cursor_destroy (cursor);

   if (!mongoc_client_session_commit_transaction (s, &reply, &error)) die ("commit", &error);
   bson_destroy (&reply);

   mongoc_client_session_destroy (s);
   bson_destroy (doc);
   bson_destroy (filter);
   bson_destroy (update);
   bson_destroy (fopts);
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
   bson_t empty = BSON_INITIALIZER;
   int n, i, warm = 20;
   clock_t c0, c1;
   double w0, w1;

   if (argc < 4) {
      fprintf (stderr, "usage: txn_raw URI N COLLECTION\n");
      return 2;
   }
   n = atoi (argv[2]);
   mongoc_init ();
   uri = mongoc_uri_new_with_error (argv[1], &error);
   if (!uri) die ("uri", &error);
   pool = mongoc_client_pool_new (uri);
   mongoc_client_pool_set_error_api (pool, MONGOC_ERROR_API_VERSION_2);
   client = mongoc_client_pool_pop (pool);
   coll = mongoc_client_get_collection (client, "xdbtx_bench", argv[3]);
   mongoc_collection_delete_many (coll, &empty, NULL, NULL, NULL);

   for (i = 0; i < warm; i++) one_txn (client, coll, 1000000 + i);
   c0 = clock ();
   w0 = wall_now ();
   for (i = 0; i < n; i++) one_txn (client, coll, i);
   c1 = clock ();
   w1 = wall_now ();
   printf ("cpu_seconds %.6f\nwall_seconds %.6f\n", (double) (c1 - c0) / CLOCKS_PER_SEC, w1 - w0);

   mongoc_collection_delete_many (coll, &empty, NULL, NULL, NULL);
   mongoc_collection_destroy (coll);
   mongoc_client_pool_push (pool, client);
   mongoc_client_pool_destroy (pool);
   mongoc_uri_destroy (uri);
   mongoc_cleanup ();
   return 0;
}
