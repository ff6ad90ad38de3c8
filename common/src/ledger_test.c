/* Ledger storage: appends of every entry kind and the checks that refuse
 * bad ones (refused withdrawals whose reason the log does not bear out), roots
 * and proofs from stored nodes against an in-memory tree of the same entry
 * bytes, SQL UPDATE/DELETE refused by triggers, reopening, and the checkpoint
 * guard refusing to sign an inconsistent tree. */
#include "flexo/ledger.h"
#include "fx_test.h"
#include "ledger_fixture.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/fx_ledger_test.XXXXXX";
static char dbpath[256];

static fxt_party croot, coord, alice, bob, mallory;

static void build(fx_ledger *l, uint64_t *acc_a, uint64_t *acc_b,
                  uint64_t *anchor)
{
	fxt_party *members[] = {&coord, &alice, &bob};
	const fx_role roles[] = {FX_ROLE_COORDINATOR, FX_ROLE_CONTRIBUTOR,
	                         FX_ROLE_CONTRIBUTOR};
	uint64_t idx, inc[2];
	uint8_t model[32] = {1};
	fx_diag d;

	CHECK_MSG(fxt_roster(l, 1, &croot, members, roles, 3, &idx, &d) ==
	              FX_OK,
	          "%s", d.msg);
	CHECK(idx == 0);
	CHECK_MSG(fxt_anchor(l, &coord, 1, 1, anchor, &d) == FX_OK, "%s",
	          d.msg);
	CHECK_MSG(fxt_accepted(l, &alice, (const uint8_t *)"A", 1, acc_a, &d) ==
	              FX_OK,
	          "%s", d.msg);
	CHECK_OK(fxt_rejected(l, "router row norm 40 > 4", &idx, &d));
	CHECK_OK(fxt_accepted(l, &bob, (const uint8_t *)"B", 1, acc_b, &d));
	inc[0] = *acc_a;
	inc[1] = *acc_b;
	CHECK_MSG(fxt_assembly(l, *anchor, inc, 2, model, &idx, &d) == FX_OK,
	          "%s", d.msg);
	CHECK(fx_ledger_size(l) == 6);
}

