/* binding.c - placeholder until the binding lands (issue 4). */
#include "lxdbtx.h"

__attribute__ ((visibility ("default"))) int
luaopen_xdbtx_core (lua_State *L)
{
   lua_newtable (L);
   xdbtx_lua_open_error (L, -1);
   xdbtx_codec_open (L, -1);
   return 1;
}
