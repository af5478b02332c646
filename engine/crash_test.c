/*
 * crash_test.c - Crash safety on the simulated disk.  For each maintenance
 * operation (flush, compaction, image creation, GC, branch creation, timeline
 * deletion) the test counts the disk mutations the operation makes, then for
 * every one of them: rebuilds the same tenant, crashes the disk at exactly that
 * write/fsync/rename/unlink, applies a power cut (with and without torn
 * writes), reopens, and checks that
 *   - the tenant opens, and no file the manifest does not list is left behind;
 *   - nothing that was durable before the operation is missing
 *     (disk_consistent_lsn did not go back, every timeline that existed exists);
 *   - every read at or above the GC cutoff agrees with the model, at every LSN
 *     a value was written, up to disk_consistent_lsn.
 */
#include "common/err.h"
#include "common/vfs.h"
#include "engine/redo.h"
#include "engine/tenant.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

enum { KEYS = 12, PUTS_MAX = 1024 };

struct cput {
	int tl; /* 0 root, 1 branch */
	int key;
	ar_lsn lsn;
	struct ar_value v;
	uint8_t data[AR_PAGE_BYTES];
};

struct world {
	struct ar_vfs *vfs;
	struct ar_blockcache *cache;
	struct tl_env env;
	struct ar_tenant *tenant;
	struct cput *puts;
	int put_count;
	struct ar_key keys[KEYS];
	struct tl_id ids[3];
	ar_lsn branch_lsn;
	uint64_t rng;
};

