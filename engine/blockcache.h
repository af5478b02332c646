/*
 * blockcache.h - The engine's cache interface: the layer readers read layer-file
 * bytes (decompressed value blocks, index nodes) through it, by (file id, offset).
 *
 * An interface with two implementations:
 *  - the LRU here (ar_blockcache_create), bounded in bytes, for tools, tests and
 *    the ingest threads' stores;
 *  - the page service's per-core partition (cache/layercache.h), preallocated
 *    on the core's NUMA node, of which each store the core hosts gets a view.
 * An instance is used by one thread; none is thread-safe.
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

struct ar_blockcache_ops {
	const uint8_t *(*get)(struct ar_blockcache *cache, uint64_t file_id, uint64_t offset,
			      uint32_t *len_out);
	int (*put)(struct ar_blockcache *cache, uint64_t file_id, uint64_t offset,
		   const uint8_t *data, uint32_t len);
	void (*clear)(struct ar_blockcache *cache);
	void (*drop_file)(struct ar_blockcache *cache, uint64_t file_id);
	void (*stats_read)(const struct ar_blockcache *cache, struct ar_blockcache_stats *out);
	void (*destroy)(struct ar_blockcache *cache);
};

/* Every implementation's object begins with this. */
struct ar_blockcache {
	const struct ar_blockcache_ops *ops;
};

/* The LRU implementation: entries malloc'd as they come, capacity_bytes at most. */
__attribute__((warn_unused_result)) int ar_blockcache_create(uint64_t capacity_bytes,
							     struct ar_blockcache **cache_out);

static inline void ar_blockcache_destroy(struct ar_blockcache *cache)
{
	if (cache)
		cache->ops->destroy(cache);
}
/* The cached bytes, or NULL.  Valid until the next put, drop or clear on this
 * cache (or, for a view, on any view of the same partition). */
static inline const uint8_t *ar_blockcache_get(struct ar_blockcache *cache, uint64_t file_id,
					       uint64_t offset, uint32_t *len_out)
{
	return cache->ops->get(cache, file_id, offset, len_out);
}
/* Copy len bytes in, evicting as the implementation's policy says; -ENOMEM on
 * failure.  An entry larger than the implementation takes is not cached (0). */
__attribute__((warn_unused_result)) static inline int ar_blockcache_put(struct ar_blockcache *cache,
									uint64_t file_id,
									uint64_t offset,
									const uint8_t *data,
									uint32_t len)
{
	return cache->ops->put(cache, file_id, offset, data, len);
}
/* Forget everything (benchmarks measuring cold reads). */
static inline void ar_blockcache_clear(struct ar_blockcache *cache)
{
	cache->ops->clear(cache);
}
/* Forget every entry of a file (it was deleted or replaced). */
static inline void ar_blockcache_drop_file(struct ar_blockcache *cache, uint64_t file_id)
{
	cache->ops->drop_file(cache, file_id);
}
static inline void ar_blockcache_stats_read(const struct ar_blockcache *cache,
					    struct ar_blockcache_stats *out)
{
	cache->ops->stats_read(cache, out);
}

#endif
