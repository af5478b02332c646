/*
 * walingest.c - Records into the store (see walingest.h): the dispatch, block
 * references, the size and directory caches, page edits and the per-record flush.
 */
#include "ingest/walingest_int.h"

#include "common/bytes.h"
#include "common/err.h"
#include "engine/applier.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wi_fail(struct walingest *wi, int rc, const char *fmt, ...)
{
	char what[WI_ERROR_BYTES - 40];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(wi->err, sizeof(wi->err), "%s (record ending at %X/%08X)", what,
		 (unsigned)(wi->lsn >> 32), (unsigned)wi->lsn);
	return rc < 0 ? rc : -AR_ECORRUPT;
}

static void set_init(struct wi_set *s, uint32_t entry_bytes, struct ar_key key)
{
	memset(s, 0, sizeof(*s));
	s->entry_bytes = entry_bytes;
	s->key = key;
}

int wi_create(const struct wi_target *target, struct walingest **out)
{
	struct walingest *wi = calloc(1, sizeof(*wi));
	if (!wi)
		return -ENOMEM;
	wi->t = *target;
	uint32_t n = target->map.shard_count ? target->map.shard_count : 1;
	if (n > WI_SHARDS_MAX) {
		free(wi);
		return -EINVAL;
	}
	wi->meta = target->shards[0];
	for (uint32_t i = 0; i < n && !wi->any; i++)
		wi->any = target->shards[i];
	if (!wi->any) {
		free(wi);
		return -EINVAL;
	}
	keymap_init(&wi->sizes);
	keymap_init(&wi->sets);
	set_init(&wi->dbdir, 8, ar_key_db_dir());
	for (int k = 0; k < 3; k++)
		set_init(&wi->slrudir[k], 4, ar_key_slru_dir((enum ar_slru)k));
	set_init(&wi->filedir, 0, ar_key_file_dir());
	wi->mxoff_preinit_page = -1;
	*out = wi;
	return 0;
}

void wi_destroy(struct walingest *wi)
{
	if (!wi)
		return;
	for (uint32_t i = 0; i < wi->sets.cap; i++) {
		struct wi_set *s = wi->sets.slots[i].used ? wi->sets.slots[i].ptr : NULL;
		if (s)
			free(s->data);
		free(s);
	}
	keymap_free(&wi->sets);
	keymap_free(&wi->sizes);
	free(wi->dbdir.data);
	for (int k = 0; k < 3; k++)
		free(wi->slrudir[k].data);
	free(wi->filedir.data);
	free(wi->dirty);
	free(wi->dirty_sets);
	for (uint32_t i = 0; i < WI_EDITS_MAX; i++)
		free(wi->edits[i].buf);
	free(wi);
}

const char *wi_error(const struct walingest *wi)
{
	return wi->err;
}

const struct wi_stats *wi_stats(const struct walingest *wi)
{
	return &wi->stats;
}

/* ---- reads and puts ---- */

int wi_read(struct walingest *wi, struct ar_timeline *tl, const struct ar_key *key,
	    uint8_t out[AR_PAGE_BYTES], uint32_t *len)
{
	ar_lsn last = tl_last_record_lsn(tl);
	if (last < tl_start_lsn(tl) && !tl_ancestor(tl))
		return -AR_ENOKEY; /* nothing stored yet */
	int rc = tl_get(tl, key, last, out, len);
	if (rc < 0 && rc != -AR_ENOKEY) {
		char hex[AR_KEY_HEX_BYTES];
		ar_key_hex(key, hex);
		return wi_fail(wi, rc, "reading %s: %s", hex, tl_error(tl));
	}
	return rc;
}

int wi_put(struct walingest *wi, const struct ar_key *key, const struct ar_value *v)
{
	uint32_t shard = ar_shard_of_key(&wi->t.map, key);
	struct ar_timeline *tl = wi->t.shards[shard];
	if (!tl)
		return 0;
	int rc = tl_put(tl, key, wi->lsn, v);
	if (rc < 0) {
		char hex[AR_KEY_HEX_BYTES];
		ar_key_hex(key, hex);
		return wi_fail(wi, rc, "storing %s: %s", hex, strerror(rc < 0 ? -rc : rc));
	}
	return 0;
}

