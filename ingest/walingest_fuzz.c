/*
 * walingest_fuzz.c - libFuzzer target for the ingest's record handlers: each
 * input becomes one decoded record (struct wal_record, built directly: no CRC
 * at this level) handed to wi_record over a root timeline on the simulated disk
 * (one shard, the applier without PostgreSQL's redo).  A record may be refused
 * with an error, never crash, leak or read outside its bytes; after an error a
 * known-good record (the canary) must still be stored and read back.
 *
 * Input layout (integers little-endian):
 *   0      rmid (mod WAL_RM_COUNT)
 *   1      info
 *   2..5   xid
 *   6      bits 0-1: block references (0-2; 3 means none); bit 2: read back the
 *          keys the record touched; bit 3: the commit-timestamp lookup; bit 4:
 *          a fresh ingest on the same timeline afterwards (caches reloaded);
 *          bit 5: the same record again (must be skipped once stored)
 *   then per block reference, 4 bytes:
 *     b0   bits 0-2: relation (fz_rels: pg_default, pg_global, a user
 *          tablespace, relation number 0); bits 3-4: fork; bit 5: image;
 *          bit 6: will_init; bit 7: fork + 4 (beyond PostgreSQL's forks)
 *     b1   block number (0-255)
 *     b2   bits 0-1: image kind (0 a full 8 KiB page, 1 a page with a hole,
 *          2 pglz, 3 lz4 or zstd (bit 2): the main data's bytes as the image);
 *          bit 3: block number 0xFFFFFFFF; bits 4-7: where the hole starts
 *     b3   the byte the page image is filled with
 *   the rest: the main data.  raw/tot_len are the whole input.
 *
 * Each (re)built world starts with a few records (clog and multixact page 0,
 * databases 1 and 5, two relations) so commits, multixacts and copies reach
 * past their first checks.  End LSNs strictly increase across inputs.  The
 * timeline and ingest are rebuilt every FZ_INPUTS_MAX inputs, past a memory
 * bound, or after an error other than a refused record.
 */
#include "common/assert.h"
#include "common/bytes.h"
#include "common/err.h"
#include "common/vfs.h"
#include "engine/applier.h"
#include "engine/timeline.h"
#include "ingest/walingest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_DIR "/tl"
#define FZ_HEADER_BYTES 7
#define FZ_BLOCK_BYTES 4
#define FZ_BLOCKS_MAX 2
#define FZ_INPUTS_MAX 2000
#define FZ_PUTS_MAX 200000
#define FZ_SIM_BYTES_MAX (64u << 20)
#define FZ_START_LSN 0x1000000
#define FZ_CLOG_XACTS_PER_PAGE (AR_PAGE_BYTES * 4)
#define FZ_SLRU_PAGES_PER_SEGMENT 32

enum {
	FZ_READ_BACK = 1 << 2,
	FZ_TIME_LOOKUP = 1 << 3,
	FZ_REOPEN = 1 << 4,
	FZ_REPLAY = 1 << 5,
};

static const struct ar_rel fz_rels[8] = {
	{ 1663, 5, 16384, AR_FORK_MAIN },     /* a user table of database 5 (the canary's) */
	{ 1663, 5, 16385, AR_FORK_MAIN },     /* another, dropped by the commit seeds */
	{ 1663, 5, 1259, AR_FORK_MAIN },      /* pg_class of database 5 */
	{ 1664, 0, 1262, AR_FORK_MAIN },      /* pg_database: pg_global */
	{ 1663, 1, 1259, AR_FORK_MAIN },      /* template1's pg_class */
	{ 1663, 16400, 16384, AR_FORK_MAIN }, /* in the database the seeds copy from 5 */
	{ 1700, 5, 16384, AR_FORK_MAIN },     /* a user tablespace: refused */
	{ 1663, 5, 0, AR_FORK_MAIN },         /* relation number 0 (InvalidOid) */
};

