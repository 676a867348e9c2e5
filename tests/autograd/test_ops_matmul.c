/* test_ops_matmul.c — matmul (every transpose combination) and linear, the two ops that go
 * through BLAS.
 *
 * Each op gets: hand-computed forward and backward values; a double-precision gradient check of
 * every variant, including one side only requiring grad; a float-vs-double comparison of forward
 * and backward (the gradient checks only run the double kernels, this is what covers the float
 * ones); shape and dtype validation. No thread-count check: BLAS results may depend on it. */
#include "agtest.h"

/* ---- matmul ---------------------------------------------------------------------------------- */

typedef struct {
    bool ta, tb;
} mm_args;

static ag_tensor *build_matmul(ag_tape *t, ag_tensor **in, void *ctx) {
    mm_args *m = ctx;
    return ag_matmul(t, in[0], in[1], m->ta, m->tb);
}

static ag_tensor *build_matmul_self(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_matmul(t, in[0], in[0], false, true); /* x·xᵀ: both grads land in x */
}

/* A = [[1,2,3],[4,5,6]], B = [[7,8],[9,10],[11,12]], C = A·B = [[58,64],[139,154]], stored
 * transposed when asked; backward with dC = 1 on top of grads pre-filled with 1. */
static void test_matmul_values(void **state) {
    (void)state;
    const double A[6] = {1, 2, 3, 4, 5, 6}, At[6] = {1, 4, 2, 5, 3, 6};
    const double B[6] = {7, 8, 9, 10, 11, 12}, Bt[6] = {7, 9, 11, 8, 10, 12};
    const double C[4] = {58, 64, 139, 154};
    /* dA[m,k] = Σ_n B[k,n]: rows [15,19,23]; dB[k,n] = Σ_m A[m,k]: [5,7,9] down each column. */
    const double dA[6] = {16, 20, 24, 16, 20, 24}, dAt[6] = {16, 16, 20, 20, 24, 24};
    const double dB[6] = {6, 6, 8, 8, 10, 10}, dBt[6] = {6, 8, 10, 6, 8, 10};
    for (int d = 0; d < 2; d++)
        for (int c = 0; c < 4; c++) {
            bool ta = c & 1, tb = c & 2;
            ag_dtype dt = d ? AG_F64 : AG_F32;
            ag_tensor *a = agt_from_vals_as(dt, 2, ta ? (int64_t[2]){3, 2} : (int64_t[2]){2, 3},
                                            ta ? At : A, true);
            ag_tensor *b = agt_from_vals_as(dt, 2, tb ? (int64_t[2]){2, 3} : (int64_t[2]){3, 2},
                                            tb ? Bt : B, true);
            agt_give_grad(a);
            agt_give_grad(b);
            for (size_t i = 0; i < 6; i++) {
                if (dt == AG_F32) {
                    ((float *)a->grad)[i] = 1;
                    ((float *)b->grad)[i] = 1;
                } else {
                    ((double *)a->grad)[i] = 1;
                    ((double *)b->grad)[i] = 1;
                }
            }
            ag_tape *t = ag_tape_create(1 << 16, 0, 8);
            ag_tensor *y = ag_matmul(t, a, b, ta, tb);
            assert_non_null(y);
            assert_int_equal(y->ndim, 2);
            assert_int_equal(y->shape[0], 2);
            assert_int_equal(y->shape[1], 2);
            agt_assert_data(y, C, 0);
            agt_backward_ones(t, y);
            agt_assert_grad(a, ta ? dAt : dA, 0);
            agt_assert_grad(b, tb ? dBt : dB, 0);
            agt_free_grad(a);
            agt_free_grad(b);
            agt_free(a);
            agt_free(b);
            ag_tape_free(t);
        }
}

static void test_matmul_gradcheck(void **state) {
    (void)state;
    const int64_t M = 3, Kd = 4, N = 5;
    for (int c = 0; c < 4; c++) {
        mm_args m = {c & 1, (c & 2) != 0};
        ag_tensor *a =
            agt_rand(2, m.ta ? (int64_t[2]){Kd, M} : (int64_t[2]){M, Kd}, -1, 1, 10 + c, true);
        ag_tensor *b =
            agt_rand(2, m.tb ? (int64_t[2]){N, Kd} : (int64_t[2]){Kd, N}, -1, 1, 20 + c, true);
        ag_tensor *in[2] = {a, b};
        char what[64];
        snprintf(what, sizeof what, "matmul ta=%d tb=%d", m.ta, m.tb);
        agt_gradcheck(what, build_matmul, &m, in, 2);
        agt_check_f32_matches_f64(what, build_matmul, &m, in, 2, 1e-5);
        /* Only one side requiring grad: backward must leave the other alone. */
        a->requires_grad = false;
        agt_gradcheck(what, build_matmul, &m, in, 2);
        a->requires_grad = true;
        b->requires_grad = false;
        agt_gradcheck(what, build_matmul, &m, in, 2);
        agt_free(a);
        agt_free(b);
    }
    ag_tensor *x = agt_rand(2, (int64_t[2]){3, 4}, -1, 1, 30, true);
    agt_gradcheck("matmul x·xT", build_matmul_self, NULL, &x, 1);
    agt_free(x);
}

