/*
 * config_fuzz.c - libFuzzer target for the configuration parsers: unit values,
 * addresses, and whole config files through libinih.  Checks: no crash, and a
 * value that parses is within its knob's bounds when read back.
 */
#include "common/assert.h"
#include "common/config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[512];
	char err[AR_CONFIG_ERROR_BYTES];
	char host[AR_CONFIG_ADDRESS_BYTES];
	uint64_t v;
	uint16_t port;
	struct ar_config config;

	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	memcpy(text, data, n);
	text[n] = '\0';
	(void)ar_parse_bytes(text, &v);
	(void)ar_parse_duration_ms(text, &v);
	(void)ar_parse_address(text, host, &port);
	ar_config_init_defaults(&config);
	if (ar_config_set(&config, "core_arena_bytes", text, err) == 0) {
		AR_ASSERT(config.core_arena_bytes >= AR_ARENA_BYTES_MIN);
		AR_ASSERT(config.core_arena_bytes <= AR_ARENA_BYTES_MAX);
	}
	if (ar_config_set(&config, "core_count", text, err) == 0)
		AR_ASSERT(config.core_count <= AR_CORES_MAX);

	/* The same bytes as a whole file. */
	char path[] = "/tmp/argon-config-fuzz-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		ar_config_init_defaults(&config);
		if (ar_config_load_file(&config, path, err) != 0)
			AR_ASSERT(strlen(err) > 0);
	}
	close(fd);
	unlink(path);
	return 0;
}
