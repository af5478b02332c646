/*
 * timeline.c - Timeline shards: put, freeze, flush, GetPage@LSN, manifests.
 *
 * GetPage(key, X) walks sources newest first with cont = X + 1 (values below
 * cont are wanted):
 *   D = the delta source (open or frozen in-memory layer, or delta layer file
 *       covering the key) with the greatest start below cont;
 *   I = the image layer covering the key with the greatest LSN below cont.
 *   If I exists and I.lsn >= D.start (or there is no D): take D's values above
 *   I.lsn, then I's image of the key (absent there: the key does not exist).
 *   Else take D's values and continue below D.start.  With nothing left on this
 *   timeline, continue on the ancestor below ancestor_lsn + 1.
 * Values are taken newest first until a base (an image, or a will_init record).
 * Delta sources of one timeline never overlap in LSN for a key (in-memory layers
 * and L0s cover consecutive ranges; compaction replaces L0s by L1s of the same
 * LSN range), which is what makes "greatest start" the newest source.
 *
 * Durability: a layer file is written and fsynced, its directory fsynced, and
 * only then listed by a new manifest (written to manifest.tmp, fsynced, renamed,
 * directory fsynced).  At open, files the manifest does not list are removed.
 */
#include "engine/timeline.h"

#include "common/assert.h"
#include "common/bytes.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/runtime.h"
#include "engine/inmem.h"
#include "engine/timeline_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tl_path(const struct ar_timeline *tl, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", tl->dir, name);
}

/* ---- manifest file ---- */

static void tl_manifest_fill(const struct ar_timeline *tl, struct manifest *m,
			     struct manifest_layer *layers)
{
	memset(m, 0, sizeof(*m));
	m->id = tl->id;
	m->has_ancestor = tl->has_ancestor;
	m->ancestor = tl->ancestor_id;
	m->ancestor_lsn = tl->ancestor_lsn;
	m->start_lsn = tl->start_lsn;
	m->disk_consistent_lsn = tl->disk_consistent_lsn;
	m->gc_cutoff = tl->gc_cutoff;
	m->next_seq = tl->next_seq;
	m->layer_count = tl->layer_count;
	m->layers = layers;
	for (uint32_t i = 0; i < tl->layer_count; i++)
		layers[i] = tl->layers[i].ml;
}

/* write manifest.tmp, fsync, rename over manifest, fsync the directory */
int tl_manifest_write(struct ar_timeline *tl)
{
	char tmp[AR_PATH_BYTES_MAX], final[AR_PATH_BYTES_MAX];
	struct manifest m;
	int fd = -1;

	struct manifest_layer *layers = calloc(tl->layer_count + 1, sizeof(*layers));
	if (!layers)
		return -ENOMEM;
	tl_manifest_fill(tl, &m, layers);
	size_t n = manifest_encoded_bytes(&m);
	uint8_t *buf = malloc(n);
	int rc = buf ? 0 : -ENOMEM;
	if (rc == 0) {
		manifest_encode(&m, buf);
		tl_path(tl, TL_MANIFEST_TMP, tmp, sizeof(tmp));
		tl_path(tl, TL_MANIFEST, final, sizeof(final));
		rc = ar_vfs_open(tl->env->vfs, tmp, AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_TRUNC,
				 &fd);
	}
	if (rc == 0) {
		int64_t w = ar_vfs_pwrite(tl->env->vfs, fd, buf, n, 0);
		rc = w < 0 ? (int)w : ar_vfs_fsync(tl->env->vfs, fd);
		ar_vfs_close(tl->env->vfs, fd);
	}
	if (rc == 0)
		rc = ar_vfs_rename(tl->env->vfs, tmp, final);
	if (rc == 0)
		rc = ar_vfs_fsync_dir(tl->env->vfs, tl->dir);
	if (rc == 0)
		tl->stats.manifest_writes++;
	free(buf);
	free(layers);
	return rc;
}

