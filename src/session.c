/*
 * session.c - sessions and transactions, and the client an operation runs on.
 *
 * A session pops one client from its pool at start and keeps it until it is
 * destroyed: libmongoc sessions belong to the client that made them, and a
 * client back in the pool could be popped by another thread while the
 * session still lives. Destruction order is cursor -> session -> client, so
 * a session first closes the cursors still open on it. Nothing here retries:
 * the retry loops of the convenient API live in the Lua layer.
 */
#include <string.h>
#include <unistd.h>

#include "xcore.h"

xdbtx_session_t *
xdbtx_session_new (xdbtx_pool_t *pool, const mongoc_session_opt_t *opts, xdbtx_error_t *err)
{
   xdbtx_session_t *s;
   bson_error_t error;
   mongoc_client_t *client = xdbtx_pool_pop (pool, err);

   if (!client) {
      return NULL;
   }
   s = bson_malloc0 (sizeof *s);
   s->pool = pool;
   s->client = client;
   s->pid = xdbtx_getpid ();
   s->cs = mongoc_client_start_session (client, opts, &error);
   s->has_default_txn_opts = opts && mongoc_session_opts_get_default_transaction_opts (opts);
   if (!s->cs) {
      xdbtx_error_from_mongoc (err, &error, NULL, "connect");
      xdbtx_pool_push (pool, client);
      bson_free (s);
      return NULL;
   }
   return s;
}

void
xdbtx_session_destroy (xdbtx_session_t *s)
{
   if (!s) {
      return;
   }
   if (s->pid != xdbtx_getpid ()) {
      /* Forked child: the client and session are the parent's; touching
       * them would write on the parent's sockets. Abandon them. */
      while (s->cursors) {
         s->cursors->mc = NULL;
         xdbtx_cursor_close (s->cursors);
      }
      bson_free (s);
      return;
   }
   while (s->cursors) {
      xdbtx_cursor_close (s->cursors);
   }
   if (mongoc_client_session_in_transaction (s->cs)) {
      xdbtx_pool_apm_sync (s->pool, s->client);
      (void) mongoc_client_session_abort_transaction (s->cs, NULL);
   }
   mongoc_client_session_destroy (s->cs);
   xdbtx_pool_push (s->pool, s->client);
   bson_free (s);
}

bool
xdbtx_session_usable (const xdbtx_session_t *s, xdbtx_error_t *err)
{
   if (!s) {
      xdbtx_error_set (err, XDBTX_DOMAIN_STATE, 0, "state", "session is closed");
      return false;
   }
   if (s->pid != xdbtx_getpid ()) {
      xdbtx_error_set (err, XDBTX_DOMAIN_STATE, 0, "state",
                       "session belongs to another process (started before fork)");
      return false;
   }
   return true;
}

bool
xdbtx_session_start_transaction (xdbtx_session_t *s,
                                 const mongoc_transaction_opt_t *opts,
                                 xdbtx_error_t *err)
{
   bson_error_t error;
   const mongoc_read_prefs_t *prefs = NULL;
   mongoc_transaction_opt_t *defaults;

   if (!xdbtx_session_usable (s, err)) {
      return false;
   }
   if (!mongoc_client_session_start_transaction (s->cs, opts, &error)) {
      xdbtx_error_from_mongoc (err, &error, NULL, "start");
      return false;
   }
   /* The transaction's read preference, read once here rather than on every
    * read: its own, else the session's default transaction options', else
    * the client's (libmongoc's order). */
   if (opts) {
      prefs = mongoc_transaction_opts_get_read_prefs (opts);
   }
   if (!prefs && s->has_default_txn_opts) {
      defaults = mongoc_session_opts_get_transaction_opts (s->cs);
      if (defaults && mongoc_transaction_opts_get_read_prefs (defaults)) {
         s->txn_reads_secondary =
            mongoc_read_prefs_get_mode (mongoc_transaction_opts_get_read_prefs (defaults)) !=
            MONGOC_READ_PRIMARY;
         mongoc_transaction_opts_destroy (defaults);
         return true;
      }
      mongoc_transaction_opts_destroy (defaults);
   }
   if (!prefs) {
      prefs = mongoc_client_get_read_prefs (s->client);
   }
   s->txn_reads_secondary = prefs && mongoc_read_prefs_get_mode (prefs) != MONGOC_READ_PRIMARY;
   return true;
}

