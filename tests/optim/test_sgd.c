/* test_sgd.c — SGD with and without momentum against hand-derived values. */
#include "optest.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const float P0[3] = {1.0f, -2.0f, 0.5f};
static const float G1[3] = {0.1f, -0.2f, 0.0f};
static const float G2[3] = {0.3f, 0.1f, -0.4f};

/* lr 0.1, momentum 0.9, wd 0.1 (coupled) on "w"; "b" has decay off.
 * w step 1: g' = g + 0.1·p = [0.2, −0.4, 0.05];  buf = g';  p −= 0.1·buf → [0.98, −1.96, 0.495]
 * w step 2: g' = [0.3 + 0.098, 0.1 − 0.196, −0.4 + 0.0495] = [0.398, −0.096, −0.3505];
 *           buf = 0.9·[0.2, −0.4, 0.05] + g' = [0.578, −0.456, −0.3055];
 *           p −= 0.1·buf → [0.9222, −1.9144, 0.52555]
 * b step 1: buf = g = [0.1, −0.2, 0];  p → [0.99, −1.98, 0.5]
 * b step 2: buf = 0.9·[0.1, −0.2, 0] + [0.3, 0.1, −0.4] = [0.39, −0.08, −0.4];  p → [0.951, −1.972,
 * 0.54]
 */
static void test_sgd_momentum_two_steps_by_hand(void **state) {
    (void)state;
    float w[3], wg[3], b[3], bg[3];
    memcpy(w, P0, sizeof w);
    memcpy(b, P0, sizeof b);
    opt_param ps[2] = {{"w", w, wg, 3, true}, {"b", b, bg, 3, false}};
    opt_config c = opt_config_defaults(OPT_SGD);
    c.momentum = 0.9;
    c.weight_decay = 0.1;
    char err[256] = "";
    opt_optimizer *o = opt_create(&c, ps, 2, err, sizeof err);
    assert_non_null(o);
    assert_int_equal(opt_state_count(o), 2);
    assert_string_equal(opt_state_at(o, 0)->name, "w/m");
    assert_string_equal(opt_state_at(o, 1)->name, "b/m");

    memcpy(wg, G1, sizeof wg);
    memcpy(bg, G1, sizeof bg);
    opt_step(o, 0.1);
    const double w1[3] = {0.98, -1.96, 0.495}, b1[3] = {0.99, -1.98, 0.5};
    const double wbuf1[3] = {0.2, -0.4, 0.05};
    for (int i = 0; i < 3; i++) {
        assert_close(w[i], w1[i], 0, 1e-6);
        assert_close(b[i], b1[i], 0, 1e-6);
        assert_close(opt_state_at(o, 0)->data[i], wbuf1[i], 0, 1e-6);
        assert_true(wg[i] == G1[i]); /* coupled decay is not written into the caller's grad */
    }

    memcpy(wg, G2, sizeof wg);
    memcpy(bg, G2, sizeof bg);
    opt_step(o, 0.1);
    const double w2[3] = {0.9222, -1.9144, 0.52555}, b2[3] = {0.951, -1.972, 0.54};
    const double wbuf2[3] = {0.578, -0.456, -0.3055}, bbuf2[3] = {0.39, -0.08, -0.4};
    for (int i = 0; i < 3; i++) {
        assert_close(w[i], w2[i], 0, 1e-6);
        assert_close(b[i], b2[i], 0, 1e-6);
        assert_close(opt_state_at(o, 0)->data[i], wbuf2[i], 0, 1e-6);
        assert_close(opt_state_at(o, 1)->data[i], bbuf2[i], 1e-7, 1e-6);
    }
    assert_int_equal(opt_get_step(o), 2);
    opt_free(o);
}

/* Momentum 0 keeps no state: p −= lr·(g + wd·p). lr 0.5, wd 0.2 on [1, −2, 0.5] with g = G2:
 * g' = [0.3 + 0.2, 0.1 − 0.4, −0.4 + 0.1] = [0.5, −0.3, −0.3];  p → [0.75, −1.85, 0.65]. */
