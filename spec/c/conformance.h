/*
 * conformance.h - the harness of the test-server conformance suite (conformance*.c).
 *
 * Each conformance*.c program is a table of checks handed to conformance_main (the runner,
 * at the bottom: one TAP line per check); the helpers are static inline, so a program
 * compiles only what it uses. A check is a `bool fn(void)` that stops at its first failed
 * expectation with REQUIRE (setting the reason the runner prints) or SKIP. Everything a
 * check creates (clients, sessions, collections, documents, command results) is registered
 * in one per-check arena and released by the runner after the check, in reverse order of
 * creation, so libmongoc's lifecycle (session before client) holds wherever a check stops.
 * Documents are written as JSON with single quotes, J("{'insert': '%s'}", name). Command
 * outcomes come back as res_t (ok, error, reply: labels live only in the reply). Only the
 * main thread uses the arena; threads started by a check use plain libmongoc (a child
 * process, a fresh client of its own).
 */
#ifndef XDBTX_CONFORMANCE_H
#define XDBTX_CONFORMANCE_H

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* The outcome of one libmongoc call: ok, plus the error and the (always initialised) reply. */
typedef struct {
   bool ok;
   bson_error_t err;
   bson_t reply;
} res_t;

/* ---- the per-check arena ------------------------------------------------------------- */

typedef void (*free_fn) (void *);
static struct {
   void *p;
   free_fn fn;
} arena[512];
static int arena_n;

/* Registers P to be released with FN after the current check; returns P. */
static inline void *
own (void *p, free_fn fn)
{
   if (!p) {
      return NULL;
   }
   if (arena_n == (int) (sizeof arena / sizeof arena[0])) {
      printf ("Bail out! conformance arena full\n");
      exit (2);
   }
   arena[arena_n].p = p;
   arena[arena_n].fn = fn;
   arena_n++;
   return p;
}

static inline void
arena_release (void)
{
   while (arena_n > 0) {
      arena_n--;
      arena[arena_n].fn (arena[arena_n].p);
   }
}

static inline void
res_free (void *p)
{
   res_t *r = p;
   bson_destroy (&r->reply);
   free (r);
}

/* Returns a new result owned by the arena, reply initialised empty. */
static inline res_t *
res_new (void)
{
   res_t *r = calloc (1, sizeof *r);
   bson_init (&r->reply);
   return own (r, res_free);
}

static inline void
bson_free_doc (void *p)
{
   bson_destroy (p);
}

/* J(fmt, ...) -> a document owned by the arena, from printf-formatted JSON written with
 * single quotes. A malformed document is a bug in the suite: bail out. */
static bson_t *
J (const char *fmt, ...) BSON_GNUC_PRINTF (1, 2);

static bson_t *
J (const char *fmt, ...)
{
   char buf[4096];
   bson_error_t err;
   va_list ap;
   bson_t *b;
   char *c;

   va_start (ap, fmt);
   vsnprintf (buf, sizeof buf, fmt, ap);
   va_end (ap);
   for (c = buf; *c; c++) {
      if (*c == '\'') {
         *c = '"';
      }
   }
   b = bson_new_from_json ((const uint8_t *) buf, -1, &err);
   if (!b) {
      printf ("Bail out! bad JSON in the suite: %s: %s\n", err.message, buf);
      exit (2);
   }
   return own (b, bson_free_doc);
}

/* ---- reading replies ------------------------------------------------------------------ */

/* The server error code of R: 0 when it succeeded. */
static inline uint32_t
code (const res_t *r)
{
   return r->ok ? 0 : r->err.code;
}

static inline bool
has_label (const res_t *r, const char *label)
{
   return mongoc_error_has_label (&r->reply, label);
}

/* The int64 value at dotted PATH in DOC (may be NULL), or DEFLT. */
static inline int64_t
get_int (const bson_t *doc, const char *path, int64_t deflt)
{
   bson_iter_t it, f;
   if (doc && bson_iter_init (&it, doc) && bson_iter_find_descendant (&it, path, &f) &&
       BSON_ITER_HOLDS_NUMBER (&f)) {
      return bson_iter_as_int64 (&f);
   }
   return deflt;
}

/* The UTF-8 string at dotted PATH in DOC (may be NULL), or "". */
static inline const char *
get_str (const bson_t *doc, const char *path)
{
   bson_iter_t it, f;
   if (doc && bson_iter_init (&it, doc) && bson_iter_find_descendant (&it, path, &f) &&
       BSON_ITER_HOLDS_UTF8 (&f)) {
      return bson_iter_utf8 (&f, NULL);
   }
   return "";
}

