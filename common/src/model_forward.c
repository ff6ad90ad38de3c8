/* Forward pass of the FlexOlmo model (DESIGN §2): embeddings, OLMo 2 blocks
 * with QK-norm + RoPE attention and post-norm residuals, the top-k router
 * and SwiGLU experts, the final norm and lm_head, cross-entropy and z-loss.
 * Caches in the activation arena everything the backward pass needs. */
#include <math.h>
#include <string.h>

#include "flexo/model.h"
#include "model_internal.h"


/* Causal multi-head attention of one layer: att = softmax(q kᵀ / sqrt(hd),
 * causal) v, per (sequence, head), probabilities kept in P. Row blocks
 * of FX_ATT_BLOCK queries see only the keys up to their last row, so the
 * upper-triangle blocks are never computed; within a block, entries
 * above the diagonal are set to 0. P beyond a block's last key column is
 * never written or read. */
static void attention(const fx_model *m, float *att, float *P, const float *qr,
                      const float *kr, const float *v, int B, int T)
{
	int d = m->cfg.d_model, H = m->cfg.n_heads, hd = d / H;
	int blk = m->acts->att_block;
	float scale = 1.0f / sqrtf((float)hd);

	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++) {
			size_t base = (size_t)b * T * d + (size_t)h * hd;
			float *S = P + ((size_t)b * H + h) * T * T;
			for (int r0 = 0; r0 < T; r0 += blk) {
				int r1 = r0 + blk < T ? r0 + blk : T;
				float *Sb = S + (size_t)r0 * T;
				fx_mm(m->naive, false, true, r1 - r0, r1, hd,
				      scale, qr + base + (size_t)r0 * d, d,
				      kr + base, d, 0.0f, Sb, T);
				for (int i = r0; i < r1; i++) {
					float *s = S + (size_t)i * T;
					float mx = fx_max(s, i + 1);
					for (int j = 0; j <= i; j++)
						s[j] = fx_exp(s[j] - mx);
					float inv = 1.0f / fx_sum(s, i + 1);
					for (int j = 0; j <= i; j++)
						s[j] *= inv;
					for (int j = i + 1; j < r1; j++)
						s[j] = 0.0f;
				}
				fx_mm(m->naive, false, false, r1 - r0, hd, r1,
				      1.0f, Sb, T, v + base, d, 0.0f,
				      att + base + (size_t)r0 * d, d);
			}
		}
}

/* Router of one layer: logits, softmax over all enabled experts, top-k
 * (ties: the lower expert index wins, by strict comparison in index
 * order), the rows grouped by expert, and the gathered expert inputs.
 * Returns the z-loss sum of lse^2 over the N tokens. */
