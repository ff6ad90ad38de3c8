/* Expert files (what a contributor sends) and assembling a mixture of
 * experts from an anchor plus expert files. */
#include "flexo/expert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/modelfile.h"

static size_t ffn_numel(const fx_config *c)
{
	return (size_t)c->n_layers * (size_t)c->d_ff * (size_t)c->d_model;
}

fx_err fx_expert_init(fx_expert *x, const fx_config *anchor_cfg,
                      fx_diag *diag)
{
	const fx_config *c = anchor_cfg;
	fx_err err;

	memset(x, 0, sizeof(*x));
	err = fx_config_validate(c, diag);
	if (err != FX_OK)
		return err;
	if (c->n_experts != 1)
		return fx_diag_set(diag, FX_EINVAL,
		                   "an expert extends a dense anchor (E = 1), "
		                   "not a model with %d experts",
		                   c->n_experts);
	x->cfg = *c;
	x->gate = calloc(ffn_numel(c), sizeof(float));
	x->up = calloc(ffn_numel(c), sizeof(float));
	x->down = calloc(ffn_numel(c), sizeof(float));
	x->router = calloc((size_t)c->n_layers * (size_t)c->d_model,
	                   sizeof(float));
	x->bias = calloc((size_t)c->n_layers, sizeof(float));
	if (!x->gate || !x->up || !x->down || !x->router || !x->bias) {
		fx_expert_release(x);
		return fx_diag_set(diag, FX_ENOMEM, "allocating an expert");
	}
	return FX_OK;
}

void fx_expert_release(fx_expert *x)
{
	free(x->gate);
	free(x->up);
	free(x->down);
	free(x->router);
	free(x->bias);
	for (int i = 0; i < x->n_meta; i++) {
		free(x->meta[i].key);
		free(x->meta[i].value);
	}
	memset(x, 0, sizeof(*x));
}

fx_err fx_expert_set_meta(fx_expert *x, const char *key, const char *value,
                          fx_diag *diag)
{
	char *v;
	int i;

	if (strlen(key) >= FX_ST_MAX_NAME || strlen(value) >= FX_ST_MAX_META_LEN)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "expert metadata %.40s is too long", key);
	for (i = 0; i < x->n_meta; i++)
		if (strcmp(x->meta[i].key, key) == 0)
			break;
	if (i == FX_EXPERT_MAX_META)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "more than %d expert metadata keys",
		                   FX_EXPERT_MAX_META);
	v = strdup(value);
	if (v == NULL)
		return FX_ENOMEM;
	if (i == x->n_meta) {
		x->meta[i].key = strdup(key);
		if (x->meta[i].key == NULL) {
			free(v);
			return FX_ENOMEM;
		}
		x->n_meta++;
	} else {
		free(x->meta[i].value);
	}
	x->meta[i].value = v;
	return FX_OK;
}

const char *fx_expert_meta(const fx_expert *x, const char *key)
{
	for (int i = 0; i < x->n_meta; i++)
		if (strcmp(x->meta[i].key, key) == 0)
			return x->meta[i].value;
	return NULL;
}

fx_err fx_expert_from_model(fx_expert *x, const fx_model *m, int e,
                            fx_diag *diag)
{
	const fx_config *c = &x->cfg;
	size_t fd = (size_t)c->d_ff * (size_t)c->d_model;
	int d = c->d_model;

	if (m->cfg.d_model != d || m->cfg.d_ff != c->d_ff ||
	    m->cfg.n_layers != c->n_layers || e < 0 || e >= m->cfg.n_experts)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "model (d=%d, F=%d, L=%d, E=%d) has no expert "
		                   "%d of this shape",
		                   m->cfg.d_model, m->cfg.d_ff, m->cfg.n_layers,
		                   m->cfg.n_experts, e);
	for (int l = 0; l < c->n_layers; l++) {
		const fx_layer *ly = &m->layers[l];
		memcpy(x->gate + l * fd, ly->gate[e], fd * sizeof(float));
		memcpy(x->up + l * fd, ly->up[e], fd * sizeof(float));
		memcpy(x->down + l * fd, ly->down[e], fd * sizeof(float));
		memcpy(x->router + (size_t)l * d, ly->router + (size_t)e * d,
		       (size_t)d * sizeof(float));
		x->bias[l] = ly->router_bias ? ly->router_bias[e] : 0.0f;
	}
	return FX_OK;
}

/* Visits the tensors of an expert file in their fixed order. */
typedef struct part {
	char name[FX_ST_MAX_NAME];
	int ndim;
	int64_t shape[2];
	float *data;
} part;

