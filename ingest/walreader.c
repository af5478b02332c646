/*
 * walreader.c - Reassembles WAL records from consecutive 8 KiB pages.
 *
 * States: between records (next is where the next record starts), or inside a
 * record that continues on the next page (rec holds its first part).  Per page:
 * check the header (magic, address, flags; the long header of a segment's first
 * page names the system and the segment size), take the continuation the page
 * starts with, then the records that start on it.
 *
 * Ends of WAL, all clean (AR_WAL_END): a page whose address is not the one
 * expected (a recycled segment), a zeroed page, a zero record length.  After an
 * XLOG_SWITCH record the rest of the segment is skipped.  A page flagged
 * XLP_FIRST_IS_OVERWRITE_CONTRECORD (after a primary crash) ends the partial
 * record we hold: it was never completed and is dropped.
 *
 * A page may be fed in parts (wal_reader_page_part: only its first `valid` bytes
 * are known yet, as from a live stream).  Bytes at or beyond valid never mean
 * anything, zeros there included.  Each part of the page is taken whole or not at
 * all, in three steps done once each, so feeding the page again resumes where the
 * last feed stopped and hands no record over twice:
 *
 *   PART_HEADER        -> PART_CONTINUATION  the header is within valid [part_header]
 *   PART_CONTINUATION  -> PART_RECORDS       the continuation ends within valid,
 *                                            or fills a whole page [part_continuation]
 *   PART_RECORDS       -> (page done)        every record is handed over; one that
 *                                            goes on to the next page is taken
 *                                            from a whole page only [page_records]
 *
 * Inside PART_RECORDS the position is r->next itself: each record handed over moves
 * it, so nothing else needs remembering.  A whole page (wal_reader_page) never
 * waits, so it runs the three steps in one call exactly as before parts existed.
 */
#include "ingest/walrec.h"

#include "common/assert.h"
#include "common/bytes.h"
#include "common/err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How far the page being fed has got; each step is done once, in this order. */
enum part_step {
	PART_HEADER,       /* nothing taken from the page yet */
	PART_CONTINUATION, /* header checked: part_info, part_hdr */
	PART_RECORDS,      /* continuation taken: records may start at part_off */
};

struct wal_reader {
	uint32_t seg_bytes;
	uint64_t system_id;
	bool have_system_id;
	ar_lsn next; /* where the next record starts */
	ar_lsn prev; /* the last record's start, for xl_prev */
	bool have_prev;
	bool skip_to_segment_end;
	uint8_t *rec; /* a record being assembled */
	size_t rec_len;
	size_t rec_need;
	size_t rec_cap;
	ar_lsn rec_start;
	bool in_record;
	bool skipping; /* started inside a record: skip its continuation */
	struct wal_record decoded;
	/* The page whose feed returned AR_WAL_MORE: only it may be fed next. */
	bool part_active;
	ar_lsn part_lsn;
	uint32_t part_valid;
	enum part_step part_step;
	uint16_t part_info;
	uint32_t part_hdr;
	uint32_t part_off;
	char err[256];
};

static ar_lsn maxalign(ar_lsn x)
{
	return (x + 7) & ~(ar_lsn)7;
}

