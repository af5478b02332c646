/*
 * pagestream_fuzz.c - libFuzzer target for the pagestream codec.  The first byte
 * picks the version (odd: v3, even: v2); the rest is decoded as a request and as
 * a response to a fixed request of each tag.  Checks: a request that decodes has
 * its version's length for its tag and re-encodes to exactly the input; a refusal
 * is -AR_EPROTO with a reason; a response that decodes points inside the input,
 * has a consistent length (at most 32 SLRU pages), and re-encodes to the input;
 * the response to a decoded request survives encode then decode.
 */
#include "common/assert.h"
#include "common/err.h"
#include "common/pagestream.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint8_t encoded[PS_RESPONSE_BYTES_MAX];
static uint8_t page_source[PS_SLRU_PAGES_MAX * PS_PAGE_BYTES];

/* The requests the seed corpus answers (tests/corpus/pagestream/resp-*): the same
 * distinctive values as common/pagestream_test.c. */
static struct ps_request fixed_request(enum ps_version v, uint8_t tag)
{
	struct ps_request r;
	memset(&r, 0, sizeof(r));
	r.tag = tag;
	r.reqid = v == PS_V3 ? (1234ull << 32) | 7 : 0;
	r.request_lsn = 0x0000000112345678ull;
	r.not_modified_since = 0x0000000100abcdefull;
	if (tag == PS_EXISTS || tag == PS_NBLOCKS || tag == PS_GETPAGE) {
		r.rel.spc = 1663;
		r.rel.db = 5;
		r.rel.relnode = 16384;
		r.rel.fork = (uint8_t)(tag + 1);
	}
	r.blkno = tag == PS_GETPAGE ? 0xdeadbeefu : 0;
	r.dbnode = tag == PS_DBSIZE ? 16385u : 0;
	r.slru_kind = tag == PS_GETSLRU ? 1 : 0;
	r.segno = tag == PS_GETSLRU ? 0x12345u : 0;
	return r;
}

/* The response tag that answers a request tag (besides Error, 103). */
static uint8_t answer_tag(uint8_t tag)
{
	static const uint8_t answer[] = { PS_R_EXISTS, PS_R_NBLOCKS, PS_R_GETPAGE, PS_R_DBSIZE,
					  PS_R_GETSLRU };
	AR_ASSERT(tag < sizeof(answer));
	return answer[tag];
}

static size_t request_length(enum ps_version v, uint8_t tag)
{
	static const size_t body[] = { 13, 13, 17, 4, 5 };
	AR_ASSERT(tag < sizeof(body) / sizeof(body[0]));
	return (v == PS_V3 ? 25 : 17) + body[tag];
}

/* Encodes a response to req built from the input's bytes, and decodes it back. */
static void check_response_roundtrip(enum ps_version v, const struct ps_request *req,
				     const uint8_t *data, size_t size)
{
	struct ps_response resp, got;
	const char *err = NULL;
	uint64_t seed = 0;
	memcpy(&seed, data, size < sizeof(seed) ? size : sizeof(seed));

	memset(&resp, 0, sizeof(resp));
	resp.tag = answer_tag(req->tag);
	resp.exists = seed & 1;
	resp.nblocks = (uint32_t)seed;
	resp.db_size = (int64_t)seed;
	resp.slru_pages = (uint32_t)(seed % (PS_SLRU_PAGES_MAX + 1));
	resp.page = page_source;
	size_t len = ps_response_encode(v, req, &resp, encoded);
	AR_ASSERT(len == ps_response_size(v, req, &resp));
	AR_ASSERT(len <= PS_RESPONSE_BYTES_MAX);
	AR_ASSERT(ps_response_decode(v, req, encoded, len, &got, &err) == 0);
	AR_ASSERT(got.tag == resp.tag);
	AR_ASSERT(got.tag != PS_R_EXISTS || got.exists == resp.exists);
	AR_ASSERT(got.tag != PS_R_NBLOCKS || got.nblocks == resp.nblocks);
	AR_ASSERT(got.tag != PS_R_DBSIZE || got.db_size == resp.db_size);
	AR_ASSERT(got.tag != PS_R_GETSLRU || got.slru_pages == resp.slru_pages);
	AR_ASSERT(got.tag != PS_R_GETPAGE || got.page == encoded + len - PS_PAGE_BYTES);

	resp.tag = PS_R_ERROR;
	resp.error = "fuzz";
	len = ps_response_encode(v, req, &resp, encoded);
	AR_ASSERT(len == ps_response_size(v, req, &resp));
	AR_ASSERT(len == (v == PS_V3 ? 25u : 1u) + 5);
	AR_ASSERT(ps_response_decode(v, req, encoded, len, &got, &err) == 0);
	AR_ASSERT(got.tag == PS_R_ERROR && strcmp(got.error, "fuzz") == 0);
}

