/* AdamW with decoupled weight decay, global-norm gradient clipping and a
 * warm-up + cosine learning-rate schedule, honouring a freeze mask so frozen
 * parameters stay bitwise unchanged; plus one training-step helper. */
#ifndef FLEXO_OPTIM_H
#define FLEXO_OPTIM_H

#include <stdint.h>

#include "flexo/err.h"
#include "flexo/model.h"

typedef struct fx_adamw_opts {
	float lr;             /* peak learning rate */
	float lr_min;         /* learning rate at the end of the cosine */
	int64_t warmup_steps; /* linear ramp (step+1)/warmup * lr */
	int64_t total_steps;  /* warm-up + cosine length; after it lr_min */
	float beta1, beta2, eps;
	/* Decoupled (AdamW) decay, applied to 2-D matrices only: embeddings,
	 * lm_head, attention projections, expert FFNs and router rows. Never to
	 * norm weights or router biases (decaying a gain towards 0 or a bias
	 * towards 0 is not regularisation, it changes the function). */
	float weight_decay;
	float clip_norm; /* global gradient-norm clip; <= 0 disables */
	/* Learning-rate multiplier for router rows and biases (1 = same as
	 * everything else). Expert training moves a router bias by at most
	 * ~lr per step; a larger multiplier lets the router, not the FFN's
	 * scale, decide where an expert is used. */
	float router_lr_mult;
	/* Decoupled decay of every trainable FFN tensor of an expert e > 0
	 * towards the same tensor of expert 0, in place of weight_decay:
	 * w -= lr * expert_anchor_decay * (w - w_expert0). In expert training
	 * expert 0 is the frozen public FFN the trained copy started from, so
	 * this keeps the expert near the anchor's function on text it was not
	 * trained for (an L2-SP-style pull; 0 = off, the default). A sustained
	 * gradient can hold an element at most ~1/expert_anchor_decay away. */
	float expert_anchor_decay;
} fx_adamw_opts;

/* Sensible small-model defaults: lr 1e-3, lr_min 1e-4, warm-up 100,
 * total 1000, betas 0.9/0.95, eps 1e-8, weight decay 0.1, clip 1.0. */
void fx_adamw_defaults(fx_adamw_opts *o);

/* Checks ranges (lr >= 0, 0 <= betas < 1, eps > 0, ...). */
fx_err fx_adamw_validate(const fx_adamw_opts *o, fx_diag *diag);

/* Learning rate of 0-based step `step`: (step+1)/warmup*lr while step <
 * warmup; then lr_min + (lr - lr_min)/2 * (1 + cos(pi * q)) with q =
 * (step - warmup) / (total - warmup) clamped to [0, 1]. */
float fx_lr_at(const fx_adamw_opts *o, int64_t step);

/* Optimiser state: first and second moments in one arena each, laid out
 * exactly like the model's parameter arena. */
typedef struct fx_adamw {
	fx_adamw_opts opts;
	size_t n;  /* = model n_params */
	float *m;  /* (n) arena */
	float *v;  /* (n) arena */
	int64_t t; /* steps taken so far */
} fx_adamw;

/* Allocates zeroed moments for `model`. *a is caller-owned storage; free
 * its contents with fx_adamw_release. */
fx_err fx_adamw_init(fx_adamw *a, const fx_model *model,
                     const fx_adamw_opts *opts, fx_diag *diag);
void fx_adamw_release(fx_adamw *a);

/* What one step did. */
typedef struct fx_step_info {
	float lr; /* learning rate used */
	float
	    grad_norm; /* global L2 norm of trainable grads, before clipping */
} fx_step_info;

/* One AdamW update of every non-frozen parameter from model->grads (global
 * norm over non-frozen grads, clipped to opts.clip_norm), then clamps the
 * trainable router biases to <= 0. Frozen parameters and their moments are
 * not touched at all. info may be NULL. FX_ENUMERIC (nothing updated) if the
 * gradient norm is not finite. */
fx_err fx_adamw_step(fx_adamw *a, fx_model *model, const fx_freeze *frozen,
                     fx_step_info *info, fx_diag *diag);

/* One whole training step: zero grads, forward with targets (opts
 * z_loss/disabled_experts as given, may be NULL), backward, AdamW step.
 * loss and info may be NULL. */
fx_err fx_train_step(fx_model *model, fx_adamw *a, const fx_freeze *frozen,
                     const int32_t *tokens, const int32_t *targets, int B,
                     int T, const fx_fwd_opts *opts, fx_loss *loss,
                     fx_step_info *info, fx_diag *diag);

#endif