static void test_append_and_rules(void)
{
	fx_ledger *l = NULL;
	uint64_t a, b, anchor, idx, inc[2], *live = NULL;
	uint8_t model[32] = {2};
	size_t n = 0;
	fx_diag d;

	/* without an origin nothing is created */
	CHECK(fx_ledger_open(dbpath, NULL, &l, &d) != FX_OK);
	CHECK(access(dbpath, F_OK) != 0);
	CHECK_OK(fx_ledger_open(dbpath, "flexo.test/ledger", &l, &d));
	if (l == NULL)
		return;
	build(l, &a, &b, &anchor);

	/* roster versions only go up; releases too */
	{
		fxt_party *m[] = {&coord};
		const fx_role r[] = {FX_ROLE_COORDINATOR};
		CHECK(fxt_roster(l, 1, &croot, m, r, 1, &idx, &d) ==
		      FX_EROLLBACK);
		CHECK(fxt_anchor(l, &coord, 1, 1, &idx, &d) == FX_EROLLBACK);
		CHECK(fxt_anchor(l, &alice, 2, 1, &idx, &d) != FX_OK);
	}
	/* withdrawals: by the contributor only, of accepted entries, once */
	CHECK(fxt_withdrawal(l, &bob, a, &idx, &d) == FX_EPERM);
	CHECK(strstr(d.msg, "other than the one") != NULL);
	CHECK(fxt_withdrawal(l, &alice, 3, &idx, &d) == FX_ENOTFOUND);
	CHECK_OK(fxt_withdrawal(l, &alice, a, &idx, &d));
	CHECK(fxt_withdrawal(l, &alice, a, &idx, &d) == FX_EEXIST);

	/* a withdrawal request names the contribution by manifest digest */
	{
		uint8_t *bytes = NULL, digest[32];
		size_t blen = 0;
		uint64_t found = 0;
		fx_entry *e;
		Flexo__V1__Envelope *env = NULL;
		CHECK_OK(fx_ledger_entry_bytes(l, b, &bytes, &blen, &d));
		e = flexo__ledger__v1__entry__unpack(NULL, blen, bytes);
		CHECK(e != NULL);
		if (e != NULL) {
			CHECK_OK(fx_envelope_open(e->accepted->envelope.data,
			                          e->accepted->envelope.len,
			                          FX_TYPE_CONTRIBUTION, &env,
			                          &d));
			if (env != NULL) {
				fx_blake2b(digest, env->payload.data,
				           env->payload.len);
				CHECK_OK(fx_ledger_find_contribution(
				    l, digest, &found, &d));
				CHECK(found == b);
				digest[0] ^= 1;
				CHECK(fx_ledger_find_contribution(l, digest,
				                                  &found, &d) ==
				      FX_ENOTFOUND);
				fx_wire_free(&env->base);
			}
			flexo__ledger__v1__entry__free_unpacked(e, NULL);
		}
		free(bytes);
	}

	CHECK_OK(fx_ledger_live(l, &live, &n, &d));
	CHECK(n == 1 && live != NULL && live[0] == b);
	free(live);

	/* an assembly must include exactly the live contributions */
	inc[0] = a;
	inc[1] = b;
	CHECK(fxt_assembly(l, anchor, inc, 2, model, &idx, &d) == FX_EMISMATCH);
	CHECK(strstr(d.msg, "lists entry 2") != NULL);
	CHECK(fxt_assembly(l, anchor, inc, 0, model, &idx, &d) == FX_EMISMATCH);
	CHECK(strstr(d.msg, "omits live contribution 4") != NULL);
	CHECK(fxt_assembly(l, 2, inc + 1, 1, model, &idx, &d) == FX_ENOTFOUND);
	CHECK_OK(fxt_assembly(l, anchor, inc + 1, 1, model, &idx, &d));

	/* a contribution must name a release this log published */
	{
		uint8_t bogus[32] = {7};
		CHECK(fxt_accepted_for(l, &bob, (const uint8_t *)"R", 1, bogus,
		                       &idx, &d) == FX_EMISMATCH);
		CHECK_MSG(strstr(d.msg, "not in the log") != NULL, "%s", d.msg);
	}
	/* a key outside the roster is refused before anything is stored */
	{
		uint64_t before = fx_ledger_size(l);
		CHECK(fxt_accepted(l, &mallory, (const uint8_t *)"F", 1, &idx,
		                   &d) != FX_OK);
		CHECK(fx_ledger_size(l) == before);
	}
	fx_ledger_close(l);
}

/* Every root and proof the ledger serves equals the in-memory tree over
 * the same exact entry bytes, and verifies. */
