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

#include <signal.h>
#include <sys/wait.h>

/* ===== helpers =========================================================================== */

/* A raw command run by a thread of its own (CLIENT is used by that thread alone until it is
 * joined): the write that waits for a transaction's document. */
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

/* {VERB: [LSID]}, for killSessions and endSessions, owned by the arena. */
static bson_t *
sessions_cmd (const char *verb, const bson_t *lsid)
{
   bson_t *cmd = J ("{}");
   bson_t arr;
   bson_append_array_begin (cmd, verb, -1, &arr);
   bson_append_document (&arr, "0", -1, lsid);
   bson_append_array_end (cmd, &arr);
   return cmd;
}

/* A plain update of {_id: 1} with maxTimeMS MS through C: MaxTimeMSExpired (50) while a
 * transaction holds the document. */
static res_t *
plain_update (mongoc_client_t *c, int ms)
{
   return run (c, g.db,
               J ("{'update': '%s', 'updates': [{'q': {'_id': 1}, 'u': {'$set': {'plain': 1}}}],"
                  " 'maxTimeMS': %d}", g.check, ms),
               NULL);
}

/* Closes the connection of client C (named APP) under it: a failCommand closeConnection on
 * a ping, a command outside any transaction. C reconnects on its next command. */
static bool
drop_connection (mongoc_client_t *c, const char *app)
{
   res_t *r = failpoint_for (app, "{'times': 1}", "'failCommands': ['ping'], 'closeConnection': true");
   REQUIRE (r->ok, "configureFailPoint: %s", describe (r));
   r = run (c, "admin", J ("{'ping': 1}"), NULL);
   REQUIRE (!r->ok && r->err.domain == MONGOC_ERROR_STREAM,
            "ping under closeConnection: %s (domain %u), want a network error", describe (r),
            r->err.domain);
   return true;
}

/* In a child process: open a transaction on cluster 1 that updates {_id: 1} and inserts
 * {_id: ID}, send its lsid (length, then the BSON) on FD, and wait to be killed. */
static void
abandoned_child (int fd, int id)
{
   mongoc_client_t *c = client_new_raw (g.uri1, g.app);
   mongoc_collection_t *coll = mongoc_client_get_collection (c, g.db, g.check);
   mongoc_client_session_t *s = mongoc_client_start_session (c, NULL, NULL);
   bson_t *opts = J ("{}");
   const bson_t *lsid;
   uint32_t len;

   if (!s || !mongoc_client_session_start_transaction (s, NULL, NULL) ||
       !mongoc_client_session_append (s, opts, NULL) ||
       !mongoc_collection_update_one (coll, J ("{'_id': 1}"), J ("{'$inc': {'n': 1}}"), opts,
                                      NULL, NULL) ||
       !mongoc_collection_insert_one (coll, J ("{'_id': %d}", id), opts, NULL, NULL)) {
      _exit (1);
   }
   lsid = mongoc_client_session_get_lsid (s);
   len = lsid->len;
   if (write (fd, &len, sizeof len) != (ssize_t) sizeof len ||
       write (fd, bson_get_data (lsid), len) != (ssize_t) len) {
      _exit (1);
   }
   for (;;) {
      pause ();
   }
}

static bool
read_full (int fd, void *buf, size_t n)
{
   size_t got = 0;
   while (got < n) {
      ssize_t k = read (fd, (char *) buf + got, n - got);
      if (k <= 0) {
         return false;
      }
      got += (size_t) k;
   }
   return true;
}

/* The crash: a child process opens a transaction (abandoned_child) and is killed with
 * SIGKILL, so its connections vanish mid-transaction and nothing ends it. Returns the
 * transaction's lsid (owned by the arena), or NULL with the reason in g.why. */
static bson_t *
abandoned_txn (int id)
{
   uint8_t buf[512];
   uint32_t len = 0;
   int fds[2];
   pid_t pid;
   bool got;

   if (pipe (fds) != 0) {
      snprintf (g.why, sizeof g.why, "pipe failed");
      return NULL;
   }
   fflush (stdout);
   pid = fork ();
   if (pid < 0) {
      snprintf (g.why, sizeof g.why, "fork failed");
      return NULL;
   }
   if (pid == 0) {
      close (fds[0]);
      abandoned_child (fds[1], id);
   }
   close (fds[1]);
   got = read_full (fds[0], &len, sizeof len) && len <= sizeof buf && read_full (fds[0], buf, len);
   close (fds[0]);
   kill (pid, SIGKILL);
   waitpid (pid, NULL, 0);
   if (!got) {
      snprintf (g.why, sizeof g.why, "the child process could not open its transaction");
      return NULL;
   }
   return own (bson_new_from_data (buf, len), bson_free_doc);
}

/* ===== checks ============================================================================ */


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

