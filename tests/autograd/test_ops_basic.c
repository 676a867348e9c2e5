/* test_ops_basic.c — matmul, linear, add, mul, gelu, embedding, cross-entropy.
 *
 * Each op gets: hand-computed forward (and where short, backward) values; a double-precision
 * gradient check of every variant; a float-vs-double comparison of forward and backward (the
 * gradient checks only run the double kernels, this is what covers the float ones); shape and
 * dtype validation. Kernels that promise thread-count independence are checked bit-for-bit at
 * 1 and 2 threads. */
#include "agtest.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/ops/fastmath.h"

#define LN2 0.69314718055994530942
#define LN3 1.09861228866810969140

/* ---- helpers --------------------------------------------------------------------------------- */

/* Heap AG_F32 copy of an AG_F64 tensor (same shape and requires_grad); free with agt_free. */
static ag_tensor *to_f32(const ag_tensor *t64) {
    ag_tensor *t = malloc(sizeof *t);
    ag_tensor_wrap(t, AG_F32, NULL, NULL, t64->ndim, t64->shape);
    float *d = malloc((t->numel ? t->numel : 1) * sizeof *d);
    for (size_t i = 0; i < t->numel; i++)
        d[i] = (float)((const double *)t64->data)[i];
    t->data = d;
    t->requires_grad = t64->requires_grad;
    return t;
}

/* Heap tensor of the given dtype holding vals (n = product of shape). */
static ag_tensor *from_vals(ag_dtype d, int ndim, const int64_t *shape, const double *vals,
                            bool requires_grad) {
    ag_tensor *t = agt_rand(ndim, shape, 0, 1, 0, requires_grad);
    for (size_t i = 0; i < t->numel; i++)
        ((double *)t->data)[i] = vals[i];
    if (d == AG_F64)
        return t;
    ag_tensor *f = to_f32(t);
    agt_free(t);
    return f;
}

static double val(const ag_tensor *t, const void *buf, size_t i) {
    return t->dtype == AG_F32 ? (double)((const float *)buf)[i] : ((const double *)buf)[i];
}

static void assert_data(const ag_tensor *t, const double *want, double atol) {
    for (size_t i = 0; i < t->numel; i++)
        assert_close(val(t, t->data, i), want[i], atol, 0);
}

static void assert_grad(const ag_tensor *t, const double *want, double atol) {
    assert_non_null(t->grad);
    for (size_t i = 0; i < t->numel; i++)
        assert_close(val(t, t->grad, i), want[i], atol, 0);
}

/* Zeroed heap grad buffer for t. */
static void give_grad(ag_tensor *t) {
    t->grad = calloc(t->numel ? t->numel : 1, ag_dtype_size(t->dtype));
}

static void free_grad(ag_tensor *t) {
    free(t->grad);
    t->grad = NULL;
}

/* Backward from out with a seed of all ones. */
static void backward_ones(ag_tape *tape, ag_tensor *out) {
    size_t es = ag_dtype_size(out->dtype);
    void *seed = malloc(out->numel * es);
    for (size_t i = 0; i < out->numel; i++) {
        if (out->dtype == AG_F32)
            ((float *)seed)[i] = 1;
        else
            ((double *)seed)[i] = 1;
    }
    assert_int_equal(ag_backward(tape, out, seed), 0);
    free(seed);
}

/* Runs build on the f64 inputs and on float copies of them, backward with the same seed, and
 * compares outputs and input gradients: atol + rtol·scale, scale = max |value| of the tensor. */
