/* Expert files and MoE assembly (DESIGN §2, "Expert training" and "Merge").
 *
 * An expert file is what a contributor sends: for every layer l, one SwiGLU
 * FFN and the expert's router row and bias, as safetensors:
 *   layers.{l}.gate_proj.weight [F, d]   layers.{l}.up_proj.weight [F, d]
 *   layers.{l}.down_proj.weight [d, F]   layers.{l}.router.weight [1, d]
 *   layers.{l}.router.bias [1]
 * and in __metadata__ "format" = "flexo-expert-1", the anchor's config keys
 * (as in a model file), "anchor_digest" (hex BLAKE2b-256 of the anchor file
 * the expert was trained from), "domain" and the training metadata
 * ("train.*" keys). Nothing else: the frozen parts are the anchor's. */
#ifndef FLEXO_EXPERT_H
#define FLEXO_EXPERT_H

#include <stdint.h>

#include "flexo/config.h"
#include "flexo/err.h"
#include "flexo/model.h"
#include "flexo/safetensors.h"

#define FX_EXPERT_FORMAT   "flexo-expert-1"
#define FX_EXPERT_MAX_META 32

/* One expert: its FFN in every layer, its router rows and biases. Owns
 * every array; free with fx_expert_release. */
typedef struct fx_expert {
	fx_config cfg;  /* the anchor's config (dense) */
	float *gate;    /* (L, F, d) */
	float *up;      /* (L, F, d) */
	float *down;    /* (L, d, F) */
	float *router;  /* (L, d) */
	float *bias;    /* (L), each <= 0 */
	fx_st_meta meta[FX_EXPERT_MAX_META]; /* owned key/value strings */
	int n_meta;
} fx_expert;

/* Allocates a zeroed expert for the (dense) anchor config. */
fx_err fx_expert_init(fx_expert *x, const fx_config *anchor_cfg,
                      fx_diag *diag);
void fx_expert_release(fx_expert *x);

/* Sets (or replaces) a metadata pair; keys and values are copied. */
fx_err fx_expert_set_meta(fx_expert *x, const char *key, const char *value,
                          fx_diag *diag);
/* NULL if absent; valid until the expert is released or the key replaced. */
const char *fx_expert_meta(const fx_expert *x, const char *key);

/* Copies expert `e` of MoE model m (FFN, router row, bias) into x, which
 * must be initialised for m's dense config. */
fx_err fx_expert_from_model(fx_expert *x, const fx_model *m, int e,
                            fx_diag *diag);

/* Writes x as an expert file (temporary file + fsync + rename). */
fx_err fx_expert_save(const fx_expert *x, const char *path, fx_diag *diag);

/* Reads and strictly checks an expert file: format, config, exact tensor
 * set and shapes, all values finite, biases <= 0. *x is initialised here. */
fx_err fx_expert_load(fx_expert *x, const char *path, fx_diag *diag);

/* Builds the MoE model `out` (uninitialised storage; initialised here,
 * with gradients when `training`) from a dense anchor, the public router
 * rows r_pub (L, d) and n experts: expert 0 is the anchor's FFN with router
 * row r_pub and bias 0, expert i+1 is experts[i]. E = n + 1, top-k = top_k,
 * router biases on. Every expert must carry the anchor's config. */
fx_err fx_moe_build(fx_model *out, const fx_model *anchor, const float *r_pub,
                    const fx_expert *const *experts, int n, int top_k,
                    bool training, fx_diag *diag);

/* The freeze mask of expert training: everything frozen except expert 1's
 * FFN, router row 1 and router bias 1. */
fx_freeze fx_expert_training_freeze(void);

#endif
