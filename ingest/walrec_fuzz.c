/*
 * walrec_fuzz.c - libFuzzer target for the WAL decoder and reader.
 *
 * Half the inputs are taken as one record whose length and CRC are patched to
 * be right, so the fuzzer reaches the block-header logic instead of stopping at
 * the checksum; every decoded block's image and data must lie inside the record,
 * and rebuilding an image must not crash.  The other half are fed to the reader
 * as a sequence of pages.
 */
#include "common/assert.h"
#include "common/err.h"
#include "ingest/walrec.h"

#include <errno.h>

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

static void fuzz_pages(const uint8_t *data, size_t size)
{
	struct wal_reader *r;
	static uint8_t page[WAL_PAGE_BYTES];
	uint64_t base = 0;

	/* Pages are fed at the address the first one claims, so real WAL seeds decode. */
	if (size >= 16)
		memcpy(&base, data + 8, 8);
	base &= ~(uint64_t)(WAL_PAGE_BYTES - 1);
	if (base > (1ull << 60))
		base = 0;
	AR_ASSERT(wal_reader_create(base, 16u << 20, &r) == 0);
	for (size_t off = 0, p = 0; off < size; off += WAL_PAGE_BYTES, p++) {
		size_t n = size - off < WAL_PAGE_BYTES ? size - off : WAL_PAGE_BYTES;
		memset(page, 0, sizeof(page));
		memcpy(page, data + off, n);
		int rc = wal_reader_page(r, page, base + p * WAL_PAGE_BYTES, check_record, NULL);
		if (rc != 0) {
			AR_ASSERT(rc == AR_WAL_END || rc == -ENOMEM || wal_reader_error(r)[0]);
			break;
		}
	}
	wal_reader_destroy(r);
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
