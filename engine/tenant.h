/*
 * tenant.h - A tenant shard's timelines and the rules between them: create,
 * branch (O(1), at or above the parent's GC cutoff), delete (refused while a
 * branch depends on the timeline), and open everything again after a restart.
 *
 * On disk: DIR/tenant.conf (shard count and stripe, written once), and
 * DIR/timelines/<32 hex id>/ per timeline (see timeline.h).  A deleted timeline
 * is first renamed to <id>.deleted (atomic), then emptied and removed; a
 * leftover .deleted directory is finished at open.
 */
#ifndef AR_ENGINE_TENANT_H
#define AR_ENGINE_TENANT_H

#include "engine/key.h"
#include "engine/timeline.h"

#include <stdint.h>

#define TENANT_TIMELINES_MAX 1024

struct ar_tenant;

struct tenant_params {
	struct ar_shard_map shards;
	uint32_t shard_number;
};

__attribute__((warn_unused_result)) int tenant_create(struct tl_env *env, const char *dir,
						      const struct tenant_params *params,
						      struct ar_tenant **tenant_out);
/* err names the file on -AR_ECORRUPT. */
__attribute__((warn_unused_result)) int tenant_open(struct tl_env *env, const char *dir,
						    struct ar_tenant **tenant_out,
						    char err[LYR_ERROR_BYTES]);
/* Frees memory; unflushed values are lost (as in a crash). */
void tenant_close(struct ar_tenant *tenant);

/* A root timeline whose first LSN is start_lsn. */
__attribute__((warn_unused_result)) int tenant_timeline_create(struct ar_tenant *t,
							       const struct tl_id *id,
							       ar_lsn start_lsn,
							       struct ar_timeline **tl_out);
/* A branch of parent at lsn: -AR_EBELOWGC below the parent's GC cutoff, -ERANGE above
 * its last LSN or below its start, -EEXIST if id is taken.  Writes one manifest. */
__attribute__((warn_unused_result)) int tenant_branch(struct ar_tenant *t,
						      const struct tl_id *parent, ar_lsn lsn,
						      const struct tl_id *id,
						      struct ar_timeline **tl_out);
/* -AR_EHASCHILDREN while any timeline branches from it. */
__attribute__((warn_unused_result)) int tenant_timeline_delete(struct ar_tenant *t,
							       const struct tl_id *id);

struct ar_timeline *tenant_timeline(const struct ar_tenant *t, const struct tl_id *id);
uint32_t tenant_timeline_count(const struct ar_tenant *t);
struct ar_timeline *tenant_timeline_at(const struct ar_tenant *t, uint32_t index);
const struct tenant_params *tenant_params(const struct ar_tenant *t);
/* GC of one timeline: the cutoff is last_record_lsn - horizon_bytes, or retention_lsn
 * when given (non-zero; time-based PITR turns a time into it), whichever is lower;
 * its children's branch points are retained. */
__attribute__((warn_unused_result)) int tenant_gc(struct ar_tenant *t, const struct tl_id *id,
						  uint64_t horizon_bytes, ar_lsn retention_lsn,
						  uint32_t *removed_out);
/* Branch points of id's children, ascending (for GC); returns how many (<= max). */
uint32_t tenant_child_lsns(const struct ar_tenant *t, const struct ar_timeline *tl, ar_lsn *lsns,
			   uint32_t max);

#endif
