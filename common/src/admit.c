/* Log-less admission (admit.h) over the contribution module's verifier
 * (contrib.h): signature by a roster contributor valid now, manifest
 * well-formed, payload size and streamed digest equal to the manifest's.
 * Every refusal becomes a REJECTED verdict naming its gate; only failures
 * to decide (memory, internal) are errors. */
#include "flexo/admit.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "flexo/contrib.h"

/* The gate a verifier error belongs to. */
static const char *gate_of(fx_err err)
{
	switch (err) {
	case FX_EBADSIG:
		return "signature";
	case FX_EEXPIRED:
	case FX_EPERM:
		return "roster";
	case FX_EROLLBACK:
		return "sequence";
	case FX_EMISMATCH:
		return "payload";
	default:
		return "manifest";
	}
}

static fx_err decide(const fx_roster *roster, const uint8_t *env, size_t len,
                     const fx_contrib_expect *x, fx_verdict *out, fx_diag *diag)
{
	fx_contrib c;
	fx_diag d = {{0}};
	fx_err err;

	fx_contrib_init(&c);
	err =
	    fx_contrib_verify(&c, env, len, roster, (int64_t)time(NULL), x, &d);
	if (err == FX_ENOMEM || err == FX_EINTERNAL) {
		fx_diag_set(diag, err, "%s", d.msg);
		goto out;
	}
	if (err != FX_OK) {
		out->decision = FLEXO__V1__DECISION__DECISION_REJECTED;
		snprintf(out->gate, sizeof(out->gate), "%s", gate_of(err));
		snprintf(out->reason, sizeof(out->reason), "%s", d.msg);
		err = FX_OK;
		goto out;
	}
	out->decision = FLEXO__V1__DECISION__DECISION_ACCEPTED;
	snprintf(out->gate, sizeof(out->gate), "%s",
	         x && x->payload_digest ? "payload" : "signature");
	snprintf(out->reason, sizeof(out->reason),
	         "signed by contributor '%s'%s", c.signer,
	         x && x->payload_digest ? "; payload digest verified" : "");
out:
	fx_contrib_release(&c);
	return err;
}

fx_err fx_precheck_signed(void *ctx, const uint8_t *envelope, size_t len,
                          fx_verdict *out, fx_diag *diag)
{
	return decide(ctx, envelope, len, NULL, out, diag);
}

fx_err fx_admit_signed(void *ctx, const fx_admit_input *in, fx_verdict *out,
                       fx_diag *diag)
{
	fx_contrib_expect x;

	memset(&x, 0, sizeof(x));
	x.payload_digest = in->digest;
	x.payload_size = in->size;
	return decide(ctx, in->envelope, in->envelope_len, &x, out, diag);
}
