/*
 * runtime.c - Core threads: pinning, io_uring, arena, inbound rings, timers,
 * and the core loop.
 *
 * Core loop (the only unbounded loop of a core; it ends on a stop request):
 *
 *   timers due -> inbound messages -> submit + wait (until a CQE, the next
 *   timer, or a wake-up) -> completions in a batch -> again
 *
 * Wake-ups: a core about to sleep sets `sleeping`, re-checks its inbound rings,
 * then waits in io_uring_enter with an eventfd read armed.  A sender pushes,
 * then reads `sleeping` and writes the eventfd only if the target sleeps.  Both
 * sides put a seq_cst fence between their store and their load (Dekker), so a
 * message is never left unseen while its core sleeps.
 *
 * Depends on: arena (NUMA memory), spsc (rings), liburing, log.
 */
#include "common/runtime.h"

#include "common/arena.h"
#include "common/assert.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/uring.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum { CQE_BATCH = 64, INBOUND_BATCH = 64 };

struct core_timer {
	uint64_t deadline_ns;
	uint64_t seq; /* ties broken by insertion order */
	ar_timer_fn *fn;
	void *ctx;
};

struct ar_core {
	struct ar_core_info info;
	struct ar_runtime *runtime;
	pthread_t thread;
	bool thread_started;
	struct io_uring ring;
	bool ring_ready;
	struct ar_arena *arena;
	struct ar_spsc **inbound; /* inbound[from]; NULL for self */
	int wake_fd;
	uint64_t wake_value;
	struct ar_io wake_io;
	_Atomic bool stop_requested;
	_Atomic int sleeping;
	/* Messages from threads that are not cores (ar_runtime_post): a bounded
	 * array under a mutex, looked at only when ext_pending says so. */
	pthread_mutex_t ext_mu;
	struct ar_msg *ext; /* ring_capacity_messages entries */
	uint32_t ext_count; /* under ext_mu */
	_Atomic bool ext_pending;
	bool ext_mu_ready;
	struct core_timer timers[AR_TIMERS_MAX];
	uint32_t timer_count;
	uint64_t timer_seq;
	int start_result;
};

struct ar_runtime {
	struct ar_runtime_params params;
	struct ar_core *cores;
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	uint32_t started_count; /* under start_lock */
	bool stopped;
};

uint64_t ar_core_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- timers: a binary min-heap on (deadline, seq) ---- */

static bool timer_before(const struct core_timer *a, const struct core_timer *b)
{
	if (a->deadline_ns != b->deadline_ns)
		return a->deadline_ns < b->deadline_ns;
	return a->seq < b->seq;
}

static void timer_swap(struct core_timer *a, struct core_timer *b)
{
	struct core_timer t = *a;
	*a = *b;
	*b = t;
}

int ar_core_timer_add(struct ar_core *core, uint64_t delay_ms, ar_timer_fn *fn, void *ctx)
{
	AR_ASSERT(fn != NULL);
	if (core->timer_count == AR_TIMERS_MAX)
		return -AR_ELIMIT;
	uint32_t i = core->timer_count++;
	core->timers[i] = (struct core_timer){
		.deadline_ns = ar_core_now_ns() + delay_ms * 1000000ull,
		.seq = core->timer_seq++,
		.fn = fn,
		.ctx = ctx,
	};
	while (i > 0 && timer_before(&core->timers[i], &core->timers[(i - 1) / 2])) {
		timer_swap(&core->timers[i], &core->timers[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	return 0;
}

static struct core_timer timer_pop(struct ar_core *core)
{
	AR_ASSERT(core->timer_count > 0);
	struct core_timer top = core->timers[0];
	core->timers[0] = core->timers[--core->timer_count];
	uint32_t i = 0;
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < core->timer_count && timer_before(&core->timers[l], &core->timers[m]))
			m = l;
		if (r < core->timer_count && timer_before(&core->timers[r], &core->timers[m]))
			m = r;
		if (m == i)
			break;
		timer_swap(&core->timers[i], &core->timers[m]);
		i = m;
	}
	return top;
}

static void core_run_timers(struct ar_core *core)
{
	uint64_t now = ar_core_now_ns();

	/* Bounded: a timer added by a callback is due at the earliest now + 0 and runs
	 * in this pass only if its deadline has passed; at most AR_TIMERS_MAX run. */
	for (uint32_t n = 0; n < AR_TIMERS_MAX && core->timer_count > 0; n++) {
		if (core->timers[0].deadline_ns > now)
			break;
		struct core_timer t = timer_pop(core);
		t.fn(core, t.ctx);
	}
}

/* ---- messages ---- */

int ar_core_send(struct ar_core *core, uint32_t to_index, const struct ar_msg *msg)
{
	struct ar_runtime *rt = core->runtime;

	AR_ASSERT(msg->fn != NULL);
	if (to_index >= rt->params.core_count || to_index == core->info.index)
		return -EINVAL;
	struct ar_core *target = &rt->cores[to_index];
	struct ar_msg copy = *msg;
	copy.from_core_index = core->info.index;
	if (!ar_spsc_push(target->inbound[core->info.index], &copy))
		return -EAGAIN;
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&target->sleeping, memory_order_relaxed)) {
		uint64_t one = 1;
		ssize_t n = write(target->wake_fd, &one, sizeof(one));
		AR_ASSERT(n == sizeof(one)); /* an eventfd below its maximum never refuses */
	}
	return 0;
}

