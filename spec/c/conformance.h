/*
 * conformance.h - small helpers for the test-server conformance suite (conformance.c).
 *
 * Everything a check creates (clients, sessions, collections, documents, command results)
 * is registered in one per-check arena and released by the runner after the check, in
 * reverse order of creation, so libmongoc's lifecycle (session before client) holds even
 * when a check stops at its first failed expectation. Documents are written as JSON with
 * single quotes, J("{'insert': '%s'}", name), to keep the checks readable.
 * Only the main thread uses these helpers; the concurrency check's threads use plain libmongoc.
 */
#ifndef XDBTX_CONFORMANCE_H
#define XDBTX_CONFORMANCE_H

#include <mongoc/mongoc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
static void *
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

static void
arena_release (void)
{
   while (arena_n > 0) {
      arena_n--;
      arena[arena_n].fn (arena[arena_n].p);
   }
}

static void
res_free (void *p)
{
   res_t *r = p;
   bson_destroy (&r->reply);
   free (r);
}

/* Returns a new result owned by the arena, reply initialised empty. */
static res_t *
res_new (void)
{
   res_t *r = calloc (1, sizeof *r);
   bson_init (&r->reply);
   return own (r, res_free);
}

static void
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
static uint32_t
code (const res_t *r)
{
   return r->ok ? 0 : r->err.code;
}

static bool
has_label (const res_t *r, const char *label)
{
   return mongoc_error_has_label (&r->reply, label);
}

/* The int64 value at dotted PATH in DOC (may be NULL), or DEFLT. */
static int64_t
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
static const char *
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
static const char *
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

static int64_t
now_ms (void)
{
   return bson_get_monotonic_time () / 1000;
}

static void
sleep_ms (long ms)
{
   struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
   while (nanosleep (&ts, &ts) != 0) {
   }
}

#endif
