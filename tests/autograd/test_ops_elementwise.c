/* test_ops_elementwise.c — add (same shape, and broadcast of trailing [T,C] positions or a [C]
 * bias), mul and gelu.
 *
 * Each op gets: hand-computed forward and backward values; a double-precision gradient check of
 * every variant, including x+x and x*x; a float-vs-double comparison of forward and backward (the
 * gradient checks only run the double kernels, this is what covers the float ones); shape and
 * dtype validation. gelu's float path is also measured against a double reference over a dense
 * range. Their thread-count invariance is checked in test_ops_lm.c, which is why the plain builds
 * agt_build_add / _mul / _gelu live in main.c. */
#include "agtest.h"

/* ---- add, mul -------------------------------------------------------------------------------- */

static ag_tensor *build_add_self(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_add(t, in[0], in[0]);
}

static ag_tensor *build_mul_self(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_mul(t, in[0], in[0]);
}

/* a [2,2,3] = 0..11 plus b of shape [2,2,3], [2,3] (positions) and [3] (bias). */
static void test_add_values(void **state) {
    (void)state;
    double A[12], S[12], P[6] = {100, 200, 300, 400, 500, 600}, Bi[3] = {10, 20, 30};
    for (int i = 0; i < 12; i++) {
        A[i] = i;
        S[i] = -2.0 * i;
    }
    for (int d = 0; d < 2; d++) {
        ag_dtype dt = d ? AG_F64 : AG_F32;
        const double *bv[3] = {S, P, Bi};
        const int bnd[3] = {3, 2, 1};
        const int64_t bsh[3][3] = {{2, 2, 3}, {2, 3}, {3}};
        for (int k = 0; k < 3; k++) {
            ag_tensor *a = agt_from_vals_as(dt, 3, (int64_t[3]){2, 2, 3}, A, true);
            ag_tensor *b = agt_from_vals_as(dt, bnd[k], bsh[k], bv[k], true);
            agt_give_grad(a);
            agt_give_grad(b);
            ag_tape *t = ag_tape_create(1 << 16, 0, 8);
            ag_tensor *y = ag_add(t, a, b);
            assert_non_null(y);
            assert_true(ag_same_shape(y, a));
            double want[12], da[12], db[12];
            for (size_t i = 0; i < 12; i++) {
                want[i] = A[i] + bv[k][i % b->numel];
                da[i] = 1;
            }
            for (size_t j = 0; j < b->numel; j++)
                db[j] = 12.0 / (double)b->numel; /* number of repeats */
            agt_assert_data(y, want, 0);
            agt_backward_ones(t, y);
            agt_assert_grad(a, da, 0);
            agt_assert_grad(b, db, 0);
            agt_free_grad(a);
            agt_free_grad(b);
            agt_free(a);
            agt_free(b);
            ag_tape_free(t);
        }
    }
}

static void test_add_gradcheck(void **state) {
    (void)state;
    ag_tensor *a = agt_rand(3, (int64_t[3]){2, 3, 4}, -1, 1, 50, true);
    const int64_t bsh[3][3] = {{2, 3, 4}, {3, 4}, {4}};
    const char *names[3] = {"add same shape", "add positions [T,C]", "add bias [C]"};
    for (int k = 0; k < 3; k++) {
        ag_tensor *b = agt_rand(3 - k, bsh[k], -1, 1, 51 + k, true);
        ag_tensor *in[2] = {a, b};
        agt_gradcheck(names[k], agt_build_add, NULL, in, 2);
        agt_check_f32_matches_f64(names[k], agt_build_add, NULL, in, 2, 1e-6);
        a->requires_grad = false;
        agt_gradcheck(names[k], agt_build_add, NULL, in, 2);
        a->requires_grad = true;
        b->requires_grad = false;
        agt_gradcheck(names[k], agt_build_add, NULL, in, 2);
        agt_free(b);
    }
    agt_gradcheck("add x+x", build_add_self, NULL, &a, 1);
    agt_free(a);
}