static void test_matmul_rejects_bad_shapes(void **state) {
    (void)state;
    ag_tape *t = ag_tape_create(1 << 16, 0, 8);
    ag_tensor *a = agt_rand(2, (int64_t[2]){2, 3}, -1, 1, 1, false);
    ag_tensor *b = agt_rand(2, (int64_t[2]){2, 3}, -1, 1, 2, false);
    ag_tensor *c3 = agt_rand(3, (int64_t[3]){1, 3, 2}, -1, 1, 3, false);
    ag_tensor *f = agt_to_f32_nograd(b);
    assert_null(ag_matmul(t, a, b, false, false)); /* inner 3 vs 2 */
    assert_non_null(ag_matmul(t, a, b, false, true));
    assert_non_null(ag_matmul(t, a, b, true, false));
    assert_null(ag_matmul(t, a, c3, false, false)); /* not 2-D */
    assert_null(ag_matmul(t, a, f, false, true));   /* dtype mismatch */
    assert_null(ag_matmul(t, NULL, b, false, true));
    assert_null(ag_matmul(t, a, NULL, false, true));
    agt_free(a);
    agt_free(b);
    agt_free(c3);
    agt_free(f);
    ag_tape_free(t);
}

/* ---- linear ---------------------------------------------------------------------------------- */

static ag_tensor *build_linear(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_linear(t, in[0], in[1]);
}

/* x [2,1,3] = [[1,2,3]],[[4,5,6]], w [2,3] = [[1,0,-1],[0.5,0.5,0.5]] → y [2,1,2]. */
static void test_linear_values(void **state) {
    (void)state;
    const double X[6] = {1, 2, 3, 4, 5, 6}, W[6] = {1, 0, -1, 0.5, 0.5, 0.5};
    const double Y[4] = {-2, 3, -2, 7.5};
    /* dy = 1: dx[r,:] = Σ_o w[o,:] = [1.5,0.5,-0.5]; dw[o,:] = Σ_r x[r,:] = [5,7,9]. */
    const double dX[6] = {1.5, 0.5, -0.5, 1.5, 0.5, -0.5}, dW[6] = {5, 7, 9, 5, 7, 9};
    for (int d = 0; d < 2; d++) {
        ag_dtype dt = d ? AG_F64 : AG_F32;
        ag_tensor *x = agt_from_vals_as(dt, 3, (int64_t[3]){2, 1, 3}, X, true);
        ag_tensor *w = agt_from_vals_as(dt, 2, (int64_t[2]){2, 3}, W, true);
        agt_give_grad(x);
        agt_give_grad(w);
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *y = ag_linear(t, x, w);
        assert_non_null(y);
        assert_int_equal(y->ndim, 3);
        assert_int_equal(y->shape[0], 2);
        assert_int_equal(y->shape[1], 1);
        assert_int_equal(y->shape[2], 2);
        agt_assert_data(y, Y, 1e-6);
        agt_backward_ones(t, y);
        agt_assert_grad(x, dX, 1e-6);
        agt_assert_grad(w, dW, 1e-6);
        agt_free_grad(x);
        agt_free_grad(w);
        agt_free(x);
        agt_free(w);
        ag_tape_free(t);
    }
}

static void test_linear_gradcheck(void **state) {
    (void)state;
    ag_tensor *x = agt_rand(3, (int64_t[3]){2, 3, 4}, -1, 1, 40, true);
    ag_tensor *w = agt_rand(2, (int64_t[2]){5, 4}, -1, 1, 41, true);
    ag_tensor *in[2] = {x, w};
    agt_gradcheck("linear 3-D", build_linear, NULL, in, 2);
    agt_check_f32_matches_f64("linear 3-D", build_linear, NULL, in, 2, 1e-5);
    x->requires_grad = false;
    agt_gradcheck("linear w only", build_linear, NULL, in, 2);
    agt_free(x);
    agt_free(w);

    x = agt_rand(2, (int64_t[2]){6, 3}, -1, 1, 42, true);
    w = agt_rand(2, (int64_t[2]){2, 3}, -1, 1, 43, false);
    in[0] = x;
    in[1] = w;
    agt_gradcheck("linear x only", build_linear, NULL, in, 2);
    agt_free(x);
    agt_free(w);
}

static void test_linear_rejects_bad_shapes(void **state) {
    (void)state;
    ag_tape *t = ag_tape_create(1 << 16, 0, 8);
    ag_tensor *x = agt_rand(2, (int64_t[2]){2, 3}, -1, 1, 1, false);
    ag_tensor *w = agt_rand(2, (int64_t[2]){4, 2}, -1, 1, 2, false);
    ag_tensor *w3 = agt_rand(3, (int64_t[3]){1, 4, 3}, -1, 1, 3, false);
    assert_null(ag_linear(t, x, w));  /* in 3 vs 2 */
    assert_null(ag_linear(t, x, w3)); /* w not 2-D */
    assert_null(ag_linear(t, NULL, w));
    assert_null(ag_linear(t, x, NULL));
    agt_free(x);
    agt_free(w);
    agt_free(w3);
    ag_tape_free(t);
}

int agt_run_ops_matmul(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_values),
        cmocka_unit_test(test_matmul_gradcheck),
        cmocka_unit_test(test_matmul_rejects_bad_shapes),
        cmocka_unit_test(test_linear_values),
        cmocka_unit_test(test_linear_gradcheck),
        cmocka_unit_test(test_linear_rejects_bad_shapes),
    };
    return cmocka_run_group_tests_name("autograd_ops_matmul", tests, NULL, NULL);
}
