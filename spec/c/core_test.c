/*
 * core_test.c - C unit tests of the xdbtx core (no Lua): errors, the pool
 * registry and its fork check, sessions, transactions, cursors, monitoring.
 *
 * Includes the core's .c files directly (the C-test rule links only
 * libmongoc/libbson). Prints TAP. Server checks run against XDBTX_TEST_URI
 * (and XDBTX_TEST_STANDALONE_URI) and are skipped when it is unset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/error.c"
#include "../../src/client.c"
#include "../../src/pool_key.c"
#include "../../src/session.c"
#include "../../src/collection.c"
#include "../../src/cursor.c"

static int test_no;
static int failures;

static void
ok (bool cond, const char *fmt, ...)
{
   va_list ap;

   printf ("%sok %d - ", cond ? "" : "not ", ++test_no);
   va_start (ap, fmt);
   vprintf (fmt, ap);
   va_end (ap);
   printf ("\n");
   fflush (stdout);
   if (!cond) {
      failures++;
   }
}

/* Evaluate the condition before the message's arguments. */
#define OK(cond, ...)        \
   do {                      \
      bool c_ = (cond);      \
      ok (c_, __VA_ARGS__);  \
   } while (0)

static void
skip (int n, const char *why)
{
   int i;

   for (i = 0; i < n; i++) {
      printf ("ok %d - # SKIP %s\n", ++test_no, why);
   }
}

/* ---- no server needed --------------------------------------------------- */

static void
test_errors (void)
{
   xdbtx_error_t err;
   bson_error_t be;
   bson_t *reply = BCON_NEW ("ok", BCON_INT32 (0), "code", BCON_INT32 (112), "codeName",
                             BCON_UTF8 ("WriteConflict"), "errorLabels", "[",
                             BCON_UTF8 ("TransientTransactionError"), "]");

   xdbtx_error_init (&err);
   xdbtx_error_set (&err, XDBTX_DOMAIN_ARG, 11000, "operation", "x=%d", 5);
   OK (strcmp (err.name, "DuplicateKey") == 0 && strcmp (err.message, "x=5") == 0,
       "xdbtx_error_set names known codes");
   xdbtx_error_prefix (&err, "insert_one");
   OK (strcmp (err.message, "insert_one: x=5") == 0, "xdbtx_error_prefix");
   bson_set_error (&be, MONGOC_ERROR_SERVER, 112, "write conflict");
   xdbtx_error_from_mongoc (&err, &be, reply, "commit");
   OK (err.code == 112 && strcmp (err.name, "WriteConflict") == 0 &&
          strcmp (err.phase, "commit") == 0 && err.reply != NULL,
       "xdbtx_error_from_mongoc copies code, name, phase, reply");
   OK (xdbtx_error_has_label (&err, "TransientTransactionError") &&
          !xdbtx_error_has_label (&err, "UnknownTransactionCommitResult"),
       "labels are read from the reply");
   xdbtx_error_cleanup (&err);
   OK (err.reply == NULL && err.code == 0, "cleanup releases the reply");
   bson_destroy (reply);
}

static void
test_registry (void)
{
   xdbtx_pool_t *a = NULL, *b = NULL, *c = NULL, *d = NULL;
   xdbtx_pool_opts_t o = {"app", 0, 0, {NULL, NULL, NULL}};
   xdbtx_error_t err;
   const char *uri = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200";

   xdbtx_error_init (&err);
   OK (xdbtx_pool_get (uri, NULL, &a, &err) && xdbtx_pool_get (uri, NULL, &b, &err) && a == b,
       "the same URI gives the same pool entry");
   OK (strcmp (xdbtx_pool_id (a), uri) == 0 && strcmp (xdbtx_pool_uri (a), uri) == 0,
       "a plain URI is its own id");
   xdbtx_pool_get (uri, &o, &c, &err);
   OK (c && c != a && strstr (xdbtx_pool_id (c), "#app_name=app") != NULL,
       "app_name makes another pool: %s", c ? xdbtx_pool_id (c) : err.message);
   OK (!xdbtx_pool_get ("http://nope", NULL, &d, &err) && strcmp (err.phase, "connect") == 0 &&
          strstr (err.message, "http://nope") != NULL,
       "an invalid URI fails in phase connect: %s", err.message);
   xdbtx_error_cleanup (&err);
}

