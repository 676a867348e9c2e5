/* test_ptq_gptq.c — quant/ptq's GPTQ: on correlated calibration data against RTN (output error
 * measured directly from X) and against an unbatched reference sweep, its output as a valid MX
 * tensor, dampening escalation, dead inputs, errors, in-place use and thread-count independence.
 * Set PTQ_TEST_VERBOSE=1 to print the measured GPTQ/RTN error ratios. */
#include "mxtest.h"
#include "quant/ptq.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------------------------- */

/* A code the MX quantizer could have produced: fits the element width, finite (no E4M3 NaN,
 * no E5M2 Inf/NaN), within ± max normal (no INT -2^(b-1)), zero only as the +0 code. */
static bool legal_code(mx_format f, uint8_t c) {
    if (c >> mx_format_bits(f))
        return false;
    float v = mx_code_to_value(f, c);
    if (!isfinite(v) || fabsf(v) > mx_format_max_normal(f))
        return false;
    return v != 0.0f || c == 0;
}

/* Runs GPTQ with all outputs and checks it is a valid MX tensor: scales not NaN, codes legal,
 * wq == mx_dequantize(codes, scales) bit for bit. Returns wq (caller frees). */
static float *gptq_checked(const float *w, size_t rows, size_t cols, const double *H, mx_format f,
                           mx_rounding r, const ptq_gptq_opts *o, ptq_gptq_info *info) {
    const size_t nb = mx_num_blocks(cols);
    uint8_t *codes = mxt_xmalloc(rows * cols), *sc = mxt_xmalloc(rows * nb);
    float *wq = mxt_xmalloc(rows * cols * sizeof *wq),
          *deq = mxt_xmalloc(rows * cols * sizeof *deq);
    char err[256] = "";
    int st = ptq_gptq(w, rows, cols, H, f, r, o, codes, sc, wq, info, err, sizeof err);
    if (st != PTQ_OK)
        print_error("ptq_gptq(%s): %d %s\n", mx_format_name(f), st, err);
    assert_int_equal(st, PTQ_OK);
    mx_dequantize(codes, sc, deq, rows, cols, f);
    assert_true(mxt_same_floats(mx_format_name(f), wq, deq, rows * cols));
    for (size_t i = 0; i < rows * nb; i++)
        assert_true(sc[i] != MX_SCALE_NAN);
    for (size_t i = 0; i < rows * cols; i++)
        if (!legal_code(f, codes[i])) {
            print_error("%s: illegal code 0x%02x at %zu\n", mx_format_name(f), codes[i], i);
            fail();
        }
    free(codes);
    free(sc);
    free(deq);
    return wq;
}

static bool verbose(void) { return getenv("PTQ_TEST_VERBOSE") != NULL; }

/* ---- GPTQ --------------------------------------------------------------------------------------
 */

/* GPTQ's output error ≤ RTN's for every MX format on correlated inputs with outliers, and well
 * below it for the 4-bit and 2-bit formats; checked on a 64×128 layer and a 64×103 layer (short
 * last block). The error is measured from X directly, and the layer error from H agrees. */
static void test_gptq_beats_rtn(void **state) {
    (void)state;
    const size_t rows = 64, n = 512, colss[] = {128, 103};
    for (int s = 0; s < 2; s++) {
        const size_t cols = colss[s];
        float *x = mxt_make_calib(n, cols, 40 + (uint64_t)s), *w = mxt_make_weights(rows, cols, 50);
        double *H = mxt_hessian_of(x, n, cols);
        for (size_t k = 0; k < MXT_NFORMATS; k++) {
            const mx_format f = MXT_FORMATS[k];
            ptq_gptq_info info;
            float *g = gptq_checked(w, rows, cols, H, f, MX_ROUND_EVEN, NULL, &info);
            float *q = mxt_rtn_of(w, rows, cols, f, MX_ROUND_EVEN);
            const double eg = mxt_output_error(w, g, rows, cols, x, n);
            const double er = mxt_output_error(w, q, rows, cols, x, n);
            /* ptq_layer_error is the same quantity through H = (2/N) XᵀX */
            assert_close(ptq_layer_error(w, g, rows, cols, H), 2.0 / (double)n * eg, 0, 1e-9);
            if (verbose())
                print_message("gptq/rtn %-11s cols %3zu: %.4f (rtn %.4g, gptq %.4g)\n",
                              mx_format_name(f), cols, eg / er, er, eg);
            assert_int_equal(info.tries, 1);
            assert_int_equal(info.dead_cols, 0);
            assert_true(eg > 0.0);
            const int bits = mx_format_bits(f);
            /* measured 0.32-0.52 (0.78-0.89 for mxint2, whose 3-level grid leaves little to
             * trade); the bounds keep a wide margin against other data */
            assert_true(eg <= (bits == 2 ? 0.95 : bits == 4 ? 0.6 : 0.7) * er);
            free(g);
            free(q);
        }
        free(x);
        free(w);
        free(H);
    }
}

