/* Model configuration (the Hugging Face flex_olmo fields flexo uses), the
 * named presets, and its text form stored in safetensors __metadata__. */
#ifndef FLEXO_CONFIG_H
#define FLEXO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"

#define FX_MAX_LAYERS  64
#define FX_MAX_EXPERTS 64
#define FX_MAX_DIM     8192
#define FX_MAX_VOCAB   65536
#define FX_MAX_SEQ     8192

typedef struct fx_config {
	int vocab_size;  /* V: 256 bytes + specials (see tokenizer.h) */
	int d_model;     /* d */
	int n_layers;    /* L */
	int n_heads;     /* H; head_dim = d / H, must be even (RoPE) */
	int d_ff;        /* SwiGLU hidden width of each expert */
	int n_experts;   /* E; 1 = dense anchor */
	int top_k;       /* experts evaluated per token, 1 <= k <= E */
	int max_seq;     /* T_max: RoPE and KV-cache length */
	float rope_theta;
	float norm_eps;  /* RMSNorm epsilon */
	bool router_bias; /* per-expert bias b_e <= 0 present (paper, not HF) */
} fx_config;

/* Fills *out with a named preset ("tiny", "small", "medium", "wide").
 * Presets are dense (E = 1, k = 1). Returns FX_ENOTFOUND for other names. */
fx_err fx_config_preset(const char *name, fx_config *out, fx_diag *diag);

/* Checks every field against its bound and against the others. */
fx_err fx_config_validate(const fx_config *cfg, fx_diag *diag);

/* Number of parameters of the model the config describes. */
size_t fx_config_param_count(const fx_config *cfg);

#endif
