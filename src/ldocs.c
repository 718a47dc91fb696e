/*
 * ldocs.c - the argument documents of the methods, shared by every
 * binding that sends them (lcollection.c, lbulk.c, lopts.c, ladmin.c,
 * binding.c): documents to insert, updates, replacements, lists, and
 * order-sensitive documents (sort, hint, index keys, commands).
 *
 * Each encoder checks what it encodes before anything is sent: a document
 * gets its _id here (so the caller knows it), an update must be a
 * non-empty document of $-operators or a non-empty pipeline, a replacement
 * has no $-keys, and a list of documents has keys exactly 1..n. They raise
 * xdbtx.Error objects; what they build lives in the caller's scratch box.
 */
#include <stdlib.h>
#include <string.h>

#include "lbind.h"

bool
xdbtx_find_id (const bson_t *doc, bson_iter_t *it)
{
   const uint8_t *d = bson_get_data (doc);

   /* the codec writes a table's _id first; an ordered document may have it
    * anywhere */
   if (doc->len > 9 && memcmp (d + 5, "_id", 4) == 0) {
      return bson_iter_init (it, doc) && bson_iter_next (it);
   }
   return bson_iter_init_find (it, doc, "_id");
}

/* Encode the document at idx (named `what` in errors) into sc->doc[slot];
 * make sure it has an _id (a new ObjectId first when it had none) and
 * return the final document. */
bson_t *
xdbtx_encode_with_id (lua_State *L, int idx, lscratch_t *sc, int slot, const char *fname,
                      const char *what)
{
   bson_t *doc = xdbtx_scratch_doc (sc, slot), *with_id;
   bson_iter_t it;
   bson_oid_t oid;

   xdbtx_encode_or_raise (L, idx, doc, fname, what);
   if (xdbtx_find_id (doc, &it)) {
      return doc;
   }
   with_id = bson_sized_new (doc->len + 17);
   bson_oid_init (&oid, NULL);
   BSON_APPEND_OID (with_id, "_id", &oid);
   bson_concat (with_id, doc);
   bson_destroy (doc);
   sc->doc[slot] = with_id;
   return with_id;
}

/* The value at idx is a table that can only encode as a document: no
 * metatable (xdbtx.array_mt would make it an array) and no [1]. */
static bool
plain_document (lua_State *L, int idx)
{
   bool doc;

   if (lua_type (L, idx) != LUA_TTABLE) {
      return false;
   }
   if (lua_getmetatable (L, idx)) {
      lua_pop (L, 1);
      return false;
   }
   lua_rawgeti (L, idx, 1);
   doc = lua_isnil (L, -1);
   lua_pop (L, 1);
   return doc;
}

/* An update document must be $-operators only, and not empty: an empty
 * one, or plain fields, would make the server replace the whole document. */
static void
check_operators (lua_State *L, const bson_t *upd, const char *fname)
{
   bson_iter_t it;

   if (bson_empty (upd)) {
      xdbtx_argerror (L, fname, "update must not be empty (an empty document would erase "
                      "every field of the matched document)");
   }
   bson_iter_init (&it, upd);
   while (bson_iter_next (&it)) {
      if (bson_iter_key (&it)[0] != '$') {
         xdbtx_argerror (L, fname,
                         "update must be a document of $-operators, got key '%s' (to replace "
                         "the whole document use replace_one or find_one_and_replace)",
                         bson_iter_key (&it));
      }
   }
}

/* Encode an update into sc->doc[slot] and return it: a non-empty document
 * of $-operators, or a non-empty pipeline (a list of stage documents, which
 * libmongoc takes as a document with keys "0", "1", ...). Anything else
 * raises and nothing is sent: an empty update, or a document without
 * operators, would replace the whole matched document. */
