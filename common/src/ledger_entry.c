/* What a ledger entry proves: its embedded signed documents verified
 * against the roster in force, by the same code for the coordinator (before
 * it appends) and the auditor (after), including the history-free half of a
 * refused withdrawal's reason. Also an allocation-free peek at an encoded
 * entry's kind. */
#include "flexo/ledger.h"

#include <string.h>

#include "flexo/contrib.h"
#include "flexo/release.h"

enum {
	K_ROSTER = FLEXO__LEDGER__V1__ENTRY__KIND_ROSTER,
	K_ANCHOR = FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR,
	K_ACCEPTED = FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED,
	K_REJECTED = FLEXO__LEDGER__V1__ENTRY__KIND_REJECTED,
	K_WITHDRAWAL = FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL,
	K_ASSEMBLY = FLEXO__LEDGER__V1__ENTRY__KIND_ASSEMBLY,
	K_REFUSED = FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL_REFUSED,
};

static const char *const refusal_names[FX_REFUSAL_COUNT] = {
    [FX_REFUSAL_FORMAT] = "format",
    [FX_REFUSAL_UNKNOWN] = "unknown-contribution",
    [FX_REFUSAL_SIGNATURE] = "signature",
    [FX_REFUSAL_NOT_OWNER] = "not-owner",
    [FX_REFUSAL_REPLAY] = "replay",
    [FX_REFUSAL_ALREADY_WITHDRAWN] = "already-withdrawn",
};

const char *fx_refusal_name(fx_refusal r)
{
	return (unsigned)r < FX_REFUSAL_COUNT ? refusal_names[r] : "?";
}

int fx_refusal_parse(const char *name)
{
	for (int i = 0; name != NULL && i < FX_REFUSAL_COUNT; i++)
		if (strcmp(name, refusal_names[i]) == 0)
			return i;
	return -1;
}

fx_err fx_ledger_check_roster(const fx_entry *e, const fx_roster *prev,
                              fx_roster *out, fx_diag *diag)
{
	const ProtobufCBinaryData *env;

	if ((int)e->kind_case != K_ROSTER || e->roster == NULL)
		return fx_diag_set(diag, FX_EINVAL, "not a roster entry");
	env = &e->roster->envelope;
	if (prev == NULL)
		return fx_roster_verify_initial(out, env->data, env->len,
		                                e->time_unix, diag);
	return fx_roster_verify_update(prev, out, env->data, env->len,
	                               e->time_unix, diag);
}

/* A contribution: fx_contrib_verify (the gate's own check), and the
 * logged payload digest must be the one the contributor signed. */
static fx_err check_contribution(const fx_entry *e, const fx_roster *roster,
                                 fx_entry_facts *f, fx_diag *diag)
{
	const Flexo__Ledger__V1__ContributionAccepted *a = e->accepted;
	fx_contrib c;
	fx_err err;

	if (a->payload_digest.len != FX_BLAKE2B_BYTES)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "payload digest is %zu bytes, not 32",
		                   a->payload_digest.len);
	if (roster == NULL)
		return fx_diag_set(diag, FX_EPERM,
		                   "contribution before any roster");
	fx_contrib_init(&c);
	err = fx_contrib_verify(&c, a->envelope.data, a->envelope.len, roster,
	                        e->time_unix, NULL, diag);
	if (err == FX_OK &&
	    memcmp(c.msg->payload_blake2b.data, a->payload_digest.data,
	           FX_BLAKE2B_BYTES) != 0)
		err = fx_diag_set(diag, FX_EMISMATCH,
		                  "the logged payload digest is not the one "
		                  "contributor %s signed",
		                  c.signer);
	if (err == FX_OK) {
		f->has_signer = 1;
		memcpy(f->signer, c.signer_pk, FX_PK_BYTES);
		memcpy(f->signer_name, c.signer, sizeof(f->signer_name));
		memcpy(f->doc_digest, c.digest, FX_BLAKE2B_BYTES);
		memcpy(f->release_digest, c.msg->anchor_release_digest.data,
		       FX_BLAKE2B_BYTES);
		f->has_blob = 1;
		memcpy(f->blob, a->payload_digest.data, FX_BLAKE2B_BYTES);
	}
	fx_contrib_release(&c);
	return err;
}

/* A withdrawal: fx_withdrawal_verify; whose contribution it withdraws is
 * history, checked by the caller (same signer, digest, not yet withdrawn). */
