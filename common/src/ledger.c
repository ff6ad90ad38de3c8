/* Ledger storage in SQLite (WAL, synchronous=FULL): append-only entries and
 * Merkle nodes guarded by triggers, the checkpoint guard, and the export.
 * Every append writes its entry and the perfect-subtree roots it completes
 * in one transaction, so proofs never need to rehash the log. */
#include "flexo/ledger.h"

#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flexo/blobstore.h"
#include "flexo/fsutil.h"
#include "flexo/note.h"

struct fx_ledger {
	sqlite3 *db;
	char origin[FX_NOTE_MAX_NAME + 1];
	fx_merkle_frontier frontier;
	fx_merkle_frontier saved; /* frontier at fx_ledger_begin */
	int in_batch;
	sqlite3_stmt *ins_entry, *ins_node, *get_node, *get_entry;
	fx_roster roster; /* in force after the last entry */
	int has_roster;
};

/* Schema migrations: migrations[v] takes a database at user_version v to
 * v + 1. Only ever append to this list. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL)"
    "  WITHOUT ROWID;"
    "CREATE TABLE entries(idx INTEGER PRIMARY KEY, kind INTEGER NOT NULL,"
    "  ref INTEGER, signer BLOB, doc BLOB, blob BLOB, body BLOB NOT NULL);"
    "CREATE INDEX entries_kind ON entries(kind);"
    "CREATE INDEX entries_ref ON entries(ref) WHERE kind = 14;"
    "CREATE INDEX entries_doc ON entries(doc) WHERE kind = 12;"
    "CREATE TABLE nodes(level INTEGER NOT NULL, idx INTEGER NOT NULL,"
    "  hash BLOB NOT NULL, PRIMARY KEY(level, idx)) WITHOUT ROWID;"
    "CREATE TABLE checkpoints(seq INTEGER PRIMARY KEY,"
    "  size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL);"
    /* INSERT OR REPLACE deletes without firing DELETE triggers, so
     * inserts must also be checked: entries only ever extend the log. */
    "CREATE TRIGGER entries_append_only BEFORE INSERT ON entries"
    "  WHEN NEW.idx IS NOT (SELECT COALESCE(MAX(idx) + 1, 0) FROM entries)"
    "  BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;"
    "CREATE TRIGGER nodes_no_replace BEFORE INSERT ON nodes"
    "  WHEN EXISTS (SELECT 1 FROM nodes WHERE level = NEW.level AND"
    "  idx = NEW.idx)"
    "  BEGIN SELECT RAISE(ABORT, 'merkle nodes are append-only'); END;"
    "CREATE TRIGGER checkpoints_no_replace BEFORE INSERT ON checkpoints"
    "  WHEN EXISTS (SELECT 1 FROM checkpoints WHERE seq = NEW.seq)"
    "  BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;"
    "CREATE TRIGGER meta_no_replace BEFORE INSERT ON meta"
    "  WHEN EXISTS (SELECT 1 FROM meta WHERE key = NEW.key)"
    "  BEGIN SELECT RAISE(ABORT, 'ledger metadata is write-once'); END;"
    "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries BEGIN"
    "  SELECT RAISE(ABORT, 'ledger entries are append-only'); END;"
    "CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries BEGIN"
    "  SELECT RAISE(ABORT, 'ledger entries are append-only'); END;"
    "CREATE TRIGGER nodes_no_update BEFORE UPDATE ON nodes BEGIN"
    "  SELECT RAISE(ABORT, 'merkle nodes are append-only'); END;"
    "CREATE TRIGGER nodes_no_delete BEFORE DELETE ON nodes BEGIN"
    "  SELECT RAISE(ABORT, 'merkle nodes are append-only'); END;"
    "CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints BEGIN"
    "  SELECT RAISE(ABORT, 'checkpoints are append-only'); END;"
    "CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints BEGIN"
    "  SELECT RAISE(ABORT, 'checkpoints are append-only'); END;"
    "CREATE TRIGGER meta_no_update BEFORE UPDATE ON meta BEGIN"
    "  SELECT RAISE(ABORT, 'ledger metadata is write-once'); END;"
    "CREATE TRIGGER meta_no_delete BEFORE DELETE ON meta BEGIN"
    "  SELECT RAISE(ABORT, 'ledger metadata is write-once'); END;",
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(*migrations)))
_Static_assert(N_MIGRATIONS == FX_LEDGER_SCHEMA_VERSION,
               "one migration per schema version");

static fx_err db_err(fx_ledger *l, fx_diag *diag, const char *what)
{
	return fx_diag_set(diag, FX_EDB, "ledger: %s: %s", what,
	                   sqlite3_errmsg(l->db));
}

static fx_err exec(fx_ledger *l, const char *sql, fx_diag *diag)
{
	char *msg = NULL;
	if (sqlite3_exec(l->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fx_err err = fx_diag_set(diag, FX_EDB, "ledger: %s",
		                         msg ? msg : "sqlite error");
		sqlite3_free(msg);
		return err;
	}
	return FX_OK;
}

static fx_err meta_get(fx_ledger *l, const char *key, void *out, size_t cap,
                       size_t *len, fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	fx_err err = FX_OK;
	int rc;

	if (sqlite3_prepare_v2(l->db, "SELECT value FROM meta WHERE key = ?",
	                       -1, &st, NULL) != SQLITE_OK)
		return db_err(l, diag, "reading metadata");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		if (n > cap) {
			err = fx_diag_set(diag, FX_EFORMAT,
			                  "ledger: metadata %s is %zu bytes",
			                  key, n);
		} else {
			memcpy(out, sqlite3_column_blob(st, 0), n);
			*len = n;
		}
	} else if (rc == SQLITE_DONE) {
		err = FX_ENOTFOUND;
	} else {
		err = db_err(l, diag, "reading metadata");
	}
	sqlite3_finalize(st);
	return err;
}

static fx_err meta_put(fx_ledger *l, const char *key, const void *v, size_t n,
                       fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	fx_err err = FX_OK;

	if (sqlite3_prepare_v2(l->db,
	                       "INSERT INTO meta(key, value) VALUES(?, ?)", -1,
	                       &st, NULL) != SQLITE_OK)
		return db_err(l, diag, "writing metadata");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, v, (int)n, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		err = db_err(l, diag, "writing metadata");
	sqlite3_finalize(st);
	return err;
}

