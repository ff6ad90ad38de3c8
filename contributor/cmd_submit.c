/* `flexo-contributor submit`: uploads an expert payload under its signed
 * contribution manifest (made by `manifest`) to the coordinator, in chunks
 * with resume, waits for the verdict and prints it. Options from --config
 * FILE and flags (flags win). */
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "flexo/client.h"
#include "flexo/fsutil.h"
#include "flexo/optfile.h"
#include "flexo/wire.h"
#include "ledger_local.h"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: flexo-contributor submit --coordinator URL --envelope FILE "
	    "--payload FILE\n         [options]\n\n"
	    "Uploads the expert payload under its signed contribution "
	    "manifest (from\n'flexo-contributor manifest') and waits for the "
	    "coordinator's verdict.\nA dropped connection or a coordinator "
	    "restart is resumed from the bytes\nthe coordinator acknowledged. "
	    "Prints the verdict and the contribution\ndigest. Exit status: 0 "
	    "accepted, 3 rejected, 1 error, 2 usage.\n\n"
	    "  --config FILE          'name = value' lines for any option "
	    "below; flags win\n"
	    "  --coordinator URL      tls+tcp://HOST:PORT, tcp://HOST:PORT or "
	    "ipc:///PATH\n"
	    "  --ca FILE              the one CA trusted for tls+tcp:// (PEM)\n"
	    "  --server-name NAME     name in the coordinator's certificate "
	    "(default localhost)\n"
	    "  --envelope FILE        the signed contribution manifest\n"
	    "  --payload FILE         the expert safetensors it describes\n"
	    "  --receipt-out FILE     write the receipt carried by the "
	    "verdict\n"
	    "  --state DIR            the state of 'fetch': the receipt is "
	    "verified against\n"
	    "                         its roster's coordinator keys and the "
	    "verdict recorded\n"
	    "                         in DIR/submissions (for 'status')\n"
	    "  --log-origin NAME      the ledger's origin (default "
	    "flexo/CONSORTIUM)\n"
	    "  --chunk BYTES          chunk size (default %u)\n"
	    "  --max-rate BYTES       bandwidth limit per second (default "
	    "none)\n"
	    "  --timeout-ms N         per exchange (default %d)\n"
	    "  --retries N            failures in a row before giving up "
	    "(default 30)\n",
	    FX_WIRE_CHUNK_MAX, FX_NET_TIMEOUT_MS);
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

static const char *decision_name(int d)
{
	return d == FLEXO__V1__DECISION__DECISION_ACCEPTED   ? "accepted"
	       : d == FLEXO__V1__DECISION__DECISION_REJECTED ? "rejected"
	                                                     : "undecided";
}

int cmd_submit(int argc, char **argv, const fx_logger *log)
{
	enum {
		O_COORD = 1,
		O_CA,
		O_SNI,
		O_PAYLOAD,
		O_ENVELOPE,
		O_RECEIPT,
		O_CHUNK,
		O_RATE,
		O_TIMEOUT,
		O_RETRIES,
		O_STATE,
		O_ORIGIN,
	};
	static const struct option longopts[] = {
	    {"coordinator", required_argument, 0, O_COORD},
	    {"ca", required_argument, 0, O_CA},
	    {"server-name", required_argument, 0, O_SNI},
	    {"payload", required_argument, 0, O_PAYLOAD},
	    {"envelope", required_argument, 0, O_ENVELOPE},
	    {"receipt-out", required_argument, 0, O_RECEIPT},
	    {"chunk", required_argument, 0, O_CHUNK},
	    {"max-rate", required_argument, 0, O_RATE},
	    {"timeout-ms", required_argument, 0, O_TIMEOUT},
	    {"retries", required_argument, 0, O_RETRIES},
	    {"state", required_argument, 0, O_STATE},
	    {"log-origin", required_argument, 0, O_ORIGIN},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	const char *payload = NULL, *env_path = NULL, *receipt_out = NULL;
	const char *state = NULL, *origin = NULL;
	char rmsg[512];
	uint8_t *env = NULL;
	char hex[2 * FX_BLAKE2B_BYTES + 1];
	size_t env_len = 0;
	uint64_t v;
	fx_client_opts o;
	fx_client *c = NULL;
	fx_submit_result r;
	fx_optargs args = {0};
	fx_diag d = {{0}};
	int opt, rc = 1;

	memset(&r, 0, sizeof(r));
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
		case O_COORD:
			o.url = optarg;
			break;
		case O_CA:
			o.tls.ca_file = optarg;
			break;
		case O_SNI:
			o.tls.server_name = optarg;
			break;
		case O_PAYLOAD:
			payload = optarg;
			break;
		case O_ENVELOPE:
			env_path = optarg;
			break;
		case O_RECEIPT:
			receipt_out = optarg;
			break;
		case O_CHUNK:
			if (parse_u64("--chunk", optarg, 1, FX_WIRE_CHUNK_MAX,
			              &v) != 0)
				goto usage_err;
			o.chunk = (size_t)v;
			break;
		case O_RATE:
			if (parse_u64("--max-rate", optarg, 0, UINT64_MAX,
			              &o.max_rate) != 0)
				goto usage_err;
			break;
		case O_TIMEOUT:
			if (parse_u64("--timeout-ms", optarg, 1, INT32_MAX,
			              &v) != 0)
				goto usage_err;
			o.timeout_ms = (int)v;
			break;
		case O_RETRIES:
			if (parse_u64("--retries", optarg, 0, 1000000, &v) != 0)
				goto usage_err;
			o.retries = (int)v;
			break;
		case O_STATE:
			state = optarg;
			break;
		case O_ORIGIN:
			origin = optarg;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			goto usage_err;
		}
	}
	if (optind != args.argc || o.url == NULL || payload == NULL ||
	    env_path == NULL) {
		fprintf(stderr,
		        "submit: --coordinator, --envelope and --payload "
		        "are required\n");
		goto usage_err;
	}
	if (fx_read_file(env_path, FX_WIRE_ENVELOPE_MAX, &env, &env_len, &d) !=
	    FX_OK) {
		fprintf(stderr, "submit: envelope: %s\n", d.msg);
		goto out;
	}
	/* Chunk buffers: reuse heap blocks rather than mmap each (see serve).
	 */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
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
	if (state != NULL) {
		if (r.receipt_len == 0) {
			printf("receipt: none (the verdict is not logged)\n");
		} else if (receipt_check(state, origin, r.receipt,
		                         r.receipt_len, rmsg, sizeof(rmsg),
		                         &d) == FX_OK) {
			printf("receipt: verified: %s\n", rmsg);
		} else {
			printf("receipt: NOT verified: %s\n", d.msg);
			goto out;
		}
		if (record_append(state, "contribution", r.contribution_digest,
		                  decision_name(r.decision), r.gate,
		                  r.ledger_index, &d) != FX_OK) {
			fprintf(stderr, "submit: %s\n", d.msg);
			goto out;
		}
	}
	if (r.resumes + r.rewinds > 0)
		fx_log(log, FX_INFO, "upload resumed %u time(s)",
		       r.resumes + r.rewinds);
	if (receipt_out != NULL) {
		if (r.receipt_len == 0) {
			fprintf(stderr,
			        "submit: the verdict carries no receipt\n");
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
	free(env);
	fx_optargs_release(&args);
	return rc;
}
