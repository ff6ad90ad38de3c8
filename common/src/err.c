/* Error names and the fx_diag helpers. */
#include "flexo/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[FX_ERR_COUNT] = {
    [FX_OK] = "success",
    [FX_ENOMEM] = "out of memory",
    [FX_EINVAL] = "invalid argument",
    [FX_EIO] = "I/O error",
    [FX_EFORMAT] = "malformed input",
    [FX_ETOOBIG] = "size limit exceeded",
    [FX_ENOTFOUND] = "not found",
    [FX_EEXIST] = "already exists",
    [FX_EMISMATCH] = "mismatch",
    [FX_EBADSIG] = "bad signature",
    [FX_EEXPIRED] = "expired",
    [FX_EROLLBACK] = "rollback or replay",
    [FX_EPERM] = "not permitted",
    [FX_ECRYPTO] = "cryptographic failure",
    [FX_EDB] = "database error",
    [FX_ENET] = "network error",
    [FX_ETIMEOUT] = "timed out",
    [FX_EPROTO] = "protocol error",
    [FX_ESTATE] = "invalid state",
    [FX_EQUOTA] = "quota exceeded",
    [FX_EREJECTED] = "rejected",
    [FX_ENUMERIC] = "numeric error",
    [FX_EINTERNAL] = "internal error",
};

const char *fx_strerror(fx_err err)
{
	if ((unsigned)err >= FX_ERR_COUNT || names[err] == NULL)
		return "unknown error";
	return names[err];
}

fx_err fx_diag_set(fx_diag *diag, fx_err err, const char *fmt, ...)
{
	if (diag != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
		va_end(ap);
	}
	return err;
}

void fx_diag_prefix(fx_diag *diag, const char *fmt, ...)
{
	char prefix[FX_DIAG_MAX], old[FX_DIAG_MAX];
	va_list ap;

	if (diag == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, diag->msg, sizeof(old));
	snprintf(diag->msg, sizeof(diag->msg), "%s: %s", prefix, old);
}
