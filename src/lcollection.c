/*
 * lcollection.c - the Collection userdata ("xdbtx.Collection"): its
 * writes (insert, update, replace, delete, find_one_and_*), count_documents
 * and accessors, and the helpers every Collection method shares.
 *
 * Every method takes the session first (a Session, or nil/false for none)
 * and decodes libmongoc's reply into the result tables of docs/internals.md.
 * Arguments are encoded into a scratch box before the core runs, so nothing
 * raises while a pooled client is out. Cursors are lcursor.c's; argument
 * documents (ids, updates, replacements, lists) are ldocs.c's.
 */
#include <string.h>

#include "lbind.h"

lcollection_t *
xdbtx_check_coll (lua_State *L)
{
   /* Fix the argument slots before anything is pushed. */
   lua_settop (L, 5);
   lcollection_t *b = xdbtx_testudata (L, 1, XDBTX_BOX_COLLECTION);

   if (!b) {
      xdbtx_argerror (L, "collection method", "expected an xdbtx.Collection as self, got %s",
                      luaL_typename (L, 1));
   }
   return b;
}

int
xdbtx_collection_push_new (lua_State *L, int client_idx, const char *db, const char *name,
                           const xdbtx_defaults_t *defaults)
{
   lclient_t *c = xdbtx_check_client (L, client_idx);
   lcollection_t *b;

   client_idx = lua_absindex (L, client_idx);
   b = lua_newuserdatauv (L, sizeof *b, 1);
   b->tag = XDBTX_BOX_TAG (XDBTX_BOX_COLLECTION);
   b->coll = NULL;
   luaL_setmetatable (L, XDBTX_COLLECTION_MT);
   xdbtx_pin (L, -1, client_idx);
   b->coll = xdbtx_coll_new (c->pool, db, name, defaults);
   return 1;
}

/* Free the call's memory, then raise err. */
int
xdbtx_raise_with (lua_State *L, lscratch_t *sc, bson_t *reply, xdbtx_error_t *err)
{
   if (reply) {
      bson_destroy (reply);
   }
   xdbtx_scratch_free (sc);
   return xdbtx_lua_raise (L, err);
}

/* Push reply[key] as an integer (0 when absent). */
void
xdbtx_push_count (lua_State *L, const bson_t *reply, const char *key, const char *field)
{
   bson_iter_t it;

   lua_pushinteger (L, bson_iter_init_find (&it, reply, key) && BSON_ITER_HOLDS_NUMBER (&it)
                          ? (lua_Integer) bson_iter_as_int64 (&it)
                          : 0);
   lua_setfield (L, -2, field);
}

void
xdbtx_push_value (lua_State *L, const bson_value_t *v)
{
   xdbtx_error_t err;

   xdbtx_error_init (&err);
   if (!xdbtx_codec_push_value (L, v, &err)) {
      xdbtx_lua_raise (L, &err);
   }
}

/* The session argument of an operation; without one, the call borrows a
 * pooled client, so reclaim unclosed ones first when the pool is out. */
xdbtx_session_t *
xdbtx_op_session (lua_State *L, lcollection_t *c, const char *fname)
{
   xdbtx_session_t *s = xdbtx_check_session (L, 2, fname);

   if (!s) {
      xdbtx_reclaim (L, xdbtx_coll_pool (c->coll));
   }
   return s;
}

/* coll:insert_one(s, doc, opts) -> { inserted_id = v } */
static int
coll_insert_one (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "insert_one");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *opts = xdbtx_scratch_doc (sc, 1), *doc, reply;
   xdbtx_error_t err;
   bson_iter_t it;

   doc = xdbtx_encode_with_id (L, 3, sc, 0, "insert_one", "document");
   xdbtx_parse_opts (L, 4, XDBTX_M_INSERT_ONE, "insert_one", opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_insert_one (c->coll, s, doc, opts, &reply, &err)) {
      return xdbtx_raise_with (L, sc, &reply, &err);
   }
   bson_destroy (&reply);
   lua_createtable (L, 0, 1);
   xdbtx_find_id (doc, &it);
   xdbtx_push_value (L, bson_iter_value (&it));
   lua_setfield (L, -2, "inserted_id");
   xdbtx_scratch_free (sc);
   return 1;
}

