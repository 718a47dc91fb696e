/*
 * conformance_api - the collection, index and database API through libmongoc.
 *
 * What xdbtx's API calls (DESIGN "Clients and collections"), checked through the same
 * libmongoc 1.23 functions: distinct (a raw read command), estimated_document_count (the count
 * command in 1.23), count_documents (aggregate $match/$group), createIndexes (a raw write
 * command), find_indexes (listIndexes), drop_index/dropIndexes, collection and database
 * drop, get_collection_names (listCollections nameOnly), get_database_names (listDatabases
 * nameOnly); and inside transactions, what mongod 6.0 allows there (distinct, aggregate,
 * createIndexes on a collection new to the transaction) and what it refuses with
 * OperationNotSupportedInTransaction (263). Bulk writes: conformance_bulk.c. Harness and
 * environment: conformance.h, conformance.c.
 */
#include "conformance.h"

/* ===== helpers =========================================================================== */

#define NOT_IN_TXN 263 /* OperationNotSupportedInTransaction */

/* CMD on COLL's database as a read (WRITE false) or write command, in S's transaction when
 * S is in one. */
static res_t *
coll_cmd (mongoc_collection_t *coll, mongoc_client_session_t *s, const bson_t *cmd, bool write)
{
   res_t *r = res_new ();
   bson_destroy (&r->reply);
   if (write) {
      r->ok = mongoc_collection_write_command_with_opts (coll, cmd, with_session (NULL, s),
                                                         &r->reply, &r->err);
   } else {
      r->ok = mongoc_collection_read_command_with_opts (coll, cmd, NULL, with_session (NULL, s),
                                                        &r->reply, &r->err);
   }
   return r;
}

/* distinct KEY over QUERY (JSON) in the check's collection on COLL. */
static res_t *
distinct (mongoc_collection_t *coll, mongoc_client_session_t *s, const char *key,
          const char *query)
{
   return coll_cmd (coll, s,
                    J ("{'distinct': '%s', 'key': '%s', 'query': %s}",
                       mongoc_collection_get_name (coll), key, query),
                    false);
}

/* createIndexes on COLL's database, for COLL, with the index specs INDEXES (JSON array). */
static res_t *
create_indexes (mongoc_collection_t *coll, mongoc_client_session_t *s, const char *indexes)
{
   return coll_cmd (coll, s,
                    J ("{'createIndexes': '%s', 'indexes': %s}", mongoc_collection_get_name (coll),
                       indexes),
                    true);
}

/* The array at PATH in DOC as (legacy) JSON, "[ 1, 2 ]", owned by the arena ("-" when
 * absent). */
static const char *
array_json (const bson_t *doc, const char *path)
{
   bson_iter_t it, f;
   uint32_t len;
   const uint8_t *data;
   bson_t arr;
   char *json;

   if (!bson_iter_init (&it, doc) || !bson_iter_find_descendant (&it, path, &f) ||
       !BSON_ITER_HOLDS_ARRAY (&f)) {
      return "-";
   }
   bson_iter_array (&f, &len, &data);
   if (!bson_init_static (&arr, data, len)) {
      return "-";
   }
   json = bson_array_as_json (&arr, NULL);
   return own (json, bson_free);
}

/* The names the cursor CUR returns ("name" of each document), comma-separated, owned by
 * the arena; the cursor is destroyed. A cursor error ends the list with "!<code>". */
static const char *
names_of (mongoc_cursor_t *cur)
{
   char *out = own (bson_malloc0 (1024), bson_free);
   const bson_t *doc;
   bson_error_t err;

   while (mongoc_cursor_next (cur, &doc)) {
      if (*out) {
         bson_strncpy (out + strlen (out), ",", 1024 - strlen (out));
      }
      bson_strncpy (out + strlen (out), get_str (doc, "name"), 1024 - strlen (out));
   }
   if (mongoc_cursor_error (cur, &err)) {
      snprintf (out + strlen (out), 1024 - strlen (out), "!%u", err.code);
   }
   mongoc_cursor_destroy (cur);
   return out;
}

/* The index names of COLL as listIndexes returns them (libmongoc's find_indexes gives an
 * empty list for a missing collection). */
