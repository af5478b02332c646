/*
 * redo_bench.c - argon-redo-bench: GetPage@LSN of pages that PostgreSQL's redo
 * (argon-walredo, through the store's redo pool) rebuilds from a full-page image
 * and N WAL records, next to pages that are an image hit, read in the same run
 * from the same layers.  perf/redo_bench.py makes the data directory (a real
 * PostgreSQL 15 primary's WAL, imported with image layers off) and runs this.
 *
 *   argon-redo-bench -D DIR --requests FILE [--lsn LSN] [--reps N] [--probe N]
 *       [--cpu N] [--helper-cpu N] [--cache-bytes N] [--tenant ID]
 *       [--timeline ID] [--json]
 *
 * FILE has one request per line, "CLASS SPC DB REL FORK BLOCK"; CLASS is a label
 * (at most 15 characters), and the first class named is the baseline (the image
 * hits).  Every page is read once to warm the block cache and start the helper,
 * then --reps times (default 25) in a new random order each time, all classes
 * interleaved, at --lsn (default: the timeline's last record).  The engine keeps
 * no rebuilt pages, so every read of a page with records runs the redo again.
 *
 * Where the time goes:
 *   redo     the call into the redo pool (building the request, the pipe round
 *            trip, the helper's work), timed by a wrapper around the pool's slot;
 *   engine   the rest of tl_get: finding the records in the layers, the applier.
 * The direct probe (--probe N round trips each, default 2000; 0: none) speaks
 * the helper's protocol itself on blocking pipes, with a helper of its own
 * pinned like the pool's: a ping of 1 byte and of 8 KiB (the pipe and the
 * wake-ups alone), a page pushed and read back with no records, and the request
 * the pool sent first for each class, replayed as it was.  Their difference
 * over the record count is the helper's cost per record.
 *
 * --cpu pins this process (and so the pool's helper, which inherits it);
 * --helper-cpu then moves the helper.  Figures: p50/p99/p999/max per class and
 * ratios of the p50s to the baseline's.  A benchmark, not a test: it asserts
 * nothing about speed.
 */
#include "common/bytes.h"
#include "common/err.h"
#include "common/runtime.h"
#include "compute/walredo.h"
#include "engine/redopool.h"
#include "ingest/store.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CLASS_MAX 8
#define NAME_BYTES 16
#define DEFAULT_ID "00000000000000000000000000000001"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "argon-redo-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		die("out of memory");
	return p;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct dist {
	uint64_t p50, p99, p999, max;
	size_t n;
};

/* Sorts ns in place. */
static struct dist summarize(uint64_t *ns, size_t n)
{
	if (n == 0)
		return (struct dist){ 0 };
	qsort(ns, n, sizeof(*ns), cmp_u64);
	return (struct dist){ ns[n / 2], ns[n * 99 / 100], ns[n * 999 / 1000], ns[n - 1], n };
}

/* xorshift64*: the shuffles (rand() is banned by tidy). */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* ---- one redo request, as bytes of the helper's protocol ---- */

/* Segments: head (begin, push), body (the records), tail (get-page). */
struct capture {
	bool have;
	uint8_t *buf;
	size_t len, cap;
	size_t head_end, body_end;
	size_t records;
};

static void cap_bytes(struct capture *c, const void *p, size_t n)
{
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 64 * 1024;
		while (cap < c->len + n)
			cap *= 2;
		c->buf = realloc(c->buf, cap);
		if (!c->buf)
			die("out of memory");
		c->cap = cap;
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
}

/* A message header, then the tag (as the pool writes it). */
static void cap_msg(struct capture *c, uint8_t type, size_t payload, const struct ar_key *key)
{
	uint8_t h[5 + AR_WALREDO_TAG_BYTES];
	h[0] = type;
	ar_put_be32(h + 1, (uint32_t)(4 + payload));
	h[5] = key->f5;
	ar_put_be32(h + 6, key->f2);
	ar_put_be32(h + 10, key->f3);
	ar_put_be32(h + 14, key->f4);
	ar_put_be32(h + 18, key->f6);
	cap_bytes(c, h, sizeof(h));
}

