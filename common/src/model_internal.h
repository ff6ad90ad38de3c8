/* Private to model*.c: the activation arena shared by forward and backward,
 * the matmul dispatch (OpenBLAS or the reference loops) and small kernels. */
#ifndef FLEXO_MODEL_INTERNAL_H
#define FLEXO_MODEL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flexo/model.h"

/* Activations of one forward pass, sized by fx_model_reserve for up to
 * cap = max_b * max_t tokens (N below is B*T <= cap). Per-layer arrays are
 * indexed [l * stride + ...]; "rows" are (token, selected expert) pairs,
 * at most cap * k per layer, grouped by expert. */
struct fx_acts {
	float *arena;    /* one allocation for every float buffer */
	int32_t *iarena; /* one allocation for every int buffer */
	int max_b, max_t;
	size_t cap;      /* max_b * max_t */
	size_t p_stride; /* cap * H * max_t: attention probs of one layer */
	int att_block;   /* FX_ATT_BLOCK; tests lower it to cover block edges */

	/* The last forward: what backward differentiates. */
	bool valid, have_targets;
	int B, T;
	uint64_t disabled;
	float z_loss;
	int64_t n_targets;

	int32_t *tokens;  /* (cap) */
	int32_t *targets; /* (cap) */
	float *rope_cos;  /* (max_t, hd/2) */
	float *rope_sin;  /* (max_t, hd/2) */

	float *res; /* (L+1, cap, d) residual stream; res[l] feeds layer l */
	float *q, *k, *v;       /* (L, cap, d) raw projections */
	float *qr, *kr;         /* (L, cap, d) QK-normed and rotated */
	float *rstd_q, *rstd_k; /* (L, cap) */
	float *P;               /* (L, p_stride): (B, H, T, T) causal softmax */
	float *att;             /* (L, cap, d) attention output before o_proj */
	float *ao;              /* (L, cap, d) o_proj output */
	float *rstd_a;          /* (L, cap) */
	float *h;               /* (L, cap, d) after the attention residual */
	float *rlogit;    /* (L, cap, E) router logits (-inf when disabled) */
	float *prob;      /* (L, cap, E) router softmax over all experts */
	float *lse;       /* (L, cap) router logsumexp */
	int32_t *sel;     /* (L, cap, k) selected experts, -1 = empty slot */
	int32_t *row_tok; /* (L, cap*k) token of each expert row */
	int32_t *off;     /* (L, E+1) first row of each expert */
	float *xg;        /* (L, cap*k, d) gathered expert inputs */
	float *g, *u, *a; /* (L, cap*k, F) gate, up, silu(gate)*up */
	float *y;         /* (L, cap*k, d) expert outputs (unweighted) */
	float *moe;       /* (L, cap, d) weighted sum of expert outputs */
	float *rstd_m;    /* (L, cap) */
	float *xf;        /* (cap, d) final-normed hidden state */
	float *rstd_f;    /* (cap) */
	float *logits;    /* (cap, V) */

	/* Backward scratch, reused by every layer. */
	float *dlogits;             /* (cap, V) */
	float *dx, *dh, *dt;        /* (cap, d) */
	float *dq, *dk, *dv, *datt; /* (cap, d) */
	float *dP;                  /* (max_t, max_t) */
	float *dxg, *dy;            /* (cap*k, d) */
	float *dg, *du;             /* (cap*k, F) */
	float *dprob, *drl;         /* (cap, E) */
	float *dwr; /* (E, d) router grad before the freeze mask */
	float *dbr; /* (E) */
};

/* C (M, N) = alpha * op(A) op(B) + beta * C with leading dimensions, row
 * major; beta == 0 ignores C's old contents. OpenBLAS (sgemv when M == 1)
 * unless `naive`, then fx_matmul_naive's loops. */
void fx_mm(bool naive, bool ta, bool tb, int M, int N, int K, float alpha,
           const float *A, int lda, const float *B, int ldb, float beta,
           float *C, int ldc);

/* Rotates every head of x (n_seq sequences of T positions, width d) in
 * place, HF rotate_half layout: dims i and i + hd/2 form one rotating pair.
 * dir = 1 rotates by +theta (forward); dir = -1 by -theta, which is the
 * adjoint (backward of the gradient). */
