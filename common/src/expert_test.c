/* Expert training and merging (issue 3 acceptance, tiny preset): training
 * touches only expert 1's groups; the merged model with all but public and i
 * masked equals i's 2-expert model; masking equals removal; mismatching
 * experts are refused; expert files round-trip strictly. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "flexo/baselines.h"
#include "flexo/expert.h"
#include "flexo/expert_train.h"
#include "flexo/fsutil.h"
#include "fx_test.h"

static char dir[256];

static void make_anchor(fx_model *m)
{
	fx_config cfg;
	CHECK_OK(fx_config_preset("tiny", &cfg, NULL));
	CHECK_OK(fx_model_init(m, &cfg, false, NULL));
	fx_model_init_weights(m, 11);
}

static void random_rows(float *rows, int n, uint64_t seed)
{
	fx_rng r;
	fx_rng_seed(&r, seed);
	for (int i = 0; i < n; i++)
		rows[i] = (float)((double)(fx_rng_next(&r) >> 11) / 9007199254740992.0 - 0.5);
}

/* A corpus folder of pseudo-random text for one domain. */
static void make_domain(const char *name, uint64_t seed, fx_corpus *c)
{
	char path[512], text[3000];
	fx_rng r;

	fx_rng_seed(&r, seed);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	CHECK_OK(fx_mkdir_p(path, 0755, NULL));
	for (int d = 0; d < 12; d++) {
		for (size_t i = 0; i < sizeof(text); i++)
			text[i] = (char)('a' + fx_rng_below(&r, 6 + seed % 5));
		snprintf(path, sizeof(path), "%s/%s/d%02d.txt", dir, name, d);
		CHECK_OK(fx_write_file_atomic(path, text, sizeof(text), 0644,
		                              NULL));
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	CHECK_OK(fx_corpus_load(c, path, 0.25, NULL));
}

static void fill_tokens(int32_t *tok, int n, uint64_t seed)
{
	fx_rng r;
	fx_rng_seed(&r, seed);
	for (int i = 0; i < n; i++)
		tok[i] = (int32_t)fx_rng_below(&r, 256);
}

static double max_logit_diff(fx_model *a, uint64_t mask_a, fx_model *b,
                             uint64_t mask_b)
{
	enum { B = 2, T = 16 };
	int32_t tok[B * T];
	fx_fwd_opts oa = {0}, ob = {0};
	float *la;
	double worst = 0;
	size_t n = (size_t)B * T * (size_t)a->cfg.vocab_size;

	fill_tokens(tok, B * T, 5);
	oa.disabled_experts = mask_a;
	ob.disabled_experts = mask_b;
	CHECK_OK(fx_model_reserve(a, B, T, NULL));
	CHECK_OK(fx_model_reserve(b, B, T, NULL));
	CHECK_OK(fx_model_forward(a, tok, NULL, B, T, &oa, NULL, NULL));
	la = malloc(n * sizeof(float));
	memcpy(la, fx_model_logits(a), n * sizeof(float));
	CHECK_OK(fx_model_forward(b, tok, NULL, B, T, &ob, NULL, NULL));
	for (size_t i = 0; i < n; i++) {
		double dlt = fabs((double)la[i] - fx_model_logits(b)[i]);
		worst = dlt > worst ? dlt : worst;
	}
	free(la);
	return worst;
}

static void test_training_touches_only_expert_groups(void)
{
	fx_model anchor = {0}, pair = {0}, before = {0};
	fx_expert seed = {0};
	const fx_expert *list[1] = {&seed};
	fx_corpus c = {0};
	fx_train_opts o;
	float *r_pub, *r_i;
	int L, d;

	make_anchor(&anchor);
	L = anchor.cfg.n_layers;
	d = anchor.cfg.d_model;
	r_pub = malloc((size_t)L * d * sizeof(float));
	r_i = malloc((size_t)L * d * sizeof(float));
	random_rows(r_pub, L * d, 1);
	random_rows(r_i, L * d, 2);
	CHECK_OK(fx_expert_init(&seed, &anchor.cfg, NULL));
	memcpy(seed.router, r_i, (size_t)L * d * sizeof(float));
	for (int l = 0; l < L; l++) {
		size_t fd = (size_t)anchor.cfg.d_ff * d;
		memcpy(seed.gate + l * fd, anchor.layers[l].gate[0], fd * 4);
		memcpy(seed.up + l * fd, anchor.layers[l].up[0], fd * 4);
		memcpy(seed.down + l * fd, anchor.layers[l].down[0], fd * 4);
		seed.bias[l] = -0.5f;
	}
	CHECK_OK(fx_moe_build(&pair, &anchor, r_pub, list, 1, 2, true, NULL));
	CHECK_OK(fx_model_init(&before, &pair.cfg, false, NULL));
	CHECK_OK(fx_model_copy_params(&before, &pair, NULL));
	make_domain("train", 3, &c);

	fx_train_opts_defaults(&o, &pair.cfg);
	o.batch = 4;
	o.seq = 16;
	o.steps = 20;
	o.adam.lr = 1e-2f;
	o.adam.warmup_steps = 2;
	o.fwd.z_loss = 1e-3f;
	o.eval_every = 0;
	o.ckpt_every = 0;
	o.eval_tokens = 512;
	o.freeze = fx_expert_training_freeze();
	CHECK_OK(fx_train_run(&pair, &c, &o, NULL, NULL, NULL));

	for (int t = 0; t < pair.n_tensors; t++) {
		const fx_tensor *now = &pair.tensors[t];
		const fx_tensor *was = &before.tensors[t];
		bool trained = now->group == FX_GROUP_EXPERT && now->expert == 1;
		if (now->group == FX_GROUP_ROUTER) {
			/* row 0 frozen, row 1 trained */
			CHECK_MSG(memcmp(now->data, was->data, (size_t)d * 4) == 0,
			          "%s row 0 changed", now->name);
			CHECK_MSG(memcmp(now->data + d, was->data + d,
			                 (size_t)d * 4) != 0,
			          "%s row 1 did not train", now->name);
			continue;
		}
		if (now->group == FX_GROUP_ROUTER_BIAS) {
			CHECK(now->data[0] == was->data[0]);
			CHECK(now->data[1] != was->data[1] && now->data[1] <= 0);
			continue;
		}
		if (trained)
			CHECK_MSG(memcmp(now->data, was->data, now->numel * 4) != 0,
			          "%s did not train", now->name);
		else
			CHECK_MSG(memcmp(now->data, was->data, now->numel * 4) == 0,
			          "%s changed but is frozen", now->name);
	}
	fx_expert_release(&seed);
	fx_model_release(&anchor);
	fx_model_release(&pair);
	fx_model_release(&before);
	fx_corpus_release(&c);
	free(r_pub);
	free(r_i);
}

/* Three trained-looking experts: random perturbations of the anchor FFN. */
static void make_experts(const fx_model *anchor, fx_expert *x, int n)
{
	size_t fd = (size_t)anchor->cfg.d_ff * anchor->cfg.d_model;
	int L = anchor->cfg.n_layers, d = anchor->cfg.d_model;
	for (int i = 0; i < n; i++) {
		float *noise = malloc(fd * sizeof(float));
		CHECK_OK(fx_expert_init(&x[i], &anchor->cfg, NULL));
		random_rows(x[i].router, L * d, 40 + (uint64_t)i);
		for (int l = 0; l < L; l++) {
			const fx_layer *al = &anchor->layers[l];
			random_rows(noise, (int)fd, 50 + (uint64_t)(i * L + l));
			for (size_t j = 0; j < fd; j++) {
				x[i].gate[l * fd + j] = al->gate[0][j] + 0.05f * noise[j];
				x[i].up[l * fd + j] = al->up[0][j] - 0.05f * noise[j];
				x[i].down[l * fd + j] = al->down[0][j] + 0.03f * noise[j];
			}
			x[i].bias[l] = -0.1f * (float)i;
		}
		free(noise);
	}
}

static void test_merge_masks(void)
{
	enum { N = 3 };
	fx_model anchor = {0}, merged = {0}, pair = {0}, without = {0};
	fx_expert x[N];
	const fx_expert *list[N], *two[2];
	float *r_pub;
	int L, d;

	make_anchor(&anchor);
	L = anchor.cfg.n_layers;
	d = anchor.cfg.d_model;
	r_pub = malloc((size_t)L * d * sizeof(float));
	random_rows(r_pub, L * d, 9);
	make_experts(&anchor, x, N);
	for (int i = 0; i < N; i++)
		list[i] = &x[i];
	CHECK_OK(fx_moe_build(&merged, &anchor, r_pub, list, N, 2, false, NULL));
	CHECK(merged.cfg.n_experts == N + 1 && merged.cfg.top_k == 2);

	/* Everything masked except public and i == i's 2-expert model. */
	for (int i = 0; i < N; i++) {
		uint64_t mask = 0;
		for (int e = 1; e <= N; e++)
			if (e != i + 1)
				mask |= (uint64_t)1 << e;
		CHECK_OK(fx_moe_build(&pair, &anchor, r_pub, &list[i], 1, 2,
		                      false, NULL));
		CHECK_NEAR(max_logit_diff(&merged, mask, &pair, 0), 0, 1e-4);
		fx_model_release(&pair);
	}
	/* Masking expert 2 == building without it (experts 1 and 3). */
	two[0] = &x[0];
	two[1] = &x[2];
	CHECK_OK(fx_moe_build(&without, &anchor, r_pub, two, 2, 2, false, NULL));
	CHECK_NEAR(max_logit_diff(&merged, (uint64_t)1 << 2, &without, 0), 0,
	           1e-4);
	/* And masking really changes something (the test can fail). */
	CHECK(max_logit_diff(&merged, 0, &without, 0) > 1e-3);

	fx_model_release(&without);
	fx_model_release(&merged);
	fx_model_release(&anchor);
	for (int i = 0; i < N; i++)
		fx_expert_release(&x[i]);
	free(r_pub);
}

static void test_refusals_and_files(void)
{
	fx_model anchor = {0}, merged = {0}, soup = {0};
	fx_expert x[1], back = {0}, wrong = {0};
	const fx_expert *list[1] = {&x[0]};
	fx_config other;
	fx_diag diag = {{0}};
	char path[512];
	float *r_pub;

	make_anchor(&anchor);
	r_pub = calloc((size_t)anchor.cfg.n_layers * anchor.cfg.d_model, 4);
	make_experts(&anchor, x, 1);

	/* An expert of another shape is refused, naming the expert. */
	other = anchor.cfg;
	other.d_ff *= 2;
	CHECK_OK(fx_expert_init(&wrong, &other, NULL));
	list[0] = &wrong;
	CHECK(fx_moe_build(&merged, &anchor, r_pub, list, 1, 2, false, &diag) ==
	      FX_EMISMATCH);
	CHECK_MSG(strstr(diag.msg, "expert 1") != NULL, "%s", diag.msg);
	CHECK(merged.params == NULL);
	list[0] = &x[0];

	/* Round trip, then a positive bias is refused on load. */
	snprintf(path, sizeof(path), "%s/e.safetensors", dir);
	CHECK_OK(fx_expert_set_meta(&x[0], "domain", "test", NULL));
	CHECK_OK(fx_expert_save(&x[0], path, NULL));
	CHECK_MSG(fx_expert_load(&back, path, &diag) == FX_OK, "%s", diag.msg);
	CHECK(strcmp(fx_expert_meta(&back, "domain"), "test") == 0);
	CHECK(memcmp(back.gate, x[0].gate,
	             (size_t)anchor.cfg.n_layers * anchor.cfg.d_ff *
	                 anchor.cfg.d_model * 4) == 0);
	fx_expert_release(&back);
	x[0].bias[1] = 0.25f;
	CHECK_OK(fx_expert_save(&x[0], path, NULL));
	CHECK(fx_expert_load(&back, path, &diag) == FX_EINVAL);
	CHECK_MSG(strstr(diag.msg, "layers.1.router.bias") != NULL, "%s",
	          diag.msg);
	x[0].bias[1] = 0;

	/* A model file is not an expert file. */
	CHECK(fx_expert_load(&back, "/nonexistent/e.safetensors", &diag) != FX_OK);

	/* Soup of one expert = mean of the two FFNs. */
	CHECK_OK(fx_soup_build(&soup, &anchor, list, 1, NULL));
	CHECK_NEAR(soup.layers[0].gate[0][7],
	           0.5 * (anchor.layers[0].gate[0][7] + x[0].gate[7]), 1e-6);

	fx_model_release(&soup);
	fx_model_release(&anchor);
	fx_expert_release(&x[0]);
	fx_expert_release(&wrong);
	free(r_pub);
}

int main(void)
{
	char cmd[300];
	snprintf(dir, sizeof(dir), "/tmp/fx-expert-test.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	fx_model_set_threads(1);
	RUN(test_training_touches_only_expert_groups);
	RUN(test_merge_masks);
	RUN(test_refusals_and_files);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return FX_TEST_REPORT();
}
