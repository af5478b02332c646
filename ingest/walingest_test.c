/*
 * walingest_test.c - Records into the store, checked value by value on the
 * simulated disk: routing to shards (blocks to their owner, sizes everywhere,
 * metadata to shard 0), clog bits of commits, aborts, subtransactions and
 * two-phase commits, multixact offsets (with the next one's) and members,
 * relations dropped by an abort, visibility-map bits cleared by heap records,
 * block references and checkpoints that would overwrite other keys refused.
 * Record layouts are PostgreSQL 15's; the whole-cluster comparison against a
 * real standby is tests/integration/010_wal_oracle.py.
 */
#include "common/bytes.h"
#include "common/err.h"
#include "common/vfs.h"
#include "engine/applier.h"
#include "engine/tenant.h"
#include "ingest/walingest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define SHARDS 2

struct fx {
	struct ar_vfs *vfs;
	struct ar_blockcache *cache;
	struct ar_applier applier;
	struct tl_env env;
	struct ar_tenant *tenants[SHARDS];
	struct ar_timeline *tl[SHARDS];
	struct walingest *wi;
	ar_lsn lsn;
};

static struct fx F;
static const struct tl_id tl_one = { { 1 } };

static int setup(void **state)
{
	(void)state;
	memset(&F, 0, sizeof(F));
	assert_int_equal(ar_vfs_sim_create(7, &F.vfs), 0);
	assert_int_equal(ar_blockcache_create(1 << 20, &F.cache), 0);
	ar_applier_init(&F.applier, NULL);
	F.env = (struct tl_env){ .vfs = F.vfs,
				 .cache = F.cache,
				 .redo = &F.applier.redo,
				 .checkpoint_distance_bytes = 1 << 20 };
	struct wi_target t = { .map = { .shard_count = SHARDS, .stripe_blocks = 8 } };
	for (uint32_t s = 0; s < SHARDS; s++) {
		char dir[32];
		snprintf(dir, sizeof(dir), "/t%u", s);
		struct tenant_params p = { .shards = t.map, .shard_number = s };
		assert_int_equal(tenant_create(&F.env, dir, &p, &F.tenants[s]), 0);
		assert_int_equal(tenant_timeline_create(F.tenants[s], &tl_one, 0x1000000, &F.tl[s]),
				 0);
		t.shards[s] = F.tl[s];
	}
	assert_int_equal(wi_create(&t, &F.wi), 0);
	F.lsn = 0x1000000;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	wi_destroy(F.wi);
	for (uint32_t s = 0; s < SHARDS; s++)
		tenant_close(F.tenants[s]);
	ar_blockcache_destroy(F.cache);
	ar_vfs_destroy(F.vfs);
	return 0;
}

/* A record of rmgr/info with main data; blocks added by the caller. */
static struct wal_record record(uint8_t rmid, uint8_t info, uint32_t xid, const uint8_t *main,
				uint32_t len)
{
	static uint8_t raw[64];
	struct wal_record r;
	memset(&r, 0, sizeof(r));
	F.lsn += 0x100;
	r.lsn = F.lsn;
	r.end_lsn = F.lsn + 0x80;
	r.rmid = rmid;
	r.info = info;
	r.xid = xid;
	r.max_block_id = -1;
	r.main_data = main;
	r.main_data_len = len;
	r.raw = raw;
	r.tot_len = sizeof(raw);
	return r;
}

static void add_image(struct wal_record *r, struct ar_rel rel, uint32_t blk, const uint8_t *page)
{
	struct wal_block *b = &r->blocks[++r->max_block_id];
	*b = (struct wal_block){ .in_use = true,
				 .rel = rel,
				 .blkno = blk,
				 .has_image = true,
				 .apply_image = true,
				 .image = page,
				 .image_len = AR_PAGE_BYTES };
}

static void ingest(const struct wal_record *r)
{
	int rc = wi_record(F.wi, r);
	if (rc < 0)
		fail_msg("wi_record: %s", wi_error(F.wi));
}

static int get(uint32_t shard, struct ar_key k, uint8_t out[AR_PAGE_BYTES])
{
	uint32_t len = 0;
	return tl_get(F.tl[shard], &k, tl_last_record_lsn(F.tl[shard]), out, &len);
}

