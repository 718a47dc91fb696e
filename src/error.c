/*
 * error.c - the core's error value (xdbtx_error_t).
 *
 * Errors are plain structs on the caller's stack; only the copied server
 * reply is heap memory, owned by the error. Labels are never stored apart
 * from the reply: MongoDB puts them in the reply document, so that is where
 * we read them.
 */
#include <stdio.h>
#include <string.h>

#include "xdbtx.h"

/* Only what readers look at is cleared: the text fields are strings, so
 * their first byte is enough (the struct is over 1 KB and made per call). */
void
xdbtx_error_init (xdbtx_error_t *err)
{
   err->domain = 0;
   err->code = 0;
   err->name[0] = '\0';
   err->message[0] = '\0';
   err->phase[0] = '\0';
   err->reply = NULL;
}

void
xdbtx_error_cleanup (xdbtx_error_t *err)
{
   if (err->reply) {
      bson_destroy (err->reply);
   }
   xdbtx_error_init (err);
}

static void
copy_str (char *dst, size_t n, const char *src)
{
   bson_strncpy (dst, src ? src : "", n);
}

void
xdbtx_error_set (xdbtx_error_t *err,
                 uint32_t domain,
                 int32_t code,
                 const char *phase,
                 const char *fmt,
                 ...)
{
   va_list ap;

   err->domain = domain;
   err->code = code;
   copy_str (err->phase, sizeof err->phase, phase);
   copy_str (err->name, sizeof err->name, xdbtx_code_name (code));
   va_start (ap, fmt);
   vsnprintf (err->message, sizeof err->message, fmt, ap);
   va_end (ap);
}

void
xdbtx_error_from_mongoc (xdbtx_error_t *err,
                         const bson_error_t *error,
                         const bson_t *reply,
                         const char *phase)
{
   bson_iter_t it;

   if (err->reply) {
      bson_destroy (err->reply);
      err->reply = NULL;
   }
   err->domain = error->domain;
   err->code = (int32_t) error->code;
   /* No server could be reached: the operation never ran, whatever it was. */
   if (error->domain == MONGOC_ERROR_SERVER_SELECTION && phase && strcmp (phase, "operation") == 0) {
      phase = "connect";
   }
   copy_str (err->phase, sizeof err->phase, phase);
   copy_str (err->message, sizeof err->message, error->message);
   /* Only server codes have MongoDB names; libmongoc's own codes do not. */
   copy_str (err->name,
             sizeof err->name,
             (error->domain == MONGOC_ERROR_SERVER ||
              error->domain == MONGOC_ERROR_WRITE_CONCERN)
                ? xdbtx_code_name (err->code)
                : NULL);
   if (reply && !bson_empty (reply)) {
      err->reply = bson_copy (reply);
      if (bson_iter_init_find (&it, reply, "codeName") &&
          BSON_ITER_HOLDS_UTF8 (&it)) {
         copy_str (err->name, sizeof err->name, bson_iter_utf8 (&it, NULL));
      }
   }
}

void
xdbtx_error_prefix (xdbtx_error_t *err, const char *fmt, ...)
{
   char head[XDBTX_ERR_MSG_LEN];
   char joined[2 * XDBTX_ERR_MSG_LEN + 3];
   va_list ap;

   va_start (ap, fmt);
   vsnprintf (head, sizeof head, fmt, ap);
   va_end (ap);
   snprintf (joined, sizeof joined, "%s: %s", head, err->message);
   bson_strncpy (err->message, joined, sizeof err->message);
}

bool
xdbtx_error_has_label (const xdbtx_error_t *err, const char *label)
{
   bson_iter_t it, child;

   if (!err->reply || !bson_iter_init_find (&it, err->reply, "errorLabels") ||
       !BSON_ITER_HOLDS_ARRAY (&it) || !bson_iter_recurse (&it, &child)) {
      return false;
   }
   while (bson_iter_next (&child)) {
      if (BSON_ITER_HOLDS_UTF8 (&child) &&
          strcmp (bson_iter_utf8 (&child, NULL), label) == 0) {
         return true;
      }
   }
   return false;
}

static const struct {
   int32_t code;
   const char *name;
} code_names[] = {
   {1, "InternalError"},
   {2, "BadValue"},
   {6, "HostUnreachable"},
   {7, "HostNotFound"},
   {8, "UnknownError"},
   {9, "FailedToParse"},
   {11, "UserNotFound"},
   {13, "Unauthorized"},
   {14, "TypeMismatch"},
   {20, "IllegalOperation"},
   {24, "LockTimeout"},
   {26, "NamespaceNotFound"},
   {27, "IndexNotFound"},
   {43, "CursorNotFound"},
   {48, "NamespaceExists"},
   {50, "MaxTimeMSExpired"},
   {59, "CommandNotFound"},
   {64, "WriteConcernFailed"},
   {67, "CannotCreateIndex"},
   {72, "InvalidOptions"},
   {79, "UnknownReplWriteConcern"},
   {85, "IndexOptionsConflict"},
   {86, "IndexKeySpecsConflict"},
   {89, "NetworkTimeout"},
   {91, "ShutdownInProgress"},
   {100, "UnsatisfiableWriteConcern"},
   {112, "WriteConflict"},
   {189, "PrimarySteppedDown"},
   {225, "TransactionTooOld"},
   {251, "NoSuchTransaction"},
   {256, "TransactionCommitted"},
   {262, "ExceededTimeLimit"},
   {263, "OperationNotSupportedInTransaction"},
   {9001, "SocketException"},
   {10107, "NotWritablePrimary"},
   {11000, "DuplicateKey"},
   {11600, "InterruptedAtShutdown"},
   {11602, "InterruptedDueToReplStateChange"},
   {13435, "NotPrimaryNoSecondaryOk"},
   {13436, "NotPrimaryOrSecondary"},
};

const char *
xdbtx_code_name (int32_t code)
{
   size_t i;

   for (i = 0; i < sizeof code_names / sizeof code_names[0]; i++) {
      if (code_names[i].code == code) {
         return code_names[i].name;
      }
   }
   return NULL;
}
