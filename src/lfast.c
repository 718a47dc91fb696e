/*
 * lfast.c - the usual call of a Lua Collection method in one C step (Lua
 * 5.4). core.fast_method wraps a method of lua/xdbtx/collection.lua in a C
 * closure that does the common call itself (no options, no hooks, no
 * listener, no json_null, and the running context's own Session for the
 * client or no context) and calls the core method directly, saving a Lua
 * call, a context lookup in Lua and a coroutine.running() per operation.
 * Every other call goes to the Lua method, which stays the one description
 * of the semantics. Under LuaJIT there is no fast_method: the JIT compiles
 * the Lua methods, and without lua_callk a hook could not yield.
 */
#include "lbind.h"

#if LUA_VERSION_NUM >= 504

typedef struct {
   lua_CFunction impl; /* the core Collection method */
   int arity;          /* arguments before opts: 1 (filter|doc) or 2 */
} fast_t;

/* Upvalues of a fast method: the fixed ones, then the field names it
 * reads, interned once (a raw read with an interned key skips the lookup
 * of the C string that lua_getfield makes on every call). */
enum {
   UP_INFO = 1,  /* fast_t */
   UP_SLOW,      /* the Lua method */
   UP_MT,        /* the Lua Collection metatable */
   UP_CONTEXTS,  /* coroutine -> context (xdbtx.context) */
   UP_LISTENERS, /* client id -> command listeners (xdbtx.monitor) */
   UP_HOOK,      /* the hook kind, or nil */
   K_HOOKS,      /* the keys, in the order of l_fast_method's names[] */
   K_N,
   K_CLIENT,
   K_ID,
   K_JSON_NULL,
   K_CID,
   K_SESSION,
   K_SESSIONS,
   K_TXN_ENDED,
   K_CORE,
   UP_COUNT = K_CORE
};

/* Push t[key] (t at an absolute index), without metamethods; -> its type. */
static int
raw (lua_State *L, int t, int key)
{
   lua_pushvalue (L, lua_upvalueindex (key));
   return lua_rawget (L, t);
}

static int
slow_done (lua_State *L, int status, lua_KContext ctx)
{
   (void) status;
   (void) ctx;
   return lua_gettop (L);
}

/* Call the Lua method with the arguments as they are (1 .. n). */
static int
slow (lua_State *L, int n)
{
   lua_settop (L, n);
   lua_pushvalue (L, lua_upvalueindex (UP_SLOW));
   lua_insert (L, 1);
   lua_callk (L, n, LUA_MULTRET, 0, slow_done);
   return lua_gettop (L);
}

/* -> true with the core session (or nil) pushed, as context.lua's ambient()
 * finds it for the client whose id is at `cid` in the plain case: no
 * context, or one holding a Session for the client whose transaction the
 * body did not end. Pushes nothing when false. Fields are read raw: a
 * context's cid, session and sessions and a Session's _txn_ended and _core
 * are its own fields where they matter (a field found nowhere falls back
 * to the Lua method, which looks in the metatables too). */
static bool
push_ambient (lua_State *L, int cid)
{
   int top = lua_gettop (L), ctx = top + 1;

   lua_pushthread (L);
   if (lua_rawget (L, lua_upvalueindex (UP_CONTEXTS)) == LUA_TNIL) {
      return true; /* no context: the nil on top is the session */
   }
   raw (L, ctx, K_CID);
   if (lua_rawequal (L, -1, cid)) {
      raw (L, ctx, K_SESSION);
   } else if (raw (L, ctx, K_SESSIONS) == LUA_TTABLE) {
      lua_pushvalue (L, cid);
      lua_gettable (L, -2);
   }
   /* top: the Lua Session, false (saga mode) or nil (not part of it) */
   if (lua_type (L, -1) != LUA_TTABLE || raw (L, lua_gettop (L), K_TXN_ENDED) != LUA_TBOOLEAN ||
       lua_toboolean (L, -1) || raw (L, lua_gettop (L) - 1, K_CORE) != LUA_TUSERDATA) {
      lua_settop (L, top);
      return false;
   }
   lua_copy (L, -1, ctx);
   lua_settop (L, ctx);
   return true;
}

