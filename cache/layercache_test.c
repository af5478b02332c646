/*
 * layercache_test.c - The layer-block cache partition and its views: bounds,
 * byte-exact round trips of every size, entries too large, drop_file / clear /
 * view destroy, each S3-FIFO move counted, scan resistance (hot set vs. a
 * one-time scan of 10x the capacity), a randomized run of 200,000 operations
 * on three views against a reference map with lc_check every 1000 operations,
 * and the counters adding up.
 */
#include "cache/layercache.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define KIB 1024u
#define MIB (1024u * 1024)
#define T_BUFFER_BYTES (256 * KIB)

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

static uint64_t t_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
	return lo + t_below(state, hi - lo + 1);
}

/* The content of one version of one key: every 8-byte word differs from the
 * same word of any other seed. */
static uint64_t t_seed(uint32_t space, uint64_t file_id, uint64_t offset, uint64_t version)
{
	return t_mix(t_mix(t_mix(t_mix(space) ^ file_id) ^ offset) ^ version);
}

static void t_fill(uint8_t *buf, uint32_t len, uint64_t seed)
{
	uint64_t base = t_mix(seed);
	uint32_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w = base + i * 0x2545f4914f6cdd1dull;
		memcpy(buf + i, &w, 8);
	}
	uint64_t w = base + i * 0x2545f4914f6cdd1dull;
	memcpy(buf + i, &w, len - i);
}

static bool t_same(const uint8_t *buf, uint32_t len, uint64_t seed)
{
	uint64_t base = t_mix(seed);
	uint32_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w = base + i * 0x2545f4914f6cdd1dull;
		if (memcmp(buf + i, &w, 8) != 0)
			return false;
	}
	uint64_t w = base + i * 0x2545f4914f6cdd1dull;
	return memcmp(buf + i, &w, len - i) == 0;
}

static void t_put(struct ar_blockcache *v, uint64_t file_id, uint64_t offset, uint32_t len,
		  uint64_t seed)
{
	static uint8_t buf[T_BUFFER_BYTES];

	assert_true(len <= T_BUFFER_BYTES);
	t_fill(buf, len, seed);
	assert_int_equal(ar_blockcache_put(v, file_id, offset, buf, len), 0);
}

/* True on a hit, which must hold exactly len bytes of seed's content. */
static bool t_hit(struct ar_blockcache *v, uint64_t file_id, uint64_t offset, uint32_t len,
		  uint64_t seed)
{
	uint32_t got = UINT32_MAX;
	const uint8_t *p = ar_blockcache_get(v, file_id, offset, &got);

	if (!p)
		return false;
	assert_int_equal(got, len);
	assert_int_equal((uintptr_t)p % 16, 0);
	assert_true(t_same(p, len, seed));
	return true;
}

static bool t_miss(struct ar_blockcache *v, uint64_t file_id, uint64_t offset)
{
	uint32_t got;
	return ar_blockcache_get(v, file_id, offset, &got) == NULL;
}

static struct lc_stats t_stats(const struct ar_layercache *lc)
{
	struct lc_stats s;
	lc_stats_read(lc, &s);
	return s;
}

static struct ar_blockcache_stats t_view_stats(const struct ar_blockcache *v)
{
	struct ar_blockcache_stats s;
	ar_blockcache_stats_read(v, &s);
	return s;
}

/* ---- bounds and round trips ---- */

