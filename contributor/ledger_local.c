/* Receipt checks against the roster's coordinator keys and the local
 * submissions record (ledger_local.h). */
#include "ledger_local.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flexo/fsutil.h"
#include "flexo/note.h"
#include "flexo/receipt.h"
#include "flexo/roster.h"

/* Verifies the receipt under every roster coordinator's log key; *info
 * (may be NULL) says what the entry is. */
static fx_err check(const char *state_dir, const char *origin,
                    const uint8_t *receipt, size_t len, char *msg, size_t cap,
                    fx_receipt_info *out, fx_diag *diag)
{
	char path[4200], name[FX_NOTE_MAX_NAME + 1];
	fx_roster r;
	fx_receipt_info info;
	uint8_t *buf = NULL;
	size_t buf_len = 0;
	fx_diag d = {{0}};
	fx_err err;
	int tried = 0;

	fx_roster_init(&r);
	snprintf(path, sizeof(path), "%s/roster.bin", state_dir);
	/* fetch verified this roster against the consortium's roots before
	 * keeping it; its coordinators are the log keys we trust. */
	if ((err = fx_read_file(path, FX_ROSTER_FILE_MAX, &buf, &buf_len,
	                        diag)) != FX_OK ||
	    (err = fx_roster_verify_initial(
	         &r, buf, buf_len, (int64_t)time(NULL), diag)) != FX_OK) {
		fx_diag_prefix(diag, "%s", path);
		goto out;
	}
	if (origin != NULL)
		snprintf(name, sizeof(name), "%s", origin);
	else
		snprintf(name, sizeof(name), "flexo/%s", r.consortium);
	err = fx_diag_set(diag, FX_EPERM,
	                  "roster v%" PRIu64 " has no coordinator key",
	                  r.version);
	for (size_t i = 0; i < r.n_members; i++) {
		fx_note_verifier v;
		if (r.members[i].role != FX_ROLE_COORDINATOR)
			continue;
		if (fx_note_verifier_init(&v, name, r.members[i].pk, &d) !=
		    FX_OK) {
			err = fx_diag_set(diag, FX_EINVAL, "log origin: %s",
			                  d.msg);
			goto out;
		}
		tried++;
		err = fx_receipt_verify(receipt, len, &v, &info, &d);
		if (err == FX_OK) {
			if (out != NULL)
				*out = info;
			snprintf(msg, cap,
			         "entry %" PRIu64 " is in %s at size %" PRIu64
			         ", checkpoint signed by coordinator '%s'",
			         info.index, name, info.checkpoint.size,
			         r.members[i].name);
			goto out;
		}
		fx_diag_set(diag, err, "%s", d.msg);
	}
	if (tried > 1)
		fx_diag_prefix(diag, "no coordinator's key verifies it");
out:
	free(buf);
	fx_roster_release(&r);
	return err;
}

fx_err receipt_check(const char *state_dir, const char *origin,
                     const uint8_t *receipt, size_t len, char *msg, size_t cap,
                     fx_diag *diag)
{
	return check(state_dir, origin, receipt, len, msg, cap, NULL, diag);
}

fx_err receipt_check_answer(const char *state_dir, const char *origin,
                            const uint8_t *receipt, size_t len, int kind,
                            const uint8_t *request, size_t request_len,
                            const char *gate, uint64_t *index, char *msg,
                            size_t cap, fx_diag *diag)
{
	fx_receipt_info info;
	uint8_t h[FX_BLAKE2B_BYTES];
	fx_err err;

	if ((err = check(state_dir, origin, receipt, len, msg, cap, &info,
	                 diag)) != FX_OK)
		return err;
	fx_blake2b(h, request, request_len);
	if (info.kind != kind)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "the receipt is for entry %" PRIu64
		                   " of another kind (%d, not %d)",
		                   info.index, info.kind, kind);
	if (!info.has_request || memcmp(info.request_digest, h, sizeof(h)))
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "entry %" PRIu64 " does not log the request "
		                   "this contributor sent",
		                   info.index);
	if (gate != NULL && strcmp(info.gate, gate) != 0)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "entry %" PRIu64 " logs gate '%s', the "
		                   "verdict says '%s'",
		                   info.index, info.gate, gate);
	*index = info.index;
	return FX_OK;
}

fx_err record_append(const char *state_dir, const char *kind,
                     const uint8_t digest[FX_BLAKE2B_BYTES],
                     const char *decision, const char *gate, uint64_t index,
                     fx_diag *diag)
{
	char path[4200], hex[2 * FX_BLAKE2B_BYTES + 1], line[512];
	uint8_t *old = NULL, *all = NULL;
	size_t old_len = 0;
	int n;
	fx_err err;

	snprintf(path, sizeof(path), "%s/%s", state_dir, SUBMISSIONS_FILE);
	err = fx_read_file(path, SUBMISSIONS_MAX, &old, &old_len, diag);
	if (err == FX_ENOTFOUND) {
		old_len = 0;
		err = FX_OK;
	}
	if (err != FX_OK)
		goto out;
	n = snprintf(line, sizeof(line), "%s %s %s %s %" PRIu64 "\n", kind,
	             fx_hex(hex, digest, FX_BLAKE2B_BYTES), decision,
	             gate[0] ? gate : "-", index);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    old_len + (size_t)n > SUBMISSIONS_MAX) {
		err = fx_diag_set(diag, FX_ETOOBIG, "%s is full", path);
		goto out;
	}
	if ((all = malloc(old_len + (size_t)n)) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "%s", path);
		goto out;
	}
	if (old_len > 0)
		memcpy(all, old, old_len);
	memcpy(all + old_len, line, (size_t)n);
	err = fx_write_file_atomic(path, all, old_len + (size_t)n, 0600, diag);
out:
	free(old);
	free(all);
	return err;
}

fx_err sequence_next(const char *state, uint64_t *out, fx_diag *d)
{
	char path[4200], text[32];
	unsigned long long last = 0;
	uint8_t *buf = NULL;
	size_t len = 0;
	fx_err err;
	int n;

	snprintf(path, sizeof(path), "%s/%s", state, SEQUENCE_FILE);
	err = fx_read_file(path, 64, &buf, &len, d);
	if (err == FX_OK) {
		char *end = NULL;
		last = strtoull((const char *)buf, &end, 10);
		if (end == (char *)buf || (*end != '\n' && *end != '\0')) {
			free(buf);
			return fx_diag_set(d, FX_EFORMAT, "%s is damaged",
			                   path);
		}
		free(buf);
	} else if (err != FX_ENOTFOUND) {
		return err;
	}
	n = snprintf(text, sizeof(text), "%llu\n", last + 1);
	if ((err = fx_write_file_atomic(path, text, (size_t)n, 0600, d)) !=
	    FX_OK)
		return err;
	*out = last + 1;
	return FX_OK;
}
