/* The audit: a healthy export passes (with state and re-assembly checks);
 * one flipped byte in any entry, a dropped entry, a forked or rolled-back
 * log, an assembly including a withdrawn expert, signatures outside the
 * roster and a refused withdrawal whose reason the log contradicts each fail
 * with a reason naming the entry or checkpoint. Bad logs are written the way a
 * dishonest coordinator would: real entries and real checkpoint signatures by
 * the log key. */
#include "flexo/audit.h"
#include "flexo/blobstore.h"
#include "flexo/fsutil.h"
#include "fx_test.h"
#include "ledger_fixture.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char root[] = "/tmp/fx_audit_test.XXXXXX";
static fxt_party croot, coord, alice, bob, carol, eve;
static fx_note_verifier logv;
static const char origin[] = "flexo.test/audit";

typedef struct buf {
	uint8_t *p;
	size_t n;
} buf;

/* The export of the healthy log, in memory, to derive bad ones from. */
static buf *good_entries;
static size_t n_good;
static buf good_leaves, good_vkey;
static buf *good_cps;
static size_t n_good_cps;
static uint64_t acc_a, acc_b, acc_c, wd_a, asm_idx, anchor_idx;
static char ex[3][256]; /* the experts' files (payloads of a, b, c) */

static void path_of(char *out, size_t cap, const char *a, const char *b)
{
	snprintf(out, cap, "%s/%s", a, b);
}

static buf read_all(const char *path)
{
	buf b = {NULL, 0};
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return b;
	fseek(f, 0, SEEK_END);
	b.n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	b.p = malloc(b.n ? b.n : 1);
	if (b.p == NULL || fread(b.p, 1, b.n, f) != b.n)
		b.n = 0;
	fclose(f);
	return b;
}

static buf *split(buf all, size_t *count)
{
	buf *v = NULL;
	size_t n = 0, off = 0;
	while (off + 4 <= all.n) {
		size_t len = (size_t)all.p[off] << 24 |
		             (size_t)all.p[off + 1] << 16 |
		             (size_t)all.p[off + 2] << 8 | all.p[off + 3];
		v = realloc(v, (n + 1) * sizeof(*v));
		v[n].p = malloc(len ? len : 1);
		memcpy(v[n].p, all.p + off + 4, len);
		v[n].n = len;
		n++;
		off += 4 + len;
	}
	*count = n;
	return v;
}

static void write_records(const char *path, const buf *v, size_t n)
{
	size_t total = 0, off = 0;
	uint8_t *p;
	for (size_t i = 0; i < n; i++)
		total += 4 + v[i].n;
	p = malloc(total ? total : 1);
	for (size_t i = 0; i < n; i++) {
		p[off] = (uint8_t)(v[i].n >> 24);
		p[off + 1] = (uint8_t)(v[i].n >> 16);
		p[off + 2] = (uint8_t)(v[i].n >> 8);
		p[off + 3] = (uint8_t)v[i].n;
		memcpy(p + off + 4, v[i].p, v[i].n);
		off += 4 + v[i].n;
	}
	CHECK_OK(fx_write_file_atomic(path, p, total, 0644, NULL));
	free(p);
}

/* Writes an export from parts; leaves NULL = recompute from entries. */
static void write_export(const char *dir, const buf *entries, size_t n,
                         const buf *leaves, const buf *cps, size_t ncp)
{
	char p[512];
	mkdir(dir, 0700);
	path_of(p, sizeof(p), dir, FX_EXPORT_ENTRIES);
	write_records(p, entries, n);
	path_of(p, sizeof(p), dir, FX_EXPORT_CHECKPOINTS);
	write_records(p, cps, ncp);
	path_of(p, sizeof(p), dir, FX_EXPORT_VKEY);
	CHECK_OK(fx_write_file_atomic(p, good_vkey.p, good_vkey.n, 0644, NULL));
	path_of(p, sizeof(p), dir, FX_EXPORT_LEAVES);
	if (leaves != NULL) {
		CHECK_OK(
		    fx_write_file_atomic(p, leaves->p, leaves->n, 0644, NULL));
	} else {
		uint8_t *l = malloc(n * 32 + 1);
		for (size_t i = 0; i < n; i++)
			fx_merkle_leaf_hash(entries[i].p, entries[i].n,
			                    l + 32 * i);
		CHECK_OK(fx_write_file_atomic(p, l, n * 32, 0644, NULL));
		free(l);
	}
}

/* A checkpoint the log key signs over the tree of these entries: what a
 * coordinator that lies consistently would publish. */