/* A short description of R for failure reasons: "code N: message". */
static inline const char *
describe (const res_t *r)
{
   static char buf[8][600];
   static int i;
   char *b = buf[i++ % 8];
   if (r->ok) {
      snprintf (b, 600, "succeeded");
   } else {
      snprintf (b, 600, "code %u: %s", r->err.code, r->err.message);
   }
   return b;
}

/* ---- time ------------------------------------------------------------------------------ */

static inline int64_t
now_ms (void)
{
   return bson_get_monotonic_time () / 1000;
}

static inline void
sleep_ms (long ms)
{
   struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
   while (nanosleep (&ts, &ts) != 0) {
   }
}

/* ---- run-wide state and the check protocol ---------------------------------------------- */

#define TTE "TransientTransactionError"
#define UTCR "UnknownTransactionCommitResult"
#define RWE "RetryableWriteError"

/* Run-wide state: the URIs, this run's names, the main client (cluster 1) and the check
 * being run (its name doubles as its collection name). */
static struct {
   const char *uri1, *uri2, *uri_standalone;
   char db[64], db2[64]; /* this run's databases (the second for multi-database checks) */
   char app[64];
   char other_app[64];
   mongoc_client_t *main;
   const char *check;
   char why[1024];
   bool skipped;
} g;

/* REQUIRE(cond, fmt, ...): end the current check as failed, with the formatted reason. */
#define REQUIRE(cond, ...)                                  \
   do {                                                     \
      if (!(cond)) {                                        \
         snprintf (g.why, sizeof g.why, __VA_ARGS__);       \
         return false;                                      \
      }                                                     \
   } while (0)

/* REQUIRE_OK(expr, what): the res_t EXPR must be ok, else end the current check as failed
 * with "WHAT: <its error>". */
#define REQUIRE_OK(expr, what)                              \
   do {                                                     \
      const res_t *ok_ = (expr);                            \
      REQUIRE (ok_->ok, "%s: %s", what, describe (ok_));    \
   } while (0)

/* SKIP(fmt, ...): end the current check as skipped. */
#define SKIP(...)                                     \
   do {                                               \
      snprintf (g.why, sizeof g.why, __VA_ARGS__);    \
      g.skipped = true;                               \
      return true;                                    \
   } while (0)

/* ---- clients, sessions, commands ------------------------------------------------------- */

static inline void
client_free (void *p)
{
   mongoc_client_destroy (p);
}

static inline void
session_free (void *p)
{
   mongoc_client_session_destroy (p);
}

static inline void
coll_free (void *p)
{
   mongoc_collection_destroy (p);
}

/* A parsed copy of URI_STR with short timeouts (unless the URI sets them) and APP as appName;
 * the caller owns it. */
