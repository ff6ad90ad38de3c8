/* Content-addressed blob directory (name = hex BLAKE2b-256) on top of the
 * shared atomic-file helpers. */
#include "flexo/blobstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flexo/fsutil.h"

#define IO_CHUNK (1u << 20)

fx_err fx_blobstore_open(fx_blobstore *bs, const char *dir, fx_diag *diag)
{
	size_t n = strlen(dir);
	fx_err err;

	if (n == 0 || n > FX_BLOB_MAX_DIR)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "blob directory path is empty or longer than "
		    "%d bytes",
		    FX_BLOB_MAX_DIR);
	if ((err = fx_mkdir_p(dir, 0700, diag)) != FX_OK)
		return err;
	memcpy(bs->dir, dir, n + 1);
	return FX_OK;
}

fx_err fx_blobstore_path(const fx_blobstore *bs,
                         const uint8_t digest[FX_BLAKE2B_BYTES], char *out,
                         size_t cap, fx_diag *diag)
{
	char hex[2 * FX_BLAKE2B_BYTES + 1];
	int n;

	fx_hex(hex, digest, FX_BLAKE2B_BYTES);
	n = snprintf(out, cap, "%s/%s", bs->dir, hex);
	if (n < 0 || (size_t)n >= cap)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "blob path does not fit in %zu bytes", cap);
	return FX_OK;
}

fx_err fx_blobstore_put(const fx_blobstore *bs, const uint8_t *data, size_t len,
                        uint8_t digest[FX_BLAKE2B_BYTES], fx_diag *diag)
{
	uint8_t d[FX_BLAKE2B_BYTES];
	char path[FX_PATH_MAX];
	fx_err err;

	fx_blake2b(d, data, len);
	if ((err = fx_blobstore_path(bs, d, path, sizeof(path), diag)))
		return err;
	if (access(path, F_OK) != 0 &&
	    (err = fx_write_file_atomic(path, data, len, 0644, diag)) != FX_OK)
		return err;
	memcpy(digest, d, sizeof(d));
	return FX_OK;
}

fx_err fx_blobstore_put_file(const fx_blobstore *bs, const char *src,
                             uint8_t digest[FX_BLAKE2B_BYTES], fx_diag *diag)
{
	char staging[FX_PATH_MAX], final[FX_PATH_MAX];
	uint8_t d[FX_BLAKE2B_BYTES], *buf = NULL;
	fx_atomic_file af = {.fd = -1};
	fx_blake2b_ctx ctx;
	fx_err err = FX_OK;
	ssize_t r;
	int in = -1;

	/* The name is only known at the end: write under a staging name,
	 * then link the finished file under its digest. */
	snprintf(staging, sizeof(staging), "%s/staging.%ld", bs->dir,
	         (long)getpid());
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
		err = fx_diag_set(diag, errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		                  "cannot open %s: %s", src, strerror(errno));
		goto out;
	}
	if ((buf = malloc(IO_CHUNK)) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	if ((err = fx_atomic_open(&af, staging, 0644, diag)) != FX_OK)
		goto out;
	fx_blake2b_init(&ctx);
	while ((r = read(in, buf, IO_CHUNK)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = fx_diag_set(diag, FX_EIO, "read %s: %s", src,
			                  strerror(errno));
			goto out;
		}
		fx_blake2b_update(&ctx, buf, (size_t)r);
		if ((err = fx_atomic_write(&af, buf, (size_t)r, diag)))
			goto out;
	}
	fx_blake2b_final(&ctx, d);
	if ((err = fx_blobstore_path(bs, d, final, sizeof(final), diag)) ||
	    (err = fx_atomic_commit(&af, diag)))
		goto out;
	if (rename(staging, final) != 0) {
		err = fx_diag_set(diag, FX_EIO, "cannot rename %s to %s: %s",
		                  staging, final, strerror(errno));
		unlink(staging);
		goto out;
	}
	memcpy(digest, d, sizeof(d));
out:
	fx_atomic_abort(&af);
	free(buf);
	if (in >= 0)
		close(in);
	return err;
}

fx_err fx_blobstore_check(const fx_blobstore *bs,
                          const uint8_t digest[FX_BLAKE2B_BYTES], fx_diag *diag)
{
	uint8_t d[FX_BLAKE2B_BYTES];
	char path[FX_PATH_MAX];
	fx_err err;

	if ((err = fx_blobstore_path(bs, digest, path, sizeof(path), diag)))
		return err;
	if ((err = fx_blake2b_file(path, d, NULL, diag)) != FX_OK)
		return err;
	if (memcmp(d, digest, sizeof(d)) != 0)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "blob %s: content does not hash to its name",
		                   path);
	return FX_OK;
}
