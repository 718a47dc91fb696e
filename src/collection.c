/*
 * collection.c - CRUD, distinct and counts on one collection, with or
 * without a session; the defaults of handles.
 *
 * A handle is (pool, db, name, defaults): each call gets its client (the
 * session's, or one borrowed from the pool for the call and given back on
 * every path), uses a mongoc_collection_t of that client carrying the
 * handle's defaults, runs one libmongoc operation and hands the caller
 * libmongoc's reply, which is also where errorLabels live. The handle keeps
 * the mongoc_collection_t of the client it last ran on, so a run of
 * operations on one session's client makes it once (a handle is used by one
 * thread at a time; pooled clients live as long as the process, so the
 * cached one is never left pointing at a freed client). Options arrive already translated to libmongoc's names;
 * this file knows nothing of Lua.
 */
#include <string.h>
#include <unistd.h>

#include "xcore.h"

struct xdbtx_coll_t {
   xdbtx_pool_t *pool;
   char *db;
   char *name;
   xdbtx_defaults_t defaults; /* owned copies; NULL fields: the client's */
   mongoc_client_t *mc_client; /* the client mc was made from */
   mongoc_collection_t *mc;    /* owned; NULL until the first call */
   pid_t mc_pid;               /* the process that made it */
};

void
xdbtx_defaults_apply (xdbtx_defaults_t *dst, const xdbtx_defaults_t *src)
{
   if (!src) {
      return;
   }
   if (src->read_concern) {
      mongoc_read_concern_destroy (dst->read_concern);
      dst->read_concern = mongoc_read_concern_copy (src->read_concern);
   }
   if (src->write_concern) {
      mongoc_write_concern_destroy (dst->write_concern);
      dst->write_concern = mongoc_write_concern_copy (src->write_concern);
   }
   if (src->read_prefs) {
      mongoc_read_prefs_destroy (dst->read_prefs);
      dst->read_prefs = mongoc_read_prefs_copy (src->read_prefs);
   }
}

void
xdbtx_defaults_cleanup (xdbtx_defaults_t *d)
{
   mongoc_read_concern_destroy (d->read_concern);
   mongoc_write_concern_destroy (d->write_concern);
   mongoc_read_prefs_destroy (d->read_prefs);
   d->read_concern = NULL;
   d->write_concern = NULL;
   d->read_prefs = NULL;
}

xdbtx_coll_t *
xdbtx_coll_new (xdbtx_pool_t *pool, const char *db, const char *name,
                const xdbtx_defaults_t *defaults)
{
   xdbtx_coll_t *c = bson_malloc0 (sizeof *c);

   c->pool = pool;
   c->db = bson_strdup (db);
   c->name = bson_strdup (name);
   xdbtx_defaults_apply (&c->defaults, defaults);
   return c;
}

void
xdbtx_coll_destroy (xdbtx_coll_t *c)
{
   if (c) {
      if (c->mc && c->mc_pid == xdbtx_getpid ()) {
         mongoc_collection_destroy (c->mc);
      }
      xdbtx_defaults_cleanup (&c->defaults);
      bson_free (c->db);
      bson_free (c->name);
      bson_free (c);
   }
}

const char *
xdbtx_coll_db (const xdbtx_coll_t *c)
{
   return c->db;
}

const char *
xdbtx_coll_name (const xdbtx_coll_t *c)
{
   return c->name;
}

xdbtx_pool_t *
xdbtx_coll_pool (const xdbtx_coll_t *c)
{
   return c->pool;
}

/* reply is initialised on failure so the caller's "always initialised"
 * contract holds. The handle's defaults become the mongoc_collection_t's,
 * which libmongoc leaves out inside a transaction, where the transaction's
 * options rule (no write concern on its statements, its read concern on the
 * first one, its read preference): spec/defaults_spec.lua and the spec
 * tests' collectionOptions check that. */
mongoc_collection_t *
xdbtx_coll_begin (xdbtx_op_t *op, xdbtx_coll_t *c, xdbtx_session_t *s, bson_t *opts,
                  bson_t *reply, xdbtx_error_t *err)
{
   mongoc_collection_t *mc;
   const xdbtx_defaults_t *d = &c->defaults;

   if (!xdbtx_op_begin (op, c->pool, s, opts, err)) {
      if (reply) {
         bson_init (reply);
      }
      return NULL;
   }
   if (c->mc && c->mc_client == op->client && c->mc_pid == xdbtx_getpid ()) {
      return c->mc;
   }
   if (c->mc && c->mc_pid == xdbtx_getpid ()) {
      mongoc_collection_destroy (c->mc);
   }
   mc = mongoc_client_get_collection (op->client, c->db, c->name);
   if (d->read_concern) {
      mongoc_collection_set_read_concern (mc, d->read_concern);
   }
   if (d->write_concern) {
      mongoc_collection_set_write_concern (mc, d->write_concern);
   }
   if (d->read_prefs) {
      mongoc_collection_set_read_prefs (mc, d->read_prefs);
   }
   c->mc = mc;
   c->mc_client = op->client;
   c->mc_pid = xdbtx_getpid ();
   return mc;
}

