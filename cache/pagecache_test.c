/*
 * pagecache_test.c - The page cache partition: the LSN validity rule, bounds and
 * byte-exact reads, S3-FIFO's moves, scan resistance (hot set vs. a one-time
 * scan of 10x the capacity), and a randomized run against a model of the
 * timeline's page versions with pc_check after every batch of operations.
 */
#include "cache/pagecache.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

/* ---- helpers ---- */

static uint64_t t_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* A deterministic PRNG (splitmix64). */
static uint64_t t_next(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ull;
	return t_mix(*state);
}

static uint64_t t_below(uint64_t *state, uint64_t n)
{
	return t_next(state) % n;
}

/* Page bytes that differ in every word for a different seed. */
static void t_fill(uint8_t page[PC_PAGE_BYTES], uint64_t seed)
{
	uint64_t base = t_mix(seed);
	for (size_t i = 0; i < PC_PAGE_BYTES / 8; i++) {
		uint64_t w = base + i * 0x2545f4914f6cdd1dull;
		memcpy(page + i * 8, &w, 8);
	}
}

/* A key shaped like an encoded relation block key: block number n at the end. */
static struct pc_key t_key(uint32_t space, uint64_t n)
{
	struct pc_key k = { .space = space };
	k.key[0] = 0;
	k.key[4] = 0x7f; /* spcOid 1663 and friends, roughly */
	k.key[12] = (uint8_t)(n >> 32);
	for (int i = 0; i < 4; i++)
		k.key[14 + i] = (uint8_t)(n >> (8 * (3 - i)));
	return k;
}

static struct pc_stats t_stats(const struct ar_pagecache *pc)
{
	struct pc_stats s;
	pc_stats_read(pc, &s);
	return s;
}

static bool t_hit_equals(struct ar_pagecache *pc, const struct pc_key *k, pc_lsn lsn,
			 const uint8_t *expected)
{
	static uint8_t out[PC_PAGE_BYTES];
	if (!pc_lookup(pc, k, lsn, out))
		return false;
	assert_memory_equal(out, expected, PC_PAGE_BYTES);
	return true;
}

static bool t_miss(struct ar_pagecache *pc, const struct pc_key *k, pc_lsn lsn)
{
	static uint8_t out[PC_PAGE_BYTES];
	return !pc_lookup(pc, k, lsn, out);
}

/* ---- 1. the validity rule ---- */

static void test_create_bounds(void **state)
{
	struct ar_pagecache *pc = NULL;
	(void)state;

	assert_int_equal(pc_create(0, -1, &pc), -22);
	assert_int_equal(pc_create(15 * PC_PAGE_BYTES, -1, &pc), -22);
	assert_int_equal(pc_create(16 * PC_PAGE_BYTES - 1, -1, &pc), -22);
	assert_int_equal(pc_create((uint64_t)PC_PAGE_BYTES * (PC_ENTRIES_MAX + 1ull), -1, &pc),
			 -22);
	assert_null(pc);
	assert_int_equal(pc_create(16 * PC_PAGE_BYTES + 100, -1, &pc), 0);
	assert_int_equal(t_stats(pc).capacity_entries, 16);
	assert_int_equal(t_stats(pc).entries, 0);
	assert_int_equal(pc_check(pc), 0);
	pc_destroy(pc);
	assert_int_equal(pc_create(64 * PC_PAGE_BYTES, 0, &pc), 0); /* node 0: bound */
	pc_destroy(pc);
	pc_destroy(NULL);
}

