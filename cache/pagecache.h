/*
 * pagecache.h - One core's partition of the page cache: materialized 8 KiB
 * pages by (space, key), each valid for a range of read LSNs.
 *
 * The page service keeps one partition per core, on that core's NUMA node, and
 * touches it only from that core's thread: a partition has no locks and is not
 * thread-safe.  Everything is allocated by pc_create; a full partition evicts
 * (S3-FIFO, see cache/README.md) and never grows.
 *
 * The validity rule.  An entry holds the page of one key as read at LSN X
 * ("known_lsn") whose newest version, the newest value <= X of the key, is at
 * LSN M ("mod_lsn").  It answers a read at Y iff M <= Y <= X.
 *
 * Why that is sound.  Versions of a page are immutable once ingested: a value
 * at LSN L never changes after the timeline's last_record_lsn passed L.  Ingest
 * appends only above last_record_lsn; compaction and image layers preserve the
 * answer of every read; GC only removes what reads below the GC cutoff would
 * need, and those reads are refused before the cache is asked.  A page read at
 * X is only cached after it was materialized, so X <= last_record_lsn then and
 * the key's set of values <= X is final.  No value of the key lies in (M, X]
 * (M is the newest <= X).  For every Y in [M, X] the set of values <= Y is
 * therefore the set of values <= X, and the page, a function of that set, is
 * the same.  For Y < M the set lacks the value at M, so the page may differ;
 * for Y > X a newer version <= Y may exist (ingested after the read).  Neither
 * is answered.  Hence a page cached at X never answers Y if a newer version
 * <= Y exists.  A space id names one (tenant shard, timeline) and is not reused
 * for another timeline while the partition lives, so keys of different
 * timelines never meet; pc_drop_space forgets a closed or deleted timeline.
 */
#ifndef AR_CACHE_PAGECACHE_H
#define AR_CACHE_PAGECACHE_H

#include <stdbool.h>
#include <stdint.h>

#define PC_PAGE_BYTES 8192
#define PC_KEY_BYTES 18
/* Page slots of one partition.  The upper bound keeps entry indices and the
 * hash table's size within 32 bits (2 TiB of pages per core). */
#define PC_ENTRIES_MIN 16u
#define PC_ENTRIES_MAX (1u << 28)

typedef uint64_t pc_lsn;

/* One partition: one core. */
struct ar_pagecache;

struct pc_stats {
	uint64_t hits;       /* lookups answered */
	uint64_t misses;     /* lookups not answered (no entry, or its range misses) */
	uint64_t inserts;    /* pc_insert calls */
	uint64_t evictions;  /* entries evicted to make room (drops not counted) */
	uint64_t ghost_hits; /* new entries admitted straight to M by the ghost queue */
	uint64_t promotions; /* entries moved from S to M */
	uint64_t entries;    /* entries now */
	uint64_t capacity_entries;
	uint64_t bytes; /* page bytes now held: entries * PC_PAGE_BYTES */
};

/* The key of one page: space is a small id the caller gives each (tenant shard,
 * timeline) it hosts, key the engine's 18-byte encoded key (ar_key_encode). */
struct pc_key {
	uint32_t space;
	uint8_t key[PC_KEY_BYTES];
};

/*
 * pc_create() -- Allocate a partition of capacity_bytes / PC_PAGE_BYTES page
 * slots, bound to NUMA node `node` (node < 0: unbound).  Entries, page slots, the
 * hash table and the ghost table are all allocated here; nothing is allocated
 * later.  -EINVAL below PC_ENTRIES_MIN or above PC_ENTRIES_MAX slots, -ENOMEM.
 */
__attribute__((warn_unused_result)) int pc_create(uint64_t capacity_bytes, int node,
						  struct ar_pagecache **out);
void pc_destroy(struct ar_pagecache *pc);

/*
 * pc_lookup() -- Copy the page of k as of lsn into out and return true if the
 * cached range answers lsn (mod_lsn <= lsn <= known_lsn); false otherwise.  Any
 * entry found for k is marked accessed (its S3-FIFO frequency, saturating at 3),
 * even when its range misses: the key is in use and its newer page will follow.
 */
bool pc_lookup(struct ar_pagecache *pc, const struct pc_key *k, pc_lsn lsn,
	       uint8_t out[PC_PAGE_BYTES]);

/* pc_probe() -- Whether pc_lookup would answer, without copying, counting or
 * marking anything (the page service asks it to leave hits out of a batched
 * engine read). */
bool pc_probe(const struct ar_pagecache *pc, const struct pc_key *k, pc_lsn lsn);

/*
 * pc_insert() -- Cache page, read at known_lsn, whose newest version is at
 * mod_lsn (mod_lsn <= known_lsn).  One entry per key: an existing entry is
 * widened when mod_lsn is equal (known_lsn becomes the larger one), replaced
 * when the new range is newer (known_lsn greater), and kept otherwise.  Evicts
 * per S3-FIFO when full; never fails.
 */
void pc_insert(struct ar_pagecache *pc, const struct pc_key *k, pc_lsn mod_lsn, pc_lsn known_lsn,
	       const uint8_t page[PC_PAGE_BYTES]);

/* pc_drop_space() -- Forget every entry of a space (timeline closed or deleted).
 * O(entries). */
void pc_drop_space(struct ar_pagecache *pc, uint32_t space);
/* pc_clear() -- Forget every entry and the ghost queue; counters stay. */
void pc_clear(struct ar_pagecache *pc);
void pc_stats_read(const struct ar_pagecache *pc, struct pc_stats *out);

/* pc_check() -- Verify every structural invariant of pagecache.c (O(entries));
 * 0 if they hold, -1 if not.  For tests and debugging. */
int pc_check(const struct ar_pagecache *pc);

#endif
