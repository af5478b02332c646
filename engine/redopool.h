/*
 * redopool.h - PostgreSQL's redo for the engine: a pool of argon-walredo helper
 * processes (compute/walredo.c) driven over pipes.
 *
 * A pool has one slot per core (or per thread that reads pages); a slot is a
 * struct ar_redo used by one thread at a time and owns at most one helper,
 * started on the slot's first request.  One apply is one pipelined request:
 * begin, the base page, every record, get-page, written in one go, the 8 KiB
 * answer read back with a deadline.  A helper that fails (its stderr says why:
 * a bad record, an ERROR or PANIC in redo), dies, or misses the deadline is
 * killed and reaped; that one apply fails with an error naming the key, the
 * LSNs and the cause, and the slot's next request starts a new helper.
 *
 * A helper inherits the CPU affinity of the thread that starts it: a slot used
 * by a core thread pinned to one CPU gets its helper on that CPU, so requests
 * and answers never wake the other CPU (about 50 us a round trip on these
 * machines, against 8 us on one CPU; perf/redo_bench.py measures both).
 *
 * The pool ignores SIGPIPE in the process if it was at its default (a helper
 * that dies while being written to must not take the server with it).
 */
#ifndef AR_ENGINE_REDOPOOL_H
#define AR_ENGINE_REDOPOOL_H

#include "engine/redo.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AR_REDOPOOL_TIMEOUT_MS_DEFAULT 10000

struct ar_redopool_config {
	const char *helper_path; /* argon-walredo */
	uint32_t slots;          /* at least 1 */
	uint32_t timeout_ms;     /* per request; 0: the default */
	bool test_commands;      /* start helpers with --test-commands */
};

struct ar_redopool_stats {
	uint64_t started;  /* helpers started */
	uint64_t replaced; /* helpers killed after a failure or timeout */
	uint64_t requests; /* applies and masks sent */
	uint64_t records;  /* records sent */
	uint64_t failures; /* requests that failed */
	uint64_t timeouts; /* of which: the deadline passed */
};

struct ar_redopool;

__attribute__((warn_unused_result)) int ar_redopool_create(const struct ar_redopool_config *cfg,
							   struct ar_redopool **out);
/* Ends every helper: its pipes are closed and it is killed (it holds nothing on disk). */
void ar_redopool_destroy(struct ar_redopool *pool);

/* Slot i's redo (i < cfg.slots): for one thread at a time. */
struct ar_redo *ar_redopool_slot(struct ar_redopool *pool, uint32_t i);

/* The same slot's helper masks page (block blkno) with rmgr rmid's rm_mask. */
__attribute__((warn_unused_result)) int ar_redopool_mask(struct ar_redo *slot, uint8_t rmid,
							 uint32_t blkno,
							 uint8_t page[AR_PAGE_BYTES]);

/* What slot's running helper replayed, one "Rmgr/TYPE count" line per record
 * type (pg_waldump --stats=record's names), NUL-terminated in buf; "" if no
 * helper runs (a replaced helper's counts are gone). */
__attribute__((warn_unused_result)) int ar_redopool_replayed(struct ar_redo *slot, char *buf,
							     size_t len);

/* Test hooks: the process id of slot's helper (0: none running), and a request
 * that makes the helper call a system call outside its sandbox (the pool must
 * have test_commands; the helper then dies with SIGSYS and the call fails). */
int ar_redopool_helper_pid(struct ar_redo *slot);
__attribute__((warn_unused_result)) int ar_redopool_test_forbidden(struct ar_redo *slot);

void ar_redopool_stats(const struct ar_redopool *pool, struct ar_redopool_stats *out);

/* Where argon-walredo is: $ARGON_WALREDO if set, else next to the running
 * program, else ../compute/ from it (the build tree); NULL if none exists.
 * Writes the path to buf. */
const char *ar_redopool_find_helper(char *buf, size_t len);

#endif
