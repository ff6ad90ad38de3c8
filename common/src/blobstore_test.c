/* Blob store: names are BLAKE2b-256 (checked against libsodium's own
 * generichash on known input), streamed and in-memory puts agree, corruption
 * and absence are reported. */
#include "flexo/blobstore.h"
#include "flexo/fsutil.h"
#include "fx_test.h"

#include <sodium.h>
#include <stdlib.h>
#include <unistd.h>

static void test_blobs(void)
{
	char dir[] = "/tmp/fx_blob_test.XXXXXX", path[4200], src[4300];
	uint8_t d1[32], d2[32], want[32];
	fx_blobstore bs;
	fx_diag d;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	CHECK_OK(fx_blobstore_open(&bs, dir, NULL));
	/* BLAKE2b-256("abc") from RFC 7693's BLAKE2b family, via libsodium */
	CHECK(sodium_hex2bin(want, 32,
	                     "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427"
	                     "262c8c068d52319",
	                     64, NULL, NULL, NULL) == 0);
	CHECK_OK(fx_blobstore_put(&bs, (const uint8_t *)"abc", 3, d1, NULL));
	CHECK(memcmp(d1, want, 32) == 0);
	CHECK_OK(fx_blobstore_check(&bs, d1, NULL));
	CHECK_OK(fx_blobstore_put(&bs, (const uint8_t *)"abc", 3, d1, NULL));

	snprintf(src, sizeof(src), "%s/src", dir);
	f = fopen(src, "wb");
	CHECK(f != NULL);
	if (f != NULL) {
		for (int i = 0; i < 300000; i++)
			fputc(i * 31, f);
		fclose(f);
	}
	CHECK_OK(fx_blobstore_put_file(&bs, src, d2, NULL));
	CHECK_OK(fx_blake2b_file(src, want, NULL, NULL));
	CHECK(memcmp(d2, want, 32) == 0);
	CHECK_OK(fx_blobstore_check(&bs, d2, NULL));

	/* corrupt a blob */
	CHECK_OK(fx_blobstore_path(&bs, d1, path, sizeof(path), NULL));
	CHECK_OK(fx_write_file_atomic(path, "abd", 3, 0644, NULL));
	CHECK(fx_blobstore_check(&bs, d1, &d) == FX_EMISMATCH);
	unlink(path);
	CHECK(fx_blobstore_check(&bs, d1, &d) == FX_ENOTFOUND);
	CHECK(fx_blobstore_put_file(&bs, "/nonexistent/x", d2, &d) ==
	      FX_ENOTFOUND);

	CHECK_OK(fx_blobstore_path(&bs, d2, path, sizeof(path), NULL));
	unlink(path);
	unlink(src);
	CHECK(rmdir(dir) == 0); /* no temporary files left behind */
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	RUN(test_blobs);
	return FX_TEST_REPORT();
}
