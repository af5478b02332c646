/*
 * config.c - The knob table, unit parsing, the config file reader (libinih)
 * and validation against common/limits.h.
 *
 * Invariant: every field of struct ar_config has exactly one row in knob_table;
 * defaults exist only there.  Depends on: config.h, limits.h, log.h, inih.
 */
#include "common/config.h"

#include "common/assert.h"
#include "common/err.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum knob_kind {
	KNOB_PATH,
	KNOB_ADDRESS,
	KNOB_SECRET,
	KNOB_COUNT,
	KNOB_BYTES,
	KNOB_MS,
	KNOB_LEVEL
};

struct knob {
	const char *name;
	enum knob_kind kind;
	size_t offset;
	size_t size; /* of the field: string capacity, or sizeof the integer */
	const char *default_text;
	uint64_t min; /* numeric knobs: inclusive bounds */
	uint64_t max;
	const char *description;
};

#define KNOB_FIELD(field) offsetof(struct ar_config, field), sizeof(((struct ar_config *)0)->field)

/* The one table of knobs: name, kind, field, default, bounds, meaning. */
static const struct knob knob_table[] = {
	{ "data_dir", KNOB_PATH, KNOB_FIELD(data_dir), "argon-data", 0, 0,
	  "data directory, guarded by a lock file" },
	{ "pg_listen_address", KNOB_ADDRESS, KNOB_FIELD(pg_listen_address), "127.0.0.1:6400", 0, 0,
	  "host:port of the PostgreSQL-protocol listener (page service)" },
	{ "http_listen_address", KNOB_ADDRESS, KNOB_FIELD(http_listen_address), "127.0.0.1:9898", 0,
	  0, "host:port of the management HTTP API" },
	{ "core_count", KNOB_COUNT, KNOB_FIELD(core_count), "0", 0, AR_CORES_MAX,
	  "core threads, each pinned to one CPU; 0 = one per online CPU" },
	{ "io_uring_depth_entries", KNOB_COUNT, KNOB_FIELD(io_uring_depth_entries), "256",
	  AR_URING_DEPTH_MIN, AR_URING_DEPTH_MAX,
	  "submission queue entries of each core's io_uring" },
	{ "core_ring_capacity_messages", KNOB_COUNT, KNOB_FIELD(core_ring_capacity_messages),
	  "1024", AR_SPSC_CAPACITY_MIN, AR_SPSC_CAPACITY_MAX,
	  "messages each core-to-core ring holds (power of two)" },
	{ "core_arena_bytes", KNOB_BYTES, KNOB_FIELD(core_arena_bytes), "64MiB", AR_ARENA_BYTES_MIN,
	  AR_ARENA_BYTES_MAX, "NUMA-local arena of each core" },
	{ "shutdown_timeout_ms", KNOB_MS, KNOB_FIELD(shutdown_timeout_ms), "5s", 100,
	  AR_SHUTDOWN_MS_MAX, "time a clean shutdown may take before the process exits anyway" },
	{ "log_min_level", KNOB_LEVEL, KNOB_FIELD(log_min_level), "log", 0, 0,
	  "least severe level logged: debug, info, log, warning, error" },
	{ "wal_receive", KNOB_COUNT, KNOB_FIELD(wal_receive), "1", 0, 1,
	  "1 = stream WAL from attached primaries; 0 = only replay the durable WAL log" },
	{ "wal_status_interval_ms", KNOB_MS, KNOB_FIELD(wal_status_interval_ms), "10s", 100,
	  3600000, "standby status replies to a primary at least this often" },
	{ "wal_checkpoint_interval_ms", KNOB_MS, KNOB_FIELD(wal_checkpoint_interval_ms), "10s", 100,
	  3600000, "how often a live timeline persists its position and trims its WAL log" },
	{ "checkpoint_distance_bytes", KNOB_BYTES, KNOB_FIELD(checkpoint_distance_bytes), "256MiB",
	  1u << 20, 1ull << 40, "WAL held in memory before it is written as a layer file" },
	{ "layer_cache_bytes", KNOB_BYTES, KNOB_FIELD(layer_cache_bytes), "128MiB", 4u << 20,
	  1ull << 40,
	  "each core's cache of layer-file blocks (and each live tenant's own on its ingest "
	  "thread)" },
	{ "page_cache_bytes", KNOB_BYTES, KNOB_FIELD(page_cache_bytes), "64MiB", 0, 1ull << 40,
	  "each core's cache of reconstructed pages (0: none)" },
	{ "read_batch_max", KNOB_COUNT, KNOB_FIELD(read_batch_max), "32", 1, 32,
	  "GetPages of one stream whose layer reads go in one vectored read (1: one by one)" },
	{ "wait_lsn_timeout_ms", KNOB_MS, KNOB_FIELD(wait_lsn_timeout_ms), "300s", 1, 3600000,
	  "how long a page request waits for WAL to reach its LSN" },
	{ "pg_password", KNOB_SECRET, KNOB_FIELD(pg_password), "", 0, 0,
	  "password (token) every PostgreSQL-protocol client must give; empty: trust" },
};

