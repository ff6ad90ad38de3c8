/* The coordinator's real admission (DESIGN §3 "Gates", §4): every gate in
 * order, every verdict logged in the ledger with a signed checkpoint and a
 * receipt, accepted payloads moved into the blob store, the served model
 * re-assembled after each acceptance or withdrawal. Plugs into the service
 * (service.h) as its precheck, admit and request callbacks. */
#ifndef FLEXO_COORD_ADMISSION_H
#define FLEXO_COORD_ADMISSION_H

#include "flexo/gates.h"
#include "flexo/log.h"
#include "flexo/service.h"

/* Files inside the state directory. */
#define ADM_LEDGER      "ledger.db"
#define ADM_BLOBS       "blobs"
#define ADM_SERVED      "served/model.safetensors"
#define ADM_STATE_MAX   3000       /* bytes of the state directory path */
#define ADM_MAX_KEYS    65536      /* contributor keys remembered for replay */
#define ADM_MAX_DECIDED (1u << 20) /* verdicts remembered for retries */

/* What admission needs; every path is read at open and not kept, except
 * log (must outlive the admission). */
typedef struct adm_config {
	const char *state_dir;   /* ledger.db, blobs/, served/ (created) */
	const char *release_dir; /* the served release: release.bin + files */
	const char *roster_path; /* signed roster (verified with its roots) */
	const char *key_path;    /* coordinator key of the roster: signs the
	                          * checkpoints */
	const char *pass_file;   /* passphrase of a sealed key, or NULL */
	const char *pass_env;
	const char *origin;     /* ledger origin; NULL = "flexo/<consortium>" */
	const char *public_dir; /* public text; its held-out part feeds the
	                         * public-loss and routing-capture gates */
	double heldout_frac;    /* held-out fraction, as the anchor's */
	fx_gate_limits limits;
	int top_k;            /* of the served model, 0 = min(4, E) */
	int threads;          /* BLAS threads for the gates */
	const fx_logger *log; /* may be NULL */
} adm_config;

/* Defaults: no paths, held-out 0.1, fx_gate_limits_defaults, top_k 0,
 * 1 thread. */
void adm_config_init(adm_config *c);

typedef struct admission admission;

/* Verifies roster and release (and the release's files), opens or creates
 * the ledger; on an empty ledger logs the roster and the anchor release
 * (their files stored as blobs, so an auditor can re-assemble) and signs a
 * first checkpoint; on an existing one refuses a ledger of another
 * consortium or release history it cannot extend. Loads the anchor, r_pub
 * and the public held-out text, and rebuilds from the ledger what replay
 * and retry checks need. Free with admission_close. */
fx_err admission_open(admission **out, const adm_config *cfg, fx_diag *diag);
void admission_close(admission *a);

/* Origin of the ledger, the served model's path and its ledger size; valid
 * until admission_close. */
const char *admission_origin(const admission *a);
const char *admission_served_path(const admission *a);

/* The service callbacks; ctx is the admission. Thread-safe (one lock). */
fx_err admission_precheck(void *ctx, const uint8_t *envelope, size_t len,
                          fx_verdict *out, fx_diag *diag);
fx_err admission_admit(void *ctx, const fx_admit_input *in, fx_verdict *out,
                       fx_diag *diag);
fx_err admission_request(void *ctx, const Flexo__V1__Request *req,
                         uint8_t **resp, size_t *resp_len, fx_diag *diag);

#endif
