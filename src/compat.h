/*
 * compat.h - one source for Lua 5.4 and LuaJIT (Lua 5.1 ABI).
 *
 * Only the few 5.2+ functions the binding uses are mapped, each behind an
 * #ifndef so LuaJIT 2.1's own versions win. XDBTX_LUAJIT is set when building
 * against LuaJIT, whose numbers are doubles: int64 values beyond 2^53 then
 * travel as xdbtx.int64 userdata instead (see codec.c).
 */
#ifndef XDBTX_COMPAT_H
#define XDBTX_COMPAT_H

#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifdef LUA_LJDIR
#include <luajit.h>
#define XDBTX_LUAJIT 1
#endif

#if LUA_VERSION_NUM < 502
#ifndef lua_rawlen
#define lua_rawlen(L, i) lua_objlen (L, (i))
#endif
#ifndef luaL_newlib
#define luaL_newlib(L, l) (lua_newtable (L), luaL_setfuncs (L, (l), 0))
#endif
#define lua_getuservalue(L, i) lua_getfenv (L, (i))
#define lua_setuservalue(L, i) lua_setfenv (L, (i))
#define lua_newuserdatauv(L, sz, nuv) lua_newuserdata (L, (sz))
#define LUA_OK 0
#ifndef lua_absindex
#define lua_absindex(L, i) \
   (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop (L) + (i) + 1)
#endif
typedef size_t lua_Unsigned_compat;
#endif

#if LUA_VERSION_NUM >= 503
#define XDBTX_HAS_INTEGERS 1
#endif

/* lua_rawgetp / lua_rawsetp (5.2+) on every version: light-userdata keys,
 * as the registry entries found by address use them. */
static inline void
xdbtx_rawgetp (lua_State *L, int idx, const void *p)
{
#if LUA_VERSION_NUM >= 502
   lua_rawgetp (L, idx, p);
#else
   idx = lua_absindex (L, idx);
   lua_pushlightuserdata (L, (void *) (uintptr_t) p);
   lua_rawget (L, idx);
#endif
}

static inline void
xdbtx_rawsetp (lua_State *L, int idx, const void *p)
{
#if LUA_VERSION_NUM >= 502
   lua_rawsetp (L, idx, p);
#else
   idx = lua_absindex (L, idx);
   lua_pushlightuserdata (L, (void *) (uintptr_t) p);
   lua_insert (L, -2);
   lua_rawset (L, idx);
#endif
}

#endif /* XDBTX_COMPAT_H */
