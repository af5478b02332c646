/*
 * crc32c.c - CRC-32C through ISA-L.  ISA-L takes an int length, so long buffers
 * are fed in chunks.
 */
#include "common/crc32c.h"

#include <isa-l/crc.h>
#include <limits.h>

uint32_t ar_crc32c_update(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		size_t n = len > (size_t)INT_MAX ? (size_t)INT_MAX : len;
		/* ISA-L's API is not const-correct; it does not write the buffer. */
		crc = crc32_iscsi((unsigned char *)(uintptr_t)p, (int)n, crc);
		p += n;
		len -= n;
	}
	return crc;
}
