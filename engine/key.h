/*
 * key.h - What the store is keyed by: LSNs and Neon's 18-byte keys.
 *
 * A key names one thing of a PostgreSQL cluster (a relation block, a relation's
 * size, an SLRU page, the relation map, a directory, pg_control).  Its fields
 * follow Neon's layout (reference/neon-storage.md section 2):
 *
 *   f1 u8 | f2 u32 | f3 u32 | f4 u32 | f5 u8 | f6 u32      (18 bytes, big-endian)
 *
 * Keys sort as their big-endian bytes, so a relation's size key sorts right after
 * its blocks, and a key range is a byte range.
 */
#ifndef AR_ENGINE_KEY_H
#define AR_ENGINE_KEY_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t ar_lsn;

#define AR_LSN_INVALID ((ar_lsn)0)
#define AR_LSN_MAX ((ar_lsn)UINT64_MAX)
#define AR_PAGE_BYTES 8192
#define AR_KEY_BYTES 18
#define AR_KEY_HEX_BYTES (2 * AR_KEY_BYTES + 1)

struct ar_key {
	uint8_t f1;
	uint32_t f2;
	uint32_t f3;
	uint32_t f4;
	uint8_t f5;
	uint32_t f6;
};

/* PostgreSQL's fork numbers and the SLRU kinds Neon names. */
enum ar_fork { AR_FORK_MAIN = 0, AR_FORK_FSM = 1, AR_FORK_VM = 2, AR_FORK_INIT = 3 };
enum ar_slru { AR_SLRU_CLOG = 0, AR_SLRU_MULTIXACT_MEMBERS = 1, AR_SLRU_MULTIXACT_OFFSETS = 2 };

/* A relation as PostgreSQL names it (RelFileNode + fork). */
struct ar_rel {
	uint32_t spc_oid;
	uint32_t db_oid;
	uint32_t rel_number;
	uint8_t fork;
};

#define AR_KEY_BLOCK_SIZE_MARKER 0xFFFFFFFFu

struct ar_key ar_key_rel_block(struct ar_rel rel, uint32_t block);
struct ar_key ar_key_rel_size(struct ar_rel rel);
struct ar_key ar_key_relmap(uint32_t spc_oid, uint32_t db_oid);
struct ar_key ar_key_rel_dir(uint32_t spc_oid, uint32_t db_oid);
/* A database's relation directory is split in parts by relation number, so one
 * value stays within a page: entries of (rel_number u32 big-endian, fork u8),
 * sorted; part 0 is ar_key_rel_dir. */
#define AR_REL_DIR_PARTS 16
#define AR_REL_DIR_ENTRY_BYTES 5
struct ar_key ar_key_rel_dir_part(uint32_t spc_oid, uint32_t db_oid, uint32_t part);
uint32_t ar_rel_dir_part_of(uint32_t rel_number);
struct ar_key ar_key_db_dir(void);
struct ar_key ar_key_slru_dir(enum ar_slru kind);
struct ar_key ar_key_slru_block(enum ar_slru kind, uint32_t segno, uint32_t block);
struct ar_key ar_key_slru_seg_size(enum ar_slru kind, uint32_t segno);
/* Non-relation files a compute needs (PG_VERSION, configuration files...), by
 * path relative to the data directory: a directory key listing the paths
 * (entries of u16 big-endian length + path, sorted), and per file 8 KiB blocks
 * and a size key (u32 little-endian byte count) under FNV-1a 64 of the path. */
struct ar_key ar_key_file_dir(void);
struct ar_key ar_key_file_block(uint64_t path_hash, uint32_t block);
struct ar_key ar_key_file_size(uint64_t path_hash);
uint64_t ar_path_hash(const char *path);
/* Commit-timestamp index: per second and per hour of PostgreSQL time (seconds
 * since 2000-01-01), the newest commit in it as (timestamp i64, end LSN u64),
 * little-endian. */
struct ar_key ar_key_time_second(uint32_t second);
struct ar_key ar_key_time_hour(uint32_t hour);
struct ar_key ar_key_control_file(void);
struct ar_key ar_key_checkpoint(void);
struct ar_key ar_key_min(void);
struct ar_key ar_key_max(void);

bool ar_key_is_rel_block(const struct ar_key *key);
bool ar_key_is_rel_size(const struct ar_key *key);
/* A database's relation directory (any part). */
bool ar_key_is_rel_dir(const struct ar_key *key);

void ar_key_encode(const struct ar_key *key, uint8_t out[AR_KEY_BYTES]);
void ar_key_decode(const uint8_t in[AR_KEY_BYTES], struct ar_key *out);
int ar_key_cmp(const struct ar_key *a, const struct ar_key *b);
/* The next key in byte order (saturates at ar_key_max). */
struct ar_key ar_key_next(const struct ar_key *key);
/* 36 lower-case hex digits and a NUL. */
void ar_key_hex(const struct ar_key *key, char out[AR_KEY_HEX_BYTES]);
/* false unless exactly 36 hex digits. */
bool ar_key_from_hex(const char *hex, struct ar_key *out);

/* A half-open key range [start, end). */
struct ar_key_range {
	struct ar_key start;
	struct ar_key end;
};

bool ar_key_range_contains(const struct ar_key_range *range, const struct ar_key *key);
bool ar_key_range_overlaps(const struct ar_key_range *a, const struct ar_key_range *b);

/* ---- sharding (reference/neon-storage.md section 10) ---- */

#define AR_STRIPE_BLOCKS_DEFAULT 2048

struct ar_shard_map {
	uint32_t shard_count; /* 0 and 1 both mean unsharded */
	uint32_t stripe_blocks;
};

/* Neon's key -> shard: shard 0 unless a relation block outside the init fork of a
 * tenant with two or more shards; then murmur3's fmix32 of relnode and stripe,
 * hash-combined, modulo the count. */
uint32_t ar_shard_of_key(const struct ar_shard_map *map, const struct ar_key *key);
/* True if shard holds the key: relation sizes and directories are on every shard,
 * relation blocks on the shard the hash names, everything else on shard 0. */
bool ar_key_is_shard_local(const struct ar_shard_map *map, const struct ar_key *key,
			   uint32_t shard);

#endif
