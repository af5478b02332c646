/*
 * import_base.c - A base backup (pg_basebackup plain format) or a cleanly
 * stopped data directory into a timeline, at the backup's start LSN.
 */
#include "ingest/import.h"

#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/err.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* pg_control (PostgreSQL 15, catalog/pg_control.h): offsets of what is read. */
#define CTL_STATE 16
#define CTL_CHECKPOINT 32
#define CTL_MIN_RECOVERY 136
#define CTL_REDO 40
#define CTL_TLI 48
#define CTL_BLCKSZ 216
#define CTL_SEG_SIZE 228
#define CTL_DATA_CHECKSUM 252
#define CTL_CRC 288
#define CTL_VERSION 1300
#define CTL_FILE_BYTES 8192
#define CTL_SHUTDOWNED 1
#define CTL_SHUTDOWNED_IN_RECOVERY 2
#define REL_SEGMENT_BLOCKS 131072 /* 1 GiB files */
#define SPC_DEFAULT 1663          /* pg_default */
#define SPC_GLOBAL 1664           /* pg_global */

static int fail(char err[STORE_ERROR_BYTES], int rc, const char *fmt, const char *a, const char *b)
{
	snprintf(err, STORE_ERROR_BYTES, fmt, a, b);
	return rc;
}

/* The whole of a small file into buf (at most max bytes); -EFBIG if larger. */
static int read_small(const char *path, uint8_t *buf, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	ssize_t n;
	while ((n = read(fd, buf + got, max - got)) > 0 && got + (size_t)n < max)
		got += (size_t)n;
	if (n > 0)
		got += (size_t)n;
	int rc = n < 0 ? -errno : 0;
	if (rc == 0 && got == max) {
		uint8_t extra;
		if (read(fd, &extra, 1) == 1)
			rc = -EFBIG;
	}
	close(fd);
	*len = got;
	return rc;
}

static int inspect_control(const char *pgdata, struct base_info *out, uint32_t *state,
			   char err[STORE_ERROR_BYTES])
{
	char path[600];
	uint8_t ctl[CTL_FILE_BYTES];
	size_t len;
	snprintf(path, sizeof(path), "%s/global/pg_control", pgdata);
	int rc = read_small(path, ctl, sizeof(ctl), &len);
	if (rc < 0)
		return fail(err, rc, "%s: %s", path, strerror(-rc));
	if (len < CTL_CRC + 4)
		return fail(err, -AR_ECORRUPT, "%s: %s", path, "too short for pg_control");
	uint32_t crc = ar_crc32c_final(ar_crc32c_update(AR_CRC32C_INIT, ctl, CTL_CRC));
	if (crc != ar_get_le32(ctl + CTL_CRC))
		return fail(err, -AR_ECORRUPT, "%s: %s", path, "incorrect checksum in pg_control");
	if (ar_get_le32(ctl + 8) != CTL_VERSION)
		return fail(err, -ENOTSUP, "%s: %s", path,
			    "not PostgreSQL 15's pg_control (pg_control_version is not 1300)");
	if (ar_get_le32(ctl + CTL_BLCKSZ) != AR_PAGE_BYTES)
		return fail(err, -ENOTSUP, "%s: %s", path, "block size is not 8192");
	out->system_id = ar_get_le64(ctl);
	*state = ar_get_le32(ctl + CTL_STATE);
	out->checkpoint_lsn = ar_get_le64(ctl + CTL_CHECKPOINT);
	out->start_lsn = ar_get_le64(ctl + CTL_REDO);
	out->pg_timeline = ar_get_le32(ctl + CTL_TLI);
	out->seg_bytes = ar_get_le32(ctl + CTL_SEG_SIZE);
	out->min_recovery_lsn = ar_get_le64(ctl + CTL_MIN_RECOVERY);
	out->data_checksums = ar_get_le32(ctl + CTL_DATA_CHECKSUM) != 0;
	return 0;
}

