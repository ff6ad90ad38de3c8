/* AdamW over the model's tensor table: decoupled weight decay on matrices,
 * global-norm clipping over trainable gradients, warm-up + cosine schedule,
 * router biases clamped to <= 0; frozen slices are never read or written. */
#include "flexo/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void fx_adamw_defaults(fx_adamw_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->lr = 1e-3f;
	o->lr_min = 1e-4f;
	o->warmup_steps = 100;
	o->total_steps = 1000;
	o->beta1 = 0.9f;
	o->beta2 = 0.95f;
	o->eps = 1e-8f;
	o->weight_decay = 0.1f;
	o->clip_norm = 1.0f;
	o->router_lr_mult = 1.0f;
}

fx_err fx_adamw_validate(const fx_adamw_opts *o, fx_diag *diag)
{
	if (!(o->lr >= 0.0f && isfinite(o->lr)))
		return fx_diag_set(diag, FX_EINVAL, "lr %g must be >= 0",
		                   (double)o->lr);
	if (!(o->lr_min >= 0.0f && o->lr_min <= o->lr))
		return fx_diag_set(diag, FX_EINVAL,
		                   "lr_min %g must be in [0, lr = %g]",
		                   (double)o->lr_min, (double)o->lr);
	if (o->warmup_steps < 0 || o->total_steps < 0)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "warmup_steps %lld and total_steps %lld must "
		    "be >= 0",
		    (long long)o->warmup_steps, (long long)o->total_steps);
	if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f && o->beta2 >= 0.0f &&
	      o->beta2 < 1.0f))
		return fx_diag_set(diag, FX_EINVAL,
		                   "betas (%g, %g) must be in [0, 1)",
		                   (double)o->beta1, (double)o->beta2);
	if (!(o->eps > 0.0f && isfinite(o->eps)))
		return fx_diag_set(diag, FX_EINVAL, "eps %g must be > 0",
		                   (double)o->eps);
	if (!(o->router_lr_mult > 0.0f && o->router_lr_mult <= 1000.0f))
		return fx_diag_set(diag, FX_EINVAL,
		                   "router_lr_mult %g must be in (0, 1000]",
		                   (double)o->router_lr_mult);
	if (!(o->weight_decay >= 0.0f && isfinite(o->weight_decay)))
		return fx_diag_set(diag, FX_EINVAL,
		                   "weight_decay %g must be >= 0",
		                   (double)o->weight_decay);
	if (!(o->expert_anchor_decay >= 0.0f &&
	      o->expert_anchor_decay * o->lr <= 1.0f))
		return fx_diag_set(diag, FX_EINVAL,
		                   "expert_anchor_decay %g must be >= 0 with "
		                   "lr * expert_anchor_decay <= 1 (lr = %g)",
		                   (double)o->expert_anchor_decay,
		                   (double)o->lr);
	if (!isfinite(o->clip_norm))
		return fx_diag_set(diag, FX_EINVAL, "clip_norm must be finite");
	return FX_OK;
}

float fx_lr_at(const fx_adamw_opts *o, int64_t step)
{
	if (step < o->warmup_steps)
		return o->lr * (float)(step + 1) / (float)o->warmup_steps;
	int64_t span = o->total_steps - o->warmup_steps;
	double q =
	    span > 0 ? (double)(step - o->warmup_steps) / (double)span : 1.0;
	if (q > 1.0)
		q = 1.0;
	return (float)(o->lr_min + 0.5 * (o->lr - o->lr_min) *
	                               (1.0 + cos(3.14159265358979323846 * q)));
}

fx_err fx_adamw_init(fx_adamw *a, const fx_model *model,
                     const fx_adamw_opts *opts, fx_diag *diag)
{
	fx_err err;

	memset(a, 0, sizeof(*a));
	if ((err = fx_adamw_validate(opts, diag)) != FX_OK)
		return err;
	a->opts = *opts;
	a->n = model->n_params;
	a->m = calloc(a->n, sizeof(float));
	a->v = calloc(a->n, sizeof(float));
	if (a->m == NULL || a->v == NULL) {
		fx_adamw_release(a);
		return fx_diag_set(diag, FX_ENOMEM,
		                   "cannot allocate AdamW state for %zu "
		                   "parameters",
		                   model->n_params);
	}
	return FX_OK;
}