static uint64_t rnd(struct world *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

static struct ar_timeline *tl_of(struct world *w, int t)
{
	return tenant_timeline(w->tenant, &w->ids[t]);
}

static void put(struct world *w, int t, int key, ar_lsn lsn)
{
	struct cput *p = &w->puts[w->put_count++];
	assert_true(w->put_count <= PUTS_MAX);
	p->tl = t;
	p->key = key;
	p->lsn = lsn;
	uint64_t r = rnd(w) % 10;
	if (r < 3) {
		ar_test_page_make(rnd(w), r, p->data);
		p->v = (struct ar_value){ .kind = AR_VALUE_IMAGE, .len = AR_PAGE_BYTES };
	} else {
		p->v = (struct ar_value){ .kind = AR_VALUE_WAL,
					  .will_init = r == 3,
					  .len = 1 + (uint32_t)(rnd(w) % 40) };
		for (uint32_t i = 0; i < p->v.len; i++)
			p->data[i] = (uint8_t)rnd(w);
	}
	p->v.data = p->data;
	assert_int_equal(tl_put(tl_of(w, t), &w->keys[key], lsn, &p->v), 0);
}

/* The same tenant every time: 10 flushed L0s on the root, a branch, more puts on
 * both (the root's newest ones in memory only). */
static void world_build(struct world *w, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->rng = seed;
	w->puts = calloc(PUTS_MAX, sizeof(*w->puts));
	for (int k = 0; k < KEYS; k++)
		w->keys[k] = ar_key_rel_block((struct ar_rel){ 1663, 5, 16384, 0 }, (uint32_t)k);
	for (int i = 0; i < 3; i++)
		w->ids[i] = (struct tl_id){ { (uint8_t)(0x10 + i) } };
	assert_int_equal(ar_vfs_sim_create(seed, &w->vfs), 0);
	assert_int_equal(ar_blockcache_create(1 << 20, &w->cache), 0);
	w->env = (struct tl_env){ .vfs = w->vfs,
				  .cache = w->cache,
				  .redo = &ar_test_redo,
				  .checkpoint_distance_bytes = 1 << 20,
				  .layer_options = { .block_target_bytes = 2048,
						     .index_node_bytes = 512 },
				  .compact = { .compaction_threshold = 4,
					       .compaction_l0_max = 10,
					       .compaction_target_bytes = 16 * 1024,
					       .image_creation_threshold = 3,
					       .image_target_bytes = 24 * 1024 } };
	struct tenant_params params = { .shards = { .shard_count = 1 } };
	struct ar_timeline *tl;
	assert_int_equal(tenant_create(&w->env, "/t", &params, &w->tenant), 0);
	assert_int_equal(tenant_timeline_create(w->tenant, &w->ids[0], 0x100, &tl), 0);
	ar_lsn lsn = 0x100;
	for (int i = 0; i < 200; i++) {
		put(w, 0, i < KEYS ? i : (int)(rnd(w) % KEYS), lsn);
		lsn += 8;
		if (i % 20 == 19) {
			tl_maybe_freeze(tl, true);
			assert_int_equal(tl_flush(tl), 0);
		}
	}
	w->branch_lsn = 0x100 + 8 * 150;
	assert_int_equal(tenant_branch(w->tenant, &w->ids[0], w->branch_lsn, &w->ids[1], &tl), 0);
	for (int i = 0; i < 30; i++)
		put(w, 1, (int)(rnd(w) % KEYS), w->branch_lsn + 8 + 8 * (ar_lsn)i);
	tl_maybe_freeze(tl, true);
	assert_int_equal(tl_flush(tl), 0);
	for (int i = 0; i < 25; i++, lsn += 8)
		put(w, 0, (int)(rnd(w) % KEYS), lsn);
}

static void world_free(struct world *w)
{
	tenant_close(w->tenant);
	ar_blockcache_destroy(w->cache);
	ar_vfs_destroy(w->vfs);
	free(w->puts);
}

/* The model: key's page on timeline t at lsn, counting only puts at or below
 * what each timeline holds durably. */
static int expect(struct world *w, int t, int key, ar_lsn lsn, const ar_lsn durable[2],
		  uint8_t out[AR_PAGE_BYTES])
{
	const struct cput *chain[PUTS_MAX];
	size_t n = 0;
	const struct cput *base = NULL;

	for (int cur = t; cur >= 0 && !base; cur--) {
		ar_lsn top = cur == t ? lsn : w->branch_lsn;
		for (int i = w->put_count - 1; i >= 0 && !base; i--) {
			const struct cput *p = &w->puts[i];
			if (p->tl != cur || p->key != key || p->lsn > top || p->lsn > durable[cur])
				continue;
			if (p->v.kind == AR_VALUE_IMAGE || p->v.will_init)
				base = p;
			else
				chain[n++] = p;
		}
		if (t == 0)
			break;
	}
	if (!base)
		return -AR_ENOKEY;
	uint64_t state = ar_test_redo_init_state(), count = 0;
	if (base->v.kind == AR_VALUE_IMAGE) {
		memcpy(&state, base->data, 8); /* test pages are little-endian; so is x86 */
		memcpy(&count, base->data + 8, 8);
	} else {
		state = ar_test_redo_fold(state, base->lsn, &base->v);
		count = 1;
	}
	for (size_t i = n; i > 0; i--, count++)
		state = ar_test_redo_fold(state, chain[i - 1]->lsn, &chain[i - 1]->v);
	ar_test_page_make(state, count, out);
	return 0;
}

struct listed {
	struct ar_timeline *tl;
	int unlisted;
};

static int check_listed(void *ctx, const char *name)
{
	struct listed *l = ctx;
	char want[LYR_NAME_BYTES + 16];
	if (strcmp(name, "manifest") == 0)
		return 0;
	for (uint32_t i = 0; i < tl_layer_count(l->tl); i++) {
		manifest_layer_file_name(tl_layer(l->tl, i), want);
		if (strcmp(want, name) == 0)
			return 0;
	}
	print_message("unlisted file left behind: %s\n", name);
	l->unlisted++;
	return 0;
}

static void verify_timeline(struct world *w, int t, const ar_lsn durable_before[2])
{
	struct ar_timeline *tl = tl_of(w, t);
	char hex[33], dir[128];
	uint8_t want[AR_PAGE_BYTES], got[AR_PAGE_BYTES];
	ar_lsn durable[2] = { durable_before[0], durable_before[1] };

	assert_non_null(tl);
	ar_lsn d = tl_disk_consistent_lsn(tl);
	assert_true(d >= durable_before[t]); /* nothing durable went missing */
	durable[t] = d;
	tl_id_hex(&w->ids[t], hex);
	snprintf(dir, sizeof(dir), "/t/timelines/%s", hex);
	struct listed l = { .tl = tl };
	assert_int_equal(ar_vfs_list_dir(w->vfs, dir, check_listed, &l), 0);
	assert_int_equal(l.unlisted, 0);
	ar_lsn cutoff = tl_gc_cutoff(tl);
	for (int i = 0; i < w->put_count; i += 5) {
		ar_lsn at = w->puts[i].lsn;
		if (w->puts[i].tl != t || at > d)
			continue;
		for (int k = 0; k < KEYS; k++) {
			ar_lsn lsns[3] = { at, cutoff, d };
			for (int j = 0; j < 3; j++) {
				if (lsns[j] < cutoff || lsns[j] > d || lsns[j] < tl_start_lsn(tl))
					continue;
				uint32_t len;
				int e = expect(w, t, k, lsns[j], durable, want);
				int rc = tl_get(tl, &w->keys[k], lsns[j], got, &len);
				if (rc != e)
					fail_msg("timeline %d key %d lsn %llu: %d (%s), model %d",
						 t, k, (unsigned long long)lsns[j], rc,
						 tl_error(tl), e);
				if (rc == 0)
					assert_memory_equal(want, got, AR_PAGE_BYTES);
			}
		}
	}
}

/* ---- the operations, each with an uncounted preparation ---- */

enum op { OP_FLUSH, OP_COMPACT, OP_IMAGES, OP_GC, OP_BRANCH, OP_DELETE, OP_COUNT };
static const char *const op_names[OP_COUNT] = { "flush", "compaction", "image creation",
						"gc",    "branch",     "delete" };

static void op_prepare(struct world *w, enum op op)
{
	bool did;
	if (op == OP_GC) {
		assert_int_equal(tl_compact(tl_of(w, 0), &did), 0);
		assert_int_equal(tl_create_images(tl_of(w, 0), &did), 0);
		assert_true(did);
	}
	if (op == OP_IMAGES)
		assert_int_equal(tl_compact(tl_of(w, 0), &did), 0);
}

static int op_run(struct world *w, enum op op)
{
	struct ar_timeline *root = tl_of(w, 0), *tl;
	bool did;
	uint32_t removed;
	ar_lsn retain = w->branch_lsn;

	switch (op) {
	case OP_FLUSH:
		tl_maybe_freeze(root, true);
		return tl_flush(root);
	case OP_COMPACT:
		return tl_compact(root, &did);
	case OP_IMAGES:
		return tl_create_images(root, &did);
	case OP_GC:
		return tl_gc(root, tl_disk_consistent_lsn(root), &retain, 1, &removed);
	case OP_BRANCH:
		return tenant_branch(w->tenant, &w->ids[0], tl_disk_consistent_lsn(root),
				     &w->ids[2], &tl);
	case OP_DELETE:
		return tenant_timeline_delete(w->tenant, &w->ids[1]);
	case OP_COUNT:
		break;
	}
	return -EINVAL;
}

static void crash_one(enum op op, uint64_t crash_at, bool torn)
{
	struct world w;
	char err[LYR_ERROR_BYTES];

	world_build(&w, 77);
	op_prepare(&w, op);
	ar_lsn before[2] = { tl_disk_consistent_lsn(tl_of(&w, 0)),
			     tl_disk_consistent_lsn(tl_of(&w, 1)) };
	ar_vfs_sim_crash_at(w.vfs, ar_vfs_sim_mutations(w.vfs) + crash_at);
	int op_rc = op_run(&w, op);
	/* An operation that reported success is durable, even if the crash then hit its
	 * best-effort cleanup (removing files the new manifest no longer lists). */
	ar_lsn gc_reported = op_rc == 0 ? tl_gc_cutoff(tl_of(&w, 0)) : 0;
	if (op_rc == 0 && op == OP_FLUSH)
		before[0] = tl_disk_consistent_lsn(tl_of(&w, 0));
	tenant_close(w.tenant);
	w.tenant = NULL;
	ar_vfs_sim_restart(w.vfs, torn);
	int rc = tenant_open(&w.env, "/t", &w.tenant, err);
	if (rc != 0)
		fail_msg("%s, crash at mutation %llu%s: reopen failed: %d %s", op_names[op],
			 (unsigned long long)crash_at, torn ? " (torn)" : "", rc, err);
	verify_timeline(&w, 0, before);
	if (tl_of(&w, 1))
		verify_timeline(&w, 1, before);
	else
		assert_int_equal(op, OP_DELETE); /* only a deletion may make it vanish */
	if (op_rc == 0 && op == OP_DELETE)
		assert_null(tl_of(&w, 1));
	if (op_rc == 0 && op == OP_BRANCH && !tl_of(&w, 2))
		fail_msg("branch reported durable at crash point %llu%s is gone",
			 (unsigned long long)crash_at, torn ? " (torn)" : "");
	assert_true(tl_gc_cutoff(tl_of(&w, 0)) >= gc_reported);
	world_free(&w);
}

static void test_crash_everywhere(void **state)
{
	(void)state;
	for (enum op op = 0; op < OP_COUNT; op++) {
		struct world w;
		world_build(&w, 77);
		op_prepare(&w, op);
		uint64_t start = ar_vfs_sim_mutations(w.vfs);
		assert_int_equal(op_run(&w, op), 0);
		uint64_t mutations = ar_vfs_sim_mutations(w.vfs) - start;
		world_free(&w);
		assert_true(mutations > 0);
		for (uint64_t k = 1; k <= mutations; k++) {
			crash_one(op, k, false);
			crash_one(op, k, true);
		}
		print_message("%s: crashed at each of its %llu disk mutations (plain and torn): "
			      "reopened and agreed with the model every time\n",
			      op_names[op], (unsigned long long)mutations);
	}
}

/* A corrupt manifest is a clear error naming the file and offset, never a crash. */
static void test_corrupt_manifest(void **state)
{
	struct world w;
	char err[LYR_ERROR_BYTES], hex[33], path[128];
	int fd;
	(void)state;

	world_build(&w, 5);
	tenant_close(w.tenant);
	w.tenant = NULL;
	tl_id_hex(&w.ids[0], hex);
	snprintf(path, sizeof(path), "/t/timelines/%s/manifest", hex);
	assert_int_equal(ar_vfs_open(w.vfs, path, AR_VFS_WRITE, &fd), 0);
	uint8_t b = 0x5A;
	assert_int_equal(ar_vfs_pwrite(w.vfs, fd, &b, 1, 60), 1);
	ar_vfs_close(w.vfs, fd);
	assert_int_equal(tenant_open(&w.env, "/t", &w.tenant, err), -AR_ECORRUPT);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "offset"));
	world_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crash_everywhere),
		cmocka_unit_test(test_corrupt_manifest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
