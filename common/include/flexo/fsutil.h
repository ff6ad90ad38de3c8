/* File-system helpers every module shares: crash-safe replacement of a file
 * (temporary file in the same directory, fsync, rename, fsync of the
 * directory), bounded whole-file reads, and mkdir -p. */
#ifndef FLEXO_FSUTIL_H
#define FLEXO_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flexo/err.h"

#define FX_PATH_MAX 4096 /* longest path the helpers accept, NUL excluded */

/* Writes len bytes of data to path atomically: either the old file (or no
 * file) or the complete new one is visible after a crash. Writes
 * "path.tmp.XXXXXX" (mkstemp) beside path, fsyncs it, sets `mode`, renames
 * it over path and fsyncs the directory. The temporary file is removed on
 * every failure path. data may be NULL when len is 0. */
fx_err fx_write_file_atomic(const char *path, const void *data, size_t len,
                            mode_t mode, fx_diag *diag);

/* Reads the whole of path into a fresh buffer. Refuses (FX_ETOOBIG) a file
 * longer than max_len bytes, also if it grows while being read. On success
 * *buf is malloc'd, holds *len bytes plus a terminating NUL (so text can be
 * used as a C string; the NUL is not counted in *len) and the caller frees
 * it. On failure *buf and *len are untouched. FX_ENOTFOUND if path does not
 * exist. */
fx_err fx_read_file(const char *path, size_t max_len, uint8_t **buf,
                    size_t *len, fx_diag *diag);

/* Creates path and any missing parents with `mode` (like mkdir -p). An
 * existing directory is fine; an existing non-directory is FX_EEXIST. */
fx_err fx_mkdir_p(const char *path, mode_t mode, fx_diag *diag);

/* Streaming form of fx_write_file_atomic, for files too large to build in
 * memory (safetensors, blobs):
 *
 *     fx_atomic_file af;
 *     if ((err = fx_atomic_open(&af, path, 0644, diag)) != FX_OK) ...
 *     err = fx_atomic_write(&af, a, n, diag);       // any number of times
 *     if (err == FX_OK) err = fx_atomic_commit(&af, diag);
 *     fx_atomic_abort(&af);                          // always; no-op after
 * commit
 *
 * The struct is caller-owned; open fills it, commit and abort release what it
 * holds (abort removes the temporary file). abort is safe to call more than
 * once and after a failed open. */
typedef struct fx_atomic_file {
	int fd;           /* temporary file, -1 when released */
	mode_t mode;      /* final permission bits */
	char *path;       /* final path (owned) */
	char *tmp_path;   /* temporary path (owned), NULL when released */
	uint64_t written; /* bytes written so far */
} fx_atomic_file;

fx_err fx_atomic_open(fx_atomic_file *af, const char *path, mode_t mode,
                      fx_diag *diag);
fx_err fx_atomic_write(fx_atomic_file *af, const void *data, size_t len,
                       fx_diag *diag);
/* fsyncs, applies mode, closes, renames over the final path and fsyncs the
 * directory. On failure the temporary file is removed. Either way af holds
 * nothing afterwards. */
fx_err fx_atomic_commit(fx_atomic_file *af, fx_diag *diag);
void fx_atomic_abort(fx_atomic_file *af);

#endif
