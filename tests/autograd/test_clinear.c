/* test_clinear.c — ag_clinear, the complex-linear projection of CRoPE attention: a hand-computed
 * case, agreement with C99 complex arithmetic and (for B = 0) with ag_linear on the real and
 * imaginary planes, the identity CRoPE rests on (complex rotary score = real rotary score of
 * ag_rope), float vs double, thread-count invariance, gradient accumulation, inference mode, edge
 * sizes and bad inputs, and double-precision gradient checks with respect to x, A and B. */
#include "agtest.h"

#include <complex.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------------------------- */

static ag_tape *new_tape(void) { return ag_tape_create(1 << 20, 0, 64); }

/* Heap tensor of dtype dt holding vals (rounded for AG_F32), with a zeroed grad buffer of its own
 * when rg (so its gradients outlive the tape). Free with free_t. */
static ag_tensor *new_t(ag_dtype dt, int ndim, const int64_t *shape, const double *vals, bool rg) {
    ag_tensor *t = malloc(sizeof *t);
    ag_tensor_wrap(t, dt, NULL, NULL, ndim, shape);
    size_t n = t->numel ? t->numel : 1, es = ag_dtype_size(dt);
    t->data = calloc(n, es);
    for (size_t i = 0; vals && i < t->numel; i++) {
        if (dt == AG_F32)
            ((float *)t->data)[i] = (float)vals[i];
        else
            ((double *)t->data)[i] = vals[i];
    }
    t->grad = rg ? calloc(n, es) : NULL;
    t->requires_grad = rg;
    return t;
}

static void free_t(ag_tensor *t) {
    if (!t)
        return;
    free(t->data);
    free(t->grad);
    free(t);
}

/* Seed buffer of dtype dt from double values (the caller frees it). */
static void *seed_of(ag_dtype dt, const double *vals, size_t n) {
    void *s = malloc((n ? n : 1) * ag_dtype_size(dt));
    for (size_t i = 0; i < n; i++) {
        if (dt == AG_F32)
            ((float *)s)[i] = (float)vals[i];
        else
            ((double *)s)[i] = vals[i];
    }
    return s;
}

/* Interleaved pairs of v as complex numbers: z[k] = v[2k] + i·v[2k+1]. */
static double complex cpair(const double *v, size_t k) { return v[2 * k] + I * v[2 * k + 1]; }

/* ---- values ---------------------------------------------------------------------------------- */

/* d = D = 4, two rows. W̃ = [[1, i], [2+i, −1+2i]], x̃ = [(1+2i, 3+4i), (i, −1+0.5i)], seed
 * dỹ = [(1−i, 0.5+2i), (−2, 1+i)]. By hand: ỹ = W̃x̃ = [(−3+5i, −11+7i), (−0.5, −1−0.5i)],
 * dx̃ = W̃ᴴdỹ = [(4+2.5i, 2.5−4i), (1+i, 1−i)],
 * dW̃ = Σ_r dỹ_r x̃_rᴴ = [[−1−i, 1−6i], [5.5, 9+2.5i]] (dA its real part, dB its imaginary part).
 * Every number is exact in binary, so double must match exactly. */
static void test_clinear_hand_case(void **state) {
    (void)state;
    int64_t sx[2] = {2, 4}, sw[2] = {2, 2};
    const double xv[8] = {1, 2, 3, 4, 0, 1, -1, 0.5}, av[4] = {1, 0, 2, -1}, bv[4] = {0, 1, 1, 2};
    const double dyv[8] = {1, -1, 0.5, 2, -2, 0, 1, 1};
    const double want_y[8] = {-3, 5, -11, 7, -0.5, 0, -1, -0.5};
    const double want_dx[8] = {4, 2.5, 2.5, -4, 1, 1, 1, -1};
    const double want_da[4] = {-1, 1, 5.5, 9}, want_db[4] = {-1, -6, 0, 2.5};
    for (int f32 = 0; f32 < 2; f32++) {
        ag_dtype dt = f32 ? AG_F32 : AG_F64;
        double tol = f32 ? 1e-6 : 0;
        ag_tensor *x = new_t(dt, 2, sx, xv, true), *a = new_t(dt, 2, sw, av, true);
        ag_tensor *b = new_t(dt, 2, sw, bv, true);
        void *seed = seed_of(dt, dyv, 8);
        ag_tape *t = new_tape();
        ag_tensor *y = ag_clinear(t, x, a, b);
        assert_non_null(y);
        assert_int_equal(y->ndim, 2);
        assert_int_equal(y->shape[0], 2);
        assert_int_equal(y->shape[1], 4);
        assert_int_equal(y->dtype, dt);
        assert_int_equal(ag_tape_size(t), 1);
        assert_int_equal(ag_tape_node(t, 0)->op, AG_OP_CLINEAR);
        assert_int_equal(ag_backward(t, y, seed), 0);
        for (size_t i = 0; i < 8; i++) {
            assert_close(agt_at(y, i), want_y[i], tol, tol);
            assert_close(agt_grad_at(x, i), want_dx[i], tol, tol);
        }
        for (size_t i = 0; i < 4; i++) {
            assert_close(agt_grad_at(a, i), want_da[i], tol, tol);
            assert_close(agt_grad_at(b, i), want_db[i], tol, tol);
        }
        ag_tape_free(t);
        free(seed);
        free_t(x);
        free_t(a);
        free_t(b);
    }
}

