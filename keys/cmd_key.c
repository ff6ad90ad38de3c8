/* flexo-keys keygen | pubkey | fingerprint: create a key pair, print the
 * public key or the key ID (docs/protocol.md "Keys"). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "flexo/hash.h"
#include "flexo/keys.h"

enum { OPT_PASS_FILE = 1000, OPT_PASS_ENV, OPT_KDF, OPT_FORCE, OPT_PUB };

static int fail(const char *cmd, const fx_diag *d)
{
	fprintf(stderr, "flexo-keys %s: %s\n", cmd, d->msg);
	return 1;
}

static void keygen_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: flexo-keys keygen --out KEY [--pub FILE] [--force]\n"
	    "                         [--passphrase-file F | --passphrase-env "
	    "VAR]\n"
	    "                         [--kdf interactive|moderate]\n\n"
	    "Creates an Ed25519 key pair. The secret key file KEY is written\n"
	    "with mode 0600; with a passphrase its seed is sealed (Argon2id +\n"
	    "XSalsa20-Poly1305). The public key goes to FILE (default "
	    "KEY.pub)\n"
	    "as 64 hex digits. Prints the key ID.\n");
}

int cmd_keygen(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"pub", required_argument, NULL, OPT_PUB},
	    {"passphrase-file", required_argument, NULL, OPT_PASS_FILE},
	    {"passphrase-env", required_argument, NULL, OPT_PASS_ENV},
	    {"kdf", required_argument, NULL, OPT_KDF},
	    {"force", no_argument, NULL, OPT_FORCE},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *out = NULL, *pub = NULL, *pfile = NULL, *penv = NULL;
	fx_kdf_cost cost = FX_KDF_INTERACTIVE;
	char pubpath[4200], id[2 * FX_KEY_ID_BYTES + 1];
	uint8_t *pass = NULL;
	size_t pass_len = 0;
	int force = 0, c, rc = 1;
	fx_keypair kp;
	fx_diag d;

	fx_keypair_init(&kp);
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case OPT_PUB:
			pub = optarg;
			break;
		case OPT_PASS_FILE:
			pfile = optarg;
			break;
		case OPT_PASS_ENV:
			penv = optarg;
			break;
		case OPT_FORCE:
			force = 1;
			break;
		case OPT_KDF:
			if (strcmp(optarg, "interactive") == 0)
				cost = FX_KDF_INTERACTIVE;
			else if (strcmp(optarg, "moderate") == 0)
				cost = FX_KDF_MODERATE;
			else {
				fprintf(stderr,
				        "flexo-keys keygen: --kdf must be "
				        "interactive or moderate\n");
				return 2;
			}
			break;
		case 'h':
			keygen_usage(stdout);
			return 0;
		default:
			keygen_usage(stderr);
			return 2;
		}
	}
	if (out == NULL || optind != argc) {
		keygen_usage(stderr);
		return 2;
	}
	if (pub == NULL) {
		snprintf(pubpath, sizeof(pubpath), "%s.pub", out);
		pub = pubpath;
	}
	if (!force && (access(out, F_OK) == 0 || access(pub, F_OK) == 0)) {
		fprintf(stderr,
		        "flexo-keys keygen: %s or %s exists; refusing to "
		        "overwrite a key without --force\n",
		        out, pub);
		return 1;
	}
	if ((pfile || penv) &&
	    fx_passphrase_load(pfile, penv, &pass, &pass_len, &d) != FX_OK) {
		rc = fail("keygen", &d);
		goto out;
	}
	if (fx_keypair_generate(&kp, &d) != FX_OK ||
	    fx_seckey_save(&kp, out, pass, pass_len, cost, &d) != FX_OK ||
	    fx_pubkey_save(kp.pk, pub, &d) != FX_OK) {
		rc = fail("keygen", &d);
		goto out;
	}
	fx_log(log, FX_INFO, "wrote %s (%s) and %s", out,
	       pass ? "sealed with a passphrase" : "not sealed", pub);
	printf("%s\n", fx_hex(id, kp.id, FX_KEY_ID_BYTES));
	rc = 0;
out:
	fx_passphrase_free(pass, pass_len);
	fx_keypair_release(&kp);
	return rc;
}

static void pubkey_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: flexo-keys pubkey --key KEY [--out FILE]\n\n"
	    "Prints the public key (64 hex digits) of secret key file KEY, or\n"
	    "writes it to FILE. No passphrase is needed: the public half is\n"
	    "stored in clear (the file's mode is still checked).\n");
}

int cmd_pubkey(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *key = NULL, *out = NULL;
	uint8_t pk[FX_PK_BYTES];
	char hex[2 * FX_PK_BYTES + 1];
	fx_diag d;
	int c;

	(void)log;
	optind = 1;
	while ((c = getopt_long(argc, argv, "k:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			key = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			pubkey_usage(stdout);
			return 0;
		default:
			pubkey_usage(stderr);
			return 2;
		}
	}
	if (key == NULL || optind != argc) {
		pubkey_usage(stderr);
		return 2;
	}
	if (fx_seckey_public(key, pk, &d) != FX_OK)
		return fail("pubkey", &d);
	if (out != NULL) {
		if (fx_pubkey_save(pk, out, &d) != FX_OK)
			return fail("pubkey", &d);
		return 0;
	}
	printf("%s\n", fx_hex(hex, pk, FX_PK_BYTES));
	return 0;
}

static void fingerprint_usage(FILE *out)
{
	fprintf(out,
	        "usage: flexo-keys fingerprint (--key KEY | --pub FILE | --hex "
	        "HEX)\n\n"
	        "Prints the key ID: the first 8 bytes of BLAKE2b-256 of the\n"
	        "32-byte public key, as 16 hex digits.\n");
}

int cmd_fingerprint(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"pub", required_argument, NULL, 'p'},
	    {"hex", required_argument, NULL, 'x'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *key = NULL, *pub = NULL, *hex = NULL;
	uint8_t pk[FX_PK_BYTES], id[FX_KEY_ID_BYTES];
	char out[2 * FX_KEY_ID_BYTES + 1];
	fx_diag d;
	fx_err err;
	int c;

	(void)log;
	optind = 1;
	while ((c = getopt_long(argc, argv, "k:p:x:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			key = optarg;
			break;
		case 'p':
			pub = optarg;
			break;
		case 'x':
			hex = optarg;
			break;
		case 'h':
			fingerprint_usage(stdout);
			return 0;
		default:
			fingerprint_usage(stderr);
			return 2;
		}
	}
	if ((key != NULL) + (pub != NULL) + (hex != NULL) != 1 ||
	    optind != argc) {
		fingerprint_usage(stderr);
		return 2;
	}
	if (key != NULL)
		err = fx_seckey_public(key, pk, &d);
	else if (pub != NULL)
		err = fx_pubkey_load(pub, pk, &d);
	else
		err = fx_hex_decode(pk, FX_PK_BYTES, hex, &d);
	if (err != FX_OK)
		return fail("fingerprint", &d);
	fx_key_id(id, pk);
	printf("%s\n", fx_hex(out, id, FX_KEY_ID_BYTES));
	return 0;
}
