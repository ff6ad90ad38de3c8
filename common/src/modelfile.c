/* Model <-> safetensors: the tensor table written and read by name, the
 * config carried as HF-named metadata strings. */
#include "flexo/modelfile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Config fields <-> metadata, named as in a Hugging Face config.json. */
enum { META_INT, META_FLOAT, META_BOOL };
static const struct {
	const char *key;
	int kind;
	size_t offset;
} config_fields[] = {
    {"vocab_size", META_INT, offsetof(fx_config, vocab_size)},
    {"hidden_size", META_INT, offsetof(fx_config, d_model)},
    {"num_hidden_layers", META_INT, offsetof(fx_config, n_layers)},
    {"num_attention_heads", META_INT, offsetof(fx_config, n_heads)},
    {"intermediate_size", META_INT, offsetof(fx_config, d_ff)},
    {"num_experts", META_INT, offsetof(fx_config, n_experts)},
    {"num_experts_per_tok", META_INT, offsetof(fx_config, top_k)},
    {"max_position_embeddings", META_INT, offsetof(fx_config, max_seq)},
    {"rope_theta", META_FLOAT, offsetof(fx_config, rope_theta)},
    {"rms_norm_eps", META_FLOAT, offsetof(fx_config, norm_eps)},
    {"router_bias", META_BOOL, offsetof(fx_config, router_bias)},
};
#define N_FIELDS (sizeof(config_fields) / sizeof(*config_fields))

fx_err fx_config_write_meta(fx_st_writer *w, const fx_config *cfg,
                            fx_diag *diag)
{
	char value[64];
	fx_err err = FX_OK;

	for (size_t i = 0; err == FX_OK && i < N_FIELDS; i++) {
		const char *p = (const char *)cfg + config_fields[i].offset;
		switch (config_fields[i].kind) {
		case META_INT:
			snprintf(value, sizeof(value), "%d", *(const int *)p);
			break;
		case META_FLOAT:
			/* %.9g round-trips any float exactly. */
			snprintf(value, sizeof(value), "%.9g",
			         (double)*(const float *)p);
			break;
		default:
			snprintf(value, sizeof(value), "%s",
			         *(const bool *)p ? "true" : "false");
		}
		err = fx_st_writer_meta(w, config_fields[i].key, value, diag);
	}
	return err;
}

fx_err fx_modelfile_save(const fx_model *m, const char *path,
                         const fx_st_meta *extra, size_t n_extra,
                         fx_diag *diag)
{
	fx_st_writer *w = NULL;
	fx_err err;

	err = fx_st_writer_new(&w);
	if (err != FX_OK)
		return fx_diag_set(diag, err, "allocating safetensors writer");
	err = fx_st_writer_meta(w, "format", FX_MODELFILE_FORMAT, diag);
	if (err == FX_OK)
		err = fx_config_write_meta(w, &m->cfg, diag);
	for (size_t i = 0; err == FX_OK && i < n_extra; i++)
		err = fx_st_writer_meta(w, extra[i].key, extra[i].value, diag);
	for (int i = 0; err == FX_OK && i < m->n_tensors; i++) {
		const fx_tensor *t = &m->tensors[i];
		err = fx_st_writer_add(w, t->name, t->ndim, t->shape, t->data,
		                       diag);
	}
	if (err == FX_OK)
		err = fx_st_writer_commit(w, path, diag);
	fx_st_writer_free(w);
	return err;
}

static fx_err parse_field(const char *key, const char *s, int kind, void *dst,
                          fx_diag *diag)
{
	char *end = NULL;

	errno = 0;
	if (kind == META_INT) {
		long v = strtol(s, &end, 10);
		if (errno || end == s || *end || v < 0 || v > 1 << 30)
			goto bad;
		*(int *)dst = (int)v;
	} else if (kind == META_FLOAT) {
		float v = strtof(s, &end);
		if (errno || end == s || *end || !isfinite(v))
			goto bad;
		*(float *)dst = v;
	} else {
		if (strcmp(s, "true") == 0)
			*(bool *)dst = true;
		else if (strcmp(s, "false") == 0)
			*(bool *)dst = false;
		else
			goto bad;
	}
	return FX_OK;
bad:
	return fx_diag_set(diag, FX_EFORMAT, "metadata %s = \"%.40s\" is not valid",
	                   key, s);
}

fx_err fx_config_read_meta(const fx_st_file *f, fx_config *out, fx_diag *diag)
{
	fx_config cfg;
	fx_err err;

	memset(&cfg, 0, sizeof(cfg));
	for (size_t i = 0; i < N_FIELDS; i++) {
		const char *v = fx_st_meta_get(f, config_fields[i].key);
		if (v == NULL)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "metadata lacks config key %s",
			                   config_fields[i].key);
		err = parse_field(config_fields[i].key, v, config_fields[i].kind,
		                  (char *)&cfg + config_fields[i].offset, diag);
		if (err != FX_OK)
			return err;
	}
	err = fx_config_validate(&cfg, diag);
	if (err != FX_OK)
		return err;
	*out = cfg;
	return FX_OK;
}

fx_err fx_modelfile_config(const fx_st_file *f, fx_config *out, fx_diag *diag)
{
	const char *format = fx_st_meta_get(f, "format");

	if (format == NULL || strcmp(format, FX_MODELFILE_FORMAT) != 0)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "not a flexo model file (metadata format is "
		                   "\"%.40s\", want \"%s\")",
		                   format ? format : "(missing)",
		                   FX_MODELFILE_FORMAT);
	return fx_config_read_meta(f, out, diag);
}

fx_err fx_modelfile_read_into(fx_model *m, const fx_st_file *f, bool partial,
                              fx_diag *diag)
{
	size_t found = 0;

	for (int i = 0; i < m->n_tensors; i++) {
		fx_tensor *t = &m->tensors[i];
		const fx_st_tensor *st = fx_st_find(f, t->name);
		fx_err err;

		if (st == NULL) {
			if (partial)
				continue;
			return fx_diag_set(diag, FX_EMISMATCH,
			                   "tensor %s is missing", t->name);
		}
		found++;
		err = fx_st_read_f32(st, t->ndim, t->shape, t->data, diag);
		if (err != FX_OK)
			return err;
		for (size_t j = 0; j < t->numel; j++)
			if (!isfinite(t->data[j]))
				return fx_diag_set(diag, FX_ENUMERIC,
				                   "tensor %s element %zu is not "
				                   "finite",
				                   t->name, j);
	}
	if (found != f->n_tensors) {
		for (size_t i = 0; i < f->n_tensors; i++)
			if (fx_model_tensor(m, f->tensors[i].name) == NULL)
				return fx_diag_set(diag, FX_EMISMATCH,
				                   "unexpected tensor %s",
				                   f->tensors[i].name);
	}
	return FX_OK;
}

fx_err fx_modelfile_load(fx_model *m, const char *path, bool training,
                         fx_diag *diag)
{
	fx_st_file *f = NULL;
	fx_config cfg;
	fx_err err;

	err = fx_st_open(path, &f, diag);
	if (err != FX_OK)
		goto out;
	err = fx_modelfile_config(f, &cfg, diag);
	if (err != FX_OK)
		goto out;
	err = fx_model_init(m, &cfg, training, diag);
	if (err != FX_OK)
		goto out;
	err = fx_modelfile_read_into(m, f, false, diag);
	if (err != FX_OK)
		fx_model_release(m);
out:
	if (err != FX_OK)
		fx_diag_prefix(diag, "%s", path);
	fx_st_close(f);
	return err;
}
