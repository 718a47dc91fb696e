/*
 * client.c - the process-wide pool registry, command monitoring, topology.
 *
 * One entry per (URI, options) key, shared by every thread and every Lua
 * state of the process (OpenResty thread VMs included); entries are never
 * freed. The libmongoc pool behind an entry is made on first use and made
 * again in a forked child, whose copy of the parent's pool is abandoned:
 * destroying it would talk on the parent's sockets and join threads that do
 * not exist here. APM callbacks only copy events into a bounded queue and
 * never call out, so no Lua ever runs inside libmongoc. They are set on a
 * client only while its pool monitors (see xdbtx_pool_apm_sync), or, with a
 * libmongoc where that cannot be done, on every pool before its first pop.
 * mongoc_cleanup is never called.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xcore.h"

struct xdbtx_pool_t {
   char *key;                     /* registry key: the URI as given plus the options */
   char *id;                      /* the client id: the key with its secrets as *** */
   char *uri_str;                 /* the URI as given */
   mongoc_uri_t *uri;             /* parsed, with the options applied */
   mongoc_client_pool_t *mpool;   /* NULL until first use; guarded by reg_lock */
   pid_t pid;                     /* the process that made mpool */
   int monitoring;                /* read with __atomic by the APM callbacks */
   mongoc_apm_callbacks_t *cbs;   /* the command callbacks, made with the pool */
   int out;                       /* clients popped and not pushed (__atomic) */
   int max_size;                  /* maxPoolSize of the URI */
   pthread_mutex_t qlock;         /* guards the event queue */
   xdbtx_event_t *head, *tail;
   uint32_t count, dropped;
   struct xdbtx_pool_t *next;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static xdbtx_pool_t *registry;
static bool log_on;
/* getpid() is a system call in glibc >= 2.25 and the fork checks ask for it
 * on every operation: keep it here, refreshed in the child by pthread_atfork. */
static pid_t cached_pid;

/* libmongoc builds every command's events before it calls out (about 6k
 * instructions a command, a fifth of what xdbtx added to a transaction), so
 * callbacks are set on a client only while its pool monitors. The public setter refuses pooled clients; the one libmongoc
 * itself uses when a pool makes a client is exported, and in 1.23 (checked
 * in its code) it only copies the callbacks into a pooled client. It is
 * used with that version, found at load time (weak: NULL without it);
 * otherwise the callbacks stay set on the whole pool, as before. */
extern bool _mongoc_client_set_apm_callbacks_private (mongoc_client_t *client,
                                                      mongoc_apm_callbacks_t *callbacks,
                                                      void *context) __attribute__ ((weak));

static bool per_client_apm; /* set once by init_process */

static void
log_handler (mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
   if (log_on) {
      mongoc_log_default_handler (level, domain, message, data);
   }
}

/* Keep the registry lock consistent across fork: the child's only thread
 * must not inherit it held by a thread that does not exist there. */
static void
fork_prepare (void)
{
   pthread_mutex_lock (&reg_lock);
}

static void
fork_release (void)
{
   pthread_mutex_unlock (&reg_lock);
}

static void
fork_child (void)
{
   __atomic_store_n (&cached_pid, getpid (), __ATOMIC_RELAXED);
   pthread_mutex_unlock (&reg_lock);
}

pid_t
xdbtx_getpid (void)
{
   pid_t pid = __atomic_load_n (&cached_pid, __ATOMIC_RELAXED);

   if (pid == 0) {
      pid = getpid ();
      __atomic_store_n (&cached_pid, pid, __ATOMIC_RELAXED);
   }
   return pid;
}

