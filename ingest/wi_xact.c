/*
 * wi_xact.c - Transactions into the SLRUs: clog status bits of commits and aborts
 * (subtransactions, two-phase), relations dropped by them, multixact offsets
 * and members, SLRU page zeroing and truncation, and the commit-timestamp index.
 * Page layouts are PostgreSQL 15's (clog.c, multixact.c), as byte edits.
 */
#include "ingest/walingest_int.h"

#include "common/bytes.h"
#include "common/err.h"

#include <errno.h>
#include <string.h>

#define XACT_COMMIT 0x00
#define XACT_ABORT 0x20
#define XACT_COMMIT_PREPARED 0x30
#define XACT_ABORT_PREPARED 0x40
#define XACT_OPMASK 0x70
#define XACT_HAS_INFO 0x80
#define XINFO_DBINFO (1u << 0)
#define XINFO_SUBXACTS (1u << 1)
#define XINFO_RELFILENODES (1u << 2)
#define XINFO_INVALS (1u << 3)
#define XINFO_TWOPHASE (1u << 4)
#define XINFO_DROPPED_STATS (1u << 8)
#define CLOG_COMMITTED 1
#define CLOG_ABORTED 2
#define CLOG_XACTS_PER_PAGE (AR_PAGE_BYTES * 4)
#define CLOG_ZEROPAGE 0x00
#define CLOG_TRUNCATE 0x10
#define MX_ZERO_OFF_PAGE 0x00
#define MX_ZERO_MEM_PAGE 0x10
#define MX_CREATE_ID 0x20
#define MX_TRUNCATE_ID 0x30
#define MX_OFFSETS_PER_PAGE (AR_PAGE_BYTES / 4)
#define MX_GROUP_BYTES 20 /* 4 flag bytes, then 4 member xids */
#define MX_GROUPS_PER_PAGE (AR_PAGE_BYTES / MX_GROUP_BYTES)
#define MX_MEMBERS_PER_PAGE (MX_GROUPS_PER_PAGE * 4)
#define MX_MAX_MEMBER_SEGMENT (0xFFFFFFFFu / MX_MEMBERS_PER_PAGE / WI_SLRU_PAGES_PER_SEGMENT)
#define PG_USECS_PER_SEC 1000000

/* ---- SLRU pages and segments ---- */

static struct ar_key slru_key(enum ar_slru kind, uint32_t pageno)
{
	return ar_key_slru_block(kind, pageno / WI_SLRU_PAGES_PER_SEGMENT,
				 pageno % WI_SLRU_PAGES_PER_SEGMENT);
}

static int slru_extend(struct walingest *wi, enum ar_slru kind, uint32_t pageno)
{
	uint32_t segno = pageno / WI_SLRU_PAGES_PER_SEGMENT;
	struct ar_key sk = ar_key_slru_seg_size(kind, segno);
	bool exists;
	uint32_t n;
	int rc = wi_size_get(wi, &sk, &exists, &n);
	if (rc < 0)
		return rc;
	if (!exists) {
		uint8_t e[4];
		ar_put_be32(e, segno);
		rc = wi_set_add(wi, &wi->slrudir[kind], e);
		if (rc < 0)
			return rc;
		n = 0;
	}
	uint32_t want = pageno % WI_SLRU_PAGES_PER_SEGMENT + 1;
	return !exists || n < want ? wi_size_set(wi, &sk, true, n > want ? n : want) : 0;
}

static int slru_page_exists(struct walingest *wi, enum ar_slru kind, uint32_t pageno, bool *exists)
{
	struct ar_key sk = ar_key_slru_seg_size(kind, pageno / WI_SLRU_PAGES_PER_SEGMENT);
	uint32_t n;
	int rc = wi_size_get(wi, &sk, exists, &n);
	if (rc == 0 && *exists)
		*exists = pageno % WI_SLRU_PAGES_PER_SEGMENT < n;
	return rc;
}

int wi_slru_page_image(struct walingest *wi, enum ar_slru kind, uint32_t pageno,
		       const uint8_t *page)
{
	if (!wi->meta)
		return 0;
	static const uint8_t zeros[AR_PAGE_BYTES];
	struct ar_key k = slru_key(kind, pageno);
	int rc = wi_put_image(wi, &k, page ? page : zeros, AR_PAGE_BYTES);
	return rc < 0 ? rc : slru_extend(wi, kind, pageno);
}

