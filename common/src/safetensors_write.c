/* safetensors writer: builds the header with the shared JSON writer, pads it
 * to a multiple of 8 bytes, and streams header and tensors from the caller's
 * memory into an atomically replaced file (no copy of the whole model). */
#include "flexo/safetensors.h"

#include <stdlib.h>
#include <string.h>

#include "flexo/fsutil.h"
#include "flexo/json.h"
#include "json_utf8.h"

typedef struct entry {
	char *name;
	int ndim;
	int64_t shape[FX_ST_MAX_DIMS];
	const float *data;
	uint64_t bytes;
} entry;

struct fx_st_writer {
	entry *entries;
	size_t n, cap;
	fx_st_meta meta[FX_ST_MAX_METADATA];
	size_t n_meta;
	uint64_t total; /* bytes of the data section so far */
};

fx_err fx_st_writer_new(fx_st_writer **out)
{
	fx_st_writer *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return FX_ENOMEM;
	*out = w;
	return FX_OK;
}

void fx_st_writer_free(fx_st_writer *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n; i++)
		free(w->entries[i].name);
	free(w->entries);
	for (size_t i = 0; i < w->n_meta; i++) {
		free(w->meta[i].key);
		free(w->meta[i].value);
	}
	free(w);
}

fx_err fx_st_writer_add(fx_st_writer *w, const char *name, int ndim,
                        const int64_t *shape, const float *data, fx_diag *diag)
{
	uint64_t bytes = sizeof(float);
	size_t len;
	entry *e;

	if (name == NULL || (len = strlen(name)) == 0 || len >= FX_ST_MAX_NAME)
		return fx_diag_set(diag, FX_EINVAL,
		                   "tensor name must be 1..%d bytes",
		                   FX_ST_MAX_NAME - 1);
	for (size_t i = 0; i < len;) {
		size_t k =
		    fx_utf8_valid_seq((const unsigned char *)name + i, len - i);
		if (k == 0 || (unsigned char)name[i] < 0x20 || name[i] == 0x7F)
			return fx_diag_set(diag, FX_EINVAL,
			                   "tensor name has invalid UTF-8 or a "
			                   "control character at byte %zu",
			                   i);
		i += k;
	}
	if (strcmp(name, "__metadata__") == 0)
		return fx_diag_set(diag, FX_EINVAL,
		                   "\"__metadata__\" is not a tensor name");
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->entries[i].name, name) == 0)
			return fx_diag_set(diag, FX_EEXIST,
			                   "tensor \"%s\" added twice", name);
	if (w->n >= FX_ST_MAX_TENSORS)
		return fx_diag_set(diag, FX_ETOOBIG, "more than %d tensors",
		                   FX_ST_MAX_TENSORS);
	if (ndim < 1 || ndim > FX_ST_MAX_DIMS)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "tensor \"%s\": %d dimensions, must be 1..%d", name, ndim,
		    FX_ST_MAX_DIMS);
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return fx_diag_set(diag, FX_EINVAL,
			                   "tensor \"%s\": negative dimension",
			                   name);
		if (shape[i] != 0 && bytes > UINT64_MAX / (uint64_t)shape[i])
			return fx_diag_set(diag, FX_ETOOBIG,
			                   "tensor \"%s\": size overflows",
			                   name);
		bytes *= (uint64_t)shape[i];
	}
	if (bytes > SIZE_MAX || bytes > (uint64_t)INT64_MAX - w->total)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "tensor \"%s\": file too large", name);
	if (data == NULL && bytes > 0)
		return fx_diag_set(diag, FX_EINVAL, "tensor \"%s\": no data",
		                   name);
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		entry *ne = realloc(w->entries, cap * sizeof(*ne));
		if (ne == NULL)
			return fx_diag_set(diag, FX_ENOMEM, "out of memory");
		w->entries = ne;
		w->cap = cap;
	}
	e = &w->entries[w->n];
	memset(e, 0, sizeof(*e));
	if ((e->name = strdup(name)) == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "out of memory");
	e->ndim = ndim;
	memcpy(e->shape, shape, (size_t)ndim * sizeof(*shape));
	e->data = data;
	e->bytes = bytes;
	w->total += bytes;
	w->n++;
	return FX_OK;
}