static void test_lsn_rule(void **state)
{
	static uint8_t a[PC_PAGE_BYTES], b[PC_PAGE_BYTES];
	struct ar_pagecache *pc;
	struct pc_key k = t_key(1, 7);
	(void)state;

	assert_int_equal(pc_create(64 * PC_PAGE_BYTES, -1, &pc), 0);
	t_fill(a, 100);
	t_fill(b, 400);
	assert_true(t_miss(pc, &k, 150));
	pc_insert(pc, &k, 100, 200, a);
	assert_true(t_miss(pc, &k, 99)); /* below the newest version */
	assert_true(t_hit_equals(pc, &k, 100, a));
	assert_true(t_hit_equals(pc, &k, 150, a));
	assert_true(t_hit_equals(pc, &k, 200, a));
	assert_true(t_miss(pc, &k, 201)); /* a newer version may exist */
	/* Widening: the same version read at 300. */
	pc_insert(pc, &k, 100, 300, a);
	assert_true(t_hit_equals(pc, &k, 300, a));
	assert_true(t_hit_equals(pc, &k, 250, a));
	assert_true(t_miss(pc, &k, 301));
	pc_insert(pc, &k, 100, 150, a); /* narrower: no change */
	assert_true(t_hit_equals(pc, &k, 300, a));
	/* Replacement: a newer version at 400, read at 500. */
	pc_insert(pc, &k, 400, 500, b);
	assert_true(t_miss(pc, &k, 300));
	assert_true(t_miss(pc, &k, 399));
	assert_true(t_hit_equals(pc, &k, 400, b));
	assert_true(t_hit_equals(pc, &k, 500, b));
	assert_true(t_miss(pc, &k, 501));
	/* An older range does not replace a newer one. */
	pc_insert(pc, &k, 100, 300, a);
	assert_true(t_hit_equals(pc, &k, 450, b));
	assert_true(t_miss(pc, &k, 200));
	assert_int_equal(t_stats(pc).entries, 1);
	assert_int_equal(pc_check(pc), 0);
	pc_destroy(pc);
}

static void test_spaces_and_drop(void **state)
{
	static uint8_t a[PC_PAGE_BYTES], c[PC_PAGE_BYTES];
	struct ar_pagecache *pc;
	struct pc_key k1 = t_key(1, 7), k2 = t_key(2, 7);
	(void)state;

	assert_int_equal(pc_create(64 * PC_PAGE_BYTES, -1, &pc), 0);
	t_fill(a, 1);
	t_fill(c, 2);
	pc_insert(pc, &k1, 100, 200, a);
	assert_true(t_miss(pc, &k2, 150)); /* same key bytes, other space */
	pc_insert(pc, &k2, 10, 20, c);
	assert_true(t_hit_equals(pc, &k2, 15, c));
	assert_true(t_hit_equals(pc, &k1, 150, a));
	for (uint64_t n = 100; n < 140; n++) {
		struct pc_key k = t_key(1 + (uint32_t)(n % 2), n);
		pc_insert(pc, &k, 1, 1, a);
	}
	assert_int_equal(t_stats(pc).entries, 42);
	pc_drop_space(pc, 1);
	assert_int_equal(pc_check(pc), 0);
	assert_int_equal(t_stats(pc).entries, 21);
	assert_true(t_miss(pc, &k1, 150));
	assert_true(t_hit_equals(pc, &k2, 15, c));
	for (uint64_t n = 100; n < 140; n++) {
		struct pc_key k = t_key(1 + (uint32_t)(n % 2), n);
		assert_int_equal(t_miss(pc, &k, 1), n % 2 == 0);
	}
	pc_drop_space(pc, 3); /* nothing there */
	assert_int_equal(t_stats(pc).entries, 21);
	pc_clear(pc);
	assert_int_equal(pc_check(pc), 0);
	assert_int_equal(t_stats(pc).entries, 0);
	assert_int_equal(t_stats(pc).bytes, 0);
	assert_true(t_miss(pc, &k2, 15));
	pc_insert(pc, &k2, 10, 20, c);
	assert_true(t_hit_equals(pc, &k2, 15, c));
	pc_destroy(pc);
}

/* ---- S3-FIFO moves ---- */

static void t_insert_n(struct ar_pagecache *pc, uint64_t n)
{
	static uint8_t page[PC_PAGE_BYTES];
	struct pc_key k = t_key(1, n);
	t_fill(page, n);
	pc_insert(pc, &k, 1, 10, page);
}

static bool t_hit_n(struct ar_pagecache *pc, uint64_t n)
{
	static uint8_t page[PC_PAGE_BYTES];
	struct pc_key k = t_key(1, n);
	t_fill(page, n);
	return t_hit_equals(pc, &k, 5, page);
}