/* H = c·I (uncorrelated, equal-power inputs): U is diagonal, no error moves, and GPTQ must be
 * RTN bit for bit (scales included: they come from the untouched weights). */
static void test_gptq_identity_is_rtn(void **state) {
    (void)state;
    const size_t rows = 9, cols = 71, nb = mx_num_blocks(cols);
    float *w = mxt_make_weights(rows, cols, 60);
    double *H = calloc(cols * cols, sizeof *H);
    assert_non_null(H);
    for (size_t i = 0; i < cols; i++)
        H[i * cols + i] = 3.7;
    uint8_t *gc = mxt_xmalloc(rows * cols), *gs = mxt_xmalloc(rows * nb);
    uint8_t *rc = mxt_xmalloc(rows * cols), *rs = mxt_xmalloc(rows * nb);
    float *gw = mxt_xmalloc(rows * cols * sizeof *gw), *rw = mxt_xmalloc(rows * cols * sizeof *rw);
    const ptq_gptq_opts o = {0.01, 32};
    for (size_t k = 0; k < MXT_NFORMATS; k++)
        for (int r = 0; r < 2; r++) {
            assert_int_equal(ptq_gptq(w, rows, cols, H, MXT_FORMATS[k], (mx_rounding)r, &o, gc, gs,
                                      gw, NULL, NULL, 0),
                             PTQ_OK);
            ptq_rtn(w, rows, cols, MXT_FORMATS[k], (mx_rounding)r, rc, rs, rw);
            assert_true(mxt_same_bytes("codes", gc, rc, rows * cols));
            assert_true(mxt_same_bytes("scales", gs, rs, rows * nb));
            assert_true(mxt_same_floats("wq", gw, rw, rows * cols));
        }
    free(w);
    free(H);
    free(gc);
    free(gs);
    free(rc);
    free(rs);
    free(gw);
    free(rw);
}

/* Uncorrelated random inputs (H ≈ 2I plus sampling noise): GPTQ is close to RTN — no magic. */
static void test_gptq_uncorrelated(void **state) {
    (void)state;
    const size_t rows = 32, cols = 96, n = 4096;
    float *x = mxt_xmalloc(n * cols * sizeof *x), *w = mxt_make_weights(rows, cols, 70);
    uint64_t seed = 71;
    for (size_t i = 0; i < n * cols; i++)
        x[i] = (float)mxt_gauss(&seed);
    double *H = mxt_hessian_of(x, n, cols);
    const mx_format fs[] = {MX_INT4, MX_FP4_E2M1, MX_INT8};
    for (int k = 0; k < 3; k++) {
        float *g = gptq_checked(w, rows, cols, H, fs[k], MX_ROUND_EVEN, NULL, NULL);
        float *q = mxt_rtn_of(w, rows, cols, fs[k], MX_ROUND_EVEN);
        const double ratio =
            ptq_layer_error(w, g, rows, cols, H) / ptq_layer_error(w, q, rows, cols, H);
        if (verbose())
            print_message("uncorrelated gptq/rtn %s: %.4f\n", mx_format_name(fs[k]), ratio);
        assert_true(ratio > 0.85 && ratio < 1.02);
        free(g);
        free(q);
    }
    free(x);
    free(w);
    free(H);
}

/* The definition, one column at a time with no lazy batching, row by row: the library (batches
 * of 32, 64 and 128, row chunks, dgemm) must agree up to rounding-order effects. */
