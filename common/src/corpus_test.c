/* Corpus loading: the split depends only on document names, EOS follows
 * every document, bad folders are refused, and the unigram baseline agrees
 * with a hand computation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "flexo/corpus.h"
#include "flexo/fsutil.h"
#include "flexo/tokenizer.h"
#include "fx_test.h"

static char dir[256];

static void write_doc(const char *sub, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	CHECK_OK(fx_mkdir_p(path, 0755, NULL));
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	CHECK_OK(fx_write_file_atomic(path, text, strlen(text), 0644, NULL));
}

static void test_split_by_name(void)
{
	char a[512], b[512], name[64];
	fx_corpus c1 = {0}, c2 = {0};
	size_t eos = 0;

	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "d%03d.txt", i);
		write_doc("a", name, "abc");
		if (i % 2 == 0) /* b holds every other document of a */
			write_doc("b", name, "abc");
	}
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	CHECK_OK(fx_corpus_load(&c1, a, 0.3, NULL));
	CHECK_OK(fx_corpus_load(&c2, b, 0.3, NULL));
	CHECK(c1.docs_train + c1.docs_heldout == 100);
	/* Roughly 30% held out. */
	CHECK(c1.docs_heldout > 15 && c1.docs_heldout < 45);
	CHECK(c1.n_heldout == c1.docs_heldout * 4);
	for (size_t i = 0; i < c1.n_train; i++)
		eos += c1.train[i] == FX_TOK_EOS;
	CHECK(eos == c1.docs_train);
	CHECK(c1.train[3] == FX_TOK_EOS && c1.train[0] == 'a');
	/* Removing documents never moves the others across the split. */
	CHECK(c2.docs_heldout <= c1.docs_heldout);
	fx_corpus_release(&c1);
	fx_corpus_release(&c2);
}

static void test_refusals(void)
{
	char path[512];
	fx_corpus c = {0};
	fx_diag diag = {{0}};

	snprintf(path, sizeof(path), "%s/none", dir);
	CHECK(fx_corpus_load(&c, path, 0.1, &diag) == FX_EIO);
	CHECK(strstr(diag.msg, "none") != NULL);
	write_doc("one", "only.txt", "x");
	snprintf(path, sizeof(path), "%s/one", dir);
	CHECK(fx_corpus_load(&c, path, 0.1, &diag) == FX_EINVAL);
	CHECK(strstr(diag.msg, "both splits") != NULL);
	CHECK(fx_corpus_load(&c, path, 1.5, &diag) == FX_EINVAL);
	CHECK(c.train == NULL);
}

static void test_unigram(void)
{
	fx_corpus c = {0};
	uint16_t train[] = {'a', 'a', 'b', FX_TOK_EOS};
	uint16_t held[] = {'a', 'b', FX_TOK_EOS};
	double expect;

	c.train = train;
	c.n_train = 4;
	c.heldout = held;
	c.n_heldout = 3;
	/* add-one: p(a) = 3/259, p(b) = 2/259 */
	expect = -(log2(3.0 / 259) + log2(2.0 / 259)) / 2;
	CHECK_NEAR(fx_corpus_unigram_bpb(&c), expect, 1e-12);
}

int main(void)
{
	char cmd[300];
	snprintf(dir, sizeof(dir), "/tmp/fx-corpus-test.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	RUN(test_split_by_name);
	RUN(test_refusals);
	RUN(test_unigram);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return FX_TEST_REPORT();
}
