/* Merkle tree: the Certificate Transparency reference vectors (RFC 6962
 * leaves, roots and proofs as published with CT implementations), and every
 * inclusion and consistency proof for trees up to 64 leaves against a
 * brute-force recursive reference written from the RFC text here. */
#include "flexo/merkle.h"
#include "fx_test.h"

#include <sodium.h>
#include <stdlib.h>

#define MAXN 64

static void unhex(const char *h, uint8_t *out, size_t n)
{
	size_t got = 0;
	if (sodium_hex2bin(out, n, h, strlen(h), NULL, &got, NULL) != 0 ||
	    got != n) {
		fprintf(stderr, "bad test hex %s\n", h);
		exit(2);
	}
}

/* --- reference: MTH, PATH and PROOF exactly as RFC 9162 §2.1 words them,
 * recursively over the leaf hashes, with no stored nodes. --- */

static uint64_t ref_k(uint64_t n)
{
	uint64_t k = 1;
	while (k * 2 < n)
		k *= 2;
	return k;
}

static void ref_mth(uint8_t (*lh)[32], uint64_t n, uint8_t out[32])
{
	uint8_t l[32], r[32];
	uint64_t k;

	if (n == 0) {
		crypto_hash_sha256(out, NULL, 0);
		return;
	}
	if (n == 1) {
		memcpy(out, lh[0], 32);
		return;
	}
	k = ref_k(n);
	ref_mth(lh, k, l);
	ref_mth(lh + k, n - k, r);
	uint8_t buf[65];
	buf[0] = 1;
	memcpy(buf + 1, l, 32);
	memcpy(buf + 33, r, 32);
	crypto_hash_sha256(out, buf, 65);
}

static void ref_path(uint8_t (*lh)[32], uint64_t m, uint64_t n,
                     uint8_t (*out)[32], size_t *len)
{
	uint64_t k;
	if (n <= 1)
		return;
	k = ref_k(n);
	if (m < k) {
		ref_path(lh, m, k, out, len);
		ref_mth(lh + k, n - k, out[(*len)++]);
	} else {
		ref_path(lh + k, m - k, n - k, out, len);
		ref_mth(lh, k, out[(*len)++]);
	}
}

static void ref_subproof(uint8_t (*lh)[32], uint64_t m, uint64_t n, int b,
                         uint8_t (*out)[32], size_t *len)
{
	uint64_t k;
	if (m == n) {
		if (!b)
			ref_mth(lh, n, out[(*len)++]);
		return;
	}
	k = ref_k(n);
	if (m <= k) {
		ref_subproof(lh, m, k, b, out, len);
		ref_mth(lh + k, n - k, out[(*len)++]);
	} else {
		ref_subproof(lh + k, m - k, n - k, 0, out, len);
		ref_mth(lh, k, out[(*len)++]);
	}
}

/* --- CT reference vectors --- */

static const char *const ct_leaves[8] = {"",
                                         "00",
                                         "10",
                                         "2021",
                                         "3031",
                                         "40414243",
                                         "5051525354555657",
                                         "606162636465666768696a6b6c6d6e6f"};
static const char *const ct_roots[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};

typedef struct vec {
	uint64_t a, n;
	int count;
	const char *h[3];
} vec;

