/* Signed notes against the golang.org/x/mod/sumdb/note reference vector
 * (PeterNeumann key and note), plus malformed and tampered notes. */
#include "flexo/note.h"
#include "fx_test.h"

#include <sodium.h>
#include <stdlib.h>

static const char vkey_text[] =
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char skey_b64[] = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
static const char text[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
static const char sigline[] =
    "\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIu"
    "GUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

static void reference_key(uint8_t pk[32], uint8_t sk[64])
{
	uint8_t raw[33];
	size_t n = 0;
	if (sodium_base642bin(raw, sizeof(raw), skey_b64, strlen(skey_b64),
	                      NULL, &n, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    n != 33 || raw[0] != 1)
		exit(2);
	crypto_sign_seed_keypair(pk, sk, raw + 1);
}

static void test_reference_vector(void)
{
	uint8_t pk[32], sk[64];
	fx_note_verifier v, parsed;
	char vk[FX_NOTE_VKEY_MAX], want[1024];
	char *note = NULL;
	size_t len = 0, tlen = 0;

	reference_key(pk, sk);
	CHECK_OK(fx_note_verifier_init(&v, "PeterNeumann", pk, NULL));
	CHECK(v.id == 0xc74f20a3u);
	CHECK_OK(fx_note_vkey_format(&v, vk, sizeof(vk), NULL));
	CHECK_MSG(strcmp(vk, vkey_text) == 0, "%s", vk);
	CHECK_OK(fx_note_vkey_parse(vkey_text, &parsed, NULL));
	CHECK(parsed.id == v.id && memcmp(parsed.pk, pk, 32) == 0);

	CHECK_OK(fx_note_sign(text, strlen(text), "PeterNeumann", sk, &note,
	                      &len, NULL));
	snprintf(want, sizeof(want), "%s\n%s", text, sigline);
	CHECK(note != NULL && strcmp(note, want) == 0 && len == strlen(want));
	CHECK(fx_note_open(want, strlen(want), &parsed, &tlen, NULL) == FX_OK);
	CHECK(tlen == strlen(text));
	free(note);
	sodium_memzero(sk, sizeof(sk));
}

static void test_refusals(void)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64];
	fx_note_verifier v, other;
	char buf[2048], *note = NULL;
	size_t len, tlen;
	fx_diag d;

	reference_key(pk, sk);
	CHECK_OK(fx_note_verifier_init(&v, "PeterNeumann", pk, NULL));
	crypto_sign_keypair(pk2, sk2);
	CHECK_OK(fx_note_verifier_init(&other, "Other", pk2, NULL));

	/* tampered text */
	snprintf(buf, sizeof(buf), "%s\n%s", text, sigline);
	buf[20] ^= 0x20;
	CHECK(fx_note_open(buf, strlen(buf), &v, &tlen, &d) == FX_EBADSIG);
	/* another verifier: not signed by it */
	snprintf(buf, sizeof(buf), "%s\n%s", text, sigline);
	CHECK(fx_note_open(buf, strlen(buf), &other, &tlen, &d) == FX_EBADSIG);
	CHECK(strstr(d.msg, "not signed by Other") != NULL);
	/* same name, different key: ID differs, so not found */
	CHECK_OK(fx_note_verifier_init(&other, "PeterNeumann", pk2, NULL));
	CHECK(fx_note_open(buf, strlen(buf), &other, &tlen, &d) == FX_EBADSIG);
	/* unknown signer lines are ignored, ours still verifies */
	snprintf(buf, sizeof(buf), "%s\n\xe2\x80\x94 Someone AAAAAAAA\n%s",
	         text, sigline);
	CHECK(fx_note_open(buf, strlen(buf), &v, &tlen, NULL) == FX_OK);
	/* malformed: no blank line, ASCII dash, control character */
	snprintf(buf, sizeof(buf), "%s%s", text, sigline);
	CHECK(fx_note_open(buf, strlen(buf), &v, &tlen, NULL) != FX_OK);
	snprintf(buf, sizeof(buf), "%s\n-- PeterNeumann AAAA\n", text);
	CHECK(fx_note_open(buf, strlen(buf), &v, &tlen, NULL) == FX_EFORMAT);
	snprintf(buf, sizeof(buf), "%s\n%s", text, sigline);
	buf[5] = '\t';
	CHECK(fx_note_open(buf, strlen(buf), &v, &tlen, NULL) == FX_EFORMAT);
	/* signing refuses texts that would not round-trip */
	CHECK(fx_note_sign("a\n\nb\n", 5, "x", sk, &note, &len, NULL) ==
	      FX_EINVAL);
	CHECK(fx_note_sign("no newline", 10, "x", sk, &note, &len, NULL) ==
	      FX_EINVAL);
	CHECK(fx_note_sign("ok\n", 3, "bad name", sk, &note, &len, NULL) ==
	      FX_EINVAL);
	CHECK(fx_note_sign("ok\n", 3, "a+b", sk, &note, &len, NULL) ==
	      FX_EINVAL);
	/* verifier key text */
	CHECK(fx_note_vkey_parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKq"
	                         "iBfsVkmqq/LDE4izWy10TW",
	                         &other, NULL) == FX_EMISMATCH);
	CHECK(fx_note_vkey_parse("PeterNeumann+c74f20a3", &other, NULL) ==
	      FX_EFORMAT);
	CHECK(fx_note_vkey_parse("PeterNeumann+c74f20a3+AhpcAA==", &other,
	                         NULL) == FX_EFORMAT);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sk2, sizeof(sk2));
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	RUN(test_reference_vector);
	RUN(test_refusals);
	return FX_TEST_REPORT();
}
