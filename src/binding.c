/*
 * binding.c - xdbtx.core: the module table, Client userdata, options.
 *
 * Lua-facing side of the C core. A Client is a box holding a pointer to a
 * process-wide pool entry (client.c), so every Client made from the same URI
 * and options is the same client, in every Lua state of the process. This
 * layer converts arguments (via the codec) and options (snake_case ->
 * libmongoc names), calls the core, and raises xdbtx.Error objects, never
 * strings. It never calls Lua from inside libmongoc: command events are
 * queued by the core and drained here on request.
 */
#include <string.h>
#include <time.h>

#include "lbind.h"

/* ---- shared helpers ----------------------------------------------------- */

int
xdbtx_argerror (lua_State *L, int arg, const char *fname, const char *msg)
{
   return xdbtx_lua_raisef (L, "argument", "bad argument #%d to '%s' (%s)", arg, fname, msg);
}

const char *
xdbtx_checkstring (lua_State *L, int idx, const char *fname)
{
   if (lua_type (L, idx) != LUA_TSTRING) {
      lua_pushfstring (L, "string expected, got %s", luaL_typename (L, idx));
      xdbtx_argerror (L, idx, fname, lua_tostring (L, -1));
   }
   return lua_tostring (L, idx);
}

bool
xdbtx_toint64 (lua_State *L, int idx, int64_t *out)
{
   lua_Number d;

#if LUA_VERSION_NUM >= 503
   if (lua_isinteger (L, idx)) {
      *out = (int64_t) lua_tointeger (L, idx);
      return true;
   }
#endif
   if (lua_type (L, idx) != LUA_TNUMBER) {
      return false;
   }
   d = lua_tonumber (L, idx);
   if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || (lua_Number) (int64_t) d != d) {
      return false;
   }
   *out = (int64_t) d;
   return true;
}

void
xdbtx_encode_or_raise (lua_State *L, int idx, bson_t *doc, const char *fname, const char *what)
{
   xdbtx_error_t err;

   if (lua_type (L, idx) != LUA_TTABLE && lua_type (L, idx) != LUA_TUSERDATA) {
      lua_pushfstring (L, "%s: table expected, got %s", what, luaL_typename (L, idx));
      xdbtx_argerror (L, idx, fname, lua_tostring (L, -1));
   }
   xdbtx_error_init (&err);
   if (!xdbtx_codec_encode (L, idx, doc, &err)) {
      xdbtx_error_prefix (&err, "%s: %s", fname, what);
      xdbtx_lua_raise (L, &err);
   }
}

void
xdbtx_push_doc (lua_State *L, const bson_t *doc)
{
   xdbtx_error_t err;

   xdbtx_error_init (&err);
   if (!xdbtx_codec_push (L, doc, &err)) {
      xdbtx_lua_raise (L, &err);
   }
}

void
xdbtx_pin (lua_State *L, int ud, int parent)
{
   ud = lua_absindex (L, ud);
   parent = lua_absindex (L, parent);
#if LUA_VERSION_NUM >= 502
   lua_pushvalue (L, parent);
#else
   /* Lua 5.1 ABI: a userdata's environment must be a table. */
   lua_createtable (L, 1, 0);
   lua_pushvalue (L, parent);
   lua_rawseti (L, -2, 1);
#endif
   lua_setuservalue (L, ud);
}

void
xdbtx_push_pinned (lua_State *L, int ud)
{
   lua_getuservalue (L, ud);
#if LUA_VERSION_NUM < 502
   lua_rawgeti (L, -1, 1);
   lua_remove (L, -2);
#endif
}

lclient_t *
xdbtx_check_client (lua_State *L, int idx)
{
   lclient_t *c = luaL_testudata (L, idx, XDBTX_CLIENT_MT);

   if (!c) {
      lua_pushfstring (L, "xdbtx.Client expected, got %s", luaL_typename (L, idx));
      xdbtx_argerror (L, idx, "client method", lua_tostring (L, -1));
   }
   return c;
}