/* A client dies mid-transaction (SIGKILL: no abort, no endSessions): the transaction stays
 * open, its writes invisible and its document held (a plain write times out), until
 * killSessions from another client, a recovery process, aborts it; a write waiting for the
 * document then proceeds. */
static bool
check_crashed_client_txn_stays_open (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   blocked_t b = {client_new (g.uri1, g.app),
                  J ("{'update': '%s', 'updates': [{'q': {'_id': 1}, 'u': {'$inc': {'n': 10}}}],"
                     " 'maxTimeMS': 10000}", g.check),
                  res_new (), 0};
   mongoc_client_t *recovery = client_new (g.uri1, g.app);
   pthread_t th;
   bson_t *lsid;
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 0}"))->ok, "seed insert failed");
   lsid = abandoned_txn (2);
   if (!lsid) {
      return false;
   }
   REQUIRE (count (coll, NULL, J ("{'_id': 2}")) == 0 &&
               get_int (find_one (coll, NULL, J ("{'_id': 1}")), "n", -1) == 0,
            "the dead client's uncommitted writes are visible");
   r = plain_update (g.main, 300);
   REQUIRE (code (r) == 50, "a plain write to the dead client's document: %s, want "
            "MaxTimeMSExpired 50 (the transaction must still hold it)", describe (r));
   pthread_create (&th, NULL, blocked_update, &b);
   sleep_ms (300);
   r = run (recovery, "admin", sessions_cmd ("killSessions", lsid), NULL);
   pthread_join (th, NULL);
   REQUIRE (r->ok, "killSessions from another client: %s", describe (r));
   REQUIRE (b.r->ok && get_int (&b.r->reply, "nModified", 0) == 1,
            "the waiting write after killSessions: %s", describe (b.r));
   REQUIRE (b.ms >= 250, "the waiting write returned after %lld ms: it did not wait",
            (long long) b.ms);
   REQUIRE (count (coll, NULL, J ("{'_id': 2}")) == 0 &&
               get_int (find_one (coll, NULL, J ("{'_id': 1}")), "n", -1) == 10,
            "after killSessions the dead client's writes must be gone and the waiting $inc "
            "applied (n 10)");
   return true;
}

/* killSessions from another client aborts a transaction whose own client then comes back:
 * its commit gets NoSuchTransaction (251) labelled TransientTransactionError (mongod's
 * label for 251 on commit without a writeConcernError). */
static bool
check_kill_sessions_from_other_client (void)
{
   mongoc_client_t *c = client_new (g.uri1, g.other_app);
   mongoc_client_t *recovery = client_new (g.uri1, g.app);
   mongoc_collection_t *coll = coll_of (c);
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 0}"))->ok, "seed insert failed");
   {
      OPEN_TXN (s, c, coll, 2);
      REQUIRE_OK (update (coll, s, J ("{'_id': 1}"), J ("{'$inc': {'n': 1}}")), "update");
      if (!drop_connection (c, g.other_app)) {
         return false;
      }
      REQUIRE (code (plain_update (g.main, 200)) == 50,
               "the transaction let go of its document when its connection closed");
      REQUIRE_OK (run (recovery, "admin", sessions_cmd ("killSessions",
                                                        mongoc_client_session_get_lsid (s)),
                       NULL),
                  "killSessions");
      REQUIRE_OK (plain_update (g.main, 2000), "a plain write after killSessions");
      r = commit (s);
      REQUIRE (code (r) == 251, "commit after killSessions: %s, want NoSuchTransaction 251",
               describe (r));
      REQUIRE (has_label (r, TTE), "NoSuchTransaction on commit lacks %s", TTE);
   }
   REQUIRE (count (coll, NULL, J ("{'_id': 2}")) == 0 &&
               get_int (find_one (coll, NULL, J ("{'_id': 1}")), "n", -1) == 0,
            "the killed transaction's writes are visible");
   return true;
}

/* A session is not tied to a connection: after its connection closes, the transaction
 * continues on the client's new connection (same lsid, same txnNumber) and commits. */
static bool
check_txn_continues_on_new_connection (void)
{
   mongoc_client_t *c = client_new (g.uri1, g.other_app);
   mongoc_collection_t *coll = coll_of (c);

   {
      OPEN_TXN (s, c, coll, 1);
      if (!drop_connection (c, g.other_app)) {
         return false;
      }
      REQUIRE_OK (insert (coll, s, J ("{'_id': 2}")), "insert on the new connection");
      REQUIRE (count (coll, s, J ("{}")) == 2, "the transaction lost its first insert");
      REQUIRE (count (coll, NULL, J ("{}")) == 0, "uncommitted inserts are visible");
      REQUIRE_OK (commit (s), "commit on the new connection");
   }
   REQUIRE (count (coll, NULL, J ("{}")) == 2, "want both inserts committed");
   return true;
}

