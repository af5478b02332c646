/*
 * key.c - Key constructors, the 18-byte encoding, ordering, hex names, and
 * Neon's key-to-shard function.
 *
 * Invariant: ar_key_cmp orders exactly as memcmp of the encodings (key_test).
 */
#include "engine/key.h"

#include "common/pagestream.h"
#include "common/bytes.h"

#include <stdio.h>
#include <string.h>

static struct ar_key key_make(uint8_t f1, uint32_t f2, uint32_t f3, uint32_t f4, uint8_t f5,
			      uint32_t f6)
{
	return (struct ar_key){ .f1 = f1, .f2 = f2, .f3 = f3, .f4 = f4, .f5 = f5, .f6 = f6 };
}

struct ar_key ar_key_rel_block(struct ar_rel rel, uint32_t block)
{
	return key_make(0, rel.spc_oid, rel.db_oid, rel.rel_number, rel.fork, block);
}

struct ar_key ar_key_rel_size(struct ar_rel rel)
{
	return key_make(0, rel.spc_oid, rel.db_oid, rel.rel_number, rel.fork,
			AR_KEY_BLOCK_SIZE_MARKER);
}

struct ar_key ar_key_relmap(uint32_t spc_oid, uint32_t db_oid)
{
	return key_make(0, spc_oid, db_oid, 0, 0, 0);
}

struct ar_key ar_key_rel_dir(uint32_t spc_oid, uint32_t db_oid)
{
	return key_make(0, spc_oid, db_oid, 0, 0, 1);
}

struct ar_key ar_key_rel_dir_part(uint32_t spc_oid, uint32_t db_oid, uint32_t part)
{
	assert(part < AR_REL_DIR_PARTS);
	return key_make(0, spc_oid, db_oid, 0, (uint8_t)part, 1);
}

uint32_t ar_rel_dir_part_of(uint32_t rel_number)
{
	return (rel_number * 0x9E3779B1u) >> 28; /* Fibonacci hash: top 4 bits */
}

struct ar_key ar_key_db_dir(void)
{
	return key_make(0, 0, 0, 0, 0, 0);
}

struct ar_key ar_key_slru_dir(enum ar_slru kind)
{
	return key_make(1, (uint32_t)kind, 0, 0, 0, 0);
}

struct ar_key ar_key_slru_block(enum ar_slru kind, uint32_t segno, uint32_t block)
{
	return key_make(1, (uint32_t)kind, 1, segno, 0, block);
}

struct ar_key ar_key_slru_seg_size(enum ar_slru kind, uint32_t segno)
{
	return key_make(1, (uint32_t)kind, 1, segno, 0, AR_KEY_BLOCK_SIZE_MARKER);
}

struct ar_key ar_key_file_dir(void)
{
	return key_make(4, 0, 0, 0, 0, 0);
}

struct ar_key ar_key_file_block(uint64_t path_hash, uint32_t block)
{
	return key_make(4, 1, (uint32_t)(path_hash >> 32), (uint32_t)path_hash, 0, block);
}

struct ar_key ar_key_file_size(uint64_t path_hash)
{
	return ar_key_file_block(path_hash, AR_KEY_BLOCK_SIZE_MARKER);
}

uint64_t ar_path_hash(const char *path)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return h;
}

struct ar_key ar_key_time_second(uint32_t second)
{
	return key_make(5, 0, 0, 0, 0, second);
}

struct ar_key ar_key_time_hour(uint32_t hour)
{
	return key_make(5, 0, 0, 0, 1, hour);
}

struct ar_key ar_key_control_file(void)
{
	return key_make(3, 0, 0, 0, 0, 0);
}

struct ar_key ar_key_checkpoint(void)
{
	return key_make(3, 0, 0, 0, 0, 1);
}

struct ar_key ar_key_min(void)
{
	return key_make(0, 0, 0, 0, 0, 0);
}

struct ar_key ar_key_max(void)
{
	return key_make(0xFF, UINT32_MAX, UINT32_MAX, UINT32_MAX, 0xFF, UINT32_MAX);
}

bool ar_key_is_rel_block(const struct ar_key *key)
{
	/* Relation keys have a non-zero relation number; f6 is the block, below the marker. */
	return key->f1 == 0 && key->f4 != 0 && key->f6 != AR_KEY_BLOCK_SIZE_MARKER;
}

