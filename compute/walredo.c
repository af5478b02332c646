/*
 * walredo.c - argon-walredo: PostgreSQL 15's own redo routines in a helper
 * process the page server drives over a pipe.  Linked from the backend objects
 * of the cached PostgreSQL build with md.o left out: walredo_md.c's in-memory
 * storage manager stands in for it, so the only page that exists is the one
 * being rebuilt (the target).  Nothing of PostgreSQL is patched.
 *
 *   argon-walredo [--test-commands]     serve the protocol on stdin/stdout
 *   argon-walredo --version             one line: PostgreSQL version, sandbox
 *
 * Protocol (Neon's walredo messages, plus Argon's M and Z): a message is a type
 * byte, a u32 big-endian length that counts itself and the payload, then the
 * payload.  A buffer tag is fork u8, spcNode u32, dbNode u32, relNode u32,
 * blkno u32 (big-endian, 17 bytes).
 *   B tag               begin: the target block; forgets the previous one
 *   P tag page[8192]    push the target's base page (else it starts all zeros)
 *   A endlsn u64 record apply one raw WAL record (XLogRecord and all, CRC
 *                       checked) ending at endlsn, the page's new pd_lsn
 *   G tag               reply: the target page, 8192 bytes
 *   H bytes             ping; reply: the payload bytes
 *   M rmid u8 blkno u32 page[8192]
 *                       reply: the page masked with that rmgr's rm_mask
 *   S                   reply: u32 length, then one line per record type this
 *                       process replayed, "Rmgr/TYPE count" (pg_waldump
 *                       --stats=record's names: rm_name and rm_identify)
 *   Z                   (--test-commands only) make a system call outside the
 *                       sandbox's allow-list: the process must die with SIGSYS
 * Replies are written in order and flushed whenever the input runs dry, so
 * requests can be pipelined.  Only the page rmgrs are applied: heap, heap2,
 * btree, hash, gin, gist, sequence, spgist, brin and generic.
 *
 * Failure: anything wrong (a malformed message, a bad CRC, a record of another
 * rmgr, an ERROR or PANIC in redo) writes one "argon-walredo: ..." line (and
 * PostgreSQL's own report, with a CONTEXT line naming the record) to stderr
 * and ends the process with status 1 (PANIC: SIGABRT).  The page server reads
 * stderr, fails that one read with the message and starts a new helper: a
 * process that failed half-way through a record is not trusted again.  EOF on
 * stdin ends it with status 0.
 *
 * Sandbox: before reading any input, every inherited descriptor above 2 is
 * closed and a seccomp allow-list is entered (read, write, memory management,
 * signal return, clocks, exit, and SIGABRT to itself for abort() after a PANIC);
 * any other system call kills the process with SIGSYS.  Built without
 * libseccomp (the seccomp option off), --version says so.
 *
 * Written in PostgreSQL's dialect (its headers and CFLAGS).
 */
#include "postgres.h"

#include "access/clog.h"
#include "access/commit_ts.h"
#include "access/multixact.h"
#include "access/nbtree.h"
#include "access/rmgr.h"
#include "access/subtrans.h"
#include "access/syncscan.h"
#include "access/twophase.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogprefetcher.h"
#include "access/xlogreader.h"
#include "access/xlogrecord.h"
#include "access/xlogrecovery.h"
#include "access/xlogutils.h"
#include "miscadmin.h"
#include "postmaster/autovacuum.h"
#include "postmaster/bgworker_internals.h"
#include "postmaster/bgwriter.h"
#include "postmaster/pgarch.h"
#include "postmaster/postmaster.h"
#include "replication/logicallauncher.h"
#include "replication/origin.h"
#include "replication/slot.h"
#include "replication/walreceiver.h"
#include "replication/walsender.h"
#include "storage/buf_internals.h"
#include "storage/bufmgr.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/pg_sema.h"
#include "storage/pg_shmem.h"
#include "storage/pmsignal.h"
#include "storage/predicate.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/procsignal.h"
#include "storage/shmem.h"
#include "storage/sinvaladt.h"
#include "storage/smgr.h"
#include "utils/backend_status.h"
#include "lib/stringinfo.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "ar_build_config.h"
#include "compute/walredo.h"
#include "compute/walredo_int.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if AR_HAVE_SECCOMP
#include <seccomp.h>
#endif

/* The backend expects these from main.c, which is not linked. */
const char *progname = "argon-walredo";

