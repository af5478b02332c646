/*
 * wi_meta.c - What the ingest changes besides pages: relations (create, extend,
 * truncate, drop, visibility-map bits), databases, the relation map,
 * checkpoints, non-relation files, and the base import's entry points.
 */
#include "ingest/walingest_int.h"

#include "common/bytes.h"
#include "common/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL 15 facts: record kinds and layouts this file reads. */
#define SMGR_CREATE 0x10
#define SMGR_TRUNCATE 0x20
#define SMGR_TRUNCATE_HEAP 0x1
#define SMGR_TRUNCATE_VM 0x2
#define SMGR_TRUNCATE_FSM 0x4
#define DBASE_CREATE_FILE_COPY 0x00
#define DBASE_CREATE_WAL_LOG 0x10
#define DBASE_DROP 0x20
#define XLOG_CHECKPOINT_SHUTDOWN 0x00
#define XLOG_CHECKPOINT_ONLINE 0x10
#define XLOG_BACKUP_END 0x50
#define FSM_SLOTS_PER_PAGE 4069 /* leaf nodes of an 8 KiB FSM page */
#define FSM_TREE_DEPTH 3

int wi_rel_check_spc(struct walingest *wi, uint32_t spc)
{
	if (spc == WI_PG_DEFAULT_SPC || spc == WI_PG_GLOBAL_SPC)
		return 0;
	return wi_fail(wi, -ENOTSUP, "tablespace %u: Argon supports only pg_default and pg_global",
		       spc);
}

static void rel_entry(struct ar_rel rel, uint8_t e[AR_REL_DIR_ENTRY_BYTES])
{
	ar_put_be32(e, rel.rel_number);
	e[4] = rel.fork;
}

/* List (present) or unlist the relation fork in its relation directory part (kept on
 * every shard: a shard copies its share of a database's relations by it). */
static int reldir_update(struct walingest *wi, struct ar_rel rel, bool present)
{
	struct wi_set *s =
	    wi_reldir(wi, rel.spc_oid, rel.db_oid, ar_rel_dir_part_of(rel.rel_number));
	if (!s)
		return -ENOMEM;
	uint8_t e[AR_REL_DIR_ENTRY_BYTES];
	rel_entry(rel, e);
	return present ? wi_set_add(wi, s, e) : wi_set_remove(wi, s, e);
}

int wi_rel_create(struct walingest *wi, struct ar_rel rel)
{
	struct ar_key sk = ar_key_rel_size(rel);
	bool exists;
	uint32_t n;
	int rc = wi_size_get(wi, &sk, &exists, &n);
	if (rc < 0 || exists)
		return rc;
	rc = wi_size_set(wi, &sk, true, 0);
	if (rc < 0)
		return rc;
	wi->stats.rels_created++;
	return reldir_update(wi, rel, true);
}

int wi_rel_extend(struct walingest *wi, struct ar_rel rel, uint32_t nblocks)
{
	struct ar_key sk = ar_key_rel_size(rel);
	bool exists;
	uint32_t n;
	int rc = wi_size_get(wi, &sk, &exists, &n);
	if (rc == 0 && !exists)
		rc = wi_rel_create(wi, rel);
	if (rc < 0)
		return rc;
	if (exists && n >= nblocks)
		return 0;
	return wi_size_set(wi, &sk, true, nblocks);
}

int wi_rel_drop(struct walingest *wi, struct ar_rel rel)
{
	struct ar_key sk = ar_key_rel_size(rel);
	bool exists;
	uint32_t n;
	int rc = wi_size_get(wi, &sk, &exists, &n);
	if (rc < 0 || !exists)
		return rc;
	rc = wi_size_set(wi, &sk, false, 0);
	if (rc < 0)
		return rc;
	wi->stats.rels_dropped++;
	return reldir_update(wi, rel, false);
}

int wi_rel_truncate(struct walingest *wi, struct ar_rel rel, uint32_t nblocks)
{
	struct ar_key sk = ar_key_rel_size(rel);
	bool exists;
	uint32_t n;
	int rc = wi_size_get(wi, &sk, &exists, &n);
	if (rc < 0 || !exists || n <= nblocks)
		return rc;
	return wi_size_set(wi, &sk, true, nblocks);
}

/* A page as PageInit(page, BLCKSZ, 0) leaves it: what PostgreSQL extends a
 * visibility map with. */
