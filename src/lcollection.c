/*
 * lcollection.c - Collection and Cursor userdata ("xdbtx.Collection",
 * "xdbtx.Cursor").
 *
 * Every method takes the session first (a Session, or nil/false for none)
 * and decodes libmongoc's reply into the result tables of docs/internals.md.
 * Arguments are encoded into a scratch box before the core runs, so nothing
 * raises while a pooled client is out. A Cursor pins its Session (or, with
 * none, its Collection); closing it early kills the server cursor, and an
 * exhausted cursor closes itself so its borrowed client goes back at once.
 */
#include <string.h>

#include "lbind.h"

static lcollection_t *
check_coll (lua_State *L)
{
   /* Fix the argument slots before anything is pushed. */
   lua_settop (L, 5);
   lcollection_t *b = luaL_testudata (L, 1, XDBTX_COLLECTION_MT);

   if (!b) {
      xdbtx_argerror (L, "collection method", "expected an xdbtx.Collection as self, got %s",
                      luaL_typename (L, 1));
   }
   return b;
}

int
xdbtx_collection_push_new (lua_State *L, int client_idx, const char *db, const char *name)
{
   lclient_t *c = xdbtx_check_client (L, client_idx);
   lcollection_t *b;

   client_idx = lua_absindex (L, client_idx);
   b = lua_newuserdatauv (L, sizeof *b, 1);
   b->coll = NULL;
   luaL_setmetatable (L, XDBTX_COLLECTION_MT);
   xdbtx_pin (L, -1, client_idx);
   b->coll = xdbtx_coll_new (c->pool, db, name);
   return 1;
}

/* Free the call's memory, then raise err. */
static int
raise_with (lua_State *L, lscratch_t *sc, bson_t *reply, xdbtx_error_t *err)
{
   if (reply) {
      bson_destroy (reply);
   }
   xdbtx_scratch_free (sc);
   return xdbtx_lua_raise (L, err);
}

/* Push reply[key] as an integer (0 when absent). */
static void
push_count (lua_State *L, const bson_t *reply, const char *key, const char *field)
{
   bson_iter_t it;

   lua_pushinteger (L, bson_iter_init_find (&it, reply, key) && BSON_ITER_HOLDS_NUMBER (&it)
                          ? (lua_Integer) bson_iter_as_int64 (&it)
                          : 0);
   lua_setfield (L, -2, field);
}

static void
push_value_or_raise (lua_State *L, const bson_value_t *v)
{
   xdbtx_error_t err;

   xdbtx_error_init (&err);
   if (!xdbtx_codec_push_value (L, v, &err)) {
      xdbtx_lua_raise (L, &err);
   }
}

/* Encode the document at idx into sc->doc[slot]; make sure it has an _id
 * (a new ObjectId first when it had none) and return the final document. */
static bson_t *
encode_with_id (lua_State *L, int idx, lscratch_t *sc, int slot, const char *fname)
{
   bson_t *doc = xdbtx_scratch_doc (sc, slot), *with_id;
   bson_iter_t it;
   bson_oid_t oid;

   xdbtx_encode_or_raise (L, idx, doc, fname, "document");
   if (bson_iter_init_find (&it, doc, "_id")) {
      return doc;
   }
   with_id = bson_sized_new (doc->len + 17);
   bson_oid_init (&oid, NULL);
   BSON_APPEND_OID (with_id, "_id", &oid);
   bson_concat (with_id, doc);
   bson_destroy (doc);
   sc->doc[slot] = with_id;
   return with_id;
}

/* Encode an update into sc->doc[slot] and return it: a non-empty document
 * of $-operators, or a non-empty pipeline (a list of stage documents, which
 * libmongoc takes as a document with keys "0", "1", ...). Anything else
 * raises and nothing is sent: an empty update, or a document without
 * operators, would replace the whole matched document. */
