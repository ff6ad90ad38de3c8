/* Receipts: what a contributor keeps to prove its entry is in the log — the
 * entry bytes, its index, a signed checkpoint covering it and the inclusion
 * proof — and the library call that checks one against the log's key. */
#ifndef FLEXO_RECEIPT_H
#define FLEXO_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/checkpoint.h"
#include "flexo/err.h"
#include "flexo/ledger.h"
#include "flexo/note.h"
#include "flexo/wire.h"

#define FX_RECEIPT_MAX      (FX_LEDGER_MAX_ENTRY + (64u << 10))
#define FX_RECEIPT_GATE_MAX 64

/* What a verified receipt says. */
typedef struct fx_receipt_info {
	uint64_t index;
	fx_checkpoint checkpoint;
	uint8_t leaf[FX_HASH_LEN];
	int kind;                   /* Flexo__Ledger__V1__Entry__KindCase */
	uint8_t payload_digest[32]; /* accepted contributions, else zero */
	/* BLAKE2b-256 of the request the entry logs, so a sender can tell
	 * the entry answers exactly what it sent: the envelope of an
	 * accepted / rejected contribution or a withdrawal, the
	 * received_blake2b of a refused withdrawal. has_request 0 for other
	 * kinds. */
	int has_request;
	uint8_t request_digest[32];
	/* The gate a rejected contribution or refused withdrawal names
	 * (truncated to FX_RECEIPT_GATE_MAX bytes), else "". */
	char gate[FX_RECEIPT_GATE_MAX + 1];
} fx_receipt_info;

/* Issues a receipt (an encoded flexo.v1.Receipt) for entry `index` against the
 * newest checkpoint; FX_ESTATE if no checkpoint covers it yet. *out is
 * malloc'd; the caller frees it. */
fx_err fx_receipt_issue(fx_ledger *l, uint64_t index, uint8_t **out,
                        size_t *len, fx_diag *diag);

/* Verifies a receipt: checkpoint signed by `log` (origin = log name), the
 * index inside it, the inclusion proof from SHA-256(0x00 ‖ entry) to its
 * root, and that the entry decodes and carries that index. Fills *info on
 * success (may be NULL). */
__attribute__((warn_unused_result)) fx_err
fx_receipt_verify(const uint8_t *buf, size_t len, const fx_note_verifier *log,
                  fx_receipt_info *info, fx_diag *diag);

#endif
