/* test_ptq_parts.c — quant/ptq, the pieces GPTQ is built from: RTN against the MX kernels, the
 * Hessian accumulator against hand computations, the inverse-Cholesky factor against its
 * definition, and the layer error against hand values and the output error measured from X. */
#include "mxtest.h"
#include "quant/ptq.h"

#include <stdlib.h>
#include <string.h>

/* ---- RTN ------------------------------------------------------------------------------------- */

static void test_rtn_matches_mx(void **state) {
    (void)state;
    const size_t rows = 5, cols = 77, n = rows * cols, nb = mx_num_blocks(cols);
    float *w = mxt_make_weights(rows, cols, 11), fq[385], wq[385], inplace[385];
    uint8_t codes[385], sc[15], rc[385], rs[15];
    w[7] = 3e4f; /* a block with a wide range */
    for (size_t k = 0; k < MXT_NFORMATS; k++)
        for (int r = 0; r < 2; r++) {
            const mx_format f = MXT_FORMATS[k];
            mx_fake_quant(w, fq, rows, cols, f, (mx_rounding)r);
            mx_quantize(w, rc, rs, rows, cols, f, (mx_rounding)r);
            ptq_rtn(w, rows, cols, f, (mx_rounding)r, codes, sc, wq);
            assert_true(mxt_same_floats("rtn wq", wq, fq, n));
            assert_true(mxt_same_bytes("rtn codes", codes, rc, n));
            assert_true(mxt_same_bytes("rtn scales", sc, rs, rows * nb));
            memset(wq, 0, sizeof wq);
            ptq_rtn(w, rows, cols, f, (mx_rounding)r, NULL, NULL, wq);
            assert_true(mxt_same_floats("rtn wq only", wq, fq, n));
            memcpy(inplace, w, sizeof inplace);
            ptq_rtn(inplace, rows, cols, f, (mx_rounding)r, codes, sc, inplace);
            assert_true(mxt_same_floats("rtn in place", inplace, fq, n));
        }
    /* fp32: a copy, codes and scales untouched */
    memset(codes, 0xAB, sizeof codes);
    ptq_rtn(w, rows, cols, MX_FP32, MX_ROUND_EVEN, codes, sc, wq);
    assert_true(mxt_same_floats("fp32", wq, w, n));
    assert_int_equal(codes[0], 0xAB);
    free(w);
}

/* ---- Hessian --------------------------------------------------------------------------------- */

static void test_hessian_hand(void **state) {
    (void)state;
    /* x1 = [1, 2], x2 = [3, -1]: S = [[10, -1], [-1, 5]], N = 2, H = (2/2)·S */
    const float x2[] = {1, 2, 3, -1};
    double H[9];
    ptq_hessian *h = ptq_hessian_create(2);
    assert_non_null(h);
    assert_int_equal(ptq_hessian_cols(h), 2);
    assert_int_equal(ptq_hessian_get(h, H), PTQ_ERR_EMPTY);
    assert_int_equal(ptq_hessian_add(h, x2, 2), PTQ_OK);
    assert_int_equal(ptq_hessian_count(h), 2);
    assert_int_equal(ptq_hessian_get(h, H), PTQ_OK);
    const double want2[] = {10, -1, -1, 5};
    for (int i = 0; i < 4; i++)
        assert_close(H[i], want2[i], 0, 1e-15);
    ptq_hessian_free(h);

    /* rows [1,0,2], [0,1,-1], [2,2,0]: S = [[5,4,2],[4,5,-1],[2,-1,5]], H = (2/3)·S, added as a
     * chunk of 1 and a chunk of 2 */
    const float x3[] = {1, 0, 2, 0, 1, -1, 2, 2, 0};
    const double s3[] = {5, 4, 2, 4, 5, -1, 2, -1, 5};
    h = ptq_hessian_create(3);
    assert_non_null(h);
    assert_int_equal(ptq_hessian_add(h, x3, 1), PTQ_OK);
    assert_int_equal(ptq_hessian_add(h, x3 + 3, 2), PTQ_OK);
    assert_int_equal(ptq_hessian_add(h, x3, 0), PTQ_OK); /* no-op */
    assert_int_equal(ptq_hessian_count(h), 3);
    assert_int_equal(ptq_hessian_get(h, H), PTQ_OK);
    for (int i = 0; i < 9; i++)
        assert_close(H[i], 2.0 / 3.0 * s3[i], 0, 1e-15);

    /* a chunk holding a NaN is rejected whole: count and H unchanged */
    const float bad[] = {1, 1, 1, 1, NAN, 1};
    assert_int_equal(ptq_hessian_add(h, bad, 2), PTQ_ERR_NONFINITE);
    assert_int_equal(ptq_hessian_count(h), 3);
    double H2[9];
    assert_int_equal(ptq_hessian_get(h, H2), PTQ_OK);
    assert_memory_equal(H, H2, sizeof H);
    assert_int_equal(ptq_hessian_add(h, NULL, 1), PTQ_ERR_ARG);
    assert_int_equal(ptq_hessian_add(NULL, x3, 1), PTQ_ERR_ARG);
    assert_int_equal(ptq_hessian_get(h, NULL), PTQ_ERR_ARG);
    ptq_hessian_free(h);
    ptq_hessian_free(NULL);
    assert_null(ptq_hessian_create(0));
}

/* Chunked accumulation (chunks of 1, 7, 300 and the rest, crossing the internal 256-row
 * conversion chunks) equals one shot and a naive double sum. */
