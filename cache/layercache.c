/*
 * layercache.c - A layer-block cache partition: two byte logs, S3-FIFO eviction.
 *
 * Layout.  One NUMA-bound mapping holds, in order: the partition header, the
 * hash table, the ghost's ring and set (ghost_mem_bytes) and the two logs, S (10%
 * of the bytes) then M (90%).  Nothing is allocated after lc_create but view objects.
 *
 *   logs        each a circular arena of bytes.  An entry is a 48-byte header
 *               (key, hash, length, frequency, state) followed by its data,
 *               contiguous, its size a multiple of 16 and at least
 *               LC_SLOT_BYTES_MIN.  Appends go at the head, the tail is the
 *               oldest entry.  When an entry does not fit before the arena's
 *               end, the log wraps: `wrap` remembers where the older part ends
 *               (no skip marker is written), and the entry goes at offset 0.
 *               A removed entry (replaced, dropped, cleared) stays in place,
 *               marked dead, until the tail reaches it.
 *   hash table  open addressing, linear probing, at most half full; a slot is
 *               (24 bits of the key hash, entry location in 16-byte units from
 *               the start of S, + 1), 0 = empty.  Deletion shifts the following
 *               run back (no tombstones).  It has 2 slots per LC_SLOT_BYTES_MIN
 *               of log, so it can never fill: no entry is smaller than that.
 *   ghost G     (fingerprint, size) of entries evicted from S, holding at most
 *               M's bytes worth of them in one ring slot per 4 KiB of M
 *               (cache/ghost.h: a FIFO ring plus a set for O(1) membership).
 *
 * Why logs.  Entries vary from 512 B to tens of KiB.  Size classes (slabs) waste
 * up to a class step per entry and calcify when the mix of sizes changes.
 * S3-FIFO only ever appends at a queue's head and takes from its tail, so a
 * queue can be its own allocator: a log has no fragmentation beyond the 16-byte
 * alignment, one wrap gap, and dead entries waiting for the tail.  The price is a
 * copy when an entry moves (S -> M, or M's reinsertion); each such move follows a
 * hit (it spends one unit of frequency), so the copying is at most one entry per
 * hit, amortized.  A put's reinsertions are capped at LC_REINSERT_BYTES_MAX so
 * that no single put copies a large part of M (past the cap, M's tail is evicted
 * whatever its frequency): a worst case of a few hundred microseconds.
 *
 * Policy (S3-FIFO, Yang et al., SOSP'23, as in pagecache.c but in bytes).  A new
 * key enters S, or M if its fingerprint is in G.  A get that finds the key
 * raises its 2-bit frequency (saturating at 3) and moves nothing.  To make room
 * in S: S's tail moves to M if its frequency is non-zero (frequency reset to 0),
 * else it is evicted and its fingerprint enters G.  To make room in M: M's tail
 * is copied to M's head with frequency - 1 if non-zero, else evicted.  Dead
 * entries reaching a tail are dropped.
 *
 * Invariants (checked by lc_check):
 *   1. A log with no entries has head = tail = 0.  Otherwise its entries tile
 *      [tail, head) or, when wrapped, [tail, wrap) then [0, head) with
 *      head <= tail; used and count are their total size and number.
 *   2. An entry's size is lc_entry_size(len), its data length is at most
 *      entry_bytes_max, its frequency at most LC_FREQ_MAX; its state is live or
 *      dead; a live entry's hash is its key's, and its space is a live view's.
 *   3. An entry is live iff exactly one hash slot refers to it, reachable from
 *      its home slot without crossing an empty slot; no two live entries hold the
 *      same (space, file id, offset).
 *   4. The ghost set points only into the ghost FIFO's window, at ring slots
 *      holding its fingerprints; the FIFO's sizes add up to at most M's bytes
 *      (ghost_check, and its bytes_max is M's bytes).
 *   5. The counters entries and bytes are the number and data bytes of the live
 *      entries; no two live views have the same space.
 *
 * Depends on common/arena.h (ar_numa_alloc), common/assert.h, cache/ghost.h and
 * the interface in engine/blockcache.h.
 */
#include "cache/layercache.h"

#include "cache/ghost.h"
#include "cache/hash.h"
#include "common/arena.h"
#include "common/assert.h"