static const vec ct_inclusion[] = {
    {0,
     8,
     3,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5,
     8,
     3,
     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
};

static const vec ct_consistency[] = {
    {2,
     8,
     2,
     {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6,
     8,
     3,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2,
     5,
     2,
     {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

static void test_ct_vectors(void)
{
	fx_merkle_mem mem;
	uint8_t leaf[8][32], root[32], want[32];
	uint8_t path[FX_MERKLE_MAX_PATH][32];
	size_t len;

	fx_merkle_mem_init(&mem);
	fx_merkle_frontier_root(&mem.frontier, root);
	unhex(ct_roots[0], want, 32);
	CHECK(memcmp(root, want, 32) == 0);
	for (int i = 0; i < 8; i++) {
		uint8_t data[16];
		size_t n = strlen(ct_leaves[i]) / 2;
		unhex(ct_leaves[i], data, n);
		fx_merkle_leaf_hash(data, n, leaf[i]);
		CHECK_OK(fx_merkle_mem_append(&mem, leaf[i]));
		fx_merkle_frontier_root(&mem.frontier, root);
		unhex(ct_roots[i + 1], want, 32);
		CHECK_MSG(memcmp(root, want, 32) == 0, "root of size %d",
		          i + 1);
		CHECK_OK(fx_merkle_root_at(fx_merkle_mem_get, &mem,
		                           (uint64_t)i + 1, root, NULL));
		CHECK(memcmp(root, want, 32) == 0);
	}
	for (size_t v = 0; v < sizeof(ct_inclusion) / sizeof(*ct_inclusion);
	     v++) {
		const vec *t = &ct_inclusion[v];
		CHECK_OK(fx_merkle_inclusion_proof(
		    fx_merkle_mem_get, &mem, t->a, t->n, path, &len, NULL));
		CHECK(len == (size_t)t->count);
		for (int j = 0; j < t->count && j < (int)len; j++) {
			unhex(t->h[j], want, 32);
			CHECK_MSG(memcmp(path[j], want, 32) == 0,
			          "inclusion %llu/%llu hash %d",
			          (unsigned long long)t->a,
			          (unsigned long long)t->n, j);
		}
		unhex(ct_roots[t->n], root, 32);
		CHECK(fx_merkle_verify_inclusion(t->a, t->n, leaf[t->a], path,
		                                 len, root, NULL) == FX_OK);
	}
	for (size_t v = 0; v < sizeof(ct_consistency) / sizeof(*ct_consistency);
	     v++) {
		const vec *t = &ct_consistency[v];
		uint8_t old_root[32];
		CHECK_OK(fx_merkle_consistency_proof(
		    fx_merkle_mem_get, &mem, t->a, t->n, path, &len, NULL));
		CHECK(len == (size_t)t->count);
		for (int j = 0; j < t->count && j < (int)len; j++) {
			unhex(t->h[j], want, 32);
			CHECK_MSG(memcmp(path[j], want, 32) == 0,
			          "consistency %llu->%llu hash %d",
			          (unsigned long long)t->a,
			          (unsigned long long)t->n, j);
		}
		unhex(ct_roots[t->a], old_root, 32);
		unhex(ct_roots[t->n], root, 32);
		CHECK(fx_merkle_verify_consistency(t->a, t->n, old_root, root,
		                                   path, len, NULL) == FX_OK);
	}
	fx_merkle_mem_release(&mem);
}

/* Every way a proof can be wrong that a verifier must catch. */
static int inclusion_ok(uint64_t i, uint64_t n, const uint8_t *leaf,
                        uint8_t (*p)[32], size_t len, const uint8_t *root)
{
	return fx_merkle_verify_inclusion(i, n, leaf, (const uint8_t(*)[32])p,
	                                  len, root, NULL) == FX_OK;
}

static int consistency_ok(uint64_t m, uint64_t n, const uint8_t *r1,
                          const uint8_t *r2, uint8_t (*p)[32], size_t len)
{
	return fx_merkle_verify_consistency(
	           m, n, r1, r2, (const uint8_t(*)[32])p, len, NULL) == FX_OK;
}

static void test_brute_force(void)
{
	static uint8_t lh[MAXN][32], roots[MAXN + 1][32];
	uint8_t path[FX_MERKLE_MAX_PATH + 1][32], ref[FX_MERKLE_MAX_PATH][32];
	uint8_t root[32];
	fx_merkle_mem mem;
	size_t len, rlen;
	int bad = 0, refused = 0, cases = 0;

	fx_merkle_mem_init(&mem);
	for (int i = 0; i < MAXN; i++) {
		uint8_t d[2] = {(uint8_t)i, (uint8_t)(i * 7)};
		fx_merkle_leaf_hash(d, 2, lh[i]);
		CHECK_OK(fx_merkle_mem_append(&mem, lh[i]));
	}
	for (uint64_t n = 0; n <= MAXN; n++) {
		ref_mth(lh, n, roots[n]);
		CHECK_OK(
		    fx_merkle_root_at(fx_merkle_mem_get, &mem, n, root, NULL));
		if (memcmp(root, roots[n], 32) != 0)
			bad++;
	}

	for (uint64_t n = 1; n <= MAXN; n++) {
		for (uint64_t i = 0; i < n; i++) {
			cases++;
			rlen = 0;
			ref_path(lh, i, n, ref, &rlen);
			if (fx_merkle_inclusion_proof(fx_merkle_mem_get, &mem,
			                              i, n, path, &len,
			                              NULL) != FX_OK ||
			    len != rlen || memcmp(path, ref, len * 32) != 0) {
				bad++;
				continue;
			}
			if (!inclusion_ok(i, n, lh[i], path, len, roots[n]))
				bad++;
			/* wrong index, wrong size, wrong leaf, wrong root */
			if (n > 1 &&
			    inclusion_ok(i ^ 1, n, lh[i], path, len, roots[n]))
				bad++;
			/* A size is only meaningful with its own root: the
			 * path must not prove the leaf in a neighbour tree. */
			if ((n < MAXN && inclusion_ok(i, n + 1, lh[i], path,
			                              len, roots[n + 1])) ||
			    (n > i + 1 && inclusion_ok(i, n - 1, lh[i], path,
			                               len, roots[n - 1])))
				bad++;
			if (inclusion_ok(i, n, lh[(i + 1) % MAXN], path, len,
			                 roots[n]) ||
			    inclusion_ok(i, n, lh[i], path, len, roots[n - 1]))
				bad++;
			/* each hash flipped, dropped, one extra, swapped */
			for (size_t j = 0; j < len; j++) {
				path[j][j % 32] ^= 0x40;
				if (inclusion_ok(i, n, lh[i], path, len,
				                 roots[n]))
					bad++;
				path[j][j % 32] ^= 0x40;
			}
			if (len > 0 &&
			    inclusion_ok(i, n, lh[i], path, len - 1, roots[n]))
				bad++;
			memcpy(path[len], lh[0], 32);
			if (inclusion_ok(i, n, lh[i], path, len + 1, roots[n]))
				bad++;
			for (size_t j = 0; j + 1 < len; j++) {
				uint8_t t[32];
				if (memcmp(path[j], path[j + 1], 32) == 0)
					continue;
				memcpy(t, path[j], 32);
				memcpy(path[j], path[j + 1], 32);
				memcpy(path[j + 1], t, 32);
				if (inclusion_ok(i, n, lh[i], path, len,
				                 roots[n]))
					bad++;
				else
					refused++;
				memcpy(path[j + 1], path[j], 32);
				memcpy(path[j], t, 32);
			}
		}
	}

	for (uint64_t n = 1; n <= MAXN; n++) {
		for (uint64_t m = 1; m <= n; m++) {
			cases++;
			rlen = 0;
			ref_subproof(lh, m, n, 1, ref, &rlen);
			if (fx_merkle_consistency_proof(fx_merkle_mem_get, &mem,
			                                m, n, path, &len,
			                                NULL) != FX_OK ||
			    len != rlen || memcmp(path, ref, len * 32) != 0) {
				bad++;
				continue;
			}
			if (!consistency_ok(m, n, roots[m], roots[n], path,
			                    len))
				bad++;
			/* wrong sizes */
			if (m > 1 && consistency_ok(m - 1, n, roots[m - 1],
			                            roots[n], path, len))
				bad++;
			if (m < n && consistency_ok(m + 1, n, roots[m + 1],
			                            roots[n], path, len))
				bad++;
			if (n < MAXN && consistency_ok(m, n + 1, roots[m],
			                               roots[n + 1], path, len))
				bad++;
			if (n > m && consistency_ok(m, n - 1, roots[m],
			                            roots[n - 1], path, len))
				bad++;
			/* wrong roots: a fork of either tree */
			if (consistency_ok(m, n, roots[m - 1], roots[n], path,
			                   len) ||
			    consistency_ok(m, n, roots[m], roots[n - 1], path,
			                   len))
				bad++;
			for (size_t j = 0; j < len; j++) {
				path[j][(j * 5) % 32] ^= 0x01;
				if (consistency_ok(m, n, roots[m], roots[n],
				                   path, len))
					bad++;
				path[j][(j * 5) % 32] ^= 0x01;
			}
			if (len > 0 && consistency_ok(m, n, roots[m], roots[n],
			                              path, len - 1))
				bad++;
			memcpy(path[len], roots[m], 32);
			if (consistency_ok(m, n, roots[m], roots[n], path,
			                   len + 1))
				bad++;
			for (size_t j = 0; j + 1 < len; j++) {
				uint8_t t[32];
				if (memcmp(path[j], path[j + 1], 32) == 0)
					continue;
				memcpy(t, path[j], 32);
				memcpy(path[j], path[j + 1], 32);
				memcpy(path[j + 1], t, 32);
				if (consistency_ok(m, n, roots[m], roots[n],
				                   path, len))
					bad++;
				else
					refused++;
				memcpy(path[j + 1], path[j], 32);
				memcpy(path[j], t, 32);
			}
		}
	}
	CHECK_MSG(bad == 0, "%d of %d cases wrong", bad, cases);
	CHECK(refused > 1000); /* the reorder checks really ran */
	CHECK(cases == 64 * 65 / 2 * 2);

	/* Out-of-range requests are refused, not answered. */
	CHECK(fx_merkle_inclusion_proof(fx_merkle_mem_get, &mem, 5, 5, path,
	                                &len, NULL) == FX_EINVAL);
	CHECK(fx_merkle_consistency_proof(fx_merkle_mem_get, &mem, 6, 5, path,
	                                  &len, NULL) == FX_EINVAL);
	CHECK(fx_merkle_consistency_proof(fx_merkle_mem_get, &mem, 0, 5, path,
	                                  &len, NULL) == FX_EINVAL);
	CHECK(fx_merkle_inclusion_proof(fx_merkle_mem_get, &mem, 0, MAXN + 1,
	                                path, &len, NULL) != FX_OK);
	fx_merkle_mem_release(&mem);
}

static void test_hex(void)
{
	uint8_t h[32], back[32];
	char hex[65];
	for (int i = 0; i < 32; i++)
		h[i] = (uint8_t)(i * 9);
	fx_merkle_hex(h, hex);
	CHECK(strlen(hex) == 64);
	CHECK(fx_merkle_from_hex(hex, back) == 0 && memcmp(h, back, 32) == 0);
	hex[10] = 'g';
	CHECK(fx_merkle_from_hex(hex, back) == -1);
	CHECK(fx_merkle_from_hex("abcd", back) == -1);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	RUN(test_ct_vectors);
	RUN(test_brute_force);
	RUN(test_hex);
	return FX_TEST_REPORT();
}