/* Forward and backward against C99 complex arithmetic, one element at a time, on random data
 * (d ≠ D, three leading dims). The grads start non-zero: the op must add to them. */
static void test_clinear_matches_complex_arithmetic(void **state) {
    (void)state;
    enum { R = 7, d2 = 5, D2 = 6 };
    int64_t sx[3] = {1, R, 2 * d2}, sw[2] = {D2, d2};
    double *xv = agt_rand_vals(R * 2 * d2, -1, 1, 201), *av = agt_rand_vals(D2 * d2, -1, 1, 202);
    double *bv = agt_rand_vals(D2 * d2, -1, 1, 203), *dyv = agt_rand_vals(R * 2 * D2, -1, 1, 204);
    double *g0x = agt_rand_vals(R * 2 * d2, -1, 1, 205), *g0a = agt_rand_vals(D2 * d2, -1, 1, 206);
    double *g0b = agt_rand_vals(D2 * d2, -1, 1, 207);
    /* Naive: ỹ_r = W̃ x̃_r, dx̃_r = W̃ᴴ dỹ_r, dW̃ = Σ_r dỹ_r x̃_rᴴ. */
    double complex y[R][D2], dx[R][d2], dw[D2][d2];
    memset(dw, 0, sizeof dw);
    for (size_t r = 0; r < R; r++) {
        for (size_t p = 0; p < D2; p++) {
            y[r][p] = 0;
            for (size_t k = 0; k < d2; k++)
                y[r][p] += (av[p * d2 + k] + I * bv[p * d2 + k]) * cpair(xv + r * 2 * d2, k);
        }
        for (size_t k = 0; k < d2; k++) {
            dx[r][k] = 0;
            for (size_t p = 0; p < D2; p++)
                dx[r][k] += conj(av[p * d2 + k] + I * bv[p * d2 + k]) * cpair(dyv + r * 2 * D2, p);
        }
        for (size_t p = 0; p < D2; p++)
            for (size_t k = 0; k < d2; k++)
                dw[p][k] += cpair(dyv + r * 2 * D2, p) * conj(cpair(xv + r * 2 * d2, k));
    }
    for (int f32 = 0; f32 < 2; f32++) {
        ag_dtype dt = f32 ? AG_F32 : AG_F64;
        double atol = f32 ? 2e-6 : 1e-14, rtol = f32 ? 1e-5 : 1e-13;
        ag_tensor *x = new_t(dt, 3, sx, xv, true), *a = new_t(dt, 2, sw, av, true);
        ag_tensor *b = new_t(dt, 2, sw, bv, true);
        ag_tensor *gx = new_t(dt, 3, sx, g0x, false), *ga = new_t(dt, 2, sw, g0a, false);
        ag_tensor *gb = new_t(dt, 2, sw, g0b, false);
        memcpy(x->grad, gx->data, x->numel * ag_dtype_size(dt));
        memcpy(a->grad, ga->data, a->numel * ag_dtype_size(dt));
        memcpy(b->grad, gb->data, b->numel * ag_dtype_size(dt));
        void *seed = seed_of(dt, dyv, R * 2 * D2);
        ag_tape *t = new_tape();
        ag_tensor *yt = ag_clinear(t, x, a, b);
        assert_non_null(yt);
        assert_int_equal(yt->ndim, 3);
        assert_int_equal(yt->shape[2], 2 * D2);
        assert_int_equal(ag_backward(t, yt, seed), 0);
        for (size_t r = 0; r < R; r++) {
            for (size_t p = 0; p < D2; p++) {
                assert_close(agt_at(yt, r * 2 * D2 + 2 * p), creal(y[r][p]), atol, rtol);
                assert_close(agt_at(yt, r * 2 * D2 + 2 * p + 1), cimag(y[r][p]), atol, rtol);
            }
            for (size_t k = 0; k < d2; k++) {
                size_t i = r * 2 * d2 + 2 * k;
                assert_close(agt_grad_at(x, i), g0x[i] + creal(dx[r][k]), atol, rtol);
                assert_close(agt_grad_at(x, i + 1), g0x[i + 1] + cimag(dx[r][k]), atol, rtol);
            }
        }
        for (size_t p = 0; p < D2; p++)
            for (size_t k = 0; k < d2; k++) {
                assert_close(agt_grad_at(a, p * d2 + k), g0a[p * d2 + k] + creal(dw[p][k]), atol,
                             rtol);
                assert_close(agt_grad_at(b, p * d2 + k), g0b[p * d2 + k] + cimag(dw[p][k]), atol,
                             rtol);
            }
        ag_tape_free(t);
        free(seed);
        free_t(x);
        free_t(a);
        free_t(b);
        free_t(gx);
        free_t(ga);
        free_t(gb);
    }
    free(xv);
    free(av);
    free(bv);
    free(dyv);
    free(g0x);
    free(g0a);
    free(g0b);
}