static int inspect_label(const char *pgdata, struct base_info *out, char err[STORE_ERROR_BYTES])
{
	char path[600], line[400];
	snprintf(path, sizeof(path), "%s/backup_label", pgdata);
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : fail(err, -errno, "%s: %s", path, strerror(errno));
	unsigned hi, lo, tli;
	bool start = false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "START WAL LOCATION: %X/%X", &hi, &lo) == 2) {
			out->start_lsn = (ar_lsn)hi << 32 | lo;
			start = true;
		} else if (sscanf(line, "CHECKPOINT LOCATION: %X/%X", &hi, &lo) == 2) {
			out->checkpoint_lsn = (ar_lsn)hi << 32 | lo;
		} else if (sscanf(line, "START TIMELINE: %u", &tli) == 1) {
			out->pg_timeline = tli;
		}
	}
	fclose(f);
	if (!start)
		return fail(err, -AR_ECORRUPT, "%s: %s", path, "no START WAL LOCATION line");
	out->from_backup = true;
	out->end_lsn = 0;
	/* pg_basebackup's manifest knows where the backup became consistent. */
	snprintf(path, sizeof(path), "%s/backup_manifest", pgdata);
	json_t *m = json_load_file(path, 0, NULL);
	json_t *ranges = m ? json_object_get(m, "WAL-Ranges") : NULL;
	const char *end = json_string_value(json_object_get(json_array_get(ranges, 0), "End-LSN"));
	if (end && sscanf(end, "%X/%X", &hi, &lo) == 2)
		out->end_lsn = (ar_lsn)hi << 32 | lo;
	json_decref(m);
	return 0;
}

int base_inspect(const char *pgdata, struct base_info *out, char err[STORE_ERROR_BYTES])
{
	char path[600];
	uint8_t ver[16];
	size_t len;
	uint32_t state;
	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s/PG_VERSION", pgdata);
	int rc = read_small(path, ver, sizeof(ver), &len);
	if (rc < 0)
		return fail(err, rc, "%s: %s (not a PostgreSQL data directory?)", path,
			    strerror(-rc));
	if (len != 3 || memcmp(ver, "15\n", 3) != 0)
		return fail(err, -ENOTSUP, "%s: %s", path, "not PostgreSQL 15");
	rc = inspect_control(pgdata, out, &state, err);
	if (rc == 0)
		rc = inspect_label(pgdata, out, err);
	if (rc < 0 || out->from_backup)
		return rc;
	if (state != CTL_SHUTDOWNED && state != CTL_SHUTDOWNED_IN_RECOVERY)
		return fail(err, -AR_ECORRUPT,
			    "%s was not shut down cleanly%s: stop it with pg_ctl stop, or import "
			    "a pg_basebackup",
			    pgdata, "");
	/* A stopped standby's pages may be as new as its minimum recovery point. */
	out->end_lsn = out->start_lsn;
	if (state == CTL_SHUTDOWNED_IN_RECOVERY && out->min_recovery_lsn > out->end_lsn)
		out->end_lsn = out->min_recovery_lsn;
	return 0;
}

/* ---- relation files ---- */

struct relfile {
	uint32_t rel_number;
	uint8_t fork;
	uint32_t segno;
};

static bool parse_u32(const char **p, uint32_t *out)
{
	uint64_t v = 0;
	const char *s = *p;
	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s) && v <= UINT32_MAX)
		v = v * 10 + (uint64_t)(*s++ - '0');
	if (v > UINT32_MAX || v == 0)
		return false;
	*out = (uint32_t)v;
	*p = s;
	return true;
}

