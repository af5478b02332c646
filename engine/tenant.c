/*
 * tenant.c - Timelines of a tenant shard: creation, branching, deletion,
 * reopening in ancestry order.
 *
 * Invariants:
 *  1. A timeline's ancestor is open before it (timelines[] is in creation order
 *     after create, and sorted parents-first by tenant_open).
 *  2. A branch is durable when tenant_branch returns: its manifest is fsynced and
 *     its directory entry too (fsync of timelines/).
 *  3. A timeline with children is never deleted.
 */
#include "engine/tenant.h"
#include "common/bytes.h"

#include "common/assert.h"
#include "common/crc32c.h"
#include "common/err.h"
#include "common/limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TENANT_CONF "tenant.conf"
#define TENANT_CONF_MAGIC 0x41524754u /* "ARGT" */
#define TENANT_CONF_BYTES 20

struct ar_tenant {
	struct tl_env *env;
	char *dir;
	struct tenant_params params;
	struct ar_timeline *timelines[TENANT_TIMELINES_MAX];
	uint32_t timeline_count;
};

static void tenant_path(const struct ar_tenant *t, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", t->dir, name);
}

static void timeline_dir(const struct ar_tenant *t, const struct tl_id *id, char *out, size_t size)
{
	char hex[33];
	tl_id_hex(id, hex);
	snprintf(out, size, "%s/timelines/%s", t->dir, hex);
}

