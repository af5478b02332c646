/*
 * redopool.c - argon-walredo helpers behind the engine's redo interface (see
 * redopool.h; the protocol is documented in compute/walredo.c).
 */
#include "engine/redopool.h"

#include "common/bytes.h"
#include "common/err.h"
#include "compute/walredo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define STDERR_KEEP 2048

struct slot {
	struct ar_redo redo; /* first: a struct slot * is a struct ar_redo * */
	struct ar_redopool *pool;
	pid_t pid;   /* 0: no helper */
	int to_fd;   /* its stdin */
	int from_fd; /* its stdout */
	int err_fd;  /* its stderr */
	char errtext[STDERR_KEEP];
	size_t errlen;
	uint8_t *req;
	size_t req_len, req_cap;
	/* What the request in req is about, put in words only when it fails. */
	struct {
		const char *what; /* a fixed description; NULL: an apply, as below */
		int rmid;         /* a mask request's rmgr (-1: none) */
		struct ar_key key;
		const struct ar_redo_record *records; /* the caller's, during the request */
		size_t count;
		char text[160];
	} about;
};

struct ar_redopool {
	struct ar_redopool_config cfg;
	char path[PATH_MAX];
	struct slot *slots;
	struct ar_redopool_stats stats; /* updated with atomics: slots run on many threads */
};

static struct slot *slot_of(struct ar_redo *redo)
{
	return (struct slot *)redo;
}

/* Set what the next request is about: a fixed text (rmid >= 0 adds the rmgr),
 * or, with what NULL, an apply of count records to key. */
static void about_set(struct slot *s, const char *what, int rmid, const struct ar_key *key,
		      const struct ar_redo_record *records, size_t count)
{
	s->about.what = what;
	s->about.rmid = rmid;
	if (key)
		s->about.key = *key;
	s->about.records = records;
	s->about.count = count;
}

/* The request in words, for an error message. */
static const char *about(struct slot *s)
{
	const struct ar_key *k = &s->about.key;
	const struct ar_redo_record *r = s->about.records;
	size_t n = s->about.count;
	if (s->about.what && s->about.rmid >= 0)
		snprintf(s->about.text, sizeof(s->about.text), "%s (rmgr %d)", s->about.what,
			 s->about.rmid);
	else if (s->about.what)
		snprintf(s->about.text, sizeof(s->about.text), "%s", s->about.what);
	else
		snprintf(s->about.text, sizeof(s->about.text),
			 "block %u of %u/%u/%u fork %u (%zu records, %X/%08X to %X/%08X)", k->f6,
			 k->f2, k->f3, k->f4, k->f5, n, (unsigned)(r[0].lsn >> 32),
			 (unsigned)r[0].lsn, (unsigned)(r[n - 1].lsn >> 32),
			 (unsigned)r[n - 1].lsn);
	return s->about.text;
}

