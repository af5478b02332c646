/*
 * model_test.c - Model-based randomized test of the engine against a tiny
 * in-memory reference model.
 *
 * Random operations: puts (test images, order-sensitive records, will_init
 * records, Argon records), branches (nested at least 5 deep), freezes, flushes,
 * and restarts (the tenant is closed, losing what was not flushed, and opened
 * again).  After every step, reads at random (timeline, key, LSN) triples, at
 * exactly each branch LSN, and at exactly the GC cutoff, compared page for page
 * with what the model computes with the same test redo.  Counters prove every
 * operation kind did real work.
 *
 *   ARGON_MODEL_SEED=N  run one seed (a failing run prints its seed)
 *   ARGON_MODEL_OPS=N   operations per seed (default 25000 x 4 seeds; 5000 x 4 in
 *                       sanitizer builds)
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

enum { KEYS = 48, TIMELINES_MAX = 24, RECORD_BYTES_MAX = 48 };

struct mput {
	ar_lsn lsn;
	enum ar_value_kind kind;
	bool will_init;
	uint8_t argon_type;
	uint64_t state; /* images: the test page's state and count */
	uint64_t count;
	uint32_t len;
	uint8_t data[RECORD_BYTES_MAX];
};

struct mkey {
	struct mput *puts; /* ascending LSN */
	size_t n;
	size_t cap;
};

struct mtl {
	struct tl_id id;
	int parent;
	ar_lsn branch_lsn;
	ar_lsn start;
	ar_lsn last;
	ar_lsn durable;
	struct mkey keys[KEYS];
	int depth;
	bool sealed; /* a freeze may have happened: the next put needs a new LSN */
};

struct model {
	uint64_t rng;
	struct mtl tls[TIMELINES_MAX];
	int count;
	struct ar_key keys[KEYS];
	struct ar_vfs *vfs;
	struct ar_blockcache *cache;
	struct tl_env env;
	struct ar_tenant *tenant;
	uint64_t ops_put, ops_branch, ops_freeze, ops_flush, ops_restart, reads, reads_missing;
	uint64_t ops_compact, ops_images, ops_gc, branches_refused, reads_below_gc, job_steps;
	uint64_t reads_branch_point, max_depth;
	struct tl_stats totals;
};

