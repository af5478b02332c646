/*
 * vfs_real.c - The kernel behind the VFS switch (vfs.h).
 *
 * Each instance owns a private io_uring ring and uses it synchronously: an
 * operation preps one SQE (openat, close, read, write, fsync, statx, renameat,
 * unlinkat, mkdirat), submits it and waits for its CQE, whose res is the
 * result or -errno.  Two operations have no io_uring opcode with this kernel
 * and liburing pair and use plain calls: truncate (ftruncate) and list_dir
 * (opendir/readdir).
 *
 * Invariants:
 *  1. At most one operation is in flight: one SQE, or the SQEs of one read
 *     batch (at most AR_VFS_BATCH_MAX, fewer than the ring's entries).  The
 *     ring is empty between operations, so io_uring_get_sqe never fails and the
 *     next CQEs are those just submitted (their user_data is checked).
 *  2. If a submission fails for good, the SQE may still sit in the ring and
 *     could run later with a buffer long gone; the instance then refuses every
 *     further operation with that error (broken) instead.
 *  3. Every fd is opened O_CLOEXEC; errno is read right after the call that set it.
 */
#include "common/vfs.h"

#include "common/assert.h"
#include "common/limits.h"
#include "common/uring.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	/* Tries of io_uring_enter through transient -EAGAIN, -EBUSY and -EINTR. */
	REAL_SUBMIT_TRIES_MAX = 1000,
	/* Bytes per read or write SQE: its length is 32 bits; 1 GiB keeps O_DIRECT aligned. */
	REAL_IO_CHUNK_BYTES = 1 << 30,
};

struct real {
	struct ar_vfs vfs;
	struct io_uring ring;
	uint64_t last_id; /* user_data of the SQE in flight */
	int broken;       /* 0, or the error that left the ring unusable (invariant 2) */
	bool blocking;    /* pwrite and the syncs as plain system calls (vfs.h) */
};

static const struct ar_vfs_ops real_ops;

static struct real *real_of(struct ar_vfs *v)
{
	AR_ASSERT(v->ops == &real_ops);
	return (struct real *)v;
}

/* The SQE for the next operation, or NULL if the ring is broken. */
static struct io_uring_sqe *real_sqe(struct real *r)
{
	if (r->broken)
		return NULL;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	AR_ASSERT(sqe != NULL); /* invariant 1: the ring is empty */
	return sqe;
}

/* Submits the one prepared SQE and waits for its completion; returns its res. */
static int real_run(struct real *r, struct io_uring_sqe *sqe)
{
	struct io_uring_cqe *cqe;
	int rc = 0;

	if (!sqe)
		return r->broken;
	io_uring_sqe_set_data64(sqe, ++r->last_id);
	for (int tries = 0; tries < REAL_SUBMIT_TRIES_MAX; tries++) {
		rc = io_uring_submit(&r->ring);
		if (rc != -EAGAIN && rc != -EBUSY && rc != -EINTR)
			break;
	}
	if (rc != 1) {
		r->broken = rc < 0 ? rc : -EIO;
		return r->broken;
	}
	do
		rc = io_uring_wait_cqe(&r->ring, &cqe);
	while (rc == -EINTR);
	if (rc < 0) {
		r->broken = rc;
		return rc;
	}
	AR_ASSERT(cqe->user_data == r->last_id); /* invariant 1 */
	int res = cqe->res;
	io_uring_cqe_seen(&r->ring, cqe);
	return res;
}

static int real_openat(struct real *r, const char *path, int oflags, int *fd_out)
{
	struct io_uring_sqe *sqe = real_sqe(r);
	if (sqe)
		io_uring_prep_openat(sqe, AT_FDCWD, path, oflags | O_CLOEXEC, 0600);
	int rc = real_run(r, sqe);
	if (rc < 0)
		return rc;
	*fd_out = rc;
	return 0;
}

