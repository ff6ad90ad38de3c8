/* The byte-level tokenizer: token t < 256 is byte t, plus three specials.
 * Nothing to train, every byte string is encodable, and decode(encode(x)) ==
 * x. Also its export as a Hugging Face tokenizer.json / tokenizer_config.json
 * so exported models load in transformers. */
#ifndef FLEXO_TOKENIZER_H
#define FLEXO_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"

#define FX_TOK_BYTES 256 /* tokens 0..255 are the bytes 0x00..0xFF */
#define FX_TOK_BOS   256 /* beginning of a document */
#define FX_TOK_EOS   257 /* end of a document */
#define FX_TOK_PAD   258 /* padding; never trained on */
#define FX_TOK_VOCAB 259 /* vocabulary size */

/* Flags of fx_tok_encode / fx_tok_decode. */
#define FX_TOK_ADD_BOS 1u /* encode: start with FX_TOK_BOS */
#define FX_TOK_ADD_EOS 2u /* encode: end with FX_TOK_EOS */

/* Tokens fx_tok_encode produces for len bytes with these flags. */
size_t fx_tok_encoded_len(size_t len, unsigned flags);

/* Encodes len bytes of text into out (cap tokens available). FX_ETOOBIG if
 * cap < fx_tok_encoded_len(len, flags); on success *n_out = that count. */
fx_err fx_tok_encode(const void *text, size_t len, unsigned flags, int32_t *out,
                     size_t cap, size_t *n_out, fx_diag *diag);

/* Decodes n tokens into bytes (cap bytes available, at most n needed).
 * Special tokens produce no bytes. An id outside [0, FX_TOK_VOCAB) is
 * FX_EINVAL naming its position and value. *len_out = bytes written. */
fx_err fx_tok_decode(const int32_t *toks, size_t n, uint8_t *out, size_t cap,
                     size_t *len_out, fx_diag *diag);

/* The text form of a special token ("<|bos|>", "<|eos|>", "<|pad|>") or
 * NULL for a byte token or an invalid id. Static strings. */
const char *fx_tok_special_name(int32_t id);

/* Hugging Face tokenizer.json describing this tokenizer (pretty-printed).
 * *out is malloc'd, NUL-terminated, *len bytes; the caller frees it. The
 * bytes are deterministic, so their digest can go in a release manifest. */
fx_err fx_tok_hf_json(char **out, size_t *len, fx_diag *diag);

/* tokenizer_config.json for transformers' AutoTokenizer: fast tokenizer
 * class, the special tokens, no automatic BOS/EOS, model_max_length. */
fx_err fx_tok_hf_config_json(int model_max_length, char **out, size_t *len,
                             fx_diag *diag);

/* Writes fx_tok_hf_json's text to path atomically (mode 0644). */
fx_err fx_tok_write_hf(const char *path, fx_diag *diag);

#endif
