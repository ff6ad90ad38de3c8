/* The contribution ledger: an append-only SQLite log of protobuf entries
 * (roster, anchor release, accepted / rejected contribution, withdrawal,
 * assembly) under an RFC 9162 Merkle tree, signed C2SP checkpoints that never
 * contradict each other, and the export an auditor verifies. Byte formats:
 * docs/ledger.md. */
#ifndef FLEXO_LEDGER_H
#define FLEXO_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/checkpoint.h"
#include "flexo/err.h"
#include "flexo/merkle.h"
#include "ledger.pb-c.h"

#define FX_LEDGER_SCHEMA_VERSION 1
#define FX_LEDGER_ENTRY_VERSION  1
#define FX_LEDGER_MAX_ENTRY      (4u << 20)       /* bytes of one entry */
#define FX_LEDGER_MAX_ENTRIES    (1ull << 40)     /* entries in one log */
#define FX_LEDGER_MAX_INCLUDED   (1u << 20)       /* experts in an assembly */
#define FX_LEDGER_MAX_PAYLOAD    (4u << 20)       /* envelope payload bytes */

/* Signature context of every ledger envelope (PAE first field). */
#define FX_LEDGER_ENV_CONTEXT "flexo-v1"
#define FX_LEDGER_WITHDRAWAL_TYPE "flexo.ledger.v1.WithdrawalRequest"

/* Export file names inside an export directory. */
#define FX_EXPORT_ENTRIES     "entries.bin"
#define FX_EXPORT_LEAVES      "leaves.bin"
#define FX_EXPORT_CHECKPOINTS "checkpoints.bin"
#define FX_EXPORT_VKEY        "log.vkey"
#define FX_EXPORT_BLOBS       "blobs"

typedef Flexo__Ledger__V1__Entry fx_entry;
typedef Flexo__Ledger__V1__SignedEnvelope fx_envelope;

/* ---- envelopes ---- */

/* The signed message PAE(context, type, payload) =
 * le64(3) ‖ le64(|ctx|) ‖ ctx ‖ le64(|type|) ‖ type ‖ le64(|payload|) ‖
 * payload. Writes into *buf (grown with realloc as needed; the caller frees
 * it) and sets *len. */
fx_err fx_ledger_pae(const char *type, const uint8_t *payload, size_t plen,
                     uint8_t **buf, size_t *cap, size_t *len);

/* Signs payload as `type` with sk (libsodium 64-byte secret key); writes the
 * signer's public key and the signature. The caller points an fx_envelope's
 * fields at type, payload, pk and sig. sk is only read. */
fx_err fx_ledger_env_sign(const char *type, const uint8_t *payload,
                          size_t plen, const uint8_t sk[64], uint8_t pk[32],
                          uint8_t sig[64], fx_diag *diag);

/* Verifies env's signature by env->public_key. *scratch / *cap is a reusable
 * buffer (may start NULL / 0; the caller frees it): lets a thread verify
 * millions of envelopes without allocating each time. */
__attribute__((warn_unused_result)) fx_err
fx_ledger_env_verify(const fx_envelope *env, uint8_t **scratch, size_t *cap,
                     fx_diag *diag);

/* ---- the ledger ---- */

typedef struct fx_ledger fx_ledger;

/* Opens (creating if missing) the ledger database at path. A new ledger
 * needs `origin` (the log's name in checkpoints, a note key name); an
 * existing one keeps its own and `origin`, if not NULL, must match. Runs
 * schema migrations up to FX_LEDGER_SCHEMA_VERSION; refuses a newer schema.
 * WAL journal, synchronous=FULL. Free with fx_ledger_close. */
fx_err fx_ledger_open(const char *path, const char *origin, fx_ledger **out,
                      fx_diag *diag);
void fx_ledger_close(fx_ledger *l);

uint64_t fx_ledger_size(const fx_ledger *l);
/* Valid until fx_ledger_close. */
const char *fx_ledger_origin(const fx_ledger *l);

/* Appends e: sets its version, index (the current size) and, if zero, its
 * time; checks it (envelope signatures of anchors, accepted contributions
 * and withdrawals; a withdrawal names an accepted, not yet withdrawn
 * contribution and is signed by the same key; an assembly includes exactly
 * the live contributions), stores its encoding and its Merkle nodes in one
 * transaction. *index may be NULL. A refused entry changes nothing. */
fx_err fx_ledger_append(fx_ledger *l, fx_entry *e, uint64_t *index,
                        fx_diag *diag);

/* Groups many appends in one transaction (bulk import, benchmarks). Between
 * begin and commit, appends are not durable; rollback undoes them all. */
fx_err fx_ledger_begin(fx_ledger *l, fx_diag *diag);
fx_err fx_ledger_commit(fx_ledger *l, fx_diag *diag);
void fx_ledger_rollback(fx_ledger *l);

/* A malloc'd copy of the exact bytes of entry `index` (caller frees). */
fx_err fx_ledger_entry_bytes(fx_ledger *l, uint64_t index, uint8_t **bytes,
                             size_t *len, fx_diag *diag);

/* Accepted contributions not withdrawn, ascending; *idx malloc'd (caller
 * frees, may be NULL when *n is 0). What the next assembly must include. */
fx_err fx_ledger_live(fx_ledger *l, uint64_t **idx, size_t *n, fx_diag *diag);

/* Root and proofs from stored nodes: O(log n) reads, no rehashing. */
fx_err fx_ledger_root(fx_ledger *l, uint64_t size, uint8_t root[FX_HASH_LEN],
                      fx_diag *diag);
fx_err fx_ledger_inclusion_proof(fx_ledger *l, uint64_t index, uint64_t size,
                                 uint8_t path[][FX_HASH_LEN], size_t *len,
                                 fx_diag *diag);
fx_err fx_ledger_consistency_proof(fx_ledger *l, uint64_t m, uint64_t n,
                                   uint8_t path[][FX_HASH_LEN], size_t *len,
                                   fx_diag *diag);

/* Signs a checkpoint of the current tree with the log key sk. Refuses
 * (FX_EMISMATCH / FX_EROLLBACK) unless a consistency proof from the last
 * signed checkpoint to this tree verifies, and refuses a key other than the
 * one that signed the first checkpoint (FX_EPERM). Stores the note; *note
 * (malloc'd, caller frees) and *len may be NULL if not wanted. */
fx_err fx_ledger_sign_checkpoint(fx_ledger *l, const uint8_t sk[64],
                                 char **note, size_t *len, fx_diag *diag);

/* The newest signed checkpoint: FX_ENOTFOUND if none. Outputs may be NULL;
 * *note is malloc'd (caller frees). */
fx_err fx_ledger_latest_checkpoint(fx_ledger *l, char **note, size_t *len,
                                   fx_checkpoint *cp, fx_diag *diag);

/* The log's verifier key text (set by the first checkpoint). */
fx_err fx_ledger_vkey(fx_ledger *l, char *out, size_t cap, fx_diag *diag);

/* Writes an export into dir (created if missing): entries.bin, leaves.bin,
 * checkpoints.bin, log.vkey, and blobs/ holding every blob the entries name
 * that is present in blob_dir (NULL: no blobs). Each file is written to a
 * temporary name, fsynced and renamed. */
fx_err fx_ledger_export(fx_ledger *l, const char *blob_dir, const char *dir,
                        fx_diag *diag);

#endif
