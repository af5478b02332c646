/*
 * applier.c - Argon's own record kinds, and runs of PostgreSQL records handed
 * to the inner redo (see applier.h).
 */
#include "engine/applier.h"

#include "common/bytes.h"
#include "common/err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void ar_argon_mask_entry(uint8_t *buf, uint16_t offset, uint8_t mask, uint8_t value)
{
	ar_put_be16(buf, offset);
	buf[2] = mask;
	buf[3] = value;
}

int ar_argon_apply(uint8_t *page, uint32_t len, const struct ar_value *v)
{
	if (v->kind != AR_VALUE_ARGON)
		return -AR_ECORRUPT;
	if (v->argon_type == AR_ARGON_BYTE_MASK) {
		if (v->len % AR_ARGON_MASK_ENTRY_BYTES != 0)
			return -AR_ECORRUPT;
		for (uint32_t i = 0; i < v->len; i += AR_ARGON_MASK_ENTRY_BYTES) {
			uint16_t off = ar_get_be16(v->data + i);
			uint8_t mask = v->data[i + 2];
			if (off >= len)
				return -AR_ECORRUPT;
			page[off] = (uint8_t)((page[off] & ~mask) | (v->data[i + 3] & mask));
		}
		return 0;
	}
	if (v->argon_type == AR_ARGON_ZERO_TAIL) {
		if (v->len != AR_ARGON_ZERO_TAIL_BYTES)
			return -AR_ECORRUPT;
		uint16_t off = ar_get_be16(v->data);
		if (off >= len)
			return -AR_ECORRUPT;
		page[off] &= v->data[2];
		memset(page + off + 1, 0, len - off - 1u);
		return 0;
	}
	return -AR_ECORRUPT;
}

/* rmgr id of a raw PostgreSQL record (xl_rmid at byte 17 of its header). */
static int wal_rmid(const struct ar_value *v)
{
	return v->len > 17 ? v->data[17] : -1;
}

/* Hand records[0..n) (all WAL) to the inner redo on top of cur. */
static int apply_wal_run(struct ar_applier *a, const struct ar_key *key, uint8_t *cur,
			 uint32_t *cur_len, bool have_cur, const struct ar_redo_record *records,
			 size_t n)
{
	if (!a->inner) {
		a->wal_refused++;
		snprintf(a->redo.err, sizeof(a->redo.err),
			 "the record at %X/%08X (rmgr %d) needs PostgreSQL's redo, and no "
			 "argon-walredo was found (set ARGON_WALREDO, or build with PostgreSQL)",
			 (unsigned)(records[0].lsn >> 32), (unsigned)records[0].lsn,
			 wal_rmid(&records[0].value));
		return -ENOTSUP;
	}
	uint8_t out[AR_PAGE_BYTES];
	uint32_t out_len = 0;
	a->inner->err[0] = '\0';
	int rc = a->inner->ops->apply(a->inner, key, have_cur ? cur : NULL, have_cur ? *cur_len : 0,
				      records, n, out, &out_len);
	if (rc < 0) {
		snprintf(a->redo.err, sizeof(a->redo.err), "%s", a->inner->err);
		return rc;
	}
	memcpy(cur, out, out_len);
	*cur_len = out_len;
	return 0;
}

static int applier_apply(struct ar_redo *redo, const struct ar_key *key, const uint8_t *base,
			 uint32_t base_len, const struct ar_redo_record *records, size_t count,
			 uint8_t out[AR_PAGE_BYTES], uint32_t *out_len)
{
	struct ar_applier *a = (struct ar_applier *)redo;
	bool have = base != NULL;
	uint32_t len = base_len;
	if (base_len > AR_PAGE_BYTES)
		return -E2BIG;
	if (have)
		memcpy(out, base, base_len);
	size_t i = 0;
	while (i < count) {
		if (records[i].value.kind == AR_VALUE_WAL) {
			size_t j = i;
			while (j < count && records[j].value.kind == AR_VALUE_WAL)
				j++;
			int rc = apply_wal_run(a, key, out, &len, have, records + i, j - i);
			if (rc < 0)
				return rc;
			have = true;
			i = j;
			continue;
		}
		if (!have || ar_argon_apply(out, len, &records[i].value) < 0) {
			snprintf(redo->err, sizeof(redo->err),
				 "malformed Argon record (type %u, %u bytes) at %X/%08X",
				 records[i].value.argon_type, records[i].value.len,
				 (unsigned)(records[i].lsn >> 32), (unsigned)records[i].lsn);
			return -AR_ECORRUPT;
		}
		a->argon_applied++;
		i++;
	}
	*out_len = len;
	return 0;
}

static const struct ar_redo_ops applier_ops = { .apply = applier_apply };

void ar_applier_init(struct ar_applier *a, struct ar_redo *inner)
{
	memset(a, 0, sizeof(*a));
	a->redo.ops = &applier_ops;
	a->inner = inner;
}
