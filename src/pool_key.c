/*
 * pool_key.c - the text that names a pool: its registry key (the URI as
 * given plus the client options, client.c's registry compares it) and the
 * same with its secrets hidden, the base of the client id. Plain strings:
 * no registry, no libmongoc calls but the read-mode names.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "xcore.h"

static const char *const read_modes[] = {
   [MONGOC_READ_PRIMARY] = "primary",
   [MONGOC_READ_SECONDARY] = "secondary",
   [MONGOC_READ_PRIMARY_PREFERRED] = "primaryPreferred",
   [MONGOC_READ_SECONDARY_PREFERRED] = "secondaryPreferred",
   [MONGOC_READ_NEAREST] = "nearest",
};

/* key + "&read_concern=..&write_concern=w:..,j:..,wtimeout:..&read_preference=.."
 * for the defaults that are set (a new string). */
static char *
defaults_key (const char *key, const char *sep, const xdbtx_defaults_t *d)
{
   const mongoc_write_concern_t *wc = d->write_concern;
   char *out = bson_strdup (key), *tmp;
   char w[160] = "";
   int mode;

   if (d->read_concern) {
      tmp = bson_strdup_printf ("%s%sread_concern=%s", out, sep,
                                mongoc_read_concern_get_level (d->read_concern));
      bson_free (out);
      out = tmp;
      sep = "&";
   }
   if (wc) {
      if (mongoc_write_concern_get_wtag (wc)) {
         snprintf (w, sizeof w, "w:%s", mongoc_write_concern_get_wtag (wc));
      } else if (mongoc_write_concern_get_wmajority (wc)) {
         snprintf (w, sizeof w, "w:majority");
      } else if (mongoc_write_concern_get_w (wc) >= 0) {
         snprintf (w, sizeof w, "w:%d", (int) mongoc_write_concern_get_w (wc));
      }
      if (mongoc_write_concern_journal_is_set (wc)) {
         bson_strncpy (w + strlen (w),
                       mongoc_write_concern_get_journal (wc) ? ",j:true" : ",j:false",
                       sizeof w - strlen (w));
      }
      if (mongoc_write_concern_get_wtimeout_int64 (wc) > 0) {
         snprintf (w + strlen (w), sizeof w - strlen (w), ",wtimeout:%lld",
                   (long long) mongoc_write_concern_get_wtimeout_int64 (wc));
      }
      tmp = bson_strdup_printf ("%s%swrite_concern=%s", out, sep, w[0] == ',' ? w + 1 : w);
      bson_free (out);
      out = tmp;
      sep = "&";
   }
   if (d->read_prefs) {
      mode = (int) mongoc_read_prefs_get_mode (d->read_prefs);
      tmp = bson_strdup_printf ("%s%sread_preference=%s", out, sep,
                                mode >= 0 && mode <= MONGOC_READ_NEAREST && read_modes[mode]
                                   ? read_modes[mode]
                                   : "?");
      bson_free (out);
      out = tmp;
   }
   return out;
}

/* The id shown for key (in client:id(), messages, events, outcomes): the
 * key with the URI's password and any *Password= option value replaced by
 * ***, so that credentials do not end up in logs. */
char *
xdbtx_redact (const char *key)
{
   char *id = bson_strdup (key), *p, *at, *end, *colon, *tmp, *hosts = strstr (id, "://");

   if (hosts) { /* scheme://user:password@hosts/... */
      hosts += 3;
      end = strpbrk (hosts, "/?#");
      at = strchr (hosts, '@');
      colon = strchr (hosts, ':');
      if (at && (!end || at < end) && colon && colon < at) {
         tmp = bson_strdup_printf ("%.*s:***%s", (int) (colon - id), id, at);
         bson_free (id);
         id = tmp;
      }
   }
   for (p = id; *p; p++) { /* tlsCertificateKeyFilePassword=... (any case) */
      if (strncasecmp (p, "password=", 9) != 0) {
         continue;
      }
      p += 9;
      end = p + strcspn (p, "&#");
      tmp = bson_strdup_printf ("%.*s***%s", (int) (p - id), id, end);
      p = tmp + (p - id) + 2; /* the loop's p++ steps past the *** */
      bson_free (id);
      id = tmp;
   }
   return id;
}

char *
xdbtx_pool_key (const char *uri, const xdbtx_pool_opts_t *o)
{
   char extra[64];
   char *key = bson_strdup (uri), *tmp;
   const char *sep = "#";

   if (o && o->app_name) {
      tmp = bson_strdup_printf ("%s%sapp_name=%s", key, sep, o->app_name);
      bson_free (key);
      key = tmp;
      sep = "&";
   }
   if (o && o->max_pool_size > 0) {
      snprintf (extra, sizeof extra, "%smax_pool_size=%d", sep, (int) o->max_pool_size);
      tmp = bson_strdup_printf ("%s%s", key, extra);
      bson_free (key);
      key = tmp;
      sep = "&";
   }
   if (o && o->server_selection_timeout_ms > 0) {
      snprintf (extra, sizeof extra, "%sserver_selection_timeout_ms=%d", sep,
                (int) o->server_selection_timeout_ms);
      tmp = bson_strdup_printf ("%s%s", key, extra);
      bson_free (key);
      key = tmp;
      sep = "&";
   }
   if (o) {
      tmp = defaults_key (key, sep, &o->defaults);
      bson_free (key);
      key = tmp;
   }
   return key;
}
