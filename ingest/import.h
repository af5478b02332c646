/*
 * import.h - Bringing a PostgreSQL 15 cluster into a timeline: a base backup
 * (pg_basebackup's plain format, or a cleanly stopped data directory), then WAL
 * segment files (an archive, or what pg_receivewal collected) read with
 * io_uring, and the way back out: a data directory exported at any LSN.
 */
#ifndef AR_INGEST_IMPORT_H
#define AR_INGEST_IMPORT_H

#include "ingest/store.h"
#include "ingest/walingest.h"

#include <stdbool.h>
#include <stdint.h>

/* What a base backup or stopped data directory says about itself. */
struct base_info {
	uint64_t system_id;
	uint32_t seg_bytes;
	uint32_t pg_timeline;
	ar_lsn start_lsn;        /* backup_label's START WAL LOCATION, or the checkpoint's redo */
	ar_lsn end_lsn;          /* backup_manifest's End-LSN, = start for a stopped directory,
				  0 when only WAL's BACKUP_END record will tell */
	ar_lsn checkpoint_lsn;   /* where the checkpoint record starts */
	ar_lsn min_recovery_lsn; /* pg_control's minRecoveryPoint (a stopped standby) */
	bool from_backup;        /* backup_label present */
	bool data_checksums;     /* pg_control's data_checksum_version is not 0 */
};

/* pg_basebackup's tar format: if src is an archive, or a directory holding
 * base.tar[.gz|.lz4|.zst], unpack it (and the backup_manifest beside it) into a
 * new directory under scratch_parent, named in dir_out: returns 1.  Returns 0
 * for a plain directory (nothing done). */
__attribute__((warn_unused_result)) int base_unpack(const char *src, const char *scratch_parent,
						    char *dir_out, size_t n,
						    char err[STORE_ERROR_BYTES]);

/* Remove a directory base_unpack made, and everything in it. */
void base_unpack_remove(const char *dir);

/* Read pg_control (its CRC checked), PG_VERSION, backup_label, backup_manifest. */
__attribute__((warn_unused_result)) int base_inspect(const char *pgdata, struct base_info *out,
						     char err[STORE_ERROR_BYTES]);

struct base_stats {
	uint64_t relation_files;
	uint64_t blocks;
	uint64_t zero_blocks;
	uint64_t slru_pages;
	uint64_t files;
	uint64_t skipped; /* unlogged and temporary relations, other files */
};

/* Every page of the cluster as an image at info->start_lsn, the SLRUs, relation
 * maps, pg_control and the non-relation files a compute needs. */
__attribute__((warn_unused_result)) int base_import(struct walingest *wi, const char *pgdata,
						    const struct base_info *info,
						    struct base_stats *stats,
						    char err[STORE_ERROR_BYTES]);

struct wal_import_options {
	uint32_t chunk_bytes; /* one read (1 MiB) */
	uint32_t queue_depth; /* reads in flight (16) */
	ar_lsn stop_lsn;      /* stop after the record ending here (0: end of WAL) */
	bool progress;        /* a progress line on stderr every 2 s */
	/* Read-only use (wal_import with wi NULL): each decoded record goes here
	 * instead of into the store; a negative result stops the read with it. */
	wal_record_fn *visit;
	void *visit_ctx;
};

struct wal_import_result {
	ar_lsn next_lsn;     /* where the next record would start */
	ar_lsn last_end_lsn; /* end of the last record ingested */
	uint64_t bytes_read;
	uint64_t segments;
	double seconds;
	bool clean_end;     /* a recycled or missing segment, or stop_lsn reached */
	bool ingest_failed; /* a record was refused part-way: the open layer holds part
			       of it and must not be kept */
};

/* Read segment files of dir from st->next_lsn through the decoder into wi,
 * letting tl flush and compact as it goes.  On a bad record: an error naming its
 * LSN; everything before it is kept.  With wi NULL, records go to o->visit and
 * nothing is stored. */
__attribute__((warn_unused_result)) int wal_import(struct ar_store *s, struct ar_timeline *tl,
						   struct walingest *wi, const char *dir,
						   const struct ingest_state *st,
						   const struct wal_import_options *o,
						   struct wal_import_result *res,
						   char err[STORE_ERROR_BYTES]);

struct export_stats {
	uint64_t relation_forks;
	uint64_t blocks;
	uint64_t slru_pages;
	uint64_t files;
};

/* Write a data directory (relation files, SLRUs, relation maps, files) as of lsn
 * into outdir (created; must not exist or be empty).  checksums: every relation
 * page that is not new gets PostgreSQL's pd_checksum for its block number. */
__attribute__((warn_unused_result)) int export_datadir(struct ar_timeline *tl, ar_lsn lsn,
						       bool checksums, const char *outdir,
						       struct export_stats *stats,
						       char err[STORE_ERROR_BYTES]);

#endif
