/*
 * ladmin.c - the Database userdata ("xdbtx.Database"), client:database and
 * client:list_database_names, and the Collection's distinct,
 * estimated_document_count, index methods and drop: the binding of
 * admin.c and of collection.c's reads.
 *
 * A Database is a handle like a Collection (pool, name, defaults) and pins
 * its Client; the collections it makes pin the Client too, so
 * coll:client() is the same whichever way the collection was made. Index
 * keys, like sort and hint, are order-sensitive documents
 * (xdbtx_encode_ordered). Every method takes the session first.
 */
#include <string.h>

#include "lbind.h"

/* ---- helpers ------------------------------------------------------------ */

static ldatabase_t *
check_db (lua_State *L)
{
   ldatabase_t *b;

   lua_settop (L, 5);
   b = luaL_testudata (L, 1, XDBTX_DATABASE_MT);
   if (!b) {
      xdbtx_argerror (L, "database method", "expected an xdbtx.Database as self, got %s",
                      luaL_typename (L, 1));
   }
   return b;
}

/* The session at idx; without one, reclaim unclosed pooled clients first. */
static xdbtx_session_t *
session_arg (lua_State *L, int idx, xdbtx_pool_t *pool, const char *fname)
{
   xdbtx_session_t *s = xdbtx_check_session (L, idx, fname);

   if (!s) {
      xdbtx_reclaim (L, pool);
   }
   return s;
}

/* Push the array document `arr` as a list (array_mt), or raise after
 * freeing the call's memory. */
static void
push_array (lua_State *L, lscratch_t *sc, const bson_t *arr)
{
   xdbtx_error_t err;
   bson_value_t v;
   union {
      const uint8_t *c;
      uint8_t *m;
   } data = {bson_get_data (arr)}; /* bson_value_t has no const view; only read */

   v.value_type = BSON_TYPE_ARRAY;
   v.value.v_doc.data = data.m;
   v.value.v_doc.data_len = arr->len;
   xdbtx_error_init (&err);
   if (!xdbtx_codec_push_value (L, &v, &err)) {
      xdbtx_raise_with (L, sc, NULL, &err);
   }
}

/* Push reply[key] (an array) as a list; an empty list when absent. */
static void
push_reply_array (lua_State *L, lscratch_t *sc, const bson_t *reply, const char *key)
{
   bson_iter_t it;
   const uint8_t *data;
   uint32_t len;
   bson_t arr;

   if (bson_iter_init_find (&it, reply, key) && BSON_ITER_HOLDS_ARRAY (&it)) {
      bson_iter_array (&it, &len, &data);
      bson_init_static (&arr, data, len);
   } else {
      bson_init (&arr); /* empty: nothing to free */
   }
   push_array (L, sc, &arr);
}

/* ---- Database ----------------------------------------------------------- */

/* client:database(name, opts) -> Database; opts: its defaults */
static int
client_database (lua_State *L)
{
   lclient_t *c;
   const char *name;
   lscratch_t *sc;
   ldatabase_t *b;

   lua_settop (L, 3);
   c = xdbtx_check_client (L, 1);
   name = xdbtx_checkstring (L, 2, "database", "database name");
   if (!name[0] || strchr (name, '.')) {
      return xdbtx_argerror (L, "database", "database name must be non-empty and without '.', "
                             "got \"%s\"", name);
   }
   sc = xdbtx_scratch_new (L);
   xdbtx_parse_defaults (L, 3, "database", sc);
   b = lua_newuserdatauv (L, sizeof *b, 1);
   b->db = NULL;
   luaL_setmetatable (L, XDBTX_DATABASE_MT);
   xdbtx_pin (L, -1, 1);
   b->db = xdbtx_db_new (c->pool, name, &sc->defaults);
   xdbtx_scratch_free (sc);
   return 1;
}

/* db:name() -> string */
static int
db_name (lua_State *L)
{
   lua_pushstring (L, xdbtx_db_name (check_db (L)->db));
   return 1;
}

/* db:client() -> Client */
static int
db_client (lua_State *L)
{
   check_db (L);
   xdbtx_push_pinned (L, 1);
   return 1;
}

