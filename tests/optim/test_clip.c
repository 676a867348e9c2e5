/* test_clip.c — global gradient norm and clipping: values, triggers, non-finite gradients,
 * determinism across runs and thread counts, and zeroing. */
#include "optest.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Gradients [3, 4] and [12]: norm √(9 + 16 + 144) = 13 exactly. */
static void test_norm_by_hand(void **state) {
    (void)state;
    float a[2] = {0}, ag[2] = {3, 4}, b[1] = {0}, bg[1] = {12};
    opt_param ps[2] = {{"a", a, ag, 2, true}, {"b", b, bg, 1, false}};
    assert_true(opt_grad_norm(ps, 2) == 13.0);
    assert_true(opt_grad_norm(ps, 1) == 5.0);
    assert_true(opt_grad_norm(ps, 0) == 0.0);
    opt_param skip[2] = {{"a", a, ag, 2, true}, {"frozen", b, NULL, 1, false}};
    assert_true(opt_grad_norm(skip, 2) == 5.0);
    /* Squares of 1e30 overflow float but not the double accumulator: √(4·1e60) = 2e30. */
    float big[4] = {1e30f, -1e30f, 1e30f, -1e30f};
    opt_param pb[1] = {{"big", big, big, 4, true}};
    assert_close(opt_grad_norm(pb, 1), 2.0 * (double)1e30f, 0, 1e-15);
}

/* Norm 13 > max 6.5: grads scale by 6.5/(13 + 1e-6) = 0.4999999615:
 * [3, 4, 12] → [1.4999998846, 1.9999998462, 5.9999995385], new norm 6.4999995. */
static void test_clip_triggers(void **state) {
    (void)state;
    float a[2] = {0}, ag[2] = {3, 4}, b[1] = {0}, bg[1] = {12};
    opt_param ps[2] = {{"a", a, ag, 2, true}, {"b", b, bg, 1, false}};
    assert_true(opt_clip_grad_norm(ps, 2, 6.5) == 13.0);
    assert_close(ag[0], 1.4999998846, 0, 1e-7);
    assert_close(ag[1], 1.9999998462, 0, 1e-7);
    assert_close(bg[0], 5.9999995385, 0, 1e-7);
    assert_close(opt_grad_norm(ps, 2), 6.4999995, 0, 1e-7);
    assert_true(a[0] == 0.0f && b[0] == 0.0f); /* parameters untouched */
}

/* The 1e-6 in the denominator matters for tiny norms: [3e-6, 4e-6] has norm 5e-6; with max 2.5e-6
 * the factor is 2.5e-6/(5e-6 + 1e-6) = 5/12, not 1/2: [1.25e-6, 1.6666667e-6]. */
static void test_clip_epsilon(void **state) {
    (void)state;
    float a[2] = {0}, ag[2] = {3e-6f, 4e-6f};
    opt_param ps[1] = {{"a", a, ag, 2, true}};
    assert_close(opt_clip_grad_norm(ps, 1, 2.5e-6), 5e-6, 0, 1e-7);
    assert_close(ag[0], 1.25e-6, 0, 1e-6);
    assert_close(ag[1], 1.6666667e-6, 0, 1e-6);
}

static void test_clip_does_not_trigger(void **state) {
    (void)state;
    float a[2] = {0}, ag[2] = {3, 4}, b[1] = {0}, bg[1] = {12};
    opt_param ps[2] = {{"a", a, ag, 2, true}, {"b", b, bg, 1, false}};
    const double max_norms[4] = {13.0 /* equal is not above */, 20.0, 0.0 /* off */, -1.0};
    for (int i = 0; i < 4; i++) {
        assert_true(opt_clip_grad_norm(ps, 2, max_norms[i]) == 13.0);
        assert_true(ag[0] == 3.0f && ag[1] == 4.0f && bg[0] == 12.0f);
    }
}

/* One NaN makes the norm NaN; clipping then returns NaN and leaves every gradient as it was.
 * An infinite gradient gives +Inf, with the same behaviour. */
