/*
 * xcore.h - private layouts shared by the core's files (client.c,
 * session.c, collection.c, cursor.c, bulk.c, admin.c). Not for the binding: it sees only the
 * opaque types of xdbtx.h. Includes no Lua header.
 *
 * Ownership in one line each: the registry owns pools; a session owns one
 * popped client and its mongoc session; a cursor owns its mongoc cursor and,
 * without a session, the client it borrowed; a session keeps a list of its
 * open cursors (not owning them) so it can close them before itself.
 */
#ifndef XDBTX_XCORE_H
#define XDBTX_XCORE_H

#include <sys/types.h>

#include "xdbtx.h"

struct xdbtx_session_t {
   xdbtx_pool_t *pool;
   mongoc_client_t *client;         /* popped at start, pushed at destroy */
   mongoc_client_session_t *cs;
   pid_t pid;                       /* the process that popped `client` */
   struct xdbtx_cursor_t *cursors;  /* open cursors on this session */
   bool txn_reads_secondary;        /* the transaction's read preference */
   bool has_default_txn_opts;       /* started with default transaction options */
};

struct xdbtx_cursor_t {
   mongoc_cursor_t *mc;        /* NULL once closed or drained */
   bson_t **buf;               /* drained: the rest of the last batch, owned */
   size_t nbuf, ibuf;
   bson_t *held;               /* the document last returned from buf, owned */
   bool drained;               /* the server had no more: buf holds the rest */
   xdbtx_pool_t *pool;
   mongoc_client_t *borrowed;  /* pushed back at close; NULL with a session */
   xdbtx_session_t *session;   /* NULL without one */
   pid_t pid;
   struct xdbtx_cursor_t *next, *prev; /* in session->cursors */
};

/* Link/unlink a cursor into its session's list (cursor.c). */
void xdbtx_cursor_link (xdbtx_cursor_t *cur, xdbtx_session_t *s);
/* Close the mongoc cursor now, keep the struct for its owner (cursor.c). */
void xdbtx_cursor_close (xdbtx_cursor_t *cur);

/* The client an operation runs on: the session's, or one borrowed from the
 * pool. xdbtx_op_end gives a borrowed one back (session.c). */
typedef struct xdbtx_op_t {
   bson_t own;              /* opts made here when the caller gave none */
   bson_t *opts;            /* what to pass libmongoc: the caller's or `own` */
   xdbtx_pool_t *pool;
   mongoc_client_t *client;
   bool borrowed;
} xdbtx_op_t;

/* Get the client; with a session, append its sessionId to opts (or to
 * op->opts made here when opts is NULL), so an operation never runs outside
 * the session it was given. Use op->opts for the libmongoc call. false with
 * err (phase "state"/"connect"/"operation"). */
bool xdbtx_op_begin (xdbtx_op_t *op,
                     xdbtx_pool_t *pool,
                     xdbtx_session_t *s,
                     bson_t *opts,
                     xdbtx_error_t *err);
void xdbtx_op_end (xdbtx_op_t *op);

/* Begin an operation on a collection handle: its client (as
 * xdbtx_op_begin) and the handle's mongoc_collection_t for that client,
 * with the handle's defaults (libmongoc applies them only outside a
 * transaction); the handle owns it and keeps it for its next call. reply
 * (may be NULL) is initialised on failure. NULL with err on failure. */
mongoc_collection_t *xdbtx_coll_begin (xdbtx_op_t *op, xdbtx_coll_t *c, xdbtx_session_t *s,
                                       bson_t *opts, bson_t *reply, xdbtx_error_t *err);
/* End it: fill err from error and reply when !ok (phase "operation"), give
 * a borrowed client back (mc stays with the handle). Returns ok. */
bool xdbtx_coll_end (xdbtx_op_t *op, mongoc_collection_t *mc, bool ok,
                     const bson_error_t *error, const bson_t *reply, xdbtx_error_t *err);

/* For reads: false with err when s is in a transaction whose read
 * preference is not primary (libmongoc would first wait for a secondary). */
bool xdbtx_session_check_read (const xdbtx_session_t *s, xdbtx_error_t *err);

/* The current process id, cached (client.c); fork-safe via pthread_atfork. */
pid_t xdbtx_getpid (void);

/* pool_key.c: the registry key of (uri, o), and key with its secrets (the
 * URI's password, *Password= option values) as *** (new strings). */
char *xdbtx_pool_key (const char *uri, const xdbtx_pool_opts_t *o);
char *xdbtx_redact (const char *key);

#endif /* XDBTX_XCORE_H */