static fx_err migrate(fx_ledger *l, const char *origin, fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	char sql[64];
	int version;
	fx_err err;

	if (sqlite3_prepare_v2(l->db, "PRAGMA user_version", -1, &st, NULL) !=
	        SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_err(l, diag, "reading schema version");
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > FX_LEDGER_SCHEMA_VERSION)
		return fx_diag_set(
		    diag, FX_ESTATE,
		    "ledger: schema version %d is newer than this "
		    "program's %d",
		    version, FX_LEDGER_SCHEMA_VERSION);
	if (version == FX_LEDGER_SCHEMA_VERSION)
		return FX_OK;
	if (version == 0 && origin == NULL)
		return fx_diag_set(diag, FX_EINVAL,
		                   "ledger: a new ledger needs an origin (log "
		                   "name)");
	if ((err = exec(l, "BEGIN IMMEDIATE", diag)) != FX_OK)
		return err;
	for (int v = version; v < N_MIGRATIONS; v++)
		if ((err = exec(l, migrations[v], diag)) != FX_OK)
			goto fail;
	if (version == 0 && (err = meta_put(l, "origin", origin, strlen(origin),
	                                    diag)) != FX_OK)
		goto fail;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	         FX_LEDGER_SCHEMA_VERSION);
	if ((err = exec(l, sql, diag)) != FX_OK)
		goto fail;
	return exec(l, "COMMIT", diag);
fail:
	sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
	return err;
}

static fx_err node_get(void *ctx, unsigned level, uint64_t index,
                       uint8_t out[FX_HASH_LEN])
{
	fx_ledger *l = ctx;
	sqlite3_stmt *st = l->get_node;
	fx_err err = FX_OK;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)level);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
	if (sqlite3_step(st) != SQLITE_ROW)
		err = FX_ENOTFOUND;
	else if (sqlite3_column_bytes(st, 0) != FX_HASH_LEN)
		err = FX_EFORMAT;
	else
		memcpy(out, sqlite3_column_blob(st, 0), FX_HASH_LEN);
	sqlite3_reset(st);
	return err;
}

static fx_err node_put(void *ctx, unsigned level, uint64_t index,
                       const uint8_t hash[FX_HASH_LEN])
{
	fx_ledger *l = ctx;
	sqlite3_stmt *st = l->ins_node;
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)level);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
	sqlite3_bind_blob(st, 3, hash, FX_HASH_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? FX_OK : FX_EDB;
}

/* Rebuilds the in-memory frontier from the stored perfect-subtree roots:
 * one read per set bit of the size. */
