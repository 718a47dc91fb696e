/*
 * lcommit.c - core.commit_all: the coordinated commit of the transaction
 * tree, for the Lua layer.
 *
 * Checks every session first (nothing is sent when one is closed, repeated
 * or not a Session), runs xdbtx_commit_all (in C, so parallel commits run
 * from threads while no Lua state is touched), then builds one result table
 * per session. The items live in a scratch-like box whose __gc frees them,
 * so a memory error while pushing the results leaks nothing.
 */
#include <string.h>

#include "lbind.h"

#define XDBTX_COMMITS_MT "xdbtx.commits"

typedef struct {
   xdbtx_commit_t *items;
   size_t n;
} lcommits_t;

static int
commits_gc (lua_State *L)
{
   lcommits_t *b = luaL_checkudata (L, 1, XDBTX_COMMITS_MT);

   xdbtx_commit_cleanup (b->items, b->n);
   bson_free (b->items);
   b->items = NULL;
   b->n = 0;
   return 0;
}

static const char *const state_names[] = {"pending", "committed", "failed", "unknown",
                                          "aborted"};

/* core.commit_all({ session, ... }, parallel, deadline) ->
 *    { { state = "committed"|"failed"|"unknown"|"aborted"|"pending", attempts = n,
 *        duration = seconds, error = Error|nil,
 *        retried = { Error, ... }|nil (each send that was sent again) }, ... }
 *    (in the order given) */
int
xdbtx_l_commit_all (lua_State *L)
{
   bool parallel = lua_toboolean (L, 2);
   lua_Number deadline = lua_tonumber (L, 3);
   lcommits_t *b;
   lsession_t *s;
   size_t n, i, j;

   if (lua_type (L, 1) != LUA_TTABLE) {
      return xdbtx_argerror (L, "commit_all", "sessions must be a list, got %s",
                             luaL_typename (L, 1));
   }
   if (lua_type (L, 3) != LUA_TNUMBER || deadline != deadline) {
      return xdbtx_argerror (L, "commit_all", "deadline must be a number of seconds");
   }
   lua_settop (L, 3);
   n = lua_rawlen (L, 1);
   b = lua_newuserdatauv (L, sizeof *b, 0);
   b->items = NULL;
   b->n = 0;
   luaL_setmetatable (L, XDBTX_COMMITS_MT);
   b->items = bson_malloc0 ((n ? n : 1) * sizeof *b->items);
   for (i = 0; i < n; i++) {
      xdbtx_error_init (&b->items[i].error);
   }
   b->n = n;
   for (i = 0; i < n; i++) {
      xdbtx_error_t err;

      lua_rawgeti (L, 1, (int) (i + 1));
      s = xdbtx_testudata (L, -1, XDBTX_BOX_SESSION);
      if (!s) {
         return xdbtx_argerror (L, "commit_all", "sessions[%d] must be a Session, got %s",
                                (int) (i + 1), luaL_typename (L, -1));
      }
      xdbtx_error_init (&err);
      if (!xdbtx_session_usable (s->s, &err)) {
         xdbtx_error_prefix (&err, "commit_all: sessions[%d]", (int) (i + 1));
         return xdbtx_lua_raise (L, &err);
      }
      for (j = 0; j < i; j++) {
         if (b->items[j].session == s->s) {
            return xdbtx_argerror (L, "commit_all", "sessions[%d] is sessions[%d] again",
                                   (int) (i + 1), (int) (j + 1));
         }
      }
      b->items[i].session = s->s;
      lua_pop (L, 1);
   }
   xdbtx_commit_all (b->items, n, parallel, (double) deadline);
   lua_createtable (L, (int) n, 0);
   for (i = 0; i < n; i++) {
      xdbtx_commit_t *it = &b->items[i];

      lua_createtable (L, 0, 4);
      lua_pushstring (L, state_names[it->state]);
      lua_setfield (L, -2, "state");
      lua_pushinteger (L, it->attempts);
      lua_setfield (L, -2, "attempts");
      lua_pushnumber (L, (lua_Number) (it->finished - it->started));
      lua_setfield (L, -2, "duration");
      if (it->state == XDBTX_COMMIT_FAILED || it->state == XDBTX_COMMIT_UNKNOWN) {
         xdbtx_lua_push_error (L, &it->error);
         lua_setfield (L, -2, "error");
      }
      if (it->n_retried > 0) {
         lua_createtable (L, it->n_retried, 0);
         for (j = 0; j < (size_t) it->n_retried; j++) {
            xdbtx_lua_push_error (L, &it->retried[j]);
            lua_rawseti (L, -2, (int) (j + 1));
         }
         lua_setfield (L, -2, "retried");
      }
      lua_rawseti (L, -2, (int) (i + 1));
   }
   lua_pushcfunction (L, commits_gc);
   lua_pushvalue (L, 4);
   lua_call (L, 1, 0);
   return 1;
}

void
xdbtx_open_commit (lua_State *L)
{
   if (luaL_newmetatable (L, XDBTX_COMMITS_MT)) {
      lua_pushcfunction (L, commits_gc);
      lua_setfield (L, -2, "__gc");
   }
   lua_pop (L, 1);
}