static void capture_request(struct capture *c, const struct ar_key *key, const uint8_t *base,
			    const struct ar_redo_record *records, size_t count)
{
	c->len = 0;
	cap_msg(c, AR_WALREDO_BEGIN, AR_WALREDO_TAG_BYTES, key);
	if (base) {
		cap_msg(c, AR_WALREDO_PUSH, AR_WALREDO_TAG_BYTES + AR_PAGE_BYTES, key);
		cap_bytes(c, base, AR_PAGE_BYTES);
	}
	c->head_end = c->len;
	for (size_t i = 0; i < count; i++) {
		uint8_t h[13];
		h[0] = AR_WALREDO_APPLY;
		ar_put_be32(h + 1, (uint32_t)(4 + 8 + records[i].value.len));
		ar_put_be64(h + 5, records[i].lsn);
		cap_bytes(c, h, sizeof(h));
		cap_bytes(c, records[i].value.data, records[i].value.len);
	}
	c->body_end = c->len;
	cap_msg(c, AR_WALREDO_GET, AR_WALREDO_TAG_BYTES, key);
	c->records = count;
	c->have = base != NULL;
}

/* ---- the pool's slot, timed ---- */

struct timed_redo {
	struct ar_redo redo; /* first: a struct timed_redo * is a struct ar_redo * */
	struct ar_redo *inner;
	uint64_t ns, records, applies;
	struct capture *capture; /* not NULL: keep the next request (then NULL) */
};

static int timed_apply(struct ar_redo *redo, const struct ar_key *key, const uint8_t *base,
		       uint32_t base_len, const struct ar_redo_record *records, size_t count,
		       uint8_t out[AR_PAGE_BYTES], uint32_t *out_len)
{
	struct timed_redo *t = (struct timed_redo *)redo;
	if (t->capture) {
		capture_request(t->capture, key, base, records, count);
		t->capture = NULL;
	}
	t->inner->err[0] = '\0';
	uint64_t began = ar_core_now_ns();
	int rc = t->inner->ops->apply(t->inner, key, base, base_len, records, count, out, out_len);
	t->ns += ar_core_now_ns() - began;
	t->records += count;
	t->applies++;
	if (rc < 0)
		snprintf(redo->err, sizeof(redo->err), "%s", t->inner->err);
	return rc;
}

static const struct ar_redo_ops timed_ops = { .apply = timed_apply };

/* ---- options and requests ---- */

struct opts {
	const char *dir;
	const char *requests;
	struct tl_id tenant, timeline;
	ar_lsn lsn; /* 0: the timeline's last record */
	uint32_t reps, probe;
	int cpu, helper_cpu; /* -1: not pinned */
	uint64_t cache_bytes;
	bool json;
};

struct request {
	uint32_t cls;
	struct ar_key key;
};

struct cls {
	char name[NAME_BYTES];
	size_t pages;
	uint64_t *total_ns, *redo_ns, *engine_ns; /* per measured read */
	size_t n;
	uint64_t records, applies, redo_sum_ns, total_sum_ns; /* measured reads */
	struct capture cap;
};

static struct cls classes[CLASS_MAX];
static uint32_t class_count;

static void usage(void)
{
	fprintf(stderr,
		"usage: argon-redo-bench -D DIR --requests FILE [--lsn LSN] [--reps N]\n"
		"       [--probe N] [--cpu N] [--helper-cpu N] [--cache-bytes N]\n"
		"       [--tenant ID] [--timeline ID] [--json]\n"
		"FILE: lines \"CLASS SPC DB REL FORK BLOCK\"; the first class is the baseline\n");
	exit(2);
}

static uint64_t number(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end)
		die("\"%s\" is not a number", s);
	return v;
}

