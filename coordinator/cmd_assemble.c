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
#include "flexo/expert.h"
#include "flexo/hash.h"
#include "flexo/modelfile.h"
#include "flexo/routerpub.h"

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
	fx_model anchor = {0}, merged = {0};
	fx_routerpub rp = {0};
	fx_expert *experts = NULL;
	const fx_expert **list = NULL;
	uint8_t digest[FX_BLAKE2B_BYTES];
	char hex[2 * FX_BLAKE2B_BYTES + 1], *names = NULL;
	fx_st_meta meta[2];
	fx_diag diag = {{0}};
	int opt, n = 0, status = 1;
	size_t names_len = 1;
	fx_err err = FX_OK;

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
	if (n + 1 > FX_MAX_EXPERTS) {
		fprintf(stderr, CMD ": %d experts; at most %d fit\n", n,
		        FX_MAX_EXPERTS - 1);
		return 2;
	}
	if (top_k > n + 1) {
		fprintf(stderr, CMD ": --top-k %" PRId64 " exceeds the %d experts\n",
		        top_k, n + 1);
		return 2;
	}
	if (top_k == 0)
		top_k = n + 1 < 4 ? n + 1 : 4;
	experts = calloc((size_t)n, sizeof(*experts));
	list = calloc((size_t)n, sizeof(*list));
	if (experts == NULL || list == NULL) {
		err = fx_diag_set(&diag, FX_ENOMEM, "expert table");
		goto fail;
	}
	err = fx_modelfile_load(&anchor, anchor_path, false, &diag);
	if (err == FX_OK)
		err = fx_blake2b_file(anchor_path, digest, NULL, &diag);
	if (err == FX_OK)
		err = fx_routerpub_load(&rp, rp_path, anchor.cfg.n_layers,
		                        anchor.cfg.d_model, &diag);
	if (err != FX_OK)
		goto fail;
	fx_hex(hex, digest, sizeof(digest));
	for (int i = 0; i < n; i++) {
		const char *path = argv[optind + i], *named, *domain;
		err = fx_expert_load(&experts[i], path, &diag);
		if (err != FX_OK)
			goto fail;
		named = fx_expert_meta(&experts[i], "anchor_digest");
		if (named == NULL || strcmp(named, hex) != 0) {
			err = fx_diag_set(&diag, FX_EMISMATCH,
			                  "expert %s was trained from anchor %.16s..., "
			                  "not from %s (%.16s...)",
			                  path, named ? named : "(unnamed)",
			                  anchor_path, hex);
			goto fail;
		}
		domain = fx_expert_meta(&experts[i], "domain");
		names_len += strlen(domain ? domain : "?") + 1;
		list[i] = &experts[i];
	}
	names = calloc(names_len, 1);
	if (names == NULL) {
		err = fx_diag_set(&diag, FX_ENOMEM, "expert names");
		goto fail;
	}
	for (int i = 0; i < n; i++) {
		const char *domain = fx_expert_meta(&experts[i], "domain");
		if (i > 0)
			strcat(names, ",");
		strcat(names, domain ? domain : "?");
	}
	err = fx_moe_build(&merged, &anchor, rp.rows, list, n, (int)top_k,
	                   false, &diag);
	if (err != FX_OK)
		goto fail;
	meta[0].key = "flexo.anchor_digest";
	meta[0].value = hex;
	meta[1].key = "flexo.experts";
	meta[1].value = names;
	err = fx_modelfile_save(&merged, out_path, meta, 2, &diag);
	if (err != FX_OK)
		goto fail;
	fx_log(log, FX_INFO, "merged %d experts (public,%s), top-%d: %s", n + 1,
	       names, (int)top_k, out_path);
	status = 0;
	goto out;
fail:
	fprintf(stderr, CMD ": %s: %s\n", fx_strerror(err), diag.msg);
out:
	for (int i = 0; experts != NULL && i < n; i++)
		fx_expert_release(&experts[i]);
	free(experts);
	free(list);
	free(names);
	fx_routerpub_release(&rp);
	fx_model_release(&anchor);
	fx_model_release(&merged);
	return status;
}