static int slru_drop_segment(struct walingest *wi, enum ar_slru kind, uint32_t segno)
{
	uint8_t e[4];
	ar_put_be32(e, segno);
	int rc = wi_set_remove(wi, &wi->slrudir[kind], e);
	struct ar_key sk = ar_key_slru_seg_size(kind, segno);
	return rc < 0 ? rc : wi_size_set(wi, &sk, false, 0);
}

/* PostgreSQL's PagePrecedes for clog and multixact offsets: page a's first id
 * precedes both page b's first and last ids, in circular (mod 2^32) order. */
static bool page_precedes(enum ar_slru kind, uint32_t a, uint32_t b)
{
	uint32_t per = kind == AR_SLRU_CLOG ? CLOG_XACTS_PER_PAGE : MX_OFFSETS_PER_PAGE;
	/* FirstNormalTransactionId + 1, FirstMultiXactId + 1: as PostgreSQL computes */
	uint32_t first = kind == AR_SLRU_CLOG ? 4 : 2;
	uint32_t ida = a * per + first, idb = b * per + first;
	return (int32_t)(ida - idb) < 0 && (int32_t)(ida - (idb + per - 1)) < 0;
}

/* Remove every segment whose pages all precede cutoff_page (rounded down to its
 * segment, as SimpleLruTruncate), in PostgreSQL's circular order. */
static int slru_truncate_before(struct walingest *wi, enum ar_slru kind, uint32_t cutoff_page)
{
	struct wi_set *s = &wi->slrudir[kind];
	int rc = wi_set_load(wi, s);
	uint32_t cutoff = cutoff_page - cutoff_page % WI_SLRU_PAGES_PER_SEGMENT;
	for (uint32_t off = 0; rc == 0 && off < s->len;) {
		uint32_t segno = ar_get_be32(s->data + off), len = s->len;
		uint32_t first = segno * WI_SLRU_PAGES_PER_SEGMENT;
		if (page_precedes(kind, first, cutoff) &&
		    page_precedes(kind, first + WI_SLRU_PAGES_PER_SEGMENT - 1, cutoff))
			rc = slru_drop_segment(wi, kind, segno);
		if (s->len == len)
			off += 4; /* kept: a dropped entry left the set */
	}
	return rc;
}

static int slru_set_u32(struct walingest *wi, enum ar_slru kind, uint32_t pageno, uint32_t off,
			uint32_t v)
{
	struct ar_key k = slru_key(kind, pageno);
	int rc = 0;
	for (int i = 0; i < 4 && rc == 0; i++)
		rc = wi_edit_mask(wi, &k, (uint16_t)(off + i), 0xFF, (uint8_t)(v >> (8 * i)));
	return rc;
}

/* ---- transactions ---- */

static int clog_set(struct walingest *wi, uint32_t xid, uint8_t status)
{
	uint32_t pageno = xid / CLOG_XACTS_PER_PAGE;
	uint32_t within = xid % CLOG_XACTS_PER_PAGE;
	bool exists;
	int rc = slru_page_exists(wi, AR_SLRU_CLOG, pageno, &exists);
	if (rc < 0)
		return rc;
	if (!exists)
		return wi_fail(wi, -AR_ECORRUPT,
			       "clog page %u of transaction %u was never initialised", pageno, xid);
	struct ar_key k = slru_key(AR_SLRU_CLOG, pageno);
	uint8_t shift = (uint8_t)(2 * (within % 4));
	return wi_edit_mask(wi, &k, (uint16_t)(within / 4), (uint8_t)(3u << shift),
			    (uint8_t)(status << shift));
}

/* The parts of a commit or abort record Argon uses. */
struct xact_parsed {
	int64_t time;
	uint32_t xid;
	uint32_t nsub;
	const uint8_t *subs;
	uint32_t nrels;
	const uint8_t *rels;
};

static int take_array(const struct wal_record *rec, uint32_t *off, uint32_t elem, uint32_t *n_out,
		      const uint8_t **p_out)
{
	if (rec->main_data_len - *off < 4)
		return -1;
	uint32_t n = ar_get_le32(rec->main_data + *off);
	*off += 4;
	if (n > (rec->main_data_len - *off) / elem)
		return -1;
	*n_out = n;
	*p_out = rec->main_data + *off;
	*off += n * elem;
	return 0;
}

