/* Model soup and the prefix-weighted ensemble (BTM) baselines. */
#include "flexo/baselines.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/corpus.h"
#include "flexo/tokenizer.h"

fx_err fx_token_logprobs(fx_model *m, const int32_t *tokens,
                         const int32_t *targets, int B, int T,
                         uint64_t disabled_experts, double *lp,
                         fx_diag *diag)
{
	fx_fwd_opts opts = {0};
	const float *logits;
	int V = m->cfg.vocab_size;
	fx_err err;

	opts.disabled_experts = disabled_experts;
	err = fx_model_forward(m, tokens, NULL, B, T, &opts, NULL, diag);
	if (err != FX_OK)
		return err;
	logits = fx_model_logits(m);
	for (size_t i = 0; i < (size_t)B * (size_t)T; i++) {
		const float *z = logits + i * (size_t)V;
		double mx = z[0], sum = 0.0;
		if (targets[i] < 0) {
			lp[i] = 0.0;
			continue;
		}
		for (int v = 1; v < V; v++)
			mx = z[v] > mx ? z[v] : mx;
		for (int v = 0; v < V; v++)
			sum += exp((double)z[v] - mx);
		lp[i] = (double)z[targets[i]] - mx - log(sum);
	}
	return FX_OK;
}

fx_err fx_soup_build(fx_model *out, const fx_model *anchor,
                     const fx_expert *const *experts, int n, fx_diag *diag)
{
	size_t fd = (size_t)anchor->cfg.d_ff * (size_t)anchor->cfg.d_model;
	float w = 1.0f / (float)(n + 1);
	fx_model m = {0};
	fx_err err;

	if (anchor->cfg.n_experts != 1)
		return fx_diag_set(diag, FX_EINVAL, "soup needs a dense anchor");
	err = fx_model_init(&m, &anchor->cfg, false, diag);
	if (err == FX_OK)
		err = fx_model_copy_params(&m, anchor, diag);
	if (err != FX_OK) {
		fx_model_release(&m);
		return err;
	}
	for (int l = 0; l < m.cfg.n_layers; l++) {
		fx_layer *ly = &m.layers[l];
		float *dst[3] = {ly->gate[0], ly->up[0], ly->down[0]};
		for (int p = 0; p < 3; p++) {
			for (size_t j = 0; j < fd; j++) {
				double s = dst[p][j];
				for (int i = 0; i < n; i++) {
					const fx_expert *x = experts[i];
					const float *src = p == 0   ? x->gate
					                   : p == 1 ? x->up
					                            : x->down;
					s += src[l * fd + j];
				}
				dst[p][j] = (float)(s * w);
			}
		}
	}
	*out = m;
	return FX_OK;
}

fx_err fx_btm_bpb(fx_model *const *models, int n, const uint16_t *stream,
                  size_t len, int B, int T, size_t max_tokens, double *bpb,
                  fx_diag *diag)
{
	size_t BT = (size_t)B * (size_t)T, pos = 0, counted = 0;
	int32_t *tokens = malloc(BT * sizeof(*tokens));
	int32_t *targets = malloc(BT * sizeof(*targets));
	double *lp = malloc((size_t)n * BT * sizeof(*lp));
	double *prefix = malloc((size_t)n * sizeof(*prefix));
	double nll = 0.0;
	fx_err err = FX_OK;

	if (!tokens || !targets || !lp || !prefix || n <= 0) {
		err = fx_diag_set(diag, n <= 0 ? FX_EINVAL : FX_ENOMEM,
		                  "ensemble of %d models", n);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		err = fx_model_reserve(models[i], B, T, diag);
		if (err != FX_OK)
			goto out;
	}
	while (pos + 1 < len && (max_tokens == 0 || counted < max_tokens)) {
		int rows = fx_corpus_windows(stream, len, &pos, B, T, false,
		                             tokens, targets);
		for (int i = 0; i < n; i++) {
			err = fx_token_logprobs(models[i], tokens, targets, rows,
			                        T, 0, lp + (size_t)i * BT, diag);
			if (err != FX_OK)
				goto out;
		}
		for (int r = 0; r < rows; r++) {
			for (int i = 0; i < n; i++)
				prefix[i] = 0.0;
			for (int t = 0; t < T; t++) {
				size_t k = (size_t)r * T + (size_t)t;
				double mx = -INFINITY, num = 0.0, den = 0.0;
				if (targets[k] < 0)
					continue;
				for (int i = 0; i < n; i++)
					mx = prefix[i] > mx ? prefix[i] : mx;
				for (int i = 0; i < n; i++) {
					double w = exp(prefix[i] - mx);
					den += w;
					num += w * exp(lp[(size_t)i * BT + k]);
				}
				/* EOS is predicted (it shapes the weights) but is not
				 * a byte, so it is not counted. */
				if (targets[k] != FX_TOK_EOS) {
					nll -= log(num / den);
					counted++;
				}
				for (int i = 0; i < n; i++)
					prefix[i] += lp[(size_t)i * BT + k];
			}
		}
	}
	if (counted == 0) {
		err = fx_diag_set(diag, FX_EINVAL, "no bytes to evaluate");
		goto out;
	}
	*bpb = nll / M_LN2 / (double)counted;
out:
	free(tokens);
	free(targets);
	free(lp);
	free(prefix);
	return err;
}
