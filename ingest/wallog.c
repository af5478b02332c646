/*
 * wallog.c - The durable local WAL log (wallog.h): PostgreSQL segment files in
 * one directory, written through the ar_vfs switch.
 *
 * A segment comes into being whole: "<name>.tmp" is filled (zeros, or for a
 * timeline switch the old timeline's bytes below the switch point), fsynced,
 * renamed to <name>, and the directory fsynced.  WAL is then written in place,
 * so fsync of a segment never changes its size or its name; a crash leaves at
 * most a stray "*.tmp", which the next writable open removes.
 *
 * Each handle keeps a small cache of open segments (WALLOG_FDS_MAX), least
 * recently used out first.  A write may span two segments, so a few suffice.
 *
 * Invariants:
 *  1. A segment file made here is seg_bytes long, and its size and first bytes
 *     were durable before its name appeared; a segment is written only once
 *     its size was checked (a short one from elsewhere is read, not written).
 *  2. A cached segment marked dirty may hold writes not yet fsynced; the mark
 *     is cleared only when an fsync of that fd returned 0, and a dirty segment
 *     leaves the cache only through a successful fsync (or trim removing it).
 *  3. dir_unsynced: a segment was renamed into place and the directory's fsync
 *     has not yet succeeded; wallog_flush fsyncs the directory first.
 *  4. A read-only handle never mutates anything: it opens segments read-only
 *     and looks a missing segment up again on every read (never cached).
 *
 * A failed fsync leaves the segment dirty and the next flush tries again; but
 * Linux may have dropped the pages it failed to write, so what the contract
 * says holds: nothing written since the last successful flush counts, and the
 * receiver streams it again from the acknowledged position.
 *
 * Depends on common/vfs.h (all I/O) and common/err.h (messages).
 */
#include "ingest/wallog.h"

#include "common/assert.h"
#include "common/err.h"
#include "common/limits.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	WALLOG_FDS_MAX = 4,             /* segments a handle keeps open */
	WALLOG_NAME_CHARS = 24,         /* TTTTTTTTXXXXXXXXYYYYYYYY */
	WALLOG_CHUNK_BYTES = 1 << 20,   /* bytes per write when filling a segment */
	WALLOG_SEG_BYTES_MIN = 1 << 20, /* PostgreSQL's limits on wal_segment_size */
	WALLOG_SEG_BYTES_MAX = 1 << 30,
};
static_assert(WALLOG_SEG_BYTES_MIN % WALLOG_CHUNK_BYTES == 0, "a segment is whole chunks");

static const uint8_t wallog_zeros[WALLOG_CHUNK_BYTES];

struct wallog_fd {
	int fd; /* -1: the slot is free */
	uint32_t tli;
	uint64_t segno;
	uint64_t used; /* wallog.clock at the last use: the smallest goes first */
	bool dirty;
	bool whole; /* its size was checked before a first write (invariant 1) */
};

struct wallog {
	struct ar_vfs *vfs;
	uint32_t seg_bytes;
	bool writable;
	bool dir_unsynced; /* invariant 3 */
	uint64_t clock;
	struct wallog_fd fds[WALLOG_FDS_MAX];
	char dir[]; /* without trailing slashes */
};

/* Old bytes a new segment starts with: [0, bytes) of fd, read through buf. */
struct wallog_source {
	int fd;
	uint64_t bytes;
	uint8_t *buf; /* WALLOG_CHUNK_BYTES */
};

__attribute__((format(printf, 3, 4))) static int wl_fail(char *err, int rc, const char *fmt, ...)
{
	AR_ASSERT(rc < 0);
	if (!err)
		return rc;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err, WALLOG_ERROR_BYTES, fmt, ap);
	va_end(ap);
	if (n >= 0 && n < WALLOG_ERROR_BYTES)
		snprintf(err + n, (size_t)(WALLOG_ERROR_BYTES - n), ": %s", ar_strerror(rc));
	return rc;
}