static bson_t *
encode_update (lua_State *L, int idx, lscratch_t *sc, int slot, const char *fname)
{
   bson_t *wrap = xdbtx_scratch_doc (sc, slot), *upd;
   xdbtx_error_t err;
   bson_iter_t it, child;
   const uint8_t *data;
   uint32_t len;
   bool pipeline;

   if (lua_type (L, idx) != LUA_TTABLE && lua_type (L, idx) != LUA_TUSERDATA) {
      xdbtx_argerror (L, fname, "update must be a table, got %s", luaL_typename (L, idx));
   }
   xdbtx_error_init (&err);
   if (!xdbtx_codec_append (L, idx, wrap, "update", 6, &err)) {
      xdbtx_error_prefix (&err, "%s", fname);
      xdbtx_lua_raise (L, &err);
   }
   bson_iter_init_find (&it, wrap, "update");
   pipeline = BSON_ITER_HOLDS_ARRAY (&it);
   if (pipeline) {
      bson_iter_array (&it, &len, &data);
   } else if (BSON_ITER_HOLDS_DOCUMENT (&it)) {
      bson_iter_document (&it, &len, &data);
   } else {
      xdbtx_argerror (L, fname, "update must be a document of $-operators or a pipeline");
   }
   upd = bson_new_from_data (data, len);
   bson_destroy (wrap);
   sc->doc[slot] = upd;
   if (bson_empty (upd)) {
      xdbtx_argerror (L, fname, "update must not be empty (an empty %s would %s)",
                      pipeline ? "pipeline" : "document",
                      pipeline ? "change nothing" : "erase every field of the matched document");
   }
   bson_iter_init (&it, upd);
   while (bson_iter_next (&it)) {
      if (pipeline && !BSON_ITER_HOLDS_DOCUMENT (&it)) {
         xdbtx_argerror (L, fname, "update pipeline stage [%d] must be a document",
                         atoi (bson_iter_key (&it)) + 1);
      }
      if (pipeline) {
         bson_iter_recurse (&it, &child);
         if (!bson_iter_next (&child) || bson_iter_key (&child)[0] != '$') {
            xdbtx_argerror (L, fname, "update pipeline stage [%d] must be a stage such as "
                            "{ [\"$set\"] = ... }", atoi (bson_iter_key (&it)) + 1);
         }
      } else if (bson_iter_key (&it)[0] != '$') {
         xdbtx_argerror (L, fname,
                         "update must be a document of $-operators, got key '%s' (to replace "
                         "the whole document use replace_one or find_one_and_replace)",
                         bson_iter_key (&it));
      }
   }
   return upd;
}

/* Encode a replacement into sc->doc[slot]: a document without $-operators
 * at its top level (those belong to an update). */
static bson_t *
encode_replacement (lua_State *L, int idx, lscratch_t *sc, int slot, const char *fname)
{
   bson_t *doc = xdbtx_scratch_doc (sc, slot);
   bson_iter_t it;

   xdbtx_encode_or_raise (L, idx, doc, fname, "replacement");
   bson_iter_init (&it, doc);
   while (bson_iter_next (&it)) {
      if (bson_iter_key (&it)[0] == '$') {
         xdbtx_argerror (L, fname,
                         "replacement must not contain $-operators, got key '%s' (to update "
                         "fields use update_one or find_one_and_update)",
                         bson_iter_key (&it));
      }
   }
   return doc;
}

/* The number of documents in the list at idx (keys exactly 1..n), or raise:
 * a table with holes or other keys would lose documents silently. */
static size_t
check_list (lua_State *L, int idx, const char *fname)
{
   size_t n, count = 0;
   lua_Number k;

   if (lua_type (L, idx) != LUA_TTABLE) {
      xdbtx_argerror (L, fname, "documents must be a list of tables, got %s",
                      luaL_typename (L, idx));
   }
   n = lua_rawlen (L, idx);
   lua_pushnil (L);
   while (lua_next (L, idx)) {
      lua_pop (L, 1);
      k = lua_type (L, -1) == LUA_TNUMBER ? lua_tonumber (L, -1) : 0;
      if (lua_type (L, -1) != LUA_TNUMBER || k != (lua_Number) (size_t) k || k < 1 ||
          (size_t) k > n) {
         if (lua_type (L, -1) == LUA_TSTRING) {
            xdbtx_argerror (L, fname, "documents must be a list (keys 1..n), got key '%s'",
                            lua_tostring (L, -1));
         }
         if (lua_type (L, -1) == LUA_TNUMBER) {
            xdbtx_argerror (L, fname, "documents must be a list without holes (keys 1..n), "
                            "got key %s", lua_tostring (L, -1));
         }
         xdbtx_argerror (L, fname, "documents must be a list (keys 1..n), got a %s key",
                         luaL_typename (L, -1));
      }
      count++;
   }
   if (count != n) {
      xdbtx_argerror (L, fname, "documents must be a list without holes (keys 1..n), "
                      "got %d keys for a length of %d", (int) count, (int) n);
   }
   return n;
}

/* The session argument of an operation; without one, the call borrows a
 * pooled client, so reclaim unclosed ones first when the pool is out. */