#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define LC_NIL UINT64_MAX
#define LC_FREQ_MAX 3
#define LC_ALIGN 16
#define LC_HEADER_BYTES 48
/* The smallest footprint of an entry in a log: smaller entries are padded to
 * it, which bounds the number of entries and so the hash table.  Index nodes
 * are at least 512 B (LYR_NODE_BYTES_MIN). */
#define LC_SLOT_BYTES_MIN (512 + LC_HEADER_BYTES)
/* Ghost ring slots: one per 4 KiB of M, the usual index node; a ghost full of
 * smaller entries remembers fewer bytes than M holds. */
#define LC_GHOST_UNIT_BYTES 4096
#define LC_GHOST_SLOTS_MIN 16
#define LC_REINSERT_BYTES_MAX (1u << 20)
#define LC_MAGIC 0x1ce5
#define LC_MAPPING_ALIGN 4096
#define LC_REF_BITS 40
#define LC_REF_MASK ((1ull << LC_REF_BITS) - 1)

enum lc_state { LC_LIVE = 1, LC_DEAD = 2 };

struct lc_entry {
	alignas(LC_ALIGN) uint64_t hash;
	uint64_t file_id;
	uint64_t offset;
	uint32_t space;
	uint32_t len;  /* data bytes, following the header */
	uint32_t size; /* bytes taken in the log: lc_entry_size(len) */
	uint16_t magic;
	uint8_t freq;
	uint8_t state;
};

static_assert(sizeof(struct lc_entry) == LC_HEADER_BYTES, "the header is 48 bytes");
static_assert(LC_SLOT_BYTES_MIN % LC_ALIGN == 0, "entries stay 16-byte aligned");
/* Home slots are (32 bits of hash * slots) >> 32, so a table has <= 2^32 slots. */
static_assert(2 * (LC_CAPACITY_BYTES_MAX / LC_SLOT_BYTES_MIN) <= UINT32_MAX, "table slots");
static_assert(LC_CAPACITY_BYTES_MAX / LC_ALIGN + 1 <= LC_REF_MASK, "locations fit a slot");
static_assert(LC_ENTRY_BYTES_MAX <= UINT32_MAX - 2 * LC_SLOT_BYTES_MIN, "sizes fit 32 bits");

struct lc_log {
	uint8_t *mem;
	uint64_t base_units; /* mem's distance from the start of S, in LC_ALIGN units */
	uint64_t bytes;
	uint64_t head; /* where the next entry goes */
	uint64_t tail; /* the oldest entry */
	uint64_t wrap; /* if wrapped: the end of the older part [tail, wrap) */
	uint64_t used;
	uint64_t count; /* entries, live and dead */
	uint64_t live;
	bool wrapped;
};

struct lc_view {
	struct ar_blockcache base; /* first: the interface */
	struct ar_layercache *lc;
	uint32_t space;
	uint64_t hits;
	uint64_t misses;
	struct lc_view *prev;
	struct lc_view *next;
};

struct ar_layercache {
	/* Read by every get. */
	uint64_t *table;
	uint64_t table_slots;
	uint8_t *logs; /* S, then M */
	/* Eviction state. */
	struct lc_log small;
	struct lc_log main;
	uint64_t entry_bytes_max;
	/* Bytes the current put may still copy to reinsert M's entries. */
	uint64_t reinsert_budget_bytes;
	/* Ghost queue, in the mapping: bytes_max is M's bytes. */
	struct ghost ghost;
	/* Counters, views and the mapping. */
	struct lc_stats stats;
	struct lc_view *views;
	uint64_t view_count;
	size_t mapping_bytes;
};

/* ---- hashing ---- */

/* Never 0: the hash doubles as the ghost fingerprint, and 0 marks an empty
 * ghost slot. */
static uint64_t lc_hash(uint32_t space, uint64_t file_id, uint64_t offset)
{
	uint64_t h = cache_mix64(file_id ^ 0x9e3779b97f4a7c15ull);
	h = cache_mix64(h ^ offset);
	h = cache_mix64(h ^ space);
	return h ? h : 1;
}

/* x32 (32 bits) mapped onto [0, n) by a multiply (Lemire's range reduction):
 * tables need not be powers of two, so they cost what they must, not up to 2x. */
static uint64_t lc_range(uint64_t x32, uint64_t n)
{
	return (x32 * n) >> 32;
}

/* ---- entries and logs ---- */

