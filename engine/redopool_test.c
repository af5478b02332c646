/*
 * redopool_test.c - The redo pool driving the real argon-walredo.
 *
 * Heap INSERT records are built here byte by byte in PostgreSQL 15's WAL
 * record format (XLogRecord, one block reference, short main data, CRC-32C),
 * replayed by PostgreSQL's own heap_xlog_insert in the helper, and the page
 * that comes back is checked field by field against the heap page format.
 * Then every way a helper fails -- a record whose CRC does not match, a record
 * of a rmgr that is not a page rmgr, a PANIC in redo, SIGKILL in the middle of
 * a request, a stopped helper missing the deadline, a system call outside the
 * sandbox, a helper that does not exist -- must fail that one apply with the
 * helper's report, and the slot's next apply must work again.
 *
 * The helper is $ARGON_WALREDO (set by meson) or ../compute/argon-walredo
 * beside this program in the build tree.
 */
#include "common/crc32c.h"
#include "common/err.h"
#include "engine/key.h"
#include "engine/redo.h"
#include "engine/redopool.h"
#include "engine/value.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

/* ---- PostgreSQL 15's formats (facts from its headers) ---- */

#define XLOG_RECORD_BYTES 24    /* SizeOfXLogRecord */
#define XLOG_RECORD_CRC_AT 20   /* offsetof(XLogRecord, xl_crc) */
#define BKPBLOCK_HAS_DATA 0x20
#define BKPBLOCK_WILL_INIT 0x40
#define XLR_BLOCK_ID_DATA_SHORT 255
#define RM_XLOG_ID 0
#define RM_HEAP_ID 10
#define XLOG_NOOP 0x20
#define XLOG_HEAP_INSERT 0x00
#define XLOG_HEAP_INIT_PAGE 0x80
#define HEAP_HEADER_BYTES 5     /* SizeOfHeapHeader */
#define HEAP_INSERT_BYTES 3     /* SizeOfHeapInsert */
#define HEAP_XMAX_INVALID 0x0800
#define TUPLE_HEADER_BYTES 23   /* SizeofHeapTupleHeader */
#define TUPLE_HOFF 24           /* MAXALIGN(23) */
#define TUPLE_BYTES (TUPLE_HOFF + 4) /* the header, then one int4 */
#define TUPLE_SPACE 32          /* MAXALIGN(TUPLE_BYTES) */
#define PAGE_HEADER_BYTES 24    /* SizeOfPageHeaderData */
#define ITEM_ID_BYTES 4
#define LP_NORMAL 1
#define PAGE_LAYOUT_VERSION 4

/* ---- what the tests replay ---- */

#define REL_SPC 1663
#define REL_DB 5
#define REL_NODE 16384
#define XID 1000
/* End LSNs whose %X/%X (the helper's) and %X/%08X (the pool's) forms differ:
 * the helper prints the first as "1/ABC0128". */
#define LSN_A 0x000000010ABC0128ull
#define LSN_B 0x000000010ABC0168ull
#define LSN_A_TEXT "1/ABC0128"
#define LSN_B_TEXT "1/ABC0168"
#define RECORD_BYTES_MAX 128
#define RECORDS_MAX 4

struct rec {
	ar_lsn end_lsn;
	bool will_init;
	uint32_t len;
	uint8_t bytes[RECORD_BYTES_MAX];
};

