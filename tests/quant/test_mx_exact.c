/* test_mx_exact.c — hand-computed blocks pinning every rule of MX_FORMATS.md §3: both tie modes
 * for every format, saturation, element subnormals, the exact shared exponent, clamping at
 * 2^-127, all-zero and Inf/NaN blocks, short tail blocks, in == out, fp32. Each expected value
 * below is worked out in its comment; the reference is also checked against them. */
#include "mxtest.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 8

typedef struct {
    const char *what;
    mx_format f;
    int scale; /* expected E8M0 byte */
    int n;
    float in[MAXN], even[MAXN], nearest[MAXN];
} exact_case;

/* All paths on one block: fake quant (out of place and in place), quantize + dequantize, and
 * the reference, each against the hand-computed want. Zeros in want are +0 and must be +0. */
static void check_block(const char *what, mx_format f, mx_rounding r, const float *in, int n,
                        const float *want, int scale) {
    float out[MAXN], inplace[MAXN], deq[MAXN], ref_out[MAXN];
    uint8_t codes[MAXN], ref_codes[MAXN], sc = 0, ref_sc = 0;
    char name[160];
    snprintf(name, sizeof name, "%s %s %s", what, mx_format_name(f), r ? "nearest" : "even");
    mx_fake_quant(in, out, 1, (size_t)n, f, r);
    memcpy(inplace, in, sizeof(float) * (size_t)n);
    mx_fake_quant(inplace, inplace, 1, (size_t)n, f, r);
    mx_quantize(in, codes, &sc, 1, (size_t)n, f, r);
    mx_dequantize(codes, &sc, deq, 1, (size_t)n, f);
    mxr_quantize_block(in, (size_t)n, f, r, ref_codes, &ref_sc, ref_out);
    bool ok = mxt_same_floats(name, out, want, (size_t)n) &&
              mxt_same_floats(name, inplace, want, (size_t)n) &&
              mxt_same_floats(name, deq, want, (size_t)n) &&
              mxt_same_floats(name, ref_out, want, (size_t)n) &&
              mxt_same_bytes(name, codes, ref_codes, (size_t)n);
    if (ok && (sc != scale || ref_sc != scale)) {
        print_error("%s: scale %d (reference %d), expected %d\n", name, sc, ref_sc, scale);
        ok = false;
    }
    if (!ok)
        fail();
}

