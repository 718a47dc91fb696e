/*
 * conformance_sessions - sessions outlive their connections; what ends a transaction.
 *
 * mongod keeps a transaction on its session, not on a connection: a client that vanishes
 * leaves it open, holding its documents, until killSessions (from any client) or the
 * transactionLifetimeLimitSeconds reaper aborts it; endSessions does not; a plain write to
 * a held document waits for it, bounded by maxTimeMS. Crash recovery (xdbtx.recover)
 * relies on exactly these rules. Harness and environment: conformance.h, conformance.c.
 */
#include "conformance.h"

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

/* ===== runner ============================================================================ */

static const conformance_check_t checks[] = {
   {"kill_sessions_aborts", check_kill_sessions_aborts},
   {"lifetime_expiry", check_lifetime_expiry},
   {"blocked_write_times_out", check_blocked_write_times_out},
   {"blocked_insert_times_out", check_blocked_insert_times_out},
   {"blocked_write_resumes", check_blocked_write_resumes},
};

int
main (void)
{
   return conformance_main (checks, (int) (sizeof checks / sizeof checks[0]));
}