struct fz_world {
	struct ar_vfs *vfs;
	struct ar_blockcache *cache;
	struct ar_applier applier;
	struct tl_env env;
	struct ar_timeline *tl;
	struct walingest *wi;
	ar_lsn next_lsn; /* where the next record starts */
	ar_lsn prev_lsn; /* where the last one started */
	uint32_t inputs; /* since the world was built */
	uint8_t pages[FZ_BLOCKS_MAX][AR_PAGE_BYTES];
};

static struct fz_world W;
static const struct tl_id fz_tl_id = { { 0x77 } };

/* Give rec the next LSNs: it starts where the last one ended, ends MAXALIGNed. */
static void fz_stamp(struct wal_record *rec)
{
	uint32_t len = rec->tot_len < 24 ? 24 : rec->tot_len;
	rec->prev = W.prev_lsn;
	rec->lsn = W.next_lsn;
	W.prev_lsn = rec->lsn;
	rec->end_lsn = (rec->lsn + len + 7) & ~(ar_lsn)7;
	W.next_lsn = rec->end_lsn;
}

static struct wal_record fz_plain(uint8_t rmid, uint8_t info, const uint8_t *main, uint32_t len)
{
	struct wal_record r;
	memset(&r, 0, sizeof(r));
	r.rmid = rmid;
	r.info = info;
	r.max_block_id = -1;
	r.main_data = len ? main : NULL;
	r.main_data_len = len;
	r.raw = main;
	r.tot_len = len;
	return r;
}

static int fz_ingest(struct wal_record *rec)
{
	fz_stamp(rec);
	int rc = wi_record(W.wi, rec);
	if (rc == 0)
		wi_maybe_freeze(W.wi, false);
	return rc;
}

/* Records that give the fuzzed ones something to work on. */
static void fz_bootstrap(void)
{
	uint8_t m[16];
	struct wal_record r;
	memset(m, 0, sizeof(m));
	r = fz_plain(WAL_RM_CLOG, 0x00, m, 4); /* CLOG_ZEROPAGE 0 */
	AR_ASSERT(fz_ingest(&r) == 0);
	r = fz_plain(WAL_RM_MULTIXACT, 0x00, m, 4); /* ZERO_OFF_PAGE 0 */
	AR_ASSERT(fz_ingest(&r) == 0);
	r = fz_plain(WAL_RM_MULTIXACT, 0x10, m, 4); /* ZERO_MEM_PAGE 0 */
	AR_ASSERT(fz_ingest(&r) == 0);
	for (uint32_t db = 1; db <= 5; db += 4) {
		ar_put_le32(m, db);
		ar_put_le32(m + 4, 1663);
		r = fz_plain(WAL_RM_DBASE, 0x10, m, 8); /* CREATE_WAL_LOG */
		AR_ASSERT(fz_ingest(&r) == 0);
	}
	for (int i = 0; i < 2; i++) {
		ar_put_le32(m, fz_rels[i].spc_oid);
		ar_put_le32(m + 4, fz_rels[i].db_oid);
		ar_put_le32(m + 8, fz_rels[i].rel_number);
		ar_put_le32(m + 12, AR_FORK_MAIN);
		r = fz_plain(WAL_RM_SMGR, 0x10, m, 16); /* SMGR_CREATE */
		AR_ASSERT(fz_ingest(&r) == 0);
	}
}

static void fz_open_ingest(void)
{
	struct wi_target t = { .map = { .shard_count = 1 } };
	t.shards[0] = W.tl;
	AR_ASSERT(wi_create(&t, &W.wi) == 0);
}

static void fz_open(void)
{
	AR_ASSERT(tl_create(&W.env, FZ_DIR, &fz_tl_id, NULL, 0, W.next_lsn, &W.tl) == 0);
	fz_open_ingest();
	W.inputs = 0;
	fz_bootstrap();
}

