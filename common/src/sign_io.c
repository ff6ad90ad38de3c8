/* Crash-safe file replacement and bounded reads for the signing modules
 * (see sign_io.h). Written to the same contract as fsutil.h. */
#include "sign_io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_BOUND 4096

static fx_err fsync_dir_of(const char *path, fx_diag *diag)
{
	char copy[PATH_BOUND + 1];
	int fd;

	snprintf(copy, sizeof(copy), "%s", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fx_diag_set(diag, FX_EIO, "cannot open directory of %s: %s",
		                   path, strerror(errno));
	if (fsync(fd) != 0 && errno != EINVAL) {
		int e = errno;
		close(fd);
		return fx_diag_set(diag, FX_EIO, "fsync of directory of %s: %s",
		                   path, strerror(e));
	}
	close(fd);
	return FX_OK;
}

fx_err sio_write_atomic(const char *path, const void *data, size_t len,
                        mode_t mode, fx_diag *diag)
{
	char tmp[PATH_BOUND + 16];
	const uint8_t *p = data;
	fx_err err = FX_OK;
	int fd;

	if (strlen(path) > PATH_BOUND)
		return fx_diag_set(diag, FX_ETOOBIG, "path longer than %d bytes",
		                   PATH_BOUND);
	snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
	/* mkstemp creates the file 0600, so a secret is never readable by
	 * others, even for a moment. */
	fd = mkstemp(tmp);
	if (fd < 0)
		return fx_diag_set(diag, FX_EIO, "cannot create %s: %s", tmp,
		                   strerror(errno));
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = fx_diag_set(diag, FX_EIO, "writing %s: %s", tmp,
			                  strerror(errno));
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
		err = fx_diag_set(diag, FX_EIO, "finishing %s: %s", tmp,
		                  strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		err = fx_diag_set(diag, FX_EIO, "closing %s: %s", tmp,
		                  strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		err = fx_diag_set(diag, FX_EIO, "renaming %s to %s: %s", tmp, path,
		                  strerror(errno));
		goto out;
	}
	return fsync_dir_of(path, diag);
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return err;
}

fx_err sio_read_file(const char *path, size_t max_len, uint8_t **buf,
                     size_t *len, fx_diag *diag)
{
	fx_err err = FX_OK;
	uint8_t *data = NULL;
	size_t have = 0, cap;
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fx_diag_set(diag, errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		                   "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		err = fx_diag_set(diag, FX_EIO, "stat %s: %s", path,
		                  strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err = fx_diag_set(diag, FX_EINVAL, "%s is not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > max_len) {
		err = fx_diag_set(diag, FX_ETOOBIG,
		                  "%s is %lld bytes, more than the %zu allowed", path,
		                  (long long)st.st_size, max_len);
		goto out;
	}
	/* cap counts bytes we accept; one more than the file's size so that
	 * growth during the read is noticed, +1 allocated for the NUL. */
	cap = (size_t)st.st_size + 1;
	if (cap > max_len + 1)
		cap = max_len + 1;
	data = malloc(cap + 1);
	if (data == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "no memory to read %s", path);
		goto out;
	}
	for (;;) {
		ssize_t n;
		if (have == cap) {
			uint8_t *bigger;
			if (cap > max_len) {
				err = fx_diag_set(diag, FX_ETOOBIG,
				                  "%s grew past the %zu bytes allowed",
				                  path, max_len);
				goto out;
			}
			cap = cap > max_len / 2 ? max_len + 1 : 2 * cap;
			bigger = realloc(data, cap + 1);
			if (bigger == NULL) {
				err = fx_diag_set(diag, FX_ENOMEM,
				                  "no memory to read %s", path);
				goto out;
			}
			data = bigger;
		}
		n = read(fd, data + have, cap - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = fx_diag_set(diag, FX_EIO, "reading %s: %s", path,
			                  strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	if (have > max_len) {
		err = fx_diag_set(diag, FX_ETOOBIG,
		                  "%s is more than the %zu bytes allowed", path,
		                  max_len);
		goto out;
	}
	data[have] = '\0';
	*buf = data;
	*len = have;
	data = NULL;
out:
	free(data);
	close(fd);
	return err;
}

fx_err sio_mkdir_p(const char *path, mode_t mode, fx_diag *diag)
{
	char buf[PATH_BOUND + 1];
	size_t n = strlen(path);
	struct stat st;

	if (n == 0 || n > PATH_BOUND)
		return fx_diag_set(diag, FX_EINVAL, "bad directory path length %zu",
		                   n);
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return fx_diag_set(diag, FX_EIO, "cannot create %s: %s", buf,
			                   strerror(errno));
		if (i < n)
			buf[i] = '/';
	}
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return fx_diag_set(diag, FX_EEXIST, "%s exists and is not a directory",
		                   path);
	return FX_OK;
}

fx_err sio_copy_file(const char *src, const char *dst, mode_t mode,
                     fx_diag *diag)
{
	enum { BLOCK = 1 << 20 };
	char tmp[PATH_BOUND + 16];
	uint8_t *buf = NULL;
	fx_err err = FX_OK;
	int in = -1, out = -1;

	if (strlen(dst) > PATH_BOUND)
		return fx_diag_set(diag, FX_ETOOBIG, "path longer than %d bytes",
		                   PATH_BOUND);
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return fx_diag_set(diag, errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		                   "cannot open %s: %s", src, strerror(errno));
	snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", dst);
	out = mkstemp(tmp);
	if (out < 0) {
		err = fx_diag_set(diag, FX_EIO, "cannot create %s: %s", tmp,
		                  strerror(errno));
		close(in);
		return err;
	}
	buf = malloc(BLOCK);
	if (buf == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "no memory to copy %s", src);
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, buf, BLOCK), done = 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = fx_diag_set(diag, FX_EIO, "reading %s: %s", src,
			                  strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		while (done < n) {
			ssize_t w = write(out, buf + done, (size_t)(n - done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				err = fx_diag_set(diag, FX_EIO, "writing %s: %s", tmp,
				                  strerror(errno));
				goto out;
			}
			done += w;
		}
	}
	if (fchmod(out, mode) != 0 || fsync(out) != 0) {
		err = fx_diag_set(diag, FX_EIO, "finishing %s: %s", tmp,
		                  strerror(errno));
		goto out;
	}
	if (close(out) != 0) {
		out = -1;
		err = fx_diag_set(diag, FX_EIO, "closing %s: %s", tmp,
		                  strerror(errno));
		goto out;
	}
	out = -1;
	if (rename(tmp, dst) != 0) {
		err = fx_diag_set(diag, FX_EIO, "renaming %s to %s: %s", tmp, dst,
		                  strerror(errno));
		goto out;
	}
	err = fsync_dir_of(dst, diag);
	free(buf);
	close(in);
	return err;
out:
	free(buf);
	close(in);
	if (out >= 0)
		close(out);
	unlink(tmp);
	return err;
}
