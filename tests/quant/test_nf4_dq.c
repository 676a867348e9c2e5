/* test_nf4_dq.c — quant/nf4's double quantization of the absmax values: Gaussian round-trip
 * error with and without it, by hand (ties to even), all-equal and empty inputs, against a
 * brute-force code search with its exact error bound (short blocks, subnormals, values near
 * 2^127), argument errors and the status strings. Set NF4_TEST_VERBOSE=1 to print the measured
 * errors. */
#include "mxtest.h"
#include "quant/nf4.h"

#include <stdlib.h>
#include <string.h>

static bool verbose(void) { return getenv("NF4_TEST_VERBOSE") != NULL; }

/* ---- round trip on Gaussian data ------------------------------------------------------------- */

static double rel_rms(const float *x, const float *y, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        den += (double)x[i] * x[i];
    }
    return sqrt(num / den);
}

/* 2^20 N(0,1) values. Plain NF4 measures a relative RMS error of 0.09201; with double
 * quantization every absmax moves by at most scale/2 (asserted exactly, and the bound is
 * reached) and the error grows by about 0.01% (0.09203). */
static void test_roundtrip_gaussian(void **state) {
    (void)state;
    const size_t n = (size_t)1 << 20, nb = nf4_num_blocks(n), nd = nf4_dq_num_blocks(nb);
    float *x = mxt_xmalloc(n * sizeof *x), *y = mxt_xmalloc(n * sizeof *y);
    float *absmax = mxt_xmalloc(nb * sizeof *absmax), *dec = mxt_xmalloc(nb * sizeof *dec);
    float *scales = mxt_xmalloc(nd * sizeof *scales), mean;
    int8_t *codes = mxt_xmalloc(nb);
    uint8_t *packed = mxt_xmalloc(nf4_packed_size(n));
    uint64_t s = 23;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)mxt_gauss(&s);
    nf4_quantize(x, n, packed, absmax);
    nf4_dequantize(packed, absmax, n, y);
    const double plain = rel_rms(x, y, n);
    assert_int_equal(nf4_dq_encode(absmax, nb, &mean, codes, scales), NF4_OK);
    nf4_dq_decode(mean, codes, scales, nb, dec);
    double worst = 0.0; /* max |absmax' − absmax| / (scale/2) */
    for (size_t j = 0; j < nb; j++) {
        const double err = fabs((double)dec[j] - absmax[j]), half = 0.5 * scales[j / 256];
        if (!(err <= half)) {
            print_error("absmax[%zu] = %a decoded %a: error %g > scale/2 = %g\n", j, absmax[j],
                        dec[j], err, half);
            fail();
        }
        worst = fmax(worst, err / half);
    }
    nf4_dequantize(packed, dec, n, y);
    const double dq = rel_rms(x, y, n);
    if (verbose())
        printf("nf4 N(0,1) n=%zu: rel RMS %.6f plain, %.6f double-quant (x%.5f); mean %.6f, "
               "max |dabsmax|/(scale/2) %.4f\n",
               n, plain, dq, dq / plain, mean, worst);
    assert_true(plain > 0.0915 && plain < 0.0925);
    assert_true(dq >= plain * 0.999 && dq <= 1.02 * plain);
    assert_true(worst > 0.9); /* the bound is tight, not vacuous */
    free(x);
    free(y);
    free(absmax);
    free(dec);
    free(scales);
    free(codes);
    free(packed);
}

/* ---- double quantization --------------------------------------------------------------------- */

/* mean 1, max 1 + 127d with d = 2^-10: U = 2^-22, scale = 127d/127 = d exactly, codes by hand
 * including ties to even on both sides of zero (±0.5, ±1.5, ±2.5, ±3.5). Symmetric offsets, so
 * the mean is exactly 1. */
static void test_dq_hand(void **state) {
    (void)state;
    const double d = 0x1p-10;
    const double off[] = {-127, 127, 3.5, -3.5, 2.5, -2.5, 0.5, -0.5, 0, 1.5, -1.5, 1, -1};
    const int want[] = {-127, 127, 4, -4, 2, -2, 0, 0, 0, 2, -2, 1, -1};
    const size_t nb = sizeof off / sizeof off[0];
    float a[13], dec[13], mean = -1.0f, scales[2] = {-1.0f, -1.0f};
    int8_t codes[13];
    for (size_t j = 0; j < nb; j++)
        a[j] = (float)(1.0 + off[j] * d);
    assert_int_equal(nf4_dq_encode(a, nb, &mean, codes, scales), NF4_OK);
    assert_true(mean == 1.0f);
    assert_true(scales[0] == (float)d);
    assert_true(scales[1] == -1.0f); /* one DQ block: nothing written past it */
    for (size_t j = 0; j < nb; j++)
        assert_int_equal(codes[j], want[j]);
    nf4_dq_decode(mean, codes, scales, nb, dec);
    for (size_t j = 0; j < nb; j++) {
        assert_true(dec[j] == (float)(1.0 + want[j] * d));
        assert_true(fabs((double)dec[j] - a[j]) <= 0.5 * d);
    }
}