bson_t *
xdbtx_encode_update (lua_State *L, int idx, lscratch_t *sc, int slot, const char *fname)
{
   bson_t *wrap = xdbtx_scratch_doc (sc, slot), *upd;
   xdbtx_error_t err;
   bson_iter_t it, child;
   const uint8_t *data;
   uint32_t len;
   bool pipeline;

   if (lua_type (L, idx) != LUA_TTABLE && lua_type (L, idx) != LUA_TUSERDATA) {
      xdbtx_argerror (L, fname, "update must be a table, got %s", luaL_typename (L, idx));
   }
   if (plain_document (L, idx)) { /* the usual case: encoded in place */
      xdbtx_encode_or_raise (L, idx, wrap, fname, "update");
      check_operators (L, wrap, fname);
      return wrap;
   }
   /* it may be a pipeline: the codec tells, encoding it as a field */
   xdbtx_error_init (&err);
   if (!xdbtx_codec_append (L, idx, wrap, "update", 6, &err)) {
      xdbtx_error_prefix (&err, "%s", fname);
      xdbtx_lua_raise (L, &err);
   }
   bson_iter_init_find (&it, wrap, "update");
   pipeline = BSON_ITER_HOLDS_ARRAY (&it);
   if (pipeline) {
      bson_iter_array (&it, &len, &data);
   } else if (BSON_ITER_HOLDS_DOCUMENT (&it)) {
      bson_iter_document (&it, &len, &data);
   } else {
      xdbtx_argerror (L, fname, "update must be a document of $-operators or a pipeline");
   }
   upd = bson_new_from_data (data, len);
   bson_destroy (wrap);
   sc->doc[slot] = upd;
   if (bson_empty (upd)) {
      xdbtx_argerror (L, fname, "update must not be empty (an empty %s would %s)",
                      pipeline ? "pipeline" : "document",
                      pipeline ? "change nothing" : "erase every field of the matched document");
   }
   if (!pipeline) {
      check_operators (L, upd, fname);
      return upd;
   }
   bson_iter_init (&it, upd);
   while (bson_iter_next (&it)) {
      if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
         xdbtx_argerror (L, fname, "update pipeline stage [%d] must be a document",
                         atoi (bson_iter_key (&it)) + 1);
      }
      bson_iter_recurse (&it, &child);
      if (!bson_iter_next (&child) || bson_iter_key (&child)[0] != '$') {
         xdbtx_argerror (L, fname, "update pipeline stage [%d] must be a stage such as "
                         "{ [\"$set\"] = ... }", atoi (bson_iter_key (&it)) + 1);
      }
   }
   return upd;
}

/* Encode a replacement into sc->doc[slot]: a document without $-operators
 * at its top level (those belong to an update). */
bson_t *
xdbtx_encode_replacement (lua_State *L, int idx, lscratch_t *sc, int slot, const char *fname)
{
   bson_t *doc = xdbtx_scratch_doc (sc, slot);
   bson_iter_t it;

   xdbtx_encode_or_raise (L, idx, doc, fname, "replacement");
   bson_iter_init (&it, doc);
   while (bson_iter_next (&it)) {
      if (bson_iter_key (&it)[0] == '$') {
         xdbtx_argerror (L, fname,
                         "replacement must not contain $-operators, got key '%s' (to update "
                         "fields use update_one or find_one_and_update)",
                         bson_iter_key (&it));
      }
   }
   return doc;
}

/* The value at idx is a table without a metatable. */
static bool
is_plain_table (lua_State *L, int idx)
{
   if (lua_type (L, idx) != LUA_TTABLE) {
      return false;
   }
   if (lua_getmetatable (L, idx)) {
      lua_pop (L, 1);
      return false;
   }
   return true;
}

/* The number of keys of the table at idx when every one is an integer in
 * 1..n (fewer than n: holes); otherwise push the first other key and
 * return -1. */
static int
list_keys (lua_State *L, int idx, size_t n)
{
   int64_t k;
   int count = 0;

   lua_pushnil (L);
   while (lua_next (L, idx)) {
      lua_pop (L, 1);
      if (!xdbtx_toint64 (L, -1, &k) || k < 1 || (uint64_t) k > n) {
         return -1;
      }
      count++;
   }
   return count;
}

/* Push a short form of the key on top, for a message: 'b', 3 or "a boolean
 * key"; return it. */
static const char *
push_key_shown (lua_State *L)
{
   if (lua_type (L, -1) == LUA_TSTRING) {
      return lua_pushfstring (L, "'%s'", lua_tostring (L, -1));
   }
   if (lua_type (L, -1) == LUA_TNUMBER) {
      return lua_pushfstring (L, "%s", lua_tostring (L, -1));
   }
   return lua_pushfstring (L, "a %s key", luaL_typename (L, -1));
}

/* The number of elements of the list at idx (keys exactly 1..n), or raise
 * naming it `what`: a table with holes or other keys would lose documents
 * silently. */
