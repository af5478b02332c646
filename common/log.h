/*
 * log.h - PostgreSQL-style log lines on stderr.
 *
 *   2026-11-24 12:21:10.123 UTC [4242] LOG:  server: listening on 127.0.0.1:6400
 *   2026-11-24 12:21:10.124 UTC [4242] DETAIL:  The port is used by another process.
 *
 * The primary message is short and lower-case; detail and hint are sentences.
 * Each call writes its lines with one write(2), so lines of concurrent threads do
 * not interleave.  Log an error once, where it is handled; the hot path counts.
 */
#ifndef AR_COMMON_LOG_H
#define AR_COMMON_LOG_H

#include <stdbool.h>

enum ar_log_level {
	AR_LOG_DEBUG,
	AR_LOG_INFO,
	AR_LOG_LOG,
	AR_LOG_WARNING,
	AR_LOG_ERROR,
	AR_LOG_FATAL,
	AR_LOG_PANIC,
};

/* Set once at startup, before any thread but main exists. */
void ar_log_set_min_level(enum ar_log_level level);
/* Parse "debug", "info", "log", "warning", "error"; false if unknown. */
bool ar_log_level_parse(const char *name, enum ar_log_level *level_out);
const char *ar_log_level_name(enum ar_log_level level);

/* detail and hint may be NULL. */
void ar_log_write(enum ar_log_level level, const char *module, const char *detail,
		  const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#define AR_LOG(level, module, ...) \
	ar_log_write(AR_LOG_##level, (module), NULL, NULL, __VA_ARGS__)
#define AR_LOG_DETAIL(level, module, detail, hint, ...) \
	ar_log_write(AR_LOG_##level, (module), (detail), (hint), __VA_ARGS__)

#endif
