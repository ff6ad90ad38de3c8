/* BLAKE2b-256, SHA-256 and hex helpers over libsodium. The file digest
 * streams through a fixed buffer so memory stays flat for any file size. */
#include "flexo/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Large enough that syscall cost vanishes next to hashing (~1 GB/s). */
#define FILE_BLOCK (1u << 20)

void fx_blake2b(uint8_t out[FX_BLAKE2B_BYTES], const void *data, size_t len)
{
	/* crypto_generichash cannot fail for these fixed, valid sizes. */
	(void)crypto_generichash(out, FX_BLAKE2B_BYTES, data, len, NULL, 0);
}

void fx_blake2b_init(fx_blake2b_ctx *ctx)
{
	(void)crypto_generichash_init(&ctx->st, NULL, 0, FX_BLAKE2B_BYTES);
}

void fx_blake2b_update(fx_blake2b_ctx *ctx, const void *data, size_t len)
{
	(void)crypto_generichash_update(&ctx->st, data, len);
}

void fx_blake2b_final(fx_blake2b_ctx *ctx, uint8_t out[FX_BLAKE2B_BYTES])
{
	(void)crypto_generichash_final(&ctx->st, out, FX_BLAKE2B_BYTES);
	sodium_memzero(&ctx->st, sizeof(ctx->st));
}

fx_err fx_blake2b_file(const char *path, uint8_t out[FX_BLAKE2B_BYTES],
                       uint64_t *size, fx_diag *diag)
{
	fx_err err = FX_OK;
	fx_blake2b_ctx ctx;
	uint8_t *buf = NULL;
	uint64_t total = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fx_diag_set(diag,
		                   errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		                   "cannot open %s: %s", path, strerror(errno));
	buf = malloc(FILE_BLOCK);
	if (buf == NULL) {
		err =
		    fx_diag_set(diag, FX_ENOMEM, "no memory to hash %s", path);
		goto out;
	}
	fx_blake2b_init(&ctx);
	for (;;) {
		ssize_t n = read(fd, buf, FILE_BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = fx_diag_set(diag, FX_EIO, "reading %s: %s", path,
			                  strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		fx_blake2b_update(&ctx, buf, (size_t)n);
		total += (uint64_t)n;
	}
	fx_blake2b_final(&ctx, out);
	if (size != NULL)
		*size = total;
out:
	free(buf);
	close(fd);
	return err;
}

void fx_sha256(uint8_t out[FX_SHA256_BYTES], const void *data, size_t len)
{
	(void)crypto_hash_sha256(out, data, len);
}

void fx_sha256_init(fx_sha256_ctx *ctx)
{
	(void)crypto_hash_sha256_init(&ctx->st);
}

void fx_sha256_update(fx_sha256_ctx *ctx, const void *data, size_t len)
{
	(void)crypto_hash_sha256_update(&ctx->st, data, len);
}

void fx_sha256_final(fx_sha256_ctx *ctx, uint8_t out[FX_SHA256_BYTES])
{
	(void)crypto_hash_sha256_final(&ctx->st, out);
	sodium_memzero(&ctx->st, sizeof(ctx->st));
}

char *fx_hex(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
	return out;
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

fx_err fx_hex_decode(uint8_t *out, size_t n, const char *hex, fx_diag *diag)
{
	size_t len = strnlen(hex, 2 * n + 1);

	if (len != 2 * n)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "hex string has %s%zu digits, expected %zu",
		                   len > 2 * n ? "more than " : "",
		                   len > 2 * n ? 2 * n : len, 2 * n);
	for (size_t i = 0; i < n; i++) {
		if (nibble(hex[2 * i]) < 0 || nibble(hex[2 * i + 1]) < 0)
			return fx_diag_set(
			    diag, FX_EFORMAT, "not a hex digit at position %zu",
			    nibble(hex[2 * i]) < 0 ? 2 * i : 2 * i + 1);
	}
	for (size_t i = 0; i < n; i++)
		out[i] =
		    (uint8_t)(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
	return FX_OK;
}
