/*
 * vfs_sim.c - The simulated disk behind the VFS switch (see vfs.h).
 *
 * Files are inodes holding their current bytes and the bytes as of their last
 * fsync.  Names are entries (path -> inode or directory) holding a current
 * target and a durable target; fsync_dir(d) makes the current targets of d's
 * entries durable.  A power cut (ar_vfs_sim_restart) puts every entry back on
 * its durable target and every inode back on its synced bytes (or, with torn
 * writes, a per-sector mix of old and new bytes and either length), closes all
 * fds and frees what nothing references any more.
 *
 * Invariants:
 *  1. The root "/" always exists durably; a path's parent must exist (current)
 *     for anything to be created in it.
 *  2. While crashed, every operation returns -EIO and changes nothing.
 *  3. All state lives in the instance; the PRNG is seeded by the caller.
 */
#include "common/vfs.h"

#include "common/assert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIM_FDS = 1024, SIM_SECTOR = 512, SIM_PATH_MAX = 1024 };
#define SIM_FILE_BYTES_MAX (1ull << 30)
#define SIM_DIR ((struct sim_inode *)1) /* an entry's target when it is a directory */

struct sim_inode {
	uint8_t *data;
	size_t len;
	size_t cap;
	uint8_t *synced;
	size_t synced_len;
	bool marked;
};

struct sim_entry {
	char *path;
	struct sim_inode *cur; /* NULL: absent now */
	struct sim_inode *dur; /* NULL: absent after a crash */
};

struct sim {
	struct ar_vfs vfs;
	uint64_t rng;
	struct sim_entry *entries;
	size_t entry_count;
	size_t entry_cap;
	uint32_t *index;  /* open addressing: entry number + 1, 0 = empty */
	size_t index_cap; /* a power of two, > 2 x entry_cap */
	struct sim_inode **inodes;
	size_t inode_count;
	size_t inode_cap;
	struct sim_inode *fds[SIM_FDS];
	uint64_t mutations;
	uint64_t crash_at;
	bool crashed;
	const char *fail_op; /* NULL with fail_err set: any operation */
	int fail_err;
};

static struct sim *sim_of(struct ar_vfs *v)
{
	return (struct sim *)v;
}

static uint64_t sim_rand(struct sim *s)
{
	uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* The injected failure or crash for an operation, or 0 to go on. */
static int sim_enter(struct sim *s, const char *op, bool mutation)
{
	if (s->crashed)
		return -EIO;
	if (s->fail_err && (!s->fail_op || strcmp(s->fail_op, op) == 0)) {
		int err = s->fail_err;
		s->fail_err = 0;
		s->fail_op = NULL;
		return err;
	}
	if (mutation) {
		s->mutations++;
		if (s->crash_at && s->mutations >= s->crash_at) {
			s->crashed = true;
			return -EIO;
		}
	}
	return 0;
}

/* "/a//b/" -> "/a/b"; relative paths are kept relative.  -EINVAL for "." or "..". */
static int sim_normalize(const char *path, char out[SIM_PATH_MAX])
{
	size_t n = 0;
	const char *p = path;

	if (!*p)
		return -ENOENT;
	while (*p) {
		if (*p == '/') {
			while (*p == '/')
				p++;
			if (n == 0 || out[n - 1] != '/')
				out[n++] = '/';
			if (n >= SIM_PATH_MAX)
				return -ENAMETOOLONG;
			continue;
		}
		const char *start = p;
		while (*p && *p != '/')
			p++;
		size_t len = (size_t)(p - start);
		if ((len == 1 && start[0] == '.') ||
		    (len == 2 && start[0] == '.' && start[1] == '.'))
			return -EINVAL;
		if (n + len >= SIM_PATH_MAX)
			return -ENAMETOOLONG;
		memcpy(out + n, start, len);
		n += len;
	}
	if (n > 1 && out[n - 1] == '/')
		n--;
	out[n] = '\0';
	return 0;
}

static uint64_t sim_hash(const char *path)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = path; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return h;
}

