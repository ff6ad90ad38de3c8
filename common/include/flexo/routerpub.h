/* The public router rows r_pub that ship with the anchor release: one row
 * per layer, made by the domain embedder from public text, identical for
 * every contributor (merging needs it). A safetensors file holding tensor
 * "router.pub" [L, d] with __metadata__ "format" = "flexo-router-pub-1" and
 * the embedder settings every contributor must reuse for its own row:
 * "embed.mode" (shared | per-layer), "embed.norm", "embed.windows". */
#ifndef FLEXO_ROUTERPUB_H
#define FLEXO_ROUTERPUB_H

#include "flexo/embed.h"
#include "flexo/err.h"

#define FX_ROUTERPUB_FORMAT "flexo-router-pub-1"

typedef struct fx_routerpub {
	int n_layers, d_model;
	float *rows;        /* (L, d), owned */
	fx_embed_mode mode; /* how rows (and every r_i) are made */
	float norm;         /* L2 norm of every row */
	int windows;        /* windows averaged per embedding */
} fx_routerpub;

fx_err fx_routerpub_save(const fx_routerpub *r, const char *path,
                         fx_diag *diag);
/* Loads and checks path; L and d must equal the anchor's (pass them). */
fx_err fx_routerpub_load(fx_routerpub *r, const char *path, int n_layers,
                         int d_model, fx_diag *diag);
void fx_routerpub_release(fx_routerpub *r);

#endif
