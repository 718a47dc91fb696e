/*
 * conformance - does the test server behave like mongod where xdbtx depends on it?
 *
 * xdbtx's integration tests run against the project's own server (spec/server/xdbtx-testd),
 * so that server is the oracle; this program pins its behaviour with libmongoc alone,
 * independent of the Lua binding. Every expectation is what mongod documents, never a quirk
 * of the test server, so the same binary must pass against a real replica set started with
 * enableTestCommands (XDBTX_TEST_URI, XDBTX_TEST_URI2 = a second, independent cluster,
 * XDBTX_TEST_STANDALONE_URI = a standalone mongod; checks whose URI is unset are skipped).
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

/* killSessions aborts the session's transaction: its writes vanish, its commit gets
 * NoSuchTransaction (251). */
static bool
check_kill_sessions_aborts (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   bson_t *cmd = J ("{}");
   bson_t arr;
   res_t *r;
   OPEN_TXN (s, g.main, coll, 1);

   bson_append_array_begin (cmd, "killSessions", -1, &arr);
   bson_append_document (&arr, "0", -1, mongoc_client_session_get_lsid (s));
   bson_append_array_end (cmd, &arr);
   REQUIRE_OK (admin (cmd), "killSessions");
   r = commit (s);
   REQUIRE (code (r) == 251, "commit after killSessions: %s, want NoSuchTransaction 251",
            describe (r));
   REQUIRE (count (coll, NULL, J ("{}")) == 0, "the killed transaction's insert is visible");
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

/* A transaction older than transactionLifetimeLimitSeconds is aborted by the server: its
 * locks are released (another client's write goes through) and its commit gets
 * NoSuchTransaction (251). */
static bool
lifetime_expiry (mongoc_collection_t *coll)
{
   mongoc_client_t *other = client_new (g.uri1, g.app);
   res_t *r;
   OPEN_TXN (s, g.main, coll, 2);

   REQUIRE_OK (update (coll, s, J ("{'_id': 1}"), J ("{'$set': {'n': 1}}")),
               "update in the transaction");
   sleep_ms (2500);
   r = run (other, g.db,
            J ("{'update': '%s', 'updates': [{'q': {'_id': 1}, 'u': {'$set': {'n': 7}}}],"
               " 'maxTimeMS': 3000}", g.check),
            NULL);
   REQUIRE (r->ok, "another client's write to the expired transaction's document: %s",
            describe (r));
   r = commit (s);
   REQUIRE (code (r) == 251, "commit 2.5 s into a 1 s lifetime: %s, want NoSuchTransaction 251",
            describe (r));
   REQUIRE (count (coll, NULL, J ("{'_id': 2}")) == 0,
            "the expired transaction's insert is visible");
   REQUIRE (get_int (find_one (coll, NULL, J ("{'_id': 1}")), "n", -1) == 7,
            "the other client's write is missing");
   return true;
}

static bool
check_lifetime_expiry (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   res_t *r = admin (J ("{'getParameter': 1, 'transactionLifetimeLimitSeconds': 1}"));
   int64_t old = r->ok ? get_int (&r->reply, "transactionLifetimeLimitSeconds", 60) : 60;
   bool ok;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 0}"))->ok, "seed insert failed");
   REQUIRE_OK (admin (J ("{'setParameter': 1, 'transactionLifetimeLimitSeconds': 1}")),
               "setParameter transactionLifetimeLimitSeconds");
   ok = lifetime_expiry (coll);
   r = admin (J ("{'setParameter': 1, 'transactionLifetimeLimitSeconds': %lld}", (long long) old));
   REQUIRE (!ok || r->ok, "restoring transactionLifetimeLimitSeconds: %s", describe (r));
   return ok;
}

/* A non-transactional write to a document a transaction has written waits for it, bounded
 * by maxTimeMS: MaxTimeMSExpired (50), promptly. maxTimeMS must be at command level, so the
 * update goes as a raw command. */
static bool
check_blocked_write_times_out (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_client_t *other = client_new (g.uri1, g.app);
   int64_t t0, ms;
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 0}"))->ok, "seed insert failed");
   OPEN_TXN (s, g.main, coll, 2);
   REQUIRE_OK (update (coll, s, J ("{'_id': 1}"), J ("{'$inc': {'n': 1}}")),
               "update in the transaction");
   t0 = now_ms ();
   r = run (other, g.db,
            J ("{'update': '%s', 'updates': [{'q': {'_id': 1}, 'u': {'$set': {'n': 5}}}],"
               " 'maxTimeMS': 50}", g.check),
            NULL);
   ms = now_ms () - t0;
   REQUIRE (code (r) == 50, "blocked update: %s, want MaxTimeMSExpired 50", describe (r));
   REQUIRE (get_int (&r->reply, "code", 0) == 50,
            "MaxTimeMSExpired came as a write error, want a command error (ok: 0, code 50)");
   REQUIRE (ms < 5000, "the blocked update took %lld ms", (long long) ms);
   REQUIRE (commit (s)->ok, "the transaction's commit failed after the blocked write");
   REQUIRE (get_int (find_one (coll, NULL, J ("{'_id': 1}")), "n", -1) == 1,
            "n is not 1: the timed-out update was applied or the transaction's was lost");
   return true;
}

/* The same for an insert of an _id a transaction inserted and has not committed. */
static bool
check_blocked_insert_times_out (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_client_t *other = client_new (g.uri1, g.app);
   res_t *r;
   OPEN_TXN (s, g.main, coll, 1);

   r = run (other, g.db,
            J ("{'insert': '%s', 'documents': [{'_id': 1}], 'maxTimeMS': 50}", g.check), NULL);
   REQUIRE (code (r) == 50, "insert of the transaction's uncommitted _id: %s, want "
            "MaxTimeMSExpired 50", describe (r));
   REQUIRE (commit (s)->ok, "the transaction's commit failed");
   r = run (other, g.db, J ("{'insert': '%s', 'documents': [{'_id': 1}]}", g.check), NULL);
   REQUIRE (code (r) == 11000, "the same insert after the commit: %s, want 11000",
            describe (r));
   return true;
}

