/* The model-side admission gates a coordinator runs on an expert before it
 * is accepted (DESIGN §3 "Gates", after signature, roster, anchor, replay
 * and strict-parse gates): weight and router-row norms within bounds of the
 * anchor's, the public-loss gate and the routing-capture gate. Each returns
 * FX_EREJECTED with a sentence naming the gate and the numbers when the
 * expert fails it, FX_OK when it passes, another error when it could not
 * be run. */
#ifndef FLEXO_GATES_H
#define FLEXO_GATES_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/corpus.h"
#include "flexo/err.h"
#include "flexo/expert.h"
#include "flexo/model.h"

typedef struct fx_gate_limits {
	/* Each layer's expert FFN matrices: Frobenius norm at most this
	 * multiple of the anchor's same matrix. */
	double max_ffn_norm_ratio;
	/* Each router row: L2 norm at most this multiple of r_pub's row. */
	double max_router_norm_ratio;
	/* Public-loss gate: the anchor-with-this-expert (2-expert model)
	 * held-out public bits/byte may exceed the anchor's by at most this
	 * fraction (0.02 = 2%). */
	double max_public_loss_rise;
	/* Routing-capture gate: routed top-1 between the public expert and
	 * this one (the anchor merged with it, k = 1), the expert may take at
	 * most this share of the public held-out tokens' slots, over every
	 * layer. A hijacking router row takes nearly all of them. */
	double max_public_capture;
	size_t eval_tokens; /* public held-out bytes evaluated, 0 = all */
	int batch;          /* sequences per evaluation batch */
} fx_gate_limits;

/* Defaults: FFN norms within 3x, router rows within 4x, public loss +2%,
 * capture at most 0.5, 65536 bytes, batch 8. */
void fx_gate_limits_defaults(fx_gate_limits *g);

/* What the gates measured, for the verdict and the ledger. */
typedef struct fx_gate_report {
	double worst_ffn_ratio;     /* largest expert/anchor FFN norm ratio */
	double worst_router_ratio;  /* largest router-row norm ratio */
	double anchor_public_bpb;
	double expert_public_bpb;   /* 2-expert model on public held-out */
	double public_capture;      /* expert's share of top-1 slots */
} fx_gate_report;

/* Norm gate: weights and router rows within bounds of the anchor's. */
fx_err fx_gate_norms(const fx_model *anchor, const float *r_pub,
                     const fx_expert *x, const fx_gate_limits *g,
                     fx_gate_report *rep, fx_diag *diag);

/* Public-loss and routing-capture gates on public held-out text. The
 * anchor's own public bits/byte may be passed in (anchor_bpb >= 0) to avoid
 * recomputing it per submission; pass -1 to compute it. */
fx_err fx_gate_public(fx_model *anchor, const float *r_pub,
                      const fx_expert *x, const uint16_t *public_heldout,
                      size_t n, double anchor_bpb, const fx_gate_limits *g,
                      fx_gate_report *rep, fx_diag *diag);

#endif
