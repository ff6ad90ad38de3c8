/* Receipts: issue from the ledger, verify with only the log's public key. */
#include "flexo/receipt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fx_err fx_receipt_issue(fx_ledger *l, uint64_t index, uint8_t **out,
                        size_t *len, fx_diag *diag)
{
	Flexo__V1__Receipt r = FLEXO__V1__RECEIPT__INIT;
	uint8_t path[FX_MERKLE_MAX_PATH][FX_HASH_LEN];
	ProtobufCBinaryData proof[FX_MERKLE_MAX_PATH];
	uint8_t *entry = NULL, *buf = NULL;
	char *note = NULL;
	size_t elen = 0, nlen = 0, plen = 0, n;
	fx_checkpoint cp;
	fx_err err;

	if ((err = fx_ledger_latest_checkpoint(l, &note, &nlen, &cp, diag)))
		goto out;
	if (index >= cp.size) {
		err = fx_diag_set(diag, FX_ESTATE,
		                  "receipt: entry %llu is not covered by the "
		                  "newest checkpoint (size %llu) yet",
		                  (unsigned long long)index,
		                  (unsigned long long)cp.size);
		goto out;
	}
	if ((err = fx_ledger_entry_bytes(l, index, &entry, &elen, diag)) ||
	    (err = fx_ledger_inclusion_proof(l, index, cp.size, path, &plen,
	                                     diag)))
		goto out;
	for (size_t i = 0; i < plen; i++) {
		proof[i].data = path[i];
		proof[i].len = FX_HASH_LEN;
	}
	r.ledger_index = index;
	r.entry.data = entry;
	r.entry.len = elen;
	r.checkpoint.data = (uint8_t *)note;
	r.checkpoint.len = nlen;
	r.n_inclusion_proof = plen;
	r.inclusion_proof = proof;
	n = flexo__v1__receipt__get_packed_size(&r);
	if ((buf = malloc(n)) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "out of memory");
		goto out;
	}
	flexo__v1__receipt__pack(&r, buf);
	*out = buf;
	*len = n;
out:
	free(entry);
	free(note);
	return err;
}

/* What request the entry answers (fx_receipt_info.request_digest, gate). */
static void request_of(const fx_entry *e, fx_receipt_info *out)
{
	const ProtobufCBinaryData *env = NULL;
	const char *gate = NULL;

	switch (e->kind_case) {
	case FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED:
		env = &e->accepted->envelope;
		break;
	case FLEXO__LEDGER__V1__ENTRY__KIND_REJECTED:
		env = &e->rejected->envelope;
		gate = e->rejected->gate;
		break;
	case FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL:
		env = &e->withdrawal->envelope;
		break;
	case FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL_REFUSED:
		/* Kept bytes may be absent (over the bound): the digest of
		 * what was received is always logged. */
		if (e->withdrawal_refused->received_blake2b.len == 32) {
			out->has_request = 1;
			memcpy(out->request_digest,
			       e->withdrawal_refused->received_blake2b.data,
			       32);
		}
		gate = e->withdrawal_refused->gate;
		break;
	default:
		break;
	}
	if (env != NULL) {
		out->has_request = 1;
		fx_blake2b(out->request_digest, env->data, env->len);
	}
	if (gate != NULL)
		snprintf(out->gate, sizeof(out->gate), "%.*s",
		         FX_RECEIPT_GATE_MAX, gate);
}

fx_err fx_receipt_verify(const uint8_t *buf, size_t len,
                         const fx_note_verifier *log, fx_receipt_info *info,
                         fx_diag *diag)
{
	uint8_t path[FX_MERKLE_MAX_PATH][FX_HASH_LEN];
	Flexo__V1__Receipt *r = NULL;
	fx_entry *e = NULL;
	fx_receipt_info out;
	fx_err err = FX_OK;

	memset(&out, 0, sizeof(out));
	if (len > FX_RECEIPT_MAX)
		return fx_diag_set(diag, FX_ETOOBIG, "receipt: %zu bytes > %u",
		                   len, FX_RECEIPT_MAX);
	/* Strict, bounded decoding like every message from outside. */
	{
		ProtobufCMessage *m = NULL;
		if ((err = fx_wire_decode(&flexo__v1__receipt__descriptor, buf,
		                          len, FX_RECEIPT_MAX, &m, diag))) {
			fx_diag_prefix(diag, "receipt");
			goto out;
		}
		r = (Flexo__V1__Receipt *)m;
	}
	if ((err = fx_checkpoint_open((const char *)r->checkpoint.data,
	                              r->checkpoint.len, log, &out.checkpoint,
	                              diag)) != FX_OK) {
		fx_diag_prefix(diag, "receipt");
		goto out;
	}
	if (r->n_inclusion_proof > FX_MERKLE_MAX_PATH) {
		err = fx_diag_set(diag, FX_EFORMAT, "receipt: %zu proof hashes",
		                  r->n_inclusion_proof);
		goto out;
	}
	for (size_t i = 0; i < r->n_inclusion_proof; i++) {
		if (r->inclusion_proof[i].len != FX_HASH_LEN) {
			err =
			    fx_diag_set(diag, FX_EFORMAT,
			                "receipt: proof hash %zu is %zu bytes",
			                i, r->inclusion_proof[i].len);
			goto out;
		}
		memcpy(path[i], r->inclusion_proof[i].data, FX_HASH_LEN);
	}
	fx_merkle_leaf_hash(r->entry.data, r->entry.len, out.leaf);
	if ((err = fx_merkle_verify_inclusion(
	         r->ledger_index, out.checkpoint.size, out.leaf,
	         (const uint8_t(*)[FX_HASH_LEN])path, r->n_inclusion_proof,
	         out.checkpoint.root, diag)) != FX_OK) {
		fx_diag_prefix(diag, "receipt for entry %llu",
		               (unsigned long long)r->ledger_index);
		goto out;
	}
	e = flexo__ledger__v1__entry__unpack(NULL, r->entry.len, r->entry.data);
	if (e == NULL || e->index != r->ledger_index) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "receipt: entry does not decode or does not "
		                  "carry index %llu",
		                  (unsigned long long)r->ledger_index);
		goto out;
	}
	out.index = r->ledger_index;
	out.kind = (int)e->kind_case;
	/* The entry is authenticated by the proof; its documents were
	 * verified by the log and can be re-verified with the roster. */
	if (e->kind_case == FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED &&
	    e->accepted->payload_digest.len == 32)
		memcpy(out.payload_digest, e->accepted->payload_digest.data,
		       32);
	request_of(e, &out);
	if (info != NULL)
		*info = out;
out:
	if (e != NULL)
		flexo__ledger__v1__entry__free_unpacked(e, NULL);
	if (r != NULL)
		fx_wire_free(&r->base);
	return err;
}