/* With B = 0 the layer is the real projection by A applied to the real parts and to the imaginary
 * parts separately: y_r = ag_linear(x_r, A), y_i = ag_linear(x_i, A), and likewise dx_r, dx_i,
 * and dA is the sum of the two linears' dA. */
static void test_clinear_b_zero_is_two_linears(void **state) {
    (void)state;
    enum { R = 9, d2 = 6, D2 = 5 };
    int64_t sx[2] = {R, 2 * d2}, sp[2] = {R, d2}, sw[2] = {D2, d2};
    double *xv = agt_rand_vals(R * 2 * d2, -1, 1, 301), *av = agt_rand_vals(D2 * d2, -1, 1, 302);
    double *dyv = agt_rand_vals(R * 2 * D2, -1, 1, 303);
    double xr[R * d2], xi[R * d2], dyr[R * D2], dyi[R * D2], zero[D2 * d2] = {0};
    for (size_t r = 0; r < R; r++) {
        for (size_t k = 0; k < d2; k++) {
            xr[r * d2 + k] = xv[r * 2 * d2 + 2 * k];
            xi[r * d2 + k] = xv[r * 2 * d2 + 2 * k + 1];
        }
        for (size_t p = 0; p < D2; p++) {
            dyr[r * D2 + p] = dyv[r * 2 * D2 + 2 * p];
            dyi[r * D2 + p] = dyv[r * 2 * D2 + 2 * p + 1];
        }
    }
    for (int f32 = 0; f32 < 2; f32++) {
        ag_dtype dt = f32 ? AG_F32 : AG_F64;
        double atol = f32 ? 1e-6 : 1e-14, rtol = f32 ? 1e-5 : 1e-13;
        ag_tensor *x = new_t(dt, 2, sx, xv, true), *a = new_t(dt, 2, sw, av, true);
        ag_tensor *b = new_t(dt, 2, sw, zero, false);
        ag_tensor *txr = new_t(dt, 2, sp, xr, true), *txi = new_t(dt, 2, sp, xi, true);
        ag_tensor *a2 = new_t(dt, 2, sw, av, true); /* receives both linears' dA */
        void *seed = seed_of(dt, dyv, R * 2 * D2), *seedr = seed_of(dt, dyr, R * D2);
        void *seedi = seed_of(dt, dyi, R * D2);
        ag_tape *t = new_tape(), *tr = new_tape(), *ti = new_tape();
        ag_tensor *y = ag_clinear(t, x, a, b);
        ag_tensor *yr = ag_linear(tr, txr, a2), *yi = ag_linear(ti, txi, a2);
        assert_non_null(y);
        assert_non_null(yr);
        assert_non_null(yi);
        assert_int_equal(ag_backward(t, y, seed), 0);
        assert_int_equal(ag_backward(tr, yr, seedr), 0);
        assert_int_equal(ag_backward(ti, yi, seedi), 0);
        for (size_t r = 0; r < R; r++) {
            for (size_t p = 0; p < D2; p++) {
                assert_close(agt_at(y, r * 2 * D2 + 2 * p), agt_at(yr, r * D2 + p), atol, rtol);
                assert_close(agt_at(y, r * 2 * D2 + 2 * p + 1), agt_at(yi, r * D2 + p), atol, rtol);
            }
            for (size_t k = 0; k < d2; k++) {
                assert_close(agt_grad_at(x, r * 2 * d2 + 2 * k), agt_grad_at(txr, r * d2 + k), atol,
                             rtol);
                assert_close(agt_grad_at(x, r * 2 * d2 + 2 * k + 1), agt_grad_at(txi, r * d2 + k),
                             atol, rtol);
            }
        }
        for (size_t i = 0; i < D2 * d2; i++)
            assert_close(agt_grad_at(a, i), agt_grad_at(a2, i), atol, rtol);
        ag_tape_free(t);
        ag_tape_free(tr);
        ag_tape_free(ti);
        free(seed);
        free(seedr);
        free(seedi);
        free_t(x);
        free_t(a);
        free_t(b);
        free_t(txr);
        free_t(txi);
        free_t(a2);
    }
    free(xv);
    free(av);
    free(dyv);
}

