/* Real admission for `serve` (admission.h): the gates in DESIGN §3's order,
 * each verdict — refused withdrawals too — an entry of the ledger with a
 * fresh signed checkpoint and a receipt, and the served model re-assembled
 * from the live contributions' blobs after each acceptance or withdrawal. */
#include "admission.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "flexo/assemble.h"
#include "flexo/blobstore.h"
#include "flexo/contrib.h"
#include "flexo/corpus.h"
#include "flexo/expert.h"
#include "flexo/fsutil.h"
#include "flexo/keys.h"
#include "flexo/ledger.h"
#include "flexo/modelfile.h"
#include "flexo/receipt.h"
#include "flexo/release.h"
#include "flexo/roster.h"
#include "flexo/routerpub.h"
#include "flexo/wire.h"

#define ACCEPTED  FLEXO__V1__DECISION__DECISION_ACCEPTED
#define REJECTED  FLEXO__V1__DECISION__DECISION_REJECTED
#define WITHDRAWN FLEXO__V1__DECISION__DECISION_WITHDRAWN

/* Highest sequence a key has had logged (accepted, rejected after its
 * signature verified, withdrawal, refused withdrawal whose signature
 * verified): replay needs a higher one. `index` is the entry that logged it,
 * the evidence a "replay" refusal of a withdrawal names. */
typedef struct seen_key {
	uint8_t id[FX_KEY_ID_BYTES];
	uint64_t seq;
	uint64_t index;
} seen_key;

/* A logged verdict, by the digest of the signed document it answers: a
 * retry of the same document gets it back instead of a replay rejection. */
typedef struct decided {
	uint8_t digest[FX_BLAKE2B_BYTES];
	int decision;
	uint64_t index;
	uint8_t
	    contribution[FX_BLAKE2B_BYTES]; /* withdrawals: what they name */
	char gate[FX_VERDICT_GATE_MAX + 1];
	char reason[FX_VERDICT_REASON_MAX + 1];
} decided;

struct admission {
	pthread_mutex_t mu;
	const fx_logger *log;
	fx_roster roster;
	fx_release rel;
	fx_keypair key;
	fx_ledger *l;
	fx_blobstore bs;
	uint64_t anchor_index;
	fx_model anchor;
	int have_anchor;
	fx_routerpub rpub;
	fx_corpus pub;
	double anchor_bpb;
	fx_gate_limits limits;
	int top_k;
	char anchor_path[ADM_STATE_MAX + 128];
	char rpub_path[ADM_STATE_MAX + 128];
	char served_path[ADM_STATE_MAX + 64];
	uint8_t logged_roster[FX_BLAKE2B_BYTES]; /* newest roster entry's */
	int have_logged_roster;
	seen_key *keys;
	size_t n_keys;
	decided *dec;
	size_t n_dec, cap_dec;
};

void adm_config_init(adm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->heldout_frac = 0.1;
	fx_gate_limits_defaults(&c->limits);
	c->threads = 1;
}

const char *admission_origin(const admission *a)
{
	return fx_ledger_origin(a->l);
}

const char *admission_served_path(const admission *a)
{
	return a->served_path;
}

/* ---- memory of keys and verdicts ---- */

static seen_key *find_key(admission *a, const uint8_t id[FX_KEY_ID_BYTES])
{
	for (size_t i = 0; i < a->n_keys; i++)
		if (memcmp(a->keys[i].id, id, FX_KEY_ID_BYTES) == 0)
			return &a->keys[i];
	return NULL;
}

/* Called once the entry carrying the sequence is appended (at `index`). */
static fx_err note_seq(admission *a, const uint8_t *id, uint64_t seq,
                       uint64_t index, fx_diag *diag)
{
	seen_key *k = find_key(a, id), *grown;

	if (k != NULL) {
		if (seq > k->seq) {
			k->seq = seq;
			k->index = index;
		}
		return FX_OK;
	}
	if (a->n_keys == ADM_MAX_KEYS)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "more than %d contributor keys",
		                   ADM_MAX_KEYS);
	grown = realloc(a->keys, (a->n_keys + 1) * sizeof(*grown));
	if (grown == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "key table");
	a->keys = grown;
	memcpy(a->keys[a->n_keys].id, id, FX_KEY_ID_BYTES);
	a->keys[a->n_keys].seq = seq;
	a->keys[a->n_keys].index = index;
	a->n_keys++;
	return FX_OK;
}

static const decided *find_decided(const admission *a, const uint8_t *digest)
{
	for (size_t i = 0; i < a->n_dec; i++)
		if (memcmp(a->dec[i].digest, digest, FX_BLAKE2B_BYTES) == 0)
			return &a->dec[i];
	return NULL;
}

static fx_err note_decided(admission *a, const uint8_t *digest, int decision,
                           uint64_t index, const uint8_t *contribution,
                           const char *gate, const char *reason, fx_diag *diag)
{
	decided *d;

	if (a->n_dec == a->cap_dec) {
		size_t cap = a->cap_dec ? 2 * a->cap_dec : 64;
		decided *grown;
		if (cap > ADM_MAX_DECIDED)
			return fx_diag_set(diag, FX_ETOOBIG,
			                   "more than %u verdicts in memory",
			                   ADM_MAX_DECIDED);
		if ((grown = realloc(a->dec, cap * sizeof(*grown))) == NULL)
			return fx_diag_set(diag, FX_ENOMEM, "verdict table");
		a->dec = grown;
		a->cap_dec = cap;
	}
	d = &a->dec[a->n_dec++];
	memset(d, 0, sizeof(*d));
	memcpy(d->digest, digest, FX_BLAKE2B_BYTES);
	d->decision = decision;
	d->index = index;
	if (contribution != NULL)
		memcpy(d->contribution, contribution, FX_BLAKE2B_BYTES);
	snprintf(d->gate, sizeof(d->gate), "%s", gate ? gate : "");
	snprintf(d->reason, sizeof(d->reason), "%s", reason ? reason : "");
	return FX_OK;
}

/* ---- documents ---- */

/* Decodes a contribution envelope without verifying it: *env and *c owned
 * by the caller (fx_wire_free), digest = BLAKE2b-256 of the payload. */
static fx_err open_contribution(const uint8_t *buf, size_t len,
                                Flexo__V1__Envelope **env,
                                Flexo__V1__Contribution **c, uint8_t *digest,
                                fx_diag *diag)
{
	fx_err err =
	    fx_envelope_open(buf, len, FX_TYPE_CONTRIBUTION, env, diag);
	if (err != FX_OK)
		return err;
	fx_blake2b(digest, (*env)->payload.data, (*env)->payload.len);
	err = fx_wire_decode(&flexo__v1__contribution__descriptor,
	                     (*env)->payload.data, (*env)->payload.len,
	                     FX_WIRE_DOC_MAX, (ProtobufCMessage **)c, diag);
	if (err != FX_OK) {
		fx_wire_free(&(*env)->base);
		*env = NULL;
	}
	return err;
}

static fx_err open_withdrawal(const uint8_t *buf, size_t len,
                              Flexo__V1__Envelope **env,
                              Flexo__V1__Withdrawal **w, uint8_t *digest,
                              fx_diag *diag)
{
	fx_err err = fx_envelope_open(buf, len, FX_TYPE_WITHDRAWAL, env, diag);
	if (err != FX_OK)
		return err;
	fx_blake2b(digest, (*env)->payload.data, (*env)->payload.len);
	err = fx_wire_decode(&flexo__v1__withdrawal__descriptor,
	                     (*env)->payload.data, (*env)->payload.len,
	                     FX_WIRE_DOC_MAX, (ProtobufCMessage **)w, diag);
	if (err != FX_OK) {
		fx_wire_free(&(*env)->base);
		*env = NULL;
	}
	return err;
}

