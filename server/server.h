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

#include <stdint.h>
#include <time.h>

struct ar_server;

/* The context of one core's health/page service. */
struct ar_server_core {
	struct ar_server *server;
	uint32_t index;
};

struct ar_server {
	struct ar_config config;
	struct ar_datadir datadir;
	struct ar_runtime *runtime;
	int pg_listen_fd;
	int http_listen_fd;
	char pg_address[AR_CONFIG_ADDRESS_BYTES + 8];   /* as bound, with the real port */
	char http_address[AR_CONFIG_ADDRESS_BYTES + 8];
	uint64_t started_ns;
	struct ar_server_core cores[AR_CORES_MAX];
	struct ar_pglisten *pglisten[AR_CORES_MAX]; /* written by each core's start hook */
	struct http_api *http;
};

/* server/pgservice.c: answers simple queries on the PostgreSQL listener. */
void ar_pgservice_query(void *ctx, const char *query, struct pgw_out *out);

/* server/http_api.c: the management API (libmicrohttpd on its own thread). */
__attribute__((warn_unused_result))
int ar_http_api_start(struct ar_server *server, struct http_api **api_out);
void ar_http_api_stop(struct http_api *api);

#endif
