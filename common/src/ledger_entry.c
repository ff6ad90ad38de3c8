/* What a ledger entry proves: its embedded signed documents verified
 * against the roster in force, by the same code for the coordinator (before
 * it appends) and the auditor (after). Also a allocation-free peek at an
 * encoded entry's kind. */
#include "flexo/ledger.h"

#include <string.h>

#include "flexo/release.h"

enum {
	K_ROSTER = FLEXO__LEDGER__V1__ENTRY__KIND_ROSTER,
	K_ANCHOR = FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR,
	K_ACCEPTED = FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED,
	K_REJECTED = FLEXO__LEDGER__V1__ENTRY__KIND_REJECTED,
	K_WITHDRAWAL = FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL,
	K_ASSEMBLY = FLEXO__LEDGER__V1__ENTRY__KIND_ASSEMBLY,
};

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

/* Opens a contributor-signed envelope of `type`, finds its signer in the
 * roster and decodes its payload as `desc`. */
static fx_err open_signed(const ProtobufCBinaryData *bytes, const char *type,
                          const ProtobufCMessageDescriptor *desc,
                          const fx_roster *roster, int64_t now,
                          fx_entry_facts *f, ProtobufCMessage **doc,
                          fx_diag *diag)
{
	Flexo__V1__Envelope *env = NULL;
	const fx_member *m = NULL;
	fx_err err;

	if (roster == NULL)
		return fx_diag_set(diag, FX_EPERM,
		                   "signed document before any roster");
	if ((err = fx_envelope_open(bytes->data, bytes->len, type, &env,
	                            diag)) != FX_OK)
		return err;
	if ((err = fx_roster_find_signer(roster, env, FX_ROLE_CONTRIBUTOR, now,
	                                 &m, diag)) != FX_OK)
		goto out;
	memcpy(f->signer, m->pk, FX_PK_BYTES);
	memcpy(f->signer_id, m->id, FX_KEY_ID_BYTES);
	memcpy(f->signer_name, m->name, sizeof(f->signer_name));
	f->has_signer = 1;
	fx_blake2b(f->doc_digest, env->payload.data, env->payload.len);
	err = fx_wire_decode(desc, env->payload.data, env->payload.len,
	                     FX_WIRE_DOC_MAX, doc, diag);
out:
	fx_wire_free(&env->base);
	return err;
}

static fx_err check_contribution(const fx_entry *e, const fx_roster *roster,
                                 fx_entry_facts *f, fx_diag *diag)
{
	const Flexo__Ledger__V1__ContributionAccepted *a = e->accepted;
	Flexo__V1__Contribution *c = NULL;
	ProtobufCMessage *doc = NULL;
	const uint8_t *id = f->signer_id;
	fx_err err;

	if (a->payload_digest.len != FX_BLAKE2B_BYTES)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "payload digest is %zu bytes, not 32",
		                   a->payload_digest.len);
	if ((err = open_signed(&a->envelope, FX_TYPE_CONTRIBUTION,
	                       &flexo__v1__contribution__descriptor, roster,
	                       e->time_unix, f, &doc, diag)) != FX_OK)
		return err;
	c = (Flexo__V1__Contribution *)doc;
	if (strcmp(c->consortium, roster->consortium) != 0)
		err =
		    fx_diag_set(diag, FX_EMISMATCH,
		                "contribution is for consortium '%s', not '%s'",
		                c->consortium, roster->consortium);
	else if (c->contributor_key_id.len != FX_KEY_ID_BYTES ||
	         memcmp(c->contributor_key_id.data, id, FX_KEY_ID_BYTES) != 0)
		err = fx_diag_set(diag, FX_EMISMATCH,
		                  "contribution names a contributor key other "
		                  "than its signer's (%s)",
		                  f->signer_name);
	else if (c->payload_blake2b.len != FX_BLAKE2B_BYTES ||
	         memcmp(c->payload_blake2b.data, a->payload_digest.data,
	                FX_BLAKE2B_BYTES) != 0)
		err =
		    fx_diag_set(diag, FX_EMISMATCH,
		                "the logged payload digest is not the one the "
		                "contributor signed");
	if (err == FX_OK) {
		f->has_blob = 1;
		memcpy(f->blob, a->payload_digest.data, FX_BLAKE2B_BYTES);
	}
	fx_wire_free(doc);
	return err;
}

static fx_err check_withdrawal(const fx_entry *e, const fx_roster *roster,
                               fx_entry_facts *f, fx_diag *diag)
{
	Flexo__V1__Withdrawal *w = NULL;
	ProtobufCMessage *doc = NULL;
	const uint8_t *id = f->signer_id;
	fx_err err;

	if ((err = open_signed(&e->withdrawal->envelope, FX_TYPE_WITHDRAWAL,
	                       &flexo__v1__withdrawal__descriptor, roster,
	                       e->time_unix, f, &doc, diag)) != FX_OK)
		return err;
	w = (Flexo__V1__Withdrawal *)doc;
	if (strcmp(w->consortium, roster->consortium) != 0)
		err = fx_diag_set(diag, FX_EMISMATCH,
		                  "withdrawal is for consortium '%s', not '%s'",
		                  w->consortium, roster->consortium);
	else if (w->contributor_key_id.len != FX_KEY_ID_BYTES ||
	         memcmp(w->contributor_key_id.data, id, FX_KEY_ID_BYTES) != 0)
		err =
		    fx_diag_set(diag, FX_EMISMATCH,
		                "withdrawal names a contributor key other than "
		                "its signer's (%s)",
		                f->signer_name);
	else if (w->contribution_digest.len != FX_BLAKE2B_BYTES)
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "withdrawal contribution digest is %zu bytes",
		                  w->contribution_digest.len);
	if (err == FX_OK) {
		memcpy(f->named_digest, w->contribution_digest.data,
		       FX_BLAKE2B_BYTES);
		f->ref = e->withdrawal->contribution_index;
	}
	fx_wire_free(doc);
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
			if ((key >> 3) >= 10 && (key >> 3) <= 15)
				kind = (int)(key >> 3);
			break;
		default:
			return -1;
		}
	}
	return kind;
}
