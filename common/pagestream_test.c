/*
 * pagestream_test.c - Conformance of the pagestream v2/v3 codec to the byte layouts
 * in reference/neon-storage.md section 1.  Every expected message below is written
 * out byte by byte from the reference, never produced by the encoder under test:
 * decoding the literal bytes gives the fields, encoding the fields gives exactly
 * the literal bytes, and malformed messages are refused with -AR_EPROTO.
 *
 * Distinctive values, so that a byte-order or offset mistake shows:
 *   reqid (1234 << 32) | 7, request_lsn 0x0000000112345678,
 *   not_modified_since 0x0000000100abcdef, rel 1663/5/16384, fork 1..3,
 *   blkno 0xdeadbeef, dbnode 16385, SLRU kind 1 segno 0x12345.
 */
#include "common/err.h"
#include "common/pagestream.h"

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define REQID ((1234ull << 32) | 7)
#define REQUEST_LSN 0x0000000112345678ull
#define NOT_MODIFIED_SINCE 0x0000000100abcdefull
#define SPC 1663u
#define DB 5u
#define RELNODE 16384u
#define BLKNO 0xdeadbeefu
#define DBNODE 16385u
#define SLRU_KIND 1u
#define SEGNO 0x12345u
#define NBLOCKS 12345678u
#define DB_SIZE 0x0000000123456789ll
#define ERROR_TEXT "no such page"

/* The same fields as big-endian bytes, written out by hand. */
#define REQID_BYTES 0x00, 0x00, 0x04, 0xd2, 0x00, 0x00, 0x00, 0x07 /* reqid u64 */
#define LSN_BYTES 0x00, 0x00, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78   /* request_lsn u64 */
#define NMS_BYTES 0x00, 0x00, 0x00, 0x01, 0x00, 0xab, 0xcd, 0xef   /* not_modified_since u64 */
#define SPC_BYTES 0x00, 0x00, 0x06, 0x7f                           /* spc u32 1663 */
#define DB_BYTES 0x00, 0x00, 0x00, 0x05                            /* db u32 5 */
#define RELNODE_BYTES 0x00, 0x00, 0x40, 0x00                       /* relnode u32 16384 */
#define BLKNO_BYTES 0xde, 0xad, 0xbe, 0xef                         /* blkno u32 */
#define DBNODE_BYTES 0x00, 0x00, 0x40, 0x01                        /* dbnode u32 16385 */
#define SEGNO_BYTES 0x00, 0x01, 0x23, 0x45                         /* segno u32 */
#define ERROR_TEXT_BYTES 'n', 'o', ' ', 's', 'u', 'c', 'h', ' ', 'p', 'a', 'g', 'e', 0x00

/* ---- Requests ---------------------------------------------------------------- */

/* v2: tag u8, request_lsn u64, not_modified_since u64 (17 bytes), then the body. */
static const uint8_t v2_exists_req[] = {
	0x00,                                      /* tag: Exists */
	LSN_BYTES, NMS_BYTES,                      /* header */
	SPC_BYTES, DB_BYTES,  RELNODE_BYTES, 0x01, /* rel, fork 1 (fsm) */
};
static const uint8_t v2_nblocks_req[] = {
	0x01,                                      /* tag: Nblocks */
	LSN_BYTES, NMS_BYTES,                      /* header */
	SPC_BYTES, DB_BYTES,  RELNODE_BYTES, 0x02, /* rel, fork 2 (vm) */
};
static const uint8_t v2_getpage_req[] = {
	0x02,                                        /* tag: GetPage */
	LSN_BYTES,   NMS_BYTES,                      /* header */
	SPC_BYTES,   DB_BYTES,  RELNODE_BYTES, 0x03, /* rel, fork 3 (init) */
	BLKNO_BYTES,                                 /* blkno */
};
static const uint8_t v2_dbsize_req[] = {
	0x03,                 /* tag: DbSize */
	LSN_BYTES, NMS_BYTES, /* header */
	DBNODE_BYTES,         /* dbnode */
};
static const uint8_t v2_getslru_req[] = {
	0x04,                   /* tag: GetSlruSegment */
	LSN_BYTES,   NMS_BYTES, /* header */
	0x01,                   /* kind 1: multixact members */
	SEGNO_BYTES,            /* segno */
};