static void page_init(uint8_t page[AR_PAGE_BYTES])
{
	memset(page, 0, AR_PAGE_BYTES);
	ar_put_le16(page + 12, WI_PAGE_HEADER_BYTES); /* pd_lower */
	ar_put_le16(page + 14, AR_PAGE_BYTES);        /* pd_upper */
	ar_put_le16(page + 16, AR_PAGE_BYTES);        /* pd_special */
	ar_put_le16(page + 18, AR_PAGE_BYTES | 4);    /* pd_pagesize_version */
}

/* Clear bits (VISIBILITYMAP_ALL_VISIBLE 1, ALL_FROZEN 2) of a heap block, as
 * PostgreSQL's heap redo does; a missing map page is added initialised (its
 * bits are then clear already), as visibilitymap_pin extends the map. */
int wi_vm_clear(struct walingest *wi, struct ar_rel heap, uint32_t heap_block, uint8_t bits)
{
	struct ar_rel vm = heap;
	vm.fork = AR_FORK_VM;
	uint32_t mapblk = heap_block / WI_VM_HEAPBLOCKS_PER_PAGE;
	uint32_t within = heap_block % WI_VM_HEAPBLOCKS_PER_PAGE;
	struct ar_key sk = ar_key_rel_size(vm);
	bool exists;
	uint32_t n;
	int rc = wi_size_get(wi, &sk, &exists, &n);
	if (rc < 0)
		return rc;
	wi->stats.vm_clears++;
	if (!exists || n <= mapblk) {
		uint8_t page[AR_PAGE_BYTES];
		page_init(page);
		for (uint32_t b = exists ? n : 0; b <= mapblk; b++) {
			struct ar_key k = ar_key_rel_block(vm, b);
			rc = wi_put_image(wi, &k, page, AR_PAGE_BYTES);
			if (rc < 0)
				return rc;
			if (wi->nfresh < WI_FRESH_MAX)
				wi->fresh[wi->nfresh++] = k;
		}
		return wi_rel_extend(wi, vm, mapblk + 1);
	}
	struct ar_key k = ar_key_rel_block(vm, mapblk);
	for (uint32_t i = 0; i < wi->nfresh; i++)
		if (ar_key_cmp(&wi->fresh[i], &k) == 0)
			return 0; /* added by this record: its bits are clear */
	uint16_t off = (uint16_t)(WI_PAGE_HEADER_BYTES + within / 4);
	return wi_edit_mask(wi, &k, off, (uint8_t)(bits << (2 * (within % 4))), 0);
}

/* ---- smgr ---- */

static struct ar_rel rel_at(const uint8_t *p, uint8_t fork)
{
	return (struct ar_rel){ .spc_oid = ar_get_le32(p),
				.db_oid = ar_get_le32(p + 4),
				.rel_number = ar_get_le32(p + 8),
				.fork = fork };
}

/* The FSM's size after truncating its heap to nblocks (freespace.c's
 * fsm_logical_to_physical of the first removed bottom-level page). */
static uint32_t fsm_blocks_for(uint32_t heap_blocks)
{
	uint32_t logpage = heap_blocks / FSM_SLOTS_PER_PAGE;
	uint32_t slot = heap_blocks % FSM_SLOTS_PER_PAGE;
	uint64_t pages = 0, leaf = logpage;
	for (int l = 0; l < FSM_TREE_DEPTH; l++) {
		pages += leaf + 1;
		leaf /= FSM_SLOTS_PER_PAGE;
	}
	uint32_t phys = (uint32_t)(pages - 1);
	return slot == 0 ? phys : phys + 1;
}

static int smgr_truncate(struct walingest *wi, const struct wal_record *rec)
{
	if (rec->main_data_len < 20)
		return wi_fail(wi, -AR_ECORRUPT, "short smgr truncate record");
	uint32_t blkno = ar_get_le32(rec->main_data);
	uint32_t flags = ar_get_le32(rec->main_data + 16);
	struct ar_rel rel = rel_at(rec->main_data + 4, AR_FORK_MAIN);
	int rc = wi_rel_check_spc(wi, rel.spc_oid);
	if (rc == 0 && (flags & SMGR_TRUNCATE_HEAP))
		rc = wi_rel_truncate(wi, rel, blkno);
	if (rc == 0 && (flags & SMGR_TRUNCATE_FSM)) {
		rel.fork = AR_FORK_FSM;
		rc = wi_rel_truncate(wi, rel, fsm_blocks_for(blkno));
	}
	if (rc == 0 && (flags & SMGR_TRUNCATE_VM)) {
		rel.fork = AR_FORK_VM;
		uint32_t mapblk = blkno / WI_VM_HEAPBLOCKS_PER_PAGE;
		uint32_t within = blkno % WI_VM_HEAPBLOCKS_PER_PAGE;
		bool exists;
		uint32_t n;
		struct ar_key sk = ar_key_rel_size(rel);
		rc = wi_size_get(wi, &sk, &exists, &n);
		if (rc == 0 && exists && within != 0 && mapblk < n) {
			/* The last kept map page loses the bits of the removed blocks. */
			struct ar_key k = ar_key_rel_block(rel, mapblk);
			uint16_t off = (uint16_t)(WI_PAGE_HEADER_BYTES + within / 4);
			uint8_t keep = (uint8_t)((1u << (2 * (within % 4))) - 1);
			rc = wi_edit_zero_tail(wi, &k, off, keep);
		}
		if (rc == 0)
			rc = wi_rel_truncate(wi, rel, mapblk + (within != 0));
	}
	return rc;
}

