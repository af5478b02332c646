/*
 * live.c - The ingest half of a live timeline (see live.h): the durable log
 * replayed on start, then what the receiver makes durable decoded page by page
 * (the newest page as far as it is durable) and ingested; layers flushed and
 * compacted between batches; next_lsn persisted and the log trimmed at
 * checkpoints; page reads and branches run here for the management API.
 */
#include "ingest/live_int.h"

#include "common/bytes.h"
#include "common/err.h"
#include "common/assert.h"
#include "common/log.h"
#include "ingest/import.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define RECORDS_PER_BACKGROUND 4096
/* access/xact.h facts: xl_info op bits, and xinfo after the commit time. */
#define XACT_OPMASK 0x70
#define XACT_COMMIT 0x00
#define XACT_COMMIT_PREPARED 0x30
#define XACT_HAS_INFO 0x80
#define XACT_COMPLETION_APPLY_FEEDBACK (1u << 29)
#define RETRY_MS 1000

uint64_t live_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void live_config_default(struct live_config *c)
{
	*c = (struct live_config){ .receive = true,
				   .status_interval_ms = 10000,
				   .checkpoint_interval_ms = 10000,
				   .reconnect_max_ms = 5000 };
	store_options_default(&c->store);
}

const char *live_state_name(enum live_state s)
{
	static const char *const names[] = { "starting", "connecting", "streaming",
					     "waiting",  "stopped",    "idle" };
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

void live_set_error(struct live_tl *t, const char *fmt, ...)
{
	char text[LIVE_ERROR_BYTES], hex[33];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&t->mu);
	bool same = strcmp(t->error, text) == 0;
	snprintf(t->error, sizeof(t->error), "%s", text);
	pthread_mutex_unlock(&t->mu);
	tl_id_hex(&t->cfg.timeline, hex);
	if (!same)
		AR_LOG(WARNING, "live", "timeline %s: %s", hex, text);
}

void live_clear_error(struct live_tl *t)
{
	pthread_mutex_lock(&t->mu);
	t->error[0] = '\0';
	pthread_mutex_unlock(&t->mu);
}

/* ---- ingesting ---- */

struct feed {
	struct live_tl *t;
	struct wal_reader *r;
	struct wallog *log;
	ar_lsn page_lsn;     /* the page being fed */
	bool apply_feedback; /* a commit waits for the apply position */
	bool layer_error;    /* the error shown is a layer write that will be retried */
	uint64_t records_since;
	uint8_t page[WAL_PAGE_BYTES];
};

/* A commit whose backend waits for synchronous_commit = remote_apply: the
 * apply position is reported at once (as PostgreSQL's startup process asks its
 * walreceiver to); otherwise it goes with the next flush reply. */
static bool wants_apply_feedback(const struct wal_record *rec)
{
	uint8_t op = rec->info & XACT_OPMASK;
	if (rec->rmid != WAL_RM_XACT || (op != XACT_COMMIT && op != XACT_COMMIT_PREPARED) ||
	    !(rec->info & XACT_HAS_INFO) || rec->main_data_len < 12)
		return false;
	return (ar_get_le32(rec->main_data + 8) & XACT_COMPLETION_APPLY_FEEDBACK) != 0;
}

static int on_record(void *ctx, const struct wal_record *rec)
{
	struct feed *f = ctx;
	struct live_tl *t = f->t;
	int rc = wi_record(t->wi, rec);
	if (rc < 0)
		return rc;
	atomic_store(&t->ingested, rec->end_lsn);
	atomic_fetch_add(&t->records, 1);
	f->records_since++;
	f->apply_feedback |= wants_apply_feedback(rec);
	return 0;
}

/* A base backup without a manifest becomes consistent at the BACKUP_END record
 * naming its start. */
static bool note_consistency(struct live_tl *t)
{
	const struct wi_stats *ws = wi_stats(t->wi);
	if (t->st.consistent_lsn || !ws->backup_end_lsn ||
	    ws->backup_end_start != t->st.base_start_lsn)
		return false;
	t->st.consistent_lsn = ws->backup_end_lsn;
	return true;
}

