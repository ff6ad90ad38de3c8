/* AdamW tests: two steps against values computed by hand from the
 * torch.optim.AdamW update rule, clipping, the LR schedule at known points,
 * the router-bias clamp, and the freeze mask (frozen groups bitwise
 * unchanged, all others changed) for every parameter group. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/config.h"
#include "flexo/model.h"
#include "flexo/optim.h"
#include "fx_test.h"

static fx_config tiny_cfg(int E, int k, bool bias)
{
	fx_config c;
	fx_config_preset("tiny", &c, NULL);
	c.n_experts = E;
	c.top_k = k;
	c.router_bias = bias;
	return c;
}

static void test_schedule(void)
{
	fx_adamw_opts o;
	fx_adamw_defaults(&o);
	o.lr = 1.0f;
	o.lr_min = 0.1f;
	o.warmup_steps = 10;
	o.total_steps = 110;
	CHECK_NEAR(fx_lr_at(&o, 0), 0.1, 1e-7);
	CHECK_NEAR(fx_lr_at(&o, 4), 0.5, 1e-7);
	CHECK_NEAR(fx_lr_at(&o, 9), 1.0, 1e-7);
	CHECK_NEAR(fx_lr_at(&o, 10), 1.0, 1e-7);
	/* q = 1/4: 0.1 + 0.45 (1 + cos(pi/4)) = 0.1 + 0.45 * 1.70710678 */
	CHECK_NEAR(fx_lr_at(&o, 35), 0.868198052, 1e-6);
	CHECK_NEAR(fx_lr_at(&o, 60), 0.55, 1e-6);
	CHECK_NEAR(fx_lr_at(&o, 110), 0.1, 1e-7);
	CHECK_NEAR(fx_lr_at(&o, 1000), 0.1, 1e-7);
	o.warmup_steps = 0;
	o.total_steps = 0;
	CHECK_NEAR(fx_lr_at(&o, 0), 0.1, 1e-7);
	fx_diag d;
	o.beta2 = 1.0f;
	CHECK(fx_adamw_validate(&o, &d) == FX_EINVAL);
	CHECK(strstr(d.msg, "betas") != NULL);
}

/* Hand computation, lr 0.1 (constant), betas 0.9/0.999, eps 1e-8, weight
 * decay 0.01, no clipping; matrix element w = 0.5, grads 0.2 then -0.1:
 *  step 1: m = 0.02, v = 4e-5, m^ = 0.2, v^ = 0.04, update 0.1*0.2/0.2 =
 *          0.1; w = 0.5*(1 - 0.001) - 0.1 = 0.3995
 *  step 2: m = 0.018 - 0.01 = 0.008, v = 3.996e-5 + 1e-5 = 4.996e-5,
 *          m^ = 0.008/0.19 = 0.0421053, v^ = 4.996e-5/0.001999 =
 *          0.0249925, update = 0.1*0.0421053/0.1580901 = 0.0266338;
 *          w = 0.3995*0.999 - 0.0266338 = 0.3724667
 * A norm weight 1.0 with the same grads gets no decay: 0.9, then
 *          0.9 - 0.0266338 = 0.8733662. */
