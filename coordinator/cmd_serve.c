/* `flexo-coordinator serve`: runs the contribution endpoint (service.h) on
 * the given listeners until SIGINT/SIGTERM — uploads, release downloads,
 * admission. Options from --config FILE and flags (flags win). */
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	    "downloads, admission.\nAdmission here checks the signature of a "
	    "roster contributor and the payload\ndigest (no ledger).\n\n"
	    "  --config FILE          'name = value' lines for any option "
	    "below; flags win\n"
	    "  --listen URL           tls+tcp://HOST:PORT, tcp://HOST:PORT "
	    "or ipc:///PATH (repeatable, up to %d)\n"
	    "  --tls-cert FILE        PEM certificate (chain) for tls+tcp://\n"
	    "  --tls-key FILE         PEM private key for tls+tcp://\n"
	    "  --staging DIR          upload sessions (created 0700)\n"
	    "  --release DIR          release directory served by name "
	    "(optional)\n"
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
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	fx_service_config cfg;
	fx_service *svc = NULL;
	fx_roster roster;
	fx_optargs args = {0};
	const char *roster_path = NULL;
	uint8_t *env = NULL;
	size_t env_len = 0;
	uint64_t v;
	sigset_t sigs;
	fx_diag d = {{0}};
	int opt, sig = 0, rc = 1;

	fx_roster_init(&roster);
	fx_service_config_init(&cfg);
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
	cfg.admit = fx_admit_signed;
	cfg.precheck = fx_precheck_signed;
	cfg.ctx = &roster;
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
	fx_roster_release(&roster);
	free(env);
	fx_optargs_release(&args);
	return rc;
}
