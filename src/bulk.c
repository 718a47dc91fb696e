/*
 * bulk.c - bulk writes: a list of insert/update/replace/delete requests run
 * as one libmongoc bulk operation on one collection.
 *
 * libmongoc groups consecutive requests of one kind into one command and
 * reports writeErrors and upserted ids by their position in the bulk, so
 * the requests are added one to one, in order, and positions stay the
 * caller's. Documents arrive encoded and checked (ids given, updates and
 * replacements validated) by the binding; nothing here knows of Lua.
 */
#include "xcore.h"

/* Add one request to bulk; false with error when libmongoc refuses it. */
static bool
add_request (mongoc_bulk_operation_t *bulk, const xdbtx_bulk_req_t *r, bson_error_t *error)
{
   switch (r->kind) {
   case XDBTX_BULK_INSERT_ONE:
      return mongoc_bulk_operation_insert_with_opts (bulk, r->doc, r->opts, error);
   case XDBTX_BULK_UPDATE_ONE:
      return mongoc_bulk_operation_update_one_with_opts (bulk, r->doc, r->update, r->opts,
                                                         error);
   case XDBTX_BULK_UPDATE_MANY:
      return mongoc_bulk_operation_update_many_with_opts (bulk, r->doc, r->update, r->opts,
                                                          error);
   case XDBTX_BULK_REPLACE_ONE:
      return mongoc_bulk_operation_replace_one_with_opts (bulk, r->doc, r->update, r->opts,
                                                          error);
   case XDBTX_BULK_DELETE_ONE:
      return mongoc_bulk_operation_remove_one_with_opts (bulk, r->doc, r->opts, error);
   case XDBTX_BULK_DELETE_MANY:
      return mongoc_bulk_operation_remove_many_with_opts (bulk, r->doc, r->opts, error);
   default:
      bson_set_error (error, MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG,
                      "unknown request kind %d", (int) r->kind);
      return false;
   }
}

bool
xdbtx_coll_bulk_write (xdbtx_coll_t *c, xdbtx_session_t *s, const xdbtx_bulk_req_t *reqs,
                       size_t n, bson_t *opts, bson_t *reply, xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   bson_t bopts = BSON_INITIALIZER;
   bson_iter_t it;
   mongoc_collection_t *mc;
   mongoc_bulk_operation_t *bulk;
   bool bypass = false, has_bypass = false, ok = true;
   size_t i;

   /* The bulk's options document takes no bypassDocumentValidation: that
    * one has a setter. */
   if (opts && bson_iter_init_find (&it, opts, "bypassDocumentValidation")) {
      has_bypass = true;
      bypass = bson_iter_as_bool (&it);
      bson_copy_to_excluding_noinit (opts, &bopts, "bypassDocumentValidation", NULL);
   } else if (opts) {
      bson_concat (&bopts, opts);
   }
   mc = xdbtx_coll_begin (&op, c, s, &bopts, reply, err);
   if (!mc) {
      bson_destroy (&bopts);
      return false;
   }
   /* The bulk takes the collection's write concern (its defaults) unless
    * opts has one, and the session from op.opts' sessionId. */
   bulk = mongoc_collection_create_bulk_operation_with_opts (mc, op.opts);
   if (has_bypass) {
      mongoc_bulk_operation_set_bypass_document_validation (bulk, bypass);
   }
   for (i = 0; i < n && ok; i++) {
      ok = add_request (bulk, &reqs[i], &error);
   }
   if (!ok) {
      /* Refused before anything was sent. */
      bson_init (reply);
      xdbtx_error_from_mongoc (err, &error, NULL, "operation");
      xdbtx_error_prefix (err, "requests[%d]", (int) i);
   } else if (!mongoc_bulk_operation_execute (bulk, reply, &error)) {
      ok = false;
      xdbtx_error_from_mongoc (err, &error, reply, "operation");
   }
   mongoc_bulk_operation_destroy (bulk);
   xdbtx_op_end (&op); /* mc stays with the handle */
   bson_destroy (&bopts);
   return ok;
}