static void test_add_rejects_bad_shapes(void **state) {
    (void)state;
    ag_tape *t = ag_tape_create(1 << 16, 0, 8);
    ag_tensor *a = agt_rand(3, (int64_t[3]){2, 3, 4}, -1, 1, 1, false);
    ag_tensor *lead = agt_rand(2, (int64_t[2]){2, 3}, -1, 1, 2, false); /* leading, not trailing */
    ag_tensor *c5 = agt_rand(1, (int64_t[1]){5}, -1, 1, 3, false);
    ag_tensor *big = agt_rand(4, (int64_t[4]){2, 2, 3, 4}, -1, 1, 4, false);
    ag_tensor *f = agt_to_f32_nograd(a);
    assert_null(ag_add(t, a, lead));
    assert_null(ag_add(t, a, c5));
    assert_null(ag_add(t, a, big)); /* b larger than a */
    assert_null(ag_add(t, a, f));
    assert_null(ag_add(t, a, NULL));
    assert_null(ag_add(t, NULL, a));
    assert_null(ag_mul(t, a, lead)); /* mul does not broadcast */
    assert_null(ag_mul(t, a, f));
    assert_null(ag_mul(t, NULL, a));
    agt_free(a);
    agt_free(lead);
    agt_free(c5);
    agt_free(big);
    agt_free(f);
    ag_tape_free(t);
}

static void test_mul_values(void **state) {
    (void)state;
    const double A[3] = {1, 2, 3}, B[3] = {4, -5, 0.5}, Y[3] = {4, -10, 1.5};
    for (int d = 0; d < 2; d++) {
        ag_dtype dt = d ? AG_F64 : AG_F32;
        ag_tensor *a = agt_from_vals_as(dt, 1, (int64_t[1]){3}, A, true);
        ag_tensor *b = agt_from_vals_as(dt, 1, (int64_t[1]){3}, B, true);
        agt_give_grad(a);
        agt_give_grad(b);
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *y = ag_mul(t, a, b);
        assert_non_null(y);
        agt_assert_data(y, Y, 0);
        agt_backward_ones(t, y);
        agt_assert_grad(a, B, 0);
        agt_assert_grad(b, A, 0);
        agt_free_grad(a);
        agt_free_grad(b);
        agt_free(a);
        agt_free(b);
        ag_tape_free(t);
    }
}

static void test_mul_gradcheck(void **state) {
    (void)state;
    ag_tensor *a = agt_rand(3, (int64_t[3]){2, 3, 4}, -2, 2, 60, true);
    ag_tensor *b = agt_rand(3, (int64_t[3]){2, 3, 4}, -2, 2, 61, true);
    ag_tensor *in[2] = {a, b};
    agt_gradcheck("mul", agt_build_mul, NULL, in, 2);
    agt_check_f32_matches_f64("mul", agt_build_mul, NULL, in, 2, 1e-6);
    b->requires_grad = false;
    agt_gradcheck("mul a only", agt_build_mul, NULL, in, 2);
    agt_gradcheck("mul x*x", build_mul_self, NULL, &a, 1);
    agt_free(a);
    agt_free(b);
}

/* ---- gelu ------------------------------------------------------------------------------------ */

/* Double reference in the cancellation-free form x·σ(2u) (in double, the tanh form itself loses
 * every digit below x ≈ −19). */
static double gelu_ref(double x) {
    return x / (1 + exp(-1.5957691216057308 * (x + 0.044715 * x * x * x)));
}

static double gelu_grad_ref(double x) {
    double s = 1 / (1 + exp(-1.5957691216057308 * (x + 0.044715 * x * x * x)));
    return s + x * s * (1 - s) * 1.5957691216057308 * (1 + 3 * 0.044715 * x * x);
}

static void test_gelu_values(void **state) {
    (void)state;
    const double X[6] = {0, 1, -1, 3, -3, 0.5};
    const double Y[6] = {0,
                         0.8411919906082768,
                         -0.15880800939172324,
                         2.996362607918227,
                         -0.0036373920817729943,
                         0.34571400982514394};
    for (int d = 0; d < 2; d++) {
        ag_dtype dt = d ? AG_F64 : AG_F32;
        ag_tensor *x = agt_from_vals_as(dt, 1, (int64_t[1]){6}, X, true);
        agt_give_grad(x);
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *y = ag_gelu(t, x);
        assert_non_null(y);
        for (size_t i = 0; i < 6; i++)
            assert_close(agt_at(y, i), Y[i], d ? 1e-15 : 1e-7, d ? 1e-15 : 2e-7);
        agt_backward_ones(t, y);
        assert_close(agt_grad_at(x, 0), 0.5, 1e-7, 0); /* gelu'(0) = 1/2 */
        agt_free_grad(x);
        agt_free(x);
        ag_tape_free(t);
    }
}