/* v3: tag u8, reqid u64, request_lsn u64, not_modified_since u64 (25 bytes), body. */
static const uint8_t v3_exists_req[] = {
	0x00,                                        /* tag: Exists */
	REQID_BYTES, LSN_BYTES, NMS_BYTES,           /* header */
	SPC_BYTES,   DB_BYTES,  RELNODE_BYTES, 0x01, /* rel, fork 1 */
};
static const uint8_t v3_nblocks_req[] = {
	0x01,                                        /* tag: Nblocks */
	REQID_BYTES, LSN_BYTES, NMS_BYTES,           /* header */
	SPC_BYTES,   DB_BYTES,  RELNODE_BYTES, 0x02, /* rel, fork 2 */
};
/* The reference's example: a v3 GetPage request is 42 bytes. */
static const uint8_t v3_getpage_req[] = {
	0x02,                                           /* tag: GetPage */
	0x00, 0x00, 0x04, 0xd2, 0x00, 0x00, 0x00, 0x07, /* reqid (1234 << 32) | 7 */
	0x00, 0x00, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78, /* request_lsn 1/12345678 */
	0x00, 0x00, 0x00, 0x01, 0x00, 0xab, 0xcd, 0xef, /* not_modified_since 1/00ABCDEF */
	0x00, 0x00, 0x06, 0x7f,                         /* spc 1663 */
	0x00, 0x00, 0x00, 0x05,                         /* db 5 */
	0x00, 0x00, 0x40, 0x00,                         /* relnode 16384 */
	0x03,                                           /* fork 3 (init) */
	0xde, 0xad, 0xbe, 0xef,                         /* blkno */
};
static const uint8_t v3_dbsize_req[] = {
	0x03,                               /* tag: DbSize */
	REQID_BYTES,  LSN_BYTES, NMS_BYTES, /* header */
	DBNODE_BYTES,                       /* dbnode */
};
static const uint8_t v3_getslru_req[] = {
	0x04,                              /* tag: GetSlruSegment */
	REQID_BYTES, LSN_BYTES, NMS_BYTES, /* header */
	0x01,                              /* kind 1 */
	SEGNO_BYTES,                       /* segno */
};

struct request_case {
	enum ps_version v;
	uint8_t tag;
	const uint8_t *bytes;
	size_t len;
	size_t reference_len; /* the length the reference gives, counted by hand */
};

static const struct request_case request_cases[] = {
	{ PS_V2, PS_EXISTS, v2_exists_req, sizeof(v2_exists_req), 17 + 13 },
	{ PS_V2, PS_NBLOCKS, v2_nblocks_req, sizeof(v2_nblocks_req), 17 + 13 },
	{ PS_V2, PS_GETPAGE, v2_getpage_req, sizeof(v2_getpage_req), 34 },
	{ PS_V2, PS_DBSIZE, v2_dbsize_req, sizeof(v2_dbsize_req), 17 + 4 },
	{ PS_V2, PS_GETSLRU, v2_getslru_req, sizeof(v2_getslru_req), 17 + 5 },
	{ PS_V3, PS_EXISTS, v3_exists_req, sizeof(v3_exists_req), 25 + 13 },
	{ PS_V3, PS_NBLOCKS, v3_nblocks_req, sizeof(v3_nblocks_req), 25 + 13 },
	{ PS_V3, PS_GETPAGE, v3_getpage_req, sizeof(v3_getpage_req), 42 },
	{ PS_V3, PS_DBSIZE, v3_dbsize_req, sizeof(v3_dbsize_req), 25 + 4 },
	{ PS_V3, PS_GETSLRU, v3_getslru_req, sizeof(v3_getslru_req), 25 + 5 },
};
#define REQUEST_CASES (sizeof(request_cases) / sizeof(request_cases[0]))

/* The fields the literal request of tag in version v carries. */
static struct ps_request fields_of(enum ps_version v, uint8_t tag)
{
	struct ps_request r;
	memset(&r, 0, sizeof(r));
	r.tag = tag;
	r.reqid = v == PS_V3 ? REQID : 0;
	r.request_lsn = REQUEST_LSN;
	r.not_modified_since = NOT_MODIFIED_SINCE;
	r.rel.spc = SPC;
	r.rel.db = DB;
	r.rel.relnode = RELNODE;
	if (tag == PS_EXISTS || tag == PS_NBLOCKS || tag == PS_GETPAGE)
		r.rel.fork = (uint8_t)(tag + 1);
	else
		memset(&r.rel, 0, sizeof(r.rel));
	if (tag == PS_GETPAGE)
		r.blkno = BLKNO;
	if (tag == PS_DBSIZE)
		r.dbnode = DBNODE;
	if (tag == PS_GETSLRU) {
		r.slru_kind = SLRU_KIND;
		r.segno = SEGNO;
	}
	return r;
}

/* Compares the fields the message of want->tag carries. */
static void assert_request_fields(const struct ps_request *got, const struct ps_request *want)
{
	assert_int_equal(got->tag, want->tag);
	assert_true(got->reqid == want->reqid);
	assert_true(got->request_lsn == want->request_lsn);
	assert_true(got->not_modified_since == want->not_modified_since);
	switch (want->tag) {
	case PS_GETPAGE:
		assert_int_equal(got->blkno, want->blkno);
		/* fall through */
	case PS_EXISTS:
	case PS_NBLOCKS:
		assert_int_equal(got->rel.spc, want->rel.spc);
		assert_int_equal(got->rel.db, want->rel.db);
		assert_int_equal(got->rel.relnode, want->rel.relnode);
		assert_int_equal(got->rel.fork, want->rel.fork);
		break;
	case PS_DBSIZE:
		assert_int_equal(got->dbnode, want->dbnode);
		break;
	case PS_GETSLRU:
		assert_int_equal(got->slru_kind, want->slru_kind);
		assert_int_equal(got->segno, want->segno);
		break;
	default:
		fail_msg("unknown tag %u", want->tag);
	}
}

