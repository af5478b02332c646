/*
 * assert.h - Argon's assertion tiers (style.md, item 5).
 *
 * AR_ASSERT is always on and cheap; on failure it logs file, line, expression
 * and a backtrace, then aborts.  AR_DEBUG_ASSERT is for whole-object checks and is
 * compiled only into debug and sanitizer builds.  Never assert on bytes that came
 * from disk or the network: those are errors and are returned as errors.
 */
#ifndef AR_COMMON_ASSERT_H
#define AR_COMMON_ASSERT_H

#include <assert.h> /* static_assert */

_Noreturn void ar_assert_fail(const char *expr, const char *file, int line);

#define AR_ASSERT(expr) \
	((expr) ? (void)0 : ar_assert_fail(#expr, __FILE__, __LINE__))

#ifdef AR_DEBUG_CHECKS
#define AR_DEBUG_ASSERT(expr) AR_ASSERT(expr)
#else
#define AR_DEBUG_ASSERT(expr) ((void)sizeof(expr))
#endif

#define AR_UNREACHABLE() ar_assert_fail("unreachable", __FILE__, __LINE__)

#endif