static uint64_t lc_entry_size(uint64_t len)
{
	uint64_t size = (LC_HEADER_BYTES + len + LC_ALIGN - 1) & ~(uint64_t)(LC_ALIGN - 1);
	return size < LC_SLOT_BYTES_MIN ? LC_SLOT_BYTES_MIN : size;
}

static struct lc_entry *lc_entry_at(const struct ar_layercache *lc, uint64_t unit)
{
	return (struct lc_entry *)(lc->logs + unit * LC_ALIGN);
}

static uint64_t lc_unit_of(const struct ar_layercache *lc, const struct lc_entry *e)
{
	return (uint64_t)((const uint8_t *)e - lc->logs) / LC_ALIGN;
}

static struct lc_log *lc_log_of(struct ar_layercache *lc, const struct lc_entry *e)
{
	return lc_unit_of(lc, e) < lc->main.base_units ? &lc->small : &lc->main;
}

static struct lc_entry *lc_log_entry(const struct lc_log *log, uint64_t off)
{
	return (struct lc_entry *)(log->mem + off);
}

static void lc_log_reset(struct lc_log *log)
{
	log->head = 0;
	log->tail = 0;
	log->wrap = 0;
	log->used = 0;
	log->count = 0;
	log->live = 0;
	log->wrapped = false;
}

/* Where an entry of `size` bytes would go, or LC_NIL if the free space before
 * the tail is too small (invariant 1 says where the free space is). */
static uint64_t lc_log_place(const struct lc_log *log, uint64_t size)
{
	if (log->count == 0)
		return size <= log->bytes ? 0 : LC_NIL;
	if (log->wrapped)
		return log->tail - log->head >= size ? log->head : LC_NIL;
	if (log->bytes - log->head >= size)
		return log->head;
	return log->tail >= size ? 0 : LC_NIL;
}

/* Take the space lc_log_place returned; placing at 0 behind a non-empty log's
 * head wraps it. */
static void lc_log_commit(struct lc_log *log, uint64_t off, uint64_t size)
{
	if (log->count > 0 && !log->wrapped && off != log->head) {
		AR_ASSERT(off == 0);
		log->wrap = log->head;
		log->wrapped = true;
	}
	log->head = off + size;
	log->count++;
	log->used += size;
	AR_ASSERT(log->head <= log->bytes);
	AR_ASSERT(log->used <= log->bytes);
}

/* Drop the tail entry from the log's accounting.  Its bytes stay intact until the
 * next commit, so a caller may still copy them. */
static void lc_log_pop(struct lc_log *log)
{
	AR_ASSERT(log->count > 0);
	uint64_t size = lc_log_entry(log, log->tail)->size;

	log->tail += size;
	log->used -= size;
	log->count--;
	if (log->count == 0) {
		AR_ASSERT(log->live == 0);
		lc_log_reset(log);
	} else if (log->wrapped && log->tail == log->wrap) {
		log->tail = 0;
		log->wrap = 0;
		log->wrapped = false;
	}
}

/* The entry after the one at off, walking from the tail towards the head. */
static uint64_t lc_log_next(const struct lc_log *log, uint64_t off)
{
	off += lc_log_entry(log, off)->size;
	if (log->wrapped && off == log->wrap)
		off = 0;
	return off;
}

/* ---- hash table ---- */

static uint64_t lc_table_home(const struct ar_layercache *lc, uint64_t hash)
{
	return lc_range(hash >> 32, lc->table_slots);
}

static uint64_t lc_slot_tag(uint64_t hash)
{
	return (hash & 0xffffff) << LC_REF_BITS;
}

/* The location (unit) of the live entry of the key, or LC_NIL.  Bounded: the
 * table is at most half full, so an empty slot ends the probe. */
static uint64_t lc_table_find(const struct ar_layercache *lc, uint64_t hash, uint32_t space,
			      uint64_t file_id, uint64_t offset)
{
	uint64_t tag = lc_slot_tag(hash);
	uint64_t i = lc_table_home(lc, hash);

	for (uint64_t probe = 0; probe < lc->table_slots; probe++) {
		uint64_t s = lc->table[i];
		if (s == 0)
			return LC_NIL;
		if ((s & ~LC_REF_MASK) == tag) {
			const struct lc_entry *e = lc_entry_at(lc, (s & LC_REF_MASK) - 1);
			if (e->hash == hash && e->space == space && e->file_id == file_id &&
			    e->offset == offset)
				return (s & LC_REF_MASK) - 1;
		}
		if (++i == lc->table_slots)
			i = 0;
	}
	AR_UNREACHABLE();
}

