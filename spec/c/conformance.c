/*
 * conformance - does the test server behave like mongod where xdbtx depends on it?
 *
 * xdbtx's integration tests run against the project's own server (spec/server/xdbtx-testd),
 * so that server is the oracle; these programs pin its behaviour with libmongoc alone,
 * independent of the Lua binding. Every expectation is what mongod documents, never a quirk
 * of the test server, so the same binaries must pass against a real replica set started with
 * enableTestCommands (XDBTX_TEST_URI, XDBTX_TEST_URI2 = a second, independent cluster,
 * XDBTX_TEST_STANDALONE_URI = a standalone mongod; checks whose URI is unset are skipped).
 *
 * The suite is one program per topic, all on the harness in conformance.h: this one
 * (transaction semantics: snapshots, conflicts, visibility, options, retryable writes),
 * conformance_rules.c (the server's session rules driven by hand, the command log),
 * conformance_sessions.c (sessions outlive connections, killSessions, endSessions, the
 * lifetime limit, writes blocked by a transaction), conformance_fp.c (failCommand, commit
 * retries, error labels, concurrency), conformance_api.c (the collection, index and
 * database API through libmongoc, in and out of transactions) and conformance_bulk.c (bulk
 * writes).
 *
 * Each check is a small function in the table at the bottom; it stops at its first failed
 * expectation (REQUIRE) and the runner prints one TAP line for it, releases what it created
 * (conformance.h's arena), and turns the failCommand failpoint off. Every check works in its
 * own collection of a database unique to this run (xdbtx_conf_<pid>), dropped at the end.
 * Failpoints are filtered on this run's appName, so other clients of the cluster are never hit.
 * XDBTX_CONFORMANCE_ONLY=<check name> runs a single check.
 */
#include "conformance.h"

/* ===== transaction semantics ============================================================ */

/* A transaction reads from the snapshot taken at its first statement: another client's
 * later insert, update and delete stay invisible to it. */
static bool
snapshot_read_with (const char *txn_opts)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_client_t *other = client_new (g.uri1, g.app);
   mongoc_client_session_t *s = session_new (g.main);
   int64_t n;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'v': 1}"))->ok &&
               insert (coll, NULL, J ("{'_id': 3, 'v': 1}"))->ok,
            "seed inserts failed");
   REQUIRE_OK (start (s, txn_opts), "start_transaction");
   n = count (coll, s, J ("{}"));
   REQUIRE (n == 2, "first statement counted %lld documents, want 2", (long long) n);
   REQUIRE_OK (insert (coll_of (other), NULL, J ("{'_id': 2, 'v': 1}")),
               "insert by the other client");
   REQUIRE_OK (update (coll_of (other), NULL, J ("{'_id': 3}"), J ("{'$set': {'v': 2}}")),
               "update by the other client");
   REQUIRE_OK (run (other, g.db,
                    J ("{'delete': '%s', 'deletes': [{'q': {'_id': 1}, 'limit': 1}]}", g.check),
                    NULL),
               "delete by the other client");
   n = count (coll, s, J ("{'v': 1}"));
   REQUIRE (n == 2, "the transaction sees %lld documents with v 1 after another client's "
            "insert, update and delete, want 2 (its snapshot)", (long long) n);
   REQUIRE_OK (commit (s), "commit");
   n = count (coll, NULL, J ("{'v': 1}"));
   REQUIRE (n == 1, "after commit %lld documents with v 1, want 1", (long long) n);
   return true;
}

static bool
check_snapshot_read (void)
{
   return snapshot_read_with (NULL);
}

static bool
check_snapshot_read_rc_snapshot (void)
{
   return snapshot_read_with ("{'readConcern': 'snapshot'}");
}

/* Uncommitted writes are invisible outside the transaction, reading them does not block,
 * and they are visible after commit. */
