/*
 * export.c - A data directory as of an LSN: every database's relation forks
 * (1 GiB segment files, blocks never written as zeros), relation maps, the
 * SLRUs, pg_control and the stored non-relation files, under the directory
 * skeleton PostgreSQL 15 expects.  Files are written, then the file system is
 * synced once.
 */
#include "ingest/import.h"

#include "common/bytes.h"
#include "common/err.h"
#include "ingest/pgchecksum.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REL_SEGMENT_BLOCKS 131072
#define SLRU_PAGES_PER_SEGMENT 32

struct exp {
	struct ar_timeline *tl;
	ar_lsn lsn;
	bool checksums; /* set pd_checksum on every relation page written */
	const char *out;
	struct export_stats *st;
	char *err;
	uint8_t page[AR_PAGE_BYTES];
};

static int exp_fail(struct exp *x, int rc, const char *what)
{
	const char *why = tl_error(x->tl)[0] ? tl_error(x->tl) : strerror(rc < 0 ? -rc : EIO);
	snprintf(x->err, STORE_ERROR_BYTES, "export at %X/%08X: %s: %s", (unsigned)(x->lsn >> 32),
		 (unsigned)x->lsn, what, why);
	return rc < 0 ? rc : -EIO;
}

static int get(struct exp *x, const struct ar_key *k, uint32_t *len)
{
	return tl_get(x->tl, k, x->lsn, x->page, len);
}