bool ar_key_is_rel_size(const struct ar_key *key)
{
	return key->f1 == 0 && key->f4 != 0 && key->f6 == AR_KEY_BLOCK_SIZE_MARKER;
}

bool ar_key_is_rel_dir(const struct ar_key *key)
{
	return key->f1 == 0 && key->f2 != 0 && key->f4 == 0 && key->f6 == 1;
}

void ar_key_encode(const struct ar_key *key, uint8_t out[AR_KEY_BYTES])
{
	out[0] = key->f1;
	ar_put_be32(out + 1, key->f2);
	ar_put_be32(out + 5, key->f3);
	ar_put_be32(out + 9, key->f4);
	out[13] = key->f5;
	ar_put_be32(out + 14, key->f6);
}

void ar_key_decode(const uint8_t in[AR_KEY_BYTES], struct ar_key *out)
{
	out->f1 = in[0];
	out->f2 = ar_get_be32(in + 1);
	out->f3 = ar_get_be32(in + 5);
	out->f4 = ar_get_be32(in + 9);
	out->f5 = in[13];
	out->f6 = ar_get_be32(in + 14);
}

static int cmp_u32(uint32_t a, uint32_t b)
{
	return a < b ? -1 : a > b ? 1 : 0;
}

int ar_key_cmp(const struct ar_key *a, const struct ar_key *b)
{
	int c = cmp_u32(a->f1, b->f1);
	if (c == 0)
		c = cmp_u32(a->f2, b->f2);
	if (c == 0)
		c = cmp_u32(a->f3, b->f3);
	if (c == 0)
		c = cmp_u32(a->f4, b->f4);
	if (c == 0)
		c = cmp_u32(a->f5, b->f5);
	if (c == 0)
		c = cmp_u32(a->f6, b->f6);
	return c;
}

struct ar_key ar_key_next(const struct ar_key *key)
{
	uint8_t b[AR_KEY_BYTES];
	struct ar_key next;

	ar_key_encode(key, b);
	for (int i = AR_KEY_BYTES - 1; i >= 0; i--) {
		if (b[i] != 0xFF) {
			b[i]++;
			ar_key_decode(b, &next);
			return next;
		}
		b[i] = 0;
	}
	return ar_key_max();
}

void ar_key_hex(const struct ar_key *key, char out[AR_KEY_HEX_BYTES])
{
	static const char digits[] = "0123456789abcdef";
	uint8_t b[AR_KEY_BYTES];

	ar_key_encode(key, b);
	for (int i = 0; i < AR_KEY_BYTES; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 0xF];
	}
	out[2 * AR_KEY_BYTES] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool ar_key_from_hex(const char *hex, struct ar_key *out)
{
	uint8_t b[AR_KEY_BYTES];

	for (int i = 0; i < AR_KEY_BYTES; i++) {
		int hi = hex_digit(hex[2 * i]);
		if (hi < 0)
			return false;
		int lo = hex_digit(hex[2 * i + 1]);
		if (lo < 0)
			return false;
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	if (hex[2 * AR_KEY_BYTES] != '\0')
		return false;
	ar_key_decode(b, out);
	return true;
}

bool ar_key_range_contains(const struct ar_key_range *range, const struct ar_key *key)
{
	return ar_key_cmp(&range->start, key) <= 0 && ar_key_cmp(key, &range->end) < 0;
}

bool ar_key_range_overlaps(const struct ar_key_range *a, const struct ar_key_range *b)
{
	return ar_key_cmp(&a->start, &b->end) < 0 && ar_key_cmp(&b->start, &a->end) < 0;
}

uint32_t ar_shard_of_key(const struct ar_shard_map *map, const struct ar_key *key)
{
	if (map->shard_count < 2)
		return 0;
	if (!ar_key_is_rel_block(key))
		return 0;
	uint32_t stripe = map->stripe_blocks ? map->stripe_blocks : AR_STRIPE_BLOCKS_DEFAULT;
	return ps_shard_of_block(map->shard_count, stripe, key->f4, key->f5, key->f6);
}

bool ar_key_is_shard_local(const struct ar_shard_map *map, const struct ar_key *key, uint32_t shard)
{
	if (ar_key_is_rel_size(key) || ar_key_is_rel_dir(key))
		return true; /* every shard keeps relation sizes and directories (a shard
			      * copies its share of a database's relations by them); shard
			      * 0's are authoritative */
	return ar_shard_of_key(map, key) == shard;
}
