/*
 * codec.h - private header shared by the codec's files: codec.c (shared
 * helpers, registration), codec_encode.c, codec_decode.c, codec_json.c,
 * codec_types.c (typed values: layout, metatables) and codec_values.c
 * (their constructors and methods).
 *
 * Every typed value is one userdata layout (codec_val_t) under a metatable
 * per kind ("xdbtx.ObjectId", ...). Each of those metatables holds the kind
 * number under a private light-userdata key, so the encoder identifies a
 * value with one raw lookup and never compares metatable names or strings.
 * Metatables and singletons are kept in the registry under the addresses of
 * static variables, never under guessable string keys.
 *
 * The rules DESIGN.md "Values" leaves open, as built:
 * - xdbtx.type(v): "objectid" "date" "timestamp" "decimal128" "binary"
 *   (UUIDs too) "regex" "code" "minkey" "maxkey" "null" "int32" "int64"
 *   "double" "array" "document" (ordered too) "string" "boolean", and for
 *   plain numbers "integer" / "float"; other values: their Lua type name.
 * - LuaJIT numbers: integral, not -0.0, |x| <= 2^53 -> int32 when it fits,
 *   else int64; everything else (fractions, -0.0, NaN, inf, beyond 2^53) ->
 *   double; xdbtx.double(x) forces a double. Decoding: int32 -> number,
 *   int64 -> number when |v| <= 2^53, else an exact xdbtx.Int64 (tostring
 *   gives the digits; ==, <, <= between Int64s; LuaJIT never calls them for
 *   number/Int64 mixes). So under LuaJIT a double 3.0 comes back as 3 and
 *   re-encodes as int32 unless decoded with {exact = true}.
 * - decode(bytes, {ordered = true}): documents come back as xdbtx.ordered
 *   values (o.key reads a field, key order kept); {exact = true} also keeps
 *   widths (small int64 -> Int64, LuaJIT integral doubles/NaN -> Double),
 *   so encode(decode(b, {exact = true})) == b.
 * - JSON null: the NULL light userdata (xdbtx.json_null, which is
 *   cjson.null and ngx.null) encodes as BSON null; any other light userdata
 *   is refused. decode/from_json with {json_null = true} give it back for
 *   null (and undefined) instead of xdbtx.null; xdbtx.type says "null".
 * - Deprecated BSON: symbol -> string, undefined -> null; DBPointer and
 *   code-with-scope are refused on decode.
 * - UTF-8 is checked against Unicode's well-formed sequences: overlong
 *   forms (C0 80 for U+0000 too), surrogates, code points past U+10FFFF and
 *   truncated sequences are refused, by encode and by decode.
 * - tostring: ObjectId("hex"), Date("ISO-8601"), Timestamp(t, i),
 *   Decimal128("s"), Binary(subtype, "base64"), UUID("8-4-4-4-12") for
 *   subtype 4, /pattern/flags, Code("src"), MinKey, MaxKey, null, the digits
 *   of Int32/Int64, and Double as %.17g (3.0 for integral values).
 */
#ifndef XDBTX_CODEC_H
#define XDBTX_CODEC_H

#include <stdarg.h>
#include <string.h>

#include "lxdbtx.h"

#define CODEC_NOINLINE __attribute__ ((noinline))
#define CODEC_INLINE inline __attribute__ ((always_inline))

/* Nesting limit of encoded documents, counting the top-level document as
 * level 1 (MongoDB's own limit). */
#define CODEC_MAX_DEPTH 100
/* Decoding accepts deeper input (server replies wrap stored documents),
 * bounded so that corrupt input cannot exhaust the C stack. */
#define CODEC_DECODE_MAX_DEPTH 200
/* MongoDB's maxBsonObjectSize. */
#define CODEC_MAX_BYTES (16 * 1024 * 1024)

enum codec_kind {
   CODEC_OID = 1,
   CODEC_DATE,
   CODEC_TIMESTAMP,
   CODEC_DECIMAL128,
   CODEC_BINARY,
   CODEC_REGEX,
   CODEC_CODE,
   CODEC_MINKEY,
   CODEC_MAXKEY,
   CODEC_NULL,
   CODEC_INT32,
   CODEC_INT64,
   CODEC_DOUBLE,
   CODEC_KIND_COUNT
};

/* The one userdata layout of every typed value. `data` holds the binary
 * bytes, the code source, or the regex pattern then its flags (each
 * NUL-terminated); len is the byte count of data (binary, code, pattern),
 * len2 the length of the regex flags. */
typedef struct codec_val_t {
   int kind;
   uint32_t len;
   uint32_t len2;
   uint8_t subtype;
   union {
      bson_oid_t oid;
      int64_t i64;
      int32_t i32;
      double d;
      struct {
         uint32_t t, i;
      } ts;
      bson_decimal128_t dec;
   } u;
   char data[];
} codec_val_t;

/* Registry keys (their addresses are the keys). */
extern const char codec_tag_key;          /* in each typed metatable: kind */
extern const char codec_array_mt_key;     /* xdbtx.array_mt */
extern const char codec_ordered_mt_key;   /* metatable of xdbtx.ordered{} */
extern const char codec_null_key;         /* the xdbtx.null sentinel */

/* Push a new typed value of `kind` with `extra` bytes of data (zeroed
 * header, metatable set). Returns it; the Lua stack owns it. */
codec_val_t *codec_val_push (lua_State *L, int kind, size_t extra);

