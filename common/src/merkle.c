/* RFC 9162 §2.1 Merkle tree over SHA-256: frontier appends, proofs built
 * from stored perfect-subtree roots (never by rehashing leaves), and the
 * RFC's verification algorithms. */
#include "flexo/merkle.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void fx_merkle_leaf_hash(const uint8_t *data, size_t len,
                         uint8_t out[FX_HASH_LEN])
{
	static const uint8_t prefix = 0x00;
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &prefix, 1);
	crypto_hash_sha256_update(&st, data, len);
	crypto_hash_sha256_final(&st, out);
}

void fx_merkle_node_hash(const uint8_t left[FX_HASH_LEN],
                         const uint8_t right[FX_HASH_LEN],
                         uint8_t out[FX_HASH_LEN])
{
	uint8_t buf[1 + 2 * FX_HASH_LEN];

	/* Copy first so that out may alias an input. */
	buf[0] = 0x01;
	memcpy(buf + 1, left, FX_HASH_LEN);
	memcpy(buf + 1 + FX_HASH_LEN, right, FX_HASH_LEN);
	crypto_hash_sha256(out, buf, sizeof(buf));
}

void fx_merkle_empty_root(uint8_t out[FX_HASH_LEN])
{
	crypto_hash_sha256(out, NULL, 0);
}

void fx_merkle_frontier_init(fx_merkle_frontier *f)
{
	memset(f, 0, sizeof(*f));
}

fx_err fx_merkle_frontier_append(fx_merkle_frontier *f,
                                 const uint8_t leaf[FX_HASH_LEN],
                                 fx_merkle_emit_fn emit, void *ctx)
{
	uint8_t carry[FX_HASH_LEN];
	uint64_t size = f->size;
	unsigned l = 0;
	fx_err err;

	if (size == UINT64_MAX)
		return FX_ETOOBIG;
	memcpy(carry, leaf, FX_HASH_LEN);
	if (emit != NULL && (err = emit(ctx, 0, size, carry)) != FX_OK)
		return err;
	/* Each set low bit is a left sibling waiting for this subtree. Emit all
	 * new nodes before touching f so that a failed emit changes nothing. */
	while ((size >> l) & 1) {
		fx_merkle_node_hash(f->node[l], carry, carry);
		l++;
		if (emit != NULL &&
		    (err = emit(ctx, l, size >> l, carry)) != FX_OK)
			return err;
	}
	memcpy(f->node[l], carry, FX_HASH_LEN);
	f->size = size + 1;
	return FX_OK;
}

void fx_merkle_frontier_root(const fx_merkle_frontier *f,
                             uint8_t out[FX_HASH_LEN])
{
	uint8_t r[FX_HASH_LEN];
	int have = 0;

	if (f->size == 0) {
		fx_merkle_empty_root(out);
		return;
	}
	/* The smallest subtree is the rightmost; fold leftwards. */
	for (unsigned l = 0; l < FX_MERKLE_MAX_LEVELS; l++) {
		if (!((f->size >> l) & 1))
			continue;
		if (!have) {
			memcpy(r, f->node[l], FX_HASH_LEN);
			have = 1;
		} else {
			fx_merkle_node_hash(f->node[l], r, r);
		}
	}
	memcpy(out, r, FX_HASH_LEN);
}