/* The pid check: a child gets a new libmongoc pool, the parent keeps its
 * own, and nothing of the parent's is destroyed in the child. */
static void
test_fork (void)
{
   xdbtx_pool_t *p = NULL;
   xdbtx_error_t err;
   mongoc_client_t *client;
   mongoc_client_pool_t *parent_pool;
   pid_t child;
   int status = 0;

   xdbtx_error_init (&err);
   xdbtx_pool_get ("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&appname=forktest",
                   NULL, &p, &err);
   client = xdbtx_pool_pop (p, &err);
   OK (client != NULL && p->pid == getpid (), "first pop makes the pool in this process");
   xdbtx_pool_push (p, client);
   parent_pool = p->mpool;
   fflush (stdout);
   child = fork ();
   if (child == 0) {
      mongoc_client_t *cc = xdbtx_pool_pop (p, &err);
      int rc = 0;

      if (!cc) {
         rc |= 1;
      }
      if (p->mpool == parent_pool) {
         rc |= 2;
      }
      if (p->pid != getpid ()) {
         rc |= 4;
      }
      if (cc == client) { /* the parent's spare (see test_spare) */
         rc |= 8;
      }
      xdbtx_pool_push (p, cc);
      _exit (rc);
   }
   waitpid (child, &status, 0);
   OK (WIFEXITED (status) && WEXITSTATUS (status) == 0,
       "a forked child makes its own pool (status %d)", WEXITSTATUS (status));
   OK (p->mpool == parent_pool && p->pid == getpid (), "the parent keeps its pool");
}

/* The thread's spare client (client.c): the last client a thread gave back
 * is its next pop, still counted as out but not against its own thread;
 * one per thread; a thread that exits gives it back to the pool. */
typedef struct {
   xdbtx_pool_t *p;
   bool pop;
   mongoc_client_t *popped;
   bool exhausted_here;
} spare_job_t;

static void *
spare_thread (void *arg)
{
   spare_job_t *j = arg;
   xdbtx_error_t err;

   xdbtx_error_init (&err);
   j->exhausted_here = xdbtx_pool_exhausted (j->p);
   if (!j->pop) {
      return NULL;
   }
   j->popped = xdbtx_pool_pop (j->p, &err);
   xdbtx_pool_push (j->p, j->popped); /* parked in this thread's spare */
   return NULL;
}

static void
test_spare (void)
{
   xdbtx_pool_t *p = NULL;
   xdbtx_error_t err;
   mongoc_client_t *a, *b, *again;
   spare_job_t j = {NULL, false, NULL, false};
   pthread_t th;

   xdbtx_error_init (&err);
   xdbtx_pool_get ("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&appname=sparetest"
                   "&maxPoolSize=2",
                   NULL, &p, &err);
   a = xdbtx_pool_pop (p, &err);
   xdbtx_pool_push (p, a);
   again = xdbtx_pool_pop (p, &err);
   OK (a && again == a && p->out == 1, "a thread's next pop is the client it gave back (out %d)",
       p->out);
   b = xdbtx_pool_pop (p, &err);
   OK (b && b != a && p->out == 2 && xdbtx_pool_exhausted (p), "a second pop takes another one");
   xdbtx_pool_push (p, a);
   OK (p->out == 2 && !xdbtx_pool_exhausted (p), "the spare is out, but not for its own thread");
   j.p = p;
   pthread_create (&th, NULL, spare_thread, &j);
   pthread_join (th, NULL);
   OK (j.exhausted_here, "for another thread the pool is exhausted");
   xdbtx_pool_push (p, b);
   OK (p->out == 1, "one spare a thread: the second client goes back to the pool (out %d)",
       p->out);
   again = xdbtx_pool_pop (p, &err);
   OK (again == a, "the spare stays the first one given back");
   xdbtx_pool_push (p, again);
   j.pop = true;
   pthread_create (&th, NULL, spare_thread, &j);
   pthread_join (th, NULL);
   OK (j.popped && j.popped != a && p->out == 1,
       "a thread that exits gives its spare back to the pool (out %d)", p->out);
}

