/*
 * pageget.c - argon-pageget: reads relations, database sizes and SLRU segments
 * from a page server through the compute's client library (pageclient.h), the
 * way a compute's storage manager would, and writes what it read to files.
 *
 *   argon-pageget --conn CONNINFO [--conn CONNINFO ...] --tenant T --timeline TL
 *                 --lsn LSN [--nms LSN] [--v2] [--window N] [--timeout-ms N]
 *                 [--stripe-pages N] [--prefetch] [--retries N] --out DIR
 *                 [--rel SPC/DB/RELNODE/FORK ...] [--exists SPC/DB/RELNODE/FORK ...]
 *                 [--dbsize DB ...] [--slru KIND/SEGNO ...]
 *
 * One --conn per shard (two or more: a sharded tenant).  LSNs are X/Y in hex,
 * decimal, or "max".  Per relation: Nblocks, then every block, pipelined with
 * apc_send/apc_wait as deep as the window allows, or (--prefetch) with
 * apc_prefetch of the next PREFETCH_DISTANCE blocks before each apc_get_page;
 * the pages go to DIR/<spc>_<db>_<relnode>_<fork>.  An SLRU segment goes to
 * DIR/slru_<kind>_<segno>.  Each --exists, --dbsize and --slru prints a JSON line;
 * the last line is a JSON summary with the client's statistics.
 *
 * A relation whose read fails with its connection (dropped, timed out, refused)
 * is read again from its first block, up to --retries times: the library
 * reconnects on the next request.  Any other failure, or the last retry's, is
 * printed to stderr and the exit status is 1 (2: usage).
 */
#include "compute/pageclient.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PREFETCH_DISTANCE 16
#define RETRIES_MAX 100
#define RETRY_PAUSE_US 100000
#define PATH_BYTES 4096

struct job {
	char kind; /* 'r' rel, 'e' exists, 'd' dbsize, 's' slru */
	struct ps_rel rel;
	uint32_t db;
	uint8_t slru_kind;
	uint32_t segno;
};

struct options {
	const char **conninfo;
	uint32_t conns;
	struct apc_config config;
	uint64_t lsn;
	uint64_t nms;
	bool have_lsn;
	bool prefetch;
	uint32_t retries;
	const char *out;
	struct job *jobs;
	uint32_t njobs;
};

/* One pending GetPage of the pipelined mode. */
struct pending {
	int64_t ticket;
	uint32_t blkno;
};

struct totals {
	uint64_t relations;
	uint64_t blocks;
	uint64_t retries;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: argon-pageget --conn CONNINFO [--conn ...] --tenant T --timeline TL\n"
		"         --lsn LSN [--nms LSN] [--v2] [--window N] [--timeout-ms N]\n"
		"         [--stripe-pages N] [--prefetch] [--retries N] --out DIR\n"
		"         [--rel SPC/DB/RELNODE/FORK ...] [--exists SPC/DB/RELNODE/FORK ...]\n"
		"         [--dbsize DB ...] [--slru KIND/SEGNO ...]\n");
	exit(2);
}

static bool parse_u32(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > UINT32_MAX || s[0] == '-')
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool parse_lsn(const char *s, uint64_t *out)
{
	unsigned hi, lo;
	char tail;
	if (strcmp(s, "max") == 0) {
		*out = UINT64_MAX;
		return true;
	}
	if (strchr(s, '/')) {
		if (sscanf(s, "%x/%x%c", &hi, &lo, &tail) != 2)
			return false;
		*out = (uint64_t)hi << 32 | lo;
		return true;
	}
	char *end;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return !errno && end != s && !*end && s[0] != '-';
}

static bool parse_rel(const char *s, struct ps_rel *rel)
{
	unsigned spc, db, relnode, fork;
	char tail;
	if (sscanf(s, "%u/%u/%u/%u%c", &spc, &db, &relnode, &fork, &tail) != 4 || fork > 3)
		return false;
	*rel = (struct ps_rel){ .spc = spc, .db = db, .relnode = relnode, .fork = (uint8_t)fork };
	return true;
}

static void add_job(struct options *o, char kind, const char *name, const char *arg)
{
	struct job *j = &o->jobs[o->njobs++];
	unsigned slru_kind, segno;
	char tail;
	bool ok;
	j->kind = kind;
	if (kind == 'r' || kind == 'e') {
		ok = parse_rel(arg, &j->rel);
	} else if (kind == 'd') {
		ok = parse_u32(arg, &j->db);
	} else {
		ok = sscanf(arg, "%u/%u%c", &slru_kind, &segno, &tail) == 2 && slru_kind <= 2;
		j->slru_kind = (uint8_t)slru_kind;
		j->segno = segno;
	}
	if (!ok) {
		fprintf(stderr, "argon-pageget: bad --%s \"%s\"\n", name, arg);
		usage();
	}
}

