/* test_mx_pack.c — bit-packing: sizes, the documented layouts byte by byte, round trips at every
 * length up to 100 and a few large odd ones, high bits ignored, padding bits zero. */
#include "mxtest.h"

#include <stdlib.h>
#include <string.h>

static void test_packed_size(void **state) {
    (void)state;
    assert_int_equal(mx_packed_size(MX_FP4_E2M1, 0), 0);
    assert_int_equal(mx_packed_size(MX_FP4_E2M1, 1), 1);
    assert_int_equal(mx_packed_size(MX_INT4, 3), 2);
    assert_int_equal(mx_packed_size(MX_INT4, 32), 16);
    assert_int_equal(mx_packed_size(MX_FP6_E3M2, 1), 1);
    assert_int_equal(mx_packed_size(MX_FP6_E2M3, 2), 2);
    assert_int_equal(mx_packed_size(MX_INT6, 3), 3);
    assert_int_equal(mx_packed_size(MX_INT6, 4), 3);
    assert_int_equal(mx_packed_size(MX_INT6, 5), 4);
    assert_int_equal(mx_packed_size(MX_INT6, 32), 24);
    assert_int_equal(mx_packed_size(MX_INT2, 5), 2);
    assert_int_equal(mx_packed_size(MX_INT2, 32), 8);
    assert_int_equal(mx_packed_size(MX_INT8, 7), 7);
    assert_int_equal(mx_packed_size(MX_FP8_E5M2, 7), 7);
    assert_int_equal(mx_packed_size(MX_FP32, 7), 0);
    assert_int_equal(mx_packed_size(MX_INT6, (size_t)1 << 40), ((size_t)3 << 40) / 4);
}

static void test_layouts(void **state) {
    (void)state;
    uint8_t out[8];
    /* 4-bit: first element in the low nibble; the unused high nibble of the last byte is 0. */
    const uint8_t c4[] = {0x1, 0x2, 0x3, 0xff /* high bits ignored: 0xf */, 0x5};
    memset(out, 0xEE, sizeof out);
    mx_pack(c4, 5, MX_FP4_E2M1, out);
    assert_int_equal(out[0], 0x21);
    assert_int_equal(out[1], 0xf3);
    assert_int_equal(out[2], 0x05);
    assert_int_equal(out[3], 0xEE); /* nothing written past the packed size */
    /* 6-bit: element k in bits 6k..6k+5 of the 24-bit little-endian word. */
    const uint8_t c6[] = {0x01, 0x3f, 0x2a, 0x15, 0x3f, 0x01};
    uint32_t w = 0x01u | 0x3fu << 6 | 0x2au << 12 | 0x15u << 18;
    memset(out, 0xEE, sizeof out);
    mx_pack(c6, 6, MX_INT6, out);
    assert_int_equal(out[0], w & 0xff);
    assert_int_equal(out[1], (w >> 8) & 0xff);
    assert_int_equal(out[2], w >> 16);
    assert_int_equal(out[3], 0x7f); /* 0x3f | (0x01 << 6) */
    assert_int_equal(out[4], 0x00); /* bits 6-7 of element 5 = 0; rest padding */
    assert_int_equal(out[5], 0xEE);
    /* 2-bit: low bits first. */
    const uint8_t c2[] = {1, 2, 3, 0, 3};
    memset(out, 0xEE, sizeof out);
    mx_pack(c2, 5, MX_INT2, out);
    assert_int_equal(out[0], 1 | 2 << 2 | 3 << 4);
    assert_int_equal(out[1], 3);
    assert_int_equal(out[2], 0xEE);
    /* 8-bit: as is. */
    const uint8_t c8[] = {0x80, 0x7e, 0x01};
    mx_pack(c8, 3, MX_FP8_E4M3, out);
    assert_memory_equal(out, c8, 3);
    /* fp32: nothing */
    memset(out, 0xEE, sizeof out);
    mx_pack(c8, 3, MX_FP32, out);
    mx_unpack(c8, 3, MX_FP32, out);
    assert_int_equal(out[0], 0xEE);
}

static void test_round_trip(void **state) {
    (void)state;
    uint64_t seed = 42;
    const size_t big[] = {1001, 4097, 12345};
    for (int f = MX_INT8; f < MX_FORMAT_COUNT; f++) {
        const unsigned mask = (1u << mx_format_bits((mx_format)f)) - 1u;
        for (size_t t = 0; t < 100 + 3; t++) {
            size_t n = t < 100 ? t : big[t - 100];
            size_t ps = mx_packed_size((mx_format)f, n);
            uint8_t *codes = malloc(n + 1), *back = malloc(n + 1), *packed = malloc(ps + 1);
            for (size_t i = 0; i < n; i++)
                codes[i] = (uint8_t)mxt_next(&seed); /* high bits set on purpose */
            packed[ps] = 0x5A;
            mx_pack(codes, n, (mx_format)f, packed);
            assert_int_equal(packed[ps], 0x5A);
            mx_unpack(packed, n, (mx_format)f, back);
            for (size_t i = 0; i < n; i++)
                if (back[i] != (codes[i] & mask)) {
                    print_error("%s n=%zu: element %zu: 0x%02x, packed 0x%02x\n",
                                mx_format_name((mx_format)f), n, i, back[i], codes[i] & mask);
                    fail();
                }
            /* padding bits of the last byte are zero */
            size_t used = n * (size_t)mx_format_bits((mx_format)f) % 8;
            if (n && used)
                assert_int_equal(packed[ps - 1] >> used, 0);
            /* the bit-stream definition, bit by bit */
            for (size_t i = 0; i < n && i < 200; i++)
                for (int k = 0; k < mx_format_bits((mx_format)f); k++) {
                    size_t bit = i * (size_t)mx_format_bits((mx_format)f) + (size_t)k;
                    assert_int_equal((packed[bit / 8] >> (bit % 8)) & 1, (codes[i] >> k) & 1);
                }
            free(codes);
            free(back);
            free(packed);
        }
    }
}

/* Quantize -> pack -> unpack -> dequantize equals fake quantization. */
static void test_pack_quantized(void **state) {
    (void)state;
    const size_t rows = 3, cols = 45, n = rows * cols;
    float in[135], fq[135], out[135];
    uint8_t codes[135], back[135], packed[135], sc[6];
    uint64_t seed = 8;
    for (size_t i = 0; i < n; i++)
        in[i] = (float)tu_uniform(&seed, -10.0, 10.0);
    for (int f = MX_INT8; f < MX_FORMAT_COUNT; f++) {
        mx_fake_quant(in, fq, rows, cols, (mx_format)f, MX_ROUND_EVEN);
        mx_quantize(in, codes, sc, rows, cols, (mx_format)f, MX_ROUND_EVEN);
        mx_pack(codes, n, (mx_format)f, packed);
        mx_unpack(packed, n, (mx_format)f, back);
        mx_dequantize(back, sc, out, rows, cols, (mx_format)f);
        assert_true(mxt_same_floats(mx_format_name((mx_format)f), out, fq, n));
    }
}

int mxt_run_pack(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_size),
        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_pack_quantized),
    };
    return cmocka_run_group_tests_name("mx_pack", tests, NULL, NULL);
}