/* Everything in memory into layers, next_lsn persisted, the log trimmed below
 * it.  The receiver's state is not touched. */
static int checkpoint(struct live_tl *t, ar_lsn next_lsn)
{
	char err[STORE_ERROR_BYTES];
	wi_maybe_freeze(t->wi, true);
	int rc = tl_flush(t->tl);
	if (rc == -EAGAIN)
		rc = store_background(t->store, t->tl, err); /* backpressure: compact first */
	else if (rc < 0)
		snprintf(err, sizeof(err), "flushing layers: %s",
			 tl_error(t->tl)[0] ? tl_error(t->tl) : strerror(-rc));
	if (rc < 0) {
		live_set_error(t, "checkpoint: %s", err);
		return rc;
	}
	if (tl_disk_consistent_lsn(t->tl) < tl_last_record_lsn(t->tl))
		return -EAGAIN; /* frozen layers still wait: next time */
	t->st.next_lsn = next_lsn;
	note_consistency(t);
	rc = store_state_write(t->store, &t->cfg.timeline, &t->st, err);
	if (rc < 0) {
		live_set_error(t, "checkpoint: %s", err);
		return rc;
	}
	atomic_store(&t->trim_lsn, next_lsn); /* the receiver trims the log below it */
	return 0;
}

/* Feed pages from f->page_lsn up to what is durable.  0: caught up (the last
 * page needs more); 1: stopped for background work; an error stops the
 * timeline. */
static int feed_durable(struct feed *f)
{
	struct live_tl *t = f->t;
	char err[WALLOG_ERROR_BYTES], a[STORE_LSN_TEXT_BYTES];
	for (;;) {
		ar_lsn flushed = atomic_load(&t->flushed);
		if (f->page_lsn >= flushed)
			return 0;
		uint32_t valid = flushed - f->page_lsn >= WAL_PAGE_BYTES
				     ? WAL_PAGE_BYTES
				     : (uint32_t)(flushed - f->page_lsn);
		int64_t n = wallog_read(f->log, t->st.pg_timeline, f->page_lsn, f->page,
					WAL_PAGE_BYTES, err);
		store_lsn_text(f->page_lsn, a);
		if (n < (int64_t)valid) {
			live_set_error(t, "reading the WAL log at %s: %s", a,
				       n < 0 ? err : "the segment is missing or short");
			return n < 0 ? (int)n : -EIO;
		}
		int rc = wal_reader_page_part(f->r, f->page, f->page_lsn, valid, on_record, f);
		if (rc == AR_WAL_MORE)
			return 0;
		if (rc == AR_WAL_END) {
			live_set_error(t,
				       "the WAL received ends at %s, before what the primary sent "
				       "(a recycled or zeroed page)",
				       a);
			return -AR_ECORRUPT;
		}
		if (rc < 0) {
			live_set_error(t, "%s",
				       t->wi && wi_error(t->wi)[0] ? wi_error(t->wi)
								   : wal_reader_error(f->r));
			return rc;
		}
		f->page_lsn += WAL_PAGE_BYTES;
		if (f->records_since >= RECORDS_PER_BACKGROUND)
			return 1; /* let the loop do background work */
	}
}

/* The log holds the page at f->page_lsn: its header names that address. */
static bool log_has_page(struct feed *f)
{
	char err[WALLOG_ERROR_BYTES];
	int64_t n =
	    wallog_read(f->log, f->t->st.pg_timeline, f->page_lsn, f->page, WAL_PAGE_BYTES, err);
	return n == WAL_PAGE_BYTES && ar_get_le16(f->page) == WAL_PAGE_MAGIC &&
	       ar_get_le64(f->page + 8) == f->page_lsn;
}

/* ---- the thread ---- */

