/* flexo-keys roster init|add|remove|sign|verify|show: the consortium roster
 * file (an Envelope over a flexo.v1.Roster). Editing drops signatures, since
 * they covered the old bytes; rotation is `init --from OLD`, edits, then k
 * root signatures of OLD (and of the new roster's own roots). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "flexo/cli.h"
#include "flexo/hash.h"
#include "flexo/keys.h"
#include "flexo/roster.h"

enum {
	OPT_CONSORTIUM = 1000,
	OPT_VERSION,
	OPT_EXPIRES,
	OPT_THRESHOLD,
	OPT_COSIGN,
	OPT_FROM,
	OPT_ROOT,
	OPT_NAME,
	OPT_ROLE,
	OPT_PUB,
	OPT_HEX,
	OPT_NOT_AFTER,
	OPT_KEY,
	OPT_PASS_FILE,
	OPT_PASS_ENV,
	OPT_TRUSTED,
	OPT_NOW,
	OPT_ROSTER,
	OPT_OUT
};

static int fail(const char *cmd, const fx_diag *d)
{
	fprintf(stderr, "flexo-keys roster %s: %s\n", cmd, d->msg);
	return 1;
}

static int usage_error(const char *cmd, const char *text)
{
	fprintf(stderr, "usage: flexo-keys roster %s\n", text);
	(void)cmd;
	return 2;
}

/* Parses "--root NAME=PUBFILE". */
static fx_err add_root_arg(fx_roster *r, const char *arg, fx_diag *d)
{
	char name[FX_NAME_MAX + 1];
	const char *eq = strchr(arg, '=');
	uint8_t pk[FX_PK_BYTES];
	fx_err err;

	if (eq == NULL || eq == arg || (size_t)(eq - arg) > FX_NAME_MAX)
		return fx_diag_set(d, FX_EINVAL,
		                   "--root wants NAME=PUBFILE, got '%s'", arg);
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = '\0';
	if ((err = fx_pubkey_load(eq + 1, pk, d)) != FX_OK)
		return err;
	return fx_roster_add(r, name, pk, FX_ROLE_ROOT, 0, d);
}

#define INIT_USAGE                                                             \
	"init --out FILE --expires T [--consortium NAME] [--version N]\n"      \
	"          [--threshold K] [--release-cosigners C]\n"                  \
	"          (--root NAME=PUBFILE ... | --from OLD)\n\n"                 \
	"Creates an unsigned roster. A first roster names its root keys "      \
	"with\n"                                                               \
	"--root (repeatable) and a consortium; --from copies the members of\n" \
	"OLD and sets the version to OLD's + 1 (rotation). T is Unix "         \
	"seconds,\n"                                                           \
	"+Nd/+Nh relative, or YYYY-MM-DD[THH:MM:SSZ] (UTC).\n"

static int roster_init(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, OPT_OUT},
	    {"consortium", required_argument, NULL, OPT_CONSORTIUM},
	    {"version", required_argument, NULL, OPT_VERSION},
	    {"expires", required_argument, NULL, OPT_EXPIRES},
	    {"threshold", required_argument, NULL, OPT_THRESHOLD},
	    {"release-cosigners", required_argument, NULL, OPT_COSIGN},
	    {"root", required_argument, NULL, OPT_ROOT},
	    {"from", required_argument, NULL, OPT_FROM},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *out = NULL, *consortium = NULL, *expires = NULL,
	           *from = NULL;
	const char *roots[64];
	long long version = -1, threshold = -1, cosign = -1;
	int n_roots = 0, c, rc = 1;
	fx_roster r;
	fx_diag d;

	fx_roster_init(&r);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_OUT:
			out = optarg;
			break;
		case OPT_CONSORTIUM:
			consortium = optarg;
			break;
		case OPT_VERSION:
			version = atoll(optarg);
			break;
		case OPT_EXPIRES:
			expires = optarg;
			break;
		case OPT_THRESHOLD:
			threshold = atoll(optarg);
			break;
		case OPT_COSIGN:
			cosign = atoll(optarg);
			break;
		case OPT_FROM:
			from = optarg;
			break;
		case OPT_ROOT:
			if (n_roots == 64)
				return usage_error("init", "at most 64 --root");
			roots[n_roots++] = optarg;
			break;
		case 'h':
			printf("usage: flexo-keys roster " INIT_USAGE);
			return 0;
		default:
			return usage_error("init", INIT_USAGE);
		}
	}
	if (out == NULL || expires == NULL || optind != argc ||
	    (from == NULL && (n_roots == 0 || consortium == NULL)))
		return usage_error("init", INIT_USAGE);
	if (from != NULL) {
		if (fx_roster_load(&r, from, &d) != FX_OK)
			return fail("init", &d);
		r.version++;
	} else {
		r.version = 1;
		r.threshold = 1;
	}
	if (consortium != NULL)
		snprintf(r.consortium, sizeof(r.consortium), "%s", consortium);
	if (version >= 0)
		r.version = (uint64_t)version;
	if (threshold >= 0)
		r.threshold = (uint32_t)threshold;
	if (cosign >= 0)
		r.release_cosigners = (uint32_t)cosign;
	if (fx_time_parse(expires, (int64_t)time(NULL), &r.expires, &d) !=
	    FX_OK)
		goto fail;
	for (int i = 0; i < n_roots; i++)
		if (add_root_arg(&r, roots[i], &d) != FX_OK)
			goto fail;
	if (fx_roster_seal(&r, &d) != FX_OK ||
	    fx_roster_save(&r, out, &d) != FX_OK)
		goto fail;
	fx_log(log, FX_INFO,
	       "wrote unsigned roster v%llu with %zu members to %s",
	       (unsigned long long)r.version, r.n_members, out);
	rc = 0;
	goto out;
