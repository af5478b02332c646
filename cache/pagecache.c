/*
 * pagecache.c - A page cache partition: fixed arrays, S3-FIFO eviction.
 *
 * Layout.  One NUMA-bound mapping holds, in order: the partition header, the
 * entry array (one 64-byte line per page slot), the hash table, the ghost's ring
 * and set (ghost_mem_bytes) and the page slots (entry i owns page slot i).
 * Nothing is allocated after pc_create.
 *
 *   hash table  open addressing, linear probing, at most half full; a slot is
 *               (upper 32 bits of the key hash, entry index + 1), 0 = empty.
 *               Deletion shifts the following run back (no tombstones).
 *   S, M        doubly linked FIFO queues of entry indices (head = newest).
 *   free list   singly linked through `next`.
 *   ghost G     the fingerprints (key hashes) of entries evicted from S, as
 *               many as M's share (cache/ghost.h: a FIFO ring plus a set for
 *               O(1) membership).  Every page counts PC_PAGE_BYTES and G may
 *               hold M's share of pages' bytes, so only the slot count binds.
 *
 * Policy (S3-FIFO, Yang et al., SOSP'23).  A new key enters S, or M if its
 * fingerprint is in G.  A lookup that finds the key raises its 2-bit frequency
 * (saturating at 3) and moves nothing.  To free a slot: while S holds at least
 * its share (10%) or M is empty, S's tail moves to M if its frequency is
 * non-zero (frequency reset to 0), else it is evicted and its fingerprint
 * enters G; otherwise M's tail is reinserted at M's head with frequency - 1 if
 * non-zero, else evicted.  Each step either evicts or lowers the total
 * frequency / S's size, so freeing a slot ends.
 *
 * Invariants (checked by pc_check):
 *   1. Every entry is in exactly one of: the free list, S, M; the queue field
 *      says which, and small_count + main_count + free entries = entries_count.
 *   2. An entry is in S or M iff exactly one hash slot refers to it, and that
 *      slot is reachable from the entry's home slot without crossing an empty
 *      slot.  No two entries hold the same (space, key).
 *   3. mod_lsn <= known_lsn and freq <= PC_FREQ_MAX for every cached entry.
 *   4. The ghost holds at most M's share (entries_count - small_target) of
 *      fingerprints, each pointing at a ring slot of its FIFO that holds it
 *      (ghost_check).
 *   5. The hash table is at most half full, so every probe ends at an empty slot.
 *
 * Depends on common/arena.h (ar_numa_alloc), common/assert.h and cache/ghost.h.
 */
#include "cache/pagecache.h"

#include "cache/ghost.h"
#include "cache/hash.h"
#include "common/arena.h"
#include "common/assert.h"

#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#define PC_NIL UINT32_MAX
#define PC_FREQ_MAX 3
#define PC_LINE_BYTES 64
#define PC_MAPPING_ALIGN 4096

enum pc_queue_id { PC_Q_FREE = 0, PC_Q_SMALL = 1, PC_Q_MAIN = 2 };

/* One cache line per page slot; everything a lookup compares sits in it. */
struct pc_entry {
	alignas(PC_LINE_BYTES) uint64_t hash;
	pc_lsn mod_lsn;
	pc_lsn known_lsn;
	uint32_t space;
	uint8_t key[PC_KEY_BYTES];
	uint8_t freq;
	uint8_t queue;
	uint32_t prev; /* towards the head (newer) */
	uint32_t next; /* towards the tail (older); the free list's link */
};

static_assert(sizeof(struct pc_entry) == PC_LINE_BYTES, "an entry is one cache line");

struct pc_slot {
	uint32_t tag; /* upper 32 bits of the key hash */
	uint32_t ref; /* entry index + 1; 0 = empty */
};

struct pc_queue {
	uint32_t head;
	uint32_t tail;
	uint32_t count;
};