static int reader_fail(struct wal_reader *r, ar_lsn lsn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reader_fail(struct wal_reader *r, ar_lsn lsn, const char *fmt, ...)
{
	char what[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(r->err, sizeof(r->err), "%s at %X/%08X", what, (unsigned)(lsn >> 32),
		 (unsigned)lsn);
	return -AR_ECORRUPT;
}

int wal_reader_create(ar_lsn start_lsn, uint32_t seg_bytes, struct wal_reader **out)
{
	if (seg_bytes < 1024 * 1024 || (seg_bytes & (seg_bytes - 1)) != 0)
		return -EINVAL;
	struct wal_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->seg_bytes = seg_bytes;
	r->next = start_lsn;
	*out = r;
	return 0;
}

void wal_reader_destroy(struct wal_reader *r)
{
	if (!r)
		return;
	free(r->rec);
	free(r);
}

const char *wal_reader_error(const struct wal_reader *r)
{
	return r->err;
}

ar_lsn wal_reader_next_lsn(const struct wal_reader *r)
{
	return r->next;
}

void wal_reader_expect_system(struct wal_reader *r, uint64_t system_id)
{
	r->system_id = system_id;
	r->have_system_id = true;
}

uint64_t wal_reader_system_id(const struct wal_reader *r)
{
	return r->system_id;
}

static int rec_append(struct wal_reader *r, const uint8_t *p, size_t n)
{
	if (r->rec_len + n > r->rec_cap) {
		size_t cap = r->rec_cap ? r->rec_cap : 65536;
		while (cap < r->rec_len + n)
			cap *= 2;
		uint8_t *b = realloc(r->rec, cap);
		if (!b)
			return -ENOMEM;
		r->rec = b;
		r->rec_cap = cap;
	}
	memcpy(r->rec + r->rec_len, p, n);
	r->rec_len += n;
	return 0;
}

/* A whole record is in r->rec: check it against the chain, decode, hand over. */
static int rec_complete(struct wal_reader *r, ar_lsn end, wal_record_fn *fn, void *ctx)
{
	char why[160];
	r->in_record = false;
	if (r->have_prev && ar_get_le64(r->rec + 8) != r->prev)
		return reader_fail(r, r->rec_start, "record with incorrect prev-link %" PRIX64,
				   ar_get_le64(r->rec + 8));
	int rc = wal_record_decode(r->rec, r->rec_len, &r->decoded, why);
	if (rc < 0)
		return reader_fail(r, r->rec_start, "%s", why);
	r->decoded.lsn = r->rec_start;
	r->decoded.end_lsn = maxalign(end); /* PostgreSQL's EndRecPtr: pages carry it */
	r->prev = r->rec_start;
	r->have_prev = true;
	r->next = maxalign(end);
	if (r->decoded.rmid == WAL_RM_XLOG && (r->decoded.info & 0xF0) == WAL_XLOG_SWITCH) {
		r->next = ((end - 1) / r->seg_bytes + 1) * r->seg_bytes;
		r->skip_to_segment_end = true;
	}
	return fn(ctx, &r->decoded);
}

/* Check the page header; *hdr_out is its length.  AR_WAL_END for a page that is
 * not (yet) part of this WAL: zeroed, or recycled from an older segment. */
static int page_header(struct wal_reader *r, const uint8_t *page, ar_lsn page_lsn,
		       uint16_t *info_out, uint32_t *hdr_out)
{
	uint16_t magic = ar_get_le16(page), info = ar_get_le16(page + 2);
	uint64_t addr = ar_get_le64(page + 8);

	if (magic == 0 && addr == 0)
		return AR_WAL_END;
	/* Garbage is an error; a WAL page of another address is a recycled segment. */
	if (magic != WAL_PAGE_MAGIC)
		return reader_fail(r, page_lsn, "invalid magic number %04X in WAL page", magic);
	if (addr != page_lsn)
		return AR_WAL_END; /* a recycled segment: where the WAL ends */
	if (info & ~0x000Fu)
		return reader_fail(r, page_lsn, "invalid info bits %04X in WAL page", info);
	bool seg_start = page_lsn % r->seg_bytes == 0;
	if (seg_start != ((info & WAL_XLP_LONG_HEADER) != 0))
		return reader_fail(r, page_lsn, "long page header %s",
				   seg_start ? "missing" : "unexpected");
	*hdr_out = seg_start ? WAL_LONG_PAGE_HEADER_BYTES : WAL_SHORT_PAGE_HEADER_BYTES;
	if (seg_start) {
		uint64_t sysid = ar_get_le64(page + 24);
		if (ar_get_le32(page + 32) != r->seg_bytes ||
		    ar_get_le32(page + 36) != WAL_PAGE_BYTES)
			return reader_fail(r, page_lsn,
					   "WAL segment size %u or page size %u unexpected",
					   ar_get_le32(page + 32), ar_get_le32(page + 36));
		if (r->have_system_id && sysid != r->system_id)
			return reader_fail(r, page_lsn,
					   "WAL file is from a different database system: system "
					   "identifier %" PRIu64 ", expected %" PRIu64,
					   sysid, r->system_id);
		r->system_id = sysid;
		r->have_system_id = true;
	}
	*info_out = info;
	return 0;
}

/* The continuation at the page's start.  *off_out: where records may start. */
static int page_continuation(struct wal_reader *r, const uint8_t *page, ar_lsn page_lsn,
			     uint16_t info, uint32_t hdr, uint32_t *off_out, bool *more_out,
			     wal_record_fn *fn, void *ctx)
{
	uint32_t rem = ar_get_le32(page + 16), space = WAL_PAGE_BYTES - hdr;
	uint32_t n = rem < space ? rem : space;

	*off_out = hdr;
	*more_out = false;
	if (!(info & WAL_XLP_FIRST_IS_CONTRECORD)) {
		if (r->in_record && !(info & WAL_XLP_FIRST_IS_OVERWRITE_CONTRECORD))
			return reader_fail(r, page_lsn, "there is no contrecord flag");
		if (r->in_record) {
			r->in_record = false; /* never completed: dropped, as PostgreSQL does */
			r->have_prev = false;
			r->next = page_lsn + hdr;
		}
		r->skipping = false;
		return 0;
	}
	if (r->skipping || (!r->in_record && r->next <= page_lsn + hdr)) {
		r->skipping = rem > space;
		*more_out = r->skipping;
		*off_out = (uint32_t)maxalign(hdr + n);
		if (r->next < page_lsn + *off_out)
			r->next = page_lsn + *off_out;
		return 0;
	}
	if (!r->in_record)
		return 0; /* the continuation belongs to a record before our start */
	if (rem != r->rec_need - r->rec_len)
		return reader_fail(r, page_lsn, "invalid contrecord length %u (expected %zu)", rem,
				   r->rec_need - r->rec_len);
	int rc = rec_append(r, page + hdr, n);
	if (rc < 0)
		return rc;
	if (r->rec_len < r->rec_need) {
		*more_out = true;
		return 0;
	}
	rc = rec_complete(r, page_lsn + hdr + n, fn, ctx);
	*off_out = (uint32_t)maxalign(hdr + n);
	return rc;
}

/* The page must be fed again with more of it known: remember it. */
static int part_more(struct wal_reader *r)
{
	r->part_active = true;
	return AR_WAL_MORE;
}

static uint32_t header_bytes(const struct wal_reader *r, ar_lsn page_lsn)
{
	return page_lsn % r->seg_bytes == 0 ? WAL_LONG_PAGE_HEADER_BYTES
					    : WAL_SHORT_PAGE_HEADER_BYTES;
}

/* Step 1: whether the page is read at all, then its header once wholly known.
 * *go_on: the page has more to give. */
static int part_header(struct wal_reader *r, const uint8_t *page, ar_lsn page_lsn, uint32_t valid,
		       bool *go_on)
{
	*go_on = false;
	if (r->skip_to_segment_end && page_lsn < r->next)
		return 0; /* after XLOG_SWITCH: the rest of the segment is unused */
	bool before_start = page_lsn + WAL_PAGE_BYTES <= r->next && !r->in_record && !r->skipping;
	if (before_start && page_lsn % r->seg_bytes != 0)
		return 0; /* before where we start */
	/* Nothing changes until it is known: a zeroed header may be one not sent yet. */
	if (valid < header_bytes(r, page_lsn))
		return part_more(r);
	r->skip_to_segment_end = false;
	/* A segment's first page is always checked: it names the database system. */
	int rc = page_header(r, page, page_lsn, &r->part_info, &r->part_hdr);
	if (rc != 0 || before_start)
		return rc;
	r->part_step = PART_CONTINUATION;
	*go_on = true;
	return 0;
}

/* Step 2: the continuation the page starts with, taken only once all of it that
 * is on this page is known, so it is never appended twice. */
static int part_continuation(struct wal_reader *r, const uint8_t *page, ar_lsn page_lsn,
			     uint32_t valid, bool *go_on, wal_record_fn *fn, void *ctx)
{
	uint32_t hdr = r->part_hdr, space = WAL_PAGE_BYTES - hdr;
	bool more;

	*go_on = false;
	if (r->part_info & WAL_XLP_FIRST_IS_CONTRECORD) {
		uint32_t rem = ar_get_le32(page + 16); /* in the header: known */
		if (hdr + (rem < space ? rem : space) > valid)
			return part_more(r);
	}
	int rc =
	    page_continuation(r, page, page_lsn, r->part_info, hdr, &r->part_off, &more, fn, ctx);
	if (rc != 0 || more || r->skip_to_segment_end)
		return rc;
	r->part_step = PART_RECORDS;
	*go_on = true;
	return 0;
}

/* Step 3: the records that start on the page, from r->next on; each is handed
 * over once it is wholly known, and one going on to the next page is taken only
 * from a whole page. */
static int page_records(struct wal_reader *r, const uint8_t *page, ar_lsn page_lsn, uint32_t valid,
			wal_record_fn *fn, void *ctx)
{
	ar_lsn pos = page_lsn + r->part_off > r->next ? page_lsn + r->part_off : r->next;
	/* Bounded: each pass moves pos forward by a whole record or ends the page. */
	while (pos + 8 <= page_lsn + WAL_PAGE_BYTES) {
		uint32_t o = (uint32_t)(pos - page_lsn);
		if (o + 4 > valid)
			return part_more(r); /* its length is not known yet */
		uint32_t tot_len = ar_get_le32(page + o);
		if (tot_len == 0)
			return AR_WAL_END; /* zeroed space: nothing was written here */
		if (tot_len < WAL_RECORD_HEADER_BYTES || tot_len > WAL_RECORD_BYTES_MAX)
			return reader_fail(r, pos, "invalid record length %u", tot_len);
		uint32_t n = tot_len < WAL_PAGE_BYTES - o ? tot_len : WAL_PAGE_BYTES - o;
		if (o + n > valid)
			return part_more(r);
		r->rec_start = pos;
		r->rec_len = 0;
		r->rec_need = tot_len;
		int rc = rec_append(r, page + o, n);
		if (rc < 0)
			return rc;
		if (n < tot_len) {
			r->in_record = true;
			return 0;
		}
		rc = rec_complete(r, pos + tot_len, fn, ctx);
		if (rc != 0 || r->skip_to_segment_end)
			return rc;
		pos = r->next;
	}
	if (r->next < page_lsn + WAL_PAGE_BYTES)
		r->next = page_lsn + WAL_PAGE_BYTES;
	return 0;
}

/* A feed out of order: a caller's mistake, refused without a change. */
static int part_refuse(struct wal_reader *r, ar_lsn page_lsn, uint32_t valid)
{
	snprintf(r->err, sizeof(r->err),
		 "WAL page %X/%08X (%u bytes) fed while page %X/%08X (%u bytes) is unfinished",
		 (unsigned)(page_lsn >> 32), (unsigned)page_lsn, valid,
		 (unsigned)(r->part_lsn >> 32), (unsigned)r->part_lsn, r->part_valid);
	return -EINVAL;
}

int wal_reader_page_part(struct wal_reader *r, const uint8_t *page, ar_lsn page_lsn, uint32_t valid,
			 wal_record_fn *fn, void *ctx)
{
	bool go_on = true;
	int rc = 0;

	if (valid > WAL_PAGE_BYTES)
		return -EINVAL;
	if (r->part_active && (page_lsn != r->part_lsn || valid < r->part_valid))
		return part_refuse(r, page_lsn, valid);
	if (!r->part_active)
		r->part_step = PART_HEADER;
	r->part_active = false; /* part_more() sets it again */
	r->part_lsn = page_lsn;
	r->part_valid = valid;
	if (r->part_step == PART_HEADER)
		rc = part_header(r, page, page_lsn, valid, &go_on);
	if (go_on && r->part_step == PART_CONTINUATION)
		rc = part_continuation(r, page, page_lsn, valid, &go_on, fn, ctx);
	if (go_on)
		rc = page_records(r, page, page_lsn, valid, fn, ctx);
	/* A whole page never waits: wal_reader_page's callers see no AR_WAL_MORE. */
	AR_ASSERT(!r->part_active || valid < WAL_PAGE_BYTES);
	return rc;
}

int wal_reader_page(struct wal_reader *r, const uint8_t *page, ar_lsn page_lsn, wal_record_fn *fn,
		    void *ctx)
{
	return wal_reader_page_part(r, page, page_lsn, WAL_PAGE_BYTES, fn, ctx);
}