static int real_open(struct ar_vfs *v, const char *path, int flags, int *fd_out)
{
	struct real *r = real_of(v);
	const int known = AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_EXCL | AR_VFS_TRUNC | AR_VFS_DIRECT;

	if ((flags & ~known) != 0)
		return -EINVAL;
	int oflags = (flags & AR_VFS_WRITE) ? O_RDWR : O_RDONLY;
	if (flags & AR_VFS_CREATE)
		oflags |= O_CREAT | ((flags & AR_VFS_EXCL) ? O_EXCL : 0);
	if (flags & AR_VFS_TRUNC)
		oflags |= O_TRUNC;
	if (!(flags & AR_VFS_DIRECT))
		return real_openat(r, path, oflags, fd_out);
	int rc = real_openat(r, path, oflags | O_DIRECT, fd_out);
	/* DIRECT is a hint: a filesystem without O_DIRECT refuses it with -EINVAL. */
	if (rc == -EINVAL)
		rc = real_openat(r, path, oflags, fd_out);
	return rc;
}

static int real_close(struct ar_vfs *v, int fd)
{
	struct real *r = real_of(v);
	if (r->broken)
		return close(fd) == 0 ? 0 : -errno; /* do not leak the fd with the ring */
	struct io_uring_sqe *sqe = real_sqe(r);
	AR_ASSERT(sqe != NULL);
	io_uring_prep_close(sqe, fd);
	return real_run(r, sqe);
}

static int real_statx(struct real *r, int dirfd, const char *path, int flags, struct statx *st)
{
	struct io_uring_sqe *sqe = real_sqe(r);
	if (sqe)
		io_uring_prep_statx(sqe, dirfd, path, flags, STATX_TYPE | STATX_SIZE, st);
	return real_run(r, sqe);
}

static int real_size(struct ar_vfs *v, int fd, uint64_t *bytes_out)
{
	struct real *r = real_of(v);
	struct statx st;

	int rc = real_statx(r, fd, "", AT_EMPTY_PATH, &st);
	if (rc < 0)
		return rc;
	*bytes_out = st.stx_size;
	return 0;
}

/* After a short read: whether offset is at or past the end of the file.  Asking
 * saves a read at an unaligned offset, which O_DIRECT would refuse. */
static bool real_at_eof(struct real *r, int fd, uint64_t offset)
{
	uint64_t size;
	return real_size(&r->vfs, fd, &size) < 0 || offset >= size;
}

/* A range the kernel takes: offsets are signed there, and -1 means "current position". */
static bool real_range_ok(size_t len, uint64_t offset)
{
	return len <= INT64_MAX && offset <= (uint64_t)INT64_MAX - len;
}

static int64_t real_pread(struct ar_vfs *v, int fd, void *buf, size_t len, uint64_t offset)
{
	struct real *r = real_of(v);
	size_t done = 0;

	if (!real_range_ok(len, offset))
		return -EINVAL;
	/* Each pass reads at least one byte or ends the loop. */
	while (done < len) {
		unsigned chunk =
		    len - done < REAL_IO_CHUNK_BYTES ? (unsigned)(len - done) : REAL_IO_CHUNK_BYTES;
		struct io_uring_sqe *sqe = real_sqe(r);
		if (sqe)
			io_uring_prep_read(sqe, fd, (uint8_t *)buf + done, chunk, offset + done);
		int rc = real_run(r, sqe);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		done += (size_t)rc;
		if ((unsigned)rc < chunk && real_at_eof(r, fd, offset + done))
			break;
	}
	return (int64_t)done;
}

/* Submit the n prepared SQEs of a batch: how many the kernel took, or -errno. */
static int real_submit_all(struct real *r, uint32_t n)
{
	uint32_t done = 0;
	int tries = 0;
	while (done < n && tries++ < REAL_SUBMIT_TRIES_MAX) {
		int rc = io_uring_submit(&r->ring);
		if (rc > 0)
			done += (uint32_t)rc;
		else if (rc != -EAGAIN && rc != -EBUSY && rc != -EINTR)
			return done > 0 ? (int)done : (rc < 0 ? rc : -EIO);
	}
	return (int)done;
}

/* A batch's completions, in whatever order they come: user_data names the read. */
static int real_reap(struct real *r, struct ar_vfs_read *reads, uint64_t first, uint32_t n)
{
	for (uint32_t got = 0; got < n; got++) {
		struct io_uring_cqe *cqe;
		int rc;
		do
			rc = io_uring_wait_cqe(&r->ring, &cqe);
		while (rc == -EINTR);
		if (rc < 0)
			return rc;
		uint64_t i = cqe->user_data - first;
		AR_ASSERT(i < n); /* invariant 1 */
		reads[i].result = cqe->res;
		io_uring_cqe_seen(&r->ring, cqe);
	}
	return 0;
}