int ar_runtime_post(struct ar_runtime *rt, uint32_t to_index, const struct ar_msg *msg)
{
	AR_ASSERT(msg->fn != NULL);
	if (to_index >= rt->params.core_count)
		return -EINVAL;
	struct ar_core *target = &rt->cores[to_index];
	if (atomic_load(&target->stop_requested))
		return -ESHUTDOWN;
	pthread_mutex_lock(&target->ext_mu);
	if (target->ext_count == rt->params.ring_capacity_messages) {
		pthread_mutex_unlock(&target->ext_mu);
		return -EAGAIN;
	}
	target->ext[target->ext_count] = *msg;
	target->ext[target->ext_count].from_core_index = UINT32_MAX;
	target->ext_count++;
	atomic_store(&target->ext_pending, true);
	pthread_mutex_unlock(&target->ext_mu);
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&target->sleeping, memory_order_relaxed)) {
		uint64_t one = 1;
		ssize_t n = write(target->wake_fd, &one, sizeof(one));
		AR_ASSERT(n == sizeof(one));
	}
	return 0;
}

/* Messages posted by other threads: at most INBOUND_BATCH a pass. */
static bool core_drain_external(struct ar_core *core)
{
	struct ar_msg batch[INBOUND_BATCH];
	if (!atomic_load(&core->ext_pending))
		return false;
	pthread_mutex_lock(&core->ext_mu);
	uint32_t n = core->ext_count < INBOUND_BATCH ? core->ext_count : INBOUND_BATCH;
	memcpy(batch, core->ext, n * sizeof(*batch));
	memmove(core->ext, core->ext + n, (core->ext_count - n) * sizeof(*batch));
	core->ext_count -= n;
	bool more = core->ext_count > 0;
	atomic_store(&core->ext_pending, more);
	pthread_mutex_unlock(&core->ext_mu);
	for (uint32_t i = 0; i < n; i++)
		batch[i].fn(core, &batch[i]);
	return more;
}

/* True if any message is waiting; runs at most INBOUND_BATCH per ring. */
static bool core_drain_inbound(struct ar_core *core)
{
	bool more = core_drain_external(core);

	for (uint32_t from = 0; from < core->runtime->params.core_count; from++) {
		struct ar_spsc *ring = core->inbound[from];
		struct ar_msg msg;
		uint32_t n = 0;

		if (!ring)
			continue;
		while (n < INBOUND_BATCH && ar_spsc_pop(ring, &msg)) {
			msg.fn(core, &msg);
			n++;
		}
		if (n == INBOUND_BATCH)
			more = true;
	}
	return more;
}

static bool core_inbound_pending(struct ar_core *core)
{
	if (atomic_load(&core->ext_pending))
		return true;
	for (uint32_t from = 0; from < core->runtime->params.core_count; from++)
		if (core->inbound[from] && !ar_spsc_is_empty(core->inbound[from]))
			return true;
	return false;
}

