/*
 * runtime_test.c - Core threads are pinned (sched_getaffinity) and their arenas
 * sit on their NUMA node (get_mempolicy); millions of cross-core messages in
 * both directions arrive once each and in order, with backpressure when a ring
 * is full; timers fire in deadline order and never early; the timer table is
 * bounded.  Also run under ThreadSanitizer by .ci/run.
 */
#include "common/arena.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/runtime.h"

#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

enum { CORES = 2 };

static struct ar_runtime_params params_with(struct ar_core_hooks hooks)
{
	return (struct ar_runtime_params){
		.core_count = CORES,
		.uring_depth_entries = 64,
		.ring_capacity_messages = 256,
		.arena_bytes = 4u << 20,
		.hooks = hooks,
	};
}

/* ---- pinning and NUMA placement ---- */

struct placement {
	int affinity_cpu_count[CORES];
	int affinity_cpu[CORES];
	int arena_node[CORES];
	int expected_node[CORES];
};

static int placement_start(struct ar_core *core, void *ctx)
{
	struct placement *p = ctx;
	const struct ar_core_info *info = ar_core_info(core);
	cpu_set_t set;

	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	p->affinity_cpu_count[info->index] = CPU_COUNT(&set);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set))
			p->affinity_cpu[info->index] = cpu;
	char *mem = ar_arena_alloc(ar_core_arena(core), 1u << 20, 4096);
	assert_non_null(mem);
	memset(mem, 0xab, 1u << 20); /* touch, so the pages exist */
	int node = -1;
	assert_int_equal(get_mempolicy(&node, NULL, 0, mem, MPOL_F_NODE | MPOL_F_ADDR), 0);
	p->arena_node[info->index] = node;
	p->expected_node[info->index] = info->numa_node;
	return 0;
}

static void test_cores_pinned_and_local(void **state)
{
	struct placement p;
	struct ar_runtime *rt;
	(void)state;

	memset(&p, 0, sizeof(p));
	struct ar_runtime_params params =
	    params_with((struct ar_core_hooks){ .start = placement_start, .ctx = &p });
	assert_int_equal(ar_runtime_start(&params, &rt), 0);
	for (uint32_t i = 0; i < CORES; i++) {
		const struct ar_core_info *info = ar_runtime_core_info(rt, i);
		assert_int_equal(p.affinity_cpu_count[i], 1); /* pinned to exactly one CPU */
		assert_int_equal(p.affinity_cpu[i], info->cpu);
		assert_int_equal(p.arena_node[i], p.expected_node[i]);
		print_message("core %u: cpu %d, arena on node %d\n", i, info->cpu, p.arena_node[i]);
	}
	ar_runtime_stop(rt);
	ar_runtime_destroy(rt);
}

/* ---- cross-core messages ---- */

struct traffic {
	uint64_t count;           /* per direction */
	uint64_t sent[CORES];     /* written by the sending core only */
	uint64_t received[CORES]; /* indexed by receiver, written by it only */
	uint64_t backpressure[CORES];
	_Atomic uint32_t done; /* receivers that got everything */
	_Atomic uint32_t errors;
};

static struct traffic *traffic;

static void traffic_receive(struct ar_core *core, struct ar_msg *msg)
{
	uint32_t me = ar_core_info(core)->index;

	if (msg->arg != traffic->received[me] || msg->from_core_index == me ||
	    msg->ptr != (void *)(uintptr_t)(msg->arg ^ 0x5a5a))
		atomic_fetch_add(&traffic->errors, 1);
	traffic->received[me]++;
	if (traffic->received[me] == traffic->count)
		atomic_fetch_add(&traffic->done, 1);
}

static void traffic_send(struct ar_core *core, void *ctx)
{
	uint32_t me = ar_core_info(core)->index;
	uint32_t peer = (me + 1) % CORES;
	(void)ctx;

	for (int burst = 0; burst < 4096 && traffic->sent[me] < traffic->count; burst++) {
		struct ar_msg msg = { .fn = traffic_receive,
				      .arg = traffic->sent[me],
				      .ptr = (void *)(uintptr_t)(traffic->sent[me] ^ 0x5a5a) };
		int rc = ar_core_send(core, peer, &msg);
		if (rc == -EAGAIN) {
			traffic->backpressure[me]++;
			break;
		}
		assert_int_equal(rc, 0);
		traffic->sent[me]++;
	}
	if (traffic->sent[me] < traffic->count)
		assert_int_equal(ar_core_timer_add(core, 0, traffic_send, NULL), 0);
}

