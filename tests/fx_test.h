/* Minimal test harness: CHECK macros that report file:line and keep going,
 * and FX_TEST_MAIN that returns non-zero if any check failed. Header-only,
 * used by every *_test.c. */
#ifndef FX_TEST_H
#define FX_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int fx_test_failures;
static int fx_test_checks;

#define CHECK(cond)                                                            \
	do {                                                                   \
		fx_test_checks++;                                              \
		if (!(cond)) {                                                 \
			fx_test_failures++;                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
			        __LINE__, #cond);                              \
		}                                                              \
	} while (0)

#define CHECK_MSG(cond, ...)                                                   \
	do {                                                                   \
		fx_test_checks++;                                              \
		if (!(cond)) {                                                 \
			fx_test_failures++;                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, \
			        __LINE__, #cond);                              \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
		}                                                              \
	} while (0)

#define CHECK_OK(expr) CHECK_MSG((expr) == 0, "returned non-zero")

#define CHECK_NEAR(a, b, tol)                                                  \
	CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%g vs %g (tol %g)", \
	          (double)(a), (double)(b), (double)(tol))

#define RUN(test_fn)                                                           \
	do {                                                                   \
		int before_ = fx_test_failures;                                \
		test_fn();                                                     \
		fprintf(stderr, "%s %s\n",                                     \
		        fx_test_failures == before_ ? "ok  " : "FAIL", #test_fn); \
	} while (0)

#define FX_TEST_REPORT()                                                       \
	(fprintf(stderr, "%d checks, %d failed\n", fx_test_checks,             \
	         fx_test_failures),                                            \
	 fx_test_failures ? 1 : 0)

#endif