static xdbtx_session_t *
op_session (lua_State *L, lcollection_t *c, const char *fname)
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
   lcollection_t *c = check_coll (L);
   xdbtx_session_t *s = op_session (L, c, "insert_one");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *opts = xdbtx_scratch_doc (sc, 1), *doc, reply;
   xdbtx_error_t err;
   bson_iter_t it;

   doc = encode_with_id (L, 3, sc, 0, "insert_one");
   xdbtx_parse_opts (L, 4, XDBTX_M_INSERT_ONE, "insert_one", opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_insert_one (c->coll, s, doc, opts, &reply, &err)) {
      return raise_with (L, sc, &reply, &err);
   }
   bson_destroy (&reply);
   lua_createtable (L, 0, 1);
   bson_iter_init_find (&it, doc, "_id");
   push_value_or_raise (L, bson_iter_value (&it));
   lua_setfield (L, -2, "inserted_id");
   xdbtx_scratch_free (sc);
   return 1;
}

/* coll:insert_many(s, docs, opts) -> { inserted_ids = { v, ... }, inserted_count = n } */
static int
coll_insert_many (lua_State *L)
{
   lcollection_t *c = check_coll (L);
   xdbtx_session_t *s = op_session (L, c, "insert_many");
   lscratch_t *sc;
   bson_t *opts, reply;
   xdbtx_error_t err;
   bson_iter_t it;
   size_t i, n;

   n = check_list (L, 3, "insert_many");
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
      encode_with_id (L, lua_gettop (L), sc, 0, "insert_many");
      sc->many[sc->nmany++] = sc->doc[0];
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
      lua_setfield (L, -2, "inserted_ids");
      return 1;
   }
   xdbtx_error_init (&err);
   if (!xdbtx_coll_insert_many (c->coll, s, sc->many, n, opts, &reply, &err)) {
      return raise_with (L, sc, &reply, &err);
   }
   lua_createtable (L, 0, 2);
   push_count (L, &reply, "insertedCount", "inserted_count");
   bson_destroy (&reply);
   lua_createtable (L, (int) n, 0);
   for (i = 0; i < n; i++) {
      bson_iter_init_find (&it, sc->many[i], "_id");
      push_value_or_raise (L, bson_iter_value (&it));
      lua_rawseti (L, -2, (int) (i + 1));
   }
   lua_setfield (L, -2, "inserted_ids");
   xdbtx_scratch_free (sc);
   return 1;
}

/* The three update methods: (s, filter, update|replacement, opts). */
static int
update (lua_State *L, xdbtx_update_kind_t kind, unsigned method, const char *fname)
{
   lcollection_t *c = check_coll (L);
   xdbtx_session_t *s = op_session (L, c, fname);
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *filter = xdbtx_scratch_doc (sc, 0), *upd;
   bson_t *opts = xdbtx_scratch_doc (sc, 2), reply;
   xdbtx_error_t err;
   bson_iter_t it;

   xdbtx_encode_or_raise (L, 3, filter, fname, "filter");
   upd = kind == XDBTX_REPLACE_ONE ? encode_replacement (L, 4, sc, 1, fname)
                                   : encode_update (L, 4, sc, 1, fname);
   xdbtx_parse_opts (L, 5, method, fname, opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_update (c->coll, s, kind, filter, upd, opts, &reply, &err)) {
      return raise_with (L, sc, &reply, &err);
   }
   xdbtx_scratch_free (sc);
   lua_createtable (L, 0, 3);
   push_count (L, &reply, "matchedCount", "matched_count");
   push_count (L, &reply, "modifiedCount", "modified_count");
   if (bson_iter_init_find (&it, &reply, "upsertedId")) {
      xdbtx_error_init (&err);
      if (!xdbtx_codec_push_value (L, bson_iter_value (&it), &err)) {
         bson_destroy (&reply);
         return xdbtx_lua_raise (L, &err);
      }
      lua_setfield (L, -2, "upserted_id");
   }
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
   lcollection_t *c = check_coll (L);
   xdbtx_session_t *s = op_session (L, c, fname);
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *filter = xdbtx_scratch_doc (sc, 0), *opts = xdbtx_scratch_doc (sc, 1), reply;
   xdbtx_error_t err;

   xdbtx_encode_or_raise (L, 3, filter, fname, "filter");
   xdbtx_parse_opts (L, 4, XDBTX_M_DELETE, fname, opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_delete (c->coll, s, many, filter, opts, &reply, &err)) {
      return raise_with (L, sc, &reply, &err);
   }
   xdbtx_scratch_free (sc);
   lua_createtable (L, 0, 1);
   push_count (L, &reply, "deletedCount", "deleted_count");
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
   lcollection_t *c = check_coll (L);
   xdbtx_session_t *s = op_session (L, c, fname);
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
      upd = method == XDBTX_M_FAM_REPLACE ? encode_replacement (L, 4, sc, 1, fname)
                                          : encode_update (L, 4, sc, 1, fname);
      opts_idx = 5;
   }
   xdbtx_parse_opts (L, opts_idx, method, fname, opts, sc);
   build_fam (sc, opts, upd, method == XDBTX_M_FAM_DELETE);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_find_and_modify (c->coll, s, filter, sc->fam, &reply, &err)) {
      return raise_with (L, sc, &reply, &err);
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
   lcollection_t *c = check_coll (L);
   xdbtx_session_t *s = op_session (L, c, "count_documents");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *filter = xdbtx_scratch_doc (sc, 0), *opts = xdbtx_scratch_doc (sc, 1);
   xdbtx_error_t err;
   int64_t n = 0;

   if (lua_isnoneornil (L, 3)) {
      lua_newtable (L);
      lua_replace (L, 3);
   }
   xdbtx_encode_or_raise (L, 3, filter, "count_documents", "filter");
   xdbtx_parse_opts (L, 4, XDBTX_M_COUNT, "count_documents", opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_count (c->coll, s, filter, opts, sc->prefs, &n, &err)) {
      return raise_with (L, sc, NULL, &err);
   }
   xdbtx_scratch_free (sc);
   lua_pushinteger (L, (lua_Integer) n);
   return 1;
}