/* A refusal: -AR_EPROTO with a readable reason.  Takes &err, read only after the
 * call that is its first argument has returned. */
static void assert_refused(int rc, const char *const *errp)
{
	const char *err = *errp;
	assert_int_equal(rc, -AR_EPROTO);
	assert_non_null(err);
	size_t n = strlen(err);
	assert_true(n > 0 && n < 512);
	for (size_t i = 0; i < n; i++)
		assert_true(isprint((unsigned char)err[i]));
}

static void test_request_sizes(void **state)
{
	(void)state;
	assert_int_equal(sizeof(v2_getpage_req), 34);
	assert_int_equal(sizeof(v3_getpage_req), 42);
	assert_int_equal(PS_REQUEST_BYTES_MAX, 42);
	for (size_t i = 0; i < REQUEST_CASES; i++)
		assert_int_equal(request_cases[i].len, request_cases[i].reference_len);
}

static void test_request_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < REQUEST_CASES; i++) {
		const struct request_case *c = &request_cases[i];
		struct ps_request got, want = fields_of(c->v, c->tag);
		const char *err = NULL;
		memset(&got, 0xa5, sizeof(got)); /* v2 must still come out with reqid 0 */
		assert_int_equal(ps_request_decode(c->v, c->bytes, c->len, &got, &err), 0);
		assert_request_fields(&got, &want);
	}
}

static void test_request_encode(void **state)
{
	(void)state;
	for (size_t i = 0; i < REQUEST_CASES; i++) {
		const struct request_case *c = &request_cases[i];
		struct ps_request req = fields_of(c->v, c->tag);
		uint8_t buf[PS_REQUEST_BYTES_MAX + 16];
		memset(buf, 0xcc, sizeof(buf));
		assert_int_equal(ps_request_encode(c->v, &req, buf), c->len);
		assert_memory_equal(buf, c->bytes, c->len);
		for (size_t j = PS_REQUEST_BYTES_MAX; j < sizeof(buf); j++)
			assert_int_equal(buf[j], 0xcc);
	}
}

/* Every fork number and every SLRU kind the reference names goes through unchanged. */
static void test_request_forks_and_kinds(void **state)
{
	(void)state;
	for (uint8_t fork = 0; fork <= 3; fork++) {
		uint8_t bytes[sizeof(v3_getpage_req)], buf[PS_REQUEST_BYTES_MAX];
		struct ps_request got;
		const char *err = NULL;
		memcpy(bytes, v3_getpage_req, sizeof(bytes));
		bytes[37] = fork; /* 1 + 24 + spc, db, relnode */
		assert_int_equal(ps_request_decode(PS_V3, bytes, sizeof(bytes), &got, &err), 0);
		assert_int_equal(got.rel.fork, fork);
		assert_int_equal(got.blkno, BLKNO);
		assert_int_equal(ps_request_encode(PS_V3, &got, buf), sizeof(bytes));
		assert_memory_equal(buf, bytes, sizeof(bytes));
	}
	for (uint8_t kind = 0; kind <= 2; kind++) {
		uint8_t bytes[sizeof(v2_getslru_req)], buf[PS_REQUEST_BYTES_MAX];
		struct ps_request got;
		const char *err = NULL;
		memcpy(bytes, v2_getslru_req, sizeof(bytes));
		bytes[17] = kind;
		assert_int_equal(ps_request_decode(PS_V2, bytes, sizeof(bytes), &got, &err), 0);
		assert_int_equal(got.slru_kind, kind);
		assert_int_equal(got.segno, SEGNO);
		assert_int_equal(ps_request_encode(PS_V2, &got, buf), sizeof(bytes));
		assert_memory_equal(buf, bytes, sizeof(bytes));
	}
}

/* Every shorter prefix, one byte more, and the other version's layout are refused. */
static void test_request_reject_length(void **state)
{
	(void)state;
	for (size_t i = 0; i < REQUEST_CASES; i++) {
		const struct request_case *c = &request_cases[i];
		uint8_t longer[PS_REQUEST_BYTES_MAX + 1];
		struct ps_request got;
		const char *err;
		for (size_t len = 0; len < c->len; len++) {
			err = NULL;
			assert_refused(ps_request_decode(c->v, c->bytes, len, &got, &err), &err);
		}
		memcpy(longer, c->bytes, c->len);
		longer[c->len] = 0x00;
		err = NULL;
		assert_refused(ps_request_decode(c->v, longer, c->len + 1, &got, &err), &err);
		enum ps_version other = c->v == PS_V2 ? PS_V3 : PS_V2;
		err = NULL;
		assert_refused(ps_request_decode(other, c->bytes, c->len, &got, &err), &err);
	}
}

