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
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lbind.h"

/* ---- shared helpers ----------------------------------------------------- */

int
xdbtx_argerror (lua_State *L, const char *fname, const char *fmt, ...)
{
   char msg[512];
   va_list ap;

   va_start (ap, fmt);
   vsnprintf (msg, sizeof msg, fmt, ap);
   va_end (ap);
   return xdbtx_lua_raisef (L, "argument", "%s: %s", fname, msg);
}

const char *
xdbtx_checkstring (lua_State *L, int idx, const char *fname, const char *what)
{
   size_t len;
   const char *s;

   if (lua_type (L, idx) != LUA_TSTRING) {
      xdbtx_argerror (L, fname, "%s must be a string, got %s", what, luaL_typename (L, idx));
   }
   s = lua_tolstring (L, idx, &len);
   if (strlen (s) != len) {
      xdbtx_argerror (L, fname, "%s contains a NUL byte at offset %d: refused (it would be cut there)",
                      what, (int) strlen (s));
   }
   return s;
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
      xdbtx_argerror (L, fname, "%s must be a table, got %s", what, luaL_typename (L, idx));
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

int
xdbtx_push_reply (lua_State *L, bson_t *reply)
{
   xdbtx_error_t err;
   bool ok;

   xdbtx_error_init (&err);
   ok = xdbtx_codec_push (L, reply, &err);
   bson_destroy (reply);
   if (!ok) {
      return xdbtx_lua_raise (L, &err);
   }
   return 1;
}

void
xdbtx_reclaim (lua_State *L, xdbtx_pool_t *pool)
{
   if (xdbtx_pool_exhausted (pool)) {
      lua_gc (L, LUA_GCCOLLECT, 0);
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

void *
xdbtx_testudata (lua_State *L, int idx, int kind)
{
   static const size_t size[XDBTX_BOX_KINDS] = {
      sizeof (lclient_t), sizeof (lcollection_t), sizeof (lsession_t), sizeof (lcursor_t)};
   void *p = lua_touserdata (L, idx);
   uint64_t tag;

   /* a light userdata has no length: it never gets to the memcpy */
   if (!p || lua_rawlen (L, idx) != size[kind]) {
      return NULL;
   }
   memcpy (&tag, p, sizeof tag);
   return tag == XDBTX_BOX_TAG (kind) ? p : NULL;
}

lclient_t *
xdbtx_check_client (lua_State *L, int idx)
{
   lclient_t *c = xdbtx_testudata (L, idx, XDBTX_BOX_CLIENT);

   if (!c) {
      xdbtx_argerror (L, "client method", "expected an xdbtx.Client as self, got %s",
                      luaL_typename (L, idx));
   }
   return c;
}

void
xdbtx_add_methods (lua_State *L, const char *mt, const luaL_Reg *regs)
{
   luaL_getmetatable (L, mt);
   lua_getfield (L, -1, "__index");
   luaL_setfuncs (L, regs, 0);
   lua_pop (L, 2);
}

/* ---- scratch box -------------------------------------------------------- */

/* A document buffer the state's box keeps for its next call (larger ones
 * go back to the allocator). */
#define XDBTX_SCRATCH_KEEP 65536

void
xdbtx_scratch_free (lscratch_t *sc)
{
   size_t i;

   /* every call frees its box twice (once done, and when the box closes):
    * what is already empty costs a test, not a library call */
   for (i = 0; i < XDBTX_SCRATCH_DOCS; i++) {
      bson_t *d = sc->doc[i];
      if (!d) {
         continue;
      }
      if (sc->cached && d->len <= XDBTX_SCRATCH_KEEP) {
         if (d->len > 5) {
            bson_reinit (d);
         }
         continue;
      }
      bson_destroy (d);
      sc->doc[i] = NULL;
   }
   if (sc->many) {
      for (i = 0; i < sc->nmany; i++) {
         bson_destroy (sc->many[i]);
      }
      bson_free (sc->many);
      sc->many = NULL;
      sc->nmany = sc->capmany = 0;
   }
   if (sc->prefs) {
      mongoc_read_prefs_destroy (sc->prefs);
      sc->prefs = NULL;
   }
   if (sc->fam) {
      mongoc_find_and_modify_opts_destroy (sc->fam);
      sc->fam = NULL;
   }
   if (sc->txn) {
      mongoc_transaction_opts_destroy (sc->txn);
      sc->txn = NULL;
   }
   if (sc->sopts) {
      mongoc_session_opts_destroy (sc->sopts);
      sc->sopts = NULL;
   }
   if (sc->defaults.read_concern || sc->defaults.write_concern || sc->defaults.read_prefs) {
      xdbtx_defaults_cleanup (&sc->defaults);
   }
   if (sc->mem) {
      bson_free (sc->mem);
      sc->mem = NULL;
   }
}

/* The box a scratch metamethod got. Only the binding's own boxes carry
 * the metatable, so a cheap check of size and mark does (it runs at the
 * end of every call: the usual luaL_checkudata costs a string lookup). */
static lscratch_t *
scratch_arg (lua_State *L)
{
   lscratch_t *sc = lua_touserdata (L, 1);

   if (!sc || lua_rawlen (L, 1) != sizeof *sc || sc->magic != XDBTX_SCRATCH_MAGIC) {
      luaL_argerror (L, 1, "expected a scratch box");
   }
   return sc;
}

/* __gc of a scratch box: frees what a call that raised left behind */
static int
scratch_gc (lua_State *L)
{
   lscratch_t *sc = scratch_arg (L);

   sc->cached = false;
   xdbtx_scratch_free (sc);
   return 0;
}

/* __close of a scratch box: the call that held it returned or raised (an
 * error object as the second argument: then nothing is kept, as a raise
 * may have left a document half built) */
static int
scratch_close (lua_State *L)
{
   lscratch_t *sc = scratch_arg (L);
   bool keep = sc->cached;

   if (!lua_isnoneornil (L, 2)) {
      sc->cached = false;
   }
   xdbtx_scratch_free (sc);
   sc->cached = keep;
   sc->busy = false;
   return 0;
}

#if LUA_VERSION_NUM >= 504
static const char scratch_key = 0; /* registry: the state's cached box */
#endif

static lscratch_t *
scratch_box (lua_State *L)
{
   lscratch_t *sc = lua_newuserdatauv (L, sizeof *sc, 0);

   memset (sc, 0, sizeof *sc);
   sc->magic = XDBTX_SCRATCH_MAGIC;
   luaL_setmetatable (L, XDBTX_SCRATCH_MT);
   return sc;
}

lscratch_t *
xdbtx_scratch_new (lua_State *L)
{
#if LUA_VERSION_NUM >= 504
   lscratch_t *sc;

   lua_rawgetp (L, LUA_REGISTRYINDEX, &scratch_key);
   sc = lua_touserdata (L, -1);
   if (!sc) {
      lua_pop (L, 1);
      sc = scratch_box (L);
      sc->cached = true;
      lua_pushvalue (L, -1);
      lua_rawsetp (L, LUA_REGISTRYINDEX, &scratch_key);
   } else if (sc->busy) {
      lua_pop (L, 1);
      sc = scratch_box (L);
   }
   sc->busy = true;
   lua_toclose (L, -1);
   return sc;
#else
   return scratch_box (L);
#endif
}

bson_t *
xdbtx_scratch_doc (lscratch_t *sc, int i)
{
   if (!sc->doc[i]) {
      sc->doc[i] = bson_new ();
   }
   return sc->doc[i];
}

/* ---- Client ------------------------------------------------------------- */

/* core.client(uri, opts) -> Client */
static int
l_client (lua_State *L)
{
   const char *uri = xdbtx_checkstring (L, 1, "client", "uri");
   xdbtx_pool_opts_t o;
   xdbtx_error_t err;
   lscratch_t *sc;
   lclient_t *c;

   memset (&o, 0, sizeof o);
   lua_settop (L, 2);
   sc = xdbtx_scratch_new (L);
   /* app_name stays valid: it is a string inside the options table; the
    * defaults live in the scratch box until the registry has copied them. */
   xdbtx_parse_client_opts (L, 2, "client", &o, sc);
   xdbtx_error_init (&err);
   c = lua_newuserdatauv (L, sizeof *c, 0);
   c->tag = XDBTX_BOX_TAG (XDBTX_BOX_CLIENT);
   c->pool = NULL;
   luaL_setmetatable (L, XDBTX_CLIENT_MT);
   if (!xdbtx_pool_get (uri, &o, &c->pool, &err)) {
      xdbtx_scratch_free (sc);
      return xdbtx_lua_raise (L, &err);
   }
   xdbtx_scratch_free (sc);
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

/* client:collection(db, name, opts) -> Collection; also
 * client:collection("db.name", opts). opts: the collection's defaults. */
static int
client_collection (lua_State *L)
{
   const char *db, *dot, *name;
   lscratch_t *sc;
   int opts = 4;

   lua_settop (L, 4);
   xdbtx_check_client (L, 1);
   db = xdbtx_checkstring (L, 2, "collection", "database name");
   if (lua_isnil (L, 3) || lua_type (L, 3) == LUA_TTABLE) {
      opts = lua_isnil (L, 3) ? 4 : 3;
      dot = strchr (db, '.');
      if (!dot || dot == db || !dot[1]) {
         return xdbtx_argerror (L, "collection", "expected \"db.collection\", got \"%s\"", db);
      }
      name = dot + 1;
      lua_pushlstring (L, db, (size_t) (dot - db));
      db = lua_tostring (L, -1);
   } else {
      name = xdbtx_checkstring (L, 3, "collection", "collection name");
   }
   sc = xdbtx_scratch_new (L);
   xdbtx_parse_defaults (L, opts, "collection", sc);
   xdbtx_collection_push_new (L, 1, db, name, &sc->defaults);
   xdbtx_scratch_free (sc);
   return 1;
}

/* client:start_session(opts) -> Session */
static int
client_start_session (lua_State *L)
{
   lua_settop (L, 2);
   xdbtx_check_client (L, 1);
   return xdbtx_session_push_new (L, 1, 2);
}

/* The name of cmd when it is commitTransaction or abortTransaction (which,
 * sent in a session, would end its transaction where libmongoc and the
 * transaction loops cannot see it), else NULL. */
static const char *
ends_transaction (const bson_t *cmd)
{
   bson_iter_t it;
   const char *k;

   if (!bson_iter_init (&it, cmd) || !bson_iter_next (&it)) {
      return NULL;
   }
   k = bson_iter_key (&it);
   return strcmp (k, "commitTransaction") == 0  ? "commitTransaction"
          : strcmp (k, "abortTransaction") == 0 ? "abortTransaction"
                                                 : NULL;
}

int
xdbtx_run_command (lua_State *L, xdbtx_pool_t *pool, int s_idx, const char *db, int cmd_idx,
                   int opts_idx)
{
   xdbtx_session_t *s = xdbtx_check_session (L, s_idx, "command");
   lscratch_t *sc = xdbtx_scratch_new (L);
   xdbtx_error_t err;
   bson_t reply;
   bson_t *cmd = xdbtx_scratch_doc (sc, 0), *opts = xdbtx_scratch_doc (sc, 1);
   const char *ends;

   if (lua_type (L, cmd_idx) != LUA_TTABLE && lua_type (L, cmd_idx) != LUA_TUSERDATA) {
      return xdbtx_argerror (L, "command", "command must be a table, got %s",
                             luaL_typename (L, cmd_idx));
   }
   xdbtx_encode_ordered (L, cmd_idx, cmd, "command", "command");
   if (s && (ends = ends_transaction (cmd))) { /* a literal: outlives the scratch */
      xdbtx_scratch_free (sc);
      return xdbtx_argerror (L, "command",
                             "%s ends the transaction behind the session's back: call session:commit()"
                             " or session:abort() (a sandbox and a tree end theirs themselves)",
                             ends);
   }
   xdbtx_parse_opts (L, opts_idx, XDBTX_M_COMMAND, "command", opts, sc);
   if (!s) {
      xdbtx_reclaim (L, pool);
   }
   xdbtx_error_init (&err);
   if (!xdbtx_pool_command (pool, s, db, cmd, sc->prefs, opts, &reply, &err)) {
      bson_destroy (&reply);
      xdbtx_scratch_free (sc);
      return xdbtx_lua_raise (L, &err);
   }
   xdbtx_scratch_free (sc);
   return xdbtx_push_reply (L, &reply);
}

/* client:command(session|nil, db, cmd, opts) -> reply */
static int
client_command (lua_State *L)
{
   lclient_t *c = (lua_settop (L, 5), xdbtx_check_client (L, 1));
   const char *db = xdbtx_checkstring (L, 3, "command", "database name");

   return xdbtx_run_command (L, c->pool, 2, db, 4, 5);
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

/* client:pool_origin(make) -> pid, address | nil: the process that made this
 * client's libmongoc pool and the pool's address, or nil when this process
 * has none yet; make = true makes it now (no I/O). */
static int
client_pool_origin (lua_State *L)
{
   lclient_t *c = xdbtx_check_client (L, 1);
   xdbtx_error_t err;
   pid_t pid;
   const void *mpool;

   xdbtx_error_init (&err);
   if (!xdbtx_pool_origin (c->pool, lua_toboolean (L, 2), &pid, &mpool, &err)) {
      return xdbtx_lua_raise (L, &err);
   }
   if (!mpool) {
      lua_pushnil (L);
      return 1;
   }
   lua_pushinteger (L, (lua_Integer) pid);
   lua_pushfstring (L, "%p", mpool);
   return 2;
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
         /* the same document as BSON, for listeners that need its key order */
         lua_pushlstring (L, (const char *) bson_get_data (ev->doc), ev->doc->len);
         lua_setfield (L, -2, "bson");
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
   lclient_t *a = xdbtx_testudata (L, 1, XDBTX_BOX_CLIENT);
   lclient_t *b = xdbtx_testudata (L, 2, XDBTX_BOX_CLIENT);

   lua_pushboolean (L, a && b && a->pool == b->pool);
   return 1;
}

/* ---- misc --------------------------------------------------------------- */

/* core.now() -> seconds (monotonic, float) */
static int
l_now (lua_State *L)
{
   lua_pushnumber (L, (lua_Number) xdbtx_now ());
   return 1;
}

/* core.sleep(seconds): block this thread (the Lua layer's retry backoff
 * outside OpenResty, where ngx.sleep is used instead). */
static int
l_sleep (lua_State *L)
{
   lua_Number secs = lua_tonumber (L, 1);
   struct timespec ts;

   if (!(secs >= 0 && secs <= 3600)) {
      return xdbtx_argerror (L, "sleep", "seconds must be a number in [0, 3600], got %s",
                             lua_tostring (L, 1));
   }
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
      {"pool_origin", client_pool_origin},
      {"monitor", client_monitor},
      {"drain_events", client_drain_events},
      {NULL, NULL},
   };
   static const luaL_Reg funcs[] = {
      {"client", l_client},
      {"now", l_now},
      {"sleep", l_sleep},
      {"mongoc_version", l_mongoc_version},
      {"check_options", xdbtx_l_check_options},
      {"commit_all", xdbtx_l_commit_all},
      {NULL, NULL},
   };

   xdbtx_init ();
   if (luaL_newmetatable (L, XDBTX_SCRATCH_MT)) {
      lua_pushcfunction (L, scratch_gc);
      lua_setfield (L, -2, "__gc");
      lua_pushcfunction (L, scratch_close);
      lua_setfield (L, -2, "__close");
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
   xdbtx_open_commit (L);
   xdbtx_open_cursor (L);
   xdbtx_open_bulk (L);
   xdbtx_open_admin (L);

   luaL_newlib (L, funcs);
   xdbtx_lua_open_error (L, -1);
   xdbtx_codec_open (L, -1);
   xdbtx_open_fast (L);
   return 1;
}