static buf sign_over(const buf *entries, size_t n)
{
	fx_merkle_frontier f;
	fx_checkpoint c;
	uint8_t leaf[32];
	buf out = {NULL, 0};
	char *note = NULL;

	fx_merkle_frontier_init(&f);
	for (size_t i = 0; i < n; i++) {
		fx_merkle_leaf_hash(entries[i].p, entries[i].n, leaf);
		CHECK_OK(fx_merkle_frontier_append(&f, leaf, NULL, NULL));
	}
	memset(&c, 0, sizeof(c));
	strcpy(c.origin, origin);
	c.size = n;
	fx_merkle_frontier_root(&f, c.root);
	CHECK_OK(fx_checkpoint_sign(&c, coord.kp.sk, &note, &out.n, NULL));
	out.p = (uint8_t *)note;
	return out;
}

static fx_err audit(const char *dir, const char *state, int reassemble,
                    fx_audit_report *rep, fx_diag *d)
{
	fx_audit_opts o = {&logv, state, 2, reassemble, NULL, NULL};
	return fx_audit_export(dir, &o, rep, d);
}

static void build_good(void)
{
	char db[256], blobs[256], exp[256], p[512], work[256];
	char anchor_path[256], router_path[256];
	uint8_t anchor_d[32], router_d[32];
	fxt_party *members[] = {&coord, &alice, &bob, &carol};
	const fx_role roles[] = {FX_ROLE_COORDINATOR, FX_ROLE_CONTRIBUTOR,
	                         FX_ROLE_CONTRIBUTOR, FX_ROLE_CONTRIBUTOR};
	uint64_t idx, inc[2];
	uint8_t model_digest[32];
	fx_blobstore bs;
	fx_ledger *l = NULL;
	fx_diag d;
	buf all;

	path_of(db, sizeof(db), root, "ledger.db");
	path_of(blobs, sizeof(blobs), root, "blobs");
	path_of(exp, sizeof(exp), root, "good");
	CHECK_OK(fx_blobstore_open(&bs, blobs, NULL));
	CHECK_OK(fx_ledger_open(db, origin, &l, &d));
	if (l == NULL)
		exit(1);
	CHECK_MSG(fxt_roster(l, 1, &croot, members, roles, 4, &idx, &d) ==
	              FX_OK,
	          "%s", d.msg);
	/* Real model files, so that --reassemble rebuilds the served model. */
	path_of(work, sizeof(work), root, "work");
	CHECK(mkdir(work, 0700) == 0);
	CHECK_MSG(fxt_model_files(&bs, work, 3, anchor_path, router_path, ex,
	                          anchor_d, router_d, &d) == FX_OK,
	          "%s", d.msg);
	CHECK_MSG(fxt_anchor_files(l, &coord, 1, 1, anchor_d, router_d,
	                           &anchor_idx, &d) == FX_OK,
	          "%s", d.msg);
	CHECK_OK(fxt_accepted_file(l, &alice, ex[0], &acc_a, &d));
	CHECK_OK(fx_ledger_sign_checkpoint(l, coord.kp.sk, NULL, NULL, &d));
	CHECK_OK(fxt_rejected(l, "public loss rose by 0.4 nats", &idx, &d));
	CHECK_OK(fxt_accepted_file(l, &bob, ex[1], &acc_b, &d));
	CHECK_OK(fxt_accepted_file(l, &carol, ex[2], &acc_c, &d));
	CHECK_OK(fxt_withdrawal(l, &alice, acc_a, &wd_a, &d));
	{
		const char *served[2] = {ex[1], ex[2]};
		CHECK_MSG(fxt_served_model(&bs, work, anchor_path, router_path,
		                           served, 2, 0, model_digest,
		                           &d) == FX_OK,
		          "%s", d.msg);
	}
	inc[0] = acc_b;
	inc[1] = acc_c;
	CHECK_MSG(fxt_assembly(l, anchor_idx, inc, 2, model_digest, &asm_idx,
	                       &d) == FX_OK,
	          "%s", d.msg);
	CHECK_OK(fx_ledger_sign_checkpoint(l, coord.kp.sk, NULL, NULL, &d));
	CHECK_OK(fx_ledger_export(l, blobs, exp, &d));
	fx_ledger_close(l);

	path_of(p, sizeof(p), exp, FX_EXPORT_ENTRIES);
	all = read_all(p);
	good_entries = split(all, &n_good);
	free(all.p);
	path_of(p, sizeof(p), exp, FX_EXPORT_CHECKPOINTS);
	all = read_all(p);
	good_cps = split(all, &n_good_cps);
	free(all.p);
	path_of(p, sizeof(p), exp, FX_EXPORT_LEAVES);
	good_leaves = read_all(p);
	path_of(p, sizeof(p), exp, FX_EXPORT_VKEY);
	good_vkey = read_all(p);
	CHECK(n_good == 8 && n_good_cps == 2);
	CHECK(good_leaves.n == n_good * 32);
}

