/* What a ledger entry proves: its embedded signed documents verified
 * against the roster in force, by the same code for the coordinator (before
 * it appends) and the auditor (after). Also a allocation-free peek at an
 * encoded entry's kind. */
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