static void test_create_bounds(void **state)
{
	struct ar_layercache *lc = NULL;
	struct ar_blockcache *v, *w = NULL;
	(void)state;

	assert_int_equal(lc_create(0, -1, &lc), -22);
	assert_int_equal(lc_create(LC_CAPACITY_BYTES_MIN - 1, -1, &lc), -22);
	assert_int_equal(lc_create(LC_CAPACITY_BYTES_MAX + 1, -1, &lc), -22);
	assert_null(lc);
	assert_int_equal(lc_create(LC_CAPACITY_BYTES_MIN + 7, -1, &lc), 0);
	struct lc_stats s = t_stats(lc);
	assert_int_equal(s.capacity_bytes, LC_CAPACITY_BYTES_MIN);
	/* A quarter of S (a tenth of the capacity) less the 48-byte header. */
	assert_int_equal(s.entry_bytes_max,
			 ((LC_CAPACITY_BYTES_MIN / 10 & ~15ull) / 4 & ~15ull) - 48);
	assert_int_equal(s.entries, 0);
	assert_int_equal(lc_check(lc), 0);
	assert_int_equal(lc_view_create(lc, 1, &v), 0);
	assert_int_equal(lc_view_create(lc, 1, &w), -17); /* -EEXIST: a live view has it */
	assert_null(w);
	assert_int_equal(lc_check(lc), 0);
	ar_blockcache_destroy(v);
	lc_destroy(lc);
	assert_int_equal(lc_create(4 * MIB, 0, &lc), 0); /* node 0: bound */
	assert_int_equal(t_stats(lc).capacity_bytes, 4 * MIB);
	assert_true(t_stats(lc).entry_bytes_max >= 80 * KIB);
	lc_destroy(lc);
	lc_destroy(NULL);
}

/* Random sizes from 0 to 80 KiB, read right after the put and once more after a
 * batch: every hit is byte-exact, 16-byte aligned, of the put's length. */
static void test_round_trip(void **state)
{
	enum { ROUNDS = 2000 };
	static uint32_t lens[ROUNDS];
	struct ar_layercache *lc;
	struct ar_blockcache *v;
	uint64_t rng = 7, hits = 0;
	(void)state;

	assert_int_equal(lc_create(16 * MIB, -1, &lc), 0);
	assert_int_equal(lc_view_create(lc, 3, &v), 0);
	for (uint32_t i = 0; i < ROUNDS; i++) {
		uint64_t r = t_below(&rng, 20);
		lens[i] =
		    r == 0 ? (uint32_t)t_below(&rng, 600) : (uint32_t)t_range(&rng, 512, 80 * KIB);
		t_put(v, 1 + i % 5, (uint64_t)i * 4096, lens[i], t_seed(3, 1 + i % 5, i, 0));
		assert_true(
		    t_hit(v, 1 + i % 5, (uint64_t)i * 4096, lens[i], t_seed(3, 1 + i % 5, i, 0)));
	}
	for (uint32_t i = 0; i < ROUNDS; i++)
		hits +=
		    t_hit(v, 1 + i % 5, (uint64_t)i * 4096, lens[i], t_seed(3, 1 + i % 5, i, 0));
	struct lc_stats s = t_stats(lc);
	printf("round trip: %d puts of 0..80 KiB into 16 MiB: %llu of them still cached, "
	       "%llu bytes, %llu evictions, %llu promotions\n",
	       ROUNDS, (unsigned long long)hits, (unsigned long long)s.bytes,
	       (unsigned long long)s.evictions, (unsigned long long)s.promotions);
	assert_true(hits > 0);
	assert_int_equal(s.inserts, ROUNDS);
	assert_int_equal(lc_check(lc), 0);
	ar_blockcache_destroy(v);
	lc_destroy(lc);
}

static void test_too_large(void **state)
{
	struct ar_layercache *lc;
	struct ar_blockcache *v;
	(void)state;

	assert_int_equal(lc_create(LC_CAPACITY_BYTES_MIN, -1, &lc), 0);
	assert_int_equal(lc_view_create(lc, 9, &v), 0);
	uint32_t max = (uint32_t)t_stats(lc).entry_bytes_max;
	t_put(v, 1, 0, max, 11);
	assert_true(t_hit(v, 1, 0, max, 11));
	t_put(v, 1, 4096, max + 1, 12);
	assert_true(t_miss(v, 1, 4096));
	assert_int_equal(t_stats(lc).too_large, 1);
	/* A too-large new version still forgets the old one: never stale. */
	t_put(v, 1, 0, max + 1, 13);
	assert_true(t_miss(v, 1, 0));
	struct lc_stats s = t_stats(lc);
	assert_int_equal(s.too_large, 2);
	assert_int_equal(s.entries, 0);
	assert_int_equal(s.removals, 1);
	assert_int_equal(lc_check(lc), 0);
	ar_blockcache_destroy(v);
	lc_destroy(lc);
}

