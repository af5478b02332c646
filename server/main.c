/*
 * main.c - argon-pageserver: configuration, data directory lock, listeners,
 * the core threads, the management API, and a clean shutdown on SIGTERM/SIGINT.
 *
 * Startup order: defaults -> config file -> flags -> validate -> lock the data
 * directory -> bind the listeners (a port in use is a startup error) -> block
 * signals (threads inherit the mask) -> start cores -> start the API -> wait for
 * a signal.  Shutdown reverses it; a watchdog ends the process if shutdown takes
 * longer than shutdown_timeout_ms.
 */
#include "server/server.h"

#include "ar_build_config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/net.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { LISTEN_BACKLOG = 512, FLAG_SETS_MAX = 128 };

static void usage(FILE *out)
{
	fprintf(out,
		"argon-pageserver is Argon's page server: it stores PostgreSQL pages by LSN and\n"
		"serves them over the PostgreSQL protocol.\n\n"
		"Usage:\n"
		"  argon-pageserver [OPTION]...\n\n"
		"Options:\n"
		"  -f, --config=FILE        read parameters from FILE (key = value lines)\n"
		"  -D, --data-dir=DIR       data directory (same as -c data_dir=DIR)\n"
		"  -c, --set=NAME=VALUE     set a parameter; overrides the config file\n"
		"  -V, --version            print the version and exit\n"
		"  -h, --help               show this help and exit\n\n"
		"Parameters (units: B, kB, MB, GB, TB or KiB..TiB for _bytes; ms, s, min, h, d for "
		"_ms):\n");
	ar_config_print_table(out);
	fprintf(out,
		"\nStop with SIGTERM or SIGINT; the data directory is locked while running.\n");
}

/* One error line on stderr, PostgreSQL style, then exit 1. */
static _Noreturn void die(const char *message)
{
	AR_LOG(FATAL, "server", "%s", message);
	exit(1);
}

static void load_config(int argc, char **argv, struct ar_config *config)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'f' },
		{ "data-dir", required_argument, NULL, 'D' },
		{ "set", required_argument, NULL, 'c' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL;
	const char *sets[FLAG_SETS_MAX];
	size_t set_count = 0;
	char err[AR_CONFIG_ERROR_BYTES];
	int opt;

	while ((opt = getopt_long(argc, argv, "f:D:c:Vh", options, NULL)) != -1) {
		switch (opt) {
		case 'f':
			config_path = optarg;
			break;
		case 'D':
		case 'c':
			if (set_count == FLAG_SETS_MAX)
				die("too many -c options");
			sets[set_count++] = opt == 'D' ? NULL : optarg;
			if (opt == 'D')
				snprintf(config->data_dir, sizeof(config->data_dir), "%s", optarg);
			break;
		case 'V':
			printf("argon-pageserver %s\n", AR_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "Try \"argon-pageserver --help\" for more information.\n");
			exit(1);
		}
	}
	if (optind < argc) {
		snprintf(err, sizeof(err), "unexpected argument \"%s\"", argv[optind]);
		die(err);
	}
	/* -D is kept aside so the config file cannot undo it. */
	char data_dir_flag[AR_PATH_BYTES_MAX];
	snprintf(data_dir_flag, sizeof(data_dir_flag), "%s", config->data_dir);
	ar_config_init_defaults(config);
	if (config_path && ar_config_load_file(config, config_path, err) < 0)
		die(err);
	for (size_t i = 0; i < set_count; i++) {
		if (!sets[i]) {
			if (ar_config_set(config, "data_dir", data_dir_flag, err) < 0)
				die(err);
			continue;
		}
		char key[128];
		const char *eq = strchr(sets[i], '=');
		if (!eq || eq == sets[i] || (size_t)(eq - sets[i]) >= sizeof(key)) {
			snprintf(err, sizeof(err), "invalid -c option \"%s\": expected NAME=VALUE",
				 sets[i]);
			die(err);
		}
		memcpy(key, sets[i], (size_t)(eq - sets[i]));
		key[eq - sets[i]] = '\0';
		if (ar_config_set(config, key, eq + 1, err) < 0)
			die(err);
	}
	if (ar_config_finish(config, err) < 0)
		die(err);
}

static int server_core_start(struct ar_core *core, void *ctx)
{
	struct ar_server *s = ctx;
	uint32_t i = ar_core_info(core)->index;

	s->cores[i].server = s;
	s->cores[i].index = i;
	return ar_pageservice_core_start(s, core);
}

static void server_core_stop(struct ar_core *core, void *ctx)
{
	ar_pageservice_core_stop(ctx, core);
}

static void bind_listener(const char *address, int *fd_out, char *bound, size_t bound_size)
{
	char err[AR_CONFIG_ERROR_BYTES];
	char host[AR_CONFIG_ADDRESS_BYTES];
	uint16_t port;

	if (ar_listen_tcp(address, LISTEN_BACKLOG, fd_out, err) < 0)
		die(err);
	int rc = ar_parse_address(address, host, &port);
	(void)rc; /* validated with the config */
	snprintf(bound, bound_size, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
		 ar_socket_port(*fd_out));
}

