/* safetensors reader: maps the file and validates every number in the
 * header before anything uses it (bounds, overflow, tiling of the data
 * section), with the strict JSON parser so duplicate names cannot alias.
 * The writer is in safetensors_write.c. */
#include "flexo/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flexo/json.h"

/* Tensor data is copied as host floats: flexo targets little-endian hosts. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian; big-endian hosts would "
               "need byte swapping");

const char *fx_dtype_name(fx_dtype t)
{
	switch (t) {
	case FX_F32:
		return "F32";
	case FX_F16:
		return "F16";
	case FX_BF16:
		return "BF16";
	}
	return "?";
}

size_t fx_dtype_size(fx_dtype t)
{
	return t == FX_F32 ? 4 : 2;
}

float fx_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
	float f;

	if (exp == 0x1F) {
		bits = sign | 0x7F800000u | (man << 13); /* inf / NaN */
	} else if (exp != 0) {
		bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
	} else if (man == 0) {
		bits = sign; /* signed zero */
	} else {
		/* Subnormal: value = man * 2^-24, normalise into a float. */
		int e = -1;
		do {
			man <<= 1;
			e++;
		} while ((man & 0x400) == 0);
		bits = sign | ((uint32_t)(127 - 15 - e) << 23) |
		       ((man & 0x3FF) << 13);
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

float fx_bf16_to_f32(uint16_t b)
{
	uint32_t bits = (uint32_t)b << 16;
	float f;

	memcpy(&f, &bits, sizeof(f));
	return f;
}

static int dtype_parse(const char *s, fx_dtype *out)
{
	if (strcmp(s, "F32") == 0)
		*out = FX_F32;
	else if (strcmp(s, "F16") == 0)
		*out = FX_F16;
	else if (strcmp(s, "BF16") == 0)
		*out = FX_BF16;
	else
		return -1;
	return 0;
}

void fx_st_close(fx_st_file *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n_meta; i++) {
		free(f->meta[i].key);
		free(f->meta[i].value);
	}
	free(f->meta);
	free(f->tensors);
	if (f->owns_map && f->map != NULL)
		munmap((void *)f->map, f->map_size);
	free(f);
}

static fx_err parse_metadata(fx_st_file *f, const fx_json *m, fx_diag *diag)
{
	if (m->type != FX_JSON_OBJECT)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "__metadata__ is %s, must be an object of "
		                   "strings",
		                   fx_json_type_name(m->type));
	if (m->len > FX_ST_MAX_METADATA)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "__metadata__ has %zu entries, more than "
		                   "the limit of %d",
		                   m->len, FX_ST_MAX_METADATA);
	if (m->len == 0)
		return FX_OK;
	f->meta = calloc(m->len, sizeof(*f->meta));
	if (f->meta == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "out of memory");
	for (size_t i = 0; i < m->len; i++) {
		const fx_json_member *e = &m->members[i];
		if (e->key_len == 0 || e->key_len >= FX_ST_MAX_NAME)
			return fx_diag_set(
			    diag, FX_EFORMAT,
			    "__metadata__ key of %zu bytes (must "
			    "be 1..%d)",
			    e->key_len, FX_ST_MAX_NAME - 1);
		if (e->value->type != FX_JSON_STRING)
			return fx_diag_set(
			    diag, FX_EFORMAT,
			    "__metadata__ value of \"%s\" is %s, "
			    "must be a string",
			    e->key, fx_json_type_name(e->value->type));
		if (e->value->len > FX_ST_MAX_META_LEN)
			return fx_diag_set(
			    diag, FX_ETOOBIG,
			    "__metadata__ value of \"%s\" is %zu "
			    "bytes, more than the limit of %u",
			    e->key, e->value->len, FX_ST_MAX_META_LEN);
		f->meta[i].key = strdup(e->key);
		f->meta[i].value = strdup(e->value->str);
		f->n_meta = i + 1;
		if (f->meta[i].key == NULL || f->meta[i].value == NULL)
			return fx_diag_set(diag, FX_ENOMEM, "out of memory");
	}
	return FX_OK;
}

