/* A small deterministic PRNG (xoshiro256** seeded by splitmix64): the same
 * seed gives the same stream everywhere. Plain value type, caller-owned. */
#ifndef FLEXO_RNG_H
#define FLEXO_RNG_H

#include <stdint.h>

typedef struct fx_rng {
	uint64_t s[4];
} fx_rng;

void fx_rng_seed(fx_rng *r, uint64_t seed);
uint64_t fx_rng_next(fx_rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t fx_rng_below(fx_rng *r, uint64_t n);

#endif
