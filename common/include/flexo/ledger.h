/* The contribution ledger: an append-only SQLite log of protobuf entries
 * (roster, anchor release, accepted / rejected contribution, withdrawal,
 * refused withdrawal, assembly) under an RFC 9162 Merkle tree, signed C2SP
 * checkpoints that never contradict each other, and the export an auditor
 * verifies. Byte formats: docs/ledger.md. */
#ifndef FLEXO_LEDGER_H
#define FLEXO_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flexo/checkpoint.h"
#include "flexo/err.h"
#include "flexo/hash.h"
#include "flexo/merkle.h"
#include "flexo/roster.h"
#include "flexo/sign.h"
#include "flexo/wire.h"
#include "ledger.pb-c.h"

#define FX_LEDGER_SCHEMA_VERSION 1
#define FX_LEDGER_ENTRY_VERSION  1
#define FX_LEDGER_MAX_ENTRY      (FX_WIRE_ENVELOPE_MAX + (64u << 10))
#define FX_LEDGER_MAX_ENTRIES    (1ull << 40) /* entries in one log */
#define FX_LEDGER_MAX_INCLUDED   (1u << 20)   /* experts in an assembly */
/* Bytes of a refused withdrawal request kept in its entry. A valid
 * withdrawal envelope is under 3 KiB (docs/protocol.md limits); a larger
 * request is logged by size and BLAKE2b-256 only, so refusals cannot be
 * used to make the log store megabytes per request. */
#define FX_LEDGER_MAX_REFUSED_ENVELOPE (16u << 10)

/* Export file names inside an export directory. */
#define FX_EXPORT_ENTRIES     "entries.bin"
#define FX_EXPORT_LEAVES      "leaves.bin"
#define FX_EXPORT_CHECKPOINTS "checkpoints.bin"
#define FX_EXPORT_VKEY        "log.vkey"
#define FX_EXPORT_BLOBS       "blobs"

typedef Flexo__Ledger__V1__Entry fx_entry;

/* Why a withdrawal was refused: the `gate` of a withdrawal_refused entry, in
 * the order the coordinator checks them (the first that fails is logged).
 * docs/ledger.md §1 states what each one obliges an auditor to find. */
typedef enum fx_refusal {
	FX_REFUSAL_FORMAT = 0, /* not a decodable Withdrawal envelope */
	FX_REFUSAL_UNKNOWN,    /* names no accepted contribution */
	FX_REFUSAL_SIGNATURE,  /* not validly signed by a contributor */
	FX_REFUSAL_NOT_OWNER,  /* signed by someone else than the owner */
	FX_REFUSAL_REPLAY,     /* sequence not above the key's logged one */
	FX_REFUSAL_ALREADY_WITHDRAWN, /* withdrawn by an earlier entry */
	FX_REFUSAL_COUNT
} fx_refusal;

/* The gate name of a refusal ("format", "unknown-contribution",
 * "signature", "not-owner", "replay", "already-withdrawn"); static. */
const char *fx_refusal_name(fx_refusal r);
/* The refusal a gate name stands for, or -1 if it names none. */
int fx_refusal_parse(const char *name);

/* ---- what an entry proves ---- */

/* The facts an entry's embedded, verified documents establish. */
typedef struct fx_entry_facts {
	int kind;       /* Flexo__Ledger__V1__Entry__KindCase */
	int has_signer; /* anchor, accepted, withdrawal */
	uint8_t signer[FX_PK_BYTES];
	char signer_name[FX_NAME_MAX + 1];
	uint8_t doc_digest[FX_BLAKE2B_BYTES];   /* BLAKE2b-256 of the signed
	                                         * payload (release, contribution,
	                                         * withdrawal) */
	uint8_t named_digest[FX_BLAKE2B_BYTES]; /* withdrawal: the contribution
	                                         * digest it names */
	uint8_t release_digest[FX_BLAKE2B_BYTES]; /* contribution: the anchor
	                                           * release it names */
	uint64_t ref; /* roster: version; anchor: release version;
	               * withdrawal: contribution index */
	int has_blob;
	uint8_t blob[FX_BLAKE2B_BYTES]; /* accepted: payload; assembly: model */
	/* refused withdrawal: its gate (fx_refusal); whether the request
	 * decodes as a Withdrawal (then doc_digest is its digest) and names a
	 * 32-byte contribution digest (named_digest); has_signer when it
	 * verifies against the roster in force, with its sequence; ref is
	 * the evidence_index. */
	int refusal;
	int opens;
	int has_named;
	uint64_t sequence;
} fx_entry_facts;

