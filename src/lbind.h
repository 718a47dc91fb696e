/*
 * lbind.h - private header of the binding's object files (binding.c,
 * lsession.c, lcollection.c, lcursor.c, ldocs.c, lopts.c): userdata
 * layouts, metatable names and the helpers they share. Never installed.
 *
 * Every C object Lua sees is a box holding one core pointer; NULL means
 * closed. A child pins its parent in its user value (collection -> client,
 * session -> client, cursor -> session or collection), so the collector
 * finalises cursors before sessions before clients. Input documents of one
 * call live in a scratch box whose __gc frees them if the call raises.
 */
#ifndef XDBTX_LBIND_H
#define XDBTX_LBIND_H

#include "lxdbtx.h"

#define XDBTX_CLIENT_MT "xdbtx.Client"
#define XDBTX_COLLECTION_MT "xdbtx.Collection"
#define XDBTX_DATABASE_MT "xdbtx.Database"
#define XDBTX_SESSION_MT "xdbtx.Session"
#define XDBTX_CURSOR_MT "xdbtx.Cursor"
#define XDBTX_SCRATCH_MT "xdbtx.scratch"

/* The kinds of box the hot paths check. Every such box starts with its tag,
 * XDBTX_BOX_TAG (kind), written when it is made: xdbtx_testudata compares
 * the box's size and tag, which costs no table lookup (finding the
 * metatable in the registry cost about 150 instructions, and a 3-operation
 * transaction makes eleven checks). Only C code writes a userdata's bytes;
 * another library's userdata would need our size and this 64-bit word. */
enum {
   XDBTX_BOX_CLIENT,
   XDBTX_BOX_COLLECTION,
   XDBTX_BOX_SESSION,
   XDBTX_BOX_CURSOR,
   XDBTX_BOX_KINDS
};
#define XDBTX_BOX_TAG(kind) (UINT64_C (0x78646274785f6200) | (uint64_t) (kind)) /* "xdbtx_b" */

/* The userdata at idx when it is a box of kind, else NULL. */
void *xdbtx_testudata (lua_State *L, int idx, int kind);

typedef struct {
   uint64_t tag;       /* XDBTX_BOX_TAG (XDBTX_BOX_CLIENT) */
   xdbtx_pool_t *pool; /* registry entry: never freed, so never NULL */
} lclient_t;

typedef struct {
   uint64_t tag;       /* XDBTX_BOX_TAG (XDBTX_BOX_COLLECTION) */
   xdbtx_coll_t *coll; /* owned; freed by __gc */
} lcollection_t;

typedef struct {
   xdbtx_db_t *db; /* owned; freed by __gc */
} ldatabase_t;

typedef struct {
   uint64_t tag;       /* XDBTX_BOX_TAG (XDBTX_BOX_SESSION) */
   xdbtx_session_t *s; /* owned; NULL once closed */
} lsession_t;

typedef struct {
   uint64_t tag;         /* XDBTX_BOX_TAG (XDBTX_BOX_CURSOR) */
   xdbtx_cursor_t *cur; /* owned; NULL once closed */
   xdbtx_error_t *failure; /* owned: what it failed with (every later read
                              raises it again), or NULL */
} lcursor_t;

#define XDBTX_SCRATCH_DOCS 7 /* the last one is the option parser's */
#define XDBTX_SCRATCH_MAGIC 0x78536372u

/* Memory of one call. Everything here is freed by scratch_free (also its
 * __gc and __close), so an error raised at any point leaks nothing. Under
 * Lua 5.4 each Lua state keeps one box for its calls (a to-be-closed slot
 * releases it when the call returns or raises; a call made while it is in
 * use, from a __tobson metamethod say, gets a box of its own), and the
 * documents keep their buffers from call to call. */