static int tenant_alloc(struct tl_env *env, const char *dir, struct ar_tenant **out)
{
	struct ar_tenant *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->env = env;
	t->dir = strdup(dir);
	if (!t->dir) {
		free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

/* tenant.conf: magic, shard count, stripe, shard number, crc32c (20 bytes). */
static int tenant_conf_write(struct ar_tenant *t)
{
	uint8_t b[TENANT_CONF_BYTES];
	char path[AR_PATH_BYTES_MAX];
	int fd;

	ar_put_be32(b, TENANT_CONF_MAGIC);
	ar_put_be32(b + 4, t->params.shards.shard_count);
	ar_put_be32(b + 8, t->params.shards.stripe_blocks);
	ar_put_be32(b + 12, t->params.shard_number);
	ar_put_be32(b + 16, ar_crc32c(b, 16));
	tenant_path(t, TENANT_CONF, path, sizeof(path));
	int rc = ar_vfs_open(t->env->vfs, path, AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_EXCL, &fd);
	if (rc < 0)
		return rc;
	int64_t n = ar_vfs_pwrite(t->env->vfs, fd, b, sizeof(b), 0);
	rc = n < 0 ? (int)n : ar_vfs_fsync(t->env->vfs, fd);
	ar_vfs_close(t->env->vfs, fd);
	return rc;
}

static int tenant_conf_read(struct ar_tenant *t, char err[LYR_ERROR_BYTES])
{
	uint8_t b[TENANT_CONF_BYTES];
	char path[AR_PATH_BYTES_MAX];
	int fd;

	tenant_path(t, TENANT_CONF, path, sizeof(path));
	int rc = ar_vfs_open(t->env->vfs, path, AR_VFS_READ, &fd);
	if (rc < 0)
		return rc;
	int64_t n = ar_vfs_pread(t->env->vfs, fd, b, sizeof(b), 0);
	ar_vfs_close(t->env->vfs, fd);
	if (n < 0)
		return (int)n;
	if (n != (int64_t)sizeof(b) || ar_get_be32(b) != TENANT_CONF_MAGIC ||
	    ar_get_be32(b + 16) != ar_crc32c(b, 16)) {
		snprintf(err, LYR_ERROR_BYTES, "tenant configuration \"%s\" is corrupt at offset 0",
			 path);
		return -AR_ECORRUPT;
	}
	t->params.shards.shard_count = ar_get_be32(b + 4);
	t->params.shards.stripe_blocks = ar_get_be32(b + 8);
	t->params.shard_number = ar_get_be32(b + 12);
	return 0;
}

int tenant_create(struct tl_env *env, const char *dir, const struct tenant_params *params,
		  struct ar_tenant **tenant_out)
{
	struct ar_tenant *t;
	char path[AR_PATH_BYTES_MAX];
	int rc = tenant_alloc(env, dir, &t);

	if (rc < 0)
		return rc;
	t->params = *params;
	if (t->params.shards.stripe_blocks == 0)
		t->params.shards.stripe_blocks = AR_STRIPE_BLOCKS_DEFAULT;
	rc = ar_vfs_mkdir(env->vfs, dir);
	if (rc == 0)
		rc = tenant_conf_write(t);
	tenant_path(t, "timelines", path, sizeof(path));
	if (rc == 0)
		rc = ar_vfs_mkdir(env->vfs, path);
	if (rc == 0)
		rc = ar_vfs_fsync_dir(env->vfs, dir);
	/* The tenant directory's own name lives in its parent. */
	char parent[AR_PATH_BYTES_MAX];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(parent, sizeof(parent), ".");
	if (rc == 0)
		rc = ar_vfs_fsync_dir(env->vfs, parent);
	if (rc < 0) {
		tenant_close(t);
		return rc;
	}
	*tenant_out = t;
	return 0;
}

void tenant_close(struct ar_tenant *t)
{
	if (!t)
		return;
	/* Children first: a timeline points at its ancestor. */
	for (uint32_t i = t->timeline_count; i > 0; i--)
		tl_close(t->timelines[i - 1]);
	free(t->dir);
	free(t);
}

struct ar_timeline *tenant_timeline(const struct ar_tenant *t, const struct tl_id *id)
{
	for (uint32_t i = 0; i < t->timeline_count; i++)
		if (memcmp(tl_id(t->timelines[i])->bytes, id->bytes, 16) == 0)
			return t->timelines[i];
	return NULL;
}

uint32_t tenant_timeline_count(const struct ar_tenant *t)
{
	return t->timeline_count;
}

struct ar_timeline *tenant_timeline_at(const struct ar_tenant *t, uint32_t index)
{
	AR_ASSERT(index < t->timeline_count);
	return t->timelines[index];
}

const struct tenant_params *tenant_params(const struct ar_tenant *t)
{
	return &t->params;
}

uint32_t tenant_child_lsns(const struct ar_tenant *t, const struct ar_timeline *tl, ar_lsn *lsns,
			   uint32_t max)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < t->timeline_count && n < max; i++) {
		if (tl_ancestor(t->timelines[i]) != tl)
			continue;
		ar_lsn lsn = tl_ancestor_lsn(t->timelines[i]);
		uint32_t j = n++;
		while (j > 0 && lsns[j - 1] > lsn) {
			lsns[j] = lsns[j - 1];
			j--;
		}
		lsns[j] = lsn;
	}
	return n;
}

static int tenant_add(struct ar_tenant *t, const struct tl_id *id, struct ar_timeline *parent,
		      ar_lsn lsn, ar_lsn start_lsn, struct ar_timeline **tl_out)
{
	char dir[AR_PATH_BYTES_MAX], timelines[AR_PATH_BYTES_MAX];

	if (tenant_timeline(t, id))
		return -EEXIST;
	if (t->timeline_count == TENANT_TIMELINES_MAX)
		return -AR_ELIMIT;
	timeline_dir(t, id, dir, sizeof(dir));
	tenant_path(t, "timelines", timelines, sizeof(timelines));
	struct ar_timeline *tl;
	int rc = tl_create(t->env, dir, id, parent, lsn, start_lsn, &tl);
	if (rc < 0)
		return rc;
	rc = ar_vfs_fsync_dir(t->env->vfs, timelines);
	if (rc < 0) {
		tl_close(tl);
		return rc;
	}
	t->timelines[t->timeline_count++] = tl;
	*tl_out = tl;
	return 0;
}

int tenant_timeline_create(struct ar_tenant *t, const struct tl_id *id, ar_lsn start_lsn,
			   struct ar_timeline **tl_out)
{
	AR_ASSERT(start_lsn > 0);
	return tenant_add(t, id, NULL, 0, start_lsn, tl_out);
}

