/* Crash-safe file replacement, bounded whole-file reads and mkdir -p. The
 * rename dance follows the usual POSIX recipe: a reader sees the old file or
 * the complete new one, and the directory fsync makes the rename durable. */
#include "flexo/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The suffix mkstemp fills in; see fx_atomic_open. */
#define TMP_SUFFIX ".tmp.XXXXXX"

static fx_err check_path(const char *path, fx_diag *diag)
{
	size_t n;

	if (path == NULL || path[0] == '\0')
		return fx_diag_set(diag, FX_EINVAL, "empty path");
	n = strnlen(path, FX_PATH_MAX + 1);
	if (n > FX_PATH_MAX)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "path longer than %d bytes", FX_PATH_MAX);
	return FX_OK;
}

/* Writes all of buf, retrying short writes and EINTR. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* fsyncs the directory holding path, so a rename into it survives a crash. */
static fx_err fsync_parent(const char *path, fx_diag *diag)
{
	char dir[FX_PATH_MAX + 1];
	const char *slash = strrchr(path, '/');
	int fd = -1;
	fx_err err = FX_OK;

	if (slash == NULL) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		size_t n = (size_t)(slash - path);
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = fx_diag_set(diag, FX_EIO, "opening directory %s: %s", dir,
		                  strerror(errno));
		goto out;
	}
	if (fsync(fd) != 0) {
		err = fx_diag_set(diag, FX_EIO, "fsync of directory %s: %s",
		                  dir, strerror(errno));
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	return err;
}

fx_err fx_atomic_open(fx_atomic_file *af, const char *path, mode_t mode,
                      fx_diag *diag)
{
	size_t n;
	fx_err err;

	af->fd = -1;
	af->mode = mode;
	af->path = NULL;
	af->tmp_path = NULL;
	af->written = 0;
	if ((err = check_path(path, diag)) != FX_OK)
		return err;
	n = strlen(path);
	af->path = strdup(path);
	af->tmp_path = malloc(n + sizeof(TMP_SUFFIX));
	if (af->path == NULL || af->tmp_path == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory for path %s",
		                  path);
		goto fail;
	}
	memcpy(af->tmp_path, path, n);
	memcpy(af->tmp_path + n, TMP_SUFFIX, sizeof(TMP_SUFFIX));
	af->fd = mkstemp(af->tmp_path);
	if (af->fd < 0) {
		err = fx_diag_set(diag, FX_EIO,
		                  "creating temporary file for %s: %s", path,
		                  strerror(errno));
		goto fail;
	}
	/* Helper processes are started with fork+exec: don't leak the fd. */
	(void)fcntl(af->fd, F_SETFD, FD_CLOEXEC);
	return FX_OK;
fail:
	free(af->path);
	free(af->tmp_path);
	af->path = NULL;
	af->tmp_path = NULL;
	return err;
}

fx_err fx_atomic_write(fx_atomic_file *af, const void *data, size_t len,
                       fx_diag *diag)
{
	if (af->fd < 0)
		return fx_diag_set(diag, FX_ESTATE, "atomic file not open");
	if (len == 0)
		return FX_OK;
	if (write_all(af->fd, data, len) != 0)
		return fx_diag_set(diag, errno == EDQUOT ? FX_EQUOTA : FX_EIO,
		                   "writing %s: %s", af->tmp_path,
		                   strerror(errno));
	af->written += len;
	return FX_OK;
}

void fx_atomic_abort(fx_atomic_file *af)
{
	if (af->fd >= 0) {
		close(af->fd);
		af->fd = -1;
	}
	if (af->tmp_path != NULL) {
		unlink(af->tmp_path);
		free(af->tmp_path);
		af->tmp_path = NULL;
	}
	free(af->path);
	af->path = NULL;
}