/* ---- views: drop_file, clear, destroy ---- */

static void t_put_grid(struct ar_blockcache *v, uint32_t space)
{
	for (uint64_t f = 1; f <= 2; f++) {
		for (uint64_t o = 0; o < 4; o++)
			t_put(v, f, o * 8192, 4000, t_seed(space, f, o, 0));
	}
}

static int t_hits_in_file(struct ar_blockcache *v, uint32_t space, uint64_t f)
{
	int hits = 0;
	for (uint64_t o = 0; o < 4; o++)
		hits += t_hit(v, f, o * 8192, 4000, t_seed(space, f, o, 0));
	return hits;
}

static void test_drop_file_and_views(void **state)
{
	struct ar_layercache *lc;
	struct ar_blockcache *a, *b;
	(void)state;

	assert_int_equal(lc_create(4 * MIB, -1, &lc), 0);
	assert_int_equal(lc_view_create(lc, 1, &a), 0);
	assert_int_equal(lc_view_create(lc, 2, &b), 0);
	/* The same (file id, offset) in two views: two entries, no collision. */
	t_put_grid(a, 1);
	t_put_grid(b, 2);
	assert_int_equal(t_stats(lc).entries, 16);
	assert_int_equal(t_hits_in_file(a, 1, 1) + t_hits_in_file(b, 2, 1), 8);
	ar_blockcache_drop_file(a, 1);
	assert_int_equal(lc_check(lc), 0);
	for (uint64_t o = 0; o < 4; o++)
		assert_true(t_miss(a, 1, o * 8192));
	assert_int_equal(t_hits_in_file(a, 1, 2), 4);
	assert_int_equal(t_hits_in_file(b, 2, 1), 4);
	assert_int_equal(t_stats(lc).removals, 4);
	/* clear: this view's space only. */
	ar_blockcache_clear(a);
	assert_int_equal(lc_check(lc), 0);
	assert_int_equal(t_hits_in_file(a, 1, 2), 0);
	assert_int_equal(t_hits_in_file(b, 2, 1) + t_hits_in_file(b, 2, 2), 8);
	/* Destroying b forgets its entries: a new view given b's space finds none. */
	ar_blockcache_destroy(b);
	assert_int_equal(t_stats(lc).entries, 0);
	assert_int_equal(lc_check(lc), 0);
	assert_int_equal(lc_view_create(lc, 2, &b), 0);
	assert_int_equal(t_hits_in_file(b, 2, 1) + t_hits_in_file(b, 2, 2), 0);
	/* A re-put replaces: only the newest bytes answer. */
	t_put(a, 5, 0, 3000, 100);
	t_put(a, 5, 0, 7000, 101);
	assert_true(t_hit(a, 5, 0, 7000, 101));
	assert_int_equal(t_stats(lc).entries, 1);
	assert_int_equal(lc_check(lc), 0);
	ar_blockcache_destroy(a);
	ar_blockcache_destroy(b);
	lc_destroy(lc);
}

/* ---- S3-FIFO's moves, counted ---- */

/* Capacity 4 MiB: S = 419,424 bytes holds 12 entries of 32 KiB (32,816 bytes
 * each with the header), M = 3,774,880 bytes holds 115, and the ghost queue
 * remembers M's bytes: the last 115 of them evicted from S. */
enum { MOVE_BLOCK = 32 * KIB, MOVE_S = 12, MOVE_M = 115 };

