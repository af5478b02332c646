/*
 * layer.h - Immutable layer files: delta layers (a key range x an LSN range of
 * values) and image layers (every key of a range at one LSN).
 *
 * A writer takes (key, LSN, value) in strictly increasing (key, LSN) order and
 * produces one file: a checksummed header, zstd-compressed value blocks each
 * with a crc32c, and a bulk-built B+-tree index over (key, LSN) whose nodes are
 * checksummed too.  Every stored value carries its own (key, LSN), so an index
 * entry pointing at the wrong value is caught.  The byte layout is documented in
 * engine/README.md ("Layer file format").
 *
 * A reader validates the header against the file's size and reads through the
 * page-cache interface (blockcache.h).  Bytes from disk are never trusted: any
 * inconsistency is -AR_ECORRUPT with a message naming the file and the offset
 * (lyr_reader_error), never a wrong value and never a crash.
 */
#ifndef AR_ENGINE_LAYER_H
#define AR_ENGINE_LAYER_H

#include "common/vfs.h"
#include "engine/blockcache.h"
#include "engine/key.h"
#include "engine/value.h"

#include <stdbool.h>
#include <stdint.h>

enum lyr_kind { LYR_DELTA = 1, LYR_IMAGE = 2 };

#define LYR_HEADER_BYTES 4096
#define LYR_FORMAT_VERSION 1
#define LYR_NODE_BYTES_MIN 512
#define LYR_NODE_BYTES_MAX 65536
#define LYR_NODE_BYTES_DEFAULT 4096
#define LYR_BLOCK_TARGET_BYTES_DEFAULT (32 * 1024)
/* A raw value block holds at least one value, so it is bounded by the largest value. */
#define LYR_BLOCK_RAW_BYTES_MAX (2 * AR_VALUE_BYTES_MAX + 64 * 1024)
#define LYR_NAME_BYTES 128
#define LYR_ERROR_BYTES 512

struct lyr_info {
	enum lyr_kind kind;
	struct ar_key_range keys; /* [start, end) */
	ar_lsn lsn_start;         /* delta: [start, end); image: start = the LSN, end = LSN + 1 */
	ar_lsn lsn_end;
	uint64_t value_count;
	uint64_t file_bytes;
	uint32_t index_levels;
	uint32_t index_node_bytes;
};

/* "<key start>-<key end>__<lsn start>-<lsn end>" (delta) or
 * "<key start>-<key end>__<lsn>" (image): 36 hex digits per key, 16 per LSN. */
void lyr_name(const struct lyr_info *info, char out[LYR_NAME_BYTES]);
/* Parse a name back; false if it is not a layer file name. */
bool lyr_name_parse(const char *name, struct lyr_info *info_out);

struct lyr_writer_options {
	uint32_t block_target_bytes; /* raw bytes per value block; 0 = default */
	uint32_t index_node_bytes;   /* power of two, LYR_NODE_BYTES_MIN..MAX; 0 = default */
	int zstd_level;              /* 0 = 1 */
};

struct lyr_writer;

/* Start writing a layer to path (created, truncated).  For an image layer,
 * lsn_end must be lsn_start + 1. */
__attribute__((warn_unused_result)) int lyr_writer_create(struct ar_vfs *vfs, const char *path,
							  const struct lyr_info *info,
							  const struct lyr_writer_options *options,
							  struct lyr_writer **writer_out);
/* Append one value; (key, lsn) strictly above the previous one and inside the
 * layer's ranges (asserted: a caller bug, not bad input). */
__attribute__((warn_unused_result)) int lyr_writer_append(struct lyr_writer *writer,
							  const struct ar_key *key, ar_lsn lsn,
							  const struct ar_value *value);
/* Write the last block, the index and the header, fsync; info_out gets the final facts.
 * The writer is freed either way. */
__attribute__((warn_unused_result)) int lyr_writer_finish(struct lyr_writer *writer,
							  struct lyr_info *info_out);
/* Narrow the key range's end before finishing (a writer that did not know where its
 * layer would end); every key appended must be below it (asserted). */