static int expert_parts(const fx_expert *x, part *parts, int max)
{
	const fx_config *c = &x->cfg;
	size_t fd = (size_t)c->d_ff * (size_t)c->d_model;
	int n = 0;

	for (int l = 0; l < c->n_layers && n + 5 <= max; l++) {
		part p[5] = {
		    {"", 2, {c->d_ff, c->d_model}, x->gate + l * fd},
		    {"", 2, {c->d_ff, c->d_model}, x->up + l * fd},
		    {"", 2, {c->d_model, c->d_ff}, x->down + l * fd},
		    {"", 2, {1, c->d_model}, x->router + (size_t)l * c->d_model},
		    {"", 1, {1, 0}, x->bias + l},
		};
		static const char *const names[5] = {
		    "gate_proj.weight", "up_proj.weight", "down_proj.weight",
		    "router.weight", "router.bias"};
		for (int i = 0; i < 5; i++) {
			snprintf(p[i].name, sizeof(p[i].name), "layers.%d.%s", l,
			         names[i]);
			parts[n++] = p[i];
		}
	}
	return n;
}

fx_err fx_expert_save(const fx_expert *x, const char *path, fx_diag *diag)
{
	int max = 5 * x->cfg.n_layers;
	part *parts = calloc((size_t)max, sizeof(*parts));
	fx_st_writer *w = NULL;
	fx_err err;
	int n;

	if (parts == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "expert parts");
	n = expert_parts(x, parts, max);
	err = fx_st_writer_new(&w);
	if (err != FX_OK) {
		free(parts);
		return fx_diag_set(diag, err, "allocating safetensors writer");
	}
	err = fx_st_writer_meta(w, "format", FX_EXPERT_FORMAT, diag);
	if (err == FX_OK)
		err = fx_config_write_meta(w, &x->cfg, diag);
	for (int i = 0; err == FX_OK && i < x->n_meta; i++)
		err = fx_st_writer_meta(w, x->meta[i].key, x->meta[i].value,
		                        diag);
	for (int i = 0; err == FX_OK && i < n; i++)
		err = fx_st_writer_add(w, parts[i].name, parts[i].ndim,
		                       parts[i].shape, parts[i].data, diag);
	if (err == FX_OK)
		err = fx_st_writer_commit(w, path, diag);
	fx_st_writer_free(w);
	free(parts);
	return err;
}

static bool is_config_key(const char *key)
{
	static const char *const keys[] = {
	    "format", "vocab_size", "hidden_size", "num_hidden_layers",
	    "num_attention_heads", "intermediate_size", "num_experts",
	    "num_experts_per_tok", "max_position_embeddings", "rope_theta",
	    "rms_norm_eps", "router_bias"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

fx_err fx_expert_load(fx_expert *x, const char *path, fx_diag *diag)
{
	fx_st_file *f = NULL;
	fx_expert e = {0};
	part *parts = NULL;
	const char *format;
	fx_config cfg;
	size_t numel;
	int n = 0;
	fx_err err;

	err = fx_st_open(path, &f, diag);
	if (err != FX_OK)
		goto out;
	format = fx_st_meta_get(f, "format");
	if (format == NULL || strcmp(format, FX_EXPERT_FORMAT) != 0) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "not a flexo expert file (format \"%.40s\", "
		                  "want \"%s\")",
		                  format ? format : "(missing)", FX_EXPERT_FORMAT);
		goto out;
	}
	err = fx_config_read_meta(f, &cfg, diag);
	if (err == FX_OK)
		err = fx_expert_init(&e, &cfg, diag);
	if (err != FX_OK)
		goto out;
	parts = calloc((size_t)5 * (size_t)cfg.n_layers, sizeof(*parts));
	if (parts == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "expert parts");
		goto out;
	}
	n = expert_parts(&e, parts, 5 * cfg.n_layers);
	if ((size_t)n != f->n_tensors) {
		err = fx_diag_set(diag, FX_EMISMATCH,
		                  "expert file holds %zu tensors, a %d-layer "
		                  "expert has %d",
		                  f->n_tensors, cfg.n_layers, n);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		const fx_st_tensor *t = fx_st_find(f, parts[i].name);
		if (t == NULL) {
			err = fx_diag_set(diag, FX_EMISMATCH,
			                  "expert file lacks tensor %s",
			                  parts[i].name);
			goto out;
		}
		err = fx_st_read_f32(t, parts[i].ndim, parts[i].shape,
		                     parts[i].data, diag);
		if (err != FX_OK)
			goto out;
		numel = fx_st_numel(t);
		for (size_t j = 0; j < numel; j++)
			if (!isfinite(parts[i].data[j])) {
				err = fx_diag_set(diag, FX_ENUMERIC,
				                  "tensor %s element %zu is not "
				                  "finite",
				                  parts[i].name, j);
				goto out;
			}
	}
	for (int l = 0; l < cfg.n_layers; l++)
		if (e.bias[l] > 0.0f) {
			err = fx_diag_set(diag, FX_EINVAL,
			                  "layers.%d.router.bias is %g; expert "
			                  "biases must be <= 0",
			                  l, (double)e.bias[l]);
			goto out;
		}
	for (size_t i = 0; i < f->n_meta; i++) {
		if (is_config_key(f->meta[i].key))
			continue;
		err = fx_expert_set_meta(&e, f->meta[i].key, f->meta[i].value,
		                         diag);
		if (err != FX_OK)
			goto out;
	}
	*x = e;
	memset(&e, 0, sizeof(e));