static void test_request_reject_tag(void **state)
{
	static const uint8_t bad_tags[] = { 5, 6, 99, 100, 102, 103, 105, 128, 255 };
	(void)state;
	for (size_t t = 0; t < sizeof(bad_tags); t++) {
		for (size_t i = 0; i < REQUEST_CASES; i++) {
			const struct request_case *c = &request_cases[i];
			uint8_t bytes[PS_REQUEST_BYTES_MAX];
			struct ps_request got;
			const char *err = NULL;
			memcpy(bytes, c->bytes, c->len);
			bytes[0] = bad_tags[t];
			assert_refused(ps_request_decode(c->v, bytes, c->len, &got, &err), &err);
		}
	}
}

static void test_request_reject_slru_kind(void **state)
{
	static const uint8_t bad_kinds[] = { 3, 4, 0x80, 0xff };
	(void)state;
	for (size_t k = 0; k < sizeof(bad_kinds); k++) {
		uint8_t v2[sizeof(v2_getslru_req)], v3[sizeof(v3_getslru_req)];
		struct ps_request got;
		const char *err = NULL;
		memcpy(v2, v2_getslru_req, sizeof(v2));
		memcpy(v3, v3_getslru_req, sizeof(v3));
		v2[17] = bad_kinds[k]; /* kind follows the 17-byte v2 header */
		v3[25] = bad_kinds[k]; /* and the 25-byte v3 header */
		assert_refused(ps_request_decode(PS_V2, v2, sizeof(v2), &got, &err), &err);
		err = NULL;
		assert_refused(ps_request_decode(PS_V3, v3, sizeof(v3), &got, &err), &err);
	}
}

/* ---- Responses --------------------------------------------------------------- */

/* v2: the tag, then the payload. */
static const uint8_t v2_exists_resp[] = {
	100,  /* tag: Exists */
	0x01, /* exists: true */
};
static const uint8_t v2_nblocks_resp[] = {
	101,                    /* tag: Nblocks */
	0x00, 0xbc, 0x61, 0x4e, /* nblocks u32 12345678 */
};
static const uint8_t v2_getpage_head[] = {
	102, /* tag: GetPage, then 8192 page bytes */
};
static const uint8_t v2_error_resp[] = {
	103,              /* tag: Error */
	ERROR_TEXT_BYTES, /* "no such page", NUL */
};
static const uint8_t v2_dbsize_resp[] = {
	104,                                            /* tag: DbSize */
	0x00, 0x00, 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, /* db_size i64 */
};
static const uint8_t v2_getslru_head[] = {
	105,                    /* tag: GetSlruSegment */
	0x00, 0x00, 0x00, 0x02, /* n u32: 2, then 2 x 8192 page bytes */
};

/* v3: the tag, the echo of reqid and both LSNs (24 bytes), the echo of the request
 * body (none for Error), then the payload. */
static const uint8_t v3_exists_resp[] = {
	100,                                         /* tag: Exists */
	REQID_BYTES, LSN_BYTES, NMS_BYTES,           /* header echo */
	SPC_BYTES,   DB_BYTES,  RELNODE_BYTES, 0x01, /* rel echo, fork 1 */
	0x01,                                        /* exists: true */
};
static const uint8_t v3_nblocks_resp[] = {
	101,                                         /* tag: Nblocks */
	REQID_BYTES, LSN_BYTES, NMS_BYTES,           /* header echo */
	SPC_BYTES,   DB_BYTES,  RELNODE_BYTES, 0x02, /* rel echo, fork 2 */
	0x00,        0xbc,      0x61,          0x4e, /* nblocks u32 12345678 */
};
static const uint8_t v3_getpage_head[] = {
	102,                                            /* tag: GetPage */
	0x00, 0x00, 0x04, 0xd2, 0x00, 0x00, 0x00, 0x07, /* reqid echo */
	0x00, 0x00, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78, /* request_lsn echo */
	0x00, 0x00, 0x00, 0x01, 0x00, 0xab, 0xcd, 0xef, /* not_modified_since echo */
	0x00, 0x00, 0x06, 0x7f,                         /* spc echo */
	0x00, 0x00, 0x00, 0x05,                         /* db echo */
	0x00, 0x00, 0x40, 0x00,                         /* relnode echo */
	0x03,                                           /* fork echo */
	0xde, 0xad, 0xbe, 0xef,                         /* blkno echo; 8192 page bytes follow */
};
static const uint8_t v3_error_resp[] = {
	103, /* tag: Error */
	REQID_BYTES,
	LSN_BYTES,
	NMS_BYTES,        /* header echo only */
	ERROR_TEXT_BYTES, /* "no such page", NUL */
};
static const uint8_t v3_dbsize_resp[] = {
	104,                                                              /* tag: DbSize */
	REQID_BYTES,  LSN_BYTES, NMS_BYTES,                               /* header echo */
	DBNODE_BYTES,                                                     /* dbnode echo */
	0x00,         0x00,      0x00,      0x01, 0x23, 0x45, 0x67, 0x89, /* db_size i64 */
};
static const uint8_t v3_getslru_head[] = {
	105,                                       /* tag: GetSlruSegment */
	REQID_BYTES, LSN_BYTES,   NMS_BYTES,       /* header echo */
	0x01,        SEGNO_BYTES,                  /* kind, segno echo */
	0x00,        0x00,        0x00,      0x02, /* n u32: 2, then 2 x 8192 page bytes */
};