static void ref_gptq(const float *w, size_t rows, size_t cols, const double *H, double damp,
                     mx_format f, mx_rounding r, float *wq) {
    double *u = mxt_xmalloc(cols * cols * sizeof *u), *row = mxt_xmalloc(cols * sizeof *row),
           mean = 0;
    for (size_t i = 0; i < cols; i++)
        mean += H[i * cols + i] / (double)cols;
    memcpy(u, H, cols * cols * sizeof *u);
    for (size_t i = 0; i < cols; i++)
        u[i * cols + i] += damp * mean;
    assert_int_equal(ptq_inv_chol_upper(u, cols), PTQ_OK);
    for (size_t rr = 0; rr < rows; rr++) {
        for (size_t j = 0; j < cols; j++)
            row[j] = w[rr * cols + j];
        int e = 0;
        for (size_t i = 0; i < cols; i++) {
            if (i % 32 == 0) {
                float seg[32];
                uint8_t codes[32], sc;
                const size_t m = cols - i < 32 ? cols - i : 32;
                for (size_t k = 0; k < m; k++)
                    seg[k] = (float)row[i + k];
                mx_quantize(seg, codes, &sc, 1, m, f, r);
                e = sc;
            }
            const uint8_t code = mx_value_to_code(f, ldexpf((float)row[i], 127 - e), r);
            const float q = mx_code_to_value(f, code) * ldexpf(1.0f, e - 127);
            wq[rr * cols + i] = q;
            const double err = (row[i] - q) / u[i * cols + i];
            for (size_t j = i + 1; j < cols; j++)
                row[j] -= err * u[i * cols + j];
        }
    }
    free(u);
    free(row);
}

static void test_gptq_matches_reference(void **state) {
    (void)state;
    const size_t rows = 40, cols = 200, n = 600; /* 40 rows: two row chunks, one short */
    float *x = mxt_make_calib(n, cols, 80), *w = mxt_make_weights(rows, cols, 81);
    double *H = mxt_hessian_of(x, n, cols);
    float *ref = mxt_xmalloc(rows * cols * sizeof *ref);
    const mx_format fs[] = {MX_INT4, MX_FP4_E2M1, MX_FP8_E4M3};
    const size_t blocks[] = {32, 64, 128};
    for (int k = 0; k < 3; k++) {
        ref_gptq(w, rows, cols, H, 0.01, fs[k], MX_ROUND_NEAREST, ref);
        const double eref = ptq_layer_error(w, ref, rows, cols, H);
        for (int b = 0; b < 3; b++) {
            const ptq_gptq_opts o = {0.01, blocks[b]};
            float *g = gptq_checked(w, rows, cols, H, fs[k], MX_ROUND_NEAREST, &o, NULL);
            size_t same = 0;
            for (size_t i = 0; i < rows * cols; i++)
                same += g[i] == ref[i];
            if (verbose())
                print_message("%s block %zu: %zu of %zu equal to the reference\n",
                              mx_format_name(fs[k]), blocks[b], same, rows * cols);
            assert_true(same >= rows * cols * 995 / 1000);
            assert_close(ptq_layer_error(w, g, rows, cols, H), eref, 0, 0.01);
            free(g);
        }
    }
    free(x);
    free(w);
    free(H);
    free(ref);
}

/* H = v vᵀ − c·I is indefinite (eigenvalues |v|² − c and −c); c lies between 1% and 10% of the
 * mean diagonal, so damp 0.01 must fail and 0.1 succeed. A rank-1 H with damp 0 is singular and
 * escalates to 1e-6. A hopeless H runs out of tries. */