/* The roster member whose key ID the document names, if its signature by
 * that key verifies; NULL otherwise. */
static const fx_member *verified_signer(const fx_roster *r,
                                        const Flexo__V1__Envelope *env,
                                        const ProtobufCBinaryData *key_id)
{
	if (key_id->len != FX_KEY_ID_BYTES)
		return NULL;
	for (size_t i = 0; i < r->n_members; i++)
		if (memcmp(r->members[i].id, key_id->data, FX_KEY_ID_BYTES) ==
		        0 &&
		    fx_envelope_verify_key(env, r->members[i].pk) == 0)
			return &r->members[i];
	return NULL;
}

/* ---- the ledger side ---- */

static void set_verdict(fx_verdict *out, int decision, const char *gate,
                        const char *reason)
{
	out->decision = decision;
	snprintf(out->gate, sizeof(out->gate), "%s", gate);
	snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

/* Signs a checkpoint over everything appended so far. */
static fx_err checkpoint(admission *a, fx_diag *diag)
{
	return fx_ledger_sign_checkpoint(a->l, a->key.sk, NULL, NULL, diag);
}

/* Attaches the receipt of entry `index` to the verdict. */
static fx_err attach_receipt(admission *a, uint64_t index, fx_verdict *out,
                             fx_diag *diag)
{
	out->ledger_index = index;
	return fx_receipt_issue(a->l, index, &out->receipt, &out->receipt_len,
	                        diag);
}

/* Re-assembles the served model from the live contributions' blobs, in
 * ledger order, stores it as a blob and logs the assembly entry. */
static fx_err reassemble(admission *a, fx_diag *diag)
{
	Flexo__Ledger__V1__Assembly as = FLEXO__LEDGER__V1__ASSEMBLY__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	uint64_t *live = NULL, idx;
	size_t n = 0;
	char **paths = NULL;
	uint8_t digest[FX_BLAKE2B_BYTES], stored[FX_BLAKE2B_BYTES];
	int top_k;
	fx_err err;

	if ((err = fx_ledger_live(a->l, &live, &n, diag)) != FX_OK)
		goto out;
	if (n > FX_LEDGER_MAX_INCLUDED) {
		err = fx_diag_set(diag, FX_ETOOBIG, "%zu live experts", n);
		goto out;
	}
	if (n > 0 && (paths = calloc(n, sizeof(*paths))) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "assembly paths");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t *bytes = NULL;
		size_t len = 0;
		fx_entry *le;
		if ((err = fx_ledger_entry_bytes(a->l, live[i], &bytes, &len,
		                                 diag)) != FX_OK)
			goto out;
		le = flexo__ledger__v1__entry__unpack(NULL, len, bytes);
		free(bytes);
		if (le == NULL ||
		    le->kind_case != FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED ||
		    le->accepted->payload_digest.len != FX_BLAKE2B_BYTES) {
			if (le != NULL)
				flexo__ledger__v1__entry__free_unpacked(le,
				                                        NULL);
			err = fx_diag_set(diag, FX_EINTERNAL,
			                  "live entry %" PRIu64
			                  " is not an accepted contribution",
			                  live[i]);
			goto out;
		}
		paths[i] = malloc(FX_BLOB_MAX_DIR + 80);
		if (paths[i] == NULL)
			err = fx_diag_set(diag, FX_ENOMEM, "assembly path");
		else
			err = fx_blobstore_path(
			    &a->bs, le->accepted->payload_digest.data, paths[i],
			    FX_BLOB_MAX_DIR + 80, diag);
		flexo__ledger__v1__entry__free_unpacked(le, NULL);
		if (err != FX_OK)
			goto out;
	}
	/* The configured top-k is a ceiling: while fewer experts are live,
	 * every one of them (and the public expert) is used. */
	top_k = a->top_k > (int)n + 1 ? (int)n + 1 : a->top_k;
	if ((err = fx_assemble(a->anchor_path, a->rpub_path,
	                       (const char *const *)paths, (int)n, top_k,
	                       a->served_path, digest, diag)) != FX_OK)
		goto out;
	if ((err = fx_blobstore_put_file(&a->bs, a->served_path, stored,
	                                 diag)) != FX_OK)
		goto out;
	if (memcmp(stored, digest, FX_BLAKE2B_BYTES) != 0) {
		err = fx_diag_set(diag, FX_EINTERNAL,
		                  "served model changed while being stored");
		goto out;
	}
	as.included = live;
	as.n_included = n;
	as.model_digest.data = digest;
	as.model_digest.len = FX_BLAKE2B_BYTES;
	as.anchor_index = a->anchor_index;
	as.top_k = (uint32_t)top_k;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ASSEMBLY;
	e.assembly = &as;
	if ((err = fx_ledger_append(a->l, &e, &idx, diag)) != FX_OK)
		goto out;
	{
		char hex[2 * FX_BLAKE2B_BYTES + 1];
		fx_log(a->log, FX_INFO,
		       "assembly (entry %" PRIu64 "): %zu expert(s), model %s",
		       idx, n, fx_hex(hex, digest, FX_BLAKE2B_BYTES));
	}
out:
	for (size_t i = 0; paths != NULL && i < n; i++)
		free(paths[i]);
	free(paths);
	free(live);
	if (err != FX_OK)
		fx_diag_prefix(diag, "re-assembling the served model");
	return err;
}

/* Appends entry e (a rejection or a refused withdrawal), moves key_id's
 * replay counter to seq (key_id NULL: no verified signer), signs a
 * checkpoint, remembers the verdict for retries of digest (NULL: none;
 * contribution as note_decided takes it), then answers REJECTED with the
 * entry's receipt. `what` names the entry in the log line. */
static fx_err log_negative(admission *a, fx_entry *e, const char *what,
                           const uint8_t *key_id, uint64_t seq,
                           const uint8_t *digest, const uint8_t *contribution,
                           const char *gate, const char *reason,
                           fx_verdict *out, fx_diag *diag)
{
	uint64_t idx;
	fx_err err;

	if ((err = fx_ledger_append(a->l, e, &idx, diag)) != FX_OK) {
		fx_diag_prefix(diag, "logging the verdict (%s)", gate);
		return err;
	}
	if (key_id != NULL &&
	    (err = note_seq(a, key_id, seq, idx, diag)) != FX_OK)
		return err;
	if ((err = checkpoint(a, diag)) != FX_OK)
		return err;
	if (digest != NULL &&
	    (err = note_decided(a, digest, REJECTED, idx, contribution, gate,
	                        reason, diag)) != FX_OK)
		return err;
	set_verdict(out, REJECTED, gate, reason);
	fx_log(a->log, FX_INFO, "%s (entry %" PRIu64 ") at %s: %s", what, idx,
	       gate, reason);
	return attach_receipt(a, idx, out, diag);
}

/* Logs a rejection of the contribution envelope and fills the verdict.
 * key_id (NULL: none) is the signer whose signature verified: its sequence
 * seq then counts for replay, from this entry on. */