static inline mongoc_uri_t *
make_uri (const char *uri_str, const char *app)
{
   bson_error_t err;
   mongoc_uri_t *uri = mongoc_uri_new_with_error (uri_str, &err);
   if (!uri) {
      printf ("Bail out! bad URI %s: %s\n", uri_str, err.message);
      exit (2);
   }
   if (!mongoc_uri_has_option (uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS)) {
      mongoc_uri_set_option_as_int32 (uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
   }
   if (!mongoc_uri_has_option (uri, MONGOC_URI_CONNECTTIMEOUTMS)) {
      mongoc_uri_set_option_as_int32 (uri, MONGOC_URI_CONNECTTIMEOUTMS, 5000);
   }
   if (!mongoc_uri_has_option (uri, MONGOC_URI_SOCKETTIMEOUTMS)) {
      /* a server that never answers fails the check instead of stalling the suite */
      mongoc_uri_set_option_as_int32 (uri, MONGOC_URI_SOCKETTIMEOUTMS, 20000);
   }
   if (app) {
      mongoc_uri_set_appname (uri, app);
   }
   return uri;
}

/* A new single-threaded client for URI_STR named APP (NULL: unnamed); not in the arena. */
static inline mongoc_client_t *
client_new_raw (const char *uri_str, const char *app)
{
   bson_error_t err;
   mongoc_uri_t *uri = make_uri (uri_str, app);
   mongoc_client_t *c = mongoc_client_new_from_uri_with_error (uri, &err);
   mongoc_uri_destroy (uri);
   if (!c) {
      printf ("Bail out! cannot create a client for %s: %s\n", uri_str, err.message);
      exit (2);
   }
   mongoc_client_set_error_api (c, MONGOC_ERROR_API_VERSION_2);
   return c;
}

/* A new client owned by the arena. */
static inline mongoc_client_t *
client_new (const char *uri_str, const char *app)
{
   return own (client_new_raw (uri_str, app), client_free);
}

/* A new session on C, owned by the arena (destroying it aborts an open transaction). */
static inline mongoc_client_session_t *
session_new (mongoc_client_t *c)
{
   bson_error_t err;
   mongoc_client_session_t *s = mongoc_client_start_session (c, NULL, &err);
   if (!s) {
      snprintf (g.why, sizeof g.why, "start_session: %s", err.message);
   }
   return own (s, session_free);
}

/* The current check's collection on client C, owned by the arena. */
static inline mongoc_collection_t *
coll_of (mongoc_client_t *c)
{
   return own (mongoc_client_get_collection (c, g.db, g.check), coll_free);
}

/* OPTS (may be NULL) plus S's lsid (S may be NULL); a new document owned by the arena. */
static inline bson_t *
with_session (const bson_t *opts, mongoc_client_session_t *s)
{
   bson_error_t err;
   bson_t *o = opts ? own (bson_copy (opts), bson_free_doc) : J ("{}");
   if (s && !mongoc_client_session_append (s, o, &err)) {
      printf ("Bail out! session_append: %s\n", err.message);
      exit (2);
   }
   return o;
}

/* Runs the raw command CMD on DB through C (in S's transaction when S is in one). libmongoc
 * does not retry generic commands, so a failpoint hits exactly one attempt. Write errors in
 * an ok:1 reply count as a failure, like libmongoc's own write helpers report them. */
static inline res_t *
run (mongoc_client_t *c, const char *db, const bson_t *cmd, mongoc_client_session_t *s)
{
   res_t *r = res_new ();
   bson_destroy (&r->reply);
   r->ok = mongoc_client_command_with_opts (
      c, db, cmd, NULL, with_session (NULL, s), &r->reply, &r->err);
   if (r->ok && get_int (&r->reply, "writeErrors.0.code", 0) != 0) {
      r->ok = false;
      r->err.domain = MONGOC_ERROR_SERVER;
      r->err.code = (uint32_t) get_int (&r->reply, "writeErrors.0.code", 0);
      bson_strncpy (r->err.message, get_str (&r->reply, "writeErrors.0.errmsg"),
                    sizeof r->err.message);
   }
   return r;
}

/* R's reply as relaxed extended JSON, owned by the arena (for failure reasons). */
static inline const char *
reply_json (const res_t *r)
{
   char *json = bson_as_relaxed_extended_json (&r->reply, NULL);
   return own (json, bson_free);
}

/* Runs an admin command on the main client. */
static inline res_t *
admin (const bson_t *cmd)
{
   return run (g.main, "admin", cmd, NULL);
}

/* Sets the failCommand failpoint: MODE is JSON ('alwaysOn', {'times': 1}, ...), DATA the
 * members of its data document besides appName, which is APP. */
static inline res_t *
failpoint_for (const char *app, const char *mode, const char *data)
{
   return admin (J ("{'configureFailPoint': 'failCommand', 'mode': %s,"
                    " 'data': {'appName': '%s', %s}}",
                    mode, app, data));
}

static inline res_t *
failpoint (const char *mode, const char *data)
{
   return failpoint_for (g.app, mode, data);
}

static inline void
failpoint_off (void)
{
   admin (J ("{'configureFailPoint': 'failCommand', 'mode': 'off'}"));
}

/* FAILPOINT(mode, data): failpoint (MODE, DATA), or end the current check as failed. */
#define FAILPOINT(mode, data) REQUIRE_OK (failpoint (mode, data), "configureFailPoint")

/* ---- collection operations, each returning a result ------------------------------------ */

static inline res_t *
insert (mongoc_collection_t *coll, mongoc_client_session_t *s, const bson_t *doc)
{
   res_t *r = res_new ();
   bson_destroy (&r->reply);
   r->ok = mongoc_collection_insert_one (coll, doc, with_session (NULL, s), &r->reply, &r->err);
   return r;
}

static inline res_t *
update (mongoc_collection_t *coll,
        mongoc_client_session_t *s,
        const bson_t *filter,
        const bson_t *upd)
{
   res_t *r = res_new ();
   bson_destroy (&r->reply);
   r->ok = mongoc_collection_update_one (
      coll, filter, upd, with_session (NULL, s), &r->reply, &r->err);
   return r;
}

/* The number of documents matching FILTER as seen by S (or outside any session), or -1
 * (the error is printed as a TAP comment). */
static inline int64_t
count (mongoc_collection_t *coll, mongoc_client_session_t *s, const bson_t *filter)
{
   bson_error_t err;
   int64_t n =
      mongoc_collection_count_documents (coll, filter, with_session (NULL, s), NULL, NULL, &err);
   if (n < 0) {
      printf ("# %s: count_documents failed: %s\n", g.check, err.message);
   }
   return n;
}

/* The first document matching FILTER, a copy owned by the arena, or NULL. */
static inline bson_t *
find_one (mongoc_collection_t *coll, mongoc_client_session_t *s, const bson_t *filter)
{
   const bson_t *doc;
   bson_t *out = NULL;
   mongoc_cursor_t *cur = mongoc_collection_find_with_opts (
      coll, filter, with_session (J ("{'limit': 1}"), s), NULL);
   if (mongoc_cursor_next (cur, &doc)) {
      out = own (bson_copy (doc), bson_free_doc);
   }
   mongoc_cursor_destroy (cur);
   return out;
}

/* Starts a transaction on S with the options in OPTS_JSON (NULL: none), which may name a
 * 'readConcern' level, 'writeConcern': 'majority' and 'maxCommitTimeMS'. */
static inline res_t *
start (mongoc_client_session_t *s, const char *opts_json)
{
   res_t *r = res_new ();
   mongoc_transaction_opt_t *opts = mongoc_transaction_opts_new ();
   bson_t *o = J ("%s", opts_json ? opts_json : "{}");
   if (*get_str (o, "readConcern")) {
      mongoc_read_concern_t *rc = mongoc_read_concern_new ();
      mongoc_read_concern_set_level (rc, get_str (o, "readConcern"));
      mongoc_transaction_opts_set_read_concern (opts, rc);
      mongoc_read_concern_destroy (rc);
   }
   if (get_int (o, "maxCommitTimeMS", 0) > 0) {
      mongoc_transaction_opts_set_max_commit_time_ms (opts, get_int (o, "maxCommitTimeMS", 0));
   }
   if (strcmp (get_str (o, "writeConcern"), "majority") == 0) {
      mongoc_write_concern_t *wc = mongoc_write_concern_new ();
      mongoc_write_concern_set_w (wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
      mongoc_transaction_opts_set_write_concern (opts, wc);
      mongoc_write_concern_destroy (wc);
   }
   r->ok = mongoc_client_session_start_transaction (s, opts, &r->err);
   mongoc_transaction_opts_destroy (opts);
   return r;
}

static inline res_t *
commit (mongoc_client_session_t *s)
{
   res_t *r = res_new ();
   bson_destroy (&r->reply);
   r->ok = mongoc_client_session_commit_transaction (s, &r->reply, &r->err);
   return r;
}

static inline res_t *
abort_txn (mongoc_client_session_t *s)
{
   res_t *r = res_new ();
   r->ok = mongoc_client_session_abort_transaction (s, &r->err);
   return r;
}

/* A session on C with a transaction started and its first statement (an insert of
 * {_id: FIRST_ID}) done, so the snapshot is established; NULL with a reason on failure. */
static inline mongoc_client_session_t *
open_txn (mongoc_client_t *c, mongoc_collection_t *coll, int first_id)
{
   mongoc_client_session_t *s = session_new (c);
   res_t *r;
   if (!s) {
      return NULL;
   }
   r = start (s, NULL);
   if (!r->ok) {
      snprintf (g.why, sizeof g.why, "start_transaction: %s", describe (r));
      return NULL;
   }
   r = insert (coll, s, J ("{'_id': %d}", first_id));
   if (!r->ok) {
      snprintf (g.why, sizeof g.why, "first insert in the transaction: %s", describe (r));
      return NULL;
   }
   return s;
}

/* OPEN_TXN(s, client, coll, id): declare session S with a transaction opened by open_txn,
 * or end the check as failed. */
#define OPEN_TXN(var, c, coll, id)                         \
   mongoc_client_session_t *var = open_txn (c, coll, id); \
   if (!var) {                                            \
      return false;                                       \
   }

/* A transaction whose commit ran under a failCommand failpoint on commitTransaction. */
typedef struct {
   mongoc_collection_t *coll;   /* the check's collection; the transaction inserted {_id: 1} */
   mongoc_client_session_t *s;  /* the session, its transaction still open unless committed */
   res_t *commit;               /* the outcome of the commit */
} fp_commit_t;

/* On client C: opens a transaction (open_txn, first _id 1), sets the failpoint MODE on
 * commitTransaction with the further data members DATA, then commits once. False with a
 * reason when a step before the commit fails. */
static inline bool
commit_with_failpoint (mongoc_client_t *c, const char *mode, const char *data, fp_commit_t *t)
{
   char fp_data[512];

   t->coll = coll_of (c);
   t->s = open_txn (c, t->coll, 1);
   if (!t->s) {
      return false;
   }
   snprintf (fp_data, sizeof fp_data, "'failCommands': ['commitTransaction'], %s", data);
   FAILPOINT (mode, fp_data);
   t->commit = commit (t->s);
   return true;
}

/* COMMIT_WITH_FAILPOINT(t, client, mode, data): declare fp_commit_t T filled by
 * commit_with_failpoint, or end the check as failed. */
#define COMMIT_WITH_FAILPOINT(var, c, mode, data)           \
   fp_commit_t var;                                         \
   if (!commit_with_failpoint (c, mode, data, &var)) {      \
      return false;                                         \
   }

/* ---- APM: the commitTransaction (and write) commands a client sends --------------------- */

static struct {
   int writes;         /* insert and update commands started */
   int started;        /* commitTransaction commands started */
   char w[4][32];      /* writeConcern.w of each ("" when absent; numbers as digits) */
   int64_t max_time_ms; /* maxTimeMS of the first one (0: absent) */
   int failed;         /* commitTransaction commands failed */
   bool failed_rwe[4]; /* whether each failed reply carried RetryableWriteError */
} commits;

static inline void
on_started (const mongoc_apm_command_started_t *e)
{
   const bson_t *cmd = mongoc_apm_command_started_get_command (e);
   bson_iter_t it;
   const char *name = mongoc_apm_command_started_get_command_name (e);
   int i = commits.started;
   if (!strcmp (name, "insert") || !strcmp (name, "update")) {
      commits.writes++;
   }
   if (strcmp (name, "commitTransaction") != 0) {
      return;
   }
   commits.started++;
   if (i == 0) {
      commits.max_time_ms = get_int (cmd, "maxTimeMS", 0);
   }
   if (i >= 4) {
      return;
   }
   commits.w[i][0] = '\0';
   if (bson_iter_init_find (&it, cmd, "writeConcern") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
      bson_t wc;
      uint32_t len;
      const uint8_t *data;
      bson_iter_document (&it, &len, &data);
      if (bson_init_static (&wc, data, len)) {
         const char *w = get_str (&wc, "w");
         if (*w) {
            bson_strncpy (commits.w[i], w, sizeof commits.w[i]);
         } else if (get_int (&wc, "w", -1) >= 0) {
            snprintf (commits.w[i], sizeof commits.w[i], "%d", (int) get_int (&wc, "w", 0));
         }
      }
   }
}

static inline void
on_failed (const mongoc_apm_command_failed_t *e)
{
   int i = commits.failed;
   if (strcmp (mongoc_apm_command_failed_get_command_name (e), "commitTransaction") != 0) {
      return;
   }
   commits.failed++;
   if (i < 4) {
      commits.failed_rwe[i] =
         mongoc_error_has_label (mongoc_apm_command_failed_get_reply (e), RWE);
   }
}

/* A new client (arena) on cluster 1 whose commitTransaction commands are recorded in
 * `commits`, which is reset. */
static inline mongoc_client_t *
client_with_apm (void)
{
   mongoc_client_t *c = client_new (g.uri1, g.app);
   mongoc_apm_callbacks_t *cb = mongoc_apm_callbacks_new ();
   mongoc_apm_set_command_started_cb (cb, on_started);
   mongoc_apm_set_command_failed_cb (cb, on_failed);
   mongoc_client_set_apm_callbacks (c, cb, NULL);
   mongoc_apm_callbacks_destroy (cb);
   memset (&commits, 0, sizeof commits);
   return c;
}

/* ---- the runner -------------------------------------------------------------------------- */

/* One row of a program's check table: the check's name (also its collection's) and body. */
typedef struct {
   const char *name;
   bool (*fn) (void);
} conformance_check_t;

/* libmongoc's warnings become TAP comments, except the expected "Error in abortTransaction"
 * after the server already aborted a transaction (WriteConflict, expiry, ...), which is
 * counted and reported once per check. */
static pthread_mutex_t abort_warnings_mu = PTHREAD_MUTEX_INITIALIZER;
static int abort_warnings;

static inline void
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

static inline void
drop_db (const char *uri, const char *db)
{
   mongoc_client_t *c = client_new_raw (uri, g.app);
   bson_t *cmd = BCON_NEW ("dropDatabase", BCON_INT32 (1));
   mongoc_client_command_simple (c, db, cmd, NULL, NULL, NULL);
   bson_destroy (cmd);
   mongoc_client_destroy (c);
}

static inline int
conformance_main (const conformance_check_t *checks, int n)
{
   const char *only = getenv ("XDBTX_CONFORMANCE_ONLY"); /* run one check by name */
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

#endif