static void test_good(void)
{
	char exp[256], state[256];
	fx_audit_report rep;
	fx_diag d;

	path_of(exp, sizeof(exp), root, "good");
	path_of(state, sizeof(state), root, "state");
	CHECK_MSG(audit(exp, NULL, 1, &rep, &d) == FX_OK, "%s", d.msg);
	CHECK(rep.entries == 8 && rep.checkpoints == 2 && rep.unattested == 0);
	CHECK(rep.signatures == 6); /* roster, anchor, 3 accepted, withdrawal */
	/* anchor, router rows, experts b and c, the served model */
	CHECK(rep.assemblies == 1 && rep.blobs_checked == 5 &&
	      rep.reassembled == 1);
	CHECK(rep.by_kind[FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED -
	                  FLEXO__LEDGER__V1__ENTRY__KIND_ROSTER] == 3);
	/* first audit remembers the checkpoint; the second checks against it */
	CHECK_MSG(audit(exp, state, 0, &rep, &d) == FX_OK, "%s", d.msg);
	CHECK_MSG(audit(exp, state, 0, &rep, &d) == FX_OK, "%s", d.msg);
	CHECK(rep.previous_size == 8);
	/* with the state alone as the source of trust */
	{
		fx_audit_opts o = {NULL, state, 1, 0, NULL, NULL};
		CHECK(fx_audit_export(exp, &o, &rep, &d) == FX_OK);
		o.state_path = NULL;
		CHECK(fx_audit_export(exp, &o, &rep, &d) == FX_EINVAL);
	}
	/* another key is not this log */
	{
		fx_note_verifier other;
		fx_audit_opts o = {&other, NULL, 1, 0, NULL, NULL};
		CHECK_OK(
		    fx_note_verifier_init(&other, origin, eve.kp.pk, NULL));
		CHECK(fx_audit_export(exp, &o, &rep, &d) == FX_EMISMATCH);
		CHECK(strstr(d.msg, "not the trusted") != NULL);
	}
}

static void test_flipped_bytes(void)
{
	char dir[256];
	fx_audit_report rep;
	int named = 0, cases = 0;
	fx_diag d;

	path_of(dir, sizeof(dir), root, "flipped");
	for (size_t i = 0; i < n_good; i++) {
		/* first, middle and last byte of every entry */
		size_t at[3] = {0, good_entries[i].n / 2,
		                good_entries[i].n - 1};
		for (int k = 0; k < 3; k++) {
			char want[64];
			good_entries[i].p[at[k]] ^= 0x10;
			write_export(dir, good_entries, n_good, &good_leaves,
			             good_cps, n_good_cps);
			good_entries[i].p[at[k]] ^= 0x10;
			cases++;
			snprintf(want, sizeof(want), "entry %zu", i);
			if (audit(dir, NULL, 0, &rep, &d) != FX_OK &&
			    rep.failed_index == i &&
			    strstr(d.msg, want) != NULL)
				named++;
			else
				fprintf(stderr, "entry %zu byte %zu: %s\n", i,
				        at[k], d.msg);
		}
	}
	CHECK_MSG(named == cases, "%d of %d flips named their entry", named,
	          cases);
	/* without the leaf locator the flip is still caught (by the root) */
	good_entries[3].p[good_entries[3].n - 1] ^= 0x01;
	write_export(dir, good_entries, n_good, NULL, good_cps, n_good_cps);
	good_entries[3].p[good_entries[3].n - 1] ^= 0x01;
	CHECK(audit(dir, NULL, 0, &rep, &d) != FX_OK);
}

static void test_dropped_entry(void)
{
	char dir[256];
	fx_audit_report rep;
	buf v[16];
	fx_diag d;

	path_of(dir, sizeof(dir), root, "dropped");
	/* drop entry 4 from the middle */
	memcpy(v, good_entries, 4 * sizeof(buf));
	memcpy(v + 4, good_entries + 5, (n_good - 5) * sizeof(buf));
	write_export(dir, v, n_good - 1, NULL, good_cps, n_good_cps);
	CHECK(audit(dir, NULL, 0, &rep, &d) != FX_OK);
	CHECK_MSG(rep.failed_index == 4 && strstr(d.msg, "dropped"), "%s",
	          d.msg);
	/* drop the last entry */
	write_export(dir, good_entries, n_good - 1, NULL, good_cps, n_good_cps);
	CHECK(audit(dir, NULL, 0, &rep, &d) == FX_EMISMATCH);
	CHECK_MSG(strstr(d.msg, "entries were dropped") != NULL, "%s", d.msg);
}

