/* Model memory and plumbing: the parameter/gradient arenas and the tensor
 * table over them, deterministic initialisation, the activation arena, the
 * matmul dispatch (OpenBLAS or reference loops) and RMSNorm kernels. */
#include "flexo/model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* Tensors start on 64-byte boundaries (16 floats) so SIMD loads of any
 * tensor are aligned; the padding stays zero and belongs to no tensor. */
#define ALIGN_FLOATS 16

bool fx_freeze_has(const fx_freeze *f, fx_group g, int expert)
{
	if (f == NULL)
		return false;
	switch (g) {
	case FX_GROUP_EMBED:
		return f->embed;
	case FX_GROUP_LM_HEAD:
		return f->lm_head;
	case FX_GROUP_FINAL_NORM:
		return f->final_norm;
	case FX_GROUP_ATTN:
		return f->attn;
	case FX_GROUP_QK_NORM:
		return f->qk_norm;
	case FX_GROUP_POST_ATTN_NORM:
		return f->post_attn_norm;
	case FX_GROUP_POST_FF_NORM:
		return f->post_ff_norm;
	case FX_GROUP_EXPERT:
		return expert >= 0 && expert < 64 && (f->experts >> expert & 1);
	case FX_GROUP_ROUTER:
		return expert >= 0 && expert < 64 &&
		       (f->router_rows >> expert & 1);
	case FX_GROUP_ROUTER_BIAS:
		return expert >= 0 && expert < 64 &&
		       (f->router_bias >> expert & 1);
	default:
		return false;
	}
}

/* Appends one tensor of `numel` floats at arena offset *off (or only
 * counts, when m->tensors is NULL) and returns its offset. */
static size_t add_tensor(fx_model *m, size_t *off, const char *name, int ndim,
                         int64_t d0, int64_t d1, fx_group g, int layer,
                         int expert)
{
	size_t at = *off;
	size_t numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);

	if (m->tensors != NULL) {
		fx_tensor *t = &m->tensors[m->n_tensors];
		snprintf(t->name, sizeof(t->name), "%s", name);
		t->ndim = ndim;
		t->shape[0] = d0;
		t->shape[1] = ndim == 2 ? d1 : 0;
		t->numel = numel;
		t->data = m->params + at;
		t->grad = m->grads != NULL ? m->grads + at : NULL;
		t->group = g;
		t->layer = layer;
		t->expert = expert;
	}
	m->n_tensors++;
	*off += (numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
	return at;
}

/* Walks the whole layout once; with m->tensors == NULL it only measures
 * (n_tensors, returned arena length), otherwise fills the table and the
 * named pointers. One walk for both keeps them from drifting apart. */