int wi_smgr(struct walingest *wi, const struct wal_record *rec)
{
	uint8_t info = rec->info & 0xF0;
	if (info == SMGR_CREATE) {
		if (rec->main_data_len < 16)
			return wi_fail(wi, -AR_ECORRUPT, "short smgr create record");
		uint32_t fork = ar_get_le32(rec->main_data + 12);
		struct ar_rel rel = rel_at(rec->main_data, (uint8_t)fork);
		int rc = wi_rel_check_spc(wi, rel.spc_oid);
		return rc < 0 ? rc : wi_rel_create(wi, rel);
	}
	if (info == SMGR_TRUNCATE)
		return smgr_truncate(wi, rec);
	return 0;
}

/* ---- databases ---- */

int wi_db_add(struct walingest *wi, uint32_t spc, uint32_t db)
{
	if (!wi->meta)
		return 0;
	uint8_t e[8];
	ar_put_be32(e, spc);
	ar_put_be32(e + 4, db);
	int rc = wi_set_add(wi, &wi->dbdir, e);
	if (rc < 0)
		return rc;
	/* An empty relation directory: the database exists even with no relations. */
	struct wi_set *s = wi_reldir(wi, spc, db, 0);
	if (!s)
		return -ENOMEM;
	rc = wi_set_load(wi, s);
	if (rc == 0 && s->len == 0)
		rc = wi_set_mark(wi, s); /* written (empty) with the record's other changes */
	return rc;
}

static int pg_version_file(struct walingest *wi, uint32_t db)
{
	char path[64];
	snprintf(path, sizeof(path), "base/%u/PG_VERSION", db);
	return wi_file_put(wi, path, (const uint8_t *)"15\n", 3);
}

/* Copy one relation fork's blocks (read as of the record's start, before any of
 * its own values) under the new database. */
static int copy_fork(struct walingest *wi, struct ar_rel from, struct ar_rel to, uint32_t n)
{
	uint8_t page[AR_PAGE_BYTES];
	for (uint32_t b = 0; b < n; b++) {
		struct ar_key src = ar_key_rel_block(from, b);
		struct ar_timeline *tl = wi->t.shards[ar_shard_of_key(&wi->t.map, &src)];
		if (!tl)
			continue;
		uint32_t len = 0;
		int rc = wi_read(wi, tl, &src, page, &len);
		if (rc == -AR_ENOKEY)
			continue; /* never written: zeros, implied by the size */
		if (rc < 0)
			return rc;
		struct ar_key dst = ar_key_rel_block(to, b);
		rc = wi_put_image(wi, &dst, page, len);
		if (rc < 0)
			return rc;
	}
	return wi_rel_extend(wi, to, n);
}

static int copy_database(struct walingest *wi, uint32_t src_spc, uint32_t src_db, uint32_t spc,
			 uint32_t db)
{
	for (uint32_t part = 0; part < AR_REL_DIR_PARTS; part++) {
		struct wi_set *s = wi_reldir(wi, src_spc, src_db, part);
		if (!s)
			return -ENOMEM;
		int rc = wi_set_load(wi, s);
		for (uint32_t off = 0; rc == 0 && off < s->len; off += AR_REL_DIR_ENTRY_BYTES) {
			struct ar_rel from = { src_spc, src_db, ar_get_be32(s->data + off),
					       s->data[off + 4] };
			struct ar_rel to = { spc, db, from.rel_number, from.fork };
			bool exists;
			uint32_t n;
			struct ar_key sk = ar_key_rel_size(from);
			rc = wi_size_get(wi, &sk, &exists, &n);
			if (rc == 0 && exists)
				rc = copy_fork(wi, from, to, n);
		}
		if (rc < 0)
			return rc;
	}
	uint8_t map[AR_PAGE_BYTES];
	uint32_t len = 0;
	struct ar_key src_map = ar_key_relmap(src_spc, src_db);
	int rc = wi->meta ? wi_read(wi, wi->meta, &src_map, map, &len) : -AR_ENOKEY;
	if (rc == 0) {
		struct ar_key dst_map = ar_key_relmap(spc, db);
		rc = wi_put_image(wi, &dst_map, map, len);
	}
	return rc == -AR_ENOKEY ? 0 : rc;
}

