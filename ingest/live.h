/*
 * live.h - A timeline fed live by a PostgreSQL 15 primary: Argon as its
 * (synchronous) standby.
 *
 * Two threads per timeline:
 *  - the receiver (walreceiver.c): libpq in replication mode; IDENTIFY_SYSTEM,
 *    a physical slot (created if missing), START_REPLICATION from where the
 *    durable log ends, TIMELINE_HISTORY on a timeline switch.  WAL goes into the
 *    durable log (wallog.h) and is fsynced in groups: everything that arrived
 *    while the last fsync ran goes in the next one, and a status reply follows
 *    each fsync.  write = received, flush = durable in the log, apply = ingested
 *    and readable.  Reconnects with backoff; a bad stream (another system, a
 *    timeline Argon cannot follow) stops this timeline with the error, not the
 *    server.
 *  - the ingest (live.c): owns the tenant's store; on start it replays the
 *    durable log from the ingest state's next_lsn (records already in layers
 *    are skipped), then decodes what the receiver made durable as it comes,
 *    ingests it, flushes and compacts layers, persists next_lsn at checkpoints
 *    and trims the log below it.  Reads (pages, branches) are run on this
 *    thread through live_call.
 */
#ifndef AR_INGEST_LIVE_H
#define AR_INGEST_LIVE_H

#include "ingest/store.h"

#include <stdbool.h>
#include <stdint.h>

#define LIVE_ERROR_BYTES 512

struct live_tl;

struct live_config {
	const char *data_dir; /* the page server's; its lock is held by the caller */
	struct tl_id tenant;
	struct tl_id timeline;
	struct store_options store;
	bool receive;                    /* false: replay the durable log only, no primary */
	uint32_t status_interval_ms;     /* status replies at least this often (10 s) */
	uint32_t checkpoint_interval_ms; /* next_lsn persisted, log trimmed (10 s) */
	uint32_t reconnect_max_ms;       /* backoff ceiling (5 s) */
};

void live_config_default(struct live_config *c);

enum live_state {
	LIVE_STARTING, /* replaying the durable log */
	LIVE_CONNECTING,
	LIVE_STREAMING,
	LIVE_WAITING, /* between attempts, after an error it will retry */
	LIVE_STOPPED, /* a bad stream or refused WAL: needs an operator */
	LIVE_IDLE,    /* no primary attached, or started without receiving */
};

const char *live_state_name(enum live_state s);

struct live_status {
	enum live_state state;
	ar_lsn received; /* end of WAL written to the log */
	ar_lsn flushed;  /* end of WAL durable in the log (acknowledged as flush) */
	ar_lsn ingested; /* end of the last record ingested (acknowledged as apply) */
	ar_lsn primary;  /* the primary's WAL end, as it last said */
	uint32_t pg_timeline;
	uint64_t system_id;
	uint64_t connects;
	uint64_t flushes;            /* fsync groups */
	uint64_t replies;            /* status replies sent */
	uint64_t records;            /* ingested */
	int64_t last_message_age_ms; /* -1: none yet */
	uint64_t log_segments;
	char primary_conninfo[512]; /* with any password removed */
	char slot_name[64];
	char application_name[64];
	char error[LIVE_ERROR_BYTES]; /* the last error ("" while all is well) */
};

/* Open the tenant's store, replay the timeline's durable log, and (when a
 * primary is attached and c->receive) start streaming. */
__attribute__((warn_unused_result)) int live_start(const struct live_config *c,
						   struct live_tl **out,
						   char err[LIVE_ERROR_BYTES]);
/* Stop both threads; what is in memory is flushed to layers first (a clean
 * stop), unless the timeline stopped on an error. */
void live_stop(struct live_tl *t);

void live_status(struct live_tl *t, struct live_status *out);
const struct tl_id *live_tenant(const struct live_tl *t);
const struct tl_id *live_timeline(const struct live_tl *t);

/* Attach a primary: persisted in the timeline's ingest state, then streaming
 * starts (or restarts with the new settings).  slot and application_name may
 * be empty: "argon_<timeline id prefix>" is used for both. */
__attribute__((warn_unused_result)) int live_attach(struct live_tl *t, const char *conninfo,
						    const char *slot, const char *application_name,
						    char err[LIVE_ERROR_BYTES]);

/* Run fn on the timeline's ingest thread (which owns the store) and wait for
 * its result: page reads and branches from the management API. */
typedef int live_fn(void *ctx, struct ar_store *s, struct ar_timeline *tl,
		    const struct ingest_state *st, char err[STORE_ERROR_BYTES]);
__attribute__((warn_unused_result)) int live_call(struct live_tl *t, live_fn *fn, void *ctx,
						  char err[STORE_ERROR_BYTES]);

/* A job on the ingest thread that the submitter does not wait for (the page
 * service's requests).  fn runs there with the store; it returns true when
 * done, false to run again once more WAL was ingested (or within 5 ms).  With
 * store NULL (the timeline starts over after an error, or stops) it must fail
 * and return true.  The job's memory is the submitter's until fn returned true. */
struct live_job;
typedef bool live_job_fn(struct live_job *job, struct ar_store *s, struct ar_timeline *tl,
			 const struct ingest_state *st);
struct live_job {
	struct live_job *next;
	live_job_fn *fn;
};
/* Queue job; -ESHUTDOWN (nothing queued) once the timeline stops. */
__attribute__((warn_unused_result)) int live_submit(struct live_tl *t, struct live_job *job);

#endif
