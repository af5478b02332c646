/*
 * walredo_md.c - The storage manager of argon-walredo, linked in place of
 * PostgreSQL's md.o (it defines md.o's symbols, so smgr.c's table calls it).
 *
 * One block exists: the target the page server named ('B'), whose bytes are
 * kept here.  Every relation claims MaxBlockNumber blocks, so redo never tries
 * to extend one; a read of any other block returns a sentinel, a valid empty
 * page whose pd_lsn is the largest LSN, which every redo routine takes as
 * "already applied" and skips.  Full-page images of other blocks still land in
 * shared buffers: the caller drops those buffers after each record.  Nothing
 * is ever written to disk, created or removed.
 *
 * PostgreSQL dialect.
 */
#include "postgres.h"

#include "storage/buf_internals.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/md.h"
#include "storage/smgr.h"

#include "compute/walredo_int.h"

static bool have_target;
static BufferTag target;
static PGAlignedBlock target_page;
static PGAlignedBlock sentinel;

static bool
md_is_target(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum)
{
	return have_target && RelFileNodeEquals(reln->smgr_rnode.node, target.rnode) &&
		forknum == target.forkNum && blocknum == target.blockNum;
}

static void
md_check_tag(BufferTag tag, const char *what)
{
	if (!have_target || !BUFFERTAGS_EQUAL(tag, target))
		elog(ERROR, "%s names block %u/%u/%u fork %d blk %u, not the target", what,
			 tag.rnode.spcNode, tag.rnode.dbNode, tag.rnode.relNode, tag.forkNum,
			 tag.blockNum);
}

void
walredo_md_begin(BufferTag tag)
{
	target = tag;
	have_target = true;
	memset(target_page.data, 0, BLCKSZ);
}

void
walredo_md_push(BufferTag tag, const char *page)
{
	md_check_tag(tag, "a pushed page");
	memcpy(target_page.data, page, BLCKSZ);
}

void
walredo_md_save_target(void)
{
	uint32		hash;
	LWLock	   *lock;
	int			buf_id;

	if (!have_target)
		return;
	hash = BufTableHashCode(&target);
	lock = BufMappingPartitionLock(hash);
	LWLockAcquire(lock, LW_SHARED);
	buf_id = BufTableLookup(&target, hash);
	LWLockRelease(lock);
	if (buf_id >= 0 && (pg_atomic_read_u32(&GetBufferDescriptor(buf_id)->state) & BM_VALID))
		memcpy(target_page.data, BufferGetPage(buf_id + 1), BLCKSZ);
}

const char *
walredo_md_get(BufferTag tag)
{
	md_check_tag(tag, "a get-page request");
	return target_page.data;
}

/* ---- md.o's interface ---- */

void
mdinit(void)
{
	PageInit(sentinel.data, BLCKSZ, 0);
	PageSetLSN(sentinel.data, PG_UINT64_MAX);
}

void
mdopen(SMgrRelation reln)
{
}

void
mdclose(SMgrRelation reln, ForkNumber forknum)
{
}

void
mdcreate(SMgrRelation reln, ForkNumber forknum, bool isRedo)
{
}

bool
mdexists(SMgrRelation reln, ForkNumber forknum)
{
	return true;
}

void
mdunlink(RelFileNodeBackend rnode, ForkNumber forknum, bool isRedo)
{
}

/* A block written (extended, or a buffer evicted mid-record): the target's
 * bytes are kept, every other block's dropped. */
static void
md_keep(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, const char *buffer)
{
	if (md_is_target(reln, forknum, blocknum))
		memcpy(target_page.data, buffer, BLCKSZ);
}

void
mdextend(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer,
		 bool skipFsync)
{
	md_keep(reln, forknum, blocknum, buffer);
}

bool
mdprefetch(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum)
{
	return true;
}

void
mdread(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer)
{
	memcpy(buffer, md_is_target(reln, forknum, blocknum) ? target_page.data : sentinel.data,
		   BLCKSZ);
}

void
mdwrite(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer,
		bool skipFsync)
{
	md_keep(reln, forknum, blocknum, buffer);
}

void
mdwriteback(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, BlockNumber nblocks)
{
}

BlockNumber
mdnblocks(SMgrRelation reln, ForkNumber forknum)
{
	return MaxBlockNumber;
}

void
mdtruncate(SMgrRelation reln, ForkNumber forknum, BlockNumber old_blocks, BlockNumber nblocks)
{
}

void
mdimmedsync(SMgrRelation reln, ForkNumber forknum)
{
}

void
ForgetDatabaseSyncRequests(Oid dbid)
{
}

void
DropRelationFiles(RelFileNode *delrels, int ndelrels, bool isRedo)
{
}

int
mdsyncfiletag(const FileTag *ftag, char *path)
{
	return 0;
}

int
mdunlinkfiletag(const FileTag *ftag, char *path)
{
	return 0;
}

bool
mdfiletagmatches(const FileTag *ftag, const FileTag *candidate)
{
	return false;
}