int tl_read_manifest(struct tl_env *env, const char *dir, struct manifest *out,
		     char err[LYR_ERROR_BYTES])
{
	char path[AR_PATH_BYTES_MAX], why[160];
	uint64_t size = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, TL_MANIFEST);
	err[0] = '\0';
	int rc = ar_vfs_open(env->vfs, path, AR_VFS_READ, &fd);
	if (rc < 0)
		return rc;
	rc = ar_vfs_size(env->vfs, fd, &size);
	uint8_t *buf = NULL;
	if (rc == 0 && size > MANIFEST_HEADER_BYTES + 4 + (uint64_t)MANIFEST_LAYERS_MAX * 64)
		rc = -AR_ECORRUPT;
	if (rc == 0) {
		buf = malloc(size ? size : 1);
		rc = buf ? 0 : -ENOMEM;
	}
	if (rc == 0) {
		int64_t n = ar_vfs_pread(env->vfs, fd, buf, size, 0);
		rc = n < 0 ? (int)n : (uint64_t)n != size ? -EIO : 0;
	}
	ar_vfs_close(env->vfs, fd);
	if (rc == 0)
		rc = manifest_decode(buf, size, out, why);
	else if (rc == -AR_ECORRUPT)
		snprintf(why, sizeof(why), "manifest of %" PRIu64 " bytes is too large", size);
	if (rc == -AR_ECORRUPT)
		snprintf(err, LYR_ERROR_BYTES, "manifest \"%s\": %s", path, why);
	free(buf);
	return rc;
}

/* ---- create, open, close ---- */

static int tl_alloc(struct tl_env *env, const char *dir, struct ar_timeline **tl_out)
{
	struct ar_timeline *tl = calloc(1, sizeof(*tl));
	if (!tl)
		return -ENOMEM;
	tl->env = env;
	tl->dir = strdup(dir);
	if (!tl->dir) {
		free(tl);
		return -ENOMEM;
	}
	*tl_out = tl;
	return 0;
}

int tl_create(struct tl_env *env, const char *dir, const struct tl_id *id,
	      struct ar_timeline *ancestor, ar_lsn ancestor_lsn, ar_lsn start_lsn,
	      struct ar_timeline **tl_out)
{
	struct ar_timeline *tl;
	int rc = tl_alloc(env, dir, &tl);

	if (rc < 0)
		return rc;
	tl->id = *id;
	if (ancestor) {
		tl->has_ancestor = true;
		tl->ancestor = ancestor;
		tl->ancestor_id = ancestor->id;
		tl->ancestor_lsn = ancestor_lsn;
		tl->start_lsn = ancestor_lsn + 1;
		tl->gc_cutoff = ancestor_lsn;
	} else {
		AR_ASSERT(start_lsn > 0);
		tl->start_lsn = start_lsn;
	}
	tl->last_record_lsn = tl->start_lsn - 1;
	tl->disk_consistent_lsn = tl->start_lsn - 1;
	rc = ar_vfs_mkdir(env->vfs, dir);
	if (rc == 0)
		rc = tl_manifest_write(tl);
	if (rc < 0) {
		tl_close(tl);
		return rc;
	}
	*tl_out = tl;
	return 0;
}

struct stray_ctx {
	struct ar_timeline *tl;
	int rc;
	uint32_t removed;
};

static bool tl_lists_file(const struct ar_timeline *tl, const char *name)
{
	char listed[LYR_NAME_BYTES + 16];
	for (uint32_t i = 0; i < tl->layer_count; i++) {
		manifest_layer_file_name(&tl->layers[i].ml, listed);
		if (strcmp(listed, name) == 0)
			return true;
	}
	return strcmp(name, TL_MANIFEST) == 0;
}

static int stray_remove(void *ctx, const char *name)
{
	struct stray_ctx *s = ctx;
	char path[AR_PATH_BYTES_MAX];

	if (tl_lists_file(s->tl, name))
		return 0;
	tl_path(s->tl, name, path, sizeof(path));
	int rc = ar_vfs_unlink(s->tl->env->vfs, path);
	if (rc < 0 && rc != -ENOENT) {
		s->rc = rc;
		return rc;
	}
	s->removed++;
	return 0;
}

static int tl_remove_strays(struct ar_timeline *tl)
{
	struct stray_ctx s = { .tl = tl };
	int rc = ar_vfs_list_dir(tl->env->vfs, tl->dir, stray_remove, &s);
	if (rc == 0 && s.rc < 0)
		rc = s.rc;
	if (rc == 0 && s.removed > 0)
		rc = ar_vfs_fsync_dir(tl->env->vfs, tl->dir);
	tl->stats.strays_removed += s.removed;
	return rc;
}

