/* Private file helpers of the signing modules (keys, roster, release,
 * contributor state) until the shared fsutil.h lands on main; same contract
 * as fx_write_file_atomic / fx_read_file / fx_mkdir_p so the switch is a
 * rename. Not a public header. */
#ifndef FLEXO_SIGN_IO_H
#define FLEXO_SIGN_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flexo/err.h"

/* Temporary file beside path, write, fsync, chmod, rename, fsync dir. */
fx_err sio_write_atomic(const char *path, const void *data, size_t len,
                        mode_t mode, fx_diag *diag);

/* Whole file into a malloc'd buffer (+ NUL, not counted); FX_ETOOBIG above
 * max_len, FX_ENOTFOUND if absent. Outputs written only on success. */
fx_err sio_read_file(const char *path, size_t max_len, uint8_t **buf,
                     size_t *len, fx_diag *diag);

/* Streams src into dst atomically (temporary file, fsync, rename, fsync
 * of the directory), with `mode`. */
fx_err sio_copy_file(const char *src, const char *dst, mode_t mode,
                     fx_diag *diag);

/* mkdir -p. */
fx_err sio_mkdir_p(const char *path, mode_t mode, fx_diag *diag);

#endif
