/*
 * oracle.c - argon-oracle: compares PostgreSQL 15 data directories page by page,
 * each page masked with PostgreSQL's own rm_mask function for its relation's
 * access method, the way wal_consistency_checking compares a replayed page with
 * its full-page image.  Linked from PostgreSQL 15's backend objects like
 * argon-pgprobe (tools/pgprobe.c): the masks are PostgreSQL's, not copies.
 *
 *   argon-oracle compare [--map FILE] [--checksums] REF_DIR TEST_DIR
 *   argon-oracle primary-sanity [--map FILE] PRIMARY_DIR TEST_DIR
 *   argon-oracle page KIND FILE_A FILE_B
 *
 * compare: REF_DIR is a stopped stock standby (the reference), TEST_DIR a
 * directory Argon exported.  A standby writes its buffers out only at a
 * restartpoint, which needs a replayed checkpoint record: stop it after it has
 * replayed the primary's shutdown checkpoint, or its files lag its WAL.
 *   1. Relations under global/ and base/<dboid>/: the main and VM forks
 *      (segments N, N.1, ... read as one fork) have the same number of blocks,
 *      and each block is equal after masking.  The main fork is masked with its
 *      access method's mask (heap_mask, btree_mask, hash_mask, gin_mask,
 *      gist_mask, spg_mask, brin_mask, seq_mask, generic_mask); the VM fork
 *      with only pd_lsn and pd_checksum masked (heap_mask's mask_unused_space
 *      would hide the whole bitmap).  Two all-zero pages are equal.
 *   2. pg_filenode.map (global/ and each database), pg_xact/,
 *      pg_multixact/offsets/ and pg_multixact/members/: byte for byte, and the
 *      same set of files.
 *   3. A relation fork, byte-compared file or database on one side only is a
 *      mismatch.
 *   4. Excluded, one line each: FSM forks (not WAL-logged), every fork of a
 *      relation with an init fork (unlogged), temporary relations (tB_N...),
 *      files that are not relation files (PG_VERSION, pg_internal.init,
 *      pg_control, ...), directories in base/ that are not databases, and
 *      every top-level entry other than global/, base/, pg_xact/, pg_multixact/.
 *
 * The access method: from --map, else detected from the first page that is not
 * all zeros (REF's, then TEST's), by its special space: 0 bytes heap; 16 bytes
 * hash (page id 0xFF80), gist (0xFF81) or btree (btpo_cycleid <= 0xFF7F);
 * 8 bytes spgist (0xFF82), brin (page types 0xF091-0xF093), sequence (magic
 * 0x1717), generic (bloom's 0xFF83) or gin (flags within 0xFF).  Detection
 * prints a "detected:" line.  A relation detected as "unknown", and a page
 * whose header is invalid (or whose special space has the wrong size for the
 * kind, or, on a heap page, whose line pointers leave the page), is compared
 * with only pd_lsn and pd_checksum masked: the masks trust the header.
 *
 * --checksums (compare): also verify, with PostgreSQL's pg_checksum_page, the
 * pd_checksum of every TEST page compared that is not new (PageIsNew); a wrong
 * one is a mismatch.  A "checksums:" line gives the counts.
 *
 * primary-sanity: PRIMARY_DIR is the stopped primary, TEST_DIR Argon's export
 * at the primary's final LSN.  For each relation TEST has in global/ and base/:
 *   1. main fork: the blocks PRIMARY has past TEST's block count are all zeros
 *      or empty pages (no line pointers) with pd_lsn 0, i.e. relation
 *      extension that was never WAL-logged; PRIMARY having fewer blocks than
 *      TEST is a mismatch;
 *   2. VM fork: every bit set in TEST's VM is set in PRIMARY's (a subset), and
 *      PRIMARY's VM pages past TEST's VM size have no bit set.
 * Relations and databases PRIMARY alone has are not checked.  --map only names
 * the access method in mismatch lines.
 *
 * page: FILE_A and FILE_B are single 8192-byte pages, masked with KIND (a map
 * kind, or vm) as block 0; exit 0 if equal, 1 (with the first differing
 * offset) if not.
 *
 * Map file (--map): one relation per line, "dboid relfilenode kind", kind one
 * of heap, btree, hash, gin, gist, spgist, brin, sequence, generic; dboid 0 for
 * global/.  Blank lines and lines starting with '#' are ignored.
 * tests/integration/harness/oracle.py's write_am_map() writes one.
 *
 * Output (stdout), in directory order:
 *   mismatch: PATH[ block N]: WHAT      one per mismatch, at most 10 per fork
 *   omitted: PATH: N more differing blocks not listed
 *   excluded: PATH (WHY)
 *   detected: PATH KIND (HOW)
 *   oracle: F files, B blocks compared, M mismatches, E exclusions
 * (primary-sanity ends with "sanity: ..." instead).  F counts the files
 * examined (relation segments and byte-compared files), B the relation blocks
 * compared, M every mismatch including those not listed.  Exit 0 if M is 0, 1
 * if not, 2 on a usage or I/O error (the message on stderr).
 *
 * Written in PostgreSQL's dialect (its headers and CFLAGS): ereport(ERROR) for
 * I/O errors, caught in main(); palloc in a memory context per directory.  The
 * masks are pure functions of the page and need nothing but MemoryContextInit()
 * (for ereport); their one elog(ERROR), mask_unused_space()'s on a bad header,
 * cannot fire because such pages never reach them.
 */
#include "postgres.h"

#include "access/brin_page.h"
#include "access/brin_xlog.h"
#include "access/bufmask.h"
#include "access/generic_xlog.h"
#include "access/ginblock.h"
#include "access/ginxlog.h"
#include "access/gist.h"
#include "access/gistxlog.h"
#include "access/hash.h"
#include "access/hash_xlog.h"
#include "access/heapam_xlog.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/nbtxlog.h"
#include "access/spgist_private.h"
#include "access/spgxlog.h"
#include "access/visibilitymapdefs.h"
#include "commands/sequence.h"
#include "common/file_utils.h"
#include "common/relpath.h"
#include "port/pg_bitutils.h"
#include "storage/bufpage.h"
#include "storage/checksum.h"
#include "storage/fd.h"
#include "storage/reinit.h"
#include "utils/memutils.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The backend expects these from main.c, which is not linked. */
const char *progname = "argon-oracle";

/* Mismatch lines printed per fork before the rest are only counted. */
#define ORACLE_SHOWN_PER_FORK_MAX	10
/* SEQ_MAGIC, private to commands/sequence.c: the first word of a sequence's special space. */
#define ORACLE_SEQ_MAGIC			0x1717
/* contrib/bloom's page id, the last half-word of its 8-byte special space. */
#define ORACLE_BLOOM_PAGE_ID		0xFF83
/* Every GinPageOpaqueData flag (GIN_DATA ... GIN_COMPRESSED) is within this. */
#define ORACLE_GIN_FLAGS			0x00FF
/* A VM page's bitmap follows its header (visibilitymap.c: PageGetContents(), MAPSIZE). */
#define ORACLE_VM_MAP_OFFSET		MAXALIGN(SizeOfPageHeaderData)
#define ORACLE_VM_HEAPBLOCKS_PER_BYTE	(BITS_PER_BYTE / BITS_PER_HEAPBLOCK)
#define ORACLE_VM_HEAPBLOCKS_PER_PAGE \
	((BLCKSZ - ORACLE_VM_MAP_OFFSET) * ORACLE_VM_HEAPBLOCKS_PER_BYTE)
