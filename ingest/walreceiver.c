/*
 * walreceiver.c - The receiving half of a live timeline (see live.h): a libpq
 * connection in replication mode, WAL into the durable log, fsync in groups,
 * a standby status reply after each group.
 *
 * Protocol facts (PostgreSQL's streaming replication protocol): in CopyBoth,
 * 'w' XLogData = start, walEnd, sendTime (3 × int64, big-endian) + WAL bytes;
 * 'k' keepalive = walEnd, sendTime, replyRequested (1 byte); our 'r' reply =
 * write, flush, apply, sendTime (µs since 2000-01-01), replyRequested.
 *
 * Group commit: the loop drains every message libpq has (up to GROUP_BYTES),
 * writes each to the log, then fsyncs once and replies.  WAL arriving during
 * the fsync waits in the socket for the next group.
 */
#include "ingest/live_int.h"

#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define GROUP_BYTES (4u << 20)
#define XLOGDATA_HEADER 25
#define KEEPALIVE_BYTES 18
#define PG_EPOCH_UNIX_SECONDS 946684800LL
#define RECONNECT_MIN_MS 100
#define SILENCE_MS 60000

/* How a session ended. */
enum session_end {
	SESSION_RETRY = 1, /* connection trouble, the log, a primary restart: try again */
	SESSION_FATAL,     /* a stream Argon must not follow: stop the timeline */
	SESSION_STOP,      /* asked to stop */
};

struct session {
	struct live_tl *t;
	PGconn *conn;
	struct ar_vfs *vfs;
	struct wallog *log;
	uint32_t tli;
	ar_lsn start;
	uint64_t last_reply_ns;
	ar_lsn last_reply_apply;
	bool streamed; /* got WAL in this session: the backoff starts over */
	bool poked;    /* the ingest asked for an apply report */
	bool more;     /* the last drain stopped at a full group */
	bool broken;   /* the connection broke after the group drained */
	bool pinged;   /* a reply asked the silent primary to answer */
	uint8_t *buf;  /* WAL gathered since the last write (GROUP_BYTES) */
	size_t buf_len;
	ar_lsn buf_lsn;
	ar_lsn trimmed;
	uint64_t started_ns;
};

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* The first line of libpq's message, without its newline. */
static const char *pq_message(PGconn *conn)
{
	static _Thread_local char line[300];
	snprintf(line, sizeof(line), "%s", conn ? PQerrorMessage(conn) : "out of memory");
	line[strcspn(line, "\n")] = '\0';
	return line;
}

static int fail(struct session *s, enum session_end end, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct session *s, enum session_end end, const char *fmt, ...)
{
	char text[LIVE_ERROR_BYTES];
	/* Being stopped (by the ingest's own error, or a shutdown): its error stays. */
	if (atomic_load(&s->t->rcv_stop) || atomic_load(&s->t->stop) ||
	    atomic_load(&s->t->state) == LIVE_STOPPED)
		return end;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	live_set_error(s->t, "%s", text);
	return end;
}

/* The connection went: the error names the LSN received up to and libpq's
 * reason (how, when it matters: " (sending a status reply)"). */
static int broke(struct session *s, const char *how)
{
	ar_lsn at = atomic_load(&s->t->received);
	return fail(s, SESSION_RETRY, "the connection to the primary broke at %X/%X%s: %s",
		    (unsigned)(at >> 32), (unsigned)at, how, pq_message(s->conn));
}

/* ---- status replies ---- */

static int send_reply(struct session *s, bool reply_requested)
{
	uint8_t msg[34];
	struct live_tl *t = s->t;
	ar_lsn apply = atomic_load(&t->ingested);
	int64_t now_us = (int64_t)(live_now_ns() / 1000) - PG_EPOCH_UNIX_SECONDS * 1000000;
	msg[0] = 'r';
	put_be64(msg + 1, atomic_load(&t->received));
	put_be64(msg + 9, atomic_load(&t->flushed));
	put_be64(msg + 17, apply);
	put_be64(msg + 25, (uint64_t)now_us);
	msg[33] = reply_requested;
	if (PQputCopyData(s->conn, (const char *)msg, sizeof(msg)) != 1 || PQflush(s->conn) < 0)
		return broke(s, " (sending a status reply)");
	s->last_reply_ns = live_now_ns();
	s->last_reply_apply = apply;
	atomic_fetch_add(&t->replies, 1);
	return 0;
}

