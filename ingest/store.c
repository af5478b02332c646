/*
 * store.c - A data directory opened for offline work (see store.h).
 */
#include "ingest/store.h"

#include "common/err.h"
#include "common/log.h"
#include "ingest/pgchecksum.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void store_options_default(struct store_options *o)
{
	*o = (struct store_options){
		.cache_bytes = 256u << 20,
		.checkpoint_distance_bytes = 256u << 20,
		.compact = { .compaction_threshold = 10,
			     .compaction_l0_max = 10,
			     .compaction_target_bytes = 128u << 20,
			     .image_creation_threshold = 3,
			     .image_target_bytes = 128u << 20 },
	};
}

static int store_fail(char err[STORE_ERROR_BYTES], int rc, const char *what, const char *detail)
{
	snprintf(err, STORE_ERROR_BYTES, "%s: %s", what, detail);
	return rc < 0 ? rc : -EIO;
}

static int mkdir_p(const char *path)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

void store_tenant_dir_name(const struct tl_id *tenant, uint32_t shard_number, uint32_t shard_count,
			   char out[STORE_TENANT_DIR_BYTES])
{
	char hex[33];
	tl_id_hex(tenant, hex);
	if (shard_count >= 2)
		snprintf(out, STORE_TENANT_DIR_BYTES, "%s-%02x%02x", hex, shard_number,
			 shard_count);
	else
		snprintf(out, STORE_TENANT_DIR_BYTES, "%s", hex);
}

static int store_tenant(struct ar_store *s, const struct store_options *o, bool create,
			char err[STORE_ERROR_BYTES])
{
	char name[STORE_TENANT_DIR_BYTES], path[700], lerr[LYR_ERROR_BYTES];
	store_tenant_dir_name(&s->tenant_id, o->shard_number, o->shard_count, name);
	snprintf(path, sizeof(path), "%s/tenants/%s", s->dir, name);
	struct stat st;
	if (stat(path, &st) == 0) {
		int rc = tenant_open(&s->env, path, &s->tenant, lerr);
		if (rc < 0)
			return store_fail(err, rc, "opening the tenant",
					  rc == -AR_ECORRUPT ? lerr : strerror(-rc));
		const struct tenant_params *p = tenant_params(s->tenant);
		uint32_t count = p->shards.shard_count > 1 ? p->shards.shard_count : 1;
		if (count != (o->shard_count > 1 ? o->shard_count : 1) ||
		    p->shard_number != o->shard_number) {
			snprintf(err, STORE_ERROR_BYTES,
				 "tenant %s is shard %u of %u, not the shard asked for", name,
				 p->shard_number, count);
			return -AR_ECONFIG;
		}
		return 0;
	}
	if (!create) {
		snprintf(err, STORE_ERROR_BYTES, "unknown tenant %s in %s", name, s->dir);
		return -AR_ENOTENANT;
	}
	if (o->shard_count >= 2 && o->shard_number >= o->shard_count) {
		snprintf(err, STORE_ERROR_BYTES, "shard %u of %u does not exist", o->shard_number,
			 o->shard_count);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "%s/tenants", s->dir);
	int rc = mkdir_p(path);
	snprintf(path, sizeof(path), "%s/tenants/%s", s->dir, name);
	struct tenant_params params = {
		.shards = { .shard_count = o->shard_count >= 2 ? o->shard_count : 1,
			    .stripe_blocks = AR_STRIPE_BLOCKS_DEFAULT },
		.shard_number = o->shard_number,
	};
	if (rc == 0)
		rc = tenant_create(&s->env, path, &params, &s->tenant);
	return rc < 0 ? store_fail(err, rc, "creating the tenant", strerror(-rc)) : 0;
}