/* ---- scratch box -------------------------------------------------------- */

void
xdbtx_scratch_free (lscratch_t *sc)
{
   size_t i;

   for (i = 0; i < XDBTX_SCRATCH_DOCS; i++) {
      bson_destroy (sc->doc[i]);
      sc->doc[i] = NULL;
   }
   for (i = 0; i < sc->nmany; i++) {
      bson_destroy (sc->many[i]);
   }
   bson_free (sc->many);
   sc->many = NULL;
   sc->nmany = sc->capmany = 0;
   mongoc_read_prefs_destroy (sc->prefs);
   sc->prefs = NULL;
   mongoc_find_and_modify_opts_destroy (sc->fam);
   sc->fam = NULL;
   mongoc_transaction_opts_destroy (sc->txn);
   sc->txn = NULL;
   mongoc_session_opts_destroy (sc->sopts);
   sc->sopts = NULL;
}

/* __gc of a scratch box: frees what a call that raised left behind */
static int
scratch_gc (lua_State *L)
{
   xdbtx_scratch_free (luaL_checkudata (L, 1, XDBTX_SCRATCH_MT));
   return 0;
}

lscratch_t *
xdbtx_scratch_new (lua_State *L)
{
   lscratch_t *sc = lua_newuserdatauv (L, sizeof *sc, 0);

   memset (sc, 0, sizeof *sc);
   luaL_setmetatable (L, XDBTX_SCRATCH_MT);
   return sc;
}

bson_t *
xdbtx_scratch_doc (lscratch_t *sc, int i)
{
   if (!sc->doc[i]) {
      sc->doc[i] = bson_new ();
   }
   return sc->doc[i];
}

/* ---- options ------------------------------------------------------------ */

enum { K_DOC, K_ARRAY, K_ANY, K_INT, K_BOOL, K_WC, K_RC, K_RP, K_RETDOC };

#define M_WRITES (XDBTX_M_INSERT_ONE | XDBTX_M_INSERT_MANY | XDBTX_M_UPDATE | XDBTX_M_REPLACE | \
                  XDBTX_M_DELETE)
#define M_FAM (XDBTX_M_FAM_UPDATE | XDBTX_M_FAM_REPLACE | XDBTX_M_FAM_DELETE)
#define M_READS (XDBTX_M_FIND | XDBTX_M_FIND_ONE | XDBTX_M_COUNT | XDBTX_M_AGGREGATE)
#define M_ALL 0xffffu

static const struct {
   const char *lua, *mongo;
   int kind;
   unsigned methods;
} optspecs[] = {
   {"sort", "sort", K_DOC, XDBTX_M_FIND | XDBTX_M_FIND_ONE | M_FAM},
   {"projection", "projection", K_DOC, XDBTX_M_FIND | XDBTX_M_FIND_ONE | M_FAM},
   {"limit", "limit", K_INT, XDBTX_M_FIND | XDBTX_M_COUNT},
   {"skip", "skip", K_INT, XDBTX_M_FIND | XDBTX_M_FIND_ONE | XDBTX_M_COUNT},
   {"batch_size", "batchSize", K_INT, XDBTX_M_FIND | XDBTX_M_AGGREGATE},
   {"upsert", "upsert", K_BOOL,
    XDBTX_M_UPDATE | XDBTX_M_REPLACE | XDBTX_M_FAM_UPDATE | XDBTX_M_FAM_REPLACE},
   {"return_document", "new", K_RETDOC, XDBTX_M_FAM_UPDATE | XDBTX_M_FAM_REPLACE},
   {"array_filters", "arrayFilters", K_ARRAY, XDBTX_M_UPDATE | XDBTX_M_FAM_UPDATE},
   {"hint", "hint", K_ANY, M_ALL & ~(XDBTX_M_INSERT_ONE | XDBTX_M_INSERT_MANY | XDBTX_M_COMMAND)},
   {"collation", "collation", K_DOC,
    M_ALL & ~(XDBTX_M_INSERT_ONE | XDBTX_M_INSERT_MANY | XDBTX_M_COMMAND)},
   {"comment", "comment", K_ANY, M_ALL & ~XDBTX_M_COMMAND},
   {"max_time_ms", "maxTimeMS", K_INT, M_READS | M_FAM | XDBTX_M_COMMAND},
   {"ordered", "ordered", K_BOOL, XDBTX_M_INSERT_MANY},
   {"bypass_document_validation", "bypassDocumentValidation", K_BOOL,
    XDBTX_M_INSERT_ONE | XDBTX_M_INSERT_MANY | XDBTX_M_UPDATE | XDBTX_M_REPLACE |
       XDBTX_M_FAM_UPDATE | XDBTX_M_FAM_REPLACE | XDBTX_M_AGGREGATE},
   {"allow_disk_use", "allowDiskUse", K_BOOL, XDBTX_M_FIND | XDBTX_M_AGGREGATE},
   {"write_concern", "writeConcern", K_WC, M_WRITES | M_FAM | XDBTX_M_AGGREGATE | XDBTX_M_COMMAND},
   {"read_concern", "readConcern", K_RC, M_READS | XDBTX_M_COMMAND},
   {"read_preference", NULL, K_RP, M_READS | XDBTX_M_COMMAND},
};

