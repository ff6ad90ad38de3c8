/* The coordinator's contribution endpoint: an nng REP socket served by a
 * pool of asynchronous contexts (one nng_ctx + nng_aio state machine each),
 * listening on any mix of tls+tcp://, tcp:// and ipc://. It runs upload
 * sessions (upload.h), serves the release directory's files in chunks, and
 * hands each complete upload to a pluggable admission function on one
 * admission thread, sending its verdict (and receipt) back. */
#ifndef FLEXO_SERVICE_H
#define FLEXO_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "flexo.pb-c.h"
#include "flexo/err.h"
#include "flexo/log.h"
#include "flexo/transport.h"
#include "flexo/upload.h"

#define FX_SERVICE_MAX_URLS     8
#define FX_SERVICE_MAX_CONTEXTS 256
#define FX_VERDICT_GATE_MAX     64
#define FX_VERDICT_REASON_MAX   1024

/* What admission decided. decision is a Flexo__V1__Decision; gate names the
 * gate that decided ("signature", "payload", ...), reason says what was
 * wrong in one sentence. receipt (optional) is the encoded ledger receipt,
 * malloc'd: the service frees it. */
typedef struct fx_verdict {
	int decision;
	char gate[FX_VERDICT_GATE_MAX + 1];
	char reason[FX_VERDICT_REASON_MAX + 1];
	uint64_t ledger_index;
	uint8_t *receipt;
	size_t receipt_len;
} fx_verdict;

/* A complete upload, as admission sees it. All pointers are valid for the
 * call only. staged_path may be renamed away by admission (e.g. into a
 * blob store); whatever is left is removed afterwards. digest and size were
 * computed by the service while the bytes arrived. */
typedef struct fx_admit_input {
	const uint8_t
	    *envelope; /* encoded Envelope of a Contribution, as sent */
	size_t envelope_len;
	const char *staged_path;
	const uint8_t *digest; /* FX_BLAKE2B_BYTES */
	uint64_t size;
} fx_admit_input;

/* Early refusal at UploadBegin, before any payload is taken: FX_OK with
 * out->decision == REJECTED refuses (the verdict goes back at once), FX_OK
 * with ACCEPTED lets the upload start. Another fx_err answers an Error. */
typedef fx_err (*fx_precheck_fn)(void *ctx, const uint8_t *envelope, size_t len,
                                 fx_verdict *out, fx_diag *diag);

/* Decides a complete upload: FX_OK with *out filled (accepted or rejected;
 * the verdict is stored and sent, also to a contributor that asks again
 * after a drop). Any other fx_err means "could not decide": the contributor
 * gets an Error and may ask again. Called on the admission thread only, one
 * upload at a time, so it may keep state in ctx without locking. */
typedef fx_err (*fx_admit_fn)(void *ctx, const fx_admit_input *in,
                              fx_verdict *out, fx_diag *diag);

/* Requests the service does not handle itself (withdrawal, receipt,
 * ledger): *resp receives an encoded Response, malloc'd (the service frees
 * it). Called on a context's thread, possibly concurrently. */
typedef fx_err (*fx_request_fn)(void *ctx, const Flexo__V1__Request *req,
                                uint8_t **resp, size_t *resp_len,
                                fx_diag *diag);

typedef struct fx_service_config {
	const char *urls[FX_SERVICE_MAX_URLS]; /* listeners */
	size_t n_urls;
	fx_tls_opts tls;         /* certificate and key for tls+tcp:// */
	const char *staging_dir; /* upload sessions (created 0700) */
	const char *release_dir; /* served by name; NULL = no downloads */
	fx_upload_limits limits;
	int contexts;   /* concurrent exchanges, 1..FX_SERVICE_MAX_CONTEXTS */
	int timeout_ms; /* reply send timeout */
	fx_precheck_fn precheck; /* may be NULL */
	fx_admit_fn admit;       /* required */
	fx_request_fn other;     /* may be NULL */
	void *ctx;               /* passed to the three callbacks */
	const fx_logger *log;    /* may be NULL */
} fx_service_config;

/* Defaults: no URLs, 32 contexts, 30 s timeout, fx_upload_limits_default. */
void fx_service_config_init(fx_service_config *cfg);

typedef struct fx_service fx_service;

/* Opens the upload store (reloading checkpointed sessions), the socket,
 * every listener (each with NNG_OPT_RECVMAXSZ = FX_WIRE_MSG_MAX) and the
 * contexts. cfg and everything it points to must outlive the service. */
fx_err fx_service_start(fx_service **out, const fx_service_config *cfg,
                        fx_diag *diag);

/* Closes the socket, waits for every context and the admission thread,
 * frees everything. Sessions stay checkpointed on disk. NULL is fine. */
void fx_service_stop(fx_service *s);

#endif
