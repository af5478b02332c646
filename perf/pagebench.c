/*
 * pagebench.c - argon-pagebench: GetPage load on a page server over Neon's
 * pagestream protocol (v2 or v3), with an optional physical baseline measured in
 * the same run: a minimal loopback server that answers every GetPage with 8 KiB
 * from memory and does nothing else.  perf/pagebench.py builds a real keyspace
 * (pgbench, imported into Argon) and runs this against argon-pageserver.
 *
 *   argon-pagebench --port N --rel SPC/DB/REL/FORK [--rel ...] [--host H]
 *       [--tenant ID] [--timeline ID] [--user U] [--database D] [--password P]
 *       [--clients N] [--depth D] [--seconds S] [--warmup S] [--version 2|3]
 *       [--hot-fraction F | --hot-blocks N] [--mode latest|historical] [--lsn X/Y]
 *       [--lsn-min X/Y] [--server-pid PID] [--baseline] [--rounds R]
 *       [--raw-odirect FILE] [--cpu N] [--baseline-cpu N] [--seed N]
 *       [--json | --summary]
 *
 * The load: one thread, one epoll, --clients connections, each keeping --depth
 * GetPage requests in flight (a closed loop: every answer sends the next
 * request).  Each connection does the PostgreSQL v3 startup (user, database;
 * a cleartext password if asked), then the simple query `pagestream_vN <tenant>
 * <timeline>`, expects CopyBothResponse, and from then on every request and
 * every answer is one CopyData.  Before the load, Nblocks of every --rel on
 * one connection gives the keyspace: the relations' blocks laid end to end;
 * a request reads a block drawn uniformly from the first --hot-fraction of it
 * (or its first --hot-blocks blocks: a cache-hot set).
 *
 * LSNs: --mode latest sends request_lsn = UINT64_MAX and not_modified_since =
 * --lsn (default 0), as a primary does; --mode historical sends request_lsn
 * uniform in [--lsn-min, --lsn] and not_modified_since 0, as a replica at a
 * random point of the past would (and asks Nblocks at --lsn-min, so that every
 * block exists over the whole range when relations only grow).
 *
 * Every answer is checked by ps_response_decode (tag 102 and, in v3, the echo of
 * the request); an Error answer, a bad answer or a dropped connection counts as
 * an error, the first one's text is printed, and the run exits 1.  Latency is
 * from just before the request's write(2) to just after the read(2) that
 * completed its answer (CLOCK_MONOTONIC), kept in a log-linear histogram (64
 * buckets per power of two: within 1.6 %).  Only answers that arrive in the
 * measured --seconds, after --warmup, are counted: GetPage/s is those over the
 * measured time.  --server-pid: the server's utime + stime (/proc/PID/stat,
 * clock ticks) over the measured time, per GetPage; the load generator's own
 * CPU likewise (CLOCK_PROCESS_CPUTIME_ID).
 *
 * --baseline forks the baseline server (its own listening socket on
 * 127.0.0.1:0, one thread, epoll; its CPU per GetPage from its own pid) and runs
 * the same load against it: baseline first, then the server, --rounds times;
 * the histograms of a target's rounds are pooled.  Printed: both results and the
 * ratios server / baseline (throughput, p50, p99, CPU per GetPage).  It answers
 * every GetPage with the same 8 KiB (always in the CPU's caches); with
 * --baseline-pages N, block b with page b mod N of an N-page buffer, so its
 * answers come from memory as a page cache's do.
 * --raw-odirect FILE then times 8 KiB O_DIRECT preads at random aligned offsets
 * of FILE, one at a time, for --seconds: the device's floor for a cold read.
 * --cpu pins this process, --baseline-cpu the baseline's.
 *
 * A benchmark, not a test: it asserts nothing about speed.
 */
#include "common/bytes.h"
#include "common/pagestream.h"
#include "common/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PB_RELS_MAX 64
#define PB_CLIENTS_MAX 256
#define PB_DEPTH_MAX 256
#define PB_PROTOCOL 196608 /* PostgreSQL protocol 3.0 */
#define PB_SSL_REQUEST 80877103
#define PB_MSG_MAX (64 * 1024) /* a message longer than this is a protocol error */
#define PB_IN_BYTES (256 * 1024)
#define PB_REQ_WIRE (5 + PS_REQUEST_BYTES_MAX)
#define PB_OUT_BYTES (PB_DEPTH_MAX * PB_REQ_WIRE)
#define PB_DRAIN_NS (10ull * 1000000000ull) /* answers still out after the run */
#define PB_SETUP_TIMEOUT_S 30
#define PB_ERROR_TEXT 512
#define PB_DEFAULT_ID "00000000000000000000000000000001"

_Static_assert(PB_IN_BYTES >= 2 * PB_MSG_MAX, "the input buffer holds any message");

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "argon-pagebench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* xoshiro256** seeded by splitmix64: the same seed gives every target the same
 * sequence of requests. */
struct pb_rng {
	uint64_t s[4];
};

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static void rng_seed(struct pb_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++) {
		uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		r->s[i] = z ^ (z >> 31);
	}
}

static uint64_t rng_next(struct pb_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

/* Uniform in [0, n), n > 0 (the modulo's bias is below n / 2^64). */
static uint64_t rng_below(struct pb_rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

static bool parse_lsn(const char *text, uint64_t *out)
{
	unsigned int hi, lo;
	int used = 0;
	if (strcmp(text, "latest") == 0 || strcmp(text, "max") == 0) {
		*out = UINT64_MAX;
		return true;
	}
	if (sscanf(text, "%X/%X%n", &hi, &lo, &used) == 2 && text[used] == '\0') {
		*out = (uint64_t)hi << 32 | lo;
		return true;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
		return false;
	*out = v;
	return true;
}

static const char *lsn_text(uint64_t lsn, char buf[32])
{
	snprintf(buf, 32, "%X/%X", (unsigned int)(lsn >> 32), (unsigned int)lsn);
	return buf;
}

/* -- the histogram ------------------------------------------------------------
 * Nanoseconds below HIST_LINEAR have a bucket each; above, each power of two is
 * cut into HIST_SUB buckets (HDR-like, 1/64 relative width). */
#define HIST_LINEAR 128
#define HIST_SUB 64
#define HIST_MSB_MAX 41 /* 2^42 ns, 73 minutes: anything longer lands in the last */
#define HIST_BUCKETS ((HIST_MSB_MAX - 6) * HIST_SUB + HIST_LINEAR)

struct pb_hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t bucket[HIST_BUCKETS];
};

static uint32_t hist_index(uint64_t v)
{
	if (v < HIST_LINEAR)
		return (uint32_t)v;
	int msb = 63 - __builtin_clzll(v);
	if (msb > HIST_MSB_MAX)
		return HIST_BUCKETS - 1;
	return (uint32_t)((msb - 6) * HIST_SUB + (int)(v >> (msb - 6)));
}

/* The middle of bucket i. */
static uint64_t hist_value(uint32_t i)
{
	if (i < HIST_LINEAR)
		return i;
	uint32_t octave = i / HIST_SUB - 1;
	uint64_t low = (uint64_t)(i % HIST_SUB + HIST_SUB) << octave;
	return low + ((1ull << octave) >> 1);
}

static void hist_add(struct pb_hist *h, uint64_t ns)
{
	h->bucket[hist_index(ns)]++;
	h->count++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

static void hist_merge(struct pb_hist *into, const struct pb_hist *from)
{
	for (uint32_t i = 0; i < HIST_BUCKETS; i++)
		into->bucket[i] += from->bucket[i];
	into->count += from->count;
	into->sum_ns += from->sum_ns;
	if (from->max_ns > into->max_ns)
		into->max_ns = from->max_ns;
}

/* The q-quantile (0 < q <= 1) in microseconds; 0 when empty. */
static double hist_quantile_us(const struct pb_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t v = hist_value(i);
			return (double)(v < h->max_ns ? v : h->max_ns) / 1000.0;
		}
	}
	return (double)h->max_ns / 1000.0;
}

/* -- options ------------------------------------------------------------------ */

struct pb_rel {
	struct ps_rel rel;
	uint32_t nblocks;
	uint64_t first; /* its block 0's place in the keyspace */
};

struct pb_opts {
	const char *host;
	uint16_t port;
	const char *user, *database, *password;
	const char *tenant, *timeline;
	uint32_t clients, depth, rounds;
	double seconds, warmup, hot_fraction;
	enum ps_version version;
	bool historical;
	uint64_t lsn, lsn_min;
	pid_t server_pid;
	bool json, summary, baseline;
	const char *raw_odirect;
	int cpu, baseline_cpu;
	uint64_t baseline_pages; /* the baseline's buffer: block b answers page b mod this */
	uint64_t seed;
	struct pb_rel rels[PB_RELS_MAX];
	uint32_t rel_count;
	uint64_t hot_blocks_wanted; /* --hot-blocks (0: --hot-fraction) */
	/* the keyspace, from Nblocks */
	uint64_t blocks, hot_blocks;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: argon-pagebench --port N --rel SPC/DB/REL/FORK [--rel ...] [options]\n"
		   "  --host H (127.0.0.1)  --tenant ID --timeline ID (" PB_DEFAULT_ID ")\n"
		   "  --user U (argon) --database D (postgres) --password P\n"
		   "  --clients N (1)  --depth D (1)  --seconds S (10)  --warmup S (1)\n"
		   "  --version 2|3 (3)  --hot-fraction F (1) | --hot-blocks N  --seed N (1)\n"
		   "  --mode latest|historical (latest)  --lsn X/Y  --lsn-min X/Y\n"
		   "  --server-pid PID  --baseline  --rounds R (1)  --raw-odirect FILE\n"
		   "  --cpu N  --baseline-cpu N  --baseline-pages N (1)  --json | --summary\n");
}