static void test_forks(void)
{
	char dir[256], state[256];
	fx_audit_report rep;
	buf cps[3], forked[16];
	fx_diag d;

	path_of(dir, sizeof(dir), root, "fork");
	path_of(state, sizeof(state), root, "state"); /* size 8 accepted */

	/* (a) the log signs a third checkpoint over a different history */
	memcpy(forked, good_entries, n_good * sizeof(buf));
	forked[n_good - 1] = good_entries[3]; /* index 3 at position 8 */
	cps[0] = good_cps[0];
	cps[1] = good_cps[1];
	cps[2] = sign_over(forked, n_good);
	write_export(dir, good_entries, n_good, &good_leaves, cps, 3);
	CHECK(audit(dir, NULL, 0, &rep, &d) == FX_EMISMATCH);
	CHECK_MSG(strstr(d.msg, "checkpoint #2") != NULL, "%s", d.msg);

	/* (b) a whole forked log, consistently signed, shown to an auditor
	 * who accepted the real one before */
	{
		buf fc[1];
		uint8_t *blob;
		Flexo__Ledger__V1__Entry *e = flexo__ledger__v1__entry__unpack(
		    NULL, good_entries[3].n, good_entries[3].p);
		CHECK(e != NULL);
		if (e == NULL)
			return;
		e->time_unix += 1; /* the rejected entry, re-dated */
		/* Packed into a buffer of its own size: a fixed stack buffer
		 * once overflowed into `dir` here and the export landed in the
		 * working directory under a name made of entry bytes. */
		blob = malloc(flexo__ledger__v1__entry__get_packed_size(e));
		CHECK(blob != NULL);
		if (blob == NULL) {
			flexo__ledger__v1__entry__free_unpacked(e, NULL);
			return;
		}
		forked[3].n = flexo__ledger__v1__entry__pack(e, blob);
		forked[3].p = blob;
		flexo__ledger__v1__entry__free_unpacked(e, NULL);
		memcpy(forked + 4, good_entries + 4,
		       (n_good - 4) * sizeof(buf));
		fc[0] = sign_over(forked, n_good);
		write_export(dir, forked, n_good, NULL, fc, 1);
		/* alone it is a perfectly fine log ... */
		CHECK_MSG(audit(dir, NULL, 0, &rep, &d) == FX_OK, "%s", d.msg);
		/* ... but not the one this auditor saw */
		CHECK(audit(dir, state, 0, &rep, &d) == FX_EMISMATCH);
		CHECK_MSG(strstr(d.msg, "fork") != NULL, "%s", d.msg);
		free(fc[0].p);
		free(blob);
	}

	/* (c) rollback: an older export after the auditor saw size 8 */
	cps[0] = good_cps[0];
	write_export(dir, good_entries, 3, NULL, cps, 1);
	CHECK(audit(dir, state, 0, &rep, &d) == FX_EROLLBACK);
	CHECK_MSG(strstr(d.msg, "rollback") != NULL, "%s", d.msg);
	/* (d) the log signs a smaller checkpoint after a larger one */
	cps[0] = good_cps[1];
	cps[1] = good_cps[0];
	write_export(dir, good_entries, n_good, NULL, cps, 2);
	CHECK(audit(dir, NULL, 0, &rep, &d) == FX_EROLLBACK);
	free(cps[2].p);
}

/* Re-packs an entry after `edit`, keeping everything else as logged. */
static buf repack(const buf *src, void (*edit)(fx_entry *e))
{
	fx_entry *e = flexo__ledger__v1__entry__unpack(NULL, src->n, src->p);
	buf out = {NULL, 0};
	if (e == NULL)
		return out;
	edit(e);
	out.n = protobuf_c_message_get_packed_size(&e->base);
	out.p = malloc(out.n);
	protobuf_c_message_pack(&e->base, out.p);
	flexo__ledger__v1__entry__free_unpacked(e, NULL);
	return out;
}

static void include_withdrawn(fx_entry *e)
{
	/* protobuf-c frees the unpacked array with free(): swap in ours */
	uint64_t *v = malloc(3 * sizeof(*v));
	if (v == NULL)
		return;
	v[0] = acc_a;
	v[1] = acc_b;
	v[2] = acc_c;
	free(e->assembly->included);
	e->assembly->included = v;
	e->assembly->n_included = 3;
}