static void parse_opt(int opt, const char *arg, struct opts *o)
{
	switch (opt) {
	case 'D':
		o->dir = arg;
		break;
	case 'r':
		o->requests = arg;
		break;
	case 'l':
		if (!store_parse_lsn(arg, &o->lsn))
			die("\"%s\" is not an LSN", arg);
		break;
	case 'n':
		o->reps = (uint32_t)number(arg);
		break;
	case 'p':
		o->probe = (uint32_t)number(arg);
		break;
	case 'c':
		o->cpu = (int)number(arg);
		break;
	case 'h':
		o->helper_cpu = (int)number(arg);
		break;
	case 'm':
		o->cache_bytes = number(arg);
		break;
	case 't':
	case 'T':
		if (!tl_id_from_hex(arg, opt == 't' ? &o->tenant : &o->timeline))
			die("\"%s\" is not an ID of 32 hex digits", arg);
		break;
	case 'j':
		o->json = true;
		break;
	default:
		usage();
	}
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option options[] = {
		{ "data-dir", required_argument, NULL, 'D' },
		{ "requests", required_argument, NULL, 'r' },
		{ "lsn", required_argument, NULL, 'l' },
		{ "reps", required_argument, NULL, 'n' },
		{ "probe", required_argument, NULL, 'p' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "helper-cpu", required_argument, NULL, 'h' },
		{ "cache-bytes", required_argument, NULL, 'm' },
		{ "tenant", required_argument, NULL, 't' },
		{ "timeline", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct opts){
		.reps = 25, .probe = 2000, .cpu = -1, .helper_cpu = -1, .cache_bytes = 256u << 20
	};
	tl_id_from_hex(DEFAULT_ID, &o->tenant);
	tl_id_from_hex(DEFAULT_ID, &o->timeline);
	int opt;
	while ((opt = getopt_long(argc, argv, "D:", options, NULL)) != -1)
		parse_opt(opt, optarg, o);
	if (!o->dir || !o->requests || optind != argc || o->reps == 0)
		usage();
}

static uint32_t class_of(const char *name)
{
	for (uint32_t i = 0; i < class_count; i++)
		if (strcmp(classes[i].name, name) == 0)
			return i;
	if (class_count == CLASS_MAX)
		die("more than %d classes", CLASS_MAX);
	snprintf(classes[class_count].name, NAME_BYTES, "%s", name);
	return class_count++;
}

static struct request *read_requests(const char *path, size_t *count)
{
	FILE *f = fopen(path, "re");
	if (!f)
		die("%s: %s", path, strerror(errno));
	size_t n = 0, cap = 1024;
	struct request *r = xcalloc(cap, sizeof(*r));
	char line[256], name[NAME_BYTES];
	unsigned spc, db, rel, fork, block;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%15s %u %u %u %u %u", name, &spc, &db, &rel, &fork, &block) !=
			6 ||
		    fork > AR_FORK_INIT)
			die("%s: malformed line: %s", path, line);
		if (n == cap) {
			cap *= 2;
			r = realloc(r, cap * sizeof(*r));
			if (!r)
				die("out of memory");
		}
		struct ar_rel ar = { spc, db, rel, (uint8_t)fork };
		r[n].cls = class_of(name);
		r[n].key = ar_key_rel_block(ar, block);
		classes[r[n].cls].pages++;
		n++;
	}
	fclose(f);
	if (n == 0)
		die("%s: no requests", path);
	*count = n;
	return r;
}

static void pin(pid_t pid, int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(pid, sizeof(set), &set) < 0)
		die("pinning process %d to CPU %d: %s", (int)pid, cpu, strerror(errno));
}

/* ---- GetPage through the store ---- */

struct bench {
	struct opts o;
	struct ar_store *s;
	struct ar_timeline *tl;
	struct timed_redo timed;
	struct request *req;
	size_t req_count;
	uint32_t *order;
	ar_lsn lsn;
	pid_t helper_pid;
	struct ar_redopool_stats pool;
};

static void bench_open(struct bench *b)
{
	struct store_options so;
	char err[STORE_ERROR_BYTES] = "";
	store_options_default(&so);
	so.cache_bytes = b->o.cache_bytes;
	int rc = store_open(b->o.dir, &b->o.tenant, false, &so, &b->s, err);
	if (rc < 0)
		die("opening %s: %s", b->o.dir, err[0] ? err : strerror(-rc));
	if (!b->s->redopool)
		die("no argon-walredo was found (set ARGON_WALREDO)");
	b->tl = tenant_timeline(b->s->tenant, &b->o.timeline);
	if (!b->tl)
		die("%s: no such timeline", b->o.dir);
	b->lsn = b->o.lsn ? b->o.lsn : tl_last_record_lsn(b->tl);
	/* Every PostgreSQL record run the applier hands on goes through the wrapper. */
	b->timed.redo.ops = &timed_ops;
	b->timed.inner = b->s->applier.inner;
	b->s->applier.inner = &b->timed.redo;
}

