/*
 * arena.h - NUMA-local memory: a bump arena per core, and the page-granular
 * allocation beneath it.
 *
 * An arena is carved from one mapping bound to a NUMA node (libnuma).  Allocation
 * is a pointer bump; nothing is freed one by one; reset drops everything at once.
 * A full arena returns NULL: callers turn that into backpressure, never growth.
 * An arena belongs to one core and is used only on that core's thread.
 */
#ifndef AR_COMMON_ARENA_H
#define AR_COMMON_ARENA_H

#include <stddef.h>

struct ar_arena;

/* node < 0, or a machine without NUMA support: plain anonymous memory. */
__attribute__((warn_unused_result))
int ar_arena_create(size_t bytes, int node, struct ar_arena **arena_out);
void ar_arena_destroy(struct ar_arena *arena);

/* align: power of two; NULL when the arena is full. */
void *ar_arena_alloc(struct ar_arena *arena, size_t bytes, size_t align);
void ar_arena_reset(struct ar_arena *arena);
size_t ar_arena_used_bytes(const struct ar_arena *arena);
size_t ar_arena_capacity_bytes(const struct ar_arena *arena);
int ar_arena_node(const struct ar_arena *arena);

/* Page-granular memory bound to node (or unbound when node < 0 or no NUMA). */
void *ar_numa_alloc(size_t bytes, int node);
void ar_numa_free(void *ptr, size_t bytes);
/* The node of the calling thread's CPU; 0 without NUMA support. */
int ar_numa_node_of_cpu(int cpu);

#endif
