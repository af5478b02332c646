/*
 * applier.h - The redo the engine is given in a real deployment: it applies the
 * records Argon writes itself (AR_VALUE_ARGON: byte edits of SLRU and
 * visibility-map pages) and hands runs of PostgreSQL WAL records to an inner
 * redo (argon-walredo, a later issue).  Without an inner redo, a page that needs
 * PostgreSQL's redo fails with an error naming the record's LSN and rmgr.
 *
 * Argon record kinds (value.h's argon_type), data big-endian:
 *   AR_ARGON_BYTE_MASK  entries of (offset u16, mask u8, value u8):
 *                       page[offset] = (page[offset] & ~mask) | (value & mask)
 *   AR_ARGON_ZERO_TAIL  (offset u16, keep u8): page[offset] &= keep, every
 *                       later byte becomes 0 (visibility-map truncation)
 */
#ifndef AR_ENGINE_APPLIER_H
#define AR_ENGINE_APPLIER_H

#include "engine/redo.h"

#include <stddef.h>
#include <stdint.h>

enum ar_argon_type {
	AR_ARGON_BYTE_MASK = 1,
	AR_ARGON_ZERO_TAIL = 2,
};

#define AR_ARGON_MASK_ENTRY_BYTES 4
#define AR_ARGON_ZERO_TAIL_BYTES 3

struct ar_applier {
	struct ar_redo redo;   /* first: a struct ar_applier * is a struct ar_redo * */
	struct ar_redo *inner; /* PostgreSQL records; NULL: not available */
	uint64_t argon_applied;
	uint64_t wal_refused;
};

void ar_applier_init(struct ar_applier *a, struct ar_redo *inner);

/* Append one masked-byte entry to buf (AR_ARGON_MASK_ENTRY_BYTES). */
void ar_argon_mask_entry(uint8_t *buf, uint16_t offset, uint8_t mask, uint8_t value);

/* Apply one Argon record to page (len bytes); -AR_ECORRUPT if malformed. */
__attribute__((warn_unused_result)) int ar_argon_apply(uint8_t *page, uint32_t len,
						       const struct ar_value *v);

#endif
