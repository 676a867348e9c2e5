/* test_fakequant.c — the fake-quantization op against its closed form: forward equals the MX
 * kernels (directly, along axis 0, through an anchor), backward equals the STE's formula. */
#include "agtest.h"

#include <stdlib.h>
#include <string.h>

static ag_tensor wrap32(float *d, float *g, int ndim, int64_t r, int64_t c) {
    ag_tensor t;
    int64_t sh[2] = {r, c};
    ag_tensor_wrap(&t, AG_F32, d, g, ndim, sh);
    t.requires_grad = g != NULL;
    return t;
}

static void fill(float *x, size_t n, uint64_t seed, double scale) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)tu_uniform(&seed, -scale, scale);
}

static void test_forward_matches_mx_kernels(void **state) {
    (void)state;
    enum { R = 3, C = 70 }; /* a short tail block per row */
    float x[R * C], want[R * C];
    fill(x, R * C, 11, 3.0);
    ag_tape *t = ag_tape_create(1 << 20, 0, 64);
    for (int f = MX_INT8; f < MX_FORMAT_COUNT; f++) {
        for (int r = 0; r < 2; r++) {
            ag_fq_spec spec = {(mx_format)f, (mx_rounding)r, AG_STE_IDENTITY, MX_FP32};
            ag_tensor xt = wrap32(x, NULL, 2, R, C);
            ag_tensor *y = ag_fakequant(t, &xt, &spec, -1);
            assert_non_null(y);
            mx_fake_quant(x, want, R, C, (mx_format)f, (mx_rounding)r);
            assert_memory_equal(y->data, want, sizeof want);
        }
    }
    ag_tape_free(t);
}

static void test_axis0_is_transposed_blocking(void **state) {
    (void)state;
    enum { R = 40, C = 3 };
    float x[R * C], xt[C * R], qt[C * R];
    fill(x, R * C, 5, 2.0);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++)
            xt[j * R + i] = x[i * C + j];
    mx_fake_quant(xt, qt, C, R, MX_FP4_E2M1, MX_ROUND_EVEN);
    ag_tape *t = ag_tape_create(1 << 20, 0, 64);
    ag_fq_spec spec = {MX_FP4_E2M1, MX_ROUND_EVEN, AG_STE_IDENTITY, MX_FP32};
    ag_tensor a = wrap32(x, NULL, 2, R, C);
    ag_tensor *y = ag_fakequant(t, &a, &spec, 0);
    assert_non_null(y);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++)
            assert_true(((float *)y->data)[i * C + j] == qt[j * R + i]);
    ag_tape_free(t);
}

static void test_via_anchor_is_slice_and_scale(void **state) {
    (void)state;
    enum { R = 2, C = 64 };
    float x[R * C], want[R * C];
    uint8_t ac[R * C], as[R * 2], dc[R * C], ds[R * 2];
    fill(x, R * C, 9, 10.0);
    mx_quantize(x, ac, as, R, C, MX_INT8, MX_ROUND_EVEN);
    mx_slice_and_scale(ac, as, MX_INT8, dc, ds, MX_INT4, R, C, MX_ROUND_EVEN);
    mx_dequantize(dc, ds, want, R, C, MX_INT4);
    ag_tape *t = ag_tape_create(1 << 20, 0, 64);
    ag_fq_spec spec = {MX_INT4, MX_ROUND_EVEN, AG_STE_IDENTITY, MX_INT8};
    ag_tensor a = wrap32(x, NULL, 2, R, C);
    ag_tensor *y = ag_fakequant(t, &a, &spec, -1);
    assert_non_null(y);
    assert_memory_equal(y->data, want, sizeof want);
    ag_tape_free(t);
}

/* Block [1.9, 0.5, -1.0, 0...]: amax 1.9 gives scale 2^0, and mxint4's largest value is 1.75, so
 * 1.9 saturates (to 1.75) while the rest do not. Clipped STE: gradient 0 there, dy elsewhere. */