static int
fast_method (lua_State *L)
{
   const fast_t *f = lua_touserdata (L, lua_upvalueindex (UP_INFO));
   int n = f->arity + 2; /* self, the arguments, opts */
   int client = n + 1;

   lua_settop (L, n);
   if (!lua_isnil (L, n) || !lua_getmetatable (L, 1)) {
      return slow (L, n);
   }
   if (!lua_rawequal (L, -1, lua_upvalueindex (UP_MT))) {
      return slow (L, n);
   }
   lua_pop (L, 1);
   if (!lua_isnil (L, lua_upvalueindex (UP_HOOK))) {
      /* registered hooks of any kind: the Lua method sorts them out */
      if (raw (L, 1, K_HOOKS) != LUA_TTABLE || raw (L, n + 1, K_N) != LUA_TNUMBER ||
          lua_tonumber (L, -1) > 0) {
         return slow (L, n);
      }
      lua_settop (L, n);
   }
   if (raw (L, 1, K_CLIENT) != LUA_TTABLE || raw (L, client, K_ID) == LUA_TNIL) {
      return slow (L, n);
   }
   lua_pushvalue (L, client + 1);
   if (lua_rawget (L, lua_upvalueindex (UP_LISTENERS)) != LUA_TNIL) {
      return slow (L, n);
   }
   /* _json_null is the Client object's own field (client.lua sets it) */
   if (raw (L, client, K_JSON_NULL) != LUA_TNIL && lua_toboolean (L, -1)) {
      return slow (L, n);
   }
   lua_settop (L, client + 1);
   if (!push_ambient (L, client + 1)) {
      return slow (L, n);
   }
   /* stack: self, args.., nil, client, client id, core session: make it
    * core collection, core session, args.., nil */
   if (raw (L, 1, K_CORE) != LUA_TUSERDATA) {
      return slow (L, n);
   }
   lua_replace (L, 1);
   lua_replace (L, client);
   lua_settop (L, client);
   lua_insert (L, 2);
   return f->impl (L);
}

/* core.fast_method(name, arity, slow, Collection, contexts, listeners,
 * hook) -> the C method (see the top of this file). */
static int
l_fast_method (lua_State *L)
{
   static const char *const names[] = {"_hooks", "n", "_client", "_id", "_json_null",
                                       "cid", "session", "sessions", "_txn_ended", "_core"};
   const char *name = luaL_checkstring (L, 1);
   int arity = (int) luaL_checkinteger (L, 2);
   size_t i;
   fast_t *f;

   (void) sizeof (char[sizeof names / sizeof names[0] == UP_COUNT - UP_HOOK ? 1 : -1]);
   luaL_checktype (L, 3, LUA_TFUNCTION);
   luaL_checktype (L, 4, LUA_TTABLE);
   luaL_checktype (L, 5, LUA_TTABLE);
   luaL_checktype (L, 6, LUA_TTABLE);
   luaL_argcheck (L, arity == 1 || arity == 2, 2, "arity must be 1 or 2");
   lua_settop (L, 7);
   luaL_getmetatable (L, XDBTX_COLLECTION_MT);
   lua_getfield (L, -1, "__index");
   lua_getfield (L, -1, name);
   f = lua_newuserdatauv (L, sizeof *f, 0);
   f->impl = lua_tocfunction (L, -2);
   f->arity = arity;
   if (!f->impl || lua_getupvalue (L, -2, 1)) {
      return luaL_error (L, "fast_method: the core Collection has no plain C method '%s'", name);
   }
   lua_replace (L, 1); /* info, slow, mt, contexts, listeners, hook */
   lua_remove (L, 2);
   lua_settop (L, UP_HOOK);
   for (i = 0; i < sizeof names / sizeof names[0]; i++) {
      lua_pushstring (L, names[i]);
   }
   lua_pushcclosure (L, fast_method, UP_COUNT);
   return 1;
}

void
xdbtx_open_fast (lua_State *L)
{
   lua_pushcfunction (L, l_fast_method);
   lua_setfield (L, -2, "fast_method");
}

#else

void
xdbtx_open_fast (lua_State *L)
{
   (void) L;
}

#endif