static void test_proofs_match(void)
{
	fx_ledger *l = NULL;
	fx_merkle_mem mem;
	uint8_t path[FX_MERKLE_MAX_PATH][32], ref[FX_MERKLE_MAX_PATH][32];
	uint8_t r1[32], r2[32], leaf[32];
	size_t len, rlen;
	uint64_t size, idx;
	int bad = 0;
	fx_diag d;

	CHECK_OK(fx_ledger_open(dbpath, "flexo.test/ledger", &l, &d));
	if (l == NULL)
		return;
	/* grow to a size with an uneven shape */
	for (int i = 0; i < 20; i++) {
		uint8_t p[4] = {(uint8_t)i, 7, 7, 7};
		CHECK_OK(
		    fxt_accepted(l, i % 2 ? &alice : &bob, p, 4, &idx, &d));
	}
	size = fx_ledger_size(l);
	fx_merkle_mem_init(&mem);
	for (uint64_t i = 0; i < size; i++) {
		uint8_t *bytes = NULL;
		size_t n = 0;
		CHECK_OK(fx_ledger_entry_bytes(l, i, &bytes, &n, &d));
		fx_merkle_leaf_hash(bytes, n, leaf);
		CHECK_OK(fx_merkle_mem_append(&mem, leaf));
		free(bytes);
	}
	for (uint64_t n = 1; n <= size; n++) {
		CHECK_OK(fx_ledger_root(l, n, r1, &d));
		CHECK_OK(
		    fx_merkle_root_at(fx_merkle_mem_get, &mem, n, r2, NULL));
		if (memcmp(r1, r2, 32) != 0)
			bad++;
		for (uint64_t i = 0; i < n; i++) {
			CHECK_OK(
			    fx_ledger_inclusion_proof(l, i, n, path, &len, &d));
			CHECK_OK(fx_merkle_inclusion_proof(
			    fx_merkle_mem_get, &mem, i, n, ref, &rlen, NULL));
			if (len != rlen || memcmp(path, ref, len * 32) != 0)
				bad++;
		}
		for (uint64_t m = 1; m <= n; m++) {
			CHECK_OK(fx_ledger_consistency_proof(l, m, n, path,
			                                     &len, &d));
			CHECK_OK(fx_merkle_root_at(fx_merkle_mem_get, &mem, m,
			                           r1, NULL));
			if (fx_merkle_verify_consistency(
			        m, n, r1, r2, (const uint8_t(*)[32])path, len,
			        NULL) != FX_OK)
				bad++;
		}
	}
	CHECK_MSG(bad == 0, "%d proofs differ", bad);
	/* Past the log's end: refused, naming the sizes. */
	CHECK(fx_ledger_root(l, size + 1, r1, &d) == FX_EINVAL);
	CHECK_MSG(strstr(d.msg, "> log size") != NULL, "%s", d.msg);
	CHECK(fx_ledger_inclusion_proof(l, 0, size + 1, path, &len, &d) ==
	      FX_EINVAL);
	CHECK(fx_ledger_consistency_proof(l, 1, size + 1, path, &len, &d) ==
	      FX_EINVAL);
	fx_merkle_mem_release(&mem);
	fx_ledger_close(l);
}

static void test_sql_tamper_refused(void)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	static const char *const attempts[] = {
	    "UPDATE entries SET body = x'00' WHERE idx = 2",
	    "DELETE FROM entries WHERE idx = 5",
	    "UPDATE nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 0",
	    "DELETE FROM nodes",
	    "UPDATE meta SET value = 'evil' WHERE key = 'origin'",
	    "INSERT OR REPLACE INTO entries(idx, kind, body) "
	    "VALUES(1, 12, x'00')",
	    "INSERT INTO entries(idx, kind, body) VALUES(1000, 12, x'00')",
	    "INSERT OR REPLACE INTO nodes(level, idx, hash) "
	    "VALUES(0, 0, zeroblob(32))",
	    "INSERT OR REPLACE INTO meta(key, value) VALUES('origin', 'x')",
	};

	CHECK(sqlite3_open(dbpath, &db) == SQLITE_OK);
	for (size_t i = 0; i < sizeof(attempts) / sizeof(*attempts); i++) {
		int rc = sqlite3_exec(db, attempts[i], NULL, NULL, &msg);
		CHECK_MSG(rc != SQLITE_OK, "allowed: %s", attempts[i]);
		CHECK_MSG(msg != NULL && (strstr(msg, "append-only") ||
		                          strstr(msg, "write-once")),
		          "%s: %s", attempts[i], msg ? msg : "(none)");
		sqlite3_free(msg);
		msg = NULL;
	}
	sqlite3_close(db);
}

