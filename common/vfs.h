/*
 * vfs.h - The one switch all file I/O of the store goes through (style.md 18).
 *
 * Two backends:
 *  - real: the kernel, every operation submitted through the instance's own
 *    io_uring ring (read, write, fsync, openat, renameat, unlinkat, mkdirat...);
 *  - sim: an in-memory disk driven by one seeded PRNG, for crash and fault tests.
 *    It models what a power cut may lose: file data not fsynced, and directory
 *    entries (creations, renames, unlinks) not made durable by fsync of their
 *    directory.  A crash point stops the "machine" at the Nth mutating operation;
 *    ar_vfs_sim_restart() then applies the loss and lets the test reopen.
 *
 * An instance is used by one thread at a time (one per core).  Paths are
 * absolute or relative to the process's working directory; the sim keeps its
 * own namespace.  Every function returns 0 (or a byte count) or -errno.
 */
#ifndef AR_COMMON_VFS_H
#define AR_COMMON_VFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ar_vfs;

enum ar_vfs_open_flags {
	AR_VFS_READ = 0,        /* read only */
	AR_VFS_WRITE = 1 << 0,  /* read and write */
	AR_VFS_CREATE = 1 << 1, /* create if missing (mode 0600) */
	AR_VFS_EXCL = 1 << 2,   /* with CREATE: fail with -EEXIST if it exists */
	AR_VFS_TRUNC = 1 << 3,  /* truncate to 0 on open */
	AR_VFS_DIRECT = 1 << 4, /* O_DIRECT where the backend has it (a hint) */
};

/* Called once per directory entry (not "." or ".."); a non-zero return stops the listing
 * and is returned by ar_vfs_list_dir. */
typedef int ar_vfs_entry_fn(void *ctx, const char *name);

/* One read of a batch (ar_vfs_read_batch): the result is the byte count (short
 * only at end of file) or -errno. */
struct ar_vfs_read {
	int fd;
	uint32_t len;
	void *buf;
	uint64_t offset;
	int64_t result;
};
/* Reads per batch: the real backend's ring holds a whole batch. */
#define AR_VFS_BATCH_MAX 64

struct ar_vfs_ops {
	int (*open)(struct ar_vfs *vfs, const char *path, int flags, int *fd_out);
	int (*close)(struct ar_vfs *vfs, int fd);
	int64_t (*pread)(struct ar_vfs *vfs, int fd, void *buf, size_t len, uint64_t offset);
	int64_t (*pwrite)(struct ar_vfs *vfs, int fd, const void *buf, size_t len, uint64_t offset);
	int (*read_batch)(struct ar_vfs *vfs, struct ar_vfs_read *reads, uint32_t n);
	int (*fsync)(struct ar_vfs *vfs, int fd);
	int (*fdatasync)(struct ar_vfs *vfs, int fd);
	int (*size)(struct ar_vfs *vfs, int fd, uint64_t *bytes_out);
	int (*truncate)(struct ar_vfs *vfs, int fd, uint64_t bytes);
	int (*rename)(struct ar_vfs *vfs, const char *from, const char *to);
	int (*unlink)(struct ar_vfs *vfs, const char *path);
	int (*mkdir)(struct ar_vfs *vfs, const char *path);
	int (*rmdir)(struct ar_vfs *vfs, const char *path);
	int (*fsync_dir)(struct ar_vfs *vfs, const char *path);
	int (*list_dir)(struct ar_vfs *vfs, const char *path, ar_vfs_entry_fn *fn, void *ctx);
	int (*exists)(struct ar_vfs *vfs, const char *path); /* 0, -ENOENT, or an I/O error */
	void (*destroy)(struct ar_vfs *vfs);
};

struct ar_vfs {
	const struct ar_vfs_ops *ops;
};

/* ---- the switch ---- */
static inline int ar_vfs_open(struct ar_vfs *v, const char *path, int flags, int *fd_out)
{
	return v->ops->open(v, path, flags, fd_out);
}
static inline int ar_vfs_close(struct ar_vfs *v, int fd)
{
	return v->ops->close(v, fd);
}
/* Reads up to len bytes; returns the count (short only at end of file) or -errno. */
static inline int64_t ar_vfs_pread(struct ar_vfs *v, int fd, void *buf, size_t len, uint64_t off)
{
	return v->ops->pread(v, fd, buf, len, off);
}
/* Reads of n (<= AR_VFS_BATCH_MAX) places at once, in one submission where the
 * backend can (real: n SQEs, one io_uring_enter, then n completions); each
 * read's result is set.  Returns 0, or -errno when the batch could not be
 * issued at all (then every result is that error). */