static int traffic_start(struct ar_core *core, void *ctx)
{
	(void)ctx;
	struct ar_msg self = { .fn = traffic_receive };
	assert_int_equal(ar_core_send(core, ar_core_info(core)->index, &self), -EINVAL);
	return ar_core_timer_add(core, 0, traffic_send, NULL);
}

static void test_cross_core_messages(void **state)
{
	struct ar_runtime *rt;
	struct traffic t;
	(void)state;

	memset(&t, 0, sizeof(t));
	const char *env = getenv("ARGON_STRESS_MESSAGES");
	t.count = env ? strtoull(env, NULL, 10) : 2000000;
	traffic = &t;
	struct ar_runtime_params params =
	    params_with((struct ar_core_hooks){ .start = traffic_start });
	assert_int_equal(ar_runtime_start(&params, &rt), 0);
	while (atomic_load(&t.done) < CORES)
		usleep(1000);
	ar_runtime_stop(rt); /* joins: the per-core counters are safe to read below */
	assert_int_equal(atomic_load(&t.errors), 0);
	for (int i = 0; i < CORES; i++) {
		assert_int_equal(t.received[i], t.count);
		assert_int_equal(t.sent[i], t.count);
		print_message("core %d: %llu messages received in order, %llu full-ring retries\n",
			      i, (unsigned long long)t.received[i],
			      (unsigned long long)t.backpressure[i]);
	}
	ar_runtime_destroy(rt);
}

/* ---- timers ---- */

struct timer_probe {
	int order[3];
	int fired;
	uint64_t started_ns;
	uint64_t fired_ns[3];
	int limit_result;
	_Atomic int finished;
};

static struct timer_probe *probe;

static void timer_fire(struct ar_core *core, void *ctx)
{
	int id = (int)(intptr_t)ctx;
	(void)core;
	probe->fired_ns[id] = ar_core_now_ns();
	probe->order[probe->fired++] = id;
	if (probe->fired == 3)
		atomic_store(&probe->finished, 1);
}

static void timer_noop(struct ar_core *core, void *ctx)
{
	(void)core;
	(void)ctx;
}

static int timer_start(struct ar_core *core, void *ctx)
{
	(void)ctx;
	if (ar_core_info(core)->index != 0)
		return 0;
	probe->started_ns = ar_core_now_ns();
	assert_int_equal(ar_core_timer_add(core, 60, timer_fire, (void *)(intptr_t)2), 0);
	assert_int_equal(ar_core_timer_add(core, 20, timer_fire, (void *)(intptr_t)0), 0);
	assert_int_equal(ar_core_timer_add(core, 40, timer_fire, (void *)(intptr_t)1), 0);
	return 0;
}

static int timer_limit_start(struct ar_core *core, void *ctx)
{
	(void)ctx;
	if (ar_core_info(core)->index != 0)
		return 0;
	for (int i = 0; i < AR_TIMERS_MAX; i++)
		assert_int_equal(ar_core_timer_add(core, 100000, timer_noop, NULL), 0);
	probe->limit_result = ar_core_timer_add(core, 1, timer_noop, NULL);
	return 0;
}

static void test_timers(void **state)
{
	struct ar_runtime *rt;
	struct timer_probe p;
	(void)state;

	memset(&p, 0, sizeof(p));
	probe = &p;
	struct ar_runtime_params params =
	    params_with((struct ar_core_hooks){ .start = timer_start });
	assert_int_equal(ar_runtime_start(&params, &rt), 0);
	while (!atomic_load(&p.finished))
		usleep(1000);
	ar_runtime_stop(rt);
	ar_runtime_destroy(rt);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(p.order[i], i);
		/* never early */
		assert_true(p.fired_ns[i] - p.started_ns >= (uint64_t)(i + 1) * 20 * 1000000ull);
	}

	params = params_with((struct ar_core_hooks){ .start = timer_limit_start });
	assert_int_equal(ar_runtime_start(&params, &rt), 0);
	ar_runtime_stop(rt);
	ar_runtime_destroy(rt);
	assert_int_equal(p.limit_result, -AR_ELIMIT);
}

