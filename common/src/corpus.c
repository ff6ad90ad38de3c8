/* Loading a folder of documents into train/held-out byte-token streams,
 * sampling training windows, and measuring bits per byte. */
#include "flexo/corpus.h"

#include <dirent.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "flexo/fsutil.h"
#include "flexo/tokenizer.h"

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_heldout(const char *name, double frac)
{
	uint8_t h[32];
	uint64_t v = 0;

	crypto_generichash(h, sizeof(h), (const uint8_t *)name, strlen(name),
	                   NULL, 0);
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | h[i];
	return (double)(v % 10000) < frac * 10000.0;
}

/* Appends a document's bytes and an EOS to *stream, growing it. */
static fx_err append_doc(uint16_t **stream, size_t *n, size_t *cap,
                         const uint8_t *buf, size_t len)
{
	if (*n + len + 1 > *cap) {
		size_t want = (*n + len + 1) * 2;
		uint16_t *p = realloc(*stream, want * sizeof(**stream));
		if (p == NULL)
			return FX_ENOMEM;
		*stream = p;
		*cap = want;
	}
	for (size_t i = 0; i < len; i++)
		(*stream)[(*n)++] = buf[i];
	(*stream)[(*n)++] = FX_TOK_EOS;
	return FX_OK;
}

fx_err fx_corpus_load(fx_corpus *c, const char *dir, double heldout_frac,
                      fx_diag *diag)
{
	fx_corpus out = {0};
	size_t cap_train = 0, cap_held = 0, n_names = 0, cap_names = 0;
	uint64_t total = 0;
	char **names = NULL;
	char path[4096];
	uint8_t *buf = NULL;
	size_t len;
	DIR *d = NULL;
	struct dirent *ent;
	fx_err err = FX_OK;

	if (!(heldout_frac > 0.0 && heldout_frac < 1.0))
		return fx_diag_set(diag, FX_EINVAL,
		                   "held-out fraction %g must be in (0, 1)",
		                   heldout_frac);
	d = opendir(dir);
	if (d == NULL) {
		err = fx_diag_set(diag, FX_EIO, "cannot open corpus folder %s",
		                  dir);
		goto out;
	}
	while ((ent = readdir(d)) != NULL) {
		if (ent->d_name[0] == '.')
			continue;
		if (n_names == FX_CORPUS_MAX_DOCS) {
			err = fx_diag_set(diag, FX_ETOOBIG,
			                  "%s holds more than %d documents", dir,
			                  FX_CORPUS_MAX_DOCS);
			goto out;
		}
		if (n_names == cap_names) {
			size_t want = cap_names ? cap_names * 2 : 256;
			char **p = realloc(names, want * sizeof(*names));
			if (p == NULL) {
				err = FX_ENOMEM;
				goto out;
			}
			names = p;
			cap_names = want;
		}
		names[n_names] = strdup(ent->d_name);
		if (names[n_names] == NULL) {
			err = FX_ENOMEM;
			goto out;
		}
		n_names++;
	}
	qsort(names, n_names, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n_names; i++) {
		bool held = is_heldout(names[i], heldout_frac);
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
		                     names[i]) >= sizeof(path)) {
			err = fx_diag_set(diag, FX_ETOOBIG, "path too long: %s/%s",
			                  dir, names[i]);
			goto out;
		}
		err = fx_read_file(path, FX_CORPUS_MAX_DOC, &buf, &len, diag);
		if (err != FX_OK)
			goto out;
		total += len;
		if (total > FX_CORPUS_MAX_TOTAL) {
			err = fx_diag_set(diag, FX_ETOOBIG,
			                  "corpus %s exceeds %llu bytes", dir,
			                  (unsigned long long)FX_CORPUS_MAX_TOTAL);
			goto out;
		}
		if (held)
			err = append_doc(&out.heldout, &out.n_heldout, &cap_held,
			                 buf, len);
		else
			err = append_doc(&out.train, &out.n_train, &cap_train,
			                 buf, len);
		if (err != FX_OK)
			goto out;
		free(buf);
		buf = NULL;
		if (held)
			out.docs_heldout++;
		else
			out.docs_train++;
	}
	if (out.docs_train == 0 || out.docs_heldout == 0) {
		err = fx_diag_set(diag, FX_EINVAL,
		                  "corpus %s: %zu training and %zu held-out "
		                  "documents; both splits need at least one",
		                  dir, out.docs_train, out.docs_heldout);
		goto out;
	}
	*c = out;
	memset(&out, 0, sizeof(out));
