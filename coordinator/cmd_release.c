/* flexo-coordinator release: publishes a signed anchor release — the
 * anchor safetensors, tokenizer.json and the AnchorRelease manifest
 * (release.bin) in one directory that contributors fetch and verify. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "flexo/fsutil.h"
#include "flexo/keys.h"
#include "flexo/release.h"
#include "flexo/roster.h"
#include "flexo/tokenizer.h"

#define MAX_COSIGN 8

enum {
	OPT_ANCHOR = 1000,
	OPT_ROUTER,
	OPT_TOKENIZER,
	OPT_KEY,
	OPT_PASS_FILE,
	OPT_PASS_ENV,
	OPT_ROSTER,
	OPT_VERSION,
	OPT_EXPIRES,
	OPT_COSIGN,
	OPT_COSIGN_ENV,
	OPT_OUT,
	OPT_NOW
};

static void usage(FILE *out)
{
	fputs(
	    "usage: flexo-coordinator release --anchor FILE --router-pub FILE\n"
	    "         --key KEY --roster ROSTER --version N --expires T\n"
	    "         --out DIR [--tokenizer FILE] [--now T]\n"
	    "         [--passphrase-file F | --passphrase-env V]\n"
	    "         [--cosign ROOTKEY ... [--cosign-passphrase-env V]]\n"
	    "\n"
	    "Writes DIR/anchor.safetensors, DIR/tokenizer.json,\n"
	    "DIR/router.pub.safetensors and DIR/release.bin, an AnchorRelease\n"
	    "manifest (docs/protocol.md): release version, the anchor's\n"
	    "config, BLAKE2b-256 of every tensor and of each file, r_pub, the\n"
	    "roster version and the expiry, signed by KEY (a coordinator of\n"
	    "ROSTER) and each --cosign root key (the roster says how many\n"
	    "roots must co-sign). Prints the release digest.\n"
	    "\n"
	    "  --router-pub FILE  safetensors with tensor \"router.pub\",\n"
	    "                     [L, d] or [d] (same row for every layer),\n"
	    "                     e.g. from 'flexo-coordinator anchor embed'\n"
	    "  --tokenizer FILE   tokenizer.json (default: the built-in byte\n"
	    "                     tokenizer's)\n"
	    "  --version N        above every earlier release (contributors\n"
	    "                     refuse rollbacks)\n"
	    "  T                  Unix seconds, +Nd/+Nh, or\n"
	    "                     YYYY-MM-DD[THH:MM:SSZ] (UTC)\n"
	    "  --now T            sign as of time T instead of the clock\n",
	    out);
}

/* A directory that already holds a release is only ever overwritten by a
 * higher version: re-using a version number would hand contributors two
 * different anchors under one number (they refuse the second). */
static fx_err refuse_older(const char *out, uint64_t version,
                           const fx_roster *roster, int64_t now, fx_diag *d)
{
	uint8_t *env = NULL;
	size_t len = 0;
	fx_release old;
	fx_err err;

	err = fx_release_read(out, &env, &len, d);
	if (err == FX_ENOTFOUND)
		return FX_OK;
	if (err != FX_OK)
		return err;
	fx_release_init(&old);
	/* Our own earlier release, checked like any other; one that no longer
	 * verifies (expired, other roster) does not block a new one. */
	err = fx_release_verify(&old, env, len, roster, now, 0, NULL, d);
	if (err == FX_OK && old.msg->release_version >= version)
		err = fx_diag_set(
		    d, FX_EROLLBACK,
		    "%s already holds release v%llu; a new release "
		    "needs a higher --version",
		    out, (unsigned long long)old.msg->release_version);
	else if (err != FX_OK)
		err = FX_OK;
	fx_release_release(&old);
	free(env);
	return err;
}

