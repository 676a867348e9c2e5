/* test_nf4_code.c — quant/nf4, the code and its blocks: the table pinned to MX_FORMATS.md §6, the
 * element code against a brute-force nearest search (every midpoint and the floats around it,
 * saturation, NaN), hand blocks, zero / single-value / short / non-finite blocks, the nibble
 * layout, and random tensors of many sizes against the definition. */
#include "mxtest.h"
#include "quant/nf4.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------------------------- */

/* MX_FORMATS.md §6, digit for digit. */
static const double SPEC[16] = {-1.0,
                                -0.6961928009986877,
                                -0.5250730514526367,
                                -0.39491748809814453,
                                -0.28444138169288635,
                                -0.18477343022823334,
                                -0.09105003625154495,
                                0.0,
                                0.07958029955625534,
                                0.16093020141124725,
                                0.24611230194568634,
                                0.33791524171829224,
                                0.44070982933044434,
                                0.5626170039176941,
                                0.7229568362236023,
                                1.0};

/* (t[k] + t[k+1]) / 2 exactly: adjacent table floats sum exactly in double. */
static double mid_exact(int k) {
    const float *t = nf4_table();
    return ((double)t[k] + (double)t[k + 1]) / 2.0;
}

/* Nearest table index by exhaustive search in double, ties to the lower index (strict <);
 * |v| > 1 is clamped first (saturation), NaN is the zero code. Distances near a midpoint are
 * between floats of similar size, so they are exact in double. */
static int ref_code(float v) {
    if (isnan(v))
        return NF4_CODE_ZERO;
    const double x = v > 1.0f ? 1.0 : v < -1.0f ? -1.0 : (double)v;
    const float *t = nf4_table();
    int best = 0;
    for (int k = 1; k < 16; k++)
        if (fabs(x - t[k]) < fabs(x - t[best]))
            best = k;
    return best;
}

static float max_abs(const float *x, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++)
        m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* Every element of a quantized tensor against the definition: absmax = max |x| per block and
 * code = nf4_code(x / absmax) = the brute-force nearest index. Finite x only. */
static void check_definition(const float *x, size_t n, const uint8_t *packed, const float *absmax) {
    for (size_t b = 0; b < nf4_num_blocks(n); b++) {
        const size_t i0 = b * NF4_BLOCK, len = n - i0 < NF4_BLOCK ? n - i0 : NF4_BLOCK;
        assert_true(absmax[b] == max_abs(x + i0, len));
        for (size_t i = i0; i < i0 + len; i++) {
            const float q = absmax[b] == 0.0f ? 0.0f : x[i] / absmax[b];
            const int want = ref_code(q);
            if (nf4_code_at(packed, i) != want || nf4_code(q) != want) {
                print_error("x[%zu] = %a, absmax %a: code %d, nf4_code %d, expected %d\n", i, x[i],
                            absmax[b], nf4_code_at(packed, i), nf4_code(q), want);
                fail();
            }
        }
    }
}

/* ---- table and element code ------------------------------------------------------------------ */

static void test_table(void **state) {
    (void)state;
    const float *t = nf4_table();
    for (int i = 0; i < 16; i++) {
        assert_true((double)t[i] == SPEC[i]); /* the §6 constants are floats: no rounding */
        assert_true(t[i] == (float)SPEC[i]);
    }
    for (int i = 0; i < 15; i++)
        assert_true(t[i] < t[i + 1]);
    assert_true(t[0] == -1.0f && t[15] == 1.0f);
    assert_true(t[7] == 0.0f && !signbit(t[7]));
}

static void test_code_values(void **state) {
    (void)state;
    const float *t = nf4_table();
    for (int i = 0; i < 16; i++)
        assert_int_equal(nf4_code(t[i]), i);
    assert_int_equal(nf4_code(-0.0f), 7);
    assert_int_equal(nf4_code(FLT_TRUE_MIN), 7);
    assert_int_equal(nf4_code(-FLT_TRUE_MIN), 7);
    /* saturation at ±1 and clamping beyond (impossible after absmax scaling, defined anyway) */
    assert_int_equal(nf4_code(nextafterf(1.0f, 0.0f)), 15);
    assert_int_equal(nf4_code(nextafterf(-1.0f, 0.0f)), 0);
    assert_int_equal(nf4_code(nextafterf(1.0f, 2.0f)), 15);
    assert_int_equal(nf4_code(nextafterf(-1.0f, -2.0f)), 0);
    assert_int_equal(nf4_code(1.5f), 15);
    assert_int_equal(nf4_code(-7.0f), 0);
    assert_int_equal(nf4_code(FLT_MAX), 15);
    assert_int_equal(nf4_code(-FLT_MAX), 0);
    assert_int_equal(nf4_code(INFINITY), 15);
    assert_int_equal(nf4_code(-INFINITY), 0);
    assert_int_equal(nf4_code(NAN), NF4_CODE_ZERO);
    assert_int_equal(nf4_code(-NAN), NF4_CODE_ZERO);
}

