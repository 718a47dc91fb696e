/*
 * xdbtx.h - the C core of xdbtx: clients (process-wide pools), sessions,
 * transactions and errors on top of libmongoc/libbson.
 *
 * This header includes no Lua header: the core knows nothing of Lua. The Lua
 * binding (binding.c, exported as xdbtx.core) and the table<->BSON codec
 * (codec.c) use the core only through this file. Every function that can fail
 * returns bool and fills an xdbtx_error_t that the caller allocates (usually
 * on its stack) and later releases with xdbtx_error_cleanup().
 */
#ifndef XDBTX_H
#define XDBTX_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

/* Error domains, besides libmongoc's own (MONGOC_ERROR_*), which are kept as
 * they are. XDBTX_DOMAIN_* start far above libmongoc's numbers. */
#define XDBTX_DOMAIN_ARG 1001    /* bad input from the caller */
#define XDBTX_DOMAIN_CODEC 1002  /* BSON <-> Lua conversion */
#define XDBTX_DOMAIN_STATE 1003  /* misuse of a closed/ended object, nesting */
#define XDBTX_DOMAIN_TXN 1004    /* transaction protocol (timeouts, rollback) */

#define XDBTX_ERR_NAME_LEN 64
#define XDBTX_ERR_MSG_LEN 1024
#define XDBTX_ERR_PHASE_LEN 24

/* One failure. Plain data on the caller's stack, except `reply`, which the
 * error owns (NULL when there is none): release it with xdbtx_error_cleanup. */
typedef struct xdbtx_error_t {
   uint32_t domain;                  /* MONGOC_ERROR_* or XDBTX_DOMAIN_* */
   int32_t code;                     /* server or libmongoc code; 0 if none */
   char name[XDBTX_ERR_NAME_LEN];    /* codeName, e.g. "WriteConflict"; "" if unknown */
   char message[XDBTX_ERR_MSG_LEN];  /* one readable line */
   char phase[XDBTX_ERR_PHASE_LEN];  /* "operation", "commit", "encode", ... */
   bson_t *reply;                    /* the server reply (errorLabels live here), or NULL */
} xdbtx_error_t;

/* Set every field to empty. Always safe to call before any other use. */
void xdbtx_error_init (xdbtx_error_t *err);

/* Release what the error owns (the reply) and reset it to empty. Idempotent. */
void xdbtx_error_cleanup (xdbtx_error_t *err);

/* Fill err with a formatted message. Keeps nothing from the arguments. */
void xdbtx_error_set (xdbtx_error_t *err,
                      uint32_t domain,
                      int32_t code,
                      const char *phase,
                      const char *fmt,
                      ...) BSON_GNUC_PRINTF (5, 6);

/* Fill err from a libmongoc failure. Copies `reply` (may be NULL or empty);
 * takes codeName from the reply when present, and names well-known codes. */
void xdbtx_error_from_mongoc (xdbtx_error_t *err,
                              const bson_error_t *error,
                              const bson_t *reply,
                              const char *phase);

/* Prefix the message with a path or context: "ctx: message". */
void xdbtx_error_prefix (xdbtx_error_t *err, const char *fmt, ...)
   BSON_GNUC_PRINTF (2, 3);

/* True when the reply's errorLabels array contains `label`. */
bool xdbtx_error_has_label (const xdbtx_error_t *err, const char *label);

/* The codeName MongoDB uses for a server error code, or NULL. Static string. */
const char *xdbtx_code_name (int32_t code);

/* ---- clients: the process-wide pool registry (client.c) ----------------
 *
 * A pool is one registry entry per (URI, options) key. Entries live for the
 * whole process and are never freed, so any thread or Lua state may keep a
 * pointer to one. The mongoc_client_pool_t behind an entry is created lazily
 * on first use and recreated in a forked child (the parent's pool is then
 * abandoned, never destroyed: its threads do not exist in the child). */
typedef struct xdbtx_pool_t xdbtx_pool_t;
typedef struct xdbtx_session_t xdbtx_session_t;

/* The read concern, write concern and read preference an operation uses
 * when it sets none of its own; each NULL: the level above's. A client's
 * defaults belong to its pool (they are applied to its URI, as `w=`,
 * `readConcernLevel=` and `readPreference=` would be, so libmongoc applies
 * them everywhere, transactions included); a database's or collection's
 * belong to its handle (xdbtx_db_t, xdbtx_coll_t), which owns copies.
 * Inside a transaction libmongoc sends none of them: the transaction's
 * own options rule there. */
