/*
 * conformance_rules - the server's session and transaction rules, driven by hand.
 *
 * Raw commands carry the transaction fields (txnNumber, startTransaction, autocommit)
 * themselves, to reach states libmongoc refuses to produce: TransactionCommitted,
 * NoSuchTransaction, TransactionTooOld, InvalidOptions, commands refused in transactions;
 * plus findAndModify and cursors inside a transaction, and the test server's command log.
 * Harness, environment and rules for expectations: conformance.h and conformance.c.
 */
#include "conformance.h"

/* ===== the server's transaction rules, driven by hand ===================================== */

/* These checks write the transaction fields (txnNumber, startTransaction, autocommit) into
 * raw commands themselves, to reach states libmongoc refuses to produce. The session lives
 * on a client of its own: its lsid then never returns to a pool where a libmongoc-managed
 * transaction would reuse it with a smaller txnNumber. */
static mongoc_client_t *raw_client;

static mongoc_client_session_t *
raw_session (void)
{
   raw_client = client_new (g.uri1, g.app);
   return session_new (raw_client);
}

/* Statement of transaction TXN on S: insert {_id: ID}; START adds startTransaction: true,
 * EXTRA more top-level fields (", 'readConcern': ..." or ""). */
static res_t *
raw_insert (mongoc_client_session_t *s, int txn, int id, bool start, const char *extra)
{
   return run (raw_client, g.db,
               J ("{'insert': '%s', 'documents': [{'_id': %d}], 'txnNumber': {'$numberLong':"
                  " '%d'}, 'autocommit': false%s%s}",
                  g.check, id, txn, start ? ", 'startTransaction': true" : "", extra),
               s);
}

/* VERB (commitTransaction or abortTransaction) for transaction TXN on S. */
static res_t *
raw_end (mongoc_client_session_t *s, const char *verb, int txn)
{
   return run (raw_client, "admin",
               J ("{'%s': 1, 'txnNumber': {'$numberLong': '%d'}, 'autocommit': false}", verb, txn),
               s);
}

#define RAW_TXN(s, txn, id)                                                         \
   do {                                                                             \
      res_t *r_ = raw_insert (s, txn, id, true, "");                                \
      REQUIRE (r_->ok, "starting transaction %d: %s", txn, describe (r_));          \
   } while (0)

/* abortTransaction of a committed transaction: TransactionCommitted (256). */
static bool
check_rule_abort_committed (void)
{
   mongoc_client_session_t *s = raw_session ();
   res_t *r;
   RAW_TXN (s, 10, 1);
   REQUIRE_OK (raw_end (s, "commitTransaction", 10), "commit");
   r = raw_end (s, "abortTransaction", 10);
   REQUIRE (code (r) == 256, "abort after commit: %s, want TransactionCommitted 256",
            describe (r));
   REQUIRE (count (coll_of (g.main), NULL, J ("{}")) == 1, "the committed insert is missing");
   return true;
}

/* commitTransaction of an aborted transaction: NoSuchTransaction (251) with
 * TransientTransactionError. */
static bool
check_rule_commit_aborted (void)
{
   mongoc_client_session_t *s = raw_session ();
   res_t *r;
   RAW_TXN (s, 10, 1);
   REQUIRE_OK (raw_end (s, "abortTransaction", 10), "abort");
   r = raw_end (s, "commitTransaction", 10);
   REQUIRE (code (r) == 251, "commit after abort: %s, want NoSuchTransaction 251", describe (r));
   REQUIRE (has_label (r, TTE), "NoSuchTransaction on commit lacks %s", TTE);
   return true;
}

/* A statement for a txnNumber that never started: NoSuchTransaction (251), transient. */
static bool
check_rule_no_such_transaction (void)
{
   mongoc_client_session_t *s = raw_session ();
   res_t *r = raw_insert (s, 10, 1, false, "");
   REQUIRE (code (r) == 251, "statement without startTransaction: %s, want 251", describe (r));
   REQUIRE (has_label (r, TTE), "NoSuchTransaction lacks %s", TTE);
   REQUIRE (count (coll_of (g.main), NULL, J ("{}")) == 0, "the statement was applied");
   return true;
}

/* A txnNumber below the session's highest: TransactionTooOld (225). Starting a newer
 * transaction aborts the open older one. */
static bool
check_rule_too_old (void)
{
   mongoc_client_session_t *s = raw_session ();
   res_t *r;
   RAW_TXN (s, 10, 1);
   RAW_TXN (s, 11, 2);
   REQUIRE_OK (raw_end (s, "commitTransaction", 11), "commit of the newer transaction");
   r = raw_end (s, "commitTransaction", 10);
   REQUIRE (code (r) == 225, "commit of the older transaction: %s, want TransactionTooOld 225",
            describe (r));
   r = raw_insert (s, 9, 3, true, "");
   REQUIRE (code (r) == 225, "starting an older transaction: %s, want 225", describe (r));
   REQUIRE (count (coll_of (g.main), NULL, J ("{}")) == 1 &&
               count (coll_of (g.main), NULL, J ("{'_id': 2}")) == 1,
            "want only the newer transaction's document");
   return true;
}

