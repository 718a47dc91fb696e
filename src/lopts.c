/*
 * lopts.c - every option table of the binding, through one table-driven
 * parser: collection operations and commands (libmongoc opts documents),
 * transactions, sessions and clients (pools).
 *
 * A row names a snake_case key, the kind of value it takes and the
 * operations that accept it. walk() checks each key and value against the
 * rows (raising with the function, the key and the value in the message)
 * before it applies the value, and applying never raises, so a bad table
 * leaks nothing: whatever is built lives in the caller's scratch box.
 * This is also the one list of transaction option keys (XDBTX_M_TXN rows);
 * the Lua layer checks its options through core.check_options. Payload
 * rows name the documents inside an options-like table (a bulk request's
 * filter, an index's keys): checked and encoded by the caller, so such a
 * table has one list of keys too.
 */
#include <math.h>
#include <string.h>

#include "lbind.h"

enum {
   K_DOC,    /* a document (table, ordered, __tobson) */
   K_ODOC,   /* a document whose key order matters */
   K_HINT,   /* an index name or an order-sensitive key document */
   K_ARRAY,  /* a list */
   K_ANY,    /* any BSON-able value */
   K_UINT,   /* an integer >= 0 */
   K_POS32,  /* an integer in 1..INT32_MAX */
   K_BOOL,
   K_STR,
   K_WC,     /* { w =, j =, wtimeout = } */
   K_RC,     /* a level string or { level = } */
   K_RP,     /* a read preference mode */
   K_RETDOC, /* "before" | "after" */
   K_TXN,    /* a table of transaction options */
   K_PAYLOAD /* an argument inside an options-like table (a bulk request's
              * filter, an index's keys): checked and encoded by the caller */
};

#define M_WRITES (XDBTX_M_INSERT_ONE | XDBTX_M_INSERT_MANY | XDBTX_M_UPDATE | XDBTX_M_REPLACE | \
                  XDBTX_M_DELETE)
#define M_FAM (XDBTX_M_FAM_UPDATE | XDBTX_M_FAM_REPLACE | XDBTX_M_FAM_DELETE)
#define M_READS (XDBTX_M_FIND | XDBTX_M_FIND_ONE | XDBTX_M_COUNT | XDBTX_M_AGGREGATE)
#define M_OPS ((1u << 13) - 1) /* every CRUD operation and command */
#define M_BULK_REQ (XDBTX_M_BULK_UPDATE | XDBTX_M_BULK_REPLACE | XDBTX_M_BULK_DELETE)
#define M_INDEX (XDBTX_M_CREATE_INDEX | XDBTX_M_INDEX_MODEL) /* index options */
#define M_ADMIN_CMD (XDBTX_M_CREATE_INDEX | XDBTX_M_CREATE_INDEXES | XDBTX_M_DDL)
#define M_NEW_READS (XDBTX_M_DISTINCT | XDBTX_M_EST_COUNT)

typedef struct {
   const char *lua, *mongo;
   int kind;
   unsigned methods;
} optspec_t;

