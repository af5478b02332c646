/*
 * tenant_test.c - Timelines and branches case by case: fall-through to the
 * ancestor at the branch LSN, O(1) branches (what a branch writes does not
 * depend on its ancestor's size), the branch and delete refusals, backpressure,
 * the checkpoint timeout, relation sizes and database size, GC by horizon, and
 * stray files removed at open.
 */
#include "common/err.h"
#include "common/vfs.h"
#include "engine/redo.h"
#include "engine/tenant.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

struct fixture {
	struct ar_vfs *vfs;
	struct ar_blockcache *cache;
	struct tl_env env;
	struct ar_tenant *tenant;
};

static const struct tl_id root_id = { { 1 } }, child_id = { { 2 } }, other_id = { { 3 } };

static void fixture_init(struct fixture *f)
{
	struct tenant_params params = { .shards = { .shard_count = 4, .stripe_blocks = 2048 },
					.shard_number = 1 };
	struct ar_timeline *tl;
	memset(f, 0, sizeof(*f));
	assert_int_equal(ar_vfs_sim_create(3, &f->vfs), 0);
	assert_int_equal(ar_blockcache_create(1 << 20, &f->cache), 0);
	f->env = (struct tl_env){ .vfs = f->vfs,
				  .cache = f->cache,
				  .redo = &ar_test_redo,
				  .checkpoint_distance_bytes = 1 << 20,
				  .compact = { .compaction_threshold = 2,
					       .compaction_l0_max = 10,
					       .compaction_target_bytes = 1 << 20 } };
	assert_int_equal(tenant_create(&f->env, "/tn", &params, &f->tenant), 0);
	assert_int_equal(tenant_timeline_create(f->tenant, &root_id, 0x100, &tl), 0);
}

static void fixture_fini(struct fixture *f)
{
	tenant_close(f->tenant);
	ar_blockcache_destroy(f->cache);
	ar_vfs_destroy(f->vfs);
}

static struct ar_key key_n(uint32_t n)
{
	return ar_key_rel_block((struct ar_rel){ 1663, 5, 16384, 0 }, n);
}

static void put_image(struct ar_timeline *tl, uint32_t key, ar_lsn lsn, uint64_t state)
{
	uint8_t page[AR_PAGE_BYTES];
	ar_test_page_make(state, 0, page);
	struct ar_value v = { .kind = AR_VALUE_IMAGE, .len = AR_PAGE_BYTES, .data = page };
	struct ar_key k = key_n(key);
	assert_int_equal(tl_put(tl, &k, lsn, &v), 0);
}

static uint64_t state_at(struct ar_timeline *tl, uint32_t key, ar_lsn lsn, int *rc)
{
	uint8_t page[AR_PAGE_BYTES];
	uint32_t len;
	uint64_t state = 0;
	struct ar_key k = key_n(key);
	*rc = tl_get(tl, &k, lsn, page, &len);
	if (*rc == 0)
		memcpy(&state, page, 8);
	return state;
}

static void flush(struct ar_timeline *tl)
{
	tl_maybe_freeze(tl, true);
	assert_int_equal(tl_flush(tl), 0);
}