static int drop_database(struct walingest *wi, uint32_t spc, uint32_t db)
{
	for (uint32_t part = 0; part < AR_REL_DIR_PARTS; part++) {
		struct wi_set *s = wi_reldir(wi, spc, db, part);
		if (!s)
			return -ENOMEM;
		int rc = wi_set_load(wi, s);
		/* wi_rel_drop removes the entry: take them from the end. */
		while (rc == 0 && s->len > 0) {
			uint32_t off = s->len - AR_REL_DIR_ENTRY_BYTES;
			struct ar_rel rel = { spc, db, ar_get_be32(s->data + off),
					      s->data[off + 4] };
			rc = wi_rel_drop(wi, rel);
			if (rc == 0 && s->len == off + AR_REL_DIR_ENTRY_BYTES)
				rc = wi_set_remove(wi, s, s->data + off); /* size was gone */
		}
		if (rc < 0)
			return rc;
	}
	uint8_t e[8];
	ar_put_be32(e, spc);
	ar_put_be32(e + 4, db);
	wi->stats.dbs_dropped++;
	return wi_set_remove(wi, &wi->dbdir, e);
}

int wi_dbase(struct walingest *wi, const struct wal_record *rec)
{
	uint8_t info = rec->info & 0xF0;
	const uint8_t *d = rec->main_data;
	if (!wi->meta && info != DBASE_CREATE_FILE_COPY && info != DBASE_DROP)
		return 0;
	if (info == DBASE_CREATE_FILE_COPY || info == DBASE_CREATE_WAL_LOG) {
		uint32_t need = info == DBASE_CREATE_FILE_COPY ? 16 : 8;
		if (rec->main_data_len < need)
			return wi_fail(wi, -AR_ECORRUPT, "short database create record");
		uint32_t db = ar_get_le32(d), spc = ar_get_le32(d + 4);
		int rc = wi_rel_check_spc(wi, spc);
		if (rc == 0 && info == DBASE_CREATE_FILE_COPY)
			rc = copy_database(wi, ar_get_le32(d + 12), ar_get_le32(d + 8), spc, db);
		if (rc == 0)
			rc = wi_db_add(wi, spc, db);
		if (rc == 0 && wi->meta)
			rc = pg_version_file(wi, db);
		wi->stats.dbs_created++;
		return rc;
	}
	if (info == DBASE_DROP) {
		if (rec->main_data_len < 8)
			return wi_fail(wi, -AR_ECORRUPT, "short database drop record");
		uint32_t db = ar_get_le32(d), nspc = ar_get_le32(d + 4);
		if (rec->main_data_len < 8 + 4ull * nspc)
			return wi_fail(wi, -AR_ECORRUPT, "short database drop record");
		for (uint32_t i = 0; i < nspc; i++) {
			uint32_t spc = ar_get_le32(d + 8 + 4 * i);
			int rc = wi_rel_check_spc(wi, spc);
			if (rc == 0)
				rc = drop_database(wi, spc, db);
			if (rc < 0)
				return rc;
		}
		char path[64];
		snprintf(path, sizeof(path), "base/%u/PG_VERSION", db);
		return wi->meta ? wi_file_put(wi, path, NULL, UINT32_MAX) : 0;
	}
	return 0;
}

/* ---- relation map, checkpoints ---- */

int wi_relmap(struct walingest *wi, const struct wal_record *rec)
{
	const uint8_t *d = rec->main_data;
	if (rec->main_data_len < 12)
		return wi_fail(wi, -AR_ECORRUPT, "short relation map record");
	uint32_t db = ar_get_le32(d), spc = ar_get_le32(d + 4), n = ar_get_le32(d + 8);
	if (n > AR_PAGE_BYTES || 12 + n > rec->main_data_len)
		return wi_fail(wi, -AR_ECORRUPT, "relation map of %u bytes", n);
	int rc = wi_rel_check_spc(wi, spc);
	if (rc < 0 || !wi->meta)
		return rc;
	struct ar_key key = ar_key_relmap(spc, db);
	wi->stats.relmaps++;
	return wi_put_image(wi, &key, d + 12, n);
}

