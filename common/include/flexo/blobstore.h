/* Content-addressed blob directory: a blob's file name is the lower-case hex
 * BLAKE2b-256 of its bytes; blobs are written to a temporary file, fsynced
 * and renamed (fsutil.h), so a name never points at partial or wrong
 * content. */
#ifndef FLEXO_BLOBSTORE_H
#define FLEXO_BLOBSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/hash.h"

#define FX_BLOB_MAX_DIR 3900 /* leaves room for "/<64 hex>.tmp.XXXXXX" */

/* A blob directory by path. Plain value: nothing to release. */
typedef struct fx_blobstore {
	char dir[FX_BLOB_MAX_DIR + 1];
} fx_blobstore;

/* Uses (and creates, with missing parents, mode 0700) the directory. */
fx_err fx_blobstore_open(fx_blobstore *bs, const char *dir, fx_diag *diag);

/* Stores len bytes; writes their digest. Storing an existing blob is a
 * no-op that still returns its digest. */
fx_err fx_blobstore_put(const fx_blobstore *bs, const uint8_t *data, size_t len,
                        uint8_t digest[FX_BLAKE2B_BYTES], fx_diag *diag);

/* Streams the file at src into the store (memory stays flat whatever its
 * size), hashing while copying; writes its digest. */
fx_err fx_blobstore_put_file(const fx_blobstore *bs, const char *src,
                             uint8_t digest[FX_BLAKE2B_BYTES], fx_diag *diag);

/* Path of the blob named by digest (whether or not it exists). */
fx_err fx_blobstore_path(const fx_blobstore *bs,
                         const uint8_t digest[FX_BLAKE2B_BYTES], char *out,
                         size_t cap, fx_diag *diag);

/* Re-hashes the stored blob: FX_OK if present and its bytes hash to its
 * name, FX_ENOTFOUND if absent, FX_EMISMATCH if corrupted. */
fx_err fx_blobstore_check(const fx_blobstore *bs,
                          const uint8_t digest[FX_BLAKE2B_BYTES],
                          fx_diag *diag);

#endif
