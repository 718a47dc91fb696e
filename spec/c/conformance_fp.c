/*
 * conformance_fp - failCommand, commit retries, server-computed error labels, concurrency.
 *
 * The failpoint options (errorCode, errorLabels, closeConnection, writeConcernError,
 * blockConnection, appName, modes), how libmongoc's commit and with_transaction react to
 * them, the labels a wire-17 server adds itself, and concurrent transactions on a pool.
 * Harness, environment and rules for expectations: conformance.h and conformance.c.
 */
#include "conformance.h"

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

/* ===== blocked commits (the commit-phase benchmark's setting) ============================ */

/* A commit run by a thread of its own, between barrier and join. */
typedef struct {
   mongoc_client_session_t *s;
   pthread_barrier_t *start;
   res_t *r; /* reply initialised (empty) by res_new; the thread replaces it */
   int64_t t0, t1;
} commit_job_t;

static void *
commit_thread (void *p)
{
   commit_job_t *j = p;
   if (j->start) {
      pthread_barrier_wait (j->start);
   }
   j->t0 = now_ms ();
   bson_destroy (&j->r->reply);
   j->r->ok = mongoc_client_session_commit_transaction (j->s, &j->r->reply, &j->r->err);
   j->t1 = now_ms ();
   return NULL;
}

/* Sets failCommand on commitTransaction of the cluster of client C for this run's appName:
 * alwaysOn, blockConnection for MS milliseconds, no error (mode 'off' when MS < 0). */
static res_t *
block_commits (mongoc_client_t *c, int ms)
{
   if (ms < 0) {
      return run (c, "admin", J ("{'configureFailPoint': 'failCommand', 'mode': 'off'}"), NULL);
   }
   return run (c, "admin",
               J ("{'configureFailPoint': 'failCommand', 'mode': 'alwaysOn', 'data': {'appName':"
                  " '%s', 'failCommands': ['commitTransaction'], 'blockConnection': true,"
                  " 'blockTimeMS': %d}}", g.app, ms),
               NULL);
}

/* blockConnection on commitTransaction delays the commit, which then succeeds, and only
 * that connection waits: other clients of the cluster run meanwhile. */
static bool
check_fp_block_commit (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_client_t *c = client_new (g.uri1, g.app);
   mongoc_collection_t *other = coll_of (client_new (g.uri1, g.app));
   commit_job_t j = {NULL, NULL, res_new (), 0, 0};
   int64_t t0, ms;
   pthread_t th;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1}"))->ok, "seed insert failed");
   j.s = open_txn (c, coll_of (c), 2);
   if (!j.s) {
      return false;
   }
   REQUIRE_OK (block_commits (g.main, 300), "configureFailPoint");
   pthread_create (&th, NULL, commit_thread, &j);
   sleep_ms (50);
   t0 = now_ms ();
   REQUIRE (insert (other, NULL, J ("{'_id': 3}"))->ok && find_one (other, NULL, J ("{'_id': 1}")),
            "another client's insert and find during the blocked commit failed");
   ms = now_ms () - t0;
   pthread_join (th, NULL);
   REQUIRE (j.r->ok, "the blocked commit: %s (blockConnection alone must not fail)",
            describe (j.r));
   REQUIRE (j.t1 - j.t0 >= 300, "the blocked commit took %lld ms, want >= 300",
            (long long) (j.t1 - j.t0));
   REQUIRE (ms < 200, "another client's insert and find took %lld ms during the blocked commit",
            (long long) ms);
   REQUIRE (count (coll, NULL, J ("{}")) == 3, "want the seed, the commit's and the other insert");
   return true;
}

/* Commits on two clusters, each delayed 50 ms by blockConnection and started at once from
 * two threads: the blocks run side by side (both done in about 50 ms, not 100), so a
 * parallel commit phase can take one delay. Measured once, with a generous bound: this
 * pins the server's semantics, it is not a performance figure. */
static bool
two_cluster_commits (mongoc_client_t *c1, mongoc_client_t *c2)
{
   pthread_barrier_t start;
   commit_job_t j[2] = {{NULL, &start, res_new (), 0, 0}, {NULL, &start, res_new (), 0, 0}};
   mongoc_client_t *cs[2] = {c1, c2};
   pthread_t th[2];
   int64_t total;
   int i;

   for (i = 0; i < 2; i++) {
      j[i].s = open_txn (cs[i], coll_of (cs[i]), 1);
      if (!j[i].s) {
         return false;
      }
      REQUIRE_OK (block_commits (cs[i], 50), "configureFailPoint");
   }
   pthread_barrier_init (&start, NULL, 2);
   for (i = 0; i < 2; i++) {
      pthread_create (&th[i], NULL, commit_thread, &j[i]);
   }
   for (i = 0; i < 2; i++) {
      pthread_join (th[i], NULL);
   }
   pthread_barrier_destroy (&start);
   total = (j[0].t1 > j[1].t1 ? j[0].t1 : j[1].t1) - (j[0].t0 < j[1].t0 ? j[0].t0 : j[1].t0);
   for (i = 0; i < 2; i++) {
      REQUIRE (j[i].r->ok, "commit on cluster %d: %s", i + 1, describe (j[i].r));
      REQUIRE (j[i].t1 - j[i].t0 >= 50, "commit on cluster %d took %lld ms, want >= 50 (blocked)",
               i + 1, (long long) (j[i].t1 - j[i].t0));
      REQUIRE (count (coll_of (cs[i]), NULL, J ("{}")) == 1,
               "the commit on cluster %d is not visible", i + 1);
   }
   printf ("# %s: two blocked commits took %lld and %lld ms, %lld ms in all\n", g.check,
           (long long) (j[0].t1 - j[0].t0), (long long) (j[1].t1 - j[1].t0), (long long) total);
   REQUIRE (total < 90, "both 50 ms commits took %lld ms in all: the clusters' blocks did not "
            "run side by side", (long long) total);
   return true;
}

static bool
check_fp_block_commit_two_clusters (void)
{
   mongoc_client_t *c2;
   bool ok;

   if (!g.uri2) {
      SKIP ("XDBTX_TEST_URI2 is unset");
   }
   c2 = client_new (g.uri2, g.app);
   run (c2, g.db, J ("{'create': '%s'}", g.check), NULL);
   ok = two_cluster_commits (client_new (g.uri1, g.app), c2);
   block_commits (c2, -1); /* the runner turns cluster 1's failpoint off */
   return ok;
}

/* ===== runner ============================================================================ */

static const conformance_check_t checks[] = {
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
   {"fp_block_commit", check_fp_block_commit},
   {"fp_block_commit_two_clusters", check_fp_block_commit_two_clusters},
};

int
main (void)
{
   return conformance_main (checks, (int) (sizeof checks / sizeof checks[0]));
}