fail:
	rc = fail("init", &d);
out:
	fx_roster_release(&r);
	return rc;
}

#define ADD_USAGE                                                              \
	"add --roster FILE --name NAME --role ROLE (--pub FILE | --hex HEX)\n" \
	"          [--not-after T]\n\n"                                        \
	"Adds a member (ROLE: root, coordinator, contributor, auditor). "      \
	"Drops\n"                                                              \
	"any signatures: the roster must be signed again.\n"

static int roster_add(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"roster", required_argument, NULL, OPT_ROSTER},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"role", required_argument, NULL, OPT_ROLE},
	    {"pub", required_argument, NULL, OPT_PUB},
	    {"hex", required_argument, NULL, OPT_HEX},
	    {"not-after", required_argument, NULL, OPT_NOT_AFTER},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *path = NULL, *name = NULL, *role = NULL, *pub = NULL;
	const char *hex = NULL, *not_after = NULL;
	uint8_t pk[FX_PK_BYTES];
	int64_t na = 0;
	int c, rc = 1, role_v;
	size_t had;
	fx_roster r;
	fx_diag d;

	fx_roster_init(&r);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROSTER:
			path = optarg;
			break;
		case OPT_NAME:
			name = optarg;
			break;
		case OPT_ROLE:
			role = optarg;
			break;
		case OPT_PUB:
			pub = optarg;
			break;
		case OPT_HEX:
			hex = optarg;
			break;
		case OPT_NOT_AFTER:
			not_after = optarg;
			break;
		case 'h':
			printf("usage: flexo-keys roster " ADD_USAGE);
			return 0;
		default:
			return usage_error("add", ADD_USAGE);
		}
	}
	if (path == NULL || name == NULL || role == NULL ||
	    (pub == NULL) == (hex == NULL) || optind != argc)
		return usage_error("add", ADD_USAGE);
	role_v = fx_role_parse(role);
	if (role_v < 0) {
		fprintf(stderr,
		        "flexo-keys roster add: unknown role '%s' (root, "
		        "coordinator, contributor, auditor)\n",
		        role);
		return 2;
	}
	if ((pub ? fx_pubkey_load(pub, pk, &d)
	         : fx_hex_decode(pk, FX_PK_BYTES, hex, &d)) != FX_OK)
		goto fail;
	if (not_after != NULL &&
	    fx_time_parse(not_after, (int64_t)time(NULL), &na, &d) != FX_OK)
		goto fail;
	if (fx_roster_load(&r, path, &d) != FX_OK)
		goto fail;
	had = r.n_signatures;
	if (fx_roster_add(&r, name, pk, (fx_role)role_v, na, &d) != FX_OK ||
	    fx_roster_seal(&r, &d) != FX_OK ||
	    fx_roster_save(&r, path, &d) != FX_OK)
		goto fail;
	if (had)
		fx_log(log, FX_WARN, "dropped %zu signature(s): sign again",
		       had);
	rc = 0;
	goto out;
fail:
	rc = fail("add", &d);
out:
	fx_roster_release(&r);
	return rc;
}

#define REMOVE_USAGE                                                           \
	"remove --roster FILE --name NAME\n\n"                                 \
	"Removes a member (revocation takes effect once the new version is\n"  \
	"signed and distributed). Drops any signatures.\n"