static void check_f32_matches_f64(const char *what, ag_gc_build_fn build, void *ctx,
                                  ag_tensor **in64, int n, double rtol) {
    ag_tensor *in32[AG_MAX_INPUTS + 2];
    ag_tape *t64 = ag_tape_create(1 << 20, 0, 64), *t32 = ag_tape_create(1 << 20, 0, 64);
    for (int k = 0; k < n; k++) {
        in32[k] = to_f32(in64[k]);
        if (in64[k]->requires_grad) {
            give_grad(in64[k]);
            give_grad(in32[k]);
        }
    }
    ag_tensor *o64 = build(t64, in64, ctx), *o32 = build(t32, in32, ctx);
    assert_non_null(o64);
    assert_non_null(o32);
    assert_int_equal(o32->dtype, AG_F32);
    double *s64 = malloc(o64->numel * sizeof *s64);
    float *s32 = malloc(o64->numel * sizeof *s32);
    uint64_t seed = 99;
    for (size_t i = 0; i < o64->numel; i++)
        s32[i] = (float)(s64[i] = tu_uniform(&seed, -1, 1));
    assert_int_equal(ag_backward(t64, o64, s64), 0);
    assert_int_equal(ag_backward(t32, o32, s32), 0);

    double scale = 0;
    for (size_t i = 0; i < o64->numel; i++)
        scale = fmax(scale, fabs(val(o64, o64->data, i)));
    for (size_t i = 0; i < o64->numel; i++)
        if (!(fabs(val(o32, o32->data, i) - val(o64, o64->data, i)) <= rtol * (scale + 1e-30))) {
            print_error("%s: float output[%zu] = %.9g, double %.9g\n", what, i,
                        val(o32, o32->data, i), val(o64, o64->data, i));
            fail();
        }
    for (int k = 0; k < n; k++) {
        if (!in64[k]->requires_grad)
            continue;
        scale = 0;
        for (size_t i = 0; i < in64[k]->numel; i++)
            scale = fmax(scale, fabs(val(in64[k], in64[k]->grad, i)));
        for (size_t i = 0; i < in64[k]->numel; i++) {
            double g32 = val(in32[k], in32[k]->grad, i), g64 = val(in64[k], in64[k]->grad, i);
            if (!(fabs(g32 - g64) <= rtol * (scale + 1e-30))) {
                print_error("%s: float grad of input %d [%zu] = %.9g, double %.9g\n", what, k, i,
                            g32, g64);
                fail();
            }
        }
        free_grad(in64[k]);
        free_grad(in32[k]);
    }
    for (int k = 0; k < n; k++)
        agt_free(in32[k]);
    free(s64);
    free(s32);
    ag_tape_free(t64);
    ag_tape_free(t32);
}

/* Runs build in float at 1 and at 2 threads and requires bit-identical outputs and gradients
 * (for kernels that do not go through BLAS, whose results may depend on the thread count). */