static const optspec_t specs[] = {
   {"sort", "sort", K_ODOC, XDBTX_M_FIND | XDBTX_M_FIND_ONE | M_FAM},
   {"projection", "projection", K_DOC, XDBTX_M_FIND | XDBTX_M_FIND_ONE | M_FAM},
   {"limit", "limit", K_UINT, XDBTX_M_FIND | XDBTX_M_COUNT},
   {"skip", "skip", K_UINT, XDBTX_M_FIND | XDBTX_M_FIND_ONE | XDBTX_M_COUNT},
   {"batch_size", "batchSize", K_UINT, XDBTX_M_FIND | XDBTX_M_AGGREGATE},
   {"upsert", "upsert", K_BOOL,
    XDBTX_M_UPDATE | XDBTX_M_REPLACE | XDBTX_M_FAM_UPDATE | XDBTX_M_FAM_REPLACE |
       XDBTX_M_BULK_UPDATE | XDBTX_M_BULK_REPLACE},
   {"return_document", "new", K_RETDOC, XDBTX_M_FAM_UPDATE | XDBTX_M_FAM_REPLACE},
   {"array_filters", "arrayFilters", K_ARRAY,
    XDBTX_M_UPDATE | XDBTX_M_FAM_UPDATE | XDBTX_M_BULK_UPDATE},
   {"hint", "hint", K_HINT,
    (M_OPS & ~(XDBTX_M_INSERT_ONE | XDBTX_M_INSERT_MANY | XDBTX_M_COMMAND)) | M_BULK_REQ},
   {"collation", "collation", K_DOC,
    (M_OPS & ~(XDBTX_M_INSERT_ONE | XDBTX_M_INSERT_MANY | XDBTX_M_COMMAND)) | M_BULK_REQ |
       XDBTX_M_DISTINCT | M_INDEX},
   {"comment", "comment", K_ANY,
    (M_OPS & ~XDBTX_M_COMMAND) | M_NEW_READS | XDBTX_M_BULK | M_ADMIN_CMD | XDBTX_M_LIST |
       XDBTX_M_LIST_DATABASES},
   {"max_time_ms", "maxTimeMS", K_UINT,
    M_READS | M_FAM | XDBTX_M_COMMAND | M_NEW_READS | XDBTX_M_CREATE_INDEX |
       XDBTX_M_CREATE_INDEXES},
   {"ordered", "ordered", K_BOOL, XDBTX_M_INSERT_MANY | XDBTX_M_BULK},
   {"bypass_document_validation", "bypassDocumentValidation", K_BOOL,
    XDBTX_M_INSERT_ONE | XDBTX_M_INSERT_MANY | XDBTX_M_UPDATE | XDBTX_M_REPLACE |
       XDBTX_M_FAM_UPDATE | XDBTX_M_FAM_REPLACE | XDBTX_M_AGGREGATE | XDBTX_M_BULK},
   {"allow_disk_use", "allowDiskUse", K_BOOL, XDBTX_M_FIND | XDBTX_M_AGGREGATE},
   {"write_concern", "writeConcern", K_WC,
    M_WRITES | M_FAM | XDBTX_M_AGGREGATE | XDBTX_M_COMMAND | XDBTX_M_TXN | XDBTX_M_BULK |
       M_ADMIN_CMD | XDBTX_M_DEFAULTS},
   {"read_concern", "readConcern", K_RC,
    M_READS | XDBTX_M_COMMAND | XDBTX_M_TXN | M_NEW_READS | XDBTX_M_DEFAULTS},
   {"read_preference", NULL, K_RP,
    M_READS | XDBTX_M_COMMAND | XDBTX_M_TXN | M_NEW_READS | XDBTX_M_DEFAULTS},
   {"max_commit_time_ms", NULL, K_UINT, XDBTX_M_TXN},
   {"causal_consistency", NULL, K_BOOL, XDBTX_M_SESSION},
   {"snapshot", NULL, K_BOOL, XDBTX_M_SESSION},
   {"default_transaction_options", NULL, K_TXN, XDBTX_M_SESSION},
   {"app_name", NULL, K_STR, XDBTX_M_CLIENT},
   {"max_pool_size", NULL, K_POS32, XDBTX_M_CLIENT},
   {"server_selection_timeout_ms", NULL, K_POS32, XDBTX_M_CLIENT},
   /* bulk_write requests: their documents (the caller's) and options */
   {"document", NULL, K_PAYLOAD, XDBTX_M_BULK_INSERT},
   {"filter", NULL, K_PAYLOAD, M_BULK_REQ},
   {"update", NULL, K_PAYLOAD, XDBTX_M_BULK_UPDATE},
   {"replacement", NULL, K_PAYLOAD, XDBTX_M_BULK_REPLACE},
   /* indexes: create_index options and create_indexes models */
   {"keys", NULL, K_PAYLOAD, XDBTX_M_INDEX_MODEL},
   {"name", "name", K_STR, M_INDEX},
   {"unique", "unique", K_BOOL, M_INDEX},
   {"sparse", "sparse", K_BOOL, M_INDEX},
   {"hidden", "hidden", K_BOOL, M_INDEX},
   {"expire_after_seconds", "expireAfterSeconds", K_UINT, M_INDEX},
   {"partial_filter_expression", "partialFilterExpression", K_DOC, M_INDEX},
   {"wildcard_projection", "wildcardProjection", K_DOC, M_INDEX},
   {"weights", "weights", K_DOC, M_INDEX},
   {"default_language", "default_language", K_STR, M_INDEX},
   {"language_override", "language_override", K_STR, M_INDEX},
   /* listings */
   {"filter", "filter", K_DOC, XDBTX_M_LIST_DATABASES},
};