static void test_adamw_by_hand(void)
{
	fx_config c = tiny_cfg(1, 1, false);
	fx_model m;
	fx_adamw a;
	fx_adamw_opts o;
	fx_step_info info;
	const float g[2] = {0.2f, -0.1f};

	CHECK(fx_model_init(&m, &c, true, NULL) == FX_OK);
	fx_adamw_defaults(&o);
	o.lr = o.lr_min = 0.1f;
	o.warmup_steps = o.total_steps = 0;
	o.beta1 = 0.9f;
	o.beta2 = 0.999f;
	o.eps = 1e-8f;
	o.weight_decay = 0.01f;
	o.clip_norm = 0.0f;
	CHECK(fx_adamw_init(&a, &m, &o, NULL) == FX_OK);
	m.embed[0] = 0.5f;
	m.final_norm[0] = 1.0f;
	m.lm_head[3] = 2.0f; /* zero gradient: only decay moves it */
	for (int s = 0; s < 2; s++) {
		fx_model_zero_grad(&m);
		m.grads[m.embed - m.params] = g[s];
		m.grads[m.final_norm - m.params] = g[s];
		CHECK(fx_adamw_step(&a, &m, NULL, &info, NULL) == FX_OK);
		CHECK_NEAR(info.lr, 0.1, 1e-8);
		CHECK_NEAR(info.grad_norm, sqrt(2.0) * fabs(g[s]), 1e-7);
	}
	CHECK_NEAR(m.embed[0], 0.3724667, 2e-6);
	CHECK_NEAR(m.final_norm[0], 0.8733662, 2e-6);
	CHECK_NEAR(m.lm_head[3], 2.0 * 0.999 * 0.999, 1e-6);
	CHECK(a.t == 2);
	fx_adamw_release(&a);

	/* clipping: grads (3, 4) have norm 5; clip 1 scales them to (0.6,
	 * 0.8), which the first moment shows: m = (1 - 0.9) * g. */
	o.clip_norm = 1.0f;
	CHECK(fx_adamw_init(&a, &m, &o, NULL) == FX_OK);
	fx_model_zero_grad(&m);
	m.grads[m.embed - m.params] = 3.0f;
	m.grads[m.final_norm - m.params] = 4.0f;
	CHECK(fx_adamw_step(&a, &m, NULL, &info, NULL) == FX_OK);
	CHECK_NEAR(info.grad_norm, 5.0, 1e-6);
	CHECK_NEAR(a.m[m.embed - m.params], 0.06, 1e-7);
	CHECK_NEAR(a.m[m.final_norm - m.params], 0.08, 1e-7);
	/* a non-finite gradient is refused and changes nothing */
	float before = m.embed[0];
	m.grads[m.embed - m.params] = NAN;
	CHECK(fx_adamw_step(&a, &m, NULL, NULL, NULL) == FX_ENUMERIC);
	CHECK(m.embed[0] == before && a.t == 1);
	fx_adamw_release(&a);
	fx_model_release(&m);
}

/* router_lr_mult scales the step of router rows and biases only: the first
 * AdamW step moves every parameter by lr * m^/sqrt(v^) = lr * sign(g)
 * (no decay, no clipping), so a router element moves mult times as far. */
static void test_router_lr_mult(void)
{
	fx_config c = tiny_cfg(2, 2, true);
	fx_model m;
	fx_adamw a;
	fx_adamw_opts o;
	float w0, r0, b0;

	CHECK(fx_model_init(&m, &c, true, NULL) == FX_OK);
	fx_adamw_defaults(&o);
	o.lr = o.lr_min = 0.01f;
	o.warmup_steps = o.total_steps = 0;
	o.weight_decay = 0.0f;
	o.clip_norm = 0.0f;
	o.router_lr_mult = 10.0f;
	CHECK(fx_adamw_init(&a, &m, &o, NULL) == FX_OK);
	m.layers[0].router_bias[1] = -1.0f;
	w0 = m.layers[0].wq[0];
	r0 = m.layers[0].router[3];
	b0 = m.layers[0].router_bias[1];
	fx_model_zero_grad(&m);
	m.grads[m.layers[0].wq - m.params] = 0.5f;
	m.grads[m.layers[0].router + 3 - m.params] = 0.5f;
	m.grads[m.layers[0].router_bias + 1 - m.params] = 0.5f;
	CHECK(fx_adamw_step(&a, &m, NULL, NULL, NULL) == FX_OK);
	CHECK_NEAR(w0 - m.layers[0].wq[0], 0.01, 1e-6);
	CHECK_NEAR(r0 - m.layers[0].router[3], 0.1, 1e-5);
	CHECK_NEAR(b0 - m.layers[0].router_bias[1], 0.1, 1e-5);
	o.router_lr_mult = 0.0f;
	CHECK(fx_adamw_validate(&o, NULL) == FX_EINVAL);
	fx_adamw_release(&a);
	fx_model_release(&m);
}

