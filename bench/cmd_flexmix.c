/* flexo-bench flexmix: the paper's table in miniature. From a trained
 * anchor and the domain corpora it computes r_pub, trains one expert per
 * closed domain (as contributors would), merges them, and evaluates held-out
 * bits-per-byte per domain for: the anchor, each 2-expert model, the merged
 * MoE (with and without router tuning), the merged MoE with each expert
 * opted out, the model soup and the prefix-weighted BTM ensemble. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "flexo/baselines.h"
#include "flexo/cli.h"
#include "flexo/corpus.h"
#include "flexo/embed.h"
#include "flexo/expert_train.h"
#include "flexo/fsutil.h"
#include "flexo/gates.h"
#include "flexo/modelfile.h"

#define CMD        "flexmix"
#define MAX_DOM    16
#define MAX_ROWS   64
#define NAME_MAX_  64

static const char usage_text[] =
    "usage: flexo-bench flexmix --anchor FILE --corpus DIR [options]\n"
    "\n"
    "Trains one expert per closed domain from the anchor, merges them, and\n"
    "prints held-out bits/byte per domain for the anchor, each 2-expert\n"
    "model, the merged model (with and without router tuning), the merged\n"
    "model with each expert opted out, the model soup and the BTM ensemble.\n"
    "Last line: 'flexmix_closed_gain_vs_anchor: <relative gain>'.\n"
    "\n"
    "  --anchor FILE        dense anchor (flexo model file)\n"
    "  --corpus DIR         DIR/public and DIR/<domain> document folders\n"
    "  --domains LIST       closed domains (default code,man,legal,lit)\n"
    "  --out DIR            where experts and table.md go (default: none)\n"
    "  --steps N            expert training steps (default 300)\n"
    "  --batch B            sequences per step (default 8)\n"
    "  --lr X               expert peak learning rate (default 1e-3)\n"
    "  --top-k K            experts per token in the merged model (default 2)\n"
    "  --also-top-k LIST    extra merged rows at these top-k values (e.g. 3,5)\n"
    "  --experts-from DIR   load DIR/expert-<domain>.safetensors instead of\n"
    "                       training (to vary merge-time settings only)\n"
    "  --embed MODE         shared | per-layer (default shared)\n"
    "  --router-norm X      L2 norm of every router row (default 1)\n"
    "  --bias-init X        initial expert router bias, <= 0 (default 0)\n"
    "  --public-mix R       rows of public text in every batch (default 0)\n"
    "  --mix-router-only    public rows train the router only, not the FFN\n"
    "  --router-lr-mult X   learning-rate multiplier of router rows and biases\n"
    "                       (default 1)\n"
    "  --anchor-decay X     pull of the expert FFN towards the anchor's per\n"
    "                       unit learning rate (default 0 = off)\n"
    "  --center             expert router rows from the domain mean minus the\n"
    "                       public mean (r_pub itself is not centred)\n"
    "  --z-loss X           router z-loss coefficient (default 1e-3)\n"
    "  --tune-steps N       router-tuning steps on public text (default 100)\n"
    "  --own-tune-steps N   also tune each expert's router row and bias alone\n"
    "                       on its own domain's training text (with the\n"
    "                       --public-mix rows), N steps a domain, the other\n"
    "                       rows frozen (default 0 = off; a diagnostic: it\n"
    "                       needs every domain's text in one place)\n"
    "  --embed-windows N    windows averaged per domain embedding (default 64)\n"
    "  --eval-tokens N      held-out bytes per domain and model, 0 = the whole\n"
    "                       held-out split (default 32768)\n"
    "  --no-btm             skip the ensemble (it costs N forward passes)\n"
    "  --threads N          OpenBLAS threads (default 2)\n"
    "  --seed N             seed (default 1)\n";

typedef struct flexmix {
	/* options */
	const char *anchor_path, *corpus_dir, *out_dir, *experts_from;
	int also_k[FX_MAX_EXPERTS];
	int n_also_k;
	char domains[MAX_DOM][NAME_MAX_];
	int n_dom;
	int64_t steps, batch, top_k, tune_steps, own_tune_steps, windows,
	    eval_tokens, threads, seed, mix_rows;
	double lr, norm, bias_init, z_loss, router_lr_mult, anchor_decay;
	fx_embed_mode mode;
	bool btm, mix_router_only, center;
	/* state */
	fx_model anchor;
	fx_corpus pub;
	fx_corpus dom[MAX_DOM];
	float *r_pub;
	float *pub_mean; /* (L, d) raw public mean: the centre with --center */
	fx_expert experts[MAX_DOM];
	/* results: rows x (public + domains) */
	char row_name[MAX_ROWS][NAME_MAX_ * 2];
	double bpb[MAX_ROWS][MAX_DOM + 1];
	int n_rows;
} flexmix;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_domains(flexmix *fm, const char *list)
{
	const char *p = list;
	fm->n_dom = 0;
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n == 0 || n >= NAME_MAX_ || fm->n_dom == MAX_DOM) {
			fprintf(stderr, CMD ": bad --domains '%s' (at most %d "
			                "names of 1..%d characters)\n",
			        list, MAX_DOM, NAME_MAX_ - 1);
			return -1;
		}
		memcpy(fm->domains[fm->n_dom], p, n);
		fm->domains[fm->n_dom++][n] = '\0';
		p += n + (p[n] == ',');
	}
	return fm->n_dom ? 0 : -1;
}

