/* Reading and writing the public router rows file. */
#include "flexo/routerpub.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/safetensors.h"

fx_err fx_routerpub_save(const fx_routerpub *r, const char *path,
                         fx_diag *diag)
{
	fx_st_writer *w = NULL;
	int64_t shape[2] = {r->n_layers, r->d_model};
	char norm[32], windows[32];
	fx_err err;

	snprintf(norm, sizeof(norm), "%.9g", (double)r->norm);
	snprintf(windows, sizeof(windows), "%d", r->windows);
	err = fx_st_writer_new(&w);
	if (err != FX_OK)
		return fx_diag_set(diag, err, "allocating safetensors writer");
	err = fx_st_writer_meta(w, "format", FX_ROUTERPUB_FORMAT, diag);
	if (err == FX_OK)
		err = fx_st_writer_meta(w, "embed.mode",
		                        r->mode == FX_EMBED_SHARED ? "shared"
		                                                   : "per-layer",
		                        diag);
	if (err == FX_OK)
		err = fx_st_writer_meta(w, "embed.norm", norm, diag);
	if (err == FX_OK)
		err = fx_st_writer_meta(w, "embed.windows", windows, diag);
	if (err == FX_OK)
		err = fx_st_writer_add(w, "router.pub", 2, shape, r->rows, diag);
	if (err == FX_OK)
		err = fx_st_writer_commit(w, path, diag);
	fx_st_writer_free(w);
	return err;
}

fx_err fx_routerpub_load(fx_routerpub *r, const char *path, int n_layers,
                         int d_model, fx_diag *diag)
{
	fx_st_file *f = NULL;
	fx_routerpub out = {0};
	const fx_st_tensor *t;
	const char *format, *mode, *norm, *windows;
	int64_t shape[2] = {n_layers, d_model};
	char *end;
	size_t n = (size_t)n_layers * (size_t)d_model;
	fx_err err;

	err = fx_st_open(path, &f, diag);
	if (err != FX_OK)
		goto out;
	format = fx_st_meta_get(f, "format");
	mode = fx_st_meta_get(f, "embed.mode");
	norm = fx_st_meta_get(f, "embed.norm");
	windows = fx_st_meta_get(f, "embed.windows");
	if (format == NULL || strcmp(format, FX_ROUTERPUB_FORMAT) != 0 ||
	    mode == NULL || norm == NULL || windows == NULL) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "not a public router file (want format %s "
		                  "with embed.mode, embed.norm, embed.windows)",
		                  FX_ROUTERPUB_FORMAT);
		goto out;
	}
	if (fx_embed_mode_parse(mode, &out.mode) != 0) {
		err = fx_diag_set(diag, FX_EFORMAT, "embed.mode \"%.32s\"", mode);
		goto out;
	}
	errno = 0;
	out.norm = strtof(norm, &end);
	if (errno || *end || !(out.norm > 0) || !isfinite(out.norm)) {
		err = fx_diag_set(diag, FX_EFORMAT, "embed.norm \"%.32s\"", norm);
		goto out;
	}
	out.windows = (int)strtol(windows, &end, 10);
	if (*end || out.windows <= 0 || out.windows > 1000000) {
		err = fx_diag_set(diag, FX_EFORMAT, "embed.windows \"%.32s\"",
		                  windows);
		goto out;
	}
	t = fx_st_find(f, "router.pub");
	if (t == NULL || f->n_tensors != 1) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "want exactly one tensor, router.pub");
		goto out;
	}
	out.rows = malloc(n * sizeof(float));
	if (out.rows == NULL) {
		err = FX_ENOMEM;
		goto out;
	}
	err = fx_st_read_f32(t, 2, shape, out.rows, diag);
	if (err != FX_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (!isfinite(out.rows[i])) {
			err = fx_diag_set(diag, FX_ENUMERIC,
			                  "router.pub element %zu is not finite", i);
			goto out;
		}
	out.n_layers = n_layers;
	out.d_model = d_model;
	*r = out;
	out.rows = NULL;
out:
	if (err != FX_OK)
		fx_diag_prefix(diag, "%s", path);
	free(out.rows);
	fx_st_close(f);
	return err;
}

void fx_routerpub_release(fx_routerpub *r)
{
	free(r->rows);
	memset(r, 0, sizeof(*r));
}
