/*
 * vfs_real.c - The kernel behind the VFS switch: every open, read, write, fsync,
 * rename, unlink and mkdir is one SQE on the instance's private io_uring,
 * submitted and waited for (synchronous use; the per-core asynchronous path
 * comes with the WAL log).  truncate and directory listing use plain syscalls:
 * io_uring has no operation for them in this kernel/liburing pair.
 */
#include "common/vfs.h"

#include "common/assert.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct real {
	struct ar_vfs vfs;
	struct io_uring ring;
};

static struct real *real_of(struct ar_vfs *v)
{
	return (struct real *)v;
}

static struct io_uring_sqe *real_sqe(struct real *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	AR_ASSERT(sqe != NULL); /* one operation at a time: the ring is never full */
	return sqe;
}

/* Submit the prepared SQE and wait for its completion's result. */
static int real_run(struct real *r)
{
	struct io_uring_cqe *cqe;
	int rc = io_uring_submit_and_wait(&r->ring, 1);
	if (rc < 0)
		return rc;
	rc = io_uring_wait_cqe(&r->ring, &cqe);
	if (rc < 0)
		return rc;
	int res = cqe->res;
	io_uring_cqe_seen(&r->ring, cqe);
	return res;
}

static int real_open(struct ar_vfs *v, const char *path, int flags, int *fd_out)
{
	struct real *r = real_of(v);
	int oflags = O_CLOEXEC | ((flags & AR_VFS_WRITE) ? O_RDWR : O_RDONLY);
	if (flags & AR_VFS_CREATE)
		oflags |= O_CREAT | ((flags & AR_VFS_EXCL) ? O_EXCL : 0);
	if (flags & AR_VFS_TRUNC)
		oflags |= O_TRUNC;
	if (flags & AR_VFS_DIRECT)
		oflags |= O_DIRECT;
	io_uring_prep_openat(real_sqe(r), AT_FDCWD, path, oflags, 0600);
	int rc = real_run(r);
	if (rc < 0)
		return rc;
	*fd_out = rc;
	return 0;
}

static int real_close(struct ar_vfs *v, int fd)
{
	struct real *r = real_of(v);
	io_uring_prep_close(real_sqe(r), fd);
	return real_run(r);
}

static int64_t real_pread(struct ar_vfs *v, int fd, void *buf, size_t len, uint64_t offset)
{
	struct real *r = real_of(v);
	size_t done = 0;
	/* Bounded: each pass reads at least one byte or ends. */
	while (done < len) {
		io_uring_prep_read(real_sqe(r), fd, (uint8_t *)buf + done,
				   (unsigned)(len - done > (1u << 30) ? 1u << 30 : len - done),
				   offset + done);
		int rc = real_run(r);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		done += (size_t)rc;
	}
	return (int64_t)done;
}

static int64_t real_pwrite(struct ar_vfs *v, int fd, const void *buf, size_t len, uint64_t offset)
{
	struct real *r = real_of(v);
	size_t done = 0;
	while (done < len) {
		io_uring_prep_write(real_sqe(r), fd, (const uint8_t *)buf + done,
				    (unsigned)(len - done > (1u << 30) ? 1u << 30 : len - done),
				    offset + done);
		int rc = real_run(r);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return -EIO;
		done += (size_t)rc;
	}
	return (int64_t)done;
}

static int real_fsync(struct ar_vfs *v, int fd)
{
	struct real *r = real_of(v);
	io_uring_prep_fsync(real_sqe(r), fd, 0);
	return real_run(r);
}

static int real_size(struct ar_vfs *v, int fd, uint64_t *bytes_out)
{
	struct real *r = real_of(v);
	struct statx st;
	io_uring_prep_statx(real_sqe(r), fd, "", AT_EMPTY_PATH, STATX_SIZE, &st);
	int rc = real_run(r);
	if (rc < 0)
		return rc;
	*bytes_out = st.stx_size;
	return 0;
}

static int real_truncate(struct ar_vfs *v, int fd, uint64_t bytes)
{
	(void)v;
	return ftruncate(fd, (off_t)bytes) == 0 ? 0 : -errno;
}

static int real_rename(struct ar_vfs *v, const char *from, const char *to)
{
	struct real *r = real_of(v);
	io_uring_prep_renameat(real_sqe(r), AT_FDCWD, from, AT_FDCWD, to, 0);
	return real_run(r);
}

static int real_unlink(struct ar_vfs *v, const char *path)
{
	struct real *r = real_of(v);
	io_uring_prep_unlinkat(real_sqe(r), AT_FDCWD, path, 0);
	return real_run(r);
}

static int real_mkdir(struct ar_vfs *v, const char *path)
{
	struct real *r = real_of(v);
	io_uring_prep_mkdirat(real_sqe(r), AT_FDCWD, path, 0700);
	return real_run(r);
}

static int real_rmdir(struct ar_vfs *v, const char *path)
{
	struct real *r = real_of(v);
	io_uring_prep_unlinkat(real_sqe(r), AT_FDCWD, path, AT_REMOVEDIR);
	return real_run(r);
}

static int real_fsync_dir(struct ar_vfs *v, const char *path)
{
	struct real *r = real_of(v);
	io_uring_prep_openat(real_sqe(r), AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	int fd = real_run(r);
	if (fd < 0)
		return fd;
	io_uring_prep_fsync(real_sqe(r), fd, 0);
	int rc = real_run(r);
	real_close(v, fd);
	return rc;
}

static int real_list_dir(struct ar_vfs *v, const char *path, ar_vfs_entry_fn *fn, void *ctx)
{
	(void)v;
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		rc = fn(ctx, e->d_name);
	}
	closedir(d);
	return rc;
}

static int real_exists(struct ar_vfs *v, const char *path)
{
	struct real *r = real_of(v);
	struct statx st;
	io_uring_prep_statx(real_sqe(r), AT_FDCWD, path, 0, STATX_TYPE, &st);
	int rc = real_run(r);
	return rc < 0 ? rc : 0;
}

static void real_destroy(struct ar_vfs *v)
{
	struct real *r = real_of(v);
	io_uring_queue_exit(&r->ring);
	free(r);
}

static const struct ar_vfs_ops real_ops = {
	.open = real_open,
	.close = real_close,
	.pread = real_pread,
	.pwrite = real_pwrite,
	.fsync = real_fsync,
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

int ar_vfs_real_create(uint32_t ring_entries, struct ar_vfs **vfs_out)
{
	struct real *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	int rc = io_uring_queue_init(ring_entries < 8 ? 8 : ring_entries, &r->ring, 0);
	if (rc < 0) {
		free(r);
		return rc;
	}
	r->vfs.ops = &real_ops;
	*vfs_out = &r->vfs;
	return 0;
}