static size_t layout(fx_model *m)
{
	const fx_config *c = &m->cfg;
	int64_t V = c->vocab_size, d = c->d_model, F = c->d_ff;
	int64_t E = c->n_experts;
	char name[FX_TENSOR_NAME_MAX];
	size_t off = 0, at;
	bool fill = m->tensors != NULL;

	m->n_tensors = 0;
	at = add_tensor(m, &off, "model.embed_tokens.weight", 2, V, d,
	                FX_GROUP_EMBED, -1, -1);
	if (fill)
		m->embed = m->params + at;
	for (int l = 0; l < c->n_layers; l++) {
		fx_layer *ly = fill ? &m->layers[l] : NULL;
		static const char *const proj[4] = {"q", "k", "v", "o"};
		for (int i = 0; i < 4; i++) {
			snprintf(name, sizeof(name),
			         "model.layers.%d.self_attn.%s_proj.weight", l,
			         proj[i]);
			at = add_tensor(m, &off, name, 2, d, d, FX_GROUP_ATTN,
			                l, -1);
			if (fill) {
				float **dst[4] = {&ly->wq, &ly->wk, &ly->wv,
				                  &ly->wo};
				*dst[i] = m->params + at;
			}
		}
		snprintf(name, sizeof(name),
		         "model.layers.%d.self_attn.q_norm.weight", l);
		at =
		    add_tensor(m, &off, name, 1, d, 0, FX_GROUP_QK_NORM, l, -1);
		if (fill)
			ly->q_norm = m->params + at;
		snprintf(name, sizeof(name),
		         "model.layers.%d.self_attn.k_norm.weight", l);
		at =
		    add_tensor(m, &off, name, 1, d, 0, FX_GROUP_QK_NORM, l, -1);
		if (fill)
			ly->k_norm = m->params + at;
		snprintf(name, sizeof(name),
		         "model.layers.%d.post_attention_layernorm.weight", l);
		at = add_tensor(m, &off, name, 1, d, 0, FX_GROUP_POST_ATTN_NORM,
		                l, -1);
		if (fill)
			ly->post_attn_norm = m->params + at;
		snprintf(name, sizeof(name),
		         "model.layers.%d.post_feedforward_layernorm.weight",
		         l);
		at = add_tensor(m, &off, name, 1, d, 0, FX_GROUP_POST_FF_NORM,
		                l, -1);
		if (fill)
			ly->post_ff_norm = m->params + at;
		snprintf(name, sizeof(name), "model.layers.%d.mlp.gate.weight",
		         l);
		at = add_tensor(m, &off, name, 2, E, d, FX_GROUP_ROUTER, l, -1);
		if (fill)
			ly->router = m->params + at;
		if (c->router_bias) {
			snprintf(name, sizeof(name),
			         "model.layers.%d.mlp.gate.bias", l);
			at = add_tensor(m, &off, name, 1, E, 0,
			                FX_GROUP_ROUTER_BIAS, l, -1);
			if (fill)
				ly->router_bias = m->params + at;
		}
		for (int e = 0; e < (int)E; e++) {
			static const char *const ffn[3] = {"gate", "up",
			                                   "down"};
			for (int i = 0; i < 3; i++) {
				snprintf(
				    name, sizeof(name),
				    "model.layers.%d.mlp.experts.%d.%s_proj."
				    "weight",
				    l, e, ffn[i]);
				at = add_tensor(m, &off, name, 2,
				                i == 2 ? d : F, i == 2 ? F : d,
				                FX_GROUP_EXPERT, l, e);
				if (fill) {
					float **dst[3] = {&ly->gate[e],
					                  &ly->up[e],
					                  &ly->down[e]};
					*dst[i] = m->params + at;
				}
			}
		}
	}
	at = add_tensor(m, &off, "model.norm.weight", 1, d, 0,
	                FX_GROUP_FINAL_NORM, -1, -1);
	if (fill)
		m->final_norm = m->params + at;
	at = add_tensor(m, &off, "lm_head.weight", 2, V, d, FX_GROUP_LM_HEAD,
	                -1, -1);
	if (fill)
		m->lm_head = m->params + at;
	return off;
}

/* calloc through aligned_alloc: BLAS kernels like 64-byte alignment. */
static float *alloc_floats(size_t n)
{
	size_t bytes;
	float *p;

	if (n == 0 || n > SIZE_MAX / sizeof(float) - ALIGN_FLOATS)
		return NULL;
	bytes = (n * sizeof(float) + 63) / 64 * 64;
	p = aligned_alloc(64, bytes);
	if (p != NULL)
		memset(p, 0, bytes);
	return p;
}

fx_err fx_model_init(fx_model *m, const fx_config *cfg, bool training,
                     fx_diag *diag)
{
	fx_err err;
	size_t n;

	memset(m, 0, sizeof(*m));
	if ((err = fx_config_validate(cfg, diag)) != FX_OK)
		return err;
	m->cfg = *cfg;
	n = layout(m); /* measure */
	m->n_params = n;
	m->params = alloc_floats(n);
	m->layers = calloc((size_t)cfg->n_layers, sizeof(*m->layers));
	m->tensors = calloc((size_t)m->n_tensors, sizeof(*m->tensors));
	if (training)
		m->grads = alloc_floats(n);
	if (m->params == NULL || m->layers == NULL || m->tensors == NULL ||
	    (training && m->grads == NULL)) {
		err =
		    fx_diag_set(diag, FX_ENOMEM,
		                "cannot allocate a model of %zu parameters", n);
		goto out;
	}
	layout(m); /* fill */
	err = FX_OK;
out:
	if (err != FX_OK)
		fx_model_release(m);
	return err;
}

static void acts_free(fx_acts *a)
{
	if (a == NULL)
		return;
	free(a->arena);
	free(a->iarena);
	free(a);
}