/* 20 slots: S's share is 2, M's 18. */
static void test_s3fifo_small_queue(void **state)
{
	struct ar_pagecache *pc;
	(void)state;

	assert_int_equal(pc_create(20 * PC_PAGE_BYTES, -1, &pc), 0);
	for (uint64_t n = 0; n < 20; n++)
		t_insert_n(pc, n);
	assert_true(t_hit_n(pc, 1)); /* key 1 gets freq 1 */
	t_insert_n(pc, 20);          /* S's tail, key 0, is evicted into G */
	t_insert_n(pc, 21);          /* key 1 moves to M; key 2 is evicted into G */
	struct pc_stats s = t_stats(pc);
	assert_int_equal(s.evictions, 2);
	assert_int_equal(s.promotions, 1);
	assert_int_equal(s.entries, 20);
	assert_false(t_hit_n(pc, 0));
	assert_false(t_hit_n(pc, 2));
	assert_true(t_hit_n(pc, 1));
	t_insert_n(pc, 0); /* a ghost hit: straight to M; key 3 leaves S */
	s = t_stats(pc);
	assert_int_equal(s.ghost_hits, 1);
	assert_int_equal(s.evictions, 3);
	assert_false(t_hit_n(pc, 3));
	assert_true(t_hit_n(pc, 0));
	assert_true(t_hit_n(pc, 4));
	assert_int_equal(pc_check(pc), 0);
	pc_destroy(pc);
}

static void test_s3fifo_main_queue(void **state)
{
	struct ar_pagecache *pc;
	(void)state;

	assert_int_equal(pc_create(20 * PC_PAGE_BYTES, -1, &pc), 0);
	for (uint64_t n = 0; n < 20; n++)
		t_insert_n(pc, n);
	for (uint64_t n = 0; n < 20; n++)
		assert_true(t_hit_n(pc, n));
	/* Every S entry was accessed: keys 0..18 move to M (freq 0) until S is
	 * below its share (key 19 alone); then M's tail, key 0, is evicted (not
	 * into G). */
	t_insert_n(pc, 20);
	struct pc_stats s = t_stats(pc);
	assert_int_equal(s.promotions, 19);
	assert_int_equal(s.evictions, 1);
	assert_false(t_hit_n(pc, 0));
	assert_true(t_hit_n(pc, 1)); /* key 1: freq 1 in M */
	/* S holds 19 and 20, its share: key 19 (freq 1) moves to M, S is below its
	 * share, so M evicts.  Key 1 is reinserted at M's head with freq 0; key 2
	 * is evicted. */
	t_insert_n(pc, 21);
	assert_int_equal(t_stats(pc).promotions, 20);
	assert_int_equal(t_stats(pc).evictions, 2);
	assert_true(t_hit_n(pc, 1));
	assert_false(t_hit_n(pc, 2));
	/* S holds 20 and 21, its share: S's tail, key 20, goes to G. */
	t_insert_n(pc, 22);
	assert_int_equal(t_stats(pc).evictions, 3);
	assert_false(t_hit_n(pc, 20));
	t_insert_n(pc, 20);
	assert_int_equal(t_stats(pc).ghost_hits, 1);
	t_insert_n(pc, 0); /* evicted from M, not S: no ghost */
	assert_int_equal(t_stats(pc).ghost_hits, 1);
	assert_int_equal(pc_check(pc), 0);
	pc_destroy(pc);
}

/* ---- 2. capacity and byte-exact reads ---- */

enum { CAP_PAGES = 256, CAP_KEYS = 3 * CAP_PAGES, CAP_INSERTS = 20000 };

struct cap_model {
	uint64_t seed; /* content of the last insert */
	pc_lsn lsn;    /* its mod_lsn == known_lsn; 0: never inserted */
};

