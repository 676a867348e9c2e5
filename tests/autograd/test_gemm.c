/* test_gemm.c — ag_gemm (autograd/ops/gemm.c): products split into row panels. Against a naive
 * double-precision product for every transpose pattern, with alpha, beta, strided operands and
 * panel edges that are not multiples of anything; the panel plan; the same bits at 1 and 2
 * threads; ag_gemm_many equal to one ag_gemm per product; ag_linear unchanged by the thread count
 * on a shape that is split. */
#include "agtest.h"

#include "autograd/ops/ops.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* A product with its operands (row-major, leading dims lda/ldb/ldc wider than needed). */
typedef struct prod {
    bool ta, tb;
    int M, N, K, lda, ldb, ldc;
    double alpha, beta;
    double *A, *B, *C0; /* C0: C before the product */
} prod;

static prod prod_new(bool ta, bool tb, int M, int N, int K, double alpha, double beta,
                     uint64_t seed) {
    prod p = {ta, tb, M, N, K, 0, 0, 0, alpha, beta, NULL, NULL, NULL};
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    p.lda = ac + 3;
    p.ldb = bc + 5;
    p.ldc = N + 1;
    p.A = agt_rand_vals((size_t)ar * p.lda, -1, 1, seed);
    p.B = agt_rand_vals((size_t)br * p.ldb, -1, 1, seed + 1);
    p.C0 = agt_rand_vals((size_t)M * p.ldc, -1, 1, seed + 2);
    return p;
}

static void prod_free(prod *p) {
    free(p->A);
    free(p->B);
    free(p->C0);
}

static double a_at(const prod *p, int i, int k) {
    return p->ta ? p->A[(size_t)k * p->lda + i] : p->A[(size_t)i * p->lda + k];
}
static double b_at(const prod *p, int k, int j) {
    return p->tb ? p->B[(size_t)j * p->ldb + k] : p->B[(size_t)k * p->ldb + j];
}

/* C = alpha·op(A)·op(B) + beta·C0, naively in double; the padding columns keep C0. */
static double *naive(const prod *p) {
    size_t n = (size_t)p->M * p->ldc;
    double *c = malloc(n * sizeof *c);
    memcpy(c, p->C0, n * sizeof *c);
    for (int i = 0; i < p->M; i++)
        for (int j = 0; j < p->N; j++) {
            double s = 0;
            for (int k = 0; k < p->K; k++)
                s += a_at(p, i, k) * b_at(p, k, j);
            c[(size_t)i * p->ldc + j] = p->alpha * s + p->beta * p->C0[(size_t)i * p->ldc + j];
        }
    return c;
}

static float *to_f32(const double *v, size_t n) {
    float *f = malloc((n ? n : 1) * sizeof *f);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)v[i];
    return f;
}

static size_t a_len(const prod *p) { return (size_t)(p->ta ? p->K : p->M) * p->lda; }
static size_t b_len(const prod *p) { return (size_t)(p->tb ? p->N : p->K) * p->ldb; }
static size_t c_len(const prod *p) { return (size_t)p->M * p->ldc; }

/* The float product of p at nt threads (malloc'ed C, caller frees). */
static float *run_f32(const prod *p, int nt) {
    float *A = to_f32(p->A, a_len(p)), *B = to_f32(p->B, b_len(p)), *C = to_f32(p->C0, c_len(p));
    int saved = omp_get_max_threads();
    omp_set_num_threads(nt);
    ag_gemm_f32(p->ta, p->tb, p->M, p->N, p->K, (float)p->alpha, A, p->lda, B, p->ldb,
                (float)p->beta, C, p->ldc);
    omp_set_num_threads(saved);
    free(A);
    free(B);
    return C;
}

/* Shapes: one plain call (small), 2 panels (M = 300: edges at 144), 4 panels (M = 600). */
static const int shapes[][3] = {{7, 5, 3}, {300, 130, 120}, {600, 100, 80}, {1000, 33, 200}};

