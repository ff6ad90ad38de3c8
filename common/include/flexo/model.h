/* The FlexOlmo transformer (DESIGN §2): OLMo 2 blocks with QK-norm, RoPE,
 * post-norm residuals and a top-k mixture of SwiGLU experts, forward and
 * backward in C with OpenBLAS matmuls, parameters/gradients/activations in
 * arenas, and a tensor table named as Hugging Face flex_olmo names them. */
#ifndef FLEXO_MODEL_H
#define FLEXO_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flexo/config.h"
#include "flexo/err.h"

/* "model.layers.63.mlp.experts.63.gate_proj.weight" is 48 bytes. */
#define FX_TENSOR_NAME_MAX 96
/* Query rows per attention block: key blocks above the causal diagonal
 * are skipped (62.5% of the T x T square is computed at T = 256), at the
 * price of more, smaller sgemm calls. Public for the benchmark, which
 * times the same shapes. */
#define FX_ATT_BLOCK 64
/* Bound on B*T of one forward call: activations are sized from it. */
#define FX_MAX_BATCH_TOKENS (1 << 20)

/* Parameter groups, the unit of freezing. Per-expert groups (expert FFN,
 * router row, router bias) are further split by expert index. */
typedef enum fx_group {
	FX_GROUP_EMBED = 0,      /* model.embed_tokens.weight */
	FX_GROUP_LM_HEAD,        /* lm_head.weight */
	FX_GROUP_FINAL_NORM,     /* model.norm.weight */
	FX_GROUP_ATTN,           /* q,k,v,o projections of every layer */
	FX_GROUP_QK_NORM,        /* q_norm, k_norm of every layer */
	FX_GROUP_POST_ATTN_NORM, /* post_attention_layernorm of every layer */
	FX_GROUP_POST_FF_NORM,   /* post_feedforward_layernorm of every layer */
	FX_GROUP_EXPERT,         /* expert e's gate/up/down in every layer */
	FX_GROUP_ROUTER,         /* row e of every layer's mlp.gate.weight */
	FX_GROUP_ROUTER_BIAS,    /* element e of every layer's mlp.gate.bias */
	FX_GROUP_COUNT
} fx_group;

/* What training must leave bitwise unchanged. Plain value type; zero-init
 * (= {0}) freezes nothing. Bit e of the masks is expert e. */
typedef struct fx_freeze {
	bool embed, lm_head, final_norm, attn, qk_norm, post_attn_norm,
	    post_ff_norm;
	uint64_t experts;     /* bit e: expert e's FFN in every layer */
	uint64_t router_rows; /* bit e: router row e in every layer */
	uint64_t router_bias; /* bit e: router bias e in every layer */
} fx_freeze;

/* True if the given group (and expert index, for the per-expert groups;
 * ignored otherwise) is frozen under *f. A NULL f freezes nothing. */
bool fx_freeze_has(const fx_freeze *f, fx_group g, int expert);

/* One entry of the tensor table. data/grad point into the model's arenas
 * and stay valid until fx_model_release. For mlp.gate.weight [E, d] the
 * group is FX_GROUP_ROUTER and row r belongs to expert r; for mlp.gate.bias
 * [E] the group is FX_GROUP_ROUTER_BIAS and element r belongs to expert r
 * (expert = -1 in both). For expert FFN tensors expert = e. */
typedef struct fx_tensor {
	char name[FX_TENSOR_NAME_MAX];
	int ndim;         /* 1 or 2 */
	int64_t shape[2]; /* [out, in] for matrices, as PyTorch nn.Linear */
	size_t numel;
	float *data; /* row-major, contiguous */
	float *grad; /* same layout; NULL when no training state */
	fx_group group;
	int layer;  /* -1 for embed, lm_head, final norm */
	int expert; /* expert index for FX_GROUP_EXPERT, else -1 */
} fx_tensor;

/* Parameters of one layer; every pointer points into fx_model.params.
 * Within a layer the tensors are laid out in this order, contiguous. */