static void test_sgd_plain(void **state) {
    (void)state;
    float w[3], g[3];
    memcpy(w, P0, sizeof w);
    memcpy(g, G2, sizeof g);
    opt_param ps[1] = {{"w", w, g, 3, true}};
    opt_config c = opt_config_defaults(OPT_SGD);
    c.weight_decay = 0.2;
    char err[256];
    opt_optimizer *o = opt_create(&c, ps, 1, err, sizeof err);
    assert_non_null(o);
    assert_int_equal(opt_state_count(o), 0);
    assert_null(opt_state_at(o, 0));
    opt_step(o, 0.5);
    const double want[3] = {0.75, -1.85, 0.65};
    for (int i = 0; i < 3; i++)
        assert_close(w[i], want[i], 0, 1e-6);
    float x = 0;
    assert_int_equal(opt_state_load(o, "w/m", &x, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "sgd without momentum keeps no state"));
    opt_free(o);
}

/* The buffer is reinitialised from the gradient whenever the step counter is 0, and continued
 * otherwise: with a buffer [1, 1, 1], g = [1, 2, 3], lr 1, no decay, momentum 0.9,
 * counter 0  → buf = g = [1, 2, 3], p = −[1, 2, 3];
 * counter 10 → buf = 0.9·[1, 1, 1] + g = [1.9, 2.9, 3.9], p = −[1.9, 2.9, 3.9]. */
static void test_sgd_restored_buffer_is_used(void **state) {
    (void)state;
    float w[3] = {0, 0, 0}, g[3] = {1, 2, 3};
    const float buf[3] = {1, 1, 1};
    opt_param ps[1] = {{"w", w, g, 3, false}};
    opt_config c = opt_config_defaults(OPT_SGD);
    c.momentum = 0.9;
    char err[256];
    opt_optimizer *o = opt_create(&c, ps, 1, err, sizeof err);
    assert_int_equal(opt_state_load(o, "w/v", buf, 3, err, sizeof err), -1);
    assert_string_equal(err, "optimizer state 'w/v' does not fit this optimizer: sgd keeps only "
                             "'w/m' for that parameter");
    assert_int_equal(opt_state_load(o, "w/m", buf, 3, err, sizeof err), 0);
    opt_step(o, 1.0);
    const double fresh[3] = {-1, -2, -3};
    for (int i = 0; i < 3; i++) {
        assert_close(w[i], fresh[i], 0, 1e-7);
        assert_close(opt_state_at(o, 0)->data[i], g[i], 0, 1e-7);
    }

    memset(w, 0, sizeof w);
    assert_int_equal(opt_state_load(o, "w/m", buf, 3, err, sizeof err), 0);
    opt_set_step(o, 10);
    opt_step(o, 1.0);
    const double want[3] = {-1.9, -2.9, -3.9};
    for (int i = 0; i < 3; i++)
        assert_close(w[i], want[i], 0, 1e-6);
    opt_free(o);
}

/* Momentum SGD on a tensor taking the parallel path gives the same bits on 1 and 2 threads. */
static void test_sgd_parallel_bit_identical(void **state) {
    (void)state;
    enum { BIG = 100003 };
    float *p = malloc(BIG * sizeof *p), *g = malloc(BIG * sizeof *g);
    float *ref = malloc(BIG * sizeof *ref);
    int saved = omp_get_max_threads();
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        uint64_t s = 3;
        for (size_t i = 0; i < BIG; i++) {
            p[i] = (float)tu_uniform(&s, -1, 1);
            g[i] = (float)tu_uniform(&s, -1, 1);
        }
        opt_param ps[1] = {{"w", p, g, BIG, true}};
        opt_config c = opt_config_defaults(OPT_SGD);
        c.momentum = 0.9;
        c.weight_decay = 0.01;
        char err[256];
        opt_optimizer *o = opt_create(&c, ps, 1, err, sizeof err);
        opt_step(o, 0.05);
        opt_step(o, 0.05);
        if (threads == 1)
            memcpy(ref, p, BIG * sizeof *p);
        else
            assert_memory_equal(p, ref, BIG * sizeof *p);
        opt_free(o);
    }
    omp_set_num_threads(saved);
    free(p);
    free(g);
    free(ref);
}

int optt_run_sgd(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_momentum_two_steps_by_hand),
        cmocka_unit_test(test_sgd_plain),
        cmocka_unit_test(test_sgd_restored_buffer_is_used),
        cmocka_unit_test(test_sgd_parallel_bit_identical),
    };
    return cmocka_run_group_tests_name("optim_sgd", tests, NULL, NULL);
}