static uint64_t rnd(struct model *m)
{
	uint64_t z = (m->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(struct model *m, uint64_t n)
{
	return n ? rnd(m) % n : 0;
}

static struct ar_value mput_value(const struct mput *p, uint8_t page[AR_PAGE_BYTES])
{
	struct ar_value v = { .kind = p->kind,
			      .will_init = p->will_init,
			      .argon_type = p->argon_type,
			      .len = p->len,
			      .data = p->data };
	if (p->kind == AR_VALUE_IMAGE) {
		ar_test_page_make(p->state, p->count, page);
		v.len = AR_PAGE_BYTES;
		v.data = page;
	}
	return v;
}

/* ---- the model's own GetPage ---- */

static int model_get(struct model *m, int t, int key, ar_lsn lsn, uint8_t out[AR_PAGE_BYTES])
{
	const struct mput *chain[4096];
	size_t n = 0;
	const struct mput *base = NULL;
	ar_lsn cont = lsn;

	while (t >= 0 && !base) {
		const struct mkey *k = &m->tls[t].keys[key];
		for (size_t i = k->n; i > 0 && !base; i--) {
			const struct mput *p = &k->puts[i - 1];
			if (p->lsn > cont)
				continue;
			if (p->kind == AR_VALUE_IMAGE || p->will_init)
				base = p;
			else if (n < 4096)
				chain[n++] = p;
			else
				fail_msg("model chain too long");
		}
		if (!base) {
			if (cont > m->tls[t].branch_lsn && m->tls[t].parent >= 0)
				cont = m->tls[t].branch_lsn;
			t = m->tls[t].parent;
		}
	}
	if (!base)
		return -AR_ENOKEY;
	uint64_t state = base->kind == AR_VALUE_IMAGE ? base->state : ar_test_redo_init_state();
	uint64_t count = base->kind == AR_VALUE_IMAGE ? base->count : 0;
	uint8_t scratch[AR_PAGE_BYTES];
	if (base->kind != AR_VALUE_IMAGE) {
		struct ar_value v = mput_value(base, scratch);
		state = ar_test_redo_fold(state, base->lsn, &v);
		count++;
	}
	for (size_t i = n; i > 0; i--) {
		struct ar_value v = mput_value(chain[i - 1], scratch);
		state = ar_test_redo_fold(state, chain[i - 1]->lsn, &v);
		count++;
	}
	ar_test_page_make(state, count, out);
	return 0;
}

static void check_read(struct model *m, int t, int key, ar_lsn lsn)
{
	uint8_t want[AR_PAGE_BYTES], got[AR_PAGE_BYTES];
	uint32_t len = 0;
	struct ar_timeline *tl = tenant_timeline(m->tenant, &m->tls[t].id);

	assert_non_null(tl);
	int expect = model_get(m, t, key, lsn, want);
	if (lsn < tl_gc_cutoff(tl))
		expect =
		    -AR_EBELOWGC; /* the data may be there (a branch needs it): still refused */
	int rc = tl_get(tl, &m->keys[key], lsn, got, &len);
	m->reads++;
	if (rc != expect)
		fail_msg("timeline %d key %d lsn %llu: engine %d (%s), model %d", t, key,
			 (unsigned long long)lsn, rc, tl_error(tl), expect);
	if (rc == 0) {
		assert_int_equal(len, AR_PAGE_BYTES);
		if (memcmp(want, got, AR_PAGE_BYTES) != 0)
			fail_msg("timeline %d key %d lsn %llu: page differs from the model", t, key,
				 (unsigned long long)lsn);
	} else {
		m->reads_missing++;
	}
}

/* ---- operations ---- */

static struct tl_id make_id(int n)
{
	struct tl_id id = { { 0 } };
	id.bytes[0] = 0xA7;
	id.bytes[15] = (uint8_t)n;
	return id;
}

static void mkey_push(struct mkey *k, const struct mput *p)
{
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 16;
		k->puts = realloc(k->puts, k->cap * sizeof(*k->puts));
		assert_non_null(k->puts);
	}
	k->puts[k->n++] = *p;
}

static void reads_after_step(struct model *m);

static void op_put(struct model *m, int t)
{
	struct mtl *x = &m->tls[t];
	int key = (int)rnd_below(m, KEYS);
	struct mput p = { 0 };
	uint8_t page[AR_PAGE_BYTES];

	/* Several keys may share an LSN (one WAL record touching several pages). */
	p.lsn = x->last + (rnd_below(m, 3) == 0 ? 0 : 8 * (1 + rnd_below(m, 4)));
	if (p.lsn < x->start)
		p.lsn = x->start;
	const struct mkey *k = &x->keys[key];
	if (k->n && k->puts[k->n - 1].lsn >= p.lsn)
		p.lsn = k->puts[k->n - 1].lsn + 8;
	if (p.lsn <= x->durable)
		p.lsn = x->durable + 8;
	if (x->sealed && p.lsn <= x->last)
		p.lsn = x->last + 8;
	x->sealed = false;
	uint64_t r = rnd_below(m, 100);
	if (r < 6 || (k->n == 0 && r < 60)) {
		p.kind = AR_VALUE_IMAGE;
		p.state = rnd(m);
		p.count = rnd_below(m, 100);
	} else {
		p.kind = r < 92 ? AR_VALUE_WAL : AR_VALUE_ARGON;
		p.will_init = p.kind == AR_VALUE_WAL && (r < 10 || k->n == 0);
		p.argon_type = p.kind == AR_VALUE_ARGON ? (uint8_t)(1 + rnd_below(m, 5)) : 0;
		p.len = 1 + (uint32_t)rnd_below(m, RECORD_BYTES_MAX);
		for (uint32_t i = 0; i < p.len; i++)
			p.data[i] = (uint8_t)rnd(m);
	}
	struct ar_value v = mput_value(&p, page);
	struct ar_timeline *tl = tenant_timeline(m->tenant, &x->id);
	assert_int_equal(tl_put(tl, &m->keys[key], p.lsn, &v), 0);
	mkey_push(&x->keys[key], &p);
	x->last = p.lsn;
	m->ops_put++;
	if (rnd_below(m, 4) == 0) {
		tl_maybe_freeze(tl, false);
		x->sealed = true;
	}
}

static void op_branch(struct model *m)
{
	/* Prefer the deepest timelines so the ancestry gets deep. */
	int p = (int)rnd_below(m, (uint64_t)m->count);
	for (int i = 0; i < m->count; i++)
		if (rnd_below(m, 2) && m->tls[i].depth > m->tls[p].depth)
			p = i;
	struct mtl *parent = &m->tls[p];
	if (parent->last + 1 < parent->start)
		return;
	ar_lsn lo = parent->start ? parent->start - 1 : 0;
	ar_lsn lsn = lo + rnd_below(m, parent->last - lo + 1);
	int c = m->count < TIMELINES_MAX ? m->count : TIMELINES_MAX - 1;
	struct ar_timeline *ptl0 = tenant_timeline(m->tenant, &parent->id);
	if (tl_gc_cutoff(ptl0) > lo && rnd_below(m, 5) == 0)
		lsn = lo + rnd_below(m, tl_gc_cutoff(ptl0) - lo); /* below the cutoff, on purpose */
	if (lsn < tl_gc_cutoff(ptl0)) {
		struct tl_id id = make_id(c);
		struct ar_timeline *none;
		assert_int_equal(tenant_branch(m->tenant, &parent->id, lsn, &id, &none),
				 -AR_EBELOWGC);
		m->branches_refused++;
		return;
	}
	if (m->count == TIMELINES_MAX)
		return;
	struct mtl *child = &m->tls[c];
	memset(child, 0, sizeof(*child));
	child->id = make_id(c);
	child->parent = p;
	child->branch_lsn = lsn;
	child->start = lsn + 1;
	child->last = lsn;
	child->durable = lsn;
	child->depth = parent->depth + 1;
	struct ar_timeline *tl;
	assert_int_equal(tenant_branch(m->tenant, &parent->id, lsn, &child->id, &tl), 0);
	/* A branch above the parent's durable point flushed the parent. */
	struct ar_timeline *ptl = tenant_timeline(m->tenant, &parent->id);
	parent->durable = tl_disk_consistent_lsn(ptl);
	parent->sealed = true;
	m->count++;
	m->ops_branch++;
	if ((uint64_t)child->depth > m->max_depth)
		m->max_depth = (uint64_t)child->depth;
}

static void sum_stats(struct model *m)
{
	for (uint32_t i = 0; i < tenant_timeline_count(m->tenant); i++) {
		const struct tl_stats *s = tl_stats(tenant_timeline_at(m->tenant, i));
		m->totals.layers_written += s->layers_written;
		m->totals.redo_calls += s->redo_calls;
		m->totals.images_returned += s->images_returned;
		m->totals.ancestor_fallthroughs += s->ancestor_fallthroughs;
		m->totals.flushes += s->flushes;
		m->totals.strays_removed += s->strays_removed;
		m->totals.compactions += s->compactions;
		m->totals.l1_written += s->l1_written;
		m->totals.images_created += s->images_created;
		m->totals.gc_layers_removed += s->gc_layers_removed;
		m->totals.backpressure += s->backpressure;
		if (s->index_levels_max > m->totals.index_levels_max)
			m->totals.index_levels_max = s->index_levels_max;
	}
}

static void op_restart(struct model *m)
{
	char err[LYR_ERROR_BYTES];

	sum_stats(m);
	tenant_close(m->tenant);
	m->tenant = NULL;
	int rc = tenant_open(&m->env, "/tenant", &m->tenant, err);
	if (rc != 0)
		fail_msg("reopen failed: %d %s", rc, err);
	/* What was not flushed is gone, in the model too. */
	for (int t = 0; t < m->count; t++) {
		struct mtl *x = &m->tls[t];
		struct ar_timeline *tl = tenant_timeline(m->tenant, &x->id);
		assert_non_null(tl);
		assert_int_equal(tl_disk_consistent_lsn(tl), x->durable);
		for (int k = 0; k < KEYS; k++)
			while (x->keys[k].n && x->keys[k].puts[x->keys[k].n - 1].lsn > x->durable)
				x->keys[k].n--;
		x->last = x->durable;
		assert_int_equal(tl_last_record_lsn(tl), x->last);
	}
	m->ops_restart++;
}

static void op_flush(struct model *m, int t)
{
	struct ar_timeline *tl = tenant_timeline(m->tenant, &m->tls[t].id);
	tl_maybe_freeze(tl, rnd_below(m, 2) == 0);
	m->tls[t].sealed = true;
	m->ops_freeze++;
	int rc = tl_flush(tl);
	if (rc == -EAGAIN) {
		/* Backpressure: compaction must catch up first. */
		bool did;
		assert_int_equal(tl_compact(tl, &did), 0);
		assert_true(did);
		rc = tl_flush(tl);
	}
	assert_int_equal(rc, 0);
	m->tls[t].durable = tl_disk_consistent_lsn(tl);
	m->ops_flush++;
}

/* Compaction or image creation in small steps, with puts and reads of every kind
 * between the steps: they must see a consistent store while the job runs. */
static void op_job(struct model *m, int t, enum tl_job_kind kind)
{
	struct ar_timeline *tl = tenant_timeline(m->tenant, &m->tls[t].id);
	struct tl_job *job;
	bool done = false;

	assert_int_equal(tl_job_start(tl, kind, &job), 0);
	if (!job)
		return;
	uint32_t removed;
	assert_int_equal(tl_gc(tl, tl_gc_cutoff(tl), NULL, 0, &removed), -EBUSY);
	while (!done) {
		assert_int_equal(tl_job_step(job, 1 + (uint32_t)rnd_below(m, 40), &done), 0);
		m->job_steps++;
		if (rnd_below(m, 2))
			op_put(m, t);
		reads_after_step(m);
	}
	if (kind == TL_JOB_COMPACT)
		m->ops_compact++;
	else
		m->ops_images++;
}

static void op_compact(struct model *m, int t)
{
	op_job(m, t, TL_JOB_COMPACT);
	if (rnd_below(m, 2))
		op_job(m, t, TL_JOB_IMAGES);
}

static void op_gc(struct model *m, int t)
{
	struct ar_timeline *tl = tenant_timeline(m->tenant, &m->tls[t].id);
	ar_lsn retain[TIMELINES_MAX];
	uint32_t n = tenant_child_lsns(m->tenant, tl, retain, TIMELINES_MAX);
	ar_lsn cur = tl_gc_cutoff(tl), top = tl_disk_consistent_lsn(tl);
	if (top <= cur)
		return;
	uint32_t removed;
	ar_lsn cutoff = cur + rnd_below(m, top - cur + 1);
	assert_int_equal(tl_gc(tl, cutoff, retain, n, &removed), 0);
	assert_int_equal(tl_gc_cutoff(tl), cutoff);
	m->ops_gc++;
	/* Below the cutoff: refused, clearly. */
	if (cutoff > tl_start_lsn(tl)) {
		uint8_t page[AR_PAGE_BYTES];
		uint32_t len;
		assert_int_equal(tl_get(tl, &m->keys[0], cutoff - 1, page, &len), -AR_EBELOWGC);
		m->reads_below_gc++;
	}
}

static void reads_after_step(struct model *m)
{
	for (int i = 0; i < 4; i++) {
		int t = (int)rnd_below(m, (uint64_t)m->count);
		struct mtl *x = &m->tls[t];
		ar_lsn lo = x->parent >= 0 ? x->branch_lsn : x->start;
		ar_lsn gc = tl_gc_cutoff(tenant_timeline(m->tenant, &x->id));
		if (lo < gc)
			lo = gc;
		if (x->last < lo)
			continue;
		check_read(m, t, (int)rnd_below(m, KEYS), lo + rnd_below(m, x->last - lo + 1));
		check_read(m, t, (int)rnd_below(m, KEYS), x->last);
		check_read(m, t, (int)rnd_below(m, KEYS),
			   gc > lo ? gc : lo); /* exactly the cutoff */
	}
	/* Exactly at a branch point, on both sides of it. */
	int c = (int)rnd_below(m, (uint64_t)m->count);
	if (m->tls[c].parent >= 0) {
		int key = (int)rnd_below(m, KEYS);
		check_read(m, c, key, m->tls[c].branch_lsn);
		check_read(m, m->tls[c].parent, key, m->tls[c].branch_lsn);
		m->reads_branch_point++;
	}
}

/* ---- driver ---- */

static void model_setup(struct model *m, uint64_t seed)
{
	memset(m, 0, sizeof(*m));
	m->rng = seed;
	for (int k = 0; k < KEYS; k++) {
		struct ar_rel rel = { 1663, 5, 16384 + (uint32_t)(k % 3), AR_FORK_MAIN };
		m->keys[k] = ar_key_rel_block(rel, (uint32_t)(k / 3) * 5);
	}
	assert_int_equal(ar_vfs_sim_create(seed, &m->vfs), 0);
	assert_int_equal(ar_blockcache_create(4u << 20, &m->cache), 0);
	m->env = (struct tl_env){ .vfs = m->vfs,
				  .cache = m->cache,
				  .redo = &ar_test_redo,
				  .checkpoint_distance_bytes = 32 * 1024,
				  .compact = { .compaction_threshold = 8,
					       .compaction_l0_max = 24,
					       .compaction_target_bytes = 512 * 1024,
					       .image_creation_threshold = 3,
					       .image_target_bytes = 64 * 1024 },
				  .layer_options = { .block_target_bytes = 4096,
						     .index_node_bytes = 512 } };
	struct tenant_params params = { .shards = { .shard_count = 1 } };
	assert_int_equal(tenant_create(&m->env, "/tenant", &params, &m->tenant), 0);
	struct ar_timeline *tl;
	m->tls[0] = (struct mtl){
		.id = make_id(0), .parent = -1, .start = 0x100, .last = 0xFF, .durable = 0xFF
	};
	assert_int_equal(tenant_timeline_create(m->tenant, &m->tls[0].id, 0x100, &tl), 0);
	m->count = 1;
}

static void model_teardown(struct model *m)
{
	tenant_close(m->tenant);
	for (int t = 0; t < m->count; t++)
		for (int k = 0; k < KEYS; k++)
			free(m->tls[t].keys[k].puts);
	ar_blockcache_destroy(m->cache);
	ar_vfs_destroy(m->vfs);
}

static void model_run(uint64_t seed, uint64_t ops)
{
	struct model *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	print_message("model seed %llu, %llu operations (ARGON_MODEL_SEED=%llu replays it)\n",
		      (unsigned long long)seed, (unsigned long long)ops, (unsigned long long)seed);
	model_setup(m, seed);
	for (uint64_t i = 0; i < ops; i++) {
		uint64_t r = rnd_below(m, 1000);
		/* The root gets half the work, so its layers grow deep indexes. */
		int t = rnd_below(m, 2) ? 0 : (int)rnd_below(m, (uint64_t)m->count);
		if (r < 860)
			op_put(m, t);
		else if (r < 930)
			op_flush(m, t);
		else if (r < 955)
			op_compact(m, t);
		else if (r < 970)
			op_gc(m, t);
		else if (r < 992)
			op_branch(m);
		else
			op_restart(m);
		reads_after_step(m);
	}
	sum_stats(m);
	print_message("  puts %llu, branches %llu (depth %llu), flushes %llu, restarts %llu, "
		      "reads %llu (%llu missing, %llu at branch points)\n",
		      (unsigned long long)m->ops_put, (unsigned long long)m->ops_branch,
		      (unsigned long long)m->max_depth, (unsigned long long)m->ops_flush,
		      (unsigned long long)m->ops_restart, (unsigned long long)m->reads,
		      (unsigned long long)m->reads_missing,
		      (unsigned long long)m->reads_branch_point);
	print_message("  layers written %llu, redo calls %llu, images returned %llu, "
		      "ancestor fall-throughs %llu\n",
		      (unsigned long long)m->totals.layers_written,
		      (unsigned long long)m->totals.redo_calls,
		      (unsigned long long)m->totals.images_returned,
		      (unsigned long long)m->totals.ancestor_fallthroughs);
	print_message(
	    "  compactions %llu (L1 written %llu), images created %llu, GC runs %llu "
	    "(layers removed %llu, reads below cutoff %llu), branches below cutoff "
	    "refused %llu, backpressure %llu, deepest index %u levels\n",
	    (unsigned long long)m->totals.compactions, (unsigned long long)m->totals.l1_written,
	    (unsigned long long)m->totals.images_created, (unsigned long long)m->ops_gc,
	    (unsigned long long)m->totals.gc_layers_removed, (unsigned long long)m->reads_below_gc,
	    (unsigned long long)m->branches_refused, (unsigned long long)m->totals.backpressure,
	    m->totals.index_levels_max);
	print_message("  compaction and image jobs %llu + %llu, in %llu steps with puts and reads "
		      "between them\n",
		      (unsigned long long)m->ops_compact, (unsigned long long)m->ops_images,
		      (unsigned long long)m->job_steps);
	/* Every operation kind did real work. */
	assert_true(m->job_steps > m->ops_compact + m->ops_images);
	assert_true(m->totals.compactions > 0);
	assert_true(m->totals.images_created > 0);
	assert_true(m->totals.gc_layers_removed > 0);
	assert_true(m->totals.index_levels_max >= 3);
	assert_true(m->branches_refused > 0);
	assert_true(m->ops_branch >= 5);
	assert_true(m->max_depth >= 5);
	assert_true(m->ops_restart > 0);
	assert_true(m->totals.layers_written > 0);
	assert_true(m->totals.redo_calls > 0);
	assert_true(m->totals.images_returned > 0);
	assert_true(m->totals.ancestor_fallthroughs > 0);
	assert_true(m->reads_branch_point > 0);
	model_teardown(m);
	free(m);
}

static void test_model(void **state)
{
	(void)state;
	const char *seed_env = getenv("ARGON_MODEL_SEED");
	const char *ops_env = getenv("ARGON_MODEL_OPS");
#ifdef AR_DEBUG_CHECKS
	uint64_t ops_default = 5000; /* sanitizer builds: the gcc build runs the full count */
#else
	uint64_t ops_default = 25000;
#endif
	uint64_t ops = ops_env ? strtoull(ops_env, NULL, 10) : ops_default;
	if (seed_env) {
		model_run(strtoull(seed_env, NULL, 10), ops);
		return;
	}
	for (uint64_t seed = 1; seed <= 4; seed++)
		model_run(seed * 7919, ops);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