/* The identity CRoPE rests on. Project two residual vectors with ag_clinear (q from x_m, k from
 * x_n, one head of HS), then: rotating each complex pair j by e^{i·pos·θ_j}, θ_j = 10000^(−2j/HS),
 * and taking Re(Σ_j conj(q̃_j)·k̃_j) in C99 complex arithmetic equals the real dot product of
 * ag_rope(q at m) and ag_rope(k at n). Shifting both positions leaves it unchanged. */
static void test_clinear_complex_score_is_rotary_score(void **state) {
    (void)state;
    enum { d2 = 6, H2 = 8, HS = 2 * H2 };
    int64_t sx[3] = {1, 1, 2 * d2}, sw[2] = {H2, d2};
    double *xm = agt_rand_vals(2 * d2, -1, 1, 401), *xn = agt_rand_vals(2 * d2, -1, 1, 402);
    double *aq = agt_rand_vals(H2 * d2, -1, 1, 403), *bq = agt_rand_vals(H2 * d2, -1, 1, 404);
    double *ak = agt_rand_vals(H2 * d2, -1, 1, 405), *bk = agt_rand_vals(H2 * d2, -1, 1, 406);
    ag_tensor *txm = new_t(AG_F64, 3, sx, xm, false), *txn = new_t(AG_F64, 3, sx, xn, false);
    ag_tensor *taq = new_t(AG_F64, 2, sw, aq, false), *tbq = new_t(AG_F64, 2, sw, bq, false);
    ag_tensor *tak = new_t(AG_F64, 2, sw, ak, false), *tbk = new_t(AG_F64, 2, sw, bk, false);
    /* Complex projections, independent of the op. */
    double complex q[H2], k[H2];
    for (size_t j = 0; j < H2; j++) {
        q[j] = k[j] = 0;
        for (size_t c = 0; c < d2; c++) {
            q[j] += (aq[j * d2 + c] + I * bq[j * d2 + c]) * cpair(xm, c);
            k[j] += (ak[j * d2 + c] + I * bk[j * d2 + c]) * cpair(xn, c);
        }
    }
    const int64_t pos[5][2] = {{7, 3}, {0, 0}, {3, 7}, {1000, 5}, {107, 103}};
    double real_score[5];
    ag_tape *t = new_tape();
    for (int s = 0; s < 5; s++) {
        int64_t m = pos[s][0], n = pos[s][1];
        double complex acc = 0;
        for (size_t j = 0; j < H2; j++) {
            double theta = pow(10000.0, -2.0 * (double)j / HS);
            acc +=
                conj(q[j] * cexp(I * ((double)m * theta))) * (k[j] * cexp(I * ((double)n * theta)));
        }
        ag_tensor *rq = ag_rope(t, ag_clinear(t, txm, taq, tbq), 1, m, 10000.0);
        ag_tensor *rk = ag_rope(t, ag_clinear(t, txn, tak, tbk), 1, n, 10000.0);
        assert_non_null(rq);
        assert_non_null(rk);
        real_score[s] = 0;
        for (size_t c = 0; c < HS; c++)
            real_score[s] += agt_at(rq, c) * agt_at(rk, c);
        assert_close(real_score[s], creal(acc), 1e-12, 1e-12);
    }
    assert_close(real_score[4], real_score[0], 1e-12, 1e-12); /* same offset m − n */
    assert_true(fabs(real_score[2] - real_score[0]) > 1e-6);  /* opposite offset differs */
    ag_tape_free(t);
    free_t(txm);
    free_t(txn);
    free_t(taq);
    free_t(tbq);
    free_t(tak);
    free_t(tbk);
    free(xm);
    free(xn);
    free(aq);
    free(bq);
    free(ak);
    free(bk);
}

