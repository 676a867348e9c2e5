/* test_mx_sns.c — Slice-and-Scale: the integer fast path against the definition
 * quantize_dst(dequantize_src(.)) computed twice (library kernels and scalar reference), for
 * every supported src -> dst pair and both roundings, on quantizer-made anchors and on
 * arbitrary codes and scale bytes; plus hand-computed blocks and the unsupported pairs. */
#include "mxtest.h"

#include <stdlib.h>
#include <string.h>

static const mx_format ANCHORS[] = {MX_INT8, MX_FP8_E4M3, MX_FP8_E5M2};

static void test_sns_supported(void **state) {
    (void)state;
    for (int s = 0; s < MX_FORMAT_COUNT; s++)
        for (int d = 0; d < MX_FORMAT_COUNT; d++) {
            int want = (s == MX_INT8 || s == MX_FP8_E4M3 || s == MX_FP8_E5M2) && d != MX_FP32;
            assert_int_equal(mx_sns_supported((mx_format)s, (mx_format)d), want);
        }
    assert_int_equal(mx_sns_supported(MX_INT8, MX_FORMAT_COUNT), 0);
    assert_int_equal(mx_sns_supported(MX_FORMAT_COUNT, MX_INT4), 0);
}

/* Unsupported pairs write nothing. */
static void test_sns_unsupported(void **state) {
    (void)state;
    uint8_t sc[2] = {127, 127}, codes[40] = {1, 2, 3}, dc[40], ds[2];
    const mx_format bad[][2] = {{MX_INT4, MX_INT2},
                                {MX_INT8, MX_FP32},
                                {MX_FP32, MX_INT8},
                                {MX_FP4_E2M1, MX_FP4_E2M1},
                                {MX_FP6_E3M2, MX_INT2}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(dc, 0xAB, sizeof dc);
        memset(ds, 0xAB, sizeof ds);
        mx_slice_and_scale(codes, sc, bad[i][0], dc, ds, bad[i][1], 1, 40, MX_ROUND_EVEN);
        for (int k = 0; k < 40; k++)
            assert_int_equal(dc[k], 0xAB);
        assert_int_equal(ds[0], 0xAB);
        assert_int_equal(ds[1], 0xAB);
    }
}

static void check_sns_block(const char *what, mx_format src, const uint8_t *codes, uint8_t e,
                            size_t n, mx_format dst, mx_rounding r, const uint8_t *want,
                            uint8_t want_e) {
    uint8_t dc[32], ds;
    mx_slice_and_scale(codes, &e, src, dc, &ds, dst, 1, n, r);
    if (!mxt_same_bytes(what, dc, want, n))
        fail();
    if (ds != want_e) {
        print_error("%s: scale %d, expected %d\n", what, ds, want_e);
        fail();
    }
}