static const char *
index_names (mongoc_collection_t *coll, mongoc_client_session_t *s)
{
   return names_of (mongoc_collection_find_indexes_with_opts (coll, with_session (NULL, s)));
}

/* Whether NAME is in the NULL-terminated list NAMES (which is freed). */
static bool
listed (char **names, const char *name)
{
   bool found = false;
   for (char **p = names; p && *p; p++) {
      found = found || strcmp (*p, name) == 0;
   }
   bson_strfreev (names);
   return found;
}

/* ===== distinct ========================================================================== */

/* distinct returns each value once, in BSON order (mongod collects them in an ordered
 * set): arrays are expanded one level, along the path too; missing fields and empty
 * arrays give nothing, null is a value; 1 and 1.0 are one value; query filters. */
static bool
check_api_distinct (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   static const char *docs[] = {
      "{'_id': 1, 'k': 2}",        "{'_id': 2, 'k': 1}",          "{'_id': 3, 'k': [3, 1]}",
      "{'_id': 4, 'k': 1.0}",      "{'_id': 5}",                  "{'_id': 6, 'k': []}",
      "{'_id': 7, 'k': null}",     "{'_id': 8, 'k': 'a'}",        "{'_id': 9, 'k': [[1]]}",
      "{'_id': 10, 's': {'k': 5}}", "{'_id': 11, 's': [{'k': 6}, {'k': [7]}]}"};
   const char *v;
   res_t *r;
   int i;

   for (i = 0; i < (int) (sizeof docs / sizeof docs[0]); i++) {
      REQUIRE (insert (coll, NULL, J ("%s", docs[i]))->ok, "seed insert %d failed", i);
   }
   r = distinct (coll, NULL, "k", "{}");
   REQUIRE_OK (r, "distinct k");
   v = array_json (&r->reply, "values");
   REQUIRE (strcmp (v, "[ null, 1, 2, 3, \"a\", [ 1 ] ]") == 0,
            "distinct k: %s, want [ null, 1, 2, 3, \"a\", [ 1 ] ]", v);
   r = distinct (coll, NULL, "s.k", "{}");
   v = r->ok ? array_json (&r->reply, "values") : describe (r);
   REQUIRE (strcmp (v, "[ 5, 6, 7 ]") == 0, "distinct s.k: %s, want [ 5, 6, 7 ]", v);
   r = distinct (coll, NULL, "k", "{'_id': {'$lte': 3}}");
   v = r->ok ? array_json (&r->reply, "values") : describe (r);
   REQUIRE (strcmp (v, "[ 1, 2, 3 ]") == 0, "distinct k with a query: %s, want [ 1, 2, 3 ]", v);
   r = distinct (own (mongoc_client_get_collection (g.main, g.db, "no_such_coll"), coll_free),
                 NULL, "k", "{}");
   v = r->ok ? array_json (&r->reply, "values") : describe (r);
   REQUIRE (strcmp (v, "[ ]") == 0, "distinct on a missing collection: %s, want [ ]", v);
   return true;
}

/* distinct is allowed in a transaction and reads its snapshot and its own writes. */
static bool
check_api_distinct_in_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_collection_t *outside = coll_of (client_new (g.uri1, g.app));
   const char *v;
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'k': 1}"))->ok, "seed insert failed");
   {
      OPEN_TXN (s, g.main, coll, 2);
      REQUIRE_OK (update (coll, s, J ("{'_id': 2}"), J ("{'$set': {'k': 2}}")), "update");
      REQUIRE_OK (insert (outside, NULL, J ("{'_id': 3, 'k': 3}")), "the other client's insert");
      r = distinct (coll, s, "k", "{}");
      v = r->ok ? array_json (&r->reply, "values") : describe (r);
      REQUIRE (strcmp (v, "[ 1, 2 ]") == 0, "distinct in the transaction: %s, want [ 1, 2 ]", v);
      r = distinct (outside, NULL, "k", "{}");
      v = r->ok ? array_json (&r->reply, "values") : describe (r);
      REQUIRE (strcmp (v, "[ 1, 3 ]") == 0, "distinct outside: %s, want [ 1, 3 ]", v);
      REQUIRE_OK (commit (s), "commit");
   }
   return true;
}