static fx_err load_frontier(fx_ledger *l, fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	uint64_t size = 0;

	if (sqlite3_prepare_v2(l->db,
	                       "SELECT COALESCE(MAX(idx) + 1, 0) "
	                       "FROM entries",
	                       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_err(l, diag, "reading the log size");
	}
	size = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	fx_merkle_frontier_init(&l->frontier);
	for (unsigned lv = 0; lv < FX_MERKLE_MAX_LEVELS; lv++) {
		if (!((size >> lv) & 1))
			continue;
		if (node_get(l, lv, (size >> lv) - 1, l->frontier.node[lv]) !=
		    FX_OK)
			return fx_diag_set(
			    diag, FX_EFORMAT,
			    "ledger: merkle node (%u, %llu) "
			    "missing for a log of %llu entries",
			    lv, (unsigned long long)((size >> lv) - 1),
			    (unsigned long long)size);
	}
	l->frontier.size = size;
	return FX_OK;
}

/* One-row queries: sql with one parameter bound to a (or digest). Return 1
 * on a row, 0 on none, -1 on error; *out is the caller's to finalise. */
static int query_row(fx_ledger *l, const char *sql, int64_t a,
                     sqlite3_stmt **out)
{
	int rc;
	if (sqlite3_prepare_v2(l->db, sql, -1, out, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(*out, 1, a);
	rc = sqlite3_step(*out);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int query_row_blob(fx_ledger *l, const char *sql,
                          const uint8_t digest[FX_BLAKE2B_BYTES],
                          sqlite3_stmt **out)
{
	int rc;
	if (sqlite3_prepare_v2(l->db, sql, -1, out, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_blob(*out, 1, digest, FX_BLAKE2B_BYTES, SQLITE_STATIC);
	rc = sqlite3_step(*out);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The roster in force: the last roster entry (verified when appended). */
static fx_err load_roster(fx_ledger *l, fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	fx_entry *e = NULL;
	fx_err err = FX_OK;
	int rc;

	rc = query_row(l,
	               "SELECT body FROM entries WHERE kind = ? ORDER BY idx "
	               "DESC LIMIT 1",
	               FLEXO__LEDGER__V1__ENTRY__KIND_ROSTER, &st);
	if (rc == 1) {
		e = flexo__ledger__v1__entry__unpack(
		    NULL, (size_t)sqlite3_column_bytes(st, 0),
		    sqlite3_column_blob(st, 0));
		if (e == NULL || e->roster == NULL)
			err =
			    fx_diag_set(diag, FX_EFORMAT,
			                "ledger: stored roster entry does not "
			                "decode");
		else if ((err = fx_roster_parse(
		              &l->roster, e->roster->envelope.data,
		              e->roster->envelope.len, diag)) == FX_OK)
			l->has_roster = 1;
	} else if (rc < 0) {
		err = db_err(l, diag, "reading the roster");
	}
	if (e != NULL)
		flexo__ledger__v1__entry__free_unpacked(e, NULL);
	sqlite3_finalize(st);
	return err;
}

fx_err fx_ledger_open(const char *path, const char *origin, fx_ledger **out,
                      fx_diag *diag)
{
	fx_ledger *l = NULL;
	char stored[FX_NOTE_MAX_NAME + 1] = {0};
	size_t n = 0;
	fx_err err;

	if (origin != NULL && !fx_note_name_valid(origin))
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "ledger: origin '%s' is not a valid log name "
		    "(printable ASCII, no space or '+')",
		    origin);
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "out of memory");
	fx_roster_init(&l->roster);
	/* Without an origin only an existing ledger may be opened: a typo in
	 * a path must not leave an empty database behind. */
	if (sqlite3_open_v2(path, &l->db,
	                    SQLITE_OPEN_READWRITE |
	                        (origin != NULL ? SQLITE_OPEN_CREATE : 0),
	                    NULL) != SQLITE_OK) {
		err = fx_diag_set(diag, FX_EDB, "ledger: cannot open %s: %s",
		                  path, l->db ? sqlite3_errmsg(l->db) : "?");
		goto fail;
	}
	sqlite3_busy_timeout(l->db, 5000);
	/* WAL + FULL: a committed append survives power loss. */
	if ((err = exec(l,
	                "PRAGMA journal_mode = WAL; "
	                "PRAGMA synchronous = FULL;",
	                diag)) != FX_OK)
		goto fail;
	if ((err = migrate(l, origin, diag)) != FX_OK)
		goto fail;
	if ((err = meta_get(l, "origin", stored, FX_NOTE_MAX_NAME, &n, diag)) !=
	    FX_OK) {
		if (err == FX_ENOTFOUND)
			err = fx_diag_set(diag, FX_EFORMAT,
			                  "ledger: %s has no origin", path);
		goto fail;
	}
	stored[n] = '\0';
	if (origin != NULL && strcmp(origin, stored) != 0) {
		err = fx_diag_set(diag, FX_EMISMATCH,
		                  "ledger: %s is the log '%s', not '%s'", path,
		                  stored, origin);
		goto fail;
	}
	memcpy(l->origin, stored, n + 1);
	if (sqlite3_prepare_v2(l->db,
	                       "INSERT INTO entries(idx, kind, ref, signer, "
	                       "doc, blob, body) VALUES(?, ?, ?, ?, ?, ?, ?)",
	                       -1, &l->ins_entry, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(l->db,
	                       "INSERT INTO nodes(level, idx, hash) "
	                       "VALUES(?, ?, ?)",
	                       -1, &l->ins_node, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(l->db,
	                       "SELECT hash FROM nodes WHERE level = ? AND "
	                       "idx = ?",
	                       -1, &l->get_node, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(l->db, "SELECT body FROM entries WHERE idx = ?",
	                       -1, &l->get_entry, NULL) != SQLITE_OK) {
		err = db_err(l, diag, "preparing statements");
		goto fail;
	}
	if ((err = load_frontier(l, diag)) != FX_OK ||
	    (err = load_roster(l, diag)) != FX_OK)
		goto fail;
	*out = l;
	return FX_OK;
fail:
	fx_ledger_close(l);
	return err;
}

void fx_ledger_close(fx_ledger *l)
{
	if (l == NULL)
		return;
	if (l->in_batch)
		fx_ledger_rollback(l);
	sqlite3_finalize(l->ins_entry);
	sqlite3_finalize(l->ins_node);
	sqlite3_finalize(l->get_node);
	sqlite3_finalize(l->get_entry);
	sqlite3_close(l->db);
	fx_roster_release(&l->roster);
	free(l);
}

uint64_t fx_ledger_size(const fx_ledger *l)
{
	return l->frontier.size;
}

const char *fx_ledger_origin(const fx_ledger *l)
{
	return l->origin;
}

fx_err fx_ledger_begin(fx_ledger *l, fx_diag *diag)
{
	fx_err err;
	if (l->in_batch)
		return fx_diag_set(diag, FX_ESTATE,
		                   "ledger: a batch is already open");
	if ((err = exec(l, "BEGIN IMMEDIATE", diag)) != FX_OK)
		return err;
	l->saved = l->frontier;
	l->in_batch = 1;
	return FX_OK;
}

fx_err fx_ledger_commit(fx_ledger *l, fx_diag *diag)
{
	fx_err err;
	if (!l->in_batch)
		return fx_diag_set(diag, FX_ESTATE, "ledger: no open batch");
	if ((err = exec(l, "COMMIT", diag)) != FX_OK) {
		fx_ledger_rollback(l);
		return err;
	}
	l->in_batch = 0;
	return FX_OK;
}

void fx_ledger_rollback(fx_ledger *l)
{
	if (!l->in_batch)
		return;
	sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
	l->frontier = l->saved;
	l->in_batch = 0;
}

fx_err fx_ledger_latest_release(fx_ledger *l, uint64_t *index,
                                uint8_t digest[FX_BLAKE2B_BYTES], fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	fx_err err = FX_OK;
	int rc;

	rc = query_row(l,
	               "SELECT idx, doc FROM entries WHERE kind = ? ORDER BY "
	               "idx DESC LIMIT 1",
	               FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR, &st);
	if (rc == 1 && sqlite3_column_bytes(st, 1) == FX_BLAKE2B_BYTES) {
		*index = (uint64_t)sqlite3_column_int64(st, 0);
		memcpy(digest, sqlite3_column_blob(st, 1), FX_BLAKE2B_BYTES);
	} else if (rc == 0) {
		err = fx_diag_set(diag, FX_ENOTFOUND,
		                  "ledger: no anchor release logged yet");
	} else {
		err = db_err(l, diag, "reading releases");
	}
	sqlite3_finalize(st);
	return err;
}

static fx_err check_withdrawal(fx_ledger *l, const fx_entry_facts *f,
                               fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	fx_err err = FX_OK;
	int r;

	r = query_row(l, "SELECT kind, signer, doc FROM entries WHERE idx = ?",
	              (int64_t)f->ref, &st);
	if (r < 0) {
		err = db_err(l, diag, "reading the withdrawn entry");
		goto out;
	}
	if (r == 0 || sqlite3_column_int(st, 0) !=
	                  FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED) {
		err = fx_diag_set(diag, FX_ENOTFOUND,
		                  "withdrawal: entry %llu is not an accepted "
		                  "contribution",
		                  (unsigned long long)f->ref);
		goto out;
	}
	if (sqlite3_column_bytes(st, 1) != 32 ||
	    memcmp(sqlite3_column_blob(st, 1), f->signer, 32) != 0) {
		err = fx_diag_set(diag, FX_EPERM,
		                  "withdrawal: signed by a key other than the "
		                  "one that signed contribution %llu",
		                  (unsigned long long)f->ref);
		goto out;
	}
	if (sqlite3_column_bytes(st, 2) != 32 ||
	    memcmp(sqlite3_column_blob(st, 2), f->named_digest, 32) != 0) {
		err =
		    fx_diag_set(diag, FX_EMISMATCH,
		                "withdrawal: names a contribution digest other "
		                "than that of entry %llu",
		                (unsigned long long)f->ref);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	r = query_row(l, "SELECT idx FROM entries WHERE kind = 14 AND ref = ?",
	              (int64_t)f->ref, &st);
	if (r != 0)
		err = r < 0
		          ? db_err(l, diag, "reading withdrawals")
		          : fx_diag_set(diag, FX_EEXIST,
		                        "withdrawal: contribution %llu was "
		                        "already withdrawn by entry %lld",
		                        (unsigned long long)f->ref,
		                        (long long)sqlite3_column_int64(st, 0));
out:
	sqlite3_finalize(st);
	return err;
}

/* The derived columns of one stored entry. */
typedef struct row {
	int kind; /* 0: no such entry */
	int has_signer, has_doc, has_ref;
	uint8_t signer[32], doc[32];
	int64_t ref;
} row;

static fx_err read_row(fx_ledger *l, uint64_t idx, row *out, fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	r = query_row(l,
	              "SELECT kind, signer, doc, ref FROM entries WHERE "
	              "idx = ?",
	              (int64_t)idx, &st);
	if (r < 0) {
		sqlite3_finalize(st);
		return db_err(l, diag, "reading an entry");
	}
	if (r == 1) {
		out->kind = sqlite3_column_int(st, 0);
		if (sqlite3_column_bytes(st, 1) == 32) {
			out->has_signer = 1;
			memcpy(out->signer, sqlite3_column_blob(st, 1), 32);
		}
		if (sqlite3_column_bytes(st, 2) == 32) {
			out->has_doc = 1;
			memcpy(out->doc, sqlite3_column_blob(st, 2), 32);
		}
		if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
			out->has_ref = 1;
			out->ref = sqlite3_column_int64(st, 3);
		}
	}
	sqlite3_finalize(st);
	return FX_OK;
}

/* A refused withdrawal's reason against the log before it (docs/ledger.md
 * §1): what it names exists or not, who owns it, what its evidence entry
 * shows. The history-free half is fx_ledger_check_entry's. */
static fx_err check_refusal(fx_ledger *l, const fx_entry_facts *f,
                            fx_diag *diag)
{
	const char *g = fx_refusal_name((fx_refusal)f->refusal);
	uint64_t j = 0;
	int found = 0;
	row c, ev;
	fx_err err;

	if (f->refusal == FX_REFUSAL_FORMAT)
		return FX_OK;
	if (f->has_named) {
		fx_diag d;
		err = fx_ledger_find_contribution(l, f->named_digest, &j, &d);
		if (err != FX_OK && err != FX_ENOTFOUND)
			return fx_diag_set(diag, err, "%s", d.msg);
		found = err == FX_OK;
	}
	if (f->refusal == FX_REFUSAL_UNKNOWN) {
		if (found)
			return fx_diag_set(diag, FX_EMISMATCH,
			                   "refused as '%s', but entry %llu is "
			                   "the accepted contribution it names",
			                   g, (unsigned long long)j);
		return FX_OK;
	}
	if (!found)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "refused as '%s', but it names no accepted "
		                   "contribution (that is "
		                   "'unknown-contribution')",
		                   g);
	if (f->refusal == FX_REFUSAL_SIGNATURE)
		return FX_OK;
	if ((err = read_row(l, j, &c, diag)) != FX_OK ||
	    (err = read_row(l, f->ref, &ev, diag)) != FX_OK)
		return err;
	if (f->refusal == FX_REFUSAL_NOT_OWNER) {
		if (ev.kind != FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED ||
		    !ev.has_doc || memcmp(ev.doc, f->named_digest, 32) != 0)
			return fx_diag_set(diag, FX_EMISMATCH,
			                   "refused as 'not-owner': evidence "
			                   "entry %llu is not the accepted "
			                   "contribution it names",
			                   (unsigned long long)f->ref);
		if (ev.has_signer && memcmp(ev.signer, f->signer, 32) == 0)
			return fx_diag_set(diag, FX_EMISMATCH,
			                   "refused as 'not-owner', but its "
			                   "signer made contribution %llu",
			                   (unsigned long long)f->ref);
		return FX_OK;
	}
	if (!c.has_signer || memcmp(c.signer, f->signer, 32) != 0)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "refused as '%s', but it is not signed by "
		                   "the owner of contribution %llu (that is "
		                   "'not-owner')",
		                   g, (unsigned long long)j);
	if (f->refusal == FX_REFUSAL_ALREADY_WITHDRAWN) {
		if (ev.kind != FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL ||
		    !ev.has_ref || ev.ref != (int64_t)j)
			return fx_diag_set(
			    diag, FX_EMISMATCH,
			    "refused as 'already-withdrawn', but "
			    "entry %llu is not a withdrawal of "
			    "contribution %llu",
			    (unsigned long long)f->ref, (unsigned long long)j);
		return FX_OK;
	}
	/* replay: the evidence holds a document by the same key with a
	 * sequence at least this one's. */
	{
		uint8_t *bytes = NULL;
		size_t n = 0;
		bool ok = false;
		if (ev.kind != 0) {
			if ((err = fx_ledger_entry_bytes(l, f->ref, &bytes, &n,
			                                 diag)) != FX_OK)
				return err;
			ok = fx_ledger_entry_shows_sequence(
			    bytes, n, f->signer, f->sequence);
			free(bytes);
		}
		if (!ok)
			return fx_diag_set(
			    diag, FX_EMISMATCH,
			    "refused as 'replay', but evidence "
			    "entry %llu holds no document of this "
			    "key with a sequence of at least %llu",
			    (unsigned long long)f->ref,
			    (unsigned long long)f->sequence);
	}
	return FX_OK;
}

fx_err fx_ledger_find_withdrawal(fx_ledger *l, uint64_t contribution,
                                 uint64_t *index, fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	fx_err err = FX_OK;
	int r;

	r = query_row(l, "SELECT idx FROM entries WHERE kind = 14 AND ref = ?",
	              (int64_t)contribution, &st);
	if (r == 1)
		*index = (uint64_t)sqlite3_column_int64(st, 0);
	else if (r == 0)
		err = fx_diag_set(diag, FX_ENOTFOUND,
		                  "ledger: contribution %llu is not withdrawn",
		                  (unsigned long long)contribution);
	else
		err = db_err(l, diag, "reading withdrawals");
	sqlite3_finalize(st);
	return err;
}

fx_err fx_ledger_find_contribution(fx_ledger *l,
                                   const uint8_t digest[FX_BLAKE2B_BYTES],
                                   uint64_t *index, fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	fx_err err = FX_OK;
	int rc;

	/* The first one: what an auditor finds scanning the log in order. */
	if (sqlite3_prepare_v2(l->db,
	                       "SELECT idx FROM entries WHERE kind = 12 AND "
	                       "doc = ? ORDER BY idx LIMIT 1",
	                       -1, &st, NULL) != SQLITE_OK)
		return db_err(l, diag, "finding a contribution");
	sqlite3_bind_blob(st, 1, digest, FX_BLAKE2B_BYTES, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*index = (uint64_t)sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		err = fx_diag_set(diag, FX_ENOTFOUND,
		                  "ledger: no accepted contribution with that "
		                  "manifest digest");
	else
		err = db_err(l, diag, "finding a contribution");
	sqlite3_finalize(st);
	return err;
}

fx_err fx_ledger_live(fx_ledger *l, uint64_t **idx, size_t *n, fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	uint64_t *v = NULL, *p;
	size_t cnt = 0, cap = 0;
	fx_err err = FX_OK;
	int rc;

	if (sqlite3_prepare_v2(l->db,
	                       "SELECT idx FROM entries WHERE kind = 12 AND "
	                       "idx NOT IN (SELECT ref FROM entries WHERE "
	                       "kind = 14) ORDER BY idx",
	                       -1, &st, NULL) != SQLITE_OK)
		return db_err(l, diag, "listing live contributions");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			if ((p = realloc(v, cap * sizeof(*v))) == NULL) {
				err = fx_diag_set(diag, FX_ENOMEM,
				                  "out of memory");
				goto out;
			}
			v = p;
		}
		v[cnt++] = (uint64_t)sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		err = db_err(l, diag, "listing live contributions");
		goto out;
	}
	*idx = v;
	*n = cnt;
	v = NULL;
out:
	free(v);
	sqlite3_finalize(st);
	return err;
}

static fx_err check_assembly(fx_ledger *l, const fx_entry *e, fx_diag *diag)
{
	const Flexo__Ledger__V1__Assembly *a = e->assembly;
	sqlite3_stmt *st = NULL;
	uint64_t *live = NULL;
	size_t n = 0;
	fx_err err;
	int r;

	if (a == NULL || a->model_digest.len != 32)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "assembly: model digest must be 32 bytes");
	if (a->n_included > FX_LEDGER_MAX_INCLUDED)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "assembly: %zu experts > %u", a->n_included,
		                   FX_LEDGER_MAX_INCLUDED);
	r = query_row(l, "SELECT kind FROM entries WHERE idx = ?",
	              (int64_t)a->anchor_index, &st);
	if (r <= 0 || sqlite3_column_int(st, 0) !=
	                  FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR) {
		sqlite3_finalize(st);
		return fx_diag_set(diag, FX_ENOTFOUND,
		                   "assembly: entry %llu is not an anchor "
		                   "release",
		                   (unsigned long long)a->anchor_index);
	}
	sqlite3_finalize(st);
	if ((err = fx_ledger_live(l, &live, &n, diag)) != FX_OK)
		return err;
	for (size_t i = 0; i < a->n_included || i < n; i++) {
		if (i < a->n_included && i < n && a->included[i] == live[i])
			continue;
		if (i < a->n_included)
			err = fx_diag_set(
			    diag, FX_EMISMATCH,
			    "assembly: lists entry %llu where the "
			    "live contributions have %s%llu",
			    (unsigned long long)a->included[i],
			    i < n ? "" : "none, ",
			    (unsigned long long)(i < n ? live[i] : 0));
		else
			err = fx_diag_set(diag, FX_EMISMATCH,
			                  "assembly: omits live contribution "
			                  "%llu",
			                  (unsigned long long)live[i]);
		break;
	}
	free(live);
	return err;
}

/* Largest `ref` logged for entries of one kind, or -1 if none. */
static int64_t max_ref(fx_ledger *l, int kind)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (query_row(l, "SELECT MAX(ref) FROM entries WHERE kind = ?", kind,
	              &st) == 1 &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

fx_err fx_ledger_append(fx_ledger *l, fx_entry *e, uint64_t *index,
                        fx_diag *diag)
{
	const void *signer = NULL, *blob = NULL, *doc = NULL;
	int64_t ref = 0, last;
	int has_ref = 0, own_tx = 0, new_roster = 0;
	uint8_t *bytes = NULL, leaf[FX_HASH_LEN];
	fx_merkle_frontier f;
	fx_entry_facts facts;
	fx_roster roster;
	size_t len;
	sqlite3_stmt *st = NULL;
	fx_err err = FX_OK;
	int r;

	fx_roster_init(&roster);
	if (l->frontier.size >= FX_LEDGER_MAX_ENTRIES)
		return fx_diag_set(diag, FX_ETOOBIG, "ledger: full");
	e->version = FX_LEDGER_ENTRY_VERSION;
	e->index = l->frontier.size;
	if (e->time_unix == 0)
		e->time_unix = (int64_t)time(NULL);

	memset(&facts, 0, sizeof(facts));
	if (e->kind_case == FLEXO__LEDGER__V1__ENTRY__KIND_ROSTER) {
		if (l->in_batch)
			return fx_diag_set(diag, FX_ESTATE,
			                   "ledger: roster updates are not "
			                   "batched");
		if (e->roster == NULL)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "empty roster entry");
		err = fx_ledger_check_roster(
		    e, l->has_roster ? &l->roster : NULL, &roster, diag);
		if (err != FX_OK)
			goto out;
		ref = (int64_t)roster.version;
		has_ref = new_roster = 1;
	} else {
		if (e->kind_case == FLEXO__LEDGER__V1__ENTRY__KIND__NOT_SET ||
		    e->roster == NULL) /* any member of the union */
			return fx_diag_set(diag, FX_EFORMAT,
			                   "entry has no kind");
		err = fx_ledger_check_entry(
		    e, l->has_roster ? &l->roster : NULL, &facts, diag);
		if (err != FX_OK)
			goto out;
		if (facts.has_signer)
			signer = facts.signer;
		if (facts.has_blob)
			blob = facts.blob;
	}
	switch (e->kind_case) {
	case FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR:
		last = max_ref(l, FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR);
		if (last >= 0 && facts.ref <= (uint64_t)last) {
			err = fx_diag_set(
			    diag, FX_EROLLBACK,
			    "anchor release v%llu is not above the "
			    "logged v%lld",
			    (unsigned long long)facts.ref, (long long)last);
			goto out;
		}
		ref = (int64_t)facts.ref;
		has_ref = 1;
		doc = facts.doc_digest;
		break;
	case FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED:
		r = query_row_blob(l,
		                   "SELECT 1 FROM entries WHERE kind = 11 AND "
		                   "doc = ?",
		                   facts.release_digest, &st);
		sqlite3_finalize(st);
		st = NULL;
		if (r != 1) {
			err = r < 0
			          ? db_err(l, diag, "reading releases")
			          : fx_diag_set(diag, FX_EMISMATCH,
			                        "contribution by %s names an "
			                        "anchor release that is not in "
			                        "the log",
			                        facts.signer_name);
			goto out;
		}
		doc = facts.doc_digest;
		break;
	case FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL:
		if ((err = check_withdrawal(l, &facts, diag)) != FX_OK)
			goto out;
		ref = (int64_t)facts.ref;
		has_ref = 1;
		doc = facts.doc_digest;
		break;
	case FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL_REFUSED:
		if ((err = check_refusal(l, &facts, diag)) != FX_OK)
			goto out;
		if (facts.refusal > FX_REFUSAL_SIGNATURE) {
			ref = (int64_t)facts.ref;
			has_ref = 1;
		}
		if (facts.opens)
			doc = facts.doc_digest;
		break;
	case FLEXO__LEDGER__V1__ENTRY__KIND_ASSEMBLY:
		if ((err = check_assembly(l, e, diag)) != FX_OK)
			goto out;
		break;
	default:
		break;
	}

	len = protobuf_c_message_get_packed_size(&e->base);
	if (len > FX_LEDGER_MAX_ENTRY) {
		err = fx_diag_set(diag, FX_ETOOBIG, "entry of %zu bytes > %u",
		                  len, (unsigned)FX_LEDGER_MAX_ENTRY);
		goto out;
	}
	if ((bytes = malloc(len ? len : 1)) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	protobuf_c_message_pack(&e->base, bytes);
	fx_merkle_leaf_hash(bytes, len, leaf);

	if (!l->in_batch) {
		if ((err = exec(l, "BEGIN IMMEDIATE", diag)) != FX_OK)
			goto out;
		own_tx = 1;
	}
	st = l->ins_entry;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)e->index);
	sqlite3_bind_int(st, 2, (int)e->kind_case);
	if (has_ref)
		sqlite3_bind_int64(st, 3, ref);
	else
		sqlite3_bind_null(st, 3);
	if (signer)
		sqlite3_bind_blob(st, 4, signer, 32, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	if (doc)
		sqlite3_bind_blob(st, 5, doc, 32, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 5);
	if (blob)
		sqlite3_bind_blob(st, 6, blob, 32, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 6);
	sqlite3_bind_blob(st, 7, bytes, (int)len, SQLITE_STATIC);
	r = sqlite3_step(st);
	sqlite3_reset(st);
	if (r != SQLITE_DONE) {
		err = db_err(l, diag, "storing the entry");
		goto out;
	}
	f = l->frontier;
	if (fx_merkle_frontier_append(&f, leaf, node_put, l) != FX_OK) {
		err = db_err(l, diag, "storing merkle nodes");
		goto out;
	}
	if (own_tx && (err = exec(l, "COMMIT", diag)) != FX_OK)
		goto out;
	own_tx = 0;
	l->frontier = f;
	if (new_roster) {
		/* Inside a batch a rollback would leave this roster in force
		 * in memory: batches are for bulk appends of other kinds. */
		fx_roster_release(&l->roster);
		l->roster = roster;
		fx_roster_init(&roster);
		l->has_roster = 1;
	}
	if (index != NULL)
		*index = e->index;
out:
	if (own_tx)
		sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
	fx_roster_release(&roster);
	free(bytes);
	return err;
}

fx_err fx_ledger_entry_bytes(fx_ledger *l, uint64_t index, uint8_t **bytes,
                             size_t *len, fx_diag *diag)
{
	sqlite3_stmt *st = l->get_entry;
	fx_err err = FX_OK;
	size_t n;
	uint8_t *p;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)index);
	if (sqlite3_step(st) != SQLITE_ROW) {
		err = fx_diag_set(diag, FX_ENOTFOUND, "ledger: no entry %llu",
		                  (unsigned long long)index);
		goto out;
	}
	n = (size_t)sqlite3_column_bytes(st, 0);
	if ((p = malloc(n ? n : 1)) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	if (n)
		memcpy(p, sqlite3_column_blob(st, 0), n);
	*bytes = p;
	*len = n;
out:
	sqlite3_reset(st);
	return err;
}

/* A tree size a root or proof is asked for must not exceed the log. */
static fx_err check_tree_size(const fx_ledger *l, uint64_t size,
                              fx_diag *diag)
{
	if (size > l->frontier.size)
		return fx_diag_set(diag, FX_EINVAL,
		                   "ledger: size %llu > log size %llu",
		                   (unsigned long long)size,
		                   (unsigned long long)l->frontier.size);
	return FX_OK;
}

fx_err fx_ledger_root(fx_ledger *l, uint64_t size, uint8_t root[FX_HASH_LEN],
                      fx_diag *diag)
{
	fx_err err = check_tree_size(l, size, diag);
	if (err != FX_OK)
		return err;
	if (size == l->frontier.size) {
		fx_merkle_frontier_root(&l->frontier, root);
		return FX_OK;
	}
	return fx_merkle_root_at(node_get, l, size, root, diag);
}

fx_err fx_ledger_inclusion_proof(fx_ledger *l, uint64_t index, uint64_t size,
                                 uint8_t path[][FX_HASH_LEN], size_t *len,
                                 fx_diag *diag)
{
	fx_err err = check_tree_size(l, size, diag);
	if (err != FX_OK)
		return err;
	return fx_merkle_inclusion_proof(node_get, l, index, size, path, len,
	                                 diag);
}

fx_err fx_ledger_consistency_proof(fx_ledger *l, uint64_t m, uint64_t n,
                                   uint8_t path[][FX_HASH_LEN], size_t *len,
                                   fx_diag *diag)
{
	fx_err err = check_tree_size(l, n, diag);
	if (err != FX_OK)
		return err;
	return fx_merkle_consistency_proof(node_get, l, m, n, path, len, diag);
}

fx_err fx_ledger_latest_checkpoint(fx_ledger *l, char **note, size_t *len,
                                   fx_checkpoint *cp, fx_diag *diag)
{
	sqlite3_stmt *st = NULL;
	fx_err err = FX_OK;
	char *copy = NULL;
	size_t n;
	int rc;

	if (sqlite3_prepare_v2(l->db,
	                       "SELECT size, root, note FROM checkpoints "
	                       "ORDER BY seq DESC LIMIT 1",
	                       -1, &st, NULL) != SQLITE_OK)
		return db_err(l, diag, "reading checkpoints");
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		err = fx_diag_set(diag, FX_ENOTFOUND,
		                  "ledger: no checkpoint signed yet");
		goto out;
	}
	if (rc != SQLITE_ROW || sqlite3_column_bytes(st, 1) != FX_HASH_LEN) {
		err = db_err(l, diag, "reading checkpoints");
		goto out;
	}
	n = (size_t)sqlite3_column_bytes(st, 2);
	if (note != NULL) {
		if ((copy = malloc(n + 1)) == NULL) {
			err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
			goto out;
		}
		memcpy(copy, sqlite3_column_text(st, 2), n);
		copy[n] = '\0';
		*note = copy;
	}
	if (len != NULL)
		*len = n;
	if (cp != NULL) {
		memset(cp, 0, sizeof(*cp));
		memcpy(cp->origin, l->origin, strlen(l->origin));
		cp->size = (uint64_t)sqlite3_column_int64(st, 0);
		memcpy(cp->root, sqlite3_column_blob(st, 1), FX_HASH_LEN);
	}
out:
	sqlite3_finalize(st);
	return err;
}

fx_err fx_ledger_sign_checkpoint(fx_ledger *l, const uint8_t sk[64],
                                 char **note, size_t *len, fx_diag *diag)
{
	uint8_t pk[32], stored_pk[32], path[FX_MERKLE_MAX_PATH][FX_HASH_LEN];
	fx_checkpoint last, c;
	sqlite3_stmt *st = NULL;
	char *text = NULL;
	size_t n = 0, plen = 0;
	int first_key = 0;
	fx_err err;

	if (l->in_batch)
		return fx_diag_set(diag, FX_ESTATE,
		                   "ledger: cannot sign inside an open batch");
	crypto_sign_ed25519_sk_to_pk(pk, sk);
	err = meta_get(l, "log_pk", stored_pk, sizeof(stored_pk), &n, diag);
	if (err == FX_ENOTFOUND) {
		first_key = 1;
	} else if (err != FX_OK) {
		return err;
	} else if (n != 32 || sodium_memcmp(pk, stored_pk, 32) != 0) {
		return fx_diag_set(diag, FX_EPERM,
		                   "ledger: refusing to sign with a key other "
		                   "than the log key");
	}

	memset(&c, 0, sizeof(c));
	memcpy(c.origin, l->origin, strlen(l->origin));
	c.size = l->frontier.size;
	fx_merkle_frontier_root(&l->frontier, c.root);

	/* The guard: prove the new tree extends the last signed one before a
	 * signature exists that could contradict it. */
	err = fx_ledger_latest_checkpoint(l, NULL, NULL, &last, diag);
	if (err == FX_OK) {
		if (last.size > c.size)
			return fx_diag_set(diag, FX_EROLLBACK,
			                   "ledger: refusing to sign size %llu "
			                   "after a checkpoint of size %llu",
			                   (unsigned long long)c.size,
			                   (unsigned long long)last.size);
		if (last.size > 0) {
			if ((err = fx_ledger_consistency_proof(
			         l, last.size, c.size, path, &plen, diag)))
				return err;
			if ((err = fx_merkle_verify_consistency(
			         last.size, c.size, last.root, c.root,
			         (const uint8_t(*)[FX_HASH_LEN])path, plen,
			         diag)) != FX_OK) {
				fx_diag_prefix(
				    diag, "ledger: refusing to sign a "
				          "checkpoint inconsistent with the "
				          "last one");
				return err;
			}
		}
	} else if (err != FX_ENOTFOUND) {
		return err;
	}

	if ((err = fx_checkpoint_sign(&c, sk, &text, &n, diag)) != FX_OK)
		return err;
	if ((err = exec(l, "BEGIN IMMEDIATE", diag)) != FX_OK)
		goto out;
	if (first_key && (err = meta_put(l, "log_pk", pk, 32, diag)) != FX_OK)
		goto fail;
	if (sqlite3_prepare_v2(l->db,
	                       "INSERT INTO checkpoints(size, root, note) "
	                       "VALUES(?, ?, ?)",
	                       -1, &st, NULL) != SQLITE_OK) {
		err = db_err(l, diag, "storing the checkpoint");
		goto fail;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)c.size);
	sqlite3_bind_blob(st, 2, c.root, FX_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, text, (int)n, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		err = db_err(l, diag, "storing the checkpoint");
		goto fail;
	}
	if ((err = exec(l, "COMMIT", diag)) != FX_OK)
		goto fail;
	if (len != NULL)
		*len = n;
	if (note != NULL) {
		*note = text;
		text = NULL;
	}
	goto out;
fail:
	sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(st);
	free(text);
	return err;
}

