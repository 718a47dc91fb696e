/*
 * commit.c - the commit phase of a transaction over several sessions (the
 * transaction tree's coordinated commit).
 *
 * Commits a set of sessions, each of its own client, in order or all at once
 * from threads of their own, and reports each session's outcome. A commit
 * whose result is unknown (UnknownTransactionCommitResult, not after
 * MaxTimeMSExpired) is sent again (libmongoc adds w:majority), after a
 * short growing pause, until it is known or the deadline passes. In order, the first commit that does not
 * succeed stops the phase and the sessions after it are aborted. Nothing
 * here touches Lua: the caller (the binding) owns the items and reads them
 * after xdbtx_commit_all returns. Each session's client is used by exactly
 * one thread at a time: the caller's, or the one thread committing it.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "xcore.h"

double
xdbtx_now (void)
{
   struct timespec ts;

   clock_gettime (CLOCK_MONOTONIC, &ts);
   return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static bool
max_time_expired (const xdbtx_error_t *err)
{
   bson_iter_t it, child;

   if (err->code == 50) {
      return true;
   }
   if (err->reply && bson_iter_init_find (&it, err->reply, "writeConcernError") &&
       BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &child) &&
       bson_iter_find (&child, "code") && BSON_ITER_HOLDS_INT (&child)) {
      return bson_iter_as_int64 (&child) == 50;
   }
   return false;
}

/* Sleep before re-sending a commit whose result is unknown: 5 ms growing
 * 1.5x per attempt, at most 500 ms, never past the deadline, so a cluster
 * that stays unreachable is not sent a commit in a busy loop. */
static void
pause_before_retry (int attempt, double deadline)
{
   double pause = 0.005, left = deadline - xdbtx_now ();
   struct timespec ts;
   int i;

   for (i = 1; i < attempt && pause < 0.5; i++) {
      pause *= 1.5;
   }
   if (pause > 0.5) {
      pause = 0.5;
   }
   if (pause > left) {
      pause = left;
   }
   if (pause <= 0) {
      return;
   }
   ts.tv_sec = (time_t) pause;
   ts.tv_nsec = (long) ((pause - (double) ts.tv_sec) * 1e9);
   while (nanosleep (&ts, &ts) != 0) {
   }
}

/* Keep the error of a send that is sent again (it->error, which is then
 * empty), for the caller to report. */
static void
keep_retried (xdbtx_commit_t *it)
{
   xdbtx_error_t *r = bson_realloc (it->retried, (size_t) (it->n_retried + 1) * sizeof *r);

   it->retried = r;
   r[it->n_retried++] = it->error; /* the reply moves with it */
   xdbtx_error_init (&it->error);
}

/* Commit one item until its result is known or the deadline passes. */
static void
commit_one (xdbtx_commit_t *it, double deadline)
{
   it->started = xdbtx_now ();
   for (;;) {
      it->attempts++;
      if (it->attempts > 1) {
         keep_retried (it);
      }
      if (xdbtx_session_commit (it->session, &it->error)) {
         it->state = XDBTX_COMMIT_OK;
         break;
      }
      if (!xdbtx_error_has_label (&it->error, "UnknownTransactionCommitResult") ||
          max_time_expired (&it->error)) {
         it->state = XDBTX_COMMIT_FAILED;
         break;
      }
      if (xdbtx_now () >= deadline) {
         it->state = XDBTX_COMMIT_UNKNOWN;
         break;
      }
      pause_before_retry (it->attempts, deadline);
   }
   it->finished = xdbtx_now ();
}

typedef struct {
   xdbtx_commit_t *item;
   double deadline;
} job_t;

static void *
commit_thread (void *arg)
{
   job_t *job = arg;

   commit_one (job->item, job->deadline);
   return NULL;
}

void
xdbtx_commit_all (xdbtx_commit_t *items, size_t n, bool parallel, double deadline)
{
   pthread_t *threads;
   job_t *jobs;
   bool *started;
   size_t i;

   for (i = 0; i < n; i++) {
      items[i].state = XDBTX_COMMIT_PENDING;
      items[i].attempts = 0;
      items[i].started = items[i].finished = 0;
      xdbtx_error_init (&items[i].error);
      items[i].retried = NULL;
      items[i].n_retried = 0;
   }
   if (!parallel || n < 2) {
      for (i = 0; i < n; i++) {
         commit_one (&items[i], deadline);
         if (items[i].state != XDBTX_COMMIT_OK) {
            break;
         }
      }
      for (i++; i < n; i++) {
         xdbtx_error_t ignored;

         xdbtx_error_init (&ignored);
         (void) xdbtx_session_abort (items[i].session, &ignored);
         xdbtx_error_cleanup (&ignored);
         items[i].state = XDBTX_COMMIT_ABORTED;
      }
      return;
   }
   threads = bson_malloc0 (n * sizeof *threads);
   jobs = bson_malloc0 (n * sizeof *jobs);
   started = bson_malloc0 (n * sizeof *started);
   for (i = 0; i < n; i++) {
      jobs[i].item = &items[i];
      jobs[i].deadline = deadline;
      started[i] = pthread_create (&threads[i], NULL, commit_thread, &jobs[i]) == 0;
      if (!started[i]) {
         /* No thread to spare: commit this one here, in turn. */
         commit_one (&items[i], deadline);
      }
   }
   for (i = 0; i < n; i++) {
      if (started[i]) {
         pthread_join (threads[i], NULL);
      }
   }
   bson_free (started);
   bson_free (jobs);
   bson_free (threads);
}

void
xdbtx_commit_cleanup (xdbtx_commit_t *items, size_t n)
{
   size_t i;
   int j;

   for (i = 0; i < n; i++) {
      xdbtx_error_cleanup (&items[i].error);
      for (j = 0; j < items[i].n_retried; j++) {
         xdbtx_error_cleanup (&items[i].retried[j]);
      }
      bson_free (items[i].retried);
      items[i].retried = NULL;
      items[i].n_retried = 0;
   }
}
