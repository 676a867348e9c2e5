/* test_fastmath.c — the vectorizable float exp and tanh of autograd/ops/fastmath.h, measured
 * against libm in double over dense ranges, tiny arguments and the special values. */
#include "agtest.h"

#include "autograd/ops/fastmath.h"

/* Error of a float result in units of the float spacing at the exact value. */
static double ulps(float got, double want) {
    double a = fabs(want);
    double u = a < 0x1p-126 ? 0x1p-149 : ldexp(1.0, ilogb(a) - 23);
    return fabs((double)got - want) / u;
}

static void test_fastmath_expf(void **state) {
    (void)state;
    double worst = 0;
    const int n = 400000;
    for (int i = 0; i <= n; i++) {
        float x = (float)(-87.0 + 175.0 * i / n);
        worst = fmax(worst, ulps(ag_expf_fast(x), exp((double)x)));
    }
    for (int i = 0; i <= 20000; i++) { /* near 0, both signs, down to subnormal arguments */
        float x = (float)ldexp(1.0, -149 + (int)(i % 150)) * (float)(1.0 + (i / 150) * 1e-3);
        worst = fmax(worst, ulps(ag_expf_fast(x), exp((double)x)));
        worst = fmax(worst, ulps(ag_expf_fast(-x), exp(-(double)x)));
    }
    print_message("    ag_expf_fast: max error %.3f ulp on [-87, 88]\n", worst);
    assert_true(worst < 1.0);
    assert_true(ag_expf_fast(0.0f) == 1.0f);
    assert_true(isnan(ag_expf_fast(NAN)));
    assert_true(ag_expf_fast(-INFINITY) > 0 && ag_expf_fast(-INFINITY) < 2e-38f);
    assert_true(isfinite(ag_expf_fast(INFINITY)) && ag_expf_fast(INFINITY) > 2e38f);
}

static void test_fastmath_tanhf(void **state) {
    (void)state;
    double worst = 0, worst_rel = 0;
    const int n = 400000;
    for (int i = 0; i <= n; i++) {
        float x = (float)(-12.0 + 24.0 * i / n);
        double want = tanh((double)x);
        float got = ag_tanhf_fast(x);
        worst = fmax(worst, ulps(got, want));
        if (want != 0)
            worst_rel = fmax(worst_rel, fabs(got - want) / fabs(want));
    }
    /* Tiny |x| (where 1 − 2/(e^{2x}+1) cancels), log-spaced from subnormals to 1, both signs. */
    for (int i = 0; i <= 30000; i++) {
        double m = pow(10.0, -44.0 + 44.0 * i / 30000);
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            float x = (float)(sgn * m);
            if (x == 0)
                continue;
            double want = tanh((double)x);
            float got = ag_tanhf_fast(x);
            worst = fmax(worst, ulps(got, want));
            worst_rel = fmax(worst_rel, fabs(got - want) / fabs(want));
        }
    }
    print_message("    ag_tanhf_fast: max error %.3f ulp, max relative error %.3g\n", worst,
                  worst_rel);
    assert_true(worst < 2.0);
    assert_true(worst_rel < 2.5e-7);
    assert_true(ag_tanhf_fast(0.0f) == 0.0f && !signbit(ag_tanhf_fast(0.0f)));
    assert_true(ag_tanhf_fast(-0.0f) == 0.0f && signbit(ag_tanhf_fast(-0.0f)));
    assert_true(ag_tanhf_fast(20.0f) == 1.0f && ag_tanhf_fast(-20.0f) == -1.0f);
    assert_true(ag_tanhf_fast(INFINITY) == 1.0f && ag_tanhf_fast(-INFINITY) == -1.0f);
    assert_true(isnan(ag_tanhf_fast(NAN)));
}

int agt_run_fastmath(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fastmath_expf),
        cmocka_unit_test(test_fastmath_tanhf),
    };
    return cmocka_run_group_tests_name("autograd_fastmath", tests, NULL, NULL);
}