static int xact_parse(const struct wal_record *rec, bool commit, struct xact_parsed *x)
{
	uint32_t off = 8, xinfo = 0, nskip;
	const uint8_t *skip;
	memset(x, 0, sizeof(*x));
	if (rec->main_data_len < 8)
		return -1;
	x->time = (int64_t)ar_get_le64(rec->main_data);
	x->xid = rec->xid;
	if (rec->info & XACT_HAS_INFO) {
		if (rec->main_data_len - off < 4)
			return -1;
		xinfo = ar_get_le32(rec->main_data + off);
		off += 4;
	}
	if ((xinfo & XINFO_DBINFO) && (off += 8) > rec->main_data_len)
		return -1;
	if ((xinfo & XINFO_SUBXACTS) && take_array(rec, &off, 4, &x->nsub, &x->subs) < 0)
		return -1;
	if ((xinfo & XINFO_RELFILENODES) && take_array(rec, &off, 12, &x->nrels, &x->rels) < 0)
		return -1;
	if ((xinfo & XINFO_DROPPED_STATS) && take_array(rec, &off, 12, &nskip, &skip) < 0)
		return -1;
	if (commit && (xinfo & XINFO_INVALS) && take_array(rec, &off, 16, &nskip, &skip) < 0)
		return -1;
	if (xinfo & XINFO_TWOPHASE) {
		if (rec->main_data_len - off < 4)
			return -1;
		x->xid = ar_get_le32(rec->main_data + off);
	}
	return 0;
}

/* Per second and per hour: the newest commit in it, as (timestamp, end LSN). */
static int time_index(struct walingest *wi, int64_t ts)
{
	if (ts < 0 || !wi->meta)
		return 0;
	uint8_t v[16];
	ar_put_le64(v, (uint64_t)ts);
	ar_put_le64(v + 8, wi->lsn);
	uint64_t sec = (uint64_t)ts / PG_USECS_PER_SEC;
	struct ar_key ks = ar_key_time_second((uint32_t)sec);
	struct ar_key kh = ar_key_time_hour((uint32_t)(sec / 3600));
	int rc = wi_put_image(wi, &ks, v, sizeof(v));
	return rc < 0 ? rc : wi_put_image(wi, &kh, v, sizeof(v));
}

int wi_xact(struct walingest *wi, const struct wal_record *rec)
{
	uint8_t op = rec->info & XACT_OPMASK;
	bool commit = op == XACT_COMMIT || op == XACT_COMMIT_PREPARED;
	if (!commit && op != XACT_ABORT && op != XACT_ABORT_PREPARED)
		return 0;
	struct xact_parsed x;
	if (xact_parse(rec, commit, &x) < 0)
		return wi_fail(wi, -AR_ECORRUPT, "malformed transaction %s record",
			       commit ? "commit" : "abort");
	uint8_t status = commit ? CLOG_COMMITTED : CLOG_ABORTED;
	int rc = wi->meta ? clog_set(wi, x.xid, status) : 0;
	for (uint32_t i = 0; rc == 0 && wi->meta && i < x.nsub; i++)
		rc = clog_set(wi, ar_get_le32(x.subs + 4 * i), status);
	for (uint32_t i = 0; rc == 0 && i < x.nrels; i++) {
		const uint8_t *r = x.rels + 12 * i;
		for (uint8_t fork = 0; fork <= AR_FORK_INIT && rc == 0; fork++) {
			struct ar_rel rel = { ar_get_le32(r), ar_get_le32(r + 4),
					      ar_get_le32(r + 8), fork };
			rc = wi_rel_drop(wi, rel);
		}
	}
	wi->stats.xacts++;
	if (rc == 0 && commit)
		rc = time_index(wi, x.time);
	return rc;
}

int wi_clog(struct walingest *wi, const struct wal_record *rec)
{
	uint8_t info = rec->info & 0xF0;
	if (rec->main_data_len < 4)
		return wi_fail(wi, -AR_ECORRUPT, "short clog record");
	uint32_t pageno = ar_get_le32(rec->main_data);
	if (info == CLOG_ZEROPAGE)
		return wi_slru_page_image(wi, AR_SLRU_CLOG, pageno, NULL);
	if (info == CLOG_TRUNCATE && wi->meta)
		return slru_truncate_before(wi, AR_SLRU_CLOG, pageno);
	return 0;
}

