/* Expert training as in the paper (DESIGN §2): a 2-expert MoE built from the
 * anchor — expert 0 the public FFN (frozen), expert 1 a copy of it (trained)
 * — with router rows r_pub (frozen) and r_i (trained), bias b_i <= 0
 * (trained), everything else frozen, top-k 2 and the router z-loss. */
#ifndef FLEXO_EXPERT_TRAIN_H
#define FLEXO_EXPERT_TRAIN_H

#include "flexo/corpus.h"
#include "flexo/expert.h"
#include "flexo/log.h"
#include "flexo/model.h"
#include "flexo/trainer.h"

typedef struct fx_expert_train_opts {
	fx_train_opts train; /* batch, steps, AdamW, seed, evaluation, mix */
	float bias_init;     /* b_i at the start, <= 0 */
} fx_expert_train_opts;

/* Defaults: B 8, 300 steps, lr 1e-3 with 30 warm-up steps, z-loss 1e-3,
 * bias 0, evaluation at the end only. */
void fx_expert_train_defaults(fx_expert_train_opts *o, const fx_config *cfg);

/* Trains an expert on `domain` starting from the dense `anchor` with
 * router rows r_pub and r_init (both (L, d)); fills *out (initialised
 * here) with the trained expert. rep (may be NULL) reports the run; its
 * heldout_bpb is the 2-expert model's on domain->heldout. */
fx_err fx_expert_train(const fx_model *anchor, const float *r_pub,
                       const float *r_init, const fx_corpus *domain,
                       const fx_expert_train_opts *o, const fx_logger *log,
                       fx_expert *out, fx_train_report *rep, fx_diag *diag);

#endif