void fx_model_release(fx_model *m)
{
	free(m->params);
	free(m->grads);
	free(m->layers);
	free(m->tensors);
	acts_free(m->acts);
	memset(m, 0, sizeof(*m));
}

/* splitmix64 (Steele, Lea, Flood 2014): tiny, full-period, good enough to
 * draw initial weights, and identical on every platform. */
static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Standard normal by Box-Muller, one value per pair of draws. */
static double normal(uint64_t *s)
{
	double u1 = ((double)(splitmix64(s) >> 11) + 1.0) * 0x1p-53; /* (0,1] */
	double u2 = (double)(splitmix64(s) >> 11) * 0x1p-53;
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void fx_model_init_weights(fx_model *m, uint64_t seed)
{
	uint64_t s = seed;

	for (int i = 0; i < m->n_tensors; i++) {
		fx_tensor *t = &m->tensors[i];
		for (size_t j = 0; j < t->numel; j++) {
			if (t->group == FX_GROUP_ROUTER_BIAS)
				t->data[j] = 0.0f;
			else if (t->ndim == 1)
				t->data[j] = 1.0f;
			else
				t->data[j] = (float)(0.02 * normal(&s));
		}
	}
}

fx_tensor *fx_model_tensor(fx_model *m, const char *name)
{
	for (int i = 0; i < m->n_tensors; i++)
		if (strcmp(m->tensors[i].name, name) == 0)
			return &m->tensors[i];
	return NULL;
}

/* Field by field: memcmp would also compare the struct's padding. */
static bool same_config(const fx_config *a, const fx_config *b)
{
	return a->vocab_size == b->vocab_size && a->d_model == b->d_model &&
	       a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
	       a->d_ff == b->d_ff && a->n_experts == b->n_experts &&
	       a->top_k == b->top_k && a->max_seq == b->max_seq &&
	       a->rope_theta == b->rope_theta && a->norm_eps == b->norm_eps &&
	       a->router_bias == b->router_bias;
}

fx_err fx_model_copy_params(fx_model *m, const fx_model *src, fx_diag *diag)
{
	if (!same_config(&m->cfg, &src->cfg) || m->n_params != src->n_params)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "cannot copy parameters between models of "
		                   "different configurations");
	memcpy(m->params, src->params, m->n_params * sizeof(float));
	return FX_OK;
}

void fx_model_set_threads(int n)
{
	openblas_set_num_threads(n < 1 ? 1 : n);
}

/* Adds `n` floats to the running total, refusing overflow. */
static bool take(size_t *total, size_t n)
{
	if (n > SIZE_MAX / 4 - *total)
		return false;
	*total += n;
	return true;
}

/* Checked a*b (and a*b*c). */
static bool mul(size_t *out, size_t a, size_t b)
{
	if (a != 0 && b > SIZE_MAX / a)
		return false;
	*out = a * b;
	return true;
}

