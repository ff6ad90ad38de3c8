/* Incremental decoding with a KV cache: one token at a time through the
 * same layers as model_forward.c, matrix-vector products (sgemv) only, and
 * only the selected experts evaluated. For serving. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/model.h"
#include "model_internal.h"

/* Scratch floats of one step: 10 vectors of d, gate and up (d_ff), router
 * logits and probabilities (E), attention scores (max_t). */
static size_t work_floats(int d, int F, int E, int max_t)
{
	return 10 * (size_t)d + 2 * (size_t)F + 2 * (size_t)E + (size_t)max_t;
}

fx_err fx_kv_init(fx_kv_cache *kv, const fx_config *cfg, int max_t,
                  fx_diag *diag)
{
	fx_err err;
	size_t per;

	memset(kv, 0, sizeof(*kv));
	if ((err = fx_config_validate(cfg, diag)) != FX_OK)
		return err;
	if (max_t < 1 || max_t > cfg->max_seq)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "KV cache length %d is outside [1, max_seq = "
		    "%d]",
		    max_t, cfg->max_seq);
	/* bounded by FX_MAX_LAYERS * FX_MAX_SEQ * FX_MAX_DIM < 2^33 */
	per = (size_t)cfg->n_layers * (size_t)max_t * (size_t)cfg->d_model;
	kv->k = calloc(2 * per + work_floats(cfg->d_model, cfg->d_ff,
	                                     cfg->n_experts, max_t),
	               sizeof(float));
	if (kv->k == NULL)
		return fx_diag_set(diag, FX_ENOMEM,
		                   "cannot allocate a KV cache of %d tokens",
		                   max_t);
	kv->v = kv->k + per;
	kv->work = kv->v + per;
	kv->n_layers = cfg->n_layers;
	kv->d = cfg->d_model;
	kv->d_ff = cfg->d_ff;
	kv->n_experts = cfg->n_experts;
	kv->max_t = max_t;
	return FX_OK;
}

void fx_kv_release(fx_kv_cache *kv)
{
	free(kv->k);
	memset(kv, 0, sizeof(*kv));
}

void fx_kv_reset(fx_kv_cache *kv)
{
	kv->len = 0;
}

/* HF rotate_half rotation of every head of one vector at position t. */
static void rope_one(float *x, int t, int d, int H, float theta)
{
	int hd = d / H, half = hd / 2;
	for (int i = 0; i < half; i++) {
		/* the same double-precision angle as fx_model_reserve's table
		 */
		double inv = pow((double)theta, -(double)(2 * i) / (double)hd);
		float c = (float)cos((double)t * inv);
		float s = (float)sin((double)t * inv);
		for (int h = 0; h < H; h++) {
			float *p = x + h * hd;
			float x1 = p[i], x2 = p[i + half];
			p[i] = x1 * c - x2 * s;
			p[i + half] = x2 * c + x1 * s;
		}
	}
}

/* y = W x for an nn.Linear weight W (out, in). */
static void linear(const fx_model *m, float *y, const float *W, const float *x,
                   int out, int in)
{
	fx_mm(m->naive, false, true, 1, out, in, 1.0f, x, in, W, in, 0.0f, y,
	      out);
}

