/* test_adamw.c — AdamW against hand-derived values, bias correction from the step counter, resume
 * from saved state, and thread-count independence. */
#include "optest.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const float P0[3] = {1.0f, -2.0f, 0.5f};
static const float G1[3] = {0.1f, -0.2f, 0.0f};
static const float G2[3] = {0.3f, 0.1f, -0.4f};

static opt_config adamw_cfg(void) {
    opt_config c = opt_config_defaults(OPT_ADAMW);
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.weight_decay = 0.1;
    return c;
}

/* lr 0.1, wd 0.1, β1 0.9, β2 0.999, eps 1e-8; "w" decays, "ln.weight" does not; same p and g.
 * Step 1 (t=1): decay factor 1 − 0.1·0.1 = 0.99.  m = 0.1·g = [0.01, −0.02, 0],
 *   v = 0.001·g² = [1e-5, 4e-5, 0];  m̂ = m/0.1 = g,  v̂ = v/0.001 = g², so the step is
 *   0.1·g/(|g| + 1e-8) = ±0.1/(1 + 1e-7) (0 where g = 0):
 *   w  = [0.99 − 0.09999999, −1.98 + 0.09999999, 0.495] = [0.89000001, −1.880000005, 0.495]
 *   ln = [0.90000001, −1.900000005, 0.5]
 * Step 2 (t=2): m = 0.9·m + 0.1·g2 = [0.039, −0.008, −0.04];
 *   v = 0.999·v + 0.001·g2² = [9.999e-5, 4.996e-5, 1.6e-4];
 *   1 − β1² = 0.19, 1 − β2² = 0.001999:  m̂ = [0.2052631579, −0.0421052632, −0.2105263158],
 *   √v̂ = √[0.0500200100, 0.0249924962, 0.0800400200] = [0.2236515, 0.1580901, 0.2829135],
 *   step = 0.1·m̂/(√v̂ + 1e-8) = [0.0917781, −0.0266337, −0.0744140]:
 *   w  = 0.99·[0.89000001, −1.880000005, 0.495] − step = [0.7893219021, −1.8345663027,
 * 0.5644636797] ln = [0.90000001, −1.900000005, 0.5] − step          = [0.8082219022,
 * −1.8733663027, 0.5744136797]
 */
static void test_adamw_two_steps_by_hand(void **state) {
    (void)state;
    float w[3], wg[3], ln[3], lng[3];
    memcpy(w, P0, sizeof w);
    memcpy(ln, P0, sizeof ln);
    opt_param ps[2] = {{"w", w, wg, 3, true}, {"ln.weight", ln, lng, 3, false}};
    opt_config c = adamw_cfg();
    char err[256] = "";
    opt_optimizer *o = opt_create(&c, ps, 2, err, sizeof err);
    assert_non_null(o);

    memcpy(wg, G1, sizeof wg);
    memcpy(lng, G1, sizeof lng);
    opt_step(o, 0.1);
    assert_int_equal(opt_get_step(o), 1);
    const double w1[3] = {0.89000001, -1.880000005, 0.495},
                 ln1[3] = {0.90000001, -1.900000005, 0.5};
    for (int i = 0; i < 3; i++) {
        assert_close(w[i], w1[i], 0, 1e-6);
        assert_close(ln[i], ln1[i], 0, 1e-6);
        assert_true(wg[i] == G1[i]); /* decoupled decay never touches the gradient */
    }
    const opt_state *m = opt_state_at(o, 0), *v = opt_state_at(o, 1);
    const double m1[3] = {0.01, -0.02, 0.0}, v1[3] = {1e-5, 4e-5, 0.0};
    for (int i = 0; i < 3; i++) {
        assert_close(m->data[i], m1[i], 1e-12, 1e-6);
        assert_close(v->data[i], v1[i], 1e-15, 1e-6);
    }

    memcpy(wg, G2, sizeof wg);
    memcpy(lng, G2, sizeof lng);
    opt_step(o, 0.1);
    assert_int_equal(opt_get_step(o), 2);
    const double w2[3] = {0.7893219021, -1.8345663027, 0.5644636797};
    const double ln2[3] = {0.8082219022, -1.8733663027, 0.5744136797};
    const double m2[3] = {0.039, -0.008, -0.04}, v2[3] = {9.999e-5, 4.996e-5, 1.6e-4};
    for (int i = 0; i < 3; i++) {
        assert_close(w[i], w2[i], 0, 1e-6);
        assert_close(ln[i], ln2[i], 0, 1e-6);
        assert_close(m->data[i], m2[i], 0, 1e-6);
        assert_close(v->data[i], v2[i], 0, 1e-6);
    }
    /* The second parameter's state follows the first's (w/m, w/v, ln.weight/m, ln.weight/v). */
    assert_close(opt_state_at(o, 2)->data[0], 0.039, 0, 1e-6);
    assert_close(opt_state_at(o, 3)->data[2], 1.6e-4, 0, 1e-6);
    opt_free(o);
}

/* After opt_set_step(1e6) the corrections 1 − β^t are 1 (β1^t underflows, β2^t = e^−1000), so one
 * step with g = 0.5 from zero state moves p by 0.1·(0.1·0.5)/(√(0.001·0.25) + 1e-8)
 * = 0.1·0.05/0.0158113883 = 0.316227566: p = 1 − 0.316227566 = 0.683772434. Without decay. */