static double parse_double(const char *name, const char *text, double min, double max)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno != 0 || end == text || *end != '\0' || !(v >= min && v <= max))
		die("%s: \"%s\" is not a number in [%g, %g]", name, text, min, max);
	return v;
}

static uint64_t parse_u64(const char *name, const char *text, uint64_t min, uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < min || v > max)
		die("%s: \"%s\" is not a whole number in [%" PRIu64 ", %" PRIu64 "]", name, text,
		    min, max);
	return v;
}

static void parse_rel(struct pb_opts *o, const char *text)
{
	unsigned int spc, db, rel, fork;
	int used = 0;
	if (o->rel_count == PB_RELS_MAX)
		die("at most %d --rel", PB_RELS_MAX);
	if (sscanf(text, "%u/%u/%u/%u%n", &spc, &db, &rel, &fork, &used) != 4 ||
	    text[used] != '\0' || fork > 3)
		die("--rel \"%s\": want SPC/DB/RELNODE/FORK (fork 0-3)", text);
	struct pb_rel *r = &o->rels[o->rel_count++];
	memset(r, 0, sizeof(*r));
	r->rel = (struct ps_rel){ .spc = spc, .db = db, .relnode = rel, .fork = (uint8_t)fork };
}

enum {
	OPT_HOST = 256,
	OPT_PORT,
	OPT_TENANT,
	OPT_TIMELINE,
	OPT_USER,
	OPT_DATABASE,
	OPT_PASSWORD,
	OPT_CLIENTS,
	OPT_DEPTH,
	OPT_SECONDS,
	OPT_WARMUP,
	OPT_VERSION,
	OPT_REL,
	OPT_HOT,
	OPT_HOT_BLOCKS,
	OPT_MODE,
	OPT_LSN,
	OPT_LSN_MIN,
	OPT_SERVER_PID,
	OPT_JSON,
	OPT_SUMMARY,
	OPT_BASELINE,
	OPT_ROUNDS,
	OPT_RAW,
	OPT_CPU,
	OPT_BASELINE_CPU,
	OPT_BASELINE_PAGES,
	OPT_SEED,
	OPT_HELP,
};

static const struct option long_options[] = {
	{ "host", required_argument, NULL, OPT_HOST },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "tenant", required_argument, NULL, OPT_TENANT },
	{ "timeline", required_argument, NULL, OPT_TIMELINE },
	{ "user", required_argument, NULL, OPT_USER },
	{ "database", required_argument, NULL, OPT_DATABASE },
	{ "password", required_argument, NULL, OPT_PASSWORD },
	{ "clients", required_argument, NULL, OPT_CLIENTS },
	{ "depth", required_argument, NULL, OPT_DEPTH },
	{ "seconds", required_argument, NULL, OPT_SECONDS },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "version", required_argument, NULL, OPT_VERSION },
	{ "rel", required_argument, NULL, OPT_REL },
	{ "hot-fraction", required_argument, NULL, OPT_HOT },
	{ "hot-blocks", required_argument, NULL, OPT_HOT_BLOCKS },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "lsn", required_argument, NULL, OPT_LSN },
	{ "lsn-min", required_argument, NULL, OPT_LSN_MIN },
	{ "server-pid", required_argument, NULL, OPT_SERVER_PID },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "summary", no_argument, NULL, OPT_SUMMARY },
	{ "baseline", no_argument, NULL, OPT_BASELINE },
	{ "rounds", required_argument, NULL, OPT_ROUNDS },
	{ "raw-odirect", required_argument, NULL, OPT_RAW },
	{ "cpu", required_argument, NULL, OPT_CPU },
	{ "baseline-cpu", required_argument, NULL, OPT_BASELINE_CPU },
	{ "baseline-pages", required_argument, NULL, OPT_BASELINE_PAGES },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Connection and load options (set_option takes the rest). */
static void set_load_option(struct pb_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case OPT_HOST:
		o->host = arg;
		break;
	case OPT_PORT:
		o->port = (uint16_t)parse_u64("--port", arg, 1, 65535);
		break;
	case OPT_TENANT:
		o->tenant = arg;
		break;
	case OPT_TIMELINE:
		o->timeline = arg;
		break;
	case OPT_USER:
		o->user = arg;
		break;
	case OPT_DATABASE:
		o->database = arg;
		break;
	case OPT_PASSWORD:
		o->password = arg;
		break;
	case OPT_CLIENTS:
		o->clients = (uint32_t)parse_u64("--clients", arg, 1, PB_CLIENTS_MAX);
		break;
	case OPT_DEPTH:
		o->depth = (uint32_t)parse_u64("--depth", arg, 1, PB_DEPTH_MAX);
		break;
	case OPT_SECONDS:
		o->seconds = parse_double("--seconds", arg, 0.1, 86400);
		break;
	case OPT_WARMUP:
		o->warmup = parse_double("--warmup", arg, 0, 3600);
		break;
	case OPT_VERSION:
		o->version = parse_u64("--version", arg, 2, 3) == 2 ? PS_V2 : PS_V3;
		break;
	case OPT_REL:
		parse_rel(o, arg);
		break;
	case OPT_HOT:
		o->hot_fraction = parse_double("--hot-fraction", arg, 1e-9, 1);
		break;
	case OPT_HOT_BLOCKS:
		o->hot_blocks_wanted = parse_u64("--hot-blocks", arg, 1, UINT64_MAX);
		break;
	default:
		break;
	}
}