/* ... and once the transaction commits, the blocked write goes through. */
typedef struct {
   mongoc_client_t *client;
   const bson_t *cmd;
   res_t *r; /* reply initialised (empty) by res_new; the thread replaces it */
   int64_t ms;
} blocked_t;

static void *
blocked_update (void *p)
{
   blocked_t *b = p;
   int64_t t0 = now_ms ();
   bson_destroy (&b->r->reply);
   b->r->ok = mongoc_client_command_with_opts (
      b->client, g.db, b->cmd, NULL, NULL, &b->r->reply, &b->r->err);
   b->ms = now_ms () - t0;
   return NULL;
}

static bool
check_blocked_write_resumes (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   blocked_t b = {client_new (g.uri1, g.app),
                  J ("{'update': '%s', 'updates': [{'q': {'_id': 1}, 'u': {'$inc': {'n': 10}}}],"
                     " 'maxTimeMS': 10000}", g.check),
                  res_new (), 0};
   pthread_t th;
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 0}"))->ok, "seed insert failed");
   {
      OPEN_TXN (s, g.main, coll, 2);
      REQUIRE_OK (update (coll, s, J ("{'_id': 1}"), J ("{'$inc': {'n': 1}}")),
                  "update in the transaction");
      pthread_create (&th, NULL, blocked_update, &b);
      sleep_ms (400);
      r = commit (s);
      pthread_join (th, NULL);
   }
   REQUIRE (r->ok, "commit: %s", describe (r));
   REQUIRE (b.r->ok && get_int (&b.r->reply, "nModified", 0) == 1,
            "the blocked update: %s, nModified %lld", describe (b.r),
            (long long) get_int (&b.r->reply, "nModified", 0));
   REQUIRE (b.ms >= 300, "the update returned after %lld ms: it did not wait for the transaction",
            (long long) b.ms);
   REQUIRE (get_int (find_one (coll, NULL, J ("{'_id': 1}")), "n", -1) == 11,
            "n is not 11 (1 from the transaction + 10 from the blocked update)");
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

/* ===== the server's transaction rules, driven by hand ===================================== */

/* These checks write the transaction fields (txnNumber, startTransaction, autocommit) into
 * raw commands themselves, to reach states libmongoc refuses to produce. The session lives
 * on a client of its own: its lsid then never returns to a pool where a libmongoc-managed
 * transaction would reuse it with a smaller txnNumber. */
static mongoc_client_t *raw_client;

static mongoc_client_session_t *
raw_session (void)
{
   raw_client = client_new (g.uri1, g.app);
   return session_new (raw_client);
}

/* Statement of transaction TXN on S: insert {_id: ID}; START adds startTransaction: true,
 * EXTRA more top-level fields (", 'readConcern': ..." or ""). */
static res_t *
raw_insert (mongoc_client_session_t *s, int txn, int id, bool start, const char *extra)
{
   return run (raw_client, g.db,
               J ("{'insert': '%s', 'documents': [{'_id': %d}], 'txnNumber': {'$numberLong':"
                  " '%d'}, 'autocommit': false%s%s}",
                  g.check, id, txn, start ? ", 'startTransaction': true" : "", extra),
               s);
}

/* VERB (commitTransaction or abortTransaction) for transaction TXN on S. */
static res_t *
raw_end (mongoc_client_session_t *s, const char *verb, int txn)
{
   return run (raw_client, "admin",
               J ("{'%s': 1, 'txnNumber': {'$numberLong': '%d'}, 'autocommit': false}", verb, txn),
               s);
}

#define RAW_TXN(s, txn, id)                                                         \
   do {                                                                             \
      res_t *r_ = raw_insert (s, txn, id, true, "");                                \
      REQUIRE (r_->ok, "starting transaction %d: %s", txn, describe (r_));          \
   } while (0)

/* abortTransaction of a committed transaction: TransactionCommitted (256). */
static bool
check_rule_abort_committed (void)
{
   mongoc_client_session_t *s = raw_session ();
   res_t *r;
   RAW_TXN (s, 10, 1);
   REQUIRE_OK (raw_end (s, "commitTransaction", 10), "commit");
   r = raw_end (s, "abortTransaction", 10);
   REQUIRE (code (r) == 256, "abort after commit: %s, want TransactionCommitted 256",
            describe (r));
   REQUIRE (count (coll_of (g.main), NULL, J ("{}")) == 1, "the committed insert is missing");
   return true;
}

/* commitTransaction of an aborted transaction: NoSuchTransaction (251) with
 * TransientTransactionError. */
static bool
check_rule_commit_aborted (void)
{
   mongoc_client_session_t *s = raw_session ();
   res_t *r;
   RAW_TXN (s, 10, 1);
   REQUIRE_OK (raw_end (s, "abortTransaction", 10), "abort");
   r = raw_end (s, "commitTransaction", 10);
   REQUIRE (code (r) == 251, "commit after abort: %s, want NoSuchTransaction 251", describe (r));
   REQUIRE (has_label (r, TTE), "NoSuchTransaction on commit lacks %s", TTE);
   return true;
}

/* A statement for a txnNumber that never started: NoSuchTransaction (251), transient. */
static bool
check_rule_no_such_transaction (void)
{
   mongoc_client_session_t *s = raw_session ();
   res_t *r = raw_insert (s, 10, 1, false, "");
   REQUIRE (code (r) == 251, "statement without startTransaction: %s, want 251", describe (r));
   REQUIRE (has_label (r, TTE), "NoSuchTransaction lacks %s", TTE);
   REQUIRE (count (coll_of (g.main), NULL, J ("{}")) == 0, "the statement was applied");
   return true;
}