/* ===== counts ============================================================================ */

/* estimated_document_count (libmongoc 1.23 sends count) and count_documents (aggregate
 * $match, $skip, $limit, $group) outside transactions; a missing collection counts 0. */
static bool
check_api_counts (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_collection_t *missing =
      own (mongoc_client_get_collection (g.main, g.db, "no_such_coll"), coll_free);
   bson_error_t err;
   int64_t n;
   int i;

   for (i = 0; i < 7; i++) {
      REQUIRE (insert (coll, NULL, J ("{'_id': %d, 'g': %d}", i, i % 2))->ok, "seed insert");
   }
   n = mongoc_collection_estimated_document_count (coll, NULL, NULL, NULL, &err);
   REQUIRE (n == 7, "estimated_document_count: %lld (%s), want 7", (long long) n,
            n < 0 ? err.message : "");
   n = mongoc_collection_estimated_document_count (missing, NULL, NULL, NULL, &err);
   REQUIRE (n == 0, "estimated_document_count of a missing collection: %lld (%s), want 0",
            (long long) n, n < 0 ? err.message : "");
   n = mongoc_collection_count_documents (coll, J ("{'g': 1}"), NULL, NULL, NULL, &err);
   REQUIRE (n == 3, "count_documents {g: 1}: %lld (%s), want 3", (long long) n,
            n < 0 ? err.message : "");
   n = mongoc_collection_count_documents (coll, J ("{'g': 0}"), J ("{'skip': 1, 'limit': 2}"),
                                          NULL, NULL, &err);
   REQUIRE (n == 2, "count_documents {g: 0} skip 1 limit 2: %lld (%s), want 2", (long long) n,
            n < 0 ? err.message : "");
   n = mongoc_collection_count_documents (missing, J ("{}"), NULL, NULL, NULL, &err);
   REQUIRE (n == 0, "count_documents of a missing collection: %lld (%s), want 0",
            (long long) n, n < 0 ? err.message : "");
   return true;
}

/* In a transaction count_documents (an aggregate) sees the transaction's writes, while
 * count is refused: OperationNotSupportedInTransaction, without TransientTransactionError
 * (the spec's count.json). libmongoc 1.23's estimated_document_count (which sends count)
 * refuses an explicit session itself: "Collection count must not specify explicit session"
 * (MONGOC_ERROR_COMMAND_INVALID_ARG), before sending anything. */
static bool
check_api_counts_in_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   bson_error_t err;
   int64_t n;
   res_t *r;

   REQUIRE (insert (coll, NULL, J ("{'_id': 1}"))->ok, "seed insert failed");
   {
      OPEN_TXN (s, g.main, coll, 2);
      n = count (coll, s, J ("{}"));
      REQUIRE (n == 2, "count_documents in the transaction: %lld, want 2", (long long) n);
      n = mongoc_collection_estimated_document_count (coll, with_session (NULL, s), NULL, NULL,
                                                      &err);
      REQUIRE (n < 0 && err.domain == MONGOC_ERROR_COMMAND &&
                  err.code == MONGOC_ERROR_COMMAND_INVALID_ARG,
               "estimated_document_count with a session: %lld (domain %u code %u: %s), want "
               "libmongoc's own refusal", (long long) n, err.domain, err.code, err.message);
      REQUIRE_OK (commit (s), "commit (libmongoc's refusal must not touch the transaction)");
   }
   {
      OPEN_TXN (s, g.main, coll, 3);
      r = run (g.main, g.db, J ("{'count': '%s', 'query': {'_id': 1}}", g.check), s);
      REQUIRE (code (r) == NOT_IN_TXN, "count in a transaction: %s, want 263", describe (r));
      REQUIRE (!has_label (r, TTE), "OperationNotSupportedInTransaction carries %s", TTE);
   }
   return true;
}

/* ===== indexes =========================================================================== */

/* createIndexes creates several indexes at once (the collection too when missing),
 * listIndexes lists them with their options, and creating them again changes nothing. */
