/*
 * vfs_sim.c - The simulated disk behind the VFS switch (vfs.h): an in-memory
 * filesystem that knows what a power cut may lose.
 *
 * Model.  A node is a file or a directory.  A file holds data (its current
 * bytes) and synced (its bytes as of its last fsync).  A directory holds two
 * name -> node maps: cur, what lookups see now, and dur, what survives a power
 * cut (cur as of that directory's last fsync_dir; empty for a new directory).
 * Paths are resolved from the root through the cur maps, so a renamed
 * directory takes everything in it along.  A power cut (ar_vfs_sim_restart)
 * closes every fd, sets every directory's cur to its dur, frees what the root
 * no longer reaches, and sets every file back to its synced bytes (with torn
 * writes: a per-sector mix of synced and current bytes, and either length).
 *
 * Faults.  Mutations (the operations vfs.h lists) are counted from 1 on every
 * call, failed or not, except while crashed.  The crash_at-th one and every
 * later operation fail with -EIO and change nothing; fail_next fails one call.
 *
 * Invariants:
 *  1. The root exists and is durable from creation on; it is freed only by
 *     destroy.
 *  2. node->refs is the number of entries naming the node in the cur and dur
 *     maps of live directories, plus its open fds, plus one for the root.  A
 *     node is freed when it drops to 0; restart recounts from scratch, which
 *     also frees cycles that durable maps can form (sim_check_refs checks).
 *  3. For a file, each byte of data[0, len) outside [dirty_lo, dirty_hi) lies
 *     below synced_len and equals synced at the same offset, so fsync copies
 *     only the dirty range.
 *  4. While crashed, every operation returns -EIO and changes nothing, except
 *     that close still releases its fd, as close(2) does.
 *  5. All state lives in the instance; the only randomness is its PRNG, so a
 *     seed and a sequence of calls replay exactly.
 */
#include "common/vfs.h"

#include "common/assert.h"
#include "common/limits.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {
	SIM_FDS = 1024,          /* fd table slots */
	SIM_FD_EPOCHS = 1 << 20, /* fd = epoch * SIM_FDS + slot; the epoch moves at restart */
	SIM_SECTOR_BYTES = 512,  /* the unit a torn write keeps or loses */
	SIM_NAME_BYTES_MAX = 255,
	SIM_BUFFER_BYTES_MIN = 4096,
};
#define SIM_FILE_BYTES_MAX (1ull << 30)

static_assert((uint64_t)SIM_FDS * SIM_FD_EPOCHS <= INT32_MAX, "an fd is an int");
static_assert(SIM_FILE_BYTES_MAX <= SIZE_MAX / 2, "a file's buffer can double");

enum sim_op {
	SIM_OP_OPEN,
	SIM_OP_CLOSE,
	SIM_OP_PREAD,
	SIM_OP_PWRITE,
	SIM_OP_FSYNC,
	SIM_OP_SIZE,
	SIM_OP_TRUNCATE,
	SIM_OP_RENAME,
	SIM_OP_UNLINK,
	SIM_OP_MKDIR,
	SIM_OP_RMDIR,
	SIM_OP_FSYNC_DIR,
	SIM_OP_LIST_DIR,
	SIM_OP_EXISTS,
	SIM_OP_COUNT,
	SIM_OP_ANY = SIM_OP_COUNT, /* fail_next with op NULL */
};

/* The names ar_vfs_sim_fail_next accepts: the ar_vfs_ops field names. */
static const char *const sim_op_names[SIM_OP_COUNT] = {
	[SIM_OP_OPEN] = "open",         [SIM_OP_CLOSE] = "close",
	[SIM_OP_PREAD] = "pread",       [SIM_OP_PWRITE] = "pwrite",
	[SIM_OP_FSYNC] = "fsync",       [SIM_OP_SIZE] = "size",
	[SIM_OP_TRUNCATE] = "truncate", [SIM_OP_RENAME] = "rename",
	[SIM_OP_UNLINK] = "unlink",     [SIM_OP_MKDIR] = "mkdir",
	[SIM_OP_RMDIR] = "rmdir",       [SIM_OP_FSYNC_DIR] = "fsync_dir",
	[SIM_OP_LIST_DIR] = "list_dir", [SIM_OP_EXISTS] = "exists",
};

struct sim_node;

struct sim_dirent {
	char *name;
	struct sim_node *node;
};

