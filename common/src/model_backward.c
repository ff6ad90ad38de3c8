/* Backward pass of the FlexOlmo model: gradients of the last forward's
 * loss (mean cross-entropy + z-loss) accumulated into the gradient arena,
 * skipping the weight-gradient matmuls of frozen groups. */
#include <math.h>
#include <string.h>

#include "flexo/model.h"
#include "model_internal.h"


/* dq, dk, dv of causal attention from datt. */
static void attention_bwd(const fx_model *m, int l, int B, int T)
{
	fx_acts *a = m->acts;
	int d = m->cfg.d_model, H = m->cfg.n_heads, hd = d / H;
	size_t cd = a->cap * d;
	const float *qr = a->qr + l * cd, *kr = a->kr + l * cd;
	const float *v = a->v + l * cd, *P = a->P + l * a->p_stride;
	float scale = 1.0f / sqrtf((float)hd);
	float *dP = a->dP;
	int blk = a->att_block;

	for (int b = 0; b < B; b++)
		for (int h = 0; h < H; h++) {
			size_t base = (size_t)b * T * d + (size_t)h * hd;
			const float *S = P + ((size_t)b * H + h) * T * T;
			const float *dO = a->datt + base;
			float *dV = a->dv + base, *dK = a->dk + base;
			/* Row blocks as in the forward, last first: it spans
			 * every key, so it initialises dV and dK (beta 0) and
			 * the earlier, shorter blocks add to them. */
			int last = (T - 1) / blk * blk;
			for (int r0 = last; r0 >= 0; r0 -= blk) {
				int r1 = r0 + blk < T ? r0 + blk : T;
				int nr = r1 - r0;
				float beta = r0 == last ? 0.0f : 1.0f;
				const float *Sb = S + (size_t)r0 * T;
				const float *dOb = dO + (size_t)r0 * d;
				float *dPb = dP + (size_t)r0 * T;
				/* dV = Pᵀ dO, dP = dO Vᵀ */
				fx_mm(m->naive, true, false, r1, hd, nr, 1.0f,
				      Sb, T, dOb, d, beta, dV, d);
				fx_mm(m->naive, false, true, nr, r1, hd, 1.0f,
				      dOb, d, v + base, d, 0.0f, dPb, T);
				/* softmax backward, scaled:
				 * dS = P (dP - rowsum(P dP)) */
				for (int i = r0; i < r1; i++) {
					const float *p = S + (size_t)i * T;
					float *g = dP + (size_t)i * T;
					float dot = fx_dot(p, g, i + 1);
					for (int j = 0; j <= i; j++)
						g[j] =
						    p[j] * (g[j] - dot) * scale;
					for (int j = i + 1; j < r1; j++)
						g[j] = 0.0f;
				}
				/* dQ = dS K, dK = dSᵀ Q */
				fx_mm(m->naive, false, false, nr, hd, r1, 1.0f,
				      dPb, T, kr + base, d, 0.0f,
				      a->dq + base + (size_t)r0 * d, d);
				fx_mm(m->naive, true, false, r1, hd, nr, 1.0f,
				      dPb, T, qr + base + (size_t)r0 * d, d,
				      beta, dK, d);
			}
		}
}

/* On entry dg holds dL/d(silu(g) u); on exit dL/dg, and du = dL/du.
 * silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g). */
static void swiglu_bwd(float *restrict dg, float *restrict du,
                       const float *restrict g, const float *restrict u,
                       size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float sg = 1.0f / (1.0f + fx_exp(-g[i]));
		float da = dg[i];
		du[i] = da * g[i] * sg;
		dg[i] = da * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
	}
}

/* dW (out, in) += dYᵀ X unless frozen. */
static void weight_grad(const fx_model *m, bool frozen, float *dw,
                        const float *dy, const float *x, int n, int out, int in)
{
	if (frozen || n == 0)
		return;
	fx_mm(m->naive, true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw,
	      in);
}

static float *grad_of(const fx_model *m, const float *param)
{
	return m->grads + (param - m->params);
}