/* PostgreSQL's redo: one argon-walredo slot (the store runs on one thread). */
static int store_redo(struct ar_store *s, const struct store_options *o)
{
	char path[4096];
	const char *helper =
	    o->walredo_path ? o->walredo_path : ar_redopool_find_helper(path, sizeof(path));
	struct ar_redo *inner = NULL;
	if (helper) {
		struct ar_redopool_config cfg = { .helper_path = helper,
						  .slots = 1,
						  .timeout_ms = o->redo_timeout_ms };
		int rc = ar_redopool_create(&cfg, &s->redopool);
		if (rc < 0)
			return rc;
		inner = ar_redopool_slot(s->redopool, 0);
	}
	ar_applier_init(&s->applier, inner);
	return 0;
}

int store_open(const char *dir, const struct tl_id *tenant, bool create,
	       const struct store_options *o, struct ar_store **out, char err[STORE_ERROR_BYTES])
{
	struct ar_store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	s->dd.dir_fd = s->dd.lock_fd = -1;
	s->tenant_id = *tenant;
	s->shard_number = o->shard_number;
	s->shard_count = o->shard_count;
	char derr[AR_CONFIG_ERROR_BYTES];
	int rc = o->datadir_held ? 0 : ar_datadir_open(dir, &s->dd, derr);
	if (rc < 0) {
		snprintf(err, STORE_ERROR_BYTES, "%s", derr);
		free(s);
		return rc;
	}
	rc = ar_vfs_real_create(256, &s->vfs);
	if (rc == 0 && o->cache) {
		s->cache = o->cache;
	} else if (rc == 0) {
		rc = ar_blockcache_create(o->cache_bytes, &s->cache);
		s->cache_owned = rc == 0;
	}
	if (rc < 0) {
		store_close(s);
		return store_fail(err, rc, "starting the store", strerror(-rc));
	}
	rc = store_redo(s, o);
	if (rc < 0) {
		store_close(s);
		return store_fail(err, rc, "starting the redo pool", strerror(-rc));
	}
	s->env = (struct tl_env){ .vfs = s->vfs,
				  .cache = s->cache,
				  .redo = &s->applier.redo,
				  .checkpoint_distance_bytes = o->checkpoint_distance_bytes,
				  .compact = o->compact };
	rc = store_tenant(s, o, create, err);
	if (rc < 0) {
		store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void store_close(struct ar_store *s)
{
	if (!s)
		return;
	if (s->tenant)
		tenant_close(s->tenant);
	ar_redopool_destroy(s->redopool);
	if (s->cache_owned)
		ar_blockcache_destroy(s->cache);
	if (s->vfs)
		ar_vfs_destroy(s->vfs);
	if (s->dd.lock_fd >= 0)
		ar_datadir_close(&s->dd);
	free(s);
}

static int tl_fail(char err[STORE_ERROR_BYTES], int rc, const char *what, struct ar_timeline *tl)
{
	const char *why = tl_error(tl)[0] ? tl_error(tl) : strerror(rc < 0 ? -rc : rc);
	return store_fail(err, rc, what, why);
}

/* One unit of compaction or image work if due; *did_work says whether. */
static int store_work(struct ar_store *s, struct ar_timeline *tl, bool *did_work,
		      char err[STORE_ERROR_BYTES])
{
	int rc = tl_compact(tl, did_work);
	if (rc < 0)
		return tl_fail(err, rc, "compaction", tl);
	if (*did_work || s->images_postponed)
		return 0;
	rc = tl_create_images(tl, did_work);
	if (rc == -ENOTSUP) {
		/* Pages that need PostgreSQL's redo: image layers wait for it. */
		AR_LOG(WARNING, "store", "image layers postponed: %s", tl_error(tl));
		s->images_postponed = true;
		*did_work = false;
		return 0;
	}
	return rc < 0 ? tl_fail(err, rc, "image creation", tl) : 0;
}

int store_background(struct ar_store *s, struct ar_timeline *tl, char err[STORE_ERROR_BYTES])
{
	int rc = tl_flush(tl);
	bool did;
	if (rc == -EAGAIN || rc == 0)
		return store_work(s, tl, &did, err);
	return tl_fail(err, rc, "flushing layers", tl);
}

int store_checkpoint(struct ar_store *s, struct ar_timeline *tl, char err[STORE_ERROR_BYTES])
{
	tl_maybe_freeze(tl, true);
	/* Bounded: each pass flushes or merges layers; backpressure needs compaction. */
	for (int pass = 0; pass < 1000; pass++) {
		int rc = tl_flush(tl);
		if (rc < 0 && rc != -EAGAIN)
			return tl_fail(err, rc, "flushing layers", tl);
		bool did = false;
		int wrc = store_work(s, tl, &did, err);
		if (wrc < 0)
			return wrc;
		if (rc == 0 && !did) {
			rc = tl_sync_advance(tl);
			return rc < 0 ? tl_fail(err, rc, "writing the manifest", tl) : 0;
		}
	}
	return store_fail(err, -EIO, "checkpoint", "compaction does not converge");
}

/* ---- ingest state ---- */

static void state_path(struct ar_store *s, const struct tl_id *tl, char *path, size_t n,
		       bool dir_only)
{
	/* Per tenant shard: each shard reads its own share of the WAL, from where it is. */
	char th[STORE_TENANT_DIR_BYTES], lh[33];
	store_tenant_dir_name(&s->tenant_id, s->shard_number, s->shard_count, th);
	tl_id_hex(tl, lh);
	if (dir_only)
		snprintf(path, n, "%s/ingest/%s", s->dir, th);
	else
		snprintf(path, n, "%s/ingest/%s/%s.json", s->dir, th, lh);
}

bool store_parse_lsn(const char *text, ar_lsn *out)
{
	unsigned hi, lo;
	int used = 0;
	if (sscanf(text, "%X/%X%n", &hi, &lo, &used) != 2 || text[used] != '\0')
		return false;
	*out = (ar_lsn)hi << 32 | lo;
	return true;
}

void store_lsn_text(ar_lsn lsn, char out[STORE_LSN_TEXT_BYTES])
{
	snprintf(out, STORE_LSN_TEXT_BYTES, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

int store_state_write(struct ar_store *s, const struct tl_id *tl, const struct ingest_state *st,
		      char err[STORE_ERROR_BYTES])
{
	char path[700], tmp[720], sys[24];
	char a[STORE_LSN_TEXT_BYTES], b[STORE_LSN_TEXT_BYTES], c[STORE_LSN_TEXT_BYTES];
	state_path(s, tl, path, sizeof(path), true);
	int rc = mkdir_p(path);
	if (rc < 0)
		return store_fail(err, rc, path, strerror(-rc));
	state_path(s, tl, path, sizeof(path), false);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	store_lsn_text(st->base_start_lsn, a);
	store_lsn_text(st->consistent_lsn, b);
	store_lsn_text(st->next_lsn, c);
	snprintf(sys, sizeof(sys), "%" PRIu64, st->system_id);
	json_t *j = json_pack("{s:s, s:i, s:i, s:s, s:s, s:s, s:b, s:s, s:s, s:s}", "system_id",
			      sys, "seg_bytes", (json_int_t)st->seg_bytes, "pg_timeline",
			      (json_int_t)st->pg_timeline, "base_start_lsn", a, "consistent_lsn", b,
			      "next_lsn", c, "data_checksums", st->data_checksums,
			      "primary_conninfo", st->primary_conninfo, "slot_name", st->slot_name,
			      "application_name", st->application_name);
	if (!j)
		return -ENOMEM;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	rc = fd < 0 ? -errno : json_dumpfd(j, fd, JSON_INDENT(2)) < 0 ? -EIO : 0;
	json_decref(j);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		return store_fail(err, rc, path, strerror(-rc));
	state_path(s, tl, path, sizeof(path), true);
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		rc = fsync(dfd) < 0 ? -errno : 0;
		close(dfd);
	}
	return rc < 0 ? store_fail(err, rc, path, strerror(-rc)) : 0;
}

static bool state_lsn(json_t *j, const char *name, ar_lsn *out)
{
	const char *t = json_string_value(json_object_get(j, name));
	return t && store_parse_lsn(t, out);
}

/* An optional string field (older states lack it). */
static void state_string(json_t *j, const char *name, char *out, size_t n)
{
	const char *t = json_string_value(json_object_get(j, name));
	snprintf(out, n, "%s", t ? t : "");
}

int store_state_read(struct ar_store *s, const struct tl_id *tl, struct ingest_state *st,
		     char err[STORE_ERROR_BYTES])
{
	char path[700];
	state_path(s, tl, path, sizeof(path), false);
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	if (!j) {
		if (access(path, F_OK) < 0) {
			snprintf(err, STORE_ERROR_BYTES, "timeline has no ingest state (%s)", path);
			return -AR_ENOTIMELINE;
		}
		snprintf(err, STORE_ERROR_BYTES, "%s: %s", path, je.text);
		return -AR_ECORRUPT;
	}
	const char *sys = json_string_value(json_object_get(j, "system_id"));
	memset(st, 0, sizeof(*st));
	bool ok = sys && sscanf(sys, "%" SCNu64, &st->system_id) == 1 &&
		  state_lsn(j, "base_start_lsn", &st->base_start_lsn) &&
		  state_lsn(j, "consistent_lsn", &st->consistent_lsn) &&
		  state_lsn(j, "next_lsn", &st->next_lsn);
	st->seg_bytes = (uint32_t)json_integer_value(json_object_get(j, "seg_bytes"));
	st->pg_timeline = (uint32_t)json_integer_value(json_object_get(j, "pg_timeline"));
	st->data_checksums = json_is_true(json_object_get(j, "data_checksums"));
	state_string(j, "primary_conninfo", st->primary_conninfo, sizeof(st->primary_conninfo));
	state_string(j, "slot_name", st->slot_name, sizeof(st->slot_name));
	state_string(j, "application_name", st->application_name, sizeof(st->application_name));
	json_decref(j);
	if (!ok || st->seg_bytes == 0) {
		snprintf(err, STORE_ERROR_BYTES, "%s: missing or malformed fields", path);
		return -AR_ECORRUPT;
	}
	return 0;
}

/* ---- reads and branches, for argonctl -D and the page server alike ---- */

int store_check_read_lsn(struct ar_timeline *tl, const struct ingest_state *st, ar_lsn lsn,
			 char err[STORE_ERROR_BYTES])
{
	char a[STORE_LSN_TEXT_BYTES], b[STORE_LSN_TEXT_BYTES];
	if (st->consistent_lsn != 0 && lsn >= st->consistent_lsn && lsn <= tl_last_record_lsn(tl))
		return 0; /* every page read asks: the texts only for an error */
	store_lsn_text(lsn, a);
	store_lsn_text(st->consistent_lsn, b);
	if (st->consistent_lsn == 0 || lsn < st->consistent_lsn) {
		snprintf(err, STORE_ERROR_BYTES,
			 "LSN %s is below the base backup's end (%s): pages are not consistent "
			 "there",
			 a, st->consistent_lsn ? b : "not reached yet");
		return -ERANGE;
	}
	if (lsn > tl_last_record_lsn(tl)) {
		store_lsn_text(tl_last_record_lsn(tl), b);
		snprintf(err, STORE_ERROR_BYTES, "LSN %s is past the last one stored (%s)", a, b);
		return -ERANGE;
	}
	return 0;
}

int store_read_page(struct ar_timeline *tl, const struct ingest_state *st, struct ar_rel rel,
		    uint32_t blkno, ar_lsn lsn, uint8_t page[AR_PAGE_BYTES],
		    char err[STORE_ERROR_BYTES])
{
	ar_lsn since;
	return store_read_page_since(tl, st, rel, blkno, lsn, page, &since, err);
}

int store_read_page_since(struct ar_timeline *tl, const struct ingest_state *st, struct ar_rel rel,
			  uint32_t blkno, ar_lsn lsn, uint8_t page[AR_PAGE_BYTES],
			  ar_lsn *since_out, char err[STORE_ERROR_BYTES])
{
	uint32_t len = 0, n = 0;
	int rc = store_check_read_lsn(tl, st, lsn, err);
	if (rc < 0)
		return rc;
	rc = tl_rel_nblocks(tl, rel, lsn, &n);
	if (rc == 0 && blkno >= n)
		rc = -ERANGE;
	/* The answer depends on the size key and the block's key: it holds from the
	 * newer of their newest values on. */
	*since_out = rc == 0 ? tl_last_value_lsn(tl) : lsn;
	struct ar_key k = ar_key_rel_block(rel, blkno);
	if (rc == 0)
		rc = tl_get(tl, &k, lsn, page, &len);
	if (rc == 0 && tl_last_value_lsn(tl) > *since_out)
		*since_out = tl_last_value_lsn(tl);
	if (rc == -AR_ENOKEY && n > blkno) {
		memset(page, 0, AR_PAGE_BYTES); /* below the size, never written */
		len = AR_PAGE_BYTES;
		rc = 0;
	}
	if (rc == 0 && len != AR_PAGE_BYTES)
		rc = -AR_ECORRUPT;
	if (rc < 0) {
		snprintf(err, STORE_ERROR_BYTES, "block %u of %u/%u/%u fork %u: %s", blkno,
			 rel.spc_oid, rel.db_oid, rel.rel_number, rel.fork,
			 rc == -ERANGE      ? "beyond the relation's end"
			 : rc == -AR_ENOKEY ? "no such relation at that LSN"
			 : tl_error(tl)[0]  ? tl_error(tl)
					    : strerror(-rc));
		return rc;
	}
	if (st->data_checksums)
		ar_pg_page_set_checksum(page, blkno);
	return 0;
}

int store_read_slru(struct ar_timeline *tl, const struct ingest_state *st, enum ar_slru kind,
		    uint32_t segno, uint32_t blkno, ar_lsn lsn, uint8_t page[AR_PAGE_BYTES],
		    char err[STORE_ERROR_BYTES])
{
	uint32_t len = 0;
	int rc = store_check_read_lsn(tl, st, lsn, err);
	if (rc < 0)
		return rc;
	struct ar_key k = ar_key_slru_block(kind, segno, blkno);
	rc = tl_get(tl, &k, lsn, page, &len);
	if (rc == 0 && len != AR_PAGE_BYTES)
		rc = -AR_ECORRUPT;
	if (rc < 0)
		snprintf(err, STORE_ERROR_BYTES, "SLRU %u segment %04X block %u: %s",
			 (unsigned)kind, segno, blkno,
			 rc == -AR_ENOKEY  ? "no such page at that LSN"
			 : tl_error(tl)[0] ? tl_error(tl)
					   : strerror(-rc));
	return rc;
}

int store_branch(struct ar_store *s, const struct tl_id *parent, const struct ingest_state *st,
		 ar_lsn lsn, const struct tl_id *child_id, char err[STORE_ERROR_BYTES])
{
	struct ar_timeline *child;
	int rc = tenant_branch(s->tenant, parent, lsn, child_id, &child);
	if (rc < 0) {
		snprintf(err, STORE_ERROR_BYTES, "branching: %s",
			 rc == -AR_EBELOWGC ? "the LSN is below the parent's GC cutoff"
			 : rc == -ERANGE    ? "the LSN is outside the parent's history"
			 : rc == -EEXIST    ? "the new timeline ID is taken"
					    : strerror(-rc));
		return rc;
	}
	struct ingest_state cst = *st;
	cst.next_lsn = 0; /* a branch has no WAL source of its own yet */
	cst.primary_conninfo[0] = cst.slot_name[0] = cst.application_name[0] = '\0';
	if (cst.consistent_lsn > lsn)
		cst.consistent_lsn = 0;
	return store_state_write(s, child_id, &cst, err);
}