static bool
check_api_create_indexes (void)
{
   char name[96];
   mongoc_collection_t *coll;
   const char *names;
   bson_iter_t it;
   res_t *r;

   snprintf (name, sizeof name, "%s_new", g.check);
   coll = own (mongoc_client_get_collection (g.main, g.db, name), coll_free);
   r = create_indexes (coll, NULL,
                       "[{'key': {'a': 1}, 'name': 'a_1'},"
                       " {'key': {'b': -1, 'c': 1}, 'name': 'b_-1_c_1', 'unique': true}]");
   REQUIRE_OK (r, "createIndexes");
   REQUIRE (get_int (&r->reply, "numIndexesBefore", -1) == 1 &&
               get_int (&r->reply, "numIndexesAfter", -1) == 3,
            "createIndexes reply: %s, want numIndexesBefore 1, numIndexesAfter 3", reply_json (r));
   REQUIRE (bson_iter_init_find (&it, &r->reply, "createdCollectionAutomatically") &&
               bson_iter_as_bool (&it),
            "createIndexes on a missing collection: %s, want createdCollectionAutomatically true",
            reply_json (r));
   names = index_names (coll, NULL);
   REQUIRE (strcmp (names, "_id_,a_1,b_-1_c_1") == 0, "listIndexes: %s, want _id_,a_1,b_-1_c_1",
            names);
   {
      mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts (coll, NULL);
      const bson_t *doc;
      bool unique_ok = false;
      while (mongoc_cursor_next (cur, &doc)) {
         bson_iter_t it;
         if (!strcmp (get_str (doc, "name"), "b_-1_c_1")) {
            unique_ok = bson_iter_init_find (&it, doc, "unique") && bson_iter_as_bool (&it) &&
                        get_int (doc, "key.b", 0) == -1 && get_int (doc, "key.c", 0) == 1;
         }
      }
      mongoc_cursor_destroy (cur);
      REQUIRE (unique_ok, "listIndexes does not show b_-1_c_1 as unique on {b: -1, c: 1}");
   }
   r = create_indexes (coll, NULL, "[{'key': {'a': 1}, 'name': 'a_1'}]");
   REQUIRE (r->ok && get_int (&r->reply, "numIndexesBefore", -1) == 3 &&
               get_int (&r->reply, "numIndexesAfter", -1) == 3,
            "creating an existing index again: %s, want ok with 3 before and after",
            r->ok ? reply_json (r) : describe (r));
   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'b': 1, 'c': 1}"))->ok, "insert");
   r = insert (coll, NULL, J ("{'_id': 2, 'b': 1, 'c': 1}"));
   REQUIRE (code (r) == 11000, "insert violating b_-1_c_1: %s, want 11000", describe (r));
   return true;
}

/* Index definitions that conflict (mongod 6.0's codes): the same name with other keys
 * (IndexKeySpecsConflict 86), the same keys under another name or the same name with other
 * options (IndexOptionsConflict 85), no name (FailedToParse 9), an empty name
 * (CannotCreateIndex 67), a unique index over duplicates (DuplicateKey 11000). */
static bool
check_api_index_conflicts (void)
{
   static const struct {
      const char *spec;
      uint32_t code;
   } bad[] = {{"{'key': {'x': 1}, 'name': 'a_1'}", 86},
              {"{'key': {'a': 1}, 'name': 'another'}", 85},
              {"{'key': {'a': 1}, 'name': 'a_1', 'unique': true}", 85},
              {"{'key': {'y': 1}}", 9},
              {"{'key': {'y': 1}, 'name': ''}", 67},
              {"{'key': {'d': 1}, 'name': 'd_1', 'unique': true}", 11000}};
   mongoc_collection_t *coll = coll_of (g.main);
   int i;

   REQUIRE_OK (create_indexes (coll, NULL, "[{'key': {'a': 1}, 'name': 'a_1'}]"), "createIndexes");
   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'd': 5}"))->ok &&
               insert (coll, NULL, J ("{'_id': 2, 'd': 5}"))->ok,
            "seed inserts failed");
   for (i = 0; i < (int) (sizeof bad / sizeof bad[0]); i++) {
      char specs[256];
      res_t *r;
      snprintf (specs, sizeof specs, "[%s]", bad[i].spec);
      r = create_indexes (coll, NULL, specs);
      REQUIRE (code (r) == bad[i].code, "createIndexes %s: %s, want %u", bad[i].spec,
               describe (r), bad[i].code);
   }
   REQUIRE (strcmp (index_names (coll, NULL), "_id_,a_1") == 0,
            "after the refused definitions listIndexes gives %s, want _id_,a_1",
            index_names (coll, NULL));
   return true;
}