/* One GetPage; its total and redo nanoseconds. */
static void get_one(struct bench *b, const struct request *r, uint64_t *total, uint64_t *redo)
{
	uint8_t page[AR_PAGE_BYTES];
	uint32_t len = 0;
	uint64_t redo_before = b->timed.ns;
	uint64_t began = ar_core_now_ns();
	int rc = tl_get(b->tl, &r->key, b->lsn, page, &len);
	*total = ar_core_now_ns() - began;
	*redo = b->timed.ns - redo_before;
	if (rc < 0 || len != AR_PAGE_BYTES)
		die("GetPage of block %u of %u/%u/%u fork %u (class %s): %s", r->key.f6, r->key.f2,
		    r->key.f3, r->key.f4, r->key.f5, classes[r->cls].name,
		    rc == 0              ? "not a whole page"
		    : tl_error(b->tl)[0] ? tl_error(b->tl)
					 : strerror(-rc));
}

/* Every page once: the block cache warm, the helper started, and the first redo
 * request of each class kept for the direct probe. */
static void warm_up(struct bench *b)
{
	for (size_t i = 0; i < b->req_count; i++) {
		struct cls *c = &classes[b->req[i].cls];
		uint64_t total, redo;
		b->timed.capture = c->cap.len ? NULL : &c->cap;
		get_one(b, &b->req[i], &total, &redo);
		b->timed.capture = NULL;
	}
	struct ar_redo *slot = ar_redopool_slot(b->s->redopool, 0);
	b->helper_pid = ar_redopool_helper_pid(slot);
	if (b->o.helper_cpu >= 0 && b->helper_pid > 0)
		pin(b->helper_pid, b->o.helper_cpu);
}

static void measure(struct bench *b)
{
	uint64_t seed = 0x9E3779B97F4A7C15ull;
	for (uint32_t i = 0; i < class_count; i++) {
		size_t n = classes[i].pages * b->o.reps;
		classes[i].total_ns = xcalloc(n, sizeof(uint64_t));
		classes[i].redo_ns = xcalloc(n, sizeof(uint64_t));
		classes[i].engine_ns = xcalloc(n, sizeof(uint64_t));
	}
	b->order = xcalloc(b->req_count, sizeof(*b->order));
	for (size_t i = 0; i < b->req_count; i++)
		b->order[i] = (uint32_t)i;
	for (uint32_t rep = 0; rep < b->o.reps; rep++) {
		for (size_t i = b->req_count - 1; i > 0; i--) {
			size_t j = rng_next(&seed) % (i + 1);
			uint32_t t = b->order[i];
			b->order[i] = b->order[j];
			b->order[j] = t;
		}
		for (size_t i = 0; i < b->req_count; i++) {
			const struct request *r = &b->req[b->order[i]];
			struct cls *c = &classes[r->cls];
			uint64_t total, redo, rec_before = b->timed.records;
			uint64_t applies_before = b->timed.applies;
			get_one(b, r, &total, &redo);
			c->total_ns[c->n] = total;
			c->redo_ns[c->n] = redo;
			c->engine_ns[c->n] = total - redo;
			c->n++;
			c->records += b->timed.records - rec_before;
			c->applies += b->timed.applies - applies_before;
			c->redo_sum_ns += redo;
			c->total_sum_ns += total;
		}
	}
	ar_redopool_stats(b->s->redopool, &b->pool);
}

/* ---- the direct probe: the helper's protocol on blocking pipes ---- */

struct helper {
	pid_t pid;
	int to_fd, from_fd;
};

