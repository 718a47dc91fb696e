/*
 * codec_json.c - MongoDB Extended JSON through libbson: xdbtx.to_json
 * encodes the value with the codec then lets libbson write relaxed or
 * canonical JSON; xdbtx.from_json parses with libbson and decodes the
 * result with the codec. A value that is not a document travels wrapped as
 * { "v": value } and is unwrapped on the way out.
 */
#include <string.h>

#include "codec.h"

/* xdbtx.to_json(v, {mode = "relaxed" | "canonical"}) -> MongoDB Extended
 * JSON. A document gives an object; any other value is written as it would
 * appear inside one (an array gives [...], a string "...", and so on). */
static int
f_to_json (lua_State *L)
{
   bson_t b;
   xdbtx_error_t err;
   bool canonical = false, doc, ok;
   char *json;
   size_t len;

   if (lua_isnone (L, 1)) {
      return codec_argerror (L, "xdbtx.to_json", "expected a value, got no value");
   }
   if (!lua_isnoneornil (L, 2)) {
      const char *mode;
      if (!lua_istable (L, 2)) {
         return codec_arg_expected (L, 2, "xdbtx.to_json", "an options table as argument 2");
      }
      lua_getfield (L, 2, "mode");
      mode = lua_type (L, -1) == LUA_TSTRING ? lua_tostring (L, -1) : NULL;
      if (mode && strcmp (mode, "canonical") == 0) {
         canonical = true;
      } else if (!lua_isnil (L, -1) && !(mode && strcmp (mode, "relaxed") == 0)) {
         return codec_arg_expected (L, -1, "xdbtx.to_json", "mode \"relaxed\" or \"canonical\"");
      }
      lua_pop (L, 1);
   }
   doc = lua_type (L, 1) == LUA_TTABLE && strcmp (codec_table_kind (L, 1), "document") == 0;
   xdbtx_error_init (&err);
   bson_init (&b);
   ok = doc ? xdbtx_codec_encode (L, 1, &b, &err) : xdbtx_codec_append (L, 1, &b, "v", 1, &err);
   if (!ok) {
      bson_destroy (&b);
      return xdbtx_lua_raise (L, &err);
   }
   json = canonical ? bson_as_canonical_extended_json (&b, &len)
                    : bson_as_relaxed_extended_json (&b, &len);
   bson_destroy (&b);
   if (!json) {
      return codec_raise (L, "encode", "xdbtx.to_json: libbson could not convert the value");
   }
   if (doc) {
      lua_pushlstring (L, json, len);
   } else if (len >= 11 && strncmp (json, "{ \"v\" : ", 8) == 0) {
      lua_pushlstring (L, json + 8, len - 10); /* strip { "v" : ... }: 8 + value + 2 bytes */
   } else {
      lua_pushlstring (L, json, len);
   }
   bson_free (json);
   return 1;
}

/* xdbtx.from_json(s, opts?) -> value (a document gives a table; "[...]"
 * an array, any other JSON value that value). opts as for xdbtx.decode:
 * ordered, exact, json_null (JSON null -> xdbtx.json_null). */
static int
f_from_json (lua_State *L)
{
   size_t n, i = 0;
   const char *s = codec_check_lstring (L, 1, &n, "xdbtx.from_json", "a JSON string");
   unsigned flags = codec_decode_flags (L, 2, "xdbtx.from_json");
   bson_error_t error;
   bson_t b;
   xdbtx_error_t err;
   bool wrapped;

   while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
      i++;
   }
   wrapped = i == n || s[i] != '{';
   if (wrapped) {
      lua_pushliteral (L, "{\"v\":");
      lua_pushvalue (L, 1);
      lua_pushliteral (L, "}");
      lua_concat (L, 3);
      s = lua_tolstring (L, -1, &n);
   }
   if (!bson_init_from_json (&b, s, (ssize_t) n, &error)) {
      return codec_raise (L, "decode", "xdbtx.from_json: %s", error.message);
   }
   xdbtx_error_init (&err);
   if (!xdbtx_codec_push_opts (L, &b, flags, &err)) {
      bson_destroy (&b);
      return xdbtx_lua_raise (L, &err);
   }
   bson_destroy (&b);
   if (wrapped) {
      lua_getfield (L, -1, "v");
   }
   return 1;
}

/* Register xdbtx.to_json and xdbtx.from_json. */
void
codec_open_json (lua_State *L, int module_idx)
{
   static const luaL_Reg funcs[] = {
      {"to_json", f_to_json},
      {"from_json", f_from_json},
      {NULL, NULL},
   };

   module_idx = lua_absindex (L, module_idx);
   lua_pushvalue (L, module_idx);
   luaL_setfuncs (L, funcs, 0);
   lua_pop (L, 1);
}