static int tl_adopt_manifest(struct ar_timeline *tl, const struct manifest *m)
{
	tl->id = m->id;
	tl->has_ancestor = m->has_ancestor;
	tl->ancestor_id = m->ancestor;
	tl->ancestor_lsn = m->ancestor_lsn;
	tl->start_lsn = m->start_lsn;
	tl->disk_consistent_lsn = m->disk_consistent_lsn;
	tl->gc_cutoff = m->gc_cutoff;
	tl->next_seq = m->next_seq;
	tl->last_record_lsn = m->disk_consistent_lsn;
	tl->layers = calloc(m->layer_count + 1, sizeof(*tl->layers));
	if (!tl->layers)
		return -ENOMEM;
	tl->layer_cap = m->layer_count + 1;
	tl->layer_count = m->layer_count;
	for (uint32_t i = 0; i < m->layer_count; i++)
		tl->layers[i].ml = m->layers[i];
	return 0;
}

static int tl_check_layers_exist(struct ar_timeline *tl)
{
	char name[LYR_NAME_BYTES + 16], path[AR_PATH_BYTES_MAX];
	for (uint32_t i = 0; i < tl->layer_count; i++) {
		manifest_layer_file_name(&tl->layers[i].ml, name);
		tl_path(tl, name, path, sizeof(path));
		if (ar_vfs_exists(tl->env->vfs, path) != 0) {
			snprintf(tl->err, sizeof(tl->err),
				 "layer file \"%s\" listed in the manifest is missing", path);
			return -AR_ECORRUPT;
		}
	}
	return 0;
}

int tl_open(struct tl_env *env, const char *dir, struct ar_timeline *ancestor,
	    struct ar_timeline **tl_out, char err[LYR_ERROR_BYTES])
{
	struct ar_timeline *tl;
	struct manifest m;
	int rc = tl_alloc(env, dir, &tl);

	if (rc < 0)
		return rc;
	rc = tl_read_manifest(env, dir, &m, err);
	if (rc < 0) {
		tl_close(tl);
		return rc;
	}
	rc = tl_adopt_manifest(tl, &m);
	manifest_free(&m);
	if (rc == 0 && tl->has_ancestor != (ancestor != NULL))
		rc = -EINVAL;
	if (rc == 0 && ancestor && memcmp(ancestor->id.bytes, tl->ancestor_id.bytes, 16) != 0)
		rc = -EINVAL;
	tl->ancestor = ancestor;
	if (rc == 0)
		rc = tl_check_layers_exist(tl);
	if (rc == 0)
		rc = tl_remove_strays(tl);
	if (rc < 0) {
		snprintf(err, LYR_ERROR_BYTES, "%s", tl->err);
		tl_close(tl);
		return rc;
	}
	*tl_out = tl;
	return 0;
}

void tl_close(struct ar_timeline *tl)
{
	if (!tl)
		return;
	tl_job_abort(tl->job);
	for (uint32_t i = 0; i < tl->layer_count; i++) {
		if (tl->layers[i].reader)
			ar_blockcache_drop_file(tl->env->cache, tl->layers[i].file_id);
		lyr_reader_close(tl->layers[i].reader);
	}
	inmem_destroy(tl->open);
	for (uint32_t i = 0; i < tl->frozen_count; i++)
		inmem_destroy(tl->frozen[i]);
	free(tl->chain.recs);
	free(tl->chain.data_off);
	free(tl->chain.bytes);
	free(tl->layers);
	free(tl->dir);
	free(tl);
}

/* ---- put, freeze, flush ---- */

int tl_put(struct ar_timeline *tl, const struct ar_key *key, ar_lsn lsn,
	   const struct ar_value *value)
{
	AR_ASSERT(lsn >= tl->start_lsn);
	AR_ASSERT(lsn >= tl->last_record_lsn);
	AR_ASSERT(lsn > tl->disk_consistent_lsn);
	if (!tl->open) {
		char name[64], path[AR_PATH_BYTES_MAX];
		if (tl->frozen_count == TL_FROZEN_MAX)
			return -EAGAIN; /* backpressure: flush first */
		snprintf(name, sizeof(name), "ephemeral-%08" PRIx32, tl->ephemeral_seq++);
		tl_path(tl, name, path, sizeof(path));
		ar_lsn start = tl->frozen_count ? inmem_end_lsn(tl->frozen[tl->frozen_count - 1])
						: tl->disk_consistent_lsn + 1;
		int rc = inmem_create(tl->env->vfs, path, start, &tl->open);
		if (rc < 0)
			return rc;
		tl->open_since_ns = ar_core_now_ns();
	}
	int rc = inmem_put(tl->open, key, lsn, value);
	if (rc < 0)
		return rc;
	tl->last_record_lsn = lsn;
	tl->stats.puts++;
	return 0;
}