static void check_thread_count_invariant(const char *what, ag_gc_build_fn build, void *ctx,
                                         ag_tensor **in64, int n) {
    void *ref_out = NULL, *ref_grad[AG_MAX_INPUTS + 2] = {0};
    size_t out_bytes = 0;
    int saved_threads = omp_get_max_threads();
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        ag_tensor *in32[AG_MAX_INPUTS + 2];
        ag_tape *tape = ag_tape_create(1 << 22, 0, 64);
        for (int k = 0; k < n; k++) {
            in32[k] = to_f32(in64[k]);
            if (in32[k]->requires_grad)
                give_grad(in32[k]);
        }
        ag_tensor *out = build(tape, in32, ctx);
        assert_non_null(out);
        backward_ones(tape, out);
        out_bytes = out->numel * sizeof(float);
        if (run == 0) {
            ref_out = malloc(out_bytes);
            memcpy(ref_out, out->data, out_bytes);
        } else if (memcmp(ref_out, out->data, out_bytes) != 0) {
            print_error("%s: output differs between 1 and 2 threads\n", what);
            fail();
        }
        for (int k = 0; k < n; k++) {
            if (!in32[k]->requires_grad)
                continue;
            size_t gb = in32[k]->numel * sizeof(float);
            if (run == 0) {
                ref_grad[k] = in32[k]->grad;
                in32[k]->grad = NULL;
            } else if (memcmp(ref_grad[k], in32[k]->grad, gb) != 0) {
                print_error("%s: grad of input %d differs between 1 and 2 threads\n", what, k);
                fail();
            }
            free_grad(in32[k]);
        }
        for (int k = 0; k < n; k++)
            agt_free(in32[k]);
        ag_tape_free(tape);
    }
    omp_set_num_threads(saved_threads);
    free(ref_out);
    for (int k = 0; k < n; k++)
        free(ref_grad[k]);
}

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
            ag_tensor *a =
                from_vals(dt, 2, ta ? (int64_t[2]){3, 2} : (int64_t[2]){2, 3}, ta ? At : A, true);
            ag_tensor *b =
                from_vals(dt, 2, tb ? (int64_t[2]){2, 3} : (int64_t[2]){3, 2}, tb ? Bt : B, true);
            give_grad(a);
            give_grad(b);
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
            assert_data(y, C, 0);
            backward_ones(t, y);
            assert_grad(a, ta ? dAt : dA, 0);
            assert_grad(b, tb ? dBt : dB, 0);
            free_grad(a);
            free_grad(b);
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
        check_f32_matches_f64(what, build_matmul, &m, in, 2, 1e-5);
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
    ag_tensor *f = to_f32(b);
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
        ag_tensor *x = from_vals(dt, 3, (int64_t[3]){2, 1, 3}, X, true);
        ag_tensor *w = from_vals(dt, 2, (int64_t[2]){2, 3}, W, true);
        give_grad(x);
        give_grad(w);
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *y = ag_linear(t, x, w);
        assert_non_null(y);
        assert_int_equal(y->ndim, 3);
        assert_int_equal(y->shape[0], 2);
        assert_int_equal(y->shape[1], 1);
        assert_int_equal(y->shape[2], 2);
        assert_data(y, Y, 1e-6);
        backward_ones(t, y);
        assert_grad(x, dX, 1e-6);
        assert_grad(w, dW, 1e-6);
        free_grad(x);
        free_grad(w);
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
    check_f32_matches_f64("linear 3-D", build_linear, NULL, in, 2, 1e-5);
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

/* ---- add, mul -------------------------------------------------------------------------------- */

static ag_tensor *build_add(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_add(t, in[0], in[1]);
}

static ag_tensor *build_add_self(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_add(t, in[0], in[0]);
}

static ag_tensor *build_mul(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_mul(t, in[0], in[1]);
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
            ag_tensor *a = from_vals(dt, 3, (int64_t[3]){2, 2, 3}, A, true);
            ag_tensor *b = from_vals(dt, bnd[k], bsh[k], bv[k], true);
            give_grad(a);
            give_grad(b);
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
            assert_data(y, want, 0);
            backward_ones(t, y);
            assert_grad(a, da, 0);
            assert_grad(b, db, 0);
            free_grad(a);
            free_grad(b);
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
        agt_gradcheck(names[k], build_add, NULL, in, 2);
        check_f32_matches_f64(names[k], build_add, NULL, in, 2, 1e-6);
        a->requires_grad = false;
        agt_gradcheck(names[k], build_add, NULL, in, 2);
        a->requires_grad = true;
        b->requires_grad = false;
        agt_gradcheck(names[k], build_add, NULL, in, 2);
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
    ag_tensor *f = to_f32(a);
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
        ag_tensor *a = from_vals(dt, 1, (int64_t[1]){3}, A, true);
        ag_tensor *b = from_vals(dt, 1, (int64_t[1]){3}, B, true);
        give_grad(a);
        give_grad(b);
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *y = ag_mul(t, a, b);
        assert_non_null(y);
        assert_data(y, Y, 0);
        backward_ones(t, y);
        assert_grad(a, B, 0);
        assert_grad(b, A, 0);
        free_grad(a);
        free_grad(b);
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
    agt_gradcheck("mul", build_mul, NULL, in, 2);
    check_f32_matches_f64("mul", build_mul, NULL, in, 2, 1e-6);
    b->requires_grad = false;
    agt_gradcheck("mul a only", build_mul, NULL, in, 2);
    agt_gradcheck("mul x*x", build_mul_self, NULL, &a, 1);
    agt_free(a);
    agt_free(b);
}

