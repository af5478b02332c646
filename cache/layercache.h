/*
 * layercache.h - One core's partition of layer-file blocks: the page service's
 * implementation of the engine's cache interface (engine/blockcache.h).
 *
 * The layer readers read decompressed value blocks (~32 KiB) and index nodes
 * (512 B..64 KiB, usually 4 KiB) through an ar_blockcache.  The page service
 * keeps one partition per core, allocated and faulted in on the core's NUMA
 * node by lc_create, and touches it only from that core's thread: no locks, not
 * thread-safe.  Nothing is allocated after lc_create but the small view objects;
 * a full partition evicts (S3-FIFO over two byte logs, see cache/README.md) and
 * never grows.
 *
 * Views.  Each store (tenant shard) the core hosts numbers its layer files from
 * 1, so file ids collide across stores.  Each store gets its own view: an
 * ar_blockcache whose keys are (space, file id, offset), space being a number
 * the caller picks for the store.  All views of a partition share its memory and
 * its eviction policy.  Two live views never share a space (-EEXIST).  Destroying
 * a view forgets its entries at once, so no later view, even one given the same
 * space again, can find them.
 *
 * Pointer lifetime.  A view's get returns a pointer into the partition.  It is
 * valid until the next put, clear, drop_file or destroy on ANY view of the same
 * partition (a put may evict or move any entry), and must not be passed to put.
 * Gets do not move anything: several gets in a row keep all their pointers valid.
 */
#ifndef AR_CACHE_LAYERCACHE_H
#define AR_CACHE_LAYERCACHE_H

#include <stdint.h>

#include "engine/blockcache.h"

#define LC_CAPACITY_BYTES_MIN (256ull * 1024)
#define LC_CAPACITY_BYTES_MAX (1ull << 40)
/* No entry's data is larger, whatever the capacity: it keeps an entry's size in
 * 32 bits.  It is above the engine's largest raw value block
 * (LYR_BLOCK_RAW_BYTES_MAX, 8 MiB + 64 KiB). */
#define LC_ENTRY_BYTES_MAX (16u * 1024 * 1024)

/* One partition: one core. */
struct ar_layercache;

/* Counters of the whole partition, all views together.  They add up:
 * entries = inserts - evictions - removals, and hits + misses = gets. */
struct lc_stats {
	uint64_t hits;            /* gets answered */
	uint64_t misses;          /* gets not answered */
	uint64_t inserts;         /* puts that cached an entry */
	uint64_t evictions;       /* entries evicted by the policy to make room */
	uint64_t ghost_hits;      /* inserts admitted straight to M by the ghost queue */
	uint64_t promotions;      /* entries moved from S to M */
	uint64_t reinserts;       /* M entries given another round (frequency - 1) */
	uint64_t entries;         /* entries now */
	uint64_t bytes;           /* their data bytes (headers and padding excluded) */
	uint64_t capacity_bytes;  /* the two logs: headers, data and padding */
	uint64_t too_large;       /* puts not cached: the entry is too large */
	uint64_t removals;        /* entries forgotten by a replacing put, clear,
				   * drop_file or a view's destroy */
	uint64_t entry_bytes_max; /* the largest data length cached */
};

/*
 * lc_create() -- Allocate a partition of capacity_bytes (the two logs; the hash
 * table and ghost queue add about 4%) bound to NUMA node `node` (node < 0:
 * unbound) and fault it in.  Entries larger than a quarter of the small log,
 * about capacity / 40 (and LC_ENTRY_BYTES_MAX), are not cached: 80 KiB value
 * blocks need a capacity of at least 3.2 MB.  -EINVAL below
 * LC_CAPACITY_BYTES_MIN or above LC_CAPACITY_BYTES_MAX, -ENOMEM.
 */
__attribute__((warn_unused_result)) int lc_create(uint64_t capacity_bytes, int node,
						  struct ar_layercache **out);
/* lc_destroy() -- Free the partition; every view must have been destroyed. */
void lc_destroy(struct ar_layercache *lc);

/*
 * lc_view_create() -- A view of lc for one store, its keys in `space`.  The
 * view's ops: get (a hit raises the entry's frequency; see "Pointer lifetime"),
 * put (copy in, replacing the key's entry; returns 0 and caches nothing when the
 * entry is too large, after forgetting the key's older entry), clear and
 * drop_file (this view's space only; O(entries)), stats_read and destroy (which
 * forgets the view's entries; O(entries)).  stats_read reports the view's own
 * hits and misses, and the partition's evictions and bytes (memory and eviction
 * are shared by all views).  -EEXIST if a live view has `space`, -ENOMEM.
 */
__attribute__((warn_unused_result)) int lc_view_create(struct ar_layercache *lc, uint32_t space,
						       struct ar_blockcache **view_out);

void lc_stats_read(const struct ar_layercache *lc, struct lc_stats *out);

/* lc_check() -- Verify every invariant of layercache.c (O(entries + table));
 * 0 if they hold, -1 if not.  For tests and debugging. */
int lc_check(const struct ar_layercache *lc);

#endif
