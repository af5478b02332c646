/*
 * timeline.h - One timeline shard: its in-memory layers, its layer files, its
 * manifest, and GetPage@LSN over them, falling through to the ancestor at the
 * branch LSN.  Owned by one core; nothing here is thread-safe.
 *
 * LSNs: a timeline holds values with LSN >= start_lsn (a branch starts at its
 * ancestor LSN + 1).  Everything at or below disk_consistent_lsn is in layer
 * files listed by the durable manifest; above it, only in memory (the WAL log of
 * the ingest issue makes that durable).  Reads at LSN X see every value with
 * LSN <= X; below the GC cutoff they are refused.
 */
#ifndef AR_ENGINE_TIMELINE_H
#define AR_ENGINE_TIMELINE_H

#include "common/vfs.h"
#include "engine/blockcache.h"
#include "engine/key.h"
#include "engine/layer.h"
#include "engine/manifest.h"
#include "engine/redo.h"
#include "engine/value.h"

#include <stdbool.h>
#include <stdint.h>

/* Compaction, image creation and GC knobs (defaults as Neon's, see engine/README.md). */
struct tl_compact_params {
	uint32_t compaction_threshold;     /* L0 layers that trigger L0 -> L1 (10) */
	uint32_t compaction_l0_max;        /* L0 layers merged per pass: bounded work (10) */
	uint64_t compaction_target_bytes;  /* size of one L1 layer (128 MiB) */
	uint32_t image_creation_threshold; /* delta layers above the newest image (3) */
	uint64_t image_target_bytes;       /* size of one image layer (128 MiB) */
};

/* What every timeline of a tenant shares: the disk, the cache, the redo. */
struct tl_env {
	struct ar_vfs *vfs;
	struct ar_blockcache *cache;
	struct ar_redo *redo;
	uint64_t next_file_id; /* block cache ids, unique per env */
	struct lyr_writer_options layer_options;
	uint64_t checkpoint_distance_bytes; /* freeze the open layer past this */
	uint64_t checkpoint_timeout_ms;     /* or once it is this old (0: never) */
	struct tl_compact_params compact;
};

/* Counters that prove the work was real (tests, metrics). */
struct tl_stats {
	uint64_t puts;
	uint64_t gets;
	uint64_t freezes;
	uint64_t flushes;
	uint64_t layers_written;
	uint64_t redo_calls;
	uint64_t records_applied;
	uint64_t images_returned;
	uint64_t ancestor_fallthroughs;
	uint64_t manifest_writes;
	uint64_t strays_removed;
	uint64_t compactions;
	uint64_t l0_merged;
	uint64_t l1_written;
	uint64_t image_layers_written;
	uint64_t images_created;
	uint64_t gc_runs;
	uint64_t gc_layers_removed;
	uint64_t backpressure;
	uint64_t prefetch_batches; /* vectored reads tl_prefetch submitted */
	uint64_t prefetch_blocks;  /* value blocks they read */
	uint32_t index_levels_max; /* deepest index of any layer written */
};

struct ar_timeline;

/* Create a timeline in dir (created); durable when this returns.  A root has no
 * ancestor and starts at start_lsn; a branch starts at ancestor_lsn + 1 and
 * writes only its manifest: O(1) in the ancestor's size. */
__attribute__((warn_unused_result)) int tl_create(struct tl_env *env, const char *dir,
						  const struct tl_id *id,
						  struct ar_timeline *ancestor, ar_lsn ancestor_lsn,
						  ar_lsn start_lsn, struct ar_timeline **tl_out);
/* Open an existing timeline from its manifest; files of an interrupted flush,
 * compaction or GC (not listed) are removed.  ancestor must be the timeline the
 * manifest names (the tenant resolves it).  err names the file on -AR_ECORRUPT. */
__attribute__((warn_unused_result)) int tl_open(struct tl_env *env, const char *dir,
						struct ar_timeline *ancestor,
						struct ar_timeline **tl_out,
						char err[LYR_ERROR_BYTES]);
/* Read a manifest without opening the timeline (to learn its ancestor). */
__attribute__((warn_unused_result)) int tl_read_manifest(struct tl_env *env, const char *dir,
							 struct manifest *out,
							 char err[LYR_ERROR_BYTES]);
/* Free memory; nothing is written (unflushed values are lost, as in a crash). */
void tl_close(struct ar_timeline *tl);

/* Store a value.  lsn >= start, >= the last put's LSN, > disk_consistent_lsn. */
__attribute__((warn_unused_result)) int tl_put(struct ar_timeline *tl, const struct ar_key *key,
					       ar_lsn lsn, const struct ar_value *value);
/* The timeline has seen WAL up to lsn that stores nothing here (a shard's share
 * of a record can be empty): reads up to lsn are answered.  Never moves back. */
void tl_advance(struct ar_timeline *tl, ar_lsn lsn);
/* When nothing is in memory: make the advanced last LSN durable (the manifest's
 * disk_consistent_lsn), so a restart answers reads up to it. */
__attribute__((warn_unused_result)) int tl_sync_advance(struct ar_timeline *tl);
/* Freeze the open in-memory layer if it holds checkpoint_distance_bytes or is older
 * than checkpoint_timeout_ms (force:
 * whenever it holds anything).  Call between WAL records, never inside one. */
