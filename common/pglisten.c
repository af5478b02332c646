/*
 * pglisten.c - Per-core accept loop and connection I/O over io_uring.
 *
 * A connection has at most one receive and one send in flight, each with its own
 * struct ar_io, so answers finished elsewhere go out while the next requests are
 * read.  pglisten_process is the one place that decides what to do next:
 *
 *   feed received bytes to the session (startup, auth, simple queries) or, once
 *   the session is in CopyBoth, offer each CopyData to the service (data);
 *   let the service put finished answers in order (drain);
 *   send what is buffered; receive while there is room; close when told to.
 *
 *   transition              function
 *   accept -> open          pglisten_accept_done
 *   recv done -> process    pglisten_recv_done
 *   send done -> process    pglisten_send_done
 *   answer finished         ar_pgconn_wake -> pglisten_process
 *   closing -> freed        pglisten_try_free: no I/O in flight and the service
 *                           says nothing of the connection is in flight
 *
 * Invariants:
 *  1. A connection lives on the core that accepted it, in that core's arena;
 *     freed slots go to the core's free list and are reused, never returned.
 *  2. At most AR_PG_CONNECTIONS_PER_CORE_MAX connections per core; one more is
 *     told "too many clients" and closed.
 *  3. Pipelined requests wait in the receive buffer and are answered in order.
 *  4. Bytes between send_off and send_len are never moved while a send is in
 *     flight; new answers are appended after send_len.  Likewise unread input
 *     (recv_off to recv_len) moves to the front only while no receive is in
 *     flight, since a pending receive writes where it was armed.
 *  5. A stream's buffers (service state, large send buffer) are taken when the
 *     connection switches to CopyBoth and recycled with it.
 * Depends on: runtime (ring, arena), pgwire (session), limits.
 */
#include "common/pglisten.h"

#include "common/arena.h"
#include "common/assert.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/runtime.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define FATAL_TEXT_BYTES 1024

/* What a connection in CopyBoth carries besides the small connection. */
struct pg_stream {
	struct pg_stream *next_free;
	uint8_t *send_buf;
	void *state;
};

struct ar_pgconn {
	struct ar_io recv_io;
	struct ar_io send_io;
	struct ar_io cancel_io;
	struct ar_pglisten *listen;
	struct ar_pgconn *next_free;
	int fd;
	uint32_t slot;
	bool recv_busy;
	bool send_busy;
	bool closing;       /* no more input; free once idle */
	bool close_after;   /* close once every answer is sent (CopyDone, Terminate, fatal) */
	bool stalled;       /* the service's window is full */
	bool in_process;    /* guards against re-entry from the service */
	bool migrating;     /* being handed to core handoff_to: nothing new is read */
	bool handoff_asked; /* the service was asked once; a failed hand-off is not retried */
	bool cancel_busy;   /* the receive's cancellation is in flight */
	int handoff_to;
	size_t recv_off; /* unread input is recv_buf[recv_off, recv_len) */
	size_t recv_len;
	size_t send_len;
	size_t send_off;
	uint8_t *send_buf;
	size_t send_cap;
	struct pg_stream *stream;
	void *state; /* the service's, for every connection (small) */
	char fatal[FATAL_TEXT_BYTES];
	struct pgw_session session;
	uint8_t recv_buf[AR_PG_RECV_BUFFER_BYTES];
	uint8_t small_send[AR_PG_SEND_BUFFER_BYTES];
};

struct ar_pglisten {
	struct ar_core *core;
	int listen_fd;
	bool stopping;
	struct ar_io accept_io;
	struct ar_pgservice_ops ops;
	struct ar_pgconn *free_list;
	struct pg_stream *free_streams;
	struct ar_pgconn *conns[AR_PG_CONNECTIONS_PER_CORE_MAX]; /* slot -> conn, NULL if free */
	uint32_t slots_allocated;
	_Atomic uint64_t accepted;
	_Atomic uint64_t active;
	_Atomic uint64_t refused;
	_Atomic uint64_t queries;
	_Atomic uint64_t streams;
	_Atomic uint64_t handoffs;
	_Atomic uint64_t adopted;
};

/* A stream on its way to another core: everything its connection was. */
struct pg_handoff {
	struct ar_pglisten *to;
	int fd;
	struct pgw_session session;
	size_t recv_len;
	uint8_t recv_buf[AR_PG_RECV_BUFFER_BYTES];
	_Alignas(64) uint8_t state[]; /* ops.state_bytes */
};