/* The kinds a map line may name (page mode also takes vm). */
#define ORACLE_MAP_KINDS \
	"heap, btree, hash, gin, gist, spgist, brin, sequence, generic"
/* Byte-compared files (pg_filenode.map, SLRU segments) are far smaller. */
#define ORACLE_BYTES_FILE_MAX		(64 * 1024 * 1024)

#define ORACLE_SIDE_A		0x01	/* REF or PRIMARY */
#define ORACLE_SIDE_B		0x02	/* TEST */
#define ORACLE_SIDES_BOTH	(ORACLE_SIDE_A | ORACLE_SIDE_B)

typedef enum OracleKind
{
	KIND_UNKNOWN = 0,			/* only pd_lsn and pd_checksum masked */
	KIND_HEAP,
	KIND_BTREE,
	KIND_HASH,
	KIND_GIN,
	KIND_GIST,
	KIND_SPGIST,
	KIND_BRIN,
	KIND_SEQUENCE,
	KIND_GENERIC,
	KIND_VM,					/* a VM page: pd_lsn, pd_checksum masked */
	KIND_COUNT
} OracleKind;

typedef struct OracleKindInfo
{
	const char *name;
	void		(*mask) (char *pagedata, BlockNumber blkno);
	bool		checks_header;	/* the mask trusts pd_lower, pd_upper, pd_special */
	int			special_size;	/* the kind's special space in bytes; -1: any */
} OracleKindInfo;

typedef enum OracleMode
{
	MODE_COMPARE,
	MODE_SANITY
} OracleMode;

/* One line of the map file. */
typedef struct OracleMapEntry
{
	Oid			dboid;
	Oid			relnode;
	OracleKind	kind;
} OracleMapEntry;

/* One run of compare or primary-sanity: the two directories and the counters. */
typedef struct OracleRun
{
	OracleMode	mode;
	const char *dir[2];			/* side A (REF or PRIMARY), side B (TEST) */
	const char *side_name[2];
	OracleMapEntry *map;
	int			map_count;
	uint64		files;
	uint64		blocks;
	uint64		mismatches;
	uint64		exclusions;
	bool		checksums;		/* verify TEST's pd_checksum */
	uint64		checksums_verified;
	uint64		checksums_wrong;
} OracleRun;

/* A directory entry of either side, or of both. */
typedef struct OracleEntry
{
	char	   *name;
	uint8		sides;			/* ORACLE_SIDE_A | ORACLE_SIDE_B */
	bool		is_dir;
	bool		is_rel;			/* a relation segment: the fields below are set */
	Oid			relnode;
	ForkNumber	fork;
	uint32		segno;
} OracleEntry;

/* A growing array of entries. */
typedef struct OracleList
{
	OracleEntry *entries;
	int			count;
	int			capacity;
} OracleList;

/* One side's fork: segments read as one run of blocks. */
typedef struct OracleFork
{
	const char *root;			/* the data directory */
	const char *path;			/* segment 0, relative to root: "base/5/16384_vm" */
	BlockNumber nblocks;
	int			fd;				/* the open segment, or -1 */
	uint32		fd_segno;
} OracleFork;

/* What comparing two pages found. */
typedef struct OracleVerdict
{
	int			offset;			/* first differing byte, masked; or -1 */
	const char *mask_name;		/* "heap", "LSN/checksum", ...; NULL: unmasked */
	char		why[160];		/* why the kind's mask was not used; "" if it was */
} OracleVerdict;

static void oracle_lsn_checksum_mask(char *pagedata, BlockNumber blkno);

static const OracleKindInfo oracle_kinds[KIND_COUNT] = {
	[KIND_UNKNOWN] = {"unknown", oracle_lsn_checksum_mask, false, -1},
	[KIND_HEAP] = {"heap", heap_mask, true, 0},
	[KIND_BTREE] = {"btree", btree_mask, true, MAXALIGN(sizeof(BTPageOpaqueData))},
	[KIND_HASH] = {"hash", hash_mask, true, MAXALIGN(sizeof(HashPageOpaqueData))},
	[KIND_GIN] = {"gin", gin_mask, true, MAXALIGN(sizeof(GinPageOpaqueData))},
	[KIND_GIST] = {"gist", gist_mask, true, MAXALIGN(sizeof(GISTPageOpaqueData))},
	[KIND_SPGIST] = {"spgist", spg_mask, true, MAXALIGN(sizeof(SpGistPageOpaqueData))},
	[KIND_BRIN] = {"brin", brin_mask, true, MAXALIGN(sizeof(BrinSpecialSpace))},
	[KIND_SEQUENCE] = {"sequence", seq_mask, true, MAXALIGN(sizeof(uint32))},
	[KIND_GENERIC] = {"generic", generic_mask, true, -1},
	[KIND_VM] = {"vm", oracle_lsn_checksum_mask, false, -1},
};

/* ---------------------------------------------------------------- output */

static void oracle_mismatch(OracleRun *run, const char *fmt,...) pg_attribute_printf(2, 3);

/* One mismatch line; every mismatch is counted. */
static void
oracle_mismatch(OracleRun *run, const char *fmt,...)
{
	va_list		args;

	fputs("mismatch: ", stdout);
	va_start(args, fmt);
	vprintf(fmt, args);
	va_end(args);
	fputc('\n', stdout);
	run->mismatches++;
}

/* One exclusion line: path was not compared, for the reason why. */
static void
oracle_exclude(OracleRun *run, const char *path, const char *why)
{
	printf("excluded: %s (%s)\n", path, why);
	run->exclusions++;
}

/* "rel/name", or name alone at the top of the data directory. */
static char *
oracle_join(const char *rel, const char *name)
{
	return rel[0] == '\0' ? pstrdup(name) : psprintf("%s/%s", rel, name);
}

/* ----------------------------------------------------------------- kinds */

/* The VM mask, and the fallback: pd_lsn and pd_checksum only. */
static void
oracle_lsn_checksum_mask(char *pagedata, BlockNumber blkno)
{
	mask_page_lsn_and_checksum((Page) pagedata);
}

/* The kind named name (a map kind, or "vm" when allow_vm); KIND_COUNT if none. */
static OracleKind
oracle_kind_from_name(const char *name, bool allow_vm)
{
	for (int kind = KIND_HEAP; kind < KIND_COUNT; kind++)
	{
		if (kind == KIND_VM && !allow_vm)
			continue;
		if (strcmp(oracle_kinds[kind].name, name) == 0)
			return (OracleKind) kind;
	}
	return KIND_COUNT;
}

static bool
oracle_page_is_zero(const char *page)
{
	static const PGAlignedBlock zero = {0};

	return memcmp(page, zero.data, BLCKSZ) == 0;
}

/* Do pd_lower, pd_upper and pd_special describe a page PostgreSQL could have written? */
static bool
oracle_header_is_sane(const char *page)
{
	PageHeader	header = (PageHeader) page;

	if (PageGetPageSize(page) != BLCKSZ ||
		PageGetPageLayoutVersion(page) != PG_PAGE_LAYOUT_VERSION)
		return false;
	return header->pd_lower >= SizeOfPageHeaderData &&
		header->pd_lower <= header->pd_upper &&
		header->pd_upper <= header->pd_special &&
		header->pd_special <= BLCKSZ &&
		header->pd_special == MAXALIGN(header->pd_special);
}