/* Validates one header entry and fills t (offsets not yet checked against
 * the other tensors). */
static fx_err parse_tensor(const fx_st_file *f, const fx_json_member *e,
                           fx_st_tensor *t, fx_diag *diag)
{
	static const char *const fields[] = {"dtype", "shape", "data_offsets"};
	const fx_json *v = e->value, *shape, *offs;
	const char *dtype;
	uint64_t bytes;
	int64_t x;
	fx_err err;

	if (e->key_len >= FX_ST_MAX_NAME)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "tensor name \"%.64s...\" is %zu bytes, "
		                   "longer than %d",
		                   e->key, e->key_len, FX_ST_MAX_NAME - 1);
	memcpy(t->name, e->key, e->key_len + 1);
	if (e->key_len == 0)
		return fx_diag_set(diag, FX_EFORMAT, "empty tensor name");
	/* Names end up in logs and messages: no control characters. */
	for (size_t i = 0; i < e->key_len; i++)
		if ((unsigned char)e->key[i] < 0x20 || e->key[i] == 0x7F)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "control character 0x%02x in tensor "
			                   "name",
			                   (unsigned)e->key[i]);
	if (v->type != FX_JSON_OBJECT)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "entry is %s, must be an object",
		                   fx_json_type_name(v->type));
	if ((err = fx_json_only_keys(v, fields, 3, diag)) != FX_OK)
		return err;
	if ((err = fx_json_get_string(v, "dtype", &dtype, NULL, diag)) != FX_OK)
		return err;
	if (dtype_parse(dtype, &t->dtype) != 0)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "dtype \"%.32s\" is not supported (F32, "
		                   "F16, BF16 only)",
		                   dtype);

	shape = fx_json_get(v, "shape");
	if (shape == NULL || shape->type != FX_JSON_ARRAY)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "shape missing or not an array");
	if (shape->len < 1 || shape->len > FX_ST_MAX_DIMS)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "shape has %zu dimensions, must have 1..%d",
		                   shape->len, FX_ST_MAX_DIMS);
	t->ndim = (int)shape->len;
	bytes = fx_dtype_size(t->dtype);
	for (int i = 0; i < t->ndim; i++) {
		if ((err = fx_json_int64(shape->items[i], &x, diag)) != FX_OK) {
			fx_diag_prefix(diag, "shape[%d]", i);
			return err;
		}
		if (x < 0)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "negative dimension %lld in shape",
			                   (long long)x);
		t->shape[i] = x;
		/* bytes = dtype size x product of dims, overflow-checked. */
		if (x != 0 && bytes > UINT64_MAX / (uint64_t)x)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "shape size overflows 64 bits");
		bytes *= (uint64_t)x;
	}

	offs = fx_json_get(v, "data_offsets");
	if (offs == NULL || offs->type != FX_JSON_ARRAY || offs->len != 2)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "data_offsets must be an array [begin, end]");
	for (int i = 0; i < 2; i++) {
		if ((err = fx_json_int64(offs->items[i], &x, diag)) != FX_OK) {
			fx_diag_prefix(diag, "data_offsets[%d]", i);
			return err;
		}
		if (x < 0)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "negative data offset %lld",
			                   (long long)x);
		if (i == 0)
			t->begin = (uint64_t)x;
		else
			t->end = (uint64_t)x;
	}
	if (t->begin > t->end)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "data_offsets [%llu, %llu] end before they "
		                   "begin",
		                   (unsigned long long)t->begin,
		                   (unsigned long long)t->end);
	if (t->end > f->data_size)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "data_offsets [%llu, %llu] out of range: the "
		    "data section has %zu bytes",
		    (unsigned long long)t->begin, (unsigned long long)t->end,
		    f->data_size);
	if (bytes != t->end - t->begin)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "shape and dtype %s need %llu bytes, "
		                   "data_offsets give %llu",
		                   fx_dtype_name(t->dtype),
		                   (unsigned long long)bytes,
		                   (unsigned long long)(t->end - t->begin));
	t->raw = f->data + t->begin;
	return FX_OK;
}

