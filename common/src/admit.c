/* Log-less admission (admit.h): the contribution's signature by a roster
 * contributor, its manifest's consortium and key ID, and the staged
 * payload's size and digest against the manifest. Every refusal becomes a
 * REJECTED verdict naming its gate; only internal failures are errors. */
#include "flexo/admit.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "flexo/hash.h"
#include "flexo/wire.h"

static fx_err decide(fx_verdict *out, int decision, const char *gate,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static fx_err decide(fx_verdict *out, int decision, const char *gate,
                     const char *fmt, ...)
{
	va_list ap;

	out->decision = decision;
	snprintf(out->gate, sizeof(out->gate), "%s", gate);
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
	return FX_OK;
}

#define REJECT(out, gate, ...)                                                 \
	decide(out, FLEXO__V1__DECISION__DECISION_REJECTED, gate, __VA_ARGS__)

/* Signature, roster and manifest checks. On an ACCEPTED result *c holds the
 * decoded contribution (caller frees with fx_wire_free). */
static fx_err check(const fx_roster *roster, const uint8_t *env, size_t len,
                    Flexo__V1__Contribution **c, fx_verdict *out)
{
	Flexo__V1__Envelope *e = NULL;
	Flexo__V1__Contribution *m = NULL;
	const fx_member *signer = NULL;
	fx_diag d = {{0}};
	fx_err err;

	*c = NULL;
	if (fx_envelope_open(env, len, FX_TYPE_CONTRIBUTION, &e, &d) != FX_OK) {
		err = REJECT(out, "manifest", "contribution envelope: %s", d.msg);
		goto out;
	}
	err = fx_roster_find_signer(roster, e, FX_ROLE_CONTRIBUTOR,
	                            (int64_t)time(NULL), &signer, &d);
	if (err != FX_OK) {
		err = REJECT(out, err == FX_EEXPIRED ? "roster" : "signature",
		             "%s", d.msg);
		goto out;
	}
	if (fx_wire_decode(&flexo__v1__contribution__descriptor,
	                   e->payload.data, e->payload.len, FX_WIRE_DOC_MAX,
	                   (ProtobufCMessage **)&m, &d) != FX_OK) {
		err = REJECT(out, "manifest", "contribution: %s", d.msg);
		goto out;
	}
	if (strcmp(m->consortium, roster->consortium) != 0) {
		err = REJECT(out, "manifest",
		             "contribution names consortium '%s', not '%s'",
		             m->consortium, roster->consortium);
		goto out;
	}
	if (memcmp(m->contributor_key_id.data, signer->id, FX_KEY_ID_BYTES) !=
	    0) {
		err = REJECT(out, "signature",
		             "contributor_key_id is not the key of signer '%s'",
		             signer->name);
		goto out;
	}
	err = decide(out, FLEXO__V1__DECISION__DECISION_ACCEPTED, "signature",
	             "signed by contributor '%s'", signer->name);
	*c = m;
	m = NULL;
out:
	fx_wire_free(m ? &m->base : NULL);
	fx_wire_free(e ? &e->base : NULL);
	return err;
}

fx_err fx_precheck_signed(void *ctx, const uint8_t *envelope, size_t len,
                          fx_verdict *out, fx_diag *diag)
{
	Flexo__V1__Contribution *c = NULL;
	fx_err err;

	(void)diag;
	err = check(ctx, envelope, len, &c, out);
	fx_wire_free(c ? &c->base : NULL);
	return err;
}

fx_err fx_admit_signed(void *ctx, const fx_admit_input *in, fx_verdict *out,
                       fx_diag *diag)
{
	Flexo__V1__Contribution *c = NULL;
	char want[2 * FX_BLAKE2B_BYTES + 1], got[2 * FX_BLAKE2B_BYTES + 1];
	fx_err err;

	(void)diag;
	err = check(ctx, in->envelope, in->envelope_len, &c, out);
	if (err != FX_OK || c == NULL)
		return err;
	if (c->payload_size != in->size)
		err = REJECT(out, "payload",
		             "payload is %llu bytes, the manifest says %llu",
		             (unsigned long long)in->size,
		             (unsigned long long)c->payload_size);
	else if (c->payload_blake2b.len != FX_BLAKE2B_BYTES ||
	         sodium_memcmp(c->payload_blake2b.data, in->digest,
	                       FX_BLAKE2B_BYTES) != 0)
		err = REJECT(out, "payload",
		             "payload BLAKE2b-256 %s, the manifest says %s",
		             fx_hex(got, in->digest, FX_BLAKE2B_BYTES),
		             c->payload_blake2b.len == FX_BLAKE2B_BYTES
		                 ? fx_hex(want, c->payload_blake2b.data,
		                          FX_BLAKE2B_BYTES)
		                 : "nothing");
	else
		err = decide(out, FLEXO__V1__DECISION__DECISION_ACCEPTED,
		             "payload", "signature and payload digest verified");
	fx_wire_free(&c->base);
	return err;
}
