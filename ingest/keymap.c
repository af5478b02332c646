/*
 * keymap.c - Open-addressing hash map over store keys (see keymap.h).
 */
#include "ingest/keymap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t key_hash(const struct ar_key *k)
{
	uint64_t h = (uint64_t)k->f1 << 56 ^ (uint64_t)k->f2 << 24 ^ k->f3;
	h = h * 0x9E3779B97F4A7C15ull ^ ((uint64_t)k->f4 << 8 | k->f5);
	h = h * 0x9E3779B97F4A7C15ull ^ k->f6;
	h ^= h >> 31;
	return h * 0xBF58476D1CE4E5B9ull;
}

static bool key_eq(const struct ar_key *a, const struct ar_key *b)
{
	return a->f1 == b->f1 && a->f2 == b->f2 && a->f3 == b->f3 && a->f4 == b->f4 &&
	       a->f5 == b->f5 && a->f6 == b->f6;
}

void keymap_init(struct keymap *m)
{
	memset(m, 0, sizeof(*m));
}

void keymap_free(struct keymap *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

static struct keymap_entry *probe(struct keymap_entry *slots, uint32_t cap,
				  const struct ar_key *key)
{
	uint32_t i = (uint32_t)(key_hash(key) >> 32) & (cap - 1);
	/* Bounded: the table is at most half full, so an empty slot is reached. */
	while (slots[i].used && !key_eq(&slots[i].key, key))
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

struct keymap_entry *keymap_find(struct keymap *m, const struct ar_key *key)
{
	if (m->cap == 0)
		return NULL;
	struct keymap_entry *e = probe(m->slots, m->cap, key);
	return e->used ? e : NULL;
}

static int grow(struct keymap *m)
{
	uint32_t cap = m->cap ? m->cap * 2 : 256;
	struct keymap_entry *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	for (uint32_t i = 0; i < m->cap; i++)
		if (m->slots[i].used)
			*probe(slots, cap, &m->slots[i].key) = m->slots[i];
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

struct keymap_entry *keymap_add(struct keymap *m, const struct ar_key *key, bool *added)
{
	*added = false;
	struct keymap_entry *e = keymap_find(m, key);
	if (e)
		return e;
	if ((m->count + 1) * 2 > m->cap && grow(m) < 0)
		return NULL;
	e = probe(m->slots, m->cap, key);
	e->used = true;
	e->key = *key;
	e->value = 0;
	e->ptr = NULL;
	m->count++;
	*added = true;
	return e;
}