static void lc_table_insert(struct ar_layercache *lc, uint64_t hash, uint64_t unit)
{
	uint64_t i = lc_table_home(lc, hash);

	for (uint64_t probe = 0; probe < lc->table_slots; probe++) {
		if (lc->table[i] == 0) {
			lc->table[i] = lc_slot_tag(hash) | (unit + 1);
			return;
		}
		if (++i == lc->table_slots)
			i = 0;
	}
	AR_UNREACHABLE();
}

/* The slot referring to the entry at unit (whose key hashes to hash). */
static uint64_t lc_table_slot_of(const struct ar_layercache *lc, uint64_t hash, uint64_t unit)
{
	uint64_t i = lc_table_home(lc, hash);

	for (uint64_t probe = 0; probe < lc->table_slots; probe++) {
		AR_ASSERT(lc->table[i] != 0); /* the entry is in the table */
		if ((lc->table[i] & LC_REF_MASK) == unit + 1)
			return i;
		if (++i == lc->table_slots)
			i = 0;
	}
	AR_UNREACHABLE();
}

/* An entry moved from unit `from` to `to`: its slot follows (same key, same
 * probe position). */
static void lc_table_move(struct ar_layercache *lc, uint64_t hash, uint64_t from, uint64_t to)
{
	uint64_t i = lc_table_slot_of(lc, hash, from);
	lc->table[i] = lc_slot_tag(hash) | (to + 1);
}

static void lc_table_remove(struct ar_layercache *lc, uint64_t hash, uint64_t unit)
{
	uint64_t n = lc->table_slots;
	uint64_t hole = lc_table_slot_of(lc, hash, unit);
	uint64_t j = hole;

	/* Backward shift: pull each later member of the run into the hole unless its
	 * home lies after the hole.  Homes come from the entries' headers, which are
	 * all intact: only live entries have slots. */
	for (uint64_t probe = 0; probe < n; probe++) {
		j = j + 1 == n ? 0 : j + 1;
		if (lc->table[j] == 0)
			break;
		const struct lc_entry *e = lc_entry_at(lc, (lc->table[j] & LC_REF_MASK) - 1);
		if (cache_home_between(hole, lc_table_home(lc, e->hash), j))
			continue;
		lc->table[hole] = lc->table[j];
		hole = j;
	}
	lc->table[hole] = 0;
}

/* ---- eviction ---- */

/* A live entry leaves the table and the counters; its bytes stay in its log,
 * dead, until the log's tail reaches them. */
static void lc_entry_forget(struct ar_layercache *lc, struct lc_entry *e)
{
	struct lc_log *log = lc_log_of(lc, e);

	AR_ASSERT(e->state == LC_LIVE);
	lc_table_remove(lc, e->hash, lc_unit_of(lc, e));
	e->state = LC_DEAD;
	AR_ASSERT(log->live > 0);
	log->live--;
	lc->stats.entries--;
	lc->stats.bytes -= e->len;
}

/* Append a copy of the entry at src (in another log, or popped from this one:
 * the space is there, see lc_room_main) to log; the copy's location. */
static struct lc_entry *lc_log_append_copy(struct lc_log *log, const struct lc_entry *src,
					   uint64_t size)
{
	uint64_t off = lc_log_place(log, size);

	AR_ASSERT(off != LC_NIL);
	lc_log_commit(log, off, size);
	struct lc_entry *dst = lc_log_entry(log, off);
	memmove(dst, src, size); /* a reinsertion may overlap its old place */
	return dst;
}

/* Make room for size bytes in M. */
static void lc_room_main(struct ar_layercache *lc, uint64_t size)
{
	struct lc_log *m = &lc->main;

	/* Bounded: each pass frees an entry or spends a unit of frequency, and
	 * reinsertions stop when the put's budget is spent. */
	while (lc_log_place(m, size) == LC_NIL) {
		struct lc_entry *e = lc_log_entry(m, m->tail);
		uint64_t esize = e->size;
		uint64_t from = lc_unit_of(lc, e);
		if (e->state == LC_LIVE && e->freq > 0 && lc->reinsert_budget_bytes > 0) {
			/* Popping the tail entry frees at least its own size in one
			 * piece (invariant 1), so its copy always fits. */
			m->live--;
			lc_log_pop(m);
			struct lc_entry *n = lc_log_append_copy(m, e, esize);
			m->live++;
			n->freq--;
			lc_table_move(lc, n->hash, from, lc_unit_of(lc, n));
			lc->reinsert_budget_bytes -=
			    esize < lc->reinsert_budget_bytes ? esize : lc->reinsert_budget_bytes;
			lc->stats.reinserts++;
			continue;
		}
		if (e->state == LC_LIVE) {
			lc_entry_forget(lc, e);
			lc->stats.evictions++;
		}
		lc_log_pop(m);
	}
}

