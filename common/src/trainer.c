/* The training loop: sample, step, evaluate, checkpoint, resume. */
#include "flexo/trainer.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "flexo/safetensors.h"

void fx_train_opts_defaults(fx_train_opts *o, const fx_config *cfg)
{
	memset(o, 0, sizeof(*o));
	o->batch = 8;
	o->seq = cfg->max_seq;
	o->steps = 1000;
	fx_adamw_defaults(&o->adam);
	o->seed = 1;
	o->eval_every = 200;
	o->eval_tokens = 65536;
	o->ckpt_every = 200;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static fx_err save_state(const char *path, const fx_model *m,
                         const fx_adamw *a, const fx_rng *rng, fx_diag *diag)
{
	fx_st_writer *w = NULL;
	int64_t shape[1] = {(int64_t)m->n_params};
	char value[96];
	fx_err err;

	err = fx_st_writer_new(&w);
	if (err != FX_OK)
		return fx_diag_set(diag, err, "allocating state writer");
	err = fx_st_writer_meta(w, "format", FX_TRAIN_STATE_FORMAT, diag);
	snprintf(value, sizeof(value), "%" PRId64, a->t);
	if (err == FX_OK)
		err = fx_st_writer_meta(w, "step", value, diag);
	snprintf(value, sizeof(value),
	         "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
	         rng->s[0], rng->s[1], rng->s[2], rng->s[3]);
	if (err == FX_OK)
		err = fx_st_writer_meta(w, "sampler_rng", value, diag);
	if (err == FX_OK)
		err = fx_st_writer_add(w, "params", 1, shape, m->params, diag);
	if (err == FX_OK)
		err = fx_st_writer_add(w, "adam.m", 1, shape, a->m, diag);
	if (err == FX_OK)
		err = fx_st_writer_add(w, "adam.v", 1, shape, a->v, diag);
	if (err == FX_OK)
		err = fx_st_writer_commit(w, path, diag);
	fx_st_writer_free(w);
	return err;
}

static fx_err parse_hex64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char ch = s[i];
		int d = ch >= '0' && ch <= '9'   ? ch - '0'
		        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
		                                 : -1;
		if (d < 0)
			return FX_EFORMAT;
		v = (v << 4) | (uint64_t)d;
	}
	*out = v;
	return FX_OK;
}

static fx_err load_state(const char *path, fx_model *m, fx_adamw *a,
                         fx_rng *rng, fx_diag *diag)
{
	fx_st_file *f = NULL;
	const char *format, *step, *seed;
	int64_t shape[1] = {(int64_t)m->n_params};
	char *end = NULL;
	fx_rng r;
	long long t;
	fx_err err;

	err = fx_st_open(path, &f, diag);
	if (err != FX_OK)
		return err;
	format = fx_st_meta_get(f, "format");
	step = fx_st_meta_get(f, "step");
	seed = fx_st_meta_get(f, "sampler_rng");
	if (format == NULL || strcmp(format, FX_TRAIN_STATE_FORMAT) != 0 ||
	    step == NULL || seed == NULL || strlen(seed) != 64) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "%s is not a flexo training state", path);
		goto out;
	}
	t = strtoll(step, &end, 10);
	if (*end != '\0' || t < 0) {
		err = fx_diag_set(diag, FX_EFORMAT, "%s: bad step \"%.32s\"",
		                  path, step);
		goto out;
	}
	for (int i = 0; i < 4; i++)
		if (parse_hex64(seed + 16 * i, &r.s[i]) != FX_OK) {
			err = fx_diag_set(diag, FX_EFORMAT,
			                  "%s: bad sampler_rng", path);
			goto out;
		}
	const char *names[3] = {"params", "adam.m", "adam.v"};
	float *dst[3] = {m->params, a->m, a->v};
	for (int i = 0; i < 3; i++) {
		const fx_st_tensor *st = fx_st_find(f, names[i]);
		if (st == NULL) {
			err = fx_diag_set(diag, FX_EFORMAT, "%s lacks tensor %s",
			                  path, names[i]);
			goto out;
		}
		err = fx_st_read_f32(st, 1, shape, dst[i], diag);
		if (err != FX_OK) {
			fx_diag_prefix(diag, "%s (a different model?)", path);
			goto out;
		}
	}
	a->t = t;
	*rng = r;