static void test_sns_hand(void **state) {
    (void)state;
    /* INT8 -> INT4, shift by 4 with rounding, clamp to +-7; scale unchanged.
     * k: 100 -> 6.25 -> 6; 24 -> 1.5 -> 2; 40 -> 2.5 -> 2 | 3; -40 -> -2 | -3;
     * 127 -> 7.94 -> 8 -> 7; -127 -> -7; 8 -> 0.5 -> 0 | 1; 64 -> 4. */
    const uint8_t i8[] = {100, 24, 40, (uint8_t)-40, 127, (uint8_t)-127, 8, 64};
    const uint8_t i4_even[] = {6, 2, 2, 0xe, 7, 0x9, 0, 4};
    const uint8_t i4_near[] = {6, 2, 3, 0xd, 7, 0x9, 1, 4};
    check_sns_block("int8->int4 even", MX_INT8, i8, 130, 8, MX_INT4, MX_ROUND_EVEN, i4_even, 130);
    check_sns_block("int8->int4 nearest", MX_INT8, i8, 130, 8, MX_INT4, MX_ROUND_NEAREST, i4_near,
                    130);
    /* INT8 -> INT2 (shift 6): 100/64 = 1.56 -> 2 -> 1; 24 -> 0.375 -> 0; 40 -> 0.625 -> 1;
     * -40 -> -1 (0x3); 127 -> 1; -127 -> -1; 8 -> 0; 64 -> 1. No ties at all here. */
    const uint8_t i2[] = {1, 0, 1, 3, 1, 3, 0, 1};
    check_sns_block("int8->int2", MX_INT8, i8, 130, 8, MX_INT2, MX_ROUND_EVEN, i2, 130);
    /* E4M3 -> E2M1, e_dst = e_src + 6, element values scaled by 2^-6:
     * 448 -> 7 -> 8 (even) | 8 -> saturates to 6 (0x7); 320 -> 5 -> 4 (0x6) | 6 (0x7);
     * -320 -> -4 (0xe) | -6 (0xf); 128 -> 2 (0x4); 8 -> 0.125 -> 0; 32 -> 0.5 (0x1);
     * 16 -> 0.25 -> 0 | 0.5 (0x1); 2^-9 -> 0. */
    const uint8_t e43[] = {0x7e, 0x7a, 0xfa, 0x70, 0x50, 0x60, 0x58, 0x01};
    const uint8_t e21_even[] = {0x7, 0x6, 0xe, 0x4, 0x0, 0x1, 0x0, 0x0};
    const uint8_t e21_near[] = {0x7, 0x7, 0xf, 0x4, 0x0, 0x1, 0x1, 0x0};
    check_sns_block("e4m3->e2m1 even", MX_FP8_E4M3, e43, 120, 8, MX_FP4_E2M1, MX_ROUND_EVEN,
                    e21_even, 126);
    check_sns_block("e4m3->e2m1 nearest", MX_FP8_E4M3, e43, 120, 8, MX_FP4_E2M1, MX_ROUND_NEAREST,
                    e21_near, 126);
    /* E5M2 -> E3M2: e_dst = e_src + 11; 57344 (0x7b) * 2^-11 = 28 (0x1f);
     * 40960 (0x79) -> 20 = 1.25*2^4 (0x1d); 2^-16 (0x01) -> 2^-27 -> 0. */
    const uint8_t e52[] = {0x7b, 0x79, 0x01};
    const uint8_t e32[] = {0x1f, 0x1d, 0x00};
    check_sns_block("e5m2->e3m2", MX_FP8_E5M2, e52, 100, 3, MX_FP6_E3M2, MX_ROUND_EVEN, e32, 111);
    /* Fallbacks: all-zero block -> scale 0; NaN block stays NaN; scale byte 0 (clamped anchor:
     * amax 64*2^-6*2^-127 = 2^-127, definition gives the same clamped scale, codes shifted). */
    const uint8_t z[] = {0, 0, 0, 0};
    check_sns_block("zero block", MX_FP8_E4M3, z, 140, 4, MX_FP4_E2M1, MX_ROUND_EVEN, z, 0);
    const uint8_t nan_src[] = {0x7e, 0x11, 0, 0};
    check_sns_block("nan block", MX_FP8_E4M3, nan_src, 255, 4, MX_INT4, MX_ROUND_EVEN, z, 255);
    /* E4M3 anchor at scale byte 0 whose max 2^-3 is below the top binade: definition,
     * amax = 2^-130 -> e_dst = max(-130 - 2, -127) + 127 = 0; x = 2^-3 -> E2M1 0 | 0 (0.125 <
     * 0.25). */
    const uint8_t tiny[] = {0x20, 0x00};
    check_sns_block("clamped e4m3", MX_FP8_E4M3, tiny, 0, 2, MX_FP4_E2M1, MX_ROUND_NEAREST, z, 0);
}

/* Random anchors: mostly quantizer output at all magnitudes (fast path), plus clamped, zero
 * and NaN blocks (fallbacks). For unclamped quantizer-made blocks the fast-path scale rule
 * e_dst = e_src + emax_src - emax_dst must hold for the definition too. */
static void make_anchor(mx_format src, size_t rows, size_t cols, uint8_t *codes, uint8_t *sc,
                        uint64_t *s) {
    const size_t n = rows * cols;
    float *x = malloc(n * 4);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j += 32) {
            size_t len = cols - j < 32 ? cols - j : 32;
            float *v = x + r * cols + j;
            int kind = (int)(mxt_next(s) % 8);
            double base = kind == 0 ? pow(2.0, tu_uniform(s, -149, -120))
                                    : pow(10.0, tu_uniform(s, -30.0, 30.0));
            for (size_t i = 0; i < len; i++)
                v[i] = kind == 1 ? 0.0f : (float)(base * tu_uniform(s, -1.0, 1.0));
            if (kind == 2)
                v[mxt_next(s) % len] = NAN;
        }
    mx_quantize(x, codes, sc, rows, cols, src, (mx_rounding)(mxt_next(s) & 1));
    free(x);
}