static fx_err check_withdrawal(const fx_entry *e, const fx_roster *roster,
                               fx_entry_facts *f, fx_diag *diag)
{
	const ProtobufCBinaryData *env = &e->withdrawal->envelope;
	Flexo__V1__Withdrawal *w = NULL;
	const fx_member *m;
	fx_err err;

	if (roster == NULL)
		return fx_diag_set(diag, FX_EPERM,
		                   "withdrawal before any roster");
	err = fx_withdrawal_verify(&w, f->doc_digest, env->data, env->len,
	                           roster, e->time_unix, NULL, NULL, diag);
	if (err != FX_OK)
		return err;
	/* The signer: the roster member whose key ID the verified
	 * withdrawal carries (fx_withdrawal_verify checked they agree). */
	m = NULL;
	for (size_t i = 0; i < roster->n_members; i++)
		if (memcmp(roster->members[i].id, w->contributor_key_id.data,
		           FX_KEY_ID_BYTES) == 0)
			m = &roster->members[i];
	if (m == NULL) {
		err = fx_diag_set(diag, FX_EINTERNAL,
		                  "withdrawal signer vanished from the roster");
	} else {
		f->has_signer = 1;
		memcpy(f->signer, m->pk, FX_PK_BYTES);
		memcpy(f->signer_name, m->name, sizeof(f->signer_name));
		memcpy(f->named_digest, w->contribution_digest.data,
		       FX_BLAKE2B_BYTES);
		f->ref = e->withdrawal->contribution_index;
	}
	fx_wire_free(&w->base);
	return err;
}

/* The logged bytes of a refused withdrawal agree with its stated size and
 * digest: all of them when kept, none (but the size says why) when not. */
static fx_err check_received(const Flexo__Ledger__V1__WithdrawalRefused *r,
                             fx_diag *diag)
{
	uint8_t h[FX_BLAKE2B_BYTES];

	if (r->received_blake2b.len != FX_BLAKE2B_BYTES)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "refused withdrawal: received_blake2b is %zu "
		    "bytes, not 32",
		    r->received_blake2b.len);
	if (r->envelope.len > FX_LEDGER_MAX_REFUSED_ENVELOPE)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "refused withdrawal: keeps %zu bytes, over "
		                   "the %u-byte bound",
		                   r->envelope.len,
		                   FX_LEDGER_MAX_REFUSED_ENVELOPE);
	if (r->envelope.len == 0 && r->received_size > 0) {
		if (r->received_size <= FX_LEDGER_MAX_REFUSED_ENVELOPE)
			return fx_diag_set(
			    diag, FX_EFORMAT,
			    "refused withdrawal: a request of %llu bytes, "
			    "within the bound, was not kept",
			    (unsigned long long)r->received_size);
		return FX_OK; /* only its size and digest are on record */
	}
	if (r->received_size != r->envelope.len)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "refused withdrawal: keeps %zu bytes of a "
		                   "request of %llu",
		                   r->envelope.len,
		                   (unsigned long long)r->received_size);
	fx_blake2b(h, r->envelope.data, r->envelope.len);
	if (memcmp(h, r->received_blake2b.data, FX_BLAKE2B_BYTES) != 0)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "refused withdrawal: the kept bytes do not "
		                   "hash to received_blake2b");
	return FX_OK;
}

/* A refused withdrawal: what can be said without history. Whether the
 * request decodes, names a contribution and verifies against the roster in
 * force at the entry's time, and that the stated gate agrees with that:
 * "format" does not decode, every other gate does; "signature" does not
 * verify; not-owner, replay and already-withdrawn do. */