static const struct option long_options[] = {
	{ "conn", required_argument, NULL, 'c' },
	{ "tenant", required_argument, NULL, 't' },
	{ "timeline", required_argument, NULL, 'l' },
	{ "v2", no_argument, NULL, '2' },
	{ "window", required_argument, NULL, 'w' },
	{ "timeout-ms", required_argument, NULL, 'T' },
	{ "stripe-pages", required_argument, NULL, 'S' },
	{ "lsn", required_argument, NULL, 'L' },
	{ "nms", required_argument, NULL, 'N' },
	{ "prefetch", no_argument, NULL, 'p' },
	{ "retries", required_argument, NULL, 'R' },
	{ "out", required_argument, NULL, 'o' },
	{ "rel", required_argument, NULL, 'r' },
	{ "exists", required_argument, NULL, 'e' },
	{ "dbsize", required_argument, NULL, 'd' },
	{ "slru", required_argument, NULL, 's' },
	{ NULL, 0, NULL, 0 },
};

static void parse_args(int argc, char **argv, struct options *o)
{
	/* Every job and conninfo is one argument: argc bounds both. */
	o->conninfo = calloc((size_t)argc, sizeof(*o->conninfo));
	o->jobs = calloc((size_t)argc, sizeof(*o->jobs));
	if (!o->conninfo || !o->jobs) {
		fprintf(stderr, "argon-pageget: out of memory\n");
		exit(1);
	}
	o->config.version = 3;
	int c, index;
	bool ok = true;
	while (ok && (c = getopt_long(argc, argv, "", long_options, &index)) != -1) {
		switch (c) {
		case 'c':
			o->conninfo[o->conns++] = optarg;
			break;
		case 't':
			o->config.tenant = optarg;
			break;
		case 'l':
			o->config.timeline = optarg;
			break;
		case '2':
			o->config.version = 2;
			break;
		case 'w':
			ok = parse_u32(optarg, &o->config.window);
			break;
		case 'T':
			ok = parse_u32(optarg, &o->config.timeout_ms);
			break;
		case 'S':
			ok = parse_u32(optarg, &o->config.stripe_pages);
			break;
		case 'L':
			ok = o->have_lsn = parse_lsn(optarg, &o->lsn);
			break;
		case 'N':
			ok = parse_lsn(optarg, &o->nms);
			break;
		case 'p':
			o->prefetch = true;
			break;
		case 'R':
			ok = parse_u32(optarg, &o->retries) && o->retries <= RETRIES_MAX;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'r':
		case 'e':
		case 'd':
		case 's':
			add_job(o, (char)c, long_options[index].name, optarg);
			break;
		default:
			ok = false;
		}
	}
	if (!ok || optind != argc || o->conns == 0 || !o->config.tenant || !o->config.timeline ||
	    !o->have_lsn || !o->out)
		usage();
	o->config.conninfo = o->conninfo;
	o->config.shard_count = o->conns;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Failures of the connection, not answers of the server: worth a retry. */
static bool is_connection_error(int rc)
{
	return rc == -ECONNRESET || rc == -ETIMEDOUT || rc == -ECONNREFUSED;
}

static int write_page(int fd, uint32_t blkno, const uint8_t *page, char *err)
{
	ssize_t n = pwrite(fd, page, PS_PAGE_BYTES, (off_t)blkno * PS_PAGE_BYTES);
	if (n == PS_PAGE_BYTES)
		return 0;
	snprintf(err, APC_ERROR_BYTES, "writing block %u: %s", blkno,
		 n < 0 ? strerror(errno) : "short write");
	return -EIO;
}

/* The oldest pending GetPage: wait, write, pop. */
static int pipeline_pop(struct apc_client *cl, struct pending *q, uint32_t cap, uint32_t *head,
			uint32_t *count, int fd, char *err)
{
	struct pending p = q[*head];
	*head = (*head + 1) % cap;
	(*count)--;
	struct apc_result res;
	int rc = apc_wait(cl, p.ticket, &res, err);
	if (rc < 0) {
		char text[APC_ERROR_BYTES];
		snprintf(text, sizeof(text), "%s", err);
		snprintf(err, APC_ERROR_BYTES, "block %u: %s", p.blkno, text);
		return rc;
	}
	return write_page(fd, p.blkno, res.resp.page, err);
}

/* Every block through apc_send/apc_wait, as many in flight as the windows take. */
static int read_pipelined(struct apc_client *cl, const struct options *o, struct ps_rel rel,
			  uint32_t nblocks, int fd, struct pending *q, uint32_t cap, char *err)
{
	uint32_t head = 0, count = 0;
	int rc = 0;
	for (uint32_t b = 0; b < nblocks && rc == 0; b++) {
		struct ps_request req = { .tag = PS_GETPAGE,
					  .request_lsn = o->lsn,
					  .not_modified_since = o->nms,
					  .rel = rel,
					  .blkno = b };
		int64_t t;
		/* A full window: the oldest answers make room (cap bounds the loop). */
		while ((t = apc_send(cl, &req)) == -EAGAIN && count > 0 && rc == 0)
			rc = pipeline_pop(cl, q, cap, &head, &count, fd, err);
		if (rc == 0 && t < 0) {
			rc = (int)t;
			snprintf(err, APC_ERROR_BYTES, "block %u: %s", b, apc_last_error(cl));
		}
		if (rc == 0) {
			q[(head + count) % cap] = (struct pending){ .ticket = t, .blkno = b };
			count++;
		}
	}
	while (count > 0 && rc == 0)
		rc = pipeline_pop(cl, q, cap, &head, &count, fd, err);
	for (; count > 0; count--, head = (head + 1) % cap)
		apc_discard(cl, q[head].ticket);
	return rc;
}

/* Every block through apc_get_page, the next PREFETCH_DISTANCE prefetched first. */
static int read_prefetching(struct apc_client *cl, const struct options *o, struct ps_rel rel,
			    uint32_t nblocks, int fd, char *err)
{
	uint8_t page[PS_PAGE_BYTES];
	for (uint32_t b = 0; b < nblocks; b++) {
		for (uint32_t p = b + 1; p <= b + PREFETCH_DISTANCE && p < nblocks; p++) {
			int rc = apc_prefetch(cl, rel, p, o->lsn, o->nms);
			if (rc == -EAGAIN)
				break; /* the window is full: advice only */
			if (rc < 0) {
				snprintf(err, APC_ERROR_BYTES, "prefetch of block %u: %s", p,
					 apc_last_error(cl));
				return rc;
			}
		}
		char text[APC_ERROR_BYTES];
		int rc = apc_get_page(cl, rel, b, o->lsn, o->nms, page, text);
		if (rc < 0) {
			snprintf(err, APC_ERROR_BYTES, "block %u: %s", b, text);
			return rc;
		}
		if ((rc = write_page(fd, b, page, err)) < 0)
			return rc;
	}
	return 0;
}

/* One relation, once: Nblocks, then every block into its file. */
static int read_rel_once(struct apc_client *cl, const struct options *o, struct ps_rel rel,
			 struct pending *q, uint32_t cap, uint32_t *nblocks, char *err)
{
	char path[PATH_BYTES], text[APC_ERROR_BYTES];
	int rc = apc_nblocks(cl, rel, o->lsn, o->nms, nblocks, text);
	if (rc < 0) {
		snprintf(err, APC_ERROR_BYTES, "Nblocks: %s", text);
		return rc;
	}
	snprintf(path, sizeof(path), "%s/%u_%u_%u_%u", o->out, rel.spc, rel.db, rel.relnode,
		 rel.fork);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, APC_ERROR_BYTES, "could not create \"%s\": %s", path,
			 strerror(errno));
		return -EIO;
	}
	if (o->prefetch)
		rc = read_prefetching(cl, o, rel, *nblocks, fd, err);
	else
		rc = read_pipelined(cl, o, rel, *nblocks, fd, q, cap, err);
	if (close(fd) < 0 && rc == 0) {
		snprintf(err, APC_ERROR_BYTES, "could not write \"%s\": %s", path, strerror(errno));
		rc = -EIO;
	}
	return rc;
}