/* Verifies the signed documents of a non-roster entry against the roster in
 * force at it (NULL if none yet), at the entry's own time, with the same
 * calls the coordinator's gates use: fx_release_verify for an anchor
 * release, fx_contrib_verify for a contribution (whose signed payload digest
 * must be the entry's), fx_withdrawal_verify for a withdrawal. Rejected
 * entries need only a reason; assemblies a 32-byte model digest. A refused
 * withdrawal: a known gate and a reason, its kept bytes match the logged
 * size and digest, and the parts of its reason that need no history hold
 * (a "format" request does not decode, a "signature" one does not verify,
 * the others verify). History (withdrawn what, assembled what, what a
 * refusal's evidence shows) is the caller's. Thread-safe. */
fx_err fx_ledger_check_entry(const fx_entry *e, const fx_roster *roster,
                             fx_entry_facts *out, fx_diag *diag);

/* Verifies a roster entry: the first with fx_roster_verify_initial, later
 * ones as a rotation of `prev` (fx_roster_verify_update), at the entry's
 * time. *out must be initialised (fx_roster_init); the caller releases it. */
fx_err fx_ledger_check_roster(const fx_entry *e, const fx_roster *prev,
                              fx_roster *out, fx_diag *diag);

/* True if the encoded entry (len bytes) carries a document — the
 * contribution manifest of an accepted or rejected contribution, the
 * Withdrawal of a withdrawal or refused withdrawal — that names key ID
 * fx_key_id(pk), carries a valid signature by pk and has a sequence number
 * of at least `at_least`. What a "replay" refusal's evidence must show. */
bool fx_ledger_entry_shows_sequence(const uint8_t *entry, size_t len,
                                    const uint8_t pk[FX_PK_BYTES],
                                    uint64_t at_least);

/* The kind of an encoded entry from its top-level fields alone (no
 * allocation), or -1 if the bytes are not a well-formed message. Lets an
 * auditor find the roster entries before checking the rest in parallel. */
int fx_ledger_peek_kind(const uint8_t *entry, size_t len);

/* ---- the ledger ---- */

typedef struct fx_ledger fx_ledger;

/* Opens the ledger database at path; with an `origin` (the log's name in
 * checkpoints, a note key name) it is created if missing, without one it
 * must exist. An existing ledger keeps its own origin; a given one must
 * match. Runs
 * schema migrations up to FX_LEDGER_SCHEMA_VERSION; refuses a newer schema.
 * WAL journal, synchronous=FULL. Free with fx_ledger_close. */
fx_err fx_ledger_open(const char *path, const char *origin, fx_ledger **out,
                      fx_diag *diag);
void fx_ledger_close(fx_ledger *l);

uint64_t fx_ledger_size(const fx_ledger *l);
/* Valid until fx_ledger_close. */
const char *fx_ledger_origin(const fx_ledger *l);

/* Appends e: sets its version, index (the current size) and, if zero, its
 * time; checks it as an auditor will (fx_ledger_check_roster /
 * fx_ledger_check_entry against the roster in force; roster and release
 * versions only go up; a contribution names a logged anchor release; a
 * withdrawal names a live accepted contribution by its manifest digest and
 * is signed by the same key; a refused withdrawal's reason agrees with the
 * log before it; an assembly includes exactly the live contributions),
 * then stores its encoding and its Merkle nodes in one transaction. *index
 * may be NULL. A refused entry changes nothing. */
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

/* The entry of the accepted contribution whose signed manifest payload has
 * BLAKE2b-256 `digest` (what a flexo.v1.Withdrawal names): FX_ENOTFOUND if
 * none. Lets the coordinator turn a withdrawal request into an entry. */
fx_err fx_ledger_find_contribution(fx_ledger *l,
                                   const uint8_t digest[FX_BLAKE2B_BYTES],
                                   uint64_t *index, fx_diag *diag);

/* The withdrawal entry of the accepted contribution at entry
 * `contribution`: FX_ENOTFOUND if it was not withdrawn. */
fx_err fx_ledger_find_withdrawal(fx_ledger *l, uint64_t contribution,
                                 uint64_t *index, fx_diag *diag);

/* The newest logged anchor release: its entry and release digest
 * (BLAKE2b-256 of its signed payload, what contributions name).
 * FX_ENOTFOUND if none. */
fx_err fx_ledger_latest_release(fx_ledger *l, uint64_t *index,
                                uint8_t digest[FX_BLAKE2B_BYTES],
                                fx_diag *diag);

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