/* "<relnumber>[_fsm|_vm|_init][.<segno>]" */
static bool parse_relfile(const char *name, struct relfile *rf)
{
	const char *p = name;
	rf->fork = AR_FORK_MAIN;
	rf->segno = 0;
	if (!parse_u32(&p, &rf->rel_number))
		return false;
	if (strncmp(p, "_fsm", 4) == 0) {
		rf->fork = AR_FORK_FSM;
		p += 4;
	} else if (strncmp(p, "_vm", 3) == 0) {
		rf->fork = AR_FORK_VM;
		p += 3;
	} else if (strncmp(p, "_init", 5) == 0) {
		rf->fork = AR_FORK_INIT;
		p += 5;
	}
	if (*p == '.') {
		p++;
		if (!parse_u32(&p, &rf->segno))
			return false;
	}
	return *p == '\0';
}

static bool is_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

#define READ_CHUNK (1u << 20)

static int import_relfile(struct walingest *wi, const char *path, struct ar_rel rel, uint32_t segno,
			  uint8_t *buf, struct base_stats *st, char err[STORE_ERROR_BYTES])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, -errno, "%s: %s", path, strerror(errno));
	int rc = wi_import_rel(wi, rel);
	uint64_t block = (uint64_t)segno * REL_SEGMENT_BLOCKS;
	ssize_t n = 0;
	while (rc == 0 && (n = read(fd, buf, READ_CHUNK)) > 0) {
		if (n % AR_PAGE_BYTES != 0) {
			rc = fail(err, -AR_ECORRUPT, "%s: %s", path,
				  "size is not a multiple of 8192 (a torn copy?)");
			break;
		}
		for (ssize_t off = 0; rc == 0 && off < n; off += AR_PAGE_BYTES, block++) {
			st->blocks++;
			if (is_zero(buf + off, AR_PAGE_BYTES)) {
				st->zero_blocks++; /* implied by the size */
				rc = wi_import_extend(wi, rel, (uint32_t)block + 1);
			} else {
				rc = wi_import_block(wi, rel, (uint32_t)block, buf + off);
			}
		}
	}
	if (n < 0)
		rc = fail(err, -errno, "%s: %s", path, strerror(errno));
	else if (rc < 0 && !err[0])
		fail(err, rc, "%s: %s", path, wi_error(wi));
	close(fd);
	st->relation_files++;
	return rc;
}

/* Relations with an init fork are unlogged: only the init fork is kept. */
static bool has_init_fork(char **names, size_t n, uint32_t rel_number)
{
	char want[32];
	snprintf(want, sizeof(want), "%u_init", rel_number);
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], want) == 0)
			return true;
	return false;
}

/* The entries of pgdata/rel_path (without dot files). */
static int list_dir(const char *pgdata, const char *rel_path, char ***names_out, size_t *n_out)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s", pgdata, rel_path);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof(*nn));
			if (!nn) {
				rc = -ENOMEM;
				break;
			}
			names = nn;
		}
		names[n] = strdup(e->d_name);
		if (!names[n]) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	*names_out = names;
	*n_out = n;
	return rc;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* list_dir of a directory the import cannot do without: err says which. */
static int list_needed(const char *pgdata, const char *rel_path, char ***names_out, size_t *n_out,
		       char err[STORE_ERROR_BYTES])
{
	int rc = list_dir(pgdata, rel_path, names_out, n_out);
	if (rc < 0)
		snprintf(err, STORE_ERROR_BYTES, "%s/%s: %s", pgdata, rel_path, strerror(-rc));
	return rc;
}

/* A file of a database directory that is not a relation. */
static int import_db_file(struct walingest *wi, const char *pgdata, const char *rel_path,
			  const char *name, uint32_t spc, uint32_t db, struct base_stats *st,
			  char err[STORE_ERROR_BYTES])
{
	char path[700], key[600];
	snprintf(path, sizeof(path), "%s/%s/%s", pgdata, rel_path, name);
	snprintf(key, sizeof(key), "%s/%s", rel_path, name);
	static uint8_t buf[CTL_FILE_BYTES];
	size_t len;
	bool map = strcmp(name, "pg_filenode.map") == 0;
	bool control = strcmp(name, "pg_control") == 0 && db == 0;
	if (!map && !control && strcmp(name, "PG_VERSION") != 0) {
		st->skipped++; /* pg_internal.init, temporary files... */
		return 0;
	}
	int rc = read_small(path, buf, sizeof(buf), &len);
	if (rc < 0)
		return fail(err, rc, "%s: %s", path, strerror(-rc));
	if (map)
		rc = wi_import_relmap(wi, spc, db, buf, (uint32_t)len);
	else if (control)
		rc = wi_import_control(wi, buf, (uint32_t)len);
	else
		rc = wi_file_put(wi, key, buf, (uint32_t)len);
	st->files++;
	return rc < 0 ? fail(err, rc, "%s: %s", path, wi_error(wi)) : 0;
}