static int read_rel(struct apc_client *cl, const struct options *o, struct ps_rel rel,
		    struct pending *q, uint32_t cap, struct totals *t)
{
	char err[APC_ERROR_BYTES];
	uint32_t nblocks = 0;
	int rc;
	for (uint32_t attempt = 0;; attempt++) {
		rc = read_rel_once(cl, o, rel, q, cap, &nblocks, err);
		if (rc == 0 || !is_connection_error(rc) || attempt >= o->retries)
			break;
		fprintf(stderr, "argon-pageget: relation %u/%u/%u/%u: %s; reading it again\n",
			rel.spc, rel.db, rel.relnode, rel.fork, err);
		t->retries++;
		usleep(RETRY_PAUSE_US);
	}
	if (rc < 0) {
		fprintf(stderr, "argon-pageget: relation %u/%u/%u/%u: %s\n", rel.spc, rel.db,
			rel.relnode, rel.fork, err);
		return rc;
	}
	t->relations++;
	t->blocks += nblocks;
	return 0;
}

static int run_slru(struct apc_client *cl, const struct options *o, const struct job *j)
{
	static uint8_t pages[PS_SLRU_PAGES_MAX * PS_PAGE_BYTES];
	char err[APC_ERROR_BYTES], path[PATH_BYTES];
	uint32_t n = 0;
	int rc = apc_get_slru(cl, j->slru_kind, j->segno, o->lsn, o->nms, pages, &n, err);
	if (rc < 0) {
		fprintf(stderr, "argon-pageget: SLRU %u/%u: %s\n", j->slru_kind, j->segno, err);
		return rc;
	}
	snprintf(path, sizeof(path), "%s/slru_%u_%u", o->out, j->slru_kind, j->segno);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(pages, PS_PAGE_BYTES, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "argon-pageget: could not write \"%s\"\n", path);
		return -EIO;
	}
	printf("{\"slru\": {\"kind\": %u, \"segno\": %u, \"pages\": %u}}\n", j->slru_kind, j->segno,
	       n);
	return 0;
}

