/*
 * wi_files.c - Non-relation files (PG_VERSION, configuration files) and the base
 * import's entry points: values put at one LSN outside any record.
 */
#include "ingest/walingest_int.h"

#include "common/bytes.h"
#include "common/err.h"

#include <errno.h>
#include <string.h>

#define FILE_BYTES_MAX (64u * 1024 * 1024)

/* Offset of path's entry in the file directory, or UINT32_MAX. */
static uint32_t filedir_find(const struct wi_set *s, const char *path, size_t plen)
{
	for (uint32_t off = 0; off + 2 <= s->len;) {
		uint16_t n = ar_get_be16(s->data + off);
		if (n == plen && memcmp(s->data + off + 2, path, plen) == 0)
			return off;
		off += 2u + n;
	}
	return UINT32_MAX;
}

static int filedir_update(struct walingest *wi, const char *path, bool present)
{
	struct wi_set *s = &wi->filedir;
	int rc = wi_set_load(wi, s);
	if (rc < 0)
		return rc;
	size_t plen = strlen(path);
	uint32_t at = filedir_find(s, path, plen);
	if (present == (at != UINT32_MAX))
		return 0;
	if (!present) {
		uint32_t n = 2u + ar_get_be16(s->data + at);
		memmove(s->data + at, s->data + at + n, s->len - at - n);
		s->len -= n;
		return wi_set_mark(wi, s);
	}
	if (plen > 1024 || s->len + 2 + plen > AR_PAGE_BYTES)
		return wi_fail(wi, -AR_ELIMIT, "file directory full (adding %s)", path);
	if (wi_set_reserve(s, s->len + 2 + (uint32_t)plen) < 0)
		return -ENOMEM;
	ar_put_be16(s->data + s->len, (uint16_t)plen);
	memcpy(s->data + s->len + 2, path, plen);
	s->len += 2 + (uint32_t)plen;
	return wi_set_mark(wi, s);
}

/* len UINT32_MAX deletes the file. */
int wi_file_put(struct walingest *wi, const char *path, const uint8_t *data, uint32_t len)
{
	if (!wi->meta)
		return 0;
	bool del = len == UINT32_MAX;
	if (!del && len > FILE_BYTES_MAX)
		return wi_fail(wi, -AR_ELIMIT, "file %s of %u bytes", path, len);
	uint64_t h = ar_path_hash(path);
	int rc = filedir_update(wi, path, !del);
	for (uint32_t off = 0; rc == 0 && !del && off < len; off += AR_PAGE_BYTES) {
		struct ar_key k = ar_key_file_block(h, off / AR_PAGE_BYTES);
		uint32_t n = len - off < AR_PAGE_BYTES ? len - off : AR_PAGE_BYTES;
		rc = wi_put_image(wi, &k, data + off, n);
	}
	if (rc < 0)
		return rc;
	struct ar_key sk = ar_key_file_size(h);
	return wi_size_set(wi, &sk, !del, del ? 0 : len);
}

/* ---- base import ---- */

void wi_begin(struct walingest *wi, ar_lsn lsn)
{
	wi->err[0] = '\0';
	wi->lsn = lsn;
}

int wi_end(struct walingest *wi)
{
	return wi_flush(wi);
}

int wi_import_block(struct walingest *wi, struct ar_rel rel, uint32_t blkno,
		    const uint8_t page[AR_PAGE_BYTES])
{
	int rc = wi_rel_check_spc(wi, rel.spc_oid);
	if (rc < 0)
		return rc;
	struct ar_key k = ar_key_rel_block(rel, blkno);
	rc = wi_put_image(wi, &k, page, AR_PAGE_BYTES);
	if (rc == 0)
		wi->stats.images++;
	return rc < 0 ? rc : wi_rel_extend(wi, rel, blkno + 1);
}

int wi_import_rel(struct walingest *wi, struct ar_rel rel)
{
	int rc = wi_rel_check_spc(wi, rel.spc_oid);
	return rc < 0 ? rc : wi_rel_create(wi, rel);
}

int wi_import_extend(struct walingest *wi, struct ar_rel rel, uint32_t nblocks)
{
	int rc = wi_rel_check_spc(wi, rel.spc_oid);
	return rc < 0 ? rc : wi_rel_extend(wi, rel, nblocks);
}

int wi_import_db(struct walingest *wi, uint32_t spc, uint32_t db)
{
	int rc = wi_rel_check_spc(wi, spc);
	return rc < 0 ? rc : wi_db_add(wi, spc, db);
}

int wi_import_slru(struct walingest *wi, enum ar_slru kind, uint32_t segno, uint32_t blkno,
		   const uint8_t page[AR_PAGE_BYTES])
{
	return wi_slru_page_image(wi, kind, segno * WI_SLRU_PAGES_PER_SEGMENT + blkno, page);
}

int wi_import_relmap(struct walingest *wi, uint32_t spc, uint32_t db, const uint8_t *data,
		     uint32_t len)
{
	int rc = wi_rel_check_spc(wi, spc);
	if (rc < 0 || !wi->meta)
		return rc;
	struct ar_key k = ar_key_relmap(spc, db);
	return wi_put_image(wi, &k, data, len);
}

int wi_import_control(struct walingest *wi, const uint8_t *data, uint32_t len)
{
	if (!wi->meta)
		return 0;
	struct ar_key k = ar_key_control_file();
	return wi_put_image(wi, &k, data, len);
}