fx_err fx_atomic_commit(fx_atomic_file *af, fx_diag *diag)
{
	fx_err err = FX_OK;
	int fd = af->fd;

	if (fd < 0 || af->tmp_path == NULL)
		return fx_diag_set(diag, FX_ESTATE, "atomic file not open");
	/* mkstemp made the file 0600; apply the wanted mode before it becomes
	 * visible under its final name. */
	if (fchmod(fd, af->mode) != 0) {
		err = fx_diag_set(diag, FX_EIO, "chmod %s: %s", af->tmp_path,
		                  strerror(errno));
		goto out;
	}
	if (fsync(fd) != 0) {
		err = fx_diag_set(diag, FX_EIO, "fsync %s: %s", af->tmp_path,
		                  strerror(errno));
		goto out;
	}
	af->fd = -1;
	if (close(fd) != 0) {
		err = fx_diag_set(diag, FX_EIO, "closing %s: %s", af->tmp_path,
		                  strerror(errno));
		goto out;
	}
	if (rename(af->tmp_path, af->path) != 0) {
		err = fx_diag_set(diag, FX_EIO, "renaming %s to %s: %s",
		                  af->tmp_path, af->path, strerror(errno));
		goto out;
	}
	/* The temporary name is gone: nothing left to unlink. */
	free(af->tmp_path);
	af->tmp_path = NULL;
	err = fsync_parent(af->path, diag);
out:
	fx_atomic_abort(af);
	return err;
}

fx_err fx_write_file_atomic(const char *path, const void *data, size_t len,
                            mode_t mode, fx_diag *diag)
{
	fx_atomic_file af;
	fx_err err;

	if ((err = fx_atomic_open(&af, path, mode, diag)) != FX_OK)
		return err;
	err = fx_atomic_write(&af, data, len, diag);
	if (err == FX_OK)
		err = fx_atomic_commit(&af, diag);
	fx_atomic_abort(&af);
	return err;
}

fx_err fx_read_file(const char *path, size_t max_len, uint8_t **buf,
                    size_t *len, fx_diag *diag)
{
	uint8_t *b = NULL, *nb;
	size_t cap = 0, n = 0, limit;
	struct stat st;
	int fd = -1;
	fx_err err;

	if ((err = check_path(path, diag)) != FX_OK)
		return err;
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
	if (S_ISDIR(st.st_mode)) {
		err = fx_diag_set(diag, FX_EINVAL, "%s is a directory", path);
		goto out;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_len) {
		err =
		    fx_diag_set(diag, FX_ETOOBIG,
		                "%s is %lld bytes, more than the limit of %zu",
		                path, (long long)st.st_size, max_len);
		goto out;
	}
	/* Size the buffer from stat (plus the NUL and one byte to see EOF), but
	 * keep reading to EOF: the file may be a pipe or change under us, and
	 * the bound must hold regardless. */
	limit = max_len > SIZE_MAX - 2 ? SIZE_MAX : max_len + 2;
	cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 2 : 4096;
	if (cap > limit)
		cap = limit;
	for (;;) {
		ssize_t r;
		if (b == NULL || n + 1 >= cap) {
			size_t ncap = b == NULL ? cap : cap * 2;
			if (ncap < cap || ncap > limit)
				ncap = limit;
			nb = realloc(b, ncap);
			if (nb == NULL) {
				err = fx_diag_set(diag, FX_ENOMEM,
				                  "out of memory reading %s",
				                  path);
				goto out;
			}
			b = nb;
			cap = ncap;
		}
		r = read(fd, b + n, cap - 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = fx_diag_set(diag, FX_EIO, "reading %s: %s", path,
			                  strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max_len) {
			err = fx_diag_set(diag, FX_ETOOBIG,
			                  "%s is longer than the limit of %zu "
			                  "bytes",
			                  path, max_len);
			goto out;
		}
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	b = NULL;
out:
	free(b);
	if (fd >= 0)
		close(fd);
	return err;
}

fx_err fx_mkdir_p(const char *path, mode_t mode, fx_diag *diag)
{
	char p[FX_PATH_MAX + 1];
	struct stat st;
	size_t n;
	fx_err err;

	if ((err = check_path(path, diag)) != FX_OK)
		return err;
	n = strlen(path);
	memcpy(p, path, n + 1);
	/* Create each prefix ending just before a '/', then the whole path. */
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		if (p[i - 1] == '/')
			continue; /* "a//b": nothing new to create */
		p[i] = '\0';
		if (mkdir(p, mode) != 0) {
			if (errno != EEXIST) {
				return fx_diag_set(diag, FX_EIO,
				                   "creating directory %s: %s",
				                   p, strerror(errno));
			}
			if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
				return fx_diag_set(diag, FX_EEXIST,
				                   "%s exists and is not a "
				                   "directory",
				                   p);
		}
		p[i] = path[i];
	}
	return FX_OK;
}