/* Raise "<fname>: option '<key>' <msg>" (phase "argument"). */
static int
opt_error (lua_State *L, const char *fname, const char *key, const char *msg)
{
   return xdbtx_lua_raisef (L, "argument", "%s: option '%s' %s", fname, key, msg);
}

/* The write concern table (or w value) at idx into a new object. */
static mongoc_write_concern_t *
parse_wc (lua_State *L, int idx, const char *fname)
{
   mongoc_write_concern_t *wc;
   int64_t n = 0;
   const char *key;

   idx = lua_absindex (L, idx);
   if (lua_type (L, idx) != LUA_TTABLE) {
      opt_error (L, fname, "write_concern", "must be a table { w =, j =, wtimeout = }");
   }
   /* Check everything before allocating, so a raise leaks nothing. */
   lua_pushnil (L);
   while (lua_next (L, idx)) {
      key = lua_type (L, -2) == LUA_TSTRING ? lua_tostring (L, -2) : "?";
      if (strcmp (key, "w") == 0) {
         if (!(lua_type (L, -1) == LUA_TSTRING || (xdbtx_toint64 (L, -1, &n) && n >= 0))) {
            opt_error (L, fname, "write_concern.w", "must be a number >= 0 or a string");
         }
      } else if (strcmp (key, "j") == 0) {
         if (!lua_isboolean (L, -1)) {
            opt_error (L, fname, "write_concern.j", "must be a boolean");
         }
      } else if (strcmp (key, "wtimeout") == 0) {
         if (!xdbtx_toint64 (L, -1, &n) || n < 0) {
            opt_error (L, fname, "write_concern.wtimeout", "must be an integer >= 0");
         }
      } else {
         xdbtx_lua_raisef (L, "argument", "%s: unknown option 'write_concern.%s'", fname, key);
      }
      lua_pop (L, 1);
   }
   wc = mongoc_write_concern_new ();
   lua_getfield (L, idx, "w");
   if (lua_type (L, -1) == LUA_TSTRING) {
      if (strcmp (lua_tostring (L, -1), "majority") == 0) {
         mongoc_write_concern_set_w (wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
      } else {
         mongoc_write_concern_set_wtag (wc, lua_tostring (L, -1));
      }
   } else if (xdbtx_toint64 (L, -1, &n)) {
      mongoc_write_concern_set_w (wc, (int32_t) n);
   }
   lua_getfield (L, idx, "j");
   if (lua_isboolean (L, -1)) {
      mongoc_write_concern_set_journal (wc, lua_toboolean (L, -1));
   }
   lua_getfield (L, idx, "wtimeout");
   if (xdbtx_toint64 (L, -1, &n)) {
      mongoc_write_concern_set_wtimeout_int64 (wc, n);
   }
   lua_pop (L, 3);
   return wc;
}

/* "majority" or { level = "majority" } -> the level string (on the stack). */
static const char *
parse_rc (lua_State *L, int idx, const char *fname)
{
   if (lua_type (L, idx) == LUA_TTABLE) {
      lua_getfield (L, idx, "level");
      lua_replace (L, idx);
   }
   if (lua_type (L, idx) != LUA_TSTRING) {
      opt_error (L, fname, "read_concern", "must be a level string or { level = ... }");
   }
   return lua_tostring (L, idx);
}

static mongoc_read_prefs_t *
parse_rp (lua_State *L, int idx, const char *fname)
{
   static const struct {
      const char *name;
      mongoc_read_mode_t mode;
   } modes[] = {
      {"primary", MONGOC_READ_PRIMARY},
      {"primaryPreferred", MONGOC_READ_PRIMARY_PREFERRED},
      {"primary_preferred", MONGOC_READ_PRIMARY_PREFERRED},
      {"secondary", MONGOC_READ_SECONDARY},
      {"secondaryPreferred", MONGOC_READ_SECONDARY_PREFERRED},
      {"secondary_preferred", MONGOC_READ_SECONDARY_PREFERRED},
      {"nearest", MONGOC_READ_NEAREST},
   };
   const char *s = lua_type (L, idx) == LUA_TSTRING ? lua_tostring (L, idx) : "";
   size_t i;

   for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
      if (strcmp (s, modes[i].name) == 0) {
         return mongoc_read_prefs_new (modes[i].mode);
      }
   }
   opt_error (L, fname, "read_preference",
              "must be \"primary\", \"primaryPreferred\", \"secondary\", "
              "\"secondaryPreferred\" or \"nearest\"");
   return NULL;
}