struct rec_spec {
	uint8_t rmid;
	uint8_t info;
	uint32_t xid;
	bool has_block;
	uint8_t fork_flags;
	uint32_t blkno;
	const uint8_t *block_data;
	uint16_t block_len;
	const uint8_t *main_data;
	uint8_t main_len;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

/* An XLogRecord: header, block header, main data header, block data, main
 * data; the CRC covers the bytes after the header, then the header up to
 * xl_crc. */
static void rec_build(const struct rec_spec *sp, ar_lsn end_lsn, struct rec *r)
{
	uint8_t *b = r->bytes, *p = b + XLOG_RECORD_BYTES;
	memset(r, 0, sizeof(*r));
	if (sp->has_block) {
		*p++ = 0; /* block id */
		*p++ = sp->fork_flags;
		put16(p, sp->block_len);
		put32(p + 2, REL_SPC);
		put32(p + 6, REL_DB);
		put32(p + 10, REL_NODE);
		put32(p + 14, sp->blkno);
		p += 18;
	}
	if (sp->main_len > 0) {
		*p++ = XLR_BLOCK_ID_DATA_SHORT;
		*p++ = sp->main_len;
	}
	assert_true((size_t)(p - b) + sp->block_len + sp->main_len <= RECORD_BYTES_MAX);
	if (sp->block_len > 0)
		memcpy(p, sp->block_data, sp->block_len);
	p += sp->block_len;
	if (sp->main_len > 0)
		memcpy(p, sp->main_data, sp->main_len);
	p += sp->main_len;
	r->len = (uint32_t)(p - b);
	put32(b, r->len);     /* xl_tot_len */
	put32(b + 4, sp->xid); /* xl_xid; xl_prev stays 0 */
	b[16] = sp->info;
	b[17] = sp->rmid;
	uint32_t crc = ar_crc32c_update(AR_CRC32C_INIT, b + XLOG_RECORD_BYTES,
					r->len - XLOG_RECORD_BYTES);
	crc = ar_crc32c_update(crc, b, XLOG_RECORD_CRC_AT);
	put32(b + XLOG_RECORD_CRC_AT, ar_crc32c_final(crc));
	r->end_lsn = end_lsn;
	r->will_init = (sp->fork_flags & BKPBLOCK_WILL_INIT) != 0;
}

static uint32_t tuple_value(uint16_t offnum)
{
	return 0x11223344u * offnum;
}

/* A heap INSERT of one int4 column at offnum of block 0; init: the record
 * initialises the page (XLOG_HEAP_INIT_PAGE and WILL_INIT). */
static void heap_insert_build(uint16_t offnum, bool init, ar_lsn end_lsn, struct rec *r)
{
	/* xl_heap_header, then the tuple after its 23-byte header: one pad byte
	 * up to t_hoff, then the int4. */
	uint8_t block[HEAP_HEADER_BYTES + TUPLE_BYTES - TUPLE_HEADER_BYTES] = { 0 };
	put16(block, 1); /* t_infomask2: one attribute */
	put16(block + 2, HEAP_XMAX_INVALID);
	block[4] = TUPLE_HOFF;
	put32(block + HEAP_HEADER_BYTES + 1, tuple_value(offnum));
	uint8_t main[HEAP_INSERT_BYTES] = { 0 }; /* xl_heap_insert: offnum, flags 0 */
	put16(main, offnum);
	struct rec_spec sp = {
		.rmid = RM_HEAP_ID,
		.info = (uint8_t)(XLOG_HEAP_INSERT | (init ? XLOG_HEAP_INIT_PAGE : 0)),
		.xid = XID,
		.has_block = true,
		.fork_flags = (uint8_t)(BKPBLOCK_HAS_DATA | (init ? BKPBLOCK_WILL_INIT : 0)),
		.blkno = 0,
		.block_data = block,
		.block_len = sizeof(block),
		.main_data = main,
		.main_len = sizeof(main),
	};
	rec_build(&sp, end_lsn, r);
}

/* ---- checking a heap page ---- */

/* The tuple heap_xlog_insert put at offnum. */
static void check_tuple(const uint8_t *page, uint16_t offnum)
{
	uint32_t lp = get32(page + PAGE_HEADER_BYTES + ITEM_ID_BYTES * (offnum - 1));
	uint32_t lp_off = lp & 0x7FFF, lp_flags = (lp >> 15) & 3, lp_len = lp >> 17;
	assert_int_equal(lp_flags, LP_NORMAL);
	assert_int_equal(lp_len, TUPLE_BYTES);
	/* PageAddItem fills the page from the end down. */
	assert_int_equal(lp_off, AR_PAGE_BYTES - TUPLE_SPACE * offnum);
	const uint8_t *t = page + lp_off;
	assert_int_equal(get32(t), XID);       /* t_xmin: the record's xid */
	assert_int_equal(get32(t + 4), 0);     /* t_xmax */
	assert_int_equal(get32(t + 8), 0);     /* t_cid: FirstCommandId */
	assert_int_equal(get16(t + 12), 0);    /* t_ctid: block 0 ... */
	assert_int_equal(get16(t + 14), 0);
	assert_int_equal(get16(t + 16), offnum); /* ... and the tuple's own offset */
	assert_int_equal(get16(t + 18), 1);    /* t_infomask2 */
	assert_int_equal(get16(t + 20), HEAP_XMAX_INVALID);
	assert_int_equal(t[22], TUPLE_HOFF);
	assert_int_equal(get32(t + TUPLE_HOFF), tuple_value(offnum));
}

/* A PageInit'ed heap page at lsn holding the tuples at offsets 1..count. */
static void check_heap_page(const uint8_t *page, ar_lsn lsn, uint16_t count)
{
	assert_int_equal(get32(page), (uint32_t)(lsn >> 32)); /* pd_lsn.xlogid */
	assert_int_equal(get32(page + 4), (uint32_t)lsn);     /* pd_lsn.xrecoff */
	assert_int_equal(get16(page + 8), 0);                 /* pd_checksum */
	assert_int_equal(get16(page + 10), 0);                /* pd_flags */
	assert_int_equal(get16(page + 12), PAGE_HEADER_BYTES + ITEM_ID_BYTES * count);
	assert_int_equal(get16(page + 14), AR_PAGE_BYTES - TUPLE_SPACE * count);
	assert_int_equal(get16(page + 16), AR_PAGE_BYTES); /* pd_special: no special space */
	assert_int_equal(get16(page + 18), AR_PAGE_BYTES | PAGE_LAYOUT_VERSION);
	assert_int_equal(get32(page + 20), 0); /* pd_prune_xid */
	for (uint16_t off = 1; off <= count; off++)
		check_tuple(page, off);
	/* Between pd_lower and pd_upper: nothing. */
	size_t lower = PAGE_HEADER_BYTES + (size_t)ITEM_ID_BYTES * count;
	size_t upper = AR_PAGE_BYTES - (size_t)TUPLE_SPACE * count;
	for (size_t i = lower; i < upper; i++)
		assert_int_equal(page[i], 0);
}

/* ---- the pool ---- */

struct fixture {
	struct ar_redopool *pool;
	struct ar_redo *slot;
	char helper[4096];
	struct rec init_rec; /* INSERT+INIT at offset 1, ending at LSN_A */
	struct rec next_rec; /* INSERT at offset 2, ending at LSN_B */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	if (!ar_redopool_find_helper(f->helper, sizeof(f->helper))) {
		print_error("no argon-walredo: set ARGON_WALREDO (meson test does)\n");
		free(f);
		return -1;
	}
	heap_insert_build(1, true, LSN_A, &f->init_rec);
	heap_insert_build(2, false, LSN_B, &f->next_rec);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	ar_redopool_destroy(f->pool);
	free(f);
	return 0;
}

static void pool_open(struct fixture *f, const char *path, uint32_t timeout_ms,
		      bool test_commands)
{
	struct ar_redopool_config cfg = { .helper_path = path ? path : f->helper,
					  .slots = 1,
					  .timeout_ms = timeout_ms,
					  .test_commands = test_commands };
	assert_int_equal(ar_redopool_create(&cfg, &f->pool), 0);
	f->slot = ar_redopool_slot(f->pool, 0);
	assert_non_null(f->slot);
	assert_null(ar_redopool_slot(f->pool, 1));
	assert_int_equal(ar_redopool_helper_pid(f->slot), 0); /* started lazily */
}

static struct ar_key test_key(void)
{
	struct ar_rel rel = {
		.spc_oid = REL_SPC, .db_oid = REL_DB, .rel_number = REL_NODE, .fork = AR_FORK_MAIN
	};
	return ar_key_rel_block(rel, 0);
}

/* Rebuild block 0 from base (NULL: none) and records through the slot. */
static int apply(struct fixture *f, const uint8_t *base, const struct rec *recs, size_t count,
		 uint8_t page[AR_PAGE_BYTES])
{
	struct ar_redo_record rr[RECORDS_MAX];
	assert_in_range(count, 1, RECORDS_MAX);
	for (size_t i = 0; i < count; i++)
		rr[i] = (struct ar_redo_record){ .lsn = recs[i].end_lsn,
						 .value = { .kind = AR_VALUE_WAL,
							    .will_init = recs[i].will_init,
							    .len = recs[i].len,
							    .data = recs[i].bytes } };
	struct ar_key key = test_key();
	uint32_t out_len = 0;
	memset(page, 0xA5, AR_PAGE_BYTES);
	f->slot->err[0] = '\0';
	int rc = f->slot->ops->apply(f->slot, &key, base, base ? AR_PAGE_BYTES : 0, rr, count,
				     page, &out_len);
	if (rc == 0)
		assert_int_equal(out_len, AR_PAGE_BYTES);
	else
		print_message("    apply failed (%d): %s\n", rc, f->slot->err);
	return rc;
}

/* The INIT insert alone: page at LSN_A with one tuple. */
static void apply_good(struct fixture *f, uint8_t page[AR_PAGE_BYTES])
{
	int rc = apply(f, NULL, &f->init_rec, 1, page);
	assert_int_equal(rc, 0);
	check_heap_page(page, LSN_A, 1);
	assert_true(ar_redopool_helper_pid(f->slot) > 0);
}

static void assert_err_has(const struct fixture *f, const char *part)
{
	if (!strstr(f->slot->err, part))
		fail_msg("the error \"%s\" does not mention \"%s\"", f->slot->err, part);
}

static struct ar_redopool_stats stats_of(const struct fixture *f)
{
	struct ar_redopool_stats st;
	memset(&st, 0xFF, sizeof(st));
	ar_redopool_stats(f->pool, &st);
	return st;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- tests ---- */

static void test_apply_good(void **state)
{
	struct fixture *f = *state;
	uint8_t page[AR_PAGE_BYTES];
	char replayed[256];
	pool_open(f, NULL, 0, false);
	assert_int_equal(ar_redopool_replayed(f->slot, replayed, sizeof(replayed)), 0);
	assert_string_equal(replayed, ""); /* no helper yet */

	apply_good(f, page);
	struct ar_redopool_stats st = stats_of(f);
	assert_int_equal(st.started, 1);
	assert_int_equal(st.replaced, 0);
	assert_int_equal(st.requests, 1);
	assert_int_equal(st.records, 1);
	assert_int_equal(st.failures, 0);
	assert_int_equal(st.timeouts, 0);

	/* The same helper serves the next request, with the same result. */
	int pid = ar_redopool_helper_pid(f->slot);
	uint8_t again[AR_PAGE_BYTES];
	apply_good(f, again);
	assert_memory_equal(page, again, AR_PAGE_BYTES);
	assert_int_equal(ar_redopool_helper_pid(f->slot), pid);
	assert_int_equal(stats_of(f).started, 1);
	assert_int_equal(ar_redopool_replayed(f->slot, replayed, sizeof(replayed)), 0);
	assert_string_equal(replayed, "Heap/INSERT+INIT 2\n");
}

static void test_two_records_one_request(void **state)
{
	struct fixture *f = *state;
	uint8_t page[AR_PAGE_BYTES], one[AR_PAGE_BYTES], pushed[AR_PAGE_BYTES];
	char replayed[256];
	pool_open(f, NULL, 0, false);
	struct rec recs[2] = { f->init_rec, f->next_rec };
	assert_int_equal(apply(f, NULL, recs, 2, page), 0);
	check_heap_page(page, LSN_B, 2);
	assert_int_equal(stats_of(f).records, 2);
	assert_int_equal(ar_redopool_replayed(f->slot, replayed, sizeof(replayed)), 0);
	assert_string_equal(replayed, "Heap/INSERT 1\nHeap/INSERT+INIT 1\n");

	/* The same in two steps: the second record on the first result pushed as
	 * the base page gives the same bytes. */
	apply_good(f, one);
	assert_int_equal(apply(f, one, &f->next_rec, 1, pushed), 0);
	assert_memory_equal(page, pushed, AR_PAGE_BYTES);
	/* A base already at LSN_B: redo sees the record as applied (BLK_DONE). */
	assert_int_equal(apply(f, pushed, &f->next_rec, 1, one), 0);
	assert_memory_equal(one, pushed, AR_PAGE_BYTES);
	assert_int_equal(stats_of(f).started, 1);
	assert_int_equal(stats_of(f).failures, 0);
}

static void test_mask(void **state)
{
	struct fixture *f = *state;
	uint8_t page[AR_PAGE_BYTES], masked[AR_PAGE_BYTES];
	pool_open(f, NULL, 0, false);
	apply_good(f, page);
	put32(page + 20, 4242); /* pd_prune_xid: a hint heap_mask ignores */
	memcpy(masked, page, AR_PAGE_BYTES);
	assert_int_equal(ar_redopool_mask(f->slot, RM_HEAP_ID, 0, masked), 0);

	/* mask_page_lsn_and_checksum: pd_lsn becomes MASK_MARKER (0). */
	assert_int_equal(get32(masked), 0);
	assert_int_equal(get32(masked + 4), 0);
	assert_int_equal(get32(masked + 20), 0); /* pd_prune_xid masked */
	/* The line pointer and the tuple survive; of the infomask only the
	 * hint bits (HEAP_XACT_MASK, xmin not frozen) go. */
	uint32_t lp_off = AR_PAGE_BYTES - TUPLE_SPACE;
	assert_int_equal(get32(masked + PAGE_HEADER_BYTES), get32(page + PAGE_HEADER_BYTES));
	assert_int_equal(get32(masked + lp_off), XID);
	assert_int_equal(get16(masked + lp_off + 16), 1);
	assert_int_equal(get16(masked + lp_off + 18), 1);
	assert_int_equal(get16(masked + lp_off + 20), 0);
	assert_int_equal(get16(page + lp_off + 20), HEAP_XMAX_INVALID);
	assert_int_equal(get32(masked + lp_off + TUPLE_HOFF), tuple_value(1));
	/* Nothing else changed. */
	assert_memory_equal(masked + 8, page + 8, 12);
	assert_memory_equal(masked + PAGE_HEADER_BYTES, page + PAGE_HEADER_BYTES,
			    lp_off + 20 - PAGE_HEADER_BYTES);
	assert_memory_equal(masked + lp_off + 22, page + lp_off + 22, TUPLE_SPACE - 22);

	/* The helper answered the mask and stays usable. */
	int pid = ar_redopool_helper_pid(f->slot);
	apply_good(f, page);
	assert_int_equal(ar_redopool_helper_pid(f->slot), pid);
	assert_int_equal(stats_of(f).requests, 3);
}

static void test_corrupt_crc(void **state)
{
	struct fixture *f = *state;
	uint8_t good[AR_PAGE_BYTES], page[AR_PAGE_BYTES];
	pool_open(f, NULL, 0, false);
	apply_good(f, good);
	int pid = ar_redopool_helper_pid(f->slot);

	struct rec bad = f->init_rec;
	bad.bytes[bad.len - HEAP_INSERT_BYTES] ^= 0x01; /* xl_heap_insert.offnum */
	assert_int_equal(apply(f, NULL, &bad, 1, page), -AR_EREDO);
	assert_err_has(f, "CRC");
	assert_err_has(f, LSN_A_TEXT);
	assert_err_has(f, "exited with status 1");
	assert_int_equal(ar_redopool_helper_pid(f->slot), 0);
	struct ar_redopool_stats st = stats_of(f);
	assert_int_equal(st.replaced, 1);
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.timeouts, 0);