/* ---- the stream ---- */

/* Write the gathered WAL to the log (one write per group, not per message). */
static int write_out(struct session *s)
{
	struct live_tl *t = s->t;
	char a[STORE_LSN_TEXT_BYTES], err[WALLOG_ERROR_BYTES];
	if (!s->buf_len)
		return 0;
	if (wallog_write(s->log, s->tli, s->buf_lsn, s->buf, s->buf_len, err) < 0) {
		store_lsn_text(s->buf_lsn, a);
		s->buf_len = 0;
		return fail(s, SESSION_RETRY, "writing WAL at %s to the log: %s", a, err);
	}
	ar_lsn end = s->buf_lsn + s->buf_len;
	if (end > atomic_load(&t->received))
		atomic_store(&t->received, end);
	s->buf_len = 0;
	return 0;
}

static int on_xlogdata(struct session *s, const uint8_t *m, int len)
{
	char a[STORE_LSN_TEXT_BYTES], b[STORE_LSN_TEXT_BYTES];
	if (len < XLOGDATA_HEADER)
		return fail(s, SESSION_RETRY, "a WAL data message of %d bytes is too short", len);
	ar_lsn start = be64(m + 1),
	       have = s->buf_len ? s->buf_lsn + s->buf_len : atomic_load(&s->t->received);
	atomic_store(&s->t->primary, be64(m + 9));
	if (start > have) {
		store_lsn_text(start, a);
		store_lsn_text(have, b);
		return fail(s, SESSION_FATAL, "the primary sent WAL at %s, leaving a gap after %s",
			    a, b);
	}
	size_t n = (size_t)len - XLOGDATA_HEADER;
	s->streamed = true;
	if (s->buf_len && (start != have || s->buf_len + n > GROUP_BYTES)) {
		int rc = write_out(s);
		if (rc)
			return rc;
	}
	if (!s->buf_len)
		s->buf_lsn = start;
	if (n > GROUP_BYTES) { /* larger than any message PostgreSQL sends: written as it is */
		char err[WALLOG_ERROR_BYTES];
		if (wallog_write(s->log, s->tli, start, m + XLOGDATA_HEADER, n, err) < 0)
			return fail(s, SESSION_RETRY, "writing WAL to the log: %s", err);
		if (start + n > atomic_load(&s->t->received))
			atomic_store(&s->t->received, start + n);
		return 0;
	}
	memcpy(s->buf + s->buf_len, m + XLOGDATA_HEADER, n);
	s->buf_len += n;
	return 0;
}

static int on_message(struct session *s, const uint8_t *m, int len, bool *reply_now)
{
	atomic_store(&s->t->last_message_ns, (int64_t)live_now_ns());
	if (len >= 1 && m[0] == 'w')
		return on_xlogdata(s, m, len);
	if (len >= KEEPALIVE_BYTES && m[0] == 'k') {
		atomic_store(&s->t->primary, be64(m + 1));
		if (m[17])
			*reply_now = true;
		return 0;
	}
	return fail(s, SESSION_RETRY,
		    "unexpected message '%c' of %d bytes in the replication stream",
		    len > 0 && m[0] >= 0x20 && m[0] < 0x7f ? m[0] : '?', len);
}

/* The ingest persisted a checkpoint: segments below it are not needed. */
static void trim(struct session *s)
{
	char err[WALLOG_ERROR_BYTES];
	ar_lsn below = atomic_load(&s->t->trim_lsn);
	if (below <= s->trimmed)
		return;
	if (wallog_trim(s->log, below - below % s->t->seg_bytes, err) < 0)
		AR_LOG(WARNING, "live", "trimming the WAL log: %s", err);
	s->trimmed = below;
}