fx_err fx_ledger_vkey(fx_ledger *l, char *out, size_t cap, fx_diag *diag)
{
	uint8_t pk[32];
	fx_note_verifier v;
	size_t n = 0;
	fx_err err;

	err = meta_get(l, "log_pk", pk, sizeof(pk), &n, diag);
	if (err == FX_ENOTFOUND)
		return fx_diag_set(
		    diag, FX_ESTATE,
		    "ledger: no checkpoint signed yet, so no log "
		    "key");
	if (err != FX_OK)
		return err;
	if (n != 32)
		return fx_diag_set(diag, FX_EFORMAT, "ledger: bad log key");
	if ((err = fx_note_verifier_init(&v, l->origin, pk, diag)) != FX_OK)
		return err;
	return fx_note_vkey_format(&v, out, cap, diag);
}

/* ---- export ---- */

/* Streams the rows of `sql` (one blob/text column) into dir/name through a
 * temporary file: length-prefixed records (4-byte big-endian length), or
 * raw bytes when `prefix` is 0. Buffered: one write per MiB, not per row. */
static fx_err export_rows(fx_ledger *l, const char *dir, const char *name,
                          const char *sql, int prefix, fx_diag *diag)
{
	enum { BUF = 1u << 20 };
	fx_atomic_file af = {.fd = -1};
	char path[FX_PATH_MAX];
	sqlite3_stmt *st = NULL;
	uint8_t *buf = NULL;
	size_t used = 0;
	fx_err err;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((buf = malloc(BUF)) == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "out of memory");
	if ((err = fx_atomic_open(&af, path, 0644, diag)) != FX_OK)
		goto out;
	if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) != SQLITE_OK) {
		err = db_err(l, diag, "exporting");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const uint8_t *p = sqlite3_column_blob(st, 0);
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		if (used + 4 + n > BUF) {
			if ((err = fx_atomic_write(&af, buf, used, diag)))
				goto out;
			used = 0;
		}
		if (prefix) {
			buf[used] = (uint8_t)(n >> 24);
			buf[used + 1] = (uint8_t)(n >> 16);
			buf[used + 2] = (uint8_t)(n >> 8);
			buf[used + 3] = (uint8_t)n;
			used += 4;
		}
		if (4 + n > BUF) { /* a row larger than the buffer */
			if ((err = fx_atomic_write(&af, buf, used, diag)) ||
			    (err = fx_atomic_write(&af, p, n, diag)))
				goto out;
			used = 0;
		} else if (n > 0) {
			memcpy(buf + used, p, n);
			used += n;
		}
	}
	if (rc != SQLITE_DONE) {
		err = db_err(l, diag, "exporting");
		goto out;
	}
	if ((err = fx_atomic_write(&af, buf, used, diag)) == FX_OK)
		err = fx_atomic_commit(&af, diag);
