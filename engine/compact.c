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

uint32_t tl_l0_count(const struct ar_timeline *tl)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < tl->layer_count; i++)
		n += tl->layers[i].ml.level == 0;
	return n;
}

/* Where a pass's output goes: values in (key, LSN) order in, layer files of about
 * target bytes out, never splitting one key's versions; consecutive layers' key
 * ranges touch.  Memory: one writer at a time. */
struct sink {
	struct ar_timeline *tl;
	enum lyr_kind kind;
	ar_lsn lsn_start;
	ar_lsn lsn_end;
	uint64_t target;
	struct lyr_writer *w;
	struct manifest_layer cur;
	struct manifest_layer *out;
	uint32_t out_count;
	uint32_t out_cap;
	struct ar_key last;
	bool have_last;
};

static void sink_init(struct sink *s, struct ar_timeline *tl, enum lyr_kind kind, ar_lsn start,
		      ar_lsn end, uint64_t target)
{
	*s = (struct sink){ .tl = tl,
			    .kind = kind,
			    .lsn_start = start,
			    .lsn_end = end,
			    .target = target ? target : 1 };
}

static void sink_tmp_path(struct sink *s, char *path, size_t size)
{
	char name[64];
	snprintf(name, sizeof(name), "compact-%08" PRIx32 ".tmp", s->cur.seq);
	tl_path(s->tl, name, path, size);
}