/* Make what was written durable, then say so. */
static int flush_group(struct session *s)
{
	struct live_tl *t = s->t;
	char err[WALLOG_ERROR_BYTES], a[STORE_LSN_TEXT_BYTES];
	int wrc = write_out(s);
	if (wrc)
		return wrc;
	ar_lsn upto = atomic_load(&t->received);
	if (upto <= atomic_load(&t->flushed))
		return 0;
	if (wallog_flush(s->log, err) < 0) {
		store_lsn_text(upto, a);
		return fail(s, SESSION_RETRY, "flushing the WAL log up to %s: %s", a, err);
	}
	atomic_store(&t->flushed, upto);
	atomic_fetch_add(&t->flushes, 1);
	trim(s);
	pthread_mutex_lock(&t->mu);
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	return send_reply(s, false);
}

/* Everything libpq holds now, written to the log (at most GROUP_BYTES). */
static int drain(struct session *s, bool *reply_now, bool *copy_done)
{
	uint64_t bytes = 0;
	s->more = false;
	while (bytes < GROUP_BYTES) {
		char *buf = NULL;
		int n = PQgetCopyData(s->conn, &buf, 1);
		if (n == 0) {
			/* libpq holds what one read gave: read the socket again, so the
			 * group takes everything that came in during the last fsync. */
			if (!PQconsumeInput(s->conn)) {
				s->broken = true; /* after this group is made durable */
				return 0;
			}
			n = PQgetCopyData(s->conn, &buf, 1);
			if (n == 0)
				return 0;
		}
		if (n == -1) {
			*copy_done = true;
			return 0;
		}
		if (n < 0)
			return broke(s, "");
		int rc = on_message(s, (const uint8_t *)buf, n, reply_now);
		PQfreemem(buf);
		if (rc)
			return rc;
		bytes += (uint64_t)n;
	}
	s->more = true; /* a full group: libpq may hold more, do not wait for the socket */
	return 0;
}