/* Do a heap page's items lie inside the page?  heap_mask writes into each one. */
static bool
oracle_heap_items_fit(const char *page)
{
	OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
	{
		ItemId		iid = PageGetItemId(page, off);

		if (!ItemIdHasStorage(iid))
			continue;
		if (ItemIdGetOffset(iid) + MAXALIGN(ItemIdGetLength(iid)) > BLCKSZ)
			return false;
		if (ItemIdIsNormal(iid) && ItemIdGetLength(iid) < SizeofHeapTupleHeader)
			return false;
	}
	return true;
}

/* Why kind's mask cannot be trusted with page, or NULL if it can. */
static const char *
oracle_page_problem(const char *page, OracleKind kind)
{
	const OracleKindInfo *info = &oracle_kinds[kind];
	int			special_size = BLCKSZ - ((PageHeader) page)->pd_special;

	if (!info->checks_header)
		return NULL;
	if (!oracle_header_is_sane(page))
		return "invalid page header";
	if (info->special_size >= 0 && special_size != info->special_size)
		return "special space of the wrong size for the kind";
	if (kind == KIND_HEAP && !oracle_heap_items_fit(page))
		return "a line pointer points outside the page";
	return NULL;
}

/* The access method whose pages look like page, from its special space. */
static OracleKind
oracle_kind_detect(const char *page)
{
	PageHeader	header = (PageHeader) page;
	int			special_size;
	uint16		last;
	uint32		first;

	/* hash, gist and btree special spaces are told apart by their page id */
	StaticAssertStmt(sizeof(HashPageOpaqueData) == sizeof(BTPageOpaqueData), "hash");
	StaticAssertStmt(sizeof(GISTPageOpaqueData) == sizeof(BTPageOpaqueData), "gist");
	if (!oracle_header_is_sane(page))
		return KIND_UNKNOWN;
	special_size = BLCKSZ - header->pd_special;
	if (special_size == 0)
		return KIND_HEAP;
	memcpy(&last, page + BLCKSZ - sizeof(last), sizeof(last));
	memcpy(&first, page + header->pd_special, sizeof(first));
	if (special_size == MAXALIGN(sizeof(BTPageOpaqueData)))
	{
		if (last == HASHO_PAGE_ID)
			return KIND_HASH;
		if (last == GIST_PAGE_ID)
			return KIND_GIST;
		return last <= MAX_BT_CYCLE_ID ? KIND_BTREE : KIND_UNKNOWN;
	}
	if (special_size != MAXALIGN(sizeof(GinPageOpaqueData)))
		return KIND_UNKNOWN;
	if (last == SPGIST_PAGE_ID)
		return KIND_SPGIST;
	if (last >= BRIN_PAGETYPE_META && last <= BRIN_PAGETYPE_REGULAR)
		return KIND_BRIN;
	if (last == ORACLE_BLOOM_PAGE_ID)
		return KIND_GENERIC;
	if (first == ORACLE_SEQ_MAGIC)
		return KIND_SEQUENCE;
	return (last & ~ORACLE_GIN_FLAGS) == 0 ? KIND_GIN : KIND_UNKNOWN;
}

/* --------------------------------------------------------------- pages */

static int
oracle_first_difference(const char *a, const char *b)
{
	if (memcmp(a, b, BLCKSZ) == 0)
		return -1;
	for (int i = 0; i < BLCKSZ; i++)
	{
		if (a[i] != b[i])
			return i;
	}
	return -1;
}

/*
 * Compare pages a and b (block blkno) after masking copies of them with kind's
 * mask; names name the two sides in verdict->why.
 */
static void
oracle_page_compare(const char *a, const char *b, OracleKind kind, BlockNumber blkno,
					const char *const names[2], OracleVerdict *verdict)
{
	PGAlignedBlock masked[2];
	bool		zero_a = oracle_page_is_zero(a);
	bool		zero_b = oracle_page_is_zero(b);
	const char *problem_a;
	const char *problem_b;

	verdict->offset = -1;
	verdict->mask_name = kind == KIND_UNKNOWN ? "LSN/checksum" : oracle_kinds[kind].name;
	verdict->why[0] = '\0';
	if (zero_a && zero_b)
		return;
	if (zero_a || zero_b)
	{
		verdict->offset = oracle_first_difference(a, b);
		verdict->mask_name = NULL;
		snprintf(verdict->why, sizeof(verdict->why), "the %s page is all zeros",
				 names[zero_a ? 0 : 1]);
		return;
	}
	memcpy(masked[0].data, a, BLCKSZ);
	memcpy(masked[1].data, b, BLCKSZ);
	problem_a = oracle_page_problem(a, kind);
	problem_b = oracle_page_problem(b, kind);
	if (problem_a != NULL || problem_b != NULL)
	{
		verdict->mask_name = "LSN/checksum";
		snprintf(verdict->why, sizeof(verdict->why), "%s page: %s",
				 names[problem_a != NULL ? 0 : 1],
				 problem_a != NULL ? problem_a : problem_b);
		kind = KIND_UNKNOWN;
	}
	oracle_kinds[kind].mask(masked[0].data, blkno);
	oracle_kinds[kind].mask(masked[1].data, blkno);
	verdict->offset = oracle_first_difference(masked[0].data, masked[1].data);
}

/* Where offset lies in the (unmasked) page: a few words for a mismatch line. */
static const char *
oracle_region(const char *page, OracleKind kind, BlockNumber blkno, int offset)
{
	PageHeader	header = (PageHeader) page;
	uint64		heapblk;

	if (offset < (int) SizeOfPageHeaderData)
		return "page header";
	if (kind == KIND_VM)
	{
		if (offset < (int) ORACLE_VM_MAP_OFFSET)
			return "page header padding";
		heapblk = (uint64) blkno * ORACLE_VM_HEAPBLOCKS_PER_PAGE +
			(uint64) (offset - ORACLE_VM_MAP_OFFSET) * ORACLE_VM_HEAPBLOCKS_PER_BYTE;
		return psprintf("bitmap, heap blocks %llu-%llu", (unsigned long long) heapblk,
			(unsigned long long) heapblk + ORACLE_VM_HEAPBLOCKS_PER_BYTE - 1);
	}
	if (!oracle_header_is_sane(page))
		return "page body";
	if (offset < header->pd_lower)
		return "line pointers";
	if (offset < header->pd_upper)
		return "free space";
	if (offset < header->pd_special)
		return "items";
	return "special space";
}

/* "after heap masking", or "unmasked" */
static char *
oracle_masking_text(const OracleVerdict *verdict)
{
	if (verdict->mask_name == NULL)
		return pstrdup("unmasked");
	return psprintf("after %s masking", verdict->mask_name);
}

/* "differs at offset N (region) after heap masking[ (why)]" */
static char *
oracle_verdict_text(const OracleVerdict *verdict, const char *page_a, const char *page_b,
					OracleKind kind, BlockNumber blkno)
{
	const char *page = oracle_page_is_zero(page_a) ? page_b : page_a;
	bool		has_why = verdict->why[0] != '\0';

	return psprintf("differs at offset %d (%s) %s%s%s%s", verdict->offset,
					oracle_region(page, kind, blkno, verdict->offset),
					oracle_masking_text(verdict), has_why ? " (" : "",
					verdict->why, has_why ? ")" : "");
}