void tl_advance(struct ar_timeline *tl, ar_lsn lsn)
{
	if (lsn > tl->last_record_lsn)
		tl->last_record_lsn = lsn;
}

int tl_sync_advance(struct ar_timeline *tl)
{
	if (tl->frozen_count > 0 || (tl->open && inmem_value_count(tl->open)) ||
	    tl->disk_consistent_lsn >= tl->last_record_lsn)
		return 0;
	ar_lsn before = tl->disk_consistent_lsn;
	tl->disk_consistent_lsn = tl->last_record_lsn;
	int rc = tl_manifest_write(tl);
	if (rc < 0)
		tl->disk_consistent_lsn = before;
	return rc;
}

void tl_maybe_freeze(struct ar_timeline *tl, bool force)
{
	if (!tl->open || tl->frozen_count == TL_FROZEN_MAX)
		return;
	uint64_t age_ms = (ar_core_now_ns() - tl->open_since_ns) / 1000000;
	bool old = tl->env->checkpoint_timeout_ms && age_ms >= tl->env->checkpoint_timeout_ms;
	if (!force && !old && inmem_bytes(tl->open) < tl->env->checkpoint_distance_bytes)
		return;
	if (inmem_value_count(tl->open) == 0)
		return;
	inmem_freeze(tl->open, tl->last_record_lsn + 1);
	tl->frozen[tl->frozen_count++] = tl->open;
	tl->open = NULL;
	tl->stats.freezes++;
}