static bool
check_no_dirty_read (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_collection_t *outside = coll_of (client_new (g.uri1, g.app));
   int64_t n, t0, ms;
   bson_t *doc;

   REQUIRE (insert (coll, NULL, J ("{'_id': 0, 'n': 0}"))->ok, "seed insert failed");
   {
      OPEN_TXN (s, g.main, coll, 1);
      REQUIRE_OK (update (coll, s, J ("{'_id': 0}"), J ("{'$set': {'n': 1}}")),
                  "update in the transaction");
      n = count (coll, s, J ("{'_id': 1}"));
      REQUIRE (n == 1, "the transaction does not see its own insert (count %lld)", (long long) n);
      n = count (outside, NULL, J ("{'_id': 1}"));
      REQUIRE (n == 0, "uncommitted insert visible to another client (count %lld)",
               (long long) n);
      t0 = now_ms ();
      doc = find_one (outside, NULL, J ("{'_id': 0}"));
      ms = now_ms () - t0;
      REQUIRE (get_int (doc, "n", -1) == 0, "another client reads n = %lld, want the committed 0",
               (long long) get_int (doc, "n", -1));
      REQUIRE (ms < 1000, "reading a document the transaction wrote took %lld ms (blocked?)",
               (long long) ms);
      REQUIRE_OK (commit (s), "commit");
   }
   n = count (outside, NULL, J ("{'_id': 1}"));
   REQUIRE (n == 1, "committed insert not visible to another client (count %lld)", (long long) n);
   REQUIRE (get_int (find_one (outside, NULL, J ("{'_id': 0}")), "n", -1) == 1,
            "committed update not visible to another client");
   return true;
}

/* Two transactions update one document: the second write gets WriteConflict (112) with
 * TransientTransactionError as a command error (mongod throws transient errors out of the
 * write batch instead of reporting a write error), its transaction is aborted (commit:
 * NoSuchTransaction 251), and the first transaction commits. */
static bool
check_write_conflict (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_client_session_t *s1 = session_new (g.main);
   mongoc_client_session_t *s2 = session_new (g.main);
   bson_t *doc;
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 0}"))->ok, "seed insert failed");
   REQUIRE (start (s1, NULL)->ok && start (s2, NULL)->ok, "start_transaction failed");
   REQUIRE_OK (update (coll, s1, J ("{'_id': 1}"), J ("{'$inc': {'n': 1}}")),
               "first transaction's update");
   /* raw, to see the server's reply: libmongoc's update_one reply is a summary */
   r = run (g.main, g.db,
            J ("{'update': '%s', 'updates': [{'q': {'_id': 1}, 'u': {'$inc': {'n': 10}}}]}",
               g.check),
            s2);
   REQUIRE (code (r) == 112, "second transaction's update: %s, want WriteConflict 112",
            describe (r));
   REQUIRE (get_int (&r->reply, "code", 0) == 112,
            "WriteConflict came as a write error, want a command error (ok: 0, code 112): %s",
            reply_json (r));
   REQUIRE (has_label (r, TTE), "WriteConflict without the %s label", TTE);
   r = commit (s2);
   REQUIRE (code (r) == 251, "loser's commit: %s, want NoSuchTransaction 251", describe (r));
   REQUIRE_OK (commit (s1), "winner's commit");
   doc = find_one (coll, NULL, J ("{'_id': 1}"));
   REQUIRE (doc && get_int (doc, "n", -1) == 1, "n is %lld after both, want 1",
            doc ? (long long) get_int (doc, "n", -1) : -1LL);
   return true;
}

/* A transaction that writes a document another client changed after the transaction's
 * snapshot gets WriteConflict (112, TransientTransactionError); the other write stands. */