/* Finish the open layer at key range end `end` and give it its final name. */
static int sink_close_layer(struct sink *s, const struct ar_key *end)
{
	char name[LYR_NAME_BYTES + 16], tmp[AR_PATH_BYTES_MAX], path[AR_PATH_BYTES_MAX];

	if (s->out_count == s->out_cap) {
		uint32_t cap = s->out_cap ? s->out_cap * 2 : 8;
		struct manifest_layer *n = realloc(s->out, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->out = n;
		s->out_cap = cap;
	}
	lyr_writer_set_key_end(s->w, end);
	int rc = lyr_writer_finish(s->w, &s->cur.info);
	s->w = NULL;
	if (rc < 0)
		return rc;
	struct tl_stats *st = &s->tl->stats;
	if (s->cur.info.index_levels > st->index_levels_max)
		st->index_levels_max = s->cur.info.index_levels;
	sink_tmp_path(s, tmp, sizeof(tmp));
	manifest_layer_file_name(&s->cur, name);
	tl_path(s->tl, name, path, sizeof(path));
	rc = ar_vfs_rename(s->tl->env->vfs, tmp, path);
	if (rc == 0)
		s->out[s->out_count++] = s->cur;
	return rc;
}

static int sink_append(struct sink *s, const struct ar_key *key, ar_lsn lsn,
		       const struct ar_value *v)
{
	char tmp[AR_PATH_BYTES_MAX];
	bool new_key = !s->have_last || ar_key_cmp(&s->last, key) != 0;
	int rc = 0;

	if (s->w && new_key && lyr_writer_bytes(s->w) >= s->target)
		rc = sink_close_layer(s, key);
	if (rc == 0 && !s->w) {
		s->cur = (struct manifest_layer){ .level = 1, .seq = s->tl->next_seq++ };
		s->cur.info = (struct lyr_info){ .kind = s->kind,
						 .keys = { *key, ar_key_max() },
						 .lsn_start = s->lsn_start,
						 .lsn_end = s->lsn_end };
		sink_tmp_path(s, tmp, sizeof(tmp));
		rc = lyr_writer_create(s->tl->env->vfs, tmp, &s->cur.info,
				       &s->tl->env->layer_options, &s->w);
	}
	if (rc == 0)
		rc = lyr_writer_append(s->w, key, s->kind == LYR_IMAGE ? s->lsn_start : lsn, v);
	s->last = *key;
	s->have_last = true;
	return rc;
}

static int sink_finish(struct sink *s)
{
	if (!s->w)
		return 0;
	struct ar_key end = ar_key_next(&s->last);
	return sink_close_layer(s, &end);
}

static void sink_free(struct sink *s)
{
	lyr_writer_abort(s->w); /* only after a failure: its file is a stray */
	free(s->out);
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

struct merge {
	struct lyr_reader *reader;
	struct lyr_cursor *cur;
	struct ar_key key;
	ar_lsn lsn;
	struct ar_value value;
	bool live;
};

static int merge_advance(struct merge *m)
{
	int rc = lyr_cursor_next(m->cur, &m->key, &m->lsn, &m->value);
	m->live = rc == 1;
	return rc < 0 ? rc : 0;
}

/* Merge the cursors' values in (key, LSN) order into the sink. */
static int merge_into(struct merge *m, uint32_t n, struct sink *s)
{
	int rc = 0;
	for (uint32_t i = 0; rc == 0 && i < n; i++)
		rc = merge_advance(&m[i]);
	/* Bounded: each pass consumes one value of a finite set. */
	while (rc == 0) {
		struct merge *best = NULL;
		for (uint32_t i = 0; i < n; i++) {
			if (!m[i].live)
				continue;
			int c = best ? ar_key_cmp(&m[i].key, &best->key) : -1;
			if (!best || c < 0 || (c == 0 && m[i].lsn < best->lsn))
				best = &m[i];
		}
		if (!best)
			break;
		rc = sink_append(s, &best->key, best->lsn, &best->value);
		if (rc == 0)
			rc = merge_advance(best);
	}
	return rc;
}

int tl_compact(struct ar_timeline *tl, bool *did_work)
{
	const struct tl_compact_params *p = &tl->env->compact;
	struct sink s;
	uint32_t n = 0;

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
	struct merge *m = calloc(take + 1, sizeof(*m));
	if (rc == 0 && !m)
		rc = -ENOMEM;
	for (uint32_t i = 0; rc == 0 && i < take; i++) {
		struct lyr_reader *r;
		rc = tl_layer_reader(tl, l0[i], &r);
		if (rc == 0)
			rc = lyr_cursor_open(r, &m[i].cur);
		m[i].reader = rc == 0 ? r : NULL;
		drop[l0[i] - tl->layers] = true;
	}
	sink_init(&s, tl, LYR_DELTA, take ? l0[0]->ml.info.lsn_start : 0,
		  take ? l0[take - 1]->ml.info.lsn_end : 0, p->compaction_target_bytes);
	if (rc == 0 && take > 0)
		rc = merge_into(m, take, &s);
	if (rc == 0)
		rc = sink_finish(&s);
	for (uint32_t i = 0; rc == -AR_ECORRUPT && m && i < take; i++)
		if (m[i].reader && lyr_reader_error(m[i].reader)[0])
			snprintf(tl->err, sizeof(tl->err), "%s", lyr_reader_error(m[i].reader));
	if (rc == 0 && take > 0)
		rc = install(tl, drop, s.out, s.out_count);
	if (rc == 0 && take > 0) {
		*did_work = true;
		tl->stats.compactions++;
		tl->stats.l0_merged += take;
		tl->stats.l1_written += s.out_count;
	}
	for (uint32_t i = 0; m && i < take; i++)
		lyr_cursor_close(m[i].cur);
	sink_free(&s);
	free(m);
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
	struct sink s;
	uint8_t page[AR_PAGE_BYTES];
	ar_lsn newest, at = tl->disk_consistent_lsn;
	uint64_t images = 0;

	*did_work = false;
	if (!images_due(tl, p->image_creation_threshold, &newest) || at <= newest ||
	    at < tl->start_lsn || at < tl->gc_cutoff)
		return 0;
	sink_init(&s, tl, LYR_IMAGE, at, at + 1, p->image_target_bytes);
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
			rc = sink_append(&s, &ks.keys[i], at, &v);
		images += rc == 0;
	}
	if (rc == 0)
		rc = sink_finish(&s);
	bool *drop = calloc(tl->layer_count + 1, sizeof(*drop));
	if (rc == 0 && !drop)
		rc = -ENOMEM;
	if (rc == 0 && s.out_count > 0)
		rc = install(tl, drop, s.out, s.out_count);
	if (rc == 0 && s.out_count > 0) {
		*did_work = true;
		tl->stats.image_layers_written += s.out_count;
		tl->stats.images_created += images;
	}
	free(drop);
	free(ks.keys);
	sink_free(&s);
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
