/*
 * vfs_test.c - The VFS switch: one behaviour test run against both backends
 * (the kernel under a mkdtemp directory in /tmp, the sim under "/t"), then the
 * sim's power-cut model: unsynced data and directory entries are lost, renames
 * stick only after fsync_dir, an atomic replacement survives a crash at every
 * mutation, torn writes mix whole old and new sectors, injected failures hit
 * exactly one call, and the mutation counter counts exactly what vfs.h lists.
 */
#include "common/vfs.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

enum { PATH_BYTES = 512, SECTOR_BYTES = 512 };

/* Joins root and name into a buffer of PATH_BYTES. */
static const char *path_of(char *buf, const char *root, const char *name)
{
	int n = snprintf(buf, PATH_BYTES, "%s/%s", root, name);
	assert_true(n > 0 && n < PATH_BYTES);
	return buf;
}

static void fill(uint8_t *buf, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

static int open_at(struct ar_vfs *v, const char *root, const char *name, int flags)
{
	char p[PATH_BYTES];
	int fd = -1;
	int rc = ar_vfs_open(v, path_of(p, root, name), flags, &fd);
	return rc < 0 ? rc : fd;
}

/* Creates (or truncates) a file holding len bytes of text; fsyncs it if asked. */
static void put_file(struct ar_vfs *v, const char *path, const void *buf, size_t len, bool sync)
{
	int fd;
	assert_int_equal(ar_vfs_open(v, path, AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_TRUNC, &fd), 0);
	assert_int_equal(ar_vfs_pwrite(v, fd, buf, len, 0), (int64_t)len);
	if (sync)
		assert_int_equal(ar_vfs_fsync(v, fd), 0);
	assert_int_equal(ar_vfs_close(v, fd), 0);
}

/* Reads a whole file into buf (up to cap bytes); returns its size or -errno. */
static int64_t get_file(struct ar_vfs *v, const char *path, void *buf, size_t cap)
{
	int fd;
	uint64_t size;
	int rc = ar_vfs_open(v, path, AR_VFS_READ, &fd);
	if (rc < 0)
		return rc;
	assert_int_equal(ar_vfs_size(v, fd, &size), 0);
	assert_true(size <= cap);
	assert_int_equal(ar_vfs_pread(v, fd, buf, cap, 0), (int64_t)size);
	assert_int_equal(ar_vfs_close(v, fd), 0);
	return (int64_t)size;
}

/* ---- list_dir ---- */

struct names {
	char seen[8][32];
	int count;
	int stop_after; /* 0: never */
};

static int collect_name(void *ctx, const char *name)
{
	struct names *n = ctx;
	assert_true(n->count < 8);
	assert_true(strlen(name) < sizeof(n->seen[0]));
	memcpy(n->seen[n->count], name, strlen(name) + 1);
	n->count++;
	return n->count == n->stop_after ? 7 : 0;
}

static bool names_have(const struct names *n, const char *name)
{
	for (int i = 0; i < n->count; i++)
		if (strcmp(n->seen[i], name) == 0)
			return true;
	return false;
}

/* ---- the behaviour both backends share ---- */

static void behave_files(struct ar_vfs *v, const char *root)
{
	char p[PATH_BYTES];
	uint8_t out[10000];
	uint8_t in[12000];
	uint64_t size;
	int fd;

	assert_int_equal(open_at(v, root, "f", AR_VFS_READ), -ENOENT);
	assert_int_equal(open_at(v, root, "nodir/f", AR_VFS_WRITE | AR_VFS_CREATE), -ENOENT);
	fd = open_at(v, root, "f", AR_VFS_WRITE | AR_VFS_CREATE);
	assert_true(fd >= 0);
	assert_int_equal(open_at(v, root, "f", AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_EXCL),
			 -EEXIST);
	assert_int_equal(ar_vfs_exists(v, path_of(p, root, "f")), 0);
	assert_int_equal(ar_vfs_exists(v, path_of(p, root, "f/below")), -ENOENT);
	fill(out, sizeof(out), 3);
	assert_int_equal(ar_vfs_pwrite(v, fd, out, sizeof(out), 0), (int64_t)sizeof(out));
	assert_int_equal(ar_vfs_size(v, fd, &size), 0);
	assert_int_equal(size, sizeof(out));
	assert_int_equal(ar_vfs_pread(v, fd, in, sizeof(out), 0), (int64_t)sizeof(out));
	assert_memory_equal(in, out, sizeof(out));
	/* Short only at the end of the file; nothing past it. */
	assert_int_equal(ar_vfs_pread(v, fd, in, 2000, 9000), 1000);
	assert_memory_equal(in, out + 9000, 1000);
	assert_int_equal(ar_vfs_pread(v, fd, in, 100, 20000), 0);
	/* Writing past the end leaves a gap of zeros. */
	assert_int_equal(ar_vfs_pwrite(v, fd, "xyz", 3, 11000), 3);
	assert_int_equal(ar_vfs_size(v, fd, &size), 0);
	assert_int_equal(size, 11003);
	assert_int_equal(ar_vfs_pread(v, fd, in, sizeof(in), 0), 11003);
	for (int i = 10000; i < 11000; i++)
		assert_int_equal(in[i], 0);
	assert_memory_equal(in + 11000, "xyz", 3);
	/* Truncate down, then up: the regrown part reads as zeros. */
	assert_int_equal(ar_vfs_truncate(v, fd, 5000), 0);
	assert_int_equal(ar_vfs_size(v, fd, &size), 0);
	assert_int_equal(size, 5000);
	assert_int_equal(ar_vfs_truncate(v, fd, 6000), 0);
	assert_int_equal(ar_vfs_pread(v, fd, in, sizeof(in), 0), 6000);
	assert_memory_equal(in, out, 5000);
	for (int i = 5000; i < 6000; i++)
		assert_int_equal(in[i], 0);
	assert_int_equal(ar_vfs_fsync(v, fd), 0);
	assert_int_equal(ar_vfs_close(v, fd), 0);
	assert_int_equal(ar_vfs_close(v, fd), -EBADF);
	/* A read-only fd refuses writes. */
	fd = open_at(v, root, "f", AR_VFS_READ);
	assert_true(fd >= 0);
	assert_int_equal(ar_vfs_pwrite(v, fd, "a", 1, 0), -EBADF);
	assert_int_equal(ar_vfs_truncate(v, fd, 0), -EINVAL);
	assert_int_equal(ar_vfs_close(v, fd), 0);
	/* TRUNC empties; doubled slashes are one. */
	fd = open_at(v, root, "/f", AR_VFS_WRITE | AR_VFS_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ar_vfs_size(v, fd, &size), 0);
	assert_int_equal(size, 0);
	assert_int_equal(ar_vfs_close(v, fd), 0);
	assert_int_equal(ar_vfs_unlink(v, path_of(p, root, "f")), 0);
	assert_int_equal(ar_vfs_unlink(v, path_of(p, root, "f")), -ENOENT);
	assert_int_equal(ar_vfs_exists(v, path_of(p, root, "f")), -ENOENT);
}

static void behave_names(struct ar_vfs *v, const char *root)
{
	char p[PATH_BYTES];
	char q[PATH_BYTES];
	char buf[64];

	assert_int_equal(ar_vfs_mkdir(v, path_of(p, root, "d")), 0);
	assert_int_equal(ar_vfs_mkdir(v, path_of(p, root, "d")), -EEXIST);
	assert_int_equal(ar_vfs_mkdir(v, path_of(p, root, "nodir/d")), -ENOENT);
	assert_int_equal(ar_vfs_exists(v, path_of(p, root, "d")), 0);
	assert_int_equal(open_at(v, root, "d", AR_VFS_WRITE), -EISDIR);
	put_file(v, path_of(p, root, "d/a"), "alpha", 5, true);
	put_file(v, path_of(p, root, "d/b"), "beta", 4, false);
	/* Rename moves the name, the content comes along. */
	assert_int_equal(ar_vfs_rename(v, path_of(p, root, "d/a"), path_of(q, root, "d/c")), 0);
	assert_int_equal(ar_vfs_exists(v, path_of(p, root, "d/a")), -ENOENT);
	assert_int_equal(get_file(v, path_of(p, root, "d/c"), buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "alpha", 5);
	/* Rename onto an existing file replaces it. */
	assert_int_equal(ar_vfs_rename(v, path_of(p, root, "d/c"), path_of(q, root, "d/b")), 0);
	assert_int_equal(get_file(v, path_of(p, root, "d/b"), buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "alpha", 5);
	assert_int_equal(ar_vfs_exists(v, path_of(p, root, "d/c")), -ENOENT);
	assert_int_equal(ar_vfs_rename(v, path_of(p, root, "d/c"), path_of(q, root, "d/x")),
			 -ENOENT);
	assert_int_equal(ar_vfs_rename(v, path_of(p, root, "d/b"), path_of(q, root, "no/x")),
			 -ENOENT);
	put_file(v, path_of(p, root, "d/e"), "", 0, false);
	/* Listing: every name once, "." and ".." never; a non-zero return stops it. */
	struct names names = { 0 };
	assert_int_equal(ar_vfs_list_dir(v, path_of(p, root, "d"), collect_name, &names), 0);
	assert_int_equal(names.count, 2);
	assert_true(names_have(&names, "b"));
	assert_true(names_have(&names, "e"));
	names = (struct names){ .stop_after = 1 };
	assert_int_equal(ar_vfs_list_dir(v, path_of(p, root, "d"), collect_name, &names), 7);
	assert_int_equal(names.count, 1);
	assert_int_equal(ar_vfs_list_dir(v, path_of(p, root, "nodir"), collect_name, &names),
			 -ENOENT);
	assert_int_equal(ar_vfs_fsync_dir(v, path_of(p, root, "d")), 0);
	assert_int_equal(ar_vfs_fsync_dir(v, path_of(p, root, "nodir")), -ENOENT);
	/* Wrong kinds and non-empty directories. */
	assert_int_equal(ar_vfs_rmdir(v, path_of(p, root, "d")), -ENOTEMPTY);
	assert_int_equal(ar_vfs_rmdir(v, path_of(p, root, "d/b")), -ENOTDIR);
	assert_int_equal(ar_vfs_rmdir(v, path_of(p, root, "nodir")), -ENOENT);
	assert_int_equal(ar_vfs_unlink(v, path_of(p, root, "d")), -EISDIR);
	/* A directory renames with what it holds. */
	assert_int_equal(ar_vfs_rename(v, path_of(p, root, "d"), path_of(q, root, "d2")), 0);
	assert_int_equal(ar_vfs_exists(v, path_of(p, root, "d/b")), -ENOENT);
	assert_int_equal(get_file(v, path_of(p, root, "d2//b"), buf, sizeof(buf)), 5);
	assert_int_equal(ar_vfs_unlink(v, path_of(p, root, "d2/b")), 0);
	assert_int_equal(ar_vfs_unlink(v, path_of(p, root, "d2/e")), 0);
	assert_int_equal(ar_vfs_rmdir(v, path_of(p, root, "d2")), 0);
	assert_int_equal(ar_vfs_exists(v, path_of(p, root, "d2")), -ENOENT);
	names = (struct names){ 0 };
	assert_int_equal(ar_vfs_list_dir(v, root, collect_name, &names), 0);
	assert_int_equal(names.count, 0);
}

/* Batched reads: every read gets its own result, in one call. */
static void behave_batch(struct ar_vfs *v, const char *root)
{
	enum { FILE_BYTES = 100000 };
	static uint8_t data[FILE_BYTES], bufs[AR_VFS_BATCH_MAX][2000];
	struct ar_vfs_read q[AR_VFS_BATCH_MAX + 1];
	char p[PATH_BYTES];

	for (size_t i = 0; i < FILE_BYTES; i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	put_file(v, path_of(p, root, "batch"), data, FILE_BYTES, false);
	int fd = open_at(v, root, "batch", AR_VFS_READ);
	for (uint32_t i = 0; i < AR_VFS_BATCH_MAX; i++)
		q[i] = (struct ar_vfs_read){
			.fd = fd, .len = 1000 + i, .buf = bufs[i], .offset = (uint64_t)i * 1500
		};
	q[60].offset = FILE_BYTES - 500; /* short: the end of the file */
	q[61].offset = FILE_BYTES + 10;  /* past the end */
	q[62].fd = 999;                  /* not open */
	assert_int_equal(ar_vfs_read_batch(v, q, AR_VFS_BATCH_MAX), 0);
	for (uint32_t i = 0; i < AR_VFS_BATCH_MAX; i++) {
		if (i == 62) {
			assert_int_equal(q[i].result, -EBADF);
			continue;
		}
		uint64_t want = q[i].offset >= FILE_BYTES             ? 0
				: q[i].offset + q[i].len > FILE_BYTES ? FILE_BYTES - q[i].offset
								      : q[i].len;
		assert_int_equal(q[i].result, (int64_t)want);
		assert_memory_equal(bufs[i], data + (want ? q[i].offset : 0), want);
	}
	assert_int_equal(ar_vfs_read_batch(v, q, AR_VFS_BATCH_MAX + 1), -EINVAL);
	assert_int_equal(ar_vfs_read_batch(v, q, 0), 0);
	assert_int_equal(ar_vfs_close(v, fd), 0);
	assert_int_equal(ar_vfs_unlink(v, path_of(p, root, "batch")), 0);
}

/* ---- the kernel backend ---- */

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void test_real_behaviour(void **state)
{
	struct ar_vfs *v;
	char root[] = "/tmp/argon-vfs-XXXXXX";
	(void)state;

	assert_int_equal(ar_vfs_real_create(4, &v), -EINVAL);
	int rc = ar_vfs_real_create(64, &v);
	if (rc == -ENOSYS || rc == -EPERM) {
		print_message("skip: io_uring is not available (%d)\n", rc);
		skip();
	}
	assert_int_equal(rc, 0);
	assert_non_null(mkdtemp(root));
	behave_files(v, root);
	behave_names(v, root);
	behave_batch(v, root);
	ar_vfs_destroy(v);
	/* A ring smaller than a batch: the batch goes in ring-sized submissions. */
	assert_int_equal(ar_vfs_real_create(8, &v), 0);
	behave_batch(v, root);
	/* DIRECT is honoured (or dropped where the filesystem lacks it). */
	int fd = open_at(v, root, "direct", AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_DIRECT);
	assert_true(fd >= 0);
	assert_int_equal(ar_vfs_close(v, fd), 0);
	ar_vfs_destroy(v);
	/* The blocking variant (the WAL log's receiver) behaves the same. */
	assert_int_equal(ar_vfs_real_create_blocking(&v), 0);
	behave_files(v, root);
	ar_vfs_destroy(v);
	assert_int_equal(nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* ---- the sim ---- */

static struct ar_vfs *sim_new(uint64_t seed)
{
	struct ar_vfs *v;
	assert_int_equal(ar_vfs_sim_create(seed, &v), 0);
	assert_int_equal(ar_vfs_mkdir(v, "/t"), 0);
	assert_int_equal(ar_vfs_fsync_dir(v, "/"), 0);
	return v;
}

static void test_sim_behaviour(void **state)
{
	struct ar_vfs *v = sim_new(1);
	(void)state;

	behave_files(v, "/t");
	behave_names(v, "/t");
	behave_batch(v, "/t");
	assert_int_equal(ar_vfs_sim_bytes(v), 0);
	ar_vfs_destroy(v);
}

/* Path rules and limits only the sim has. */
static void test_sim_paths_and_limits(void **state)
{
	struct ar_vfs *v = sim_new(1);
	static int fds[1024];
	char name[300];
	(void)state;

	assert_int_equal(ar_vfs_exists(v, "//t///"), 0);
	assert_int_equal(ar_vfs_exists(v, "t"), 0); /* relative to the sim's root */
	assert_int_equal(ar_vfs_exists(v, "/t/./x"), -EINVAL);
	assert_int_equal(ar_vfs_mkdir(v, "/t/.."), -EINVAL);
	assert_int_equal(ar_vfs_exists(v, ""), -ENOENT);
	memset(name, 'n', sizeof(name) - 1);
	name[0] = '/';
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(ar_vfs_mkdir(v, name), -ENAMETOOLONG);
	assert_int_equal(ar_vfs_rmdir(v, "/"), -EBUSY);
	assert_int_equal(ar_vfs_mkdir(v, "/t/in"), 0);
	assert_int_equal(ar_vfs_rename(v, "/t", "/t/in/t"), -EINVAL);
	/* A bounded fd table. */
	put_file(v, "/t/f", "x", 1, false);
	for (int i = 0; i < 1024; i++)
		assert_int_equal(ar_vfs_open(v, "/t/f", AR_VFS_READ, &fds[i]), 0);
	int fd;
	assert_int_equal(ar_vfs_open(v, "/t/f", AR_VFS_READ, &fd), -EMFILE);
	for (int i = 0; i < 1024; i++)
		assert_int_equal(ar_vfs_close(v, fds[i]), 0);
	/* A bounded file. */
	assert_int_equal(ar_vfs_open(v, "/t/f", AR_VFS_WRITE, &fd), 0);
	assert_int_equal(ar_vfs_pwrite(v, fd, "x", 1, 1ull << 30), -EFBIG);
	assert_int_equal(ar_vfs_truncate(v, fd, (1ull << 30) + 1), -EFBIG);
	/* An unlinked file stays readable while open, and is freed on close. */
	assert_int_equal(ar_vfs_pwrite(v, fd, "abc", 3, 0), 3);
	assert_int_equal(ar_vfs_unlink(v, "/t/f"), 0);
	assert_int_equal(ar_vfs_sim_bytes(v), 3);
	char buf[3];
	assert_int_equal(ar_vfs_pread(v, fd, buf, 3, 0), 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(ar_vfs_close(v, fd), 0);
	assert_int_equal(ar_vfs_sim_bytes(v), 0);
	ar_vfs_destroy(v);
}

/* (a) Data written but not fsynced is gone after a crash; fsynced data stays. */
static void test_sim_unsynced_data_is_lost(void **state)
{
	struct ar_vfs *v = sim_new(1);
	char buf[16];
	int fd;
	(void)state;

	assert_int_equal(ar_vfs_open(v, "/t/f", AR_VFS_WRITE | AR_VFS_CREATE, &fd), 0);
	assert_int_equal(ar_vfs_fsync_dir(v, "/t"), 0);
	assert_int_equal(ar_vfs_pwrite(v, fd, "synced", 6, 0), 6);
	assert_int_equal(ar_vfs_fsync(v, fd), 0);
	assert_int_equal(ar_vfs_pwrite(v, fd, "SYNCED and more", 15, 0), 15);
	ar_vfs_sim_crash_at(v, ar_vfs_sim_mutations(v) + 1);
	assert_false(ar_vfs_sim_crashed(v));
	assert_int_equal(ar_vfs_fsync(v, fd), -EIO); /* the crash point: it never happened */
	assert_true(ar_vfs_sim_crashed(v));
	assert_int_equal(ar_vfs_pread(v, fd, buf, sizeof(buf), 0), -EIO);
	assert_int_equal(ar_vfs_exists(v, "/t"), -EIO);
	ar_vfs_sim_restart(v, false);
	assert_false(ar_vfs_sim_crashed(v));
	assert_int_equal(ar_vfs_pread(v, fd, buf, sizeof(buf), 0), -EBADF); /* fds are gone */
	assert_int_equal(get_file(v, "/t/f", buf, sizeof(buf)), 6);
	assert_memory_equal(buf, "synced", 6);
	/* Reusing the slot does not revive the old fd number. */
	int fd2;
	assert_int_equal(ar_vfs_open(v, "/t/f", AR_VFS_READ, &fd2), 0);
	assert_int_not_equal(fd2, fd);
	assert_int_equal(ar_vfs_close(v, fd), -EBADF);
	assert_int_equal(ar_vfs_close(v, fd2), 0);
	ar_vfs_destroy(v);
}

/* (b) A file fsynced in a directory that was not is gone after a restart. */
static void test_sim_unsynced_entry_is_lost(void **state)
{
	struct ar_vfs *v = sim_new(1);
	char buf[16];
	(void)state;

	put_file(v, "/t/f", "data", 4, true);
	assert_int_equal(ar_vfs_mkdir(v, "/t/sub"), 0);
	ar_vfs_sim_restart(v, false);
	assert_int_equal(ar_vfs_exists(v, "/t/f"), -ENOENT);
	assert_int_equal(ar_vfs_exists(v, "/t/sub"), -ENOENT);
	assert_int_equal(ar_vfs_exists(v, "/t"), 0);

	put_file(v, "/t/f", "data", 4, true);
	assert_int_equal(ar_vfs_fsync_dir(v, "/t"), 0);
	ar_vfs_sim_restart(v, true);
	assert_int_equal(get_file(v, "/t/f", buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "data", 4);

	/* An unlink not made durable is undone too. */
	assert_int_equal(ar_vfs_unlink(v, "/t/f"), 0);
	ar_vfs_sim_restart(v, false);
	assert_int_equal(ar_vfs_exists(v, "/t/f"), 0);
	/* Entries inside a directory whose own entry never became durable go with it. */
	assert_int_equal(ar_vfs_mkdir(v, "/t/sub"), 0);
	put_file(v, "/t/sub/g", "g", 1, true);
	assert_int_equal(ar_vfs_fsync_dir(v, "/t/sub"), 0);
	ar_vfs_sim_restart(v, false);
	assert_int_equal(ar_vfs_exists(v, "/t/sub/g"), -ENOENT);
	assert_int_equal(ar_vfs_sim_bytes(v), 4);
	ar_vfs_destroy(v);
}

/* (c) A rename sticks only once its directory is fsynced. */
static void test_sim_rename_needs_fsync_dir(void **state)
{
	struct ar_vfs *v = sim_new(1);
	char buf[16];
	(void)state;

	put_file(v, "/t/old", "content", 7, true);
	assert_int_equal(ar_vfs_fsync_dir(v, "/t"), 0);
	assert_int_equal(ar_vfs_rename(v, "/t/old", "/t/new"), 0);
	ar_vfs_sim_restart(v, false);
	assert_int_equal(ar_vfs_exists(v, "/t/new"), -ENOENT);
	assert_int_equal(get_file(v, "/t/old", buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "content", 7);

	assert_int_equal(ar_vfs_rename(v, "/t/old", "/t/new"), 0);
	assert_int_equal(ar_vfs_fsync_dir(v, "/t"), 0);
	ar_vfs_sim_restart(v, false);
	assert_int_equal(ar_vfs_exists(v, "/t/old"), -ENOENT);
	assert_int_equal(get_file(v, "/t/new", buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "content", 7);

	/* A directory renamed and made durable keeps what was durable inside it. */
	assert_int_equal(ar_vfs_mkdir(v, "/t/a"), 0);
	put_file(v, "/t/a/x", "x", 1, true);
	assert_int_equal(ar_vfs_fsync_dir(v, "/t/a"), 0);
	assert_int_equal(ar_vfs_fsync_dir(v, "/t"), 0);
	assert_int_equal(ar_vfs_rename(v, "/t/a", "/t/b"), 0);
	assert_int_equal(ar_vfs_fsync_dir(v, "/t"), 0);
	ar_vfs_sim_restart(v, false);
	assert_int_equal(ar_vfs_exists(v, "/t/a"), -ENOENT);
	assert_int_equal(get_file(v, "/t/b/x", buf, sizeof(buf)), 1);
	ar_vfs_destroy(v);
}

static const char manifest_old[] = "manifest version 1: layers a, b, c";
static const char manifest_new[] = "manifest version 2: layers a, b, c, d, e and f";

/* Atomic replacement: write a temporary, fsync it, rename it over, fsync the directory. */
static int manifest_replace(struct ar_vfs *v)
{
	const int flags = AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_TRUNC;
	int fd;
	int rc = ar_vfs_open(v, "/t/manifest.tmp", flags, &fd);
	if (rc < 0)
		return rc;
	int64_t n = ar_vfs_pwrite(v, fd, manifest_new, sizeof(manifest_new), 0);
	rc = n < 0 ? (int)n : ar_vfs_fsync(v, fd);
	int close_rc = ar_vfs_close(v, fd);
	if (rc == 0)
		rc = close_rc;
	if (rc == 0)
		rc = ar_vfs_rename(v, "/t/manifest.tmp", "/t/manifest");
	if (rc == 0)
		rc = ar_vfs_fsync_dir(v, "/t");
	return rc;
}

static struct ar_vfs *manifest_setup(uint64_t seed)
{
	struct ar_vfs *v = sim_new(seed);
	put_file(v, "/t/manifest", manifest_old, sizeof(manifest_old), true);
	assert_int_equal(ar_vfs_fsync_dir(v, "/t"), 0);
	return v;
}

static void manifest_check(struct ar_vfs *v, const char *expected, size_t len)
{
	char buf[128];
	assert_int_equal(get_file(v, "/t/manifest", buf, sizeof(buf)), (int64_t)len);
	assert_memory_equal(buf, expected, len);
}

static void test_sim_manifest_crash_at_every_mutation(void **state)
{
	(void)state;
	/* How many mutations the pattern makes. */
	struct ar_vfs *v = manifest_setup(1);
	uint64_t base = ar_vfs_sim_mutations(v);
	assert_int_equal(manifest_replace(v), 0);
	uint64_t total = ar_vfs_sim_mutations(v) - base;
	assert_int_equal(total, 5); /* open CREATE|TRUNC, pwrite, fsync, rename, fsync_dir */
	ar_vfs_sim_restart(v, true);
	manifest_check(v, manifest_new, sizeof(manifest_new));
	ar_vfs_destroy(v);

	for (uint64_t seed = 1; seed <= 8; seed++) {
		for (uint64_t k = 1; k <= total; k++) {
			v = manifest_setup(seed);
			ar_vfs_sim_crash_at(v, ar_vfs_sim_mutations(v) + k);
			assert_int_equal(manifest_replace(v), -EIO);
			assert_true(ar_vfs_sim_crashed(v));
			ar_vfs_sim_restart(v, seed % 2 == 0);
			/* The directory was never fsynced after the rename: the old one. */
			manifest_check(v, manifest_old, sizeof(manifest_old));
			/* And the reader can redo the replacement after the restart. */
			assert_int_equal(manifest_replace(v), 0);
			ar_vfs_sim_restart(v, true);
			manifest_check(v, manifest_new, sizeof(manifest_new));
			ar_vfs_destroy(v);
		}
	}
}

/* (d) Torn writes keep each 512-byte sector whole, old or new, never anything else. */
static void test_sim_torn_writes(void **state)
{
	uint8_t old_bytes[4096];
	uint8_t new_bytes[4096];
	uint8_t buf[8192];
	bool mixed = false;
	(void)state;

	memset(old_bytes, 'o', sizeof(old_bytes));
	memset(new_bytes, 'N', sizeof(new_bytes));
	for (uint64_t seed = 1; seed <= 32; seed++) {
		struct ar_vfs *v = sim_new(seed);
		put_file(v, "/t/f", old_bytes, sizeof(old_bytes), true);
		assert_int_equal(ar_vfs_fsync_dir(v, "/t"), 0);
		int fd;
		assert_int_equal(ar_vfs_open(v, "/t/f", AR_VFS_WRITE, &fd), 0);
		assert_int_equal(ar_vfs_pwrite(v, fd, new_bytes, sizeof(new_bytes), 0), 4096);
		ar_vfs_sim_restart(v, true);
		assert_int_equal(get_file(v, "/t/f", buf, sizeof(buf)), 4096);
		int news = 0;
		for (int s = 0; s < 4096 / SECTOR_BYTES; s++) {
			const uint8_t *sector = buf + s * SECTOR_BYTES;
			bool is_old = memcmp(sector, old_bytes, SECTOR_BYTES) == 0;
			bool is_new = memcmp(sector, new_bytes, SECTOR_BYTES) == 0;
			assert_true(is_old || is_new);
			news += is_new;
		}
		mixed |= news > 0 && news < 4096 / SECTOR_BYTES;
		/* What the restart left is now durable: a second one changes nothing. */
		uint8_t again[4096];
		ar_vfs_sim_restart(v, true);
		assert_int_equal(get_file(v, "/t/f", again, sizeof(again)), 4096);
		assert_memory_equal(again, buf, 4096);
		ar_vfs_destroy(v);
	}
	assert_true(mixed);
}

/* Torn appends: either length, and past the old end new bytes or zeros. */
static void test_sim_torn_append(void **state)
{
	uint8_t old_bytes[1000];
	uint8_t new_bytes[3000];
	uint8_t buf[4096];
	bool saw_old_len = false;
	bool saw_new_len = false;
	(void)state;

	memset(old_bytes, 'o', sizeof(old_bytes));
	memset(new_bytes, 'N', sizeof(new_bytes));
	for (uint64_t seed = 1; seed <= 32; seed++) {
		struct ar_vfs *v = sim_new(seed);
		put_file(v, "/t/f", old_bytes, sizeof(old_bytes), true);
		assert_int_equal(ar_vfs_fsync_dir(v, "/t"), 0);
		int fd;
		assert_int_equal(ar_vfs_open(v, "/t/f", AR_VFS_WRITE, &fd), 0);
		assert_int_equal(ar_vfs_pwrite(v, fd, new_bytes, sizeof(new_bytes), 1000), 3000);
		ar_vfs_sim_restart(v, true);
		int64_t len = get_file(v, "/t/f", buf, sizeof(buf));
		assert_true(len == 1000 || len == 4000);
		saw_old_len |= len == 1000;
		saw_new_len |= len == 4000;
		assert_memory_equal(buf, old_bytes, 1000);
		for (int64_t i = 1000; i < len; i++)
			assert_true(buf[i] == 'N' || buf[i] == 0);
		ar_vfs_destroy(v);
	}
	assert_true(saw_old_len);
	assert_true(saw_new_len);
}

/* The same seed and calls give the same torn result. */
static void test_sim_seed_replays(void **state)
{
	uint8_t first[16384];
	uint8_t second[16384];
	uint8_t bytes[16384];
	(void)state;

	for (int run = 0; run < 2; run++) {
		struct ar_vfs *v = sim_new(42);
		memset(bytes, 'o', sizeof(bytes));
		put_file(v, "/t/f", bytes, sizeof(bytes), true);
		assert_int_equal(ar_vfs_fsync_dir(v, "/t"), 0);
		fill(bytes, sizeof(bytes), 9);
		int fd;
		assert_int_equal(ar_vfs_open(v, "/t/f", AR_VFS_WRITE, &fd), 0);
		assert_int_equal(ar_vfs_pwrite(v, fd, bytes, sizeof(bytes), 0), 16384);
		ar_vfs_sim_restart(v, true);
		assert_int_equal(get_file(v, "/t/f", run ? second : first, 16384), 16384);
		ar_vfs_destroy(v);
	}
	assert_memory_equal(first, second, sizeof(first));
}

/* (e) fail_next fails exactly one matching call, with exactly that error. */
static void test_sim_fail_next(void **state)
{
	struct ar_vfs *v = sim_new(1);
	char buf[8];
	int fd;
	(void)state;

	assert_int_equal(ar_vfs_open(v, "/t/f", AR_VFS_WRITE | AR_VFS_CREATE, &fd), 0);
	assert_int_equal(ar_vfs_pwrite(v, fd, "before", 6, 0), 6);
	ar_vfs_sim_fail_next(v, "pwrite", -ENOSPC);
	assert_int_equal(ar_vfs_pread(v, fd, buf, 6, 0), 6); /* not a pwrite */
	assert_int_equal(ar_vfs_fsync(v, fd), 0);
	assert_int_equal(ar_vfs_pwrite(v, fd, "AFTER!", 6, 0), -ENOSPC);
	assert_int_equal(ar_vfs_pread(v, fd, buf, 6, 0), 6);
	assert_memory_equal(buf, "before", 6); /* the failed write changed nothing */
	assert_int_equal(ar_vfs_pwrite(v, fd, "AFTER!", 6, 0), 6);

	ar_vfs_sim_fail_next(v, NULL, -EIO);
	assert_int_equal(ar_vfs_exists(v, "/t/f"), -EIO);
	assert_int_equal(ar_vfs_exists(v, "/t/f"), 0);

	ar_vfs_sim_fail_next(v, "rename", -EXDEV);
	assert_int_equal(ar_vfs_rename(v, "/t/f", "/t/g"), -EXDEV);
	assert_int_equal(ar_vfs_exists(v, "/t/f"), 0);
	assert_int_equal(ar_vfs_rename(v, "/t/f", "/t/g"), 0);

	ar_vfs_sim_fail_next(v, "fsync_dir", -EIO);
	assert_int_equal(ar_vfs_fsync_dir(v, "/t"), -EIO);
	assert_int_equal(ar_vfs_fsync_dir(v, "/t"), 0);
	assert_int_equal(ar_vfs_close(v, fd), 0);
	ar_vfs_destroy(v);
}

/* (f) The counter moves by one for each listed operation and only for those. */
static void test_sim_mutation_count(void **state)
{
	struct ar_vfs *v;
	struct names names = { 0 };
	uint64_t size;
	char buf[4];
	int fd;
	(void)state;

	assert_int_equal(ar_vfs_sim_create(1, &v), 0);
	assert_int_equal(ar_vfs_sim_mutations(v), 0);
#define COUNTS(expr, by)                                                                           \
	do {                                                                                       \
		uint64_t before_ = ar_vfs_sim_mutations(v);                                        \
		(void)(expr);                                                                      \
		assert_int_equal(ar_vfs_sim_mutations(v) - before_, (by));                         \
	} while (0)
	COUNTS(ar_vfs_mkdir(v, "/t"), 1);
	COUNTS(ar_vfs_open(v, "/t/f", AR_VFS_WRITE | AR_VFS_CREATE, &fd), 1);
	COUNTS(ar_vfs_pwrite(v, fd, "abcd", 4, 0), 1);
	COUNTS(ar_vfs_fsync(v, fd), 1);
	COUNTS(ar_vfs_truncate(v, fd, 2), 1);
	COUNTS(ar_vfs_pread(v, fd, buf, 4, 0), 0);
	COUNTS(ar_vfs_size(v, fd, &size), 0);
	COUNTS(ar_vfs_close(v, fd), 0);
	COUNTS(ar_vfs_open(v, "/t/f", AR_VFS_WRITE, &fd), 0);
	COUNTS(ar_vfs_close(v, fd), 0);
	COUNTS(ar_vfs_open(v, "/t/f", AR_VFS_READ | AR_VFS_TRUNC, &fd), 1);
	COUNTS(ar_vfs_close(v, fd), 0);
	COUNTS(ar_vfs_rename(v, "/t/f", "/t/g"), 1);
	COUNTS(ar_vfs_fsync_dir(v, "/t"), 1);
	COUNTS(ar_vfs_list_dir(v, "/t", collect_name, &names), 0);
	COUNTS(ar_vfs_exists(v, "/t/g"), 0);
	COUNTS(ar_vfs_unlink(v, "/t/g"), 1);
	COUNTS(ar_vfs_unlink(v, "/t/g"), 1); /* a failed call counts: it was attempted */
	COUNTS(ar_vfs_rmdir(v, "/t"), 1);
	assert_int_equal(ar_vfs_sim_mutations(v), 11);
	/* While crashed nothing counts and everything fails. */
	ar_vfs_sim_crash_at(v, 12);
	COUNTS(ar_vfs_mkdir(v, "/u"), 1);
	assert_true(ar_vfs_sim_crashed(v));
	COUNTS(ar_vfs_mkdir(v, "/u"), 0);
	COUNTS(assert_int_equal(ar_vfs_list_dir(v, "/", collect_name, &names), -EIO), 0);
	ar_vfs_sim_restart(v, false);
	COUNTS(assert_int_equal(ar_vfs_mkdir(v, "/u"), 0), 1);
#undef COUNTS
	ar_vfs_destroy(v);
}

/* Random operations and power cuts on a small namespace: whatever the calls return,
 * the sim keeps its own books (its debug checks run at every fsync_dir and restart)
 * and frees what nothing names any more. */
static void test_sim_random_operations(void **state)
{
	static const char *const paths[] = { "/t/a", "/t/b",   "/t/d",   "/t/d/a",  "/t/d/b",
					     "/t/e", "/t/e/a", "/t/d/e", "/t/d/e/a" };
	enum { PATHS = sizeof(paths) / sizeof(paths[0]) };
	uint8_t buf[3000];
	(void)state;

	for (uint64_t seed = 1; seed <= 16; seed++) {
		struct ar_vfs *v = sim_new(seed);
		uint64_t x = seed * 0x9E3779B97F4A7C15ull;
		int fds[4] = { -1, -1, -1, -1 };
		for (int i = 0; i < 3000; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			const char *p = paths[x % PATHS];
			const char *q = paths[(x >> 8) % PATHS];
			int *fd = &fds[(x >> 16) % 4];
			uint64_t off = (x >> 20) % 5000;
			size_t len = (size_t)((x >> 36) % sizeof(buf));
			switch ((x >> 48) % 12) {
			case 0:
				if (*fd >= 0)
					(void)ar_vfs_close(v, *fd);
				if (ar_vfs_open(v, p, AR_VFS_WRITE | AR_VFS_CREATE, fd) < 0)
					*fd = -1;
				break;
			case 1:
				memset(buf, (int)(x & 0xff), len);
				(void)ar_vfs_pwrite(v, *fd, buf, len, off);
				break;
			case 2:
				(void)ar_vfs_pread(v, *fd, buf, len, off);
				break;
			case 3:
				(void)ar_vfs_fsync(v, *fd);
				break;
			case 4:
				(void)ar_vfs_truncate(v, *fd, off);
				break;
			case 5:
				(void)ar_vfs_rename(v, p, q);
				break;
			case 6:
				(void)ar_vfs_unlink(v, p);
				break;
			case 7:
				(void)ar_vfs_mkdir(v, p);
				break;
			case 8:
				(void)ar_vfs_rmdir(v, p);
				break;
			case 9:
				(void)ar_vfs_fsync_dir(v, (x >> 40) & 1 ? "/t" : p);
				break;
			case 10:
				if ((x >> 40) % 8 == 0) {
					ar_vfs_sim_restart(v, (x >> 44) & 1);
					fds[0] = fds[1] = fds[2] = fds[3] = -1;
				}
				break;
			default:
				(void)ar_vfs_exists(v, p);
				break;
			}
		}
		for (int i = 0; i < 4; i++)
			if (fds[i] >= 0)
				(void)ar_vfs_close(v, fds[i]);
		ar_vfs_sim_restart(v, true);
		ar_vfs_destroy(v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_behaviour),
		cmocka_unit_test(test_sim_behaviour),
		cmocka_unit_test(test_sim_paths_and_limits),
		cmocka_unit_test(test_sim_unsynced_data_is_lost),
		cmocka_unit_test(test_sim_unsynced_entry_is_lost),
		cmocka_unit_test(test_sim_rename_needs_fsync_dir),
		cmocka_unit_test(test_sim_manifest_crash_at_every_mutation),
		cmocka_unit_test(test_sim_torn_writes),
		cmocka_unit_test(test_sim_torn_append),
		cmocka_unit_test(test_sim_seed_replays),
		cmocka_unit_test(test_sim_fail_next),
		cmocka_unit_test(test_sim_mutation_count),
		cmocka_unit_test(test_sim_random_operations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
