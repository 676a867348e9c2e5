/* ptq_metric.c — the layer error GPTQ minimises, tr(D·H·Dᵀ) with D = W − Wq, i.e. (2/N) times
 * the squared output error ‖(W − Wq)·Xᵀ‖² when H = (2/N)·XᵀX. Chunks of rows go through one
 * dsymm each (OpenBLAS-threaded: a metric needs no bit-reproducibility across thread counts). */
#include "quant/ptq.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#define METRIC_ROWS 64 /* rows per dsymm: D and D·H chunks of 64×cols doubles */

double ptq_layer_error(const float *w, const float *wq, size_t rows, size_t cols, const double *H) {
    if (rows == 0 || cols == 0)
        return 0.0;
    if (!w || !wq || !H || cols > INT_MAX)
        return NAN;
    double *d = malloc(2 * METRIC_ROWS * cols * sizeof *d);
    if (!d)
        return NAN;
    double *t = d + METRIC_ROWS * cols; /* [m, cols] D·H */
    double total = 0.0;
    for (size_t r0 = 0; r0 < rows; r0 += METRIC_ROWS) {
        const size_t m = rows - r0 < METRIC_ROWS ? rows - r0 : METRIC_ROWS;
        for (size_t i = 0; i < m * cols; i++)
            d[i] = (double)w[r0 * cols + i] - (double)wq[r0 * cols + i];
        /* T = D·H with H symmetric on the right */
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, (int)m, (int)cols, 1.0, H, (int)cols, d,
                    (int)cols, 0.0, t, (int)cols);
        for (size_t k = 0; k < m; k++) {
            double row = 0.0;
            for (size_t j = 0; j < cols; j++)
                row += t[k * cols + j] * d[k * cols + j];
            total += row;
        }
    }
    free(d);
    return total;
}
