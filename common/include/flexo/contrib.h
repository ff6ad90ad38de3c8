/* Contribution manifests: what a data owner signs when submitting an
 * expert — its key ID, the anchor release it trained on, a domain label, a
 * sequence number, the payload (expert safetensors) size and BLAKE2b-256,
 * its router rows and bias, and training metadata (flexo.v1.Contribution in
 * an Envelope). fx_contrib_verify is the one check the coordinator's gate
 * and the auditor share. */
#ifndef FLEXO_CONTRIB_H
#define FLEXO_CONTRIB_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/hash.h"
#include "flexo/keys.h"
#include "flexo/release.h"
#include "flexo/roster.h"
#include "flexo/wire.h"

#define FX_CONTRIB_MAX_HYPER 64

typedef struct fx_kv {
	const char *key;
	const char *value;
} fx_kv;

/* Everything the contributor states. Pointers are borrowed for the call. */
typedef struct fx_contrib_params {
	const char *consortium;
	const uint8_t *release_digest; /* 32 bytes: fx_release.digest */
	uint64_t release_version;
	const char *domain;       /* 1..FX_NAME_MAX printable bytes */
	uint64_t sequence;        /* > every earlier one of this key */
	const char *payload_path; /* expert safetensors, hashed streaming */
	uint32_t layers, dim;     /* router rows: layers x dim */
	const float *router;
	const float *bias; /* layers values <= 0, or NULL */
	uint64_t steps, tokens, seed;
	const fx_kv *hyper; /* sorted here before signing */
	size_t n_hyper;
	double heldout_bpb; /* bits per byte on the owner's held-out text */
	uint64_t heldout_bytes;
	int64_t created;
} fx_contrib_params;

/* Builds, checks (the same rules as verify) and signs a manifest with key.
 * *env is malloc'd (caller frees). */
fx_err fx_contrib_create(const fx_contrib_params *p, const fx_keypair *key,
                         uint8_t **env, size_t *len, fx_diag *diag);

/* Builds and signs the manifest of an expert file (expert.h format) for a
 * verified release: router rows and bias from its tensors; domain,
 * "train.steps" / "train.tokens" / "train.seed" / "train.heldout_bpb" from
 * its metadata into their fields and every other "train.*" entry as a
 * hyper-parameter. Refuses (FX_EMISMATCH) an expert whose metadata
 * "anchor_digest" is not the release's anchor BLAKE2b-256 or whose shape is
 * not the release's r_pub shape: a contributor never signs an expert for
 * another anchor. */
fx_err fx_contrib_from_expert(const char *expert_path, const fx_release *rel,
                              uint64_t sequence, int64_t created,
                              const fx_keypair *key, uint8_t **env, size_t *len,
                              fx_diag *diag);

/* What the verifier requires beyond the signature. Zero/NULL fields are not
 * checked. The payload is given as bytes, or as a digest + size the caller
 * computed while receiving it (a streamed upload), or not at all (an early
 * check before the upload). */
typedef struct fx_contrib_expect {
	const uint8_t *release_digest; /* the anchor release it must be for */
	uint32_t layers, dim;          /* router shape of that release */
	const uint64_t *last_sequence; /* highest sequence seen from this key */
	const uint8_t *payload;        /* payload bytes, or */
	size_t payload_len;
	const uint8_t *payload_digest; /* its BLAKE2b-256 and size */
	uint64_t payload_size;
} fx_contrib_expect;

/* A verified contribution: msg (owned) is the decoded payload; digest is
 * BLAKE2b-256 of the signed payload bytes (the "contribution digest" that
 * verdicts, receipts and withdrawals name). */
typedef struct fx_contrib {
	Flexo__V1__Contribution *msg;
	uint8_t digest[FX_BLAKE2B_BYTES];
	char signer[FX_NAME_MAX + 1];
	uint8_t signer_pk[FX_PK_BYTES];
} fx_contrib;

void fx_contrib_init(fx_contrib *c);
void fx_contrib_release(fx_contrib *c);

/* Verifies env against a trusted roster at `now`: signed (FX_EBADSIG
 * "unsigned" otherwise) by a contributor whose key is valid (FX_EBADSIG /
 * FX_EEXPIRED), key ID in the manifest = the signer's, same consortium,
 * well-formed fields (router rows shape, finite values, bias <= 0), then
 * what `expect` asks: anchor release (FX_EMISMATCH), router shape
 * (FX_EMISMATCH), sequence freshness (FX_EROLLBACK), payload size and digest
 * (FX_EMISMATCH). expect may be NULL. On success *out holds the result. */
fx_err fx_contrib_verify(fx_contrib *out, const uint8_t *env, size_t len,
                         const fx_roster *roster, int64_t now,
                         const fx_contrib_expect *expect, fx_diag *diag);

/* Withdrawal of an earlier contribution by its owner (flexo.v1.Withdrawal).
 * sequence comes from the same counter as contributions. */
typedef struct fx_withdrawal_params {
	const char *consortium;
	const uint8_t *contribution_digest; /* 32 bytes: fx_contrib.digest */
	uint64_t sequence;
	const char *reason; /* may be NULL, <= 1024 bytes */
	int64_t created;
} fx_withdrawal_params;

fx_err fx_withdrawal_create(const fx_withdrawal_params *p,
                            const fx_keypair *key, uint8_t **env, size_t *len,
                            fx_diag *diag);

/* Verifies a withdrawal: signed by a contributor of the roster valid at now
 * (FX_EBADSIG / FX_EEXPIRED), key ID = signer, same consortium; if owner_pk
 * is given, the signer must be that key — the contribution's own signer
 * (FX_EPERM); if last_sequence is given, sequence must exceed it
 * (FX_EROLLBACK). *out (owned, free with fx_wire_free(&(*out)->base)) and
 * digest (BLAKE2b-256 of the payload, may be NULL) written on success. */
fx_err fx_withdrawal_verify(Flexo__V1__Withdrawal **out,
                            uint8_t digest[FX_BLAKE2B_BYTES],
                            const uint8_t *env, size_t len,
                            const fx_roster *roster, int64_t now,
                            const uint8_t *owner_pk,
                            const uint64_t *last_sequence, fx_diag *diag);

#endif