static struct sim_entry *sim_entry(struct sim *s, const char *path)
{
	if (!s->index_cap)
		return NULL;
	for (size_t i = sim_hash(path) & (s->index_cap - 1);; i = (i + 1) & (s->index_cap - 1)) {
		uint32_t n = s->index[i];
		if (n == 0)
			return NULL;
		if (strcmp(s->entries[n - 1].path, path) == 0)
			return &s->entries[n - 1];
	}
}

static int sim_index_rebuild(struct sim *s, size_t cap)
{
	uint32_t *index = calloc(cap, sizeof(*index));
	if (!index)
		return -ENOMEM;
	for (size_t e = 0; e < s->entry_count; e++) {
		size_t i = sim_hash(s->entries[e].path) & (cap - 1);
		while (index[i])
			i = (i + 1) & (cap - 1);
		index[i] = (uint32_t)(e + 1);
	}
	free(s->index);
	s->index = index;
	s->index_cap = cap;
	return 0;
}

static struct sim_entry *sim_entry_add(struct sim *s, const char *path)
{
	struct sim_entry *e = sim_entry(s, path);
	if (e)
		return e;
	if (s->entry_count == s->entry_cap) {
		size_t cap = s->entry_cap ? s->entry_cap * 2 : 64;
		struct sim_entry *n = realloc(s->entries, cap * sizeof(*n));
		if (!n)
			return NULL;
		s->entries = n;
		s->entry_cap = cap;
	}
	if ((s->entry_count + 1) * 2 >= s->index_cap &&
	    sim_index_rebuild(s, s->index_cap ? s->index_cap * 2 : 256) < 0)
		return NULL;
	e = &s->entries[s->entry_count];
	e->path = strdup(path);
	if (!e->path)
		return NULL;
	e->cur = e->dur = NULL;
	s->entry_count++;
	size_t i = sim_hash(path) & (s->index_cap - 1);
	while (s->index[i])
		i = (i + 1) & (s->index_cap - 1);
	s->index[i] = (uint32_t)s->entry_count;
	return e;
}

/* The parent directory of path exists now ("/" always does). */
static bool sim_parent_exists(struct sim *s, const char *path)
{
	char parent[SIM_PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!slash)
		return true; /* relative name in the working directory */
	if (slash == path)
		return true;
	size_t n = (size_t)(slash - path);
	memcpy(parent, path, n);
	parent[n] = '\0';
	struct sim_entry *e = sim_entry(s, parent);
	return e && e->cur == SIM_DIR;
}

static bool sim_is_child(const char *dir, const char *path)
{
	size_t n = strlen(dir);
	if (strcmp(dir, "/") == 0)
		n = 0;
	if (strncmp(path, dir, n) != 0 || path[n] != '/')
		return false;
	return strchr(path + n + 1, '/') == NULL && path[n + 1] != '\0';
}

/* ---- inodes ---- */

static struct sim_inode *sim_inode_new(struct sim *s)
{
	if (s->inode_count == s->inode_cap) {
		size_t cap = s->inode_cap ? s->inode_cap * 2 : 64;
		struct sim_inode **n = realloc(s->inodes, cap * sizeof(*n));
		if (!n)
			return NULL;
		s->inodes = n;
		s->inode_cap = cap;
	}
	struct sim_inode *ino = calloc(1, sizeof(*ino));
	if (ino)
		s->inodes[s->inode_count++] = ino;
	return ino;
}

static void sim_inode_free(struct sim_inode *ino)
{
	free(ino->data);
	free(ino->synced);
	free(ino);
}