static double route(fx_model *m, int l, size_t N, const fx_fwd_opts *o)
{
	const fx_config *c = &m->cfg;
	fx_acts *a = m->acts;
	const fx_layer *ly = &m->layers[l];
	int E = c->n_experts, K = c->top_k, d = c->d_model;
	const float *h = a->h + l * a->cap * d;
	float *lg = a->rlogit + l * a->cap * E, *pr = a->prob + l * a->cap * E;
	float *lse = a->lse + l * a->cap;
	int32_t *sel = a->sel + l * a->cap * K;
	int32_t *off = a->off + l * (E + 1),
	        *row_tok = a->row_tok + l * a->cap * K;
	float *xg = a->xg + l * a->cap * K * d;
	int32_t cursor[FX_MAX_EXPERTS];
	double zsum = 0.0;

	fx_mm(m->naive, false, true, (int)N, E, d, 1.0f, h, d, ly->router, d,
	      0.0f, lg, E);
	memset(off, 0, (size_t)(E + 1) * sizeof(*off));
	for (size_t t = 0; t < N; t++) {
		float *z = lg + t * E, *p = pr + t * E, mx = -INFINITY;
		for (int e = 0; e < E; e++) {
			if (ly->router_bias != NULL)
				z[e] += ly->router_bias[e];
			if (a->disabled >> e & 1)
				z[e] = -INFINITY;
			mx = z[e] > mx ? z[e] : mx;
		}
		double s = 0.0;
		for (int e = 0; e < E; e++)
			s += exp((double)(z[e] - mx));
		float ls = mx + (float)log(s);
		lse[t] = ls;
		zsum += (double)ls * ls;
		for (int e = 0; e < E; e++)
			p[e] = (a->disabled >> e & 1) ? 0.0f : expf(z[e] - ls);
		/* top-k by repeated arg-max over the unchosen enabled experts
		 */
		uint64_t taken = a->disabled;
		for (int s_ = 0; s_ < K; s_++) {
			int best = -1;
			for (int e = 0; e < E; e++)
				if (!(taken >> e & 1) &&
				    (best < 0 || z[e] > z[best]))
					best = e;
			sel[t * K + s_] = best;
			if (best >= 0) {
				taken |= 1ull << best;
				off[best + 1]++;
				if (o != NULL && o->route_counts != NULL)
					o->route_counts[(size_t)l * E + best]++;
			}
		}
		if (o != NULL && o->route_prob != NULL)
			for (int e = 0; e < E; e++)
				o->route_prob[(size_t)l * E + e] += p[e];
	}
	for (int e = 0; e < E; e++) {
		off[e + 1] += off[e];
		cursor[e] = off[e];
	}
	for (size_t t = 0; t < N; t++)
		for (int s_ = 0; s_ < K; s_++) {
			int e = sel[t * K + s_];
			if (e < 0)
				continue;
			int r = cursor[e]++;
			row_tok[r] = (int32_t)t;
			memcpy(xg + (size_t)r * d, h + t * d,
			       (size_t)d * sizeof(float));
		}
	return zsum;
}

/* act = silu(g) * u; restrict lets the compiler vectorise it. */
static void swiglu(float *restrict act, const float *restrict g,
                   const float *restrict u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		act[i] = g[i] / (1.0f + fx_exp(-g[i])) * u[i];
}

/* Experts of one layer over their gathered rows; moe = Σ p_e SwiGLU_e. */
static void experts(fx_model *m, int l, size_t N)
{
	const fx_config *c = &m->cfg;
	fx_acts *a = m->acts;
	const fx_layer *ly = &m->layers[l];
	int E = c->n_experts, K = c->top_k, d = c->d_model, F = c->d_ff;
	size_t rows = a->cap * K;
	const int32_t *off = a->off + l * (E + 1);
	const int32_t *row_tok = a->row_tok + l * rows;
	const float *pr = a->prob + l * a->cap * E;
	float *moe = a->moe + l * a->cap * d;

	memset(moe, 0, N * d * sizeof(float));
	for (int e = 0; e < E; e++) {
		int n = off[e + 1] - off[e];
		if (n == 0)
			continue;
		size_t r0 = (size_t)off[e];
		const float *x = a->xg + l * rows * d + r0 * d;
		float *g = a->g + l * rows * F + r0 * F;
		float *u = a->u + l * rows * F + r0 * F;
		float *act = a->a + l * rows * F + r0 * F;
		float *y = a->y + l * rows * d + r0 * d;
		fx_mm(m->naive, false, true, n, F, d, 1.0f, x, d, ly->gate[e],
		      d, 0.0f, g, F);
		fx_mm(m->naive, false, true, n, F, d, 1.0f, x, d, ly->up[e], d,
		      0.0f, u, F);
		swiglu(act, g, u, (size_t)n * F);
		fx_mm(m->naive, false, true, n, d, F, 1.0f, act, F, ly->down[e],
		      F, 0.0f, y, d);
		for (int r = 0; r < n; r++) {
			size_t t = (size_t)row_tok[r0 + r];
			float p = pr[t * E + e];
			float *dst = moe + t * d;
			const float *src = y + (size_t)r * d;
			for (int j = 0; j < d; j++)
				dst[j] += p * src[j];
		}
	}
}

