/* `flexo-coordinator ledger`: the contribution ledger from the coordinator's
 * side — status, signing a checkpoint, issuing a receipt and exporting the
 * log for auditors (flexo-audit verify). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "flexo/blobstore.h"
#include "flexo/cli.h"
#include "flexo/fsutil.h"
#include "flexo/keys.h"
#include "flexo/ledger.h"
#include "flexo/receipt.h"

#define DEFAULT_DB "ledger.db"

enum {
	OPT_DB = 1000,
	OPT_BLOBS,
	OPT_KEY,
	OPT_PASS_FILE,
	OPT_PASS_ENV,
	OPT_OUT,
	OPT_ORIGIN,
	OPT_HELP
};

static const struct option longopts[] = {
    {"db", required_argument, NULL, OPT_DB},
    {"blobs", required_argument, NULL, OPT_BLOBS},
    {"key", required_argument, NULL, OPT_KEY},
    {"passphrase-file", required_argument, NULL, OPT_PASS_FILE},
    {"passphrase-env", required_argument, NULL, OPT_PASS_ENV},
    {"out", required_argument, NULL, OPT_OUT},
    {"origin", required_argument, NULL, OPT_ORIGIN},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0}};

typedef struct opts {
	const char *db, *blobs, *key, *pass_file, *pass_env, *out, *origin;
	int help;
} opts;

/* Parses the shared options; leaves positional arguments in argv[optind..].
 * Returns -1 on a usage error. */
static int parse(int argc, char **argv, opts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->db = DEFAULT_DB;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_DB:
			o->db = optarg;
			break;
		case OPT_BLOBS:
			o->blobs = optarg;
			break;
		case OPT_KEY:
			o->key = optarg;
			break;
		case OPT_PASS_FILE:
			o->pass_file = optarg;
			break;
		case OPT_PASS_ENV:
			o->pass_env = optarg;
			break;
		case OPT_OUT:
			o->out = optarg;
			break;
		case OPT_ORIGIN:
			o->origin = optarg;
			break;
		case 'h':
		case OPT_HELP:
			o->help = 1;
			break;
		default:
			return -1;
		}
	}
	return 0;
}

static int fail(const char *what, fx_err err, const fx_diag *d)
{
	fprintf(stderr, "flexo-coordinator ledger %s: %s (%s)\n", what, d->msg,
	        fx_strerror(err));
	return 1;
}

#define STATUS_USAGE                                                           \
	"usage: flexo-coordinator ledger status [--db FILE]\n\n"               \
	"Prints the log's origin, size, root, newest checkpoint and log "      \
	"key.\n"                                                               \
	"  --db FILE   ledger database (default " DEFAULT_DB ")\n"

static int cmd_status(int argc, char **argv, const fx_logger *log)
{
	char hex[65], vkey[FX_NOTE_VKEY_MAX];
	uint8_t root[FX_HASH_LEN];
	fx_ledger *l = NULL;
	fx_checkpoint cp;
	uint64_t *live = NULL;
	size_t n_live = 0;
	fx_diag d;
	fx_err err;
	opts o;

	(void)log;
	if (parse(argc, argv, &o) != 0 || optind != argc) {
		fputs(STATUS_USAGE, stderr);
		return 2;
	}
	if (o.help) {
		fputs(STATUS_USAGE, stdout);
		return 0;
	}
	if ((err = fx_ledger_open(o.db, NULL, &l, &d)) != FX_OK)
		return fail("status", err, &d);
	if ((err = fx_ledger_root(l, fx_ledger_size(l), root, &d)) ||
	    (err = fx_ledger_live(l, &live, &n_live, &d))) {
		fx_ledger_close(l);
		return fail("status", err, &d);
	}
	fx_merkle_hex(root, hex);
	printf("origin:      %s\nsize:        %llu\nroot:        %s\n"
	       "live experts: %zu\n",
	       fx_ledger_origin(l), (unsigned long long)fx_ledger_size(l), hex,
	       n_live);
	if (fx_ledger_latest_checkpoint(l, NULL, NULL, &cp, &d) == FX_OK) {
		fx_merkle_hex(cp.root, hex);
		printf("checkpoint:  size %llu, root %s\n",
		       (unsigned long long)cp.size, hex);
	} else {
		printf("checkpoint:  none signed yet\n");
	}
	if (fx_ledger_vkey(l, vkey, sizeof(vkey), &d) == FX_OK)
		printf("log key:     %s\n", vkey);
	free(live);
	fx_ledger_close(l);
	return 0;
}

#define CHECKPOINT_USAGE                                                       \
	"usage: flexo-coordinator ledger checkpoint --key FILE [--db FILE]\n"  \
	"       [--passphrase-file F | --passphrase-env V] [--origin "         \
	"NAME]\n\n"                                                            \
	"Signs a C2SP checkpoint of the current log with the coordinator "     \
	"key,\n"                                                               \
	"after proving it consistent with the last one. --origin creates a "   \
	"new\n"                                                                \
	"ledger of that name if --db does not exist yet.\n"

/* Opens (or with --origin creates) the ledger and loads the signing key. */
static fx_err open_signing(const opts *o, fx_ledger **l, fx_keypair *kp,
                           fx_diag *d)
{
	fx_err err;

	if ((err = fx_ledger_open(o->db, o->origin, l, d)) != FX_OK)
		return err;
	if ((err = fx_seckey_load_with(kp, o->key, o->pass_file, o->pass_env,
	                               d)) != FX_OK) {
		fx_ledger_close(*l);
		*l = NULL;
	}
	return err;
}