struct ar_pagecache {
	/* Read by every lookup. */
	struct pc_slot *table;
	uint64_t table_mask;
	struct pc_entry *entries;
	uint8_t *pages;
	/* Eviction state. */
	struct pc_queue small;
	struct pc_queue main;
	uint32_t free_head;
	uint32_t entries_count; /* page slots */
	uint32_t small_target;  /* S's share */
	/* Ghost queue: M's share of ring slots, in the mapping. */
	struct ghost ghost;
	/* Counters and the mapping. */
	struct pc_stats stats;
	size_t mapping_bytes;
};

/* ---- hashing ---- */

/* The 22 bytes of (space, key) folded word by word; never 0 (0 marks an empty
 * ghost slot, and the key hash doubles as the ghost fingerprint). */
static uint64_t pc_hash(const struct pc_key *k)
{
	uint64_t a, b;
	uint16_t c;

	memcpy(&a, k->key, 8);
	memcpy(&b, k->key + 8, 8);
	memcpy(&c, k->key + 16, 2);
	uint64_t h = cache_mix64(a ^ 0x9e3779b97f4a7c15ull);
	h = cache_mix64(h ^ b);
	h = cache_mix64(h ^ ((uint64_t)k->space << 16 | c));
	return h ? h : 1;
}

static bool pc_entry_matches(const struct pc_entry *e, uint64_t hash, const struct pc_key *k)
{
	return e->hash == hash && e->space == k->space && memcmp(e->key, k->key, PC_KEY_BYTES) == 0;
}

static uint64_t pc_pow2_at_least(uint64_t n)
{
	uint64_t p = 1;
	while (p < n)
		p <<= 1;
	return p;
}

/* ---- hash table ---- */

/* The index of k's entry, or PC_NIL.  Bounded: the table is at most half full
 * (invariant 5), so an empty slot ends the probe. */
static uint32_t pc_table_find(const struct ar_pagecache *pc, const struct pc_key *k, uint64_t hash)
{
	uint32_t tag = (uint32_t)(hash >> 32);
	uint64_t i = hash & pc->table_mask;

	for (uint64_t probe = 0; probe <= pc->table_mask; probe++) {
		struct pc_slot s = pc->table[i];
		if (s.ref == 0)
			return PC_NIL;
		if (s.tag == tag && pc_entry_matches(&pc->entries[s.ref - 1], hash, k))
			return s.ref - 1;
		i = (i + 1) & pc->table_mask;
	}
	AR_UNREACHABLE();
}

static void pc_table_insert(struct ar_pagecache *pc, uint32_t index)
{
	uint64_t hash = pc->entries[index].hash;
	uint64_t i = hash & pc->table_mask;

	for (uint64_t probe = 0; probe <= pc->table_mask; probe++) {
		if (pc->table[i].ref == 0) {
			pc->table[i].tag = (uint32_t)(hash >> 32);
			pc->table[i].ref = index + 1;
			return;
		}
		AR_ASSERT(pc->table[i].ref != index + 1);
		i = (i + 1) & pc->table_mask;
	}
	AR_UNREACHABLE();
}

static void pc_table_remove(struct ar_pagecache *pc, uint32_t index)
{
	uint64_t mask = pc->table_mask;
	uint64_t hole = pc->entries[index].hash & mask;
	uint64_t probe = 0;

	while (pc->table[hole].ref != index + 1) {
		AR_ASSERT(pc->table[hole].ref != 0); /* the entry is in the table */
		AR_ASSERT(probe++ < mask);
		hole = (hole + 1) & mask;
	}
	/* Backward shift: pull each later member of the run into the hole unless
	 * its home lies after the hole. */
	uint64_t j = hole;
	for (probe = 0; probe <= mask; probe++) {
		j = (j + 1) & mask;
		if (pc->table[j].ref == 0)
			break;
		uint64_t home = pc->entries[pc->table[j].ref - 1].hash & mask;
		if (cache_home_between(hole, home, j))
			continue;
		pc->table[hole] = pc->table[j];
		hole = j;
	}
	pc->table[hole].tag = 0;
	pc->table[hole].ref = 0;
}