	/* A new helper, the same page as before the failure. */
	apply_good(f, page);
	assert_memory_equal(page, good, AR_PAGE_BYTES);
	assert_int_not_equal(ar_redopool_helper_pid(f->slot), pid);
	assert_int_equal(stats_of(f).started, 2);
}

static void test_non_page_rmgr(void **state)
{
	struct fixture *f = *state;
	uint8_t page[AR_PAGE_BYTES];
	pool_open(f, NULL, 0, false);
	struct rec noop;
	struct rec_spec sp = { .rmid = RM_XLOG_ID, .info = XLOG_NOOP, .xid = 0 };
	rec_build(&sp, LSN_A, &noop);
	assert_int_equal(noop.len, XLOG_RECORD_BYTES);

	assert_int_equal(apply(f, NULL, &noop, 1, page), -AR_EREDO);
	assert_err_has(f, "not a page rmgr");
	assert_err_has(f, "XLOG");
	assert_err_has(f, LSN_A_TEXT);
	assert_int_equal(stats_of(f).started, 1);
	assert_int_equal(stats_of(f).replaced, 1);

	apply_good(f, page);
	assert_int_equal(stats_of(f).started, 2);
	assert_int_equal(stats_of(f).failures, 1);
}

static void test_redo_error(void **state)
{
	struct fixture *f = *state;
	uint8_t page[AR_PAGE_BYTES];
	pool_open(f, NULL, 0, false);
	apply_good(f, page);

	/* A plain INSERT with no base: redo finds block 0 new (all zeros), which
	 * after consistency is a PANIC ("WAL contains references to invalid
	 * pages"), reported with the CONTEXT line naming the record. */
	assert_int_equal(apply(f, NULL, &f->next_rec, 1, page), -AR_EREDO);
	assert_err_has(f, LSN_B_TEXT);
	assert_err_has(f, "rmgr Heap");
	assert_err_has(f, "uninitialized");
	assert_err_has(f, "signal 6"); /* abort() after the PANIC: the sandbox allows it */
	assert_err_has(f, "PANIC: WAL contains references to invalid pages");
	assert_int_equal(ar_redopool_helper_pid(f->slot), 0);
	assert_int_equal(stats_of(f).replaced, 1);
	assert_int_equal(stats_of(f).failures, 1);

	apply_good(f, page);
	assert_int_equal(stats_of(f).started, 2);
}

struct killer {
	pid_t pid;
	int delay_ms;
};

static void *kill_later(void *arg)
{
	const struct killer *k = arg;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)k->delay_ms * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	kill(k->pid, SIGKILL);
	return NULL;
}