static void
parse_one (lua_State *L, int vidx, size_t i, const char *fname, bson_t *out, lscratch_t *sc)
{
   const char *key = optspecs[i].lua, *mongo = optspecs[i].mongo;
   xdbtx_error_t err;
   int64_t n = 0;
   mongoc_write_concern_t *wc;
   bool ok;

   switch (optspecs[i].kind) {
   case K_DOC:
   case K_ARRAY:
      if (lua_type (L, vidx) != LUA_TTABLE && lua_type (L, vidx) != LUA_TUSERDATA) {
         opt_error (L, fname, key, "must be a table");
      }
      /* fall through */
   case K_ANY:
      xdbtx_error_init (&err);
      if (!xdbtx_codec_append (L, vidx, out, mongo, -1, &err)) {
         xdbtx_error_prefix (&err, "%s: option '%s'", fname, key);
         xdbtx_lua_raise (L, &err);
      }
      break;
   case K_INT:
      if (!xdbtx_toint64 (L, vidx, &n)) {
         opt_error (L, fname, key, "must be an integer");
      }
      BSON_APPEND_INT64 (out, mongo, n);
      break;
   case K_BOOL:
      if (!lua_isboolean (L, vidx)) {
         opt_error (L, fname, key, "must be a boolean");
      }
      BSON_APPEND_BOOL (out, mongo, lua_toboolean (L, vidx));
      break;
   case K_RETDOC: {
      const char *s = lua_type (L, vidx) == LUA_TSTRING ? lua_tostring (L, vidx) : "";
      if (strcmp (s, "after") != 0 && strcmp (s, "before") != 0) {
         opt_error (L, fname, key, "must be \"before\" or \"after\"");
      }
      BSON_APPEND_BOOL (out, mongo, strcmp (s, "after") == 0);
      break;
   }
   case K_WC:
      wc = parse_wc (L, vidx, fname);
      ok = mongoc_write_concern_append (wc, out);
      mongoc_write_concern_destroy (wc);
      if (!ok) {
         opt_error (L, fname, key, "is not a valid write concern");
      }
      break;
   case K_RC: {
      bson_t child;
      const char *level = parse_rc (L, vidx, fname);
      BSON_APPEND_DOCUMENT_BEGIN (out, "readConcern", &child);
      BSON_APPEND_UTF8 (&child, "level", level);
      bson_append_document_end (out, &child);
      break;
   }
   case K_RP:
      if (sc->prefs) {
         mongoc_read_prefs_destroy (sc->prefs);
         sc->prefs = NULL;
      }
      sc->prefs = parse_rp (L, vidx, fname);
      break;
   default:
      break;
   }
}

