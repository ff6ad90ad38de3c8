/* safetensors: the writer's bytes match a hand-built file, round trips are
 * bitwise, F16/BF16 decode to hand-computed IEEE values, and hand-crafted
 * malformed files are each refused with the right code and a message that
 * names the problem. */
#include "flexo/fsutil.h"
#include "flexo/safetensors.h"
#include "fx_test.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[256];

/* Writes LE64(n) + header + data_len bytes (0x00..) to a file; n is the
 * header's length unless n_override != UINT64_MAX. Returns the path. */
static const char *craft(const char *header, uint64_t n_override,
                         size_t data_len, const uint8_t *data)
{
	static char path[512];
	static int counter;
	size_t hl = strlen(header), total = 8 + hl + data_len;
	uint64_t n = n_override == UINT64_MAX ? hl : n_override;
	uint8_t *buf = malloc(total);
	fx_diag d;

	if (buf == NULL)
		return NULL;
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)(n >> (8 * i));
	memcpy(buf + 8, header, hl);
	for (size_t i = 0; i < data_len; i++)
		buf[8 + hl + i] = data ? data[i] : (uint8_t)i;
	snprintf(path, sizeof(path), "%s/crafted%d.safetensors", tmpdir,
	         counter++);
	if (fx_write_file_atomic(path, buf, total, 0600, &d) != FX_OK)
		fprintf(stderr, "craft: %s\n", d.msg);
	free(buf);
	return path;
}

static void test_writer_bytes(void)
{
	/* The file for {"a": [1.0, -2.0]} with metadata format=pt, built by
	 * hand from the format description. */
	const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
	                  "\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
	                  "\"data_offsets\":[0,8]}}";
	const uint8_t data[8] = {0x00, 0x00, 0x80, 0x3F,  /* 1.0f */
	                         0x00, 0x00, 0x00, 0xC0}; /* -2.0f */
	size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
	uint8_t expect[256], *got = NULL;
	size_t got_len = 0;
	const float a[2] = {1.0f, -2.0f};
	const int64_t shape[1] = {2};
	fx_st_writer *w = NULL;
	char path[512];
	fx_diag d;

	memset(expect, ' ', sizeof(expect));
	for (int i = 0; i < 8; i++)
		expect[i] = (uint8_t)((uint64_t)padded >> (8 * i));
	memcpy(expect + 8, hdr, hl);
	memcpy(expect + 8 + padded, data, 8);

	CHECK_OK(fx_st_writer_new(&w));
	if (w == NULL)
		return;
	CHECK_OK(fx_st_writer_add(w, "a", 1, shape, a, &d));
	CHECK_OK(fx_st_writer_meta(w, "format", "pt", &d));
	snprintf(path, sizeof(path), "%s/bytes.safetensors", tmpdir);
	CHECK_OK(fx_st_writer_commit(w, path, &d));
	fx_st_writer_free(w);
	CHECK_OK(fx_read_file(path, 1024, &got, &got_len, &d));
	CHECK_MSG(got_len == 8 + padded + 8, "length %zu", got_len);
	CHECK(got != NULL && got_len == 8 + padded + 8 &&
	      memcmp(got, expect, got_len) == 0);
	free(got);
}