size_t
xdbtx_check_list (lua_State *L, int idx, const char *fname, const char *what)
{
   size_t n;
   int count;

   if (lua_type (L, idx) != LUA_TTABLE) {
      xdbtx_argerror (L, fname, "%s must be a list of tables, got %s", what,
                      luaL_typename (L, idx));
   }
   n = lua_rawlen (L, idx);
   count = list_keys (L, idx, n);
   if (count < 0) {
      if (lua_type (L, -1) == LUA_TSTRING) {
         xdbtx_argerror (L, fname, "%s must be a list (keys 1..n), got key '%s'", what,
                         lua_tostring (L, -1));
      }
      if (lua_type (L, -1) == LUA_TNUMBER) {
         xdbtx_argerror (L, fname, "%s must be a list without holes (keys 1..n), got key %s",
                         what, lua_tostring (L, -1));
      }
      xdbtx_argerror (L, fname, "%s must be a list (keys 1..n), got a %s key", what,
                      luaL_typename (L, -1));
   }
   if ((size_t) count != n) {
      xdbtx_argerror (L, fname, "%s must be a list without holes (keys 1..n), "
                      "got %d keys for a length of %d", what, count, (int) n);
   }
   return n;
}

/* Encode the list of pairs at idx (its length n) into out, every pair, or
 * raise: its keys are exactly 1..n, each entry exactly { key, value } with
 * a string key, so nothing given is ever left out. */
static void
encode_pairs (lua_State *L, int idx, size_t n, bson_t *out, const char *fname, const char *what)
{
   xdbtx_error_t err;
   size_t i, m;
   int count = list_keys (L, idx, n);

   if (count < 0) {
      xdbtx_lua_raisef (L, "argument", "%s: %s: a list of pairs has a key other than 1..n (%s)",
                        fname, what, push_key_shown (L));
   }
   if ((size_t) count != n) {
      xdbtx_lua_raisef (L, "argument", "%s: %s: a list of pairs has holes", fname, what);
   }
   for (i = 1; i <= n; i++) {
      lua_rawgeti (L, idx, (int) i);
      if (lua_type (L, -1) != LUA_TTABLE) {
         xdbtx_lua_raisef (L, "argument", "%s: %s: entry %d must be a pair { key, value }, got %s",
                           fname, what, (int) i, luaL_typename (L, -1));
      }
      m = lua_rawlen (L, -1);
      count = list_keys (L, lua_gettop (L), m);
      if (count < 0) {
         xdbtx_lua_raisef (L, "argument",
                           "%s: %s: entry %d must be a pair { key, value }, got a table with key %s",
                           fname, what, (int) i, push_key_shown (L));
      }
      if (count != 2 || m != 2) {
         xdbtx_lua_raisef (L, "argument",
                           "%s: %s: entry %d must be a pair { key, value }, got %d element%s", fname,
                           what, (int) i, count, count == 1 ? "" : "s");
      }
      lua_rawgeti (L, -1, 1);
      lua_rawgeti (L, -2, 2);
      if (lua_type (L, -2) != LUA_TSTRING) {
         xdbtx_lua_raisef (L, "argument",
                           "%s: %s: entry %d must be a pair { key, value } with a string key, got a "
                           "%s key", fname, what, (int) i, luaL_typename (L, -2));
      }
      if (strlen (lua_tostring (L, -2)) != lua_rawlen (L, -2)) {
         xdbtx_lua_raisef (L, "encode", "%s: %s: entry %d: key contains a NUL byte", fname, what,
                           (int) i);
      }
      xdbtx_error_init (&err);
      if (!xdbtx_codec_append (L, -1, out, lua_tostring (L, -2), -1, &err)) {
         xdbtx_error_prefix (&err, "%s: %s", fname, what);
         xdbtx_lua_raise (L, &err);
      }
      lua_pop (L, 3);
   }
}

/* An order-sensitive document (sort, hint, index keys, a command): an
 * xdbtx.ordered value, a list of pairs, or a table of at most one key. */