typedef struct xdbtx_defaults_t {
   mongoc_read_concern_t *read_concern;
   mongoc_write_concern_t *write_concern;
   mongoc_read_prefs_t *read_prefs;
} xdbtx_defaults_t;

/* Copy into dst each field that src sets (dst's previous value of that
 * field is released); the others stay. src may be NULL. */
void xdbtx_defaults_apply (xdbtx_defaults_t *dst, const xdbtx_defaults_t *src);
/* Release every field and set it to NULL. */
void xdbtx_defaults_cleanup (xdbtx_defaults_t *d);

/* Options that shape a pool; they are part of the registry key. */
typedef struct xdbtx_pool_opts_t {
   const char *app_name;                /* NULL: none */
   int32_t max_pool_size;               /* 0: libmongoc's default */
   int32_t server_selection_timeout_ms; /* 0: the URI's or libmongoc's */
   xdbtx_defaults_t defaults;           /* borrowed; applied to the URI */
} xdbtx_pool_opts_t;

/* One-time process setup (mongoc_init, the silent log handler). Idempotent,
 * thread-safe; xdbtx_pool_get calls it, so nothing else has to. */
void xdbtx_init (void);

/* Find or register the pool for uri+opts. Parses the URI now (phase
 * "connect" on error); connects nothing. The entry is owned by the registry. */
bool xdbtx_pool_get (const char *uri,
                     const xdbtx_pool_opts_t *opts,
                     xdbtx_pool_t **out,
                     xdbtx_error_t *err);

/* The registry key (same string for every user of the entry) and the URI as
 * given. Both owned by the entry, valid for the life of the process. */
const char *xdbtx_pool_id (const xdbtx_pool_t *pool);
const char *xdbtx_pool_uri (const xdbtx_pool_t *pool);

/* Borrow a client (creating the pool if needed). Returns NULL and fills err
 * (phase "connect") when the pool cannot be made or no client is free
 * within waitQueueTimeoutMS (default: the server selection timeout). Give it
 * back with xdbtx_pool_push on every path. */
mongoc_client_t *xdbtx_pool_pop (xdbtx_pool_t *pool, xdbtx_error_t *err);
void xdbtx_pool_push (xdbtx_pool_t *pool, mongoc_client_t *client);

/* True when this process has every client of the pool out (popped by
 * sessions, cursors or operations in flight): a pop would wait. */
bool xdbtx_pool_exhausted (const xdbtx_pool_t *pool);

/* Which process made the pool's libmongoc pool: *pid (0 when none was made
 * in this process yet) and *mpool (its address, NULL likewise). With make,
 * this process's pool is made now (no I/O: monitoring starts at the first
 * pop); false with err (phase "connect") when it cannot be made. */
bool xdbtx_pool_origin (xdbtx_pool_t *pool, bool make, pid_t *pid, const void **mpool,
                        xdbtx_error_t *err);

/* "replicaset" | "standalone" | "sharded" | "unknown" by server selection
 * (no command is sent). Static string; NULL with err (phase "connect"). */
const char *xdbtx_pool_topology (xdbtx_pool_t *pool, xdbtx_error_t *err);

/* Run a command (primary unless read_prefs says otherwise). `session` may
 * be NULL; `opts` (may be NULL) gets the sessionId appended. reply is always
 * initialised and owned by the caller. Phase "operation". */
bool xdbtx_pool_command (xdbtx_pool_t *pool,
                         xdbtx_session_t *session,
                         const char *db,
                         const bson_t *cmd,
                         const mongoc_read_prefs_t *read_prefs,
                         bson_t *opts,
                         bson_t *reply,
                         xdbtx_error_t *err);

/* Command monitoring. Recording is per pool and off by default; APM
 * callbacks only copy events into a bounded queue (XDBTX_EVENTS_MAX; later
 * events are counted as dropped) and never call out. */
#define XDBTX_EVENTS_MAX 10000

typedef enum {
   XDBTX_EVENT_STARTED,
   XDBTX_EVENT_SUCCEEDED,
   XDBTX_EVENT_FAILED
} xdbtx_event_type_t;

typedef struct xdbtx_event_t {
   xdbtx_event_type_t type;
   char command_name[64];
   char database_name[128]; /* started only */
   int64_t request_id;
   int64_t duration_us;     /* succeeded/failed */
   bson_t *doc;             /* command (started) or reply (others); owned */
   char error[256];         /* failed only */
   struct xdbtx_event_t *next;
} xdbtx_event_t;

void xdbtx_pool_monitor (xdbtx_pool_t *pool, bool on);

/* Give client (popped from pool) the command callbacks when pool monitors,
 * none when it does not (a no-op where libmongoc keeps them on the whole
 * pool). Pops do it; so does every command on a client held for a while (a
 * session's, a cursor's), so a listener sees it from its next command. */
