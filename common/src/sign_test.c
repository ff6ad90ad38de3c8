/* Ed25519 through the wrapper against RFC 8032 §7.1 TEST 1-3 (typed in from
 * the RFC), the PAE layout rebuilt by hand in the test, and single-bit
 * tampering of type, body and signature. */
#include <stdlib.h>

#include "flexo/hash.h"
#include "flexo/keys.h"
#include "flexo/sign.h"
#include "fx_test.h"

typedef struct vec {
	const char *seed, *pk, *msg, *sig;
} vec;

static const vec rfc8032[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

static void test_rfc8032(void)
{
	for (size_t i = 0; i < sizeof(rfc8032) / sizeof(*rfc8032); i++) {
		const vec *v = &rfc8032[i];
		uint8_t seed[32], pk[32], sig[64], got[64], msg[8];
		size_t mlen = strlen(v->msg) / 2;
		fx_keypair kp;
		fx_diag d;

		fx_keypair_init(&kp);
		CHECK_OK(fx_hex_decode(seed, 32, v->seed, &d));
		CHECK_OK(fx_hex_decode(pk, 32, v->pk, &d));
		CHECK_OK(fx_hex_decode(sig, 64, v->sig, &d));
		CHECK_OK(fx_hex_decode(msg, mlen, v->msg, &d));
		CHECK_OK(fx_keypair_from_seed(&kp, seed, &d));
		CHECK_MSG(memcmp(kp.pk, pk, 32) == 0, "TEST %zu public key",
		          i + 1);
		CHECK_OK(fx_ed25519_sign(got, msg, mlen, kp.sk, &d));
		CHECK_MSG(memcmp(got, sig, 64) == 0, "TEST %zu signature",
		          i + 1);
		CHECK(fx_ed25519_verify(sig, msg, mlen, pk) == 0);
		sig[63] ^= 0x01;
		CHECK(fx_ed25519_verify(sig, msg, mlen, pk) == -1);
		fx_keypair_release(&kp);
		CHECK(kp.sk == NULL);
	}
}

/* The PAE built here by hand from docs/protocol.md, independent of fx_pae. */
static void test_pae_layout(void)
{
	static const uint8_t want[] = {
	    'f', 'l', 'e', 'x', 'o', '-', 's', 'i', 'g', '-',  'v',
	    '1', 3,   0,   0,   0,   0,   0,   0,   0,   'a',  '/',
	    'b', 2,   0,   0,   0,   0,   0,   0,   0,   0x00, 0xff};
	uint8_t body[2] = {0x00, 0xff}, *pae = NULL, sig[64], manual[64];
	uint8_t seed[32] = {7};
	size_t len = 0;
	fx_keypair kp;
	fx_diag d;

	CHECK_OK(fx_pae("a/b", body, 2, &pae, &len, &d));
	CHECK(len == sizeof(want) && memcmp(pae, want, len) == 0);
	free(pae);

	fx_keypair_init(&kp);
	CHECK_OK(fx_keypair_from_seed(&kp, seed, &d));
	CHECK_OK(fx_sign(sig, "a/b", body, 2, kp.sk, &d));
	CHECK_OK(fx_ed25519_sign(manual, want, sizeof(want), kp.sk, &d));
	CHECK(memcmp(sig, manual, 64) == 0); /* Ed25519 is deterministic */
	CHECK(fx_verify(sig, "a/b", body, 2, kp.pk) == 0);
	CHECK(fx_verify(sig, "a/c", body, 2, kp.pk) == -1);
	CHECK(fx_verify(sig, "a/b", body, 1, kp.pk) == -1);
	body[1] = 0xfe;
	CHECK(fx_verify(sig, "a/b", body, 2, kp.pk) == -1);

	/* Type rules: empty, control bytes and overlong types are refused. */
	CHECK(fx_sign(sig, "", body, 2, kp.sk, &d) == FX_EINVAL);
	CHECK(fx_sign(sig, "a b", body, 2, kp.sk, &d) == FX_EINVAL);
	{
		char longtype[FX_SIG_TYPE_MAX + 2];
		memset(longtype, 'x', sizeof(longtype) - 1);
		longtype[sizeof(longtype) - 1] = '\0';
		CHECK(fx_sign(sig, longtype, body, 2, kp.sk, &d) == FX_EINVAL);
		CHECK(fx_verify(sig, longtype, body, 2, kp.pk) == -1);
	}
	fx_keypair_release(&kp);
}

static void test_key_id(void)
{
	uint8_t pk[32], id[8], h[32];
	fx_diag d;
	CHECK_OK(fx_hex_decode(pk, 32, rfc8032[0].pk, &d));
	fx_key_id(id, pk);
	fx_blake2b(h, pk, 32);
	CHECK(memcmp(id, h, 8) == 0);
}

int main(void)
{
	RUN(test_rfc8032);
	RUN(test_pae_layout);
	RUN(test_key_id);
	return FX_TEST_REPORT();
}