static void omit_one(fx_entry *e)
{
	e->assembly->n_included = 1;
}

static void other_model(fx_entry *e)
{
	e->assembly->model_digest.data[0] ^= 0x80;
}

static void test_assembly_rules(void)
{
	char dir[256];
	fx_audit_report rep;
	buf v[16], cp;
	fx_diag d;

	path_of(dir, sizeof(dir), root, "assembly");
	memcpy(v, good_entries, n_good * sizeof(buf));
	v[asm_idx] = repack(&good_entries[asm_idx], include_withdrawn);
	cp = sign_over(v, n_good);
	write_export(dir, v, n_good, NULL, &cp, 1);
	CHECK(audit(dir, NULL, 0, &rep, &d) == FX_EMISMATCH);
	CHECK(rep.failed_index == asm_idx);
	CHECK_MSG(strstr(d.msg, "withdrawn by entry") != NULL, "%s", d.msg);
	free(v[asm_idx].p);
	free(cp.p);

	v[asm_idx] = repack(&good_entries[asm_idx], omit_one);
	cp = sign_over(v, n_good);
	write_export(dir, v, n_good, NULL, &cp, 1);
	CHECK(audit(dir, NULL, 0, &rep, &d) == FX_EMISMATCH);
	CHECK_MSG(strstr(d.msg, "omits") != NULL, "%s", d.msg);
	free(v[asm_idx].p);
	free(cp.p);

	/* a corrupted expert blob is caught by the re-assembly check only */
	{
		char p[512], hex[65], good[256], blobs[300];
		uint8_t dg[32], *orig = NULL;
		size_t olen = 0;
		CHECK_OK(fx_blake2b_file(ex[2], dg, NULL, NULL));
		fx_merkle_hex(dg, hex);
		snprintf(p, sizeof(p), "%s/good/blobs/%s", root, hex);
		CHECK_OK(fx_read_file(p, 64u << 20, &orig, &olen, NULL));
		CHECK_OK(fx_write_file_atomic(p, "expert D", 8, 0644, NULL));
		path_of(good, sizeof(good), root, "good");
		CHECK(audit(good, NULL, 0, &rep, &d) == FX_OK);
		CHECK(audit(good, NULL, 1, &rep, &d) == FX_EMISMATCH);
		CHECK_MSG(strstr(d.msg, "expert of entry") != NULL, "%s",
		          d.msg);
		CHECK_OK(fx_write_file_atomic(p, orig, olen, 0644, NULL));
		free(orig);
		CHECK_MSG(audit(good, NULL, 1, &rep, &d) == FX_OK, "%s", d.msg);

		/* a log whose assembly names another model digest than its
		 * experts make: signed, consistent, and caught by rebuilding */
		v[asm_idx] = repack(&good_entries[asm_idx], other_model);
		cp = sign_over(v, n_good);
		write_export(dir, v, n_good, NULL, &cp, 1);
		snprintf(blobs, sizeof(blobs), "%s/%s", dir, FX_EXPORT_BLOBS);
		snprintf(p, sizeof(p), "%s/good/blobs", root);
		CHECK(symlink(p, blobs) == 0);
		CHECK(audit(dir, NULL, 0, &rep, &d) == FX_OK);
		CHECK(audit(dir, NULL, 1, &rep, &d) == FX_EMISMATCH);
		CHECK_MSG(rep.failed_index == asm_idx &&
		              strstr(d.msg, "re-assemble to a model") != NULL,
		          "%s", d.msg);
		free(v[asm_idx].p);
		free(cp.p);
	}
}

/* Builds a one-roster ledger at db (eve a member or not) with one
 * contribution by `who`, and returns its entries. */
static buf *roster_log(const char *name, int eve_member, fxt_party *who,
                       size_t *n)
{
	char db[256], dir[256], p[512];
	fxt_party *m[] = {&coord, &alice, &eve};
	const fx_role r[] = {FX_ROLE_COORDINATOR, FX_ROLE_CONTRIBUTOR,
	                     FX_ROLE_CONTRIBUTOR};
	fx_ledger *l = NULL;
	uint64_t idx;
	fx_diag d;
	buf all, *v;

	snprintf(db, sizeof(db), "%s/%s.db", root, name);
	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	CHECK_OK(fx_ledger_open(db, origin, &l, &d));
	if (l == NULL)
		exit(1);
	CHECK_OK(fxt_roster(l, 1, &croot, m, r, eve_member ? 3 : 2, &idx, &d));
	CHECK_OK(fxt_anchor(l, &coord, 1, 1, &idx, &d));
	if (who != NULL)
		CHECK_OK(
		    fxt_accepted(l, who, (const uint8_t *)"x", 1, &idx, &d));
	CHECK_OK(fx_ledger_sign_checkpoint(l, coord.kp.sk, NULL, NULL, &d));
	CHECK_OK(fx_ledger_export(l, NULL, dir, &d));
	fx_ledger_close(l);
	path_of(p, sizeof(p), dir, FX_EXPORT_ENTRIES);
	all = read_all(p);
	v = split(all, n);
	free(all.p);
	return v;
}