static fx_err log_rejected(admission *a, const uint8_t *env, size_t len,
                           const uint8_t *digest, const char *gate,
                           const char *reason, const uint8_t *key_id,
                           uint64_t seq, fx_verdict *out, fx_diag *diag)
{
	Flexo__Ledger__V1__ContributionRejected r =
	    FLEXO__LEDGER__V1__CONTRIBUTION_REJECTED__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;

	r.envelope.data = (uint8_t *)env;
	r.envelope.len = len;
	r.gate = (char *)gate;
	r.reason = (char *)reason;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_REJECTED;
	e.rejected = &r;
	return log_negative(a, &e, "rejected", key_id, seq,
	                    digest, NULL, gate, reason, out, diag);
}

/* A logged verdict again, with a receipt against the newest checkpoint. */
static fx_err repeat_verdict(admission *a, const decided *d, fx_verdict *out,
                             fx_diag *diag)
{
	set_verdict(out, d->decision, d->gate, d->reason);
	return attach_receipt(a, d->index, out, diag);
}

/* ---- the manifest gates: signature, roster, anchor, replay ---- */

/* Runs the gates that need only the envelope. *gate is NULL when they
 * pass, else the gate's name with its sentence in reason. *signed_ok says
 * whether the signature verified (a replay counter may then move). */
static void manifest_gates(admission *a, const Flexo__V1__Envelope *env,
                           const Flexo__V1__Contribution *c, const char **gate,
                           char *reason, size_t cap, int *signed_ok)
{
	const fx_member *m = NULL;
	int64_t now = (int64_t)time(NULL);
	char hex[2 * FX_KEY_ID_BYTES + 1];
	const seen_key *k;

	*gate = NULL;
	*signed_ok = 0;
	if (env->n_signatures == 0) {
		*gate = "signature";
		snprintf(reason, cap, "the contribution manifest is unsigned");
		return;
	}
	if (c->contributor_key_id.len != FX_KEY_ID_BYTES) {
		*gate = "signature";
		snprintf(reason, cap,
		         "contributor_key_id has %zu bytes, not %d",
		         c->contributor_key_id.len, FX_KEY_ID_BYTES);
		return;
	}
	fx_hex(hex, c->contributor_key_id.data, FX_KEY_ID_BYTES);
	for (size_t i = 0; i < a->roster.n_members; i++)
		if (memcmp(a->roster.members[i].id, c->contributor_key_id.data,
		           FX_KEY_ID_BYTES) == 0)
			m = &a->roster.members[i];
	if (m == NULL) {
		*gate = "roster";
		snprintf(reason, cap,
		         "key %s is not a member of roster v%" PRIu64
		         " of consortium '%s'",
		         hex, a->roster.version, a->roster.consortium);
		return;
	}
	if (fx_envelope_verify_key(env, m->pk) != 0) {
		*gate = "signature";
		snprintf(
		    reason, cap,
		    "the manifest names key %s ('%s') but carries no valid "
		    "signature by it",
		    hex, m->name);
		return;
	}
	*signed_ok = 1;
	if (m->role != FX_ROLE_CONTRIBUTOR) {
		*gate = "roster";
		snprintf(reason, cap,
		         "'%s' is a %s of roster v%" PRIu64
		         ", not a contributor",
		         m->name, fx_role_name(m->role), a->roster.version);
		return;
	}
	if (m->not_after != 0 && now > m->not_after) {
		char t[32];
		*gate = "roster";
		snprintf(reason, cap, "the key of '%s' expired at %s", m->name,
		         fx_time_format(t, sizeof(t), m->not_after));
		return;
	}
	if (now > a->roster.expires) {
		char t[32];
		*gate = "roster";
		snprintf(reason, cap, "roster v%" PRIu64 " expired at %s",
		         a->roster.version,
		         fx_time_format(t, sizeof(t), a->roster.expires));
		return;
	}
	if (c->anchor_release_digest.len != FX_BLAKE2B_BYTES ||
	    memcmp(c->anchor_release_digest.data, a->rel.digest,
	           FX_BLAKE2B_BYTES) != 0) {
		*gate = "anchor";
		snprintf(
		    reason, cap,
		    "the manifest names anchor release v%" PRIu64
		    " with another digest; the current release is v%" PRIu64,
		    c->anchor_release_version, a->rel.msg->release_version);
		return;
	}
	k = find_key(a, c->contributor_key_id.data);
	if (k != NULL && c->sequence <= k->seq) {
		*gate = "replay";
		snprintf(reason, cap,
		         "sequence %" PRIu64 " of '%s' is not above %" PRIu64
		         ", the highest already logged for this key",
		         c->sequence, m->name, k->seq);
		return;
	}
}

/* Checks an envelope against the manifest gates; logs a rejection. Sets
 * *passed when every one passed (nothing logged then). */
static fx_err run_manifest_gates(admission *a, const uint8_t *buf, size_t len,
                                 fx_verdict *out, int *passed, fx_diag *diag)
{
	Flexo__V1__Envelope *env = NULL;
	Flexo__V1__Contribution *c = NULL;
	uint8_t digest[FX_BLAKE2B_BYTES];
	const decided *prev;
	const char *gate;
	char reason[FX_VERDICT_REASON_MAX + 1];
	int signed_ok;
	fx_diag d = {{0}};
	fx_err err;

	*passed = 0;
	if (open_contribution(buf, len, &env, &c, digest, &d) != FX_OK) {
		snprintf(reason, sizeof(reason), "%s", d.msg);
		return log_rejected(a, buf, len, NULL, "signature", reason,
		                    NULL, 0, out, diag);
	}
	if ((prev = find_decided(a, digest)) != NULL) {
		err = repeat_verdict(a, prev, out, diag);
		goto out;
	}
	manifest_gates(a, env, c, &gate, reason, sizeof(reason), &signed_ok);
	if (gate != NULL) {
		err =
		    log_rejected(a, buf, len, digest, gate, reason,
		                 signed_ok ? c->contributor_key_id.data : NULL,
		                 c->sequence, out, diag);
		goto out;
	}
	*passed = 1;
	err = FX_OK;
out:
	fx_wire_free(c ? &c->base : NULL);
	fx_wire_free(env ? &env->base : NULL);
	return err;
}

fx_err admission_precheck(void *ctx, const uint8_t *envelope, size_t len,
                          fx_verdict *out, fx_diag *diag)
{
	admission *a = ctx;
	int passed = 0;
	fx_err err;

	pthread_mutex_lock(&a->mu);
	err = run_manifest_gates(a, envelope, len, out, &passed, diag);
	if (err == FX_OK && passed)
		/* The upload may start; only an already accepted retry gets
		 * its logged verdict at the end (admission_admit). */
		set_verdict(out, ACCEPTED, "manifest", "manifest gates passed");
	pthread_mutex_unlock(&a->mu);
	return err;
}

/* ---- the payload and model gates ---- */

static int same_shape(const fx_config *x, const fx_config *a)
{
	return x->vocab_size == a->vocab_size && x->d_model == a->d_model &&
	       x->n_layers == a->n_layers && x->n_heads == a->n_heads &&
	       x->d_ff == a->d_ff && x->max_seq == a->max_seq &&
	       x->rope_theta == a->rope_theta && x->norm_eps == a->norm_eps &&
	       x->n_experts == 1;
}

/* payload (after the streamed digest): strict parse, config, anchor
 * digest, router rows and bias = the manifest's; then finite, norms,
 * public-loss and routing-capture. *gate NULL = all passed. */
