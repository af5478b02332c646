/*
 * manifest_fuzz.c - libFuzzer target for the manifest decoder: arbitrary bytes
 * must decode or be refused as corrupt with a message, never crash; what
 * decodes must encode back to the same bytes.
 */
#include "common/assert.h"
#include "common/err.h"
#include "engine/manifest.h"

#include <errno.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest m;
	char err[160];

	int rc = manifest_decode(data, size, &m, err);
	if (rc == 0) {
		size_t n = manifest_encoded_bytes(&m);
		uint8_t *again = malloc(n);
		AR_ASSERT(again != NULL);
		manifest_encode(&m, again);
		AR_ASSERT(n == size);
		AR_ASSERT(memcmp(again, data, n) == 0);
		free(again);
		manifest_free(&m);
	} else {
		AR_ASSERT(rc == -AR_ECORRUPT || rc == -ENOMEM);
		AR_ASSERT(rc != -AR_ECORRUPT || strstr(err, "offset") != NULL);
	}
	return 0;
}