static void pglisten_accept_arm(struct ar_pglisten *l);
static void pglisten_process(struct ar_pgconn *c);

static int pglisten_query(void *ctx, const char *query, struct pgw_out *out)
{
	struct ar_pgconn *c = ctx;
	struct ar_pglisten *l = c->listen;

	atomic_fetch_add_explicit(&l->queries, 1, memory_order_relaxed);
	return l->ops.query(l->ops.svc, c->state, c, query, out);
}

static struct ar_pgconn *pglisten_conn_get(struct ar_pglisten *l)
{
	struct ar_pgconn *c = l->free_list;

	if (c) {
		l->free_list = c->next_free;
		return c;
	}
	if (l->slots_allocated == AR_PG_CONNECTIONS_PER_CORE_MAX)
		return NULL;
	struct ar_arena *arena = ar_core_arena(l->core);
	c = ar_arena_alloc(arena, sizeof(*c), 64);
	void *state = l->ops.state_bytes ? ar_arena_alloc(arena, l->ops.state_bytes, 64) : NULL;
	if (!c || (l->ops.state_bytes && !state))
		return NULL; /* what was carved stays in the arena: it is full anyway */
	c->state = state;
	c->slot = l->slots_allocated++;
	return c;
}

/* A stream's large buffers: recycled, else carved from the arena. */
static struct pg_stream *pglisten_stream_get(struct ar_pglisten *l)
{
	struct pg_stream *st = l->free_streams;
	if (st) {
		l->free_streams = st->next_free;
		return st;
	}
	struct ar_arena *arena = ar_core_arena(l->core);
	st = ar_arena_alloc(arena, sizeof(*st), 64);
	if (!st)
		return NULL;
	st->send_buf = ar_arena_alloc(arena, l->ops.stream_send_bytes, 64);
	st->state =
	    l->ops.stream_state_bytes ? ar_arena_alloc(arena, l->ops.stream_state_bytes, 64) : NULL;
	return st->send_buf && (st->state || !l->ops.stream_state_bytes) ? st : NULL;
}

/* Every I/O finished and the service holds nothing of it: recycle the slot. */
static void pglisten_try_free(struct ar_pgconn *c)
{
	struct ar_pglisten *l = c->listen;

	if (c->recv_busy || c->send_busy || c->cancel_busy)
		return;
	if (l->ops.state_bytes && !l->ops.close(l->ops.svc, c->state))
		return; /* answers in flight on other cores come back first */
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->stream) {
		c->stream->next_free = l->free_streams;
		l->free_streams = c->stream;
		c->stream = NULL;
	}
	l->conns[c->slot] = NULL;
	c->next_free = l->free_list;
	l->free_list = c;
	atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
}

/* Stop reading and writing; the slot is recycled once nothing is in flight. */
static void pglisten_conn_close(struct ar_pgconn *c)
{
	if (!c->closing) {
		c->closing = true;
		/* A pending receive completes at once with 0. */
		shutdown(c->fd, SHUT_RDWR);
	}
	pglisten_try_free(c);
}

/* Tell a client over the limit why, best effort, without blocking the core. */
static void pglisten_refuse(int fd)
{
	uint8_t buf[256];
	struct pgw_out out = { .data = buf, .cap = sizeof(buf) };

	pgw_put_error(&out, "FATAL", "53300", "sorry, too many clients already", NULL);
	ssize_t n = send(fd, out.data, out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)n;
	close(fd);
}