static void test_gptq_damp_escalation(void **state) {
    (void)state;
    const size_t rows = 8, cols = 64;
    float *w = mxt_make_weights(rows, cols, 90);
    double *H = mxt_xmalloc(cols * cols * sizeof *H), v[64], vv = 0.0;
    uint64_t seed = 91;
    for (size_t i = 0; i < cols; i++) {
        v[i] = tu_uniform(&seed, 0.5, 1.5);
        vv += v[i] * v[i];
    }
    const double c = 0.04 * vv / (double)cols;
    for (size_t i = 0; i < cols; i++)
        for (size_t j = 0; j < cols; j++)
            H[i * cols + j] = v[i] * v[j] - (i == j ? c : 0.0);
    ptq_gptq_info info;
    float *g = gptq_checked(w, rows, cols, H, MX_INT4, MX_ROUND_EVEN, NULL, &info);
    assert_int_equal(info.tries, 2);
    assert_close(info.damp, 0.1, 0, 1e-12);
    assert_true(info.damp > PTQ_GPTQ_DAMP);
    assert_close(info.lambda, 0.1 * (vv / (double)cols - c), 0, 1e-12);
    free(g);

    for (size_t i = 0; i < cols; i++)
        for (size_t j = 0; j < cols; j++)
            H[i * cols + j] = v[i] * v[j];
    const ptq_gptq_opts o0 = {0.0, 32};
    g = gptq_checked(w, rows, cols, H, MX_FP4_E2M1, MX_ROUND_EVEN, &o0, &info);
    assert_true(info.tries >= 2);
    assert_true(info.damp >= 1e-6);
    free(g);

    /* eigenvalues 1 ± 1e9 with mean diagonal 1: λ never exceeds 0.01·10^7 */
    memset(H, 0, cols * cols * sizeof *H);
    for (size_t i = 0; i < cols; i++)
        H[i * cols + i] = 1.0;
    H[1] = H[cols] = 1e9;
    char err[256] = "";
    assert_int_equal(ptq_gptq(w, rows, cols, H, MX_INT8, MX_ROUND_EVEN, NULL, NULL, NULL, NULL,
                              &info, err, sizeof err),
                     PTQ_ERR_NOT_PD);
    assert_int_equal(info.tries, PTQ_GPTQ_MAX_TRIES);
    assert_non_null(strstr(err, "not positive definite"));
    free(w);
    free(H);
}

/* Inputs that never fire (zero columns of X, so H[i][i] = 0): their weights come out exactly 0
 * although W is not 0 there, and the rest is still a good GPTQ. */
static void test_gptq_dead_inputs(void **state) {
    (void)state;
    const size_t rows = 16, cols = 70, n = 300;
    float *x = mxt_make_calib(n, cols, 100), *w = mxt_make_weights(rows, cols, 101);
    for (size_t t = 0; t < n; t++)
        x[t * cols + 5] = x[t * cols + 40] = 0.0f;
    double *H = mxt_hessian_of(x, n, cols);
    assert_true(H[5 * cols + 5] == 0.0 && H[40 * cols + 40] == 0.0);
    ptq_gptq_info info;
    float *g = gptq_checked(w, rows, cols, H, MX_INT4, MX_ROUND_EVEN, NULL, &info);
    assert_int_equal(info.dead_cols, 2);
    for (size_t r = 0; r < rows; r++) {
        assert_true(w[r * cols + 5] != 0.0f);
        assert_true(g[r * cols + 5] == 0.0f);
        assert_true(g[r * cols + 40] == 0.0f);
    }
    float *q = mxt_rtn_of(w, rows, cols, MX_INT4, MX_ROUND_EVEN);
    assert_true(mxt_output_error(w, g, rows, cols, x, n) <
                0.8 * mxt_output_error(w, q, rows, cols, x, n));
    free(x);
    free(w);
    free(H);
    free(g);
    free(q);
}

