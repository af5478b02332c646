/*
 * walrec.h - PostgreSQL 15 WAL, decoded for Argon: the record format (header,
 * block references, full-page images, main data) and a page-by-page reader that
 * reassembles records across pages and segments.  Written for Argon from the
 * format's facts (access/xlogrecord.h, access/xlog_internal.h); no PostgreSQL
 * code.  Pure functions of their buffers: fuzzed (walrec_fuzz.c).
 *
 * Integers inside WAL are in the host's byte order; Argon supports little-endian
 * hosts only (x86-64, arm64), like the primaries it reads from.
 */
#ifndef AR_INGEST_WALREC_H
#define AR_INGEST_WALREC_H

#include "engine/key.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAL_PAGE_BYTES 8192
#define WAL_PAGE_MAGIC 0xD110 /* PostgreSQL 15 */
#define WAL_RECORD_HEADER_BYTES 24
#define WAL_SHORT_PAGE_HEADER_BYTES 24
#define WAL_LONG_PAGE_HEADER_BYTES 40
#define WAL_MAX_BLOCK_ID 32
#define WAL_RECORD_BYTES_MAX (1024u * 1024 * 1024) /* PostgreSQL's own limit */

/* xlp_info */
#define WAL_XLP_FIRST_IS_CONTRECORD 0x0001
#define WAL_XLP_LONG_HEADER 0x0002
#define WAL_XLP_BKP_REMOVABLE 0x0004
#define WAL_XLP_FIRST_IS_OVERWRITE_CONTRECORD 0x0008
/* block image flags */
#define WAL_BKPIMAGE_HAS_HOLE 0x01
#define WAL_BKPIMAGE_APPLY 0x02
#define WAL_BKPIMAGE_COMPRESS_PGLZ 0x04
#define WAL_BKPIMAGE_COMPRESS_LZ4 0x08
#define WAL_BKPIMAGE_COMPRESS_ZSTD 0x10

enum wal_rmgr {
	WAL_RM_XLOG = 0,
	WAL_RM_XACT,
	WAL_RM_SMGR,
	WAL_RM_CLOG,
	WAL_RM_DBASE,
	WAL_RM_TBLSPC,
	WAL_RM_MULTIXACT,
	WAL_RM_RELMAP,
	WAL_RM_STANDBY,
	WAL_RM_HEAP2,
	WAL_RM_HEAP,
	WAL_RM_BTREE,
	WAL_RM_HASH,
	WAL_RM_GIN,
	WAL_RM_GIST,
	WAL_RM_SEQ,
	WAL_RM_SPGIST,
	WAL_RM_BRIN,
	WAL_RM_COMMIT_TS,
	WAL_RM_REPLORIGIN,
	WAL_RM_GENERIC,
	WAL_RM_LOGICALMSG,
	WAL_RM_COUNT,
};

#define WAL_XLOG_SWITCH 0x40 /* XLOG info: the rest of the segment is unused */

struct wal_block {
	bool in_use;
	uint8_t fork_flags;
	struct ar_rel rel;
	uint32_t blkno;
	bool has_image;
	bool apply_image;
	bool will_init;
	bool has_data;
	const uint8_t *image; /* as stored: compressed, or without its hole */
	uint16_t image_len;
	uint16_t hole_offset;
	uint16_t hole_length;
	uint8_t bimg_info;
	const uint8_t *data;
	uint16_t data_len;
};

struct wal_record {
	ar_lsn lsn;     /* where the record starts */
	ar_lsn end_lsn; /* its end, MAXALIGNed: PostgreSQL's EndRecPtr, what pd_lsn says */
	uint32_t tot_len;
	const uint8_t *raw; /* the whole record, tot_len bytes */
	uint32_t xid;
	ar_lsn prev;
	uint8_t info;
	uint8_t rmid;
	bool has_origin;
	uint16_t origin;
	bool has_toplevel_xid;
	uint32_t toplevel_xid;
	int max_block_id; /* -1: no block references */
	struct wal_block blocks[WAL_MAX_BLOCK_ID + 1];
	const uint8_t *main_data;
	uint32_t main_data_len;
	uint32_t fpi_bytes; /* stored image bytes, as pg_waldump's "fpi" length */
};

const char *wal_rmgr_name(uint8_t rmid);

/* A record's CRC-32C as PostgreSQL computes it: the bytes after the 24-byte
 * header, then the header up to xl_crc (byte 20).  len >= the header. */
uint32_t wal_record_crc(const uint8_t *rec, uint32_t len);

/* Decode one whole record (tot_len bytes, header first) into out; pointers refer
 * into rec.  The CRC is checked first.  -AR_ECORRUPT with err saying what. */
__attribute__((warn_unused_result)) int wal_record_decode(const uint8_t *rec, size_t len,
							  struct wal_record *out, char err[160]);

/* Rebuild the full 8 KiB page of a block's image (hole filled with zeros,
 * decompressed: pglz, lz4 or zstd). */
__attribute__((warn_unused_result)) int wal_block_image(const struct wal_block *b,
							uint8_t page[AR_PAGE_BYTES], char err[160]);

/* ---- the reader ---- */

/* Called for every complete, verified record; a non-zero return stops the reader. */
typedef int wal_record_fn(void *ctx, const struct wal_record *rec);

struct wal_reader;

/* Start reading at start_lsn (a record boundary, or a segment/page start: a
 * continuation there is skipped).  seg_bytes: the cluster's segment size. */
__attribute__((warn_unused_result)) int wal_reader_create(ar_lsn start_lsn, uint32_t seg_bytes,
							  struct wal_reader **out);
void wal_reader_destroy(struct wal_reader *r);
/* Feed the next page (at page_lsn, consecutive).  Returns 0, AR_WAL_END for a clean
 * end of WAL (a recycled or zeroed page: nothing more to read), or an error with
 * wal_reader_error() naming the LSN. */
#define AR_WAL_END 1
__attribute__((warn_unused_result)) int wal_reader_page(struct wal_reader *r, const uint8_t *page,
							ar_lsn page_lsn, wal_record_fn *fn,
							void *ctx);
/* The page at page_lsn of which only the first `valid` bytes are known yet
 * (0..WAL_PAGE_BYTES; the rest may be zeros that mean nothing).  Records wholly
 * inside the valid bytes go to fn.  Returns AR_WAL_MORE when the page must be fed
 * again (same page_lsn, valid at least as large) before the next page; 0 when the
 * page is done; AR_WAL_END or an error as wal_reader_page.  Feeding the same page
 * again resumes where the last call stopped: no record is handed over twice.
 * Feeding another page (or fewer bytes) after AR_WAL_MORE is refused: -EINVAL.
 * A non-zero return of fn ends the call, as in wal_reader_page.  wal_reader_page
 * is this with valid == WAL_PAGE_BYTES, which never waits. */
#define AR_WAL_MORE 2
__attribute__((warn_unused_result)) int wal_reader_page_part(struct wal_reader *r,
							     const uint8_t *page, ar_lsn page_lsn,
							     uint32_t valid, wal_record_fn *fn,
							     void *ctx);
const char *wal_reader_error(const struct wal_reader *r);
/* The LSN the next record starts at (for resuming). */
ar_lsn wal_reader_next_lsn(const struct wal_reader *r);
uint64_t wal_reader_system_id(const struct wal_reader *r);
/* Segments of any other database system are then an error. */
void wal_reader_expect_system(struct wal_reader *r, uint64_t system_id);

#endif