/* ---- precision, threads, modes --------------------------------------------------------------- */

/* One forward+backward on fresh tensors of dtype dt at nt threads; y and the grads are copied out
 * (y, dx, da, db each malloc'ed, caller frees). Sizes are above the expansion/fold threshold and
 * give every gemm two row blocks (R = 160 = 128 + 32 rows, D = 256 = 2·128), so at 2 threads
 * each pass really runs on two threads. */
enum { BIG_R = 160, BIG_D2 = 128, BIG_d2 = 160 };

static void run_big(ag_dtype dt, int nt, const double *xv, const double *av, const double *bv,
                    const double *dyv, void *out[4]) {
    int64_t sx[3] = {2, BIG_R / 2, 2 * BIG_d2}, sw[2] = {BIG_D2, BIG_d2};
    int saved = omp_get_max_threads();
    omp_set_num_threads(nt);
    ag_tensor *x = new_t(dt, 3, sx, xv, true), *a = new_t(dt, 2, sw, av, true);
    ag_tensor *b = new_t(dt, 2, sw, bv, true);
    void *seed = seed_of(dt, dyv, (size_t)BIG_R * 2 * BIG_D2);
    ag_tape *t = ag_tape_create(1 << 22, 0, 16);
    ag_tensor *y = ag_clinear(t, x, a, b);
    assert_non_null(y);
    assert_int_equal(ag_backward(t, y, seed), 0);
    const ag_tensor *src[4] = {y, x, a, b};
    for (int k = 0; k < 4; k++) {
        size_t bytes = src[k]->numel * ag_dtype_size(dt);
        out[k] = malloc(bytes);
        memcpy(out[k], k ? src[k]->grad : src[k]->data, bytes);
    }
    ag_tape_free(t);
    free(seed);
    free_t(x);
    free_t(a);
    free_t(b);
    omp_set_num_threads(saved);
}

static void test_clinear_f32_f64_and_threads(void **state) {
    (void)state;
    size_t nx = (size_t)BIG_R * 2 * BIG_d2, nw = (size_t)BIG_D2 * BIG_d2;
    size_t ny = (size_t)BIG_R * 2 * BIG_D2, n[4] = {ny, nx, nw, nw};
    double *xv = agt_rand_vals(nx, -1, 1, 501), *av = agt_rand_vals(nw, -0.1, 0.1, 502);
    double *bv = agt_rand_vals(nw, -0.1, 0.1, 503), *dyv = agt_rand_vals(ny, -1, 1, 504);
    void *f1[4], *f2[4], *d1[4];
    run_big(AG_F32, 1, xv, av, bv, dyv, f1);
    run_big(AG_F32, 2, xv, av, bv, dyv, f2);
    run_big(AG_F64, 2, xv, av, bv, dyv, d1);
    static const char *const names[4] = {"y", "dx", "dA", "dB"};
    for (int k = 0; k < 4; k++) {
        if (memcmp(f1[k], f2[k], n[k] * sizeof(float)) != 0) {
            print_error("clinear f32: %s differs between 1 and 2 threads\n", names[k]);
            fail();
        }
        /* f32 vs f64: sums of 320 (y), 256 (dx) or 2·160 (dA, dB) products. */
        for (size_t i = 0; i < n[k]; i++)
            assert_close(((const float *)f1[k])[i], ((const double *)d1[k])[i], 2e-5, 1e-4);
    }
    for (int k = 0; k < 4; k++) {
        free(f1[k]);
        free(f2[k]);
        free(d1[k]);
    }
    free(xv);
    free(av);
    free(bv);
    free(dyv);
}

