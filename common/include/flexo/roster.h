/* The consortium roster: who may sign what (members with a key, a role and
 * a not-after time), under a version, an expiry and a threshold k of the
 * root keys. A roster travels as an Envelope over a flexo.v1.Roster payload.
 * Rotation follows TUF's root rule: roster v' is trusted only if its version
 * is higher than the trusted v's, it is signed by >= k root keys of v (valid
 * at that time) and by >= k' of its own roots, and it has not expired.
 * Revocation = a new roster without the key. */
#ifndef FLEXO_ROSTER_H
#define FLEXO_ROSTER_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/hash.h"
#include "flexo/sign.h"
#include "flexo/wire.h"

#define FX_ROSTER_MAX_MEMBERS 1024
#define FX_NAME_MAX           64 /* member, consortium and domain names */
#define FX_ROSTER_FILE_MAX    (1u << 20)

typedef enum fx_role {
	FX_ROLE_ROOT = 1,
	FX_ROLE_COORDINATOR = 2,
	FX_ROLE_CONTRIBUTOR = 3,
	FX_ROLE_AUDITOR = 4,
} fx_role;

/* "root", "coordinator", "contributor", "auditor"; NULL for others. */
const char *fx_role_name(int role);
/* Parses a role name; -1 if unknown. */
int fx_role_parse(const char *name);

typedef struct fx_member {
	char name[FX_NAME_MAX + 1];
	uint8_t pk[FX_PK_BYTES];
	uint8_t id[FX_KEY_ID_BYTES];
	fx_role role;
	int64_t not_after; /* Unix seconds; 0 = until the roster expires */
} fx_member;

/* A roster in memory. The envelope bytes it was loaded from (if any) are
 * kept so that it can be re-saved or co-signed without re-encoding. */
typedef struct fx_roster {
	char consortium[FX_NAME_MAX + 1];
	uint64_t version;
	int64_t expires;
	uint32_t threshold; /* k */
	uint32_t
	    release_cosigners; /* root co-signatures an anchor release needs */
	fx_member *members;    /* owned, n_members entries */
	size_t n_members;
	uint8_t *envelope; /* owned; NULL when built in memory */
	size_t envelope_len;
	uint8_t digest[FX_BLAKE2B_BYTES]; /* BLAKE2b-256 of the payload bytes */
	size_t n_signatures; /* signatures on the envelope (not verified) */
} fx_roster;

void fx_roster_init(fx_roster *r);
void fx_roster_release(fx_roster *r);

/* Structural rules: consortium set, 1..FX_ROSTER_MAX_MEMBERS members with
 * valid roles and names, unique names and keys, at least one root,
 * 1 <= threshold <= number of roots, release_cosigners <= roots. */
fx_err fx_roster_validate(const fx_roster *r, fx_diag *diag);

/* Edits (drop r->envelope: the payload changed, old signatures are void). */
fx_err fx_roster_add(fx_roster *r, const char *name,
                     const uint8_t pk[FX_PK_BYTES], fx_role role,
                     int64_t not_after, fx_diag *diag);
fx_err fx_roster_remove(fx_roster *r, const char *name, fx_diag *diag);

/* Encodes r (validated) as a Roster payload and wraps it in an unsigned
 * envelope kept in r->envelope; updates r->digest. */
fx_err fx_roster_seal(fx_roster *r, fx_diag *diag);

/* Adds a signature by sk to r->envelope (fx_roster_seal first). */
fx_err fx_roster_sign(fx_roster *r, const fx_keypair *key, fx_diag *diag);

/* Parses an envelope into an initialised *r WITHOUT checking signatures
 * (for show, editing and as a step of the verify functions). The payload is
 * decoded bounded and validated structurally. */
fx_err fx_roster_parse(fx_roster *r, const uint8_t *env, size_t len,
                       fx_diag *diag);

/* File forms: load reads and parses (fx_roster_parse: NOT verified; verify
 * r->envelope next); save writes r->envelope atomically (0644). */
fx_err fx_roster_load(fx_roster *r, const char *path, fx_diag *diag);
fx_err fx_roster_save(const fx_roster *r, const char *path, fx_diag *diag);

/* Number of distinct root members of `signers` (valid at `now`) whose
 * signature over the envelope's payload verifies. */
size_t fx_roster_count_root_sigs(const fx_roster *signers,
                                 const Flexo__V1__Envelope *env, int64_t now);

/* A first (pinned) roster: parses env into *out and requires >= threshold
 * valid signatures of its own roots and expires > now. */
fx_err fx_roster_verify_initial(fx_roster *out, const uint8_t *env, size_t len,
                                int64_t now, fx_diag *diag);

/* Rotation: parses env into *out and requires, against the trusted roster:
 * same consortium, version > trusted->version (FX_EROLLBACK), >= trusted
 * threshold valid signatures of trusted roots and >= its own threshold of
 * its own roots (FX_EBADSIG), not expired (FX_EEXPIRED). The trusted
 * roster may itself have expired (its roots' own not-after still applies):
 * otherwise a lapsed roster could never be replaced. */
fx_err fx_roster_verify_update(const fx_roster *trusted, fx_roster *out,
                               const uint8_t *env, size_t len, int64_t now,
                               fx_diag *diag);

/* The member holding pk, or NULL. Pointer valid while r is unchanged. */
const fx_member *fx_roster_find_key(const fx_roster *r,
                                    const uint8_t pk[FX_PK_BYTES]);

/* Finds which member of `role` signed env (valid signature, member and
 * roster valid at now). FX_EBADSIG if no member of that role signed,
 * FX_EEXPIRED if the roster or the signer's key expired. *signer written on
 * success. */
fx_err fx_roster_find_signer(const fx_roster *r, const Flexo__V1__Envelope *env,
                             fx_role role, int64_t now,
                             const fx_member **signer, fx_diag *diag);

/* Times on the command line: Unix seconds, "+N" with a unit d/h/m/s
 * relative to now, or "YYYY-MM-DD" / "YYYY-MM-DDTHH:MM:SSZ" (UTC). */
fx_err fx_time_parse(const char *s, int64_t now, int64_t *out, fx_diag *diag);
/* Formats t as "YYYY-MM-DDTHH:MM:SSZ" into buf (>= 21 bytes). */
char *fx_time_format(char *buf, size_t size, int64_t t);

#endif