static int fz_unlink_entry(void *ctx, const char *name)
{
	char path[256];
	(void)ctx;
	snprintf(path, sizeof(path), "%s/%s", FZ_DIR, name);
	AR_ASSERT(ar_vfs_unlink(W.vfs, path) == 0);
	return 0;
}

/* Everything goes: the ingest, the timeline, its directory on the disk. */
static void fz_close(void)
{
	wi_destroy(W.wi);
	tl_close(W.tl);
	W.wi = NULL;
	W.tl = NULL;
	AR_ASSERT(ar_vfs_list_dir(W.vfs, FZ_DIR, fz_unlink_entry, NULL) == 0);
	AR_ASSERT(ar_vfs_rmdir(W.vfs, FZ_DIR) == 0);
}

static void fz_init(void)
{
	AR_ASSERT(ar_vfs_sim_create(1, &W.vfs) == 0);
	AR_ASSERT(ar_blockcache_create(1 << 20, &W.cache) == 0);
	ar_applier_init(&W.applier, NULL);
	W.env = (struct tl_env){ .vfs = W.vfs,
				 .cache = W.cache,
				 .redo = &W.applier.redo,
				 .checkpoint_distance_bytes = 4u << 20 };
	W.next_lsn = FZ_START_LSN;
	fz_open();
}

/* Block reference i from its 4 input bytes; images live in W.pages[i] or in
 * the main data, so every pointer refers to bytes that exist. */
static void fz_block(struct wal_block *b, int i, const uint8_t *in, const uint8_t *main,
		     uint32_t main_len)
{
	memset(b, 0, sizeof(*b));
	b->in_use = true;
	b->rel = fz_rels[in[0] & 7];
	b->rel.fork = (uint8_t)(((in[0] >> 3) & 3) + ((in[0] & 0x80) ? 4 : 0));
	b->has_image = (in[0] & 0x20) != 0;
	b->will_init = (in[0] & 0x40) != 0;
	b->fork_flags =
	    (uint8_t)(b->rel.fork | (b->has_image ? 0x10 : 0) | (b->will_init ? 0x40 : 0));
	b->blkno = (in[2] & 0x08) ? 0xFFFFFFFFu : in[1];
	if (!b->has_image)
		return;
	b->apply_image = true;
	b->bimg_info = WAL_BKPIMAGE_APPLY;
	uint8_t kind = in[2] & 3;
	if (kind <= 1) {
		memset(W.pages[i], in[3], AR_PAGE_BYTES);
		b->image = W.pages[i];
		b->image_len = AR_PAGE_BYTES;
		if (kind == 1) {
			b->bimg_info |= WAL_BKPIMAGE_HAS_HOLE;
			b->hole_offset = (uint16_t)(24 + 512 * (in[2] >> 4));
			b->hole_length = (uint16_t)((AR_PAGE_BYTES - b->hole_offset) / 2);
			b->image_len = (uint16_t)(AR_PAGE_BYTES - b->hole_length);
		}
		return;
	}
	if (kind == 2)
		b->bimg_info |= WAL_BKPIMAGE_COMPRESS_PGLZ;
	else
		b->bimg_info |=
		    (in[2] & 4) ? WAL_BKPIMAGE_COMPRESS_ZSTD : WAL_BKPIMAGE_COMPRESS_LZ4;
	b->image = main ? main : in;
	b->image_len = (uint16_t)(main_len < AR_PAGE_BYTES ? main_len : AR_PAGE_BYTES - 1);
}

/* The record an input describes (layout in the header comment); false if too short. */
static bool fz_record(const uint8_t *data, size_t size, struct wal_record *rec)
{
	if (size < FZ_HEADER_BYTES || size > UINT32_MAX)
		return false;
	int nblocks = (data[6] & 3) == 3 ? 0 : data[6] & 3;
	size_t header = FZ_HEADER_BYTES + (size_t)nblocks * FZ_BLOCK_BYTES;
	if (size < header)
		return false;
	const uint8_t *main = size > header ? data + header : NULL;
	uint32_t main_len = (uint32_t)(size - header);
	*rec = fz_plain((uint8_t)(data[0] % WAL_RM_COUNT), data[1], main, main_len);
	rec->xid = ar_get_le32(data + 2);
	rec->raw = data;
	rec->tot_len = (uint32_t)size;
	for (int i = 0; i < nblocks; i++)
		fz_block(&rec->blocks[i], i, data + FZ_HEADER_BYTES + i * FZ_BLOCK_BYTES, main,
			 main_len);
	rec->max_block_id = nblocks - 1;
	return true;
}

