/* test_nf4_tensor.c — quant/nf4 on whole tensors: range dequantization against the full one
 * (every range of a small tensor, random ranges of a large one), block counts, packed sizes and
 * storage cost, and thread-count independence. */
#include "mxtest.h"
#include "quant/nf4.h"

#include <omp.h>
#include <stdlib.h>

/* ---- range dequantization -------------------------------------------------------------------- */

/* Every range [i0, i1) of a 131-element tensor (odd; last block short), with sentinels on both
 * sides of the output; then 300 random ranges of a tensor big enough for the parallel path. */
static void test_range(void **state) {
    (void)state;
    const size_t n = 2 * NF4_BLOCK + 3;
    float x[2 * NF4_BLOCK + 3], full[2 * NF4_BLOCK + 3], buf[2 * NF4_BLOCK + 5], absmax[3];
    uint8_t packed[66];
    uint64_t s = 17;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)mxt_gauss(&s);
    nf4_quantize(x, n, packed, absmax);
    nf4_dequantize(packed, absmax, n, full);
    for (size_t i0 = 0; i0 <= n; i0++)
        for (size_t i1 = 0; i1 <= n; i1++) {
            for (size_t i = 0; i < n + 2; i++)
                buf[i] = -77.0f;
            nf4_dequantize_range(packed, absmax, i0, i1, buf + 1);
            const size_t len = i1 > i0 ? i1 - i0 : 0;
            assert_true(buf[0] == -77.0f && buf[len + 1] == -77.0f);
            if (!mxt_same_floats("range", buf + 1, full + i0, len)) {
                print_error("range [%zu, %zu)\n", i0, i1);
                fail();
            }
        }

    const size_t big = 64 * 700 + 33;
    float *y = mxt_xmalloc(big * sizeof *y), *yfull = mxt_xmalloc(big * sizeof *yfull);
    float *yout = mxt_xmalloc((big + 1) * sizeof *yout),
          *ya = mxt_xmalloc(nf4_num_blocks(big) * sizeof *ya);
    uint8_t *yp = mxt_xmalloc(nf4_packed_size(big));
    for (size_t i = 0; i < big; i++)
        y[i] = (float)mxt_gauss(&s);
    nf4_quantize(y, big, yp, ya);
    nf4_dequantize(yp, ya, big, yfull);
    for (int r = 0; r < 300; r++) {
        size_t i0 = (size_t)tu_uniform(&s, 0.0, (double)big), i1;
        i1 = r % 3 == 0 ? big : i0 + (size_t)tu_uniform(&s, 0.0, (double)(big - i0) + 1.0);
        if (r == 1)
            i0 = 0;
        yout[i1 - i0] = -77.0f;
        nf4_dequantize_range(yp, ya, i0, i1, yout);
        assert_true(yout[i1 - i0] == -77.0f);
        if (!mxt_same_floats("big range", yout, yfull + i0, i1 - i0)) {
            print_error("range [%zu, %zu)\n", i0, i1);
            fail();
        }
    }
    free(y);
    free(yfull);
    free(yout);
    free(ya);
    free(yp);
}

/* ---- sizes and storage cost ------------------------------------------------------------------ */

static void test_sizes_and_bits(void **state) {
    (void)state;
    assert_int_equal(nf4_num_blocks(0), 0);
    assert_int_equal(nf4_num_blocks(1), 1);
    assert_int_equal(nf4_num_blocks(64), 1);
    assert_int_equal(nf4_num_blocks(65), 2);
    assert_int_equal(nf4_packed_size(0), 0);
    assert_int_equal(nf4_packed_size(1), 1);
    assert_int_equal(nf4_packed_size(2), 1);
    assert_int_equal(nf4_packed_size(3), 2);
    assert_int_equal(nf4_dq_num_blocks(0), 0);
    assert_int_equal(nf4_dq_num_blocks(256), 1);
    assert_int_equal(nf4_dq_num_blocks(257), 2);
    assert_true(nf4_num_blocks((size_t)1 << 40) == (size_t)1 << 34);
    assert_true(nf4_packed_size(((size_t)1 << 40) + 1) == ((size_t)1 << 39) + 1);
    /* exact small cases: codes + absmax (+ DQ codes, scale, mean) */
    assert_true(nf4_bits_per_param(0, 0) == 0.0 && nf4_bits_per_param(0, 1) == 0.0);
    assert_true(nf4_bits_per_param(64, 0) == 4.5);
    assert_true(nf4_bits_per_param(64, 1) == (256.0 + 8 + 32 + 32) / 64);
    assert_true(nf4_bits_per_param(1, 0) == 40.0);
    assert_true(nf4_bits_per_param(1, 1) == 80.0);
    assert_true(nf4_bits_per_param(65, 0) == (8.0 * 33 + 64) / 65);
    /* large n: 4.5 plain, 4 + 8/64 + 32/(64·256) ≈ 4.127 with double quantization */
    const size_t n = (size_t)1 << 26;
    const double formula = 4.0 + 8.0 / 64 + 32.0 / (64 * 256);
    assert_true(nf4_bits_per_param(n, 0) == 4.5);
    assert_close(nf4_bits_per_param(n, 1), formula, 1e-3, 0);
    assert_close(nf4_bits_per_param(n, 1), formula + 32.0 / (double)n, 1e-12, 0);
    assert_true(nf4_bits_per_param(n, 1) < 4.128);
}

/* ---- threads --------------------------------------------------------------------------------- */

/* 1 and 2 threads: identical codes, absmax, dequantized values and range output (NaN blocks,
 * a short last block, sizes above the parallel threshold). */
static void test_threads(void **state) {
    (void)state;
    const size_t n = 64 * 900 + 17, nb = nf4_num_blocks(n), np = nf4_packed_size(n);
    float *x = mxt_xmalloc(n * sizeof *x), *a[2], *o[2], *r[2];
    uint8_t *p[2];
    uint64_t s = 37;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)mxt_gauss(&s);
    x[64 * 333 + 1] = NAN;
    const int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        a[t] = mxt_xmalloc(nb * sizeof(float));
        o[t] = mxt_xmalloc(n * sizeof(float));
        r[t] = mxt_xmalloc(n * sizeof(float));
        p[t] = mxt_xmalloc(np);
        omp_set_num_threads(t + 1);
        nf4_quantize(x, n, p[t], a[t]);
        nf4_dequantize(p[t], a[t], n, o[t]);
        nf4_dequantize_range(p[t], a[t], 101, n - 2, r[t]);
        omp_set_num_threads(saved);
    }
    assert_true(mxt_same_bytes("packed 1 vs 2 threads", p[0], p[1], np));
    assert_true(mxt_same_floats("absmax 1 vs 2 threads", a[0], a[1], nb));
    assert_true(mxt_same_floats("dequantized 1 vs 2 threads", o[0], o[1], n));
    assert_true(mxt_same_floats("range 1 vs 2 threads", r[0], r[1], n - 103));
    assert_true(mxt_same_floats("range vs full", r[0], o[0] + 101, n - 103));
    for (int t = 0; t < 2; t++) {
        free(a[t]);
        free(o[t]);
        free(r[t]);
        free(p[t]);
    }
    free(x);
}

int mxt_run_nf4_tensor(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_sizes_and_bits),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("nf4_tensor", tests, NULL, NULL);
}