void fx_adamw_release(fx_adamw *a)
{
	free(a->m);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

/* A run of parameters sharing one freeze decision: a whole tensor, or one
 * row of a router matrix, or one router bias element. */
typedef struct span {
	size_t off, n; /* in the arena */
	bool frozen, decay, clamp;
	bool router; /* a router row or bias: learning rate x router_lr_mult */
	const float *anchor; /* expert 0's twin of an expert e > 0 tensor */
} span;

/* The tensor of expert 0 in the same layer and position as tensor i (an
 * FFN tensor of an expert e > 0), or NULL if the model has none. */
static const float *expert0_twin(const fx_model *model, int i)
{
	const fx_tensor *t = &model->tensors[i];
	int pos = 0, seen = 0;

	for (int j = 0; j < i; j++)
		if (model->tensors[j].group == FX_GROUP_EXPERT &&
		    model->tensors[j].layer == t->layer &&
		    model->tensors[j].expert == t->expert)
			pos++;
	for (int j = 0; j < model->n_tensors; j++) {
		const fx_tensor *u = &model->tensors[j];
		if (u->group != FX_GROUP_EXPERT || u->layer != t->layer ||
		    u->expert != 0)
			continue;
		if (seen++ == pos)
			return u->numel == t->numel ? u->data : NULL;
	}
	return NULL;
}

/* Calls fn on every span of the model, in arena order; with_anchor looks
 * up each trainable expert tensor's expert-0 twin (span.anchor). */
static void for_spans(const fx_model *model, const fx_freeze *fz,
                      bool with_anchor, void (*fn)(const span *, void *),
                      void *ctx)
{
	for (int i = 0; i < model->n_tensors; i++) {
		const fx_tensor *t = &model->tensors[i];
		size_t off = (size_t)(t->data - model->params);
		span s = {off, t->numel, false, t->ndim == 2, false, false,
		          NULL};
		if (t->group == FX_GROUP_ROUTER ||
		    t->group == FX_GROUP_ROUTER_BIAS) {
			size_t w = t->ndim == 2 ? (size_t)t->shape[1] : 1;
			for (int e = 0; e < (int)t->shape[0]; e++) {
				span r = {off + (size_t)e * w, w,
				          fx_freeze_has(fz, t->group, e),
				          t->group == FX_GROUP_ROUTER,
				          t->group == FX_GROUP_ROUTER_BIAS, true,
				          NULL};
				fn(&r, ctx);
			}
			continue;
		}
		s.frozen = fx_freeze_has(fz, t->group, t->expert);
		if (with_anchor && t->group == FX_GROUP_EXPERT &&
		    t->expert > 0 && !s.frozen)
			s.anchor = expert0_twin(model, i);
		fn(&s, ctx);
	}
}

typedef struct step_ctx {
	fx_adamw *a;
	fx_model *model;
	double sumsq;
	float lr, gscale, bc1, bc2;
} step_ctx;

static void sumsq_fn(const span *s, void *p)
{
	step_ctx *c = p;
	const float *g = c->model->grads + s->off;
	double acc = 0.0;
	if (s->frozen)
		return;
	for (size_t i = 0; i < s->n; i++)
		acc += (double)g[i] * g[i];
	c->sumsq += acc;
}

/* The AdamW update of n parameters; restrict and a branch-free body let it
 * vectorise (sqrtf too: optim.c is built with -fno-math-errno). */
static void adamw_update(float *restrict w, const float *restrict g,
                         float *restrict m, float *restrict v, size_t n,
                         float b1, float b2, float eps, float lr, float decay,
                         float gscale, float bc1, float bc2)
{
	for (size_t i = 0; i < n; i++) {
		float gi = g[i] * gscale;
		m[i] = b1 * m[i] + (1.0f - b1) * gi;
		v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
		float mh = m[i] / bc1, vh = v[i] / bc2;
		/* decoupled decay first, as torch.optim.AdamW does */
		w[i] = w[i] * decay - lr * mh / (sqrtf(vh) + eps);
	}
}

static void update_fn(const span *s, void *p)
{
	step_ctx *c = p;
	const fx_adamw_opts *o = &c->a->opts;
	float *w = c->model->params + s->off;
	float lr = s->router ? c->lr * o->router_lr_mult : c->lr;
	bool to_anchor = s->anchor != NULL && o->expert_anchor_decay > 0.0f;

	if (s->frozen)
		return;
	if (to_anchor) /* decoupled, before the Adam step, like the decay */
		for (size_t i = 0; i < s->n; i++)
			w[i] -= lr * o->expert_anchor_decay *
			        (w[i] - s->anchor[i]);
	adamw_update(w, c->model->grads + s->off, c->a->m + s->off,
	             c->a->v + s->off, s->n, o->beta1, o->beta2, o->eps, lr,
	             s->decay && !to_anchor ? 1.0f - lr * o->weight_decay
	                                    : 1.0f,
	             c->gscale, c->bc1, c->bc2);
	if (s->clamp)
		for (size_t i = 0; i < s->n; i++)
			w[i] = w[i] > 0.0f ? 0.0f : w[i];
}

fx_err fx_adamw_step(fx_adamw *a, fx_model *model, const fx_freeze *frozen,
                     fx_step_info *info, fx_diag *diag)
{
	step_ctx c = {.a = a, .model = model};
	double norm;

	if (model->grads == NULL || a->n != model->n_params)
		return fx_diag_set(diag, FX_ESTATE,
		                   "AdamW state does not belong to this model");
	for_spans(model, frozen, false, sumsq_fn, &c);
	norm = sqrt(c.sumsq);
	if (!isfinite(norm))
		return fx_diag_set(diag, FX_ENUMERIC,
		                   "gradient norm is not finite at step %lld",
		                   (long long)a->t);
	c.gscale = 1.0f;
	if (a->opts.clip_norm > 0.0f && norm > a->opts.clip_norm)
		c.gscale = (float)(a->opts.clip_norm / norm);
	c.lr = fx_lr_at(&a->opts, a->t);
	a->t++;
	c.bc1 = 1.0f - (float)pow(a->opts.beta1, (double)a->t);
	c.bc2 = 1.0f - (float)pow(a->opts.beta2, (double)a->t);
	for_spans(model, frozen, a->opts.expert_anchor_decay > 0.0f, update_fn,
	          &c);
	if (info != NULL) {
		info->lr = c.lr;
		info->grad_norm = (float)norm;
	}
	return FX_OK;
}

fx_err fx_train_step(fx_model *model, fx_adamw *a, const fx_freeze *frozen,
                     const int32_t *tokens, const int32_t *targets, int B,
                     int T, const fx_fwd_opts *opts, fx_loss *loss,
                     fx_step_info *info, fx_diag *diag)
{
	fx_loss l;
	fx_err err;

	if (targets == NULL)
		return fx_diag_set(diag, FX_EINVAL, "training needs targets");
	fx_model_zero_grad(model);
	if ((err = fx_model_forward(model, tokens, targets, B, T, opts, &l,
	                            diag)) != FX_OK)
		return err;
	if (!isfinite(l.total))
		return fx_diag_set(diag, FX_ENUMERIC, "loss is %g", l.total);
	if ((err = fx_model_backward(model, frozen, diag)) != FX_OK)
		return err;
	if ((err = fx_adamw_step(a, model, frozen, info, diag)) != FX_OK)
		return err;
	if (loss != NULL)
		*loss = l;
	return FX_OK;
}