static void test_killed_mid_request(void **state)
{
	struct fixture *f = *state;
	uint8_t page[AR_PAGE_BYTES], good[AR_PAGE_BYTES];
	pool_open(f, NULL, 5000, false);
	apply_good(f, good);
	struct killer k = { .pid = ar_redopool_helper_pid(f->slot), .delay_ms = 100 };
	assert_true(k.pid > 0);
	assert_int_equal(kill(k.pid, SIGSTOP), 0);
	pthread_t thread;
	uint64_t start = now_ms();
	assert_int_equal(pthread_create(&thread, NULL, kill_later, &k), 0);
	int rc = apply(f, NULL, &f->init_rec, 1, page);
	uint64_t took = now_ms() - start;
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(rc, -AR_EREDO);
	assert_in_range(took, 99, 2000); /* the kill ended it, not the 5 s deadline */
	assert_err_has(f, "signal 9");
	struct ar_redopool_stats st = stats_of(f);
	assert_int_equal(st.replaced, 1);
	assert_int_equal(st.timeouts, 0);
	assert_int_equal(ar_redopool_helper_pid(f->slot), 0);

	apply_good(f, page);
	assert_memory_equal(page, good, AR_PAGE_BYTES);
	assert_int_not_equal(ar_redopool_helper_pid(f->slot), k.pid);
	assert_int_equal(stats_of(f).started, 2);
}