static inline int ar_vfs_read_batch(struct ar_vfs *v, struct ar_vfs_read *reads, uint32_t n)
{
	return v->ops->read_batch(v, reads, n);
}
/* Writes all len bytes or returns -errno (a backend retries short writes itself). */
static inline int64_t ar_vfs_pwrite(struct ar_vfs *v, int fd, const void *buf, size_t len,
				    uint64_t off)
{
	return v->ops->pwrite(v, fd, buf, len, off);
}
static inline int ar_vfs_fsync(struct ar_vfs *v, int fd)
{
	return v->ops->fsync(v, fd);
}
/* The data and what reading it needs (the size), not other metadata: for
 * files whose size does not change (preallocated WAL segments). */
static inline int ar_vfs_fdatasync(struct ar_vfs *v, int fd)
{
	return v->ops->fdatasync(v, fd);
}
static inline int ar_vfs_size(struct ar_vfs *v, int fd, uint64_t *bytes_out)
{
	return v->ops->size(v, fd, bytes_out);
}
static inline int ar_vfs_truncate(struct ar_vfs *v, int fd, uint64_t bytes)
{
	return v->ops->truncate(v, fd, bytes);
}
static inline int ar_vfs_rename(struct ar_vfs *v, const char *from, const char *to)
{
	return v->ops->rename(v, from, to);
}
static inline int ar_vfs_unlink(struct ar_vfs *v, const char *path)
{
	return v->ops->unlink(v, path);
}
static inline int ar_vfs_mkdir(struct ar_vfs *v, const char *path)
{
	return v->ops->mkdir(v, path);
}
static inline int ar_vfs_rmdir(struct ar_vfs *v, const char *path)
{
	return v->ops->rmdir(v, path);
}
static inline int ar_vfs_fsync_dir(struct ar_vfs *v, const char *path)
{
	return v->ops->fsync_dir(v, path);
}
static inline int ar_vfs_list_dir(struct ar_vfs *v, const char *path, ar_vfs_entry_fn *fn,
				  void *ctx)
{
	return v->ops->list_dir(v, path, fn, ctx);
}
static inline int ar_vfs_exists(struct ar_vfs *v, const char *path)
{
	return v->ops->exists(v, path);
}
static inline void ar_vfs_destroy(struct ar_vfs *v)
{
	if (v)
		v->ops->destroy(v);
}

/* ---- backends ---- */

/* The kernel through a private io_uring ring of ring_entries (>= 8). */
__attribute__((warn_unused_result)) int ar_vfs_real_create(uint32_t ring_entries,
							   struct ar_vfs **vfs_out);

/* The same backend with pwrite, fsync and fdatasync as plain system calls on
 * the calling thread (everything else still through its ring): for a thread
 * that waits for every write and sync at once anyway — the WAL log's receiver.
 * io_uring runs a sync (and a buffered write that may block) on one of its
 * kernel workers: two cross-CPU wake-ups per operation (35-40 µs each on these
 * VMs), on the path every synchronous commit waits for. */
__attribute__((warn_unused_result)) int ar_vfs_real_create_blocking(struct ar_vfs **vfs_out);

/* An empty in-memory disk; the seed drives which bytes of torn writes survive.  Paths
 * are absolute or relative to the sim's root; "." and ".." are refused (-EINVAL). */
__attribute__((warn_unused_result)) int ar_vfs_sim_create(uint64_t seed, struct ar_vfs **vfs_out);

/* Sim only.  Mutating operations are counted from 1 (every call, failed or not, except
 * while crashed): pwrite, fsync, truncate, rename, unlink, mkdir, rmdir, fsync_dir,
 * open with CREATE or TRUNC.  The count is never reset, not even by a restart. */
uint64_t ar_vfs_sim_mutations(const struct ar_vfs *vfs);
/* Crash when the mutation with this (absolute) number is attempted (0: never; use
 * ar_vfs_sim_mutations() + k).  That mutation and every operation after it fail with
 * -EIO until ar_vfs_sim_restart, which also clears the crash point. */
void ar_vfs_sim_crash_at(struct ar_vfs *vfs, uint64_t mutation);
bool ar_vfs_sim_crashed(const struct ar_vfs *vfs);
/* Apply a power cut: file contents fall back to what was fsynced (with torn_writes,
 * each unsynced 512-byte sector of a file independently either survives or not);
 * directory entries fall back to what fsync_dir made durable; open fds are closed.
 * Then the disk works again. */
void ar_vfs_sim_restart(struct ar_vfs *vfs, bool torn_writes);
/* Fail the next matching operation with err (-EIO, -ENOSPC, ...) once; op is a name
 * ("pread", "pwrite", "fsync", "rename", ...) or NULL for any operation. */
void ar_vfs_sim_fail_next(struct ar_vfs *vfs, const char *op, int err);
/* Total bytes of file data held (current, not only durable). */
uint64_t ar_vfs_sim_bytes(const struct ar_vfs *vfs);

#endif
