/*
 * pageclient.c - The compute's page-read client (pageclient.h): Neon's pagestream
 * v2/v3 over libpq, one connection per tenant shard, each with a bounded window
 * of pipelined requests, plus a prefetch ring of GetPages whose answers later
 * reads may take.  Depends on common/pagestream.h (codec) and libpq only.
 *
 * Window of a shard connection: a ring of `window` slots numbered by the shard's
 * request sequence (seq); a ticket is (seq << 7) | shard.
 *
 *        head            recv                tail
 *   ... | answered/failed/free | in flight ... | free ...
 *
 *   [head, recv)  answered or failed, waiting to be consumed (or free: consumed
 *                 out of order); head skips free slots
 *   [recv, tail)  in flight: sent (perhaps still in libpq's buffer), answers come
 *                 in this order (the server answers a connection FIFO)
 *
 * Invariants:
 *  1. head <= recv <= tail and tail - head <= window: the window bounds what a
 *     connection holds, answered or not (-EAGAIN beyond it).
 *  2. Every slot in [recv, tail) is in flight; no slot outside [head, tail) is used.
 *  3. A shard without a connection has nothing in flight (recv == tail): a drop
 *     fails every in-flight slot at once.
 *  4. An answer is matched to the oldest in-flight slot and decoded against its
 *     request (ps_response_decode checks the tag, the v3 echo and the length);
 *     a mismatch drops the connection, as the stream can no longer be trusted.
 *  5. A slot is owned by exactly one of: the caller (its ticket), the prefetch
 *     ring (slot.prefetch = the entry, entry.ticket = the slot), or nobody
 *     (orphan: freed as soon as it is answered or failed).
 *  6. Every wait is bounded by the oldest in-flight request's deadline (sent +
 *     timeout_ms); past it the connection is dropped.
 *  7. The answer handed out by apc_wait stays in libpq's buffer (cl->held) until
 *     the next call on the client, which frees it.
 *
 * Shard connection states (transitions, and the function making each):
 *
 *   BROKEN --shard_connect: startup, `pagestream_vN <tenant>[-<ii><cc>] <tl>`
 *            answered with CopyBothResponse--> STREAMING
 *   BROKEN --shard_connect fails or times out--> BROKEN (the call fails)
 *   STREAMING --shard_drop: socket error, FATAL or copy end from the server, a
 *            malformed answer, a timeout--> BROKEN (in-flight slots failed)
 *   STREAMING --apc_close--> gone
 *
 * A connection starts BROKEN; apc_connect connects every shard, and afterwards
 * the next request routed to a BROKEN shard reconnects it (Neon's compute
 * reconnects too).
 */
#include "compute/pageclient.h"

#include "common/assert.h"
#include "common/err.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICKET_SHARD_BITS 7
#define WHERE_BYTES 128
#define COMMAND_BYTES 128
/* Results libpq may queue behind a copy stream's end (an error, then the end). */
#define RESULTS_AFTER_COPY_MAX 4

static_assert((1u << TICKET_SHARD_BITS) == APC_SHARDS_MAX, "a ticket's shard bits");
static_assert(APC_FLUSH_AFTER <= APC_WINDOW_MAX, "a flush batch fits a window");
static_assert(APC_WINDOW_DEFAULT <= APC_WINDOW_MAX, "the default window is allowed");
static_assert(APC_PREFETCH_SLOTS <= INT16_MAX, "a slot names its prefetch entry in 16 bits");
static_assert(APC_ERROR_BYTES > PS_ERROR_TEXT_MAX + WHERE_BYTES, "room for the server's text");

/* ---- the pure parts: routing, tickets, window, prefetch ring ---- */

uint32_t apc_shard_of_block(uint32_t shard_count, uint32_t stripe_pages, struct ps_rel rel,
			    uint32_t blkno)
{
	uint32_t stripe = stripe_pages ? stripe_pages : APC_STRIPE_PAGES_DEFAULT;
	return ps_shard_of_block(shard_count, stripe, rel.relnode, rel.fork, blkno);
}

static int64_t ticket_make(uint64_t seq, uint32_t shard)
{
	AR_ASSERT(shard < APC_SHARDS_MAX);
	AR_ASSERT(seq < (UINT64_C(1) << (63 - TICKET_SHARD_BITS)));
	return (int64_t)(seq << TICKET_SHARD_BITS | shard);
}

static uint32_t ticket_shard(int64_t ticket)
{
	return (uint32_t)ticket & (APC_SHARDS_MAX - 1);
}

static uint64_t ticket_seq(int64_t ticket)
{
	return (uint64_t)ticket >> TICKET_SHARD_BITS;
}

enum slot_state { SLOT_FREE, SLOT_INFLIGHT, SLOT_ANSWERED, SLOT_FAILED };

struct slot {
	uint64_t seq;
	enum slot_state state;
	bool orphan;      /* nobody waits: freed when answered or failed (invariant 5) */
	int16_t prefetch; /* the prefetch entry owning it, or -1 */
	uint64_t deadline_ns;
	struct ps_request req;
	char *buf;               /* ANSWERED: libpq's buffer of the answer */
	struct ps_response resp; /* ANSWERED: decoded, pointing into buf */
	int result;              /* FAILED: -errno */
	char *error;             /* FAILED: why (malloc'd; NULL if that failed) */
};

struct window {
	uint32_t size;
	uint64_t head; /* oldest slot not free */
	uint64_t recv; /* oldest slot in flight: the next answer is its */
	uint64_t tail; /* the next seq to send */
	struct slot *slots;
};

static void window_init(struct window *w, struct slot *slots, uint32_t size)
{
	AR_ASSERT(size >= 1);
	AR_ASSERT(size <= APC_WINDOW_MAX);
	memset(slots, 0, sizeof(*slots) * size);
	for (uint32_t i = 0; i < size; i++)
		slots[i].prefetch = -1;
	*w = (struct window){ .size = size, .slots = slots };
}

