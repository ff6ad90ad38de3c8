/* tlog-checkpoint bodies: the C2SP example parses, strict refusals, and a
 * signed checkpoint opens only with its log's key and origin. */
#include "flexo/checkpoint.h"
#include "fx_test.h"

#include <sodium.h>
#include <stdlib.h>

static void test_parse(void)
{
	static const char ex[] =
	    "example.com/behind-the-sofa\n20852163\n"
	    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
	fx_checkpoint c;
	char out[FX_CHECKPOINT_MAX_BODY];
	size_t len;

	CHECK_OK(fx_checkpoint_parse(ex, strlen(ex), &c, NULL));
	CHECK(strcmp(c.origin, "example.com/behind-the-sofa") == 0);
	CHECK(c.size == 20852163);
	CHECK(c.root[0] == 0x0a && c.root[1] == 0xc5);
	CHECK_OK(fx_checkpoint_format(&c, out, sizeof(out), &len, NULL));
	CHECK(len == strlen(ex) && strcmp(out, ex) == 0);

	static const char ext[] =
	    "o\n0\n"
	    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
	    "extension line\n";
	CHECK_OK(fx_checkpoint_parse(ext, strlen(ext), &c, NULL));
	CHECK(c.size == 0);

	static const char *const bad[] = {
	    "o\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
	    "o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
	    "o\n18446744073709551616\n"
	    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
	    "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",
	    "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",
	    "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",
	    "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",
	    "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
	    "a b\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
	    "o\n1\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		CHECK_MSG(fx_checkpoint_parse(bad[i], strlen(bad[i]), &c,
		                              NULL) == FX_EFORMAT,
		          "bad body %zu accepted", i);
}

static void test_sign_open(void)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64];
	fx_note_verifier v, w;
	fx_checkpoint c = {"flexo.test/log", 42, {0}}, got;
	char *note = NULL, *note2 = NULL;
	size_t len, len2;
	fx_diag d;

	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	for (int i = 0; i < 32; i++)
		c.root[i] = (uint8_t)i;
	CHECK_OK(fx_note_verifier_init(&v, "flexo.test/log", pk, NULL));
	CHECK_OK(fx_checkpoint_sign(&c, sk, &note, &len, NULL));
	CHECK(fx_checkpoint_open(note, len, &v, &got, NULL) == FX_OK);
	CHECK(got.size == 42 && memcmp(got.root, c.root, 32) == 0);
	/* another key under the same name */
	CHECK_OK(fx_note_verifier_init(&w, "flexo.test/log", pk2, NULL));
	CHECK(fx_checkpoint_open(note, len, &w, &got, &d) == FX_EBADSIG);
	/* a log signing a checkpoint with someone else's origin */
	strcpy(c.origin, "other/log");
	CHECK_OK(fx_checkpoint_sign(&c, sk, &note2, &len2, NULL));
	CHECK_OK(fx_note_verifier_init(&w, "other/log", pk, NULL));
	CHECK(fx_checkpoint_open(note2, len2, &w, &got, NULL) == FX_OK);
	CHECK(fx_checkpoint_open(note2, len2, &v, &got, &d) == FX_EBADSIG);
	/* a flipped size digit breaks the signature */
	note[15] = note[15] == '4' ? '5' : '4';
	CHECK(fx_checkpoint_open(note, len, &v, &got, &d) == FX_EBADSIG);
	free(note);
	free(note2);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sk2, sizeof(sk2));
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	RUN(test_parse);
	RUN(test_sign_open);
	return FX_TEST_REPORT();
}