static fx_err model_gates(admission *a, const fx_admit_input *in,
                          const Flexo__V1__Contribution *c, const char **gate,
                          char *reason, size_t cap, fx_gate_report *rep,
                          fx_diag *diag)
{
	fx_expert x;
	int loaded = 0;
	const char *ad;
	char want[2 * FX_BLAKE2B_BYTES + 1];
	const fx_config *ac = &a->anchor.cfg;
	size_t L = (size_t)ac->n_layers, dm = (size_t)ac->d_model;
	fx_diag d = {{0}};
	fx_err err = FX_OK;

	*gate = NULL;
	memset(rep, 0, sizeof(*rep));
	if (c->payload_size != in->size ||
	    c->payload_blake2b.len != FX_BLAKE2B_BYTES ||
	    memcmp(c->payload_blake2b.data, in->digest, FX_BLAKE2B_BYTES) !=
	        0) {
		*gate = "payload";
		snprintf(reason, cap,
		         "the payload received (%" PRIu64
		         " bytes) does not have the size and BLAKE2b-256 the "
		         "signed manifest states (%" PRIu64 " bytes)",
		         in->size, c->payload_size);
		goto out;
	}
	err = fx_expert_load(&x, in->staged_path, &d);
	if (err == FX_ENUMERIC) {
		*gate = "finite";
		snprintf(reason, cap, "%s", d.msg);
		err = FX_OK;
		goto out;
	}
	if (err == FX_ENOMEM) {
		fx_diag_set(diag, err, "%s", d.msg);
		goto out;
	}
	if (err != FX_OK) {
		*gate = "payload";
		snprintf(reason, cap, "not a valid expert file: %s", d.msg);
		err = FX_OK;
		goto out;
	}
	loaded = 1;
	if (!same_shape(&x.cfg, ac)) {
		*gate = "payload";
		snprintf(reason, cap,
		         "the expert's config (d=%d, L=%d, F=%d, V=%d) is not "
		         "the anchor's (d=%d, L=%d, F=%d, V=%d)",
		         x.cfg.d_model, x.cfg.n_layers, x.cfg.d_ff,
		         x.cfg.vocab_size, ac->d_model, ac->n_layers, ac->d_ff,
		         ac->vocab_size);
		goto out;
	}
	fx_hex(want, a->rel.msg->anchor_blake2b.data, FX_BLAKE2B_BYTES);
	ad = fx_expert_meta(&x, "anchor_digest");
	if (ad == NULL || strcmp(ad, want) != 0) {
		*gate = "payload";
		snprintf(reason, cap,
		         "the expert's anchor_digest %.64s is not the released "
		         "anchor's %s",
		         ad ? ad : "(missing)", want);
		goto out;
	}
	if (c->router == NULL || c->router->layers != L ||
	    c->router->dim != dm || c->router->n_values != L * dm ||
	    memcmp(c->router->values, x.router, L * dm * sizeof(float)) != 0) {
		*gate = "payload";
		snprintf(reason, cap,
		         "the manifest's router rows are not the payload's "
		         "layers.*.router.weight");
		goto out;
	}
	if (c->n_bias != 0 &&
	    (c->n_bias != L ||
	     memcmp(c->bias, x.bias, L * sizeof(float)) != 0)) {
		*gate = "payload";
		snprintf(reason, cap,
		         "the manifest's router bias is not the payload's "
		         "layers.*.router.bias");
		goto out;
	}
	if (c->n_bias == 0)
		for (size_t l = 0; l < L; l++)
			if (x.bias[l] != 0.0f) {
				*gate = "payload";
				snprintf(reason, cap,
				         "the payload has a router bias the "
				         "manifest does not state");
				goto out;
			}
	err = fx_gate_norms(&a->anchor, a->rpub.rows, &x, &a->limits, rep, &d);
	if (err == FX_EREJECTED) {
		*gate = "norms";
		snprintf(reason, cap, "%s", d.msg);
		err = FX_OK;
		goto out;
	}
	if (err != FX_OK) {
		fx_diag_set(diag, err, "norm gate: %s", d.msg);
		goto out;
	}
	err = fx_gate_public(&a->anchor, a->rpub.rows, &x, a->pub.heldout,
	                     a->pub.n_heldout, a->anchor_bpb, &a->limits, rep,
	                     &d);
	if (err == FX_EREJECTED) {
		if (a->anchor_bpb < 0 && rep->anchor_public_bpb > 0)
			a->anchor_bpb = rep->anchor_public_bpb;
		*gate = strncmp(d.msg, "routing-capture", 15) == 0
		            ? "routing-capture"
		            : "public-loss";
		snprintf(reason, cap, "%s", d.msg);
		err = FX_OK;
		goto out;
	}
	if (err != FX_OK)
		fx_diag_set(diag, err, "public gates: %s", d.msg);
	else if (a->anchor_bpb < 0)
		a->anchor_bpb = rep->anchor_public_bpb;
out:
	if (loaded)
		fx_expert_release(&x);
	return err;
}

fx_err admission_admit(void *ctx, const fx_admit_input *in, fx_verdict *out,
                       fx_diag *diag)
{
	admission *a = ctx;
	Flexo__V1__Envelope *env = NULL;
	Flexo__V1__Contribution *c = NULL;
	Flexo__Ledger__V1__ContributionAccepted acc =
	    FLEXO__LEDGER__V1__CONTRIBUTION_ACCEPTED__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	uint8_t digest[FX_BLAKE2B_BYTES], blob[FX_BLAKE2B_BYTES];
	char reason[FX_VERDICT_REASON_MAX + 1], summary[512];
	const char *gate = NULL;
	const decided *prev;
	fx_gate_report rep;
	uint64_t idx;
	int passed = 0;
	fx_diag d = {{0}};
	fx_err err;

	pthread_mutex_lock(&a->mu);
	/* The manifest gates again: the roster or the release may have
	 * changed since the upload began, and a retry finds its verdict. */
	err = run_manifest_gates(a, in->envelope, in->envelope_len, out,
	                         &passed, diag);
	if (err != FX_OK || !passed)
		goto out;
	if ((err = open_contribution(in->envelope, in->envelope_len, &env, &c,
	                             digest, diag)) != FX_OK)
		goto out;
	if ((prev = find_decided(a, digest)) != NULL) {
		err = repeat_verdict(a, prev, out, diag);
		goto out;
	}
	/* The model gates take seconds at real sizes: run them unlocked, so
	 * that prechecks and withdrawals on the service's threads are not
	 * held up. Only this (the one admission) thread uses the anchor
	 * model and the gates' cache. */
	pthread_mutex_unlock(&a->mu);
	err = model_gates(a, in, c, &gate, reason, sizeof(reason), &rep, diag);
	pthread_mutex_lock(&a->mu);
	if (err != FX_OK)
		goto out;
	{
		/* Meanwhile a precheck may have logged a newer manifest of
		 * this key: the replay gate again. */
		const seen_key *k = find_key(a, c->contributor_key_id.data);
		if (k != NULL && c->sequence <= k->seq) {
			gate = "replay";
			snprintf(reason, sizeof(reason),
			         "sequence %" PRIu64 " is not above %" PRIu64
			         ", logged for this key while the payload was "
			         "checked",
			         c->sequence, k->seq);
		}
	}
	if (gate != NULL) {
		err = log_rejected(a, in->envelope, in->envelope_len, digest,
		                   gate, reason, c->contributor_key_id.data,
		                   c->sequence, out, diag);
		goto out;
	}
	if ((err = fx_blobstore_put_file(&a->bs, in->staged_path, blob,
	                                 diag)) != FX_OK)
		goto out;
	if (memcmp(blob, in->digest, FX_BLAKE2B_BYTES) != 0) {
		err = fx_diag_set(diag, FX_EIO,
		                  "the staged payload changed on disk");
		goto out;
	}
	snprintf(summary, sizeof(summary),
	         "all gates passed: FFN norm ratio %.2f, router row ratio "
	         "%.2f, public %.4f bits/byte (anchor %.4f), public top-1 "
	         "share %.1f%%",
	         rep.worst_ffn_ratio, rep.worst_router_ratio,
	         rep.expert_public_bpb, rep.anchor_public_bpb,
	         100.0 * rep.public_capture);
	acc.envelope.data = (uint8_t *)in->envelope;
	acc.envelope.len = in->envelope_len;
	acc.payload_digest.data = blob;
	acc.payload_digest.len = FX_BLAKE2B_BYTES;
	acc.verdict = summary;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED;
	e.accepted = &acc;
	if ((err = fx_ledger_append(a->l, &e, &idx, diag)) != FX_OK ||
	    (err = note_seq(a, c->contributor_key_id.data, c->sequence, idx,
	                    diag)) != FX_OK)
		goto out;
	if ((err = note_decided(a, digest, ACCEPTED, idx, NULL, "gates",
	                        summary, diag)) != FX_OK)
		goto out;
	fx_log(a->log, FX_INFO, "accepted (entry %" PRIu64 ") domain %s: %s",
	       idx, c->domain, summary);
	/* An assembly failure does not undo the acceptance: the entry is
	 * logged; the next event (or restart) assembles again. */
	if (reassemble(a, &d) != FX_OK)
		fx_log(a->log, FX_ERROR, "%s", d.msg);
	if ((err = checkpoint(a, diag)) != FX_OK)
		goto out;
	set_verdict(out, ACCEPTED, "gates", summary);
	err = attach_receipt(a, idx, out, diag);
out:
	pthread_mutex_unlock(&a->mu);
	fx_wire_free(c ? &c->base : NULL);
	fx_wire_free(env ? &env->base : NULL);
	return err;
}

