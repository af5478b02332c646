/*
 * http_api.c - The management API: JSON over HTTP (libmicrohttpd, its own
 * thread, off the cores), encoded with jansson.
 *
 *   GET  /v1/status   process, listeners, per-core facts and counters, and the
 *                     live timelines' WAL positions
 *   POST /v1/tenant/<tenant>/timeline/<timeline>/attach
 *                     {"primary": conninfo, "slot": name, "application_name": name}
 *   GET  /v1/tenant/<tenant>/timeline/<timeline>/wal      its WAL positions
 *   GET  /v1/tenant/<tenant>/timeline/<timeline>/page?rel=SPC/DB/REL&fork=F&blk=N&lsn=X/Y|latest
 *                     one 8 KiB page (application/octet-stream)
 *   GET  /v1/tenant/<tenant>/timeline/<timeline>/slru?kind=clog&segno=S&blk=N&lsn=X/Y|latest
 *                     one 8 KiB SLRU page (kind: clog, multixact_members,
 *                     multixact_offsets)
 *   POST /v1/tenant/<tenant>/timeline/<timeline>/branch   {"new_timeline": id, "lsn": "X/Y"}
 *
 * Pages and branches run on the tenant's live timeline's ingest thread (which
 * owns its store); the API thread reads only what is const after startup and
 * atomics.
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

#define HTTP_BODY_BYTES_MAX 16384

/* One request's upload, gathered until it is complete. */
struct http_request {
	char body[HTTP_BODY_BYTES_MAX + 1];
	size_t len;
	bool too_big;
};

static json_t *lsn_json(ar_lsn lsn)
{
	char t[STORE_LSN_TEXT_BYTES];
	store_lsn_text(lsn, t);
	return json_string(t);
}

static json_t *live_json(struct live_tl *t)
{
	struct live_status st;
	char th[33], lh[33], sys[24];
	live_status(t, &st);
	tl_id_hex(live_tenant(t), th);
	tl_id_hex(live_timeline(t), lh);
	snprintf(sys, sizeof(sys), "%llu", (unsigned long long)st.system_id);
	json_t *j =
	    json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I}", "tenant",
		      th, "timeline", lh, "state", live_state_name(st.state), "received_lsn",
		      lsn_json(st.received), "flushed_lsn", lsn_json(st.flushed), "ingested_lsn",
		      lsn_json(st.ingested), "primary_lsn", lsn_json(st.primary), "lag_bytes",
		      (json_int_t)(st.primary > st.ingested ? st.primary - st.ingested : 0),
		      "connects", (json_int_t)st.connects, "flushes", (json_int_t)st.flushes,
		      "replies", (json_int_t)st.replies, "records", (json_int_t)st.records,
		      "last_message_age_ms", (json_int_t)st.last_message_age_ms);
	json_object_set_new(j, "pg_timeline", json_integer(st.pg_timeline));
	json_object_set_new(j, "system_id", json_string(sys));
	json_object_set_new(j, "primary", json_string(st.primary_conninfo));
	json_object_set_new(j, "slot_name", json_string(st.slot_name));
	json_object_set_new(j, "application_name", json_string(st.application_name));
	json_object_set_new(j, "error", json_string(st.error));
	return j;
}

