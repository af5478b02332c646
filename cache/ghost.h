/*
 * ghost.h - The ghost queue G of an S3-FIFO cache partition: fingerprints of
 * entries evicted from the small queue S, for O(1) "was this key evicted from S
 * recently?" on insert (a ghost hit admits the key straight to M).
 *
 * G is a FIFO ring of (fingerprint, size) plus an open-addressing set from
 * fingerprint to ring position.  It remembers at most ring_slots evictions whose
 * sizes add up to at most bytes_max: the layer-block cache gives each entry's
 * size in its log and M's bytes, so G remembers as many bytes as M holds; the
 * page cache gives PC_PAGE_BYTES and M's share of pages, so only the slot count
 * binds.  A ghost hit (ghost_take) removes the fingerprint from the set and
 * leaves its ring slot stale, still counted until the FIFO drops it.
 *
 * The ghost owns no memory: the caller gives it ghost_mem_bytes(ring_slots)
 * bytes of its own preallocated mapping (on the partition's NUMA node), and
 * keeps struct ghost in its partition header.  Like the partition, a ghost is
 * touched by one thread only: no locks.  Nothing is allocated after ghost_init.
 *
 * Invariants (checked by ghost_check):
 *   1. ring_count <= ring_slots and head < ring_slots; the FIFO is the
 *      ring_count slots from head on (cyclically), and their sizes add up to
 *      bytes <= bytes_max.
 *   2. The set holds set_count <= ring_count distinct fingerprints, each
 *      pointing at a ring slot inside the FIFO that holds it, and each reachable
 *      from its home slot without crossing an empty slot.  The set has 2 slots
 *      per ring slot, so it is at most half full and every probe ends.
 */
#ifndef AR_CACHE_GHOST_H
#define AR_CACHE_GHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Both are defined in ghost.c: only the ghost reads its ring and set. */
struct ghost_item;
struct ghost_slot;

/* One ghost queue; the fields are visible so that a partition can embed it, but
 * only ghost.c writes them. */
struct ghost {
	struct ghost_item *ring;
	struct ghost_slot *set;
	uint64_t ring_slots; /* the FIFO's capacity */
	uint64_t set_slots;  /* 2 * ring_slots */
	uint64_t head;       /* the oldest ring slot */
	uint64_t ring_count; /* ring slots in the FIFO, stale ones included */
	uint64_t set_count;  /* fingerprints in the set */
	uint64_t bytes;      /* the FIFO's sizes added up */
	uint64_t bytes_max;
};

/* ghost_mem_bytes() -- The bytes of caller memory a ghost of ring_slots needs. */
size_t ghost_mem_bytes(uint64_t ring_slots);

/*
 * ghost_init() -- Set g up, empty, on mem: ghost_mem_bytes(ring_slots) bytes,
 * 64-byte aligned, borrowed for g's lifetime.  Writes (first-touches) all of mem.
 * ring_slots >= 1, bytes_max >= 1.
 */
void ghost_init(struct ghost *g, void *mem, uint64_t ring_slots, uint64_t bytes_max);

/* ghost_clear() -- Forget every fingerprint. */
void ghost_clear(struct ghost *g);

/*
 * ghost_add() -- Remember fp (never 0) of an entry of size bytes (<= bytes_max)
 * evicted from S, dropping the oldest ring slots until it fits.  A fingerprint
 * already in G moves to the new slot.
 */
void ghost_add(struct ghost *g, uint64_t fp, uint64_t size);

/* ghost_take() -- True if fp (never 0) is in G; it leaves G. */
bool ghost_take(struct ghost *g, uint64_t fp);

/* ghost_check() -- 0 if g keeps its invariants (above), -1 if not. */
int ghost_check(const struct ghost *g);

#endif
