/*
 * walreader_test.c - The WAL reader fed whole pages and pages in parts.
 *
 * The WAL is synthetic but laid out as PostgreSQL 15 writes it: 1 MiB segments,
 * a long page header on each segment's first page, records MAXALIGNed and split
 * across pages with XLP_FIRST_IS_CONTRECORD continuations, an XLOG_SWITCH that
 * leaves the rest of its segment unused.  Records are of random sizes: tiny ones,
 * ones spanning several pages and one spanning a segment boundary.  Every record
 * the reader hands over is checked against the one written (LSN, end, length and
 * bytes), so a record handed over twice, lost or torn fails.
 */
#include "common/bytes.h"
#include "common/err.h"
#include "ingest/walrec.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define SEG_BYTES (1u << 20)
#define WAL_BYTES_MAX (4u * SEG_BYTES)
#define BASE_LSN ((ar_lsn)3 * SEG_BYTES)
#define SYSTEM_ID 7310000000000000042ull
#define RECORDS_MAX 4096
#define SEEDS 24

/* A record as written: where it starts and ends in the stream. */
struct written {
	ar_lsn lsn;
	ar_lsn end_raw; /* just past its last byte */
	uint32_t tot_len;
	uint8_t *raw;
};

/* The WAL written from BASE_LSN on; wal[i] is the byte at BASE_LSN + i. */
struct gen {
	uint8_t *wal;
	uint32_t off; /* where the next record goes */
	uint32_t len; /* bytes up to the last record's end */
	ar_lsn prev;
	struct written recs[RECORDS_MAX];
	uint32_t count;
	ar_lsn switch_end; /* the XLOG_SWITCH record's end; skipped from there to the segment end */
	uint64_t rng;
};

/* What the reader handed over, in order. */
struct got {
	struct written recs[RECORDS_MAX];
	uint32_t count;
};

static struct gen G;

static uint64_t next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint32_t below(uint64_t *s, uint32_t n)
{
	return (uint32_t)(next_random(s) % n);
}

static uint32_t align8(uint32_t x)
{
	return (x + 7) & ~7u;
}

static void gen_page_header(struct gen *g, uint32_t rem)
{
	uint8_t *h = g->wal + g->off;
	ar_lsn lsn = BASE_LSN + g->off;
	bool seg_start = lsn % SEG_BYTES == 0;
	uint16_t info = rem ? WAL_XLP_FIRST_IS_CONTRECORD : 0;
	if (seg_start)
		info |= WAL_XLP_LONG_HEADER;
	ar_put_le16(h, WAL_PAGE_MAGIC);
	ar_put_le16(h + 2, info);
	ar_put_le32(h + 4, 1); /* timeline */
	ar_put_le64(h + 8, lsn);
	ar_put_le32(h + 16, rem);
	if (seg_start) {
		ar_put_le64(h + 24, SYSTEM_ID);
		ar_put_le32(h + 32, SEG_BYTES);
		ar_put_le32(h + 36, WAL_PAGE_BYTES);
	}
	g->off += seg_start ? WAL_LONG_PAGE_HEADER_BYTES : WAL_SHORT_PAGE_HEADER_BYTES;
}

/* Header, then main data only (short or long length); the CRC made right. */
static uint8_t *build_record(struct gen *g, uint8_t rmid, uint8_t info, uint32_t data_len,
			     uint32_t *tot_out)
{
	uint32_t tot = WAL_RECORD_HEADER_BYTES + (data_len < 256 ? 2 : 5) + data_len;
	uint8_t *rec = calloc(1, tot);
	assert_non_null(rec);
	ar_put_le32(rec, tot);
	ar_put_le32(rec + 4, 1000 + g->count); /* xid */
	ar_put_le64(rec + 8, g->prev);
	rec[16] = info;
	rec[17] = rmid;
	uint8_t *d = rec + WAL_RECORD_HEADER_BYTES;
	if (data_len < 256) {
		*d++ = 255;
		*d++ = (uint8_t)data_len;
	} else {
		*d++ = 254;
		ar_put_le32(d, data_len);
		d += 4;
	}
	for (uint32_t i = 0; i < data_len; i++)
		d[i] = (uint8_t)next_random(&g->rng);
	ar_put_le32(rec + 20, wal_record_crc(rec, tot));
	*tot_out = tot;
	return rec;
}