static int roster_remove(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"roster", required_argument, NULL, OPT_ROSTER},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *path = NULL, *name = NULL;
	int c, rc = 1;
	size_t had;
	fx_roster r;
	fx_diag d;

	fx_roster_init(&r);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROSTER:
			path = optarg;
			break;
		case OPT_NAME:
			name = optarg;
			break;
		case 'h':
			printf("usage: flexo-keys roster " REMOVE_USAGE);
			return 0;
		default:
			return usage_error("remove", REMOVE_USAGE);
		}
	}
	if (path == NULL || name == NULL || optind != argc)
		return usage_error("remove", REMOVE_USAGE);
	if (fx_roster_load(&r, path, &d) != FX_OK)
		goto fail;
	had = r.n_signatures;
	if (fx_roster_remove(&r, name, &d) != FX_OK ||
	    fx_roster_seal(&r, &d) != FX_OK ||
	    fx_roster_save(&r, path, &d) != FX_OK)
		goto fail;
	if (had)
		fx_log(log, FX_WARN, "dropped %zu signature(s): sign again",
		       had);
	rc = 0;
	goto out;
fail:
	rc = fail("remove", &d);
out:
	fx_roster_release(&r);
	return rc;
}

#define SIGN_USAGE                                                             \
	"sign --roster FILE --key KEY [--passphrase-file F | "                 \
	"--passphrase-env V]\n\n"                                              \
	"Adds KEY's signature to the roster (root keys of this roster and, "   \
	"for\n"                                                                \
	"a rotation, of the previous one).\n"

static int roster_sign(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"roster", required_argument, NULL, OPT_ROSTER},
	    {"key", required_argument, NULL, OPT_KEY},
	    {"passphrase-file", required_argument, NULL, OPT_PASS_FILE},
	    {"passphrase-env", required_argument, NULL, OPT_PASS_ENV},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *path = NULL, *key = NULL, *pfile = NULL, *penv = NULL;
	char id[2 * FX_KEY_ID_BYTES + 1];
	int c, rc = 1;
	fx_keypair kp;
	fx_roster r;
	fx_diag d;

	fx_roster_init(&r);
	fx_keypair_init(&kp);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROSTER:
			path = optarg;
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
		case 'h':
			printf("usage: flexo-keys roster " SIGN_USAGE);
			return 0;
		default:
			return usage_error("sign", SIGN_USAGE);
		}
	}
	if (path == NULL || key == NULL || optind != argc)
		return usage_error("sign", SIGN_USAGE);
	if (fx_roster_load(&r, path, &d) != FX_OK ||
	    fx_seckey_load_with(&kp, key, pfile, penv, &d) != FX_OK ||
	    fx_roster_sign(&r, &kp, &d) != FX_OK ||
	    fx_roster_save(&r, path, &d) != FX_OK) {
		rc = fail("sign", &d);
		goto out;
	}
	fx_log(log, FX_INFO, "roster v%llu signed by %s (%zu signature(s))",
	       (unsigned long long)r.version,
	       fx_hex(id, kp.id, FX_KEY_ID_BYTES), r.n_signatures);
	rc = 0;
out:
	fx_keypair_release(&kp);
	fx_roster_release(&r);
	return rc;
}

#define VERIFY_USAGE                                                           \
	"verify --roster FILE [--trusted OLD] [--now T]\n\n"                   \
	"Without --trusted: FILE must carry >= threshold signatures of its "   \
	"own\n"                                                                \
	"roots and not be expired (a first roster; pin its digest). With\n"    \
	"--trusted OLD: also a higher version than OLD and >= OLD's "          \
	"threshold\n"                                                          \
	"of OLD's roots (rotation). --now verifies as of another time.\n"      \
	"Prints the roster's version and BLAKE2b-256 digest.\n"

