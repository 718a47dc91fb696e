/*
 * admin.c - indexes, drops and listings: createIndexes, listIndexes,
 * dropIndexes and drop on a collection; database handles (dropDatabase,
 * listCollections); listDatabases on a pool.
 *
 * Commands go through libmongoc's collection/database write-command
 * helpers, which apply the handle's defaults and the session's rules and
 * always give back the server's reply (where error labels live); listings
 * through its cursor helpers (find_indexes, find_collections,
 * find_databases), drained here before the client goes back, so a listing
 * never holds a pooled client after it returns. Knows nothing of Lua.
 */
#include <string.h>

#include "xcore.h"

struct xdbtx_db_t {
   xdbtx_pool_t *pool;
   char *name;
   xdbtx_defaults_t defaults; /* owned copies; NULL fields: the client's */
};

/* Append every document of cur (or, with field, its string `field`) to the
 * array out, then destroy cur. false with err (and the server's reply) when
 * the cursor failed. */
static bool
drain_cursor (mongoc_cursor_t *cur, const char *field, bson_t *out, xdbtx_error_t *err)
{
   const bson_t *doc, *reply = NULL;
   bson_error_t error;
   bson_iter_t it;
   char buf[16];
   const char *key;
   uint32_t i = 0;
   bool ok = true;

   while (mongoc_cursor_next (cur, &doc)) {
      if (field && !(bson_iter_init_find (&it, doc, field) && BSON_ITER_HOLDS_UTF8 (&it))) {
         continue;
      }
      bson_uint32_to_string (i++, &key, buf, sizeof buf);
      if (field) {
         bson_append_utf8 (out, key, -1, bson_iter_utf8 (&it, NULL), -1);
      } else {
         bson_append_document (out, key, -1, doc);
      }
   }
   if (mongoc_cursor_error_document (cur, &error, &reply)) {
      xdbtx_error_from_mongoc (err, &error, reply, "operation");
      ok = false;
   }
   mongoc_cursor_destroy (cur);
   return ok;
}

/* One command through mongoc_collection_write_command_with_opts. */
static bool
coll_write_command (xdbtx_coll_t *c, xdbtx_session_t *s, const bson_t *cmd, bson_t *opts,
                    bson_t *reply, xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   mongoc_collection_t *mc = xdbtx_coll_begin (&op, c, s, opts, reply, err);
   bool ok;

   if (!mc) {
      return false;
   }
   ok = mongoc_collection_write_command_with_opts (mc, cmd, op.opts, reply, &error);
   return xdbtx_coll_end (&op, mc, ok, &error, reply, err);
}

bool
xdbtx_coll_create_indexes (xdbtx_coll_t *c, xdbtx_session_t *s, const bson_t *indexes,
                           bson_t *opts, bson_t *reply, xdbtx_error_t *err)
{
   bson_t cmd = BSON_INITIALIZER;
   bool ok;

   BSON_APPEND_UTF8 (&cmd, "createIndexes", xdbtx_coll_name (c));
   BSON_APPEND_ARRAY (&cmd, "indexes", indexes);
   ok = coll_write_command (c, s, &cmd, opts, reply, err);
   bson_destroy (&cmd);
   return ok;
}

bool
xdbtx_coll_list_indexes (xdbtx_coll_t *c, xdbtx_session_t *s, bson_t *opts, bson_t *out,
                         xdbtx_error_t *err)
{
   xdbtx_op_t op;
   mongoc_collection_t *mc = xdbtx_coll_begin (&op, c, s, opts, NULL, err);
   bool ok;

   if (!mc) {
      return false;
   }
   /* libmongoc answers an empty cursor for a collection that does not exist. */
   ok = drain_cursor (mongoc_collection_find_indexes_with_opts (mc, op.opts), NULL, out, err);
   xdbtx_op_end (&op); /* mc stays with the handle */
   return ok;
}

bool
xdbtx_coll_drop_index (xdbtx_coll_t *c, xdbtx_session_t *s, const char *name, bson_t *opts,
                       bson_t *reply, xdbtx_error_t *err)
{
   bson_t cmd = BSON_INITIALIZER;
   bool ok;

   BSON_APPEND_UTF8 (&cmd, "dropIndexes", xdbtx_coll_name (c));
   BSON_APPEND_UTF8 (&cmd, "index", name);
   ok = coll_write_command (c, s, &cmd, opts, reply, err);
   bson_destroy (&cmd);
   return ok;
}

bool
xdbtx_coll_drop (xdbtx_coll_t *c, xdbtx_session_t *s, bson_t *opts, bool *dropped,
                 xdbtx_error_t *err)
{
   bson_t cmd = BSON_INITIALIZER, reply;
   bool ok;

   BSON_APPEND_UTF8 (&cmd, "drop", xdbtx_coll_name (c));
   ok = coll_write_command (c, s, &cmd, opts, &reply, err);
   *dropped = ok;
   /* MongoDB before 7.0 refuses to drop what does not exist: nothing to do. */
   if (!ok && err->domain == MONGOC_ERROR_SERVER && err->code == 26) {
      xdbtx_error_cleanup (err);
      ok = true;
   }
   bson_destroy (&reply);
   bson_destroy (&cmd);
   return ok;
}