#define WR_INPUT_MAX (AR_WALREDO_MESSAGE_MAX + 5)

static char *inbuf;
static size_t in_start;
static size_t in_end;
static char outbuf[64 * 1024];
static size_t out_len;

static XLogReaderState *reader;
static MemoryContext record_ctx;
static XLogRecPtr current_end;
static RmgrId current_rmid;
static uint8 current_info;
/* Records replayed, by rmgr and the info byte's high four bits. */
static uint64 replayed[RM_MAX_BUILTIN_ID + 1][16];

static void wr_die(const char *fmt,...) pg_attribute_printf(1, 2) pg_attribute_noreturn();

static void
wr_die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "argon-walredo: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	fflush(stderr);
	_exit(1);
}

/* ---- output ---- */

static void
wr_flush(void)
{
	size_t		done = 0;

	while (done < out_len)
	{
		ssize_t		n = write(STDOUT_FILENO, outbuf + done, out_len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(n < 0 && errno == EPIPE ? 0 : 1);	/* the page server went away */
		done += n;
	}
	out_len = 0;
}

static void
wr_reply(const void *data, size_t len)
{
	if (out_len + len > sizeof(outbuf))
		wr_flush();
	memcpy(outbuf + out_len, data, len);
	out_len += len;
}

/* ---- input ---- */

/* Make at least need bytes available at inbuf + in_start; false on EOF. */
static bool
wr_fill(size_t need)
{
	if (in_end - in_start >= need)
		return true;
	if (in_start > 0)
	{
		memmove(inbuf, inbuf + in_start, in_end - in_start);
		in_end -= in_start;
		in_start = 0;
	}
	while (in_end < need)
	{
		ssize_t		n;

		/* Nothing more is buffered: answer what was asked before waiting. */
		if (out_len > 0)
			wr_flush();
		n = read(STDIN_FILENO, inbuf + in_end, WR_INPUT_MAX - in_end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			wr_die("reading the request pipe: %s", strerror(errno));
		if (n == 0)
			return false;
		in_end += n;
	}
	return true;
}

static uint32
wr_be32(const char *p)
{
	const unsigned char *u = (const unsigned char *) p;

	return ((uint32) u[0] << 24) | ((uint32) u[1] << 16) | ((uint32) u[2] << 8) | u[3];
}

static uint64
wr_be64(const char *p)
{
	return ((uint64) wr_be32(p) << 32) | wr_be32(p + 4);
}

static BufferTag
wr_tag(const char *p)
{
	BufferTag	tag;
	uint8		fork = (uint8) p[0];

	if (fork > MAX_FORKNUM)
		wr_die("fork %u in a buffer tag", fork);
	tag.forkNum = fork;
	tag.rnode.spcNode = wr_be32(p + 1);
	tag.rnode.dbNode = wr_be32(p + 5);
	tag.rnode.relNode = wr_be32(p + 9);
	tag.blockNum = wr_be32(p + 13);
	return tag;
}

/* ---- applying one record ---- */

static const char *
wr_rmgr_name(RmgrId rmid)
{
	return RmgrIdExists(rmid) ? GetRmgr(rmid).rm_name : "unknown";
}

static void
wr_record_context(void *arg)
{
	errcontext("argon-walredo applying the record ending at %X/%X (rmgr %s, info 0x%02X)",
			   LSN_FORMAT_ARGS(current_end), wr_rmgr_name(current_rmid), current_info);
}

static bool
wr_page_rmgr(RmgrId rmid)
{
	switch (rmid)
	{
		case RM_HEAP_ID:
		case RM_HEAP2_ID:
		case RM_BTREE_ID:
		case RM_HASH_ID:
		case RM_GIN_ID:
		case RM_GIST_ID:
		case RM_SEQ_ID:
		case RM_SPGIST_ID:
		case RM_BRIN_ID:
		case RM_GENERIC_ID:
			return true;
		default:
			return false;
	}
}

static void
wr_apply(const char *payload, uint32 len)
{
	XLogRecPtr	end;
	XLogRecord *record;
	DecodedXLogRecord *decoded;
	char	   *errormsg = NULL;
	pg_crc32c	crc;
	ErrorContextCallback callback;
	MemoryContext old;
	Oid			dbs[XLR_MAX_BLOCK_ID + 1];
	int			ndbs = 0;

	if (len < 8 + SizeOfXLogRecord)
		wr_die("an apply message of %u bytes is too short for a WAL record", len);
	end = wr_be64(payload);
	old = MemoryContextSwitchTo(record_ctx);
	/* A private, MAXALIGNed copy: the decoder and redo read it in place. */
	record = palloc(len - 8);
	memcpy(record, payload + 8, len - 8);
	current_end = end;
	current_rmid = record->xl_rmid;
	current_info = record->xl_info;
	if (record->xl_tot_len != len - 8)
		wr_die("the record ending at %X/%X says it is %u bytes, the message carries %u",
			   LSN_FORMAT_ARGS(end), record->xl_tot_len, len - 8);
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, ((char *) record) + SizeOfXLogRecord,
				record->xl_tot_len - SizeOfXLogRecord);
	COMP_CRC32C(crc, (char *) record, offsetof(XLogRecord, xl_crc));
	FIN_CRC32C(crc);
	if (!EQ_CRC32C(crc, record->xl_crc))
		wr_die("the record ending at %X/%X (rmgr %s) fails its CRC check",
			   LSN_FORMAT_ARGS(end), wr_rmgr_name(record->xl_rmid));
	if (!wr_page_rmgr(record->xl_rmid))
		wr_die("the record ending at %X/%X is of rmgr %s (%u), not a page rmgr: "
			   "the page server applies it itself",
			   LSN_FORMAT_ARGS(end), wr_rmgr_name(record->xl_rmid), record->xl_rmid);

	decoded = palloc(DecodeXLogRecordRequiredSpace(record->xl_tot_len));
	if (!DecodeXLogRecord(reader, decoded, record, end - MAXALIGN(record->xl_tot_len),
						  &errormsg))
		wr_die("the record ending at %X/%X (rmgr %s) does not decode: %s",
			   LSN_FORMAT_ARGS(end), wr_rmgr_name(record->xl_rmid),
			   errormsg ? errormsg : "unknown error");
	decoded->next_lsn = end;
	reader->record = decoded;
	reader->ReadRecPtr = decoded->lsn;
	reader->EndRecPtr = end;

	callback.callback = wr_record_context;
	callback.arg = NULL;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	GetRmgr(record->xl_rmid).rm_redo(reader);
	error_context_stack = callback.previous;
	replayed[record->xl_rmid][record->xl_info >> 4]++;

	/* Keep the target's new state; make every other block a sentinel again. */
	walredo_md_save_target();
	for (int i = 0; i <= decoded->max_block_id; i++)
	{
		bool		seen = false;

		if (!decoded->blocks[i].in_use)
			continue;
		for (int j = 0; j < ndbs; j++)
			seen = seen || dbs[j] == decoded->blocks[i].rnode.dbNode;
		if (!seen)
			dbs[ndbs++] = decoded->blocks[i].rnode.dbNode;
	}
	for (int j = 0; j < ndbs; j++)
		DropDatabaseBuffers(dbs[j]);
	reader->record = NULL;
	MemoryContextSwitchTo(old);
	MemoryContextReset(record_ctx);
}

static void
wr_mask(const char *payload, uint32 len)
{
	PGAlignedBlock page;
	RmgrId		rmid;

	if (len != 5 + BLCKSZ)
		wr_die("a mask message of %u bytes (want %d)", len, 5 + BLCKSZ);
	rmid = (uint8) payload[0];
	if (!RmgrIdExists(rmid) || GetRmgr(rmid).rm_mask == NULL)
		wr_die("rmgr %u has no mask function", rmid);
	memcpy(page.data, payload + 5, BLCKSZ);
	GetRmgr(rmid).rm_mask(page.data, wr_be32(payload + 1));
	wr_reply(page.data, BLCKSZ);
}

static void
wr_stats(void)
{
	StringInfoData text;
	char		len[4];

	initStringInfo(&text);
	for (int rmid = 0; rmid <= RM_MAX_BUILTIN_ID; rmid++)
		for (int hi = 0; hi < 16; hi++)
		{
			const char *id;
			const char *name;
			unsigned long long n = replayed[rmid][hi];

			if (n == 0)
				continue;
			name = GetRmgr(rmid).rm_name;
			id = GetRmgr(rmid).rm_identify(hi << 4);
			if (id)
				appendStringInfo(&text, "%s/%s %llu\n", name, id, n);
			else
				appendStringInfo(&text, "%s/UNKNOWN (%x) %llu\n", name, hi << 4, n);
		}
	if (text.len > AR_WALREDO_STATS_MAX)
		text.len = AR_WALREDO_STATS_MAX;
	len[0] = (char) (text.len >> 24);
	len[1] = (char) (text.len >> 16);
	len[2] = (char) (text.len >> 8);
	len[3] = (char) text.len;
	wr_reply(len, 4);
	wr_reply(text.data, text.len);
	pfree(text.data);
}

/* ---- start-up ---- */

/*
 * A backend's shared memory without a postmaster: a zeroed block in this
 * process and the initialisation calls of CreateSharedMemoryAndSemaphores()
 * that redo needs.
 */
static void
wr_shmem_init(void)
{
	int			nsemas;
	Size		size = CalculateShmemSize(&nsemas);
	PGShmemHeader *hdr = calloc(1, size);

	if (hdr == NULL)
		wr_die("could not allocate %zu bytes of shared memory", size);
	hdr->magic = PGShmemMagic;
	hdr->creatorPID = getpid();
	hdr->totalsize = size;
	hdr->freeoffset = MAXALIGN(sizeof(PGShmemHeader));
	/* The semaphores' key seed stats the data directory; nothing is written. */
	SetDataDir("/");
	InitShmemAccess(hdr);
	PGReserveSemaphores(nsemas);
	InitShmemAllocation();
	CreateLWLocks();
	InitShmemIndex();
	XLOGShmemInit();
	XLogPrefetchShmemInit();
	XLogRecoveryShmemInit();
	CLOGShmemInit();
	CommitTsShmemInit();
	SUBTRANSShmemInit();
	MultiXactShmemInit();
	InitBufferPool();
	InitLocks();
	InitPredicateLocks();
	InitProcGlobal();
	CreateSharedProcArray();
	CreateSharedBackendStatus();
	TwoPhaseShmemInit();
	BackgroundWorkerShmemInit();
	CreateSharedInvalidationState();
	PMSignalShmemInit();
	ProcSignalShmemInit();
	CheckpointerShmemInit();
	AutoVacuumShmemInit();
	ReplicationSlotsShmemInit();
	ReplicationOriginShmemInit();
	WalSndShmemInit();
	WalRcvShmemInit();
	PgArchShmemInit();
	ApplyLauncherShmemInit();
	SnapMgrInit();
	BTreeShmemInit();
	SyncScanShmemInit();
}

static void
wr_startup(const char *argv0)
{
	MyProcPid = getpid();
	MemoryContextInit();
	InitStandaloneProcess(argv0);
	SetProcessingMode(InitProcessing);
	InitializeGUCOptions();
	SetConfigOption("log_min_messages", "warning", PGC_POSTMASTER, PGC_S_ARGV);
	SetConfigOption("client_min_messages", "warning", PGC_POSTMASTER, PGC_S_ARGV);
	SetConfigOption("log_line_prefix", "", PGC_POSTMASTER, PGC_S_ARGV);
	SetConfigOption("shared_buffers", "128", PGC_POSTMASTER, PGC_S_ARGV);
	SetConfigOption("max_connections", "1", PGC_POSTMASTER, PGC_S_ARGV);
	SetConfigOption("max_worker_processes", "0", PGC_POSTMASTER, PGC_S_ARGV);
	SetConfigOption("max_wal_senders", "0", PGC_POSTMASTER, PGC_S_ARGV);
	SetConfigOption("max_prepared_transactions", "0", PGC_POSTMASTER, PGC_S_ARGV);
	SetConfigOption("autovacuum_max_workers", "1", PGC_POSTMASTER, PGC_S_ARGV);
	InitializeMaxBackends();
	process_shmem_requests();
	wr_shmem_init();
	InitAuxiliaryProcess();
	InitFileAccess();
	smgrinit();
	InitBufferPoolAccess();
	SetProcessingMode(NormalProcessing);
	InRecovery = true;
	/* A page a record needs that is not there is an error, not skipped. */
	reachedConsistency = true;
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "argon-walredo");
	for (int rmid = 0; rmid <= RM_MAX_ID; rmid++)
		if (RmgrIdExists(rmid) && GetRmgr(rmid).rm_startup != NULL)
			GetRmgr(rmid).rm_startup();
	reader = XLogReaderAllocate(wal_segment_size, NULL, XL_ROUTINE(), NULL);
	if (reader == NULL)
		wr_die("out of memory allocating the WAL reader");
	record_ctx = AllocSetContextCreate(TopMemoryContext, "argon-walredo record",
									   ALLOCSET_DEFAULT_SIZES);
	inbuf = malloc(WR_INPUT_MAX);
	if (inbuf == NULL)
		wr_die("out of memory allocating the input buffer");
}

