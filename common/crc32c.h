/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of layer blocks, manifests and
 * (later) PostgreSQL's WAL records.  Computed by ISA-L (SSE4.2/PCLMUL paths).
 *
 *   ar_crc32c("123456789", 9) == 0xE3069283
 *
 * Incremental use: crc = AR_CRC32C_INIT; crc = ar_crc32c_update(crc, ...)...;
 * result = ar_crc32c_final(crc).
 */
#ifndef AR_COMMON_CRC32C_H
#define AR_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#define AR_CRC32C_INIT 0xFFFFFFFFu

uint32_t ar_crc32c_update(uint32_t crc, const void *data, size_t len);

static inline uint32_t ar_crc32c_final(uint32_t crc)
{
	return crc ^ 0xFFFFFFFFu;
}

static inline uint32_t ar_crc32c(const void *data, size_t len)
{
	return ar_crc32c_final(ar_crc32c_update(AR_CRC32C_INIT, data, len));
}

#endif