static void t_put_n(struct ar_blockcache *v, uint64_t n)
{
	t_put(v, 1, n * MOVE_BLOCK, MOVE_BLOCK, t_seed(0, 1, n, 0));
}

static bool t_hit_n(struct ar_blockcache *v, uint64_t n)
{
	return t_hit(v, 1, n * MOVE_BLOCK, MOVE_BLOCK, t_seed(0, 1, n, 0));
}

static void test_s3fifo_small_queue(void **state)
{
	struct ar_layercache *lc;
	struct ar_blockcache *v;
	(void)state;

	assert_int_equal(lc_create(4 * MIB, -1, &lc), 0);
	assert_int_equal(lc_view_create(lc, 0, &v), 0);
	for (uint64_t n = 0; n < MOVE_S; n++)
		t_put_n(v, n);
	assert_int_equal(t_stats(lc).evictions, 0);
	assert_true(t_hit_n(v, 1));
	t_put_n(v, 12); /* S's tail, 0, was never hit: evicted into G */
	assert_int_equal(t_stats(lc).evictions, 1);
	assert_false(t_hit_n(v, 0));
	t_put_n(v, 13); /* S's tail, 1, was hit: to M, which frees room enough */
	struct lc_stats s = t_stats(lc);
	assert_int_equal(s.promotions, 1);
	assert_int_equal(s.evictions, 1);
	assert_int_equal(s.entries, 13);
	assert_true(t_hit_n(v, 1));
	t_put_n(v, 14); /* S's tail, 2, was never hit: into G */
	assert_int_equal(t_stats(lc).evictions, 2);
	assert_false(t_hit_n(v, 2));
	t_put_n(v, 0); /* in G: admitted straight to M, S untouched */
	s = t_stats(lc);
	assert_int_equal(s.ghost_hits, 1);
	assert_int_equal(s.evictions, 2);
	assert_int_equal(s.entries, 14);
	for (uint64_t n = 3; n <= 14; n++)
		assert_true(t_hit_n(v, n));
	assert_true(t_hit_n(v, 0));
	assert_int_equal(lc_check(lc), 0);
	ar_blockcache_destroy(v);
	lc_destroy(lc);
}

static void test_s3fifo_main_queue(void **state)
{
	struct ar_layercache *lc;
	struct ar_blockcache *v;
	(void)state;

	assert_int_equal(lc_create(4 * MIB, -1, &lc), 0);
	assert_int_equal(lc_view_create(lc, 0, &v), 0);
	for (uint64_t n = 0; n < MOVE_M + MOVE_S; n++)
		t_put_n(v, n); /* 0..114 go through S into G; 115..126 stay in S */
	for (uint64_t n = 0; n < MOVE_M; n++)
		t_put_n(v, n); /* all ghost hits: M is full */
	struct lc_stats s = t_stats(lc);
	assert_int_equal(s.evictions, MOVE_M);
	assert_int_equal(s.ghost_hits, MOVE_M);
	assert_int_equal(s.entries, MOVE_M + MOVE_S);
	for (uint64_t n = 0; n < 10; n++)
		assert_true(t_hit_n(v, n)); /* M's ten oldest get frequency 1 */
	t_put_n(v, 200);                    /* S's tail, 115, into G */
	t_put_n(v, 115);                    /* a ghost hit: M must make room */
	s = t_stats(lc);
	/* M's tail 0..9 are reinserted with frequency 0, then 10 is evicted. */
	assert_int_equal(s.reinserts, 10);
	assert_int_equal(s.evictions, MOVE_M + 2);
	assert_int_equal(s.ghost_hits, MOVE_M + 1);
	for (uint64_t n = 0; n < 10; n++)
		assert_true(t_hit_n(v, n));
	assert_false(t_hit_n(v, 10));
	for (uint64_t n = 11; n <= MOVE_M; n++)
		assert_true(t_hit_n(v, n));
	/* Now all of M (11..114, 0..9, 115 from tail to head) has frequency 1.  One
	 * put reinserts at most 1 MiB: 32 entries (11..42), then evicts 43 anyway. */
	t_put_n(v, 201); /* S's tail, 116, into G */
	t_put_n(v, 116); /* a ghost hit: M must make room */
	s = t_stats(lc);
	assert_int_equal(s.reinserts, 10 + 32);
	assert_int_equal(s.evictions, MOVE_M + 4);
	assert_true(t_hit_n(v, 42));
	assert_false(t_hit_n(v, 43));
	assert_true(t_hit_n(v, 44));
	assert_true(t_hit_n(v, 116));
	assert_int_equal(lc_check(lc), 0);
	ar_blockcache_destroy(v);
	lc_destroy(lc);
}