static void set_option(struct pb_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case OPT_MODE:
		if (strcmp(arg, "latest") != 0 && strcmp(arg, "historical") != 0)
			die("--mode: latest or historical");
		o->historical = strcmp(arg, "historical") == 0;
		break;
	case OPT_LSN:
		if (!parse_lsn(arg, &o->lsn))
			die("--lsn \"%s\": want X/Y", arg);
		break;
	case OPT_LSN_MIN:
		if (!parse_lsn(arg, &o->lsn_min))
			die("--lsn-min \"%s\": want X/Y", arg);
		break;
	case OPT_SERVER_PID:
		o->server_pid = (pid_t)parse_u64("--server-pid", arg, 1, INT32_MAX);
		break;
	case OPT_JSON:
		o->json = true;
		break;
	case OPT_SUMMARY:
		o->summary = true;
		break;
	case OPT_BASELINE:
		o->baseline = true;
		break;
	case OPT_ROUNDS:
		o->rounds = (uint32_t)parse_u64("--rounds", arg, 1, 1000);
		break;
	case OPT_RAW:
		o->raw_odirect = arg;
		break;
	case OPT_CPU:
		o->cpu = (int)parse_u64("--cpu", arg, 0, CPU_SETSIZE - 1);
		break;
	case OPT_BASELINE_CPU:
		o->baseline_cpu = (int)parse_u64("--baseline-cpu", arg, 0, CPU_SETSIZE - 1);
		break;
	case OPT_BASELINE_PAGES:
		o->baseline_pages = parse_u64("--baseline-pages", arg, 1, 1u << 20);
		break;
	case OPT_SEED:
		o->seed = parse_u64("--seed", arg, 0, UINT64_MAX);
		break;
	default:
		set_load_option(o, opt, arg);
		break;
	}
}

static void parse_options(int argc, char **argv, struct pb_opts *o)
{
	*o = (struct pb_opts){ .host = "127.0.0.1",
			       .user = "argon",
			       .database = "postgres",
			       .tenant = PB_DEFAULT_ID,
			       .clients = 1,
			       .depth = 1,
			       .rounds = 1,
			       .seconds = 10,
			       .warmup = 1,
			       .hot_fraction = 1,
			       .version = PS_V3,
			       .cpu = -1,
			       .baseline_cpu = -1,
			       .seed = 1 };
	int opt;
	while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
		if (opt == OPT_HELP || opt == 'h') {
			usage(stdout);
			exit(0);
		}
		if (opt == '?') {
			usage(stderr);
			exit(2);
		}
		set_option(o, opt, optarg);
	}
	if (optind != argc)
		die("unexpected argument \"%s\"", argv[optind]);
	if (o->port == 0 || o->rel_count == 0) {
		usage(stderr);
		die("--port and at least one --rel are needed");
	}
	if (o->timeline == NULL)
		o->timeline = o->tenant;
	if (o->json && o->summary)
		die("--json and --summary exclude each other");
	if (o->historical &&
	    (o->lsn == 0 || o->lsn == UINT64_MAX || o->lsn_min == 0 || o->lsn_min > o->lsn))
		die("--mode historical needs 0 < --lsn-min <= --lsn < max");
}

/* -- the wire: blocking setup ---------------------------------------------------- */

static void put_msg_header(uint8_t *p, char type, size_t body)
{
	p[0] = (uint8_t)type;
	ar_put_be32(p + 1, (uint32_t)(4 + body));
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One message (type, body of at most cap bytes) from a blocking socket. */
static void read_msg(int fd, const char *what, char *type, uint8_t *body, size_t cap, size_t *len)
{
	uint8_t head[5];
	if (read_all(fd, head, 5) != 0)
		die("%s: connection closed or timed out", what);
	uint32_t n = ar_get_be32(head + 1);
	if (n < 4 || n - 4 > cap)
		die("%s: bad message length %u (type '%c')", what, n, head[0]);
	if (read_all(fd, body, n - 4) != 0)
		die("%s: connection closed or timed out", what);
	*type = (char)head[0];
	*len = n - 4;
}

/* The 'M' field of an ErrorResponse body. */
static void error_message(const uint8_t *body, size_t len, char *out, size_t cap)
{
	size_t i = 0;
	snprintf(out, cap, "(no message)");
	while (i < len && body[i] != 0) {
		char field = (char)body[i++];
		const char *text = (const char *)body + i;
		size_t n = strnlen(text, len - i);
		if (field == 'M') {
			snprintf(out, cap, "%.*s", (int)n, text);
			return;
		}
		i += n + 1;
	}
}

static int tcp_connect(const char *host, uint16_t port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	char service[8];
	snprintf(service, sizeof(service), "%u", port);
	int rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0)
		die("%s:%u: %s", host, port, gai_strerror(rc));
	int fd = -1;
	for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		die("could not connect to %s:%u: %s", host, port, strerror(errno));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = { .tv_sec = PB_SETUP_TIMEOUT_S };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static size_t put_param(uint8_t *p, const char *name, const char *value)
{
	size_t a = strlen(name) + 1, b = strlen(value) + 1;
	memcpy(p, name, a);
	memcpy(p + a, value, b);
	return a + b;
}

/* StartupMessage, authentication (trust or a cleartext password), until
 * ReadyForQuery. */
static void pg_startup(int fd, const struct pb_opts *o)
{
	uint8_t buf[1024];
	if (strlen(o->user) + strlen(o->database) > 400)
		die("--user and --database are too long");
	size_t n = 8;
	n += put_param(buf + n, "user", o->user);
	n += put_param(buf + n, "database", o->database);
	n += put_param(buf + n, "application_name", "argon-pagebench");
	buf[n++] = 0;
	ar_put_be32(buf, (uint32_t)n);
	ar_put_be32(buf + 4, PB_PROTOCOL);
	if (write_all(fd, buf, n) != 0)
		die("startup: write failed: %s", strerror(errno));
	for (;;) {
		char type, text[PB_ERROR_TEXT];
		size_t len;
		read_msg(fd, "startup", &type, buf, sizeof(buf), &len);
		if (type == 'E') {
			error_message(buf, len, text, sizeof(text));
			die("startup refused: %s", text);
		}
		if (type == 'Z')
			return;
		if (type != 'R' || len < 4)
			continue; /* ParameterStatus, BackendKeyData, NoticeResponse */
		uint32_t code = ar_get_be32(buf);
		if (code == 3) {
			const char *pw = o->password ? o->password : "";
			size_t pl = strlen(pw) + 1;
			if (pl > 900)
				die("--password is too long");
			put_msg_header(buf, 'p', pl);
			memcpy(buf + 5, pw, pl);
			if (write_all(fd, buf, 5 + pl) != 0)
				die("startup: write failed: %s", strerror(errno));
		} else if (code != 0) {
			die("startup: authentication method %u is not supported", code);
		}
	}
}

/* `pagestream_vN tenant timeline`: expects CopyBothResponse. */
static void pg_pagestream(int fd, const struct pb_opts *o)
{
	uint8_t buf[1024];
	int n = snprintf((char *)buf + 5, sizeof(buf) - 5, "pagestream_v%d %s %s", (int)o->version,
			 o->tenant, o->timeline);
	if (n < 0 || (size_t)n + 6 > sizeof(buf))
		die("--tenant or --timeline is too long");
	put_msg_header(buf, 'Q', (size_t)n + 1);
	if (write_all(fd, buf, (size_t)n + 6) != 0)
		die("pagestream: write failed: %s", strerror(errno));
	char type, text[PB_ERROR_TEXT];
	size_t len;
	do
		read_msg(fd, "pagestream", &type, buf, sizeof(buf), &len);
	while (type == 'N' || type == 'S');
	if (type == 'E') {
		error_message(buf, len, text, sizeof(text));
		die("pagestream_v%d %s %s: %s", (int)o->version, o->tenant, o->timeline, text);
	}
	if (type != 'W')
		die("pagestream: expected CopyBothResponse, got '%c'", type);
}

/* The (request_lsn, not_modified_since) of a setup request. */
static void setup_lsns(const struct pb_opts *o, struct ps_request *req)
{
	req->request_lsn = o->historical ? o->lsn_min : UINT64_MAX;
	req->not_modified_since = o->historical ? 0 : o->lsn;
}

/* Nblocks of every relation over one connection; lays out the keyspace. */
static void fetch_nblocks(int fd, struct pb_opts *o)
{
	static uint8_t buf[PB_MSG_MAX];
	o->blocks = 0;
	for (uint32_t i = 0; i < o->rel_count; i++) {
		struct pb_rel *r = &o->rels[i];
		struct ps_request req = { .tag = PS_NBLOCKS, .reqid = i + 1, .rel = r->rel };
		setup_lsns(o, &req);
		size_t n = ps_request_encode(o->version, &req, buf + 5);
		put_msg_header(buf, 'd', n);
		if (write_all(fd, buf, 5 + n) != 0)
			die("Nblocks: write failed: %s", strerror(errno));
		char type;
		size_t len;
		read_msg(fd, "Nblocks", &type, buf, sizeof(buf), &len);
		if (type != 'd')
			die("Nblocks: expected CopyData, got '%c'", type);
		struct ps_response resp;
		const char *err;
		if (ps_response_decode(o->version, &req, buf, len, &resp, &err) != 0)
			die("Nblocks: %s", err);
		if (resp.tag == PS_R_ERROR)
			die("Nblocks of %u/%u/%u/%u: %s", r->rel.spc, r->rel.db, r->rel.relnode,
			    r->rel.fork, resp.error);
		r->nblocks = resp.nblocks;
		r->first = o->blocks;
		o->blocks += resp.nblocks;
	}
	if (o->blocks == 0)
		die("the relations have no blocks");
	o->hot_blocks = o->hot_blocks_wanted
			    ? o->hot_blocks_wanted
			    : (uint64_t)(o->hot_fraction * (double)o->blocks + 0.5);
	if (o->hot_blocks < 1)
		o->hot_blocks = 1;
	if (o->hot_blocks > o->blocks)
		o->hot_blocks = o->blocks;
}

static int set_nonblocking(int fd)
{
	struct timeval tv = { 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int flags = fcntl(fd, F_GETFL);
	return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* -- the load ------------------------------------------------------------------- */

struct pb_result {
	struct pb_hist hist;
	uint64_t ok;     /* answers counted (measured time) */
	uint64_t errors; /* all: warm-up and drain included */
	uint64_t bytes;  /* of the answers counted, CopyData framing included */
	double seconds;  /* measured */
	double server_cpu_s, client_cpu_s;
	bool server_cpu_known;
	char first_error[PB_ERROR_TEXT];
};

struct pb_sent {
	struct ps_request req;
	uint64_t sent_ns;
};

struct pb_client {
	int fd;
	uint32_t index;
	bool dead;
	bool want_out; /* EPOLLOUT armed: requests wait in out */
	uint32_t head, inflight;
	uint64_t reqid;
	struct pb_sent ring[PB_DEPTH_MAX];
	size_t in_len, out_len;
	uint8_t in[PB_IN_BYTES];
	uint8_t out[PB_OUT_BYTES];
};

enum pb_phase { PH_WARMUP, PH_MEASURE, PH_DRAIN };

struct pb_run {
	const struct pb_opts *o;
	const char *target;
	pid_t pid; /* whose CPU is counted; 0: none */
	int epfd;
	struct pb_client *clients;
	struct pb_rng rng;
	enum pb_phase phase;
	uint64_t measure_ns;
	uint64_t cpu0_server_ns, cpu0_client_ns;
	bool cpu0_server_ok;
	struct pb_result *res;
};

static bool proc_cpu_ns(pid_t pid, uint64_t *out)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	unsigned long long utime, stime;
	/* after the name: state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime */
	if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&utime, &stime) != 2)
		return false;
	long tck = sysconf(_SC_CLK_TCK);
	*out = (utime + stime) * (1000000000ull / (uint64_t)(tck > 0 ? tck : 100));
	return true;
}