/* clang-format off */
static const exact_case CASES[] = {
    /* INT8, amax 1.9921875 in [1,2): s = 0, step 2^-6. 3.5 steps -> 4 (both); 2.5 -> 2 | 3;
     * -0.5 -> 0 | -1; 127.5 steps -> 128 -> saturates to 127 (both); 0.4 steps -> 0. */
    {"int8 ties", MX_INT8, 127, 7,
     {1.0f, 3.5f / 64, 2.5f / 64, -2.5f / 64, 127.5f / 64, -0.5f / 64, 0.4f / 64},
     {1.0f, 4.0f / 64, 2.0f / 64, -2.0f / 64, 127.0f / 64, 0.0f, 0.0f},
     {1.0f, 4.0f / 64, 3.0f / 64, -3.0f / 64, 127.0f / 64, -1.0f / 64, 0.0f}},
    /* amax 3: s = 1, X = 2. 5/64 / 2 = 2.5 steps -> 2 | 3 steps, times 2. */
    {"int8 scale 2", MX_INT8, 128, 2, {3.0f, 5.0f / 64}, {3.0f, 4.0f / 64}, {3.0f, 6.0f / 64}},
    /* amax = 1 - 2^-24: floor(log2) = -1 (log2f would say 0), s = -1; x = 2 - 2^-23 -> 128 steps
     * -> saturates to 127/64, out 127/128. With s = 0 the answer would have been 1.0. */
    {"int8 exact log2", MX_INT8, 126, 1, {0x1.fffffep-1f}, {127.0f / 128}, {127.0f / 128}},
    /* INT6, s = 0, step 1/16: 1.5 steps -> 2; 2.5 -> 2 | 3; 31.5 -> 32 -> saturates to 31;
     * 0.5 -> 0 | 1. */
    {"int6 ties", MX_INT6, 127, 6,
     {1.0f, 0.09375f, 0.15625f, -0.15625f, 1.96875f, 0.03125f},
     {1.0f, 0.125f, 0.125f, -0.125f, 31.0f / 16, 0.0f},
     {1.0f, 0.125f, 0.1875f, -0.1875f, 31.0f / 16, 0.0625f}},
    /* INT4, amax 1.9: s = 0, step 1/4. 0.375 = 1.5 steps -> 0.5; 0.625 = 2.5 -> 0.5 | 0.75;
     * 0.125 -> 0 | 0.25; 1.875 = 7.5 -> 8 -> saturates to 7 (1.75); -1.9 -> -1.75. */
    {"int4 ties", MX_INT4, 127, 8,
     {1.0f, 0.375f, 0.625f, -0.625f, 0.125f, 1.875f, -1.9f, 0.3f},
     {1.0f, 0.5f, 0.5f, -0.5f, 0.0f, 1.75f, -1.75f, 0.25f},
     {1.0f, 0.5f, 0.75f, -0.75f, 0.25f, 1.75f, -1.75f, 0.25f}},
    /* INT2: range {-1, 0, 1}. amax 1.5: s = 0; 1.5 -> 2 (even) -> saturates to 1; 0.5 -> 0 | 1. */
    {"int2", MX_INT2, 127, 7,
     {1.5f, 0.5f, -0.5f, 0.4f, -1.2f, 1.0f, -0.75f},
     {1.0f, 0.0f, 0.0f, 0.0f, -1.0f, 1.0f, -1.0f},
     {1.0f, 1.0f, -1.0f, 0.0f, -1.0f, 1.0f, -1.0f}},
    /* E2M1, amax 7: s = 0. 2.5 -> 2 | 3; 5 -> 4 | 6; 0.25 (subnormal tie) -> 0 | 0.5;
     * 0.75 -> 1 (even mantissa, both); 1.25 -> 1 | 1.5; 7 -> 8 | 8 -> saturates to 6. */
    {"e2m1 ties", MX_FP4_E2M1, 127, 8,
     {6.0f, 2.5f, 5.0f, 0.25f, 0.75f, 1.25f, -5.0f, 7.0f},
     {6.0f, 2.0f, 4.0f, 0.0f, 1.0f, 1.0f, -4.0f, 6.0f},
     {6.0f, 3.0f, 6.0f, 0.5f, 1.0f, 1.5f, -6.0f, 6.0f}},
    /* amax 24: floor(log2) = 4, s = 2, X = 4. 10/4 = 2.5 -> 2 | 3; -1/4 = -0.25 -> 0 | -0.5. */
    {"e2m1 scale 4", MX_FP4_E2M1, 129, 3, {24.0f, 10.0f, -1.0f}, {24.0f, 8.0f, 0.0f},
     {24.0f, 12.0f, -2.0f}},
    /* E2M3, amax 7.75: s = 0. 4.25 -> 4 | 4.5; 4.75 -> 5 (both); 0.0625 -> 0 | 0.125;
     * 7.75 -> 8 -> saturates to 7.5; 0.1875 -> 0.25 (both). */
    {"e2m3 ties", MX_FP6_E2M3, 127, 7,
     {7.5f, 4.25f, 4.75f, 0.0625f, 7.75f, -4.25f, 0.1875f},
     {7.5f, 4.0f, 5.0f, 0.0f, 7.5f, -4.0f, 0.25f},
     {7.5f, 4.5f, 5.0f, 0.125f, 7.5f, -4.5f, 0.25f}},
    /* E3M2, amax 30: s = 0. 18 -> 16 | 20; 30 -> 28 (both, saturating 32); subnormal step 1/16:
     * 0.03125 -> 0 | 0.0625; 0.09375 -> 0.125 (both); 0.15625 -> 0.125 | 0.1875. */
    {"e3m2 ties", MX_FP6_E3M2, 127, 7,
     {28.0f, 18.0f, 30.0f, 0.03125f, 0.09375f, -18.0f, 0.15625f},
     {28.0f, 16.0f, 28.0f, 0.0f, 0.125f, -16.0f, 0.125f},
     {28.0f, 20.0f, 28.0f, 0.0625f, 0.125f, -20.0f, 0.1875f}},
    /* E4M3, amax 464: s = 0. 272 -> 256 | 288; 304 -> 320 (both); 2^-10 -> 0 | 2^-9;
     * 3*2^-10 -> 2^-8 (both); 464 -> 448 (both; 480 would be the NaN code). */
    {"e4m3 ties", MX_FP8_E4M3, 127, 7,
     {448.0f, 272.0f, 304.0f, 0x1p-10f, 0x3p-10f, 464.0f, -272.0f},
     {448.0f, 256.0f, 320.0f, 0.0f, 0x1p-8f, 448.0f, -256.0f},
     {448.0f, 288.0f, 320.0f, 0x1p-9f, 0x1p-8f, 448.0f, -288.0f}},
    /* amax 470*8: s = 3; 470 rounds to 480 > 448 -> saturates: out 448*8 (both). */
    {"e4m3 saturation", MX_FP8_E4M3, 130, 3, {448.0f * 8, 470.0f * 8, -470.0f * 8},
     {3584.0f, 3584.0f, -3584.0f}, {3584.0f, 3584.0f, -3584.0f}},
    /* E5M2, amax 61440: s = 0. 36864 -> 32768 | 40960; 61440 -> 57344 (never Inf);
     * 2^-17 -> 0 | 2^-16; 3*2^-17 -> 2^-15 (both). */
    {"e5m2 ties", MX_FP8_E5M2, 127, 6,
     {57344.0f, 36864.0f, 61440.0f, 0x1p-17f, -36864.0f, 0x3p-17f},
     {57344.0f, 32768.0f, 57344.0f, 0.0f, -32768.0f, 0x1p-15f},
     {57344.0f, 40960.0f, 57344.0f, 0x1p-16f, -40960.0f, 0x1p-15f}},
    /* FLT_MAX: s = 127 - 15 = 112; x = (2 - 2^-23) 2^15 rounds to 2^16 -> saturates: 1.75*2^127. */
    {"e5m2 flt_max", MX_FP8_E5M2, 239, 2, {FLT_MAX, -FLT_MAX}, {0x1.cp127f, -0x1.cp127f},
     {0x1.cp127f, -0x1.cp127f}},
    /* Clamped scale: amax 2^-140, s = -155 -> -127 (byte 0); x = v * 2^127: 2^-13 exact;
     * 2^-17 -> 0 | 2^-16 (out 2^-143); 3*2^-22 -> 0; -2^-16 exact (element subnormal). */
    {"e5m2 clamped", MX_FP8_E5M2, 0, 4, {0x1p-140f, 0x1p-144f, 0x3p-149f, -0x1p-143f},
     {0x1p-140f, 0.0f, 0.0f, -0x1p-143f}, {0x1p-140f, 0x1p-143f, 0.0f, -0x1p-143f}},
    /* INT8 clamped: amax 2^-128 (float subnormal): x = 0.5 = 32 steps; 1.5*2^-134 -> 0.75 step ->
     * 1 step = 2^-133; 2^-134 -> half a step -> 0 | 2^-133. */
    {"int8 clamped", MX_INT8, 0, 3, {0x1p-128f, 0x1.8p-134f, 0x1p-134f},
     {0x1p-128f, 0x1p-133f, 0.0f}, {0x1p-128f, 0x1p-133f, 0x1p-133f}},
    /* Just above the clamp: amax 1.5*2^-126 -> s = -126 (byte 1). */
    {"int8 smallest unclamped", MX_INT8, 1, 2, {0x1.8p-126f, 0x1p-133f}, {0x1.8p-126f, 0.0f},
     {0x1.8p-126f, 0x1p-132f}},
    /* E2M1 element subnormals at a clamped scale: amax 2^-126 -> s = -128 -> -127: x = 2. */
    {"e2m1 clamped", MX_FP4_E2M1, 0, 3, {0x1p-126f, 0x1p-129f, 0x1p-128f},
     {0x1p-126f, 0.0f, 0x1p-128f}, {0x1p-126f, 0x1p-128f, 0x1p-128f}},
};
/* clang-format on */