static int by_offset(const void *a, const void *b)
{
	const fx_st_tensor *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Sorted by offset, the tensors must tile [0, data_size) exactly. */
static fx_err check_tiling(const fx_st_file *f, fx_diag *diag)
{
	uint64_t expect = 0;

	for (size_t i = 0; i < f->n_tensors; i++) {
		const fx_st_tensor *t = &f->tensors[i];
		if (t->begin < expect)
			return fx_diag_set(
			    diag, FX_EFORMAT,
			    "tensor \"%s\" [%llu, %llu) overlaps "
			    "tensor \"%s\" [%llu, %llu)",
			    t->name, (unsigned long long)t->begin,
			    (unsigned long long)t->end, f->tensors[i - 1].name,
			    (unsigned long long)f->tensors[i - 1].begin,
			    (unsigned long long)f->tensors[i - 1].end);
		if (t->begin > expect)
			return fx_diag_set(
			    diag, FX_EFORMAT,
			    "gap of %llu bytes in the data section "
			    "before tensor \"%s\"",
			    (unsigned long long)(t->begin - expect), t->name);
		expect = t->end;
	}
	if (expect != f->data_size)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "%llu trailing bytes of the data section not "
		    "covered by any tensor",
		    (unsigned long long)(f->data_size - expect));
	return FX_OK;
}

static fx_err validate(fx_st_file *f, fx_diag *diag)
{
	fx_json_limits lim = {0};
	fx_json_doc *doc = NULL;
	const fx_json *root;
	uint64_t n = 0;
	size_t count;
	fx_err err;

	if (f->map_size < 8) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "file is %zu bytes, shorter than the 8-byte "
		                  "header length",
		                  f->map_size);
		goto out;
	}
	for (int i = 7; i >= 0; i--)
		n = n << 8 | f->map[i];
	if (n > FX_ST_MAX_HEADER) {
		err = fx_diag_set(diag, FX_ETOOBIG,
		                  "header length %llu exceeds the limit of %u",
		                  (unsigned long long)n, FX_ST_MAX_HEADER);
		goto out;
	}
	if (n > f->map_size - 8) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "header length %llu runs past the end of the "
		                  "%zu-byte file",
		                  (unsigned long long)n, f->map_size);
		goto out;
	}
	f->header_len = (size_t)n;
	f->data = f->map + 8 + n;
	f->data_size = f->map_size - 8 - f->header_len;
	if (n == 0 || f->map[8] != '{') {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "header does not start with '{'");
		goto out;
	}
	/* root object > entry object > shape array: depth 3. */
	lim.max_size = FX_ST_MAX_HEADER;
	lim.max_depth = 3;
	lim.max_string = FX_ST_MAX_META_LEN;
	err = fx_json_parse((const char *)f->map + 8, f->header_len, &lim, &doc,
	                    diag);
	if (err != FX_OK) {
		fx_diag_prefix(diag, "header");
		goto out;
	}
	root = fx_json_root(doc);
	if (root->type != FX_JSON_OBJECT) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "header is %s, must be an object",
		                  fx_json_type_name(root->type));
		goto out;
	}
	count = root->len - (fx_json_get(root, "__metadata__") != NULL);
	if (count > FX_ST_MAX_TENSORS) {
		err = fx_diag_set(diag, FX_ETOOBIG,
		                  "%zu tensors, more than the limit of %d",
		                  count, FX_ST_MAX_TENSORS);
		goto out;
	}
	if (count > 0) {
		f->tensors = calloc(count, sizeof(*f->tensors));
		if (f->tensors == NULL) {
			err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
			goto out;
		}
	}
	for (size_t i = 0; i < root->len; i++) {
		const fx_json_member *e = &root->members[i];
		if (strcmp(e->key, "__metadata__") == 0) {
			if ((err = parse_metadata(f, e->value, diag)) != FX_OK)
				goto out;
			continue;
		}
		err = parse_tensor(f, e, &f->tensors[f->n_tensors], diag);
		if (err != FX_OK) {
			fx_diag_prefix(diag, "tensor \"%.200s\"", e->key);
			goto out;
		}
		f->n_tensors++;
	}
	if (f->n_tensors > 1)
		qsort(f->tensors, f->n_tensors, sizeof(*f->tensors), by_offset);
	err = check_tiling(f, diag);