out:
	fx_atomic_abort(&af);
	sqlite3_finalize(st);
	free(buf);
	return err;
}

/* Copies every blob the entries name from blob_dir into dir/blobs: a hard
 * link when both are on one file system, else a streamed, re-hashed copy. A
 * blob missing (or corrupted) at the source ends up missing in the export,
 * where the auditor names it. */
/* Puts blob `digest` of blob_dir into the export's store: a hard link when
 * both are on one file system, else a streamed, re-hashed copy. A blob
 * missing at the source stays missing; the auditor names it. */
static fx_err copy_blob(const fx_blobstore *out, const char *blob_dir,
                        const uint8_t digest[FX_BLAKE2B_BYTES], fx_diag *diag)
{
	char src[FX_PATH_MAX], dst[FX_PATH_MAX], hex[2 * FX_BLAKE2B_BYTES + 1];
	uint8_t got[FX_BLAKE2B_BYTES];

	fx_hex(hex, digest, FX_BLAKE2B_BYTES);
	snprintf(src, sizeof(src), "%s/%s", blob_dir, hex);
	snprintf(dst, sizeof(dst), "%s/%s", out->dir, hex);
	if (access(src, R_OK) != 0 || access(dst, F_OK) == 0 ||
	    link(src, dst) == 0)
		return FX_OK;
	return fx_blobstore_put_file(out, src, got, diag);
}

