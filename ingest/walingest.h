/*
 * walingest.h - Decoded PostgreSQL 15 WAL records into the store: each record's
 * values go to the shards that own their keys, at the record's end LSN.
 *
 *  - block references: a full-page image (or, when the primary runs with
 *    wal_consistency_checking, the post-image every record then carries) is
 *    stored as an image with pd_lsn set to the record's end; otherwise the whole
 *    record is stored for PostgreSQL's redo (will_init from the block's flag).
 *    Writing past a relation's end extends its size; an unknown relation is
 *    created, as PostgreSQL's redo does.
 *  - records Argon applies itself (see walingest_*.c): visibility-map bit clears,
 *    clog bits of commits and aborts (subtransactions, two-phase), multixact
 *    offsets and members, SLRU page zeroing and truncation, relation map
 *    updates, smgr create and truncate, database create (both strategies) and
 *    drop, relations dropped by commit and abort records, checkpoints, and the
 *    commit-timestamp index.
 *  - tablespaces other than pg_default and pg_global are refused.
 *
 * Metadata (directories, SLRUs, files) lives on shard 0; relation sizes on every
 * shard; relation blocks on the shard that owns them.  One ingest per timeline,
 * owned by one thread.
 */
#ifndef AR_INGEST_WALINGEST_H
#define AR_INGEST_WALINGEST_H

#include "engine/timeline.h"
#include "ingest/walrec.h"

#include <stdint.h>

#define WI_ERROR_BYTES 300
#define WI_SHARDS_MAX 64
/* Heap blocks one visibility-map page covers: 2 bits each in the 8168 bytes after
 * the page header.  Heap block b's bits are on VM block b / this. */
#define WI_VM_HEAPBLOCKS_PER_PAGE ((8192 - 24) * 4)

struct walingest;

/* The shards of one timeline held here: shard n's timeline is shards[n] (NULL if
 * held elsewhere). */
struct wi_target {
	struct ar_shard_map map;
	struct ar_timeline *shards[WI_SHARDS_MAX];
};

struct wi_stats {
	uint64_t records;
	uint64_t skipped; /* already stored (at or below the last LSN) */
	uint64_t images;
	uint64_t wal_values;
	uint64_t argon_values;
	uint64_t rels_created;
	uint64_t rels_dropped;
	uint64_t dbs_created;
	uint64_t dbs_dropped;
	uint64_t xacts;
	uint64_t multixacts;
	uint64_t relmaps;
	uint64_t checkpoints;
	uint64_t vm_clears;
	uint64_t bytes;          /* WAL bytes of the records ingested */
	ar_lsn backup_end_start; /* the last XLOG_BACKUP_END: its backup's start LSN */
	ar_lsn backup_end_lsn;   /* and its end LSN (a base backup is consistent there) */
	ar_lsn last_checkpoint;  /* end LSN of the last checkpoint record */
};

__attribute__((warn_unused_result)) int wi_create(const struct wi_target *target,
						  struct walingest **out);
void wi_destroy(struct walingest *wi);
/* Store one verified record.  Records must come in LSN order; those ending at or
 * below the timelines' last LSN are skipped (a restart re-reads them).  Errors
 * name the record's LSN and the cause (wi_error). */
__attribute__((warn_unused_result)) int wi_record(struct walingest *wi,
						  const struct wal_record *rec);
/* Between records: let the timelines freeze their open layers. */
void wi_maybe_freeze(struct walingest *wi, bool force);
const char *wi_error(const struct walingest *wi);
const struct wi_stats *wi_stats(const struct walingest *wi);

/* ---- base import: many values at one LSN, outside any record ---- */
void wi_begin(struct walingest *wi, ar_lsn lsn);
/* Write what the batch changed (directories, sizes). */
__attribute__((warn_unused_result)) int wi_end(struct walingest *wi);
/* A relation block, an SLRU page, a relation map, a non-relation file (path
 * relative to the data directory), pg_control: as images at the batch's LSN. */
__attribute__((warn_unused_result)) int wi_import_block(struct walingest *wi, struct ar_rel rel,
							uint32_t blkno,
							const uint8_t page[AR_PAGE_BYTES]);
__attribute__((warn_unused_result)) int wi_import_slru(struct walingest *wi, enum ar_slru kind,
						       uint32_t segno, uint32_t blkno,
						       const uint8_t page[AR_PAGE_BYTES]);
__attribute__((warn_unused_result)) int wi_import_relmap(struct walingest *wi, uint32_t spc,
							 uint32_t db, const uint8_t *data,
							 uint32_t len);
__attribute__((warn_unused_result)) int wi_import_rel(struct walingest *wi, struct ar_rel rel);
/* A relation is at least nblocks long (blocks never stored read as zeros). */
__attribute__((warn_unused_result)) int wi_import_extend(struct walingest *wi, struct ar_rel rel,
							 uint32_t nblocks);
__attribute__((warn_unused_result)) int wi_import_db(struct walingest *wi, uint32_t spc,
						     uint32_t db);
__attribute__((warn_unused_result)) int wi_file_put(struct walingest *wi, const char *path,
						    const uint8_t *data, uint32_t len);
__attribute__((warn_unused_result)) int wi_import_control(struct walingest *wi, const uint8_t *data,
							  uint32_t len);

/* ---- commit-timestamp index ---- */
/* The end LSN of the newest commit at or before PostgreSQL timestamp ts
 * (microseconds since 2000-01-01), as of lsn; -AR_ENOKEY if none is known. */
__attribute__((warn_unused_result)) int wi_lsn_for_time(struct ar_timeline *tl, int64_t ts,
							ar_lsn lsn, ar_lsn *out);

#endif