out:
	fx_json_doc_free(doc);
	return err;
}

fx_err fx_st_parse(const uint8_t *buf, size_t len, fx_st_file **out,
                   fx_diag *diag)
{
	fx_st_file *f = calloc(1, sizeof(*f));
	fx_err err;

	if (f == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "out of memory");
	f->map = buf;
	f->map_size = len;
	if ((err = validate(f, diag)) != FX_OK) {
		fx_st_close(f);
		return err;
	}
	*out = f;
	return FX_OK;
}

fx_err fx_st_open(const char *path, fx_st_file **out, fx_diag *diag)
{
	fx_st_file *f = NULL;
	struct stat st;
	void *map = MAP_FAILED;
	int fd = -1;
	fx_err err = FX_OK;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = fx_diag_set(diag, errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		                  "opening %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		err = fx_diag_set(diag, FX_EIO, "stat %s: %s", path,
		                  strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err = fx_diag_set(diag, FX_EINVAL, "%s is not a regular file",
		                  path);
		goto out;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	f->map_size = (size_t)st.st_size;
	/* mmap of 0 bytes fails; validate() reports a short file anyway. */
	if (f->map_size >= 8) {
		map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			err = fx_diag_set(diag, FX_EIO, "mapping %s: %s", path,
			                  strerror(errno));
			goto out;
		}
		f->map = map;
		f->owns_map = 1;
	} else {
		static const uint8_t empty[8];
		f->map = empty;
	}
	if ((err = validate(f, diag)) != FX_OK) {
		fx_diag_prefix(diag, "%s", path);
		goto out;
	}
	*out = f;
	f = NULL;
out:
	fx_st_close(f);
	if (fd >= 0)
		close(fd);
	return err;
}

const fx_st_tensor *fx_st_find(const fx_st_file *f, const char *name)
{
	for (size_t i = 0; i < f->n_tensors; i++)
		if (strcmp(f->tensors[i].name, name) == 0)
			return &f->tensors[i];
	return NULL;
}

const char *fx_st_meta_get(const fx_st_file *f, const char *key)
{
	for (size_t i = 0; i < f->n_meta; i++)
		if (strcmp(f->meta[i].key, key) == 0)
			return f->meta[i].value;
	return NULL;
}

uint64_t fx_st_numel(const fx_st_tensor *t)
{
	uint64_t n = 1;

	for (int i = 0; i < t->ndim; i++)
		n *= (uint64_t)t->shape[i];
	return n;
}

/* "[2, 3]" into buf, for shape mismatch messages. */
static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
	size_t n = 0;

	n += (size_t)snprintf(buf, cap, "[");
	for (int i = 0; i < ndim && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "",
		                      (long long)shape[i]);
	if (n < cap)
		snprintf(buf + n, cap - n, "]");
}

fx_err fx_st_read_f32(const fx_st_tensor *t, int ndim, const int64_t *shape,
                      float *dst, fx_diag *diag)
{
	uint64_t n = fx_st_numel(t);
	bool same = ndim == t->ndim;

	for (int i = 0; same && i < ndim; i++)
		same = shape[i] == t->shape[i];
	if (!same) {
		char have[96], want[96];
		shape_str(have, sizeof(have), t->ndim, t->shape);
		shape_str(want, sizeof(want), ndim, shape);
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "tensor \"%s\" has shape %s, expected %s",
		                   t->name, have, want);
	}
	if (t->dtype == FX_F32) {
		if (n > 0)
			memcpy(dst, t->raw, (size_t)n * sizeof(float));
		return FX_OK;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint16_t h = (uint16_t)(t->raw[2 * i] | t->raw[2 * i + 1] << 8);
		dst[i] =
		    t->dtype == FX_F16 ? fx_f16_to_f32(h) : fx_bf16_to_f32(h);
	}
	return FX_OK;
}