/* The files an anchor release entry names: anchor model, public router
 * rows and tokenizer, which re-assembling a served model needs. */
static fx_err copy_release_blobs(const fx_blobstore *out, const char *blob_dir,
                                 const uint8_t *body, size_t len, fx_diag *diag)
{
	fx_entry *e = flexo__ledger__v1__entry__unpack(NULL, len, body);
	Flexo__V1__Envelope *env = NULL;
	ProtobufCMessage *m = NULL;
	Flexo__V1__AnchorRelease *rel;
	fx_err err = FX_OK;

	if (e == NULL ||
	    e->kind_case != FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR ||
	    fx_envelope_open(e->anchor->envelope.data, e->anchor->envelope.len,
	                     FX_TYPE_RELEASE, &env, NULL) != FX_OK ||
	    fx_wire_decode(&flexo__v1__anchor_release__descriptor,
	                   env->payload.data, env->payload.len, FX_WIRE_DOC_MAX,
	                   &m, NULL) != FX_OK)
		goto out; /* verified when appended; nothing to copy */
	rel = (Flexo__V1__AnchorRelease *)m;
	if (rel->anchor_blake2b.len == FX_BLAKE2B_BYTES)
		err = copy_blob(out, blob_dir, rel->anchor_blake2b.data, diag);
	if (err == FX_OK && rel->router_pub_blake2b.len == FX_BLAKE2B_BYTES)
		err = copy_blob(out, blob_dir, rel->router_pub_blake2b.data,
		                diag);
	if (err == FX_OK && rel->tokenizer_blake2b.len == FX_BLAKE2B_BYTES)
		err =
		    copy_blob(out, blob_dir, rel->tokenizer_blake2b.data, diag);
out:
	fx_wire_free(m);
	if (env != NULL)
		fx_wire_free(&env->base);
	if (e != NULL)
		flexo__ledger__v1__entry__free_unpacked(e, NULL);
	return err;
}