bool
xdbtx_session_check_read (const xdbtx_session_t *s, xdbtx_error_t *err)
{
   if (s && s->txn_reads_secondary && mongoc_client_session_in_transaction (s->cs)) {
      xdbtx_error_set (err, MONGOC_ERROR_TRANSACTION, MONGOC_ERROR_TRANSACTION_INVALID_STATE,
                       "operation", "read preference in a transaction must be primary");
      return false;
   }
   return true;
}

bool
xdbtx_session_commit (xdbtx_session_t *s, xdbtx_error_t *err)
{
   bson_error_t error;
   bson_t reply;
   bool ok;

   if (!xdbtx_session_usable (s, err)) {
      return false;
   }
   xdbtx_pool_apm_sync (s->pool, s->client);
   ok = mongoc_client_session_commit_transaction (s->cs, &reply, &error);
   if (!ok) {
      xdbtx_error_from_mongoc (err, &error, &reply, "commit");
   }
   bson_destroy (&reply);
   return ok;
}

bool
xdbtx_session_abort (xdbtx_session_t *s, xdbtx_error_t *err)
{
   bson_error_t error;

   if (!xdbtx_session_usable (s, err)) {
      return false;
   }
   xdbtx_pool_apm_sync (s->pool, s->client);
   if (!mongoc_client_session_abort_transaction (s->cs, &error)) {
      xdbtx_error_from_mongoc (err, &error, NULL, "abort");
      return false;
   }
   return true;
}

bool
xdbtx_session_in_transaction (const xdbtx_session_t *s)
{
   return s && s->pid == xdbtx_getpid () && mongoc_client_session_in_transaction (s->cs);
}

const char *
xdbtx_session_state (const xdbtx_session_t *s)
{
   switch (mongoc_client_session_get_transaction_state (s->cs)) {
   case MONGOC_TRANSACTION_STARTING:
      return "starting";
   case MONGOC_TRANSACTION_IN_PROGRESS:
      return "in_progress";
   case MONGOC_TRANSACTION_COMMITTED:
      return "committed";
   case MONGOC_TRANSACTION_ABORTED:
      return "aborted";
   case MONGOC_TRANSACTION_NONE:
   default:
      return "none";
   }
}

const bson_t *
xdbtx_session_lsid (const xdbtx_session_t *s)
{
   return mongoc_client_session_get_lsid (s->cs);
}

xdbtx_pool_t *
xdbtx_session_pool (const xdbtx_session_t *s)
{
   return s->pool;
}

bool
xdbtx_op_begin (xdbtx_op_t *op,
                xdbtx_pool_t *pool,
                xdbtx_session_t *s,
                bson_t *opts,
                xdbtx_error_t *err)
{
   bson_error_t error;

   op->pool = pool;
   op->client = NULL;
   op->borrowed = false;
   op->opts = opts;
   if (s) {
      if (!xdbtx_session_usable (s, err)) {
         return false;
      }
      if (s->pool != pool) {
         xdbtx_error_set (err, XDBTX_DOMAIN_STATE, 0, "state",
                          "session belongs to another client (%s)", xdbtx_pool_id (s->pool));
         return false;
      }
      if (!opts) {
         bson_init (&op->own);
         op->opts = &op->own;
      }
      if (!mongoc_client_session_append (s->cs, op->opts, &error)) {
         xdbtx_error_from_mongoc (err, &error, NULL, "operation");
         xdbtx_op_end (op);
         return false;
      }
      xdbtx_pool_apm_sync (pool, s->client);
      op->client = s->client;
      return true;
   }
   op->client = xdbtx_pool_pop (pool, err);
   op->borrowed = op->client != NULL;
   return op->client != NULL;
}

void
xdbtx_op_end (xdbtx_op_t *op)
{
   if (op->borrowed) {
      xdbtx_pool_push (op->pool, op->client);
   }
   if (op->opts == &op->own) {
      bson_destroy (&op->own);
   }
   op->opts = NULL;
   op->client = NULL;
   op->borrowed = false;
}
