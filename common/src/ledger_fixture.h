/* Test and benchmark helpers: build real, signed ledger entries (roster,
 * anchor release, accepted / rejected contribution, withdrawal, assembly)
 * with throw-away keys. Header-only, used by ledger_test, audit_test and
 * flexo-bench audit; not part of the library. */
#ifndef FLEXO_LEDGER_FIXTURE_H
#define FLEXO_LEDGER_FIXTURE_H

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "flexo/ledger.h"

typedef struct fxt_party {
	char name[32];
	uint8_t pk[32];
	uint8_t sk[64];
} fxt_party;

static inline void fxt_party_init(fxt_party *p, const char *name,
                                  uint32_t seed)
{
	uint8_t s[32] = {0};
	memcpy(s, &seed, sizeof(seed));
	s[31] = 0x5a; /* deterministic keys keep runs comparable */
	crypto_sign_seed_keypair(p->pk, p->sk, s);
	snprintf(p->name, sizeof(p->name), "%s", name);
}

static inline fx_err fxt_roster(fx_ledger *l, uint64_t version,
                                fxt_party *const *members,
                                const char *const *roles, size_t n,
                                uint64_t *idx, fx_diag *d)
{
	Flexo__Ledger__V1__RosterMember m[64],
	    *mp[64];
	Flexo__Ledger__V1__RosterUpdate r = FLEXO__LEDGER__V1__ROSTER_UPDATE__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;

	if (n > 64)
		return FX_EINVAL;
	for (size_t i = 0; i < n; i++) {
		flexo__ledger__v1__roster_member__init(&m[i]);
		m[i].name = members[i]->name;
		m[i].public_key.data = members[i]->pk;
		m[i].public_key.len = 32;
		m[i].role = (char *)roles[i];
		mp[i] = &m[i];
	}
	r.version = version;
	r.n_members = n;
	r.members = mp;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ROSTER;
	e.roster = &r;
	return fx_ledger_append(l, &e, idx, d);
}

/* Fills env (pointing at the caller's type/payload and pk/sig buffers). */
static inline fx_err fxt_envelope(fx_envelope *env, const char *type,
                                  const uint8_t *payload, size_t len,
                                  const fxt_party *p, uint8_t pk[32],
                                  uint8_t sig[64])
{
	fx_err err = fx_ledger_env_sign(type, payload, len, p->sk, pk, sig,
	                                NULL);
	/* The key the party claims, which a forger may set to another's. */
	memcpy(pk, p->pk, 32);
	flexo__ledger__v1__signed_envelope__init(env);
	env->payload_type = (char *)type;
	env->payload.data = (uint8_t *)payload;
	env->payload.len = len;
	env->public_key.data = pk;
	env->public_key.len = 32;
	env->signature.data = sig;
	env->signature.len = 64;
	return err;
}

static inline fx_err fxt_anchor(fx_ledger *l, const fxt_party *coord,
                                uint64_t release, uint64_t *idx, fx_diag *d)
{
	Flexo__Ledger__V1__AnchorRelease a = FLEXO__LEDGER__V1__ANCHOR_RELEASE__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	fx_envelope env;
	uint8_t payload[40], digest[32], pk[32], sig[64];
	fx_err err;

	snprintf((char *)payload, sizeof(payload), "anchor release %llu",
	         (unsigned long long)release);
	crypto_generichash(digest, 32, payload, 16, NULL, 0);
	if ((err = fxt_envelope(&env, "flexo.v1.AnchorManifest", payload,
	                        strlen((char *)payload), coord, pk, sig)))
		return err;
	a.release_version = release;
	a.manifest = &env;
	a.anchor_digest.data = digest;
	a.anchor_digest.len = 32;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR;
	e.anchor = &a;
	return fx_ledger_append(l, &e, idx, d);
}

/* An accepted contribution whose payload digest is BLAKE2b-256 of
 * `payload` (so tests can store it as a blob). */
static inline fx_err fxt_accepted(fx_ledger *l, const fxt_party *c,
                                  const uint8_t *payload, size_t plen,
                                  uint64_t *idx, fx_diag *d)
{
	Flexo__Ledger__V1__ContributionAccepted a =
	    FLEXO__LEDGER__V1__CONTRIBUTION_ACCEPTED__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	fx_envelope env;
	uint8_t manifest[96], digest[32], pk[32], sig[64];
	fx_err err;

	crypto_generichash(digest, 32, payload, plen, NULL, 0);
	/* Stand-in manifest bytes: contributor name + payload digest. */
	memset(manifest, 0, sizeof(manifest));
	snprintf((char *)manifest, 32, "%s", c->name);
	memcpy(manifest + 32, digest, 32);
	if ((err = fxt_envelope(&env, "flexo.v1.ContributionManifest",
	                        manifest, 64, c, pk, sig)))
		return err;
	a.manifest = &env;
	a.payload_digest.data = digest;
	a.payload_digest.len = 32;
	a.domain = (char *)"test";
	a.verdict = (char *)"all gates passed";
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED;
	e.accepted = &a;
	return fx_ledger_append(l, &e, idx, d);
}

static inline fx_err fxt_rejected(fx_ledger *l, const fxt_party *c,
                                  const char *reason, uint64_t *idx,
                                  fx_diag *d)
{
	Flexo__Ledger__V1__ContributionRejected r =
	    FLEXO__LEDGER__V1__CONTRIBUTION_REJECTED__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	fx_envelope env;
	uint8_t manifest[8] = "bad", pk[32], sig[64];
	fx_err err;

	if ((err = fxt_envelope(&env, "flexo.v1.ContributionManifest",
	                        manifest, 3, c, pk, sig)))
		return err;
	r.manifest = &env;
	r.gate = (char *)"norm";
	r.reason = (char *)reason;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_REJECTED;
	e.rejected = &r;
	return fx_ledger_append(l, &e, idx, d);
}

static inline fx_err fxt_withdrawal(fx_ledger *l, const fxt_party *c,
                                    uint64_t contribution, uint64_t *idx,
                                    fx_diag *d)
{
	Flexo__Ledger__V1__WithdrawalRequest req =
	    FLEXO__LEDGER__V1__WITHDRAWAL_REQUEST__INIT;
	Flexo__Ledger__V1__Withdrawal w = FLEXO__LEDGER__V1__WITHDRAWAL__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	fx_envelope env;
	uint8_t buf[128], pk[32], sig[64];
	size_t n;
	fx_err err;

	req.contribution_index = contribution;
	req.time_unix = 1700000000;
	req.reason = (char *)"opting out";
	n = flexo__ledger__v1__withdrawal_request__pack(&req, buf);
	if ((err = fxt_envelope(&env, FX_LEDGER_WITHDRAWAL_TYPE, buf, n, c,
	                        pk, sig)))
		return err;
	w.request = &env;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL;
	e.withdrawal = &w;
	return fx_ledger_append(l, &e, idx, d);
}

static inline fx_err fxt_assembly(fx_ledger *l, uint64_t anchor,
                                  uint64_t *included, size_t n,
                                  const uint8_t model_digest[32],
                                  uint64_t *idx, fx_diag *d)
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
