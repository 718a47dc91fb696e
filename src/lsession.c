/*
 * lsession.c - the Session userdata ("xdbtx.Session").
 *
 * A Session box owns one core session (which owns one pooled client) and
 * pins its Client in its user value. close() is the one idempotent ending
 * shared by __gc and __close: it aborts an open transaction (errors are
 * ignored), ends the session and gives the client back. Commit and abort
 * are single attempts; the retry loops belong to the Lua layer.
 */
#include <string.h>

#include "lbind.h"

static lsession_t *
check_box (lua_State *L, int idx)
{
   lsession_t *b = xdbtx_testudata (L, idx, XDBTX_BOX_SESSION);

   if (!b) {
      xdbtx_argerror (L, "session method", "expected an xdbtx.Session as self, got %s",
                      luaL_typename (L, idx));
   }
   return b;
}

/* The open session of the box at idx, or raise phase "state". */
static xdbtx_session_t *
check_open (lua_State *L, int idx)
{
   lsession_t *b = check_box (L, idx);
   xdbtx_error_t err;

   xdbtx_error_init (&err);
   if (!xdbtx_session_usable (b->s, &err)) {
      xdbtx_lua_raise (L, &err);
   }
   return b->s;
}

xdbtx_session_t *
xdbtx_check_session (lua_State *L, int idx, const char *fname)
{
   lsession_t *b;
   xdbtx_error_t err;

   if (lua_isnoneornil (L, idx) || (lua_isboolean (L, idx) && !lua_toboolean (L, idx))) {
      return NULL;
   }
   b = xdbtx_testudata (L, idx, XDBTX_BOX_SESSION);
   if (!b) {
      xdbtx_argerror (L, fname, "session must be an xdbtx.Session, nil or false, got %s",
                      luaL_typename (L, idx));
   }
   xdbtx_error_init (&err);
   if (!xdbtx_session_usable (b->s, &err)) {
      xdbtx_error_prefix (&err, "%s", fname);
      xdbtx_lua_raise (L, &err);
   }
   return b->s;
}

int
xdbtx_session_push_new (lua_State *L, int client_idx, int opts_idx)
{
   lclient_t *c = xdbtx_check_client (L, client_idx);
   lscratch_t *sc = NULL; /* only for options: without, nothing is allocated here */
   lsession_t *b;
   xdbtx_error_t err;

   client_idx = lua_absindex (L, client_idx);
   opts_idx = lua_absindex (L, opts_idx);
   if (!lua_isnoneornil (L, opts_idx)) {
      sc = xdbtx_scratch_new (L);
      xdbtx_parse_session_opts (L, opts_idx, "start_session", sc);
   }
   xdbtx_reclaim (L, c->pool);
   /* The box exists, closed, before the session does. */
   b = lua_newuserdatauv (L, sizeof *b, 1);
   b->tag = XDBTX_BOX_TAG (XDBTX_BOX_SESSION);
   b->s = NULL;
   luaL_setmetatable (L, XDBTX_SESSION_MT);
   xdbtx_pin (L, -1, client_idx);
   xdbtx_error_init (&err);
   b->s = xdbtx_session_new (c->pool, sc ? sc->sopts : NULL, &err);
   if (sc) {
      xdbtx_scratch_free (sc);
   }
   if (!b->s) {
      return xdbtx_lua_raise (L, &err);
   }
   return 1;
}

/* session:start_transaction(opts) -> session */
static int
session_start_transaction (lua_State *L)
{
   xdbtx_session_t *s = (lua_settop (L, 2), check_open (L, 1));
   lscratch_t *sc;
   xdbtx_error_t err;

   xdbtx_error_init (&err);
   if (lua_isnil (L, 2)) {
      /* no options: nothing to build */
      if (!xdbtx_session_start_transaction (s, NULL, &err)) {
         return xdbtx_lua_raise (L, &err);
      }
      lua_settop (L, 1);
      return 1;
   }
   sc = xdbtx_scratch_new (L);
   xdbtx_parse_txn_opts (L, 2, "start_transaction", sc);
   if (!xdbtx_session_start_transaction (s, sc->txn, &err)) {
      xdbtx_scratch_free (sc);
      return xdbtx_lua_raise (L, &err);
   }
   xdbtx_scratch_free (sc);
   lua_settop (L, 1);
   return 1;
}

/* session:commit() -> true */
static int
session_commit (lua_State *L)
{
   xdbtx_session_t *s = check_open (L, 1);
   xdbtx_error_t err;

   xdbtx_error_init (&err);
   if (!xdbtx_session_commit (s, &err)) {
      return xdbtx_lua_raise (L, &err);
   }
   lua_pushboolean (L, 1);
   return 1;
}

/* session:abort() -> true */
static int
session_abort (lua_State *L)
{
   xdbtx_session_t *s = check_open (L, 1);
   xdbtx_error_t err;

   xdbtx_error_init (&err);
   if (!xdbtx_session_abort (s, &err)) {
      return xdbtx_lua_raise (L, &err);
   }
   lua_pushboolean (L, 1);
   return 1;
}

/* session:in_transaction() -> boolean */
static int
session_in_transaction (lua_State *L)
{
   lua_pushboolean (L, xdbtx_session_in_transaction (check_box (L, 1)->s));
   return 1;
}

/* session:state() -> "none"|"starting"|"in_progress"|"committed"|"aborted"|"closed" */
static int
session_state (lua_State *L)
{
   lsession_t *b = check_box (L, 1);

   lua_pushstring (L, b->s ? xdbtx_session_state (b->s) : "closed");
   return 1;
}

/* session:client() -> Client */
static int
session_client (lua_State *L)
{
   check_box (L, 1);
   xdbtx_push_pinned (L, 1);
   return 1;
}

/* session:id() -> lsid table ({ id = <uuid> }) */
static int
session_id (lua_State *L)
{
   xdbtx_push_doc (L, xdbtx_session_lsid (check_open (L, 1)));
   return 1;
}

/* session:close() -> nil; also __gc and __close */
static int
session_close (lua_State *L)
{
   lsession_t *b = check_box (L, 1);
   xdbtx_session_t *s = b->s;

   b->s = NULL;
   xdbtx_session_destroy (s);
   return 0;
}

/* tostring(session) -> "xdbtx.Session (<state>)" */
static int
session_tostring (lua_State *L)
{
   lsession_t *b = check_box (L, 1);

   lua_pushfstring (L, "xdbtx.Session (%s)", b->s ? xdbtx_session_state (b->s) : "closed");
   return 1;
}

void
xdbtx_open_session (lua_State *L)
{
   static const luaL_Reg methods[] = {
      {"start_transaction", session_start_transaction},
      {"commit", session_commit},
      {"abort", session_abort},
      {"in_transaction", session_in_transaction},
      {"state", session_state},
      {"client", session_client},
      {"id", session_id},
      {"close", session_close},
      {NULL, NULL},
   };

   if (luaL_newmetatable (L, XDBTX_SESSION_MT)) {
      luaL_newlib (L, methods);
      lua_setfield (L, -2, "__index");
      lua_pushcfunction (L, session_close);
      lua_setfield (L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
      lua_pushcfunction (L, session_close);
      lua_setfield (L, -2, "__close");
#endif
      lua_pushcfunction (L, session_tostring);
      lua_setfield (L, -2, "__tostring");
      lua_pushliteral (L, XDBTX_SESSION_MT);
      lua_setfield (L, -2, "__name");
   }
   lua_pop (L, 1);
}