/* Not recording: nothing on the tape, the same output bits. Recording with only A needing a grad:
 * x and B keep NULL grads through backward, A's grad is the hand-checked formula. */
static void test_clinear_modes(void **state) {
    (void)state;
    int64_t sx[2] = {3, 6}, sw[2] = {2, 3};
    double *xv = agt_rand_vals(18, -1, 1, 601), *av = agt_rand_vals(6, -1, 1, 602);
    double *bv = agt_rand_vals(6, -1, 1, 603);
    for (int f32 = 0; f32 < 2; f32++) {
        ag_dtype dt = f32 ? AG_F32 : AG_F64;
        ag_tensor *x = new_t(dt, 2, sx, xv, false), *a = new_t(dt, 2, sw, av, true);
        ag_tensor *b = new_t(dt, 2, sw, bv, false);
        ag_tape *t = new_tape();
        ag_tape_set_recording(t, false);
        ag_tensor *y0 = ag_clinear(t, x, a, b);
        assert_non_null(y0);
        assert_false(y0->requires_grad);
        assert_int_equal(ag_tape_size(t), 0);
        ag_tape_set_recording(t, true);
        ag_tensor *y1 = ag_clinear(t, x, a, b);
        assert_non_null(y1);
        assert_true(y1->requires_grad);
        assert_int_equal(ag_tape_size(t), 1);
        assert_memory_equal(y0->data, y1->data, 12 * ag_dtype_size(dt));
        void *seed = seed_of(dt, xv + 6, 12); /* any 12 values */
        assert_int_equal(ag_backward(t, y1, seed), 0);
        assert_null(x->grad);
        assert_null(b->grad);
        /* dA[p][k] = Σ_r dy_r[p]·x_r[k] + dy_i[p]·x_i[k] */
        for (size_t p = 0; p < 2; p++)
            for (size_t k = 0; k < 3; k++) {
                double want = 0;
                for (size_t r = 0; r < 3; r++)
                    want += xv[6 + r * 4 + 2 * p] * agt_at(x, r * 6 + 2 * k) +
                            xv[6 + r * 4 + 2 * p + 1] * agt_at(x, r * 6 + 2 * k + 1);
                assert_close(agt_grad_at(a, p * 3 + k), want, f32 ? 1e-6 : 1e-15,
                             f32 ? 1e-5 : 1e-14);
            }
        free(seed);
        ag_tape_free(t);
        free_t(x);
        free_t(a);
        free_t(b);
    }
    free(xv);
    free(av);
    free(bv);
}

/* Zero-size dims go through forward and backward without touching memory they do not own (the
 * ASan build checks). */
static void test_clinear_edge_sizes(void **state) {
    (void)state;
    ag_tape *t = new_tape();
    /* d = 0: y is all zeros. */
    int64_t sx0[2] = {3, 0}, sw0[2] = {2, 0};
    ag_tensor *x = new_t(AG_F64, 2, sx0, NULL, true), *a = new_t(AG_F64, 2, sw0, NULL, true);
    ag_tensor *y = ag_clinear(t, x, a, a);
    assert_non_null(y);
    assert_int_equal(y->shape[1], 4);
    for (size_t i = 0; i < 12; i++)
        assert_close(agt_at(y, i), 0, 0, 0);
    void *seed = seed_of(AG_F64, (const double[12]){0}, 12);
    assert_int_equal(ag_backward(t, y, seed), 0);
    free(seed);
    free_t(x);
    free_t(a);
    /* R = 0 and D = 0 (each case on a reset tape: backward replays every node it holds). */
    int64_t sxr[2] = {0, 4}, sw[2] = {3, 2}, sx[2] = {2, 4}, swd[2] = {0, 2};
    ag_tape_reset(t);
    x = new_t(AG_F32, 2, sxr, NULL, true);
    a = new_t(AG_F32, 2, sw, NULL, true);
    y = ag_clinear(t, x, a, a);
    assert_non_null(y);
    assert_int_equal(y->numel, 0);
    assert_int_equal(ag_backward(t, y, NULL), 0);
    free_t(x);
    free_t(a);
    ag_tape_reset(t);
    x = new_t(AG_F32, 2, sx, NULL, true);
    a = new_t(AG_F32, 2, swd, NULL, true);
    y = ag_clinear(t, x, a, a);
    assert_non_null(y);
    assert_int_equal(y->numel, 0);
    assert_int_equal(ag_backward(t, y, NULL), 0);
    free_t(x);
    free_t(a);
    ag_tape_free(t);
}

