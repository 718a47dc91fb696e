/*
 * cursor.c - server cursors of find and aggregate.
 *
 * A cursor owns its mongoc cursor and, when it runs without a session, the
 * client it borrowed for its whole life (libmongoc cursors stay on their
 * client). With a session it is linked into the session's list, so a
 * session that closes first closes it (destroy order cursor -> session).
 * Closing an unexhausted cursor sends killCursors (mongoc_cursor_destroy):
 * an early `break` leaves nothing open on the server. A cursor without a
 * session gives its borrowed client back as soon as the server says it has
 * no more batches (cursor id 0): the rest of the last batch is copied out
 * first, so `coll:find(q):next()` never holds a pooled client until the
 * garbage collector runs.
 */
#include <unistd.h>

#include "xcore.h"

void
xdbtx_cursor_link (xdbtx_cursor_t *cur, xdbtx_session_t *s)
{
   cur->session = s;
   cur->prev = NULL;
   cur->next = s->cursors;
   if (s->cursors) {
      s->cursors->prev = cur;
   }
   s->cursors = cur;
}

static void
unlink_cursor (xdbtx_cursor_t *cur)
{
   if (!cur->session) {
      return;
   }
   if (cur->prev) {
      cur->prev->next = cur->next;
   } else {
      cur->session->cursors = cur->next;
   }
   if (cur->next) {
      cur->next->prev = cur->prev;
   }
   cur->session = NULL;
   cur->next = cur->prev = NULL;
}

static void
free_buffer (xdbtx_cursor_t *cur)
{
   size_t i;

   for (i = cur->ibuf; i < cur->nbuf; i++) {
      bson_destroy (cur->buf[i]);
   }
   bson_free (cur->buf);
   cur->buf = NULL;
   cur->nbuf = cur->ibuf = 0;
   if (cur->held) {
      bson_destroy (cur->held);
      cur->held = NULL;
   }
}

/* The client the cursor's commands run on: its own, or its session's. */
static mongoc_client_t *
cursor_client (const xdbtx_cursor_t *cur)
{
   return cur->borrowed ? cur->borrowed : cur->session ? cur->session->client : NULL;
}

void
xdbtx_cursor_close (xdbtx_cursor_t *cur)
{
   mongoc_client_t *client = cursor_client (cur);

   unlink_cursor (cur);
   free_buffer (cur);
   cur->drained = false;
   if (cur->pid != xdbtx_getpid ()) {
      /* Forked child: the cursor and its client are the parent's. */
      cur->mc = NULL;
      cur->borrowed = NULL;
      return;
   }
   if (cur->mc) {
      if (client) {
         xdbtx_pool_apm_sync (cur->pool, client); /* killCursors may be sent */
      }
      mongoc_cursor_destroy (cur->mc);
      cur->mc = NULL;
   }
   if (cur->borrowed) {
      xdbtx_pool_push (cur->pool, cur->borrowed);
      cur->borrowed = NULL;
   }
}

void
xdbtx_cursor_destroy (xdbtx_cursor_t *cur)
{
   if (cur) {
      xdbtx_cursor_close (cur);
      bson_free (cur);
   }
}

bool
xdbtx_cursor_closed (const xdbtx_cursor_t *cur)
{
   return !cur || (!cur->mc && !cur->drained);
}

/* The server has no more batches: copy out `doc` and the rest of this
 * batch, destroy the mongoc cursor (nothing is sent for cursor id 0) and
 * give the borrowed client back. Returns the copy of doc. */
static const bson_t *
drain (xdbtx_cursor_t *cur, const bson_t *doc)
{
   const bson_t *next;
   size_t cap = 16;

   cur->held = bson_copy (doc);
   cur->buf = bson_malloc (cap * sizeof *cur->buf);
   while (mongoc_cursor_next (cur->mc, &next)) {
      if (cur->nbuf == cap) {
         cap *= 2;
         cur->buf = bson_realloc (cur->buf, cap * sizeof *cur->buf);
      }
      cur->buf[cur->nbuf++] = bson_copy (next);
   }
   mongoc_cursor_destroy (cur->mc);
   cur->mc = NULL;
   xdbtx_pool_push (cur->pool, cur->borrowed);
   cur->borrowed = NULL;
   cur->drained = true;
   return cur->held;
}

const bson_t *
xdbtx_cursor_next (xdbtx_cursor_t *cur, bool *failed, xdbtx_error_t *err)
{
   const bson_t *doc = NULL;
   const bson_t *reply = NULL;
   bson_error_t error;

   *failed = false;
   if (cur->drained) {
      if (cur->held) {
         bson_destroy (cur->held);
         cur->held = NULL;
      }
      if (cur->ibuf == cur->nbuf) {
         return NULL;
      }
      cur->held = cur->buf[cur->ibuf];
      cur->buf[cur->ibuf++] = NULL;
      return cur->held;
   }
   if (!cur->mc) {
      *failed = true;
      xdbtx_error_set (err, XDBTX_DOMAIN_STATE, 0, "state", "cursor is closed");
      return NULL;
   }
   if (cur->session && !xdbtx_session_usable (cur->session, err)) {
      *failed = true;
      return NULL;
   }
   xdbtx_pool_apm_sync (cur->pool, cursor_client (cur));
   if (mongoc_cursor_next (cur->mc, &doc)) {
      if (cur->borrowed && mongoc_cursor_get_id (cur->mc) == 0) {
         return drain (cur, doc);
      }
      return doc;
   }
   if (mongoc_cursor_error_document (cur->mc, &error, &reply)) {
      *failed = true;
      xdbtx_error_from_mongoc (err, &error, reply, "operation");
   }
   return NULL;
}