/* Lay a record out in the stream, with a page header at every page start. */
static void gen_record(struct gen *g, uint8_t rmid, uint8_t info, uint32_t data_len)
{
	uint32_t tot;
	uint8_t *rec = build_record(g, rmid, info, data_len, &tot);
	assert_true(g->count < RECORDS_MAX);
	if (g->off % WAL_PAGE_BYTES == 0)
		gen_page_header(g, 0);
	struct written *w = &g->recs[g->count++];
	*w = (struct written){ .lsn = BASE_LSN + g->off, .tot_len = tot, .raw = rec };
	for (uint32_t done = 0; done < tot;) {
		if (g->off % WAL_PAGE_BYTES == 0)
			gen_page_header(g, tot - done);
		uint32_t room = WAL_PAGE_BYTES - g->off % WAL_PAGE_BYTES;
		uint32_t n = tot - done < room ? tot - done : room;
		assert_true(g->off + n <= WAL_BYTES_MAX);
		memcpy(g->wal + g->off, rec + done, n);
		done += n;
		g->off += n;
	}
	w->end_raw = BASE_LSN + g->off;
	g->len = g->off;
	g->off = align8(g->off);
	g->prev = w->lsn;
}

/* XLOG_SWITCH: the rest of the segment is unused; its pages get bare headers. */
static void gen_switch(struct gen *g)
{
	gen_record(g, WAL_RM_XLOG, WAL_XLOG_SWITCH, 0);
	g->switch_end = g->recs[g->count - 1].end_raw;
	uint32_t seg_end = (g->off + SEG_BYTES - 1) / SEG_BYTES * SEG_BYTES;
	g->off = (g->off + WAL_PAGE_BYTES - 1) / WAL_PAGE_BYTES * WAL_PAGE_BYTES;
	while (g->off < seg_end) {
		gen_page_header(g, 0);
		g->off = (g->off + WAL_PAGE_BYTES - 1) / WAL_PAGE_BYTES * WAL_PAGE_BYTES;
	}
}

static uint32_t random_data_len(struct gen *g)
{
	uint32_t kind = below(&g->rng, 10);
	if (kind < 4)
		return below(&g->rng, 40); /* tiny */
	if (kind < 8)
		return 100 + below(&g->rng, 3000);
	return 8000 + below(&g->rng, 30000); /* several pages */
}

/* Segment 3 filled, a record across into segment 4, an XLOG_SWITCH mid segment
 * 4, then records into segment 5 ending mid-page. */
