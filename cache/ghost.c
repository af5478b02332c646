/*
 * ghost.c - The S3-FIFO ghost queue, shared by the page and layer-block caches.
 *
 * Layout on the caller's memory: the ring (16 bytes per slot), then, at the next
 * 64-byte boundary, the set (16 bytes per slot, 2 slots per ring slot).
 *
 *   ring  a FIFO of (fingerprint, size): ghost_add appends at head + ring_count
 *         and first drops from head while the ring is full or the new size would
 *         take bytes past bytes_max.
 *   set   open addressing, linear probing, from fingerprint to the ring slot
 *         that last received it; 0 = empty (fingerprints are never 0).  Deletion
 *         shifts the following run back (no tombstones).  A dropped ring slot
 *         removes its fingerprint from the set only if the set still points at
 *         that slot: a ghost hit may have taken it, or a newer copy of it may
 *         live at a later slot.
 *
 * Why one layout for both caches.  The two copies this replaces differed only
 * where it does not matter to the policy.  The page cache's set was a power of
 * two, with homes by mask; any size works with a multiply-shift range reduction
 * of the fingerprint's upper 32 bits (Lemire), so the set costs exactly 2 slots
 * per ring slot rather than up to 4.  The page cache's ring held fingerprints
 * only, and overwrote its oldest slot when full; with sizes of PC_PAGE_BYTES and
 * bytes_max of M's share of pages, the byte bound never binds before the slot
 * bound, and dropping the head then appending writes the same ring slot.
 * Membership (what ghost_take answers) depends only on the FIFO's order, never
 * on where the set keeps a fingerprint, so either cache admits exactly the keys
 * it admitted before.  The page cache pays 8 bytes per ring slot for sizes it
 * does not need (under 0.1% of its page bytes) and saves more on the smaller
 * set; its 32-bit ring positions become 64-bit ones in the header, which costs
 * a few bytes per partition and lets the layer cache's M grow past 2^32 slots.
 *
 * Depends on common/assert.h.
 */
#include "cache/ghost.h"

#include "cache/hash.h"
#include "common/assert.h"

#include <string.h>

#define GHOST_LINE_BYTES 64

struct ghost_item {
	uint64_t fp; /* 0 = never written */
	uint64_t size;
};

struct ghost_slot {
	uint64_t fp;  /* 0 = empty */
	uint64_t pos; /* the ring slot holding fp */
};

static size_t ghost_ring_bytes(uint64_t ring_slots)
{
	size_t bytes = (size_t)ring_slots * sizeof(struct ghost_item);
	return (bytes + GHOST_LINE_BYTES - 1) & ~(size_t)(GHOST_LINE_BYTES - 1);
}

size_t ghost_mem_bytes(uint64_t ring_slots)
{
	AR_ASSERT(ring_slots >= 1);
	return ghost_ring_bytes(ring_slots) + 2 * (size_t)ring_slots * sizeof(struct ghost_slot);
}

void ghost_init(struct ghost *g, void *mem, uint64_t ring_slots, uint64_t bytes_max)
{
	AR_ASSERT(ring_slots >= 1);
	AR_ASSERT(bytes_max >= 1);
	AR_ASSERT((uintptr_t)mem % GHOST_LINE_BYTES == 0);
	g->ring = (struct ghost_item *)mem;
	g->set = (struct ghost_slot *)((uint8_t *)mem + ghost_ring_bytes(ring_slots));
	g->ring_slots = ring_slots;
	g->set_slots = 2 * ring_slots;
	g->bytes_max = bytes_max;
	ghost_clear(g);
}

void ghost_clear(struct ghost *g)
{
	memset(g->ring, 0, (size_t)g->ring_slots * sizeof(struct ghost_item));
	memset(g->set, 0, (size_t)g->set_slots * sizeof(struct ghost_slot));
	g->head = 0;
	g->ring_count = 0;
	g->set_count = 0;
	g->bytes = 0;
}

/* The set slot where fp's probe starts. */
static uint64_t ghost_home(const struct ghost *g, uint64_t fp)
{
	return ((fp >> 32) * g->set_slots) >> 32;
}

/* The set slot holding fp, or the empty slot ending its probe.  Bounded: the set
 * is at most half full (invariant 2). */
static uint64_t ghost_slot_of(const struct ghost *g, uint64_t fp)
{
	uint64_t i = ghost_home(g, fp);

	for (uint64_t probe = 0; probe < g->set_slots; probe++) {
		if (g->set[i].fp == fp || g->set[i].fp == 0)
			return i;
		if (++i == g->set_slots)
			i = 0;
	}
	AR_UNREACHABLE();
}