typedef struct fx_layer {
	float *wq;             /* (d, d) */
	float *wk;             /* (d, d) */
	float *wv;             /* (d, d) */
	float *wo;             /* (d, d) */
	float *q_norm;         /* (d) */
	float *k_norm;         /* (d) */
	float *post_attn_norm; /* (d) */
	float *post_ff_norm;   /* (d) */
	float *router;         /* (E, d) row e = expert e's router embedding */
	float *router_bias;    /* (E) or NULL when !cfg.router_bias */
	float *gate[FX_MAX_EXPERTS]; /* [e] -> (d_ff, d) */
	float *up[FX_MAX_EXPERTS];   /* [e] -> (d_ff, d) */
	float *down[FX_MAX_EXPERTS]; /* [e] -> (d, d_ff) */
} fx_layer;

typedef struct fx_acts fx_acts; /* activation arena, private to model.c */

/* The model. Owns three arenas (params, grads, activations); everything
 * else points into them. Not thread-safe: one forward/backward at a time.
 * Matmul threads are OpenBLAS's own (see fx_model_set_threads); the rest
 * runs on the calling thread, so results are deterministic for a given
 * seed and thread count. */
typedef struct fx_model {
	fx_config cfg;
	/* Arena length in floats: fx_config_param_count plus zero padding
	 * that starts every tensor on a 64-byte boundary. */
	size_t n_params;
	float *params;      /* (n_params) arena */
	float *grads;       /* (n_params) arena, NULL unless training */
	float *embed;       /* (V, d) */
	float *lm_head;     /* (V, d) */
	float *final_norm;  /* (d) */
	fx_layer *layers;   /* (L) */
	fx_tensor *tensors; /* tensor table, in arena order */
	int n_tensors;
	fx_acts *acts; /* NULL until fx_model_reserve */
	bool naive;    /* use the reference loops instead of OpenBLAS */
} fx_model;

/* Validates cfg and allocates the parameter arena (and the gradient arena
 * when `training`), zero-filled; builds the tensor table. *m is
 * caller-owned storage; free its contents with fx_model_release. On failure
 * nothing stays allocated. */
fx_err fx_model_init(fx_model *m, const fx_config *cfg, bool training,
                     fx_diag *diag);

/* Frees every arena and the tensor table; *m may then be re-initialised.
 * Safe on a zeroed or already released model. */
void fx_model_release(fx_model *m);

/* Deterministic initialisation from a seed (splitmix64 + Box-Muller, no
 * rand()): normal(0, 0.02) for matrices, ones for norm weights, zeros for
 * router biases, drawn in tensor-table order. The same seed gives the
 * same bits wherever libm's log and cos round alike (any one glibc). */
void fx_model_init_weights(fx_model *m, uint64_t seed);

/* Sizes the activation arena for up to `max_b` sequences of `max_t`
 * tokens (max_t <= cfg.max_seq, max_b*max_t <= FX_MAX_BATCH_TOKENS).
 * Re-reserving with a larger size replaces the arena. */
fx_err fx_model_reserve(fx_model *m, int max_b, int max_t, fx_diag *diag);

/* Looks a tensor up by its HF name; NULL if absent. */
fx_tensor *fx_model_tensor(fx_model *m, const char *name);

/* Copies all parameter values from src (same config) into m. */
fx_err fx_model_copy_params(fx_model *m, const fx_model *src, fx_diag *diag);

/* Sets the OpenBLAS thread count (process-wide: OpenBLAS has one pool). */
void fx_model_set_threads(int n);

/* Options of one forward pass. Zero-init is valid: no expert disabled,
 * no z-loss, no routing statistics. */
typedef struct fx_fwd_opts {
	/* bit e set: expert e's router logit is -inf before the softmax, so it
	 * is never selected and gets probability 0 (per-request opt-out). At
	 * least one expert must stay enabled. */
	uint64_t disabled_experts;
	float z_loss; /* router z-loss coefficient, 0 disables */
	/* Routing statistic hook, caller-owned, may be NULL: route_counts[l*E
	 * + e] += number of top-k slots expert e took in layer l (one per
	 * token that selected it); route_prob[l*E + e] += its probability. */
	uint64_t *route_counts; /* (L, E) */
	double *route_prob;     /* (L, E) */
} fx_fwd_opts;