static void
test_monitor_queue (void)
{
   xdbtx_pool_t *p = NULL;
   xdbtx_error_t err;
   xdbtx_event_t *list;
   uint32_t dropped = 0, i, n = 0;

   xdbtx_error_init (&err);
   xdbtx_pool_get ("mongodb://127.0.0.1:1/?appname=queue", NULL, &p, &err);
   for (i = 0; i < XDBTX_EVENTS_MAX + 5; i++) {
      queue_event (p, event_new (XDBTX_EVENT_STARTED, "ping", i, NULL));
   }
   list = xdbtx_pool_drain (p, &dropped);
   for (xdbtx_event_t *e = list; e; e = e->next) {
      n++;
   }
   xdbtx_events_free (list);
   OK (n == XDBTX_EVENTS_MAX && dropped == 5, "the event queue is bounded (%u kept, %u dropped)",
       n, dropped);
   list = xdbtx_pool_drain (p, &dropped);
   OK (list == NULL && dropped == 0, "draining empties the queue");
}

/* ---- against a server --------------------------------------------------- */

static xdbtx_pool_t *
server_pool (const char *uri, const char *app)
{
   xdbtx_pool_t *p = NULL;
   xdbtx_pool_opts_t o = {app, 0, 5000, {NULL, NULL, NULL}};
   xdbtx_error_t err;

   xdbtx_error_init (&err);
   if (!xdbtx_pool_get (uri, &o, &p, &err)) {
      fprintf (stderr, "# %s\n", err.message);
   }
   return p;
}

/* Names of the "started" events drained, comma-separated, into buf. */
static int
started (xdbtx_pool_t *p, char *buf, size_t n, const char *needle, bson_t **copy)
{
   xdbtx_event_t *list = xdbtx_pool_drain (p, NULL), *e;
   int count = 0;

   buf[0] = 0;
   for (e = list; e; e = e->next) {
      if (e->type == XDBTX_EVENT_STARTED) {
         count++;
         bson_strncpy (buf + strlen (buf), e->command_name, n - strlen (buf));
         bson_strncpy (buf + strlen (buf), ",", n - strlen (buf));
         if (needle && copy && strcmp (e->command_name, needle) == 0) {
            if (*copy) {
               bson_destroy (*copy);
            }
            *copy = bson_copy (e->doc);
         }
      }
   }
   xdbtx_events_free (list);
   return count;
}