/* expert_anchor_decay pulls every FFN tensor of expert 1 towards expert 0's
 * twin by lr * decay of the difference (zero gradient: the Adam step is 0),
 * replaces weight decay there, and leaves frozen expert 0 untouched. */
static void test_expert_anchor_decay(void)
{
	fx_config c = tiny_cfg(2, 2, true);
	fx_freeze fz;
	fx_model m;
	fx_adamw a;
	fx_adamw_opts o;
	float *before;
	bool pulled = true, kept = true;

	CHECK(fx_model_init(&m, &c, true, NULL) == FX_OK);
	fx_model_init_weights(&m, 5);
	before = malloc(m.n_params * sizeof(float));
	memcpy(before, m.params, m.n_params * sizeof(float));
	memset(&fz, 0, sizeof(fz));
	fz.experts = 1u; /* expert 0's FFN frozen, nothing else */
	fx_adamw_defaults(&o);
	o.lr = o.lr_min = 0.01f;
	o.warmup_steps = o.total_steps = 0;
	o.expert_anchor_decay = 20.0f; /* pull 20% of the gap per step */
	CHECK(fx_adamw_init(&a, &m, &o, NULL) == FX_OK);
	fx_model_zero_grad(&m);
	CHECK(fx_adamw_step(&a, &m, &fz, NULL, NULL) == FX_OK);
	for (int l = 0; l < c.n_layers; l++) {
		const fx_layer *L = &m.layers[l];
		const float *w1[3] = {L->gate[1], L->up[1], L->down[1]};
		const float *w0[3] = {L->gate[0], L->up[0], L->down[0]};
		size_t n = (size_t)c.d_ff * (size_t)c.d_model;
		for (int k = 0; k < 3; k++)
			for (size_t i = 0; i < n; i++) {
				float old = before[w1[k] + i - m.params];
				float want = old - 0.2f * (old - w0[k][i]);
				pulled &= fabsf(w1[k][i] - want) <= 1e-6f;
				kept &= w0[k][i] ==
				        before[w0[k] + i - m.params];
			}
	}
	CHECK_MSG(pulled, "expert 1 moved by 20%% towards expert 0");
	CHECK_MSG(kept, "frozen expert 0 bitwise unchanged");
	o.expert_anchor_decay = 101.0f; /* lr * decay > 1 overshoots */
	CHECK(fx_adamw_validate(&o, NULL) == FX_EINVAL);
	o.expert_anchor_decay = -1.0f;
	CHECK(fx_adamw_validate(&o, NULL) == FX_EINVAL);
	free(before);
	fx_adamw_release(&a);
	fx_model_release(&m);
}

/* A router bias pushed upwards stops at 0. */
static void test_bias_clamp(void)
{
	fx_config c = tiny_cfg(2, 1, true);
	fx_model m;
	fx_adamw a;
	fx_adamw_opts o;
	CHECK(fx_model_init(&m, &c, true, NULL) == FX_OK);
	fx_adamw_defaults(&o);
	o.lr = o.lr_min = 0.1f;
	o.warmup_steps = o.total_steps = 0;
	CHECK(fx_adamw_init(&a, &m, &o, NULL) == FX_OK);
	m.layers[0].router_bias[0] = -0.05f;
	m.layers[0].router_bias[1] = -0.5f;
	fx_model_zero_grad(&m);
	m.grads[m.layers[0].router_bias - m.params] = -1.0f; /* moves up */
	m.grads[m.layers[0].router_bias + 1 - m.params] = -1.0f;
	CHECK(fx_adamw_step(&a, &m, NULL, NULL, NULL) == FX_OK);
	CHECK(m.layers[0].router_bias[0] == 0.0f);
	CHECK_NEAR(m.layers[0].router_bias[1], -0.4, 1e-6);
	fx_adamw_release(&a);
	fx_model_release(&m);
}

/* Trains 3 steps with one group frozen and checks, tensor slice by slice,
 * that exactly the frozen slices kept their bits. */