/* The float path against the double formula over a dense range, both directions. Values: a few
 * ulp plus the rounding of z = 2u (four float operations) propagated through exp, whose condition
 * number is |z|: 3 + 4|z| ulp.
 * Gradients: within 1e-6 + 2e-6·|gelu'|. */
static void test_gelu_f32_dense(void **state) {
    (void)state;
    const size_t n = 40001;
    int64_t sh[1] = {(int64_t)n};
    ag_tensor *x = agt_rand(1, sh, 0, 1, 0, true);
    for (size_t i = 0; i < n; i++)
        ((double *)x->data)[i] = -12.0 + 24.0 * (double)i / (double)(n - 1);
    ag_tensor *xf = agt_to_f32_nograd(x);
    agt_give_grad(xf);
    ag_tape *t = ag_tape_create(1 << 20, 0, 8);
    ag_tensor *y = ag_gelu(t, xf);
    assert_non_null(y);
    agt_backward_ones(t, y);
    double worst = 0, worst_d = 0;
    for (size_t i = 0; i < n; i++) {
        double v = ((float *)xf->data)[i], ref = gelu_ref(v), dref = gelu_grad_ref(v);
        double z = 1.5957691216057308 * (v + 0.044715 * v * v * v);
        if (fabs(ref) > 1e-30) {
            double e =
                fabs(((float *)y->data)[i] - ref) / (fabs(ref) * 0x1p-24 * (3 + 4 * fabs(z)));
            worst = fmax(worst, e);
        }
        worst_d = fmax(worst_d, fabs(((float *)xf->grad)[i] - dref) / (1e-6 + 2e-6 * fabs(dref)));
    }
    print_message("    gelu f32: value error %.3f of bound, gradient error %.3f of bound\n", worst,
                  worst_d);
    assert_true(worst <= 1);
    assert_true(worst_d <= 1);
    agt_free_grad(xf);
    agt_free(xf);
    agt_free(x);
    ag_tape_free(t);
}

static void test_gelu_gradcheck(void **state) {
    (void)state;
    ag_tensor *x = agt_rand(2, (int64_t[2]){4, 6}, -4, 4, 70, true);
    agt_gradcheck("gelu", agt_build_gelu, NULL, &x, 1);
    agt_check_f32_matches_f64("gelu", agt_build_gelu, NULL, &x, 1, 1e-6);
    agt_free(x);
}

/* The recorded forward (which also saves gelu'(x) for backward) and the inference forward give the
 * same float output bit for bit, and the saved derivative equals the double formula. */
static void test_gelu_saved_forward_matches_inference(void **state) {
    (void)state;
    const size_t n = 40001; /* above the OpenMP threshold */
    int64_t sh[1] = {(int64_t)n};
    ag_tensor *x = agt_rand(1, sh, -12, 12, 71, true);
    ag_tensor *xf = agt_to_f32_nograd(x);
    agt_give_grad(xf);
    ag_tape *t = ag_tape_create(1 << 20, 0, 8);
    ag_tensor *yr = ag_gelu(t, xf); /* recorded: takes the saving kernel */
    assert_non_null(yr);
    assert_int_equal(ag_tape_size(t), 1);
    ag_tape_set_recording(t, false);
    ag_tensor *yi = ag_gelu(t, xf); /* inference: saves nothing */
    assert_non_null(yi);
    assert_int_equal(ag_tape_size(t), 1);
    assert_memory_equal(yr->data, yi->data, n * sizeof(float));
    ag_tape_set_recording(t, true);
    agt_backward_ones(t, yr);
    for (size_t i = 0; i < n; i++) {
        double v = ((float *)xf->data)[i], dref = gelu_grad_ref(v);
        assert_close(((float *)xf->grad)[i], dref, 1e-6, 2e-6);
    }
    agt_free_grad(xf);
    agt_free(xf);
    agt_free(x);
    ag_tape_free(t);
}

int agt_run_ops_elementwise(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_values),
        cmocka_unit_test(test_add_gradcheck),
        cmocka_unit_test(test_add_rejects_bad_shapes),
        cmocka_unit_test(test_mul_values),
        cmocka_unit_test(test_mul_gradcheck),
        cmocka_unit_test(test_gelu_values),
        cmocka_unit_test(test_gelu_f32_dense),
        cmocka_unit_test(test_gelu_gradcheck),
        cmocka_unit_test(test_gelu_saved_forward_matches_inference),
    };
    return cmocka_run_group_tests_name("autograd_ops_elementwise", tests, NULL, NULL);
}