/* ---- cursors ------------------------------------------------------------ */

static lcursor_t *
check_cursor (lua_State *L)
{
   lcursor_t *b = luaL_testudata (L, 1, XDBTX_CURSOR_MT);

   if (!b) {
      xdbtx_argerror (L, "cursor method", "expected an xdbtx.Cursor as self, got %s",
                      luaL_typename (L, 1));
   }
   return b;
}

/* Push a closed Cursor box pinning the session (arg 2) or the collection. */
static lcursor_t *
cursor_box (lua_State *L)
{
   lcursor_t *b = lua_newuserdatauv (L, sizeof *b, 1);

   b->cur = NULL;
   luaL_setmetatable (L, XDBTX_CURSOR_MT);
   xdbtx_pin (L, -1, lua_toboolean (L, 2) ? 2 : 1);
   return b;
}

/* find / aggregate / find_one: (s, filter|pipeline, opts) -> Cursor on the stack. */
static int
open_cursor (lua_State *L, bool aggregate, const char *fname)
{
   lcollection_t *c = check_coll (L);
   xdbtx_session_t *s = op_session (L, c, fname);
   lscratch_t *sc;
   lcursor_t *b;
   bson_t *query, *opts;
   xdbtx_error_t err;
   bool find_one = strcmp (fname, "find_one") == 0;

   if (lua_isnoneornil (L, 3)) {
      lua_newtable (L);
      lua_replace (L, 3);
   }
   sc = xdbtx_scratch_new (L);
   query = xdbtx_scratch_doc (sc, 0);
   opts = xdbtx_scratch_doc (sc, 1);
   if (aggregate) {
      xdbtx_error_init (&err);
      if (lua_type (L, 3) != LUA_TTABLE) {
         return xdbtx_argerror (L, fname, "pipeline must be a list of stages, got %s",
                                luaL_typename (L, 3));
      }
      if (!xdbtx_codec_append (L, 3, query, "pipeline", 8, &err)) {
         xdbtx_error_prefix (&err, "%s: pipeline", fname);
         return raise_with (L, sc, NULL, &err);
      }
   } else {
      xdbtx_encode_or_raise (L, 3, query, fname, "filter");
   }
   xdbtx_parse_opts (L, 4,
                     aggregate ? XDBTX_M_AGGREGATE
                               : (find_one ? XDBTX_M_FIND_ONE : XDBTX_M_FIND),
                     fname, opts, sc);
   if (find_one) {
      BSON_APPEND_INT64 (opts, "limit", 1);
      BSON_APPEND_BOOL (opts, "singleBatch", true);
   }
   b = cursor_box (L);
   xdbtx_error_init (&err);
   b->cur = aggregate ? xdbtx_coll_aggregate (c->coll, s, query, opts, sc->prefs, &err)
                      : xdbtx_coll_find (c->coll, s, query, opts, sc->prefs, &err);
   xdbtx_scratch_free (sc);
   if (!b->cur) {
      return xdbtx_lua_raise (L, &err);
   }
   return 1;
}

