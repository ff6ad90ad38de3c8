/* Contribution manifests: creation by the contributor, verification shared
 * by the coordinator and the auditor (see contrib.h). Both sides run the
 * same field rules (check_fields), so a manifest that a contributor can sign
 * is exactly one the coordinator can accept on form. */
#include "flexo/contrib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/config.h"
#include "flexo/expert.h"

void fx_contrib_init(fx_contrib *c)
{
	memset(c, 0, sizeof(*c));
}

void fx_contrib_release(fx_contrib *c)
{
	if (c->msg != NULL)
		fx_wire_free(&c->msg->base);
	fx_contrib_init(c);
}

static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static fx_err check_fields(const Flexo__V1__Contribution *m, fx_diag *diag)
{
	const Flexo__V1__RouterRows *rr = m->router;
	const Flexo__V1__TrainingMeta *t = m->training;

	if (m->schema != FX_WIRE_SCHEMA)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "contribution schema %u, expected %d",
		                   m->schema, FX_WIRE_SCHEMA);
	if (!printable(m->domain) || !printable(m->consortium))
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "contribution domain or consortium has a control "
		    "character");
	if (rr == NULL || rr->layers < 1 || rr->layers > FX_MAX_LAYERS ||
	    rr->dim < 1 || rr->dim > FX_MAX_DIM ||
	    rr->n_values != (size_t)rr->layers * rr->dim)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "contribution router rows are not layers x dim "
		    "values");
	for (size_t i = 0; i < rr->n_values; i++)
		if (!isfinite(rr->values[i]))
			return fx_diag_set(
			    diag, FX_ENUMERIC,
			    "contribution router value %zu is not finite", i);
	if (m->n_bias != 0 && m->n_bias != rr->layers)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "contribution has %zu bias values for %u layers", m->n_bias,
		    rr->layers);
	for (size_t i = 0; i < m->n_bias; i++)
		if (!isfinite(m->bias[i]) || m->bias[i] > 0.0f)
			return fx_diag_set(
			    diag, FX_ENUMERIC,
			    "contribution bias %zu is %g, must be finite "
			    "and <= 0",
			    i, (double)m->bias[i]);
	if (m->payload_size == 0)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "contribution payload is empty");
	if (t != NULL) {
		if (!isfinite(t->heldout_bpb) || t->heldout_bpb < 0)
			return fx_diag_set(
			    diag, FX_ENUMERIC,
			    "contribution held-out loss %g is not a "
			    "finite non-negative number",
			    t->heldout_bpb);
		for (size_t i = 0; i < t->n_hyperparameters; i++)
			if (i > 0 && strcmp(t->hyperparameters[i - 1]->key,
			                    t->hyperparameters[i]->key) >= 0)
				return fx_diag_set(
				    diag, FX_EFORMAT,
				    "contribution hyper-parameters not "
				    "sorted by unique key at '%s'",
				    t->hyperparameters[i]->key);
	}
	return FX_OK;
}

static int cmp_kv(const void *a, const void *b)
{
	const Flexo__V1__KeyValue *x = *(Flexo__V1__KeyValue *const *)a;
	const Flexo__V1__KeyValue *y = *(Flexo__V1__KeyValue *const *)b;
	return strcmp(x->key, y->key);
}