/* The second statement of a raw transaction, an insert carrying EXTRA (members appended to
 * the command), is refused with InvalidOptions (72); WHAT names it in the failure reason. */
static bool
rule_invalid_option (const char *extra, const char *what)
{
   mongoc_client_session_t *s = raw_session ();
   res_t *r;
   RAW_TXN (s, 10, 1);
   r = raw_insert (s, 10, 2, false, extra);
   REQUIRE (code (r) == 72, "%s: %s, want InvalidOptions 72", what, describe (r));
   return true;
}

/* readConcern on a statement after the first: InvalidOptions (72). */
static bool
check_rule_read_concern_first_only (void)
{
   return rule_invalid_option (", 'readConcern': {'level': 'local'}",
                               "readConcern on the second statement");
}

/* writeConcern on a statement inside a transaction: InvalidOptions (72). */
static bool
check_rule_no_write_concern_in_txn (void)
{
   return rule_invalid_option (", 'writeConcern': {'w': 1}",
                               "writeConcern on a transaction statement");
}

/* Commands mongod does not allow in a multi-document transaction (count, listCollections,
 * drop): OperationNotSupportedInTransaction (263). libmongoc's estimated_document_count
 * sends count. */
static bool
check_rule_commands_not_in_txn (void)
{
   static const struct {
      const char *name, *cmd;
   } cmds[] = {{"count", "{'count': '%s'}"},
               {"listCollections", "{'listCollections': 1, 'filter': {'name': '%s'}}"},
               {"drop", "{'drop': '%s'}"}};
   mongoc_collection_t *coll = coll_of (g.main);
   int i;

   for (i = 0; i < (int) (sizeof cmds / sizeof cmds[0]); i++) {
      res_t *r;
      OPEN_TXN (s, g.main, coll, i + 1);
      r = run (g.main, g.db, J (cmds[i].cmd, g.check), s);
      REQUIRE (code (r) == 263, "%s in a transaction: %s, want 263", cmds[i].name, describe (r));
   }
   return true;
}

/* findAndModify in a transaction returns the transaction's view and stays invisible
 * outside until the commit. */
static bool
check_find_and_modify_in_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_collection_t *outside = coll_of (client_new (g.uri1, g.app));
   mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new ();
   res_t *r = res_new ();
   bson_t *value = NULL;
   bson_iter_t it;

   bson_destroy (&r->reply);
   REQUIRE (insert (coll, NULL, J ("{'_id': 1, 'n': 1}"))->ok, "seed insert failed");
   {
      OPEN_TXN (s, g.main, coll, 2);
      mongoc_find_and_modify_opts_set_update (fam, J ("{'$inc': {'n': 1}}"));
      mongoc_find_and_modify_opts_set_flags (fam, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
      mongoc_find_and_modify_opts_append (fam, with_session (NULL, s));
      r->ok = mongoc_collection_find_and_modify_with_opts (coll, J ("{'_id': 1}"), fam,
                                                           &r->reply, &r->err);
      mongoc_find_and_modify_opts_destroy (fam);
      REQUIRE (r->ok, "findAndModify: %s", describe (r));
      if (bson_iter_init_find (&it, &r->reply, "value") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
         uint32_t len;
         const uint8_t *data;
         bson_iter_document (&it, &len, &data);
         value = own (bson_new_from_data (data, len), bson_free_doc);
      }
      REQUIRE (get_int (value, "n", -1) == 2, "findAndModify returned n = %lld, want 2",
               (long long) get_int (value, "n", -1));
      REQUIRE (get_int (find_one (outside, NULL, J ("{'_id': 1}")), "n", -1) == 1,
               "the uncommitted findAndModify is visible outside");
      REQUIRE (commit (s)->ok, "commit failed");
   }
   REQUIRE (get_int (find_one (outside, NULL, J ("{'_id': 1}")), "n", -1) == 2,
            "the committed findAndModify is not visible");
   return true;
}

/* A cursor opened in a transaction is iterated with getMore in the same transaction and sees
 * the transaction's own writes. */