static struct slot *window_slot(const struct window *w, uint64_t seq)
{
	return &w->slots[seq % w->size];
}

static bool window_full(const struct window *w)
{
	AR_DEBUG_ASSERT(w->tail - w->head <= w->size);
	return w->tail - w->head == w->size;
}

/* Prefetches leave one slot for a read: else a read that finds the window full of
 * prefetches gives up the oldest, the block read next, and every read after it
 * misses in turn. */
static bool window_prefetch_room(const struct window *w)
{
	return w->tail - w->head + 1 < w->size;
}

static uint32_t window_in_flight(const struct window *w)
{
	return (uint32_t)(w->tail - w->recv);
}

static void window_check(const struct window *w)
{
	AR_ASSERT(w->head <= w->recv);
	AR_ASSERT(w->recv <= w->tail);
	AR_ASSERT(w->tail - w->head <= w->size);
#ifdef AR_DEBUG_CHECKS
	for (uint64_t s = w->head; s < w->tail; s++) {
		const struct slot *sl = window_slot(w, s);
		AR_ASSERT(sl->state == SLOT_FREE || sl->seq == s);
		AR_ASSERT((s >= w->recv) == (sl->state == SLOT_INFLIGHT));
	}
#endif
}

/* The next slot to send (the window must not be full). */
static struct slot *window_take(struct window *w)
{
	AR_ASSERT(!window_full(w));
	struct slot *sl = window_slot(w, w->tail);
	AR_ASSERT(sl->state == SLOT_FREE);
	AR_ASSERT(sl->buf == NULL);
	sl->seq = w->tail++;
	sl->state = SLOT_INFLIGHT;
	sl->orphan = false;
	sl->prefetch = -1;
	sl->error = NULL;
	sl->result = 0;
	return sl;
}

/* The used slot numbered seq, or NULL. */
static struct slot *window_find(const struct window *w, uint64_t seq)
{
	if (seq < w->head || seq >= w->tail)
		return NULL;
	struct slot *sl = window_slot(w, seq);
	return sl->seq == seq && sl->state != SLOT_FREE ? sl : NULL;
}

/* The oldest in-flight slot takes the next answer. */
static struct slot *window_answer(struct window *w)
{
	if (w->recv == w->tail)
		return NULL;
	struct slot *sl = window_slot(w, w->recv++);
	AR_ASSERT(sl->state == SLOT_INFLIGHT);
	sl->state = SLOT_ANSWERED;
	return sl;
}

/* Fail every in-flight slot (a drop); returns how many. */
static uint32_t window_fail_in_flight(struct window *w, int result, const char *why)
{
	uint32_t n = 0;
	for (; w->recv < w->tail; w->recv++, n++) {
		struct slot *sl = window_slot(w, w->recv);
		AR_ASSERT(sl->state == SLOT_INFLIGHT);
		sl->state = SLOT_FAILED;
		sl->result = result;
		sl->error = strdup(why);
	}
	return n;
}

/* A consumed slot is free; head moves past the free slots. */
static void window_release(struct window *w, struct slot *sl)
{
	AR_ASSERT(sl->state == SLOT_ANSWERED || sl->state == SLOT_FAILED);
	AR_ASSERT(sl->buf == NULL);
	free(sl->error);
	sl->error = NULL;
	sl->state = SLOT_FREE;
	sl->orphan = false;
	sl->prefetch = -1;
	while (w->head < w->recv && window_slot(w, w->head)->state == SLOT_FREE)
		w->head++;
	window_check(w);
}

struct pf_entry {
	bool used;
	struct ps_rel rel;
	uint32_t blkno;
	uint64_t request_lsn;
	uint64_t not_modified_since;
	int64_t ticket;
};

/* The ring entry of a block: the relation's hash plus the block number, so that
 * up to APC_PREFETCH_SLOTS consecutive blocks of one relation never collide. */
static uint32_t pf_slot_of(struct ps_rel rel, uint32_t blkno)
{
	uint32_t h = ps_hash_combine(ps_fmix32(rel.relnode), ps_fmix32(rel.db));
	h = ps_hash_combine(h, ps_fmix32(rel.spc ^ (uint32_t)rel.fork << 24));
	return (h + blkno) % APC_PREFETCH_SLOTS;
}

static bool pf_same_block(const struct pf_entry *e, struct ps_rel rel, uint32_t blkno)
{
	return e->used && e->blkno == blkno && e->rel.relnode == rel.relnode &&
	       e->rel.db == rel.db && e->rel.spc == rel.spc && e->rel.fork == rel.fork;
}

bool apc_prefetch_usable(uint64_t old_request_lsn, uint64_t old_nms, uint64_t new_request_lsn,
			 uint64_t new_nms)
{
	if (old_request_lsn == new_request_lsn && old_nms == new_nms)
		return true;
	/* Neon's sanity rule: LSNs of later reads of a block never go backwards; if
	 * they do (a replica asking for an older page), the prefetched page may be
	 * newer than what is asked for. */
	if (new_request_lsn < old_request_lsn || new_nms < old_nms)
		return false;
	if (old_request_lsn == UINT64_MAX)
		return false; /* the old read's effective LSN is known to the server only */
	return new_nms <= old_request_lsn;
}

enum pf_decision { PF_NONE, PF_TAKE, PF_EVICT };

/* What a read of (rel, blkno) at these LSNs does with the ring entry of its block. */
static enum pf_decision pf_decide(const struct pf_entry *e, struct ps_rel rel, uint32_t blkno,
				  uint64_t request_lsn, uint64_t not_modified_since)
{
	if (!e->used)
		return PF_NONE;
	if (!pf_same_block(e, rel, blkno))
		return PF_NONE; /* another block's: a read leaves it be */
	return apc_prefetch_usable(e->request_lsn, e->not_modified_since, request_lsn,
				   not_modified_since)
		   ? PF_TAKE
		   : PF_EVICT;
}

/* ---- the client ---- */