static void test_routing(void **state)
{
	(void)state;
	static uint8_t page[AR_PAGE_BYTES];
	struct ar_rel rel = { 1663, 5, 16384, AR_FORK_MAIN };
	struct ar_shard_map map = { SHARDS, 8 };
	uint32_t blk[SHARDS], found = 0;
	/* One block owned by each shard. */
	for (uint32_t b = 0; found < SHARDS && b < 10000; b += 8) {
		struct ar_key k = ar_key_rel_block(rel, b);
		uint32_t s = ar_shard_of_key(&map, &k);
		if (!(found & (1u << s))) {
			blk[s] = b;
			found |= 1u << s;
		}
	}
	assert_int_equal(found, (1u << SHARDS) - 1);
	memset(page, 0x5A, sizeof(page));
	struct wal_record r = record(WAL_RM_HEAP, 0x00, 7, (const uint8_t *)"\x01\x00\x00", 3);
	add_image(&r, rel, blk[0], page);
	add_image(&r, rel, blk[1], page);
	ingest(&r);
	uint8_t out[AR_PAGE_BYTES];
	uint32_t want = (blk[0] > blk[1] ? blk[0] : blk[1]) + 1, n;
	for (uint32_t s = 0; s < SHARDS; s++) {
		assert_int_equal(get(s, ar_key_rel_block(rel, blk[s]), out), 0);
		assert_int_equal(ar_get_le32(out + 4), (uint32_t)r.end_lsn); /* pd_lsn set */
		assert_memory_equal(out + 8, page + 8, AR_PAGE_BYTES - 8);
		assert_int_equal(get(s, ar_key_rel_block(rel, blk[1 - s]), out), -AR_ENOKEY);
		assert_int_equal(tl_rel_nblocks(F.tl[s], rel, r.end_lsn, &n), 0);
		assert_int_equal(n, want); /* sizes on every shard */
	}
	/* Relation directories are on every shard too (a shard copies its share of a
	 * database's relations by them), the same on each. */
	uint8_t out1[AR_PAGE_BYTES];
	struct ar_key dir = ar_key_rel_dir_part(1663, 5, ar_rel_dir_part_of(16384));
	assert_int_equal(get(0, dir, out), 0);
	assert_int_equal(get(1, dir, out1), 0);
	assert_memory_equal(out, out1, 5);
	assert_true(ar_key_is_shard_local(&map, &dir, 1));
}

/* Status of xid on the clog page read back. */
static int clog_status(const uint8_t *clog, uint32_t xid)
{
	return (clog[xid / 4] >> (2 * (xid % 4))) & 3;
}

static void test_clog(void **state)
{
	(void)state;
	uint8_t pageno[4] = { 0 }, m[64], out[AR_PAGE_BYTES];
	struct wal_record z = record(WAL_RM_CLOG, 0x00, 0, pageno, 4); /* CLOG_ZEROPAGE 0 */
	ingest(&z);
	/* COMMIT with xinfo SUBXACTS: xid 100, subxacts 101, 102. */
	memset(m, 0, sizeof(m));
	ar_put_le32(m + 8, 1u << 1);
	ar_put_le32(m + 12, 2);
	ar_put_le32(m + 16, 101);
	ar_put_le32(m + 20, 102);
	struct wal_record c = record(WAL_RM_XACT, 0x80 | 0x00, 100, m, 24);
	ingest(&c);
	/* ABORT of 103 with subxact 104. */
	ar_put_le32(m + 16, 104);
	ar_put_le32(m + 12, 1);
	struct wal_record a = record(WAL_RM_XACT, 0x80 | 0x20, 103, m, 20);
	ingest(&a);
	/* COMMIT_PREPARED (xinfo TWOPHASE) of 105, logged by another transaction. */
	memset(m, 0, sizeof(m));
	ar_put_le32(m + 8, 1u << 4);
	ar_put_le32(m + 12, 105);
	struct wal_record p = record(WAL_RM_XACT, 0x80 | 0x30, 0, m, 16);
	ingest(&p);
	assert_int_equal(get(0, ar_key_slru_block(AR_SLRU_CLOG, 0, 0), out), 0);
	int want[] = { [99] = 0,  [100] = 1, [101] = 1, [102] = 1,
		       [103] = 2, [104] = 2, [105] = 1, [106] = 0 };
	for (uint32_t x = 99; x <= 106; x++)
		assert_int_equal(clog_status(out, x), want[x]);
	/* The commit-time index knows the first commit (xact_time 0 in this record). */
	ar_lsn at;
	assert_int_equal(wi_lsn_for_time(F.tl[0], 0, tl_last_record_lsn(F.tl[0]), &at), 0);
	assert_true(at == c.end_lsn || at == p.end_lsn);
}

