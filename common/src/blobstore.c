/* Content-addressed blob directory (name = hex BLAKE2b-256), with atomic
 * temp + fsync + rename writes. */
#include "flexo/blobstore.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IO_CHUNK (1u << 20)

fx_err fx_blobstore_open(fx_blobstore *bs, const char *dir, fx_diag *diag)
{
	struct stat st;
	size_t n = strlen(dir);

	if (n == 0 || n > FX_BLOB_MAX_DIR)
		return fx_diag_set(diag, FX_EINVAL,
		                   "blob directory path is empty or longer than "
		                   "%d bytes",
		                   FX_BLOB_MAX_DIR);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fx_diag_set(diag, FX_EIO, "cannot create %s: %s", dir,
		                   strerror(errno));
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return fx_diag_set(diag, FX_EIO, "%s is not a directory", dir);
	memcpy(bs->dir, dir, n + 1);
	return FX_OK;
}

fx_err fx_blobstore_path(const fx_blobstore *bs,
                         const uint8_t digest[FX_BLOB_DIGEST_LEN], char *out,
                         size_t cap, fx_diag *diag)
{
	char hex[2 * FX_BLOB_DIGEST_LEN + 1];
	int n;

	sodium_bin2hex(hex, sizeof(hex), digest, FX_BLOB_DIGEST_LEN);
	n = snprintf(out, cap, "%s/%s", bs->dir, hex);
	if (n < 0 || (size_t)n >= cap)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "blob path does not fit in %zu bytes", cap);
	return FX_OK;
}

static fx_err fsync_dir_of(const char *path, fx_diag *diag)
{
	char copy[4096];
	int fd;

	if (strlen(path) >= sizeof(copy))
		return fx_diag_set(diag, FX_ETOOBIG, "path too long: %s", path);
	strcpy(copy, path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fx_diag_set(diag, FX_EIO, "cannot open directory of %s",
		                   path);
	if (fsync(fd) != 0) {
		close(fd);
		return fx_diag_set(diag, FX_EIO, "fsync of directory of %s: %s",
		                   path, strerror(errno));
	}
	close(fd);
	return FX_OK;
}

static fx_err write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return FX_EIO;
		}
		p += w;
		len -= (size_t)w;
	}
	return FX_OK;
}

/* Opens "final.tmp.XXXXXX"; tmp receives its name. */
static int open_temp(const char *final, char *tmp, size_t cap)
{
	int n = snprintf(tmp, cap, "%s.tmp.XXXXXX", final);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return mkstemp(tmp);
}

/* fsync, close and rename tmp over final; removes tmp on failure. */
static fx_err commit_temp(int fd, const char *tmp, const char *final,
                          fx_diag *diag)
{
	if (fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return fx_diag_set(diag, FX_EIO, "fsync %s: %s", tmp,
		                   strerror(errno));
	}
	if (close(fd) != 0 || rename(tmp, final) != 0) {
		unlink(tmp);
		return fx_diag_set(diag, FX_EIO, "cannot rename %s to %s: %s",
		                   tmp, final, strerror(errno));
	}
	return fsync_dir_of(final, diag);
}

fx_err fx_blob_write_atomic(const char *path, const void *data, size_t len,
                            fx_diag *diag)
{
	char tmp[4200];
	int fd = open_temp(path, tmp, sizeof(tmp));

	if (fd < 0)
		return fx_diag_set(diag, FX_EIO, "cannot create a temporary "
		                                 "file beside %s",
		                   path);
	if (write_all(fd, data, len) != FX_OK) {
		close(fd);
		unlink(tmp);
		return fx_diag_set(diag, FX_EIO, "write %s: %s", tmp,
		                   strerror(errno));
	}
	return commit_temp(fd, tmp, path, diag);
}

fx_err fx_blobstore_put(const fx_blobstore *bs, const uint8_t *data, size_t len,
                        uint8_t digest[FX_BLOB_DIGEST_LEN], fx_diag *diag)
{
	uint8_t d[FX_BLOB_DIGEST_LEN];
	char path[4200];
	fx_err err;

	crypto_generichash(d, sizeof(d), data, len, NULL, 0);
	if ((err = fx_blobstore_path(bs, d, path, sizeof(path), diag)))
		return err;
	if (access(path, F_OK) != 0 &&
	    (err = fx_blob_write_atomic(path, data, len, diag)) != FX_OK)
		return err;
	memcpy(digest, d, sizeof(d));
	return FX_OK;
}