/* ---- multixacts ---- */

/* The next multixact's offset (PostgreSQL >= 15.16 writes it at creation, and a
 * standby initialises the next offsets page when it is missing). */
static int mx_next_offset(struct walingest *wi, uint32_t mid, uint32_t page, uint32_t next_off)
{
	uint32_t next = mid + 1 ? mid + 1 : 1; /* FirstMultiXactId after wraparound */
	uint32_t next_page = next / MX_OFFSETS_PER_PAGE;
	uint32_t entry = next % MX_OFFSETS_PER_PAGE;
	bool exists = true;
	int rc = next_page == page
		     ? 0
		     : slru_page_exists(wi, AR_SLRU_MULTIXACT_OFFSETS, next_page, &exists);
	if (rc < 0)
		return rc;
	if (exists)
		return slru_set_u32(wi, AR_SLRU_MULTIXACT_OFFSETS, next_page, entry * 4, next_off);
	uint8_t fresh[AR_PAGE_BYTES];
	memset(fresh, 0, sizeof(fresh));
	ar_put_le32(fresh + entry * 4, next_off);
	wi->mxoff_preinit_page = next_page;
	return wi_slru_page_image(wi, AR_SLRU_MULTIXACT_OFFSETS, next_page, fresh);
}

static int mx_create(struct walingest *wi, const struct wal_record *rec)
{
	const uint8_t *d = rec->main_data;
	if (rec->main_data_len < 12)
		return wi_fail(wi, -AR_ECORRUPT, "short multixact create record");
	uint32_t mid = ar_get_le32(d), moff = ar_get_le32(d + 4), n = ar_get_le32(d + 8);
	if (n > (rec->main_data_len - 12) / 8)
		return wi_fail(wi, -AR_ECORRUPT, "multixact create record with %u members", n);
	wi->mxoff_preinit_page = -1;
	uint32_t page = mid / MX_OFFSETS_PER_PAGE;
	int rc = slru_set_u32(wi, AR_SLRU_MULTIXACT_OFFSETS, page, (mid % MX_OFFSETS_PER_PAGE) * 4,
			      moff);
	uint32_t next_off = moff + n ? moff + n : 1;
	if (rc == 0)
		rc = mx_next_offset(wi, mid, page, next_off);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		uint32_t off = moff + i;
		uint32_t mpage = off / MX_MEMBERS_PER_PAGE;
		uint32_t flags = ((off / 4) % MX_GROUPS_PER_PAGE) * MX_GROUP_BYTES;
		uint32_t xid = ar_get_le32(d + 12 + 8 * i);
		uint32_t status = ar_get_le32(d + 16 + 8 * i);
		struct ar_key k = slru_key(AR_SLRU_MULTIXACT_MEMBERS, mpage);
		rc = wi_edit_mask(wi, &k, (uint16_t)(flags + off % 4), 0xFF, (uint8_t)status);
		if (rc == 0)
			rc = slru_set_u32(wi, AR_SLRU_MULTIXACT_MEMBERS, mpage,
					  flags + 4 + (off % 4) * 4, xid);
	}
	wi->stats.multixacts++;
	return rc;
}

static int mx_truncate(struct walingest *wi, const struct wal_record *rec)
{
	const uint8_t *d = rec->main_data;
	if (rec->main_data_len < 20)
		return wi_fail(wi, -AR_ECORRUPT, "short multixact truncate record");
	uint32_t end_off = ar_get_le32(d + 8);
	uint32_t start_memb = ar_get_le32(d + 12), end_memb = ar_get_le32(d + 16);
	/* PostgreSQL truncates offsets at the page of the multixact before the new oldest. */
	uint32_t last_gone = end_off == 1 ? 0xFFFFFFFFu : end_off - 1;
	int rc =
	    slru_truncate_before(wi, AR_SLRU_MULTIXACT_OFFSETS, last_gone / MX_OFFSETS_PER_PAGE);
	uint32_t seg = start_memb / MX_MEMBERS_PER_PAGE / WI_SLRU_PAGES_PER_SEGMENT;
	uint32_t end = end_memb / MX_MEMBERS_PER_PAGE / WI_SLRU_PAGES_PER_SEGMENT;
	/* The segments from seg up to end (wrapping after the last), as PostgreSQL's
	 * PerformMembersTruncation, of those that exist: the directory lists them. */
	uint32_t nseg = MX_MAX_MEMBER_SEGMENT + 1, span = (end + nseg - seg) % nseg;
	struct wi_set *s = &wi->slrudir[AR_SLRU_MULTIXACT_MEMBERS];
	if (rc == 0)
		rc = wi_set_load(wi, s);
	for (uint32_t off = 0; rc == 0 && off < s->len;) {
		uint32_t segno = ar_get_be32(s->data + off), len = s->len;
		if (segno < nseg && (segno + nseg - seg) % nseg < span)
			rc = slru_drop_segment(wi, AR_SLRU_MULTIXACT_MEMBERS, segno);
		if (s->len == len)
			off += 4; /* kept: a dropped entry left the set */
	}
	return rc;
}