/* Every midpoint: six are floats (exact ties, which go to the lower index), nine lie between two
 * floats (the one below goes down, the one above goes up). 200 floats on each side against the
 * brute force, then random values over [-1.25, 1.25]. */
static void test_code_midpoints(void **state) {
    (void)state;
    int ties = 0;
    for (int k = 0; k < 15; k++) {
        const double m = mid_exact(k);
        float lo = (float)m;
        if ((double)lo > m)
            lo = nextafterf(lo, -INFINITY); /* largest float <= m */
        const float hi = nextafterf(lo, INFINITY);
        assert_true((double)hi > m);
        if ((double)lo == m) {
            ties++;
            assert_int_equal(nf4_code(lo), k); /* exactly halfway: the lower index */
        } else {
            assert_int_equal(nf4_code(lo), k);
        }
        assert_int_equal(nf4_code(hi), k + 1);
        assert_int_equal(nf4_code(nextafterf(lo, -INFINITY)), k);
        float v = lo, w = hi;
        for (int s = 0; s < 200; s++) {
            assert_int_equal(nf4_code(v), ref_code(v));
            assert_int_equal(nf4_code(w), ref_code(w));
            v = nextafterf(v, -INFINITY);
            w = nextafterf(w, INFINITY);
        }
    }
    assert_int_equal(ties, 6);
    uint64_t s = 5;
    for (int i = 0; i < 100000; i++) {
        const float v = (float)tu_uniform(&s, -1.25, 1.25);
        if (nf4_code(v) != ref_code(v)) {
            print_error("nf4_code(%a) = %d, expected %d\n", v, nf4_code(v), ref_code(v));
            fail();
        }
    }
}

/* ---- blocks ---------------------------------------------------------------------------------- */

/* absmax 4, a power of two, so x / 4 = v exactly and the codes follow by hand from §6's
 * midpoints (-0.848, -0.611, -0.460, -0.340, -0.235, -0.138, -0.0455, 0.0398, 0.120, 0.204,
 * 0.292, 0.389, 0.502, 0.643, 0.861). */
static void test_hand_block(void **state) {
    (void)state;
    static const struct {
        float v;
        int code;
    } cases[] = {
        {1.0f, 15},  {0.5f, 12},  {0.51f, 13}, {-0.05f, 6},  {-0.04f, 7},  {0.03f, 7},  {0.04f, 8},
        {0.9f, 15},  {0.85f, 14}, {-0.85f, 0}, {-0.84f, 1},  {0.2f, 9},    {0.21f, 10}, {-1.0f, 0},
        {0.0f, 7},   {-0.3f, 4},  {0.3f, 11},  {0.7f, 14},   {-0.5f, 2},   {-0.65f, 1}, {-0.1f, 6},
        {-0.15f, 5}, {0.1f, 8},   {0.15f, 9},  {-0.4f, 3},   {0.4f, 12},   {0.6f, 13},  {-0.2f, 5},
        {-0.25f, 4}, {0.25f, 10}, {0.35f, 11}, {-0.55f, 2},  {-0.75f, 1},  {0.45f, 12}, {-0.35f, 3},
        {0.08f, 8},  {0.12f, 8},  {0.125f, 9}, {-0.046f, 6}, {-0.045f, 7}, {0.95f, 15}, {0.8f, 14},
    };
    const size_t nc = sizeof cases / sizeof cases[0];
    const float *t = nf4_table();
    float x[NF4_BLOCK], out[NF4_BLOCK], absmax[2] = {-1.0f, -1.0f};
    uint8_t packed[NF4_BLOCK / 2 + 1];
    for (size_t i = 0; i < NF4_BLOCK; i++)
        x[i] = 4.0f * cases[i % nc].v;
    memset(packed, 0xEE, sizeof packed);
    nf4_quantize(x, NF4_BLOCK, packed, absmax);
    assert_true(absmax[0] == 4.0f);
    assert_true(absmax[1] == -1.0f); /* one block: nothing written past it */
    assert_int_equal(packed[NF4_BLOCK / 2], 0xEE);
    nf4_dequantize(packed, absmax, NF4_BLOCK, out);
    for (size_t i = 0; i < NF4_BLOCK; i++) {
        const int want = cases[i % nc].code;
        if (nf4_code_at(packed, i) != want) {
            print_error("v = %g: code %d, expected %d\n", cases[i % nc].v, nf4_code_at(packed, i),
                        want);
            fail();
        }
        assert_true(out[i] == t[want] * 4.0f);
    }
    /* element 1 is 2.0 (v = 0.5, code 12): 4 · 0.44070982933044434 */
    assert_true(out[1] == 1.7628393173217773f);
    assert_int_equal(packed[0], 15 | 12 << 4);
    /* absmax 3 (not a power of two): x / 3 in float, then the nearest value */
    const float y[4] = {1.5f, -3.0f, 0.12f, 3.0f};
    float ya[1], yo[4];
    uint8_t yp[2];
    nf4_quantize(y, 4, yp, ya);
    assert_true(ya[0] == 3.0f);
    assert_int_equal(nf4_code_at(yp, 0), 12); /* 0.5 */
    assert_int_equal(nf4_code_at(yp, 1), 0);  /* -1 */
    assert_int_equal(nf4_code_at(yp, 2), 8);  /* 0.04 > 0.0398 */
    assert_int_equal(nf4_code_at(yp, 3), 15);
    nf4_dequantize(yp, ya, 4, yo);
    assert_true(yo[0] == t[12] * 3.0f && yo[1] == -3.0f && yo[2] == t[8] * 3.0f && yo[3] == 3.0f);
}