/* A txnNumber below the session's highest: TransactionTooOld (225). Starting a newer
 * transaction aborts the open older one. */
static bool
check_rule_too_old (void)
{
   mongoc_client_session_t *s = raw_session ();
   res_t *r;
   RAW_TXN (s, 10, 1);
   RAW_TXN (s, 11, 2);
   REQUIRE_OK (raw_end (s, "commitTransaction", 11), "commit of the newer transaction");
   r = raw_end (s, "commitTransaction", 10);
   REQUIRE (code (r) == 225, "commit of the older transaction: %s, want TransactionTooOld 225",
            describe (r));
   r = raw_insert (s, 9, 3, true, "");
   REQUIRE (code (r) == 225, "starting an older transaction: %s, want 225", describe (r));
   REQUIRE (count (coll_of (g.main), NULL, J ("{}")) == 1 &&
               count (coll_of (g.main), NULL, J ("{'_id': 2}")) == 1,
            "want only the newer transaction's document");
   return true;
}

/* The second statement of a raw transaction, an insert carrying EXTRA (members appended to
 * the command), is refused with InvalidOptions (72); WHAT names it in the failure reason. */
static bool
rule_invalid_option (const char *extra, const char *what)
{
   mongoc_client_session_t *s = raw_session ();
   res_t *r;
   RAW_TXN (s, 10, 1);
   r = raw_insert (s, 10, 2, false, extra);
   REQUIRE (code (r) == 72, "%s: %s, want InvalidOptions 72", what, describe (r));
   return true;
}

/* readConcern on a statement after the first: InvalidOptions (72). */
static bool
check_rule_read_concern_first_only (void)
{
   return rule_invalid_option (", 'readConcern': {'level': 'local'}",
                               "readConcern on the second statement");
}

/* writeConcern on a statement inside a transaction: InvalidOptions (72). */
static bool
check_rule_no_write_concern_in_txn (void)
{
   return rule_invalid_option (", 'writeConcern': {'w': 1}",
                               "writeConcern on a transaction statement");
}

/* Commands mongod does not allow in a multi-document transaction (count, listCollections,
 * drop): OperationNotSupportedInTransaction (263). libmongoc's estimated_document_count
 * sends count. */
static bool
check_rule_commands_not_in_txn (void)
{
   static const struct {
      const char *name, *cmd;
   } cmds[] = {{"count", "{'count': '%s'}"},
               {"listCollections", "{'listCollections': 1, 'filter': {'name': '%s'}}"},
               {"drop", "{'drop': '%s'}"}};
   mongoc_collection_t *coll = coll_of (g.main);
   int i;

   for (i = 0; i < (int) (sizeof cmds / sizeof cmds[0]); i++) {
      res_t *r;
      OPEN_TXN (s, g.main, coll, i + 1);
      r = run (g.main, g.db, J (cmds[i].cmd, g.check), s);
      REQUIRE (code (r) == 263, "%s in a transaction: %s, want 263", cmds[i].name, describe (r));
   }
   return true;
}

/* findAndModify in a transaction returns the transaction's view and stays invisible
 * outside until the commit. */
static bool
check_find_and_modify_in_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_collection_t *outside = coll_of (client_new (g.uri1, g.app));
   mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new ();
   res_t *r = res_new ();
   bson_t *value = NULL;
   bson_iter_t it;

   bson_destroy (&r->reply);
   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 1}"))->ok, "seed insert failed");
   {
      OPEN_TXN (s, g.main, coll, 2);
      mongoc_find_and_modify_opts_set_update (fam, J ("{'$inc': {'n': 1}}"));
      mongoc_find_and_modify_opts_set_flags (fam, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
      mongoc_find_and_modify_opts_append (fam, with_session (NULL, s));
      r->ok = mongoc_collection_find_and_modify_with_opts (coll, J ("{'_id': 1}"), fam,
                                                           &r->reply, &r->err);
      mongoc_find_and_modify_opts_destroy (fam);
      REQUIRE (r->ok, "findAndModify: %s", describe (r));
      if (bson_iter_init_find (&it, &r->reply, "value") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
         uint32_t len;
         const uint8_t *data;
         bson_iter_document (&it, &len, &data);
         value = own (bson_new_from_data (data, len), bson_free_doc);
      }
      REQUIRE (get_int (value, "n", -1) == 2, "findAndModify returned n = %lld, want 2",
               (long long) get_int (value, "n", -1));
      REQUIRE (get_int (find_one (outside, NULL, J ("{'_id': 1}")), "n", -1) == 1,
               "the uncommitted findAndModify is visible outside");
      REQUIRE (commit (s)->ok, "commit failed");
   }
   REQUIRE (get_int (find_one (outside, NULL, J ("{'_id': 1}")), "n", -1) == 2,
            "the committed findAndModify is not visible");
   return true;
}

/* A cursor opened in a transaction is iterated with getMore in the same transaction and sees
 * the transaction's own writes. */
static bool
check_cursor_in_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_cursor_t *cur;
   const bson_t *doc;
   bson_error_t err;
   int i, n = 0;
   bool failed;

   for (i = 1; i <= 5; i++) {
      REQUIRE (insert (coll, NULL, J ("{'_id': %d}", i))->ok, "seed insert failed");
   }
   {
      OPEN_TXN (s, g.main, coll, 6);
      cur = mongoc_collection_find_with_opts (coll, J ("{}"),
                                              with_session (J ("{'batchSize': 2}"), s), NULL);
      while (mongoc_cursor_next (cur, &doc)) {
         n++;
      }
      failed = mongoc_cursor_error (cur, &err);
      mongoc_cursor_destroy (cur);
      REQUIRE (!failed, "cursor in the transaction: %s", err.message);
      REQUIRE (n == 6, "the cursor returned %d documents, want 6", n);
      REQUIRE (commit (s)->ok, "commit failed");
   }
   return true;
}

/* ===== failCommand failpoint options ===================================================== */