/* coll:insert_many(s, docs, opts) -> { inserted_ids = { v, ... }, inserted_count = n } */
static int
coll_insert_many (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "insert_many");
   lscratch_t *sc;
   bson_t *opts, reply;
   xdbtx_error_t err;
   bson_iter_t it;
   size_t i, n;

   n = xdbtx_check_list (L, 3, "insert_many", "documents");
   sc = xdbtx_scratch_new (L);
   opts = xdbtx_scratch_doc (sc, 1);
   xdbtx_parse_opts (L, 4, XDBTX_M_INSERT_MANY, "insert_many", opts, sc);
   sc->many = bson_malloc0 ((n ? n : 1) * sizeof (bson_t *));
   sc->capmany = n;
   for (i = 0; i < n; i++) {
      char what[40];

      lua_rawgeti (L, 3, (int) (i + 1));
      snprintf (what, sizeof what, "documents[%d]", (int) (i + 1));
      sc->doc[0] = NULL;
      if (lua_type (L, -1) != LUA_TTABLE && lua_type (L, -1) != LUA_TUSERDATA) {
         return xdbtx_argerror (L, "insert_many", "%s must be a table, got %s", what,
                                luaL_typename (L, -1));
      }
      sc->many[sc->nmany++] = xdbtx_encode_with_id (L, lua_gettop (L), sc, 0, "insert_many", what);
      sc->doc[0] = NULL;
      lua_pop (L, 1);
   }
   if (n == 0) {
      /* Nothing to send: an empty result, no round trip. */
      xdbtx_scratch_free (sc);
      lua_createtable (L, 0, 2);
      lua_pushinteger (L, 0);
      lua_setfield (L, -2, "inserted_count");
      lua_newtable (L);
      xdbtx_codec_set_array_mt (L, -1);
      lua_setfield (L, -2, "inserted_ids");
      return 1;
   }
   xdbtx_error_init (&err);
   if (!xdbtx_coll_insert_many (c->coll, s, sc->many, n, opts, &reply, &err)) {
      return xdbtx_raise_with (L, sc, &reply, &err);
   }
   lua_createtable (L, 0, 2);
   xdbtx_push_count (L, &reply, "insertedCount", "inserted_count");
   bson_destroy (&reply);
   lua_createtable (L, (int) n, 0);
   for (i = 0; i < n; i++) {
      xdbtx_find_id (sc->many[i], &it);
      xdbtx_push_value (L, bson_iter_value (&it));
      lua_rawseti (L, -2, (int) (i + 1));
   }
   xdbtx_codec_set_array_mt (L, -1);
   lua_setfield (L, -2, "inserted_ids");
   xdbtx_scratch_free (sc);
   return 1;
}

