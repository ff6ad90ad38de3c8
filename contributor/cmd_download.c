/* `flexo-contributor download`: downloads the coordinator's current anchor
 * release directory (release.bin, the anchor, the tokenizer) in chunks
 * into a local folder, each file written atomically. Verification of the
 * downloaded release is the release module's (fetch --verify). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "flexo/client.h"
#include "flexo/fsutil.h"
#include "flexo/optfile.h"

#define FETCH_MAX_FILES 16
#define FETCH_FILE_MAX  (16ull << 30) /* largest file accepted */

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: flexo-contributor download --coordinator URL --out DIR "
	        "[options]\n\n"
	        "Downloads the anchor release from the coordinator into DIR, in "
	        "chunks, each\nfile written atomically.\n\n"
	        "  --config FILE        'name = value' lines for any option below\n"
	        "  --coordinator URL    tls+tcp://HOST:PORT, tcp://HOST:PORT or "
	        "ipc:///PATH\n"
	        "  --ca FILE            the one CA trusted for tls+tcp:// (PEM)\n"
	        "  --server-name NAME   name in the coordinator's certificate "
	        "(default localhost)\n"
	        "  --out DIR            destination (created)\n"
	        "  --file NAME          a file to fetch (repeatable; default "
	        "release.bin,\n"
	        "                       anchor.safetensors, tokenizer.json)\n"
	        "  --timeout-ms N       per exchange (default %d)\n",
	        FX_NET_TIMEOUT_MS);
}

int cmd_download(int argc, char **argv, const fx_logger *log)
{
	static const struct option longopts[] = {
	    {"coordinator", required_argument, 0, 'c'},
	    {"ca", required_argument, 0, 'a'},
	    {"server-name", required_argument, 0, 's'},
	    {"out", required_argument, 0, 'o'},
	    {"file", required_argument, 0, 'f'},
	    {"timeout-ms", required_argument, 0, 't'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	const char *files[FETCH_MAX_FILES] = {"release.bin", "anchor.safetensors",
	                                      "tokenizer.json"};
	size_t n_files = 3, n_given = 0;
	const char *out_dir = NULL;
	char path[FX_PATH_MAX + 1];
	fx_client_opts o;
	fx_client *c = NULL;
	fx_optargs args = {0};
	fx_diag d = {{0}};
	char *end;
	long t;
	int opt, rc = 1;

	fx_client_opts_init(&o);
	o.log = log;
	if (fx_optfile_merge(argc, argv, &args, &d) != FX_OK) {
		fprintf(stderr, "download: %s\n", d.msg);
		return 2;
	}
	optind = 1;
	while ((opt = getopt_long(args.argc, args.argv, "h", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'c': o.url = optarg; break;
		case 'a': o.tls.ca_file = optarg; break;
		case 's': o.tls.server_name = optarg; break;
		case 'o': out_dir = optarg; break;
		case 'f':
			if (n_given == FETCH_MAX_FILES) {
				fprintf(stderr, "download: at most %d --file\n",
				        FETCH_MAX_FILES);
				goto usage_err;
			}
			files[n_given++] = optarg;
			n_files = n_given;
			break;
		case 't':
			t = strtol(optarg, &end, 10);
			if (*end != '\0' || t < 1 || t > INT32_MAX) {
				fprintf(stderr, "download: --timeout-ms wants a "
				                "positive integer\n");
				goto usage_err;
			}
			o.timeout_ms = (int)t;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			goto usage_err;
		}
	}
	if (optind != args.argc || o.url == NULL || out_dir == NULL) {
		fprintf(stderr, "download: --coordinator and --out are required\n");
		goto usage_err;
	}
	if (fx_mkdir_p(out_dir, 0755, &d) != FX_OK ||
	    fx_client_open(&c, &o, &d) != FX_OK) {
		fprintf(stderr, "download: %s\n", d.msg);
		goto out;
	}
	for (size_t i = 0; i < n_files; i++) {
		if (strchr(files[i], '/') != NULL ||
		    snprintf(path, sizeof(path), "%s/%s", out_dir, files[i]) >=
		        (int)sizeof(path)) {
			fprintf(stderr, "download: bad file name '%s'\n", files[i]);
			goto out;
		}
		if (fx_client_fetch(c, files[i], path, FETCH_FILE_MAX, &d) !=
		    FX_OK) {
			fprintf(stderr, "download: %s: %s\n", files[i], d.msg);
			goto out;
		}
		fx_log(log, FX_INFO, "fetched %s", path);
	}
	rc = 0;
	goto out;
usage_err:
	usage(stderr);
	rc = 2;
out:
	fx_client_close(c);
	fx_optargs_release(&args);
	return rc;
}