/* Empty the set slot hole, pulling each later member of its run back into the
 * hole unless that member's home lies after the hole. */
static void ghost_remove_slot(struct ghost *g, uint64_t hole)
{
	uint64_t n = g->set_slots;
	uint64_t j = hole;

	AR_ASSERT(g->set[hole].fp != 0);
	for (uint64_t probe = 0; probe < n; probe++) {
		j = j + 1 == n ? 0 : j + 1;
		if (g->set[j].fp == 0)
			break;
		if (cache_home_between(hole, ghost_home(g, g->set[j].fp), j))
			continue;
		g->set[hole] = g->set[j];
		hole = j;
	}
	g->set[hole].fp = 0;
	g->set[hole].pos = 0;
	AR_ASSERT(g->set_count > 0);
	g->set_count--;
}

bool ghost_take(struct ghost *g, uint64_t fp)
{
	AR_ASSERT(fp != 0);
	uint64_t i = ghost_slot_of(g, fp);

	if (g->set[i].fp == 0)
		return false;
	ghost_remove_slot(g, i);
	return true;
}

/* The oldest ring slot leaves the FIFO, and its fingerprint the set unless a
 * ghost hit took it already or a newer copy lives at another ring slot. */
static void ghost_pop(struct ghost *g)
{
	uint64_t pos = g->head;
	const struct ghost_item *old = &g->ring[pos];
	uint64_t i = ghost_slot_of(g, old->fp);

	AR_ASSERT(g->ring_count > 0);
	if (g->set[i].fp == old->fp && g->set[i].pos == pos)
		ghost_remove_slot(g, i);
	AR_ASSERT(g->bytes >= old->size);
	g->bytes -= old->size;
	g->ring_count--;
	g->head = pos + 1 == g->ring_slots ? 0 : pos + 1;
}

void ghost_add(struct ghost *g, uint64_t fp, uint64_t size)
{
	AR_ASSERT(fp != 0);
	AR_ASSERT(size <= g->bytes_max);
	/* Bounded: each pass drops one of at most ring_slots ring slots, and an
	 * empty FIFO takes any size <= bytes_max. */
	while (g->ring_count == g->ring_slots ||
	       (g->ring_count > 0 && g->bytes + size > g->bytes_max))
		ghost_pop(g);
	uint64_t pos = g->head + g->ring_count;
	if (pos >= g->ring_slots)
		pos -= g->ring_slots;
	g->ring[pos].fp = fp;
	g->ring[pos].size = size;
	g->ring_count++;
	g->bytes += size;
	uint64_t i = ghost_slot_of(g, fp);
	if (g->set[i].fp == 0) {
		g->set[i].fp = fp;
		g->set_count++;
	}
	g->set[i].pos = pos;
	AR_ASSERT(g->set_count <= g->ring_count);
	AR_ASSERT(g->bytes <= g->bytes_max);
}

/* Invariant 1. */
static int ghost_check_ring(const struct ghost *g)
{
	uint64_t bytes = 0;

	if (g->ring_slots == 0 || g->set_slots != 2 * g->ring_slots)
		return -1;
	if (g->ring_count > g->ring_slots || g->head >= g->ring_slots)
		return -1;
	for (uint64_t k = 0; k < g->ring_count; k++)
		bytes += g->ring[(g->head + k) % g->ring_slots].size;
	return bytes == g->bytes && bytes <= g->bytes_max ? 0 : -1;
}

/* Invariant 2. */
static int ghost_check_set(const struct ghost *g)
{
	uint64_t count = 0, n = g->set_slots;

	for (uint64_t i = 0; i < n; i++) {
		const struct ghost_slot *s = &g->set[i];
		if (s->fp == 0)
			continue;
		count++;
		if (s->pos >= g->ring_slots)
			return -1;
		uint64_t age = (s->pos + g->ring_slots - g->head) % g->ring_slots;
		if (age >= g->ring_count || g->ring[s->pos].fp != s->fp)
			return -1;
		/* Reachable from home; being the first such slot also makes it the
		 * only copy of fp in the set. */
		for (uint64_t j = ghost_home(g, s->fp); j != i; j = j + 1 == n ? 0 : j + 1) {
			if (g->set[j].fp == 0 || g->set[j].fp == s->fp)
				return -1;
		}
	}
	return count == g->set_count && count <= g->ring_count ? 0 : -1;
}

int ghost_check(const struct ghost *g)
{
	if (ghost_check_ring(g) != 0 || ghost_check_set(g) != 0)
		return -1;
	return 0;
}
