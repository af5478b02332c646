/*
 * walingest_int.h - The ingest's state, shared by its files: walingest.c (the
 * dispatch, block references, caches and the per-record flush), wi_meta.c
 * (directories, relations, databases, files, relation map, checkpoints) and
 * wi_xact.c (transactions, clog, multixacts, the commit-timestamp index).
 *
 * Metadata is changed in memory while a record is ingested and written once per
 * key at the record's end LSN (wi_flush): a key is never put twice at one LSN.
 */
#ifndef AR_INGEST_WALINGEST_INT_H
#define AR_INGEST_WALINGEST_INT_H

#include "ingest/keymap.h"
#include "ingest/walingest.h"

#include <stdbool.h>
#include <stdint.h>

#define WI_PG_DEFAULT_SPC 1663
#define WI_PG_GLOBAL_SPC 1664
#define WI_SLRU_PAGES_PER_SEGMENT 32
#define WI_PAGE_HEADER_BYTES 24

/* A sorted set of fixed-size entries (a directory value), loaded lazily. */
struct wi_set {
	uint8_t *data;
	uint32_t len;
	uint32_t cap;
	uint32_t entry_bytes;
	bool loaded;
	bool dirty;
	struct ar_key key;
};

/* Edits of one page by one record (Argon records, applied at read time). */
struct wi_edit {
	struct ar_key key;
	uint8_t type;
	uint8_t *buf;
	uint32_t len;
	uint32_t cap;
};

#define WI_EDITS_MAX 64

struct walingest {
	struct wi_target t;
	struct ar_timeline *meta; /* shard 0, NULL when held elsewhere */
	struct ar_timeline *any;  /* a held shard: relation sizes are on every one */
	struct keymap sizes;      /* relation and SLRU segment size keys -> packed size */
	struct keymap sets;       /* relation directory part keys -> struct wi_set * */
	struct wi_set dbdir;
	struct wi_set slrudir[3];
	struct wi_set filedir; /* variable entries: u16 length + path, kept sorted */
	struct ar_key *dirty;  /* size keys changed by this record */
	uint32_t ndirty, dirty_cap;
	struct wi_set **dirty_sets;
	uint32_t ndirty_sets, dirty_sets_cap;
	struct wi_edit edits[WI_EDITS_MAX];
	uint32_t nedits;
#define WI_FRESH_MAX 8
	struct ar_key fresh[WI_FRESH_MAX]; /* map pages this record added */
	uint32_t nfresh;
	ar_lsn lsn; /* the end LSN of the record being ingested */
	int64_t mxoff_preinit_page;
	char err[WI_ERROR_BYTES];
	struct wi_stats stats;
};

/* Sizes are packed: bits 0-31 the size, 32 exists, 33 dirty, 34 not read (a read
 * failed: read again). */
#define WI_SIZE_EXISTS (1ull << 32)
#define WI_SIZE_DIRTY (1ull << 33)
#define WI_SIZE_UNREAD (1ull << 34)

int wi_fail(struct walingest *wi, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads of the current state (the newest LSN stored). */
int wi_read(struct walingest *wi, struct ar_timeline *tl, const struct ar_key *key,
	    uint8_t out[AR_PAGE_BYTES], uint32_t *len);
/* Put a value on the shard owning key (skipped when held elsewhere). */
int wi_put(struct walingest *wi, const struct ar_key *key, const struct ar_value *v);
int wi_put_image(struct walingest *wi, const struct ar_key *key, const uint8_t *data, uint32_t len);

/* Size of a relation fork or SLRU segment (size key); *exists false if none. */
int wi_size_get(struct walingest *wi, const struct ar_key *size_key, bool *exists, uint32_t *n);
int wi_size_set(struct walingest *wi, const struct ar_key *size_key, bool exists, uint32_t n);

int wi_set_load(struct walingest *wi, struct wi_set *s);
int wi_set_mark(struct walingest *wi, struct wi_set *s);
int wi_set_reserve(struct wi_set *s, uint32_t len);
int wi_set_add(struct walingest *wi, struct wi_set *s, const uint8_t *entry);
int wi_set_remove(struct walingest *wi, struct wi_set *s, const uint8_t *entry);
struct wi_set *wi_reldir(struct walingest *wi, uint32_t spc, uint32_t db, uint32_t part);

/* An Argon edit of a page, gathered per record. */
int wi_edit_mask(struct walingest *wi, const struct ar_key *key, uint16_t off, uint8_t mask,
		 uint8_t value);
int wi_edit_zero_tail(struct walingest *wi, const struct ar_key *key, uint16_t off, uint8_t keep);

/* Relations (wi_meta.c). */
int wi_rel_check_spc(struct walingest *wi, uint32_t spc);
int wi_rel_extend(struct walingest *wi, struct ar_rel rel, uint32_t nblocks);
int wi_rel_create(struct walingest *wi, struct ar_rel rel);
int wi_rel_drop(struct walingest *wi, struct ar_rel rel);
int wi_rel_truncate(struct walingest *wi, struct ar_rel rel, uint32_t nblocks);
int wi_vm_clear(struct walingest *wi, struct ar_rel heap, uint32_t heap_block, uint8_t bits);
int wi_rel_block_image(struct walingest *wi, struct ar_rel rel, uint32_t blkno,
		       const uint8_t page[AR_PAGE_BYTES]);
int wi_db_add(struct walingest *wi, uint32_t spc, uint32_t db);

/* SLRU pages (wi_xact.c). */
int wi_slru_page_image(struct walingest *wi, enum ar_slru kind, uint32_t pageno,
		       const uint8_t *page);

/* Record handlers. */
int wi_smgr(struct walingest *wi, const struct wal_record *rec);
int wi_dbase(struct walingest *wi, const struct wal_record *rec);
int wi_relmap(struct walingest *wi, const struct wal_record *rec);
int wi_xlog(struct walingest *wi, const struct wal_record *rec);
int wi_heap_vm(struct walingest *wi, const struct wal_record *rec);
int wi_xact(struct walingest *wi, const struct wal_record *rec);
int wi_clog(struct walingest *wi, const struct wal_record *rec);
int wi_multixact(struct walingest *wi, const struct wal_record *rec);

/* Write every changed size, directory and page edit at wi->lsn. */
int wi_flush(struct walingest *wi);

#endif
