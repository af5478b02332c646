/*
 * key_test.c - Keys: encoding round trips, byte order equals ar_key_cmp, the
 * layout of each key kind, hex names, ranges; and the key-to-shard function
 * against the example values of Neon's own tests (shard.rs: murmur_hash and
 * shard_mapping).
 */
#include "engine/key.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static struct ar_key random_key(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	uint64_t a = *s;
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	uint64_t b = *s;
	/* Few distinct values per field, so ties in the leading fields are common. */
	return (struct ar_key){ .f1 = (uint8_t)(a & 3),
				.f2 = (uint32_t)(a >> 8) & 7,
				.f3 = (uint32_t)(a >> 16) & 0xFFFFFFFF,
				.f4 = (uint32_t)(b & 3),
				.f5 = (uint8_t)(b >> 8) & 3,
				.f6 = (uint32_t)(b >> 32) };
}

static void test_encoding_order_matches_cmp(void **state)
{
	uint64_t s = 42;
	(void)state;

	for (int i = 0; i < 100000; i++) {
		struct ar_key a = random_key(&s), b = random_key(&s), back;
		uint8_t ea[AR_KEY_BYTES], eb[AR_KEY_BYTES];
		ar_key_encode(&a, ea);
		ar_key_encode(&b, eb);
		ar_key_decode(ea, &back);
		assert_int_equal(ar_key_cmp(&a, &back), 0);
		int m = memcmp(ea, eb, AR_KEY_BYTES);
		int c = ar_key_cmp(&a, &b);
		assert_true((m < 0 && c < 0) || (m == 0 && c == 0) || (m > 0 && c > 0));
	}
}

static void test_layout(void **state)
{
	struct ar_rel rel = {
		.spc_oid = 1663, .db_oid = 5, .rel_number = 16384, .fork = AR_FORK_MAIN
	};
	uint8_t e[AR_KEY_BYTES];
	char hex[AR_KEY_HEX_BYTES];
	(void)state;

	struct ar_key k = ar_key_rel_block(rel, 7);
	ar_key_encode(&k, e);
	const uint8_t expect[AR_KEY_BYTES] = { 0, 0, 0,    0x06, 0x7f, 0, 0, 0, 5,
					       0, 0, 0x40, 0x00, 0,    0, 0, 0, 7 };
	assert_memory_equal(e, expect, AR_KEY_BYTES);
	ar_key_hex(&k, hex);
	assert_string_equal(hex, "000000067f00000005000040000000000007");
	struct ar_key back;
	assert_true(ar_key_from_hex(hex, &back));
	assert_int_equal(ar_key_cmp(&k, &back), 0);
	assert_false(ar_key_from_hex("00", &back));
	assert_false(ar_key_from_hex("zz0000067f00000005000040000000000007", &back));
	assert_false(ar_key_from_hex("000000067f000000050000400000000000070", &back));

	/* The size key sorts right after every block of its relation. */
	struct ar_key size = ar_key_rel_size(rel);
	struct ar_key last = ar_key_rel_block(rel, 0xFFFFFFFE);
	assert_true(ar_key_cmp(&last, &size) < 0);
	assert_true(ar_key_is_rel_block(&k));
	assert_false(ar_key_is_rel_block(&size));
	assert_true(ar_key_is_rel_size(&size));
	struct ar_key relmap = ar_key_relmap(1663, 5);
	struct ar_key reldir = ar_key_rel_dir(1663, 5);
	assert_false(ar_key_is_rel_block(&relmap));
	assert_false(ar_key_is_rel_block(&reldir));
	assert_true(ar_key_cmp(&relmap, &reldir) < 0);
	assert_true(ar_key_cmp(&reldir, &k) < 0);
	struct ar_key slru = ar_key_slru_block(AR_SLRU_CLOG, 2, 3);
	assert_int_equal(slru.f1, 1);
	assert_true(ar_key_cmp(&k, &slru) < 0);
	struct ar_key cp = ar_key_checkpoint();
	struct ar_key cf = ar_key_control_file();
	assert_true(ar_key_cmp(&cf, &cp) < 0);
	struct ar_key max = ar_key_max();
	assert_true(ar_key_cmp(&cp, &max) < 0);
}