static void test_roundtrip(void)
{
	enum { R = 5, C = 7 };
	float big[R * C], vec[3] = {-0.0f, 1e-40f, 3.5f}, empty_dummy = 0;
	float back[R * C];
	const int64_t s_big[2] = {R, C}, s_vec[1] = {3}, s_empty[2] = {0, 4};
	const int64_t s4[4] = {1, 1, 1, 1};
	fx_st_writer *w = NULL;
	fx_st_file *f = NULL;
	const fx_st_tensor *t;
	char path[512];
	fx_diag d;

	for (int i = 0; i < R * C; i++)
		big[i] = (float)i * 0.37f - 3.0f;
	CHECK_OK(fx_st_writer_new(&w));
	if (w == NULL)
		return;
	CHECK_OK(fx_st_writer_add(w,
	                          "model.layers.0.mlp.experts.1.up_proj."
	                          "weight",
	                          2, s_big, big, &d));
	CHECK_OK(fx_st_writer_add(w, "v", 1, s_vec, vec, &d));
	CHECK_OK(fx_st_writer_add(w, "empty", 2, s_empty, NULL, &d));
	CHECK_OK(fx_st_writer_add(w, "four", 4, s4, &empty_dummy, &d));
	CHECK_OK(fx_st_writer_meta(w, "config", "{\"d\": 4}\n\"quoted\"", &d));
	CHECK_OK(fx_st_writer_meta(w, "format", "pt", &d));
	/* The writer refuses what the reader would refuse. */
	CHECK(fx_st_writer_add(w, "v", 1, s_vec, vec, &d) == FX_EEXIST);
	CHECK(fx_st_writer_add(w, "", 1, s_vec, vec, &d) == FX_EINVAL);
	CHECK(fx_st_writer_add(w, "__metadata__", 1, s_vec, vec, &d) ==
	      FX_EINVAL);
	CHECK(fx_st_writer_add(w, "s", 0, s_vec, vec, &d) == FX_EINVAL);
	CHECK(fx_st_writer_add(w, "n", 1, s_vec, NULL, &d) == FX_EINVAL);
	CHECK(fx_st_writer_meta(w, "format", "again", &d) == FX_EEXIST);
	snprintf(path, sizeof(path), "%s/rt.safetensors", tmpdir);
	CHECK_OK(fx_st_writer_commit(w, path, &d));
	fx_st_writer_free(w);

	CHECK_OK(fx_st_open(path, &f, &d));
	if (f == NULL) {
		fprintf(stderr, "%s\n", d.msg);
		return;
	}
	CHECK(f->n_tensors == 4 && f->n_meta == 2);
	CHECK(f->header_len % 8 == 0);
	CHECK(strcmp(fx_st_meta_get(f, "config"), "{\"d\": 4}\n\"quoted\"") ==
	      0);
	CHECK(strcmp(fx_st_meta_get(f, "format"), "pt") == 0);
	CHECK(fx_st_meta_get(f, "absent") == NULL);
	t = fx_st_find(f, "model.layers.0.mlp.experts.1.up_proj.weight");
	CHECK(t != NULL);
	if (t != NULL) {
		CHECK(t->dtype == FX_F32 && t->ndim == 2 &&
		      fx_st_numel(t) == R * C && t->begin == 0);
		CHECK(memcmp(t->raw, big, sizeof(big)) == 0);
		CHECK_OK(fx_st_read_f32(t, 2, s_big, back, &d));
		CHECK(memcmp(back, big, sizeof(big)) == 0);
		CHECK(fx_st_read_f32(t, 1, s_vec, back, &d) == FX_EMISMATCH);
		CHECK(strstr(d.msg, "has shape [5, 7], expected [3]") != NULL);
	}
	t = fx_st_find(f, "v");
	CHECK(t != NULL && memcmp(t->raw, vec, sizeof(vec)) == 0);
	t = fx_st_find(f, "empty");
	CHECK(t != NULL && fx_st_numel(t) == 0 && t->begin == t->end);
	CHECK(fx_st_find(f, "nope") == NULL);
	/* Sorted by offset. */
	for (size_t i = 1; i < f->n_tensors; i++)
		CHECK(f->tensors[i - 1].end <= f->tensors[i].begin);
	fx_st_close(f);
}

