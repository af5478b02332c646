/*
 * pageclient.h - The compute's page-read client: Neon's pagestream v2/v3 over
 * libpq, one connection per tenant shard, requests pipelined in a bounded window
 * per connection, a prefetch ring, and the routing of GetPage to the shard that
 * owns the block (reference/neon-storage.md sections 1 and 10).  The storage
 * manager of a stock PostgreSQL sits on this; argon-pageget (pageget.c) is its
 * command-line user.
 *
 * One client is used by one thread (a PostgreSQL backend is single-threaded).
 * Actions return 0 (or a ticket, a count) or a negative errno / -AR_E* code
 * (common/err.h):
 *   -EAGAIN       the shard's window is full: wait for (or discard) a ticket first
 *   -EREMOTEIO    the server answered this request with an Error (its text in err)
 *   -ECONNRESET   the connection dropped with the request in flight (the next call
 *                 on the shard reconnects)
 *   -ETIMEDOUT    no answer within timeout_ms: the connection was dropped
 *   -ECONNREFUSED connecting or the pagestream command failed (the server's text)
 *   -AR_EPROTO    the server's bytes broke the protocol: the connection was dropped
 *   -ENOENT       no such ticket (already consumed or never issued)
 *   -EINVAL       a bad argument or configuration
 * Error texts name the shard and carry the server's or libpq's own words.
 */
#ifndef AR_COMPUTE_PAGECLIENT_H
#define AR_COMPUTE_PAGECLIENT_H

#include "common/pagestream.h"

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- limits ---- */

/* Shards of one tenant (Neon's neon.pageserver_connstring holds at most 128). */
#define APC_SHARDS_MAX 128
/* Requests in flight, or answered and not yet consumed, per shard connection. */
#define APC_WINDOW_MAX 128
#define APC_WINDOW_DEFAULT 32
/* Requests buffered in libpq before a flush (neon.flush_output_after). */
#define APC_FLUSH_AFTER 8
/* Prefetched GetPages remembered, hashed by block (neon.readahead_buffer_size). */
#define APC_PREFETCH_SLOTS 128
/* Neon's stripe: 2048 pages (16 MiB). */
#define APC_STRIPE_PAGES_DEFAULT 2048
/* Milliseconds without an answer before the connection is dropped (Neon: 150 s). */
#define APC_TIMEOUT_MS_DEFAULT 150000
#define APC_TIMEOUT_MS_MAX 3600000
/* Room for a message: the shard, the command, and the server's text. */
#define APC_ERROR_BYTES 1400
/* Bytes of one conninfo string. */
#define APC_CONNINFO_BYTES_MAX 4096

struct apc_config {
	const char *const *conninfo; /* one libpq conninfo per shard (host, port, user...) */
	uint32_t shard_count;        /* 0 or 1: unsharded; >= 2: shard i is <tenant>-<ii><cc> */
	uint32_t stripe_pages;       /* 0: APC_STRIPE_PAGES_DEFAULT */
	const char *tenant;          /* 32 hex digits */
	const char *timeline;        /* 32 hex digits */
	int version;                 /* 2 or 3; 0: 3 */
	uint32_t window;             /* 0: APC_WINDOW_DEFAULT; at most APC_WINDOW_MAX */
	uint32_t timeout_ms;         /* 0: APC_TIMEOUT_MS_DEFAULT */
};

struct apc_stats {
	uint64_t sent;               /* requests handed to libpq */
	uint64_t received;           /* answers received (Error answers included) */
	uint64_t prefetch_hits;      /* apc_get_page served by a prefetched answer */
	uint64_t prefetch_misses;    /* apc_get_page that had to send its own request */
	uint64_t prefetch_discarded; /* prefetched answers thrown away unused */
	uint64_t errors;             /* requests failed: Error answers, drops, timeouts */
	uint64_t reconnects;         /* connections made again after a drop */
};

/* An answer.  page (GetPage, GetSlruSegment) points into the client's buffer and
 * stays valid until the next call on the client. */
struct apc_result {
	struct ps_response resp;
	uint32_t shard;
};

struct apc_client;

/* Connect every shard (each within timeout_ms) and start its pagestream.  *out is
 * the client on 0; on failure nothing is left open and err says why. */
__attribute__((warn_unused_result)) int apc_connect(const struct apc_config *config,
						    struct apc_client **out,
						    char err[APC_ERROR_BYTES]);
void apc_close(struct apc_client *cl);

/* The shard owning a relation block (Neon's rule, reference section 10): shard 0
 * if shard_count < 2, for the init fork (3), and for what is not a relation block
 * (relnode 0, blkno 0xffffffff); else hash_combine(fmix32(relnode),
 * fmix32(blkno / stripe)) % shard_count.  stripe_pages 0 means the default. */
