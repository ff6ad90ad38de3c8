/* A minimal signed Contribution manifest for a payload file: who signs it,
 * which anchor release it builds on, the domain, the sequence number and
 * the payload's size and BLAKE2b-256 — enough for the transport and its
 * tests. The full manifest (router rows, bias, training metadata) is the
 * contribution module's; `submit` takes such an envelope with --envelope. */
#ifndef FLEXO_SUBMIT_MANIFEST_H
#define FLEXO_SUBMIT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/hash.h"
#include "flexo/keys.h"

typedef struct fx_manifest_params {
	const char *consortium;
	const uint8_t *anchor_digest; /* FX_BLAKE2B_BYTES: the release's digest */
	uint64_t anchor_version;
	const char *domain;           /* 1..64 bytes */
	uint64_t sequence;            /* > 0 */
	const char *payload_path;     /* hashed (streamed) for size and digest */
} fx_manifest_params;

/* Builds the Contribution, signs it with key (which must hold a secret)
 * and returns the encoded Envelope in *env (malloc'd, caller frees). */
fx_err fx_manifest_seal(const fx_manifest_params *p, const fx_keypair *key,
                        uint8_t **env, size_t *env_len, fx_diag *diag);

#endif