static void test_roster_rules(void)
{
	char dir[256];
	fx_audit_report rep;
	size_t n1 = 0, n2 = 0;
	buf *with_eve, *without_eve, v[3], cp;
	fx_diag d;

	/* A log that says eve contributed under a roster without her: the
	 * coordinator refuses to write it, so a dishonest one splices it. */
	with_eve = roster_log("with_eve", 1, &eve, &n1);
	without_eve = roster_log("without_eve", 0, NULL, &n2);
	CHECK(n1 == 3 && n2 == 2);
	if (n1 != 3 || n2 != 2)
		return;
	v[0] = without_eve[0];
	v[1] = without_eve[1];
	v[2] = with_eve[2];
	cp = sign_over(v, 3);
	path_of(dir, sizeof(dir), root, "spliced");
	write_export(dir, v, 3, NULL, &cp, 1);
	CHECK(audit(dir, NULL, 0, &rep, &d) != FX_OK);
	CHECK_MSG(rep.failed_index == 2 && strstr(d.msg, "entry 2") != NULL,
	          "%s", d.msg);
	/* the honest one passes */
	path_of(dir, sizeof(dir), root, "with_eve");
	CHECK_MSG(audit(dir, NULL, 0, &rep, &d) == FX_OK, "%s", d.msg);
	/* pinned to its own roster it passes, to another one it fails */
	{
		fx_roster own, other;
		fx_entry *e0 = flexo__ledger__v1__entry__unpack(
		    NULL, with_eve[0].n, with_eve[0].p);
		fx_entry *e1 = flexo__ledger__v1__entry__unpack(
		    NULL, without_eve[0].n, without_eve[0].p);
		fx_audit_opts o = {&logv, NULL, 2, 0, NULL, &own};
		fx_roster_init(&own);
		fx_roster_init(&other);
		CHECK(e0 != NULL && e1 != NULL);
		if (e0 != NULL && e1 != NULL) {
			CHECK_OK(fx_roster_parse(&own,
			                         e0->roster->envelope.data,
			                         e0->roster->envelope.len, &d));
			CHECK_OK(fx_roster_parse(&other,
			                         e1->roster->envelope.data,
			                         e1->roster->envelope.len, &d));
			CHECK_MSG(fx_audit_export(dir, &o, &rep, &d) == FX_OK,
			          "%s", d.msg);
			o.pinned = &other;
			CHECK(fx_audit_export(dir, &o, &rep, &d) != FX_OK);
			CHECK_MSG(strstr(d.msg, "pinned roster") &&
			              rep.failed_index == 0,
			          "%s", d.msg);
		}
		if (e0 != NULL)
			flexo__ledger__v1__entry__free_unpacked(e0, NULL);
		if (e1 != NULL)
			flexo__ledger__v1__entry__free_unpacked(e1, NULL);
		fx_roster_release(&own);
		fx_roster_release(&other);
	}
	free(cp.p);
	for (size_t i = 0; i < n1; i++)
		free(with_eve[i].p);
	for (size_t i = 0; i < n2; i++)
		free(without_eve[i].p);
	free(with_eve);
	free(without_eve);
}

