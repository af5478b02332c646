/*
 * argonctl.c - Argon's control CLI: talks to a page server's management API.
 *
 *   argonctl [--api URL] [--json] status
 *   argonctl [--api URL] [--tenant ID] [--timeline ID] attach CONNINFO
 *            [--slot NAME] [--application-name NAME]
 *   argonctl ... wal                      the timeline's WAL positions and lag
 *   argonctl ... getpage --lsn LSN|latest SPC DB REL FORK BLOCK FILE
 *   argonctl ... getslru --lsn LSN|latest KIND SEGNO BLOCK FILE
 *   argonctl ... branch --lsn LSN --new ID
 *
 * The API address comes from --api, else $ARGON_API_URL, else the default
 * http_listen_address.  Exit codes: 0 answered, 1 usage, 2 server unreachable
 * or answered with an error.
 */
#include "ar_build_config.h"
#include "tools/argonctl_local.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { REPLY_BYTES_MAX = 1 << 20, EXIT_USAGE = 1, EXIT_SERVER = 2 };

struct reply {
	char *data;
	size_t len;
	bool too_big;
};

static size_t reply_append(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct reply *r = userdata;
	size_t n = size * nmemb;

	if (r->len + n > REPLY_BYTES_MAX) {
		r->too_big = true;
		return 0; /* makes curl fail the transfer */
	}
	char *grown = realloc(r->data, r->len + n + 1);
	if (!grown)
		return 0;
	r->data = grown;
	memcpy(r->data + r->len, ptr, n);
	r->len += n;
	r->data[r->len] = '\0';
	return n;
}

/* method base+path with an optional JSON body; the raw reply in *r.  false
 * (after printing why) if the server could not be reached. */
static bool api_call(const char *base, const char *method, const char *path, const char *body,
		     struct reply *r, long *status_out)
{
	char url[1024];
	char curl_err[CURL_ERROR_SIZE] = "";
	snprintf(url, sizeof(url), "%s%s", base, path);
	CURL *curl = curl_easy_init();
	if (!curl) {
		fprintf(stderr, "argonctl: could not initialise libcurl\n");
		return false;
	}
	struct curl_slist *headers = NULL;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, reply_append);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(curl);
	if (rc != CURLE_OK)
		fprintf(stderr, "argonctl: could not reach the management API at %s: %s\n", url,
			r->too_big    ? "reply too large"
			: curl_err[0] ? curl_err
				      : curl_easy_strerror(rc));
	else
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status_out);
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	return rc == CURLE_OK;
}

/* A JSON call; returns the parsed body, or NULL after printing why. */
static json_t *api_json(const char *base, const char *method, const char *path, const char *body,
			long *status_out)
{
	struct reply r = { 0 };
	json_t *j = NULL;
	if (api_call(base, method, path, body, &r, status_out)) {
		json_error_t jerr;
		j = json_loadb(r.data ? r.data : "", r.len, 0, &jerr);
		if (!j)
			fprintf(stderr,
				"argonctl: the management API answered HTTP %ld with "
				"something that is not JSON: %s\n",
				*status_out, jerr.text);
	}
	free(r.data);
	return j;
}

static json_t *api_get(const char *base, const char *path, long *status_out)
{
	return api_json(base, "GET", path, NULL, status_out);
}