static int parse_k_list(flexmix *fm, const char *list)
{
	char item[16];
	const char *p = list;
	int64_t k;

	fm->n_also_k = 0;
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n == 0 || n >= sizeof(item) || fm->n_also_k == FX_MAX_EXPERTS)
			return -1;
		memcpy(item, p, n);
		item[n] = '\0';
		if (fx_cli_int(CMD, "--also-top-k", item, 1, FX_MAX_EXPERTS, &k))
			return -1;
		fm->also_k[fm->n_also_k++] = (int)k;
		p += n + (p[n] == ',');
	}
	return 0;
}

static int parse_args(flexmix *fm, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"anchor", required_argument, 0, 'a'},
	    {"corpus", required_argument, 0, 'c'},
	    {"domains", required_argument, 0, 'D'},
	    {"out", required_argument, 0, 'o'},
	    {"steps", required_argument, 0, 's'},
	    {"batch", required_argument, 0, 'b'},
	    {"lr", required_argument, 0, 'l'},
	    {"top-k", required_argument, 0, 'k'},
	    {"also-top-k", required_argument, 0, 'K'},
	    {"experts-from", required_argument, 0, 'F'},
	    {"embed", required_argument, 0, 'e'},
	    {"router-norm", required_argument, 0, 'n'},
	    {"bias-init", required_argument, 0, 'B'},
	    {"public-mix", required_argument, 0, 'm'},
	    {"z-loss", required_argument, 0, 'z'},
	    {"tune-steps", required_argument, 0, 'u'},
	    {"own-tune-steps", required_argument, 0, 'U'},
	    {"embed-windows", required_argument, 0, 'w'},
	    {"eval-tokens", required_argument, 0, 'E'},
	    {"no-btm", no_argument, 0, 'N'},
	    {"mix-router-only", no_argument, 0, 'R'},
	    {"router-lr-mult", required_argument, 0, 'M'},
	    {"anchor-decay", required_argument, 0, 'A'},
	    {"center", no_argument, 0, 'C'},
	    {"threads", required_argument, 0, 't'},
	    {"seed", required_argument, 0, 'S'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	int opt;

	fm->steps = 300;
	fm->batch = 8;
	fm->top_k = 2;
	fm->tune_steps = 100;
	fm->windows = 64;
	fm->eval_tokens = 32768;
	fm->threads = 2;
	fm->seed = 1;
	fm->lr = 1e-3;
	fm->norm = 1.0;
	fm->z_loss = 1e-3;
	fm->router_lr_mult = 1.0;
	fm->btm = true;
	parse_domains(fm, "code,man,legal,lit");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int bad = 0;
		switch (opt) {
		case 'a': fm->anchor_path = optarg; break;
		case 'c': fm->corpus_dir = optarg; break;
		case 'D': bad = parse_domains(fm, optarg); break;
		case 'o': fm->out_dir = optarg; break;
		case 's': bad = fx_cli_int(CMD, "--steps", optarg, 1, 1000000, &fm->steps); break;
		case 'b': bad = fx_cli_int(CMD, "--batch", optarg, 1, 4096, &fm->batch); break;
		case 'l': bad = fx_cli_num(CMD, "--lr", optarg, 0, 1, &fm->lr); break;
		case 'k': bad = fx_cli_int(CMD, "--top-k", optarg, 1, FX_MAX_EXPERTS, &fm->top_k); break;
		case 'K': bad = parse_k_list(fm, optarg); break;
		case 'F': fm->experts_from = optarg; break;
		case 'e':
			if (fx_embed_mode_parse(optarg, &fm->mode) != 0) {
				fprintf(stderr, CMD ": --embed is shared or per-layer\n");
				bad = -1;
			}
			break;
		case 'n': bad = fx_cli_num(CMD, "--router-norm", optarg, 1e-6, 1e6, &fm->norm); break;
		case 'B': bad = fx_cli_num(CMD, "--bias-init", optarg, -100, 0, &fm->bias_init); break;
		case 'm': bad = fx_cli_int(CMD, "--public-mix", optarg, 0, 4095, &fm->mix_rows); break;
		case 'z': bad = fx_cli_num(CMD, "--z-loss", optarg, 0, 10, &fm->z_loss); break;
		case 'u': bad = fx_cli_int(CMD, "--tune-steps", optarg, 0, 1000000, &fm->tune_steps); break;
		case 'U': bad = fx_cli_int(CMD, "--own-tune-steps", optarg, 0, 1000000, &fm->own_tune_steps); break;
		case 'w': bad = fx_cli_int(CMD, "--embed-windows", optarg, 1, 1000000, &fm->windows); break;
		case 'E': bad = fx_cli_int(CMD, "--eval-tokens", optarg, 0, INT64_MAX, &fm->eval_tokens); break;
		case 'N': fm->btm = false; break;
		case 'R': fm->mix_router_only = true; break;
		case 'M': bad = fx_cli_num(CMD, "--router-lr-mult", optarg, 1e-3, 1000, &fm->router_lr_mult); break;
		case 'C': fm->center = true; break;
		case 'A': bad = fx_cli_num(CMD, "--anchor-decay", optarg, 0, 1e6, &fm->anchor_decay); break;
		case 't': bad = fx_cli_int(CMD, "--threads", optarg, 1, 64, &fm->threads); break;
		case 'S': bad = fx_cli_int(CMD, "--seed", optarg, 0, INT64_MAX, &fm->seed); break;
		case 'h': fputs(usage_text, stdout); return 1;
		default: fputs(usage_text, stderr); return -1;
		}
		if (bad)
			return -1;
	}
	if (fm->anchor_path == NULL || fm->corpus_dir == NULL || optind != argc) {
		fprintf(stderr, CMD ": --anchor and --corpus are required\n");
		fputs(usage_text, stderr);
		return -1;
	}
	if (fm->mix_rows >= fm->batch) {
		fprintf(stderr, CMD ": --public-mix must be below --batch\n");
		return -1;
	}
	for (int i = 0; i < fm->n_also_k; i++)
		if (fm->also_k[i] > fm->n_dom + 1) {
			fprintf(stderr, CMD ": --also-top-k %d exceeds the %d "
			                "experts\n",
			        fm->also_k[i], fm->n_dom + 1);
			return -1;
		}
	if (fm->top_k > fm->n_dom + 1) {
		fprintf(stderr, CMD ": --top-k %" PRId64 " exceeds the %d experts\n",
		        fm->top_k, fm->n_dom + 1);
		return -1;
	}
	return 0;
}

