/* Mean-pooled anchor hidden states: the domain embedder. */
#include "flexo/embed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/rng.h"
#include "model_internal.h"

int fx_embed_mode_parse(const char *s, fx_embed_mode *out)
{
	if (strcmp(s, "shared") == 0)
		*out = FX_EMBED_SHARED;
	else if (strcmp(s, "per-layer") == 0)
		*out = FX_EMBED_PER_LAYER;
	else
		return -1;
	return 0;
}

fx_err fx_embed_mean(fx_model *anchor, const uint16_t *stream, size_t n,
                     int n_windows, int T, uint64_t seed, fx_embed_mode mode,
                     float *mean, fx_diag *diag)
{
	const int B = 8;
	int L = anchor->cfg.n_layers, d = anchor->cfg.d_model;
	int32_t *tokens = NULL;
	double *sum = NULL;
	size_t count = 0;
	fx_rng rng;
	fx_err err;

	if (n_windows <= 0 || T < 2 || T > anchor->cfg.max_seq ||
	    n < (size_t)T + 2)
		return fx_diag_set(diag, FX_EINVAL,
		                   "embedding needs windows of 2..%d tokens and "
		                   "text longer than one window (have %zu tokens)",
		                   anchor->cfg.max_seq, n);
	err = fx_model_reserve(anchor, B, T, diag);
	if (err != FX_OK)
		return err;
	tokens = malloc((size_t)B * (size_t)T * sizeof(*tokens));
	sum = calloc((size_t)L * (size_t)d, sizeof(*sum));
	if (tokens == NULL || sum == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "embedding buffers");
		goto out;
	}
	fx_rng_seed(&rng, seed);
	for (int done = 0; done < n_windows; done += B) {
		int rows = n_windows - done < B ? n_windows - done : B;
		const fx_acts *a;
		size_t N = (size_t)rows * (size_t)T, cd;

		for (int b = 0; b < rows; b++) {
			size_t start = fx_rng_below(&rng, n - (size_t)T - 1);
			for (int t = 0; t < T; t++)
				tokens[b * T + t] = stream[start + (size_t)t];
		}
		err = fx_model_forward(anchor, tokens, NULL, rows, T, NULL, NULL,
		                       diag);
		if (err != FX_OK)
			goto out;
		a = anchor->acts;
		cd = a->cap * (size_t)d;
		for (int l = 0; l < L; l++) {
			const float *h = mode == FX_EMBED_SHARED
			                     ? a->res + (size_t)L * cd
			                     : a->h + (size_t)l * cd;
			double *s = sum + (size_t)l * d;
			if (mode == FX_EMBED_SHARED && l > 0)
				break;
			for (size_t i = 0; i < N; i++)
				for (int j = 0; j < d; j++)
					s[j] += h[i * (size_t)d + (size_t)j];
		}
		count += N;
	}
	for (int l = 0; l < L; l++) {
		const double *s = sum + (size_t)(mode == FX_EMBED_SHARED ? 0 : l) * d;
		for (int j = 0; j < d; j++)
			mean[(size_t)l * d + j] = (float)(s[j] / (double)count);
	}
out:
	free(tokens);
	free(sum);
	return err;
}

fx_err fx_embed_rows(const float *mean, const float *center, int L, int d,
                     float norm, float *rows, fx_diag *diag)
{
	for (int l = 0; l < L; l++) {
		const float *m = mean + (size_t)l * d;
		float *r = rows + (size_t)l * d;
		double ss = 0.0;
		for (int j = 0; j < d; j++) {
			r[j] = m[j] - (center ? center[(size_t)l * d + j] : 0.0f);
			ss += (double)r[j] * r[j];
		}
		if (!(ss > 1e-24) || !isfinite(ss))
			return fx_diag_set(diag, FX_ENUMERIC,
			                   "layer %d: the domain embedding is zero "
			                   "or not finite after centring",
			                   l);
		for (int j = 0; j < d; j++)
			r[j] = (float)(r[j] * (norm / sqrt(ss)));
	}
	return FX_OK;
}