void lyr_writer_set_key_end(struct lyr_writer *writer, const struct ar_key *end);
/* Give up: close and free (the caller removes the file). */
void lyr_writer_abort(struct lyr_writer *writer);
uint64_t lyr_writer_bytes(const struct lyr_writer *writer);

struct lyr_reader;

/* Open and validate a layer file; file_id names it in the block cache (unique per
 * file for the life of the cache).  On -AR_ECORRUPT, err says what and where. */
__attribute__((warn_unused_result)) int lyr_reader_open(struct ar_vfs *vfs,
							struct ar_blockcache *cache,
							const char *path, uint64_t file_id,
							struct lyr_reader **reader_out,
							char err[LYR_ERROR_BYTES]);
void lyr_reader_close(struct lyr_reader *reader);
const struct lyr_info *lyr_reader_info(const struct lyr_reader *reader);
/* The message of the last -AR_ECORRUPT of this reader ("" if none). */
const char *lyr_reader_error(const struct lyr_reader *reader);

/* Called per value, in increasing order; value->data is valid only during the call.
 * A non-zero return stops the walk and is returned. */
typedef int lyr_value_fn(void *ctx, const struct ar_key *key, ar_lsn lsn,
			 const struct ar_value *value);

/* Every value of key with LSN below lsn_below, oldest first. */
__attribute__((warn_unused_result)) int lyr_reader_get(struct lyr_reader *reader,
						       const struct ar_key *key, ar_lsn lsn_below,
						       lyr_value_fn *fn, void *ctx);
/* A value block of a layer, as the index names it (a batched read's unit). */
struct lyr_block_ref {
	struct lyr_reader *reader;
	uint64_t offset;
	uint32_t bytes;
};
/* The value blocks holding key's values below lsn_below, from the index alone
 * (index nodes are read, value blocks are not): up to max distinct blocks into
 * refs, newest value's block first; *count_out of them.  0 blocks: the layer has
 * no such value. */
__attribute__((warn_unused_result)) int lyr_reader_locate(struct lyr_reader *reader,
							  const struct ar_key *key,
							  ar_lsn lsn_below,
							  struct lyr_block_ref *refs, uint32_t max,
							  uint32_t *count_out);
/* Read the blocks of refs (of readers sharing vfs and cache) that are not cached,
 * in batches of one vectored submission each (ar_vfs_read_batch), verify and
 * decompress them, and put them in the cache.  Best effort: a block that fails
 * is left for the ordinary read to meet and report.  *read_out: blocks read,
 * *batches_out: submissions. */
void lyr_load_blocks(struct ar_vfs *vfs, const struct lyr_block_ref *refs, uint32_t n,
		     uint32_t *read_out, uint32_t *batches_out);

/* Every value of the layer in (key, LSN) order. */
__attribute__((warn_unused_result)) int lyr_reader_scan(struct lyr_reader *reader, lyr_value_fn *fn,
							void *ctx);
/* The same walk over the index alone: fn gets each (key, LSN) with value NULL,
 * and no value block is read. */
__attribute__((warn_unused_result)) int lyr_reader_scan_keys(struct lyr_reader *reader,
							     lyr_value_fn *fn, void *ctx);

/* A pull cursor over every value of a layer in (key, LSN) order, for k-way merges.
 * It has its own leaf buffer and copies each value, so lookups on the same reader
 * and other readers' use of the shared block cache may run between its steps. */
struct lyr_cursor;
__attribute__((warn_unused_result)) int lyr_cursor_open(struct lyr_reader *reader,
							struct lyr_cursor **cursor_out);
/* 1 and the next value, 0 at the end, or an error (-AR_ECORRUPT: lyr_reader_error). */
__attribute__((warn_unused_result)) int lyr_cursor_next(struct lyr_cursor *cursor,
							struct ar_key *key, ar_lsn *lsn,
							struct ar_value *value);
void lyr_cursor_close(struct lyr_cursor *cursor);

#endif
