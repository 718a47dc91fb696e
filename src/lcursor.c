/*
 * lcursor.c - the Cursor userdata ("xdbtx.Cursor") and the Collection
 * methods that open one: find, find_one, aggregate.
 *
 * A Cursor pins its Session (or, with none, its Collection); closing it
 * early kills the server cursor, and an exhausted cursor closes itself so
 * its borrowed client goes back at once. find_one is a find of one
 * document in a single batch whose cursor is closed before it returns.
 */
#include <string.h>

#include "lbind.h"

static lcursor_t *
check_cursor (lua_State *L)
{
   lcursor_t *b = xdbtx_testudata (L, 1, XDBTX_BOX_CURSOR);

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

   b->tag = XDBTX_BOX_TAG (XDBTX_BOX_CURSOR);
   b->cur = NULL;
   b->failure = NULL;
   luaL_setmetatable (L, XDBTX_CURSOR_MT);
   xdbtx_pin (L, -1, lua_toboolean (L, 2) ? 2 : 1);
   return b;
}

/* find / aggregate / find_one: (s, filter|pipeline, opts) -> Cursor on the stack. */
static int
open_cursor (lua_State *L, bool aggregate, const char *fname)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, fname);
   lscratch_t *sc;
   lcursor_t *b;
   bson_t *query, *opts;
   xdbtx_error_t err;
   bool find_one = strcmp (fname, "find_one") == 0;

   if (!aggregate && lua_isnoneornil (L, 3)) { /* no filter: all */
      lua_newtable (L);
      lua_replace (L, 3);
   }
   sc = xdbtx_scratch_new (L);
   query = xdbtx_scratch_doc (sc, 0);
   opts = xdbtx_scratch_doc (sc, 1);
   if (aggregate) {
      xdbtx_append_doc_list (L, 3, query, "pipeline", sc, 2, fname, "pipeline", "stages");
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

/* Push the next document of the cursor box, or nil (closing it at the end).
 * A failure closes it too and stays with it: every later read raises it
 * again, so a cursor that failed never reads as an empty result. */
static int
cursor_push_next (lua_State *L, lcursor_t *b)
{
   const bson_t *doc;
   xdbtx_error_t err;
   bool failed;

   if (!b->cur) {
      if (b->failure) {
         xdbtx_lua_push_error (L, b->failure);
         return lua_error (L);
      }
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
      b->failure = bson_malloc (sizeof *b->failure);
      *b->failure = err; /* the reply moves with it */
      xdbtx_lua_push_error (L, b->failure);
      return lua_error (L);
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

/* __gc: closed, and its failure freed */
static int
cursor_gc (lua_State *L)
{
   lcursor_t *b = check_cursor (L);

   cursor_close (L);
   if (b->failure) {
      xdbtx_error_cleanup (b->failure);
      bson_free (b->failure);
      b->failure = NULL;
   }
   return 0;
}

void
xdbtx_open_cursor (lua_State *L)
{
   static const luaL_Reg coll_methods[] = {
      {"find", coll_find},
      {"find_one", coll_find_one},
      {"aggregate", coll_aggregate},
      {NULL, NULL},
   };
   static const luaL_Reg cursor_methods[] = {
      {"next", cursor_next},
      {"all", cursor_all},
      {"close", cursor_close},
      {NULL, NULL},
   };

   xdbtx_add_methods (L, XDBTX_COLLECTION_MT, coll_methods);
   if (luaL_newmetatable (L, XDBTX_CURSOR_MT)) {
      luaL_newlib (L, cursor_methods);
      lua_setfield (L, -2, "__index");
      lua_pushcfunction (L, cursor_gc);
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
