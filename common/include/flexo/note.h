/* C2SP signed-note with Ed25519 signature lines: key IDs, verifier keys
 * ("name+hex id+base64(0x01‖pk)"), signing a text and opening a note with a
 * trusted verifier. The transparency-log ecosystem's format, so witnesses
 * and standard tooling can read flexo checkpoints. */
#ifndef FLEXO_NOTE_H
#define FLEXO_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"

#define FX_NOTE_MAX_NAME 128   /* key name bytes */
#define FX_NOTE_MAX_SIZE 16384 /* whole signed note, text + signatures */
#define FX_NOTE_MAX_SIGS 100   /* signature lines, as Go's sumdb/note */
#define FX_NOTE_VKEY_MAX (FX_NOTE_MAX_NAME + 64)

/* A trusted verifier: key name, 32-bit key ID, Ed25519 public key. */
typedef struct fx_note_verifier {
	char name[FX_NOTE_MAX_NAME + 1];
	uint32_t id;
	uint8_t pk[32];
} fx_note_verifier;

/* Key names are non-empty, at most FX_NOTE_MAX_NAME bytes, printable ASCII
 * without space or '+' (a subset of what the spec allows). */
int fx_note_name_valid(const char *name);

/* Key ID = first 4 bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ pk). */
uint32_t fx_note_key_id(const char *name, const uint8_t pk[32]);

/* Fills *v from a name and public key (computes the ID). */
fx_err fx_note_verifier_init(fx_note_verifier *v, const char *name,
                             const uint8_t pk[32], fx_diag *diag);

/* Verifier key text "name+xxxxxxxx+base64(0x01‖pk)" into out[cap]. */
fx_err fx_note_vkey_format(const fx_note_verifier *v, char *out, size_t cap,
                           fx_diag *diag);
/* Parses a verifier key; checks the ID against name and key. */
fx_err fx_note_vkey_parse(const char *vkey, fx_note_verifier *out,
                          fx_diag *diag);

/* Signs `text` (len bytes, must end in '\n', no blank line, no control
 * characters but '\n') under `name` with the Ed25519 secret key sk (libsodium
 * 64-byte form). *out is a malloc'd NUL-terminated note of *out_len bytes;
 * the caller frees it. sk is only read. */
fx_err fx_note_sign(const char *text, size_t len, const char *name,
                    const uint8_t sk[64], char **out, size_t *out_len,
                    fx_diag *diag);

/* Verifies `note` (len bytes) against v: the note must be well formed and
 * carry a signature line with v's name and ID whose signature verifies
 * (lines by unknown keys are ignored; a bad signature by v rejects the
 * note). On success *text_len is the length of the signed text, which is
 * the prefix note[0..*text_len). */
__attribute__((warn_unused_result)) fx_err
fx_note_open(const char *note, size_t len, const fx_note_verifier *v,
             size_t *text_len, fx_diag *diag);

#endif
