/*
 * pglisten.h - The PostgreSQL-protocol listener of one core: accepts on a shared
 * listening socket through the core's io_uring, and runs each connection's
 * pgw_session on the core that accepted it.  A query may switch its connection to
 * CopyBoth; the service behind the listener then gets every CopyData payload and
 * hands back its answers in order (the page service, server/pageservice.c).
 */
#ifndef AR_COMMON_PGLISTEN_H
#define AR_COMMON_PGLISTEN_H

#include "common/pgwire.h"

#include <stdint.h>

struct ar_core;
struct ar_pglisten;

/* Counters, readable from any thread. */
struct ar_pglisten_stats {
	uint64_t connections_accepted;
	uint64_t connections_active;
	uint64_t connections_refused; /* over AR_PG_CONNECTIONS_PER_CORE_MAX */
	uint64_t queries;
	uint64_t streams;  /* connections switched to CopyBoth */
	uint64_t handoffs; /* streams handed to another core */
	uint64_t adopted;  /* streams taken over from another core */
};

struct ar_pgconn; /* one connection, on its core */

/* What answers a listener's connections.  Every call runs on the listener's core.
 * state is the connection's service state (state_bytes, zeroed at accept). */
struct ar_pgservice_ops {
	size_t state_bytes;
	/* A simple query: as pgw_query_fn.  Returning PGW_QUERY_COPYBOTH switches the
	 * connection to its stream. */
	int (*query)(void *svc, void *state, struct ar_pgconn *conn, const char *query,
		     struct pgw_out *out);
	/* One CopyData payload.  Returns 1 taken, 0 not now (answers in flight fill
	 * the window: offered again after ar_pgconn_wake), or -1: the stream fails;
	 * error (PS_ERROR_TEXT_MAX) says why, sent as a FATAL ErrorResponse after the
	 * answers before it, then the connection closes. */
	int (*data)(void *svc, void *state, const uint8_t *payload, uint32_t len, char *error);
	/* Put finished answers, in request order, into out while they fit.  Returns
	 * true while answers are still being worked on (the listener waits for
	 * ar_pgconn_wake). */
	bool (*drain)(void *svc, void *state, struct pgw_out *out);
	/* The connection is closing: true once nothing of it is in flight (state may
	 * then be reused); false: asked again after ar_pgconn_wake. */
	bool (*close)(void *svc, void *state);
	/* Bytes of send buffer a stream needs: its largest answer fits. */
	size_t stream_send_bytes;
	/* A stream's own memory (its window of requests), taken with its send buffer
	 * when the connection switches to CopyBoth and recycled with it: stream_attach
	 * hands it to the connection's state.  Connections that never stream cost only
	 * state_bytes. */
	size_t stream_state_bytes;
	void (*stream_attach)(void *svc, void *state, void *stream_state);
	/* Optional hand-off of a stream to another core, right after it switched to
	 * CopyBoth (nothing of it in flight yet): handoff returns the core that should
	 * serve the connection from now on, or -1 to keep it.  That core's listener
	 * (peers[core], each listener enters itself) takes the socket, the session,
	 * the unread input and a copy of state, and calls adopt there first. */
	int (*handoff)(void *svc, void *state);
	void (*adopt)(void *svc, void *state, struct ar_pgconn *conn);
	_Atomic(struct ar_pglisten *) *peers; /* AR_CORES_MAX entries, shared by the listeners */
	void *svc;
	/* Non-NULL: every connection must give this password (trust otherwise). */
	const char *password;
};

/* On the core's thread: allocate from the core's arena and arm the first accept.
 * listen_fd and ops are borrowed. */
__attribute__((warn_unused_result)) int ar_pglisten_start(struct ar_core *core, int listen_fd,
							  const struct ar_pgservice_ops *ops,
							  struct ar_pglisten **listen_out);
/* On the connection's core: answers of this connection finished elsewhere (or a
 * timer fired); run its I/O again. */
void ar_pgconn_wake(struct ar_pgconn *conn);
/* The connection's core. */
struct ar_core *ar_pgconn_core(const struct ar_pgconn *conn);
/* On the core's thread, at stop: close every connection. */
void ar_pglisten_stop(struct ar_pglisten *listen);
/* From any thread. */
void ar_pglisten_stats_read(const struct ar_pglisten *listen, struct ar_pglisten_stats *out);

#endif