static int roster_verify(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"roster", required_argument, NULL, OPT_ROSTER},
	    {"trusted", required_argument, NULL, OPT_TRUSTED},
	    {"now", required_argument, NULL, OPT_NOW},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *path = NULL, *trusted = NULL, *now_s = NULL;
	char hex[2 * FX_BLAKE2B_BYTES + 1];
	int64_t now = (int64_t)time(NULL);
	fx_roster cand, old, ok;
	int c, rc = 1;
	fx_err err;
	fx_diag d;

	(void)log;
	fx_roster_init(&cand);
	fx_roster_init(&old);
	fx_roster_init(&ok);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROSTER:
			path = optarg;
			break;
		case OPT_TRUSTED:
			trusted = optarg;
			break;
		case OPT_NOW:
			now_s = optarg;
			break;
		case 'h':
			printf("usage: flexo-keys roster " VERIFY_USAGE);
			return 0;
		default:
			return usage_error("verify", VERIFY_USAGE);
		}
	}
	if (path == NULL || optind != argc)
		return usage_error("verify", VERIFY_USAGE);
	if (now_s != NULL && fx_time_parse(now_s, now, &now, &d) != FX_OK)
		goto fail;
	if (fx_roster_load(&cand, path, &d) != FX_OK)
		goto fail;
	if (trusted != NULL) {
		/* The trusted roster was verified when it was accepted; here it
		 * is only the reference for the rotation rule. */
		if (fx_roster_load(&old, trusted, &d) != FX_OK)
			goto fail;
		err = fx_roster_verify_update(&old, &ok, cand.envelope,
		                              cand.envelope_len, now, &d);
	} else {
		err = fx_roster_verify_initial(&ok, cand.envelope,
		                               cand.envelope_len, now, &d);
	}
	if (err != FX_OK)
		goto fail;
	printf("roster %s v%llu OK: %zu members, threshold %u, digest %s\n",
	       ok.consortium, (unsigned long long)ok.version, ok.n_members,
	       ok.threshold, fx_hex(hex, ok.digest, FX_BLAKE2B_BYTES));
	rc = 0;
	goto out;
fail:
	rc = fail("verify", &d);
out:
	fx_roster_release(&cand);
	fx_roster_release(&old);
	fx_roster_release(&ok);
	return rc;
}

#define SHOW_USAGE                                                             \
	"show --roster FILE\n\n"                                               \
	"Prints the roster's fields, members and which members' signatures "   \
	"it\n"                                                                 \
	"carries (checked against the members' own keys; use verify for the\n" \
	"threshold and rotation rules).\n"

static int roster_show(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"roster", required_argument, NULL, OPT_ROSTER},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *path = NULL;
	char hex[2 * FX_BLAKE2B_BYTES + 1], when[32];
	Flexo__V1__Envelope *env = NULL;
	int c, rc = 1;
	fx_roster r;
	fx_diag d;

	(void)log;
	fx_roster_init(&r);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROSTER:
			path = optarg;
			break;
		case 'h':
			printf("usage: flexo-keys roster " SHOW_USAGE);
			return 0;
		default:
			return usage_error("show", SHOW_USAGE);
		}
	}
	if (path == NULL || optind != argc)
		return usage_error("show", SHOW_USAGE);
	if (fx_roster_load(&r, path, &d) != FX_OK ||
	    fx_envelope_open(r.envelope, r.envelope_len, FX_TYPE_ROSTER, &env,
	                     &d) != FX_OK) {
		rc = fail("show", &d);
		goto out;
	}
	printf("consortium: %s\nversion: %llu\nexpires: %s\nthreshold: %u\n"
	       "release co-signers: %u\ndigest: %s\nmembers:\n",
	       r.consortium, (unsigned long long)r.version,
	       fx_time_format(when, sizeof(when), r.expires), r.threshold,
	       r.release_cosigners, fx_hex(hex, r.digest, FX_BLAKE2B_BYTES));
	for (size_t i = 0; i < r.n_members; i++) {
		const fx_member *m = &r.members[i];
		char id[2 * FX_KEY_ID_BYTES + 1];
		printf("  %-16s %-12s %s  %s%s%s\n", m->name,
		       fx_role_name(m->role),
		       fx_hex(id, m->id, FX_KEY_ID_BYTES),
		       fx_envelope_verify_key(env, m->pk) == 0 ? "signed" : "-",
		       m->not_after ? "  not after " : "",
		       m->not_after
		           ? fx_time_format(when, sizeof(when), m->not_after)
		           : "");
	}
	printf("signatures: %zu\n", env->n_signatures);
	rc = 0;
out:
	if (env != NULL)
		fx_wire_free(&env->base);
	fx_roster_release(&r);
	return rc;
}

static const fx_command roster_commands[] = {
    {"init", "create an unsigned roster (first, or --from the previous)",
     roster_init},
    {"add", "add a member", roster_add},
    {"remove", "remove a member (revocation)", roster_remove},
    {"sign", "add a signature", roster_sign},
    {"verify", "check signatures, threshold, version and expiry",
     roster_verify},
    {"show", "print the roster", roster_show},
};

int cmd_roster(int argc, char **argv, const fx_logger *log)
{
	return fx_cli_dispatch(
	    "flexo-keys roster",
	    "The consortium roster: members, roles, threshold.", argc, argv,
	    roster_commands,
	    (int)(sizeof(roster_commands) / sizeof(*roster_commands)), log);
}