/* Capacity 256 KiB: S holds 6 entries of 4 KiB (4,144 bytes with the header),
 * M holds 56; far below the reinsertion budget of one put. */
enum { FREQ_BLOCK = 4 * KIB, FREQ_S = 6, FREQ_M = 56 };

static void t_put_small(struct ar_blockcache *v, uint64_t n)
{
	t_put(v, 2, n * FREQ_BLOCK, FREQ_BLOCK, t_seed(0, 2, n, 0));
}

static bool t_hit_small(struct ar_blockcache *v, uint64_t n)
{
	return t_hit(v, 2, n * FREQ_BLOCK, FREQ_BLOCK, t_seed(0, 2, n, 0));
}

/* The frequency saturates at 3 and each reinsertion spends one: an entry hit
 * four times survives exactly three rotations of M, then is evicted. */
static void test_s3fifo_frequency(void **state)
{
	struct ar_layercache *lc;
	struct ar_blockcache *v;
	(void)state;

	assert_int_equal(lc_create(LC_CAPACITY_BYTES_MIN, -1, &lc), 0);
	assert_int_equal(lc_view_create(lc, 0, &v), 0);
	for (uint64_t n = 0; n < FREQ_M + FREQ_S; n++)
		t_put_small(v, n);
	for (uint64_t n = 0; n < FREQ_M; n++)
		t_put_small(v, n); /* ghost hits: M = 0..55, S = 56..61 */
	assert_int_equal(t_stats(lc).ghost_hits, FREQ_M);
	for (int i = 0; i < 4; i++)
		assert_true(t_hit_small(v, 0));
	/* Each round: a new key pushes S's tail into G, and that key comes back as a
	 * ghost hit, so M admits one entry and must evict one.  Key 0 is reinserted
	 * at rounds 1, 56 and 111 and evicted at round 166. */
	for (uint64_t i = 0; i < 3 * (FREQ_M - 1) + 1; i++) {
		uint64_t evicted = i < FREQ_S ? FREQ_M + i : 1000 + i - FREQ_S;
		t_put_small(v, 1000 + i);
		t_put_small(v, evicted);
		assert_int_equal(t_stats(lc).reinserts, i < 55 ? 1 : i < 110 ? 2 : 3);
	}
	struct lc_stats s = t_stats(lc);
	assert_int_equal(s.ghost_hits, FREQ_M + 166);
	assert_int_equal(s.promotions, 0);
	assert_false(t_hit_small(v, 0));
	assert_int_equal(lc_check(lc), 0);
	ar_blockcache_destroy(v);
	lc_destroy(lc);
}

/* ---- scan resistance ---- */

/* Capacity 4 MiB, a hot set of 2 MiB in 32 KiB blocks, a scan of 40 MiB. */
enum { SCAN_HOT = 64, SCAN_BLOCKS = 1280, SCAN_BASE = 1000000 };

/* What a layer reader does: look up, and on a miss read and put. */
static bool t_read_through(struct ar_blockcache *v, uint64_t n)
{
	if (t_hit_n(v, n))
		return true;
	t_put_n(v, n);
	return false;
}