/* ----------------------------------------------------------------- files */

/* The whole file at path, which must be at most ORACLE_BYTES_FILE_MAX bytes. */
static char *
oracle_read_file(const char *path, size_t *size)
{
	struct stat st;
	char	   *data;
	size_t		done = 0;
	int			fd;

	fd = open(path, O_RDONLY | PG_BINARY, 0);
	if (fd < 0 || fstat(fd, &st) != 0)
		ereport(ERROR, errcode_for_file_access(),
				errmsg("could not open file \"%s\": %m", path));
	if (st.st_size > ORACLE_BYTES_FILE_MAX)
		ereport(ERROR, errmsg("file \"%s\" is too large to compare: %lld bytes",
							  path, (long long) st.st_size));
	data = palloc(st.st_size + 1);
	while (done < (size_t) st.st_size)
	{
		ssize_t		n = read(fd, data + done, st.st_size - done);

		if (n < 0)
			ereport(ERROR, errcode_for_file_access(),
					errmsg("could not read file \"%s\": %m", path));
		if (n == 0)
			ereport(ERROR, errmsg("file \"%s\" shrank while being read", path));
		done += n;
	}
	close(fd);
	*size = done;
	return data;
}

/* Byte for byte: path (relative) in both directories. */
static void
oracle_compare_bytes(OracleRun *run, const char *path)
{
	size_t		size[2];
	char	   *data[2];
	size_t		common;
	size_t		offset;

	for (int side = 0; side < 2; side++)
		data[side] = oracle_read_file(psprintf("%s/%s", run->dir[side], path), &size[side]);
	run->files++;
	common = Min(size[0], size[1]);
	for (offset = 0; offset < common; offset++)
	{
		if (data[0][offset] != data[1][offset])
			break;
	}
	if (offset < common)
		oracle_mismatch(run, "%s: differs at offset %zu (byte for byte)", path, offset);
	else if (size[0] != size[1])
		oracle_mismatch(run, "%s: %zu bytes in %s, %zu in %s", path, size[0],
						run->side_name[0], size[1], run->side_name[1]);
	pfree(data[0]);
	pfree(data[1]);
}

/* --------------------------------------------------------------- listing */

static void
oracle_list_add(OracleList *list, const OracleEntry *entry)
{
	if (list->count == list->capacity)
	{
		Size		bytes;

		list->capacity = Max(64, list->capacity * 2);
		bytes = list->capacity * sizeof(OracleEntry);
		if (list->entries == NULL)
			list->entries = palloc(bytes);
		else
			list->entries = repalloc(list->entries, bytes);
	}
	list->entries[list->count++] = *entry;
}

/* Fill in the relation fields when name is a relation segment (not a temporary one). */
static void
oracle_entry_parse(OracleEntry *entry)
{
	int			oidchars;
	unsigned long relnode;
	const char *dot;

	entry->is_rel = false;
	if (!parse_filename_for_nontemp_relation(entry->name, &oidchars, &entry->fork))
		return;
	errno = 0;
	relnode = strtoul(entry->name, NULL, 10);
	if (errno != 0 || relnode == InvalidOid || relnode > PG_UINT32_MAX)
		return;
	entry->relnode = (Oid) relnode;
	entry->segno = 0;
	dot = strchr(entry->name, '.');
	if (dot != NULL)
	{
		unsigned long segno = strtoul(dot + 1, NULL, 10);

		if (errno != 0 || segno > PG_UINT32_MAX / RELSEG_SIZE)
			return;
		entry->segno = (uint32) segno;
	}
	entry->is_rel = true;
}

/* Append the entries of root/rel to list, marked side; nothing if it does not exist. */
static void
oracle_list_read(const char *root, const char *rel, uint8 side, OracleList *list)
{
	char	   *path = rel[0] == '\0' ? pstrdup(root) : psprintf("%s/%s", root, rel);
	DIR		   *dir = opendir(path);
	struct dirent *de;

	if (dir == NULL)
	{
		if (errno == ENOENT)
			return;
		ereport(ERROR, errcode_for_file_access(),
				errmsg("could not open directory \"%s\": %m", path));
	}
	while (errno = 0, (de = readdir(dir)) != NULL)
	{
		OracleEntry entry = {0};
		char	   *full;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		full = psprintf("%s/%s", path, de->d_name);
		entry.name = pstrdup(de->d_name);
		entry.sides = side;
		/* Not through symlinks: pg_wal/ and pg_tblspc/'s links are never walked. */
		entry.is_dir = get_dirent_type(full, de, false, ERROR) == PGFILETYPE_DIR;
		if (!entry.is_dir)
			oracle_entry_parse(&entry);
		oracle_list_add(list, &entry);
		pfree(full);
	}
	if (errno != 0)
		ereport(ERROR, errcode_for_file_access(),
				errmsg("could not read directory \"%s\": %m", path));
	closedir(dir);
}

static int
oracle_entry_cmp_name(const void *a, const void *b)
{
	return strcmp(((const OracleEntry *) a)->name, ((const OracleEntry *) b)->name);
}

/* Other files first, by name; then relation segments by relfilenode, fork, segment. */
static int
oracle_entry_cmp_rel(const void *pa, const void *pb)
{
	const OracleEntry *a = pa;
	const OracleEntry *b = pb;

	if (a->is_rel != b->is_rel)
		return a->is_rel ? 1 : -1;
	if (!a->is_rel)
		return strcmp(a->name, b->name);
	if (a->relnode != b->relnode)
		return a->relnode < b->relnode ? -1 : 1;
	if (a->fork != b->fork)
		return a->fork < b->fork ? -1 : 1;
	if (a->segno != b->segno)
		return a->segno < b->segno ? -1 : 1;
	return 0;
}

/*
 * The entries of rel in both directories, each name once with the sides that
 * have it, sorted by name.
 */
static OracleList
oracle_list(OracleRun *run, const char *rel)
{
	OracleList	list = {0};
	int			kept = 0;

	oracle_list_read(run->dir[0], rel, ORACLE_SIDE_A, &list);
	oracle_list_read(run->dir[1], rel, ORACLE_SIDE_B, &list);
	if (list.count == 0)
		return list;
	qsort(list.entries, list.count, sizeof(OracleEntry), oracle_entry_cmp_name);
	for (int i = 0; i < list.count; i++)
	{
		if (kept > 0 && strcmp(list.entries[kept - 1].name, list.entries[i].name) == 0)
		{
			list.entries[kept - 1].sides |= list.entries[i].sides;
			list.entries[kept - 1].is_dir |= list.entries[i].is_dir;
			continue;
		}
		list.entries[kept++] = list.entries[i];
	}
	list.count = kept;
	return list;
}

/* Does this run look at an entry with these sides?  primary-sanity looks at TEST's. */
static bool
oracle_relevant(const OracleRun *run, uint8 sides)
{
	return run->mode == MODE_COMPARE || (sides & ORACLE_SIDE_B) != 0;
}

/* Is path on both sides?  If not, that is a mismatch. */
static bool
oracle_both(OracleRun *run, const char *path, uint8 sides)
{
	if (sides == ORACLE_SIDES_BOTH)
		return true;
	oracle_mismatch(run, "%s: only in %s", path,
					run->side_name[(sides & ORACLE_SIDE_A) != 0 ? 0 : 1]);
	return false;
}