/* Replay the durable log from next_lsn to its end (records in layers are
 * skipped); *end is where the first incomplete record starts. */
static int replay(struct live_tl *t, ar_lsn *end)
{
	struct wal_import_options o = { .chunk_bytes = 1u << 20, .queue_depth = 8 };
	struct wal_import_result res;
	char err[STORE_ERROR_BYTES];
	*end = t->st.next_lsn;
	if (access(t->log_dir, F_OK) < 0)
		return 0;
	memset(&res, 0, sizeof(res));
	int rc = wal_import(t->store, t->tl, t->wi, t->log_dir, &t->st, &o, &res, err);
	if (rc == -AR_ECORRUPT && !res.ingest_failed && res.next_lsn >= t->st.next_lsn) {
		/* A torn record at the end of what survived a crash: the log ends there.
		 * (Any other failure, an I/O error or a full disk, is not an end.) */
		AR_LOG(WARNING, "live", "the WAL log ends at an invalid record: %s", err);
		rc = 0;
	}
	if (rc < 0) {
		live_set_error(t, "replaying the WAL log: %s", err);
		return rc;
	}
	*end = res.next_lsn;
	AR_LOG(LOG, "live", "replayed the WAL log: %" PRIu64 " records, up to %X/%X",
	       wi_stats(t->wi)->records, (unsigned)(res.last_end_lsn >> 32),
	       (unsigned)res.last_end_lsn);
	return 0;
}

/* The submitted jobs (oldest first), then those waiting for WAL; each runs
 * once.  Without a store (stopping, or starting over) every job fails. */
static void run_jobs(struct live_tl *t, bool fail_all)
{
	pthread_mutex_lock(&t->mu);
	struct live_job *fresh = t->jobs;
	t->jobs = NULL;
	pthread_mutex_unlock(&t->mu);
	struct live_job *list = t->jobs_again, *rev = NULL;
	t->jobs_again = NULL;
	while (fresh) { /* newest first -> oldest first */
		struct live_job *j = fresh;
		fresh = j->next;
		j->next = rev;
		rev = j;
	}
	for (int pass = 0; pass < 2; pass++) {
		struct live_job *j = pass == 0 ? list : rev;
		while (j) {
			struct live_job *next = j->next;
			bool have = !fail_all && t->store && t->tl && t->wi;
			bool done =
			    have ? j->fn(j, t->store, t->tl, &t->st) : j->fn(j, NULL, NULL, NULL);
			AR_ASSERT(done || have);
			if (!done) {
				j->next = t->jobs_again;
				t->jobs_again = j;
			}
			j = next;
		}
	}
}

int live_submit(struct live_tl *t, struct live_job *job)
{
	pthread_mutex_lock(&t->mu);
	if (atomic_load(&t->stop) || t->jobs_closed) {
		pthread_mutex_unlock(&t->mu);
		return -ESHUTDOWN;
	}
	job->next = t->jobs;
	t->jobs = job;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	return 0;
}

static void run_command(struct live_tl *t)
{
	run_jobs(t, false);
	pthread_mutex_lock(&t->mu);
	struct live_cmd *c = t->cmd;
	pthread_mutex_unlock(&t->mu);
	if (!c)
		return;
	if (t->store && t->tl && t->wi) {
		c->rc = c->fn(c->ctx, t->store, t->tl, &t->st, c->err);
	} else {
		snprintf(c->err, STORE_ERROR_BYTES,
			 "the timeline is starting over after an "
			 "error; try again");
		c->rc = -EAGAIN;
	}
	pthread_mutex_lock(&t->mu);
	t->cmd = NULL;
	c->done = true;
	pthread_cond_broadcast(&t->cmd_cv);
	pthread_mutex_unlock(&t->mu);
}

/* Wait until the log grew past what was fed, a command or job came, or ms passed
 * (5 ms at most while jobs wait for WAL: they may wait on a deadline). */