/* Copies every blob the entries name from blob_dir into dir/blobs. */
static fx_err export_blobs(fx_ledger *l, const char *blob_dir, const char *dir,
                           fx_diag *diag)
{
	char bdir[FX_PATH_MAX];
	sqlite3_stmt *st = NULL;
	fx_blobstore out;
	fx_err err;
	int rc = SQLITE_DONE;

	snprintf(bdir, sizeof(bdir), "%s/%s", dir, FX_EXPORT_BLOBS);
	if ((err = fx_blobstore_open(&out, bdir, diag)) != FX_OK)
		return err;
	if (sqlite3_prepare_v2(l->db,
	                       "SELECT kind, blob, body FROM entries WHERE "
	                       "blob IS NOT NULL OR kind = 11",
	                       -1, &st, NULL) != SQLITE_OK)
		return db_err(l, diag, "listing blobs");
	while (err == FX_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_int(st, 0) ==
		    FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR)
			err = copy_release_blobs(
			    &out, blob_dir, sqlite3_column_blob(st, 2),
			    (size_t)sqlite3_column_bytes(st, 2), diag);
		else if (sqlite3_column_bytes(st, 1) == FX_BLAKE2B_BYTES)
			err = copy_blob(&out, blob_dir,
			                sqlite3_column_blob(st, 1), diag);
	}
	if (err == FX_OK && rc != SQLITE_DONE)
		err = db_err(l, diag, "listing blobs");
	sqlite3_finalize(st);
	return err;
}