/* ---- a failing start hook fails the whole start ---- */

/* ---- posts from threads that are not cores ---- */

struct posts {
	uint64_t received[CORES]; /* written by the receiving core only */
	uint64_t next[CORES];     /* the arg expected next from poster i (in order) */
	_Atomic uint32_t errors;
	_Atomic uint64_t total;
};

static struct posts *posts;

static void post_receive(struct ar_core *core, struct ar_msg *msg)
{
	uint32_t me = ar_core_info(core)->index;
	uint32_t poster = (uint32_t)(msg->arg >> 32);
	if (poster != me || (msg->arg & 0xffffffffu) != posts->next[me] ||
	    msg->from_core_index != UINT32_MAX)
		atomic_fetch_add(&posts->errors, 1);
	posts->next[me]++;
	posts->received[me]++;
	atomic_fetch_add(&posts->total, 1);
}

struct poster {
	struct ar_runtime *rt;
	uint32_t to;
	uint64_t count;
	uint64_t backpressure;
};

static void *poster_main(void *arg)
{
	struct poster *p = arg;
	for (uint64_t i = 0; i < p->count;) {
		struct ar_msg msg = { .fn = post_receive, .arg = (uint64_t)p->to << 32 | i };
		int rc = ar_runtime_post(p->rt, p->to, &msg);
		if (rc == -EAGAIN) {
			p->backpressure++;
			usleep(10);
			continue;
		}
		assert_int_equal(rc, 0);
		i++;
	}
	return NULL;
}

/* Two plain threads post 200,000 messages each to a core, in order, through
 * the bounded external inbox; every one arrives once, in order, on that core. */
static void test_posts_from_other_threads(void **state)
{
	struct ar_runtime *rt;
	pthread_t threads[CORES];
	struct poster p[CORES];
	(void)state;

	posts = calloc(1, sizeof(*posts));
	struct ar_runtime_params params = params_with((struct ar_core_hooks){ 0 });
	assert_int_equal(ar_runtime_start(&params, &rt), 0);
	for (uint32_t i = 0; i < CORES; i++) {
		p[i] = (struct poster){ .rt = rt, .to = i, .count = 200000 };
		assert_int_equal(pthread_create(&threads[i], NULL, poster_main, &p[i]), 0);
	}
	for (uint32_t i = 0; i < CORES; i++)
		pthread_join(threads[i], NULL);
	for (int i = 0; i < 10000 && atomic_load(&posts->total) < CORES * 200000ull; i++)
		usleep(1000);
	struct ar_msg bad = { .fn = post_receive };
	assert_int_equal(ar_runtime_post(rt, CORES, &bad), -EINVAL);
	ar_runtime_stop(rt);
	assert_int_equal(atomic_load(&posts->total), CORES * 200000ull);
	assert_int_equal(atomic_load(&posts->errors), 0);
	print_message("posts: %llu delivered, backpressure %llu/%llu\n",
		      (unsigned long long)atomic_load(&posts->total),
		      (unsigned long long)p[0].backpressure, (unsigned long long)p[1].backpressure);
	ar_runtime_destroy(rt);
	free(posts);
}

static int failing_start(struct ar_core *core, void *ctx)
{
	(void)ctx;
	return ar_core_info(core)->index == 1 ? -EADDRINUSE : 0;
}

static void test_start_failure(void **state)
{
	struct ar_runtime *rt = NULL;
	(void)state;

	struct ar_runtime_params params =
	    params_with((struct ar_core_hooks){ .start = failing_start });
	assert_int_equal(ar_runtime_start(&params, &rt), -EADDRINUSE);
	assert_null(rt);
	params.core_count = 0;
	assert_int_equal(ar_runtime_start(&params, &rt), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cores_pinned_and_local),
		cmocka_unit_test(test_cross_core_messages),
		cmocka_unit_test(test_timers),
		cmocka_unit_test(test_posts_from_other_threads),
		cmocka_unit_test(test_start_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