/* Evaluates one model on public + every domain and stores a table row. */
static fx_err eval_row(flexmix *fm, const char *name, fx_model *m,
                       uint64_t disabled, fx_diag *diag)
{
	int r = fm->n_rows;
	int T = fm->anchor.cfg.max_seq;
	fx_err err;

	if (r == MAX_ROWS)
		return fx_diag_set(diag, FX_ETOOBIG, "too many table rows");
	snprintf(fm->row_name[r], sizeof(fm->row_name[r]), "%s", name);
	err = fx_model_reserve(m, (int)fm->batch, T, diag);
	for (int c = 0; err == FX_OK && c <= fm->n_dom; c++) {
		const fx_corpus *cp = c == 0 ? &fm->pub : &fm->dom[c - 1];
		err = fx_corpus_bpb(m, cp->heldout, cp->n_heldout, (int)fm->batch,
		                    T, (size_t)fm->eval_tokens, disabled,
		                    &fm->bpb[r][c], diag);
	}
	if (err != FX_OK)
		return err;
	fm->n_rows++;
	fprintf(stderr, "  %-28s public %.4f", name, fm->bpb[r][0]);
	for (int c = 1; c <= fm->n_dom; c++)
		fprintf(stderr, "  %s %.4f", fm->domains[c - 1], fm->bpb[r][c]);
	fputc('\n', stderr);
	return FX_OK;
}