/* ---- gelu ------------------------------------------------------------------------------------ */

static ag_tensor *build_gelu(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_gelu(t, in[0]);
}

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
        ag_tensor *x = from_vals(dt, 1, (int64_t[1]){6}, X, true);
        give_grad(x);
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *y = ag_gelu(t, x);
        assert_non_null(y);
        for (size_t i = 0; i < 6; i++)
            assert_close(val(y, y->data, i), Y[i], d ? 1e-15 : 1e-7, d ? 1e-15 : 2e-7);
        backward_ones(t, y);
        assert_close(val(x, x->grad, 0), 0.5, 1e-7, 0); /* gelu'(0) = 1/2 */
        free_grad(x);
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
    ag_tensor *xf = to_f32(x);
    give_grad(xf);
    ag_tape *t = ag_tape_create(1 << 20, 0, 8);
    ag_tensor *y = ag_gelu(t, xf);
    assert_non_null(y);
    backward_ones(t, y);
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
    free_grad(xf);
    agt_free(xf);
    agt_free(x);
    ag_tape_free(t);
}

static void test_gelu_gradcheck(void **state) {
    (void)state;
    ag_tensor *x = agt_rand(2, (int64_t[2]){4, 6}, -4, 4, 70, true);
    agt_gradcheck("gelu", build_gelu, NULL, &x, 1);
    check_f32_matches_f64("gelu", build_gelu, NULL, &x, 1, 1e-6);
    agt_free(x);
}

/* The recorded forward (which also saves gelu'(x) for backward) and the inference forward give the
 * same float output bit for bit, and the saved derivative equals the double formula. */
static void test_gelu_saved_forward_matches_inference(void **state) {
    (void)state;
    const size_t n = 40001; /* above the OpenMP threshold */
    int64_t sh[1] = {(int64_t)n};
    ag_tensor *x = agt_rand(1, sh, -12, 12, 71, true);
    ag_tensor *xf = to_f32(x);
    give_grad(xf);
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
    backward_ones(t, yr);
    for (size_t i = 0; i < n; i++) {
        double v = ((float *)xf->data)[i], dref = gelu_grad_ref(v);
        assert_close(((float *)xf->grad)[i], dref, 1e-6, 2e-6);
    }
    free_grad(xf);
    agt_free(xf);
    agt_free(x);
    ag_tape_free(t);
}

/* ---- embedding ------------------------------------------------------------------------------- */

typedef struct {
    const int32_t *ids;
    int64_t B, T;
} emb_args;

static ag_tensor *build_embedding(ag_tape *t, ag_tensor **in, void *ctx) {
    emb_args *e = ctx;
    return ag_embedding(t, in[0], e->ids, e->B, e->T);
}

/* table [4,2] with row v = [v, 10v]; ids [3,0,3] (B=1, T=3); ids are overwritten before
 * backward to check that the op kept its own copy. */
static void test_embedding_values(void **state) {
    (void)state;
    const double Tab[8] = {0, 0, 1, 10, 2, 20, 3, 30};
    const double Y[6] = {3, 30, 0, 0, 3, 30}, dT[8] = {1, 1, 0, 0, 0, 0, 2, 2};
    for (int d = 0; d < 2; d++) {
        ag_dtype dt = d ? AG_F64 : AG_F32;
        ag_tensor *tab = from_vals(dt, 2, (int64_t[2]){4, 2}, Tab, true);
        give_grad(tab);
        int32_t ids[3] = {3, 0, 3};
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *y = ag_embedding(t, tab, ids, 1, 3);
        assert_non_null(y);
        assert_int_equal(y->ndim, 3);
        assert_int_equal(y->shape[0], 1);
        assert_int_equal(y->shape[1], 3);
        assert_int_equal(y->shape[2], 2);
        assert_data(y, Y, 0);
        ids[0] = ids[1] = ids[2] = 1;
        backward_ones(t, y);
        assert_grad(tab, dT, 0);
        free_grad(tab);
        agt_free(tab);
        ag_tape_free(t);
    }
}