fx_err fx_contrib_create(const fx_contrib_params *p, const fx_keypair *key,
                         uint8_t **env, size_t *len, fx_diag *diag)
{
	Flexo__V1__Contribution m = FLEXO__V1__CONTRIBUTION__INIT;
	Flexo__V1__RouterRows rr = FLEXO__V1__ROUTER_ROWS__INIT;
	Flexo__V1__TrainingMeta t = FLEXO__V1__TRAINING_META__INIT;
	Flexo__V1__KeyValue kv[FX_CONTRIB_MAX_HYPER],
	    *kvp[FX_CONTRIB_MAX_HYPER];
	const fx_keypair *signers[1] = {key};
	uint8_t payload_hash[FX_BLAKE2B_BYTES];
	uint8_t *body = NULL;
	size_t body_len = 0;
	uint64_t size = 0;
	fx_err err;

	if (p->n_hyper > FX_CONTRIB_MAX_HYPER)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "%zu hyper-parameters, at most %d",
		                   p->n_hyper, FX_CONTRIB_MAX_HYPER);
	if (p->layers == 0 || p->dim == 0 || p->router == NULL)
		return fx_diag_set(diag, FX_EINVAL, "router rows missing");
	if ((err = fx_blake2b_file(p->payload_path, payload_hash, &size,
	                           diag)) != FX_OK)
		return err;
	for (size_t i = 0; i < p->n_hyper; i++) {
		flexo__v1__key_value__init(&kv[i]);
		kv[i].key = (char *)p->hyper[i].key;
		kv[i].value = (char *)p->hyper[i].value;
		kvp[i] = &kv[i];
	}
	qsort(kvp, p->n_hyper, sizeof(*kvp), cmp_kv);
	t.steps = p->steps;
	t.tokens = p->tokens;
	t.seed = p->seed;
	t.hyperparameters = kvp;
	t.n_hyperparameters = p->n_hyper;
	t.heldout_bpb = p->heldout_bpb;
	t.heldout_bytes = p->heldout_bytes;
	rr.layers = p->layers;
	rr.dim = p->dim;
	rr.values = (float *)p->router;
	rr.n_values = (size_t)p->layers * p->dim;
	m.schema = FX_WIRE_SCHEMA;
	m.consortium = (char *)p->consortium;
	m.contributor_key_id.data = (uint8_t *)key->id;
	m.contributor_key_id.len = FX_KEY_ID_BYTES;
	m.anchor_release_digest.data = (uint8_t *)p->release_digest;
	m.anchor_release_digest.len = FX_BLAKE2B_BYTES;
	m.anchor_release_version = p->release_version;
	m.domain = (char *)p->domain;
	m.sequence = p->sequence;
	m.payload_size = size;
	m.payload_blake2b.data = payload_hash;
	m.payload_blake2b.len = FX_BLAKE2B_BYTES;
	m.router = &rr;
	m.bias = (float *)p->bias;
	m.n_bias = p->bias ? p->layers : 0;
	m.training = &t;
	m.created = p->created;
	if ((err = check_fields(&m, diag)) != FX_OK)
		return err;
	if ((err = fx_wire_encode(&m.base, &body, &body_len, diag)) != FX_OK)
		return err;
	err = fx_envelope_seal(FX_TYPE_CONTRIBUTION, body, body_len, signers, 1,
	                       env, len, diag);
	free(body);
	return err;
}

static fx_err check_expect(const Flexo__V1__Contribution *m,
                           const fx_contrib_expect *x, fx_diag *diag)
{
	char a[2 * FX_BLAKE2B_BYTES + 1];

	if (x->release_digest != NULL &&
	    memcmp(x->release_digest, m->anchor_release_digest.data,
	           FX_BLAKE2B_BYTES) != 0)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "contribution was trained on anchor release %s "
		    "(v%llu), not the current one",
		    fx_hex(a, m->anchor_release_digest.data, 8),
		    (unsigned long long)m->anchor_release_version);
	if ((x->layers && x->layers != m->router->layers) ||
	    (x->dim && x->dim != m->router->dim))
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "contribution router rows are %u x %u, the anchor "
		    "needs %u x %u",
		    m->router->layers, m->router->dim, x->layers, x->dim);
	if (x->last_sequence != NULL && m->sequence <= *x->last_sequence)
		return fx_diag_set(
		    diag, FX_EROLLBACK,
		    "contribution sequence %llu is not above the last "
		    "seen %llu (replay?)",
		    (unsigned long long)m->sequence,
		    (unsigned long long)*x->last_sequence);
	if (x->payload != NULL || x->payload_digest != NULL) {
		uint8_t h[FX_BLAKE2B_BYTES];
		uint64_t size = x->payload ? x->payload_len : x->payload_size;
		if (x->payload != NULL)
			fx_blake2b(h, x->payload, x->payload_len);
		else
			memcpy(h, x->payload_digest, FX_BLAKE2B_BYTES);
		if (size != m->payload_size)
			return fx_diag_set(
			    diag, FX_EMISMATCH,
			    "payload is %llu bytes, the manifest says %llu",
			    (unsigned long long)size,
			    (unsigned long long)m->payload_size);
		if (memcmp(h, m->payload_blake2b.data, FX_BLAKE2B_BYTES) != 0)
			return fx_diag_set(
			    diag, FX_EMISMATCH,
			    "payload BLAKE2b-256 does not match the "
			    "manifest");
	}
	return FX_OK;
}