static bool
check_write_conflict_after_snapshot (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_collection_t *outside = coll_of (client_new (g.uri1, g.app));
   mongoc_client_session_t *s = session_new (g.main);
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 0}"))->ok, "seed insert failed");
   REQUIRE (start (s, NULL)->ok, "start_transaction failed");
   REQUIRE (count (coll, s, J ("{}")) == 1, "first statement (count) failed");
   REQUIRE_OK (update (outside, NULL, J ("{'_id': 1}"), J ("{'$set': {'n': 5}}")),
               "the other client's update");
   r = update (coll, s, J ("{'_id': 1}"), J ("{'$inc': {'n': 1}}"));
   REQUIRE (code (r) == 112, "update of a document changed after the snapshot: %s, want 112",
            describe (r));
   REQUIRE (has_label (r, TTE), "WriteConflict without the %s label", TTE);
   r = commit (s);
   REQUIRE (code (r) == 251, "commit: %s, want NoSuchTransaction 251", describe (r));
   REQUIRE (get_int (find_one (coll, NULL, J ("{'_id': 1}")), "n", -1) == 5,
            "n is not the other client's 5");
   return true;
}

/* Two transactions insert the same new _id: the second gets WriteConflict (112). */
static bool
check_write_conflict_insert (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_client_session_t *s2 = session_new (g.main);
   mongoc_client_session_t *s3 = session_new (g.main);
   res_t *r;
   OPEN_TXN (s1, g.main, coll, 1);

   REQUIRE (start (s2, NULL)->ok, "start_transaction failed");
   r = insert (coll, s2, J ("{'_id': 1}"));
   REQUIRE (code (r) == 112, "second transaction's insert of the same _id: %s, want 112",
            describe (r));
   REQUIRE (has_label (r, TTE), "WriteConflict without the %s label", TTE);
   REQUIRE_OK (commit (s1), "first transaction's commit");
   REQUIRE (count (coll, NULL, J ("{}")) == 1, "want exactly one document");

   /* the same _id committed by another client after the snapshot: a conflict too, not a
    * DuplicateKey (the key is not visible in the snapshot) */
   REQUIRE (start (s3, NULL)->ok, "start_transaction failed");
   REQUIRE (count (coll, s3, J ("{}")) == 1, "first statement (count) failed");
   REQUIRE (insert (coll, NULL, J ("{'_id': 7}"))->ok, "the other insert failed");
   r = insert (coll, s3, J ("{'_id': 7}"));
   REQUIRE (code (r) == 112 && has_label (r, TTE),
            "insert of an _id committed after the snapshot: %s, want 112 with %s", describe (r),
            TTE);
   return true;
}

/* commitTransaction is idempotent: committing a committed transaction again succeeds. */
static bool
check_commit_twice (void)
{
   mongoc_client_t *c = client_with_apm ();
   mongoc_collection_t *coll = coll_of (c);
   OPEN_TXN (s, c, coll, 1);

   REQUIRE_OK (commit (s), "commit");
   REQUIRE_OK (commit (s), "second commit");
   REQUIRE (commits.started == 2, "%d commitTransaction commands sent, want 2", commits.started);
   REQUIRE (count (coll, NULL, J ("{}")) == 1, "want exactly one document");
   return true;
}

/* Replica-set members gossip the cluster time: replies carry operationTime and
 * $clusterTime.clusterTime (timestamps), and the cluster time does not go backwards. */
static bool
check_cluster_time (void)
{
   bson_iter_t it;
   uint32_t t1, i1, t2, i2;
   res_t *r = run (g.main, g.db, J ("{'insert': '%s', 'documents': [{'_id': 1}]}", g.check), NULL);
   REQUIRE (r->ok, "insert: %s", describe (r));
   REQUIRE (bson_iter_init_find (&it, &r->reply, "operationTime") &&
               BSON_ITER_HOLDS_TIMESTAMP (&it),
            "reply has no operationTime timestamp");
   REQUIRE (bson_iter_init (&it, &r->reply) &&
               bson_iter_find_descendant (&it, "$clusterTime.clusterTime", &it) &&
               BSON_ITER_HOLDS_TIMESTAMP (&it),
            "reply has no $clusterTime.clusterTime timestamp");
   bson_iter_timestamp (&it, &t1, &i1);
   r = run (g.main, g.db, J ("{'insert': '%s', 'documents': [{'_id': 2}]}", g.check), NULL);
   REQUIRE (bson_iter_init (&it, &r->reply) &&
               bson_iter_find_descendant (&it, "$clusterTime.clusterTime", &it) &&
               BSON_ITER_HOLDS_TIMESTAMP (&it),
            "second reply has no $clusterTime.clusterTime");
   bson_iter_timestamp (&it, &t2, &i2);
   REQUIRE (t2 > t1 || (t2 == t1 && i2 >= i1), "cluster time went backwards");
   return true;
}