/* Evaluates `m` as the row `name`, then with each expert opted out as
 * "<label>, <domain> opted out". */
static fx_err eval_opt_outs(flexmix *fm, const char *name, const char *label,
                            fx_model *m, fx_diag *diag)
{
	char row[128];
	fx_err err = eval_row(fm, name, m, 0, diag);

	for (int i = 0; err == FX_OK && i < fm->n_dom; i++) {
		snprintf(row, sizeof(row), "%s, %s opted out", label,
		         fm->domains[i]);
		err = eval_row(fm, row, m, (uint64_t)1 << (i + 1), diag);
	}
	return err;
}

/* Router tuning of a merged model (made with a gradient arena): only the
 * router rows in `rows` and the biases in `biases` (bit e = expert e)
 * move, for `steps` steps on `text`, with `mix_rows` of every batch
 * drawn from public text. */
static fx_err tune_router(flexmix *fm, fx_model *m, const fx_corpus *text,
                          int mix_rows, uint64_t rows, uint64_t biases,
                          int64_t steps, uint64_t seed, fx_diag *diag)
{
	fx_train_opts o;
	fx_train_report rep;

	fx_train_opts_defaults(&o, &m->cfg);
	o.batch = (int)fm->batch;
	o.steps = steps;
	o.adam.lr = (float)fm->lr;
	o.adam.lr_min = (float)fm->lr / 10;
	o.adam.warmup_steps = steps / 10;
	o.adam.weight_decay = 0;
	o.fwd.z_loss = (float)fm->z_loss;
	o.seed = seed;
	o.eval_every = 0;
	o.eval_tokens = (size_t)fm->eval_tokens;
	o.ckpt_every = 0;
	o.mix = mix_rows > 0 ? &fm->pub : NULL;
	o.mix_rows = mix_rows;
	memset(&o.freeze, 0, sizeof(o.freeze));
	o.freeze.embed = o.freeze.lm_head = o.freeze.final_norm = true;
	o.freeze.attn = o.freeze.qk_norm = true;
	o.freeze.post_attn_norm = o.freeze.post_ff_norm = true;
	o.freeze.experts = ~(uint64_t)0;
	o.freeze.router_rows = ~rows;
	o.freeze.router_bias = ~biases;
	return fx_train_run(m, text, &o, NULL, &rep, diag);
}

static double closed_avg(const flexmix *fm, int r)
{
	double s = 0;
	for (int c = 1; c <= fm->n_dom; c++)
		s += fm->bpb[r][c];
	return s / fm->n_dom;
}

static int find_row(const flexmix *fm, const char *name)
{
	for (int r = 0; r < fm->n_rows; r++)
		if (strcmp(fm->row_name[r], name) == 0)
			return r;
	return -1;
}

static void print_table(const flexmix *fm, FILE *out)
{
	fprintf(out, "| model | public |");
	for (int c = 0; c < fm->n_dom; c++)
		fprintf(out, " %s |", fm->domains[c]);
	fprintf(out, " closed avg |\n|---|---:|");
	for (int c = 0; c < fm->n_dom; c++)
		fprintf(out, "---:|");
	fprintf(out, "---:|\n");
	for (int r = 0; r < fm->n_rows; r++) {
		fprintf(out, "| %s | %.4f |", fm->row_name[r], fm->bpb[r][0]);
		for (int c = 1; c <= fm->n_dom; c++)
			fprintf(out, " %.4f |", fm->bpb[r][c]);
		fprintf(out, " %.4f |\n", closed_avg(fm, r));
	}
}

/* Share of the merged model's top-k slots each expert takes on each text
 * (public, then every domain), over all layers; with `own_out`, each
 * domain's text is routed with that domain's own expert opted out. */