static void t_warm_hot_set(struct ar_blockcache *v)
{
	for (int pass = 0; pass < 3; pass++) {
		for (uint64_t n = 0; n < SCAN_HOT; n++)
			(void)t_read_through(v, n);
	}
}

static double t_hot_pass(struct ar_blockcache *v)
{
	uint64_t hits = 0;
	for (uint64_t n = 0; n < SCAN_HOT; n++)
		hits += t_read_through(v, n);
	return (double)hits / SCAN_HOT;
}

static void test_scan_resistance(void **state)
{
	struct ar_layercache *lc;
	struct ar_blockcache *v;
	(void)state;

	assert_int_equal(lc_create(4 * MIB, -1, &lc), 0);
	assert_int_equal(lc_view_create(lc, 0, &v), 0);
	t_warm_hot_set(v);
	for (uint64_t i = 0; i < SCAN_BLOCKS; i++)
		assert_false(t_read_through(v, SCAN_BASE + i));
	double rate = t_hot_pass(v);
	struct lc_stats s = t_stats(lc);
	printf("scan resistance: capacity 4 MiB, hot set 2 MiB (%d blocks of 32 KiB), scan "
	       "40 MiB (%d blocks): hot hit rate %.1f%% (evictions %llu, promotions %llu)\n",
	       SCAN_HOT, SCAN_BLOCKS, 100.0 * rate, (unsigned long long)s.evictions,
	       (unsigned long long)s.promotions);
	assert_true(rate >= 0.90);
	assert_int_equal(lc_check(lc), 0);
	ar_blockcache_destroy(v);
	lc_destroy(lc);
}

static void test_scan_resistance_interleaved(void **state)
{
	struct ar_layercache *lc;
	struct ar_blockcache *v;
	uint64_t hot_reads = 0, hot_hits = 0, hot = 0;
	(void)state;

	assert_int_equal(lc_create(4 * MIB, -1, &lc), 0);
	assert_int_equal(lc_view_create(lc, 0, &v), 0);
	t_warm_hot_set(v);
	for (uint64_t i = 0; i < SCAN_BLOCKS; i++) {
		assert_false(t_read_through(v, SCAN_BASE + i));
		if (i % 4 == 3) {
			hot_hits += t_read_through(v, hot);
			hot_reads++;
			hot = (hot + 1) % SCAN_HOT;
		}
	}
	double rate = (double)hot_hits / (double)hot_reads;
	double after = t_hot_pass(v);
	printf("scan resistance, interleaved (1 hot read per 4 scan reads): hot hit rate "
	       "%.1f%% during the scan (%llu reads), %.1f%% after\n",
	       100.0 * rate, (unsigned long long)hot_reads, 100.0 * after);
	assert_true(rate >= 0.90);
	assert_true(after >= 0.90);
	assert_int_equal(lc_check(lc), 0);
	ar_blockcache_destroy(v);
	lc_destroy(lc);
}

/* ---- the model: random operations against a reference map ---- */

enum { M_VIEWS = 3, M_FILES = 6, M_OFFSETS = 40, M_OPS = 200000, M_CHECK_EVERY = 1000 };

/* The reference: each key's latest put (version 0: none cached may answer). */
struct m_key {
	uint32_t version;
	uint32_t len;
};

struct m_state {
	struct ar_layercache *lc;
	struct ar_blockcache *views[M_VIEWS];
	uint32_t spaces[M_VIEWS];
	uint32_t next_space;
	struct m_key keys[M_VIEWS][M_FILES][M_OFFSETS];
	uint64_t rng;
	uint64_t hits, gets, drops, clears, recreated;
};

static uint32_t m_len(uint64_t *rng)
{
	uint64_t r = t_below(rng, 100);
	if (r < 5)
		return (uint32_t)t_below(rng, 600); /* padded to the smallest slot */
	if (r < 6)
		return (uint32_t)t_range(rng, 100 * KIB, 120 * KIB); /* too large */
	return (uint32_t)t_range(rng, 512, 80 * KIB);
}