/* MoE and router backward of layer l: from dm (= a->dt, gradient at the
 * MoE output) adds the input gradient into a->dh. */
static void moe_bwd(fx_model *m, int l, size_t N, const fx_freeze *fz)
{
	const fx_config *c = &m->cfg;
	fx_acts *a = m->acts;
	const fx_layer *ly = &m->layers[l];
	int E = c->n_experts, K = c->top_k, d = c->d_model, F = c->d_ff;
	size_t rows = a->cap * K;
	const int32_t *off = a->off + l * (E + 1);
	const int32_t *row_tok = a->row_tok + l * rows;
	const float *pr = a->prob + l * a->cap * E;
	const float *lse = a->lse + l * a->cap;
	const float *h = a->h + l * a->cap * d;
	const float *dm = a->dt;
	float *dprob = a->dprob, *drl = a->drl;

	memset(dprob, 0, N * E * sizeof(float));
	for (int e = 0; e < E; e++) {
		int n = off[e + 1] - off[e];
		if (n == 0)
			continue;
		size_t r0 = (size_t)off[e];
		const float *x = a->xg + l * rows * d + r0 * d;
		const float *g = a->g + l * rows * F + r0 * F;
		const float *u = a->u + l * rows * F + r0 * F;
		const float *act = a->a + l * rows * F + r0 * F;
		const float *y = a->y + l * rows * d + r0 * d;
		float *dy = a->dy + r0 * d, *dg = a->dg + r0 * F;
		float *du = a->du + r0 * F, *dxg = a->dxg + r0 * d;
		bool frozen = fx_freeze_has(fz, FX_GROUP_EXPERT, e);

		for (int r = 0; r < n; r++) {
			size_t t = (size_t)row_tok[r0 + r];
			float p = pr[t * E + e];
			const float *gm = dm + t * d, *yr = y + (size_t)r * d;
			float *dyr = dy + (size_t)r * d;
			for (int j = 0; j < d; j++)
				dyr[j] = p * gm[j];
			dprob[t * E + e] = fx_dot(gm, yr, d);
		}
		weight_grad(m, frozen, grad_of(m, ly->down[e]), dy, act, n, d,
		            F);
		/* dA = dY down, into dg; then split into dG and dU */
		fx_mm(m->naive, false, false, n, F, d, 1.0f, dy, d, ly->down[e],
		      F, 0.0f, dg, F);
		swiglu_bwd(dg, du, g, u, (size_t)n * F);
		weight_grad(m, frozen, grad_of(m, ly->gate[e]), dg, x, n, F, d);
		weight_grad(m, frozen, grad_of(m, ly->up[e]), du, x, n, F, d);
		fx_mm(m->naive, false, false, n, d, F, 1.0f, dg, F, ly->gate[e],
		      d, 0.0f, dxg, d);
		fx_mm(m->naive, false, false, n, d, F, 1.0f, du, F, ly->up[e],
		      d, 1.0f, dxg, d);
		for (int r = 0; r < n; r++) {
			size_t t = (size_t)row_tok[r0 + r];
			float *dst = a->dh + t * d;
			const float *src = dxg + (size_t)r * d;
			for (int j = 0; j < d; j++)
				dst[j] += src[j];
		}
	}
	/* Softmax over all experts: non-selected experts have dprob = 0 but
	 * still get gradient through the normalisation. z-loss: d(lse^2)/dz_j
	 * = 2 lse p_j, averaged over tokens and layers. */
	float zc = (float)(2.0 * a->z_loss / ((double)N * c->n_layers));
	for (size_t t = 0; t < N; t++) {
		const float *p = pr + t * E, *gp = dprob + t * E;
		float *gz = drl + t * E, dot = 0.0f;
		for (int e = 0; e < E; e++)
			dot += p[e] * gp[e];
		for (int e = 0; e < E; e++)
			gz[e] = p[e] * (gp[e] - dot) + zc * lse[t] * p[e];
	}
	/* Router rows and biases: computed whole, kept per expert row. */
	fx_mm(m->naive, true, false, E, d, (int)N, 1.0f, drl, E, h, d, 0.0f,
	      a->dwr, d);
	float *gw = grad_of(m, ly->router);
	for (int e = 0; e < E; e++) {
		if (fx_freeze_has(fz, FX_GROUP_ROUTER, e))
			continue;
		for (int j = 0; j < d; j++)
			gw[(size_t)e * d + j] += a->dwr[(size_t)e * d + j];
	}
	if (ly->router_bias != NULL) {
		float *gb = grad_of(m, ly->router_bias);
		for (int e = 0; e < E; e++) {
			if (fx_freeze_has(fz, FX_GROUP_ROUTER_BIAS, e))
				continue;
			float s = 0.0f;
			for (size_t t = 0; t < N; t++)
				s += drl[t * E + e];
			gb[e] += s;
		}
	}
	fx_mm(m->naive, false, false, (int)N, d, E, 1.0f, drl, E, ly->router, d,
	      1.0f, a->dh, d);
}