/* endSessions does not abort an open transaction: mongod only schedules the sessions'
 * cleanup (its next session refresh), which removes their records and cursors but never
 * aborts. The transaction keeps its document and can still commit; recovery must use
 * killSessions. (libmongoc aborts a session's transaction itself before ending it.) */
static bool
check_end_sessions_leaves_txn_open (void)
{
   mongoc_client_t *recovery = client_new (g.uri1, g.app);
   mongoc_collection_t *coll = coll_of (g.main);
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 0}"))->ok, "seed insert failed");
   {
      OPEN_TXN (s, g.main, coll, 2);
      REQUIRE_OK (update (coll, s, J ("{'_id': 1}"), J ("{'$inc': {'n': 1}}")), "update");
      REQUIRE_OK (run (recovery, "admin", sessions_cmd ("endSessions",
                                                        mongoc_client_session_get_lsid (s)),
                       NULL),
                  "endSessions");
      r = plain_update (recovery, 300);
      REQUIRE (code (r) == 50, "a plain write after endSessions: %s, want MaxTimeMSExpired 50 "
               "(the transaction must still hold the document)", describe (r));
      REQUIRE_OK (commit (s), "commit after endSessions");
   }
   REQUIRE (count (coll, NULL, J ("{'_id': 2}")) == 1 &&
               get_int (find_one (coll, NULL, J ("{'_id': 1}")), "n", -1) == 1,
            "the committed writes are missing");
   return true;
}

/* With transactionLifetimeLimitSeconds lowered to 1, the server's reaper aborts a crashed
 * client's transaction within a few seconds: a write waiting for its document goes
 * through. The limit is fixed when a transaction starts (mongod's transactionExpireDate):
 * one started before the change keeps its 60 s and still commits. */
static bool
lifetime_reaps (mongoc_collection_t *coll, mongoc_client_session_t *before)
{
   int64_t t0, ms;
   bson_t *lsid;
   res_t *r;

   lsid = abandoned_txn (3);
   if (!lsid) {
      return false;
   }
   t0 = now_ms ();
   r = run (g.main, g.db,
            J ("{'update': '%s', 'updates': [{'q': {'_id': 1}, 'u': {'$set': {'late': 1}}}],"
               " 'maxTimeMS': 8000}", g.check),
            NULL);
   ms = now_ms () - t0;
   REQUIRE (r->ok, "a write waiting for the crashed client's document: %s (the reaper did not "
            "abort it within 8 s)", describe (r));
   REQUIRE (ms >= 500, "the write went through after %lld ms, before the 1 s limit",
            (long long) ms);
   REQUIRE (count (coll, NULL, J ("{'_id': 3}")) == 0, "the reaped transaction's insert is "
            "visible");
   r = commit (before);
   REQUIRE (r->ok, "commit of a transaction started under the 60 s limit, %lld ms after the "
            "limit went down to 1 s: %s", (long long) ms, describe (r));
   return true;
}

static bool
check_lifetime_reaps_crashed_client (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   res_t *r = admin (J ("{'getParameter': 1, 'transactionLifetimeLimitSeconds': 1}"));
   int64_t old = r->ok ? get_int (&r->reply, "transactionLifetimeLimitSeconds", 60) : 60;
   bool ok;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 0}"))->ok, "seed insert failed");
   {
      OPEN_TXN (before, g.main, coll, 2);
      REQUIRE_OK (admin (J ("{'setParameter': 1, 'transactionLifetimeLimitSeconds': 1}")),
                  "setParameter transactionLifetimeLimitSeconds");
      ok = lifetime_reaps (coll, before);
   }
   r = admin (J ("{'setParameter': 1, 'transactionLifetimeLimitSeconds': %lld}", (long long) old));
   REQUIRE (!ok || r->ok, "restoring transactionLifetimeLimitSeconds: %s", describe (r));
   return ok;
}

/* ===== runner ============================================================================ */

static const conformance_check_t checks[] = {
   {"kill_sessions_aborts", check_kill_sessions_aborts},
   {"lifetime_expiry", check_lifetime_expiry},
   {"blocked_write_times_out", check_blocked_write_times_out},
   {"blocked_insert_times_out", check_blocked_insert_times_out},
   {"blocked_write_resumes", check_blocked_write_resumes},
   {"crashed_client_txn_stays_open", check_crashed_client_txn_stays_open},
   {"kill_sessions_from_other_client", check_kill_sessions_from_other_client},
   {"txn_continues_on_new_connection", check_txn_continues_on_new_connection},
   {"end_sessions_leaves_txn_open", check_end_sessions_leaves_txn_open},
   {"lifetime_reaps_crashed_client", check_lifetime_reaps_crashed_client},
};

int
main (void)
{
   return conformance_main (checks, (int) (sizeof checks / sizeof checks[0]));
}