static void test_embedding_rejects_bad_ids(void **state) {
    (void)state;
    ag_tape *t = ag_tape_create(1 << 16, 0, 8);
    ag_tensor *tab = agt_rand(2, (int64_t[2]){4, 2}, -1, 1, 1, true);
    ag_tensor *t3 = agt_rand(3, (int64_t[3]){1, 4, 2}, -1, 1, 2, true);
    assert_null(ag_embedding(t, tab, (int32_t[2]){0, 4}, 1, 2)); /* id == V */
    assert_null(ag_embedding(t, tab, (int32_t[2]){-1, 0}, 2, 1));
    assert_null(ag_embedding(t, tab, NULL, 1, 2));
    assert_null(ag_embedding(t, tab, (int32_t[2]){0, 1}, -1, 2));
    assert_null(ag_embedding(t, t3, (int32_t[2]){0, 1}, 1, 2)); /* table not 2-D */
    assert_null(ag_embedding(t, NULL, (int32_t[2]){0, 1}, 1, 2));
    assert_int_equal(ag_tape_size(t), 0);
    agt_free(tab);
    agt_free(t3);
    ag_tape_free(t);
}

static void test_embedding_gradcheck(void **state) {
    (void)state;
    ag_tensor *tab = agt_rand(2, (int64_t[2]){5, 3}, -1, 1, 80, true);
    const int32_t ids[6] = {4, 1, 4, 0, 1, 4}; /* repeats accumulate; rows 2, 3 get none */
    emb_args e = {ids, 2, 3};
    agt_gradcheck("embedding", build_embedding, &e, &tab, 1);
    check_f32_matches_f64("embedding", build_embedding, &e, &tab, 1, 1e-6);
    agt_free(tab);
}

/* ---- cross-entropy --------------------------------------------------------------------------- */

typedef struct {
    const int32_t *targets;
} ce_args;

static ag_tensor *build_ce(ag_tape *t, ag_tensor **in, void *ctx) {
    ce_args *c = ctx;
    return ag_cross_entropy(t, in[0], c->targets);
}

/* Rows [0, ln2, ln3] → softmax [1/6, 2/6, 3/6], target 2: loss ln 2; [5,5,5], target 0: ln 3;
 * a third row with huge logits is ignored (target -1). Mean over 2 valid rows. */
static void test_cross_entropy_values(void **state) {
    (void)state;
    const double X[9] = {0, LN2, LN3, 5, 5, 5, 1e30, -1e30, 7};
    const double dX[9] = {1.0 / 12, 2.0 / 12, 3.0 / 12 - 0.5, 1.0 / 6 - 0.5, 1.0 / 6, 1.0 / 6, 0,
                          0,        0};
    int32_t tg[3] = {2, 0, -1};
    for (int d = 0; d < 2; d++) {
        ag_dtype dt = d ? AG_F64 : AG_F32;
        ag_tensor *x = from_vals(dt, 2, (int64_t[2]){3, 3}, X, true);
        give_grad(x);
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *loss = ag_cross_entropy(t, x, tg);
        assert_non_null(loss);
        assert_int_equal(loss->ndim, 0);
        assert_int_equal(loss->numel, 1);
        assert_close(val(loss, loss->data, 0), (LN2 + LN3) / 2, 0, d ? 1e-15 : 3e-7);
        tg[0] = tg[1] = tg[2] = 1; /* the op must have copied the targets */
        assert_int_equal(ag_backward(t, loss, NULL), 0);
        tg[0] = 2, tg[1] = 0, tg[2] = -1;
        assert_grad(x, dX, d ? 1e-15 : 1e-7);
        free_grad(x);
        agt_free(x);
        ag_tape_free(t);
    }
}