/* A directory's name -> node map, sorted by name (listings are deterministic). */
struct sim_map {
	struct sim_dirent *ents;
	size_t count;
	size_t cap;
};

struct sim_node {
	struct sim_node *prev; /* every node of the instance, for restart and destroy */
	struct sim_node *next;
	uint64_t refs;
	uint64_t counted; /* scratch for sim_recount and sim_check_refs */
	bool is_dir;
	bool marked; /* reached from the root, during a restart */
	/* A file. */
	uint8_t *data;
	size_t len;
	size_t cap;
	uint8_t *synced;
	size_t synced_len;
	size_t synced_cap;
	size_t dirty_lo; /* data[dirty_lo, dirty_hi) may differ from synced; */
	size_t dirty_hi; /* dirty_hi 0: nothing does */
	/* A directory. */
	struct sim_map cur;
	struct sim_map dur;
};

struct sim_fd {
	struct sim_node *node; /* NULL: a free slot */
	bool writable;
};

struct sim {
	struct ar_vfs vfs;
	uint64_t rng;
	struct sim_node *root;
	struct sim_node *nodes; /* head of the list of every node */
	struct sim_fd fds[SIM_FDS];
	uint32_t fd_epoch;
	uint64_t mutations;
	uint64_t crash_at; /* 0: never */
	bool crashed;
	int fail_err; /* 0: nothing armed */
	enum sim_op fail_op;
};

/* The result of resolving a path through the cur maps. */
struct sim_path {
	struct sim_node *dir;  /* the directory holding the last name; NULL for the root */
	struct sim_node *node; /* what the last name names now, or NULL */
	bool via;              /* the walk passed through the node the caller asked about */
	char name[SIM_NAME_BYTES_MAX + 1];
};

static const struct ar_vfs_ops sim_ops;

static struct sim *sim_of(struct ar_vfs *v)
{
	AR_ASSERT(v->ops == &sim_ops);
	return (struct sim *)v;
}

static const struct sim *sim_of_const(const struct ar_vfs *v)
{
	AR_ASSERT(v->ops == &sim_ops);
	return (const struct sim *)v;
}

static size_t sim_min(size_t a, size_t b)
{
	return a < b ? a : b;
}

static size_t sim_max(size_t a, size_t b)
{
	return a > b ? a : b;
}

/* splitmix64: one 64-bit state, every seed (0 included) is good. */
static uint64_t sim_rand(struct sim *s)
{
	uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* The crash or injected failure that stops an operation, or 0 to go on. */
static int sim_enter(struct sim *s, enum sim_op op, bool mutation)
{
	if (s->crashed)
		return -EIO;
	if (mutation) {
		s->mutations++;
		if (s->crash_at != 0 && s->mutations >= s->crash_at) {
			s->crashed = true;
			return -EIO;
		}
	}
	if (s->fail_err != 0 && (s->fail_op == SIM_OP_ANY || s->fail_op == op)) {
		int err = s->fail_err;
		s->fail_err = 0;
		return err;
	}
	return 0;
}

/* ---- nodes ---- */

static struct sim_node *sim_node_new(struct sim *s, bool is_dir)
{
	struct sim_node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->is_dir = is_dir;
	n->next = s->nodes;
	if (s->nodes)
		s->nodes->prev = n;
	s->nodes = n;
	return n;
}

static void sim_map_release(struct sim *s, struct sim_map *m, bool unref);

/* Frees a node; with unref, drops the references its maps hold (which may free more). */
static void sim_node_free(struct sim *s, struct sim_node *n, bool unref)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		s->nodes = n->next;
	if (n->next)
		n->next->prev = n->prev;
	sim_map_release(s, &n->cur, unref);
	sim_map_release(s, &n->dur, unref);
	free(n->data);
	free(n->synced);
	free(n);
}

static void sim_node_ref(struct sim_node *n)
{
	n->refs++;
}

static void sim_node_unref(struct sim *s, struct sim_node *n)
{
	AR_ASSERT(n->refs > 0);
	n->refs--;
	if (n->refs == 0)
		sim_node_free(s, n, true);
}

/* ---- directory maps ---- */