/* ----------------------------------------------------------------- forks */

static char *
oracle_segment_path(const OracleFork *fork, uint32 segno)
{
	if (segno == 0)
		return psprintf("%s/%s", fork->root, fork->path);
	return psprintf("%s/%s.%u", fork->root, fork->path, segno);
}

/*
 * Open side's copy of the fork at path (its segments among segs): count its
 * blocks the way mdnblocks() does, segment by segment until one is not full.
 * A partial block or a segment past the end is a mismatch.
 */
static void
oracle_fork_open(OracleRun *run, int side, const char *path, const OracleEntry *segs,
				 int nsegs, OracleFork *fork)
{
	uint32		segno;

	fork->root = run->dir[side];
	fork->path = path;
	fork->nblocks = 0;
	fork->fd = -1;
	for (segno = 0;; segno++)
	{
		char	   *seg = oracle_segment_path(fork, segno);
		struct stat st;

		if (stat(seg, &st) != 0)
		{
			if (errno != ENOENT)
				ereport(ERROR, errcode_for_file_access(),
						errmsg("could not stat file \"%s\": %m", seg));
			break;
		}
		if (st.st_size % BLCKSZ != 0)
			oracle_mismatch(run, "%s segment %u: %lld bytes in %s, not whole blocks",
							path, segno, (long long) st.st_size,
							run->side_name[side]);
		fork->nblocks += st.st_size / BLCKSZ;
		if (st.st_size / BLCKSZ < RELSEG_SIZE)
			break;
	}
	for (int i = 0; i < nsegs; i++)
	{
		uint8		side_bit = side == 0 ? ORACLE_SIDE_A : ORACLE_SIDE_B;

		if ((segs[i].sides & side_bit) == 0 || segs[i].segno <= segno)
			continue;
		oracle_mismatch(run, "%s.%u: in %s past the end (segment %u is short)",
						path, segs[i].segno, run->side_name[side], segno);
	}
}

static void
oracle_fork_close(OracleFork *fork)
{
	if (fork->fd >= 0)
		close(fork->fd);
	fork->fd = -1;
}

/* Read block blkno of fork into page; blocks past the end read as zeros. */
static void
oracle_fork_read(OracleFork *fork, BlockNumber blkno, char *page)
{
	uint32		segno = blkno / RELSEG_SIZE;
	off_t		offset = (off_t) (blkno % RELSEG_SIZE) * BLCKSZ;
	ssize_t		n;

	if (blkno >= fork->nblocks)
	{
		memset(page, 0, BLCKSZ);
		return;
	}
	if (fork->fd < 0 || fork->fd_segno != segno)
	{
		char	   *path = oracle_segment_path(fork, segno);

		oracle_fork_close(fork);
		fork->fd = open(path, O_RDONLY | PG_BINARY, 0);
		if (fork->fd < 0)
			ereport(ERROR, errcode_for_file_access(),
					errmsg("could not open file \"%s\": %m", path));
		fork->fd_segno = segno;
		pfree(path);
	}
	n = pread(fork->fd, page, BLCKSZ, offset);
	if (n < 0)
		ereport(ERROR, errcode_for_file_access(),
				errmsg("could not read block %u of \"%s/%s\": %m",
					   blkno, fork->root, fork->path));
	if (n != BLCKSZ)
		ereport(ERROR, errmsg("could not read block %u of \"%s/%s\": read %zd bytes",
							  blkno, fork->root, fork->path, n));
}

/* The map's kind for the relation, or KIND_COUNT if the map does not have it. */
static OracleKind
oracle_map_lookup(const OracleRun *run, Oid dboid, Oid relnode)
{
	int			low = 0;
	int			high = run->map_count - 1;

	while (low <= high)
	{
		int			mid = low + (high - low) / 2;
		const OracleMapEntry *entry = &run->map[mid];

		if (entry->dboid == dboid && entry->relnode == relnode)
			return entry->kind;
		if (entry->dboid < dboid || (entry->dboid == dboid && entry->relnode < relnode))
			low = mid + 1;
		else
			high = mid - 1;
	}
	return KIND_COUNT;
}

/*
 * The main fork's kind: the map's, or detected from the first page that is not
 * all zeros (side A's first), with a "detected:" line.
 */
static OracleKind
oracle_fork_kind(OracleRun *run, const char *path, Oid dboid, Oid relnode,
				 OracleFork fork[2])
{
	OracleKind	kind = oracle_map_lookup(run, dboid, relnode);
	PGAlignedBlock page;

	if (kind != KIND_COUNT)
		return kind;
	for (int side = 0; side < 2; side++)
	{
		for (BlockNumber blkno = 0; blkno < fork[side].nblocks; blkno++)
		{
			oracle_fork_read(&fork[side], blkno, page.data);
			if (oracle_page_is_zero(page.data))
				continue;
			kind = oracle_kind_detect(page.data);
			printf("detected: %s %s (special space of %s block %u%s)\n", path,
				   oracle_kinds[kind].name, run->side_name[side], blkno,
				   kind == KIND_UNKNOWN ?
				   ": no access method's; only pd_lsn and pd_checksum are masked" :
				   "");
			return kind;
		}
	}
	return KIND_UNKNOWN;		/* every page is all zeros: nothing to mask */
}

/* compare: one main or VM fork (its segments in segs), block by block. */
/* --checksums: TEST's pd_checksum against pg_checksum_page. */
static void
oracle_verify_checksum(OracleRun *run, const char *path, char *page, BlockNumber blkno)
{
	uint16		stored = ((PageHeader) page)->pd_checksum;
	uint16		computed;

	if (PageIsNew(page))
		return;
	computed = pg_checksum_page(page, blkno);
	run->checksums_verified++;
	if (stored == computed)
		return;
	run->checksums_wrong++;
	if (run->checksums_wrong <= ORACLE_SHOWN_PER_FORK_MAX)
		oracle_mismatch(run, "%s block %u: pd_checksum %u in TEST, PostgreSQL computes %u",
						path, blkno, stored, computed);
	else
		run->mismatches++;
}

static void
oracle_compare_fork(OracleRun *run, const char *path, Oid dboid, const OracleEntry *segs,
					int nsegs)
{
	OracleFork	fork[2];
	PGAlignedBlock page[2];
	OracleKind	kind;
	BlockNumber nblocks;
	uint64		shown = 0;
	char	   *text;

	for (int side = 0; side < 2; side++)
		oracle_fork_open(run, side, path, segs, nsegs, &fork[side]);
	if (fork[0].nblocks != fork[1].nblocks)
		oracle_mismatch(run, "%s: %u blocks in %s, %u in %s", path,
						fork[0].nblocks, run->side_name[0],
						fork[1].nblocks, run->side_name[1]);
	kind = segs[0].fork == VISIBILITYMAP_FORKNUM ? KIND_VM :
		oracle_fork_kind(run, path, dboid, segs[0].relnode, fork);
	nblocks = Min(fork[0].nblocks, fork[1].nblocks);
	for (BlockNumber blkno = 0; blkno < nblocks; blkno++)
	{
		OracleVerdict verdict;

		oracle_fork_read(&fork[0], blkno, page[0].data);
		oracle_fork_read(&fork[1], blkno, page[1].data);
		if (run->checksums)
			oracle_verify_checksum(run, path, page[1].data, blkno);
		oracle_page_compare(page[0].data, page[1].data, kind, blkno,
							run->side_name, &verdict);
		run->blocks++;
		if (verdict.offset < 0)
			continue;
		text = oracle_verdict_text(&verdict, page[0].data, page[1].data, kind, blkno);
		if (shown++ < ORACLE_SHOWN_PER_FORK_MAX)
			oracle_mismatch(run, "%s block %u: %s", path, blkno, text);
		else
			run->mismatches++;
	}
	if (shown > ORACLE_SHOWN_PER_FORK_MAX)
		printf("omitted: %s: %llu more differing blocks not listed\n", path,
			   (unsigned long long) (shown - ORACLE_SHOWN_PER_FORK_MAX));
	oracle_fork_close(&fork[0]);
	oracle_fork_close(&fork[1]);
}

