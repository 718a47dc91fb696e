/*
 * conformance_bulk - bulk writes through libmongoc's mongoc_bulk_operation_*.
 *
 * libmongoc splits a bulk into insert/update/delete commands by runs of one kind and
 * offsets each reply's writeErrors and upserted indexes; the server must give each
 * statement's error its index, stop an ordered batch (and any batch in a transaction) at
 * the first error, run every statement of an unordered one, report upserted _ids and the
 * n/nModified counts mongod reports. Includes the transactions spec's bulk.json.
 * Harness and environment: conformance.h, conformance.c.
 */
#include "conformance.h"

/* ===== helpers =========================================================================== */

/* Executes bulk B (then destroyed); the result's reply is libmongoc's bulk reply. */
static res_t *
bulk_run (mongoc_bulk_operation_t *b)
{
   res_t *r = res_new ();
   bson_destroy (&r->reply);
   r->ok = mongoc_bulk_operation_execute (b, &r->reply, &r->err) != 0;
   mongoc_bulk_operation_destroy (b);
   return r;
}

/* A bulk on COLL, ordered or not, in S's transaction when S is given. */
static mongoc_bulk_operation_t *
bulk_new (mongoc_collection_t *coll, bool ordered, mongoc_client_session_t *s)
{
   return mongoc_collection_create_bulk_operation_with_opts (
      coll, with_session (J ("{'ordered': %s}", ordered ? "true" : "false"), s));
}

/* The n* counters of a bulk reply as "ins,match,mod,rem,ups". */
static const char *
bulk_counts (const res_t *r)
{
   static char buf[4][64];
   static int i;
   char *b = buf[i++ % 4];
   snprintf (b, 64, "%lld,%lld,%lld,%lld,%lld", (long long) get_int (&r->reply, "nInserted", -1),
             (long long) get_int (&r->reply, "nMatched", -1),
             (long long) get_int (&r->reply, "nModified", -1),
             (long long) get_int (&r->reply, "nRemoved", -1),
             (long long) get_int (&r->reply, "nUpserted", -1));
   return b;
}

/* The check's documents on COLL (outside any transaction), sorted by _id, as JSON. */
static const char *
all_docs (mongoc_collection_t *coll)
{
   mongoc_cursor_t *cur =
      mongoc_collection_find_with_opts (coll, J ("{}"), J ("{'sort': {'_id': 1}}"), NULL);
   bson_t *arr = J ("{}");
   const bson_t *doc;
   char key[16];
   int i = 0;

   while (mongoc_cursor_next (cur, &doc)) {
      snprintf (key, sizeof key, "%d", i++);
      bson_append_document (arr, key, -1, doc);
   }
   mongoc_cursor_destroy (cur);
   return own (bson_array_as_json (arr, NULL), bson_free);
}

/* ===== bulk writes ======================================================================= */

/* An ordered bulk stops at its first write error; the error carries the request's index. */
static bool
check_bulk_ordered (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_bulk_operation_t *b = bulk_new (coll, true, NULL);
   res_t *r;

   mongoc_bulk_operation_insert_with_opts (b, J ("{'_id': 1}"), NULL, NULL);
   mongoc_bulk_operation_update_one_with_opts (b, J ("{'_id': 1}"), J ("{'$set': {'x': 1}}"),
                                               NULL, NULL);
   mongoc_bulk_operation_insert_with_opts (b, J ("{'_id': 1}"), NULL, NULL);
   mongoc_bulk_operation_insert_with_opts (b, J ("{'_id': 2}"), NULL, NULL);
   r = bulk_run (b);
   REQUIRE (code (r) == 11000, "ordered bulk with a duplicate: %s, want 11000", describe (r));
   REQUIRE (get_int (&r->reply, "writeErrors.0.index", -1) == 2 &&
               get_int (&r->reply, "writeErrors.0.code", -1) == 11000 &&
               get_int (&r->reply, "writeErrors.1.index", -1) == -1,
            "writeErrors: %s, want one, at index 2", reply_json (r));
   REQUIRE (strcmp (bulk_counts (r), "1,1,1,0,0") == 0,
            "nInserted,nMatched,nModified,nRemoved,nUpserted = %s, want 1,1,1,0,0",
            bulk_counts (r));
   REQUIRE (strcmp (all_docs (coll), "[ { \"_id\" : 1, \"x\" : 1 } ]") == 0,
            "after the ordered bulk: %s, want only {_id: 1, x: 1}", all_docs (coll));
   return true;
}

/* An unordered bulk runs every request: each error reports its own index; upserts report
 * their index and _id; replace, update many, delete one and many count as they should. */