/* ---- requests: withdrawal ---- */

static fx_err encode_verdict(const fx_verdict *v, const uint8_t *contribution,
                             uint8_t **resp, size_t *resp_len, fx_diag *diag)
{
	Flexo__V1__Response r = FLEXO__V1__RESPONSE__INIT;
	Flexo__V1__Verdict vm = FLEXO__V1__VERDICT__INIT;

	r.protocol = FX_WIRE_PROTOCOL;
	vm.contribution_digest.data = (uint8_t *)contribution;
	vm.contribution_digest.len = contribution ? FX_BLAKE2B_BYTES : 0;
	vm.decision = (Flexo__V1__Decision)v->decision;
	vm.gate = (char *)v->gate;
	vm.reason = (char *)v->reason;
	vm.ledger_index = v->ledger_index;
	vm.receipt.data = v->receipt;
	vm.receipt.len = v->receipt_len;
	r.body_case = FLEXO__V1__RESPONSE__BODY_VERDICT;
	r.verdict = &vm;
	return fx_wire_encode(&r.base, resp, resp_len, diag);
}

/* Logs a refused withdrawal request (docs/ledger.md §1) at time `now` (the
 * time its checks used) and fills the verdict with the entry's receipt.
 * The request is kept as received up to FX_LEDGER_MAX_REFUSED_ENVELOPE
 * bytes, else by size and digest. digest (NULL when the request does not
 * decode) lets a retry of the same request get this verdict back;
 * key_id (NULL: no signature by the member it names verified) moves that
 * key's replay counter, as a rejected contribution's does. No assembly
 * follows: a refusal changes nothing else. */
static fx_err log_refused(admission *a, const uint8_t *buf, size_t len,
                          int64_t now, fx_refusal why, uint64_t evidence,
                          const char *reason, const uint8_t *digest,
                          const uint8_t *contribution, const uint8_t *key_id,
                          uint64_t seq, fx_verdict *out, fx_diag *diag)
{
	Flexo__Ledger__V1__WithdrawalRefused r =
	    FLEXO__LEDGER__V1__WITHDRAWAL_REFUSED__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	char why_text[FX_VERDICT_REASON_MAX + 1];
	const char *gate = fx_refusal_name(why);
	uint8_t h[FX_BLAKE2B_BYTES];

	/* The logged reason is exactly the one answered. */
	snprintf(why_text, sizeof(why_text), "%s",
	         reason[0] ? reason : "refused (no detail)");
	fx_blake2b(h, buf, len);
	if (len <= FX_LEDGER_MAX_REFUSED_ENVELOPE) {
		r.envelope.data = (uint8_t *)buf;
		r.envelope.len = len;
	}
	r.gate = (char *)gate;
	r.reason = why_text;
	r.evidence_index = evidence;
	r.received_size = len;
	r.received_blake2b.data = h;
	r.received_blake2b.len = FX_BLAKE2B_BYTES;
	e.time_unix = now;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL_REFUSED;
	e.withdrawal_refused = &r;
	return log_negative(a, &e, "withdrawal refused", key_id, seq, digest,
	                    contribution, gate, why_text, out, diag);
}

/* Decides a withdrawal: *out filled — WITHDRAWN, logged and re-assembled,
 * or REJECTED at the first failing check (format, unknown-contribution,
 * signature, not-owner, replay, already-withdrawn), logged with a receipt
 * and changing nothing else. */