void
xdbtx_parse_opts (lua_State *L, int idx, unsigned method, const char *fname, bson_t *out,
                  lscratch_t *sc)
{
   const char *key;
   size_t i;

   if (lua_isnoneornil (L, idx)) {
      return;
   }
   idx = lua_absindex (L, idx);
   if (lua_type (L, idx) != LUA_TTABLE) {
      lua_pushfstring (L, "options table expected, got %s", luaL_typename (L, idx));
      xdbtx_argerror (L, idx, fname, lua_tostring (L, -1));
   }
   luaL_checkstack (L, 8, "xdbtx: options");
   lua_pushnil (L);
   while (lua_next (L, idx)) {
      if (lua_type (L, -2) != LUA_TSTRING) {
         xdbtx_lua_raisef (L, "argument", "%s: option keys must be strings (got %s)", fname,
                           luaL_typename (L, -2));
      }
      key = lua_tostring (L, -2);
      for (i = 0; i < sizeof optspecs / sizeof optspecs[0]; i++) {
         if (strcmp (optspecs[i].lua, key) == 0 && (optspecs[i].methods & method)) {
            break;
         }
      }
      if (i == sizeof optspecs / sizeof optspecs[0]) {
         xdbtx_lua_raisef (L, "argument", "%s: unknown option '%s'", fname, key);
      }
      parse_one (L, lua_gettop (L), i, fname, out, sc);
      lua_settop (L, lua_gettop (L) - 1);
   }
}

mongoc_transaction_opt_t *
xdbtx_parse_txn_opts (lua_State *L, int idx, const char *fname, lscratch_t *sc)
{
   mongoc_transaction_opt_t *txn;
   mongoc_write_concern_t *wc;
   mongoc_read_concern_t *rc;
   mongoc_read_prefs_t *rp;
   const char *key;
   int64_t n = 0;
   int top;

   if (sc->txn) {
      mongoc_transaction_opts_destroy (sc->txn);
   }
   txn = sc->txn = mongoc_transaction_opts_new ();
   if (lua_isnoneornil (L, idx)) {
      return txn;
   }
   idx = lua_absindex (L, idx);
   if (lua_type (L, idx) != LUA_TTABLE) {
      lua_pushfstring (L, "options table expected, got %s", luaL_typename (L, idx));
      xdbtx_argerror (L, idx, fname, lua_tostring (L, -1));
   }
   lua_pushnil (L);
   while (lua_next (L, idx)) {
      top = lua_gettop (L);
      key = lua_type (L, -2) == LUA_TSTRING ? lua_tostring (L, -2) : "?";
      if (strcmp (key, "read_concern") == 0) {
         rc = mongoc_read_concern_new ();
         mongoc_read_concern_set_level (rc, parse_rc (L, top, fname));
         mongoc_transaction_opts_set_read_concern (txn, rc);
         mongoc_read_concern_destroy (rc);
      } else if (strcmp (key, "write_concern") == 0) {
         wc = parse_wc (L, top, fname);
         mongoc_transaction_opts_set_write_concern (txn, wc);
         mongoc_write_concern_destroy (wc);
      } else if (strcmp (key, "read_preference") == 0) {
         rp = parse_rp (L, top, fname);
         mongoc_transaction_opts_set_read_prefs (txn, rp);
         mongoc_read_prefs_destroy (rp);
      } else if (strcmp (key, "max_commit_time_ms") == 0) {
         if (!xdbtx_toint64 (L, top, &n) || n < 0) {
            opt_error (L, fname, key, "must be an integer >= 0");
         }
         mongoc_transaction_opts_set_max_commit_time_ms (txn, n);
      } else {
         xdbtx_lua_raisef (L, "argument", "%s: unknown option '%s'", fname, key);
      }
      lua_settop (L, top - 1);
   }
   return txn;
}

