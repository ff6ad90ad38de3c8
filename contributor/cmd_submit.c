/* `flexo-contributor submit`: signs a contribution manifest for an expert
 * payload (or takes one already signed), uploads the payload to the
 * coordinator in chunks with resume, waits for the verdict and prints it.
 * Options from --config FILE and flags (flags win). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "flexo/client.h"
#include "flexo/fsutil.h"
#include "flexo/keys.h"
#include "flexo/optfile.h"
#include "flexo/roster.h"
#include "flexo/submit_manifest.h"
#include "flexo/wire.h"

#define RELEASE_FILE "release.bin"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: flexo-contributor submit --coordinator URL --payload FILE\n"
	        "         (--envelope FILE | --key FILE --domain NAME --sequence N\n"
	        "          (--release DIR | --consortium NAME --anchor-digest HEX\n"
	        "           --anchor-version N)) [options]\n\n"
	        "Uploads an expert payload under a signed contribution manifest "
	        "and waits\nfor the coordinator's verdict. Exit status: 0 "
	        "accepted, 3 rejected,\n1 error, 2 usage.\n\n"
	        "  --config FILE          'name = value' lines for any option "
	        "below; flags win\n"
	        "  --coordinator URL      tls+tcp://HOST:PORT, tcp://HOST:PORT or "
	        "ipc:///PATH\n"
	        "  --ca FILE              the one CA trusted for tls+tcp:// (PEM)\n"
	        "  --server-name NAME     name in the coordinator's certificate "
	        "(default localhost)\n"
	        "  --payload FILE         expert safetensors to upload\n"
	        "  --envelope FILE        a contribution envelope signed already\n"
	        "  --key FILE             contributor secret key (signs the "
	        "manifest)\n"
	        "  --passphrase-file F    passphrase of a sealed key\n"
	        "  --passphrase-env VAR   ... or from this variable\n"
	        "  --release DIR          anchor release directory (its %s gives\n"
	        "                         consortium, release digest and version)\n"
	        "  --consortium NAME      without --release\n"
	        "  --anchor-digest HEX    without --release: BLAKE2b-256 of the "
	        "release payload\n"
	        "  --anchor-version N     without --release\n"
	        "  --domain NAME          domain label\n"
	        "  --sequence N           per-contributor sequence number (> 0, "
	        "fresh)\n"
	        "  --save-envelope FILE   keep the signed envelope (to resubmit)\n"
	        "  --sign-only            with --save-envelope: sign, write, do "
	        "not upload\n"
	        "  --receipt-out FILE     write the receipt carried by the verdict\n"
	        "  --chunk BYTES          chunk size (default 4194304)\n"
	        "  --max-rate BYTES       bandwidth limit per second (default "
	        "none)\n"
	        "  --timeout-ms N         per exchange (default %d)\n"
	        "  --retries N            failures in a row before giving up "
	        "(default 30)\n",
	        RELEASE_FILE, FX_NET_TIMEOUT_MS);
}

static int parse_u64(const char *flag, const char *s, uint64_t min,
                     uint64_t max, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9')
		goto bad;
	v = strtoull(s, &end, 10);
	if (*end != '\0' || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	fprintf(stderr,
	        "submit: %s wants an integer in %" PRIu64 "..%" PRIu64
	        ", not '%s'\n",
	        flag, min, max, s);
	return -1;
}

/* Consortium, digest and version of the release in dir/release.bin. The
 * signature is not checked here (fetch verifies the release). */
static fx_err release_info(const char *dir, char *consortium, size_t cons_max,
                           uint8_t digest[FX_BLAKE2B_BYTES], uint64_t *version,
                           fx_diag *d)
{
	char path[FX_PATH_MAX + 1];
	uint8_t *buf = NULL;
	size_t len = 0;
	Flexo__V1__Envelope *e = NULL;
	Flexo__V1__AnchorRelease *r = NULL;
	fx_err err;

	snprintf(path, sizeof(path), "%s/%s", dir, RELEASE_FILE);
	if ((err = fx_read_file(path, FX_WIRE_ENVELOPE_MAX, &buf, &len, d)) !=
	        FX_OK ||
	    (err = fx_envelope_open(buf, len, FX_TYPE_RELEASE, &e, d)) != FX_OK ||
	    (err = fx_wire_decode(&flexo__v1__anchor_release__descriptor,
	                          e->payload.data, e->payload.len,
	                          FX_WIRE_DOC_MAX, (ProtobufCMessage **)&r, d)) !=
	        FX_OK) {
		fx_diag_prefix(d, "%s", path);
		goto out;
	}
	fx_blake2b(digest, e->payload.data, e->payload.len);
	snprintf(consortium, cons_max, "%s", r->consortium);
	*version = r->release_version;
out:
	fx_wire_free(r ? &r->base : NULL);
	fx_wire_free(e ? &e->base : NULL);
	free(buf);
	return err;
}