/* ---- databases ---------------------------------------------------------- */

xdbtx_db_t *
xdbtx_db_new (xdbtx_pool_t *pool, const char *name, const xdbtx_defaults_t *defaults)
{
   xdbtx_db_t *db = bson_malloc0 (sizeof *db);

   db->pool = pool;
   db->name = bson_strdup (name);
   xdbtx_defaults_apply (&db->defaults, defaults);
   return db;
}

void
xdbtx_db_destroy (xdbtx_db_t *db)
{
   if (db) {
      xdbtx_defaults_cleanup (&db->defaults);
      bson_free (db->name);
      bson_free (db);
   }
}

const char *
xdbtx_db_name (const xdbtx_db_t *db)
{
   return db->name;
}

xdbtx_pool_t *
xdbtx_db_pool (const xdbtx_db_t *db)
{
   return db->pool;
}

const xdbtx_defaults_t *
xdbtx_db_defaults (const xdbtx_db_t *db)
{
   return &db->defaults;
}

/* The client and a short-lived mongoc_database_t with the handle's
 * defaults (which libmongoc leaves out inside a transaction, as for
 * collections). */
static mongoc_database_t *
db_begin (xdbtx_op_t *op, xdbtx_db_t *db, xdbtx_session_t *s, bson_t *opts, bson_t *reply,
          xdbtx_error_t *err)
{
   mongoc_database_t *md;
   const xdbtx_defaults_t *d = &db->defaults;

   if (!xdbtx_op_begin (op, db->pool, s, opts, err)) {
      if (reply) {
         bson_init (reply);
      }
      return NULL;
   }
   md = mongoc_client_get_database (op->client, db->name);
   if (d->read_concern) {
      mongoc_database_set_read_concern (md, d->read_concern);
   }
   if (d->write_concern) {
      mongoc_database_set_write_concern (md, d->write_concern);
   }
   if (d->read_prefs) {
      mongoc_database_set_read_prefs (md, d->read_prefs);
   }
   return md;
}

bool
xdbtx_db_drop (xdbtx_db_t *db, xdbtx_session_t *s, bson_t *opts, bson_t *reply,
               xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   bson_t cmd = BSON_INITIALIZER;
   mongoc_database_t *md = db_begin (&op, db, s, opts, reply, err);
   bool ok;

   if (!md) {
      bson_destroy (&cmd);
      return false;
   }
   BSON_APPEND_INT32 (&cmd, "dropDatabase", 1);
   ok = mongoc_database_write_command_with_opts (md, &cmd, op.opts, reply, &error);
   if (!ok) {
      xdbtx_error_from_mongoc (err, &error, reply, "operation");
   }
   bson_destroy (&cmd);
   mongoc_database_destroy (md);
   xdbtx_op_end (&op);
   return ok;
}

/* Caller's opts (may be NULL) plus nameOnly and filter, into own. */
static void
listing_opts (bson_t *own, const bson_t *opts, const bson_t *filter)
{
   bson_init (own);
   if (opts) {
      bson_concat (own, opts);
   }
   BSON_APPEND_BOOL (own, "nameOnly", true);
   if (filter && !bson_empty (filter)) {
      BSON_APPEND_DOCUMENT (own, "filter", filter);
   }
}

bool
xdbtx_db_collection_names (xdbtx_db_t *db, xdbtx_session_t *s, const bson_t *filter,
                           bson_t *opts, bson_t *out, xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_t own;
   mongoc_database_t *md;
   bool ok;

   listing_opts (&own, opts, filter);
   md = db_begin (&op, db, s, &own, NULL, err);
   if (!md) {
      bson_destroy (&own);
      return false;
   }
   ok = drain_cursor (mongoc_database_find_collections_with_opts (md, op.opts), "name", out,
                      err);
   mongoc_database_destroy (md);
   xdbtx_op_end (&op);
   bson_destroy (&own);
   return ok;
}

bool
xdbtx_pool_database_names (xdbtx_pool_t *pool, xdbtx_session_t *s, bson_t *opts, bson_t *out,
                           xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_t own;
   bool ok;

   listing_opts (&own, opts, NULL);
   if (!xdbtx_op_begin (&op, pool, s, &own, err)) {
      bson_destroy (&own);
      return false;
   }
   ok = drain_cursor (mongoc_client_find_databases_with_opts (op.client, op.opts), "name", out,
                      err);
   xdbtx_op_end (&op);
   bson_destroy (&own);
   return ok;
}