struct shard {
	uint32_t index;
	PGconn *conn;       /* NULL: BROKEN */
	bool write_pending; /* libpq holds bytes the socket has not taken */
	uint32_t unflushed; /* requests put since the last flush */
	struct window win;
	char *conninfo;
	char command[COMMAND_BYTES];
	char where[WHERE_BYTES]; /* "shard 1 of 2 at host:port", for messages */
};

struct apc_client {
	uint32_t shard_count; /* as configured: 0 or 1 unsharded */
	uint32_t connections; /* max(1, shard_count) */
	uint32_t stripe_pages;
	enum ps_version version;
	uint32_t window;
	uint32_t timeout_ms;
	uint64_t reqid_base; /* (pid << 32), as Neon's compute */
	uint32_t reqid_counter;
	char *held; /* the answer apc_wait handed out last (invariant 7) */
	struct apc_stats stats;
	struct pf_entry prefetch[APC_PREFETCH_SLOTS];
	struct slot *slots; /* connections x window */
	char last_error[APC_ERROR_BYTES];
	struct shard shard[];
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Copy text with libpq's line breaks and tabs as single spaces, no trailing space. */
static void squash(char *dst, size_t n, const char *src)
{
	size_t o = 0;
	bool space = false;
	for (; src && *src && o + 1 < n; src++) {
		if (*src == '\n' || *src == '\t' || *src == '\r' || *src == ' ') {
			space = o > 0;
			continue;
		}
		if (space && o + 2 < n)
			dst[o++] = ' ';
		space = false;
		dst[o++] = *src;
	}
	dst[o] = '\0';
}

__attribute__((format(printf, 4, 5))) static int fail(struct apc_client *cl, char *err, int result,
						      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cl->last_error, sizeof(cl->last_error), fmt, ap);
	va_end(ap);
	if (err)
		snprintf(err, APC_ERROR_BYTES, "%s", cl->last_error);
	return result;
}

/* The last failure (already in cl->last_error) into err. */
static int report(const struct apc_client *cl, char *err, int result)
{
	if (err)
		snprintf(err, APC_ERROR_BYTES, "%s", cl->last_error);
	return result;
}

static void release_held(struct apc_client *cl)
{
	if (cl->held) {
		PQfreemem(cl->held);
		cl->held = NULL;
	}
}

static const char *tag_name(uint8_t tag)
{
	static const char *const names[] = { "Exists", "Nblocks", "GetPage", "DbSize",
					     "GetSlruSegment" };
	return tag <= PS_GETSLRU ? names[tag] : "?";
}

/* Wait until fd has events or deadline_ns passes: > 0 ready, 0 timed out. */
static int wait_socket(int fd, short events, uint64_t deadline_ns)
{
	struct pollfd p = { .fd = fd, .events = events };
	for (;;) {
		uint64_t now = now_ns();
		if (now >= deadline_ns)
			return 0;
		uint64_t ms = (deadline_ns - now + 999999u) / 1000000u;
		int rc = poll(&p, 1, ms > INT32_MAX ? INT32_MAX : (int)ms);
		if (rc >= 0)
			return rc > 0 ? 1 : 0;
		if (errno != EINTR)
			return -errno;
	}
}

static void slot_release(struct apc_client *cl, struct shard *s, struct slot *sl);

/* Why the copy stream ended: the server's error, if libpq holds one. */
static void copy_end_text(PGconn *conn, char *out, size_t n)
{
	squash(out, n, PQerrorMessage(conn));
	for (int i = 0; i < RESULTS_AFTER_COPY_MAX && !PQisBusy(conn); i++) {
		PGresult *r = PQgetResult(conn);
		if (!r)
			break;
		if (PQresultStatus(r) == PGRES_FATAL_ERROR ||
		    PQresultStatus(r) == PGRES_NONFATAL_ERROR)
			squash(out, n, PQresultErrorMessage(r));
		PQclear(r);
	}
	if (!out[0])
		snprintf(out, n, "the server ended the copy stream");
}

/* STREAMING -> BROKEN: every request in flight fails with the reason. */
__attribute__((format(printf, 4, 5))) static int shard_drop(struct apc_client *cl, struct shard *s,
							    int result, const char *fmt, ...)
{
	char why[APC_ERROR_BYTES - WHERE_BYTES];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fail(cl, NULL, result, "%s: %s", s->where, why);
	if (s->conn)
		PQfinish(s->conn);
	s->conn = NULL;
	s->write_pending = false;
	s->unflushed = 0;
	uint64_t from = s->win.recv;
	cl->stats.errors += window_fail_in_flight(&s->win, result, cl->last_error);
	for (uint64_t seq = from; seq < s->win.tail; seq++) {
		struct slot *sl = window_slot(&s->win, seq);
		if (sl->state == SLOT_FAILED && sl->orphan)
			slot_release(cl, s, sl);
	}
	return result;
}

/* Write what libpq buffered, as far as the socket takes it. */
static int shard_flush(struct apc_client *cl, struct shard *s)
{
	if (!s->conn || (s->unflushed == 0 && !s->write_pending))
		return 0;
	int rc = PQflush(s->conn);
	if (rc < 0) {
		char text[PS_ERROR_TEXT_MAX];
		squash(text, sizeof(text), PQerrorMessage(s->conn));
		return shard_drop(cl, s, -ECONNRESET, "connection lost: %s", text);
	}
	s->write_pending = rc == 1;
	s->unflushed = 0;
	return 0;
}

/* An answer arrived: it is the oldest in-flight request's (invariant 4). */
static int shard_deliver(struct apc_client *cl, struct shard *s, char *buf, int len)
{
	if (s->win.recv == s->win.tail) {
		PQfreemem(buf);
		return shard_drop(cl, s, -AR_EPROTO, "an answer with no request in flight");
	}
	struct slot *sl = window_slot(&s->win, s->win.recv);
	struct ps_response resp;
	const char *why = NULL;
	if (ps_response_decode(cl->version, &sl->req, (const uint8_t *)buf, (size_t)len, &resp,
			       &why) < 0) {
		PQfreemem(buf);
		return shard_drop(cl, s, -AR_EPROTO, "malformed answer to %s: %s",
				  tag_name(sl->req.tag), why);
	}
	AR_ASSERT(window_answer(&s->win) == sl);
	sl->buf = buf;
	sl->resp = resp;
	cl->stats.received++;
	if (resp.tag == PS_R_ERROR)
		cl->stats.errors++;
	if (sl->orphan)
		slot_release(cl, s, sl);
	return 0;
}

