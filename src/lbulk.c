/*
 * lbulk.c - coll:bulk_write(s, requests, opts), the binding of bulk.c.
 *
 * Each request is a table with one key, its kind (insert_one, update_one,
 * update_many, replace_one, delete_one, delete_many), whose value holds its
 * documents and options; the options go through the one option parser
 * (lopts.c), the documents through the same encoders as the single-document
 * methods (ldocs.c), so a bulk refuses exactly what they refuse, before
 * anything is sent. Positions in results and errors are the requests' own,
 * 1-based. Everything a call builds lives in its scratch box.
 */
#include <string.h>

#include "lbind.h"

static const struct {
   const char *name;
   xdbtx_bulk_kind_t kind;
   unsigned method;
} kinds[] = {
   {"insert_one", XDBTX_BULK_INSERT_ONE, XDBTX_M_BULK_INSERT},
   {"update_one", XDBTX_BULK_UPDATE_ONE, XDBTX_M_BULK_UPDATE},
   {"update_many", XDBTX_BULK_UPDATE_MANY, XDBTX_M_BULK_UPDATE},
   {"replace_one", XDBTX_BULK_REPLACE_ONE, XDBTX_M_BULK_REPLACE},
   {"delete_one", XDBTX_BULK_DELETE_ONE, XDBTX_M_BULK_DELETE},
   {"delete_many", XDBTX_BULK_DELETE_MANY, XDBTX_M_BULK_DELETE},
};

#define NKINDS (sizeof kinds / sizeof kinds[0])

/* Move sc->doc[slot] into the scratch list (freed with it) and return it. */
static bson_t *
keep (lscratch_t *sc, int slot)
{
   bson_t *doc = sc->doc[slot];

   sc->doc[slot] = NULL;
   sc->many[sc->nmany++] = doc;
   return doc;
}

/* Read requests[i] (on top of the stack) into *r, or raise naming it. */
static void
parse_request (lua_State *L, lscratch_t *sc, int i, xdbtx_bulk_req_t *r)
{
   int req = lua_gettop (L), spec, nkeys = 0;
   const char *name, *fname;
   size_t k = NKINDS;

   if (lua_type (L, req) != LUA_TTABLE) {
      xdbtx_argerror (L, "bulk_write", "requests[%d] must be a table such as "
                      "{ insert_one = { document = d } }, got %s", i, luaL_typename (L, req));
   }
   lua_pushnil (L);
   while (lua_next (L, req)) {
      lua_pop (L, 1);
      nkeys++;
      name = lua_type (L, -1) == LUA_TSTRING ? lua_tostring (L, -1) : NULL;
      for (k = 0; name && k < NKINDS; k++) {
         if (strcmp (kinds[k].name, name) == 0) {
            break;
         }
      }
      if (!name || k == NKINDS) {
         xdbtx_argerror (L, "bulk_write",
                         "requests[%d]: unknown request kind %s%s%s (insert_one, update_one, "
                         "update_many, replace_one, delete_one, delete_many)",
                         i, name ? "'" : "a ", name ? name : luaL_typename (L, -1),
                         name ? "'" : " key");
      }
   }
   if (nkeys != 1) {
      xdbtx_argerror (L, "bulk_write",
                      "requests[%d] must have exactly one key, its kind, got %d keys", i, nkeys);
   }
   lua_getfield (L, req, kinds[k].name);
   spec = lua_gettop (L);
   fname = lua_pushfstring (L, "bulk_write: requests[%d].%s", i, kinds[k].name);
   if (lua_type (L, spec) != LUA_TTABLE) {
      xdbtx_lua_raisef (L, "argument", "%s must be a table, got %s", fname,
                        luaL_typename (L, spec));
   }
   r->kind = kinds[k].kind;
   r->update = NULL;
   /* Options first: an unknown key is named before any document is encoded. */
   xdbtx_parse_opts (L, spec, kinds[k].method, fname, xdbtx_scratch_doc (sc, 2), sc);
   if (r->kind == XDBTX_BULK_INSERT_ONE) {
      lua_getfield (L, spec, "document");
      xdbtx_encode_with_id (L, lua_gettop (L), sc, 0, fname, "document");
   } else {
      lua_getfield (L, spec, "filter");
      xdbtx_encode_or_raise (L, lua_gettop (L), xdbtx_scratch_doc (sc, 0), fname, "filter");
   }
   r->doc = keep (sc, 0);
   if (r->kind == XDBTX_BULK_REPLACE_ONE) {
      lua_getfield (L, spec, "replacement");
      xdbtx_encode_replacement (L, lua_gettop (L), sc, 1, fname);
      r->update = keep (sc, 1);
   } else if (r->kind == XDBTX_BULK_UPDATE_ONE || r->kind == XDBTX_BULK_UPDATE_MANY) {
      lua_getfield (L, spec, "update");
      xdbtx_encode_update (L, lua_gettop (L), sc, 1, fname);
      r->update = keep (sc, 1);
   }
   r->opts = keep (sc, 2);
   lua_settop (L, req - 1);
}

