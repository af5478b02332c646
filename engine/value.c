/*
 * value.c - Encoding of stored values (layout in value.h).  The decoder checks
 * every field of untrusted bytes and never reads past its buffer.
 */
#include "engine/value.h"

#include "common/assert.h"
#include "common/err.h"

#include <string.h>

void ar_value_encode(const struct ar_value *v, uint8_t *out)
{
	AR_ASSERT(v->len <= AR_VALUE_BYTES_MAX);
	AR_ASSERT(v->kind <= AR_VALUE_ARGON);
	out[0] = (uint8_t)v->kind;
	out[1] = v->will_init ? 1 : 0;
	out[2] = v->argon_type;
	out[3] = 0;
	out[4] = (uint8_t)(v->len >> 24);
	out[5] = (uint8_t)(v->len >> 16);
	out[6] = (uint8_t)(v->len >> 8);
	out[7] = (uint8_t)v->len;
	if (v->len > 0)
		memcpy(out + AR_VALUE_HEADER_BYTES, v->data, v->len);
}

int ar_value_decode(const uint8_t *in, size_t len, struct ar_value *out, size_t *used_out)
{
	if (len < AR_VALUE_HEADER_BYTES)
		return -AR_ECORRUPT;
	if (in[0] > AR_VALUE_ARGON || (in[1] & ~1u) != 0 || in[3] != 0)
		return -AR_ECORRUPT;
	uint32_t n = (uint32_t)in[4] << 24 | (uint32_t)in[5] << 16 | (uint32_t)in[6] << 8 | in[7];
	if (n > AR_VALUE_BYTES_MAX || n > len - AR_VALUE_HEADER_BYTES)
		return -AR_ECORRUPT;
	out->kind = (enum ar_value_kind)in[0];
	out->will_init = in[1] & 1;
	out->argon_type = in[2];
	out->len = n;
	out->data = in + AR_VALUE_HEADER_BYTES;
	*used_out = AR_VALUE_HEADER_BYTES + n;
	return 0;
}
