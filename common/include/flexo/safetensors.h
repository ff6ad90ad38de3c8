/* safetensors reader (mmap, strict, bounded) and writer (temporary file +
 * fsync + rename). Format: 8-byte little-endian header length N, N bytes of
 * JSON header {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__":
 * {string: string}}, then raw row-major little-endian tensor data. */
#ifndef FLEXO_SAFETENSORS_H
#define FLEXO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"

#define FX_ST_MAX_HEADER   (16u << 20) /* JSON header bytes */
#define FX_ST_MAX_TENSORS  4096
#define FX_ST_MAX_NAME     256
#define FX_ST_MAX_DIMS     4
#define FX_ST_MAX_METADATA 64          /* __metadata__ entries */
#define FX_ST_MAX_META_LEN (64u << 10) /* one metadata value */

typedef enum fx_dtype { FX_F32 = 0, FX_F16, FX_BF16 } fx_dtype;

typedef struct fx_st_tensor {
	char name[FX_ST_MAX_NAME];
	fx_dtype dtype;          /* as stored in the file */
	int ndim;
	int64_t shape[FX_ST_MAX_DIMS];
	uint64_t begin, end;     /* byte offsets inside the data section */
	const uint8_t *raw;      /* points into the mapping: end-begin bytes */
} fx_st_tensor;

typedef struct fx_st_meta {
	char *key;
	char *value;
} fx_st_meta;

/* An open, validated safetensors file. Owns the mapping; tensors[i].raw and
 * every string stay valid until fx_st_close. */
typedef struct fx_st_file {
	const uint8_t *map; /* whole file */
	size_t map_size;
	size_t header_len;  /* N */
	const uint8_t *data; /* map + 8 + N */
	size_t data_size;
	fx_st_tensor *tensors; /* sorted by data offset */
	size_t n_tensors;
	fx_st_meta *meta;
	size_t n_meta;
} fx_st_file;

/* Maps and validates `path`: header length bound, strict JSON, known dtypes,
 * shapes consistent with byte ranges, offsets inside the data section, no
 * overlap, no gap, data section fully covered, tensor count bound, no
 * duplicate names. On failure *out is untouched and diag names the first
 * problem. Free with fx_st_close. */
fx_err fx_st_open(const char *path, fx_st_file **out, fx_diag *diag);
void fx_st_close(fx_st_file *f);

/* Lookups; NULL if absent. Returned pointers live as long as f. */
const fx_st_tensor *fx_st_find(const fx_st_file *f, const char *name);
const char *fx_st_meta_get(const fx_st_file *f, const char *key);

/* Number of elements of a tensor (product of its shape). */
uint64_t fx_st_numel(const fx_st_tensor *t);

/* Copies tensor t into dst as float32 (F16/BF16 converted), checking that its
 * shape is exactly `shape[0..ndim)`. */
fx_err fx_st_read_f32(const fx_st_tensor *t, int ndim, const int64_t *shape,
                      float *dst, fx_diag *diag);

/* Writer: collects tensors (not copied: data must stay valid until
 * fx_st_writer_commit) and metadata, then writes "path.tmp.XXXXXX", fsyncs
 * it, renames it to path and fsyncs the directory. Tensors are written in
 * the order added, all F32. */
typedef struct fx_st_writer fx_st_writer;

fx_err fx_st_writer_new(fx_st_writer **out);
fx_err fx_st_writer_add(fx_st_writer *w, const char *name, int ndim,
                        const int64_t *shape, const float *data,
                        fx_diag *diag);
fx_err fx_st_writer_meta(fx_st_writer *w, const char *key, const char *value,
                         fx_diag *diag);
fx_err fx_st_writer_commit(fx_st_writer *w, const char *path, fx_diag *diag);
void fx_st_writer_free(fx_st_writer *w);

#endif