static fx_err withdraw(admission *a, const uint8_t *buf, size_t len,
                       fx_verdict *out, uint8_t *contribution, fx_diag *diag)
{
	Flexo__V1__Envelope *env = NULL, *cenv = NULL;
	Flexo__V1__Withdrawal *w = NULL, *wv = NULL;
	Flexo__V1__Contribution *c = NULL;
	Flexo__Ledger__V1__Withdrawal lw = FLEXO__LEDGER__V1__WITHDRAWAL__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	fx_entry *ce = NULL;
	uint8_t digest[FX_BLAKE2B_BYTES], cdigest[FX_BLAKE2B_BYTES];
	uint8_t *bytes = NULL;
	const uint8_t *named = NULL, *sid = NULL;
	char reason[FX_VERDICT_REASON_MAX + 1];
	size_t blen = 0;
	uint64_t cidx, idx, widx;
	int64_t now = (int64_t)time(NULL);
	const fx_member *owner, *signer;
	const seen_key *k;
	const decided *prev;
	fx_diag d = {{0}};
	fx_err err;

	if (len > FX_LEDGER_MAX_REFUSED_ENVELOPE) {
		snprintf(reason, sizeof(reason),
		         "the request is %zu bytes; a withdrawal envelope is "
		         "at most %u",
		         len, FX_LEDGER_MAX_REFUSED_ENVELOPE);
		err = log_refused(a, buf, len, now, FX_REFUSAL_FORMAT, 0,
		                  reason, NULL, NULL, NULL, 0, out, diag);
		goto out;
	}
	if (open_withdrawal(buf, len, &env, &w, digest, &d) != FX_OK) {
		err = log_refused(a, buf, len, now, FX_REFUSAL_FORMAT, 0, d.msg,
		                  NULL, NULL, NULL, 0, out, diag);
		goto out;
	}
	if (w->contribution_digest.len == FX_BLAKE2B_BYTES) {
		named = w->contribution_digest.data;
		memcpy(contribution, named, FX_BLAKE2B_BYTES);
	}
	if ((prev = find_decided(a, digest)) != NULL) {
		err = repeat_verdict(a, prev, out, diag);
		goto out;
	}
	/* Signed by the member its key ID names (whatever else is wrong):
	 * the sequence counts, exactly as for a contribution manifest. */
	if (verified_signer(&a->roster, env, &w->contributor_key_id) != NULL)
		sid = w->contributor_key_id.data;
	err = named == NULL
	          ? FX_ENOTFOUND
	          : fx_ledger_find_contribution(a->l, named, &cidx, &d);
	if (err == FX_ENOTFOUND) {
		err = log_refused(a, buf, len, now, FX_REFUSAL_UNKNOWN, 0,
		                  "the withdrawal names no accepted "
		                  "contribution of this ledger",
		                  digest, named, sid, w->sequence, out, diag);
		goto out;
	}
	if (err != FX_OK) {
		fx_diag_set(diag, err, "%s", d.msg);
		goto out;
	}
	/* Verified as the auditor will: roster in force, this time. */
	err = fx_withdrawal_verify(&wv, NULL, buf, len, &a->roster, now, NULL,
	                           NULL, &d);
	if (err == FX_ENOMEM || err == FX_EINTERNAL) {
		fx_diag_set(diag, err, "%s", d.msg);
		goto out;
	}
	if (err != FX_OK) {
		err = log_refused(a, buf, len, now, FX_REFUSAL_SIGNATURE, 0,
		                  d.msg, digest, named, sid, w->sequence, out,
		                  diag);
		goto out;
	}
	/* fx_withdrawal_verify checked the signer has the key ID named. */
	signer = NULL;
	for (size_t i = 0; i < a->roster.n_members; i++)
		if (memcmp(a->roster.members[i].id, wv->contributor_key_id.data,
		           FX_KEY_ID_BYTES) == 0)
			signer = &a->roster.members[i];
	if (signer == NULL) {
		err = fx_diag_set(diag, FX_EINTERNAL,
		                  "the withdrawal's signer left the roster");
		goto out;
	}
	/* The owner: whoever signed contribution cidx. Checked against the
	 * signer's own key, not the roster, so a contribution whose author
	 * has since left the roster still has an owner. */
	if ((err = fx_ledger_entry_bytes(a->l, cidx, &bytes, &blen, diag)) !=
	    FX_OK)
		goto out;
	ce = flexo__ledger__v1__entry__unpack(NULL, blen, bytes);
	if (ce == NULL ||
	    ce->kind_case != FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED ||
	    open_contribution(ce->accepted->envelope.data,
	                      ce->accepted->envelope.len, &cenv, &c, cdigest,
	                      &d) != FX_OK) {
		err = fx_diag_set(diag, FX_EINTERNAL,
		                  "entry %" PRIu64
		                  " is not a decodable accepted contribution",
		                  cidx);
		goto out;
	}
	if (c->contributor_key_id.len != FX_KEY_ID_BYTES ||
	    memcmp(c->contributor_key_id.data, signer->id, FX_KEY_ID_BYTES) !=
	        0 ||
	    fx_envelope_verify_key(cenv, signer->pk) != 0) {
		char hex[2 * FX_KEY_ID_BYTES + 1];
		const fx_member *m =
		    verified_signer(&a->roster, cenv, &c->contributor_key_id);
		fx_hex(hex, c->contributor_key_id.data, FX_KEY_ID_BYTES);
		snprintf(reason, sizeof(reason),
		         "signed by '%s', who did not make contribution entry "
		         "%" PRIu64 " (by %s%s%s)",
		         signer->name, cidx, m ? "'" : "key ",
		         m ? m->name : hex, m ? "'" : "");
		err = log_refused(a, buf, len, now, FX_REFUSAL_NOT_OWNER, cidx,
		                  reason, digest, named, sid, w->sequence, out,
		                  diag);
		goto out;
	}
	owner = signer;
	k = find_key(a, owner->id);
	if (k != NULL && wv->sequence <= k->seq) {
		snprintf(reason, sizeof(reason),
		         "sequence %" PRIu64 " of '%s' is not above %" PRIu64
		         ", logged for this key in entry %" PRIu64 " (replay?)",
		         wv->sequence, owner->name, k->seq, k->index);
		err = log_refused(a, buf, len, now, FX_REFUSAL_REPLAY, k->index,
		                  reason, digest, named, sid, w->sequence, out,
		                  diag);
		goto out;
	}
	err = fx_ledger_find_withdrawal(a->l, cidx, &widx, &d);
	if (err == FX_OK) {
		snprintf(reason, sizeof(reason),
		         "contribution entry %" PRIu64
		         " was already withdrawn by entry %" PRIu64,
		         cidx, widx);
		err = log_refused(a, buf, len, now,
		                  FX_REFUSAL_ALREADY_WITHDRAWN, widx, reason,
		                  digest, named, sid, w->sequence, out, diag);
		goto out;
	}
	if (err != FX_ENOTFOUND) {
		fx_diag_set(diag, err, "%s", d.msg);
		goto out;
	}
	lw.envelope.data = (uint8_t *)buf;
	lw.envelope.len = len;
	lw.contribution_index = cidx;
	e.time_unix = now;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL;
	e.withdrawal = &lw;
	/* Every refusal was decided above: the ledger refusing the entry
	 * now is an internal inconsistency, not a verdict. */
	if ((err = fx_ledger_append(a->l, &e, &idx, diag)) != FX_OK)
		goto out;
	if ((err = note_seq(a, w->contributor_key_id.data, w->sequence, idx,
	                    diag)) != FX_OK ||
	    (err = note_decided(a, digest, WITHDRAWN, idx,
	                        w->contribution_digest.data, "withdrawal",
	                        "withdrawn by its owner", diag)) != FX_OK)
		goto out;
	fx_log(a->log, FX_INFO,
	       "withdrawal (entry %" PRIu64 ") of entry %" PRIu64 " by '%s'",
	       idx, cidx, owner->name);
	if (reassemble(a, &d) != FX_OK)
		fx_log(a->log, FX_ERROR, "%s", d.msg);
	if ((err = checkpoint(a, diag)) != FX_OK)
		goto out;
	set_verdict(out, WITHDRAWN, "withdrawal", "withdrawn by its owner");
	err = attach_receipt(a, idx, out, diag);
out:
	if (ce != NULL)
		flexo__ledger__v1__entry__free_unpacked(ce, NULL);
	free(bytes);
	fx_wire_free(c ? &c->base : NULL);
	fx_wire_free(cenv ? &cenv->base : NULL);
	fx_wire_free(wv ? &wv->base : NULL);
	fx_wire_free(w ? &w->base : NULL);
	fx_wire_free(env ? &env->base : NULL);
	return err;
}

fx_err admission_request(void *ctx, const Flexo__V1__Request *req,
                         uint8_t **resp, size_t *resp_len, fx_diag *diag)
{
	admission *a = ctx;
	fx_verdict v;
	uint8_t contribution[FX_BLAKE2B_BYTES] = {0};
	fx_err err;

	if (req->body_case != FLEXO__V1__REQUEST__BODY_WITHDRAWAL)
		return fx_diag_set(diag, FX_EINVAL,
		                   "this coordinator answers uploads, file "
		                   "downloads and withdrawals only");
	memset(&v, 0, sizeof(v));
	pthread_mutex_lock(&a->mu);
	err = withdraw(a, req->withdrawal.data, req->withdrawal.len, &v,
	               contribution, diag);
	pthread_mutex_unlock(&a->mu);
	if (err == FX_OK)
		err = encode_verdict(&v, contribution, resp, resp_len, diag);
	free(v.receipt);
	return err;
}

