/*
 * http_api.c - The management API: JSON over HTTP (libmicrohttpd, its own
 * thread, off the cores), encoded with jansson.
 *
 *   GET /v1/status   process, listeners and per-core facts and counters
 *
 * Tenants, timelines and branches join as later issues add them.  The API
 * thread reads only what is const after startup and the listeners' atomics.
 */
#include "server/server.h"

#include "ar_build_config.h"
#include "common/err.h"
#include "common/log.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct http_api {
	struct MHD_Daemon *daemon;
	struct ar_server *server;
};

static json_t *http_status_json(const struct ar_server *s)
{
	json_t *cores = json_array();

	for (uint32_t i = 0; i < s->config.core_count; i++) {
		const struct ar_core_info *info = ar_runtime_core_info(s->runtime, i);
		struct ar_pglisten_stats st;
		ar_pglisten_stats_read(s->pglisten[i], &st);
		json_array_append_new(
		    cores,
		    json_pack("{s:I, s:i, s:i, s:b, s:I, s:I, s:I, s:I}", "index",
			      (json_int_t)info->index, "cpu", info->cpu, "numa_node",
			      info->numa_node, "io_uring_single_issuer", info->uring_single_issuer,
			      "connections_accepted", (json_int_t)st.connections_accepted,
			      "connections_active", (json_int_t)st.connections_active,
			      "connections_refused", (json_int_t)st.connections_refused, "queries",
			      (json_int_t)st.queries));
	}
	double uptime_s = (double)(ar_core_now_ns() - s->started_ns) / 1e9;
	return json_pack("{s:s, s:s, s:i, s:f, s:s, s:s, s:s, s:o}", "status", "ok", "version",
			 AR_VERSION, "pid", (int)getpid(), "uptime_seconds", uptime_s, "data_dir",
			 s->config.data_dir, "pg_listen_address", s->pg_address,
			 "http_listen_address", s->http_address, "cores", cores);
}

static enum MHD_Result http_reply(struct MHD_Connection *conn, unsigned status, json_t *body)
{
	char *text = json_dumps(body, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(body);
	if (!text)
		return MHD_NO;
	size_t len = strlen(text);
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	enum MHD_Result rc = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static json_t *http_error(const char *message, const char *path)
{
	return json_pack("{s:s, s:s}", "error", message, "path", path);
}

static enum MHD_Result http_handle(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version, const char *upload_data,
				   size_t *upload_data_size, void **con_cls)
{
	struct http_api *api = cls;
	(void)version;
	(void)upload_data;

	/* Bodies are not used yet: swallow them, answer once they are complete. */
	if (*con_cls == NULL) {
		*con_cls = api;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/v1/status") == 0) {
		if (strcmp(method, "GET") != 0)
			return http_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					  http_error("method not allowed", url));
		return http_reply(conn, MHD_HTTP_OK, http_status_json(api->server));
	}
	return http_reply(conn, MHD_HTTP_NOT_FOUND, http_error("not found", url));
}

static void http_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	AR_LOG(WARNING, "http", "%s", line);
}

int ar_http_api_start(struct ar_server *server, struct http_api **api_out)
{
	struct http_api *api = calloc(1, sizeof(*api));
	if (!api)
		return -ENOMEM;
	api->server = server;
	api->daemon = MHD_start_daemon(
	    MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, http_handle, api,
	    MHD_OPTION_EXTERNAL_LOGGER, http_log,
	    NULL, /* first, so every message goes through it */
	    MHD_OPTION_LISTEN_SOCKET, server->http_listen_fd, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)AR_HTTP_CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
	if (!api->daemon) {
		free(api);
		return -EIO;
	}
	*api_out = api;
	return 0;
}

void ar_http_api_stop(struct http_api *api)
{
	if (!api)
		return;
	MHD_stop_daemon(api->daemon); /* joins the API thread and closes the listen fd */
	free(api);
}
