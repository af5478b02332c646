/*
 * config.h - The page server's configuration: one struct, one table of knobs.
 *
 * Every knob's name carries its unit (_bytes, _ms, _count, _entries, _messages);
 * its default, bounds and meaning live in one table in config.c, which --help
 * prints.  Values are read from an INI-style file (key = value, # comments, no
 * sections) and then overridden by command-line flags, validated against
 * common/limits.h, logged once, and frozen before any core thread starts.
 */
#ifndef AR_COMMON_CONFIG_H
#define AR_COMMON_CONFIG_H

#include "common/limits.h"
#include "common/log.h"

#include <stdint.h>
#include <stdio.h>

enum { AR_CONFIG_ERROR_BYTES = 512, AR_CONFIG_ADDRESS_BYTES = 256 };

struct ar_config {
	char data_dir[AR_PATH_BYTES_MAX];
	char pg_listen_address[AR_CONFIG_ADDRESS_BYTES];
	char http_listen_address[AR_CONFIG_ADDRESS_BYTES];
	uint32_t core_count; /* 0: one per online CPU */
	uint32_t io_uring_depth_entries;
	uint32_t core_ring_capacity_messages;
	uint64_t core_arena_bytes;
	uint64_t shutdown_timeout_ms;
	enum ar_log_level log_min_level;
	uint32_t wal_receive; /* 1: stream from attached primaries */
	uint64_t wal_status_interval_ms;
	uint64_t wal_checkpoint_interval_ms;
	uint64_t checkpoint_distance_bytes; /* in-memory layer size before a flush */
	uint64_t layer_cache_bytes;
	uint64_t page_cache_bytes;
	uint32_t read_batch_max; /* GetPages of one stream read from the engine together */
	uint64_t wait_lsn_timeout_ms;
	char pg_password[128];
};

void ar_config_init_defaults(struct ar_config *config);

/* Set one knob from its text form; on error, err holds one line naming the knob. */
__attribute__((warn_unused_result)) int ar_config_set(struct ar_config *config, const char *key,
						      const char *value,
						      char err[AR_CONFIG_ERROR_BYTES]);

/* Read "key = value" lines from a file; stops at the first bad line. */
__attribute__((warn_unused_result)) int ar_config_load_file(struct ar_config *config,
							    const char *path,
							    char err[AR_CONFIG_ERROR_BYTES]);

/* Cross-knob checks; resolves core_count 0 to the number of online CPUs. */
__attribute__((warn_unused_result)) int ar_config_finish(struct ar_config *config,
							 char err[AR_CONFIG_ERROR_BYTES]);

/* Log every knob and its value once, at LOG level. */
void ar_config_log(const struct ar_config *config);

/* The knob table, for --help. */
void ar_config_print_table(FILE *out);

/* "64MiB", "64MB", "65536", "8kB" -> bytes.  kB, MB, GB, TB are powers of 1024,
 * as in PostgreSQL. */
__attribute__((warn_unused_result)) int ar_parse_bytes(const char *text, uint64_t *bytes_out);
/* "250ms", "5s", "2min", "1h", "1d", "100" (ms) -> milliseconds. */
__attribute__((warn_unused_result)) int ar_parse_duration_ms(const char *text, uint64_t *ms_out);
/* "host:port" or "[v6]:port"; host is an IP literal or "localhost". */
__attribute__((warn_unused_result)) int ar_parse_address(const char *text,
							 char host_out[AR_CONFIG_ADDRESS_BYTES],
							 uint16_t *port_out);

#endif