/* All finite absmax equal: mean is that value, scales 0, codes 0, exact decode; a NaN among
 * them keeps its marker. All zero too; and nb == 0; and no finite value at all. */
static void test_dq_all_equal(void **state) {
    (void)state;
    float a[300], dec[300], mean, scales[2];
    int8_t codes[300];
    for (int j = 0; j < 300; j++)
        a[j] = 0.75f;
    a[5] = NAN;
    assert_int_equal(nf4_dq_encode(a, 300, &mean, codes, scales), NF4_OK);
    assert_true(mean == 0.75f);
    assert_true(scales[0] == 0.0f && scales[1] == 0.0f);
    nf4_dq_decode(mean, codes, scales, 300, dec);
    for (int j = 0; j < 300; j++) {
        assert_int_equal(codes[j], j == 5 ? NF4_DQ_NAN : 0);
        assert_true(j == 5 ? isnan(dec[j]) : dec[j] == 0.75f);
    }
    for (int j = 0; j < 300; j++)
        a[j] = 0.0f;
    assert_int_equal(nf4_dq_encode(a, 300, &mean, codes, scales), NF4_OK);
    nf4_dq_decode(mean, codes, scales, 300, dec);
    assert_true(mean == 0.0f);
    for (int j = 0; j < 300; j++)
        assert_true(codes[j] == 0 && dec[j] == 0.0f);
    mean = -1.0f;
    assert_int_equal(nf4_dq_encode(NULL, 0, &mean, NULL, NULL), NF4_OK);
    assert_true(mean == 0.0f);
    const float nans[3] = {NAN, INFINITY, NAN};
    assert_int_equal(nf4_dq_encode(nans, 3, &mean, codes, scales), NF4_OK);
    assert_true(mean == 0.0f && scales[0] == 0.0f);
    for (int j = 0; j < 3; j++)
        assert_int_equal(codes[j], NF4_DQ_NAN);
}

/* Brute force: k ∈ [-127, 127] minimizing |a − (mean + k·s)|, ties to even (exact in double). */
static int dq_ref_code(float a, double mean, double s) {
    int best = -127;
    for (int k = -126; k <= 127; k++) {
        const double e = fabs(a - (mean + k * s)), eb = fabs(a - (mean + best * s));
        if (e < eb || (e == eb && k % 2 == 0))
            best = k;
    }
    return best;
}

/* Checks one encoding against the documented rules; returns the max error / (scale/2). */
static double check_dq(const float *a, size_t nb, float mean, const int8_t *codes,
                       const float *scales) {
    double sum = 0.0, amax = 0.0;
    size_t cnt = 0;
    for (size_t j = 0; j < nb; j++)
        if (isfinite(a[j])) {
            sum += a[j];
            cnt++;
            amax = fmax(amax, a[j]);
        }
    int ex;
    frexp(amax, &ex);
    const double u = ldexp(1.0, ex - 23 > -149 ? ex - 23 : -149);
    /* mean: the float mean, on the grid of U, at most U/2 (+ its float rounding) off */
    const double exact = sum / (double)cnt;
    assert_true(fmod((double)mean, u) == 0.0);
    assert_true(fabs((double)mean - exact) <= 0.5 * u + 0x1p-24 * exact);
    assert_true(mean == (float)(rint((double)(float)exact / u) * u));
    float *dec = mxt_xmalloc(nb * sizeof *dec);
    nf4_dq_decode(mean, codes, scales, nb, dec);
    double worst = 0.0;
    for (size_t b = 0; b < nf4_dq_num_blocks(nb); b++) {
        const size_t j0 = b * NF4_DQ_BLOCK, j1 = j0 + NF4_DQ_BLOCK < nb ? j0 + NF4_DQ_BLOCK : nb;
        const double s = scales[b];
        double cmax = 0.0;
        for (size_t j = j0; j < j1; j++)
            if (isfinite(a[j]))
                cmax = fmax(cmax, fabs(a[j] - (double)mean));
        /* the smallest multiple of U with 127·s >= cmax */
        assert_true(fmod(s, u) == 0.0);
        assert_true(127.0 * s >= cmax && 127.0 * (s - u) < cmax);
        for (size_t j = j0; j < j1; j++) {
            if (!isfinite(a[j])) {
                assert_int_equal(codes[j], NF4_DQ_NAN);
                assert_true(isnan(dec[j]));
                continue;
            }
            const int want = dq_ref_code(a[j], mean, s);
            if (codes[j] != want) {
                print_error("a[%zu] = %a: code %d, expected %d\n", j, a[j], codes[j], want);
                fail();
            }
            const double d = fmax((double)mean + want * s, 0.0); /* exact, also in float */
            assert_true((double)dec[j] == d);
            const double err = fabs((double)dec[j] - a[j]);
            assert_true(err <= 0.5 * s);
            worst = fmax(worst, err / (0.5 * s));
        }
    }
    free(dec);
    return worst;
}

