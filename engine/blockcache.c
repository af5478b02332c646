/*
 * blockcache.c - The LRU implementation of the engine's cache interface: byte
 * blocks keyed by (file id, offset) in a chained hash table plus a doubly linked
 * recency list.  Bounded by capacity_bytes.
 */
#include "engine/blockcache.h"

#include "common/assert.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct bc_entry {
	uint64_t file_id;
	uint64_t offset;
	uint32_t len;
	struct bc_entry *hash_next;
	struct bc_entry *lru_prev; /* towards most recent */
	struct bc_entry *lru_next; /* towards least recent */
	uint8_t data[];
};

struct bc_lru {
	struct ar_blockcache base; /* first: the interface */
	uint64_t capacity_bytes;
	uint64_t bytes;
	struct bc_entry **buckets;
	uint32_t bucket_count;     /* a power of two */
	struct bc_entry *lru_head; /* most recent */
	struct bc_entry *lru_tail; /* least recent */
	struct ar_blockcache_stats stats;
};

enum { BUCKETS = 1 << 14 };

static uint32_t bc_hash(const struct bc_lru *c, uint64_t file_id, uint64_t offset)
{
	uint64_t h = file_id * 0x9E3779B97F4A7C15ull ^ offset * 0xC2B2AE3D27D4EB4Full;
	h ^= h >> 29;
	return (uint32_t)h & (c->bucket_count - 1);
}

static const struct ar_blockcache_ops lru_ops;

int ar_blockcache_create(uint64_t capacity_bytes, struct ar_blockcache **cache_out)
{
	struct bc_lru *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->bucket_count = BUCKETS;
	c->buckets = calloc(c->bucket_count, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return -ENOMEM;
	}
	c->base.ops = &lru_ops;
	c->capacity_bytes = capacity_bytes;
	*cache_out = &c->base;
	return 0;
}

static void bc_lru_unlink(struct bc_lru *c, struct bc_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void bc_lru_push_front(struct bc_lru *c, struct bc_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = e;
	c->lru_head = e;
	if (!c->lru_tail)
		c->lru_tail = e;
}

static void bc_remove(struct bc_lru *c, struct bc_entry *e)
{
	struct bc_entry **p = &c->buckets[bc_hash(c, e->file_id, e->offset)];
	while (*p != e)
		p = &(*p)->hash_next;
	*p = e->hash_next;
	bc_lru_unlink(c, e);
	c->bytes -= e->len;
	free(e);
}

static void lru_destroy(struct ar_blockcache *cache)
{
	struct bc_lru *c = (struct bc_lru *)cache;

	while (c->lru_head)
		bc_remove(c, c->lru_head);
	free(c->buckets);
	free(c);
}

static const uint8_t *lru_get(struct ar_blockcache *cache, uint64_t file_id, uint64_t offset,
			      uint32_t *len_out)
{
	struct bc_lru *c = (struct bc_lru *)cache;

	for (struct bc_entry *e = c->buckets[bc_hash(c, file_id, offset)]; e; e = e->hash_next) {
		if (e->file_id == file_id && e->offset == offset) {
			bc_lru_unlink(c, e);
			bc_lru_push_front(c, e);
			c->stats.hits++;
			*len_out = e->len;
			return e->data;
		}
	}
	c->stats.misses++;
	return NULL;
}

static int lru_put(struct ar_blockcache *cache, uint64_t file_id, uint64_t offset,
		   const uint8_t *data, uint32_t len)
{
	struct bc_lru *c = (struct bc_lru *)cache;
	uint32_t old_len;

	if (len > c->capacity_bytes)
		return 0;
	if (lru_get(cache, file_id, offset, &old_len)) {
		c->stats.hits--; /* not a lookup of the caller's */
		bc_remove(c, c->lru_head);
	}
	while (c->bytes + len > c->capacity_bytes && c->lru_tail) {
		bc_remove(c, c->lru_tail);
		c->stats.evictions++;
	}
	struct bc_entry *e = malloc(sizeof(*e) + len);
	if (!e)
		return -ENOMEM;
	e->file_id = file_id;
	e->offset = offset;
	e->len = len;
	memcpy(e->data, data, len);
	uint32_t b = bc_hash(c, file_id, offset);
	e->hash_next = c->buckets[b];
	c->buckets[b] = e;
	bc_lru_push_front(c, e);
	c->bytes += len;
	AR_DEBUG_ASSERT(c->bytes <= c->capacity_bytes);
	return 0;
}

static void lru_clear(struct ar_blockcache *cache)
{
	struct bc_lru *c = (struct bc_lru *)cache;

	while (c->lru_head)
		bc_remove(c, c->lru_head);
}

static void lru_drop_file(struct ar_blockcache *cache, uint64_t file_id)
{
	struct bc_lru *c = (struct bc_lru *)cache;
	struct bc_entry *e = c->lru_head;
	while (e) {
		struct bc_entry *next = e->lru_next;
		if (e->file_id == file_id)
			bc_remove(c, e);
		e = next;
	}
}

static void lru_stats_read(const struct ar_blockcache *cache, struct ar_blockcache_stats *out)
{
	const struct bc_lru *c = (const struct bc_lru *)cache;

	*out = c->stats;
	out->bytes = c->bytes;
}

static const struct ar_blockcache_ops lru_ops = {
	.get = lru_get,
	.put = lru_put,
	.clear = lru_clear,
	.drop_file = lru_drop_file,
	.stats_read = lru_stats_read,
	.destroy = lru_destroy,
};
