/*
 * pagestream.c - Neon's pagestream v2/v3 messages: request and response codecs.
 *
 * Invariants:
 *  1. A decoder reads only within len and accepts a message only if its length
 *     is exactly what its tag's layout says (no trailing bytes).
 *  2. An encoder writes exactly ps_response_size() / the request's size bytes.
 *  3. The v3 echo of a response is the request's header and body as received.
 * Depends on: bytes.h, err.h.  Layouts: pagestream.h.
 */
#include "common/pagestream.h"

#include "common/bytes.h"
#include "common/err.h"

#include <string.h>

/* Bytes of a request body (after the header) by tag. */
static size_t body_bytes(uint8_t tag)
{
	switch (tag) {
	case PS_EXISTS:
	case PS_NBLOCKS:
		return 13;
	case PS_GETPAGE:
		return 17;
	case PS_DBSIZE:
		return 4;
	case PS_GETSLRU:
		return 5;
	default:
		return 0;
	}
}

static size_t header_bytes(enum ps_version v)
{
	return v == PS_V3 ? 25 : 17;
}

static int fail(const char **err, const char *what)
{
	if (err)
		*err = what;
	return -AR_EPROTO;
}

static void rel_decode(const uint8_t *p, struct ps_rel *rel)
{
	rel->spc = ar_get_be32(p);
	rel->db = ar_get_be32(p + 4);
	rel->relnode = ar_get_be32(p + 8);
	rel->fork = p[12];
}

static void rel_encode(const struct ps_rel *rel, uint8_t *p)
{
	ar_put_be32(p, rel->spc);
	ar_put_be32(p + 4, rel->db);
	ar_put_be32(p + 8, rel->relnode);
	p[12] = rel->fork;
}

int ps_request_decode(enum ps_version v, const uint8_t *buf, size_t len, struct ps_request *out,
		      const char **err)
{
	if (len < 1)
		return fail(err, "empty page request");
	memset(out, 0, sizeof(*out));
	out->tag = buf[0];
	size_t body = body_bytes(out->tag);
	if (body == 0)
		return fail(err, "unknown smgr message tag");
	size_t head = header_bytes(v);
	if (len != head + body)
		return fail(err,
			    len < head + body ? "page request too short" : "page request too long");
	const uint8_t *p = buf + 1;
	if (v == PS_V3) {
		out->reqid = ar_get_be64(p);
		p += 8;
	}
	out->request_lsn = ar_get_be64(p);
	out->not_modified_since = ar_get_be64(p + 8);
	p += 16;
	switch (out->tag) {
	case PS_EXISTS:
	case PS_NBLOCKS:
		rel_decode(p, &out->rel);
		break;
	case PS_GETPAGE:
		rel_decode(p, &out->rel);
		out->blkno = ar_get_be32(p + 13);
		break;
	case PS_DBSIZE:
		out->dbnode = ar_get_be32(p);
		break;
	case PS_GETSLRU:
		out->slru_kind = p[0];
		out->segno = ar_get_be32(p + 1);
		if (out->slru_kind > 2)
			return fail(err, "unknown SLRU kind");
		break;
	}
	return 0;
}

/* The request's body as sent (and as a v3 response echoes it). */
static size_t body_encode(const struct ps_request *req, uint8_t *p)
{
	switch (req->tag) {
	case PS_EXISTS:
	case PS_NBLOCKS:
		rel_encode(&req->rel, p);
		return 13;
	case PS_GETPAGE:
		rel_encode(&req->rel, p);
		ar_put_be32(p + 13, req->blkno);
		return 17;
	case PS_DBSIZE:
		ar_put_be32(p, req->dbnode);
		return 4;
	case PS_GETSLRU:
		p[0] = req->slru_kind;
		ar_put_be32(p + 1, req->segno);
		return 5;
	default:
		return 0;
	}
}

/* reqid (v3 only) and both LSNs. */
static size_t lsns_encode(enum ps_version v, const struct ps_request *req, uint8_t *p)
{
	size_t n = 0;
	if (v == PS_V3) {
		ar_put_be64(p, req->reqid);
		n = 8;
	}
	ar_put_be64(p + n, req->request_lsn);
	ar_put_be64(p + n + 8, req->not_modified_since);
	return n + 16;
}

size_t ps_request_encode(enum ps_version v, const struct ps_request *req, uint8_t *buf)
{
	buf[0] = req->tag;
	size_t n = 1 + lsns_encode(v, req, buf + 1);
	return n + body_encode(req, buf + n);
}

uint8_t ps_response_tag(uint8_t request_tag)
{
	/* 103 is Error, so DbSize and GetSlruSegment answer one further on. */
	return (uint8_t)(request_tag < PS_DBSIZE ? 100 + request_tag : 101 + request_tag);
}