/* ---- io ---- */

struct io_uring_sqe *ar_core_sqe(struct ar_core *core, struct ar_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&core->ring);

	if (!sqe) {
		io_uring_submit(&core->ring);
		sqe = io_uring_get_sqe(&core->ring);
		if (!sqe)
			return NULL;
	}
	io_uring_sqe_set_data(sqe, io);
	return sqe;
}

static void core_wake_arm(struct ar_core *core);

static void core_wake_done(struct ar_core *core, struct ar_io *io, int result)
{
	(void)io;
	if (result < 0 && result != -ECANCELED)
		AR_LOG(WARNING, "runtime", "core %u: wake-up read failed: %s", core->info.index,
		       ar_strerror(result));
	if (!atomic_load(&core->stop_requested))
		core_wake_arm(core);
}

static void core_wake_arm(struct ar_core *core)
{
	core->wake_io.done = core_wake_done;
	struct io_uring_sqe *sqe = ar_core_sqe(core, &core->wake_io);
	AR_ASSERT(sqe != NULL); /* the ring has room after a submit: the depth is >= 8 */
	io_uring_prep_read(sqe, core->wake_fd, &core->wake_value, sizeof(core->wake_value), 0);
}

static void core_reap(struct ar_core *core)
{
	struct io_uring_cqe *cqes[CQE_BATCH];
	struct {
		struct ar_io *io;
		int res;
	} done[CQE_BATCH];

	unsigned n = io_uring_peek_batch_cqe(&core->ring, cqes, CQE_BATCH);
	for (unsigned i = 0; i < n; i++) {
		done[i].io = io_uring_cqe_get_data(cqes[i]);
		done[i].res = cqes[i]->res;
	}
	io_uring_cq_advance(&core->ring, n);
	for (unsigned i = 0; i < n; i++)
		if (done[i].io)
			done[i].io->done(core, done[i].io, done[i].res);
}

static void core_loop(struct ar_core *core)
{
	/* Unbounded by design: the core serves until asked to stop. */
	while (!atomic_load(&core->stop_requested)) {
		core_run_timers(core);
		bool busy = core_drain_inbound(core);

		struct __kernel_timespec ts, *tsp = NULL;
		if (core->timer_count > 0) {
			uint64_t now = ar_core_now_ns(), at = core->timers[0].deadline_ns;
			uint64_t wait = at > now ? at - now : 0;
			ts.tv_sec = (long long)(wait / 1000000000ull);
			ts.tv_nsec = (long long)(wait % 1000000000ull);
			tsp = &ts;
			busy = busy || wait == 0;
		}
		atomic_store(&core->sleeping, 1);
		atomic_thread_fence(memory_order_seq_cst);
		if (busy || core_inbound_pending(core) || atomic_load(&core->stop_requested)) {
			atomic_store(&core->sleeping, 0);
			io_uring_submit(&core->ring);
		} else {
			struct io_uring_cqe *cqe;
			int rc = io_uring_submit_and_wait_timeout(&core->ring, &cqe, 1, tsp, NULL);
			atomic_store(&core->sleeping, 0);
			if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
				AR_LOG(WARNING, "runtime", "core %u: io_uring wait failed: %s",
				       core->info.index, ar_strerror(rc));
		}
		core_reap(core);
	}
}

/* ---- core thread ---- */

static int core_pin(struct ar_core *core)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(core->info.cpu, &set);
	return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static int core_ring_init(struct ar_core *core)
{
	struct io_uring_params p;
	uint32_t depth = core->runtime->params.uring_depth_entries;

	/* Single issuer and cooperative task running fit a ring used by one thread; older
	 * kernels refuse the flags, so fall back to a plain ring. */
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
	int rc = ar_uring_init(depth, &core->ring, &p);
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof(p));
		rc = ar_uring_init(depth, &core->ring, &p);
	} else if (rc == 0) {
		core->info.uring_single_issuer = true;
	}
	if (rc < 0)
		return rc;
	core->ring_ready = true;
	return 0;
}

