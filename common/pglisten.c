/*
 * pglisten.c - Per-core accept loop and connection I/O over io_uring.
 *
 * Connection states (one operation in flight per connection at a time):
 *
 *   RECV --bytes--> feed session --answer--> SEND --all sent--> RECV
 *     |                   \--nothing to say--> RECV
 *     \--EOF/error--> closed        SEND --session closed--> closed
 *
 *   transition            function
 *   accept -> RECV        pglisten_accept_done
 *   RECV -> SEND/RECV     pglisten_recv_done -> pglisten_process
 *   SEND -> RECV/closed   pglisten_send_done -> pglisten_process
 *
 * Invariants:
 *  1. A connection lives on the core that accepted it, in that core's arena;
 *     freed slots go to the core's free list and are reused, never returned.
 *  2. At most AR_PG_CONNECTIONS_PER_CORE_MAX connections per core; one more is
 *     told "too many clients" and closed.
 *  3. Pipelined requests wait in the receive buffer and are answered in order.
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
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

struct pg_conn {
	struct ar_io io; /* the one operation in flight */
	struct ar_pglisten *listen;
	struct pg_conn *next_free;
	int fd;
	uint32_t slot;
	size_t recv_len;
	size_t send_len;
	size_t send_off;
	struct pgw_session session;
	uint8_t recv_buf[AR_PG_RECV_BUFFER_BYTES];
	uint8_t send_buf[AR_PG_SEND_BUFFER_BYTES];
};

struct ar_pglisten {
	struct ar_core *core;
	int listen_fd;
	bool stopping;
	struct ar_io accept_io;
	pgw_query_fn *query_fn;
	void *query_ctx;
	struct pg_conn *free_list;
	struct pg_conn *conns[AR_PG_CONNECTIONS_PER_CORE_MAX]; /* slot -> conn, NULL if free */
	uint32_t slots_allocated;
	_Atomic uint64_t accepted;
	_Atomic uint64_t active;
	_Atomic uint64_t refused;
	_Atomic uint64_t queries;
};

static void pglisten_accept_arm(struct ar_pglisten *l);
static void pglisten_recv_arm(struct pg_conn *c);
static void pglisten_process(struct pg_conn *c);

static void pglisten_query(void *ctx, const char *query, struct pgw_out *out)
{
	struct ar_pglisten *l = ctx;

	atomic_fetch_add_explicit(&l->queries, 1, memory_order_relaxed);
	l->query_fn(l->query_ctx, query, out);
}

static struct pg_conn *pglisten_conn_get(struct ar_pglisten *l)
{
	struct pg_conn *c = l->free_list;

	if (c) {
		l->free_list = c->next_free;
		return c;
	}
	if (l->slots_allocated == AR_PG_CONNECTIONS_PER_CORE_MAX)
		return NULL;
	c = ar_arena_alloc(ar_core_arena(l->core), sizeof(*c), 64);
	if (!c)
		return NULL;
	c->slot = l->slots_allocated++;
	return c;
}

static void pglisten_conn_close(struct pg_conn *c)
{
	struct ar_pglisten *l = c->listen;

	close(c->fd);
	c->fd = -1;
	l->conns[c->slot] = NULL;
	c->next_free = l->free_list;
	l->free_list = c;
	atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
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
	struct ar_pglisten *l = (struct ar_pglisten *)((char *)io - offsetof(struct ar_pglisten,
									       accept_io));
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
	struct pg_conn *c = pglisten_conn_get(l);
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
	c->recv_len = 0;
	c->send_len = 0;
	c->send_off = 0;
	/* BackendKeyData pid: core and slot, so a cancel request could find its target. */
	pgw_session_init(&c->session, ar_core_info(l->core)->index << 16 | c->slot, secret,
			 pglisten_query, l);
	l->conns[c->slot] = c;
	atomic_fetch_add_explicit(&l->accepted, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&l->active, 1, memory_order_relaxed);
	pglisten_recv_arm(c);
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
	struct pg_conn *c = (struct pg_conn *)io;
	(void)core;

	if (result <= 0) {
		pglisten_conn_close(c);
		return;
	}
	c->send_off += (size_t)result;
	AR_ASSERT(c->send_off <= c->send_len);
	if (c->send_off < c->send_len) {
		struct io_uring_sqe *sqe = ar_core_sqe(c->listen->core, &c->io);
		AR_ASSERT(sqe != NULL);
		io_uring_prep_send(sqe, c->fd, c->send_buf + c->send_off, c->send_len - c->send_off,
				   MSG_NOSIGNAL);
		return;
	}
	c->send_len = 0;
	c->send_off = 0;
	pglisten_process(c);
}