/* ---- opening ---- */

/* Rebuilds the replay counters and the verdict memory from the log. */
static fx_err scan_ledger(admission *a, fx_diag *diag)
{
	uint64_t n = fx_ledger_size(a->l);
	fx_err err = FX_OK;

	for (uint64_t i = 0; i < n && err == FX_OK; i++) {
		uint8_t *bytes = NULL, digest[FX_BLAKE2B_BYTES];
		size_t len = 0;
		fx_entry *e;
		Flexo__V1__Envelope *env = NULL;
		Flexo__V1__Contribution *c = NULL;
		Flexo__V1__Withdrawal *w = NULL;

		if ((err = fx_ledger_entry_bytes(a->l, i, &bytes, &len,
		                                 diag)) != FX_OK)
			break;
		e = flexo__ledger__v1__entry__unpack(NULL, len, bytes);
		free(bytes);
		if (e == NULL) {
			err = fx_diag_set(
			    diag, FX_EFORMAT,
			    "ledger entry %" PRIu64 " does not decode", i);
			break;
		}
		switch (e->kind_case) {
		case FLEXO__LEDGER__V1__ENTRY__KIND_ROSTER:
			if (fx_envelope_open(e->roster->envelope.data,
			                     e->roster->envelope.len,
			                     FX_TYPE_ROSTER, &env,
			                     NULL) != FX_OK)
				break;
			fx_blake2b(a->logged_roster, env->payload.data,
			           env->payload.len);
			a->have_logged_roster = 1;
			break;
		case FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED:
			if (open_contribution(e->accepted->envelope.data,
			                      e->accepted->envelope.len, &env,
			                      &c, digest, NULL) != FX_OK)
				break;
			err = note_seq(a, c->contributor_key_id.data,
			               c->sequence, i, diag);
			if (err == FX_OK)
				err = note_decided(a, digest, ACCEPTED, i, NULL,
				                   "gates",
				                   e->accepted->verdict, diag);
			break;
		case FLEXO__LEDGER__V1__ENTRY__KIND_REJECTED:
			if (open_contribution(e->rejected->envelope.data,
			                      e->rejected->envelope.len, &env,
			                      &c, digest, NULL) != FX_OK)
				break;
			if (verified_signer(&a->roster, env,
			                    &c->contributor_key_id) != NULL)
				err = note_seq(a, c->contributor_key_id.data,
				               c->sequence, i, diag);
			if (err == FX_OK && find_decided(a, digest) == NULL)
				err = note_decided(a, digest, REJECTED, i, NULL,
				                   e->rejected->gate,
				                   e->rejected->reason, diag);
			break;
		case FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL:
			if (open_withdrawal(e->withdrawal->envelope.data,
			                    e->withdrawal->envelope.len, &env,
			                    &w, digest, NULL) != FX_OK)
				break;
			err = note_seq(a, w->contributor_key_id.data,
			               w->sequence, i, diag);
			if (err == FX_OK)
				err = note_decided(
				    a, digest, WITHDRAWN, i,
				    w->contribution_digest.len ==
				            FX_BLAKE2B_BYTES
				        ? w->contribution_digest.data
				        : NULL,
				    "withdrawal", "withdrawn by its owner",
				    diag);
			break;
		case FLEXO__LEDGER__V1__ENTRY__KIND_WITHDRAWAL_REFUSED: {
			/* As live: a retry of the same request gets this
			 * verdict; a verified signature moves the counter. */
			const Flexo__Ledger__V1__WithdrawalRefused *r =
			    e->withdrawal_refused;
			if (r->envelope.len == 0 ||
			    open_withdrawal(r->envelope.data, r->envelope.len,
			                    &env, &w, digest, NULL) != FX_OK)
				break;
			if (verified_signer(&a->roster, env,
			                    &w->contributor_key_id) != NULL)
				err = note_seq(a, w->contributor_key_id.data,
				               w->sequence, i, diag);
			if (err == FX_OK && find_decided(a, digest) == NULL)
				err = note_decided(
				    a, digest, REJECTED, i,
				    w->contribution_digest.len ==
				            FX_BLAKE2B_BYTES
				        ? w->contribution_digest.data
				        : NULL,
				    r->gate, r->reason, diag);
			break;
		}
		default:
			break;
		}
		fx_wire_free(c ? &c->base : NULL);
		fx_wire_free(w ? &w->base : NULL);
		fx_wire_free(env ? &env->base : NULL);
		flexo__ledger__v1__entry__free_unpacked(e, NULL);
	}
	return err;
}

/* Stores a release file as a blob and checks it is the one the release
 * names. */
static fx_err put_release_file(admission *a, const char *path,
                               const ProtobufCBinaryData *want, fx_diag *diag)
{
	uint8_t got[FX_BLAKE2B_BYTES];
	fx_err err = fx_blobstore_put_file(&a->bs, path, got, diag);
	if (err != FX_OK)
		return err;
	if (want->len != FX_BLAKE2B_BYTES ||
	    memcmp(want->data, got, FX_BLAKE2B_BYTES) != 0)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "%s is not the file the release names",
		                   path);
	return FX_OK;
}

/* Logs the roster when it is not the newest logged one (the first entry
 * of an empty ledger, or a rotation the ledger checks against the previous
 * roster), then the release if it is not the newest logged one. */
static fx_err log_genesis(admission *a, const char *release_dir, fx_diag *diag)
{
	Flexo__Ledger__V1__RosterUpdate ru =
	    FLEXO__LEDGER__V1__ROSTER_UPDATE__INIT;
	Flexo__Ledger__V1__AnchorRelease ar =
	    FLEXO__LEDGER__V1__ANCHOR_RELEASE__INIT;
	fx_entry e = FLEXO__LEDGER__V1__ENTRY__INIT;
	uint8_t logged[FX_BLAKE2B_BYTES];
	char path[ADM_STATE_MAX + 128];
	fx_diag d = {{0}};
	fx_err err;

	if (!a->have_logged_roster ||
	    memcmp(a->logged_roster, a->roster.digest, FX_BLAKE2B_BYTES) != 0) {
		ru.envelope.data = a->roster.envelope;
		ru.envelope.len = a->roster.envelope_len;
		e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ROSTER;
		e.roster = &ru;
		if ((err = fx_ledger_append(a->l, &e, NULL, diag)) != FX_OK) {
			fx_diag_prefix(diag, "logging roster v%" PRIu64,
			               a->roster.version);
			return err;
		}
		memcpy(a->logged_roster, a->roster.digest, FX_BLAKE2B_BYTES);
		a->have_logged_roster = 1;
		fx_log(a->log, FX_INFO, "ledger: logged roster v%" PRIu64,
		       a->roster.version);
	}
	err = fx_ledger_latest_release(a->l, &a->anchor_index, logged, &d);
	if (err == FX_OK &&
	    memcmp(logged, a->rel.digest, FX_BLAKE2B_BYTES) == 0)
		return FX_OK;
	if (err != FX_OK && err != FX_ENOTFOUND)
		return fx_diag_set(diag, err, "%s", d.msg);
	/* The files an auditor needs to re-assemble, by their digests. */
	snprintf(path, sizeof(path), "%s/%s", release_dir,
	         a->rel.msg->anchor_file);
	if ((err = put_release_file(a, path, &a->rel.msg->anchor_blake2b,
	                            diag)) != FX_OK)
		return err;
	snprintf(path, sizeof(path), "%s/%s", release_dir,
	         a->rel.msg->router_pub_file);
	if ((err = put_release_file(a, path, &a->rel.msg->router_pub_blake2b,
	                            diag)) != FX_OK)
		return err;
	snprintf(path, sizeof(path), "%s/%s", release_dir,
	         a->rel.msg->tokenizer_file);
	if ((err = put_release_file(a, path, &a->rel.msg->tokenizer_blake2b,
	                            diag)) != FX_OK)
		return err;
	ar.envelope.data = a->rel.envelope;
	ar.envelope.len = a->rel.envelope_len;
	e.kind_case = FLEXO__LEDGER__V1__ENTRY__KIND_ANCHOR;
	e.anchor = &ar;
	if ((err = fx_ledger_append(a->l, &e, &a->anchor_index, diag)) != FX_OK)
		return err;
	fx_log(a->log, FX_INFO, "ledger: logged anchor release v%" PRIu64,
	       a->rel.msg->release_version);
	return FX_OK;
}