/* One submission of n reads (n <= the ring's entries). */
static int real_read_chunk(struct real *r, struct ar_vfs_read *reads, uint32_t n)
{
	uint64_t first = r->last_id + 1;

	for (uint32_t i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
		AR_ASSERT(sqe != NULL); /* invariant 1 */
		io_uring_prep_read(sqe, reads[i].fd, reads[i].buf, reads[i].len, reads[i].offset);
		io_uring_sqe_set_data64(sqe, ++r->last_id);
		reads[i].result = -EIO;
	}
	int took = n > 0 ? real_submit_all(r, n) : 0;
	int rc = took < 0 ? took : real_reap(r, reads, first, (uint32_t)took);
	if (rc < 0 || (uint32_t)took != n) {
		r->broken = rc < 0 ? rc : -EIO; /* invariant 2 */
		return r->broken;
	}
	return 0;
}

static int real_read_batch(struct ar_vfs *v, struct ar_vfs_read *reads, uint32_t n)
{
	struct real *r = real_of(v);
	uint32_t chunk = r->ring.sq.ring_entries;

	int rc = n > AR_VFS_BATCH_MAX ? -EINVAL : r->broken;
	for (uint32_t i = 0; rc == 0 && i < n; i += chunk)
		rc = real_read_chunk(r, reads + i, n - i < chunk ? n - i : chunk);
	if (rc < 0) {
		for (uint32_t i = 0; i < n; i++)
			reads[i].result = rc;
		return rc;
	}
	/* A short read not at the end of the file finishes one read at a time. */
	for (uint32_t i = 0; i < n; i++) {
		struct ar_vfs_read *q = &reads[i];
		if (q->result > 0 && (uint64_t)q->result < q->len &&
		    !real_at_eof(r, q->fd, q->offset + (uint64_t)q->result)) {
			int64_t more = real_pread(v, q->fd, (uint8_t *)q->buf + q->result,
						  q->len - (uint64_t)q->result,
						  q->offset + (uint64_t)q->result);
			q->result = more < 0 ? more : q->result + more;
		}
	}
	return 0;
}