static void m_forget(struct m_state *m, int v, bool one_file, uint64_t f)
{
	for (uint64_t i = 0; i < M_FILES; i++) {
		for (uint64_t o = 0; o < M_OFFSETS; o++) {
			if (!one_file || i == f)
				m->keys[v][i][o].version = 0;
		}
	}
}

/* One get: a hit must be the latest put of that key in that view. */
static void m_get(struct m_state *m, int v, uint64_t f, uint64_t o)
{
	const struct m_key *k = &m->keys[v][f][o];
	uint32_t got;
	const uint8_t *p = ar_blockcache_get(m->views[v], f + 1, o * 65536, &got);

	m->gets++;
	if (!p)
		return;
	m->hits++;
	assert_int_not_equal(k->version, 0);
	assert_int_equal(got, k->len);
	assert_true(t_same(p, got, t_seed(m->spaces[v], f + 1, o, k->version)));
}

static void m_put(struct m_state *m, int v, uint64_t f, uint64_t o)
{
	struct m_key *k = &m->keys[v][f][o];
	uint32_t len = m_len(&m->rng);
	struct lc_stats before = t_stats(m->lc);

	k->version++;
	k->len = len;
	t_put(m->views[v], f + 1, o * 65536, len, t_seed(m->spaces[v], f + 1, o, k->version));
	if (t_stats(m->lc).too_large != before.too_large) {
		assert_true(len > before.entry_bytes_max);
		k->version = 0;
	}
}

static void m_step(struct m_state *m)
{
	int v = (int)t_below(&m->rng, M_VIEWS);
	/* Most operations touch a hot eighth of the keys, so some get hits. */
	bool hot = t_below(&m->rng, 100) < 70;
	uint64_t f = t_below(&m->rng, hot ? 2 : M_FILES);
	uint64_t o = t_below(&m->rng, hot ? M_OFFSETS / 4 : M_OFFSETS);
	uint64_t r = t_below(&m->rng, 10000);

	if (r < 4800) {
		m_get(m, v, f, o);
	} else if (r < 9900) {
		m_put(m, v, f, o);
	} else if (r < 9990) {
		ar_blockcache_drop_file(m->views[v], f + 1);
		m_forget(m, v, true, f);
		m->drops++;
	} else if (r < 9997) {
		ar_blockcache_clear(m->views[v]);
		m_forget(m, v, false, 0);
		m->clears++;
	} else {
		/* A store closed and another opened: a fresh view, a fresh space. */
		ar_blockcache_destroy(m->views[v]);
		m->spaces[v] = m->next_space++;
		assert_int_equal(lc_view_create(m->lc, m->spaces[v], &m->views[v]), 0);
		m_forget(m, v, false, 0);
		m->recreated++;
	}
}

