/* safetensors reader (mmap, strict, bounded) and writer (streamed to a
 * temporary file + fsync + rename). Format: 8-byte little-endian header
 * length N, N bytes of JSON header {name: {dtype, shape, data_offsets:
 * [begin,end]}, "__metadata__": {string: string}}, then raw row-major
 * little-endian tensor data. Submitted expert weights arrive in this format,
 * so the reader treats every file as hostile. */
#ifndef FLEXO_SAFETENSORS_H
#define FLEXO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"

#define FX_ST_MAX_HEADER   (16u << 20) /* JSON header bytes */
#define FX_ST_MAX_TENSORS  4096
#define FX_ST_MAX_NAME     256 /* name bytes incl. NUL (<= 255) */
#define FX_ST_MAX_DIMS     4
#define FX_ST_MAX_METADATA 64          /* __metadata__ entries */
#define FX_ST_MAX_META_LEN (64u << 10) /* one metadata value, bytes */

typedef enum fx_dtype { FX_F32 = 0, FX_F16, FX_BF16 } fx_dtype;

/* "F32", "F16", "BF16". */
const char *fx_dtype_name(fx_dtype t);
/* Bytes per element: 4, 2, 2. */
size_t fx_dtype_size(fx_dtype t);

typedef struct fx_st_tensor {
	char name[FX_ST_MAX_NAME];
	fx_dtype dtype; /* as stored in the file */
	int ndim;       /* 1..FX_ST_MAX_DIMS */
	int64_t shape[FX_ST_MAX_DIMS];
	uint64_t begin, end; /* byte offsets inside the data section */
	const uint8_t *raw;  /* points into the mapping: end-begin bytes,
	                      * not necessarily aligned */
} fx_st_tensor;

typedef struct fx_st_meta {
	char *key;
	char *value;
} fx_st_meta;

/* An open, validated safetensors file. Owns the mapping (when opened from a
 * path); tensors[i].raw and every string stay valid until fx_st_close. The
 * file must not be truncated while open (a read past its new end would be
 * SIGBUS): open files flexo itself wrote or staged, or copies. */
typedef struct fx_st_file {
	const uint8_t *map; /* whole file */
	size_t map_size;
	size_t header_len;   /* N */
	const uint8_t *data; /* map + 8 + N */
	size_t data_size;
	fx_st_tensor *tensors; /* sorted by data offset */
	size_t n_tensors;
	fx_st_meta *meta; /* in file order */
	size_t n_meta;
	int owns_map; /* 1 if fx_st_close must munmap */
} fx_st_file;

/* Maps and validates `path`: header length <= FX_ST_MAX_HEADER and inside
 * the file, header starts with '{', strict JSON (duplicate names refused),
 * each entry exactly {dtype, shape, data_offsets}, dtype F32/F16/BF16 (any
 * other named in the error), 1..FX_ST_MAX_DIMS non-negative dimensions,
 * shape x dtype size == end - begin (overflow-checked), offsets inside the
 * data section, no overlap, no gap, data section fully covered, tensor count
 * and name bounds (1..255 bytes, no control characters), __metadata__ a
 * bounded string->string map. On
 * failure *out is untouched and diag names the first problem (tensor name +
 * what). Free with fx_st_close. */
fx_err fx_st_open(const char *path, fx_st_file **out, fx_diag *diag);

/* The same checks on a file already in memory. buf is not copied and must
 * outlive *out (fx_st_close does not free it). */
fx_err fx_st_parse(const uint8_t *buf, size_t len, fx_st_file **out,
                   fx_diag *diag);

/* Unmaps (if owned) and frees. NULL is fine. */
void fx_st_close(fx_st_file *f);

/* Lookups; NULL if absent. Returned pointers live as long as f. */
const fx_st_tensor *fx_st_find(const fx_st_file *f, const char *name);
const char *fx_st_meta_get(const fx_st_file *f, const char *key);

/* Number of elements of a tensor (product of its shape; cannot overflow
 * for a validated tensor). */
uint64_t fx_st_numel(const fx_st_tensor *t);

/* Copies tensor t into dst (numel floats) as float32, converting F16/BF16
 * exactly, after checking that its shape is exactly shape[0..ndim):
 * FX_EMISMATCH naming both shapes otherwise. */
fx_err fx_st_read_f32(const fx_st_tensor *t, int ndim, const int64_t *shape,
                      float *dst, fx_diag *diag);

/* Half-precision conversions used by fx_st_read_f32 (exact: every F16 and
 * BF16 value is a float). */
float fx_f16_to_f32(uint16_t h);
float fx_bf16_to_f32(uint16_t b);

/* Writer: collects tensors (not copied: data must stay valid until
 * fx_st_writer_commit) and metadata, then streams "path.tmp.XXXXXX" (header,
 * then each tensor straight from the caller's memory), fsyncs it, renames it
 * to path and fsyncs the directory. Tensors are written in the order added,
 * all F32, __metadata__ first, the header padded with spaces to a multiple
 * of 8 bytes (as the reference implementation does, so data is aligned).
 * The bounds of the reader apply, so whatever the writer writes reads back. */
typedef struct fx_st_writer fx_st_writer;

fx_err fx_st_writer_new(fx_st_writer **out);
/* name: 1..FX_ST_MAX_NAME-1 bytes, unique, not "__metadata__"; ndim in
 * 1..FX_ST_MAX_DIMS; data may be NULL only if the tensor has 0 elements. */
fx_err fx_st_writer_add(fx_st_writer *w, const char *name, int ndim,
                        const int64_t *shape, const float *data, fx_diag *diag);
/* Adds a __metadata__ entry (both strings copied; key unique). */
fx_err fx_st_writer_meta(fx_st_writer *w, const char *key, const char *value,
                         fx_diag *diag);
/* Writes the file (mode 0644). The writer may be freed afterwards, and may
 * commit again (e.g. to a second path). */
fx_err fx_st_writer_commit(fx_st_writer *w, const char *path, fx_diag *diag);
void fx_st_writer_free(fx_st_writer *w);

#endif