static void
init_process (void)
{
   const char *env = getenv ("XDBTX_MONGOC_LOG");

   log_on = env && env[0] && strcmp (env, "0") != 0;
   mongoc_log_set_handler (log_handler, NULL);
   mongoc_init ();
   env = getenv ("XDBTX_POOL_APM"); /* 1: callbacks on the whole pool, as before */
   per_client_apm = _mongoc_client_set_apm_callbacks_private != NULL &&
                    mongoc_get_major_version () == 1 && mongoc_get_minor_version () == 23 &&
                    !(env && env[0] && strcmp (env, "0") != 0);
   __atomic_store_n (&cached_pid, getpid (), __ATOMIC_RELAXED);
   pthread_atfork (fork_prepare, fork_release, fork_child);
}

void
xdbtx_init (void)
{
   pthread_once (&init_once, init_process);
}

/* ---- command monitoring ------------------------------------------------ */

void
xdbtx_pool_apm_sync (xdbtx_pool_t *pool, mongoc_client_t *client)
{
   if (per_client_apm && client) {
      bool on = __atomic_load_n (&pool->monitoring, __ATOMIC_RELAXED) != 0;
      (void) _mongoc_client_set_apm_callbacks_private (client, on ? pool->cbs : NULL, pool);
   }
}

static void
queue_event (xdbtx_pool_t *p, xdbtx_event_t *ev)
{
   pthread_mutex_lock (&p->qlock);
   if (p->count >= XDBTX_EVENTS_MAX) {
      p->dropped++;
      pthread_mutex_unlock (&p->qlock);
      xdbtx_events_free (ev);
      return;
   }
   if (p->tail) {
      p->tail->next = ev;
   } else {
      p->head = ev;
   }
   p->tail = ev;
   p->count++;
   pthread_mutex_unlock (&p->qlock);
}

static xdbtx_event_t *
event_new (xdbtx_event_type_t type, const char *name, int64_t request_id, const bson_t *doc)
{
   xdbtx_event_t *ev = bson_malloc0 (sizeof *ev);

   ev->type = type;
   bson_strncpy (ev->command_name, name ? name : "", sizeof ev->command_name);
   ev->request_id = request_id;
   ev->doc = doc ? bson_copy (doc) : NULL;
   return ev;
}

static void
on_started (const mongoc_apm_command_started_t *e)
{
   xdbtx_pool_t *p = mongoc_apm_command_started_get_context (e);
   xdbtx_event_t *ev;

   if (!__atomic_load_n (&p->monitoring, __ATOMIC_RELAXED)) {
      return;
   }
   ev = event_new (XDBTX_EVENT_STARTED,
                   mongoc_apm_command_started_get_command_name (e),
                   mongoc_apm_command_started_get_request_id (e),
                   mongoc_apm_command_started_get_command (e));
   bson_strncpy (ev->database_name,
                 mongoc_apm_command_started_get_database_name (e),
                 sizeof ev->database_name);
   queue_event (p, ev);
}

static void
on_succeeded (const mongoc_apm_command_succeeded_t *e)
{
   xdbtx_pool_t *p = mongoc_apm_command_succeeded_get_context (e);
   xdbtx_event_t *ev;

   if (!__atomic_load_n (&p->monitoring, __ATOMIC_RELAXED)) {
      return;
   }
   ev = event_new (XDBTX_EVENT_SUCCEEDED,
                   mongoc_apm_command_succeeded_get_command_name (e),
                   mongoc_apm_command_succeeded_get_request_id (e),
                   mongoc_apm_command_succeeded_get_reply (e));
   ev->duration_us = mongoc_apm_command_succeeded_get_duration (e);
   queue_event (p, ev);
}

static void
on_failed (const mongoc_apm_command_failed_t *e)
{
   xdbtx_pool_t *p = mongoc_apm_command_failed_get_context (e);
   xdbtx_event_t *ev;
   bson_error_t error;

   if (!__atomic_load_n (&p->monitoring, __ATOMIC_RELAXED)) {
      return;
   }
   ev = event_new (XDBTX_EVENT_FAILED,
                   mongoc_apm_command_failed_get_command_name (e),
                   mongoc_apm_command_failed_get_request_id (e),
                   mongoc_apm_command_failed_get_reply (e));
   ev->duration_us = mongoc_apm_command_failed_get_duration (e);
   mongoc_apm_command_failed_get_error (e, &error);
   bson_strncpy (ev->error, error.message, sizeof ev->error);
   queue_event (p, ev);
}