fx_err fx_contrib_verify(fx_contrib *out, const uint8_t *env, size_t len,
                         const fx_roster *roster, int64_t now,
                         const fx_contrib_expect *expect, fx_diag *diag)
{
	Flexo__V1__Envelope *e = NULL;
	ProtobufCMessage *pm = NULL;
	Flexo__V1__Contribution *m;
	const fx_member *signer = NULL;
	fx_err err;

	if ((err = fx_envelope_open(env, len, FX_TYPE_CONTRIBUTION, &e,
	                            diag)) != FX_OK)
		return err;
	if (e->n_signatures == 0) {
		err = fx_diag_set(diag, FX_EBADSIG, "contribution is unsigned");
		goto out;
	}
	err = fx_roster_find_signer(roster, e, FX_ROLE_CONTRIBUTOR, now,
	                            &signer, diag);
	if (err != FX_OK) {
		fx_diag_prefix(diag, "contribution");
		goto out;
	}
	err = fx_wire_decode(&flexo__v1__contribution__descriptor,
	                     e->payload.data, e->payload.len, FX_WIRE_DOC_MAX,
	                     &pm, diag);
	if (err != FX_OK)
		goto out;
	m = (Flexo__V1__Contribution *)pm;
	if ((err = check_fields(m, diag)) != FX_OK)
		goto out;
	if (memcmp(m->contributor_key_id.data, signer->id, FX_KEY_ID_BYTES) !=
	    0) {
		err = fx_diag_set(
		    diag, FX_EMISMATCH,
		    "contribution names another contributor key than "
		    "its signer '%s'",
		    signer->name);
		goto out;
	}
	if (strcmp(m->consortium, roster->consortium) != 0) {
		err = fx_diag_set(
		    diag, FX_EMISMATCH,
		    "contribution is for consortium '%s', the roster "
		    "is '%s'",
		    m->consortium, roster->consortium);
		goto out;
	}
	if (expect != NULL && (err = check_expect(m, expect, diag)) != FX_OK)
		goto out;
	fx_contrib_release(out);
	fx_blake2b(out->digest, e->payload.data, e->payload.len);
	snprintf(out->signer, sizeof(out->signer), "%s", signer->name);
	memcpy(out->signer_pk, signer->pk, FX_PK_BYTES);
	out->msg = m;
	pm = NULL;
out:
	fx_wire_free(pm);
	fx_wire_free(&e->base);
	return err;
}

fx_err fx_withdrawal_create(const fx_withdrawal_params *p,
                            const fx_keypair *key, uint8_t **env, size_t *len,
                            fx_diag *diag)
{
	Flexo__V1__Withdrawal m = FLEXO__V1__WITHDRAWAL__INIT;
	const fx_keypair *signers[1] = {key};
	uint8_t *body = NULL;
	size_t body_len = 0;
	fx_err err;

	m.schema = FX_WIRE_SCHEMA;
	m.consortium = (char *)p->consortium;
	m.contributor_key_id.data = (uint8_t *)key->id;
	m.contributor_key_id.len = FX_KEY_ID_BYTES;
	m.contribution_digest.data = (uint8_t *)p->contribution_digest;
	m.contribution_digest.len = FX_BLAKE2B_BYTES;
	m.sequence = p->sequence;
	m.reason = (char *)(p->reason ? p->reason : "");
	m.created = p->created;
	if (!printable(m.reason))
		return fx_diag_set(diag, FX_EINVAL,
		                   "withdrawal reason has a control character");
	if ((err = fx_wire_encode(&m.base, &body, &body_len, diag)) != FX_OK)
		return err;
	err = fx_envelope_seal(FX_TYPE_WITHDRAWAL, body, body_len, signers, 1,
	                       env, len, diag);
	free(body);
	return err;
}