/* db:collection(name, opts) -> Collection (the database's defaults, then opts') */
static int
db_collection (lua_State *L)
{
   ldatabase_t *b = check_db (L);
   const char *name = xdbtx_checkstring (L, 2, "collection", "collection name");
   lscratch_t *sc = xdbtx_scratch_new (L);
   int client_idx;

   xdbtx_defaults_apply (&sc->defaults, xdbtx_db_defaults (b->db));
   xdbtx_parse_defaults (L, 3, "collection", sc);
   xdbtx_push_pinned (L, 1);
   client_idx = lua_gettop (L);
   xdbtx_collection_push_new (L, client_idx, xdbtx_db_name (b->db), name, &sc->defaults);
   xdbtx_scratch_free (sc);
   return 1;
}

/* db:command(s, cmd, opts) -> reply (commands are sent as written: no defaults) */
static int
db_command (lua_State *L)
{
   ldatabase_t *b = check_db (L);

   return xdbtx_run_command (L, xdbtx_db_pool (b->db), 2, xdbtx_db_name (b->db), 3, 4);
}

/* db:drop(s, opts) -> true */
static int
db_drop (lua_State *L)
{
   ldatabase_t *b = check_db (L);
   xdbtx_session_t *s = session_arg (L, 2, xdbtx_db_pool (b->db), "drop");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *opts = xdbtx_scratch_doc (sc, 0), reply;
   xdbtx_error_t err;

   xdbtx_parse_opts (L, 3, XDBTX_M_DDL, "drop", opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_db_drop (b->db, s, opts, &reply, &err)) {
      return xdbtx_raise_with (L, sc, &reply, &err);
   }
   bson_destroy (&reply);
   xdbtx_scratch_free (sc);
   lua_pushboolean (L, 1);
   return 1;
}

/* db:list_collection_names(s, filter, opts) -> { name, ... } */
static int
db_list_collection_names (lua_State *L)
{
   ldatabase_t *b = check_db (L);
   xdbtx_session_t *s = session_arg (L, 2, xdbtx_db_pool (b->db), "list_collection_names");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *filter = xdbtx_scratch_doc (sc, 0), *opts = xdbtx_scratch_doc (sc, 1);
   bson_t *names = xdbtx_scratch_doc (sc, 2);
   xdbtx_error_t err;

   if (!lua_isnil (L, 3)) {
      xdbtx_encode_or_raise (L, 3, filter, "list_collection_names", "filter");
   }
   xdbtx_parse_opts (L, 4, XDBTX_M_LIST, "list_collection_names", opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_db_collection_names (b->db, s, filter, opts, names, &err)) {
      return xdbtx_raise_with (L, sc, NULL, &err);
   }
   push_array (L, sc, names);
   xdbtx_scratch_free (sc);
   return 1;
}

/* client:list_database_names(s, opts) -> { name, ... } */
static int
client_list_database_names (lua_State *L)
{
   lclient_t *c = (lua_settop (L, 3), xdbtx_check_client (L, 1));
   xdbtx_session_t *s = session_arg (L, 2, c->pool, "list_database_names");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *opts = xdbtx_scratch_doc (sc, 0), *names = xdbtx_scratch_doc (sc, 1);
   xdbtx_error_t err;

   xdbtx_parse_opts (L, 3, XDBTX_M_LIST_DATABASES, "list_database_names", opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_pool_database_names (c->pool, s, opts, names, &err)) {
      return xdbtx_raise_with (L, sc, NULL, &err);
   }
   push_array (L, sc, names);
   xdbtx_scratch_free (sc);
   return 1;
}

/* __gc: frees the handle */
static int
db_gc (lua_State *L)
{
   ldatabase_t *b = check_db (L);

   xdbtx_db_destroy (b->db);
   b->db = NULL;
   return 0;
}

/* tostring(db) -> "xdbtx.Database (name)" */
static int
db_tostring (lua_State *L)
{
   lua_pushfstring (L, "xdbtx.Database (%s)", xdbtx_db_name (check_db (L)->db));
   return 1;
}

/* ---- Collection: reads -------------------------------------------------- */