static void test_random_model(void **state)
{
	static struct m_state m;
	(void)state;

	memset(&m, 0, sizeof(m));
	m.rng = 2024;
	m.next_space = 100;
	assert_int_equal(lc_create(4 * MIB, -1, &m.lc), 0);
	for (int v = 0; v < M_VIEWS; v++) {
		m.spaces[v] = m.next_space++;
		assert_int_equal(lc_view_create(m.lc, m.spaces[v], &m.views[v]), 0);
	}
	for (int i = 1; i <= M_OPS; i++) {
		m_step(&m);
		if (i % M_CHECK_EVERY == 0)
			assert_int_equal(lc_check(m.lc), 0);
	}
	struct lc_stats s = t_stats(m.lc);
	printf("random model: %d ops on %d views: gets %llu (hits %llu), inserts %llu, "
	       "evictions %llu, ghost hits %llu, promotions %llu, reinserts %llu, too large %llu, "
	       "removals %llu; %llu drop_file, %llu clear, %llu views recreated\n",
	       M_OPS, M_VIEWS, (unsigned long long)m.gets, (unsigned long long)m.hits,
	       (unsigned long long)s.inserts, (unsigned long long)s.evictions,
	       (unsigned long long)s.ghost_hits, (unsigned long long)s.promotions,
	       (unsigned long long)s.reinserts, (unsigned long long)s.too_large,
	       (unsigned long long)s.removals, (unsigned long long)m.drops,
	       (unsigned long long)m.clears, (unsigned long long)m.recreated);
	assert_true(m.hits > m.gets / 10);
	assert_true(s.evictions > 0 && s.ghost_hits > 0 && s.promotions > 0 && s.reinserts > 0);
	assert_true(m.drops > 0 && m.clears > 0 && m.recreated > 0 && s.too_large > 0);
	for (int v = 0; v < M_VIEWS; v++)
		ar_blockcache_destroy(m.views[v]);
	assert_int_equal(t_stats(m.lc).entries, 0);
	assert_int_equal(lc_check(m.lc), 0);
	lc_destroy(m.lc);
}

/* ---- the counters add up ---- */

static void t_check_counters(const struct ar_layercache *lc, struct ar_blockcache *const *views,
			     int view_count, uint64_t gets)
{
	struct lc_stats s = t_stats(lc);
	uint64_t hits = 0, misses = 0;

	for (int v = 0; v < view_count; v++) {
		struct ar_blockcache_stats vs = t_view_stats(views[v]);
		hits += vs.hits;
		misses += vs.misses;
		assert_int_equal(vs.evictions, s.evictions);
		assert_int_equal(vs.bytes, s.bytes);
	}
	assert_int_equal(hits, s.hits);
	assert_int_equal(misses, s.misses);
	assert_int_equal(s.hits + s.misses, gets);
	assert_int_equal(s.entries, s.inserts - s.evictions - s.removals);
	assert_true(s.bytes <= s.capacity_bytes);
	assert_true(s.ghost_hits <= s.inserts);
}

static void test_stats_add_up(void **state)
{
	struct ar_layercache *lc;
	struct ar_blockcache *views[2];
	uint64_t rng = 99, gets = 0, puts = 0;
	(void)state;

	assert_int_equal(lc_create(2 * MIB, -1, &lc), 0);
	assert_int_equal(lc_view_create(lc, 1, &views[0]), 0);
	assert_int_equal(lc_view_create(lc, 2, &views[1]), 0);
	for (int i = 0; i < 20000; i++) {
		struct ar_blockcache *v = views[t_below(&rng, 2)];
		uint64_t f = 1 + t_below(&rng, 4), o = t_below(&rng, 64) * 4096;
		uint64_t r = t_below(&rng, 1000);
		uint32_t len;
		if (r < 500) {
			(void)ar_blockcache_get(v, f, o, &len);
			gets++;
		} else if (r < 995) {
			t_put(v, f, o, (uint32_t)t_range(&rng, 0, 64 * KIB), 1);
			puts++;
		} else {
			ar_blockcache_drop_file(v, f);
		}
		t_check_counters(lc, views, 2, gets);
	}
	struct lc_stats s = t_stats(lc);
	assert_int_equal(s.inserts + s.too_large, puts);
	assert_true(s.evictions > 0 && s.removals > 0);
	assert_int_equal(lc_check(lc), 0);
	ar_blockcache_destroy(views[0]);
	ar_blockcache_destroy(views[1]);
	lc_destroy(lc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_bounds),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_drop_file_and_views),
		cmocka_unit_test(test_s3fifo_small_queue),
		cmocka_unit_test(test_s3fifo_main_queue),
		cmocka_unit_test(test_s3fifo_frequency),
		cmocka_unit_test(test_scan_resistance),
		cmocka_unit_test(test_scan_resistance_interleaved),
		cmocka_unit_test(test_random_model),
		cmocka_unit_test(test_stats_add_up),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