static void test_checkpoint_guard(void)
{
	fx_ledger *l = NULL;
	fx_note_verifier v;
	fx_checkpoint c, latest;
	char *note = NULL, vkey[FX_NOTE_VKEY_MAX];
	size_t len = 0;
	uint64_t idx;
	uint8_t root[32];
	fx_diag d;
	sqlite3 *db = NULL;

	CHECK_OK(fx_ledger_open(dbpath, NULL, &l, &d));
	if (l == NULL)
		return;
	CHECK(strcmp(fx_ledger_origin(l), "flexo.test/ledger") == 0);
	CHECK(fx_ledger_vkey(l, vkey, sizeof(vkey), &d) == FX_ESTATE);
	CHECK_OK(fx_ledger_sign_checkpoint(l, coord.kp.sk, &note, &len, &d));
	CHECK_OK(
	    fx_note_verifier_init(&v, "flexo.test/ledger", coord.kp.pk, NULL));
	CHECK(fx_checkpoint_open(note, len, &v, &c, &d) == FX_OK);
	CHECK(c.size == fx_ledger_size(l));
	CHECK_OK(fx_ledger_root(l, c.size, root, &d));
	CHECK(memcmp(root, c.root, 32) == 0);
	free(note);
	CHECK_OK(fx_ledger_vkey(l, vkey, sizeof(vkey), &d));
	CHECK(strncmp(vkey, "flexo.test/ledger+", 18) == 0);

	/* another key may not sign for this log */
	CHECK(fx_ledger_sign_checkpoint(l, alice.kp.sk, NULL, NULL, &d) ==
	      FX_EPERM);
	/* growth, then a consistent second checkpoint */
	CHECK_OK(fxt_rejected(l, "replayed sequence number", &idx, &d));
	CHECK_OK(fx_ledger_sign_checkpoint(l, coord.kp.sk, NULL, NULL, &d));
	CHECK_OK(fx_ledger_latest_checkpoint(l, NULL, NULL, &latest, &d));
	CHECK(latest.size == fx_ledger_size(l));
	fx_ledger_close(l);
	l = NULL;

	/* Someone with file access rewrites the stored last checkpoint (an
	 * attacker who removes the trigger): the ledger must now refuse to
	 * sign, since no proof links the tree to that checkpoint. */
	CHECK(sqlite3_open(dbpath, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db,
	                   "DROP TRIGGER checkpoints_no_update;"
	                   "UPDATE checkpoints SET root = zeroblob(32) WHERE "
	                   "seq = (SELECT MAX(seq) FROM checkpoints);",
	                   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	CHECK_OK(fx_ledger_open(dbpath, NULL, &l, &d));
	if (l == NULL)
		return;
	CHECK_OK(fxt_rejected(l, "stale anchor", &idx, &d));
	CHECK(fx_ledger_sign_checkpoint(l, coord.kp.sk, NULL, NULL, &d) ==
	      FX_EMISMATCH);
	CHECK(strstr(d.msg, "inconsistent with the last one") != NULL);
	fx_ledger_close(l);
}

static void test_reopen(void)
{
	fx_ledger *l = NULL;
	uint8_t r1[32], r2[32];
	uint64_t size;
	fx_diag d;

	CHECK_OK(fx_ledger_open(dbpath, NULL, &l, &d));
	if (l == NULL)
		return;
	size = fx_ledger_size(l);
	CHECK(size > 20);
	CHECK_OK(fx_ledger_root(l, size, r1, &d));
	fx_ledger_close(l);
	CHECK(fx_ledger_open(dbpath, "other/log", &l, &d) == FX_EMISMATCH);
	CHECK_OK(fx_ledger_open(dbpath, "flexo.test/ledger", &l, &d));
	if (l == NULL)
		return;
	CHECK(fx_ledger_size(l) == size);
	/* the reloaded frontier gives the root the stored nodes give */
	CHECK_OK(fx_ledger_root(l, size, r2, &d));
	CHECK(memcmp(r1, r2, 32) == 0);
	CHECK_OK(fx_merkle_root_at(NULL, NULL, 0, r2, NULL));
	/* batches: rollback undoes appends and the frontier */
	CHECK_OK(fx_ledger_begin(l, &d));
	CHECK_OK(fxt_rejected(l, "x", NULL, &d));
	fx_ledger_rollback(l);
	CHECK(fx_ledger_size(l) == size);
	CHECK_OK(fx_ledger_root(l, size, r2, &d));
	CHECK(memcmp(r1, r2, 32) == 0);
	fx_ledger_close(l);
}

/* Refused withdrawals: one of each reason is logged when the log before it
 * bears the reason out, and refused (nothing stored) when it does not —
 * the rules docs/ledger.md §1 gives an auditor. */
static void test_refusals(void)
{
	char path[300];
	fx_ledger *l = NULL;
	uint64_t a, b, anchor, idx, w, size, *live = NULL;
	uint8_t da[32], db[32], unknown[32], junk[3] = {1, 2, 3};
	size_t n = 0;
	fx_diag d;

	snprintf(path, sizeof(path), "%s/refusals.db", dir);
	CHECK_OK(fx_ledger_open(path, "flexo.test/refusals", &l, &d));
	if (l == NULL)
		return;
	build(l, &a, &b, &anchor); /* alice made a (seq 1), bob b */
	CHECK_OK(fxt_contribution_digest(l, a, da, &d));
	CHECK_OK(fxt_contribution_digest(l, b, db, &d));
	memset(unknown, 0x77, sizeof(unknown));

#define REFUSED(call, code, text)                                              \
	do {                                                                   \
		size = fx_ledger_size(l);                                      \
		CHECK_MSG((call) == (code), "%s", d.msg);                      \
		CHECK_MSG(strstr(d.msg, text) != NULL, "%s", d.msg);           \
		CHECK(fx_ledger_size(l) == size);                              \
	} while (0)

	/* format: bytes that are no withdrawal, kept as received */
	CHECK_OK(fxt_refused(l, junk, sizeof(junk), "format", 0, &idx, &d));
	CHECK(idx == 6);
	REFUSED(fxt_refused(l, junk, sizeof(junk), "unknown-contribution", 0,
	                    &idx, &d),
	        FX_EMISMATCH, "does not decode");
	REFUSED(fxt_refused(l, junk, sizeof(junk), "format", 3, &idx, &d),
	        FX_EFORMAT, "points at no entry");
	REFUSED(fxt_refused(l, junk, sizeof(junk), "tired", 0, &idx, &d),
	        FX_EFORMAT, "is none of");
	{ /* over the bound: size and digest only; never kept whole */
		size_t big = FX_LEDGER_MAX_REFUSED_ENVELOPE + 1;
		uint8_t *p = calloc(1, big);
		Flexo__Ledger__V1__WithdrawalRefused r;
		fx_entry e;
		uint8_t h[32];
		CHECK_OK(fxt_refused(l, p, big, "format", 0, &idx, &d));
		fxt_refused_entry(&e, &r, h, p, big, "format", 0);
		r.envelope.data = p; /* keeping it all is refused */
		r.envelope.len = big;
		REFUSED(fx_ledger_append(l, &e, &idx, &d), FX_EFORMAT,
		        "over the");
		fxt_refused_entry(&e, &r, h, p, 100, "format", 0);
		r.envelope.len = 0; /* dropping a small one is refused */
		REFUSED(fx_ledger_append(l, &e, &idx, &d), FX_EFORMAT,
		        "was not kept");
		fxt_refused_entry(&e, &r, h, junk, sizeof(junk), "format", 0);
		h[0] ^= 1; /* the kept bytes are not the logged digest's */
		REFUSED(fx_ledger_append(l, &e, &idx, &d), FX_EMISMATCH,
		        "do not hash");
		free(p);
	}
	/* unknown-contribution: names nothing accepted */
	CHECK_OK(fxt_refused_by(l, &alice, unknown, 0, "unknown-contribution",
	                        0, &idx, &d));
	REFUSED(fxt_refused_by(l, &alice, da, 0, "unknown-contribution", 0,
	                       &idx, &d),
	        FX_EMISMATCH, "entry 2 is the accepted contribution");
	/* signature: a key outside the roster; not so for a valid one */
	CHECK_OK(fxt_refused_by(l, &mallory, da, 0, "signature", 0, &idx, &d));
	REFUSED(fxt_refused_by(l, &alice, da, 0, "signature", 0, &idx, &d),
	        FX_EMISMATCH, "verifies: signed by contributor 'alice'");
	REFUSED(
	    fxt_refused_by(l, &mallory, unknown, 0, "signature", 0, &idx, &d),
	    FX_EMISMATCH, "names no accepted contribution");
	/* not-owner: bob withdrawing alice's, pointing at it */
	CHECK_OK(fxt_refused_by(l, &bob, da, 0, "not-owner", a, &idx, &d));
	REFUSED(fxt_refused_by(l, &bob, da, 0, "not-owner", b, &idx, &d),
	        FX_EMISMATCH, "is not the accepted contribution");
	REFUSED(fxt_refused_by(l, &alice, da, 0, "not-owner", a, &idx, &d),
	        FX_EMISMATCH, "its signer made");
	REFUSED(fxt_refused_by(l, &mallory, da, 0, "not-owner", a, &idx, &d),
	        FX_EMISMATCH, "does not verify");
	/* replay: alice's sequence 1 is the one of contribution a */
	CHECK_OK(fxt_refused_by(l, &alice, da, 1, "replay", a, &idx, &d));
	REFUSED(fxt_refused_by(l, &alice, da, 1, "replay", b, &idx, &d),
	        FX_EMISMATCH, "no document of this key");
	REFUSED(fxt_refused_by(l, &alice, da, 1000, "replay", a, &idx, &d),
	        FX_EMISMATCH, "at least 1000");
	REFUSED(fxt_refused_by(l, &bob, da, 1, "replay", b, &idx, &d),
	        FX_EMISMATCH, "not signed by the owner");
	/* already-withdrawn: must point at the earlier withdrawal */
	REFUSED(
	    fxt_refused_by(l, &alice, da, 0, "already-withdrawn", a, &idx, &d),
	    FX_EMISMATCH, "is not a withdrawal of contribution 2");
	CHECK(fx_ledger_find_withdrawal(l, a, &w, &d) == FX_ENOTFOUND);
	CHECK_OK(fxt_withdrawal(l, &alice, a, &w, &d));
	CHECK_OK(fx_ledger_find_withdrawal(l, a, &idx, &d));
	CHECK(idx == w);
	CHECK_OK(
	    fxt_refused_by(l, &alice, da, 0, "already-withdrawn", w, &idx, &d));
	REFUSED(
	    fxt_refused_by(l, &bob, db, 0, "already-withdrawn", w, &idx, &d),
	    FX_EMISMATCH, "is not a withdrawal of contribution 4");
	/* a refused withdrawal is itself evidence of its key's sequence */
	{
		uint64_t at = fx_ledger_size(l);
		CHECK_OK(
		    fxt_refused_by(l, &bob, da, 50, "not-owner", a, &idx, &d));
		CHECK(idx == at);
		CHECK_OK(
		    fxt_refused_by(l, &bob, db, 49, "replay", at, &idx, &d));
	}
	/* refusals change nothing: b is still the one live contribution */
	CHECK_OK(fx_ledger_live(l, &live, &n, &d));
	CHECK(n == 1 && live != NULL && live[0] == b);
	free(live);
	{
		uint8_t *bytes = NULL;
		size_t blen = 0;
		CHECK_OK(fx_ledger_entry_bytes(l, 6, &bytes, &blen, &d));
		CHECK(fx_ledger_peek_kind(bytes, blen) ==
		      FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL_REFUSED);
		free(bytes);
	}
	CHECK(fx_refusal_parse("already-withdrawn") ==
	      FX_REFUSAL_ALREADY_WITHDRAWN);
	CHECK(strcmp(fx_refusal_name(FX_REFUSAL_UNKNOWN),
	             "unknown-contribution") == 0);
#undef REFUSED
	fx_ledger_close(l);
}

int main(void)
{
	if (sodium_init() < 0 || mkdtemp(dir) == NULL)
		return 1;
	snprintf(dbpath, sizeof(dbpath), "%s/ledger.db", dir);
	fxt_party_init(&croot, "root", 9);
	fxt_party_init(&coord, "coordinator", 1);
	fxt_party_init(&alice, "alice", 2);
	fxt_party_init(&bob, "bob", 3);
	fxt_party_init(&mallory, "mallory", 4);
	RUN(test_append_and_rules);
	RUN(test_proofs_match);
	RUN(test_sql_tamper_refused);
	RUN(test_checkpoint_guard);
	RUN(test_reopen);
	RUN(test_refusals);
	fxt_party_release(&croot);
	fxt_party_release(&coord);
	fxt_party_release(&alice);
	fxt_party_release(&bob);
	fxt_party_release(&mallory);
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return FX_TEST_REPORT();
}
