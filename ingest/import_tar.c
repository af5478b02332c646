/*
 * import_tar.c - pg_basebackup's tar format (-Ft): base.tar (optionally gzip,
 * lz4 or zstd compressed) unpacked with libarchive into a scratch directory
 * beside the store, with backup_manifest copied from beside the archive; then
 * imported like a plain backup.  Entries may not leave the directory (no "..",
 * no absolute paths, no links through symlinks).
 */
#include "ingest/import.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const tar_names[] = { "base.tar", "base.tar.gz", "base.tar.lz4",
					 "base.tar.zst" };

/* The archive to unpack for src, or NULL if src is a plain directory. */
static int find_tar(const char *src, char *tar, size_t n)
{
	struct stat st;
	if (stat(src, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		snprintf(tar, n, "%s", src);
		return 1;
	}
	for (size_t i = 0; i < sizeof(tar_names) / sizeof(tar_names[0]); i++) {
		snprintf(tar, n, "%s/%s", src, tar_names[i]);
		if (stat(tar, &st) == 0 && S_ISREG(st.st_mode))
			return 1;
	}
	return 0;
}

static int unpack(const char *tar, const char *dest, char err[STORE_ERROR_BYTES])
{
	struct archive *in = archive_read_new();
	struct archive *out = archive_write_disk_new();
	if (!in || !out) {
		archive_read_free(in);
		archive_write_free(out);
		return -ENOMEM;
	}
	archive_read_support_format_tar(in);
	archive_read_support_filter_all(in);
	/* Entries are placed under dest by name (checked below), so absolute paths
	 * are Argon's own; ".." and links through symlinks stay refused. */
	archive_write_disk_set_options(out, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
						ARCHIVE_EXTRACT_SECURE_SYMLINKS);
	int rc = archive_read_open_filename(in, tar, 1u << 20) == ARCHIVE_OK ? 0 : -EIO;
	struct archive_entry *e;
	char path[1200];
	/* Bounded by the archive's entries. */
	while (rc == 0) {
		int r = archive_read_next_header(in, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK) {
			rc = -EIO;
			break;
		}
		const char *name = archive_entry_pathname(e);
		if (!name || name[0] == '/' || strstr(name, "..")) {
			snprintf(err, STORE_ERROR_BYTES, "%s: entry \"%s\" leaves the directory",
				 tar, name ? name : "");
			rc = -EINVAL;
			break;
		}
		snprintf(path, sizeof(path), "%s/%s", dest, name);
		archive_entry_set_pathname(e, path);
		if (archive_write_header(out, e) != ARCHIVE_OK) {
			rc = -EIO;
			break;
		}
		const void *buf;
		size_t len;
		la_int64_t off;
		while ((r = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK)
			if (archive_write_data_block(out, buf, len, off) != ARCHIVE_OK)
				r = ARCHIVE_FATAL;
		if (r != ARCHIVE_EOF || archive_write_finish_entry(out) != ARCHIVE_OK)
			rc = -EIO;
	}
	if (rc == -EIO)
		snprintf(err, STORE_ERROR_BYTES, "%s: %s", tar,
			 archive_error_string(in)    ? archive_error_string(in)
			 : archive_error_string(out) ? archive_error_string(out)
						     : "unreadable archive");
	archive_read_free(in);
	archive_write_free(out);
	return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void base_unpack_remove(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rbe");
	if (!a)
		return errno == ENOENT ? 0 : -errno;
	FILE *b = fopen(to, "wbe");
	int rc = b ? 0 : -errno;
	char buf[65536];
	size_t n;
	while (rc == 0 && (n = fread(buf, 1, sizeof(buf), a)) > 0)
		if (fwrite(buf, 1, n, b) != n)
			rc = -EIO;
	if (b && fclose(b) != 0 && rc == 0)
		rc = -EIO;
	fclose(a);
	return rc;
}

int base_unpack(const char *src, const char *scratch_parent, char *dir_out, size_t n,
		char err[STORE_ERROR_BYTES])
{
	char tar[1100];
	int found = find_tar(src, tar, sizeof(tar));
	if (found < 0) {
		snprintf(err, STORE_ERROR_BYTES, "%s: %s", src, strerror(-found));
		return found;
	}
	if (found == 0)
		return 0;
	snprintf(dir_out, n, "%s/unpack-XXXXXX", scratch_parent);
	if (!mkdtemp(dir_out)) {
		snprintf(err, STORE_ERROR_BYTES, "%s: %s", dir_out, strerror(errno));
		return -errno;
	}
	int rc = unpack(tar, dir_out, err);
	char from[1200], to[1200];
	snprintf(from, sizeof(from), "%s", tar);
	char *slash = strrchr(from, '/');
	snprintf(slash ? slash + 1 : from, sizeof(from) - (size_t)(slash ? slash + 1 - from : 0),
		 "backup_manifest");
	snprintf(to, sizeof(to), "%s/backup_manifest", dir_out);
	if (rc == 0 && slash && (rc = copy_file(from, to)) < 0)
		snprintf(err, STORE_ERROR_BYTES, "%s: %s", from, strerror(-rc));
	if (rc < 0)
		base_unpack_remove(dir_out); /* leave nothing behind */
	return rc < 0 ? rc : 1;
}
