/* flexo-bench train: how close a training step comes to this machine's own
 * sgemm. Measures cblas_sgemm GFLOP/s at exactly the matmul shapes one
 * training step issues, then whole training steps (forward, backward,
 * AdamW), and prints achieved/sgemm per preset; last line the ratio at
 * `wide`. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "flexo/cli.h"
#include "flexo/config.h"
#include "flexo/model.h"
#include "flexo/optim.h"

/* 12 weight shapes + 3 per attention block (T / FX_ATT_BLOCK blocks) */
#define MAX_SHAPES  (16 + 3 * (FX_MAX_SEQ / FX_ATT_BLOCK + 1))
#define MAX_PRESETS 8

static const char usage_text[] =
    "usage: flexo-bench train [options]\n"
    "\n"
    "Measures cblas_sgemm GFLOP/s at the matmul shapes of one training step,\n"
    "then training steps (forward + backward + AdamW) per second, and prints\n"
    "achieved GFLOP/s / sgemm GFLOP/s per preset. The last line is\n"
    "'train_mfu_vs_sgemm: <ratio at wide>'.\n"
    "\n"
    "options:\n"
    "  --presets LIST  comma-separated presets (default small,wide)\n"
    "  --batch B       sequences per step (default 8)\n"
    "  --seq T         tokens per sequence (default: the preset's max_seq)\n"
    "  --steps N       timed steps after one warm-up step (default 3);\n"
    "                  the fastest one counts (the cores are shared)\n"
    "  --threads N     OpenBLAS threads (default 2)\n"
    "  --experts E     experts per layer (default 1 = dense)\n"
    "  --top-k K       experts per token (default 1)\n"
    "  --seed S        weight seed (default 1)\n"
    "  -h, --help      this text\n";

typedef struct shape {
	int M, N, K;
	bool ta, tb;
	double count; /* calls per training step */
} shape;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void add(shape *s, int *n, int M, int N, int K, bool ta, bool tb,
                double count)
{
	if (*n >= MAX_SHAPES || M <= 0 || N <= 0 || K <= 0)
		return;
	s[*n] = (shape){M, N, K, ta, tb, count};
	(*n)++;
}

/* Every matmul of one training step, as model_forward.c/model_backward.c
 * issue them. Rows per expert: tokens * k / E (even routing). The router
 * matmuls (width E) are left out of both sides: negligible and not
 * sgemm-shaped. */
static int step_shapes(const fx_config *c, int B, int T, shape *s)
{
	int n = 0, N = B * T, d = c->d_model, F = c->d_ff, V = c->vocab_size;
	int L = c->n_layers, H = c->n_heads, hd = d / H;
	int E = c->n_experts;
	int R = N * c->top_k / E; /* rows per expert */
	double per = (double)L, att = (double)L * B * H;

	/* forward */
	add(s, &n, N, d, d, false, true, 4 * per);     /* q k v o */
	add(s, &n, R, F, d, false, true, 2 * per * E); /* gate up */
	add(s, &n, R, d, F, false, true, per * E);     /* down */
	add(s, &n, N, V, d, false, true, 1);           /* lm_head */
	/* backward: input gradients */
	add(s, &n, N, d, V, false, false, 1);
	add(s, &n, N, d, d, false, false, 4 * per);
	add(s, &n, R, F, d, false, false, per * E);     /* dA = dY down */
	add(s, &n, R, d, F, false, false, 2 * per * E); /* dX gate, up */
	/* backward: weight gradients */
	add(s, &n, V, d, N, true, false, 1);
	add(s, &n, d, d, N, true, false, 4 * per);
	add(s, &n, d, F, R, true, false, per * E);     /* down */
	add(s, &n, F, d, R, true, false, 2 * per * E); /* gate up */
	/* attention, per (sequence, head), per block of query rows r0..r1
	 * against keys 0..r1 (model_forward.c attention()) */
	for (int r0 = 0; r0 < T; r0 += FX_ATT_BLOCK) {
		int r1 = r0 + FX_ATT_BLOCK < T ? r0 + FX_ATT_BLOCK : T;
		int nr = r1 - r0;
		add(s, &n, nr, r1, hd, false, true, 2 * att);  /* q kᵀ, dP */
		add(s, &n, nr, hd, r1, false, false, 2 * att); /* P v, dQ */
		add(s, &n, r1, hd, nr, true, false, 2 * att);  /* dV, dK */
	}
	return n;
}

