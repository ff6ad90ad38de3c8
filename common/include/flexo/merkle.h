/* The RFC 9162 §2.1 Merkle tree with SHA-256 (leaf H(0x00‖d), node
 * H(0x01‖l‖r)): the append frontier, inclusion and consistency proofs
 * (generation over any store of perfect-subtree roots, and verification by
 * the RFC's algorithms), and an in-memory node store. */
#ifndef FLEXO_MERKLE_H
#define FLEXO_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "flexo/err.h"

#define FX_HASH_LEN 32
/* A tree of 2^63 leaves has at most 63 proof hashes; one more for the
 * consistency proof's implicit first hash. */
#define FX_MERKLE_MAX_PATH   64
#define FX_MERKLE_MAX_LEVELS 64

/* Leaf hash H(0x00 ‖ data). */
void fx_merkle_leaf_hash(const uint8_t *data, size_t len,
                         uint8_t out[FX_HASH_LEN]);
/* Interior node hash H(0x01 ‖ left ‖ right). out may alias left or right. */
void fx_merkle_node_hash(const uint8_t left[FX_HASH_LEN],
                         const uint8_t right[FX_HASH_LEN],
                         uint8_t out[FX_HASH_LEN]);
/* Root of the empty tree, SHA-256 of the empty string. */
void fx_merkle_empty_root(uint8_t out[FX_HASH_LEN]);

/* The right edge of a tree: for every set bit l of `size`, node[l] is the
 * root of the perfect subtree of 2^l leaves that the binary decomposition of
 * `size` puts there. 64 × 32 bytes: enough to append and to compute the root
 * without looking at any other node. Plain value, no resources. */
typedef struct fx_merkle_frontier {
	uint64_t size;
	uint8_t node[FX_MERKLE_MAX_LEVELS][FX_HASH_LEN];
} fx_merkle_frontier;

/* Called for every perfect-subtree root an append completes: the leaf itself
 * (level 0) and each parent it closes. `index` counts subtrees of that level
 * from the left. Return non-zero FX_* to stop the append. */
typedef fx_err (*fx_merkle_emit_fn)(void *ctx, unsigned level, uint64_t index,
                                    const uint8_t hash[FX_HASH_LEN]);

void fx_merkle_frontier_init(fx_merkle_frontier *f);
/* Appends a leaf hash; O(log n) hashes at worst, 1 amortised. emit may be
 * NULL. On an emit error the frontier is left unchanged. */
fx_err fx_merkle_frontier_append(fx_merkle_frontier *f,
                                 const uint8_t leaf[FX_HASH_LEN],
                                 fx_merkle_emit_fn emit, void *ctx);
/* Root of the tree of f->size leaves (the empty root for size 0). */
void fx_merkle_frontier_root(const fx_merkle_frontier *f,
                             uint8_t out[FX_HASH_LEN]);

/* A source of perfect-subtree roots for proof generation: the root of leaves
 * [index·2^level, (index+1)·2^level). Must succeed for every subtree that
 * is complete in the tree the proof is asked of. */
typedef fx_err (*fx_merkle_get_fn)(void *ctx, unsigned level, uint64_t index,
                                   uint8_t out[FX_HASH_LEN]);

/* Root of the tree of the first `size` leaves, O(log size) lookups. */
fx_err fx_merkle_root_at(fx_merkle_get_fn get, void *ctx, uint64_t size,
                         uint8_t out[FX_HASH_LEN], fx_diag *diag);

/* Inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162
 * §2.1.3.1): writes *path_len hashes into path. */
fx_err fx_merkle_inclusion_proof(fx_merkle_get_fn get, void *ctx,
                                 uint64_t index, uint64_t size,
                                 uint8_t path[][FX_HASH_LEN], size_t *path_len,
                                 fx_diag *diag);

/* Consistency proof from the tree of m leaves to the tree of n leaves
 * (RFC 9162 §2.1.4.1), 0 < m <= n. Empty when m == n. */
fx_err fx_merkle_consistency_proof(fx_merkle_get_fn get, void *ctx, uint64_t m,
                                   uint64_t n, uint8_t path[][FX_HASH_LEN],
                                   size_t *path_len, fx_diag *diag);

/* RFC 9162 §2.1.3.2. FX_OK if `leaf` is at `index` in the tree of `size`
 * leaves with root `root`; FX_EMISMATCH (diag says why) otherwise. */
__attribute__((warn_unused_result)) fx_err
fx_merkle_verify_inclusion(uint64_t index, uint64_t size,
                           const uint8_t leaf[FX_HASH_LEN],
                           const uint8_t path[][FX_HASH_LEN], size_t path_len,
                           const uint8_t root[FX_HASH_LEN], fx_diag *diag);

/* RFC 9162 §2.1.4.2. FX_OK if the tree of m leaves with root `old_root` is a
 * prefix of the tree of n leaves with root `new_root`. m == n requires an
 * empty path and equal roots; m == 0 is consistent with anything (empty
 * path). FX_EMISMATCH otherwise. */
__attribute__((warn_unused_result)) fx_err fx_merkle_verify_consistency(
    uint64_t m, uint64_t n, const uint8_t old_root[FX_HASH_LEN],
    const uint8_t new_root[FX_HASH_LEN], const uint8_t path[][FX_HASH_LEN],
    size_t path_len, fx_diag *diag);

/* In-memory node store: every perfect-subtree root, level by level. Used by
 * tests and by tools that rebuild a tree from a log. */
typedef struct fx_merkle_mem {
	fx_merkle_frontier frontier;
	uint8_t (*level[FX_MERKLE_MAX_LEVELS])[FX_HASH_LEN];
	uint64_t cap[FX_MERKLE_MAX_LEVELS]; /* allocated nodes per level */
} fx_merkle_mem;

void fx_merkle_mem_init(fx_merkle_mem *m);
void fx_merkle_mem_release(fx_merkle_mem *m);
fx_err fx_merkle_mem_append(fx_merkle_mem *m, const uint8_t leaf[FX_HASH_LEN]);
/* An fx_merkle_get_fn over an fx_merkle_mem (ctx = the fx_merkle_mem *). */
fx_err fx_merkle_mem_get(void *ctx, unsigned level, uint64_t index,
                         uint8_t out[FX_HASH_LEN]);

/* Lower-case hex of a hash into out (65 bytes with the terminator). */
void fx_merkle_hex(const uint8_t h[FX_HASH_LEN], char out[2 * FX_HASH_LEN + 1]);
/* Parses 64 hex digits; -1 on anything else. */
int fx_merkle_from_hex(const char *hex, uint8_t out[FX_HASH_LEN]);

#endif
