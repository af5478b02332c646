/*
 * runtime.h - The thread-per-core runtime.
 *
 * N core threads, each pinned to one CPU, each with its own io_uring ring, its
 * own NUMA-local arena, bounded SPSC rings from every other core, and a timer
 * heap.  A core runs one loop: timers, inbound messages, submit and wait, then
 * the batch of completions.  Work is answered on the core that received it.
 *
 * Ownership: a struct ar_core is touched only by its own thread, except the
 * atomics marked below (stop request, sleeping flag, counters).
 */
#ifndef AR_COMMON_RUNTIME_H
#define AR_COMMON_RUNTIME_H

#include "common/spsc.h"

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ar_core;
struct ar_runtime;
struct ar_arena;

/* An I/O in flight: the SQE's user_data points here; done runs on the same core. */
struct ar_io;
typedef void ar_io_done_fn(struct ar_core *core, struct ar_io *io, int result);
struct ar_io {
	ar_io_done_fn *done;
};

typedef void ar_timer_fn(struct ar_core *core, void *ctx);

/* Called on each core thread after its ring, arena and rings exist (start) and
 * before they go away (stop).  start returning < 0 fails ar_runtime_start. */
struct ar_core_hooks {
	int (*start)(struct ar_core *core, void *ctx);
	void (*stop)(struct ar_core *core, void *ctx);
	void *ctx;
};

struct ar_runtime_params {
	uint32_t core_count;
	uint32_t uring_depth_entries;
	uint32_t ring_capacity_messages;
	uint64_t arena_bytes;
	struct ar_core_hooks hooks;
};

/* Facts about one core, readable from any thread once ar_runtime_start returned. */
struct ar_core_info {
	uint32_t index;
	int cpu;
	int numa_node;
	bool uring_single_issuer;
};

/* Starts every core thread and waits until each has run hooks.start. */
__attribute__((warn_unused_result)) int ar_runtime_start(const struct ar_runtime_params *params,
							 struct ar_runtime **runtime_out);
/* Asks every core to stop, runs hooks.stop on each, joins them.  Safe to call once. */
void ar_runtime_stop(struct ar_runtime *runtime);
void ar_runtime_destroy(struct ar_runtime *runtime);
uint32_t ar_runtime_core_count(const struct ar_runtime *runtime);
const struct ar_core_info *ar_runtime_core_info(const struct ar_runtime *runtime, uint32_t index);

/* From any thread that is not a core (a core uses ar_core_send): run msg->fn on
 * core to_index.  -EAGAIN while ring_capacity_messages posts wait there (the
 * poster retries: backpressure); -ESHUTDOWN once that core was asked to stop
 * (the message would never run). */
__attribute__((warn_unused_result)) int ar_runtime_post(struct ar_runtime *runtime,
							uint32_t to_index,
							const struct ar_msg *msg);

/* Core-thread API: call only from the thread that owns core. */
const struct ar_core_info *ar_core_info(const struct ar_core *core);
struct io_uring *ar_core_ring(struct ar_core *core);
struct ar_arena *ar_core_arena(struct ar_core *core);
struct ar_runtime *ar_core_runtime(struct ar_core *core);
/* An SQE for io; NULL only if the ring stays full after a submit. */
struct io_uring_sqe *ar_core_sqe(struct ar_core *core, struct ar_io *io);
/* -EAGAIN if the ring to core to_index is full (backpressure); -EINVAL for self. */
__attribute__((warn_unused_result)) int ar_core_send(struct ar_core *core, uint32_t to_index,
						     const struct ar_msg *msg);
/* Run fn(core, ctx) once, delay_ms from now; -AR_ELIMIT if AR_TIMERS_MAX are pending. */
__attribute__((warn_unused_result)) int ar_core_timer_add(struct ar_core *core, uint64_t delay_ms,
							  ar_timer_fn *fn, void *ctx);
uint64_t ar_core_now_ns(void);

#endif