int wi_put_image(struct walingest *wi, const struct ar_key *key, const uint8_t *data, uint32_t len)
{
	struct ar_value v = { .kind = AR_VALUE_IMAGE, .len = len, .data = data };
	return wi_put(wi, key, &v);
}

/* ---- sizes ---- */

static int mark_dirty(struct walingest *wi, const struct ar_key *key)
{
	if (wi->ndirty == wi->dirty_cap) {
		uint32_t cap = wi->dirty_cap ? wi->dirty_cap * 2 : 64;
		struct ar_key *d = realloc(wi->dirty, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		wi->dirty = d;
		wi->dirty_cap = cap;
	}
	wi->dirty[wi->ndirty++] = *key;
	return 0;
}

static struct keymap_entry *size_entry(struct walingest *wi, const struct ar_key *size_key, int *rc)
{
	bool added;
	struct keymap_entry *e = keymap_add(&wi->sizes, size_key, &added);
	*rc = 0;
	if (!e) {
		*rc = -ENOMEM;
		return NULL;
	}
	if (!added && !(e->value & WI_SIZE_UNREAD))
		return e;
	uint8_t v[AR_PAGE_BYTES];
	uint32_t len = 0;
	struct ar_timeline *tl = size_key->f1 == 0 ? wi->any : wi->meta;
	int r = tl ? wi_read(wi, tl, size_key, v, &len) : -AR_ENOKEY;
	e->value = 0; /* missing, or a tombstone */
	if (r == 0 && len == 4)
		e->value = WI_SIZE_EXISTS | ar_get_le32(v);
	else if (r == 0 && len != 0)
		r = wi_fail(wi, -AR_ECORRUPT, "size value of %u bytes", len);
	if (r < 0 && r != -AR_ENOKEY) {
		*rc = r;
		e->value = WI_SIZE_UNREAD; /* read again next time, never taken as "missing" */
		return NULL;
	}
	return e;
}

int wi_size_get(struct walingest *wi, const struct ar_key *size_key, bool *exists, uint32_t *n)
{
	int rc;
	struct keymap_entry *e = size_entry(wi, size_key, &rc);
	if (!e)
		return rc;
	*exists = (e->value & WI_SIZE_EXISTS) != 0;
	*n = (uint32_t)e->value;
	return 0;
}

int wi_size_set(struct walingest *wi, const struct ar_key *size_key, bool exists, uint32_t n)
{
	int rc;
	struct keymap_entry *e = size_entry(wi, size_key, &rc);
	if (!e)
		return rc;
	bool was_dirty = (e->value & WI_SIZE_DIRTY) != 0;
	e->value = (exists ? WI_SIZE_EXISTS : 0) | WI_SIZE_DIRTY | (exists ? n : 0);
	return was_dirty ? 0 : mark_dirty(wi, size_key);
}

/* ---- sorted sets (directories) ---- */

int wi_set_mark(struct walingest *wi, struct wi_set *s)
{
	if (s->dirty)
		return 0;
	if (wi->ndirty_sets == wi->dirty_sets_cap) {
		uint32_t cap = wi->dirty_sets_cap ? wi->dirty_sets_cap * 2 : 16;
		struct wi_set **d = realloc(wi->dirty_sets, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		wi->dirty_sets = d;
		wi->dirty_sets_cap = cap;
	}
	wi->dirty_sets[wi->ndirty_sets++] = s;
	s->dirty = true;
	return 0;
}

int wi_set_reserve(struct wi_set *s, uint32_t len)
{
	if (len <= s->cap)
		return 0;
	uint32_t cap = s->cap ? s->cap : 256;
	while (cap < len)
		cap *= 2;
	uint8_t *d = realloc(s->data, cap);
	if (!d)
		return -ENOMEM;
	s->data = d;
	s->cap = cap;
	return 0;
}

int wi_set_load(struct walingest *wi, struct wi_set *s)
{
	if (s->loaded)
		return 0;
	uint8_t v[AR_PAGE_BYTES];
	uint32_t len = 0;
	/* Relation directories are on every shard, the other directories on shard 0. */
	struct ar_timeline *tl = ar_key_is_rel_dir(&s->key) ? wi->any : wi->meta;
	int rc = tl ? wi_read(wi, tl, &s->key, v, &len) : -AR_ENOKEY;
	if (rc < 0 && rc != -AR_ENOKEY)
		return rc;
	if (rc == -AR_ENOKEY)
		len = 0;
	if (s->entry_bytes && len % s->entry_bytes != 0)
		return wi_fail(wi, -AR_ECORRUPT, "directory value of %u bytes", len);
	if (wi_set_reserve(s, len) < 0)
		return -ENOMEM;
	if (len > 0) /* an empty set may have no buffer yet */
		memcpy(s->data, v, len);
	s->len = len;
	s->loaded = true;
	return 0;
}

/* Position of entry in the sorted set; *found if present. */
static uint32_t set_find(const struct wi_set *s, const uint8_t *entry, bool *found)
{
	uint32_t lo = 0, hi = s->len / s->entry_bytes;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		int c = memcmp(s->data + mid * s->entry_bytes, entry, s->entry_bytes);
		if (c == 0) {
			*found = true;
			return mid * s->entry_bytes;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo * s->entry_bytes;
}

int wi_set_add(struct walingest *wi, struct wi_set *s, const uint8_t *entry)
{
	int rc = wi_set_load(wi, s);
	if (rc < 0)
		return rc;
	bool found;
	uint32_t at = set_find(s, entry, &found);
	if (found)
		return 0;
	if (s->len + s->entry_bytes > AR_PAGE_BYTES)
		return wi_fail(wi, -AR_ELIMIT, "a directory of more than %u entries",
			       AR_PAGE_BYTES / s->entry_bytes);
	if (wi_set_reserve(s, s->len + s->entry_bytes) < 0)
		return -ENOMEM;
	memmove(s->data + at + s->entry_bytes, s->data + at, s->len - at);
	memcpy(s->data + at, entry, s->entry_bytes);
	s->len += s->entry_bytes;
	return wi_set_mark(wi, s);
}

int wi_set_remove(struct walingest *wi, struct wi_set *s, const uint8_t *entry)
{
	int rc = wi_set_load(wi, s);
	if (rc < 0)
		return rc;
	bool found;
	uint32_t at = set_find(s, entry, &found);
	if (!found)
		return 0;
	memmove(s->data + at, s->data + at + s->entry_bytes, s->len - at - s->entry_bytes);
	s->len -= s->entry_bytes;
	return wi_set_mark(wi, s);
}

struct wi_set *wi_reldir(struct walingest *wi, uint32_t spc, uint32_t db, uint32_t part)
{
	struct ar_key key = ar_key_rel_dir_part(spc, db, part);
	bool added;
	struct keymap_entry *e = keymap_add(&wi->sets, &key, &added);
	if (!e)
		return NULL;
	if (added) {
		struct wi_set *s = malloc(sizeof(*s));
		if (!s)
			return NULL; /* the entry stays with a NULL set: retried next time */
		set_init(s, AR_REL_DIR_ENTRY_BYTES, key);
		e->ptr = s;
	}
	if (!e->ptr) {
		e->ptr = malloc(sizeof(struct wi_set));
		if (!e->ptr)
			return NULL;
		set_init(e->ptr, AR_REL_DIR_ENTRY_BYTES, key);
	}
	return e->ptr;
}

/* ---- page edits ---- */

static struct wi_edit *edit_for(struct walingest *wi, const struct ar_key *key, uint8_t type)
{
	for (uint32_t i = 0; i < wi->nedits; i++)
		if (wi->edits[i].type == type && ar_key_cmp(&wi->edits[i].key, key) == 0)
			return &wi->edits[i];
	if (wi->nedits == WI_EDITS_MAX)
		return NULL;
	struct wi_edit *e = &wi->edits[wi->nedits++];
	e->key = *key;
	e->type = type;
	e->len = 0;
	return e;
}

static int edit_append(struct wi_edit *e, const uint8_t *bytes, uint32_t n)
{
	if (e->len + n > e->cap) {
		uint32_t cap = e->cap ? e->cap * 2 : 256;
		while (cap < e->len + n)
			cap *= 2;
		uint8_t *b = realloc(e->buf, cap);
		if (!b)
			return -ENOMEM;
		e->buf = b;
		e->cap = cap;
	}
	memcpy(e->buf + e->len, bytes, n);
	e->len += n;
	return 0;
}

int wi_edit_mask(struct walingest *wi, const struct ar_key *key, uint16_t off, uint8_t mask,
		 uint8_t value)
{
	struct wi_edit *e = edit_for(wi, key, AR_ARGON_BYTE_MASK);
	if (!e)
		return wi_fail(wi, -AR_ELIMIT, "more than %d pages edited by one record",
			       WI_EDITS_MAX);
	uint8_t entry[AR_ARGON_MASK_ENTRY_BYTES];
	ar_argon_mask_entry(entry, off, mask, value);
	return edit_append(e, entry, sizeof(entry));
}

int wi_edit_zero_tail(struct walingest *wi, const struct ar_key *key, uint16_t off, uint8_t keep)
{
	struct wi_edit *e = edit_for(wi, key, AR_ARGON_ZERO_TAIL);
	if (!e)
		return wi_fail(wi, -AR_ELIMIT, "more than %d pages edited by one record",
			       WI_EDITS_MAX);
	uint8_t entry[AR_ARGON_ZERO_TAIL_BYTES] = { (uint8_t)(off >> 8), (uint8_t)off, keep };
	e->len = 0; /* one truncation per page and record */
	return edit_append(e, entry, sizeof(entry));
}

/* ---- the per-record flush ---- */

/* An image of key on every shard held here (relation sizes and directories). */
static int put_everywhere(struct walingest *wi, const struct ar_key *key, const uint8_t *data,
			  uint32_t len)
{
	struct ar_value val = { .kind = AR_VALUE_IMAGE, .len = len, .data = data };
	uint32_t n = wi->t.map.shard_count ? wi->t.map.shard_count : 1;
	for (uint32_t s = 0; s < n; s++) {
		if (!wi->t.shards[s])
			continue;
		int rc = tl_put(wi->t.shards[s], key, wi->lsn, &val);
		if (rc < 0) {
			char hex[AR_KEY_HEX_BYTES];
			ar_key_hex(key, hex);
			return wi_fail(wi, rc, "storing %s: %s", hex, strerror(-rc));
		}
	}
	return 0;
}

static int flush_size(struct walingest *wi, const struct ar_key *key)
{
	struct keymap_entry *e = keymap_find(&wi->sizes, key);
	if (!e || !(e->value & WI_SIZE_DIRTY))
		return 0;
	e->value &= ~WI_SIZE_DIRTY;
	uint8_t v[4];
	ar_put_le32(v, (uint32_t)e->value);
	struct ar_value val = { .kind = AR_VALUE_IMAGE,
				.len = (e->value & WI_SIZE_EXISTS) ? 4 : 0,
				.data = v };
	if (key->f1 != 0)
		return wi_put(wi, key, &val);
	return put_everywhere(wi, key, val.data, val.len); /* relation sizes: every shard */
}

int wi_flush(struct walingest *wi)
{
	int rc = 0;
	for (uint32_t i = 0; i < wi->ndirty; i++) {
		if (rc == 0) {
			rc = flush_size(wi, &wi->dirty[i]);
			continue;
		}
		/* After a failed put the ingest stops; no entry may stay marked dirty. */
		struct keymap_entry *e = keymap_find(&wi->sizes, &wi->dirty[i]);
		if (e)
			e->value &= ~WI_SIZE_DIRTY;
	}
	wi->ndirty = 0;
	for (uint32_t i = 0; i < wi->ndirty_sets; i++) {
		struct wi_set *s = wi->dirty_sets[i];
		s->dirty = false;
		if (rc == 0 && ar_key_is_rel_dir(&s->key))
			rc = put_everywhere(wi, &s->key, s->data, s->len);
		else if (rc == 0)
			rc = wi_put_image(wi, &s->key, s->data, s->len);
	}
	wi->ndirty_sets = 0;
	for (uint32_t i = 0; i < wi->nedits; i++) {
		struct wi_edit *e = &wi->edits[i];
		struct ar_value v = {
			.kind = AR_VALUE_ARGON, .argon_type = e->type, .len = e->len, .data = e->buf
		};
		if (rc == 0 && e->len > 0) {
			rc = wi_put(wi, &e->key, &v);
			wi->stats.argon_values++;
		}
	}
	wi->nedits = 0;
	wi->nfresh = 0;
	return rc;
}

/* ---- block references ---- */

static void page_set_lsn(uint8_t *page, ar_lsn lsn)
{
	/* pd_lsn: xlogid then xrecoff, in the primary's (little-endian) order. */
	ar_put_le32(page, (uint32_t)(lsn >> 32));
	ar_put_le32(page + 4, (uint32_t)lsn);
}

static int ingest_block(struct walingest *wi, const struct wal_record *rec,
			const struct wal_block *b)
{
	int rc;
	struct ar_key key = ar_key_rel_block(b->rel, b->blkno);
	if (b->has_image && b->apply_image) {
		/* A full-page image: the page as of this record.  The post-images that
		 * wal_consistency_checking adds (not marked for apply) are not stored:
		 * the record is, so redo rebuilds the page as it does for the standby. */
		uint8_t page[AR_PAGE_BYTES];
		char err[160];
		if (wal_block_image(b, page, err) < 0)
			return wi_fail(wi, -AR_ECORRUPT, "block %u of %u/%u/%u: %s", b->blkno,
				       b->rel.spc_oid, b->rel.db_oid, b->rel.rel_number, err);
		if (ar_get_le16(page + 14) != 0) /* as PostgreSQL: a new page keeps LSN 0 */
			page_set_lsn(page, wi->lsn);
		rc = wi_put_image(wi, &key, page, AR_PAGE_BYTES);
		wi->stats.images++;
	} else {
		if (rec->tot_len > AR_VALUE_BYTES_MAX)
			return wi_fail(wi, -AR_ELIMIT, "a %u-byte record touching a page",
				       rec->tot_len);
		/* A block past the fork's end: PostgreSQL's redo extends the fork and
		 * applies the record to a zero page (full_page_writes off, or a map
		 * page's first VISIBLE), and so does Argon's: the record is a base,
		 * whatever an older, truncated version of the block held. */
		struct ar_key sk = ar_key_rel_size(b->rel);
		bool exists;
		uint32_t nblocks;
		rc = wi_size_get(wi, &sk, &exists, &nblocks);
		if (rc < 0)
			return rc;
		bool fresh = !exists || b->blkno >= nblocks;
		struct ar_value v = { .kind = AR_VALUE_WAL,
				      .will_init = b->will_init || fresh,
				      .len = rec->tot_len,
				      .data = rec->raw };
		rc = wi_put(wi, &key, &v);
		wi->stats.wal_values++;
	}
	if (rc < 0)
		return rc;
	return wi_rel_extend(wi, b->rel, b->blkno + 1);
}

static int ingest_tblspc(struct walingest *wi, const struct wal_record *rec)
{
	uint32_t spc = rec->main_data_len >= 4 ? ar_get_le32(rec->main_data) : 0;
	return wi_fail(wi, -ENOTSUP,
		       "tablespace %u: Argon supports only pg_default and pg_global "
		       "(CREATE/DROP TABLESPACE)",
		       spc);
}

static int ingest_rmgr(struct walingest *wi, const struct wal_record *rec)
{
	switch (rec->rmid) {
	case WAL_RM_XLOG:
		return wi_xlog(wi, rec);
	case WAL_RM_XACT:
		return wi_xact(wi, rec);
	case WAL_RM_SMGR:
		return wi_smgr(wi, rec);
	case WAL_RM_CLOG:
		return wi_clog(wi, rec);
	case WAL_RM_DBASE:
		return wi_dbase(wi, rec);
	case WAL_RM_TBLSPC:
		return ingest_tblspc(wi, rec);
	case WAL_RM_MULTIXACT:
		return wi_multixact(wi, rec);
	case WAL_RM_RELMAP:
		return wi_relmap(wi, rec);
	case WAL_RM_HEAP:
	case WAL_RM_HEAP2:
		return wi_heap_vm(wi, rec);
	default:
		return 0;
	}
}

/* A block reference names a relation block: relation number 0 and block
 * 0xFFFFFFFF (InvalidBlockNumber) are the keys of a database's relation map and
 * directory, and of the relation's size, which the block's value would replace. */
static int check_block(struct walingest *wi, const struct wal_block *b)
{
	int rc = wi_rel_check_spc(wi, b->rel.spc_oid);
	if (rc == 0 && (b->rel.rel_number == 0 || b->blkno == AR_KEY_BLOCK_SIZE_MARKER))
		rc = wi_fail(wi, -AR_ECORRUPT, "block %u of %u/%u/%u is not a relation block",
			     b->blkno, b->rel.spc_oid, b->rel.db_oid, b->rel.rel_number);
	return rc;
}

static ar_lsn stored_lsn(const struct walingest *wi)
{
	ar_lsn last = 0;
	uint32_t n = wi->t.map.shard_count ? wi->t.map.shard_count : 1;
	for (uint32_t s = 0; s < n; s++)
		if (wi->t.shards[s] && tl_last_record_lsn(wi->t.shards[s]) > last)
			last = tl_last_record_lsn(wi->t.shards[s]);
	return last;
}

int wi_record(struct walingest *wi, const struct wal_record *rec)
{
	wi->err[0] = '\0';
	if (rec->end_lsn <= stored_lsn(wi)) {
		/* Stored before a restart: only what the import's state needs is noted. */
		if (rec->rmid == WAL_RM_XLOG && (rec->info & 0xF0) == 0x50 &&
		    rec->main_data_len >= 8) {
			wi->stats.backup_end_start = ar_get_le64(rec->main_data);
			wi->stats.backup_end_lsn = rec->end_lsn;
		}
		wi->stats.skipped++;
		return 0;
	}
	wi->lsn = rec->end_lsn;
	int rc = 0;
	/* Refuse before storing anything, so a refused record leaves nothing behind. */
	for (int i = 0; i <= rec->max_block_id && rc == 0; i++)
		if (rec->blocks[i].in_use)
			rc = check_block(wi, &rec->blocks[i]);
	for (int i = 0; i <= rec->max_block_id && rc == 0; i++)
		if (rec->blocks[i].in_use)
			rc = ingest_block(wi, rec, &rec->blocks[i]);
	if (rc == 0)
		rc = ingest_rmgr(wi, rec);
	int frc = wi_flush(wi);
	if (rc == 0)
		rc = frc;
	if (rc < 0)
		return rc;
	/* Every shard held here has seen this record, whether it stored a value or not. */
	uint32_t n = wi->t.map.shard_count ? wi->t.map.shard_count : 1;
	for (uint32_t s = 0; s < n; s++)
		if (wi->t.shards[s])
			tl_advance(wi->t.shards[s], rec->end_lsn);
	wi->stats.records++;
	wi->stats.bytes += rec->tot_len;
	return 0;
}

void wi_maybe_freeze(struct walingest *wi, bool force)
{
	uint32_t n = wi->t.map.shard_count ? wi->t.map.shard_count : 1;
	for (uint32_t s = 0; s < n; s++)
		if (wi->t.shards[s])
			tl_maybe_freeze(wi->t.shards[s], force);
}