static int core_setup(struct ar_core *core)
{
	struct ar_runtime *rt = core->runtime;
	int rc = core_pin(core);

	if (rc < 0) {
		AR_LOG(ERROR, "runtime", "could not pin core %u to CPU %d: %s", core->info.index,
		       core->info.cpu, ar_strerror(rc));
		return rc;
	}
	rc = core_ring_init(core);
	if (rc < 0) {
		AR_LOG(ERROR, "runtime", "could not create the io_uring of core %u: %s",
		       core->info.index, ar_strerror(rc));
		return rc;
	}
	/* Created after pinning, so the arena's pages are first touched on its node. */
	rc = ar_arena_create(rt->params.arena_bytes, core->info.numa_node, &core->arena);
	if (rc < 0) {
		AR_LOG(ERROR, "runtime", "could not allocate the %llu-byte arena of core %u: %s",
		       (unsigned long long)rt->params.arena_bytes, core->info.index,
		       ar_strerror(rc));
		return rc;
	}
	core_wake_arm(core);
	if (rt->params.hooks.start)
		return rt->params.hooks.start(core, rt->params.hooks.ctx);
	return 0;
}

static void *core_main(void *arg)
{
	struct ar_core *core = arg;
	struct ar_runtime *rt = core->runtime;
	int rc = core_setup(core);

	pthread_mutex_lock(&rt->start_lock);
	core->start_result = rc;
	rt->started_count++;
	pthread_cond_broadcast(&rt->start_cond);
	pthread_mutex_unlock(&rt->start_lock);

	if (rc == 0)
		core_loop(core);
	if (rc == 0 && rt->params.hooks.stop)
		rt->params.hooks.stop(core, rt->params.hooks.ctx);
	if (core->ring_ready) {
		ar_uring_exit(&core->ring); /* cancels what is still in flight */
		core->ring_ready = false;
	}
	return NULL;
}

/* The CPUs this process may run on, in order; core i runs on cpus[i % count]. */
static uint32_t allowed_cpus(int cpus[CPU_SETSIZE])
{
	cpu_set_t set;
	uint32_t count = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0) {
		cpus[0] = 0;
		return 1;
	}
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set))
			cpus[count++] = cpu;
	return count;
}

static int runtime_rings_create(struct ar_runtime *rt)
{
	uint32_t n = rt->params.core_count;

	for (uint32_t to = 0; to < n; to++) {
		struct ar_core *core = &rt->cores[to];
		core->inbound = calloc(n, sizeof(*core->inbound));
		if (!core->inbound)
			return -ENOMEM;
		for (uint32_t from = 0; from < n; from++) {
			if (from == to)
				continue;
			int rc = ar_spsc_create(rt->params.ring_capacity_messages,
						core->info.numa_node, &core->inbound[from]);
			if (rc < 0)
				return rc;
		}
		core->wake_fd = eventfd(0, EFD_CLOEXEC);
		if (core->wake_fd < 0)
			return -errno;
		core->ext = calloc(rt->params.ring_capacity_messages, sizeof(*core->ext));
		if (!core->ext)
			return -ENOMEM;
		pthread_mutex_init(&core->ext_mu, NULL);
		core->ext_mu_ready = true;
	}
	return 0;
}

static int runtime_params_check(const struct ar_runtime_params *p)
{
	if (p->core_count == 0 || p->core_count > AR_CORES_MAX)
		return -EINVAL;
	if (p->uring_depth_entries < AR_URING_DEPTH_MIN ||
	    p->uring_depth_entries > AR_URING_DEPTH_MAX)
		return -EINVAL;
	if (p->arena_bytes < AR_ARENA_BYTES_MIN || p->arena_bytes > AR_ARENA_BYTES_MAX)
		return -EINVAL;
	return 0;
}