static int import_db_dir(struct walingest *wi, const char *pgdata, const char *rel_path,
			 uint32_t spc, uint32_t db, struct base_stats *st,
			 char err[STORE_ERROR_BYTES])
{
	char path[700], **names;
	size_t n;
	int rc = list_needed(pgdata, rel_path, &names, &n, err);
	if (rc < 0)
		return rc;
	uint8_t *buf = malloc(READ_CHUNK);
	if (!buf)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct relfile rf;
		if (!parse_relfile(names[i], &rf)) {
			rc = import_db_file(wi, pgdata, rel_path, names[i], spc, db, st, err);
			continue;
		}
		if (rf.fork != AR_FORK_INIT && has_init_fork(names, n, rf.rel_number)) {
			st->skipped++; /* an unlogged relation's contents: not WAL-logged */
			continue;
		}
		struct ar_rel rel = { spc, db, rf.rel_number, rf.fork };
		snprintf(path, sizeof(path), "%s/%s/%s", pgdata, rel_path, names[i]);
		rc = import_relfile(wi, path, rel, rf.segno, buf, st, err);
	}
	free(buf);
	free_names(names, n);
	return rc;
}

/* ---- SLRUs, files, the whole ---- */

static bool parse_hex(const char *s, uint32_t *out)
{
	size_t n = strlen(s);
	if (n < 4 || n > 6)
		return false;
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i]) || islower((unsigned char)s[i]))
			return false;
		v = v * 16 +
		    (uint32_t)(isdigit((unsigned char)s[i]) ? s[i] - '0' : s[i] - 'A' + 10);
	}
	*out = v;
	return true;
}

static int import_slru_dir(struct walingest *wi, const char *pgdata, const char *rel_path,
			   enum ar_slru kind, struct base_stats *st, char err[STORE_ERROR_BYTES])
{
	char path[700], **names;
	size_t n;
	int rc = list_needed(pgdata, rel_path, &names, &n, err);
	if (rc < 0)
		return rc;
	static uint8_t seg[32 * AR_PAGE_BYTES];
	for (size_t i = 0; rc == 0 && i < n; i++) {
		uint32_t segno;
		size_t len;
		if (!parse_hex(names[i], &segno)) {
			st->skipped++;
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s/%s", pgdata, rel_path, names[i]);
		rc = read_small(path, seg, sizeof(seg), &len);
		if (rc < 0 || len % AR_PAGE_BYTES != 0) {
			rc = fail(err, rc < 0 ? rc : -AR_ECORRUPT, "%s: %s", path,
				  rc < 0 ? strerror(-rc) : "size is not a multiple of 8192");
			break;
		}
		for (size_t off = 0; rc == 0 && off < len; off += AR_PAGE_BYTES) {
			rc = wi_import_slru(wi, kind, segno, (uint32_t)(off / AR_PAGE_BYTES),
					    seg + off);
			st->slru_pages++;
		}
		if (rc < 0)
			fail(err, rc, "%s: %s", path, wi_error(wi));
	}
	free_names(names, n);
	return rc;
}

/* Files at the top of the data directory a compute needs, and prepared
 * transactions' state files. */
static int import_top_files(struct walingest *wi, const char *pgdata, struct base_stats *st,
			    char err[STORE_ERROR_BYTES])
{
	static const char *const names[] = { "PG_VERSION", "postgresql.conf",
					     "postgresql.auto.conf", "pg_hba.conf",
					     "pg_ident.conf" };
	static uint8_t buf[1u << 20];
	char path[700];
	size_t len;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", pgdata, names[i]);
		int rc = read_small(path, buf, sizeof(buf), &len);
		if (rc == -ENOENT)
			continue;
		if (rc == 0)
			rc = wi_file_put(wi, names[i], buf, (uint32_t)len);
		if (rc < 0)
			return fail(err, rc, "%s: %s", path,
				    wi_error(wi)[0] ? wi_error(wi) : strerror(-rc));
		st->files++;
	}
	char **tw;
	size_t n;
	if (list_dir(pgdata, "pg_twophase", &tw, &n) < 0)
		return 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char key[64];
		snprintf(path, sizeof(path), "%s/pg_twophase/%s", pgdata, tw[i]);
		snprintf(key, sizeof(key), "pg_twophase/%.40s", tw[i]);
		rc = read_small(path, buf, sizeof(buf), &len);
		if (rc == 0)
			rc = wi_file_put(wi, key, buf, (uint32_t)len);
		if (rc < 0)
			fail(err, rc, "%s: %s", path, strerror(-rc));
		st->files++;
	}
	free_names(tw, n);
	return rc;
}

