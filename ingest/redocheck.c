/*
 * redocheck.c - The record-by-record redo check (see redocheck.h).
 */
#include "ingest/redocheck.h"

#include "common/bytes.h"
#include "common/err.h"
#include "engine/redopool.h"
#include "ingest/import.h"
#include "ingest/keymap.h"
#include "ingest/walingest.h"
#include "ingest/walrec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rc_ctx {
	struct ar_store *s;
	struct ar_timeline *tl;
	struct ar_redo *redo;
	const struct redo_check_options *o;
	struct redo_check_result *r;
	ar_lsn from;        /* records ending before this are not checked */
	struct keymap kept; /* key -> the page last replayed (ptr; value 1 if valid) */
	uint64_t kept_uses; /* for verify_every */
	uint8_t *raw;       /* the record as replayed (a copy when flipped) */
	uint32_t raw_cap;
	char *err;
};

static void lsn_text(ar_lsn lsn, char out[24])
{
	snprintf(out, 24, "%X/%08X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

static void kept_drop_all(struct rc_ctx *c)
{
	for (uint32_t i = 0; i < c->kept.cap; i++)
		c->kept.slots[i].value = 0;
}

static void kept_drop(struct rc_ctx *c, const struct ar_key *key)
{
	struct keymap_entry *e = keymap_find(&c->kept, key);
	if (e)
		e->value = 0;
}

static int kept_store(struct rc_ctx *c, const struct ar_key *key, const uint8_t *page)
{
	bool added;
	struct keymap_entry *e = keymap_add(&c->kept, key, &added);
	if (!e)
		return -ENOMEM;
	if (!e->ptr && !(e->ptr = malloc(AR_PAGE_BYTES)))
		return -ENOMEM;
	memcpy(e->ptr, page, AR_PAGE_BYTES);
	e->value = 1;
	return 0;
}

/* A heap record touched heap_block: Argon's own records may have cleared its
 * visibility bits, so a kept map page with either bit set is dropped (clear
 * bits cannot change). */
static void kept_vm_touched(struct rc_ctx *c, struct ar_rel heap, uint32_t heap_block)
{
	struct ar_rel vm = heap;
	vm.fork = AR_FORK_VM;
	struct ar_key vk = ar_key_rel_block(vm, heap_block / WI_VM_HEAPBLOCKS_PER_PAGE);
	struct keymap_entry *e = keymap_find(&c->kept, &vk);
	if (!e || !e->value)
		return;
	uint32_t within = heap_block % WI_VM_HEAPBLOCKS_PER_PAGE;
	const uint8_t *page = e->ptr;
	if ((page[24 + within / 4] >> (2 * (within % 4))) & 3)
		e->value = 0;
}

/* Argon's page before rec into base; *have false if it has none (a new page). */
static int page_before(struct rc_ctx *c, const struct wal_record *rec, const struct ar_key *key,
		       uint8_t base[AR_PAGE_BYTES], bool *have)
{
	struct keymap_entry *e = keymap_find(&c->kept, key);
	bool use_kept = e && e->value;
	uint32_t every = c->o->verify_every ? c->o->verify_every : 64;
	bool verify = use_kept && ++c->kept_uses % every == 0;
	if (use_kept && !verify) {
		memcpy(base, e->ptr, AR_PAGE_BYTES);
		*have = true;
		c->r->kept++;
		return 0;
	}
	uint32_t len = 0;
	int rc = tl_get(c->tl, key, rec->lsn, base, &len);
	c->r->from_store++;
	if (rc == -AR_ENOKEY) {
		*have = false;
		return 0;
	}
	if (rc < 0 || len != AR_PAGE_BYTES) {
		char a[24];
		lsn_text(rec->lsn, a);
		const char *why = rc < 0 && tl_error(c->tl)[0]
				      ? tl_error(c->tl)
				      : ar_strerror(rc < 0 ? rc : -AR_ECORRUPT);
		snprintf(c->err, STORE_ERROR_BYTES, "reading block %u of %u/%u/%u at %s: %s",
			 key->f6, key->f2, key->f3, key->f4, a, why);
		return rc < 0 ? rc : -AR_ECORRUPT;
	}
	if (verify && memcmp(base, e->ptr, AR_PAGE_BYTES) != 0)
		c->r->keep_disagreements++;
	*have = true;
	return 0;
}

/* The record to replay: the original, or (negative control) a copy with a byte
 * of its main data flipped and its CRC made right again. */
static int record_bytes(struct rc_ctx *c, const struct wal_record *rec, const uint8_t **out)
{
	*out = rec->raw;
	if (!c->o->flip_lsn || rec->lsn != c->o->flip_lsn)
		return 0;
	if (rec->main_data_len == 0) {
		snprintf(c->err, STORE_ERROR_BYTES, "the record to flip has no main data");
		return -EINVAL;
	}
	if (c->raw_cap < rec->tot_len) {
		uint8_t *p = realloc(c->raw, rec->tot_len);
		if (!p)
			return -ENOMEM;
		c->raw = p;
		c->raw_cap = rec->tot_len;
	}
	memcpy(c->raw, rec->raw, rec->tot_len);
	c->raw[rec->main_data - rec->raw] ^= 0x01;
	ar_put_le32(c->raw + 20, wal_record_crc(c->raw, rec->tot_len));
	c->r->flipped = 1;
	*out = c->raw;
	return 0;
}

static ar_lsn page_lsn(const uint8_t *page)
{
	return (ar_lsn)ar_get_le32(page) << 32 | ar_get_le32(page + 4);
}

static void report(struct rc_ctx *c, const struct wal_record *rec, const struct wal_block *b,
		   const char *what)
{
	if (c->r->mismatches + c->r->lsn_mismatches > (c->o->report_max ? c->o->report_max : 20))
		return;
	char a[24];
	lsn_text(rec->lsn, a);
	printf("mismatch: record at %s (rmgr %u, info 0x%02X), block %u of %u/%u/%u fork %u: %s\n",
	       a, rec->rmid, rec->info, b->blkno, b->rel.spc_oid, b->rel.db_oid, b->rel.rel_number,
	       b->rel.fork, what);
}

/* Replay rec on block b's page before it and compare with b's post-image. */
static int check_block(struct rc_ctx *c, const struct wal_record *rec, const struct wal_block *b)
{
	struct ar_key key = ar_key_rel_block(b->rel, b->blkno);
	uint8_t base[AR_PAGE_BYTES], got[AR_PAGE_BYTES], want[AR_PAGE_BYTES];
	char ierr[160], what[AR_REDO_ERROR_BYTES + 40];
	bool have = false;
	int rc = b->will_init ? 0 : page_before(c, rec, &key, base, &have);
	const uint8_t *raw;
	if (rc == 0)
		rc = record_bytes(c, rec, &raw);
	if (rc == 0 && wal_block_image(b, want, ierr) < 0) {
		snprintf(c->err, STORE_ERROR_BYTES, "post-image of block %u: %s", b->blkno, ierr);
		rc = -AR_ECORRUPT;
	}
	if (rc < 0)
		return rc;
	struct ar_redo_record one = {
		.lsn = rec->end_lsn,
		.value = { .kind = AR_VALUE_WAL,
			   .will_init = b->will_init,
			   .len = rec->tot_len,
			   .data = raw },
	};
	uint32_t len = 0;
	c->r->blocks_checked++;
	rc = c->redo->ops->apply(c->redo, &key, have ? base : NULL, have ? AR_PAGE_BYTES : 0, &one,
				 1, got, &len);
	if (rc < 0) {
		c->r->redo_errors++;
		c->r->mismatches++;
		snprintf(what, sizeof(what), "replay failed: %s", c->redo->err);
		report(c, rec, b, what);
		kept_drop(c, &key);
		return 0;
	}
	/* pd_lsn is the record's end, or (a change redo makes without setting it,
	 * like Heap2/VISIBLE's heap page without wal_log_hints) the post-image's. */
	ar_lsn got_lsn = page_lsn(got), want_lsn = page_lsn(want);
	if (got_lsn != rec->end_lsn && got_lsn != want_lsn) {
		c->r->lsn_mismatches++;
		snprintf(what, sizeof(what), "pd_lsn %X/%08X, neither the record's end nor %X/%08X",
			 (unsigned)(got_lsn >> 32), (unsigned)got_lsn, (unsigned)(want_lsn >> 32),
			 (unsigned)want_lsn);
		report(c, rec, b, what);
	}
	rc = kept_store(c, &key, got);
	if (rc == 0)
		rc = ar_redopool_mask(c->redo, rec->rmid, b->blkno, got);
	if (rc == 0)
		rc = ar_redopool_mask(c->redo, rec->rmid, b->blkno, want);
	if (rc < 0) {
		snprintf(c->err, STORE_ERROR_BYTES, "masking: %s", c->redo->err);
		return rc;
	}
	for (uint32_t i = 0; i < AR_PAGE_BYTES; i++) {
		if (got[i] != want[i]) {
			c->r->mismatches++;
			snprintf(what, sizeof(what), "after masking, first difference at byte %u",
				 i);
			report(c, rec, b, what);
			break;
		}
	}
	return 0;
}

static int on_record(void *ctx, const struct wal_record *rec)
{
	struct rc_ctx *c = ctx;
	c->r->records++;
	if (rec->rmid == WAL_RM_SMGR || rec->rmid == WAL_RM_DBASE)
		kept_drop_all(c);
	for (int i = 0; i <= rec->max_block_id; i++) {
		const struct wal_block *b = &rec->blocks[i];
		if (!b->in_use)
			continue;
		struct ar_key key = ar_key_rel_block(b->rel, b->blkno);
		if ((rec->rmid == WAL_RM_HEAP || rec->rmid == WAL_RM_HEAP2) &&
		    b->rel.fork == AR_FORK_MAIN)
			kept_vm_touched(c, b->rel, b->blkno);
		if (!b->has_image || b->apply_image || rec->end_lsn <= c->from) {
			kept_drop(c, &key); /* changed some other way: read it from the store */
			continue;
		}
		if (!c->r->first_lsn)
			c->r->first_lsn = rec->lsn;
		c->r->last_lsn = rec->lsn;
		int rc = check_block(c, rec, b);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int redo_check(struct ar_store *s, struct ar_timeline *tl, const struct ingest_state *st,
	       const struct redo_check_options *o, struct redo_check_result *r,
	       char err[STORE_ERROR_BYTES])
{
	memset(r, 0, sizeof(*r));
	if (!s->redopool) {
		snprintf(err, STORE_ERROR_BYTES, "no argon-walredo was found (set ARGON_WALREDO)");
		return -ENOTSUP;
	}
	struct rc_ctx c = { .s = s,
			    .tl = tl,
			    .redo = ar_redopool_slot(s->redopool, 0),
			    .o = o,
			    .r = r,
			    .from = st->consistent_lsn,
			    .err = err };
	keymap_init(&c.kept);
	/* Read from the base backup's start: the first records set up the pages. */
	struct ingest_state from = *st;
	from.next_lsn = st->base_start_lsn;
	struct wal_import_options wo = { .chunk_bytes = 1u << 20,
					 .queue_depth = 8,
					 .stop_lsn =
					     o->stop_lsn ? o->stop_lsn : tl_last_record_lsn(tl),
					 .progress = o->progress,
					 .visit = on_record,
					 .visit_ctx = &c };
	struct wal_import_result res;
	int rc = wal_import(s, tl, NULL, o->wal_dir, &from, &wo, &res, err);
	for (uint32_t i = 0; i < c.kept.cap; i++)
		free(c.kept.slots[i].ptr);
	keymap_free(&c.kept);
	free(c.raw);
	if (rc == 0 && o->flip_lsn && !r->flipped) {
		snprintf(err, STORE_ERROR_BYTES,
			 "no record with post-images starts at the LSN to flip");
		rc = -EINVAL;
	}
	return rc;
}
