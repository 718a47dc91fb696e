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
#define XDBTX_DOMAIN_SERVER 1000 /* a server reply with ok:0 or a write error */
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

#endif /* XDBTX_H */