void tl_maybe_freeze(struct ar_timeline *tl, bool force);
/* Write every frozen in-memory layer as an L0 delta, then the manifest.  -EAGAIN
 * (backpressure) while 3 x compaction_threshold L0 layers wait for compaction. */
__attribute__((warn_unused_result)) int tl_flush(struct ar_timeline *tl);

/* One bounded pass of L0 -> L1 compaction if compaction_threshold L0s exist: merge
 * up to compaction_l0_max oldest L0s into key-partitioned L1s of the same LSN range.
 * Reads between passes see either the old layers or the new ones, never both. */
__attribute__((warn_unused_result)) int tl_compact(struct ar_timeline *tl, bool *did_work);
/* If image_creation_threshold delta layers lie above the newest image, write image
 * layers of every key at disk_consistent_lsn. */
__attribute__((warn_unused_result)) int tl_create_images(struct ar_timeline *tl, bool *did_work);
/* Raise the GC cutoff (never lowers it) and delete layers wholly below it that no
 * read at or above the cutoff, nor at any retained LSN (branch points), needs.
 * The new cutoff and layer list are durable before any file is removed. */
__attribute__((warn_unused_result)) int tl_gc(struct ar_timeline *tl, ar_lsn cutoff,
					      const ar_lsn *retain, uint32_t retain_count,
					      uint32_t *removed_out);
uint32_t tl_l0_count(const struct ar_timeline *tl);

/* The same passes in steps, so a core interleaves them with reads, puts and flushes:
 * a step does at most `budget` values (compaction) or keys (images).  Reads see the
 * old layers until the final step installs the new ones.  One job per timeline at a
 * time; GC waits (-EBUSY) while one runs.  *job_out is NULL when nothing is due. */
enum tl_job_kind { TL_JOB_COMPACT, TL_JOB_IMAGES };
struct tl_job;
__attribute__((warn_unused_result)) int tl_job_start(struct ar_timeline *tl, enum tl_job_kind kind,
						     struct tl_job **job_out);
/* On *done_out (success or error) the job is gone. */
__attribute__((warn_unused_result)) int tl_job_step(struct tl_job *job, uint32_t budget,
						    bool *done_out);
void tl_job_abort(struct tl_job *job);

/* GetPage@LSN: the value of key as of lsn (an image, or rebuilt by redo) into out
 * (AR_PAGE_BYTES).  -AR_ENOKEY if it does not exist, -AR_EBELOWGC below the cutoff,
 * -ERANGE above the last LSN put, -AR_ECORRUPT with tl_error() naming file/offset. */
__attribute__((warn_unused_result)) int tl_get(struct ar_timeline *tl, const struct ar_key *key,
					       ar_lsn lsn, uint8_t out[AR_PAGE_BYTES],
					       uint32_t *len_out);
const char *tl_error(const struct ar_timeline *tl);

/* Batched GetPage: bring in, with one vectored read (ar_vfs_read_batch), the layer
 * blocks that tl_get of each keys[i] at lsns[i] will start from and that are not
 * cached, so the tl_gets that follow find them in the cache.  Best effort and
 * without effect on any answer: an error is left for tl_get to meet and report.
 * At most AR_VFS_BATCH_MAX blocks. */
void tl_prefetch(struct ar_timeline *tl, const struct ar_key *keys, const ar_lsn *lsns, uint32_t n);

/* Relation size in blocks at lsn (its size key: a 4-byte little-endian block count);
 * -AR_ENOKEY if the relation does not exist then. */
__attribute__((warn_unused_result)) int tl_rel_nblocks(struct ar_timeline *tl, struct ar_rel rel,
						       ar_lsn lsn, uint32_t *nblocks_out);
/* Whether the relation exists at lsn (0 or -AR_ENOKEY). */
__attribute__((warn_unused_result)) int tl_rel_exists(struct ar_timeline *tl, struct ar_rel rel,
						      ar_lsn lsn);
/* Bytes of every relation fork of a database at lsn, from its relation directory key
 * (entries of rel_number u32 big-endian + fork u8) and each fork's size. */
__attribute__((warn_unused_result)) int tl_db_size(struct ar_timeline *tl, uint32_t spc_oid,
						   uint32_t db_oid, ar_lsn lsn,
						   uint64_t *bytes_out);

const struct tl_id *tl_id(const struct ar_timeline *tl);
struct ar_timeline *tl_ancestor(const struct ar_timeline *tl);
ar_lsn tl_ancestor_lsn(const struct ar_timeline *tl);
ar_lsn tl_start_lsn(const struct ar_timeline *tl);
ar_lsn tl_last_record_lsn(const struct ar_timeline *tl);
ar_lsn tl_disk_consistent_lsn(const struct ar_timeline *tl);
ar_lsn tl_gc_cutoff(const struct ar_timeline *tl);
/* The LSN of the newest value the last successful tl_get (or tl_rel_nblocks) built
 * its answer from: that answer holds for every LSN from it up to the LSN read. */
ar_lsn tl_last_value_lsn(const struct ar_timeline *tl);
uint32_t tl_layer_count(const struct ar_timeline *tl);
const struct manifest_layer *tl_layer(const struct ar_timeline *tl, uint32_t index);
const struct tl_stats *tl_stats(const struct ar_timeline *tl);

#endif
