/* A real but log-less admission for the service (service.h): the
 * contribution's signature by a roster contributor and the payload's size
 * and digest against the signed manifest. Used by the transport tests, the
 * upload benchmark and `serve` when no ledger is wired in; the full gates
 * (roster validity, anchor, sequence, model checks, ledger) plug into the
 * same fx_admit_fn interface. */
#ifndef FLEXO_ADMIT_H
#define FLEXO_ADMIT_H

#include "flexo/roster.h"
#include "flexo/service.h"

/* ctx is a const fx_roster * (verified by the caller). fx_contrib_verify
 * decides: the envelope must be a well-formed Contribution signed by a
 * contributor of the roster whose key is valid now, and the staged
 * payload's size and BLAKE2b-256 (streamed by the service) must equal the
 * manifest's. REJECTED names gate "signature", "roster", "manifest" or
 * "payload" with the verifier's sentence; ACCEPTED otherwise. */
fx_err fx_admit_signed(void *ctx, const fx_admit_input *in, fx_verdict *out,
                       fx_diag *diag);

/* The same signature and roster checks at UploadBegin, so an unsigned or
 * foreign contribution is refused before any payload is taken. */
fx_err fx_precheck_signed(void *ctx, const uint8_t *envelope, size_t len,
                          fx_verdict *out, fx_diag *diag);

#endif
