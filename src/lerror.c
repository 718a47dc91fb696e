/*
 * lerror.c - xdbtx.Error objects for Lua.
 *
 * An error is a plain table with the metatable "xdbtx.Error", so Lua code can
 * read and add fields (node, outcome) freely and `tostring` gives one line.
 * Built from a core xdbtx_error_t; labels come from the reply's errorLabels,
 * the one place MongoDB puts them.
 */
#include <string.h>

#include "lxdbtx.h"

static const char *
domain_name (uint32_t domain)
{
   switch (domain) {
   case MONGOC_ERROR_SERVER:
      return "server";
   case MONGOC_ERROR_WRITE_CONCERN:
      return "write_concern";
   case MONGOC_ERROR_STREAM:
      return "network";
   case MONGOC_ERROR_SERVER_SELECTION:
      return "server_selection";
   case MONGOC_ERROR_TRANSACTION:
      return "transaction";
   case MONGOC_ERROR_COMMAND:
      return "command";
   case XDBTX_DOMAIN_ARG:
      return "argument";
   case XDBTX_DOMAIN_CODEC:
      return "codec";
   case XDBTX_DOMAIN_STATE:
      return "state";
   case XDBTX_DOMAIN_TXN:
      return "transaction";
   case 0:
      return "xdbtx";
   default:
      return "client";
   }
}

/* labels = { [label] = true, ... } from reply.errorLabels */
static void
push_labels (lua_State *L, const bson_t *reply)
{
   bson_iter_t it, child;

   lua_newtable (L);
   if (reply && bson_iter_init_find (&it, reply, "errorLabels") &&
       BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &child)) {
      while (bson_iter_next (&child)) {
         if (BSON_ITER_HOLDS_UTF8 (&child)) {
            lua_pushboolean (L, 1);
            lua_setfield (L, -2, bson_iter_utf8 (&child, NULL));
         }
      }
   }
}

void
xdbtx_lua_push_error (lua_State *L, const xdbtx_error_t *err)
{
   xdbtx_error_t ignored;

   luaL_checkstack (L, 8, "xdbtx: error");
   lua_createtable (L, 0, 9);
   lua_pushinteger (L, err->code);
   lua_setfield (L, -2, "code");
   if (err->name[0]) {
      lua_pushstring (L, err->name);
      lua_setfield (L, -2, "name");
   }
   lua_pushstring (L, err->message);
   lua_setfield (L, -2, "message");
   lua_pushstring (L, domain_name (err->domain));
   lua_setfield (L, -2, "domain");
   if (err->phase[0]) {
      lua_pushstring (L, err->phase);
      lua_setfield (L, -2, "phase");
   }
   push_labels (L, err->reply);
   lua_setfield (L, -2, "labels");
   if (err->reply) {
      xdbtx_error_init (&ignored);
      if (xdbtx_codec_push (L, err->reply, &ignored)) {
         lua_setfield (L, -2, "reply");
      }
      xdbtx_error_cleanup (&ignored);
   }
   luaL_setmetatable (L, XDBTX_ERROR_MT);
}

int
xdbtx_lua_raise (lua_State *L, xdbtx_error_t *err)
{
   xdbtx_lua_push_error (L, err);
   xdbtx_error_cleanup (err);
   return lua_error (L);
}

/* The domain of an error the binding makes itself, from its phase. */
static uint32_t
domain_of_phase (const char *phase)
{
   if (strcmp (phase, "encode") == 0 || strcmp (phase, "decode") == 0) {
      return XDBTX_DOMAIN_CODEC;
   }
   if (strcmp (phase, "state") == 0 || strcmp (phase, "routing") == 0) {
      return XDBTX_DOMAIN_STATE;
   }
   return XDBTX_DOMAIN_ARG;
}

int
xdbtx_lua_raisef (lua_State *L, const char *phase, const char *fmt, ...)
{
   xdbtx_error_t err;
   va_list ap;

   xdbtx_error_init (&err);
   phase = phase ? phase : "argument";
   err.domain = domain_of_phase (phase);
   bson_strncpy (err.phase, phase, sizeof err.phase);
   va_start (ap, fmt);
   vsnprintf (err.message, sizeof err.message, fmt, ap);
   va_end (ap);
   return xdbtx_lua_raise (L, &err);
}