static uint64_t wl_segs_per_log(const struct wallog *l)
{
	return 0x100000000ull / l->seg_bytes;
}

/* <dir>/TTTTTTTTXXXXXXXXYYYYYYYY<suffix>; the length was checked at open. */
static void wl_path(const struct wallog *l, uint32_t tli, uint64_t segno, const char *suffix,
		    char path[AR_PATH_BYTES_MAX])
{
	uint64_t per_log = wl_segs_per_log(l);
	int n =
	    snprintf(path, AR_PATH_BYTES_MAX, "%s/%08" PRIX32 "%08" PRIX32 "%08" PRIX32 "%s",
		     l->dir, tli, (uint32_t)(segno / per_log), (uint32_t)(segno % per_log), suffix);
	AR_ASSERT(n > 0 && n < AR_PATH_BYTES_MAX);
}

static bool wl_hex8(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 8; i++) {
		char c = s[i];
		uint32_t d;
		if (c >= '0' && c <= '9')
			d = (uint32_t)(c - '0');
		else if (c >= 'A' && c <= 'F')
			d = (uint32_t)(c - 'A' + 10);
		else
			return false;
		v = v << 4 | d;
	}
	*out = v;
	return true;
}

/* Is name a segment's (24 upper-case hex digits, a valid segment part)? */
static bool wl_name_parse(const struct wallog *l, const char *name, uint32_t *tli, uint64_t *segno)
{
	uint32_t log, seg;
	if (strlen(name) != WALLOG_NAME_CHARS)
		return false;
	if (!wl_hex8(name, tli) || !wl_hex8(name + 8, &log) || !wl_hex8(name + 16, &seg))
		return false;
	if (seg >= wl_segs_per_log(l))
		return false;
	*segno = (uint64_t)log * wl_segs_per_log(l) + seg;
	return true;
}

static bool wl_name_is_tmp(const char *name)
{
	size_t n = strlen(name);
	return n > 4 && strcmp(name + n - 4, ".tmp") == 0;
}

/* ---- opening ---- */

/* mkdir path (EEXIST is fine); when it was made, or always with own (the log's
 * own directory: made perhaps by a process that died before the sync), fsync its
 * parent so that it stays. */
static int wl_mkdir_one(struct ar_vfs *vfs, char *path, bool own, char *err)
{
	int rc = ar_vfs_mkdir(vfs, path);
	if (rc == -EEXIST && !own)
		return 0;
	if (rc < 0 && rc != -EEXIST)
		return wl_fail(err, rc, "creating WAL directory %s", path);
	char *slash = strrchr(path, '/');
	if (!slash)
		return 0; /* relative, one level: its parent is the working directory */
	char saved = slash[1];
	slash[1] = '\0';
	if (slash != path)
		slash[0] = '\0'; /* "/a/b" -> "/a", "/a" -> "/" */
	rc = ar_vfs_fsync_dir(vfs, path);
	if (rc < 0)
		rc = wl_fail(err, rc, "syncing directory %s", path);
	slash[0] = '/';
	slash[1] = saved;
	return rc;
}

/* Create dir and its missing parents, one level at a time. */
static int wl_mkdirs(struct wallog *l, char *err)
{
	char path[AR_PATH_BYTES_MAX];
	size_t len = strlen(l->dir);

	AR_ASSERT(len < sizeof(path));
	memcpy(path, l->dir, len + 1);
	for (size_t i = 1; i < len; i++) {
		if (path[i] != '/' || path[i - 1] == '/')
			continue;
		path[i] = '\0';
		int rc = wl_mkdir_one(l->vfs, path, false, err);
		path[i] = '/';
		if (rc < 0)
			return rc;
	}
	return wl_mkdir_one(l->vfs, path, true, err);
}

struct wl_tmp_ctx {
	struct wallog *l;
	char *err;
};