/* S's tail entry, hit while in S, moves to M's head with frequency 0. */
static void lc_promote(struct ar_layercache *lc, struct lc_entry *e)
{
	uint64_t from = lc_unit_of(lc, e);

	lc_room_main(lc, e->size); /* touches M only: e stays where it is */
	struct lc_entry *n = lc_log_append_copy(&lc->main, e, e->size);
	n->freq = 0;
	lc_table_move(lc, n->hash, from, lc_unit_of(lc, n));
	e->state = LC_DEAD; /* the copy in S, about to be popped */
	lc->small.live--;
	lc->main.live++;
	lc->stats.promotions++;
}

/* Make room for size bytes in S. */
static void lc_room_small(struct ar_layercache *lc, uint64_t size)
{
	struct lc_log *s = &lc->small;

	/* Bounded: each pass pops one of S's entries. */
	while (lc_log_place(s, size) == LC_NIL) {
		struct lc_entry *e = lc_log_entry(s, s->tail);
		if (e->state == LC_LIVE && e->freq > 0) {
			lc_promote(lc, e);
		} else if (e->state == LC_LIVE) {
			ghost_add(&lc->ghost, e->hash, e->size);
			lc_entry_forget(lc, e);
			lc->stats.evictions++;
		}
		lc_log_pop(s);
	}
}

/* Forget the live entries of space (and of file_id, if one_file) in both logs. */
static void lc_forget_where(struct ar_layercache *lc, uint32_t space, bool one_file,
			    uint64_t file_id)
{
	struct lc_log *logs[2] = { &lc->small, &lc->main };

	for (int l = 0; l < 2; l++) {
		struct lc_log *log = logs[l];
		uint64_t off = log->tail;
		for (uint64_t i = 0; i < log->count; i++) {
			struct lc_entry *e = lc_log_entry(log, off);
			if (e->state == LC_LIVE && e->space == space &&
			    (!one_file || e->file_id == file_id)) {
				lc_entry_forget(lc, e);
				lc->stats.removals++;
			}
			off = lc_log_next(log, off);
		}
		/* Nothing live left: the dead entries need not wait for the tail. */
		if (log->live == 0)
			lc_log_reset(log);
	}
}

/* ---- the view: the ar_blockcache interface ---- */

static const uint8_t *lc_view_get(struct ar_blockcache *cache, uint64_t file_id, uint64_t offset,
				  uint32_t *len_out)
{
	struct lc_view *v = (struct lc_view *)cache;
	struct ar_layercache *lc = v->lc;
	uint64_t unit =
	    lc_table_find(lc, lc_hash(v->space, file_id, offset), v->space, file_id, offset);

	if (unit == LC_NIL) {
		v->misses++;
		lc->stats.misses++;
		return NULL;
	}
	struct lc_entry *e = lc_entry_at(lc, unit);
	if (e->freq < LC_FREQ_MAX)
		e->freq++;
	v->hits++;
	lc->stats.hits++;
	*len_out = e->len;
	return (const uint8_t *)(e + 1);
}

/* True if [data, data + len) overlaps the logs: such bytes may move during the
 * put that copies them. */
static bool lc_overlaps_logs(const struct ar_layercache *lc, const uint8_t *data, uint32_t len)
{
	uintptr_t start = (uintptr_t)lc->logs;
	uintptr_t end = start + lc->small.bytes + lc->main.bytes;

	return (uintptr_t)data < end && (uintptr_t)data + len > start;
}

