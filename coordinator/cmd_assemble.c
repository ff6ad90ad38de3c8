/* `flexo-coordinator assemble`: anchor + public router rows + N expert files
 * -> one mixture-of-experts model file (DESIGN §2, "Merge"). Refuses any
 * expert that was not trained from this very anchor (its anchor_digest) or
 * whose shapes differ. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "flexo/cli.h"
#include "flexo/assemble.h"
#include "flexo/config.h"

#define CMD "assemble"

static const char usage_text[] =
    "usage: flexo-coordinator assemble --anchor FILE --router-pub FILE "
    "--out FILE\n"
    "                                  [--top-k K] EXPERT...\n"
    "\n"
    "Merges expert files into one mixture-of-experts model: expert 0 is the\n"
    "anchor's FFN with the public router row, expert i is the i-th file.\n"
    "Every expert must name this anchor's BLAKE2b-256 digest.\n"
    "\n"
    "  --anchor FILE      dense anchor model file\n"
    "  --router-pub FILE  public router rows of the anchor release\n"
    "  --out FILE         merged model file to write\n"
    "  --top-k K          experts per token at inference (default: min(4, E))\n";

int cmd_assemble(int argc, char **argv, const fx_logger *log)
{
	static const struct option longopts[] = {
	    {"anchor", required_argument, 0, 'a'},
	    {"router-pub", required_argument, 0, 'r'},
	    {"out", required_argument, 0, 'o'},
	    {"top-k", required_argument, 0, 'k'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	const char *anchor_path = NULL, *rp_path = NULL, *out_path = NULL;
	int64_t top_k = 0;
	uint8_t digest[FX_BLAKE2B_BYTES];
	char hex[2 * FX_BLAKE2B_BYTES + 1];
	fx_diag diag = {{0}};
	int opt, n;
	fx_err err;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'a': anchor_path = optarg; break;
		case 'r': rp_path = optarg; break;
		case 'o': out_path = optarg; break;
		case 'k':
			if (fx_cli_int(CMD, "--top-k", optarg, 1, FX_MAX_EXPERTS,
			               &top_k))
				return 2;
			break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	n = argc - optind;
	if (!anchor_path || !rp_path || !out_path || n < 1) {
		fprintf(stderr, CMD ": --anchor, --router-pub, --out and at least "
		                "one expert file are required\n");
		fputs(usage_text, stderr);
		return 2;
	}
	err = fx_assemble(anchor_path, rp_path, (const char *const *)argv + optind,
	                  n, (int)top_k, out_path, digest, &diag);
	if (err != FX_OK) {
		fprintf(stderr, CMD ": %s: %s\n", fx_strerror(err), diag.msg);
		return 1;
	}
	fx_log(log, FX_INFO, "merged the public expert and %d more: %s", n,
	       out_path);
	printf("%s  %s\n", fx_hex(hex, digest, sizeof(digest)), out_path);
	return 0;
}