/* Seconds per call of one sgemm shape: repeated until 50 ms have passed. */
static double time_sgemm(const shape *s, float *a, float *b, float *c)
{
	int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
	int reps = 0;
	double t0, t;

	cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
	            s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K, 1.0f,
	            a, lda, b, ldb, 0.0f, c, s->N);
	t0 = now();
	do {
		cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
		            s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K,
		            1.0f, a, lda, b, ldb, 0.0f, c, s->N);
		reps++;
		t = now() - t0;
	} while (t < 0.05 || reps < 3);
	return t / reps;
}

/* Other processes share these cores, so sgemm and training steps are
 * timed interleaved (one sgemm pass before the first timed step and one
 * after each) and each keeps its best time: both sides are compared under
 * the least interference seen, and more passes only make the baseline
 * faster, never flattering the ratio. */
static void sgemm_pass(const shape *sh, int ns, double *best, float *a,
                       float *b, float *c)
{
	for (int i = 0; i < ns; i++) {
		double t = time_sgemm(&sh[i], a, b, c);
		best[i] = t < best[i] ? t : best[i];
	}
}

typedef struct result {
	double sgemm_gflops, step_flops, tokens_per_s, gflops, ratio, step_ms,
	    best_ms, loss, done_gflops, done_ratio;
} result;