enum { KNOB_COUNT_TOTAL = sizeof(knob_table) / sizeof(knob_table[0]) };

static int config_error(char err[AR_CONFIG_ERROR_BYTES], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int config_error(char err[AR_CONFIG_ERROR_BYTES], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, AR_CONFIG_ERROR_BYTES, fmt, ap);
	va_end(ap);
	return -AR_ECONFIG;
}

struct unit {
	const char *suffix;
	uint64_t factor;
};

/* Split "64 MiB" into 64 and "MiB"; the number is a plain unsigned decimal. */
static int parse_number_unit(const char *text, uint64_t *number_out, const char **unit_out)
{
	const char *p = text;

	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long n = strtoull(p, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	while (isspace((unsigned char)*end))
		end++;
	*number_out = n;
	*unit_out = end;
	return 0;
}

static int parse_with_units(const char *text, const struct unit *units, size_t unit_count,
			    uint64_t *out)
{
	uint64_t n;
	const char *unit;
	int rc = parse_number_unit(text, &n, &unit);

	if (rc < 0)
		return rc;
	size_t unit_len = strlen(unit);
	while (unit_len > 0 && isspace((unsigned char)unit[unit_len - 1]))
		unit_len--;
	for (size_t i = 0; i < unit_count; i++) {
		if (strlen(units[i].suffix) != unit_len ||
		    strncmp(unit, units[i].suffix, unit_len) != 0)
			continue;
		if (units[i].factor != 0 && n > UINT64_MAX / units[i].factor)
			return -ERANGE;
		*out = n * units[i].factor;
		return 0;
	}
	return -EINVAL;
}

int ar_parse_bytes(const char *text, uint64_t *bytes_out)
{
	static const struct unit units[] = {
		{ "", 1 },
		{ "B", 1 },
		{ "kB", 1ull << 10 },
		{ "KiB", 1ull << 10 },
		{ "MB", 1ull << 20 },
		{ "MiB", 1ull << 20 },
		{ "GB", 1ull << 30 },
		{ "GiB", 1ull << 30 },
		{ "TB", 1ull << 40 },
		{ "TiB", 1ull << 40 },
	};
	return parse_with_units(text, units, sizeof(units) / sizeof(units[0]), bytes_out);
}

int ar_parse_duration_ms(const char *text, uint64_t *ms_out)
{
	static const struct unit units[] = {
		{ "", 1 },        { "ms", 1 },      { "s", 1000 },
		{ "min", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	};
	return parse_with_units(text, units, sizeof(units) / sizeof(units[0]), ms_out);
}

int ar_parse_address(const char *text, char host_out[AR_CONFIG_ADDRESS_BYTES], uint16_t *port_out)
{
	char host[AR_CONFIG_ADDRESS_BYTES];
	const char *colon;
	size_t host_len;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		host_len = (size_t)(close - text - 1);
		memcpy(host, text + 1, host_len < sizeof(host) ? host_len : 0);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		host_len = (size_t)(colon - text);
		memcpy(host, text, host_len < sizeof(host) ? host_len : 0);
	}
	if (host_len == 0 || host_len >= sizeof(host))
		return -EINVAL;
	host[host_len] = '\0';

	unsigned char probe[sizeof(struct in6_addr)];
	if (strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, probe) != 1 &&
	    inet_pton(AF_INET6, host, probe) != 1)
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port > 65535)
		return -EINVAL;
	memcpy(host_out, host, host_len + 1);
	*port_out = (uint16_t)port;
	return 0;
}

static const struct knob *knob_find(const char *key)
{
	for (size_t i = 0; i < KNOB_COUNT_TOTAL; i++)
		if (strcmp(knob_table[i].name, key) == 0)
			return &knob_table[i];
	return NULL;
}

