/* BLAKE2b-256 and SHA-256 against published values (FIPS 180-2 "abc";
 * BLAKE2b-256 values computed independently with Python's hashlib), the
 * streaming and file forms against the one-shot form, and hex round trips. */
#include <stdlib.h>
#include <unistd.h>

#include "flexo/hash.h"
#include "fx_test.h"

static int hex_is(const uint8_t *b, size_t n, const char *want)
{
	char buf[129];
	return strcmp(fx_hex(buf, b, n), want) == 0;
}

static void test_vectors(void)
{
	uint8_t h[32];
	fx_blake2b(h, "", 0);
	CHECK(hex_is(h, 32,
	             "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf"
	             "12fe3a8"));
	fx_blake2b(h, "abc", 3);
	CHECK(hex_is(h, 32,
	             "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c06"
	             "8d52319"));
	fx_sha256(h, "abc", 3);
	CHECK(hex_is(h, 32,
	             "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f"
	             "20015ad"));
}

static void test_streaming_and_file(void)
{
	enum { N = 3000000 };
	uint8_t *data = malloc(N), one[32], two[32], three[32], s1[32], s2[32];
	char path[] = "/tmp/fx_hash_testXXXXXX";
	fx_blake2b_ctx ctx;
	fx_sha256_ctx sctx;
	uint64_t size = 0;
	fx_diag d;
	int fd;

	for (size_t i = 0; i < N; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	fx_blake2b(one, data, N);
	fx_blake2b_init(&ctx);
	fx_blake2b_update(&ctx, data, 7);
	fx_blake2b_update(&ctx, data + 7, N - 7);
	fx_blake2b_final(&ctx, two);
	CHECK(memcmp(one, two, 32) == 0);
	fx_sha256(s1, data, N);
	fx_sha256_init(&sctx);
	fx_sha256_update(&sctx, data, 1000);
	fx_sha256_update(&sctx, data + 1000, N - 1000);
	fx_sha256_final(&sctx, s2);
	CHECK(memcmp(s1, s2, 32) == 0);

	fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, data, N) == N);
	close(fd);
	CHECK_OK(fx_blake2b_file(path, three, &size, &d));
	CHECK(memcmp(one, three, 32) == 0);
	CHECK(size == N);
	unlink(path);
	CHECK(fx_blake2b_file(path, three, &size, &d) == FX_ENOTFOUND);
	CHECK(strstr(d.msg, path) != NULL);
	free(data);
}

static void test_hex(void)
{
	uint8_t b[4] = {0}, want[4] = {0xde, 0xad, 0xBE, 0xef};
	fx_diag d;
	CHECK_OK(fx_hex_decode(b, 4, "DEADbeef", &d));
	CHECK(memcmp(b, want, 4) == 0);
	CHECK(fx_hex_decode(b, 4, "deadbee", &d) == FX_EFORMAT);
	CHECK(fx_hex_decode(b, 4, "deadbeef0", &d) == FX_EFORMAT);
	CHECK(fx_hex_decode(b, 4, "deadbeeg", &d) == FX_EFORMAT);
	CHECK(strstr(d.msg, "position 7") != NULL);
}

int main(void)
{
	RUN(test_vectors);
	RUN(test_streaming_and_file);
	RUN(test_hex);
	return FX_TEST_REPORT();
}
