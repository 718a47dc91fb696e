/*
 * lxdbtx.h - private header of the Lua binding (xdbtx.core).
 *
 * Shared by binding.c, codec.c and lerror.c; never installed. It turns core
 * errors (xdbtx_error_t) into Lua `xdbtx.Error` objects. Rule for every C
 * function that raises: free what it owns (bson_t, buffers) before calling
 * xdbtx_lua_raise, or keep it in a box that __gc/__close frees, because
 * lua_error does not return.
 */
#ifndef LXDBTX_H
#define LXDBTX_H

#include "compat.h"
#include "xdbtx.h"

#define XDBTX_ERROR_MT "xdbtx.Error"

/* Push a new xdbtx.Error table built from err (fields: code, name, message,
 * domain, labels (set: labels[l] = true), phase, reply (decoded table or
 * nil)). Does not release err. */
void xdbtx_lua_push_error (lua_State *L, const xdbtx_error_t *err);

/* Push the error made from err, release err (xdbtx_error_cleanup), raise it.
 * Never returns; written `return xdbtx_lua_raise (L, &err);` like luaL_error. */
int xdbtx_lua_raise (lua_State *L, xdbtx_error_t *err);

/* Raise an xdbtx.Error with a formatted message; its domain follows the
 * phase: "encode"/"decode" -> codec, "state"/"routing" -> state, anything
 * else -> argument. */
int xdbtx_lua_raisef (lua_State *L, const char *phase, const char *fmt, ...);

/* Create the xdbtx.Error metatable (registry) and put it in the module table
 * at module_idx as `Error`, with `error(fields)` building one from Lua. */
void xdbtx_lua_open_error (lua_State *L, int module_idx);

/* ---- codec (src/codec*.c; rules in codec.h) ------------------------- */

/* Encode the Lua table at idx into out, which the caller has bson_init'ed
 * (the fields are appended to whatever out holds). On failure returns
 * false, fills err (domain XDBTX_DOMAIN_CODEC, phase "encode", message
 * "<path>: <reason>", e.g. "doc.items[3].price: cannot encode a function")
 * and leaves out reinitialised to an empty document: nothing partial
 * escapes. Calls __tobson metamethods under lua_pcall; may raise only for
 * memory errors. */
bool xdbtx_codec_encode (lua_State *L, int idx, bson_t *out, xdbtx_error_t *err);

/* Encode one Lua value (any BSON-able value, not only documents) appended to
 * out under key (keylen < 0: strlen). Same error contract; the path of a
 * failure starts "doc.<key>". */
bool xdbtx_codec_append (lua_State *L, int idx, bson_t *out, const char *key,
                         int keylen, xdbtx_error_t *err);

/* Push the Lua table decoded from doc. On invalid BSON returns false, fills
 * err (phase "decode", message "<path>: <reason>") and pushes nothing. */
bool xdbtx_codec_push (lua_State *L, const bson_t *doc, xdbtx_error_t *err);

/* Give the table at idx the xdbtx.array_mt metatable (a list result). */
void xdbtx_codec_set_array_mt (lua_State *L, int idx);

/* Push one decoded value (for inserted_id, upserted_id, ...). */
bool xdbtx_codec_push_value (lua_State *L, const bson_value_t *v, xdbtx_error_t *err);

/* Flags of xdbtx_codec_push_opts. */
#define XDBTX_DECODE_ORDERED 0x1u   /* documents as xdbtx.ordered values (key order kept) */
#define XDBTX_DECODE_EXACT 0x2u     /* ORDERED, and widths kept: encode(decode(b)) == b */
#define XDBTX_DECODE_JSON_NULL 0x4u /* null as the NULL light userdata (cjson.null,
                                       ngx.null, xdbtx.json_null), not xdbtx.null */

/* xdbtx_codec_push with XDBTX_DECODE_* flags (xdbtx_codec_push: flags 0). */
bool xdbtx_codec_push_opts (lua_State *L, const bson_t *doc, unsigned flags, xdbtx_error_t *err);

/* Put the codec's functions and constants into the module table at
 * module_idx: encode, decode, to_json, from_json, null, json_null, array_mt, ordered,
 * object_id, date, timestamp, decimal128, binary, uuid, regex, code, minkey,
 * maxkey, int32, int64, double, type. Safe to call again for the same Lua
 * state: metatables and sentinels are created once per state. */
void xdbtx_codec_open (lua_State *L, int module_idx);

/* The module's one exported symbol. */
__attribute__ ((visibility ("default"))) int luaopen_xdbtx_core (lua_State *L);

#endif /* LXDBTX_H */