static void knob_store_integer(struct ar_config *config, const struct knob *knob, uint64_t value)
{
	char *field = (char *)config + knob->offset;

	if (knob->size == sizeof(uint32_t)) {
		uint32_t v = (uint32_t)value;
		memcpy(field, &v, sizeof(v));
	} else {
		AR_ASSERT(knob->size == sizeof(uint64_t));
		memcpy(field, &value, sizeof(value));
	}
}

static int knob_set_string(struct ar_config *config, const struct knob *knob, const char *value,
			   char err[AR_CONFIG_ERROR_BYTES])
{
	size_t len = strlen(value);

	if (len == 0 && knob->kind != KNOB_SECRET)
		return config_error(err, "parameter \"%s\" must not be empty", knob->name);
	if (len >= knob->size)
		return config_error(err,
				    "value for parameter \"%s\" is too long (%zu bytes, limit %zu)",
				    knob->name, len, knob->size - 1);
	if (knob->kind == KNOB_ADDRESS) {
		char host[AR_CONFIG_ADDRESS_BYTES];
		uint16_t port;
		if (ar_parse_address(value, host, &port) < 0)
			return config_error(
			    err, "invalid value for parameter \"%s\": \"%s\" is not host:port",
			    knob->name, value);
	}
	memcpy((char *)config + knob->offset, value, len + 1);
	return 0;
}

static int knob_set_number(struct ar_config *config, const struct knob *knob, const char *value,
			   char err[AR_CONFIG_ERROR_BYTES])
{
	uint64_t n = 0;
	int rc;
	const char *hint = "";

	switch (knob->kind) {
	case KNOB_COUNT:
		rc = ar_parse_bytes(value, &n);
		/* A count takes no unit at all. */
		if (rc == 0 && strspn(value, "0123456789 \t") != strlen(value))
			rc = -EINVAL;
		hint = "a plain integer";
		break;
	case KNOB_BYTES:
		rc = ar_parse_bytes(value, &n);
		hint = "an integer with an optional unit B, kB, MB, GB, TB, KiB, MiB, GiB, TiB";
		break;
	case KNOB_MS:
		rc = ar_parse_duration_ms(value, &n);
		hint = "an integer with an optional unit ms, s, min, h, d";
		break;
	default:
		AR_UNREACHABLE();
	}
	if (rc == -ERANGE)
		return config_error(err, "value \"%s\" for parameter \"%s\" is out of range", value,
				    knob->name);
	if (rc < 0)
		return config_error(err, "invalid value for parameter \"%s\": \"%s\" (expected %s)",
				    knob->name, value, hint);
	if (n < knob->min || n > knob->max)
		return config_error(err,
				    "%" PRIu64 " is outside the valid range for parameter \"%s\" "
				    "(%" PRIu64 " .. %" PRIu64 ")",
				    n, knob->name, knob->min, knob->max);
	knob_store_integer(config, knob, n);
	return 0;
}

int ar_config_set(struct ar_config *config, const char *key, const char *value,
		  char err[AR_CONFIG_ERROR_BYTES])
{
	const struct knob *knob = knob_find(key);

	if (!knob)
		return config_error(err, "unrecognized configuration parameter \"%s\"", key);
	switch (knob->kind) {
	case KNOB_PATH:
	case KNOB_ADDRESS:
	case KNOB_SECRET:
		return knob_set_string(config, knob, value, err);
	case KNOB_COUNT:
	case KNOB_BYTES:
	case KNOB_MS:
		return knob_set_number(config, knob, value, err);
	case KNOB_LEVEL:
		if (!ar_log_level_parse(value, &config->log_min_level))
			return config_error(
			    err,
			    "invalid value for parameter \"%s\": \"%s\" (expected debug, "
			    "info, log, warning or error)",
			    knob->name, value);
		return 0;
	}
	AR_UNREACHABLE();
}

void ar_config_init_defaults(struct ar_config *config)
{
	char err[AR_CONFIG_ERROR_BYTES];

	memset(config, 0, sizeof(*config));
	for (size_t i = 0; i < KNOB_COUNT_TOTAL; i++) {
		int rc = ar_config_set(config, knob_table[i].name, knob_table[i].default_text, err);
		AR_ASSERT(rc == 0); /* a default that does not parse is a programmer error */
	}
}

struct config_file_state {
	struct ar_config *config;
	const char *path;
	FILE *file;
	char *err;
	int line;       /* of the line inih is working on: counted by config_file_read */
	int error_line; /* of the first bad key or value */
	int rc;
};