static void fz_get(const struct ar_key *key, ar_lsn lsn)
{
	uint8_t page[AR_PAGE_BYTES];
	uint32_t len = 0;
	int rc = tl_get(W.tl, key, lsn, page, &len);
	AR_ASSERT(rc <= 0);
	if (rc == 0)
		AR_ASSERT(len <= AR_PAGE_BYTES);
}

/* Keys named by the main data's first words, where each record kind has them:
 * relmap (dbid, tsid), database create (db, spc), smgr create (spc, db, rel),
 * multixact create (mid); and the checkpoint. */
static void fz_read_main(const struct wal_record *rec, ar_lsn last)
{
	uint32_t w[3] = { 0, 0, 0 };
	uint64_t bytes;
	uint32_t n;
	for (uint32_t i = 0; i < 3 && 4 * i + 4 <= rec->main_data_len; i++)
		w[i] = ar_get_le32(rec->main_data + 4 * i);
	struct ar_key k = ar_key_relmap(w[1], w[0]);
	fz_get(&k, last);
	(void)tl_db_size(W.tl, w[1], w[0], last, &bytes);
	struct ar_rel rel = { w[0], w[1], w[2], AR_FORK_MAIN };
	(void)tl_rel_nblocks(W.tl, rel, last, &n);
	uint32_t mx_page = w[0] / (AR_PAGE_BYTES / 4);
	k = ar_key_slru_block(AR_SLRU_MULTIXACT_OFFSETS, mx_page / FZ_SLRU_PAGES_PER_SEGMENT,
			      mx_page % FZ_SLRU_PAGES_PER_SEGMENT);
	fz_get(&k, last);
	k = ar_key_checkpoint();
	fz_get(&k, last);
}

static void fz_read_back(const struct wal_record *rec)
{
	ar_lsn last = tl_last_record_lsn(W.tl);
	if (last < tl_start_lsn(W.tl))
		return; /* nothing stored yet */
	for (int i = 0; i <= rec->max_block_id; i++) {
		struct ar_rel rel = rec->blocks[i].rel;
		uint32_t blkno = rec->blocks[i].blkno, n;
		struct ar_key k = ar_key_rel_block(rel, blkno);
		fz_get(&k, last);
		if (rec->lsn > tl_start_lsn(W.tl))
			fz_get(&k, rec->lsn); /* as of before the record */
		(void)tl_rel_nblocks(W.tl, rel, last, &n);
		rel.fork = AR_FORK_VM;
		k = ar_key_rel_block(rel, blkno / WI_VM_HEAPBLOCKS_PER_PAGE);
		fz_get(&k, last);
	}
	uint32_t page = rec->xid / FZ_CLOG_XACTS_PER_PAGE;
	struct ar_key k = ar_key_slru_block(AR_SLRU_CLOG, page / FZ_SLRU_PAGES_PER_SEGMENT,
					    page % FZ_SLRU_PAGES_PER_SEGMENT);
	fz_get(&k, last);
	fz_read_main(rec, last);
}

static void fz_time_lookup(const struct wal_record *rec)
{
	ar_lsn last = tl_last_record_lsn(W.tl), at;
	if (last < tl_start_lsn(W.tl))
		return;
	int64_t ts = rec->main_data_len >= 8 ? (int64_t)ar_get_le64(rec->main_data) : 0;
	if (wi_lsn_for_time(W.tl, ts, last, &at) == 0)
		AR_ASSERT(at <= last);
}