/* Without blocking: take in what arrived and deliver every whole answer. */
static int shard_read(struct apc_client *cl, struct shard *s)
{
	if (!s->conn)
		return 0;
	bool consumed = PQconsumeInput(s->conn) == 1;
	/* Each pass delivers one answer to an in-flight slot or ends: bounded by the
	 * window (a surplus answer drops the connection). */
	for (uint32_t i = 0; i <= s->win.size; i++) {
		char *buf = NULL;
		int n = PQgetCopyData(s->conn, &buf, 1);
		if (n > 0) {
			int rc = shard_deliver(cl, s, buf, n);
			if (rc < 0)
				return rc;
			continue;
		}
		char text[PS_ERROR_TEXT_MAX];
		if (n == -1) {
			copy_end_text(s->conn, text, sizeof(text));
			return shard_drop(cl, s, -ECONNRESET, "connection lost: %s", text);
		}
		if (n == -2 || !consumed) {
			squash(text, sizeof(text), PQerrorMessage(s->conn));
			return shard_drop(cl, s, -ECONNRESET, "connection lost: %s", text);
		}
		return 0;
	}
	return 0;
}

/* Drop the connection if the oldest in-flight request is past its deadline. */
static int shard_expire(struct apc_client *cl, struct shard *s, uint64_t now)
{
	if (!s->conn || window_in_flight(&s->win) == 0)
		return 0;
	if (now < window_slot(&s->win, s->win.recv)->deadline_ns)
		return 0;
	return shard_drop(cl, s, -ETIMEDOUT, "no answer to %s within %u ms; connection dropped",
			  tag_name(window_slot(&s->win, s->win.recv)->req.tag), cl->timeout_ms);
}

static int flush_all(struct apc_client *cl)
{
	int first = 0;
	for (uint32_t i = 0; i < cl->connections; i++) {
		int rc = shard_flush(cl, &cl->shard[i]);
		if (rc < 0 && first == 0)
			first = rc;
	}
	return first;
}

/* Block until sl is no longer in flight (invariant 6 bounds it). */
static int wait_slot(struct apc_client *cl, struct shard *s, struct slot *sl)
{
	flush_all(cl);
	/* libpq may have read answers while it flushed: take those before polling. */
	shard_read(cl, s);
	while (sl->state == SLOT_INFLIGHT) {
		AR_ASSERT(s->conn != NULL); /* invariant 3 */
		uint64_t deadline = window_slot(&s->win, s->win.recv)->deadline_ns;
		short events = POLLIN | (s->write_pending ? POLLOUT : 0);
		int rc = wait_socket(PQsocket(s->conn), events, deadline);
		if (rc < 0)
			return shard_drop(cl, s, rc, "poll: %s", strerror(-rc));
		if (rc == 0) {
			shard_expire(cl, s, now_ns());
			continue;
		}
		shard_flush(cl, s);
		shard_read(cl, s);
	}
	return 0;
}

static void slot_release(struct apc_client *cl, struct shard *s, struct slot *sl)
{
	if (sl->buf) {
		PQfreemem(sl->buf);
		sl->buf = NULL;
	}
	if (sl->prefetch >= 0) {
		struct pf_entry *e = &cl->prefetch[sl->prefetch];
		AR_ASSERT(e->used);
		AR_ASSERT(e->ticket == ticket_make(sl->seq, s->index));
		e->used = false;
	}
	window_release(&s->win, sl);
}

/* A consumed slot's outcome into out/err; the slot is freed. */
static int slot_finish(struct apc_client *cl, struct shard *s, struct slot *sl,
		       struct apc_result *out, char *err)
{
	int rc = 0;
	if (sl->state == SLOT_FAILED) {
		rc = fail(cl, err, sl->result, "%s",
			  sl->error ? sl->error : ar_strerror(sl->result));
	} else if (sl->resp.tag == PS_R_ERROR) {
		rc = fail(cl, err, -EREMOTEIO, "%s: %s failed: %s", s->where, tag_name(sl->req.tag),
			  sl->resp.error);
	} else {
		AR_ASSERT(sl->state == SLOT_ANSWERED);
		if (out) {
			out->resp = sl->resp;
			out->shard = s->index;
		}
		release_held(cl);
		cl->held = sl->buf; /* invariant 7 */
		sl->buf = NULL;
	}
	slot_release(cl, s, sl);
	return rc;
}

/* ---- connecting ---- */

/* Wait for libpq's next step of connecting or of the pagestream command. */
static int connect_step(PGconn *conn, short events, uint64_t deadline)
{
	int rc = wait_socket(PQsocket(conn), events, deadline);
	return rc == 0 ? -ETIMEDOUT : rc < 0 ? rc : 0;
}

static void where_set(struct shard *s, PGconn *conn)
{
	const char *host = PQhost(conn), *port = PQport(conn);
	if (host && host[0] && port && port[0])
		snprintf(s->where, sizeof(s->where), "shard %u at %s:%s", s->index, host, port);
}

/* Startup (with whatever authentication the conninfo gives), within deadline. */
static int shard_startup(struct shard *s, PGconn *conn, uint64_t deadline, char *why, size_t n)
{
	if (PQstatus(conn) == CONNECTION_BAD) {
		squash(why, n, PQerrorMessage(conn));
		return -ECONNREFUSED;
	}
	where_set(s, conn);
	/* libpq's rule: before the first PQconnectPoll, wait as if it said WRITING. */
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED) {
			squash(why, n, PQerrorMessage(conn));
			return -ECONNREFUSED;
		}
		int rc =
		    connect_step(conn, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
		if (rc < 0) {
			snprintf(why, n, "could not connect: %s", strerror(-rc));
			return rc == -ETIMEDOUT ? rc : -ECONNREFUSED;
		}
		st = PQconnectPoll(conn);
	}
	where_set(s, conn);
	return 0;
}

