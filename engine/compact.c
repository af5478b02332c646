/*
 * compact.c - Background maintenance of a timeline's layers, in bounded passes
 * run on the owning core between reads: L0 -> L1 compaction, image creation,
 * and GC.
 *
 * Every pass follows the same durable order: write the new files (each
 * fsynced) under temporary names, rename them to their final names, fsync the
 * directory, install them in the layer list and write the manifest; only then
 * remove the files the manifest no longer lists.  A crash anywhere leaves the
 * old manifest (whose files are all still there) or the new one (whose files
 * are all durable); unlisted files are strays removed at the next open.
 *
 * Invariant kept for reads: for any key, the delta layers of one timeline never
 * overlap in LSN (an L1 replaces exactly the LSN range of the L0s it merged).
 */
#include "common/assert.h"
#include "common/err.h"
#include "common/limits.h"
#include "engine/timeline_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values gathered in memory for one pass, data in one buffer. */
struct gathered {
	struct gval *v;
	size_t n;
	size_t cap;
	uint8_t *bytes;
	size_t used;
	size_t bytes_cap;
};

struct gval {
	struct ar_key key;
	ar_lsn lsn;
	struct ar_value value; /* data fixed up from off before use */
	size_t off;
};

static int gather_one(void *ctx, const struct ar_key *key, ar_lsn lsn, const struct ar_value *v)
{
	struct gathered *g = ctx;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 1024;
		struct gval *n = realloc(g->v, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		g->v = n;
		g->cap = cap;
	}
	if (g->used + v->len > g->bytes_cap) {
		size_t cap = g->bytes_cap ? g->bytes_cap * 2 : 1 << 20;
		while (cap < g->used + v->len)
			cap *= 2;
		uint8_t *b = realloc(g->bytes, cap);
		if (!b)
			return -ENOMEM;
		g->bytes = b;
		g->bytes_cap = cap;
	}
	memcpy(g->bytes + g->used, v->data, v->len);
	g->v[g->n++] = (struct gval){ .key = *key, .lsn = lsn, .value = *v, .off = g->used };
	g->used += v->len;
	return 0;
}

static void gathered_free(struct gathered *g)
{
	free(g->v);
	free(g->bytes);
}

static int gval_cmp(const void *a, const void *b)
{
	const struct gval *x = a, *y = b;
	int c = ar_key_cmp(&x->key, &y->key);
	if (c != 0)
		return c;
	return x->lsn < y->lsn ? -1 : x->lsn > y->lsn ? 1 : 0;
}

uint32_t tl_l0_count(const struct ar_timeline *tl)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < tl->layer_count; i++)
		n += tl->layers[i].ml.level == 0;
	return n;
}

/* Write one layer of values v[from..to) to its final name; out gets its entry. */
static int write_chunk(struct ar_timeline *tl, enum lyr_kind kind, ar_lsn lsn_start, ar_lsn lsn_end,
		       struct gathered *g, size_t from, size_t to, const struct ar_key *key_end,
		       struct manifest_layer *out)
{
	char name[LYR_NAME_BYTES + 16], tmp[AR_PATH_BYTES_MAX], path[AR_PATH_BYTES_MAX];
	struct lyr_writer *w = NULL;

	*out = (struct manifest_layer){ .level = 1, .seq = tl->next_seq++ };
	out->info = (struct lyr_info){ .kind = kind,
				       .keys = { g->v[from].key, *key_end },
				       .lsn_start = lsn_start,
				       .lsn_end = lsn_end };
	snprintf(name, sizeof(name), "compact-%08" PRIx32 ".tmp", out->seq);
	tl_path(tl, name, tmp, sizeof(tmp));
	int rc = lyr_writer_create(tl->env->vfs, tmp, &out->info, &tl->env->layer_options, &w);
	for (size_t i = from; rc == 0 && i < to; i++) {
		g->v[i].value.data = g->bytes + g->v[i].off;
		rc = lyr_writer_append(w, &g->v[i].key, kind == LYR_IMAGE ? lsn_start : g->v[i].lsn,
				       &g->v[i].value);
	}
	if (rc == 0)
		rc = lyr_writer_finish(w, &out->info);
	else if (w)
		lyr_writer_abort(w);
	if (rc < 0)
		return rc;
	if (out->info.index_levels > tl->stats.index_levels_max)
		tl->stats.index_levels_max = out->info.index_levels;
	manifest_layer_file_name(out, name);
	tl_path(tl, name, path, sizeof(path));
	return ar_vfs_rename(tl->env->vfs, tmp, path);
}