static void print_status(json_t *st)
{
	printf("status:               %s\n", json_string_value(json_object_get(st, "status")));
	printf("version:              %s\n", json_string_value(json_object_get(st, "version")));
	printf("pid:                  %lld\n",
	       (long long)json_integer_value(json_object_get(st, "pid")));
	printf("uptime:               %.1f s\n",
	       json_number_value(json_object_get(st, "uptime_seconds")));
	printf("data directory:       %s\n", json_string_value(json_object_get(st, "data_dir")));
	printf("PostgreSQL protocol:  %s\n",
	       json_string_value(json_object_get(st, "pg_listen_address")));
	printf("management API:       http://%s\n",
	       json_string_value(json_object_get(st, "http_listen_address")));
	json_t *cores = json_object_get(st, "cores");
	printf("cores:                %zu\n", json_array_size(cores));
	size_t i;
	json_t *core;
	json_array_foreach(cores, i, core)
	{
		printf("  core %lld: CPU %lld, NUMA node %lld, connections %lld active / %lld "
		       "accepted, "
		       "%lld queries\n",
		       (long long)json_integer_value(json_object_get(core, "index")),
		       (long long)json_integer_value(json_object_get(core, "cpu")),
		       (long long)json_integer_value(json_object_get(core, "numa_node")),
		       (long long)json_integer_value(json_object_get(core, "connections_active")),
		       (long long)json_integer_value(json_object_get(core, "connections_accepted")),
		       (long long)json_integer_value(json_object_get(core, "queries")));
	}
}

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "argonctl controls an Argon page server through its management API.\n\n"
	    "Usage:\n"
	    "  argonctl [OPTION]... COMMAND\n\n"
	    "Commands:\n"
	    "  status           show the server's status, listeners, cores and live timelines\n"
	    "  attach CONNINFO [--slot NAME] [--application-name NAME]\n"
	    "                   stream the timeline's WAL from a PostgreSQL 15 primary (Argon\n"
	    "                   as its standby; name it in synchronous_standby_names)\n"
	    "  wal              the timeline's received, flushed and ingested LSNs and lag\n"
	    "  getpage --lsn LSN|latest SPC DB REL FORK BLOCK FILE\n"
	    "                   one 8 KiB page as of LSN, from the running server\n"
	    "  getslru --lsn LSN|latest KIND SEGNO BLOCK FILE\n"
	    "                   an SLRU page (clog, multixact_members, multixact_offsets)\n"
	    "  branch --lsn LSN --new ID\n"
	    "                   a copy-on-write branch of the timeline at LSN\n\n"
	    "Options:\n"
	    "  -a, --api=URL    management API (default $ARGON_API_URL or http://127.0.0.1:9898)\n"
	    "  --tenant=ID, --timeline=ID\n"
	    "                   32 hex digits (default 000...01)\n"
	    "  -j, --json       print the server's JSON answer as it is\n"
	    "  -V, --version    print the version and exit\n"
	    "  -h, --help       show this help and exit\n");
}

struct opts {
	const char *api;
	bool json_out;
	const char *tenant, *timeline;
	const char *slot, *appname;
	const char *lsn, *new_id;
};

/* Print a JSON answer (as it is, or with the error line). */
static int finish(json_t *j, long status, const struct opts *o, void (*print)(json_t *))
{
	int rc = EXIT_SERVER;
	if (j && status >= 200 && status < 300) {
		if (o->json_out || !print) {
			char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
			puts(text ? text : "null");
			free(text);
		} else {
			print(j);
		}
		rc = 0;
	} else if (j) {
		fprintf(stderr, "argonctl: the management API answered HTTP %ld: %s\n", status,
			json_string_value(json_object_get(j, "error")));
	}
	json_decref(j);
	return rc;
}

static void timeline_path(const struct opts *o, const char *action, char *out, size_t n)
{
	snprintf(out, n, "/v1/tenant/%s/timeline/%s/%s", o->tenant, o->timeline, action);
}

static void print_wal(json_t *j)
{
	static const char *const keys[] = { "state",       "primary_lsn",  "received_lsn",
					    "flushed_lsn", "ingested_lsn", "lag_bytes",
					    "pg_timeline", "slot_name",    "application_name",
					    "primary",     "error" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(j, keys[i]);
		if (json_is_integer(v))
			printf("%-17s %lld\n", keys[i], (long long)json_integer_value(v));
		else
			printf("%-17s %s\n", keys[i],
			       json_string_value(v) ? json_string_value(v) : "");
	}
}

/* POST the JSON body b (taken) to the timeline's action; print the answer. */
static int post_json(const struct opts *o, const char *action, json_t *b, void (*print)(json_t *))
{
	char path[200];
	timeline_path(o, action, path, sizeof(path));
	char *body = b ? json_dumps(b, 0) : NULL;
	json_decref(b);
	long status = 0;
	json_t *j = body ? api_json(o->api, "POST", path, body, &status) : NULL;
	free(body);
	return finish(j, status, o, print);
}

static int cmd_attach(const struct opts *o, const char *conninfo)
{
	return post_json(o, "attach",
			 json_pack("{s:s, s:s, s:s}", "primary", conninfo, "slot",
				   o->slot ? o->slot : "", "application_name",
				   o->appname ? o->appname : ""),
			 print_wal);
}

static int cmd_branch(const struct opts *o)
{
	return post_json(o, "branch",
			 json_pack("{s:s, s:s}", "new_timeline", o->new_id, "lsn", o->lsn), NULL);
}