/* A contribution for an anchor release this log never published. */
static void test_unlogged_release(void)
{
	char db[256], dir[256], p[512];
	fxt_party *m[] = {&coord, &alice, &bob, &carol};
	const fx_role r[] = {FX_ROLE_COORDINATOR, FX_ROLE_CONTRIBUTOR,
	                     FX_ROLE_CONTRIBUTOR, FX_ROLE_CONTRIBUTOR};
	fx_audit_report rep;
	fx_ledger *l = NULL;
	uint64_t idx;
	size_t n = 0;
	buf all, *other, v[3], cp;
	fx_diag d;

	path_of(db, sizeof(db), root, "rel2.db");
	path_of(dir, sizeof(dir), root, "rel2");
	CHECK_OK(fx_ledger_open(db, origin, &l, &d));
	if (l == NULL)
		return;
	CHECK_OK(fxt_roster(l, 1, &croot, m, r, 4, &idx, &d));
	CHECK_OK(fxt_anchor(l, &coord, 2, 1, &idx, &d)); /* another release */
	CHECK_OK(fxt_accepted(l, &alice, (const uint8_t *)"y", 1, &idx, &d));
	CHECK_OK(fx_ledger_sign_checkpoint(l, coord.kp.sk, NULL, NULL, &d));
	CHECK_OK(fx_ledger_export(l, NULL, dir, &d));
	fx_ledger_close(l);
	path_of(p, sizeof(p), dir, FX_EXPORT_ENTRIES);
	all = read_all(p);
	other = split(all, &n);
	free(all.p);
	CHECK(n == 3);
	if (n != 3)
		return;
	/* the good log's roster and release 1, then a contribution for 2 */
	v[0] = good_entries[0];
	v[1] = good_entries[1];
	v[2] = other[2];
	cp = sign_over(v, 3);
	path_of(dir, sizeof(dir), root, "unlogged");
	write_export(dir, v, 3, NULL, &cp, 1);
	CHECK(audit(dir, NULL, 0, &rep, &d) == FX_EMISMATCH);
	CHECK_MSG(rep.failed_index == 2 &&
	              strstr(d.msg, "anchor release not logged") != NULL,
	          "%s", d.msg);
	free(cp.p);
	for (size_t k = 0; k < n; k++)
		free(other[k].p);
	free(other);
}

/* Refused withdrawals: a log with one of each reason passes; a refusal
 * whose reason the log before it does not bear out — appended and signed
 * by the log key as a dishonest coordinator would — fails, naming it. */