static void test_cross_entropy_all_ignored(void **state) {
    (void)state;
    ag_tensor *x = agt_rand(2, (int64_t[2]){2, 3}, -1, 1, 1, true);
    give_grad(x);
    ag_tape *t = ag_tape_create(1 << 16, 0, 8);
    ag_tensor *loss = ag_cross_entropy(t, x, (int32_t[2]){-1, -5});
    assert_non_null(loss);
    assert_close(((double *)loss->data)[0], 0, 0, 0);
    assert_int_equal(ag_backward(t, loss, NULL), 0);
    const double zero[6] = {0};
    assert_grad(x, zero, 0);
    free_grad(x);
    agt_free(x);
    ag_tape_free(t);
}

/* Logits around 1e4 (float spacing ~1e-3) and ±1e30: the max shift keeps everything finite, and
 * the float loss equals the shift-invariant double value. */
static void test_cross_entropy_large_logits(void **state) {
    (void)state;
    const double X[6] = {1e4, 1e4 + 1, 1e4 - 2, 1e30, 0, -1e30};
    const double want0 = log(exp(-1) + 1 + exp(-3)); /* row 0, target 1 */
    for (int d = 0; d < 2; d++) {
        ag_dtype dt = d ? AG_F64 : AG_F32;
        ag_tensor *x = from_vals(dt, 2, (int64_t[2]){2, 3}, X, true);
        give_grad(x);
        ag_tape *t = ag_tape_create(1 << 16, 0, 8);
        ag_tensor *loss = ag_cross_entropy(t, x, (int32_t[2]){1, 0});
        assert_non_null(loss);
        assert_close(val(loss, loss->data, 0), want0 / 2, 0, 1e-6); /* row 1 contributes 0 */
        assert_int_equal(ag_backward(t, loss, NULL), 0);
        double p1 = 1 / (exp(-1) + 1 + exp(-3));
        assert_close(val(x, x->grad, 1), (p1 - 1) / 2, 1e-7, 0);
        assert_close(val(x, x->grad, 0), p1 * exp(-1) / 2, 1e-7, 0);
        for (size_t i = 3; i < 6; i++)
            assert_close(val(x, x->grad, i), 0, 1e-7, 0);
        free_grad(x);
        agt_free(x);
        ag_tape_free(t);
    }
}

static void test_cross_entropy_rejects_bad_input(void **state) {
    (void)state;
    ag_tape *t = ag_tape_create(1 << 16, 0, 8);
    ag_tensor *x = agt_rand(2, (int64_t[2]){2, 3}, -1, 1, 1, true);
    assert_null(ag_cross_entropy(t, x, (int32_t[2]){0, 3})); /* target == V */
    assert_null(ag_cross_entropy(t, x, NULL));
    assert_null(ag_cross_entropy(t, NULL, (int32_t[2]){0, 1}));
    assert_int_equal(ag_tape_size(t), 0);
    ag_tape_free(t);
    /* A full arena makes the op return NULL (its scratch and saved state come from it). */
    t = ag_tape_create(256, 320, 8);
    assert_null(ag_cross_entropy(t, x, (int32_t[2]){0, 1}));
    assert_non_null(strstr(ag_tape_error(t), "arena full"));
    ag_tape_free(t);
    agt_free(x);
}

static void test_cross_entropy_gradcheck(void **state) {
    (void)state;
    ag_tensor *x = agt_rand(2, (int64_t[2]){4, 5}, -3, 3, 90, true);
    ce_args c = {(const int32_t[4]){2, -1, 0, 4}};
    agt_gradcheck("cross_entropy [N,V]", build_ce, &c, &x, 1);
    check_f32_matches_f64("cross_entropy [N,V]", build_ce, &c, &x, 1, 1e-6);
    agt_free(x);
    x = agt_rand(3, (int64_t[3]){2, 3, 7}, -3, 3, 91, true);
    c.targets = (const int32_t[6]){6, 0, -1, 3, -1, 1};
    agt_gradcheck("cross_entropy [B,T,V]", build_ce, &c, &x, 1);
    check_f32_matches_f64("cross_entropy [B,T,V]", build_ce, &c, &x, 1, 1e-6);
    agt_free(x);
}