/* ---- queues ---- */

static struct pc_queue *pc_queue_of(struct ar_pagecache *pc, uint8_t queue)
{
	AR_ASSERT(queue == PC_Q_SMALL || queue == PC_Q_MAIN);
	return queue == PC_Q_SMALL ? &pc->small : &pc->main;
}

static void pc_queue_push_head(struct ar_pagecache *pc, uint8_t queue, uint32_t index)
{
	struct pc_queue *q = pc_queue_of(pc, queue);
	struct pc_entry *e = &pc->entries[index];

	AR_ASSERT(e->queue == PC_Q_FREE);
	e->queue = queue;
	e->prev = PC_NIL;
	e->next = q->head;
	if (q->head != PC_NIL)
		pc->entries[q->head].prev = index;
	else
		q->tail = index;
	q->head = index;
	q->count++;
}

static void pc_queue_unlink(struct ar_pagecache *pc, uint32_t index)
{
	struct pc_entry *e = &pc->entries[index];
	struct pc_queue *q = pc_queue_of(pc, e->queue);

	AR_ASSERT(q->count > 0);
	if (e->prev != PC_NIL)
		pc->entries[e->prev].next = e->next;
	else
		q->head = e->next;
	if (e->next != PC_NIL)
		pc->entries[e->next].prev = e->prev;
	else
		q->tail = e->prev;
	q->count--;
	e->queue = PC_Q_FREE;
	e->prev = PC_NIL;
	e->next = PC_NIL;
}

/* ---- entries ---- */

static uint8_t *pc_page_of(const struct ar_pagecache *pc, uint32_t index)
{
	return pc->pages + (size_t)index * PC_PAGE_BYTES;
}

/* Take an entry out of its queue and the table, onto the free list. */
static void pc_entry_release(struct ar_pagecache *pc, uint32_t index)
{
	pc_table_remove(pc, index);
	pc_queue_unlink(pc, index);
	pc->entries[index].freq = 0;
	pc->entries[index].next = pc->free_head;
	pc->free_head = index;
}

static void pc_move_to_main(struct ar_pagecache *pc, uint32_t index, uint8_t freq)
{
	pc_queue_unlink(pc, index);
	pc->entries[index].freq = freq;
	pc_queue_push_head(pc, PC_Q_MAIN, index);
}

/* Free one slot by S3-FIFO.  Bounded: each pass either evicts, shrinks S, or
 * lowers M's total frequency, and S's size and M's frequencies are finite. */
static void pc_evict_one(struct ar_pagecache *pc)
{
	uint64_t passes_max = (uint64_t)pc->entries_count * (PC_FREQ_MAX + 2);

	AR_ASSERT(pc->small.count + pc->main.count > 0);
	for (uint64_t pass = 0; pass < passes_max; pass++) {
		if (pc->small.count >= pc->small_target || pc->main.count == 0) {
			uint32_t t = pc->small.tail;
			struct pc_entry *e = &pc->entries[t];
			if (e->freq > 0) {
				pc_move_to_main(pc, t, 0);
				pc->stats.promotions++;
				continue;
			}
			ghost_add(&pc->ghost, e->hash, PC_PAGE_BYTES);
			pc_entry_release(pc, t);
		} else {
			uint32_t t = pc->main.tail;
			struct pc_entry *e = &pc->entries[t];
			if (e->freq > 0) {
				pc_move_to_main(pc, t, (uint8_t)(e->freq - 1));
				continue;
			}
			pc_entry_release(pc, t);
		}
		pc->stats.evictions++;
		return;
	}
	AR_UNREACHABLE();
}

/* ---- the interface ---- */

/* Byte offsets of each array inside the one mapping. */
struct pc_layout {
	size_t entries, table, ghost, pages, bytes;
	uint64_t table_slots;
};

