/* Byte-level tokenizer and its Hugging Face export.
 *
 * Why BPE with byte_fallback and no merges for tokenizer.json: the HF
 * `tokenizers` library has no plain "byte" model. WordLevel maps whole words
 * and cannot split unknown text into bytes; the ByteLevel pre-tokenizer
 * remaps bytes to printable characters (GPT-2 style) and would need a
 * different vocabulary. A BPE model with an empty merge list, a vocabulary of
 * exactly the 256 tokens "<0x00>".."<0xFF>" and byte_fallback = true gives
 * our ids with no extra machinery: BPE splits the input into characters,
 * finds none of them in the vocabulary, and falls back to each character's
 * UTF-8 bytes as "<0xNN>" tokens (id = byte). The ByteFallback + Fuse decoder
 * turns them back into bytes and text. No normalizer, no pre-tokenizer (the
 * whole input is one word) and no post-processor (no automatic BOS/EOS,
 * matching fx_tok_encode without flags). The specials are in the model
 * vocabulary at 256..258 and repeated as special added_tokens, so their ids
 * are fixed whatever order the loader assigns added tokens in. Caveat
 * inherited from HF: the literal text "<|eos|>" in an input is matched as
 * the special token by transformers, while fx_tok_encode encodes its bytes. */
#include "flexo/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>

#include "flexo/fsutil.h"
#include "flexo/json.h"

static const char *const special_names[] = {"<|bos|>", "<|eos|>", "<|pad|>"};

size_t fx_tok_encoded_len(size_t len, unsigned flags)
{
	size_t extra =
	    ((flags & FX_TOK_ADD_BOS) != 0) + ((flags & FX_TOK_ADD_EOS) != 0);
	return len > SIZE_MAX - extra ? SIZE_MAX : len + extra;
}

fx_err fx_tok_encode(const void *text, size_t len, unsigned flags, int32_t *out,
                     size_t cap, size_t *n_out, fx_diag *diag)
{
	const uint8_t *s = text;
	size_t need = fx_tok_encoded_len(len, flags), n = 0;

	if (need == SIZE_MAX || cap < need)
		return fx_diag_set(
		    diag, FX_ETOOBIG,
		    "encoding %zu bytes needs %zu tokens, buffer "
		    "holds %zu",
		    len, need, cap);
	if (flags & FX_TOK_ADD_BOS)
		out[n++] = FX_TOK_BOS;
	for (size_t i = 0; i < len; i++)
		out[n++] = s[i];
	if (flags & FX_TOK_ADD_EOS)
		out[n++] = FX_TOK_EOS;
	*n_out = n;
	return FX_OK;
}

fx_err fx_tok_decode(const int32_t *toks, size_t n, uint8_t *out, size_t cap,
                     size_t *len_out, fx_diag *diag)
{
	size_t len = 0;

	/* Validate everything first so a failure leaves out untouched. */
	for (size_t i = 0; i < n; i++) {
		int32_t t = toks[i];
		if (t < 0 || t >= FX_TOK_VOCAB)
			return fx_diag_set(diag, FX_EINVAL,
			                   "token %zu has id %d, outside the "
			                   "vocabulary [0, %d)",
			                   i, (int)t, FX_TOK_VOCAB);
		len += t < FX_TOK_BYTES;
	}
	if (len > cap)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "decoded text of %zu bytes does not fit the "
		                   "%zu-byte buffer",
		                   len, cap);
	len = 0;
	for (size_t i = 0; i < n; i++)
		if (toks[i] < FX_TOK_BYTES)
			out[len++] = (uint8_t)toks[i];
	*len_out = len;
	return FX_OK;
}

const char *fx_tok_special_name(int32_t id)
{
	if (id < FX_TOK_BYTES || id >= FX_TOK_VOCAB)
		return NULL;
	return special_names[id - FX_TOK_BYTES];
}

/* The name of token id in the HF vocabulary. */
static void token_text(int id, char buf[16])
{
	if (id < FX_TOK_BYTES)
		snprintf(buf, 16, "<0x%02X>", (unsigned)id);
	else
		snprintf(buf, 16, "%s", special_names[id - FX_TOK_BYTES]);
}

static void typed(fx_json_writer *w, const char *type)
{
	fx_jw_object_begin(w);
	fx_jw_key(w, "type");
	fx_jw_string(w, type);
	fx_jw_object_end(w);
}

