/* test_mx_formats.c — names, parsing, format properties, element code <-> value. */
#include "mxtest.h"

#include <float.h>

static const char *const NAMES[MX_FORMAT_COUNT] = {
    "fp32",       "mxint8",     "mxint6",     "mxint4",     "mxint2",
    "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1"};

static void test_names_and_parse(void **state) {
    (void)state;
    for (int f = 0; f < MX_FORMAT_COUNT; f++) {
        assert_string_equal(mx_format_name((mx_format)f), NAMES[f]);
        mx_format got = MX_FORMAT_COUNT;
        assert_int_equal(mx_format_parse(NAMES[f], &got), 0);
        assert_int_equal(got, f);
    }
    const char *bad[] = {"nf4", "MXINT8", "mxint8 ", " mxint8",     "mxint",
                         "",    "fp16",   "mxfp4",   "mxfp8_e4m3x", "Fp32"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mx_format got = MX_INT4;
        assert_int_equal(mx_format_parse(bad[i], &got), -1);
        assert_int_equal(got, MX_INT4); /* untouched on failure */
    }
    assert_int_equal(mx_format_parse(NULL, NULL), -1);
    assert_string_equal(mx_format_name(MX_FORMAT_COUNT), "?");
    assert_string_equal(mx_format_name((mx_format)-1), "?");
}

static void test_properties(void **state) {
    (void)state;
    static const struct {
        mx_format f;
        int bits, is_int, ebits, mbits, emax;
        double max_normal;
    } T[] = {
        {MX_INT8, 8, 1, 0, 6, 0, 127.0 / 64}, {MX_INT6, 6, 1, 0, 4, 0, 31.0 / 16},
        {MX_INT4, 4, 1, 0, 2, 0, 7.0 / 4},    {MX_INT2, 2, 1, 0, 0, 0, 1.0},
        {MX_FP8_E4M3, 8, 0, 4, 3, 8, 448.0},  {MX_FP8_E5M2, 8, 0, 5, 2, 15, 57344.0},
        {MX_FP6_E3M2, 6, 0, 3, 2, 4, 28.0},   {MX_FP6_E2M3, 6, 0, 2, 3, 2, 7.5},
        {MX_FP4_E2M1, 4, 0, 2, 1, 2, 6.0},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        assert_int_equal(mx_format_is_mx(T[i].f), 1);
        assert_int_equal(mx_format_bits(T[i].f), T[i].bits);
        assert_int_equal(mx_format_is_int(T[i].f), T[i].is_int);
        assert_int_equal(mx_format_exponent_bits(T[i].f), T[i].ebits);
        assert_int_equal(mx_format_mantissa_bits(T[i].f), T[i].mbits);
        assert_int_equal(mx_format_emax(T[i].f), T[i].emax);
        assert_true(mx_format_max_normal(T[i].f) == (float)T[i].max_normal);
        assert_true(mx_format_bits_per_element(T[i].f) == T[i].bits + 0.25);
    }
    assert_int_equal(mx_format_is_mx(MX_FP32), 0);
    assert_int_equal(mx_format_bits(MX_FP32), 32);
    assert_true(mx_format_bits_per_element(MX_FP32) == 32.0);
    assert_true(mx_format_max_normal(MX_FP32) == FLT_MAX);
    assert_int_equal(mx_format_is_mx(MX_FORMAT_COUNT), 0);
    assert_int_equal(mx_format_bits(MX_FORMAT_COUNT), 0);
    assert_int_equal(mx_num_blocks(0), 0);
    assert_int_equal(mx_num_blocks(1), 1);
    assert_int_equal(mx_num_blocks(32), 1);
    assert_int_equal(mx_num_blocks(33), 2);
    assert_int_equal(mx_num_blocks(4096), 128);
}

/* Pinned values of characteristic codes, then every code against the reference decoder. */
static void test_code_to_value(void **state) {
    (void)state;
    static const struct {
        mx_format f;
        unsigned code;
        double v;
    } T[] = {
        {MX_FP8_E4M3, 0x7e, 448.0},     {MX_FP8_E4M3, 0xfe, -448.0},  {MX_FP8_E4M3, 0x01, 0x1p-9},
        {MX_FP8_E4M3, 0x08, 0x1p-6},    {MX_FP8_E4M3, 0x38, 1.0},     {MX_FP8_E4M3, 0x78, 256.0},
        {MX_FP8_E5M2, 0x7b, 57344.0},   {MX_FP8_E5M2, 0x01, 0x1p-16}, {MX_FP8_E5M2, 0x7c, INFINITY},
        {MX_FP8_E5M2, 0xfc, -INFINITY}, {MX_FP8_E5M2, 0x3c, 1.0},     {MX_FP6_E3M2, 0x1f, 28.0},
        {MX_FP6_E3M2, 0x01, 0.0625},    {MX_FP6_E3M2, 0x3f, -28.0},   {MX_FP6_E2M3, 0x1f, 7.5},
        {MX_FP6_E2M3, 0x01, 0.125},     {MX_FP6_E2M3, 0x08, 1.0},     {MX_FP4_E2M1, 0x7, 6.0},
        {MX_FP4_E2M1, 0x1, 0.5},        {MX_FP4_E2M1, 0x2, 1.0},      {MX_FP4_E2M1, 0x5, 3.0},
        {MX_FP4_E2M1, 0xf, -6.0},       {MX_INT8, 0x7f, 127.0 / 64},  {MX_INT8, 0x81, -127.0 / 64},
        {MX_INT8, 0x80, -2.0},          {MX_INT8, 0x01, 1.0 / 64},    {MX_INT6, 0x1f, 31.0 / 16},
        {MX_INT6, 0x21, -31.0 / 16},    {MX_INT4, 0x7, 1.75},         {MX_INT4, 0x9, -1.75},
        {MX_INT4, 0xf, -0.25},          {MX_INT2, 0x1, 1.0},          {MX_INT2, 0x3, -1.0},
        {MX_INT2, 0x2, -2.0},           {MX_INT4, 0xf7, 1.75}, /* bits above the element width are
                                                                  ignored */
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        float v = mx_code_to_value(T[i].f, (uint8_t)T[i].code);
        if (v != (float)T[i].v) {
            print_error("%s code 0x%02x: %.9g, expected %.9g\n", mx_format_name(T[i].f), T[i].code,
                        v, T[i].v);
            fail();
        }
    }
    assert_true(isnan(mx_code_to_value(MX_FP8_E4M3, 0x7f)));
    assert_true(isnan(mx_code_to_value(MX_FP8_E4M3, 0xff)));
    assert_true(isnan(mx_code_to_value(MX_FP8_E5M2, 0x7d)));
    for (int f = MX_INT8; f < MX_FORMAT_COUNT; f++)
        for (unsigned c = 0; c < 256; c++) {
            double ref = mxr_code_value((mx_format)f, c);
            float v = mx_code_to_value((mx_format)f, (uint8_t)c);
            if (!(v == (float)ref || (isnan(v) && isnan(ref)))) {
                print_error("%s code 0x%02x: %.9g, reference %.9g\n", NAMES[f], c, v, ref);
                fail();
            }
        }
}