fx_err fx_withdrawal_verify(Flexo__V1__Withdrawal **out,
                            uint8_t digest[FX_BLAKE2B_BYTES],
                            const uint8_t *env, size_t len,
                            const fx_roster *roster, int64_t now,
                            const uint8_t *owner_pk,
                            const uint64_t *last_sequence, fx_diag *diag)
{
	Flexo__V1__Envelope *e = NULL;
	ProtobufCMessage *pm = NULL;
	Flexo__V1__Withdrawal *m;
	const fx_member *signer = NULL;
	fx_err err;

	if ((err = fx_envelope_open(env, len, FX_TYPE_WITHDRAWAL, &e, diag)) !=
	    FX_OK)
		return err;
	if (e->n_signatures == 0) {
		err = fx_diag_set(diag, FX_EBADSIG, "withdrawal is unsigned");
		goto out;
	}
	err = fx_roster_find_signer(roster, e, FX_ROLE_CONTRIBUTOR, now,
	                            &signer, diag);
	if (err != FX_OK) {
		fx_diag_prefix(diag, "withdrawal");
		goto out;
	}
	err =
	    fx_wire_decode(&flexo__v1__withdrawal__descriptor, e->payload.data,
	                   e->payload.len, FX_WIRE_DOC_MAX, &pm, diag);
	if (err != FX_OK)
		goto out;
	m = (Flexo__V1__Withdrawal *)pm;
	if (m->schema != FX_WIRE_SCHEMA || !printable(m->reason)) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "withdrawal schema %u or reason is malformed",
		                  m->schema);
		goto out;
	}
	if (memcmp(m->contributor_key_id.data, signer->id, FX_KEY_ID_BYTES) !=
	        0 ||
	    strcmp(m->consortium, roster->consortium) != 0) {
		err = fx_diag_set(
		    diag, FX_EMISMATCH,
		    "withdrawal names another key or consortium than "
		    "its signer '%s'",
		    signer->name);
		goto out;
	}
	if (owner_pk != NULL &&
	    memcmp(owner_pk, signer->pk, FX_PK_BYTES) != 0) {
		err = fx_diag_set(
		    diag, FX_EPERM,
		    "withdrawal signed by '%s', who did not make that "
		    "contribution",
		    signer->name);
		goto out;
	}
	if (last_sequence != NULL && m->sequence <= *last_sequence) {
		err = fx_diag_set(
		    diag, FX_EROLLBACK,
		    "withdrawal sequence %llu is not above the last "
		    "seen %llu (replay?)",
		    (unsigned long long)m->sequence,
		    (unsigned long long)*last_sequence);
		goto out;
	}
	if (digest != NULL)
		fx_blake2b(digest, e->payload.data, e->payload.len);
	*out = m;
	pm = NULL;
out:
	fx_wire_free(pm);
	fx_wire_free(&e->base);
	return err;
}

/* A non-negative integer written by the trainer with "%.9g". */
static fx_err meta_u64(const fx_expert *x, const char *key, uint64_t *out,
                       fx_diag *diag)
{
	const char *v = fx_expert_meta(x, key);
	char *end = NULL;
	double d;

	if (v == NULL) {
		*out = 0;
		return FX_OK;
	}
	d = strtod(v, &end);
	if (end == v || *end != '\0' || !(d >= 0) || d > 1.8e19)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "expert metadata %s = \"%.32s\" is not a count", key, v);
	*out = (uint64_t)d;
	return FX_OK;
}