out:
	fx_st_close(f);
	return err;
}

/* One step whose last mix_rows rows train only the router: two forward and
 * backward passes accumulate into the gradients, then one AdamW step. */
static fx_err split_step(fx_model *m, fx_adamw *adam, const fx_train_opts *o,
                         const int32_t *tokens, const int32_t *targets,
                         int mix_rows, fx_loss *loss, fx_step_info *info,
                         fx_diag *diag)
{
	int main_rows = o->batch - mix_rows;
	size_t off = (size_t)main_rows * (size_t)o->seq;
	fx_freeze router_only = o->freeze;
	fx_loss mix_loss;
	fx_err err;

	router_only.experts = ~(uint64_t)0;
	fx_model_zero_grad(m);
	err = fx_model_forward(m, tokens, targets, main_rows, o->seq, &o->fwd,
	                       loss, diag);
	if (err == FX_OK)
		err = fx_model_backward(m, &o->freeze, diag);
	if (err == FX_OK)
		err = fx_model_forward(m, tokens + off, targets + off, mix_rows,
		                       o->seq, &o->fwd, &mix_loss, diag);
	if (err == FX_OK)
		err = fx_model_backward(m, &router_only, diag);
	if (err == FX_OK && (!isfinite(loss->total) || !isfinite(mix_loss.total)))
		err = fx_diag_set(diag, FX_ENUMERIC, "loss is not finite");
	if (err == FX_OK)
		err = fx_adamw_step(adam, m, &o->freeze, info, diag);
	return err;
}

static bool file_exists(const char *path)
{
	struct stat st;
	return path != NULL && stat(path, &st) == 0;
}