/* Runs N raw finds on client C and returns their outcomes as a string owned by a static
 * buffer: '.' success, 'E' error code 2, '?' anything else. */
static const char *
find_pattern (mongoc_client_t *c, int n)
{
   static char buf[16];
   int i;
   for (i = 0; i < n && i < (int) sizeof buf - 1; i++) {
      res_t *r = run (c, g.db, J ("{'find': '%s', 'filter': {}}", g.check), NULL);
      buf[i] = r->ok ? '.' : code (r) == 2 ? 'E' : '?';
   }
   buf[i] = '\0';
   return buf;
}

static bool
check_fp_error_code (void)
{
   res_t *r;

   FAILPOINT ("{'times': 1}", "'failCommands': ['find'], 'errorCode': 2");
   r = run (g.main, g.db, J ("{'find': '%s'}", g.check), NULL);
   REQUIRE (code (r) == 2, "find under errorCode 2: %s", describe (r));
   REQUIRE (r->err.domain == MONGOC_ERROR_SERVER, "error domain %u, want a server error",
            r->err.domain);
   return true;
}

static bool
check_fp_error_labels (void)
{
   res_t *r;

   FAILPOINT ("{'times': 1}",
              "'failCommands': ['find'], 'errorCode': 2,"
              " 'errorLabels': ['XdbtxConformanceLabel']");
   r = run (g.main, g.db, J ("{'find': '%s'}", g.check), NULL);
   REQUIRE (code (r) == 2, "find: %s, want code 2", describe (r));
   REQUIRE (has_label (r, "XdbtxConformanceLabel"), "reply lacks the failpoint's errorLabels");
   return true;
}

static bool
check_fp_close_connection (void)
{
   res_t *r;

   FAILPOINT ("{'times': 1}", "'failCommands': ['find'], 'closeConnection': true");
   r = run (g.main, g.db, J ("{'find': '%s'}", g.check), NULL);
   REQUIRE (!r->ok && r->err.domain == MONGOC_ERROR_STREAM,
            "find under closeConnection: %s (domain %u), want a network error", describe (r),
            r->err.domain);
   REQUIRE_OK (run (g.main, g.db, J ("{'find': '%s'}", g.check), NULL),
               "find after the closed connection");
   return true;
}

/* writeConcernError: the write happens and the reply carries the error (ok: 1). */
static bool
check_fp_write_concern_error (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   res_t *r;

   FAILPOINT ("{'times': 1}",
              "'failCommands': ['insert'], 'writeConcernError': {'code': 91,"
              " 'codeName': 'ShutdownInProgress', 'errmsg': 'Replication is being"
              " shut down'}");
   r = run (g.main, g.db, J ("{'insert': '%s', 'documents': [{'_id': 1}]}", g.check), NULL);
   REQUIRE (get_int (&r->reply, "ok", 0) == 1, "insert reply not ok: %s", describe (r));
   REQUIRE (get_int (&r->reply, "writeConcernError.code", 0) == 91,
            "reply has no writeConcernError with code 91");
   REQUIRE (count (coll, NULL, J ("{}")) == 1, "the insert was not applied");
   return true;
}

static bool
check_fp_block_connection (void)
{
   int64_t t0, ms;
   res_t *r;

   FAILPOINT ("{'times': 1}",
              "'failCommands': ['find'], 'blockConnection': true, 'blockTimeMS': 300");
   t0 = now_ms ();
   r = run (g.main, g.db, J ("{'find': '%s'}", g.check), NULL);
   ms = now_ms () - t0;
   REQUIRE (r->ok, "blocked find: %s (blockConnection alone must not fail)", describe (r));
   REQUIRE (ms >= 300, "blocked find took %lld ms, want >= 300", (long long) ms);
   t0 = now_ms ();
   r = run (g.main, g.db, J ("{'find': '%s'}", g.check), NULL);
   ms = now_ms () - t0;
   REQUIRE (r->ok && ms < 300, "the next find (times 1 used up) took %lld ms: %s",
            (long long) ms, describe (r));
   return true;
}

/* A failpoint with an appName hits only clients with that appName. */
static bool
check_fp_app_name (void)
{
   mongoc_client_t *other = client_new (g.uri1, g.other_app);
   const char *p;
   res_t *r = failpoint_for (g.other_app, "'alwaysOn'", "'failCommands': ['find'], 'errorCode': 2");
   REQUIRE (r->ok, "configureFailPoint: %s", describe (r));
   p = find_pattern (g.main, 2);
   REQUIRE (strcmp (p, "..") == 0, "client '%s' was hit: %s", g.app, p);
   p = find_pattern (other, 2);
   REQUIRE (strcmp (p, "EE") == 0, "client '%s' got %s, want EE", g.other_app, p);
   return true;
}

/* Modes: one table row per mode, the outcomes of successive finds. */
static bool
fp_mode (const char *mode, const char *want)
{
   res_t *r = failpoint (mode, "'failCommands': ['find'], 'errorCode': 2");
   const char *p;
   REQUIRE (r->ok, "configureFailPoint %s: %s", mode, describe (r));
   p = find_pattern (g.main, (int) strlen (want));
   REQUIRE (strcmp (p, want) == 0, "mode %s: finds went %s, want %s", mode, p, want);
   return true;
}

static bool
check_fp_mode_times (void)
{
   return fp_mode ("{'times': 2}", "EE..");
}

static bool
check_fp_mode_skip (void)
{
   return fp_mode ("{'skip': 2}", "..EEE");
}

static bool
check_fp_mode_always_on_then_off (void)
{
   const char *p;
   if (!fp_mode ("'alwaysOn'", "EEEE")) {
      return false;
   }
   failpoint_off ();
   p = find_pattern (g.main, 2);
   REQUIRE (strcmp (p, "..") == 0, "after mode off: %s, want ..", p);
   return true;
}

/* ===== commit retries and error labels =================================================== */