static void test_gemm_panel_plan(void **state) {
    (void)state;
    assert_int_equal(ag_gemm_panels(7, 5, 3), 1);
    assert_int_equal(ag_gemm_panels(300, 130, 120), 2);   /* 4.68M multiply-adds, 300/128 = 2 */
    assert_int_equal(ag_gemm_panels(600, 100, 80), 4);    /* 4.8M, 600/128 = 4 */
    assert_int_equal(ag_gemm_panels(2048, 1024, 256), 4); /* at most 4 */
    assert_int_equal(ag_gemm_panels(256, 256, 2048), 2);  /* a linear layer's dW */
    assert_int_equal(ag_gemm_panels(4096, 32, 31), 1);    /* 4.06M < 2^22: not worth a fork */
    assert_int_equal(ag_gemm_panels(127, 4096, 4096), 1); /* fewer rows than one panel */
    assert_int_equal(ag_gemm_panels(0, 10, 10), 1);
}

/* Every transpose pattern, alpha, beta, strided operands: f64 to 1e-12, f32 to float rounding of
 * K-term sums; the padding columns of C are never written. */
static void test_gemm_matches_naive(void **state) {
    (void)state;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            prod p = prod_new(t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2], 0.75,
                              t == 3 ? 0.0 : -0.5, 100 + 10 * s + t);
            double *ref = naive(&p);
            double *C = malloc(c_len(&p) * sizeof *C);
            memcpy(C, p.C0, c_len(&p) * sizeof *C);
            ag_gemm_f64(p.ta, p.tb, p.M, p.N, p.K, p.alpha, p.A, p.lda, p.B, p.ldb, p.beta, C,
                        p.ldc);
            float *Cf = run_f32(&p, 2);
            for (size_t i = 0; i < c_len(&p); i++) {
                if ((int)(i % p.ldc) >= p.N) { /* padding: untouched */
                    assert_true(C[i] == p.C0[i]);
                    assert_true(Cf[i] == (float)p.C0[i]);
                    continue;
                }
                assert_close(C[i], ref[i], 1e-12 * (1 + p.K), 0);
                assert_close(Cf[i], ref[i], 2e-7 * (2 + p.K), 0);
            }
            free(ref);
            free(C);
            free(Cf);
            prod_free(&p);
        }
}

/* A split product gives the same bits at 1 and at 2 threads (the plan depends on the shape). */
static void test_gemm_thread_count_invariant(void **state) {
    (void)state;
    for (size_t s = 1; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            prod p = prod_new(t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2], 1, 1,
                              200 + 10 * s + t);
            assert_true(ag_gemm_panels(p.M, p.N, p.K) > 1);
            float *c1 = run_f32(&p, 1), *c2 = run_f32(&p, 2);
            assert_memory_equal(c1, c2, c_len(&p) * sizeof *c1);
            free(c1);
            free(c2);
            prod_free(&p);
        }
}

/* ag_gemm_many: each product exactly as ag_gemm computes it alone, whatever the mix of panel
 * counts (a linear layer's dW (2 panels) and dx (4 panels)). */
static void test_gemm_many_equals_singles(void **state) {
    (void)state;
    prod p[2] = {prod_new(true, false, 256, 200, 700, 1, 1, 301),
                 prod_new(false, false, 700, 200, 256, 1, 0, 302)};
    float *A[2], *B[2], *C[2], *single[2];
    ag_gemm_args_f32 g[2];
    for (int i = 0; i < 2; i++) {
        A[i] = to_f32(p[i].A, a_len(&p[i]));
        B[i] = to_f32(p[i].B, b_len(&p[i]));
        C[i] = to_f32(p[i].C0, c_len(&p[i]));
        g[i] =
            (ag_gemm_args_f32){p[i].ta,  p[i].tb, p[i].M,   p[i].N,           p[i].K, 1,       A[i],
                               p[i].lda, B[i],    p[i].ldb, (float)p[i].beta, C[i],   p[i].ldc};
        single[i] = run_f32(&p[i], 2);
    }
    assert_int_equal(ag_gemm_panels(256, 200, 700), 2);
    assert_int_equal(ag_gemm_panels(700, 200, 256), 4);
    for (int nt = 1; nt <= 2; nt++) {
        for (int i = 0; i < 2; i++) {
            float *c0 = to_f32(p[i].C0, c_len(&p[i]));
            memcpy(C[i], c0, c_len(&p[i]) * sizeof *c0);
            free(c0);
        }
        omp_set_num_threads(nt);
        ag_gemm_many_f32(g, 2);
        omp_set_num_threads(2);
        for (int i = 0; i < 2; i++)
            assert_memory_equal(C[i], single[i], c_len(&p[i]) * sizeof *C[i]);
    }
    for (int i = 0; i < 2; i++) {
        free(A[i]);
        free(B[i]);
        free(C[i]);
        free(single[i]);
        prod_free(&p[i]);
    }
}

