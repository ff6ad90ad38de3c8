/* Test and benchmark helpers: real, signed ledger entries — a roster signed
 * by its root, anchor releases by the coordinator, contributions and
 * withdrawals by contributors (flexo.v1 documents in Envelopes), rejections
 * and assemblies — with deterministic throw-away keys. Header-only, used by
 * the ledger tests and flexo-bench audit; not part of the library. */
#ifndef FLEXO_LEDGER_FIXTURE_H
#define FLEXO_LEDGER_FIXTURE_H

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/keys.h"
#include "flexo/ledger.h"
#include "flexo/roster.h"
#include "flexo/wire.h"

#define FXT_CONSORTIUM "flexo-test"
#define FXT_EXPIRES    4102444800 /* 2100-01-01: far beyond any test */

typedef struct fxt_party {
	char name[32];
	fx_keypair kp; /* kp.sk: libsodium 64-byte secret key */
	uint64_t seq;  /* next sequence number of its documents */
} fxt_party;

static inline void fxt_party_init(fxt_party *p, const char *name, uint32_t seed)
{
	uint8_t s[FX_SEED_BYTES] = {0};
	memcpy(s, &seed, sizeof(seed));
	s[31] = 0x5a; /* deterministic keys keep runs comparable */
	fx_keypair_init(&p->kp);
	if (fx_keypair_from_seed(&p->kp, s, NULL) != FX_OK)
		abort();
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->seq = 1;
}

static inline void fxt_party_release(fxt_party *p)
{
	fx_keypair_release(&p->kp);
}

/* Appends roster `version` with `root` as its root (threshold 1, signed by
 * it) and the given members and roles. */