static void test_clinear_rejects_bad_inputs(void **state) {
    (void)state;
    int64_t sx[2] = {2, 8}, sodd[2] = {2, 7}, sw[2] = {3, 4}, sw5[2] = {3, 5}, sw4[2] = {4, 4};
    int64_t sw3[3] = {1, 3, 4}, sw1[1] = {4}, sw33[2] = {3, 3};
    ag_tensor *x = new_t(AG_F64, 2, sx, NULL, false), *xo = new_t(AG_F64, 2, sodd, NULL, false);
    ag_tensor *a = new_t(AG_F64, 2, sw, NULL, false), *a5 = new_t(AG_F64, 2, sw5, NULL, false);
    ag_tensor *a4 = new_t(AG_F64, 2, sw4, NULL, false), *a3 = new_t(AG_F64, 3, sw3, NULL, false);
    ag_tensor *a1 = new_t(AG_F64, 1, sw1, NULL, false), *af = new_t(AG_F32, 2, sw, NULL, false);
    ag_tensor *xf = new_t(AG_F32, 2, sx, NULL, false), *a33 = new_t(AG_F64, 2, sw33, NULL, false);
    ag_tape *t = new_tape();
    assert_null(ag_clinear(t, xo, a33, a33)); /* odd d = 7, though 7/2 = 3 "fits" [3,3] */
    assert_null(ag_clinear(t, xo, a, a));
    assert_null(ag_clinear(t, x, a, a4)); /* a and b shapes differ (rows) */
    assert_null(ag_clinear(t, x, a4, a));
    assert_null(ag_clinear(t, x, a, a5));  /* ... and inner sizes */
    assert_null(ag_clinear(t, x, a5, a5)); /* inner size 5, x has 8/2 = 4 */
    assert_null(ag_clinear(t, x, a3, a3)); /* weights not 2-D */
    assert_null(ag_clinear(t, x, a1, a1));
    assert_null(ag_clinear(t, x, a, af)); /* dtypes differ */
    assert_null(ag_clinear(t, xf, a, a));
    assert_null(ag_clinear(t, NULL, a, a));
    assert_null(ag_clinear(t, x, NULL, a));
    assert_null(ag_clinear(t, x, a, NULL));
    assert_non_null(ag_clinear(t, x, a, a));
    assert_non_null(ag_clinear(t, xf, af, af));
    ag_tape_free(t);
    free_t(x);
    free_t(xo);
    free_t(a);
    free_t(a5);
    free_t(a4);
    free_t(a3);
    free_t(a1);
    free_t(af);
    free_t(xf);
    free_t(a33);
}

/* A full arena (room for y but not for W_e) and a full tape both give NULL and say why. */
static void test_clinear_reports_full_arena_and_tape(void **state) {
    (void)state;
    int64_t sx[2] = {1, 64}, sw[2] = {32, 32};
    ag_tensor *x = new_t(AG_F64, 2, sx, NULL, true), *a = new_t(AG_F64, 2, sw, NULL, true);
    ag_tape *t = ag_tape_create(8192, 8192, 16); /* y: 512 bytes, W_e: 32 KiB */
    assert_null(ag_clinear(t, x, a, a));
    assert_non_null(strstr(ag_tape_error(t), "arena full"));
    ag_tape_free(t);
    t = ag_tape_create(1 << 20, 0, 0); /* no room for the node */
    assert_null(ag_clinear(t, x, a, a));
    assert_non_null(strstr(ag_tape_error(t), "tape full"));
    ag_tape_free(t);
    free_t(x);
    free_t(a);
}

/* ---- gradient checks ------------------------------------------------------------------------- */

static ag_tensor *build_clinear(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_clinear(t, in[0], in[1], in[2]);
}