int cmd_release(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"anchor", required_argument, NULL, OPT_ANCHOR},
	    {"router-pub", required_argument, NULL, OPT_ROUTER},
	    {"tokenizer", required_argument, NULL, OPT_TOKENIZER},
	    {"key", required_argument, NULL, OPT_KEY},
	    {"passphrase-file", required_argument, NULL, OPT_PASS_FILE},
	    {"passphrase-env", required_argument, NULL, OPT_PASS_ENV},
	    {"roster", required_argument, NULL, OPT_ROSTER},
	    {"version", required_argument, NULL, OPT_VERSION},
	    {"expires", required_argument, NULL, OPT_EXPIRES},
	    {"cosign", required_argument, NULL, OPT_COSIGN},
	    {"cosign-passphrase-env", required_argument, NULL, OPT_COSIGN_ENV},
	    {"out", required_argument, NULL, OPT_OUT},
	    {"now", required_argument, NULL, OPT_NOW},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *anchor = NULL, *router = NULL, *tok = NULL, *key = NULL;
	const char *pfile = NULL, *penv = NULL, *roster_path = NULL;
	const char *expires = NULL, *out = NULL, *now_s = NULL, *cenv = NULL;
	const char *cosign[MAX_COSIGN];
	fx_keypair kp, ck[MAX_COSIGN];
	const fx_keypair *cptr[MAX_COSIGN];
	char gen_tok[4200], hex[2 * FX_BLAKE2B_BYTES + 1], *end = NULL;
	fx_release_params p;
	fx_roster roster, trusted;
	fx_release check;
	unsigned long long version = 0;
	int n_cosign = 0, c, rc = 1, made_tok = 0;
	uint8_t *env = NULL;
	size_t env_len = 0;
	int64_t now = (int64_t)time(NULL), exp_t = 0;
	fx_diag d;

	fx_keypair_init(&kp);
	for (int i = 0; i < MAX_COSIGN; i++)
		fx_keypair_init(&ck[i]);
	fx_roster_init(&roster);
	fx_roster_init(&trusted);
	fx_release_init(&check);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ANCHOR:
			anchor = optarg;
			break;
		case OPT_ROUTER:
			router = optarg;
			break;
		case OPT_TOKENIZER:
			tok = optarg;
			break;
		case OPT_KEY:
			key = optarg;
			break;
		case OPT_PASS_FILE:
			pfile = optarg;
			break;
		case OPT_PASS_ENV:
			penv = optarg;
			break;
		case OPT_ROSTER:
			roster_path = optarg;
			break;
		case OPT_VERSION:
			version = strtoull(optarg, &end, 10);
			if (end == optarg || *end != '\0' || version == 0) {
				fprintf(stderr,
				        "flexo-coordinator release: --version "
				        "must be a positive integer\n");
				return 2;
			}
			break;
		case OPT_EXPIRES:
			expires = optarg;
			break;
		case OPT_COSIGN:
			if (n_cosign == MAX_COSIGN) {
				fprintf(stderr,
				        "flexo-coordinator release: at most %d "
				        "--cosign\n",
				        MAX_COSIGN);
				return 2;
			}
			cosign[n_cosign++] = optarg;
			break;
		case OPT_COSIGN_ENV:
			cenv = optarg;
			break;
		case OPT_OUT:
			out = optarg;
			break;
		case OPT_NOW:
			now_s = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!anchor || !router || !key || !roster_path || !version ||
	    !expires || !out || optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((now_s && fx_time_parse(now_s, now, &now, &d) != FX_OK) ||
	    fx_time_parse(expires, now, &exp_t, &d) != FX_OK)
		goto fail;
	/* The coordinator checks its roster like anyone else would. */
	if (fx_roster_load(&roster, roster_path, &d) != FX_OK ||
	    fx_roster_verify_initial(&trusted, roster.envelope,
	                             roster.envelope_len, now, &d) != FX_OK)
		goto fail;
	if (fx_seckey_load_with(&kp, key, pfile, penv, &d) != FX_OK)
		goto fail;
	for (int i = 0; i < n_cosign; i++) {
		if (fx_seckey_load_with(&ck[i], cosign[i], NULL, cenv, &d) !=
		    FX_OK)
			goto fail;
		cptr[i] = &ck[i];
	}
	if (fx_mkdir_p(out, 0755, &d) != FX_OK ||
	    refuse_older(out, version, &trusted, now, &d) != FX_OK)
		goto fail;
	if (tok == NULL) {
		snprintf(gen_tok, sizeof(gen_tok), "%s/.tokenizer.json.gen",
		         out);
		if (fx_tok_write_hf(gen_tok, &d) != FX_OK)
			goto fail;
		tok = gen_tok;
		made_tok = 1;
	}
	p.anchor_path = anchor;
	p.router_pub_path = router;
	p.tokenizer_path = tok;
	p.version = version;
	p.created = now;
	p.expires = exp_t;
	p.roster = &trusted;
	if (fx_release_create(&p, &kp, cptr, (size_t)n_cosign, out, &d) !=
	    FX_OK)
		goto fail;
	if (fx_release_read(out, &env, &env_len, &d) != FX_OK ||
	    fx_release_verify(&check, env, env_len, &trusted, now, 0, NULL,
	                      &d) != FX_OK)
		goto fail;
	fx_log(log, FX_INFO,
	       "anchor release v%llu: %zu tensors, %u x %u r_pub, "
	       "signed by %s + %d co-signer(s)",
	       version, check.msg->n_tensors, check.msg->router_pub->layers,
	       check.msg->router_pub->dim, check.signer, n_cosign);
	printf("%s\n", fx_hex(hex, check.digest, FX_BLAKE2B_BYTES));
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "flexo-coordinator release: %s\n", d.msg);
out:
	if (made_tok)
		unlink(gen_tok);
	free(env);
	fx_release_release(&check);
	fx_roster_release(&roster);
	fx_roster_release(&trusted);
	fx_keypair_release(&kp);
	for (int i = 0; i < MAX_COSIGN; i++)
		fx_keypair_release(&ck[i]);
	return rc;
}