void
xdbtx_pool_monitor (xdbtx_pool_t *pool, bool on)
{
   __atomic_store_n (&pool->monitoring, on ? 1 : 0, __ATOMIC_RELAXED);
}

xdbtx_event_t *
xdbtx_pool_drain (xdbtx_pool_t *pool, uint32_t *dropped)
{
   xdbtx_event_t *list;

   pthread_mutex_lock (&pool->qlock);
   list = pool->head;
   pool->head = pool->tail = NULL;
   pool->count = 0;
   if (dropped) {
      *dropped = pool->dropped;
   }
   pool->dropped = 0;
   pthread_mutex_unlock (&pool->qlock);
   return list;
}

void
xdbtx_events_free (xdbtx_event_t *list)
{
   xdbtx_event_t *next;

   for (; list; list = next) {
      next = list->next;
      if (list->doc) {
         bson_destroy (list->doc);
      }
      bson_free (list);
   }
}

/* ---- the registry ------------------------------------------------------ */

/* The id of a new pool for key (reg_lock held): redacted, and unique: two
 * keys that differ only in a password get "credentials=2" and so on, so
 * that their clients are never taken for the same one (routing, trees). */
static char *
make_id (const char *key)
{
   char *base = xdbtx_redact (key), *id = bson_strdup (base);
   const xdbtx_pool_t *q;
   int n = 1;

   for (q = registry; q;) {
      if (strcmp (q->id, id) != 0) {
         q = q->next;
         continue;
      }
      bson_free (id);
      id = bson_strdup_printf ("%s%scredentials=%d", base, strchr (base, '#') ? "&" : "#", ++n);
      q = registry; /* look again from the start */
   }
   bson_free (base);
   return id;
}

static mongoc_uri_t *
parse_uri (const char *uri_str, const xdbtx_pool_opts_t *o, xdbtx_error_t *err)
{
   bson_error_t error;
   mongoc_uri_t *uri = mongoc_uri_new_with_error (uri_str, &error);

   if (!uri) {
      xdbtx_error_from_mongoc (err, &error, NULL, "connect");
      xdbtx_error_prefix (err, "invalid URI '%s'", uri_str);
      return NULL;
   }
   if (o && o->app_name && !mongoc_uri_set_appname (uri, o->app_name)) {
      xdbtx_error_set (err, XDBTX_DOMAIN_ARG, 0, "connect",
                       "invalid app_name '%s' (at most 128 bytes)", o->app_name);
      mongoc_uri_destroy (uri);
      return NULL;
   }
   if (o && o->max_pool_size > 0) {
      mongoc_uri_set_option_as_int32 (uri, MONGOC_URI_MAXPOOLSIZE, o->max_pool_size);
   }
   if (o && o->server_selection_timeout_ms > 0) {
      mongoc_uri_set_option_as_int32 (
         uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, o->server_selection_timeout_ms);
   }
   /* The client's defaults are the URI's, as w=, readConcernLevel= and
    * readPreference= would be: libmongoc applies them to every operation
    * and transaction of the pool's clients. */
   if (o && o->defaults.read_concern) {
      mongoc_uri_set_read_concern (uri, o->defaults.read_concern);
   }
   if (o && o->defaults.write_concern) {
      mongoc_uri_set_write_concern (uri, o->defaults.write_concern);
   }
   if (o && o->defaults.read_prefs) {
      mongoc_uri_set_read_prefs_t (uri, o->defaults.read_prefs);
   }
   /* A Lua state that holds every client of the pool (sessions, open
    * cursors) would wait forever for one more: bound the wait instead. */
   if (!mongoc_uri_has_option (uri, MONGOC_URI_WAITQUEUETIMEOUTMS)) {
      mongoc_uri_set_option_as_int32 (
         uri, MONGOC_URI_WAITQUEUETIMEOUTMS,
         mongoc_uri_get_option_as_int32 (uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 30000));
   }
   return uri;
}

