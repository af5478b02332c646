/*
 * walrec.c - Decoding of PostgreSQL 15 WAL records and their full-page images.
 *
 * Invariants:
 *  1. Nothing is read outside the record's own bytes: every length is checked
 *     against what remains before it is used (the fuzz target checks this).
 *  2. A record is decoded only after its CRC-32C matched.
 *  3. The checks on block headers are those PostgreSQL's own reader makes, so a
 *     record PostgreSQL would refuse is refused here too.
 */
#include "ingest/walrec.h"

#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/err.h"

#include <errno.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

static const char *const rmgr_names[WAL_RM_COUNT] = {
	"XLOG",       "Transaction",    "Storage", "CLOG",     "Database",
	"Tablespace", "MultiXact",      "RelMap",  "Standby",  "Heap2",
	"Heap",       "Btree",          "Hash",    "Gin",      "Gist",
	"Sequence",   "SPGist",         "BRIN",    "CommitTs", "ReplicationOrigin",
	"Generic",    "LogicalMessage",
};

const char *wal_rmgr_name(uint8_t rmid)
{
	return rmid < WAL_RM_COUNT ? rmgr_names[rmid] : "unknown";
}

static int fail(char err[160], const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char err[160], const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, 160, fmt, ap);
	va_end(ap);
	return -AR_ECORRUPT;
}

/* A bounded reader over the record's header area. */
struct take {
	const uint8_t *p;
	size_t left;
};

static bool take(struct take *t, void *out, size_t n)
{
	if (t->left < n)
		return false;
	memcpy(out, t->p, n);
	t->p += n;
	t->left -= n;
	return true;
}

static int decode_image_header(struct take *t, struct wal_block *b, char err[160])
{
	uint8_t h[5];
	if (!take(t, h, 5))
		return fail(err, "image header truncated");
	b->image_len = ar_get_le16(h);
	b->hole_offset = ar_get_le16(h + 2);
	b->bimg_info = h[4];
	b->apply_image = b->bimg_info & WAL_BKPIMAGE_APPLY;
	bool compressed = b->bimg_info & (WAL_BKPIMAGE_COMPRESS_PGLZ | WAL_BKPIMAGE_COMPRESS_LZ4 |
					  WAL_BKPIMAGE_COMPRESS_ZSTD);
	bool hole = b->bimg_info & WAL_BKPIMAGE_HAS_HOLE;
	if (compressed && hole) {
		uint8_t l[2];
		if (!take(t, l, 2))
			return fail(err, "image hole length truncated");
		b->hole_length = ar_get_le16(l);
	} else if (compressed) {
		b->hole_length = 0;
	} else {
		if (b->image_len > AR_PAGE_BYTES)
			return fail(err, "image length %u larger than a page", b->image_len);
		b->hole_length = (uint16_t)(AR_PAGE_BYTES - b->image_len);
	}
	if (hole && (b->hole_offset == 0 || b->hole_length == 0 || b->image_len == AR_PAGE_BYTES))
		return fail(err, "image with a hole at %u of %u bytes is invalid", b->hole_offset,
			    b->hole_length);
	if (!hole && (b->hole_offset != 0 || b->hole_length != 0))
		return fail(err, "image without a hole has hole %u/%u", b->hole_offset,
			    b->hole_length);
	if ((compressed && b->image_len == AR_PAGE_BYTES) ||
	    (!hole && !compressed && b->image_len != AR_PAGE_BYTES))
		return fail(err, "image length %u inconsistent with its flags 0x%x", b->image_len,
			    b->bimg_info);
	if ((uint32_t)b->hole_offset + b->hole_length > AR_PAGE_BYTES)
		return fail(err, "image hole %u+%u beyond the page", b->hole_offset,
			    b->hole_length);
	return 0;
}