/* Wait for the socket, the wake-up eventfd, or the next reply's time. */
static int wait_input(struct session *s)
{
	struct live_tl *t = s->t;
	uint64_t due = s->last_reply_ns + (uint64_t)t->cfg.status_interval_ms * 1000000u;
	uint64_t now = live_now_ns();
	int timeout = now >= due || s->more ? 0 : (int)((due - now) / 1000000u) + 1;
	struct pollfd p[2] = { { .fd = PQsocket(s->conn), .events = POLLIN },
			       { .fd = t->wake_fd, .events = POLLIN } };
	int rc = poll(p, 2, timeout);
	if (rc < 0 && errno != EINTR)
		return fail(s, SESSION_RETRY, "poll: %s", strerror(errno));
	if (p[1].revents & POLLIN) {
		uint64_t v;
		if (read(t->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return fail(s, SESSION_RETRY, "eventfd: %s", strerror(errno));
		s->poked = true;
	}
	if (atomic_load(&t->rcv_stop) || atomic_load(&t->stop))
		return SESSION_STOP;
	if ((p[0].revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(s->conn))
		return broke(s, "");
	return 0;
}

/* The primary ended the stream: a timeline switch (a row naming the next
 * timeline and where it starts), or a shutdown. */
static int end_of_stream(struct session *s)
{
	PQputCopyEnd(s->conn, NULL);
	PQflush(s->conn);
	uint32_t next_tli = 0;
	ar_lsn next_start = 0;
	for (PGresult *r; (r = PQgetResult(s->conn)) != NULL; PQclear(r)) {
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		    PQnfields(r) >= 2) {
			next_tli = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
			if (!store_parse_lsn(PQgetvalue(r, 0, 1), &next_start))
				next_tli = 0;
		}
	}
	if (!next_tli)
		return fail(s, SESSION_RETRY, "the primary ended the replication stream (%s)",
			    PQstatus(s->conn) == CONNECTION_OK ? "shutting down?"
							       : pq_message(s->conn));
	char a[STORE_LSN_TEXT_BYTES];
	store_lsn_text(next_start, a);
	return fail(s, SESSION_FATAL,
		    "the primary switched from timeline %u to timeline %u at %s; following a "
		    "timeline switch is not supported yet",
		    s->tli, next_tli, a);
}

/* A primary that says nothing for SILENCE_MS/2 is asked to answer (a reply
 * with replyRequested); one silent for SILENCE_MS is gone (a network
 * partition leaves the socket open), as PostgreSQL's wal_receiver_timeout. */
static int check_silence(struct session *s)
{
	int64_t last = atomic_load(&s->t->last_message_ns);
	uint64_t since = last < 0 || (uint64_t)last < s->started_ns
			     ? live_now_ns() - s->started_ns
			     : live_now_ns() - (uint64_t)last;
	if (since < SILENCE_MS / 2 * 1000000ull) {
		s->pinged = false;
		return 0;
	}
	if (since >= SILENCE_MS * 1000000ull)
		return fail(s, SESSION_RETRY,
			    "no message from the primary for %d s (at %X/%X): reconnecting",
			    SILENCE_MS / 1000, (unsigned)(atomic_load(&s->t->received) >> 32),
			    (unsigned)atomic_load(&s->t->received));
	if (!s->pinged) {
		s->pinged = true;
		return send_reply(s, true);
	}
	return 0;
}

static int stream(struct session *s)
{
	struct live_tl *t = s->t;
	atomic_store(&t->state, LIVE_STREAMING);
	live_clear_error(t);
	int rc = send_reply(s, false); /* without it the primary shows us as async */
	while (rc == 0) {
		bool reply_now = false, copy_done = false;
		rc = wait_input(s);
		if (rc == 0)
			rc = drain(s, &reply_now, &copy_done);
		if (rc == 0)
			rc = flush_group(s);
		if (rc == 0 && s->broken)
			rc = broke(s, "");
		if (rc == 0)
			rc = check_silence(s);
		uint64_t due = s->last_reply_ns + (uint64_t)t->cfg.status_interval_ms * 1000000u;
		bool applied = s->poked && atomic_load(&t->ingested) != s->last_reply_apply;
		s->poked = false;
		if (rc == 0 && (reply_now || applied || live_now_ns() >= due))
			rc = send_reply(s, false);
		if (rc == 0 && copy_done)
			rc = end_of_stream(s);
	}
	return rc;
}

/* ---- connecting ---- */

/* Run a replication command; NULL (with the error set) unless it gave want. */
static PGresult *command(struct session *s, const char *sql, ExecStatusType want)
{
	PGresult *r = PQexec(s->conn, sql);
	if (r && PQresultStatus(r) == want)
		return r;
	fail(s, SESSION_RETRY, "%s on the primary: %s", sql, pq_message(s->conn));
	PQclear(r);
	return NULL;
}

/* The slot keeps the primary's WAL while Argon is away: created if missing. */
static int ensure_slot(struct session *s, const char *slot)
{
	char sql[160];
	snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT \"%s\" PHYSICAL RESERVE_WAL", slot);
	PGresult *r = PQexec(s->conn, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	const char *sqlstate = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	bool exists = sqlstate && strcmp(sqlstate, "42710") == 0; /* duplicate_object */
	PQclear(r);
	if (st == PGRES_TUPLES_OK || exists)
		return 0;
	return fail(s, SESSION_RETRY, "creating replication slot \"%s\" on the primary: %s", slot,
		    pq_message(s->conn));
}

/* The primary's timeline history must hold ours with its end at or after where
 * we are; otherwise Argon holds WAL the primary never had. */
static int check_history(struct session *s, uint32_t primary_tli)
{
	char sql[64], a[STORE_LSN_TEXT_BYTES], b[STORE_LSN_TEXT_BYTES];
	snprintf(sql, sizeof(sql), "TIMELINE_HISTORY %u", primary_tli);
	PGresult *r = command(s, sql, PGRES_TUPLES_OK);
	if (!r)
		return SESSION_RETRY;
	char *content = strdup(PQntuples(r) == 1 && PQnfields(r) == 2 ? PQgetvalue(r, 0, 1) : "");
	ar_lsn end = 0;
	bool found = false;
	char *save = NULL;
	/* Lines of "parent timeline <tab> switch point <tab> reason". */
	for (char *line = content ? strtok_r(content, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned tli, hi, lo;
		if (sscanf(line, "%u %X/%X", &tli, &hi, &lo) == 3 && tli == s->tli) {
			end = (ar_lsn)hi << 32 | lo;
			found = true;
		}
	}
	free(content);
	PQclear(r);
	if (!found)
		return fail(s, SESSION_FATAL,
			    "the primary is on timeline %u, whose history does not include "
			    "timeline %u that Argon holds: it is not this timeline's primary",
			    primary_tli, s->tli);
	/* Against what the log holds durably, not the page streaming would resume at. */
	ar_lsn held = atomic_load(&s->t->flushed);
	store_lsn_text(end, a);
	store_lsn_text(held, b);
	if (end < held)
		return fail(s, SESSION_FATAL,
			    "the primary's timeline %u forked from timeline %u at %s, before "
			    "Argon's position %s: Argon holds WAL the primary never had",
			    primary_tli, s->tli, a, b);
	return fail(s, SESSION_FATAL,
		    "the primary is on timeline %u, forked from Argon's timeline %u at %s; "
		    "following a timeline switch is not supported yet",
		    primary_tli, s->tli, a);
}

static int identify(struct session *s)
{
	PGresult *r = command(s, "IDENTIFY_SYSTEM", PGRES_TUPLES_OK);
	if (!r)
		return SESSION_RETRY;
	if (PQntuples(r) != 1 || PQnfields(r) < 3) {
		PQclear(r);
		return fail(s, SESSION_RETRY, "IDENTIFY_SYSTEM: unexpected result shape");
	}
	uint64_t sysid = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	uint32_t tli = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	if (sysid != s->t->system_id)
		return fail(s, SESSION_FATAL,
			    "the primary's system identifier is %" PRIu64
			    ", the timeline's is %" PRIu64 ": it is another database cluster",
			    sysid, s->t->system_id);
	if (tli < s->tli)
		return fail(
		    s, SESSION_FATAL,
		    "the primary is on timeline %u, older than timeline %u that Argon holds", tli,
		    s->tli);
	return tli > s->tli ? check_history(s, tli) : 0;
}

static int start_streaming(struct session *s, const char *slot)
{
	char sql[200], a[STORE_LSN_TEXT_BYTES];
	int rc = ensure_slot(s, slot);
	if (rc)
		return rc;
	store_lsn_text(s->start, a);
	snprintf(sql, sizeof(sql), "START_REPLICATION SLOT \"%s\" PHYSICAL %s TIMELINE %u", slot, a,
		 s->tli);
	PGresult *r = PQexec(s->conn, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	PQclear(r);
	if (st != PGRES_COPY_BOTH)
		return fail(s, SESSION_RETRY, "starting replication at %s: %s", a,
			    pq_message(s->conn));
	return 0;
}

static int connect_primary(struct session *s, const char *conninfo, const char *appname)
{
	const char *keys[] = { "connect_timeout", "dbname", "replication", "application_name",
			       NULL };
	const char *vals[] = { "10", conninfo, "true", appname, NULL };
	atomic_store(&s->t->state, LIVE_CONNECTING);
	s->conn = PQconnectdbParams(keys, vals, 1);
	atomic_fetch_add(&s->t->connects, 1);
	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK)
		return fail(s, SESSION_RETRY, "connecting to the primary: %s", pq_message(s->conn));
	return 0;
}

/* One connection, from connecting to its end. */
static int session(struct live_tl *t, struct ar_vfs *vfs, struct wallog *log)
{
	struct session s = { .t = t,
			     .vfs = vfs,
			     .log = log,
			     .buf = malloc(GROUP_BYTES),
			     .started_ns = live_now_ns() };
	if (!s.buf)
		return fail(&s, SESSION_RETRY, "out of memory");
	char conninfo[512], slot[64], appname[64];
	pthread_mutex_lock(&t->mu);
	snprintf(conninfo, sizeof(conninfo), "%s", t->conninfo);
	snprintf(slot, sizeof(slot), "%s", t->slot);
	snprintf(appname, sizeof(appname), "%s", t->appname);
	s.tli = t->tli;
	pthread_mutex_unlock(&t->mu);
	/* Resume at the start of the page holding the first byte not yet durable:
	 * the bytes before it on that page come again, identical. */
	ar_lsn flushed = atomic_load(&t->flushed);
	s.start = flushed - flushed % WAL_PAGE_BYTES;
	atomic_store(&t->received, flushed);
	int rc = connect_primary(&s, conninfo, appname);
	if (rc == 0)
		rc = identify(&s);
	if (rc == 0)
		rc = start_streaming(&s, slot);
	if (rc == 0) {
		atomic_store(&t->received, s.start > flushed ? s.start : flushed);
		rc = stream(&s);
	}
	PQfinish(s.conn);
	free(s.buf);
	return rc == SESSION_RETRY && s.streamed ? -SESSION_RETRY : rc;
}

/* Sleep ms, or less if woken to stop. */
static void backoff_sleep(struct live_tl *t, uint32_t ms)
{
	struct pollfd p = { .fd = t->wake_fd, .events = POLLIN };
	uint64_t until = live_now_ns() + (uint64_t)ms * 1000000u;
	while (!atomic_load(&t->rcv_stop) && !atomic_load(&t->stop)) {
		uint64_t now = live_now_ns();
		if (now >= until)
			return;
		if (poll(&p, 1, (int)((until - now) / 1000000u) + 1) > 0) {
			uint64_t v;
			if (read(t->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				return;
		}
	}
}

static void *receiver_main(void *arg)
{
	struct live_tl *t = arg;
	struct ar_vfs *vfs = NULL;
	struct wallog *log = NULL;
	char err[WALLOG_ERROR_BYTES];
	int rc = ar_vfs_real_create_blocking(&vfs); /* see vfs.h: writes waited for at once */
	if (rc == 0)
		rc = wallog_open(vfs, t->log_dir, t->seg_bytes, true, &log, err);
	else
		snprintf(err, sizeof(err), "%s", strerror(-rc));
	if (rc < 0) {
		live_set_error(t, "opening the WAL log %s: %s", t->log_dir, err);
		atomic_store(&t->state, LIVE_STOPPED);
	}
	uint32_t backoff = RECONNECT_MIN_MS;
	while (rc == 0 && !atomic_load(&t->rcv_stop) && !atomic_load(&t->stop)) {
		int end = session(t, vfs, log);
		if (end == SESSION_STOP)
			break;
		if (end == SESSION_FATAL) {
			atomic_store(&t->state, LIVE_STOPPED);
			break;
		}
		if (atomic_load(&t->rcv_stop) || atomic_load(&t->stop))
			break;
		if (end < 0)
			backoff = RECONNECT_MIN_MS; /* it had streamed: a fresh trouble */
		int connecting = LIVE_CONNECTING, streaming = LIVE_STREAMING;
		/* Never over a stop the ingest decided. */
		if (!atomic_compare_exchange_strong(&t->state, &connecting, LIVE_WAITING))
			atomic_compare_exchange_strong(&t->state, &streaming, LIVE_WAITING);
		backoff_sleep(t, backoff);
		backoff =
		    backoff * 2 > t->cfg.reconnect_max_ms ? t->cfg.reconnect_max_ms : backoff * 2;
	}
	wallog_close(log);
	ar_vfs_destroy(vfs);
	return NULL;
}

int live_receiver_start(struct live_tl *t)
{
	atomic_store(&t->rcv_stop, false);
	int rc = pthread_create(&t->rcv_thread, NULL, receiver_main, t);
	if (rc != 0)
		return -rc;
	t->rcv_running = true;
	return 0;
}

void live_receiver_stop(struct live_tl *t)
{
	if (!t->rcv_running)
		return;
	atomic_store(&t->rcv_stop, true);
	uint64_t one = 1;
	if (write(t->wake_fd, &one, sizeof(one)) < 0)
		AR_LOG(WARNING, "live", "waking the receiver: %s", strerror(errno));
	pthread_join(t->rcv_thread, NULL);
	t->rcv_running = false;
}