static void test_stuck_helper_timeout(void **state)
{
	struct fixture *f = *state;
	uint8_t page[AR_PAGE_BYTES];
	pool_open(f, NULL, 300, false);
	apply_good(f, page);
	int pid = ar_redopool_helper_pid(f->slot);
	assert_int_equal(kill(pid, SIGSTOP), 0);

	uint64_t start = now_ms();
	assert_int_equal(apply(f, NULL, &f->init_rec, 1, page), -ETIMEDOUT);
	uint64_t took = now_ms() - start;
	assert_in_range(took, 300, 3000);
	assert_err_has(f, "did not answer");
	assert_err_has(f, "300 ms");
	struct ar_redopool_stats st = stats_of(f);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.replaced, 1);
	assert_int_equal(st.failures, 1);
	assert_int_equal(ar_redopool_helper_pid(f->slot), 0);
	/* The stopped helper was killed and reaped, not left behind. */
	assert_int_equal(kill(pid, 0), -1);

	apply_good(f, page);
	assert_int_equal(stats_of(f).started, 2);
	assert_int_equal(stats_of(f).timeouts, 1);
}

/* True if the helper was built without the seccomp sandbox. */
static bool helper_unsandboxed(const struct fixture *f)
{
	char cmd[4200], line[256] = "";
	snprintf(cmd, sizeof(cmd), "'%s' --version", f->helper);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	if (!fgets(line, sizeof(line), p))
		line[0] = '\0';
	assert_int_equal(pclose(p), 0);
	assert_non_null(strstr(line, "sandbox: "));
	return strstr(line, "sandbox: none") != NULL;
}

