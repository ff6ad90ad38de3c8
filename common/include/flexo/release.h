/* Anchor releases: the coordinator's signed manifest of the anchor model a
 * contributor trains on — release version (monotonic), model config, the
 * BLAKE2b-256 of every tensor and of the whole file, the tokenizer digest,
 * the public router rows r_pub, the roster version and an expiry
 * (flexo.v1.AnchorRelease in an Envelope). A release directory holds
 * release.bin (the envelope), the anchor safetensors, tokenizer.json and the
 * r_pub safetensors (rows plus the embedder settings contributors reuse). */
#ifndef FLEXO_RELEASE_H
#define FLEXO_RELEASE_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/hash.h"
#include "flexo/keys.h"
#include "flexo/roster.h"

#define FX_RELEASE_FILE      "release.bin"
#define FX_RELEASE_ANCHOR    "anchor.safetensors"
#define FX_RELEASE_TOKENIZER "tokenizer.json"
#define FX_RELEASE_ROUTER    "router.pub.safetensors"
#define FX_ROUTER_PUB_TENSOR "router.pub"
#define FX_TOKENIZER_MAX     (16u << 20) /* tokenizer.json bytes */

/* What the coordinator releases. The roster must be verified by the caller;
 * its consortium and version go into the manifest. */
typedef struct fx_release_params {
	const char *anchor_path; /* safetensors; metadata hidden_size and
	                          * num_hidden_layers give d and L */
	const char
	    *router_pub_path;       /* safetensors with tensor "router.pub",
	                             * shape [L, d] or [d] (same row each layer) */
	const char *tokenizer_path; /* tokenizer.json */
	uint64_t version;           /* > every earlier release */
	int64_t created;
	int64_t expires;
	const fx_roster *roster;
} fx_release_params;

/* Builds the manifest (digests streamed or over the mapping; nothing
 * slurped), signs it with `coord` and each co-signer, and writes out_dir/
 * {release.bin, anchor.safetensors, tokenizer.json, router.pub.safetensors},
 * each atomically.
 * Refuses a coordinator key that is not a coordinator of the roster. */
fx_err fx_release_create(const fx_release_params *p, const fx_keypair *coord,
                         const fx_keypair *const *cosigners, size_t n_cosign,
                         const char *out_dir, fx_diag *diag);

/* A verified release. msg is the decoded payload (tensors, config), owned;
 * router_pub points into it (layers * dim floats). */
typedef struct fx_release {
	Flexo__V1__AnchorRelease *msg;
	uint8_t digest[FX_BLAKE2B_BYTES]; /* BLAKE2b-256 of the payload bytes:
	                                   * the "anchor release digest" */
	char signer[FX_NAME_MAX + 1];     /* coordinator member that signed */
	uint8_t *envelope;                /* exact bytes verified, owned */
	size_t envelope_len;
} fx_release;

void fx_release_init(fx_release *r);
void fx_release_release(fx_release *r);

/* Verifies an envelope against a trusted, verified roster at time `now`:
 * carries signatures at all (FX_EBADSIG "unsigned"), signed by a
 * coordinator of the roster whose key is valid (FX_EBADSIG / FX_EEXPIRED),
 * plus roster->release_cosigners root signatures, same consortium
 * (FX_EMISMATCH), made under a roster version <= the trusted one, not
 * expired (FX_EEXPIRED), and not a rollback: version > last_version, or
 * equal with the same digest when last_digest is given (FX_EROLLBACK).
 * Manifest fields are checked for consistency (digest sizes, router rows
 * shape, finite values). */
fx_err fx_release_verify(fx_release *out, const uint8_t *env, size_t len,
                         const fx_roster *roster, int64_t now,
                         uint64_t last_version, const uint8_t *last_digest,
                         fx_diag *diag);

/* Checks the files a verified release names inside dir: anchor size and
 * whole-file BLAKE2b-256, the safetensors parse and every tensor's name,
 * dtype, shape, range and BLAKE2b-256, and the tokenizer and r_pub file
 * digests (FX_EMISMATCH naming the file or tensor). */
fx_err fx_release_check_files(const fx_release *r, const char *dir,
                              fx_diag *diag);

/* Copies a verified release's files (anchor, tokenizer, r_pub) and its envelope
 * from from_dir into to_dir (created; each file atomically), then checks the
 * copies with fx_release_check_files — the copies are what gets used, so the
 * copies are what gets checked. */
fx_err fx_release_install(const fx_release *r, const char *from_dir,
                          const char *to_dir, fx_diag *diag);

/* The contributor's memory of the highest release it accepted, in
 * state_dir/release.state (text: "flexo-release-state 1", "version N",
 * "digest HEX"). load: *have = 0 and nothing else written when absent.
 * save writes atomically. */
#define FX_RELEASE_STATE "release.state"
fx_err fx_release_state_load(const char *state_dir, int *have,
                             uint64_t *version,
                             uint8_t digest[FX_BLAKE2B_BYTES], fx_diag *diag);
fx_err fx_release_state_save(const char *state_dir, uint64_t version,
                             const uint8_t digest[FX_BLAKE2B_BYTES],
                             fx_diag *diag);

/* Reads dir/release.bin (bounded) into a fresh malloc'd buffer. */
fx_err fx_release_read(const char *dir, uint8_t **env, size_t *len,
                       fx_diag *diag);

#endif