out:
	if (err != FX_OK)
		fx_diag_prefix(diag, "%s", path);
	free(parts);
	fx_expert_release(&e);
	fx_st_close(f);
	return err;
}

fx_err fx_moe_build(fx_model *out, const fx_model *anchor, const float *r_pub,
                    const fx_expert *const *experts, int n, int top_k,
                    bool training, fx_diag *diag)
{
	const fx_config *ac = &anchor->cfg;
	size_t fd = (size_t)ac->d_ff * (size_t)ac->d_model;
	size_t d = (size_t)ac->d_model;
	fx_config cfg = *ac;
	fx_model m = {0};
	fx_err err;

	if (ac->n_experts != 1)
		return fx_diag_set(diag, FX_EINVAL,
		                   "the anchor must be dense (it has %d experts)",
		                   ac->n_experts);
	if (n < 0 || n + 1 > FX_MAX_EXPERTS)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "%d experts: at most %d fit beside the public "
		                   "one",
		                   n, FX_MAX_EXPERTS - 1);
	for (int i = 0; i < n; i++) {
		const fx_config *xc = &experts[i]->cfg;
		if ((xc->vocab_size != ac->vocab_size ||
		     xc->d_model != ac->d_model || xc->n_layers != ac->n_layers ||
		     xc->n_heads != ac->n_heads || xc->d_ff != ac->d_ff ||
		     xc->max_seq != ac->max_seq ||
		     xc->rope_theta != ac->rope_theta ||
		     xc->norm_eps != ac->norm_eps))
			return fx_diag_set(diag, FX_EMISMATCH,
			                   "expert %d was trained for another "
			                   "model shape than the anchor's",
			                   i + 1);
	}
	cfg.n_experts = n + 1;
	cfg.top_k = top_k;
	cfg.router_bias = true;
	err = fx_model_init(&m, &cfg, training, diag);
	if (err != FX_OK)
		return err;
	/* Everything but the MoE blocks is the anchor's, tensor by tensor. */
	for (int i = 0; i < anchor->n_tensors; i++) {
		const fx_tensor *t = &anchor->tensors[i];
		fx_tensor *dst;
		if (t->group == FX_GROUP_EXPERT || t->group == FX_GROUP_ROUTER ||
		    t->group == FX_GROUP_ROUTER_BIAS)
			continue;
		dst = fx_model_tensor(&m, t->name);
		if (dst == NULL || dst->numel != t->numel) {
			fx_model_release(&m);
			return fx_diag_set(diag, FX_EINTERNAL,
			                   "tensor %s has no counterpart", t->name);
		}
		memcpy(dst->data, t->data, t->numel * sizeof(float));
	}
	for (int l = 0; l < cfg.n_layers; l++) {
		const fx_layer *al = &anchor->layers[l];
		fx_layer *ml = &m.layers[l];
		memcpy(ml->gate[0], al->gate[0], fd * sizeof(float));
		memcpy(ml->up[0], al->up[0], fd * sizeof(float));
		memcpy(ml->down[0], al->down[0], fd * sizeof(float));
		memcpy(ml->router, r_pub + l * d, d * sizeof(float));
		ml->router_bias[0] = 0.0f;
		for (int i = 0; i < n; i++) {
			const fx_expert *x = experts[i];
			memcpy(ml->gate[i + 1], x->gate + l * fd, fd * sizeof(float));
			memcpy(ml->up[i + 1], x->up + l * fd, fd * sizeof(float));
			memcpy(ml->down[i + 1], x->down + l * fd, fd * sizeof(float));
			memcpy(ml->router + (size_t)(i + 1) * d, x->router + l * d,
			       d * sizeof(float));
			ml->router_bias[i + 1] = x->bias[l];
		}
	}
	*out = m;
	return FX_OK;
}

fx_freeze fx_expert_training_freeze(void)
{
	fx_freeze f = {0};
	f.embed = f.lm_head = f.final_norm = f.attn = f.qk_norm = true;
	f.post_attn_norm = f.post_ff_norm = true;
	f.experts = ~(uint64_t)0 & ~(uint64_t)2;
	f.router_rows = ~(uint64_t)0 & ~(uint64_t)2;
	f.router_bias = ~(uint64_t)0 & ~(uint64_t)2;
	return f;
}