/* One layer: a->dx holds dL/dy on entry and dL/dx on exit. */
static void layer_bwd(fx_model *m, int l, int B, int T, const fx_freeze *fz)
{
	const fx_config *c = &m->cfg;
	fx_acts *a = m->acts;
	const fx_layer *ly = &m->layers[l];
	int d = c->d_model;
	size_t N = (size_t)B * T, cd = a->cap * d, nd = N * d;
	const float *x = a->res + l * cd;
	const float *q = a->q + l * cd, *k = a->k + l * cd;
	const float *att = a->att + l * cd, *ao = a->ao + l * cd;
	const float *moe = a->moe + l * cd;
	bool f_attn = fx_freeze_has(fz, FX_GROUP_ATTN, -1);
	bool f_qk = fx_freeze_has(fz, FX_GROUP_QK_NORM, -1);
	bool f_pa = fx_freeze_has(fz, FX_GROUP_POST_ATTN_NORM, -1);
	bool f_pf = fx_freeze_has(fz, FX_GROUP_POST_FF_NORM, -1);

	/* y = h + norm(moe): dh = dy + moe backward of norm backward */
	memcpy(a->dh, a->dx, nd * sizeof(float));
	fx_rmsnorm_bwd(a->dt, f_pf ? NULL : grad_of(m, ly->post_ff_norm), a->dx,
	               moe, a->rstd_m + l * a->cap, ly->post_ff_norm, N, d,
	               false);
	moe_bwd(m, l, N, fz);
	/* Below the first MoE only frozen parameters left (the contributor's
	 * case): nothing further down needs a gradient. */
	if (l == 0 && f_attn && f_qk && f_pa &&
	    fx_freeze_has(fz, FX_GROUP_EMBED, -1))
		return;
	/* h = x + norm(ao): dx = dh + ... */
	memcpy(a->dx, a->dh, nd * sizeof(float));
	fx_rmsnorm_bwd(a->dt, f_pa ? NULL : grad_of(m, ly->post_attn_norm),
	               a->dh, ao, a->rstd_a + l * a->cap, ly->post_attn_norm, N,
	               d, false);
	/* ao = att Woᵀ */
	weight_grad(m, f_attn, grad_of(m, ly->wo), a->dt, att, (int)N, d, d);
	fx_mm(m->naive, false, false, (int)N, d, d, 1.0f, a->dt, d, ly->wo, d,
	      0.0f, a->datt, d);
	attention_bwd(m, l, B, T);
	fx_rope(a->dq, a, B, T, d, c->n_heads, -1.0f);
	fx_rope(a->dk, a, B, T, d, c->n_heads, -1.0f);
	/* QK-norm backward, in place through dt as scratch */
	fx_rmsnorm_bwd(a->dt, f_qk ? NULL : grad_of(m, ly->q_norm), a->dq, q,
	               a->rstd_q + l * a->cap, ly->q_norm, N, d, false);
	memcpy(a->dq, a->dt, nd * sizeof(float));
	fx_rmsnorm_bwd(a->dt, f_qk ? NULL : grad_of(m, ly->k_norm), a->dk, k,
	               a->rstd_k + l * a->cap, ly->k_norm, N, d, false);
	memcpy(a->dk, a->dt, nd * sizeof(float));
	weight_grad(m, f_attn, grad_of(m, ly->wq), a->dq, x, (int)N, d, d);
	weight_grad(m, f_attn, grad_of(m, ly->wk), a->dk, x, (int)N, d, d);
	weight_grad(m, f_attn, grad_of(m, ly->wv), a->dv, x, (int)N, d, d);
	fx_mm(m->naive, false, false, (int)N, d, d, 1.0f, a->dq, d, ly->wq, d,
	      1.0f, a->dx, d);
	fx_mm(m->naive, false, false, (int)N, d, d, 1.0f, a->dk, d, ly->wk, d,
	      1.0f, a->dx, d);
	fx_mm(m->naive, false, false, (int)N, d, d, 1.0f, a->dv, d, ly->wv, d,
	      1.0f, a->dx, d);
}

