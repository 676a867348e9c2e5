/* sgd.c — the SGD update of one tensor (PyTorch's torch.optim.SGD with dampening 0, no Nesterov).
 * Weight decay is coupled (added to the gradient, as L2 regularisation) and the caller's gradient
 * is left untouched: the decayed gradient exists only in a register. */
#include "optim/opt_internal.h"

void opt_sgd_update(float *restrict p, const float *restrict g, float *restrict buf, size_t n,
                    float lr, float wd, float momentum, bool first) {
    if (!buf) {
#pragma omp parallel for schedule(static) if (n >= OPT_PAR_MIN)
        for (size_t i = 0; i < n; i++)
            p[i] = p[i] - lr * (g[i] + wd * p[i]);
        return;
    }
    /* The first step copies the decayed gradient into the buffer (PyTorch initialises it the
     * same way) rather than computing 0·buf + g', which would turn a stale NaN into NaN. */
    if (first) {
#pragma omp parallel for schedule(static) if (n >= OPT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float b = g[i] + wd * p[i];
            buf[i] = b;
            p[i] = p[i] - lr * b;
        }
        return;
    }
#pragma omp parallel for schedule(static) if (n >= OPT_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float b = momentum * buf[i] + (g[i] + wd * p[i]);
        buf[i] = b;
        p[i] = p[i] - lr * b;
    }
}