static void test_multixact(void **state)
{
	(void)state;
	uint8_t pageno[4] = { 0 }, m[12 + 3 * 8], out[AR_PAGE_BYTES];
	struct wal_record z1 = record(WAL_RM_MULTIXACT, 0x00, 0, pageno, 4);
	ingest(&z1);
	struct wal_record z2 = record(WAL_RM_MULTIXACT, 0x10, 0, pageno, 4);
	ingest(&z2);
	/* Multixact 5 at member offset 3 with three members. */
	ar_put_le32(m, 5);
	ar_put_le32(m + 4, 3);
	ar_put_le32(m + 8, 3);
	for (uint32_t i = 0; i < 3; i++) {
		ar_put_le32(m + 12 + 8 * i, 200 + i); /* xid */
		ar_put_le32(m + 16 + 8 * i, i + 1);   /* status */
	}
	struct wal_record c = record(WAL_RM_MULTIXACT, 0x20, 0, m, sizeof(m));
	ingest(&c);
	assert_int_equal(get(0, ar_key_slru_block(AR_SLRU_MULTIXACT_OFFSETS, 0, 0), out), 0);
	assert_int_equal(ar_get_le32(out + 5 * 4), 3);
	assert_int_equal(ar_get_le32(out + 6 * 4), 6); /* the next multixact's offset */
	assert_int_equal(get(0, ar_key_slru_block(AR_SLRU_MULTIXACT_MEMBERS, 0, 0), out), 0);
	/* Offsets 3, 4, 5: group 0 (flags at 0, xids from 4) and group 1 (at 20). */
	assert_int_equal(out[3], 1);
	assert_int_equal(ar_get_le32(out + 4 + 3 * 4), 200);
	assert_int_equal(out[20 + 0], 2);
	assert_int_equal(ar_get_le32(out + 24), 201);
	assert_int_equal(out[20 + 1], 3);
	assert_int_equal(ar_get_le32(out + 28), 202);
}

static void test_abort_drops_relation(void **state)
{
	(void)state;
	static uint8_t page[AR_PAGE_BYTES];
	struct ar_rel rel = { 1663, 5, 16500, AR_FORK_MAIN };
	uint8_t pageno[4] = { 0 };
	struct wal_record z = record(WAL_RM_CLOG, 0x00, 0, pageno, 4);
	ingest(&z);
	struct wal_record w = record(WAL_RM_HEAP, 0x00, 300, (const uint8_t *)"\x01\x00\x00", 3);
	add_image(&w, rel, 0, page);
	ingest(&w);
	uint8_t m[32];
	memset(m, 0, sizeof(m));
	ar_put_le32(m + 8, 1u << 2); /* RELFILENODES */
	ar_put_le32(m + 12, 1);
	ar_put_le32(m + 16, 1663);
	ar_put_le32(m + 20, 5);
	ar_put_le32(m + 24, 16500);
	struct wal_record a = record(WAL_RM_XACT, 0x80 | 0x20, 300, m, 28);
	ingest(&a);
	assert_int_equal(tl_rel_exists(F.tl[0], rel, w.end_lsn), 0);
	assert_int_equal(tl_rel_exists(F.tl[0], rel, a.end_lsn), -AR_ENOKEY);
	assert_int_equal(tl_rel_exists(F.tl[1], rel, a.end_lsn), -AR_ENOKEY);
}

static void test_vm_clear(void **state)
{
	(void)state;
	static uint8_t vm[AR_PAGE_BYTES], heap[AR_PAGE_BYTES];
	struct ar_rel rel = { 1663, 5, 16600, AR_FORK_MAIN }, vmrel = rel;
	vmrel.fork = AR_FORK_VM;
	memset(vm + 24, 0xFF, AR_PAGE_BYTES - 24); /* every block all-visible and frozen */
	struct wal_record v = record(WAL_RM_HEAP2, 0x40, 0, (const uint8_t *)"\0\0\0\0\0", 5);
	add_image(&v, vmrel, 0, vm);
	ingest(&v);
	/* heap INSERT on block 5 with XLH_INSERT_ALL_VISIBLE_CLEARED (flags at byte 2). */
	struct wal_record i = record(WAL_RM_HEAP, 0x00, 400, (const uint8_t *)"\x01\x00\x01", 3);
	add_image(&i, rel, 5, heap);
	ingest(&i);
	uint8_t out[AR_PAGE_BYTES];
	struct ar_key k = ar_key_rel_block(vmrel, 0);
	uint32_t owner = ar_shard_of_key(&(struct ar_shard_map){ SHARDS, 8 }, &k), len;
	assert_int_equal(tl_get(F.tl[owner], &k, tl_last_record_lsn(F.tl[owner]), out, &len), 0);
	assert_int_equal(out[24 + 1], 0xF3); /* block 5: bits 2-3 of byte 1 cleared */
	assert_int_equal(out[24], 0xFF);
	assert_int_equal(out[24 + 2], 0xFF);
}