/* Cut sorted values into layers of about target bytes, never splitting a key;
 * consecutive layers' key ranges touch, so together they cover [first, last]. */
static int write_layers(struct ar_timeline *tl, enum lyr_kind kind, ar_lsn lsn_start,
			ar_lsn lsn_end, struct gathered *g, uint64_t target,
			struct manifest_layer **out, uint32_t *out_count)
{
	size_t from = 0;
	uint32_t count = 0;
	int rc = 0;

	*out = calloc(g->n + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	while (rc == 0 && from < g->n) {
		size_t to = from;
		uint64_t bytes = 0;
		while (to < g->n &&
		       (bytes < target || ar_key_cmp(&g->v[to].key, &g->v[to - 1].key) == 0)) {
			bytes += AR_KEY_BYTES + 8 + ar_value_encoded_bytes(&g->v[to].value);
			to++;
		}
		struct ar_key end = to < g->n ? g->v[to].key : ar_key_next(&g->v[to - 1].key);
		rc = write_chunk(tl, kind, lsn_start, lsn_end, g, from, to, &end, &(*out)[count]);
		if (rc == 0)
			count++;
		from = to;
	}
	*out_count = count;
	return rc;
}

static void layer_forget(struct ar_timeline *tl, struct tl_layer *l)
{
	if (l->reader) {
		lyr_reader_close(l->reader);
		ar_blockcache_drop_file(tl->env->cache, l->file_id);
		l->reader = NULL;
	}
}

/* Replace the layers marked in drop[] by add[], durably; then remove the dropped
 * files.  On failure the layer list is as before (new files become strays). */
static int install(struct ar_timeline *tl, const bool *drop, const struct manifest_layer *add,
		   uint32_t add_count)
{
	uint32_t old_count = tl->layer_count;
	struct tl_layer *saved = malloc((old_count + 1) * sizeof(*saved));
	int rc = saved ? tl_layers_reserve(tl, add_count) : -ENOMEM;

	if (rc == 0)
		rc = ar_vfs_fsync_dir(tl->env->vfs, tl->dir); /* the new files' names */
	if (rc < 0) {
		free(saved);
		return rc;
	}
	memcpy(saved, tl->layers, old_count * sizeof(*saved));
	uint32_t kept = 0;
	for (uint32_t i = 0; i < old_count; i++)
		if (!drop[i])
			tl->layers[kept++] = saved[i];
	for (uint32_t i = 0; i < add_count; i++)
		tl->layers[kept++] = (struct tl_layer){ .ml = add[i] };
	tl->layer_count = kept;
	rc = tl_manifest_write(tl);
	if (rc < 0) {
		memcpy(tl->layers, saved, old_count * sizeof(*saved));
		tl->layer_count = old_count;
		free(saved);
		return rc;
	}
	for (uint32_t i = 0; i < old_count; i++) {
		if (!drop[i])
			continue;
		char name[LYR_NAME_BYTES + 16], path[AR_PATH_BYTES_MAX];
		layer_forget(tl, &saved[i]);
		manifest_layer_file_name(&saved[i].ml, name);
		tl_path(tl, name, path, sizeof(path));
		(void)ar_vfs_unlink(tl->env->vfs,
				    path); /* a leftover is a stray: removed at open */
	}
	free(saved);
	return 0;
}

static int l0_order(const void *a, const void *b)
{
	const struct tl_layer *x = *(const struct tl_layer *const *)a;
	const struct tl_layer *y = *(const struct tl_layer *const *)b;
	return x->ml.info.lsn_start < y->ml.info.lsn_start ? -1 : 1;
}

int tl_compact(struct ar_timeline *tl, bool *did_work)
{
	const struct tl_compact_params *p = &tl->env->compact;
	struct gathered g = { 0 };
	struct manifest_layer *add = NULL;
	uint32_t add_count = 0, n = 0;

	*did_work = false;
	if (p->compaction_threshold == 0 || tl_l0_count(tl) < p->compaction_threshold)
		return 0;
	struct tl_layer **l0 = malloc(tl->layer_count * sizeof(*l0));
	bool *drop = calloc(tl->layer_count + 1, sizeof(*drop));
	int rc = l0 && drop ? 0 : -ENOMEM;
	for (uint32_t i = 0; rc == 0 && i < tl->layer_count; i++)
		if (tl->layers[i].ml.level == 0)
			l0[n++] = &tl->layers[i];
	if (rc == 0)
		qsort(l0, n, sizeof(*l0), l0_order);
	uint32_t take =
	    n < p->compaction_l0_max || !p->compaction_l0_max ? n : p->compaction_l0_max;
	for (uint32_t i = 0; rc == 0 && i < take; i++) {
		struct lyr_reader *r;
		rc = tl_layer_reader(tl, l0[i], &r);
		if (rc == 0)
			rc = lyr_reader_scan(r, gather_one, &g);
		if (rc == -AR_ECORRUPT)
			snprintf(tl->err, sizeof(tl->err), "%s", lyr_reader_error(r));
		drop[l0[i] - tl->layers] = true;
	}
	if (rc == 0 && take > 0) {
		qsort(g.v, g.n, sizeof(*g.v), gval_cmp);
		ar_lsn start = l0[0]->ml.info.lsn_start, end = l0[take - 1]->ml.info.lsn_end;
		uint64_t target = p->compaction_target_bytes ? p->compaction_target_bytes : 1;
		if (g.n > 0)
			rc = write_layers(tl, LYR_DELTA, start, end, &g, target, &add, &add_count);
	}
	if (rc == 0 && take > 0)
		rc = install(tl, drop, add, add_count);
	if (rc == 0 && take > 0) {
		*did_work = true;
		tl->stats.compactions++;
		tl->stats.l0_merged += take;
		tl->stats.l1_written += add_count;
	}
	gathered_free(&g);
	free(add);
	free(l0);
	free(drop);
	return rc;
}

/* ---- image creation ---- */

struct keyset {
	struct ar_key *keys;
	size_t n;
	size_t cap;
};

static int keyset_add(void *ctx, const struct ar_key *key, ar_lsn lsn, const struct ar_value *v)
{
	struct keyset *s = ctx;
	(void)lsn;
	(void)v;
	if (s->n && ar_key_cmp(&s->keys[s->n - 1], key) == 0)
		return 0; /* scans are in key order: versions of one key come together */
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		struct ar_key *k = realloc(s->keys, cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		s->keys = k;
		s->cap = cap;
	}
	s->keys[s->n++] = *key;
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	return ar_key_cmp(a, b);
}

/* Every key any layer of tl or its ancestors holds (candidates; existence at an
 * LSN is decided by reading). */
static int collect_keys(struct ar_timeline *tl, struct keyset *s)
{
	for (struct ar_timeline *t = tl; t; t = t->ancestor) {
		for (uint32_t i = 0; i < t->layer_count; i++) {
			struct lyr_reader *r;
			int rc = tl_layer_reader(t, &t->layers[i], &r);
			if (rc == 0)
				rc = lyr_reader_scan(r, keyset_add, s);
			if (rc < 0)
				return rc;
		}
	}
	qsort(s->keys, s->n, sizeof(*s->keys), key_cmp);
	size_t u = 0;
	for (size_t i = 0; i < s->n; i++)
		if (u == 0 || ar_key_cmp(&s->keys[u - 1], &s->keys[i]) != 0)
			s->keys[u++] = s->keys[i];
	s->n = u;
	return 0;
}

static bool images_due(const struct ar_timeline *tl, uint32_t threshold, ar_lsn *newest_out)
{
	ar_lsn newest = 0;
	bool have = false;
	for (uint32_t i = 0; i < tl->layer_count; i++) {
		const struct lyr_info *x = &tl->layers[i].ml.info;
		if (x->kind == LYR_IMAGE && (!have || x->lsn_start > newest)) {
			newest = x->lsn_start;
			have = true;
		}
	}
	uint32_t above = 0;
	for (uint32_t i = 0; i < tl->layer_count; i++) {
		const struct lyr_info *x = &tl->layers[i].ml.info;
		above += x->kind == LYR_DELTA && (!have || x->lsn_end > newest + 1);
	}
	*newest_out = have ? newest : 0;
	return threshold > 0 && above >= threshold;
}

int tl_create_images(struct ar_timeline *tl, bool *did_work)
{
	const struct tl_compact_params *p = &tl->env->compact;
	struct keyset ks = { 0 };
	struct gathered g = { 0 };
	struct manifest_layer *add = NULL;
	uint32_t add_count = 0;
	uint8_t page[AR_PAGE_BYTES];
	ar_lsn newest, at = tl->disk_consistent_lsn;

	*did_work = false;
	if (!images_due(tl, p->image_creation_threshold, &newest) || at <= newest ||
	    at < tl->start_lsn || at < tl->gc_cutoff)
		return 0;
	int rc = collect_keys(tl, &ks);
	for (size_t i = 0; rc == 0 && i < ks.n; i++) {
		uint32_t len;
		rc = tl_get(tl, &ks.keys[i], at, page, &len);
		if (rc == -AR_ENOKEY) {
			rc = 0;
			continue;
		}
		struct ar_value v = { .kind = AR_VALUE_IMAGE, .len = len, .data = page };
		if (rc == 0)
			rc = gather_one(&g, &ks.keys[i], at, &v);
	}
	uint64_t target = p->image_target_bytes ? p->image_target_bytes : 1;
	if (rc == 0 && g.n > 0)
		rc = write_layers(tl, LYR_IMAGE, at, at + 1, &g, target, &add, &add_count);
	bool *drop = calloc(tl->layer_count + 1, sizeof(*drop));
	if (rc == 0 && !drop)
		rc = -ENOMEM;
	if (rc == 0 && add_count > 0)
		rc = install(tl, drop, add, add_count);
	if (rc == 0 && add_count > 0) {
		*did_work = true;
		tl->stats.image_layers_written += add_count;
		tl->stats.images_created += g.n;
	}
	free(drop);
	free(ks.keys);
	gathered_free(&g);
	free(add);
	return rc;
}

/* ---- GC ---- */

/* The LSN up to which a layer's values reach: a delta's last, an image's own. */
static ar_lsn layer_top(const struct lyr_info *x)
{
	return x->lsn_end - 1;
}

static bool retained_between(const ar_lsn *retain, uint32_t n, ar_lsn lo, ar_lsn hi)
{
	for (uint32_t i = 0; i < n; i++)
		if (retain[i] >= lo && retain[i] < hi)
			return true;
	return false;
}

/* Is x's key range covered by images newer than x, at or below the cutoff, with
 * no retained LSN between x's start and the image? */
static bool covered_by_images(const struct ar_timeline *tl, uint32_t xi, ar_lsn cutoff,
			      const ar_lsn *retain, uint32_t retain_count)
{
	const struct lyr_info *x = &tl->layers[xi].ml.info;
	struct ar_key need = x->keys.start;

	/* Bounded: each pass advances need past one image's end, or gives up. */
	for (uint32_t pass = 0; pass <= tl->layer_count; pass++) {
		if (ar_key_cmp(&need, &x->keys.end) >= 0)
			return true;
		bool advanced = false;
		for (uint32_t i = 0; i < tl->layer_count; i++) {
			const struct lyr_info *im = &tl->layers[i].ml.info;
			if (i == xi || im->kind != LYR_IMAGE || im->lsn_start > cutoff)
				continue;
			bool newer = x->kind == LYR_IMAGE ? im->lsn_start > x->lsn_start
							  : im->lsn_start >= layer_top(x);
			if (!newer || !ar_key_range_contains(&im->keys, &need))
				continue;
			if (retained_between(retain, retain_count, x->lsn_start, im->lsn_start))
				continue;
			if (ar_key_cmp(&im->keys.end, &need) > 0) {
				need = im->keys.end;
				advanced = true;
			}
		}
		if (!advanced)
			return false;
	}
	return false;
}

int tl_gc(struct ar_timeline *tl, ar_lsn cutoff, const ar_lsn *retain, uint32_t retain_count,
	  uint32_t *removed_out)
{
	*removed_out = 0;
	if (cutoff > tl->disk_consistent_lsn)
		cutoff = tl->disk_consistent_lsn; /* only what is on disk is collected */
	if (cutoff < tl->gc_cutoff)
		cutoff = tl->gc_cutoff;
	bool *drop = calloc(tl->layer_count + 1, sizeof(*drop));
	if (!drop)
		return -ENOMEM;
	uint32_t removed = 0;
	for (uint32_t i = 0; i < tl->layer_count; i++) {
		const struct lyr_info *x = &tl->layers[i].ml.info;
		if (layer_top(x) <= cutoff &&
		    covered_by_images(tl, i, cutoff, retain, retain_count)) {
			drop[i] = true;
			removed++;
		}
	}
	ar_lsn before = tl->gc_cutoff;
	tl->gc_cutoff = cutoff;
	int rc = removed || cutoff != before ? install(tl, drop, NULL, 0) : 0;
	if (rc < 0)
		tl->gc_cutoff = before;
	if (rc == 0) {
		tl->stats.gc_runs++;
		tl->stats.gc_layers_removed += removed;
		*removed_out = removed;
	}
	free(drop);
	return rc;
}
