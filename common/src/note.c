/* C2SP signed-note: Ed25519 signature lines over a text, key IDs and
 * verifier keys. Used for checkpoints; any C2SP-conformant tool can check
 * what this writes. */
#include "flexo/note.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define ALG_ED25519 0x01
#define SIG_BLOB    (4 + crypto_sign_BYTES)
static const char em_dash_sp[] = "\xe2\x80\x94 "; /* U+2014 then space */

int fx_note_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > FX_NOTE_MAX_NAME)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= 0x20 || c >= 0x7f || c == '+')
			return 0;
	}
	return 1;
}

uint32_t fx_note_key_id(const char *name, const uint8_t pk[32])
{
	static const uint8_t sep[2] = {0x0a, ALG_ED25519};
	crypto_hash_sha256_state st;
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)name, strlen(name));
	crypto_hash_sha256_update(&st, sep, sizeof(sep));
	crypto_hash_sha256_update(&st, pk, 32);
	crypto_hash_sha256_final(&st, h);
	return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
	       (uint32_t)h[2] << 8 | h[3];
}

fx_err fx_note_verifier_init(fx_note_verifier *v, const char *name,
                             const uint8_t pk[32], fx_diag *diag)
{
	if (!fx_note_name_valid(name))
		return fx_diag_set(diag, FX_EINVAL,
		                   "note key name '%.*s' is not valid (1..%d "
		                   "printable ASCII bytes, no space or '+')",
		                   FX_NOTE_MAX_NAME, name, FX_NOTE_MAX_NAME);
	memset(v, 0, sizeof(*v));
	memcpy(v->name, name, strlen(name));
	memcpy(v->pk, pk, 32);
	v->id = fx_note_key_id(name, pk);
	return FX_OK;
}

fx_err fx_note_vkey_format(const fx_note_verifier *v, char *out, size_t cap,
                           fx_diag *diag)
{
	uint8_t raw[33];
	char b64[sodium_base64_ENCODED_LEN(33, sodium_base64_VARIANT_ORIGINAL)];
	int n;

	raw[0] = ALG_ED25519;
	memcpy(raw + 1, v->pk, 32);
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw),
	                  sodium_base64_VARIANT_ORIGINAL);
	n = snprintf(out, cap, "%s+%08x+%s", v->name, (unsigned)v->id, b64);
	if (n < 0 || (size_t)n >= cap)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "verifier key does not fit in %zu bytes",
		                   cap);
	return FX_OK;
}

fx_err fx_note_vkey_parse(const char *vkey, fx_note_verifier *out,
                          fx_diag *diag)
{
	char name[FX_NOTE_MAX_NAME + 1];
	const char *p1, *p2, *end;
	uint8_t raw[33];
	size_t raw_len = 0;
	unsigned long id;
	char *idend;

	p1 = strchr(vkey, '+');
	if (p1 == NULL || (size_t)(p1 - vkey) > FX_NOTE_MAX_NAME)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "verifier key: expected name+id+key");
	p2 = strchr(p1 + 1, '+');
	if (p2 == NULL || p2 - p1 != 9)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "verifier key: key ID must be 8 hex digits");
	memcpy(name, vkey, (size_t)(p1 - vkey));
	name[p1 - vkey] = '\0';
	if (!fx_note_name_valid(name))
		return fx_diag_set(diag, FX_EFORMAT,
		                   "verifier key: invalid key name '%s'", name);
	for (const char *c = p1 + 1; c < p2; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return fx_diag_set(
			    diag, FX_EFORMAT,
			    "verifier key: key ID is not lower-case "
			    "hex");
	id = strtoul(p1 + 1, &idend, 16);
	if (sodium_base642bin(raw, sizeof(raw), p2 + 1, strlen(p2 + 1), NULL,
	                      &raw_len, &end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    *end != '\0' || raw_len != 33)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "verifier key: key is not base64 of 33 bytes");
	if (raw[0] != ALG_ED25519)
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "verifier key: algorithm %u is not Ed25519 (1)", raw[0]);
	if ((uint32_t)id != fx_note_key_id(name, raw + 1))
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "verifier key: key ID %08lx does not match "
		                   "name and key",
		                   id);
	return fx_note_verifier_init(out, name, raw + 1, diag);
}