static void test_adamw_bias_correction_uses_step_counter(void **state) {
    (void)state;
    float p = 1.0f, g = 0.5f;
    opt_param ps[1] = {{"p", &p, &g, 1, false}};
    opt_config c = adamw_cfg();
    char err[256];
    opt_optimizer *o = opt_create(&c, ps, 1, err, sizeof err);
    assert_non_null(o);
    opt_set_step(o, 1000000);
    opt_step(o, 0.1);
    assert_close(p, 0.683772434, 0, 1e-6);
    assert_int_equal(opt_get_step(o), 1000001);
    opt_free(o);
}

/* lr 0 leaves the parameters alone but still advances the moments and the counter. */
static void test_adamw_zero_lr_moves_nothing(void **state) {
    (void)state;
    float w[3], g[3];
    memcpy(w, P0, sizeof w);
    memcpy(g, G2, sizeof g);
    opt_param ps[1] = {{"w", w, g, 3, true}};
    opt_config c = adamw_cfg();
    char err[256];
    opt_optimizer *o = opt_create(&c, ps, 1, err, sizeof err);
    opt_step(o, 0.0);
    assert_memory_equal(w, P0, sizeof w);
    assert_close(opt_state_at(o, 0)->data[0], 0.03, 0, 1e-6);
    assert_int_equal(opt_get_step(o), 1);
    opt_free(o);
}

static void fill_grads(float *g, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++)
        g[i] = (float)tu_uniform(&seed, -1, 1);
}

/* A run of 5 + 3 steps equals 5 steps, a state copy through opt_state_load into a fresh optimizer
 * with the step counter set, and 3 more steps — bit for bit. */
static void test_adamw_resume_is_bit_identical(void **state) {
    (void)state;
    enum { N = 37 };
    float a[N], ag[N], b[N], bg[N];
    uint64_t s = 7;
    for (int i = 0; i < N; i++)
        a[i] = (float)tu_uniform(&s, -1, 1);
    opt_param pa[1] = {{"h.0.mlp.up", a, ag, N, true}};
    opt_param pb[1] = {{"h.0.mlp.up", b, bg, N, true}};
    opt_config c = adamw_cfg();
    char err[256];
    opt_optimizer *oa = opt_create(&c, pa, 1, err, sizeof err);
    for (int t = 0; t < 5; t++) {
        fill_grads(ag, N, 100 + (uint64_t)t);
        opt_step(oa, 1e-2);
    }
    opt_optimizer *ob = opt_create(&c, pb, 1, err, sizeof err);
    memcpy(b, a, sizeof b);
    for (size_t i = 0; i < opt_state_count(oa); i++) {
        const opt_state *st = opt_state_at(oa, i);
        assert_int_equal(opt_state_load(ob, st->name, st->data, st->numel, err, sizeof err), 0);
    }
    opt_set_step(ob, opt_get_step(oa));
    for (int t = 5; t < 8; t++) {
        fill_grads(ag, N, 100 + (uint64_t)t);
        memcpy(bg, ag, sizeof bg);
        opt_step(oa, 1e-2);
        opt_step(ob, 1e-2);
    }
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(opt_state_at(oa, 1)->data, opt_state_at(ob, 1)->data, sizeof a);
    opt_free(oa);
    opt_free(ob);
}

/* A tensor large enough for the parallel path, repeating the 3 hand-checked elements, gives the
 * same bits as the 3-element run on 1 and on 2 threads. */
static void test_adamw_parallel_matches_small(void **state) {
    (void)state;
    enum { BIG = 3 * 40000 };
    float small[3], sg[3];
    memcpy(small, P0, sizeof small);
    opt_param ps[1] = {{"s", small, sg, 3, true}};
    opt_config c = adamw_cfg();
    char err[256];
    opt_optimizer *os = opt_create(&c, ps, 1, err, sizeof err);
    memcpy(sg, G1, sizeof sg);
    opt_step(os, 0.1);
    memcpy(sg, G2, sizeof sg);
    opt_step(os, 0.1);

    int saved = omp_get_max_threads();
    float *p = malloc(BIG * sizeof *p), *g = malloc(BIG * sizeof *g);
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        for (size_t i = 0; i < BIG; i++)
            p[i] = P0[i % 3];
        opt_param pb[1] = {{"b", p, g, BIG, true}};
        opt_optimizer *ob = opt_create(&c, pb, 1, err, sizeof err);
        assert_non_null(ob);
        for (size_t i = 0; i < BIG; i++)
            g[i] = G1[i % 3];
        opt_step(ob, 0.1);
        for (size_t i = 0; i < BIG; i++)
            g[i] = G2[i % 3];
        opt_step(ob, 0.1);
        for (size_t i = 0; i < BIG; i++)
            if (memcmp(&p[i], &small[i % 3], sizeof(float)) != 0) {
                print_error("threads %d: p[%zu] = %.9g, small run %.9g\n", threads, i, p[i],
                            small[i % 3]);
                fail();
            }
        opt_free(ob);
    }
    omp_set_num_threads(saved);
    free(p);
    free(g);
    opt_free(os);
}

int optt_run_adamw(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_two_steps_by_hand),
        cmocka_unit_test(test_adamw_bias_correction_uses_step_counter),
        cmocka_unit_test(test_adamw_zero_lr_moves_nothing),
        cmocka_unit_test(test_adamw_resume_is_bit_identical),
        cmocka_unit_test(test_adamw_parallel_matches_small),
    };
    return cmocka_run_group_tests_name("optim_adamw", tests, NULL, NULL);
}
