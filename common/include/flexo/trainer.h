/* The training loop shared by anchor and expert training: batches sampled
 * from a corpus, AdamW steps under a freeze mask, periodic held-out
 * bits-per-byte, progress, and checkpoint + exact resume (the resume state
 * holds parameters, both AdamW moments, the step and the sampler's RNG, so a
 * resumed run is bitwise the run that was not interrupted). */
#ifndef FLEXO_TRAINER_H
#define FLEXO_TRAINER_H

#include <stdint.h>

#include "flexo/corpus.h"
#include "flexo/err.h"
#include "flexo/log.h"
#include "flexo/model.h"
#include "flexo/optim.h"

#define FX_TRAIN_STATE_FORMAT "flexo-train-state-1"

typedef struct fx_train_opts {
	int batch;              /* B sequences per step */
	int seq;                /* T tokens per sequence */
	int64_t steps;          /* total steps of the run */
	fx_adamw_opts adam;     /* total_steps is set from `steps` */
	fx_freeze freeze;       /* groups left bitwise unchanged */
	fx_fwd_opts fwd;        /* z-loss, disabled experts during training */
	uint64_t seed;          /* batch sampling (weights are seeded apart) */
	int64_t eval_every;     /* steps between held-out evaluations, 0 = end only */
	size_t eval_tokens;     /* held-out targets per evaluation, 0 = all */
	int64_t ckpt_every;     /* steps between resume checkpoints, 0 = end only */
	const char *state_path; /* resume state file, NULL = none */
	int64_t stop_after;     /* stop (with a checkpoint) after this many
	                           steps of this invocation; 0 = run to the end.
	                           For tests of resume. */
	/* Optional second text mixed into every batch: the last `mix_rows`
	 * of the B rows are drawn from mix->train (expert training mixes in
	 * public text so the router pair learns to leave it to the public
	 * expert). NULL / 0 = none. Evaluation stays on the main corpus. */
	const fx_corpus *mix;
	int mix_rows;
	/* With a mix: the mixed rows train only the router (rows and
	 * biases), not the expert FFNs — they teach the router where the
	 * expert does NOT belong without making the expert generic. Done as a
	 * second forward/backward over the mixed rows with every expert FFN
	 * frozen, accumulated before the one AdamW step. */
	bool mix_router_only;
} fx_train_opts;

/* Defaults: B 8, T from the model's max_seq, 1000 steps, AdamW defaults,
 * seed 1, evaluation every 200 steps over 65536 tokens, checkpoint every
 * 200 steps. */
void fx_train_opts_defaults(fx_train_opts *o, const fx_config *cfg);

typedef struct fx_train_report {
	int64_t steps_done;     /* total steps, including resumed ones */
	double last_loss;       /* training cross-entropy of the last step */
	double heldout_bpb;     /* last held-out evaluation */
	double tokens_per_s;    /* this invocation's training throughput */
	double seconds;         /* this invocation's wall time */
} fx_train_report;

/* Trains `m` (initialised with a gradient arena) on c->train. If
 * opts->state_path names an existing state file, training resumes from it
 * (its config and parameter count must match). rep may be NULL. */
fx_err fx_train_run(fx_model *m, const fx_corpus *c, const fx_train_opts *o,
                    const fx_logger *log, fx_train_report *rep,
                    fx_diag *diag);

#endif
