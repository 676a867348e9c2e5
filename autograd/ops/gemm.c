/* gemm.c — row-major products split into row panels, one single-threaded BLAS call per panel.
 *
 * Why: on the linear layers' shapes (2048 rows × 256..1024), OpenBLAS's own 2-thread split runs
 * at 80–105 GFLOP/s while two threads each multiplying their own rows with a single-threaded call
 * reach 110–125 (measured side by side, docs/BENCH.md). The split depends on the shape only, never
 * on the thread count, so a split product is the same bit for bit with 1 or N threads. OpenBLAS's
 * OpenMP build runs single-threaded inside an active parallel region, which the panels rely on. */
#include <assert.h>
#include <cblas.h>
#include <stdint.h>

#include "autograd/ops/ops.h"

enum {
    GEMM_PANEL_MIN_ROWS = 128, /* thinner panels repack B too often for too little work */
    GEMM_PANELS_MAX = 4,       /* 2 panels per thread at 2 threads; more bought nothing */
    GEMM_ROW_ALIGN = 16,       /* panel edges on the micro-kernel's row unroll */
};
#define GEMM_SPLIT_MIN_MACS (1 << 22) /* below ~0.1 ms a fork-join costs more than it saves */

int ag_gemm_panels(int M, int N, int K) {
    if ((double)M * N * K < GEMM_SPLIT_MIN_MACS)
        return 1;
    int p = M / GEMM_PANEL_MIN_ROWS;
    return p < 1 ? 1 : p > GEMM_PANELS_MAX ? GEMM_PANELS_MAX : p;
}

/* First row of panel p of P over M rows (p = P gives M). */
static int panel_row(int M, int p, int P) {
    if (p >= P)
        return M;
    int r = (int)((int64_t)M * p / P);
    return r - r % GEMM_ROW_ALIGN;
}

/* The panels of products g[0..n) as one task list on the OpenMP threads. dynamic: products of
 * unequal cost (a linear layer's dx and dW) still finish together; which thread runs a panel never
 * changes what it computes. Task t is panel p of product i, counting the panels in order. */
/* clang-format off */
#define GEMM_DEFINE(T, REAL, blas)                                                                 \
    static void panel_##T(const ag_gemm_args_##T *q, int p, int P) {                               \
        int r0 = panel_row(q->M, p, P), r1 = panel_row(q->M, p + 1, P);                            \
        /* rows r0.. of op(A): rows of A, or its columns when A is stored transposed */            \
        const REAL *A = q->ta ? q->A + r0 : q->A + (int64_t)r0 * q->lda;                           \
        blas(CblasRowMajor, q->ta ? CblasTrans : CblasNoTrans, q->tb ? CblasTrans : CblasNoTrans,  \
             r1 - r0, q->N, q->K, q->alpha, A, q->lda, q->B, q->ldb, q->beta,                      \
             q->C + (int64_t)r0 * q->ldc, q->ldc);                                                 \
    }                                                                                              \
    void ag_gemm_many_##T(const ag_gemm_args_##T *g, int n) {                                      \
        assert(n <= AG_GEMM_MANY_MAX);                                                             \
        int P[AG_GEMM_MANY_MAX], total = 0;                                                        \
        for (int i = 0; i < n; i++)                                                                \
            total += P[i] = ag_gemm_panels(g[i].M, g[i].N, g[i].K);                                \
        _Pragma("omp parallel for schedule(dynamic, 1) if (total > 1)")                            \
        for (int t = 0; t < total; t++) {                                                          \
            int i = 0, p = t;                                                                      \
            while (p >= P[i])                                                                      \
                p -= P[i++];                                                                       \
            panel_##T(&g[i], p, P[i]);                                                             \
        }                                                                                          \
    }                                                                                              \
    void ag_gemm_##T(bool ta, bool tb, int M, int N, int K, REAL alpha, const REAL *A, int lda,    \
                     const REAL *B, int ldb, REAL beta, REAL *C, int ldc) {                        \
        ag_gemm_args_##T g = {ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};               \
        ag_gemm_many_##T(&g, 1);                                                                   \
    }

GEMM_DEFINE(f32, float, cblas_sgemm)
GEMM_DEFINE(f64, double, cblas_dgemm)
/* clang-format on */
