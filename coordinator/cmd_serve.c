/* `flexo-coordinator serve`: runs the contribution endpoint (service.h) on
 * the given listeners until SIGINT/SIGTERM — uploads, release downloads,
 * admission through every gate into the ledger (admission.h), withdrawals.
 * Options from --config FILE and flags (flags win). */
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admission.h"
#include "commands.h"
#include "flexo/admit.h"
#include "flexo/fsutil.h"
#include "flexo/optfile.h"
#include "flexo/roster.h"
#include "flexo/service.h"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: flexo-coordinator serve --listen URL [--listen URL ...] "
	    "--staging DIR --roster FILE [options]\n\n"
	    "Runs the contribution endpoint until SIGINT or SIGTERM: upload "
	    "sessions\n(chunked, resumable, per-contributor quota), release "
	    "downloads, admission through every gate (signature, roster, "
	    "anchor, replay,\npayload, finite, norms, public-loss, "
	    "routing-capture), each verdict logged\nin the ledger of --state "
	    "with a signed checkpoint and a receipt, the served\nmodel "
	    "re-assembled after each acceptance or withdrawal "
	    "(docs/operations.md).\n\n"
	    "  --config FILE          'name = value' lines for any option "
	    "below; flags win\n"
	    "  --listen URL           tls+tcp://HOST:PORT, tcp://HOST:PORT "
	    "or ipc:///PATH (repeatable, up to %d)\n"
	    "  --tls-cert FILE        PEM certificate (chain) for tls+tcp://\n"
	    "  --tls-key FILE         PEM private key for tls+tcp://\n"
	    "  --staging DIR          upload sessions (created 0700)\n"
	    "  --release DIR          the signed release, served by name and "
	    "gated against\n"
	    "  --state DIR            ledger.db, blobs/, "
	    "served/model.safetensors "
	    "(created)\n"
	    "  --key FILE             this coordinator's key (signs "
	    "checkpoints)\n"
	    "  --passphrase-file F    passphrase of a sealed --key\n"
	    "  --passphrase-env V     ... or from this environment variable\n"
	    "  --public DIR           public text; its held-out part feeds the "
	    "public gates\n"
	    "  --heldout F            held-out fraction of --public, as the "
	    "anchor's (0.1)\n"
	    "  --origin NAME          ledger origin (default "
	    "flexo/CONSORTIUM)\n"
	    "  --top-k N              experts per token of the served model "
	    "(0 = min(4, E))\n"
	    "  --threads N            BLAS threads for the gates (default 1)\n"
	    "  --max-ffn-norm-ratio X     norms gate: expert FFN / anchor FFN "
	    "(3)\n"
	    "  --max-router-norm-ratio X  norms gate: router row / r_pub row "
	    "(4)\n"
	    "  --max-public-loss-rise X   public-loss gate: fraction (0.02)\n"
	    "  --max-public-capture X     routing-capture gate: top-1 share "
	    "(0.5)\n"
	    "  --gate-eval-bytes N        public held-out bytes the gates use "
	    "(65536, 0 = all)\n"
	    "  --signature-only       no ledger, no model gates: signature and "
	    "payload digest\n"
	    "                         only (transport tests and benchmarks)\n"
	    "  --roster FILE          signed roster (verified against its own "
	    "roots)\n"
	    "  --quota BYTES          staged bytes per contributor (default "
	    "4G; K/M/G suffixes)\n"
	    "  --max-payload BYTES    largest payload (default 2G)\n"
	    "  --max-sessions N       sessions held at once (default 256)\n"
	    "  --checkpoint BYTES     bytes between durable checkpoints "
	    "(default 64M)\n"
	    "  --idle-expiry SECONDS  drop unfinished sessions idle this long "
	    "(default 86400)\n"
	    "  --contexts N           concurrent exchanges (default 32)\n"
	    "  --timeout-ms N         reply timeout (default %d)\n",
	    FX_SERVICE_MAX_URLS, FX_NET_TIMEOUT_MS);
}

/* Integer with an optional K/M/G (binary) suffix, >= min. */
static int parse_size(const char *flag, const char *s, uint64_t min,
                      uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;
	int shift = 0;

	if (s[0] < '0' || s[0] > '9')
		goto bad;
	v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	else if (*end == 'G' || *end == 'g')
		shift = 30, end++;
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)) ||
	    (v << shift) < min)
		goto bad;
	*out = (uint64_t)v << shift;
	return 0;
bad:
	fprintf(stderr,
	        "serve: %s wants a size >= %" PRIu64 " (K/M/G "
	        "suffixes allowed), not '%s'\n",
	        flag, min, s);
	return -1;
}

