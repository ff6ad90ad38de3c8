/* Model core tests: config bounds, tensor table, gradients against central
 * finite differences for every parameter group (E = 1 and E = 3, top-2,
 * router bias, z-loss, a near-tie at the top-k boundary and the tie-break),
 * OpenBLAS against the reference loops, determinism, and opt-out masking. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/config.h"
#include "flexo/model.h"
#include "flexo/optim.h"
#include "fx_test.h"
#include "model_internal.h"

enum { B_ = 2, T_ = 8 };

static uint64_t rng_state = 12345;

/* xorshift64* for test inputs (independent of the model's own PRNG). */
static double urand(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * 2685821657736338717ull) >> 11) * 0x1p-53;
}

static double nrand(void)
{
	double u1 = urand() + 1e-12, u2 = urand();
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static fx_config tiny_cfg(int E, int k, bool bias)
{
	fx_config c;
	fx_config_preset("tiny", &c, NULL);
	c.n_experts = E;
	c.top_k = k;
	c.router_bias = bias;
	return c;
}

/* A model whose weights are large enough that every gradient is well
 * above float rounding: matrices std 0.2, norm gains 1 +- 0.2, biases in
 * [-0.5, 0]; attention in blocks of 3 query rows. */
static void make_model(fx_model *m, const fx_config *c, bool training,
                       uint64_t seed)
{
	fx_diag d;
	fx_err err = fx_model_init(m, c, training, &d);
	CHECK_MSG(err == FX_OK, "%s", d.msg);
	fx_model_init_weights(m, seed);
	for (int i = 0; i < m->n_tensors; i++) {
		fx_tensor *t = &m->tensors[i];
		for (size_t j = 0; j < t->numel; j++) {
			if (t->group == FX_GROUP_ROUTER_BIAS)
				t->data[j] = (float)(-0.5 * urand());
			else if (t->ndim == 1)
				t->data[j] = (float)(1.0 + 0.2 * nrand());
			else
				t->data[j] *= 10.0f;
		}
	}
	CHECK(fx_model_reserve(m, B_, T_, &d) == FX_OK);
	/* attention row blocks of 3 over T = 8: full, full, partial, so
	 * the block-causal edges are exercised at test sizes */
	m->acts->att_block = 3;
}

static void make_batch(int32_t *tok, int32_t *tgt, int V)
{
	for (int i = 0; i < B_ * T_; i++) {
		tok[i] = (int32_t)(urand() * V);
		tgt[i] = (int32_t)(urand() * V);
	}
	tgt[3] = -1; /* an ignored position */
}

/* fx_exp against libm's double exp: relative error under 1e-6 (a few
 * float ulps) over the range the softmaxes use, and exp(-inf) ~ 0. */
static void test_fast_exp(void)
{
	double worst = 0;
	for (int i = 0; i <= 200000; i++) {
		float x = -87.0f + 175.0f * (float)i / 200000.0f;
		double ref = exp((double)x);
		worst = fmax(worst, fabs(fx_exp(x) - ref) / ref);
	}
	CHECK_MSG(worst < 1e-6, "fx_exp relative error %g", worst);
	CHECK(fx_exp(0.0f) == 1.0f);
	CHECK(fx_exp(-INFINITY) < 1e-37f);
	CHECK(isnan(fx_exp(NAN)));
}

static void test_config(void)
{
	fx_config c;
	fx_diag d;
	const char *names[] = {"tiny", "small", "medium", "wide"};
	for (int i = 0; i < 4; i++) {
		CHECK(fx_config_preset(names[i], &c, &d) == FX_OK);
		CHECK(fx_config_validate(&c, &d) == FX_OK);
		CHECK(c.vocab_size == 259 && c.n_experts == 1 && c.top_k == 1);
	}
	CHECK(fx_config_preset("huge", &c, &d) == FX_ENOTFOUND);
	CHECK(strstr(d.msg, "huge") != NULL);
	fx_config_preset("wide", &c, NULL);
	CHECK(c.d_model >= 256);
	/* tiny by hand: 2*259*32 + 32 + 2*(4*32*32 + 4*32 + 32 + 3*32*64) */
	fx_config_preset("tiny", &c, NULL);
	CHECK(fx_config_param_count(&c) ==
	      16576 + 32 + 2 * (4096 + 128 + 32 + 6144));
	c.n_heads = 3;
	CHECK(fx_config_validate(&c, &d) == FX_EINVAL);
	CHECK(strstr(d.msg, "n_heads") != NULL);
	fx_config_preset("tiny", &c, NULL);
	c.top_k = 2;
	CHECK(fx_config_validate(&c, &d) == FX_EINVAL);
	CHECK(strstr(d.msg, "top_k") != NULL);
	fx_config_preset("tiny", &c, NULL);
	c.n_heads = 32; /* head_dim 1: odd */
	CHECK(fx_config_validate(&c, &d) == FX_EINVAL);
	CHECK(strstr(d.msg, "odd") != NULL);
}

static void test_tensor_table(void)
{
	fx_config c = tiny_cfg(3, 2, true);
	fx_model m;
	size_t total = 0;
	CHECK(fx_model_init(&m, &c, true, NULL) == FX_OK);
	/* 3 global + per layer 4 proj + 4 norms + gate + bias + 3*3 ffn */
	CHECK(m.n_tensors == 3 + 2 * (8 + 2 + 9));
	for (int i = 0; i < m.n_tensors; i++) {
		const fx_tensor *t = &m.tensors[i];
		total += t->numel;
		CHECK(t->data >= m.params &&
		      t->data + t->numel <= m.params + m.n_params);
		CHECK(t->grad == m.grads + (t->data - m.params));
		if (i > 0)
			CHECK(t->data >=
			      m.tensors[i - 1].data + m.tensors[i - 1].numel);
	}
	CHECK(total == fx_config_param_count(&c));
	fx_tensor *t = fx_model_tensor(&m, "model.layers.1.mlp.experts.2."
	                                   "down_proj.weight");
	CHECK(t != NULL && t->shape[0] == 32 && t->shape[1] == 64 &&
	      t->expert == 2 && t->layer == 1 &&
	      t->data == m.layers[1].down[2]);
	t = fx_model_tensor(&m, "model.layers.0.mlp.gate.weight");
	CHECK(t != NULL && t->shape[0] == 3 && t->shape[1] == 32 &&
	      t->group == FX_GROUP_ROUTER);
	CHECK(fx_model_tensor(&m, "model.layers.0.mlp.gate.bias") != NULL);
	CHECK(fx_model_tensor(&m, "lm_head.weight")->data == m.lm_head);
	CHECK(fx_model_tensor(&m, "model.layers.0.self_attn.q_norm.weight")
	          ->group == FX_GROUP_QK_NORM);
	CHECK(fx_model_tensor(&m, "model.layers.2.mlp.gate.weight") == NULL);
	fx_model_release(&m);

	/* init: matrices ~ N(0, 0.02), norms 1, bias 0 */
	CHECK(fx_model_init(&m, &c, false, NULL) == FX_OK);
	fx_model_init_weights(&m, 7);
	t = fx_model_tensor(&m, "model.embed_tokens.weight");
	double s = 0, ss = 0;
	for (size_t j = 0; j < t->numel; j++) {
		s += t->data[j];
		ss += (double)t->data[j] * t->data[j];
	}
	CHECK_NEAR(s / (double)t->numel, 0.0, 0.001);
	CHECK_NEAR(sqrt(ss / (double)t->numel), 0.02, 0.001);
	CHECK(fx_model_tensor(&m, "model.norm.weight")->data[5] == 1.0f);
	CHECK(fx_model_tensor(&m, "model.layers.1.mlp.gate.bias")->data[2] ==
	      0.0f);
	CHECK(m.grads == NULL);
	fx_model_release(&m);
}

static double loss_of(fx_model *m, const int32_t *tok, const int32_t *tgt,
                      const fx_fwd_opts *o, uint64_t *counts)
{
	fx_loss l;
	fx_fwd_opts oo = *o;
	int L = m->cfg.n_layers, E = m->cfg.n_experts;
	memset(counts, 0, sizeof(uint64_t) * (size_t)(L * E));
	oo.route_counts = counts;
	CHECK(fx_model_forward(m, tok, tgt, B_, T_, &oo, &l, NULL) == FX_OK);
	return l.total;
}

/* Directional central differences along a unit direction u = normalised
 * (random unit vector + unit gradient), so g·u is large enough to test and
 * a wrong gradient (wrong direction or wrong scale) shows, restricted to one
 * span [off, off+n) of the arena: (L(w + hu) - L(w - hu)) / 2h against g·u. The
 * reference (double-accumulating) matmuls keep the loss noise near 1e-7, so
 * with h = 1e-2 the quotient is good to ~1e-5 plus an O(h^2) truncation term;
 * we allow 1e-4 + 1% relative. The router selection must not change between the
 * evaluations, else the difference straddles the top-k discontinuity: then h
 * shrinks (4x, at most 4 times) until the step stays on one side; never
 * reaching that fails. */
static void fd_span(fx_model *m, const char *what, size_t off, size_t n,
                    const int32_t *tok, const int32_t *tgt,
                    const fx_fwd_opts *o, bool expect_zero, int *checked)
{
	double h = 1e-2, an = 0.0, norm = 0.0, fd = 0.0;
	int LE = m->cfg.n_layers * m->cfg.n_experts;
	uint64_t c0[FX_MAX_LAYERS * 4], cp[FX_MAX_LAYERS * 4],
	    cm[FX_MAX_LAYERS * 4];
	float *u = malloc(n * sizeof(float)), *w = m->params + off;
	float *saved = malloc(n * sizeof(float));
	bool same = false;

	double gn = 0.0, rn = 0.0;
	for (size_t i = 0; i < n; i++) {
		u[i] = (float)nrand();
		rn += (double)u[i] * u[i];
		gn += (double)m->grads[off + i] * m->grads[off + i];
	}
	for (size_t i = 0; i < n; i++) {
		u[i] = (float)(u[i] / sqrt(rn));
		/* a scalar's only direction is 1 (r̂ + ĝ may cancel) */
		if (n == 1)
			u[i] = 1.0f;
		else if (gn > 0)
			u[i] += (float)(m->grads[off + i] / sqrt(gn));
		norm += (double)u[i] * u[i];
	}
	for (size_t i = 0; i < n; i++) {
		u[i] = (float)(u[i] / sqrt(norm));
		saved[i] = w[i];
		an += (double)m->grads[off + i] * u[i];
	}
	loss_of(m, tok, tgt, o, c0);
	for (int tries = 0; tries < 5 && !same; tries++, h /= 4) {
		for (size_t i = 0; i < n; i++)
			w[i] = saved[i] + (float)h * u[i];
		double lp = loss_of(m, tok, tgt, o, cp);
		for (size_t i = 0; i < n; i++)
			w[i] = saved[i] - (float)h * u[i];
		double lm = loss_of(m, tok, tgt, o, cm);
		memcpy(w, saved, n * sizeof(float));
		fd = (lp - lm) / (2 * h);
		same = memcmp(c0, cp, sizeof(uint64_t) * LE) == 0 &&
		       memcmp(c0, cm, sizeof(uint64_t) * LE) == 0;
	}
	CHECK_MSG(same,
	          "%s: every finite-difference step changed the top-k "
	          "routing",
	          what);
	CHECK_MSG(fabs(fd - an) <= 1e-4 + 0.01 * fabs(an),
	          "%s: analytic %.6g vs finite difference %.6g", what, an, fd);
	if (expect_zero)
		CHECK_MSG(an == 0.0, "%s: unused expert has gradient %g", what,
		          an);
	else
		CHECK_MSG(fabs(an) > 1e-3,
		          "%s: gradient %.3g too small to test", what, an);
	(*checked)++;
	free(u);
	free(saved);
}

/* Runs fd_span over every tensor; router matrices and biases row by row
 * (each row is its own freeze group). FFN tensors of the experts in
 * `unused` must have exactly zero gradient. Returns the number of spans. */
static int grad_check_all(fx_model *m, const int32_t *tok, const int32_t *tgt,
                          const fx_fwd_opts *o, uint64_t unused)
{
	int checked = 0;
	fx_model_zero_grad(m);
	CHECK(fx_model_forward(m, tok, tgt, B_, T_, o, NULL, NULL) == FX_OK);
	CHECK(fx_model_backward(m, NULL, NULL) == FX_OK);
	for (int i = 0; i < m->n_tensors; i++) {
		const fx_tensor *t = &m->tensors[i];
		size_t off = (size_t)(t->data - m->params);
		if (t->group == FX_GROUP_ROUTER ||
		    t->group == FX_GROUP_ROUTER_BIAS) {
			size_t w = t->ndim == 2 ? (size_t)t->shape[1] : 1;
			for (int e = 0; e < (int)t->shape[0]; e++) {
				char what[160];
				snprintf(what, sizeof(what), "%s row %d",
				         t->name, e);
				fd_span(m, what, off + e * w, w, tok, tgt, o,
				        false, &checked);
			}
		} else {
			bool zero = t->group == FX_GROUP_EXPERT &&
			            (unused >> t->expert & 1);
			fd_span(m, t->name, off, t->numel, tok, tgt, o, zero,
			        &checked);
		}
	}
	return checked;
}

static void test_grad_dense(void)
{
	fx_config c = tiny_cfg(1, 1, false);
	fx_model m;
	int32_t tok[B_ * T_], tgt[B_ * T_];
	fx_fwd_opts o = {.z_loss = 0.01f};
	make_model(&m, &c, true, 1);
	m.naive = true;
	make_batch(tok, tgt, c.vocab_size);
	CHECK(grad_check_all(&m, tok, tgt, &o, 0) == m.n_tensors);
	fx_model_release(&m);
}

static void test_grad_moe(void)
{
	fx_config c = tiny_cfg(3, 2, true);
	fx_model m;
	int32_t tok[B_ * T_], tgt[B_ * T_];
	fx_fwd_opts o = {.z_loss = 0.05f};
	make_model(&m, &c, true, 2);
	m.naive = true;
	make_batch(tok, tgt, c.vocab_size);
	/* 3 globals + per layer 8 + 3 router rows + 3 bias + 9 ffn */
	CHECK(grad_check_all(&m, tok, tgt, &o, 0) == 3 + 2 * (8 + 3 + 3 + 9));
	fx_model_release(&m);
}

/* Experts 1 and 2 get identical router rows and every router row is
 * scaled down so logits stay within +-0.2; expert 0's bias (0 vs -1) keeps
 * it first. With equal biases, 1 and 2 tie exactly at the top-2 boundary
 * for every token and the lower index must win. With bias_2 = bias_1 -
 * 0.02 they sit close but apart, and the gradients (including expert 2's,
 * which only flows through the softmax normalisation) must still match
 * finite differences. */
static void test_topk_tie(void)
{
	fx_config c = tiny_cfg(3, 2, true);
	fx_model m;
	int32_t tok[B_ * T_], tgt[B_ * T_];
	uint64_t counts[2 * 3];
	fx_fwd_opts o = {.z_loss = 0.01f, .route_counts = counts};
	int d = c.d_model;

	make_model(&m, &c, true, 3);
	m.naive = true;
	make_batch(tok, tgt, c.vocab_size);
	for (int l = 0; l < c.n_layers; l++) {
		fx_layer *ly = &m.layers[l];
		for (int j = 0; j < 3 * d; j++)
			ly->router[j] *= 0.05f;
		for (int j = 0; j < d; j++)
			ly->router[2 * d + j] = ly->router[1 * d + j];
		ly->router_bias[0] = 0.0f;
		ly->router_bias[1] = -1.0f;
		ly->router_bias[2] = -1.0f;
	}
	memset(counts, 0, sizeof(counts));
	CHECK(fx_model_forward(&m, tok, tgt, B_, T_, &o, NULL, NULL) == FX_OK);
	for (int l = 0; l < c.n_layers; l++) {
		CHECK(counts[l * 3 + 0] == B_ * T_);
		CHECK(counts[l * 3 + 1] == B_ * T_); /* lower index wins */
		CHECK(counts[l * 3 + 2] == 0);
	}
	for (int l = 0; l < c.n_layers; l++)
		m.layers[l].router_bias[2] = -1.02f;
	o.route_counts = NULL;
	CHECK(grad_check_all(&m, tok, tgt, &o, 1u << 2) ==
	      3 + 2 * (8 + 3 + 3 + 9));
	fx_model_release(&m);
}

/* Backward with the contributor's freeze mask (everything but expert 1,
 * router row 1 and bias 1) skips work, but the gradients it does compute
 * are bitwise those of the full backward, and frozen ones stay zero. */
static void test_frozen_grads(void)
{
	fx_config c = tiny_cfg(2, 2, true);
	fx_model m;
	int32_t tok[B_ * T_], tgt[B_ * T_];
	fx_fwd_opts o = {.z_loss = 1e-3f};
	fx_freeze f = {true, true, true, true, true, true, true, 1, 1, 1};
	make_model(&m, &c, true, 8);
	make_batch(tok, tgt, c.vocab_size);
	float *full = malloc(m.n_params * sizeof(float));
	fx_model_zero_grad(&m);
	CHECK(fx_model_forward(&m, tok, tgt, B_, T_, &o, NULL, NULL) == FX_OK);
	CHECK(fx_model_backward(&m, NULL, NULL) == FX_OK);
	memcpy(full, m.grads, m.n_params * sizeof(float));
	fx_model_zero_grad(&m);
	CHECK(fx_model_backward(&m, &f, NULL) == FX_OK);
	for (int i = 0; i < m.n_tensors; i++) {
		const fx_tensor *t = &m.tensors[i];
		bool rows = t->group == FX_GROUP_ROUTER ||
		            t->group == FX_GROUP_ROUTER_BIAS;
		size_t w = rows ? t->numel / (size_t)t->shape[0] : t->numel;
		for (size_t r = 0; r * w < t->numel; r++) {
			bool frozen = fx_freeze_has(&f, t->group,
			                            rows ? (int)r : t->expert);
			const float *g = t->grad + r * w;
			const float *ref = full + (t->grad - m.grads) + r * w;
			bool ok = true;
			for (size_t j = 0; j < w; j++)
				ok = ok &&
				     (frozen ? g[j] == 0.0f
				             : memcmp(&g[j], &ref[j], 4) == 0);
			CHECK_MSG(ok, "%s row %zu (%s)", t->name, r,
			          frozen ? "frozen, not zero" : "differs");
		}
	}
	free(full);
	fx_model_release(&m);
}

static double max_abs(const float *x, size_t n)
{
	double mx = 0;
	for (size_t i = 0; i < n; i++)
		mx = fabs(x[i]) > mx ? fabs(x[i]) : mx;
	return mx;
}

/* OpenBLAS vs reference loops. Both are fp32 with different summation
 * orders (the reference accumulates in double), so they agree to a few
 * ulps of the largest value: we allow 1e-4 of the maximum magnitude for
 * logits and for each tensor's gradient. Batch shapes: the usual 2 x 8,
 * an odd 3 x 5, and 1 x 1, where every product has one row and goes
 * through sgemv. */
static void blas_vs_naive(int E, int k, int B, int T)
{
	fx_config c = tiny_cfg(E, k, E > 1);
	fx_model a, b;
	int32_t tok[B_ * T_], tgt[B_ * T_];
	fx_fwd_opts o = {.z_loss = 0.01f};
	make_model(&a, &c, true, 4);
	CHECK(fx_model_init(&b, &c, true, NULL) == FX_OK);
	CHECK(fx_model_reserve(&b, B_, T_, NULL) == FX_OK);
	CHECK(fx_model_copy_params(&b, &a, NULL) == FX_OK);
	b.naive = true;
	b.acts->att_block = 5; /* different blocks must not change results */
	make_batch(tok, tgt, c.vocab_size);
	tgt[0] = 7; /* make_batch ignores position 3; keep one target at 1x1 */
	for (int pass = 0; pass < 2; pass++) {
		fx_model *m = pass ? &b : &a;
		fx_model_zero_grad(m);
		CHECK(fx_model_forward(m, tok, tgt, B, T, &o, NULL, NULL) ==
		      FX_OK);
		CHECK(fx_model_backward(m, NULL, NULL) == FX_OK);
	}
	size_t nl = (size_t)B * T * c.vocab_size;
	const float *la = fx_model_logits(&a), *lb = fx_model_logits(&b);
	double tol = 1e-4 * max_abs(lb, nl), worst = 0;
	for (size_t i = 0; i < nl; i++)
		worst = fmax(worst, fabs(la[i] - lb[i]));
	CHECK_MSG(worst <= tol, "%dx%d: logits differ by %g > %g", B, T, worst,
	          tol);
	for (int i = 0; i < a.n_tensors; i++) {
		const fx_tensor *ta = &a.tensors[i], *tb = &b.tensors[i];
		double tl = 1e-4 * max_abs(tb->grad, tb->numel) + 1e-9;
		double w = 0;
		for (size_t j = 0; j < ta->numel; j++)
			w = fmax(w, fabs(ta->grad[j] - tb->grad[j]));
		CHECK_MSG(w <= tl, "%dx%d: %s grad differs by %g > %g", B, T,
		          ta->name, w, tl);
	}
	fx_model_release(&a);
	fx_model_release(&b);
}

static void test_blas_vs_naive(void)
{
	blas_vs_naive(3, 2, 2, 8);
	blas_vs_naive(3, 2, 3, 5);
	blas_vs_naive(3, 2, 1, 1);
	blas_vs_naive(1, 1, 2, 8);
	blas_vs_naive(1, 1, 1, 1);
}

/* Same seed, one thread: bitwise-identical parameters after training. */
static void test_determinism(void)
{
	fx_config c = tiny_cfg(2, 2, true);
	fx_model m[3];
	int32_t tok[B_ * T_], tgt[B_ * T_];
	fx_adamw_opts ao;
	fx_fwd_opts o = {.z_loss = 1e-3f};

	fx_model_set_threads(1);
	fx_adamw_defaults(&ao);
	ao.warmup_steps = 2;
	make_batch(tok, tgt, c.vocab_size);
	for (int r = 0; r < 3; r++) {
		fx_adamw a;
		CHECK(fx_model_init(&m[r], &c, true, NULL) == FX_OK);
		CHECK(fx_model_reserve(&m[r], B_, T_, NULL) == FX_OK);
		fx_model_init_weights(&m[r], r < 2 ? 99 : 100);
		CHECK(fx_adamw_init(&a, &m[r], &ao, NULL) == FX_OK);
		for (int s = 0; s < 4; s++)
			CHECK(fx_train_step(&m[r], &a, NULL, tok, tgt, B_, T_,
			                    &o, NULL, NULL, NULL) == FX_OK);
		fx_adamw_release(&a);
	}
	size_t bytes = m[0].n_params * sizeof(float);
	CHECK(memcmp(m[0].params, m[1].params, bytes) == 0);
	CHECK(memcmp(m[0].params, m[2].params, bytes) != 0);
	for (int r = 0; r < 3; r++)
		fx_model_release(&m[r]);
}

/* Copies the tensor named `name` (with {e} replaced by expert se / de)
 * rows: whole tensors, or one row of a router matrix/bias. */
static void copy_expert(fx_model *dst, int de, fx_model *src, int se)
{
	const fx_config *c = &src->cfg;
	int d = c->d_model;
	for (int l = 0; l < c->n_layers; l++) {
		fx_layer *a = &dst->layers[l], *b = &src->layers[l];
		size_t nf = (size_t)c->d_ff * d;
		memcpy(a->gate[de], b->gate[se], nf * sizeof(float));
		memcpy(a->up[de], b->up[se], nf * sizeof(float));
		memcpy(a->down[de], b->down[se], nf * sizeof(float));
		memcpy(a->router + de * d, b->router + se * d,
		       (size_t)d * sizeof(float));
		a->router_bias[de] = b->router_bias[se];
	}
}

/* Opt-out: a 3-expert model with expert 1 disabled computes what a
 * 2-expert model holding experts {0, 2} computes. */
static void test_disabled_experts(void)
{
	fx_config c3 = tiny_cfg(3, 2, true), c2 = tiny_cfg(2, 2, true);
	fx_model m3, m2;
	int32_t tok[B_ * T_], tgt[B_ * T_];
	uint64_t counts[2 * 3] = {0};
	fx_fwd_opts o = {.disabled_experts = 1u << 1, .route_counts = counts};
	fx_diag d;
	fx_loss l3, l2;

	make_model(&m3, &c3, false, 5);
	make_model(&m2, &c2, false, 6);
	for (int i = 0; i < m2.n_tensors; i++) {
		fx_tensor *t = &m2.tensors[i];
		if (t->group == FX_GROUP_EXPERT ||
		    t->group == FX_GROUP_ROUTER ||
		    t->group == FX_GROUP_ROUTER_BIAS)
			continue;
		memcpy(t->data, fx_model_tensor(&m3, t->name)->data,
		       t->numel * sizeof(float));
	}
	copy_expert(&m2, 0, &m3, 0);
	copy_expert(&m2, 1, &m3, 2);
	make_batch(tok, tgt, c3.vocab_size);
	CHECK(fx_model_forward(&m3, tok, tgt, B_, T_, &o, &l3, NULL) == FX_OK);
	CHECK(fx_model_forward(&m2, tok, tgt, B_, T_, NULL, &l2, NULL) ==
	      FX_OK);
	size_t nl = (size_t)B_ * T_ * c3.vocab_size;
	const float *a = fx_model_logits(&m3), *b = fx_model_logits(&m2);
	double worst = 0;
	for (size_t i = 0; i < nl; i++)
		worst = fmax(worst, fabs(a[i] - b[i]));
	CHECK_MSG(worst <= 1e-4, "masked vs removed logits differ by %g",
	          worst);
	CHECK_NEAR(l3.ce, l2.ce, 1e-5);
	CHECK(counts[1] == 0 && counts[3 + 1] == 0);
	CHECK(counts[0] == B_ * T_ && counts[2] == B_ * T_);
	/* and masking changes the answer vs. not masking */
	CHECK(fx_model_forward(&m3, tok, tgt, B_, T_, NULL, &l2, NULL) ==
	      FX_OK);
	CHECK(fabs(l3.ce - l2.ce) > 1e-4);

	/* eval helper agrees with forward, and accumulates */
	double nll = 1.0;
	int64_t n = 2;
	CHECK(fx_model_eval(&m3, tok, tgt, B_, T_, 1u << 1, &nll, &n, NULL) ==
	      FX_OK);
	CHECK_NEAR(nll, 1.0 + l3.nll_sum, 1e-9);
	CHECK(n == 2 + B_ * T_ - 1);

	o.disabled_experts = 7;
	CHECK(fx_model_forward(&m3, tok, tgt, B_, T_, &o, NULL, &d) ==
	      FX_EINVAL);
	CHECK(strstr(d.msg, "all 3 experts") != NULL);
	o.disabled_experts = 8;
	CHECK(fx_model_forward(&m3, tok, tgt, B_, T_, &o, NULL, &d) ==
	      FX_EINVAL);
	fx_model_release(&m3);
	fx_model_release(&m2);
}

/* Token-by-token decoding with a KV cache reproduces the full forward's
 * logits at every position (within 1e-4 of their magnitude: sgemv vs
 * sgemm rounding), with and without an expert disabled. */
static void decode_case(int E, int k, uint64_t disabled)
{
	fx_config c = tiny_cfg(E, k, E > 1);
	fx_model m;
	fx_kv_cache kv;
	int32_t tok[B_ * T_], tgt[B_ * T_];
	fx_fwd_opts o = {.disabled_experts = disabled};
	float lg[259];
	fx_diag d;

	make_model(&m, &c, false, 9);
	make_batch(tok, tgt, c.vocab_size);
	CHECK(fx_model_forward(&m, tok, NULL, 1, T_, &o, NULL, NULL) == FX_OK);
	const float *ref = fx_model_logits(&m);
	CHECK(fx_kv_init(&kv, &c, T_, &d) == FX_OK);
	for (int rep = 0; rep < 2; rep++) { /* again after a reset */
		double worst = 0, mag = 0;
		for (int t = 0; t < T_; t++) {
			CHECK(fx_model_decode(&m, &kv, tok[t], disabled, lg,
			                      &d) == FX_OK);
			for (int j = 0; j < 259; j++) {
				double r = ref[(size_t)t * 259 + j];
				worst = fmax(worst, fabs(lg[j] - r));
				mag = fmax(mag, fabs(r));
			}
		}
		CHECK_MSG(
		    worst <= 1e-4 * mag,
		    "E=%d: decode vs forward logits differ by %g (max %g)", E,
		    worst, mag);
		CHECK(fx_model_decode(&m, &kv, tok[0], disabled, lg, &d) ==
		      FX_ETOOBIG);
		CHECK(strstr(d.msg, "full") != NULL);
		fx_kv_reset(&kv);
	}
	CHECK(fx_model_decode(&m, &kv, 259, disabled, lg, &d) == FX_EINVAL);
	fx_kv_release(&kv);
	fx_model_release(&m);
}

static void test_decode(void)
{
	decode_case(1, 1, 0);
	decode_case(3, 2, 0);
	decode_case(3, 2, 1u << 0);
	fx_config a = tiny_cfg(1, 1, false), b = tiny_cfg(2, 1, false);
	fx_model m;
	fx_kv_cache kv;
	float lg[259];
	CHECK(fx_model_init(&m, &a, false, NULL) == FX_OK);
	CHECK(fx_kv_init(&kv, &b, 4, NULL) == FX_OK);
	CHECK(fx_model_decode(&m, &kv, 1, 0, lg, NULL) == FX_EMISMATCH);
	fx_kv_release(&kv);
	CHECK(fx_kv_init(&kv, &a, a.max_seq + 1, NULL) == FX_EINVAL);
	fx_model_release(&m);
}

static void test_bad_input(void)
{
	fx_config c = tiny_cfg(1, 1, false);
	fx_model m;
	int32_t tok[B_ * T_], tgt[B_ * T_];
	fx_diag d;
	CHECK(fx_model_init(&m, &c, false, NULL) == FX_OK);
	make_batch(tok, tgt, c.vocab_size);
	CHECK(fx_model_forward(&m, tok, tgt, B_, T_, NULL, NULL, &d) ==
	      FX_ESTATE);
	CHECK(fx_model_reserve(&m, 1, c.max_seq + 1, &d) == FX_EINVAL);
	CHECK(fx_model_reserve(&m, B_, T_, &d) == FX_OK);
	CHECK(fx_model_forward(&m, tok, tgt, B_ + 1, T_, NULL, NULL, &d) ==
	      FX_EINVAL);
	tok[5] = 259;
	CHECK(fx_model_forward(&m, tok, tgt, B_, T_, NULL, NULL, &d) ==
	      FX_EINVAL);
	CHECK(strstr(d.msg, "token 259 at position 5") != NULL);
	tok[5] = 1;
	CHECK(fx_model_forward(&m, tok, NULL, B_, T_, NULL, NULL, &d) == FX_OK);
	CHECK(fx_model_backward(&m, NULL, &d) == FX_ESTATE);
	/* causality: changing the last token leaves earlier logits alone */
	float first[259];
	memcpy(first, fx_model_logits(&m), sizeof(first));
	tok[T_ - 1] = (tok[T_ - 1] + 1) % 259;
	CHECK(fx_model_forward(&m, tok, NULL, B_, T_, NULL, NULL, &d) == FX_OK);
	CHECK(memcmp(first, fx_model_logits(&m), sizeof(first)) == 0);
	fx_model_release(&m);
}

int main(void)
{
	RUN(test_fast_exp);
	RUN(test_config);
	RUN(test_tensor_table);
	RUN(test_grad_dense);
	RUN(test_grad_moe);
	RUN(test_topk_tie);
	RUN(test_frozen_grads);
	RUN(test_blas_vs_naive);
	RUN(test_determinism);
	RUN(test_disabled_experts);
	RUN(test_decode);
	RUN(test_bad_input);
	return FX_TEST_REPORT();
}