fx_err fx_blob_digest_file(const char *path,
                           uint8_t digest[FX_BLOB_DIGEST_LEN], fx_diag *diag)
{
	crypto_generichash_state st;
	uint8_t *buf = NULL;
	fx_err err = FX_OK;
	ssize_t r;
	int fd = -1;

	fd = open(path, O_RDONLY);
	if (fd < 0) {
		err = fx_diag_set(diag, errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		                  "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if ((buf = malloc(IO_CHUNK)) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	crypto_generichash_init(&st, NULL, 0, FX_BLOB_DIGEST_LEN);
	while ((r = read(fd, buf, IO_CHUNK)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = fx_diag_set(diag, FX_EIO, "read %s: %s", path,
			                  strerror(errno));
			goto out;
		}
		crypto_generichash_update(&st, buf, (size_t)r);
	}
	crypto_generichash_final(&st, digest, FX_BLOB_DIGEST_LEN);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return err;
}

fx_err fx_blobstore_put_file(const fx_blobstore *bs, const char *src,
                             uint8_t digest[FX_BLOB_DIGEST_LEN],
                             fx_diag *diag)
{
	crypto_generichash_state st;
	uint8_t d[FX_BLOB_DIGEST_LEN], *buf = NULL;
	char tmp[4200], final[4200], staging[4200];
	fx_err err = FX_OK;
	int in = -1, out_fd = -1;
	ssize_t r;

	/* Hash while copying into a staging file: the name is only known at
	 * the end, and the source is read once. */
	snprintf(staging, sizeof(staging), "%s/staging", bs->dir);
	if ((in = open(src, O_RDONLY)) < 0) {
		err = fx_diag_set(diag, errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		                  "cannot open %s: %s", src, strerror(errno));
		goto out;
	}
	if ((out_fd = open_temp(staging, tmp, sizeof(tmp))) < 0) {
		err = fx_diag_set(diag, FX_EIO,
		                  "cannot create a temporary file in %s",
		                  bs->dir);
		goto out;
	}
	if ((buf = malloc(IO_CHUNK)) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	crypto_generichash_init(&st, NULL, 0, FX_BLOB_DIGEST_LEN);
	while ((r = read(in, buf, IO_CHUNK)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = fx_diag_set(diag, FX_EIO, "read %s: %s", src,
			                  strerror(errno));
			goto out;
		}
		crypto_generichash_update(&st, buf, (size_t)r);
		if (write_all(out_fd, buf, (size_t)r) != FX_OK) {
			err = fx_diag_set(diag, FX_EIO, "write %s: %s", tmp,
			                  strerror(errno));
			goto out;
		}
	}
	crypto_generichash_final(&st, d, sizeof(d));
	if ((err = fx_blobstore_path(bs, d, final, sizeof(final), diag)))
		goto out;
	err = commit_temp(out_fd, tmp, final, diag);
	out_fd = -1;
	tmp[0] = '\0';
	if (err == FX_OK)
		memcpy(digest, d, sizeof(d));
out:
	free(buf);
	if (in >= 0)
		close(in);
	if (out_fd >= 0) {
		close(out_fd);
		unlink(tmp);
	}
	return err;
}

fx_err fx_blobstore_check(const fx_blobstore *bs,
                          const uint8_t digest[FX_BLOB_DIGEST_LEN],
                          fx_diag *diag)
{
	uint8_t d[FX_BLOB_DIGEST_LEN];
	char path[4200];
	fx_err err;

	if ((err = fx_blobstore_path(bs, digest, path, sizeof(path), diag)))
		return err;
	if ((err = fx_blob_digest_file(path, d, diag)) != FX_OK)
		return err;
	if (sodium_memcmp(d, digest, sizeof(d)) != 0)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "blob %s: content does not hash to its name",
		                   path);
	return FX_OK;
}