/* abortTransaction discards the transaction's inserts, updates and deletes. */
static bool
check_abort_discards (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   int64_t n;
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 0}"))->ok &&
               insert (coll, NULL, J ("{'_id': 2}"))->ok,
            "seed inserts failed");
   {
      OPEN_TXN (s, g.main, coll, 3);
      REQUIRE_OK (update (coll, s, J ("{'_id': 1}"), J ("{'$set': {'n': 1}}")), "update");
      r = run (g.main, g.db,
               J ("{'delete': '%s', 'deletes': [{'q': {'_id': 2}, 'limit': 1}]}", g.check), s);
      REQUIRE (r->ok && get_int (&r->reply, "n", 0) == 1, "delete: %s", describe (r));
      REQUIRE_OK (abort_txn (s), "abort");
      n = count (coll, s, J ("{'_id': 3}"));
      REQUIRE (n == 0, "the session itself still sees the aborted insert");
   }
   n = count (coll, NULL, J ("{'_id': 3}"));
   REQUIRE (n == 0, "aborted insert visible (count %lld)", (long long) n);
   n = count (coll, NULL, J ("{'_id': 2}"));
   REQUIRE (n == 1, "aborted delete applied (count %lld)", (long long) n);
   REQUIRE (get_int (find_one (coll, NULL, J ("{'_id': 1}")), "n", -1) == 0,
            "aborted update applied");
   return true;
}

/* DuplicateKey (11000) inside a transaction is a write error without TransientTransactionError,
 * and it aborts the transaction (mongod's write path: a non-transient error in a transaction
 * fails the batch and aborts): the commit gets NoSuchTransaction, the first insert is gone. */
static bool
check_duplicate_key_in_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1}"))->ok, "seed insert failed");
   OPEN_TXN (s, g.main, coll, 2);
   r = insert (coll, s, J ("{'_id': 1}"));
   REQUIRE (code (r) == 11000, "duplicate _id in a transaction: %s, want 11000", describe (r));
   REQUIRE (!has_label (r, TTE), "DuplicateKey carries %s", TTE);
   r = commit (s);
   REQUIRE (code (r) == 251, "commit after DuplicateKey: %s, want NoSuchTransaction 251",
            describe (r));
   REQUIRE (count (coll, NULL, J ("{}")) == 1, "the aborted transaction's insert is visible");
   return true;
}

/* A unique secondary index is enforced (createIndexes unique, then a duplicate -> 11000). */
static bool
check_unique_index (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   res_t *r = run (g.main, g.db,
                   J ("{'createIndexes': '%s', 'indexes': [{'key': {'k': 1}, 'name': 'k_1',"
                      " 'unique': true}]}", g.check),
                   NULL);
   REQUIRE (r->ok, "createIndexes: %s", describe (r));
   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'k': 7}"))->ok, "first insert failed");
   r = insert (coll, NULL, J ("{'_id': 2, 'k': 7}"));
   REQUIRE (code (r) == 11000, "duplicate k: %s, want 11000", describe (r));
   REQUIRE (insert (coll, NULL, J ("{'_id': 3, 'k': 8}"))->ok, "insert of a distinct k failed");
   REQUIRE (count (coll, NULL, J ("{}")) == 2, "want exactly 2 documents");
   return true;
}