int tenant_branch(struct ar_tenant *t, const struct tl_id *parent_id, ar_lsn lsn,
		  const struct tl_id *id, struct ar_timeline **tl_out)
{
	struct ar_timeline *parent = tenant_timeline(t, parent_id);

	if (!parent)
		return -AR_ENOTIMELINE;
	if (lsn < tl_gc_cutoff(parent))
		return -AR_EBELOWGC;
	if (lsn > tl_last_record_lsn(parent) || lsn + 1 < tl_start_lsn(parent))
		return -ERANGE;
	/* The branch point must be durable before the branch is: until the WAL log
	 * makes in-memory values durable, flush the parent up to it. */
	if (lsn > tl_disk_consistent_lsn(parent)) {
		tl_maybe_freeze(parent, true);
		int rc = tl_flush(parent);
		if (rc < 0)
			return rc;
	}
	return tenant_add(t, id, parent, lsn, 0, tl_out);
}

/* ---- delete ---- */

struct remove_ctx {
	struct ar_vfs *vfs;
	const char *dir;
	int rc;
};

static int remove_entry(void *ctx, const char *name)
{
	struct remove_ctx *r = ctx;
	char path[AR_PATH_BYTES_MAX];
	snprintf(path, sizeof(path), "%s/%s", r->dir, name);
	int rc = ar_vfs_unlink(r->vfs, path);
	if (rc < 0 && rc != -ENOENT)
		r->rc = rc;
	return 0;
}

/* Empty and remove a renamed-away timeline directory, durably. */
static int tenant_finish_delete(struct ar_tenant *t, const char *dead)
{
	char timelines[AR_PATH_BYTES_MAX];
	struct remove_ctx r = { .vfs = t->env->vfs, .dir = dead };

	tenant_path(t, "timelines", timelines, sizeof(timelines));
	int rc = ar_vfs_list_dir(t->env->vfs, dead, remove_entry, &r);
	if (rc == 0)
		rc = r.rc;
	if (rc == 0)
		rc = ar_vfs_rmdir(t->env->vfs, dead);
	if (rc == 0)
		rc = ar_vfs_fsync_dir(t->env->vfs, timelines);
	return rc;
}

int tenant_timeline_delete(struct ar_tenant *t, const struct tl_id *id)
{
	char dir[AR_PATH_BYTES_MAX], dead[AR_PATH_BYTES_MAX + 16], timelines[AR_PATH_BYTES_MAX];
	struct ar_timeline *tl = tenant_timeline(t, id);
	uint32_t index = 0;

	if (!tl)
		return -AR_ENOTIMELINE;
	for (uint32_t i = 0; i < t->timeline_count; i++) {
		if (tl_ancestor(t->timelines[i]) == tl)
			return -AR_EHASCHILDREN;
		if (t->timelines[i] == tl)
			index = i;
	}
	timeline_dir(t, id, dir, sizeof(dir));
	snprintf(dead, sizeof(dead), "%s.deleted", dir);
	tenant_path(t, "timelines", timelines, sizeof(timelines));
	/* The rename is the point of no return: made durable before anything is removed. */
	int rc = ar_vfs_rename(t->env->vfs, dir, dead);
	if (rc == 0)
		rc = ar_vfs_fsync_dir(t->env->vfs, timelines);
	if (rc < 0)
		return rc;
	tl_close(tl);
	memmove(&t->timelines[index], &t->timelines[index + 1],
		(t->timeline_count - index - 1) * sizeof(t->timelines[0]));
	t->timeline_count--;
	return tenant_finish_delete(t, dead);
}

/* ---- open ---- */

struct found {
	struct tl_id ids[TENANT_TIMELINES_MAX];
	uint32_t count;
	char dead[16][64];
	uint32_t dead_count;
	int rc;
};

static int found_entry(void *ctx, const char *name)
{
	struct found *f = ctx;
	size_t len = strlen(name);

	if (len == 32 + 8 && strcmp(name + 32, ".deleted") == 0) {
		if (f->dead_count < 16)
			snprintf(f->dead[f->dead_count++], sizeof(f->dead[0]), "%s", name);
		return 0;
	}
	if (len != 32 || f->count == TENANT_TIMELINES_MAX)
		return 0; /* not a timeline directory: left alone */
	if (tl_id_from_hex(name, &f->ids[f->count]))
		f->count++;
	return 0;
}

