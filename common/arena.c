/*
 * arena.c - NUMA-bound mappings (libnuma) and the bump arena on top.
 *
 * Without NUMA support in the kernel (numa_available() < 0) memory comes from
 * mmap and the node is reported as 0.  The arena header lives in ordinary memory;
 * its bytes live in the bound mapping and are first touched by the owning core.
 */
#include "common/arena.h"

#include "common/assert.h"
#include "common/limits.h"

#include <errno.h>
#include <numa.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

struct ar_arena {
	uint8_t *base;
	size_t capacity_bytes;
	size_t used_bytes;
	int node;
};

static bool numa_usable(void)
{
	return numa_available() >= 0;
}

void *ar_numa_alloc(size_t bytes, int node)
{
	void *ptr;

	if (node >= 0 && numa_usable())
		return numa_alloc_onnode(bytes, node);
	ptr = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return ptr == MAP_FAILED ? NULL : ptr;
}

void ar_numa_free(void *ptr, size_t bytes)
{
	if (!ptr)
		return;
	/* numa_alloc_onnode memory is an mmap too; numa_free is munmap. */
	munmap(ptr, bytes);
}

int ar_numa_node_of_cpu(int cpu)
{
	if (!numa_usable())
		return 0;
	int node = numa_node_of_cpu(cpu);
	return node < 0 ? 0 : node;
}

int ar_arena_create(size_t bytes, int node, struct ar_arena **arena_out)
{
	if (bytes < AR_ARENA_BYTES_MIN || bytes > AR_ARENA_BYTES_MAX)
		return -EINVAL;
	struct ar_arena *arena = calloc(1, sizeof(*arena));
	if (!arena)
		return -ENOMEM;
	arena->base = ar_numa_alloc(bytes, node);
	if (!arena->base) {
		free(arena);
		return -ENOMEM;
	}
	arena->capacity_bytes = bytes;
	arena->node = node < 0 ? 0 : node;
	*arena_out = arena;
	return 0;
}

void ar_arena_destroy(struct ar_arena *arena)
{
	if (!arena)
		return;
	ar_numa_free(arena->base, arena->capacity_bytes);
	free(arena);
}

void *ar_arena_alloc(struct ar_arena *arena, size_t bytes, size_t align)
{
	AR_ASSERT(align != 0);
	AR_ASSERT((align & (align - 1)) == 0);
	size_t start = (arena->used_bytes + align - 1) & ~(align - 1);
	if (start > arena->capacity_bytes || bytes > arena->capacity_bytes - start)
		return NULL;
	arena->used_bytes = start + bytes;
	return arena->base + start;
}

void ar_arena_reset(struct ar_arena *arena)
{
	arena->used_bytes = 0;
}

size_t ar_arena_used_bytes(const struct ar_arena *arena)
{
	return arena->used_bytes;
}

size_t ar_arena_capacity_bytes(const struct ar_arena *arena)
{
	return arena->capacity_bytes;
}

int ar_arena_node(const struct ar_arena *arena)
{
	return arena->node;
}