int wi_multixact(struct walingest *wi, const struct wal_record *rec)
{
	uint8_t info = rec->info & 0xF0;
	if (!wi->meta)
		return 0;
	if (info == MX_ZERO_OFF_PAGE || info == MX_ZERO_MEM_PAGE) {
		if (rec->main_data_len < 4)
			return wi_fail(wi, -AR_ECORRUPT, "short multixact record");
		uint32_t pageno = ar_get_le32(rec->main_data);
		if (info == MX_ZERO_OFF_PAGE) {
			bool preinit = wi->mxoff_preinit_page == (int64_t)pageno;
			wi->mxoff_preinit_page = -1;
			if (preinit) /* initialised by the previous create, as PostgreSQL does */
				return 0;
			return wi_slru_page_image(wi, AR_SLRU_MULTIXACT_OFFSETS, pageno, NULL);
		}
		return wi_slru_page_image(wi, AR_SLRU_MULTIXACT_MEMBERS, pageno, NULL);
	}
	if (info == MX_CREATE_ID)
		return mx_create(wi, rec);
	if (info == MX_TRUNCATE_ID)
		return mx_truncate(wi, rec);
	return 0;
}

/* ---- the commit-timestamp index, read ---- */

static int time_value(struct ar_timeline *tl, const struct ar_key *k, ar_lsn lsn, int64_t *ts,
		      ar_lsn *at)
{
	uint8_t v[AR_PAGE_BYTES];
	uint32_t len;
	int rc = tl_get(tl, k, lsn, v, &len);
	if (rc < 0)
		return rc;
	if (len != 16)
		return -AR_ECORRUPT;
	*ts = (int64_t)ar_get_le64(v);
	*at = ar_get_le64(v + 8);
	return 0;
}

/* The newest version of key k (as of lsn) whose timestamp is <= ts: walk back
 * through its versions, each an earlier commit of the same second or hour. */
static int time_walk(struct ar_timeline *tl, const struct ar_key *k, int64_t ts, ar_lsn lsn,
		     ar_lsn floor, ar_lsn *out)
{
	int64_t t;
	ar_lsn at;
	/* Bounded: each step reads below the previous version's LSN. */
	while (lsn > floor) {
		int rc = time_value(tl, k, lsn, &t, &at);
		if (rc < 0)
			return rc;
		if (t <= ts) {
			*out = at;
			return 0;
		}
		if (at == 0)
			break;
		lsn = at - 1;
	}
	return -AR_ENOKEY;
}

int wi_lsn_for_time(struct ar_timeline *tl, int64_t ts, ar_lsn lsn, ar_lsn *out)
{
	if (ts < 0)
		return -AR_ENOKEY;
	ar_lsn floor = tl_gc_cutoff(tl);
	uint32_t sec = (uint32_t)((uint64_t)ts / PG_USECS_PER_SEC), hour = sec / 3600;
	/* This second, then the earlier seconds of its hour, then earlier hours. */
	for (uint32_t s = sec + 1; s-- > hour * 3600u;) {
		struct ar_key k = ar_key_time_second(s);
		int rc = time_walk(tl, &k, ts, lsn, floor, out);
		if (rc != -AR_ENOKEY)
			return rc;
	}
	for (uint32_t h = hour; h-- > 0 && hour - h <= 24 * 366;) {
		struct ar_key k = ar_key_time_hour(h);
		int rc = time_walk(tl, &k, ts, lsn, floor, out);
		if (rc != -AR_ENOKEY)
			return rc;
	}
	return -AR_ENOKEY;
}