/* Arbitrary codes and scale bytes, weighted toward the boundaries of the fast path. */
static void make_arbitrary(mx_format src, size_t rows, size_t cols, uint8_t *codes, uint8_t *sc,
                           uint64_t *s) {
    const size_t nb = mx_num_blocks(cols);
    const int emax = mx_format_emax(src);
    const int edges[] = {0, 1, 2, 126, 127, 128, 254 - emax, 255 - emax, 253, 254, 255};
    for (size_t i = 0; i < rows * cols; i++)
        codes[i] = (uint8_t)mxt_next(s);
    for (size_t b = 0; b < rows * nb; b++) {
        sc[b] = mxt_next(s) & 1 ? (uint8_t)edges[mxt_next(s) % 11] : (uint8_t)mxt_next(s);
        size_t r = b / nb, j = b % nb * 32, len = cols - j < 32 ? cols - j : 32;
        uint8_t *c = codes + r * cols + j;
        int kind = (int)(mxt_next(s) % 6);
        for (size_t i = 0; i < len; i++) {
            if (kind == 0)
                c[i] = 0;
            else if (kind == 1) /* small magnitudes only: below the top binade */
                c[i] = src == MX_INT8 ? (uint8_t)((int)(c[i] & 0x3f) - 32) /* |k| <= 32 */
                                      : (uint8_t)(c[i] & 0xbf); /* top exponent bit clear */
            else if (kind == 2)                                 /* no specials */
                c[i] = (uint8_t)(src == MX_INT8 ? (c[i] == 0x80 ? 0x7f : c[i])
                                                : (c[i] & 0xf7)); /* drop E4M3 NaN */
        }
    }
}

static void check_sns_all(mx_format src, const uint8_t *codes, const uint8_t *sc, size_t rows,
                          size_t cols, int check_shift) {
    const size_t n = rows * cols, nb = rows * mx_num_blocks(cols);
    uint8_t *dc = malloc(n), *ds = malloc(nb), *defc = malloc(n), *defs = malloc(nb);
    uint8_t *refc = malloc(n), *refs = malloc(nb);
    float *v = malloc(n * 4), *rv = malloc(n * 4);
    mx_dequantize(codes, sc, v, rows, cols, src);
    mxr_dequantize(codes, sc, rv, rows, cols, src);
    assert_true(mxt_same_floats("dequantize vs reference", v, rv, n));
    for (int d = MX_INT8; d < MX_FORMAT_COUNT; d++)
        for (int r = 0; r < 2; r++) {
            char what[96];
            snprintf(what, sizeof what, "SnS %s -> %s %s", mx_format_name(src),
                     mx_format_name((mx_format)d), r ? "nearest" : "even");
            mx_slice_and_scale(codes, sc, src, dc, ds, (mx_format)d, rows, cols, (mx_rounding)r);
            mx_quantize(v, defc, defs, rows, cols, (mx_format)d, (mx_rounding)r);
            mxr_quantize(rv, refc, refs, NULL, rows, cols, (mx_format)d, (mx_rounding)r);
            assert_true(mxt_same_bytes(what, dc, defc, n));
            assert_true(mxt_same_bytes(what, ds, defs, nb));
            assert_true(mxt_same_bytes(what, dc, refc, n));
            assert_true(mxt_same_bytes(what, ds, refs, nb));
            if (!check_shift)
                continue;
            const int shift = mx_format_emax(src) - mx_format_emax((mx_format)d);
            for (size_t b = 0; b < nb; b++) {
                int ok_src = sc[b] != 0 && sc[b] != 255 && sc[b] + shift >= 0;
                int nonzero = 0;
                size_t row = b / mx_num_blocks(cols), j = b % mx_num_blocks(cols) * 32;
                for (size_t i = j; i < cols && i < j + 32; i++)
                    nonzero |= codes[row * cols + i] != 0;
                if (ok_src && nonzero && ds[b] != sc[b] + shift) {
                    print_error("%s block %zu: e_dst %d, fast-path rule says %d\n", what, b, ds[b],
                                sc[b] + shift);
                    fail();
                }
            }
        }
    free(dc);
    free(ds);
    free(defc);
    free(defs);
    free(refc);
    free(refs);
    free(v);
    free(rv);
}

static void test_sns_random(void **state) {
    (void)state;
    const size_t rows = 40, cols = 200; /* 280 blocks; a tail of 8 */
    uint8_t *codes = malloc(rows * cols), *sc = malloc(rows * mx_num_blocks(cols));
    for (size_t a = 0; a < sizeof ANCHORS / sizeof ANCHORS[0]; a++) {
        uint64_t seed = 500 + a;
        make_anchor(ANCHORS[a], rows, cols, codes, sc, &seed);
        check_sns_all(ANCHORS[a], codes, sc, rows, cols, 1);
        make_arbitrary(ANCHORS[a], rows, cols, codes, sc, &seed);
        check_sns_all(ANCHORS[a], codes, sc, rows, cols, 0);
    }
    /* a large one so that the OpenMP path runs */
    const size_t R = 64, C = 512;
    uint8_t *big = malloc(R * C), *bsc = malloc(R * mx_num_blocks(C));
    uint64_t seed = 7;
    make_anchor(MX_FP8_E4M3, R, C, big, bsc, &seed);
    check_sns_all(MX_FP8_E4M3, big, bsc, R, C, 1);
    free(big);
    free(bsc);
    free(codes);
    free(sc);
}