/* Commit fails once with 189 (no labels: the server adds RetryableWriteError): libmongoc
 * retries once with w:"majority" and the commit succeeds. */
static bool
check_commit_retry_majority (void)
{
   COMMIT_WITH_FAILPOINT (t, client_with_apm (), "{'times': 1}", "'errorCode': 189");

   REQUIRE_OK (t.commit, "commit");
   REQUIRE (commits.started == 2, "%d commitTransaction commands sent, want 2", commits.started);
   REQUIRE (commits.failed >= 1 && commits.failed_rwe[0],
            "the failed commit's reply lacks %s", RWE);
   REQUIRE (strcmp (commits.w[1], "majority") == 0,
            "retried commit has writeConcern.w '%s', want 'majority'", commits.w[1]);
   REQUIRE (count (t.coll, NULL, J ("{}")) == 1, "the committed document is missing");
   return true;
}

/* Commit fails twice with 189: the commit fails with UnknownTransactionCommitResult, and an
 * explicit second commit (failpoint off) then succeeds. */
static bool
check_commit_unknown_result (void)
{
   COMMIT_WITH_FAILPOINT (t, g.main, "{'times': 2}", "'errorCode': 189");

   REQUIRE (code (t.commit) == 189, "commit: %s, want code 189", describe (t.commit));
   REQUIRE (has_label (t.commit, UTCR), "failed commit lacks %s", UTCR);
   failpoint_off ();
   REQUIRE_OK (commit (t.s), "explicit commit retry");
   REQUIRE (count (t.coll, NULL, J ("{}")) == 1, "the committed document is missing");
   return true;
}

/* The commit's reply carries a writeConcernError (64, wtimeout): the commit was applied, and
 * libmongoc reports the commit failed with UnknownTransactionCommitResult. */
static bool
check_commit_write_concern_error (void)
{
   COMMIT_WITH_FAILPOINT (t, g.main, "{'times': 1}",
                          "'writeConcernError': {'code': 64, 'codeName': 'WriteConcernFailed',"
                          " 'errmsg': 'waiting for replication timed out',"
                          " 'errInfo': {'wtimeout': true}}");

   REQUIRE (!t.commit->ok && code (t.commit) == 64, "commit: %s, want the writeConcernError 64",
            describe (t.commit));
   REQUIRE (has_label (t.commit, UTCR), "commit with a writeConcernError lacks %s", UTCR);
   REQUIRE (count (t.coll, NULL, J ("{}")) == 1, "the commit was not applied");
   REQUIRE_OK (commit (t.s), "explicit commit retry");
   return true;
}

/* The connection closes on commit: libmongoc retries and the commit succeeds, once. */
static bool
check_commit_close_connection (void)
{
   COMMIT_WITH_FAILPOINT (t, client_with_apm (), "{'times': 1}", "'closeConnection': true");

   REQUIRE_OK (t.commit, "commit");
   REQUIRE (commits.started == 2, "%d commitTransaction commands sent, want 2", commits.started);
   REQUIRE (count (t.coll, NULL, J ("{}")) == 1, "the committed document is missing");
   return true;
}

/* Error labels the server computes itself (wire >= 9): 112 on a transaction statement gets
 * TransientTransactionError. */
static bool
check_server_label_transient (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   res_t *r;
   OPEN_TXN (s, g.main, coll, 1);

   FAILPOINT ("{'times': 1}", "'failCommands': ['insert'], 'errorCode': 112");
   r = insert (coll, s, J ("{'_id': 2}"));
   REQUIRE (code (r) == 112, "insert: %s, want 112", describe (r));
   REQUIRE (has_label (r, TTE), "the server did not add %s to 112 in a transaction", TTE);
   return true;
}

/* ... and 10107 (NotWritablePrimary) on commit gets RetryableWriteError: libmongoc retries. */
static bool
check_server_label_retryable_commit (void)
{
   COMMIT_WITH_FAILPOINT (t, client_with_apm (), "{'times': 1}", "'errorCode': 10107");

   REQUIRE_OK (t.commit, "commit");
   REQUIRE (commits.failed >= 1 && commits.failed_rwe[0],
            "the server did not add %s to 10107 on commit", RWE);
   REQUIRE (commits.started == 2, "%d commitTransaction commands sent, want 2", commits.started);
   return true;
}

/* Outside transactions too: 189 on a retryable write gets RetryableWriteError from the
 * server, and libmongoc's retry then inserts the document once. */
static bool
check_server_label_retryable_write (void)
{
   mongoc_client_t *c = client_with_apm ();
   mongoc_collection_t *coll = coll_of (c);

   FAILPOINT ("{'times': 1}", "'failCommands': ['insert'], 'errorCode': 189");
   REQUIRE_OK (insert (coll, NULL, J ("{'_id': 1}")), "retryable insert");
   REQUIRE (commits.writes == 2, "%d insert commands sent, want 2 (a retry)", commits.writes);
   REQUIRE (count (coll, NULL, J ("{}")) == 1, "want exactly one document");
   return true;
}

/* An explicit errorLabels in the failpoint replaces the computed ones: 189 with
 * errorLabels [] on commit is not retried. */
static bool
check_fp_empty_error_labels (void)
{
   COMMIT_WITH_FAILPOINT (t, client_with_apm (), "{'times': 1}",
                          "'errorCode': 189, 'errorLabels': []");

   REQUIRE (code (t.commit) == 189, "commit: %s, want code 189", describe (t.commit));
   REQUIRE (commits.started == 1, "%d commitTransaction commands sent, want 1", commits.started);
   REQUIRE (commits.failed >= 1 && !commits.failed_rwe[0],
            "the reply has %s despite errorLabels []", RWE);
   return true;
}

/* with_transaction reruns its callback after a transient error: insert fails once with 112. */
typedef struct {
   mongoc_collection_t *coll;
   int calls;
} wt_ctx_t;