/* ---- Client ------------------------------------------------------------- */

/* core.client(uri, opts) -> Client */
static int
l_client (lua_State *L)
{
   const char *uri = xdbtx_checkstring (L, 1, "client");
   xdbtx_pool_opts_t o = {NULL, 0, 0};
   xdbtx_error_t err;
   lclient_t *c;
   const char *key;
   int64_t n = 0;

   if (!lua_isnoneornil (L, 2)) {
      if (lua_type (L, 2) != LUA_TTABLE) {
         return xdbtx_argerror (L, 2, "client", "options table expected");
      }
      lua_pushnil (L);
      while (lua_next (L, 2)) {
         key = lua_type (L, -2) == LUA_TSTRING ? lua_tostring (L, -2) : "?";
         if (strcmp (key, "app_name") == 0 && lua_type (L, -1) == LUA_TSTRING) {
            o.app_name = lua_tostring (L, -1);
         } else if (strcmp (key, "max_pool_size") == 0 && xdbtx_toint64 (L, -1, &n) && n > 0 &&
                    n <= INT32_MAX) {
            o.max_pool_size = (int32_t) n;
         } else if (strcmp (key, "server_selection_timeout_ms") == 0 &&
                    xdbtx_toint64 (L, -1, &n) && n > 0 && n <= INT32_MAX) {
            o.server_selection_timeout_ms = (int32_t) n;
         } else {
            if (lua_type (L, -1) == LUA_TSTRING || lua_type (L, -1) == LUA_TNUMBER) {
               lua_pushvalue (L, -1);
            } else if (lua_type (L, -1) == LUA_TBOOLEAN) {
               lua_pushstring (L, lua_toboolean (L, -1) ? "true" : "false");
            } else {
               lua_pushstring (L, luaL_typename (L, -1));
            }
            return xdbtx_lua_raisef (L, "argument", "client: %s option '%s' = %s", 
                                     (strcmp (key, "app_name") == 0 ||
                                      strcmp (key, "max_pool_size") == 0 ||
                                      strcmp (key, "server_selection_timeout_ms") == 0)
                                        ? "bad value for"
                                        : "unknown",
                                     key, lua_tostring (L, -1));
         }
         lua_pop (L, 1);
      }
   }
   /* app_name stays valid: it is a string inside the options table. */
   xdbtx_error_init (&err);
   c = lua_newuserdatauv (L, sizeof *c, 0);
   c->pool = NULL;
   luaL_setmetatable (L, XDBTX_CLIENT_MT);
   if (!xdbtx_pool_get (uri, &o, &c->pool, &err)) {
      return xdbtx_lua_raise (L, &err);
   }
   return 1;
}

/* client:id() -> string (the same for every Client of one pool) */
static int
client_id (lua_State *L)
{
   lua_pushstring (L, xdbtx_pool_id (xdbtx_check_client (L, 1)->pool));
   return 1;
}

/* client:uri() -> string */
static int
client_uri (lua_State *L)
{
   lua_pushstring (L, xdbtx_pool_uri (xdbtx_check_client (L, 1)->pool));
   return 1;
}

/* client:collection(db, name) -> Collection; also client:collection("db.name") */
static int
client_collection (lua_State *L)
{
   const char *db, *dot;

   xdbtx_check_client (L, 1);
   db = xdbtx_checkstring (L, 2, "collection");
   if (lua_isnoneornil (L, 3)) {
      dot = strchr (db, '.');
      if (!dot || dot == db || !dot[1]) {
         return xdbtx_argerror (L, 2, "collection", "\"db.collection\" expected");
      }
      lua_pushlstring (L, db, (size_t) (dot - db));
      return xdbtx_collection_push_new (L, 1, lua_tostring (L, -1), dot + 1);
   }
   return xdbtx_collection_push_new (L, 1, db, xdbtx_checkstring (L, 3, "collection"));
}