/* Signed notes are UTF-8 without control characters other than newline. */
static int text_clean(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t need;
		if (c < 0x80) {
			if (c < 0x20 && c != '\n')
				return 0;
			if (c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3;
		else
			return 0;
		if (len - i <= need)
			return 0;
		for (size_t k = 1; k <= need; k++)
			if (((unsigned char)s[i + k] & 0xc0) != 0x80)
				return 0;
		i += need + 1;
	}
	return 1;
}

static const char *find_last_blank(const char *s, size_t len)
{
	for (size_t i = len - 1; i > 0; i--)
		if (s[i] == '\n' && s[i - 1] == '\n')
			return s + i - 1;
	return NULL;
}

fx_err fx_note_sign(const char *text, size_t len, const char *name,
                    const uint8_t sk[64], char **out, size_t *out_len,
                    fx_diag *diag)
{
	uint8_t blob[SIG_BLOB], pk[32];
	char b64[sodium_base64_ENCODED_LEN(SIG_BLOB,
	                                   sodium_base64_VARIANT_ORIGINAL)];
	size_t name_len, total, pos;
	uint32_t id;
	char *buf;

	if (!fx_note_name_valid(name))
		return fx_diag_set(diag, FX_EINVAL,
		                   "note: invalid key name '%.*s'",
		                   FX_NOTE_MAX_NAME, name);
	if (len == 0 || text[len - 1] != '\n' || !text_clean(text, len) ||
	    (len >= 2 && find_last_blank(text, len) != NULL) ||
	    memchr(text, '\0', len) != NULL)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "note: text must be non-empty UTF-8 ending in a "
		    "newline, without blank lines or control "
		    "characters");
	name_len = strlen(name);
	total = len + 1 + (sizeof(em_dash_sp) - 1) + name_len + 1 +
	        (sizeof(b64) - 1) + 1;
	if (len > FX_NOTE_MAX_SIZE || total > FX_NOTE_MAX_SIZE)
		return fx_diag_set(diag, FX_ETOOBIG, "note: %zu bytes > %d",
		                   total, FX_NOTE_MAX_SIZE);
	crypto_sign_ed25519_sk_to_pk(pk, sk);
	id = fx_note_key_id(name, pk);
	blob[0] = (uint8_t)(id >> 24);
	blob[1] = (uint8_t)(id >> 16);
	blob[2] = (uint8_t)(id >> 8);
	blob[3] = (uint8_t)id;
	if (crypto_sign_detached(blob + 4, NULL, (const uint8_t *)text, len,
	                         sk) != 0)
		return fx_diag_set(diag, FX_ECRYPTO, "note: signing failed");
	sodium_bin2base64(b64, sizeof(b64), blob, sizeof(blob),
	                  sodium_base64_VARIANT_ORIGINAL);
	buf = malloc(total + 1);
	if (buf == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "note: out of memory");
	memcpy(buf, text, len);
	pos = len;
	buf[pos++] = '\n';
	memcpy(buf + pos, em_dash_sp, sizeof(em_dash_sp) - 1);
	pos += sizeof(em_dash_sp) - 1;
	memcpy(buf + pos, name, name_len);
	pos += name_len;
	buf[pos++] = ' ';
	memcpy(buf + pos, b64, sizeof(b64) - 1);
	pos += sizeof(b64) - 1;
	buf[pos++] = '\n';
	buf[pos] = '\0';
	*out = buf;
	*out_len = pos;
	return FX_OK;
}

fx_err fx_note_open(const char *note, size_t len, const fx_note_verifier *v,
                    size_t *text_len, fx_diag *diag)
{
	const char *blank, *p, *end;
	size_t tlen, vname_len = strlen(v->name);
	int lines = 0, found = 0;

	if (len > FX_NOTE_MAX_SIZE)
		return fx_diag_set(diag, FX_ETOOBIG, "note: %zu bytes > %d",
		                   len, FX_NOTE_MAX_SIZE);
	if (len < 2 || !text_clean(note, len) ||
	    memchr(note, '\0', len) != NULL)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "note: not UTF-8 text without control "
		                   "characters");
	blank = find_last_blank(note, len);
	if (blank == NULL)
		return fx_diag_set(diag, FX_EFORMAT,
		                   "note: no blank line before the signatures");
	tlen = (size_t)(blank - note) + 1;
	p = blank + 2;
	end = note + len;
	if (p == end || end[-1] != '\n')
		return fx_diag_set(
		    diag, FX_EFORMAT,
		    "note: signature block missing or not ending in "
		    "a newline");
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *sp, *b64;
		uint8_t blob[FX_NOTE_MAX_SIZE / 4 * 3 + 3];
		size_t blen = 0;
		uint32_t id;

		if (++lines > FX_NOTE_MAX_SIGS)
			return fx_diag_set(diag, FX_ETOOBIG,
			                   "note: more than %d signatures",
			                   FX_NOTE_MAX_SIGS);
		if ((size_t)(eol - p) < sizeof(em_dash_sp) - 1 ||
		    memcmp(p, em_dash_sp, sizeof(em_dash_sp) - 1) != 0)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "note: signature line %d does not "
			                   "start with an em dash and a space",
			                   lines);
		p += sizeof(em_dash_sp) - 1;
		sp = memchr(p, ' ', (size_t)(eol - p));
		if (sp == NULL || sp == p)
			return fx_diag_set(diag, FX_EFORMAT,
			                   "note: signature line %d has no key "
			                   "name",
			                   lines);
		b64 = sp + 1;
		if (sodium_base642bin(blob, sizeof(blob), b64,
		                      (size_t)(eol - b64), NULL, &blen, NULL,
		                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    blen < 5)
			return fx_diag_set(
			    diag, FX_EFORMAT,
			    "note: signature line %d is not base64 "
			    "of a key ID and a signature",
			    lines);
		id = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
		     (uint32_t)blob[2] << 8 | blob[3];
		if ((size_t)(sp - p) == vname_len &&
		    memcmp(p, v->name, vname_len) == 0 && id == v->id) {
			if (blen != SIG_BLOB ||
			    crypto_sign_verify_detached(blob + 4,
			                                (const uint8_t *)note,
			                                tlen, v->pk) != 0)
				return fx_diag_set(diag, FX_EBADSIG,
				                   "note: signature by %s does "
				                   "not verify",
				                   v->name);
			found = 1;
		}
		p = eol + 1;
	}
	if (!found)
		return fx_diag_set(diag, FX_EBADSIG,
		                   "note: not signed by %s+%08x", v->name,
		                   (unsigned)v->id);
	*text_len = tlen;
	return FX_OK;
}