static void test_fall_through_and_refusals(void **state)
{
	struct fixture f;
	struct ar_timeline *child, *none;
	int rc;
	(void)state;

	fixture_init(&f);
	struct ar_timeline *root = tenant_timeline(f.tenant, &root_id);
	put_image(root, 1, 0x100, 11);
	put_image(root, 1, 0x200, 22);
	put_image(root, 2, 0x200, 33);
	assert_int_equal(tenant_branch(f.tenant, &root_id, 0x180, &child_id, &child), 0);
	/* The branch point was flushed so the branch never outlives its history. */
	assert_true(tl_disk_consistent_lsn(root) >= 0x180);
	assert_int_equal(state_at(child, 1, 0x180, &rc), 11);
	assert_int_equal(rc, 0);
	state_at(child, 2, 0x180, &rc); /* put on the parent after the branch point */
	assert_int_equal(rc, -AR_ENOKEY);
	put_image(child, 2, 0x190, 44);
	assert_int_equal(state_at(child, 2, 0x190, &rc), 44);
	assert_int_equal(state_at(root, 2, 0x200, &rc), 33); /* the parent is untouched */
	assert_int_equal(state_at(root, 1, 0x200, &rc), 22);
	state_at(child, 1, 0x191, &rc);
	assert_int_equal(rc, -ERANGE); /* above the branch's last LSN */

	assert_int_equal(tenant_branch(f.tenant, &root_id, 0x300, &other_id, &none), -ERANGE);
	assert_int_equal(tenant_branch(f.tenant, &other_id, 0x100, &root_id, &none),
			 -AR_ENOTIMELINE);
	assert_int_equal(tenant_branch(f.tenant, &root_id, 0x100, &child_id, &none), -EEXIST);
	assert_int_equal(tenant_timeline_delete(f.tenant, &root_id), -AR_EHASCHILDREN);
	assert_string_equal(ar_strerror(-AR_EHASCHILDREN), "timeline has child branches");

	/* Below the GC cutoff: refused, with a message that says so. */
	uint32_t removed;
	assert_int_equal(tl_gc(root, 0x1F0, NULL, 0, &removed), 0);
	assert_int_equal(tenant_branch(f.tenant, &root_id, 0x1E0, &other_id, &none), -AR_EBELOWGC);
	assert_string_equal(ar_strerror(-AR_EBELOWGC),
			    "LSN is below the garbage collection cutoff");
	state_at(root, 1, 0x1E0, &rc);
	assert_int_equal(rc, -AR_EBELOWGC);
	assert_int_equal(state_at(child, 1, 0x180, &rc), 11); /* the branch point still reads */

	assert_int_equal(tenant_timeline_delete(f.tenant, &child_id), 0);
	assert_null(tenant_timeline(f.tenant, &child_id));
	assert_int_equal(tenant_timeline_delete(f.tenant, &root_id), 0);
	assert_int_equal(tenant_timeline_count(f.tenant), 0);
	char err[LYR_ERROR_BYTES];
	tenant_close(f.tenant);
	assert_int_equal(tenant_open(&f.env, "/tn", &f.tenant, err), 0);
	assert_int_equal(tenant_timeline_count(f.tenant), 0);
	assert_int_equal(tenant_params(f.tenant)->shards.shard_count, 4);
	assert_int_equal(tenant_params(f.tenant)->shard_number, 1);
	fixture_fini(&f);
}

/* What a branch writes, in disk mutations and bytes, for an ancestor of n values. */
static void branch_cost(uint32_t n, uint64_t *mutations, uint64_t *bytes)
{
	struct fixture f;
	struct ar_timeline *child;

	fixture_init(&f);
	f.env.compact.compaction_threshold = 0; /* no backpressure: many L0s on purpose */
	struct ar_timeline *root = tenant_timeline(f.tenant, &root_id);
	for (uint32_t i = 0; i < n; i++) {
		put_image(root, i % 500, 0x100 + 8 * (ar_lsn)i, i);
		if (i % 200 == 199)
			flush(root);
	}
	flush(root);
	uint64_t m0 = ar_vfs_sim_mutations(f.vfs), b0 = ar_vfs_sim_bytes(f.vfs);
	assert_int_equal(
	    tenant_branch(f.tenant, &root_id, tl_disk_consistent_lsn(root), &child_id, &child), 0);
	*mutations = ar_vfs_sim_mutations(f.vfs) - m0;
	*bytes = ar_vfs_sim_bytes(f.vfs) - b0;
	fixture_fini(&f);
}

static void test_branch_is_o1(void **state)
{
	uint64_t m_small, b_small, m_big, b_big;
	(void)state;

	branch_cost(10, &m_small, &b_small);
	branch_cost(5000, &m_big, &b_big); /* 40 MiB of pages in 25 layers */
	print_message("branch of a 10-value ancestor: %llu mutations, %llu bytes; "
		      "of a 5000-value ancestor: %llu mutations, %llu bytes\n",
		      (unsigned long long)m_small, (unsigned long long)b_small,
		      (unsigned long long)m_big, (unsigned long long)b_big);
	assert_int_equal(m_small, m_big);
	assert_int_equal(b_small, b_big);
	assert_true(b_big < 1024); /* one manifest */
}