/* Free inodes that no entry (now or durably) and no fd references. */
static void sim_gc(struct sim *s)
{
	for (size_t i = 0; i < s->inode_count; i++)
		s->inodes[i]->marked = false;
	for (size_t i = 0; i < s->entry_count; i++) {
		if (s->entries[i].cur && s->entries[i].cur != SIM_DIR)
			s->entries[i].cur->marked = true;
		if (s->entries[i].dur && s->entries[i].dur != SIM_DIR)
			s->entries[i].dur->marked = true;
	}
	for (int fd = 0; fd < SIM_FDS; fd++)
		if (s->fds[fd])
			s->fds[fd]->marked = true;
	size_t kept = 0;
	for (size_t i = 0; i < s->inode_count; i++) {
		if (s->inodes[i]->marked)
			s->inodes[kept++] = s->inodes[i];
		else
			sim_inode_free(s->inodes[i]);
	}
	s->inode_count = kept;
	/* Names absent now and after a crash are forgotten. */
	kept = 0;
	for (size_t i = 0; i < s->entry_count; i++) {
		if (s->entries[i].cur || s->entries[i].dur)
			s->entries[kept++] = s->entries[i];
		else
			free(s->entries[i].path);
	}
	if (kept != s->entry_count) {
		s->entry_count = kept;
		int rc = sim_index_rebuild(s, s->index_cap);
		AR_ASSERT(rc == 0); /* the test harness itself is out of memory */
	}
}

static int sim_inode_resize(struct sim_inode *ino, size_t len)
{
	if (len > SIM_FILE_BYTES_MAX)
		return -EFBIG;
	if (len > ino->cap) {
		size_t cap = ino->cap ? ino->cap : 4096;
		while (cap < len)
			cap *= 2;
		uint8_t *d = realloc(ino->data, cap);
		if (!d)
			return -ENOMEM;
		ino->data = d;
		ino->cap = cap;
	}
	if (len > ino->len)
		memset(ino->data + ino->len, 0, len - ino->len);
	ino->len = len;
	return 0;
}

/* ---- file operations ---- */

static int sim_open(struct ar_vfs *v, const char *path, int flags, int *fd_out)
{
	struct sim *s = sim_of(v);
	char p[SIM_PATH_MAX];
	bool mutating = flags & (AR_VFS_CREATE | AR_VFS_TRUNC);
	int rc = sim_normalize(path, p);
	if (rc == 0)
		rc = sim_enter(s, "open", mutating);
	if (rc < 0)
		return rc;
	struct sim_entry *e = sim_entry(s, p);
	bool exists = e && e->cur;
	if (exists && e->cur == SIM_DIR)
		return -EISDIR;
	if (exists && (flags & AR_VFS_CREATE) && (flags & AR_VFS_EXCL))
		return -EEXIST;
	if (!exists && !(flags & AR_VFS_CREATE))
		return -ENOENT;
	if (!sim_parent_exists(s, p))
		return -ENOENT;
	int fd = 0;
	while (fd < SIM_FDS && s->fds[fd])
		fd++;
	if (fd == SIM_FDS)
		return -EMFILE;
	if (!exists) {
		struct sim_inode *ino = sim_inode_new(s);
		e = ino ? sim_entry_add(s, p) : NULL;
		if (!e)
			return -ENOMEM;
		e->cur = ino;
	}
	if (flags & AR_VFS_TRUNC)
		e->cur->len = 0;
	s->fds[fd] = e->cur;
	*fd_out = fd;
	return 0;
}

static struct sim_inode *sim_fd(struct sim *s, int fd)
{
	return fd >= 0 && fd < SIM_FDS ? s->fds[fd] : NULL;
}

static int sim_close(struct ar_vfs *v, int fd)
{
	struct sim *s = sim_of(v);
	if (!sim_fd(s, fd))
		return -EBADF;
	s->fds[fd] = NULL;
	sim_gc(s);
	return 0;
}

static int64_t sim_pread(struct ar_vfs *v, int fd, void *buf, size_t len, uint64_t offset)
{
	struct sim *s = sim_of(v);
	int rc = sim_enter(s, "pread", false);
	if (rc < 0)
		return rc;
	struct sim_inode *ino = sim_fd(s, fd);
	if (!ino)
		return -EBADF;
	if (offset >= ino->len)
		return 0;
	size_t n = ino->len - offset < len ? ino->len - offset : len;
	memcpy(buf, ino->data + offset, n);
	return (int64_t)n;
}