static int bench_preset(const char *name, int B, int T_opt, int steps, int E,
                        int K, uint64_t seed, const fx_logger *log, result *r)
{
	fx_config c;
	fx_diag d = {{0}};
	fx_model m = {0};
	fx_adamw a = {0};
	fx_adamw_opts ao;
	shape sh[MAX_SHAPES];
	double best[MAX_SHAPES];
	int32_t *tok = NULL, *tgt = NULL;
	float *ba = NULL, *bb = NULL, *bc = NULL;
	size_t maxa = 0, maxb = 0, maxc = 0;
	double mm_time = 0, mm_flops = 0, t0;
	int ns, T, rc = 1;
	fx_loss loss;

	if (fx_config_preset(name, &c, &d) != FX_OK)
		goto fail;
	c.n_experts = E;
	c.top_k = K;
	if (fx_config_validate(&c, &d) != FX_OK)
		goto fail;
	T = T_opt > 0 ? T_opt : c.max_seq;

	/* 1. sgemm at the step's own shapes */
	ns = step_shapes(&c, B, T, sh);
	for (int i = 0; i < ns; i++) {
		size_t sa = (size_t)sh[i].M * sh[i].K,
		       sb = (size_t)sh[i].K * sh[i].N,
		       sc = (size_t)sh[i].M * sh[i].N;
		maxa = sa > maxa ? sa : maxa;
		maxb = sb > maxb ? sb : maxb;
		maxc = sc > maxc ? sc : maxc;
	}
	ba = malloc(maxa * sizeof(float));
	bb = malloc(maxb * sizeof(float));
	bc = malloc(maxc * sizeof(float));
	if (ba == NULL || bb == NULL || bc == NULL) {
		fx_diag_set(&d, FX_ENOMEM, "cannot allocate sgemm buffers");
		goto fail;
	}
	for (size_t i = 0; i < maxa; i++)
		ba[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
	for (size_t i = 0; i < maxb; i++)
		bb[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
	for (int i = 0; i < ns; i++)
		best[i] = 1e300;
	sgemm_pass(sh, ns, best, ba, bb, bc);

	/* 2. training steps */
	if (fx_model_init(&m, &c, true, &d) != FX_OK ||
	    fx_model_reserve(&m, B, T, &d) != FX_OK)
		goto fail;
	fx_model_init_weights(&m, seed);
	fx_adamw_defaults(&ao);
	ao.warmup_steps = 1;
	if (fx_adamw_init(&a, &m, &ao, &d) != FX_OK)
		goto fail;
	tok = malloc((size_t)B * T * sizeof(*tok));
	tgt = malloc((size_t)B * T * sizeof(*tgt));
	if (tok == NULL || tgt == NULL) {
		fx_diag_set(&d, FX_ENOMEM, "cannot allocate a batch");
		goto fail;
	}
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (int i = 0; i < B * T; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		tok[i] = (int32_t)(x % 256);
	}
	for (int i = 0; i < B * T; i++)
		tgt[i] = i + 1 < B * T ? tok[i + 1] : 0;
	if (fx_train_step(&m, &a, NULL, tok, tgt, B, T, NULL, &loss, NULL,
	                  &d) != FX_OK)
		goto fail;
	double dt = 0, dt_min = 1e300;
	for (int s = 0; s < steps; s++) {
		t0 = now();
		if (fx_train_step(&m, &a, NULL, tok, tgt, B, T, NULL, &loss,
		                  NULL, &d) != FX_OK)
			goto fail;
		t0 = now() - t0;
		dt += t0;
		dt_min = t0 < dt_min ? t0 : dt_min;
		sgemm_pass(sh, ns, best, ba, bb, bc);
	}

	for (int i = 0; i < ns; i++) {
		double f = 2.0 * sh[i].M * sh[i].N * sh[i].K;
		fx_log(log, FX_DEBUG,
		       "sgemm %c%c M=%d N=%d K=%d: %.1f GFLOP/s x %.0f calls",
		       sh[i].ta ? 'T' : 'N', sh[i].tb ? 'T' : 'N', sh[i].M,
		       sh[i].N, sh[i].K, f / best[i] * 1e-9, sh[i].count);
		mm_time += best[i] * sh[i].count;
		mm_flops += f * sh[i].count;
	}
	r->sgemm_gflops = mm_flops / mm_time * 1e-9;

	/* Analytic count: 6 FLOPs per matmul weight per token (forward 2,
	 * backward 4), plus attention 12*L*T*d per token (q kᵀ and P v, 2*T*d
	 * each forward, twice that backward, over the full T x T square). */
	double tokens = (double)B * T;
	double n_mm =
	    (double)c.n_layers * (4.0 * c.d_model * c.d_model +
	                          3.0 * c.d_model * c.d_ff * c.top_k) +
	    (double)c.vocab_size * c.d_model;
	double attn = 12.0 * c.n_layers * (double)T * c.d_model;
	r->step_flops = (6.0 * n_mm + attn) * tokens;
	r->step_ms = dt / steps * 1e3;
	r->best_ms = dt_min * 1e3;
	r->tokens_per_s = tokens / dt_min;
	r->gflops = r->step_flops / dt_min * 1e-9;
	r->ratio = r->gflops / r->sgemm_gflops;
	r->done_gflops = mm_flops / dt_min * 1e-9;
	r->done_ratio = r->done_gflops / r->sgemm_gflops;
	r->loss = loss.ce;
	printf("preset %s: d=%d L=%d H=%d d_ff=%d E=%d k=%d, B=%d T=%d, "
	       "%zu params\n",
	       name, c.d_model, c.n_layers, c.n_heads, c.d_ff, c.n_experts,
	       c.top_k, B, T, fx_config_param_count(&c));
	printf("  sgemm at the step's %d shapes (best of %d runs each): %.1f "
	       "GFLOP/s "
	       "(%.2f GFLOP per step)\n",
	       ns, steps + 1, r->sgemm_gflops, mm_flops * 1e-9);
	printf("  training: best %.1f ms/step (mean %.1f), %.0f tokens/s, "
	       "%.1f GFLOP/s (%.2f GFLOP counted per step), loss %.3f\n",
	       r->best_ms, r->step_ms, r->tokens_per_s, r->gflops,
	       r->step_flops * 1e-9, r->loss);
	printf("  achieved/sgemm: %.3f (counted FLOPs; on the FLOPs actually "
	       "performed, causal blocks skipped: %.1f GFLOP/s, %.3f)\n",
	       r->ratio, r->done_gflops, r->done_ratio);
	fflush(stdout);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "flexo-bench train: %s: %s\n", name, d.msg);
out:
	free(ba);
	free(bb);
	free(bc);
	free(tok);
	free(tgt);
	fx_adamw_release(&a);
	fx_model_release(&m);
	return rc;
}

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
	char *end;
	long x = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || x < lo || x > hi) {
		fprintf(stderr,
		        "flexo-bench train: %s '%s' is not an integer in "
		        "[%d, %d]\n",
		        opt, v, lo, hi);
		return 2;
	}
	*out = (int)x;
	return 0;
}

