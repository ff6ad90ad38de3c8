/* THE canonical signature of flexo: Ed25519 (pure, libsodium) over a
 * pre-authentication encoding (DSSE's PAE idea) of a payload type and the
 * exact payload bytes. Every signed artifact (roster, anchor release,
 * contribution, withdrawal, ledger checkpoint data) goes through fx_sign and
 * fx_verify; nothing signs a re-encoding of a decoded struct.
 *
 *   PAE(type, body) = "flexo-sig-v1" || u64le(len(type)) || type
 *                                    || u64le(len(body)) || body
 *
 * See docs/protocol.md for the byte-exact definition. */
#ifndef FLEXO_SIGN_H
#define FLEXO_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"

#define FX_PK_BYTES     32 /* Ed25519 public key */
#define FX_SK_BYTES     64 /* libsodium secret key: seed || public key */
#define FX_SEED_BYTES   32
#define FX_SIG_BYTES    64
#define FX_KEY_ID_BYTES 8 /* first 8 bytes of BLAKE2b-256(public key) */

#define FX_SIG_DOMAIN   "flexo-sig-v1" /* 12 bytes, no NUL, no length */
#define FX_SIG_TYPE_MAX 128            /* payload type length bound */
#define FX_SIG_BODY_MAX (64u << 20)    /* largest body signed or verified */

/* Key ID of a public key: BLAKE2b-256(pk)[0..8). A lookup hint, never a
 * substitute for verifying against the full key. */
void fx_key_id(uint8_t id[FX_KEY_ID_BYTES], const uint8_t pk[FX_PK_BYTES]);

/* Checks a payload type: 1..FX_SIG_TYPE_MAX bytes of printable ASCII
 * (0x21..0x7e). */
fx_err fx_sig_type_check(const char *type, fx_diag *diag);

/* Builds PAE(type, body) into a fresh malloc'd buffer *out of *out_len
 * bytes (caller frees). Exposed for tests and independent verifiers. */
fx_err fx_pae(const char *type, const uint8_t *body, size_t body_len,
              uint8_t **out, size_t *out_len, fx_diag *diag);

/* Signs PAE(type, body) with sk (libsodium 64-byte form). sig is written
 * only on success. body may be NULL when body_len is 0. */
fx_err fx_sign(uint8_t sig[FX_SIG_BYTES], const char *type, const uint8_t *body,
               size_t body_len, const uint8_t sk[FX_SK_BYTES], fx_diag *diag);

/* Verifies sig over PAE(type, body) under pk. Returns 0 if valid, -1
 * otherwise (bad type, oversized body, no memory or a wrong signature). */
int fx_verify(const uint8_t sig[FX_SIG_BYTES], const char *type,
              const uint8_t *body, size_t body_len,
              const uint8_t pk[FX_PK_BYTES])
    __attribute__((warn_unused_result));

/* Raw Ed25519 over msg with no framing. Only for formats that define their
 * own framing (C2SP signed-note checkpoints) and for the RFC 8032 vectors;
 * everything else uses fx_sign / fx_verify. */
fx_err fx_ed25519_sign(uint8_t sig[FX_SIG_BYTES], const uint8_t *msg,
                       size_t len, const uint8_t sk[FX_SK_BYTES],
                       fx_diag *diag);
int fx_ed25519_verify(const uint8_t sig[FX_SIG_BYTES], const uint8_t *msg,
                      size_t len, const uint8_t pk[FX_PK_BYTES])
    __attribute__((warn_unused_result));

#endif