static void check_request(enum ps_version v, const uint8_t *data, size_t size)
{
	struct ps_request req;
	uint8_t out[PS_REQUEST_BYTES_MAX];
	const char *err = NULL;

	memset(&req, 0, sizeof(req));
	int rc = ps_request_decode(v, data, size, &req, &err);
	if (rc != 0) {
		AR_ASSERT(rc == -AR_EPROTO);
		AR_ASSERT(err != NULL && err[0] != '\0');
		return;
	}
	AR_ASSERT(req.tag <= PS_GETSLRU);
	AR_ASSERT(size == request_length(v, req.tag));
	AR_ASSERT(v == PS_V3 || req.reqid == 0);
	AR_ASSERT(req.tag != PS_GETSLRU || req.slru_kind <= 2);
	size_t len = ps_request_encode(v, &req, out);
	AR_ASSERT(len == size);
	AR_ASSERT(memcmp(out, data, size) == 0);
	check_response_roundtrip(v, &req, data, size);
}

/* An accepted Error: its text starts after the header and ends at the last byte. */
static void check_error(enum ps_version v, const uint8_t *data, size_t size,
			const struct ps_response *resp)
{
	size_t head = v == PS_V3 ? 25 : 1;
	AR_ASSERT(size > head);
	AR_ASSERT((const uint8_t *)resp->error == data + head);
	AR_ASSERT(memchr(resp->error, 0, size - head) == data + size - 1);
}

static void check_response(enum ps_version v, uint8_t tag, const uint8_t *data, size_t size)
{
	struct ps_request req = fixed_request(v, tag);
	struct ps_response resp;
	const char *err = NULL;

	memset(&resp, 0, sizeof(resp));
	int rc = ps_response_decode(v, &req, data, size, &resp, &err);
	if (rc != 0) {
		AR_ASSERT(rc == -AR_EPROTO);
		AR_ASSERT(err != NULL && err[0] != '\0');
		return;
	}
	if (resp.tag == PS_R_ERROR) {
		check_error(v, data, size, &resp);
		return;
	}
	AR_ASSERT(resp.tag == answer_tag(tag));
	AR_ASSERT(ps_response_size(v, &req, &resp) == size);
	AR_ASSERT(resp.tag != PS_R_GETSLRU || resp.slru_pages <= PS_SLRU_PAGES_MAX);
	size_t page_bytes = resp.tag == PS_R_GETPAGE   ? PS_PAGE_BYTES
			    : resp.tag == PS_R_GETSLRU ? (size_t)resp.slru_pages * PS_PAGE_BYTES
						       : 0;
	if (page_bytes > 0) {
		AR_ASSERT(resp.page >= data && resp.page + page_bytes == data + size);
	}
	size_t len = ps_response_encode(v, &req, &resp, encoded);
	AR_ASSERT(len == size);
	if (resp.tag == PS_R_EXISTS) {
		/* Any nonzero byte reads as true; the encoder writes 1. */
		AR_ASSERT(memcmp(encoded, data, size - 1) == 0);
		AR_ASSERT((data[size - 1] != 0) == resp.exists);
	} else {
		AR_ASSERT(memcmp(encoded, data, size) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum ps_version v = data[0] & 1 ? PS_V3 : PS_V2;
	check_request(v, data + 1, size - 1);
	for (uint8_t tag = PS_EXISTS; tag <= PS_GETSLRU; tag++)
		check_response(v, tag, data + 1, size - 1);
	return 0;
}
