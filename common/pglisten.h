/*
 * pglisten.h - The PostgreSQL-protocol listener of one core: accepts on a shared
 * listening socket through the core's io_uring, and runs each connection's
 * pgw_session on the core that accepted it (no cross-core hand-off).
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
};

/* On the core's thread: allocate from the core's arena and arm the first accept.
 * listen_fd is borrowed; query_fn/query_ctx answer simple queries. */
__attribute__((warn_unused_result))
int ar_pglisten_start(struct ar_core *core, int listen_fd, pgw_query_fn *query_fn,
		      void *query_ctx, struct ar_pglisten **listen_out);
/* On the core's thread, at stop: close every connection. */
void ar_pglisten_stop(struct ar_pglisten *listen);
/* From any thread. */
void ar_pglisten_stats_read(const struct ar_pglisten *listen, struct ar_pglisten_stats *out);

#endif
