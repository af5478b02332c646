/*
 * manifest.h - A timeline's durable state in one small file, replaced
 * atomically: its identity and ancestry, disk_consistent_lsn, the GC cutoff,
 * and the list of its layer files.  The encoder and decoder are pure functions
 * of their buffers (the decoder is fuzzed); the file is written by timeline.c.
 *
 * Layout (big-endian), then one 64-byte entry per layer, then crc32c:
 *   0 magic "ARGM" u32 | 4 version u16 (1) | 6 flags u16 (bit 0: has ancestor)
 *   8 timeline id [16] | 24 ancestor id [16] | 40 ancestor LSN u64
 *   48 start LSN u64 | 56 disk_consistent_lsn u64 | 64 GC cutoff u64
 *   72 next layer sequence u32 | 76 layer count u32
 *   layer entry: 0 kind u8 | 1 level u8 | 2 zero u16 | 4 sequence u32 | 8 key start [18]
 *                26 key end [18] | 44 zero u32 | 48 LSN start u64 | 56 LSN end u64
 *   then file bytes are checked against the layer file itself, not stored here.
 *   last 4 bytes: crc32c of everything before them
 */
#ifndef AR_ENGINE_MANIFEST_H
#define AR_ENGINE_MANIFEST_H

#include "engine/key.h"
#include "engine/layer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MANIFEST_HEADER_BYTES 80
#define MANIFEST_ENTRY_BYTES 64
#define MANIFEST_LAYERS_MAX 100000

struct tl_id {
	uint8_t bytes[16];
};

struct manifest_layer {
	struct lyr_info info; /* kind, keys, LSN range */
	uint8_t level;        /* 0: L0 delta from a flush; 1: compacted delta or image */
	uint32_t seq;         /* unique per timeline; part of the file name */
};

struct manifest {
	struct tl_id id;
	bool has_ancestor;
	struct tl_id ancestor;
	ar_lsn ancestor_lsn;
	ar_lsn start_lsn;
	ar_lsn disk_consistent_lsn;
	ar_lsn gc_cutoff;
	uint32_t next_seq;
	uint32_t layer_count;
	struct manifest_layer *layers; /* layer_count entries */
};

size_t manifest_encoded_bytes(const struct manifest *m);
void manifest_encode(const struct manifest *m, uint8_t *out);
/* Decode untrusted bytes; on success out->layers is malloc'ed (free with
 * manifest_free).  -AR_ECORRUPT with err naming the offset otherwise. */
__attribute__((warn_unused_result)) int manifest_decode(const uint8_t *in, size_t len,
							struct manifest *out, char err[160]);
void manifest_free(struct manifest *m);

/* "<32 hex>" */
void tl_id_hex(const struct tl_id *id, char out[33]);
bool tl_id_from_hex(const char *hex, struct tl_id *out);
/* The file name of a layer: lyr_name + "-" + 8 hex digits of the sequence. */
void manifest_layer_file_name(const struct manifest_layer *l, char out[LYR_NAME_BYTES + 16]);

#endif