/* coll:distinct(s, field, filter, opts) -> { value, ... } */
static int
coll_distinct (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "distinct");
   const char *field = xdbtx_checkstring (L, 3, "distinct", "field");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *filter = xdbtx_scratch_doc (sc, 0), *opts = xdbtx_scratch_doc (sc, 1);
   bson_t reply, *kept;
   xdbtx_error_t err;

   if (!lua_isnil (L, 4)) {
      xdbtx_encode_or_raise (L, 4, filter, "distinct", "filter");
   }
   xdbtx_parse_opts (L, 5, XDBTX_M_DISTINCT, "distinct", opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_distinct (c->coll, s, field, filter, opts, sc->prefs, &reply, &err)) {
      return xdbtx_raise_with (L, sc, &reply, &err);
   }
   kept = xdbtx_scratch_doc (sc, 2);
   bson_destroy (kept);
   sc->doc[2] = kept = bson_copy (&reply);
   bson_destroy (&reply);
   push_reply_array (L, sc, kept, "values");
   xdbtx_scratch_free (sc);
   return 1;
}

/* coll:estimated_document_count(s, opts) -> integer */
static int
coll_estimated_document_count (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "estimated_document_count");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *opts = xdbtx_scratch_doc (sc, 0);
   xdbtx_error_t err;
   int64_t n = 0;

   xdbtx_parse_opts (L, 3, XDBTX_M_EST_COUNT, "estimated_document_count", opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_estimated_count (c->coll, s, opts, sc->prefs, &n, &err)) {
      return xdbtx_raise_with (L, sc, NULL, &err);
   }
   xdbtx_scratch_free (sc);
   lua_pushinteger (L, (lua_Integer) n);
   return 1;
}

/* ---- Collection: indexes and drop --------------------------------------- */

/* Encode the index keys at idx into keys (order kept; not empty; each a
 * direction, a non-zero number, or an index type such as "text"). */
static void
encode_keys (lua_State *L, int idx, bson_t *keys, const char *fname, const char *what)
{
   bson_iter_t it;

   if (lua_type (L, idx) != LUA_TTABLE && lua_type (L, idx) != LUA_TUSERDATA) {
      xdbtx_argerror (L, fname, "%s must be a table such as { email = 1 }, got %s", what,
                      luaL_typename (L, idx));
   }
   xdbtx_encode_ordered (L, idx, keys, fname, what);
   if (bson_empty (keys)) {
      xdbtx_argerror (L, fname, "%s must name at least one field", what);
   }
   bson_iter_init (&it, keys);
   while (bson_iter_next (&it)) {
      if (BSON_ITER_HOLDS_UTF8 (&it) ||
          (BSON_ITER_HOLDS_NUMBER (&it) && bson_iter_as_double (&it) != 0)) {
         continue;
      }
      xdbtx_argerror (L, fname, "%s: field '%s' must be 1, -1 or an index type such as \"text\","
                      " got %s", what, bson_iter_key (&it),
                      BSON_ITER_HOLDS_NUMBER (&it) ? "0"
                      : BSON_ITER_HOLDS_BOOL (&it) ? (bson_iter_bool (&it) ? "true" : "false")
                                                   : "a table");
   }
}

/* Append one index document {key, name, options...} to indexes under key
 * `i`; options holds the index options (libmongoc names). The name is the
 * option's or the one MongoDB would give ("a_1_b_-1"). */
static void
append_index (lua_State *L, bson_t *indexes, uint32_t i, const bson_t *keys,
              const bson_t *options, const char *fname)
{
   bson_t child;
   bson_iter_t it;
   char buf[16], *name = NULL;
   const char *k;

   if (!bson_iter_init_find (&it, options, "name")) {
      name = mongoc_collection_keys_to_index_string (keys);
      if (!name) {
         xdbtx_argerror (L, fname, "cannot derive an index name from these keys: give option "
                         "'name'");
      }
   }
   bson_uint32_to_string (i, &k, buf, sizeof buf);
   bson_append_document_begin (indexes, k, -1, &child);
   BSON_APPEND_DOCUMENT (&child, "key", keys);
   if (name) {
      BSON_APPEND_UTF8 (&child, "name", name);
      bson_free (name);
   }
   bson_concat (&child, options);
   bson_append_document_end (indexes, &child);
}

/* The names of the index documents of the array indexes, into the array
 * names. */
