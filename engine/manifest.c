/*
 * manifest.c - Encoding and decoding of timeline manifests (layout in
 * manifest.h).  The decoder checks the checksum first, then every field.
 */
#include "engine/manifest.h"
#include "common/bytes.h"

#include "common/assert.h"
#include "common/crc32c.h"
#include "common/err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_MAGIC 0x4152474Du /* "ARGM" */
#define MANIFEST_VERSION 1

size_t manifest_encoded_bytes(const struct manifest *m)
{
	return MANIFEST_HEADER_BYTES + (size_t)m->layer_count * MANIFEST_ENTRY_BYTES + 4;
}

void manifest_encode(const struct manifest *m, uint8_t *out)
{
	AR_ASSERT(m->layer_count <= MANIFEST_LAYERS_MAX);
	size_t n = manifest_encoded_bytes(m);
	memset(out, 0, n);
	ar_put_be32(out, MANIFEST_MAGIC);
	out[4] = 0;
	out[5] = MANIFEST_VERSION;
	out[7] = m->has_ancestor ? 1 : 0;
	memcpy(out + 8, m->id.bytes, 16);
	memcpy(out + 24, m->ancestor.bytes, 16);
	ar_put_be64(out + 40, m->ancestor_lsn);
	ar_put_be64(out + 48, m->start_lsn);
	ar_put_be64(out + 56, m->disk_consistent_lsn);
	ar_put_be64(out + 64, m->gc_cutoff);
	ar_put_be32(out + 72, m->next_seq);
	ar_put_be32(out + 76, m->layer_count);
	for (uint32_t i = 0; i < m->layer_count; i++) {
		const struct manifest_layer *l = &m->layers[i];
		uint8_t *e = out + MANIFEST_HEADER_BYTES + (size_t)i * MANIFEST_ENTRY_BYTES;
		e[0] = (uint8_t)l->info.kind;
		e[1] = l->level;
		ar_put_be32(e + 4, l->seq);
		ar_key_encode(&l->info.keys.start, e + 8);
		ar_key_encode(&l->info.keys.end, e + 26);
		ar_put_be64(e + 48, l->info.lsn_start);
		ar_put_be64(e + 56, l->info.lsn_end);
	}
	ar_put_be32(out + n - 4, ar_crc32c(out, n - 4));
}

static int manifest_fail(char err[160], size_t offset, const char *what)
{
	snprintf(err, 160, "%s at offset %zu", what, offset);
	return -AR_ECORRUPT;
}

static int manifest_entry_decode(const uint8_t *e, size_t offset, const struct manifest *m,
				 struct manifest_layer *l, char err[160])
{
	l->info.kind = (enum lyr_kind)e[0];
	l->level = e[1];
	l->seq = ar_get_be32(e + 4);
	ar_key_decode(e + 8, &l->info.keys.start);
	ar_key_decode(e + 26, &l->info.keys.end);
	l->info.lsn_start = ar_get_be64(e + 48);
	l->info.lsn_end = ar_get_be64(e + 56);
	if (l->info.kind != LYR_DELTA && l->info.kind != LYR_IMAGE)
		return manifest_fail(err, offset, "bad layer kind");
	if (l->level > 1 || e[2] || e[3] || ar_get_be32(e + 44) != 0)
		return manifest_fail(err, offset, "bad layer level or padding");
	if (ar_key_cmp(&l->info.keys.start, &l->info.keys.end) >= 0 ||
	    l->info.lsn_start >= l->info.lsn_end ||
	    (l->info.kind == LYR_IMAGE && l->info.lsn_end != l->info.lsn_start + 1))
		return manifest_fail(err, offset, "bad layer key or LSN range");
	if (l->seq >= m->next_seq)
		return manifest_fail(err, offset, "layer sequence not below the next sequence");
	return 0;
}

int manifest_decode(const uint8_t *in, size_t len, struct manifest *out, char err[160])
{
	memset(out, 0, sizeof(*out));
	if (len < MANIFEST_HEADER_BYTES + 4)
		return manifest_fail(err, len, "manifest is too short");
	if (ar_get_be32(in) != MANIFEST_MAGIC)
		return manifest_fail(err, 0, "not a manifest (bad magic)");
	if (ar_get_be32(in + len - 4) != ar_crc32c(in, len - 4))
		return manifest_fail(err, len - 4, "manifest checksum mismatch");
	if (in[4] != 0 || in[5] != MANIFEST_VERSION)
		return manifest_fail(err, 4, "unsupported manifest version");
	if (in[6] != 0 || (in[7] & ~1u) != 0)
		return manifest_fail(err, 6, "unknown manifest flags");
	out->has_ancestor = in[7] & 1;
	memcpy(out->id.bytes, in + 8, 16);
	memcpy(out->ancestor.bytes, in + 24, 16);
	out->ancestor_lsn = ar_get_be64(in + 40);
	out->start_lsn = ar_get_be64(in + 48);
	out->disk_consistent_lsn = ar_get_be64(in + 56);
	out->gc_cutoff = ar_get_be64(in + 64);
	out->next_seq = ar_get_be32(in + 72);
	uint32_t count = ar_get_be32(in + 76);
	if (count > MANIFEST_LAYERS_MAX ||
	    len != MANIFEST_HEADER_BYTES + (size_t)count * MANIFEST_ENTRY_BYTES + 4)
		return manifest_fail(err, 76, "layer count does not match the manifest's size");
	if (out->start_lsn == 0 || out->disk_consistent_lsn + 1 < out->start_lsn)
		return manifest_fail(err, 56, "disk_consistent_lsn below the start LSN");
	out->layers = calloc(count ? count : 1, sizeof(*out->layers));
	if (!out->layers)
		return -ENOMEM;
	out->layer_count = count;
	for (uint32_t i = 0; i < count; i++) {
		size_t off = MANIFEST_HEADER_BYTES + (size_t)i * MANIFEST_ENTRY_BYTES;
		int rc = manifest_entry_decode(in + off, off, out, &out->layers[i], err);
		if (rc < 0) {
			manifest_free(out);
			return rc;
		}
	}
	return 0;
}

void manifest_free(struct manifest *m)
{
	free(m->layers);
	m->layers = NULL;
	m->layer_count = 0;
}

void tl_id_hex(const struct tl_id *id, char out[33])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[2 * i] = digits[id->bytes[i] >> 4];
		out[2 * i + 1] = digits[id->bytes[i] & 0xF];
	}
	out[32] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool tl_id_from_hex(const char *hex, struct tl_id *out)
{
	for (int i = 0; i < 16; i++) {
		int hi = hex_value(hex[2 * i]);
		if (hi < 0)
			return false;
		int lo = hex_value(hex[2 * i + 1]);
		if (lo < 0)
			return false;
		out->bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[32] == '\0';
}

void manifest_layer_file_name(const struct manifest_layer *l, char out[LYR_NAME_BYTES + 16])
{
	char name[LYR_NAME_BYTES];
	lyr_name(&l->info, name);
	snprintf(out, LYR_NAME_BYTES + 16, "%s-%08" PRIx32, name, l->seq);
}
