/* ptq_hessian.c — the GPTQ Hessian H = (2/N) Σ x xᵀ over calibration activations, accumulated
 * in double as a running sum plus a count, so any chunking of the rows gives the same mean (up to
 * the rounding of the sum). Chunks are converted to double and added with one dsyrk each. */
#include "quant/ptq.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

struct ptq_hessian {
    size_t cols;
    size_t count; /* N: rows added */
    double *sum;  /* [cols, cols] S = Σ x xᵀ; only the upper triangle is maintained */
    double *buf;  /* [PTQ_HESSIAN_CHUNK, cols] the current chunk in double */
};

ptq_hessian *ptq_hessian_create(size_t cols) {
    if (cols == 0 || cols > INT_MAX) /* the BLAS takes int dimensions */
        return NULL;
    ptq_hessian *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->cols = cols;
    h->sum = calloc(cols * cols, sizeof *h->sum);
    h->buf = malloc((size_t)PTQ_HESSIAN_CHUNK * cols * sizeof *h->buf);
    if (!h->sum || !h->buf) {
        ptq_hessian_free(h);
        return NULL;
    }
    return h;
}

void ptq_hessian_free(ptq_hessian *h) {
    if (!h)
        return;
    free(h->buf);
    free(h->sum);
    free(h);
}

size_t ptq_hessian_cols(const ptq_hessian *h) { return h ? h->cols : 0; }
size_t ptq_hessian_count(const ptq_hessian *h) { return h ? h->count : 0; }

/* Scanned before anything is added, so a rejected chunk leaves the accumulator as it was. */
static int all_finite(const float *x, size_t n) {
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= isfinite(x[i]) != 0;
    return ok;
}

int ptq_hessian_add(ptq_hessian *h, const float *x, size_t nrows) {
    if (!h || (!x && nrows > 0))
        return PTQ_ERR_ARG;
    const size_t cols = h->cols;
    if (!all_finite(x, nrows * cols))
        return PTQ_ERR_NONFINITE;
    for (size_t r0 = 0; r0 < nrows; r0 += PTQ_HESSIAN_CHUNK) {
        const size_t m = nrows - r0 < PTQ_HESSIAN_CHUNK ? nrows - r0 : PTQ_HESSIAN_CHUNK;
        const float *xc = x + r0 * cols;
        for (size_t i = 0; i < m * cols; i++)
            h->buf[i] = xc[i]; /* exact; products of two floats are exact in double too */
        /* upper triangle of S += Bᵀ B for the chunk B [m, cols] */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)m, 1.0, h->buf,
                    (int)cols, 1.0, h->sum, (int)cols);
    }
    h->count += nrows;
    return PTQ_OK;
}

int ptq_hessian_get(const ptq_hessian *h, double *H) {
    if (!h || !H)
        return PTQ_ERR_ARG;
    if (h->count == 0)
        return PTQ_ERR_EMPTY;
    const size_t n = h->cols;
    const double c = 2.0 / (double)h->count;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i; j < n; j++)
            H[i * n + j] = H[j * n + i] = c * h->sum[i * n + j];
    return PTQ_OK;
}
