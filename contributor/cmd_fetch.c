/* flexo-contributor fetch: takes an anchor release from a directory (the
 * network transport comes later), verifies it against the contributor's
 * trusted roster and its memory of the highest accepted release, and
 * installs it into the state directory. Every refusal names its reason and
 * has its own exit status, so scripts can tell them apart. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "flexo/fsutil.h"
#include "flexo/release.h"
#include "flexo/roster.h"

#define STATE_ROSTER "roster.bin"

enum { OPT_FROM = 1000, OPT_ROSTER, OPT_STATE, OPT_NOW, OPT_VERIFY };

static void usage(FILE *out)
{
	fputs(
	    "usage: flexo-contributor fetch --verify --from DIR --roster FILE\n"
	    "         --state DIR [--now T]\n"
	    "\n"
	    "Verifies the anchor release in DIR (release.bin, the anchor,\n"
	    "the tokenizer, r_pub) and installs it into STATE/release-vN;\n"
	    "train with --anchor STATE/release-vN/anchor.safetensors\n"
	    "--router-pub STATE/release-vN/router.pub.safetensors. It is then\n"
	    "recorded as the highest accepted release (STATE/release.state).\n"
	    "ROSTER is the consortium roster you trust: it must carry its\n"
	    "threshold of root signatures; once accepted it is kept in\n"
	    "STATE/roster.bin and a later roster must be a valid rotation.\n"
	    "\n"
	    "Verification is always on (--verify says so explicitly).\n"
	    "Refusals, each naming its reason:\n"
	    "  unsigned or wrongly signed release        exit 3\n"
	    "  expired release, roster or key            exit 4\n"
	    "  rolled back (older, or same version with\n"
	    "  different content; older roster)          exit 5\n"
	    "  digest or size mismatch of a file         exit 6\n"
	    "  anything else (I/O, malformed input)      exit 1\n",
	    out);
}

static int status_of(fx_err err)
{
	switch (err) {
	case FX_OK:
		return 0;
	case FX_EBADSIG:
		return 3;
	case FX_EEXPIRED:
		return 4;
	case FX_EROLLBACK:
		return 5;
	case FX_EMISMATCH:
		return 6;
	default:
		return 1;
	}
}

static const char *reason_of(fx_err err)
{
	switch (err) {
	case FX_EBADSIG:
		return "bad signature";
	case FX_EEXPIRED:
		return "expired";
	case FX_EROLLBACK:
		return "rollback";
	case FX_EMISMATCH:
		return "digest mismatch";
	default:
		return fx_strerror(err);
	}
}

/* The roster to trust: `path`, verified on its own, and — if the state
 * already holds an accepted roster — equal to it or a valid rotation of it.
 * The accepted one is kept in the state directory. */
static fx_err trusted_roster(const char *path, const char *state, int64_t now,
                             fx_roster *out, fx_diag *d)
{
	char kept[4200];
	fx_roster given, old;
	fx_err err;

	fx_roster_init(&given);
	fx_roster_init(&old);
	snprintf(kept, sizeof(kept), "%s/%s", state, STATE_ROSTER);
	if ((err = fx_roster_load(&given, path, d)) != FX_OK)
		goto out;
	err = fx_roster_load(&old, kept, d);
	if (err == FX_ENOTFOUND) {
		err = fx_roster_verify_initial(out, given.envelope,
		                               given.envelope_len, now, d);
	} else if (err == FX_OK &&
	           memcmp(old.digest, given.digest, FX_BLAKE2B_BYTES) == 0) {
		err = fx_roster_verify_initial(out, given.envelope,
		                               given.envelope_len, now, d);
	} else if (err == FX_OK) {
		err = fx_roster_verify_update(&old, out, given.envelope,
		                              given.envelope_len, now, d);
	}
	if (err != FX_OK) {
		fx_diag_prefix(d, "roster %s", path);
		goto out;
	}
	err = fx_roster_save(out, kept, d);
out:
	fx_roster_release(&given);
	fx_roster_release(&old);
	return err;
}

int cmd_fetch(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"from", required_argument, NULL, OPT_FROM},
	    {"roster", required_argument, NULL, OPT_ROSTER},
	    {"state", required_argument, NULL, OPT_STATE},
	    {"now", required_argument, NULL, OPT_NOW},
	    {"verify", no_argument, NULL, OPT_VERIFY},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *from = NULL, *roster_path = NULL, *state = NULL,
	           *now_s = NULL;
	char dest[4200], hex[2 * FX_BLAKE2B_BYTES + 1];
	uint8_t last_digest[FX_BLAKE2B_BYTES], *env = NULL;
	uint64_t last_version = 0;
	int64_t now = (int64_t)time(NULL);
	size_t env_len = 0;
	int have = 0, c;
	fx_err err = FX_OK;
	fx_roster roster;
	fx_release rel;
	fx_diag d;

	fx_roster_init(&roster);
	fx_release_init(&rel);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_FROM:
			from = optarg;
			break;
		case OPT_ROSTER:
			roster_path = optarg;
			break;
		case OPT_STATE:
			state = optarg;
			break;
		case OPT_NOW:
			now_s = optarg;
			break;
		case OPT_VERIFY:
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!from || !roster_path || !state || optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((now_s && (err = fx_time_parse(now_s, now, &now, &d)) != FX_OK) ||
	    (err = fx_mkdir_p(state, 0700, &d)) != FX_OK ||
	    (err = trusted_roster(roster_path, state, now, &roster, &d)) !=
	        FX_OK ||
	    (err = fx_release_state_load(state, &have, &last_version,
	                                 last_digest, &d)) != FX_OK ||
	    (err = fx_release_read(from, &env, &env_len, &d)) != FX_OK)
		goto out;
	err = fx_release_verify(&rel, env, env_len, &roster, now,
	                        have ? last_version : 0,
	                        have ? last_digest : NULL, &d);
	if (err != FX_OK)
		goto out;
	snprintf(dest, sizeof(dest), "%s/release-v%llu", state,
	         (unsigned long long)rel.msg->release_version);
	/* Install, check the installed copies, and only then move the
	 * high-water mark: a failure anywhere leaves the old state in force. */
	if ((err = fx_release_install(&rel, from, dest, &d)) != FX_OK ||
	    (err = fx_release_state_save(state, rel.msg->release_version,
	                                 rel.digest, &d)) != FX_OK)
		goto out;
	fx_log(log, FX_INFO,
	       "accepted anchor release v%llu signed by %s into %s",
	       (unsigned long long)rel.msg->release_version, rel.signer, dest);
	printf("%s\n", fx_hex(hex, rel.digest, FX_BLAKE2B_BYTES));
out:
	if (err != FX_OK)
		fprintf(stderr, "flexo-contributor fetch: refused (%s): %s\n",
		        reason_of(err), d.msg);
	free(env);
	fx_release_release(&rel);
	fx_roster_release(&roster);
	return status_of(err);
}