/* `pagestream_vN ...` must turn the session into a copy stream, within deadline. */
static int shard_command(struct shard *s, PGconn *conn, uint64_t deadline, char *why, size_t n)
{
	if (PQsetnonblocking(conn, 1) != 0 || PQsendQuery(conn, s->command) != 1) {
		squash(why, n, PQerrorMessage(conn));
		return -ECONNREFUSED;
	}
	int rc, flushed;
	while ((flushed = PQflush(conn)) == 1)
		if ((rc = connect_step(conn, POLLOUT | POLLIN, deadline)) < 0)
			goto out_timeout;
	if (flushed < 0) {
		squash(why, n, PQerrorMessage(conn));
		return -ECONNREFUSED;
	}
	while (PQisBusy(conn)) {
		if ((rc = connect_step(conn, POLLIN, deadline)) < 0)
			goto out_timeout;
		if (!PQconsumeInput(conn)) {
			squash(why, n, PQerrorMessage(conn));
			return -ECONNREFUSED;
		}
	}
	PGresult *r = PQgetResult(conn);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st != PGRES_COPY_BOTH) {
		char text[PS_ERROR_TEXT_MAX];
		squash(text, sizeof(text), r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
		snprintf(why, n, "\"%s\" refused: %s", s->command,
			 text[0] ? text : PQresStatus(st));
		PQclear(r);
		return -ECONNREFUSED;
	}
	PQclear(r);
	return 0;
out_timeout:
	snprintf(why, n, "\"%s\": %s", s->command, strerror(-rc));
	return rc;
}

/* BROKEN -> STREAMING, or BROKEN with the reason (cl->last_error). */
static int shard_connect(struct apc_client *cl, struct shard *s)
{
	AR_ASSERT(s->conn == NULL);
	AR_ASSERT(window_in_flight(&s->win) == 0); /* invariant 3 */
	const char *keys[] = { "application_name", "dbname", NULL };
	const char *vals[] = { "argon-pageclient", s->conninfo, NULL };
	uint64_t deadline = now_ns() + (uint64_t)cl->timeout_ms * 1000000u;
	char why[APC_ERROR_BYTES - WHERE_BYTES] = "";
	PGconn *conn = PQconnectStartParams(keys, vals, 1);
	if (!conn)
		return fail(cl, NULL, -ENOMEM, "%s: out of memory", s->where);
	int rc = shard_startup(s, conn, deadline, why, sizeof(why));
	if (rc == 0)
		rc = shard_command(s, conn, deadline, why, sizeof(why));
	if (rc < 0) {
		PQfinish(conn);
		return fail(cl, NULL, rc, "%s: %s", s->where, why);
	}
	s->conn = conn;
	s->unflushed = 0;
	s->write_pending = false;
	return 0;
}

static int config_check(const struct apc_config *c, char *err)
{
	const char *what = NULL;
	uint32_t n = c->shard_count ? c->shard_count : 1;
	if (!c->conninfo || !c->tenant || !c->timeline)
		what = "conninfo, tenant and timeline are required";
	else if (n > APC_SHARDS_MAX)
		what = "too many shards (at most 128)";
	else if (strlen(c->tenant) != 32 || strspn(c->tenant, "0123456789abcdefABCDEF") != 32)
		what = "the tenant id must be 32 hex digits";
	else if (strlen(c->timeline) != 32 || strspn(c->timeline, "0123456789abcdefABCDEF") != 32)
		what = "the timeline id must be 32 hex digits";
	else if (c->version != 0 && c->version != 2 && c->version != 3)
		what = "the protocol version must be 2 or 3";
	else if (c->window > APC_WINDOW_MAX)
		what = "the window is at most 128 requests";
	else if (c->timeout_ms > APC_TIMEOUT_MS_MAX)
		what = "the timeout is at most 3600000 ms";
	for (uint32_t i = 0; !what && i < n; i++)
		if (!c->conninfo[i] || strlen(c->conninfo[i]) >= APC_CONNINFO_BYTES_MAX)
			what = "one conninfo of at most 4095 bytes per shard is required";
	if (what && err)
		snprintf(err, APC_ERROR_BYTES, "page client: %s", what);
	return what ? -EINVAL : 0;
}

static_assert(APC_SHARDS_MAX == 128, "the message above names the limit");
static_assert(APC_WINDOW_MAX == 128, "the message above names the limit");
static_assert(APC_TIMEOUT_MS_MAX == 3600000, "the message above names the limit");
static_assert(APC_CONNINFO_BYTES_MAX == 4096, "the message above names the limit");

static void shard_init(struct apc_client *cl, const struct apc_config *c, uint32_t i)
{
	struct shard *s = &cl->shard[i];
	s->index = i;
	window_init(&s->win, cl->slots + (size_t)i * cl->window, cl->window);
	if (cl->shard_count >= 2)
		snprintf(s->command, sizeof(s->command), "pagestream_v%d %s-%02x%02x %s",
			 (int)cl->version, c->tenant, i, cl->shard_count, c->timeline);
	else
		snprintf(s->command, sizeof(s->command), "pagestream_v%d %s %s", (int)cl->version,
			 c->tenant, c->timeline);
	snprintf(s->where, sizeof(s->where), "shard %u", i);
}

