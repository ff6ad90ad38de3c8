/* Model configuration: the named presets, validation of every field against
 * its bound and the others, and the parameter count of the described model. */
#include "flexo/config.h"

#include <math.h>
#include <string.h>

#include "flexo/err.h"

/* 256 byte tokens + BOS, EOS, PAD (tokenizer.h). */
#define BYTE_VOCAB 259

typedef struct preset {
	const char *name;
	int d, L, H, d_ff, T;
} preset;

/* tiny: model tests in milliseconds. small: the anchor preset; ~1.1 M
 * parameters (~0.9 M in the blocks) cost ~8 MFLOP per token for a training
 * step, so at the ~60-100 GFLOP/s a step reaches on 2 cores it sees ~8-12k
 * tokens/s, i.e. one or two passes over 2-4 MB of text in 10 minutes.
 * medium: 4x the width-squared of small for longer runs. wide: the
 * benchmark shape, wide enough that sgemm dominates the step. */
static const preset presets[] = {
    {"tiny", 32, 2, 2, 64, 32},
    {"small", 128, 4, 4, 512, 256},
    {"medium", 256, 6, 4, 1024, 256},
    {"wide", 512, 4, 8, 2048, 256},
};

fx_err fx_config_preset(const char *name, fx_config *out, fx_diag *diag)
{
	if (name == NULL)
		return fx_diag_set(diag, FX_EINVAL, "no preset name given");
	for (size_t i = 0; i < sizeof(presets) / sizeof(*presets); i++) {
		const preset *p = &presets[i];
		if (strcmp(name, p->name) != 0)
			continue;
		memset(out, 0, sizeof(*out));
		out->vocab_size = BYTE_VOCAB;
		out->d_model = p->d;
		out->n_layers = p->L;
		out->n_heads = p->H;
		out->d_ff = p->d_ff;
		out->n_experts = 1;
		out->top_k = 1;
		out->max_seq = p->T;
		out->rope_theta = 10000.0f;
		out->norm_eps = 1e-6f;
		out->router_bias = false;
		return FX_OK;
	}
	return fx_diag_set(diag, FX_ENOTFOUND,
	                   "unknown model preset '%s' (tiny, small, medium, "
	                   "wide)",
	                   name);
}

static fx_err check_range(const char *field, int v, int lo, int hi,
                          fx_diag *diag)
{
	if (v < lo || v > hi)
		return fx_diag_set(diag, FX_EINVAL,
		                   "config %s = %d is outside [%d, %d]", field,
		                   v, lo, hi);
	return FX_OK;
}

fx_err fx_config_validate(const fx_config *cfg, fx_diag *diag)
{
	fx_err err;

	if ((err = check_range("vocab_size", cfg->vocab_size, 1, FX_MAX_VOCAB,
	                       diag)) ||
	    (err = check_range("d_model", cfg->d_model, 2, FX_MAX_DIM, diag)) ||
	    (err = check_range("n_layers", cfg->n_layers, 1, FX_MAX_LAYERS,
	                       diag)) ||
	    (err =
	         check_range("n_heads", cfg->n_heads, 1, cfg->d_model, diag)) ||
	    (err = check_range("d_ff", cfg->d_ff, 1, 4 * FX_MAX_DIM, diag)) ||
	    (err = check_range("n_experts", cfg->n_experts, 1, FX_MAX_EXPERTS,
	                       diag)) ||
	    (err = check_range("top_k", cfg->top_k, 1, cfg->n_experts, diag)) ||
	    (err = check_range("max_seq", cfg->max_seq, 1, FX_MAX_SEQ, diag)))
		return err;
	if (cfg->d_model % cfg->n_heads != 0)
		return fx_diag_set(diag, FX_EINVAL,
		                   "config d_model = %d is not a multiple of "
		                   "n_heads = %d",
		                   cfg->d_model, cfg->n_heads);
	if ((cfg->d_model / cfg->n_heads) % 2 != 0)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "config head_dim = d_model / n_heads = %d is odd "
		    "(RoPE pairs the two halves of a head)",
		    cfg->d_model / cfg->n_heads);
	if (!isfinite(cfg->rope_theta) || cfg->rope_theta <= 1.0f)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "config rope_theta = %g must be finite and > 1",
		    (double)cfg->rope_theta);
	if (!isfinite(cfg->norm_eps) || cfg->norm_eps <= 0.0f ||
	    cfg->norm_eps > 1.0f)
		return fx_diag_set(diag, FX_EINVAL,
		                   "config norm_eps = %g must be in (0, 1]",
		                   (double)cfg->norm_eps);
	return FX_OK;
}

/* Bounds checked by fx_config_validate keep every product below 2^63
 * (V*d <= 2^29, L*E*3*d*d_ff <= 2^6*2^6*2^2*2^13*2^15 = 2^42), so plain
 * size_t arithmetic cannot wrap on the 64-bit targets flexo builds for. */
size_t fx_config_param_count(const fx_config *cfg)
{
	size_t V = (size_t)cfg->vocab_size, d = (size_t)cfg->d_model;
	size_t E = (size_t)cfg->n_experts, F = (size_t)cfg->d_ff;
	size_t per_layer = 4 * d * d /* q, k, v, o */
	                   + 4 * d   /* q_norm, k_norm, two post norms */
	                   + E * d   /* router rows */
	                   + (cfg->router_bias ? E : 0) + E * 3 * d * F;
	return 2 * V * d + d + (size_t)cfg->n_layers * per_layer;
}
