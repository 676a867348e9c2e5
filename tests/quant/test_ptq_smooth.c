/* test_ptq_smooth.c — quant/ptq's SmoothQuant: the scales against hand values (clamping,
 * non-finite and zero maxima, bad α), the column helpers, and the folding into LayerNorm and the
 * next linear layer, which must leave the function unchanged and shrink the outlier channels. */
#include "mxtest.h"
#include "quant/ptq.h"

#include <string.h>

static void test_smooth_hand(void **state) {
    (void)state;
    /* α = 0.5: s = sqrt(ax / aw) */
    const float ax[] = {4, 9, 1, 0, 5, NAN, INFINITY, 1e12f, 1e-12f, 3};
    const float aw[] = {1, 4, 16, 2, 0, 1, 1, 1e-12f, 1e12f, -1};
    const float want[] = {2, 1.5f, 0.25f, 1, 1, 1, 1, (float)PTQ_SMOOTH_MAX, (float)PTQ_SMOOTH_MIN,
                          1};
    float s[10];
    assert_int_equal(ptq_smooth_scales(ax, aw, 10, 0.5, s), PTQ_OK);
    for (int j = 0; j < 10; j++)
        assert_close(s[j], want[j], 0, 1e-7);
    /* α = 1: s = ax; α = 0: s = 1/aw; α = 0.25 on (16, 1): 2 */
    assert_int_equal(ptq_smooth_scales(ax, aw, 3, 1.0, s), PTQ_OK);
    assert_close(s[1], 9.0, 0, 1e-7);
    assert_int_equal(ptq_smooth_scales(ax, aw, 3, 0.0, s), PTQ_OK);
    assert_close(s[1], 0.25, 0, 1e-7);
    const float a16 = 16, w1 = 1;
    assert_int_equal(ptq_smooth_scales(&a16, &w1, 1, 0.25, s), PTQ_OK);
    assert_close(s[0], 2.0, 0, 1e-7);
    /* bad α writes nothing */
    s[0] = -7;
    assert_int_equal(ptq_smooth_scales(ax, aw, 3, 1.5, s), PTQ_ERR_ARG);
    assert_int_equal(ptq_smooth_scales(ax, aw, 3, NAN, s), PTQ_ERR_ARG);
    assert_int_equal(ptq_smooth_scales(ax, aw, 3, -0.1, s), PTQ_ERR_ARG);
    assert_close(s[0], -7.0, 0, 0);
    assert_int_equal(ptq_smooth_scales(NULL, aw, 3, 0.5, s), PTQ_ERR_ARG);
}

static void test_smooth_helpers(void **state) {
    (void)state;
    const float x[] = {1, -5, 0, -3, 2, -0.5f};
    float acc[] = {0, 10, 0};
    ptq_absmax_cols(x, 2, 3, acc);
    assert_close(acc[0], 3, 0, 0);
    assert_close(acc[1], 10, 0, 0);
    assert_close(acc[2], 0.5, 0, 0);
    const float y[] = {NAN, 1, 1, 100, 1, 1};
    ptq_absmax_cols(y, 2, 3, acc);
    assert_true(isnan(acc[0])); /* NaN wins and sticks */
    assert_close(acc[1], 10, 0, 0);

    float w[] = {1, 2, 3, 4, 5, 6};
    const float s[] = {2, 0.5f, -1};
    ptq_scale_cols(w, 2, 3, s);
    const float ws[] = {2, 1, -3, 8, 2.5f, -6};
    assert_memory_equal(w, ws, sizeof w);
    float v[] = {1, 1, 3};
    ptq_div_vec(v, s, 3);
    const float vs[] = {0.5f, 2, -3};
    assert_memory_equal(v, vs, sizeof v);
}

/* The function is unchanged: y = (LN(x)·g + b)·Wᵀ equals y' with g/s, b/s and W·diag(s), for
 * s from the activations' and weights' channel maxima. Also: the outlier channels' activation
 * maxima shrink (that is the point of smoothing). */
static void layer_norm(const float *x, size_t n, size_t c, const float *g, const float *b,
                       float *y) {
    for (size_t t = 0; t < n; t++) {
        double mean = 0.0, var = 0.0;
        for (size_t j = 0; j < c; j++)
            mean += x[t * c + j];
        mean /= (double)c;
        for (size_t j = 0; j < c; j++)
            var += (x[t * c + j] - mean) * (x[t * c + j] - mean);
        const float rstd = (float)(1.0 / sqrt(var / (double)c + 1e-5));
        for (size_t j = 0; j < c; j++)
            y[t * c + j] = ((float)(x[t * c + j] - mean) * rstd) * g[j] + b[j];
    }
}

static void test_smooth_preserves_function(void **state) {
    (void)state;
    enum { N = 16, C = 64, OUT = 24 };
    uint64_t seed = 140;
    float x[N * C], g[C], b[C], w[OUT * C], y[N * C], ys[N * C], s[C];
    for (size_t i = 0; i < N * C; i++)
        x[i] = (float)mxt_gauss(&seed);
    for (size_t j = 0; j < C; j++) {
        g[j] = (float)tu_uniform(&seed, 0.5, 1.5) * (j % 13 == 2 ? 30.0f : 1.0f); /* outliers */
        b[j] = (float)tu_uniform(&seed, -0.2, 0.2);
    }
    for (size_t i = 0; i < OUT * C; i++)
        w[i] = (float)(0.1 * mxt_gauss(&seed));
    layer_norm(x, N, C, g, b, y);
    float amax[C] = {0}, wmax[C] = {0};
    ptq_absmax_cols(y, N, C, amax);
    ptq_absmax_cols(w, OUT, C, wmax);
    assert_int_equal(ptq_smooth_scales(amax, wmax, C, 0.5, s), PTQ_OK);
    float gs[C], bs[C], wsm[OUT * C];
    memcpy(gs, g, sizeof g);
    memcpy(bs, b, sizeof b);
    memcpy(wsm, w, sizeof w);
    ptq_div_vec(gs, s, C);
    ptq_div_vec(bs, s, C);
    ptq_scale_cols(wsm, OUT, C, s);
    layer_norm(x, N, C, gs, bs, ys);
    for (size_t t = 0; t < N; t++)
        for (size_t o = 0; o < OUT; o++) {
            float a = 0.0f, a2 = 0.0f, mag = 0.0f;
            for (size_t j = 0; j < C; j++) {
                a += y[t * C + j] * w[o * C + j];
                a2 += ys[t * C + j] * wsm[o * C + j];
                mag += fabsf(y[t * C + j] * w[o * C + j]);
            }
            assert_close(a2, a, 1e-5 * mag, 0);
        }
    float amax2[C] = {0}, top = 0.0f, top2 = 0.0f;
    ptq_absmax_cols(ys, N, C, amax2);
    for (size_t j = 0; j < C; j++) {
        top = fmaxf(top, amax[j]);
        top2 = fmaxf(top2, amax2[j]);
    }
    assert_true(top2 < 0.3f * top);
}

int mxt_run_ptq_smooth(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smooth_hand),
        cmocka_unit_test(test_smooth_helpers),
        cmocka_unit_test(test_smooth_preserves_function),
    };
    return cmocka_run_group_tests_name("ptq_smooth", tests, NULL, NULL);
}
