/* Drives the binaries: a ledger built from real signed documents is
 * checkpointed and exported by flexo-coordinator, verified by flexo-audit
 * (with state and blob checks), a receipt is checked; then a flipped byte,
 * a dropped entry and a forked log each make flexo-audit exit 1 naming the
 * entry or the fork. Every subcommand answers --help. */
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "flexo/blobstore.h"
#include "flexo/keys.h"
#include "fx_test.h"
#include "ledger_fixture.h"

static char tmp[] = "/tmp/fx_audit_cli.XXXXXX";
static fxt_party croot, coord, alice, bob;
static char vkey[FX_NOTE_VKEY_MAX];

/* Runs a shell command line; returns its exit status, output in tmp/out. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[4096];
	int n, rc;
	va_list ap;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 64, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	snprintf(cmd + n, 64 + 0, " >%s/out 2>&1", tmp);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int output_has(const char *needle)
{
	char path[256], buf[8192];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/out", tmp);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (strstr(buf, needle) == NULL) {
		fprintf(stderr, "output lacks '%s':\n%s\n", needle, buf);
		return 0;
	}
	return 1;
}

/* A ledger at tmp/name.db; `variant` changes one rejection's reason. */
/* A ledger at tmp/name.db over real model files (so that --reassemble
 * rebuilds the served model); `reason` varies one rejection. */
static void build(const char *name, const char *reason)
{
	char db[256], blobs[256], work[256], anchor_path[256], router_path[256];
	char ex[2][256];
	fxt_party *m[] = {&coord, &alice, &bob};
	const fx_role r[] = {FX_ROLE_COORDINATOR, FX_ROLE_CONTRIBUTOR,
	                     FX_ROLE_CONTRIBUTOR};
	uint64_t idx, anchor, a, b, inc[1];
	uint8_t model[32], anchor_d[32], router_d[32];
	const char *served[1];
	fx_blobstore bs;
	fx_ledger *l = NULL;
	fx_diag d;

	snprintf(db, sizeof(db), "%s/%s.db", tmp, name);
	snprintf(blobs, sizeof(blobs), "%s/blobs", tmp);
	snprintf(work, sizeof(work), "%s/work-%s", tmp, name);
	CHECK_OK(fx_blobstore_open(&bs, blobs, NULL));
	CHECK_OK(fx_mkdir_p(work, 0700, NULL));
	CHECK_MSG(fxt_model_files(&bs, work, 2, anchor_path, router_path, ex,
	                          anchor_d, router_d, &d) == FX_OK,
	          "%s", d.msg);
	CHECK_OK(fx_ledger_open(db, "flexo.test/cli", &l, &d));
	if (l == NULL)
		exit(1);
	CHECK_OK(fxt_roster(l, 1, &croot, m, r, 3, &idx, &d));
	CHECK_OK(
	    fxt_anchor_files(l, &coord, 1, 1, anchor_d, router_d, &anchor, &d));
	CHECK_OK(fxt_accepted_file(l, &alice, ex[0], &a, &d));
	CHECK_OK(fxt_rejected(l, reason, &idx, &d));
	CHECK_OK(fxt_accepted_file(l, &bob, ex[1], &b, &d));
	CHECK_OK(fxt_withdrawal(l, &alice, a, &idx, &d));
	served[0] = ex[1];
	CHECK_MSG(fxt_served_model(&bs, work, anchor_path, router_path, served,
	                           1, 0, model, &d) == FX_OK,
	          "%s", d.msg);
	inc[0] = b;
	CHECK_OK(fxt_assembly(l, anchor, inc, 1, model, &idx, &d));
	fx_ledger_close(l);
}

static void test_help(void)
{
	static const char *const cmds[] = {
	    FLEXO_AUDIT_BIN " --help",
	    FLEXO_AUDIT_BIN " verify --help",
	    FLEXO_AUDIT_BIN " receipt --help",
	    FLEXO_COORDINATOR_BIN " ledger --help",
	    FLEXO_COORDINATOR_BIN " ledger status --help",
	    FLEXO_COORDINATOR_BIN " ledger checkpoint --help",
	    FLEXO_COORDINATOR_BIN " ledger receipt --help",
	    FLEXO_COORDINATOR_BIN " ledger export --help",
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(*cmds); i++)
		CHECK_MSG(run("%s", cmds[i]) == 0 && output_has("usage"), "%s",
		          cmds[i]);
	CHECK(run(FLEXO_AUDIT_BIN " verify") == 2);
	CHECK(run(FLEXO_AUDIT_BIN " verify %s --roster %s/none", tmp, tmp) ==
	      2);
	CHECK(output_has("--roster"));
}

