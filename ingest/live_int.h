/*
 * live_int.h - What the receiver thread (walreceiver.c) and the ingest thread
 * (live.c) of a live timeline share.  Positions are atomics written by one
 * thread each; the rest is under mu.
 */
#ifndef AR_INGEST_LIVE_INT_H
#define AR_INGEST_LIVE_INT_H

#include "ingest/live.h"
#include "ingest/walingest.h"
#include "ingest/wallog.h"

#include <pthread.h>
#include <stdatomic.h>

struct live_cmd {
	live_fn *fn;
	void *ctx;
	char *err;
	int rc;
	bool done;
};

struct live_tl {
	struct live_config cfg;
	char data_dir[512];
	char log_dir[700];
	uint64_t system_id; /* const after start */
	uint32_t seg_bytes;

	pthread_mutex_t mu;
	pthread_cond_t cv;            /* ingest thread: flushed moved, a command, stop */
	pthread_cond_t cmd_cv;        /* a command's caller: done */
	struct live_cmd *cmd;         /* under mu */
	struct live_job *jobs;        /* under mu: submitted, newest first */
	struct live_job *jobs_again;  /* ingest thread only: waiting for WAL */
	bool jobs_closed;             /* under mu: the ingest thread is gone */
	char error[LIVE_ERROR_BYTES]; /* under mu */
	char conninfo[512];           /* under mu: the primary, and how to name Argon there */
	char slot[64];
	char appname[64];
	uint32_t tli;            /* under mu: the PostgreSQL timeline streamed */
	ar_lsn start_lsn;        /* under mu: where the receiver starts */
	uint64_t rcv_generation; /* under mu: attach restarts the receiver */

	_Atomic(ar_lsn) received, flushed, ingested, primary;
	_Atomic(ar_lsn) trim_lsn; /* the ingest's persisted next_lsn: the log below may go */
	_Atomic uint64_t connects, flushes, replies, records;
	_Atomic int64_t last_message_ns;
	_Atomic int state;
	_Atomic bool stop;        /* the whole timeline */
	_Atomic bool ingest_dead; /* the ingest stopped on an error: no attach */
	_Atomic bool rcv_stop;    /* the receiver only */

	/* The receiver thread. */
	pthread_t rcv_thread;
	bool rcv_running;
	int wake_fd; /* eventfd: stop, or the apply position moved */

	/* The ingest thread. */
	pthread_t ing_thread;
	bool ing_running;
	struct ar_store *store;
	struct ar_timeline *tl;
	struct walingest *wi;
	struct ingest_state st;
};

/* walreceiver.c: start the receiver thread (stream from t->start_lsn). */
__attribute__((warn_unused_result)) int live_receiver_start(struct live_tl *t);
void live_receiver_stop(struct live_tl *t);

/* Set the error shown in the status (printf-style), and log it. */
void live_set_error(struct live_tl *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void live_clear_error(struct live_tl *t);
uint64_t live_now_ns(void);

#endif
