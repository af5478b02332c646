/*
 * redocheck.h - The record-by-record redo check: for WAL written with
 * wal_consistency_checking, every block reference of a page record carries the
 * page PostgreSQL had after the record (a post-image not marked for apply).
 * For each such block, argon-walredo replays the record on Argon's page as it
 * was before the record (never on the logged post-image), and both are masked
 * with the record's rm_mask (PostgreSQL's, run in the helper) and compared, as
 * PostgreSQL's own consistency check does.
 *
 * The page before a record is Argon's page at the record's start LSN.  Reading
 * it from the store replays the whole chain since the last image for every
 * record, so the check keeps the page it just replayed and uses it for the
 * block's next record, unless something else changed the block in between: a
 * record touching the block that carries no post-image (a full-page image
 * record, say), or any record of a non-page rmgr that changes relations
 * (smgr, database) drops the kept pages, and a heap record drops the kept
 * visibility-map page of each heap block it touches if that block's bits are
 * set there (Argon's own records may have cleared them).  Every
 * `verify_every`-th kept page is checked against the store's page as well; a
 * difference is counted (keep_disagreements) and the store's page is used.
 */
#ifndef AR_INGEST_REDOCHECK_H
#define AR_INGEST_REDOCHECK_H

#include "ingest/store.h"

#include <stdint.h>

struct redo_check_options {
	const char *wal_dir;
	ar_lsn stop_lsn;       /* stop after the record ending here (0: the timeline's last) */
	ar_lsn flip_lsn;       /* negative control: flip a byte of this record's main data
				  (its CRC recomputed) before replaying it; 0: none */
	uint32_t verify_every; /* 0: 64 */
	uint32_t report_max;   /* mismatch lines printed (0: 20) */
	bool progress;
};

struct redo_check_result {
	uint64_t records;        /* read from the WAL */
	uint64_t blocks_checked; /* post-images compared */
	uint64_t mismatches;     /* masked pages that differ */
	uint64_t lsn_mismatches; /* replayed pd_lsn is neither the record's end nor the
				    post-image's (redo that does not set pd_lsn) */
	uint64_t redo_errors;    /* replays that failed (counted as mismatches too) */
	uint64_t from_store;     /* pages before read from the store */
	uint64_t kept;           /* pages before taken from the last replay */
	uint64_t keep_disagreements;
	uint64_t flipped; /* 1 if flip_lsn was met */
	ar_lsn first_lsn; /* the first record checked */
	ar_lsn last_lsn;
};

/* Check every record of the timeline's WAL in o->wal_dir from the base
 * backup's consistent point to the timeline's last record.  Needs the store's
 * redo pool.  Mismatch lines go to stdout. */
__attribute__((warn_unused_result)) int redo_check(struct ar_store *s, struct ar_timeline *tl,
						   const struct ingest_state *st,
						   const struct redo_check_options *o,
						   struct redo_check_result *r,
						   char err[STORE_ERROR_BYTES]);

#endif