static bool
check_bulk_unordered (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_bulk_operation_t *b;
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1}"))->ok && insert (coll, NULL, J ("{'_id': 2}"))->ok,
            "seed inserts failed");
   b = bulk_new (coll, false, NULL);
   mongoc_bulk_operation_insert_with_opts (b, J ("{'_id': 1}"), NULL, NULL); /* 0: dup */
   mongoc_bulk_operation_insert_with_opts (b, J ("{'_id': 3}"), NULL, NULL);
   mongoc_bulk_operation_update_one_with_opts (b, J ("{'_id': 9}"), J ("{'$set': {'x': 1}}"),
                                               J ("{'upsert': true}"), NULL); /* 2: upsert */
   mongoc_bulk_operation_replace_one_with_opts (b, J ("{'_id': 10}"), J ("{'y': 1}"),
                                                J ("{'upsert': true}"), NULL); /* 3: upsert */
   mongoc_bulk_operation_update_many_with_opts (b, J ("{}"), J ("{'$set': {'z': 1}}"), NULL,
                                                NULL); /* 4: 1, 2, 3, 9, 10 */
   mongoc_bulk_operation_remove_one_with_opts (b, J ("{'_id': 3}"), NULL, NULL);
   mongoc_bulk_operation_insert_with_opts (b, J ("{'_id': 2}"), NULL, NULL); /* 6: dup */
   mongoc_bulk_operation_update_one_with_opts (b, J ("{'_id': 1}"), J ("{'$inc': {'z': 'a'}}"),
                                               NULL, NULL); /* 7: TypeMismatch */
   mongoc_bulk_operation_remove_many_with_opts (b, J ("{'_id': {'$gte': 100}}"), NULL, NULL);
   r = bulk_run (b);
   REQUIRE (!r->ok, "the unordered bulk with errors succeeded");
   REQUIRE (get_int (&r->reply, "writeErrors.0.index", -1) == 0 &&
               get_int (&r->reply, "writeErrors.0.code", -1) == 11000 &&
               get_int (&r->reply, "writeErrors.1.index", -1) == 6 &&
               get_int (&r->reply, "writeErrors.1.code", -1) == 11000 &&
               get_int (&r->reply, "writeErrors.2.index", -1) == 7 &&
               get_int (&r->reply, "writeErrors.2.code", -1) == 14,
            "writeErrors: %s, want 11000 at 0 and 6, 14 at 7", reply_json (r));
   REQUIRE (strcmp (bulk_counts (r), "1,5,5,1,2") == 0,
            "nInserted,nMatched,nModified,nRemoved,nUpserted = %s, want 1,5,5,1,2",
            bulk_counts (r));
   REQUIRE (get_int (&r->reply, "upserted.0.index", -1) == 2 &&
               get_int (&r->reply, "upserted.0._id", -1) == 9 &&
               get_int (&r->reply, "upserted.1.index", -1) == 3 &&
               get_int (&r->reply, "upserted.1._id", -1) == 10,
            "upserted: %s, want index 2 -> 9, index 3 -> 10", reply_json (r));
   REQUIRE (strcmp (all_docs (coll),
                    "[ { \"_id\" : 1, \"z\" : 1 }, { \"_id\" : 2, \"z\" : 1 }, { \"_id\" : 9, "
                    "\"x\" : 1, \"z\" : 1 }, { \"_id\" : 10, \"y\" : 1, \"z\" : 1 } ]") == 0,
            "after the unordered bulk: %s", all_docs (coll));
   return true;
}

/* The transactions spec's bulk.json, through libmongoc: every request kind in one
 * transaction, invisible until the commit, with the counters the spec expects. */