/* Q at scale 1: every finite code's value maps back to its code (zero to +0) under both
 * roundings; values beyond max normal and ±Inf saturate; NaN gives the NaN code or 0. */
static void test_value_to_code(void **state) {
    (void)state;
    for (int f = MX_INT8; f < MX_FORMAT_COUNT; f++)
        for (int r = 0; r < 2; r++) {
            const unsigned mask = (1u << mx_format_bits((mx_format)f)) - 1u;
            for (unsigned c = 0; c <= mask; c++) {
                float v = mx_code_to_value((mx_format)f, (uint8_t)c);
                if (isnan(v) || isinf(v) || (mx_format_is_int((mx_format)f) && c == (mask + 1) / 2))
                    continue; /* specials, and the never-produced INT -2^(b-1) */
                unsigned want = v == 0.0f ? 0u : c;
                unsigned got = mx_value_to_code((mx_format)f, v, (mx_rounding)r);
                if (got != want) {
                    print_error("%s %s: value %.9g -> 0x%02x, expected 0x%02x\n", NAMES[f],
                                r ? "nearest" : "even", v, got, want);
                    fail();
                }
            }
            float mn = mx_format_max_normal((mx_format)f);
            unsigned cmax = mx_value_to_code((mx_format)f, mn, MX_ROUND_EVEN);
            unsigned cmin = mx_value_to_code((mx_format)f, -mn, MX_ROUND_EVEN);
            assert_int_equal(mx_value_to_code((mx_format)f, mn * 1.5f, (mx_rounding)r), cmax);
            assert_int_equal(mx_value_to_code((mx_format)f, 1e30f, (mx_rounding)r), cmax);
            assert_int_equal(mx_value_to_code((mx_format)f, INFINITY, (mx_rounding)r), cmax);
            assert_int_equal(mx_value_to_code((mx_format)f, -INFINITY, (mx_rounding)r), cmin);
            assert_int_equal(mx_value_to_code((mx_format)f, -FLT_MAX, (mx_rounding)r), cmin);
            assert_int_equal(mx_value_to_code((mx_format)f, 1e-30f, (mx_rounding)r), 0);
            assert_int_equal(mx_value_to_code((mx_format)f, -1e-30f, (mx_rounding)r), 0);
            /* random values against the reference quantizer */
            uint64_t seed = 77 + (uint64_t)f;
            for (int k = 0; k < 2000; k++) {
                float x = (float)tu_uniform(&seed, -2.5, 2.5) * mn;
                unsigned got = mx_value_to_code((mx_format)f, x, (mx_rounding)r);
                unsigned ref = mxr_q((mx_format)f, x, (mx_rounding)r);
                if (got != ref) {
                    print_error("%s: Q(%.9g) = 0x%02x, reference 0x%02x\n", NAMES[f], x, got, ref);
                    fail();
                }
            }
        }
    assert_int_equal(mx_value_to_code(MX_FP8_E4M3, NAN, MX_ROUND_EVEN), 0x7f);
    assert_int_equal(mx_value_to_code(MX_FP8_E5M2, NAN, MX_ROUND_EVEN), 0x7f);
    assert_int_equal(mx_value_to_code(MX_FP4_E2M1, NAN, MX_ROUND_EVEN), 0);
    assert_int_equal(mx_value_to_code(MX_FP32, 1.0f, MX_ROUND_EVEN), 0);
    /* E5M2 and E4M3 saturate instead of producing Inf or NaN codes */
    assert_int_equal(mx_value_to_code(MX_FP8_E5M2, 61440.0f, MX_ROUND_EVEN), 0x7b);
    assert_int_equal(mx_value_to_code(MX_FP8_E5M2, 65536.0f, MX_ROUND_NEAREST), 0x7b);
    assert_int_equal(mx_value_to_code(MX_FP8_E4M3, 464.0f, MX_ROUND_NEAREST), 0x7e);
    assert_int_equal(mx_value_to_code(MX_FP8_E4M3, -480.0f, MX_ROUND_EVEN), 0xfe);
}

int mxt_run_formats(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_parse),
        cmocka_unit_test(test_properties),
        cmocka_unit_test(test_code_to_value),
        cmocka_unit_test(test_value_to_code),
    };
    return cmocka_run_group_tests_name("mx_formats", tests, NULL, NULL);
}