static json_t *http_status_json(const struct ar_server *s)
{
	json_t *cores = json_array();

	for (uint32_t i = 0; i < s->config.core_count; i++) {
		const struct ar_core_info *info = ar_runtime_core_info(s->runtime, i);
		struct ar_pglisten_stats st;
		ar_pglisten_stats_read(s->pglisten[i], &st);
		const struct ar_pageservice_stats *ps = &s->cores[i].ps_stats;
		json_t *core =
		    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "getpages",
			      (json_int_t)atomic_load(&ps->getpages), "page_cache_hits",
			      (json_int_t)atomic_load(&ps->page_cache_hits), "vectored_reads",
			      (json_int_t)atomic_load(&ps->vectored_reads), "vectored_blocks",
			      (json_int_t)atomic_load(&ps->vectored_blocks), "layer_cache_hits",
			      (json_int_t)atomic_load(&ps->layer_cache_hits), "layer_cache_misses",
			      (json_int_t)atomic_load(&ps->layer_cache_misses), "layer_cache_bytes",
			      (json_int_t)atomic_load(&ps->layer_cache_bytes));
		json_t *listen = json_pack(
		    "{s:I, s:i, s:i, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "index",
		    (json_int_t)info->index, "cpu", info->cpu, "numa_node", info->numa_node,
		    "io_uring_single_issuer", info->uring_single_issuer, "connections_accepted",
		    (json_int_t)st.connections_accepted, "connections_active",
		    (json_int_t)st.connections_active, "connections_refused",
		    (json_int_t)st.connections_refused, "queries", (json_int_t)st.queries,
		    "page_streams", (json_int_t)st.streams, "streams_handed_off",
		    (json_int_t)st.handoffs, "streams_adopted", (json_int_t)st.adopted);
		json_object_update(core, listen);
		json_decref(listen);
		json_array_append_new(cores, core);
	}
	double uptime_s = (double)(ar_core_now_ns() - s->started_ns) / 1e9;
	json_t *timelines = json_array();
	struct live_tl *tls[AR_LIVE_TENANTS_MAX];
	uint32_t n = ar_server_live_list((struct ar_server *)s, tls, AR_LIVE_TENANTS_MAX);
	for (uint32_t i = 0; i < n; i++)
		json_array_append_new(timelines, live_json(tls[i]));
	return json_pack("{s:s, s:s, s:i, s:f, s:s, s:s, s:s, s:o, s:o}", "status", "ok", "version",
			 AR_VERSION, "pid", (int)getpid(), "uptime_seconds", uptime_s, "data_dir",
			 s->config.data_dir, "pg_listen_address", s->pg_address,
			 "http_listen_address", s->http_address, "cores", cores, "timelines",
			 timelines);
}

/* Queue len bytes of data (malloc'ed; freed here in every case). */
static enum MHD_Result http_send(struct MHD_Connection *conn, unsigned status, void *data,
				 size_t len, const char *type)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(data);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	enum MHD_Result rc = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result http_reply(struct MHD_Connection *conn, unsigned status, json_t *body)
{
	char *text = json_dumps(body, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(body);
	if (!text)
		return MHD_NO;
	return http_send(conn, status, text, strlen(text), "application/json");
}

static json_t *http_error(const char *message, const char *path)
{
	return json_pack("{s:s, s:s}", "error", message, "path", path);
}

/* ---- timeline routes ---- */

struct route {
	struct tl_id tenant, timeline;
	char action[16];
};

/* "/v1/tenant/<32 hex>/timeline/<32 hex>/<action>" */
static bool parse_route(const char *url, struct route *r)
{
	char th[33], lh[33];
	int used = 0;
	if (sscanf(url, "/v1/tenant/%32[0-9a-f]/timeline/%32[0-9a-f]/%15[a-z]%n", th, lh, r->action,
		   &used) != 3 ||
	    url[used] != '\0')
		return false;
	return tl_id_from_hex(th, &r->tenant) && tl_id_from_hex(lh, &r->timeline);
}

static unsigned status_of(int rc)
{
	switch (rc) {
	case -EINVAL:
	case -ERANGE:
		return MHD_HTTP_BAD_REQUEST;
	case -AR_ENOTENANT:
	case -AR_ENOTIMELINE:
	case -AR_ENOKEY:
	case -ENOENT:
		return MHD_HTTP_NOT_FOUND;
	case -EBUSY:
	case -EEXIST:
	case -AR_EBELOWGC:
		return MHD_HTTP_CONFLICT;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

static enum MHD_Result route_attach(struct http_api *api, struct MHD_Connection *conn,
				    const char *url, const struct route *r, json_t *body)
{
	char err[LIVE_ERROR_BYTES] = "";
	const char *primary = json_string_value(json_object_get(body, "primary"));
	const char *slot = json_string_value(json_object_get(body, "slot"));
	const char *app = json_string_value(json_object_get(body, "application_name"));
	if (!primary)
		return http_reply(
		    conn, MHD_HTTP_BAD_REQUEST,
		    http_error("the body needs \"primary\": a connection string", url));
	int rc = ar_server_live_attach(api->server, &r->tenant, &r->timeline, primary,
				       slot ? slot : "", app ? app : "", err);
	if (rc < 0)
		return http_reply(conn, status_of(rc), http_error(err, url));
	return http_reply(conn, MHD_HTTP_OK,
			  live_json(ar_server_live_find(api->server, &r->tenant)));
}

struct page_req {
	struct tl_id timeline;
	struct ar_rel rel;
	bool slru;
	enum ar_slru kind;
	uint32_t segno;
	uint32_t blkno;
	ar_lsn lsn;
	bool latest;
	uint8_t *page;
};

/* On the tenant's ingest thread. */
static int page_on_thread(void *ctx, struct ar_store *s, struct ar_timeline *tl,
			  const struct ingest_state *st, char err[STORE_ERROR_BYTES])
{
	struct page_req *p = ctx;
	struct ingest_state bst;
	if (memcmp(&p->timeline, tl_id(tl), sizeof(p->timeline)) != 0) {
		tl = tenant_timeline(s->tenant, &p->timeline);
		if (!tl) {
			snprintf(err, STORE_ERROR_BYTES, "unknown timeline");
			return -AR_ENOTIMELINE;
		}
		int rc = store_state_read(s, &p->timeline, &bst, err);
		if (rc < 0)
			return rc;
		st = &bst;
	}
	ar_lsn lsn = p->latest ? tl_last_record_lsn(tl) : p->lsn;
	if (p->slru)
		return store_read_slru(tl, st, p->kind, p->segno, p->blkno, lsn, p->page, err);
	return store_read_page(tl, st, p->rel, p->blkno, lsn, p->page, err);
}

static bool parse_page_args(struct MHD_Connection *conn, struct page_req *p)
{
	const char *rel = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "rel");
	const char *fork = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "fork");
	const char *blk = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "blk");
	const char *lsn = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "lsn");
	unsigned spc, db, relno, f = 0;
	unsigned long b;
	int used = 0;
	if (!rel || !blk || !lsn || sscanf(rel, "%u/%u/%u%n", &spc, &db, &relno, &used) != 3 ||
	    rel[used] || (fork && sscanf(fork, "%u", &f) != 1) || f > 3 ||
	    sscanf(blk, "%lu", &b) != 1 || b > UINT32_MAX)
		return false;
	p->rel = (struct ar_rel){ spc, db, relno, (uint8_t)f };
	p->blkno = (uint32_t)b;
	p->latest = strcmp(lsn, "latest") == 0;
	return p->latest || store_parse_lsn(lsn, &p->lsn);
}

