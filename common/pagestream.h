/*
 * pagestream.h - Neon's page-read messages (pagestream v2 and v3), both ways:
 * requests (compute -> page server) and responses (page server -> compute), as
 * the payloads of CopyData messages.  Byte layouts: reference/neon-storage.md
 * section 1.  Pure functions of their buffers: no I/O, no allocation; the
 * request decoder is fuzzed (common/pagestream_fuzz.c).
 *
 * Request (big-endian):
 *   v2: tag u8, request_lsn u64, not_modified_since u64, body
 *   v3: tag u8, reqid u64, request_lsn u64, not_modified_since u64, body
 *   bodies: 0 Exists, 1 Nblocks: rel (spc u32, db u32, relnode u32, fork u8)
 *           2 GetPage: rel, blkno u32;  3 DbSize: dbnode u32
 *           4 GetSlruSegment: kind u8, segno u32
 * Response: tag u8 (100 Exists, 101 Nblocks, 102 GetPage, 104 DbSize, 105
 *   GetSlruSegment, 103 Error: not simply the request's tag + 100), in v3 followed by reqid,
 *   request_lsn, not_modified_since and the request body echoed (an Error echoes
 *   only those 24 header bytes), then the payload:
 *   100 Exists u8, 101 Nblocks u32, 102 GetPage 8192 bytes, 103 Error text NUL,
 *   104 DbSize i64, 105 GetSlruSegment n u32 then n x 8192 bytes.
 */
#ifndef AR_COMMON_PAGESTREAM_H
#define AR_COMMON_PAGESTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PS_PAGE_BYTES 8192
/* Pages of one SLRU segment (SLRU_PAGES_PER_SEGMENT). */
#define PS_SLRU_PAGES_MAX 32
#define PS_REQUEST_BYTES_MAX 42 /* a v3 GetPage */
/* The largest response: a v3 GetSlruSegment of 32 pages. */
#define PS_RESPONSE_BYTES_MAX (1 + 24 + 5 + 4 + PS_SLRU_PAGES_MAX * PS_PAGE_BYTES)
/* Error texts are cut to this many bytes (NUL not counted). */
#define PS_ERROR_TEXT_MAX 1023

enum ps_version { PS_V2 = 2, PS_V3 = 3 };

enum ps_tag {
	PS_EXISTS = 0,
	PS_NBLOCKS = 1,
	PS_GETPAGE = 2,
	PS_DBSIZE = 3,
	PS_GETSLRU = 4,
};

enum ps_response_tag {
	PS_R_EXISTS = 100,
	PS_R_NBLOCKS = 101,
	PS_R_GETPAGE = 102,
	PS_R_ERROR = 103,
	PS_R_DBSIZE = 104,
	PS_R_GETSLRU = 105,
};

struct ps_rel {
	uint32_t spc;
	uint32_t db;
	uint32_t relnode;
	uint8_t fork;
};

struct ps_request {
	uint8_t tag;    /* enum ps_tag */
	uint64_t reqid; /* v3 only (0 in v2) */
	uint64_t request_lsn;
	uint64_t not_modified_since;
	struct ps_rel rel; /* Exists, Nblocks, GetPage */
	uint32_t blkno;    /* GetPage */
	uint32_t dbnode;   /* DbSize */
	uint8_t slru_kind; /* GetSlruSegment: 0 clog, 1 multixact members, 2 offsets */
	uint32_t segno;    /* GetSlruSegment */
};

/* Decode one request (a whole CopyData payload).  Returns 0, or -AR_EPROTO with
 * *err naming what is wrong (unknown tag, wrong length, bad SLRU kind). */
__attribute__((warn_unused_result)) int ps_request_decode(enum ps_version v, const uint8_t *buf,
							  size_t len, struct ps_request *out,
							  const char **err);
/* Encode a request into buf (PS_REQUEST_BYTES_MAX); returns its length. */
size_t ps_request_encode(enum ps_version v, const struct ps_request *req, uint8_t *buf);

/* A response's payload (what follows the tag and, in v3, the echo). */
struct ps_response {
	uint8_t tag; /* enum ps_response_tag */
	bool exists;
	uint32_t nblocks;
	int64_t db_size;
	uint32_t slru_pages; /* GetSlruSegment: pages at page */
	/* GetPage: PS_PAGE_BYTES; GetSlruSegment: slru_pages x PS_PAGE_BYTES.  The
	 * decoder points into its buffer. */
	const uint8_t *page;
	const char *error; /* Error: NUL-terminated text */
};

/* The response tag answering a request tag (not Error). */
uint8_t ps_response_tag(uint8_t request_tag);

/* Bytes the encoded response will take. */
size_t ps_response_size(enum ps_version v, const struct ps_request *req,
			const struct ps_response *resp);
/* Encode the response to req into buf (ps_response_size bytes); returns its length.
 * An Error's text longer than PS_ERROR_TEXT_MAX is cut. */
size_t ps_response_encode(enum ps_version v, const struct ps_request *req,
			  const struct ps_response *resp, uint8_t *buf);
/* Decode a response to req (client side): checks the tag against the request, the
 * v3 echo, and the length.  Returns 0 or -AR_EPROTO with *err. */
__attribute__((warn_unused_result)) int ps_response_decode(enum ps_version v,
							   const struct ps_request *req,
							   const uint8_t *buf, size_t len,
							   struct ps_response *out,
							   const char **err);

/* Neon's hash pieces, as its compute and page server use them: murmur3's 32-bit
 * finaliser and boost's hash_combine. */
static inline uint32_t ps_fmix32(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static inline uint32_t ps_hash_combine(uint32_t a, uint32_t b)
{
	return a ^ (b + 0x9e3779b9u + (a << 6) + (a >> 2));
}

/* Neon's shard of a relation block (reference/neon-storage.md section 10): shard 0
 * when unsharded (count < 2), for a block of the init fork (3), or for what is not a
 * relation block (relnode 0, blkno UINT32_MAX: the size marker); else
 * hash_combine(fmix32(relnode), fmix32(blkno / stripe_pages)) % shard_count.  The
 * one implementation: the engine places keys with it, the client routes with it. */
uint32_t ps_shard_of_block(uint32_t shard_count, uint32_t stripe_pages, uint32_t relnode,
			   uint8_t fork, uint32_t blkno);

#endif