void
xdbtx_encode_ordered (lua_State *L, int idx, bson_t *out, const char *fname, const char *what)
{
   xdbtx_error_t err;
   size_t n;
   int nkeys = 0;
   bool pairs;

   idx = lua_absindex (L, idx);
   luaL_checkstack (L, 8, "xdbtx: an order-sensitive document");
   if (is_plain_table (L, idx)) {
      n = lua_rawlen (L, idx);
      lua_rawgeti (L, idx, 1);
      pairs = n > 0 && lua_type (L, -1) == LUA_TTABLE;
      lua_pop (L, 1);
      if (pairs) { /* a list of pairs { { "b", -1 }, { "a", 1 } } */
         encode_pairs (L, idx, n, out, fname, what);
         return;
      }
      lua_pushnil (L);
      while (lua_next (L, idx)) {
         lua_pop (L, 1);
         nkeys++;
      }
      if (nkeys > 1) {
         xdbtx_lua_raisef (L, "argument",
                           "%s: %s is a plain table with %d keys, whose order Lua does not keep: "
                           "give it as xdbtx.ordered{ { \"a\", 1 }, { \"b\", -1 } } or as a list "
                           "of pairs { { \"a\", 1 }, { \"b\", -1 } }",
                           fname, what, nkeys);
      }
   }
   xdbtx_error_init (&err);
   if (!xdbtx_codec_encode (L, idx, out, &err)) {
      xdbtx_error_prefix (&err, "%s: %s", fname, what);
      xdbtx_lua_raise (L, &err);
   }
}

/* What an encoded value of type t is, in the words of the messages. */
static const char *
bson_kind (bson_type_t t)
{
   switch (t) {
   case BSON_TYPE_DOUBLE:
   case BSON_TYPE_INT32:
   case BSON_TYPE_INT64:
   case BSON_TYPE_DECIMAL128:
      return "number";
   case BSON_TYPE_UTF8:
      return "string";
   case BSON_TYPE_BOOL:
      return "boolean";
   case BSON_TYPE_NULL:
      return "null";
   case BSON_TYPE_ARRAY:
      return "a list";
   case BSON_TYPE_DOCUMENT:
      return "a document";
   default:
      return "a typed value";
   }
}

void
xdbtx_append_doc_list (lua_State *L, int idx, bson_t *out, const char *key, lscratch_t *sc,
                       int slot, const char *fname, const char *what, const char *items)
{
   bson_t *tmp = xdbtx_scratch_doc (sc, slot), list;
   xdbtx_error_t err;
   bson_iter_t it, elem;
   const uint8_t *data;
   uint32_t len;
   size_t n, i;
   int count, t = lua_type (L, idx);

   idx = lua_absindex (L, idx);
   if (t != LUA_TTABLE && t != LUA_TUSERDATA) {
      xdbtx_argerror (L, fname, "%s must be a list of %s, got %s", what, items, luaL_typename (L, idx));
   }
   if (is_plain_table (L, idx)) { /* checked key by key: the message names what is wrong */
      n = lua_rawlen (L, idx);
      count = list_keys (L, idx, n);
      if (count < 0) {
         xdbtx_argerror (L, fname, "%s must be a list of %s, got a table with key %s", what, items,
                         push_key_shown (L));
      }
      if ((size_t) count != n) {
         xdbtx_argerror (L, fname, "%s must be a list of %s, got a list with holes", what, items);
      }
      for (i = 1; i <= n; i++) {
         lua_rawgeti (L, idx, (int) i);
         t = lua_type (L, -1);
         if (t != LUA_TTABLE && t != LUA_TUSERDATA) {
            xdbtx_argerror (L, fname, "%s[%d] must be a document, got %s", what, (int) i,
                            luaL_typename (L, -1));
         }
         lua_pop (L, 1);
      }
      if (n == 0) { /* {}: the codec would say a document; here it is the empty list */
         bson_init (&list);
         bson_append_array (out, key, -1, &list);
         bson_destroy (&list);
         return;
      }
   }
   /* encoded apart first, so a failure leaves out as it was; anything the
    * check above could not look into (array_mt, __tobson) is checked here */
   bson_reinit (tmp);
   xdbtx_error_init (&err);
   if (!xdbtx_codec_append (L, idx, tmp, key, -1, &err)) {
      xdbtx_error_prefix (&err, "%s: %s", fname, what);
      xdbtx_lua_raise (L, &err);
   }
   bson_iter_init_find (&it, tmp, key);
   if (!BSON_ITER_HOLDS_ARRAY (&it)) {
      xdbtx_argerror (L, fname, "%s must be a list of %s, got %s", what, items,
                      bson_kind (bson_iter_type (&it)));
   }
   bson_iter_recurse (&it, &elem);
   while (bson_iter_next (&elem)) {
      if (!BSON_ITER_HOLDS_DOCUMENT (&elem)) {
         xdbtx_argerror (L, fname, "%s[%d] must be a document, got %s", what,
                         atoi (bson_iter_key (&elem)) + 1, bson_kind (bson_iter_type (&elem)));
      }
   }
   bson_iter_array (&it, &len, &data);
   if (bson_init_static (&list, data, len)) {
      bson_append_array (out, key, -1, &list);
   }
}
