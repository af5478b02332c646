/*
 * timeline_int.h - The insides of a timeline, shared by the engine's own files
 * (timeline.c: put, flush, reads; compact.c: compaction, images, GC).  Nothing
 * outside engine/ includes this.
 */
#ifndef AR_ENGINE_TIMELINE_INT_H
#define AR_ENGINE_TIMELINE_INT_H

#include "engine/inmem.h"
#include "engine/timeline.h"

#include <stdbool.h>
#include <stddef.h>

#define TL_FROZEN_MAX 64
#define TL_MANIFEST "manifest"
#define TL_MANIFEST_TMP "manifest.tmp"

struct tl_layer {
	struct manifest_layer ml;
	struct lyr_reader *reader; /* opened on first use */
	uint64_t file_id;
};

/* The versions collected for one GetPage, newest first; data in one buffer. */
struct chain {
	struct ar_redo_record *recs;
	size_t *data_off;
	size_t count;
	size_t cap;
	uint8_t *bytes;
	size_t used;
	size_t bytes_cap;
	size_t batch_start; /* first record of the source being read */
	ar_lsn floor;       /* only values above this LSN are wanted from the source */
	bool have_base;
};

struct ar_timeline {
	struct tl_env *env;
	char *dir;
	struct tl_id id;
	bool has_ancestor;
	struct tl_id ancestor_id;
	struct ar_timeline *ancestor;
	ar_lsn ancestor_lsn;
	ar_lsn start_lsn;
	ar_lsn disk_consistent_lsn;
	ar_lsn gc_cutoff;
	ar_lsn last_record_lsn;
	ar_lsn last_value_lsn; /* of the newest value the last tl_get used */
	uint32_t next_seq;
	struct tl_layer *layers;
	uint32_t layer_count;
	uint32_t layer_cap;
	struct tl_job *job; /* the compaction or image creation in progress, if any */
	struct inmem *open;
	uint64_t open_since_ns;              /* when the open in-memory layer was created */
	struct inmem *frozen[TL_FROZEN_MAX]; /* oldest first */
	uint32_t frozen_count;
	uint32_t ephemeral_seq;
	struct chain chain;
	struct tl_stats stats;
	char err[LYR_ERROR_BYTES];
};

void tl_path(const struct ar_timeline *tl, const char *name, char *out, size_t size);
/* write manifest.tmp, fsync, rename over manifest, fsync the directory */
__attribute__((warn_unused_result)) int tl_manifest_write(struct ar_timeline *tl);
__attribute__((warn_unused_result)) int tl_layers_reserve(struct ar_timeline *tl, uint32_t more);
/* The layer's reader, opened on first use. */
__attribute__((warn_unused_result)) int tl_layer_reader(struct ar_timeline *tl, struct tl_layer *l,
							struct lyr_reader **out);

#endif
