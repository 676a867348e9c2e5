/* testutil.h — helpers shared by the cmocka test binaries (header-only, test code only). */
#ifndef QAT_TESTS_TESTUTIL_H
#define QAT_TESTS_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

/* cmocka 1.1.5 has no floating-point assert: this one names the value and both numbers. */
#define assert_close(a, b, atol, rtol)                                                             \
    assert_close_at(#a, (double)(a), (double)(b), (atol), (rtol), __FILE__, __LINE__)

static inline void assert_close_at(const char *what, double a, double b, double atol, double rtol,
                                   const char *file, int line) {
    double tol = atol + rtol * fmax(fabs(a), fabs(b));
    if (!(fabs(a - b) <= tol) && !(isnan(a) && isnan(b))) {
        print_error("%s = %.17g, expected %.17g (|diff| %.3g > tol %.3g)\n", what, a, b,
                    fabs(a - b), tol);
        _fail(file, line);
    }
}

/* Deterministic uniform values in [lo, hi) from a 64-bit state (splitmix64). */
static inline double tu_uniform(uint64_t *s, double lo, double hi) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * ((double)(z >> 11) / 9007199254740992.0);
}

#endif