/* Open every timeline whose ancestor is open, until all are (parents first). */
static int tenant_open_timelines(struct ar_tenant *t, struct found *f, char err[LYR_ERROR_BYTES])
{
	struct manifest *m = calloc(f->count ? f->count : 1, sizeof(*m));
	bool *opened = calloc(f->count ? f->count : 1, sizeof(*opened));
	char dir[AR_PATH_BYTES_MAX];
	int rc = m && opened ? 0 : -ENOMEM;

	for (uint32_t i = 0; rc == 0 && i < f->count; i++) {
		timeline_dir(t, &f->ids[i], dir, sizeof(dir));
		rc = tl_read_manifest(t->env, dir, &m[i], err);
	}
	/* Bounded: each pass opens at least one timeline, or the rest are orphans. */
	for (uint32_t pass = 0; rc == 0 && t->timeline_count < f->count; pass++) {
		uint32_t before = t->timeline_count;
		for (uint32_t i = 0; rc == 0 && i < f->count; i++) {
			struct ar_timeline *parent = NULL, *tl;
			if (opened[i])
				continue;
			if (m[i].has_ancestor && !(parent = tenant_timeline(t, &m[i].ancestor)))
				continue;
			timeline_dir(t, &f->ids[i], dir, sizeof(dir));
			rc = tl_open(t->env, dir, parent, &tl, err);
			if (rc == 0) {
				opened[i] = true;
				t->timelines[t->timeline_count++] = tl;
			}
		}
		if (rc == 0 && t->timeline_count == before) {
			snprintf(err, LYR_ERROR_BYTES,
				 "tenant \"%s\": a timeline's ancestor is missing", t->dir);
			rc = -AR_ECORRUPT;
		}
	}
	for (uint32_t i = 0; m && i < f->count; i++)
		manifest_free(&m[i]);
	free(m);
	free(opened);
	return rc;
}

int tenant_open(struct tl_env *env, const char *dir, struct ar_tenant **tenant_out,
		char err[LYR_ERROR_BYTES])
{
	struct ar_tenant *t;
	char timelines[AR_PATH_BYTES_MAX], dead[AR_PATH_BYTES_MAX];
	int rc = tenant_alloc(env, dir, &t);

	if (rc < 0)
		return rc;
	err[0] = '\0';
	struct found *f = calloc(1, sizeof(*f));
	rc = f ? tenant_conf_read(t, err) : -ENOMEM;
	tenant_path(t, "timelines", timelines, sizeof(timelines));
	if (rc == 0)
		rc = ar_vfs_list_dir(env->vfs, timelines, found_entry, f);
	for (uint32_t i = 0; rc == 0 && f && i < f->dead_count; i++) {
		snprintf(dead, sizeof(dead), "%s/%s", timelines, f->dead[i]);
		rc = tenant_finish_delete(t, dead);
	}
	if (rc == 0)
		rc = tenant_open_timelines(t, f, err);
	free(f);
	if (rc < 0) {
		tenant_close(t);
		return rc;
	}
	*tenant_out = t;
	return 0;
}

int tenant_gc(struct ar_tenant *t, const struct tl_id *id, uint64_t horizon_bytes,
	      ar_lsn retention_lsn, uint32_t *removed_out)
{
	ar_lsn retain[TENANT_TIMELINES_MAX];
	struct ar_timeline *tl = tenant_timeline(t, id);

	if (!tl)
		return -AR_ENOTIMELINE;
	ar_lsn last = tl_last_record_lsn(tl);
	ar_lsn cutoff = last > horizon_bytes ? last - horizon_bytes : 0;
	if (retention_lsn && retention_lsn < cutoff)
		cutoff = retention_lsn;
	uint32_t n = tenant_child_lsns(t, tl, retain, TENANT_TIMELINES_MAX);
	return tl_gc(tl, cutoff, retain, n, removed_out);
}
