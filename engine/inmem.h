/*
 * inmem.h - The in-memory layer of a timeline shard: where ingested values
 * land first.  Append-only: value bytes go to a backing file through the VFS,
 * the index (key -> versions in LSN order) stays in memory.  Frozen at an end
 * LSN, it is written out as an L0 delta layer and dropped.
 */
#ifndef AR_ENGINE_INMEM_H
#define AR_ENGINE_INMEM_H

#include "common/vfs.h"
#include "engine/key.h"
#include "engine/layer.h"
#include "engine/value.h"

#include <stdbool.h>
#include <stdint.h>

struct inmem;

/* A new layer holding LSNs from start_lsn on, backed by a file at path. */
__attribute__((warn_unused_result)) int inmem_create(struct ar_vfs *vfs, const char *path,
						     ar_lsn start_lsn, struct inmem **out);
/* Frees memory and removes the backing file. */
void inmem_destroy(struct inmem *m);

/* lsn >= start and >= every earlier put of the same key; a second value for the
 * same (key, LSN) is -EEXIST.  Refused once frozen (asserted). */
__attribute__((warn_unused_result)) int inmem_put(struct inmem *m, const struct ar_key *key,
						  ar_lsn lsn, const struct ar_value *v);
/* Values of key with LSN < lsn_below, oldest first (as lyr_reader_get). */
__attribute__((warn_unused_result)) int inmem_get(struct inmem *m, const struct ar_key *key,
						  ar_lsn lsn_below, lyr_value_fn *fn, void *ctx);
/* No more puts; the layer covers [start, end_lsn). */
void inmem_freeze(struct inmem *m, ar_lsn end_lsn);
bool inmem_is_frozen(const struct inmem *m);
/* Write the values as a delta layer [start, end) x [min key, max key]; frozen only.
 * An empty layer writes nothing and returns -ENODATA. */
__attribute__((warn_unused_result)) int inmem_write_layer(struct inmem *m, struct ar_vfs *vfs,
							  const char *path,
							  const struct lyr_writer_options *options,
							  struct lyr_info *info_out);

ar_lsn inmem_start_lsn(const struct inmem *m);
ar_lsn inmem_end_lsn(const struct inmem *m); /* AR_LSN_MAX while open */
uint64_t inmem_bytes(const struct inmem *m);
uint64_t inmem_value_count(const struct inmem *m);

#endif