static void
index_names (const bson_t *indexes, bson_t *names)
{
   bson_iter_t it, f;
   char buf[16];
   const char *k;
   uint32_t i = 0;

   bson_iter_init (&it, indexes);
   while (bson_iter_next (&it)) {
      if (bson_iter_recurse (&it, &f) && bson_iter_find (&f, "name") &&
          BSON_ITER_HOLDS_UTF8 (&f)) {
         bson_uint32_to_string (i++, &k, buf, sizeof buf);
         bson_append_utf8 (names, k, -1, bson_iter_utf8 (&f, NULL), -1);
      }
   }
}

/* Run createIndexes for the array indexes with opts, or raise. */
static void
create_indexes (lua_State *L, lcollection_t *c, xdbtx_session_t *s, lscratch_t *sc,
                bson_t *indexes, bson_t *opts)
{
   xdbtx_error_t err;
   bson_t reply;

   xdbtx_error_init (&err);
   if (!xdbtx_coll_create_indexes (c->coll, s, indexes, opts, &reply, &err)) {
      xdbtx_raise_with (L, sc, &reply, &err);
   }
   bson_destroy (&reply);
}

/* coll:create_index(s, keys, opts) -> name. opts: index options (name,
 * unique, ...) and command options (write_concern, comment, max_time_ms). */
static int
coll_create_index (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "create_index");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *keys = xdbtx_scratch_doc (sc, 0), *all = xdbtx_scratch_doc (sc, 1);
   bson_t *indexes = xdbtx_scratch_doc (sc, 2), *opts = xdbtx_scratch_doc (sc, 3);
   bson_t *options = xdbtx_scratch_doc (sc, 4), *names = xdbtx_scratch_doc (sc, 5);
   bson_iter_t it;
   const char *k;

   encode_keys (L, 3, keys, "create_index", "keys");
   xdbtx_parse_opts (L, 4, XDBTX_M_CREATE_INDEX, "create_index", all, sc);
   /* The command's options apart, the rest describe the index. */
   bson_iter_init (&it, all);
   while (bson_iter_next (&it)) {
      k = bson_iter_key (&it);
      bson_append_iter (strcmp (k, "writeConcern") == 0 || strcmp (k, "comment") == 0 ||
                              strcmp (k, "maxTimeMS") == 0
                           ? opts
                           : options,
                        k, -1, &it);
   }
   append_index (L, indexes, 0, keys, options, "create_index");
   create_indexes (L, c, s, sc, indexes, opts);
   index_names (indexes, names);
   bson_iter_init_find (&it, names, "0");
   lua_pushstring (L, bson_iter_utf8 (&it, NULL));
   xdbtx_scratch_free (sc);
   return 1;
}

/* coll:create_indexes(s, { { keys = k, name = n, unique = true, ... }, ... }, opts)
 * -> { name, ... } */
static int
coll_create_indexes (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "create_indexes");
   size_t n = xdbtx_check_list (L, 3, "create_indexes", "indexes"), i;
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *keys, *options, *indexes = xdbtx_scratch_doc (sc, 2);
   bson_t *opts = xdbtx_scratch_doc (sc, 3);
   const char *fname;

   xdbtx_parse_opts (L, 4, XDBTX_M_CREATE_INDEXES, "create_indexes", opts, sc);
   luaL_checkstack (L, 8, "xdbtx: create_indexes");
   for (i = 1; i <= n; i++) {
      lua_rawgeti (L, 3, (lua_Integer) i);
      fname = lua_pushfstring (L, "create_indexes: indexes[%d]", (int) i);
      if (lua_type (L, -2) != LUA_TTABLE) {
         xdbtx_lua_raisef (L, "argument", "%s must be a table such as { keys = { email = 1 }, "
                           "unique = true }, got %s", fname, luaL_typename (L, -2));
      }
      keys = xdbtx_scratch_doc (sc, 0);
      options = xdbtx_scratch_doc (sc, 1);
      bson_reinit (keys);
      bson_reinit (options);
      xdbtx_parse_opts (L, -2, XDBTX_M_INDEX_MODEL, fname, options, sc);
      lua_getfield (L, -2, "keys");
      encode_keys (L, lua_gettop (L), keys, fname, "keys");
      append_index (L, indexes, (uint32_t) (i - 1), keys, options, fname);
      lua_pop (L, 3);
   }
   if (n > 0) {
      create_indexes (L, c, s, sc, indexes, opts);
   }
   index_names (indexes, xdbtx_scratch_doc (sc, 4));
   push_array (L, sc, sc->doc[4]);
   xdbtx_scratch_free (sc);
   return 1;
}