/* Largest power of two strictly below n (n >= 2): RFC 9162's split k. */
static uint64_t split_point(uint64_t n)
{
	return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

/* Root of leaves [a, a+n). The recursion only ever asks for ranges whose
 * start is aligned to their largest power-of-two part, so this touches at
 * most one stored node per level. */
static fx_err range_hash(fx_merkle_get_fn get, void *ctx, uint64_t a,
                         uint64_t n, uint8_t out[FX_HASH_LEN])
{
	uint8_t left[FX_HASH_LEN], right[FX_HASH_LEN];
	uint64_t k;
	fx_err err;

	if ((n & (n - 1)) == 0 && (a & (n - 1)) == 0) {
		unsigned level = (unsigned)__builtin_ctzll(n);
		return get(ctx, level, a >> level, out);
	}
	k = split_point(n);
	if ((err = range_hash(get, ctx, a, k, left)) != FX_OK)
		return err;
	if ((err = range_hash(get, ctx, a + k, n - k, right)) != FX_OK)
		return err;
	fx_merkle_node_hash(left, right, out);
	return FX_OK;
}

fx_err fx_merkle_root_at(fx_merkle_get_fn get, void *ctx, uint64_t size,
                         uint8_t out[FX_HASH_LEN], fx_diag *diag)
{
	fx_err err;

	if (size == 0) {
		fx_merkle_empty_root(out);
		return FX_OK;
	}
	err = range_hash(get, ctx, 0, size, out);
	if (err != FX_OK)
		return fx_diag_set(diag, err,
		                   "merkle: cannot read nodes of the "
		                   "tree of size %llu",
		                   (unsigned long long)size);
	return FX_OK;
}

typedef struct proof_buf {
	uint8_t (*path)[FX_HASH_LEN];
	size_t len;
} proof_buf;

static fx_err push_range(proof_buf *p, fx_merkle_get_fn get, void *ctx,
                         uint64_t a, uint64_t n)
{
	if (p->len >= FX_MERKLE_MAX_PATH)
		return FX_EINTERNAL;
	return range_hash(get, ctx, a, n, p->path[p->len++]);
}

/* PATH(m, D[a:a+n]) of RFC 9162 §2.1.3.1, m relative to a. */
static fx_err inclusion_rec(proof_buf *p, fx_merkle_get_fn get, void *ctx,
                            uint64_t m, uint64_t a, uint64_t n)
{
	uint64_t k;
	fx_err err;

	if (n <= 1)
		return FX_OK;
	k = split_point(n);
	if (m < k) {
		if ((err = inclusion_rec(p, get, ctx, m, a, k)) != FX_OK)
			return err;
		return push_range(p, get, ctx, a + k, n - k);
	}
	if ((err = inclusion_rec(p, get, ctx, m - k, a + k, n - k)) != FX_OK)
		return err;
	return push_range(p, get, ctx, a, k);
}

fx_err fx_merkle_inclusion_proof(fx_merkle_get_fn get, void *ctx,
                                 uint64_t index, uint64_t size,
                                 uint8_t path[][FX_HASH_LEN], size_t *path_len,
                                 fx_diag *diag)
{
	proof_buf p = {path, 0};
	fx_err err;

	if (index >= size)
		return fx_diag_set(diag, FX_EINVAL,
		                   "merkle: leaf %llu is not in a tree of %llu",
		                   (unsigned long long)index,
		                   (unsigned long long)size);
	err = inclusion_rec(&p, get, ctx, index, 0, size);
	if (err != FX_OK)
		return fx_diag_set(
		    diag, err,
		    "merkle: cannot build inclusion proof of %llu "
		    "in %llu",
		    (unsigned long long)index, (unsigned long long)size);
	*path_len = p.len;
	return FX_OK;
}

/* SUBPROOF(m, D[a:a+n], b) of RFC 9162 §2.1.4.1. */
static fx_err consistency_rec(proof_buf *p, fx_merkle_get_fn get, void *ctx,
                              uint64_t m, uint64_t a, uint64_t n, int b)
{
	uint64_t k;
	fx_err err;

	if (m == n)
		return b ? FX_OK : push_range(p, get, ctx, a, n);
	k = split_point(n);
	if (m <= k) {
		if ((err = consistency_rec(p, get, ctx, m, a, k, b)) != FX_OK)
			return err;
		return push_range(p, get, ctx, a + k, n - k);
	}
	if ((err = consistency_rec(p, get, ctx, m - k, a + k, n - k, 0)) !=
	    FX_OK)
		return err;
	return push_range(p, get, ctx, a, k);
}

fx_err fx_merkle_consistency_proof(fx_merkle_get_fn get, void *ctx, uint64_t m,
                                   uint64_t n, uint8_t path[][FX_HASH_LEN],
                                   size_t *path_len, fx_diag *diag)
{
	proof_buf p = {path, 0};
	fx_err err;

	if (m == 0 || m > n)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "merkle: no consistency proof from size %llu "
		    "to %llu",
		    (unsigned long long)m, (unsigned long long)n);
	err = consistency_rec(&p, get, ctx, m, 0, n, 1);
	if (err != FX_OK)
		return fx_diag_set(
		    diag, err,
		    "merkle: cannot build consistency proof %llu "
		    "-> %llu",
		    (unsigned long long)m, (unsigned long long)n);
	*path_len = p.len;
	return FX_OK;
}