fx_err fx_model_reserve(fx_model *m, int max_b, int max_t, fx_diag *diag)
{
	const fx_config *c = &m->cfg;
	fx_acts *a = NULL;
	size_t cap, L = (size_t)c->n_layers, d = (size_t)c->d_model;
	size_t E = (size_t)c->n_experts, K = (size_t)c->top_k;
	size_t F = (size_t)c->d_ff, V = (size_t)c->vocab_size;
	size_t H = (size_t)c->n_heads, hd2 = d / H / 2;
	size_t nf = 0, ni = 0, rows, cd, rf, pst, t1;
	fx_err err = FX_OK;
	bool ok = true;

	if (max_b < 1 || max_t < 1 || max_t > c->max_seq ||
	    (int64_t)max_b * max_t > FX_MAX_BATCH_TOKENS)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "batch %d x %d tokens: need 1 <= T <= max_seq "
		    "(%d) and B*T <= %d",
		    max_b, max_t, c->max_seq, FX_MAX_BATCH_TOKENS);
	cap = (size_t)max_b * (size_t)max_t;
	rows = cap * K;
	ok = mul(&cd, cap, d) && mul(&rf, rows, F) &&
	     mul(&pst, cap * H, (size_t)max_t);
	/* float buffers, in the order they are pointed below */
	ok = ok && take(&nf, 2 * (size_t)max_t * hd2) && mul(&t1, L + 1, cd) &&
	     take(&nf, t1) && mul(&t1, L, cd) && take(&nf, 9 * t1) &&
	     mul(&t1, L, cap) && take(&nf, 5 * t1) && mul(&t1, L, pst) &&
	     take(&nf, t1) && mul(&t1, L * cap, E) && take(&nf, 2 * t1) &&
	     mul(&t1, L * rows, d) && take(&nf, 2 * t1) && mul(&t1, L, rf) &&
	     take(&nf, 3 * t1) && take(&nf, cd + cap) && mul(&t1, cap, V) &&
	     take(&nf, 2 * t1) && take(&nf, 7 * cd) &&
	     take(&nf, (size_t)max_t * max_t) && take(&nf, 2 * rows * d) &&
	     take(&nf, 2 * rf) && take(&nf, 2 * cap * E + E * d + E);
	ni = 2 * cap + L * cap * K + L * rows + L * (E + 1);
	if (!ok)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "activations for %d x %d tokens overflow "
		                   "size_t",
		                   max_b, max_t);
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		goto nomem;
	a->arena = alloc_floats(nf);
	a->iarena = calloc(ni, sizeof(int32_t));
	if (a->arena == NULL || a->iarena == NULL)
		goto nomem;
	a->max_b = max_b;
	a->max_t = max_t;
	a->cap = cap;
	a->p_stride = pst;
	a->att_block = FX_ATT_BLOCK;
	{
		float *p = a->arena;
		int32_t *q = a->iarena;
#define F_(field, n)                                                           \
	do {                                                                   \
		a->field = p;                                                  \
		p += (n);                                                      \
	} while (0)
#define I_(field, n)                                                           \
	do {                                                                   \
		a->field = q;                                                  \
		q += (n);                                                      \
	} while (0)
		F_(rope_cos, (size_t)max_t * hd2);
		F_(rope_sin, (size_t)max_t * hd2);
		F_(res, (L + 1) * cd);
		F_(q, L * cd);
		F_(k, L * cd);
		F_(v, L * cd);
		F_(qr, L * cd);
		F_(kr, L * cd);
		F_(att, L * cd);
		F_(ao, L * cd);
		F_(h, L * cd);
		F_(moe, L * cd);
		F_(rstd_q, L * cap);
		F_(rstd_k, L * cap);
		F_(rstd_a, L * cap);
		F_(rstd_m, L * cap);
		F_(lse, L * cap);
		F_(P, L * pst);
		F_(rlogit, L * cap * E);
		F_(prob, L * cap * E);
		F_(xg, L * rows * d);
		F_(y, L * rows * d);
		F_(g, L * rf);
		F_(u, L * rf);
		F_(a, L * rf);
		F_(xf, cd);
		F_(rstd_f, cap);
		F_(logits, cap * V);
		F_(dlogits, cap * V);
		F_(dx, cd);
		F_(dh, cd);
		F_(dt, cd);
		F_(dq, cd);
		F_(dk, cd);
		F_(dv, cd);
		F_(datt, cd);
		F_(dP, (size_t)max_t * max_t);
		F_(dxg, rows * d);
		F_(dy, rows * d);
		F_(dg, rf);
		F_(du, rf);
		F_(dprob, cap * E);
		F_(drl, cap * E);
		F_(dwr, E * d);
		F_(dbr, E);
		I_(tokens, cap);
		I_(targets, cap);
		I_(sel, L * cap * K);
		I_(row_tok, L * rows);
		I_(off, L * (E + 1));
#undef F_
#undef I_
		if ((size_t)(p - a->arena) != nf ||
		    (size_t)(q - a->iarena) != ni) {
			err = fx_diag_set(diag, FX_EINTERNAL,
			                  "activation arena layout mismatch");
			goto out;
		}
	}
	/* RoPE tables, HF layout: frequency i pairs dims i and i + hd/2. */
	for (size_t t = 0; t < (size_t)max_t; t++)
		for (size_t i = 0; i < hd2; i++) {
			double inv = pow((double)c->rope_theta,
			                 -(double)(2 * i) / (double)(2 * hd2));
			double ang = (double)t * inv;
			a->rope_cos[t * hd2 + i] = (float)cos(ang);
			a->rope_sin[t * hd2 + i] = (float)sin(ang);
		}
	acts_free(m->acts);
	m->acts = a;
	a = NULL;
	goto out;