static size_t pc_align_up(size_t n, size_t align)
{
	return (n + align - 1) & ~(align - 1);
}

static void pc_layout_of(uint32_t entries_count, uint32_t ghost_capacity, struct pc_layout *l)
{
	l->table_slots = pc_pow2_at_least(2 * (uint64_t)entries_count);
	l->entries = pc_align_up(sizeof(struct ar_pagecache), PC_LINE_BYTES);
	l->table = l->entries + (size_t)entries_count * sizeof(struct pc_entry);
	l->ghost = pc_align_up(l->table + l->table_slots * sizeof(struct pc_slot), PC_LINE_BYTES);
	l->pages = pc_align_up(l->ghost + ghost_mem_bytes(ghost_capacity), PC_MAPPING_ALIGN);
	l->bytes = l->pages + (size_t)entries_count * PC_PAGE_BYTES;
}

/* Empty every structure (not the page slots, which are written before read). */
static void pc_reset(struct ar_pagecache *pc)
{
	memset(pc->table, 0, (pc->table_mask + 1) * sizeof(struct pc_slot));
	memset(pc->entries, 0, (size_t)pc->entries_count * sizeof(struct pc_entry));
	for (uint32_t i = 0; i < pc->entries_count; i++) {
		pc->entries[i].queue = PC_Q_FREE;
		pc->entries[i].prev = PC_NIL;
		pc->entries[i].next = i + 1 < pc->entries_count ? i + 1 : PC_NIL;
	}
	pc->free_head = 0;
	pc->small = (struct pc_queue){ .head = PC_NIL, .tail = PC_NIL, .count = 0 };
	pc->main = (struct pc_queue){ .head = PC_NIL, .tail = PC_NIL, .count = 0 };
	ghost_clear(&pc->ghost);
}

int pc_create(uint64_t capacity_bytes, int node, struct ar_pagecache **out)
{
	uint64_t entries_count = capacity_bytes / PC_PAGE_BYTES;
	struct pc_layout l;

	if (entries_count < PC_ENTRIES_MIN || entries_count > PC_ENTRIES_MAX)
		return -EINVAL;
	uint32_t small_target = (uint32_t)(entries_count / 10);
	if (small_target == 0)
		small_target = 1;
	uint32_t ghost_capacity = (uint32_t)entries_count - small_target;
	pc_layout_of((uint32_t)entries_count, ghost_capacity, &l);

	uint8_t *base = ar_numa_alloc(l.bytes, node);
	if (!base)
		return -ENOMEM;
	struct ar_pagecache *pc = (struct ar_pagecache *)base;
	memset(pc, 0, sizeof(*pc));
	pc->entries = (struct pc_entry *)(base + l.entries);
	pc->table = (struct pc_slot *)(base + l.table);
	pc->table_mask = l.table_slots - 1;
	/* Sizes in pages' bytes: G remembers M's share of pages, so it is bounded by
	 * its ring slots alone, as the S3-FIFO paper's entry-counting ghost is. */
	ghost_init(&pc->ghost, base + l.ghost, ghost_capacity,
		   (uint64_t)ghost_capacity * PC_PAGE_BYTES);
	pc->pages = base + l.pages;
	pc->entries_count = (uint32_t)entries_count;
	pc->small_target = small_target;
	pc->mapping_bytes = l.bytes;
	pc_reset(pc); /* first touch of the metadata, on the creating core */
	/* Fault the page slots in now, on this core's node: the partition's memory is
	 * resident from the start and does not grow while the cache fills. */
	memset(pc->pages, 0, (size_t)entries_count * PC_PAGE_BYTES);
	AR_DEBUG_ASSERT(pc_check(pc) == 0);
	*out = pc;
	return 0;
}

void pc_destroy(struct ar_pagecache *pc)
{
	if (!pc)
		return;
	size_t bytes = pc->mapping_bytes;
	ar_numa_free(pc, bytes);
}