fx_err fx_model_decode(const fx_model *m, fx_kv_cache *kv, int32_t token,
                       uint64_t disabled_experts, float *logits, fx_diag *diag)
{
	const fx_config *c = &m->cfg;
	int d = c->d_model, F = c->d_ff, E = c->n_experts, V = c->vocab_size;
	int H = c->n_heads, hd = d / H, K = c->top_k, pos = kv->len;
	uint64_t all = E >= 64 ? ~0ull : (1ull << E) - 1;
	float scale = 1.0f / sqrtf((float)hd), rstd;
	float *x, *t1, *q, *k, *v, *att, *ao, *moe, *ye, *g, *u, *rl, *pr, *sc;

	if (kv->n_layers != c->n_layers || kv->d != d || kv->d_ff != F ||
	    kv->n_experts != E)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "KV cache was made for another model shape");
	if (pos >= kv->max_t)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "KV cache full: %d tokens decoded",
		                   kv->max_t);
	if (token < 0 || token >= V)
		return fx_diag_set(diag, FX_EINVAL,
		                   "token %d is outside the vocabulary [0, %d)",
		                   token, V);
	if ((disabled_experts & ~all) || (disabled_experts & all) == all)
		return fx_diag_set(diag, FX_EINVAL,
		                   "disabled_experts 0x%llx is not a proper "
		                   "subset of the %d experts",
		                   (unsigned long long)disabled_experts, E);
	x = kv->work;
	t1 = x + d;
	q = t1 + d;
	k = q + d;
	v = k + d;
	att = v + d;
	ao = att + d;
	moe = ao + d;
	ye = moe + d;
	g = ye + 2 * d; /* ye and one spare vector */
	u = g + F;
	rl = u + F;
	pr = rl + E;
	sc = pr + E;

	memcpy(x, m->embed + (size_t)token * d, (size_t)d * sizeof(float));
	for (int l = 0; l < c->n_layers; l++) {
		const fx_layer *ly = &m->layers[l];
		float *kc = kv->k + ((size_t)l * kv->max_t) * d;
		float *vc = kv->v + ((size_t)l * kv->max_t) * d;

		linear(m, t1, ly->wq, x, d, d);
		fx_rmsnorm_fwd(q, &rstd, t1, ly->q_norm, 1, d, c->norm_eps);
		linear(m, t1, ly->wk, x, d, d);
		fx_rmsnorm_fwd(k, &rstd, t1, ly->k_norm, 1, d, c->norm_eps);
		linear(m, v, ly->wv, x, d, d);
		rope_one(q, pos, d, H, c->rope_theta);
		rope_one(k, pos, d, H, c->rope_theta);
		memcpy(kc + (size_t)pos * d, k, (size_t)d * sizeof(float));
		memcpy(vc + (size_t)pos * d, v, (size_t)d * sizeof(float));
		for (int h = 0; h < H; h++) {
			/* scores over positions 0..pos, then their mix of V */
			fx_mm(m->naive, false, true, 1, pos + 1, hd, scale,
			      q + h * hd, hd, kc + h * hd, d, 0.0f, sc,
			      pos + 1);
			float mx = fx_max(sc, pos + 1);
			for (int j = 0; j <= pos; j++)
				sc[j] = fx_exp(sc[j] - mx);
			float inv = 1.0f / fx_sum(sc, pos + 1);
			for (int j = 0; j <= pos; j++)
				sc[j] *= inv;
			fx_mm(m->naive, false, false, 1, hd, pos + 1, 1.0f, sc,
			      pos + 1, vc + h * hd, d, 0.0f, att + h * hd, hd);
		}
		linear(m, ao, ly->wo, att, d, d);
		fx_rmsnorm_fwd(t1, &rstd, ao, ly->post_attn_norm, 1, d,
		               c->norm_eps);
		for (int j = 0; j < d; j++)
			x[j] += t1[j]; /* x is now h */

		/* router: softmax over all enabled experts, top-k by logit,
		 * lower index first on ties — as route() in model_forward.c */
		linear(m, rl, ly->router, x, E, d);
		float mx = -INFINITY;
		for (int e = 0; e < E; e++) {
			if (ly->router_bias != NULL)
				rl[e] += ly->router_bias[e];
			if (disabled_experts >> e & 1)
				rl[e] = -INFINITY;
			mx = rl[e] > mx ? rl[e] : mx;
		}
		double s = 0.0;
		for (int e = 0; e < E; e++)
			s += exp((double)(rl[e] - mx));
		float ls = mx + (float)log(s);
		for (int e = 0; e < E; e++)
			pr[e] = (disabled_experts >> e & 1) ? 0.0f
			                                    : expf(rl[e] - ls);
		memset(moe, 0, (size_t)d * sizeof(float));
		uint64_t taken = disabled_experts;
		int sel[FX_MAX_EXPERTS], n_sel = 0;
		for (int slot = 0; slot < K; slot++) {
			int best = -1;
			for (int e = 0; e < E; e++)
				if (!(taken >> e & 1) &&
				    (best < 0 || rl[e] > rl[best]))
					best = e;
			if (best < 0)
				break;
			taken |= 1ull << best;
			sel[n_sel++] = best;
		}
		/* accumulate in expert order, as the batched path does */
		for (int e = 0; e < E; e++) {
			bool chosen = false;
			for (int i = 0; i < n_sel; i++)
				chosen = chosen || sel[i] == e;
			if (!chosen)
				continue;
			linear(m, g, ly->gate[e], x, F, d);
			linear(m, u, ly->up[e], x, F, d);
			for (int i = 0; i < F; i++)
				g[i] = g[i] / (1.0f + fx_exp(-g[i])) * u[i];
			linear(m, ye, ly->down[e], g, d, F);
			for (int j = 0; j < d; j++)
				moe[j] += pr[e] * ye[j];
		}
		fx_rmsnorm_fwd(t1, &rstd, moe, ly->post_ff_norm, 1, d,
		               c->norm_eps);
		for (int j = 0; j < d; j++)
			x[j] += t1[j];
	}
	fx_rmsnorm_fwd(t1, &rstd, x, m->final_norm, 1, d, c->norm_eps);
	linear(m, logits, m->lm_head, t1, V, d);
	kv->len = pos + 1;
	return FX_OK;
}