nomem:
	err = fx_diag_set(diag, FX_ENOMEM,
	                  "cannot allocate activations for %d x %d tokens "
	                  "(%zu floats)",
	                  max_b, max_t, nf);
out:
	acts_free(a);
	return err;
}

void fx_matmul_naive(float *c, const float *a, const float *b, int M, int N,
                     int K, bool trans_a, bool trans_b, float beta)
{
	fx_mm(true, trans_a, trans_b, M, N, K, 1.0f, a, trans_a ? M : K, b,
	      trans_b ? K : N, beta, c, N);
}

void fx_mm(bool naive, bool ta, bool tb, int M, int N, int K, float alpha,
           const float *A, int lda, const float *B, int ldb, float beta,
           float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (naive) {
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++) {
				double s = 0.0;
				for (int p = 0; p < K; p++) {
					float x = ta ? A[(size_t)p * lda + i]
					             : A[(size_t)i * lda + p];
					float w = tb ? B[(size_t)j * ldb + p]
					             : B[(size_t)p * ldb + j];
					s += (double)x * w;
				}
				float *cij = &C[(size_t)i * ldc + j];
				*cij =
				    (float)(alpha * s +
				            (beta == 0.0f ? 0.0 : beta * *cij));
			}
		return;
	}
	if (M == 1) {
		/* One row: sgemv is several times faster than sgemm here
		 * (DESIGN §7). Clear C ourselves when beta is 0 so stale NaNs
		 * cannot leak through a 0 * NaN. */
		if (beta == 0.0f)
			memset(C, 0, (size_t)N * sizeof(float));
		int incx = ta ? lda : 1;
		if (tb)
			cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B,
			            ldb, A, incx, beta, C, 1);
		else
			cblas_sgemv(CblasRowMajor, CblasTrans, K, N, alpha, B,
			            ldb, A, incx, beta, C, 1);
		return;
	}
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
	            tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
	            ldb, beta, C, ldc);
}

void fx_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w,
                    size_t n, int d, float eps)
{
	for (size_t i = 0; i < n; i++) {
		const float *xi = x + i * (size_t)d;
		float *yi = y + i * (size_t)d;
		float r = 1.0f / sqrtf(fx_dot(xi, xi, d) / (float)d + eps);
		rstd[i] = r;
		for (int j = 0; j < d; j++)
			yi[j] = xi[j] * r * w[j];
	}
}

void fx_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x,
                    const float *rstd, const float *w, size_t n, int d,
                    bool acc)
{
	for (size_t i = 0; i < n; i++) {
		const float *xi = x + i * (size_t)d, *gi = dy + i * (size_t)d;
		float *dxi = dx + i * (size_t)d;
		float r = rstd[i], dot = fx_dot3(gi, w, xi, d);
		/* d(x r)/dx = r (I - x xᵀ r² / d) */
		float c = dot * r * r / (float)d;
		for (int j = 0; j < d; j++) {
			float v = r * (gi[j] * w[j] - xi[j] * c);
			dxi[j] = acc ? dxi[j] + v : v;
		}
		if (dw != NULL)
			for (int j = 0; j < d; j++)
				dw[j] += gi[j] * xi[j] * r;
	}
}

void fx_rope(float *x, const fx_acts *a, int n_seq, int T, int d, int H,
             float dir)
{
	int hd = d / H, half = hd / 2;
	for (int b = 0; b < n_seq; b++)
		for (int t = 0; t < T; t++) {
			const float *cs = a->rope_cos + (size_t)t * half;
			const float *sn = a->rope_sin + (size_t)t * half;
			float *row = x + ((size_t)b * T + t) * d;
			for (int h = 0; h < H; h++) {
				float *p = row + h * hd;
				for (int i = 0; i < half; i++) {
					float x1 = p[i], x2 = p[i + half];
					float s = dir * sn[i];
					p[i] = x1 * cs[i] - x2 * s;
					p[i + half] = x2 * cs[i] + x1 * s;
				}
			}
		}
}
