/*
 * value.h - What is stored under a (key, LSN): a full page image, a PostgreSQL
 * WAL record (with its will_init flag: the record rebuilds the page from
 * nothing), or a record Argon applies itself (visibility-map bits, clog bits,
 * relation sizes and directories...; its type says which).
 *
 * Serialized form (value_encode/value_decode), 8-byte header then the bytes:
 *   0 kind u8 | 1 flags u8 (bit 0 will_init) | 2 argon_type u8 | 3 zero u8 |
 *   4 len u32 big-endian | 8 data[len]
 */
#ifndef AR_ENGINE_VALUE_H
#define AR_ENGINE_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ar_value_kind {
	AR_VALUE_IMAGE = 0, /* the whole thing at this LSN (a page, or a metadata blob) */
	AR_VALUE_WAL = 1,   /* a PostgreSQL WAL record, replayed by redo */
	AR_VALUE_ARGON = 2, /* a record Argon applies itself; argon_type says which */
};

#define AR_VALUE_HEADER_BYTES 8
/* Larger values are refused: a WAL record is at most 1 GiB in PostgreSQL, but what
 * one key carries here is a page, a record touching it, or small metadata. */
#define AR_VALUE_BYTES_MAX (4u * 1024 * 1024)

struct ar_value {
	enum ar_value_kind kind;
	bool will_init;
	uint8_t argon_type;
	uint32_t len;
	const uint8_t *data; /* borrowed */
};

/* True if reconstruction can start here (no older version is needed). */
static inline bool ar_value_is_base(const struct ar_value *v)
{
	return v->kind == AR_VALUE_IMAGE || v->will_init;
}

static inline size_t ar_value_encoded_bytes(const struct ar_value *v)
{
	return AR_VALUE_HEADER_BYTES + v->len;
}

/* Writes ar_value_encoded_bytes(v) bytes to out. */
void ar_value_encode(const struct ar_value *v, uint8_t *out);
/* Decode from untrusted bytes; -AR_ECORRUPT if malformed or longer than len.
 * On success *used_out is the encoded size and out->data points into in. */
__attribute__((warn_unused_result)) int ar_value_decode(const uint8_t *in, size_t len,
							struct ar_value *out, size_t *used_out);

#endif