/* $inc keeps an int64 an int64, beyond 32 bits. */
static bool
check_int64_inc (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   bson_t *doc;
   bson_iter_t it;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': {'$numberLong': '1099511627776'}}"))->ok,
            "seed insert failed");
   REQUIRE_OK (update (coll, NULL, J ("{'_id': 1}"), J ("{'$inc': {'n': 1}}")), "$inc by an int32");
   REQUIRE_OK (update (coll, NULL, J ("{'_id': 1}"), J ("{'$inc': {'n': {'$numberLong': '2'}}}")),
               "$inc by an int64");
   doc = find_one (coll, NULL, J ("{'_id': 1}"));
   REQUIRE (doc && bson_iter_init_find (&it, doc, "n"), "document or field n missing");
   REQUIRE (BSON_ITER_HOLDS_INT64 (&it), "n has BSON type 0x%02x, want int64 (0x12)",
            (unsigned) bson_iter_type (&it));
   REQUIRE (bson_iter_int64 (&it) == 1099511627779LL, "n = %lld, want 1099511627779",
            (long long) bson_iter_int64 (&it));
   return true;
}

/* A standalone server refuses transactions on their first statement (mongod: IllegalOperation
 * 20, "Transaction numbers are only allowed on a replica set member or mongos"). */
static bool
check_standalone_refuses (void)
{
   mongoc_client_t *c;
   mongoc_client_session_t *s;
   res_t *r;

   if (!g.uri_standalone) {
      SKIP ("XDBTX_TEST_STANDALONE_URI is unset");
   }
   c = client_new (g.uri_standalone, g.app);
   s = session_new (c);
   if (!s) {
      return false; /* session_new gave the reason */
   }
   r = start (s, NULL);
   if (r->ok) {
      r = insert (coll_of (c), s, J ("{'_id': 1}"));
   }
   REQUIRE (!r->ok, "the standalone server accepted a transaction statement");
   printf ("# standalone refused the transaction: %s\n", describe (r));
   REQUIRE (code (r) == 20 || r->err.domain == MONGOC_ERROR_TRANSACTION,
            "unexpected refusal: %s (domain %u), want IllegalOperation 20", describe (r),
            r->err.domain);
   return true;
}

/* Two clusters share nothing: neither documents nor failpoints. */
static bool
check_two_clusters_independent (void)
{
   mongoc_collection_t *c1 = coll_of (g.main);
   mongoc_collection_t *c2;

   if (!g.uri2) {
      SKIP ("XDBTX_TEST_URI2 is unset");
   }
   c2 = coll_of (client_new (g.uri2, g.app));
   REQUIRE (insert (c1, NULL, J ("{'_id': 1, 'on': 1}"))->ok, "insert on cluster 1 failed");
   REQUIRE_OK (insert (c2, NULL, J ("{'_id': 1, 'on': 2}")), "the same _id on cluster 2");
   REQUIRE (count (c2, NULL, J ("{'on': 1}")) == 0, "cluster 2 sees cluster 1's document");
   REQUIRE (count (c1, NULL, J ("{'on': 2}")) == 0, "cluster 1 sees cluster 2's document");
   REQUIRE_OK (failpoint ("'alwaysOn'", "'failCommands': ['insert'], 'errorCode': 2"),
               "configureFailPoint on cluster 1");
   REQUIRE_OK (insert (c2, NULL, J ("{'_id': 2}")), "cluster 1's failpoint hit cluster 2");
   return true;
}

/* A transaction spanning two databases of one cluster commits atomically: neither write is
 * visible before the commit, both are after; an aborted one leaves neither. */
