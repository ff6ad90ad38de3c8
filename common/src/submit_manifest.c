/* Minimal Contribution manifests (submit_manifest.h): stream-hash the
 * payload, fill the manifest, encode it canonically and seal it in an
 * Envelope signed over PAE (wire.h, sign.h). */
#include "flexo/submit_manifest.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flexo/wire.h"

fx_err fx_manifest_seal(const fx_manifest_params *p, const fx_keypair *key,
                        uint8_t **env, size_t *env_len, fx_diag *diag)
{
	Flexo__V1__Contribution c = FLEXO__V1__CONTRIBUTION__INIT;
	uint8_t digest[FX_BLAKE2B_BYTES], *body = NULL;
	size_t body_len = 0;
	uint64_t size = 0;
	const fx_keypair *keys[1] = {key};
	fx_err err;

	if (key->sk == NULL)
		return fx_diag_set(diag, FX_EINVAL,
		                   "signing a contribution needs a secret key");
	if (p->sequence == 0)
		return fx_diag_set(diag, FX_EINVAL, "sequence number must be > 0");
	if ((err = fx_blake2b_file(p->payload_path, digest, &size, diag)) !=
	    FX_OK)
		return err;
	c.schema = FX_WIRE_SCHEMA;
	c.consortium = (char *)p->consortium;
	c.contributor_key_id.data = (uint8_t *)key->id;
	c.contributor_key_id.len = FX_KEY_ID_BYTES;
	c.anchor_release_digest.data = (uint8_t *)p->anchor_digest;
	c.anchor_release_digest.len = FX_BLAKE2B_BYTES;
	c.anchor_release_version = p->anchor_version;
	c.domain = (char *)p->domain;
	c.sequence = p->sequence;
	c.payload_size = size;
	c.payload_blake2b.data = digest;
	c.payload_blake2b.len = FX_BLAKE2B_BYTES;
	c.created = (int64_t)time(NULL);
	if ((err = fx_wire_encode(&c.base, &body, &body_len, diag)) != FX_OK) {
		fx_diag_prefix(diag, "contribution manifest");
		return err;
	}
	err = fx_envelope_seal(FX_TYPE_CONTRIBUTION, body, body_len, keys, 1,
	                       env, env_len, diag);
	free(body);
	return err;
}