/* Found by walingest_fuzz: a block reference to block 0xFFFFFFFF put its page at the
 * relation's size key (relation number 0: at the relation map or a directory), and a
 * checkpoint record over 4 MiB aborted in the value encoder.  All refused now, with
 * nothing stored. */
static void test_refuses_non_relation_keys(void **state)
{
	(void)state;
	static uint8_t page[AR_PAGE_BYTES], big[AR_PAGE_BYTES + 1];
	struct ar_rel rel = { 1663, 5, 16700, AR_FORK_MAIN }, zero = { 1663, 5, 0, AR_FORK_MAIN };
	struct wal_record ok = record(WAL_RM_HEAP, 0x00, 0, (const uint8_t *)"\x01\x00\x00", 3);
	add_image(&ok, rel, 0, page);
	ingest(&ok);
	struct wal_record r = record(WAL_RM_XLOG, 0xB0, 0, NULL, 0); /* XLOG_FPI */
	add_image(&r, rel, 0xFFFFFFFFu, page);
	assert_int_equal(wi_record(F.wi, &r), -AR_ECORRUPT);
	assert_non_null(strstr(wi_error(F.wi), "not a relation block"));
	r = record(WAL_RM_XLOG, 0xB0, 0, NULL, 0);
	add_image(&r, zero, 0, page);
	assert_int_equal(wi_record(F.wi, &r), -AR_ECORRUPT);
	r = record(WAL_RM_XLOG, 0x10, 0, big, sizeof(big)); /* CHECKPOINT_ONLINE */
	assert_int_equal(wi_record(F.wi, &r), -AR_ECORRUPT);
	uint32_t n;
	assert_int_equal(tl_last_record_lsn(F.tl[0]), ok.end_lsn);
	assert_int_equal(tl_rel_nblocks(F.tl[0], rel, ok.end_lsn, &n), 0);
	assert_int_equal(n, 1);
}

/* A clog truncation after xid wraparound keeps the newest segments (low numbers)
 * and drops those preceding the cutoff, in PostgreSQL's circular order. */
static void test_clog_truncate_wraparound(void **state)
{
	(void)state;
	uint32_t pages[] = { 4000 * 32, 4005 * 32, 0 };
	uint8_t m[12];
	for (int i = 0; i < 3; i++) {
		ar_put_le32(m, pages[i]);
		struct wal_record z = record(WAL_RM_CLOG, 0x00, 0, m, 4);
		ingest(&z);
	}
	ar_put_le32(m, 4005 * 32); /* the cutoff page */
	ar_put_le32(m + 4, 4005u * 32 * 32768);
	ar_put_le32(m + 8, 5);
	struct wal_record t = record(WAL_RM_CLOG, 0x10, 0, m, 12);
	ingest(&t);
	uint8_t out[AR_PAGE_BYTES];
	uint32_t len = 0;
	struct ar_key k = ar_key_slru_seg_size(AR_SLRU_CLOG, 4000);
	assert_int_equal(tl_get(F.tl[0], &k, t.end_lsn, out, &len), 0);
	assert_int_equal(len, 0); /* dropped */
	k = ar_key_slru_seg_size(AR_SLRU_CLOG, 4005);
	assert_int_equal(tl_get(F.tl[0], &k, t.end_lsn, out, &len), 0);
	assert_int_equal(len, 4);
	k = ar_key_slru_seg_size(AR_SLRU_CLOG, 0);
	assert_int_equal(tl_get(F.tl[0], &k, t.end_lsn, out, &len), 0);
	assert_int_equal(len, 4); /* newer than the cutoff, after wraparound */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clog_truncate_wraparound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multixact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_drops_relation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vm_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_non_relation_keys, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