static void test_ste_identity_and_clipped(void **state) {
    (void)state;
    enum { C = 32 };
    float x[C] = {1.9f, 0.5f, -1.0f}, dy[C];
    for (int i = 0; i < C; i++)
        dy[i] = (float)(i + 1);
    for (int ste = 0; ste < 2; ste++) {
        float g[C] = {0};
        ag_tape *t = ag_tape_create(1 << 20, 0, 64);
        ag_fq_spec spec = {MX_INT4, MX_ROUND_EVEN, (ag_ste)ste, MX_FP32};
        ag_tensor a = wrap32(x, g, 1, C, 0);
        ag_tensor *y = ag_fakequant(t, &a, &spec, -1);
        assert_non_null(y);
        assert_close(((float *)y->data)[0], 1.75, 0, 0);
        assert_close(((float *)y->data)[1], 0.5, 0, 0);
        assert_int_equal(ag_tape_size(t), 1);
        assert_int_equal(ag_backward(t, y, dy), 0);
        assert_close(g[0], ste == AG_STE_CLIPPED ? 0.0 : 1.0, 0, 0);
        for (int i = 1; i < C; i++)
            assert_close(g[i], dy[i], 0, 0);
        ag_tape_free(t);
    }
    agt_mark_checked(AG_OP_FAKEQUANT);
}

static void test_clipped_ste_axis0_f64(void **state) {
    (void)state;
    /* (R=32, C=2) blocked along axis 0: column 0 holds the saturating block of the test above. */
    enum { R = 32, C = 2 };
    double x[R * C], g[R * C], dy[R * C];
    memset(x, 0, sizeof x);
    memset(g, 0, sizeof g);
    x[0 * C + 0] = 1.9, x[1 * C + 0] = 0.5, x[2 * C + 0] = -1.0, x[0 * C + 1] = 0.25;
    for (int i = 0; i < R * C; i++)
        dy[i] = 1.0 + i;
    int64_t sh[2] = {R, C};
    ag_tensor a;
    ag_tensor_wrap(&a, AG_F64, x, g, 2, sh);
    a.requires_grad = true;
    ag_tape *t = ag_tape_create(1 << 20, 0, 64);
    ag_fq_spec spec = {MX_INT4, MX_ROUND_EVEN, AG_STE_CLIPPED, MX_FP32};
    ag_tensor *y = ag_fakequant(t, &a, &spec, 0);
    assert_non_null(y);
    assert_close(((double *)y->data)[0], 1.75, 0, 0);
    assert_close(((double *)y->data)[1], 0.25, 0, 0);
    assert_int_equal(ag_backward(t, y, dy), 0);
    for (int i = 0; i < R * C; i++)
        assert_close(g[i], i == 0 ? 0.0 : dy[i], 0, 0);
    ag_tape_free(t);
}

static void test_fp32_is_identity_and_bad_specs_fail(void **state) {
    (void)state;
    float x[4] = {1, 2, 3, 4};
    ag_tape *t = ag_tape_create(1 << 16, 0, 8);
    ag_tensor a = wrap32(x, NULL, 1, 4, 0);
    ag_fq_spec spec = {MX_FP32, MX_ROUND_EVEN, AG_STE_IDENTITY, MX_FP32};
    assert_ptr_equal(ag_fakequant(t, &a, &spec, -1), &a);
    spec.format = MX_INT4;
    spec.via = MX_INT4 + 100; /* not a format */
    assert_null(ag_fakequant(t, &a, &spec, -1));
    spec.via = MX_FP4_E2M1; /* not an anchor format */
    spec.format = MX_INT4;
    assert_null(ag_fakequant(t, &a, &spec, -1));
    spec.via = MX_FP32;
    assert_null(ag_fakequant(t, &a, &spec, 0 + 5)); /* no such axis */
    ag_tape_free(t);
}

int agt_run_fakequant(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_mx_kernels),
        cmocka_unit_test(test_axis0_is_transposed_blocking),
        cmocka_unit_test(test_via_anchor_is_slice_and_scale),
        cmocka_unit_test(test_ste_identity_and_clipped),
        cmocka_unit_test(test_clipped_ste_axis0_f64),
        cmocka_unit_test(test_fp32_is_identity_and_bad_specs_fail),
    };
    return cmocka_run_group_tests_name("autograd_fakequant", tests, NULL, NULL);
}