static void test_capacity(void **state)
{
	static struct cap_model model[CAP_KEYS];
	static uint8_t page[PC_PAGE_BYTES];
	struct ar_pagecache *pc;
	uint64_t rng = 42, hits = 0;
	pc_lsn lsn = 0;
	(void)state;

	assert_int_equal(pc_create(CAP_PAGES * PC_PAGE_BYTES, -1, &pc), 0);
	/* Exactly the capacity: nothing is evicted. */
	for (uint64_t n = 0; n < CAP_PAGES; n++)
		t_insert_n(pc, 1000000 + n);
	assert_int_equal(t_stats(pc).entries, CAP_PAGES);
	assert_int_equal(t_stats(pc).evictions, 0);
	for (uint64_t n = 0; n < CAP_PAGES; n++)
		assert_true(t_hit_n(pc, 1000000 + n));
	for (int i = 0; i < CAP_INSERTS; i++) {
		uint64_t n = t_below(&rng, CAP_KEYS);
		struct pc_key k = t_key(7, n);
		model[n].seed = t_next(&rng);
		model[n].lsn = ++lsn;
		t_fill(page, model[n].seed);
		pc_insert(pc, &k, lsn, lsn, page);
		assert_true(t_hit_equals(pc, &k, lsn, page));
		struct pc_stats s = t_stats(pc);
		assert_true(s.entries <= s.capacity_entries);
		assert_int_equal(s.capacity_entries, CAP_PAGES);
		assert_int_equal(s.bytes, s.entries * PC_PAGE_BYTES);
		/* Any other key that answers must answer with its last content. */
		uint64_t m = t_below(&rng, CAP_KEYS);
		struct pc_key km = t_key(7, m);
		if (model[m].lsn == 0) {
			assert_true(t_miss(pc, &km, lsn));
			continue;
		}
		t_fill(page, model[m].seed);
		hits += t_hit_equals(pc, &km, model[m].lsn, page);
		assert_true(t_miss(pc, &km, model[m].lsn + 1));
	}
	assert_int_equal(t_stats(pc).entries, CAP_PAGES);
	assert_true(hits > 0);
	assert_int_equal(pc_check(pc), 0);
	pc_destroy(pc);
}

/* ---- 3. scan resistance ---- */

enum { SCAN_PAGES = 1024, SCAN_HOT = SCAN_PAGES / 2, SCAN_KEYS = 10 * SCAN_PAGES };

/* What the page service does: look up, and on a miss read and insert. */
static bool t_read_through(struct ar_pagecache *pc, uint64_t n)
{
	if (t_hit_n(pc, n))
		return true;
	t_insert_n(pc, n);
	return false;
}

static void t_warm_hot_set(struct ar_pagecache *pc)
{
	for (int pass = 0; pass < 3; pass++) {
		for (uint64_t n = 0; n < SCAN_HOT; n++)
			(void)t_read_through(pc, n);
	}
}

static double t_hot_pass(struct ar_pagecache *pc)
{
	uint64_t hits = 0;
	for (uint64_t n = 0; n < SCAN_HOT; n++)
		hits += t_read_through(pc, n);
	return (double)hits / SCAN_HOT;
}

static void test_scan_resistance(void **state)
{
	struct ar_pagecache *pc;
	(void)state;

	assert_int_equal(pc_create(SCAN_PAGES * PC_PAGE_BYTES, -1, &pc), 0);
	t_warm_hot_set(pc);
	for (uint64_t i = 0; i < SCAN_KEYS; i++)
		assert_false(t_read_through(pc, 1000000 + i));
	double rate = t_hot_pass(pc);
	struct pc_stats s = t_stats(pc);
	printf("scan resistance: capacity %d pages, hot set %d, scan %d: hot hit rate %.1f%% "
	       "(evictions %llu, promotions %llu)\n",
	       SCAN_PAGES, SCAN_HOT, SCAN_KEYS, 100.0 * rate, (unsigned long long)s.evictions,
	       (unsigned long long)s.promotions);
	assert_true(rate >= 0.90);
	assert_int_equal(pc_check(pc), 0);
	pc_destroy(pc);
}

