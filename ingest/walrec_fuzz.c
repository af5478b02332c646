/*
 * walrec_fuzz.c - libFuzzer target for the WAL decoder and reader.
 *
 * Half the inputs are taken as one record whose length and CRC are patched to
 * be right, so the fuzzer reaches the block-header logic instead of stopping at
 * the checksum; every decoded block's image and data must lie inside the record,
 * and rebuilding an image must not crash.  The other half are fed to the reader
 * as a sequence of pages, twice: whole pages, then each page in parts (steps taken
 * from the input) as a live stream feeds it; both must hand over the same records
 * and stop at the same place with the same verdict.
 */
#include "common/assert.h"
#include "common/err.h"
#include "ingest/walrec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_record(void *ctx, const struct wal_record *r)
{
	(void)ctx;
	AR_ASSERT(r->tot_len >= WAL_RECORD_HEADER_BYTES);
	AR_ASSERT(r->end_lsn > r->lsn);
	return 0;
}

static void fuzz_record(const uint8_t *data, size_t size)
{
	struct wal_record r;
	char err[160];
	uint8_t page[AR_PAGE_BYTES];

	if (size < WAL_RECORD_HEADER_BYTES || size > 1 << 20)
		return;
	uint8_t *rec = malloc(size);
	AR_ASSERT(rec != NULL);
	memcpy(rec, data, size);
	uint32_t n = (uint32_t)size;
	memcpy(rec, &n, 4);
	uint32_t crc = wal_record_crc(rec, n);
	memcpy(rec + 20, &crc, 4);
	if (wal_record_decode(rec, size, &r, err) == 0) {
		for (int i = 0; i <= r.max_block_id; i++) {
			const struct wal_block *b = &r.blocks[i];
			if (!b->in_use)
				continue;
			if (b->has_image) {
				AR_ASSERT(b->image >= rec && b->image + b->image_len <= rec + size);
				(void)wal_block_image(b, page, err);
			}
			if (b->has_data)
				AR_ASSERT(b->data >= rec && b->data + b->data_len <= rec + size);
		}
		if (r.main_data_len)
			AR_ASSERT(r.main_data + r.main_data_len <= rec + size);
	}
	free(rec);
}

/* What a feed handed over, folded: equal digests mean the same records. */
struct feed_digest {
	uint64_t hash;
	uint64_t records;
	int rc;        /* the last feed's */
	size_t page;   /* the page it was fed */
	ar_lsn next;   /* wal_reader_next_lsn at the end */
	char err[256]; /* wal_reader_error at the end */
};

static uint64_t fold(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001B3ull; /* FNV-1a */
	return h;
}

static int digest_record(void *ctx, const struct wal_record *r)
{
	struct feed_digest *d = ctx;
	AR_ASSERT(check_record(NULL, r) == 0);
	d->hash = fold(d->hash, &r->lsn, sizeof(r->lsn));
	d->hash = fold(d->hash, &r->end_lsn, sizeof(r->end_lsn));
	d->hash = fold(d->hash, &r->tot_len, sizeof(r->tot_len));
	d->hash = fold(d->hash, r->raw, r->tot_len);
	d->records++;
	return 0;
}

/* Page p of the input: its bytes, zeros after the input's end. */
static void input_page(const uint8_t *data, size_t size, size_t p, uint8_t page[WAL_PAGE_BYTES])
{
	size_t off = p * WAL_PAGE_BYTES;
	size_t n = size - off < WAL_PAGE_BYTES ? size - off : WAL_PAGE_BYTES;
	memset(page, 0, WAL_PAGE_BYTES);
	memcpy(page, data + off, n);
}

/* The next valid of a page fed in parts, from the input's last bytes backwards:
 * steps of 0 to 127 bytes (0 feeds the same bytes again) or of up to a page. */
static uint32_t next_valid(const uint8_t *data, size_t size, size_t *k, uint32_t valid)
{
	uint8_t b = data[size - 1 - *k % size];
	uint32_t step = b & 0x80 ? b & 0x7Fu : b * 64u;
	(*k)++;
	return valid + step < WAL_PAGE_BYTES ? valid + step : WAL_PAGE_BYTES;
}

/* Feed a page in parts, each a heap copy of just the valid bytes so that reading
 * past them is caught by the address sanitizer. */
static int feed_page_parts(struct wal_reader *r, const uint8_t *page, ar_lsn page_lsn,
			   const uint8_t *data, size_t size, size_t *k, struct feed_digest *d)
{
	uint32_t valid = 0;
	int rc;
	/* Bounded: after 64 parts the rest of the page is fed whole, which never waits. */
	for (size_t feeds = 0;; feeds++) {
		uint8_t *part = malloc(valid);
		AR_ASSERT(part != NULL || valid == 0);
		if (valid)
			memcpy(part, page, valid);
		rc = wal_reader_page_part(r, part, page_lsn, valid, digest_record, d);
		free(part);
		if (rc != AR_WAL_MORE)
			return rc;
		AR_ASSERT(valid < WAL_PAGE_BYTES);
		valid = feeds < 64 ? next_valid(data, size, k, valid) : WAL_PAGE_BYTES;
	}
}

static void feed_pages(const uint8_t *data, size_t size, ar_lsn base, bool parts,
		       struct feed_digest *d)
{
	struct wal_reader *r;
	static uint8_t page[WAL_PAGE_BYTES];
	size_t k = 0;

	memset(d, 0, sizeof(*d));
	d->hash = 0xCBF29CE484222325ull;
	AR_ASSERT(wal_reader_create(base, 16u << 20, &r) == 0);
	for (size_t p = 0; p * WAL_PAGE_BYTES < size; p++) {
		input_page(data, size, p, page);
		ar_lsn page_lsn = base + p * WAL_PAGE_BYTES;
		d->page = p;
		d->rc = parts ? feed_page_parts(r, page, page_lsn, data, size, &k, d)
			      : wal_reader_page(r, page, page_lsn, digest_record, d);
		if (d->rc != 0) {
			AR_ASSERT(d->rc == AR_WAL_END || d->rc == -ENOMEM ||
				  wal_reader_error(r)[0]);
			break;
		}
	}
	d->next = wal_reader_next_lsn(r);
	snprintf(d->err, sizeof(d->err), "%s", wal_reader_error(r));
	wal_reader_destroy(r);
}

/* The input as pages, fed whole and then in parts: the same records either way. */
static void fuzz_pages(const uint8_t *data, size_t size)
{
	static struct feed_digest whole, parts;
	uint64_t base = 0;

	/* Pages are fed at the address the first one claims, so real WAL seeds decode. */
	if (size >= 16)
		memcpy(&base, data + 8, 8);
	base &= ~(uint64_t)(WAL_PAGE_BYTES - 1);
	if (base > (1ull << 60))
		base = 0;
	feed_pages(data, size, base, false, &whole);
	feed_pages(data, size, base, true, &parts);
	AR_ASSERT(parts.records == whole.records);
	AR_ASSERT(parts.hash == whole.hash);
	AR_ASSERT(parts.rc == whole.rc);
	AR_ASSERT(parts.page == whole.page);
	AR_ASSERT(parts.next == whole.next);
	AR_ASSERT(strcmp(parts.err, whole.err) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_record(data + 1, size - 1);
	else
		fuzz_pages(data + 1, size - 1);
	return 0;
}