int apc_connect(const struct apc_config *c, struct apc_client **out, char err[APC_ERROR_BYTES])
{
	*out = NULL;
	int rc = config_check(c, err);
	if (rc < 0)
		return rc;
	uint32_t n = c->shard_count ? c->shard_count : 1;
	struct apc_client *cl = calloc(1, sizeof(*cl) + n * sizeof(struct shard));
	if (!cl)
		goto out_nomem;
	cl->shard_count = c->shard_count;
	cl->connections = n;
	cl->stripe_pages = c->stripe_pages ? c->stripe_pages : APC_STRIPE_PAGES_DEFAULT;
	cl->version = c->version == 2 ? PS_V2 : PS_V3;
	cl->window = c->window ? c->window : APC_WINDOW_DEFAULT;
	cl->timeout_ms = c->timeout_ms ? c->timeout_ms : APC_TIMEOUT_MS_DEFAULT;
	cl->reqid_base = (uint64_t)(uint32_t)getpid() << 32;
	cl->slots = calloc((size_t)n * cl->window, sizeof(struct slot));
	if (!cl->slots)
		goto out_free_client;
	for (uint32_t i = 0; i < n; i++) {
		shard_init(cl, c, i);
		cl->shard[i].conninfo = strdup(c->conninfo[i]);
		if (!cl->shard[i].conninfo)
			goto out_close;
	}
	for (uint32_t i = 0; i < n; i++) {
		rc = shard_connect(cl, &cl->shard[i]);
		if (rc < 0) {
			if (err)
				snprintf(err, APC_ERROR_BYTES, "%s", cl->last_error);
			apc_close(cl);
			return rc;
		}
	}
	*out = cl;
	return 0;
out_close:
	apc_close(cl);
	goto out_nomem;
out_free_client:
	free(cl);
out_nomem:
	if (err)
		snprintf(err, APC_ERROR_BYTES, "page client: out of memory");
	return -ENOMEM;
}

void apc_close(struct apc_client *cl)
{
	if (!cl)
		return;
	release_held(cl);
	for (uint32_t i = 0; i < cl->connections; i++) {
		struct shard *s = &cl->shard[i];
		if (s->conn)
			PQfinish(s->conn);
		s->conn = NULL;
		for (uint32_t j = 0; cl->slots && j < s->win.size; j++) {
			struct slot *sl = &s->win.slots[j];
			if (sl->buf)
				PQfreemem(sl->buf);
			free(sl->error);
		}
		free(s->conninfo);
	}
	free(cl->slots);
	free(cl);
}

/* ---- requests ---- */

static uint32_t route(const struct apc_client *cl, const struct ps_request *req)
{
	if (req->tag != PS_GETPAGE)
		return 0;
	return apc_shard_of_block(cl->shard_count, cl->stripe_pages, req->rel, req->blkno);
}

/* Put req on s (reconnecting a BROKEN shard first); *slot_out is its slot. */
static int send_on(struct apc_client *cl, struct shard *s, const struct ps_request *req,
		   struct slot **slot_out)
{
	if (window_full(&s->win))
		return fail(cl, NULL, -EAGAIN, "%s: the window of %u requests is full", s->where,
			    s->win.size);
	if (!s->conn) {
		int rc = shard_connect(cl, s);
		if (rc < 0)
			return rc;
		cl->stats.reconnects++;
	}
	struct ps_request r = *req;
	r.reqid = cl->version == PS_V3 ? cl->reqid_base | ++cl->reqid_counter : 0;
	uint8_t bytes[PS_REQUEST_BYTES_MAX];
	size_t n = ps_request_encode(cl->version, &r, bytes);
	uint64_t deadline = now_ns() + (uint64_t)cl->timeout_ms * 1000000u;
	int put;
	/* 0: libpq's buffer is full (non-blocking): let the socket take some first. */
	while ((put = PQputCopyData(s->conn, (const char *)bytes, (int)n)) == 0) {
		int rc = wait_socket(PQsocket(s->conn), POLLOUT, deadline);
		if (rc <= 0)
			return shard_drop(cl, s, -ETIMEDOUT, "could not send within %u ms",
					  cl->timeout_ms);
		if (PQflush(s->conn) < 0)
			break;
	}
	if (put != 1) {
		char text[PS_ERROR_TEXT_MAX];
		squash(text, sizeof(text), PQerrorMessage(s->conn));
		return shard_drop(cl, s, -ECONNRESET, "connection lost: %s", text);
	}
	struct slot *sl = window_take(&s->win);
	sl->req = r;
	sl->deadline_ns = deadline;
	cl->stats.sent++;
	if (++s->unflushed >= APC_FLUSH_AFTER)
		shard_flush(cl, s);
	*slot_out = sl;
	return 0;
}

static int request_check(const struct ps_request *req)
{
	if (req->tag > PS_GETSLRU)
		return -EINVAL;
	if (req->tag == PS_GETSLRU && req->slru_kind > 2)
		return -EINVAL;
	return 0;
}

int64_t apc_send(struct apc_client *cl, const struct ps_request *req)
{
	release_held(cl);
	if (request_check(req) < 0)
		return fail(cl, NULL, -EINVAL, "page client: bad request (tag %u)", req->tag);
	struct shard *s = &cl->shard[route(cl, req)];
	struct slot *sl;
	int rc = send_on(cl, s, req, &sl);
	if (rc < 0)
		return rc;
	return ticket_make(sl->seq, s->index);
}

int apc_flush(struct apc_client *cl)
{
	release_held(cl);
	return flush_all(cl);
}

/* The caller's slot of a ticket, or NULL. */
static struct slot *ticket_slot(const struct apc_client *cl, int64_t ticket,
				const struct shard **s_out)
{
	if (ticket < 0 || ticket_shard(ticket) >= cl->connections)
		return NULL;
	const struct shard *s = &cl->shard[ticket_shard(ticket)];
	struct slot *sl = window_find(&s->win, ticket_seq(ticket));
	if (!sl || sl->orphan || sl->prefetch >= 0)
		return NULL;
	*s_out = s;
	return sl;
}

int apc_wait(struct apc_client *cl, int64_t ticket, struct apc_result *out,
	     char err[APC_ERROR_BYTES])
{
	release_held(cl);
	const struct shard *cs;
	struct slot *sl = ticket_slot(cl, ticket, &cs);
	if (!sl)
		return fail(cl, err, -ENOENT, "page client: no ticket %lld", (long long)ticket);
	struct shard *s = &cl->shard[cs->index];
	int rc = wait_slot(cl, s, sl);
	if (rc < 0 && sl->state == SLOT_INFLIGHT)
		return report(cl, err, rc);
	return slot_finish(cl, s, sl, out, err);
}