static uint64_t own_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void note_error(struct pb_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note_error(struct pb_run *r, const char *fmt, ...)
{
	if (r->res->errors++ > 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->res->first_error, sizeof(r->res->first_error), fmt, ap);
	va_end(ap);
	fprintf(stderr, "argon-pagebench: %s: first error: %s\n", r->target, r->res->first_error);
}

static void client_kill(struct pb_run *r, struct pb_client *c)
{
	if (c->dead)
		return;
	c->dead = true;
	epoll_ctl(r->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->inflight = 0; /* its cause is the error counted */
}

/* The next request: a block uniform in the hot keyspace, the mode's LSNs. */
static void make_request(struct pb_run *r, struct pb_client *c, struct ps_request *req)
{
	const struct pb_opts *o = r->o;
	uint64_t key = rng_below(&r->rng, o->hot_blocks);
	uint32_t i = 0;
	while (i + 1 < o->rel_count && key >= o->rels[i + 1].first)
		i++;
	*req = (struct ps_request){ .tag = PS_GETPAGE,
				    .rel = o->rels[i].rel,
				    .blkno = (uint32_t)(key - o->rels[i].first) };
	if (o->version == PS_V3)
		req->reqid = (uint64_t)c->index << 32 | (++c->reqid & 0xffffffffu);
	if (o->historical) {
		req->request_lsn = o->lsn_min + rng_below(&r->rng, o->lsn - o->lsn_min + 1);
		req->not_modified_since = 0;
	} else {
		req->request_lsn = UINT64_MAX;
		req->not_modified_since = o->lsn;
	}
}

static void client_arm(struct pb_run *r, struct pb_client *c, bool want_out)
{
	if (c->want_out == want_out)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0u), .data.ptr = c };
	epoll_ctl(r->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->want_out = want_out;
}

static void client_flush(struct pb_run *r, struct pb_client *c)
{
	size_t off = 0;
	while (off < c->out_len) {
		ssize_t n = write(c->fd, c->out + off, c->out_len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			note_error(r, "client %u: write: %s", c->index, strerror(errno));
			client_kill(r, c);
			return;
		}
		off += (size_t)n;
	}
	memmove(c->out, c->out + off, c->out_len - off);
	c->out_len -= off;
	client_arm(r, c, c->out_len > 0);
}

/* Tops the client up to --depth requests in flight (not in the drain). */
static void client_fill(struct pb_run *r, struct pb_client *c)
{
	if (c->dead || r->phase == PH_DRAIN)
		return;
	uint32_t depth = r->o->depth;
	bool added = false;
	uint64_t now = ar_core_now_ns();
	while (c->inflight < depth) {
		struct pb_sent *s = &c->ring[(c->head + c->inflight) % depth];
		make_request(r, c, &s->req);
		s->sent_ns = now;
		size_t n = ps_request_encode(r->o->version, &s->req, c->out + c->out_len + 5);
		put_msg_header(c->out + c->out_len, 'd', n);
		c->out_len += 5 + n;
		c->inflight++;
		added = true;
	}
	if (added && !c->want_out)
		client_flush(r, c);
}

static void client_answer(struct pb_run *r, struct pb_client *c, const uint8_t *payload, size_t len,
			  uint64_t now)
{
	if (c->inflight == 0) {
		note_error(r, "client %u: an answer to no request", c->index);
		client_kill(r, c);
		return;
	}
	struct pb_sent *s = &c->ring[c->head];
	c->head = (c->head + 1) % r->o->depth;
	c->inflight--;
	struct ps_response resp;
	const char *err;
	if (ps_response_decode(r->o->version, &s->req, payload, len, &resp, &err) != 0) {
		note_error(r, "client %u: bad answer: %s", c->index, err);
		return;
	}
	if (resp.tag == PS_R_ERROR) {
		note_error(r, "%s", resp.error);
		return;
	}
	if (r->phase == PH_MEASURE) {
		hist_add(&r->res->hist, now - s->sent_ns);
		r->res->ok++;
		r->res->bytes += 5 + len;
	}
}

/* Every whole message in the client's input. */
static void client_parse(struct pb_run *r, struct pb_client *c, uint64_t now)
{
	size_t off = 0;
	while (!c->dead && c->in_len - off >= 5) {
		const uint8_t *m = c->in + off;
		uint32_t len = ar_get_be32(m + 1);
		if (len < 4 || len > PB_MSG_MAX) {
			note_error(r, "client %u: bad message length %u", c->index, len);
			client_kill(r, c);
			return;
		}
		if (c->in_len - off < 1 + (size_t)len)
			break;
		if (m[0] == 'd') {
			client_answer(r, c, m + 5, len - 4, now);
		} else if (m[0] == 'E') {
			char text[PB_ERROR_TEXT];
			error_message(m + 5, len - 4, text, sizeof(text));
			note_error(r, "client %u: server error: %s", c->index, text);
			client_kill(r, c);
		} else if (m[0] != 'N' && m[0] != 'S') {
			note_error(r, "client %u: unexpected message '%c'", c->index, m[0]);
			client_kill(r, c);
		}
		off += 1 + (size_t)len;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

static void client_read(struct pb_run *r, struct pb_client *c)
{
	ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
	uint64_t now = ar_core_now_ns();
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		note_error(r, "client %u: %s", c->index,
			   n == 0 ? "server closed the connection" : strerror(errno));
		client_kill(r, c);
		return;
	}
	c->in_len += (size_t)n;
	client_parse(r, c, now);
	client_fill(r, c);
}

static void phase_measure(struct pb_run *r, uint64_t now)
{
	r->phase = PH_MEASURE;
	r->measure_ns = now;
	r->cpu0_client_ns = own_cpu_ns();
	r->cpu0_server_ok = r->pid > 0 && proc_cpu_ns(r->pid, &r->cpu0_server_ns);
}

static void phase_drain(struct pb_run *r, uint64_t now)
{
	struct pb_result *res = r->res;
	uint64_t cpu1;
	if (r->phase == PH_WARMUP)
		phase_measure(r, now); /* every client died in the warm-up: nothing measured */
	res->seconds = (double)(now - r->measure_ns) / 1e9;
	res->client_cpu_s = (double)(own_cpu_ns() - r->cpu0_client_ns) / 1e9;
	if (r->cpu0_server_ok && proc_cpu_ns(r->pid, &cpu1)) {
		res->server_cpu_s = (double)(cpu1 - r->cpu0_server_ns) / 1e9;
		res->server_cpu_known = true;
	}
	r->phase = PH_DRAIN;
}

static uint32_t inflight_total(const struct pb_run *r)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < r->o->clients; i++)
		n += r->clients[i].dead ? 0 : r->clients[i].inflight;
	return n;
}

