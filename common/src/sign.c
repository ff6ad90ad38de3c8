/* The one signing and verifying pair (see sign.h): Ed25519 over the PAE of
 * a typed payload. The PAE is built in one buffer because pure Ed25519 needs
 * the whole message (the "ph" variant would change the signature scheme). */
#include "flexo/sign.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "flexo/hash.h"

#define DOMAIN_LEN (sizeof(FX_SIG_DOMAIN) - 1)

void fx_key_id(uint8_t id[FX_KEY_ID_BYTES], const uint8_t pk[FX_PK_BYTES])
{
	uint8_t h[FX_BLAKE2B_BYTES];
	fx_blake2b(h, pk, FX_PK_BYTES);
	memcpy(id, h, FX_KEY_ID_BYTES);
}

fx_err fx_sig_type_check(const char *type, fx_diag *diag)
{
	size_t n;

	if (type == NULL)
		return fx_diag_set(diag, FX_EINVAL, "payload type missing");
	n = strnlen(type, FX_SIG_TYPE_MAX + 1);
	if (n == 0 || n > FX_SIG_TYPE_MAX)
		return fx_diag_set(diag, FX_EINVAL,
		                   "payload type length must be 1..%d bytes",
		                   FX_SIG_TYPE_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)type[i] < 0x21 ||
		    (unsigned char)type[i] > 0x7e)
			return fx_diag_set(
			    diag, FX_EINVAL,
			    "payload type has a non-printable byte "
			    "at offset %zu",
			    i);
	return FX_OK;
}

static void put_u64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

fx_err fx_pae(const char *type, const uint8_t *body, size_t body_len,
              uint8_t **out, size_t *out_len, fx_diag *diag)
{
	fx_err err;
	size_t tlen, total;
	uint8_t *buf, *p;

	if ((err = fx_sig_type_check(type, diag)) != FX_OK)
		return err;
	if (body_len > FX_SIG_BODY_MAX)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "signed body of %zu bytes exceeds %u",
		                   body_len, FX_SIG_BODY_MAX);
	tlen = strlen(type);
	/* Both lengths are bounded above, so the sum cannot overflow. */
	total = DOMAIN_LEN + 8 + tlen + 8 + body_len;
	buf = malloc(total ? total : 1);
	if (buf == NULL)
		return fx_diag_set(diag, FX_ENOMEM,
		                   "no memory for %zu-byte PAE", total);
	p = buf;
	memcpy(p, FX_SIG_DOMAIN, DOMAIN_LEN);
	p += DOMAIN_LEN;
	put_u64le(p, tlen);
	p += 8;
	memcpy(p, type, tlen);
	p += tlen;
	put_u64le(p, body_len);
	p += 8;
	if (body_len)
		memcpy(p, body, body_len);
	*out = buf;
	*out_len = total;
	return FX_OK;
}

fx_err fx_sign(uint8_t sig[FX_SIG_BYTES], const char *type, const uint8_t *body,
               size_t body_len, const uint8_t sk[FX_SK_BYTES], fx_diag *diag)
{
	uint8_t *msg = NULL;
	size_t len = 0;
	uint8_t tmp[FX_SIG_BYTES];
	fx_err err;

	if (sodium_init() < 0)
		return fx_diag_set(diag, FX_ECRYPTO,
		                   "libsodium failed to start");
	if ((err = fx_pae(type, body, body_len, &msg, &len, diag)) != FX_OK)
		return err;
	if ((err = fx_ed25519_sign(tmp, msg, len, sk, diag)) == FX_OK)
		memcpy(sig, tmp, FX_SIG_BYTES);
	/* The body may be confidential (a payload digest is not, but keep the
	 * habit cheap): wipe before freeing. */
	sodium_memzero(msg, len);
	free(msg);
	return err;
}

int fx_verify(const uint8_t sig[FX_SIG_BYTES], const char *type,
              const uint8_t *body, size_t body_len,
              const uint8_t pk[FX_PK_BYTES])
{
	uint8_t *msg = NULL;
	size_t len = 0;
	int rc;

	if (sodium_init() < 0)
		return -1;
	if (fx_pae(type, body, body_len, &msg, &len, NULL) != FX_OK)
		return -1;
	rc = fx_ed25519_verify(sig, msg, len, pk);
	free(msg);
	return rc;
}

fx_err fx_ed25519_sign(uint8_t sig[FX_SIG_BYTES], const uint8_t *msg,
                       size_t len, const uint8_t sk[FX_SK_BYTES], fx_diag *diag)
{
	if (sodium_init() < 0)
		return fx_diag_set(diag, FX_ECRYPTO,
		                   "libsodium failed to start");
	if (crypto_sign_detached(sig, NULL, msg, len, sk) != 0)
		return fx_diag_set(diag, FX_ECRYPTO, "Ed25519 signing failed");
	return FX_OK;
}

int fx_ed25519_verify(const uint8_t sig[FX_SIG_BYTES], const uint8_t *msg,
                      size_t len, const uint8_t pk[FX_PK_BYTES])
{
	if (sodium_init() < 0)
		return -1;
	return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : -1;
}