#define NSPECS (sizeof specs / sizeof specs[0])

/* Raise "<fname>: option '<key>' <msg>, got <value>". */
static int
opt_error (lua_State *L, const char *fname, const char *key, int vidx, const char *msg)
{
   const char *shown;

   vidx = lua_absindex (L, vidx);
   if (lua_type (L, vidx) == LUA_TSTRING) {
      shown = lua_pushfstring (L, "\"%s\"", lua_tostring (L, vidx));
   } else if (lua_type (L, vidx) == LUA_TNUMBER) {
      shown = lua_pushfstring (L, "%s", lua_tostring (L, vidx));
   } else if (lua_type (L, vidx) == LUA_TBOOLEAN) {
      shown = lua_toboolean (L, vidx) ? "true" : "false";
   } else {
      shown = luaL_typename (L, vidx);
   }
   return xdbtx_lua_raisef (L, "argument", "%s: option '%s' %s, got %s", fname, key, msg, shown);
}

/* ---- checks (may raise) ------------------------------------------------ */

static void
check_wc (lua_State *L, int idx, const char *fname, const char *key)
{
   const char *k;
   int64_t n = 0;

   idx = lua_absindex (L, idx);
   if (lua_type (L, idx) != LUA_TTABLE) {
      opt_error (L, fname, key, idx, "must be a table { w =, j =, wtimeout = }");
   }
   lua_pushnil (L);
   while (lua_next (L, idx)) {
      k = lua_type (L, -2) == LUA_TSTRING ? lua_tostring (L, -2) : "?";
      if (strcmp (k, "w") == 0) {
         if (!(lua_type (L, -1) == LUA_TSTRING || (xdbtx_toint64 (L, -1, &n) && n >= 0 &&
                                                   n <= INT32_MAX))) {
            opt_error (L, fname, "write_concern.w", -1, "must be an integer >= 0 or a string");
         }
      } else if (strcmp (k, "j") == 0) {
         if (!lua_isboolean (L, -1)) {
            opt_error (L, fname, "write_concern.j", -1, "must be a boolean");
         }
      } else if (strcmp (k, "wtimeout") == 0) {
         if (!xdbtx_toint64 (L, -1, &n) || n < 0) {
            opt_error (L, fname, "write_concern.wtimeout", -1, "must be an integer >= 0");
         }
      } else {
         xdbtx_lua_raisef (L, "argument", "%s: unknown option 'write_concern.%s'", fname, k);
      }
      lua_pop (L, 1);
   }
}

/* The level of a read concern value at idx, or NULL when it is not one. */
static const char *
rc_level (lua_State *L, int idx)
{
   const char *level = NULL;

   if (lua_type (L, idx) == LUA_TSTRING) {
      return lua_tostring (L, idx);
   }
   if (lua_type (L, idx) == LUA_TTABLE) {
      lua_getfield (L, idx, "level");
      level = lua_type (L, -1) == LUA_TSTRING ? lua_tostring (L, -1) : NULL;
      lua_pop (L, 1); /* the string stays reachable from the table */
   }
   return level;
}

static const struct {
   const char *name;
   mongoc_read_mode_t mode;
} rp_modes[] = {
   {"primary", MONGOC_READ_PRIMARY},
   {"primaryPreferred", MONGOC_READ_PRIMARY_PREFERRED},
   {"primary_preferred", MONGOC_READ_PRIMARY_PREFERRED},
   {"secondary", MONGOC_READ_SECONDARY},
   {"secondaryPreferred", MONGOC_READ_SECONDARY_PREFERRED},
   {"secondary_preferred", MONGOC_READ_SECONDARY_PREFERRED},
   {"nearest", MONGOC_READ_NEAREST},
};

/* The read mode named by the value at idx; -1 when it names none. */
static int
rp_mode (lua_State *L, int idx)
{
   const char *s = lua_type (L, idx) == LUA_TSTRING ? lua_tostring (L, idx) : "";
   size_t i;

   for (i = 0; i < sizeof rp_modes / sizeof rp_modes[0]; i++) {
      if (strcmp (s, rp_modes[i].name) == 0) {
         return (int) rp_modes[i].mode;
      }
   }
   return -1;
}