bool
xdbtx_coll_end (xdbtx_op_t *op, mongoc_collection_t *mc, bool ok, const bson_error_t *error,
                const bson_t *reply, xdbtx_error_t *err)
{
   if (!ok) {
      xdbtx_error_from_mongoc (err, error, reply, "operation");
   }
   (void) mc; /* kept by the handle for its next call */
   xdbtx_op_end (op);
   return ok;
}

bool
xdbtx_coll_insert_one (xdbtx_coll_t *c, xdbtx_session_t *s, const bson_t *doc,
                       bson_t *opts, bson_t *reply, xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   mongoc_collection_t *mc = xdbtx_coll_begin (&op, c, s, opts, reply, err);

   if (!mc) {
      return false;
   }
   return xdbtx_coll_end (&op, mc,
                          mongoc_collection_insert_one (mc, doc, op.opts, reply, &error),
                          &error, reply, err);
}

bool
xdbtx_coll_insert_many (xdbtx_coll_t *c, xdbtx_session_t *s, bson_t **docs,
                        size_t n, bson_t *opts, bson_t *reply, xdbtx_error_t *err)
{
   union {
      bson_t **m;
      const bson_t **c;
   } u = {docs};
   xdbtx_op_t op;
   bson_error_t error;
   mongoc_collection_t *mc = xdbtx_coll_begin (&op, c, s, opts, reply, err);

   if (!mc) {
      return false;
   }
   return xdbtx_coll_end (&op, mc,
                          mongoc_collection_insert_many (mc, u.c, n, op.opts, reply, &error),
                          &error, reply, err);
}

bool
xdbtx_coll_update (xdbtx_coll_t *c, xdbtx_session_t *s, xdbtx_update_kind_t kind,
                   const bson_t *filter, const bson_t *update, bson_t *opts,
                   bson_t *reply, xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   bool ok;
   mongoc_collection_t *mc = xdbtx_coll_begin (&op, c, s, opts, reply, err);

   if (!mc) {
      return false;
   }
   switch (kind) {
   case XDBTX_UPDATE_MANY:
      ok = mongoc_collection_update_many (mc, filter, update, op.opts, reply, &error);
      break;
   case XDBTX_REPLACE_ONE:
      ok = mongoc_collection_replace_one (mc, filter, update, op.opts, reply, &error);
      break;
   case XDBTX_UPDATE_ONE:
   default:
      ok = mongoc_collection_update_one (mc, filter, update, op.opts, reply, &error);
      break;
   }
   return xdbtx_coll_end (&op, mc, ok, &error, reply, err);
}

bool
xdbtx_coll_delete (xdbtx_coll_t *c, xdbtx_session_t *s, bool many, const bson_t *filter,
                   bson_t *opts, bson_t *reply, xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   bool ok;
   mongoc_collection_t *mc = xdbtx_coll_begin (&op, c, s, opts, reply, err);

   if (!mc) {
      return false;
   }
   ok = many ? mongoc_collection_delete_many (mc, filter, op.opts, reply, &error)
             : mongoc_collection_delete_one (mc, filter, op.opts, reply, &error);
   return xdbtx_coll_end (&op, mc, ok, &error, reply, err);
}

bool
xdbtx_coll_find_and_modify (xdbtx_coll_t *c, xdbtx_session_t *s, const bson_t *filter,
                            mongoc_find_and_modify_opts_t *fam, bson_t *reply,
                            xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   bson_t extra = BSON_INITIALIZER;
   mongoc_collection_t *mc = xdbtx_coll_begin (&op, c, s, s ? &extra : NULL, reply, err);
   bool ok;

   if (!mc) {
      bson_destroy (&extra);
      return false;
   }
   if (s && !mongoc_find_and_modify_opts_append (fam, &extra)) {
      bson_destroy (&extra);
      bson_init (reply);
      xdbtx_op_end (&op);
      xdbtx_error_set (err, XDBTX_DOMAIN_ARG, 0, "operation", "cannot add the session");
      return false;
   }
   bson_destroy (&extra);
   ok = mongoc_collection_find_and_modify_with_opts (mc, filter, fam, reply, &error);
   return xdbtx_coll_end (&op, mc, ok, &error, reply, err);
}

bool
xdbtx_coll_count (xdbtx_coll_t *c, xdbtx_session_t *s, const bson_t *filter,
                  bson_t *opts, const mongoc_read_prefs_t *prefs, int64_t *count,
                  xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   bson_t reply;
   mongoc_collection_t *mc;
   bool ok;

   if (!xdbtx_session_check_read (s, err)) {
      return false;
   }
   mc = xdbtx_coll_begin (&op, c, s, opts, NULL, err);
   if (!mc) {
      return false;
   }
   *count = mongoc_collection_count_documents (mc, filter, op.opts, prefs, &reply, &error);
   ok = *count >= 0;
   ok = xdbtx_coll_end (&op, mc, ok, &error, &reply, err);
   bson_destroy (&reply);
   return ok;
}