static size_t payload_bytes(const struct ps_response *resp)
{
	switch (resp->tag) {
	case PS_R_EXISTS:
		return 1;
	case PS_R_NBLOCKS:
		return 4;
	case PS_R_GETPAGE:
		return PS_PAGE_BYTES;
	case PS_R_DBSIZE:
		return 8;
	case PS_R_GETSLRU:
		return 4 + (size_t)resp->slru_pages * PS_PAGE_BYTES;
	case PS_R_ERROR: {
		size_t n = strnlen(resp->error, PS_ERROR_TEXT_MAX);
		return n + 1;
	}
	default:
		return 0;
	}
}

size_t ps_response_size(enum ps_version v, const struct ps_request *req,
			const struct ps_response *resp)
{
	size_t n = 1 + payload_bytes(resp);
	if (v == PS_V3)
		n += 24 + (resp->tag == PS_R_ERROR ? 0 : body_bytes(req->tag));
	return n;
}

size_t ps_response_encode(enum ps_version v, const struct ps_request *req,
			  const struct ps_response *resp, uint8_t *buf)
{
	uint8_t *p = buf;
	*p++ = resp->tag;
	if (v == PS_V3) {
		p += lsns_encode(v, req, p);
		if (resp->tag != PS_R_ERROR)
			p += body_encode(req, p);
	}
	switch (resp->tag) {
	case PS_R_EXISTS:
		*p++ = resp->exists ? 1 : 0;
		break;
	case PS_R_NBLOCKS:
		ar_put_be32(p, resp->nblocks);
		p += 4;
		break;
	case PS_R_GETPAGE:
		memcpy(p, resp->page, PS_PAGE_BYTES);
		p += PS_PAGE_BYTES;
		break;
	case PS_R_DBSIZE:
		ar_put_be64(p, (uint64_t)resp->db_size);
		p += 8;
		break;
	case PS_R_GETSLRU:
		ar_put_be32(p, resp->slru_pages);
		p += 4;
		if (resp->slru_pages > 0)
			memcpy(p, resp->page, (size_t)resp->slru_pages * PS_PAGE_BYTES);
		p += (size_t)resp->slru_pages * PS_PAGE_BYTES;
		break;
	case PS_R_ERROR: {
		size_t n = strnlen(resp->error, PS_ERROR_TEXT_MAX);
		memcpy(p, resp->error, n);
		p[n] = '\0';
		p += n + 1;
		break;
	}
	default:
		break;
	}
	return (size_t)(p - buf);
}

int ps_response_decode(enum ps_version v, const struct ps_request *req, const uint8_t *buf,
		       size_t len, struct ps_response *out, const char **err)
{
	memset(out, 0, sizeof(*out));
	if (len < 1)
		return fail(err, "empty page response");
	out->tag = buf[0];
	if (out->tag != PS_R_ERROR && out->tag != ps_response_tag(req->tag))
		return fail(err, "response tag does not answer the request");
	const uint8_t *p = buf + 1, *end = buf + len;
	if (v == PS_V3) {
		uint8_t echo[PS_REQUEST_BYTES_MAX];
		size_t n = lsns_encode(v, req, echo);
		if (out->tag != PS_R_ERROR)
			n += body_encode(req, echo + n);
		if ((size_t)(end - p) < n || memcmp(p, echo, n) != 0)
			return fail(err, "response does not echo its request");
		p += n;
	}
	size_t left = (size_t)(end - p);
	switch (out->tag) {
	case PS_R_EXISTS:
		if (left != 1 || p[0] > 1)
			return fail(err, "bad Exists response");
		out->exists = p[0] == 1;
		return 0;
	case PS_R_NBLOCKS:
		if (left != 4)
			return fail(err, "bad Nblocks response");
		out->nblocks = ar_get_be32(p);
		return 0;
	case PS_R_GETPAGE:
		if (left != PS_PAGE_BYTES)
			return fail(err, "bad GetPage response");
		out->page = p;
		return 0;
	case PS_R_DBSIZE:
		if (left != 8)
			return fail(err, "bad DbSize response");
		out->db_size = (int64_t)ar_get_be64(p);
		return 0;
	case PS_R_GETSLRU:
		if (left < 4)
			return fail(err, "bad GetSlruSegment response");
		out->slru_pages = ar_get_be32(p);
		if (out->slru_pages > PS_SLRU_PAGES_MAX ||
		    left != 4 + (size_t)out->slru_pages * PS_PAGE_BYTES)
			return fail(err, "bad GetSlruSegment response");
		out->page = p + 4;
		return 0;
	case PS_R_ERROR:
		if (left < 1 || p[left - 1] != '\0' || memchr(p, '\0', left) != p + left - 1)
			return fail(err, "bad Error response");
		out->error = (const char *)p;
		return 0;
	default:
		return fail(err, "unknown response tag");
	}
}

uint32_t ps_shard_of_block(uint32_t shard_count, uint32_t stripe_pages, uint32_t relnode,
			   uint8_t fork, uint32_t blkno)
{
	if (shard_count < 2 || relnode == 0 || blkno == UINT32_MAX || fork == 3)
		return 0;
	return ps_hash_combine(ps_fmix32(relnode), ps_fmix32(blkno / stripe_pages)) % shard_count;
}