int tl_layers_reserve(struct ar_timeline *tl, uint32_t more)
{
	if (tl->layer_count + more <= tl->layer_cap)
		return 0;
	uint32_t cap = tl->layer_cap ? tl->layer_cap : 8;
	while (cap < tl->layer_count + more)
		cap *= 2;
	struct tl_layer *n = realloc(tl->layers, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	tl->layers = n;
	tl->layer_cap = cap;
	return 0;
}

/* Write one frozen layer as an L0 file; on success it is listed (not yet durable). */
static int tl_flush_one(struct ar_timeline *tl, struct inmem *m)
{
	char name[LYR_NAME_BYTES + 16], path[AR_PATH_BYTES_MAX];
	struct lyr_info info;
	struct manifest_layer ml = { .level = 0, .seq = tl->next_seq };

	int rc = tl_layers_reserve(tl, 1);
	if (rc < 0)
		return rc;
	/* The name needs the key range, known only after writing: write to a temporary
	 * name, then rename (the rename is made durable with the manifest). */
	snprintf(name, sizeof(name), "flush-%08" PRIx32 ".tmp", ml.seq);
	char tmp[AR_PATH_BYTES_MAX];
	tl_path(tl, name, tmp, sizeof(tmp));
	rc = inmem_write_layer(m, tl->env->vfs, tmp, &tl->env->layer_options, &info);
	if (rc < 0)
		return rc;
	ml.info = info;
	manifest_layer_file_name(&ml, name);
	tl_path(tl, name, path, sizeof(path));
	rc = ar_vfs_rename(tl->env->vfs, tmp, path);
	if (rc < 0)
		return rc;
	tl->next_seq++;
	tl->layers[tl->layer_count++] = (struct tl_layer){ .ml = ml };
	tl->stats.layers_written++;
	if (info.index_levels > tl->stats.index_levels_max)
		tl->stats.index_levels_max = info.index_levels;
	return 0;
}

int tl_flush(struct ar_timeline *tl)
{
	uint32_t flushed = 0, count_before = tl->layer_count;
	int rc = 0;

	/* Backpressure: while compaction is far behind, reads would pay for every L0. */
	uint32_t threshold = tl->env->compact.compaction_threshold;
	if (tl->frozen_count > 0 && threshold > 0 && tl_l0_count(tl) >= 3 * threshold) {
		tl->stats.backpressure++;
		return -EAGAIN;
	}

	while (flushed < tl->frozen_count) {
		struct inmem *m = tl->frozen[flushed];
		rc = tl_flush_one(tl, m);
		if (rc == -ENODATA)
			rc = 0;
		if (rc < 0)
			break;
		flushed++;
	}
	if (flushed == 0)
		return rc;
	ar_lsn consistent = inmem_end_lsn(tl->frozen[flushed - 1]) - 1;
	ar_lsn before = tl->disk_consistent_lsn;
	/* Layer files' directory entries first, then the manifest that lists them. */
	int wrc = ar_vfs_fsync_dir(tl->env->vfs, tl->dir);
	if (wrc == 0) {
		tl->disk_consistent_lsn = consistent;
		wrc = tl_manifest_write(tl);
	}
	if (wrc < 0) {
		/* Not durable: keep the frozen layers and forget the new files (strays now,
		 * removed at the next open), so no value is seen twice. */
		tl->disk_consistent_lsn = before;
		tl->layer_count = count_before;
		return wrc;
	}
	for (uint32_t i = 0; i < flushed; i++)
		inmem_destroy(tl->frozen[i]);
	memmove(tl->frozen, tl->frozen + flushed,
		(tl->frozen_count - flushed) * sizeof(*tl->frozen));
	tl->frozen_count -= flushed;
	tl->stats.flushes++;
	return rc;
}

/* ---- GetPage@LSN ---- */

static int chain_reserve(struct chain *c, size_t records, size_t bytes)
{
	if (c->count + records > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		while (cap < c->count + records)
			cap *= 2;
		struct ar_redo_record *r = realloc(c->recs, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		c->recs = r;
		size_t *o = realloc(c->data_off, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		c->data_off = o;
		c->cap = cap;
	}
	if (c->used + bytes > c->bytes_cap) {
		size_t cap = c->bytes_cap ? c->bytes_cap * 2 : 65536;
		while (cap < c->used + bytes)
			cap *= 2;
		uint8_t *b = realloc(c->bytes, cap);
		if (!b)
			return -ENOMEM;
		c->bytes = b;
		c->bytes_cap = cap;
	}
	return 0;
}

/* Source callback: values arrive oldest first; keep those above the floor. */
static int chain_take(void *ctx, const struct ar_key *key, ar_lsn lsn, const struct ar_value *v)
{
	struct chain *c = ctx;
	(void)key;

	if (lsn <= c->floor && c->floor != 0)
		return 0;
	int rc = chain_reserve(c, 1, v->len);
	if (rc < 0)
		return rc;
	if (v->len > 0) /* an empty value (a tombstone) may come with no buffer at all */
		memcpy(c->bytes + c->used, v->data, v->len);
	c->data_off[c->count] = c->used;
	c->recs[c->count] = (struct ar_redo_record){ .lsn = lsn, .value = *v };
	c->used += v->len;
	c->count++;
	return 0;
}

/* After a source: order its values newest first and cut below the first base. */
static void chain_end_source(struct chain *c)
{
	size_t a = c->batch_start, b = c->count;
	for (size_t i = 0; i < (b - a) / 2; i++) {
		struct ar_redo_record t = c->recs[a + i];
		size_t o = c->data_off[a + i];
		c->recs[a + i] = c->recs[b - 1 - i];
		c->data_off[a + i] = c->data_off[b - 1 - i];
		c->recs[b - 1 - i] = t;
		c->data_off[b - 1 - i] = o;
	}
	for (size_t i = a; i < b; i++) {
		if (ar_value_is_base(&c->recs[i].value)) {
			c->count = i + 1;
			c->have_base = true;
			break;
		}
	}
	c->batch_start = c->count;
}

int tl_layer_reader(struct ar_timeline *tl, struct tl_layer *l, struct lyr_reader **out)
{
	char name[LYR_NAME_BYTES + 16], path[AR_PATH_BYTES_MAX];

	if (!l->reader) {
		manifest_layer_file_name(&l->ml, name);
		tl_path(tl, name, path, sizeof(path));
		l->file_id = ++tl->env->next_file_id;
		int rc = lyr_reader_open(tl->env->vfs, tl->env->cache, path, l->file_id, &l->reader,
					 tl->err);
		if (rc < 0)
			return rc;
	}
	*out = l->reader;
	return 0;
}

static int tl_layer_get(struct ar_timeline *tl, struct tl_layer *l, const struct ar_key *key,
			ar_lsn below, struct chain *c)
{
	struct lyr_reader *r;
	int rc = tl_layer_reader(tl, l, &r);
	if (rc == 0)
		rc = lyr_reader_get(r, key, below, chain_take, c);
	if (rc == -AR_ECORRUPT)
		snprintf(tl->err, sizeof(tl->err), "%s", lyr_reader_error(r));
	return rc;
}

/* The sources of one timeline for key below cont: the newest delta source (an
 * in-memory layer or a delta layer) and the newest image layer. */
struct sources {
	struct inmem *mem;      /* D, if an in-memory layer */
	struct tl_layer *delta; /* D, if a layer file */
	ar_lsn delta_start;
	bool have_delta;
	struct tl_layer *image; /* I */
};

static void tl_pick_sources(struct ar_timeline *tl, const struct ar_key *key, ar_lsn cont,
			    struct sources *s)
{
	memset(s, 0, sizeof(*s));
	struct inmem *mems[TL_FROZEN_MAX + 1];
	uint32_t n = 0;
	for (uint32_t i = 0; i < tl->frozen_count; i++)
		mems[n++] = tl->frozen[i];
	if (tl->open)
		mems[n++] = tl->open;
	for (uint32_t i = 0; i < n; i++) {
		ar_lsn start = inmem_start_lsn(mems[i]);
		if (start < cont && (!s->have_delta || start > s->delta_start)) {
			s->have_delta = true;
			s->delta_start = start;
			s->mem = mems[i];
		}
	}
	for (uint32_t i = 0; i < tl->layer_count; i++) {
		struct tl_layer *l = &tl->layers[i];
		if (!ar_key_range_contains(&l->ml.info.keys, key) || l->ml.info.lsn_start >= cont)
			continue;
		if (l->ml.info.kind == LYR_IMAGE) {
			if (!s->image || l->ml.info.lsn_start > s->image->ml.info.lsn_start)
				s->image = l;
		} else if (!s->have_delta || l->ml.info.lsn_start > s->delta_start) {
			s->have_delta = true;
			s->delta_start = l->ml.info.lsn_start;
			s->delta = l;
			s->mem = NULL;
		}
	}
}

/* Collect key's versions below *cont from one timeline.  *done when a base was
 * found or the key is known not to exist (*missing); else *cont is lowered. */
static int tl_collect(struct ar_timeline *tl, const struct ar_key *key, ar_lsn *cont,
		      struct chain *c, bool *done, bool *missing)
{
	/* Bounded: each pass lowers *cont below a source's start, or ends. */
	for (;;) {
		struct sources s;
		tl_pick_sources(tl, key, *cont, &s);
		bool image_first =
		    s.image && (!s.have_delta || s.image->ml.info.lsn_start >= s.delta_start);
		c->floor = image_first ? s.image->ml.info.lsn_start : 0;
		int rc = 0;
		if (s.mem)
			rc = inmem_get(s.mem, key, *cont, chain_take, c);
		else if (s.delta)
			rc = tl_layer_get(tl, s.delta, key, *cont, c);
		if (rc < 0)
			return rc;
		chain_end_source(c);
		c->floor = 0;
		if (c->have_base) {
			*done = true;
			return 0;
		}
		if (image_first) {
			ar_lsn at = s.image->ml.info.lsn_start;
			rc = tl_layer_get(tl, s.image, key, at + 1, c);
			if (rc < 0)
				return rc;
			chain_end_source(c);
			*done = true;
			*missing = !c->have_base;
			return 0;
		}
		if (!s.have_delta)
			return 0; /* nothing more on this timeline */
		*cont = s.delta_start;
	}
}

/* Apply the chain (newest first, base last) into out. */
static int tl_reconstruct(struct ar_timeline *tl, const struct ar_key *key, struct chain *c,
			  uint8_t out[AR_PAGE_BYTES], uint32_t *len_out)
{
	for (size_t i = 0; i < c->count; i++)
		c->recs[i].value.data = c->bytes ? c->bytes + c->data_off[i] : NULL;
	struct ar_redo_record *base = &c->recs[c->count - 1];
	if (base->value.kind == AR_VALUE_IMAGE && c->count == 1) {
		if (base->value.len > AR_PAGE_BYTES)
			return -E2BIG;
		if (base->value.len > 0)
			memcpy(out, base->value.data, base->value.len);
		*len_out = base->value.len;
		tl->stats.images_returned++;
		return 0;
	}
	/* Oldest first for redo; the base image (if any) goes separately. */
	size_t n = c->count;
	const uint8_t *image = NULL;
	uint32_t image_len = 0;
	if (base->value.kind == AR_VALUE_IMAGE) {
		image = base->value.data;
		image_len = base->value.len;
		n--;
	}
	for (size_t i = 0; i < n / 2; i++) {
		struct ar_redo_record t = c->recs[i];
		c->recs[i] = c->recs[n - 1 - i];
		c->recs[n - 1 - i] = t;
	}
	tl->stats.redo_calls++;
	tl->stats.records_applied += n;
	struct ar_redo *redo = tl->env->redo;
	redo->err[0] = '\0';
	int rc = redo->ops->apply(redo, key, image, image_len, c->recs, n, out, len_out);
	if (rc < 0 && redo->err[0])
		snprintf(tl->err, sizeof(tl->err), "%s", redo->err);
	return rc;
}

int tl_get(struct ar_timeline *tl, const struct ar_key *key, ar_lsn lsn, uint8_t out[AR_PAGE_BYTES],
	   uint32_t *len_out)
{
	struct chain *c = &tl->chain;
	bool done = false, missing = false;

	tl->err[0] = '\0';
	tl->stats.gets++;
	if (lsn > tl->last_record_lsn)
		return -ERANGE;
	if (lsn < tl->gc_cutoff)
		return -AR_EBELOWGC;
	c->count = c->used = c->batch_start = 0;
	c->have_base = false;
	struct ar_timeline *t = tl;
	ar_lsn cont = lsn + 1;
	/* Bounded by the depth of the ancestry. */
	while (t && !done) {
		int rc = tl_collect(t, key, &cont, c, &done, &missing);
		if (rc < 0) {
			if (t != tl)
				snprintf(tl->err, sizeof(tl->err), "%s", t->err);
			return rc;
		}
		if (!done && t->ancestor) {
			if (cont > t->ancestor_lsn + 1)
				cont = t->ancestor_lsn + 1;
			tl->stats.ancestor_fallthroughs++;
		}
		t = done ? t : t->ancestor;
	}
	if (missing || !c->have_base)
		return -AR_ENOKEY;
	tl->last_value_lsn = c->recs[0].lsn; /* the chain is newest first */
	return tl_reconstruct(tl, key, c, out, len_out);
}

/* ---- batched reads ---- */

/* Sources a prefetch looks through per key, and blocks it takes from one. */
enum { PREFETCH_SOURCES_MAX = 4, PREFETCH_BLOCKS_PER_SOURCE = 2 };

/* The blocks reading key at lsn starts from: those of the first source, newest
 * first, that holds a value of it (an image layer ends the walk; a source holding
 * nothing of the key is passed over, as tl_collect does).  Values in memory need
 * no read.  The ancestors are left to the ordinary read. */
static uint32_t tl_prefetch_key(struct ar_timeline *tl, const struct ar_key *key, ar_lsn lsn,
				struct lyr_block_ref *refs, uint32_t room)
{
	ar_lsn cont = lsn + 1;

	for (uint32_t pass = 0; pass < PREFETCH_SOURCES_MAX; pass++) {
		struct sources s;
		tl_pick_sources(tl, key, cont, &s);
		bool image_first =
		    s.image && (!s.have_delta || s.image->ml.info.lsn_start >= s.delta_start);
		struct tl_layer *l = image_first ? s.image : s.delta;
		if (l) {
			struct lyr_reader *r;
			ar_lsn below = image_first ? l->ml.info.lsn_start + 1 : cont;
			uint32_t max =
			    room < PREFETCH_BLOCKS_PER_SOURCE ? room : PREFETCH_BLOCKS_PER_SOURCE;
			uint32_t got = 0;
			if (tl_layer_reader(tl, l, &r) < 0 ||
			    lyr_reader_locate(r, key, below, refs, max, &got) < 0)
				return 0; /* the ordinary read meets it and says what */
			if (got > 0 || image_first)
				return got;
		}
		if (!s.have_delta)
			return 0;
		cont = s.delta_start;
	}
	return 0;
}

void tl_prefetch(struct ar_timeline *tl, const struct ar_key *keys, const ar_lsn *lsns, uint32_t n)
{
	struct lyr_block_ref refs[AR_VFS_BATCH_MAX];
	uint32_t m = 0, read = 0, batches = 0;

	for (uint32_t i = 0; i < n && m < AR_VFS_BATCH_MAX; i++) {
		if (lsns[i] <= tl->last_record_lsn && lsns[i] >= tl->gc_cutoff)
			m += tl_prefetch_key(tl, &keys[i], lsns[i], refs + m, AR_VFS_BATCH_MAX - m);
	}
	lyr_load_blocks(tl->env->vfs, refs, m, &read, &batches);
	tl->stats.prefetch_batches += batches;
	tl->stats.prefetch_blocks += read;
}

/* ---- relation sizes ---- */

int tl_rel_nblocks(struct ar_timeline *tl, struct ar_rel rel, ar_lsn lsn, uint32_t *nblocks_out)
{
	uint8_t v[AR_PAGE_BYTES];
	uint32_t len;
	struct ar_key key = ar_key_rel_size(rel);
	int rc = tl_get(tl, &key, lsn, v, &len);
	if (rc < 0)
		return rc;
	if (len == 0)
		return -AR_ENOKEY; /* dropped: the size key's tombstone */
	if (len != 4) {
		snprintf(tl->err, sizeof(tl->err), "relation size value of %u bytes (expected 4)",
			 len);
		return -AR_ECORRUPT;
	}
	*nblocks_out =
	    (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
	return 0;
}

int tl_rel_exists(struct ar_timeline *tl, struct ar_rel rel, ar_lsn lsn)
{
	uint32_t n;
	return tl_rel_nblocks(tl, rel, lsn, &n);
}

/* Add the sizes of the relation forks listed in one part of a relation directory. */
static int db_size_part(struct ar_timeline *tl, uint32_t spc_oid, uint32_t db_oid, uint32_t part,
			ar_lsn lsn, uint64_t *bytes)
{
	uint8_t dir[AR_PAGE_BYTES];
	uint32_t len;
	struct ar_key key = ar_key_rel_dir_part(spc_oid, db_oid, part);
	int rc = tl_get(tl, &key, lsn, dir, &len);
	if (rc < 0)
		return rc;
	if (len % AR_REL_DIR_ENTRY_BYTES != 0) {
		snprintf(tl->err, sizeof(tl->err), "relation directory value of %u bytes", len);
		return -AR_ECORRUPT;
	}
	for (uint32_t off = 0; off < len; off += AR_REL_DIR_ENTRY_BYTES) {
		struct ar_rel rel = { .spc_oid = spc_oid,
				      .db_oid = db_oid,
				      .rel_number = ar_get_be32(dir + off),
				      .fork = dir[off + 4] };
		uint32_t n;
		rc = tl_rel_nblocks(tl, rel, lsn, &n);
		if (rc == -AR_ENOKEY)
			continue; /* listed but dropped at this LSN */
		if (rc < 0)
			return rc;
		*bytes += (uint64_t)n * AR_PAGE_BYTES;
	}
	return 0;
}

int tl_db_size(struct ar_timeline *tl, uint32_t spc_oid, uint32_t db_oid, ar_lsn lsn,
	       uint64_t *bytes_out)
{
	uint64_t bytes = 0;
	uint32_t found = 0;
	for (uint32_t part = 0; part < AR_REL_DIR_PARTS; part++) {
		int rc = db_size_part(tl, spc_oid, db_oid, part, lsn, &bytes);
		if (rc == -AR_ENOKEY)
			continue;
		if (rc < 0)
			return rc;
		found++;
	}
	if (found == 0)
		return -AR_ENOKEY;
	*bytes_out = bytes;
	return 0;
}

/* ---- accessors ---- */

const char *tl_error(const struct ar_timeline *tl)
{
	return tl->err;
}

const struct tl_id *tl_id(const struct ar_timeline *tl)
{
	return &tl->id;
}

struct ar_timeline *tl_ancestor(const struct ar_timeline *tl)
{
	return tl->ancestor;
}

ar_lsn tl_ancestor_lsn(const struct ar_timeline *tl)
{
	return tl->ancestor_lsn;
}

ar_lsn tl_start_lsn(const struct ar_timeline *tl)
{
	return tl->start_lsn;
}

ar_lsn tl_last_record_lsn(const struct ar_timeline *tl)
{
	return tl->last_record_lsn;
}

ar_lsn tl_disk_consistent_lsn(const struct ar_timeline *tl)
{
	return tl->disk_consistent_lsn;
}

ar_lsn tl_last_value_lsn(const struct ar_timeline *tl)
{
	return tl->last_value_lsn;
}

ar_lsn tl_gc_cutoff(const struct ar_timeline *tl)
{
	return tl->gc_cutoff;
}

uint32_t tl_layer_count(const struct ar_timeline *tl)
{
	return tl->layer_count;
}

const struct manifest_layer *tl_layer(const struct ar_timeline *tl, uint32_t index)
{
	AR_ASSERT(index < tl->layer_count);
	return &tl->layers[index].ml;
}

const struct tl_stats *tl_stats(const struct ar_timeline *tl)
{
	return &tl->stats;
}