static void test_gptq_errors(void **state) {
    (void)state;
    const size_t rows = 3, cols = 40;
    float *w = mxt_make_weights(rows, cols, 110), wq[120];
    double *H = calloc(cols * cols, sizeof *H);
    assert_non_null(H);
    for (size_t i = 0; i < cols; i++)
        H[i * cols + i] = 1.0;
    char err[256];
    ptq_gptq_opts o = ptq_gptq_default_opts();
    assert_close(o.damp, PTQ_GPTQ_DAMP, 0, 0);
    assert_int_equal(o.block, PTQ_GPTQ_BLOCK);

    w[2 * cols + 33] = NAN;
    err[0] = 0;
    assert_int_equal(ptq_gptq(w, rows, cols, H, MX_INT4, MX_ROUND_EVEN, NULL, NULL, NULL, wq, NULL,
                              err, sizeof err),
                     PTQ_ERR_NONFINITE);
    assert_non_null(strstr(err, "w[2][33]"));
    assert_non_null(strstr(err, "not finite"));
    w[2 * cols + 33] = INFINITY;
    assert_int_equal(
        ptq_gptq(w, rows, cols, H, MX_INT4, MX_ROUND_EVEN, NULL, NULL, NULL, wq, NULL, NULL, 0),
        PTQ_ERR_NONFINITE);
    w[2 * cols + 33] = 0.5f;

    H[3] = NAN;
    assert_int_equal(ptq_gptq(w, rows, cols, H, MX_INT4, MX_ROUND_EVEN, NULL, NULL, NULL, wq, NULL,
                              err, sizeof err),
                     PTQ_ERR_NONFINITE);
    assert_non_null(strstr(err, "H[0][3]"));
    H[3] = 0.0;
    H[7 * cols + 7] = -1.0;
    assert_int_equal(ptq_gptq(w, rows, cols, H, MX_INT4, MX_ROUND_EVEN, NULL, NULL, NULL, wq, NULL,
                              err, sizeof err),
                     PTQ_ERR_NOT_PD);
    H[7 * cols + 7] = 1.0;

    assert_int_equal(ptq_gptq(w, rows, cols, H, MX_FP32, MX_ROUND_EVEN, NULL, NULL, NULL, wq, NULL,
                              err, sizeof err),
                     PTQ_ERR_ARG);
    assert_int_equal(ptq_gptq(w, rows, cols, H, MX_INT4, (mx_rounding)7, NULL, NULL, NULL, wq, NULL,
                              err, sizeof err),
                     PTQ_ERR_ARG);
    o.block = 48;
    assert_int_equal(ptq_gptq(w, rows, cols, H, MX_INT4, MX_ROUND_EVEN, &o, NULL, NULL, wq, NULL,
                              err, sizeof err),
                     PTQ_ERR_ARG);
    assert_non_null(strstr(err, "block = 48"));
    o.block = 0;
    assert_int_equal(ptq_gptq(w, rows, cols, H, MX_INT4, MX_ROUND_EVEN, &o, NULL, NULL, wq, NULL,
                              err, sizeof err),
                     PTQ_ERR_ARG);
    o = ptq_gptq_default_opts();
    o.damp = -1.0;
    assert_int_equal(ptq_gptq(w, rows, cols, H, MX_INT4, MX_ROUND_EVEN, &o, NULL, NULL, wq, NULL,
                              err, sizeof err),
                     PTQ_ERR_ARG);
    o.damp = NAN;
    assert_int_equal(ptq_gptq(w, rows, cols, H, MX_INT4, MX_ROUND_EVEN, &o, NULL, NULL, wq, NULL,
                              err, sizeof err),
                     PTQ_ERR_ARG);
    assert_int_equal(ptq_gptq(w, rows, cols, NULL, MX_INT4, MX_ROUND_EVEN, NULL, NULL, NULL, wq,
                              NULL, err, sizeof err),
                     PTQ_ERR_ARG);
    assert_int_equal(ptq_gptq(NULL, 0, cols, NULL, MX_INT4, MX_ROUND_EVEN, NULL, NULL, NULL, NULL,
                              NULL, err, sizeof err),
                     PTQ_OK);
    /* Updates that leave float range: w0 = 3e38 saturates at 6·2^125 ≈ 2.55e38 in E2M1, and
     * with ρ = 0.9 the error 0.45e38 pushes w1 = 3.3e38 to 3.7e38 > FLT_MAX. */
    const float big[] = {3.0e38f, 3.3e38f};
    const double Hc[] = {1.0, 0.9, 0.9, 1.0};
    const ptq_gptq_opts o0 = {0.0, 32};
    assert_int_equal(ptq_gptq(big, 1, 2, Hc, MX_FP4_E2M1, MX_ROUND_EVEN, &o0, NULL, NULL, wq, NULL,
                              err, sizeof err),
                     PTQ_ERR_NONFINITE);
    assert_non_null(strstr(err, "overflowed"));
    assert_string_equal(ptq_status_to_string(PTQ_ERR_NOT_PD), "matrix not positive definite");
    assert_string_equal(ptq_status_to_string(42), "unknown status");
    free(w);
    free(H);
}

