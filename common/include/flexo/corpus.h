/* A text corpus for training and evaluation: a folder of plain-text
 * documents, split deterministically into train and held-out by a hash of
 * each document's file name (so adding a document never moves another), and
 * flattened into byte-token streams with EOS after each document. Also the
 * batch sampler, held-out bits-per-byte, and the byte-unigram baseline. */
#ifndef FLEXO_CORPUS_H
#define FLEXO_CORPUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"
#include "flexo/model.h"
#include "flexo/rng.h"

#define FX_CORPUS_MAX_DOC   (16u << 20)  /* bytes of one document */
#define FX_CORPUS_MAX_TOTAL (1ull << 30) /* bytes of a whole corpus */
#define FX_CORPUS_MAX_DOCS  1000000

typedef struct fx_corpus {
	uint16_t *train;    /* (n_train) tokens: bytes, EOS after each doc */
	size_t n_train;
	uint16_t *heldout;  /* (n_heldout) */
	size_t n_heldout;
	size_t docs_train, docs_heldout;
} fx_corpus;

/* Loads every regular file in `dir` (not starting with '.'), in name order.
 * A document is held out when the first 8 bytes of BLAKE2b-256(file name),
 * read little-endian, modulo 10000 are below heldout_frac * 10000. Fails
 * if either split ends up empty. *c is caller-owned; free with
 * fx_corpus_release. */
fx_err fx_corpus_load(fx_corpus *c, const char *dir, double heldout_frac,
                      fx_diag *diag);
void fx_corpus_release(fx_corpus *c);

/* Fills tokens and targets (B, T) with B windows drawn uniformly from
 * stream (n > T + 1): targets are tokens shifted by one. */
void fx_corpus_sample(const uint16_t *stream, size_t n, int B, int T,
                      fx_rng *rng, int32_t *tokens, int32_t *targets);

/* Fills up to B evaluation windows starting at *pos: row r holds tokens
 * stream[p .. p+T) and targets shifted by one (-1 past the end, and for EOS
 * targets when `skip_eos`), with p advancing by T per row. Returns the rows
 * filled (0 when *pos + 1 >= n) and advances *pos. */
int fx_corpus_windows(const uint16_t *stream, size_t n, size_t *pos, int B,
                      int T, bool skip_eos, int32_t *tokens,
                      int32_t *targets);

/* Held-out bits per byte of `model` over stream: consecutive windows of
 * T+1 tokens (stride T, the last partial window included) evaluated B at a
 * time, counting only byte targets (EOS targets are not bytes), until at
 * least max_tokens targets are counted (0 = all): whole batches, so the
 * set evaluated grows with B by up to one batch. Honours
 * disabled_experts. */
fx_err fx_corpus_bpb(fx_model *model, const uint16_t *stream, size_t n,
                     int B, int T, size_t max_tokens,
                     uint64_t disabled_experts, double *bpb, fx_diag *diag);

/* Routing over stream, windowed as fx_corpus_bpb (targets unused): adds
 * to counts[l*E + e] the top-k slots expert e took in layer l, one per
 * token that selected it, over at least max_tokens tokens (0 = all), whole
 * batches. counts (L, E) is caller-owned and not zeroed here. Honours
 * disabled_experts. Requires nothing reserved: reserves (B, T) itself. */
fx_err fx_corpus_routes(fx_model *model, const uint16_t *stream, size_t n,
                        int B, int T, size_t max_tokens,
                        uint64_t disabled_experts, uint64_t *counts,
                        fx_diag *diag);

/* Bits per byte of `heldout` under the byte-unigram distribution of
 * `train` (add-one smoothing over the 256 byte values): the baseline any
 * language model must beat. */
double fx_corpus_unigram_bpb(const fx_corpus *c);

#endif