static void
test_server (const char *uri, const char *standalone)
{
   xdbtx_pool_t *p = server_pool (uri, "core_test");
   xdbtx_coll_t *coll = xdbtx_coll_new (p, "core_test", "items", NULL);
   xdbtx_session_t *s;
   xdbtx_cursor_t *cur;
   xdbtx_error_t err;
   bson_t reply, *doc, *opts, *filter, *cmd = NULL;
   const bson_t *d;
   char names[512];
   bool failed;
   int64_t n = -1;
   int i, count;
   const char *topo;

   xdbtx_error_init (&err);
   topo = xdbtx_pool_topology (p, &err);
   OK (topo && strcmp (topo, "replicaset") == 0, "topology of XDBTX_TEST_URI: %s",
       topo ? topo : err.message);
   if (standalone) {
      topo = xdbtx_pool_topology (server_pool (standalone, "core_test"), &err);
      OK (topo && strcmp (topo, "standalone") == 0, "topology of the standalone: %s",
          topo ? topo : err.message);
   } else {
      skip (1, "XDBTX_TEST_STANDALONE_URI not set");
   }

   filter = bson_new ();
   xdbtx_coll_delete (coll, NULL, true, filter, NULL, &reply, &err);
   bson_destroy (&reply);
   xdbtx_error_cleanup (&err);

   /* plain operations borrow and give back */
   doc = BCON_NEW ("_id", BCON_INT32 (1), "v", BCON_UTF8 ("a"));
   OK (xdbtx_coll_insert_one (coll, NULL, doc, NULL, &reply, &err), "insert_one without session");
   bson_destroy (&reply);
   OK (!xdbtx_coll_insert_one (coll, NULL, doc, NULL, &reply, &err) && err.code == 11000 &&
          strcmp (err.name, "DuplicateKey") == 0 && err.reply &&
          strcmp (err.phase, "operation") == 0,
       "duplicate _id: code %d name %s", err.code, err.name);
   bson_destroy (&reply);
   xdbtx_error_cleanup (&err);
   bson_destroy (doc);

   /* a 3-operation transaction sends exactly 4 commands */
   s = xdbtx_session_new (p, NULL, &err);
   OK (s != NULL, "session starts %s", s ? "" : err.message);
   xdbtx_pool_drain (p, NULL);
   xdbtx_events_free (xdbtx_pool_drain (p, NULL));
   xdbtx_pool_monitor (p, true);
   OK (xdbtx_session_start_transaction (s, NULL, &err) &&
          strcmp (xdbtx_session_state (s), "starting") == 0,
       "start_transaction -> starting");
   for (i = 2; i <= 4; i++) {
      opts = bson_new ();
      doc = BCON_NEW ("_id", BCON_INT32 (i));
      xdbtx_coll_insert_one (coll, s, doc, opts, &reply, &err);
      bson_destroy (&reply);
      bson_destroy (doc);
      bson_destroy (opts);
   }
   OK (strcmp (xdbtx_session_state (s), "in_progress") == 0 && xdbtx_session_in_transaction (s),
       "in_progress after the first operation");
   OK (xdbtx_session_commit (s, &err), "commit %s", err.message);
   count = started (p, names, sizeof names, NULL, NULL);
   OK (count == 4 && strcmp (names, "insert,insert,insert,commitTransaction,") == 0,
       "a 3-operation transaction sends 4 commands: %s", names);
   OK (strcmp (xdbtx_session_state (s), "committed") == 0, "state committed");

   /* abort leaves nothing */
   xdbtx_session_start_transaction (s, NULL, &err);
   doc = BCON_NEW ("_id", BCON_INT32 (10));
   opts = bson_new ();
   xdbtx_coll_insert_one (coll, s, doc, opts, &reply, &err);
   bson_destroy (&reply);
   bson_destroy (opts);
   OK (xdbtx_session_abort (s, &err) && strcmp (xdbtx_session_state (s), "aborted") == 0,
       "abort -> aborted");
   OK (!xdbtx_session_abort (s, &err) && strcmp (err.phase, "abort") == 0,
       "a second abort is misuse: %s", err.message);
   xdbtx_error_cleanup (&err);
   OK (xdbtx_coll_count (coll, NULL, filter, NULL, NULL, &n, &err) && n == 4,
       "aborted insert is gone (count %d)", (int) n);

   /* NULL opts still run in the session */
   xdbtx_session_start_transaction (s, NULL, &err);
   {
      bson_t *doc11 = BCON_NEW ("_id", BCON_INT32 (11));
      int64_t inside = -1, outside = -1;

      xdbtx_coll_insert_one (coll, s, doc11, NULL, &reply, &err);
      bson_destroy (&reply);
      bson_destroy (doc11);
      xdbtx_coll_count (coll, s, filter, NULL, NULL, &inside, &err);
      xdbtx_coll_count (coll, NULL, filter, NULL, NULL, &outside, &err);
      OK (inside == 5 && outside == 4, "NULL opts run in the session (%d inside, %d outside)",
          (int) inside, (int) outside);
   }
   xdbtx_session_abort (s, &err);

   /* destroying a session aborts its transaction */
   xdbtx_session_start_transaction (s, NULL, &err);
   opts = bson_new ();
   xdbtx_coll_insert_one (coll, s, doc, opts, &reply, &err);
   bson_destroy (&reply);
   bson_destroy (opts);
   started (p, names, sizeof names, NULL, NULL);
   xdbtx_session_destroy (s);
   started (p, names, sizeof names, NULL, NULL);
   OK (strstr (names, "abortTransaction") != NULL, "destroy aborts: %s", names);
   OK (xdbtx_coll_count (coll, NULL, filter, NULL, NULL, &n, &err) && n == 4,
       "and the insert is gone (count %d)", (int) n);
   bson_destroy (doc);

   /* cursors: early close kills the server cursor and returns the client */
   opts = BCON_NEW ("batchSize", BCON_INT32 (1));
   cur = xdbtx_coll_find (coll, NULL, filter, opts, NULL, &err);
   bson_destroy (opts);
   d = cur ? xdbtx_cursor_next (cur, &failed, &err) : NULL;
   OK (d != NULL, "find returns a document");
   started (p, names, sizeof names, NULL, NULL);
   xdbtx_cursor_destroy (cur);
   started (p, names, sizeof names, NULL, NULL);
   OK (strcmp (names, "killCursors,") == 0, "closing a cursor early sends killCursors: %s", names);

   /* a session closes its cursors before itself */
   s = xdbtx_session_new (p, NULL, &err);
   opts = BCON_NEW ("batchSize", BCON_INT32 (1));
   cur = xdbtx_coll_find (coll, s, filter, opts, NULL, &err);
   bson_destroy (opts);
   xdbtx_session_destroy (s);
   OK (cur && xdbtx_cursor_closed (cur) && !xdbtx_cursor_next (cur, &failed, &err) && failed,
       "closing the session closes its cursor: %s", err.message);
   xdbtx_error_cleanup (&err);
   xdbtx_cursor_destroy (cur);

   /* a failed commit is retried by a second commit, with w:majority */
   s = xdbtx_session_new (p, NULL, &err);
   cmd = BCON_NEW ("configureFailPoint", BCON_UTF8 ("failCommand"), "mode", "{", "times",
                   BCON_INT32 (2), "}", "data", "{", "failCommands", "[",
                   BCON_UTF8 ("commitTransaction"), "]", "errorCode", BCON_INT32 (91),
                   "appName", BCON_UTF8 ("core_test"), "}");
   OK (xdbtx_pool_command (p, NULL, "admin", cmd, NULL, NULL, &reply, &err),
       "failpoint set %s", err.message);
   bson_destroy (&reply);
   bson_destroy (cmd);
   xdbtx_session_start_transaction (s, NULL, &err);
   doc = BCON_NEW ("_id", BCON_INT32 (20));
   opts = bson_new ();
   xdbtx_coll_insert_one (coll, s, doc, opts, &reply, &err);
   bson_destroy (&reply);
   bson_destroy (opts);
   bson_destroy (doc);
   xdbtx_error_cleanup (&err);
   started (p, names, sizeof names, NULL, NULL);
   OK (!xdbtx_session_commit (s, &err) &&
          xdbtx_error_has_label (&err, "UnknownTransactionCommitResult") &&
          strcmp (err.phase, "commit") == 0,
       "commit fails with UnknownTransactionCommitResult (%d %s)", err.code, err.message);
   xdbtx_error_cleanup (&err);
   cmd = NULL;
   OK (xdbtx_session_commit (s, &err), "a second commit succeeds %s", err.message);
   started (p, names, sizeof names, "commitTransaction", &cmd);
   {
      bson_iter_t it;
      OK (cmd && bson_iter_init (&it, cmd) &&
             bson_iter_find_descendant (&it, "writeConcern.w", &it) &&
             BSON_ITER_HOLDS_UTF8 (&it) && strcmp (bson_iter_utf8 (&it, NULL), "majority") == 0,
          "the retried commit carries w:majority");
   }
   if (cmd) {
      bson_destroy (cmd);
   }
   OK (xdbtx_coll_count (coll, NULL, filter, NULL, NULL, &n, &err) && n == 5,
       "the retried commit committed (count %d)", (int) n);
   xdbtx_session_destroy (s);

   /* a session made before fork is refused in the child */
   s = xdbtx_session_new (p, NULL, &err);
   fflush (stdout);
   {
      pid_t child = fork ();
      int status = 0;

      if (child == 0) {
         xdbtx_error_t e2;
         xdbtx_error_init (&e2);
         bool refused = !xdbtx_session_start_transaction (s, NULL, &e2) &&
                        strcmp (e2.phase, "state") == 0;
         xdbtx_session_destroy (s); /* abandons, touches nothing */
         _exit (refused ? 0 : 1);
      }
      waitpid (child, &status, 0);
      OK (WIFEXITED (status) && WEXITSTATUS (status) == 0,
          "a session from before fork is refused in the child");
   }
   OK (xdbtx_session_start_transaction (s, NULL, &err) && xdbtx_session_abort (s, &err),
       "and still works in the parent");
   xdbtx_session_destroy (s);

   xdbtx_pool_monitor (p, false);
   xdbtx_coll_destroy (coll);
   bson_destroy (filter);
}

int
main (void)
{
   const char *uri = getenv ("XDBTX_TEST_URI");
   const int server_tests = 26;

   xdbtx_init ();
   test_errors ();
   test_registry ();
   test_fork ();
   test_spare ();
   test_monitor_queue ();
   if (uri && uri[0]) {
      test_server (uri, getenv ("XDBTX_TEST_STANDALONE_URI"));
   } else {
      skip (server_tests, "XDBTX_TEST_URI not set");
   }
   printf ("1..%d\n", test_no);
   return failures ? 1 : 0;
}