static bool
check_multi_database (void)
{
   mongoc_client_t *other = client_new (g.uri1, g.app);
   mongoc_collection_t *a = coll_of (g.main);
   mongoc_collection_t *b =
      own (mongoc_client_get_collection (g.main, g.db2, g.check), coll_free);
   mongoc_collection_t *a_out = coll_of (other);
   mongoc_collection_t *b_out =
      own (mongoc_client_get_collection (other, g.db2, g.check), coll_free);
   int round;
   res_t *r;

   run (g.main, g.db2, J ("{'create': '%s'}", g.check), NULL);
   for (round = 0; round < 2; round++) { /* 0: abort, 1: commit */
      mongoc_client_session_t *s = session_new (g.main);
      REQUIRE (start (s, NULL)->ok, "start_transaction failed");
      r = insert (a, s, J ("{'_id': %d}", round));
      REQUIRE (r->ok, "insert into %s: %s", g.db, describe (r));
      r = insert (b, s, J ("{'_id': %d}", round));
      REQUIRE (r->ok, "insert into %s: %s", g.db2, describe (r));
      REQUIRE (count (a_out, NULL, J ("{}")) == 0 && count (b_out, NULL, J ("{}")) == 0,
               "round %d: a write is visible before the commit", round);
      r = round ? commit (s) : abort_txn (s);
      REQUIRE (r->ok, "%s: %s", round ? "commit" : "abort", describe (r));
   }
   REQUIRE (count (a_out, NULL, J ("{'_id': 1}")) == 1 &&
               count (b_out, NULL, J ("{'_id': 1}")) == 1,
            "a committed write is missing");
   REQUIRE (count (a_out, NULL, J ("{}")) == 1 && count (b_out, NULL, J ("{}")) == 1,
            "an aborted write is visible");
   return true;
}

/* insert_many, update_many, delete_many and aggregate inside a transaction: the transaction
 * sees its own bulk writes, nobody else does until the commit. */
static bool
check_bulk_ops_in_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_collection_t *outside = coll_of (client_new (g.uri1, g.app));
   mongoc_client_session_t *s = session_new (g.main);
   const bson_t *docs[5];
   const bson_t *doc;
   mongoc_cursor_t *cur;
   int i;
   res_t *r = res_new ();

   for (i = 0; i < 5; i++) {
      docs[i] = J ("{'_id': %d, 'k': %d}", i, i % 2);
   }
   REQUIRE (start (s, NULL)->ok, "start_transaction failed");
   bson_destroy (&r->reply);
   r->ok = mongoc_collection_insert_many (coll, docs, 5, with_session (NULL, s), &r->reply,
                                          &r->err);
   REQUIRE (r->ok, "insert_many: %s", describe (r));
   r = res_new ();
   bson_destroy (&r->reply);
   r->ok = mongoc_collection_update_many (coll, J ("{'k': 1}"), J ("{'$set': {'k': 2}}"),
                                          with_session (NULL, s), &r->reply, &r->err);
   REQUIRE (r->ok && get_int (&r->reply, "modifiedCount", -1) == 2, "update_many: %s",
            describe (r));
   r = res_new ();
   bson_destroy (&r->reply);
   r->ok = mongoc_collection_delete_many (coll, J ("{'k': 0}"), with_session (NULL, s),
                                          &r->reply, &r->err);
   REQUIRE (r->ok && get_int (&r->reply, "deletedCount", -1) == 3, "delete_many: %s",
            describe (r));
   cur = mongoc_collection_aggregate (
      coll, MONGOC_QUERY_NONE,
      J ("{'pipeline': [{'$group': {'_id': '$k', 'n': {'$sum': 1}}}]}"), with_session (NULL, s),
      NULL);
   i = 0;
   while (mongoc_cursor_next (cur, &doc)) {
      if (get_int (doc, "_id", -1) == 2 && get_int (doc, "n", -1) == 2) {
         i++;
      } else {
         i += 100;
      }
   }
   mongoc_cursor_destroy (cur);
   REQUIRE (i == 1, "aggregate in the transaction: want the one group {_id: 2, n: 2}");
   REQUIRE (count (outside, NULL, J ("{}")) == 0, "the uncommitted bulk writes are visible");
   REQUIRE_OK (commit (s), "commit");
   REQUIRE (count (outside, NULL, J ("{'k': 2}")) == 2 && count (outside, NULL, J ("{}")) == 2,
            "after commit, want the 2 documents with k 2");
   return true;
}