static void test_refusals(void)
{
	char db[256], dir[256], p[512];
	fxt_party *m[] = {&coord, &alice, &bob, &carol};
	const fx_role r[] = {FX_ROLE_COORDINATOR, FX_ROLE_CONTRIBUTOR,
	                     FX_ROLE_CONTRIBUTOR, FX_ROLE_CONTRIBUTOR};
	uint8_t da[32], unknown[32], junk[3] = {1, 2, 3};
	uint64_t idx, a, b, w;
	fx_audit_report rep;
	fx_ledger *l = NULL;
	size_t n = 0;
	buf all, *v = NULL;
	fx_diag d;

	path_of(db, sizeof(db), root, "refusals.db");
	path_of(dir, sizeof(dir), root, "refusals");
	memset(unknown, 0x55, sizeof(unknown));
	CHECK_OK(fx_ledger_open(db, origin, &l, &d));
	if (l == NULL)
		return;
	CHECK_OK(fxt_roster(l, 1, &croot, m, r, 4, &idx, &d));
	CHECK_OK(fxt_anchor(l, &coord, 1, 1, &idx, &d));
	CHECK_OK(fxt_accepted(l, &alice, (const uint8_t *)"A", 1, &a, &d));
	CHECK_OK(fxt_accepted(l, &bob, (const uint8_t *)"B", 1, &b, &d));
	CHECK_OK(fxt_contribution_digest(l, a, da, &d));
	CHECK_OK(fxt_refused(l, junk, sizeof(junk), "format", 0, &idx, &d));
	CHECK_OK(fxt_refused_by(l, &alice, unknown, 0, "unknown-contribution",
	                        0, &idx, &d));
	CHECK_OK(fxt_refused_by(l, &eve, da, 0, "signature", 0, &idx, &d));
	CHECK_OK(fxt_refused_by(l, &bob, da, 0, "not-owner", a, &idx, &d));
	CHECK_OK(fxt_refused_by(l, &alice, da, 1, "replay", a, &idx, &d));
	CHECK_OK(fxt_withdrawal(l, &alice, a, &w, &d));
	CHECK_OK(
	    fxt_refused_by(l, &alice, da, 0, "already-withdrawn", w, &idx, &d));
	CHECK_OK(fx_ledger_sign_checkpoint(l, coord.kp.sk, NULL, NULL, &d));
	CHECK_OK(fx_ledger_export(l, NULL, dir, &d));
	fx_ledger_close(l);
	CHECK_MSG(audit(dir, NULL, 0, &rep, &d) == FX_OK, "%s", d.msg);
	CHECK(rep.entries == 11);
	CHECK(rep.by_kind[FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL_REFUSED -
	                  FLEXO__LEDGER__V1__ENTRY__KIND_ROSTER] == 6);
	/* roster, anchor, 2 accepted, withdrawal, and the 4 refusals that
	 * verify (unknown-contribution by alice, not-owner, replay,
	 * already-withdrawn) */
	CHECK_MSG(rep.signatures == 9, "%llu",
	          (unsigned long long)rep.signatures);

	path_of(p, sizeof(p), dir, FX_EXPORT_ENTRIES);
	all = read_all(p);
	v = split(all, &n);
	free(all.p);
	CHECK(n == 11);
	if (n != 11)
		return;
	v = realloc(v, (n + 1) * sizeof(*v));
	{
		/* Each crafted refusal, as entry 11 of an otherwise good log.
		 */
		struct {
			fxt_party *who;
			const uint8_t *named;
			uint64_t seq;
			const char *gate;
			uint64_t evidence;
			const char *want;
		} bad[] = {
		    {&alice, da, 0, "already-withdrawn", a,
		     "is not a withdrawal of contribution 2"},
		    {&alice, da, 0, "unknown-contribution", 0,
		     "entry 2 is the accepted contribution"},
		    {&eve, unknown, 0, "signature", 0,
		     "names no accepted contribution"},
		    {&alice, da, 1, "replay", b, "no document of this key"},
		    {&alice, da, 0, "signature", 0, "verifies: signed by"},
		    {&bob, da, 0, "not-owner", 13, "is not the accepted"},
		    {&alice, da, 0, "not-owner", a, "its signer made"},
		    {&eve, da, 0, "already-withdrawn", w, "does not verify"},
		};
		for (size_t k = 0; k < sizeof(bad) / sizeof(*bad); k++) {
			Flexo__Ledger__V1__WithdrawalRefused rr;
			fx_entry e;
			uint8_t h[32], *env = NULL;
			size_t elen = 0;
			buf cp;
			char out[300];

			CHECK_OK(fxt_withdrawal_env(bad[k].who, bad[k].named,
			                            bad[k].seq, &env, &elen,
			                            &d));
			fxt_refused_entry(&e, &rr, h, env, elen, bad[k].gate,
			                  bad[k].evidence);
			e.version = FX_LEDGER_ENTRY_VERSION;
			e.index = n;
			e.time_unix = (int64_t)time(NULL);
			v[n].n = protobuf_c_message_get_packed_size(&e.base);
			v[n].p = malloc(v[n].n);
			protobuf_c_message_pack(&e.base, v[n].p);
			cp = sign_over(v, n + 1);
			snprintf(out, sizeof(out), "%s/refusal-bad-%zu", root,
			         k);
			write_export(out, v, n + 1, NULL, &cp, 1);
			CHECK(audit(out, NULL, 0, &rep, &d) != FX_OK);
			CHECK_MSG(rep.failed_index == n &&
			              strstr(d.msg, "entry 11 (refused "
			                            "withdrawal)") != NULL &&
			              strstr(d.msg, bad[k].want) != NULL,
			          "case %zu: %s", k, d.msg);
			free(cp.p);
			free(v[n].p);
			free(env);
		}
	}
	for (size_t k = 0; k < n; k++)
		free(v[k].p);
	free(v);
}

int main(void)
{
	if (sodium_init() < 0 || mkdtemp(root) == NULL)
		return 1;
	fxt_party_init(&croot, "root", 10);
	fxt_party_init(&coord, "coordinator", 11);
	fxt_party_init(&alice, "alice", 12);
	fxt_party_init(&bob, "bob", 13);
	fxt_party_init(&carol, "carol", 14);
	fxt_party_init(&eve, "eve", 15);
	if (fx_note_verifier_init(&logv, origin, coord.kp.pk, NULL) != FX_OK)
		return 1;
	build_good();
	RUN(test_good);
	RUN(test_flipped_bytes);
	RUN(test_dropped_entry);
	RUN(test_forks);
	RUN(test_assembly_rules);
	RUN(test_roster_rules);
	RUN(test_unlogged_release);
	RUN(test_refusals);
	for (size_t i = 0; i < n_good; i++)
		free(good_entries[i].p);
	for (size_t i = 0; i < n_good_cps; i++)
		free(good_cps[i].p);
	free(good_entries);
	free(good_cps);
	free(good_leaves.p);
	free(good_vkey.p);
	fxt_party_release(&croot);
	fxt_party_release(&coord);
	fxt_party_release(&alice);
	fxt_party_release(&bob);
	fxt_party_release(&carol);
	fxt_party_release(&eve);
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
		if (system(cmd) != 0)
			return 1;
	}
	return FX_TEST_REPORT();
}
