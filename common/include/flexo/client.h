/* The contributor's side of the wire: one REQ socket that only dials out
 * (tcp://, ipc://, or tls+tcp:// trusting one pinned CA), uploads a signed
 * contribution's payload in chunks — resuming from the coordinator's
 * acknowledged offset after a dropped connection or a coordinator restart —
 * waits for the verdict, and downloads release files in chunks. */
#ifndef FLEXO_CLIENT_H
#define FLEXO_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/hash.h"
#include "flexo/log.h"
#include "flexo/service.h"
#include "flexo/transport.h"

typedef struct fx_client_opts {
	const char *url;
	fx_tls_opts tls;      /* ca_file (+ server_name) for tls+tcp:// */
	int timeout_ms;       /* one exchange (default FX_NET_TIMEOUT_MS) */
	int verdict_ms;       /* waiting for admission (default 10 min) */
	int retries;          /* failed exchanges in a row before giving up
	                       * (default 30) */
	size_t chunk;         /* payload bytes per chunk, 1..FX_WIRE_CHUNK_MAX
	                       * (default 4 MiB) */
	uint64_t max_rate;    /* bytes per second, 0 = unlimited */
	const fx_logger *log; /* progress and retries; may be NULL */
} fx_client_opts;

/* Defaults as documented above; url NULL. */
void fx_client_opts_init(fx_client_opts *o);

typedef struct fx_client fx_client;

/* Opens the socket and starts dialing (the first connection need not be up
 * yet: exchanges wait for it up to their timeout). o must outlive c. */
fx_err fx_client_open(fx_client **out, const fx_client_opts *o, fx_diag *diag);
void fx_client_close(fx_client *c);

/* Waits (up to the exchange timeout) until the coordinator answers: sends
 * an empty request, which a coordinator answers with a protocol Error.
 * FX_OK once it answered. */
fx_err fx_client_ping(fx_client *c, fx_diag *diag);

/* The outcome of a submission. receipt is malloc'd (may be NULL). */
typedef struct fx_submit_result {
	int decision; /* Flexo__V1__Decision */
	char gate[FX_VERDICT_GATE_MAX + 1];
	char reason[FX_VERDICT_REASON_MAX + 1];
	uint64_t ledger_index;
	uint8_t contribution_digest[FX_BLAKE2B_BYTES];
	uint8_t *receipt;
	size_t receipt_len;
	unsigned resumes; /* times the upload began again after a failure */
	unsigned rewinds; /* acks below the bytes sent: continued from there */
	uint64_t sent;    /* payload bytes sent, resends included */
} fx_submit_result;

void fx_submit_result_release(fx_submit_result *r);

/* Uploads payload_path under the signed contribution `envelope` and waits
 * for the verdict. A dropped connection, a timeout or a coordinator restart
 * is retried (up to o->retries failures in a row), continuing from the
 * offset the coordinator acknowledges, so nothing is lost or sent twice
 * into the staged file. A refusal at the start (precheck) is a verdict like
 * any other. *out is written on success: FX_OK means a verdict arrived, not
 * that it is an acceptance. */
fx_err fx_client_submit(fx_client *c, const uint8_t *envelope, size_t len,
                        const char *payload_path, fx_submit_result *out,
                        fx_diag *diag);

/* Downloads the release file `name` into dest (atomically: temporary file,
 * fsync, rename), in chunks, refusing (FX_ETOOBIG) one larger than
 * max_size. Retries like fx_client_submit, from the bytes already held. */
fx_err fx_client_fetch(fx_client *c, const char *name, const char *dest,
                       uint64_t max_size, fx_diag *diag);

#endif