struct response_case {
	enum ps_version v;
	uint8_t req_tag; /* the request answered */
	uint8_t tag;     /* the response's tag */
	const uint8_t *head;
	size_t head_len;
	uint32_t pages;       /* page bytes that follow head, in PS_PAGE_BYTES */
	size_t echo_len;      /* bytes after the tag that echo the request (v3) */
	size_t reference_len; /* the whole message, counted by hand */
};

#define RCASE(v, rq, t, head, pages, echo, total)                                                  \
	{                                                                                          \
		v, rq, t, head, sizeof(head), pages, echo, total                                   \
	}
static const struct response_case response_cases[] = {
	RCASE(PS_V2, PS_EXISTS, PS_R_EXISTS, v2_exists_resp, 0, 0, 2),
	RCASE(PS_V2, PS_NBLOCKS, PS_R_NBLOCKS, v2_nblocks_resp, 0, 0, 5),
	RCASE(PS_V2, PS_GETPAGE, PS_R_GETPAGE, v2_getpage_head, 1, 0, 1 + 8192),
	RCASE(PS_V2, PS_GETPAGE, PS_R_ERROR, v2_error_resp, 0, 0, 1 + 13),
	RCASE(PS_V2, PS_DBSIZE, PS_R_DBSIZE, v2_dbsize_resp, 0, 0, 9),
	RCASE(PS_V2, PS_GETSLRU, PS_R_GETSLRU, v2_getslru_head, 2, 0, 5 + 2 * 8192),
	RCASE(PS_V3, PS_EXISTS, PS_R_EXISTS, v3_exists_resp, 0, 24 + 13, 1 + 24 + 13 + 1),
	RCASE(PS_V3, PS_NBLOCKS, PS_R_NBLOCKS, v3_nblocks_resp, 0, 24 + 13, 1 + 24 + 13 + 4),
	RCASE(PS_V3, PS_GETPAGE, PS_R_GETPAGE, v3_getpage_head, 1, 24 + 17, 8234),
	RCASE(PS_V3, PS_GETPAGE, PS_R_ERROR, v3_error_resp, 0, 24, 1 + 24 + 13),
	RCASE(PS_V3, PS_DBSIZE, PS_R_DBSIZE, v3_dbsize_resp, 0, 24 + 4, 1 + 24 + 4 + 8),
	RCASE(PS_V3, PS_GETSLRU, PS_R_GETSLRU, v3_getslru_head, 2, 24 + 5,
	      1 + 24 + 5 + 4 + 2 * 8192),
};
#define RESPONSE_CASES (sizeof(response_cases) / sizeof(response_cases[0]))

/* Page bytes: a different pattern in every page, none of them all one value. */
static uint8_t pages[(PS_SLRU_PAGES_MAX + 1) * PS_PAGE_BYTES];
/* An expected message, and the encoder's output. */
static uint8_t expected[PS_RESPONSE_BYTES_MAX + PS_PAGE_BYTES + 16];
static uint8_t encoded[PS_RESPONSE_BYTES_MAX + 16];

static int setup_pages(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pages); i++)
		pages[i] = (uint8_t)(i * 31 + 7 + i / PS_PAGE_BYTES * 13);
	return 0;
}

/* Builds the expected message of c in expected[]: its literal head and its pages. */
static size_t build_expected(const struct response_case *c)
{
	memcpy(expected, c->head, c->head_len);
	memcpy(expected + c->head_len, pages, (size_t)c->pages * PS_PAGE_BYTES);
	return c->head_len + (size_t)c->pages * PS_PAGE_BYTES;
}

/* The payload fields of c's message. */
static struct ps_response payload_of(const struct response_case *c)
{
	struct ps_response r;
	memset(&r, 0, sizeof(r));
	r.tag = c->tag;
	r.exists = true;
	r.nblocks = NBLOCKS;
	r.db_size = DB_SIZE;
	r.slru_pages = c->tag == PS_R_GETSLRU ? c->pages : 0;
	r.page = c->pages ? pages : NULL;
	r.error = c->tag == PS_R_ERROR ? ERROR_TEXT : NULL;
	return r;
}

static void test_response_encode(void **state)
{
	(void)state;
	for (size_t i = 0; i < RESPONSE_CASES; i++) {
		const struct response_case *c = &response_cases[i];
		struct ps_request req = fields_of(c->v, c->req_tag);
		struct ps_response resp = payload_of(c);
		size_t len = build_expected(c);
		assert_int_equal(len, c->reference_len);
		assert_int_equal(ps_response_size(c->v, &req, &resp), len);
		memset(encoded, 0xcc, sizeof(encoded));
		assert_int_equal(ps_response_encode(c->v, &req, &resp, encoded), len);
		assert_memory_equal(encoded, expected, len);
		assert_int_equal(encoded[len], 0xcc);
	}
}