static bool parse_slru_args(struct MHD_Connection *conn, struct page_req *p)
{
	static const char *const kinds[] = { "clog", "multixact_members", "multixact_offsets" };
	const char *kind = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "kind");
	const char *seg = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "segno");
	const char *blk = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "blk");
	const char *lsn = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "lsn");
	unsigned long sg, b;
	int k = -1;
	if (!kind || !seg || !blk || !lsn || sscanf(seg, "%lu", &sg) != 1 ||
	    sscanf(blk, "%lu", &b) != 1 || sg > UINT32_MAX || b > UINT32_MAX)
		return false;
	for (int i = 0; i < 3; i++)
		if (strcmp(kind, kinds[i]) == 0)
			k = i;
	p->slru = true;
	p->kind = (enum ar_slru)(k < 0 ? 0 : k);
	p->segno = (uint32_t)sg;
	p->blkno = (uint32_t)b;
	p->latest = strcmp(lsn, "latest") == 0;
	return k >= 0 && (p->latest || store_parse_lsn(lsn, &p->lsn));
}

static enum MHD_Result route_page(struct http_api *api, struct MHD_Connection *conn,
				  const char *url, const struct route *r)
{
	char err[STORE_ERROR_BYTES];
	struct page_req p = { .timeline = r->timeline };
	bool slru = strcmp(r->action, "slru") == 0;
	if (!(slru ? parse_slru_args(conn, &p) : parse_page_args(conn, &p)))
		return http_reply(
		    conn, MHD_HTTP_BAD_REQUEST,
		    http_error(slru ? "expected ?kind=clog|multixact_members|multixact_offsets"
				      "&segno=S&blk=N&lsn=X/Y|latest"
				    : "expected ?rel=SPC/DB/REL&fork=F&blk=N&lsn=X/Y|latest",
			       url));
	struct live_tl *t = ar_server_live_find(api->server, &r->tenant);
	if (!t)
		return http_reply(conn, MHD_HTTP_NOT_FOUND,
				  http_error("the tenant is not loaded (attach a primary)", url));
	if (!(p.page = malloc(AR_PAGE_BYTES)))
		return MHD_NO;
	int rc = live_call(t, page_on_thread, &p, err);
	if (rc < 0) {
		free(p.page);
		return http_reply(conn, status_of(rc), http_error(err, url));
	}
	return http_send(conn, MHD_HTTP_OK, p.page, AR_PAGE_BYTES, "application/octet-stream");
}

struct branch_req {
	struct tl_id parent, child;
	ar_lsn lsn;
};