static void layer_forward(fx_model *m, int l, int B, int T, double *zsum,
                          const fx_fwd_opts *o)
{
	const fx_config *c = &m->cfg;
	fx_acts *a = m->acts;
	const fx_layer *ly = &m->layers[l];
	int d = c->d_model;
	size_t N = (size_t)B * T, cd = a->cap * d;
	const float *x = a->res + l * cd;
	float *q = a->q + l * cd, *k = a->k + l * cd, *v = a->v + l * cd;
	float *qr = a->qr + l * cd, *kr = a->kr + l * cd;
	float *att = a->att + l * cd, *ao = a->ao + l * cd;
	float *h = a->h + l * cd, *moe = a->moe + l * cd;
	float *y = a->res + (l + 1) * cd;

	fx_mm(m->naive, false, true, (int)N, d, d, 1.0f, x, d, ly->wq, d, 0.0f,
	      q, d);
	fx_mm(m->naive, false, true, (int)N, d, d, 1.0f, x, d, ly->wk, d, 0.0f,
	      k, d);
	fx_mm(m->naive, false, true, (int)N, d, d, 1.0f, x, d, ly->wv, d, 0.0f,
	      v, d);
	fx_rmsnorm_fwd(qr, a->rstd_q + l * a->cap, q, ly->q_norm, N, d,
	               c->norm_eps);
	fx_rmsnorm_fwd(kr, a->rstd_k + l * a->cap, k, ly->k_norm, N, d,
	               c->norm_eps);
	fx_rope(qr, a, B, T, d, c->n_heads, 1.0f);
	fx_rope(kr, a, B, T, d, c->n_heads, 1.0f);
	attention(m, att, a->P + l * a->p_stride, qr, kr, v, B, T);
	fx_mm(m->naive, false, true, (int)N, d, d, 1.0f, att, d, ly->wo, d,
	      0.0f, ao, d);
	/* post-norm residual: h = x + norm(attn(x)) */
	fx_rmsnorm_fwd(h, a->rstd_a + l * a->cap, ao, ly->post_attn_norm, N, d,
	               c->norm_eps);
	for (size_t i = 0; i < N * d; i++)
		h[i] += x[i];
	*zsum += route(m, l, N, o);
	experts(m, l, N);
	fx_rmsnorm_fwd(y, a->rstd_m + l * a->cap, moe, ly->post_ff_norm, N, d,
	               c->norm_eps);
	for (size_t i = 0; i < N * d; i++)
		y[i] += h[i];
}