/* A page primary-sanity accepts past TEST's end: zeros, or empty with pd_lsn 0. */
static bool
oracle_page_is_unlogged_extension(const char *page)
{
	if (oracle_page_is_zero(page))
		return true;
	return oracle_header_is_sane(page) &&
		((PageHeader) page)->pd_lower == SizeOfPageHeaderData &&
		PageGetLSN(page) == InvalidXLogRecPtr;
}

/* " (btree)" when the map names the relation's kind, else "". */
static const char *
oracle_kind_note(const OracleRun *run, Oid dboid, Oid relnode)
{
	OracleKind	kind = oracle_map_lookup(run, dboid, relnode);

	return kind == KIND_COUNT ? "" : psprintf(" (%s)", oracle_kinds[kind].name);
}

/* primary-sanity: PRIMARY's blocks past TEST's end of a main fork. */
static void
oracle_sanity_main(OracleRun *run, const char *path, const char *note, OracleFork fork[2])
{
	PGAlignedBlock page;
	uint64		shown = 0;

	if (fork[0].nblocks < fork[1].nblocks)
		oracle_mismatch(run, "%s: %u blocks in TEST, only %u in PRIMARY%s", path,
						fork[1].nblocks, fork[0].nblocks, note);
	for (BlockNumber blkno = fork[1].nblocks; blkno < fork[0].nblocks; blkno++)
	{
		PageHeader	header = (PageHeader) page.data;

		oracle_fork_read(&fork[0], blkno, page.data);
		run->blocks++;
		if (oracle_page_is_unlogged_extension(page.data))
			continue;
		if (shown++ < ORACLE_SHOWN_PER_FORK_MAX)
			oracle_mismatch(run, "%s block %u: past TEST's %u blocks, PRIMARY's page "
							"is neither zeros nor empty with LSN 0 "
							"(lsn %X/%X, pd_lower %u)%s", path, blkno,
							fork[1].nblocks,
							LSN_FORMAT_ARGS(PageGetLSN(page.data)),
							header->pd_lower, note);
		else
			run->mismatches++;
	}
	if (shown > ORACLE_SHOWN_PER_FORK_MAX)
		printf("omitted: %s: %llu more bad blocks not listed\n", path,
			   (unsigned long long) (shown - ORACLE_SHOWN_PER_FORK_MAX));
}

/*
 * The first bitmap byte of a VM page where test has a bit primary has not
 * (the bits in *bits), or -1.  A page past TEST's end is checked against zeros.
 */
static int
oracle_vm_extra_bits(const char *test, const char *primary, uint8 *bits)
{
	for (int i = ORACLE_VM_MAP_OFFSET; i < BLCKSZ; i++)
	{
		*bits = (uint8) test[i] & ~(uint8) primary[i];
		if (*bits != 0)
			return i;
	}
	return -1;
}

/*
 * primary-sanity: what is wrong with VM page blkno (PRIMARY's and TEST's),
 * or NULL.  TEST's bits must be a subset of PRIMARY's; past TEST's end
 * (past_test), PRIMARY's page must have no bit set.
 */
static char *
oracle_sanity_vm_page(const char *primary, const char *test, BlockNumber blkno,
					  bool past_test)
{
	PGAlignedBlock zero = {0};
	uint8		bits;
	int			offset;
	uint64		heapblk;

	if (past_test)
		offset = oracle_vm_extra_bits(primary, zero.data, &bits);
	else
		offset = oracle_vm_extra_bits(test, primary, &bits);
	if (offset < 0)
		return NULL;
	heapblk = (uint64) blkno * ORACLE_VM_HEAPBLOCKS_PER_PAGE +
		(uint64) (offset - ORACLE_VM_MAP_OFFSET) * ORACLE_VM_HEAPBLOCKS_PER_BYTE +
		pg_rightmost_one_pos32(bits) / BITS_PER_HEAPBLOCK;
	if (past_test)
		return psprintf("past TEST's VM pages, PRIMARY's page has bits set "
						"(offset %d, heap block " UINT64_FORMAT ")",
						offset, heapblk);
	return psprintf("bits 0x%02x set in TEST, not in PRIMARY (offset %d, heap block "
					UINT64_FORMAT ")", bits, offset, heapblk);
}

/* primary-sanity: TEST's VM bits are a subset of PRIMARY's; PRIMARY's extra pages empty. */
static void
oracle_sanity_vm(OracleRun *run, const char *path, OracleFork fork[2])
{
	PGAlignedBlock page[2];
	BlockNumber nblocks = Max(fork[0].nblocks, fork[1].nblocks);
	uint64		shown = 0;

	for (BlockNumber blkno = 0; blkno < nblocks; blkno++)
	{
		char	   *what;

		oracle_fork_read(&fork[0], blkno, page[0].data);
		oracle_fork_read(&fork[1], blkno, page[1].data);
		run->blocks++;
		what = oracle_sanity_vm_page(page[0].data, page[1].data, blkno,
									 blkno >= fork[1].nblocks);
		if (what == NULL)
			continue;
		if (shown++ < ORACLE_SHOWN_PER_FORK_MAX)
			oracle_mismatch(run, "%s block %u: %s", path, blkno, what);
		else
			run->mismatches++;
		pfree(what);
	}
	if (shown > ORACLE_SHOWN_PER_FORK_MAX)
		printf("omitted: %s: %llu more bad blocks not listed\n", path,
			   (unsigned long long) (shown - ORACLE_SHOWN_PER_FORK_MAX));
}

/* primary-sanity: one main or VM fork of a relation TEST has. */
static void
oracle_sanity_fork(OracleRun *run, const char *path, Oid dboid, const OracleEntry *segs,
				   int nsegs)
{
	OracleFork	fork[2];

	for (int side = 0; side < 2; side++)
		oracle_fork_open(run, side, path, segs, nsegs, &fork[side]);
	if (segs[0].fork == VISIBILITYMAP_FORKNUM)
		oracle_sanity_vm(run, path, fork);
	else
		oracle_sanity_main(run, path, oracle_kind_note(run, dboid, segs[0].relnode), fork);
	oracle_fork_close(&fork[0]);
	oracle_fork_close(&fork[1]);
}

/* ------------------------------------------------------------- directories */

/*
 * One relation: its segments e[0..n), sorted by fork then segment.  Unlogged
 * relations and FSM forks are excluded; main and VM forks are compared.
 */
