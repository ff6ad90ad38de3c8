/* flexo-contributor manifest: signs the contribution manifest of an expert
 * file for the anchor release installed by `fetch` — what `submit` will
 * send ahead of the payload. The sequence number comes from a counter in
 * the state directory that is advanced (atomically, on disk) before
 * anything is signed, so no number is ever used twice. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "ledger_local.h"
#include "flexo/contrib.h"
#include "flexo/fsutil.h"
#include "flexo/keys.h"
#include "flexo/release.h"
#include "flexo/roster.h"

enum {
	OPT_EXPERT = 1000,
	OPT_KEY,
	OPT_PASS_FILE,
	OPT_PASS_ENV,
	OPT_STATE,
	OPT_OUT,
	OPT_NOW
};


static void usage(FILE *out)
{
	fputs(
	    "usage: flexo-contributor manifest --expert FILE --key KEY\n"
	    "         --state DIR [--out FILE] [--now T]\n"
	    "         [--passphrase-file F | --passphrase-env V]\n"
	    "\n"
	    "Builds and signs the contribution manifest (docs/protocol.md) of\n"
	    "an expert file made by 'train' from the release that 'fetch'\n"
	    "installed in DIR: key ID, release digest, domain, sequence,\n"
	    "payload size and BLAKE2b-256, router rows and bias, training\n"
	    "metadata. Refuses an expert trained from another anchor. Writes\n"
	    "FILE (default EXPERT.manifest) and prints the contribution\n"
	    "digest. The sequence counter lives in DIR/sequence.\n",
	    out);
}


int cmd_manifest(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"expert", required_argument, NULL, OPT_EXPERT},
	    {"key", required_argument, NULL, OPT_KEY},
	    {"passphrase-file", required_argument, NULL, OPT_PASS_FILE},
	    {"passphrase-env", required_argument, NULL, OPT_PASS_ENV},
	    {"state", required_argument, NULL, OPT_STATE},
	    {"out", required_argument, NULL, OPT_OUT},
	    {"now", required_argument, NULL, OPT_NOW},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *expert = NULL, *key = NULL, *pfile = NULL, *penv = NULL;
	const char *state = NULL, *out = NULL, *now_s = NULL;
	char path[4200], outpath[4200], hex[2 * FX_BLAKE2B_BYTES + 1];
	uint8_t last_digest[FX_BLAKE2B_BYTES], *env = NULL, *rel_env = NULL;
	size_t env_len = 0, rel_len = 0;
	uint64_t version = 0, seq = 0;
	int64_t now = (int64_t)time(NULL);
	int have = 0, c, rc = 1;
	fx_roster roster, kept;
	fx_release rel;
	fx_contrib check;
	fx_keypair kp;
	fx_diag d;

	fx_roster_init(&roster);
	fx_roster_init(&kept);
	fx_release_init(&rel);
	fx_contrib_init(&check);
	fx_keypair_init(&kp);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_EXPERT:
			expert = optarg;
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
		case OPT_STATE:
			state = optarg;
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
	if (!expert || !key || !state || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (out == NULL) {
		snprintf(outpath, sizeof(outpath), "%s.manifest", expert);
		out = outpath;
	}
	if (now_s && fx_time_parse(now_s, now, &now, &d) != FX_OK)
		goto fail;
	/* The roster and release fetch accepted, verified again as of now. */
	snprintf(path, sizeof(path), "%s/roster.bin", state);
	if (fx_roster_load(&kept, path, &d) != FX_OK ||
	    fx_roster_verify_initial(&roster, kept.envelope, kept.envelope_len,
	                             now, &d) != FX_OK ||
	    fx_release_state_load(state, &have, &version, last_digest, &d) !=
	        FX_OK)
		goto fail;
	if (!have) {
		fx_diag_set(&d, FX_ENOTFOUND,
		            "no anchor release in %s: run 'fetch' first",
		            state);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/release-v%llu", state,
	         (unsigned long long)version);
	if (fx_release_read(path, &rel_env, &rel_len, &d) != FX_OK ||
	    fx_release_verify(&rel, rel_env, rel_len, &roster, now, version,
	                      last_digest, &d) != FX_OK)
		goto fail;
	if (fx_seckey_load_with(&kp, key, pfile, penv, &d) != FX_OK)
		goto fail;
	if (fx_roster_find_key(&roster, kp.pk) == NULL) {
		fx_diag_set(&d, FX_EPERM, "key %s is not in roster v%llu", key,
		            (unsigned long long)roster.version);
		goto fail;
	}
	if (sequence_next(state, &seq, &d) != FX_OK ||
	    fx_contrib_from_expert(expert, &rel, seq, now, &kp, &env, &env_len,
	                           &d) != FX_OK)
		goto fail;
	/* Check it as the coordinator will, before it leaves this machine. */
	{
		fx_contrib_expect x;
		uint8_t h[FX_BLAKE2B_BYTES];
		uint64_t size = 0;
		memset(&x, 0, sizeof(x));
		if (fx_blake2b_file(expert, h, &size, &d) != FX_OK)
			goto fail;
		x.release_digest = rel.digest;
		x.layers = rel.msg->router_pub->layers;
		x.dim = rel.msg->router_pub->dim;
		x.payload_digest = h;
		x.payload_size = size;
		if (fx_contrib_verify(&check, env, env_len, &roster, now, &x,
		                      &d) != FX_OK)
			goto fail;
	}
	if (fx_write_file_atomic(out, env, env_len, 0644, &d) != FX_OK)
		goto fail;
	fx_log(log, FX_INFO,
	       "manifest %s: domain %s, sequence %llu, release v%llu", out,
	       check.msg->domain, (unsigned long long)seq,
	       (unsigned long long)version);
	printf("%s\n", fx_hex(hex, check.digest, FX_BLAKE2B_BYTES));
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "flexo-contributor manifest: %s\n", d.msg);
done:
	free(env);
	free(rel_env);
	fx_contrib_release(&check);
	fx_release_release(&rel);
	fx_roster_release(&roster);
	fx_roster_release(&kept);
	fx_keypair_release(&kp);
	return rc;
}