/* Every single source code at a mid scale, each alone in a block of one: this is the fast
 * path's code table (or the definition for codes below the top binade) for every pair. */
static void test_sns_every_code(void **state) {
    (void)state;
    uint8_t codes[256], sc[256];
    for (int c = 0; c < 256; c++) {
        codes[c] = (uint8_t)c;
        sc[c] = 100;
    }
    for (size_t a = 0; a < sizeof ANCHORS / sizeof ANCHORS[0]; a++)
        check_sns_all(ANCHORS[a], codes, sc, 256, 1, 0);
    /* each code beside the source's max-normal code, so that every code goes through the fast
     * path's table (special codes still take the definition) */
    uint8_t pairs[512], psc[256];
    for (size_t a = 0; a < sizeof ANCHORS / sizeof ANCHORS[0]; a++) {
        const uint8_t top = ANCHORS[a] == MX_INT8 ? 0x7f : ANCHORS[a] == MX_FP8_E4M3 ? 0x7e : 0x7b;
        for (int c = 0; c < 256; c++) {
            pairs[2 * c] = (uint8_t)c;
            pairs[2 * c + 1] = c & 1 ? top : (uint8_t)(top | 0x80); /* either sign */
            psc[c] = (uint8_t)(1 + c % 200);
        }
        check_sns_all(ANCHORS[a], pairs, psc, 256, 2, 0);
    }
    /* the same 256 codes as one row of 8 blocks, at scale bytes 1 and 254 */
    for (int e = 1; e <= 254; e += 253) {
        memset(sc, e, 8);
        for (size_t a = 0; a < sizeof ANCHORS / sizeof ANCHORS[0]; a++)
            check_sns_all(ANCHORS[a], codes, sc, 1, 256, 0);
    }
}

/* Double rounding: how often SnS(quantize_anchor(w)) differs from quantize_dst(w) on Gaussian-ish
 * weights (MX_FORMATS.md quotes ~3% for MXINT8 -> MXINT4, ~25% for E4M3 -> E3M2). Reported. */
static void test_sns_double_rounding_rate(void **state) {
    (void)state;
    const size_t n = 32 * 2048;
    float *w = malloc(n * 4), *direct = malloc(n * 4), *via = malloc(n * 4);
    uint8_t *ac = malloc(n), *as = malloc(n / 32), *dc = malloc(n), *ds = malloc(n / 32);
    uint64_t seed = 3;
    for (size_t i = 0; i < n; i++)
        w[i] =
            (float)(tu_uniform(&seed, -1, 1) + tu_uniform(&seed, -1, 1) + tu_uniform(&seed, -1, 1));
    const mx_format pairs[][2] = {{MX_INT8, MX_INT4},
                                  {MX_FP8_E4M3, MX_FP6_E3M2},
                                  {MX_FP8_E4M3, MX_FP4_E2M1},
                                  {MX_INT8, MX_FP4_E2M1}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        mx_quantize(w, ac, as, 1, n, pairs[p][0], MX_ROUND_EVEN);
        mx_slice_and_scale(ac, as, pairs[p][0], dc, ds, pairs[p][1], 1, n, MX_ROUND_EVEN);
        mx_dequantize(dc, ds, via, 1, n, pairs[p][1]);
        mx_fake_quant(w, direct, 1, n, pairs[p][1], MX_ROUND_EVEN);
        size_t diff = 0;
        for (size_t i = 0; i < n; i++)
            diff += via[i] != direct[i];
        print_message("  SnS %s -> %s differs from direct quantization on %.1f%% of elements\n",
                      mx_format_name(pairs[p][0]), mx_format_name(pairs[p][1]),
                      100.0 * (double)diff / (double)n);
        assert_true(diff < n / 2);
    }
    free(w);
    free(direct);
    free(via);
    free(ac);
    free(as);
    free(dc);
    free(ds);
}

int mxt_run_sns(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sns_supported),  cmocka_unit_test(test_sns_unsupported),
        cmocka_unit_test(test_sns_hand),       cmocka_unit_test(test_sns_random),
        cmocka_unit_test(test_sns_every_code), cmocka_unit_test(test_sns_double_rounding_rate),
    };
    return cmocka_run_group_tests_name("mx_sns", tests, NULL, NULL);
}
