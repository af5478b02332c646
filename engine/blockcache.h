/*
 * blockcache.h - The page-cache interface the layer readers read through: bytes
 * of layer files (decompressed value blocks, index nodes) by (file id, offset).
 *
 * The simple implementation here is an LRU bounded in bytes; the per-core NUMA
 * cache of the page service will implement the same calls.  One cache per core;
 * not thread-safe.
 */
#ifndef AR_ENGINE_BLOCKCACHE_H
#define AR_ENGINE_BLOCKCACHE_H

#include <stdint.h>

struct ar_blockcache;

struct ar_blockcache_stats {
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t bytes;
};

__attribute__((warn_unused_result)) int ar_blockcache_create(uint64_t capacity_bytes,
							     struct ar_blockcache **cache_out);
void ar_blockcache_destroy(struct ar_blockcache *cache);
/* The cached bytes, or NULL.  Valid until the next put or drop on this cache. */
const uint8_t *ar_blockcache_get(struct ar_blockcache *cache, uint64_t file_id, uint64_t offset,
				 uint32_t *len_out);
/* Copy len bytes in, evicting least recently used entries; -ENOMEM on failure.
 * An entry larger than the capacity is not cached (returns 0). */
__attribute__((warn_unused_result)) int ar_blockcache_put(struct ar_blockcache *cache,
							  uint64_t file_id, uint64_t offset,
							  const uint8_t *data, uint32_t len);
/* Forget everything (benchmarks measuring cold reads). */
void ar_blockcache_clear(struct ar_blockcache *cache);
/* Forget every entry of a file (it was deleted or replaced). */
void ar_blockcache_drop_file(struct ar_blockcache *cache, uint64_t file_id);
void ar_blockcache_stats_read(const struct ar_blockcache *cache, struct ar_blockcache_stats *out);

#endif
