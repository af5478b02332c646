/*
 * store.h - A page server's data directory opened by one process for offline work
 * (argonctl's import, export, branch and inspection commands): the directory
 * lock, the real disk, a block cache, the applier, one tenant, and each
 * timeline's ingest state.
 *
 * Layout under the data directory:
 *   argon.lock                          held while open (the page server holds it too)
 *   tenants/<tenant id>[-<NNCC>]/       the tenant, or one shard of it (engine/tenant.h)
 *   ingest/<tenant id>[-<NNCC>]/<timeline id>.json   what the ingest knows of the
 *                                       timeline (per shard: each reads its own share)
 */
#ifndef AR_INGEST_STORE_H
#define AR_INGEST_STORE_H

#include "common/datadir.h"
#include "engine/applier.h"
#include "engine/redopool.h"
#include "engine/tenant.h"

#include <stdbool.h>
#include <stdint.h>

#define STORE_ERROR_BYTES 640

struct store_options {
	/* argon-walredo; NULL: ar_redopool_find_helper().  Without one, pages that
	 * need PostgreSQL's redo fail with an error saying so. */
	const char *walredo_path;
	uint32_t redo_timeout_ms; /* 0: the pool's default */
	uint64_t cache_bytes;     /* of the store's own block cache (an LRU) */
	/* Or a block cache the caller owns and destroys after store_close (the page
	 * service's view on its core's partition); cache_bytes is then unused. */
	struct ar_blockcache *cache;
	uint64_t checkpoint_distance_bytes;
	struct tl_compact_params compact;
	/* The caller (the page server) holds the data directory's lock already. */
	bool datadir_held;
	/* Which shard of the tenant (shard_count 0 or 1: unsharded).  A shard lives
	 * in tenants/<tenant>-<NN><CC> (Neon's TenantShardId, hex). */
	uint32_t shard_number;
	uint32_t shard_count;
};

#define STORE_TENANT_DIR_BYTES 40
/* "<tenant hex>" or "<tenant hex>-<NN><CC>": the tenant shard's directory name. */
void store_tenant_dir_name(const struct tl_id *tenant, uint32_t shard_number, uint32_t shard_count,
			   char out[STORE_TENANT_DIR_BYTES]);

void store_options_default(struct store_options *o);

struct ar_store {
	char dir[512];
	struct ar_datadir dd;
	struct ar_vfs *vfs;
	struct ar_blockcache *cache;
	bool cache_owned; /* made by store_open (else store_options.cache) */
	struct ar_applier applier;
	struct ar_redopool *redopool; /* NULL: no argon-walredo was found */
	struct tl_env env;
	struct ar_tenant *tenant;
	struct tl_id tenant_id;
	uint32_t shard_number; /* as opened (store_options) */
	uint32_t shard_count;
	/* Image creation met a page that needs PostgreSQL's redo: it is not tried
	 * again by this process (each attempt would redo the same work for nothing). */
	bool images_postponed;
};

/* Open (create: make the tenant if missing) the tenant of a data directory. */
__attribute__((warn_unused_result)) int store_open(const char *dir, const struct tl_id *tenant,
						   bool create, const struct store_options *o,
						   struct ar_store **out,
						   char err[STORE_ERROR_BYTES]);
/* Nothing is flushed: call store_checkpoint first to keep what is in memory. */
void store_close(struct ar_store *s);

/* Freeze and flush everything in memory, then compact, create images and run
 * what is due until nothing is; the timeline's disk_consistent_lsn is then its
 * last LSN. */
__attribute__((warn_unused_result)) int store_checkpoint(struct ar_store *s, struct ar_timeline *tl,
							 char err[STORE_ERROR_BYTES]);
/* Between records during a long import: flush frozen layers and do one bounded
 * unit of compaction or image work when due. */
__attribute__((warn_unused_result)) int store_background(struct ar_store *s, struct ar_timeline *tl,
							 char err[STORE_ERROR_BYTES]);

/* What the ingest knows of a timeline, beyond the engine's manifest. */
struct ingest_state {
	uint64_t system_id;
	uint32_t seg_bytes;
	uint32_t pg_timeline;
	ar_lsn base_start_lsn; /* the base backup's start: its images are here */
	ar_lsn consistent_lsn; /* reads below are refused (0: not reached yet) */
	ar_lsn next_lsn;       /* where reading WAL resumes */
	/* Pages handed out (export, later the page service) carry PostgreSQL's
	 * pd_checksum: from the base backup's pg_control, changeable per timeline. */
	bool data_checksums;
	/* The primary streamed from (argonctl attach); empty: none. */
	char primary_conninfo[512];
	char slot_name[64];
	char application_name[64];
};

__attribute__((warn_unused_result)) int store_state_read(struct ar_store *s, const struct tl_id *tl,
							 struct ingest_state *st,
							 char err[STORE_ERROR_BYTES]);
/* Durable when it returns (written to a temporary file, fsynced, renamed). */
__attribute__((warn_unused_result)) int store_state_write(struct ar_store *s,
							  const struct tl_id *tl,
							  const struct ingest_state *st,
							  char err[STORE_ERROR_BYTES]);

/* Reads are refused below the base backup's end (pages are not consistent
 * there) and past the last LSN stored. */
__attribute__((warn_unused_result)) int store_check_read_lsn(struct ar_timeline *tl,
							     const struct ingest_state *st,
							     ar_lsn lsn,
							     char err[STORE_ERROR_BYTES]);
/* A relation page as of lsn, as handed out: zeros for a block below the size
 * never written, pd_checksum set when the timeline has data checksums. */
__attribute__((warn_unused_result)) int store_read_page(struct ar_timeline *tl,
							const struct ingest_state *st,
							struct ar_rel rel, uint32_t blkno,
							ar_lsn lsn, uint8_t page[AR_PAGE_BYTES],
							char err[STORE_ERROR_BYTES]);
/* The same, and *since_out: the LSN from which this answer holds up to lsn (the
 * newest value it was built from), for the page cache's validity rule. */
__attribute__((warn_unused_result)) int store_read_page_since(
    struct ar_timeline *tl, const struct ingest_state *st, struct ar_rel rel, uint32_t blkno,
    ar_lsn lsn, uint8_t page[AR_PAGE_BYTES], ar_lsn *since_out, char err[STORE_ERROR_BYTES]);
/* An SLRU page (clog, multixact members or offsets) as of lsn. */
__attribute__((warn_unused_result)) int store_read_slru(
    struct ar_timeline *tl, const struct ingest_state *st, enum ar_slru kind, uint32_t segno,
    uint32_t blkno, ar_lsn lsn, uint8_t page[AR_PAGE_BYTES], char err[STORE_ERROR_BYTES]);
/* A branch of parent at lsn, with an ingest state of its own (no WAL source). */
__attribute__((warn_unused_result)) int store_branch(struct ar_store *s, const struct tl_id *parent,
						     const struct ingest_state *st, ar_lsn lsn,
						     const struct tl_id *child_id,
						     char err[STORE_ERROR_BYTES]);

/* "X/Y" LSN text, and back. */
bool store_parse_lsn(const char *text, ar_lsn *out);
#define STORE_LSN_TEXT_BYTES 24
void store_lsn_text(ar_lsn lsn, char out[STORE_LSN_TEXT_BYTES]);

#endif