/* dropIndexes by name, by key pattern and "*" (all but _id_); a missing index is
 * IndexNotFound (27), _id_ cannot be dropped (InvalidOptions 72), a missing collection is
 * NamespaceNotFound (26); listIndexes of a missing collection is empty in libmongoc. */
static bool
check_api_drop_indexes (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_collection_t *missing =
      own (mongoc_client_get_collection (g.main, g.db, "no_such_coll"), coll_free);
   bson_error_t err;
   const char *names;
   res_t *r;

   REQUIRE_OK (create_indexes (coll, NULL,
                               "[{'key': {'a': 1}, 'name': 'a_1'}, {'key': {'b': 1}, 'name': 'b_1'},"
                               " {'key': {'c': 1}, 'name': 'c_1'}, {'key': {'d': 1}, 'name': 'd_1'}]"),
               "createIndexes");
   REQUIRE (mongoc_collection_drop_index_with_opts (coll, "a_1", NULL, &err),
            "drop_index a_1: %s", err.message);
   REQUIRE (!mongoc_collection_drop_index_with_opts (coll, "a_1", NULL, &err) && err.code == 27,
            "dropping a_1 again: code %u (%s), want IndexNotFound 27", err.code, err.message);
   REQUIRE (!mongoc_collection_drop_index_with_opts (coll, "_id_", NULL, &err) && err.code == 72,
            "dropping _id_: code %u (%s), want InvalidOptions 72", err.code, err.message);
   r = coll_cmd (coll, NULL, J ("{'dropIndexes': '%s', 'index': {'b': 1}}", g.check), true);
   REQUIRE_OK (r, "dropIndexes by key pattern");
   names = index_names (coll, NULL);
   REQUIRE (strcmp (names, "_id_,c_1,d_1") == 0, "after two drops: %s, want _id_,c_1,d_1", names);
   r = coll_cmd (coll, NULL, J ("{'dropIndexes': '%s', 'index': '*'}", g.check), true);
   REQUIRE (r->ok && get_int (&r->reply, "nIndexesWas", -1) == 3,
            "dropIndexes '*': %s, want ok with nIndexesWas 3", r->ok ? reply_json (r) : describe (r));
   names = index_names (coll, NULL);
   REQUIRE (strcmp (names, "_id_") == 0, "after dropIndexes '*': %s, want _id_", names);
   r = coll_cmd (missing, NULL, J ("{'dropIndexes': 'no_such_coll', 'index': '*'}"), true);
   REQUIRE (code (r) == 26, "dropIndexes on a missing collection: %s, want 26", describe (r));
   names = index_names (missing, NULL);
   REQUIRE (strcmp (names, "") == 0, "listIndexes of a missing collection: '%s', want none",
            names);
   return true;
}

/* createIndexes inside a transaction on a collection the transaction creates (the spec's
 * create-index.json): implicitly (round 0) or after an explicit create (round 1). Neither
 * the collection nor the index exists outside until the commit. */