bool
xdbtx_pool_get (const char *uri_str,
                const xdbtx_pool_opts_t *opts,
                xdbtx_pool_t **out,
                xdbtx_error_t *err)
{
   char *key;
   xdbtx_pool_t *p;
   mongoc_uri_t *uri;

   xdbtx_init ();
   key = xdbtx_pool_key (uri_str, opts);
   pthread_mutex_lock (&reg_lock);
   for (p = registry; p; p = p->next) {
      if (strcmp (p->key, key) == 0) {
         break;
      }
   }
   pthread_mutex_unlock (&reg_lock);
   if (p) {
      bson_free (key);
      *out = p;
      return true;
   }
   /* Parse outside the lock; a racing registration of the same key wins
    * below and this one is thrown away. */
   uri = parse_uri (uri_str, opts, err);
   if (!uri) {
      bson_free (key);
      return false;
   }
   pthread_mutex_lock (&reg_lock);
   for (p = registry; p; p = p->next) {
      if (strcmp (p->key, key) == 0) {
         break;
      }
   }
   if (!p) {
      p = bson_malloc0 (sizeof *p);
      p->key = key;
      p->id = make_id (key);
      p->uri_str = bson_strdup (uri_str);
      p->uri = uri;
      p->max_size = mongoc_uri_get_option_as_int32 (uri, MONGOC_URI_MAXPOOLSIZE, 100);
      pthread_mutex_init (&p->qlock, NULL);
      p->next = registry;
      registry = p;
      key = NULL;
      uri = NULL;
   }
   pthread_mutex_unlock (&reg_lock);
   bson_free (key);
   mongoc_uri_destroy (uri);
   *out = p;
   return true;
}

const char *
xdbtx_pool_id (const xdbtx_pool_t *pool)
{
   return pool->id;
}

const char *
xdbtx_pool_uri (const xdbtx_pool_t *pool)
{
   return pool->uri_str;
}

/* The libmongoc pool for this process, made now if needed. Caller holds
 * reg_lock. */
static mongoc_client_pool_t *
current_pool (xdbtx_pool_t *p, xdbtx_error_t *err)
{
   pid_t pid = xdbtx_getpid ();
   bson_error_t error;

   if (p->mpool && p->pid == pid) {
      return p->mpool;
   }
   if (p->mpool) {
      /* Forked child: abandon the parent's pool and its queue lock, which a
       * parent thread may have held at the fork. */
      p->mpool = NULL;
      p->out = 0;
      pthread_mutex_init (&p->qlock, NULL);
      xdbtx_events_free (p->head);
      p->head = p->tail = NULL;
      p->count = p->dropped = 0;
   }
   p->mpool = mongoc_client_pool_new_with_error (p->uri, &error);
   if (!p->mpool) {
      xdbtx_error_from_mongoc (err, &error, NULL, "connect");
      return NULL;
   }
   p->pid = pid;
   mongoc_client_pool_set_error_api (p->mpool, MONGOC_ERROR_API_VERSION_2);
   if (!p->cbs) {
      p->cbs = mongoc_apm_callbacks_new ();
      mongoc_apm_set_command_started_cb (p->cbs, on_started);
      mongoc_apm_set_command_succeeded_cb (p->cbs, on_succeeded);
      mongoc_apm_set_command_failed_cb (p->cbs, on_failed);
   }
   if (!per_client_apm) {
      mongoc_client_pool_set_apm_callbacks (p->mpool, p->cbs, p);
   }
   return p->mpool;
}