typedef struct {
   uint32_t magic;                     /* XDBTX_SCRATCH_MAGIC */
   bool cached;                        /* the state's box (reused) */
   bool busy;                          /* a call holds the cached box */
   bson_t *doc[XDBTX_SCRATCH_DOCS];    /* bson_new'ed on demand */
   bson_t **many;                      /* insert_many documents */
   size_t nmany, capmany;
   mongoc_read_prefs_t *prefs;
   mongoc_find_and_modify_opts_t *fam;
   mongoc_transaction_opt_t *txn;
   mongoc_session_opt_t *sopts;
   xdbtx_defaults_t defaults;          /* parsed client/database/collection defaults */
   void *mem;                          /* one bson_malloc'ed block (bulk requests) */
} lscratch_t;

/* Push a scratch box for this call (empty); returns it. */
lscratch_t *xdbtx_scratch_new (lua_State *L);
/* Free everything in it now (idempotent); the state's box keeps small
 * document buffers for the next call. */
void xdbtx_scratch_free (lscratch_t *sc);
/* The i-th document, created empty on first use. */
bson_t *xdbtx_scratch_doc (lscratch_t *sc, int i);

/* Raise "<fname>: <formatted message>" as an xdbtx.Error (phase and domain
 * "argument"). Messages name the argument and say what was expected and
 * what was given: "insert_one: document must be a table, got nil". */
int xdbtx_argerror (lua_State *L, const char *fname, const char *fmt, ...);
/* The string at idx, or raise naming `what`; a string with a NUL byte is
 * refused too (C would silently cut it there). */
const char *xdbtx_checkstring (lua_State *L, int idx, const char *fname, const char *what);
/* The integer at idx (an integral number) into *out; false if not one. */
bool xdbtx_toint64 (lua_State *L, int idx, int64_t *out);

/* Encode the table at idx into doc or raise (phase "encode"); `what` names
 * the argument in the message ("filter", "document", ...). */
void xdbtx_encode_or_raise (lua_State *L, int idx, bson_t *doc, const char *fname,
                            const char *what);
/* Push the decoded doc or raise (phase "decode"). */
void xdbtx_push_doc (lua_State *L, const bson_t *doc);
/* Push the decoded reply and destroy it, also when decoding fails (then
 * raise). Returns 1. */
int xdbtx_push_reply (lua_State *L, bson_t *reply);

/* Before an operation that borrows a pooled client: when every client of the
 * pool is out, run a full garbage collection first, so that cursors and
 * sessions nobody closed give theirs back instead of the call waiting. */
void xdbtx_reclaim (lua_State *L, xdbtx_pool_t *pool);

/* Pin the value at parent in the user value of the userdata at ud, and
 * push it back. */
void xdbtx_pin (lua_State *L, int ud, int parent);
void xdbtx_push_pinned (lua_State *L, int ud);

/* The Session at idx: NULL for none/nil/false; raises phase "state" when it
 * is closed, an argument error when it is something else. */
xdbtx_session_t *xdbtx_check_session (lua_State *L, int idx, const char *fname);
lclient_t *xdbtx_check_client (lua_State *L, int idx);