static void test_end_to_end(void)
{
	char key[256];
	fx_diag d;

	snprintf(key, sizeof(key), "%s/coord.key", tmp);
	CHECK_OK(
	    fx_seckey_save(&coord.kp, key, NULL, 0, FX_KDF_INTERACTIVE, &d));
	build("good", "unsigned manifest");

	CHECK(run(FLEXO_COORDINATOR_BIN " ledger checkpoint --db %s/good.db "
	                                "--key %s",
	          tmp, key) == 0);
	CHECK(output_has("flexo.test/cli\n7\n"));
	CHECK(run(FLEXO_COORDINATOR_BIN " ledger export %s/exp --db %s/good.db "
	                                "--blobs %s/blobs --key %s",
	          tmp, tmp, tmp, key) == 0);
	CHECK(run(FLEXO_COORDINATOR_BIN " ledger status --db %s/good.db",
	          tmp) == 0);
	CHECK(output_has("size:        7") && output_has("live experts: 1"));
	CHECK(output_has(vkey));

	CHECK(run(FLEXO_AUDIT_BIN " verify %s/exp --key %s --state %s/state "
	                          "--reassemble",
	          tmp, vkey, tmp) == 0);
	CHECK(output_has("result:       OK") &&
	      output_has("blobs:        4 checked, 1 assembly rebuilt"));
	/* the state alone is now enough, and stays consistent */
	CHECK(run(FLEXO_AUDIT_BIN " verify %s/exp --state %s/state", tmp,
	          tmp) == 0);
	CHECK(output_has("size 7 accepted before, consistent"));

	CHECK(run(FLEXO_COORDINATOR_BIN " ledger receipt 4 --db %s/good.db "
	                                "--out %s/r4",
	          tmp, tmp) == 0);
	CHECK(run(FLEXO_AUDIT_BIN " receipt %s/r4 --key %s", tmp, vkey) == 0);
	CHECK(output_has("entry 4 is in flexo.test/cli at size 7"));
}

static void test_tampered(void)
{
	char path[256];
	uint8_t *p;
	FILE *f;
	long n;

	/* flip one byte inside the 6th entry's bytes */
	CHECK(run("rm -rf %s/bad && cp -r %s/exp %s/bad", tmp, tmp, tmp) == 0);
	snprintf(path, sizeof(path), "%s/bad/entries.bin", tmp);
	f = fopen(path, "r+b");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	p = malloc((size_t)n);
	fseek(f, 0, SEEK_SET);
	CHECK(fread(p, 1, (size_t)n, f) == (size_t)n);
	{
		size_t off = 0;
		for (int i = 0; i < 5 && off + 4 <= (size_t)n; i++)
			off += 4 + ((size_t)p[off] << 24 |
			            (size_t)p[off + 1] << 16 |
			            (size_t)p[off + 2] << 8 | p[off + 3]);
		CHECK(off + 4 + 20 < (size_t)n);
		if (off + 4 + 20 < (size_t)n)
			p[off + 4 + 20] ^= 0x04;
	}
	fseek(f, 0, SEEK_SET);
	fwrite(p, 1, (size_t)n, f);
	fclose(f);
	free(p);
	CHECK(run(FLEXO_AUDIT_BIN " verify %s/bad --key %s", tmp, vkey) == 1);
	CHECK(output_has("FAIL: entry 5"));

	/* a different log under the same key: a fork for this auditor */
	build("fork", "unsigned manifest, retried");
	CHECK(run(FLEXO_COORDINATOR_BIN " ledger export %s/forkexp --db "
	                                "%s/fork.db --key %s/coord.key",
	          tmp, tmp, tmp) == 0);
	CHECK(run(FLEXO_AUDIT_BIN " verify %s/forkexp --key %s", tmp, vkey) ==
	      0);
	CHECK(run(FLEXO_AUDIT_BIN " verify %s/forkexp --state %s/state", tmp,
	          tmp) == 1);
	CHECK(output_has("fork"));

	/* a wrong key is refused before anything is trusted */
	CHECK(run(FLEXO_AUDIT_BIN
	          " verify %s/exp --key flexo.test/cli+00000000"
	          "+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	          tmp) == 2);
}

int main(void)
{
	fx_note_verifier v;

	if (sodium_init() < 0 || mkdtemp(tmp) == NULL)
		return 1;
	fxt_party_init(&croot, "root", 20);
	fxt_party_init(&coord, "coordinator", 21);
	fxt_party_init(&alice, "alice", 22);
	fxt_party_init(&bob, "bob", 23);
	if (fx_note_verifier_init(&v, "flexo.test/cli", coord.kp.pk, NULL) ||
	    fx_note_vkey_format(&v, vkey, sizeof(vkey), NULL))
		return 1;
	RUN(test_help);
	RUN(test_end_to_end);
	RUN(test_tampered);
	fxt_party_release(&croot);
	fxt_party_release(&coord);
	fxt_party_release(&alice);
	fxt_party_release(&bob);
	if (run("rm -rf %s", tmp) != 0)
		return 1;
	return FX_TEST_REPORT();
}