static void test_hand_cases(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const exact_case *c = &CASES[i];
        check_block(c->what, c->f, MX_ROUND_EVEN, c->in, c->n, c->even, c->scale);
        check_block(c->what, c->f, MX_ROUND_NEAREST, c->in, c->n, c->nearest, c->scale);
    }
}

/* Codes of a few hand cases: sign|exp|mantissa for FP, two's complement for INT. */
static void test_hand_codes(void **state) {
    (void)state;
    uint8_t codes[8], sc;
    const float e2m1[] = {6.0f, -6.0f, 0.5f, -0.5f, 3.0f, -1.0f, 0.0f, -0.0f};
    const uint8_t e2m1_codes[] = {0x7, 0xf, 0x1, 0x9, 0x5, 0xa, 0x0, 0x0};
    mx_quantize(e2m1, codes, &sc, 1, 8, MX_FP4_E2M1, MX_ROUND_EVEN);
    assert_int_equal(sc, 127);
    assert_true(mxt_same_bytes("e2m1 codes", codes, e2m1_codes, 8));
    const float int4[] = {1.75f, -1.75f, 0.25f, -0.25f, 1.0f, -1.0f, -0.1f, 0.0f};
    const uint8_t int4_codes[] = {0x7, 0x9, 0x1, 0xf, 0x4, 0xc, 0x0, 0x0};
    mx_quantize(int4, codes, &sc, 1, 8, MX_INT4, MX_ROUND_EVEN);
    assert_int_equal(sc, 127);
    assert_true(mxt_same_bytes("int4 codes", codes, int4_codes, 8));
    const float e4m3[] = {448.0f, -448.0f, 0x1p-9f, -1.0f, 500.0f};
    const uint8_t e4m3_codes[] = {0x7e, 0xfe, 0x01, 0xb8, 0x7e};
    mx_quantize(e4m3, codes, &sc, 1, 5, MX_FP8_E4M3, MX_ROUND_NEAREST);
    assert_int_equal(sc, 127);
    assert_true(mxt_same_bytes("e4m3 codes", codes, e4m3_codes, 5));
    const float e5m2[] = {61440.0f, -61440.0f, 57344.0f};
    const uint8_t e5m2_codes[] = {0x7b, 0xfb, 0x7b}; /* never the Inf code 0x7c */
    mx_quantize(e5m2, codes, &sc, 1, 3, MX_FP8_E5M2, MX_ROUND_NEAREST);
    assert_true(mxt_same_bytes("e5m2 codes", codes, e5m2_codes, 3));
    const float int2[] = {1.0f, -1.0f, 0.0f, -0.4f};
    const uint8_t int2_codes[] = {0x1, 0x3, 0x0, 0x0};
    mx_quantize(int2, codes, &sc, 1, 4, MX_INT2, MX_ROUND_NEAREST);
    assert_true(mxt_same_bytes("int2 codes", codes, int2_codes, 4));
}