static void test_hessian_chunked(void **state) {
    (void)state;
    const size_t n = 700, c = 40;
    float *x = mxt_make_calib(n, c, 21);
    double *one = mxt_hessian_of(x, n, c), *chunked = mxt_xmalloc(c * c * sizeof(double));
    ptq_hessian *h = ptq_hessian_create(c);
    assert_non_null(h);
    const size_t cuts[] = {0, 1, 8, 308, 700};
    for (int k = 0; k < 4; k++)
        assert_int_equal(ptq_hessian_add(h, x + cuts[k] * c, cuts[k + 1] - cuts[k]), PTQ_OK);
    assert_int_equal(ptq_hessian_count(h), n);
    assert_int_equal(ptq_hessian_get(h, chunked), PTQ_OK);
    for (size_t i = 0; i < c; i++)
        for (size_t j = 0; j < c; j++) {
            double naive = 0.0;
            for (size_t t = 0; t < n; t++)
                naive += (double)x[t * c + i] * x[t * c + j];
            naive *= 2.0 / (double)n;
            const double scale = sqrt(one[i * c + i] * one[j * c + j]);
            assert_close(chunked[i * c + j], one[i * c + j], 1e-12 * scale, 1e-12);
            assert_close(one[i * c + j], naive, 1e-12 * scale, 1e-12);
            assert_true(one[i * c + j] == one[j * c + i]);
        }
    ptq_hessian_free(h);
    free(x);
    free(one);
    free(chunked);
}

/* ---- inverse Cholesky ------------------------------------------------------------------------ */

static void check_inv_chol(size_t n, uint64_t seed) {
    float *x = mxt_make_calib(2 * n, n, seed);
    double *a = mxt_hessian_of(x, 2 * n, n), *u = mxt_xmalloc(n * n * sizeof *u);
    memcpy(u, a, n * n * sizeof *u);
    assert_int_equal(ptq_inv_chol_upper(u, n), PTQ_OK);
    for (size_t i = 0; i < n; i++) {
        assert_true(u[i * n + i] > 0.0);
        for (size_t j = 0; j < i; j++)
            assert_true(u[i * n + j] == 0.0);
    }
    /* (UᵀU)·A = I */
    double *utu = mxt_xmalloc(n * n * sizeof *utu);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double v = 0.0;
            for (size_t k = 0; k <= (i < j ? i : j); k++)
                v += u[k * n + i] * u[k * n + j];
            utu[i * n + j] = v;
        }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double v = 0.0;
            for (size_t k = 0; k < n; k++)
                v += utu[i * n + k] * a[k * n + j];
            assert_close(v, i == j ? 1.0 : 0.0, 1e-8, 0);
        }
    free(x);
    free(a);
    free(u);
    free(utu);
}

static void test_inv_chol(void **state) {
    (void)state;
    check_inv_chol(3, 31);
    check_inv_chol(70, 32);
    check_inv_chol(200, 33); /* past OpenBLAS's blocking thresholds */
    /* hand case: a = [[4, 2], [2, 2]], a⁻¹ = [[0.5, -0.5], [-0.5, 1]] = UᵀU with
     * U = [[1/√2, -1/√2], [0, 1/√2]] */
    double a[4] = {4, 2, 2, 2};
    assert_int_equal(ptq_inv_chol_upper(a, 2), PTQ_OK);
    assert_close(a[0], sqrt(0.5), 0, 1e-14);
    assert_close(a[1], -sqrt(0.5), 0, 1e-14);
    assert_close(a[2], 0.0, 0, 0);
    assert_close(a[3], sqrt(0.5), 0, 1e-14);
    double indef[4] = {1, 2, 2, 1};
    assert_int_equal(ptq_inv_chol_upper(indef, 2), PTQ_ERR_NOT_PD);
    assert_int_equal(ptq_inv_chol_upper(NULL, 0), PTQ_OK);
}

/* ---- layer error ----------------------------------------------------------------------------- */

static void test_layer_error(void **state) {
    (void)state;
    /* d = [1, 2], H = [[2, 1], [1, 3]]: dᵀHd = 2 + 2·2 + 12 = 18; second row d = [0.5, -1]:
     * 0.5 - 1 + 3 = 2.5 */
    const float w[] = {1, 2, 0.5f, 0}, wq[] = {0, 0, 0, 1};
    const double H[] = {2, 1, 1, 3};
    assert_close(ptq_layer_error(w, wq, 1, 2, H), 18.0, 0, 1e-15);
    assert_close(ptq_layer_error(w, wq, 2, 2, H), 20.5, 0, 1e-15);
    assert_close(ptq_layer_error(w, w, 2, 2, H), 0.0, 0, 0);
    assert_close(ptq_layer_error(w, wq, 0, 2, H), 0.0, 0, 0);
    assert_true(isnan(ptq_layer_error(w, NULL, 2, 2, H)));
    /* 150 rows: more than one internal chunk, against the direct formula */
    const size_t rows = 150, cols = 50, n = 120;
    float *x = mxt_make_calib(n, cols, 150), *a = mxt_make_weights(rows, cols, 151);
    float *q = mxt_rtn_of(a, rows, cols, MX_INT4, MX_ROUND_EVEN);
    double *Hx = mxt_hessian_of(x, n, cols);
    assert_close(ptq_layer_error(a, q, rows, cols, Hx),
                 2.0 / (double)n * mxt_output_error(a, q, rows, cols, x, n), 0, 1e-10);
    free(x);
    free(a);
    free(q);
    free(Hx);
}

int mxt_run_ptq_parts(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rtn_matches_mx),  cmocka_unit_test(test_hessian_hand),
        cmocka_unit_test(test_hessian_chunked), cmocka_unit_test(test_inv_chol),
        cmocka_unit_test(test_layer_error),
    };
    return cmocka_run_group_tests_name("ptq_parts", tests, NULL, NULL);
}