/* ag_linear forward and backward (dx, dW together) at 1 and 2 threads: the same bits. */
static void linear_run(int nt, const float *xv, const float *wv, const float *dyv, float *out[3]) {
    enum { R = 512, IC = 96, OC = 160 };
    int64_t sx[2] = {R, IC}, sw[2] = {OC, IC};
    ag_tensor x, w;
    float *xd = malloc(sizeof(float) * R * IC), *wd = malloc(sizeof(float) * OC * IC);
    memcpy(xd, xv, sizeof(float) * R * IC);
    memcpy(wd, wv, sizeof(float) * OC * IC);
    ag_tensor_wrap(&x, AG_F32, xd, calloc((size_t)R * IC, sizeof(float)), 2, sx);
    ag_tensor_wrap(&w, AG_F32, wd, calloc((size_t)OC * IC, sizeof(float)), 2, sw);
    x.requires_grad = w.requires_grad = true;
    int saved = omp_get_max_threads();
    omp_set_num_threads(nt);
    ag_tape *t = ag_tape_create(1 << 22, 0, 16);
    ag_tensor *y = ag_linear(t, &x, &w);
    assert_non_null(y);
    assert_int_equal(ag_backward(t, y, dyv), 0);
    out[0] = malloc(sizeof(float) * R * OC);
    memcpy(out[0], y->data, sizeof(float) * R * OC);
    out[1] = x.grad;
    out[2] = w.grad;
    ag_tape_free(t);
    omp_set_num_threads(saved);
    free(xd);
    free(wd);
}

static void test_linear_thread_count_invariant(void **state) {
    (void)state;
    enum { R = 512, IC = 96, OC = 160 };
    assert_int_equal(ag_gemm_panels(R, OC, IC), 4); /* forward */
    assert_int_equal(ag_gemm_panels(R, IC, OC), 4); /* dx */
    assert_int_equal(ag_gemm_panels(OC, IC, R), 1); /* dW: 160 rows, one task beside dx's */
    double *xv = agt_rand_vals((size_t)R * IC, -1, 1, 401),
           *wv = agt_rand_vals((size_t)OC * IC, -1, 1, 402);
    double *dyv = agt_rand_vals((size_t)R * OC, -1, 1, 403);
    float *xf = to_f32(xv, (size_t)R * IC), *wf = to_f32(wv, (size_t)OC * IC);
    float *dyf = to_f32(dyv, (size_t)R * OC);
    float *a[3], *b[3];
    linear_run(1, xf, wf, dyf, a);
    linear_run(2, xf, wf, dyf, b);
    assert_memory_equal(a[0], b[0], sizeof(float) * R * OC);
    assert_memory_equal(a[1], b[1], sizeof(float) * R * IC);
    assert_memory_equal(a[2], b[2], sizeof(float) * OC * IC);
    for (int i = 0; i < 3; i++) {
        free(a[i]);
        free(b[i]);
    }
    free(xv);
    free(wv);
    free(dyv);
    free(xf);
    free(wf);
    free(dyf);
}

int agt_run_gemm(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_panel_plan),
        cmocka_unit_test(test_gemm_matches_naive),
        cmocka_unit_test(test_gemm_thread_count_invariant),
        cmocka_unit_test(test_gemm_many_equals_singles),
        cmocka_unit_test(test_linear_thread_count_invariant),
    };
    return cmocka_run_group_tests_name("autograd_gemm", tests, NULL, NULL);
}
