/*
 * wallog.h - The durable local WAL log: the raw WAL a receiver gets from its
 * primary, appended to segment files before its flush position is
 * acknowledged (the event log of ../shared/design.md).  On restart the ingest
 * replays it above disk_consistent_lsn; it is trimmed below what layers hold.
 *
 * The files are PostgreSQL's own segment files (<dir>/TTTTTTTTXXXXXXXXYYYYYYYY,
 * timeline, log, segment; seg_bytes each), so pg_waldump and `argonctl import
 * wal` read them too.  Bytes sit at their LSN's offset.  A segment is created
 * whole before any WAL goes into it: seg_bytes of zeros written to
 * "<name>.tmp", fsynced, renamed, the directory fsynced — so an fsync of a
 * segment later never changes its size or its directory entry, and space runs
 * out when a segment is created, not half-way through an acknowledged write.
 *
 * All I/O goes through the ar_vfs given (io_uring on the real disk, the
 * simulated disk in the crash tests).  One writer per directory; readers
 * (another thread, with its own vfs) open the same directory read-only.
 */
#ifndef AR_INGEST_WALLOG_H
#define AR_INGEST_WALLOG_H

#include "common/vfs.h"
#include "engine/key.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WALLOG_ERROR_BYTES 400

struct wallog;

/* Open the log in dir (created, with its parents, when writable and missing).
 * writable: this handle may write, flush and trim; otherwise it only reads and
 * creates nothing. */
__attribute__((warn_unused_result)) int wallog_open(struct ar_vfs *vfs, const char *dir,
						    uint32_t seg_bytes, bool writable,
						    struct wallog **out,
						    char err[WALLOG_ERROR_BYTES]);
/* Closes the files; nothing is flushed. */
void wallog_close(struct wallog *l);

/* Write len bytes of timeline tli's WAL at lsn (crossing segments as needed,
 * creating each as described above).  Not durable until wallog_flush. */
__attribute__((warn_unused_result)) int wallog_write(struct wallog *l, uint32_t tli, ar_lsn lsn,
						     const void *data, size_t len,
						     char err[WALLOG_ERROR_BYTES]);
/* Make everything written so far durable: fsync every segment written since the
 * last flush.  On failure nothing written since the last successful flush may
 * be counted durable (a later flush may retry). */
__attribute__((warn_unused_result)) int wallog_flush(struct wallog *l,
						     char err[WALLOG_ERROR_BYTES]);

/* Read up to len bytes of timeline tli's WAL at lsn, within one segment (len is
 * cut at the segment's end).  Returns the count, 0 when that segment does not
 * exist, or -errno.  Bytes never written read as zeros. */
__attribute__((warn_unused_result)) int64_t wallog_read(struct wallog *l, uint32_t tli, ar_lsn lsn,
							void *buf, size_t len,
							char err[WALLOG_ERROR_BYTES]);

/* A timeline switch at switch_lsn: timeline new_tli's segment holding
 * switch_lsn starts as a copy of old_tli's bytes below switch_lsn (as
 * PostgreSQL makes it), durable before this returns.  If that segment exists
 * already (the switch repeated after a restart) it is kept as it is: it may
 * hold new_tli's acknowledged WAL by then. */
__attribute__((warn_unused_result)) int wallog_switch_timeline(struct wallog *l, uint32_t old_tli,
							       uint32_t new_tli, ar_lsn switch_lsn,
							       char err[WALLOG_ERROR_BYTES]);

/* fdatasync every segment (of every timeline) holding lsn or later WAL: what
 * a process that died before its flush left in the page cache becomes durable
 * before a restart counts it as durable.  Returns the number synced. */
__attribute__((warn_unused_result)) int wallog_sync_from(struct wallog *l, ar_lsn lsn,
							 char err[WALLOG_ERROR_BYTES]);

/* Remove the segments (of every timeline) that end at or below lsn; the
 * directory is fsynced.  Returns the number removed. */
__attribute__((warn_unused_result)) int wallog_trim(struct wallog *l, ar_lsn lsn,
						    char err[WALLOG_ERROR_BYTES]);

/* The segments present: their count, and the lowest and highest segment
 * numbers (0 when none). */
struct wallog_info {
	uint32_t segments;
	uint64_t first_segno;
	uint64_t last_segno;
	uint64_t bytes; /* segments × seg_bytes */
};
__attribute__((warn_unused_result)) int wallog_info(struct wallog *l, struct wallog_info *out,
						    char err[WALLOG_ERROR_BYTES]);

#endif