/* 256 + 37 values (a full DQ block and a short one with its own scale), with a zero absmax (its
 * decoded value stays >= 0), a NaN, and the short block much narrower than the full one. */
static void test_dq_blocks(void **state) {
    (void)state;
    const size_t nb = 256 + 37;
    float a[256 + 37], mean, scales[3] = {-1.0f, -1.0f, -1.0f};
    int8_t codes[256 + 37];
    uint64_t s = 29;
    for (size_t j = 0; j < nb; j++)
        a[j] = (float)(j < 256 ? tu_uniform(&s, 1.5, 3.5) : tu_uniform(&s, 2.4, 2.6));
    a[3] = 0.0f;
    a[270] = NAN;
    assert_int_equal(nf4_dq_encode(a, nb, &mean, codes, scales), NF4_OK);
    assert_true(scales[2] == -1.0f);
    assert_true(scales[1] < 0.1f * scales[0]);
    check_dq(a, nb, mean, codes, scales);
    float dec[256 + 37];
    nf4_dq_decode(mean, codes, scales, nb, dec);
    assert_true(dec[3] >= 0.0f && dec[3] <= 0.5f * scales[0]);
}

/* Extremes: subnormal absmax values, values near 2^127, one outlier, and many DQ blocks of
 * Gaussian-block absmax values. */
static void test_dq_extremes(void **state) {
    (void)state;
    float mean, scales[64];
    int8_t codes[4096];
    const float sub[5] = {1e-45f, 3e-45f, 2e-40f, 0.0f, 7e-39f};
    assert_int_equal(nf4_dq_encode(sub, 5, &mean, codes, scales), NF4_OK);
    check_dq(sub, 5, mean, codes, scales);
    const float huge[4] = {0x1.fffffep126f, 1e38f, 3.0f, 0x1p126f};
    assert_int_equal(nf4_dq_encode(huge, 4, &mean, codes, scales), NF4_OK);
    check_dq(huge, 4, mean, codes, scales);
    float mixed[700];
    uint64_t s = 31;
    for (int j = 0; j < 700; j++)
        mixed[j] = (float)fabs(mxt_gauss(&s) * 0.01);
    mixed[400] = 5.0f;
    assert_int_equal(nf4_dq_encode(mixed, 700, &mean, codes, scales), NF4_OK);
    check_dq(mixed, 700, mean, codes, scales);
    float *x = mxt_xmalloc(4096 * NF4_BLOCK * sizeof *x), am[4096];
    uint8_t *p = mxt_xmalloc(4096 * NF4_BLOCK / 2);
    for (size_t i = 0; i < 4096 * NF4_BLOCK; i++)
        x[i] = (float)(0.02 * mxt_gauss(&s));
    nf4_quantize(x, 4096 * NF4_BLOCK, p, am);
    assert_int_equal(nf4_dq_encode(am, 4096, &mean, codes, scales), NF4_OK);
    assert_true(check_dq(am, 4096, mean, codes, scales) > 0.9);
    free(x);
    free(p);
}

static void test_dq_errors(void **state) {
    (void)state;
    float a[3] = {1.0f, 2.0f, 3.0f}, mean = -5.0f, scales[1] = {-5.0f};
    int8_t codes[3] = {9, 9, 9};
    assert_int_equal(nf4_dq_encode(a, 3, NULL, codes, scales), NF4_ERR_ARG);
    assert_int_equal(nf4_dq_encode(NULL, 3, &mean, codes, scales), NF4_ERR_ARG);
    assert_int_equal(nf4_dq_encode(a, 3, &mean, NULL, scales), NF4_ERR_ARG);
    assert_int_equal(nf4_dq_encode(a, 3, &mean, codes, NULL), NF4_ERR_ARG);
    a[1] = -0.5f;
    assert_int_equal(nf4_dq_encode(a, 3, &mean, codes, scales), NF4_ERR_RANGE);
    a[1] = 0x1p127f;
    assert_int_equal(nf4_dq_encode(a, 3, &mean, codes, scales), NF4_ERR_RANGE);
    assert_true(mean == -5.0f && scales[0] == -5.0f && codes[0] == 9); /* nothing written */
    a[1] = -0.0f;                                                      /* fine */
    assert_int_equal(nf4_dq_encode(a, 3, &mean, codes, scales), NF4_OK);
    assert_string_equal(nf4_status_to_string(NF4_OK), "ok");
    assert_string_equal(nf4_status_to_string(NF4_ERR_ARG), "bad argument");
    assert_non_null(strstr(nf4_status_to_string(NF4_ERR_RANGE), "range"));
    assert_string_equal(nf4_status_to_string(42), "unknown status");
}

int mxt_run_nf4_dq(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_gaussian), cmocka_unit_test(test_dq_hand),
        cmocka_unit_test(test_dq_all_equal),       cmocka_unit_test(test_dq_blocks),
        cmocka_unit_test(test_dq_extremes),        cmocka_unit_test(test_dq_errors),
    };
    return cmocka_run_group_tests_name("nf4_dq", tests, NULL, NULL);
}