int ar_runtime_start(const struct ar_runtime_params *params, struct ar_runtime **runtime_out)
{
	int cpus[CPU_SETSIZE];
	int rc = runtime_params_check(params);

	if (rc < 0)
		return rc;
	struct ar_runtime *rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	rt->params = *params;
	pthread_mutex_init(&rt->start_lock, NULL);
	pthread_cond_init(&rt->start_cond, NULL);
	rt->cores =
	    aligned_alloc(64, ((sizeof(struct ar_core) * params->core_count + 63) / 64) * 64);
	if (!rt->cores) {
		free(rt);
		return -ENOMEM;
	}
	memset(rt->cores, 0, sizeof(struct ar_core) * params->core_count);
	uint32_t cpu_count = allowed_cpus(cpus);
	for (uint32_t i = 0; i < params->core_count; i++) {
		struct ar_core *core = &rt->cores[i];
		core->runtime = rt;
		core->wake_fd = -1;
		core->info.index = i;
		core->info.cpu = cpus[i % cpu_count];
		core->info.numa_node = ar_numa_node_of_cpu(core->info.cpu);
		atomic_init(&core->stop_requested, false);
		atomic_init(&core->sleeping, 0);
	}
	rc = runtime_rings_create(rt);
	for (uint32_t i = 0; rc == 0 && i < params->core_count; i++) {
		rc = -pthread_create(&rt->cores[i].thread, NULL, core_main, &rt->cores[i]);
		if (rc == 0)
			rt->cores[i].thread_started = true;
	}
	/* Wait for every started core to report, then fail as a whole if any failed. */
	pthread_mutex_lock(&rt->start_lock);
	uint32_t started = 0;
	for (uint32_t i = 0; i < params->core_count; i++)
		started += rt->cores[i].thread_started;
	while (rt->started_count < started)
		pthread_cond_wait(&rt->start_cond, &rt->start_lock);
	pthread_mutex_unlock(&rt->start_lock);
	for (uint32_t i = 0; rc == 0 && i < params->core_count; i++)
		rc = rt->cores[i].start_result;
	if (rc < 0) {
		ar_runtime_stop(rt);
		ar_runtime_destroy(rt);
		return rc;
	}
	*runtime_out = rt;
	return 0;
}

void ar_runtime_stop(struct ar_runtime *rt)
{
	if (rt->stopped)
		return;
	rt->stopped = true;
	for (uint32_t i = 0; i < rt->params.core_count; i++) {
		struct ar_core *core = &rt->cores[i];
		atomic_store(&core->stop_requested, true);
		if (core->wake_fd >= 0) {
			uint64_t one = 1;
			ssize_t n = write(core->wake_fd, &one, sizeof(one));
			AR_ASSERT(n == sizeof(one));
		}
	}
	for (uint32_t i = 0; i < rt->params.core_count; i++)
		if (rt->cores[i].thread_started)
			pthread_join(rt->cores[i].thread, NULL);
}

void ar_runtime_destroy(struct ar_runtime *rt)
{
	if (!rt)
		return;
	AR_ASSERT(rt->stopped);
	for (uint32_t i = 0; i < rt->params.core_count; i++) {
		struct ar_core *core = &rt->cores[i];
		for (uint32_t from = 0; core->inbound && from < rt->params.core_count; from++)
			ar_spsc_destroy(core->inbound[from]);
		free(core->inbound);
		ar_arena_destroy(core->arena);
		if (core->wake_fd >= 0)
			close(core->wake_fd);
		free(core->ext);
		if (core->ext_mu_ready)
			pthread_mutex_destroy(&core->ext_mu);
	}
	pthread_cond_destroy(&rt->start_cond);
	pthread_mutex_destroy(&rt->start_lock);
	free(rt->cores);
	free(rt);
}

uint32_t ar_runtime_core_count(const struct ar_runtime *rt)
{
	return rt->params.core_count;
}

const struct ar_core_info *ar_runtime_core_info(const struct ar_runtime *rt, uint32_t index)
{
	AR_ASSERT(index < rt->params.core_count);
	return &rt->cores[index].info;
}

const struct ar_core_info *ar_core_info(const struct ar_core *core)
{
	return &core->info;
}

struct io_uring *ar_core_ring(struct ar_core *core)
{
	return &core->ring;
}

struct ar_arena *ar_core_arena(struct ar_core *core)
{
	return core->arena;
}

struct ar_runtime *ar_core_runtime(struct ar_core *core)
{
	return core->runtime;
}