fx_err admission_open(admission **out, const adm_config *cfg, fx_diag *diag)
{
	admission *a = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	char path[ADM_STATE_MAX + 128], origin[FX_NAME_MAX + 16];
	const char *org = cfg->origin;
	fx_err err;

	if (cfg->state_dir == NULL || cfg->release_dir == NULL ||
	    cfg->roster_path == NULL || cfg->key_path == NULL ||
	    cfg->public_dir == NULL)
		return fx_diag_set(diag, FX_EINVAL,
		                   "admission needs a state directory, a "
		                   "release directory, a roster, the "
		                   "coordinator key and public text");
	if (strlen(cfg->state_dir) > ADM_STATE_MAX ||
	    strlen(cfg->release_dir) > ADM_STATE_MAX)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "state or release path longer than %d bytes",
		                   ADM_STATE_MAX);
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "admission");
	pthread_mutex_init(&a->mu, NULL);
	a->log = cfg->log;
	a->limits = cfg->limits;
	a->top_k = cfg->top_k;
	fx_roster_init(&a->roster);
	fx_release_init(&a->rel);
	fx_keypair_init(&a->key);

	if ((err = fx_read_file(cfg->roster_path, FX_ROSTER_FILE_MAX, &buf,
	                        &len, diag)) != FX_OK ||
	    (err = fx_roster_verify_initial(
	         &a->roster, buf, len, (int64_t)time(NULL), diag)) != FX_OK) {
		fx_diag_prefix(diag, "roster %s", cfg->roster_path);
		goto fail;
	}
	free(buf);
	buf = NULL;
	if ((err = fx_release_read(cfg->release_dir, &buf, &len, diag)) !=
	        FX_OK ||
	    (err = fx_release_verify(&a->rel, buf, len, &a->roster,
	                             (int64_t)time(NULL), 0, NULL, diag)) !=
	        FX_OK ||
	    (err = fx_release_check_files(&a->rel, cfg->release_dir, diag)) !=
	        FX_OK) {
		fx_diag_prefix(diag, "release %s", cfg->release_dir);
		goto fail;
	}
	free(buf); /* the release keeps its own copy of the envelope */
	buf = NULL;
	if ((err = fx_seckey_load_with(&a->key, cfg->key_path, cfg->pass_file,
	                               cfg->pass_env, diag)) != FX_OK)
		goto fail;
	{
		const fx_member *m = fx_roster_find_key(&a->roster, a->key.pk);
		if (m == NULL || m->role != FX_ROLE_COORDINATOR) {
			err =
			    fx_diag_set(diag, FX_EPERM,
			                "%s is not a coordinator key of roster "
			                "v%" PRIu64,
			                cfg->key_path, a->roster.version);
			goto fail;
		}
	}
	if (org == NULL) {
		snprintf(origin, sizeof(origin), "flexo/%s",
		         a->roster.consortium);
		org = origin;
	}
	snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, ADM_BLOBS);
	if ((err = fx_mkdir_p(cfg->state_dir, 0700, diag)) != FX_OK ||
	    (err = fx_blobstore_open(&a->bs, path, diag)) != FX_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/served", cfg->state_dir);
	if ((err = fx_mkdir_p(path, 0700, diag)) != FX_OK)
		goto fail;
	snprintf(a->served_path, sizeof(a->served_path), "%s/%s",
	         cfg->state_dir, ADM_SERVED);
	snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, ADM_LEDGER);
	if ((err = fx_ledger_open(path, org, &a->l, diag)) != FX_OK)
		goto fail;
	if ((err = scan_ledger(a, diag)) != FX_OK ||
	    (err = log_genesis(a, cfg->release_dir, diag)) != FX_OK)
		goto fail;
	/* The model files are used from the blob store: exactly the bytes
	 * the ledger names. */
	if ((err = fx_blobstore_path(&a->bs, a->rel.msg->anchor_blake2b.data,
	                             a->anchor_path, sizeof(a->anchor_path),
	                             diag)) != FX_OK ||
	    (err = fx_blobstore_path(
	         &a->bs, a->rel.msg->router_pub_blake2b.data, a->rpub_path,
	         sizeof(a->rpub_path), diag)) != FX_OK)
		goto fail;
	if ((err = fx_modelfile_load(&a->anchor, a->anchor_path, false,
	                             diag)) != FX_OK)
		goto fail;
	a->have_anchor = 1;
	if ((err = fx_routerpub_load(&a->rpub, a->rpub_path,
	                             a->anchor.cfg.n_layers,
	                             a->anchor.cfg.d_model, diag)) != FX_OK)
		goto fail;
	if ((err = fx_corpus_load(&a->pub, cfg->public_dir, cfg->heldout_frac,
	                          diag)) != FX_OK) {
		fx_diag_prefix(diag, "public text %s", cfg->public_dir);
		goto fail;
	}
	fx_model_set_threads(cfg->threads);
	a->anchor_bpb = -1; /* measured by the first public gate, then kept */
	/* A checkpoint now: also proves at start that this key is the log's
	 * (the ledger refuses any other) rather than at the first verdict. */
	if ((err = checkpoint(a, diag)) != FX_OK)
		goto fail;
	fx_log(a->log, FX_INFO,
	       "admission: ledger %s (%" PRIu64 " entries), release v%" PRIu64
	       ", public held-out %zu bytes",
	       fx_ledger_origin(a->l), fx_ledger_size(a->l),
	       a->rel.msg->release_version, a->pub.n_heldout);
	*out = a;
	return FX_OK;
fail:
	free(buf);
	admission_close(a);
	return err;
}

void admission_close(admission *a)
{
	if (a == NULL)
		return;
	fx_ledger_close(a->l);
	if (a->have_anchor)
		fx_model_release(&a->anchor);
	fx_routerpub_release(&a->rpub);
	fx_corpus_release(&a->pub);
	fx_keypair_release(&a->key);
	fx_release_release(&a->rel);
	fx_roster_release(&a->roster);
	free(a->keys);
	free(a->dec);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
