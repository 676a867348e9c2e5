/* test_nf4.c — quant/nf4: the table pinned to MX_FORMATS.md §6, the element code against a
 * brute-force nearest search (every midpoint and the floats around it, saturation, NaN), hand
 * blocks, zero / single-value / short / non-finite blocks, the nibble layout, range
 * dequantization against the full one (every range of a small tensor, random ranges of a large
 * one), Gaussian round-trip error with and without double quantization, double quantization by
 * hand and against a brute-force code search with its exact error bound, storage cost, argument
 * errors and thread-count independence. Set NF4_TEST_VERBOSE=1 to print the measured errors. */
#include "mxtest.h"
#include "quant/nf4.h"

#include <float.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------------------------- */

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    assert_non_null(p);
    return p;
}

static double gauss(uint64_t *s) {
    double u1 = 1.0 - tu_uniform(s, 0.0, 1.0), u2 = tu_uniform(s, 0.0, 1.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static bool verbose(void) { return getenv("NF4_TEST_VERBOSE") != NULL; }

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
        x[i] = (float)(gauss(&s) * (i < 3 * NF4_BLOCK ? 1.0 : 0.01));
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
        float *x = xmalloc(n * sizeof *x), *absmax = xmalloc(nf4_num_blocks(n) * sizeof *absmax);
        uint8_t *packed = xmalloc(nf4_packed_size(n));
        for (size_t i = 0; i < n; i++) /* magnitudes from 1e-30 to 1e30, subnormals too */
            x[i] = (float)(gauss(&s) * pow(10.0, (double)((i / NF4_BLOCK + z) % 13) * 5.0 - 30.0));
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
        x[i] = (float)gauss(&s);
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
        x[i] = (float)gauss(&s);
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
    float *y = xmalloc(big * sizeof *y), *yfull = xmalloc(big * sizeof *yfull);
    float *yout = xmalloc((big + 1) * sizeof *yout),
          *ya = xmalloc(nf4_num_blocks(big) * sizeof *ya);
    uint8_t *yp = xmalloc(nf4_packed_size(big));
    for (size_t i = 0; i < big; i++)
        y[i] = (float)gauss(&s);
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
    float *x = xmalloc(n * sizeof *x), *y = xmalloc(n * sizeof *y);
    float *absmax = xmalloc(nb * sizeof *absmax), *dec = xmalloc(nb * sizeof *dec);
    float *scales = xmalloc(nd * sizeof *scales), mean;
    int8_t *codes = xmalloc(nb);
    uint8_t *packed = xmalloc(nf4_packed_size(n));
    uint64_t s = 23;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)gauss(&s);
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
    float *dec = xmalloc(nb * sizeof *dec);
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
        mixed[j] = (float)fabs(gauss(&s) * 0.01);
    mixed[400] = 5.0f;
    assert_int_equal(nf4_dq_encode(mixed, 700, &mean, codes, scales), NF4_OK);
    check_dq(mixed, 700, mean, codes, scales);
    float *x = xmalloc(4096 * NF4_BLOCK * sizeof *x), am[4096];
    uint8_t *p = xmalloc(4096 * NF4_BLOCK / 2);
    for (size_t i = 0; i < 4096 * NF4_BLOCK; i++)
        x[i] = (float)(0.02 * gauss(&s));
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
    float *x = xmalloc(n * sizeof *x), *a[2], *o[2], *r[2];
    uint8_t *p[2];
    uint64_t s = 37;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)gauss(&s);
    x[64 * 333 + 1] = NAN;
    const int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        a[t] = xmalloc(nb * sizeof(float));
        o[t] = xmalloc(n * sizeof(float));
        r[t] = xmalloc(n * sizeof(float));
        p[t] = xmalloc(np);
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

int mxt_run_nf4(void) {
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
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_roundtrip_gaussian),
        cmocka_unit_test(test_dq_hand),
        cmocka_unit_test(test_dq_all_equal),
        cmocka_unit_test(test_dq_blocks),
        cmocka_unit_test(test_dq_extremes),
        cmocka_unit_test(test_dq_errors),
        cmocka_unit_test(test_sizes_and_bits),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("nf4", tests, NULL, NULL);
}
