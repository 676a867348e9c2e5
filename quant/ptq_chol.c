/* ptq_chol.c — GPTQ's Hinv: the upper triangular Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), computed
 * by LAPACK (OpenBLAS exports dpotrf_/dtrtri_) without ever forming H⁻¹.
 *
 * Why it works: with J the exchange matrix (J² = I), factor JHJ = LLᵀ. Then H = (JLJ)(JLJ)ᵀ where
 * V = JLJ is upper triangular, so H⁻¹ = V⁻ᵀV⁻¹ and U = V⁻¹ = J·L⁻¹·J is upper triangular with a
 * positive diagonal: by uniqueness it is the Cholesky factor GPTQ's reference computes as
 * chol(chol_inverse(chol(H)), upper). Cost n³/3 + n³/3 flops instead of 4n³/3, and one
 * factorization fewer that could fail on an ill-conditioned H⁻¹. For a row-major matrix, JAJ is
 * the flat array reversed. */
#include "quant/ptq.h"

#include <limits.h>
#include <omp.h>

/* Fortran LAPACK entry points (the project has no LAPACKE). The trailing size_t are the hidden
 * lengths of the character arguments that gfortran-compiled LAPACK expects; OpenBLAS's own C
 * implementations of these two routines simply do not read them. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
void dtrtri_(const char *uplo, const char *diag, const int *n, double *a, const int *lda, int *info,
             size_t uplo_len, size_t diag_len);

static void reverse(double *a, size_t len) {
    for (size_t i = 0, j = len - 1; i < j; i++, j--) {
        double t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Row-major b (symmetric) is its own transpose, so Fortran sees the same matrix. dpotrf 'U'
 * leaves R (b = RᵀR, R = Lᵀ) in Fortran's upper triangle, which is the row-major lower triangle
 * holding L; dtrtri inverts it in place, leaving L⁻¹ there. Returns LAPACK's info (0 = ok). */
static int factor_and_invert(double *b, int n) {
    int info = 0;
    dpotrf_("U", &n, b, &n, &info, 1);
    if (info == 0)
        dtrtri_("U", "N", &n, b, &n, &info, 1, 1);
    return info;
}

int ptq_inv_chol_upper(double *a, size_t n) {
    if (n > INT_MAX || (n > 0 && !a))
        return PTQ_ERR_ARG;
    if (n == 0)
        return PTQ_OK;
    reverse(a, n * n); /* JaJ */
    int info = 0;
    /* OpenBLAS runs potrf/trtri by a single-threaded or a parallel algorithm depending on the
     * OpenMP thread count, and the two round differently, so GPTQ's result would depend on the
     * thread count. Inside an active parallel region OpenBLAS (OpenMP build) always runs
     * single-threaded: call it from one thread of a team. The other thread just waits (passive
     * waiting: it sleeps); n³ flops single-threaded take ~0.1 s at n = 1024. */
#pragma omp parallel num_threads(2)
    {
        if (omp_get_thread_num() == 0)
            info = factor_and_invert(a, (int)n);
    }
    if (info != 0)
        return PTQ_ERR_NOT_PD;
    reverse(a, n * n); /* row-major lower L⁻¹ -> row-major upper J·L⁻¹·J = U */
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            a[i * n + j] = 0.0;
    return PTQ_OK;
}