/* A read concern: a level string or { level = "..." }, nothing else in the
 * table; the message names the key or the value at fault. */
static void
check_rc (lua_State *L, int vidx, const char *fname, const char *key)
{
   vidx = lua_absindex (L, vidx);
   if (lua_type (L, vidx) == LUA_TTABLE && !lua_getmetatable (L, vidx)) {
      lua_pushnil (L);
      while (lua_next (L, vidx)) {
         lua_pop (L, 1);
         if (lua_type (L, -1) != LUA_TSTRING || strcmp (lua_tostring (L, -1), "level") != 0) {
            xdbtx_lua_raisef (L, "argument", "%s: option '%s' takes only { level = ... }, got the"
                              " key %s", fname, key, lua_type (L, -1) == LUA_TSTRING
                                 ? lua_pushfstring (L, "'%s'", lua_tostring (L, -1))
                                 : luaL_typename (L, -1));
         }
      }
      lua_getfield (L, vidx, "level");
      if (lua_type (L, -1) != LUA_TSTRING) {
         opt_error (L, fname, key, -1, "needs level = \"<a level>\" (\"local\", \"majority\", ...)");
      }
      lua_pop (L, 1);
      return;
   }
   if (!rc_level (L, vidx)) {
      opt_error (L, fname, key, vidx, "must be a level string or { level = ... }");
   }
}

static void walk (lua_State *L, int idx, unsigned method, const char *fname, void *target);

static void
check_value (lua_State *L, int vidx, const optspec_t *o, const char *fname)
{
   int64_t n = 0;
   int t = lua_type (L, vidx);

   switch (o->kind) {
   case K_DOC:
   case K_ODOC:
      if (t != LUA_TTABLE && t != LUA_TUSERDATA) {
         opt_error (L, fname, o->lua, vidx, "must be a table");
      }
      break;
   case K_ARRAY: /* its elements: when it is appended (xdbtx_append_doc_list) */
      if (t != LUA_TTABLE && t != LUA_TUSERDATA) {
         opt_error (L, fname, o->lua, vidx, "must be a list of documents");
      }
      break;
   case K_HINT:
      if (t != LUA_TTABLE && t != LUA_TUSERDATA && t != LUA_TSTRING) {
         opt_error (L, fname, o->lua, vidx, "must be an index name or a key document");
      }
      break;
   case K_UINT:
      if (!xdbtx_toint64 (L, vidx, &n) || n < 0) {
         opt_error (L, fname, o->lua, vidx, "must be an integer >= 0");
      }
      break;
   case K_POS32:
      if (!xdbtx_toint64 (L, vidx, &n) || n < 1 || n > INT32_MAX) {
         opt_error (L, fname, o->lua, vidx, "must be an integer in 1..2147483647");
      }
      break;
   case K_BOOL:
      if (t != LUA_TBOOLEAN) {
         opt_error (L, fname, o->lua, vidx, "must be a boolean");
      }
      break;
   case K_STR:
      if (t != LUA_TSTRING) {
         opt_error (L, fname, o->lua, vidx, "must be a string");
      }
      break;
   case K_WC:
      check_wc (L, vidx, fname, o->lua);
      break;
   case K_RC:
      check_rc (L, vidx, fname, o->lua);
      break;
   case K_RP:
      if (rp_mode (L, vidx) < 0) {
         opt_error (L, fname, o->lua, vidx,
                    "must be \"primary\", \"primaryPreferred\", \"secondary\", "
                    "\"secondaryPreferred\" or \"nearest\"");
      }
      break;
   case K_RETDOC: {
      const char *s = t == LUA_TSTRING ? lua_tostring (L, vidx) : "";
      if (strcmp (s, "after") != 0 && strcmp (s, "before") != 0) {
         opt_error (L, fname, o->lua, vidx, "must be \"before\" or \"after\"");
      }
      break;
   }
   case K_TXN:
      if (t != LUA_TTABLE) {
         opt_error (L, fname, o->lua, vidx, "must be a table of transaction options");
      }
      walk (L, vidx, XDBTX_M_TXN, fname, NULL); /* check only */
      break;
   default:
      break;
   }
}

/* ---- building (never raises, except the codec on bad documents) -------- */

