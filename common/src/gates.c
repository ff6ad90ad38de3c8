/* Norm, public-loss and routing-capture gates on a submitted expert. */
#include "flexo/gates.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void fx_gate_limits_defaults(fx_gate_limits *g)
{
	g->max_ffn_norm_ratio = 3.0;
	g->max_router_norm_ratio = 4.0;
	g->max_public_loss_rise = 0.02;
	g->max_public_capture = 0.5;
	g->eval_tokens = 65536;
	g->batch = 8;
}

static double norm2(const float *x, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += (double)x[i] * x[i];
	return sqrt(s);
}

fx_err fx_gate_norms(const fx_model *anchor, const float *r_pub,
                     const fx_expert *x, const fx_gate_limits *g,
                     fx_gate_report *rep, fx_diag *diag)
{
	static const char *const names[3] = {"gate_proj", "up_proj",
	                                     "down_proj"};
	const fx_config *c = &anchor->cfg;
	size_t fd = (size_t)c->d_ff * (size_t)c->d_model;
	size_t d = (size_t)c->d_model;
	double worst_ffn = 0.0, worst_router = 0.0;

	for (int l = 0; l < c->n_layers; l++) {
		const fx_layer *al = &anchor->layers[l];
		const float *mine[3] = {x->gate + l * fd, x->up + l * fd,
		                        x->down + l * fd};
		const float *ref[3] = {al->gate[0], al->up[0], al->down[0]};
		double rr = norm2(x->router + l * d, d) /
		            fmax(norm2(r_pub + l * d, d), 1e-12);
		for (int p = 0; p < 3; p++) {
			double ratio = norm2(mine[p], fd) /
			               fmax(norm2(ref[p], fd), 1e-12);
			worst_ffn = fmax(worst_ffn, ratio);
			if (ratio > g->max_ffn_norm_ratio)
				return fx_diag_set(
				    diag, FX_EREJECTED,
				    "norm gate: layer %d %s has %.2fx the "
				    "anchor's norm (limit %.2fx)",
				    l, names[p], ratio, g->max_ffn_norm_ratio);
		}
		worst_router = fmax(worst_router, rr);
		if (rr > g->max_router_norm_ratio)
			return fx_diag_set(diag, FX_EREJECTED,
			                   "norm gate: layer %d router row has "
			                   "%.2fx the public row's norm (limit "
			                   "%.2fx)",
			                   l, rr, g->max_router_norm_ratio);
	}
	if (rep != NULL) {
		rep->worst_ffn_ratio = worst_ffn;
		rep->worst_router_ratio = worst_router;
	}
	return FX_OK;
}

/* Share of the top-1 slots expert 1 takes in the anchor+expert model. */
static fx_err capture_share(fx_model *pair1, const uint16_t *stream, size_t n,
                            const fx_gate_limits *g, double *share,
                            fx_diag *diag)
{
	int L = pair1->cfg.n_layers;
	uint64_t *counts = calloc((size_t)L * 2, sizeof(*counts));
	uint64_t mine = 0, all = 0;
	fx_err err;

	if (counts == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "capture counters");
	err = fx_corpus_routes(pair1, stream, n, g->batch, pair1->cfg.max_seq,
	                       g->eval_tokens, 0, counts, diag);
	for (int l = 0; err == FX_OK && l < L; l++) {
		mine += counts[l * 2 + 1];
		all += counts[l * 2] + counts[l * 2 + 1];
	}
	if (err == FX_OK)
		*share = all ? (double)mine / (double)all : 0.0;
	free(counts);
	return err;
}

fx_err fx_gate_public(fx_model *anchor, const float *r_pub,
                      const fx_expert *x, const uint16_t *public_heldout,
                      size_t n, double anchor_bpb, const fx_gate_limits *g,
                      fx_gate_report *rep, fx_diag *diag)
{
	const fx_expert *list[1] = {x};
	fx_model pair = {0};
	int T = anchor->cfg.max_seq;
	double bpb = 0.0, share = 0.0;
	fx_err err;

	if (anchor_bpb < 0) {
		err = fx_model_reserve(anchor, g->batch, T, diag);
		if (err == FX_OK)
			err = fx_corpus_bpb(anchor, public_heldout, n, g->batch, T,
			                    g->eval_tokens, 0, &anchor_bpb, diag);
		if (err != FX_OK)
			return err;
	}
	/* Public loss of the anchor merged with this expert, top-2 as it
	 * was trained. */
	err = fx_moe_build(&pair, anchor, r_pub, list, 1, 2, false, diag);
	if (err == FX_OK)
		err = fx_model_reserve(&pair, g->batch, T, diag);
	if (err == FX_OK)
		err = fx_corpus_bpb(&pair, public_heldout, n, g->batch, T,
		                    g->eval_tokens, 0, &bpb, diag);
	fx_model_release(&pair);
	if (err != FX_OK)
		return err;
	if (rep != NULL) {
		rep->anchor_public_bpb = anchor_bpb;
		rep->expert_public_bpb = bpb;
	}
	if (bpb > anchor_bpb * (1.0 + g->max_public_loss_rise))
		return fx_diag_set(diag, FX_EREJECTED,
		                   "public-loss gate: public held-out %.4f "
		                   "bits/byte with this expert vs %.4f for the "
		                   "anchor (+%.1f%%, limit +%.1f%%)",
		                   bpb, anchor_bpb,
		                   100.0 * (bpb / anchor_bpb - 1.0),
		                   100.0 * g->max_public_loss_rise);
	/* Routing capture: the same pair routed top-1. */
	err = fx_moe_build(&pair, anchor, r_pub, list, 1, 1, false, diag);
	if (err == FX_OK)
		err = capture_share(&pair, public_heldout, n, g, &share, diag);
	fx_model_release(&pair);
	if (err != FX_OK)
		return err;
	if (rep != NULL)
		rep->public_capture = share;
	if (share > g->max_public_capture)
		return fx_diag_set(diag, FX_EREJECTED,
		                   "routing-capture gate: the expert takes %.1f%% "
		                   "of the top-1 slots on public text (limit "
		                   "%.1f%%)",
		                   100.0 * share, 100.0 * g->max_public_capture);
	return FX_OK;
}