static bool
check_cursor_in_txn (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   mongoc_cursor_t *cur;
   const bson_t *doc;
   bson_error_t err;
   int i, n = 0;
   bool failed;

   for (i = 1; i <= 5; i++) {
      REQUIRE (insert (coll, NULL, J ("{'_id': %d}", i))->ok, "seed insert failed");
   }
   {
      OPEN_TXN (s, g.main, coll, 6);
      cur = mongoc_collection_find_with_opts (coll, J ("{}"),
                                              with_session (J ("{'batchSize': 2}"), s), NULL);
      while (mongoc_cursor_next (cur, &doc)) {
         n++;
      }
      failed = mongoc_cursor_error (cur, &err);
      mongoc_cursor_destroy (cur);
      REQUIRE (!failed, "cursor in the transaction: %s", err.message);
      REQUIRE (n == 6, "the cursor returned %d documents, want 6", n);
      REQUIRE (commit (s)->ok, "commit failed");
   }
   return true;
}

/* ===== the test server's command log ===================================================== */

/* xdbtx-testd records the commands it runs ({xdbtxCommandLog: 1} -> {commands: [{name, db,
 * lsid, txnNumber, startTransaction, autocommit, appName, ...}]}, clear: true empties it).
 * A 3-insert transaction logs exactly insert x3 and commitTransaction, all with one txnNumber,
 * the first insert alone carrying startTransaction. Handshakes, heartbeats, the log command
 * itself and other clients' commands are left out. */
static bool
check_command_log (void)
{
   mongoc_collection_t *coll = coll_of (g.main);
   char names[256] = "";
   bson_iter_t it, entry;
   res_t *r = admin (J ("{'xdbtxCommandLog': 1, 'clear': true}"));
   int64_t txn = -1;
   int i, kept = 0;

   if (code (r) == 59) {
      SKIP ("no xdbtxCommandLog command (a real server)");
   }
   REQUIRE (r->ok, "xdbtxCommandLog clear: %s", describe (r));
   {
      OPEN_TXN (s, g.main, coll, 1);
      for (i = 2; i <= 3; i++) {
         REQUIRE (insert (coll, s, J ("{'_id': %d}", i))->ok, "insert %d failed", i);
      }
      REQUIRE_OK (commit (s), "commit");
   }
   r = admin (J ("{'xdbtxCommandLog': 1}"));
   REQUIRE_OK (r, "xdbtxCommandLog");
   REQUIRE (bson_iter_init_find (&it, &r->reply, "commands") && BSON_ITER_HOLDS_ARRAY (&it) &&
               bson_iter_recurse (&it, &entry),
            "reply has no commands array");
   while (bson_iter_next (&entry)) {
      bson_t e;
      uint32_t len;
      const uint8_t *data;
      const char *name, *app;
      bool start_txn;

      REQUIRE (BSON_ITER_HOLDS_DOCUMENT (&entry), "a log entry is not a document");
      bson_iter_document (&entry, &len, &data);
      REQUIRE (bson_init_static (&e, data, len), "a log entry is malformed");
      name = get_str (&e, "name");
      app = get_str (&e, "appName");
      REQUIRE (*name, "a log entry has no name");
      if (!strcasecmp (name, "hello") || !strcasecmp (name, "isMaster") ||
          !strcmp (name, "xdbtxCommandLog") || (*app && strcmp (app, g.app) != 0)) {
         continue;
      }
      start_txn = bson_iter_init_find (&it, &e, "startTransaction") && bson_iter_as_bool (&it);
      REQUIRE (start_txn == (kept == 0), "%s (entry %d) %s startTransaction", name, kept + 1,
               start_txn ? "has" : "lacks");
      if (kept == 0) {
         txn = get_int (&e, "txnNumber", -1);
      }
      REQUIRE (get_int (&e, "txnNumber", -2) == txn, "%s has txnNumber %lld, the first had %lld",
               name, (long long) get_int (&e, "txnNumber", -2), (long long) txn);
      kept++;
      if (names[0]) {
         bson_strncpy (names + strlen (names), ",", sizeof names - strlen (names));
      }
      bson_strncpy (names + strlen (names), name, sizeof names - strlen (names));
   }
   REQUIRE (strcmp (names, "insert,insert,insert,commitTransaction") == 0,
            "log after clear: [%s], want [insert,insert,insert,commitTransaction]", names);
   return true;
}

/* ===== runner ============================================================================ */

static const conformance_check_t checks[] = {
   {"rule_abort_committed", check_rule_abort_committed},
   {"rule_commit_aborted", check_rule_commit_aborted},
   {"rule_no_such_transaction", check_rule_no_such_transaction},
   {"rule_too_old", check_rule_too_old},
   {"rule_read_concern_first_only", check_rule_read_concern_first_only},
   {"rule_no_write_concern_in_txn", check_rule_no_write_concern_in_txn},
   {"rule_commands_not_in_txn", check_rule_commands_not_in_txn},
   {"cursor_in_txn", check_cursor_in_txn},
   {"find_and_modify_in_txn", check_find_and_modify_in_txn},
   {"command_log", check_command_log},
};

int
main (void)
{
   return conformance_main (checks, (int) (sizeof checks / sizeof checks[0]));
}
