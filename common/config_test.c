/*
 * config_test.c - Knob parsing: units, bounds, unknown keys, file errors with
 * their line numbers, defaults.
 */
#include "common/config.h"
#include "common/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static void test_units(void **state)
{
	uint64_t v;
	(void)state;

	assert_int_equal(ar_parse_bytes("64MiB", &v), 0);
	assert_int_equal(v, 64ull << 20);
	assert_int_equal(ar_parse_bytes("8kB", &v), 0);
	assert_int_equal(v, 8192);
	assert_int_equal(ar_parse_bytes(" 2 GB ", &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(ar_parse_bytes("100", &v), 0);
	assert_int_equal(v, 100);
	assert_true(ar_parse_bytes("64MX", &v) < 0);
	assert_true(ar_parse_bytes("-1", &v) < 0);
	assert_true(ar_parse_bytes("", &v) < 0);
	assert_true(ar_parse_bytes("99999999999999999999", &v) < 0);
	assert_true(ar_parse_bytes("20000000000TB", &v) < 0); /* overflows */
	assert_int_equal(ar_parse_duration_ms("5s", &v), 0);
	assert_int_equal(v, 5000);
	assert_int_equal(ar_parse_duration_ms("2min", &v), 0);
	assert_int_equal(v, 120000);
	assert_int_equal(ar_parse_duration_ms("250ms", &v), 0);
	assert_int_equal(v, 250);
	assert_true(ar_parse_duration_ms("5 parsecs", &v) < 0);
}

static void test_addresses(void **state)
{
	char host[AR_CONFIG_ADDRESS_BYTES];
	uint16_t port;
	(void)state;

	assert_int_equal(ar_parse_address("127.0.0.1:6400", host, &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 6400);
	assert_int_equal(ar_parse_address("[::1]:0", host, &port), 0);
	assert_string_equal(host, "::1");
	assert_true(ar_parse_address("127.0.0.1", host, &port) < 0);
	assert_true(ar_parse_address("127.0.0.1:70000", host, &port) < 0);
	assert_true(ar_parse_address("example.invalid:80", host, &port) < 0);
	assert_true(ar_parse_address(":80", host, &port) < 0);
}

static void test_set_and_errors(void **state)
{
	struct ar_config c;
	char err[AR_CONFIG_ERROR_BYTES];
	(void)state;

	ar_config_init_defaults(&c);
	assert_int_equal(c.core_arena_bytes, 64ull << 20);
	assert_int_equal(c.shutdown_timeout_ms, 5000);
	assert_int_equal(ar_config_set(&c, "core_arena_bytes", "1GiB", err), 0);
	assert_int_equal(c.core_arena_bytes, 1ull << 30);
	assert_int_equal(ar_config_set(&c, "no_such_knob", "1", err), -AR_ECONFIG);
	assert_non_null(strstr(err, "unrecognized configuration parameter \"no_such_knob\""));
	assert_int_equal(ar_config_set(&c, "core_arena_bytes", "12 parsecs", err), -AR_ECONFIG);
	assert_non_null(strstr(err, "core_arena_bytes"));
	assert_int_equal(ar_config_set(&c, "core_count", "2MiB", err), -AR_ECONFIG); /* no unit */
	assert_int_equal(ar_config_set(&c, "core_count", "65", err), -AR_ECONFIG);   /* > max */
	assert_non_null(strstr(err, "outside the valid range"));
	assert_int_equal(ar_config_set(&c, "pg_listen_address", "nowhere", err), -AR_ECONFIG);
	assert_int_equal(ar_config_set(&c, "log_min_level", "chatty", err), -AR_ECONFIG);
	assert_int_equal(ar_config_set(&c, "core_ring_capacity_messages", "1000", err), 0);
	assert_int_equal(ar_config_finish(&c, err), -AR_ECONFIG); /* not a power of two */
	assert_int_equal(ar_config_set(&c, "core_ring_capacity_messages", "1024", err), 0);
	assert_int_equal(ar_config_finish(&c, err), 0);
	assert_true(c.core_count >= 1);
}

static char *write_temp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/argon-config-test-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_file(void **state)
{
	struct ar_config c;
	char err[AR_CONFIG_ERROR_BYTES];
	(void)state;

	ar_config_init_defaults(&c);
	char *path = write_temp("# comment\n\ncore_count = 1\nshutdown_timeout_ms = 2s\n");
	assert_int_equal(ar_config_load_file(&c, path, err), 0);
	assert_int_equal(c.core_count, 1);
	assert_int_equal(c.shutdown_timeout_ms, 2000);
	unlink(path);

	path = write_temp("core_count = 1\n\nbogus_knob = 3\n");
	assert_int_equal(ar_config_load_file(&c, path, err), -AR_ECONFIG);
	assert_non_null(strstr(err, "\"bogus_knob\""));
	assert_non_null(strstr(err, "line 3"));
	unlink(path);

	path = write_temp("core_count = 1\nthis line has no equals sign\n");
	assert_int_equal(ar_config_load_file(&c, path, err), -AR_ECONFIG);
	assert_non_null(strstr(err, "syntax error"));
	assert_non_null(strstr(err, "line 2"));
	unlink(path);

	path = write_temp("[server]\ncore_count = 1\n");
	assert_int_equal(ar_config_load_file(&c, path, err), -AR_ECONFIG);
	assert_non_null(strstr(err, "sections are not supported"));
	unlink(path);

	assert_int_equal(ar_config_load_file(&c, "/nonexistent/argon.conf", err), -AR_ECONFIG);
	assert_non_null(strstr(err, "could not open configuration file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_set_and_errors),
		cmocka_unit_test(test_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
