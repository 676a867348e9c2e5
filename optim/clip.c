/* clip.c — gradient utilities: zeroing, the global L2 norm, and clipping by that norm.
 *
 * The norm must be reproducible bit for bit (it is logged, and clipping feeds it into every
 * parameter), so it never uses an OpenMP reduction. Gradients are cut into fixed chunks of
 * NORM_CHUNK elements in parameter order; each chunk's sum of squares is computed in double over
 * NORM_LANES fixed lanes (which vectorizes without reassociating anything); chunk sums are added in
 * chunk order. The result depends on neither the thread count nor the schedule. The chunk list is
 * built NORM_BATCH chunks at a time in stack arrays, so nothing is allocated. */
#include "optim/opt_internal.h"

#include <math.h>

#define NORM_CHUNK 4096
#define NORM_BATCH 256
#define NORM_LANES 8

typedef struct norm_chunk {
    const float *x;
    size_t n; /* <= NORM_CHUNK */
} norm_chunk;

static double chunk_sumsq(const float *restrict x, size_t n) {
    double acc[NORM_LANES] = {0};
    size_t i = 0;
    for (; i + NORM_LANES <= n; i += NORM_LANES)
        for (size_t j = 0; j < NORM_LANES; j++)
            acc[j] += (double)x[i + j] * (double)x[i + j];
    for (size_t j = 0; i < n; i++, j++)
        acc[j] += (double)x[i] * (double)x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Sum of squares of a batch of chunks; the partial sums are combined in order after the loop. */
static double batch_sumsq(const norm_chunk *c, size_t nc) {
    double part[NORM_BATCH];
#pragma omp parallel for schedule(static) if (nc >= 8)
    for (size_t i = 0; i < nc; i++)
        part[i] = chunk_sumsq(c[i].x, c[i].n);
    double s = 0.0;
    for (size_t i = 0; i < nc; i++)
        s += part[i];
    return s;
}

double opt_grad_norm(const opt_param *params, size_t n) {
    norm_chunk work[NORM_BATCH];
    size_t nw = 0;
    double total = 0.0;
    for (size_t p = 0; p < n; p++) {
        const float *g = params[p].grad;
        size_t numel = params[p].numel;
        if (!g)
            continue;
        for (size_t off = 0; off < numel; off += NORM_CHUNK) {
            work[nw].x = g + off;
            work[nw].n = numel - off < NORM_CHUNK ? numel - off : NORM_CHUNK;
            if (++nw == NORM_BATCH) {
                total += batch_sumsq(work, nw);
                nw = 0;
            }
        }
    }
    total += batch_sumsq(work, nw);
    return sqrt(total);
}

static void scale(float *restrict g, size_t n, float s) {
#pragma omp parallel for schedule(static) if (n >= OPT_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        g[i] *= s;
}

double opt_clip_grad_norm(const opt_param *params, size_t n, double max_norm) {
    double norm = opt_grad_norm(params, n);
    /* A NaN/Inf norm means the step is lost anyway; scaling would only hide where it came from. */
    if (!(max_norm > 0.0) || !isfinite(norm) || !(norm > max_norm))
        return norm;
    float s = (float)(max_norm / (norm + 1e-6));
    for (size_t p = 0; p < n; p++)
        if (params[p].grad)
            scale(params[p].grad, params[p].numel, s);
    return norm;
}

void opt_zero_grad(const opt_param *params, size_t n) {
    for (size_t p = 0; p < n; p++) {
        float *restrict g = params[p].grad;
        size_t numel = params[p].numel;
        if (!g)
            continue;
#pragma omp parallel for schedule(static) if (numel >= OPT_PAR_MIN)
        for (size_t i = 0; i < numel; i++)
            g[i] = 0.0f;
    }
}