int cmd_train(int argc, char **argv, const fx_logger *log)
{
	char presets[256] = "small,wide";
	int B = 8, T = 0, steps = 3, threads = 2, E = 1, K = 1, seed = 1;
	const char *names[MAX_PRESETS];
	result res[MAX_PRESETS];
	int n = 0, wide = -1;

	if (fx_cli_wants_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int rc = 0;
		if (v == NULL) {
			fprintf(stderr,
			        "flexo-bench train: unknown option or "
			        "missing value: '%s'\n\n%s",
			        o, usage_text);
			return 2;
		}
		if (strcmp(o, "--presets") == 0)
			snprintf(presets, sizeof(presets), "%s", v);
		else if (strcmp(o, "--batch") == 0)
			rc = parse_int(o, v, 1, 4096, &B);
		else if (strcmp(o, "--seq") == 0)
			rc = parse_int(o, v, 1, FX_MAX_SEQ, &T);
		else if (strcmp(o, "--steps") == 0)
			rc = parse_int(o, v, 1, 1000, &steps);
		else if (strcmp(o, "--threads") == 0)
			rc = parse_int(o, v, 1, 256, &threads);
		else if (strcmp(o, "--experts") == 0)
			rc = parse_int(o, v, 1, FX_MAX_EXPERTS, &E);
		else if (strcmp(o, "--top-k") == 0)
			rc = parse_int(o, v, 1, FX_MAX_EXPERTS, &K);
		else if (strcmp(o, "--seed") == 0)
			rc = parse_int(o, v, 0, 1 << 30, &seed);
		else {
			fprintf(stderr,
			        "flexo-bench train: unknown option "
			        "'%s'\n\n%s",
			        o, usage_text);
			return 2;
		}
		if (rc != 0)
			return rc;
		i++;
	}
	for (char *p = strtok(presets, ","); p != NULL && n < MAX_PRESETS;
	     p = strtok(NULL, ","))
		names[n++] = p;
	if (n == 0) {
		fprintf(stderr, "flexo-bench train: --presets is empty\n");
		return 2;
	}
	fx_model_set_threads(threads);
	printf("flexo-bench train: %d OpenBLAS thread(s), %d timed steps "
	       "after 1 warm-up\n",
	       threads, steps);
	printf("FLOPs counted: 6 * matmul weights * tokens (q,k,v,o, expert "
	       "gate/up/down x top-k, lm_head; not the embedding lookup or "
	       "router) + 12 * L * T * d * tokens (attention, full T x T)\n");
	for (int i = 0; i < n; i++) {
		if (bench_preset(names[i], B, T, steps, E, K, (uint64_t)seed,
		                 log, &res[i]) != 0)
			return 1;
		if (strcmp(names[i], "wide") == 0)
			wide = i;
	}
	if (wide < 0) {
		fx_log(log, FX_WARN,
		       "preset wide not measured: the last line reports %s",
		       names[n - 1]);
		wide = n - 1;
	}
	printf("train_mfu_vs_sgemm: %.3f\n", res[wide].ratio);
	return 0;
}