static bool
check_api_create_index_in_txn (void)
{
   int round;

   for (round = 0; round < 2; round++) {
      mongoc_client_session_t *s = session_new (g.main);
      mongoc_collection_t *coll;
      char name[96];
      const char *names;
      res_t *r;

      snprintf (name, sizeof name, "%s_%d", g.check, round);
      coll = own (mongoc_client_get_collection (g.main, g.db, name), coll_free);
      REQUIRE (start (s, NULL)->ok, "start_transaction failed");
      if (round == 1) {
         REQUIRE_OK (run (g.main, g.db, J ("{'create': '%s'}", name), s),
                     "create in the transaction");
      }
      r = create_indexes (coll, s, "[{'key': {'x': 1}, 'name': 't_1'}]");
      REQUIRE (r->ok, "round %d: createIndexes in the transaction: %s", round, describe (r));
      names = index_names (coll, NULL);
      REQUIRE (strcmp (names, "") == 0,
               "round %d: before the commit listIndexes outside gives '%s', want none", round,
               names);
      REQUIRE (!listed (mongoc_database_get_collection_names_with_opts (
                           own (mongoc_client_get_database (g.main, g.db),
                                (free_fn) mongoc_database_destroy),
                           NULL, NULL),
                        name),
               "round %d: the collection is listed before the commit", round);
      REQUIRE_OK (commit (s), "commit");
      names = index_names (coll, NULL);
      REQUIRE (strcmp (names, "_id_,t_1") == 0, "round %d: after the commit: %s, want _id_,t_1",
               round, names);
   }
   return true;
}

/* create inside a transaction (the spec's create-collection.json): the collection is not
 * listed outside until the commit; creating an existing collection in a transaction is
 * NamespaceExists (48). */
static bool
check_api_create_collection_in_txn (void)
{
   mongoc_database_t *db = own (mongoc_client_get_database (g.main, g.db),
                                (free_fn) mongoc_database_destroy);
   char name[96];
   res_t *r;

   snprintf (name, sizeof name, "%s_c", g.check);
   {
      mongoc_client_session_t *s = session_new (g.main);
      REQUIRE (start (s, NULL)->ok, "start_transaction failed");
      REQUIRE_OK (run (g.main, g.db, J ("{'create': '%s'}", name), s),
                  "create in the transaction");
      REQUIRE (!listed (mongoc_database_get_collection_names_with_opts (db, NULL, NULL), name),
               "the collection is listed before the commit");
      REQUIRE_OK (commit (s), "commit");
      REQUIRE (listed (mongoc_database_get_collection_names_with_opts (db, NULL, NULL), name),
               "the collection is not listed after the commit");
   }
   {
      mongoc_client_session_t *s = session_new (g.main);
      REQUIRE (start (s, NULL)->ok, "start_transaction failed");
      r = run (g.main, g.db, J ("{'create': '%s'}", name), s);
      REQUIRE (code (r) == 48, "create of an existing collection in a transaction: %s, want "
               "NamespaceExists 48", describe (r));
   }
   return true;
}

/* createIndexes in a transaction on a collection that existed before it: refused with
 * OperationNotSupportedInTransaction (263). */
static bool
check_api_create_index_existing_in_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   res_t *r;
   OPEN_TXN (s, g.main, coll, 1);

   r = create_indexes (coll, s, "[{'key': {'x': 1}, 'name': 'x_1'}]");
   REQUIRE (code (r) == NOT_IN_TXN,
            "createIndexes on an existing collection in a transaction: %s, want 263",
            describe (r));
   return true;
}

/* ===== collections and databases ========================================================= */

/* Collection drop (a second drop: NamespaceNotFound 26, as 6.0 answers), listCollections
 * with nameOnly (get_collection_names), listDatabases with nameOnly (get_database_names),
 * database drop. */
