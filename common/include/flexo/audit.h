/* The auditor's library: verifies a ledger export without trusting the
 * coordinator — every entry's signature and its roster, the Merkle tree
 * against every signed checkpoint, consistency with the checkpoint accepted
 * on the previous audit (state file), the withdrawal, refused-withdrawal and
 * assembly rules, and optionally the blobs the assemblies name. Signature
 * checks run on several threads. */
#ifndef FLEXO_AUDIT_H
#define FLEXO_AUDIT_H

#include <stdint.h>

#include "flexo/checkpoint.h"
#include "flexo/err.h"
#include "flexo/log.h"
#include "flexo/note.h"
#include "flexo/roster.h"

#define FX_AUDIT_MAX_THREADS     64
#define FX_AUDIT_MAX_CHECKPOINTS (1u << 20)
#define FX_AUDIT_STATE_MAX       4096 /* bytes of a state file */
#define FX_AUDIT_NO_INDEX        UINT64_MAX

/* What an auditor remembers between runs: the log key it trusts and the
 * newest checkpoint it accepted. */
typedef struct fx_audit_state {
	fx_note_verifier log;
	int has_checkpoint;
	fx_checkpoint checkpoint;
} fx_audit_state;

/* Reads a state file. FX_ENOTFOUND if it does not exist. Text format:
 * "flexo-audit-state 1\nvkey <vkey>\nsize <n>\nroot <hex>\n" (the last two
 * lines only once a checkpoint was accepted). */
fx_err fx_audit_state_load(const char *path, fx_audit_state *out,
                           fx_diag *diag);
/* Writes it atomically (temporary file, fsync, rename). */
fx_err fx_audit_state_save(const char *path, const fx_audit_state *st,
                           fx_diag *diag);

typedef struct fx_audit_opts {
	const fx_note_verifier *trusted; /* log key; NULL: the state's */
	const char *state_path;          /* NULL: no memory between runs */
	int threads;                     /* signature threads, 1..64 */
	int reassemble;          /* rebuild every assembly from the blobs */
	const fx_logger *log;    /* progress lines; may be NULL */
	const fx_roster *pinned; /* the consortium's roster as the
	                          * auditor knows it; NULL: trust the
	                          * log's first roster on its own
	                          * root signatures */
} fx_audit_opts;

typedef struct fx_audit_report {
	uint64_t entries;
	uint64_t by_kind[16];   /* indexed by Entry kind case - 10 */
	uint64_t signatures;    /* envelope signatures verified */
	uint64_t checkpoints;   /* signed checkpoints verified */
	uint64_t unattested;    /* entries after the newest checkpoint */
	fx_checkpoint newest;   /* newest checkpoint (size 0 if none) */
	uint64_t previous_size; /* accepted on the previous audit, or 0 */
	uint64_t assemblies;
	uint64_t blobs_checked; /* with reassemble */
	uint64_t reassembled;   /* assemblies rebuilt to their logged digest */
	uint64_t failed_index;  /* entry named by a failure, or NO_INDEX */
	double seconds;
} fx_audit_report;

/* Audits the export in dir. FX_OK when every check passes (and the state
 * file, if any, then moves to the newest checkpoint); otherwise an error
 * whose diag names the failing entry or checkpoint and the reason, and
 * rep->failed_index the entry when one is to blame. rep is always filled
 * with what was counted. */
fx_err fx_audit_export(const char *dir, const fx_audit_opts *opts,
                       fx_audit_report *rep, fx_diag *diag);

#endif