static void *shutdown_watchdog(void *arg)
{
	const struct ar_server *s = arg;
	usleep((useconds_t)(s->config.shutdown_timeout_ms * 1000));
	AR_LOG(FATAL, "server", "shutdown took longer than %llu ms; exiting without cleanup",
	       (unsigned long long)s->config.shutdown_timeout_ms);
	_exit(1);
}

static void log_cores(const struct ar_server *s)
{
	for (uint32_t i = 0; i < s->config.core_count; i++) {
		const struct ar_core_info *info = ar_runtime_core_info(s->runtime, i);
		AR_LOG(LOG, "runtime",
		       "core %u pinned to CPU %d on NUMA node %d (io_uring %u entries%s, arena "
		       "%llu MiB)",
		       info->index, info->cpu, info->numa_node, s->config.io_uring_depth_entries,
		       info->uring_single_issuer ? ", single issuer" : "",
		       (unsigned long long)(s->config.core_arena_bytes >> 20));
	}
}

/* Until SIGTERM or SIGINT; SIGHUP is answered with a log line. */
static void wait_for_shutdown(sigset_t *signals)
{
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(signals, &info);
		if (sig == SIGTERM || sig == SIGINT) {
			AR_LOG(LOG, "server", "received %s shutdown request (%s)",
			       sig == SIGTERM ? "fast" : "interactive",
			       sig == SIGTERM ? "SIGTERM" : "SIGINT");
			break;
		}
		if (sig == SIGHUP)
			AR_LOG(LOG, "server",
			       "received SIGHUP; configuration reload is not supported, "
			       "restart to apply changes");
	}
}

int main(int argc, char **argv)
{
	static struct ar_server s;
	char err[AR_CONFIG_ERROR_BYTES];
	sigset_t signals;

	s.pg_listen_fd = s.http_listen_fd = -1;
	load_config(argc, argv, &s.config);
	ar_log_set_min_level(s.config.log_min_level);
	/* Everything that can refuse to start is checked before the first log line, so a
	 * bad start prints exactly one line. */
	if (ar_datadir_open(s.config.data_dir, &s.datadir, err) < 0)
		die(err);
	bind_listener(s.config.pg_listen_address, &s.pg_listen_fd, s.pg_address,
		      sizeof(s.pg_address));
	bind_listener(s.config.http_listen_address, &s.http_listen_fd, s.http_address,
		      sizeof(s.http_address));
	AR_LOG(LOG, "server", "starting argon-pageserver %s (tcmalloc %s, sanitize %s)", AR_VERSION,
	       AR_HAVE_TCMALLOC ? "on" : "off", AR_SANITIZE);
	ar_config_log(&s.config);

	/* Every thread inherits this mask; only main takes the signals, with sigwaitinfo. */
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	s.started_ns = ar_core_now_ns();
	struct ar_runtime_params params = {
		.core_count = s.config.core_count,
		.uring_depth_entries = s.config.io_uring_depth_entries,
		.ring_capacity_messages = s.config.core_ring_capacity_messages,
		.arena_bytes = s.config.core_arena_bytes,
		.hooks = { .start = server_core_start, .stop = server_core_stop, .ctx = &s },
	};
	/* The live timelines first: the cores' first page stream may name one. */
	if (ar_server_live_init(&s) < 0 || ar_server_live_load(&s) < 0)
		die("could not start the live timelines");
	int rc = ar_runtime_start(&params, &s.runtime);
	if (rc < 0) {
		snprintf(err, sizeof(err), "could not start %u core threads: %s",
			 s.config.core_count, ar_strerror(rc));
		die(err);
	}
	log_cores(&s);
	if (ar_http_api_start(&s, &s.http) < 0)
		die("could not start the management API");
	AR_LOG(LOG, "server", "listening for PostgreSQL connections on %s", s.pg_address);
	AR_LOG(LOG, "server", "management API listening on http://%s", s.http_address);
	AR_LOG(LOG, "server", "page server is ready to accept connections");

	wait_for_shutdown(&signals);

	uint64_t stop_started_ns = ar_core_now_ns();
	pthread_t watchdog;
	if (pthread_create(&watchdog, NULL, shutdown_watchdog, &s) == 0)
		pthread_detach(watchdog);
	ar_http_api_stop(s.http);
	/* The cores first: no page request reaches a live timeline after this.  The
	 * live timelines then fail what they still hold (their answers go nowhere),
	 * and only then does the cores' memory, where those requests live, go. */
	ar_runtime_stop(s.runtime);
	ar_server_live_stop(&s);
	ar_runtime_destroy(s.runtime);
	close(s.pg_listen_fd);
	ar_datadir_close(&s.datadir);
	AR_LOG(LOG, "server", "shut down cleanly in %.1f ms",
	       (double)(ar_core_now_ns() - stop_started_ns) / 1e6);
	return 0;
}