/* client:start_session(opts) -> Session */
static int
client_start_session (lua_State *L)
{
   lua_settop (L, 2);
   xdbtx_check_client (L, 1);
   return xdbtx_session_push_new (L, 1, 2);
}

/* client:command(session|nil, db, cmd, opts) -> reply */
static int
client_command (lua_State *L)
{
   lclient_t *c = (lua_settop (L, 5), xdbtx_check_client (L, 1));
   xdbtx_session_t *s = xdbtx_check_session (L, 2, "command");
   const char *db = xdbtx_checkstring (L, 3, "command");
   lscratch_t *sc = xdbtx_scratch_new (L);
   xdbtx_error_t err;
   bson_t reply;
   bson_t *cmd = xdbtx_scratch_doc (sc, 0), *opts = xdbtx_scratch_doc (sc, 1);

   xdbtx_encode_or_raise (L, 4, cmd, "command", "command");
   xdbtx_parse_opts (L, 5, XDBTX_M_COMMAND, "command", opts, sc);
   xdbtx_error_init (&err);
   if (!xdbtx_pool_command (c->pool, s, db, cmd, sc->prefs, opts, &reply, &err)) {
      bson_destroy (&reply);
      xdbtx_scratch_free (sc);
      return xdbtx_lua_raise (L, &err);
   }
   xdbtx_scratch_free (sc);
   xdbtx_push_doc (L, &reply);
   bson_destroy (&reply);
   return 1;
}

/* client:topology() -> "replicaset" | "standalone" | "sharded" | "unknown" */
static int
client_topology (lua_State *L)
{
   lclient_t *c = xdbtx_check_client (L, 1);
   xdbtx_error_t err;
   const char *t;

   xdbtx_error_init (&err);
   t = xdbtx_pool_topology (c->pool, &err);
   if (!t) {
      return xdbtx_lua_raise (L, &err);
   }
   lua_pushstring (L, t);
   return 1;
}

/* client:monitor(on) -> client */
static int
client_monitor (lua_State *L)
{
   lclient_t *c = xdbtx_check_client (L, 1);

   xdbtx_pool_monitor (c->pool, lua_toboolean (L, 2));
   lua_settop (L, 1);
   return 1;
}

static const char *const event_types[] = {"started", "succeeded", "failed"};

/* client:drain_events() -> { event, ... }, dropped */
static int
client_drain_events (lua_State *L)
{
   lclient_t *c = xdbtx_check_client (L, 1);
   uint32_t dropped = 0;
   xdbtx_event_t *list = xdbtx_pool_drain (c->pool, &dropped), *ev;
   xdbtx_error_t err;
   int i = 0;

   /* A memory error while pushing would leak the list; the pushes below
    * raise for nothing else (decode failures are skipped). */
   lua_newtable (L);
   for (ev = list; ev; ev = ev->next) {
      lua_createtable (L, 0, 8);
      lua_pushstring (L, event_types[ev->type]);
      lua_setfield (L, -2, "type");
      lua_pushstring (L, ev->command_name);
      lua_setfield (L, -2, "command_name");
      if (ev->database_name[0]) {
         lua_pushstring (L, ev->database_name);
         lua_setfield (L, -2, "database_name");
      }
      lua_pushinteger (L, (lua_Integer) ev->request_id);
      lua_setfield (L, -2, "request_id");
      if (ev->type != XDBTX_EVENT_STARTED) {
         lua_pushinteger (L, (lua_Integer) ev->duration_us);
         lua_setfield (L, -2, "duration_us");
      }
      if (ev->type == XDBTX_EVENT_FAILED) {
         lua_pushstring (L, ev->error);
         lua_setfield (L, -2, "error");
      }
      if (ev->doc) {
         xdbtx_error_init (&err);
         if (xdbtx_codec_push (L, ev->doc, &err)) {
            lua_setfield (L, -2, ev->type == XDBTX_EVENT_STARTED ? "command" : "reply");
         }
         xdbtx_error_cleanup (&err);
      }
      lua_rawseti (L, -2, ++i);
   }
   xdbtx_events_free (list);
   lua_pushinteger (L, (lua_Integer) dropped);
   return 2;
}