/* A real number >= 0 for the option with value `opt` in longopts. */
static int parse_real(const struct option *longopts, int opt, const char *s,
                      double *out)
{
	const char *name = "?";
	char *end = NULL;
	double v;

	for (const struct option *o = longopts; o->name != NULL; o++)
		if (o->val == opt)
			name = o->name;
	v = strtod(s, &end);
	if (end == s || *end != '\0' || !(v >= 0) || v > 1e6) {
		fprintf(stderr, "serve: --%s wants a number >= 0, not '%s'\n",
		        name, s);
		return -1;
	}
	*out = v;
	return 0;
}

int cmd_serve(int argc, char **argv, const fx_logger *log)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, 0, 'l'},
	    {"tls-cert", required_argument, 0, 'c'},
	    {"tls-key", required_argument, 0, 'k'},
	    {"staging", required_argument, 0, 's'},
	    {"release", required_argument, 0, 'r'},
	    {"roster", required_argument, 0, 'R'},
	    {"quota", required_argument, 0, 'q'},
	    {"max-payload", required_argument, 0, 'p'},
	    {"max-sessions", required_argument, 0, 'n'},
	    {"checkpoint", required_argument, 0, 'C'},
	    {"idle-expiry", required_argument, 0, 'e'},
	    {"contexts", required_argument, 0, 'x'},
	    {"timeout-ms", required_argument, 0, 't'},
	    {"state", required_argument, 0, 1000},
	    {"key", required_argument, 0, 1001},
	    {"passphrase-file", required_argument, 0, 1002},
	    {"passphrase-env", required_argument, 0, 1003},
	    {"public", required_argument, 0, 1004},
	    {"heldout", required_argument, 0, 1005},
	    {"origin", required_argument, 0, 1006},
	    {"top-k", required_argument, 0, 1007},
	    {"threads", required_argument, 0, 1008},
	    {"max-ffn-norm-ratio", required_argument, 0, 1009},
	    {"max-router-norm-ratio", required_argument, 0, 1010},
	    {"max-public-loss-rise", required_argument, 0, 1011},
	    {"max-public-capture", required_argument, 0, 1012},
	    {"gate-eval-bytes", required_argument, 0, 1013},
	    {"signature-only", no_argument, 0, 1014},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	fx_service_config cfg;
	fx_service *svc = NULL;
	fx_roster roster;
	fx_optargs args = {0};
	adm_config acfg;
	admission *adm = NULL;
	int signature_only = 0;
	double x;
	const char *roster_path = NULL;
	uint8_t *env = NULL;
	size_t env_len = 0;
	uint64_t v;
	sigset_t sigs;
	fx_diag d = {{0}};
	int opt, sig = 0, rc = 1;

	fx_roster_init(&roster);
	fx_service_config_init(&cfg);
	adm_config_init(&acfg);
	acfg.log = log;
	if (fx_optfile_merge(argc, argv, &args, &d) != FX_OK) {
		fprintf(stderr, "serve: %s\n", d.msg);
		return 2;
	}
	optind = 1;
	while ((opt = getopt_long(args.argc, args.argv, "h", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'l':
			if (cfg.n_urls == FX_SERVICE_MAX_URLS) {
				fprintf(stderr, "serve: at most %d --listen\n",
				        FX_SERVICE_MAX_URLS);
				rc = 2;
				goto out;
			}
			cfg.urls[cfg.n_urls++] = optarg;
			break;
		case 'c':
			cfg.tls.cert_file = optarg;
			break;
		case 'k':
			cfg.tls.key_file = optarg;
			break;
		case 's':
			cfg.staging_dir = optarg;
			break;
		case 'r':
			cfg.release_dir = optarg;
			break;
		case 'R':
			roster_path = optarg;
			break;
		case 'q':
		case 'p':
		case 'C':
			if (parse_size(opt == 'q'   ? "--quota"
			               : opt == 'p' ? "--max-payload"
			                            : "--checkpoint",
			               optarg, 1, &v) != 0) {
				rc = 2;
				goto out;
			}
			if (opt == 'q')
				cfg.limits.quota = v;
			else if (opt == 'p')
				cfg.limits.max_payload = v;
			else
				cfg.limits.checkpoint_every = v;
			break;
		case 'n':
		case 'e':
		case 'x':
		case 't':
			if (parse_size(opt == 'n'   ? "--max-sessions"
			               : opt == 'e' ? "--idle-expiry"
			               : opt == 'x' ? "--contexts"
			                            : "--timeout-ms",
			               optarg, 1, &v) != 0 ||
			    v > (opt == 'n'   ? FX_UPLOAD_MAX_SESSIONS
			         : opt == 'x' ? FX_SERVICE_MAX_CONTEXTS
			                      : (uint64_t)INT32_MAX)) {
				fprintf(stderr, "serve: value out of range\n");
				rc = 2;
				goto out;
			}
			if (opt == 'n')
				cfg.limits.max_sessions = (uint32_t)v;
			else if (opt == 'e')
				cfg.limits.idle_expiry = (int64_t)v;
			else if (opt == 'x')
				cfg.contexts = (int)v;
			else
				cfg.timeout_ms = (int)v;
			break;
		case 1000:
			acfg.state_dir = optarg;
			break;
		case 1001:
			acfg.key_path = optarg;
			break;
		case 1002:
			acfg.pass_file = optarg;
			break;
		case 1003:
			acfg.pass_env = optarg;
			break;
		case 1004:
			acfg.public_dir = optarg;
			break;
		case 1006:
			acfg.origin = optarg;
			break;
		case 1005:
		case 1009:
		case 1010:
		case 1011:
		case 1012:
			if (parse_real(longopts, opt, optarg, &x) != 0) {
				rc = 2;
				goto out;
			}
			if (opt == 1005)
				acfg.heldout_frac = x;
			else if (opt == 1009)
				acfg.limits.max_ffn_norm_ratio = x;
			else if (opt == 1010)
				acfg.limits.max_router_norm_ratio = x;
			else if (opt == 1011)
				acfg.limits.max_public_loss_rise = x;
			else
				acfg.limits.max_public_capture = x;
			break;
		case 1007:
		case 1008:
		case 1013:
			if (parse_size(opt == 1007   ? "--top-k"
			               : opt == 1008 ? "--threads"
			                             : "--gate-eval-bytes",
			               optarg, opt == 1008 ? 1 : 0, &v) != 0 ||
			    (opt != 1013 && v > 64)) {
				fprintf(stderr, "serve: value out of range\n");
				rc = 2;
				goto out;
			}
			if (opt == 1007)
				acfg.top_k = (int)v;
			else if (opt == 1008)
				acfg.threads = (int)v;
			else
				acfg.limits.eval_tokens = (size_t)v;
			break;
		case 1014:
			signature_only = 1;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (optind != args.argc || cfg.n_urls == 0 || cfg.staging_dir == NULL ||
	    roster_path == NULL) {
		fprintf(stderr, "serve: --listen, --staging and --roster are "
		                "required\n");
		usage(stderr);
		rc = 2;
		goto out;
	}
	if (fx_read_file(roster_path, FX_ROSTER_FILE_MAX, &env, &env_len, &d) !=
	        FX_OK ||
	    fx_roster_verify_initial(&roster, env, env_len, (int64_t)time(NULL),
	                             &d) != FX_OK) {
		fprintf(stderr, "serve: roster %s: %s\n", roster_path, d.msg);
		goto out;
	}
	/* Every chunk is a few MiB that nng, the decoder and the encoder
	 * allocate and free: keep such blocks in the heap instead of a fresh
	 * mmap (and 1024 page faults) each time. Peak memory is unchanged:
	 * it is bounded by the contexts, not by the payload. */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	/* One heap for nng's threads and the lanes: a block freed by one
	 * thread is reused by the next, so the peak does not grow with the
	 * number of threads a long upload happens to pass through. */
	mallopt(M_ARENA_MAX, 1);
	if (signature_only) {
		cfg.admit = fx_admit_signed;
		cfg.precheck = fx_precheck_signed;
		cfg.ctx = &roster;
		fx_log(log, FX_WARN,
		       "--signature-only: no ledger and no model gates");
	} else {
		acfg.release_dir = cfg.release_dir;
		acfg.roster_path = roster_path;
		if (acfg.state_dir == NULL || acfg.release_dir == NULL ||
		    acfg.key_path == NULL || acfg.public_dir == NULL) {
			fprintf(stderr,
			        "serve: admission needs --state, --release, "
			        "--key and --public (or --signature-only)\n");
			rc = 2;
			goto out;
		}
		if (admission_open(&adm, &acfg, &d) != FX_OK) {
			fprintf(stderr, "serve: %s\n", d.msg);
			goto out;
		}
		cfg.admit = admission_admit;
		cfg.precheck = admission_precheck;
		cfg.other = admission_request;
		cfg.ctx = adm;
	}
	cfg.log = log;
	/* Block the stop signals before nng starts its threads, so that they
	 * inherit the mask and only sigwait below sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (fx_service_start(&svc, &cfg, &d) != FX_OK) {
		fprintf(stderr, "serve: %s\n", d.msg);
		goto out;
	}
	for (size_t i = 0; i < cfg.n_urls; i++)
		fx_log(log, FX_INFO, "listening on %s", cfg.urls[i]);
	fx_log(log, FX_INFO, "consortium %s, roster v%" PRIu64 ", staging %s",
	       roster.consortium, roster.version, cfg.staging_dir);
	sigwait(&sigs, &sig);
	fx_log(log, FX_INFO, "signal %d: stopping", sig);
	rc = 0;
out:
	fx_service_stop(svc);
	admission_close(adm);
	fx_roster_release(&roster);
	free(env);
	fx_optargs_release(&args);
	return rc;
}