static fx_err check_refused(const fx_entry *e, const fx_roster *roster,
                            fx_entry_facts *f, fx_diag *diag)
{
	const Flexo__Ledger__V1__WithdrawalRefused *r = e->withdrawal_refused;
	Flexo__V1__Envelope *env = NULL;
	ProtobufCMessage *m = NULL;
	Flexo__V1__Withdrawal *w = NULL;
	int g = fx_refusal_parse(r->gate);
	fx_err err;

	if (g < 0)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "refused withdrawal: gate '%.64s' is none "
		    "of format, unknown-contribution, signature, "
		    "not-owner, replay, already-withdrawn",
		    r->gate ? r->gate : "");
	if (r->reason == NULL || r->reason[0] == 0)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "refused withdrawal without a reason");
	if ((err = check_received(r, diag)) != FX_OK)
		return err;
	f->refusal = g;
	f->ref = r->evidence_index;
	if (r->envelope.len > 0 &&
	    fx_envelope_open(r->envelope.data, r->envelope.len,
	                     FX_TYPE_WITHDRAWAL, &env, NULL) == FX_OK &&
	    fx_wire_decode(&flexo__v1__withdrawal__descriptor,
	                   env->payload.data, env->payload.len, FX_WIRE_DOC_MAX,
	                   &m, NULL) == FX_OK) {
		w = (Flexo__V1__Withdrawal *)m;
		f->opens = 1;
		fx_blake2b(f->doc_digest, env->payload.data, env->payload.len);
		if (w->contribution_digest.len == FX_BLAKE2B_BYTES) {
			f->has_named = 1;
			memcpy(f->named_digest, w->contribution_digest.data,
			       FX_BLAKE2B_BYTES);
		}
	}
	if (f->opens && roster != NULL) {
		Flexo__V1__Withdrawal *v = NULL;
		if (fx_withdrawal_verify(&v, NULL, r->envelope.data,
		                         r->envelope.len, roster, e->time_unix,
		                         NULL, NULL, NULL) == FX_OK) {
			for (size_t i = 0; i < roster->n_members; i++) {
				const fx_member *mb = &roster->members[i];
				if (memcmp(mb->id, v->contributor_key_id.data,
				           FX_KEY_ID_BYTES) != 0)
					continue;
				f->has_signer = 1;
				memcpy(f->signer, mb->pk, FX_PK_BYTES);
				memcpy(f->signer_name, mb->name,
				       sizeof(f->signer_name));
			}
			f->sequence = v->sequence;
			fx_wire_free(&v->base);
		}
	}
	if (g == FX_REFUSAL_FORMAT && f->opens)
		err =
		    fx_diag_set(diag, FX_EMISMATCH,
		                "refused as 'format', but the request decodes "
		                "as a withdrawal");
	else if (g != FX_REFUSAL_FORMAT && !f->opens)
		err = fx_diag_set(diag, FX_EMISMATCH,
		                  "refused as '%s', but the request does not "
		                  "decode as a withdrawal (that is 'format')",
		                  refusal_names[g]);
	else if (g == FX_REFUSAL_SIGNATURE && f->has_signer)
		err = fx_diag_set(diag, FX_EMISMATCH,
		                  "refused as 'signature', but the withdrawal "
		                  "verifies: signed by contributor '%s' of the "
		                  "roster in force",
		                  f->signer_name);
	else if (g > FX_REFUSAL_SIGNATURE && !f->has_signer)
		err =
		    fx_diag_set(diag, FX_EMISMATCH,
		                "refused as '%s', but the withdrawal does not "
		                "verify against the roster in force (that is "
		                "'signature')",
		                refusal_names[g]);
	else if (g <= FX_REFUSAL_SIGNATURE && r->evidence_index != 0)
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "refused as '%s' with evidence entry %llu: "
		                  "that reason points at no entry",
		                  refusal_names[g],
		                  (unsigned long long)r->evidence_index);
	fx_wire_free(m);
	if (env != NULL)
		fx_wire_free(&env->base);
	return err;
}

/* The sequence number of the document entry e carries, if signed by pk;
 * FX_ENOTFOUND otherwise. */
static fx_err signed_sequence(const fx_entry *e, const uint8_t pk[FX_PK_BYTES],
                              uint64_t *seq)
{
	const ProtobufCBinaryData *b;
	const ProtobufCMessageDescriptor *desc;
	const char *type;
	Flexo__V1__Envelope *env = NULL;
	ProtobufCMessage *m = NULL;
	const ProtobufCBinaryData *kid;
	uint8_t id[FX_KEY_ID_BYTES];
	uint64_t s;
	fx_err err = FX_ENOTFOUND;

	switch ((int)e->kind_case) {
	case K_ACCEPTED:
		b = &e->accepted->envelope;
		break;
	case K_REJECTED:
		b = &e->rejected->envelope;
		break;
	case K_WITHDRAWAL:
		b = &e->withdrawal->envelope;
		break;
	case K_REFUSED:
		b = &e->withdrawal_refused->envelope;
		break;
	default:
		return FX_ENOTFOUND;
	}
	if ((int)e->kind_case == K_ACCEPTED ||
	    (int)e->kind_case == K_REJECTED) {
		type = FX_TYPE_CONTRIBUTION;
		desc = &flexo__v1__contribution__descriptor;
	} else {
		type = FX_TYPE_WITHDRAWAL;
		desc = &flexo__v1__withdrawal__descriptor;
	}
	if (b->len == 0 ||
	    fx_envelope_open(b->data, b->len, type, &env, NULL) != FX_OK)
		return FX_ENOTFOUND;
	if (fx_envelope_verify_key(env, pk) != 0 ||
	    fx_wire_decode(desc, env->payload.data, env->payload.len,
	                   FX_WIRE_DOC_MAX, &m, NULL) != FX_OK)
		goto out;
	if (desc == &flexo__v1__contribution__descriptor) {
		kid = &((Flexo__V1__Contribution *)m)->contributor_key_id;
		s = ((Flexo__V1__Contribution *)m)->sequence;
	} else {
		kid = &((Flexo__V1__Withdrawal *)m)->contributor_key_id;
		s = ((Flexo__V1__Withdrawal *)m)->sequence;
	}
	fx_key_id(id, pk);
	if (kid->len == FX_KEY_ID_BYTES &&
	    memcmp(kid->data, id, FX_KEY_ID_BYTES) == 0) {
		*seq = s;
		err = FX_OK;
	}
out:
	fx_wire_free(m);
	fx_wire_free(&env->base);
	return err;
}

