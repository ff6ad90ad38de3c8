/* The model-side admission gates: a benign expert passes; oversized
 * weights fail the norm gate; a router row aimed at every token fails the
 * routing-capture gate; a poisoned FFN fails the public-loss gate. */
#include <stdio.h>
#include <stdlib.h>

#include "flexo/embed.h"
#include "flexo/fsutil.h"
#include "flexo/gates.h"
#include "flexo/trainer.h"
#include "fx_test.h"

static char dir[256];
static fx_model anchor;
static fx_corpus pub;
static float *r_pub;
static double benign_capture = 1.0;

#define MAX_LAYERS 16

/* A tiny anchor that has learnt some structure from repetitive text. */
static void setup(void)
{
	static const char *const words[] = {"alpha ", "beta ", "gamma ",
	                                    "delta. ", "and ", "the "};
	char path[512], text[2048];
	fx_config cfg;
	fx_train_opts o;
	fx_rng r;
	int L, d;

	fx_rng_seed(&r, 3);
	snprintf(path, sizeof(path), "%s/pub", dir);
	CHECK_OK(fx_mkdir_p(path, 0755, NULL));
	for (int i = 0; i < 40; i++) {
		size_t n = 0;
		while (n < sizeof(text) - 16) {
			const char *w = words[fx_rng_below(&r, 6)];
			memcpy(text + n, w, strlen(w));
			n += strlen(w);
		}
		snprintf(path, sizeof(path), "%s/pub/d%02d.txt", dir, i);
		CHECK_OK(fx_write_file_atomic(path, text, n, 0644, NULL));
	}
	snprintf(path, sizeof(path), "%s/pub", dir);
	CHECK_OK(fx_corpus_load(&pub, path, 0.2, NULL));
	CHECK_OK(fx_config_preset("tiny", &cfg, NULL));
	CHECK_OK(fx_model_init(&anchor, &cfg, true, NULL));
	fx_model_init_weights(&anchor, 1);
	fx_train_opts_defaults(&o, &cfg);
	o.batch = 4;
	o.steps = 150;
	o.adam.lr = 1e-2f;
	o.adam.warmup_steps = 10;
	o.eval_every = 0;
	o.ckpt_every = 0;
	o.eval_tokens = 2048;
	CHECK_OK(fx_train_run(&anchor, &pub, &o, NULL, NULL, NULL));
	L = cfg.n_layers;
	d = cfg.d_model;
	r_pub = malloc((size_t)L * d * sizeof(float));
	{
		float *mean = malloc((size_t)L * d * sizeof(float));
		CHECK_OK(fx_embed_mean(&anchor, pub.train, pub.n_train, 16, 32,
		                       1, FX_EMBED_PER_LAYER, mean, NULL));
		CHECK_OK(fx_embed_rows(mean, NULL, L, d, 1.0f, r_pub, NULL));
		free(mean);
	}
}

/* An expert that is the anchor's FFN with router row `row`, bias `bias`. */
static void copy_expert(fx_expert *x, const float *row, float bias)
{
	size_t fd = (size_t)anchor.cfg.d_ff * anchor.cfg.d_model;
	CHECK_OK(fx_expert_init(x, &anchor.cfg, NULL));
	for (int l = 0; l < anchor.cfg.n_layers; l++) {
		memcpy(x->gate + l * fd, anchor.layers[l].gate[0], fd * 4);
		memcpy(x->up + l * fd, anchor.layers[l].up[0], fd * 4);
		memcpy(x->down + l * fd, anchor.layers[l].down[0], fd * 4);
		memcpy(x->router + (size_t)l * anchor.cfg.d_model,
		       row + (size_t)l * anchor.cfg.d_model,
		       (size_t)anchor.cfg.d_model * 4);
		x->bias[l] = bias;
	}
}

static fx_gate_limits limits(void)
{
	fx_gate_limits g;
	fx_gate_limits_defaults(&g);
	g.eval_tokens = 4096;
	g.batch = 4;
	return g;
}

static void test_benign_passes(void)
{
	fx_expert x;
	fx_gate_limits g = limits();
	fx_gate_report rep = {0};
	fx_diag diag = {{0}};

	/* Its own row is the public row turned away: a domain elsewhere. */
	float *row = malloc((size_t)anchor.cfg.n_layers * anchor.cfg.d_model * 4);
	for (int i = 0; i < anchor.cfg.n_layers * anchor.cfg.d_model; i++)
		row[i] = -r_pub[i];
	copy_expert(&x, row, -1.0f);
	CHECK_MSG(fx_gate_norms(&anchor, r_pub, &x, &g, &rep, &diag) == FX_OK,
	          "%s", diag.msg);
	CHECK_MSG(fx_gate_public(&anchor, r_pub, &x, pub.heldout, pub.n_heldout,
	                         -1, &g, &rep, &diag) == FX_OK,
	          "%s", diag.msg);
	CHECK_MSG(rep.public_capture < g.max_public_capture, "capture %g",
	          rep.public_capture);
	benign_capture = rep.public_capture;
	/* An exact copy of the public FFN cannot change public loss. */
	CHECK_NEAR(rep.expert_public_bpb, rep.anchor_public_bpb, 1e-3);
	fx_expert_release(&x);
	free(row);
}

