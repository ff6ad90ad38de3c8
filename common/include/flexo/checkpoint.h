/* C2SP tlog-checkpoint: the text of a signed tree head ("<origin>\n<size>\n
 * <base64 root>\n"), formatted, parsed strictly, signed as a signed note and
 * opened with a trusted verifier whose key name is the origin. */
#ifndef FLEXO_CHECKPOINT_H
#define FLEXO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/merkle.h"
#include "flexo/note.h"

/* Body bytes: origin, 20 digits, 44 base64 characters, 3 newlines. */
#define FX_CHECKPOINT_MAX_BODY (FX_NOTE_MAX_NAME + 20 + 44 + 3 + 1)

typedef struct fx_checkpoint {
	char origin[FX_NOTE_MAX_NAME + 1];
	uint64_t size;
	uint8_t root[FX_HASH_LEN];
} fx_checkpoint;

/* Writes the body text (NUL-terminated) into out[cap]; *len excludes NUL. */
fx_err fx_checkpoint_format(const fx_checkpoint *c, char *out, size_t cap,
                            size_t *len, fx_diag *diag);

/* Parses a body: origin line, decimal size without leading zeros, canonical
 * base64 of 32 bytes; non-empty extension lines after them are allowed and
 * ignored. */
fx_err fx_checkpoint_parse(const char *text, size_t len, fx_checkpoint *out,
                           fx_diag *diag);

/* Formats and signs c under the key name c->origin. *note is malloc'd
 * (caller frees), NUL-terminated, *note_len bytes. */
fx_err fx_checkpoint_sign(const fx_checkpoint *c, const uint8_t sk[64],
                          char **note, size_t *note_len, fx_diag *diag);

/* Opens a signed checkpoint note with v and parses it; the origin must equal
 * v->name. */
__attribute__((warn_unused_result)) fx_err
fx_checkpoint_open(const char *note, size_t len, const fx_note_verifier *v,
                   fx_checkpoint *out, fx_diag *diag);

#endif