fx_err fx_tok_hf_json(char **out, size_t *len, fx_diag *diag)
{
	fx_json_writer w;
	char name[16];
	fx_err err;

	fx_jw_init(&w, 0, true);
	fx_jw_object_begin(&w);
	fx_jw_key(&w, "version");
	fx_jw_string(&w, "1.0");
	fx_jw_key(&w, "truncation");
	fx_jw_null(&w);
	fx_jw_key(&w, "padding");
	fx_jw_null(&w);
	fx_jw_key(&w, "added_tokens");
	fx_jw_array_begin(&w);
	for (int id = FX_TOK_BYTES; id < FX_TOK_VOCAB; id++) {
		fx_jw_object_begin(&w);
		fx_jw_key(&w, "id");
		fx_jw_int64(&w, id);
		fx_jw_key(&w, "content");
		fx_jw_string(&w, special_names[id - FX_TOK_BYTES]);
		fx_jw_key(&w, "single_word");
		fx_jw_bool(&w, false);
		fx_jw_key(&w, "lstrip");
		fx_jw_bool(&w, false);
		fx_jw_key(&w, "rstrip");
		fx_jw_bool(&w, false);
		fx_jw_key(&w, "normalized");
		fx_jw_bool(&w, false);
		fx_jw_key(&w, "special");
		fx_jw_bool(&w, true);
		fx_jw_object_end(&w);
	}
	fx_jw_array_end(&w);
	fx_jw_key(&w, "normalizer");
	fx_jw_null(&w);
	fx_jw_key(&w, "pre_tokenizer");
	fx_jw_null(&w);
	fx_jw_key(&w, "post_processor");
	fx_jw_null(&w);
	fx_jw_key(&w, "decoder");
	fx_jw_object_begin(&w);
	fx_jw_key(&w, "type");
	fx_jw_string(&w, "Sequence");
	fx_jw_key(&w, "decoders");
	fx_jw_array_begin(&w);
	typed(&w, "ByteFallback");
	typed(&w, "Fuse");
	fx_jw_array_end(&w);
	fx_jw_object_end(&w);
	fx_jw_key(&w, "model");
	fx_jw_object_begin(&w);
	fx_jw_key(&w, "type");
	fx_jw_string(&w, "BPE");
	fx_jw_key(&w, "dropout");
	fx_jw_null(&w);
	fx_jw_key(&w, "unk_token");
	fx_jw_null(&w);
	fx_jw_key(&w, "continuing_subword_prefix");
	fx_jw_null(&w);
	fx_jw_key(&w, "end_of_word_suffix");
	fx_jw_null(&w);
	fx_jw_key(&w, "fuse_unk");
	fx_jw_bool(&w, false);
	fx_jw_key(&w, "byte_fallback");
	fx_jw_bool(&w, true);
	fx_jw_key(&w, "vocab");
	fx_jw_object_begin(&w);
	for (int id = 0; id < FX_TOK_VOCAB; id++) {
		token_text(id, name);
		fx_jw_key(&w, name);
		fx_jw_int64(&w, id);
	}
	fx_jw_object_end(&w);
	fx_jw_key(&w, "merges");
	fx_jw_array_begin(&w);
	fx_jw_array_end(&w);
	fx_jw_object_end(&w);
	fx_jw_object_end(&w);
	err = fx_jw_finish(&w, out, len, diag);
	fx_jw_release(&w);
	return err;
}

fx_err fx_tok_hf_config_json(int model_max_length, char **out, size_t *len,
                             fx_diag *diag)
{
	fx_json_writer w;
	fx_err err;

	if (model_max_length <= 0)
		return fx_diag_set(diag, FX_EINVAL,
		                   "model_max_length %d must be positive",
		                   model_max_length);
	fx_jw_init(&w, 0, true);
	fx_jw_object_begin(&w);
	fx_jw_key(&w, "tokenizer_class");
	fx_jw_string(&w, "PreTrainedTokenizerFast");
	fx_jw_key(&w, "bos_token");
	fx_jw_string(&w, special_names[FX_TOK_BOS - FX_TOK_BYTES]);
	fx_jw_key(&w, "eos_token");
	fx_jw_string(&w, special_names[FX_TOK_EOS - FX_TOK_BYTES]);
	fx_jw_key(&w, "pad_token");
	fx_jw_string(&w, special_names[FX_TOK_PAD - FX_TOK_BYTES]);
	fx_jw_key(&w, "add_bos_token");
	fx_jw_bool(&w, false);
	fx_jw_key(&w, "add_eos_token");
	fx_jw_bool(&w, false);
	fx_jw_key(&w, "clean_up_tokenization_spaces");
	fx_jw_bool(&w, false);
	fx_jw_key(&w, "model_max_length");
	fx_jw_int64(&w, model_max_length);
	fx_jw_object_end(&w);
	err = fx_jw_finish(&w, out, len, diag);
	fx_jw_release(&w);
	return err;
}

fx_err fx_tok_write_hf(const char *path, fx_diag *diag)
{
	char *text = NULL;
	size_t len = 0;
	fx_err err;

	if ((err = fx_tok_hf_json(&text, &len, diag)) != FX_OK)
		goto out;
	err = fx_write_file_atomic(path, text, len, 0644, diag);
out:
	free(text);
	return err;
}