void xdbtx_pool_apm_sync (xdbtx_pool_t *pool, mongoc_client_t *client);

/* Take every recorded event, oldest first; the caller owns the list and
 * frees it with xdbtx_events_free. *dropped gets how many were lost. */
xdbtx_event_t *xdbtx_pool_drain (xdbtx_pool_t *pool, uint32_t *dropped);
void xdbtx_events_free (xdbtx_event_t *list);

/* ---- sessions (session.c) ---------------------------------------------- */

/* Start a session on a client popped from pool; the session owns that
 * client until xdbtx_session_destroy. opts may be NULL (copied). */
xdbtx_session_t *xdbtx_session_new (xdbtx_pool_t *pool,
                                    const mongoc_session_opt_t *opts,
                                    xdbtx_error_t *err);

/* Close cursors still open on it, abort an open transaction (errors
 * ignored), end the session, push the client back. NULL-safe. In a forked
 * child the parent's objects are abandoned, not touched. */
void xdbtx_session_destroy (xdbtx_session_t *s);

/* false with phase "state" when the session cannot be used by this process. */
bool xdbtx_session_usable (const xdbtx_session_t *s, xdbtx_error_t *err);

bool xdbtx_session_start_transaction (xdbtx_session_t *s,
                                      const mongoc_transaction_opt_t *opts,
                                      xdbtx_error_t *err);
/* Commit; again after a failed commit re-sends it (libmongoc adds
 * w:majority). err->reply carries the labels. Phase "commit". */
bool xdbtx_session_commit (xdbtx_session_t *s, xdbtx_error_t *err);
/* Abort; false only for misuse (phase "abort"). */
bool xdbtx_session_abort (xdbtx_session_t *s, xdbtx_error_t *err);
bool xdbtx_session_in_transaction (const xdbtx_session_t *s);
/* "none" | "starting" | "in_progress" | "committed" | "aborted". Static. */
const char *xdbtx_session_state (const xdbtx_session_t *s);
/* The lsid document, owned by the session. */
const bson_t *xdbtx_session_lsid (const xdbtx_session_t *s);
xdbtx_pool_t *xdbtx_session_pool (const xdbtx_session_t *s);

/* ---- collections (collection.c) and cursors (cursor.c) ----------------
 *
 * Every operation takes an optional session (NULL: a client is borrowed from
 * the pool for the call, with libmongoc's implicit session). `opts` is the
 * caller's libmongoc opts document (may be NULL); with a session the
 * operation appends sessionId to it (or to opts of its own when NULL).
 * `reply` is always initialised and owned by the caller. Errors carry the
 * reply and phase "operation". */
typedef struct xdbtx_coll_t xdbtx_coll_t;
typedef struct xdbtx_cursor_t xdbtx_cursor_t;

/* A new handle on db.name (copied), with copies of the fields `defaults`
 * sets (may be NULL). Owned by the caller. */
xdbtx_coll_t *xdbtx_coll_new (xdbtx_pool_t *pool, const char *db, const char *name,
                              const xdbtx_defaults_t *defaults);
void xdbtx_coll_destroy (xdbtx_coll_t *c);
const char *xdbtx_coll_db (const xdbtx_coll_t *c);
const char *xdbtx_coll_name (const xdbtx_coll_t *c);
xdbtx_pool_t *xdbtx_coll_pool (const xdbtx_coll_t *c);

typedef enum {
   XDBTX_UPDATE_ONE,
   XDBTX_UPDATE_MANY,
   XDBTX_REPLACE_ONE
} xdbtx_update_kind_t;

bool xdbtx_coll_insert_one (xdbtx_coll_t *c, xdbtx_session_t *s,
                            const bson_t *doc, bson_t *opts,
                            bson_t *reply, xdbtx_error_t *err);
bool xdbtx_coll_insert_many (xdbtx_coll_t *c, xdbtx_session_t *s,
                             bson_t **docs, size_t n, bson_t *opts,
                             bson_t *reply, xdbtx_error_t *err);
bool xdbtx_coll_update (xdbtx_coll_t *c, xdbtx_session_t *s,
                        xdbtx_update_kind_t kind, const bson_t *filter,
                        const bson_t *update, bson_t *opts,
                        bson_t *reply, xdbtx_error_t *err);
bool xdbtx_coll_delete (xdbtx_coll_t *c, xdbtx_session_t *s, bool many,
                        const bson_t *filter, bson_t *opts,
                        bson_t *reply, xdbtx_error_t *err);