static int64_t real_pwrite_blocking(int fd, const void *buf, size_t len, uint64_t offset)
{
	size_t done = 0;
	/* Each pass writes at least one byte or returns. */
	while (done < len) {
		ssize_t n =
		    pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return (int64_t)done;
}

static int64_t real_pwrite(struct ar_vfs *v, int fd, const void *buf, size_t len, uint64_t offset)
{
	struct real *r = real_of(v);
	size_t done = 0;

	if (!real_range_ok(len, offset))
		return -EINVAL;
	if (r->blocking)
		return real_pwrite_blocking(fd, buf, len, offset);
	/* Each pass writes at least one byte or returns. */
	while (done < len) {
		unsigned chunk =
		    len - done < REAL_IO_CHUNK_BYTES ? (unsigned)(len - done) : REAL_IO_CHUNK_BYTES;
		struct io_uring_sqe *sqe = real_sqe(r);
		if (sqe)
			io_uring_prep_write(sqe, fd, (const uint8_t *)buf + done, chunk,
					    offset + done);
		int rc = real_run(r, sqe);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return -EIO; /* no progress: do not spin */
		done += (size_t)rc;
	}
	return (int64_t)done;
}

static int real_fsync_fd(struct real *r, int fd, unsigned flags)
{
	if (r->blocking)
		return ((flags & IORING_FSYNC_DATASYNC) ? fdatasync(fd) : fsync(fd)) < 0 ? -errno
											 : 0;
	struct io_uring_sqe *sqe = real_sqe(r);
	if (sqe)
		io_uring_prep_fsync(sqe, fd, flags);
	return real_run(r, sqe);
}

static int real_fsync(struct ar_vfs *v, int fd)
{
	return real_fsync_fd(real_of(v), fd, 0);
}

static int real_fdatasync(struct ar_vfs *v, int fd)
{
	return real_fsync_fd(real_of(v), fd, IORING_FSYNC_DATASYNC);
}

static int real_truncate(struct ar_vfs *v, int fd, uint64_t bytes)
{
	struct real *r = real_of(v);

	if (r->broken)
		return r->broken;
	if (bytes > INT64_MAX)
		return -EFBIG;
	int rc;
	do
		rc = ftruncate(fd, (off_t)bytes) == 0 ? 0 : -errno;
	while (rc == -EINTR);
	return rc;
}

static int real_rename(struct ar_vfs *v, const char *from, const char *to)
{
	struct real *r = real_of(v);
	struct io_uring_sqe *sqe = real_sqe(r);
	if (sqe)
		io_uring_prep_renameat(sqe, AT_FDCWD, from, AT_FDCWD, to, 0);
	return real_run(r, sqe);
}

static int real_unlinkat(struct real *r, const char *path, int flags)
{
	struct io_uring_sqe *sqe = real_sqe(r);
	if (sqe)
		io_uring_prep_unlinkat(sqe, AT_FDCWD, path, flags);
	return real_run(r, sqe);
}

static int real_unlink(struct ar_vfs *v, const char *path)
{
	return real_unlinkat(real_of(v), path, 0);
}

static int real_rmdir(struct ar_vfs *v, const char *path)
{
	return real_unlinkat(real_of(v), path, AT_REMOVEDIR);
}

static int real_mkdir(struct ar_vfs *v, const char *path)
{
	struct real *r = real_of(v);
	struct io_uring_sqe *sqe = real_sqe(r);
	if (sqe)
		io_uring_prep_mkdirat(sqe, AT_FDCWD, path, 0700);
	return real_run(r, sqe);
}

static int real_fsync_dir(struct ar_vfs *v, const char *path)
{
	struct real *r = real_of(v);
	int fd;

	int rc = real_openat(r, path, O_RDONLY | O_DIRECTORY, &fd);
	if (rc < 0)
		return rc;
	rc = real_fsync_fd(r, fd, 0);
	int close_rc = real_close(v, fd);
	return rc < 0 ? rc : close_rc;
}

static int real_list_dir(struct ar_vfs *v, const char *path, ar_vfs_entry_fn *fn, void *ctx)
{
	struct real *r = real_of(v);
	int rc = 0;

	if (r->broken)
		return r->broken;
	DIR *dir = opendir(path); /* glibc opens it O_CLOEXEC */
	if (!dir)
		return -errno;
	/* Bounded by the directory's entries (fn may remove some as it goes). */
	for (;;) {
		errno = 0;
		struct dirent *e = readdir(dir);
		if (!e) {
			rc = -errno; /* 0 at the end of the directory */
			break;
		}
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		rc = fn(ctx, e->d_name);
		if (rc != 0)
			break;
	}
	closedir(dir);
	return rc;
}

static int real_exists(struct ar_vfs *v, const char *path)
{
	struct statx st;

	int rc = real_statx(real_of(v), AT_FDCWD, path, 0, &st);
	if (rc == -ENOTDIR)
		return -ENOENT; /* a file where a directory was expected: still "not there" */
	return rc < 0 ? rc : 0;
}

static void real_destroy(struct ar_vfs *v)
{
	struct real *r = real_of(v);
	ar_uring_exit(&r->ring);
	free(r);
}

static const struct ar_vfs_ops real_ops = {
	.open = real_open,
	.close = real_close,
	.pread = real_pread,
	.read_batch = real_read_batch,
	.pwrite = real_pwrite,
	.fsync = real_fsync,
	.fdatasync = real_fdatasync,
	.size = real_size,
	.truncate = real_truncate,
	.rename = real_rename,
	.unlink = real_unlink,
	.mkdir = real_mkdir,
	.rmdir = real_rmdir,
	.fsync_dir = real_fsync_dir,
	.list_dir = real_list_dir,
	.exists = real_exists,
	.destroy = real_destroy,
};

int ar_vfs_real_create_blocking(struct ar_vfs **vfs_out)
{
	int rc = ar_vfs_real_create(64, vfs_out);
	if (rc == 0)
		real_of(*vfs_out)->blocking = true;
	return rc;
}

int ar_vfs_real_create(uint32_t ring_entries, struct ar_vfs **vfs_out)
{
	if (ring_entries < AR_URING_DEPTH_MIN || ring_entries > AR_URING_DEPTH_MAX)
		return -EINVAL;
	struct real *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	int rc = ar_uring_init(ring_entries, &r->ring, NULL);
	if (rc < 0)
		goto out_free_real;
	r->vfs.ops = &real_ops;
	*vfs_out = &r->vfs;
	return 0;

out_free_real:
	free(r);
	return rc;
}