fx_err fx_merkle_verify_inclusion(uint64_t index, uint64_t size,
                                  const uint8_t leaf[FX_HASH_LEN],
                                  const uint8_t path[][FX_HASH_LEN],
                                  size_t path_len,
                                  const uint8_t root[FX_HASH_LEN],
                                  fx_diag *diag)
{
	uint8_t r[FX_HASH_LEN];
	uint64_t fn, sn;

	if (index >= size)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "inclusion proof: index %llu >= tree size %llu",
		    (unsigned long long)index, (unsigned long long)size);
	if (path_len > FX_MERKLE_MAX_PATH)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "inclusion proof: %zu hashes > %d", path_len,
		                   FX_MERKLE_MAX_PATH);
	fn = index;
	sn = size - 1;
	memcpy(r, leaf, FX_HASH_LEN);
	for (size_t i = 0; i < path_len; i++) {
		if (sn == 0)
			return fx_diag_set(
			    diag, FX_EMISMATCH,
			    "inclusion proof: too long (%zu hashes "
			    "for index %llu of %llu)",
			    path_len, (unsigned long long)index,
			    (unsigned long long)size);
		if ((fn & 1) || fn == sn) {
			fx_merkle_node_hash(path[i], r, r);
			/* Skip levels where this node has no right sibling. */
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			fx_merkle_node_hash(r, path[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "inclusion proof: too short (%zu hashes for "
		                   "index %llu of %llu)",
		                   path_len, (unsigned long long)index,
		                   (unsigned long long)size);
	if (sodium_memcmp(r, root, FX_HASH_LEN) != 0)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "inclusion proof: computed root differs from "
		    "the tree head of size %llu",
		    (unsigned long long)size);
	return FX_OK;
}

fx_err fx_merkle_verify_consistency(uint64_t m, uint64_t n,
                                    const uint8_t old_root[FX_HASH_LEN],
                                    const uint8_t new_root[FX_HASH_LEN],
                                    const uint8_t path[][FX_HASH_LEN],
                                    size_t path_len, fx_diag *diag)
{
	uint8_t fr[FX_HASH_LEN], sr[FX_HASH_LEN];
	const uint8_t *c;
	uint64_t fn, sn;
	size_t i;

	if (m > n)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "consistency proof: old size %llu > new size "
		    "%llu",
		    (unsigned long long)m, (unsigned long long)n);
	if (m == 0 || m == n) {
		if (path_len != 0)
			return fx_diag_set(diag, FX_EMISMATCH,
			                   "consistency proof: must be empty "
			                   "from size %llu to %llu",
			                   (unsigned long long)m,
			                   (unsigned long long)n);
		if (m == n &&
		    sodium_memcmp(old_root, new_root, FX_HASH_LEN) != 0)
			return fx_diag_set(diag, FX_EMISMATCH,
			                   "consistency proof: two different "
			                   "roots for size %llu",
			                   (unsigned long long)m);
		return FX_OK;
	}
	if (path_len == 0 || path_len > FX_MERKLE_MAX_PATH)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "consistency proof: %zu hashes from %llu to "
		                   "%llu",
		                   path_len, (unsigned long long)m,
		                   (unsigned long long)n);
	/* If m is a power of two the old root is itself the first node of
	 * the path (the RFC prepends it); otherwise the path starts with it. */
	i = 0;
	if ((m & (m - 1)) == 0) {
		c = old_root;
	} else {
		c = path[0];
		i = 1;
	}
	fn = m - 1;
	sn = n - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	memcpy(fr, c, FX_HASH_LEN);
	memcpy(sr, c, FX_HASH_LEN);
	for (; i < path_len; i++) {
		if (sn == 0)
			return fx_diag_set(diag, FX_EMISMATCH,
			                   "consistency proof: too long (%zu "
			                   "hashes from %llu to %llu)",
			                   path_len, (unsigned long long)m,
			                   (unsigned long long)n);
		if ((fn & 1) || fn == sn) {
			fx_merkle_node_hash(path[i], fr, fr);
			fx_merkle_node_hash(path[i], sr, sr);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			fx_merkle_node_hash(sr, path[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return fx_diag_set(diag, FX_EMISMATCH,
		                   "consistency proof: too short (%zu hashes "
		                   "from %llu to %llu)",
		                   path_len, (unsigned long long)m,
		                   (unsigned long long)n);
	if (sodium_memcmp(fr, old_root, FX_HASH_LEN) != 0)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "consistency proof: does not lead to the old "
		    "root of size %llu",
		    (unsigned long long)m);
	if (sodium_memcmp(sr, new_root, FX_HASH_LEN) != 0)
		return fx_diag_set(
		    diag, FX_EMISMATCH,
		    "consistency proof: does not lead to the new "
		    "root of size %llu",
		    (unsigned long long)n);
	return FX_OK;
}

void fx_merkle_mem_init(fx_merkle_mem *m)
{
	memset(m, 0, sizeof(*m));
}

void fx_merkle_mem_release(fx_merkle_mem *m)
{
	for (unsigned l = 0; l < FX_MERKLE_MAX_LEVELS; l++)
		free(m->level[l]);
	fx_merkle_mem_init(m);
}

static fx_err mem_put(void *ctx, unsigned level, uint64_t index,
                      const uint8_t hash[FX_HASH_LEN])
{
	fx_merkle_mem *m = ctx;

	if (index >= m->cap[level]) {
		uint64_t cap = m->cap[level] ? m->cap[level] * 2 : 16;
		void *p;
		while (cap <= index)
			cap *= 2;
		if (cap > SIZE_MAX / FX_HASH_LEN)
			return FX_ENOMEM;
		p = realloc(m->level[level], (size_t)cap * FX_HASH_LEN);
		if (p == NULL)
			return FX_ENOMEM;
		m->level[level] = p;
		m->cap[level] = cap;
	}
	memcpy(m->level[level][index], hash, FX_HASH_LEN);
	return FX_OK;
}

fx_err fx_merkle_mem_append(fx_merkle_mem *m, const uint8_t leaf[FX_HASH_LEN])
{
	return fx_merkle_frontier_append(&m->frontier, leaf, mem_put, m);
}

fx_err fx_merkle_mem_get(void *ctx, unsigned level, uint64_t index,
                         uint8_t out[FX_HASH_LEN])
{
	const fx_merkle_mem *m = ctx;

	/* Only complete subtrees exist: 2^level leaves from index·2^level. */
	if (level >= FX_MERKLE_MAX_LEVELS ||
	    index >= (m->frontier.size >> level))
		return FX_ENOTFOUND;
	memcpy(out, m->level[level][index], FX_HASH_LEN);
	return FX_OK;
}

void fx_merkle_hex(const uint8_t h[FX_HASH_LEN], char out[2 * FX_HASH_LEN + 1])
{
	sodium_bin2hex(out, 2 * FX_HASH_LEN + 1, h, FX_HASH_LEN);
}

int fx_merkle_from_hex(const char *hex, uint8_t out[FX_HASH_LEN])
{
	uint8_t tmp[FX_HASH_LEN];
	size_t got = 0;
	const char *end = NULL;

	if (strlen(hex) != 2 * FX_HASH_LEN)
		return -1;
	if (sodium_hex2bin(tmp, sizeof(tmp), hex, 2 * FX_HASH_LEN, NULL, &got,
	                   &end) != 0 ||
	    got != FX_HASH_LEN || *end != '\0')
		return -1;
	memcpy(out, tmp, FX_HASH_LEN);
	return 0;
}