/* The three update methods: (s, filter, update|replacement, opts). */
static int
update (lua_State *L, xdbtx_update_kind_t kind, unsigned method, const char *fname)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, fname);
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *filter = xdbtx_scratch_doc (sc, 0), *upd;
   bson_t *opts = xdbtx_scratch_doc (sc, 2), reply;
   xdbtx_error_t err;
   bson_iter_t it;
   int64_t matched = 0, modified = 0;

   xdbtx_encode_or_raise (L, 3, filter, fname, "filter");
   upd = kind == XDBTX_REPLACE_ONE ? xdbtx_encode_replacement (L, 4, sc, 1, fname)
                                   : xdbtx_encode_update (L, 4, sc, 1, fname);
   xdbtx_parse_opts (L, 5, method, fname, opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_update (c->coll, s, kind, filter, upd, opts, &reply, &err)) {
      return xdbtx_raise_with (L, sc, &reply, &err);
   }
   xdbtx_scratch_free (sc);
   /* libmongoc's reply has the counts and upsertedId: one pass */
   lua_createtable (L, 0, 3);
   bson_iter_init (&it, &reply);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (strcmp (k, "upsertedId") == 0) {
         xdbtx_error_init (&err);
         if (!xdbtx_codec_push_value (L, bson_iter_value (&it), &err)) {
            bson_destroy (&reply);
            return xdbtx_lua_raise (L, &err);
         }
         lua_setfield (L, -2, "upserted_id");
      } else if (strcmp (k, "matchedCount") == 0 && BSON_ITER_HOLDS_NUMBER (&it)) {
         matched = bson_iter_as_int64 (&it);
      } else if (strcmp (k, "modifiedCount") == 0 && BSON_ITER_HOLDS_NUMBER (&it)) {
         modified = bson_iter_as_int64 (&it);
      }
   }
   lua_pushinteger (L, (lua_Integer) matched);
   lua_setfield (L, -2, "matched_count");
   lua_pushinteger (L, (lua_Integer) modified);
   lua_setfield (L, -2, "modified_count");
   bson_destroy (&reply);
   return 1;
}

/* coll:update_one(s, filter, update, opts) -> { matched_count, modified_count, upserted_id } */
static int
coll_update_one (lua_State *L)
{
   return update (L, XDBTX_UPDATE_ONE, XDBTX_M_UPDATE, "update_one");
}

/* coll:update_many(s, filter, update, opts) -> { matched_count, modified_count, upserted_id } */
static int
coll_update_many (lua_State *L)
{
   return update (L, XDBTX_UPDATE_MANY, XDBTX_M_UPDATE, "update_many");
}

/* coll:replace_one(s, filter, doc, opts) -> { matched_count, modified_count, upserted_id } */
static int
coll_replace_one (lua_State *L)
{
   return update (L, XDBTX_REPLACE_ONE, XDBTX_M_REPLACE, "replace_one");
}

/* The two delete methods: (s, filter, opts). */
static int
delete (lua_State *L, bool many, const char *fname)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, fname);
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *filter = xdbtx_scratch_doc (sc, 0), *opts = xdbtx_scratch_doc (sc, 1), reply;
   xdbtx_error_t err;

   xdbtx_encode_or_raise (L, 3, filter, fname, "filter");
   xdbtx_parse_opts (L, 4, XDBTX_M_DELETE, fname, opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_delete (c->coll, s, many, filter, opts, &reply, &err)) {
      return xdbtx_raise_with (L, sc, &reply, &err);
   }
   xdbtx_scratch_free (sc);
   lua_createtable (L, 0, 1);
   xdbtx_push_count (L, &reply, "deletedCount", "deleted_count");
   bson_destroy (&reply);
   return 1;
}

/* coll:delete_one(s, filter, opts) -> { deleted_count } */
static int
coll_delete_one (lua_State *L)
{
   return delete (L, false, "delete_one");
}

/* coll:delete_many(s, filter, opts) -> { deleted_count } */
static int
coll_delete_many (lua_State *L)
{
   return delete (L, true, "delete_many");
}

/* Move the parsed findAndModify options into sc->fam: the ones libmongoc
 * has setters for through them, the rest as extra command fields. */
