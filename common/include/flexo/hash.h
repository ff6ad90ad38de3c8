/* Digests used across flexo: BLAKE2b-256 for payloads, files and key IDs
 * (fast here: ~1 GB/s), SHA-256 for the RFC 9162 Merkle tree (so outside
 * tools agree), and hex encoding. Caller-owned fixed-size output buffers. */
#ifndef FLEXO_HASH_H
#define FLEXO_HASH_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "flexo/err.h"

#define FX_BLAKE2B_BYTES 32 /* BLAKE2b-256, unkeyed */
#define FX_SHA256_BYTES  32

/* One-shot BLAKE2b-256 of len bytes (data may be NULL when len is 0). */
void fx_blake2b(uint8_t out[FX_BLAKE2B_BYTES], const void *data, size_t len);

/* Streaming BLAKE2b-256. The context is caller-owned, holds no heap memory;
 * init, any number of updates, then final (which wipes the state). */
typedef struct fx_blake2b_ctx {
	crypto_generichash_state st;
} fx_blake2b_ctx;

void fx_blake2b_init(fx_blake2b_ctx *ctx);
void fx_blake2b_update(fx_blake2b_ctx *ctx, const void *data, size_t len);
void fx_blake2b_final(fx_blake2b_ctx *ctx, uint8_t out[FX_BLAKE2B_BYTES]);

/* BLAKE2b-256 of a whole file, streamed in fixed-size blocks (never slurped).
 * *size (may be NULL) receives the byte count. Outputs written only on
 * success; FX_ENOTFOUND / FX_EIO name the path in diag. */
fx_err fx_blake2b_file(const char *path, uint8_t out[FX_BLAKE2B_BYTES],
                       uint64_t *size, fx_diag *diag);

/* One-shot and streaming SHA-256 (libsodium's). */
void fx_sha256(uint8_t out[FX_SHA256_BYTES], const void *data, size_t len);

typedef struct fx_sha256_ctx {
	crypto_hash_sha256_state st;
} fx_sha256_ctx;

void fx_sha256_init(fx_sha256_ctx *ctx);
void fx_sha256_update(fx_sha256_ctx *ctx, const void *data, size_t len);
void fx_sha256_final(fx_sha256_ctx *ctx, uint8_t out[FX_SHA256_BYTES]);

/* Lower-case hex of n bytes into out, which must hold 2n+1 chars (the NUL
 * included); returns out. */
char *fx_hex(char *out, const uint8_t *in, size_t n);

/* Decodes exactly n bytes from the hex string `hex` (upper or lower case,
 * exactly 2n digits, nothing else). out is written only on success. */
fx_err fx_hex_decode(uint8_t *out, size_t n, const char *hex, fx_diag *diag);

#endif