static fx_err print_routes(flexmix *fm, fx_model *m, bool own_out,
                           FILE *out, fx_diag *diag)
{
	int L = m->cfg.n_layers, E = m->cfg.n_experts;
	uint64_t *counts = malloc((size_t)L * E * sizeof(*counts));
	fx_err err = FX_OK;

	if (counts == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "routing counters");
	fprintf(out, "\nrouting, merged top-%d%s: share of top-k slots over "
	             "all layers\n| text | public |",
	        m->cfg.top_k, own_out ? ", own expert opted out" : "");
	for (int e = 1; e < E; e++)
		fprintf(out, " %s |", fm->domains[e - 1]);
	fprintf(out, "\n|---|---:|");
	for (int e = 1; e < E; e++)
		fprintf(out, "---:|");
	fputc('\n', out);
	for (int c = 0; err == FX_OK && c <= fm->n_dom; c++) {
		const fx_corpus *cp = c == 0 ? &fm->pub : &fm->dom[c - 1];
		uint64_t off = own_out && c > 0 ? (uint64_t)1 << c : 0, all = 0;
		memset(counts, 0, (size_t)L * E * sizeof(*counts));
		err = fx_corpus_routes(m, cp->heldout, cp->n_heldout,
		                       (int)fm->batch, m->cfg.max_seq,
		                       (size_t)fm->eval_tokens, off, counts, diag);
		if (err != FX_OK)
			break;
		for (int i = 0; i < L * E; i++)
			all += counts[i];
		fprintf(out, "| %s |", c == 0 ? "public" : fm->domains[c - 1]);
		for (int e = 0; e < E; e++) {
			uint64_t mine = 0;
			for (int l = 0; l < L; l++)
				mine += counts[l * E + e];
			fprintf(out, " %.1f%% |",
			        all ? 100.0 * (double)mine / (double)all : 0.0);
		}
		fputc('\n', out);
	}
	free(counts);
	return err;
}

static fx_err load_all(flexmix *fm, const fx_logger *log, fx_diag *diag)
{
	char path[4096];
	fx_err err;

	err = fx_modelfile_load(&fm->anchor, fm->anchor_path, false, diag);
	if (err != FX_OK)
		return err;
	if (fm->anchor.cfg.n_experts != 1)
		return fx_diag_set(diag, FX_EINVAL, "%s is not a dense anchor",
		                   fm->anchor_path);
	snprintf(path, sizeof(path), "%s/public", fm->corpus_dir);
	err = fx_corpus_load(&fm->pub, path, 0.1, diag);
	for (int i = 0; err == FX_OK && i < fm->n_dom; i++) {
		snprintf(path, sizeof(path), "%s/%s", fm->corpus_dir,
		         fm->domains[i]);
		err = fx_corpus_load(&fm->dom[i], path, 0.1, diag);
		if (err == FX_OK)
			fx_log(log, FX_INFO,
			       "domain %s: %zu train docs, %zu held-out docs "
			       "(%zu tokens)",
			       fm->domains[i], fm->dom[i].docs_train,
			       fm->dom[i].docs_heldout, fm->dom[i].n_heldout);
	}
	return err;
}

/* Router rows of a corpus's training text, in the anchor's space: its
 * mean hidden state minus `center` (NULL: none), scaled to --router-norm.
 * The raw mean is copied to `raw` unless it is NULL. */
static fx_err domain_rows(flexmix *fm, const fx_corpus *c, uint64_t seed,
                          const float *center, float *raw, float *rows,
                          fx_diag *diag)
{
	int L = fm->anchor.cfg.n_layers, d = fm->anchor.cfg.d_model;
	float *mean = malloc((size_t)L * d * sizeof(float));
	fx_err err;

	if (mean == NULL)
		return FX_ENOMEM;
	err = fx_embed_mean(&fm->anchor, c->train, c->n_train, (int)fm->windows,
	                    fm->anchor.cfg.max_seq, seed, fm->mode, mean, diag);
	if (err == FX_OK && raw != NULL)
		memcpy(raw, mean, (size_t)L * d * sizeof(float));
	if (err == FX_OK)
		err = fx_embed_rows(mean, center, L, d, (float)fm->norm, rows,
		                    diag);
	free(mean);
	return err;
}

static double cosine(const float *a, const float *b, int d)
{
	double ab = 0, aa = 0, bb = 0;
	for (int j = 0; j < d; j++) {
		ab += (double)a[j] * b[j];
		aa += (double)a[j] * a[j];
		bb += (double)b[j] * b[j];
	}
	return ab / sqrt(aa * bb);
}