/* Feed what was received to the session; send its answer, or read more. */
static void pglisten_process(struct pg_conn *c)
{
	struct pgw_out out = { .data = c->send_buf, .cap = sizeof(c->send_buf) };
	size_t consumed = pgw_session_feed(&c->session, c->recv_buf, c->recv_len, &out);

	AR_ASSERT(consumed <= c->recv_len);
	AR_ASSERT(!out.overflow); /* the session keeps PGW_SESSION_OUT_RESERVE free per answer */
	memmove(c->recv_buf, c->recv_buf + consumed, c->recv_len - consumed);
	c->recv_len -= consumed;
	if (out.len > 0) {
		c->send_len = out.len;
		c->send_off = 0;
		c->io.done = pglisten_send_done;
		struct io_uring_sqe *sqe = ar_core_sqe(c->listen->core, &c->io);
		AR_ASSERT(sqe != NULL);
		io_uring_prep_send(sqe, c->fd, c->send_buf, c->send_len, MSG_NOSIGNAL);
		return;
	}
	if (c->session.state == PGW_STATE_CLOSED) {
		pglisten_conn_close(c);
		return;
	}
	pglisten_recv_arm(c);
}

static void pglisten_recv_done(struct ar_core *core, struct ar_io *io, int result)
{
	struct pg_conn *c = (struct pg_conn *)io;
	(void)core;

	if (result <= 0) {
		pglisten_conn_close(c);
		return;
	}
	c->recv_len += (size_t)result;
	AR_ASSERT(c->recv_len <= sizeof(c->recv_buf));
	pglisten_process(c);
}

static void pglisten_recv_arm(struct pg_conn *c)
{
	/* A whole message always fits (AR_PG_MESSAGE_BYTES_MAX <= buffer), so a full
	 * buffer holding no complete message cannot happen: the decoder refuses first. */
	AR_ASSERT(c->recv_len < sizeof(c->recv_buf));
	c->io.done = pglisten_recv_done;
	struct io_uring_sqe *sqe = ar_core_sqe(c->listen->core, &c->io);
	AR_ASSERT(sqe != NULL);
	io_uring_prep_recv(sqe, c->fd, c->recv_buf + c->recv_len, sizeof(c->recv_buf) - c->recv_len,
			   0);
}

int ar_pglisten_start(struct ar_core *core, int listen_fd, pgw_query_fn *query_fn, void *query_ctx,
		      struct ar_pglisten **listen_out)
{
	AR_ASSERT(listen_fd >= 0);
	AR_ASSERT(query_fn != NULL);
	struct ar_pglisten *l = ar_arena_alloc(ar_core_arena(core), sizeof(*l), 64);
	if (!l)
		return -ENOMEM;
	memset(l, 0, sizeof(*l));
	l->core = core;
	l->listen_fd = listen_fd;
	l->query_fn = query_fn;
	l->query_ctx = query_ctx;
	pglisten_accept_arm(l);
	*listen_out = l;
	return 0;
}

void ar_pglisten_stop(struct ar_pglisten *l)
{
	l->stopping = true;
	for (uint32_t i = 0; i < l->slots_allocated; i++)
		if (l->conns[i])
			pglisten_conn_close(l->conns[i]);
}

void ar_pglisten_stats_read(const struct ar_pglisten *l, struct ar_pglisten_stats *out)
{
	/* The counters are atomics; the casts drop only the const of the struct. */
	struct ar_pglisten *m = (struct ar_pglisten *)l;
	out->connections_accepted = atomic_load_explicit(&m->accepted, memory_order_relaxed);
	out->connections_active = atomic_load_explicit(&m->active, memory_order_relaxed);
	out->connections_refused = atomic_load_explicit(&m->refused, memory_order_relaxed);
	out->queries = atomic_load_explicit(&m->queries, memory_order_relaxed);
}