uint32_t apc_shard_of_block(uint32_t shard_count, uint32_t stripe_pages, struct ps_rel rel,
			    uint32_t blkno);

/* ---- asynchronous requests ---- */

/* Queue req (its reqid is set by the client in v3) on the shard it routes to and
 * return its ticket (>= 0).  Requests are buffered and flushed every
 * APC_FLUSH_AFTER, or when an answer is awaited (apc_flush, apc_wait, apc_poll).
 * -EAGAIN when the shard's window is full; a broken shard is reconnected first. */
int64_t apc_send(struct apc_client *cl, const struct ps_request *req);
/* Write every buffered request to the sockets (as far as they take them). */
int apc_flush(struct apc_client *cl);
/* Wait for ticket's answer (at most timeout_ms) and consume the ticket.  0 with
 * *out, or -EREMOTEIO (the server's Error text in err), or a connection error. */
__attribute__((warn_unused_result)) int apc_wait(struct apc_client *cl, int64_t ticket,
						 struct apc_result *out, char err[APC_ERROR_BYTES]);
/* Give a ticket up: its answer is thrown away when it arrives. */
void apc_discard(struct apc_client *cl, int64_t ticket);
/* True once ticket's answer (or failure) is here: apc_wait will not block. */
bool apc_ready(const struct apc_client *cl, int64_t ticket);
/* The sockets to poll (one per connected shard, events set), at most n; the count. */
int apc_pollfds(const struct apc_client *cl, struct pollfd *fds, uint32_t n);
/* Without blocking: flush, read what arrived, fail what timed out.  The number of
 * answers received, or -errno of the first shard that broke. */
int apc_consume(struct apc_client *cl);
/* Wait for a socket up to timeout_ms (-1: no limit) but not past the oldest request's
 * deadline, then apc_consume. */
int apc_poll(struct apc_client *cl, int timeout_ms);

/* ---- synchronous requests (each needs one free slot of its shard's window;
 * unused prefetched answers are given up to make room) ---- */

__attribute__((warn_unused_result)) int apc_get_page(struct apc_client *cl, struct ps_rel rel,
						     uint32_t blkno, uint64_t request_lsn,
						     uint64_t not_modified_since,
						     uint8_t page[PS_PAGE_BYTES],
						     char err[APC_ERROR_BYTES]);
__attribute__((warn_unused_result)) int apc_nblocks(struct apc_client *cl, struct ps_rel rel,
						    uint64_t request_lsn,
						    uint64_t not_modified_since, uint32_t *nblocks,
						    char err[APC_ERROR_BYTES]);
__attribute__((warn_unused_result)) int apc_exists(struct apc_client *cl, struct ps_rel rel,
						   uint64_t request_lsn,
						   uint64_t not_modified_since, bool *exists,
						   char err[APC_ERROR_BYTES]);
__attribute__((warn_unused_result)) int apc_dbsize(struct apc_client *cl, uint32_t dbnode,
						   uint64_t request_lsn,
						   uint64_t not_modified_since, int64_t *bytes,
						   char err[APC_ERROR_BYTES]);
/* pages: room for PS_SLRU_PAGES_MAX pages; *npages gets the count. */
__attribute__((warn_unused_result)) int apc_get_slru(struct apc_client *cl, uint8_t kind,
						     uint32_t segno, uint64_t request_lsn,
						     uint64_t not_modified_since, uint8_t *pages,
						     uint32_t *npages, char err[APC_ERROR_BYTES]);

/* ---- prefetch ---- */

/* Start a GetPage without waiting; a later apc_get_page of the block takes its
 * answer if apc_prefetch_usable() holds.  0 (also when the same request is already
 * pending), -EAGAIN when the shard's window has no room (prefetches take at most
 * window - 1 slots: one is kept for a read; prefetch is advice: nothing happened),
 * or a connection error. */
int apc_prefetch(struct apc_client *cl, struct ps_rel rel, uint32_t blkno, uint64_t request_lsn,
		 uint64_t not_modified_since);
/* Neon's reuse rule with the client's knowledge: a prefetched answer (old) serves
 * a read (new) if both LSN pairs are equal, or if neither LSN went backwards
 * (new.request_lsn >= old.request_lsn, new.nms >= old.nms), old.request_lsn is
 * not the maximum (a primary's: its effective LSN is the server's secret), and
 * new.nms <= old.request_lsn (the page did not change since old was read). */
bool apc_prefetch_usable(uint64_t old_request_lsn, uint64_t old_nms, uint64_t new_request_lsn,
			 uint64_t new_nms);

void apc_get_stats(const struct apc_client *cl, struct apc_stats *out);
/* The text of the last failure on the client (empty if none). */
const char *apc_last_error(const struct apc_client *cl);

#endif