static void wait_work(struct live_tl *t, ar_lsn fed_upto, uint32_t ms)
{
	if (t->jobs_again && ms > 5)
		ms = 5;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&t->mu);
	while (!atomic_load(&t->stop) && !t->cmd && !t->jobs &&
	       atomic_load(&t->flushed) <= fed_upto &&
	       pthread_cond_timedwait(&t->cv, &t->mu, &until) == 0) {
	}
	pthread_mutex_unlock(&t->mu);
}

static void poke_receiver(struct live_tl *t)
{
	uint64_t one = 1;
	if (write(t->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		AR_LOG(WARNING, "live", "waking the receiver: %s", strerror(errno));
}

/* Layers flushed and compacted between batches; an error here (a full disk)
 * is retried: what is in memory stays until it can be written. */
static void background(struct live_tl *t, struct feed *f)
{
	char err[STORE_ERROR_BYTES];
	wi_maybe_freeze(t->wi, false);
	if (store_background(t->store, t->tl, err) < 0) {
		live_set_error(t, "writing layers (will retry): %s", err);
		f->layer_error = true;
		wait_work(t, UINT64_MAX, RETRY_MS);
	} else if (f->layer_error) {
		f->layer_error = false;
		live_clear_error(t); /* written after all */
	}
	f->records_since = 0;
}

static bool receiving(struct live_tl *t)
{
	pthread_mutex_lock(&t->mu);
	bool attached = t->conninfo[0] != '\0';
	pthread_mutex_unlock(&t->mu);
	return attached && t->cfg.receive;
}

/* How a stretch of ingesting ended. */
enum ingest_end { INGEST_STOP, INGEST_FATAL, INGEST_RETRY };

/* A full disk while storing a record: what is in memory is dropped and the
 * timeline starts over from its durable state (the log and the layers), as
 * after a crash, once there may be room again. */
static bool retryable(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT;
}

static enum ingest_end ingest_loop(struct live_tl *t, struct feed *f)
{
	uint64_t last_cp = live_now_ns();
	while (!atomic_load(&t->stop)) {
		run_command(t);
		ar_lsn before = atomic_load(&t->ingested);
		ar_lsn seen = atomic_load(&t->flushed); /* fed up to at least this */
		int more = feed_durable(f);
		if (more < 0)
			return retryable(more) ? INGEST_RETRY : INGEST_FATAL;
		if (f->apply_feedback && atomic_load(&t->ingested) != before)
			poke_receiver(t);
		f->apply_feedback = false;
		if (f->records_since)
			background(t, f);
		uint64_t now = live_now_ns();
		if (now - last_cp >= (uint64_t)t->cfg.checkpoint_interval_ms * 1000000u &&
		    wal_reader_next_lsn(f->r) > t->st.next_lsn) {
			if (checkpoint(t, wal_reader_next_lsn(f->r)) == 0) {
				last_cp = now;
				if (f->layer_error)
					live_clear_error(t);
				f->layer_error = false;
			} else {
				f->layer_error = true;
			}
		}
		if (!more)
			wait_work(t, seen, 200);
	}
	return INGEST_STOP;
}

static int prepare_log(struct live_tl *t, char err[WALLOG_ERROR_BYTES])
{
	struct wallog *log = NULL;
	int rc = wallog_open(t->store->vfs, t->log_dir, t->seg_bytes, true, &log, err);
	if (rc == 0)
		rc = wallog_sync_from(log, t->st.next_lsn, err);
	wallog_close(log);
	if (rc < 0)
		live_set_error(t, "preparing the WAL log: %s", err);
	return rc < 0 ? rc : 0;
}

/* Open the durable log for reading (made, and cleared of a crash's leftovers,
 * before the receiver runs), replay it, and set the positions from it. */
static int ingest_start(struct live_tl *t, struct feed *f)
{
	char err[WALLOG_ERROR_BYTES];
	ar_lsn end = 0;
	/* With no receiver running (a process start): the log made, cleared of a
	 * crash's leftovers and synced (what a dead process wrote but never
	 * flushed is about to be counted durable).  A restart after a full disk
	 * leaves the log to the receiver, its one writer. */
	int rc = t->rcv_running ? 0 : prepare_log(t, err);
	if (rc == 0)
		rc = replay(t, &end);
	if (rc == 0)
		rc = wal_reader_create(end, t->seg_bytes, &f->r);
	if (rc == 0) {
		wal_reader_expect_system(f->r, t->system_id);
		rc = wallog_open(t->store->vfs, t->log_dir, t->seg_bytes, false, &f->log, err);
		if (rc < 0)
			live_set_error(t, "opening the WAL log: %s", err);
	}
	if (rc < 0)
		return rc;
	f->t = t;
	/* Everything below end is durable in the log, when the log holds the page
	 * end is on (a fresh timeline's log is empty: that page then comes from
	 * the primary first).  The receiver starts at that page. */
	f->page_lsn = end - end % WAL_PAGE_BYTES;
	atomic_store(&t->ingested, tl_last_record_lsn(t->tl));
	if (t->rcv_running)
		return 0; /* a restart: the receiver kept the log going, its positions stand */
	ar_lsn durable = log_has_page(f) ? end : f->page_lsn;
	atomic_store(&t->flushed, durable);
	atomic_store(&t->received, durable);
	if (receiving(t))
		rc = live_receiver_start(t);
	atomic_store(&t->state, receiving(t) ? LIVE_CONNECTING : LIVE_IDLE);
	return rc;
}

static void feed_reset(struct feed *f)
{
	wallog_close(f->log);
	wal_reader_destroy(f->r);
	memset(f, 0, sizeof(*f));
}

static int open_store(struct live_tl *t, char err[LIVE_ERROR_BYTES]);

static void close_store(struct live_tl *t)
{
	wi_destroy(t->wi);
	store_close(t->store);
	t->wi = NULL;
	t->store = NULL;
	t->tl = NULL;
}

/* After a full disk: drop memory, wait, reopen the store and replay.  The
 * receiver goes on filling the durable log while it has room, so the primary's
 * commits go on as long as the WAL can be kept. */
static int ingest_restart(struct live_tl *t, struct feed *f)
{
	char err[LIVE_ERROR_BYTES] = "";
	feed_reset(f);
	close_store(t);
	for (int i = 0; i < RETRY_MS / 100 && !atomic_load(&t->stop); i++) {
		run_command(t); /* refused while the store is closed */
		struct timespec pause = { 0, 100 * 1000000L };
		nanosleep(&pause, NULL);
	}
	if (atomic_load(&t->stop))
		return -ESHUTDOWN;
	int rc = open_store(t, err);
	if (rc < 0) {
		close_store(t); /* what was opened of it */
		live_set_error(t, "reopening the store: %s", err);
		return rc;
	}
	rc = ingest_start(t, f);
	if (rc == 0)
		live_clear_error(t); /* the disk has room again */
	return rc;
}

static void *ingest_main(void *arg)
{
	struct live_tl *t = arg;
	struct feed *f = calloc(1, sizeof(*f));
	int rc = f ? ingest_start(t, f) : -ENOMEM;
	enum ingest_end why =
	    rc < 0 ? (retryable(rc) ? INGEST_RETRY : INGEST_FATAL) : ingest_loop(t, f);
	while (why == INGEST_RETRY) {
		AR_LOG(WARNING, "live", "the ingest starts over from the durable log in %d ms",
		       RETRY_MS);
		rc = ingest_restart(t, f);
		why = rc == -ESHUTDOWN ? INGEST_STOP
		      : rc < 0         ? (retryable(rc) ? INGEST_RETRY : INGEST_FATAL)
				       : ingest_loop(t, f);
	}
	live_receiver_stop(t);
	if (why == INGEST_FATAL) {
		atomic_store(&t->ingest_dead, true);
		atomic_store(&t->state, LIVE_STOPPED);
		while (!atomic_load(&t->stop)) { /* still serve reads (or refuse them) */
			run_command(t);
			wait_work(t, UINT64_MAX, 200);
		}
	} else if (t->store && f->r) {
		checkpoint(t, wal_reader_next_lsn(f->r));
	}
	pthread_mutex_lock(&t->mu);
	t->jobs_closed = true; /* no job is queued after this... */
	pthread_mutex_unlock(&t->mu);
	run_jobs(t, true); /* ...and every one queued before fails */
	if (f)
		feed_reset(f);
	free(f);
	return NULL;
}

/* ---- the API ---- */

/* The slot and application names: given, or "argon_" and the timeline ID's
 * last 12 hex digits (its distinct end, for IDs like 000...01). */
static void names_for(const struct live_tl *t, const char *slot, const char *appname,
		      char slot_out[64], char app_out[64])
{
	char hex[33];
	tl_id_hex(&t->cfg.timeline, hex);
	snprintf(slot_out, 64, slot && slot[0] ? "%s" : "argon_%s",
		 slot && slot[0] ? slot : hex + 20);
	snprintf(app_out, 64, appname && appname[0] ? "%s" : "argon_%s",
		 appname && appname[0] ? appname : hex + 20);
}

static void default_names(struct live_tl *t, const char *slot, const char *appname)
{
	names_for(t, slot, appname, t->slot, t->appname);
}

/* PostgreSQL's rule for slot names; an application name goes into a
 * connection string and must not be able to leave its quotes either. */
static bool valid_name(const char *name, bool slot)
{
	size_t n = strlen(name);
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
			  (!slot && ((c >= 'A' && c <= 'Z') || c == '-' || c == '.'));
		if (!ok)
			return false;
	}
	return true;
}

static int open_store(struct live_tl *t, char err[LIVE_ERROR_BYTES])
{
	char serr[STORE_ERROR_BYTES], hex[33];
	struct store_options so = t->cfg.store;
	so.datadir_held = true;
	int rc = store_open(t->data_dir, &t->cfg.tenant, false, &so, &t->store, serr);
	if (rc == 0) {
		t->tl = tenant_timeline(t->store->tenant, &t->cfg.timeline);
		tl_id_hex(&t->cfg.timeline, hex);
		if (!t->tl) {
			snprintf(serr, sizeof(serr), "unknown timeline %s", hex);
			rc = -AR_ENOTIMELINE;
		}
	}
	if (rc == 0)
		rc = store_state_read(t->store, &t->cfg.timeline, &t->st, serr);
	struct wi_target target = { .map = { .shard_count = 1 } };
	target.shards[0] = t->tl;
	if (rc == 0 && (rc = wi_create(&target, &t->wi)) < 0)
		snprintf(serr, sizeof(serr), "starting the ingest: %s", strerror(-rc));
	if (rc < 0)
		snprintf(err, LIVE_ERROR_BYTES, "%s", serr);
	return rc;
}

int live_start(const struct live_config *c, struct live_tl **out, char err[LIVE_ERROR_BYTES])
{
	err[0] = '\0';
	struct live_tl *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->cfg = *c;
	t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	pthread_cond_init(&t->cmd_cv, NULL);
	snprintf(t->data_dir, sizeof(t->data_dir), "%s", c->data_dir);
	char th[33], lh[33];
	tl_id_hex(&c->tenant, th);
	tl_id_hex(&c->timeline, lh);
	snprintf(t->log_dir, sizeof(t->log_dir), "%s/wal/%s/%s", c->data_dir, th, lh);
	atomic_store(&t->last_message_ns, -1);
	int rc = t->wake_fd < 0 ? -errno : open_store(t, err);
	if (rc == 0) {
		t->system_id = t->st.system_id;
		t->seg_bytes = t->st.seg_bytes;
		t->tli = t->st.pg_timeline;
		snprintf(t->conninfo, sizeof(t->conninfo), "%s", t->st.primary_conninfo);
		default_names(t, t->st.slot_name, t->st.application_name);
		atomic_store(&t->state, LIVE_STARTING);
		rc = -pthread_create(&t->ing_thread, NULL, ingest_main, t);
		t->ing_running = rc == 0;
	}
	if (rc < 0) {
		if (!err[0])
			snprintf(err, LIVE_ERROR_BYTES, "starting the timeline: %s", strerror(-rc));
		live_stop(t);
		return rc;
	}
	*out = t;
	return 0;
}

void live_stop(struct live_tl *t)
{
	if (!t)
		return;
	atomic_store(&t->stop, true);
	pthread_mutex_lock(&t->mu);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	if (t->ing_running)
		pthread_join(t->ing_thread, NULL);
	live_receiver_stop(t);
	close_store(t);
	if (t->wake_fd >= 0)
		close(t->wake_fd);
	pthread_cond_destroy(&t->cmd_cv);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* The conninfo without its password (shown in the status). */
/* The end of a conninfo value starting at v: quoted ('...' with \' escapes),
 * or up to a space (or '&' in a URI's query). */
static const char *value_end(const char *v)
{
	if (*v != '\'')
		return v + strcspn(v, " \t&");
	for (v++; *v && *v != '\''; v++)
		if (*v == '\\' && v[1])
			v++;
	return *v ? v + 1 : v;
}

/* Where a password value starts at p ("password = value"), or NULL. */
static const char *password_value(const char *p)
{
	if (strncmp(p, "password", 8) != 0)
		return NULL;
	const char *v = p + 8 + strspn(p + 8, " \t");
	return *v == '=' ? v + 1 + strspn(v + 1, " \t") : NULL;
}

/* The conninfo with every password shown as ***: "password = value" in the
 * keyword form (also a URI's query), "user:secret@" in a URI. */
static void redact(const char *in, char *out, size_t n)
{
	size_t o = 0;
	const char *scheme = strstr(in, "://");
	const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
	const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
	const char *hide_from = colon ? colon + 1 : NULL, *hide_to = at;
	for (const char *p = in; *p && o + 4 < n;) {
		const char *v = password_value(p);
		if (v) {
			while (p < v && o + 4 < n)
				out[o++] = *p++;
			hide_from = v;
			hide_to = value_end(v);
		}
		if (p == hide_from) {
			memcpy(out + o, "***", 3);
			o += 3;
			p = hide_to;
			hide_from = NULL;
			continue;
		}
		out[o++] = *p++;
	}
	out[o] = '\0';
}

void live_status(struct live_tl *t, struct live_status *o)
{
	memset(o, 0, sizeof(*o));
	o->state = (enum live_state)atomic_load(&t->state);
	o->received = atomic_load(&t->received);
	o->flushed = atomic_load(&t->flushed);
	o->ingested = atomic_load(&t->ingested);
	o->primary = atomic_load(&t->primary);
	o->connects = atomic_load(&t->connects);
	o->flushes = atomic_load(&t->flushes);
	o->replies = atomic_load(&t->replies);
	o->records = atomic_load(&t->records);
	int64_t last = atomic_load(&t->last_message_ns);
	o->last_message_age_ms =
	    last < 0 ? -1 : (int64_t)(live_now_ns() - (uint64_t)last) / 1000000;
	o->system_id = t->system_id;
	pthread_mutex_lock(&t->mu);
	o->pg_timeline = t->tli;
	redact(t->conninfo, o->primary_conninfo, sizeof(o->primary_conninfo));
	snprintf(o->slot_name, sizeof(o->slot_name), "%s", t->slot);
	snprintf(o->application_name, sizeof(o->application_name), "%s", t->appname);
	snprintf(o->error, sizeof(o->error), "%s", t->error);
	pthread_mutex_unlock(&t->mu);
}

const struct tl_id *live_tenant(const struct live_tl *t)
{
	return &t->cfg.tenant;
}

const struct tl_id *live_timeline(const struct live_tl *t)
{
	return &t->cfg.timeline;
}

int live_call(struct live_tl *t, live_fn *fn, void *ctx, char err[STORE_ERROR_BYTES])
{
	struct live_cmd c = { .fn = fn, .ctx = ctx, .err = err };
	err[0] = '\0';
	pthread_mutex_lock(&t->mu);
	while (t->cmd && !atomic_load(&t->stop))
		pthread_cond_wait(&t->cmd_cv, &t->mu);
	if (atomic_load(&t->stop)) {
		pthread_mutex_unlock(&t->mu);
		snprintf(err, STORE_ERROR_BYTES, "the timeline is stopping");
		return -ESHUTDOWN;
	}
	t->cmd = &c;
	pthread_cond_broadcast(&t->cv);
	while (!c.done)
		pthread_cond_wait(&t->cmd_cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
	return c.rc;
}

struct attach_ctx {
	struct live_tl *t;
	const char *conninfo, *slot, *appname;
};

/* On the ingest thread (which owns the receiver's lifecycle): the attachment is
 * persisted with the ingest state, then the receiver (re)starts with it. */
static int attach_on_thread(void *ctx, struct ar_store *s, struct ar_timeline *tl,
			    const struct ingest_state *st, char err[STORE_ERROR_BYTES])
{
	(void)tl;
	(void)st;
	struct attach_ctx *a = ctx;
	struct live_tl *t = a->t;
	struct ingest_state nst = t->st;
	snprintf(nst.primary_conninfo, sizeof(nst.primary_conninfo), "%s", a->conninfo);
	names_for(t, a->slot, a->appname, nst.slot_name, nst.application_name);
	if (!valid_name(nst.slot_name, true) || !valid_name(nst.application_name, false)) {
		snprintf(err, STORE_ERROR_BYTES,
			 "slot names take 1 to 63 of a-z, 0-9 and _; application names also A-Z, "
			 "- and .");
		return -EINVAL;
	}
	/* Persisted first: if that fails, the receiver streams on as it was. */
	int rc = store_state_write(s, &t->cfg.timeline, &nst, err);
	if (rc < 0)
		return rc;
	t->st = nst;
	live_receiver_stop(t);
	pthread_mutex_lock(&t->mu);
	snprintf(t->conninfo, sizeof(t->conninfo), "%s", a->conninfo);
	default_names(t, nst.slot_name, nst.application_name);
	t->error[0] = '\0';
	pthread_mutex_unlock(&t->mu);
	if (!t->cfg.receive) {
		atomic_store(&t->state, LIVE_IDLE);
		return 0;
	}
	atomic_store(&t->state, LIVE_CONNECTING); /* before the receiver may set its own */
	rc = live_receiver_start(t);
	if (rc < 0)
		snprintf(err, STORE_ERROR_BYTES, "starting the receiver: %s", strerror(-rc));
	return rc;
}

int live_attach(struct live_tl *t, const char *conninfo, const char *slot,
		const char *application_name, char err[LIVE_ERROR_BYTES])
{
	char serr[STORE_ERROR_BYTES];
	if (!conninfo || !conninfo[0] || strlen(conninfo) >= sizeof(t->conninfo)) {
		snprintf(err, LIVE_ERROR_BYTES,
			 "a primary connection string (under %zu bytes) is needed",
			 sizeof(t->conninfo));
		return -EINVAL;
	}
	if (atomic_load(&t->ingest_dead)) {
		snprintf(err, LIVE_ERROR_BYTES,
			 "the timeline's ingest stopped on an error; restart the server after "
			 "fixing it");
		return -EBUSY;
	}
	struct attach_ctx a = {
		.t = t, .conninfo = conninfo, .slot = slot, .appname = application_name
	};
	int rc = live_call(t, attach_on_thread, &a, serr);
	if (rc < 0)
		snprintf(err, LIVE_ERROR_BYTES, "%s", serr);
	return rc;
}
