/*
 * hash.h - What the caches' open-addressing tables share: the key mixer and the
 * backward-shift deletion test (pagecache.c, layercache.c, ghost.c).
 */
#ifndef AR_CACHE_HASH_H
#define AR_CACHE_HASH_H

#include <stdbool.h>
#include <stdint.h>

/* splitmix64's finalizer: a bijection with full avalanche. */
static inline uint64_t cache_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* Backward-shift deletion: whether an entry at slot j whose home slot is home
 * must stay put when slot hole empties (its home lies cyclically in (hole, j]),
 * or may move back into the hole. */
static inline bool cache_home_between(uint64_t hole, uint64_t home, uint64_t j)
{
	if (hole <= j)
		return hole < home && home <= j;
	return hole < home || home <= j;
}

#endif
