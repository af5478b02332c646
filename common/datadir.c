/*
 * datadir.c - Data directory checks and the lock file.
 *
 * Writability is proven, not inferred from modes: root ignores modes, so a
 * read-only mount or an immutable directory is only caught by trying to create,
 * write and fsync a probe file.
 */
#include "common/datadir.h"

#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATADIR_LOCK_NAME "argon.lock"
#define DATADIR_PROBE_NAME ".argon-write-probe"

static int datadir_fail(char err[AR_CONFIG_ERROR_BYTES], int rc, const char *fmt, const char *path)
{
	char what[AR_CONFIG_ERROR_BYTES];

	snprintf(what, sizeof(what), fmt, path);
	snprintf(err, AR_CONFIG_ERROR_BYTES, "%s: %s", what, ar_strerror(rc));
	return rc;
}

static int datadir_probe_write(int dir_fd, const char *path, char err[AR_CONFIG_ERROR_BYTES])
{
	int fd = openat(dir_fd, DATADIR_PROBE_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return datadir_fail(err, -errno, "data directory \"%s\" is not writable", path);
	int rc = 0;
	if (write(fd, "argon\n", 6) != 6 || fsync(fd) != 0)
		rc = datadir_fail(err, -errno, "could not write to data directory \"%s\"", path);
	close(fd);
	if (unlinkat(dir_fd, DATADIR_PROBE_NAME, 0) != 0 && rc == 0)
		rc = datadir_fail(err, -errno, "could not remove a file in data directory \"%s\"",
				  path);
	return rc;
}

int ar_datadir_open(const char *path, struct ar_datadir *dd, char err[AR_CONFIG_ERROR_BYTES])
{
	dd->dir_fd = -1;
	dd->lock_fd = -1;
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return datadir_fail(err, -errno, "could not create data directory \"%s\"", path);
	dd->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dd->dir_fd < 0)
		return datadir_fail(err, -errno, "could not open data directory \"%s\"", path);
	int rc = datadir_probe_write(dd->dir_fd, path, err);
	if (rc < 0)
		goto out_close_dir;
	dd->lock_fd = openat(dd->dir_fd, DATADIR_LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (dd->lock_fd < 0) {
		rc = datadir_fail(err, -errno, "could not create lock file in \"%s\"", path);
		goto out_close_dir;
	}
	if (flock(dd->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = -errno;
		char owner[32] = "";
		ssize_t n = pread(dd->lock_fd, owner, sizeof(owner) - 1, 0);
		owner[n > 0 ? n : 0] = '\0';
		owner[strcspn(owner, "\n")] = '\0';
		if (rc == -EWOULDBLOCK) {
			snprintf(err, AR_CONFIG_ERROR_BYTES,
				 "data directory \"%s\" is in use by another page server (pid %s)",
				 path, owner[0] ? owner : "unknown");
			rc = -AR_ELOCKED;
		} else {
			datadir_fail(err, rc, "could not lock data directory \"%s\"", path);
		}
		goto out_close_lock;
	}
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(dd->lock_fd, 0) != 0 || pwrite(dd->lock_fd, pid, (size_t)len, 0) != len) {
		rc = datadir_fail(err, -errno, "could not write lock file in \"%s\"", path);
		goto out_close_lock;
	}
	return 0;

out_close_lock:
	close(dd->lock_fd);
	dd->lock_fd = -1;
out_close_dir:
	close(dd->dir_fd);
	dd->dir_fd = -1;
	return rc;
}

void ar_datadir_close(struct ar_datadir *dd)
{
	if (dd->lock_fd >= 0) {
		/* Empty the pid before letting go, so nobody reads a dead owner. */
		if (ftruncate(dd->lock_fd, 0) != 0) {
			/* nothing to do: the lock is released by close either way */
		}
		close(dd->lock_fd);
	}
	if (dd->dir_fd >= 0)
		close(dd->dir_fd);
	dd->lock_fd = -1;
	dd->dir_fd = -1;
}