bool pc_lookup(struct ar_pagecache *pc, const struct pc_key *k, pc_lsn lsn,
	       uint8_t out[PC_PAGE_BYTES])
{
	uint64_t hash = pc_hash(k);
	uint32_t index = pc_table_find(pc, k, hash);

	if (index == PC_NIL) {
		pc->stats.misses++;
		return false;
	}
	struct pc_entry *e = &pc->entries[index];
	if (e->freq < PC_FREQ_MAX)
		e->freq++;
	if (lsn < e->mod_lsn || lsn > e->known_lsn) {
		pc->stats.misses++;
		return false;
	}
	memcpy(out, pc_page_of(pc, index), PC_PAGE_BYTES);
	pc->stats.hits++;
	return true;
}

bool pc_probe(const struct ar_pagecache *pc, const struct pc_key *k, pc_lsn lsn)
{
	uint32_t index = pc_table_find(pc, k, pc_hash(k));
	if (index == PC_NIL)
		return false;
	const struct pc_entry *e = &pc->entries[index];
	return lsn >= e->mod_lsn && lsn <= e->known_lsn;
}

/* Apply the one-entry-per-key rule to an existing entry. */
static void pc_entry_update(struct ar_pagecache *pc, uint32_t index, pc_lsn mod_lsn,
			    pc_lsn known_lsn, const uint8_t page[PC_PAGE_BYTES])
{
	struct pc_entry *e = &pc->entries[index];

	if (mod_lsn == e->mod_lsn) {
		/* The same version read later: the range widens, the bytes agree. */
		if (known_lsn > e->known_lsn)
			e->known_lsn = known_lsn;
		return;
	}
	if (known_lsn > e->known_lsn) {
		/* The newest version <= known_lsn is at least e->mod_lsn. */
		AR_DEBUG_ASSERT(mod_lsn > e->known_lsn);
		e->mod_lsn = mod_lsn;
		e->known_lsn = known_lsn;
		memcpy(pc_page_of(pc, index), page, PC_PAGE_BYTES);
		return;
	}
	/* An older version (read below e->mod_lsn): keep the newer one. */
	AR_DEBUG_ASSERT(known_lsn < e->mod_lsn);
}

void pc_insert(struct ar_pagecache *pc, const struct pc_key *k, pc_lsn mod_lsn, pc_lsn known_lsn,
	       const uint8_t page[PC_PAGE_BYTES])
{
	AR_ASSERT(mod_lsn <= known_lsn);
	uint64_t hash = pc_hash(k);
	uint32_t index = pc_table_find(pc, k, hash);

	pc->stats.inserts++;
	if (index != PC_NIL) {
		pc_entry_update(pc, index, mod_lsn, known_lsn, page);
		return;
	}
	bool ghost_hit = ghost_take(&pc->ghost, hash);
	if (pc->free_head == PC_NIL)
		pc_evict_one(pc);
	index = pc->free_head;
	AR_ASSERT(index != PC_NIL);
	struct pc_entry *e = &pc->entries[index];
	pc->free_head = e->next;
	e->hash = hash;
	e->mod_lsn = mod_lsn;
	e->known_lsn = known_lsn;
	e->space = k->space;
	memcpy(e->key, k->key, PC_KEY_BYTES);
	e->freq = 0;
	memcpy(pc_page_of(pc, index), page, PC_PAGE_BYTES);
	pc_table_insert(pc, index);
	pc_queue_push_head(pc, ghost_hit ? PC_Q_MAIN : PC_Q_SMALL, index);
	if (ghost_hit)
		pc->stats.ghost_hits++;
}

void pc_drop_space(struct ar_pagecache *pc, uint32_t space)
{
	for (uint32_t i = 0; i < pc->entries_count; i++) {
		const struct pc_entry *e = &pc->entries[i];
		if (e->queue != PC_Q_FREE && e->space == space)
			pc_entry_release(pc, i);
	}
}