static inline fx_err fxt_roster(fx_ledger *l, uint64_t version,
                                const fxt_party *root,
                                fxt_party *const *members, const fx_role *roles,
                                size_t n, uint64_t *idx, fx_diag *d)
{
	Flexo__Ledger__V1__RosterUpdate u =
	    FLEXO__LEDGER__V1__ROSTER_UPDATE__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	fx_roster r;
	fx_err err;

	fx_roster_init(&r);
	snprintf(r.consortium, sizeof(r.consortium), FXT_CONSORTIUM);
	r.version = version;
	r.expires = FXT_EXPIRES;
	r.threshold = 1;
	if ((err = fx_roster_add(&r, root->name, root->kp.pk, FX_ROLE_ROOT, 0,
	                         d)) != FX_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((err = fx_roster_add(&r, members[i]->name,
		                         members[i]->kp.pk, roles[i], 0, d)))
			goto out;
	if ((err = fx_roster_seal(&r, d)) != FX_OK ||
	    (err = fx_roster_sign(&r, &root->kp, d)) != FX_OK)
		goto out;
	u.envelope.data = r.envelope;
	u.envelope.len = r.envelope_len;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ROSTER;
	e.roster = &u;
	err = fx_ledger_append(l, &e, idx, d);
out:
	fx_roster_release(&r);
	return err;
}

static inline fx_err fxt_anchor(fx_ledger *l, const fxt_party *coord,
                                uint64_t release, uint64_t roster_version,
                                uint64_t *idx, fx_diag *d)
{
	Flexo__Ledger__V1__AnchorRelease a =
	    FLEXO__LEDGER__V1__ANCHOR_RELEASE__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	Flexo__V1__AnchorRelease m = FLEXO__V1__ANCHOR_RELEASE__INIT;
	Flexo__V1__TensorDigest t = FLEXO__V1__TENSOR_DIGEST__INIT, *tp = &t;
	Flexo__V1__RouterRows rr = FLEXO__V1__ROUTER_ROWS__INIT;
	const fx_keypair *keys[1] = {&coord->kp};
	uint8_t h1[32], h2[32], h3[32], *body = NULL, *env = NULL;
	float rows[4] = {0.5f, -0.5f, 0.25f, 1.0f};
	int64_t shape[2] = {2, 2};
	size_t blen = 0, elen = 0;
	fx_err err;

	crypto_generichash(h1, 32, (const uint8_t *)"anchor", 6, NULL, 0);
	crypto_generichash(h2, 32, (const uint8_t *)"tokenizer", 9, NULL, 0);
	crypto_generichash(h3, 32, (const uint8_t *)"tensor", 6, NULL, 0);
	t.name = (char *)"model.embed_tokens.weight";
	t.dtype = (char *)"F32";
	t.n_shape = 2;
	t.shape = shape;
	t.size = 16;
	t.blake2b.data = h3;
	t.blake2b.len = 32;
	rr.layers = 2;
	rr.dim = 2;
	rr.n_values = 4;
	rr.values = rows;
	m.schema = FX_WIRE_SCHEMA;
	m.consortium = (char *)FXT_CONSORTIUM;
	m.release_version = release;
	m.created = 1700000000;
	m.expires = FXT_EXPIRES;
	m.roster_version = roster_version;
	m.anchor_file = (char *)"anchor.safetensors";
	m.anchor_size = 1024;
	m.anchor_blake2b.data = h1;
	m.anchor_blake2b.len = 32;
	m.n_tensors = 1;
	m.tensors = &tp;
	m.tokenizer_blake2b.data = h2;
	m.tokenizer_blake2b.len = 32;
	m.tokenizer_file = (char *)"tokenizer.json";
	m.router_pub = &rr;
	m.router_pub_file = (char *)"router_pub.safetensors";
	m.router_pub_blake2b.data = h3;
	m.router_pub_blake2b.len = 32;
	if ((err = fx_wire_encode(&m.base, &body, &blen, d)) != FX_OK ||
	    (err = fx_envelope_seal(FX_TYPE_RELEASE, body, blen, keys, 1, &env,
	                            &elen, d)) != FX_OK)
		goto out;
	a.envelope.data = env;
	a.envelope.len = elen;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR;
	e.anchor = &a;
	err = fx_ledger_append(l, &e, idx, d);
out:
	free(body);
	free(env);
	return err;
}

/* A contribution manifest by c for an expert whose bytes are `payload`,
 * sealed into *env (malloc'd, caller frees). */
static inline fx_err fxt_contribution(fxt_party *c, const uint8_t *payload,
                                      size_t plen, const uint8_t release[32],
                                      uint8_t digest[32], uint8_t **env,
                                      size_t *elen, fx_diag *d)
{
	Flexo__V1__Contribution m = FLEXO__V1__CONTRIBUTION__INIT;
	Flexo__V1__RouterRows rr = FLEXO__V1__ROUTER_ROWS__INIT;
	const fx_keypair *keys[1] = {&c->kp};
	uint8_t anchor[32], *body = NULL;
	float rows[4] = {0.1f, 0.2f, 0.3f, 0.4f};
	size_t blen = 0;
	fx_err err;

	crypto_generichash(digest, 32, payload, plen, NULL, 0);
	memcpy(anchor, release, 32);
	rr.layers = 2;
	rr.dim = 2;
	rr.n_values = 4;
	rr.values = rows;
	m.schema = FX_WIRE_SCHEMA;
	m.consortium = (char *)FXT_CONSORTIUM;
	m.contributor_key_id.data = c->kp.id;
	m.contributor_key_id.len = FX_KEY_ID_BYTES;
	m.anchor_release_digest.data = anchor;
	m.anchor_release_digest.len = 32;
	m.anchor_release_version = 1;
	m.domain = (char *)"test";
	m.sequence = c->seq++;
	m.payload_size = plen;
	m.payload_blake2b.data = digest;
	m.payload_blake2b.len = 32;
	m.router = &rr;
	m.created = 1700000000;
	if ((err = fx_wire_encode(&m.base, &body, &blen, d)) == FX_OK)
		err = fx_envelope_seal(FX_TYPE_CONTRIBUTION, body, blen, keys,
		                       1, env, elen, d);
	free(body);
	return err;
}

/* An accepted contribution naming anchor release `release`. */
static inline fx_err fxt_accepted_for(fx_ledger *l, fxt_party *c,
                                      const uint8_t *payload, size_t plen,
                                      const uint8_t release[32], uint64_t *idx,
                                      fx_diag *d)
{
	Flexo__Ledger__V1__ContributionAccepted a =
	    FLEXO__LEDGER__V1__CONTRIBUTION_ACCEPTED__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	uint8_t digest[32], *env = NULL;
	size_t elen = 0;
	fx_err err;

	if ((err = fxt_contribution(c, payload, plen, release, digest, &env,
	                            &elen, d)))
		return err;
	a.envelope.data = env;
	a.envelope.len = elen;
	a.payload_digest.data = digest;
	a.payload_digest.len = 32;
	a.verdict = (char *)"all gates passed";
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED;
	e.accepted = &a;
	err = fx_ledger_append(l, &e, idx, d);
	free(env);
	return err;
}

/* An accepted contribution naming the newest logged anchor release. */
static inline fx_err fxt_accepted(fx_ledger *l, fxt_party *c,
                                  const uint8_t *payload, size_t plen,
                                  uint64_t *idx, fx_diag *d)
{
	uint8_t release[32] = {0};
	uint64_t at;
	(void)fx_ledger_latest_release(l, &at, release, NULL);
	return fxt_accepted_for(l, c, payload, plen, release, idx, d);
}

static inline fx_err fxt_rejected(fx_ledger *l, const char *reason,
                                  uint64_t *idx, fx_diag *d)
{
	Flexo__Ledger__V1__ContributionRejected r =
	    FLEXO__LEDGER__V1__CONTRIBUTION_REJECTED__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	uint8_t junk[3] = {1, 2, 3};

	r.envelope.data = junk; /* as received: not even an envelope */
	r.envelope.len = sizeof(junk);
	r.gate = (char *)"signature";
	r.reason = (char *)reason;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_REJECTED;
	e.rejected = &r;
	return fx_ledger_append(l, &e, idx, d);
}

/* c withdraws the contribution logged at entry `contribution`. */
static inline fx_err fxt_withdrawal(fx_ledger *l, fxt_party *c,
                                    uint64_t contribution, uint64_t *idx,
                                    fx_diag *d)
{
	Flexo__Ledger__V1__Withdrawal w = FLEXO__LEDGER__V1__WITHDRAWAL__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	Flexo__V1__Withdrawal m = FLEXO__V1__WITHDRAWAL__INIT;
	const fx_keypair *keys[1] = {&c->kp};
	uint8_t cdigest[32] = {0}, *bytes = NULL, *body = NULL, *env = NULL;
	size_t n = 0, blen = 0, elen = 0;
	fx_entry *ce = NULL;
	Flexo__V1__Envelope *cenv = NULL;
	fx_err err;

	/* The digest of the contribution's signed payload, as logged. */
	if ((err = fx_ledger_entry_bytes(l, contribution, &bytes, &n, d)))
		return err;
	ce = flexo__ledger__v1__entry__unpack(NULL, n, bytes);
	if (ce != NULL &&
	    ce->kind_case == FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED &&
	    fx_envelope_open(ce->accepted->envelope.data,
	                     ce->accepted->envelope.len, FX_TYPE_CONTRIBUTION,
	                     &cenv, NULL) == FX_OK) {
		crypto_generichash(cdigest, 32, cenv->payload.data,
		                   cenv->payload.len, NULL, 0);
		fx_wire_free(&cenv->base);
	}
	if (ce != NULL)
		flexo__ledger__v1__entry__free_unpacked(ce, NULL);
	free(bytes);

	m.schema = FX_WIRE_SCHEMA;
	m.consortium = (char *)FXT_CONSORTIUM;
	m.contributor_key_id.data = c->kp.id;
	m.contributor_key_id.len = FX_KEY_ID_BYTES;
	m.contribution_digest.data = cdigest;
	m.contribution_digest.len = 32;
	m.sequence = c->seq++;
	m.reason = (char *)"opting out";
	m.created = 1700000000;
	if ((err = fx_wire_encode(&m.base, &body, &blen, d)) != FX_OK ||
	    (err = fx_envelope_seal(FX_TYPE_WITHDRAWAL, body, blen, keys, 1,
	                            &env, &elen, d)) != FX_OK)
		goto out;
	w.envelope.data = env;
	w.envelope.len = elen;
	w.contribution_index = contribution;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL;
	e.withdrawal = &w;
	err = fx_ledger_append(l, &e, idx, d);
out:
	free(body);
	free(env);
	return err;
}

static inline fx_err fxt_assembly(fx_ledger *l, uint64_t anchor,
                                  uint64_t *included, size_t n,
                                  const uint8_t model_digest[32], uint64_t *idx,
                                  fx_diag *d)
{
	Flexo__Ledger__V1__Assembly a = FLEXO__LEDGER__V1__ASSEMBLY__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;

	a.included = included;
	a.n_included = n;
	a.model_digest.data = (uint8_t *)model_digest;
	a.model_digest.len = 32;
	a.anchor_index = anchor;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ASSEMBLY;
	e.assembly = &a;
	return fx_ledger_append(l, &e, idx, d);
}

#endif