/* All-zero blocks (with -0.0 inputs): scale 0, codes 0, outputs +0.0, every format. */
static void test_zero_blocks(void **state) {
    (void)state;
    float in[40], out[40];
    uint8_t codes[40], sc[2];
    for (int i = 0; i < 40; i++)
        in[i] = i % 3 ? 0.0f : -0.0f;
    const float zeros[40] = {0};
    for (int f = MX_INT8; f < MX_FORMAT_COUNT; f++)
        for (int r = 0; r < 2; r++) {
            mx_fake_quant(in, out, 1, 40, (mx_format)f, (mx_rounding)r);
            assert_true(mxt_same_floats("zero block", out, zeros, 40));
            memset(codes, 0xAA, sizeof codes);
            mx_quantize(in, codes, sc, 1, 40, (mx_format)f, (mx_rounding)r);
            assert_int_equal(sc[0], 0);
            assert_int_equal(sc[1], 0);
            for (int i = 0; i < 40; i++)
                assert_int_equal(codes[i], 0);
            mx_dequantize(codes, sc, out, 1, 40, (mx_format)f);
            assert_true(mxt_same_floats("zero block deq", out, zeros, 40));
        }
}

/* Inf/NaN make their block NaN (scale 255, codes 0) and leave the row's other blocks and the
 * other rows alone. rows 2 x cols 70: blocks [0,32) [32,64) [64,70). */
static void test_nonfinite_blocks(void **state) {
    (void)state;
    enum { R = 2, C = 70, NB = 3 };
    float in[R * C], out[R * C], deq[R * C], alone[32];
    uint8_t codes[R * C], sc[R * NB];
    uint64_t seed = 5;
    const float specials[] = {INFINITY, -INFINITY, NAN};
    for (int s = 0; s < 3; s++)
        for (int f = MX_INT8; f < MX_FORMAT_COUNT; f++) {
            for (int i = 0; i < R * C; i++)
                in[i] = (float)tu_uniform(&seed, -3.0, 3.0);
            in[0 * C + 40] = specials[s];           /* row 0, block 1 */
            in[1 * C + 69] = specials[(s + 1) % 3]; /* row 1, tail block */
            in[1 * C + 0] = specials[(s + 2) % 3];  /* row 1, block 0 */
            mx_fake_quant(in, out, R, C, (mx_format)f, MX_ROUND_EVEN);
            mx_quantize(in, codes, sc, R, C, (mx_format)f, MX_ROUND_EVEN);
            mx_dequantize(codes, sc, deq, R, C, (mx_format)f);
            assert_true(mxt_same_floats("nonfinite deq", deq, out, R * C));
            const int nan_block[R * NB] = {0, 1, 0, 1, 0, 1};
            for (int b = 0; b < R * NB; b++) {
                size_t row = (size_t)b / NB, j = (size_t)b % NB * 32;
                size_t n = C - j < 32 ? C - j : 32, off = row * C + j;
                if (nan_block[b]) {
                    assert_int_equal(sc[b], 255);
                    for (size_t i = 0; i < n; i++) {
                        assert_true(isnan(out[off + i]));
                        assert_int_equal(codes[off + i], 0);
                    }
                } else {
                    assert_int_not_equal(sc[b], 255);
                    mx_fake_quant(in + off, alone, 1, n, (mx_format)f, MX_ROUND_EVEN);
                    assert_true(mxt_same_floats("block beside a NaN block", out + off, alone, n));
                }
            }
        }
}