/* err:has_label(label) -> boolean */
static int
error_has_label (lua_State *L)
{
   const char *label;

   if (lua_type (L, 1) != LUA_TTABLE) {
      return xdbtx_lua_raisef (L, "argument", "has_label: expected an Error as self, got %s (did "
                               "you call it with '.' instead of ':'?)", luaL_typename (L, 1));
   }
   if (lua_type (L, 2) != LUA_TSTRING) {
      return xdbtx_lua_raisef (L, "argument", "has_label: label must be a string, got %s",
                               luaL_typename (L, 2));
   }
   label = lua_tostring (L, 2);
   lua_getfield (L, 1, "labels");
   if (!lua_istable (L, -1)) {
      lua_pushboolean (L, 0);
      return 1;
   }
   lua_getfield (L, -1, label);
   lua_pushboolean (L, lua_toboolean (L, -1));
   return 1;
}

/* tostring(err) -> "xdbtx.Error [phase] node: Name (code): message" */
static int
error_tostring (lua_State *L)
{
   luaL_Buffer b;

   luaL_checktype (L, 1, LUA_TTABLE);
   luaL_buffinit (L, &b);
   luaL_addstring (&b, "xdbtx.Error");
   lua_getfield (L, 1, "phase");
   if (lua_isstring (L, -1)) {
      luaL_addstring (&b, " [");
      luaL_addvalue (&b);
      luaL_addstring (&b, "]");
   } else {
      lua_pop (L, 1);
   }
   lua_getfield (L, 1, "node");
   if (lua_isstring (L, -1)) {
      luaL_addstring (&b, " ");
      luaL_addvalue (&b);
   } else {
      lua_pop (L, 1);
   }
   luaL_addstring (&b, ": ");
   lua_getfield (L, 1, "name");
   if (lua_isstring (L, -1)) {
      luaL_addvalue (&b);
      lua_getfield (L, 1, "code");
      if (lua_tointeger (L, -1) != 0) {
         luaL_addstring (&b, " (");
         luaL_addvalue (&b);
         luaL_addstring (&b, ")");
      } else {
         lua_pop (L, 1);
      }
      luaL_addstring (&b, ": ");
   } else {
      lua_pop (L, 1);
   }
   lua_getfield (L, 1, "message");
   if (lua_isstring (L, -1)) {
      luaL_addvalue (&b);
   } else {
      lua_pop (L, 1);
   }
   luaL_pushresult (&b);
   return 1;
}

/* core.error(fields) -> err: give a plain table the Error metatable, with
 * `labels` defaulting to an empty set. */
static int
error_new (lua_State *L)
{
   luaL_checktype (L, 1, LUA_TTABLE);
   lua_settop (L, 1);
   lua_getfield (L, 1, "labels");
   if (lua_isnil (L, -1)) {
      lua_newtable (L);
      lua_setfield (L, 1, "labels");
   }
   lua_pop (L, 1);
   luaL_setmetatable (L, XDBTX_ERROR_MT);
   return 1;
}

/* core.is_error(v) -> boolean */
static int
error_is (lua_State *L)
{
   int is = 0;

   if (lua_getmetatable (L, 1)) {
      luaL_getmetatable (L, XDBTX_ERROR_MT);
      is = lua_rawequal (L, -1, -2);
   }
   lua_pushboolean (L, is);
   return 1;
}

void
xdbtx_lua_open_error (lua_State *L, int module_idx)
{
   static const luaL_Reg methods[] = {
      {"has_label", error_has_label},
      {NULL, NULL},
   };

   module_idx = lua_absindex (L, module_idx);
   luaL_newmetatable (L, XDBTX_ERROR_MT);
   luaL_newlib (L, methods);
   lua_setfield (L, -2, "__index");
   lua_pushcfunction (L, error_tostring);
   lua_setfield (L, -2, "__tostring");
   lua_pushliteral (L, "xdbtx.Error");
   lua_setfield (L, -2, "__name");
   lua_setfield (L, module_idx, "Error");
   lua_pushcfunction (L, error_new);
   lua_setfield (L, module_idx, "error");
   lua_pushcfunction (L, error_is);
   lua_setfield (L, module_idx, "is_error");
}