/* The tensor kernel (vectorized) on exact ties: with absmax 1 and 2, elements on each midpoint
 * and its two neighbouring floats. */
static void test_block_ties(void **state) {
    (void)state;
    for (float scale = 1.0f; scale <= 2.0f; scale *= 2.0f) {
        float x[NF4_BLOCK] = {0};
        uint8_t packed[NF4_BLOCK / 2];
        float absmax[1];
        x[0] = scale; /* absmax */
        for (int k = 0; k < 15; k++) {
            double m = mid_exact(k);
            float lo = (float)m;
            if ((double)lo > m)
                lo = nextafterf(lo, -INFINITY);
            x[1 + 3 * k] = scale * lo;
            x[2 + 3 * k] = scale * nextafterf(lo, INFINITY);
            x[3 + 3 * k] = scale * nextafterf(lo, -INFINITY);
        }
        nf4_quantize(x, NF4_BLOCK, packed, absmax);
        assert_true(absmax[0] == scale);
        for (int k = 0; k < 15; k++) {
            assert_int_equal(nf4_code_at(packed, 1 + 3 * k), k);
            assert_int_equal(nf4_code_at(packed, 2 + 3 * k), k + 1);
            assert_int_equal(nf4_code_at(packed, 3 + 3 * k), k);
        }
        check_definition(x, NF4_BLOCK, packed, absmax);
    }
}

/* A zero block (with -0.0), a block with one nonzero value, a short zero block. */
static void test_zero_and_single(void **state) {
    (void)state;
    const size_t n = 2 * NF4_BLOCK + 10;
    float x[2 * NF4_BLOCK + 10] = {0}, out[2 * NF4_BLOCK + 10], absmax[3];
    uint8_t packed[NF4_BLOCK + 5];
    x[3] = -0.0f;
    x[NF4_BLOCK + 17] = -3.0f;
    x[2 * NF4_BLOCK + 9] = -0.0f;
    nf4_quantize(x, n, packed, absmax);
    assert_true(absmax[0] == 0.0f && !signbit(absmax[0]));
    assert_true(absmax[1] == 3.0f);
    assert_true(absmax[2] == 0.0f && !signbit(absmax[2]));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(nf4_code_at(packed, i), i == NF4_BLOCK + 17 ? 0 : NF4_CODE_ZERO);
    for (size_t j = 0; j < NF4_BLOCK / 2; j++)
        assert_int_equal(packed[j], 0x77);
    nf4_dequantize(packed, absmax, n, out);
    for (size_t i = 0; i < n; i++) {
        if (i == NF4_BLOCK + 17)
            assert_true(out[i] == -3.0f);
        else
            assert_true(out[i] == 0.0f && !signbit(out[i])); /* exact +0 */
    }
}

/* n = 64·3 + 5: four blocks, the last one of 5 elements with its own absmax; 99 bytes; element 0
 * in the low nibble; the last byte's high nibble 0; nothing written past the sizes. Then tiny
 * odd tensors by hand. */