static int setup(void **state)
{
	(void)state;
	memset(&G, 0, sizeof(G));
	G.wal = calloc(1, WAL_BYTES_MAX);
	assert_non_null(G.wal);
	G.rng = 0x9E3779B97F4A7C15ull;
	G.prev = BASE_LSN - 0x100;
	while (G.off < SEG_BYTES - 60000)
		gen_record(&G, WAL_RM_HEAP, 0, random_data_len(&G));
	gen_record(&G, WAL_RM_HEAP, 0, 100000); /* into the next segment */
	assert_true(G.recs[G.count - 1].lsn < BASE_LSN + SEG_BYTES);
	assert_true(G.recs[G.count - 1].end_raw > BASE_LSN + SEG_BYTES + WAL_PAGE_BYTES);
	while (G.off < SEG_BYTES + SEG_BYTES / 2)
		gen_record(&G, WAL_RM_HEAP2, 0, random_data_len(&G));
	gen_switch(&G);
	while (G.off < 2 * SEG_BYTES + 300000)
		gen_record(&G, WAL_RM_BTREE, 0, random_data_len(&G));
	gen_record(&G, WAL_RM_XACT, 0, 3); /* the last, tiny: the WAL ends mid-page */
	assert_true(G.len % WAL_PAGE_BYTES != 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (uint32_t i = 0; i < G.count; i++)
		free(G.recs[i].raw);
	free(G.wal);
	return 0;
}

static int collect(void *ctx, const struct wal_record *rec)
{
	struct got *got = ctx;
	assert_true(got->count < RECORDS_MAX);
	struct written *w = &got->recs[got->count++];
	/* end_raw holds the reader's end_lsn: the MAXALIGNed end. */
	*w = (struct written){ .lsn = rec->lsn, .end_raw = rec->end_lsn, .tot_len = rec->tot_len };
	w->raw = malloc(rec->tot_len);
	assert_non_null(w->raw);
	memcpy(w->raw, rec->raw, rec->tot_len);
	return 0;
}

static void got_free(struct got *got)
{
	for (uint32_t i = 0; i < got->count; i++)
		free(got->recs[i].raw);
	got->count = 0;
}

/* What was handed over is exactly the first `count` records written, in order;
 * the first `from` were checked before. */
static void expect_records_from(const struct got *got, uint32_t from, uint32_t count)
{
	assert_int_equal(got->count, count);
	for (uint32_t i = from; i < count; i++) {
		const struct written *w = &G.recs[i], *r = &got->recs[i];
		assert_int_equal(r->lsn, w->lsn);
		assert_int_equal(r->end_raw, align8((uint32_t)(w->end_raw - BASE_LSN)) + BASE_LSN);
		assert_int_equal(r->tot_len, w->tot_len);
		assert_memory_equal(r->raw, w->raw, w->tot_len);
	}
}

static void expect_records(const struct got *got, uint32_t count)
{
	expect_records_from(got, 0, count);
}

/* How many records were written wholly before the stream offset `known`. */
static uint32_t records_before(uint32_t known)
{
	uint32_t n = 0;
	while (n < G.count && G.recs[n].end_raw <= BASE_LSN + known)
		n++;
	return n;
}

static struct wal_reader *reader(void)
{
	struct wal_reader *r;
	assert_int_equal(wal_reader_create(BASE_LSN, SEG_BYTES, &r), 0);
	return r;
}

/* Page p with its first `valid` bytes; the rest is fill (zeros or junk). */
static void page_known(uint8_t page[WAL_PAGE_BYTES], uint32_t p, uint32_t valid, uint8_t fill)
{
	memset(page, fill, WAL_PAGE_BYTES);
	memcpy(page, G.wal + (size_t)p * WAL_PAGE_BYTES, valid);
}

static int feed_whole(struct wal_reader *r, struct got *got)
{
	int rc = 0;
	for (uint32_t p = 0; rc == 0 && p < WAL_BYTES_MAX / WAL_PAGE_BYTES; p++)
		rc = wal_reader_page(r, G.wal + (size_t)p * WAL_PAGE_BYTES,
				     BASE_LSN + (ar_lsn)p * WAL_PAGE_BYTES, collect, got);
	return rc;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Increasing valid steps for page p, ending with the whole page: 0, inside the
 * header, at and around the record boundaries on it, and random ones; some
 * repeated (feeding the same bytes again must change nothing). */
static uint32_t page_steps(uint32_t p, uint64_t *rng, uint32_t steps[])
{
	uint32_t n = 0, lo = p * WAL_PAGE_BYTES, hi = lo + WAL_PAGE_BYTES;
	steps[n++] = 0;
	steps[n++] = 1 + below(rng, WAL_SHORT_PAGE_HEADER_BYTES - 1);
	steps[n++] = WAL_SHORT_PAGE_HEADER_BYTES + below(rng, 17);
	for (uint32_t i = 0; i < G.count && n < 200; i++) {
		uint32_t s = (uint32_t)(G.recs[i].lsn - BASE_LSN);
		uint32_t e = (uint32_t)(G.recs[i].end_raw - BASE_LSN);
		uint32_t at[] = { s + 2, s + 4, s + 13, e - 1, e, e + 3 };
		for (uint32_t k = 0; k < sizeof(at) / sizeof(at[0]); k++)
			if (at[k] >= lo && at[k] < hi && below(rng, 3) != 0)
				steps[n++] = at[k] - lo;
	}
	for (uint32_t k = below(rng, 6); k > 0; k--)
		steps[n++] = below(rng, WAL_PAGE_BYTES);
	qsort(steps, n, sizeof(steps[0]), cmp_u32);
	steps[n++] = WAL_PAGE_BYTES;
	return n;
}

/* Each page fed in increasing parts; junk or zeros beyond valid. */
static int feed_parts(struct wal_reader *r, struct got *got, uint64_t seed)
{
	static uint8_t page[WAL_PAGE_BYTES];
	uint32_t steps[256];
	uint64_t rng = seed;
	int rc = 0;
	for (uint32_t p = 0; rc == 0 && p < WAL_BYTES_MAX / WAL_PAGE_BYTES; p++) {
		uint32_t n = page_steps(p, &rng, steps);
		rc = AR_WAL_MORE;
		for (uint32_t k = 0; k < n && rc == AR_WAL_MORE; k++) {
			page_known(page, p, steps[k], below(&rng, 2) ? 0 : 0xA5);
			rc = wal_reader_page_part(r, page, BASE_LSN + (ar_lsn)p * WAL_PAGE_BYTES,
						  steps[k], collect, got);
		}
		assert_int_not_equal(rc, AR_WAL_MORE); /* the whole page never waits */
	}
	return rc;
}

/* 1. Whole pages and the same pages in random parts give the same records. */
static void test_parts_match_whole_pages(void **state)
{
	(void)state;
	static struct got whole, parts;
	struct wal_reader *r = reader();
	assert_int_equal(feed_whole(r, &whole), AR_WAL_END);
	expect_records(&whole, G.count);
	ar_lsn end = wal_reader_next_lsn(r);
	assert_int_equal(end, BASE_LSN + align8(G.len));
	assert_int_equal(wal_reader_system_id(r), SYSTEM_ID);
	wal_reader_destroy(r);

	for (uint64_t seed = 1; seed <= SEEDS; seed++) {
		r = reader();
		assert_int_equal(feed_parts(r, &parts, seed * 0x2545F4914F6CDD1Dull), AR_WAL_END);
		expect_records(&parts, G.count);
		assert_int_equal(wal_reader_next_lsn(r), end);
		wal_reader_destroy(r);
		got_free(&parts);
	}
	got_free(&whole);
}

/* The stream known up to `known` bytes, fed from page *p on: whole pages, then
 * the last one in part; the rest of it zeros, as on disk. */
static int feed_stream(struct wal_reader *r, struct got *got, uint32_t *p, uint32_t known)
{
	static uint8_t page[WAL_PAGE_BYTES];
	int rc = 0;
	while (rc == 0 && *p * WAL_PAGE_BYTES < known) {
		uint32_t valid = known - *p * WAL_PAGE_BYTES;
		valid = valid < WAL_PAGE_BYTES ? valid : WAL_PAGE_BYTES;
		page_known(page, *p, valid, 0);
		rc = wal_reader_page_part(r, page, BASE_LSN + (ar_lsn)*p * WAL_PAGE_BYTES, valid,
					  collect, got);
		if (rc == 0)
			(*p)++;
	}
	return rc;
}

static bool in_switch_skip(uint32_t known)
{
	ar_lsn at = BASE_LSN + known;
	ar_lsn seg_end = (G.switch_end + SEG_BYTES - 1) / SEG_BYTES * SEG_BYTES;
	return at >= G.switch_end - G.switch_end % WAL_PAGE_BYTES && at < seg_end;
}

/* 2. A stream cut mid-page waits for more, with exactly the records before the
 * cut handed over; more bytes continue it without a record twice. */
static void test_stream_cut_mid_page(void **state)
{
	(void)state;
	static struct got got;
	uint64_t rng = 42;
	for (int round = 0; round < 16; round++) {
		struct wal_reader *r = reader();
		uint32_t p = 0, known = 0, checked = 0;
		/* Bounded: known grows by at least one byte a pass. */
		while (known < G.len) {
			uint32_t step = 1 + below(&rng, round % 2 ? 300 : 40000);
			known = known + step < G.len ? known + step : G.len;
			int rc = feed_stream(r, &got, &p, known);
			if (known % WAL_PAGE_BYTES != 0 && !in_switch_skip(known))
				assert_int_equal(rc, AR_WAL_MORE);
			else
				assert_true(rc == 0 || rc == AR_WAL_MORE);
			uint32_t count = records_before(known);
			expect_records_from(&got, checked, count);
			checked = count;
		}
		/* The zeros after the last record are known at last: the end. */
		assert_int_equal(feed_stream(r, &got, &p, WAL_BYTES_MAX), AR_WAL_END);
		expect_records(&got, G.count);
		wal_reader_destroy(r);
		got_free(&got);
	}
}

/* 3. After AR_WAL_MORE only the same page, with as many bytes or more, is taken. */
static void test_next_page_refused(void **state)
{
	(void)state;
	static struct got got;
	static uint8_t page[WAL_PAGE_BYTES];
	/* Page 2 starts inside a record: refused both mid-header and mid-continuation. */
	const uint32_t cuts[] = { 10, WAL_SHORT_PAGE_HEADER_BYTES + 100, 5000 };
	for (uint32_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
		struct wal_reader *r = reader();
		uint32_t p = 0;
		assert_int_equal(feed_stream(r, &got, &p, 2 * WAL_PAGE_BYTES + cuts[c]),
				 AR_WAL_MORE);
		uint32_t before = got.count;
		page_known(page, 3, WAL_PAGE_BYTES, 0);
		assert_int_equal(
		    wal_reader_page(r, page, BASE_LSN + 3 * WAL_PAGE_BYTES, collect, &got),
		    -EINVAL);
		assert_non_null(strstr(wal_reader_error(r), "unfinished"));
		page_known(page, 2, cuts[c] - 1, 0);
		assert_int_equal(wal_reader_page_part(r, page, BASE_LSN + 2 * WAL_PAGE_BYTES,
						      cuts[c] - 1, collect, &got),
				 -EINVAL);
		assert_int_equal(got.count, before);
		/* The same page, whole, finishes it; the rest follows as if never refused. */
		assert_int_equal(feed_stream(r, &got, &p, WAL_BYTES_MAX), AR_WAL_END);
		expect_records(&got, G.count);
		wal_reader_destroy(r);
		got_free(&got);
	}
}

/* The first record that starts and ends on one page, after the first page. */
static uint32_t record_within_a_page(void)
{
	for (uint32_t i = 1; i < G.count; i++) {
		ar_lsn s = G.recs[i].lsn, e = G.recs[i].end_raw - 1;
		if (s / WAL_PAGE_BYTES == e / WAL_PAGE_BYTES && s % WAL_PAGE_BYTES > 1000 &&
		    G.recs[i].tot_len > 100)
			return i;
	}
	fail_msg("no record within a page");
	return 0;
}

/* 4a. A corrupt record inside the valid bytes is an error naming its LSN. */
static void test_corrupt_record_inside_valid(void **state)
{
	(void)state;
	static struct got got;
	uint32_t i = record_within_a_page();
	uint32_t s = (uint32_t)(G.recs[i].lsn - BASE_LSN),
		 e = (uint32_t)(G.recs[i].end_raw - BASE_LSN);
	G.wal[e - 1] ^= 0x40; /* a data byte: the CRC no longer matches */
	struct wal_reader *r = reader();
	uint32_t p = 0;
	/* Not wholly known yet: no verdict. */
	assert_int_equal(feed_stream(r, &got, &p, e - 1), AR_WAL_MORE);
	expect_records(&got, i);
	int rc = feed_stream(r, &got, &p, e);
	G.wal[e - 1] ^= 0x40;
	assert_int_equal(rc, -AR_ECORRUPT);
	expect_records(&got, i);
	char lsn[32];
	snprintf(lsn, sizeof(lsn), "%X/%08X", (unsigned)((BASE_LSN + s) >> 32),
		 (unsigned)(BASE_LSN + s));
	assert_non_null(strstr(wal_reader_error(r), lsn));
	assert_non_null(strstr(wal_reader_error(r), "checksum"));
	wal_reader_destroy(r);
	got_free(&got);
}

/* 4b. Zeros inside the valid bytes where a record or a page header should be are
 * the end of WAL; the same zeros beyond valid only mean "more". */
static void test_zeros_inside_valid_end(void **state)
{
	(void)state;
	static struct got got;
	static uint8_t zeros[WAL_PAGE_BYTES];
	uint32_t end = align8(G.len), p = 0;
	struct wal_reader *r = reader();
	/* Three bytes of the zero length after the last record: not yet a verdict. */
	assert_int_equal(feed_stream(r, &got, &p, end + 3), AR_WAL_MORE);
	assert_int_equal(feed_stream(r, &got, &p, end + 4), AR_WAL_END);
	expect_records(&got, G.count);
	wal_reader_destroy(r);
	got_free(&got);

	/* A zeroed page header, read from a page start. */
	ar_lsn next_page = BASE_LSN + (G.len / WAL_PAGE_BYTES + 1) * WAL_PAGE_BYTES;
	assert_int_equal(wal_reader_create(next_page, SEG_BYTES, &r), 0);
	const uint32_t valid[] = { 0, 20, WAL_SHORT_PAGE_HEADER_BYTES - 1 };
	for (uint32_t k = 0; k < sizeof(valid) / sizeof(valid[0]); k++)
		assert_int_equal(wal_reader_page_part(r, zeros, next_page, valid[k], collect, &got),
				 AR_WAL_MORE);
	assert_int_equal(
	    wal_reader_page_part(r, zeros, next_page, WAL_SHORT_PAGE_HEADER_BYTES, collect, &got),
	    AR_WAL_END);
	assert_int_equal(got.count, 0);
	wal_reader_destroy(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parts_match_whole_pages),
		cmocka_unit_test(test_stream_cut_mid_page),
		cmocka_unit_test(test_next_page_refused),
		cmocka_unit_test(test_corrupt_record_inside_valid),
		cmocka_unit_test(test_zeros_inside_valid_end),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