static void
build_fam (lscratch_t *sc, const bson_t *opts, const bson_t *update, bool remove)
{
   mongoc_find_and_modify_flags_t flags = remove ? MONGOC_FIND_AND_MODIFY_REMOVE
                                                 : MONGOC_FIND_AND_MODIFY_NONE;
   bson_t extra = BSON_INITIALIZER, sub;
   bson_iter_t it;
   const uint8_t *data;
   uint32_t len;
   const char *key;

   sc->fam = mongoc_find_and_modify_opts_new ();
   if (update) {
      mongoc_find_and_modify_opts_set_update (sc->fam, update);
   }
   bson_iter_init (&it, opts);
   while (bson_iter_next (&it)) {
      key = bson_iter_key (&it);
      if ((strcmp (key, "sort") == 0 || strcmp (key, "projection") == 0) &&
          BSON_ITER_HOLDS_DOCUMENT (&it)) {
         bson_iter_document (&it, &len, &data);
         bson_init_static (&sub, data, len);
         if (key[0] == 's') {
            mongoc_find_and_modify_opts_set_sort (sc->fam, &sub);
         } else {
            mongoc_find_and_modify_opts_set_fields (sc->fam, &sub);
         }
      } else if (strcmp (key, "upsert") == 0) {
         if (bson_iter_as_bool (&it)) {
            flags |= MONGOC_FIND_AND_MODIFY_UPSERT;
         }
      } else if (strcmp (key, "new") == 0) {
         /* libmongoc sends only new:true; an explicit "before" is said too. */
         if (bson_iter_as_bool (&it)) {
            flags |= MONGOC_FIND_AND_MODIFY_RETURN_NEW;
         } else {
            BSON_APPEND_BOOL (&extra, "new", false);
         }
      } else if (strcmp (key, "bypassDocumentValidation") == 0) {
         mongoc_find_and_modify_opts_set_bypass_document_validation (sc->fam,
                                                                     bson_iter_as_bool (&it));
      } else if (strcmp (key, "maxTimeMS") == 0) {
         mongoc_find_and_modify_opts_set_max_time_ms (sc->fam,
                                                      (uint32_t) bson_iter_as_int64 (&it));
      } else {
         bson_append_iter (&extra, key, -1, &it);
      }
   }
   mongoc_find_and_modify_opts_set_flags (sc->fam, flags);
   if (!bson_empty (&extra)) {
      mongoc_find_and_modify_opts_append (sc->fam, &extra);
   }
   bson_destroy (&extra);
}

/* The three find_one_and_* methods; the reply's "value" is the result. */
static int
find_and_modify (lua_State *L, unsigned method, const char *fname)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, fname);
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *filter = xdbtx_scratch_doc (sc, 0), *upd = NULL, *opts = xdbtx_scratch_doc (sc, 2);
   bson_t reply, value;
   xdbtx_error_t err;
   bson_iter_t it;
   const uint8_t *data;
   uint32_t len;
   int opts_idx = 4;

   xdbtx_encode_or_raise (L, 3, filter, fname, "filter");
   if (method != XDBTX_M_FAM_DELETE) {
      upd = method == XDBTX_M_FAM_REPLACE ? xdbtx_encode_replacement (L, 4, sc, 1, fname)
                                          : xdbtx_encode_update (L, 4, sc, 1, fname);
      opts_idx = 5;
   }
   xdbtx_parse_opts (L, opts_idx, method, fname, opts, sc);
   build_fam (sc, opts, upd, method == XDBTX_M_FAM_DELETE);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_find_and_modify (c->coll, s, filter, sc->fam, &reply, &err)) {
      return xdbtx_raise_with (L, sc, &reply, &err);
   }
   xdbtx_scratch_free (sc);
   if (bson_iter_init_find (&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
      bson_iter_document (&it, &len, &data);
      bson_init_static (&value, data, len);
      xdbtx_error_init (&err);
      if (!xdbtx_codec_push (L, &value, &err)) {
         bson_destroy (&reply);
         return xdbtx_lua_raise (L, &err);
      }
   } else {
      lua_pushnil (L);
   }
   bson_destroy (&reply);
   return 1;
}

/* coll:find_one_and_update(s, filter, update, opts) -> doc | nil */
static int
coll_find_one_and_update (lua_State *L)
{
   return find_and_modify (L, XDBTX_M_FAM_UPDATE, "find_one_and_update");
}

/* coll:find_one_and_replace(s, filter, doc, opts) -> doc | nil */
static int
coll_find_one_and_replace (lua_State *L)
{
   return find_and_modify (L, XDBTX_M_FAM_REPLACE, "find_one_and_replace");
}

/* coll:find_one_and_delete(s, filter, opts) -> doc | nil */
static int
coll_find_one_and_delete (lua_State *L)
{
   return find_and_modify (L, XDBTX_M_FAM_DELETE, "find_one_and_delete");
}