void apc_discard(struct apc_client *cl, int64_t ticket)
{
	release_held(cl);
	const struct shard *cs;
	struct slot *sl = ticket_slot(cl, ticket, &cs);
	if (!sl)
		return;
	sl->orphan = true;
	if (sl->state != SLOT_INFLIGHT)
		slot_release(cl, &cl->shard[cs->index], sl);
}

bool apc_ready(const struct apc_client *cl, int64_t ticket)
{
	const struct shard *s;
	const struct slot *sl = ticket_slot(cl, ticket, &s);
	return sl && sl->state != SLOT_INFLIGHT;
}

int apc_pollfds(const struct apc_client *cl, struct pollfd *fds, uint32_t n)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < cl->connections && k < n; i++) {
		const struct shard *s = &cl->shard[i];
		if (!s->conn)
			continue;
		fds[k].fd = PQsocket(s->conn);
		fds[k].events = POLLIN | (s->write_pending || s->unflushed ? POLLOUT : 0);
		fds[k].revents = 0;
		k++;
	}
	return (int)k;
}

int apc_consume(struct apc_client *cl)
{
	release_held(cl);
	uint64_t before = cl->stats.received, now = now_ns();
	int first = 0;
	for (uint32_t i = 0; i < cl->connections; i++) {
		struct shard *s = &cl->shard[i];
		int rc = shard_flush(cl, s);
		if (rc == 0)
			rc = shard_read(cl, s);
		if (rc == 0)
			rc = shard_expire(cl, s, now);
		if (rc < 0 && first == 0)
			first = rc;
	}
	return first < 0 ? first : (int)(cl->stats.received - before);
}

int apc_poll(struct apc_client *cl, int timeout_ms)
{
	release_held(cl);
	flush_all(cl);
	struct pollfd fds[APC_SHARDS_MAX];
	int n = apc_pollfds(cl, fds, APC_SHARDS_MAX);
	/* Not past the oldest request's deadline (invariant 6). */
	uint64_t now = now_ns();
	for (uint32_t i = 0; i < cl->connections; i++) {
		const struct window *w = &cl->shard[i].win;
		if (window_in_flight(w) == 0)
			continue;
		uint64_t deadline = window_slot(w, w->recv)->deadline_ns;
		uint64_t ms = deadline > now ? (deadline - now + 999999u) / 1000000u : 0;
		if (timeout_ms < 0 || ms < (uint64_t)timeout_ms)
			timeout_ms = (int)ms;
	}
	if (n > 0 && poll(fds, (nfds_t)n, timeout_ms) < 0 && errno != EINTR)
		return fail(cl, NULL, -errno, "page client: poll: %s", strerror(errno));
	return apc_consume(cl);
}

/* ---- prefetch and synchronous requests ---- */

/* Give up a prefetched answer (invariant 5: its slot becomes an orphan). */
static void pf_evict(struct apc_client *cl, uint32_t index)
{
	struct pf_entry *e = &cl->prefetch[index];
	AR_ASSERT(e->used);
	struct shard *s = &cl->shard[ticket_shard(e->ticket)];
	struct slot *sl = window_find(&s->win, ticket_seq(e->ticket));
	AR_ASSERT(sl != NULL);
	AR_ASSERT(sl->prefetch == (int16_t)index);
	e->used = false;
	sl->prefetch = -1;
	sl->orphan = true;
	cl->stats.prefetch_discarded++;
	if (sl->state != SLOT_INFLIGHT)
		slot_release(cl, s, sl);
}

/* A free slot on s for a synchronous request: unused prefetched answers at the
 * window's head are given up; the caller's own tickets are not (-EAGAIN). */
static int make_room(struct apc_client *cl, struct shard *s)
{
	for (uint32_t i = 0; i <= 2 * s->win.size && window_full(&s->win); i++) {
		struct slot *head = window_slot(&s->win, s->win.head);
		if (head->prefetch >= 0) {
			pf_evict(cl, (uint32_t)head->prefetch);
		} else if (head->orphan && head->state == SLOT_INFLIGHT) {
			int rc = wait_slot(cl, s, head); /* freed when its answer comes */
			if (rc < 0)
				return rc;
		} else {
			break;
		}
	}
	if (window_full(&s->win))
		return fail(cl, NULL, -EAGAIN, "%s: the window is full of unconsumed tickets",
			    s->where);
	return 0;
}

/* Send req and wait for its answer (the synchronous helpers). */
static int call(struct apc_client *cl, const struct ps_request *req, struct apc_result *out,
		char *err)
{
	release_held(cl);
	struct shard *s = &cl->shard[route(cl, req)];
	struct slot *sl;
	int rc = make_room(cl, s);
	if (rc == 0)
		rc = send_on(cl, s, req, &sl);
	if (rc < 0)
		return report(cl, err, rc);
	rc = wait_slot(cl, s, sl);
	if (rc < 0 && sl->state == SLOT_INFLIGHT)
		return report(cl, err, rc);
	return slot_finish(cl, s, sl, out, err);
}

/* The prefetched answer of a block, if the ring holds a usable one: 0 with out,
 * -ENOENT if there is none (or it failed with its connection: read afresh). */