fx_err fx_contrib_from_expert(const char *expert_path, const fx_release *rel,
                              uint64_t sequence, int64_t created,
                              const fx_keypair *key, uint8_t **env, size_t *len,
                              fx_diag *diag)
{
	static const char *const fields[] = {"train.steps", "train.tokens",
	                                     "train.seed", "train.heldout_bpb"};
	const Flexo__V1__AnchorRelease *m = rel->msg;
	fx_kv hyper[FX_CONTRIB_MAX_HYPER];
	char want[2 * FX_BLAKE2B_BYTES + 1];
	const char *digest, *domain, *bpb;
	fx_contrib_params p;
	fx_expert x;
	fx_err err;

	memset(&x, 0, sizeof(x));
	memset(&p, 0, sizeof(p));
	if ((err = fx_expert_load(&x, expert_path, diag)) != FX_OK)
		return err;
	digest = fx_expert_meta(&x, "anchor_digest");
	fx_hex(want, m->anchor_blake2b.data, FX_BLAKE2B_BYTES);
	if (digest == NULL || strcmp(digest, want) != 0) {
		err =
		    fx_diag_set(diag, FX_EMISMATCH,
		                "%s was trained from anchor %.16s, not release "
		                "v%llu's anchor %.16s",
		                expert_path, digest ? digest : "(unstated)",
		                (unsigned long long)m->release_version, want);
		goto out;
	}
	if ((uint32_t)x.cfg.n_layers != m->router_pub->layers ||
	    (uint32_t)x.cfg.d_model != m->router_pub->dim) {
		err = fx_diag_set(
		    diag, FX_EMISMATCH,
		    "%s has %d layers of width %d, the release %u x %u",
		    expert_path, x.cfg.n_layers, x.cfg.d_model,
		    m->router_pub->layers, m->router_pub->dim);
		goto out;
	}
	domain = fx_expert_meta(&x, "domain");
	if (domain == NULL) {
		err = fx_diag_set(diag, FX_EFORMAT, "%s states no domain",
		                  expert_path);
		goto out;
	}
	if ((err = meta_u64(&x, "train.steps", &p.steps, diag)) != FX_OK ||
	    (err = meta_u64(&x, "train.tokens", &p.tokens, diag)) != FX_OK ||
	    (err = meta_u64(&x, "train.seed", &p.seed, diag)) != FX_OK)
		goto out;
	bpb = fx_expert_meta(&x, "train.heldout_bpb");
	p.heldout_bpb = bpb ? strtod(bpb, NULL) : 0.0;
	for (int i = 0; i < x.n_meta; i++) {
		int is_field = 0;
		if (strncmp(x.meta[i].key, "train.", 6) != 0)
			continue;
		for (size_t k = 0; k < sizeof(fields) / sizeof(*fields); k++)
			is_field |= strcmp(x.meta[i].key, fields[k]) == 0;
		if (is_field)
			continue;
		if (p.n_hyper == FX_CONTRIB_MAX_HYPER) {
			err =
			    fx_diag_set(diag, FX_ETOOBIG,
			                "%s has more than %d training settings",
			                expert_path, FX_CONTRIB_MAX_HYPER);
			goto out;
		}
		hyper[p.n_hyper].key = x.meta[i].key;
		hyper[p.n_hyper].value = x.meta[i].value;
		p.n_hyper++;
	}
	p.consortium = m->consortium;
	p.release_digest = rel->digest;
	p.release_version = m->release_version;
	p.domain = domain;
	p.sequence = sequence;
	p.payload_path = expert_path;
	p.layers = (uint32_t)x.cfg.n_layers;
	p.dim = (uint32_t)x.cfg.d_model;
	p.router = x.router;
	p.bias = x.bias;
	p.hyper = hyper;
	p.created = created;
	err = fx_contrib_create(&p, key, env, len, diag);
out:
	fx_expert_release(&x);
	return err;
}