/* After a refused record the ingest must still work: a heap insert with a
 * full-page image of the canary relation's block 0 is stored and read back. */
static void fz_canary(void)
{
	uint8_t main[3] = { 1, 0, 0 }; /* xl_heap_insert: offnum 1, no flags */
	struct wal_record r = fz_plain(WAL_RM_HEAP, 0x00, main, sizeof(main));
	struct wal_block *b = &r.blocks[0];
	memset(W.pages[0], 0xA5, AR_PAGE_BYTES);
	*b = (struct wal_block){ .in_use = true,
				 .rel = fz_rels[0],
				 .has_image = true,
				 .apply_image = true,
				 .bimg_info = WAL_BKPIMAGE_APPLY,
				 .image = W.pages[0],
				 .image_len = AR_PAGE_BYTES };
	r.max_block_id = 0;
	int rc = fz_ingest(&r);
	if (rc == -AR_ELIMIT)
		return; /* its directory is full of the fuzzer's relations: still a refusal */
	if (rc < 0)
		fprintf(stderr, "canary refused: %s\n", wi_error(W.wi));
	AR_ASSERT(rc == 0);
	uint8_t page[AR_PAGE_BYTES];
	uint32_t len = 0, n = 0;
	struct ar_key k = ar_key_rel_block(fz_rels[0], 0);
	AR_ASSERT(tl_get(W.tl, &k, r.end_lsn, page, &len) == 0);
	AR_ASSERT(len == AR_PAGE_BYTES);
	AR_ASSERT(ar_get_le32(page + 4) == (uint32_t)r.end_lsn); /* pd_lsn set */
	AR_ASSERT(page[AR_PAGE_BYTES - 1] == 0xA5);
	AR_ASSERT(tl_rel_nblocks(W.tl, fz_rels[0], r.end_lsn, &n) == 0);
	AR_ASSERT(n >= 1);
}

/* A refused record: corrupt, unsupported, over a limit, or a key twice in it. */
static bool fz_refused(int rc)
{
	return rc == -AR_ECORRUPT || rc == -ENOTSUP || rc == -AR_ELIMIT || rc == -EEXIST;
}

static void fz_replay(struct wal_record *rec)
{
	ar_lsn end = rec->end_lsn;
	if (end > tl_last_record_lsn(W.tl))
		return; /* nothing of it was stored: it would be ingested anew */
	uint64_t skipped = wi_stats(W.wi)->skipped;
	AR_ASSERT(wi_record(W.wi, rec) == 0);
	AR_ASSERT(wi_stats(W.wi)->skipped == skipped + 1);
}

static bool fz_worn(void)
{
	return W.inputs >= FZ_INPUTS_MAX || tl_stats(W.tl)->puts >= FZ_PUTS_MAX ||
	       ar_vfs_sim_bytes(W.vfs) >= FZ_SIM_BYTES_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wal_record rec;
	if (!W.vfs)
		fz_init();
	if (!fz_record(data, size, &rec))
		return 0;
	W.inputs++;
	int rc = fz_ingest(&rec);
	AR_ASSERT(rc <= 0);
	if (rc < 0 && !fz_refused(rc)) {
		fz_close(); /* the timeline is in doubt: start over */
		fz_open();
		return 0;
	}
	if (rc < 0)
		AR_ASSERT(wi_error(W.wi)[0] != '\0');
	if (data[6] & FZ_REPLAY)
		fz_replay(&rec);
	if (data[6] & FZ_READ_BACK)
		fz_read_back(&rec);
	if (data[6] & FZ_TIME_LOOKUP)
		fz_time_lookup(&rec);
	if (rc < 0)
		fz_canary();
	if (data[6] & FZ_REOPEN) {
		wi_destroy(W.wi);
		fz_open_ingest();
	}
	if (fz_worn()) {
		fz_close();
		fz_open();
	}
	return 0;
}
