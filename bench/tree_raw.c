/*
 * tree_raw.c - the bench/tree_cpu.lua workload in C on raw libmongoc, as the
 * baseline of the tree's client CPU ratio: N rounds, each the same work as a
 * two-cluster tree of two nodes - a session and a transaction on each
 * cluster, insert_one, update_one and find_one (limit 1) on each, then the
 * two commits, one after the other - through one client popped from each
 * cluster's pool (as xdbtx pops one per session).
 *
 *   tree_raw URI1 URI2 N COLLECTION   prints "cpu_seconds X" and "wall_seconds Y"
 *
 * CPU time is clock(): the whole process, libmongoc's monitor threads
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
   fprintf (stderr, "tree_raw: %s: %s\n", what, error->message);
   exit (1);
}

/* A session with a started transaction, and `opts` holding its lsid. */
static mongoc_client_session_t *
begin (mongoc_client_t *client, bson_t *opts)
{
   bson_error_t error;
   mongoc_client_session_t *s;

   s = mongoc_client_start_session (client, NULL, &error);
   if (!s) die ("start_session", &error);
   if (!mongoc_client_session_start_transaction (s, NULL, &error)) die ("start_transaction", &error);
   bson_init (opts);
   if (!mongoc_client_session_append (s, opts, &error)) die ("append", &error);
   return s;
}

/* One node's action: insert_one, update_one, find_one in the session of `opts`. */
static void
ops (mongoc_collection_t *coll, const bson_t *opts, int64_t i)
{
   bson_error_t error;
   bson_t reply;
   bson_t *doc, *filter, *update, *fopts;
   mongoc_cursor_t *cursor;
   const bson_t *found;

   doc = BCON_NEW ("_id", BCON_INT64 (i), "n", BCON_INT64 (i));
   if (!mongoc_collection_insert_one (coll, doc, opts, &reply, &error)) die ("insert", &error);
   bson_destroy (&reply);

   filter = BCON_NEW ("_id", BCON_INT64 (i));
   update = BCON_NEW ("$inc", "{", "n", BCON_INT32 (1), "}");
   if (!mongoc_collection_update_one (coll, filter, update, opts, &reply, &error)) die ("update", &error);
   bson_destroy (&reply);

   fopts = bson_copy (opts);
   BSON_APPEND_INT64 (fopts, "limit", 1);
   cursor = mongoc_collection_find_with_opts (coll, filter, fopts, NULL);
   if (!mongoc_cursor_next (cursor, &found) && mongoc_cursor_error (cursor, &error)) die ("find", &error);
   mongoc_cursor_destroy (cursor);

   bson_destroy (doc);
   bson_destroy (filter);
   bson_destroy (update);
   bson_destroy (fopts);
}

static void
commit (mongoc_client_session_t *s)
{
   bson_error_t error;
   bson_t reply;

   if (!mongoc_client_session_commit_transaction (s, &reply, &error)) die ("commit", &error);
   bson_destroy (&reply);
}

static void
one_tree (mongoc_client_t *a, mongoc_collection_t *ca, mongoc_client_t *b, mongoc_collection_t *cb,
          int64_t i)
{
   bson_t oa, ob;
   mongoc_client_session_t *sa = begin (a, &oa), *sb = begin (b, &ob);

   ops (ca, &oa, i);
   ops (cb, &ob, i);
   commit (sa);
   commit (sb);
   mongoc_client_session_destroy (sa);
   mongoc_client_session_destroy (sb);
   bson_destroy (&oa);
   bson_destroy (&ob);
}

static mongoc_client_pool_t *
pool_new (const char *s)
{
   bson_error_t error;
   mongoc_uri_t *uri = mongoc_uri_new_with_error (s, &error);
   mongoc_client_pool_t *pool;

   if (!uri) die ("uri", &error);
   pool = mongoc_client_pool_new (uri);
   mongoc_client_pool_set_error_api (pool, MONGOC_ERROR_API_VERSION_2);
   mongoc_uri_destroy (uri);
   return pool;
}

int
main (int argc, char **argv)
{
   mongoc_client_pool_t *pa, *pb;
   mongoc_client_t *a, *b;
   mongoc_collection_t *ca, *cb;
   bson_t empty = BSON_INITIALIZER;
   int n, i, warm = 20;
   clock_t c0, c1;
   double w0, w1;

   if (argc < 5) {
      fprintf (stderr, "usage: tree_raw URI1 URI2 N COLLECTION\n");
      return 2;
   }
   n = atoi (argv[3]);
   mongoc_init ();
   pa = pool_new (argv[1]);
   pb = pool_new (argv[2]);
   a = mongoc_client_pool_pop (pa);
   b = mongoc_client_pool_pop (pb);
   ca = mongoc_client_get_collection (a, "xdbtx_bench", argv[4]);
   cb = mongoc_client_get_collection (b, "xdbtx_bench", argv[4]);
   mongoc_collection_delete_many (ca, &empty, NULL, NULL, NULL);
   mongoc_collection_delete_many (cb, &empty, NULL, NULL, NULL);

   for (i = 0; i < warm; i++) one_tree (a, ca, b, cb, 1000000 + i);
   c0 = clock ();
   w0 = wall_now ();
   for (i = 0; i < n; i++) one_tree (a, ca, b, cb, i);
   c1 = clock ();
   w1 = wall_now ();
   printf ("cpu_seconds %.6f\nwall_seconds %.6f\n", (double) (c1 - c0) / CLOCKS_PER_SEC, w1 - w0);

   mongoc_collection_delete_many (ca, &empty, NULL, NULL, NULL);
   mongoc_collection_delete_many (cb, &empty, NULL, NULL, NULL);
   mongoc_collection_destroy (ca);
   mongoc_collection_destroy (cb);
   mongoc_client_pool_push (pa, a);
   mongoc_client_pool_push (pb, b);
   mongoc_client_pool_destroy (pa);
   mongoc_client_pool_destroy (pb);
   mongoc_cleanup ();
   return 0;
}