static int run_job(struct apc_client *cl, const struct options *o, const struct job *j,
		   struct pending *q, uint32_t cap, struct totals *t)
{
	char err[APC_ERROR_BYTES];
	int rc = 0;
	if (j->kind == 'r')
		return read_rel(cl, o, j->rel, q, cap, t);
	if (j->kind == 's')
		return run_slru(cl, o, j);
	if (j->kind == 'e') {
		bool exists = false;
		rc = apc_exists(cl, j->rel, o->lsn, o->nms, &exists, err);
		if (rc == 0)
			printf("{\"exists\": {\"rel\": \"%u/%u/%u/%u\", \"value\": %s}}\n",
			       j->rel.spc, j->rel.db, j->rel.relnode, j->rel.fork,
			       exists ? "true" : "false");
	} else {
		int64_t bytes = 0;
		rc = apc_dbsize(cl, j->db, o->lsn, o->nms, &bytes, err);
		if (rc == 0)
			printf("{\"dbsize\": {\"db\": %u, \"bytes\": %" PRId64 "}}\n", j->db,
			       bytes);
	}
	if (rc < 0)
		fprintf(stderr, "argon-pageget: %s: %s\n", j->kind == 'e' ? "Exists" : "DbSize",
			err);
	return rc;
}

static void print_summary(const struct apc_client *cl, const struct totals *t, double seconds)
{
	struct apc_stats s;
	apc_get_stats(cl, &s);
	printf("{\"relations\": %" PRIu64 ", \"blocks\": %" PRIu64 ", \"retries\": %" PRIu64
	       ", \"sent\": %" PRIu64 ", \"received\": %" PRIu64 ", \"prefetch_hits\": %" PRIu64
	       ", \"prefetch_misses\": %" PRIu64 ", \"prefetch_discarded\": %" PRIu64
	       ", \"errors\": %" PRIu64 ", \"reconnects\": %" PRIu64 ", \"seconds\": %.3f}\n",
	       t->relations, t->blocks, t->retries, s.sent, s.received, s.prefetch_hits,
	       s.prefetch_misses, s.prefetch_discarded, s.errors, s.reconnects, seconds);
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	parse_args(argc, argv, &o);
	char err[APC_ERROR_BYTES];
	struct apc_client *cl;
	double began = now_seconds();
	int rc = apc_connect(&o.config, &cl, err);
	if (rc < 0) {
		fprintf(stderr, "argon-pageget: %s\n", err);
		free(o.jobs);
		free(o.conninfo);
		return 1;
	}
	uint32_t window = o.config.window ? o.config.window : APC_WINDOW_DEFAULT;
	uint32_t cap = window * o.conns; /* every window full at once */
	struct pending *q = calloc(cap, sizeof(*q));
	struct totals t = { 0 };
	if (!q) {
		fprintf(stderr, "argon-pageget: out of memory\n");
		rc = -ENOMEM;
	}
	for (uint32_t i = 0; q && i < o.njobs && rc == 0; i++)
		rc = run_job(cl, &o, &o.jobs[i], q, cap, &t);
	print_summary(cl, &t, now_seconds() - began);
	apc_close(cl);
	free(q);
	free(o.jobs);
	free(o.conninfo);
	return rc < 0 ? 1 : 0;
}
