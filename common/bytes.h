/*
 * bytes.h - Integers in byte buffers.  Every on-disk and wire format of Argon is
 * big-endian (layer files, manifests, keys, PostgreSQL's protocol); PostgreSQL's
 * WAL is in its host's order, little-endian on every platform Argon reads from.
 */
#ifndef AR_COMMON_BYTES_H
#define AR_COMMON_BYTES_H

#include <stdint.h>

static inline void ar_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void ar_put_be32(uint8_t *p, uint32_t v)
{
	ar_put_be16(p, (uint16_t)(v >> 16));
	ar_put_be16(p + 2, (uint16_t)v);
}

static inline void ar_put_be64(uint8_t *p, uint64_t v)
{
	ar_put_be32(p, (uint32_t)(v >> 32));
	ar_put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t ar_get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t ar_get_be32(const uint8_t *p)
{
	return (uint32_t)ar_get_be16(p) << 16 | ar_get_be16(p + 2);
}

static inline uint64_t ar_get_be64(const uint8_t *p)
{
	return (uint64_t)ar_get_be32(p) << 32 | ar_get_be32(p + 4);
}

static inline uint16_t ar_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t ar_get_le32(const uint8_t *p)
{
	return (uint32_t)ar_get_le16(p) | (uint32_t)ar_get_le16(p + 2) << 16;
}

static inline uint64_t ar_get_le64(const uint8_t *p)
{
	return (uint64_t)ar_get_le32(p) | (uint64_t)ar_get_le32(p + 4) << 32;
}

static inline void ar_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void ar_put_le32(uint8_t *p, uint32_t v)
{
	ar_put_le16(p, (uint16_t)v);
	ar_put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void ar_put_le64(uint8_t *p, uint64_t v)
{
	ar_put_le32(p, (uint32_t)v);
	ar_put_le32(p + 4, (uint32_t)(v >> 32));
}

#endif