static void freeze_case(const char *what, const fx_freeze *fz)
{
	fx_config c = tiny_cfg(2, 2, true);
	fx_model m;
	fx_adamw a;
	fx_adamw_opts o;
	enum { B = 2, T = 8 };
	int32_t tok[B * T], tgt[B * T];
	fx_fwd_opts fo = {.z_loss = 1e-3f};
	float *orig;

	CHECK(fx_model_init(&m, &c, true, NULL) == FX_OK);
	CHECK(fx_model_reserve(&m, B, T, NULL) == FX_OK);
	fx_model_init_weights(&m, 11);
	for (int l = 0; l < c.n_layers; l++)
		for (int e = 0; e < 2; e++)
			m.layers[l].router_bias[e] = -0.5f;
	for (int i = 0; i < B * T; i++) {
		tok[i] = (i * 37 + 5) % 259;
		tgt[i] = (i * 53 + 7) % 259;
	}
	fx_adamw_defaults(&o);
	o.warmup_steps = 0;
	o.lr = 1e-2f;
	CHECK(fx_adamw_init(&a, &m, &o, NULL) == FX_OK);
	orig = malloc(m.n_params * sizeof(float));
	memcpy(orig, m.params, m.n_params * sizeof(float));
	for (int s = 0; s < 3; s++)
		CHECK(fx_train_step(&m, &a, fz, tok, tgt, B, T, &fo, NULL, NULL,
		                    NULL) == FX_OK);
	for (int i = 0; i < m.n_tensors; i++) {
		const fx_tensor *t = &m.tensors[i];
		size_t off = (size_t)(t->data - m.params);
		bool per_row = t->group == FX_GROUP_ROUTER ||
		               t->group == FX_GROUP_ROUTER_BIAS;
		size_t w = per_row ? (t->ndim == 2 ? (size_t)t->shape[1] : 1)
		                   : t->numel;
		for (size_t r = 0; r * w < t->numel; r++) {
			int e = per_row ? (int)r : t->expert;
			bool frozen = fx_freeze_has(fz, t->group, e);
			bool same = memcmp(t->data + r * w, orig + off + r * w,
			                   w * sizeof(float)) == 0;
			CHECK_MSG(same == frozen,
			          "freezing %s: %s row %zu is %s", what,
			          t->name, r, same ? "unchanged" : "changed");
		}
	}
	free(orig);
	fx_adamw_release(&a);
	fx_model_release(&m);
}

static void test_freeze(void)
{
	fx_freeze f;
	memset(&f, 0, sizeof(f));
	freeze_case("nothing", &f);
	f.embed = true;
	freeze_case("embeddings", &f);
	memset(&f, 0, sizeof(f));
	f.lm_head = true;
	freeze_case("lm_head", &f);
	memset(&f, 0, sizeof(f));
	f.final_norm = true;
	freeze_case("final norm", &f);
	memset(&f, 0, sizeof(f));
	f.attn = true;
	freeze_case("attention", &f);
	memset(&f, 0, sizeof(f));
	f.qk_norm = true;
	freeze_case("qk norms", &f);
	memset(&f, 0, sizeof(f));
	f.post_attn_norm = true;
	freeze_case("post-attention norms", &f);
	memset(&f, 0, sizeof(f));
	f.post_ff_norm = true;
	freeze_case("post-feedforward norms", &f);
	for (int e = 0; e < 2; e++) {
		memset(&f, 0, sizeof(f));
		f.experts = 1u << e;
		freeze_case("one expert", &f);
		memset(&f, 0, sizeof(f));
		f.router_rows = 1u << e;
		freeze_case("one router row", &f);
		memset(&f, 0, sizeof(f));
		f.router_bias = 1u << e;
		freeze_case("one router bias", &f);
	}
	/* the contributor's recipe: everything but expert 1, row 1, bias 1 */
	f = (fx_freeze){true, true, true, true, true, true, true, 1, 1, 1};
	freeze_case("all but expert 1", &f);
}

int main(void)
{
	fx_model_set_threads(1);
	RUN(test_schedule);
	RUN(test_adamw_by_hand);
	RUN(test_bias_clamp);
	RUN(test_router_lr_mult);
	RUN(test_expert_anchor_decay);
	RUN(test_freeze);
	return FX_TEST_REPORT();
}
