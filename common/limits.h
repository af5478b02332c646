/*
 * limits.h - Every hard limit of Argon in one place (style.md, item 9).
 *
 * Configuration knobs are validated against these at startup.  When something
 * is full, the caller gets backpressure or -EAGAIN, never growth.  The static
 * assertions at the end keep the relationships between limits honest.
 */
#ifndef AR_COMMON_LIMITS_H
#define AR_COMMON_LIMITS_H

#include <assert.h>

/* Core threads of one process. */
#define AR_CORES_MAX 64
/* Entries of one core's io_uring submission queue. */
#define AR_URING_DEPTH_MIN 8
#define AR_URING_DEPTH_MAX 4096
/* Messages a single-producer ring between two cores can hold (a power of two). */
#define AR_SPSC_CAPACITY_MIN 2
#define AR_SPSC_CAPACITY_MAX 65536
/* Timers pending on one core. */
#define AR_TIMERS_MAX 1024
/* A core's NUMA-local arena. */
#define AR_ARENA_BYTES_MIN (64u * 1024)
#define AR_ARENA_BYTES_MAX (64ull * 1024 * 1024 * 1024)
/* PostgreSQL wire connections owned by one core. */
#define AR_PG_CONNECTIONS_PER_CORE_MAX 1024
/* Bytes of one PostgreSQL wire message Argon accepts (startup packet included);
 * page-read requests are tens of bytes, so the health and page service need no more. */
#define AR_PG_MESSAGE_BYTES_MAX 16384
/* A startup packet; PostgreSQL itself caps it at 10000 bytes. */
#define AR_PG_STARTUP_BYTES_MAX 10000
/* Parameters of one startup packet. */
#define AR_PG_STARTUP_PARAMS_MAX 64
/* Per-connection receive and send buffers. */
#define AR_PG_RECV_BUFFER_BYTES 16384
#define AR_PG_SEND_BUFFER_BYTES 16384
/* Management HTTP API connections at once. */
#define AR_HTTP_CONNECTIONS_MAX 64
/* Length of a filesystem path Argon builds. */
#define AR_PATH_BYTES_MAX 4096
/* Tenants one page server streams WAL into (one timeline each). */
#define AR_LIVE_TENANTS_MAX 64
/* Milliseconds a clean shutdown may take before the process gives up. */
#define AR_SHUTDOWN_MS_MAX 60000

static_assert((AR_SPSC_CAPACITY_MAX & (AR_SPSC_CAPACITY_MAX - 1)) == 0,
	      "ring capacity must be a power of two");
static_assert(AR_PG_STARTUP_BYTES_MAX <= AR_PG_MESSAGE_BYTES_MAX,
	      "a startup packet is a message");
static_assert(AR_PG_MESSAGE_BYTES_MAX <= AR_PG_RECV_BUFFER_BYTES,
	      "a whole message fits the receive buffer");
static_assert(AR_PG_CONNECTIONS_PER_CORE_MAX < AR_URING_DEPTH_MAX * 4,
	      "connections stay within what a ring can keep in flight");

#endif