static int refuse_tablespaces(const char *pgdata, char err[STORE_ERROR_BYTES])
{
	char **names;
	size_t n;
	if (list_dir(pgdata, "pg_tblspc", &names, &n) < 0)
		return 0;
	int rc = 0;
	if (n > 0)
		rc = fail(err, -ENOTSUP,
			  "tablespace %s in %s: Argon supports only pg_default and pg_global",
			  names[0], pgdata);
	free_names(names, n);
	return rc;
}

static int import_databases(struct walingest *wi, const char *pgdata, struct base_stats *st,
			    char err[STORE_ERROR_BYTES])
{
	char **names;
	size_t n;
	int rc = list_needed(pgdata, "base", &names, &n, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *p = names[i];
		uint32_t db;
		if (!parse_u32(&p, &db) || *p) {
			st->skipped++; /* pgsql_tmp */
			continue;
		}
		char rel_path[64];
		snprintf(rel_path, sizeof(rel_path), "base/%u", db);
		rc = wi_import_db(wi, SPC_DEFAULT, db);
		if (rc < 0)
			fail(err, rc, "%s: %s", rel_path, wi_error(wi));
		else
			rc = import_db_dir(wi, pgdata, rel_path, SPC_DEFAULT, db, st, err);
	}
	free_names(names, n);
	return rc;
}

int base_import(struct walingest *wi, const char *pgdata, const struct base_info *info,
		struct base_stats *st, char err[STORE_ERROR_BYTES])
{
	memset(st, 0, sizeof(*st));
	err[0] = '\0';
	int rc = refuse_tablespaces(pgdata, err);
	if (rc < 0)
		return rc;
	wi_begin(wi, info->start_lsn);
	rc = import_db_dir(wi, pgdata, "global", SPC_GLOBAL, 0, st, err);
	if (rc == 0)
		rc = import_databases(wi, pgdata, st, err);
	if (rc == 0)
		rc = import_slru_dir(wi, pgdata, "pg_xact", AR_SLRU_CLOG, st, err);
	if (rc == 0)
		rc = import_slru_dir(wi, pgdata, "pg_multixact/offsets", AR_SLRU_MULTIXACT_OFFSETS,
				     st, err);
	if (rc == 0)
		rc = import_slru_dir(wi, pgdata, "pg_multixact/members", AR_SLRU_MULTIXACT_MEMBERS,
				     st, err);
	if (rc == 0)
		rc = import_top_files(wi, pgdata, st, err);
	int erc = wi_end(wi);
	if (rc == 0 && erc < 0)
		rc = fail(err, erc, "%s: %s", pgdata, wi_error(wi));
	return rc;
}