void fx_model_zero_grad(fx_model *m)
{
	if (m->grads != NULL)
		memset(m->grads, 0, m->n_params * sizeof(float));
}

fx_err fx_model_backward(fx_model *m, const fx_freeze *frozen, fx_diag *diag)
{
	const fx_config *c = &m->cfg;
	fx_acts *a = m->acts;
	int d = c->d_model, V = c->vocab_size;
	size_t N;

	if (m->grads == NULL)
		return fx_diag_set(
		    diag, FX_ESTATE,
		    "backward on a model without training state");
	if (a == NULL || !a->valid || !a->have_targets)
		return fx_diag_set(
		    diag, FX_ESTATE,
		    "backward needs a forward pass with targets");
	N = (size_t)a->B * a->T;

	/* d(mean CE)/dlogits = (softmax - onehot) / n_targets */
	float inv = a->n_targets > 0 ? 1.0f / (float)a->n_targets : 0.0f;
	for (size_t t = 0; t < N; t++) {
		const float *z = a->logits + t * V;
		float *g = a->dlogits + t * V;
		int tgt = a->targets[t];
		if (tgt < 0) {
			memset(g, 0, (size_t)V * sizeof(float));
			continue;
		}
		float mx = fx_max(z, V);
		for (int j = 0; j < V; j++)
			g[j] = fx_exp(z[j] - mx);
		float s = fx_sum(g, V);
		float sc = inv / s;
		for (int j = 0; j < V; j++)
			g[j] *= sc;
		g[tgt] -= inv;
	}
	weight_grad(m, fx_freeze_has(frozen, FX_GROUP_LM_HEAD, -1),
	            m->grads + (m->lm_head - m->params), a->dlogits, a->xf,
	            (int)N, V, d);
	fx_mm(m->naive, false, false, (int)N, d, V, 1.0f, a->dlogits, V,
	      m->lm_head, d, 0.0f, a->dt, d);
	fx_rmsnorm_bwd(a->dx,
	               fx_freeze_has(frozen, FX_GROUP_FINAL_NORM, -1)
	                   ? NULL
	                   : m->grads + (m->final_norm - m->params),
	               a->dt, a->res + (size_t)c->n_layers * a->cap * d,
	               a->rstd_f, m->final_norm, N, d, false);
	for (int l = c->n_layers - 1; l >= 0; l--)
		layer_bwd(m, l, a->B, a->T, frozen);
	if (!fx_freeze_has(frozen, FX_GROUP_EMBED, -1)) {
		float *ge = m->grads + (m->embed - m->params);
		for (size_t t = 0; t < N; t++) {
			float *dst = ge + (size_t)a->tokens[t] * d;
			const float *src = a->dx + t * d;
			for (int j = 0; j < d; j++)
				dst[j] += src[j];
		}
	}
	return FX_OK;
}