static void helper_spawn(struct helper *h, int cpu)
{
	char path[4096];
	if (!ar_redopool_find_helper(path, sizeof(path)))
		die("no argon-walredo was found (set ARGON_WALREDO)");
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		die("pipe2: %s", strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	char *argv[] = { path, NULL };
	int rc = posix_spawn(&h->pid, path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		die("starting %s: %s", path, strerror(rc));
	close(in[0]);
	close(out[1]);
	h->to_fd = in[1];
	h->from_fd = out[0];
	if (cpu >= 0)
		pin(h->pid, cpu);
}

static void helper_stop(struct helper *h)
{
	close(h->to_fd);
	close(h->from_fd);
	int status;
	while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR)
		;
}

/* Send len bytes, read reply bytes back; the nanoseconds it took. */
static uint64_t round_trip(struct helper *h, const uint8_t *msg, size_t len, uint8_t *reply,
			   size_t reply_len)
{
	uint64_t began = ar_core_now_ns();
	for (size_t sent = 0; sent < len;) {
		ssize_t w = write(h->to_fd, msg + sent, len - sent);
		if (w < 0 && errno != EINTR)
			die("writing to argon-walredo: %s", strerror(errno));
		sent += w > 0 ? (size_t)w : 0;
	}
	for (size_t got = 0; got < reply_len;) {
		ssize_t r = read(h->from_fd, reply + got, reply_len - got);
		if (r == 0 || (r < 0 && errno != EINTR))
			die("argon-walredo ended or failed (see its report above)");
		got += r > 0 ? (size_t)r : 0;
	}
	return ar_core_now_ns() - began;
}

#define PROBE_MAX (3 + CLASS_MAX)

struct probe {
	char name[48];
	uint8_t *msg;
	size_t len, reply_len;
	size_t records; /* redo records in it */
	uint64_t *ns;
	struct dist d;
};

static struct probe probes[PROBE_MAX];
static uint32_t probe_count;

static struct probe *probe_add(const char *name, size_t len, size_t reply_len, size_t records)
{
	struct probe *p = &probes[probe_count++];
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->msg = xcalloc(len, 1);
	p->len = len;
	p->reply_len = reply_len;
	p->records = records;
	return p;
}

static void ping_probe(const char *name, size_t payload)
{
	struct probe *p = probe_add(name, 5 + payload, payload, 0);
	p->msg[0] = AR_WALREDO_PING;
	ar_put_be32(p->msg + 1, (uint32_t)(4 + payload));
	memset(p->msg + 5, 0x5A, payload);
}

/* Pings, a page in and out with no records, each class's first redo request. */
static void probes_make(void)
{
	ping_probe("ping, 1 byte each way", 1);
	ping_probe("ping, 8 KiB each way", AR_PAGE_BYTES);
	for (uint32_t i = 0; i < class_count; i++) {
		const struct capture *c = &classes[i].cap;
		if (!c->have)
			continue;
		if (probe_count == 2) {
			size_t tail = c->len - c->body_end;
			struct probe *p = probe_add("page in and out, no records",
						    c->head_end + tail, AR_PAGE_BYTES, 0);
			memcpy(p->msg, c->buf, c->head_end);
			memcpy(p->msg + c->head_end, c->buf + c->body_end, tail);
		}
		char name[48];
		snprintf(name, sizeof(name), "class %s's request", classes[i].name);
		struct probe *p = probe_add(name, c->len, AR_PAGE_BYTES, c->records);
		memcpy(p->msg, c->buf, c->len);
	}
}

static void probe_run(const struct opts *o)
{
	static uint8_t reply[AR_PAGE_BYTES];
	struct helper h;
	probes_make();
	helper_spawn(&h, o->helper_cpu);
	for (uint32_t j = 0; j < probe_count; j++) {
		probes[j].ns = xcalloc(o->probe, sizeof(uint64_t));
		for (uint32_t w = 0; w < 20; w++) /* warm-up */
			round_trip(&h, probes[j].msg, probes[j].len, reply, probes[j].reply_len);
	}
	for (uint32_t i = 0; i < o->probe; i++)
		for (uint32_t j = 0; j < probe_count; j++)
			probes[j].ns[i] = round_trip(&h, probes[j].msg, probes[j].len, reply,
						     probes[j].reply_len);
	for (uint32_t j = 0; j < probe_count; j++)
		probes[j].d = summarize(probes[j].ns, o->probe);
	helper_stop(&h);
}

/* ---- figures ---- */

struct figures {
	struct dist total[CLASS_MAX], redo[CLASS_MAX], engine[CLASS_MAX];
	double per_read[CLASS_MAX];  /* records per read */
	double rec_per_s[CLASS_MAX]; /* records per second of redo calls */
	int top;                     /* the class with the most records per read */
	double helper_record_ns;     /* the direct probe's cost per record (0: none) */
	double helper_fixed_ns;      /* its page in and out with no records */
};

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void figures_make(struct figures *f)
{
	memset(f, 0, sizeof(*f));
	f->top = -1;
	for (uint32_t i = 0; i < class_count; i++) {
		struct cls *c = &classes[i];
		f->total[i] = summarize(c->total_ns, c->n);
		f->redo[i] = summarize(c->redo_ns, c->n);
		f->engine[i] = summarize(c->engine_ns, c->n);
		f->per_read[i] = c->n ? (double)c->records / (double)c->n : 0;
		f->rec_per_s[i] =
		    c->redo_sum_ns ? (double)c->records * 1e9 / (double)c->redo_sum_ns : 0;
		if (c->records && (f->top < 0 || f->per_read[i] > f->per_read[f->top]))
			f->top = (int)i;
	}
	const struct probe *fixed = NULL, *big = NULL;
	for (uint32_t j = 0; j < probe_count; j++) {
		if (strncmp(probes[j].name, "page in", 7) == 0)
			fixed = &probes[j];
		if (probes[j].records && (!big || probes[j].records > big->records))
			big = &probes[j];
	}
	if (fixed && big) {
		f->helper_fixed_ns = (double)fixed->d.p50;
		f->helper_record_ns =
		    ((double)big->d.p50 - (double)fixed->d.p50) / (double)big->records;
	}
}

static const char *cpu_text(int cpu, char buf[16])
{
	if (cpu < 0)
		return "any";
	snprintf(buf, 16, "%d", cpu);
	return buf;
}

static void print_classes(const struct bench *b, const struct figures *f)
{
	char lsn[STORE_LSN_TEXT_BYTES], c1[16], c2[16];
	store_lsn_text(b->lsn, lsn);
	printf("argon-redo-bench: %s at %s, each page read %u times in random order; this "
	       "process on CPU %s, the helper on CPU %s\n",
	       b->o.dir, lsn, b->o.reps, cpu_text(b->o.cpu, c1),
	       cpu_text(b->o.helper_cpu >= 0 ? b->o.helper_cpu : b->o.cpu, c2));
	printf("%-7s %5s %6s %8s %8s %8s %8s %8s %8s %9s %9s %10s\n", "class", "pages", "reads",
	       "rec/read", "p50 us", "p99 us", "p999 us", "max us", "p50/base", "redo p50",
	       "engine p50", "redo rec/s");
	for (uint32_t i = 0; i < class_count; i++) {
		const struct dist *t = &f->total[i];
		printf("%-7s %5zu %6zu %8.1f %8.1f %8.1f %8.1f %8.1f %8.2f %9.1f %9.1f %10.0f\n",
		       classes[i].name, classes[i].pages, t->n, f->per_read[i], us(t->p50),
		       us(t->p99), us(t->p999), us(t->max),
		       f->total[0].p50 ? (double)t->p50 / (double)f->total[0].p50 : 0,
		       us(f->redo[i].p50), us(f->engine[i].p50), f->rec_per_s[i]);
	}
	printf("base: the first class (%s).  redo: the call into the redo pool (request, pipes, "
	       "helper);\nengine: the rest of tl_get.  redo rec/s: records / time in redo calls.\n",
	       classes[0].name);
}

static void print_probes(const struct figures *f)
{
	if (probe_count == 0)
		return;
	printf("\ndirect probe: own helper, blocking pipes, %zu round trips each "
	       "(interleaved)\n",
	       probes[0].d.n);
	printf("%-32s %8s %8s %8s %8s\n", "", "records", "p50 us", "p99 us", "p999 us");
	for (uint32_t j = 0; j < probe_count; j++)
		printf("%-32s %8zu %8.1f %8.1f %8.1f\n", probes[j].name, probes[j].records,
		       us(probes[j].d.p50), us(probes[j].d.p99), us(probes[j].d.p999));
	if (f->helper_record_ns > 0)
		printf(
		    "helper: %.2f us per record past a page in and out (%.1f us): %.0f records/s "
		    "per helper\n",
		    f->helper_record_ns / 1000.0, f->helper_fixed_ns / 1000.0,
		    1e9 / f->helper_record_ns);
}

static void print_table(const struct bench *b, const struct figures *f)
{
	print_classes(b, f);
	if (f->top >= 0)
		printf("records/s per helper, reads of class %s: %.0f (redo calls only), %.0f "
		       "(whole GetPage)\n",
		       classes[f->top].name, f->rec_per_s[f->top],
		       (double)classes[f->top].records * 1e9 /
			   (double)classes[f->top].total_sum_ns);
	print_probes(f);
	printf("\nredo pool: %" PRIu64 " helpers started, %" PRIu64 " requests, %" PRIu64
	       " records, %" PRIu64 " failures\n",
	       b->pool.started, b->pool.requests, b->pool.records, b->pool.failures);
}

static void json_dist(const char *prefix, const struct dist *d)
{
	printf("\"%sp50_us\": %.2f, \"%sp99_us\": %.2f, \"%sp999_us\": %.2f, \"%smax_us\": %.2f",
	       prefix, us(d->p50), prefix, us(d->p99), prefix, us(d->p999), prefix, us(d->max));
}

static void json_classes(const struct figures *f)
{
	printf("\"classes\": [");
	for (uint32_t i = 0; i < class_count; i++) {
		const struct cls *c = &classes[i];
		printf("%s{\"name\": \"%s\", \"pages\": %zu, \"reads\": %zu, "
		       "\"records_per_read\": %.3f, ",
		       i ? ", " : "", c->name, c->pages, c->n, f->per_read[i]);
		json_dist("", &f->total[i]);
		printf(", ");
		json_dist("redo_", &f->redo[i]);
		printf(", ");
		json_dist("engine_", &f->engine[i]);
		printf(", \"p50_over_base\": %.4f, \"redo_records_per_s\": %.1f, "
		       "\"getpage_records_per_s\": %.1f}",
		       f->total[0].p50 ? (double)f->total[i].p50 / (double)f->total[0].p50 : 0,
		       f->rec_per_s[i],
		       c->total_sum_ns ? (double)c->records * 1e9 / (double)c->total_sum_ns : 0);
	}
	printf("]");
}

static void print_json(const struct bench *b, const struct figures *f)
{
	char lsn[STORE_LSN_TEXT_BYTES];
	store_lsn_text(b->lsn, lsn);
	printf("{\"lsn\": \"%s\", \"reps\": %u, \"cpu\": %d, \"helper_cpu\": %d, ", lsn, b->o.reps,
	       b->o.cpu, b->o.helper_cpu >= 0 ? b->o.helper_cpu : b->o.cpu);
	json_classes(f);
	printf(", \"top_class\": \"%s\", \"probe\": [", f->top >= 0 ? classes[f->top].name : "");
	for (uint32_t j = 0; j < probe_count; j++) {
		printf("%s{\"name\": \"%s\", \"records\": %zu, \"round_trips\": %zu, ",
		       j ? ", " : "", probes[j].name, probes[j].records, probes[j].d.n);
		json_dist("", &probes[j].d);
		printf("}");
	}
	printf("], \"helper_fixed_us\": %.3f, \"helper_record_us\": %.4f, ",
	       f->helper_fixed_ns / 1000.0, f->helper_record_ns / 1000.0);
	printf(
	    "\"pool\": {\"helpers_started\": %" PRIu64 ", \"replaced\": %" PRIu64
	    ", \"requests\": %" PRIu64 ", \"records\": %" PRIu64 ", \"failures\": %" PRIu64 "}}\n",
	    b->pool.started, b->pool.replaced, b->pool.requests, b->pool.records, b->pool.failures);
}

int main(int argc, char **argv)
{
	static struct bench b;
	parse_opts(argc, argv, &b.o);
	if (b.o.cpu >= 0)
		pin(0, b.o.cpu);
	b.req = read_requests(b.o.requests, &b.req_count);
	bench_open(&b);
	warm_up(&b);
	measure(&b);
	if (b.o.probe > 0)
		probe_run(&b.o);
	struct figures f;
	figures_make(&f);
	if (b.o.json)
		print_json(&b, &f);
	else
		print_table(&b, &f);
	store_close(b.s);
	return 0;
}