static int lc_view_put(struct ar_blockcache *cache, uint64_t file_id, uint64_t offset,
		       const uint8_t *data, uint32_t len)
{
	struct lc_view *v = (struct lc_view *)cache;
	struct ar_layercache *lc = v->lc;
	uint64_t hash = lc_hash(v->space, file_id, offset);
	uint64_t unit = lc_table_find(lc, hash, v->space, file_id, offset);

	AR_ASSERT(len == 0 || data != NULL);
	AR_ASSERT(len == 0 || !lc_overlaps_logs(lc, data, len));
	if (unit != LC_NIL) {
		/* Forgotten first, even if the new bytes are not cached: a get must
		 * never return the older version. */
		lc_entry_forget(lc, lc_entry_at(lc, unit));
		lc->stats.removals++;
	}
	if (len > lc->entry_bytes_max) {
		lc->stats.too_large++;
		return 0;
	}
	uint64_t size = lc_entry_size(len);
	lc->reinsert_budget_bytes = LC_REINSERT_BYTES_MAX;
	bool ghost_hit = ghost_take(&lc->ghost, hash);
	struct lc_log *log = ghost_hit ? &lc->main : &lc->small;
	if (ghost_hit)
		lc_room_main(lc, size);
	else
		lc_room_small(lc, size);
	uint64_t off = lc_log_place(log, size);
	AR_ASSERT(off != LC_NIL);
	lc_log_commit(log, off, size);
	struct lc_entry *e = lc_log_entry(log, off);
	*e = (struct lc_entry){ .hash = hash,
				.file_id = file_id,
				.offset = offset,
				.space = v->space,
				.len = len,
				.size = (uint32_t)size,
				.magic = LC_MAGIC,
				.freq = 0,
				.state = LC_LIVE };
	if (len > 0)
		memcpy(e + 1, data, len);
	lc_table_insert(lc, hash, lc_unit_of(lc, e));
	log->live++;
	lc->stats.entries++;
	lc->stats.bytes += len;
	lc->stats.inserts++;
	if (ghost_hit)
		lc->stats.ghost_hits++;
	return 0;
}

static void lc_view_clear(struct ar_blockcache *cache)
{
	struct lc_view *v = (struct lc_view *)cache;
	lc_forget_where(v->lc, v->space, false, 0);
}

static void lc_view_drop_file(struct ar_blockcache *cache, uint64_t file_id)
{
	struct lc_view *v = (struct lc_view *)cache;
	lc_forget_where(v->lc, v->space, true, file_id);
}

/* The view's own hits and misses; the partition's evictions and bytes. */
static void lc_view_stats_read(const struct ar_blockcache *cache, struct ar_blockcache_stats *out)
{
	const struct lc_view *v = (const struct lc_view *)cache;

	out->hits = v->hits;
	out->misses = v->misses;
	out->evictions = v->lc->stats.evictions;
	out->bytes = v->lc->stats.bytes;
}

static void lc_view_destroy(struct ar_blockcache *cache)
{
	struct lc_view *v = (struct lc_view *)cache;
	struct ar_layercache *lc = v->lc;

	lc_forget_where(lc, v->space, false, 0);
	if (v->prev)
		v->prev->next = v->next;
	else
		lc->views = v->next;
	if (v->next)
		v->next->prev = v->prev;
	AR_ASSERT(lc->view_count > 0);
	lc->view_count--;
	free(v);
}

static const struct ar_blockcache_ops lc_view_ops = {
	.get = lc_view_get,
	.put = lc_view_put,
	.clear = lc_view_clear,
	.drop_file = lc_view_drop_file,
	.stats_read = lc_view_stats_read,
	.destroy = lc_view_destroy,
};

int lc_view_create(struct ar_layercache *lc, uint32_t space, struct ar_blockcache **view_out)
{
	for (const struct lc_view *o = lc->views; o; o = o->next) {
		if (o->space == space)
			return -EEXIST;
	}
	struct lc_view *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->base.ops = &lc_view_ops;
	v->lc = lc;
	v->space = space;
	v->next = lc->views;
	if (lc->views)
		lc->views->prev = v;
	lc->views = v;
	lc->view_count++;
	*view_out = &v->base;
	return 0;
}

/* ---- the partition ---- */

/* Byte offsets of each part inside the one mapping. */
struct lc_layout {
	size_t table, ghost, logs, bytes;
	uint64_t small_bytes, main_bytes, table_slots, ghost_slots;
};

static size_t lc_align_up(size_t n, size_t align)
{
	return (n + align - 1) & ~(align - 1);
}

