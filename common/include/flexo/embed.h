/* Domain embeddings (DESIGN §2): the anchor's mean-pooled hidden states over
 * sampled documents of one domain. One embedder serves the coordinator (for
 * the public router row r_pub shipped with the anchor) and every contributor
 * (for its own row r_i), so all rows live in one space. */
#ifndef FLEXO_EMBED_H
#define FLEXO_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/model.h"

typedef enum fx_embed_mode {
	/* One vector for every layer: the mean of the last layer's output
	 * hidden state (before the final norm). */
	FX_EMBED_SHARED = 0,
	/* Layer l's own vector: the mean of its router input (the residual
	 * stream after layer l's attention). */
	FX_EMBED_PER_LAYER = 1,
} fx_embed_mode;

/* Parses "shared" / "per-layer"; -1 if neither. */
int fx_embed_mode_parse(const char *s, fx_embed_mode *out);

/* Raw mean hidden states (L, d) of `anchor` over n_windows windows of T
 * tokens drawn with `seed` from a token stream (n > T + 1). Deterministic. */
fx_err fx_embed_mean(fx_model *anchor, const uint16_t *stream, size_t n,
                     int n_windows, int T, uint64_t seed, fx_embed_mode mode,
                     float *mean, fx_diag *diag);

/* Router rows from a raw mean (L, d): subtract `center` (L, d; NULL = no
 * centring), then scale every row to L2 norm `norm`. Raw means have norms
 * of 8-16, which puts router logits in the hundreds; unit rows keep them
 * comparable to the bias and let the z-loss act gently. */
fx_err fx_embed_rows(const float *mean, const float *center, int L, int d,
                     float norm, float *rows, fx_diag *diag);

#endif