static int cmd_checkpoint(int argc, char **argv, const fx_logger *log)
{
	fx_keypair kp;
	fx_ledger *l = NULL;
	char *note = NULL;
	size_t len = 0;
	fx_diag d;
	fx_err err;
	opts o;

	if (parse(argc, argv, &o) != 0 || optind != argc ||
	    (!o.help && o.key == NULL)) {
		fputs(CHECKPOINT_USAGE, stderr);
		return 2;
	}
	if (o.help) {
		fputs(CHECKPOINT_USAGE, stdout);
		return 0;
	}
	fx_keypair_init(&kp);
	if ((err = open_signing(&o, &l, &kp, &d)) != FX_OK)
		return fail("checkpoint", err, &d);
	err = fx_ledger_sign_checkpoint(l, kp.sk, &note, &len, &d);
	fx_keypair_release(&kp);
	fx_ledger_close(l);
	if (err != FX_OK)
		return fail("checkpoint", err, &d);
	fx_log(log, FX_INFO, "signed a checkpoint of %s", o.db);
	fwrite(note, 1, len, stdout);
	free(note);
	return 0;
}

#define RECEIPT_USAGE                                                          \
	"usage: flexo-coordinator ledger receipt INDEX --out FILE [--db "      \
	"FILE]\n\n"                                                            \
	"Writes the receipt of entry INDEX (entry, newest checkpoint, "        \
	"inclusion\n"                                                          \
	"proof; an encoded flexo.v1.Receipt) to FILE.\n"

static int cmd_receipt(int argc, char **argv, const fx_logger *log)
{
	fx_ledger *l = NULL;
	uint8_t *rc = NULL;
	size_t len = 0;
	unsigned long long index;
	char *end;
	fx_diag d;
	fx_err err;
	opts o;

	(void)log;
	if (parse(argc, argv, &o) != 0 ||
	    (!o.help && (optind != argc - 1 || o.out == NULL))) {
		fputs(RECEIPT_USAGE, stderr);
		return 2;
	}
	if (o.help) {
		fputs(RECEIPT_USAGE, stdout);
		return 0;
	}
	index = strtoull(argv[optind], &end, 10);
	if (*end != '\0' || argv[optind][0] == '-') {
		fprintf(stderr,
		        "flexo-coordinator ledger receipt: INDEX '%s' "
		        "is not a number\n",
		        argv[optind]);
		return 2;
	}
	if ((err = fx_ledger_open(o.db, NULL, &l, &d)) != FX_OK)
		return fail("receipt", err, &d);
	err = fx_receipt_issue(l, index, &rc, &len, &d);
	fx_ledger_close(l);
	if (err == FX_OK)
		err = fx_write_file_atomic(o.out, rc, len, 0644, &d);
	free(rc);
	return err == FX_OK ? 0 : fail("receipt", err, &d);
}

#define EXPORT_USAGE                                                           \
	"usage: flexo-coordinator ledger export DIR [--db FILE] [--blobs "     \
	"DIR]\n"                                                               \
	"       [--key FILE [--passphrase-file F | --passphrase-env V]]\n\n"   \
	"Writes the log for auditors into DIR: entries.bin, leaves.bin,\n"     \
	"checkpoints.bin, log.vkey and, with --blobs, blobs/ (every blob "     \
	"the\n"                                                                \
	"entries name). With --key, first signs a checkpoint of the current\n" \
	"log so that every exported entry is covered by a signature.\n"

static int cmd_export(int argc, char **argv, const fx_logger *log)
{
	fx_keypair kp;
	fx_ledger *l = NULL;
	const char *dir;
	fx_diag d;
	fx_err err;
	opts o;

	if (parse(argc, argv, &o) != 0 || (!o.help && optind != argc - 1)) {
		fputs(EXPORT_USAGE, stderr);
		return 2;
	}
	if (o.help) {
		fputs(EXPORT_USAGE, stdout);
		return 0;
	}
	dir = argv[optind];
	fx_keypair_init(&kp);
	if (o.key != NULL) {
		fx_checkpoint last;
		if ((err = open_signing(&o, &l, &kp, &d)) != FX_OK)
			return fail("export", err, &d);
		/* Only when the log grew: equal checkpoints add nothing. */
		if (fx_ledger_latest_checkpoint(l, NULL, NULL, &last, NULL) !=
		        FX_OK ||
		    last.size != fx_ledger_size(l))
			err = fx_ledger_sign_checkpoint(l, kp.sk, NULL, NULL,
			                                &d);
		fx_keypair_release(&kp);
		if (err != FX_OK) {
			fx_ledger_close(l);
			return fail("export", err, &d);
		}
	} else if ((err = fx_ledger_open(o.db, NULL, &l, &d)) != FX_OK) {
		return fail("export", err, &d);
	}
	err = fx_ledger_export(l, o.blobs, dir, &d);
	if (err == FX_OK)
		fx_log(log, FX_INFO, "exported %llu entries of %s to %s",
		       (unsigned long long)fx_ledger_size(l),
		       fx_ledger_origin(l), dir);
	fx_ledger_close(l);
	return err == FX_OK ? 0 : fail("export", err, &d);
}

static const fx_command ledger_commands[] = {
    {"status", "origin, size, root and newest checkpoint", cmd_status},
    {"checkpoint", "sign a checkpoint of the current log", cmd_checkpoint},
    {"receipt", "write the receipt of one entry", cmd_receipt},
    {"export", "write the log for auditors (flexo-audit verify)", cmd_export},
};

int cmd_ledger(int argc, char **argv, const fx_logger *log)
{
	return fx_cli_dispatch(
	    "flexo-coordinator ledger",
	    "The contribution ledger: an append-only SQLite log under an RFC "
	    "9162 Merkle tree\nwith signed C2SP checkpoints (docs/ledger.md).",
	    argc, argv, ledger_commands,
	    (int)(sizeof(ledger_commands) / sizeof(*ledger_commands)), log);
}