/* Operation kinds, for the option tables. */
enum {
   XDBTX_M_INSERT_ONE = 1 << 0,
   XDBTX_M_INSERT_MANY = 1 << 1,
   XDBTX_M_UPDATE = 1 << 2,
   XDBTX_M_REPLACE = 1 << 3,
   XDBTX_M_DELETE = 1 << 4,
   XDBTX_M_FIND = 1 << 5,
   XDBTX_M_FIND_ONE = 1 << 6,
   XDBTX_M_FAM_UPDATE = 1 << 7,
   XDBTX_M_FAM_REPLACE = 1 << 8,
   XDBTX_M_FAM_DELETE = 1 << 9,
   XDBTX_M_COUNT = 1 << 10,
   XDBTX_M_AGGREGATE = 1 << 11,
   XDBTX_M_COMMAND = 1 << 12,
   XDBTX_M_DISTINCT = 1 << 13,
   XDBTX_M_EST_COUNT = 1 << 14,       /* estimated_document_count */
   XDBTX_M_BULK = 1 << 15,            /* bulk_write's own options */
   XDBTX_M_BULK_INSERT = 1 << 16,     /* one request of a bulk_write, by kind */
   XDBTX_M_BULK_UPDATE = 1 << 17,
   XDBTX_M_BULK_REPLACE = 1 << 18,
   XDBTX_M_BULK_DELETE = 1 << 19,
   XDBTX_M_CREATE_INDEX = 1 << 20,    /* index options and command options */
   XDBTX_M_CREATE_INDEXES = 1 << 21,  /* command options */
   XDBTX_M_INDEX_MODEL = 1 << 22,     /* one index of create_indexes */
   XDBTX_M_DDL = 1 << 23,             /* drop, drop_index(es), database drop */
   XDBTX_M_LIST = 1 << 24,            /* list_indexes, list_collection_names */
   XDBTX_M_LIST_DATABASES = 1 << 25,
   XDBTX_M_TXN = 1 << 26,             /* transaction options */
   XDBTX_M_SESSION = 1 << 27,         /* start_session options */
   XDBTX_M_CLIENT = 1 << 28,          /* client (pool) options */
   XDBTX_M_DEFAULTS = 1 << 29         /* read/write concern, read preference defaults */
};

/* The option parser (lopts.c): one table of rows for every kind below.
 * Each raises "<fname>: unknown option 'k'" or "<fname>: option 'k' must be
 * ..., got v" before it builds anything. */

/* Translate the option table at idx (nil: none) for `method` (an
 * XDBTX_M_* operation bit) into libmongoc opts appended to out; a
 * read_preference becomes sc->prefs. */
void xdbtx_parse_opts (lua_State *L, int idx, unsigned method, const char *fname,
                       bson_t *out, lscratch_t *sc);
/* Transaction options into a new mongoc_transaction_opt_t owned by sc->txn. */
mongoc_transaction_opt_t *xdbtx_parse_txn_opts (lua_State *L, int idx, const char *fname,
                                                lscratch_t *sc);
/* start_session options into a new sc->sopts. */
void xdbtx_parse_session_opts (lua_State *L, int idx, const char *fname, lscratch_t *sc);
/* Client options into *o (strings stay owned by the option table; the
 * defaults are built in sc->defaults, which o->defaults borrows). */
void xdbtx_parse_client_opts (lua_State *L, int idx, const char *fname, xdbtx_pool_opts_t *o,
                              lscratch_t *sc);
/* Database/collection defaults (read_concern, write_concern,
 * read_preference; nil: none) into sc->defaults. */
void xdbtx_parse_defaults (lua_State *L, int idx, const char *fname, lscratch_t *sc);
/* core.check_options(kind, opts, fname) -> true (the Lua layer's check). */
int xdbtx_l_check_options (lua_State *L);

/* Register the commit-phase metatable (lcommit.c). */
void xdbtx_open_commit (lua_State *L);

/* core.commit_all(sessions, parallel, deadline) (lcommit.c). */
int xdbtx_l_commit_all (lua_State *L);

/* Register the Session / Collection / Cursor metatables (lsession.c,
 * lcollection.c, lcursor.c; the collection first: lcursor.c adds its
 * find, find_one and aggregate to it). */
void xdbtx_open_session (lua_State *L);
void xdbtx_open_collection (lua_State *L);
void xdbtx_open_cursor (lua_State *L);
/* Add bulk_write (lbulk.c); the Database metatable, client:database,
 * client:list_database_names and the Collection's distinct,
 * estimated_document_count, index methods and drop (ladmin.c). */
void xdbtx_open_bulk (lua_State *L);
void xdbtx_open_admin (lua_State *L);
/* Add core.fast_method to the module table on top (lfast.c; Lua 5.4). */
void xdbtx_open_fast (lua_State *L);
/* Add regs to the method table (__index) of the registered metatable mt. */
void xdbtx_add_methods (lua_State *L, const char *mt, const luaL_Reg *regs);