/* ---- composition, modes, determinism --------------------------------------------------------- */

typedef struct {
    const int32_t *ids, *targets;
    int64_t B, T;
} lm_args;

/* A tiny tied-embedding LM: wte is used twice (lookup and output head), w1 feeds a matmul
 * (w1·w1ᵀ as a weight) and a linear, x feeds both the residual and a product, so gradients
 * accumulate from several paths. in: wte [V,C], wpe [T,C], w1 [C,C], bias [C]. */
static ag_tensor *build_tiny_lm(ag_tape *t, ag_tensor **in, void *ctx) {
    lm_args *a = ctx;
    ag_tensor *x = ag_add(t, ag_embedding(t, in[0], a->ids, a->B, a->T), in[1]); /* (B,T,C) */
    ag_tensor *h = ag_add(t, ag_linear(t, x, in[2]), in[3]);                     /* (B,T,C) */
    h = ag_mul(t, ag_gelu(t, h), x);
    ag_tensor *w2 = ag_matmul(t, in[2], in[2], false, true); /* (C,C) */
    h = ag_add(t, ag_linear(t, h, w2), x);
    ag_tensor *logits = ag_linear(t, h, in[0]); /* (B,T,V) */
    return ag_cross_entropy(t, logits, a->targets);
}

static void test_tiny_lm_gradcheck(void **state) {
    (void)state;
    const int64_t V = 6, C = 4;
    const int32_t ids[6] = {1, 5, 1, 0, 3, 3}, tg[6] = {5, 1, -1, 3, 2, 0};
    lm_args a = {ids, tg, 2, 3};
    ag_tensor *wte = agt_rand(2, (int64_t[2]){V, C}, -1, 1, 100, true);
    ag_tensor *wpe = agt_rand(2, (int64_t[2]){3, C}, -0.5, 0.5, 101, true);
    ag_tensor *w1 = agt_rand(2, (int64_t[2]){C, C}, -1, 1, 102, true);
    ag_tensor *bias = agt_rand(1, (int64_t[1]){C}, -0.5, 0.5, 103, true);
    ag_tensor *in[4] = {wte, wpe, w1, bias};
    agt_gradcheck("tiny lm", build_tiny_lm, &a, in, 4);
    check_f32_matches_f64("tiny lm", build_tiny_lm, &a, in, 4, 1e-5);
    for (int k = 0; k < 4; k++)
        agt_free(in[k]);
}

/* With recording off, every op still computes its output but records and keeps nothing. */
static void test_no_record_mode(void **state) {
    (void)state;
    const int32_t ids[6] = {1, 5, 1, 0, 3, 3}, tg[6] = {5, 1, -1, 3, 2, 0};
    lm_args a = {ids, tg, 2, 3};
    ag_tensor *in[4] = {agt_rand(2, (int64_t[2]){6, 4}, -1, 1, 100, true),
                        agt_rand(2, (int64_t[2]){3, 4}, -1, 1, 101, true),
                        agt_rand(2, (int64_t[2]){4, 4}, -1, 1, 102, true),
                        agt_rand(1, (int64_t[1]){4}, -1, 1, 103, true)};
    ag_tape *t = ag_tape_create(1 << 16, 0, 64);
    ag_tensor *on = build_tiny_lm(t, in, &a);
    assert_non_null(on);
    double loss_on = ((double *)on->data)[0];
    assert_int_equal(ag_tape_size(t), 11);
    ag_tape_reset(t);
    ag_tape_set_recording(t, false);
    ag_tensor *off = build_tiny_lm(t, in, &a);
    assert_non_null(off);
    assert_false(off->requires_grad);
    assert_int_equal(ag_tape_size(t), 0);
    assert_close(((double *)off->data)[0], loss_on, 0, 0);
    ag_tape_free(t);
    for (int k = 0; k < 4; k++)
        agt_free(in[k]);
}

