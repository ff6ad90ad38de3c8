/* `flexo-contributor download`: downloads the coordinator's current anchor
 * release in chunks into a local folder — release.bin first, then the files
 * its manifest names (anchor, tokenizer, r_pub) — each written atomically.
 * Verifying it is `fetch --verify --from DIR` (release.h). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "flexo/client.h"
#include "flexo/fsutil.h"
#include "flexo/optfile.h"
#include "flexo/release.h"
#include "flexo/wire.h"

#define FETCH_MAX_FILES 16
#define FETCH_FILE_MAX  (16ull << 30) /* largest file accepted */

/* Appends the file names the (not yet verified) manifest in path names.
 * Verification comes later; here the names only need to be plain. */
static fx_err listed_files(const char *path, char names[3][256], size_t *n,
                           fx_diag *d)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	Flexo__V1__Envelope *e = NULL;
	Flexo__V1__AnchorRelease *r = NULL;
	fx_err err;

	if ((err = fx_read_file(path, FX_WIRE_ENVELOPE_MAX, &buf, &len, d)) !=
	        FX_OK ||
	    (err = fx_envelope_open(buf, len, FX_TYPE_RELEASE, &e, d)) !=
	        FX_OK ||
	    (err = fx_wire_decode(&flexo__v1__anchor_release__descriptor,
	                          e->payload.data, e->payload.len,
	                          FX_WIRE_DOC_MAX, (ProtobufCMessage **)&r,
	                          d)) != FX_OK)
		goto out;
	*n = 0;
	snprintf(names[(*n)++], 256, "%s", r->anchor_file);
	snprintf(names[(*n)++], 256, "%s", r->tokenizer_file);
	if (r->router_pub_file != NULL && r->router_pub_file[0] != '\0')
		snprintf(names[(*n)++], 256, "%s", r->router_pub_file);
out:
	fx_wire_free(r ? &r->base : NULL);
	fx_wire_free(e ? &e->base : NULL);
	free(buf);
	return err;
}

static void usage(FILE *out)
{
	fprintf(
	    out,
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
	    "  --file NAME          fetch only these files (repeatable; "
	    "default: %s\n"
	    "                       and the files its manifest names)\n"
	    "  --timeout-ms N       per exchange (default %d)\n",
	    FX_RELEASE_FILE, FX_NET_TIMEOUT_MS);
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
	const char *files[FETCH_MAX_FILES] = {FX_RELEASE_FILE};
	char listed[3][256];
	size_t n_files = 1, n_given = 0;
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
		case 'c':
			o.url = optarg;
			break;
		case 'a':
			o.tls.ca_file = optarg;
			break;
		case 's':
			o.tls.server_name = optarg;
			break;
		case 'o':
			out_dir = optarg;
			break;
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
				fprintf(stderr,
				        "download: --timeout-ms wants a "
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
		fprintf(stderr,
		        "download: --coordinator and --out are required\n");
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
			fprintf(stderr, "download: bad file name '%s'\n",
			        files[i]);
			goto out;
		}
		if (fx_client_fetch(c, files[i], path, FETCH_FILE_MAX, &d) !=
		    FX_OK) {
			fprintf(stderr, "download: %s: %s\n", files[i], d.msg);
			goto out;
		}
		fx_log(log, FX_INFO, "fetched %s", path);
		if (n_given == 0 && i == 0) {
			size_t n = 0;
			if (listed_files(path, listed, &n, &d) != FX_OK) {
				fprintf(stderr, "download: %s: %s\n", path,
				        d.msg);
				goto out;
			}
			for (size_t k = 0; k < n; k++)
				files[n_files++] = listed[k];
		}
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