static void test_scan_resistance_interleaved(void **state)
{
	struct ar_pagecache *pc;
	uint64_t hot_reads = 0, hot_hits = 0, hot = 0;
	(void)state;

	assert_int_equal(pc_create(SCAN_PAGES * PC_PAGE_BYTES, -1, &pc), 0);
	t_warm_hot_set(pc);
	for (uint64_t i = 0; i < SCAN_KEYS; i++) {
		assert_false(t_read_through(pc, 1000000 + i));
		if (i % 4 == 3) {
			hot_hits += t_read_through(pc, hot);
			hot_reads++;
			hot = (hot + 1) % SCAN_HOT;
		}
	}
	double rate = (double)hot_hits / (double)hot_reads;
	double after = t_hot_pass(pc);
	printf("scan resistance, interleaved (1 hot read per 4 scan inserts): hot hit rate "
	       "%.1f%% during the scan (%llu reads), %.1f%% after\n",
	       100.0 * rate, (unsigned long long)hot_reads, 100.0 * after);
	assert_true(rate >= 0.90);
	assert_true(after >= 0.90);
	assert_int_equal(pc_check(pc), 0);
	pc_destroy(pc);
}

/* ---- 4. randomized model ---- */

enum {
	RM_SPACES = 4,
	RM_KEYS_PER_SPACE = 96,
	RM_KEYS = RM_SPACES * RM_KEYS_PER_SPACE,
	RM_PAGES = 96,
	RM_VERSIONS_MAX = 96,
	RM_OPS = 100000,
};

/* The truth: each key's immutable versions (LSNs, ascending; the first at 1),
 * plus what the test knows about the cache. */
struct rm_key {
	pc_lsn versions[RM_VERSIONS_MAX];
	uint32_t versions_count;
	bool inserted;    /* inserted since its space was last dropped */
	pc_lsn known_max; /* the largest known_lsn inserted since then */
};

struct rm {
	struct ar_pagecache *pc;
	struct rm_key keys[RM_KEYS];
	pc_lsn last_lsn;
	uint64_t rng;
	uint8_t page[PC_PAGE_BYTES];
	uint8_t out[PC_PAGE_BYTES];
};

static struct pc_key rm_key_of(uint32_t n)
{
	return t_key(n / RM_KEYS_PER_SPACE, n % RM_KEYS_PER_SPACE);
}

/* The newest version <= lsn, and the LSN just below the next one (or last_lsn). */
static pc_lsn rm_version_at(const struct rm *m, uint32_t n, pc_lsn lsn, pc_lsn *stable_to)
{
	const struct rm_key *key = &m->keys[n];
	uint32_t i = 0;
	while (i + 1 < key->versions_count && key->versions[i + 1] <= lsn)
		i++;
	if (stable_to)
		*stable_to = i + 1 < key->versions_count ? key->versions[i + 1] - 1 : m->last_lsn;
	return key->versions[i];
}

static void rm_fill(struct rm *m, uint32_t n, pc_lsn mod_lsn)
{
	t_fill(m->page, (uint64_t)n << 32 ^ mod_lsn);
}

static pc_lsn rm_random_lsn(struct rm *m)
{
	if (t_below(&m->rng, 2) == 0)
		return m->last_lsn;
	return 1 + t_below(&m->rng, m->last_lsn);
}

static void rm_insert(struct rm *m, uint32_t n, pc_lsn mod_lsn, pc_lsn known_lsn)
{
	struct rm_key *key = &m->keys[n];
	struct pc_key k = rm_key_of(n);

	rm_fill(m, n, mod_lsn);
	pc_insert(m->pc, &k, mod_lsn, known_lsn, m->page);
	if (!key->inserted || known_lsn > key->known_max) {
		/* Newer than anything since the drop: the entry is [mod, known] now,
		 * whether it was new, replaced or widened. */
		assert_true(t_hit_equals(m->pc, &k, known_lsn, m->page));
		assert_true(t_hit_equals(m->pc, &k, mod_lsn, m->page));
		assert_true(t_hit_equals(m->pc, &k, (mod_lsn + known_lsn) / 2, m->page));
		key->known_max = known_lsn;
	}
	key->inserted = true;
}

/* A read as the page service does it: any hit must be the true page. */
static void rm_read(struct rm *m, uint32_t n)
{
	pc_lsn lsn = rm_random_lsn(m);
	pc_lsn mod_lsn = rm_version_at(m, n, lsn, NULL);
	struct pc_key k = rm_key_of(n);

	if (pc_lookup(m->pc, &k, lsn, m->out)) {
		assert_true(m->keys[n].inserted);
		rm_fill(m, n, mod_lsn);
		assert_memory_equal(m->out, m->page, PC_PAGE_BYTES);
		return;
	}
	rm_insert(m, n, mod_lsn, lsn);
}