/* Push the next document of the cursor box, or nil (closing it at the end). */
static int
cursor_push_next (lua_State *L, lcursor_t *b)
{
   const bson_t *doc;
   xdbtx_error_t err;
   bool failed;

   if (!b->cur) {
      lua_pushnil (L);
      return 1;
   }
   xdbtx_error_init (&err);
   doc = xdbtx_cursor_next (b->cur, &failed, &err);
   if (doc) {
      xdbtx_push_doc (L, doc);
      return 1;
   }
   xdbtx_cursor_destroy (b->cur);
   b->cur = NULL;
   if (failed) {
      return xdbtx_lua_raise (L, &err);
   }
   lua_pushnil (L);
   return 1;
}

/* coll:find(s, filter, opts) -> Cursor */
static int
coll_find (lua_State *L)
{
   return open_cursor (L, false, "find");
}

/* coll:aggregate(s, pipeline, opts) -> Cursor */
static int
coll_aggregate (lua_State *L)
{
   return open_cursor (L, true, "aggregate");
}

/* coll:find_one(s, filter, opts) -> doc | nil */
static int
coll_find_one (lua_State *L)
{
   lcursor_t *b;

   open_cursor (L, false, "find_one");
   b = lua_touserdata (L, -1);
   cursor_push_next (L, b);
   xdbtx_cursor_destroy (b->cur);
   b->cur = NULL;
   return 1;
}

/* cursor:next() -> doc | nil */
static int
cursor_next (lua_State *L)
{
   return cursor_push_next (L, check_cursor (L));
}

/* cursor:all() -> { doc, ... } (and closes the cursor) */
static int
cursor_all (lua_State *L)
{
   lcursor_t *b = check_cursor (L);
   int i = 0;

   lua_newtable (L);
   for (;;) {
      cursor_push_next (L, b);
      if (lua_isnil (L, -1)) {
         lua_pop (L, 1);
         return 1;
      }
      lua_rawseti (L, -2, ++i);
   }
}

/* cursor:close() -> nil; also __gc and __close */
static int
cursor_close (lua_State *L)
{
   lcursor_t *b = check_cursor (L);
   xdbtx_cursor_t *cur = b->cur;

   b->cur = NULL;
   xdbtx_cursor_destroy (cur);
   return 0;
}

/* ---- collection accessors ---------------------------------------------- */

/* coll:name() -> string */
static int
coll_name (lua_State *L)
{
   lua_pushstring (L, xdbtx_coll_name (check_coll (L)->coll));
   return 1;
}

/* coll:database() -> string */
static int
coll_database (lua_State *L)
{
   lua_pushstring (L, xdbtx_coll_db (check_coll (L)->coll));
   return 1;
}

/* coll:client() -> Client */
static int
coll_client (lua_State *L)
{
   check_coll (L);
   xdbtx_push_pinned (L, 1);
   return 1;
}

/* __gc: frees the handle (the pool belongs to the registry) */
static int
coll_gc (lua_State *L)
{
   lcollection_t *b = check_coll (L);

   xdbtx_coll_destroy (b->coll);
   b->coll = NULL;
   return 0;
}

/* tostring(coll) -> "xdbtx.Collection (db.name)" */
static int
coll_tostring (lua_State *L)
{
   lcollection_t *b = check_coll (L);

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
      {"find", coll_find},
      {"find_one", coll_find_one},
      {"update_one", coll_update_one},
      {"update_many", coll_update_many},
      {"replace_one", coll_replace_one},
      {"delete_one", coll_delete_one},
      {"delete_many", coll_delete_many},
      {"find_one_and_update", coll_find_one_and_update},
      {"find_one_and_replace", coll_find_one_and_replace},
      {"find_one_and_delete", coll_find_one_and_delete},
      {"count_documents", coll_count_documents},
      {"aggregate", coll_aggregate},
      {"name", coll_name},
      {"database", coll_database},
      {"client", coll_client},
      {NULL, NULL},
   };
   static const luaL_Reg cursor_methods[] = {
      {"next", cursor_next},
      {"all", cursor_all},
      {"close", cursor_close},
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
   if (luaL_newmetatable (L, XDBTX_CURSOR_MT)) {
      luaL_newlib (L, cursor_methods);
      lua_setfield (L, -2, "__index");
      lua_pushcfunction (L, cursor_close);
      lua_setfield (L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
      lua_pushcfunction (L, cursor_close);
      lua_setfield (L, -2, "__close");
#endif
      lua_pushliteral (L, XDBTX_CURSOR_MT);
      lua_setfield (L, -2, "__name");
   }
   lua_pop (L, 1);
}