static void lc_layout_of(uint64_t capacity_bytes, struct lc_layout *l)
{
	uint64_t logs_bytes = capacity_bytes & ~(uint64_t)(LC_ALIGN - 1);

	l->small_bytes = (logs_bytes / 10) & ~(uint64_t)(LC_ALIGN - 1);
	l->main_bytes = logs_bytes - l->small_bytes;
	/* Every entry takes at least LC_SLOT_BYTES_MIN of its log. */
	l->table_slots =
	    2 * (l->small_bytes / LC_SLOT_BYTES_MIN + l->main_bytes / LC_SLOT_BYTES_MIN);
	l->ghost_slots = l->main_bytes / LC_GHOST_UNIT_BYTES;
	if (l->ghost_slots < LC_GHOST_SLOTS_MIN)
		l->ghost_slots = LC_GHOST_SLOTS_MIN;
	l->table = lc_align_up(sizeof(struct ar_layercache), 64);
	l->ghost = lc_align_up(l->table + l->table_slots * sizeof(uint64_t), 64);
	l->logs = lc_align_up(l->ghost + ghost_mem_bytes(l->ghost_slots), LC_MAPPING_ALIGN);
	l->bytes = l->logs + logs_bytes;
}

static void lc_log_init(struct lc_log *log, uint8_t *logs, uint64_t start, uint64_t bytes)
{
	lc_log_reset(log);
	log->mem = logs + start;
	log->base_units = start / LC_ALIGN;
	log->bytes = bytes;
}

int lc_create(uint64_t capacity_bytes, int node, struct ar_layercache **out)
{
	struct lc_layout l;

	if (capacity_bytes < LC_CAPACITY_BYTES_MIN || capacity_bytes > LC_CAPACITY_BYTES_MAX)
		return -EINVAL;
	lc_layout_of(capacity_bytes, &l);
	uint8_t *base = ar_numa_alloc(l.bytes, node);
	if (!base)
		return -ENOMEM;
	/* Fault everything in now, on this core's node: the partition is resident
	 * from the start and RSS does not grow as it fills.  Zeroes are also the
	 * empty table (ghost_init writes its own part). */
	memset(base, 0, l.bytes);
	struct ar_layercache *lc = (struct ar_layercache *)base;
	lc->table = (uint64_t *)(base + l.table);
	lc->table_slots = l.table_slots;
	lc->logs = base + l.logs;
	lc_log_init(&lc->small, lc->logs, 0, l.small_bytes);
	lc_log_init(&lc->main, lc->logs, l.small_bytes, l.main_bytes);
	/* An entry must fit S, where new keys go, and S must hold several: a block
	 * read twice in a row (index, then value) should still be there. */
	uint64_t entry_size_max = (l.small_bytes / 4) & ~(uint64_t)(LC_ALIGN - 1);
	lc->entry_bytes_max = entry_size_max - LC_HEADER_BYTES;
	if (lc->entry_bytes_max > LC_ENTRY_BYTES_MAX)
		lc->entry_bytes_max = LC_ENTRY_BYTES_MAX;
	/* G remembers as many bytes of entries evicted from S as M holds. */
	ghost_init(&lc->ghost, base + l.ghost, l.ghost_slots, l.main_bytes);
	lc->stats.capacity_bytes = l.small_bytes + l.main_bytes;
	lc->stats.entry_bytes_max = lc->entry_bytes_max;
	lc->mapping_bytes = l.bytes;
	AR_DEBUG_ASSERT(lc_check(lc) == 0);
	*out = lc;
	return 0;
}

void lc_destroy(struct ar_layercache *lc)
{
	if (!lc)
		return;
	AR_ASSERT(lc->view_count == 0);
	AR_ASSERT(lc->views == NULL);
	size_t bytes = lc->mapping_bytes;
	ar_numa_free(lc, bytes);
}

void lc_stats_read(const struct ar_layercache *lc, struct lc_stats *out)
{
	*out = lc->stats;
}

/* ---- lc_check ---- */

static bool lc_space_has_view(const struct ar_layercache *lc, uint32_t space)
{
	for (const struct lc_view *v = lc->views; v; v = v->next) {
		if (v->space == space)
			return true;
	}
	return false;
}