static void
wr_sandbox(void)
{
#if AR_HAVE_SECCOMP
	static const int allowed[] = {
		SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(exit), SCMP_SYS(exit_group),
		SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap),
		SCMP_SYS(madvise), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
		SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(getpid),
		SCMP_SYS(futex),
	};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int			rc = ctx ? 0 : -ENOMEM;

	for (size_t i = 0; rc == 0 && i < lengthof(allowed); i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	/* abort() after a PANIC: SIGABRT to this thread only. */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(gettid), 0);
	if (rc == 0)
	{
		struct scmp_arg_cmp self = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) getpid());
		struct scmp_arg_cmp abrt = SCMP_A2(SCMP_CMP_EQ, SIGABRT);

		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 2, self, abrt);
	}
	if (rc == 0)
		rc = seccomp_load(ctx);
	if (ctx)
		seccomp_release(ctx);
	if (rc < 0)
		wr_die("could not enter the seccomp sandbox: %s", strerror(-rc));
#endif
}

/* ---- the loop ---- */

static void
wr_serve(bool test_commands)
{
	for (;;)
	{
		char		type;
		uint32		len;
		const char *payload;

		if (!wr_fill(5))
			break;
		type = inbuf[in_start];
		len = wr_be32(inbuf + in_start + 1);
		if (len < 4 || len > AR_WALREDO_MESSAGE_MAX)
			wr_die("message '%c' with length %u", type, len);
		if (!wr_fill(1 + len))
			wr_die("the request pipe closed inside a '%c' message", type);
		payload = inbuf + in_start + 5;
		len -= 4;
		switch (type)
		{
			case AR_WALREDO_BEGIN:
				if (len != AR_WALREDO_TAG_BYTES)
					wr_die("a begin message of %u bytes", len);
				walredo_md_begin(wr_tag(payload));
				break;
			case AR_WALREDO_PUSH:
				if (len != AR_WALREDO_TAG_BYTES + BLCKSZ)
					wr_die("a push-page message of %u bytes", len);
				walredo_md_push(wr_tag(payload), payload + AR_WALREDO_TAG_BYTES);
				break;
			case AR_WALREDO_APPLY:
				wr_apply(payload, len);
				break;
			case AR_WALREDO_GET:
				if (len != AR_WALREDO_TAG_BYTES)
					wr_die("a get-page message of %u bytes", len);
				wr_reply(walredo_md_get(wr_tag(payload)), BLCKSZ);
				break;
			case AR_WALREDO_PING:
				wr_reply(payload, len);
				break;
			case AR_WALREDO_MASK:
				wr_mask(payload, len);
				break;
			case AR_WALREDO_STATS:
				wr_stats();
				break;
			case AR_WALREDO_TEST_FORBIDDEN:
				if (!test_commands)
					wr_die("message 'Z' needs --test-commands");
				/* Outside the allow-list: the kernel kills the process. */
				(void) socket(AF_INET, SOCK_STREAM, 0);
				wr_die("socket() was allowed: the sandbox is %s",
					   AR_HAVE_SECCOMP ? "not working" : "not built in");
			default:
				wr_die("unknown message type 0x%02x", (unsigned char) type);
		}
		in_start += 1 + 4 + len;
	}
	wr_flush();
}

int
main(int argc, char **argv)
{
	bool		test_commands = false;

	/* Descriptors the page server did not mean to pass: close them first. */
	close_range(3, ~0U, 0);
	if (argc == 2 && strcmp(argv[1], "--version") == 0)
	{
		printf("argon-walredo (PostgreSQL %s redo) sandbox: %s\n", PG_VERSION,
			   AR_HAVE_SECCOMP ? "seccomp" : "none");
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--test-commands") == 0)
		test_commands = true;
	else if (argc != 1)
	{
		fprintf(stderr, "usage: argon-walredo [--test-commands | --version]\n");
		return 2;
	}
	wr_startup(argv[0]);
	wr_sandbox();
	{
		sigjmp_buf	jump;

		/* An ERROR in redo: report it (with its CONTEXT line) and end. */
		if (sigsetjmp(jump, 1) != 0)
		{
			EmitErrorReport();
			fflush(stderr);
			_exit(1);
		}
		PG_exception_stack = &jump;
		wr_serve(test_commands);
	}
	return 0;
}