static int decode_block_header(struct take *t, struct wal_record *r, uint8_t id,
			       const struct ar_rel **last_rel, uint64_t *datatotal, char err[160])
{
	uint8_t h[3];
	struct wal_block *b = &r->blocks[id];

	if ((int)id <= r->max_block_id)
		return fail(err, "out-of-order block id %u after %d", id, r->max_block_id);
	r->max_block_id = id;
	memset(b, 0, sizeof(*b));
	if (!take(t, h, 3))
		return fail(err, "block %u header truncated", id);
	b->in_use = true;
	b->fork_flags = h[0];
	b->data_len = ar_get_le16(h + 1);
	b->has_image = h[0] & 0x10;
	b->has_data = h[0] & 0x20;
	b->will_init = h[0] & 0x40;
	if (b->has_data != (b->data_len != 0))
		return fail(err, "block %u: data flag and length %u disagree", id, b->data_len);
	*datatotal += b->data_len;
	if (b->has_image) {
		int rc = decode_image_header(t, b, err);
		if (rc < 0)
			return rc;
		*datatotal += b->image_len;
	}
	if (!(h[0] & 0x80)) {
		uint8_t n[12];
		if (!take(t, n, 12))
			return fail(err, "block %u: relation truncated", id);
		b->rel =
		    (struct ar_rel){ ar_get_le32(n), ar_get_le32(n + 4), ar_get_le32(n + 8), 0 };
		*last_rel = &b->rel;
	} else if (!*last_rel) {
		return fail(err, "block %u: BKPBLOCK_SAME_REL with no previous relation", id);
	} else {
		b->rel = **last_rel;
	}
	b->rel.fork = h[0] & 0x0F;
	uint8_t blk[4];
	if (!take(t, blk, 4))
		return fail(err, "block %u: block number truncated", id);
	b->blkno = ar_get_le32(blk);
	return 0;
}

/* After the headers: each block's image, then its data, in block order; then the
 * main data.  The lengths were checked to add up to what remains. */
static void assign_payload(struct wal_record *out, const uint8_t *p)
{
	for (int i = 0; i <= out->max_block_id; i++) {
		struct wal_block *blk = &out->blocks[i];
		if (!blk->in_use)
			continue;
		if (blk->has_image) {
			blk->image = p;
			p += blk->image_len;
			out->fpi_bytes += blk->image_len;
		}
		if (blk->has_data) {
			blk->data = p;
			p += blk->data_len;
		}
	}
	out->main_data = out->main_data_len ? p : NULL;
}

uint32_t wal_record_crc(const uint8_t *rec, uint32_t len)
{
	uint32_t crc = ar_crc32c_update(AR_CRC32C_INIT, rec + WAL_RECORD_HEADER_BYTES,
					len - WAL_RECORD_HEADER_BYTES);
	return ar_crc32c_final(ar_crc32c_update(crc, rec, 20));
}

int wal_record_decode(const uint8_t *rec, size_t len, struct wal_record *out, char err[160])
{
	if (len < WAL_RECORD_HEADER_BYTES || len > WAL_RECORD_BYTES_MAX)
		return fail(err, "record length %zu out of range", len);
	uint32_t tot_len = ar_get_le32(rec);
	if (tot_len != len)
		return fail(err, "record length %u, %zu bytes given", tot_len, len);
	if (wal_record_crc(rec, (uint32_t)len) != ar_get_le32(rec + 20))
		return fail(err, "incorrect resource manager data checksum");
	memset(out, 0, offsetof(struct wal_record, blocks));
	for (int i = 0; i <= WAL_MAX_BLOCK_ID; i++)
		out->blocks[i].in_use = false;
	out->tot_len = tot_len;
	out->raw = rec;
	out->xid = ar_get_le32(rec + 4);
	out->prev = ar_get_le64(rec + 8);
	out->info = rec[16];
	out->rmid = rec[17];
	out->max_block_id = -1;
	out->main_data = NULL;
	out->main_data_len = 0;
	out->fpi_bytes = 0;
	if (out->rmid >= WAL_RM_COUNT)
		return fail(err, "invalid resource manager ID %u", out->rmid);

	struct take t = { rec + WAL_RECORD_HEADER_BYTES, len - WAL_RECORD_HEADER_BYTES };
	const struct ar_rel *last_rel = NULL;
	uint64_t datatotal = 0; /* 64 bits: a main data length near 4 GiB must not wrap */
	/* Bounded: each pass consumes at least one byte of the header area. */
	while (t.left > datatotal) {
		uint8_t id, b[4];
		int rc = 0;
		if (!take(&t, &id, 1))
			break;
		if (id == 255 || id == 254) {
			bool is_short = id == 255;
			if (!take(&t, b, is_short ? 1 : 4))
				return fail(err, "main data length truncated");
			out->main_data_len = is_short ? b[0] : ar_get_le32(b);
			datatotal += out->main_data_len;
			break; /* by convention, the main data header comes last */
		} else if (id == 253) {
			if (!take(&t, b, 2))
				return fail(err, "origin truncated");
			out->has_origin = true;
			out->origin = ar_get_le16(b);
		} else if (id == 252) {
			if (!take(&t, b, 4))
				return fail(err, "top-level xid truncated");
			out->has_toplevel_xid = true;
			out->toplevel_xid = ar_get_le32(b);
		} else if (id <= WAL_MAX_BLOCK_ID) {
			rc = decode_block_header(&t, out, id, &last_rel, &datatotal, err);
		} else {
			return fail(err, "invalid block_id %u", id);
		}
		if (rc < 0)
			return rc;
	}
	if (t.left != datatotal)
		return fail(err,
			    "record length %u does not match its headers (%zu left, %llu expected)",
			    tot_len, t.left, (unsigned long long)datatotal);
	assign_payload(out, t.p);
	return 0;
}