static bool
wt_insert (mongoc_client_session_t *s, void *p, bson_t **reply, bson_error_t *err)
{
   wt_ctx_t *ctx = p;
   bson_t opts = BSON_INITIALIZER, r;
   bool ok;

   ctx->calls++;
   ok = mongoc_client_session_append (s, &opts, err) &&
        mongoc_collection_insert_one (ctx->coll, J ("{'_id': 1}"), &opts, &r, err);
   if (!ok) {
      *reply = bson_copy (&r); /* hand the labels back, or with_transaction cannot retry */
   }
   bson_destroy (&r);
   bson_destroy (&opts);
   return ok;
}

/* Sets the failpoint {'times': 1} with DATA, then runs wt_insert in with_transaction on a new
 * session of the main client: it must succeed with the callback run twice (NOTE ends that
 * failure's reason) and exactly one document committed. */
static bool
with_transaction_rerun (const char *data, const char *note)
{
   wt_ctx_t ctx = {coll_of (g.main), 0};
   mongoc_client_session_t *s = session_new (g.main);
   res_t *r;

   FAILPOINT ("{'times': 1}", data);
   r = res_new ();
   bson_destroy (&r->reply);
   r->ok = mongoc_client_session_with_transaction (s, wt_insert, NULL, &ctx, &r->reply, &r->err);
   REQUIRE_OK (r, "with_transaction");
   REQUIRE (ctx.calls == 2, "callback ran %d times, want 2%s", ctx.calls, note);
   REQUIRE (count (ctx.coll, NULL, J ("{}")) == 1, "want exactly one committed document");
   return true;
}

static bool
check_with_transaction_reruns (void)
{
   return with_transaction_rerun ("'failCommands': ['insert'], 'errorCode': 112,"
                                  " 'errorLabels': ['TransientTransactionError']",
                                  "");
}

/* with_transaction reruns its callback after a network error on a statement (libmongoc
 * labels it TransientTransactionError itself): the server must cope with the abandoned
 * transaction and commit the rerun once. */
static bool
check_with_transaction_network_error (void)
{
   return with_transaction_rerun ("'failCommands': ['insert'], 'closeConnection': true", "");
}

/* Errors on commit that mongod labels TransientTransactionError itself (WriteConflict 112,
 * LockTimeout 24; isTransientTransactionError with isCommitOrAbort): with_transaction must
 * rerun the whole callback, as in the convenient-API spec's
 * commit-transienttransactionerror.json. */
static bool
commit_transient (int error_code)
{
   char data[128], note[64];

   snprintf (data, sizeof data, "'failCommands': ['commitTransaction'], 'errorCode': %d",
             error_code);
   snprintf (note, sizeof note, " (commit error %d not transient?)", error_code);
   return with_transaction_rerun (data, note);
}

static bool
check_commit_transient_112 (void)
{
   return commit_transient (112);
}

static bool
check_commit_transient_24 (void)
{
   return commit_transient (24);
}

/* ===== concurrency ======================================================================= */

/* 4 threads x 25 read-modify-write increments, each in with_transaction on a pooled client:
 * write conflicts must make the losers retry, so no increment is lost. */
enum { THREADS = 4, INCREMENTS = 25 };

typedef struct {
   mongoc_client_pool_t *pool;
   int failures;
   char err[256];
} incr_t;

static bool
incr_cb (mongoc_client_session_t *s, void *p, bson_t **reply, bson_error_t *err)
{
   mongoc_collection_t *coll = p;
   bson_t opts = BSON_INITIALIZER, r;
   bson_t *filter = BCON_NEW ("_id", BCON_UTF8 ("counter"));
   bson_t *upd = NULL;
   const bson_t *doc;
   mongoc_cursor_t *cur = NULL;
   int64_t n = -1;
   bool ok = false;

   if (!mongoc_client_session_append (s, &opts, err)) {
      goto out;
   }
   cur = mongoc_collection_find_with_opts (coll, filter, &opts, NULL);
   if (mongoc_cursor_next (cur, &doc)) {
      n = get_int (doc, "n", -1);
   } else if (mongoc_cursor_error_document (cur, err, &doc)) {
      *reply = bson_copy (doc);
      goto out;
   }
   if (n < 0) {
      bson_set_error (err, MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG,
                      "counter document missing");
      goto out;
   }
   upd = BCON_NEW ("$set", "{", "n", BCON_INT64 (n + 1), "}");
   ok = mongoc_collection_update_one (coll, filter, upd, &opts, &r, err);
   if (!ok) {
      *reply = bson_copy (&r);
   }
   bson_destroy (&r);
out:
   mongoc_cursor_destroy (cur);
   bson_destroy (upd);
   bson_destroy (filter);
   bson_destroy (&opts);
   return ok;
}

static void *
incr_thread (void *p)
{
   static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
   incr_t *t = p;
   mongoc_client_t *c = mongoc_client_pool_pop (t->pool);
   mongoc_collection_t *coll = mongoc_client_get_collection (c, g.db, g.check);
   bson_error_t err;
   mongoc_client_session_t *s = mongoc_client_start_session (c, NULL, &err);
   int i;

   for (i = 0; i < INCREMENTS; i++) {
      bson_t reply;
      bool ok = s && mongoc_client_session_with_transaction (s, incr_cb, NULL, coll, &reply, &err);
      if (s) {
         bson_destroy (&reply);
      }
      if (!ok) {
         pthread_mutex_lock (&mu);
         if (t->failures++ == 0) {
            bson_strncpy (t->err, err.message, sizeof t->err);
         }
         pthread_mutex_unlock (&mu);
      }
   }
   if (s) {
      mongoc_client_session_destroy (s);
   }
   mongoc_collection_destroy (coll);
   mongoc_client_pool_push (t->pool, c);
   return NULL;
}