/* ---- the thread's spare clients -----------------------------------------
 *
 * A thread keeps the last client it gave back to each pool (one a pool, for
 * up to XDBTX_SPARES pools) and takes it again at its next pop there: a
 * transaction pops and pushes one client, and libmongoc's pool costs about
 * 2.6k instructions (a mutex, its queue, the scanner check) for the pair.
 * A spare stays counted as out (pool->out); xdbtx_pool_exhausted does not
 * count it for its own thread. A thread that exits gives its spares back
 * (spare_key's destructor); a forked child never uses its parent's (the pid
 * differs). */
#define XDBTX_SPARES 4

typedef struct {
   xdbtx_pool_t *pool;
   mongoc_client_t *client; /* NULL: a free slot */
   pid_t pid;
} spare_t;

static __thread spare_t spares[XDBTX_SPARES];
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static bool spare_key_ok;

/* This process's libmongoc pool of pool, or NULL when it has none (a client
 * popped before a fork belongs to the parent's, which is left be). */
static mongoc_client_pool_t *
pool_here (xdbtx_pool_t *pool)
{
   mongoc_client_pool_t *mp;

   pthread_mutex_lock (&reg_lock);
   mp = pool->pid == xdbtx_getpid () ? pool->mpool : NULL;
   pthread_mutex_unlock (&reg_lock);
   return mp;
}

static void
give_back (xdbtx_pool_t *pool, mongoc_client_pool_t *mp, mongoc_client_t *client)
{
   __atomic_sub_fetch (&pool->out, 1, __ATOMIC_RELAXED);
   mongoc_client_pool_push (mp, client);
}

static void
spare_exit (void *unused)
{
   pid_t pid = xdbtx_getpid ();
   int i;

   (void) unused;
   for (i = 0; i < XDBTX_SPARES; i++) {
      spare_t *sp = &spares[i];
      mongoc_client_pool_t *mp = sp->client && sp->pid == pid ? pool_here (sp->pool) : NULL;
      if (mp) {
         give_back (sp->pool, mp, sp->client);
      }
      sp->client = NULL;
   }
}

static void
spare_init (void)
{
   spare_key_ok = pthread_key_create (&spare_key, spare_exit) == 0;
}

/* This thread's spare slot for pool (pid: this process), or NULL. */
static spare_t *
spare_of (const xdbtx_pool_t *pool, pid_t pid)
{
   int i;

   for (i = 0; i < XDBTX_SPARES; i++) {
      if (spares[i].client && spares[i].pool == pool && spares[i].pid == pid) {
         return &spares[i];
      }
   }
   return NULL;
}

/* Keep client as this thread's spare of pool; false when the thread has
 * one for it already or no free slot (or no exit hook). */
static bool
spare_park (xdbtx_pool_t *pool, mongoc_client_t *client)
{
   pid_t pid = xdbtx_getpid ();
   spare_t *free_slot = NULL;
   int i;

   for (i = 0; i < XDBTX_SPARES; i++) {
      spare_t *sp = &spares[i];
      if (sp->client && sp->pid == pid) {
         if (sp->pool == pool) {
            return false;
         }
      } else if (!free_slot) {
         free_slot = sp; /* free, or the parent's from before a fork: left be */
      }
   }
   if (!free_slot) {
      return false;
   }
   pthread_once (&spare_once, spare_init);
   if (!spare_key_ok || pthread_setspecific (spare_key, spares) != 0) {
      return false;
   }
   free_slot->pool = pool;
   free_slot->client = client;
   free_slot->pid = pid;
   return true;
}