/* GET path into FILE (8 KiB), or print the server's error. */
static int get_page_file(const struct opts *o, const char *path, const char *file)
{
	struct reply r = { 0 };
	long status = 0;
	int rc = EXIT_SERVER;
	if (api_call(o->api, "GET", path, NULL, &r, &status)) {
		json_error_t jerr;
		json_t *j =
		    status == 200 ? NULL : json_loadb(r.data ? r.data : "", r.len, 0, &jerr);
		FILE *f = status == 200 && r.len == 8192 ? fopen(file, "wb") : NULL;
		if (f && fwrite(r.data, 1, r.len, f) == r.len && fclose(f) == 0)
			rc = 0;
		else if (status == 200)
			fprintf(stderr, "argonctl: writing %s failed\n", file);
		else
			fprintf(stderr, "argonctl: the management API answered HTTP %ld: %s\n",
				status, j ? json_string_value(json_object_get(j, "error")) : "?");
		json_decref(j);
	}
	free(r.data);
	return rc;
}

static int cmd_getpage(const struct opts *o, char **w)
{
	char path[400];
	timeline_path(o, "page", path, sizeof(path));
	size_t n = strlen(path);
	snprintf(path + n, sizeof(path) - n, "?rel=%s/%s/%s&fork=%s&blk=%s&lsn=%s", w[0], w[1],
		 w[2], w[3], w[4], o->lsn);
	return get_page_file(o, path, w[5]);
}

static int cmd_getslru(const struct opts *o, char **w)
{
	char path[400];
	timeline_path(o, "slru", path, sizeof(path));
	size_t n = strlen(path);
	snprintf(path + n, sizeof(path) - n, "?kind=%s&segno=%s&blk=%s&lsn=%s", w[0], w[1], w[2],
		 o->lsn);
	return get_page_file(o, path, w[3]);
}

static int run(const struct opts *o, int argc, char **argv)
{
	const char *cmd = argv[0];
	long status = 0;
	if (strcmp(cmd, "status") == 0 && argc == 1) {
		json_t *j = api_get(o->api, "/v1/status", &status);
		return finish(j, status, o, print_status);
	}
	if (strcmp(cmd, "wal") == 0 && argc == 1) {
		char path[200];
		timeline_path(o, "wal", path, sizeof(path));
		json_t *j = api_get(o->api, path, &status);
		return finish(j, status, o, print_wal);
	}
	if (strcmp(cmd, "attach") == 0 && argc == 2)
		return cmd_attach(o, argv[1]);
	if (strcmp(cmd, "branch") == 0 && argc == 1 && o->lsn && o->new_id)
		return cmd_branch(o);
	if (strcmp(cmd, "getpage") == 0 && argc == 7 && o->lsn)
		return cmd_getpage(o, argv + 1);
	if (strcmp(cmd, "getslru") == 0 && argc == 5 && o->lsn)
		return cmd_getslru(o, argv + 1);
	fprintf(stderr, "argonctl: unknown command or wrong operands \"%s\"\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	enum { OPT_TENANT = 256, OPT_TIMELINE, OPT_SLOT, OPT_APPNAME, OPT_LSN, OPT_NEW };
	static const struct option options[] = {
		{ "api", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "tenant", required_argument, NULL, OPT_TENANT },
		{ "timeline", required_argument, NULL, OPT_TIMELINE },
		{ "slot", required_argument, NULL, OPT_SLOT },
		{ "application-name", required_argument, NULL, OPT_APPNAME },
		{ "lsn", required_argument, NULL, OPT_LSN },
		{ "new", required_argument, NULL, OPT_NEW },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .api = getenv("ARGON_API_URL"),
			  .tenant = "00000000000000000000000000000001",
			  .timeline = "00000000000000000000000000000001" };
	int opt;

	if (argc > 1 && (strcmp(argv[1], "-D") == 0 || strncmp(argv[1], "--data-dir", 10) == 0))
		return argonctl_local(argc, argv);
	if (!o.api || !*o.api)
		o.api = "http://127.0.0.1:9898";
	while ((opt = getopt_long(argc, argv, "a:jVh", options, NULL)) != -1) {
		switch (opt) {
		case 'a':
			o.api = optarg;
			break;
		case 'j':
			o.json_out = true;
			break;
		case OPT_TENANT:
			o.tenant = optarg;
			break;
		case OPT_TIMELINE:
			o.timeline = optarg;
			break;
		case OPT_SLOT:
			o.slot = optarg;
			break;
		case OPT_APPNAME:
			o.appname = optarg;
			break;
		case OPT_LSN:
			o.lsn = optarg;
			break;
		case OPT_NEW:
			o.new_id = optarg;
			break;
		case 'V':
			printf("argonctl %s\n", AR_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			argonctl_local_usage();
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = run(&o, argc - optind, argv + optind);
	curl_global_cleanup();
	return rc;
}