/* Since 4.4 (wire 9) an insert in a transaction creates a missing collection, as part of the
 * transaction: an abort leaves no collection, a commit leaves it with the document. */
static bool
check_implicit_create_in_txn (void)
{
   res_t *r = admin (J ("{'hello': 1}"));
   char name[96];
   int round;

   if (r->ok && get_int (&r->reply, "maxWireVersion", 0) < 9) {
      SKIP ("server older than 4.4");
   }
   for (round = 0; round < 2; round++) { /* 0: abort, 1: commit */
      mongoc_client_session_t *s = session_new (g.main);
      mongoc_collection_t *coll;
      snprintf (name, sizeof name, "%s_%d", g.check, round);
      coll = own (mongoc_client_get_collection (g.main, g.db, name), coll_free);
      REQUIRE (start (s, NULL)->ok, "start_transaction failed");
      REQUIRE_OK (insert (coll, s, J ("{'_id': 1}")),
                  "insert into a missing collection in a transaction");
      r = round ? commit (s) : abort_txn (s);
      REQUIRE (r->ok, "%s: %s", round ? "commit" : "abort", describe (r));
      r = run (g.main, g.db, J ("{'listCollections': 1, 'filter': {'name': '%s'}}", name),
               NULL);
      REQUIRE_OK (r, "listCollections");
      REQUIRE ((*get_str (&r->reply, "cursor.firstBatch.0.name") != '\0') == (round == 1),
               "after %s the collection %s", round ? "commit" : "abort",
               round ? "is missing" : "exists");
   }
   REQUIRE (count (own (mongoc_client_get_collection (g.main, g.db, name), coll_free), NULL,
                   J ("{}")) == 1,
            "the committed document is missing");
   return true;
}

/* A read-only transaction commits. */
static bool
check_read_only_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_client_session_t *s = session_new (g.main);
   REQUIRE (insert (coll, NULL, J ("{'_id': 1}"))->ok, "seed insert failed");
   REQUIRE (start (s, NULL)->ok, "start_transaction failed");
   REQUIRE (find_one (coll, s, J ("{'_id': 1}")), "find in the transaction missed the document");
   REQUIRE_OK (commit (s), "commit");
   return true;
}

/* Transaction options readConcern majority, writeConcern majority and maxCommitTimeMS are
 * accepted; the commit carries w: "majority" and maxTimeMS. */
static bool
check_txn_options_majority (void)
{
   mongoc_client_t *c = client_with_apm ();
   mongoc_collection_t *coll = coll_of (c);
   mongoc_client_session_t *s = session_new (c);
   res_t *r = start (s, "{'readConcern': 'majority', 'writeConcern': 'majority',"
                        " 'maxCommitTimeMS': 5000}");
   REQUIRE (r->ok, "start_transaction: %s", describe (r));
   REQUIRE_OK (insert (coll, s, J ("{'_id': 1}")), "insert");
   REQUIRE (count (coll, s, J ("{}")) == 1, "the transaction does not see its insert");
   REQUIRE_OK (commit (s), "commit");
   REQUIRE (strcmp (commits.w[0], "majority") == 0, "commit has writeConcern.w '%s'",
            commits.w[0]);
   REQUIRE (commits.max_time_ms == 5000, "commit has maxTimeMS %lld, want 5000",
            (long long) commits.max_time_ms);
   REQUIRE (count (coll, NULL, J ("{}")) == 1, "the committed document is missing");
   return true;
}

/* A causally consistent session reads its own writes: libmongoc sends readConcern
 * {afterClusterTime} on reads and on a transaction's first statement. */