static fx_err run(flexmix *fm, const fx_logger *log, fx_diag *diag)
{
	int L, d, N = fm->n_dom;
	const fx_expert *list[MAX_DOM];
	fx_model pair[MAX_DOM], merged = {0}, tuned = {0}, own = {0}, soup = {0};
	fx_model *ens[MAX_DOM];
	float *r_init = NULL;
	char name[128], path[4096];
	double t0 = now_s(), t_train = 0, t_btm = 0, t_merged = 0;
	fx_err err;

	memset(pair, 0, sizeof(pair));
	err = load_all(fm, log, diag);
	if (err != FX_OK)
		goto out;
	L = fm->anchor.cfg.n_layers;
	d = fm->anchor.cfg.d_model;
	fm->r_pub = malloc((size_t)L * d * sizeof(float));
	r_init = malloc((size_t)L * d * sizeof(float));
	fm->pub_mean = malloc((size_t)L * d * sizeof(float));
	if (fm->r_pub == NULL || r_init == NULL || fm->pub_mean == NULL) {
		err = FX_ENOMEM;
		goto out;
	}
	err = domain_rows(fm, &fm->pub, (uint64_t)fm->seed, NULL, fm->pub_mean,
	                  fm->r_pub, diag);
	if (err != FX_OK)
		goto out;

	for (int i = 0; i < N; i++) {
		fx_expert_train_opts o;
		fx_train_report rep;

		if (fm->experts_from != NULL) {
			snprintf(path, sizeof(path), "%s/expert-%s.safetensors",
			         fm->experts_from, fm->domains[i]);
			err = fx_expert_load(&fm->experts[i], path, diag);
			if (err != FX_OK)
				goto out;
			list[i] = &fm->experts[i];
			continue;
		}
		err = domain_rows(fm, &fm->dom[i], (uint64_t)fm->seed + 1 + i,
		                  fm->center ? fm->pub_mean : NULL, NULL,
		                  r_init, diag);
		if (err != FX_OK)
			goto out;
		fx_log(log, FX_INFO,
		       "expert %s: cos(r_init, r_pub) = %.3f (layer 0)",
		       fm->domains[i], cosine(r_init, fm->r_pub, d));
		fx_expert_train_defaults(&o, &fm->anchor.cfg);
		o.train.batch = (int)fm->batch;
		o.train.steps = fm->steps;
		o.train.adam.lr = (float)fm->lr;
		o.train.adam.lr_min = (float)fm->lr / 10;
		o.train.adam.warmup_steps = fm->steps / 10;
		o.train.fwd.z_loss = (float)fm->z_loss;
		o.train.seed = (uint64_t)fm->seed + 100 + i;
		o.train.eval_tokens = (size_t)fm->eval_tokens;
		o.train.mix = fm->mix_rows ? &fm->pub : NULL;
		o.train.mix_rows = (int)fm->mix_rows;
		o.train.mix_router_only = fm->mix_router_only;
		o.train.adam.router_lr_mult = (float)fm->router_lr_mult;
		o.train.adam.expert_anchor_decay = (float)fm->anchor_decay;
		o.bias_init = (float)fm->bias_init;
		double ts = now_s();
		err = fx_expert_train(&fm->anchor, fm->r_pub, r_init, &fm->dom[i],
		                      &o, log, &fm->experts[i], &rep, diag);
		if (err != FX_OK)
			goto out;
		t_train += now_s() - ts;
		fx_log(log, FX_INFO,
		       "expert %s: %" PRId64 " steps in %.1f s, own held-out "
		       "%.4f bits/byte, bias layer 0 %.3f",
		       fm->domains[i], rep.steps_done, rep.seconds,
		       rep.heldout_bpb, (double)fm->experts[i].bias[0]);
		if (fm->out_dir != NULL) {
			snprintf(path, sizeof(path), "%s/expert-%s.safetensors",
			         fm->out_dir, fm->domains[i]);
			err = fx_expert_set_meta(&fm->experts[i], "domain",
			                         fm->domains[i], diag);
			if (err == FX_OK)
				err = fx_expert_save(&fm->experts[i], path, diag);
			if (err != FX_OK)
				goto out;
		}
		list[i] = &fm->experts[i];
	}

	/* What the coordinator's gates would measure on each expert. */
	for (int i = 0; i < N; i++) {
		fx_gate_limits g;
		fx_gate_report gr = {0};
		fx_gate_limits_defaults(&g);
		g.max_public_loss_rise = 1e9;
		g.max_public_capture = 1.0;
		g.max_ffn_norm_ratio = g.max_router_norm_ratio = 1e9;
		g.eval_tokens = (size_t)fm->eval_tokens;
		err = fx_gate_norms(&fm->anchor, fm->r_pub, list[i], &g, &gr, diag);
		if (err == FX_OK)
			err = fx_gate_public(&fm->anchor, fm->r_pub, list[i],
			                     fm->pub.heldout, fm->pub.n_heldout, -1,
			                     &g, &gr, diag);
		if (err != FX_OK)
			goto out;
		fx_log(log, FX_INFO,
		       "gates on %s: FFN norm x%.2f, router norm x%.2f, public "
		       "%.4f -> %.4f bits/byte, top-1 capture %.1f%%",
		       fm->domains[i], gr.worst_ffn_ratio, gr.worst_router_ratio,
		       gr.anchor_public_bpb, gr.expert_public_bpb,
		       100.0 * gr.public_capture);
	}
	fprintf(stderr, "held-out bits/byte:\n");
	err = eval_row(fm, "anchor", &fm->anchor, 0, diag);
	for (int i = 0; err == FX_OK && i < N; i++) {
		err = fx_moe_build(&pair[i], &fm->anchor, fm->r_pub, &list[i], 1,
		                   2, false, diag);
		snprintf(name, sizeof(name), "2-expert %s", fm->domains[i]);
		if (err == FX_OK)
			err = eval_row(fm, name, &pair[i], 0, diag);
		ens[i] = &pair[i];
	}
	if (err == FX_OK)
		err = fx_moe_build(&merged, &fm->anchor, fm->r_pub, list, N,
		                   (int)fm->top_k, true, diag);
	snprintf(name, sizeof(name), "merged (top-%d)", (int)fm->top_k);
	if (err == FX_OK) {
		double ts = now_s();
		err = eval_row(fm, name, &merged, 0, diag);
		t_merged = now_s() - ts;
	}
	for (int i = 0; err == FX_OK && i < N; i++) {
		snprintf(name, sizeof(name), "merged, %s opted out",
		         fm->domains[i]);
		err = eval_row(fm, name, &merged, (uint64_t)1 << (i + 1), diag);
	}
	for (int j = 0; err == FX_OK && j < fm->n_also_k; j++) {
		fx_model other = {0};
		err = fx_moe_build(&other, &fm->anchor, fm->r_pub, list, N,
		                   fm->also_k[j], false, diag);
		snprintf(name, sizeof(name), "merged (top-%d)", fm->also_k[j]);
		if (err == FX_OK)
			err = eval_row(fm, name, &other, 0, diag);
		fx_model_release(&other);
	}
	if (err == FX_OK && fm->tune_steps > 0) {
		/* The paper's router tuning: every row on public text. */
		err = fx_model_init(&tuned, &merged.cfg, true, diag);
		if (err == FX_OK)
			err = fx_model_copy_params(&tuned, &merged, diag);
		if (err == FX_OK)
			err = tune_router(fm, &tuned, &fm->pub, 0, ~(uint64_t)0, 0,
			                  fm->tune_steps, (uint64_t)fm->seed + 999,
			                  diag);
		snprintf(name, sizeof(name), "merged + router tuning (top-%d)",
		         (int)fm->top_k);
		if (err == FX_OK)
			err = eval_opt_outs(fm, name, "tuned", &tuned, diag);
	}
	if (err == FX_OK && fm->own_tune_steps > 0) {
		/* Each expert's row and bias alone, on its own domain's
		 * training text (plus the public rows of expert training),
		 * against every other row of the merged router, one domain
		 * after the other. */
		err = fx_model_init(&own, &merged.cfg, true, diag);
		if (err == FX_OK)
			err = fx_model_copy_params(&own, &merged, diag);
		for (int i = 0; err == FX_OK && i < N; i++) {
			uint64_t e = (uint64_t)1 << (i + 1);
			err = tune_router(fm, &own, &fm->dom[i], (int)fm->mix_rows,
			                  e, e, fm->own_tune_steps,
			                  (uint64_t)fm->seed + 1999 + i, diag);
		}
		snprintf(name, sizeof(name),
		         "merged + own-text row tuning (top-%d)", (int)fm->top_k);
		if (err == FX_OK)
			err = eval_opt_outs(fm, name, "own-tuned", &own, diag);
	}
	if (err == FX_OK)
		err = fx_soup_build(&soup, &fm->anchor, list, N, diag);
	if (err == FX_OK)
		err = eval_row(fm, "model soup", &soup, 0, diag);
	if (err == FX_OK && fm->btm) {
		int r = fm->n_rows;
		int T = fm->anchor.cfg.max_seq;
		double ts = now_s();
		snprintf(fm->row_name[r], sizeof(fm->row_name[r]),
		         "BTM ensemble (%d models)", N);
		for (int c = 0; err == FX_OK && c <= N; c++) {
			const fx_corpus *cp = c == 0 ? &fm->pub : &fm->dom[c - 1];
			err = fx_btm_bpb(ens, N, cp->heldout, cp->n_heldout,
			                 (int)fm->batch, T, (size_t)fm->eval_tokens,
			                 &fm->bpb[r][c], diag);
		}
		if (err == FX_OK)
			fm->n_rows++;
		t_btm = now_s() - ts;
	}
	if (err != FX_OK)
		goto out;

	printf("\nflexmix: anchor %s, %d domains, %" PRId64 " expert steps, "
	       "batch %" PRId64 ", lr %g, top-%" PRId64 ", embed %s, router "
	       "norm %g, bias init %g, public mix %" PRId64 "%s, router lr x%g, anchor decay %g%s, z-loss %g, "
	       "router tuning %" PRId64 " steps, own-text row tuning %" PRId64
	       " steps\n\n",
	       fm->anchor_path, N, fm->steps, fm->batch, fm->lr, fm->top_k,
	       fm->mode == FX_EMBED_SHARED ? "shared" : "per-layer", fm->norm,
	       fm->bias_init, fm->mix_rows,
	       fm->mix_router_only ? " (router only)" : "",
	       fm->router_lr_mult, fm->anchor_decay,
	       fm->center ? ", centred rows" : "", fm->z_loss,
	       fm->tune_steps, fm->own_tune_steps);
	print_table(fm, stdout);
	err = print_routes(fm, &merged, false, stdout, diag);
	if (err == FX_OK)
		err = print_routes(fm, &merged, true, stdout, diag);
	if (err != FX_OK)
		goto out;
	printf("\nexpert training %.1f s total; merged evaluation %.1f s; "
	       "BTM evaluation %.1f s (%d forward passes per token); wall "
	       "%.1f s\n",
	       t_train, t_merged, t_btm, N, now_s() - t0);
	if (fm->out_dir != NULL) {
		FILE *f;
		snprintf(path, sizeof(path), "%s/table.md", fm->out_dir);
		f = fopen(path, "w");
		if (f != NULL) {
			print_table(fm, f);
			fclose(f);
		}
	}
	{
		int a = find_row(fm, "anchor");
		snprintf(name, sizeof(name), "merged (top-%d)", (int)fm->top_k);
		int m = find_row(fm, name);
		printf("flexmix_closed_gain_vs_anchor: %.4f\n",
		       1.0 - closed_avg(fm, m) / closed_avg(fm, a));
	}
out:
	for (int i = 0; i < N; i++)
		fx_model_release(&pair[i]);
	fx_model_release(&merged);
	fx_model_release(&tuned);
	fx_model_release(&own);
	fx_model_release(&soup);
	free(r_init);
	return err;
}

int cmd_flexmix(int argc, char **argv, const fx_logger *log)
{
	flexmix *fm = calloc(1, sizeof(*fm));
	fx_diag diag = {{0}};
	int status = 1, rc;
	fx_err err;

	if (fm == NULL)
		return 1;
	rc = parse_args(fm, argc, argv);
	if (rc != 0) {
		status = rc > 0 ? 0 : 2;
		goto out;
	}
	fx_model_set_threads((int)fm->threads);
	if (fm->out_dir != NULL && (err = fx_mkdir_p(fm->out_dir, 0755, &diag)))
		goto fail;
	err = run(fm, log, &diag);
	if (err == FX_OK) {
		status = 0;
		goto out;
	}
fail:
	fprintf(stderr, CMD ": %s: %s\n", fx_strerror(err), diag.msg);
out:
	fx_model_release(&fm->anchor);
	fx_corpus_release(&fm->pub);
	for (int i = 0; i < MAX_DOM; i++) {
		fx_corpus_release(&fm->dom[i]);
		fx_expert_release(&fm->experts[i]);
	}
	free(fm->r_pub);
	free(fm->pub_mean);
	free(fm);
	return status;
}
