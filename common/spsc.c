/*
 * spsc.c - Lamport ring with cached indices.
 *
 * head is written only by the consumer, tail only by the producer; each side
 * keeps a private copy of the other's index and reloads it only when the ring
 * looks full (producer) or empty (consumer), so the shared cache lines move
 * rarely.  Indices are free-running 64-bit counters; slot = index & mask.
 * The release store of tail publishes the slot; the acquire load reads it.
 */
#include "common/spsc.h"

#include "common/arena.h"
#include "common/assert.h"
#include "common/limits.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { CACHE_LINE_BYTES = 64 };

struct ar_spsc {
	alignas(CACHE_LINE_BYTES) _Atomic uint64_t head; /* consumer writes */
	uint64_t tail_cached;                            /* consumer's view of tail */
	alignas(CACHE_LINE_BYTES) _Atomic uint64_t tail; /* producer writes */
	uint64_t head_cached;                            /* producer's view of head */
	alignas(CACHE_LINE_BYTES) uint64_t mask;
	size_t bytes;
	struct ar_msg slots[];
};

int ar_spsc_create(uint32_t capacity, int node, struct ar_spsc **ring_out)
{
	if (capacity < AR_SPSC_CAPACITY_MIN || capacity > AR_SPSC_CAPACITY_MAX)
		return -EINVAL;
	if ((capacity & (capacity - 1)) != 0)
		return -EINVAL;
	size_t bytes = sizeof(struct ar_spsc) + (size_t)capacity * sizeof(struct ar_msg);
	struct ar_spsc *ring = ar_numa_alloc(bytes, node);
	if (!ring)
		return -ENOMEM;
	memset(ring, 0, bytes); /* first touch from the creating thread; binding keeps the node */
	ring->mask = capacity - 1;
	ring->bytes = bytes;
	atomic_init(&ring->head, 0);
	atomic_init(&ring->tail, 0);
	*ring_out = ring;
	return 0;
}

void ar_spsc_destroy(struct ar_spsc *ring)
{
	if (ring)
		ar_numa_free(ring, ring->bytes);
}

bool ar_spsc_push(struct ar_spsc *ring, const struct ar_msg *msg)
{
	uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);

	if (tail - ring->head_cached > ring->mask) {
		ring->head_cached = atomic_load_explicit(&ring->head, memory_order_acquire);
		if (tail - ring->head_cached > ring->mask)
			return false;
	}
	ring->slots[tail & ring->mask] = *msg;
	atomic_store_explicit(&ring->tail, tail + 1, memory_order_release);
	return true;
}

bool ar_spsc_pop(struct ar_spsc *ring, struct ar_msg *msg_out)
{
	uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);

	if (head == ring->tail_cached) {
		ring->tail_cached = atomic_load_explicit(&ring->tail, memory_order_acquire);
		if (head == ring->tail_cached)
			return false;
	}
	AR_DEBUG_ASSERT(ring->tail_cached - head <= ring->mask + 1);
	*msg_out = ring->slots[head & ring->mask];
	atomic_store_explicit(&ring->head, head + 1, memory_order_release);
	return true;
}

bool ar_spsc_is_empty(struct ar_spsc *ring)
{
	uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
	return head == atomic_load_explicit(&ring->tail, memory_order_acquire);
}

uint32_t ar_spsc_capacity(const struct ar_spsc *ring)
{
	return (uint32_t)(ring->mask + 1);
}