static int write_all(int fd, const uint8_t *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

static int write_file(struct exp *x, const char *rel_path, const uint8_t *data, size_t len)
{
	char path[800];
	snprintf(path, sizeof(path), "%s/%s", x->out, rel_path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return exp_fail(x, -errno, path);
	int rc = write_all(fd, data, len, 0);
	close(fd);
	return rc < 0 ? exp_fail(x, rc, path) : 0;
}

static const char *fork_suffix(uint8_t fork)
{
	static const char *const names[] = { "", "_fsm", "_vm", "_init" };
	return fork < 4 ? names[fork] : "_unknown";
}

/* One relation fork: nblocks blocks into <dir>/<rel><fork>[.<seg>]. */
static int export_fork(struct exp *x, const char *dir, struct ar_rel rel, uint32_t nblocks)
{
	int fd = -1, rc = 0;
	static const uint8_t zeros[AR_PAGE_BYTES];
	char path[800], what[64];
	for (uint32_t b = 0; rc == 0 && (b < nblocks || b == 0); b++) {
		if (b % REL_SEGMENT_BLOCKS == 0) {
			if (fd >= 0)
				close(fd);
			uint32_t seg = b / REL_SEGMENT_BLOCKS;
			int n = snprintf(path, sizeof(path), "%s/%s/%u%s", x->out, dir,
					 rel.rel_number, fork_suffix(rel.fork));
			if (seg > 0)
				snprintf(path + n, sizeof(path) - (size_t)n, ".%u", seg);
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			if (fd < 0)
				return exp_fail(x, -errno, path);
		}
		if (nblocks == 0)
			break;
		struct ar_key k = ar_key_rel_block(rel, b);
		uint32_t len = 0;
		rc = get(x, &k, &len);
		const uint8_t *src = rc == 0 && len == AR_PAGE_BYTES ? x->page : zeros;
		if (rc == 0 && len != AR_PAGE_BYTES)
			rc = -AR_ECORRUPT;
		if (rc == -AR_ENOKEY)
			rc = 0; /* below the size but never written: zeros, as PostgreSQL extends */
		if (rc == 0 && src == x->page && x->checksums)
			ar_pg_page_set_checksum(x->page, b);
		if (rc < 0) {
			snprintf(what, sizeof(what), "block %u of %s", b, path);
			rc = exp_fail(x, rc, what);
			break;
		}
		rc = write_all(fd, src, AR_PAGE_BYTES,
			       (off_t)(b % REL_SEGMENT_BLOCKS) * AR_PAGE_BYTES);
		if (rc < 0)
			rc = exp_fail(x, rc, path);
		x->st->blocks++;
	}
	if (fd >= 0)
		close(fd);
	x->st->relation_forks++;
	return rc;
}

static int export_db(struct exp *x, uint32_t spc, uint32_t db)
{
	char dir[64];
	if (spc == 1664)
		snprintf(dir, sizeof(dir), "global");
	else
		snprintf(dir, sizeof(dir), "base/%u", db);
	char path[800];
	snprintf(path, sizeof(path), "%s/%s", x->out, dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return exp_fail(x, -errno, path);
	for (uint32_t part = 0; part < AR_REL_DIR_PARTS; part++) {
		struct ar_key k = ar_key_rel_dir_part(spc, db, part);
		uint32_t len = 0;
		int rc = get(x, &k, &len);
		if (rc == -AR_ENOKEY)
			continue;
		if (rc < 0)
			return exp_fail(x, rc, "a relation directory");
		uint8_t entries[AR_PAGE_BYTES];
		memcpy(entries, x->page, len);
		for (uint32_t off = 0; off + AR_REL_DIR_ENTRY_BYTES <= len;
		     off += AR_REL_DIR_ENTRY_BYTES) {
			struct ar_rel rel = { spc, db, ar_get_be32(entries + off),
					      entries[off + 4] };
			uint32_t n;
			rc = tl_rel_nblocks(x->tl, rel, x->lsn, &n);
			if (rc == -AR_ENOKEY)
				continue;
			if (rc == 0)
				rc = export_fork(x, dir, rel, n);
			if (rc < 0)
				return rc;
		}
	}
	struct ar_key mk = ar_key_relmap(spc, db);
	uint32_t len = 0;
	int rc = get(x, &mk, &len);
	if (rc == 0) {
		char name[96];
		snprintf(name, sizeof(name), "%s/pg_filenode.map", dir);
		return write_file(x, name, x->page, len);
	}
	return rc == -AR_ENOKEY ? 0 : exp_fail(x, rc, "a relation map");
}

static int export_slru(struct exp *x, enum ar_slru kind, const char *dir)
{
	struct ar_key dk = ar_key_slru_dir(kind);
	uint32_t len = 0;
	int rc = get(x, &dk, &len);
	if (rc == -AR_ENOKEY)
		return 0;
	if (rc < 0)
		return exp_fail(x, rc, dir);
	uint8_t segs[AR_PAGE_BYTES];
	memcpy(segs, x->page, len);
	static uint8_t file[SLRU_PAGES_PER_SEGMENT * AR_PAGE_BYTES];
	for (uint32_t off = 0; off + 4 <= len; off += 4) {
		uint32_t segno = ar_get_be32(segs + off), n = 0, vlen;
		struct ar_key sk = ar_key_slru_seg_size(kind, segno);
		rc = get(x, &sk, &vlen);
		if (rc == 0 && vlen == 4)
			n = ar_get_le32(x->page);
		else if (rc == 0 || rc == -AR_ENOKEY)
			continue; /* dropped by a truncation */
		if (rc < 0 || n > SLRU_PAGES_PER_SEGMENT)
			return exp_fail(x, rc < 0 ? rc : -AR_ECORRUPT, dir);
		memset(file, 0, (size_t)n * AR_PAGE_BYTES);
		for (uint32_t b = 0; b < n; b++) {
			struct ar_key k = ar_key_slru_block(kind, segno, b);
			rc = get(x, &k, &vlen);
			if (rc == 0 && vlen == AR_PAGE_BYTES)
				memcpy(file + (size_t)b * AR_PAGE_BYTES, x->page, AR_PAGE_BYTES);
			else if (rc != -AR_ENOKEY)
				return exp_fail(x, rc < 0 ? rc : -AR_ECORRUPT, dir);
			x->st->slru_pages++;
		}
		char name[96];
		snprintf(name, sizeof(name), "%s/%04X", dir, segno);
		rc = write_file(x, name, file, (size_t)n * AR_PAGE_BYTES);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int export_one_file(struct exp *x, const char *path)
{
	uint64_t h = ar_path_hash(path);
	struct ar_key sk = ar_key_file_size(h);
	uint32_t len = 0;
	int rc = get(x, &sk, &len);
	if (rc == -AR_ENOKEY || (rc == 0 && len == 0))
		return 0;
	if (rc < 0 || len != 4)
		return exp_fail(x, rc < 0 ? rc : -AR_ECORRUPT, path);
	uint32_t bytes = ar_get_le32(x->page);
	uint8_t *data = malloc(bytes ? bytes : 1);
	if (!data)
		return -ENOMEM;
	for (uint32_t off = 0; rc == 0 && off < bytes; off += AR_PAGE_BYTES) {
		struct ar_key k = ar_key_file_block(h, off / AR_PAGE_BYTES);
		rc = get(x, &k, &len);
		uint32_t want = bytes - off < AR_PAGE_BYTES ? bytes - off : AR_PAGE_BYTES;
		if (rc == 0 && len != want)
			rc = -AR_ECORRUPT;
		if (rc == 0)
			memcpy(data + off, x->page, len);
	}
	if (rc == 0) {
		char dir[600];
		snprintf(dir, sizeof(dir), "%s/%s", x->out, path);
		char *slash = strrchr(dir, '/');
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			rc = -errno;
	}
	rc = rc < 0 ? exp_fail(x, rc, path) : write_file(x, path, data, bytes);
	free(data);
	x->st->files++;
	return rc;
}

static int export_files(struct exp *x)
{
	struct ar_key dk = ar_key_file_dir();
	uint32_t len = 0;
	int rc = get(x, &dk, &len);
	if (rc == -AR_ENOKEY)
		return 0;
	if (rc < 0)
		return exp_fail(x, rc, "the file directory");
	uint8_t dir[AR_PAGE_BYTES];
	memcpy(dir, x->page, len);
	for (uint32_t off = 0; rc == 0 && off + 2 <= len;) {
		uint16_t n = ar_get_be16(dir + off);
		char path[1100];
		if (off + 2u + n > len || n == 0 || n >= sizeof(path))
			return exp_fail(x, -AR_ECORRUPT, "the file directory");
		memcpy(path, dir + off + 2, n);
		path[n] = '\0';
		if (strstr(path, "..") || path[0] == '/')
			return exp_fail(x, -AR_ECORRUPT, "a stored file's path");
		rc = export_one_file(x, path);
		off += 2u + n;
	}
	return rc;
}

static const char *const skeleton[] = {
	"global",
	"base",
	"pg_commit_ts",
	"pg_dynshmem",
	"pg_logical",
	"pg_logical/mappings",
	"pg_logical/snapshots",
	"pg_multixact",
	"pg_multixact/members",
	"pg_multixact/offsets",
	"pg_notify",
	"pg_replslot",
	"pg_serial",
	"pg_snapshots",
	"pg_stat",
	"pg_stat_tmp",
	"pg_subtrans",
	"pg_tblspc",
	"pg_twophase",
	"pg_wal",
	"pg_wal/archive_status",
	"pg_xact",
};

static int export_skeleton(struct exp *x)
{
	char path[800];
	if (mkdir(x->out, 0700) < 0 && errno != EEXIST)
		return exp_fail(x, -errno, x->out);
	for (size_t i = 0; i < sizeof(skeleton) / sizeof(skeleton[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", x->out, skeleton[i]);
		if (mkdir(path, 0700) < 0)
			return exp_fail(x, -errno,
					errno == EEXIST ? "the output directory is not "
							  "empty"
							: path);
	}
	return 0;
}

static int export_databases(struct exp *x)
{
	struct ar_key dk = ar_key_db_dir();
	uint32_t len = 0;
	int rc = get(x, &dk, &len);
	if (rc < 0)
		return exp_fail(x, rc, "the database directory");
	uint8_t dbs[AR_PAGE_BYTES];
	memcpy(dbs, x->page, len);
	rc = export_db(x, 1664, 0);
	for (uint32_t off = 0; rc == 0 && off + 8 <= len; off += 8)
		rc = export_db(x, ar_get_be32(dbs + off), ar_get_be32(dbs + off + 4));
	return rc;
}

int export_datadir(struct ar_timeline *tl, ar_lsn lsn, bool checksums, const char *outdir,
		   struct export_stats *stats, char err[STORE_ERROR_BYTES])
{
	struct exp *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	*x = (struct exp){
		.tl = tl, .lsn = lsn, .checksums = checksums, .out = outdir, .st = stats, .err = err
	};
	memset(stats, 0, sizeof(*stats));
	int rc = export_skeleton(x);
	if (rc == 0)
		rc = export_databases(x);
	if (rc == 0)
		rc = export_slru(x, AR_SLRU_CLOG, "pg_xact");
	if (rc == 0)
		rc = export_slru(x, AR_SLRU_MULTIXACT_OFFSETS, "pg_multixact/offsets");
	if (rc == 0)
		rc = export_slru(x, AR_SLRU_MULTIXACT_MEMBERS, "pg_multixact/members");
	if (rc == 0)
		rc = export_files(x);
	struct ar_key ck = ar_key_control_file();
	uint32_t len = 0;
	int crc = rc == 0 ? get(x, &ck, &len) : 0;
	if (rc == 0 && crc == 0)
		rc = write_file(x, "global/pg_control", x->page, len);
	else if (rc == 0 && crc != -AR_ENOKEY)
		rc = exp_fail(x, crc, "pg_control");
	if (rc == 0) {
		int fd = open(outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || syncfs(fd) < 0)
			rc = exp_fail(x, -errno, "syncing the output");
		if (fd >= 0)
			close(fd);
	}
	free(x);
	return rc;
}