/* Fill the result table on top from the reply. inserted_ids: every insert
 * request after a success; after a failure only those known to be applied
 * (ordered: the first nInserted; unordered: those without a write error,
 * when that count agrees with nInserted), else the field is left out. */
static void
push_result (lua_State *L, const bson_t *reply, const xdbtx_bulk_req_t *reqs, size_t n,
             bool ordered, bool ok)
{
   bson_iter_t it, child, f;
   int64_t inserted = 0, left, failed_inserts = 0, inserts = 0;
   size_t i;
   bool *failed = NULL;

   lua_createtable (L, 0, 7);
   xdbtx_push_count (L, reply, "nInserted", "inserted_count");
   xdbtx_push_count (L, reply, "nMatched", "matched_count");
   xdbtx_push_count (L, reply, "nModified", "modified_count");
   xdbtx_push_count (L, reply, "nRemoved", "deleted_count");
   xdbtx_push_count (L, reply, "nUpserted", "upserted_count");
   lua_newtable (L);
   if (bson_iter_init_find (&it, reply, "upserted") && BSON_ITER_HOLDS_ARRAY (&it) &&
       bson_iter_recurse (&it, &child)) {
      while (bson_iter_next (&child)) {
         if (BSON_ITER_HOLDS_DOCUMENT (&child) && bson_iter_recurse (&child, &f) &&
             bson_iter_find (&f, "index") && BSON_ITER_HOLDS_NUMBER (&f)) {
            lua_Integer idx = (lua_Integer) bson_iter_as_int64 (&f) + 1;
            bson_iter_recurse (&child, &f);
            if (bson_iter_find (&f, "_id")) {
               xdbtx_push_value (L, bson_iter_value (&f));
               lua_rawseti (L, -2, idx);
            }
         }
      }
   }
   lua_setfield (L, -2, "upserted_ids");

   if (bson_iter_init_find (&it, reply, "nInserted") && BSON_ITER_HOLDS_NUMBER (&it)) {
      inserted = bson_iter_as_int64 (&it);
   }
   if (!ok && !ordered) {
      failed = bson_malloc0 (n * sizeof *failed);
      if (bson_iter_init_find (&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY (&it) &&
          bson_iter_recurse (&it, &child)) {
         while (bson_iter_next (&child)) {
            if (BSON_ITER_HOLDS_DOCUMENT (&child) && bson_iter_recurse (&child, &f) &&
                bson_iter_find (&f, "index") && BSON_ITER_HOLDS_NUMBER (&f) &&
                bson_iter_as_int64 (&f) >= 0 && (size_t) bson_iter_as_int64 (&f) < n) {
               failed[bson_iter_as_int64 (&f)] = true;
            }
         }
      }
      for (i = 0; i < n; i++) {
         if (reqs[i].kind == XDBTX_BULK_INSERT_ONE) {
            inserts++;
            failed_inserts += failed[i];
         }
      }
      if (inserts - failed_inserts != inserted) {
         bson_free (failed);
         return; /* not known which were applied */
      }
   }
   lua_newtable (L);
   left = inserted;
   for (i = 0; i < n; i++) {
      if (reqs[i].kind != XDBTX_BULK_INSERT_ONE || (failed && failed[i])) {
         continue;
      }
      if (!ok && ordered && left-- <= 0) {
         break;
      }
      xdbtx_find_id (reqs[i].doc, &it);
      xdbtx_push_value (L, bson_iter_value (&it));
      lua_rawseti (L, -2, (lua_Integer) i + 1);
   }
   lua_setfield (L, -2, "inserted_ids");
   bson_free (failed);
}

/* Push { { index = i, code =, name =, message = }, ... } from reply[key]
 * (index only for write errors, 1-based). */
static void
push_errors (lua_State *L, const bson_t *reply, const char *key, bool with_index)
{
   bson_iter_t it, child, f;
   const char *name;
   int i = 0;

   lua_newtable (L);
   if (!bson_iter_init_find (&it, reply, key) || !BSON_ITER_HOLDS_ARRAY (&it) ||
       !bson_iter_recurse (&it, &child)) {
      return;
   }
   while (bson_iter_next (&child)) {
      if (!BSON_ITER_HOLDS_DOCUMENT (&child)) {
         continue;
      }
      lua_createtable (L, 0, 4);
      bson_iter_recurse (&child, &f);
      while (bson_iter_next (&f)) {
         if (with_index && strcmp (bson_iter_key (&f), "index") == 0 &&
             BSON_ITER_HOLDS_NUMBER (&f)) {
            lua_pushinteger (L, (lua_Integer) bson_iter_as_int64 (&f) + 1);
            lua_setfield (L, -2, "index");
         } else if (strcmp (bson_iter_key (&f), "code") == 0 && BSON_ITER_HOLDS_NUMBER (&f)) {
            lua_pushinteger (L, (lua_Integer) bson_iter_as_int64 (&f));
            lua_setfield (L, -2, "code");
            name = xdbtx_code_name ((int32_t) bson_iter_as_int64 (&f));
            if (name) {
               lua_pushstring (L, name);
               lua_setfield (L, -2, "name");
            }
         } else if (strcmp (bson_iter_key (&f), "errmsg") == 0 && BSON_ITER_HOLDS_UTF8 (&f)) {
            lua_pushstring (L, bson_iter_utf8 (&f, NULL));
            lua_setfield (L, -2, "message");
         }
      }
      lua_rawseti (L, -2, ++i);
   }
}

/* The 1-based position of the first write error, or 0. */
static int
first_error_index (const bson_t *reply)
{
   bson_iter_t it, child, f;

   if (bson_iter_init_find (&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY (&it) &&
       bson_iter_recurse (&it, &child) && bson_iter_next (&child) &&
       BSON_ITER_HOLDS_DOCUMENT (&child) && bson_iter_recurse (&child, &f) &&
       bson_iter_find (&f, "index") && BSON_ITER_HOLDS_NUMBER (&f)) {
      return (int) bson_iter_as_int64 (&f) + 1;
   }
   return 0;
}

/* coll:bulk_write(s, requests, opts) -> { inserted_count, matched_count, modified_count,
 *    deleted_count, upserted_count, upserted_ids = { [i] = id }, inserted_ids = { [i] = id } } */
static int
coll_bulk_write (lua_State *L)
{
   lcollection_t *c = xdbtx_check_coll (L);
   xdbtx_session_t *s = xdbtx_op_session (L, c, "bulk_write");
   size_t n = xdbtx_check_list (L, 3, "bulk_write", "requests"), i;
   lscratch_t *sc = xdbtx_scratch_new (L);
   bson_t *opts = xdbtx_scratch_doc (sc, 3), reply, *kept;
   xdbtx_bulk_req_t *reqs;
   xdbtx_error_t err;
   bson_iter_t it;
   bool ok, ordered;
   int first;

   xdbtx_parse_opts (L, 4, XDBTX_M_BULK, "bulk_write", opts, sc);
   ordered = !(bson_iter_init_find (&it, opts, "ordered") && !bson_iter_as_bool (&it));
   sc->mem = reqs = bson_malloc0 ((n ? n : 1) * sizeof *reqs);
   /* up to three documents per request, plus the reply */
   sc->many = bson_malloc0 ((3 * n + 1) * sizeof (bson_t *));
   sc->capmany = 3 * n + 1;
   luaL_checkstack (L, 16, "xdbtx: bulk_write");
   for (i = 0; i < n; i++) {
      lua_rawgeti (L, 3, (lua_Integer) i + 1);
      parse_request (L, sc, (int) i + 1, &reqs[i]);
   }
   if (n == 0) {
      /* Nothing to send: an empty result, no round trip. */
      bson_init (&reply);
      push_result (L, &reply, reqs, 0, ordered, true);
      bson_destroy (&reply);
      xdbtx_scratch_free (sc);
      return 1;
   }
   xdbtx_error_init (&err);
   ok = xdbtx_coll_bulk_write (c->coll, s, reqs, n, opts, &reply, &err);
   /* The reply joins the scratch box: decoding below may raise. */
   kept = bson_copy (&reply);
   bson_destroy (&reply);
   sc->many[sc->nmany++] = kept;
   if (ok) {
      push_result (L, kept, reqs, n, ordered, true);
      xdbtx_scratch_free (sc);
      return 1;
   }
   first = first_error_index (kept);
   if (first > 0) {
      xdbtx_error_prefix (&err, "bulk_write: requests[%d]", first);
   } else {
      xdbtx_error_prefix (&err, "bulk_write");
   }
   xdbtx_lua_push_error (L, &err);
   xdbtx_error_cleanup (&err);
   push_errors (L, kept, "writeErrors", true);
   lua_setfield (L, -2, "write_errors");
   push_errors (L, kept, "writeConcernErrors", false);
   lua_setfield (L, -2, "write_concern_errors");
   push_result (L, kept, reqs, n, ordered, false);
   lua_setfield (L, -2, "result");
   xdbtx_scratch_free (sc);
   return lua_error (L);
}

void
xdbtx_open_bulk (lua_State *L)
{
   static const luaL_Reg methods[] = {
      {"bulk_write", coll_bulk_write},
      {NULL, NULL},
   };

   xdbtx_add_methods (L, XDBTX_COLLECTION_MT, methods);
}