mongoc_client_t *
xdbtx_pool_pop (xdbtx_pool_t *pool, xdbtx_error_t *err)
{
   mongoc_client_pool_t *mp;
   mongoc_client_t *client;
   spare_t *sp = spare_of (pool, xdbtx_getpid ());

   if (sp) {
      client = sp->client;
      sp->client = NULL;
      xdbtx_pool_apm_sync (pool, client);
      return client;
   }
   pthread_mutex_lock (&reg_lock);
   mp = current_pool (pool, err);
   pthread_mutex_unlock (&reg_lock);
   if (!mp) {
      return NULL;
   }
   client = mongoc_client_pool_pop (mp);
   if (client) {
      __atomic_add_fetch (&pool->out, 1, __ATOMIC_RELAXED);
      xdbtx_pool_apm_sync (pool, client);
   } else {
      xdbtx_error_set (err, MONGOC_ERROR_CLIENT, 0, "connect",
                       "no free client in the pool of '%s' within %d ms (max_pool_size %d): "
                       "close sessions and cursors that are no longer used",
                       pool->id,
                       (int) mongoc_uri_get_option_as_int32 (
                          pool->uri, MONGOC_URI_WAITQUEUETIMEOUTMS, 0),
                       (int) mongoc_uri_get_option_as_int32 (
                          pool->uri, MONGOC_URI_MAXPOOLSIZE, 100));
   }
   return client;
}

void
xdbtx_pool_push (xdbtx_pool_t *pool, mongoc_client_t *client)
{
   mongoc_client_pool_t *mp;

   if (!client) {
      return;
   }
   mp = pool_here (pool);
   if (mp && !spare_park (pool, client)) {
      give_back (pool, mp, client);
   }
}

bool
xdbtx_pool_origin (xdbtx_pool_t *pool, bool make, pid_t *pid, const void **mpool,
                   xdbtx_error_t *err)
{
   bool ok = true;

   pthread_mutex_lock (&reg_lock);
   if (make) {
      ok = current_pool (pool, err) != NULL;
   }
   if (pool->mpool && pool->pid == xdbtx_getpid ()) {
      *pid = pool->pid;
      *mpool = pool->mpool;
   } else {
      *pid = 0;
      *mpool = NULL;
   }
   pthread_mutex_unlock (&reg_lock);
   return ok;
}

bool
xdbtx_pool_exhausted (const xdbtx_pool_t *pool)
{
   int out = __atomic_load_n (&pool->out, __ATOMIC_RELAXED);

   if (spare_of (pool, xdbtx_getpid ())) {
      out--; /* this thread's next pop takes its spare */
   }
   return out >= pool->max_size;
}

const char *
xdbtx_pool_topology (xdbtx_pool_t *pool, xdbtx_error_t *err)
{
   mongoc_client_t *client = xdbtx_pool_pop (pool, err);
   mongoc_server_description_t *sd;
   bson_error_t error;
   const char *type, *res;

   if (!client) {
      return NULL;
   }
   sd = mongoc_client_select_server (client, false, NULL, &error);
   if (!sd) {
      xdbtx_pool_push (pool, client);
      xdbtx_error_from_mongoc (err, &error, NULL, "connect");
      return NULL;
   }
   type = mongoc_server_description_type (sd);
   if (strcmp (type, "Standalone") == 0) {
      res = "standalone";
   } else if (strcmp (type, "Mongos") == 0) {
      res = "sharded";
   } else if (strncmp (type, "RS", 2) == 0 || strcmp (type, "PossiblePrimary") == 0) {
      res = "replicaset";
   } else {
      res = "unknown";
   }
   mongoc_server_description_destroy (sd);
   xdbtx_pool_push (pool, client);
   return res;
}

bool
xdbtx_pool_command (xdbtx_pool_t *pool,
                    xdbtx_session_t *session,
                    const char *db,
                    const bson_t *cmd,
                    const mongoc_read_prefs_t *read_prefs,
                    bson_t *opts,
                    bson_t *reply,
                    xdbtx_error_t *err)
{
   xdbtx_op_t op;
   bson_error_t error;
   bool ok;

   if (!xdbtx_session_check_read (session, err) ||
       !xdbtx_op_begin (&op, pool, session, opts, err)) {
      bson_init (reply);
      return false;
   }
   ok = mongoc_client_command_with_opts (op.client, db, cmd, read_prefs, op.opts, reply,
                                         &error);
   if (!ok) {
      xdbtx_error_from_mongoc (err, &error, reply, "operation");
   }
   xdbtx_op_end (&op);
   return ok;
}