fx_err fx_ledger_check_entry(const fx_entry *e, const fx_roster *roster,
                             fx_entry_facts *out, fx_diag *diag)
{
	fx_entry_facts f;
	fx_err err = FX_OK;

	memset(&f, 0, sizeof(f));
	f.kind = (int)e->kind_case;
	switch (f.kind) {
	case K_ANCHOR: {
		fx_release rel;
		if (roster == NULL)
			return fx_diag_set(diag, FX_EPERM,
			                   "anchor release before any roster");
		fx_release_init(&rel);
		err = fx_release_verify(&rel, e->anchor->envelope.data,
		                        e->anchor->envelope.len, roster,
		                        e->time_unix, 0, NULL, diag);
		if (err == FX_OK) {
			const fx_member *m = NULL;
			for (size_t i = 0; i < roster->n_members; i++)
				if (strcmp(roster->members[i].name,
				           rel.signer) == 0)
					m = &roster->members[i];
			f.ref = rel.msg->release_version;
			memcpy(f.doc_digest, rel.digest, FX_BLAKE2B_BYTES);
			if (m != NULL) {
				f.has_signer = 1;
				memcpy(f.signer, m->pk, FX_PK_BYTES);
			}
			memcpy(f.signer_name, rel.signer,
			       sizeof(f.signer_name));
		}
		fx_release_release(&rel);
		break;
	}
	case K_ACCEPTED:
		err = check_contribution(e, roster, &f, diag);
		break;
	case K_REJECTED:
		if (e->rejected->reason == NULL || e->rejected->reason[0] == 0)
			err = fx_diag_set(diag, FX_EFORMAT,
			                  "rejected contribution without a "
			                  "reason");
		break;
	case K_WITHDRAWAL:
		err = check_withdrawal(e, roster, &f, diag);
		break;
	case K_REFUSED:
		err = check_refused(e, roster, &f, diag);
		break;
	case K_ASSEMBLY:
		if (e->assembly->model_digest.len != FX_BLAKE2B_BYTES) {
			err = fx_diag_set(diag, FX_EFORMAT,
			                  "assembly model digest is %zu bytes",
			                  e->assembly->model_digest.len);
			break;
		}
		f.has_blob = 1;
		memcpy(f.blob, e->assembly->model_digest.data,
		       FX_BLAKE2B_BYTES);
		break;
	case K_ROSTER:
		return fx_diag_set(diag, FX_EINVAL,
		                   "roster entries are checked with "
		                   "fx_ledger_check_roster");
	default:
		return fx_diag_set(diag, FX_EFORMAT, "entry has no kind");
	}
	if (err == FX_OK)
		*out = f;
	return err;
}

/* Reads a base-128 varint; 0 on a truncated or over-long one. */
static size_t varint(const uint8_t *p, size_t n, uint64_t *v)
{
	uint64_t x = 0;
	for (size_t i = 0; i < n && i < 10; i++) {
		x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = x;
			return i + 1;
		}
	}
	return 0;
}

int fx_ledger_peek_kind(const uint8_t *p, size_t n)
{
	int kind = 0;
	size_t off = 0;

	while (off < n) {
		uint64_t key, v;
		size_t k = varint(p + off, n - off, &key);
		if (k == 0)
			return -1;
		off += k;
		switch (key & 7) {
		case 0:
			if ((k = varint(p + off, n - off, &v)) == 0)
				return -1;
			off += k;
			break;
		case 1:
			if (n - off < 8)
				return -1;
			off += 8;
			break;
		case 5:
			if (n - off < 4)
				return -1;
			off += 4;
			break;
		case 2:
			if ((k = varint(p + off, n - off, &v)) == 0 ||
			    v > n - off - k)
				return -1;
			off += k + (size_t)v;
			if ((key >> 3) >= K_ROSTER && (key >> 3) <= K_REFUSED)
				kind = (int)(key >> 3);
			break;
		default:
			return -1;
		}
	}
	return kind;
}

bool fx_ledger_entry_shows_sequence(const uint8_t *entry, size_t len,
                                    const uint8_t pk[FX_PK_BYTES],
                                    uint64_t at_least)
{
	fx_entry *e = flexo__ledger__v1__entry__unpack(NULL, len, entry);
	uint64_t s = 0;
	bool ok = e != NULL && signed_sequence(e, pk, &s) == FX_OK &&
	          s >= at_least;

	if (e != NULL)
		flexo__ledger__v1__entry__free_unpacked(e, NULL);
	return ok;
}