static uint32_t live_clients(const struct pb_run *r)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < r->o->clients; i++)
		n += r->clients[i].dead ? 0 : 1;
	return n;
}

/* Warm-up, measured time, drain.  The loop ends when the drain does: every
 * answer in, or PB_DRAIN_NS past the end of the measured time. */
static void run_loop(struct pb_run *r)
{
	const struct pb_opts *o = r->o;
	uint64_t start = ar_core_now_ns();
	uint64_t warm_end = start + (uint64_t)(o->warmup * 1e9);
	uint64_t end = warm_end + (uint64_t)(o->seconds * 1e9), give_up = UINT64_MAX;
	struct epoll_event ev[64];

	r->phase = PH_WARMUP;
	if (warm_end == start)
		phase_measure(r, start);
	for (uint32_t i = 0; i < o->clients; i++)
		client_fill(r, &r->clients[i]);
	for (;;) {
		uint64_t now = ar_core_now_ns();
		if (r->phase == PH_WARMUP && now >= warm_end)
			phase_measure(r, now);
		if (r->phase != PH_DRAIN && (now >= end || live_clients(r) == 0)) {
			phase_drain(r, now);
			give_up = now + PB_DRAIN_NS;
		}
		if (r->phase == PH_DRAIN && (inflight_total(r) == 0 || now >= give_up))
			break;
		uint64_t next = r->phase == PH_WARMUP    ? warm_end
				: r->phase == PH_MEASURE ? end
							 : give_up;
		int n = epoll_wait(r->epfd, ev, 64, (int)((next - now + 999999) / 1000000));
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int k = 0; k < n; k++) {
			struct pb_client *c = ev[k].data.ptr;
			if (!c->dead && (ev[k].events & EPOLLOUT))
				client_flush(r, c);
			if (!c->dead && (ev[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				client_read(r, c);
		}
	}
	uint32_t left = inflight_total(r);
	if (left > 0)
		note_error(r, "%u answers still missing %.0f s after the end", left,
			   PB_DRAIN_NS / 1e9);
}

/* One target: its connections, the load, the result in res (zeroed first). */
static void run_target(const struct pb_opts *o, const char *name, const char *host, uint16_t port,
		       pid_t pid, struct pb_result *res)
{
	struct pb_run r = { .o = o, .target = name, .pid = pid, .res = res };
	memset(res, 0, sizeof(*res));
	rng_seed(&r.rng, o->seed);
	r.epfd = epoll_create1(EPOLL_CLOEXEC);
	r.clients = calloc(o->clients, sizeof(*r.clients));
	if (r.epfd < 0 || r.clients == NULL)
		die("out of memory or file descriptors");
	for (uint32_t i = 0; i < o->clients; i++) {
		struct pb_client *c = &r.clients[i];
		c->index = i;
		c->fd = tcp_connect(host, port);
		pg_startup(c->fd, o);
		pg_pagestream(c->fd, o);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (set_nonblocking(c->fd) != 0 ||
		    epoll_ctl(r.epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
			die("%s: could not set up connection %u: %s", name, i, strerror(errno));
	}
	run_loop(&r);
	for (uint32_t i = 0; i < o->clients; i++)
		close(r.clients[i].fd);
	close(r.epfd);
	free(r.clients);
}

/* -- the physical baseline ---------------------------------------------------------
 * A child process: one thread, one epoll, the minimal startup (AuthenticationOk,
 * ReadyForQuery), 'W' for the pagestream query, then every GetPage answered with
 * 8 KiB from memory (the v3 echo by ps_response_encode).  Backpressure: while
 * answers wait to be written, it stops reading. */
#define BL_CONNS_MAX PB_CLIENTS_MAX
#define BL_IN_BYTES (64 * 1024)
#define BL_OUT_BYTES (1024 * 1024)
#define BL_ANSWER_MAX (5 + 1 + 24 + 17 + PS_PAGE_BYTES + PB_ERROR_TEXT)

enum bl_stage { BL_STARTUP, BL_QUERY, BL_COPY };

struct bl_conn {
	int fd;
	enum bl_stage stage;
	enum ps_version version;
	uint32_t events; /* armed */
	size_t in_len, out_off, out_len;
	uint8_t in[BL_IN_BYTES];
	uint8_t out[BL_OUT_BYTES];
};

/* The answers' bytes: one page (the default: always in the CPU's caches), or
 * --baseline-pages of them, block b answered with page b mod that (a buffer the
 * size of a cached keyspace, read from memory like Argon's page cache). */
static uint8_t *bl_pages;
static uint64_t bl_page_count = 1;

static void bl_put(struct bl_conn *c, char type, const void *body, size_t len)
{
	put_msg_header(c->out + c->out_len, type, len);
	if (len > 0)
		memcpy(c->out + c->out_len + 5, body, len);
	c->out_len += 5 + len;
}

static void bl_error(struct bl_conn *c, const char *text)
{
	char body[PB_ERROR_TEXT + 32];
	int n = snprintf(body, sizeof(body), "SERROR%cC08P01%cM%.*s%c", 0, 0, PB_ERROR_TEXT - 1,
			 text, 0);
	bl_put(c, 'E', body, (size_t)n + 1); /* the terminating NUL ends the fields */
}

static int bl_startup(struct bl_conn *c, const uint8_t *p, size_t avail, size_t *off)
{
	if (avail < 8)
		return 0;
	uint32_t len = ar_get_be32(p), code = ar_get_be32(p + 4);
	if (len < 8 || len > BL_IN_BYTES)
		return -1;
	if (avail < len)
		return 0;
	*off += len;
	if (code == PB_SSL_REQUEST) {
		c->out[c->out_len++] = 'N';
		return 1;
	}
	if (code != PB_PROTOCOL)
		return -1;
	uint8_t zero[4] = { 0 };
	bl_put(c, 'R', zero, 4);
	bl_put(c, 'Z', "I", 1);
	c->stage = BL_QUERY;
	return 1;
}

static int bl_query(struct bl_conn *c, const uint8_t *body, size_t len)
{
	const char *q = (const char *)body;
	if (len < 15 || strncmp(q, "pagestream_v", 12) != 0 || (q[12] != '2' && q[12] != '3') ||
	    q[13] != ' ') {
		bl_error(c, "the baseline answers only pagestream_v2|v3");
		bl_put(c, 'Z', "I", 1);
		return 1;
	}
	c->version = q[12] == '2' ? PS_V2 : PS_V3;
	uint8_t w[3] = { 0 }; /* text format, no columns */
	bl_put(c, 'W', w, 3);
	c->stage = BL_COPY;
	return 1;
}

static int bl_getpage(struct bl_conn *c, const uint8_t *body, size_t len)
{
	struct ps_request req;
	const char *err;
	if (ps_request_decode(c->version, body, len, &req, &err) != 0) {
		bl_error(c, err);
		return -1;
	}
	struct ps_response resp = { .tag = PS_R_GETPAGE,
				    .page =
					bl_pages + (req.blkno % bl_page_count) * PS_PAGE_BYTES };
	if (req.tag != PS_GETPAGE)
		resp = (struct ps_response){ .tag = PS_R_ERROR,
					     .error = "the baseline answers only GetPage" };
	size_t n = ps_response_size(c->version, &req, &resp);
	put_msg_header(c->out + c->out_len, 'd', n);
	ps_response_encode(c->version, &req, &resp, c->out + c->out_len + 5);
	c->out_len += 5 + n;
	return 1;
}

/* One message at *off: 1 done, 0 incomplete, -1 close the connection. */
static int bl_message(struct bl_conn *c, size_t *off)
{
	const uint8_t *p = c->in + *off;
	size_t avail = c->in_len - *off;
	if (c->stage == BL_STARTUP)
		return bl_startup(c, p, avail, off);
	if (avail < 5)
		return 0;
	uint32_t len = ar_get_be32(p + 1);
	if (len < 4 || len > BL_IN_BYTES - 1)
		return -1;
	if (avail < 1 + (size_t)len)
		return 0;
	*off += 1 + (size_t)len;
	if (p[0] == 'Q' && c->stage == BL_QUERY)
		return bl_query(c, p + 5, len - 4);
	if (p[0] == 'd' && c->stage == BL_COPY)
		return bl_getpage(c, p + 5, len - 4);
	return -1; /* Terminate, CopyDone, or anything else */
}

/* Answers what the input holds while the output has room: 1 if it stopped for
 * room, 0 if for input, -1 to close. */
static int bl_process(struct bl_conn *c)
{
	size_t off = 0;
	int rc = 0;
	while (BL_OUT_BYTES - c->out_len >= BL_ANSWER_MAX) {
		rc = bl_message(c, &off);
		if (rc <= 0)
			break;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return rc < 0 ? -1 : rc;
}

/* 0: all written, 1: some left, -1: the connection failed. */
static int bl_flush(struct bl_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (n <= 0)
			return -1;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

static int bl_event(int epfd, struct bl_conn *c, uint32_t events)
{
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->in_len < BL_IN_BYTES) {
		ssize_t n = read(c->fd, c->in + c->in_len, BL_IN_BYTES - c->in_len);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return -1;
		if (n > 0)
			c->in_len += (size_t)n;
	}
	int pending;
	for (;;) {
		int full = bl_process(c);
		pending = bl_flush(c);
		if (full < 0 || pending < 0) {
			bl_flush(c); /* a last error message, if it fits */
			return -1;
		}
		if (pending || !full)
			break;
	}
	uint32_t want = pending ? EPOLLOUT : EPOLLIN;
	if (want != c->events) {
		struct epoll_event ev = { .events = want, .data.ptr = c };
		if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
			return -1;
		c->events = want;
	}
	return 0;
}

static void bl_accept(int epfd, int lfd, uint32_t *conns)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct bl_conn *c = *conns < BL_CONNS_MAX ? calloc(1, sizeof(*c)) : NULL;
		if (c == NULL) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		c->events = EPOLLIN;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			free(c);
			continue;
		}
		(*conns)++;
	}
}

/* The baseline's process: serves until killed (or its parent dies). */
static void __attribute__((noreturn)) bl_serve(int lfd, uint64_t pages)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	bl_page_count = pages;
	bl_pages = malloc(pages * PS_PAGE_BYTES);
	if (!bl_pages)
		_exit(2);
	for (size_t i = 0; i < pages * PS_PAGE_BYTES; i++)
		bl_pages[i] = (uint8_t)(i * 131 + 7);
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[64];
	if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) != 0)
		_exit(2);
	uint32_t conns = 0;
	for (;;) { /* the only unbounded loop: the server's */
		int n = epoll_wait(epfd, evs, 64, -1);
		for (int k = 0; k < n; k++) {
			struct bl_conn *c = evs[k].data.ptr;
			if (c == NULL) {
				bl_accept(epfd, lfd, &conns);
			} else if (bl_event(epfd, c, evs[k].events) != 0) {
				epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				free(c);
				conns--;
			}
		}
	}
}