static void test_forbidden_syscall(void **state)
{
	struct fixture *f = *state;
	uint8_t page[AR_PAGE_BYTES];
	if (helper_unsandboxed(f)) {
		print_message("    skipped: argon-walredo --version says \"sandbox: none\"\n");
		skip();
	}
	pool_open(f, NULL, 0, true);
	assert_int_equal(ar_redopool_test_forbidden(f->slot), -AR_EREDO);
	print_message("    forbidden: %s\n", f->slot->err);
	char sig[32];
	snprintf(sig, sizeof(sig), "signal %d", SIGSYS);
	assert_err_has(f, sig);
	assert_int_equal(stats_of(f).replaced, 1);

	apply_good(f, page);
	assert_int_equal(stats_of(f).started, 2);
}

static void test_test_commands_off(void **state)
{
	struct fixture *f = *state;
	uint8_t page[AR_PAGE_BYTES];
	pool_open(f, NULL, 0, false);
	assert_int_equal(ar_redopool_test_forbidden(f->slot), -AR_EREDO);
	assert_err_has(f, "needs --test-commands");
	assert_err_has(f, "exited with status 1");
	apply_good(f, page);
}

static void test_missing_helper(void **state)
{
	struct fixture *f = *state;
	uint8_t page[AR_PAGE_BYTES];
	pool_open(f, "/nonexistent/argon-walredo", 0, false);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(apply(f, NULL, &f->init_rec, 1, page), -ENOENT);
		assert_err_has(f, "cannot start");
		assert_err_has(f, "/nonexistent/argon-walredo");
		assert_int_equal(ar_redopool_helper_pid(f->slot), 0);
	}
	struct ar_redopool_stats st = stats_of(f);
	assert_int_equal(st.started, 0);
	assert_int_equal(st.replaced, 0);
	assert_int_equal(st.failures, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_apply_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_records_one_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_crc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_non_page_rmgr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redo_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_mid_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stuck_helper_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forbidden_syscall, setup, teardown),
		cmocka_unit_test_setup_teardown(test_test_commands_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_helper, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