static int64_t sim_pwrite(struct ar_vfs *v, int fd, const void *buf, size_t len, uint64_t offset)
{
	struct sim *s = sim_of(v);
	int rc = sim_enter(s, "pwrite", true);
	if (rc < 0)
		return rc;
	struct sim_inode *ino = sim_fd(s, fd);
	if (!ino)
		return -EBADF;
	if (offset + len > ino->len) {
		rc = sim_inode_resize(ino, offset + len);
		if (rc < 0)
			return rc;
	}
	memcpy(ino->data + offset, buf, len);
	return (int64_t)len;
}

static int sim_fsync(struct ar_vfs *v, int fd)
{
	struct sim *s = sim_of(v);
	int rc = sim_enter(s, "fsync", true);
	if (rc < 0)
		return rc;
	struct sim_inode *ino = sim_fd(s, fd);
	if (!ino)
		return -EBADF;
	uint8_t *copy = malloc(ino->len ? ino->len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, ino->data, ino->len);
	free(ino->synced);
	ino->synced = copy;
	ino->synced_len = ino->len;
	return 0;
}

static int sim_size(struct ar_vfs *v, int fd, uint64_t *bytes_out)
{
	struct sim *s = sim_of(v);
	int rc = sim_enter(s, "size", false);
	if (rc < 0)
		return rc;
	struct sim_inode *ino = sim_fd(s, fd);
	if (!ino)
		return -EBADF;
	*bytes_out = ino->len;
	return 0;
}

static int sim_truncate(struct ar_vfs *v, int fd, uint64_t bytes)
{
	struct sim *s = sim_of(v);
	int rc = sim_enter(s, "truncate", true);
	if (rc < 0)
		return rc;
	struct sim_inode *ino = sim_fd(s, fd);
	if (!ino)
		return -EBADF;
	if (bytes > ino->len)
		return sim_inode_resize(ino, bytes);
	ino->len = bytes;
	return 0;
}

/* ---- names ---- */

static int sim_rename(struct ar_vfs *v, const char *from, const char *to)
{
	struct sim *s = sim_of(v);
	char a[SIM_PATH_MAX], b[SIM_PATH_MAX];
	int rc = sim_normalize(from, a);
	if (rc == 0)
		rc = sim_normalize(to, b);
	if (rc == 0)
		rc = sim_enter(s, "rename", true);
	if (rc < 0)
		return rc;
	struct sim_entry *src = sim_entry(s, a);
	if (!src || !src->cur)
		return -ENOENT;
	if (!sim_parent_exists(s, b))
		return -ENOENT;
	if (src->cur == SIM_DIR) {
		/* A directory moves with everything below it. */
		size_t n = strlen(a);
		struct sim_entry *dst = sim_entry(s, b);
		if (dst && dst->cur)
			return -EEXIST;
		for (size_t i = 0; i < s->entry_count; i++) {
			struct sim_entry *e = &s->entries[i];
			if (!e->cur || strncmp(e->path, a, n) != 0 || e->path[n] != '/')
				continue;
			char moved[SIM_PATH_MAX * 2];
			snprintf(moved, sizeof(moved), "%s%s", b, e->path + n);
			struct sim_inode *target = e->cur;
			struct sim_entry *m = sim_entry_add(s, moved);
			if (!m)
				return -ENOMEM;
			e = &s->entries[i]; /* the table may have moved */
			e->cur = NULL;
			m->cur = target;
		}
	}
	if (strcmp(a, b) == 0)
		return 0;
	src = sim_entry(s, a); /* the table may have moved */
	struct sim_inode *target = src->cur;
	struct sim_entry *dst = sim_entry_add(s, b);
	if (!dst)
		return -ENOMEM;
	src = sim_entry(s, a);
	if (dst->cur == SIM_DIR && target != SIM_DIR)
		return -EISDIR;
	dst->cur = target;
	src->cur = NULL;
	sim_gc(s);
	return 0;
}