static void test_next_and_ranges(void **state)
{
	struct ar_key a = { .f6 = 0xFFFFFFFF }, n = ar_key_next(&a);
	(void)state;

	assert_int_equal(n.f5, 1);
	assert_int_equal(n.f6, 0);
	struct ar_key max = ar_key_max(), after = ar_key_next(&max);
	assert_int_equal(ar_key_cmp(&after, &max), 0);
	struct ar_key_range r = { .start = { .f4 = 10 }, .end = { .f4 = 20 } };
	struct ar_key in = { .f4 = 10 }, out = { .f4 = 20 };
	assert_true(ar_key_range_contains(&r, &in));
	assert_false(ar_key_range_contains(&r, &out)); /* half-open */
	struct ar_key_range touching = { .start = { .f4 = 20 }, .end = { .f4 = 30 } };
	struct ar_key_range inside = { .start = { .f4 = 19 }, .end = { .f4 = 21 } };
	assert_false(ar_key_range_overlaps(&r, &touching));
	assert_true(ar_key_range_overlaps(&r, &inside));
}

static void test_shard_function(void **state)
{
	(void)state;
	/* Neon's shard.rs test "shard_mapping": this key, 10 shards, stripe 32768 -> shard 8. */
	struct ar_key k = { .f1 = 0, .f2 = 0x67f, .f3 = 5, .f4 = 0x400c, .f5 = 0, .f6 = 0x7d06 };
	struct ar_shard_map ten = { .shard_count = 10, .stripe_blocks = 32768 };
	assert_int_equal(ar_shard_of_key(&ten, &k), 8);

	struct ar_shard_map one = { .shard_count = 1, .stripe_blocks = 2048 };
	assert_int_equal(ar_shard_of_key(&one, &k), 0);
	/* Non-block keys and init forks stay on shard 0; sizes are kept on every shard. */
	struct ar_rel rel = { 1663, 5, 0x400c, AR_FORK_INIT };
	struct ar_key init = ar_key_rel_block(rel, 0x7d06);
	assert_int_equal(ar_shard_of_key(&ten, &init), 0);
	struct ar_key relmap = ar_key_relmap(1663, 5);
	assert_int_equal(ar_shard_of_key(&ten, &relmap), 0);
	rel.fork = AR_FORK_MAIN;
	struct ar_key size = ar_key_rel_size(rel);
	struct ar_key dir = ar_key_rel_dir_part(1663, 5, 3);
	for (uint32_t s = 0; s < 10; s++) {
		assert_true(ar_key_is_shard_local(&ten, &size, s));
		assert_true(ar_key_is_shard_local(&ten, &dir, s));
		assert_int_equal(ar_key_is_shard_local(&ten, &relmap, s), s == 0);
	}
	assert_true(ar_key_is_rel_dir(&dir) && !ar_key_is_rel_dir(&relmap) &&
		    !ar_key_is_rel_dir(&size) && !ar_key_is_rel_dir(&init));

	/* A stripe stays on one shard; blocks spread over every shard. */
	struct ar_shard_map four = { .shard_count = 4, .stripe_blocks = 2048 };
	unsigned seen = 0;
	for (uint32_t b = 0; b < 2048 * 64; b++) {
		struct ar_key blk = ar_key_rel_block(rel, b);
		uint32_t s = ar_shard_of_key(&four, &blk);
		struct ar_key first = ar_key_rel_block(rel, b - b % 2048);
		assert_int_equal(s, ar_shard_of_key(&four, &first));
		seen |= 1u << s;
	}
	assert_int_equal(seen, 0xF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encoding_order_matches_cmp),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_next_and_ranges),
		cmocka_unit_test(test_shard_function),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
