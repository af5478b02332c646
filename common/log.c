/*
 * log.c - Formats log lines in PostgreSQL's default style ("%m [%p] ") and
 * writes each call's lines to stderr with a single write(2).
 *
 * The minimum level is process-wide state written once at startup, before the
 * core threads exist, and only read afterwards.
 */
#include "common/log.h"

#include "common/assert.h"

#include <errno.h>
#include <execinfo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { LOG_LINE_BYTES_MAX = 4096 };

static enum ar_log_level log_min_level = AR_LOG_LOG;

static const char *const log_level_names[] = {
	[AR_LOG_DEBUG] = "DEBUG",     [AR_LOG_INFO] = "INFO",   [AR_LOG_LOG] = "LOG",
	[AR_LOG_WARNING] = "WARNING", [AR_LOG_ERROR] = "ERROR", [AR_LOG_FATAL] = "FATAL",
	[AR_LOG_PANIC] = "PANIC",
};

void ar_log_set_min_level(enum ar_log_level level)
{
	AR_ASSERT(level <= AR_LOG_PANIC);
	log_min_level = level;
}

const char *ar_log_level_name(enum ar_log_level level)
{
	AR_ASSERT(level <= AR_LOG_PANIC);
	return log_level_names[level];
}

bool ar_log_level_parse(const char *name, enum ar_log_level *level_out)
{
	for (enum ar_log_level l = AR_LOG_DEBUG; l <= AR_LOG_ERROR; l++) {
		if (strcasecmp(name, log_level_names[l]) == 0) {
			*level_out = l;
			return true;
		}
	}
	return false;
}

/* "2026-11-24 12:21:10.123 UTC [4242] " */
static size_t log_prefix_format(char *buf, size_t size)
{
	struct timespec now;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	int n = snprintf(buf, size, "%s.%03ld UTC [%d] ", stamp, now.tv_nsec / 1000000L,
			 (int)getpid());
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static size_t log_append(char *buf, size_t used, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static size_t log_append(char *buf, size_t used, const char *fmt, ...)
{
	va_list ap;

	if (used >= LOG_LINE_BYTES_MAX - 1)
		return used;
	va_start(ap, fmt);
	int n = vsnprintf(buf + used, LOG_LINE_BYTES_MAX - used, fmt, ap);
	va_end(ap);
	if (n < 0)
		return used;
	used += (size_t)n;
	return used < LOG_LINE_BYTES_MAX - 1 ? used : LOG_LINE_BYTES_MAX - 2;
}

void ar_log_write(enum ar_log_level level, const char *module, const char *detail,
		  const char *hint, const char *fmt, ...)
{
	char buf[LOG_LINE_BYTES_MAX];
	char prefix[64];
	va_list ap;
	int saved_errno = errno;

	if (level < log_min_level)
		return;
	size_t prefix_len = log_prefix_format(prefix, sizeof(prefix));
	size_t used = log_append(buf, 0, "%s%s:  %s: ", prefix, log_level_names[level], module);
	errno = saved_errno; /* so %m in fmt names the caller's error */
	va_start(ap, fmt);
	int n = vsnprintf(buf + used, sizeof(buf) - used, fmt, ap);
	va_end(ap);
	if (n > 0)
		used += (size_t)n;
	if (used > sizeof(buf) - 2)
		used = sizeof(buf) - 2;
	buf[used++] = '\n';
	if (detail)
		used = log_append(buf, used, "%.*sDETAIL:  %s\n", (int)prefix_len, prefix, detail);
	if (hint)
		used = log_append(buf, used, "%.*sHINT:  %s\n", (int)prefix_len, prefix, hint);
	/* One write so concurrent lines stay whole; a short write to stderr is not retried. */
	ssize_t written = write(STDERR_FILENO, buf, used);
	(void)written;
	errno = saved_errno;
}

_Noreturn void ar_assert_fail(const char *expr, const char *file, int line)
{
	void *frames[32];

	ar_log_write(AR_LOG_PANIC, "assert", NULL, NULL, "assertion failed: %s at %s:%d", expr,
		     file, line);
	int depth = backtrace(frames, 32);
	backtrace_symbols_fd(frames, depth, STDERR_FILENO);
	abort();
}