static int sim_unlink(struct ar_vfs *v, const char *path)
{
	struct sim *s = sim_of(v);
	char p[SIM_PATH_MAX];
	int rc = sim_normalize(path, p);
	if (rc == 0)
		rc = sim_enter(s, "unlink", true);
	if (rc < 0)
		return rc;
	struct sim_entry *e = sim_entry(s, p);
	if (!e || !e->cur)
		return -ENOENT;
	if (e->cur == SIM_DIR)
		return -EISDIR;
	e->cur = NULL;
	sim_gc(s);
	return 0;
}

static int sim_mkdir(struct ar_vfs *v, const char *path)
{
	struct sim *s = sim_of(v);
	char p[SIM_PATH_MAX];
	int rc = sim_normalize(path, p);
	if (rc == 0)
		rc = sim_enter(s, "mkdir", true);
	if (rc < 0)
		return rc;
	struct sim_entry *e = sim_entry(s, p);
	if ((e && e->cur) || strcmp(p, "/") == 0)
		return -EEXIST;
	if (!sim_parent_exists(s, p))
		return -ENOENT;
	e = sim_entry_add(s, p);
	if (!e)
		return -ENOMEM;
	e->cur = SIM_DIR;
	return 0;
}

static int sim_rmdir(struct ar_vfs *v, const char *path)
{
	struct sim *s = sim_of(v);
	char p[SIM_PATH_MAX];
	int rc = sim_normalize(path, p);
	if (rc == 0)
		rc = sim_enter(s, "rmdir", true);
	if (rc < 0)
		return rc;
	struct sim_entry *e = sim_entry(s, p);
	if (!e || e->cur != SIM_DIR)
		return e && e->cur ? -ENOTDIR : -ENOENT;
	for (size_t i = 0; i < s->entry_count; i++)
		if (s->entries[i].cur && sim_is_child(p, s->entries[i].path))
			return -ENOTEMPTY;
	e->cur = NULL;
	return 0;
}

static int sim_fsync_dir(struct ar_vfs *v, const char *path)
{
	struct sim *s = sim_of(v);
	char p[SIM_PATH_MAX];
	int rc = sim_normalize(path, p);
	if (rc == 0)
		rc = sim_enter(s, "fsync_dir", true);
	if (rc < 0)
		return rc;
	struct sim_entry *d = sim_entry(s, p);
	if (strcmp(p, "/") != 0 && (!d || d->cur != SIM_DIR))
		return -ENOENT;
	for (size_t i = 0; i < s->entry_count; i++)
		if (sim_is_child(p, s->entries[i].path))
			s->entries[i].dur = s->entries[i].cur;
	sim_gc(s);
	return 0;
}

static int sim_list_dir(struct ar_vfs *v, const char *path, ar_vfs_entry_fn *fn, void *ctx)
{
	struct sim *s = sim_of(v);
	char p[SIM_PATH_MAX];
	int rc = sim_normalize(path, p);
	if (rc == 0)
		rc = sim_enter(s, "list_dir", false);
	if (rc < 0)
		return rc;
	struct sim_entry *d = sim_entry(s, p);
	if (strcmp(p, "/") != 0 && (!d || d->cur != SIM_DIR))
		return -ENOENT;
	/* Snapshot the names first: fn may unlink while we list. */
	size_t count = 0;
	char **names = malloc((s->entry_count + 1) * sizeof(*names));
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < s->entry_count; i++)
		if (s->entries[i].cur && sim_is_child(p, s->entries[i].path))
			names[count++] = strdup(strrchr(s->entries[i].path, '/') + 1);
	for (size_t i = 0; i < count && rc == 0; i++)
		rc = names[i] ? fn(ctx, names[i]) : -ENOMEM;
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int sim_exists(struct ar_vfs *v, const char *path)
{
	struct sim *s = sim_of(v);
	char p[SIM_PATH_MAX];
	int rc = sim_normalize(path, p);
	if (rc == 0)
		rc = sim_enter(s, "exists", false);
	if (rc < 0)
		return rc;
	if (strcmp(p, "/") == 0)
		return 0;
	struct sim_entry *e = sim_entry(s, p);
	return e && e->cur ? 0 : -ENOENT;
}

