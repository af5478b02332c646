/*
 * argonctl.c - Argon's control CLI: talks to a page server's management API.
 *
 *   argonctl [--api URL] [--json] status
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

/* GET base+path; returns the parsed JSON body, or NULL after printing why. */
static json_t *api_get(const char *base, const char *path, long *status_out)
{
	char url[1024];
	char curl_err[CURL_ERROR_SIZE] = "";
	struct reply r = { 0 };
	json_t *body = NULL;

	snprintf(url, sizeof(url), "%s%s", base, path);
	CURL *curl = curl_easy_init();
	if (!curl) {
		fprintf(stderr, "argonctl: could not initialise libcurl\n");
		return NULL;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, reply_append);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(curl);
	if (rc != CURLE_OK) {
		fprintf(stderr, "argonctl: could not reach the management API at %s: %s\n", url,
			r.too_big     ? "reply too large"
			: curl_err[0] ? curl_err
				      : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status_out);
	json_error_t jerr;
	body = json_loadb(r.data ? r.data : "", r.len, 0, &jerr);
	if (!body)
		fprintf(
		    stderr,
		    "argonctl: the management API at %s answered HTTP %ld with invalid JSON: %s\n",
		    url, *status_out, jerr.text);
out:
	curl_easy_cleanup(curl);
	free(r.data);
	return body;
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
	    "  status           show the server's status, listeners and cores\n\n"
	    "Options:\n"
	    "  -a, --api=URL    management API (default $ARGON_API_URL or http://127.0.0.1:9898)\n"
	    "  -j, --json       print the server's JSON answer as it is\n"
	    "  -V, --version    print the version and exit\n"
	    "  -h, --help       show this help and exit\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "api", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *api = getenv("ARGON_API_URL");
	bool json_out = false;
	int opt;

	if (argc > 1 && (strcmp(argv[1], "-D") == 0 || strncmp(argv[1], "--data-dir", 10) == 0))
		return argonctl_local(argc, argv);
	if (!api || !*api)
		api = "http://127.0.0.1:9898";
	while ((opt = getopt_long(argc, argv, "a:jVh", options, NULL)) != -1) {
		switch (opt) {
		case 'a':
			api = optarg;
			break;
		case 'j':
			json_out = true;
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
	if (optind != argc - 1 || strcmp(argv[optind], "status") != 0) {
		if (optind < argc)
			fprintf(stderr, "argonctl: unknown command \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	long http_status = 0;
	json_t *st = api_get(api, "/v1/status", &http_status);
	int rc = EXIT_SERVER;
	if (st && http_status == 200) {
		if (json_out) {
			char *text = json_dumps(st, JSON_INDENT(2) | JSON_SORT_KEYS);
			puts(text ? text : "null");
			free(text);
		} else {
			print_status(st);
		}
		rc = 0;
	} else if (st) {
		fprintf(stderr, "argonctl: the management API answered HTTP %ld: %s\n", http_status,
			json_string_value(json_object_get(st, "error")));
	}
	json_decref(st);
	curl_global_cleanup();
	return rc;
}