/* The decoded payload of c's message, in expected[]. */
static void assert_payload(const struct response_case *c, const struct ps_response *got)
{
	assert_int_equal(got->tag, c->tag);
	switch (c->tag) {
	case PS_R_EXISTS:
		assert_true(got->exists);
		break;
	case PS_R_NBLOCKS:
		assert_int_equal(got->nblocks, NBLOCKS);
		break;
	case PS_R_DBSIZE:
		assert_true(got->db_size == DB_SIZE);
		break;
	case PS_R_ERROR:
		assert_non_null(got->error);
		assert_string_equal(got->error, ERROR_TEXT);
		break;
	case PS_R_GETSLRU:
		assert_int_equal(got->slru_pages, c->pages);
		/* fall through */
	case PS_R_GETPAGE:
		assert_ptr_equal(got->page, expected + c->head_len);
		assert_memory_equal(got->page, pages, (size_t)c->pages * PS_PAGE_BYTES);
		break;
	default:
		fail_msg("unknown tag %u", c->tag);
	}
}

/* Every case is tried; each refusal is named before the test fails. */
static void test_response_decode(void **state)
{
	int refused = 0;
	(void)state;
	for (size_t i = 0; i < RESPONSE_CASES; i++) {
		const struct response_case *c = &response_cases[i];
		struct ps_request req = fields_of(c->v, c->req_tag);
		struct ps_response got;
		const char *err = NULL;
		size_t len = build_expected(c);
		memset(&got, 0, sizeof(got));
		if (ps_response_decode(c->v, &req, expected, len, &got, &err) != 0) {
			print_error("v%d response %u to request %u refused: %s\n", c->v, c->tag,
				    c->req_tag, err ? err : "?");
			refused++;
			continue;
		}
		assert_payload(c, &got);
	}
	assert_int_equal(refused, 0);
}

/* Every shorter prefix, one byte more (also after an Error's NUL), and the other
 * version's layout are refused. */
static void test_response_reject_length(void **state)
{
	(void)state;
	for (size_t i = 0; i < RESPONSE_CASES; i++) {
		const struct response_case *c = &response_cases[i];
		struct ps_request req = fields_of(c->v, c->req_tag);
		enum ps_version other = c->v == PS_V2 ? PS_V3 : PS_V2;
		struct ps_request other_req = fields_of(other, c->req_tag);
		struct ps_response got;
		const char *err;
		size_t len = build_expected(c);
		for (size_t n = 0; n < len; n++) {
			err = NULL;
			assert_refused(ps_response_decode(c->v, &req, expected, n, &got, &err),
				       &err);
		}
		expected[len] = 0x00;
		err = NULL;
		assert_refused(ps_response_decode(c->v, &req, expected, len + 1, &got, &err), &err);
		err = NULL;
		assert_refused(ps_response_decode(other, &other_req, expected, len, &got, &err),
			       &err);
	}
}

/* A response whose tag does not answer the request is refused; Error answers any. */
static void test_response_reject_tag(void **state)
{
	static const uint8_t bad_tags[] = { 0, 2, 4, 99, 106, 200, 255 };
	int wrong = 0;
	(void)state;
	for (size_t i = 0; i < RESPONSE_CASES; i++) {
		const struct response_case *c = &response_cases[i];
		struct ps_response got;
		const char *err;
		size_t len = build_expected(c);
		for (uint8_t rt = PS_EXISTS; rt <= PS_GETSLRU; rt++) {
			struct ps_request req = fields_of(c->v, rt);
			if (rt == c->req_tag)
				continue;
			err = NULL;
			int rc = ps_response_decode(c->v, &req, expected, len, &got, &err);
			/* An Error echoes at most the common header: it answers any request. */
			if ((rc == 0) != (c->tag == PS_R_ERROR)) {
				print_error("v%d response %u to request %u: %s\n", c->v, c->tag, rt,
					    rc == 0 ? "accepted" : err);
				wrong++;
			} else if (rc != 0) {
				assert_refused(rc, &err);
			}
		}
		struct ps_request req = fields_of(c->v, c->req_tag);
		for (size_t t = 0; t < sizeof(bad_tags); t++) {
			expected[0] = bad_tags[t];
			err = NULL;
			assert_refused(ps_response_decode(c->v, &req, expected, len, &got, &err),
				       &err);
		}
	}
	assert_int_equal(wrong, 0);
}

/* v3: a response whose echo differs from the request in any byte is refused. */
static void test_response_reject_echo(void **state)
{
	(void)state;
	for (size_t i = 0; i < RESPONSE_CASES; i++) {
		const struct response_case *c = &response_cases[i];
		struct ps_request req = fields_of(c->v, c->req_tag);
		struct ps_response got;
		size_t len = build_expected(c);
		for (size_t at = 1; at <= c->echo_len; at++) {
			const char *err = NULL;
			expected[at] ^= 0x01;
			assert_refused(ps_response_decode(c->v, &req, expected, len, &got, &err),
				       &err);
			expected[at] ^= 0x01;
		}
	}
}