/* Shared weights: W̃ = A + iA. */
static ag_tensor *build_clinear_shared(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    return ag_clinear(t, in[0], in[1], in[1]);
}

/* One shape, every subset of inputs needing grads that gives the op something to do. */
static void gradcheck_shape(const char *what, int ndim, const int64_t *sx, int64_t D2,
                            uint64_t seed) {
    int64_t sw[2] = {D2, sx[ndim - 1] / 2};
    ag_tensor *x = agt_rand(ndim, sx, -2, 2, seed, true);
    ag_tensor *a = agt_rand(2, sw, -1, 1, seed + 1, true);
    ag_tensor *b = agt_rand(2, sw, -1, 1, seed + 2, true);
    ag_tensor *in[3] = {x, a, b};
    static const bool subsets[5][3] = {
        {true, true, true},   {true, false, false}, {false, true, false},
        {false, false, true}, {false, true, true},
    };
    char name[96];
    for (int s = 0; s < 5; s++) {
        for (int k = 0; k < 3; k++)
            in[k]->requires_grad = subsets[s][k];
        snprintf(name, sizeof name, "%s grads %s%s%s", what, subsets[s][0] ? "x" : "",
                 subsets[s][1] ? "A" : "", subsets[s][2] ? "B" : "");
        agt_gradcheck(name, build_clinear, NULL, in, 3);
    }
    a->requires_grad = x->requires_grad = true;
    snprintf(name, sizeof name, "%s shared A=B", what);
    agt_gradcheck(name, build_clinear_shared, NULL, in, 2);
    agt_free(x);
    agt_free(a);
    agt_free(b);
}

static void test_clinear_gradcheck(void **state) {
    (void)state;
    gradcheck_shape("clinear [2,3,8]->[2,3,6]", 3, (int64_t[]){2, 3, 8}, 3, 701);
    gradcheck_shape("clinear [1,6]->[1,10]", 2, (int64_t[]){1, 6}, 5, 711);
    gradcheck_shape("clinear [5,4]->[5,4]", 2, (int64_t[]){5, 4}, 2, 721);
    gradcheck_shape("clinear [6]->[2]", 1, (int64_t[]){6}, 1, 731);
}

/* What a CRoPE attention block composes: q, k from ag_clinear, rotated by ag_rope, into attention
 * (v = x itself, so x also receives attention's dv). */
static ag_tensor *build_crope_attention(ag_tape *t, ag_tensor **in, void *ctx) {
    (void)ctx;
    ag_tensor *q = ag_rope(t, ag_clinear(t, in[0], in[1], in[2]), 2, 3, 100.0);
    ag_tensor *k = ag_rope(t, ag_clinear(t, in[0], in[3], in[4]), 2, 3, 100.0);
    return ag_attention(t, q, k, in[0], 2);
}

static void test_clinear_crope_attention_gradcheck(void **state) {
    (void)state;
    int64_t sx[3] = {2, 5, 8}, sw[2] = {4, 4};
    ag_tensor *in[5] = {agt_rand(3, sx, -1, 1, 801, true)};
    for (int k = 1; k < 5; k++)
        in[k] = agt_rand(2, sw, -0.7, 0.7, 801 + (uint64_t)k, true);
    agt_gradcheck("clinear+rope+attention", build_crope_attention, NULL, in, 5);
    for (int k = 0; k < 5; k++)
        agt_free(in[k]);
}

int agt_run_clinear(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clinear_hand_case),
        cmocka_unit_test(test_clinear_matches_complex_arithmetic),
        cmocka_unit_test(test_clinear_b_zero_is_two_linears),
        cmocka_unit_test(test_clinear_complex_score_is_rotary_score),
        cmocka_unit_test(test_clinear_f32_f64_and_threads),
        cmocka_unit_test(test_clinear_modes),
        cmocka_unit_test(test_clinear_edge_sizes),
        cmocka_unit_test(test_clinear_rejects_bad_inputs),
        cmocka_unit_test(test_clinear_reports_full_arena_and_tape),
        cmocka_unit_test(test_clinear_gradcheck),
        cmocka_unit_test(test_clinear_crope_attention_gradcheck),
    };
    return cmocka_run_group_tests_name("autograd_clinear", tests, NULL, NULL);
}