bool
xdbtx_coll_distinct (xdbtx_coll_t *c, xdbtx_session_t *s, const char *field,
                     const bson_t *filter, bson_t *opts, const mongoc_read_prefs_t *prefs,
                     bson_t *reply, xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   bson_t cmd = BSON_INITIALIZER;
   mongoc_collection_t *mc;
   bool ok;

   if (!xdbtx_session_check_read (s, err)) {
      bson_init (reply);
      bson_destroy (&cmd);
      return false;
   }
   mc = xdbtx_coll_begin (&op, c, s, opts, reply, err);
   if (!mc) {
      bson_destroy (&cmd);
      return false;
   }
   BSON_APPEND_UTF8 (&cmd, "distinct", c->name);
   BSON_APPEND_UTF8 (&cmd, "key", field);
   if (filter && !bson_empty (filter)) {
      BSON_APPEND_DOCUMENT (&cmd, "query", filter);
   }
   /* read_command applies the collection's read concern and preference. */
   ok = mongoc_collection_read_command_with_opts (mc, &cmd, prefs, op.opts, reply, &error);
   bson_destroy (&cmd);
   return xdbtx_coll_end (&op, mc, ok, &error, reply, err);
}

/* libmongoc 1.23's mongoc_collection_estimated_document_count refuses any
 * session ("must not specify explicit session", leaving its reply
 * uninitialised), which would put this read outside the ambient
 * transaction; so the same count command goes through read_command, which
 * takes the session, and the server says whether it may run there. */
bool
xdbtx_coll_estimated_count (xdbtx_coll_t *c, xdbtx_session_t *s, bson_t *opts,
                            const mongoc_read_prefs_t *prefs, int64_t *count,
                            xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   bson_t reply, cmd = BSON_INITIALIZER;
   bson_iter_t it;
   mongoc_collection_t *mc;
   bool ok;

   if (!xdbtx_session_check_read (s, err)) {
      bson_destroy (&cmd);
      return false;
   }
   mc = xdbtx_coll_begin (&op, c, s, opts, &reply, err);
   if (!mc) {
      bson_destroy (&reply);
      bson_destroy (&cmd);
      return false;
   }
   BSON_APPEND_UTF8 (&cmd, "count", c->name);
   ok = mongoc_collection_read_command_with_opts (mc, &cmd, prefs, op.opts, &reply, &error);
   *count = ok && bson_iter_init_find (&it, &reply, "n") && BSON_ITER_HOLDS_NUMBER (&it)
               ? bson_iter_as_int64 (&it)
               : 0;
   ok = xdbtx_coll_end (&op, mc, ok, &error, &reply, err);
   bson_destroy (&reply);
   bson_destroy (&cmd);
   return ok;
}

static xdbtx_cursor_t *
open_cursor (xdbtx_coll_t *c, xdbtx_session_t *s, bool aggregate, const bson_t *query,
             bson_t *opts, const mongoc_read_prefs_t *prefs, xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   const bson_t *reply;
   xdbtx_cursor_t *cur;
   mongoc_collection_t *mc;

   if (!xdbtx_session_check_read (s, err)) {
      return NULL;
   }
   mc = xdbtx_coll_begin (&op, c, s, opts, NULL, err);
   if (!mc) {
      return NULL;
   }
   cur = bson_malloc0 (sizeof *cur);
   cur->pool = c->pool;
   cur->pid = xdbtx_getpid ();
   cur->mc = aggregate
                ? mongoc_collection_aggregate (mc, MONGOC_QUERY_NONE, query, op.opts, prefs)
                : mongoc_collection_find_with_opts (mc, query, op.opts, prefs);
   /* The cursor copies what it needs from the collection handle, which
    * stays with the handle. */
   if (op.borrowed) {
      cur->borrowed = op.client; /* the cursor gives it back at close */
      op.borrowed = false;
   }
   xdbtx_op_end (&op);
   if (s) {
      xdbtx_cursor_link (cur, s);
   }
   /* Option errors are known at once; report them now, not at first next. */
   if (mongoc_cursor_error_document (cur->mc, &error, &reply)) {
      xdbtx_error_from_mongoc (err, &error, reply, "operation");
      xdbtx_cursor_destroy (cur);
      return NULL;
   }
   return cur;
}

xdbtx_cursor_t *
xdbtx_coll_find (xdbtx_coll_t *c, xdbtx_session_t *s, const bson_t *filter, bson_t *opts,
                 const mongoc_read_prefs_t *prefs, xdbtx_error_t *err)
{
   return open_cursor (c, s, false, filter, opts, prefs, err);
}

xdbtx_cursor_t *
xdbtx_coll_aggregate (xdbtx_coll_t *c, xdbtx_session_t *s, const bson_t *pipeline,
                      bson_t *opts, const mongoc_read_prefs_t *prefs, xdbtx_error_t *err)
{
   return open_cursor (c, s, true, pipeline, opts, prefs, err);
}