/* GetSlruSegment: 0 and 32 pages are fine; 33 pages, n disagreeing with the length,
 * and an n whose byte count wraps 32 bits are refused. */
static void test_response_slru_counts(void **state)
{
	static const uint8_t v3_slru_n[] = {
		105, REQID_BYTES, LSN_BYTES, NMS_BYTES, 0x01, SEGNO_BYTES, /* tag, echo */
	};
	struct ps_request req = fields_of(PS_V3, PS_GETSLRU);
	struct ps_response resp, got;
	const char *err = NULL;
	const size_t head = sizeof(v3_slru_n) + 4;
	(void)state;

	assert_int_equal(head, 34);
	memcpy(expected, v3_slru_n, sizeof(v3_slru_n));
	memset(&resp, 0, sizeof(resp));
	resp.tag = PS_R_GETSLRU;
	resp.page = pages;
	for (uint32_t n = 0; n <= PS_SLRU_PAGES_MAX; n += PS_SLRU_PAGES_MAX) {
		uint8_t nb[4] = { 0x00, 0x00, 0x00, (uint8_t)n }; /* n u32 */
		size_t len = head + (size_t)n * PS_PAGE_BYTES;
		memcpy(expected + sizeof(v3_slru_n), nb, 4);
		memcpy(expected + head, pages, (size_t)n * PS_PAGE_BYTES);
		resp.slru_pages = n;
		assert_int_equal(ps_response_size(PS_V3, &req, &resp), len);
		assert_int_equal(ps_response_encode(PS_V3, &req, &resp, encoded), len);
		assert_memory_equal(encoded, expected, len);
		assert_int_equal(ps_response_decode(PS_V3, &req, expected, len, &got, &err), 0);
		assert_int_equal(got.slru_pages, n);
	}
	assert_int_equal(head + 32 * PS_PAGE_BYTES, PS_RESPONSE_BYTES_MAX);

	/* n = 33 with 33 pages of data. */
	err = NULL;
	memcpy(expected + sizeof(v3_slru_n), (uint8_t[]){ 0x00, 0x00, 0x00, 0x21 }, 4);
	memcpy(expected + head, pages, 33 * PS_PAGE_BYTES);
	assert_refused(
	    ps_response_decode(PS_V3, &req, expected, head + 33 * PS_PAGE_BYTES, &got, &err), &err);
	/* n = 1 with 2 pages, n = 3 with 2 pages. */
	for (uint8_t n = 1; n <= 3; n += 2) {
		memcpy(expected + sizeof(v3_slru_n), (uint8_t[]){ 0x00, 0x00, 0x00, n }, 4);
		err = NULL;
		assert_refused(
		    ps_response_decode(PS_V3, &req, expected, head + 2 * PS_PAGE_BYTES, &got, &err),
		    &err);
	}
	/* n = 0x80000: n * 8192 is 2^32, 0 in 32 bits; no page bytes follow. */
	memcpy(expected + sizeof(v3_slru_n), (uint8_t[]){ 0x00, 0x08, 0x00, 0x00 }, 4);
	err = NULL;
	assert_refused(ps_response_decode(PS_V3, &req, expected, head, &got, &err), &err);
}

/* Boundary values of the scalar payloads, written out. */
static void test_response_values(void **state)
{
	static const uint8_t v2_not_exists[] = { 100, 0x00 };
	static const uint8_t v2_dbsize_minus2[] = {
		104, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, /* db_size -2 */
	};
	static const uint8_t v2_nblocks_max[] = { 101, 0xff, 0xff, 0xff, 0xfe };
	static const uint8_t v2_empty_error[] = { 103, 0x00 };
	struct ps_response resp, got;
	const char *err = NULL;
	(void)state;

	struct ps_request req = fields_of(PS_V2, PS_EXISTS);
	memset(&resp, 0, sizeof(resp));
	resp.tag = PS_R_EXISTS;
	assert_int_equal(ps_response_encode(PS_V2, &req, &resp, encoded), 2);
	assert_memory_equal(encoded, v2_not_exists, 2);
	got.exists = true;
	assert_int_equal(ps_response_decode(PS_V2, &req, v2_not_exists, 2, &got, &err), 0);
	assert_false(got.exists);

	req = fields_of(PS_V2, PS_NBLOCKS);
	resp.tag = PS_R_NBLOCKS;
	resp.nblocks = 0xfffffffeu;
	assert_int_equal(ps_response_encode(PS_V2, &req, &resp, encoded), 5);
	assert_memory_equal(encoded, v2_nblocks_max, 5);
	assert_int_equal(ps_response_decode(PS_V2, &req, v2_nblocks_max, 5, &got, &err), 0);
	assert_int_equal(got.nblocks, 0xfffffffeu);

	resp.tag = PS_R_ERROR;
	resp.error = "";
	assert_int_equal(ps_response_size(PS_V2, &req, &resp), 2);
	assert_int_equal(ps_response_encode(PS_V2, &req, &resp, encoded), 2);
	assert_memory_equal(encoded, v2_empty_error, 2);
	assert_int_equal(ps_response_decode(PS_V2, &req, v2_empty_error, 2, &got, &err), 0);
	assert_string_equal(got.error, "");

	req = fields_of(PS_V2, PS_DBSIZE);
	resp.tag = PS_R_DBSIZE;
	resp.db_size = -2;
	assert_int_equal(ps_response_encode(PS_V2, &req, &resp, encoded), 9);
	assert_memory_equal(encoded, v2_dbsize_minus2, 9);
	assert_int_equal(ps_response_decode(PS_V2, &req, v2_dbsize_minus2, 9, &got, &err), 0);
	assert_true(got.db_size == -2);
}