static void test_short_block_and_packing(void **state) {
    (void)state;
    const size_t n = 3 * NF4_BLOCK + 5;
    assert_int_equal(nf4_num_blocks(n), 4);
    assert_int_equal(nf4_packed_size(n), 99);
    float x[3 * NF4_BLOCK + 5], absmax[5];
    uint8_t packed[100];
    uint64_t s = 7;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(mxt_gauss(&s) * (i < 3 * NF4_BLOCK ? 1.0 : 0.01));
    memset(packed, 0xEE, sizeof packed);
    absmax[4] = -1.0f;
    nf4_quantize(x, n, packed, absmax);
    assert_true(absmax[3] == max_abs(x + 3 * NF4_BLOCK, 5));
    assert_true(absmax[3] < 0.1f);
    assert_true(absmax[4] == -1.0f);
    assert_int_equal(packed[99], 0xEE);
    check_definition(x, n, packed, absmax);
    const int c0 = nf4_code(x[0] / absmax[0]), c1 = nf4_code(x[1] / absmax[0]);
    assert_int_equal(packed[0], c0 | c1 << 4);
    assert_int_equal(packed[98], nf4_code(x[n - 1] / absmax[3])); /* high nibble 0 */

    uint8_t p[2] = {0xEE, 0xEE};
    float a[1], o[3];
    const float one[1] = {-2.5f};
    nf4_quantize(one, 1, p, a);
    assert_true(a[0] == 2.5f);
    assert_int_equal(p[0], 0x00); /* code 0, padding nibble 0 */
    assert_int_equal(p[1], 0xEE);
    nf4_dequantize(p, a, 1, o);
    assert_true(o[0] == -2.5f);
    const float two[2] = {1.0f, -0.5f};
    nf4_quantize(two, 2, p, a);
    assert_int_equal(p[0], 0x2F); /* element 0: 15 low, element 1: 2 high */
    const float three[3] = {0.0f, 1.0f, -1.0f};
    nf4_quantize(three, 3, p, a);
    assert_int_equal(p[0], 0xF7);
    assert_int_equal(p[1], 0x00);
    nf4_dequantize(p, a, 3, o);
    assert_true(o[0] == 0.0f && o[1] == 1.0f && o[2] == -1.0f);
    nf4_quantize(x, 0, p, a); /* n = 0 writes nothing */
    assert_int_equal(p[0], 0xF7);
}

/* Random tensors of many sizes (odd ones, partial blocks) against the definition. */
static void test_matches_definition(void **state) {
    (void)state;
    const size_t sizes[] = {1, 2, 3, 63, 64, 65, 127, 128, 129, 200, 1001, 64 * 300 + 1};
    uint64_t s = 11;
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        const size_t n = sizes[z];
        float *x = mxt_xmalloc(n * sizeof *x),
              *absmax = mxt_xmalloc(nf4_num_blocks(n) * sizeof *absmax);
        uint8_t *packed = mxt_xmalloc(nf4_packed_size(n));
        for (size_t i = 0; i < n; i++) /* magnitudes from 1e-30 to 1e30, subnormals too */
            x[i] =
                (float)(mxt_gauss(&s) * pow(10.0, (double)((i / NF4_BLOCK + z) % 13) * 5.0 - 30.0));
        if (n > 10)
            x[5] = 1e-44f;
        nf4_quantize(x, n, packed, absmax);
        check_definition(x, n, packed, absmax);
        free(x);
        free(absmax);
        free(packed);
    }
}

/* NaN, +Inf, -Inf (the last in a short block): absmax NaN, codes 7, outputs NaN; the finite
 * block next to them is unaffected. */
static void test_nonfinite(void **state) {
    (void)state;
    const size_t n = 3 * NF4_BLOCK + 3;
    float x[3 * NF4_BLOCK + 3], out[3 * NF4_BLOCK + 3], absmax[4], a0[1], o0[NF4_BLOCK];
    uint8_t packed[98], p0[NF4_BLOCK / 2];
    uint64_t s = 13;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)mxt_gauss(&s);
    x[NF4_BLOCK + 5] = NAN;
    x[2 * NF4_BLOCK + 63] = INFINITY;
    x[3 * NF4_BLOCK + 1] = -INFINITY;
    nf4_quantize(x, n, packed, absmax);
    nf4_dequantize(packed, absmax, n, out);
    for (int b = 1; b < 4; b++)
        assert_true(isnan(absmax[b]));
    for (size_t i = NF4_BLOCK; i < n; i++) {
        assert_int_equal(nf4_code_at(packed, i), NF4_CODE_ZERO);
        assert_true(isnan(out[i]));
    }
    nf4_quantize(x, NF4_BLOCK, p0, a0);
    nf4_dequantize(p0, a0, NF4_BLOCK, o0);
    assert_true(a0[0] == absmax[0] && isfinite(absmax[0]));
    assert_true(mxt_same_bytes("finite block", packed, p0, NF4_BLOCK / 2));
    assert_true(mxt_same_floats("finite block", out, o0, NF4_BLOCK));
}

int mxt_run_nf4_code(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_code_values),
        cmocka_unit_test(test_code_midpoints),
        cmocka_unit_test(test_hand_block),
        cmocka_unit_test(test_block_ties),
        cmocka_unit_test(test_zero_and_single),
        cmocka_unit_test(test_short_block_and_packing),
        cmocka_unit_test(test_matches_definition),
        cmocka_unit_test(test_nonfinite),
    };
    return cmocka_run_group_tests_name("nf4_code", tests, NULL, NULL);
}