/* In place (wq == w) gives what separate buffers give; outputs may be NULL. */
static void test_gptq_inplace(void **state) {
    (void)state;
    const size_t rows = 10, cols = 64, n = 200;
    float *x = mxt_make_calib(n, cols, 120), *w = mxt_make_weights(rows, cols, 121);
    double *H = mxt_hessian_of(x, n, cols);
    float *g = gptq_checked(w, rows, cols, H, MX_FP6_E2M3, MX_ROUND_EVEN, NULL, NULL);
    assert_int_equal(
        ptq_gptq(w, rows, cols, H, MX_FP6_E2M3, MX_ROUND_EVEN, NULL, NULL, NULL, w, NULL, NULL, 0),
        PTQ_OK);
    assert_true(mxt_same_floats("in place", w, g, rows * cols));
    free(x);
    free(w);
    free(H);
    free(g);
}

/* One and two OpenMP threads give the same bits (8 row chunks; 160 inputs, so OpenBLAS's
 * potrf/trtri would take their parallel path if GPTQ let them), for GPTQ and for U. */
static void test_gptq_threads(void **state) {
    (void)state;
    const size_t rows = 256, cols = 160, n = 400, nb = mx_num_blocks(cols);
    float *x = mxt_make_calib(n, cols, 130), *w = mxt_make_weights(rows, cols, 131);
    double *H = mxt_hessian_of(x, n, cols);
    uint8_t *c[2], *s[2];
    float *q[2];
    const int saved = omp_get_max_threads();
    const ptq_gptq_opts o = {0.01, 64};
    for (int t = 0; t < 2; t++) {
        c[t] = mxt_xmalloc(rows * cols);
        s[t] = mxt_xmalloc(rows * nb);
        q[t] = mxt_xmalloc(rows * cols * sizeof(float));
        omp_set_num_threads(t + 1);
        int st = ptq_gptq(w, rows, cols, H, MX_FP4_E2M1, MX_ROUND_EVEN, &o, c[t], s[t], q[t], NULL,
                          NULL, 0);
        omp_set_num_threads(saved);
        assert_int_equal(st, PTQ_OK);
    }
    /* The outputs are rounded, so a last-bit difference in U would rarely show in them: compare
     * U itself (plain OpenBLAS potrf/trtri calls differ between 1 and 2 threads at these n). */
    for (size_t m = 160; m <= 320; m += 160) {
        double *u[2];
        for (int t = 0; t < 2; t++) {
            u[t] = mxt_xmalloc(m * m * sizeof(double));
            for (size_t i = 0; i < m * m; i++)
                u[t][i] = (i / m == i % m ? 2.0 : 0.0) + H[(i / m % cols) * cols + i % m % cols];
            omp_set_num_threads(t + 1);
            int st = ptq_inv_chol_upper(u[t], m);
            omp_set_num_threads(saved);
            assert_int_equal(st, PTQ_OK);
        }
        assert_memory_equal(u[0], u[1], m * m * sizeof(double));
        free(u[0]);
        free(u[1]);
    }
    assert_true(mxt_same_bytes("codes 1 vs 2 threads", c[0], c[1], rows * cols));
    assert_true(mxt_same_bytes("scales 1 vs 2 threads", s[0], s[1], rows * nb));
    assert_true(mxt_same_floats("wq 1 vs 2 threads", q[0], q[1], rows * cols));
    for (int t = 0; t < 2; t++) {
        free(c[t]);
        free(s[t]);
        free(q[t]);
    }
    free(x);
    free(w);
    free(H);
}

int mxt_run_ptq_gptq(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gptq_beats_rtn),       cmocka_unit_test(test_gptq_identity_is_rtn),
        cmocka_unit_test(test_gptq_uncorrelated),    cmocka_unit_test(test_gptq_matches_reference),
        cmocka_unit_test(test_gptq_damp_escalation), cmocka_unit_test(test_gptq_dead_inputs),
        cmocka_unit_test(test_gptq_errors),          cmocka_unit_test(test_gptq_inplace),
        cmocka_unit_test(test_gptq_threads),
    };
    return cmocka_run_group_tests_name("ptq_gptq", tests, NULL, NULL);
}