void pc_clear(struct ar_pagecache *pc)
{
	pc_reset(pc);
}

void pc_stats_read(const struct ar_pagecache *pc, struct pc_stats *out)
{
	*out = pc->stats;
	out->entries = (uint64_t)pc->small.count + pc->main.count;
	out->capacity_entries = pc->entries_count;
	out->bytes = out->entries * PC_PAGE_BYTES;
}

/* ---- pc_check ---- */

/* Walk one queue both ways (invariant 1, 3); the count of its entries or -1. */
static int64_t pc_check_queue(const struct ar_pagecache *pc, const struct pc_queue *q,
			      uint8_t queue)
{
	uint32_t prev = PC_NIL;
	uint32_t count = 0;

	for (uint32_t i = q->head; i != PC_NIL; i = pc->entries[i].next) {
		const struct pc_entry *e = &pc->entries[i];
		if (i >= pc->entries_count || count++ >= pc->entries_count)
			return -1;
		if (e->queue != queue || e->prev != prev)
			return -1;
		if (e->mod_lsn > e->known_lsn || e->freq > PC_FREQ_MAX)
			return -1;
		prev = i;
	}
	if (q->tail != prev || q->count != count)
		return -1;
	return count;
}

static int pc_check_lists(const struct ar_pagecache *pc)
{
	int64_t small = pc_check_queue(pc, &pc->small, PC_Q_SMALL);
	int64_t main = pc_check_queue(pc, &pc->main, PC_Q_MAIN);
	uint32_t free_count = 0;

	if (small < 0 || main < 0)
		return -1;
	for (uint32_t i = pc->free_head; i != PC_NIL; i = pc->entries[i].next) {
		if (i >= pc->entries_count || free_count++ >= pc->entries_count)
			return -1;
		if (pc->entries[i].queue != PC_Q_FREE)
			return -1;
	}
	if ((uint64_t)small + (uint64_t)main + free_count != pc->entries_count)
		return -1;
	return 0;
}

/* Invariants 2 and 5: every slot refers to a cached entry reachable from its
 * home; every cached entry is found through the table at its own index. */
static int pc_check_table(const struct ar_pagecache *pc)
{
	uint64_t used = 0;

	for (uint64_t i = 0; i <= pc->table_mask; i++) {
		struct pc_slot s = pc->table[i];
		if (s.ref == 0)
			continue;
		used++;
		if (s.ref > pc->entries_count)
			return -1;
		const struct pc_entry *e = &pc->entries[s.ref - 1];
		if (e->queue == PC_Q_FREE || s.tag != (uint32_t)(e->hash >> 32))
			return -1;
		for (uint64_t j = e->hash & pc->table_mask; j != i; j = (j + 1) & pc->table_mask) {
			if (pc->table[j].ref == 0)
				return -1;
		}
	}
	if (used != (uint64_t)pc->small.count + pc->main.count || 2 * used > pc->table_mask + 1)
		return -1;
	for (uint32_t i = 0; i < pc->entries_count; i++) {
		const struct pc_entry *e = &pc->entries[i];
		struct pc_key k = { .space = e->space };
		if (e->queue == PC_Q_FREE)
			continue;
		memcpy(k.key, e->key, PC_KEY_BYTES);
		if (pc_hash(&k) != e->hash || pc_table_find(pc, &k, e->hash) != i)
			return -1;
	}
	return 0;
}

int pc_check(const struct ar_pagecache *pc)
{
	if (pc->small_target == 0 || pc->small_target >= pc->entries_count)
		return -1;
	if (pc_check_lists(pc) != 0 || pc_check_table(pc) != 0)
		return -1;
	/* Invariant 4. */
	if (ghost_check(&pc->ghost) != 0 ||
	    pc->ghost.ring_slots != pc->entries_count - pc->small_target)
		return -1;
	return 0;
}
