/*
 * spsc.h - Bounded single-producer single-consumer ring of fixed-size messages,
 * the only way core threads talk to each other.
 *
 * Exactly one thread pushes and exactly one thread pops for the life of a ring.
 * Capacity is a power of two fixed at creation; a full ring refuses the push
 * (backpressure), it never grows.  Memory is allocated on the consumer's NUMA node.
 */
#ifndef AR_COMMON_SPSC_H
#define AR_COMMON_SPSC_H

#include <stdbool.h>
#include <stdint.h>

struct ar_core;
struct ar_msg;

typedef void ar_msg_fn(struct ar_core *core, struct ar_msg *msg);

/* One message; ownership of whatever ptr points to moves with it. */
struct ar_msg {
	ar_msg_fn *fn;     /* run on the receiving core */
	void *ptr;
	uint64_t arg;
	uint32_t kind;
	uint32_t from_core_index;
};

struct ar_spsc;

/* capacity: power of two within AR_SPSC_CAPACITY_MIN..MAX; node < 0: no NUMA binding. */
__attribute__((warn_unused_result))
int ar_spsc_create(uint32_t capacity, int node, struct ar_spsc **ring_out);
void ar_spsc_destroy(struct ar_spsc *ring);

/* Producer side: false if the ring is full. */
__attribute__((warn_unused_result))
bool ar_spsc_push(struct ar_spsc *ring, const struct ar_msg *msg);
/* Consumer side: false if the ring is empty. */
__attribute__((warn_unused_result))
bool ar_spsc_pop(struct ar_spsc *ring, struct ar_msg *msg_out);
/* Consumer side: a hint, exact only when the producer is quiet. */
bool ar_spsc_is_empty(struct ar_spsc *ring);
uint32_t ar_spsc_capacity(const struct ar_spsc *ring);

#endif
