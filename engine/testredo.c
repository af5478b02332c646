/*
 * testredo.c - The deterministic, order-sensitive test redo (see redo.h).
 */
#include "engine/redo.h"

#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/err.h"

#include <string.h>

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void ar_test_page_make(uint64_t state, uint64_t count, uint8_t out[AR_PAGE_BYTES])
{
	uint64_t s = state;

	ar_put_le64(out, state);
	ar_put_le64(out + 8, count);
	for (size_t off = 16; off < AR_PAGE_BYTES; off += 8)
		ar_put_le64(out + off, splitmix64(&s));
}

uint64_t ar_test_redo_init_state(void)
{
	return 0x5EEDF00DCAFEBEEFull;
}

uint64_t ar_test_redo_fold(uint64_t state, ar_lsn lsn, const struct ar_value *record)
{
	uint64_t s = state ^ (lsn * 0x9E3779B97F4A7C15ull);
	s ^= (uint64_t)ar_crc32c(record->data, record->len) << 17;
	s ^= (uint64_t)record->kind << 60 | (uint64_t)record->argon_type << 52;
	return splitmix64(&s);
}

static int test_redo_apply(struct ar_redo *redo, const struct ar_key *key, const uint8_t *base,
			   uint32_t base_len, const struct ar_redo_record *records, size_t count,
			   uint8_t out[AR_PAGE_BYTES], uint32_t *out_len)
{
	uint64_t state, n;
	(void)redo;
	(void)key;

	if (base) {
		if (base_len != AR_PAGE_BYTES)
			return -AR_ECORRUPT; /* not a page: the test redo only rebuilds pages */
		state = ar_get_le64(base);
		n = ar_get_le64(base + 8);
	} else {
		if (count == 0 || !records[0].value.will_init)
			return -AR_ECORRUPT;
		state = ar_test_redo_init_state();
		n = 0;
	}
	for (size_t i = 0; i < count; i++) {
		state = ar_test_redo_fold(state, records[i].lsn, &records[i].value);
		n++;
	}
	ar_test_page_make(state, n, out);
	*out_len = AR_PAGE_BYTES;
	return 0;
}

static const struct ar_redo_ops test_redo_ops = { .apply = test_redo_apply };
struct ar_redo ar_test_redo = { .ops = &test_redo_ops };