/* inih's line reader: fgets that counts lines, so errors can name their line. */
static char *config_file_read(char *line, int size, void *user)
{
	struct config_file_state *state = user;
	char *got = fgets(line, size, state->file);

	if (got)
		state->line++;
	return got;
}

/* inih calls this per "key = value"; the first error is kept, later lines skipped. */
static int config_file_line(void *user, const char *section, const char *name, const char *value)
{
	struct config_file_state *state = user;
	char knob_err[AR_CONFIG_ERROR_BYTES];

	if (state->rc != 0)
		return 1;
	state->error_line = state->line;
	if (section[0] != '\0') {
		state->rc = config_error(
		    state->err, "sections are not supported (\"[%s]\") in file \"%s\" line %d",
		    section, state->path, state->line);
		return 1;
	}
	if (ar_config_set(state->config, name, value, knob_err) < 0)
		state->rc = config_error(state->err, "%s in file \"%s\" line %d", knob_err,
					 state->path, state->line);
	return 1;
}

int ar_config_load_file(struct ar_config *config, const char *path, char err[AR_CONFIG_ERROR_BYTES])
{
	struct config_file_state state = { .config = config, .path = path, .err = err };

	state.file = fopen(path, "re");
	if (!state.file)
		return config_error(err, "could not open configuration file \"%s\": %s", path,
				    strerror(errno));
	int parsed = ini_parse_stream(config_file_read, &state, config_file_line, &state);
	fclose(state.file);
	if (parsed > 0 && (state.rc == 0 || parsed < state.error_line))
		return config_error(err, "syntax error in file \"%s\" line %d", path, parsed);
	if (state.rc != 0)
		return state.rc;
	if (parsed < 0)
		return config_error(err, "could not read configuration file \"%s\"", path);
	return 0;
}

int ar_config_finish(struct ar_config *config, char err[AR_CONFIG_ERROR_BYTES])
{
	if ((config->core_ring_capacity_messages & (config->core_ring_capacity_messages - 1)) != 0)
		return config_error(err,
				    "parameter \"core_ring_capacity_messages\" must be a power "
				    "of two, not %u",
				    config->core_ring_capacity_messages);
	if (config->core_count == 0) {
		long online = sysconf(_SC_NPROCESSORS_ONLN);
		config->core_count = online < 1              ? 1
				     : online > AR_CORES_MAX ? AR_CORES_MAX
							     : (uint32_t)online;
	}
	size_t addr_len = strlen(config->pg_listen_address);
	bool any_port =
	    addr_len >= 2 && strcmp(config->pg_listen_address + addr_len - 2, ":0") == 0;
	if (!any_port && strcmp(config->pg_listen_address, config->http_listen_address) == 0)
		return config_error(err,
				    "\"pg_listen_address\" and \"http_listen_address\" are both "
				    "\"%s\"",
				    config->pg_listen_address);
	return 0;
}

static void knob_format(const struct ar_config *config, const struct knob *knob, char *buf,
			size_t size)
{
	const char *field = (const char *)config + knob->offset;
	uint64_t v64 = 0;
	uint32_t v32 = 0;

	switch (knob->kind) {
	case KNOB_PATH:
	case KNOB_ADDRESS:
		snprintf(buf, size, "%s", field);
		return;
	case KNOB_SECRET:
		snprintf(buf, size, "%s", field[0] ? "(set)" : "(none)");
		return;
	case KNOB_LEVEL:
		snprintf(buf, size, "%s", ar_log_level_name(config->log_min_level));
		return;
	default:
		break;
	}
	if (knob->size == sizeof(uint32_t)) {
		memcpy(&v32, field, sizeof(v32));
		v64 = v32;
	} else {
		memcpy(&v64, field, sizeof(v64));
	}
	snprintf(buf, size, "%" PRIu64, v64);
}

void ar_config_log(const struct ar_config *config)
{
	char value[AR_PATH_BYTES_MAX];

	for (size_t i = 0; i < KNOB_COUNT_TOTAL; i++) {
		knob_format(config, &knob_table[i], value, sizeof(value));
		AR_LOG(LOG, "config", "%s = %s", knob_table[i].name, value);
	}
}

void ar_config_print_table(FILE *out)
{
	fprintf(out, "  %-30s %-16s %s\n", "parameter", "default", "meaning");
	for (size_t i = 0; i < KNOB_COUNT_TOTAL; i++)
		fprintf(out, "  %-30s %-16s %s\n", knob_table[i].name, knob_table[i].default_text,
			knob_table[i].description);
}