static void rm_new_version(struct rm *m, uint32_t n)
{
	struct rm_key *key = &m->keys[n];
	m->last_lsn++; /* WAL moves on even when this key is full */
	if (key->versions_count < RM_VERSIONS_MAX)
		key->versions[key->versions_count++] = m->last_lsn;
}

static void rm_drop(struct rm *m, uint32_t space)
{
	pc_drop_space(m->pc, space);
	for (uint32_t i = 0; i < RM_KEYS_PER_SPACE; i++) {
		struct rm_key *key = &m->keys[space * RM_KEYS_PER_SPACE + i];
		struct pc_key k = rm_key_of(space * RM_KEYS_PER_SPACE + i);
		key->inserted = false;
		key->known_max = 0;
		assert_true(t_miss(m->pc, &k, m->last_lsn));
	}
}

static void rm_step(struct rm *m)
{
	uint64_t r = t_below(&m->rng, 1000);
	uint32_t n = (uint32_t)t_below(&m->rng, RM_KEYS);

	if (r < 550) {
		rm_read(m, n);
	} else if (r < 800) {
		rm_new_version(m, n);
	} else if (r < 980) {
		/* A read whose range the caller knows extends to just below the next
		 * version (or last_lsn): inserted with a wider known_lsn. */
		pc_lsn stable_to;
		pc_lsn lsn = rm_random_lsn(m);
		pc_lsn mod_lsn = rm_version_at(m, n, lsn, &stable_to);
		rm_insert(m, n, mod_lsn, lsn + t_below(&m->rng, stable_to - lsn + 1));
	} else if (r < 996) {
		struct pc_key k = rm_key_of(n);
		assert_true(t_miss(m->pc, &k, 0)); /* below every version */
	} else {
		rm_drop(m, (uint32_t)t_below(&m->rng, RM_SPACES));
	}
}

static void test_random_model(void **state)
{
	static struct rm m;
	(void)state;

	memset(&m, 0, sizeof(m));
	m.rng = 20240601;
	m.last_lsn = 1;
	for (uint32_t n = 0; n < RM_KEYS; n++) {
		m.keys[n].versions[0] = 1;
		m.keys[n].versions_count = 1;
	}
	assert_int_equal(pc_create(RM_PAGES * PC_PAGE_BYTES, -1, &m.pc), 0);
	for (int op = 0; op < RM_OPS; op++) {
		rm_step(&m);
		if (op % 128 == 0) {
			struct pc_stats s = t_stats(m.pc);
			assert_int_equal(pc_check(m.pc), 0);
			assert_true(s.entries <= RM_PAGES);
			assert_int_equal(s.bytes, s.entries * PC_PAGE_BYTES);
		}
	}
	assert_int_equal(pc_check(m.pc), 0);
	struct pc_stats s = t_stats(m.pc);
	printf("random model: %d ops, last lsn %llu: hits %llu misses %llu inserts %llu "
	       "evictions %llu ghost hits %llu promotions %llu entries %llu\n",
	       RM_OPS, (unsigned long long)m.last_lsn, (unsigned long long)s.hits,
	       (unsigned long long)s.misses, (unsigned long long)s.inserts,
	       (unsigned long long)s.evictions, (unsigned long long)s.ghost_hits,
	       (unsigned long long)s.promotions, (unsigned long long)s.entries);
	/* Every policy path ran. */
	assert_true(s.hits > 0);
	assert_true(s.evictions > 0);
	assert_true(s.ghost_hits > 0);
	assert_true(s.promotions > 0);
	pc_destroy(m.pc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_bounds),
		cmocka_unit_test(test_lsn_rule),
		cmocka_unit_test(test_spaces_and_drop),
		cmocka_unit_test(test_s3fifo_small_queue),
		cmocka_unit_test(test_s3fifo_main_queue),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_scan_resistance),
		cmocka_unit_test(test_scan_resistance_interleaved),
		cmocka_unit_test(test_random_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