static void test_half_conversions(void)
{
	/* IEEE 754 binary16: hand-computed values. */
	CHECK(fx_f16_to_f32(0x3C00) == 1.0f);
	CHECK(fx_f16_to_f32(0xC000) == -2.0f);
	CHECK(fx_f16_to_f32(0x3555) == 0.333251953125f);
	CHECK(fx_f16_to_f32(0x7BFF) == 65504.0f);   /* max */
	CHECK(fx_f16_to_f32(0x0400) == 0x1p-14f);   /* min normal */
	CHECK(fx_f16_to_f32(0x0001) == 0x1p-24f);   /* min subnormal */
	CHECK(fx_f16_to_f32(0x03FF) == 0x3FFp-24f); /* max subnormal */
	CHECK(fx_f16_to_f32(0x0200) == 0x1p-15f);
	CHECK(fx_f16_to_f32(0x7C00) == INFINITY);
	CHECK(fx_f16_to_f32(0xFC00) == -INFINITY);
	CHECK(isnan(fx_f16_to_f32(0x7E00)));
	CHECK(fx_f16_to_f32(0x8000) == 0.0f && signbit(fx_f16_to_f32(0x8000)));
	/* bfloat16: the top half of a float32. */
	CHECK(fx_bf16_to_f32(0x3F80) == 1.0f);
	CHECK(fx_bf16_to_f32(0xC040) == -3.0f);
	CHECK(fx_bf16_to_f32(0x4049) == 3.140625f);
	CHECK(fx_bf16_to_f32(0x0001) == 0x1p-133f);
	CHECK(fx_bf16_to_f32(0x7F80) == INFINITY);
	CHECK(isnan(fx_bf16_to_f32(0x7FC0)));

	/* Through a file: one F16 and one BF16 tensor. */
	{
		const char *h = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],"
		                "\"data_offsets\":[0,8]},"
		                "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],"
		                "\"data_offsets\":[8,14]}}";
		const uint8_t data[14] = {0x00, 0x3C, 0x00, 0xC0, 0x55, 0x35,
		                          0x01, 0x00, /* F16 1,-2,1/3,2^-24 */
		                          0x80, 0x3F, 0x40, 0xC0, 0x49, 0x40};
		const int64_t s22[2] = {2, 2}, s3[1] = {3};
		float out[4];
		fx_st_file *f = NULL;
		fx_diag d;

		CHECK_OK(fx_st_open(craft(h, UINT64_MAX, 14, data), &f, &d));
		if (f == NULL) {
			fprintf(stderr, "%s\n", d.msg);
			return;
		}
		CHECK_OK(fx_st_read_f32(fx_st_find(f, "h"), 2, s22, out, &d));
		CHECK(out[0] == 1.0f && out[1] == -2.0f &&
		      out[2] == 0.333251953125f && out[3] == 0x1p-24f);
		CHECK_OK(fx_st_read_f32(fx_st_find(f, "b"), 1, s3, out, &d));
		CHECK(out[0] == 1.0f && out[1] == -3.0f && out[2] == 3.140625f);
		fx_st_close(f);
	}
}

/* A crafted file must be refused with `want` and a message containing
 * `what`. */
static void refuse(const char *label, const char *path, fx_err want,
                   const char *what)
{
	fx_st_file *f = NULL;
	fx_diag d = {{0}};
	fx_err err = fx_st_open(path, &f, &d);

	CHECK_MSG(err == want, "%s: got %s (%s)", label, fx_strerror(err),
	          d.msg);
	CHECK_MSG(strstr(d.msg, what) != NULL, "%s: \"%s\" lacks \"%s\"", label,
	          d.msg, what);
	CHECK(f == NULL);
	fx_st_close(f);
}

#define T(name, dtype, shape, b, e)                                            \
	"\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape               \
	",\"data_offsets\":[" #b "," #e "]}"