/* The non-BLAS kernels partition work so that each output is summed in a fixed order: results
 * must not change with the thread count. Sizes exceed the kernels' parallel thresholds. */
static void test_kernels_thread_count_invariant(void **state) {
    (void)state;
    enum { B = 8, T = 64, C = 96, V = 300 };
    ag_tensor *x = agt_rand(3, (int64_t[3]){B, T, C}, -3, 3, 1, true);
    ag_tensor *y = agt_rand(3, (int64_t[3]){B, T, C}, -3, 3, 2, true);
    ag_tensor *pos = agt_rand(2, (int64_t[2]){T, C}, -1, 1, 3, true);
    ag_tensor *bias = agt_rand(1, (int64_t[1]){C}, -1, 1, 4, true);
    ag_tensor *in2[2] = {x, pos};
    check_thread_count_invariant("add positions", build_add, NULL, in2, 2);
    in2[1] = bias;
    check_thread_count_invariant("add bias", build_add, NULL, in2, 2);
    in2[1] = y;
    check_thread_count_invariant("mul", build_mul, NULL, in2, 2);
    check_thread_count_invariant("gelu", build_gelu, NULL, &x, 1);

    int32_t *ids = malloc(B * T * sizeof *ids), *tg = malloc(B * T * sizeof *tg);
    uint64_t s = 5;
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int32_t)tu_uniform(&s, 0, 7); /* few distinct ids: many collisions */
        tg[i] = i % 5 == 0 ? -1 : (int32_t)tu_uniform(&s, 0, V);
    }
    ag_tensor *tab = agt_rand(2, (int64_t[2]){V, C}, -1, 1, 6, true);
    emb_args e = {ids, B, T};
    check_thread_count_invariant("embedding", build_embedding, &e, &tab, 1);
    ag_tensor *logits = agt_rand(3, (int64_t[3]){B, T, V}, -20, 20, 7, true);
    ce_args c = {tg};
    check_thread_count_invariant("cross_entropy", build_ce, &c, &logits, 1);
    free(ids);
    free(tg);
    agt_free(x);
    agt_free(y);
    agt_free(pos);
    agt_free(bias);
    agt_free(tab);
    agt_free(logits);
}

int agt_run_ops_basic(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_values),
        cmocka_unit_test(test_matmul_gradcheck),
        cmocka_unit_test(test_matmul_rejects_bad_shapes),
        cmocka_unit_test(test_linear_values),
        cmocka_unit_test(test_linear_gradcheck),
        cmocka_unit_test(test_linear_rejects_bad_shapes),
        cmocka_unit_test(test_add_values),
        cmocka_unit_test(test_add_gradcheck),
        cmocka_unit_test(test_add_rejects_bad_shapes),
        cmocka_unit_test(test_mul_values),
        cmocka_unit_test(test_mul_gradcheck),
        cmocka_unit_test(test_gelu_values),
        cmocka_unit_test(test_gelu_f32_dense),
        cmocka_unit_test(test_gelu_gradcheck),
        cmocka_unit_test(test_gelu_saved_forward_matches_inference),
        cmocka_unit_test(test_embedding_values),
        cmocka_unit_test(test_embedding_rejects_bad_ids),
        cmocka_unit_test(test_embedding_gradcheck),
        cmocka_unit_test(test_cross_entropy_values),
        cmocka_unit_test(test_cross_entropy_all_ignored),
        cmocka_unit_test(test_cross_entropy_large_logits),
        cmocka_unit_test(test_cross_entropy_rejects_bad_input),
        cmocka_unit_test(test_cross_entropy_gradcheck),
        cmocka_unit_test(test_tiny_lm_gradcheck),
        cmocka_unit_test(test_no_record_mode),
        cmocka_unit_test(test_kernels_thread_count_invariant),
    };
    return cmocka_run_group_tests_name("autograd_ops_basic", tests, NULL, NULL);
}
