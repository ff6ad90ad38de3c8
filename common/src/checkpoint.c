/* C2SP tlog-checkpoint bodies: strict format and parse, and signing and
 * opening them as signed notes. */
#include "flexo/checkpoint.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define ROOT_B64_LEN 44 /* standard base64 of 32 bytes, with padding */

fx_err fx_checkpoint_format(const fx_checkpoint *c, char *out, size_t cap,
                            size_t *len, fx_diag *diag)
{
	char b64[ROOT_B64_LEN + 1];
	int n;

	if (!fx_note_name_valid(c->origin))
		return fx_diag_set(diag, FX_EINVAL,
		                   "checkpoint: invalid origin '%s'",
		                   c->origin);
	sodium_bin2base64(b64, sizeof(b64), c->root, FX_HASH_LEN,
	                  sodium_base64_VARIANT_ORIGINAL);
	n = snprintf(out, cap, "%s\n%llu\n%s\n", c->origin,
	             (unsigned long long)c->size, b64);
	if (n < 0 || (size_t)n >= cap)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "checkpoint: body does not fit in %zu bytes",
		                   cap);
	*len = (size_t)n;
	return FX_OK;
}

/* Returns the line starting at *p (without its newline) and advances *p. */
static int next_line(const char **p, const char *end, const char **line,
                     size_t *line_len)
{
	const char *eol;
	if (*p >= end)
		return 0;
	eol = memchr(*p, '\n', (size_t)(end - *p));
	if (eol == NULL)
		return 0;
	*line = *p;
	*line_len = (size_t)(eol - *p);
	*p = eol + 1;
	return 1;
}

fx_err fx_checkpoint_parse(const char *text, size_t len, fx_checkpoint *out,
                           fx_diag *diag)
{
	const char *p = text, *end = text + len, *line, *b64end;
	size_t ll, got = 0;
	fx_checkpoint c;
	uint64_t size = 0;
	char b64[ROOT_B64_LEN + 1];

	memset(&c, 0, sizeof(c));
	if (len == 0 || text[len - 1] != '\n')
		return fx_diag_set(diag, FX_EFORMAT,
		                   "checkpoint: text must end in a newline");
	if (!next_line(&p, end, &line, &ll) || ll == 0 || ll > FX_NOTE_MAX_NAME)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "checkpoint: missing or oversized origin line");
	memcpy(c.origin, line, ll);
	if (!fx_note_name_valid(c.origin))
		return fx_diag_set(diag, FX_EFORMAT,
		                   "checkpoint: invalid origin '%s'", c.origin);
	if (!next_line(&p, end, &line, &ll) || ll == 0 || ll > 20 ||
	    (ll > 1 && line[0] == '0'))
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "checkpoint: tree size line must be a decimal "
		    "number without leading zeros");
	for (size_t i = 0; i < ll; i++) {
		unsigned d = (unsigned)(line[i] - '0');
		if (d > 9 || size > (UINT64_MAX - d) / 10)
			return fx_diag_set(
			    diag, FX_EFORMAT,
			    "checkpoint: tree size '%.*s' is not a "
			    "64-bit decimal",
			    (int)ll, line);
		size = size * 10 + d;
	}
	c.size = size;
	if (!next_line(&p, end, &line, &ll) || ll != ROOT_B64_LEN)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "checkpoint: root line must be 44 base64 "
		                   "characters");
	memcpy(b64, line, ll);
	b64[ll] = '\0';
	if (sodium_base642bin(c.root, FX_HASH_LEN, b64, ll, NULL, &got, &b64end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    got != FX_HASH_LEN || *b64end != '\0')
		return fx_diag_set(diag, FX_EFORMAT,
		                   "checkpoint: root line is not base64 of 32 "
		                   "bytes");
	/* Re-encode so that only the canonical spelling is accepted. */
	{
		char canon[ROOT_B64_LEN + 1];
		sodium_bin2base64(canon, sizeof(canon), c.root, FX_HASH_LEN,
		                  sodium_base64_VARIANT_ORIGINAL);
		if (memcmp(canon, b64, ROOT_B64_LEN) != 0)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "checkpoint: root is not canonical "
			                   "base64");
	}
	while (next_line(&p, end, &line, &ll))
		if (ll == 0)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "checkpoint: empty extension line");
	*out = c;
	return FX_OK;
}

fx_err fx_checkpoint_sign(const fx_checkpoint *c, const uint8_t sk[64],
                          char **note, size_t *note_len, fx_diag *diag)
{
	char body[FX_CHECKPOINT_MAX_BODY];
	size_t len = 0;
	fx_err err;

	if ((err = fx_checkpoint_format(c, body, sizeof(body), &len, diag)))
		return err;
	return fx_note_sign(body, len, c->origin, sk, note, note_len, diag);
}

fx_err fx_checkpoint_open(const char *note, size_t len,
                          const fx_note_verifier *v, fx_checkpoint *out,
                          fx_diag *diag)
{
	fx_checkpoint c;
	size_t tlen;
	fx_err err;

	if ((err = fx_note_open(note, len, v, &tlen, diag)) != FX_OK)
		return err;
	if ((err = fx_checkpoint_parse(note, tlen, &c, diag)) != FX_OK)
		return err;
	if (strcmp(c.origin, v->name) != 0)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "checkpoint: origin '%s' is not the log '%s'", c.origin,
		    v->name);
	*out = c;
	return FX_OK;
}