static void
oracle_relation(OracleRun *run, const char *rel, Oid dboid, const OracleEntry *e, int n)
{
	bool		unlogged = false;
	uint8		sides = 0;
	int			next;

	for (int i = 0; i < n; i++)
	{
		unlogged |= e[i].fork == INIT_FORKNUM;
		sides |= e[i].sides;
	}
	if (!oracle_relevant(run, sides))
		return;
	for (int i = 0; i < n; i = next)
	{
		uint8		fork_sides = 0;
		char	   *path;

		for (next = i; next < n && e[next].fork == e[i].fork; next++)
			fork_sides |= e[next].sides;
		path = e[i].fork == MAIN_FORKNUM ? psprintf("%s/%u", rel, e[i].relnode) :
			psprintf("%s/%u_%s", rel, e[i].relnode, forkNames[e[i].fork]);
		if (unlogged)
			oracle_exclude(run, path, "unlogged relation: it has an init fork");
		else if (e[i].fork == FSM_FORKNUM)
			oracle_exclude(run, path, "FSM is not WAL-logged");
		else if (run->mode == MODE_SANITY)
		{
			run->files += next - i;
			oracle_sanity_fork(run, path, dboid, e + i, next - i);
		}
		else
		{
			run->files += next - i;
			if (oracle_both(run, path, fork_sides))
				oracle_compare_fork(run, path, dboid, e + i, next - i);
		}
	}
}

/* A file in global/ or a database directory that is not a relation segment. */
static void
oracle_other_file(OracleRun *run, const char *rel, const OracleEntry *entry)
{
	char	   *path = oracle_join(rel, entry->name);

	if (!oracle_relevant(run, entry->sides))
		return;
	if (strcmp(entry->name, "pg_filenode.map") == 0 && !entry->is_dir)
	{
		if (run->mode == MODE_SANITY)
			oracle_exclude(run, path, "primary-sanity checks relation forks only");
		else if (oracle_both(run, path, entry->sides))
			oracle_compare_bytes(run, path);
	}
	else if (looks_like_temp_rel_name(entry->name))
		oracle_exclude(run, path, "temporary relation");
	else
		oracle_exclude(run, path, "not a relation file");
}

/* global/ (dboid 0) or base/<dboid>/: every file, relations grouped by relfilenode. */
static void
oracle_walk_reldir(OracleRun *run, const char *rel, Oid dboid)
{
	MemoryContext cxt;
	MemoryContext old;
	OracleList	list;
	int			next;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "oracle directory",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	list = oracle_list(run, rel);

	if (list.count > 0)
		qsort(list.entries, list.count, sizeof(OracleEntry), oracle_entry_cmp_rel);
	for (int i = 0; i < list.count; i = next)
	{
		OracleEntry *entry = &list.entries[i];

		next = i + 1;
		if (!entry->is_rel)
		{
			oracle_other_file(run, rel, entry);
			continue;
		}
		while (next < list.count && list.entries[next].relnode == entry->relnode)
			next++;
		oracle_relation(run, rel, dboid, entry, next - i);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/* base/: each database directory, by OID. */
static void
oracle_walk_base(OracleRun *run)
{
	OracleList	list = oracle_list(run, "base");

	for (int i = 0; i < list.count; i++)
	{
		OracleEntry *entry = &list.entries[i];
		char	   *path = oracle_join("base", entry->name);
		char	   *end;
		unsigned long dboid;

		if (!oracle_relevant(run, entry->sides))
			continue;
		errno = 0;
		dboid = strtoul(entry->name, &end, 10);
		if (!entry->is_dir || *end != '\0' || errno != 0 || dboid == InvalidOid ||
			dboid > PG_UINT32_MAX)
			oracle_exclude(run, path, "not a database directory");
		else if (oracle_both(run, psprintf("%s/", path), entry->sides))
			oracle_walk_reldir(run, path, (Oid) dboid);
	}
}

/* pg_xact/ and pg_multixact's offsets/ and members/: every file byte for byte. */
static void
oracle_walk_bytes(OracleRun *run, const char *rel)
{
	OracleList	list = oracle_list(run, rel);

	for (int i = 0; i < list.count; i++)
	{
		OracleEntry *entry = &list.entries[i];
		char	   *path = oracle_join(rel, entry->name);

		if (entry->is_dir)
			oracle_exclude(run, path, "a directory where only files are expected");
		else if (oracle_both(run, path, entry->sides))
			oracle_compare_bytes(run, path);
		else
			run->files++;
	}
}

static void
oracle_walk_multixact(OracleRun *run)
{
	OracleList	list = oracle_list(run, "pg_multixact");

	for (int i = 0; i < list.count; i++)
	{
		OracleEntry *entry = &list.entries[i];
		char	   *path = oracle_join("pg_multixact", entry->name);

		if (entry->is_dir && (strcmp(entry->name, "offsets") == 0 ||
							  strcmp(entry->name, "members") == 0))
		{
			if (oracle_both(run, psprintf("%s/", path), entry->sides))
				oracle_walk_bytes(run, path);
		}
		else
			oracle_exclude(run, path, "not an SLRU directory");
	}
}

/* The top of the data directories: dispatch to what each run compares. */
static void
oracle_walk_top(OracleRun *run)
{
	OracleList	list = oracle_list(run, "");
	bool		compare = run->mode == MODE_COMPARE;

	for (int i = 0; i < list.count; i++)
	{
		OracleEntry *entry = &list.entries[i];
		const char *name = entry->name;
		char	   *path = psprintf("%s%s", name, entry->is_dir ? "/" : "");

		if (!oracle_relevant(run, entry->sides))
			continue;
		if (entry->is_dir && strcmp(name, "global") == 0)
		{
			if (oracle_both(run, path, entry->sides))
				oracle_walk_reldir(run, "global", InvalidOid);
		}
		else if (entry->is_dir && strcmp(name, "base") == 0)
		{
			if (oracle_both(run, path, entry->sides))
				oracle_walk_base(run);
		}
		else if (compare && entry->is_dir && strcmp(name, "pg_xact") == 0)
		{
			if (oracle_both(run, path, entry->sides))
				oracle_walk_bytes(run, "pg_xact");
		}
		else if (compare && entry->is_dir && strcmp(name, "pg_multixact") == 0)
		{
			if (oracle_both(run, path, entry->sides))
				oracle_walk_multixact(run);
		}
		else if (compare)
			oracle_exclude(run, path, "not global/, base/, pg_xact/ or pg_multixact/");
		else
			oracle_exclude(run, path, "primary-sanity checks global/ and base/ only");
	}
}

/* ------------------------------------------------------------------ map */

static int
oracle_map_cmp(const void *pa, const void *pb)
{
	const OracleMapEntry *a = pa;
	const OracleMapEntry *b = pb;

	if (a->dboid != b->dboid)
		return a->dboid < b->dboid ? -1 : 1;
	if (a->relnode != b->relnode)
		return a->relnode < b->relnode ? -1 : 1;
	return 0;
}

/* Parse one map line into entry; false if it is not "dboid relfilenode kind". */
static bool
oracle_map_parse_line(const char *line, OracleMapEntry *entry)
{
	unsigned int dboid;
	unsigned int relnode;
	char		kind[32];
	char		extra;

	if (sscanf(line, "%u %u %31s %c", &dboid, &relnode, kind, &extra) != 3)
		return false;
	entry->dboid = dboid;
	entry->relnode = relnode;
	entry->kind = oracle_kind_from_name(kind, false);
	return relnode != InvalidOid && entry->kind != KIND_COUNT;
}

/* Load the map file into run->map, sorted; a bad line is an error. */
static void
oracle_map_load(OracleRun *run, const char *path)
{
	FILE	   *file = fopen(path, "r");
	char		line[256];
	int			capacity = 1024;
	int			lineno = 0;

	if (file == NULL)
		ereport(ERROR, errcode_for_file_access(),
				errmsg("could not open map file \"%s\": %m", path));
	run->map = palloc(capacity * sizeof(OracleMapEntry));
	while (fgets(line, sizeof(line), file) != NULL)
	{
		const char *p = line + strspn(line, " \t");

		lineno++;
		if (*p == '#' || *p == '\n' || *p == '\0')
			continue;
		if (run->map_count == capacity)
		{
			capacity *= 2;
			run->map = repalloc(run->map, capacity * sizeof(OracleMapEntry));
		}
		if (!oracle_map_parse_line(p, &run->map[run->map_count]))
			ereport(ERROR, errmsg("invalid line %d in map file \"%s\"", lineno, path),
					errdetail("Lines are \"dboid relfilenode kind\"; "
							  "kinds are %s.", ORACLE_MAP_KINDS));
		run->map_count++;
	}
	if (ferror(file))
		ereport(ERROR, errcode_for_file_access(),
				errmsg("could not read map file \"%s\": %m", path));
	fclose(file);
	qsort(run->map, run->map_count, sizeof(OracleMapEntry), oracle_map_cmp);
	for (int i = 1; i < run->map_count; i++)
	{
		const OracleMapEntry *entry = &run->map[i];

		if (oracle_map_cmp(entry - 1, entry) == 0 && (entry - 1)->kind != entry->kind)
			ereport(ERROR, errmsg("map file \"%s\" gives %u/%u two kinds", path,
								  entry->dboid, entry->relnode));
	}
}

/* ------------------------------------------------------------------ main */

static void
oracle_check_datadir(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) != 0)
		ereport(ERROR, errcode_for_file_access(),
				errmsg("could not stat directory \"%s\": %m", dir));
	if (!S_ISDIR(st.st_mode))
		ereport(ERROR, errmsg("\"%s\" is not a directory", dir));
	if (stat(psprintf("%s/global", dir), &st) != 0 && stat(psprintf("%s/base", dir), &st) != 0)
		ereport(ERROR, errmsg("\"%s\" is not a data directory: it has neither "
							  "global/ nor base/", dir));
}