/* findAndModify; fam gets the sessionId appended to its extra options. The
 * reply's "value" is the document (or null). */
bool xdbtx_coll_find_and_modify (xdbtx_coll_t *c, xdbtx_session_t *s,
                                 const bson_t *filter,
                                 mongoc_find_and_modify_opts_t *fam,
                                 bson_t *reply, xdbtx_error_t *err);
bool xdbtx_coll_count (xdbtx_coll_t *c, xdbtx_session_t *s,
                       const bson_t *filter, bson_t *opts,
                       const mongoc_read_prefs_t *prefs, int64_t *count,
                       xdbtx_error_t *err);

/* distinct: reply (always initialised, the caller's) holds "values". */
bool xdbtx_coll_distinct (xdbtx_coll_t *c, xdbtx_session_t *s, const char *field,
                          const bson_t *filter, bson_t *opts,
                          const mongoc_read_prefs_t *prefs, bson_t *reply,
                          xdbtx_error_t *err);
/* The collection's count from its metadata: the `count` command without
 * a query, as libmongoc's estimated_document_count sends it (which itself
 * takes no session). */
bool xdbtx_coll_estimated_count (xdbtx_coll_t *c, xdbtx_session_t *s, bson_t *opts,
                                 const mongoc_read_prefs_t *prefs, int64_t *count,
                                 xdbtx_error_t *err);

/* Open a cursor (find or aggregate over `pipeline`, a {pipeline: [...]}
 * document). Returns a new cursor owned by the caller (and registered with
 * the session, which closes it first if the session closes first). */
xdbtx_cursor_t *xdbtx_coll_find (xdbtx_coll_t *c, xdbtx_session_t *s,
                                 const bson_t *filter, bson_t *opts,
                                 const mongoc_read_prefs_t *prefs,
                                 xdbtx_error_t *err);
xdbtx_cursor_t *xdbtx_coll_aggregate (xdbtx_coll_t *c, xdbtx_session_t *s,
                                      const bson_t *pipeline, bson_t *opts,
                                      const mongoc_read_prefs_t *prefs,
                                      xdbtx_error_t *err);

/* Next document (borrowed, valid until the next call) or NULL at the end
 * or on error (err set, phase "operation"; then *failed is true). */
const bson_t *xdbtx_cursor_next (xdbtx_cursor_t *cur, bool *failed, xdbtx_error_t *err);
/* Frees the server cursor (killCursors if still open) and gives back a
 * borrowed client. NULL-safe. */
void xdbtx_cursor_destroy (xdbtx_cursor_t *cur);
/* True when the cursor's session closed it under the caller. */
bool xdbtx_cursor_closed (const xdbtx_cursor_t *cur);

/* ---- the commit phase of several sessions (commit.c) -------------------- */

typedef enum {
   XDBTX_COMMIT_PENDING, /* not tried (the phase stopped before it) */
   XDBTX_COMMIT_OK,      /* committed */
   XDBTX_COMMIT_FAILED,  /* not committed: the server said no (error has why) */
   XDBTX_COMMIT_UNKNOWN, /* the result never became known before the deadline */
   XDBTX_COMMIT_ABORTED  /* aborted unsent: an earlier commit did not succeed */
} xdbtx_commit_state_t;

/* One session of a commit phase. The caller fills `session` and owns the
 * item; xdbtx_commit_all fills the rest (the item owns its errors: release
 * them with xdbtx_commit_cleanup). */
typedef struct xdbtx_commit_t {
   xdbtx_session_t *session;
   xdbtx_commit_state_t state;
   int attempts;          /* commitTransaction sends */
   double started;        /* xdbtx_now() at the first send, and after the last */
   double finished;
   xdbtx_error_t error;   /* the last error, for FAILED and UNKNOWN */
   xdbtx_error_t *retried; /* the errors of the sends that were sent again */
   int n_retried;          /* (attempts - 1 of them; the caller reports them) */
} xdbtx_commit_t;

/* Commit items[0..n) (each on a session of its own client). In order: stop at
 * the first that is not OK and abort the rest (state ABORTED); parallel: all
 * at once, each from a thread of its own. An unknown result is retried until
 * known or `deadline` (xdbtx_now() seconds). Never fails as a whole. */
void xdbtx_commit_all (xdbtx_commit_t *items, size_t n, bool parallel, double deadline);

/* Release what items[0..n) own (their errors) and empty them. Idempotent. */
void xdbtx_commit_cleanup (xdbtx_commit_t *items, size_t n);

/* Seconds of the monotonic clock (the one core.now() reads). */
double xdbtx_now (void);

/* ---- bulk writes (bulk.c) ----------------------------------------------- */