static void test_malformed(void)
{
	const uint64_t N = UINT64_MAX; /* "use the real header length" */
	char path[512];
	fx_st_file *f = NULL;
	fx_diag d;

	/* A good file to start from: two F32 tensors of 8 bytes. */
	CHECK_OK(fx_st_open(craft("{" T("a", "F32", "[2]", 0, 8) "," T(
	                              "b", "F32", "[1,2]", 8, 16) "}",
	                          N, 16, NULL),
	                    &f, &d));
	fx_st_close(f);

	snprintf(path, sizeof(path), "%s/short", tmpdir);
	CHECK_OK(fx_write_file_atomic(path, "\x02\0\0\0\0", 5, 0600, &d));
	refuse("short file", path, FX_EFORMAT, "shorter than the 8-byte");
	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	CHECK_OK(fx_write_file_atomic(path, NULL, 0, 0600, &d));
	refuse("empty file", path, FX_EFORMAT, "0 bytes");
	refuse("header length too big", craft("{}", 1ull << 40, 0, NULL),
	       FX_ETOOBIG, "exceeds the limit");
	refuse("header past EOF", craft("{}", 100, 10, NULL), FX_EFORMAT,
	       "runs past the end");
	refuse("not an object", craft("[1]", N, 0, NULL), FX_EFORMAT,
	       "start with '{'");
	refuse("invalid JSON",
	       craft("{\"a\":{\"dtype\":\"F32\",}}", N, 0, NULL), FX_EFORMAT,
	       "trailing comma");
	refuse("duplicate tensor",
	       craft("{" T("a", "F32", "[2]", 0, 8) "," T("a", "F32", "[2]", 8,
	                                                  16) "}",
	             N, 16, NULL),
	       FX_EFORMAT, "duplicate key \"a\"");
	refuse("unknown dtype",
	       craft("{" T("w", "F64", "[1]", 0, 8) "}", N, 8, NULL),
	       FX_EFORMAT, "tensor \"w\": dtype \"F64\" is not supported");
	refuse("shape/size mismatch",
	       craft("{" T("w", "F32", "[2,2]", 0, 12) "}", N, 12, NULL),
	       FX_EFORMAT,
	       "tensor \"w\": shape and dtype F32 need 16 bytes, "
	       "data_offsets give 12");
	refuse("offsets out of range",
	       craft("{" T("w", "F32", "[4]", 0, 16) "}", N, 8, NULL),
	       FX_EFORMAT, "tensor \"w\": data_offsets [0, 16] out of range");
	refuse("overlap",
	       craft("{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 4,
	                                                  12) "}",
	             N, 12, NULL),
	       FX_EFORMAT, "tensor \"b\" [4, 12) overlaps tensor \"a\"");
	refuse("gap",
	       craft("{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 12,
	                                                  20) "}",
	             N, 20, NULL),
	       FX_EFORMAT,
	       "gap of 4 bytes in the data section before tensor "
	       "\"b\"");
	refuse("gap at start",
	       craft("{" T("a", "F32", "[2]", 4, 12) "}", N, 12, NULL),
	       FX_EFORMAT, "gap of 4 bytes");
	refuse("trailing bytes",
	       craft("{" T("a", "F32", "[2]", 0, 8) "}", N, 11, NULL),
	       FX_EFORMAT, "3 trailing bytes of the data section not covered");
	refuse("unknown field",
	       craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
	             "\"data_offsets\":[0,8],\"extra\":1}}",
	             N, 8, NULL),
	       FX_EFORMAT, "tensor \"a\": unknown field \"extra\"");
	refuse(
	    "missing field",
	    craft("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", N, 8, NULL),
	    FX_ENOTFOUND, "missing key \"dtype\"");
	refuse("negative dimension",
	       craft("{" T("a", "F32", "[-2,1]", 0, 8) "}", N, 8, NULL),
	       FX_EFORMAT, "tensor \"a\": negative dimension -2");
	refuse("0-d tensor",
	       craft("{" T("a", "F32", "[]", 0, 4) "}", N, 4, NULL), FX_EFORMAT,
	       "shape has 0 dimensions, must have 1..4");
	refuse("fractional dimension",
	       craft("{" T("a", "F32", "[2.0]", 0, 8) "}", N, 8, NULL),
	       FX_EFORMAT, "not an integer");
	refuse("shape overflow",
	       craft("{" T("a", "F32", "[4294967296,4294967296]", 0, 8) "}", N,
	             8, NULL),
	       FX_EFORMAT, "overflows");
	refuse("offsets reversed",
	       craft("{" T("a", "F32", "[0]", 8, 0) "}", N, 8, NULL),
	       FX_EFORMAT, "end before they begin");
	refuse("empty name",
	       craft("{" T("", "F32", "[2]", 0, 8) "}", N, 8, NULL), FX_EFORMAT,
	       "empty tensor name");
	refuse("control character in name",
	       craft("{" T("a\\nb", "F32", "[2]", 0, 8) "}", N, 8, NULL),
	       FX_EFORMAT, "control character 0x0a in tensor name");
	refuse("non-string metadata",
	       craft("{\"__metadata__\":{\"steps\":100}," T("a", "F32", "[2]",
	                                                    0, 8) "}",
	             N, 8, NULL),
	       FX_EFORMAT, "__metadata__ value of \"steps\" is number");
	refuse("metadata not an object",
	       craft("{\"__metadata__\":\"x\"}", N, 0, NULL), FX_EFORMAT,
	       "__metadata__ is string");
	refuse("entry not an object", craft("{\"a\":[1]}", N, 0, NULL),
	       FX_EFORMAT, "tensor \"a\": entry is array");
	refuse("too deep",
	       craft("{\"a\":{\"dtype\":\"F32\",\"shape\":[[2]],"
	             "\"data_offsets\":[0,8]}}",
	             N, 8, NULL),
	       FX_ETOOBIG, "nesting deeper than 3");

	/* Long name: 300 bytes. */
	{
		char h[600];
		char name[301];
		memset(name, 'n', 300);
		name[300] = '\0';
		snprintf(h, sizeof(h),
		         "{\"%s\":{\"dtype\":\"F32\",\"shape\":[1],"
		         "\"data_offsets\":[0,4]}}",
		         name);
		refuse("long name", craft(h, N, 4, NULL), FX_EFORMAT,
		       "is 300 bytes, longer than 255");
	}
	/* Too many tensors: 4097 zero-size ones. */
	{
		size_t cap = 80 * (FX_ST_MAX_TENSORS + 1) + 8, n = 0;
		char *h = malloc(cap);
		if (h != NULL) {
			n += (size_t)snprintf(h + n, cap - n, "{");
			for (int i = 0; i <= FX_ST_MAX_TENSORS; i++)
				n += (size_t)snprintf(h + n, cap - n,
				                      "%s\"t%d\":{\"dtype\":"
				                      "\"F32\",\"shape\":[0],"
				                      "\"data_offsets\":[0,0]}",
				                      i ? "," : "", i);
			snprintf(h + n, cap - n, "}");
			refuse("too many tensors", craft(h, N, 0, NULL),
			       FX_ETOOBIG, "4097 tensors, more than the limit");
			/* ...and exactly the limit is fine. */
			*strstr(h, ",\"t4096\"") = '\0';
			strcat(h, "}");
			CHECK_OK(fx_st_open(craft(h, N, 0, NULL), &f, &d));
			CHECK(f != NULL && f->n_tensors == FX_ST_MAX_TENSORS);
			fx_st_close(f);
			f = NULL;
			free(h);
		}
	}
	/* In memory, no file. */
	{
		static const uint8_t mem[] = {2, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
		CHECK_OK(fx_st_parse(mem, sizeof(mem), &f, &d));
		CHECK(f != NULL && f->n_tensors == 0 && f->data_size == 0);
		fx_st_close(f);
		f = NULL;
		CHECK(fx_st_parse(mem, 9, &f, &d) == FX_EFORMAT);
	}
	snprintf(path, sizeof(path), "%s/absent.safetensors", tmpdir);
	CHECK(fx_st_open(path, &f, &d) == FX_ENOTFOUND);
}

