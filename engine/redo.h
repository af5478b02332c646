/*
 * redo.h - The redo interface: how a page is rebuilt from a base and the records
 * above it.  The engine applies images itself (an image with nothing above it
 * is returned as it is); anything else goes through a struct ar_redo.
 * PostgreSQL's own redo (argon-walredo) implements it in a later issue; tests
 * and benchmarks use the deterministic test redo below.
 */
#ifndef AR_ENGINE_REDO_H
#define AR_ENGINE_REDO_H

#include "engine/key.h"
#include "engine/value.h"

#include <stddef.h>
#include <stdint.h>

struct ar_redo_record {
	ar_lsn lsn;
	struct ar_value value;
};

struct ar_redo;

struct ar_redo_ops {
	/* Rebuild key at the last record's LSN.  base is the image the chain starts
	 * from (NULL when records[0] is will_init); records are oldest first.  The
	 * result (at most AR_PAGE_BYTES) goes to out; its length to *out_len. */
	int (*apply)(struct ar_redo *redo, const struct ar_key *key, const uint8_t *base,
		     uint32_t base_len, const struct ar_redo_record *records, size_t count,
		     uint8_t out[AR_PAGE_BYTES], uint32_t *out_len);
};

#define AR_REDO_ERROR_BYTES 480

struct ar_redo {
	const struct ar_redo_ops *ops;
	/* Why the last apply failed (set by apply, may stay empty); the timeline
	 * copies it into tl_error(). */
	char err[AR_REDO_ERROR_BYTES];
};

/* ---- the deterministic test redo ----
 * A test page is (state u64, count u64, then 8176 bytes derived from state), all
 * little-endian.  Applying a record folds (LSN, crc32c of its bytes) into state and
 * adds one to count; a will_init record starts from a fixed state and count 0.  The
 * fold is order-sensitive, so a missing, duplicated or reordered record changes the
 * page.  The base's own state and count are read from its first 16 bytes. */
extern struct ar_redo ar_test_redo;

void ar_test_page_make(uint64_t state, uint64_t count, uint8_t out[AR_PAGE_BYTES]);
uint64_t ar_test_redo_fold(uint64_t state, ar_lsn lsn, const struct ar_value *record);
uint64_t ar_test_redo_init_state(void);

#endif