/* compare or primary-sanity over the two directories; the exit status. */
static int
oracle_run(OracleMode mode, const char *map_path, bool checksums, const char *dir_a,
		   const char *dir_b)
{
	OracleRun	run = {0};

	run.mode = mode;
	run.checksums = checksums;
	run.dir[0] = dir_a;
	run.dir[1] = dir_b;
	run.side_name[0] = mode == MODE_COMPARE ? "REF" : "PRIMARY";
	run.side_name[1] = "TEST";
	oracle_check_datadir(dir_a);
	oracle_check_datadir(dir_b);
	if (map_path != NULL)
		oracle_map_load(&run, map_path);
	oracle_walk_top(&run);
	printf("%s: %llu files, %llu blocks compared, %llu mismatches, %llu exclusions\n",
		   mode == MODE_COMPARE ? "oracle" : "sanity", (unsigned long long) run.files,
		   (unsigned long long) run.blocks, (unsigned long long) run.mismatches,
		   (unsigned long long) run.exclusions);
	if (checksums)
		printf("checksums: %llu pages verified, %llu wrong\n",
			   (unsigned long long) run.checksums_verified,
			   (unsigned long long) run.checksums_wrong);
	return run.mismatches == 0 ? 0 : 1;
}

/* page KIND FILE_A FILE_B: the exit status. */
static int
oracle_page(const char *kind_name, const char *path_a, const char *path_b)
{
	static const char *const names[2] = {"FILE_A", "FILE_B"};
	OracleKind	kind = oracle_kind_from_name(kind_name, true);
	PGAlignedBlock page[2];
	const char *paths[2] = {path_a, path_b};
	OracleVerdict verdict;

	if (kind == KIND_COUNT)
		ereport(ERROR, errmsg("unknown page kind \"%s\"", kind_name),
				errhint("Kinds are %s, vm.", ORACLE_MAP_KINDS));
	for (int side = 0; side < 2; side++)
	{
		size_t		size;
		char	   *data = oracle_read_file(paths[side], &size);

		if (size != BLCKSZ)
			ereport(ERROR, errmsg("\"%s\" is %zu bytes, not one %d-byte page",
								  paths[side], size, BLCKSZ));
		memcpy(page[side].data, data, BLCKSZ);
	}
	oracle_page_compare(page[0].data, page[1].data, kind, 0, names, &verdict);
	if (verdict.offset < 0)
	{
		printf("page: equal %s\n", oracle_masking_text(&verdict));
		return 0;
	}
	printf("page: %s\n", oracle_verdict_text(&verdict, page[0].data, page[1].data, kind, 0));
	return 1;
}

static int
oracle_usage(void)
{
	fprintf(stderr,
			"usage: argon-oracle compare [--map FILE] [--checksums] REF_DIR TEST_DIR\n"
			"       argon-oracle primary-sanity [--map FILE] PRIMARY_DIR TEST_DIR\n"
			"       argon-oracle page KIND FILE_A FILE_B\n"
			"KIND: " ORACLE_MAP_KINDS ", vm\n");
	return 2;
}

/* Parse the command line and run; the exit status. */
static int
oracle_main(int argc, char **argv)
{
	const char *map_path = NULL;
	bool		checksums = false;
	OracleMode	mode;
	int			arg = 2;

	if (argc == 5 && strcmp(argv[1], "page") == 0)
		return oracle_page(argv[2], argv[3], argv[4]);
	if (argc < 2)
		return oracle_usage();
	if (strcmp(argv[1], "compare") == 0)
		mode = MODE_COMPARE;
	else if (strcmp(argv[1], "primary-sanity") == 0)
		mode = MODE_SANITY;
	else
		return oracle_usage();
	if (argc > arg + 1 && strcmp(argv[arg], "--map") == 0)
	{
		map_path = argv[arg + 1];
		arg += 2;
	}
	if (mode == MODE_COMPARE && argc > arg && strcmp(argv[arg], "--checksums") == 0)
	{
		checksums = true;
		arg++;
	}
	if (argc != arg + 2)
		return oracle_usage();
	return oracle_run(mode, map_path, checksums, argv[arg], argv[arg + 1]);
}

int
main(int argc, char **argv)
{
	volatile int status = 2;
	MemoryContext context;

	MemoryContextInit();
	context = CurrentMemoryContext;
	PG_TRY();
	{
		status = oracle_main(argc, argv);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(context);
		edata = CopyErrorData();
		fflush(stdout);
		fprintf(stderr, "argon-oracle: %s\n", edata->message);
		if (edata->detail != NULL)
			fprintf(stderr, "DETAIL: %s\n", edata->detail);
		if (edata->hint != NULL)
			fprintf(stderr, "HINT: %s\n", edata->hint);
		status = 2;
	}
	PG_END_TRY();
	fflush(stdout);
	return status;
}
