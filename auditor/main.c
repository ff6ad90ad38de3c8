/* flexo-audit: verifies a flexo ledger export end to end without trusting
 * the coordinator, and remembers the last checkpoint it accepted so that a
 * forked or rolled-back log is caught on the next run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/audit.h"
#include "flexo/cli.h"
#include "flexo/note.h"
#include "flexo/receipt.h"

#define VERIFY_USAGE                                                           \
	"usage: flexo-audit verify DIR [--key VKEY | --key-file FILE]\n"       \
	"       [--state FILE] [--roster FILE] [--reassemble] [--threads "     \
	"N]\n\n"                                                               \
	"Verifies the ledger export in DIR (flexo-coordinator ledger "         \
	"export):\n"                                                           \
	"every checkpoint's signature by the log key, the Merkle root of "     \
	"the\n"                                                                \
	"entries against every checkpoint, each entry's documents against "    \
	"the\n"                                                                \
	"roster in force at it, withdrawals, and that every assembly "         \
	"contains\n"                                                           \
	"exactly the accepted, not withdrawn contributions.\n\n"               \
	"  --key VKEY       trusted log key: name+id+base64 (C2SP vkey)\n"     \
	"  --key-file FILE  the same, read from FILE\n"                        \
	"  --state FILE     remembers the trusted key and the newest "         \
	"accepted\n"                                                           \
	"                   checkpoint; the next audit must be consistent "    \
	"with\n"                                                               \
	"                   it (created on first use)\n"                       \
	"  --reassemble     rebuild every assembly from DIR/blobs: the\n"      \
	"                   release's model and router-rows files and each\n"  \
	"                   included expert (each hashing, BLAKE2b-256, to\n"  \
	"                   its logged digest) merged by fx_assemble in the\n" \
	"                   logged order and top-k must hash to the logged\n"  \
	"                   model digest\n"                                    \
	"  --roster FILE    the consortium roster (flexo-keys roster file) "   \
	"the\n"                                                                \
	"                   log's first roster must be, or a rotation of;\n"   \
	"                   without it the first roster is trusted on its "    \
	"own\n"                                                                \
	"                   root signatures\n"                                 \
	"  --threads N      signature-checking threads (default 2)\n\n"        \
	"Exit status: 0 if everything verifies, 1 with the reason "            \
	"otherwise,\n"                                                         \
	"2 on a usage error.\n"

static int read_line_file(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;
	if (f == NULL)
		return -1;
	n = fread(out, 1, cap - 1, f);
	fclose(f);
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	return 0;
}

static const char *kind_label(int k)
{
	static const char *const names[] = {
	    "roster updates",     "anchor releases", "accepted",
	    "rejected",           "withdrawals",     "assemblies",
	    "refused withdrawals"};
	return k >= 0 && k < 7 ? names[k] : "?";
}

static int cmd_verify(int argc, char **argv, const fx_logger *log)
{
	enum {
		OPT_KEY = 1000,
		OPT_KEY_FILE,
		OPT_STATE,
		OPT_REASSEMBLE,
		OPT_THREADS,
		OPT_ROSTER,
		OPT_HELP
	};
	static const struct option longopts[] = {
	    {"key", required_argument, NULL, OPT_KEY},
	    {"key-file", required_argument, NULL, OPT_KEY_FILE},
	    {"state", required_argument, NULL, OPT_STATE},
	    {"reassemble", no_argument, NULL, OPT_REASSEMBLE},
	    {"threads", required_argument, NULL, OPT_THREADS},
	    {"roster", required_argument, NULL, OPT_ROSTER},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0}};
	const char *key = NULL, *key_file = NULL;
	char vkey[FX_NOTE_VKEY_MAX + 2], hex[65];
	fx_note_verifier v;
	fx_audit_opts o = {NULL, NULL, 2, 0, log, NULL};
	fx_roster pinned;
	const char *roster_file = NULL;
	fx_audit_report rep;
	fx_diag d;
	fx_err err;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_KEY:
			key = optarg;
			break;
		case OPT_KEY_FILE:
			key_file = optarg;
			break;
		case OPT_STATE:
			o.state_path = optarg;
			break;
		case OPT_REASSEMBLE:
			o.reassemble = 1;
			break;
		case OPT_ROSTER:
			roster_file = optarg;
			break;
		case OPT_THREADS:
			o.threads = atoi(optarg);
			if (o.threads < 1 || o.threads > FX_AUDIT_MAX_THREADS) {
				fprintf(stderr,
				        "flexo-audit verify: --threads "
				        "must be 1..%d\n",
				        FX_AUDIT_MAX_THREADS);
				return 2;
			}
			break;
		case 'h':
		case OPT_HELP:
			fputs(VERIFY_USAGE, stdout);
			return 0;
		default:
			fputs(VERIFY_USAGE, stderr);
			return 2;
		}
	}
	if (optind != argc - 1 || (key != NULL && key_file != NULL)) {
		fputs(VERIFY_USAGE, stderr);
		return 2;
	}
	if (key_file != NULL) {
		if (read_line_file(key_file, vkey, sizeof(vkey)) != 0) {
			fprintf(stderr,
			        "flexo-audit verify: cannot read key "
			        "file %s\n",
			        key_file);
			return 1;
		}
		key = vkey;
	}
	if (key != NULL) {
		if ((err = fx_note_vkey_parse(key, &v, &d)) != FX_OK) {
			fprintf(stderr, "flexo-audit verify: --key: %s\n",
			        d.msg);
			return 2;
		}
		o.trusted = &v;
	}
	fx_roster_init(&pinned);
	if (roster_file != NULL) {
		if ((err = fx_roster_load(&pinned, roster_file, &d)) != FX_OK) {
			fprintf(stderr, "flexo-audit verify: --roster: %s\n",
			        d.msg);
			fx_roster_release(&pinned);
			return 2;
		}
		o.pinned = &pinned;
	}
	err = fx_audit_export(argv[optind], &o, &rep, &d);
	fx_roster_release(&pinned);

	printf("export:       %s\n", argv[optind]);
	printf("entries:      %llu\n", (unsigned long long)rep.entries);
	for (int k = 0; k < 7; k++)
		if (rep.by_kind[k])
			printf("  %-19s %llu\n", kind_label(k),
			       (unsigned long long)rep.by_kind[k]);
	printf("signatures:   %llu documents verified\n",
	       (unsigned long long)rep.signatures);
	printf("checkpoints:  %llu verified\n",
	       (unsigned long long)rep.checkpoints);
	if (rep.newest.size > 0) {
		fx_merkle_hex(rep.newest.root, hex);
		printf("tree head:    size %llu root %s\n",
		       (unsigned long long)rep.newest.size, hex);
	}
	if (rep.previous_size > 0)
		printf("previous:     size %llu accepted before%s\n",
		       (unsigned long long)rep.previous_size,
		       err == FX_OK ? ", consistent" : "");
	if (rep.unattested > 0)
		printf("unattested:   %llu entries after the newest "
		       "checkpoint\n",
		       (unsigned long long)rep.unattested);
	if (o.reassemble)
		printf("blobs:        %llu checked, %llu assembl%s rebuilt\n",
		       (unsigned long long)rep.blobs_checked,
		       (unsigned long long)rep.reassembled,
		       rep.reassembled == 1 ? "y" : "ies");
	printf("time:         %.3f s\n", rep.seconds);
	if (err != FX_OK) {
		printf("result:       FAIL\n");
		fprintf(stderr, "flexo-audit: FAIL: %s (%s)\n", d.msg,
		        fx_strerror(err));
		return 1;
	}
	printf("result:       OK\n");
	return 0;
}

#define RECEIPT_USAGE                                                          \
	"usage: flexo-audit receipt FILE --key VKEY\n\n"                       \
	"Checks a receipt (flexo-coordinator ledger receipt) against the "     \
	"log\n"                                                                \
	"key: the checkpoint signature and the inclusion proof of the "        \
	"entry.\n"

static int cmd_receipt(int argc, char **argv, const fx_logger *log)
{
	fx_note_verifier v;
	fx_receipt_info info;
	uint8_t *buf = NULL;
	const char *key = NULL;
	size_t n = 0;
	FILE *f;
	fx_diag d;
	fx_err err;
	char hex[65];

	(void)log;
	if (fx_cli_wants_help(argc, argv)) {
		fputs(RECEIPT_USAGE, stdout);
		return 0;
	}
	if (argc != 4 || strcmp(argv[2], "--key") != 0) {
		fputs(RECEIPT_USAGE, stderr);
		return 2;
	}
	key = argv[3];
	if ((err = fx_note_vkey_parse(key, &v, &d)) != FX_OK) {
		fprintf(stderr, "flexo-audit receipt: --key: %s\n", d.msg);
		return 2;
	}
	if ((f = fopen(argv[1], "rb")) == NULL ||
	    (buf = malloc(FX_RECEIPT_MAX + 1)) == NULL) {
		fprintf(stderr, "flexo-audit receipt: cannot read %s\n",
		        argv[1]);
		if (f != NULL)
			fclose(f);
		return 1;
	}
	n = fread(buf, 1, FX_RECEIPT_MAX + 1, f);
	fclose(f);
	err = fx_receipt_verify(buf, n, &v, &info, &d);
	free(buf);
	if (err != FX_OK) {
		fprintf(stderr, "flexo-audit receipt: FAIL: %s (%s)\n", d.msg,
		        fx_strerror(err));
		return 1;
	}
	fx_merkle_hex(info.checkpoint.root, hex);
	printf("entry %llu is in %s at size %llu (root %s)\n",
	       (unsigned long long)info.index, info.checkpoint.origin,
	       (unsigned long long)info.checkpoint.size, hex);
	return 0;
}

static const fx_command commands[] = {
    {"verify", "verify a ledger export end to end", cmd_verify},
    {"receipt", "check a contributor's receipt", cmd_receipt},
};

int main(int argc, char **argv)
{
	fx_logger log;
	if (fx_cli_init_logger(&argc, &argv, &log, "flexo-audit") != 0)
		return 2;
	return fx_cli_dispatch(
	    "flexo-audit", "Independent auditor of a flexo ledger.", argc, argv,
	    commands, (int)(sizeof(commands) / sizeof(*commands)), &log);
}
