/* test_schedule.c — each schedule at warm-up start, end of warm-up, quarter, middle and end, plus
 * the edge cases (no warm-up, warm-up covering the run, one-step runs). lr 6e-4, min_lr 6e-5. */
#include "optest.h"

#define LR 6e-4
#define MIN_LR 6e-5

/* warmup 10, total 111: warm-up is steps 0..9, the decay spans steps 10..110 (100 intervals).
 * Warm-up: step 0 → 6e-4·1/10 = 6e-5; step 4 → 6e-4·5/10 = 3e-4; step 9 → 6e-4.
 * Cosine weight w = (1 + cos(π·(step−10)/100))/2, lr = w·6e-4 + (1−w)·6e-5:
 *   step 10 → w 1 → 6e-4;  step 35 → w = (1 + √2/2)/2 = 0.8535533906 → 5.2091883092e-4;
 *   step 60 → w ½ → 3.3e-4;  step 110 → w 0 → 6e-5, and 6e-5 afterwards.
 * Linear weight w = 1 − (step−10)/100: step 35 → 0.75·6e-4 + 0.25·6e-5 = 4.65e-4; step 60 → 3.3e-4.
 */
static void test_cosine(void **state) {
    (void)state;
    const opt_schedule k = OPT_SCHED_COSINE;
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 0), 6e-5, 0, 1e-15);
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 4), 3e-4, 0, 1e-15);
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 9), 6e-4, 0, 1e-15);
    assert_true(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 10) == LR);
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 35), 5.2091883092e-4, 0, 1e-10);
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 60), 3.3e-4, 0, 1e-12);
    assert_true(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 110) == MIN_LR);
    assert_true(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 500) == MIN_LR);
    /* Never increases after warm-up and stays within [min_lr, lr]. */
    double prev = LR;
    for (int64_t s = 10; s < 111; s++) {
        double v = opt_schedule_lr(k, LR, MIN_LR, 10, 111, s);
        assert_true(v <= prev && v >= MIN_LR && v <= LR);
        prev = v;
    }
}

static void test_linear(void **state) {
    (void)state;
    const opt_schedule k = OPT_SCHED_LINEAR;
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 0), 6e-5, 0, 1e-15);
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 9), 6e-4, 0, 1e-15);
    assert_true(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 10) == LR);
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 35), 4.65e-4, 0, 1e-12);
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 60), 3.3e-4, 0, 1e-12);
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 109), 6e-4 - 0.99 * 5.4e-4, 0, 1e-12);
    assert_true(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 110) == MIN_LR);
    assert_true(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 111) == MIN_LR);
}

static void test_constant(void **state) {
    (void)state;
    const opt_schedule k = OPT_SCHED_CONSTANT;
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 0), 6e-5, 0, 1e-15); /* warm-up applies */
    assert_close(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 9), 6e-4, 0, 1e-15);
    assert_true(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 10) == LR);
    assert_true(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 60) == LR);
    assert_true(opt_schedule_lr(k, LR, MIN_LR, 10, 111, 110) == LR);
    assert_true(opt_schedule_lr(k, LR, MIN_LR, 0, 1, 0) == LR);
    assert_true(opt_schedule_lr((opt_schedule)7, LR, MIN_LR, 0, 100, 50) == LR);
}

static void test_edge_cases(void **state) {
    (void)state;
    const opt_schedule c = OPT_SCHED_COSINE, l = OPT_SCHED_LINEAR;
    /* warmup 0, total 11: decay over steps 0..10; step 5 is the middle. */
    assert_true(opt_schedule_lr(c, LR, MIN_LR, 0, 11, 0) == LR);
    assert_close(opt_schedule_lr(c, LR, MIN_LR, 0, 11, 5), 3.3e-4, 0, 1e-12);
    assert_true(opt_schedule_lr(c, LR, MIN_LR, 0, 11, 10) == MIN_LR);
    /* total 2: the first step at lr, the last at min_lr. */
    assert_true(opt_schedule_lr(c, LR, MIN_LR, 0, 2, 0) == LR);
    assert_true(opt_schedule_lr(l, LR, MIN_LR, 0, 2, 1) == MIN_LR);
    /* total 1: the single step runs at lr (no step left to decay over). */
    assert_true(opt_schedule_lr(c, LR, MIN_LR, 0, 1, 0) == LR);
    assert_true(opt_schedule_lr(l, LR, MIN_LR, 0, 1, 0) == LR);
    /* warmup = total − 1: warm-up reaches lr at the last-but-one step, the last stays at lr. */
    assert_close(opt_schedule_lr(c, LR, MIN_LR, 9, 10, 0), 6e-4 / 9, 0, 1e-15);
    assert_close(opt_schedule_lr(c, LR, MIN_LR, 9, 10, 8), 6e-4, 0, 1e-15);
    assert_true(opt_schedule_lr(c, LR, MIN_LR, 9, 10, 9) == LR);
    /* warmup > total: the whole run is warm-up, lr·(step+1)/warmup. */
    assert_close(opt_schedule_lr(c, LR, MIN_LR, 20, 10, 0), 3e-5, 0, 1e-15);
    assert_close(opt_schedule_lr(l, LR, MIN_LR, 20, 10, 9), 3e-4, 0, 1e-15);
    /* warmup 1 is no warm-up at all: step 0 already runs at lr. */
    assert_true(opt_schedule_lr(c, LR, MIN_LR, 1, 11, 0) == LR);
    /* Clamping: negative step and warmup act as 0, total < 1 as 1. */
    assert_true(opt_schedule_lr(c, LR, MIN_LR, 0, 11, -3) == LR);
    assert_true(opt_schedule_lr(c, LR, MIN_LR, -4, 11, 10) == MIN_LR);
    assert_true(opt_schedule_lr(c, LR, MIN_LR, 0, 0, 0) == LR);
    /* min_lr above lr (unusual, but allowed) ramps up along the same curve. */
    assert_close(opt_schedule_lr(l, 1.0, 2.0, 0, 11, 5), 1.5, 0, 1e-15);
}

int optt_run_schedule(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cosine),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_edge_cases),
    };
    return cmocka_run_group_tests_name("optim_schedule", tests, NULL, NULL);
}