/* coll:count_documents(s, filter, opts) -> integer */
static int
coll_count_documents (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "count_documents");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *filter = xdbtx_scratch_doc (sc, 0), *opts = xdbtx_scratch_doc (sc, 1);
   xdbtx_error_t err;
   bson_iter_t it;
   int64_t n = 0;

   if (lua_isnoneornil (L, 3)) {
      lua_newtable (L);
      lua_replace (L, 3);
   }
   xdbtx_encode_or_raise (L, 3, filter, "count_documents", "filter");
   xdbtx_parse_opts (L, 4, XDBTX_M_COUNT, "count_documents", opts, sc);
   if (bson_iter_init_find (&it, opts, "limit") && bson_iter_as_int64 (&it) == 0) {
      /* limit 0 is no limit, as for find (the server refuses a $limit of 0) */
      bson_t *rest = xdbtx_scratch_doc (sc, 2);

      bson_reinit (rest);
      bson_copy_to_excluding_noinit (opts, rest, "limit", NULL);
      opts = rest;
   }
   xdbtx_error_init (&err);
   if (!xdbtx_coll_count (c->coll, s, filter, opts, sc->prefs, &n, &err)) {
      return xdbtx_raise_with (L, sc, NULL, &err);
   }
   xdbtx_scratch_free (sc);
   lua_pushinteger (L, (lua_Integer) n);
   return 1;
}

/* ---- collection accessors ---------------------------------------------- */

/* coll:name() -> string */
static int
coll_name (lua_State *L)
{
   lua_pushstring (L, xdbtx_coll_name (xdbtx_check_coll (L)->coll));
   return 1;
}

/* coll:database() -> string */
static int
coll_database (lua_State *L)
{
   lua_pushstring (L, xdbtx_coll_db (xdbtx_check_coll (L)->coll));
   return 1;
}

/* coll:client() -> Client */
static int
coll_client (lua_State *L)
{
   xdbtx_check_coll (L);
   xdbtx_push_pinned (L, 1);
   return 1;
}

/* __gc: frees the handle (the pool belongs to the registry) */
static int
coll_gc (lua_State *L)
{
   lcollection_t *b = xdbtx_check_coll (L);

   xdbtx_coll_destroy (b->coll);
   b->coll = NULL;
   return 0;
}

/* tostring(coll) -> "xdbtx.Collection (db.name)" */
static int
coll_tostring (lua_State *L)
{
   lcollection_t *b = xdbtx_check_coll (L);

   lua_pushfstring (L, "xdbtx.Collection (%s.%s)", xdbtx_coll_db (b->coll),
                    xdbtx_coll_name (b->coll));
   return 1;
}

void
xdbtx_open_collection (lua_State *L)
{
   static const luaL_Reg coll_methods[] = {
      {"insert_one", coll_insert_one},
      {"insert_many", coll_insert_many},
      {"update_one", coll_update_one},
      {"update_many", coll_update_many},
      {"replace_one", coll_replace_one},
      {"delete_one", coll_delete_one},
      {"delete_many", coll_delete_many},
      {"find_one_and_update", coll_find_one_and_update},
      {"find_one_and_replace", coll_find_one_and_replace},
      {"find_one_and_delete", coll_find_one_and_delete},
      {"count_documents", coll_count_documents},
      {"name", coll_name},
      {"database", coll_database},
      {"client", coll_client},
      {NULL, NULL},
   };

   if (luaL_newmetatable (L, XDBTX_COLLECTION_MT)) {
      luaL_newlib (L, coll_methods);
      lua_setfield (L, -2, "__index");
      lua_pushcfunction (L, coll_gc);
      lua_setfield (L, -2, "__gc");
      lua_pushcfunction (L, coll_tostring);
      lua_setfield (L, -2, "__tostring");
      lua_pushliteral (L, XDBTX_COLLECTION_MT);
      lua_setfield (L, -2, "__name");
   }
   lua_pop (L, 1);
}
