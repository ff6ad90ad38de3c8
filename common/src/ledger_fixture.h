/* Test and benchmark helpers: real, signed ledger entries — a roster signed
 * by its root, anchor releases by the coordinator, contributions and
 * withdrawals by contributors (flexo.v1 documents in Envelopes), rejections,
 * refused withdrawals and assemblies — with deterministic throw-away keys.
 * Header-only, used by the ledger tests and flexo-bench audit; not part of the
 * library. */
#ifndef FLEXO_LEDGER_FIXTURE_H
#define FLEXO_LEDGER_FIXTURE_H

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/assemble.h"
#include "flexo/blobstore.h"
#include "flexo/expert.h"
#include "flexo/fsutil.h"
#include "flexo/keys.h"
#include "flexo/ledger.h"
#include "flexo/model.h"
#include "flexo/modelfile.h"
#include "flexo/roster.h"
#include "flexo/routerpub.h"
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

/* An anchor release naming anchor file `anchor` and router-rows file
 * `router` by digest (NULL: made-up digests, for logs never re-assembled). */
static inline fx_err fxt_anchor_files(fx_ledger *l, const fxt_party *coord,
                                      uint64_t release, uint64_t roster_version,
                                      const uint8_t *anchor,
                                      const uint8_t *router, uint64_t *idx,
                                      fx_diag *d)
{
	Flexo__Ledger__V1__AnchorRelease a =
	    FLEXO__LEDGER__V1__ANCHOR_RELEASE__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	Flexo__V1__AnchorRelease m = FLEXO__V1__ANCHOR_RELEASE__INIT;
	Flexo__V1__TensorDigest t = FLEXO__V1__TENSOR_DIGEST__INIT, *tp = &t;
	Flexo__V1__RouterRows rr = FLEXO__V1__ROUTER_ROWS__INIT;
	const fx_keypair *keys[1] = {&coord->kp};
	uint8_t h1[32], h2[32], h3[32], h4[32], *body = NULL, *env = NULL;
	float rows[4] = {0.5f, -0.5f, 0.25f, 1.0f};
	int64_t shape[2] = {2, 2};
	size_t blen = 0, elen = 0;
	fx_err err;

	crypto_generichash(h1, 32, (const uint8_t *)"anchor", 6, NULL, 0);
	crypto_generichash(h2, 32, (const uint8_t *)"tokenizer", 9, NULL, 0);
	crypto_generichash(h3, 32, (const uint8_t *)"tensor", 6, NULL, 0);
	if (anchor != NULL)
		memcpy(h1, anchor, 32);
	if (router != NULL)
		memcpy(h4, router, 32);
	else
		memcpy(h4, h3, 32);
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
	m.router_pub_blake2b.data = h4;
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

static inline fx_err fxt_anchor(fx_ledger *l, const fxt_party *coord,
                                uint64_t release, uint64_t roster_version,
                                uint64_t *idx, fx_diag *d)
{
	return fxt_anchor_files(l, coord, release, roster_version, NULL, NULL,
	                        idx, d);
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

/* The digest of the contribution manifest logged at entry `idx` (what a
 * withdrawal names); zeros if that entry is no accepted contribution. */
static inline fx_err fxt_contribution_digest(fx_ledger *l, uint64_t idx,
                                             uint8_t out[32], fx_diag *d)
{
	uint8_t *bytes = NULL;
	size_t n = 0;
	fx_entry *ce;
	Flexo__V1__Envelope *cenv = NULL;
	fx_err err;

	memset(out, 0, 32);
	if ((err = fx_ledger_entry_bytes(l, idx, &bytes, &n, d)))
		return err;
	ce = flexo__ledger__v1__entry__unpack(NULL, n, bytes);
	if (ce != NULL &&
	    ce->kind_case == FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED &&
	    fx_envelope_open(ce->accepted->envelope.data,
	                     ce->accepted->envelope.len, FX_TYPE_CONTRIBUTION,
	                     &cenv, NULL) == FX_OK) {
		crypto_generichash(out, 32, cenv->payload.data,
		                   cenv->payload.len, NULL, 0);
		fx_wire_free(&cenv->base);
	}
	if (ce != NULL)
		flexo__ledger__v1__entry__free_unpacked(ce, NULL);
	free(bytes);
	return FX_OK;
}

/* A Withdrawal envelope signed by c naming contribution digest `named`,
 * with sequence `seq` (0: c's next). *env malloc'd, caller frees. */
static inline fx_err fxt_withdrawal_env(fxt_party *c, const uint8_t named[32],
                                        uint64_t seq, uint8_t **env,
                                        size_t *elen, fx_diag *d)
{
	Flexo__V1__Withdrawal m = FLEXO__V1__WITHDRAWAL__INIT;
	const fx_keypair *keys[1] = {&c->kp};
	uint8_t cdigest[32], *body = NULL;
	size_t blen = 0;
	fx_err err;

	memcpy(cdigest, named, 32);
	m.schema = FX_WIRE_SCHEMA;
	m.consortium = (char *)FXT_CONSORTIUM;
	m.contributor_key_id.data = c->kp.id;
	m.contributor_key_id.len = FX_KEY_ID_BYTES;
	m.contribution_digest.data = cdigest;
	m.contribution_digest.len = 32;
	m.sequence = seq != 0 ? seq : c->seq++;
	m.reason = (char *)"opting out";
	m.created = 1700000000;
	if ((err = fx_wire_encode(&m.base, &body, &blen, d)) == FX_OK)
		err = fx_envelope_seal(FX_TYPE_WITHDRAWAL, body, blen, keys, 1,
		                       env, elen, d);
	free(body);
	return err;
}

/* c withdraws the contribution logged at entry `contribution`. */
static inline fx_err fxt_withdrawal(fx_ledger *l, fxt_party *c,
                                    uint64_t contribution, uint64_t *idx,
                                    fx_diag *d)
{
	Flexo__Ledger__V1__Withdrawal w = FLEXO__LEDGER__V1__WITHDRAWAL__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	uint8_t cdigest[32], *env = NULL;
	size_t elen = 0;
	fx_err err;

	/* The digest of the contribution's signed payload, as logged. */
	if ((err = fxt_contribution_digest(l, contribution, cdigest, d)) ||
	    (err = fxt_withdrawal_env(c, cdigest, 0, &env, &elen, d)))
		goto out;
	w.envelope.data = env;
	w.envelope.len = elen;
	w.contribution_index = contribution;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL;
	e.withdrawal = &w;
	err = fx_ledger_append(l, &e, idx, d);
out:
	free(env);
	return err;
}

/* Fills e as a refused withdrawal of request `req` (kept whole when within
 * FX_LEDGER_MAX_REFUSED_ENVELOPE, else by size and digest) with the given
 * gate and evidence; r and h are its storage and must outlive e. */
static inline void fxt_refused_entry(fx_entry *e,
                                     Flexo__Ledger__V1__WithdrawalRefused *r,
                                     uint8_t h[32], const uint8_t *req,
                                     size_t n, const char *gate,
                                     uint64_t evidence)
{
	Flexo__Ledger__V1__WithdrawalRefused r0 =
	    FLEXO__LEDGER__V1__WITHDRAWAL_REFUSED__INIT;
	fx_entry e0 = FLEXO__LEDGER__V1__ENTRY__INIT;

	*r = r0;
	*e = e0;
	crypto_generichash(h, 32, req, n, NULL, 0);
	if (n <= FX_LEDGER_MAX_REFUSED_ENVELOPE) {
		r->envelope.data = (uint8_t *)req;
		r->envelope.len = n;
	}
	r->gate = (char *)gate;
	r->reason = (char *)"refused in a test";
	r->evidence_index = evidence;
	r->received_size = n;
	r->received_blake2b.data = h;
	r->received_blake2b.len = 32;
	e->kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL_REFUSED;
	e->withdrawal_refused = r;
}

static inline fx_err fxt_refused(fx_ledger *l, const uint8_t *req, size_t n,
                                 const char *gate, uint64_t evidence,
                                 uint64_t *idx, fx_diag *d)
{
	Flexo__Ledger__V1__WithdrawalRefused r;
	fx_entry e;
	uint8_t h[32];

	fxt_refused_entry(&e, &r, h, req, n, gate, evidence);
	return fx_ledger_append(l, &e, idx, d);
}

/* A withdrawal by c naming `named` (sequence seq, 0: its next), logged as
 * refused at `gate` with `evidence`. */
static inline fx_err fxt_refused_by(fx_ledger *l, fxt_party *c,
                                    const uint8_t named[32], uint64_t seq,
                                    const char *gate, uint64_t evidence,
                                    uint64_t *idx, fx_diag *d)
{
	uint8_t *env = NULL;
	size_t elen = 0;
	fx_err err = fxt_withdrawal_env(c, named, seq, &env, &elen, d);
	if (err == FX_OK)
		err = fxt_refused(l, env, elen, gate, evidence, idx, d);
	free(env);
	return err;
}

static inline fx_err fxt_assembly_k(fx_ledger *l, uint64_t anchor,
                                    uint64_t *included, size_t n, int top_k,
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
	a.top_k = (uint32_t)top_k;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ASSEMBLY;
	e.assembly = &a;
	return fx_ledger_append(l, &e, idx, d);
}

static inline fx_err fxt_assembly(fx_ledger *l, uint64_t anchor,
                                  uint64_t *included, size_t n,
                                  const uint8_t model_digest[32], uint64_t *idx,
                                  fx_diag *d)
{
	return fxt_assembly_k(l, anchor, included, n, 0, model_digest, idx, d);
}

/* Real, tiny model files for re-assembly: in `work`, an anchor model
 * ("tiny" preset), its public router rows and n experts with distinct
 * weights, each also stored in bs. Paths are written to anchor_path,
 * router_path and expert_paths[k] (256 bytes each); digests to anchor,
 * router. */
static inline fx_err fxt_model_files(const fx_blobstore *bs, const char *work,
                                     int n, char anchor_path[256],
                                     char router_path[256],
                                     char (*expert_paths)[256],
                                     uint8_t anchor[32], uint8_t router[32],
                                     fx_diag *d)
{
	fx_config cfg;
	fx_model m;
	fx_routerpub rp;
	fx_expert x;
	uint8_t dg[32];
	char hex[65];
	fx_err err;
	size_t L, D, F;

	memset(&m, 0, sizeof(m));
	memset(&rp, 0, sizeof(rp));
	if ((err = fx_config_preset("tiny", &cfg, d)) != FX_OK ||
	    (err = fx_model_init(&m, &cfg, false, d)) != FX_OK)
		return err;
	fx_model_init_weights(&m, 5);
	snprintf(anchor_path, 256, "%s/anchor.safetensors", work);
	err = fx_modelfile_save(&m, anchor_path, NULL, 0, d);
	fx_model_release(&m);
	if (err != FX_OK ||
	    (err = fx_blobstore_put_file(bs, anchor_path, anchor, d)))
		return err;
	L = (size_t)cfg.n_layers;
	D = (size_t)cfg.d_model;
	F = (size_t)cfg.d_ff;
	rp.n_layers = cfg.n_layers;
	rp.d_model = cfg.d_model;
	rp.mode = FX_EMBED_SHARED;
	rp.norm = 1.0f;
	rp.windows = 1;
	if ((rp.rows = calloc(L * D, sizeof(float))) == NULL)
		return FX_ENOMEM;
	for (size_t j = 0; j < L * D; j++)
		rp.rows[j] = (float)((j % 7) + 1) * 0.01f;
	snprintf(router_path, 256, "%s/router_pub.safetensors", work);
	err = fx_routerpub_save(&rp, router_path, d);
	free(rp.rows);
	if (err != FX_OK ||
	    (err = fx_blobstore_put_file(bs, router_path, router, d)))
		return err;
	fx_hex(hex, anchor, 32);
	for (int k = 0; k < n; k++) {
		char domain[16];
		if ((err = fx_expert_init(&x, &cfg, d)) != FX_OK)
			return err;
		for (size_t j = 0; j < L * F * D; j++) {
			x.gate[j] = (float)(((j + (size_t)k) % 11) - 5) * 0.01f;
			x.up[j] =
			    (float)(((j * 3 + (size_t)k) % 13) - 6) * 0.01f;
			x.down[j] =
			    (float)(((j * 5 + (size_t)k) % 9) - 4) * 0.01f;
		}
		for (size_t j = 0; j < L * D; j++)
			x.router[j] = (float)((j + (size_t)k) % 5) * 0.02f;
		snprintf(domain, sizeof(domain), "domain%d", k);
		snprintf(expert_paths[k], 256, "%s/expert%d.safetensors", work,
		         k);
		err = fx_expert_set_meta(&x, "anchor_digest", hex, d);
		if (err == FX_OK)
			err = fx_expert_set_meta(&x, "domain", domain, d);
		if (err == FX_OK)
			err = fx_expert_save(&x, expert_paths[k], d);
		fx_expert_release(&x);
		if (err != FX_OK ||
		    (err = fx_blobstore_put_file(bs, expert_paths[k], dg, d)))
			return err;
	}
	return FX_OK;
}

/* An accepted contribution whose payload is the file at path. */
static inline fx_err fxt_accepted_file(fx_ledger *l, fxt_party *c,
                                       const char *path, uint64_t *idx,
                                       fx_diag *d)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	fx_err err;

	if ((err = fx_read_file(path, 64u << 20, &buf, &len, d)) != FX_OK)
		return err;
	err = fxt_accepted(l, c, buf, len, idx, d);
	free(buf);
	return err;
}

/* The served model of these experts (fx_assemble), stored in bs. */
static inline fx_err fxt_served_model(const fx_blobstore *bs, const char *work,
                                      const char *anchor_path,
                                      const char *router_path,
                                      const char *const *experts, int n,
                                      int top_k, uint8_t digest[32], fx_diag *d)
{
	char out[300];
	uint8_t again[32];
	fx_err err;

	snprintf(out, sizeof(out), "%s/served.safetensors", work);
	if ((err = fx_assemble(anchor_path, router_path, experts, n, top_k, out,
	                       digest, d)) != FX_OK)
		return err;
	return fx_blobstore_put_file(bs, out, again, d);
}

#endif