static bool
check_causal_session (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_client_session_t *s = session_new (g.main);
   res_t *r = insert (coll, s, J ("{'_id': 1}"));
   REQUIRE (r->ok, "insert in the session: %s", describe (r));
   REQUIRE (find_one (coll, s, J ("{'_id': 1}")), "a read after the write misses it");
   REQUIRE (start (s, NULL)->ok, "start_transaction failed");
   REQUIRE (count (coll, s, J ("{'_id': 1}")) == 1,
            "the transaction's first statement (with afterClusterTime) misses the write");
   REQUIRE_OK (insert (coll, s, J ("{'_id': 2}")), "insert in the transaction");
   REQUIRE_OK (commit (s), "commit");
   REQUIRE (count (coll, s, J ("{}")) == 2, "a read after the commit misses a write");
   return true;
}

/* Retryable writes: a write whose reply carries a retryable writeConcernError was applied;
 * libmongoc retries it with the same txnNumber and the server must answer from its record
 * of the first execution, not apply it again. */
static bool
retryable_replay (const char *cmd_name)
{
   mongoc_client_t *c = client_with_apm ();
   mongoc_collection_t *coll = coll_of (c);
   char data[256];
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 0}"))->ok, "seed insert failed");
   commits.writes = 0;
   snprintf (data, sizeof data,
             "'failCommands': ['%s'], 'writeConcernError': {'code': 91, 'codeName':"
             " 'ShutdownInProgress', 'errmsg': 'Replication is being shut down',"
             " 'errorLabels': ['RetryableWriteError']}",
             cmd_name);
   FAILPOINT ("{'times': 1}", data);
   if (!strcmp (cmd_name, "insert")) {
      r = insert (coll, NULL, J ("{'_id': 2}"));
   } else {
      r = update (coll, NULL, J ("{'_id': 1}"), J ("{'$inc': {'n': 1}}"));
   }
   REQUIRE (r->ok, "%s: %s", cmd_name, describe (r));
   REQUIRE (commits.writes == 2, "%d %s commands sent, want 2 (a retry)", commits.writes,
            cmd_name);
   REQUIRE (count (coll, NULL, J ("{}")) == (strcmp (cmd_name, "insert") ? 1 : 2),
            "wrong number of documents");
   REQUIRE (get_int (find_one (coll, NULL, J ("{'_id': 1}")), "n", -1) ==
               (strcmp (cmd_name, "insert") ? 1 : 0),
            "the retried $inc was applied twice");
   return true;
}

static bool
check_retryable_insert_replay (void)
{
   return retryable_replay ("insert");
}

static bool
check_retryable_update_replay (void)
{
   return retryable_replay ("update");
}

/* ===== runner ============================================================================ */

static const conformance_check_t checks[] = {
   {"snapshot_read", check_snapshot_read},
   {"snapshot_read_rc_snapshot", check_snapshot_read_rc_snapshot},
   {"no_dirty_read", check_no_dirty_read},
   {"write_conflict", check_write_conflict},
   {"write_conflict_after_snapshot", check_write_conflict_after_snapshot},
   {"write_conflict_insert", check_write_conflict_insert},
   {"commit_twice", check_commit_twice},
   {"cluster_time", check_cluster_time},
   {"abort_discards", check_abort_discards},
   {"duplicate_key_in_txn", check_duplicate_key_in_txn},
   {"unique_index", check_unique_index},
   {"int64_inc", check_int64_inc},
   {"standalone_refuses", check_standalone_refuses},
   {"two_clusters_independent", check_two_clusters_independent},
   {"multi_database", check_multi_database},
   {"bulk_ops_in_txn", check_bulk_ops_in_txn},
   {"implicit_create_in_txn", check_implicit_create_in_txn},
   {"read_only_txn", check_read_only_txn},
   {"txn_options_majority", check_txn_options_majority},
   {"causal_session", check_causal_session},
   {"retryable_insert_replay", check_retryable_insert_replay},
   {"retryable_update_replay", check_retryable_update_replay},
};

int
main (void)
{
   return conformance_main (checks, (int) (sizeof checks / sizeof checks[0]));
}
