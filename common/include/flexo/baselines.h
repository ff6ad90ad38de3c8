/* The baselines FlexOLMo is compared with (DESIGN §2, "Evaluation"): a
 * model soup (uniform average of expert FFNs into one dense model) and a
 * BTM-style ensemble of the 2-expert models weighted by how well each
 * predicted the prefix, plus the per-token log-probabilities both need. */
#ifndef FLEXO_BASELINES_H
#define FLEXO_BASELINES_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/expert.h"
#include "flexo/model.h"

/* Runs a forward over tokens (B, T) and writes lp[i] = log p(targets[i]) for every
 * position (0 where targets[i] < 0). Honours disabled_experts. */
fx_err fx_token_logprobs(fx_model *m, const int32_t *tokens,
                         const int32_t *targets, int B, int T,
                         uint64_t disabled_experts, double *lp,
                         fx_diag *diag);

/* A dense model (initialised here) whose FFN in every layer is the uniform
 * average of the anchor's FFN and the n experts' FFNs; everything else is
 * the anchor's. */
fx_err fx_soup_build(fx_model *out, const fx_model *anchor,
                     const fx_expert *const *experts, int n, fx_diag *diag);

/* Bits per byte over a token stream (windows as fx_corpus_bpb, EOS targets
 * not counted) of the ensemble of n models: at each position t of a window,
 * p(x_t) = sum_i w_i(t) p_i(x_t), where w_i(t) is proportional to
 * p_i(x_0..x_{t-1}), model i's likelihood of the window's prefix (uniform
 * at t = 0): Bayesian model averaging over the prefix. Costs n forward
 * passes per token. */
fx_err fx_btm_bpb(fx_model *const *models, int n, const uint16_t *stream,
                  size_t len, int B, int T, size_t max_tokens, double *bpb,
                  fx_diag *diag);

#endif