static void sim_destroy(struct ar_vfs *v)
{
	struct sim *s = sim_of(v);
	for (size_t i = 0; i < s->entry_count; i++)
		free(s->entries[i].path);
	free(s->entries);
	free(s->index);
	for (size_t i = 0; i < s->inode_count; i++)
		sim_inode_free(s->inodes[i]);
	free(s->inodes);
	free(s);
}

static const struct ar_vfs_ops sim_ops = {
	.open = sim_open,
	.close = sim_close,
	.pread = sim_pread,
	.pwrite = sim_pwrite,
	.fsync = sim_fsync,
	.size = sim_size,
	.truncate = sim_truncate,
	.rename = sim_rename,
	.unlink = sim_unlink,
	.mkdir = sim_mkdir,
	.rmdir = sim_rmdir,
	.fsync_dir = sim_fsync_dir,
	.list_dir = sim_list_dir,
	.exists = sim_exists,
	.destroy = sim_destroy,
};

int ar_vfs_sim_create(uint64_t seed, struct ar_vfs **vfs_out)
{
	struct sim *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->vfs.ops = &sim_ops;
	s->rng = seed;
	*vfs_out = &s->vfs;
	return 0;
}

/* ---- crash and fault control ---- */

uint64_t ar_vfs_sim_mutations(const struct ar_vfs *v)
{
	return ((const struct sim *)v)->mutations;
}

void ar_vfs_sim_crash_at(struct ar_vfs *v, uint64_t mutation)
{
	sim_of(v)->crash_at = mutation;
}

bool ar_vfs_sim_crashed(const struct ar_vfs *v)
{
	return ((const struct sim *)v)->crashed;
}

static void sim_inode_cut(struct sim *s, struct sim_inode *ino, bool torn)
{
	size_t len = ino->synced_len;
	if (torn && sim_rand(s) & 1)
		len = ino->len; /* the new length reached the disk */
	uint8_t *data = calloc(1, len ? len : 1);
	AR_ASSERT(data != NULL); /* the test harness itself is out of memory */
	for (size_t off = 0; off < len; off += SIM_SECTOR) {
		size_t n = len - off < SIM_SECTOR ? len - off : SIM_SECTOR;
		bool have_old = off < ino->synced_len, have_new = off < ino->len;
		bool take_new = torn && have_new && (!have_old || (sim_rand(s) & 1));
		const uint8_t *src = take_new ? ino->data : have_old ? ino->synced : NULL;
		size_t avail = take_new ? ino->len : ino->synced_len;
		if (src && off < avail)
			memcpy(data + off, src + off, avail - off < n ? avail - off : n);
	}
	free(ino->data);
	ino->data = data;
	ino->len = ino->cap = len;
	if (ino->cap == 0)
		ino->cap = 1;
	free(ino->synced);
	ino->synced = malloc(len ? len : 1);
	AR_ASSERT(ino->synced != NULL);
	memcpy(ino->synced, data, len);
	ino->synced_len = len;
}

void ar_vfs_sim_restart(struct ar_vfs *v, bool torn_writes)
{
	struct sim *s = sim_of(v);

	for (int fd = 0; fd < SIM_FDS; fd++)
		s->fds[fd] = NULL;
	for (size_t i = 0; i < s->entry_count; i++)
		s->entries[i].cur = s->entries[i].dur;
	sim_gc(s);
	for (size_t i = 0; i < s->inode_count; i++)
		sim_inode_cut(s, s->inodes[i], torn_writes);
	s->crashed = false;
	s->crash_at = 0;
}

void ar_vfs_sim_fail_next(struct ar_vfs *v, const char *op, int err)
{
	struct sim *s = sim_of(v);
	s->fail_op = op;
	s->fail_err = err;
}

uint64_t ar_vfs_sim_bytes(const struct ar_vfs *v)
{
	const struct sim *s = (const struct sim *)v;
	uint64_t n = 0;
	for (size_t i = 0; i < s->inode_count; i++)
		n += s->inodes[i]->len;
	return n;
}