/* Invariants 2 and 3 for one entry with room bytes before its part's end. */
static int lc_check_entry(const struct ar_layercache *lc, const struct lc_entry *e, uint64_t room)
{
	if (e->magic != LC_MAGIC || e->size > room || e->size != lc_entry_size(e->len))
		return -1;
	if (e->len > lc->entry_bytes_max || e->freq > LC_FREQ_MAX)
		return -1;
	if (e->state == LC_DEAD)
		return 0;
	if (e->state != LC_LIVE || e->hash != lc_hash(e->space, e->file_id, e->offset))
		return -1;
	if (lc_table_find(lc, e->hash, e->space, e->file_id, e->offset) != lc_unit_of(lc, e))
		return -1;
	return lc_space_has_view(lc, e->space) ? 0 : -1;
}

/* Invariant 1 for one log, and invariants 2-3 for its entries; adds its live
 * entries and their data bytes to *live and *bytes. */
static int lc_check_log(const struct ar_layercache *lc, const struct lc_log *log, uint64_t *live,
			uint64_t *bytes)
{
	if (log->count == 0) {
		if (log->head != 0 || log->tail != 0 || log->wrapped)
			return -1;
		return log->used == 0 && log->live == 0 ? 0 : -1;
	}
	if (log->wrapped && !(log->head <= log->tail && log->tail < log->wrap))
		return -1;
	if (log->wrapped ? log->wrap > log->bytes : !(log->tail < log->head))
		return -1;
	if (log->head > log->bytes)
		return -1;
	uint64_t off = log->tail, used = 0, live_count = 0;
	for (uint64_t i = 0; i < log->count; i++) {
		uint64_t end = log->wrapped && off >= log->tail ? log->wrap : log->head;
		if (off % LC_ALIGN != 0 || off >= end)
			return -1;
		const struct lc_entry *e = lc_log_entry(log, off);
		if (lc_check_entry(lc, e, end - off) != 0)
			return -1;
		used += e->size;
		if (e->state == LC_LIVE) {
			live_count++;
			*bytes += e->len;
		}
		off = lc_log_next(log, off);
	}
	if (off != log->head || used != log->used || live_count != log->live)
		return -1;
	*live += live_count;
	return 0;
}

/* Invariant 3 from the table's side: every slot refers to a live entry reachable
 * from its home; as many slots as live entries; at most half full. */
static int lc_check_table(const struct ar_layercache *lc, uint64_t live)
{
	uint64_t used = 0;
	uint64_t units = (lc->small.bytes + lc->main.bytes) / LC_ALIGN;

	for (uint64_t i = 0; i < lc->table_slots; i++) {
		uint64_t s = lc->table[i];
		if (s == 0)
			continue;
		used++;
		if ((s & LC_REF_MASK) == 0 || (s & LC_REF_MASK) > units)
			return -1;
		const struct lc_entry *e = lc_entry_at(lc, (s & LC_REF_MASK) - 1);
		if (e->magic != LC_MAGIC || e->state != LC_LIVE ||
		    lc_slot_tag(e->hash) != (s & ~LC_REF_MASK))
			return -1;
		for (uint64_t j = lc_table_home(lc, e->hash); j != i;
		     j = j + 1 == lc->table_slots ? 0 : j + 1) {
			if (lc->table[j] == 0)
				return -1;
		}
	}
	return used == live && 2 * used <= lc->table_slots ? 0 : -1;
}

/* Invariant 5's views: distinct spaces, counted right. */
static int lc_check_views(const struct ar_layercache *lc)
{
	uint64_t count = 0;

	for (const struct lc_view *v = lc->views; v; v = v->next) {
		if (count++ >= lc->view_count || v->lc != lc)
			return -1;
		for (const struct lc_view *o = v->next; o; o = o->next) {
			if (o->space == v->space)
				return -1;
		}
	}
	return count == lc->view_count ? 0 : -1;
}

int lc_check(const struct ar_layercache *lc)
{
	uint64_t live = 0, bytes = 0;

	if (lc->small.bytes == 0 || lc->main.bytes <= lc->small.bytes)
		return -1;
	if (lc_check_views(lc) != 0 || lc_check_log(lc, &lc->small, &live, &bytes) != 0 ||
	    lc_check_log(lc, &lc->main, &live, &bytes) != 0)
		return -1;
	if (live != lc->stats.entries || bytes != lc->stats.bytes)
		return -1;
	if (lc_check_table(lc, live) != 0)
		return -1;
	/* Invariant 4. */
	if (ghost_check(&lc->ghost) != 0 || lc->ghost.bytes_max != lc->main.bytes)
		return -1;
	return 0;
}