typedef enum {
   XDBTX_BULK_INSERT_ONE,
   XDBTX_BULK_UPDATE_ONE,
   XDBTX_BULK_UPDATE_MANY,
   XDBTX_BULK_REPLACE_ONE,
   XDBTX_BULK_DELETE_ONE,
   XDBTX_BULK_DELETE_MANY
} xdbtx_bulk_kind_t;

/* One request; every document is borrowed from the caller. */
typedef struct xdbtx_bulk_req_t {
   xdbtx_bulk_kind_t kind;
   const bson_t *doc;    /* insert: the document (with its _id); else the filter */
   const bson_t *update; /* update: operators or pipeline; replace: the document */
   const bson_t *opts;   /* upsert, arrayFilters, hint, collation; may be NULL */
} xdbtx_bulk_req_t;

/* Run reqs[0..n-1] as one libmongoc bulk operation (ordered unless opts
 * says ordered: false; opts may also carry writeConcern, comment and
 * bypassDocumentValidation). reply (always initialised, the caller's) is
 * libmongoc's: nInserted, nMatched, nModified, nRemoved, nUpserted,
 * upserted [{index, _id}], writeErrors [{index, code, errmsg}],
 * writeConcernErrors; indexes are positions in reqs (0-based). On failure
 * the reply is the partial result. n must be > 0. */
bool xdbtx_coll_bulk_write (xdbtx_coll_t *c, xdbtx_session_t *s,
                            const xdbtx_bulk_req_t *reqs, size_t n, bson_t *opts,
                            bson_t *reply, xdbtx_error_t *err);

/* ---- indexes, drops, listings (admin.c) ---------------------------------
 *
 * Through libmongoc's cursor helpers (find_indexes, find_collections,
 * find_databases) and its write-command helpers, which apply the handle's
 * defaults and keep the server reply (where labels live) on failure. */

/* createIndexes with `indexes` (an array of index documents {key, name,
 * ...}); reply always initialised, the caller's. */
bool xdbtx_coll_create_indexes (xdbtx_coll_t *c, xdbtx_session_t *s,
                                const bson_t *indexes, bson_t *opts, bson_t *reply,
                                xdbtx_error_t *err);
/* The index documents, appended to `out` (an array the caller made) as
 * "0", "1", ...: empty when the collection does not exist. */
bool xdbtx_coll_list_indexes (xdbtx_coll_t *c, xdbtx_session_t *s, bson_t *opts,
                              bson_t *out, xdbtx_error_t *err);
/* dropIndexes of one index by name, or of all but _id's with "*". */
bool xdbtx_coll_drop_index (xdbtx_coll_t *c, xdbtx_session_t *s, const char *name,
                            bson_t *opts, bson_t *reply, xdbtx_error_t *err);
/* drop; a collection that does not exist (NamespaceNotFound) is not an
 * error: *dropped tells which it was. */
bool xdbtx_coll_drop (xdbtx_coll_t *c, xdbtx_session_t *s, bson_t *opts, bool *dropped,
                      xdbtx_error_t *err);

/* A database handle: (pool, name, defaults), like a collection's. */
typedef struct xdbtx_db_t xdbtx_db_t;

/* A new handle (name and defaults copied). Owned by the caller. */
xdbtx_db_t *xdbtx_db_new (xdbtx_pool_t *pool, const char *name,
                          const xdbtx_defaults_t *defaults);
void xdbtx_db_destroy (xdbtx_db_t *db);
const char *xdbtx_db_name (const xdbtx_db_t *db);
xdbtx_pool_t *xdbtx_db_pool (const xdbtx_db_t *db);
/* The handle's own defaults (owned by it). */
const xdbtx_defaults_t *xdbtx_db_defaults (const xdbtx_db_t *db);
/* dropDatabase (never an error for a database that does not exist). */
bool xdbtx_db_drop (xdbtx_db_t *db, xdbtx_session_t *s, bson_t *opts, bson_t *reply,
                    xdbtx_error_t *err);
/* The names (listCollections, nameOnly) of the collections matching
 * filter (may be NULL), appended to the array `out` as strings. */
bool xdbtx_db_collection_names (xdbtx_db_t *db, xdbtx_session_t *s, const bson_t *filter,
                                bson_t *opts, bson_t *out, xdbtx_error_t *err);
/* The database names (listDatabases, nameOnly) appended to the array out. */
bool xdbtx_pool_database_names (xdbtx_pool_t *pool, xdbtx_session_t *s, bson_t *opts,
                                bson_t *out, xdbtx_error_t *err);

#endif /* XDBTX_H */
