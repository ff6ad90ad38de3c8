/* Ledger envelopes: the PAE message every embedded third-party signature
 * covers, and signing / verifying it with Ed25519. Kept apart from the
 * storage so the auditor's threads can use it without a database. */
#include "flexo/ledger.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

fx_err fx_ledger_pae(const char *type, const uint8_t *payload, size_t plen,
                     uint8_t **buf, size_t *cap, size_t *len)
{
	size_t clen = sizeof(FX_LEDGER_ENV_CONTEXT) - 1, tlen = strlen(type);
	size_t need;
	uint8_t *p;

	if (plen > FX_LEDGER_MAX_PAYLOAD || tlen > 256)
		return FX_ETOOBIG;
	need = 4 * 8 + clen + tlen + plen;
	if (*cap < need) {
		p = realloc(*buf, need);
		if (p == NULL)
			return FX_ENOMEM;
		*buf = p;
		*cap = need;
	}
	p = *buf;
	put_le64(p, 3);
	put_le64(p + 8, clen);
	memcpy(p + 16, FX_LEDGER_ENV_CONTEXT, clen);
	p += 16 + clen;
	put_le64(p, tlen);
	memcpy(p + 8, type, tlen);
	p += 8 + tlen;
	put_le64(p, plen);
	if (plen > 0)
		memcpy(p + 8, payload, plen);
	*len = need;
	return FX_OK;
}

fx_err fx_ledger_env_sign(const char *type, const uint8_t *payload,
                          size_t plen, const uint8_t sk[64], uint8_t pk[32],
                          uint8_t sig[64], fx_diag *diag)
{
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	fx_err err;

	err = fx_ledger_pae(type, payload, plen, &buf, &cap, &len);
	if (err != FX_OK) {
		err = fx_diag_set(diag, err, "envelope: payload of %zu bytes "
		                             "or type too large",
		                  plen);
		goto out;
	}
	if (crypto_sign_detached(sig, NULL, buf, len, sk) != 0) {
		err = fx_diag_set(diag, FX_ECRYPTO, "envelope: signing failed");
		goto out;
	}
	crypto_sign_ed25519_sk_to_pk(pk, sk);
out:
	free(buf);
	return err;
}

fx_err fx_ledger_env_verify(const fx_envelope *env, uint8_t **scratch,
                            size_t *cap, fx_diag *diag)
{
	size_t len = 0;
	fx_err err;

	if (env == NULL)
		return fx_diag_set(diag, FX_EFORMAT, "envelope missing");
	if (env->public_key.len != 32 || env->signature.len != 64)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "envelope: key of %zu bytes / signature of "
		                   "%zu bytes (want 32 / 64)",
		                   env->public_key.len, env->signature.len);
	if (env->payload_type == NULL)
		return fx_diag_set(diag, FX_EFORMAT, "envelope: no type");
	err = fx_ledger_pae(env->payload_type, env->payload.data,
	                    env->payload.len, scratch, cap, &len);
	if (err != FX_OK)
		return fx_diag_set(diag, err, "envelope: payload of %zu bytes "
		                              "or type too large",
		                   env->payload.len);
	if (crypto_sign_verify_detached(env->signature.data, *scratch, len,
	                                env->public_key.data) != 0)
		return fx_diag_set(diag, FX_EBADSIG,
		                   "envelope signature (type %s) does not verify",
		                   env->payload_type);
	return FX_OK;
}