static bool
check_bulk_in_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_collection_t *outside = coll_of (client_new (g.uri1, g.app));
   mongoc_client_session_t *s = session_new (g.main);
   mongoc_bulk_operation_t *b;
   res_t *r;
   int i;

   REQUIRE (start (s, NULL)->ok, "start_transaction failed");
   REQUIRE_OK (insert (coll, s, J ("{'_id': 1}")), "insert");
   REQUIRE_OK (run (g.main, g.db,
                    J ("{'delete': '%s', 'deletes': [{'q': {'_id': 1}, 'limit': 1}]}", g.check), s),
               "delete");
   b = bulk_new (coll, true, s);
   mongoc_bulk_operation_insert_with_opts (b, J ("{'_id': 1}"), NULL, NULL);
   mongoc_bulk_operation_update_one_with_opts (b, J ("{'_id': 1}"), J ("{'$set': {'x': 1}}"),
                                               NULL, NULL);
   mongoc_bulk_operation_update_one_with_opts (b, J ("{'_id': 2}"), J ("{'$set': {'x': 2}}"),
                                               J ("{'upsert': true}"), NULL);
   for (i = 3; i <= 7; i++) {
      mongoc_bulk_operation_insert_with_opts (b, J ("{'_id': %d}", i), NULL, NULL);
   }
   mongoc_bulk_operation_replace_one_with_opts (b, J ("{'_id': 1}"), J ("{'y': 1}"), NULL, NULL);
   mongoc_bulk_operation_replace_one_with_opts (b, J ("{'_id': 2}"), J ("{'y': 2}"), NULL, NULL);
   mongoc_bulk_operation_remove_one_with_opts (b, J ("{'_id': 3}"), NULL, NULL);
   mongoc_bulk_operation_remove_one_with_opts (b, J ("{'_id': 4}"), NULL, NULL);
   mongoc_bulk_operation_update_many_with_opts (b, J ("{'_id': {'$gte': 2}}"),
                                                J ("{'$set': {'z': 1}}"), NULL, NULL);
   mongoc_bulk_operation_remove_many_with_opts (b, J ("{'_id': {'$gte': 6}}"), NULL, NULL);
   r = bulk_run (b);
   REQUIRE (r->ok, "bulk in the transaction: %s", describe (r));
   REQUIRE (strcmp (bulk_counts (r), "6,7,7,4,1") == 0,
            "nInserted,nMatched,nModified,nRemoved,nUpserted = %s, want 6,7,7,4,1",
            bulk_counts (r));
   REQUIRE (get_int (&r->reply, "upserted.0.index", -1) == 2 &&
               get_int (&r->reply, "upserted.0._id", -1) == 2,
            "upserted: %s, want index 2 -> 2", reply_json (r));
   REQUIRE (strcmp (all_docs (outside), "[ ]") == 0, "uncommitted bulk writes are visible: %s",
            all_docs (outside));
   REQUIRE_OK (commit (s), "commit");
   REQUIRE (strcmp (all_docs (outside),
                    "[ { \"_id\" : 1, \"y\" : 1 }, { \"_id\" : 2, \"y\" : 2, \"z\" : 1 }, "
                    "{ \"_id\" : 5, \"z\" : 1 } ]") == 0,
            "after the commit: %s, want bulk.json's outcome", all_docs (outside));
   return true;
}

/* In a transaction a write error ends the batch even when it is unordered (mongod fails the
 * whole batch and aborts the transaction): the requests after it do not run, and the
 * commit gets NoSuchTransaction. */
static bool
check_bulk_error_aborts_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_client_session_t *s = session_new (g.main);
   mongoc_bulk_operation_t *b;
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1}"))->ok, "seed insert failed");
   REQUIRE (start (s, NULL)->ok, "start_transaction failed");
   b = bulk_new (coll, false, s);
   mongoc_bulk_operation_insert_with_opts (b, J ("{'_id': 2}"), NULL, NULL);
   mongoc_bulk_operation_insert_with_opts (b, J ("{'_id': 1}"), NULL, NULL);
   mongoc_bulk_operation_insert_with_opts (b, J ("{'_id': 3}"), NULL, NULL);
   r = bulk_run (b);
   REQUIRE (code (r) == 11000, "unordered bulk with a duplicate in a transaction: %s, want 11000",
            describe (r));
   REQUIRE (get_int (&r->reply, "nInserted", -1) == 1 &&
               get_int (&r->reply, "writeErrors.0.index", -1) == 1,
            "nInserted %lld, first error at %lld: want 1 and 1 (the batch stops at the error)",
            (long long) get_int (&r->reply, "nInserted", -1),
            (long long) get_int (&r->reply, "writeErrors.0.index", -1));
   r = commit (s);
   REQUIRE (code (r) == 251, "commit after the failed bulk: %s, want NoSuchTransaction 251",
            describe (r));
   REQUIRE (count (coll, NULL, J ("{}")) == 1, "the aborted transaction's inserts are visible");
   return true;
}

/* ===== runner ============================================================================ */

static const conformance_check_t checks[] = {
   {"bulk_ordered", check_bulk_ordered},
   {"bulk_unordered", check_bulk_unordered},
   {"bulk_in_txn", check_bulk_in_txn},
   {"bulk_error_aborts_txn", check_bulk_error_aborts_txn},
};

int
main (void)
{
   return conformance_main (checks, (int) (sizeof checks / sizeof checks[0]));
}