fx_err fx_ledger_export(fx_ledger *l, const char *blob_dir, const char *dir,
                        fx_diag *diag)
{
	char vkey[FX_NOTE_VKEY_MAX + 2], path[FX_PATH_MAX];
	size_t n;
	fx_err err;

	if (strlen(dir) > 3000)
		return fx_diag_set(diag, FX_EINVAL, "export path too long");
	if ((err = fx_mkdir_p(dir, 0755, diag)) != FX_OK)
		return err;
	if ((err = fx_ledger_vkey(l, vkey, sizeof(vkey) - 1, diag)) != FX_OK)
		return err;
	n = strlen(vkey);
	vkey[n++] = '\n';
	snprintf(path, sizeof(path), "%s/%s", dir, FX_EXPORT_VKEY);
	if ((err = fx_write_file_atomic(path, vkey, n, 0644, diag)) != FX_OK)
		return err;
	/* One read transaction: all files describe the same log state. */
	if ((err = exec(l, "BEGIN", diag)) != FX_OK)
		return err;
	if ((err = export_rows(l, dir, FX_EXPORT_ENTRIES,
	                       "SELECT body FROM entries ORDER BY idx", 1,
	                       diag)) != FX_OK ||
	    (err = export_rows(l, dir, FX_EXPORT_LEAVES,
	                       "SELECT hash FROM nodes WHERE level = 0 "
	                       "ORDER BY idx",
	                       0, diag)) != FX_OK ||
	    (err = export_rows(l, dir, FX_EXPORT_CHECKPOINTS,
	                       "SELECT note FROM checkpoints ORDER BY seq", 1,
	                       diag)) != FX_OK)
		goto out;
	if (blob_dir != NULL)
		err = export_blobs(l, blob_dir, dir, diag);
out:
	sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL);
	return err;
}