static bool
check_api_drop_and_list (void)
{
   mongoc_database_t *db = own (mongoc_client_get_database (g.main, g.db),
                                (free_fn) mongoc_database_destroy);
   mongoc_database_t *db2 = own (mongoc_client_get_database (g.main, g.db2),
                                 (free_fn) mongoc_database_destroy);
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_collection_t *in2 =
      own (mongoc_client_get_collection (g.main, g.db2, g.check), coll_free);
   bson_error_t err;

   REQUIRE (listed (mongoc_database_get_collection_names_with_opts (db, NULL, &err), g.check),
            "get_collection_names misses the check's collection");
   REQUIRE (mongoc_collection_drop_with_opts (coll, NULL, &err), "drop: %s", err.message);
   REQUIRE (!listed (mongoc_database_get_collection_names_with_opts (db, NULL, &err), g.check),
            "the dropped collection is still listed");
   REQUIRE (!mongoc_collection_drop_with_opts (coll, NULL, &err) && err.code == 26,
            "dropping it again: code %u (%s), want NamespaceNotFound 26", err.code, err.message);
   REQUIRE (insert (in2, NULL, J ("{'_id': 1}"))->ok, "insert into the second database failed");
   REQUIRE (listed (mongoc_client_get_database_names_with_opts (g.main, NULL, &err), g.db2),
            "get_database_names misses %s", g.db2);
   REQUIRE (mongoc_database_drop_with_opts (db2, NULL, &err), "database drop: %s", err.message);
   REQUIRE (!listed (mongoc_client_get_database_names_with_opts (g.main, NULL, &err), g.db2),
            "the dropped database %s is still listed", g.db2);
   REQUIRE (count (in2, NULL, J ("{}")) == 0, "the dropped database still has documents");
   return true;
}

/* Catalog commands mongod 6.0 refuses in a transaction, each through its libmongoc helper
 * with the session: OperationNotSupportedInTransaction (263). */
static bool
check_api_catalog_not_in_txn (void)
{
   static const char *what[] = {"collection drop", "drop_index", "get_collection_names",
                                "find_indexes", "get_database_names", "database drop"};
   mongoc_database_t *db = own (mongoc_client_get_database (g.main, g.db),
                                (free_fn) mongoc_database_destroy);
   mongoc_collection_t *coll = coll_of (g.main);
   int i;

   REQUIRE_OK (create_indexes (coll, NULL, "[{'key': {'a': 1}, 'name': 'a_1'}]"), "createIndexes");
   for (i = 0; i < (int) (sizeof what / sizeof what[0]); i++) {
      bson_error_t err = {0};
      const char *names;
      bson_t *opts;
      bool ok = false;
      OPEN_TXN (s, g.main, coll, i + 1);

      opts = with_session (NULL, s);
      switch (i) {
      case 0: ok = mongoc_collection_drop_with_opts (coll, opts, &err); break;
      case 1: ok = mongoc_collection_drop_index_with_opts (coll, "a_1", opts, &err); break;
      case 2: {
         char **n = mongoc_database_get_collection_names_with_opts (db, opts, &err);
         ok = n != NULL;
         bson_strfreev (n);
         break;
      }
      case 3:
         names = names_of (mongoc_collection_find_indexes_with_opts (coll, opts));
         ok = strstr (names, "!") == NULL;
         err.code = ok ? 0 : (uint32_t) atoi (strstr (names, "!") + 1);
         break;
      case 4: {
         char **n = mongoc_client_get_database_names_with_opts (g.main, opts, &err);
         ok = n != NULL;
         bson_strfreev (n);
         break;
      }
      default: ok = mongoc_database_drop_with_opts (db, opts, &err); break;
      }
      REQUIRE (!ok && err.code == NOT_IN_TXN, "%s in a transaction: %s (code %u), want 263",
               what[i], ok ? "succeeded" : err.message, err.code);
   }
   REQUIRE (strcmp (index_names (coll, NULL), "_id_,a_1") == 0, "an index was dropped");
   return true;
}

/* ===== runner ============================================================================ */

static const conformance_check_t checks[] = {
   {"api_distinct", check_api_distinct},
   {"api_distinct_in_txn", check_api_distinct_in_txn},
   {"api_counts", check_api_counts},
   {"api_counts_in_txn", check_api_counts_in_txn},
   {"api_create_indexes", check_api_create_indexes},
   {"api_index_conflicts", check_api_index_conflicts},
   {"api_drop_indexes", check_api_drop_indexes},
   {"api_create_collection_in_txn", check_api_create_collection_in_txn},
   {"api_create_index_in_txn", check_api_create_index_in_txn},
   {"api_create_index_existing_in_txn", check_api_create_index_existing_in_txn},
   {"api_drop_and_list", check_api_drop_and_list},
   {"api_catalog_not_in_txn", check_api_catalog_not_in_txn},
};

int
main (void)
{
   return conformance_main (checks, (int) (sizeof checks / sizeof checks[0]));
}