/* ---- shared by the Collection methods (lcollection.c) ------------------ */

/* The Collection at argument 1 (raises otherwise), after fixing the
 * argument slots to 5 so nothing pushed later moves them. */
lcollection_t *xdbtx_check_coll (lua_State *L);
/* The session argument (2) of an operation; without one the call borrows a
 * pooled client, so unclosed ones are reclaimed first when the pool is out. */
xdbtx_session_t *xdbtx_op_session (lua_State *L, lcollection_t *c, const char *fname);
/* Free the call's memory (the scratch box, reply if not NULL), raise err. */
int xdbtx_raise_with (lua_State *L, lscratch_t *sc, bson_t *reply, xdbtx_error_t *err);
/* Set field of the table on top to reply[key] as an integer (0 if absent). */
void xdbtx_push_count (lua_State *L, const bson_t *reply, const char *key, const char *field);
/* Push one decoded value or raise (phase "decode"). */
void xdbtx_push_value (lua_State *L, const bson_value_t *v);

/* ---- argument documents (ldocs.c) -------------------------------------- */

/* Point it at the _id of doc; false if doc has none. */
bool xdbtx_find_id (const bson_t *doc, bson_iter_t *it);
/* Encode the document at idx into sc->doc[slot] with an _id (a new
 * ObjectId first when it had none); returns the final document, which stays
 * owned by sc (sc->doc[slot]). `what` names it in errors ("document",
 * "documents[3]"). */
bson_t *xdbtx_encode_with_id (lua_State *L, int idx, lscratch_t *sc, int slot,
                              const char *fname, const char *what);
/* Encode the document at idx whose key order matters (a sort, a hint, index
 * keys, a command) into out: an xdbtx.ordered value, a list of pairs
 * { { "b", -1 }, { "a", 1 } }, or a table with at most one key; a plain
 * table with several keys raises naming `what`. */
void xdbtx_encode_ordered (lua_State *L, int idx, bson_t *out, const char *fname,
                           const char *what);
/* Append the list of documents at idx (a pipeline, array_filters) under key
 * to out as a BSON array, or raise naming it `what` ("pipeline must be a
 * list of stages, got ...", "pipeline[2] must be a document, got number";
 * `items`: "stages", "documents"). An empty table, plain or not, is the
 * empty list. sc->doc[slot] is its scratch. */
void xdbtx_append_doc_list (lua_State *L, int idx, bson_t *out, const char *key, lscratch_t *sc,
                            int slot, const char *fname, const char *what, const char *items);
/* Encode an update into sc->doc[slot]: a non-empty document of $-operators
 * or a non-empty pipeline (a list of stages); anything else raises. */
bson_t *xdbtx_encode_update (lua_State *L, int idx, lscratch_t *sc, int slot,
                             const char *fname);
/* Encode a replacement into sc->doc[slot]: no $-keys at its top level. */
bson_t *xdbtx_encode_replacement (lua_State *L, int idx, lscratch_t *sc, int slot,
                                  const char *fname);
/* The length of the list at idx (keys exactly 1..n), or raise naming it
 * `what` ("documents", "requests", ...). */
size_t xdbtx_check_list (lua_State *L, int idx, const char *fname, const char *what);

/* Make a Session / Collection userdata for the Client at client_idx. */
int xdbtx_session_push_new (lua_State *L, int client_idx, int opts_idx);
int xdbtx_collection_push_new (lua_State *L, int client_idx, const char *db, const char *name,
                               const xdbtx_defaults_t *defaults);
/* The command at cmd_idx on db, in the session at s_idx (nil: none), with
 * the command options at opts_idx; pushes the reply. Shared by
 * client:command and db:command. */
int xdbtx_run_command (lua_State *L, xdbtx_pool_t *pool, int s_idx, const char *db, int cmd_idx,
                       int opts_idx);

#endif /* XDBTX_LBIND_H */
