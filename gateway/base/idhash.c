/* idhash: a fast unkeyed hash of short ids for in-process tables; see idhash.h. */
#include "gateway/base/idhash.h"

#include <string.h>

/* Odd 64-bit multipliers with well-spread bits (those of the MurmurHash3 and splitmix64
 * finalizers): each step multiplies the state after the next word is folded in. */
#define IDHASH_K1 0xff51afd7ed558ccdull
#define IDHASH_K2 0xc4ceb9fe1a85ec53ull
#define IDHASH_K3 0x9e3779b97f4a7c15ull

static uint64_t idhash_step(uint64_t h, uint64_t w)
{
	h = (h ^ w) * IDHASH_K1;
	return h ^ (h >> 32);
}

uint32_t gw_idhash(uint64_t seed, const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = (seed ^ IDHASH_K3) + (uint64_t)n * IDHASH_K2;	/* the length in: "a" and "a\0" differ */
	uint64_t w = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		h = idhash_step(h, w);
	}
	if (i < n) {
		/* The last 1..7 bytes: with 8 or more in all, the last eight (overlapping the step
		 * before, which the length already tells apart); else byte by byte. */
		if (n >= 8) {
			memcpy(&w, s + n - 8, 8);
		} else {
			w = 0;
			for (size_t k = 0; k < n; k++)
				w |= (uint64_t)s[k] << (8 * k);
		}
		h = idhash_step(h, w);
	}
	h ^= h >> 29;
	h *= IDHASH_K2;
	h ^= h >> 32;
	return (uint32_t)h;
}
