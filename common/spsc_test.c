/*
 * spsc_test.c - The core-to-core ring: order, bounds, and a multi-million
 * message stress between two threads that must lose and duplicate nothing
 * (also run under ThreadSanitizer by .ci/run).
 */
#include "common/limits.h"
#include "common/spsc.h"

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

static void noop_fn(struct ar_core *core, struct ar_msg *msg)
{
	(void)core;
	(void)msg;
}

static void test_fifo_and_bounds(void **state)
{
	struct ar_spsc *ring;
	struct ar_msg msg = { .fn = noop_fn };
	(void)state;

	assert_int_equal(ar_spsc_create(3, -1, &ring), -22);
	assert_int_equal(ar_spsc_create(AR_SPSC_CAPACITY_MAX * 2u, -1, &ring), -22);
	assert_int_equal(ar_spsc_create(8, -1, &ring), 0);
	assert_int_equal(ar_spsc_capacity(ring), 8);
	assert_true(ar_spsc_is_empty(ring));
	for (uint64_t i = 0; i < 8; i++) {
		msg.arg = i;
		assert_true(ar_spsc_push(ring, &msg));
	}
	msg.arg = 99;
	assert_false(ar_spsc_push(ring, &msg)); /* full: refused, not grown */
	for (uint64_t i = 0; i < 8; i++) {
		struct ar_msg out;
		assert_true(ar_spsc_pop(ring, &out));
		assert_int_equal(out.arg, i);
	}
	struct ar_msg out;
	assert_false(ar_spsc_pop(ring, &out));
	assert_true(ar_spsc_is_empty(ring));
	ar_spsc_destroy(ring);
}

struct stress {
	struct ar_spsc *ring;
	uint64_t count;
};

static void *stress_producer(void *arg)
{
	struct stress *s = arg;

	for (uint64_t i = 0; i < s->count; i++) {
		struct ar_msg msg = { .fn = noop_fn,
				      .arg = i,
				      .ptr = (void *)(uintptr_t)(i * 7 + 1),
				      .kind = (uint32_t)(i & 0xffff) };
		while (!ar_spsc_push(s->ring, &msg))
			sched_yield();
	}
	return NULL;
}

static uint64_t stress_messages(void)
{
	const char *env = getenv("ARGON_STRESS_MESSAGES");
	return env ? strtoull(env, NULL, 10) : 4000000;
}

static void test_two_thread_stress(void **state)
{
	struct stress s = { .count = stress_messages() };
	pthread_t producer;
	(void)state;

	/* A small ring wraps hundreds of thousands of times and is often full. */
	assert_int_equal(ar_spsc_create(64, -1, &s.ring), 0);
	assert_int_equal(pthread_create(&producer, NULL, stress_producer, &s), 0);
	uint64_t expected = 0;
	while (expected < s.count) {
		struct ar_msg msg;
		if (!ar_spsc_pop(s.ring, &msg)) {
			sched_yield();
			continue;
		}
		/* In order, each once: any loss or duplicate breaks the sequence. */
		if (msg.arg != expected)
			fail_msg("message %llu arrived where %llu was expected",
				 (unsigned long long)msg.arg, (unsigned long long)expected);
		assert_ptr_equal(msg.ptr, (void *)(uintptr_t)(expected * 7 + 1));
		assert_int_equal(msg.kind, (uint32_t)(expected & 0xffff));
		expected++;
	}
	assert_int_equal(pthread_join(producer, NULL), 0);
	struct ar_msg extra;
	assert_false(ar_spsc_pop(s.ring, &extra)); /* nothing duplicated at the end */
	print_message("spsc stress: %llu messages in order\n", (unsigned long long)expected);
	ar_spsc_destroy(s.ring);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo_and_bounds),
		cmocka_unit_test(test_two_thread_stress),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
