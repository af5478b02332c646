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
static int install(struct ar_timeline *tl, const bool *drop, uint32_t drop_count,
		   const struct manifest_layer *add, uint32_t add_count)
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
	/* Layers flushed while a job ran sit past drop_count: all kept. */
	for (uint32_t i = 0; i < old_count; i++)
		if (i >= drop_count || !drop[i])
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
	for (uint32_t i = 0; i < drop_count; i++) {
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
				rc = lyr_reader_scan_keys(r, keyset_add, s);
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

/* ---- jobs: compaction and image creation in steps ---- */

/* A compaction or image creation in progress: reads, puts and flushes go on
 * between its steps and see the old layers until it installs the new ones. */
struct tl_job {
	struct ar_timeline *tl;
	enum tl_job_kind kind;
	struct sink s;
	bool *drop; /* by layer index at the start (flushes only append) */
	uint32_t drop_count;
	struct merge *m; /* compaction: one cursor per L0 */
	uint32_t take;
	bool primed;
	struct keyset *ks; /* images: the candidate keys, the next one, the LSN */
	size_t next_key;
	ar_lsn at;
	uint64_t images;
};

static void job_free(struct tl_job *job)
{
	for (uint32_t i = 0; job->m && i < job->take; i++)
		lyr_cursor_close(job->m[i].cur);
	if (job->ks)
		free(job->ks->keys);
	free(job->ks);
	sink_free(&job->s);
	free(job->m);
	free(job->drop);
	job->tl->job = NULL;
	free(job);
}

static int compact_start(struct tl_job *job)
{
	struct ar_timeline *tl = job->tl;
	const struct tl_compact_params *p = &tl->env->compact;
	uint32_t n = 0;

	struct tl_layer **l0 = malloc((tl->layer_count + 1) * sizeof(*l0));
	if (!l0)
		return -ENOMEM;
	for (uint32_t i = 0; i < tl->layer_count; i++)
		if (tl->layers[i].ml.level == 0)
			l0[n++] = &tl->layers[i];
	qsort(l0, n, sizeof(*l0), l0_order);
	job->take = n < p->compaction_l0_max || !p->compaction_l0_max ? n : p->compaction_l0_max;
	job->m = calloc(job->take + 1, sizeof(*job->m));
	int rc = job->m ? 0 : -ENOMEM;
	for (uint32_t i = 0; rc == 0 && i < job->take; i++) {
		struct lyr_reader *r;
		rc = tl_layer_reader(tl, l0[i], &r);
		if (rc == 0)
			rc = lyr_cursor_open(r, &job->m[i].cur);
		job->m[i].reader = rc == 0 ? r : NULL;
		job->drop[l0[i] - tl->layers] = true;
	}
	sink_init(&job->s, tl, LYR_DELTA, l0[0]->ml.info.lsn_start,
		  l0[job->take - 1]->ml.info.lsn_end, p->compaction_target_bytes);
	free(l0);
	return rc;
}

/* Merge up to budget values; *done once every input is used up. */
static int compact_step(struct tl_job *job, uint32_t budget, bool *done)
{
	int rc = 0;
	for (uint32_t i = 0; !job->primed && rc == 0 && i < job->take; i++)
		rc = merge_advance(&job->m[i]);
	job->primed = true;
	for (uint32_t n = 0; rc == 0 && n < budget; n++) {
		struct merge *best = NULL;
		for (uint32_t i = 0; i < job->take; i++) {
			struct merge *x = &job->m[i];
			int c = best && x->live ? ar_key_cmp(&x->key, &best->key) : -1;
			if (x->live && (!best || c < 0 || (c == 0 && x->lsn < best->lsn)))
				best = x;
		}
		if (!best) {
			*done = true;
			break;
		}
		rc = sink_append(&job->s, &best->key, best->lsn, &best->value);
		if (rc == 0)
			rc = merge_advance(best);
	}
	for (uint32_t i = 0; rc == -AR_ECORRUPT && i < job->take; i++)
		if (job->m[i].reader && lyr_reader_error(job->m[i].reader)[0])
			snprintf(job->tl->err, sizeof(job->tl->err), "%s",
				 lyr_reader_error(job->m[i].reader));
	return rc;
}

static int images_start(struct tl_job *job)
{
	job->at = job->tl->disk_consistent_lsn;
	job->ks = calloc(1, sizeof(*job->ks));
	if (!job->ks)
		return -ENOMEM;
	sink_init(&job->s, job->tl, LYR_IMAGE, job->at, job->at + 1,
		  job->tl->env->compact.image_target_bytes);
	return collect_keys(job->tl, job->ks);
}

/* Rebuild up to budget keys at the job's LSN. */
static int images_step(struct tl_job *job, uint32_t budget, bool *done)
{
	uint8_t page[AR_PAGE_BYTES];
	int rc = 0;
	for (uint32_t n = 0; rc == 0 && n < budget && job->next_key < job->ks->n; n++) {
		const struct ar_key *key = &job->ks->keys[job->next_key++];
		uint32_t len;
		rc = tl_get(job->tl, key, job->at, page, &len);
		if (rc == -AR_ENOKEY) {
			rc = 0;
			continue;
		}
		struct ar_value v = { .kind = AR_VALUE_IMAGE, .len = len, .data = page };
		if (rc == 0)
			rc = sink_append(&job->s, key, job->at, &v);
		job->images += rc == 0;
	}
	*done = rc == 0 && job->next_key == job->ks->n;
	return rc;
}

static bool job_due(struct ar_timeline *tl, enum tl_job_kind kind)
{
	const struct tl_compact_params *p = &tl->env->compact;
	ar_lsn newest, at = tl->disk_consistent_lsn;
	if (kind == TL_JOB_COMPACT)
		return p->compaction_threshold && tl_l0_count(tl) >= p->compaction_threshold;
	return images_due(tl, p->image_creation_threshold, &newest) && at > newest &&
	       at >= tl->start_lsn && at >= tl->gc_cutoff;
}

int tl_job_start(struct ar_timeline *tl, enum tl_job_kind kind, struct tl_job **job_out)
{
	*job_out = NULL;
	if (tl->job)
		return -EBUSY;
	if (!job_due(tl, kind))
		return 0;
	struct tl_job *job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->tl = tl;
	job->kind = kind;
	job->drop_count = tl->layer_count;
	job->drop = calloc(tl->layer_count + 1, sizeof(*job->drop));
	tl->job = job;
	int rc = !job->drop               ? -ENOMEM
		 : kind == TL_JOB_COMPACT ? compact_start(job)
					  : images_start(job);
	if (rc < 0) {
		job_free(job);
		return rc;
	}
	*job_out = job;
	return 0;
}

int tl_job_step(struct tl_job *job, uint32_t budget, bool *done_out)
{
	struct ar_timeline *tl = job->tl;
	bool done = false;
	int rc = job->kind == TL_JOB_COMPACT ? compact_step(job, budget, &done)
					     : images_step(job, budget, &done);
	if (rc == 0 && done)
		rc = sink_finish(&job->s);
	if (rc == 0 && done && job->s.out_count > 0)
		rc = install(tl, job->drop, job->drop_count, job->s.out, job->s.out_count);
	if (rc == 0 && done && job->kind == TL_JOB_COMPACT) {
		tl->stats.compactions++;
		tl->stats.l0_merged += job->take;
		tl->stats.l1_written += job->s.out_count;
	} else if (rc == 0 && done && job->s.out_count > 0) {
		tl->stats.image_layers_written += job->s.out_count;
		tl->stats.images_created += job->images;
	}
	*done_out = done || rc < 0;
	if (*done_out)
		job_free(job);
	return rc;
}

void tl_job_abort(struct tl_job *job)
{
	if (job)
		job_free(job); /* files written so far are strays: removed at the next open */
}

static int job_run(struct ar_timeline *tl, enum tl_job_kind kind, bool *did_work)
{
	struct tl_job *job;
	bool done = false;
	*did_work = false;
	int rc = tl_job_start(tl, kind, &job);
	if (rc < 0 || !job)
		return rc;
	while (rc == 0 && !done)
		rc = tl_job_step(job, UINT32_MAX, &done);
	*did_work = rc == 0;
	return rc;
}

int tl_compact(struct ar_timeline *tl, bool *did_work)
{
	return job_run(tl, TL_JOB_COMPACT, did_work);
}

int tl_create_images(struct ar_timeline *tl, bool *did_work)
{
	return job_run(tl, TL_JOB_IMAGES, did_work);
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
	if (tl->job)
		return -EBUSY; /* a job's inputs must not vanish under it */
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
	int rc = removed || cutoff != before ? install(tl, drop, tl->layer_count, NULL, 0) : 0;
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