fx_err fx_st_writer_meta(fx_st_writer *w, const char *key, const char *value,
                         fx_diag *diag)
{
	size_t klen;

	if (key == NULL || value == NULL || (klen = strlen(key)) == 0 ||
	    klen >= FX_ST_MAX_NAME)
		return fx_diag_set(diag, FX_EINVAL,
		                   "metadata key must be 1..%d bytes",
		                   FX_ST_MAX_NAME - 1);
	if (strlen(value) > FX_ST_MAX_META_LEN)
		return fx_diag_set(
		    diag, FX_ETOOBIG,
		    "metadata \"%s\": value longer than %u bytes", key,
		    FX_ST_MAX_META_LEN);
	for (size_t i = 0; i < w->n_meta; i++)
		if (strcmp(w->meta[i].key, key) == 0)
			return fx_diag_set(diag, FX_EEXIST,
			                   "metadata \"%s\" set twice", key);
	if (w->n_meta >= FX_ST_MAX_METADATA)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "more than %d metadata entries",
		                   FX_ST_MAX_METADATA);
	w->meta[w->n_meta].key = strdup(key);
	w->meta[w->n_meta].value = strdup(value);
	if (w->meta[w->n_meta].key == NULL ||
	    w->meta[w->n_meta].value == NULL) {
		free(w->meta[w->n_meta].key);
		free(w->meta[w->n_meta].value);
		return fx_diag_set(diag, FX_ENOMEM, "out of memory");
	}
	w->n_meta++;
	return FX_OK;
}

/* The JSON header, not yet padded. */
static fx_err build_header(const fx_st_writer *w, char **out, size_t *len,
                           fx_diag *diag)
{
	fx_json_writer j;
	uint64_t off = 0;
	fx_err err;

	fx_jw_init(&j, FX_ST_MAX_HEADER, false);
	fx_jw_object_begin(&j);
	if (w->n_meta > 0) {
		fx_jw_key(&j, "__metadata__");
		fx_jw_object_begin(&j);
		for (size_t i = 0; i < w->n_meta; i++) {
			fx_jw_key(&j, w->meta[i].key);
			fx_jw_string(&j, w->meta[i].value);
		}
		fx_jw_object_end(&j);
	}
	for (size_t i = 0; i < w->n; i++) {
		const entry *e = &w->entries[i];
		fx_jw_key(&j, e->name);
		fx_jw_object_begin(&j);
		fx_jw_key(&j, "dtype");
		fx_jw_string(&j, "F32");
		fx_jw_key(&j, "shape");
		fx_jw_array_begin(&j);
		for (int d = 0; d < e->ndim; d++)
			fx_jw_int64(&j, e->shape[d]);
		fx_jw_array_end(&j);
		fx_jw_key(&j, "data_offsets");
		fx_jw_array_begin(&j);
		fx_jw_uint64(&j, off);
		fx_jw_uint64(&j, off + e->bytes);
		fx_jw_array_end(&j);
		fx_jw_object_end(&j);
		off += e->bytes;
	}
	fx_jw_object_end(&j);
	err = fx_jw_finish(&j, out, len, diag);
	fx_jw_release(&j);
	return err;
}

fx_err fx_st_writer_commit(fx_st_writer *w, const char *path, fx_diag *diag)
{
	static const char spaces[8] = "        ";
	fx_atomic_file af = {.fd = -1};
	char *header = NULL;
	size_t hlen = 0, pad;
	uint8_t lenbuf[8];
	uint64_t n;
	fx_err err;

	if ((err = build_header(w, &header, &hlen, diag)) != FX_OK)
		goto out;
	/* Pad so the data section starts 8-byte aligned (8 + N = 0 mod 8). */
	pad = (8 - hlen % 8) % 8;
	n = (uint64_t)hlen + pad;
	if (n > FX_ST_MAX_HEADER) {
		err =
		    fx_diag_set(diag, FX_ETOOBIG,
		                "header of %llu bytes exceeds the limit of %u",
		                (unsigned long long)n, FX_ST_MAX_HEADER);
		goto out;
	}
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (uint8_t)(n >> (8 * i));
	if ((err = fx_atomic_open(&af, path, 0644, diag)) != FX_OK)
		goto out;
	err = fx_atomic_write(&af, lenbuf, 8, diag);
	if (err == FX_OK)
		err = fx_atomic_write(&af, header, hlen, diag);
	if (err == FX_OK)
		err = fx_atomic_write(&af, spaces, pad, diag);
	for (size_t i = 0; err == FX_OK && i < w->n; i++)
		err = fx_atomic_write(&af, w->entries[i].data,
		                      (size_t)w->entries[i].bytes, diag);
	if (err == FX_OK)
		err = fx_atomic_commit(&af, diag);
out:
	fx_atomic_abort(&af);
	free(header);
	return err;
}