/* coll:list_indexes(s, opts) -> { index document, ... } */
static int
coll_list_indexes (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "list_indexes");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *opts = xdbtx_scratch_doc (sc, 0), *out = xdbtx_scratch_doc (sc, 1);
   xdbtx_error_t err;

   xdbtx_parse_opts (L, 3, XDBTX_M_LIST, "list_indexes", opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_list_indexes (c->coll, s, opts, out, &err)) {
      return xdbtx_raise_with (L, sc, NULL, &err);
   }
   push_array (L, sc, out);
   xdbtx_scratch_free (sc);
   return 1;
}

/* dropIndexes of `name` ("*": all) with the options at opts_idx. */
static int
drop_index (lua_State *L, lcollection_t *c, xdbtx_session_t *s, const char *name,
            int opts_idx, const char *fname)
{
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *opts = xdbtx_scratch_doc (sc, 0), reply;
   xdbtx_error_t err;

   xdbtx_parse_opts (L, opts_idx, XDBTX_M_DDL, fname, opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_drop_index (c->coll, s, name, opts, &reply, &err)) {
      return xdbtx_raise_with (L, sc, &reply, &err);
   }
   bson_destroy (&reply);
   xdbtx_scratch_free (sc);
   lua_pushboolean (L, 1);
   return 1;
}

/* coll:drop_index(s, name, opts) -> true */
static int
coll_drop_index (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "drop_index");
   const char *name = xdbtx_checkstring (L, 3, "drop_index", "index name");

   if (strcmp (name, "*") == 0) {
      return xdbtx_argerror (L, "drop_index", "index name \"*\" would drop every index: use "
                             "drop_indexes()");
   }
   return drop_index (L, c, s, name, 4, "drop_index");
}

/* coll:drop_indexes(s, opts) -> true (every index but _id's) */
static int
coll_drop_indexes (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "drop_indexes");

   return drop_index (L, c, s, "*", 3, "drop_indexes");
}

/* coll:drop(s, opts) -> true, or false when there was no such collection */
static int
coll_drop (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "drop");
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *opts = xdbtx_scratch_doc (sc, 0);
   xdbtx_error_t err;
   bool dropped = false;

   xdbtx_parse_opts (L, 3, XDBTX_M_DDL, "drop", opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_coll_drop (c->coll, s, opts, &dropped, &err)) {
      return xdbtx_raise_with (L, sc, NULL, &err);
   }
   xdbtx_scratch_free (sc);
   lua_pushboolean (L, dropped);
   return 1;
}

void
xdbtx_open_admin (lua_State *L)
{
   static const luaL_Reg client_methods[] = {
      {"database", client_database},
      {"list_database_names", client_list_database_names},
      {NULL, NULL},
   };
   static const luaL_Reg coll_methods[] = {
      {"distinct", coll_distinct},
      {"estimated_document_count", coll_estimated_document_count},
      {"create_index", coll_create_index},
      {"create_indexes", coll_create_indexes},
      {"list_indexes", coll_list_indexes},
      {"drop_index", coll_drop_index},
      {"drop_indexes", coll_drop_indexes},
      {"drop", coll_drop},
      {NULL, NULL},
   };
   static const luaL_Reg db_methods[] = {
      {"name", db_name},
      {"client", db_client},
      {"collection", db_collection},
      {"command", db_command},
      {"drop", db_drop},
      {"list_collection_names", db_list_collection_names},
      {NULL, NULL},
   };

   xdbtx_add_methods (L, XDBTX_CLIENT_MT, client_methods);
   xdbtx_add_methods (L, XDBTX_COLLECTION_MT, coll_methods);
   if (luaL_newmetatable (L, XDBTX_DATABASE_MT)) {
      luaL_newlib (L, db_methods);
      lua_setfield (L, -2, "__index");
      lua_pushcfunction (L, db_gc);
      lua_setfield (L, -2, "__gc");
      lua_pushcfunction (L, db_tostring);
      lua_setfield (L, -2, "__tostring");
      lua_pushliteral (L, XDBTX_DATABASE_MT);
      lua_setfield (L, -2, "__name");
   }
   lua_pop (L, 1);
}
