/* The contributor's view of the coordinator's ledger: checking a receipt
 * against the log key of a roster coordinator, and the local record of
 * what this contributor submitted and withdrew (state/submissions), which
 * `status` prints. Shared by submit, withdraw and status. */
#ifndef FLEXO_CONTRIBUTOR_LEDGER_LOCAL_H
#define FLEXO_CONTRIBUTOR_LEDGER_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/hash.h"

#define SUBMISSIONS_FILE "submissions"
#define SEQUENCE_FILE    "sequence"
#define SUBMISSIONS_MAX  (16u << 20) /* bytes of the record */

/* Verifies an encoded receipt against the log key of each coordinator of
 * the roster in state_dir/roster.bin (the one `fetch` verified), under
 * origin (NULL = "flexo/<consortium>"). On success writes a one-line
 * description into msg[cap]; on failure the reason into diag. */
fx_err receipt_check(const char *state_dir, const char *origin,
                     const uint8_t *receipt, size_t len, char *msg, size_t cap,
                     fx_diag *diag);

/* receipt_check, and then that the receipted entry is the coordinator's
 * answer to exactly `request` (the bytes this contributor sent): its kind
 * is `kind` (a Flexo__Ledger__V1__Entry__KindCase), it logs a request whose
 * BLAKE2b-256 is that of `request`, and, when gate is not NULL, it names
 * that gate. A receipt for some other entry proves nothing about this
 * request. *index: the entry's index, as the receipt proves it. */
fx_err receipt_check_answer(const char *state_dir, const char *origin,
                            const uint8_t *receipt, size_t len, int kind,
                            const uint8_t *request, size_t request_len,
                            const char *gate, uint64_t *index, char *msg,
                            size_t cap, fx_diag *diag);

/* Appends "KIND HEX DECISION GATE INDEX" to state_dir/submissions (fsynced;
 * the file is rewritten atomically with the new line). KIND is
 * "contribution", "withdrawal" (withdrawn) or "refusal" (a refused
 * withdrawal; HEX is then the contribution it named). */
fx_err record_append(const char *state_dir, const char *kind,
                     const uint8_t digest[FX_BLAKE2B_BYTES],
                     const char *decision, const char *gate, uint64_t index,
                     fx_diag *diag);

/* The contributor's sequence counter (state_dir/sequence), shared by
 * contributions and withdrawals: reads the last number used (0 if none),
 * stores last + 1 (atomically, fsynced) BEFORE returning it, so no number
 * is ever signed twice. */
fx_err sequence_next(const char *state_dir, uint64_t *out, fx_diag *diag);

#endif