/* Deterministic LCG so a failure reproduces. */
static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

/* Every truncation of a valid file and thousands of random byte changes
 * must be refused cleanly or, if accepted, still describe a consistent
 * file (run under ASan this also proves no out-of-bounds access). */
static void test_mutations(void)
{
	float x[6] = {1, 2, 3, 4, 5, 6};
	const int64_t s23[2] = {2, 3}, s2[1] = {2};
	fx_st_writer *w = NULL;
	uint8_t *good = NULL, *buf = NULL;
	size_t len = 0;
	uint32_t seed = 12345;
	char path[512];
	int accepted = 0, bad = 0;
	fx_diag d;

	CHECK_OK(fx_st_writer_new(&w));
	if (w == NULL)
		return;
	CHECK_OK(fx_st_writer_add(w, "w", 2, s23, x, &d));
	CHECK_OK(fx_st_writer_add(w, "b", 1, s2, x, &d));
	CHECK_OK(fx_st_writer_meta(w, "k", "v", &d));
	CHECK(fx_st_writer_add(w, "bad\nname", 1, s2, x, &d) == FX_EINVAL);
	CHECK(fx_st_writer_add(w, "bad\xC0\xAF", 1, s2, x, &d) == FX_EINVAL);
	snprintf(path, sizeof(path), "%s/mut.safetensors", tmpdir);
	CHECK_OK(fx_st_writer_commit(w, path, &d));
	fx_st_writer_free(w);
	CHECK_OK(fx_read_file(path, 1 << 16, &good, &len, &d));
	if (good == NULL || (buf = malloc(len)) == NULL) {
		free(good);
		return;
	}
	for (size_t n = 0; n < len; n++) {
		fx_st_file *f = NULL;
		memcpy(buf, good, n);
		d.msg[0] = '\0';
		if (fx_st_parse(buf, n, &f, &d) == FX_OK || d.msg[0] == '\0')
			bad++;
		fx_st_close(f);
	}
	CHECK_MSG(bad == 0, "%d truncations accepted", bad);
	for (int iter = 0; iter < 5000; iter++) {
		fx_st_file *f = NULL;
		uint64_t covered = 0;
		memcpy(buf, good, len);
		for (int k = 1 + (int)(lcg(&seed) % 3); k > 0; k--)
			buf[lcg(&seed) % len] = (uint8_t)lcg(&seed);
		d.msg[0] = '\0';
		if (fx_st_parse(buf, len, &f, &d) != FX_OK) {
			if (d.msg[0] == '\0')
				bad++;
			continue;
		}
		accepted++;
		for (size_t i = 0; i < f->n_tensors; i++) {
			const fx_st_tensor *t = &f->tensors[i];
			covered += t->end - t->begin;
			if (t->raw + (t->end - t->begin) > buf + len ||
			    fx_st_numel(t) * fx_dtype_size(t->dtype) !=
			        t->end - t->begin)
				bad++;
		}
		if (covered != f->data_size)
			bad++;
		fx_st_close(f);
	}
	CHECK_MSG(bad == 0, "%d inconsistent results", bad);
	/* Changing data bytes (or header padding) keeps a file valid. */
	CHECK(accepted > 0);
	free(buf);
	free(good);
}

/* Padding spaces after the JSON and tensors listed out of offset order, as
 * other writers produce, are accepted. */
static void test_foreign_layout(void)
{
	fx_st_file *f = NULL;
	fx_diag d;

	CHECK_OK(
	    fx_st_open(craft("{" T("late", "F32", "[1]", 4, 8) "," T(
	                         "early", "F32", "[1]", 0,
	                         4) ","
	                            "\"__metadata__\":{\"format\":\"pt\"}}   ",
	                     UINT64_MAX, 8, NULL),
	               &f, &d));
	if (f != NULL) {
		CHECK(strcmp(f->tensors[0].name, "early") == 0);
		CHECK(strcmp(f->tensors[1].name, "late") == 0);
		CHECK(f->tensors[1].raw == f->data + 4);
		fx_st_close(f);
	}
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	char cmd[600];
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "%s/st_test.XXXXXX",
	         base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_writer_bytes);
	RUN(test_roundtrip);
	RUN(test_half_conversions);
	RUN(test_malformed);
	RUN(test_foreign_layout);
	RUN(test_mutations);
	rc = FX_TEST_REPORT();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return rc;
}