/* The index of name in m, or where it would go; *found says which. */
static size_t sim_map_find(const struct sim_map *m, const char *name, bool *found)
{
	size_t lo = 0;
	size_t hi = m->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->ents[mid].name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static struct sim_node *sim_map_get(const struct sim_map *m, const char *name)
{
	bool found;
	size_t i = sim_map_find(m, name, &found);
	return found ? m->ents[i].node : NULL;
}

/* Points name at node (a new reference), replacing what it named before. */
static int sim_map_set(struct sim *s, struct sim_map *m, const char *name, struct sim_node *node)
{
	bool found;
	size_t i = sim_map_find(m, name, &found);

	if (found) {
		struct sim_node *old = m->ents[i].node;
		sim_node_ref(node);
		m->ents[i].node = node;
		sim_node_unref(s, old); /* last: it may free what old holds */
		return 0;
	}
	if (m->count == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct sim_dirent *ents = realloc(m->ents, cap * sizeof(*ents));
		if (!ents)
			return -ENOMEM;
		m->ents = ents;
		m->cap = cap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	memmove(&m->ents[i + 1], &m->ents[i], (m->count - i) * sizeof(*m->ents));
	m->ents[i] = (struct sim_dirent){ .name = copy, .node = node };
	m->count++;
	sim_node_ref(node);
	return 0;
}

static void sim_map_remove(struct sim *s, struct sim_map *m, const char *name)
{
	bool found;
	size_t i = sim_map_find(m, name, &found);

	AR_ASSERT(found);
	struct sim_node *node = m->ents[i].node;
	free(m->ents[i].name);
	memmove(&m->ents[i], &m->ents[i + 1], (m->count - i - 1) * sizeof(*m->ents));
	m->count--;
	sim_node_unref(s, node);
}

/* A copy of src with names of its own; it holds no references yet. */
static int sim_map_dup(const struct sim_map *src, struct sim_map *out)
{
	*out = (struct sim_map){ 0 };
	if (src->count == 0)
		return 0;
	out->ents = calloc(src->count, sizeof(*out->ents));
	if (!out->ents)
		return -ENOMEM;
	out->cap = src->count;
	for (size_t i = 0; i < src->count; i++) {
		out->ents[i].name = strdup(src->ents[i].name);
		out->ents[i].node = src->ents[i].node;
		if (!out->ents[i].name) {
			out->count = i;
			sim_map_release(NULL, out, false);
			return -ENOMEM;
		}
	}
	out->count = src->count;
	return 0;
}

static void sim_map_release(struct sim *s, struct sim_map *m, bool unref)
{
	struct sim_map old = *m;

	*m = (struct sim_map){ 0 }; /* empty before any node is freed */
	for (size_t i = 0; i < old.count; i++) {
		free(old.ents[i].name);
		if (unref)
			sim_node_unref(s, old.ents[i].node);
	}
	free(old.ents);
}

/* ---- paths ---- */

/*
 * Resolves path through the cur maps from the root.  Duplicate slashes collapse,
 * a relative path starts at the root too, "." and ".." are refused.  On success
 * out->dir is the parent directory (NULL for the root itself), out->node what the
 * last name names or NULL; a missing or non-directory parent is -ENOENT/-ENOTDIR.
 * out->via tells whether the walk went through the directory via (may be NULL).
 */
static int sim_resolve(const struct sim *s, const char *path, const struct sim_node *via,
		       struct sim_path *out)
{
	const char *p = path;

	if (path[0] == '\0')
		return -ENOENT;
	if (strnlen(path, AR_PATH_BYTES_MAX) == AR_PATH_BYTES_MAX)
		return -ENAMETOOLONG;
	*out = (struct sim_path){ .node = s->root, .via = s->root == via };
	/* Bounded by the path's length: each pass consumes one component. */
	for (;;) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			return 0;
		const char *start = p;
		while (*p != '\0' && *p != '/')
			p++;
		size_t len = (size_t)(p - start);
		if (len > SIM_NAME_BYTES_MAX)
			return -ENAMETOOLONG;
		if (start[0] == '.' && (len == 1 || (len == 2 && start[1] == '.')))
			return -EINVAL;
		struct sim_node *dir = out->node;
		if (!dir)
			return -ENOENT;
		if (!dir->is_dir)
			return -ENOTDIR;
		if (dir == via)
			out->via = true;
		memcpy(out->name, start, len);
		out->name[len] = '\0';
		out->dir = dir;
		out->node = sim_map_get(&dir->cur, out->name);
	}
}

/* ---- file bytes ---- */

static void sim_file_dirty(struct sim_node *f, size_t lo, size_t hi)
{
	AR_ASSERT(lo < hi);
	if (f->dirty_hi == 0) {
		f->dirty_lo = lo;
		f->dirty_hi = hi;
		return;
	}
	f->dirty_lo = sim_min(f->dirty_lo, lo);
	f->dirty_hi = sim_max(f->dirty_hi, hi);
}

/* Makes room for len bytes of data; what lies past f->len is left as it is. */
static int sim_file_reserve(struct sim_node *f, size_t len)
{
	if (len <= f->cap)
		return 0;
	size_t cap = f->cap ? f->cap : SIM_BUFFER_BYTES_MIN;
	while (cap < len)
		cap *= 2;
	uint8_t *data = realloc(f->data, cap);
	if (!data)
		return -ENOMEM;
	f->data = data;
	f->cap = cap;
	return 0;
}

/* Sets the length; growth reads back as zeros (shrinking never fails). */
static int sim_file_resize(struct sim_node *f, uint64_t len)
{
	if (len > SIM_FILE_BYTES_MAX)
		return -EFBIG;
	int rc = sim_file_reserve(f, (size_t)len);
	if (rc < 0)
		return rc;
	if (len > f->len)
		memset(f->data + f->len, 0, (size_t)len - f->len);
	if (len != f->len)
		sim_file_dirty(f, sim_min(f->len, (size_t)len), sim_max(f->len, (size_t)len));
	f->len = (size_t)len;
	return 0;
}

/* synced := data[0, len), copying only the dirty range (invariant 3). */
static int sim_file_sync(struct sim_node *f)
{
	if (f->len > f->synced_cap) {
		uint8_t *synced = realloc(f->synced, f->cap);
		if (!synced)
			return -ENOMEM;
		f->synced = synced;
		f->synced_cap = f->cap;
	}
	size_t hi = sim_min(f->dirty_hi, f->len);
	if (f->dirty_hi != 0 && f->dirty_lo < hi)
		memcpy(f->synced + f->dirty_lo, f->data + f->dirty_lo, hi - f->dirty_lo);
	f->synced_len = f->len;
	f->dirty_lo = 0;
	f->dirty_hi = 0;
	return 0;
}

/* Whether the old (synced) and new (current) bytes of [off, end) differ; past its
 * length a version reads as zeros. */
static bool sim_sector_differs(const struct sim_node *f, size_t off, size_t end)
{
	for (size_t i = off; i < end; i++) {
		uint8_t old_byte = i < f->synced_len ? f->synced[i] : 0;
		uint8_t new_byte = i < f->len ? f->data[i] : 0;
		if (old_byte != new_byte)
			return true;
	}
	return false;
}

/* Writes version (old: synced, new: current) of [off, end) into data. */
static void sim_sector_keep(struct sim_node *f, size_t off, size_t end, bool keep_new)
{
	for (size_t i = off; i < end; i++) {
		if (keep_new)
			f->data[i] = i < f->len ? f->data[i] : 0;
		else
			f->data[i] = i < f->synced_len ? f->synced[i] : 0;
	}
}

/*
 * What a power cut leaves of a file: its synced bytes and length, or with torn
 * writes, either length and, for each 512-byte sector whose two versions differ,
 * either version.  Bytes past a version's length count as zeros in it (a length
 * that reached the disk before the data did).  The result is then durable.
 */
static void sim_file_cut(struct sim *s, struct sim_node *f, bool torn)
{
	size_t len = f->synced_len;
	if (torn && f->len != f->synced_len && (sim_rand(s) & 1))
		len = f->len;
	int rc = sim_file_reserve(f, len);
	AR_ASSERT(rc == 0); /* the test itself is out of memory */
	/* Below same and outside the dirty range both versions are equal (invariant 3). */
	size_t same = sim_min(f->synced_len, f->len);
	size_t from = f->dirty_hi != 0 ? sim_min(f->dirty_lo, same) : same;
	for (size_t off = from - from % SIM_SECTOR_BYTES; off < len; off += SIM_SECTOR_BYTES) {
		size_t end = sim_min(off + SIM_SECTOR_BYTES, len);
		bool clean = f->dirty_hi == 0 || end <= f->dirty_lo || off >= f->dirty_hi;
		if (end <= same && clean)
			continue;
		bool keep_new = torn && sim_sector_differs(f, off, end) && (sim_rand(s) & 1);
		sim_sector_keep(f, off, end, keep_new);
	}
	f->len = len;
	/* Now make it the synced version; below from the two already agree. */
	size_t lo = from - from % SIM_SECTOR_BYTES;
	f->dirty_lo = lo < len ? lo : 0;
	f->dirty_hi = lo < len ? len : 0;
	rc = sim_file_sync(f);
	AR_ASSERT(rc == 0);
}

/* ---- reference accounting ---- */

/* Sets every live node's counted to the references invariant 2 says it has. */
static void sim_count_refs(struct sim *s)
{
	for (struct sim_node *n = s->nodes; n; n = n->next)
		n->counted = 0;
	s->root->counted = 1;
	for (struct sim_node *n = s->nodes; n; n = n->next) {
		for (size_t i = 0; i < n->cur.count; i++)
			n->cur.ents[i].node->counted++;
		for (size_t i = 0; i < n->dur.count; i++)
			n->dur.ents[i].node->counted++;
	}
	for (size_t slot = 0; slot < SIM_FDS; slot++)
		if (s->fds[slot].node)
			s->fds[slot].node->counted++;
}

static void sim_check_refs(struct sim *s)
{
#ifdef AR_DEBUG_CHECKS
	sim_count_refs(s);
	for (struct sim_node *n = s->nodes; n; n = n->next) {
		AR_ASSERT(n->counted == n->refs);
		AR_ASSERT(n->counted > 0);
		AR_ASSERT(n->is_dir || (n->cur.count == 0 && n->dur.count == 0));
	}
#else
	(void)s;
#endif
}

/* Marks what the root reaches through the cur maps, with an explicit stack (each
 * node is pushed once, so the stack never outgrows the node count). */
static void sim_mark(struct sim *s)
{
	size_t count = 0;
	for (struct sim_node *n = s->nodes; n; n = n->next) {
		n->marked = false;
		count++;
	}
	struct sim_node **stack = malloc(count * sizeof(*stack));
	AR_ASSERT(stack != NULL); /* the test itself is out of memory */
	size_t depth = 0;
	s->root->marked = true;
	stack[depth++] = s->root;
	while (depth > 0) {
		struct sim_node *dir = stack[--depth];
		for (size_t i = 0; i < dir->cur.count; i++) {
			struct sim_node *child = dir->cur.ents[i].node;
			if (child->marked)
				continue;
			child->marked = true;
			AR_ASSERT(depth < count);
			stack[depth++] = child;
		}
	}
	free(stack);
}

/* Frees what the root no longer reaches and recounts every reference. */
static void sim_collect(struct sim *s)
{
	sim_mark(s);
	struct sim_node *next;
	for (struct sim_node *n = s->nodes; n; n = next) {
		next = n->next;
		if (!n->marked)
			sim_node_free(s, n, false); /* refs are recounted below */
	}
	sim_count_refs(s);
	for (struct sim_node *n = s->nodes; n; n = n->next)
		n->refs = n->counted;
}

/* ---- file operations ---- */

static struct sim_fd *sim_fd_get(struct sim *s, int fd)
{
	if (fd < 0 || (uint32_t)fd / SIM_FDS != s->fd_epoch)
		return NULL;
	struct sim_fd *f = &s->fds[(uint32_t)fd % SIM_FDS];
	return f->node ? f : NULL;
}

static int sim_open(struct ar_vfs *v, const char *path, int flags, int *fd_out)
{
	struct sim *s = sim_of(v);
	const int known = AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_EXCL | AR_VFS_TRUNC | AR_VFS_DIRECT;
	struct sim_path p;

	int rc = sim_enter(s, SIM_OP_OPEN, (flags & (AR_VFS_CREATE | AR_VFS_TRUNC)) != 0);
	if (rc == 0 && (flags & ~known) != 0)
		rc = -EINVAL;
	if (rc == 0)
		rc = sim_resolve(s, path, NULL, &p);
	if (rc < 0)
		return rc;
	if (p.node && p.node->is_dir)
		return -EISDIR;
	if (p.node && (flags & AR_VFS_CREATE) && (flags & AR_VFS_EXCL))
		return -EEXIST;
	if (!p.node && !(flags & AR_VFS_CREATE))
		return -ENOENT;
	size_t slot = 0;
	while (slot < SIM_FDS && s->fds[slot].node)
		slot++;
	if (slot == SIM_FDS)
		return -EMFILE;
	struct sim_node *node = p.node;
	if (!node) {
		AR_ASSERT(p.dir != NULL); /* the root is a directory */
		node = sim_node_new(s, false);
		if (!node)
			return -ENOMEM;
		rc = sim_map_set(s, &p.dir->cur, p.name, node);
		if (rc < 0) {
			sim_node_free(s, node, true);
			return rc;
		}
	}
	if (flags & AR_VFS_TRUNC) {
		rc = sim_file_resize(node, 0);
		AR_ASSERT(rc == 0); /* shrinking never fails */
	}
	sim_node_ref(node);
	s->fds[slot] = (struct sim_fd){ .node = node, .writable = (flags & AR_VFS_WRITE) != 0 };
	*fd_out = (int)(s->fd_epoch * SIM_FDS + slot);
	return 0;
}

static int sim_close(struct ar_vfs *v, int fd)
{
	struct sim *s = sim_of(v);
	int rc = sim_enter(s, SIM_OP_CLOSE, false);
	struct sim_fd *f = sim_fd_get(s, fd);

	if (!f)
		return rc < 0 ? rc : -EBADF;
	struct sim_node *node = f->node;
	*f = (struct sim_fd){ 0 }; /* released even on error, like close(2) */
	sim_node_unref(s, node);
	return rc;
}

static int64_t sim_pread(struct ar_vfs *v, int fd, void *buf, size_t len, uint64_t offset)
{
	struct sim *s = sim_of(v);
	int rc = sim_enter(s, SIM_OP_PREAD, false);
	if (rc < 0)
		return rc;
	struct sim_fd *f = sim_fd_get(s, fd);
	if (!f)
		return -EBADF;
	struct sim_node *node = f->node;
	if (offset >= node->len)
		return 0;
	size_t n = sim_min(node->len - (size_t)offset, len);
	memcpy(buf, node->data + offset, n);
	return (int64_t)n;
}

/* One after another: each is a pread to the fault injector. */
static int sim_read_batch(struct ar_vfs *v, struct ar_vfs_read *reads, uint32_t n)
{
	if (n > AR_VFS_BATCH_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		reads[i].result =
		    sim_pread(v, reads[i].fd, reads[i].buf, reads[i].len, reads[i].offset);
	return 0;
}

static int64_t sim_pwrite(struct ar_vfs *v, int fd, const void *buf, size_t len, uint64_t offset)
{
	struct sim *s = sim_of(v);
	int rc = sim_enter(s, SIM_OP_PWRITE, true);
	if (rc < 0)
		return rc;
	struct sim_fd *f = sim_fd_get(s, fd);
	if (!f || !f->writable)
		return -EBADF;
	if (len == 0)
		return 0;
	if (offset > SIM_FILE_BYTES_MAX || len > SIM_FILE_BYTES_MAX - offset)
		return -EFBIG;
	struct sim_node *node = f->node;
	if (offset + len > node->len) {
		rc = sim_file_resize(node, offset + len);
		if (rc < 0)
			return rc;
	}
	memcpy(node->data + offset, buf, len);
	sim_file_dirty(node, (size_t)offset, (size_t)offset + len);
	return (int64_t)len;
}

static int sim_fsync(struct ar_vfs *v, int fd)
{
	struct sim *s = sim_of(v);
	int rc = sim_enter(s, SIM_OP_FSYNC, true);
	if (rc < 0)
		return rc;
	struct sim_fd *f = sim_fd_get(s, fd);
	if (!f)
		return -EBADF;
	return sim_file_sync(f->node);
}

static int sim_size(struct ar_vfs *v, int fd, uint64_t *bytes_out)
{
	struct sim *s = sim_of(v);
	int rc = sim_enter(s, SIM_OP_SIZE, false);
	if (rc < 0)
		return rc;
	struct sim_fd *f = sim_fd_get(s, fd);
	if (!f)
		return -EBADF;
	*bytes_out = f->node->len;
	return 0;
}

static int sim_truncate(struct ar_vfs *v, int fd, uint64_t bytes)
{
	struct sim *s = sim_of(v);
	int rc = sim_enter(s, SIM_OP_TRUNCATE, true);
	if (rc < 0)
		return rc;
	struct sim_fd *f = sim_fd_get(s, fd);
	if (!f)
		return -EBADF;
	if (!f->writable)
		return -EINVAL; /* what ftruncate(2) says for a read-only fd */
	return sim_file_resize(f->node, bytes);
}

/* ---- names ---- */

static int sim_rename(struct ar_vfs *v, const char *from, const char *to)
{
	struct sim *s = sim_of(v);
	struct sim_path a;
	struct sim_path b;

	int rc = sim_enter(s, SIM_OP_RENAME, true);
	if (rc == 0)
		rc = sim_resolve(s, from, NULL, &a);
	if (rc == 0)
		rc = sim_resolve(s, to, a.node, &b);
	if (rc < 0)
		return rc;
	if (!a.node)
		return -ENOENT;
	if (!a.dir || !b.dir)
		return -EBUSY; /* the root */
	if (a.node == b.node)
		return 0;
	if (a.node->is_dir && b.node && !b.node->is_dir)
		return -ENOTDIR;
	if (a.node->is_dir && b.node && b.node->cur.count > 0)
		return -ENOTEMPTY;
	if (a.node->is_dir && b.via)
		return -EINVAL; /* into its own subtree */
	if (!a.node->is_dir && b.node && b.node->is_dir)
		return -EISDIR;
	struct sim_node *node = a.node;
	sim_node_ref(node); /* held across the moment no name points at it */
	rc = sim_map_set(s, &b.dir->cur, b.name, node);
	if (rc == 0)
		sim_map_remove(s, &a.dir->cur, a.name);
	sim_node_unref(s, node);
	return rc;
}

static int sim_unlink(struct ar_vfs *v, const char *path)
{
	struct sim *s = sim_of(v);
	struct sim_path p;

	int rc = sim_enter(s, SIM_OP_UNLINK, true);
	if (rc == 0)
		rc = sim_resolve(s, path, NULL, &p);
	if (rc < 0)
		return rc;
	if (!p.node)
		return -ENOENT;
	if (p.node->is_dir)
		return -EISDIR;
	sim_map_remove(s, &p.dir->cur, p.name);
	return 0;
}

static int sim_mkdir(struct ar_vfs *v, const char *path)
{
	struct sim *s = sim_of(v);
	struct sim_path p;

	int rc = sim_enter(s, SIM_OP_MKDIR, true);
	if (rc == 0)
		rc = sim_resolve(s, path, NULL, &p);
	if (rc < 0)
		return rc;
	if (p.node)
		return -EEXIST;
	struct sim_node *dir = sim_node_new(s, true);
	if (!dir)
		return -ENOMEM;
	rc = sim_map_set(s, &p.dir->cur, p.name, dir);
	if (rc < 0)
		sim_node_free(s, dir, true);
	return rc;
}

static int sim_rmdir(struct ar_vfs *v, const char *path)
{
	struct sim *s = sim_of(v);
	struct sim_path p;

	int rc = sim_enter(s, SIM_OP_RMDIR, true);
	if (rc == 0)
		rc = sim_resolve(s, path, NULL, &p);
	if (rc < 0)
		return rc;
	if (!p.node)
		return -ENOENT;
	if (!p.node->is_dir)
		return -ENOTDIR;
	if (!p.dir)
		return -EBUSY; /* the root */
	if (p.node->cur.count > 0)
		return -ENOTEMPTY;
	sim_map_remove(s, &p.dir->cur, p.name);
	return 0;
}

/* A directory's durable map becomes its current one. */
static int sim_fsync_dir(struct ar_vfs *v, const char *path)
{
	struct sim *s = sim_of(v);
	struct sim_path p;
	struct sim_map dur;

	int rc = sim_enter(s, SIM_OP_FSYNC_DIR, true);
	if (rc == 0)
		rc = sim_resolve(s, path, NULL, &p);
	if (rc < 0)
		return rc;
	if (!p.node)
		return -ENOENT;
	if (!p.node->is_dir)
		return -ENOTDIR;
	rc = sim_map_dup(&p.node->cur, &dur);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < dur.count; i++)
		sim_node_ref(dur.ents[i].node);
	struct sim_map old = p.node->dur;
	p.node->dur = dur;
	sim_map_release(s, &old, true);
	sim_check_refs(s);
	return 0;
}

/* Lists a snapshot of the names, so that fn may unlink or create as it goes. */
static int sim_list_dir(struct ar_vfs *v, const char *path, ar_vfs_entry_fn *fn, void *ctx)
{
	struct sim *s = sim_of(v);
	struct sim_path p;

	int rc = sim_enter(s, SIM_OP_LIST_DIR, false);
	if (rc == 0)
		rc = sim_resolve(s, path, NULL, &p);
	if (rc < 0)
		return rc;
	if (!p.node)
		return -ENOENT;
	if (!p.node->is_dir)
		return -ENOTDIR;
	const struct sim_map *m = &p.node->cur;
	size_t count = m->count;
	size_t bytes = 1;
	for (size_t i = 0; i < count; i++)
		bytes += strlen(m->ents[i].name) + 1;
	char *names = malloc(bytes);
	if (!names)
		return -ENOMEM;
	char *q = names;
	for (size_t i = 0; i < count; i++) {
		size_t n = strlen(m->ents[i].name) + 1;
		memcpy(q, m->ents[i].name, n);
		q += n;
	}
	q = names;
	for (size_t i = 0; i < count && rc == 0; i++) {
		rc = fn(ctx, q);
		q += strlen(q) + 1;
	}
	free(names);
	return rc;
}

static int sim_exists(struct ar_vfs *v, const char *path)
{
	struct sim *s = sim_of(v);
	struct sim_path p;

	int rc = sim_enter(s, SIM_OP_EXISTS, false);
	if (rc == 0)
		rc = sim_resolve(s, path, NULL, &p);
	if (rc == -ENOTDIR)
		return -ENOENT;
	if (rc < 0)
		return rc;
	return p.node ? 0 : -ENOENT;
}

static void sim_destroy(struct ar_vfs *v)
{
	struct sim *s = sim_of(v);

	sim_check_refs(s);
	while (s->nodes)
		sim_node_free(s, s->nodes, false);
	free(s);
}

static const struct ar_vfs_ops sim_ops = {
	.open = sim_open,
	.close = sim_close,
	.pread = sim_pread,
	.read_batch = sim_read_batch,
	.pwrite = sim_pwrite,
	.fsync = sim_fsync,
	.fdatasync = sim_fsync, /* the sim keeps no metadata apart from data */
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
	s->root = sim_node_new(s, true);
	if (!s->root) {
		free(s);
		return -ENOMEM;
	}
	s->root->refs = 1; /* invariant 1: only destroy frees it */
	*vfs_out = &s->vfs;
	return 0;
}

/* ---- crash and fault control ---- */

uint64_t ar_vfs_sim_mutations(const struct ar_vfs *v)
{
	return sim_of_const(v)->mutations;
}

void ar_vfs_sim_crash_at(struct ar_vfs *v, uint64_t mutation)
{
	sim_of(v)->crash_at = mutation;
}

bool ar_vfs_sim_crashed(const struct ar_vfs *v)
{
	return sim_of_const(v)->crashed;
}

void ar_vfs_sim_restart(struct ar_vfs *v, bool torn_writes)
{
	struct sim *s = sim_of(v);

	/* Every fd goes; the epoch makes the old numbers -EBADF even once slots are reused. */
	for (size_t slot = 0; slot < SIM_FDS; slot++)
		s->fds[slot] = (struct sim_fd){ 0 };
	s->fd_epoch = (s->fd_epoch + 1) % SIM_FD_EPOCHS;
	for (struct sim_node *n = s->nodes; n; n = n->next) {
		if (!n->is_dir)
			continue;
		struct sim_map cur;
		int rc = sim_map_dup(&n->dur, &cur);
		AR_ASSERT(rc == 0); /* the test itself is out of memory */
		sim_map_release(s, &n->cur, false);
		n->cur = cur;
	}
	sim_collect(s);
	for (struct sim_node *n = s->nodes; n; n = n->next)
		if (!n->is_dir)
			sim_file_cut(s, n, torn_writes);
	s->crashed = false;
	s->crash_at = 0;
	s->fail_err = 0;
	sim_check_refs(s);
}

void ar_vfs_sim_fail_next(struct ar_vfs *v, const char *op, int err)
{
	struct sim *s = sim_of(v);
	enum sim_op which = SIM_OP_ANY;

	AR_ASSERT(err <= 0);
	if (op) {
		for (which = 0; which < SIM_OP_COUNT; which++)
			if (strcmp(sim_op_names[which], op) == 0)
				break;
		AR_ASSERT(which < SIM_OP_COUNT); /* a name from struct ar_vfs_ops */
	}
	s->fail_op = which;
	s->fail_err = err;
}

uint64_t ar_vfs_sim_bytes(const struct ar_vfs *v)
{
	const struct sim *s = sim_of_const(v);
	uint64_t bytes = 0;

	for (const struct sim_node *n = s->nodes; n; n = n->next)
		bytes += n->len;
	return bytes;
}
