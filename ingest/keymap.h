/*
 * keymap.h - A hash map from store keys to a 64-bit value and a pointer, for the
 * ingest's caches (relation sizes, directory parts, SLRU segment sizes).  Open
 * addressing with linear probing; grows at 50% load; no deletion (entries are
 * updated in place, a cache is dropped as a whole).
 */
#ifndef AR_INGEST_KEYMAP_H
#define AR_INGEST_KEYMAP_H

#include "engine/key.h"

#include <stdbool.h>
#include <stdint.h>

struct keymap_entry {
	struct ar_key key;
	bool used;
	uint64_t value;
	void *ptr;
};

struct keymap {
	struct keymap_entry *slots;
	uint32_t cap; /* a power of two */
	uint32_t count;
};

void keymap_init(struct keymap *m);
void keymap_free(struct keymap *m);
/* The entry for key, or NULL. */
struct keymap_entry *keymap_find(struct keymap *m, const struct ar_key *key);
/* The entry for key, added (value 0, ptr NULL, *added true) if missing; NULL when
 * out of memory.  Pointers stay valid until the next add. */
struct keymap_entry *keymap_add(struct keymap *m, const struct ar_key *key, bool *added);

#endif