static void test_non_finite(void **state) {
    (void)state;
    float a[2] = {0}, ag[2] = {3, 4}, b[3] = {0}, bg[3] = {1, NAN, 2};
    opt_param ps[2] = {{"a", a, ag, 2, true}, {"b", b, bg, 3, false}};
    assert_true(isnan(opt_grad_norm(ps, 2)));
    assert_true(isnan(opt_clip_grad_norm(ps, 2, 1.0)));
    assert_true(ag[0] == 3.0f && ag[1] == 4.0f && bg[0] == 1.0f && bg[2] == 2.0f);
    bg[1] = INFINITY;
    double n = opt_clip_grad_norm(ps, 2, 1.0);
    assert_true(isinf(n) && n > 0);
    assert_true(ag[0] == 3.0f && ag[1] == 4.0f && bg[0] == 1.0f && bg[2] == 2.0f);
    bg[0] = -INFINITY; /* Inf and NaN together: NaN */
    bg[2] = NAN;
    assert_true(isnan(opt_grad_norm(ps, 2)));
}

/* Several parameters, odd sizes, more than one batch of chunks (> 256·4096 elements): the norm is
 * bit-identical over repeated calls and on 1, 2 and 3 threads, and agrees with a long double sum.
 */
static void test_norm_deterministic(void **state) {
    (void)state;
    const size_t sizes[4] = {7, 1100000, 12345, 4096};
    opt_param ps[4];
    long double ref = 0;
    uint64_t s = 11;
    for (int p = 0; p < 4; p++) {
        float *g = malloc(sizes[p] * sizeof *g);
        for (size_t i = 0; i < sizes[p]; i++) {
            g[i] = (float)tu_uniform(&s, -2, 2);
            ref += (long double)g[i] * g[i];
        }
        ps[p] = (opt_param){"p", NULL, g, sizes[p], true};
    }
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    double n1 = opt_grad_norm(ps, 4);
    for (int threads = 1; threads <= 3; threads++) {
        omp_set_num_threads(threads);
        for (int rep = 0; rep < 3; rep++) {
            double n = opt_grad_norm(ps, 4);
            if (memcmp(&n, &n1, sizeof n) != 0) {
                print_error("threads %d rep %d: norm %.17g differs from %.17g\n", threads, rep, n,
                            n1);
                fail();
            }
        }
    }
    omp_set_num_threads(saved);
    assert_close(n1, sqrtl(ref), 0, 1e-13);
    for (int p = 0; p < 4; p++)
        free(ps[p].grad);
}

/* Clipping a large tensor (parallel path) scales every element by the same factor. */
static void test_clip_large(void **state) {
    (void)state;
    enum { N = 50000 };
    float *g = malloc(N * sizeof *g);
    for (size_t i = 0; i < N; i++)
        g[i] = 2.0f; /* norm 2·√50000 = 447.2135955 */
    opt_param ps[1] = {{"w", NULL, g, N, true}};
    assert_close(opt_clip_grad_norm(ps, 1, 1.0), 447.2135955, 0, 1e-9);
    float want = (float)(1.0 / (447.21359549995793 + 1e-6)) * 2.0f;
    for (size_t i = 0; i < N; i++)
        if (g[i] != want) {
            print_error("g[%zu] = %.9g, expected %.9g\n", i, g[i], want);
            fail();
        }
    assert_close(opt_grad_norm(ps, 1), 1.0, 0, 1e-6);
    free(g);
}

static void test_zero_grad(void **state) {
    (void)state;
    enum { N = 70000 };
    float *g = malloc(N * sizeof *g), small[3] = {1, 2, 3};
    for (size_t i = 0; i < N; i++)
        g[i] = 1.0f;
    opt_param ps[3] = {{"big", NULL, g, N, true},
                       {"small", NULL, small, 3, true},
                       {"frozen", NULL, NULL, 5, true}};
    opt_zero_grad(ps, 3);
    for (size_t i = 0; i < N; i++)
        assert_true(g[i] == 0.0f);
    assert_true(small[0] == 0.0f && small[1] == 0.0f && small[2] == 0.0f);
    assert_true(opt_grad_norm(ps, 3) == 0.0);
    opt_zero_grad(NULL, 0);
    free(g);
}

int optt_run_clip(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norm_by_hand), cmocka_unit_test(test_clip_triggers),
        cmocka_unit_test(test_clip_epsilon), cmocka_unit_test(test_clip_does_not_trigger),
        cmocka_unit_test(test_non_finite),   cmocka_unit_test(test_norm_deterministic),
        cmocka_unit_test(test_clip_large),   cmocka_unit_test(test_zero_grad),
    };
    return cmocka_run_group_tests_name("optim_clip", tests, NULL, NULL);
}
