/* The one error enum of flexo (0 = success, like nng's NNG_E* and SQLite's
 * rc), its names, and fx_diag: a caller-owned buffer in which a failing
 * function writes a human sentence naming exactly what was wrong. */
#ifndef FLEXO_ERR_H
#define FLEXO_ERR_H

#include <stddef.h>

typedef enum fx_err {
	FX_OK = 0,
	FX_ENOMEM,     /* allocation failed */
	FX_EINVAL,     /* bad argument or bad user input */
	FX_EIO,        /* operating-system I/O error */
	FX_EFORMAT,    /* malformed file or message */
	FX_ETOOBIG,    /* a named bound was exceeded */
	FX_ENOTFOUND,  /* file, key, entry or tensor does not exist */
	FX_EEXIST,     /* already exists */
	FX_EMISMATCH,  /* digest, shape or config does not match */
	FX_EBADSIG,    /* signature missing or does not verify */
	FX_EEXPIRED,   /* roster, release or key past its not-after */
	FX_EROLLBACK,  /* version or sequence number not fresh */
	FX_EPERM,      /* not allowed: permissions, role, roster membership */
	FX_ECRYPTO,    /* a libsodium primitive failed (wrong passphrase, ...) */
	FX_EDB,        /* SQLite error */
	FX_ENET,       /* transport error */
	FX_ETIMEOUT,   /* an exchange timed out */
	FX_EPROTO,     /* peer broke the protocol */
	FX_ESTATE,     /* operation not valid in the current state */
	FX_EQUOTA,     /* disk quota exceeded */
	FX_EREJECTED,  /* an admission gate refused a contribution */
	FX_ENUMERIC,   /* NaN/Inf or numeric failure */
	FX_EINTERNAL,  /* a bug: an invariant did not hold */
	FX_ERR_COUNT
} fx_err;

/* Short static name of an error, e.g. "malformed input". Never NULL. */
const char *fx_strerror(fx_err err);

#define FX_DIAG_MAX 512

/* A diagnostic message filled by a failing call. Callers may pass NULL
 * wherever an fx_diag * is taken. */
typedef struct fx_diag {
	char msg[FX_DIAG_MAX];
} fx_diag;

/* Sets diag->msg (printf-style) and returns err, so a failure reads
 *     return fx_diag_set(d, FX_EFORMAT, "header length %zu > %zu", n, max);
 * Does nothing to a NULL diag. */
fx_err fx_diag_set(fx_diag *diag, fx_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes existing diag text with a context ("loading anchor: ..."). */
void fx_diag_prefix(fx_diag *diag, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