static void test_backpressure_and_timeout(void **state)
{
	struct fixture f;
	bool did;
	(void)state;

	fixture_init(&f);
	struct ar_timeline *root = tenant_timeline(f.tenant, &root_id);
	ar_lsn lsn = 0x100;
	for (int i = 0; i < 6; i++) /* 3 x threshold 2 = 6 L0s */
		put_image(root, 1, lsn += 8, (uint64_t)i), flush(root);
	put_image(root, 1, lsn += 8, 99);
	tl_maybe_freeze(root, true);
	assert_int_equal(tl_flush(root), -EAGAIN);
	assert_int_equal(tl_stats(root)->backpressure, 1);
	assert_int_equal(tl_compact(root, &did), 0);
	assert_true(did);
	assert_int_equal(tl_l0_count(root), 0);
	assert_int_equal(tl_flush(root), 0);
	int rc;
	assert_int_equal(state_at(root, 1, lsn, &rc), 99);

	/* An in-memory layer older than checkpoint_timeout_ms is frozen without force. */
	f.env.checkpoint_timeout_ms = 1;
	put_image(root, 2, lsn += 8, 5);
	struct timespec pause = { 0, 3 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	uint64_t freezes = tl_stats(root)->freezes;
	tl_maybe_freeze(root, false);
	assert_int_equal(tl_stats(root)->freezes, freezes + 1);
	fixture_fini(&f);
}

static void put_blob(struct ar_timeline *tl, struct ar_key key, ar_lsn lsn, const uint8_t *b,
		     uint32_t len)
{
	struct ar_value v = { .kind = AR_VALUE_IMAGE, .len = len, .data = b };
	assert_int_equal(tl_put(tl, &key, lsn, &v), 0);
}

static void test_relation_sizes(void **state)
{
	struct fixture f;
	uint32_t n;
	uint64_t bytes;
	(void)state;

	fixture_init(&f);
	struct ar_timeline *root = tenant_timeline(f.tenant, &root_id);
	struct ar_rel a = { 1663, 5, 16384, AR_FORK_MAIN }, b = { 1663, 5, 16390, AR_FORK_MAIN };
	struct ar_rel a_fsm = { 1663, 5, 16384, AR_FORK_FSM };
	const uint8_t three[4] = { 3, 0, 0, 0 }, five[4] = { 5, 0, 0, 0 }, two[4] = { 2, 0, 0, 0 };
	const uint8_t dir[15] = { 0, 0, 0x40, 0x00, 0, 0, 0, 0x40, 0x06, 0, 0, 0, 0x40, 0x00, 1 };
	put_blob(root, ar_key_rel_size(a), 0x100, three, 4);
	put_blob(root, ar_key_rel_size(a_fsm), 0x100, two, 4);
	put_blob(root, ar_key_rel_dir(1663, 5), 0x100, dir, 10); /* a, b */
	put_blob(root, ar_key_rel_size(b), 0x180, five, 4);
	put_blob(root, ar_key_rel_dir(1663, 5), 0x180, dir, 15); /* a, b, a's fsm */
	assert_int_equal(tl_rel_nblocks(root, a, 0x100, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(tl_rel_exists(root, b, 0x100), -AR_ENOKEY);
	assert_int_equal(tl_rel_exists(root, b, 0x180), 0);
	assert_int_equal(tl_db_size(root, 1663, 5, 0x100, &bytes), 0);
	assert_int_equal(bytes, 3 * 8192); /* b is listed but has no size yet */
	assert_int_equal(tl_db_size(root, 1663, 5, 0x180, &bytes), 0);
	assert_int_equal(bytes, (3 + 5 + 2) * 8192);
	assert_int_equal(tl_db_size(root, 1663, 6, 0x180, &bytes), -AR_ENOKEY);
	fixture_fini(&f);
}

struct names {
	int count;
	bool stray;
};

static int count_name(void *ctx, const char *name)
{
	struct names *n = ctx;
	n->count++;
	n->stray |= strcmp(name, "leftover.tmp") == 0;
	return 0;
}

static void test_gc_horizon_and_strays(void **state)
{
	struct fixture f;
	char err[LYR_ERROR_BYTES], dir[128], hex[33];
	uint32_t removed;
	bool did;
	int fd;
	(void)state;

	fixture_init(&f);
	f.env.compact.image_creation_threshold = 2;
	struct ar_timeline *root = tenant_timeline(f.tenant, &root_id);
	for (uint32_t i = 0; i < 40; i++) {
		put_image(root, i % 4, 0x100 + 0x10 * (ar_lsn)i, i);
		if (i % 10 == 9)
			flush(root);
	}
	assert_int_equal(tl_create_images(root, &did), 0);
	assert_true(did);
	for (uint32_t i = 40; i < 50; i++)
		put_image(root, i % 4, 0x100 + 0x10 * (ar_lsn)i, i);
	flush(root);
	ar_lsn last = tl_last_record_lsn(root);
	assert_int_equal(tenant_gc(f.tenant, &root_id, 0x40, 0, &removed), 0);
	assert_int_equal(tl_gc_cutoff(root), last - 0x40);
	assert_true(removed > 0);
	/* A retention LSN lower than the horizon wins, but the cutoff never goes back. */
	assert_int_equal(tenant_gc(f.tenant, &root_id, 0, 0x120, &removed), 0);
	assert_int_equal(tl_gc_cutoff(root), last - 0x40);
	int rc;
	assert_int_equal(state_at(root, 1, last, &rc), 49);
	assert_int_equal(state_at(root, 3, last - 0x40, &rc), 43);

	tl_id_hex(&root_id, hex);
	snprintf(dir, sizeof(dir), "/tn/timelines/%s", hex);
	char stray[160];
	snprintf(stray, sizeof(stray), "%s/leftover.tmp", dir);
	assert_int_equal(ar_vfs_open(f.vfs, stray, AR_VFS_WRITE | AR_VFS_CREATE, &fd), 0);
	ar_vfs_close(f.vfs, fd);
	tenant_close(f.tenant);
	assert_int_equal(tenant_open(&f.env, "/tn", &f.tenant, err), 0);
	struct names names = { 0 };
	assert_int_equal(ar_vfs_list_dir(f.vfs, dir, count_name, &names), 0);
	assert_false(names.stray);
	root = tenant_timeline(f.tenant, &root_id);
	assert_int_equal(names.count, (int)tl_layer_count(root) + 1); /* layers + manifest */
	assert_int_equal(tl_stats(root)->strays_removed, 1);
	fixture_fini(&f);
}

/* A batched read: the blocks of many keys in one vectored read, after which the
 * reads themselves read nothing; a failed batch read changes no answer. */
static void test_batched_read(void **state)
{
	enum { KEYS = 600, ASKED = 24 };
	struct fixture f;
	struct ar_key keys[ASKED];
	ar_lsn lsns[ASKED];
	struct ar_blockcache_stats before, after;
	int rc;
	(void)state;

	fixture_init(&f);
	struct ar_timeline *tl = tenant_timeline(f.tenant, &root_id);
	for (uint32_t k = 0; k < KEYS; k++)
		put_image(tl, k, 0x200, 1000 + k);
	flush(tl);
	for (uint32_t k = 0; k < KEYS; k += 2)
		put_image(tl, k, 0x300, 5000 + k); /* even keys: a newer layer */
	flush(tl);
	for (uint32_t i = 0; i < ASKED; i++) {
		keys[i] = key_n(i * 25); /* odd ones fall through to the older layer */
		lsns[i] = i % 3 == 0 ? 0x2FF : 0x300;
	}
	for (int round = 0; round < 2; round++) {
		ar_blockcache_clear(f.cache);
		uint64_t batches = tl_stats(tl)->prefetch_batches;
		uint64_t blocks = tl_stats(tl)->prefetch_blocks;
		if (round == 1)
			ar_vfs_sim_fail_next(f.vfs, "pread", -EIO);
		tl_prefetch(tl, keys, lsns, ASKED);
		assert_int_equal(tl_stats(tl)->prefetch_batches, batches + 1);
		blocks = tl_stats(tl)->prefetch_blocks - blocks;
		print_message("round %d: %" PRIu64 " blocks in one batch\n", round, blocks);
		assert_true(round == 0 ? blocks >= 6 : blocks >= 5);
		ar_blockcache_stats_read(f.cache, &before);
		for (uint32_t i = 0; i < ASKED; i++) {
			uint32_t k = i * 25;
			bool newer = k % 2 == 0 && lsns[i] >= 0x300;
			uint64_t want = newer ? 5000 + k : 1000 + k;
			assert_int_equal(state_at(tl, k, lsns[i], &rc), want);
			assert_int_equal(rc, 0);
		}
		ar_blockcache_stats_read(f.cache, &after);
		/* Round 0: every block was there.  Round 1: one read failed (a
		 * leaf's, so that key's leaf and block were missing, or a block's)
		 * and the ordinary reads fetched what was missing. */
		if (round == 0)
			assert_int_equal(after.misses, before.misses);
		else
			assert_true(after.misses - before.misses >= 1 &&
				    after.misses - before.misses <= 2);
	}
	/* Keys that do not exist and LSNs out of range read nothing. */
	keys[0] = key_n(KEYS + 5);
	lsns[1] = 0x301;
	uint64_t blocks = tl_stats(tl)->prefetch_blocks;
	tl_prefetch(tl, keys, lsns, 2);
	assert_int_equal(tl_stats(tl)->prefetch_blocks, blocks);
	fixture_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fall_through_and_refusals),
		cmocka_unit_test(test_branch_is_o1),
		cmocka_unit_test(test_backpressure_and_timeout),
		cmocka_unit_test(test_relation_sizes),
		cmocka_unit_test(test_gc_horizon_and_strays),
		cmocka_unit_test(test_batched_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