/* tostring(client) -> "xdbtx.Client (<id>)" */
static int
client_tostring (lua_State *L)
{
   lua_pushfstring (L, "xdbtx.Client (%s)", xdbtx_pool_id (xdbtx_check_client (L, 1)->pool));
   return 1;
}

/* client == other -> true when both use the same pool */
static int
client_eq (lua_State *L)
{
   lclient_t *a = luaL_testudata (L, 1, XDBTX_CLIENT_MT);
   lclient_t *b = luaL_testudata (L, 2, XDBTX_CLIENT_MT);

   lua_pushboolean (L, a && b && a->pool == b->pool);
   return 1;
}

/* ---- misc --------------------------------------------------------------- */

/* core.now() -> seconds (monotonic, float) */
static int
l_now (lua_State *L)
{
   struct timespec ts;

   clock_gettime (CLOCK_MONOTONIC, &ts);
   lua_pushnumber (L, (lua_Number) ts.tv_sec + (lua_Number) ts.tv_nsec / 1e9);
   return 1;
}

/* core.sleep(seconds): block this thread (the Lua layer's retry backoff
 * outside OpenResty, where ngx.sleep is used instead). */
static int
l_sleep (lua_State *L)
{
   lua_Number secs = luaL_checknumber (L, 1);
   struct timespec ts;

   luaL_argcheck (L, secs >= 0 && secs <= 3600, 1, "seconds must be in [0, 3600]");
   ts.tv_sec = (time_t) secs;
   ts.tv_nsec = (long) ((secs - (lua_Number) ts.tv_sec) * 1e9);
   while (nanosleep (&ts, &ts) != 0) {
   }
   return 0;
}

/* core.mongoc_version() -> string */
static int
l_mongoc_version (lua_State *L)
{
   lua_pushstring (L, mongoc_get_version ());
   return 1;
}

__attribute__ ((visibility ("default"))) int
luaopen_xdbtx_core (lua_State *L)
{
   static const luaL_Reg client_methods[] = {
      {"id", client_id},
      {"uri", client_uri},
      {"collection", client_collection},
      {"start_session", client_start_session},
      {"command", client_command},
      {"topology", client_topology},
      {"monitor", client_monitor},
      {"drain_events", client_drain_events},
      {NULL, NULL},
   };
   static const luaL_Reg funcs[] = {
      {"client", l_client},
      {"now", l_now},
      {"sleep", l_sleep},
      {"mongoc_version", l_mongoc_version},
      {NULL, NULL},
   };

   xdbtx_init ();
   if (luaL_newmetatable (L, XDBTX_SCRATCH_MT)) {
      lua_pushcfunction (L, scratch_gc);
      lua_setfield (L, -2, "__gc");
   }
   lua_pop (L, 1);
   if (luaL_newmetatable (L, XDBTX_CLIENT_MT)) {
      luaL_newlib (L, client_methods);
      lua_setfield (L, -2, "__index");
      lua_pushcfunction (L, client_tostring);
      lua_setfield (L, -2, "__tostring");
      lua_pushcfunction (L, client_eq);
      lua_setfield (L, -2, "__eq");
      lua_pushliteral (L, XDBTX_CLIENT_MT);
      lua_setfield (L, -2, "__name");
   }
   lua_pop (L, 1);
   xdbtx_open_session (L);
   xdbtx_open_collection (L);

   luaL_newlib (L, funcs);
   xdbtx_lua_open_error (L, -1);
   xdbtx_codec_open (L, -1);
   return 1;
}