static const char *decision_name(int d)
{
	return d == FLEXO__V1__DECISION__DECISION_ACCEPTED   ? "accepted"
	       : d == FLEXO__V1__DECISION__DECISION_REJECTED ? "rejected"
	                                                     : "undecided";
}

int cmd_submit(int argc, char **argv, const fx_logger *log)
{
	enum {
		O_COORD = 1, O_CA, O_SNI, O_PAYLOAD, O_ENVELOPE, O_KEY, O_PFILE,
		O_PENV, O_RELEASE, O_CONS, O_ADIGEST, O_AVERSION, O_DOMAIN,
		O_SEQ, O_SAVE, O_SIGN_ONLY, O_RECEIPT, O_CHUNK, O_RATE, O_TIMEOUT, O_RETRIES,
	};
	static const struct option longopts[] = {
	    {"coordinator", required_argument, 0, O_COORD},
	    {"ca", required_argument, 0, O_CA},
	    {"server-name", required_argument, 0, O_SNI},
	    {"payload", required_argument, 0, O_PAYLOAD},
	    {"envelope", required_argument, 0, O_ENVELOPE},
	    {"key", required_argument, 0, O_KEY},
	    {"passphrase-file", required_argument, 0, O_PFILE},
	    {"passphrase-env", required_argument, 0, O_PENV},
	    {"release", required_argument, 0, O_RELEASE},
	    {"consortium", required_argument, 0, O_CONS},
	    {"anchor-digest", required_argument, 0, O_ADIGEST},
	    {"anchor-version", required_argument, 0, O_AVERSION},
	    {"domain", required_argument, 0, O_DOMAIN},
	    {"sequence", required_argument, 0, O_SEQ},
	    {"save-envelope", required_argument, 0, O_SAVE},
	    {"sign-only", no_argument, 0, O_SIGN_ONLY},
	    {"receipt-out", required_argument, 0, O_RECEIPT},
	    {"chunk", required_argument, 0, O_CHUNK},
	    {"max-rate", required_argument, 0, O_RATE},
	    {"timeout-ms", required_argument, 0, O_TIMEOUT},
	    {"retries", required_argument, 0, O_RETRIES},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	const char *payload = NULL, *env_path = NULL, *key_path = NULL,
	           *pfile = NULL, *penv = NULL, *release = NULL, *cons = NULL,
	           *adigest = NULL, *domain = NULL, *save = NULL,
	           *receipt_out = NULL;
	uint64_t aversion = 0, seq = 0, v;
	int have_aversion = 0, sign_only = 0;
	char consortium[FX_NAME_MAX + 1] = "";
	uint8_t digest[FX_BLAKE2B_BYTES], *env = NULL;
	char hex[2 * FX_BLAKE2B_BYTES + 1];
	size_t env_len = 0;
	fx_client_opts o;
	fx_client *c = NULL;
	fx_submit_result r;
	fx_keypair key;
	fx_optargs args = {0};
	fx_diag d = {{0}};
	int opt, rc = 1;

	memset(&r, 0, sizeof(r));
	fx_keypair_init(&key);
	fx_client_opts_init(&o);
	o.log = log;
	if (fx_optfile_merge(argc, argv, &args, &d) != FX_OK) {
		fprintf(stderr, "submit: %s\n", d.msg);
		return 2;
	}
	optind = 1;
	while ((opt = getopt_long(args.argc, args.argv, "h", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case O_COORD: o.url = optarg; break;
		case O_CA: o.tls.ca_file = optarg; break;
		case O_SNI: o.tls.server_name = optarg; break;
		case O_PAYLOAD: payload = optarg; break;
		case O_ENVELOPE: env_path = optarg; break;
		case O_KEY: key_path = optarg; break;
		case O_PFILE: pfile = optarg; break;
		case O_PENV: penv = optarg; break;
		case O_RELEASE: release = optarg; break;
		case O_CONS: cons = optarg; break;
		case O_ADIGEST: adigest = optarg; break;
		case O_DOMAIN: domain = optarg; break;
		case O_SAVE: save = optarg; break;
		case O_SIGN_ONLY: sign_only = 1; break;
		case O_RECEIPT: receipt_out = optarg; break;
		case O_AVERSION:
			if (parse_u64("--anchor-version", optarg, 0, UINT64_MAX,
			              &aversion) != 0)
				goto usage_err;
			have_aversion = 1;
			break;
		case O_SEQ:
			if (parse_u64("--sequence", optarg, 1, UINT64_MAX, &seq) != 0)
				goto usage_err;
			break;
		case O_CHUNK:
			if (parse_u64("--chunk", optarg, 1, FX_WIRE_CHUNK_MAX, &v) != 0)
				goto usage_err;
			o.chunk = (size_t)v;
			break;
		case O_RATE:
			if (parse_u64("--max-rate", optarg, 0, UINT64_MAX,
			              &o.max_rate) != 0)
				goto usage_err;
			break;
		case O_TIMEOUT:
			if (parse_u64("--timeout-ms", optarg, 1, INT32_MAX, &v) != 0)
				goto usage_err;
			o.timeout_ms = (int)v;
			break;
		case O_RETRIES:
			if (parse_u64("--retries", optarg, 0, 1000000, &v) != 0)
				goto usage_err;
			o.retries = (int)v;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			goto usage_err;
		}
	}
	if (optind != args.argc || payload == NULL ||
	    (o.url == NULL && !sign_only)) {
		fprintf(stderr, "submit: --coordinator and --payload are required\n");
		goto usage_err;
	}
	if (sign_only && (save == NULL || env_path != NULL)) {
		fprintf(stderr, "submit: --sign-only needs --save-envelope and "
		                "no --envelope\n");
		goto usage_err;
	}
	if (env_path != NULL) {
		if (fx_read_file(env_path, FX_WIRE_ENVELOPE_MAX, &env, &env_len,
		                 &d) != FX_OK) {
			fprintf(stderr, "submit: envelope: %s\n", d.msg);
			goto out;
		}
	} else {
		fx_manifest_params p;
		if (key_path == NULL || domain == NULL || seq == 0 ||
		    (release == NULL &&
		     (cons == NULL || adigest == NULL || !have_aversion))) {
			fprintf(stderr, "submit: without --envelope: --key, --domain, "
			                "--sequence and --release (or --consortium, "
			                "--anchor-digest, --anchor-version)\n");
			goto usage_err;
		}
		if (release != NULL) {
			if (release_info(release, consortium, sizeof(consortium),
			                 digest, &aversion, &d) != FX_OK) {
				fprintf(stderr, "submit: release: %s\n", d.msg);
				goto out;
			}
		} else {
			snprintf(consortium, sizeof(consortium), "%s", cons);
			if (fx_hex_decode(digest, sizeof(digest), adigest, &d) !=
			    FX_OK) {
				fprintf(stderr, "submit: --anchor-digest: %s\n", d.msg);
				goto usage_err;
			}
		}
		if (fx_seckey_load_with(&key, key_path, pfile, penv, &d) != FX_OK) {
			fprintf(stderr, "submit: key %s: %s\n", key_path, d.msg);
			goto out;
		}
		p.consortium = consortium;
		p.anchor_digest = digest;
		p.anchor_version = aversion;
		p.domain = domain;
		p.sequence = seq;
		p.payload_path = payload;
		if (fx_manifest_seal(&p, &key, &env, &env_len, &d) != FX_OK) {
			fprintf(stderr, "submit: %s\n", d.msg);
			goto out;
		}
		fx_keypair_release(&key);
		if (save != NULL &&
		    fx_write_file_atomic(save, env, env_len, 0644, &d) != FX_OK) {
			fprintf(stderr, "submit: --save-envelope: %s\n", d.msg);
			goto out;
		}
		if (sign_only) {
			rc = 0;
			goto out;
		}
	}
	if (fx_client_open(&c, &o, &d) != FX_OK ||
	    fx_client_submit(c, env, env_len, payload, &r, &d) != FX_OK) {
		fprintf(stderr, "submit: %s\n", d.msg);
		goto out;
	}
	printf("%s: %s%s%s\n", decision_name(r.decision), r.gate,
	       r.reason[0] ? ": " : "", r.reason);
	printf("contribution %s\n",
	       fx_hex(hex, r.contribution_digest, FX_BLAKE2B_BYTES));
	if (r.receipt_len > 0)
		printf("ledger index %" PRIu64 ", receipt of %zu bytes\n",
		       r.ledger_index, r.receipt_len);
	if (r.resumes + r.rewinds > 0)
		fx_log(log, FX_INFO, "upload resumed %u time(s)",
		       r.resumes + r.rewinds);
	if (receipt_out != NULL) {
		if (r.receipt_len == 0) {
			fprintf(stderr, "submit: the verdict carries no receipt\n");
			goto out;
		}
		if (fx_write_file_atomic(receipt_out, r.receipt, r.receipt_len,
		                         0644, &d) != FX_OK) {
			fprintf(stderr, "submit: --receipt-out: %s\n", d.msg);
			goto out;
		}
	}
	rc = r.decision == FLEXO__V1__DECISION__DECISION_ACCEPTED ? 0 : 3;
	goto out;
usage_err:
	usage(stderr);
	rc = 2;
out:
	fx_client_close(c);
	fx_submit_result_release(&r);
	fx_keypair_release(&key);
	free(env);
	fx_optargs_release(&args);
	return rc;
}