static mongoc_write_concern_t *
make_wc (lua_State *L, int idx)
{
   mongoc_write_concern_t *wc = mongoc_write_concern_new ();
   int64_t n = 0;

   idx = lua_absindex (L, idx);
   lua_getfield (L, idx, "w");
   if (lua_type (L, -1) == LUA_TSTRING) {
      if (strcmp (lua_tostring (L, -1), "majority") == 0) {
         mongoc_write_concern_set_w (wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
      } else {
         mongoc_write_concern_set_wtag (wc, lua_tostring (L, -1));
      }
   } else if (xdbtx_toint64 (L, -1, &n)) {
      mongoc_write_concern_set_w (wc, (int32_t) n);
   }
   lua_getfield (L, idx, "j");
   if (lua_isboolean (L, -1)) {
      mongoc_write_concern_set_journal (wc, lua_toboolean (L, -1));
   }
   lua_getfield (L, idx, "wtimeout");
   if (xdbtx_toint64 (L, -1, &n)) {
      mongoc_write_concern_set_wtimeout_int64 (wc, n);
   }
   lua_pop (L, 3);
   return wc;
}

/* Append the value at vidx under o->mongo to out. An order-sensitive
 * document is encoded into a scratch document first, so a raise never
 * leaves out with an unfinished child. */
static void
append_value (lua_State *L, int vidx, const optspec_t *o, const char *fname, bson_t *out,
              lscratch_t *sc)
{
   xdbtx_error_t err;
   bson_t *tmp;
   char what[64];

   snprintf (what, sizeof what, "option '%s'", o->lua);
   if (o->kind == K_ARRAY) { /* array_filters: a list of documents */
      xdbtx_append_doc_list (L, vidx, out, o->mongo, sc, XDBTX_SCRATCH_DOCS - 1, fname, what,
                             "documents");
      return;
   }
   if (o->kind == K_ODOC || (o->kind == K_HINT && lua_type (L, vidx) != LUA_TSTRING)) {
      tmp = xdbtx_scratch_doc (sc, XDBTX_SCRATCH_DOCS - 1);
      bson_reinit (tmp);
      xdbtx_encode_ordered (L, vidx, tmp, fname, what);
      BSON_APPEND_DOCUMENT (out, o->mongo, tmp);
      return;
   }
   xdbtx_error_init (&err);
   if (!xdbtx_codec_append (L, vidx, out, o->mongo, -1, &err)) {
      xdbtx_error_prefix (&err, "%s: %s", fname, what);
      xdbtx_lua_raise (L, &err);
   }
}

/* Apply a checked value of a collection operation or command. */
static void
apply_op (lua_State *L, int vidx, const optspec_t *o, const char *fname, bson_t *out,
          lscratch_t *sc)
{
   mongoc_write_concern_t *wc;
   int64_t n = 0;
   bson_t child;

   switch (o->kind) {
   case K_UINT:
      xdbtx_toint64 (L, vidx, &n);
      BSON_APPEND_INT64 (out, o->mongo, n);
      break;
   case K_BOOL:
      BSON_APPEND_BOOL (out, o->mongo, lua_toboolean (L, vidx));
      break;
   case K_RETDOC:
      BSON_APPEND_BOOL (out, o->mongo, strcmp (lua_tostring (L, vidx), "after") == 0);
      break;
   case K_WC:
      wc = make_wc (L, vidx);
      mongoc_write_concern_append (wc, out);
      mongoc_write_concern_destroy (wc);
      break;
   case K_RC:
      BSON_APPEND_DOCUMENT_BEGIN (out, "readConcern", &child);
      BSON_APPEND_UTF8 (&child, "level", rc_level (L, vidx));
      bson_append_document_end (out, &child);
      break;
   case K_RP:
      mongoc_read_prefs_destroy (sc->prefs);
      sc->prefs = mongoc_read_prefs_new ((mongoc_read_mode_t) rp_mode (L, vidx));
      break;
   default:
      append_value (L, vidx, o, fname, out, sc);
      break;
   }
}

static void
apply_txn (lua_State *L, int vidx, const optspec_t *o, mongoc_transaction_opt_t *txn)
{
   mongoc_write_concern_t *wc;
   mongoc_read_concern_t *rc;
   mongoc_read_prefs_t *rp;
   int64_t n = 0;

   if (strcmp (o->lua, "read_concern") == 0) {
      rc = mongoc_read_concern_new ();
      mongoc_read_concern_set_level (rc, rc_level (L, vidx));
      mongoc_transaction_opts_set_read_concern (txn, rc);
      mongoc_read_concern_destroy (rc);
   } else if (strcmp (o->lua, "write_concern") == 0) {
      wc = make_wc (L, vidx);
      mongoc_transaction_opts_set_write_concern (txn, wc);
      mongoc_write_concern_destroy (wc);
   } else if (strcmp (o->lua, "read_preference") == 0) {
      rp = mongoc_read_prefs_new ((mongoc_read_mode_t) rp_mode (L, vidx));
      mongoc_transaction_opts_set_read_prefs (txn, rp);
      mongoc_read_prefs_destroy (rp);
   } else if (strcmp (o->lua, "max_commit_time_ms") == 0) {
      xdbtx_toint64 (L, vidx, &n);
      mongoc_transaction_opts_set_max_commit_time_ms (txn, n);
   }
}

/* Apply a checked default (read_concern, write_concern, read_preference)
 * to d, replacing what it held. */
static void
apply_default (lua_State *L, int vidx, const optspec_t *o, xdbtx_defaults_t *d)
{
   if (o->kind == K_RC) {
      mongoc_read_concern_destroy (d->read_concern);
      d->read_concern = mongoc_read_concern_new ();
      mongoc_read_concern_set_level (d->read_concern, rc_level (L, vidx));
   } else if (o->kind == K_WC) {
      mongoc_write_concern_destroy (d->write_concern);
      d->write_concern = make_wc (L, vidx);
   } else if (o->kind == K_RP) {
      mongoc_read_prefs_destroy (d->read_prefs);
      d->read_prefs = mongoc_read_prefs_new ((mongoc_read_mode_t) rp_mode (L, vidx));
   }
}

/* What walk() builds, by the method bit it was called for. */
typedef struct {
   bson_t *out;                    /* collection operations, commands */
   lscratch_t *sc;
   mongoc_transaction_opt_t *txn;  /* XDBTX_M_TXN */
   mongoc_session_opt_t *sopts;    /* XDBTX_M_SESSION */
   xdbtx_pool_opts_t *pool;        /* XDBTX_M_CLIENT */
   xdbtx_defaults_t *defaults;     /* XDBTX_M_DEFAULTS (also with XDBTX_M_CLIENT) */
} target_t;

static void
apply (lua_State *L, int vidx, const optspec_t *o, unsigned method, const char *fname,
       target_t *t)
{
   int64_t n = 0;

   if (o->kind == K_PAYLOAD) {
      return; /* the caller's */
   }
   if ((method & XDBTX_M_DEFAULTS) && (o->methods & XDBTX_M_DEFAULTS)) {
      apply_default (L, vidx, o, t->defaults);
   } else if (method == XDBTX_M_TXN) {
      apply_txn (L, vidx, o, t->txn);
   } else if (method == XDBTX_M_SESSION) {
      if (strcmp (o->lua, "causal_consistency") == 0) {
         mongoc_session_opts_set_causal_consistency (t->sopts, lua_toboolean (L, vidx));
      } else if (strcmp (o->lua, "snapshot") == 0) {
         mongoc_session_opts_set_snapshot (t->sopts, lua_toboolean (L, vidx));
      } else {
         mongoc_session_opts_set_default_transaction_opts (
            t->sopts, xdbtx_parse_txn_opts (L, vidx, fname, t->sc));
      }
   } else if (method & XDBTX_M_CLIENT) {
      xdbtx_toint64 (L, vidx, &n);
      if (strcmp (o->lua, "app_name") == 0) {
         t->pool->app_name = lua_tostring (L, vidx);
      } else if (strcmp (o->lua, "max_pool_size") == 0) {
         t->pool->max_pool_size = (int32_t) n;
      } else {
         t->pool->server_selection_timeout_ms = (int32_t) n;
      }
   } else {
      apply_op (L, vidx, o, fname, t->out, t->sc);
   }
}

/* Check (target NULL) or check and apply every key of the table at idx. */
static void
walk (lua_State *L, int idx, unsigned method, const char *fname, void *target)
{
   const char *key;
   size_t i;
   int top;

   if (lua_isnoneornil (L, idx)) {
      return;
   }
   idx = lua_absindex (L, idx);
   if (lua_type (L, idx) != LUA_TTABLE) {
      xdbtx_lua_raisef (L, "argument", "%s: options must be a table, got %s", fname,
                        luaL_typename (L, idx));
   }
   luaL_checkstack (L, 12, "xdbtx: options");
   lua_pushnil (L);
   while (lua_next (L, idx)) {
      top = lua_gettop (L);
      if (lua_type (L, -2) != LUA_TSTRING) {
         xdbtx_lua_raisef (L, "argument", "%s: option keys must be strings, got %s", fname,
                           luaL_typename (L, -2));
      }
      key = lua_tostring (L, -2);
      for (i = 0; i < NSPECS; i++) {
         if ((specs[i].methods & method) && strcmp (specs[i].lua, key) == 0) {
            break;
         }
      }
      if (i == NSPECS) {
         xdbtx_lua_raisef (L, "argument", "%s: unknown option '%s'", fname, key);
      }
      check_value (L, top, &specs[i], fname);
      if (target) {
         apply (L, top, &specs[i], method, fname, target);
      }
      lua_settop (L, top - 1);
   }
}

void
xdbtx_parse_opts (lua_State *L, int idx, unsigned method, const char *fname, bson_t *out,
                  lscratch_t *sc)
{
   target_t t = {out, sc, NULL, NULL, NULL, NULL};

   walk (L, idx, method, fname, &t);
}

mongoc_transaction_opt_t *
xdbtx_parse_txn_opts (lua_State *L, int idx, const char *fname, lscratch_t *sc)
{
   target_t t = {NULL, sc, NULL, NULL, NULL, NULL};

   walk (L, idx, XDBTX_M_TXN, fname, NULL);
   mongoc_transaction_opts_destroy (sc->txn);
   t.txn = sc->txn = mongoc_transaction_opts_new ();
   walk (L, idx, XDBTX_M_TXN, fname, &t);
   return sc->txn;
}

void
xdbtx_parse_session_opts (lua_State *L, int idx, const char *fname, lscratch_t *sc)
{
   target_t t = {NULL, sc, NULL, NULL, NULL, NULL};

   walk (L, idx, XDBTX_M_SESSION, fname, NULL);
   mongoc_session_opts_destroy (sc->sopts);
   t.sopts = sc->sopts = mongoc_session_opts_new ();
   walk (L, idx, XDBTX_M_SESSION, fname, &t);
}

void
xdbtx_parse_client_opts (lua_State *L, int idx, const char *fname, xdbtx_pool_opts_t *o,
                         lscratch_t *sc)
{
   target_t t = {NULL, sc, NULL, NULL, o, &sc->defaults};

   walk (L, idx, XDBTX_M_CLIENT | XDBTX_M_DEFAULTS, fname, &t);
   o->defaults = sc->defaults;
}

void
xdbtx_parse_defaults (lua_State *L, int idx, const char *fname, lscratch_t *sc)
{
   target_t t = {NULL, sc, NULL, NULL, NULL, &sc->defaults};

   walk (L, idx, XDBTX_M_DEFAULTS, fname, &t);
}

/* core.check_options(kind, opts, fname) -> true, or raises as the parser of
 * that kind ("transaction" | "session" | "client" | "defaults") would. */
int
xdbtx_l_check_options (lua_State *L)
{
   static const struct {
      const char *name;
      unsigned method;
   } kinds[] = {
      {"transaction", XDBTX_M_TXN},
      {"session", XDBTX_M_SESSION},
      {"client", XDBTX_M_CLIENT | XDBTX_M_DEFAULTS},
      {"defaults", XDBTX_M_DEFAULTS},
   };
   const char *kind = xdbtx_checkstring (L, 1, "check_options", "kind");
   const char *fname = lua_type (L, 3) == LUA_TSTRING ? lua_tostring (L, 3) : kind;
   size_t i;

   for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
      if (strcmp (kinds[i].name, kind) == 0) {
         walk (L, 2, kinds[i].method, fname, NULL);
         lua_pushboolean (L, 1);
         return 1;
      }
   }
   return xdbtx_argerror (L, "check_options", "unknown kind \"%s\"", kind);
}