static void pin_cpu(int cpu, const char *what)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		die("%s: could not pin to CPU %d: %s", what, cpu, strerror(errno));
}

/* Forks the baseline on 127.0.0.1:<*port>; returns its pid. */
static pid_t bl_start(const struct pb_opts *o, uint16_t *port)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 256) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
		die("baseline: could not listen on 127.0.0.1: %s", strerror(errno));
	*port = ntohs(a.sin_port);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		die("baseline: fork: %s", strerror(errno));
	if (pid == 0) {
		if (o->baseline_cpu >= 0)
			pin_cpu(o->baseline_cpu, "baseline");
		bl_serve(lfd, o->baseline_pages ? o->baseline_pages : 1);
	}
	close(lfd);
	return pid;
}

static void bl_stop(pid_t pid)
{
	int status;
	kill(pid, SIGTERM);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

/* -- raw O_DIRECT reads ------------------------------------------------------------ */

struct pb_raw {
	struct pb_hist hist;
	uint64_t file_bytes;
	double seconds;
};

static int raw_open(const char *path, uint64_t *bytes)
{
	int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		die("--raw-odirect %s: %s", path, strerror(errno));
	if (st.st_size < PS_PAGE_BYTES)
		die("--raw-odirect %s: smaller than 8 KiB", path);
	*bytes = (uint64_t)st.st_size;
	return fd;
}

/* 8 KiB preads at random 8 KiB-aligned offsets, one at a time, for seconds. */
static void raw_run(int fd, double seconds, uint64_t seed, struct pb_raw *out)
{
	struct pb_rng rng;
	void *buf;
	if (posix_memalign(&buf, 4096, PS_PAGE_BYTES) != 0)
		die("out of memory");
	rng_seed(&rng, seed ^ 0x5eed);
	uint64_t blocks = out->file_bytes / PS_PAGE_BYTES;
	uint64_t start = ar_core_now_ns(), end = start + (uint64_t)(seconds * 1e9), t = start;
	while (t < end) {
		off_t off = (off_t)(rng_below(&rng, blocks) * PS_PAGE_BYTES);
		ssize_t n = pread(fd, buf, PS_PAGE_BYTES, off);
		uint64_t t1 = ar_core_now_ns();
		if (n != PS_PAGE_BYTES)
			die("--raw-odirect: pread at %lld: %s", (long long)off,
			    n < 0 ? strerror(errno) : "short read");
		hist_add(&out->hist, t1 - t);
		t = t1;
	}
	out->seconds = (double)(t - start) / 1e9;
	free(buf);
}

/* -- the figures ------------------------------------------------------------------- */

#define PB_ROUNDS_MAX 1000

/* A target's rounds pooled. */
struct pb_total {
	struct pb_result all;
	uint32_t rounds;
	double rate[PB_ROUNDS_MAX];
};

static void total_add(struct pb_total *t, const struct pb_result *r)
{
	struct pb_result *a = &t->all;
	hist_merge(&a->hist, &r->hist);
	a->ok += r->ok;
	a->errors += r->errors;
	a->bytes += r->bytes;
	a->seconds += r->seconds;
	a->client_cpu_s += r->client_cpu_s;
	a->server_cpu_s += r->server_cpu_s;
	a->server_cpu_known = (t->rounds == 0 || a->server_cpu_known) && r->server_cpu_known;
	if (a->first_error[0] == '\0')
		memcpy(a->first_error, r->first_error, sizeof(a->first_error));
	t->rate[t->rounds++] = r->seconds > 0 ? (double)r->ok / r->seconds : 0;
}

static double rate(const struct pb_result *r)
{
	return r->seconds > 0 ? (double)r->ok / r->seconds : 0;
}

/* The load generator's CPU time over the measured time: near 1, it limits. */
static double busy(const struct pb_result *r)
{
	return r->seconds > 0 ? r->client_cpu_s / r->seconds : 0;
}

static double per_getpage_us(double cpu_s, const struct pb_result *r)
{
	return r->ok > 0 ? cpu_s * 1e6 / (double)r->ok : 0;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static const char *mode_text(const struct pb_opts *o, char *buf, size_t cap)
{
	char a[32], b[32];
	if (o->historical)
		snprintf(buf, cap, "historical LSNs in [%s, %s]", lsn_text(o->lsn_min, a),
			 lsn_text(o->lsn, b));
	else
		snprintf(buf, cap, "latest LSN (not_modified_since %s)", lsn_text(o->lsn, a));
	return buf;
}

static void print_row(const char *name, const struct pb_result *r)
{
	char cpu[32];
	if (r->server_cpu_known)
		snprintf(cpu, sizeof(cpu), "%.1f / %.1f", per_getpage_us(r->server_cpu_s, r),
			 per_getpage_us(r->client_cpu_s, r));
	else
		snprintf(cpu, sizeof(cpu), "- / %.1f", per_getpage_us(r->client_cpu_s, r));
	printf("%-9s %10.0f %8.1f %8.1f %9.1f %9.1f %8.1f %8.1f %14s %5.0f%% %7" PRIu64 "\n", name,
	       rate(r), hist_quantile_us(&r->hist, 0.5), hist_quantile_us(&r->hist, 0.99),
	       hist_quantile_us(&r->hist, 0.999), (double)r->hist.max_ns / 1000.0,
	       r->hist.count ? (double)r->hist.sum_ns / (double)r->hist.count / 1000.0 : 0,
	       r->seconds > 0 ? (double)r->bytes / r->seconds / 1048576.0 : 0, cpu, 100.0 * busy(r),
	       r->errors);
}

static void print_raw(const char *path, const struct pb_raw *raw)
{
	const struct pb_hist *h = &raw->hist;
	printf("raw O_DIRECT 8 KiB preads, one at a time, %s (%.1f MiB): %" PRIu64
	       " reads, %.0f/s, p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
	       path, (double)raw->file_bytes / 1048576.0, h->count, (double)h->count / raw->seconds,
	       hist_quantile_us(h, 0.5), hist_quantile_us(h, 0.99), hist_quantile_us(h, 0.999),
	       (double)h->max_ns / 1000.0);
}

static void print_table(const struct pb_opts *o, const struct pb_total *argon,
			const struct pb_total *base, const struct pb_raw *raw)
{
	char mode[128];
	printf("argon-pagebench: %s:%u, %u client%s x depth %u, pagestream v%d, %s,\n"
	       "%.1f s measured after %.1f s warm-up, %u round%s%s; keyspace %u relation%s, "
	       "%" PRIu64 " blocks, hot %" PRIu64 " (%.1f%%), seed %" PRIu64 "\n\n",
	       o->host, o->port, o->clients, o->clients == 1 ? "" : "s", o->depth, (int)o->version,
	       mode_text(o, mode, sizeof(mode)), o->seconds, o->warmup, o->rounds,
	       o->rounds == 1 ? "" : "s", base ? " (baseline first in each)" : "", o->rel_count,
	       o->rel_count == 1 ? "" : "s", o->blocks, o->hot_blocks,
	       100.0 * (double)o->hot_blocks / (double)o->blocks, o->seed);
	printf("%-9s %10s %8s %8s %9s %9s %8s %8s %14s %6s %7s\n", "target", "GetPage/s", "p50 us",
	       "p99 us", "p99.9 us", "max us", "mean us", "MiB/s", "CPU us/GP s/c", "load",
	       "errors");
	print_row("argon", &argon->all);
	if (base)
		print_row("baseline", &base->all);
	printf("(CPU us/GP s/c: server / this load generator, CPU microseconds per GetPage; load: "
	       "this load\ngenerator's CPU time over the measured time, near 100%%: it is the "
	       "bottleneck)\n");
	if (base) {
		const struct pb_result *a = &argon->all, *b = &base->all;
		printf("argon / baseline: throughput %.2fx, p50 %.2fx, p99 %.2fx, p99.9 %.2fx",
		       ratio(rate(a), rate(b)),
		       ratio(hist_quantile_us(&a->hist, 0.5), hist_quantile_us(&b->hist, 0.5)),
		       ratio(hist_quantile_us(&a->hist, 0.99), hist_quantile_us(&b->hist, 0.99)),
		       ratio(hist_quantile_us(&a->hist, 0.999), hist_quantile_us(&b->hist, 0.999)));
		if (a->server_cpu_known && b->server_cpu_known)
			printf(", server CPU per GetPage %.2fx",
			       ratio(a->server_cpu_s / (double)(a->ok ? a->ok : 1),
				     b->server_cpu_s / (double)(b->ok ? b->ok : 1)));
		printf("\n");
	}
	if (o->rounds > 1)
		for (int k = 0; k < (base ? 2 : 1); k++) {
			const struct pb_total *t = k == 0 ? argon : base;
			printf("GetPage/s per round, %s:", k == 0 ? "argon" : "baseline");
			for (uint32_t i = 0; i < t->rounds; i++)
				printf(" %.0f", t->rate[i]);
			printf("\n");
		}
	if (raw)
		print_raw(o->raw_odirect, raw);
	if (argon->all.errors || (base && base->all.errors))
		printf("ERRORS: argon %" PRIu64 " (first: %s)%s\n", argon->all.errors,
		       argon->all.first_error[0] ? argon->all.first_error : "-",
		       base && base->all.errors ? "; the baseline had errors too" : "");
}

/* At most 8 lines, for a demo. */
static void print_summary(const struct pb_opts *o, const struct pb_total *argon,
			  const struct pb_total *base)
{
	const struct pb_result *a = &argon->all;
	char mode[128];
	char rounds[32] = "";
	if (o->rounds > 1)
		snprintf(rounds, sizeof(rounds), " x %u rounds", o->rounds);
	printf("argon-pagebench: %s:%u, %u client%s x depth %u, %.1f s%s, %s\n", o->host, o->port,
	       o->clients, o->clients == 1 ? "" : "s", o->depth, o->seconds, rounds,
	       mode_text(o, mode, sizeof(mode)));
	printf("  keyspace   %u relation%s, %" PRIu64 " blocks (random, %" PRIu64 " hot)\n",
	       o->rel_count, o->rel_count == 1 ? "" : "s", o->blocks, o->hot_blocks);
	printf("  GetPage/s  %.0f (%.1f MiB/s), %" PRIu64 " pages, %" PRIu64 " errors\n", rate(a),
	       (double)a->bytes / (a->seconds > 0 ? a->seconds : 1) / 1048576.0, a->ok, a->errors);
	printf("  latency    p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n",
	       hist_quantile_us(&a->hist, 0.5), hist_quantile_us(&a->hist, 0.99),
	       hist_quantile_us(&a->hist, 0.999), (double)a->hist.max_ns / 1000.0);
	if (a->server_cpu_known)
		printf("  server CPU %.1f us per GetPage\n", per_getpage_us(a->server_cpu_s, a));
	if (base) {
		const struct pb_result *b = &base->all;
		printf(
		    "  baseline   %.0f GetPage/s, p50 %.0f us, p99 %.0f us: argon/baseline %.2fx, "
		    "p50 %.2fx, p99 %.2fx\n",
		    rate(b), hist_quantile_us(&b->hist, 0.5), hist_quantile_us(&b->hist, 0.99),
		    ratio(rate(a), rate(b)),
		    ratio(hist_quantile_us(&a->hist, 0.5), hist_quantile_us(&b->hist, 0.5)),
		    ratio(hist_quantile_us(&a->hist, 0.99), hist_quantile_us(&b->hist, 0.99)));
	}
	if (a->errors)
		printf("  first error: %s\n", a->first_error);
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_result(const char *name, const struct pb_total *t)
{
	const struct pb_result *r = &t->all;
	printf("\"%s\":{\"getpage_per_s\":%.1f,\"requests\":%" PRIu64 ",\"errors\":%" PRIu64
	       ",\"bytes\":%" PRIu64 ",\"mib_per_s\":%.2f,\"seconds\":%.3f,\"p50_us\":%.2f,"
	       "\"p90_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,\"mean_us\":%.2f,"
	       "\"client_cpu_us_per_getpage\":%.3f,\"client_busy\":%.3f,"
	       "\"server_cpu_us_per_getpage\":",
	       name, rate(r), r->ok, r->errors, r->bytes,
	       r->seconds > 0 ? (double)r->bytes / r->seconds / 1048576.0 : 0, r->seconds,
	       hist_quantile_us(&r->hist, 0.5), hist_quantile_us(&r->hist, 0.9),
	       hist_quantile_us(&r->hist, 0.99), hist_quantile_us(&r->hist, 0.999),
	       (double)r->hist.max_ns / 1000.0,
	       r->hist.count ? (double)r->hist.sum_ns / (double)r->hist.count / 1000.0 : 0,
	       per_getpage_us(r->client_cpu_s, r), busy(r));
	if (r->server_cpu_known)
		printf("%.3f", per_getpage_us(r->server_cpu_s, r));
	else
		printf("null");
	printf(",\"first_error\":");
	if (r->first_error[0])
		json_string(r->first_error);
	else
		printf("null");
	printf(",\"rounds\":[");
	for (uint32_t i = 0; i < t->rounds; i++)
		printf("%s%.1f", i ? "," : "", t->rate[i]);
	printf("]}");
}

static void json_config(const struct pb_opts *o)
{
	char a[32], b[32];
	printf("{\"benchmark\":\"pagebench\",\"host\":");
	json_string(o->host);
	printf(",\"port\":%u,\"tenant\":", o->port);
	json_string(o->tenant);
	printf(",\"timeline\":");
	json_string(o->timeline);
	printf(",\"version\":%d,\"clients\":%u,\"depth\":%u,\"seconds\":%.3f,\"warmup\":%.3f,"
	       "\"rounds\":%u,\"mode\":\"%s\",\"lsn\":\"%s\",\"lsn_min\":\"%s\","
	       "\"hot_fraction\":%.6f,\"seed\":%" PRIu64 ",\"keyspace\":{\"blocks\":%" PRIu64
	       ",\"hot_blocks\":%" PRIu64 ",\"relations\":[",
	       (int)o->version, o->clients, o->depth, o->seconds, o->warmup, o->rounds,
	       o->historical ? "historical" : "latest", lsn_text(o->lsn, a),
	       lsn_text(o->lsn_min, b), o->hot_fraction, o->seed, o->blocks, o->hot_blocks);
	for (uint32_t i = 0; i < o->rel_count; i++) {
		const struct ps_rel *r = &o->rels[i].rel;
		printf("%s{\"rel\":\"%u/%u/%u/%u\",\"nblocks\":%u}", i ? "," : "", r->spc, r->db,
		       r->relnode, r->fork, o->rels[i].nblocks);
	}
	printf("]}");
}

static void print_json(const struct pb_opts *o, const struct pb_total *argon,
		       const struct pb_total *base, const struct pb_raw *raw)
{
	json_config(o);
	printf(",");
	json_result("argon", argon);
	if (base) {
		const struct pb_result *a = &argon->all, *b = &base->all;
		printf(",");
		json_result("baseline", base);
		printf(",\"ratios\":{\"throughput\":%.4f,\"p50\":%.4f,\"p99\":%.4f,\"p999\":%.4f,"
		       "\"server_cpu\":",
		       ratio(rate(a), rate(b)),
		       ratio(hist_quantile_us(&a->hist, 0.5), hist_quantile_us(&b->hist, 0.5)),
		       ratio(hist_quantile_us(&a->hist, 0.99), hist_quantile_us(&b->hist, 0.99)),
		       ratio(hist_quantile_us(&a->hist, 0.999), hist_quantile_us(&b->hist, 0.999)));
		if (a->server_cpu_known && b->server_cpu_known)
			printf("%.4f}", ratio(per_getpage_us(a->server_cpu_s, a),
					      per_getpage_us(b->server_cpu_s, b)));
		else
			printf("null}");
	}
	if (raw) {
		const struct pb_hist *h = &raw->hist;
		printf(",\"raw_odirect\":{\"file\":");
		json_string(o->raw_odirect);
		printf(",\"file_bytes\":%" PRIu64 ",\"reads\":%" PRIu64 ",\"seconds\":%.3f,"
		       "\"iops\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,"
		       "\"max_us\":%.2f}",
		       raw->file_bytes, h->count, raw->seconds, (double)h->count / raw->seconds,
		       hist_quantile_us(h, 0.5), hist_quantile_us(h, 0.99),
		       hist_quantile_us(h, 0.999), (double)h->max_ns / 1000.0);
	}
	printf(",\"errors\":%" PRIu64 "}\n", argon->all.errors + (base ? base->all.errors : 0));
}

/* -- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static struct pb_opts o;
	static struct pb_total argon, base;
	static struct pb_result res;
	static struct pb_raw raw;
	int raw_fd = -1;

	parse_options(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);
	if (o.cpu >= 0)
		pin_cpu(o.cpu, "--cpu");
	if (o.raw_odirect)
		raw_fd = raw_open(o.raw_odirect, &raw.file_bytes);
	int fd = tcp_connect(o.host, o.port);
	pg_startup(fd, &o);
	pg_pagestream(fd, &o);
	fetch_nblocks(fd, &o);
	close(fd);

	uint16_t bl_port = 0;
	pid_t bl_pid = o.baseline ? bl_start(&o, &bl_port) : 0;
	for (uint32_t round = 0; round < o.rounds; round++) {
		if (o.baseline) {
			run_target(&o, "baseline", "127.0.0.1", bl_port, bl_pid, &res);
			total_add(&base, &res);
		}
		run_target(&o, "argon", o.host, o.port, o.server_pid, &res);
		total_add(&argon, &res);
	}
	if (o.baseline)
		bl_stop(bl_pid);
	if (raw_fd >= 0) {
		raw_run(raw_fd, o.seconds, o.seed, &raw);
		close(raw_fd);
	}
	const struct pb_total *b = o.baseline ? &base : NULL;
	const struct pb_raw *r = raw_fd >= 0 ? &raw : NULL;
	if (o.json)
		print_json(&o, &argon, b, r);
	else if (o.summary)
		print_summary(&o, &argon, b);
	else
		print_table(&o, &argon, b, r);
	return argon.all.errors || (b && b->all.errors) ? 1 : 0;
}