fx_err fx_model_forward(fx_model *m, const int32_t *tokens,
                        const int32_t *targets, int B, int T,
                        const fx_fwd_opts *opts, fx_loss *loss, fx_diag *diag)
{
	const fx_config *c = &m->cfg;
	fx_acts *a = m->acts;
	int d = c->d_model, V = c->vocab_size, E = c->n_experts;
	uint64_t all = E >= 64 ? ~0ull : (1ull << E) - 1;
	uint64_t disabled = opts != NULL ? opts->disabled_experts : 0;
	size_t N;
	double zsum = 0.0, nll = 0.0;
	int64_t n_targets = 0;

	if (a == NULL)
		return fx_diag_set(diag, FX_ESTATE,
		                   "forward before fx_model_reserve");
	if (B < 1 || T < 1 || T > a->max_t || (size_t)B * (size_t)T > a->cap)
		return fx_diag_set(diag, FX_EINVAL,
		                   "batch %d x %d exceeds the reserved %d x %d "
		                   "tokens",
		                   B, T, a->max_b, a->max_t);
	if (disabled & ~all)
		return fx_diag_set(diag, FX_EINVAL,
		                   "disabled_experts 0x%llx names an expert >= "
		                   "n_experts = %d",
		                   (unsigned long long)disabled, E);
	if ((disabled & all) == all)
		return fx_diag_set(diag, FX_EINVAL,
		                   "disabled_experts disables all %d experts",
		                   E);
	if (opts != NULL && !(opts->z_loss >= 0.0f && isfinite(opts->z_loss)))
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "z_loss coefficient %g must be finite and >= 0",
		    (double)opts->z_loss);
	N = (size_t)B * T;
	for (size_t t = 0; t < N; t++) {
		if (tokens[t] < 0 || tokens[t] >= V)
			return fx_diag_set(
			    diag, FX_EINVAL,
			    "token %d at position %zu is outside "
			    "the vocabulary [0, %d)",
			    tokens[t], t, V);
		if (targets != NULL && targets[t] >= V)
			return fx_diag_set(
			    diag, FX_EINVAL,
			    "target %d at position %zu is outside "
			    "the vocabulary [0, %d)",
			    targets[t], t, V);
	}
	a->valid = false;
	a->B = B;
	a->T = T;
	a->disabled = disabled;
	a->z_loss = opts != NULL ? opts->z_loss : 0.0f;
	a->have_targets = targets != NULL;
	memcpy(a->tokens, tokens, N * sizeof(*tokens));
	if (targets != NULL)
		memcpy(a->targets, targets, N * sizeof(*targets));

	for (size_t t = 0; t < N; t++)
		memcpy(a->res + t * d, m->embed + (size_t)tokens[t] * d,
		       (size_t)d * sizeof(float));
	for (int l = 0; l < c->n_layers; l++)
		layer_forward(m, l, B, T, &zsum, opts);
	fx_rmsnorm_fwd(a->xf, a->rstd_f,
	               a->res + (size_t)c->n_layers * a->cap * d, m->final_norm,
	               N, d, c->norm_eps);
	fx_mm(m->naive, false, true, (int)N, V, d, 1.0f, a->xf, d, m->lm_head,
	      d, 0.0f, a->logits, V);

	if (targets != NULL) {
		for (size_t t = 0; t < N; t++) {
			if (targets[t] < 0)
				continue;
			/* the exps go through dlogits as scratch: backward
			 * rewrites it whole */
			const float *z = a->logits + t * V;
			float *ex = a->dlogits + t * V;
			float mx = fx_max(z, V);
			for (int j = 0; j < V; j++)
				ex[j] = fx_exp(z[j] - mx);
			double s = (double)fx_sum(ex, V);
			nll += (double)mx + log(s) - (double)z[targets[t]];
			n_targets++;
		}
		a->n_targets = n_targets;
		if (loss != NULL) {
			loss->nll_sum = nll;
			loss->n_targets = n_targets;
			loss->ce =
			    n_targets > 0 ? nll / (double)n_targets : 0.0;
			loss->z = zsum / ((double)N * c->n_layers);
			loss->total = loss->ce + (double)a->z_loss * loss->z;
		}
	}
	a->valid = true;
	return FX_OK;
}

const float *fx_model_logits(const fx_model *m)
{
	return m->acts != NULL ? m->acts->logits : NULL;
}

fx_err fx_model_eval(fx_model *m, const int32_t *tokens, const int32_t *targets,
                     int B, int T, uint64_t disabled_experts, double *nll_nats,
                     int64_t *n_tokens, fx_diag *diag)
{
	fx_fwd_opts o = {.disabled_experts = disabled_experts};
	fx_loss loss;
	fx_err err;

	if (targets == NULL)
		return fx_diag_set(diag, FX_EINVAL, "eval needs targets");
	err = fx_model_forward(m, tokens, targets, B, T, &o, &loss, diag);
	if (err != FX_OK)
		return err;
	*nll_nats += loss.nll_sum;
	*n_tokens += loss.n_targets;
	return FX_OK;
}