/* The typed value at idx, or NULL when idx holds anything else. */
codec_val_t *codec_val_test (lua_State *L, int idx);

/* Push xdbtx.null / xdbtx.minkey / xdbtx.maxkey (singletons). */
void codec_push_singleton (lua_State *L, int kind);

/* Push an int64: a Lua integer (5.4); under LuaJIT a number when exact
 * (|v| <= 2^53), else an xdbtx.Int64. */
void codec_push_int64 (lua_State *L, int64_t v);

/* Lua name of a kind for xdbtx.type: "objectid", "date", ...; its
 * metatable name: "xdbtx.ObjectId", ... */
const char *codec_kind_name (int kind);
const char *codec_kind_mt (int kind);

/* True when s[0..n) is valid UTF-8; allow_nul permits U+0000 bytes. */
bool codec_utf8_valid (const char *s, size_t n, bool allow_nul);

/* The same, inline: plain ASCII (the usual keys and values) is checked
 * eight bytes at a time here; anything else goes to codec_utf8_valid. */
static inline bool
codec_text_ok (const char *s, size_t n, bool allow_nul)
{
   const uint64_t ones = UINT64_C (0x0101010101010101), high = UINT64_C (0x8080808080808080);
   size_t i = 0;
   uint64_t w;

   for (; i + 8 <= n; i += 8) {
      memcpy (&w, s + i, 8);
      if ((w | (allow_nul ? 0 : (w - ones) & ~w)) & high) {
         return codec_utf8_valid (s + i, n - i, allow_nul);
      }
   }
   for (; i < n; i++) {
      unsigned char c = (unsigned char) s[i];
      if (c >= 0x80 || (!allow_nul && c == 0)) {
         return codec_utf8_valid (s + i, n - i, allow_nul);
      }
   }
   return true;
}

/* Fill err with a codec error: domain codec, the given phase. */
void codec_error (xdbtx_error_t *err, const char *phase, const char *fmt, ...)
   BSON_GNUC_PRINTF (3, 4);

/* Raise an xdbtx.Error (domain codec). Never returns. */
int codec_raise (lua_State *L, const char *phase, const char *fmt, ...)
   BSON_GNUC_PRINTF (3, 4);

/* Classify the table at idx for xdbtx.type: "array" or "document". */
const char *codec_table_kind (lua_State *L, int idx);

/* Fill err with "<path>: <reason>", the path "doc.a[2].b" made of
 * keys[1..depth] (NULL key: an array index, lens[d] 1-based); returns
 * false. Shared by the encoder and the decoder. */
bool codec_path_fail (xdbtx_error_t *err, const char *phase, const char *const *keys,
                      const size_t *lens, int depth, const char *fmt, va_list ap);

/* The typed value of kind at idx (the self of method mname), or raise an
 * argument error "<mname>: expected an ObjectId as self ...". */
codec_val_t *codec_check_val (lua_State *L, int idx, int kind, const char *mname);

/* ---- argument errors: xdbtx.Error, domain argument, phase "argument" ---- */

/* Describe the value at idx for a message: "nil" (also for none), "number 5",
 * "string \"ab\"" (cut at 40 bytes), "boolean true", "table",
 * "xdbtx.ObjectId", "function", ... Written into buf, which is returned. */
const char *codec_describe (lua_State *L, int idx, char *buf, size_t size);

/* Raise "<fname>: <formatted reason>". Never returns. */
int codec_argerror (lua_State *L, const char *fname, const char *fmt, ...)
   BSON_GNUC_PRINTF (3, 4);

/* Raise "<fname>: expected <what>, got <description of idx>". */
int codec_arg_expected (lua_State *L, int idx, const char *fname, const char *what);

/* Raise "<mname>: expected <what> as self (did you call it with '.'?)",
 * naming what self was when it was not nil. */
int codec_check_self_fail (lua_State *L, int idx, const char *mname, const char *what);

/* The string at idx (a number is converted, as luaL_checklstring does), or
 * raise codec_arg_expected (L, idx, fname, what). len may be NULL. */
const char *codec_check_lstring (lua_State *L, int idx, size_t *len, const char *fname,
                                 const char *what);

/* The same, with def for none or nil. */
const char *codec_opt_lstring (lua_State *L, int idx, const char *def, size_t *len,
                               const char *fname, const char *what);

/* True for a 16-byte Binary of subtype 3 or 4; its "8-4-4-4-12" text. */
bool codec_is_uuid (const codec_val_t *v);
void codec_uuid_text (const codec_val_t *v, char out[37]);

/* codec_values.c: the constructors (xdbtx.object_id, ...) and the methods
 * of each kind, registered by codec_open_types. */
extern const luaL_Reg codec_value_funcs[];
extern const luaL_Reg *const codec_kind_methods[CODEC_KIND_COUNT];

/* XDBTX_DECODE_* flags from the decode options table at idx (nil: 0):
 * ordered, exact, json_null; anything else raises an argument error
 * naming fname. */
unsigned codec_decode_flags (lua_State *L, int idx, const char *fname);

/* Register into the module table at module_idx: the typed values
 * (constructors, singletons, metatables, array_mt, ordered), encode,
 * decode, to_json/from_json. Each is safe to call again for a state. */
void codec_open_types (lua_State *L, int module_idx);
void codec_open_encode (lua_State *L, int module_idx);
void codec_open_decode (lua_State *L, int module_idx);
void codec_open_json (lua_State *L, int module_idx);

#endif /* XDBTX_CODEC_H */
