/* codec.c - placeholder until the codec lands (issue 2). */
#include "lxdbtx.h"

bool
xdbtx_codec_encode (lua_State *L, int idx, bson_t *out, xdbtx_error_t *err)
{
   (void) L;
   (void) idx;
   (void) out;
   xdbtx_error_set (err, XDBTX_DOMAIN_CODEC, 0, "encode", "codec not built");
   return false;
}

bool
xdbtx_codec_append (lua_State *L, int idx, bson_t *out, const char *key, int keylen, xdbtx_error_t *err)
{
   (void) key;
   (void) keylen;
   return xdbtx_codec_encode (L, idx, out, err);
}

bool
xdbtx_codec_push (lua_State *L, const bson_t *doc, xdbtx_error_t *err)
{
   (void) L;
   (void) doc;
   xdbtx_error_set (err, XDBTX_DOMAIN_CODEC, 0, "decode", "codec not built");
   return false;
}

bool
xdbtx_codec_push_value (lua_State *L, const bson_value_t *v, xdbtx_error_t *err)
{
   (void) v;
   return xdbtx_codec_push (L, NULL, err);
}

void
xdbtx_codec_open (lua_State *L, int module_idx)
{
   (void) L;
   (void) module_idx;
}