fx_err fx_train_run(fx_model *m, const fx_corpus *c, const fx_train_opts *o,
                    const fx_logger *log, fx_train_report *rep, fx_diag *diag)
{
	fx_adamw adam = {0};
	fx_adamw_opts aopts = o->adam;
	fx_train_report r = {0};
	int32_t *tokens = NULL, *targets = NULL;
	size_t n_tok = (size_t)o->batch * (size_t)o->seq;
	int64_t done_here = 0;
	double t0 = now_s(), tokens_here = 0;
	fx_loss loss = {0};
	fx_step_info info = {0};
	fx_rng rng;
	int mix_rows = o->mix_rows;
	char extra[128];
	fx_err err;

	if (o->batch <= 0 || o->seq <= 1 || o->seq > m->cfg.max_seq ||
	    o->steps <= 0)
		return fx_diag_set(diag, FX_EINVAL,
		                   "batch %d, sequence %d (max %d), steps %" PRId64
		                   ": all must be positive and within bounds",
		                   o->batch, o->seq, m->cfg.max_seq, o->steps);
	if (mix_rows < 0 || mix_rows >= o->batch ||
	    (mix_rows > 0 && (o->mix == NULL ||
	                      o->mix->n_train < (size_t)o->seq + 2)))
		return fx_diag_set(diag, FX_EINVAL,
		                   "%d mixed rows of %d need a mix text longer "
		                   "than one sequence and at least one main row",
		                   mix_rows, o->batch);
	if (c->n_train < (size_t)o->seq + 2)
		return fx_diag_set(diag, FX_EINVAL,
		                   "training text (%zu tokens) is shorter than "
		                   "one sequence",
		                   c->n_train);
	aopts.total_steps = o->steps;
	err = fx_adamw_init(&adam, m, &aopts, diag);
	if (err != FX_OK)
		return err;
	err = fx_model_reserve(m, o->batch, o->seq, diag);
	if (err != FX_OK)
		goto out;
	tokens = malloc(n_tok * sizeof(*tokens));
	targets = malloc(n_tok * sizeof(*targets));
	if (tokens == NULL || targets == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "batch buffers");
		goto out;
	}
	fx_rng_seed(&rng, o->seed);
	if (file_exists(o->state_path)) {
		err = load_state(o->state_path, m, &adam, &rng, diag);
		if (err != FX_OK)
			goto out;
		fx_log(log, FX_INFO, "resuming from %s at step %" PRId64,
		       o->state_path, adam.t);
	}
	while (adam.t < o->steps &&
	       (o->stop_after == 0 || done_here < o->stop_after)) {
		fx_corpus_sample(c->train, c->n_train, o->batch - mix_rows,
		                 o->seq, &rng, tokens, targets);
		if (mix_rows > 0)
			fx_corpus_sample(o->mix->train, o->mix->n_train,
			                 mix_rows, o->seq, &rng,
			                 tokens + (o->batch - mix_rows) * o->seq,
			                 targets + (o->batch - mix_rows) * o->seq);
		if (mix_rows > 0 && o->mix_router_only)
			err = split_step(m, &adam, o, tokens, targets, mix_rows,
			                 &loss, &info, diag);
		else
			err = fx_train_step(m, &adam, &o->freeze, tokens, targets,
			                    o->batch, o->seq, &o->fwd, &loss,
			                    &info, diag);
		if (err != FX_OK) {
			fx_diag_prefix(diag, "step %" PRId64, adam.t);
			goto out;
		}
		done_here++;
		tokens_here += (double)n_tok;
		r.last_loss = loss.ce;
		if (o->eval_every > 0 && adam.t % o->eval_every == 0 &&
		    adam.t < o->steps) {
			err = fx_corpus_bpb(m, c->heldout, c->n_heldout,
			                    o->batch, o->seq, o->eval_tokens, 0,
			                    &r.heldout_bpb, diag);
			if (err != FX_OK)
				goto out;
			fx_progress_end(log);
			fx_log(log, FX_INFO,
			       "step %" PRId64 "/%" PRId64 ": train loss %.4f "
			       "(%.3f bits/byte), held-out %.4f bits/byte, "
			       "%.0f tok/s",
			       adam.t, o->steps, loss.ce, loss.ce / M_LN2,
			       r.heldout_bpb, tokens_here / (now_s() - t0));
		}
		if (log != NULL && (log->tty || adam.t % 50 == 0)) {
			snprintf(extra, sizeof(extra),
			         "loss %.3f lr %.2e |g| %.2f", loss.ce,
			         (double)info.lr, (double)info.grad_norm);
			fx_progress(log, "train", (uint64_t)adam.t,
			            (uint64_t)o->steps, extra);
		}
		if (o->state_path != NULL && o->ckpt_every > 0 &&
		    adam.t % o->ckpt_every == 0 && adam.t < o->steps) {
			err = save_state(o->state_path, m, &adam, &rng, diag);
			if (err != FX_OK)
				goto out;
		}
	}
	fx_progress_end(log);
	if (o->state_path != NULL) {
		err = save_state(o->state_path, m, &adam, &rng, diag);
		if (err != FX_OK)
			goto out;
	}
	if (adam.t >= o->steps) {
		err = fx_corpus_bpb(m, c->heldout, c->n_heldout, o->batch,
		                    o->seq, o->eval_tokens, 0, &r.heldout_bpb,
		                    diag);
		if (err != FX_OK)
			goto out;
	}
	r.steps_done = adam.t;
	r.seconds = now_s() - t0;
	r.tokens_per_s = r.seconds > 0 ? tokens_here / r.seconds : 0;
	if (rep != NULL)
		*rep = r;
out:
	free(tokens);
	free(targets);
	fx_adamw_release(&adam);
	return err;
}