/* What a forward pass with targets measured. */
typedef struct fx_loss {
	double nll_sum; /* summed cross-entropy in nats over counted targets */
	int64_t n_targets; /* targets >= 0 */
	double ce;         /* nll_sum / n_targets (0 if none) */
	/* mean over all B*T tokens (ignored targets included: the router sees
	 * them) and layers of logsumexp(router logits)^2 */
	double z;
	double total; /* ce + z_loss * z: what backward differentiates */
} fx_loss;

/* Forward pass over tokens (B, T) row-major. targets (B, T) may be NULL
 * (logits only, *loss untouched); a target < 0 is an ignored position.
 * Top-k ties are broken deterministically: the lower expert index wins.
 * Requires fx_model_reserve(m, >= B, >= T). Caches what backward needs.
 * loss may be NULL. Tokens or targets >= V are FX_EINVAL. */
fx_err fx_model_forward(fx_model *m, const int32_t *tokens,
                        const int32_t *targets, int B, int T,
                        const fx_fwd_opts *opts, fx_loss *loss, fx_diag *diag);

/* Logits (B, T, V) of the last forward; valid until the next forward or
 * release. */
const float *fx_model_logits(const fx_model *m);

/* Sets every gradient to zero. */
void fx_model_zero_grad(fx_model *m);

/* Backward of loss->total of the last forward (which must have had
 * targets), ACCUMULATING into m->grads. Gradients of groups frozen in
 * `frozen` (may be NULL) are not computed and stay as they were (zero
 * after fx_model_zero_grad). Needs a model initialised with training. */
fx_err fx_model_backward(fx_model *m, const fx_freeze *frozen, fx_diag *diag);

/* Evaluation helper: summed NLL in nats and number of counted targets of
 * (B, T) tokens/targets, honouring disabled_experts. Adds to *nll_nats and
 * *n_tokens (so a caller can sum over batches). */
fx_err fx_model_eval(fx_model *m, const int32_t *tokens, const int32_t *targets,
                     int B, int T, uint64_t disabled_experts, double *nll_nats,
                     int64_t *n_tokens, fx_diag *diag);

/* Incremental decoding (serving): one sequence's keys and values, so each
 * new token costs matrix-vector products only, and only its top-k experts
 * are computed. Owns its memory (one allocation); a model may be shared
 * by several caches on several threads, as decoding does not write to it.
 * Caveat: concurrent decodes share OpenBLAS's one thread pool. */
typedef struct fx_kv_cache {
	int n_layers, d, d_ff, n_experts, max_t; /* the shape it was made for */
	int len;     /* tokens decoded so far = position of the next one */
	float *k;    /* (L, max_t, d) QK-normed, rotated keys */
	float *v;    /* (L, max_t, d) values */
	float *work; /* scratch of one decode step */
} fx_kv_cache;

/* Allocates a cache for up to max_t tokens (<= cfg->max_seq). */
fx_err fx_kv_init(fx_kv_cache *kv, const fx_config *cfg, int max_t,
                  fx_diag *diag);
void fx_kv_release(fx_kv_cache *kv);

/* Forgets the sequence (len = 0) without freeing. */
void fx_kv_reset(fx_kv_cache *kv);

/* Feeds `token` at position kv->len and writes the next-token logits
 * (V floats, caller-owned) — the same numbers as row kv->len of a forward
 * over the whole prefix. disabled_experts as in fx_fwd_opts. FX_ETOOBIG
 * when the cache is full, FX_EINVAL for a bad token or mask, FX_EMISMATCH
 * when the cache was made for another shape. */
fx_err fx_model_decode(const fx_model *m, fx_kv_cache *kv, int32_t token,
                       uint64_t disabled_experts, float *logits, fx_diag *diag);

/* Reference kernel, kept for tests (STYLE §7): C (M, N) = beta*C +
 * op(A) · op(B), with op(A) (M, K) = A (M, K), or A (K, M) transposed when
 * trans_a; op(B) (K, N) = B (K, N), or B (N, K) transposed when trans_b.
 * Plain loops with double accumulation. */
void fx_matmul_naive(float *c, const float *a, const float *b, int M, int N,
                     int K, bool trans_a, bool trans_b, float beta);

#endif
