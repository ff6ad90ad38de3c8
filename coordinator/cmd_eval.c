/* `flexo-coordinator eval`: held-out bits-per-byte of model files on the
 * domain corpora — the served model as a whole and with each expert opted
 * out — as one table. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "flexo/cli.h"
#include "flexo/corpus.h"
#include "flexo/modelfile.h"
#include "flexo/safetensors.h"

#define CMD      "eval"
#define MAX_DOMS 16
#define MAX_MODELS 16

static const char usage_text[] =
    "usage: flexo-coordinator eval --corpus DIR [options] MODEL...\n"
    "\n"
    "Prints held-out bits/byte of each model file on DIR/<domain> for every\n"
    "domain, as a Markdown table. For a mixture-of-experts model it adds one\n"
    "row per expert with that expert opted out (its router logit masked).\n"
    "\n"
    "  --corpus DIR       folder of domain folders\n"
    "  --domains LIST     domains (default public,code,man,legal,lit)\n"
    "  --heldout F        held-out fraction, as in training (default 0.1)\n"
    "  --eval-tokens N    held-out bytes per domain, 0 = all (default 65536)\n"
    "  --no-opt-out       only the whole models\n"
    "  --threads N        OpenBLAS threads (default 2)\n";

static int split_list(const char *list, char names[][64], int max)
{
	int n = 0;
	const char *p = list;
	while (*p) {
		size_t len = strcspn(p, ",");
		if (len == 0 || len >= 64 || n == max)
			return -1;
		memcpy(names[n], p, len);
		names[n++][len] = '\0';
		p += len + (p[len] == ',');
	}
	return n;
}

/* Expert names of a merged model file: "public" then flexo.experts. */
static void expert_name(const fx_st_file *f, int e, char *out, size_t cap)
{
	const char *list = fx_st_meta_get(f, "flexo.experts");
	snprintf(out, cap, "expert %d", e);
	if (e == 0) {
		snprintf(out, cap, "public");
		return;
	}
	for (int i = 1; list != NULL && *list; i++) {
		size_t len = strcspn(list, ",");
		if (i == e) {
			snprintf(out, cap, "%.*s", (int)len, list);
			return;
		}
		list += len + (list[len] == ',');
	}
}

static void print_row(const char *name, const double *bpb, int n)
{
	printf("| %s |", name);
	for (int i = 0; i < n; i++)
		printf(" %.4f |", bpb[i]);
	printf("\n");
}

int cmd_eval(int argc, char **argv, const fx_logger *log)
{
	static const struct option longopts[] = {
	    {"corpus", required_argument, 0, 'c'},
	    {"domains", required_argument, 0, 'D'},
	    {"heldout", required_argument, 0, 'H'},
	    {"eval-tokens", required_argument, 0, 'E'},
	    {"no-opt-out", no_argument, 0, 'N'},
	    {"threads", required_argument, 0, 't'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	const char *corpus_dir = NULL;
	char domains[MAX_DOMS][64], path[4096], label[320], ename[64];
	int n_dom, opt, status = 1;
	int64_t eval_tokens = 65536, threads = 2;
	double heldout = 0.1, bpb[MAX_DOMS];
	bool opt_out = true;
	fx_corpus corpora[MAX_DOMS];
	fx_diag diag = {{0}};
	fx_err err = FX_OK;

	memset(corpora, 0, sizeof(corpora));
	n_dom = split_list("public,code,man,legal,lit", domains, MAX_DOMS);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int bad = 0;
		switch (opt) {
		case 'c': corpus_dir = optarg; break;
		case 'D':
			n_dom = split_list(optarg, domains, MAX_DOMS);
			if (n_dom <= 0) {
				fprintf(stderr, CMD ": bad --domains '%s'\n", optarg);
				bad = 1;
			}
			break;
		case 'H': bad = fx_cli_num(CMD, "--heldout", optarg, 0, 1, &heldout); break;
		case 'E': bad = fx_cli_int(CMD, "--eval-tokens", optarg, 0, INT64_MAX, &eval_tokens); break;
		case 'N': opt_out = false; break;
		case 't': bad = fx_cli_int(CMD, "--threads", optarg, 1, 64, &threads); break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
		if (bad)
			return 2;
	}
	if (corpus_dir == NULL || optind == argc || argc - optind > MAX_MODELS) {
		fprintf(stderr, CMD ": --corpus and 1..%d model files are "
		                "required\n", MAX_MODELS);
		fputs(usage_text, stderr);
		return 2;
	}
	fx_model_set_threads((int)threads);
	for (int d = 0; d < n_dom; d++) {
		snprintf(path, sizeof(path), "%s/%s", corpus_dir, domains[d]);
		err = fx_corpus_load(&corpora[d], path, heldout, &diag);
		if (err != FX_OK)
			goto fail;
	}
	printf("| model |");
	for (int d = 0; d < n_dom; d++)
		printf(" %s |", domains[d]);
	printf("\n|---|");
	for (int d = 0; d < n_dom; d++)
		printf("---:|");
	printf("\n");
	for (int i = optind; i < argc; i++) {
		fx_model m = {0};
		fx_st_file *f = NULL;
		const char *name = strrchr(argv[i], '/');
		name = name ? name + 1 : argv[i];
		err = fx_modelfile_load(&m, argv[i], false, &diag);
		if (err == FX_OK)
			err = fx_st_open(argv[i], &f, &diag);
		if (err == FX_OK)
			err = fx_model_reserve(&m, 8, m.cfg.max_seq, &diag);
		for (int e = -1; err == FX_OK && e < m.cfg.n_experts; e++) {
			uint64_t mask = e < 0 ? 0 : (uint64_t)1 << e;
			if (e == 0 || (e > 0 && !opt_out))
				continue;
			for (int d = 0; err == FX_OK && d < n_dom; d++)
				err = fx_corpus_bpb(&m, corpora[d].heldout,
				                    corpora[d].n_heldout, 8,
				                    m.cfg.max_seq, (size_t)eval_tokens,
				                    mask, &bpb[d], &diag);
			if (err != FX_OK)
				break;
			if (e < 0) {
				snprintf(label, sizeof(label), "%s (%d expert%s, "
				         "top-%d)", name, m.cfg.n_experts,
				         m.cfg.n_experts == 1 ? "" : "s",
				         m.cfg.top_k);
			} else {
				expert_name(f, e, ename, sizeof(ename));
				snprintf(label, sizeof(label), "%s, %s opted out",
				         name, ename);
			}
			print_row(label, bpb, n_dom);
			fflush(stdout);
		}
		fx_st_close(f);
		fx_model_release(&m);
		if (err != FX_OK) {
			fx_diag_prefix(&diag, "%s", argv[i]);
			goto fail;
		}
	}
	fx_log(log, FX_DEBUG, "evaluated %d models", argc - optind);
	status = 0;
	goto out;
fail:
	fprintf(stderr, CMD ": %s: %s\n", fx_strerror(err), diag.msg);
out:
	for (int d = 0; d < MAX_DOMS; d++)
		fx_corpus_release(&corpora[d]);
	return status;
}
