/*
 * server.h - The page server process: what main wires together, shared by the
 * files of server/ only.  Everything here is written by the main thread before
 * the cores start and is read-only afterwards, except the per-core listeners'
 * atomic counters.
 */
#ifndef AR_SERVER_SERVER_H
#define AR_SERVER_SERVER_H

#include "common/config.h"
#include "common/limits.h"
#include "common/pglisten.h"
#include "common/runtime.h"
#include "common/datadir.h"
#include "ingest/live.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

struct ar_server;

struct ps_core;

/* What one core's page service did: written by that core only (relaxed), read by
 * /v1/status. */
struct ar_pageservice_stats {
	_Atomic uint64_t getpages;
	_Atomic uint64_t page_cache_hits;
	_Atomic uint64_t vectored_reads;  /* batched engine reads (tl_prefetch) submitted */
	_Atomic uint64_t vectored_blocks; /* layer blocks they read */
	/* The core's layer cache (cache/layercache.h), as of its last batch. */
	_Atomic uint64_t layer_cache_hits;
	_Atomic uint64_t layer_cache_misses;
	_Atomic uint64_t layer_cache_bytes;
};

/* The context of one core's health/page service. */
struct ar_server_core {
	struct ar_server *server;
	uint32_t index;
	struct ps_core *ps; /* server/pageservice.c, written by the core's start hook */
	struct ar_pageservice_stats ps_stats;
};

struct ar_server {
	struct ar_config config;
	struct ar_datadir datadir;
	struct ar_runtime *runtime;
	int pg_listen_fd;
	int http_listen_fd;
	char pg_address[AR_CONFIG_ADDRESS_BYTES + 8]; /* as bound, with the real port */
	char http_address[AR_CONFIG_ADDRESS_BYTES + 8];
	uint64_t started_ns;
	struct ar_server_core cores[AR_CORES_MAX];
	struct ar_pglisten *pglisten[AR_CORES_MAX]; /* written by each core's start hook */
	/* The same, for the listeners themselves (hand-offs between cores). */
	_Atomic(struct ar_pglisten *) pglisten_peers[AR_CORES_MAX];
	struct http_api *http;
	struct ar_live_set *live; /* server/live.c */
};

/* server/pgservice.c: answers simple queries on the PostgreSQL listener. */
void ar_pgservice_query(void *ctx, const char *query, struct pgw_out *out);

/* server/pageservice.c: the page service on each core (its listener included). */
__attribute__((warn_unused_result)) int ar_pageservice_core_start(struct ar_server *s,
								  struct ar_core *core);
void ar_pageservice_core_stop(struct ar_server *s, struct ar_core *core);
/* A tenant's files are held by the page service (live false) or by a live
 * timeline (true), never both: -EBUSY if the other side holds them. */
__attribute__((warn_unused_result)) int ar_pageservice_claim(const struct tl_id *tenant, bool live);
/* A live claim whose timeline failed to start: the page service may serve it. */
void ar_pageservice_unclaim(const struct tl_id *tenant);

/* server/live.c: the live timelines (ingest/live.h), at most one per tenant. */
/* init and load before the cores start: a page stream looks its tenant up, and a
 * tenant loaded live after a core opened it would be refused. */
__attribute__((warn_unused_result)) int ar_server_live_init(struct ar_server *s);
__attribute__((warn_unused_result)) int ar_server_live_load(struct ar_server *s);
void ar_server_live_stop(struct ar_server *s);
__attribute__((warn_unused_result)) int ar_server_live_attach(
    struct ar_server *s, const struct tl_id *tenant, const struct tl_id *timeline,
    const char *conninfo, const char *slot, const char *appname, char err[LIVE_ERROR_BYTES]);
/* The tenant's live timeline (its ingest thread serves the tenant's reads). */
struct live_tl *ar_server_live_find(struct ar_server *s, const struct tl_id *tenant);
uint32_t ar_server_live_list(struct ar_server *s, struct live_tl **out, uint32_t max);

/* server/http_api.c: the management API (libmicrohttpd on its own thread). */
__attribute__((warn_unused_result)) int ar_http_api_start(struct ar_server *server,
							  struct http_api **api_out);
void ar_http_api_stop(struct http_api *api);

#endif