static void pglisten_accept_done(struct ar_core *core, struct ar_io *io, int result)
{
	struct ar_pglisten *l =
	    (struct ar_pglisten *)((char *)io - offsetof(struct ar_pglisten, accept_io));
	(void)core;
	if (l->stopping) {
		if (result >= 0)
			close(result);
		return;
	}
	if (result < 0) {
		if (result != -EAGAIN && result != -EINTR && result != -ECONNABORTED)
			AR_LOG(WARNING, "pglisten", "core %u: accept failed: %s",
			       ar_core_info(l->core)->index, ar_strerror(result));
		pglisten_accept_arm(l);
		return;
	}
	int fd = result;
	struct ar_pgconn *c = pglisten_conn_get(l);
	if (!c) {
		atomic_fetch_add_explicit(&l->refused, 1, memory_order_relaxed);
		pglisten_refuse(fd);
		pglisten_accept_arm(l);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	uint32_t secret = 0;
	if (getrandom(&secret, sizeof(secret), GRND_NONBLOCK) != sizeof(secret))
		secret = (uint32_t)ar_core_now_ns();
	c->listen = l;
	c->fd = fd;
	c->recv_busy = c->send_busy = c->closing = c->close_after = false;
	c->stalled = c->in_process = c->migrating = c->cancel_busy = false;
	c->handoff_asked = false;
	c->recv_off = c->recv_len = c->send_len = c->send_off = 0;
	c->send_buf = c->small_send;
	c->send_cap = sizeof(c->small_send);
	c->stream = NULL;
	c->fatal[0] = '\0';
	if (l->ops.state_bytes)
		memset(c->state, 0, l->ops.state_bytes);
	/* BackendKeyData pid: core and slot, so a cancel request could find its target. */
	pgw_session_init(&c->session, ar_core_info(l->core)->index << 16 | c->slot, secret,
			 pglisten_query, c);
	if (l->ops.password)
		pgw_session_require_password(&c->session, l->ops.password);
	l->conns[c->slot] = c;
	atomic_fetch_add_explicit(&l->accepted, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&l->active, 1, memory_order_relaxed);
	pglisten_process(c);
	pglisten_accept_arm(l);
}

static void pglisten_accept_arm(struct ar_pglisten *l)
{
	l->accept_io.done = pglisten_accept_done;
	struct io_uring_sqe *sqe = ar_core_sqe(l->core, &l->accept_io);
	AR_ASSERT(sqe != NULL);
	io_uring_prep_accept(sqe, l->listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

static void pglisten_send_done(struct ar_core *core, struct ar_io *io, int result)
{
	struct ar_pgconn *c =
	    (struct ar_pgconn *)((char *)io - offsetof(struct ar_pgconn, send_io));
	(void)core;

	c->send_busy = false;
	if (result <= 0) {
		pglisten_conn_close(c);
		return;
	}
	c->send_off += (size_t)result;
	AR_ASSERT(c->send_off <= c->send_len);
	pglisten_process(c);
}

static void pglisten_recv_done(struct ar_core *core, struct ar_io *io, int result)
{
	struct ar_pgconn *c =
	    (struct ar_pgconn *)((char *)io - offsetof(struct ar_pgconn, recv_io));
	(void)core;

	c->recv_busy = false;
	if (c->migrating && result == -ECANCELED && !c->closing) {
		pglisten_process(c);
		return;
	}
	if (result <= 0 || c->closing) {
		pglisten_conn_close(c);
		return;
	}
	c->recv_len += (size_t)result;
	AR_ASSERT(c->recv_len <= sizeof(c->recv_buf));
	pglisten_process(c);
}

/* Switch to CopyBoth: the large send buffer, with what is unsent moved over. */
static bool pglisten_stream_start(struct ar_pgconn *c)
{
	struct ar_pglisten *l = c->listen;
	if (c->stream)
		return true;
	if (c->send_busy)
		return false; /* once the small buffer's send is done */
	struct pg_stream *st = pglisten_stream_get(l);
	if (!st) {
		snprintf(c->fatal, sizeof(c->fatal), "out of memory for a page stream on core %u",
			 ar_core_info(l->core)->index);
		return false;
	}
	size_t pending = c->send_len - c->send_off;
	memcpy(st->send_buf, c->send_buf + c->send_off, pending);
	if (l->ops.stream_attach)
		l->ops.stream_attach(l->ops.svc, c->state, st->state);
	c->stream = st;
	c->send_buf = st->send_buf;
	c->send_cap = l->ops.stream_send_bytes;
	c->send_off = 0;
	c->send_len = pending;
	atomic_fetch_add_explicit(&l->streams, 1, memory_order_relaxed);
	return true;
}

/* Offer whole CopyData messages to the service, in order. */
static void pglisten_stream_input(struct ar_pgconn *c)
{
	struct ar_pglisten *l = c->listen;
	size_t consumed = c->recv_off;

	c->stalled = false;
	while (!c->close_after && consumed < c->recv_len) {
		struct pgw_message msg;
		const char *err = "malformed message";
		int n =
		    pgw_message_decode(c->recv_buf + consumed, c->recv_len - consumed, &msg, &err);
		if (n == 0)
			break;
		if (n < 0) {
			snprintf(c->fatal, sizeof(c->fatal), "%s", err);
			c->close_after = true;
			break;
		}
		if (msg.type == 'd') {
			int r = l->ops.data(l->ops.svc, c->state, msg.body, msg.body_len, c->fatal);
			if (r == 0) {
				c->stalled = true;
				break;
			}
			if (r < 0)
				c->close_after = true;
		} else if (msg.type == 'c' || msg.type == 'X') {
			c->close_after = true; /* CopyDone or Terminate: answer what came before */
		} else if (msg.type == 'f') {
			c->close_after = true; /* CopyFail: the client gave up */
		} else {
			snprintf(c->fatal, sizeof(c->fatal),
				 "unexpected message type 0x%02x during COPY from stdin", msg.type);
			c->close_after = true;
		}
		consumed += (size_t)n;
	}
	c->recv_off = consumed;
}

static void pglisten_cancel_done(struct ar_core *core, struct ar_io *io, int result)
{
	struct ar_pgconn *c =
	    (struct ar_pgconn *)((char *)io - offsetof(struct ar_pgconn, cancel_io));
	(void)core;
	(void)result; /* -ENOENT/-EALREADY: the receive finished first; it completes anyway */
	c->cancel_busy = false;
	pglisten_process(c);
}

/* On the new core: the connection continues here (or is refused if full). */
static void pglisten_adopt(struct ar_core *core, struct ar_msg *msg)
{
	struct pg_handoff *h = msg->ptr;
	struct ar_pglisten *l = h->to;
	(void)core;
	struct ar_pgconn *c = l->stopping ? NULL : pglisten_conn_get(l);
	if (!c) {
		atomic_fetch_add_explicit(&l->refused, 1, memory_order_relaxed);
		pglisten_refuse(h->fd);
		free(h);
		return;
	}
	c->listen = l;
	c->fd = h->fd;
	c->recv_busy = c->send_busy = c->closing = c->close_after = false;
	c->stalled = c->in_process = c->migrating = c->cancel_busy = false;
	c->handoff_asked = true;
	c->send_len = c->send_off = 0;
	c->send_buf = c->small_send;
	c->send_cap = sizeof(c->small_send);
	c->stream = NULL;
	c->fatal[0] = '\0';
	c->session = h->session;
	c->session.query_ctx = c;
	c->recv_off = 0;
	c->recv_len = h->recv_len;
	memcpy(c->recv_buf, h->recv_buf, h->recv_len);
	memcpy(c->state, h->state, l->ops.state_bytes);
	free(h);
	l->ops.adopt(l->ops.svc, c->state, c);
	l->conns[c->slot] = c;
	atomic_fetch_add_explicit(&l->adopted, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&l->active, 1, memory_order_relaxed);
	pglisten_process(c);
}

/* Hand the connection over once everything before is sent and no receive is in
 * flight; true when it left (the slot is free), false while it waits. */
static bool pglisten_migrate(struct ar_pgconn *c)
{
	struct ar_pglisten *l = c->listen;
	if (c->send_busy || c->send_len > c->send_off || c->cancel_busy)
		return false;
	if (c->recv_busy) {
		c->cancel_busy = true;
		c->cancel_io.done = pglisten_cancel_done;
		struct io_uring_sqe *sqe = ar_core_sqe(l->core, &c->cancel_io);
		AR_ASSERT(sqe != NULL);
		io_uring_prep_cancel(sqe, &c->recv_io, 0);
		return false;
	}
	size_t bytes = (sizeof(struct pg_handoff) + l->ops.state_bytes + 63) & ~(size_t)63;
	struct pg_handoff *h = aligned_alloc(64, bytes); /* state[] is 64-byte aligned */
	struct ar_pglisten *to =
	    atomic_load_explicit(&l->ops.peers[c->handoff_to], memory_order_acquire);
	if (h) {
		h->to = to;
		h->fd = c->fd;
		h->session = c->session;
		h->recv_len = c->recv_len - c->recv_off;
		memcpy(h->recv_buf, c->recv_buf + c->recv_off, h->recv_len);
		memcpy(h->state, c->state, l->ops.state_bytes);
		struct ar_msg m = { .fn = pglisten_adopt, .ptr = h };
		if (ar_core_send(l->core, (uint32_t)c->handoff_to, &m) == 0) {
			/* Gone: the slot is free, the socket is the other core's now. */
			l->conns[c->slot] = NULL;
			c->fd = -1;
			c->next_free = l->free_list;
			l->free_list = c;
			atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&l->handoffs, 1, memory_order_relaxed);
			return true;
		}
		free(h);
	}
	c->migrating = false; /* the ring is full: serve it here, requests travel */
	return false;
}

/* Where the next answer goes: after what is buffered to send. */
static struct pgw_out pglisten_out(struct ar_pgconn *c)
{
	return (struct pgw_out){ .data = c->send_buf + c->send_len,
				 .cap = c->send_cap - c->send_len };
}

/* Startup, authentication and simple queries: the session's part. */
static void pglisten_session_input(struct ar_pgconn *c)
{
	struct pgw_out out = pglisten_out(c);
	size_t unread = c->recv_len - c->recv_off;
	size_t consumed = pgw_session_feed(&c->session, c->recv_buf + c->recv_off, unread, &out);
	AR_ASSERT(consumed <= unread);
	AR_ASSERT(!out.overflow); /* the session keeps PGW_SESSION_OUT_RESERVE free */
	c->recv_off += consumed;
	c->send_len += out.len;
	if (c->session.state == PGW_STATE_CLOSED)
		c->close_after = true;
}

/* Right after the switch to CopyBoth: does the service want the stream elsewhere? */
static void pglisten_want_handoff(struct ar_pgconn *c)
{
	struct ar_pglisten *l = c->listen;
	if (c->session.state != PGW_STATE_COPYBOTH || c->close_after || c->stream ||
	    c->handoff_asked || !l->ops.handoff || !l->ops.peers)
		return;
	c->handoff_asked = true;
	int to = l->ops.handoff(l->ops.svc, c->state);
	if (to >= 0 && (uint32_t)to != ar_core_info(l->core)->index &&
	    atomic_load_explicit(&l->ops.peers[to], memory_order_acquire)) {
		c->migrating = true; /* nothing more is read here; what is buffered is sent */
		c->handoff_to = to;
	}
}

/* A stream's input offered to the service, its answers drained; true while answers
 * are still being worked on. */
static bool pglisten_stream_io(struct ar_pgconn *c)
{
	struct ar_pglisten *l = c->listen;
	if (!c->close_after) {
		if (!pglisten_stream_start(c)) {
			if (c->fatal[0])
				c->close_after = true;
			return false;
		}
		pglisten_stream_input(c);
	}
	struct pgw_out out = pglisten_out(c);
	bool pending = l->ops.drain(l->ops.svc, c->state, &out);
	c->send_len += out.len;
	return pending;
}

/* Send what is buffered, and receive while there is room and input is wanted. */
static void pglisten_arm(struct ar_pgconn *c, bool recv)
{
	struct ar_pglisten *l = c->listen;
	if (!c->send_busy && c->send_len > c->send_off) {
		c->send_busy = true;
		c->send_io.done = pglisten_send_done;
		struct io_uring_sqe *sqe = ar_core_sqe(l->core, &c->send_io);
		AR_ASSERT(sqe != NULL);
		io_uring_prep_send(sqe, c->fd, c->send_buf + c->send_off, c->send_len - c->send_off,
				   MSG_NOSIGNAL);
	}
	/* A whole message always fits the buffer (AR_PG_MESSAGE_BYTES_MAX <= its size),
	 * so a full buffer with no complete message cannot happen: the decoder refuses
	 * first.  While stalled, the buffer may fill with requests waiting their turn. */
	/* Unread input moves to the front only while no receive is in flight: a
	 * pending receive writes where it was armed. */
	if (!c->recv_busy && c->recv_off > 0) {
		memmove(c->recv_buf, c->recv_buf + c->recv_off, c->recv_len - c->recv_off);
		c->recv_len -= c->recv_off;
		c->recv_off = 0;
	}
	if (recv && !c->close_after && !c->recv_busy && c->recv_len < sizeof(c->recv_buf)) {
		c->recv_busy = true;
		c->recv_io.done = pglisten_recv_done;
		struct io_uring_sqe *sqe = ar_core_sqe(l->core, &c->recv_io);
		AR_ASSERT(sqe != NULL);
		io_uring_prep_recv(sqe, c->fd, c->recv_buf + c->recv_len,
				   sizeof(c->recv_buf) - c->recv_len, 0);
	}
}

static void pglisten_process(struct ar_pgconn *c)
{
	if (c->in_process)
		return;
	if (c->migrating && !c->closing && (pglisten_migrate(c) || c->migrating))
		return;
	if (c->closing) {
		pglisten_try_free(c);
		return;
	}
	c->in_process = true;
	if (!c->send_busy && c->send_off > 0) {
		memmove(c->send_buf, c->send_buf + c->send_off, c->send_len - c->send_off);
		c->send_len -= c->send_off;
		c->send_off = 0;
	}
	bool pending = false;
	if (c->session.state != PGW_STATE_COPYBOTH)
		pglisten_session_input(c);
	pglisten_want_handoff(c);
	if (!c->migrating && c->session.state == PGW_STATE_COPYBOTH)
		pending = pglisten_stream_io(c);
	/* A fatal error goes after every answer before it, once it fits. */
	if (c->close_after && !pending && c->fatal[0]) {
		struct pgw_out out = pglisten_out(c);
		pgw_put_error(&out, "FATAL", "08P01", c->fatal, NULL);
		if (!out.overflow) {
			c->send_len += out.len;
			c->fatal[0] = '\0';
		}
	}
	pglisten_arm(c, false);
	c->in_process = false;
	if (c->migrating && (pglisten_migrate(c) || c->migrating))
		return; /* handed over, or waits for its send or the receive's cancellation */
	if (c->close_after && !pending && !c->send_busy && !c->fatal[0]) {
		pglisten_conn_close(c);
		return;
	}
	pglisten_arm(c, true);
}

void ar_pgconn_wake(struct ar_pgconn *conn)
{
	pglisten_process(conn);
}

struct ar_core *ar_pgconn_core(const struct ar_pgconn *conn)
{
	return conn->listen->core;
}

int ar_pglisten_start(struct ar_core *core, int listen_fd, const struct ar_pgservice_ops *ops,
		      struct ar_pglisten **listen_out)
{
	AR_ASSERT(listen_fd >= 0);
	AR_ASSERT(ops->query != NULL);
	AR_ASSERT(ops->state_bytes == 0 || (ops->data && ops->drain && ops->close));
	struct ar_pglisten *l = ar_arena_alloc(ar_core_arena(core), sizeof(*l), 64);
	if (!l)
		return -ENOMEM;
	memset(l, 0, sizeof(*l));
	l->core = core;
	l->listen_fd = listen_fd;
	l->ops = *ops;
	if (l->ops.stream_send_bytes < AR_PG_SEND_BUFFER_BYTES)
		l->ops.stream_send_bytes = AR_PG_SEND_BUFFER_BYTES;
	AR_ASSERT(!l->ops.handoff || (l->ops.adopt && l->ops.state_bytes));
	if (l->ops.peers)
		atomic_store_explicit(&l->ops.peers[ar_core_info(core)->index], l,
				      memory_order_release);
	pglisten_accept_arm(l);
	*listen_out = l;
	return 0;
}

void ar_pglisten_stop(struct ar_pglisten *l)
{
	/* The core stops: its ring goes away with whatever is in flight, so sockets are
	 * closed here without waiting for completions. */
	l->stopping = true;
	for (uint32_t i = 0; i < l->slots_allocated; i++) {
		struct ar_pgconn *c = l->conns[i];
		if (c && c->fd >= 0) {
			close(c->fd);
			c->fd = -1;
		}
	}
}

void ar_pglisten_stats_read(const struct ar_pglisten *l, struct ar_pglisten_stats *out)
{
	/* The counters are atomics; the casts drop only the const of the struct. */
	struct ar_pglisten *m = (struct ar_pglisten *)l;
	out->connections_accepted = atomic_load_explicit(&m->accepted, memory_order_relaxed);
	out->connections_active = atomic_load_explicit(&m->active, memory_order_relaxed);
	out->connections_refused = atomic_load_explicit(&m->refused, memory_order_relaxed);
	out->queries = atomic_load_explicit(&m->queries, memory_order_relaxed);
	out->streams = atomic_load_explicit(&m->streams, memory_order_relaxed);
	out->handoffs = atomic_load_explicit(&m->handoffs, memory_order_relaxed);
	out->adopted = atomic_load_explicit(&m->adopted, memory_order_relaxed);
}