/* PostgreSQL's pglz format, from its documented layout: a control byte whose bits,
 * lowest first, say whether each of the next eight items is a literal byte (0) or
 * a back-reference tag (1): two bytes holding a 12-bit offset (high nibble of the
 * first byte, then the second byte) and a length of 3 + the first byte's low
 * nibble; a low nibble of 15 adds a third byte to the length.  The output must be
 * exactly out_len bytes, made from every input byte. */
static int pglz_decode(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
	size_t ip = 0, op = 0;
	/* Bounded: every pass consumes at least one input byte. */
	while (ip < in_len && op < out_len) {
		uint8_t ctrl = in[ip++];
		for (int bit = 0; bit < 8 && ip < in_len && op < out_len; bit++, ctrl >>= 1) {
			if (!(ctrl & 1)) {
				out[op++] = in[ip++];
				continue;
			}
			if (in_len - ip < 2)
				return -1;
			size_t len = (size_t)(in[ip] & 0x0f) + 3;
			size_t off = (size_t)(in[ip] & 0xf0) << 4 | in[ip + 1];
			ip += 2;
			if (len == 18) {
				if (ip >= in_len)
					return -1;
				len += in[ip++];
			}
			if (off == 0 || off > op || len > out_len - op)
				return -1;
			for (size_t i = 0; i < len; i++, op++)
				out[op] = out[op - off]; /* overlapping copies repeat bytes */
		}
	}
	return ip == in_len && op == out_len ? 0 : -1;
}

int wal_block_image(const struct wal_block *b, uint8_t page[AR_PAGE_BYTES], char err[160])
{
	uint8_t tmp[AR_PAGE_BYTES];
	int want = AR_PAGE_BYTES - b->hole_length;
	const uint8_t *src = b->image;

	if (!b->has_image)
		return fail(err, "block has no image");
	if (b->bimg_info & WAL_BKPIMAGE_COMPRESS_PGLZ) {
		if (pglz_decode(b->image, b->image_len, tmp, (size_t)want) < 0)
			return fail(err, "pglz page image does not decompress to %d bytes", want);
		src = tmp;
	} else if (b->bimg_info & WAL_BKPIMAGE_COMPRESS_LZ4) {
		int n =
		    LZ4_decompress_safe((const char *)b->image, (char *)tmp, b->image_len, want);
		if (n != want)
			return fail(err, "LZ4 page image does not decompress to %d bytes", want);
		src = tmp;
	} else if (b->bimg_info & WAL_BKPIMAGE_COMPRESS_ZSTD) {
		size_t n = ZSTD_decompress(tmp, (size_t)want, b->image, b->image_len);
		if (ZSTD_isError(n) || n != (size_t)want)
			return fail(err, "zstd page image does not decompress to %d bytes", want);
		src = tmp;
	} else if (b->image_len != want) {
		return fail(err, "image of %u bytes with a %u-byte hole", b->image_len,
			    b->hole_length);
	}
	memcpy(page, src, b->hole_offset);
	memset(page + b->hole_offset, 0, b->hole_length);
	memcpy(page + b->hole_offset + b->hole_length, src + b->hole_offset,
	       (size_t)(AR_PAGE_BYTES - b->hole_offset - b->hole_length));
	return 0;
}