static int pf_take(struct apc_client *cl, struct ps_rel rel, uint32_t blkno, uint64_t request_lsn,
		   uint64_t nms, struct apc_result *out, char *err)
{
	uint32_t index = pf_slot_of(rel, blkno);
	struct pf_entry *e = &cl->prefetch[index];
	enum pf_decision d = pf_decide(e, rel, blkno, request_lsn, nms);
	if (d == PF_EVICT)
		pf_evict(cl, index);
	if (d != PF_TAKE)
		return -ENOENT;
	struct shard *s = &cl->shard[ticket_shard(e->ticket)];
	struct slot *sl = window_find(&s->win, ticket_seq(e->ticket));
	AR_ASSERT(sl != NULL);
	/* The caller owns it now (invariant 5). */
	e->used = false;
	sl->prefetch = -1;
	int rc = wait_slot(cl, s, sl);
	bool answered = sl->state == SLOT_ANSWERED;
	if (rc < 0 && sl->state == SLOT_INFLIGHT)
		return report(cl, err, rc);
	if (!answered) {
		/* Failed with its connection: not the server's word on the page. */
		cl->stats.prefetch_discarded++;
		slot_release(cl, s, sl);
		return -ENOENT;
	}
	cl->stats.prefetch_hits++;
	return slot_finish(cl, s, sl, out, err);
}

int apc_get_page(struct apc_client *cl, struct ps_rel rel, uint32_t blkno, uint64_t request_lsn,
		 uint64_t not_modified_since, uint8_t page[PS_PAGE_BYTES],
		 char err[APC_ERROR_BYTES])
{
	release_held(cl);
	struct apc_result res;
	int rc = pf_take(cl, rel, blkno, request_lsn, not_modified_since, &res, err);
	if (rc == -ENOENT) {
		cl->stats.prefetch_misses++;
		struct ps_request req = { .tag = PS_GETPAGE,
					  .request_lsn = request_lsn,
					  .not_modified_since = not_modified_since,
					  .rel = rel,
					  .blkno = blkno };
		rc = call(cl, &req, &res, err);
	}
	if (rc < 0)
		return rc;
	AR_ASSERT(res.resp.tag == PS_R_GETPAGE);
	memcpy(page, res.resp.page, PS_PAGE_BYTES);
	release_held(cl);
	return 0;
}

int apc_prefetch(struct apc_client *cl, struct ps_rel rel, uint32_t blkno, uint64_t request_lsn,
		 uint64_t not_modified_since)
{
	release_held(cl);
	uint32_t index = pf_slot_of(rel, blkno);
	struct pf_entry *e = &cl->prefetch[index];
	if (pf_same_block(e, rel, blkno) && e->request_lsn == request_lsn &&
	    e->not_modified_since == not_modified_since)
		return 0; /* already on its way */
	struct ps_request req = { .tag = PS_GETPAGE,
				  .request_lsn = request_lsn,
				  .not_modified_since = not_modified_since,
				  .rel = rel,
				  .blkno = blkno };
	struct shard *s = &cl->shard[route(cl, &req)];
	if (!window_prefetch_room(&s->win))
		return fail(cl, NULL, -EAGAIN, "%s: the window is full; no prefetch", s->where);
	if (e->used)
		pf_evict(cl, index); /* another block's, or the same at other LSNs */
	struct slot *sl;
	int rc = send_on(cl, s, &req, &sl);
	if (rc < 0)
		return rc;
	sl->prefetch = (int16_t)index;
	*e = (struct pf_entry){ .used = true,
				.rel = rel,
				.blkno = blkno,
				.request_lsn = request_lsn,
				.not_modified_since = not_modified_since,
				.ticket = ticket_make(sl->seq, s->index) };
	return 0;
}

int apc_nblocks(struct apc_client *cl, struct ps_rel rel, uint64_t request_lsn,
		uint64_t not_modified_since, uint32_t *nblocks, char err[APC_ERROR_BYTES])
{
	struct ps_request req = { .tag = PS_NBLOCKS,
				  .request_lsn = request_lsn,
				  .not_modified_since = not_modified_since,
				  .rel = rel };
	struct apc_result res;
	int rc = call(cl, &req, &res, err);
	if (rc == 0)
		*nblocks = res.resp.nblocks;
	return rc;
}

int apc_exists(struct apc_client *cl, struct ps_rel rel, uint64_t request_lsn,
	       uint64_t not_modified_since, bool *exists, char err[APC_ERROR_BYTES])
{
	struct ps_request req = { .tag = PS_EXISTS,
				  .request_lsn = request_lsn,
				  .not_modified_since = not_modified_since,
				  .rel = rel };
	struct apc_result res;
	int rc = call(cl, &req, &res, err);
	if (rc == 0)
		*exists = res.resp.exists;
	return rc;
}

int apc_dbsize(struct apc_client *cl, uint32_t dbnode, uint64_t request_lsn,
	       uint64_t not_modified_since, int64_t *bytes, char err[APC_ERROR_BYTES])
{
	struct ps_request req = { .tag = PS_DBSIZE,
				  .request_lsn = request_lsn,
				  .not_modified_since = not_modified_since,
				  .dbnode = dbnode };
	struct apc_result res;
	int rc = call(cl, &req, &res, err);
	if (rc == 0)
		*bytes = res.resp.db_size;
	return rc;
}

int apc_get_slru(struct apc_client *cl, uint8_t kind, uint32_t segno, uint64_t request_lsn,
		 uint64_t not_modified_since, uint8_t *pages, uint32_t *npages,
		 char err[APC_ERROR_BYTES])
{
	if (kind > 2)
		return fail(cl, err, -EINVAL, "page client: unknown SLRU kind %u", kind);
	struct ps_request req = { .tag = PS_GETSLRU,
				  .request_lsn = request_lsn,
				  .not_modified_since = not_modified_since,
				  .slru_kind = kind,
				  .segno = segno };
	struct apc_result res;
	int rc = call(cl, &req, &res, err);
	if (rc < 0)
		return rc;
	AR_ASSERT(res.resp.slru_pages <= PS_SLRU_PAGES_MAX); /* the decoder's bound */
	*npages = res.resp.slru_pages;
	if (res.resp.slru_pages)
		memcpy(pages, res.resp.page, (size_t)res.resp.slru_pages * PS_PAGE_BYTES);
	release_held(cl);
	return 0;
}

void apc_get_stats(const struct apc_client *cl, struct apc_stats *out)
{
	*out = cl->stats;
}

const char *apc_last_error(const struct apc_client *cl)
{
	return cl->last_error;
}