/* An Error's text is cut to PS_ERROR_TEXT_MAX bytes; v3 echoes only the header,
 * whatever the request. */
static void test_response_error_text(void **state)
{
	static char text[2000];
	static const uint8_t v3_error_head[] = { 103, REQID_BYTES, LSN_BYTES, NMS_BYTES };
	struct ps_response resp, got;
	const char *err = NULL;
	(void)state;

	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	memset(&resp, 0, sizeof(resp));
	resp.tag = PS_R_ERROR;
	resp.error = text;
	for (uint8_t rt = PS_EXISTS; rt <= PS_GETSLRU; rt++) {
		struct ps_request req = fields_of(PS_V3, rt);
		size_t len = sizeof(v3_error_head) + PS_ERROR_TEXT_MAX + 1;
		memcpy(expected, v3_error_head, sizeof(v3_error_head));
		memset(expected + sizeof(v3_error_head), 'x', PS_ERROR_TEXT_MAX);
		expected[len - 1] = 0x00;
		assert_int_equal(ps_response_size(PS_V3, &req, &resp), len);
		assert_int_equal(ps_response_encode(PS_V3, &req, &resp, encoded), len);
		assert_memory_equal(encoded, expected, len);
		assert_int_equal(ps_response_decode(PS_V3, &req, expected, len, &got, &err), 0);
		assert_int_equal(strlen(got.error), PS_ERROR_TEXT_MAX);

		resp.error = ERROR_TEXT;
		assert_int_equal(ps_response_encode(PS_V3, &req, &resp, encoded),
				 sizeof(v3_error_resp));
		assert_memory_equal(encoded, v3_error_resp, sizeof(v3_error_resp));
		resp.error = text;
	}
	/* Exactly PS_ERROR_TEXT_MAX bytes are kept whole. */
	struct ps_request req = fields_of(PS_V2, PS_GETPAGE);
	text[PS_ERROR_TEXT_MAX] = '\0';
	assert_int_equal(ps_response_size(PS_V2, &req, &resp), 1 + PS_ERROR_TEXT_MAX + 1);
}

/* An Error without its NUL is refused, in both versions. */
static void test_response_error_without_nul(void **state)
{
	static const uint8_t v2_no_nul[] = { 103, 'o', 'o', 'p', 's' };
	static const uint8_t v3_no_nul[] = { 103, REQID_BYTES, LSN_BYTES, NMS_BYTES, 'o', 'o' };
	static const uint8_t v3_bare[] = { 103, REQID_BYTES, LSN_BYTES, NMS_BYTES };
	struct ps_request req2 = fields_of(PS_V2, PS_NBLOCKS), req3 = fields_of(PS_V3, PS_NBLOCKS);
	struct ps_response got;
	const char *err = NULL;
	(void)state;

	assert_refused(ps_response_decode(PS_V2, &req2, v2_no_nul, sizeof(v2_no_nul), &got, &err),
		       &err);
	err = NULL;
	assert_refused(ps_response_decode(PS_V2, &req2, v2_no_nul, 1, &got, &err), &err);
	err = NULL;
	assert_refused(ps_response_decode(PS_V3, &req3, v3_no_nul, sizeof(v3_no_nul), &got, &err),
		       &err);
	err = NULL;
	assert_refused(ps_response_decode(PS_V3, &req3, v3_bare, sizeof(v3_bare), &got, &err),
		       &err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_sizes),
		cmocka_unit_test(test_request_decode),
		cmocka_unit_test(test_request_encode),
		cmocka_unit_test(test_request_forks_and_kinds),
		cmocka_unit_test(test_request_reject_length),
		cmocka_unit_test(test_request_reject_tag),
		cmocka_unit_test(test_request_reject_slru_kind),
		cmocka_unit_test(test_response_encode),
		cmocka_unit_test(test_response_decode),
		cmocka_unit_test(test_response_reject_length),
		cmocka_unit_test(test_response_reject_tag),
		cmocka_unit_test(test_response_reject_echo),
		cmocka_unit_test(test_response_slru_counts),
		cmocka_unit_test(test_response_values),
		cmocka_unit_test(test_response_error_text),
		cmocka_unit_test(test_response_error_without_nul),
	};
	return cmocka_run_group_tests(tests, setup_pages, NULL);
}