out:
	if (d != NULL)
		closedir(d);
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	free(names);
	free(buf);
	fx_corpus_release(&out);
	return err;
}

void fx_corpus_release(fx_corpus *c)
{
	free(c->train);
	free(c->heldout);
	memset(c, 0, sizeof(*c));
}

void fx_corpus_sample(const uint16_t *stream, size_t n, int B, int T,
                      fx_rng *rng, int32_t *tokens, int32_t *targets)
{
	for (int b = 0; b < B; b++) {
		size_t start = (size_t)fx_rng_below(rng, n - (size_t)T - 1);
		for (int t = 0; t < T; t++) {
			tokens[b * T + t] = stream[start + (size_t)t];
			targets[b * T + t] = stream[start + (size_t)t + 1];
		}
	}
}

int fx_corpus_windows(const uint16_t *stream, size_t n, size_t *pos, int B,
                      int T, bool skip_eos, int32_t *tokens,
                      int32_t *targets)
{
	int rows = 0;

	for (; rows < B && *pos + 1 < n; rows++) {
		for (int t = 0; t < T; t++) {
			size_t i = *pos + (size_t)t;
			bool ok = i + 1 < n;
			int32_t next = ok ? stream[i + 1] : -1;
			tokens[rows * T + t] = ok ? stream[i] : FX_TOK_PAD;
			targets[rows * T + t] =
			    skip_eos && next == FX_TOK_EOS ? -1 : next;
		}
		*pos += (size_t)T;
	}
	return rows;
}

fx_err fx_corpus_bpb(fx_model *model, const uint16_t *stream, size_t n,
                     int B, int T, size_t max_tokens,
                     uint64_t disabled_experts, double *bpb, fx_diag *diag)
{
	int32_t *tokens = NULL, *targets = NULL;
	double nll = 0.0;
	int64_t counted = 0;
	size_t pos = 0;
	fx_err err = FX_OK;

	tokens = malloc((size_t)B * (size_t)T * sizeof(*tokens));
	targets = malloc((size_t)B * (size_t)T * sizeof(*targets));
	if (tokens == NULL || targets == NULL) {
		err = FX_ENOMEM;
		goto out;
	}
	while (pos + 1 < n && (max_tokens == 0 || (size_t)counted < max_tokens)) {
		int rows = fx_corpus_windows(stream, n, &pos, B, T, true, tokens,
		                             targets);
		err = fx_model_eval(model, tokens, targets, rows, T,
		                    disabled_experts, &nll, &counted, diag);
		if (err != FX_OK)
			goto out;
	}
	if (counted == 0) {
		err = fx_diag_set(diag, FX_EINVAL, "no bytes to evaluate");
		goto out;
	}
	*bpb = nll / log(2.0) / (double)counted;
out:
	free(tokens);
	free(targets);
	return err;
}

fx_err fx_corpus_routes(fx_model *model, const uint16_t *stream, size_t n,
                        int B, int T, size_t max_tokens,
                        uint64_t disabled_experts, uint64_t *counts,
                        fx_diag *diag)
{
	int32_t *tokens = malloc((size_t)B * (size_t)T * sizeof(*tokens));
	int32_t *targets = malloc((size_t)B * (size_t)T * sizeof(*targets));
	fx_fwd_opts opts = {0};
	size_t pos = 0, seen = 0;
	fx_err err = FX_OK;

	if (tokens == NULL || targets == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "routing windows");
		goto out;
	}
	opts.disabled_experts = disabled_experts;
	opts.route_counts = counts;
	err = fx_model_reserve(model, B, T, diag);
	while (err == FX_OK && pos + 1 < n &&
	       (max_tokens == 0 || seen < max_tokens)) {
		int rows = fx_corpus_windows(stream, n, &pos, B, T, false,
		                             tokens, targets);
		err = fx_model_forward(model, tokens, NULL, rows, T, &opts,
		                       NULL, diag);
		seen += (size_t)rows * (size_t)T;
	}
out:
	free(tokens);
	free(targets);
	return err;
}

double fx_corpus_unigram_bpb(const fx_corpus *c)
{
	double count[256], total = 256.0, bits = 0.0;
	size_t n = 0;

	for (int i = 0; i < 256; i++)
		count[i] = 1.0;
	for (size_t i = 0; i < c->n_train; i++)
		if (c->train[i] < 256) {
			count[c->train[i]] += 1.0;
			total += 1.0;
		}
	for (size_t i = 0; i < c->n_heldout; i++)
		if (c->heldout[i] < 256) {
			bits -= log2(count[c->heldout[i]] / total);
			n++;
		}
	return n ? bits / (double)n : 0.0;
}
