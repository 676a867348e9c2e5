/* test_packed.c — the QLoRA base's packed storage: every format dequantizes any row range exactly
 * as the format's own dequantizer does the whole matrix; double quantization stays within its
 * bound; sizes and fingerprints; refused shapes. */
#include "qttest.h"

#include "quant/mx.h"
#include "quant/nf4.h"
#include "train/model/packed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *gaussian(size_t n, uint64_t seed) {
    float *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++) /* a cheap bell shape: sum of uniforms */
        w[i] =
            (float)(tu_uniform(&seed, -1, 1) + tu_uniform(&seed, -1, 1) + tu_uniform(&seed, -1, 1));
    return w;
}

/* The whole matrix as the format's own dequantizer gives it. */
static void reference(qt_lora_base f, bool dq, const float *w, size_t rows, size_t cols,
                      float *out) {
    size_t n = rows * cols;
    if (f == QT_LORA_BASE_FP32) {
        memcpy(out, w, n * sizeof *out);
    } else if (f == QT_LORA_BASE_NF4) {
        uint8_t *packed = malloc(nf4_packed_size(n));
        size_t nb = nf4_num_blocks(n);
        float *am = malloc(nb * sizeof *am), *scales = malloc(nf4_dq_num_blocks(nb) * 4);
        int8_t *codes = malloc(nb);
        float mean;
        nf4_quantize(w, n, packed, am);
        if (dq) {
            assert_int_equal(nf4_dq_encode(am, nb, &mean, codes, scales), NF4_OK);
            nf4_dq_decode(mean, codes, scales, nb, am);
        }
        nf4_dequantize(packed, am, n, out);
        free(packed);
        free(am);
        free(scales);
        free(codes);
    } else {
        mx_format mf = f == QT_LORA_BASE_MXINT4       ? MX_INT4
                       : f == QT_LORA_BASE_MXFP4_E2M1 ? MX_FP4_E2M1
                       : f == QT_LORA_BASE_MXINT8     ? MX_INT8
                                                      : MX_FP8_E4M3;
        mx_fake_quant(w, out, rows, cols, mf, MX_ROUND_EVEN);
    }
}

static void check_format(qt_lora_base f, bool dq, size_t rows, size_t cols) {
    size_t n = rows * cols;
    float *w = gaussian(n, 11 + rows), *want = malloc(n * sizeof *want);
    float *got = malloc(n * sizeof *got);
    reference(f, dq, w, rows, cols, want);
    qt_packed p;
    char err[256];
    assert_int_equal(qt_packed_init(&p, f, dq, w, (int64_t)rows, (int64_t)cols, err, sizeof err),
                     0);
    /* Every row range, including ones that start inside an NF4 block or a DQ group. */
    uint64_t s = 5;
    for (int k = 0; k < 60; k++) {
        int64_t r0 = (int64_t)tu_uniform(&s, 0, (double)rows), r1 = r0 + 1;
        r1 += (int64_t)tu_uniform(&s, 0, (double)(rows - (size_t)r0));
        memset(got, 0xff, n * sizeof *got);
        qt_packed_dequant_rows(&p, r0, r1, got);
        assert_memory_equal(got, want + (size_t)r0 * cols, (size_t)(r1 - r0) * cols * 4);
        assert_true(isnan(got[(size_t)(r1 - r0) * cols]) || r1 == (int64_t)rows); /* untouched */
    }
    qt_packed_dequant_rows(&p, 0, (int64_t)rows, got);
    assert_memory_equal(got, want, n * sizeof *got);
    qt_packed_free(&p);
    free(w);
    free(want);
    free(got);
}

static void test_every_format_matches_its_dequantizer(void **state) {
    (void)state;
    /* 40 x 300: 12000 elements; NF4 blocks of 64 straddle rows; 188 blocks < one DQ group.
     * 130 x 1000: 2032 NF4 blocks = 8 DQ groups, the last partial; MX rows end in a short block. */
    size_t shapes[2][2] = {{40, 300}, {130, 1000}};
    for (int i = 0; i < 2; i++) {
        size_t r = shapes[i][0], c = shapes[i][1];
        check_format(QT_LORA_BASE_NF4, true, r, c);
        check_format(QT_LORA_BASE_NF4, false, r, c);
        check_format(QT_LORA_BASE_MXINT4, false, r, c);
        check_format(QT_LORA_BASE_MXFP4_E2M1, false, r, c);
        check_format(QT_LORA_BASE_MXINT8, false, r, c);
        check_format(QT_LORA_BASE_MXFP8_E4M3, false, r, c);
        check_format(QT_LORA_BASE_FP32, false, r, c);
    }
}

static void test_sizes_hash_and_refusals(void **state) {
    (void)state;
    size_t rows = 256, cols = 1024, n = rows * cols;
    float *w = gaussian(n, 3);
    qt_packed a, b, c;
    char err[256];
    assert_int_equal(qt_packed_init(&a, QT_LORA_BASE_NF4, true, w, 256, 1024, err, sizeof err), 0);
    assert_int_equal(qt_packed_init(&b, QT_LORA_BASE_NF4, false, w, 256, 1024, err, sizeof err), 0);
    assert_int_equal(qt_packed_init(&c, QT_LORA_BASE_MXINT4, false, w, 256, 1024, err, sizeof err),
                     0);
    /* NF4 + DQ: n/2 + n/64 + 4·n/(64·256) + 4 bytes; without DQ n/2 + 4·n/64; MXINT4 n/2 + n/32. */
    assert_int_equal(qt_packed_bytes(&a), n / 2 + n / 64 + 4 * (n / 16384) + 4);
    assert_int_equal(qt_packed_bytes(&b), n / 2 + 4 * (n / 64));
    assert_int_equal(qt_packed_bytes(&c), n / 2 + n / 32);
    assert_close(8.0 * (double)qt_packed_bytes(&a) / (double)n, nf4_bits_per_param(n, 1), 1e-9, 0);
    uint64_t ha = qt_packed_hash(&a, 1), hb = qt_packed_hash(&b, 1), hc = qt_packed_hash(&c, 1);
    assert_true(ha != hb && hb != hc && ha != hc);
    assert_true(qt_packed_hash(&a, 1) == ha);
    a.codes[100] ^= 0x10; /* one code changed: another fingerprint */
    assert_true(qt_packed_hash(&a, 1) != ha);
    qt_packed_free(&a);
    qt_packed_free(&b);
    qt_packed_free(&c);
    qt_packed_free(NULL);
    assert_int_equal(qt_packed_init(&a, QT_LORA_BASE_MXFP4_E2M1, false, w, 3, 5, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "cannot be kept in mxfp4_e2m1 (needs an even row length)"));
    assert_int_equal(qt_packed_init(&a, QT_LORA_BASE_NF4, true, w, 0, 5, err, sizeof err), -1);
    assert_int_equal(qt_packed_init(&a, QT_LORA_BASE_NF4, true, w, 3, 5, err, sizeof err), 0);
    qt_packed_free(&a);
    free(w);
}

int qtt_run_packed(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_format_matches_its_dequantizer),
        cmocka_unit_test(test_sizes_hash_and_refusals),
    };
    return cmocka_run_group_tests_name("packed", tests, NULL, NULL);
}
