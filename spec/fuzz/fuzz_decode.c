/*
 * fuzz_decode.c - libFuzzer harness: arbitrary bytes through the decoder.
 *
 * Each input goes to xdbtx.decode (plain, and {exact = true}) in a Lua 5.4
 * state, and straight to xdbtx_codec_push_opts when libbson accepts it as a
 * document (flags 0, or exact + json_null for odd sizes). Whatever decodes is encoded again (xdbtx_codec_encode and
 * to_json), so the encoder also sees hostile shapes. Any crash, sanitizer
 * report or leak fails the run; errors raised by the codec are expected.
 * Only this harness links liblua (the module never does). Built and run by
 * scripts/fuzz.
 */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/lxdbtx.h"

static lua_State *L;

static void
setup (void)
{
   L = luaL_newstate ();
   luaL_openlibs (L);
   lua_newtable (L);
   xdbtx_lua_open_error (L, -1);
   xdbtx_codec_open (L, -1);
   lua_setglobal (L, "x");
}

/* decode(bytes, opts) then encode and to_json what came out */
static void
through_lua (const uint8_t *data, size_t size, const char *opts)
{
   static const char *code =
      "local x, b, opts = ...\n"
      "local ok, t = pcall(x.decode, b, opts)\n"
      "if not ok then assert(x.is_error(t)) return end\n"
      "local ok2, e = pcall(x.encode, t)\n"
      "if not ok2 then assert(x.is_error(e)) end\n"
      "pcall(x.to_json, t, { mode = 'canonical' })\n";
   static int ref = LUA_NOREF;

   if (ref == LUA_NOREF) {
      if (luaL_loadstring (L, code) != LUA_OK) {
         abort ();
      }
      ref = luaL_ref (L, LUA_REGISTRYINDEX);
   }
   lua_rawgeti (L, LUA_REGISTRYINDEX, ref);
   lua_getglobal (L, "x");
   lua_pushlstring (L, (const char *) data, size);
   if (opts) {
      lua_newtable (L);
      lua_pushboolean (L, 1);
      lua_setfield (L, -2, opts);
   } else {
      lua_pushnil (L);
   }
   if (lua_pcall (L, 3, 0, 0) != LUA_OK) {
      /* an assert above failed: a non-xdbtx error escaped the codec */
      abort ();
   }
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
   bson_t doc;
   xdbtx_error_t err;

   if (!L) {
      setup ();
   }
   through_lua (data, size, NULL);
   through_lua (data, size, "exact");

   if (bson_init_static (&doc, data, size)) {
      xdbtx_error_init (&err);
      unsigned flags = (size & 1) ? XDBTX_DECODE_EXACT | XDBTX_DECODE_JSON_NULL : 0;
      if (xdbtx_codec_push_opts (L, &doc, flags, &err)) {
         bson_t out;
         xdbtx_error_t err2;
         bson_init (&out);
         xdbtx_error_init (&err2);
         xdbtx_codec_encode (L, -1, &out, &err2);
         bson_destroy (&out);
         xdbtx_error_cleanup (&err2);
         lua_pop (L, 1);
      }
      xdbtx_error_cleanup (&err);
   }
   lua_settop (L, 0);
   lua_gc (L, LUA_GCSTEP, 0);
   return 0;
}