static bool
check_concurrent_increments (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_uri_t *uri = make_uri (g.uri1, g.app);
   incr_t t = {mongoc_client_pool_new (uri), 0, ""};
   pthread_t th[THREADS];
   bson_t *doc;
   int i;

   mongoc_uri_destroy (uri);
   mongoc_client_pool_set_error_api (t.pool, MONGOC_ERROR_API_VERSION_2);
   if (!insert (coll, NULL, J ("{'_id': 'counter', 'n': {'$numberLong': '0'}}"))->ok) {
      mongoc_client_pool_destroy (t.pool);
      REQUIRE (false, "seed insert failed");
   }
   for (i = 0; i < THREADS; i++) {
      pthread_create (&th[i], NULL, incr_thread, &t);
   }
   for (i = 0; i < THREADS; i++) {
      pthread_join (th[i], NULL);
   }
   mongoc_client_pool_destroy (t.pool);
   REQUIRE (t.failures == 0, "%d with_transaction calls failed, first: %s", t.failures, t.err);
   doc = find_one (coll, NULL, J ("{'_id': 'counter'}"));
   REQUIRE (doc && get_int (doc, "n", -1) == THREADS * INCREMENTS, "counter is %lld, want %d",
            doc ? (long long) get_int (doc, "n", -1) : -1LL, THREADS * INCREMENTS);
   return true;
}

/* ===== the test server's command log ===================================================== */

/* xdbtx-testd records the commands it runs ({xdbtxCommandLog: 1} -> {commands: [{name, db,
 * lsid, txnNumber, startTransaction, autocommit, appName, ...}]}, clear: true empties it).
 * A 3-insert transaction logs exactly insert x3 and commitTransaction, all with one txnNumber,
 * the first insert alone carrying startTransaction. Handshakes, heartbeats, the log command
 * itself and other clients' commands are left out. */
static bool
check_command_log (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   char names[256] = "";
   bson_iter_t it, entry;
   res_t *r = admin (J ("{'xdbtxCommandLog': 1, 'clear': true}"));
   int64_t txn = -1;
   int i, kept = 0;

   if (code (r) == 59) {
      SKIP ("no xdbtxCommandLog command (a real server)");
   }
   REQUIRE (r->ok, "xdbtxCommandLog clear: %s", describe (r));
   {
      OPEN_TXN (s, g.main, coll, 1);
      for (i = 2; i <= 3; i++) {
         REQUIRE (insert (coll, s, J ("{'_id': %d}", i))->ok, "insert %d failed", i);
      }
      REQUIRE_OK (commit (s), "commit");
   }
   r = admin (J ("{'xdbtxCommandLog': 1}"));
   REQUIRE_OK (r, "xdbtxCommandLog");
   REQUIRE (bson_iter_init_find (&it, &r->reply, "commands") && BSON_ITER_HOLDS_ARRAY (&it) &&
               bson_iter_recurse (&it, &entry),
            "reply has no commands array");
   while (bson_iter_next (&entry)) {
      bson_t e;
      uint32_t len;
      const uint8_t *data;
      const char *name, *app;
      bool start_txn;

      REQUIRE (BSON_ITER_HOLDS_DOCUMENT (&entry), "a log entry is not a document");
      bson_iter_document (&entry, &len, &data);
      REQUIRE (bson_init_static (&e, data, len), "a log entry is malformed");
      name = get_str (&e, "name");
      app = get_str (&e, "appName");
      REQUIRE (*name, "a log entry has no name");
      if (!strcasecmp (name, "hello") || !strcasecmp (name, "isMaster") ||
          !strcmp (name, "xdbtxCommandLog") || (*app && strcmp (app, g.app) != 0)) {
         continue;
      }
      start_txn = bson_iter_init_find (&it, &e, "startTransaction") && bson_iter_as_bool (&it);
      REQUIRE (start_txn == (kept == 0), "%s (entry %d) %s startTransaction", name, kept + 1,
               start_txn ? "has" : "lacks");
      if (kept == 0) {
         txn = get_int (&e, "txnNumber", -1);
      }
      REQUIRE (get_int (&e, "txnNumber", -2) == txn, "%s has txnNumber %lld, the first had %lld",
               name, (long long) get_int (&e, "txnNumber", -2), (long long) txn);
      kept++;
      if (names[0]) {
         bson_strncpy (names + strlen (names), ",", sizeof names - strlen (names));
      }
      bson_strncpy (names + strlen (names), name, sizeof names - strlen (names));
   }
   REQUIRE (strcmp (names, "insert,insert,insert,commitTransaction") == 0,
            "log after clear: [%s], want [insert,insert,insert,commitTransaction]", names);
   return true;
}

/* ===== runner ============================================================================ */