/* Short tail blocks get their own scale, and never borrow elements from the next row. */
static void test_tail_blocks(void **state) {
    (void)state;
    const size_t colss[] = {33, 40, 5, 1, 31, 64, 65};
    uint64_t seed = 11;
    for (size_t t = 0; t < sizeof colss / sizeof colss[0]; t++) {
        const size_t cols = colss[t], rows = 3, n = rows * cols, nb = mx_num_blocks(cols);
        float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
        float *ref = malloc(n * sizeof *ref), alone[32];
        uint8_t *codes = malloc(n), *ref_codes = malloc(n), sc[9], ref_sc[9];
        for (size_t i = 0; i < n; i++) /* rows of very different magnitudes */
            in[i] = (float)tu_uniform(&seed, -1.0, 1.0) * (i / cols == 1 ? 1e-3f : 1e3f);
        for (int f = MX_INT8; f < MX_FORMAT_COUNT; f++) {
            mx_fake_quant(in, out, rows, cols, (mx_format)f, MX_ROUND_NEAREST);
            mxr_quantize(in, ref_codes, ref_sc, ref, rows, cols, (mx_format)f, MX_ROUND_NEAREST);
            assert_true(mxt_same_floats("tail vs reference", out, ref, n));
            mx_quantize(in, codes, sc, rows, cols, (mx_format)f, MX_ROUND_NEAREST);
            assert_true(mxt_same_bytes("tail codes", codes, ref_codes, n));
            assert_true(mxt_same_bytes("tail scales", sc, ref_sc, rows * nb));
            for (size_t r = 0; r < rows; r++) {
                size_t j = (nb - 1) * 32, len = cols - j;
                mx_fake_quant(in + r * cols + j, alone, 1, len, (mx_format)f, MX_ROUND_NEAREST);
                assert_true(mxt_same_floats("tail alone", out + r * cols + j, alone, len));
            }
        }
        free(in);
        free(out);
        free(ref);
        free(codes);
        free(ref_codes);
    }
    /* pinned: 32 ones then 0.001 (INT8): the tail's own s = -10, 0.001*1024*64 = 65.536 -> 66
     * steps: 66/64 * 2^-10. Sharing the ones' scale it would have been 0. */
    float row[33], out[33];
    for (int i = 0; i < 32; i++)
        row[i] = 1.0f;
    row[32] = 0.001f;
    mx_fake_quant(row, out, 1, 33, MX_INT8, MX_ROUND_EVEN);
    assert_true(out[32] == 66.0f / 64 * 0x1p-10f);
    assert_true(out[0] == 1.0f);
}

/* fp32 is the identity, bit for bit (NaN payloads too), in place or not; quantize is a no-op. */
static void test_fp32(void **state) {
    (void)state;
    float in[5] = {1.0f, -0.0f, 0x1p-149f, FLT_MAX, 0.0f}, out[5];
    uint32_t payload = 0x7fc01234u;
    memcpy(&in[4], &payload, 4);
    mx_fake_quant(in, out, 1, 5, MX_FP32, MX_ROUND_EVEN);
    assert_memory_equal(in, out, sizeof in);
    mx_fake_quant(in, in, 1, 5, MX_FP32, MX_ROUND_EVEN);
    assert_memory_equal(in, out, sizeof in);
    uint8_t codes[5] = {9, 9, 9, 9, 9}, sc = 9;
    mx_quantize(in, codes, &sc, 1, 5, MX_FP32, MX_ROUND_EVEN);
    mx_dequantize(codes, &sc, out, 1, 5, MX_FP32);
    assert_int_equal(sc, 9);
    assert_int_equal(codes[0], 9);
    assert_memory_equal(in, out, sizeof in);
    mx_fake_quant(NULL, NULL, 0, 0, MX_INT8, MX_ROUND_EVEN); /* empty tensors touch nothing */
    mx_fake_quant(NULL, NULL, 3, 0, MX_INT8, MX_ROUND_EVEN);
}

int mxt_run_exact(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_cases),  cmocka_unit_test(test_hand_codes),
        cmocka_unit_test(test_zero_blocks), cmocka_unit_test(test_nonfinite_blocks),
        cmocka_unit_test(test_tail_blocks), cmocka_unit_test(test_fp32),
    };
    return cmocka_run_group_tests_name("mx_exact", tests, NULL, NULL);
}