static void stat_add(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- helper processes ---- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Kill and reap the helper; how it ended goes to how (if not NULL). */
static void helper_end(struct slot *s, bool kill_it, char *how, size_t how_len)
{
	close_fd(&s->to_fd);
	close_fd(&s->from_fd);
	close_fd(&s->err_fd);
	if (s->pid <= 0)
		return;
	if (kill_it)
		kill(s->pid, SIGKILL);
	int status = 0;
	while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
		;
	if (how && WIFSIGNALED(status))
		snprintf(how, how_len, "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else if (how && WIFEXITED(status))
		snprintf(how, how_len, "exited with status %d", WEXITSTATUS(status));
	s->pid = 0;
}

static int helper_start(struct slot *s)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		int rc = -errno;
		for (int i = 0; i < 2; i++) {
			close_fd(&in[i]);
			close_fd(&out[i]);
			close_fd(&err[i]);
		}
		return rc;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
	char *argv[] = { s->pool->path, s->pool->cfg.test_commands ? "--test-commands" : NULL,
			 NULL };
	pid_t pid;
	int rc = posix_spawn(&pid, s->pool->path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	if (rc != 0) {
		close_fd(&in[1]);
		close_fd(&out[0]);
		close_fd(&err[0]);
		return -rc;
	}
	s->pid = pid;
	s->to_fd = in[1];
	s->from_fd = out[0];
	s->err_fd = err[0];
	fcntl(s->to_fd, F_SETFL, O_NONBLOCK);
	fcntl(s->from_fd, F_SETFL, O_NONBLOCK);
	fcntl(s->err_fd, F_SETFL, O_NONBLOCK);
	stat_add(&s->pool->stats.started, 1);
	return 0;
}

/* ---- one request ---- */

static int req_reserve(struct slot *s, size_t more)
{
	if (s->req_len + more <= s->req_cap)
		return 0;
	size_t cap = s->req_cap ? s->req_cap : 64 * 1024;
	while (cap < s->req_len + more)
		cap *= 2;
	uint8_t *p = realloc(s->req, cap);
	if (!p)
		return -ENOMEM;
	s->req = p;
	s->req_cap = cap;
	return 0;
}

/* Append a message header; the payload (len bytes) follows at the returned spot. */
static uint8_t *req_msg(struct slot *s, enum ar_walredo_msg type, size_t len)
{
	if (4 + len > AR_WALREDO_MESSAGE_MAX || req_reserve(s, 5 + len) < 0)
		return NULL;
	uint8_t *p = s->req + s->req_len;
	p[0] = (uint8_t)type;
	ar_put_be32(p + 1, (uint32_t)(4 + len));
	s->req_len += 5 + len;
	return p + 5;
}

static void put_tag(uint8_t *p, const struct ar_key *key)
{
	p[0] = key->f5;
	ar_put_be32(p + 1, key->f2);
	ar_put_be32(p + 5, key->f3);
	ar_put_be32(p + 9, key->f4);
	ar_put_be32(p + 13, key->f6);
}

static void stderr_drain(struct slot *s)
{
	char buf[1024];
	ssize_t n;
	while (s->err_fd >= 0 && (n = read(s->err_fd, buf, sizeof(buf))) > 0) {
		size_t keep = (size_t)n;
		if (keep > sizeof(s->errtext) - 1 - s->errlen)
			keep = sizeof(s->errtext) - 1 - s->errlen;
		memcpy(s->errtext + s->errlen, buf, keep);
		s->errlen += keep;
	}
	s->errtext[s->errlen] = '\0';
}

/* How much a line of the helper's report matters: its own message and
 * PostgreSQL's ERROR/FATAL/PANIC first, then CONTEXT, then the rest (WARNINGs). */
static int line_rank(const char *line)
{
	static const char *const first[] = { "argon-walredo:", "PANIC:", "FATAL:", "ERROR:" };
	for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++)
		if (strncmp(line, first[i], strlen(first[i])) == 0)
			return 0;
	return strncmp(line, "CONTEXT:", 8) == 0 ? 1 : 2;
}

/* The helper's report on one line: its lines, most telling first, joined with
 * " | " (tabs and runs of spaces squeezed). */
static void stderr_summary(struct slot *s, char *out, size_t len)
{
	size_t o = 0;
	char *end = s->errtext + s->errlen;
	out[0] = '\0';
	for (int rank = 0; rank < 3; rank++) {
		for (char *line = s->errtext; line < end;) {
			char *nl = memchr(line, '\n', (size_t)(end - line));
			size_t n = (size_t)((nl ? nl : end) - line);
			char save = line[n];
			line[n] = '\0';
			if (n > 0 && line_rank(line) == rank && o + 4 < len) {
				if (o > 0)
					o += (size_t)snprintf(out + o, len - o, " | ");
				for (size_t i = 0; i < n && o + 1 < len; i++) {
					char c = line[i] == '\t' ? ' ' : line[i];
					if (c != ' ' || (o > 0 && out[o - 1] != ' '))
						out[o++] = c;
				}
				out[o] = '\0';
			}
			line[n] = save;
			line += n + 1;
		}
	}
}

static int slot_fail(struct slot *s, int rc, bool timed_out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* End the helper and explain: what (fmt), how it ended, what it said. */
static int slot_fail(struct slot *s, int rc, bool timed_out, const char *fmt, ...)
{
	char what[160], how[80] = "", said[AR_REDO_ERROR_BYTES];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (s->pid > 0) {
		/* Give a dying helper a moment to finish its report. */
		struct pollfd p = { .fd = s->err_fd, .events = POLLIN };
		for (int i = 0; i < 20 && !timed_out && s->err_fd >= 0 && poll(&p, 1, 50) > 0;
		     i++) {
			size_t before = s->errlen;
			stderr_drain(s);
			if (s->errlen == before)
				break;
		}
	}
	pid_t pid = s->pid;
	helper_end(s, true, how, sizeof(how));
	stat_add(&s->pool->stats.replaced, pid > 0);
	stat_add(&s->pool->stats.failures, 1);
	stat_add(&s->pool->stats.timeouts, timed_out);
	stderr_summary(s, said, sizeof(said));
	snprintf(s->redo.err, sizeof(s->redo.err), "argon-walredo (pid %d) %s%s%s%s%s", (int)pid,
		 what, how[0] ? ", then " : "", how, said[0] ? ": " : "", said);
	return rc;
}

/* Send the request, read reply_len bytes of answer (within the deadline). */
static int slot_exchange(struct slot *s, uint8_t *reply, size_t reply_len)
{
	if (s->pid <= 0) {
		int rc = helper_start(s);
		if (rc < 0) {
			snprintf(s->redo.err, sizeof(s->redo.err), "cannot start %s: %s",
				 s->pool->path, strerror(-rc));
			stat_add(&s->pool->stats.failures, 1);
			return rc;
		}
	}
	stat_add(&s->pool->stats.requests, 1);
	s->errlen = 0;
	s->errtext[0] = '\0';
	uint64_t deadline = now_ms() + s->pool->cfg.timeout_ms;
	size_t sent = 0, got = 0;
	/* The pipe is nearly always writable: write first, poll only for the rest. */
	ssize_t w0 = write(s->to_fd, s->req, s->req_len);
	if (w0 > 0)
		sent = (size_t)w0;
	while (got < reply_len) {
		struct pollfd p[3] = {
			{ .fd = s->from_fd, .events = POLLIN },
			{ .fd = s->err_fd, .events = POLLIN },
			{ .fd = sent < s->req_len ? s->to_fd : -1, .events = POLLOUT },
		};
		uint64_t now = now_ms();
		if (now >= deadline)
			return slot_fail(s, -ETIMEDOUT, true, "did not answer %s within %u ms",
					 about(s), s->pool->cfg.timeout_ms);
		int n = poll(p, 3, (int)(deadline - now));
		if (n < 0 && errno != EINTR)
			return slot_fail(s, -errno, false, "poll failed on %s", about(s));
		if (n <= 0)
			continue;
		if (p[1].revents)
			stderr_drain(s);
		if (p[2].revents) {
			ssize_t w = write(s->to_fd, s->req + sent, s->req_len - sent);
			if (w > 0)
				sent += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR)
				return slot_fail(s, -AR_EREDO, false, "stopped reading %s (%s)",
						 about(s), strerror(errno));
		}
		if (p[0].revents) {
			ssize_t r = read(s->from_fd, reply + got, reply_len - got);
			if (r > 0)
				got += (size_t)r;
			else if (r == 0 || (errno != EAGAIN && errno != EINTR))
				return slot_fail(s, -AR_EREDO, false, "failed on %s", about(s));
		}
	}
	if (sent < s->req_len)
		return slot_fail(s, -AR_EREDO, false, "answered %s before reading all of it",
				 about(s));
	return 0;
}

static int redopool_apply(struct ar_redo *redo, const struct ar_key *key, const uint8_t *base,
			  uint32_t base_len, const struct ar_redo_record *records, size_t count,
			  uint8_t out[AR_PAGE_BYTES], uint32_t *out_len)
{
	struct slot *s = slot_of(redo);
	if (!ar_key_is_rel_block(key) || count == 0 || (base && base_len != AR_PAGE_BYTES)) {
		snprintf(redo->err, sizeof(redo->err),
			 "argon-walredo rebuilds relation pages from a page and records; "
			 "asked for a key of kind %u with %zu records and a %u-byte base",
			 key->f1, count, base ? base_len : 0);
		return -EINVAL;
	}
	about_set(s, NULL, -1, key, records, count);
	s->req_len = 0;
	uint8_t *p = req_msg(s, AR_WALREDO_BEGIN, AR_WALREDO_TAG_BYTES);
	if (p)
		put_tag(p, key);
	if (p && base) {
		p = req_msg(s, AR_WALREDO_PUSH, AR_WALREDO_TAG_BYTES + AR_PAGE_BYTES);
		if (p) {
			put_tag(p, key);
			memcpy(p + AR_WALREDO_TAG_BYTES, base, AR_PAGE_BYTES);
		}
	}
	for (size_t i = 0; p && i < count; i++) {
		const struct ar_value *v = &records[i].value;
		if (v->kind != AR_VALUE_WAL) {
			snprintf(redo->err, sizeof(redo->err),
				 "the value at %X/%08X for %s is not a WAL record",
				 (unsigned)(records[i].lsn >> 32), (unsigned)records[i].lsn,
				 about(s));
			return -EINVAL;
		}
		p = req_msg(s, AR_WALREDO_APPLY, 8 + (size_t)v->len);
		if (p) {
			ar_put_be64(p, records[i].lsn);
			memcpy(p + 8, v->data, v->len);
		}
	}
	if (p)
		p = req_msg(s, AR_WALREDO_GET, AR_WALREDO_TAG_BYTES);
	if (!p) {
		snprintf(redo->err, sizeof(redo->err),
			 "out of memory building a redo request for %s", about(s));
		return -ENOMEM;
	}
	put_tag(p, key);
	stat_add(&s->pool->stats.records, count);
	int rc = slot_exchange(s, out, AR_PAGE_BYTES);
	if (rc < 0)
		return rc;
	*out_len = AR_PAGE_BYTES;
	return 0;
}

static const struct ar_redo_ops redopool_ops = { .apply = redopool_apply };

int ar_redopool_mask(struct ar_redo *redo, uint8_t rmid, uint32_t blkno,
		     uint8_t page[AR_PAGE_BYTES])
{
	struct slot *s = slot_of(redo);
	s->req_len = 0;
	uint8_t *p = req_msg(s, AR_WALREDO_MASK, 5 + AR_PAGE_BYTES);
	if (!p)
		return -ENOMEM;
	p[0] = rmid;
	ar_put_be32(p + 1, blkno);
	memcpy(p + 5, page, AR_PAGE_BYTES);
	about_set(s, "a mask request", rmid, NULL, NULL, 0);
	return slot_exchange(s, page, AR_PAGE_BYTES);
}

int ar_redopool_replayed(struct ar_redo *redo, char *buf, size_t len)
{
	struct slot *s = slot_of(redo);
	buf[0] = '\0';
	if (s->pid <= 0 || len == 0)
		return 0;
	s->req_len = 0;
	if (!req_msg(s, AR_WALREDO_STATS, 0))
		return -ENOMEM;
	uint8_t hdr[4];
	about_set(s, "a stats request", -1, NULL, NULL, 0);
	int rc = slot_exchange(s, hdr, sizeof(hdr));
	if (rc < 0)
		return rc;
	uint32_t n = ar_get_be32(hdr);
	if (n > AR_WALREDO_STATS_MAX)
		return slot_fail(s, -AR_EREDO, false, "sent a %u-byte stats reply", n);
	char *text = malloc(n + 1);
	if (!text)
		return -ENOMEM;
	s->req_len = 0;
	about_set(s, "a stats reply", -1, NULL, NULL, 0);
	rc = n ? slot_exchange(s, (uint8_t *)text, n) : 0;
	if (rc == 0) {
		text[n] = '\0';
		snprintf(buf, len, "%s", text);
	}
	free(text);
	return rc;
}

int ar_redopool_helper_pid(struct ar_redo *redo)
{
	return slot_of(redo)->pid;
}

int ar_redopool_test_forbidden(struct ar_redo *redo)
{
	struct slot *s = slot_of(redo);
	s->req_len = 0;
	if (!req_msg(s, AR_WALREDO_TEST_FORBIDDEN, 0))
		return -ENOMEM;
	uint8_t byte;
	about_set(s, "a forbidden system call (test)", -1, NULL, NULL, 0);
	return slot_exchange(s, &byte, 1);
}

/* ---- the pool ---- */

int ar_redopool_create(const struct ar_redopool_config *cfg, struct ar_redopool **out)
{
	if (!cfg->helper_path || cfg->slots == 0 || strlen(cfg->helper_path) >= PATH_MAX)
		return -EINVAL;
	struct ar_redopool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pool->cfg = *cfg;
	if (pool->cfg.timeout_ms == 0)
		pool->cfg.timeout_ms = AR_REDOPOOL_TIMEOUT_MS_DEFAULT;
	snprintf(pool->path, sizeof(pool->path), "%s", cfg->helper_path);
	pool->cfg.helper_path = pool->path;
	pool->slots = calloc(cfg->slots, sizeof(*pool->slots));
	if (!pool->slots) {
		free(pool);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < cfg->slots; i++) {
		struct slot *s = &pool->slots[i];
		s->redo.ops = &redopool_ops;
		s->pool = pool;
		s->to_fd = s->from_fd = s->err_fd = -1;
	}
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		sigaction(SIGPIPE, &sa, NULL);
	}
	*out = pool;
	return 0;
}