static const struct {
   const char *name;
   bool (*fn) (void);
} checks[] = {
   {"snapshot_read", check_snapshot_read},
   {"snapshot_read_rc_snapshot", check_snapshot_read_rc_snapshot},
   {"no_dirty_read", check_no_dirty_read},
   {"write_conflict", check_write_conflict},
   {"write_conflict_after_snapshot", check_write_conflict_after_snapshot},
   {"write_conflict_insert", check_write_conflict_insert},
   {"kill_sessions_aborts", check_kill_sessions_aborts},
   {"commit_twice", check_commit_twice},
   {"cluster_time", check_cluster_time},
   {"abort_discards", check_abort_discards},
   {"lifetime_expiry", check_lifetime_expiry},
   {"blocked_write_times_out", check_blocked_write_times_out},
   {"blocked_insert_times_out", check_blocked_insert_times_out},
   {"blocked_write_resumes", check_blocked_write_resumes},
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
   {"rule_abort_committed", check_rule_abort_committed},
   {"rule_commit_aborted", check_rule_commit_aborted},
   {"rule_no_such_transaction", check_rule_no_such_transaction},
   {"rule_too_old", check_rule_too_old},
   {"rule_read_concern_first_only", check_rule_read_concern_first_only},
   {"rule_no_write_concern_in_txn", check_rule_no_write_concern_in_txn},
   {"rule_commands_not_in_txn", check_rule_commands_not_in_txn},
   {"cursor_in_txn", check_cursor_in_txn},
   {"find_and_modify_in_txn", check_find_and_modify_in_txn},
   {"fp_error_code", check_fp_error_code},
   {"fp_error_labels", check_fp_error_labels},
   {"fp_close_connection", check_fp_close_connection},
   {"fp_write_concern_error", check_fp_write_concern_error},
   {"fp_block_connection", check_fp_block_connection},
   {"fp_app_name", check_fp_app_name},
   {"fp_mode_times", check_fp_mode_times},
   {"fp_mode_skip", check_fp_mode_skip},
   {"fp_mode_always_on_then_off", check_fp_mode_always_on_then_off},
   {"commit_retry_majority", check_commit_retry_majority},
   {"commit_unknown_result", check_commit_unknown_result},
   {"commit_write_concern_error", check_commit_write_concern_error},
   {"commit_close_connection", check_commit_close_connection},
   {"server_label_transient", check_server_label_transient},
   {"server_label_retryable_commit", check_server_label_retryable_commit},
   {"server_label_retryable_write", check_server_label_retryable_write},
   {"fp_empty_error_labels", check_fp_empty_error_labels},
   {"with_transaction_reruns", check_with_transaction_reruns},
   {"with_transaction_network_error", check_with_transaction_network_error},
   {"commit_transient_112", check_commit_transient_112},
   {"commit_transient_24", check_commit_transient_24},
   {"concurrent_increments", check_concurrent_increments},
   {"command_log", check_command_log},
};

/* libmongoc's warnings become TAP comments, except the expected "Error in abortTransaction"
 * after the server already aborted a transaction (WriteConflict, expiry, ...), which is
 * counted and reported once per check. */
static pthread_mutex_t abort_warnings_mu = PTHREAD_MUTEX_INITIALIZER;
static int abort_warnings;

static void
log_handler (mongoc_log_level_t level, const char *domain, const char *msg, void *data)
{
   if (level > MONGOC_LOG_LEVEL_WARNING) {
      return;
   }
   if (strncmp (msg, "Error in abortTransaction", 25) == 0) {
      pthread_mutex_lock (&abort_warnings_mu);
      abort_warnings++;
      pthread_mutex_unlock (&abort_warnings_mu);
      return;
   }
   printf ("# libmongoc %s: %s\n", mongoc_log_level_str (level), msg);
}

static void
drop_db (const char *uri, const char *db)
{
   mongoc_client_t *c = client_new_raw (uri, g.app);
   bson_t *cmd = BCON_NEW ("dropDatabase", BCON_INT32 (1));
   mongoc_client_command_simple (c, db, cmd, NULL, NULL, NULL);
   bson_destroy (cmd);
   mongoc_client_destroy (c);
}

int
main (void)
{
   const char *only = getenv ("XDBTX_CONFORMANCE_ONLY"); /* run one check by name */
   int n = (int) (sizeof checks / sizeof checks[0]);
   int i, tap = 0, failed = 0;

   setvbuf (stdout, NULL, _IOLBF, 0);
   g.uri1 = getenv ("XDBTX_TEST_URI");
   g.uri2 = getenv ("XDBTX_TEST_URI2");
   g.uri_standalone = getenv ("XDBTX_TEST_STANDALONE_URI");
   if (g.uri2 && !*g.uri2) {
      g.uri2 = NULL;
   }
   if (g.uri_standalone && !*g.uri_standalone) {
      g.uri_standalone = NULL;
   }
   if (!g.uri1 || !*g.uri1) {
      printf ("1..0 # SKIP no server\n");
      return 0;
   }
   mongoc_init ();
   mongoc_log_set_handler (log_handler, NULL);
   snprintf (g.db, sizeof g.db, "xdbtx_conf_%ld", (long) getpid ());
   snprintf (g.db2, sizeof g.db2, "xdbtx_conf_%ld_b", (long) getpid ());
   snprintf (g.app, sizeof g.app, "xdbtx-conf-%ld", (long) getpid ());
   snprintf (g.other_app, sizeof g.other_app, "xdbtx-conf-other-%ld", (long) getpid ());
   g.main = client_new_raw (g.uri1, g.app);

   for (i = 0; i < n; i++) {
      bool ok;
      int64_t t0;
      if (only && strcmp (only, checks[i].name) != 0) {
         continue;
      }
      g.check = checks[i].name;
      g.why[0] = '\0';
      g.skipped = false;
      run (g.main, g.db, J ("{'create': '%s'}", g.check), NULL);
      t0 = now_ms ();
      ok = checks[i].fn ();
      arena_release ();
      failpoint_off ();
      arena_release ();
      tap++;
      for (char *c = g.why; *c; c++) {
         if (*c == '\n' || *c == '\r') {
            *c = ' '; /* one TAP line per check */
         }
      }
      if (now_ms () - t0 > 5000) {
         printf ("# %s took %lld ms\n", g.check, (long long) (now_ms () - t0));
      }
      if (abort_warnings) {
         printf ("# %s: %d expected 'Error in abortTransaction' warnings from libmongoc\n",
                 g.check, abort_warnings);
         abort_warnings = 0;
      }
      if (g.skipped) {
         printf ("ok %d - %s # SKIP %s\n", tap, g.check, g.why);
      } else if (ok) {
         printf ("ok %d - %s\n", tap, g.check);
      } else {
         failed++;
         printf ("not ok %d - %s # %s\n", tap, g.check, g.why);
      }
   }

   drop_db (g.uri1, g.db);
   drop_db (g.uri1, g.db2);
   if (g.uri2) {
      drop_db (g.uri2, g.db);
   }
   mongoc_client_destroy (g.main);
   mongoc_cleanup ();
   printf ("1..%d\n", tap);
   return failed ? 1 : 0;
}