int wi_xlog(struct walingest *wi, const struct wal_record *rec)
{
	uint8_t info = rec->info & 0xF0;
	if (info == XLOG_CHECKPOINT_SHUTDOWN || info == XLOG_CHECKPOINT_ONLINE) {
		/* PostgreSQL's CheckPoint is 88 bytes; a value is read back into a page. */
		if (rec->main_data_len > AR_PAGE_BYTES)
			return wi_fail(wi, -AR_ECORRUPT, "checkpoint record of %u bytes",
				       rec->main_data_len);
		wi->stats.checkpoints++;
		wi->stats.last_checkpoint = wi->lsn;
		if (!wi->meta)
			return 0;
		struct ar_key key = ar_key_checkpoint();
		return wi_put_image(wi, &key, rec->main_data, rec->main_data_len);
	}
	if (info == XLOG_BACKUP_END && rec->main_data_len >= 8) {
		wi->stats.backup_end_start = ar_get_le64(rec->main_data);
		wi->stats.backup_end_lsn = wi->lsn;
	}
	return 0;
}

/* ---- visibility-map bits cleared by heap records ---- */

#define HEAP_INSERT 0x00
#define HEAP_DELETE 0x10
#define HEAP_UPDATE 0x20
#define HEAP_HOT_UPDATE 0x40
#define HEAP_LOCK 0x60
#define HEAP2_MULTI_INSERT 0x50
#define HEAP2_LOCK_UPDATED 0x60
#define VM_VALID_BITS 3
#define VM_ALL_FROZEN 2

static int vm_clear_block(struct walingest *wi, const struct wal_record *rec, int id, uint8_t bits)
{
	if (id > rec->max_block_id || !rec->blocks[id].in_use)
		return wi_fail(wi, -AR_ECORRUPT, "heap record without block %d", id);
	const struct wal_block *b = &rec->blocks[id];
	struct ar_rel heap = b->rel;
	heap.fork = AR_FORK_MAIN;
	return wi_vm_clear(wi, heap, b->blkno, bits);
}

static int heap_flags(struct walingest *wi, const struct wal_record *rec, uint32_t at,
		      uint8_t *flags)
{
	if (rec->main_data_len <= at)
		return wi_fail(wi, -AR_ECORRUPT, "short heap record");
	*flags = rec->main_data[at];
	return 0;
}

static int heap_update_vm(struct walingest *wi, const struct wal_record *rec, uint8_t flags)
{
	int rc = 0;
	int old_id = rec->max_block_id >= 1 && rec->blocks[1].in_use ? 1 : 0;
	if (flags & 0x01) /* XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED */
		rc = vm_clear_block(wi, rec, old_id, VM_VALID_BITS);
	if (rc == 0 && (flags & 0x02)) /* XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED */
		rc = vm_clear_block(wi, rec, 0, VM_VALID_BITS);
	return rc;
}

int wi_heap_vm(struct walingest *wi, const struct wal_record *rec)
{
	uint8_t op = rec->info & 0x70, flags = 0;
	int rc = 0;
	if (rec->rmid == WAL_RM_HEAP) {
		if (op == HEAP_INSERT)
			rc = heap_flags(wi, rec, 2, &flags);
		else if (op == HEAP_DELETE || op == HEAP_UPDATE || op == HEAP_HOT_UPDATE ||
			 op == HEAP_LOCK)
			rc = heap_flags(wi, rec, 7, &flags);
		else
			return 0;
		if (rc == 0 && (op == HEAP_UPDATE || op == HEAP_HOT_UPDATE))
			return heap_update_vm(wi, rec, flags);
		if (rc < 0 || !(flags & 0x01))
			return rc;
		return vm_clear_block(wi, rec, 0, op == HEAP_LOCK ? VM_ALL_FROZEN : VM_VALID_BITS);
	}
	if (op == HEAP2_MULTI_INSERT)
		rc = heap_flags(wi, rec, 0, &flags);
	else if (op == HEAP2_LOCK_UPDATED)
		rc = heap_flags(wi, rec, 7, &flags);
	else
		return 0;
	if (rc < 0 || !(flags & 0x01))
		return rc;
	return vm_clear_block(wi, rec, 0, op == HEAP2_LOCK_UPDATED ? VM_ALL_FROZEN : VM_VALID_BITS);
}