static int branch_on_thread(void *ctx, struct ar_store *s, struct ar_timeline *tl,
			    const struct ingest_state *st, char err[STORE_ERROR_BYTES])
{
	struct branch_req *b = ctx;
	struct ingest_state pst;
	if (memcmp(&b->parent, tl_id(tl), sizeof(b->parent)) != 0) {
		int rc = store_state_read(s, &b->parent, &pst, err);
		if (rc < 0)
			return rc;
		st = &pst;
	}
	return store_branch(s, &b->parent, st, b->lsn, &b->child, err);
}

static enum MHD_Result route_branch(struct http_api *api, struct MHD_Connection *conn,
				    const char *url, const struct route *r, json_t *body)
{
	char err[STORE_ERROR_BYTES];
	struct branch_req b = { .parent = r->timeline };
	const char *child = json_string_value(json_object_get(body, "new_timeline"));
	const char *lsn = json_string_value(json_object_get(body, "lsn"));
	if (!child || !lsn || !tl_id_from_hex(child, &b.child) || !store_parse_lsn(lsn, &b.lsn))
		return http_reply(conn, MHD_HTTP_BAD_REQUEST,
				  http_error("the body needs \"new_timeline\" (32 hex digits) and "
					     "\"lsn\" (X/Y)",
					     url));
	struct live_tl *t = ar_server_live_find(api->server, &r->tenant);
	if (!t)
		return http_reply(conn, MHD_HTTP_NOT_FOUND,
				  http_error("the tenant is not loaded (attach a primary)", url));
	int rc = live_call(t, branch_on_thread, &b, err);
	if (rc < 0)
		return http_reply(conn, status_of(rc), http_error(err, url));
	return http_reply(conn, MHD_HTTP_CREATED,
			  json_pack("{s:s, s:s}", "new_timeline", child, "lsn", lsn));
}

static enum MHD_Result route_timeline(struct http_api *api, struct MHD_Connection *conn,
				      const char *url, const char *method, struct http_request *req)
{
	struct route r;
	if (!parse_route(url, &r))
		return http_reply(conn, MHD_HTTP_NOT_FOUND, http_error("not found", url));
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	if (get && strcmp(r.action, "wal") == 0) {
		struct live_tl *t = ar_server_live_find(api->server, &r.tenant);
		if (!t || memcmp(live_timeline(t), &r.timeline, sizeof(r.timeline)) != 0)
			return http_reply(conn, MHD_HTTP_NOT_FOUND,
					  http_error("no WAL is streamed into this timeline", url));
		return http_reply(conn, MHD_HTTP_OK, live_json(t));
	}
	if (get && (strcmp(r.action, "page") == 0 || strcmp(r.action, "slru") == 0))
		return route_page(api, conn, url, &r);
	if (!post)
		return http_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				  http_error("method not allowed", url));
	json_error_t jerr;
	json_t *body = req->too_big ? NULL : json_loadb(req->body, req->len, 0, &jerr);
	if (!json_is_object(body)) {
		json_decref(body);
		return http_reply(conn, MHD_HTTP_BAD_REQUEST,
				  http_error(req->too_big ? "the body is too large"
							  : "the body must be a JSON object",
					     url));
	}
	enum MHD_Result rc =
	    strcmp(r.action, "attach") == 0 ? route_attach(api, conn, url, &r, body)
	    : strcmp(r.action, "branch") == 0
		? route_branch(api, conn, url, &r, body)
		: http_reply(conn, MHD_HTTP_NOT_FOUND, http_error("not found", url));
	json_decref(body);
	return rc;
}

static enum MHD_Result http_handle(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version, const char *upload_data,
				   size_t *upload_data_size, void **con_cls)
{
	struct http_api *api = cls;
	(void)version;

	/* Gather the body; answer once it is complete. */
	if (*con_cls == NULL) {
		struct http_request *req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		*con_cls = req;
		return MHD_YES;
	}
	struct http_request *req = *con_cls;
	if (*upload_data_size != 0) {
		if (req->len + *upload_data_size > HTTP_BODY_BYTES_MAX)
			req->too_big = true;
		else
			memcpy(req->body + req->len, upload_data, *upload_data_size);
		req->len += req->too_big ? 0 : *upload_data_size;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/v1/status") == 0) {
		if (strcmp(method, "GET") != 0)
			return http_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					  http_error("method not allowed", url));
		return http_reply(conn, MHD_HTTP_OK, http_status_json(api->server));
	}
	return route_timeline(api, conn, url, method, req);
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			   enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
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
	    MHD_OPTION_NOTIFY_COMPLETED, http_completed, NULL, MHD_OPTION_LISTEN_SOCKET,
	    server->http_listen_fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)AR_HTTP_CONNECTIONS_MAX,
	    MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
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