void fx_rope(float *x, const fx_acts *a, int n_seq, int T, int d, int H,
             float dir);

/* y = x * rstd * w over rows of width d; stores rstd (n). */
void fx_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w,
                    size_t n, int d, float eps);

/* Backward of fx_rmsnorm_fwd: dx = (or +=, when `acc`) input gradient;
 * dw += weight gradient unless dw is NULL. */
void fx_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x,
                    const float *rstd, const float *w, size_t n, int d,
                    bool acc);

/* Reductions in 16 independent lanes combined in a fixed order: the
 * compiler vectorises them (a single running float sum it may not
 * reorder), and the result depends only on n, never on threads. */
#define FX_LANES 16

static inline float fx_lanes_sum(const float *acc)
{
	float s = 0.0f;
	for (int j = 0; j < FX_LANES; j++)
		s += acc[j];
	return s;
}

/* Σ a[i] b[i] */
static inline float fx_dot(const float *a, const float *b, int n)
{
	float acc[FX_LANES] = {0};
	int i = 0;
	for (; i + FX_LANES <= n; i += FX_LANES)
		for (int j = 0; j < FX_LANES; j++)
			acc[j] += a[i + j] * b[i + j];
	for (; i < n; i++)
		acc[0] += a[i] * b[i];
	return fx_lanes_sum(acc);
}

/* Σ a[i] b[i] c[i] */
static inline float fx_dot3(const float *a, const float *b, const float *c,
                            int n)
{
	float acc[FX_LANES] = {0};
	int i = 0;
	for (; i + FX_LANES <= n; i += FX_LANES)
		for (int j = 0; j < FX_LANES; j++)
			acc[j] += a[i + j] * b[i + j] * c[i + j];
	for (; i < n; i++)
		acc[0] += a[i] * b[i] * c[i];
	return fx_lanes_sum(acc);
}

static inline float fx_sum(const float *a, int n)
{
	float acc[FX_LANES] = {0};
	int i = 0;
	for (; i + FX_LANES <= n; i += FX_LANES)
		for (int j = 0; j < FX_LANES; j++)
			acc[j] += a[i + j];
	for (; i < n; i++)
		acc[0] += a[i];
	return fx_lanes_sum(acc);
}

/* max a[i], n >= 1 (NaNs are not propagated; the loss reports them) */
static inline float fx_max(const float *a, int n)
{
	float acc[FX_LANES];
	int i = 0;
	for (int j = 0; j < FX_LANES; j++)
		acc[j] = a[0];
	for (; i + FX_LANES <= n; i += FX_LANES)
		for (int j = 0; j < FX_LANES; j++)
			acc[j] = a[i + j] > acc[j] ? a[i + j] : acc[j];
	for (; i < n; i++)
		acc[0] = a[i] > acc[0] ? a[i] : acc[0];
	float mx = acc[0];
	for (int j = 1; j < FX_LANES; j++)
		mx = acc[j] > mx ? acc[j] : mx;
	return mx;
}

/* exp for the hot loops (attention softmax, SwiGLU, cross-entropy):
 * branch-free so the compiler vectorises the loops that call it, where
 * libm's expf is a scalar call. exp(x) = 2^n e^r with n = round(x/ln 2),
 * r reduced by a two-part (Cody-Waite) ln 2, e^r by the degree-7 Taylor-like
 * polynomial of Cephes expf; max relative error a few ulp. x is clamped
 * to [-87, 88] so 2^n stays a normal float (exp(-87) ~ 1.6e-38 stands in
 * for 0, harmless in every sum it enters). NaN propagates. */
static inline float fx_exp(float x)
{
	x = x < -87.0f ? -87.0f : x;
	x = x > 88.0f ? 88.0f : x;
	/* round to nearest by the 1.5 * 2^23 shifter: floorf would not
	 * vectorise without -fno-trapping-math */
	float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	float r = x - n * 0.693359375f;
	r = r - n * -2.12194440e-4f;
	float p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	/* a NaN x leaves n NaN: convert 0 instead (a NaN-to-int cast is
	 * undefined) and let the NaN in p carry through */
	int32_t bits = ((int32_t)(n == n ? n : 0.0f) + 127) << 23;
	float two_n;
	memcpy(&two_n, &bits, sizeof(two_n)); /* folds to a bit cast */
	return p * two_n;
}

#endif