static void test_norm_gate(void)
{
	fx_expert x;
	fx_gate_limits g = limits();
	fx_diag diag = {{0}};
	size_t fd = (size_t)anchor.cfg.d_ff * anchor.cfg.d_model;

	copy_expert(&x, r_pub, 0.0f);
	for (size_t j = 0; j < fd; j++)
		x.up[fd + j] *= 5.0f; /* layer 1 */
	CHECK(fx_gate_norms(&anchor, r_pub, &x, &g, NULL, &diag) ==
	      FX_EREJECTED);
	CHECK_MSG(strstr(diag.msg, "layer 1 up_proj") != NULL, "%s", diag.msg);
	fx_expert_release(&x);

	copy_expert(&x, r_pub, 0.0f);
	for (int j = 0; j < anchor.cfg.d_model; j++)
		x.router[j] *= 10.0f; /* layer 0 */
	CHECK(fx_gate_norms(&anchor, r_pub, &x, &g, NULL, &diag) ==
	      FX_EREJECTED);
	CHECK_MSG(strstr(diag.msg, "layer 0 router row") != NULL, "%s",
	          diag.msg);
	fx_expert_release(&x);
}

static void test_capture_gate(void)
{
	fx_expert x;
	fx_gate_limits g = limits();
	fx_gate_report rep = {0};
	fx_diag diag = {{0}};
	int n = anchor.cfg.n_layers * anchor.cfg.d_model;
	float *row = malloc((size_t)n * 4);

	/* The public row scaled up within the norm limit: wherever public
	 * text scores positively on the public row, the hijacker scores
	 * more and takes the slot. */
	for (int i = 0; i < n; i++)
		row[i] = 3.9f * r_pub[i];
	copy_expert(&x, row, 0.0f);
	CHECK(fx_gate_norms(&anchor, r_pub, &x, &g, NULL, &diag) == FX_OK);
	CHECK(fx_gate_public(&anchor, r_pub, &x, pub.heldout, pub.n_heldout, -1,
	                     &g, &rep, &diag) == FX_EREJECTED);
	CHECK_MSG(strstr(diag.msg, "routing-capture gate") != NULL, "%s",
	          diag.msg);
	CHECK_MSG(rep.public_capture > benign_capture + 0.2, "capture %g",
	          rep.public_capture);
	fx_expert_release(&x);
	free(row);
}

/* fx_corpus_routes counts k slots per token and layer over whole batches,
 * adds to what the counters held, and an opted-out expert takes none. */
static void test_routes(void)
{
	const fx_expert *list[1];
	fx_expert x;
	fx_model pair = {0};
	int L = anchor.cfg.n_layers, T = anchor.cfg.max_seq;
	uint64_t c[2 * MAX_LAYERS] = {0}, sum = 0, pub0 = 0;
	size_t want = 0;

	copy_expert(&x, r_pub, 0.0f);
	list[0] = &x;
	CHECK(L <= MAX_LAYERS);
	CHECK_OK(fx_moe_build(&pair, &anchor, r_pub, list, 1, 2, false, NULL));
	/* 4 rows of T tokens asked for at batch 4: one batch. */
	CHECK_OK(fx_corpus_routes(&pair, pub.heldout, pub.n_heldout, 4, T,
	                          (size_t)4 * T, 0, c, NULL));
	for (int i = 0; i < 2 * L; i++)
		sum += c[i];
	want = (size_t)4 * T * 2 * L;
	CHECK_MSG(sum == want, "%llu slots, want %zu",
	          (unsigned long long)sum, want);
	/* Again, expert 1 opted out: counts add up, expert 1 gains none. */
	uint64_t before1 = 0;
	for (int l = 0; l < L; l++) {
		before1 += c[l * 2 + 1];
		pub0 += c[l * 2];
	}
	CHECK_OK(fx_corpus_routes(&pair, pub.heldout, pub.n_heldout, 4, T,
	                          (size_t)4 * T, 1u << 1, c, NULL));
	uint64_t after1 = 0, after0 = 0;
	for (int l = 0; l < L; l++) {
		after1 += c[l * 2 + 1];
		after0 += c[l * 2];
	}
	CHECK(after1 == before1);
	CHECK_MSG(after0 == pub0 + (size_t)4 * T * L, "%llu",
	          (unsigned long long)after0);
	fx_model_release(&pair);
	fx_expert_release(&x);
}

static void test_public_loss_gate(void)
{
	fx_expert x;
	fx_gate_limits g = limits();
	fx_gate_report rep = {0};
	fx_diag diag = {{0}};
	size_t fd = (size_t)anchor.cfg.d_ff * anchor.cfg.d_model;
	fx_rng r;

	/* Poisoned FFN: the down projection shuffled in sign, same norm. */
	copy_expert(&x, r_pub, 0.0f);
	fx_rng_seed(&r, 17);
	for (int l = 0; l < anchor.cfg.n_layers; l++)
		for (size_t j = 0; j < fd; j++)
			if (fx_rng_next(&r) & 1)
				x.down[l * fd + j] = -x.down[l * fd + j];
	CHECK(fx_gate_norms(&anchor, r_pub, &x, &g, NULL, &diag) == FX_OK);
	CHECK(fx_gate_public(&anchor, r_pub, &x, pub.heldout, pub.n_heldout, -1,
	                     &g, &rep, &diag) == FX_EREJECTED);
	CHECK_MSG(strstr(diag.msg, "public-loss gate") != NULL, "%s", diag.msg);
	CHECK(rep.expert_public_bpb > rep.anchor_public_bpb * 1.02);
	fx_expert_release(&x);
}

int main(void)
{
	char cmd[300];
	snprintf(dir, sizeof(dir), "/tmp/fx-gates-test.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	fx_model_set_threads(1);
	setup();
	RUN(test_benign_passes);
	RUN(test_norm_gate);
	RUN(test_capture_gate);
	RUN(test_public_loss_gate);
	RUN(test_routes);
	fx_model_release(&anchor);
	fx_corpus_release(&pub);
	free(r_pub);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return FX_TEST_REPORT();
}