void ar_redopool_destroy(struct ar_redopool *pool)
{
	if (!pool)
		return;
	for (uint32_t i = 0; i < pool->cfg.slots; i++) {
		helper_end(&pool->slots[i], true, NULL, 0);
		free(pool->slots[i].req);
	}
	free(pool->slots);
	free(pool);
}

struct ar_redo *ar_redopool_slot(struct ar_redopool *pool, uint32_t i)
{
	return i < pool->cfg.slots ? &pool->slots[i].redo : NULL;
}

void ar_redopool_stats(const struct ar_redopool *pool, struct ar_redopool_stats *out)
{
	out->started = __atomic_load_n(&pool->stats.started, __ATOMIC_RELAXED);
	out->replaced = __atomic_load_n(&pool->stats.replaced, __ATOMIC_RELAXED);
	out->requests = __atomic_load_n(&pool->stats.requests, __ATOMIC_RELAXED);
	out->records = __atomic_load_n(&pool->stats.records, __ATOMIC_RELAXED);
	out->failures = __atomic_load_n(&pool->stats.failures, __ATOMIC_RELAXED);
	out->timeouts = __atomic_load_n(&pool->stats.timeouts, __ATOMIC_RELAXED);
}

const char *ar_redopool_find_helper(char *buf, size_t len)
{
	const char *env = getenv("ARGON_WALREDO");
	if (env && env[0]) {
		snprintf(buf, len, "%s", env);
		return access(buf, X_OK) == 0 ? buf : NULL;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	static const char *const rel[] = { "argon-walredo", "../compute/argon-walredo" };
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		if ((size_t)snprintf(buf, len, "%s/%s", self, rel[i]) < len &&
		    access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}