static int wl_tmp_remove(void *ctx, const char *name)
{
	struct wl_tmp_ctx *c = ctx;
	char path[AR_PATH_BYTES_MAX];

	if (!wl_name_is_tmp(name))
		return 0;
	int n = snprintf(path, sizeof(path), "%s/%s", c->l->dir, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return wl_fail(c->err, -ENAMETOOLONG, "removing %s/%s", c->l->dir, name);
	int rc = ar_vfs_unlink(c->l->vfs, path);
	if (rc < 0 && rc != -ENOENT)
		return wl_fail(c->err, rc, "removing leftover %s", path);
	return 0;
}

/* Writable open: the directory exists, holds no "*.tmp", and its entries are durable
 * (a segment renamed by an earlier process that stopped before fsync_dir). */
static int wl_open_writable(struct wallog *l, char *err)
{
	struct wl_tmp_ctx c = { .l = l, .err = err };

	int rc = wl_mkdirs(l, err);
	if (rc < 0)
		return rc;
	rc = ar_vfs_list_dir(l->vfs, l->dir, wl_tmp_remove, &c);
	if (rc < 0)
		return err && err[0] ? rc : wl_fail(err, rc, "listing WAL directory %s", l->dir);
	rc = ar_vfs_fsync_dir(l->vfs, l->dir);
	if (rc < 0)
		return wl_fail(err, rc, "syncing WAL directory %s", l->dir);
	return 0;
}

int wallog_open(struct ar_vfs *vfs, const char *dir, uint32_t seg_bytes, bool writable,
		struct wallog **out, char err[WALLOG_ERROR_BYTES])
{
	size_t len = strlen(dir);

	AR_ASSERT(vfs != NULL);
	AR_ASSERT(out != NULL);
	if (err)
		err[0] = '\0';
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (seg_bytes < WALLOG_SEG_BYTES_MIN || seg_bytes > WALLOG_SEG_BYTES_MAX ||
	    (seg_bytes & (seg_bytes - 1)) != 0)
		return wl_fail(err, -EINVAL, "opening WAL log %s: segment size %" PRIu32, dir,
			       seg_bytes);
	if (len == 0 || len + 1 + WALLOG_NAME_CHARS + sizeof(".tmp") > AR_PATH_BYTES_MAX)
		return wl_fail(err, -ENAMETOOLONG, "opening WAL log %s", dir);
	struct wallog *l = calloc(1, sizeof(*l) + len + 1);
	if (!l)
		return wl_fail(err, -ENOMEM, "opening WAL log %s", dir);
	*l = (struct wallog){ .vfs = vfs, .seg_bytes = seg_bytes, .writable = writable };
	memcpy(l->dir, dir, len);
	l->dir[len] = '\0';
	for (int i = 0; i < WALLOG_FDS_MAX; i++)
		l->fds[i].fd = -1;
	int rc = writable ? wl_open_writable(l, err) : ar_vfs_exists(vfs, l->dir);
	if (rc < 0) {
		if (!writable)
			wl_fail(err, rc, "opening WAL log %s", l->dir);
		free(l);
		return rc;
	}
	*out = l;
	return 0;
}

/* ---- the segment cache ---- */

static void wl_fd_close(struct wallog *l, struct wallog_fd *f)
{
	AR_ASSERT(f->fd >= 0);
	(void)ar_vfs_close(l->vfs, f->fd); /* nothing to lose: dirty data was fsynced or dropped */
	*f = (struct wallog_fd){ .fd = -1 };
}

void wallog_close(struct wallog *l)
{
	if (!l)
		return;
	for (int i = 0; i < WALLOG_FDS_MAX; i++)
		if (l->fds[i].fd >= 0)
			wl_fd_close(l, &l->fds[i]);
	free(l);
}

static struct wallog_fd *wl_fd_find(struct wallog *l, uint32_t tli, uint64_t segno)
{
	for (int i = 0; i < WALLOG_FDS_MAX; i++) {
		struct wallog_fd *f = &l->fds[i];
		if (f->fd >= 0 && f->tli == tli && f->segno == segno) {
			f->used = ++l->clock;
			return f;
		}
	}
	return NULL;
}

static int wl_fd_sync(struct wallog *l, struct wallog_fd *f, char *err)
{
	char path[AR_PATH_BYTES_MAX];

	int rc = ar_vfs_fdatasync(l->vfs, f->fd);
	if (rc < 0) {
		wl_path(l, f->tli, f->segno, "", path);
		return wl_fail(err, rc, "syncing WAL segment %s", path);
	}
	f->dirty = false;
	return 0;
}

/* A free slot: the least recently used one is closed (synced first if dirty). */
static int wl_fd_slot(struct wallog *l, struct wallog_fd **out, char *err)
{
	struct wallog_fd *victim = &l->fds[0];

	for (int i = 0; i < WALLOG_FDS_MAX; i++) {
		struct wallog_fd *f = &l->fds[i];
		if (f->fd < 0) {
			*out = f;
			return 0;
		}
		if (f->used < victim->used)
			victim = f;
	}
	if (victim->dirty) {
		int rc = wl_fd_sync(l, victim, err);
		if (rc < 0)
			return rc;
	}
	wl_fd_close(l, victim);
	*out = victim;
	return 0;
}

/* ---- creating segments ---- */

/* Fill a new segment's file: src's bytes first (if any), zeros after. */
static int wl_seg_fill(struct wallog *l, int fd, const struct wallog_source *src)
{
	uint64_t copy_bytes = src ? src->bytes : 0;

	for (uint64_t pos = 0; pos < l->seg_bytes;) {
		size_t n = WALLOG_CHUNK_BYTES;
		const void *bytes = wallog_zeros;
		if (pos < copy_bytes) {
			n = (size_t)(copy_bytes - pos < n ? copy_bytes - pos : n);
			int64_t got = ar_vfs_pread(l->vfs, src->fd, src->buf, n, pos);
			if (got < 0)
				return (int)got;
			memset(src->buf + got, 0, n - (size_t)got); /* a short old segment */
			bytes = src->buf;
		} else if (n > l->seg_bytes - pos) {
			n = (size_t)(l->seg_bytes - pos);
		}
		int64_t w = ar_vfs_pwrite(l->vfs, fd, bytes, n, pos);
		if (w < 0)
			return (int)w;
		pos += n;
	}
	return ar_vfs_fsync(l->vfs, fd);
}

/* Create segment (tli, segno) whole: <name>.tmp filled and fsynced, renamed, the
 * directory fsynced.  On failure before the rename the tmp file is removed. */
static int wl_seg_create(struct wallog *l, uint32_t tli, uint64_t segno,
			 const struct wallog_source *src, char *err)
{
	char tmp[AR_PATH_BYTES_MAX], path[AR_PATH_BYTES_MAX];
	int fd;

	wl_path(l, tli, segno, ".tmp", tmp);
	wl_path(l, tli, segno, "", path);
	int rc = ar_vfs_open(l->vfs, tmp, AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_TRUNC, &fd);
	if (rc < 0)
		return wl_fail(err, rc, "creating WAL segment %s", path);
	rc = wl_seg_fill(l, fd, src);
	(void)ar_vfs_close(l->vfs, fd); /* the fsync in wl_seg_fill decided */
	if (rc == 0) {
		l->dir_unsynced = true;
		rc = ar_vfs_rename(l->vfs, tmp, path);
	}
	if (rc < 0) {
		(void)ar_vfs_unlink(l->vfs, tmp); /* best effort: open removes it too */
		return wl_fail(err, rc, "creating WAL segment %s", path);
	}
	rc = ar_vfs_fsync_dir(l->vfs, l->dir);
	if (rc < 0)
		return wl_fail(err, rc, "creating WAL segment %s: syncing %s", path, l->dir);
	l->dir_unsynced = false;
	return 0;
}

/* A segment about to be written is whole (invariant 1): writing into a short one
 * (not made here) would make its fsync change its size.  Checked once per open. */
static int wl_seg_check(struct wallog *l, struct wallog_fd *f, char *err)
{
	char path[AR_PATH_BYTES_MAX];
	uint64_t bytes = 0;

	if (f->whole)
		return 0;
	int rc = ar_vfs_size(l->vfs, f->fd, &bytes);
	if (rc == 0 && bytes == l->seg_bytes) {
		f->whole = true;
		return 0;
	}
	wl_path(l, f->tli, f->segno, "", path);
	if (rc < 0)
		return wl_fail(err, rc, "checking WAL segment %s", path);
	return wl_fail(err, -AR_ECORRUPT, "WAL segment %s is %" PRIu64 " bytes, not %" PRIu32, path,
		       bytes, l->seg_bytes);
}

/* Open segment (tli, segno) into the cache; with create, a missing one is made
 * first, else *out is NULL when it is missing. */
static int wl_seg_get(struct wallog *l, uint32_t tli, uint64_t segno, bool create,
		      struct wallog_fd **out, char *err)
{
	char path[AR_PATH_BYTES_MAX];
	int flags = l->writable ? AR_VFS_WRITE : AR_VFS_READ;
	int fd;

	*out = wl_fd_find(l, tli, segno);
	if (*out)
		return 0;
	wl_path(l, tli, segno, "", path);
	int rc = ar_vfs_open(l->vfs, path, flags, &fd);
	if (rc == -ENOENT && create) {
		rc = wl_seg_create(l, tli, segno, NULL, err);
		if (rc < 0)
			return rc;
		rc = ar_vfs_open(l->vfs, path, flags, &fd);
	}
	if (rc == -ENOENT && !create)
		return 0;
	if (rc < 0)
		return wl_fail(err, rc, "opening WAL segment %s", path);
	struct wallog_fd *slot = NULL;
	rc = wl_fd_slot(l, &slot, err);
	if (rc < 0) {
		(void)ar_vfs_close(l->vfs, fd);
		return rc;
	}
	*slot = (struct wallog_fd){ .fd = fd, .tli = tli, .segno = segno, .used = ++l->clock };
	*out = slot;
	return 0;
}

/* ---- writing ---- */

/* The part of a write that falls in one segment. */
static int wl_write_seg(struct wallog *l, uint32_t tli, ar_lsn lsn, const void *data, size_t len,
			char *err)
{
	uint64_t segno = lsn / l->seg_bytes;
	uint64_t off = lsn % l->seg_bytes;
	struct wallog_fd *f;

	AR_ASSERT(off + len <= l->seg_bytes);
	int rc = wl_seg_get(l, tli, segno, true, &f, err);
	if (rc == 0)
		rc = wl_seg_check(l, f, err);
	if (rc < 0)
		return rc;
	f->dirty = true; /* even if the write fails part-way: some of it may be there */
	int64_t n = ar_vfs_pwrite(l->vfs, f->fd, data, len, off);
	if (n < 0) {
		char path[AR_PATH_BYTES_MAX];
		wl_path(l, tli, segno, "", path);
		return wl_fail(err, (int)n, "writing WAL segment %s at offset %" PRIu64, path, off);
	}
	return 0;
}

int wallog_write(struct wallog *l, uint32_t tli, ar_lsn lsn, const void *data, size_t len,
		 char err[WALLOG_ERROR_BYTES])
{
	const uint8_t *p = data;

	AR_ASSERT(l->writable);
	AR_ASSERT(len <= AR_LSN_MAX - lsn);
	if (err)
		err[0] = '\0';
	while (len > 0) {
		uint64_t room = l->seg_bytes - lsn % l->seg_bytes;
		size_t n = len < room ? len : (size_t)room;
		int rc = wl_write_seg(l, tli, lsn, p, n, err);
		if (rc < 0)
			return rc;
		lsn += n;
		p += n;
		len -= n;
	}
	return 0;
}

/* Make the segments' names durable if a rename is not yet (invariant 3). */
static int wl_dir_sync(struct wallog *l, char *err)
{
	if (!l->dir_unsynced)
		return 0;
	int rc = ar_vfs_fsync_dir(l->vfs, l->dir);
	if (rc < 0)
		return wl_fail(err, rc, "syncing WAL directory %s", l->dir);
	l->dir_unsynced = false;
	return 0;
}

int wallog_flush(struct wallog *l, char err[WALLOG_ERROR_BYTES])
{
	AR_ASSERT(l->writable);
	if (err)
		err[0] = '\0';
	int rc = wl_dir_sync(l, err);
	if (rc < 0)
		return rc;
	for (int i = 0; i < WALLOG_FDS_MAX; i++) {
		struct wallog_fd *f = &l->fds[i];
		if (f->fd < 0 || !f->dirty)
			continue;
		rc = wl_fd_sync(l, f, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- reading ---- */

int64_t wallog_read(struct wallog *l, uint32_t tli, ar_lsn lsn, void *buf, size_t len,
		    char err[WALLOG_ERROR_BYTES])
{
	uint64_t segno = lsn / l->seg_bytes;
	uint64_t off = lsn % l->seg_bytes;
	struct wallog_fd *f;

	if (err)
		err[0] = '\0';
	if (len > l->seg_bytes - off)
		len = (size_t)(l->seg_bytes - off);
	if (len == 0)
		return 0;
	int rc = wl_seg_get(l, tli, segno, false, &f, err);
	if (rc < 0)
		return rc;
	if (!f)
		return 0; /* missing: looked up again next time (invariant 4) */
	int64_t n = ar_vfs_pread(l->vfs, f->fd, buf, len, off);
	if (n < 0) {
		char path[AR_PATH_BYTES_MAX];
		wl_path(l, tli, segno, "", path);
		return wl_fail(err, (int)n, "reading WAL segment %s at offset %" PRIu64, path, off);
	}
	return n;
}

/* ---- timelines ---- */

int wallog_switch_timeline(struct wallog *l, uint32_t old_tli, uint32_t new_tli, ar_lsn switch_lsn,
			   char err[WALLOG_ERROR_BYTES])
{
	uint64_t segno = switch_lsn / l->seg_bytes;
	char path[AR_PATH_BYTES_MAX];
	struct wallog_fd *old;

	AR_ASSERT(l->writable);
	AR_ASSERT(old_tli != new_tli);
	if (err)
		err[0] = '\0';
	wl_path(l, new_tli, segno, "", path);
	int rc = ar_vfs_exists(l->vfs, path);
	if (rc == 0)
		return wl_dir_sync(l, err); /* made by an earlier call: it may hold new WAL */
	if (rc != -ENOENT)
		return wl_fail(err, rc, "switching to timeline %" PRIu32 ": checking %s", new_tli,
			       path);
	struct wallog_source src = { .bytes = switch_lsn % l->seg_bytes };
	if (src.bytes > 0) {
		rc = wl_seg_get(l, old_tli, segno, false, &old, err);
		if (rc < 0)
			return rc;
		if (!old) {
			wl_path(l, old_tli, segno, "", path);
			return wl_fail(err, -ENOENT,
				       "switching to timeline %" PRIu32 ": reading %s", new_tli,
				       path);
		}
		src.fd = old->fd;
		src.buf = malloc(WALLOG_CHUNK_BYTES);
		if (!src.buf)
			return wl_fail(err, -ENOMEM, "switching to timeline %" PRIu32, new_tli);
	}
	rc = wl_seg_create(l, new_tli, segno, src.bytes > 0 ? &src : NULL, err);
	free(src.buf);
	return rc;
}

/* ---- trim and info ---- */

struct wl_trim_ctx {
	struct wallog *l;
	ar_lsn lsn;
	int removed;
	char *err;
};

static int wl_trim_one(void *ctx, const char *name)
{
	struct wl_trim_ctx *c = ctx;
	struct wallog *l = c->l;
	char path[AR_PATH_BYTES_MAX];
	uint32_t tli;
	uint64_t segno;

	if (!wl_name_parse(l, name, &tli, &segno))
		return 0;
	if (segno >= c->lsn / l->seg_bytes)
		return 0; /* it ends above lsn: it holds lsn or later WAL */
	struct wallog_fd *f = wl_fd_find(l, tli, segno);
	if (f)
		wl_fd_close(l, f); /* its unsynced writes go with it */
	wl_path(l, tli, segno, "", path);
	int rc = ar_vfs_unlink(l->vfs, path);
	if (rc < 0)
		return wl_fail(c->err, rc, "removing WAL segment %s", path);
	c->removed++;
	return 0;
}

int wallog_trim(struct wallog *l, ar_lsn lsn, char err[WALLOG_ERROR_BYTES])
{
	struct wl_trim_ctx c = { .l = l, .lsn = lsn, .err = err };

	AR_ASSERT(l->writable);
	if (err)
		err[0] = '\0';
	int rc = ar_vfs_list_dir(l->vfs, l->dir, wl_trim_one, &c);
	if (rc < 0)
		return err && err[0] ? rc : wl_fail(err, rc, "listing WAL directory %s", l->dir);
	if (c.removed == 0)
		return 0;
	rc = ar_vfs_fsync_dir(l->vfs, l->dir);
	if (rc < 0)
		return wl_fail(err, rc, "syncing WAL directory %s", l->dir);
	return c.removed;
}

/* ---- sync on open ---- */

static int wl_sync_one(void *ctx, const char *name)
{
	struct wl_trim_ctx *c = ctx;
	struct wallog *l = c->l;
	char path[AR_PATH_BYTES_MAX];
	uint32_t tli;
	uint64_t segno;
	int fd;

	if (!wl_name_parse(l, name, &tli, &segno) || segno < c->lsn / l->seg_bytes)
		return 0;
	wl_path(l, tli, segno, "", path);
	int rc = ar_vfs_open(l->vfs, path, AR_VFS_WRITE, &fd);
	if (rc < 0)
		return wl_fail(c->err, rc, "opening WAL segment %s", path);
	rc = ar_vfs_fdatasync(l->vfs, fd);
	ar_vfs_close(l->vfs, fd);
	if (rc < 0)
		return wl_fail(c->err, rc, "syncing WAL segment %s", path);
	c->removed++;
	return 0;
}

int wallog_sync_from(struct wallog *l, ar_lsn lsn, char err[WALLOG_ERROR_BYTES])
{
	struct wl_trim_ctx c = { .l = l, .lsn = lsn, .err = err };

	AR_ASSERT(l->writable);
	err[0] = '\0';
	int rc = ar_vfs_list_dir(l->vfs, l->dir, wl_sync_one, &c);
	if (rc < 0)
		return err[0] ? rc : wl_fail(err, rc, "listing WAL directory %s", l->dir);
	return c.removed;
}

struct wl_info_ctx {
	struct wallog *l;
	struct wallog_info *info;
};

static int wl_info_one(void *ctx, const char *name)
{
	struct wl_info_ctx *c = ctx;
	struct wallog_info *info = c->info;
	uint32_t tli;
	uint64_t segno;

	if (!wl_name_parse(c->l, name, &tli, &segno))
		return 0;
	if (info->segments == 0 || segno < info->first_segno)
		info->first_segno = segno;
	if (info->segments == 0 || segno > info->last_segno)
		info->last_segno = segno;
	info->segments++;
	info->bytes += c->l->seg_bytes;
	return 0;
}

int wallog_info(struct wallog *l, struct wallog_info *out, char err[WALLOG_ERROR_BYTES])
{
	struct wl_info_ctx c = { .l = l, .info = out };

	if (err)
		err[0] = '\0';
	*out = (struct wallog_info){ 0 };
	int rc = ar_vfs_list_dir(l->vfs, l->dir, wl_info_one, &c);
	if (rc < 0) {
		*out = (struct wallog_info){ 0 };
		return wl_fail(err, rc, "listing WAL directory %s", l->dir);
	}
	return 0;
}
